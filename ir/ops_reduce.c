/* ops_reduce.c — shape/dtype rules and CPU reference for reductions, arg-reductions, softmax family, normalizations, CumSum, TopK. */
#include "ops_common.h"

#include <stdint.h>

/* ======================================================== small helpers == */

static const kiln_value *in_at(const kiln_infer_ctx *c, int i) { return i < c->n_in ? c->in[i] : NULL; }
static kiln_value *out_at(const kiln_infer_ctx *c, int i) { return i < c->n_out ? c->out[i] : NULL; }
static kiln_tensor *tin(kiln_tensor *const *in, int n_in, int i) { return i < n_in ? in[i] : NULL; }
static kiln_tensor *tout(kiln_tensor *const *out, int n_out, int i) { return i < n_out ? out[i] : NULL; }

/* Element read/write through double with a direct f32 path (the common case). */
static inline double ldf(const kiln_tensor *t, int64_t i)
{
    if (t->dtype == KILN_F32) return ((const float *)t->data)[i];
    if (t->dtype == KILN_F64) return ((const double *)t->data)[i];
    return kiln_tensor_get(t, i);
}

/* Store a double; for int dtypes truncate toward zero with saturation, NaN -> 0
 * (done here so no out-of-range float->int conversion can happen). */
static inline void stf(kiln_tensor *t, int64_t i, double v)
{
    if (t->dtype == KILN_F32) { ((float *)t->data)[i] = (float)v; return; }
    if (t->dtype == KILN_F64) { ((double *)t->data)[i] = v; return; }
    if (kiln_dtype_is_float(t->dtype)) { kiln_tensor_set(t, i, v); return; }
    if (isnan(v)) v = 0.0;
    if (t->dtype == KILN_U64) {
        uint64_t u = v <= 0.0 ? 0 : v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)v;
        ((uint64_t *)t->data)[i] = u;
        return;
    }
    int64_t s = v <= -9223372036854775808.0 ? INT64_MIN
              : v >= 9223372036854775807.0 ? INT64_MAX : (int64_t)v;
    kiln_tensor_set_i64(t, i, s);
}

/* Exact integer loads: signed dtypes as int64, unsigned (and bool) as uint64. */
static inline int64_t ld_s(const kiln_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case KILN_I8: return ((const int8_t *)t->data)[i];
    case KILN_I16: return ((const int16_t *)t->data)[i];
    case KILN_I32: return ((const int32_t *)t->data)[i];
    case KILN_I64: return ((const int64_t *)t->data)[i];
    default: return 0;
    }
}

static inline uint64_t ld_u(const kiln_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case KILN_BOOL: return ((const uint8_t *)t->data)[i] ? 1u : 0u;
    case KILN_U8: return ((const uint8_t *)t->data)[i];
    case KILN_U16: return ((const uint16_t *)t->data)[i];
    case KILN_U32: return ((const uint32_t *)t->data)[i];
    case KILN_U64: return ((const uint64_t *)t->data)[i];
    default: return 0;
    }
}

/* Two's-complement bits of any integer element (sign-extended for signed types). */
static inline uint64_t ld_bits(const kiln_tensor *t, int64_t i)
{
    return kiln_dtype_is_signed(t->dtype) ? (uint64_t)ld_s(t, i) : ld_u(t, i);
}

/* Store the low bits of v (modular, like numpy's astype after an int64 accumulation). */
static inline void st_bits(kiln_tensor *t, int64_t i, uint64_t v)
{
    switch (t->dtype) {
    case KILN_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    case KILN_I8: case KILN_U8: { uint8_t b = (uint8_t)v; memcpy((char *)t->data + i, &b, 1); break; }
    case KILN_I16: case KILN_U16: { uint16_t b = (uint16_t)v; memcpy((char *)t->data + 2 * i, &b, 2); break; }
    case KILN_I32: case KILN_U32: { uint32_t b = (uint32_t)v; memcpy((char *)t->data + 4 * i, &b, 4); break; }
    case KILN_I64: case KILN_U64: memcpy((char *)t->data + 8 * i, &v, 8); break;
    default: break;
    }
}

/* A key whose unsigned order is the numeric order of element i, for any dtype.
 * Floats: -0 folds to +0 and every NaN to one NaN above +inf (numpy's sort order). */
static inline uint64_t order_key(const kiln_tensor *t, int64_t i)
{
    if (kiln_dtype_is_float(t->dtype)) {
        double d = ldf(t, i);
        if (isnan(d)) return UINT64_MAX;
        if (d == 0.0) d = 0.0;
        uint64_t b;
        memcpy(&b, &d, sizeof b);
        return (b >> 63) ? ~b : b | (UINT64_C(1) << 63);
    }
    if (kiln_dtype_is_signed(t->dtype)) return (uint64_t)ld_s(t, i) ^ (UINT64_C(1) << 63);
    return ld_u(t, i);
}

static int64_t prod_range(const int64_t *dims, int lo, int hi)
{
    int64_t p = 1;
    for (int d = lo; d < hi; d++) p *= dims[d];
    return p;
}

/* Walks a row-major index over dims while tracking an offset with given strides
 * (used for broadcast operands such as LayerNormalization's Scale and B). */
typedef struct bc_iter {
    int rank;
    int64_t dims[KILN_MAX_RANK], idx[KILN_MAX_RANK], str[KILN_MAX_RANK];
    int64_t off;
} bc_iter;

static void bc_init(bc_iter *it, int rank, const int64_t *dims, const int64_t *str)
{
    it->rank = rank;
    for (int d = 0; d < rank; d++) {
        it->dims[d] = dims[d];
        it->str[d] = str[d];
        it->idx[d] = 0;
    }
    it->off = 0;
}

static inline void bc_next(bc_iter *it)
{
    for (int d = it->rank - 1; d >= 0; d--) {
        it->off += it->str[d];
        if (++it->idx[d] < it->dims[d]) return;
        it->off -= it->str[d] * it->dims[d];
        it->idx[d] = 0;
    }
}

static kiln_status oom(const kiln_node *n) { return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory"); }

/* dtype gates. */
enum { DT_FLOAT = 1, DT_INT = 2, DT_BOOL = 4 };

static kiln_status check_dtype(const kiln_node *n, const kiln_value *v, const char *what, int allow)
{
    kiln_dtype dt = v->dtype;
    if (!kiln_dtype_is_supported(dt))
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "%s has unsupported dtype %s (%d)", what,
                                kiln_dtype_name(dt), (int)dt);
    if ((allow & DT_FLOAT) && kiln_dtype_is_float(dt)) return KILN_OK;
    if ((allow & DT_INT) && kiln_dtype_is_int(dt)) return KILN_OK;
    if ((allow & DT_BOOL) && dt == KILN_BOOL) return KILN_OK;
    return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s: dtype %s is not allowed here", what,
                            kiln_dtype_name(dt));
}

/* Unidirectional broadcast check of s against x (s's dims right-aligned, equal or 1). */
static kiln_status check_unibcast(const kiln_node *n, const kiln_value *s, const kiln_value *x,
                                  const char *what)
{
    if (s->rank < 0 || x->rank < 0) return KILN_OK;
    if (s->rank > x->rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s has rank %d, more than the input's %d", what,
                                s->rank, x->rank);
    for (int d = 0; d < s->rank; d++) {
        int64_t sd = s->dims[d], xd = x->dims[x->rank - s->rank + d];
        if (sd < 0 || xd < 0 || sd == 1 || sd == xd) continue;
        return kiln_node_errorf(n, KILN_ERR_SHAPE,
                                "%s dim %d is %lld, does not broadcast to input dim %lld", what, d,
                                (long long)sd, (long long)xd);
    }
    return KILN_OK;
}

/* The one-value-per-channel operands of BatchNormalization etc.: rank 1 of size C. */
static kiln_status check_per_channel(const kiln_node *n, const kiln_value *v, int64_t C,
                                     const char *what)
{
    kiln_status st = check_dtype(n, v, what, DT_FLOAT);
    if (st) return st;
    if (v->rank < 0) return KILN_OK;
    if (v->rank != 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be 1-D, has rank %d", what, v->rank);
    if (v->dims[0] >= 0 && C >= 0 && v->dims[0] != C)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s has %lld elements, expected C = %lld", what,
                                (long long)v->dims[0], (long long)C);
    return KILN_OK;
}

/* =========================================================== Reduce* ==== */

typedef enum red_kind {
    RK_SUM, RK_MEAN, RK_PROD, RK_MAX, RK_MIN, RK_L1, RK_L2, RK_SUMSQ, RK_LOGSUM, RK_LOGSUMEXP
} red_kind;

/* Which axes to reduce. Returns KILN_OK with *known false when the axes input has no
 * known data. red[d] marks reduced axes; an empty axes list reduces everything unless
 * noop_with_empty_axes, then nothing. */
static kiln_status reduce_axes(const kiln_node *n, const kiln_tensor *axes_t, bool axes_present,
                               int rank, bool *red, bool *known)
{
    int64_t noop = kiln_attr_int(n, "noop_with_empty_axes", 0);
    for (int d = 0; d < KILN_MAX_RANK; d++) red[d] = false;
    *known = true;

    /* Fallback: an `axes` attribute, should a pre-18 form reach us unconverted. */
    const int64_t *attr_axes = NULL;
    int n_attr = axes_present ? -1 : kiln_attr_ints(n, "axes", &attr_axes);

    int64_t count;
    if (axes_present) {
        if (!axes_t) { *known = false; return KILN_OK; }
        if (!kiln_dtype_is_int(axes_t->dtype))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axes must be an integer tensor, got %s",
                                    kiln_dtype_name(axes_t->dtype));
        if (axes_t->rank > 1)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axes must be 1-D, has rank %d", axes_t->rank);
        count = axes_t->numel;
    } else {
        count = n_attr > 0 ? n_attr : 0;
    }

    if (count == 0) {
        if (!noop)
            for (int d = 0; d < rank; d++) red[d] = true;
        return KILN_OK;
    }
    for (int64_t i = 0; i < count; i++) {
        int64_t a = axes_present ? kiln_tensor_get_i64(axes_t, i) : attr_axes[i], na;
        if (!kiln_norm_axis(a, rank, &na))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d",
                                    (long long)a, rank);
        if (red[na])
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is repeated in axes", (long long)a);
        red[na] = true;
    }
    return KILN_OK;
}

static kiln_status reduce_infer(kiln_infer_ctx *c, bool allow_bool)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0), *ax = in_at(c, 1);
    kiln_value *y = out_at(c, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs data input and output");
    kiln_status st = check_dtype(n, x, "data", DT_FLOAT | DT_INT | (allow_bool ? DT_BOOL : 0));
    if (st) return st;
    bool keep = kiln_attr_int(n, "keepdims", 1) != 0;
    bool noop = kiln_attr_int(n, "noop_with_empty_axes", 0) != 0;

    if (ax) {
        if (!kiln_dtype_is_int(ax->dtype))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axes must be an integer tensor, got %s",
                                    kiln_dtype_name(ax->dtype));
        if (ax->rank > 1)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axes must be 1-D, has rank %d", ax->rank);
    }
    /* Length of the axes list when known without its data: -1 unknown. */
    int64_t n_axes = -1;
    if (!ax) {
        const int64_t *v;
        int k = kiln_attr_ints(n, "axes", &v);
        n_axes = k > 0 ? k : 0;
    } else if (ax->data) {
        n_axes = ax->data->numel;
    } else if (ax->rank == 1 && ax->dims[0] >= 0) {
        n_axes = ax->dims[0];
    } else if (ax->rank == 0) {
        n_axes = 1;
    }

    if (n_axes == 0 && noop) { /* identity shape */
        kiln_value_copy_type(y, x);
        return KILN_OK;
    }
    if (x->rank < 0) {
        if (n_axes == 0 && !keep) {
            kiln_value_set(y, x->dtype, 0, NULL);
        } else {
            y->dtype = x->dtype;
            y->rank = -1;
        }
        return KILN_OK;
    }

    bool red[KILN_MAX_RANK], known;
    st = reduce_axes(n, ax ? ax->data : NULL, ax != NULL, x->rank, red, &known);
    if (st) return st;
    if (!known) {
        if (keep) {
            /* Every dim is either kept or becomes 1: only dims already 1 are certain. */
            kiln_value_copy_type(y, x);
            for (int d = 0; d < x->rank; d++)
                if (y->dims[d] != 1) { y->dims[d] = -1; y->sym[d] = 0; }
        } else if (n_axes >= 0 && n_axes <= x->rank) {
            int64_t dims[KILN_MAX_RANK];
            for (int d = 0; d < x->rank - n_axes; d++) dims[d] = -1;
            kiln_value_set(y, x->dtype, (int)(x->rank - n_axes), dims);
        } else {
            y->dtype = x->dtype;
            y->rank = -1;
        }
        return KILN_OK;
    }

    y->dtype = x->dtype;
    int r = 0;
    for (int d = 0; d < x->rank; d++) {
        if (red[d]) {
            if (!keep) continue;
            y->dims[r] = 1;
            y->sym[r] = 0;
        } else {
            y->dims[r] = x->dims[d];
            y->sym[r] = x->sym[d];
        }
        r++;
    }
    y->rank = r;
    return KILN_OK;
}

/* Reduce in[0] into out[0]. Floats accumulate in double; ints keep exact 64-bit
 * (wrapping) accumulators for the ops whose result is an integer anyway. */
static kiln_status reduce_eval(const kiln_node *n, kiln_tensor *const *in, int n_in,
                               kiln_tensor *const *out, int n_out, red_kind kind)
{
    const kiln_tensor *x = tin(in, n_in, 0);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing data input or output");
    bool red[KILN_MAX_RANK], known;
    kiln_status st = reduce_axes(n, tin(in, n_in, 1), n_in > 1 && in[1] != NULL, x->rank, red, &known);
    if (st) return st;
    if (!known) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "axes unknown at eval");

    int rank = x->rank;
    int64_t ostr[KILN_MAX_RANK], kdims[KILN_MAX_RANK], count = 1, m = 1;
    for (int d = 0; d < rank; d++) {
        kdims[d] = red[d] ? 1 : x->dims[d];
        if (red[d]) count *= x->dims[d];
        m *= kdims[d];
    }
    kiln_strides(rank, kdims, ostr);
    for (int d = 0; d < rank; d++)
        if (red[d]) ostr[d] = 0;
    if (m != y->numel) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output size mismatch");
    if (m == 0) return KILN_OK;

    bool int_path = !kiln_dtype_is_float(x->dtype) &&
                    (kind == RK_SUM || kind == RK_PROD || kind == RK_MAX || kind == RK_MIN ||
                     kind == RK_L1 || kind == RK_SUMSQ);
    if (int_path) {
        uint64_t *acc = malloc((size_t)m * sizeof *acc);
        if (!acc) return oom(n);
        bool sgn = kiln_dtype_is_signed(x->dtype);
        uint64_t init = 0;
        if (kind == RK_PROD) init = 1;
        if (kind == RK_MAX || kind == RK_MIN) {
            /* Identity of max/min: the dtype's lowest / highest value. */
            size_t bits = 8 * kiln_dtype_size(x->dtype);
            if (x->dtype == KILN_BOOL) init = kind == RK_MAX ? 0 : 1;
            else if (!sgn) init = kind == RK_MAX ? 0 : (bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1);
            else {
                uint64_t hi = (UINT64_C(1) << (bits - 1)) - 1; /* bits <= 64 */
                init = kind == RK_MAX ? ~hi : hi;
            }
        }
        for (int64_t i = 0; i < m; i++) acc[i] = init;
        /* Flipping the sign bit maps signed order onto unsigned order. */
        uint64_t flip = sgn ? UINT64_C(1) << 63 : 0;
        int64_t idx[KILN_MAX_RANK] = {0}, off = 0;
        for (int64_t i = 0; i < x->numel; i++) {
            uint64_t v = ld_bits(x, i), a = acc[off];
            switch (kind) {
            case RK_SUM: a += v; break;
            case RK_PROD: a *= v; break;
            case RK_SUMSQ: a += v * v; break;
            case RK_L1: a += (sgn && (v >> 63)) ? 0 - v : v; break;
            case RK_MAX:
                if ((v ^ flip) > (a ^ flip)) a = v;
                break;
            case RK_MIN:
                if ((v ^ flip) < (a ^ flip)) a = v;
                break;
            default: break;
            }
            acc[off] = a;
            for (int d = rank - 1; d >= 0; d--) {
                off += ostr[d];
                if (++idx[d] < x->dims[d]) break;
                off -= ostr[d] * x->dims[d];
                idx[d] = 0;
            }
        }
        for (int64_t i = 0; i < m; i++) st_bits(y, i, acc[i]);
        free(acc);
        return KILN_OK;
    }

    double *acc = malloc((size_t)m * sizeof *acc);
    double *mx = NULL;
    if (!acc) return oom(n);
    double init = 0.0;
    if (kind == RK_PROD) init = 1.0;
    if (kind == RK_MAX) init = -INFINITY;
    if (kind == RK_MIN) init = INFINITY;
    for (int64_t i = 0; i < m; i++) acc[i] = init;

    if (kind == RK_LOGSUMEXP) {
        /* Shift by the largest finite value so exp cannot overflow. */
        mx = malloc((size_t)m * sizeof *mx);
        if (!mx) { free(acc); return oom(n); }
        for (int64_t i = 0; i < m; i++) mx[i] = -INFINITY;
        int64_t idx[KILN_MAX_RANK] = {0}, off = 0;
        for (int64_t i = 0; i < x->numel; i++) {
            double v = ldf(x, i);
            if (isfinite(v) && v > mx[off]) mx[off] = v;
            for (int d = rank - 1; d >= 0; d--) {
                off += ostr[d];
                if (++idx[d] < x->dims[d]) break;
                off -= ostr[d] * x->dims[d];
                idx[d] = 0;
            }
        }
        for (int64_t i = 0; i < m; i++)
            if (mx[i] == -INFINITY) mx[i] = 0.0;
    }

    int64_t idx[KILN_MAX_RANK] = {0}, off = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        double v = ldf(x, i);
        double *a = &acc[off];
        switch (kind) {
        case RK_SUM: case RK_MEAN: case RK_LOGSUM: *a += v; break;
        case RK_PROD: *a *= v; break;
        case RK_L1: *a += fabs(v); break;
        case RK_L2: case RK_SUMSQ: *a += v * v; break;
        case RK_LOGSUMEXP: *a += exp(v - mx[off]); break;
        case RK_MAX: if (isnan(v) || v > *a) *a = v; break; /* NaN propagates */
        case RK_MIN: if (isnan(v) || v < *a) *a = v; break;
        }
        for (int d = rank - 1; d >= 0; d--) {
            off += ostr[d];
            if (++idx[d] < x->dims[d]) break;
            off -= ostr[d] * x->dims[d];
            idx[d] = 0;
        }
    }
    for (int64_t i = 0; i < m; i++) {
        double a = acc[i];
        switch (kind) {
        case RK_MEAN: a = count > 0 ? a / (double)count : NAN; break;
        case RK_L2: a = sqrt(a); break;
        case RK_LOGSUM: a = log(a); break;
        case RK_LOGSUMEXP: a = log(a) + mx[i]; break;
        default: break;
        }
        stf(y, i, a);
    }
    free(mx);
    free(acc);
    return KILN_OK;
}

#define REDUCE_OP(Op, kind, allow_bool)                                                         \
    kiln_status kiln_infer_##Op(kiln_infer_ctx *c) { return reduce_infer(c, allow_bool); }     \
    kiln_status kiln_eval_##Op(const kiln_node *n, kiln_tensor *const *in, int n_in,            \
                               kiln_tensor *const *out, int n_out)                              \
    {                                                                                           \
        return reduce_eval(n, in, n_in, out, n_out, kind);                                      \
    }

REDUCE_OP(ReduceL1, RK_L1, false)
REDUCE_OP(ReduceL2, RK_L2, false)
REDUCE_OP(ReduceLogSum, RK_LOGSUM, false)
REDUCE_OP(ReduceLogSumExp, RK_LOGSUMEXP, false)
REDUCE_OP(ReduceMax, RK_MAX, true)
REDUCE_OP(ReduceMean, RK_MEAN, false)
REDUCE_OP(ReduceMin, RK_MIN, true)
REDUCE_OP(ReduceProd, RK_PROD, false)
REDUCE_OP(ReduceSum, RK_SUM, false)
REDUCE_OP(ReduceSumSquare, RK_SUMSQ, false)

/* ====================================================== ArgMax/ArgMin ==== */

static kiln_status arg_infer(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0);
    kiln_value *y = out_at(c, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs data input and output");
    kiln_status st = check_dtype(n, x, "data", DT_FLOAT | DT_INT);
    if (st) return st;
    bool keep = kiln_attr_int(n, "keepdims", 1) != 0;
    int64_t axis = kiln_attr_int(n, "axis", 0), a;
    if (x->rank < 0) {
        y->dtype = KILN_I64;
        y->rank = -1;
        return KILN_OK;
    }
    if (!kiln_norm_axis(axis, x->rank, &a))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d",
                                (long long)axis, x->rank);
    if (x->dims[a] == 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "cannot take the arg-extreme of an empty axis");
    kiln_value_copy_type(y, x);
    y->dtype = KILN_I64;
    if (keep) {
        y->dims[a] = 1;
        y->sym[a] = 0;
    } else {
        for (int d = (int)a; d + 1 < x->rank; d++) {
            y->dims[d] = x->dims[d + 1];
            y->sym[d] = x->sym[d + 1];
        }
        y->rank = x->rank - 1;
    }
    return KILN_OK;
}

static kiln_status arg_eval(const kiln_node *n, kiln_tensor *const *in, int n_in,
                            kiln_tensor *const *out, int n_out, bool want_max)
{
    const kiln_tensor *x = tin(in, n_in, 0);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    int64_t a;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), x->rank, &a))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis out of range");
    bool last = kiln_attr_int(n, "select_last_index", 0) != 0;
    int64_t outer = prod_range(x->dims, 0, (int)a), len = x->dims[a];
    int64_t inner = prod_range(x->dims, (int)a + 1, x->rank);
    int64_t *yd = y->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i, best = 0;
            uint64_t bk = order_key(x, base);
            for (int64_t k = 1; k < len; k++) {
                uint64_t kk = order_key(x, base + k * inner);
                bool better = want_max ? (kk > bk || (last && kk == bk))
                                       : (kk < bk || (last && kk == bk));
                if (better) { bk = kk; best = k; }
            }
            yd[o * inner + i] = best;
        }
    return KILN_OK;
}

kiln_status kiln_infer_ArgMax(kiln_infer_ctx *c) { return arg_infer(c); }
kiln_status kiln_eval_ArgMax(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    return arg_eval(n, in, n_in, out, n_out, true);
}
kiln_status kiln_infer_ArgMin(kiln_infer_ctx *c) { return arg_infer(c); }
kiln_status kiln_eval_ArgMin(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    return arg_eval(n, in, n_in, out, n_out, false);
}

/* ============================================ Softmax / LogSoftmax / Hardmax == */

/* Split x into [outer, len, inner] around the op's axis. With kiln_coerce_2d (opset < 13
 * models) the input is flattened to 2-D at axis and normalized over the whole tail. */
static kiln_status softmax_layout(const kiln_node *n, int rank, const int64_t *dims, int64_t *outer,
                                  int64_t *len, int64_t *inner)
{
    bool coerce = kiln_attr_int(n, "kiln_coerce_2d", 0) != 0;
    int64_t axis = kiln_attr_int(n, "axis", coerce ? 1 : -1), a;
    if (coerce && axis == rank) a = rank; /* old forms allow axis == rank (tail of size 1) */
    else if (!kiln_norm_axis(axis, rank, &a))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d",
                                (long long)axis, rank);
    if (!dims) return KILN_OK;
    *outer = prod_range(dims, 0, (int)a);
    if (coerce) {
        *len = prod_range(dims, (int)a, rank);
        *inner = 1;
    } else {
        *len = dims[a];
        *inner = prod_range(dims, (int)a + 1, rank);
    }
    return KILN_OK;
}

static kiln_status softmax_infer(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0);
    kiln_value *y = out_at(c, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs input and output");
    kiln_status st = check_dtype(n, x, "input", DT_FLOAT);
    if (st) return st;
    if (x->rank >= 0) {
        st = softmax_layout(n, x->rank, NULL, NULL, NULL, NULL);
        if (st) return st;
    }
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

typedef enum smax_kind { SM_SOFT, SM_LOG, SM_HARD } smax_kind;

static kiln_status softmax_eval(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                kiln_tensor *const *out, int n_out, smax_kind kind)
{
    const kiln_tensor *x = tin(in, n_in, 0);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    int64_t outer, len, inner;
    kiln_status st = softmax_layout(n, x->rank, x->dims, &outer, &len, &inner);
    if (st) return st;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double m = -INFINITY;
            int64_t arg = 0;
            for (int64_t k = 0; k < len; k++) {
                double v = ldf(x, base + k * inner);
                if (v > m) { m = v; arg = k; } /* first maximum wins (Hardmax) */
            }
            if (kind == SM_HARD) {
                for (int64_t k = 0; k < len; k++) stf(y, base + k * inner, k == arg ? 1.0 : 0.0);
                continue;
            }
            /* All -inf (or NaN-only) rows: shift by 0 so the result is NaN, like the math. */
            if (!isfinite(m)) m = isinf(m) && m > 0 ? m : 0.0;
            double s = 0.0;
            for (int64_t k = 0; k < len; k++) s += exp(ldf(x, base + k * inner) - m);
            if (kind == SM_SOFT) {
                for (int64_t k = 0; k < len; k++)
                    stf(y, base + k * inner, exp(ldf(x, base + k * inner) - m) / s);
            } else {
                double ls = log(s);
                for (int64_t k = 0; k < len; k++)
                    stf(y, base + k * inner, ldf(x, base + k * inner) - m - ls);
            }
        }
    return KILN_OK;
}

kiln_status kiln_infer_Softmax(kiln_infer_ctx *c) { return softmax_infer(c); }
kiln_status kiln_eval_Softmax(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    return softmax_eval(n, in, n_in, out, n_out, SM_SOFT);
}
kiln_status kiln_infer_LogSoftmax(kiln_infer_ctx *c) { return softmax_infer(c); }
kiln_status kiln_eval_LogSoftmax(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    return softmax_eval(n, in, n_in, out, n_out, SM_LOG);
}
kiln_status kiln_infer_Hardmax(kiln_infer_ctx *c) { return softmax_infer(c); }
kiln_status kiln_eval_Hardmax(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    return softmax_eval(n, in, n_in, out, n_out, SM_HARD);
}

/* ============================================================ CumSum ==== */

/* Read the scalar axis operand (rank 0 or a single-element 1-D). */
static kiln_status scalar_axis(const kiln_node *n, const kiln_tensor *t, int rank, int64_t *a)
{
    if (!kiln_dtype_is_int(t->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis must be int32 or int64, got %s",
                                kiln_dtype_name(t->dtype));
    if (t->numel != 1 || t->rank > 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis must be a scalar");
    int64_t v = kiln_tensor_get_i64(t, 0);
    if (!kiln_norm_axis(v, rank, a))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d",
                                (long long)v, rank);
    return KILN_OK;
}

kiln_status kiln_infer_CumSum(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0), *ax = in_at(c, 1);
    kiln_value *y = out_at(c, 0);
    if (!x || !ax || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs x, axis and an output");
    kiln_status st = check_dtype(n, x, "x", DT_FLOAT | DT_INT);
    if (st) return st;
    if (!kiln_dtype_is_int(ax->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis must be int32 or int64, got %s",
                                kiln_dtype_name(ax->dtype));
    if (ax->rank > 1 || (ax->rank == 1 && ax->dims[0] >= 0 && ax->dims[0] != 1))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis must be a scalar");
    if (x->rank == 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "x must have rank >= 1");
    if (ax->data && x->rank > 0) {
        int64_t a;
        st = scalar_axis(n, ax->data, x->rank, &a);
        if (st) return st;
    }
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

kiln_status kiln_eval_CumSum(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0), *at = tin(in, n_in, 1);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !at || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    int64_t a;
    kiln_status st = scalar_axis(n, at, x->rank, &a);
    if (st) return st;
    bool excl = kiln_attr_int(n, "exclusive", 0) != 0, rev = kiln_attr_int(n, "reverse", 0) != 0;
    int64_t outer = prod_range(x->dims, 0, (int)a), len = x->dims[a];
    int64_t inner = prod_range(x->dims, (int)a + 1, x->rank);
    bool is_float = kiln_dtype_is_float(x->dtype);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double fs = 0.0;
            uint64_t is = 0; /* ints: exact, wrapping */
            for (int64_t j = 0; j < len; j++) {
                int64_t k = rev ? len - 1 - j : j, p = base + k * inner;
                if (is_float) {
                    double v = ldf(x, p);
                    if (!excl) fs += v;
                    stf(y, p, fs);
                    if (excl) fs += v;
                } else {
                    uint64_t v = ld_bits(x, p);
                    if (!excl) is += v;
                    st_bits(y, p, is);
                    if (excl) is += v;
                }
            }
        }
    return KILN_OK;
}

/* ============================================================== TopK ==== */

static kiln_status topk_k(const kiln_node *n, const kiln_tensor *kt, int64_t *k)
{
    if (!kiln_dtype_is_int(kt->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "K must be int64, got %s", kiln_dtype_name(kt->dtype));
    if (kt->numel != 1 || kt->rank > 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "K must hold exactly one value");
    *k = kiln_tensor_get_i64(kt, 0);
    if (*k < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "K = %lld is negative", (long long)*k);
    return KILN_OK;
}

kiln_status kiln_infer_TopK(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0), *kv = in_at(c, 1);
    kiln_value *vals = out_at(c, 0), *idx = out_at(c, 1);
    if (!x || !kv) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs X and K");
    kiln_status st = check_dtype(n, x, "X", DT_FLOAT | DT_INT);
    if (st) return st;
    if (!kiln_dtype_is_int(kv->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "K must be int64, got %s", kiln_dtype_name(kv->dtype));
    if (kv->rank > 1 || (kv->rank == 1 && kv->dims[0] >= 0 && kv->dims[0] != 1))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "K must be a 1-D tensor of one element");
    int64_t axis = kiln_attr_int(n, "axis", -1), a = 0, k = -1;
    if (x->rank >= 0 && !kiln_norm_axis(axis, x->rank, &a))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d",
                                (long long)axis, x->rank);
    if (kv->data) {
        st = topk_k(n, kv->data, &k);
        if (st) return st;
        if (x->rank >= 0 && x->dims[a] >= 0 && k > x->dims[a])
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "K = %lld exceeds axis length %lld",
                                    (long long)k, (long long)x->dims[a]);
    }
    kiln_value *outs[2] = {vals, idx};
    for (int i = 0; i < 2; i++) {
        kiln_value *o = outs[i];
        if (!o) continue;
        kiln_value_copy_type(o, x);
        o->dtype = i == 0 ? x->dtype : KILN_I64;
        if (x->rank >= 0 && !(k >= 0 && k == x->dims[a])) {
            o->dims[a] = k; /* -1 while K is unknown */
            o->sym[a] = 0;
        }
    }
    return KILN_OK;
}

/* Stable merge sort of idx[0..len) by key, descending when `desc`; equal keys keep
 * index order, which gives ONNX's tie rule (lower index first). */
static void sort_by_key(int64_t *idx, int64_t *tmp, const uint64_t *key, int64_t len, bool desc)
{
    for (int64_t w = 1; w < len; w *= 2) {
        for (int64_t lo = 0; lo < len; lo += 2 * w) {
            int64_t mid = lo + w < len ? lo + w : len, hi = lo + 2 * w < len ? lo + 2 * w : len;
            int64_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi) {
                uint64_t ki = key[idx[i]], kj = key[idx[j]];
                bool take_j = desc ? kj > ki : kj < ki;
                tmp[o++] = take_j ? idx[j++] : idx[i++];
            }
            while (i < mid) tmp[o++] = idx[i++];
            while (j < hi) tmp[o++] = idx[j++];
        }
        memcpy(idx, tmp, (size_t)len * sizeof *idx);
    }
}

kiln_status kiln_eval_TopK(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0), *kt = tin(in, n_in, 1);
    kiln_tensor *vals = tout(out, n_out, 0), *ind = tout(out, n_out, 1);
    if (!x || !kt) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input");
    int64_t a, k;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", -1), x->rank, &a))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis out of range");
    kiln_status st = topk_k(n, kt, &k);
    if (st) return st;
    int64_t outer = prod_range(x->dims, 0, (int)a), len = x->dims[a];
    int64_t inner = prod_range(x->dims, (int)a + 1, x->rank);
    if (k > len) return kiln_node_errorf(n, KILN_ERR_SHAPE, "K exceeds axis length");
    bool desc = kiln_attr_int(n, "largest", 1) != 0;
    if (k == 0 || outer == 0 || inner == 0) return KILN_OK;
    size_t cnt = (size_t)len;
    uint64_t *key = malloc(cnt * sizeof *key);
    int64_t *idx = malloc(cnt * sizeof *idx), *tmp = malloc(cnt * sizeof *tmp);
    if (!key || !idx || !tmp) {
        free(key); free(idx); free(tmp);
        return oom(n);
    }
    bool is_float = kiln_dtype_is_float(x->dtype);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i, obase = o * k * inner + i;
            for (int64_t j = 0; j < len; j++) {
                key[j] = order_key(x, base + j * inner);
                idx[j] = j;
            }
            sort_by_key(idx, tmp, key, len, desc);
            for (int64_t j = 0; j < k; j++) {
                int64_t src = base + idx[j] * inner, dst = obase + j * inner;
                if (vals) {
                    if (is_float) stf(vals, dst, ldf(x, src));
                    else st_bits(vals, dst, ld_bits(x, src));
                }
                if (ind) ((int64_t *)ind->data)[dst] = idx[j];
            }
        }
    free(key); free(idx); free(tmp);
    return KILN_OK;
}

/* ================================================= BatchNormalization ==== */

/* Channel dim of an N x C x ... input, for the per-channel normalizations. */
static kiln_status nc_input(const kiln_node *n, const kiln_value *x, int min_rank, int64_t *C)
{
    kiln_status st = check_dtype(n, x, "X", DT_FLOAT);
    if (st) return st;
    *C = -1;
    if (x->rank < 0) return KILN_OK;
    if (x->rank < min_rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "X must have rank >= %d (N x C x ...), has %d",
                                min_rank, x->rank);
    *C = x->dims[1];
    return KILN_OK;
}

kiln_status kiln_infer_BatchNormalization(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    if (kiln_attr_int(n, "training_mode", 0) != 0)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "training_mode = 1 is not supported (inference only)");
    if (out_at(c, 1) || out_at(c, 2))
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED,
                                "running_mean/running_var outputs exist only in training mode");
    const kiln_value *x = in_at(c, 0);
    kiln_value *y = out_at(c, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs X and Y");
    int64_t C;
    kiln_status st = nc_input(n, x, 2, &C);
    if (st) return st;
    static const char *const names[5] = {"X", "scale", "B", "input_mean", "input_var"};
    for (int i = 1; i < 5; i++) {
        const kiln_value *v = in_at(c, i);
        if (!v) return kiln_node_errorf(n, KILN_ERR_SHAPE, "input %s is required", names[i]);
        st = check_per_channel(n, v, C, names[i]);
        if (st) return st;
    }
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

kiln_status kiln_eval_BatchNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0), *sc = tin(in, n_in, 1), *b = tin(in, n_in, 2);
    const kiln_tensor *mean = tin(in, n_in, 3), *var = tin(in, n_in, 4);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !sc || !b || !mean || !var || !y)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    double eps = kiln_attr_float(n, "epsilon", 1e-5f);
    int64_t N = x->dims[0], C = x->dims[1], inner = prod_range(x->dims, 2, x->rank);
    for (int64_t ch = 0; ch < C; ch++) {
        /* y = (x - mean) / sqrt(var + eps) * scale + B, folded into one multiply-add. */
        double mul = ldf(sc, ch) / sqrt(ldf(var, ch) + eps);
        double add = ldf(b, ch) - ldf(mean, ch) * mul;
        for (int64_t i = 0; i < N; i++) {
            int64_t base = (i * C + ch) * inner;
            if (x->dtype == KILN_F32) {
                const float *xs = (const float *)x->data + base;
                float *ys = (float *)y->data + base;
                for (int64_t j = 0; j < inner; j++) ys[j] = (float)(xs[j] * mul + add);
            } else {
                for (int64_t j = 0; j < inner; j++) stf(y, base + j, ldf(x, base + j) * mul + add);
            }
        }
    }
    return KILN_OK;
}

/* ============================================== InstanceNormalization ==== */

kiln_status kiln_infer_InstanceNormalization(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0);
    kiln_value *y = out_at(c, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs input and output");
    int64_t C;
    kiln_status st = nc_input(n, x, 3, &C);
    if (st) return st;
    for (int i = 1; i < 3; i++) {
        const kiln_value *v = in_at(c, i);
        if (!v) return kiln_node_errorf(n, KILN_ERR_SHAPE, "input %s is required", i == 1 ? "scale" : "B");
        st = check_per_channel(n, v, C, i == 1 ? "scale" : "B");
        if (st) return st;
    }
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

/* Mean and biased variance of n_el elements at x[base + j] (two passes, in double). */
static void mean_var(const kiln_tensor *x, int64_t base, int64_t n_el, double *mean, double *var)
{
    double s = 0.0, q = 0.0;
    for (int64_t j = 0; j < n_el; j++) s += ldf(x, base + j);
    double m = n_el > 0 ? s / (double)n_el : 0.0;
    for (int64_t j = 0; j < n_el; j++) {
        double d = ldf(x, base + j) - m;
        q += d * d;
    }
    *mean = m;
    *var = n_el > 0 ? q / (double)n_el : 0.0;
}

kiln_status kiln_eval_InstanceNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0), *sc = tin(in, n_in, 1), *b = tin(in, n_in, 2);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !sc || !b || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    double eps = kiln_attr_float(n, "epsilon", 1e-5f);
    int64_t N = x->dims[0], C = x->dims[1], inner = prod_range(x->dims, 2, x->rank);
    for (int64_t i = 0; i < N; i++)
        for (int64_t ch = 0; ch < C; ch++) {
            int64_t base = (i * C + ch) * inner;
            double m, v;
            mean_var(x, base, inner, &m, &v);
            double mul = ldf(sc, ch) / sqrt(v + eps), add = ldf(b, ch);
            for (int64_t j = 0; j < inner; j++) stf(y, base + j, (ldf(x, base + j) - m) * mul + add);
        }
    return KILN_OK;
}

/* ============================================ LayerNormalization / RMS ==== */

static kiln_status stash_dtype(const kiln_node *n, kiln_dtype *dt)
{
    int64_t s = kiln_attr_int(n, "stash_type", 1);
    if (s != KILN_F32 && s != KILN_F64 && s != KILN_F16 && s != KILN_BF16)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "stash_type %lld is not a supported float type",
                                (long long)s);
    *dt = (kiln_dtype)s;
    return KILN_OK;
}

/* Shared checks of LayerNormalization and RMSNormalization; returns the normalized axis. */
static kiln_status lastaxes_infer(kiln_infer_ctx *c, int n_params, int64_t *axis_out)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0);
    kiln_value *y = out_at(c, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs X and Y");
    kiln_status st = check_dtype(n, x, "X", DT_FLOAT);
    if (st) return st;
    kiln_dtype sdt = KILN_F32;
    if ((st = stash_dtype(n, &sdt))) return st;
    static const char *const names[3] = {"X", "Scale", "B"};
    for (int i = 1; i <= n_params; i++) {
        const kiln_value *p = in_at(c, i);
        if (!p) {
            if (i == 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "Scale is required");
            continue;
        }
        if ((st = check_dtype(n, p, names[i], DT_FLOAT))) return st;
        if ((st = check_unibcast(n, p, x, names[i]))) return st;
    }
    *axis_out = -1;
    if (x->rank >= 0) {
        int64_t axis = kiln_attr_int(n, "axis", -1);
        if (!kiln_norm_axis(axis, x->rank, axis_out))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d",
                                    (long long)axis, x->rank);
    }
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

kiln_status kiln_infer_LayerNormalization(kiln_infer_ctx *c)
{
    int64_t a;
    kiln_status st = lastaxes_infer(c, 2, &a);
    if (st) return st;
    kiln_dtype sdt = KILN_F32;
    if ((st = stash_dtype(c->node, &sdt))) return st;
    const kiln_value *x = in_at(c, 0);
    for (int i = 1; i <= 2; i++) {
        kiln_value *o = out_at(c, i);
        if (!o) continue;
        /* Mean / InvStdDev: X's shape with the normalized dims kept as 1. */
        kiln_value_copy_type(o, x);
        o->dtype = sdt;
        for (int d = (int)a; d >= 0 && d < x->rank; d++) {
            o->dims[d] = 1;
            o->sym[d] = 0;
        }
    }
    return KILN_OK;
}

/* y = (x - mean) * inv * scale + b over rows of `cols` elements (b may be NULL;
 * rms: mean 0, inv from the mean square). */
static kiln_status lastaxes_eval(const kiln_node *n, const kiln_tensor *x, const kiln_tensor *sc,
                                 const kiln_tensor *b, kiln_tensor *y, kiln_tensor *mean_out,
                                 kiln_tensor *inv_out, bool rms)
{
    int64_t a;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", -1), x->rank, &a))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis out of range");
    double eps = kiln_attr_float(n, "epsilon", 1e-5f);
    int64_t rows = prod_range(x->dims, 0, (int)a), cols = prod_range(x->dims, (int)a, x->rank);
    int64_t sstr[KILN_MAX_RANK], bstr[KILN_MAX_RANK];
    kiln_bcast_strides(sc, x->rank, x->dims, sstr);
    if (b) kiln_bcast_strides(b, x->rank, x->dims, bstr);
    else memset(bstr, 0, sizeof bstr);
    bc_iter si, bi;
    bc_init(&si, x->rank, x->dims, sstr);
    bc_init(&bi, x->rank, x->dims, bstr);
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = r * cols;
        double m = 0.0, v;
        if (rms) {
            double q = 0.0;
            for (int64_t j = 0; j < cols; j++) {
                double e = ldf(x, base + j);
                q += e * e;
            }
            v = cols > 0 ? q / (double)cols : 0.0;
        } else {
            mean_var(x, base, cols, &m, &v);
        }
        double inv = 1.0 / sqrt(v + eps);
        if (mean_out) stf(mean_out, r, m);
        if (inv_out) stf(inv_out, r, inv);
        for (int64_t j = 0; j < cols; j++) {
            double e = (ldf(x, base + j) - m) * inv * ldf(sc, si.off);
            if (b) e += ldf(b, bi.off);
            stf(y, base + j, e);
            bc_next(&si);
            bc_next(&bi);
        }
    }
    return KILN_OK;
}

kiln_status kiln_eval_LayerNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0), *sc = tin(in, n_in, 1);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !sc || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    return lastaxes_eval(n, x, sc, tin(in, n_in, 2), y, tout(out, n_out, 1), tout(out, n_out, 2), false);
}

kiln_status kiln_infer_RMSNormalization(kiln_infer_ctx *c)
{
    int64_t a;
    return lastaxes_infer(c, 1, &a);
}

kiln_status kiln_eval_RMSNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0), *sc = tin(in, n_in, 1);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !sc || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    return lastaxes_eval(n, x, sc, NULL, y, NULL, NULL, true);
}

/* ================================================= GroupNormalization ==== */

kiln_status kiln_infer_GroupNormalization(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0);
    kiln_value *y = out_at(c, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs X and Y");
    int64_t C;
    kiln_status st = nc_input(n, x, 2, &C);
    if (st) return st;
    kiln_dtype sdt = KILN_F32;
    if ((st = stash_dtype(n, &sdt))) return st;
    const kiln_attr *ga = kiln_attr_find(n, "num_groups");
    if (!ga) return kiln_node_errorf(n, KILN_ERR_SHAPE, "attribute num_groups is required");
    int64_t g = kiln_attr_int(n, "num_groups", 0);
    if (g < 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "num_groups = %lld must be >= 1", (long long)g);
    if (C >= 0 && C % g != 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "C = %lld is not divisible by num_groups = %lld",
                                (long long)C, (long long)g);
    for (int i = 1; i < 3; i++) {
        const kiln_value *p = in_at(c, i);
        const char *what = i == 1 ? "scale" : "bias";
        if (!p) return kiln_node_errorf(n, KILN_ERR_SHAPE, "input %s is required", what);
        if ((st = check_dtype(n, p, what, DT_FLOAT))) return st;
        if (p->rank >= 0 && p->rank != 1)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be 1-D, has rank %d", what, p->rank);
        /* Opset 21 has one value per channel, opset 18 one per group. */
        if (p->rank == 1 && p->dims[0] >= 0 && C >= 0 && p->dims[0] != C && p->dims[0] != g)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s has %lld elements, expected C = %lld or num_groups = %lld",
                                    what, (long long)p->dims[0], (long long)C, (long long)g);
    }
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

kiln_status kiln_eval_GroupNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0), *sc = tin(in, n_in, 1), *b = tin(in, n_in, 2);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !sc || !b || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    double eps = kiln_attr_float(n, "epsilon", 1e-5f);
    int64_t g = kiln_attr_int(n, "num_groups", 1);
    int64_t N = x->dims[0], C = x->dims[1], inner = prod_range(x->dims, 2, x->rank);
    if (g < 1 || C % g != 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad num_groups");
    int64_t cpg = C / g;
    bool per_ch_s = sc->numel == C, per_ch_b = b->numel == C;
    if ((!per_ch_s && sc->numel != g) || (!per_ch_b && b->numel != g))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "scale/bias size matches neither C nor num_groups");
    for (int64_t i = 0; i < N; i++)
        for (int64_t gi = 0; gi < g; gi++) {
            int64_t base = (i * C + gi * cpg) * inner; /* a group is contiguous */
            double m, v;
            mean_var(x, base, cpg * inner, &m, &v);
            double inv = 1.0 / sqrt(v + eps);
            for (int64_t cc = 0; cc < cpg; cc++) {
                int64_t ch = gi * cpg + cc, cb = base + cc * inner;
                double s = ldf(sc, per_ch_s ? ch : gi), bb = ldf(b, per_ch_b ? ch : gi);
                for (int64_t j = 0; j < inner; j++) stf(y, cb + j, (ldf(x, cb + j) - m) * inv * s + bb);
            }
        }
    return KILN_OK;
}

/* ==================================================== LpNormalization ==== */

kiln_status kiln_infer_LpNormalization(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0);
    kiln_value *y = out_at(c, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs input and output");
    kiln_status st = check_dtype(n, x, "input", DT_FLOAT);
    if (st) return st;
    int64_t p = kiln_attr_int(n, "p", 2), axis = kiln_attr_int(n, "axis", -1), a;
    if (p != 1 && p != 2) return kiln_node_errorf(n, KILN_ERR_SHAPE, "p = %lld must be 1 or 2", (long long)p);
    if (x->rank >= 0 && !kiln_norm_axis(axis, x->rank, &a))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d",
                                (long long)axis, x->rank);
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

kiln_status kiln_eval_LpNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    int64_t a, p = kiln_attr_int(n, "p", 2);
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", -1), x->rank, &a))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis out of range");
    int64_t outer = prod_range(x->dims, 0, (int)a), len = x->dims[a];
    int64_t inner = prod_range(x->dims, (int)a + 1, x->rank);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double s = 0.0;
            for (int64_t k = 0; k < len; k++) {
                double v = ldf(x, base + k * inner);
                s += p == 1 ? fabs(v) : v * v;
            }
            double norm = p == 1 ? s : sqrt(s);
            /* A zero norm gives 0, not 0/0 (the ONNX reference's rule). */
            for (int64_t k = 0; k < len; k++)
                stf(y, base + k * inner, norm == 0.0 ? 0.0 : ldf(x, base + k * inner) / norm);
        }
    return KILN_OK;
}

/* ========================================== MeanVarianceNormalization ==== */

static kiln_status mvn_axes(const kiln_node *n, int rank, bool *red)
{
    static const int64_t def_axes[3] = {0, 2, 3};
    const int64_t *axes = def_axes;
    int cnt = kiln_attr_ints(n, "axes", &axes);
    if (cnt < 0) {
        axes = def_axes;
        cnt = 3;
    }
    for (int d = 0; d < KILN_MAX_RANK; d++) red[d] = false;
    for (int i = 0; i < cnt; i++) {
        int64_t a;
        if (!kiln_norm_axis(axes[i], rank, &a))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d",
                                    (long long)axes[i], rank);
        if (red[a]) return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is repeated", (long long)axes[i]);
        red[a] = true;
    }
    return KILN_OK;
}

kiln_status kiln_infer_MeanVarianceNormalization(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0);
    kiln_value *y = out_at(c, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs input and output");
    kiln_status st = check_dtype(n, x, "X", DT_FLOAT);
    if (st) return st;
    if (x->rank >= 0) {
        bool red[KILN_MAX_RANK];
        if ((st = mvn_axes(n, x->rank, red))) return st;
    }
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

kiln_status kiln_eval_MeanVarianceNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    bool red[KILN_MAX_RANK];
    kiln_status st = mvn_axes(n, x->rank, red);
    if (st) return st;
    int rank = x->rank;
    int64_t kdims[KILN_MAX_RANK], ostr[KILN_MAX_RANK], m = 1, count = 1;
    for (int d = 0; d < rank; d++) {
        kdims[d] = red[d] ? 1 : x->dims[d];
        if (red[d]) count *= x->dims[d];
        m *= kdims[d];
    }
    if (x->numel == 0) return KILN_OK;
    kiln_strides(rank, kdims, ostr);
    for (int d = 0; d < rank; d++)
        if (red[d]) ostr[d] = 0;
    double *sum = calloc((size_t)m, sizeof *sum), *sq = calloc((size_t)m, sizeof *sq);
    if (!sum || !sq) {
        free(sum); free(sq);
        return oom(n);
    }
    bc_iter it;
    bc_init(&it, rank, x->dims, ostr);
    for (int64_t i = 0; i < x->numel; i++, bc_next(&it)) sum[it.off] += ldf(x, i);
    for (int64_t i = 0; i < m; i++) sum[i] /= (double)count;
    bc_init(&it, rank, x->dims, ostr);
    for (int64_t i = 0; i < x->numel; i++, bc_next(&it)) {
        double d = ldf(x, i) - sum[it.off];
        sq[it.off] += d * d;
    }
    for (int64_t i = 0; i < m; i++) sq[i] = sqrt(sq[i] / (double)count) + 1e-9; /* std + eps */
    bc_init(&it, rank, x->dims, ostr);
    for (int64_t i = 0; i < x->numel; i++, bc_next(&it))
        stf(y, i, (ldf(x, i) - sum[it.off]) / sq[it.off]);
    free(sum); free(sq);
    return KILN_OK;
}

/* ================================================================ LRN ==== */

kiln_status kiln_infer_LRN(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = in_at(c, 0);
    kiln_value *y = out_at(c, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_SHAPE, "needs input and output");
    int64_t C;
    kiln_status st = nc_input(n, x, 3, &C);
    if (st) return st;
    if (!kiln_attr_find(n, "size")) return kiln_node_errorf(n, KILN_ERR_SHAPE, "attribute size is required");
    int64_t size = kiln_attr_int(n, "size", 0);
    if (size < 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "size = %lld must be >= 1", (long long)size);
    kiln_value_copy_type(y, x);
    return KILN_OK;
}

kiln_status kiln_eval_LRN(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    const kiln_tensor *x = tin(in, n_in, 0);
    kiln_tensor *y = tout(out, n_out, 0);
    if (!x || !y) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "missing input or output");
    int64_t size = kiln_attr_int(n, "size", 1);
    if (size < 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad size");
    double alpha = kiln_attr_float(n, "alpha", 1e-4f), beta = kiln_attr_float(n, "beta", 0.75f);
    double bias = kiln_attr_float(n, "bias", 1.0f);
    int64_t N = x->dims[0], C = x->dims[1], inner = prod_range(x->dims, 2, x->rank);
    /* Window over channels [c - floor((size-1)/2), c + ceil((size-1)/2)]. */
    int64_t lo_off = (size - 1) / 2, hi_off = size / 2;
    for (int64_t i = 0; i < N; i++)
        for (int64_t ch = 0; ch < C; ch++) {
            int64_t lo = ch - lo_off < 0 ? 0 : ch - lo_off;
            int64_t hi = ch + hi_off > C - 1 ? C - 1 : ch + hi_off;
            for (int64_t j = 0; j < inner; j++) {
                double s = 0.0;
                for (int64_t k = lo; k <= hi; k++) {
                    double v = ldf(x, (i * C + k) * inner + j);
                    s += v * v;
                }
                int64_t p = (i * C + ch) * inner + j;
                stf(y, p, ldf(x, p) / pow(bias + alpha / (double)size * s, beta));
            }
        }
    return KILN_OK;
}
