/*
 * cg_index.c — Gather and GatherElements (kernels/gather.cuh): any element type, int32 or
 * int64 indices (constant or computed), negative indices wrapped.
 */
#include "codegen/cg_internal.h"

#include <stdio.h>
#include <string.h>

static const char *uint_of_size(size_t sz) {
    switch (sz) {
    case 1: return "unsigned char";
    case 2: return "unsigned short";
    case 4: return "unsigned int";
    case 8: return "unsigned long long";
    default: return NULL;
    }
}

kiln_status kiln_cg_emit_gather(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *ind = kiln_cg_val(c, n->inputs[1]);
    const kiln_value *y = kiln_cg_val(c, n->outputs[0]);
    const char *T = uint_of_size(kiln_dtype_size(y->dtype));
    if (!T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(y->dtype));
    if (ind->dtype != KILN_I64 && ind->dtype != KILN_I32)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "indices of dtype %s", kiln_dtype_name(ind->dtype));
    if (x->layout == KILN_LAYOUT_NHWC || y->layout == KILN_LAYOUT_NHWC)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    const char *I = ind->dtype == KILN_I64 ? "long long" : "int";
    int64_t axis;
    if (x->rank < 1 || !kiln_norm_axis(kiln_attr_int(n, "axis", 0), x->rank, &axis))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
    int64_t total = kiln_cg_numel(y);
    if (total == 0) return KILN_OK;
    kiln_bundle_arg args[4];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->inputs[1], &args[1])) ||
        (st = kiln_cg_value_arg(c, n->outputs[0], &args[2])))
        return st;
    char fn[64];
    if (n->op == KILN_OP_Gather) {
        int64_t outer = 1, inner = 1;
        for (int d = 0; d < axis; d++) outer *= x->dims[d];
        for (int d = (int)axis + 1; d < x->rank; d++) inner *= x->dims[d];
        int64_t sh[4] = {outer, x->dims[axis], kiln_cg_numel(ind), inner};
        kiln_cg_kernel_name(c, "gather", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, const %s "
                       "*idx, %s *y, kiln::i64 outer, kiln::i64 axis_dim, kiln::i64 n_idx, kiln::i64 inner) {\n"
                       "    kiln::gather_axis<%s, %s>(x, idx, y, outer, axis_dim, n_idx, inner);\n}\n",
                       fn, c->group, y->name, BLOCK_1D, fn, T, I, T, T, I);
        kiln_bundle_arg a[7] = {args[0], args[1], args[2]};
        for (int k = 0; k < 4; k++) a[3 + k] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)sh[k]};
        return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, a, 7);
    }
    /* GatherElements: y has the indices' shape */
    if (ind->rank != x->rank) return kiln_errorf(KILN_ERR_UNSUPPORTED, "indices rank differs from data rank");
    int R = x->rank;
    int64_t xs[KILN_MAX_RANK], sh[3 + 2 * KILN_MAX_RANK];
    kiln_strides(x->rank, x->dims, xs);
    sh[0] = total;
    sh[1] = x->dims[axis];
    sh[2] = xs[axis];
    for (int d = 0; d < R; d++) {
        sh[3 + d] = ind->dims[d];
        sh[3 + R + d] = d == axis ? 0 : xs[d];
    }
    kiln_cg_kernel_name(c, "gather_elements", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, const %s "
                   "*idx, %s *y, kiln::gather_elements_shape<%d> s) {\n"
                   "    kiln::gather_elements<%s, %s, %d>(x, idx, y, s);\n}\n",
                   fn, c->group, y->name, BLOCK_1D, fn, T, I, T, R, T, I, R);
    if ((st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(3 + 2 * R), &args[3]))) return st;
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 4);
}

/* ------------------------------------------------ Trilu, Tile, DepthToSpace, Range -- */
/* Constant integer input i of n: its values (at most `max`), -1 when absent or unknown. */
static int const_ints(const cg *c, const kiln_node *n, int i, int64_t *out, int max) {
    if (i >= n->n_inputs || n->inputs[i] < 0) return -1;
    return kiln_value_const_ints(kiln_cg_val(c, n->inputs[i]), out, max);
}

static kiln_status launch_xy(cg *c, const kiln_node *n, const char *fn, int64_t total, const kiln_bundle_arg *extra,
                             int n_extra) {
    kiln_bundle_arg args[8];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->outputs[0], &args[1])))
        return st;
    for (int i = 0; i < n_extra; i++) args[2 + i] = extra[i];
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, (uint32_t)(2 + n_extra));
}

kiln_status kiln_cg_emit_index_misc(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *y = kiln_cg_val(c, n->outputs[0]);
    const char *T = uint_of_size(kiln_dtype_size(y->dtype));
    if (!T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(y->dtype));
    if (x->layout == KILN_LAYOUT_NHWC || y->layout == KILN_LAYOUT_NHWC)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    int64_t total = kiln_cg_numel(y);
    if (total == 0) return KILN_OK;
    char fn[64];
    kiln_bundle_arg ex[4];
    switch (n->op) {
    case KILN_OP_Trilu: {
        int64_t k = 0;
        if (n->n_inputs > 1 && n->inputs[1] >= 0 && const_ints(c, n, 1, &k, 1) != 1)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "k not known at build time");
        if (x->rank < 2) return kiln_errorf(KILN_ERR_UNSUPPORTED, "rank %d", x->rank);
        bool upper = kiln_attr_int(n, "upper", 1) != 0;
        kiln_cg_kernel_name(c, upper ? "triu" : "tril", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, %s *y, "
                       "kiln::i64 numel, kiln::i64 rows, kiln::i64 cols, kiln::i64 k) {\n"
                       "    kiln::trilu<%s, %s>(x, y, numel, rows, cols, k);\n}\n",
                       fn, c->group, y->name, BLOCK_1D, fn, T, T, T, upper ? "true" : "false");
        int64_t v[4] = {total, x->dims[x->rank - 2], x->dims[x->rank - 1], k};
        for (int i = 0; i < 4; i++) ex[i] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)v[i]};
        return launch_xy(c, n, fn, total, ex, 4);
    }
    case KILN_OP_Tile: {
        int R = x->rank;
        if (R < 1) return kiln_errorf(KILN_ERR_UNSUPPORTED, "rank 0");
        int64_t xs[KILN_MAX_RANK], sh[1 + 3 * KILN_MAX_RANK];
        kiln_strides(R, x->dims, xs);
        sh[0] = total;
        for (int d = 0; d < R; d++) {
            if (x->dims[d] == 0) return KILN_OK;
            sh[1 + d] = y->dims[d];
            sh[1 + R + d] = x->dims[d];
            sh[1 + 2 * R + d] = xs[d];
        }
        kiln_cg_kernel_name(c, "tile", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, %s *y, "
                       "kiln::tile_shape<%d> s) {\n    kiln::tile<%s, %d>(x, y, s);\n}\n",
                       fn, c->group, y->name, BLOCK_1D, fn, T, T, R, T, R);
        kiln_status st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(1 + 3 * R), &ex[0]);
        return st ? st : launch_xy(c, n, fn, total, ex, 1);
    }
    case KILN_OP_DepthToSpace: case KILN_OP_SpaceToDepth: {
        bool to_space = n->op == KILN_OP_DepthToSpace;
        bool crd = to_space && !strcmp(kiln_attr_str(n, "mode", "DCR"), "CRD");
        int64_t b = kiln_attr_int(n, "blocksize", 0);
        const kiln_value *d = to_space ? x : y; /* the depth side */
        if (d->rank != 4 || b < 1) return kiln_errorf(KILN_ERR_UNSUPPORTED, "rank %d or blocksize %lld", d->rank, (long long)b);
        kiln_cg_kernel_name(c, to_space ? "depth_to_space" : "space_to_depth", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, %s *y, "
                       "kiln::i64 N, kiln::i64 CD, kiln::i64 H, kiln::i64 W, kiln::i64 b) {\n"
                       "    kiln::depth_space<%s, %s, %s>(x, y, N, CD, H, W, b);\n}\n",
                       fn, c->group, y->name, BLOCK_1D, fn, T, T, T, to_space ? "true" : "false", crd ? "true" : "false");
        int64_t v[4] = {d->dims[0], d->dims[1], d->dims[2], d->dims[3]};
        for (int i = 0; i < 4; i++) ex[i] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)v[i]};
        kiln_bundle_arg all[5] = {ex[0], ex[1], ex[2], ex[3], {KILN_ARG_SCALAR, 8, (uint64_t)b}};
        return launch_xy(c, n, fn, total, all, 5);
    }
    case KILN_OP_GatherND: {
        const kiln_value *ind = kiln_cg_val(c, n->inputs[1]);
        if (ind->dtype != KILN_I64 && ind->dtype != KILN_I32)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "indices of dtype %s", kiln_dtype_name(ind->dtype));
        int64_t B = kiln_attr_int(n, "batch_dims", 0), k = ind->rank > 0 ? ind->dims[ind->rank - 1] : -1;
        if (ind->rank < 1 || B < 0 || k < 1 || B + k > x->rank)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "indices shape or batch_dims");
        int64_t xs[KILN_MAX_RANK], sh[6 + 2 * KILN_MAX_RANK] = {0}, M = 1, S = 1, nb = 1;
        kiln_strides(x->rank, x->dims, xs);
        for (int d = 0; d < ind->rank - 1; d++) M *= ind->dims[d];
        for (int d = (int)(B + k); d < x->rank; d++) S *= x->dims[d];
        for (int d = 0; d < B; d++) nb *= x->dims[d];
        sh[0] = total;
        sh[1] = M;
        sh[2] = S;
        sh[3] = k;
        sh[4] = nb ? M / nb : 1;
        sh[5] = B > 0 ? xs[B - 1] : 0;
        for (int j = 0; j < k; j++) {
            sh[6 + j] = x->dims[B + j];
            sh[6 + KILN_MAX_RANK + j] = xs[B + j];
        }
        const char *I = ind->dtype == KILN_I64 ? "long long" : "int";
        kiln_cg_kernel_name(c, "gather_nd", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, const %s "
                       "*idx, %s *y, kiln::gather_nd_shape s) {\n    kiln::gather_nd<%s, %s>(x, idx, y, s);\n}\n",
                       fn, c->group, y->name, BLOCK_1D, fn, T, I, T, T, I);
        kiln_bundle_arg args[4];
        kiln_status st;
        if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->inputs[1], &args[1])) ||
            (st = kiln_cg_value_arg(c, n->outputs[0], &args[2])) ||
            (st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(6 + 2 * KILN_MAX_RANK), &args[3])))
            return st;
        return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 4);
    }
    case KILN_OP_EyeLike: {
        const char *CT = kiln_cg_ctype(y->dtype);
        if (!CT || y->rank != 2 || y->dtype == KILN_F16 || y->dtype == KILN_BF16)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s or rank %d", kiln_dtype_name(y->dtype), y->rank);
        kiln_cg_kernel_name(c, "eye_like", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(%s *y, kiln::i64 rows, "
                       "kiln::i64 cols, kiln::i64 k) {\n    kiln::eye_like<%s>(y, rows, cols, k);\n}\n",
                       fn, c->group, y->name, BLOCK_1D, fn, CT, CT);
        kiln_bundle_arg args[4];
        kiln_status st;
        if ((st = kiln_cg_value_arg(c, n->outputs[0], &args[0]))) return st;
        int64_t v[3] = {y->dims[0], y->dims[1], kiln_attr_int(n, "k", 0)};
        for (int i = 0; i < 3; i++) args[1 + i] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)v[i]};
        return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 4);
    }
    case KILN_OP_OneHot: {
        const kiln_value *ind = x, *dv = kiln_cg_val(c, n->inputs[1]);
        const char *I = ind->dtype == KILN_I64 ? "long long" : ind->dtype == KILN_I32 ? "int"
                      : ind->dtype == KILN_F32 ? "float" : ind->dtype == KILN_F64 ? "double" : NULL;
        if (!I || !dv->data || dv->data->numel != 1)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "indices of dtype %s or depth not known at build time",
                               kiln_dtype_name(ind->dtype));
        int64_t ax, depth = (int64_t)kiln_tensor_get(dv->data, 0), outer = 1, inner = 1;
        if (!kiln_norm_axis(kiln_attr_int(n, "axis", -1), ind->rank + 1, &ax) || depth < 1)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis or depth");
        for (int d = 0; d < ax; d++) outer *= ind->dims[d];
        for (int d = (int)ax; d < ind->rank; d++) inner *= ind->dims[d];
        kiln_cg_kernel_name(c, "one_hot", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *idx, const "
                       "%s *values, %s *y, kiln::i64 outer, kiln::i64 depth, kiln::i64 inner) {\n"
                       "    kiln::one_hot<%s, %s>(idx, values, y, outer, depth, inner);\n}\n",
                       fn, c->group, y->name, BLOCK_1D, fn, I, T, T, T, I);
        kiln_bundle_arg args[6];
        kiln_status st;
        if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->inputs[2], &args[1])) ||
            (st = kiln_cg_value_arg(c, n->outputs[0], &args[2])))
            return st;
        int64_t v[3] = {outer, depth, inner};
        for (int i = 0; i < 3; i++) args[3 + i] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)v[i]};
        return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 6);
    }
    case KILN_OP_Range: {
        const char *CT = kiln_cg_ctype(y->dtype);
        if (!CT || y->dtype == KILN_BOOL || y->dtype == KILN_F64) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(y->dtype));
        kiln_cg_kernel_name(c, "range", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *start, const "
                       "%s *delta, %s *y, kiln::i64 n) {\n    kiln::range_%s<%s>(start, delta, y, n);\n}\n",
                       fn, c->group, y->name, BLOCK_1D, fn, CT, CT, CT, kiln_dtype_is_float(y->dtype) ? "float" : "int", CT);
        kiln_bundle_arg args[4];
        kiln_status st;
        if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->inputs[2], &args[1])) ||
            (st = kiln_cg_value_arg(c, n->outputs[0], &args[2])))
            return st;
        args[3] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)total};
        return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 4);
    }
    default: return kiln_errorf(KILN_ERR_UNSUPPORTED, "no GPU kernel for this op yet");
    }
}

/* ------------------------------------------------------------- constant outputs -- */
/* A node whose outputs are all known at build time (Shape, Size, ConstantOfShape... once the
 * shapes are static) needs no kernel: its consumers read the constants as weights. */
bool kiln_cg_node_is_constant(const cg *c, const kiln_node *n) {
    int known = 0;
    for (int i = 0; i < n->n_outputs; i++) {
        if (n->outputs[i] < 0) continue;
        if (!kiln_cg_val(c, n->outputs[i])->data) return false;
        known++;
    }
    return known > 0;
}

/* Copies of constant graph outputs from the weights into their bindings (nothing else writes
 * them). `n`: only the outputs of that (constant) node, so that its launches form its layer;
 * NULL: the constant graph outputs no live node produces (codegen.c makes them one layer). */
static kiln_status emit_const_copies(cg *c, const kiln_node *n) {
    for (int i = 0; i < c->g->n_outputs; i++) {
        int v = c->g->outputs[i];
        const kiln_value *val = kiln_cg_val(c, v);
        if (!val->data || val->data->numel == 0) continue;
        if (n) {
            bool mine = false;
            for (int j = 0; j < n->n_outputs; j++) mine = mine || n->outputs[j] == v;
            if (!mine) continue;
        } else {
            int p = val->producer;
            if (p >= 0 && p < c->g->n_nodes && !c->g->nodes[p].dead) continue; /* copied with its node */
        }
        const char *T = uint_of_size(kiln_dtype_size(val->data->dtype));
        if (!T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "constant output '%s' of dtype %s", val->name,
                                   kiln_dtype_name(val->data->dtype));
        char fn[64];
        kiln_cg_kernel_name(c, "const_output", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: constant graph output %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const "
                       "%s *x, %s *y, kiln::i64 n) {\n    kiln::copy_rows<%s>(x, y, 1, n, n, 0);\n}\n",
                       fn, val->name, BLOCK_1D, fn, T, T, T);
        kiln_bundle_arg args[3];
        kiln_status st;
        if ((st = kiln_cg_weight_arg(c, v, &args[0]))) return st;
        args[1] = (kiln_bundle_arg){KILN_ARG_OUTPUT, 8, (uint64_t)i};
        args[2] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)val->data->numel};
        if ((st = kiln_cg_launch(c, fn, kiln_cg_grid_1d(val->data->numel), 1, 1, BLOCK_1D, args, 3))) return st;
    }
    return KILN_OK;
}

kiln_status kiln_cg_emit_const_node(cg *c, const kiln_node *n) { return emit_const_copies(c, n); }

kiln_status kiln_cg_emit_const_outputs(cg *c) {
    snprintf(c->group, sizeof c->group, "constant_outputs");
    return emit_const_copies(c, NULL);
}

/* A node computable at build time whose outputs are graph outputs (or unused): Shape and Size
 * of a static input, or any node whose inputs are all constants (what fold-constants leaves
 * when the result is a graph output). Evaluated with the CPU reference; each output's bytes
 * are copied from the weights into its binding. Returns KILN_ERR_UNSUPPORTED when it does not
 * apply. */
kiln_status kiln_cg_emit_build_time(cg *c, const kiln_node *n) {
    enum { MAX_IO = 8 };
    if (n->n_inputs > MAX_IO || n->n_outputs > MAX_IO || n->op == KILN_OP_Fused)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "no GPU kernel for this op yet");
    bool shape_only = n->op == KILN_OP_Shape || n->op == KILN_OP_Size;
    for (int i = 0; i < n->n_inputs; i++) {
        if (n->inputs[i] < 0) continue;
        const kiln_value *v = kiln_cg_val(c, n->inputs[i]);
        bool ok = v->data || (shape_only && kiln_value_is_static(v) && kiln_cg_numel(v) <= (1 << 24));
        if (!ok) return kiln_errorf(KILN_ERR_UNSUPPORTED, "no GPU kernel for this op yet");
    }
    for (int j = 0; j < n->n_outputs; j++)
        if (n->outputs[j] >= 0 && kiln_cg_io_index(c->g->outputs, c->g->n_outputs, n->outputs[j]) < 0 &&
            kiln_value_live_uses(c->g, n->outputs[j]) > 0)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "no GPU kernel for this op yet (its output is used on the GPU)");
    kiln_tensor *in[MAX_IO] = {0}, *owned[MAX_IO] = {0}, *out[MAX_IO] = {0};
    for (int i = 0; i < n->n_inputs; i++) {
        if (n->inputs[i] < 0) continue;
        const kiln_value *v = kiln_cg_val(c, n->inputs[i]);
        in[i] = v->data ? v->data : (owned[i] = kiln_tensor_new(v->dtype, v->rank, v->dims));
        if (!in[i]) {
            for (int k = 0; k < i; k++) kiln_tensor_free(owned[k]);
            return kiln_errorf(KILN_ERR_OOM, "out of memory");
        }
    }
    kiln_status st = kiln_eval_node(n, in, n->n_inputs, out, n->n_outputs);
    for (int j = 0; !st && j < n->n_outputs; j++) {
        int k = n->outputs[j] >= 0 ? kiln_cg_io_index(c->g->outputs, c->g->n_outputs, n->outputs[j]) : -1;
        if (k < 0 || !out[j] || out[j]->numel == 0) continue;
        const char *T = uint_of_size(kiln_dtype_size(out[j]->dtype));
        if (!T) {
            st = kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(out[j]->dtype));
            break;
        }
        uint64_t off;
        if ((st = kiln_bundle_add_weight(c->b, kiln_cg_val(c, n->outputs[j])->name, out[j]->dtype, out[j]->rank,
                                         out[j]->dims, out[j]->data, out[j]->nbytes, &off)))
            break;
        char fn[64];
        kiln_cg_kernel_name(c, "build_time_output", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s computed at build time -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) "
                       "%s(const %s *x, %s *y, kiln::i64 n) {\n    kiln::copy_rows<%s>(x, y, 1, n, n, 0);\n}\n",
                       fn, c->group, kiln_cg_val(c, n->outputs[j])->name, BLOCK_1D, fn, T, T, T);
        kiln_bundle_arg args[3] = {{KILN_ARG_WEIGHT, 8, off},
                                   {KILN_ARG_OUTPUT, 8, (uint64_t)k},
                                   {KILN_ARG_SCALAR, 8, (uint64_t)out[j]->numel}};
        st = kiln_cg_launch(c, fn, kiln_cg_grid_1d(out[j]->numel), 1, 1, BLOCK_1D, args, 3);
    }
    if (st && st != KILN_ERR_OOM && st != KILN_ERR_UNSUPPORTED)
        st = kiln_errorf(KILN_ERR_UNSUPPORTED, "evaluating at build time: %s", kiln_last_error());
    for (int i = 0; i < MAX_IO; i++) {
        kiln_tensor_free(owned[i]);
        kiln_tensor_free(out[i]);
    }
    return st;
}

/* --------------------------------------------------------- ScatterElements, ScatterND -- */
kiln_status kiln_cg_emit_scatter(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *ind = kiln_cg_val(c, n->inputs[1]);
    const kiln_value *upd = kiln_cg_val(c, n->inputs[2]), *y = kiln_cg_val(c, n->outputs[0]);
    const char *CT = kiln_cg_ctype(x->dtype), *U = uint_of_size(kiln_dtype_size(x->dtype));
    if (!CT || !U || x->dtype == KILN_BOOL) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    if (ind->dtype != KILN_I64 && ind->dtype != KILN_I32)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "indices of dtype %s", kiln_dtype_name(ind->dtype));
    if (x->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    const char *rs = kiln_attr_str(n, "reduction", "none");
    int red = !strcmp(rs, "none") ? 0 : !strcmp(rs, "add") ? 1 : !strcmp(rs, "mul") ? 2 : !strcmp(rs, "max") ? 3
            : !strcmp(rs, "min") ? 4 : -1;
    if (red < 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "reduction '%s'", rs);
    const char *A = x->dtype == KILN_F64 ? "double" : kiln_dtype_is_float(x->dtype) ? "float" : "kiln::i64";
    const char *I = ind->dtype == KILN_I64 ? "long long" : "int";
    int64_t total = kiln_cg_numel(y);
    if (total == 0) return KILN_OK;
    kiln_status st;
    char fn[64];
    /* y = x (nothing to do when the memory plan put y in place over x) */
    kiln_bundle_arg ax, ay;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &ax)) || (st = kiln_cg_value_arg(c, n->outputs[0], &ay))) return st;
    if (ax.kind != ay.kind || ax.value != ay.value) {
        kiln_cg_kernel_name(c, "scatter_copy", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s: the data input\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, "
                       "%s *y, kiln::i64 n) {\n    kiln::copy_rows<%s>(x, y, 1, n, n, 0);\n}\n",
                       fn, c->group, BLOCK_1D, fn, U, U, U);
        kiln_bundle_arg a3[3] = {ax, ay, {KILN_ARG_SCALAR, 8, (uint64_t)total}};
        if ((st = kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, a3, 3))) return st;
    }
    if (kiln_cg_numel(upd) == 0) return KILN_OK;
    kiln_bundle_arg args[4] = {ay};
    if ((st = kiln_cg_value_arg(c, n->inputs[1], &args[1])) || (st = kiln_cg_value_arg(c, n->inputs[2], &args[2])))
        return st;
    int64_t xs[KILN_MAX_RANK];
    kiln_strides(x->rank, x->dims, xs);
    if (n->op == KILN_OP_ScatterElements) {
        int64_t axis;
        int R = x->rank;
        if (R < 1 || ind->rank != R || !kiln_norm_axis(kiln_attr_int(n, "axis", 0), R, &axis))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "rank or axis");
        int64_t sh[3 + 2 * KILN_MAX_RANK];
        sh[0] = kiln_cg_numel(ind);
        sh[1] = axis;
        sh[2] = x->dims[axis];
        for (int d = 0; d < R; d++) sh[3 + d] = ind->dims[d], sh[3 + R + d] = xs[d];
        kiln_cg_kernel_name(c, "scatter_elements", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s -> %s (reduction %s; one thread, in order)\nextern \"C\" __global__ void __launch_bounds__(32) %s(%s *y, "
                       "const %s *idx, const %s *upd, kiln::scatter_shape<%d> s) {\n"
                       "    kiln::scatter_elements<%s, %s, %s, %d, %d>(y, idx, upd, s);\n}\n",
                       fn, c->group, y->name, rs, fn, CT, I, CT, R, CT, I, A, red, R);
        if ((st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(3 + 2 * R), &args[3]))) return st;
        return kiln_cg_launch(c, fn, 1, 1, 1, 32, args, 4);
    }
    int64_t k = ind->rank > 0 ? ind->dims[ind->rank - 1] : 0, sh[3 + 2 * KILN_MAX_RANK] = {0}, ntup = 1, slice = 1;
    if (k < 1 || k > x->rank) return kiln_errorf(KILN_ERR_UNSUPPORTED, "indices shape");
    for (int d = 0; d < ind->rank - 1; d++) ntup *= ind->dims[d];
    for (int d = (int)k; d < x->rank; d++) slice *= x->dims[d];
    sh[0] = ntup;
    sh[1] = slice;
    sh[2] = k;
    for (int j = 0; j < k; j++) sh[3 + j] = x->dims[j], sh[3 + KILN_MAX_RANK + j] = xs[j];
    kiln_cg_kernel_name(c, "scatter_nd", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s (reduction %s; one thread, in order)\nextern \"C\" __global__ void __launch_bounds__(32) %s(%s *y, "
                   "const %s *idx, const %s *upd, kiln::scatter_nd_shape s) {\n"
                   "    kiln::scatter_nd<%s, %s, %s, %d>(y, idx, upd, s);\n}\n",
                   fn, c->group, y->name, rs, fn, CT, I, CT, CT, I, A, red);
    if ((st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(3 + 2 * KILN_MAX_RANK), &args[3]))) return st;
    return kiln_cg_launch(c, fn, 1, 1, 1, 32, args, 4);
}

/* ---------------------------------------------------------------- RotaryEmbedding -- */
kiln_status kiln_cg_emit_rotary(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *cs = kiln_cg_val(c, n->inputs[1]);
    const kiln_value *y = kiln_cg_val(c, n->outputs[0]);
    const kiln_value *pos = n->n_inputs > 3 && n->inputs[3] >= 0 ? kiln_cg_val(c, n->inputs[3]) : NULL;
    const char *T = kiln_cg_ctype(x->dtype);
    if (!T || !kiln_dtype_is_float(x->dtype) || x->dtype == KILN_F64 || cs->dtype != x->dtype)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    if (pos && pos->dtype != KILN_I64 && pos->dtype != KILN_I32)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "position_ids of dtype %s", kiln_dtype_name(pos->dtype));
    int64_t nh = kiln_attr_int(n, "num_heads", 0), rd = kiln_attr_int(n, "rotary_embedding_dim", 0);
    int64_t sh[10];
    if (x->rank == 4) {
        int64_t B = x->dims[0], H = x->dims[1], S = x->dims[2], hd = x->dims[3];
        int64_t v[10] = {B, H, S, hd, rd > 0 ? rd : hd, H * S * hd, S * hd, hd, 0, 0};
        memcpy(sh, v, sizeof v);
    } else if (x->rank == 3 && nh > 0 && x->dims[2] % nh == 0) {
        int64_t B = x->dims[0], S = x->dims[1], hd = x->dims[2] / nh;
        int64_t v[10] = {B, nh, S, hd, rd > 0 ? rd : hd, S * nh * hd, hd, nh * hd, 0, 0};
        memcpy(sh, v, sizeof v);
    } else {
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "input rank %d", x->rank);
    }
    if (sh[4] % 2 || sh[4] > sh[3]) return kiln_errorf(KILN_ERR_UNSUPPORTED, "rotary_embedding_dim");
    sh[8] = pos ? pos->dims[0] : 0;
    sh[9] = pos ? 0 : cs->dims[0];
    int64_t total = kiln_cg_numel(y);
    if (total == 0) return KILN_OK;
    bool il = kiln_attr_int(n, "interleaved", 0) != 0;
    const char *P = pos && pos->dtype == KILN_I32 ? "int" : "long long";
    char fn[64];
    kiln_cg_kernel_name(c, "rotary", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, const %s *cs, "
                   "const %s *sn, const %s *pos, %s *y, kiln::rope_shape s) {\n"
                   "    kiln::rotary<%s, %s, %s>(x, cs, sn, pos, y, s);\n}\n",
                   fn, c->group, y->name, BLOCK_1D, fn, T, T, T, P, T, T, P, il ? "true" : "false");
    kiln_bundle_arg args[6];
    kiln_status st;
    for (int i = 0; i < 3; i++)
        if ((st = kiln_cg_value_arg(c, n->inputs[i], &args[i]))) return st;
    args[3] = kiln_cg_null_arg;
    if (pos && (st = kiln_cg_value_arg(c, n->inputs[3], &args[3]))) return st;
    if ((st = kiln_cg_value_arg(c, n->outputs[0], &args[4])) || (st = kiln_cg_bytes_arg(c, sh, sizeof sh, &args[5])))
        return st;
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 6);
}
