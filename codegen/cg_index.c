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
