/* ops_shape.c — shape/dtype rules and CPU reference for shape manipulation and data movement:
 * Reshape, Flatten, Squeeze, Unsqueeze, Shape, Size, Concat, Split, Slice, Transpose, Expand,
 * Tile, Constant, ConstantOfShape, Range, DepthToSpace, SpaceToDepth, Trilu, EyeLike.
 *
 * These ops only move bytes, so the evaluator copies elements by their byte size and works for
 * every supported dtype (bool and f16 included) without numeric round trips. Shape inference
 * keeps symbolic dims flowing wherever an output dim is provably an input dim, and resolves
 * data-dependent shapes when the shape-like input is a known constant. */
#include "ops_common.h"

#include <float.h>

/* ------------------------------------------------------------ helpers -- */

#define TRY(expr)                        \
    do {                                 \
        kiln_status st_ = (expr);        \
        if (st_ != KILN_OK) return st_;  \
    } while (0)

/* A huge slice end means "to the end of the axis" (exporters write INT64_MAX or INT32_MAX-ish). */
#define SLICE_HUGE_END (((int64_t)1) << 62)

/* Fetch required input i, or fail cleanly when the model omitted it. */
static kiln_status get_in(const kiln_infer_ctx *c, int i, const char *what, const kiln_value **v)
{
    *v = NULL; /* every out-parameter is set on all paths (keeps -Wmaybe-uninitialized quiet) */
    if (i >= c->n_in || !c->in[i])
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "required input %d (%s) is missing", i, what);
    *v = c->in[i];
    return KILN_OK;
}

/* Optional input i, NULL when omitted. */
static const kiln_value *opt_in(const kiln_infer_ctx *c, int i)
{
    return i < c->n_in ? c->in[i] : NULL;
}

static kiln_status get_out(const kiln_infer_ctx *c, int i, kiln_value **v)
{
    *v = NULL;
    if (i >= c->n_out || !c->out[i])
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "required output %d is missing", i);
    *v = c->out[i];
    return KILN_OK;
}

/* Data inputs of movement ops may be any supported dtype; strings and exotic types are not. */
static kiln_status check_data_dtype(const kiln_node *n, kiln_dtype dt, const char *what)
{
    if (dt == KILN_UNDEF)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s has no known dtype", what);
    if (dt == KILN_STRING || !kiln_dtype_is_supported(dt) || kiln_dtype_size(dt) == 0)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "%s dtype %s (%d) is not supported", what,
                                kiln_dtype_name(dt), (int)dt);
    return KILN_OK;
}

/* Shape-like inputs (shape, axes, starts, repeats, ...) must be 1-D integer tensors. */
static kiln_status check_int_vector(const kiln_node *n, const kiln_value *v, const char *what)
{
    if (v->dtype != KILN_I64 && v->dtype != KILN_I32)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be int64 or int32, got %s", what,
                                kiln_dtype_name(v->dtype));
    if (v->rank >= 0 && v->rank != 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be 1-D, got rank %d", what, v->rank);
    return KILN_OK;
}

/* Statically known length of a 1-D value, -1 when unknown. */
static int64_t vec_len(const kiln_value *v)
{
    return (v->rank == 1 && v->dims[0] >= 0) ? v->dims[0] : -1;
}

/* Read a known int vector input (at most max entries). Returns count, -1 when unknown;
 * errors when the vector is longer than max. */
static kiln_status read_ints(const kiln_node *n, const kiln_value *v, const char *what, int64_t *buf,
                             int max, int *count)
{
    *count = -1;
    int k = kiln_value_const_ints(v, buf, max);
    if (k == -2)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "%s has more than %d entries", what, max);
    *count = k;
    return KILN_OK;
}

/* Write an output's complete type. dims/sym may be NULL (unknown dims / no symbols). */
static void set_type(kiln_value *v, kiln_dtype dt, int rank, const int64_t *dims, const int32_t *sym)
{
    v->dtype = dt;
    v->rank = rank;
    for (int i = 0; i < KILN_MAX_RANK; i++) {
        bool live = i < rank;
        v->dims[i] = live ? (dims ? dims[i] : -1) : 0;
        /* A symbol only describes a dynamic dim. */
        v->sym[i] = (live && sym && v->dims[i] < 0) ? sym[i] : 0;
    }
}

static kiln_status check_rank(const kiln_node *n, int64_t rank)
{
    if (rank > KILN_MAX_RANK)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "output rank %lld exceeds kiln's maximum %d",
                                (long long)rank, KILN_MAX_RANK);
    return KILN_OK;
}

/* Product of dims [lo, hi) of v as one dim: static when all are static, zero when any static
 * dim is zero, the lone dynamic dim (with its symbol) when the rest multiply to 1, else -1. */
static kiln_status dim_product(const kiln_node *n, const kiln_value *v, int lo, int hi, int64_t *d,
                               int32_t *s)
{
    *d = -1;
    *s = 0;
    int64_t prod = 1;
    int n_dyn = 0, dyn_at = -1;
    bool zero = false;
    for (int i = lo; i < hi; i++) {
        if (v->dims[i] < 0) {
            n_dyn++;
            dyn_at = i;
        } else if (v->dims[i] == 0) {
            zero = true;
        } else if (!kiln_mul_dims(prod, v->dims[i], &prod)) {
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "dim product overflows int64");
        }
    }
    *s = 0;
    if (zero)
        *d = 0;
    else if (n_dyn == 0)
        *d = prod;
    else if (n_dyn == 1 && prod == 1) {
        *d = -1;
        *s = v->sym[dyn_at];
    } else
        *d = -1;
    return KILN_OK;
}

/* Read an integer tensor's elements (evaluator side). */
static kiln_status tensor_ints(const kiln_node *n, const kiln_tensor *t, const char *what, int64_t *buf,
                               int64_t max, int64_t *count)
{
    *count = 0;
    if (!kiln_dtype_is_int(t->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be an integer tensor, got %s", what,
                                kiln_dtype_name(t->dtype));
    if (t->numel > max)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "%s has more than %lld entries", what,
                                (long long)max);
    for (int64_t i = 0; i < t->numel; i++)
        buf[i] = kiln_tensor_get_i64(t, i);
    *count = t->numel;
    return KILN_OK;
}

/* Check the evaluator's tensors against what infer produced: present and same dtype. */
static kiln_status eval_check(const kiln_node *n, kiln_tensor *const *in, int n_in, int need_in,
                              kiln_tensor *const *out, int n_out)
{
    if (n_in < need_in)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "evaluator passed %d inputs, need %d", n_in, need_in);
    for (int i = 0; i < need_in; i++)
        if (!in[i])
            return kiln_node_errorf(n, KILN_ERR_INTERNAL, "evaluator input %d is missing", i);
    if (n_out < 1 || !out[0])
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "evaluator output 0 is missing");
    return KILN_OK;
}

static inline void copy_elem(char *dst, const char *src, size_t es)
{
    /* Fixed-size memcpy compiles to one move and stays alignment-safe. */
    switch (es) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, es); break;
    }
}

/* The one copy engine behind Slice, Transpose, Expand, DepthToSpace and SpaceToDepth:
 * dst is dense row-major with dims[rank]; dst element at index idx comes from
 * src + base + sum(idx[d] * sstride[d]) (offsets and strides in elements, strides may be
 * zero or negative). */
static void strided_copy(char *dst, const char *src, size_t es, int rank, const int64_t *dims,
                         int64_t base, const int64_t *sstride)
{
    int64_t total = 1;
    for (int d = 0; d < rank; d++)
        total *= dims[d];
    if (total == 0)
        return;
    if (rank == 0) {
        copy_elem(dst, src + base * (int64_t)es, es);
        return;
    }
    int64_t inner = dims[rank - 1], istride = sstride[rank - 1];
    int64_t idx[KILN_MAX_RANK] = {0};
    int64_t off = base; /* source offset of the current row start */
    for (;;) {
        const char *s = src + off * (int64_t)es;
        if (istride == 1) {
            memcpy(dst, s, (size_t)inner * es);
        } else {
            for (int64_t j = 0; j < inner; j++)
                copy_elem(dst + (size_t)j * es, s + j * istride * (int64_t)es, es);
        }
        dst += (size_t)inner * es;
        /* Advance the outer multi-index (all dims but the last), updating off incrementally. */
        int d = rank - 2;
        for (; d >= 0; d--) {
            if (++idx[d] < dims[d]) {
                off += sstride[d];
                break;
            }
            off -= (dims[d] - 1) * sstride[d];
            idx[d] = 0;
        }
        if (d < 0)
            return;
    }
}

static void row_strides(int rank, const int64_t *dims, int64_t *st)
{
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        st[d] = s;
        s *= dims[d];
    }
}

/* ------------------------------------------------------------ Reshape -- */

kiln_status kiln_infer_Reshape(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x, *s;
    kiln_value *y;
    TRY(get_in(c, 0, "data", &x));
    TRY(get_in(c, 1, "shape", &s));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "data"));
    TRY(check_int_vector(n, s, "shape"));
    int64_t allowzero = kiln_attr_int(n, "allowzero", 0);

    int64_t sh[KILN_MAX_RANK];
    int cnt;
    TRY(read_ints(n, s, "shape", sh, KILN_MAX_RANK, &cnt));
    if (cnt < 0) {
        int64_t len = vec_len(s);
        TRY(check_rank(n, len));
        set_type(y, x->dtype, (int)len, NULL, NULL); /* rank -1 when even the length is unknown */
        return KILN_OK;
    }

    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK] = {0};
    int neg = -1;
    bool any_zero = false;
    for (int i = 0; i < cnt; i++) {
        int64_t v = sh[i];
        if (v == -1) {
            if (neg >= 0)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "shape has more than one -1 (%d and %d)", neg, i);
            neg = i;
            od[i] = -1;
        } else if (v < -1) {
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "shape[%d] = %lld is invalid", i, (long long)v);
        } else if (v == 0 && !allowzero) {
            /* 0 copies the input dim at the same position. */
            if (x->rank >= 0 && i >= x->rank)
                return kiln_node_errorf(n, KILN_ERR_SHAPE,
                                        "shape[%d] = 0 copies input dim %d, but the input has rank %d", i,
                                        i, x->rank);
            od[i] = x->rank >= 0 ? x->dims[i] : -1;
            os[i] = x->rank >= 0 ? x->sym[i] : 0;
        } else {
            if (v == 0)
                any_zero = true;
            od[i] = v;
        }
    }
    if (allowzero && any_zero && neg >= 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "allowzero shape may not contain both 0 and -1");

    if (x->rank >= 0) {
        /* Cancel symbolic dims present on both sides; what remains decides -1 and checks sizes. */
        bool used_in[KILN_MAX_RANK] = {false};
        int64_t in_static = 1, out_static = 1;
        bool in_zero = false, out_zero = false;
        int in_unknown = 0, out_unknown = 0, in_sym_at = -1;
        for (int i = 0; i < cnt; i++) {
            if (i == neg)
                continue;
            if (od[i] >= 0) {
                if (od[i] == 0)
                    out_zero = true;
                else if (!kiln_mul_dims(out_static, od[i], &out_static))
                    return kiln_node_errorf(n, KILN_ERR_LIMIT, "output size overflows int64");
                continue;
            }
            bool matched = false;
            for (int j = 0; j < x->rank && os[i] > 0; j++) {
                if (!used_in[j] && x->dims[j] < 0 && x->sym[j] == os[i]) {
                    used_in[j] = true;
                    matched = true;
                    break;
                }
            }
            if (!matched)
                out_unknown++;
        }
        for (int j = 0; j < x->rank; j++) {
            if (used_in[j])
                continue;
            if (x->dims[j] < 0) {
                in_unknown++;
                in_sym_at = x->sym[j] > 0 ? j : -1;
            } else if (x->dims[j] == 0) {
                in_zero = true;
            } else if (!kiln_mul_dims(in_static, x->dims[j], &in_static)) {
                return kiln_node_errorf(n, KILN_ERR_LIMIT, "input size overflows int64");
            }
        }
        if (in_zero)
            in_static = 0;
        if (out_zero)
            out_static = 0;
        if (neg >= 0) {
            if (in_unknown == 0 && out_unknown == 0) {
                if (out_static == 0)
                    return kiln_node_errorf(n, KILN_ERR_SHAPE,
                                            "cannot infer the -1 dim: the other dims multiply to 0");
                if (in_static % out_static != 0)
                    return kiln_node_errorf(n, KILN_ERR_SHAPE,
                                            "cannot reshape %lld elements: not divisible by %lld",
                                            (long long)in_static, (long long)out_static);
                od[neg] = in_static / out_static;
            } else if (in_unknown == 1 && out_unknown == 0 && in_sym_at >= 0 && in_static == out_static &&
                       in_static != 0) {
                od[neg] = -1; /* exactly the leftover symbolic input dim */
                os[neg] = x->sym[in_sym_at];
            }
        } else if (in_unknown == 0 && out_unknown == 0 && in_static != out_static) {
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "cannot reshape %lld elements into %lld",
                                    (long long)in_static, (long long)out_static);
        }
    }
    set_type(y, x->dtype, cnt, od, os);
    return KILN_OK;
}

/* Reshape-like ops keep the row-major byte order: a plain copy. */
static kiln_status eval_copy(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                             int n_out)
{
    TRY(eval_check(n, in, n_in, 1, out, n_out));
    if (out[0]->nbytes != in[0]->nbytes || out[0]->dtype != in[0]->dtype)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output buffer does not match the input size");
    if (in[0]->nbytes)
        memcpy(out[0]->data, in[0]->data, in[0]->nbytes);
    return KILN_OK;
}

kiln_status kiln_eval_Reshape(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                              int n_out)
{
    return eval_copy(n, in, n_in, out, n_out);
}

/* ------------------------------------------------------------ Flatten -- */

kiln_status kiln_infer_Flatten(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x;
    kiln_value *y;
    TRY(get_in(c, 0, "input", &x));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "input"));
    int64_t axis = kiln_attr_int(n, "axis", 1);
    if (x->rank < 0) {
        set_type(y, x->dtype, 2, NULL, NULL);
        return KILN_OK;
    }
    /* axis may equal rank (everything in the first group). */
    if (axis < -(int64_t)x->rank || axis > x->rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld out of range for rank %d", (long long)axis,
                                x->rank);
    if (axis < 0)
        axis += x->rank;
    int64_t d[2];
    int32_t s[2];
    TRY(dim_product(n, x, 0, (int)axis, &d[0], &s[0]));
    TRY(dim_product(n, x, (int)axis, x->rank, &d[1], &s[1]));
    set_type(y, x->dtype, 2, d, s);
    return KILN_OK;
}

kiln_status kiln_eval_Flatten(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                              int n_out)
{
    return eval_copy(n, in, n_in, out, n_out);
}

/* ------------------------------------------------------------ Squeeze -- */

/* Mark axes (normalized against rank) in flags; errors on out-of-range or repeated axes. */
static kiln_status mark_axes(const kiln_node *n, const int64_t *axes, int cnt, int rank, bool *flags)
{
    for (int i = 0; i < rank; i++)
        flags[i] = false;
    for (int i = 0; i < cnt; i++) {
        int64_t a;
        if (!kiln_norm_axis(axes[i], rank, &a))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld out of range for rank %d",
                                    (long long)axes[i], rank);
        if (flags[a])
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is repeated", (long long)axes[i]);
        flags[a] = true;
    }
    return KILN_OK;
}

kiln_status kiln_infer_Squeeze(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x, *ax = opt_in(c, 1);
    kiln_value *y;
    TRY(get_in(c, 0, "data", &x));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "data"));
    int64_t axes[KILN_MAX_RANK];
    int cnt = -1;
    if (ax) {
        TRY(check_int_vector(n, ax, "axes"));
        TRY(read_ints(n, ax, "axes", axes, KILN_MAX_RANK, &cnt));
    }
    if (x->rank < 0) {
        set_type(y, x->dtype, -1, NULL, NULL); /* unknown input rank: unknown output rank */
        return KILN_OK;
    }
    if (ax && cnt < 0) {
        int64_t len = vec_len(ax);
        set_type(y, x->dtype, (len >= 0 && len <= x->rank) ? x->rank - (int)len : -1, NULL, NULL);
        return KILN_OK;
    }
    bool drop[KILN_MAX_RANK];
    if (ax) {
        TRY(mark_axes(n, axes, cnt, x->rank, drop));
        for (int i = 0; i < x->rank; i++)
            if (drop[i] && x->dims[i] >= 0 && x->dims[i] != 1)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "cannot squeeze axis %d of size %lld", i,
                                        (long long)x->dims[i]);
    } else {
        /* No axes: every size-1 dim goes; a dynamic dim might be 1, so the rank is unknown. */
        for (int i = 0; i < x->rank; i++) {
            if (x->dims[i] < 0) {
                set_type(y, x->dtype, -1, NULL, NULL);
                return KILN_OK;
            }
            drop[i] = x->dims[i] == 1;
        }
    }
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (drop[i])
            continue;
        od[r] = x->dims[i];
        os[r] = x->sym[i];
        r++;
    }
    set_type(y, x->dtype, r, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_Squeeze(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                              int n_out)
{
    return eval_copy(n, in, n_in, out, n_out);
}

/* ---------------------------------------------------------- Unsqueeze -- */

kiln_status kiln_infer_Unsqueeze(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x, *ax;
    kiln_value *y;
    TRY(get_in(c, 0, "data", &x));
    TRY(get_in(c, 1, "axes", &ax));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "data"));
    TRY(check_int_vector(n, ax, "axes"));
    int64_t axes[KILN_MAX_RANK];
    int cnt;
    TRY(read_ints(n, ax, "axes", axes, KILN_MAX_RANK, &cnt));
    int64_t len = cnt >= 0 ? cnt : vec_len(ax);
    if (x->rank < 0 || len < 0) {
        set_type(y, x->dtype, -1, NULL, NULL);
        return KILN_OK;
    }
    int64_t r = x->rank + len;
    TRY(check_rank(n, r));
    if (cnt < 0) {
        set_type(y, x->dtype, (int)r, NULL, NULL); /* positions of the new 1s unknown */
        return KILN_OK;
    }
    bool ins[KILN_MAX_RANK];
    TRY(mark_axes(n, axes, cnt, (int)r, ins)); /* axes refer to the output rank */
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    for (int i = 0, j = 0; i < r; i++) {
        if (ins[i]) {
            od[i] = 1;
            os[i] = 0;
        } else {
            od[i] = x->dims[j];
            os[i] = x->sym[j];
            j++;
        }
    }
    set_type(y, x->dtype, (int)r, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_Unsqueeze(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                int n_out)
{
    return eval_copy(n, in, n_in, out, n_out);
}

/* -------------------------------------------------------------- Shape -- */

/* [start, end) of the dims Shape reports: negative counts from the back, then clamped. */
static void shape_range(const kiln_node *n, int rank, int64_t *lo, int64_t *hi)
{
    int64_t start = kiln_attr_int(n, "start", 0);
    int64_t end = kiln_attr_int(n, "end", rank);
    if (start < 0)
        start = start < -(int64_t)rank ? 0 : start + rank;
    if (end < 0)
        end = end < -(int64_t)rank ? 0 : end + rank;
    if (start > rank)
        start = rank;
    if (end > rank)
        end = rank;
    *lo = start;
    *hi = end > start ? end : start;
}

kiln_status kiln_infer_Shape(kiln_infer_ctx *c)
{
    const kiln_value *x;
    kiln_value *y;
    TRY(get_in(c, 0, "data", &x));
    TRY(get_out(c, 0, &y));
    int64_t d = -1;
    if (x->rank >= 0) {
        int64_t lo, hi;
        shape_range(c->node, x->rank, &lo, &hi);
        d = hi - lo;
    }
    set_type(y, KILN_I64, 1, &d, NULL);
    return KILN_OK;
}

kiln_status kiln_eval_Shape(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                            int n_out)
{
    TRY(eval_check(n, in, n_in, 1, out, n_out));
    int64_t lo, hi;
    shape_range(n, in[0]->rank, &lo, &hi);
    if (out[0]->dtype != KILN_I64 || out[0]->numel != hi - lo)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output buffer does not match the inferred shape");
    int64_t *o = out[0]->data;
    for (int64_t i = lo; i < hi; i++)
        o[i - lo] = in[0]->dims[i];
    return KILN_OK;
}

/* --------------------------------------------------------------- Size -- */

kiln_status kiln_infer_Size(kiln_infer_ctx *c)
{
    const kiln_value *x;
    kiln_value *y;
    TRY(get_in(c, 0, "data", &x));
    TRY(get_out(c, 0, &y));
    set_type(y, KILN_I64, 0, NULL, NULL);
    return KILN_OK;
}

kiln_status kiln_eval_Size(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                           int n_out)
{
    TRY(eval_check(n, in, n_in, 1, out, n_out));
    if (out[0]->dtype != KILN_I64 || out[0]->numel != 1)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output buffer is not an int64 scalar");
    *(int64_t *)out[0]->data = in[0]->numel;
    return KILN_OK;
}

/* ------------------------------------------------------------- Concat -- */

kiln_status kiln_infer_Concat(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    kiln_value *y;
    TRY(get_out(c, 0, &y));
    if (c->n_in < 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs at least one input");
    const kiln_attr *axis_attr = kiln_attr_find(n, "axis");
    if (!axis_attr)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "missing required attribute 'axis'");
    int64_t axis_raw = kiln_attr_int(n, "axis", 0);

    const kiln_value *first = NULL;
    for (int i = 0; i < c->n_in; i++) {
        const kiln_value *v;
        TRY(get_in(c, i, "inputs", &v));
        if (i == 0)
            TRY(check_data_dtype(n, v->dtype, "input 0"));
        else if (v->dtype != c->in[0]->dtype)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "input %d dtype %s differs from input 0 dtype %s", i,
                                    kiln_dtype_name(v->dtype), kiln_dtype_name(c->in[0]->dtype));
        if (v->rank >= 0 && !first)
            first = v;
        if (v->rank >= 0 && v->rank != first->rank)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "input %d has rank %d, input ranks differ (%d)", i,
                                    v->rank, first->rank);
    }
    kiln_dtype dt = c->in[0]->dtype;
    if (!first) {
        set_type(y, dt, -1, NULL, NULL);
        return KILN_OK;
    }
    int rank = first->rank;
    if (rank == 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "cannot concatenate scalars");
    int64_t axis;
    if (!kiln_norm_axis(axis_raw, rank, &axis))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld out of range for rank %d", (long long)axis_raw,
                                rank);

    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK] = {0};
    for (int d = 0; d < rank; d++) {
        od[d] = -1;
        if (d == axis)
            continue;
        /* Non-axis dims must agree: any static one decides, else any symbol. */
        for (int i = 0; i < c->n_in; i++) {
            const kiln_value *v = c->in[i];
            if (v->rank < 0)
                continue;
            if (v->dims[d] >= 0) {
                if (od[d] >= 0 && od[d] != v->dims[d])
                    return kiln_node_errorf(n, KILN_ERR_SHAPE,
                                            "input %d dim %d is %lld, expected %lld (only axis %lld may differ)",
                                            i, d, (long long)v->dims[d], (long long)od[d], (long long)axis);
                od[d] = v->dims[d];
            } else if (os[d] == 0) {
                os[d] = v->sym[d];
            }
        }
    }
    /* Axis dim: the sum, or a lone symbolic dim when every other input adds 0. */
    int64_t sum = 0;
    int n_dyn = 0;
    int32_t dyn_sym = 0;
    for (int i = 0; i < c->n_in; i++) {
        const kiln_value *v = c->in[i];
        if (v->rank < 0 || v->dims[axis] < 0) {
            n_dyn++;
            dyn_sym = v->rank < 0 ? 0 : v->sym[axis];
            continue;
        }
        if (v->dims[axis] > INT64_MAX - sum)
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "concatenated dim overflows int64");
        sum += v->dims[axis];
    }
    if (n_dyn == 0)
        od[axis] = sum;
    else if (n_dyn == 1 && sum == 0)
        os[axis] = dyn_sym;
    set_type(y, dt, rank, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_Concat(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                             int n_out)
{
    TRY(eval_check(n, in, n_in, n_in, out, n_out));
    kiln_tensor *y = out[0];
    int64_t axis;
    if (n_in < 1 || !kiln_norm_axis(kiln_attr_int(n, "axis", 0), y->rank, &axis))
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "bad axis at evaluation");
    size_t es = kiln_dtype_size(y->dtype);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= y->dims[d];
    for (int d = (int)axis + 1; d < y->rank; d++)
        inner *= y->dims[d];
    char *dst = y->data;
    for (int64_t o = 0; o < outer; o++) {
        for (int i = 0; i < n_in; i++) {
            size_t chunk = (size_t)(in[i]->dims[axis] * inner) * es;
            if (chunk) {
                memcpy(dst, (const char *)in[i]->data + (size_t)o * chunk, chunk);
                dst += chunk;
            }
        }
    }
    return KILN_OK;
}

/* -------------------------------------------------------------- Split -- */

/* Sizes of the n_out parts of a dim of size dim (>= 0 static, or -1 dynamic).
 * split: the explicit sizes (cnt entries) or NULL. Unknown sizes come back as -1. */
static kiln_status split_sizes(const kiln_node *n, int64_t dim, const int64_t *split, int cnt, int n_out,
                               int64_t *sizes)
{
    if (split) {
        if (cnt != n_out)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "split has %d entries for %d outputs", cnt, n_out);
        int64_t sum = 0;
        for (int i = 0; i < cnt; i++) {
            if (split[i] < 0)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "split[%d] = %lld is negative", i,
                                        (long long)split[i]);
            if (split[i] > INT64_MAX - sum)
                return kiln_node_errorf(n, KILN_ERR_LIMIT, "split sizes overflow int64");
            sum += split[i];
            sizes[i] = split[i];
        }
        if (dim >= 0 && sum != dim)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "split sizes sum to %lld, but the axis has %lld",
                                    (long long)sum, (long long)dim);
        return KILN_OK;
    }
    const kiln_attr *num = kiln_attr_find(n, "num_outputs");
    if (num) {
        int64_t k = kiln_attr_int(n, "num_outputs", 0);
        if (k < 1 || k != n_out)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "num_outputs = %lld but the node has %d outputs",
                                    (long long)k, n_out);
    }
    if (n_out < 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs at least one output");
    for (int i = 0; i < n_out; i++)
        sizes[i] = -1;
    if (dim < 0)
        return KILN_OK;
    if (dim % n_out == 0) {
        for (int i = 0; i < n_out; i++)
            sizes[i] = dim / n_out;
        return KILN_OK;
    }
    if (!num)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis of size %lld does not split evenly into %d outputs",
                                (long long)dim, n_out);
    /* num_outputs: ceil-sized chunks, the last one smaller. */
    int64_t chunk = dim / n_out + 1;
    int64_t last = dim - chunk * (n_out - 1);
    if (last < 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis of size %lld cannot split into %d chunks of %lld",
                                (long long)dim, n_out, (long long)chunk);
    for (int i = 0; i < n_out; i++)
        sizes[i] = i + 1 < n_out ? chunk : last;
    return KILN_OK;
}

kiln_status kiln_infer_Split(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x, *sp = opt_in(c, 1);
    TRY(get_in(c, 0, "input", &x));
    TRY(check_data_dtype(n, x->dtype, "input"));
    if (c->n_out < 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs at least one output");
    if (sp) {
        TRY(check_int_vector(n, sp, "split"));
        if (kiln_attr_find(n, "num_outputs"))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "split input and num_outputs may not both be given");
    }
    if (x->rank < 0) {
        for (int i = 0; i < c->n_out; i++)
            if (c->out[i])
                set_type(c->out[i], x->dtype, -1, NULL, NULL);
        return KILN_OK;
    }
    int64_t axis_raw = kiln_attr_int(n, "axis", 0), axis;
    if (!kiln_norm_axis(axis_raw, x->rank, &axis))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld out of range for rank %d", (long long)axis_raw,
                                x->rank);
    int64_t *sizes = malloc(sizeof(int64_t) * 2 * (size_t)c->n_out);
    if (!sizes)
        return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory");
    int64_t *split = sizes + c->n_out;
    kiln_status st = KILN_OK;
    int cnt = -1;
    if (sp) {
        cnt = kiln_value_const_ints(sp, split, c->n_out);
        if (cnt == -2)
            st = kiln_node_errorf(n, KILN_ERR_SHAPE, "split has more entries than the %d outputs", c->n_out);
    }
    if (st == KILN_OK) {
        if (sp && cnt < 0) {
            int64_t len = vec_len(sp);
            if (len >= 0 && len != c->n_out)
                st = kiln_node_errorf(n, KILN_ERR_SHAPE, "split has %lld entries for %d outputs",
                                      (long long)len, c->n_out);
            for (int i = 0; i < c->n_out; i++)
                sizes[i] = -1;
        } else {
            st = split_sizes(n, x->dims[axis], sp ? split : NULL, cnt, c->n_out, sizes);
        }
    }
    if (st == KILN_OK) {
        for (int i = 0; i < c->n_out; i++) {
            if (!c->out[i])
                continue;
            set_type(c->out[i], x->dtype, x->rank, x->dims, x->sym);
            c->out[i]->dims[axis] = sizes[i];
            /* A single output is the whole input, symbol included. */
            c->out[i]->sym[axis] = (c->n_out == 1 && sizes[i] < 0) ? x->sym[axis] : 0;
        }
    }
    free(sizes);
    return st;
}

kiln_status kiln_eval_Split(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                            int n_out)
{
    if (n_in < 1 || !in[0] || n_out < 1)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "evaluator passed no input or outputs");
    const kiln_tensor *x = in[0];
    int64_t axis;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), x->rank, &axis))
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "bad axis at evaluation");
    int64_t *sizes = malloc(sizeof(int64_t) * 2 * (size_t)n_out);
    if (!sizes)
        return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory");
    int64_t *split = sizes + n_out;
    kiln_status st = KILN_OK;
    int64_t cnt = 0;
    const kiln_tensor *sp = n_in > 1 ? in[1] : NULL;
    if (sp)
        st = tensor_ints(n, sp, "split", split, n_out, &cnt);
    if (st == KILN_OK)
        st = split_sizes(n, x->dims[axis], sp ? split : NULL, (int)cnt, n_out, sizes);
    if (st != KILN_OK) {
        free(sizes);
        return st;
    }
    size_t es = kiln_dtype_size(x->dtype);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= x->dims[d];
    for (int d = (int)axis + 1; d < x->rank; d++)
        inner *= x->dims[d];
    size_t in_row = (size_t)(x->dims[axis] * inner) * es;
    size_t pos = 0; /* byte offset of the current part within an input row */
    for (int i = 0; i < n_out; i++) {
        size_t chunk = (size_t)(sizes[i] * inner) * es;
        if (out[i]) {
            if (out[i]->nbytes != (size_t)outer * chunk) {
                free(sizes);
                return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output %d buffer size mismatch", i);
            }
            for (int64_t o = 0; o < outer && chunk; o++)
                memcpy((char *)out[i]->data + (size_t)o * chunk, (const char *)x->data + (size_t)o * in_row + pos,
                       chunk);
        }
        pos += chunk;
    }
    free(sizes);
    return KILN_OK;
}

/* -------------------------------------------------------------- Slice -- */

/* First index and element count of one sliced axis, by the ONNX spec's clamping rules (as
 * onnxruntime does). Note a negative-step start below -dim clamps to 0 and so takes element 0,
 * where numpy slicing would be empty; the spec text is followed. */
static void slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first, int64_t *count)
{
    if (dim == 0) { /* the clamp ranges below are empty for an empty axis */
        *first = 0;
        *count = 0;
        return;
    }
    if (start < 0)
        start += dim; /* no overflow: start < 0 <= dim */
    if (end < 0)
        end += dim;
    int64_t diff;
    if (step > 0) {
        start = start < 0 ? 0 : (start > dim ? dim : start);
        end = end < 0 ? 0 : (end > dim ? dim : end);
        diff = end - start;
    } else {
        start = start < 0 ? 0 : (start > dim - 1 ? dim - 1 : start);
        end = end < -1 ? -1 : (end > dim - 1 ? dim - 1 : end);
        diff = start - end;
    }
    int64_t mag = step > 0 ? step : (step == INT64_MIN ? INT64_MAX : -step);
    /* ceil(diff / mag) without forming diff + mag - 1 (mag may be huge). */
    *count = diff <= 0 ? 0 : diff / mag + (diff % mag != 0);
    *first = *count > 0 ? start : 0;
}

/* Per-axis slice parameters of the whole input: first index and step of each axis
 * (0 and 1 on untouched axes) and which axes are sliced. Validates steps and axes. */
typedef struct slice_spec {
    int cnt;
    int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK], steps[KILN_MAX_RANK];
} slice_spec;

static kiln_status slice_validate(const kiln_node *n, const slice_spec *sp, int rank, int *axis_of)
{
    /* axis_of[d]: the entry slicing axis d, -1 if none. */
    for (int d = 0; d < rank; d++)
        axis_of[d] = -1;
    for (int i = 0; i < sp->cnt; i++) {
        int64_t a;
        if (!kiln_norm_axis(sp->axes[i], rank, &a))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axes[%d] = %lld out of range for rank %d", i,
                                    (long long)sp->axes[i], rank);
        if (axis_of[a] >= 0)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is sliced twice", (long long)a);
        if (sp->steps[i] == 0)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "steps[%d] is 0", i);
        axis_of[a] = i;
    }
    return KILN_OK;
}

kiln_status kiln_infer_Slice(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x, *vs, *ve, *va = opt_in(c, 3), *vt = opt_in(c, 4);
    kiln_value *y;
    TRY(get_in(c, 0, "data", &x));
    TRY(get_in(c, 1, "starts", &vs));
    TRY(get_in(c, 2, "ends", &ve));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "data"));
    TRY(check_int_vector(n, vs, "starts"));
    TRY(check_int_vector(n, ve, "ends"));
    if (va)
        TRY(check_int_vector(n, va, "axes"));
    if (vt)
        TRY(check_int_vector(n, vt, "steps"));
    const kiln_value *vecs[4] = {vs, ve, va, vt};
    int64_t len = -1;
    for (int i = 0; i < 4; i++) {
        int64_t l = vecs[i] ? vec_len(vecs[i]) : -1;
        if (l >= 0 && len >= 0 && l != len)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "starts/ends/axes/steps lengths differ (%lld vs %lld)",
                                    (long long)len, (long long)l);
        if (l >= 0)
            len = l;
    }
    if (x->rank < 0) {
        set_type(y, x->dtype, -1, NULL, NULL);
        return KILN_OK;
    }
    if (len > x->rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%lld slice entries for rank %d", (long long)len, x->rank);

    slice_spec sp;
    int ks, ke, ka = -1, kt = -1;
    TRY(read_ints(n, vs, "starts", sp.starts, KILN_MAX_RANK, &ks));
    TRY(read_ints(n, ve, "ends", sp.ends, KILN_MAX_RANK, &ke));
    if (va)
        TRY(read_ints(n, va, "axes", sp.axes, KILN_MAX_RANK, &ka));
    if (vt)
        TRY(read_ints(n, vt, "steps", sp.steps, KILN_MAX_RANK, &kt));

    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        od[d] = x->dims[d];
        os[d] = x->sym[d];
    }
    if (len < 0 || (va && ka < 0)) {
        /* Which axes are sliced is unknown: every dim may change. */
        set_type(y, x->dtype, x->rank, NULL, NULL);
        return KILN_OK;
    }
    sp.cnt = (int)len;
    for (int i = 0; i < sp.cnt; i++) {
        if (!va)
            sp.axes[i] = i;
        if (!vt)
            sp.steps[i] = 1;
    }
    if (vt && kt < 0)
        for (int i = 0; i < sp.cnt; i++)
            sp.steps[i] = 1; /* placeholder so validation passes; dims go unknown below */
    int axis_of[KILN_MAX_RANK];
    TRY(slice_validate(n, &sp, x->rank, axis_of));
    bool params_known = ks >= 0 && ke >= 0 && !(vt && kt < 0);
    for (int d = 0; d < x->rank; d++) {
        int i = axis_of[d];
        if (i < 0)
            continue;
        os[d] = 0;
        if (!params_known) {
            od[d] = -1;
        } else if (x->dims[d] >= 0) {
            int64_t first;
            slice_axis(x->dims[d], sp.starts[i], sp.ends[i], sp.steps[i], &first, &od[d]);
        } else if ((sp.starts[i] == 0 && sp.steps[i] == 1 && sp.ends[i] >= SLICE_HUGE_END) ||
                   (sp.starts[i] == -1 && sp.steps[i] == -1 && sp.ends[i] <= -SLICE_HUGE_END)) {
            os[d] = x->sym[d]; /* the whole axis (forward or reversed): the dim, symbol included, passes through */
        } else {
            od[d] = -1;
        }
    }
    set_type(y, x->dtype, x->rank, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_Slice(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                            int n_out)
{
    TRY(eval_check(n, in, n_in, 3, out, n_out));
    const kiln_tensor *x = in[0];
    const kiln_tensor *ta = n_in > 3 ? in[3] : NULL, *tt = n_in > 4 ? in[4] : NULL;
    slice_spec sp;
    int64_t ks, ke, ka, kt;
    TRY(tensor_ints(n, in[1], "starts", sp.starts, KILN_MAX_RANK, &ks));
    TRY(tensor_ints(n, in[2], "ends", sp.ends, KILN_MAX_RANK, &ke));
    if (ks != ke)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "starts and ends lengths differ");
    sp.cnt = (int)ks;
    if (ta) {
        TRY(tensor_ints(n, ta, "axes", sp.axes, KILN_MAX_RANK, &ka));
        if (ka != ks)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axes length differs from starts");
    } else {
        for (int i = 0; i < sp.cnt; i++)
            sp.axes[i] = i;
    }
    if (tt) {
        TRY(tensor_ints(n, tt, "steps", sp.steps, KILN_MAX_RANK, &kt));
        if (kt != ks)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "steps length differs from starts");
    } else {
        for (int i = 0; i < sp.cnt; i++)
            sp.steps[i] = 1;
    }
    int axis_of[KILN_MAX_RANK];
    TRY(slice_validate(n, &sp, x->rank, axis_of));
    int64_t st[KILN_MAX_RANK], sst[KILN_MAX_RANK], dims[KILN_MAX_RANK], base = 0;
    row_strides(x->rank, x->dims, st);
    for (int d = 0; d < x->rank; d++) {
        int i = axis_of[d];
        int64_t first = 0, count = x->dims[d], step = 1;
        if (i >= 0) {
            step = sp.steps[i];
            slice_axis(x->dims[d], sp.starts[i], sp.ends[i], step, &first, &count);
        }
        if (count != out[0]->dims[d])
            return kiln_node_errorf(n, KILN_ERR_INTERNAL, "slice dim %d: %lld, buffer has %lld", d,
                                    (long long)count, (long long)out[0]->dims[d]);
        dims[d] = count;
        base += first * st[d];
        /* A step is only multiplied in when more than one element is taken (no overflow). */
        sst[d] = count > 1 ? step * st[d] : 0;
    }
    strided_copy(out[0]->data, x->data, kiln_dtype_size(x->dtype), x->rank, dims, base, sst);
    return KILN_OK;
}

/* ---------------------------------------------------------- Transpose -- */

/* The permutation (attribute or reversed default); errors when it is not one. */
static kiln_status transpose_perm(const kiln_node *n, int rank, int64_t *perm)
{
    const int64_t *p;
    int k = kiln_attr_ints(n, "perm", &p);
    if (k < 0) {
        for (int i = 0; i < rank; i++)
            perm[i] = rank - 1 - i;
        return KILN_OK;
    }
    if (k != rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "perm has %d entries for rank %d", k, rank);
    bool seen[KILN_MAX_RANK] = {false};
    for (int i = 0; i < k; i++) {
        int64_t a;
        /* Negative perm entries are not ONNX; reject them rather than guess. */
        if (p[i] < 0 || !kiln_norm_axis(p[i], rank, &a) || seen[a])
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "perm is not a permutation of 0..%d (entry %d = %lld)",
                                    rank - 1, i, (long long)p[i]);
        seen[a] = true;
        perm[i] = a;
    }
    return KILN_OK;
}

kiln_status kiln_infer_Transpose(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x;
    kiln_value *y;
    TRY(get_in(c, 0, "data", &x));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "data"));
    if (x->rank < 0) {
        const int64_t *p;
        int k = kiln_attr_ints(n, "perm", &p);
        TRY(check_rank(n, k));
        set_type(y, x->dtype, k, NULL, NULL); /* rank known from perm, else -1 */
        return KILN_OK;
    }
    int64_t perm[KILN_MAX_RANK], od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    TRY(transpose_perm(n, x->rank, perm));
    for (int i = 0; i < x->rank; i++) {
        od[i] = x->dims[perm[i]];
        os[i] = x->sym[perm[i]];
    }
    set_type(y, x->dtype, x->rank, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_Transpose(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                int n_out)
{
    TRY(eval_check(n, in, n_in, 1, out, n_out));
    const kiln_tensor *x = in[0];
    int64_t perm[KILN_MAX_RANK], st[KILN_MAX_RANK], sst[KILN_MAX_RANK];
    TRY(transpose_perm(n, x->rank, perm));
    if (out[0]->rank != x->rank)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output rank differs from the input");
    row_strides(x->rank, x->dims, st);
    for (int i = 0; i < x->rank; i++)
        sst[i] = st[perm[i]];
    strided_copy(out[0]->data, x->data, kiln_dtype_size(x->dtype), out[0]->rank, out[0]->dims, 0, sst);
    return KILN_OK;
}

/* ------------------------------------------------------------- Expand -- */

kiln_status kiln_infer_Expand(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x, *s;
    kiln_value *y;
    TRY(get_in(c, 0, "input", &x));
    TRY(get_in(c, 1, "shape", &s));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "input"));
    TRY(check_int_vector(n, s, "shape"));
    int64_t sh[KILN_MAX_RANK];
    int cnt;
    TRY(read_ints(n, s, "shape", sh, KILN_MAX_RANK, &cnt));
    if (cnt >= 0) {
        kiln_value target;
        memset(&target, 0, sizeof target);
        for (int i = 0; i < cnt; i++)
            if (sh[i] < 0)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "shape[%d] = %lld is negative", i, (long long)sh[i]);
        target.dtype = x->dtype;
        target.rank = cnt;
        for (int i = 0; i < cnt; i++)
            target.dims[i] = sh[i];
        target.producer = -1;
        const kiln_value *pair[2] = {x, &target};
        TRY(kiln_infer_broadcast(n, pair, 2, y));
        y->dtype = x->dtype;
        return KILN_OK;
    }
    /* Shape unknown: rank = max of both when the shape's length is known; an input dim
     * other than 1 survives broadcasting unchanged. */
    int64_t len = vec_len(s);
    if (len < 0 || x->rank < 0) {
        set_type(y, x->dtype, -1, NULL, NULL);
        return KILN_OK;
    }
    TRY(check_rank(n, len));
    int r = x->rank > len ? x->rank : (int)len;
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    for (int i = 0; i < r; i++) {
        int j = i - (r - x->rank);
        od[i] = -1;
        os[i] = 0;
        if (j >= 0 && x->dims[j] != 1) {
            od[i] = x->dims[j];
            os[i] = x->sym[j];
        }
    }
    set_type(y, x->dtype, r, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_Expand(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                             int n_out)
{
    TRY(eval_check(n, in, n_in, 1, out, n_out));
    kiln_tensor *y = out[0];
    if (y->rank < in[0]->rank)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output rank below input rank");
    int64_t sst[KILN_MAX_RANK];
    kiln_bcast_strides(in[0], y->rank, y->dims, sst);
    strided_copy(y->data, in[0]->data, kiln_dtype_size(y->dtype), y->rank, y->dims, 0, sst);
    return KILN_OK;
}

/* --------------------------------------------------------------- Tile -- */

kiln_status kiln_infer_Tile(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x, *rv;
    kiln_value *y;
    TRY(get_in(c, 0, "input", &x));
    TRY(get_in(c, 1, "repeats", &rv));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "input"));
    if (rv->dtype != KILN_I64)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "repeats must be int64, got %s", kiln_dtype_name(rv->dtype));
    TRY(check_int_vector(n, rv, "repeats"));
    int64_t len = vec_len(rv);
    if (x->rank >= 0 && len >= 0 && len != x->rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "repeats has %lld entries for rank %d", (long long)len,
                                x->rank);
    if (x->rank < 0) {
        TRY(check_rank(n, len));
        set_type(y, x->dtype, (int)len, NULL, NULL);
        return KILN_OK;
    }
    int64_t rep[KILN_MAX_RANK];
    int cnt;
    TRY(read_ints(n, rv, "repeats", rep, KILN_MAX_RANK, &cnt));
    if (cnt >= 0 && cnt != x->rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "repeats has %d entries for rank %d", cnt, x->rank);
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        od[i] = -1;
        os[i] = 0;
        if (cnt < 0)
            continue;
        if (rep[i] < 0)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "repeats[%d] = %lld is negative", i, (long long)rep[i]);
        if (rep[i] == 0) {
            od[i] = 0;
        } else if (x->dims[i] >= 0) {
            if (!kiln_mul_dims(x->dims[i], rep[i], &od[i]))
                return kiln_node_errorf(n, KILN_ERR_LIMIT, "tiled dim %d overflows int64", i);
        } else if (rep[i] == 1) {
            os[i] = x->sym[i];
        }
    }
    set_type(y, x->dtype, x->rank, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_Tile(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                           int n_out)
{
    TRY(eval_check(n, in, n_in, 2, out, n_out));
    const kiln_tensor *x = in[0];
    kiln_tensor *y = out[0];
    size_t es = kiln_dtype_size(x->dtype);
    int r = x->rank;
    if (y->numel == 0)
        return KILN_OK;
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return KILN_OK;
    }
    for (int d = 0; d < r; d++)
        if (x->dims[d] == 0 || y->dims[d] % x->dims[d] != 0)
            return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output dim %d is not a multiple of the input", d);
    int64_t st[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0};
    row_strides(r, x->dims, st);
    /* Walk output rows (all dims but the last); each row is the matching input row repeated. */
    size_t in_row = (size_t)x->dims[r - 1] * es;
    int64_t reps = y->dims[r - 1] / x->dims[r - 1];
    char *dst = y->data;
    for (;;) {
        int64_t off = 0;
        for (int d = 0; d < r - 1; d++)
            off += (idx[d] % x->dims[d]) * st[d];
        const char *src = (const char *)x->data + (size_t)off * es;
        for (int64_t k = 0; k < reps; k++) {
            memcpy(dst, src, in_row);
            dst += in_row;
        }
        int d = r - 2;
        for (; d >= 0; d--) {
            if (++idx[d] < y->dims[d])
                break;
            idx[d] = 0;
        }
        if (d < 0)
            break;
    }
    return KILN_OK;
}

/* ----------------------------------------------------------- Constant -- */

/* The attribute holding the constant; errors when there is none, several, or an unsupported one. */
static kiln_status constant_attr(const kiln_node *n, const kiln_attr **out)
{
    *out = NULL;
    static const char *const unsupported[] = {"value_string", "value_strings", "sparse_value"};
    static const char *const supported[] = {"value", "value_float", "value_floats", "value_int", "value_ints"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        if (kiln_attr_find(n, unsupported[i]))
            return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "Constant with '%s' is not supported",
                                    unsupported[i]);
    const kiln_attr *found = NULL;
    for (size_t i = 0; i < sizeof supported / sizeof *supported; i++) {
        const kiln_attr *a = kiln_attr_find(n, supported[i]);
        if (!a)
            continue;
        if (found)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "Constant has both '%s' and '%s'", found->name, a->name);
        found = a;
    }
    if (!found)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "Constant has no value attribute");
    bool ok = false;
    if (!strcmp(found->name, "value"))
        ok = found->type == KILN_ATTR_TENSOR && found->t;
    else if (!strcmp(found->name, "value_float"))
        ok = found->type == KILN_ATTR_FLOAT;
    else if (!strcmp(found->name, "value_int"))
        ok = found->type == KILN_ATTR_INT;
    else if (!strcmp(found->name, "value_floats"))
        ok = found->type == KILN_ATTR_FLOATS && found->n >= 0 && (found->floats || found->n == 0);
    else
        ok = found->type == KILN_ATTR_INTS && found->n >= 0 && (found->ints || found->n == 0);
    if (!ok)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "Constant attribute '%s' has the wrong type", found->name);
    if (found->type == KILN_ATTR_TENSOR) {
        kiln_dtype dt = found->t->dtype;
        if (dt == KILN_STRING || !kiln_dtype_is_supported(dt) || kiln_dtype_size(dt) == 0)
            return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "Constant tensor dtype %s (%d) is not supported",
                                    kiln_dtype_name(dt), (int)dt);
    }
    *out = found;
    return KILN_OK;
}

kiln_status kiln_infer_Constant(kiln_infer_ctx *c)
{
    kiln_value *y;
    const kiln_attr *a;
    TRY(get_out(c, 0, &y));
    TRY(constant_attr(c->node, &a));
    int64_t len = a->n;
    switch (a->type) {
    case KILN_ATTR_TENSOR: set_type(y, a->t->dtype, a->t->rank, a->t->dims, NULL); break;
    case KILN_ATTR_FLOAT: set_type(y, KILN_F32, 0, NULL, NULL); break;
    case KILN_ATTR_INT: set_type(y, KILN_I64, 0, NULL, NULL); break;
    case KILN_ATTR_FLOATS: set_type(y, KILN_F32, 1, &len, NULL); break;
    default: set_type(y, KILN_I64, 1, &len, NULL); break;
    }
    return KILN_OK;
}

kiln_status kiln_eval_Constant(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                               int n_out)
{
    (void)in;
    (void)n_in;
    if (n_out < 1 || !out[0])
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "evaluator output 0 is missing");
    const kiln_attr *a;
    TRY(constant_attr(n, &a));
    kiln_tensor *y = out[0];
    size_t want;
    const void *src;
    switch (a->type) {
    case KILN_ATTR_TENSOR: want = a->t->nbytes; src = a->t->data; break;
    case KILN_ATTR_FLOAT: want = sizeof(float); src = &a->f; break;
    case KILN_ATTR_INT: want = sizeof(int64_t); src = &a->i; break;
    case KILN_ATTR_FLOATS: want = (size_t)a->n * sizeof(float); src = a->floats; break;
    default: want = (size_t)a->n * sizeof(int64_t); src = a->ints; break;
    }
    if (y->nbytes != want)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output buffer does not match the constant");
    if (want)
        memcpy(y->data, src, want);
    return KILN_OK;
}

/* ---------------------------------------------------- ConstantOfShape -- */

/* The fill value: the 'value' tensor (one element) or f32 0. */
static kiln_status cos_value(const kiln_node *n, const kiln_tensor **t)
{
    *t = NULL;
    if (!kiln_attr_find(n, "value"))
        return KILN_OK;
    const kiln_tensor *v = kiln_attr_tensor(n, "value");
    if (!v)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "attribute 'value' must be a tensor");
    if (v->numel != 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "'value' must hold exactly one element, has %lld",
                                (long long)v->numel);
    if (v->dtype == KILN_STRING || !kiln_dtype_is_supported(v->dtype) || kiln_dtype_size(v->dtype) == 0)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "'value' dtype %s (%d) is not supported",
                                kiln_dtype_name(v->dtype), (int)v->dtype);
    *t = v;
    return KILN_OK;
}

kiln_status kiln_infer_ConstantOfShape(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *s;
    kiln_value *y;
    const kiln_tensor *v;
    TRY(get_in(c, 0, "input", &s));
    TRY(get_out(c, 0, &y));
    TRY(cos_value(n, &v));
    if (s->dtype != KILN_I64)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "shape input must be int64, got %s", kiln_dtype_name(s->dtype));
    TRY(check_int_vector(n, s, "shape input"));
    kiln_dtype dt = v ? v->dtype : KILN_F32;
    int64_t sh[KILN_MAX_RANK];
    int cnt;
    TRY(read_ints(n, s, "shape input", sh, KILN_MAX_RANK, &cnt));
    if (cnt < 0) {
        int64_t len = vec_len(s);
        TRY(check_rank(n, len));
        set_type(y, dt, (int)len, NULL, NULL);
        return KILN_OK;
    }
    for (int i = 0; i < cnt; i++)
        if (sh[i] < 0)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "shape[%d] = %lld is negative", i, (long long)sh[i]);
    set_type(y, dt, cnt, sh, NULL);
    return KILN_OK;
}

kiln_status kiln_eval_ConstantOfShape(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                      kiln_tensor *const *out, int n_out)
{
    TRY(eval_check(n, in, n_in, 1, out, n_out));
    const kiln_tensor *v;
    TRY(cos_value(n, &v));
    kiln_tensor *y = out[0];
    if (!v) {
        memset(y->data, 0, y->nbytes); /* default: f32 zeros */
        return KILN_OK;
    }
    size_t es = kiln_dtype_size(y->dtype);
    if (y->dtype != v->dtype)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output dtype differs from 'value'");
    char *dst = y->data;
    for (int64_t i = 0; i < y->numel; i++)
        copy_elem(dst + (size_t)i * es, v->data, es);
    return KILN_OK;
}

/* -------------------------------------------------------------- Range -- */

static kiln_status range_check_scalar(const kiln_node *n, const kiln_value *v, const char *what)
{
    if (v->rank > 1 || (v->rank == 1 && v->dims[0] >= 0 && v->dims[0] != 1))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be a scalar", what);
    return KILN_OK;
}

/* Element count of Range(start, limit, delta), all given as tensors with one element. */
static kiln_status range_count(const kiln_node *n, const kiln_tensor *ts, const kiln_tensor *tl,
                               const kiln_tensor *td, int64_t *count)
{
    *count = 0;
    kiln_dtype dt = ts->dtype;
    if (kiln_dtype_is_int(dt)) {
        int64_t s = kiln_tensor_get_i64(ts, 0), l = kiln_tensor_get_i64(tl, 0), d = kiln_tensor_get_i64(td, 0);
        if (d == 0)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "delta is 0");
        if ((d > 0 && l <= s) || (d < 0 && l >= s)) {
            *count = 0;
            return KILN_OK;
        }
        /* |l - s| computed in uint64 cannot overflow; the count then fits int64 when d != ±1 or the
         * span does. */
        uint64_t span = d > 0 ? (uint64_t)l - (uint64_t)s : (uint64_t)s - (uint64_t)l;
        uint64_t mag = d > 0 ? (uint64_t)d : (uint64_t)0 - (uint64_t)d;
        uint64_t k = span / mag + (span % mag != 0);
        if (k > (uint64_t)INT64_MAX)
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "range has too many elements");
        *count = (int64_t)k;
        return KILN_OK;
    }
    double s = kiln_tensor_get(ts, 0), l = kiln_tensor_get(tl, 0), d = kiln_tensor_get(td, 0);
    if (d == 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "delta is 0");
    double k = ceil((l - s) / d);
    if (isnan(k))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "range count is NaN");
    if (k <= 0) {
        *count = 0;
        return KILN_OK;
    }
    if (!(k < 9.0e18))
        return kiln_node_errorf(n, KILN_ERR_LIMIT, "range has too many elements");
    *count = (int64_t)k;
    return KILN_OK;
}

kiln_status kiln_infer_Range(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *v[3];
    kiln_value *y;
    static const char *const names[3] = {"start", "limit", "delta"};
    for (int i = 0; i < 3; i++) {
        TRY(get_in(c, i, names[i], &v[i]));
        TRY(range_check_scalar(n, v[i], names[i]));
    }
    TRY(get_out(c, 0, &y));
    kiln_dtype dt = v[0]->dtype;
    TRY(check_data_dtype(n, dt, "start"));
    if (dt == KILN_BOOL)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "Range does not take bool");
    for (int i = 1; i < 3; i++)
        if (v[i]->dtype != dt)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s dtype %s differs from start dtype %s", names[i],
                                    kiln_dtype_name(v[i]->dtype), kiln_dtype_name(dt));
    int64_t stash = kiln_attr_int(n, "stash_type", 1);
    if (stash != KILN_F32 && stash != KILN_F64)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "stash_type %lld must be 1 (float) or 11 (double)",
                                (long long)stash);
    int64_t count = -1;
    if (v[0]->data && v[1]->data && v[2]->data) {
        for (int i = 0; i < 3; i++)
            if (v[i]->data->numel != 1)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must hold one element", names[i]);
        TRY(range_count(n, v[0]->data, v[1]->data, v[2]->data, &count));
    }
    set_type(y, dt, 1, &count, NULL);
    return KILN_OK;
}

kiln_status kiln_eval_Range(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                            int n_out)
{
    TRY(eval_check(n, in, n_in, 3, out, n_out));
    kiln_tensor *y = out[0];
    for (int i = 0; i < 3; i++)
        if (in[i]->numel != 1 || in[i]->dtype != y->dtype)
            return kiln_node_errorf(n, KILN_ERR_INTERNAL, "Range input %d is not a matching scalar", i);
    int64_t count;
    TRY(range_count(n, in[0], in[1], in[2], &count));
    if (count != y->numel)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output buffer does not match the range length");
    if (kiln_dtype_is_int(y->dtype)) {
        /* start + i*delta stays between start and limit, so it fits; step with wrapping-free adds. */
        int64_t s = kiln_tensor_get_i64(in[0], 0), d = kiln_tensor_get_i64(in[2], 0);
        int64_t val = s;
        for (int64_t i = 0; i < count; i++) {
            kiln_tensor_set_i64(y, i, val);
            if (i + 1 < count)
                val += d;
        }
        return KILN_OK;
    }
    double s = kiln_tensor_get(in[0], 0), d = kiln_tensor_get(in[2], 0);
    bool half = y->dtype == KILN_F16 || y->dtype == KILN_BF16;
    bool stash_f32 = kiln_attr_int(n, "stash_type", 1) == KILN_F32;
    if (y->dtype == KILN_F32) {
        float *o = y->data;
        for (int64_t i = 0; i < count; i++)
            o[i] = (float)(s + (double)i * d);
    } else if (half && stash_f32) {
        /* stash_type float: the low-precision inputs are widened to f32 and computed there. */
        float fs = (float)s, fd = (float)d;
        for (int64_t i = 0; i < count; i++)
            kiln_tensor_set(y, i, (double)(fs + (float)i * fd));
    } else {
        for (int64_t i = 0; i < count; i++)
            kiln_tensor_set(y, i, s + (double)i * d);
    }
    return KILN_OK;
}

/* ------------------------------------------------ DepthToSpace / SpaceToDepth -- */

static kiln_status block_params(const kiln_node *n, int64_t *b, bool *crd)
{
    *b = 1;
    *crd = false;
    if (!kiln_attr_find(n, "blocksize"))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "missing required attribute 'blocksize'");
    *b = kiln_attr_int(n, "blocksize", 0);
    if (*b < 1 || *b > (int64_t)1 << 20)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "blocksize %lld is out of range", (long long)*b);
    const char *mode = kiln_attr_str(n, "mode", "DCR");
    if (!strcmp(mode, "DCR"))
        *crd = false;
    else if (!strcmp(mode, "CRD"))
        *crd = true;
    else
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "mode '%s' must be DCR or CRD", mode);
    return KILN_OK;
}

/* to_space: DepthToSpace, else SpaceToDepth. */
static kiln_status infer_block(kiln_infer_ctx *c, bool to_space)
{
    const kiln_node *n = c->node;
    const kiln_value *x;
    kiln_value *y;
    int64_t b;
    bool crd;
    TRY(get_in(c, 0, "input", &x));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "input"));
    TRY(block_params(n, &b, &crd));
    if (x->rank < 0) {
        set_type(y, x->dtype, 4, NULL, NULL);
        return KILN_OK;
    }
    if (x->rank != 4)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input must be 4-D (N, C, H, W), got rank %d", x->rank);
    int64_t bb = b * b; /* b <= 2^20, no overflow */
    int64_t od[4] = {x->dims[0], -1, -1, -1};
    int32_t os[4] = {x->sym[0], 0, 0, 0};
    if (to_space) {
        if (x->dims[1] >= 0) {
            if (x->dims[1] % bb != 0)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "channels %lld not divisible by blocksize^2 = %lld",
                                        (long long)x->dims[1], (long long)bb);
            od[1] = x->dims[1] / bb;
        }
        for (int d = 2; d < 4; d++)
            if (x->dims[d] >= 0 && !kiln_mul_dims(x->dims[d], b, &od[d]))
                return kiln_node_errorf(n, KILN_ERR_LIMIT, "output dim overflows int64");
    } else {
        if (x->dims[1] >= 0 && !kiln_mul_dims(x->dims[1], bb, &od[1]))
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "output dim overflows int64");
        for (int d = 2; d < 4; d++) {
            if (x->dims[d] < 0)
                continue;
            if (x->dims[d] % b != 0)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "dim %d (%lld) not divisible by blocksize %lld", d,
                                        (long long)x->dims[d], (long long)b);
            od[d] = x->dims[d] / b;
        }
    }
    set_type(y, x->dtype, 4, od, os);
    return KILN_OK;
}

kiln_status kiln_infer_DepthToSpace(kiln_infer_ctx *c) { return infer_block(c, true); }
kiln_status kiln_infer_SpaceToDepth(kiln_infer_ctx *c) { return infer_block(c, false); }

kiln_status kiln_eval_DepthToSpace(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                   kiln_tensor *const *out, int n_out)
{
    TRY(eval_check(n, in, n_in, 1, out, n_out));
    const kiln_tensor *x = in[0];
    int64_t b;
    bool crd;
    TRY(block_params(n, &b, &crd));
    if (x->rank != 4)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "input is not 4-D");
    int64_t N = x->dims[0], C = x->dims[1] / (b * b), H = x->dims[2], W = x->dims[3];
    /* Output viewed as [N, C, H, b(i), W, b(j)]; source channel is (i*b + j)*C + c (DCR) or
     * c*b*b + i*b + j (CRD). Strides below are in input elements. */
    int64_t hw = H * W;
    int64_t dims[6] = {N, C, H, b, W, b};
    int64_t sst[6];
    sst[0] = x->dims[1] * hw;
    sst[2] = W;
    sst[4] = 1;
    if (crd) {
        sst[1] = b * b * hw;
        sst[3] = b * hw;
        sst[5] = hw;
    } else {
        sst[1] = hw;
        sst[3] = b * C * hw;
        sst[5] = C * hw;
    }
    strided_copy(out[0]->data, x->data, kiln_dtype_size(x->dtype), 6, dims, 0, sst);
    return KILN_OK;
}

kiln_status kiln_eval_SpaceToDepth(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                   kiln_tensor *const *out, int n_out)
{
    TRY(eval_check(n, in, n_in, 1, out, n_out));
    const kiln_tensor *x = in[0];
    int64_t b;
    bool crd;
    TRY(block_params(n, &b, &crd));
    if (x->rank != 4)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "input is not 4-D");
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t Ho = H / b, Wo = W / b;
    /* Output channel (i*b + j)*C + c at (h, w) takes input [n, c, h*b + i, w*b + j]: view the
     * output as [N, b(i), b(j), C, Ho, Wo]. */
    int64_t dims[6] = {N, b, b, C, Ho, Wo};
    int64_t sst[6] = {C * H * W, W, 1, H * W, b * W, b};
    strided_copy(out[0]->data, x->data, kiln_dtype_size(x->dtype), 6, dims, 0, sst);
    return KILN_OK;
}

/* -------------------------------------------------------------- Trilu -- */

kiln_status kiln_infer_Trilu(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x, *k = opt_in(c, 1);
    kiln_value *y;
    TRY(get_in(c, 0, "input", &x));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "input"));
    if (x->rank >= 0 && x->rank < 2)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input must have rank >= 2, got %d", x->rank);
    if (k) {
        if (k->dtype != KILN_I64)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "k must be int64, got %s", kiln_dtype_name(k->dtype));
        TRY(range_check_scalar(n, k, "k"));
    }
    int64_t upper = kiln_attr_int(n, "upper", 1);
    if (upper != 0 && upper != 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "upper must be 0 or 1, got %lld", (long long)upper);
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

kiln_status kiln_eval_Trilu(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                            int n_out)
{
    TRY(eval_check(n, in, n_in, 1, out, n_out));
    const kiln_tensor *x = in[0];
    kiln_tensor *y = out[0];
    if (x->rank < 2 || y->nbytes != x->nbytes)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output buffer does not match the input");
    int64_t k = 0;
    if (n_in > 1 && in[1]) {
        if (in[1]->numel != 1)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "k must hold one element");
        k = kiln_tensor_get_i64(in[1], 0);
    }
    bool upper = kiln_attr_int(n, "upper", 1) != 0;
    size_t es = kiln_dtype_size(x->dtype);
    int64_t rows = x->dims[x->rank - 2], cols = x->dims[x->rank - 1];
    int64_t mats = (rows > 0 && cols > 0) ? x->numel / (rows * cols) : 0;
    const char *src = x->data;
    char *dst = y->data;
    /* Zero bytes are the zero of every supported dtype. */
    memset(dst, 0, y->nbytes);
    for (int64_t m = 0; m < mats; m++) {
        for (int64_t i = 0; i < rows; i++) {
            /* Kept columns: j - i >= k (upper) or j - i <= k (lower), as a clamped [lo, hi). */
            int64_t lo, hi;
            if (upper) {
                lo = k > cols ? cols : (k < -rows ? 0 : i + k); /* clamp before adding (no overflow) */
                lo = lo < 0 ? 0 : (lo > cols ? cols : lo);
                hi = cols;
            } else {
                lo = 0;
                hi = k > cols ? cols : (k < -rows ? 0 : i + k + 1);
                hi = hi < 0 ? 0 : (hi > cols ? cols : hi);
            }
            size_t row = (size_t)((m * rows + i) * cols);
            if (hi > lo)
                memcpy(dst + (row + (size_t)lo) * es, src + (row + (size_t)lo) * es, (size_t)(hi - lo) * es);
        }
    }
    return KILN_OK;
}

/* ------------------------------------------------------------ EyeLike -- */

static kiln_status eyelike_dtype(const kiln_node *n, kiln_dtype in_dt, kiln_dtype *dt)
{
    *dt = in_dt;
    if (!kiln_attr_find(n, "dtype")) {
        *dt = in_dt;
    } else {
        int64_t v = kiln_attr_int(n, "dtype", 0);
        if (v < 1 || v > 64)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "dtype %lld is not a tensor type", (long long)v);
        *dt = (kiln_dtype)v;
    }
    if (*dt == KILN_STRING || !kiln_dtype_is_supported(*dt) || kiln_dtype_size(*dt) == 0)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "output dtype %s (%d) is not supported",
                                kiln_dtype_name(*dt), (int)*dt);
    return KILN_OK;
}

kiln_status kiln_infer_EyeLike(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x;
    kiln_value *y;
    kiln_dtype dt;
    TRY(get_in(c, 0, "input", &x));
    TRY(get_out(c, 0, &y));
    TRY(check_data_dtype(n, x->dtype, "input"));
    TRY(eyelike_dtype(n, x->dtype, &dt));
    if (x->rank >= 0 && x->rank != 2)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input must be 2-D, got rank %d", x->rank);
    if (x->rank < 0)
        set_type(y, dt, 2, NULL, NULL);
    else
        set_type(y, dt, 2, x->dims, x->sym);
    return KILN_OK;
}

kiln_status kiln_eval_EyeLike(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                              int n_out)
{
    TRY(eval_check(n, in, n_in, 1, out, n_out));
    kiln_tensor *y = out[0];
    if (y->rank != 2)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output is not 2-D");
    int64_t k = kiln_attr_int(n, "k", 0);
    int64_t rows = y->dims[0], cols = y->dims[1];
    memset(y->data, 0, y->nbytes);
    /* Ones on the k-th diagonal: (i, i + k) for rows i where the column is in range. */
    int64_t i0 = k < 0 ? (k < -rows ? rows : -k) : 0;
    for (int64_t i = i0; i < rows; i++) {
        if (k >= cols - i) /* i + k >= cols, written without overflow */
            break;
        kiln_tensor_set(y, i * cols + i + k, 1.0);
    }
    return KILN_OK;
}
