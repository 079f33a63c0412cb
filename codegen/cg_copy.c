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

/* The affine gather (kernels/copy.cuh) from x's storage to y's: per output dim (dims, row-major
 * over y's storage), the input index start + i * step (outside [0, in_dims): pad_bits) and its
 * element stride. */
static kiln_status gather_launch(cg *c, kiln_bundle_arg xa, kiln_bundle_arg ya, size_t es, int rank, const int64_t *dims,
                                 const int64_t *start, const int64_t *step, const int64_t *in_dims,
                                 const int64_t *in_strides, uint64_t pad_bits, const char *what, const char *yname) {
    const char *T = uint_of_size(es);
    if (!T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "element size %zu", es);
    int R = rank < 1 ? 1 : rank;
    int64_t total = 1;
    for (int d = 0; d < rank; d++) total *= dims[d];
    if (total == 0) return KILN_OK;
    int64_t sh[1 + 5 * KILN_MAX_RANK];
    sh[0] = total;
    for (int d = 0; d < R; d++) {
        bool scalar = rank == 0;
        sh[1 + d] = scalar ? 1 : dims[d];
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
              fn, c->group, yname, BLOCK_1D, fn, T, T, R, T, T, R);
    kiln_bundle_arg args[4] = {xa, ya};
    kiln_status st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(1 + 5 * R), &args[2]);
    if (st) return st;
    args[3] = (kiln_bundle_arg){KILN_ARG_SCALAR, (uint32_t)es, pad_bits};
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 4);
}

/* y = affine gather of x over y's logical dims (see gather_launch). */
static kiln_status emit_gather(cg *c, int xv, int yv, const int64_t *start, const int64_t *step,
                               const int64_t *in_dims, const int64_t *in_strides, uint64_t pad_bits,
                               const char *what) {
    const kiln_value *y = kiln_cg_val(c, yv);
    kiln_bundle_arg xa, ya;
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, xv, &xa)) || (st = kiln_cg_value_arg(c, yv, &ya))) return st;
    return gather_launch(c, xa, ya, kiln_dtype_size(y->dtype), y->rank, y->dims, start, step, in_dims, in_strides,
                         pad_bits, what, y->name);
}

/* ---------------------------------------------------------------- layouts -- */
/* Same bytes in NCHW and NHWC: C == 1 or H*W == 1 (select-layout stores such values NCHW). */
static bool layout_invariant(const kiln_value *v) {
    return v->rank == 4 && (v->dims[1] == 1 || (v->dims[2] == 1 && v->dims[3] == 1));
}
/* NHWC: the physical position of logical NCHW dim d is nhwc_pos[d]; its dims in storage order
 * are the logical ones taken in nhwc_dim order. */
static const int nhwc_pos[4] = {0, 3, 1, 2}, nhwc_dim[4] = {0, 2, 3, 1};

bool kiln_cg_node_nhwc(const kiln_node *n) {
    const char *l = kiln_attr_str(n, "kiln_layout", NULL);
    return l && !strcmp(l, "NHWC");
}

static bool stored_nhwc(const kiln_value *v) { return v->rank == 4 && v->layout == KILN_LAYOUT_NHWC; }

void kiln_cg_storage_strides(const kiln_value *v, int R, int64_t *strides) {
    int64_t s[KILN_MAX_RANK];
    if (stored_nhwc(v)) {
        s[1] = 1;
        s[3] = v->dims[1];
        s[2] = v->dims[3] * v->dims[1];
        s[0] = v->dims[2] * s[2];
    } else if (v->rank > 0) {
        kiln_strides(v->rank, v->dims, s);
    }
    for (int i = R - 1, j = v->rank - 1; i >= 0; i--, j--) strides[i] = j >= 0 && v->dims[j] != 1 ? s[j] : 0;
}

static bool transpose_dtype(kiln_dtype t) { return t == KILN_F32 || t == KILN_F16 || t == KILN_BF16; }

/* y [N][B][A] = (to) x [N][A][B] by the tiled transpose of kernels/copy.cuh (transpose_cvt): NCHW
 * <-> NHWC with an optional fp32 <-> fp16 / bf16 conversion. *done = false (nothing emitted) for
 * shapes or types it does not take; the caller falls back to the affine gather. */
static kiln_status emit_transpose(cg *c, kiln_bundle_arg xa, kiln_bundle_arg ya, int64_t N, int64_t A, int64_t B,
                                  kiln_dtype ti, kiln_dtype to, const char *what, const char *yname, bool *done) {
    *done = false;
    if (!transpose_dtype(ti) || !transpose_dtype(to) || N < 1 || A < 1 || B < 1 || N > 65535 ||
        A * B > ((int64_t)1 << 31) - 1)
        return KILN_OK;
    if (A <= 4 && B % 8 == 0) { /* an RGB input: two plain streams */
        char fn[64];
        kiln_cg_kernel_name(c, what, fn, sizeof fn);
        const int64_t groups = N * B / 8;
        kiln_cg_printf(&c->src,
                       "\n// %s: %s -> %s, [%lld][%lld][%lld] transposed, 8 columns a thread\nextern \"C\" __global__ void "
                       "__launch_bounds__(256) %s(const %s *x, %s *y) {\n    kiln::transpose_few_rows<%s, %s, %lld, %lld>(x, y, "
                       "%lldLL);\n}\n",
                       fn, c->group, yname, (long long)N, (long long)A, (long long)B, fn, kiln_cg_ctype(ti), kiln_cg_ctype(to),
                       kiln_cg_ctype(ti), kiln_cg_ctype(to), (long long)A, (long long)B, (long long)groups);
        kiln_bundle_arg args[2] = {xa, ya};
        *done = true;
        return kiln_cg_launch(c, fn, kiln_cg_grid_1d(groups), 1, 1, BLOCK_1D, args, 2);
    }
    /* tile: few channels on either side take the whole side and ~4096 elements */
    const int64_t E = 4096;
    int64_t WA, WB;
    if (A <= 32) WA = A, WB = E / A / 32 * 32, WB = WB < 32 ? 32 : WB > B ? B : WB;
    else if (B <= 32) WB = B, WA = E / B / 32 * 32, WA = WA < 32 ? 32 : WA > A ? A : WA;
    else WA = 32, WB = 128;
    if ((A + WA - 1) / WA > 65535) return KILN_OK;
    /* 16- or 8-byte stores where every group of V outputs is contiguous and aligned */
    const int64_t osz = (int64_t)kiln_dtype_size(to);
    int64_t V = 1;
    for (int64_t v = 16 / osz; v > 1 && V == 1; v /= 2)
        if ((A % v == 0 && WA % v == 0) || (WA == A && (A * B) % v == 0 && (A * WB) % v == 0)) V = v;
    /* 16-byte reads along B where every tile row splits into whole vectors */
    const int64_t rv = 16 / (int64_t)kiln_dtype_size(ti), RV = B % rv == 0 && WB % rv == 0 ? rv : 1;
    char fn[64];
    kiln_cg_kernel_name(c, what, fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s, [%lld][%lld][%lld] transposed, tile %lldx%lld\nextern \"C\" __global__ void "
                   "__launch_bounds__(256) %s(const %s *x, %s *y) {\n    kiln::transpose_cvt<%s, %s, %lld, %lld, %lld, "
                   "%lld, %lld, %lld>(x, y);\n}\n",
                   fn, c->group, yname, (long long)N, (long long)A, (long long)B, (long long)WA, (long long)WB, fn,
                   kiln_cg_ctype(ti), kiln_cg_ctype(to), kiln_cg_ctype(ti), kiln_cg_ctype(to), (long long)A,
                   (long long)B, (long long)WA, (long long)WB, (long long)V, (long long)RV);
    kiln_bundle_arg args[2] = {xa, ya};
    *done = true;
    return kiln_cg_launch(c, fn, (uint64_t)((B + WB - 1) / WB), (uint64_t)((A + WA - 1) / WA), (uint64_t)N, 256, args,
                          2);
}

/* The 4-D value v (logical dims) from one layout's storage `from` into the other's `to`. */
static kiln_status emit_layout_convert(cg *c, const kiln_value *v, kiln_bundle_arg from, kiln_bundle_arg to,
                                       bool to_nhwc) {
    const int64_t N = v->dims[0], C = v->dims[1], H = v->dims[2], W = v->dims[3];
    int64_t dims[4], zero[4] = {0, 0, 0, 0}, one[4] = {1, 1, 1, 1};
    bool done;
    kiln_status st = emit_transpose(c, from, to, N, to_nhwc ? C : H * W, to_nhwc ? H * W : C, v->dtype, v->dtype,
                                    to_nhwc ? "to_nhwc" : "to_nchw", v->name, &done);
    if (st || done) return st;
    if (to_nhwc) {
        int64_t d[4] = {N, H, W, C}, s[4] = {C * H * W, W, 1, H * W};
        memcpy(dims, d, sizeof d);
        return gather_launch(c, from, to, kiln_dtype_size(v->dtype), 4, dims, zero, one, dims, s, 0, "to_nhwc", v->name);
    }
    int64_t d[4] = {N, C, H, W}, s[4] = {H * W * C, 1, W * C, C};
    memcpy(dims, d, sizeof d);
    return gather_launch(c, from, to, kiln_dtype_size(v->dtype), 4, dims, zero, one, dims, s, 0, "to_nchw", v->name);
}

static kiln_status add_override(cg *c, int v, bool nhwc, kiln_bundle_arg *scratch) {
    const kiln_value *val = &c->g->values[v];
    if (c->n_ovr == 8) return kiln_errorf(KILN_ERR_UNSUPPORTED, "more than 8 layout conversions in one node");
    if (val->rank != 4) return kiln_errorf(KILN_ERR_INTERNAL, "layout conversion of a %d-D value", val->rank);
    uint64_t bytes = (uint64_t)kiln_cg_numel(val) * kiln_dtype_size(val->dtype);
    kiln_status st = kiln_cg_scratch(c, bytes ? bytes : 1, scratch);
    if (st) return st;
    c->ovr_v[c->n_ovr] = v;
    c->ovr_arg[c->n_ovr] = *scratch;
    c->ovr_val[c->n_ovr] = *val;
    c->ovr_val[c->n_ovr].layout = nhwc ? KILN_LAYOUT_NHWC : KILN_LAYOUT_NCHW;
    c->n_ovr++;
    return KILN_OK;
}

kiln_status kiln_cg_emit_with_layout(cg *c, const kiln_node *n, kiln_status (*emit)(cg *, const kiln_node *)) {
    int64_t mi = kiln_attr_int(n, "kiln_convert_input", 0), mo = kiln_attr_int(n, "kiln_convert_output", 0);
    c->n_ovr = 0;
    if (!mi && !mo) return emit(c, n);
    /* A single-output elementwise kernel reads every operand through its storage strides and
     * writes its output's storage order: it converts on the fly (one pass instead of two). */
    bool ew = n->op == KILN_OP_Fused ? !strcmp(kiln_attr_str(n, "kind", ""), "elementwise")
                                     : kiln_op_table[n->op].kind == KILN_KIND_ELEMENTWISE ||
                                           kiln_op_table[n->op].kind == KILN_KIND_BROADCAST;
    /* Not in place: reading element j while writing element i of the same storage would race. */
    if (ew && n->n_outputs == 1 && n->outputs[0] >= 0 && !kiln_node_is_view(n) && c->g->values[n->outputs[0]].alias_of < 0) {
        /* a Cast across layouts (the fp32 NCHW graph input to fp16 NHWC, an fp16 NHWC output
         * back to fp32 NCHW): the tiled transpose instead of the strided elementwise kernel */
        const kiln_value *x = n->n_inputs == 1 && n->inputs[0] >= 0 ? kiln_cg_val(c, n->inputs[0]) : NULL;
        const kiln_value *y = kiln_cg_val(c, n->outputs[0]);
        if (n->op == KILN_OP_Cast && x && x->rank == 4 && y->rank == 4 && !memcmp(x->dims, y->dims, sizeof x->dims[0] * 4) &&
            stored_nhwc(x) != stored_nhwc(y) && !layout_invariant(x)) {
            const int64_t N = x->dims[0], C = x->dims[1], HW = x->dims[2] * x->dims[3];
            const bool to_nhwc = stored_nhwc(y);
            kiln_bundle_arg xa, ya;
            bool done;
            kiln_status st;
            if ((st = kiln_cg_value_arg(c, n->inputs[0], &xa)) || (st = kiln_cg_value_arg(c, n->outputs[0], &ya))) return st;
            if ((st = emit_transpose(c, xa, ya, N, to_nhwc ? C : HW, to_nhwc ? HW : C, x->dtype, y->dtype,
                                     to_nhwc ? "cast_to_nhwc" : "cast_to_nchw", y->name, &done)) || done)
                return st;
        }
        return emit(c, n);
    }
    const bool nhwc = kiln_cg_node_nhwc(n);
    kiln_status st = KILN_OK;
    for (int i = 0; i < n->n_inputs && i < 63 && !st; i++) {
        int v = n->inputs[i];
        bool dup = false;
        for (int k = 0; k < c->n_ovr; k++) dup |= c->ovr_v[k] == v;
        if (!(mi >> i & 1) || v < 0 || dup) continue;
        kiln_bundle_arg from, to;
        if ((st = kiln_cg_value_arg(c, v, &from))) break;
        if ((st = add_override(c, v, nhwc, &to))) break;
        st = emit_layout_convert(c, &c->g->values[v], from, to, nhwc);
    }
    int first_out = c->n_ovr;
    for (int i = 0; i < n->n_outputs && i < 63 && !st; i++) {
        int v = n->outputs[i];
        if (!(mo >> i & 1) || v < 0) continue;
        if (!nhwc) st = kiln_errorf(KILN_ERR_INTERNAL, "kiln_convert_output on an NCHW node");
        kiln_bundle_arg to;
        if (!st) st = add_override(c, v, true, &to);
    }
    if (!st) st = emit(c, n);
    int n_ovr = c->n_ovr;
    c->n_ovr = 0; /* the outputs' own (NCHW) storage from here on */
    for (int k = first_out; k < n_ovr && !st; k++) {
        kiln_bundle_arg dst;
        if (!(st = kiln_cg_value_arg(c, c->ovr_v[k], &dst)))
            st = emit_layout_convert(c, &c->g->values[c->ovr_v[k]], c->ovr_arg[k], dst, false);
    }
    return st;
}

kiln_status kiln_cg_emit_concat(cg *c, const kiln_node *n) {
    const kiln_value *y = kiln_cg_val(c, n->outputs[0]);
    int64_t axis;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), y->rank, &axis))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
    /* NHWC: the same rows-at-an-offset copy over the storage order (the axis remapped); a
     * layout-invariant operand (C == 1 or H*W == 1) has the same bytes either way */
    bool nhwc = kiln_cg_node_nhwc(n) && y->rank == 4;
    int64_t pdims[KILN_MAX_RANK], paxis = nhwc ? nhwc_pos[axis] : axis;
    for (int i = 0; i < y->rank; i++) pdims[i] = nhwc ? y->dims[nhwc_dim[i]] : y->dims[i];
    int64_t outer = 1, inner = 1, at = 0;
    for (int i = 0; i < paxis; i++) outer *= pdims[i];
    for (int i = (int)paxis + 1; i < y->rank; i++) inner *= pdims[i];
    for (int i = 0; i < n->n_inputs; i++) {
        const kiln_value *x = kiln_cg_val(c, n->inputs[i]);
        if (x->dtype != y->dtype) return kiln_errorf(KILN_ERR_UNSUPPORTED, "mixed dtypes");
        if (nhwc != stored_nhwc(x) && !layout_invariant(x))
            return kiln_errorf(KILN_ERR_INTERNAL, "Concat input '%s' in another layout", x->name);
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

/* Constant integer input i of n (at most KILN_MAX_RANK values), -1 when absent or not known. */
static int const_input_ints(const cg *c, const kiln_node *n, int i, int64_t *out) {
    if (i >= n->n_inputs || n->inputs[i] < 0) return -1;
    return kiln_value_const_ints(kiln_cg_val(c, n->inputs[i]), out, 2 * KILN_MAX_RANK);
}

/* Split of an NHWC tensor: a slice along the remapped axis of the storage order. */
static kiln_status emit_split_nhwc(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]);
    int64_t axis;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), 4, &axis)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
    int64_t pin[4], xs[4], start[4] = {0, 0, 0, 0}, step[4] = {1, 1, 1, 1}, at = 0;
    for (int i = 0; i < 4; i++) pin[i] = x->dims[nhwc_dim[i]];
    kiln_strides(4, pin, xs);
    kiln_bundle_arg xa;
    kiln_status st = kiln_cg_value_arg(c, n->inputs[0], &xa);
    for (int o = 0; o < n->n_outputs && !st; o++) {
        if (n->outputs[o] < 0) continue;
        const kiln_value *y = kiln_cg_val(c, n->outputs[o]);
        int64_t pout[4];
        for (int i = 0; i < 4; i++) pout[i] = y->dims[nhwc_dim[i]];
        start[nhwc_pos[axis]] = at;
        kiln_bundle_arg ya;
        if (!(st = kiln_cg_value_arg(c, n->outputs[o], &ya)))
            st = gather_launch(c, xa, ya, kiln_dtype_size(y->dtype), 4, pout, start, step, pin, xs, 0, "split_nhwc", y->name);
        at += y->dims[axis];
    }
    return st;
}

kiln_status kiln_cg_emit_data_movement(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]);
    int64_t xs[KILN_MAX_RANK], start[KILN_MAX_RANK], step[KILN_MAX_RANK], ind[KILN_MAX_RANK], ins[KILN_MAX_RANK];
    if (n->op == KILN_OP_Split && kiln_cg_node_nhwc(n) && x->rank == 4) return emit_split_nhwc(c, n);
    if (stored_nhwc(x) && !layout_invariant(x)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
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

