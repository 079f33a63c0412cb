/*
 * cg_copy.c — Concat, data movement (Transpose, Slice, Pad, Expand, Split as affine gathers) and
 * views (which emit nothing but a copy when they are graph outputs).
 */
#include "codegen/cg_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* y[outer][row_y] at offset <- x[outer][row_x] (elements of esize bytes). */
static kiln_status emit_copy(cg *c, int xv, int yv, int64_t outer, int64_t row_x, int64_t row_y, int64_t offset,
                             const char *what) {
    size_t es = kiln_dtype_size(kiln_cg_val(c, yv)->dtype);
    const char *T = uint_of_size(es);
    if (!T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "element size %zu", es);
    char fn[64];
    kiln_cg_kernel_name(c, what, fn, sizeof fn);
    kiln_cg_printf(&c->src,
              "\n// %s: %s, %lld rows of %lld into rows of %lld at %lld\nextern \"C\" __global__ void "
              "__launch_bounds__(%d) %s(const %s *x, %s *y, kiln::i64 outer, kiln::i64 row_x, kiln::i64 row_y, "
              "kiln::i64 offset) {\n    kiln::copy_rows<%s>(x, y, outer, row_x, row_y, offset);\n}\n",
              fn, c->group, (long long)outer, (long long)row_x, (long long)row_y, (long long)offset, BLOCK_1D, fn, T, T,
              T);
    kiln_bundle_arg args[6];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, xv, &args[0])) || (st = kiln_cg_value_arg(c, yv, &args[1]))) return st;
    args[2] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)outer};
    args[3] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)row_x};
    args[4] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)row_y};
    args[5] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)offset};
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(outer * row_x), 1, 1, BLOCK_1D, args, 6);
}

kiln_status kiln_cg_emit_concat(cg *c, const kiln_node *n) {
    const kiln_value *y = kiln_cg_val(c, n->outputs[0]);
    if (y->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    int64_t axis;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), y->rank, &axis))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
    int64_t outer = 1, inner = 1, at = 0;
    for (int i = 0; i < axis; i++) outer *= y->dims[i];
    for (int i = (int)axis + 1; i < y->rank; i++) inner *= y->dims[i];
    for (int i = 0; i < n->n_inputs; i++) {
        const kiln_value *x = kiln_cg_val(c, n->inputs[i]);
        if (x->dtype != y->dtype) return kiln_errorf(KILN_ERR_UNSUPPORTED, "mixed dtypes");
        int64_t d = x->dims[axis];
        if (d > 0) {
            kiln_status st = emit_copy(c, n->inputs[i], n->outputs[0], outer, d * inner, y->dims[axis] * inner,
                                       at * inner, "concat");
            if (st) return st;
        }
        at += d;
    }
    return KILN_OK;
}

/* y = affine gather of x (kernels/copy.cuh): per output dim, the input index start + i * step
 * (outside [0, in_dims): pad_bits) and its element stride. */
static kiln_status emit_gather(cg *c, int xv, int yv, const int64_t *start, const int64_t *step,
                               const int64_t *in_dims, const int64_t *in_strides, uint64_t pad_bits,
                               const char *what) {
    const kiln_value *y = kiln_cg_val(c, yv);
    size_t es = kiln_dtype_size(y->dtype);
    const char *T = uint_of_size(es);
    if (!T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "element size %zu", es);
    int R = y->rank < 1 ? 1 : y->rank;
    int64_t total = kiln_cg_numel(y);
    if (total == 0) return KILN_OK;
    int64_t sh[1 + 5 * KILN_MAX_RANK];
    sh[0] = total;
    for (int d = 0; d < R; d++) {
        bool scalar = y->rank == 0;
        sh[1 + d] = scalar ? 1 : y->dims[d];
        sh[1 + R + d] = scalar ? 0 : start[d];
        sh[1 + 2 * R + d] = scalar ? 0 : step[d];
        sh[1 + 3 * R + d] = scalar ? 1 : in_dims[d];
        sh[1 + 4 * R + d] = scalar ? 0 : in_strides[d];
    }
    char fn[64];
    kiln_cg_kernel_name(c, what, fn, sizeof fn);
    kiln_cg_printf(&c->src,
              "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, %s *y, "
              "kiln::gather_shape<%d> s, %s pad) {\n    kiln::affine_gather<%s, %d>(x, y, s, pad);\n}\n",
              fn, c->group, y->name, BLOCK_1D, fn, T, T, R, T, T, R);
    kiln_bundle_arg args[4];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, xv, &args[0])) || (st = kiln_cg_value_arg(c, yv, &args[1])) ||
        (st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(1 + 5 * R), &args[2])))
        return st;
    args[3] = (kiln_bundle_arg){KILN_ARG_SCALAR, (uint32_t)es, pad_bits};
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 4);
}

/* Constant integer input i of n (at most KILN_MAX_RANK values), -1 when absent or not known. */
static int const_input_ints(const cg *c, const kiln_node *n, int i, int64_t *out) {
    if (i >= n->n_inputs || n->inputs[i] < 0) return -1;
    return kiln_value_const_ints(kiln_cg_val(c, n->inputs[i]), out, 2 * KILN_MAX_RANK);
}

kiln_status kiln_cg_emit_data_movement(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]);
    int64_t xs[KILN_MAX_RANK], start[KILN_MAX_RANK], step[KILN_MAX_RANK], ind[KILN_MAX_RANK], ins[KILN_MAX_RANK];
    if (x->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    kiln_strides(x->rank, x->dims, xs);
    for (int d = 0; d < x->rank; d++) start[d] = 0, step[d] = 1, ind[d] = x->dims[d], ins[d] = xs[d];
    switch (n->op) {
    case KILN_OP_Transpose: {
        const int64_t *perm;
        int np = kiln_attr_ints(n, "perm", &perm);
        for (int k = 0; k < x->rank; k++) {
            int64_t p = np == x->rank ? perm[k] : x->rank - 1 - k;
            if (p < 0 || p >= x->rank) return kiln_errorf(KILN_ERR_UNSUPPORTED, "bad perm");
            ind[k] = x->dims[p];
            ins[k] = xs[p];
        }
        return emit_gather(c, n->inputs[0], n->outputs[0], start, step, ind, ins, 0, "transpose");
    }
    case KILN_OP_Slice: {
        int64_t st_[2 * KILN_MAX_RANK], en[2 * KILN_MAX_RANK], ax[2 * KILN_MAX_RANK], sp[2 * KILN_MAX_RANK];
        int ns = const_input_ints(c, n, 1, st_), ne = const_input_ints(c, n, 2, en);
        int na = const_input_ints(c, n, 3, ax), nt = const_input_ints(c, n, 4, sp);
        if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nt >= 0 && nt != ns))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "Slice with starts/ends/axes/steps not known at build time");
        for (int i = 0; i < ns; i++) {
            int64_t a = na >= 0 ? ax[i] : i, dim, s0 = st_[i], stp = nt >= 0 ? sp[i] : 1;
            if (a < 0) a += x->rank;
            if (a < 0 || a >= x->rank || stp == 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "bad Slice axis or step");
            dim = x->dims[a];
            if (s0 < 0) s0 += dim;
            if (stp > 0) s0 = s0 < 0 ? 0 : (s0 > dim ? dim : s0);
            else s0 = s0 < 0 ? 0 : (s0 > dim - 1 ? dim - 1 : s0);
            start[a] = s0;
            step[a] = stp;
        }
        return emit_gather(c, n->inputs[0], n->outputs[0], start, step, ind, ins, 0, "slice");
    }
    case KILN_OP_Pad: {
        int64_t pads[2 * KILN_MAX_RANK], axes[KILN_MAX_RANK];
        if (strcmp(kiln_attr_str(n, "mode", "constant"), "constant"))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "Pad mode '%s'", kiln_attr_str(n, "mode", ""));
        int np = const_input_ints(c, n, 1, pads), na = const_input_ints(c, n, 3, axes);
        int nax = na >= 0 ? na : x->rank;
        if (np != 2 * nax) return kiln_errorf(KILN_ERR_UNSUPPORTED, "Pad with pads not known at build time");
        for (int i = 0; i < nax; i++) {
            int64_t a = na >= 0 ? axes[i] : i;
            if (a < 0) a += x->rank;
            if (a < 0 || a >= x->rank) return kiln_errorf(KILN_ERR_UNSUPPORTED, "bad Pad axis");
            start[a] = -pads[i];
        }
        uint64_t bits = 0;
        if (n->n_inputs > 2 && n->inputs[2] >= 0) {
            const kiln_value *cv = kiln_cg_val(c, n->inputs[2]);
            if (!cv->data || cv->data->numel != 1)
                return kiln_errorf(KILN_ERR_UNSUPPORTED, "Pad with a constant_value not known at build time");
            /* the value's bit pattern in x's dtype (the gather is type-agnostic) */
            if (cv->data->dtype != x->dtype || kiln_dtype_size(x->dtype) > sizeof bits)
                return kiln_errorf(KILN_ERR_UNSUPPORTED, "a pad value of dtype %s for %s", kiln_dtype_name(cv->data->dtype),
                                   kiln_dtype_name(x->dtype));
            memcpy(&bits, cv->data->data, kiln_dtype_size(x->dtype)); /* little-endian: low bytes */
        }
        return emit_gather(c, n->inputs[0], n->outputs[0], start, step, ind, ins, bits, "pad");
    }
    case KILN_OP_Expand: {
        const kiln_value *y = kiln_cg_val(c, n->outputs[0]);
        int64_t s2[KILN_MAX_RANK], st2[KILN_MAX_RANK], d2[KILN_MAX_RANK], i2[KILN_MAX_RANK];
        for (int k = y->rank - 1, j = x->rank - 1; k >= 0; k--, j--) {
            bool bc = j < 0 || x->dims[j] == 1;
            s2[k] = 0;
            st2[k] = bc ? 0 : 1;
            d2[k] = bc ? 1 : x->dims[j];
            i2[k] = bc ? 0 : xs[j];
        }
        return emit_gather(c, n->inputs[0], n->outputs[0], s2, st2, d2, i2, 0, "expand");
    }
    case KILN_OP_Split: {
        int64_t axis;
        if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), x->rank, &axis))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
        int64_t at = 0;
        for (int o = 0; o < n->n_outputs; o++) {
            if (n->outputs[o] < 0) continue;
            start[axis] = at;
            kiln_status st = emit_gather(c, n->inputs[0], n->outputs[o], start, step, ind, ins, 0, "split");
            if (st) return st;
            at += kiln_cg_val(c, n->outputs[o])->dims[axis];
        }
        return KILN_OK;
    }
    default: return kiln_errorf(KILN_ERR_UNSUPPORTED, "no GPU kernel for this op yet");
    }
}

/* A view whose output is a graph output: its bytes must land in the output binding. */
kiln_status kiln_cg_emit_view(cg *c, const kiln_node *n) {
    int yv = n->outputs[0];
    if (kiln_cg_io_index(c->g->outputs, c->g->n_outputs, yv) < 0) return KILN_OK;
    int64_t e = kiln_cg_numel(kiln_cg_val(c, yv));
    if (e == 0) return KILN_OK;
    return emit_copy(c, n->inputs[0], yv, 1, e, e, 0, "copy");
}

