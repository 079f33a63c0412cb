/* ops_index.c — shape/dtype rules and CPU reference for indexing, scatter, padding and
 * resampling: Gather, GatherElements, GatherND, ScatterElements, ScatterND, OneHot, Pad,
 * Resize, Compress, NonZero, ReverseSequence.
 *
 * Data-movement ops copy elements as raw bytes of the element size, so every dtype
 * (bool, f16, bf16, all ints) works unchanged. Resize interpolates in double.
 *
 * Overflow discipline: products of dims are only formed once we know they are bounded
 * by the element count of a real tensor (non-empty input or output); empty tensors are
 * handled before any stride arithmetic. */
#include "ops_common.h"

#include <inttypes.h>

/* ====================================================================== helpers == */

static bool is_index_dtype(kiln_dtype dt) { return dt == KILN_I32 || dt == KILN_I64; }

/* Required inputs present and of a supported dtype; output 0 present. */
static kiln_status check_io(kiln_infer_ctx *c, int n_req) {
    if (c->n_in < n_req)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "expects at least %d inputs, got %d", n_req,
                                c->n_in);
    for (int i = 0; i < n_req; i++)
        if (!c->in[i]) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "required input %d is missing", i);
    for (int i = 0; i < c->n_in; i++) {
        if (c->in[i] && !kiln_dtype_is_supported(c->in[i]->dtype))
            return kiln_node_errorf(c->node, KILN_ERR_UNSUPPORTED, "input %d has unsupported dtype %s", i,
                                    kiln_dtype_name(c->in[i]->dtype));
    }
    if (c->n_out < 1 || !c->out[0]) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "output 0 is missing");
    return KILN_OK;
}

/* Eval-side guard: the driver ran infer, but a direct caller may not have. */
static kiln_status check_eval_io(const kiln_node *n, kiln_tensor *const *in, int n_in, int n_req,
                                 kiln_tensor *const *out, int n_out) {
    if (n_in < n_req || n_out < 1 || !out[0])
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "evaluator called with missing operands");
    for (int i = 0; i < n_req; i++)
        if (!in[i]) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "required input %d is missing", i);
    return KILN_OK;
}

/* Set an output's dtype and shape. rank < 0: unknown rank. sym may be NULL. */
static void set_out(kiln_value *v, kiln_dtype dt, int rank, const int64_t *dims, const int32_t *sym) {
    if (rank < 0) {
        kiln_value_set(v, dt, 0, NULL);
        v->rank = -1;
        return;
    }
    int64_t d[KILN_MAX_RANK] = {0};
    for (int i = 0; i < rank && i < KILN_MAX_RANK; i++) d[i] = dims[i] < 0 ? -1 : dims[i];
    kiln_value_set(v, dt, rank, d);
    for (int i = 0; i < rank; i++) v->sym[i] = sym ? sym[i] : 0;
}

/* Wrap a negative index once; false when it stays outside [0, dim). */
static bool norm_index(int64_t v, int64_t dim, int64_t *out) {
    if (v < 0) v += dim; /* no overflow: v < 0 and dim >= 0 */
    if (v < 0 || v >= dim) return false;
    *out = v;
    return true;
}

/* Index tensors are i32 or i64 (checked by infer). */
static int64_t index_at(const kiln_tensor *t, int64_t i) {
    if (t->dtype == KILN_I32) return ((const int32_t *)t->data)[i];
    if (t->dtype == KILN_I64) return ((const int64_t *)t->data)[i];
    return kiln_tensor_get_i64(t, i);
}

/* Product of dims[lo..hi); callers guarantee it is bounded by a real element count. */
static int64_t dims_prod(const int64_t *dims, int lo, int hi) {
    int64_t p = 1;
    for (int i = lo; i < hi; i++) p *= dims[i];
    return p;
}

static kiln_status check_out_shape(const kiln_node *n, const kiln_tensor *t, int rank, const int64_t *dims) {
    if (t->rank != rank) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output rank %d, expected %d", t->rank, rank);
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != dims[i])
            return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output dim %d is %" PRId64 ", expected %" PRId64, i,
                                    t->dims[i], dims[i]);
    return KILN_OK;
}

/* Every known index of a constant index value lies within [-dim, dim). */
static kiln_status check_const_indices(const kiln_node *n, const kiln_value *ind, int64_t dim) {
    if (!ind->data || dim < 0) return KILN_OK;
    for (int64_t i = 0; i < ind->data->numel; i++) {
        int64_t v = index_at(ind->data, i), k;
        if (!norm_index(v, dim, &k))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "index %" PRId64 " out of range for axis of size %" PRId64,
                                    v, dim);
    }
    return KILN_OK;
}

static kiln_status index_range_error(const kiln_node *n, int64_t v, int64_t dim) {
    return kiln_node_errorf(n, KILN_ERR_INVALID_ARG, "index %" PRId64 " out of range for axis of size %" PRId64, v,
                            dim);
}

/* ---- scatter reductions ---- */
enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };

static kiln_status parse_reduction(const kiln_node *n, int *red) {
    const char *s = kiln_attr_str(n, "reduction", "none");
    if (!strcmp(s, "none")) *red = RED_NONE;
    else if (!strcmp(s, "add")) *red = RED_ADD;
    else if (!strcmp(s, "mul")) *red = RED_MUL;
    else if (!strcmp(s, "max")) *red = RED_MAX;
    else if (!strcmp(s, "min")) *red = RED_MIN;
    else return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "unknown reduction '%s'", s);
    return KILN_OK;
}

static float red_f32(float a, float b, int red) {
    switch (red) {
    case RED_ADD: return a + b;
    case RED_MUL: return a * b;
    case RED_MAX: return b > a ? b : a;
    case RED_MIN: return b < a ? b : a;
    default: return b;
    }
}

static double red_f64(double a, double b, int red) {
    switch (red) {
    case RED_ADD: return a + b;
    case RED_MUL: return a * b;
    case RED_MAX: return b > a ? b : a;
    case RED_MIN: return b < a ? b : a;
    default: return b;
    }
}

/* Integer add/mul wrap modulo 2^width (computed in uint64_t, so no signed overflow). */
#define RED_INT_CASE(KD, T)                                                        \
    case KD: {                                                                     \
        T a, b, r;                                                                 \
        memcpy(&a, dst, sizeof a);                                                 \
        memcpy(&b, src, sizeof b);                                                 \
        switch (red) {                                                             \
        case RED_ADD: r = (T)((uint64_t)a + (uint64_t)b); break;                   \
        case RED_MUL: r = (T)((uint64_t)a * (uint64_t)b); break;                   \
        case RED_MAX: r = b > a ? b : a; break;                                    \
        case RED_MIN: r = b < a ? b : a; break;                                    \
        default: r = b; break;                                                     \
        }                                                                          \
        memcpy(dst, &r, sizeof r);                                                 \
        return;                                                                    \
    }

/* dst = dst (red) src for one element of dtype dt; RED_NONE copies. */
static void reduce_elem(unsigned char *dst, const unsigned char *src, kiln_dtype dt, size_t es, int red) {
    if (red == RED_NONE) {
        memcpy(dst, src, es);
        return;
    }
    switch (dt) {
    case KILN_F32: {
        float a, b;
        memcpy(&a, dst, sizeof a);
        memcpy(&b, src, sizeof b);
        a = red_f32(a, b, red);
        memcpy(dst, &a, sizeof a);
        return;
    }
    case KILN_F64: {
        double a, b;
        memcpy(&a, dst, sizeof a);
        memcpy(&b, src, sizeof b);
        a = red_f64(a, b, red);
        memcpy(dst, &a, sizeof a);
        return;
    }
    case KILN_F16:
    case KILN_BF16: {
        uint16_t ha, hb;
        memcpy(&ha, dst, sizeof ha);
        memcpy(&hb, src, sizeof hb);
        bool f16 = dt == KILN_F16;
        float a = f16 ? kiln_f16_to_f32(ha) : kiln_bf16_to_f32(ha);
        float b = f16 ? kiln_f16_to_f32(hb) : kiln_bf16_to_f32(hb);
        a = red_f32(a, b, red);
        ha = f16 ? kiln_f32_to_f16(a) : kiln_f32_to_bf16(a);
        memcpy(dst, &ha, sizeof ha);
        return;
    }
    case KILN_BOOL: {
        bool a = dst[0] != 0, b = src[0] != 0;
        /* add/max act as "or", mul/min as "and" on booleans */
        dst[0] = (red == RED_ADD || red == RED_MAX) ? (a || b) : (a && b);
        return;
    }
    RED_INT_CASE(KILN_I8, int8_t)
    RED_INT_CASE(KILN_U8, uint8_t)
    RED_INT_CASE(KILN_I16, int16_t)
    RED_INT_CASE(KILN_U16, uint16_t)
    RED_INT_CASE(KILN_I32, int32_t)
    RED_INT_CASE(KILN_U32, uint32_t)
    RED_INT_CASE(KILN_I64, int64_t)
    RED_INT_CASE(KILN_U64, uint64_t)
    default: memcpy(dst, src, es); return;
    }
}
#undef RED_INT_CASE

/* ======================================================================= Gather == */

kiln_status kiln_infer_Gather(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 2);
    if (st) return st;
    const kiln_value *x = c->in[0], *ind = c->in[1];
    if (!is_index_dtype(ind->dtype))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "indices must be i32 or i64, got %s",
                                kiln_dtype_name(ind->dtype));
    int64_t axis = kiln_attr_int(c->node, "axis", 0), ax = 0;
    if (x->rank == 0) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "data must have rank >= 1");
    if (x->rank > 0 && !kiln_norm_axis(axis, x->rank, &ax))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "axis %" PRId64 " out of range for rank %d", axis, x->rank);
    if (x->rank < 0 || ind->rank < 0) {
        set_out(c->out[0], x->dtype, -1, NULL, NULL);
        return KILN_OK;
    }
    int r = x->rank - 1 + ind->rank;
    if (r > KILN_MAX_RANK)
        return kiln_node_errorf(c->node, KILN_ERR_UNSUPPORTED, "output rank %d exceeds %d", r, KILN_MAX_RANK);
    int64_t d[KILN_MAX_RANK];
    int32_t s[KILN_MAX_RANK];
    int k = 0;
    for (int i = 0; i < ax; i++, k++) d[k] = x->dims[i], s[k] = x->sym[i];
    for (int i = 0; i < ind->rank; i++, k++) d[k] = ind->dims[i], s[k] = ind->sym[i];
    for (int i = (int)ax + 1; i < x->rank; i++, k++) d[k] = x->dims[i], s[k] = x->sym[i];
    /* Constant indices: report out-of-range entries at load time. */
    st = check_const_indices(c->node, ind, x->dims[ax]);
    if (st) return st;
    set_out(c->out[0], x->dtype, r, d, s);
    return KILN_OK;
}

kiln_status kiln_eval_Gather(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                             int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 2, out, n_out);
    if (st) return st;
    const kiln_tensor *x = in[0], *ind = in[1];
    kiln_tensor *y = out[0];
    int64_t ax;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), x->rank, &ax))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis out of range");
    int64_t len = x->dims[ax], nidx = ind->numel;
    if (y->numel == 0) return KILN_OK;
    if (x->numel == 0) return index_range_error(n, index_at(ind, 0), len);
    size_t es = kiln_dtype_size(x->dtype);
    int64_t outer = dims_prod(x->dims, 0, (int)ax), inner = dims_prod(x->dims, (int)ax + 1, x->rank);
    const unsigned char *src = x->data;
    unsigned char *dst = y->data;
    size_t row = (size_t)inner * es;
    for (int64_t j = 0; j < nidx; j++) {
        int64_t v = index_at(ind, j), k;
        if (!norm_index(v, len, &k)) return index_range_error(n, v, len);
        for (int64_t o = 0; o < outer; o++)
            memcpy(dst + (size_t)((o * nidx + j) * inner) * es, src + (size_t)((o * len + k) * inner) * es, row);
    }
    return KILN_OK;
}

/* =============================================================== GatherElements == */

kiln_status kiln_infer_GatherElements(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 2);
    if (st) return st;
    const kiln_value *x = c->in[0], *ind = c->in[1];
    if (!is_index_dtype(ind->dtype))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "indices must be i32 or i64, got %s",
                                kiln_dtype_name(ind->dtype));
    int64_t axis = kiln_attr_int(c->node, "axis", 0), ax = 0;
    int r = x->rank >= 0 ? x->rank : ind->rank;
    if (x->rank >= 0 && ind->rank >= 0 && x->rank != ind->rank)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "data rank %d and indices rank %d differ", x->rank,
                                ind->rank);
    if (r == 0) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "data must have rank >= 1");
    if (r > 0 && !kiln_norm_axis(axis, r, &ax))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "axis %" PRId64 " out of range for rank %d", axis, r);
    if (x->rank >= 0 && ind->rank >= 0) {
        for (int i = 0; i < r; i++)
            if (i != ax && x->dims[i] >= 0 && ind->dims[i] > x->dims[i])
                return kiln_node_errorf(c->node, KILN_ERR_SHAPE,
                                        "indices dim %d (%" PRId64 ") exceeds data dim (%" PRId64 ")", i,
                                        ind->dims[i], x->dims[i]);
        st = check_const_indices(c->node, ind, x->dims[ax]);
        if (st) return st;
    }
    if (ind->rank < 0 && r > 0) { /* rank known from data, extents from indices unknown */
        int64_t d[KILN_MAX_RANK];
        for (int i = 0; i < r; i++) d[i] = -1;
        set_out(c->out[0], x->dtype, r, d, NULL);
        return KILN_OK;
    }
    set_out(c->out[0], x->dtype, ind->rank, ind->dims, ind->sym);
    return KILN_OK;
}

kiln_status kiln_eval_GatherElements(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                     kiln_tensor *const *out, int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 2, out, n_out);
    if (st) return st;
    const kiln_tensor *x = in[0], *ind = in[1];
    kiln_tensor *y = out[0];
    int r = x->rank;
    int64_t ax;
    if (r < 1 || ind->rank != r || !kiln_norm_axis(kiln_attr_int(n, "axis", 0), r, &ax))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad rank or axis");
    for (int i = 0; i < r; i++)
        if (i != ax && ind->dims[i] > x->dims[i])
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "indices dim %d exceeds data dim", i);
    if (y->numel == 0) return KILN_OK;
    if (x->numel == 0) return index_range_error(n, index_at(ind, 0), x->dims[ax]);
    size_t es = kiln_dtype_size(x->dtype);
    int64_t xs[KILN_MAX_RANK], pos[KILN_MAX_RANK] = {0};
    kiln_strides(r, x->dims, xs);
    const unsigned char *src = x->data;
    unsigned char *dst = y->data;
    int64_t i = 0;
    do {
        int64_t v = index_at(ind, i), k;
        if (!norm_index(v, x->dims[ax], &k)) return index_range_error(n, v, x->dims[ax]);
        int64_t off = 0;
        for (int d = 0; d < r; d++) off += (d == ax ? k : pos[d]) * xs[d];
        memcpy(dst + (size_t)i * es, src + (size_t)off * es, es);
        i++;
    } while (kiln_index_next(r, ind->dims, pos));
    return KILN_OK;
}

/* ==================================================================== GatherND == */

kiln_status kiln_infer_GatherND(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 2);
    if (st) return st;
    const kiln_value *x = c->in[0], *ind = c->in[1];
    if (!is_index_dtype(ind->dtype))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "indices must be i32 or i64, got %s",
                                kiln_dtype_name(ind->dtype));
    int64_t b = kiln_attr_int(c->node, "batch_dims", 0);
    if (x->rank == 0 || ind->rank == 0)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "data and indices must have rank >= 1");
    if (b < 0) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "batch_dims %" PRId64 " is negative", b);
    if (x->rank < 0 || ind->rank < 0 || ind->dims[ind->rank - 1] < 0) {
        set_out(c->out[0], x->dtype, -1, NULL, NULL);
        return KILN_OK;
    }
    int r = x->rank, q = ind->rank;
    if (b >= (r < q ? r : q))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "batch_dims %" PRId64 " must be < min(rank(data)=%d, rank(indices)=%d)",
                                b, r, q);
    int64_t k = ind->dims[q - 1];
    if (k < 1 || k > r - b)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "indices last dim %" PRId64 " must be in [1, %" PRId64 "]", k,
                                r - b);
    for (int i = 0; i < b; i++)
        if (x->dims[i] >= 0 && ind->dims[i] >= 0 && x->dims[i] != ind->dims[i])
            return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "batch dim %d differs: data %" PRId64 ", indices %" PRId64,
                                    i, x->dims[i], ind->dims[i]);
    int orank = (int)(q - 1 + r - b - k);
    if (orank > KILN_MAX_RANK)
        return kiln_node_errorf(c->node, KILN_ERR_UNSUPPORTED, "output rank %d exceeds %d", orank, KILN_MAX_RANK);
    int64_t d[KILN_MAX_RANK];
    int32_t s[KILN_MAX_RANK];
    int o = 0;
    for (int i = 0; i < q - 1; i++, o++) {
        /* batch dims: prefer whichever side is static */
        bool use_x = i < b && ind->dims[i] < 0;
        d[o] = use_x ? x->dims[i] : ind->dims[i];
        s[o] = use_x ? x->sym[i] : ind->sym[i];
    }
    for (int i = (int)(b + k); i < r; i++, o++) d[o] = x->dims[i], s[o] = x->sym[i];
    if (ind->data) {
        for (int64_t i = 0; i < ind->data->numel; i++) {
            int64_t dim = x->dims[b + i % k], v = index_at(ind->data, i), kk;
            if (dim >= 0 && !norm_index(v, dim, &kk))
                return kiln_node_errorf(c->node, KILN_ERR_SHAPE,
                                        "index %" PRId64 " out of range for axis of size %" PRId64, v, dim);
        }
    }
    set_out(c->out[0], x->dtype, orank, d, s);
    return KILN_OK;
}

kiln_status kiln_eval_GatherND(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                               int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 2, out, n_out);
    if (st) return st;
    const kiln_tensor *x = in[0], *ind = in[1];
    kiln_tensor *y = out[0];
    int r = x->rank, q = ind->rank;
    int64_t b = kiln_attr_int(n, "batch_dims", 0);
    if (r < 1 || q < 1 || b < 0 || b >= r || b >= q)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad ranks or batch_dims");
    int64_t k = ind->dims[q - 1];
    if (k < 1 || k > r - b) return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad indices last dim");
    if (y->numel == 0) return KILN_OK;
    if (x->numel == 0) return index_range_error(n, index_at(ind, 0), 0);
    size_t es = kiln_dtype_size(x->dtype);
    int64_t nb = dims_prod(x->dims, 0, (int)b);
    int64_t block = dims_prod(x->dims, (int)b, r);
    int64_t slice = dims_prod(x->dims, (int)(b + k), r);
    int64_t ntup = dims_prod(ind->dims, (int)b, q - 1);
    const unsigned char *src = x->data;
    unsigned char *dst = y->data;
    for (int64_t bi = 0; bi < nb; bi++) {
        for (int64_t t = 0; t < ntup; t++) {
            int64_t base = (bi * ntup + t) * k, off = 0;
            for (int64_t j = 0; j < k; j++) {
                int64_t dim = x->dims[b + j], v = index_at(ind, base + j), kk;
                if (!norm_index(v, dim, &kk)) return index_range_error(n, v, dim);
                off = off * dim + kk;
            }
            memcpy(dst + (size_t)((bi * ntup + t) * slice) * es, src + (size_t)(bi * block + off * slice) * es,
                   (size_t)slice * es);
        }
    }
    return KILN_OK;
}

/* ============================================================= ScatterElements == */

kiln_status kiln_infer_ScatterElements(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 3);
    if (st) return st;
    const kiln_value *x = c->in[0], *ind = c->in[1], *upd = c->in[2];
    int red;
    st = parse_reduction(c->node, &red);
    if (st) return st;
    if (!is_index_dtype(ind->dtype))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "indices must be i32 or i64, got %s",
                                kiln_dtype_name(ind->dtype));
    if (upd->dtype != x->dtype)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "updates dtype %s differs from data dtype %s",
                                kiln_dtype_name(upd->dtype), kiln_dtype_name(x->dtype));
    int r = x->rank;
    if (r == 0) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "data must have rank >= 1");
    if ((ind->rank >= 0 && r >= 0 && ind->rank != r) || (ind->rank >= 0 && upd->rank >= 0 && ind->rank != upd->rank))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "data, indices and updates must have the same rank");
    int64_t axis = kiln_attr_int(c->node, "axis", 0), ax = 0;
    if (r > 0 && !kiln_norm_axis(axis, r, &ax))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "axis %" PRId64 " out of range for rank %d", axis, r);
    if (ind->rank >= 0 && upd->rank >= 0) {
        for (int i = 0; i < ind->rank; i++)
            if (ind->dims[i] >= 0 && upd->dims[i] >= 0 && ind->dims[i] != upd->dims[i])
                return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "indices and updates shapes differ at dim %d", i);
    }
    if (r > 0 && ind->rank >= 0) {
        for (int i = 0; i < r; i++)
            if (i != ax && x->dims[i] >= 0 && ind->dims[i] > x->dims[i])
                return kiln_node_errorf(c->node, KILN_ERR_SHAPE,
                                        "indices dim %d (%" PRId64 ") exceeds data dim (%" PRId64 ")", i,
                                        ind->dims[i], x->dims[i]);
        st = check_const_indices(c->node, ind, x->dims[ax]);
        if (st) return st;
    }
    kiln_value_copy_type(c->out[0], x);
    return KILN_OK;
}

kiln_status kiln_eval_ScatterElements(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                      kiln_tensor *const *out, int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 3, out, n_out);
    if (st) return st;
    const kiln_tensor *x = in[0], *ind = in[1], *upd = in[2];
    kiln_tensor *y = out[0];
    int red;
    st = parse_reduction(n, &red);
    if (st) return st;
    int r = x->rank;
    int64_t ax;
    if (r < 1 || ind->rank != r || upd->rank != r || !kiln_norm_axis(kiln_attr_int(n, "axis", 0), r, &ax))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad rank or axis");
    for (int i = 0; i < r; i++)
        if (ind->dims[i] != upd->dims[i] || (i != ax && ind->dims[i] > x->dims[i]))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "indices/updates shape mismatch at dim %d", i);
    memcpy(y->data, x->data, x->nbytes);
    if (ind->numel == 0) return KILN_OK;
    if (x->numel == 0) return index_range_error(n, index_at(ind, 0), x->dims[ax]);
    size_t es = kiln_dtype_size(x->dtype);
    int64_t xs[KILN_MAX_RANK], pos[KILN_MAX_RANK] = {0};
    kiln_strides(r, x->dims, xs);
    const unsigned char *u = upd->data;
    unsigned char *dst = y->data;
    int64_t i = 0;
    do {
        int64_t v = index_at(ind, i), k;
        if (!norm_index(v, x->dims[ax], &k)) return index_range_error(n, v, x->dims[ax]);
        int64_t off = 0;
        for (int d = 0; d < r; d++) off += (d == ax ? k : pos[d]) * xs[d];
        reduce_elem(dst + (size_t)off * es, u + (size_t)i * es, x->dtype, es, red);
        i++;
    } while (kiln_index_next(r, ind->dims, pos));
    return KILN_OK;
}

/* =================================================================== ScatterND == */

kiln_status kiln_infer_ScatterND(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 3);
    if (st) return st;
    const kiln_value *x = c->in[0], *ind = c->in[1], *upd = c->in[2];
    int red;
    st = parse_reduction(c->node, &red);
    if (st) return st;
    if (!is_index_dtype(ind->dtype))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "indices must be i32 or i64, got %s",
                                kiln_dtype_name(ind->dtype));
    if (upd->dtype != x->dtype)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "updates dtype %s differs from data dtype %s",
                                kiln_dtype_name(upd->dtype), kiln_dtype_name(x->dtype));
    if (x->rank == 0 || ind->rank == 0)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "data and indices must have rank >= 1");
    if (x->rank > 0 && ind->rank > 0 && ind->dims[ind->rank - 1] >= 0) {
        int r = x->rank, q = ind->rank;
        int64_t k = ind->dims[q - 1];
        if (k > r)
            return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "indices last dim %" PRId64 " exceeds data rank %d", k, r);
        if (upd->rank >= 0) {
            int64_t want = q - 1 + r - k;
            if (upd->rank != want)
                return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "updates rank %d, expected %" PRId64, upd->rank, want);
            for (int i = 0; i < upd->rank; i++) {
                int64_t e = i < q - 1 ? ind->dims[i] : x->dims[k + i - (q - 1)];
                if (e >= 0 && upd->dims[i] >= 0 && e != upd->dims[i])
                    return kiln_node_errorf(c->node, KILN_ERR_SHAPE,
                                            "updates dim %d is %" PRId64 ", expected %" PRId64, i, upd->dims[i], e);
            }
        }
        if (ind->data && k > 0) {
            for (int64_t i = 0; i < ind->data->numel; i++) {
                int64_t dim = x->dims[i % k], v = index_at(ind->data, i), kk;
                if (dim >= 0 && !norm_index(v, dim, &kk))
                    return kiln_node_errorf(c->node, KILN_ERR_SHAPE,
                                            "index %" PRId64 " out of range for axis of size %" PRId64, v, dim);
            }
        }
    }
    kiln_value_copy_type(c->out[0], x);
    return KILN_OK;
}

kiln_status kiln_eval_ScatterND(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 3, out, n_out);
    if (st) return st;
    const kiln_tensor *x = in[0], *ind = in[1], *upd = in[2];
    kiln_tensor *y = out[0];
    int red;
    st = parse_reduction(n, &red);
    if (st) return st;
    int r = x->rank, q = ind->rank;
    if (r < 1 || q < 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad ranks");
    int64_t k = ind->dims[q - 1];
    if (k > r || upd->rank != q - 1 + r - k) return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad indices/updates shape");
    for (int i = 0; i < upd->rank; i++) {
        int64_t e = i < q - 1 ? ind->dims[i] : x->dims[k + i - (q - 1)];
        if (upd->dims[i] != e) return kiln_node_errorf(n, KILN_ERR_SHAPE, "updates shape mismatch at dim %d", i);
    }
    memcpy(y->data, x->data, x->nbytes);
    if (upd->numel == 0) return KILN_OK;
    if (x->numel == 0) return index_range_error(n, index_at(ind, 0), 0);
    size_t es = kiln_dtype_size(x->dtype);
    int64_t ntup = dims_prod(ind->dims, 0, q - 1), slice = dims_prod(x->dims, (int)k, r);
    const unsigned char *u = upd->data;
    unsigned char *dst = y->data;
    for (int64_t t = 0; t < ntup; t++) {
        int64_t off = 0;
        for (int64_t j = 0; j < k; j++) {
            int64_t dim = x->dims[j], v = index_at(ind, t * k + j), kk;
            if (!norm_index(v, dim, &kk)) return index_range_error(n, v, dim);
            off = off * dim + kk;
        }
        unsigned char *drow = dst + (size_t)(off * slice) * es;
        const unsigned char *urow = u + (size_t)(t * slice) * es;
        if (red == RED_NONE) {
            memcpy(drow, urow, (size_t)slice * es);
        } else {
            for (int64_t e = 0; e < slice; e++)
                reduce_elem(drow + (size_t)e * es, urow + (size_t)e * es, x->dtype, es, red);
        }
    }
    return KILN_OK;
}

/* ====================================================================== OneHot == */

/* depth from a known scalar/1-element tensor of any numeric dtype (truncated to int). */
static kiln_status onehot_depth(const kiln_node *n, const kiln_tensor *t, int64_t *depth) {
    if (t->numel != 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "depth must have exactly one element, got %" PRId64, t->numel);
    double v = kiln_tensor_get(t, 0);
    if (!(v >= 1.0 && v < 9.0e15)) /* also rejects NaN */
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "depth %g must be a positive count", v);
    *depth = (int64_t)v;
    return KILN_OK;
}

kiln_status kiln_infer_OneHot(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 3);
    if (st) return st;
    const kiln_value *ind = c->in[0], *dep = c->in[1], *vals = c->in[2];
    if (ind->dtype == KILN_BOOL || dep->dtype == KILN_BOOL)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "indices and depth must be numeric");
    if (dep->rank > 1 || (dep->rank == 1 && dep->dims[0] >= 0 && dep->dims[0] != 1))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "depth must be a scalar or a 1-element tensor");
    if (vals->rank >= 0 && (vals->rank != 1 || (vals->dims[0] >= 0 && vals->dims[0] != 2)))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "values must be a 1-D tensor [off, on]");
    int64_t depth = -1;
    if (dep->data) {
        st = onehot_depth(c->node, dep->data, &depth);
        if (st) return st;
    }
    if (ind->rank < 0) {
        set_out(c->out[0], vals->dtype, -1, NULL, NULL);
        return KILN_OK;
    }
    int r = ind->rank + 1;
    if (r > KILN_MAX_RANK)
        return kiln_node_errorf(c->node, KILN_ERR_UNSUPPORTED, "output rank %d exceeds %d", r, KILN_MAX_RANK);
    int64_t axis = kiln_attr_int(c->node, "axis", -1), ax;
    if (!kiln_norm_axis(axis, r, &ax))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "axis %" PRId64 " out of range for output rank %d", axis, r);
    int64_t d[KILN_MAX_RANK];
    int32_t s[KILN_MAX_RANK];
    for (int i = 0, j = 0; i < r; i++) {
        if (i == ax) {
            d[i] = depth, s[i] = 0;
        } else {
            d[i] = ind->dims[j], s[i] = ind->sym[j];
            j++;
        }
    }
    set_out(c->out[0], vals->dtype, r, d, s);
    return KILN_OK;
}

kiln_status kiln_eval_OneHot(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                             int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 3, out, n_out);
    if (st) return st;
    const kiln_tensor *ind = in[0], *vals = in[2];
    kiln_tensor *y = out[0];
    int64_t depth = 0;
    st = onehot_depth(n, in[1], &depth);
    if (st) return st;
    if (vals->numel != 2 || vals->dtype != y->dtype)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "values must hold [off, on]");
    int r = ind->rank + 1;
    int64_t ax;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", -1), r, &ax)) return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad axis");
    if (y->numel == 0) return KILN_OK;
    size_t es = kiln_dtype_size(y->dtype);
    const unsigned char *off_v = vals->data, *on_v = (const unsigned char *)vals->data + es;
    unsigned char *dst = y->data;
    for (int64_t i = 0; i < y->numel; i++) memcpy(dst + (size_t)i * es, off_v, es);
    int64_t inner = dims_prod(ind->dims, (int)ax, ind->rank);
    for (int64_t i = 0; i < ind->numel; i++) {
        double v = kiln_tensor_get(ind, i);
        /* out-of-range (or NaN) indices leave the whole row "off" */
        if (!(v >= (double)-depth && v < (double)depth)) continue;
        int64_t k = (int64_t)v;
        if (k < 0) k += depth;
        int64_t o = i / inner, p = i % inner;
        memcpy(dst + (size_t)((o * depth + k) * inner + p) * es, on_v, es);
    }
    return KILN_OK;
}

/* ========================================================================= Pad == */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

static kiln_status parse_pad_mode(const kiln_node *n, int *mode) {
    const char *s = kiln_attr_str(n, "mode", "constant");
    if (!strcmp(s, "constant")) *mode = PAD_CONSTANT;
    else if (!strcmp(s, "reflect")) *mode = PAD_REFLECT;
    else if (!strcmp(s, "edge")) *mode = PAD_EDGE;
    else if (!strcmp(s, "wrap")) *mode = PAD_WRAP;
    else return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "unknown pad mode '%s'", s);
    return KILN_OK;
}

/* Normalize an axes list against rank; duplicates are an error. */
static kiln_status norm_axes_list(const kiln_node *n, const int64_t *raw, int cnt, int rank, int *axes) {
    bool seen[KILN_MAX_RANK] = {false};
    for (int i = 0; i < cnt; i++) {
        int64_t a;
        if (!kiln_norm_axis(raw[i], rank, &a))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %" PRId64 " out of range for rank %d", raw[i], rank);
        if (seen[a]) return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %" PRId64 " repeated", raw[i]);
        seen[a] = true;
        axes[i] = (int)a;
    }
    return KILN_OK;
}

/* Per-axis begin/end pads from the raw pads list and (optional) axes list. */
static kiln_status pad_amounts(const kiln_node *n, int rank, const int64_t *pads, int npads, const int64_t *raw_axes,
                               int naxes, int64_t *begin, int64_t *end) {
    int axes[KILN_MAX_RANK];
    if (raw_axes) {
        kiln_status st = norm_axes_list(n, raw_axes, naxes, rank, axes);
        if (st) return st;
    } else {
        naxes = rank;
        for (int i = 0; i < rank; i++) axes[i] = i;
    }
    if (npads != 2 * naxes)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "pads has %d values, expected %d (2 per padded axis)", npads,
                                2 * naxes);
    for (int i = 0; i < rank; i++) begin[i] = end[i] = 0;
    for (int i = 0; i < naxes; i++) {
        begin[axes[i]] = pads[i];
        end[axes[i]] = pads[naxes + i];
    }
    return KILN_OK;
}

/* Output extent of one axis, with overflow and crop-below-zero checks; for non-constant
 * modes the (cropped) source must be non-empty when something is padded. */
static kiln_status pad_axis_dim(const kiln_node *n, int mode, int axis, int64_t dim, int64_t b, int64_t e,
                                int64_t *out_dim) {
    int64_t t;
    if (__builtin_add_overflow(dim, b, &t) || __builtin_add_overflow(t, e, &t))
        return kiln_node_errorf(n, KILN_ERR_LIMIT, "padded size of axis %d overflows", axis);
    if (t < 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "pads crop axis %d (size %" PRId64 ") below zero", axis, dim);
    if (mode != PAD_CONSTANT && (b > 0 || e > 0)) {
        int64_t kept = dim - (b < 0 ? -b : 0) - (e < 0 ? -e : 0);
        if (kept <= 0)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "cannot %s-pad axis %d: no source elements",
                                    mode == PAD_REFLECT ? "reflect" : mode == PAD_EDGE ? "edge" : "wrap", axis);
    }
    *out_dim = t;
    return KILN_OK;
}

kiln_status kiln_infer_Pad(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 2);
    if (st) return st;
    const kiln_value *x = c->in[0], *pads = c->in[1];
    const kiln_value *cv = c->n_in > 2 ? c->in[2] : NULL, *axes = c->n_in > 3 ? c->in[3] : NULL;
    int mode;
    st = parse_pad_mode(c->node, &mode);
    if (st) return st;
    if (!is_index_dtype(pads->dtype))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "pads must be i64, got %s", kiln_dtype_name(pads->dtype));
    if (pads->rank >= 0 && pads->rank != 1) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "pads must be 1-D");
    if (cv && cv->dtype != x->dtype)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "constant_value dtype %s differs from data dtype %s",
                                kiln_dtype_name(cv->dtype), kiln_dtype_name(x->dtype));
    if (cv && (cv->rank > 1 || (cv->rank == 1 && cv->dims[0] > 1)))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "constant_value must be a scalar");
    if (axes && !is_index_dtype(axes->dtype))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "axes must be i32 or i64, got %s", kiln_dtype_name(axes->dtype));
    if (x->rank < 0) {
        set_out(c->out[0], x->dtype, -1, NULL, NULL);
        return KILN_OK;
    }
    int r = x->rank;
    int64_t raw_axes[KILN_MAX_RANK], pv[2 * KILN_MAX_RANK];
    int naxes = r;
    bool axes_known = true;
    if (axes) {
        naxes = kiln_value_const_ints(axes, raw_axes, KILN_MAX_RANK);
        if (naxes == -2) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "axes has more than %d entries", r);
        axes_known = naxes >= 0;
    }
    int npads = kiln_value_const_ints(pads, pv, 2 * KILN_MAX_RANK);
    if (npads == -2) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "pads has more than %d entries", 2 * r);
    int64_t d[KILN_MAX_RANK];
    int32_t s[KILN_MAX_RANK];
    if (npads < 0 || !axes_known) {
        /* Unknown amounts: padded axes become dynamic. */
        int tmp_axes[KILN_MAX_RANK];
        bool padded[KILN_MAX_RANK];
        for (int i = 0; i < r; i++) padded[i] = !(axes && axes_known);
        if (axes && axes_known) {
            st = norm_axes_list(c->node, raw_axes, naxes, r, tmp_axes);
            if (st) return st;
            for (int i = 0; i < naxes; i++) padded[tmp_axes[i]] = true;
        }
        for (int i = 0; i < r; i++) {
            d[i] = padded[i] ? -1 : x->dims[i];
            s[i] = padded[i] ? 0 : x->sym[i];
        }
        set_out(c->out[0], x->dtype, r, d, s);
        return KILN_OK;
    }
    int64_t b[KILN_MAX_RANK], e[KILN_MAX_RANK];
    st = pad_amounts(c->node, r, pv, npads, axes ? raw_axes : NULL, naxes, b, e);
    if (st) return st;
    for (int i = 0; i < r; i++) {
        if (b[i] == 0 && e[i] == 0) {
            d[i] = x->dims[i], s[i] = x->sym[i];
        } else if (x->dims[i] < 0) {
            d[i] = -1, s[i] = 0;
        } else {
            st = pad_axis_dim(c->node, mode, i, x->dims[i], b[i], e[i], &d[i]);
            if (st) return st;
            s[i] = 0;
        }
    }
    set_out(c->out[0], x->dtype, r, d, s);
    return KILN_OK;
}

/* Source index along one axis for output coordinate o, or -1 for the constant. The kept
 * source range is [lo, hi) (negative pads crop it first). */
static int64_t pad_src(int mode, int64_t o, int64_t b, int64_t lo, int64_t hi) {
    int64_t src = o - b;
    if (src >= lo && src < hi) return src;
    if (mode == PAD_CONSTANT) return -1;
    int64_t m = hi - lo, rel = src - lo;
    switch (mode) {
    case PAD_EDGE: rel = rel < 0 ? 0 : m - 1; break;
    case PAD_WRAP: rel %= m; if (rel < 0) rel += m; break;
    default: /* reflect without repeating the edge; period 2(m-1) */
        if (m == 1) {
            rel = 0;
        } else {
            int64_t per = 2 * (m - 1);
            rel %= per;
            if (rel < 0) rel += per;
            if (rel >= m) rel = per - rel;
        }
        break;
    }
    return lo + rel;
}

kiln_status kiln_eval_Pad(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                          int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 2, out, n_out);
    if (st) return st;
    const kiln_tensor *x = in[0], *pads = in[1];
    const kiln_tensor *cv = n_in > 2 ? in[2] : NULL, *axes = n_in > 3 ? in[3] : NULL;
    kiln_tensor *y = out[0];
    int mode;
    st = parse_pad_mode(n, &mode);
    if (st) return st;
    int r = x->rank;
    if (pads->numel > 2 * KILN_MAX_RANK || (axes && axes->numel > KILN_MAX_RANK))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "too many pads or axes");
    int64_t pv[2 * KILN_MAX_RANK], av[KILN_MAX_RANK], b[KILN_MAX_RANK], e[KILN_MAX_RANK], od[KILN_MAX_RANK];
    for (int64_t i = 0; i < pads->numel; i++) pv[i] = kiln_tensor_get_i64(pads, i);
    if (axes)
        for (int64_t i = 0; i < axes->numel; i++) av[i] = kiln_tensor_get_i64(axes, i);
    st = pad_amounts(n, r, pv, (int)pads->numel, axes ? av : NULL, axes ? (int)axes->numel : r, b, e);
    if (st) return st;
    for (int i = 0; i < r; i++) {
        st = pad_axis_dim(n, mode, i, x->dims[i], b[i], e[i], &od[i]);
        if (st) return st;
    }
    st = check_out_shape(n, y, r, od);
    if (st) return st;
    if (y->numel == 0) return KILN_OK;
    size_t es = kiln_dtype_size(x->dtype);
    unsigned char cbytes[16] = {0}; /* zero bytes are 0 in every dtype */
    if (cv && cv->numel > 0) {
        if (cv->dtype != x->dtype) return kiln_node_errorf(n, KILN_ERR_SHAPE, "constant_value dtype mismatch");
        memcpy(cbytes, cv->data, es);
    }
    unsigned char *dst = y->data;
    if (x->numel == 0) { /* only the constant mode can get here */
        for (int64_t i = 0; i < y->numel; i++) memcpy(dst + (size_t)i * es, cbytes, es);
        return KILN_OK;
    }
    /* Per-axis source maps (output coordinate -> source index or -1). */
    int64_t total = 0, start[KILN_MAX_RANK], xs[KILN_MAX_RANK];
    for (int i = 0; i < r; i++) start[i] = total, total += od[i];
    int64_t *map = malloc((size_t)(total ? total : 1) * sizeof *map);
    if (!map) return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory");
    for (int i = 0; i < r; i++) {
        int64_t lo = b[i] < 0 ? -b[i] : 0, hi = x->dims[i] - (e[i] < 0 ? -e[i] : 0);
        for (int64_t o = 0; o < od[i]; o++) map[start[i] + o] = pad_src(mode, o, b[i], lo, hi);
    }
    kiln_strides(r, x->dims, xs);
    const unsigned char *src = x->data;
    int64_t pos[KILN_MAX_RANK] = {0}, i = 0;
    do {
        int64_t off = 0;
        bool inside = true;
        for (int d = 0; d < r && inside; d++) {
            int64_t m = map[start[d] + pos[d]];
            if (m < 0) inside = false;
            else off += m * xs[d];
        }
        memcpy(dst + (size_t)i * es, inside ? src + (size_t)off * es : cbytes, es);
        i++;
    } while (kiln_index_next(r, od, pos));
    free(map);
    return KILN_OK;
}

/* ====================================================================== Resize == */

enum { RS_NEAREST, RS_LINEAR, RS_CUBIC };
enum { CT_HALF_PIXEL, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC, CT_TF_CROP, CT_HALF_PIXEL_SYM,
       CT_TF_HALF_PIXEL_NN };
enum { NM_ROUND_FLOOR, NM_ROUND_CEIL, NM_FLOOR, NM_CEIL };
enum { KA_STRETCH, KA_NOT_LARGER, KA_NOT_SMALLER };

typedef struct resize_cfg {
    int mode, ctm, nearest, keep;
    double cubic_a, extrap;
    bool exclude, antialias;
    int axes[KILN_MAX_RANK], naxes;
} resize_cfg;

static int pick(const char *s, const char *const *names, int count) {
    for (int i = 0; i < count; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static kiln_status resize_cfg_read(const kiln_node *n, int rank, resize_cfg *p) {
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    static const char *const ctms[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                       "tf_crop_and_resize", "half_pixel_symmetric", "tf_half_pixel_for_nn"};
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    static const char *const kas[] = {"stretch", "not_larger", "not_smaller"};
    const char *s = kiln_attr_str(n, "mode", "nearest");
    if ((p->mode = pick(s, modes, 3)) < 0) {
        if (!strcmp(s, "bilinear") || !strcmp(s, "trilinear")) p->mode = RS_LINEAR; /* old Upsample names */
        else return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "unknown mode '%s'", s);
    }
    s = kiln_attr_str(n, "coordinate_transformation_mode", "half_pixel");
    if ((p->ctm = pick(s, ctms, 7)) < 0)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "unknown coordinate_transformation_mode '%s'", s);
    s = kiln_attr_str(n, "nearest_mode", "round_prefer_floor");
    if ((p->nearest = pick(s, nms, 4)) < 0)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "unknown nearest_mode '%s'", s);
    s = kiln_attr_str(n, "keep_aspect_ratio_policy", "stretch");
    if ((p->keep = pick(s, kas, 3)) < 0)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "unknown keep_aspect_ratio_policy '%s'", s);
    p->cubic_a = kiln_attr_float(n, "cubic_coeff_a", -0.75f);
    p->extrap = kiln_attr_float(n, "extrapolation_value", 0.0f);
    p->exclude = kiln_attr_int(n, "exclude_outside", 0) != 0;
    p->antialias = kiln_attr_int(n, "antialias", 0) != 0 && p->mode != RS_NEAREST;
    const int64_t *ax;
    int na = kiln_attr_ints(n, "axes", &ax);
    if (na < 0) {
        p->naxes = rank;
        for (int i = 0; i < rank; i++) p->axes[i] = i;
    } else {
        if (na > rank) return kiln_node_errorf(n, KILN_ERR_SHAPE, "axes has %d entries for rank %d", na, rank);
        kiln_status st = norm_axes_list(n, ax, na, rank, p->axes);
        if (st) return st;
        p->naxes = na;
    }
    return KILN_OK;
}

/* Resolve per-axis scale and output size. Exactly one of scales/sizes is non-NULL, with
 * nv values (one per entry of cfg->axes). Unknown input dims (< 0) give unknown outputs. */
static kiln_status resize_plan(const kiln_node *n, const resize_cfg *p, int rank, const int64_t *in_dims,
                               const double *scales, const int64_t *sizes, int nv, double *scale, int64_t *od) {
    if (nv != p->naxes)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s has %d values, expected %d", scales ? "scales" : "sizes", nv,
                                p->naxes);
    for (int i = 0; i < rank; i++) scale[i] = 1.0, od[i] = in_dims[i];
    if (scales) {
        for (int i = 0; i < nv; i++) {
            int a = p->axes[i];
            double sc = scales[i];
            if (!(sc > 0 && isfinite(sc))) return kiln_node_errorf(n, KILN_ERR_SHAPE, "scale %g must be > 0", sc);
            scale[a] = sc;
            if (in_dims[a] < 0) {
                od[a] = sc == 1.0 ? in_dims[a] : -1;
                continue;
            }
            double v = floor(sc * (double)in_dims[a]);
            if (!(v < 4.0e18)) return kiln_node_errorf(n, KILN_ERR_LIMIT, "scaled size of axis %d is too large", a);
            od[a] = (int64_t)v;
        }
        return KILN_OK;
    }
    for (int i = 0; i < nv; i++)
        if (sizes[i] < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "size %" PRId64 " is negative", sizes[i]);
    if (p->keep == KA_STRETCH) {
        for (int i = 0; i < nv; i++) {
            int a = p->axes[i];
            od[a] = sizes[i];
            if (in_dims[a] == 0 && sizes[i] > 0)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "cannot resize empty axis %d to %" PRId64, a, sizes[i]);
            scale[a] = in_dims[a] > 0 ? (double)sizes[i] / (double)in_dims[a] : 1.0;
        }
        return KILN_OK;
    }
    /* keep_aspect_ratio_policy: one scale for all listed axes. */
    double sc = p->keep == KA_NOT_LARGER ? INFINITY : 0.0;
    for (int i = 0; i < nv; i++) {
        int a = p->axes[i];
        if (in_dims[a] < 0) {
            for (int j = 0; j < nv; j++) od[p->axes[j]] = -1;
            return KILN_OK;
        }
        if (in_dims[a] == 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "cannot keep aspect ratio of empty axis %d", a);
        double v = (double)sizes[i] / (double)in_dims[a];
        sc = p->keep == KA_NOT_LARGER ? fmin(sc, v) : fmax(sc, v);
    }
    for (int i = 0; i < nv; i++) {
        int a = p->axes[i];
        double v = floor(sc * (double)in_dims[a] + 0.5); /* round half up */
        if (!(v < 4.0e18)) return kiln_node_errorf(n, KILN_ERR_LIMIT, "size of axis %d is too large", a);
        scale[a] = sc;
        od[a] = (int64_t)v;
    }
    return KILN_OK;
}

/* State of an optional input in inference: 0 absent or empty, 1 unknown, 2 known data. */
static int opt_state(const kiln_value *v) {
    if (!v) return 0;
    if (v->data) return v->data->numel == 0 ? 0 : 2;
    if (v->rank == 1 && v->dims[0] == 0) return 0;
    return 1;
}

kiln_status kiln_infer_Resize(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 1);
    if (st) return st;
    const kiln_value *x = c->in[0];
    const kiln_value *roi = c->n_in > 1 ? c->in[1] : NULL, *sc = c->n_in > 2 ? c->in[2] : NULL,
                     *sz = c->n_in > 3 ? c->in[3] : NULL;
    if (x->dtype == KILN_BOOL) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "X must be numeric, got bool");
    if (sc && !kiln_dtype_is_float(sc->dtype))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "scales must be float, got %s", kiln_dtype_name(sc->dtype));
    if (sz && sz->dtype != KILN_I64)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "sizes must be i64, got %s", kiln_dtype_name(sz->dtype));
    if (roi && !kiln_dtype_is_float(roi->dtype))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "roi must be float, got %s", kiln_dtype_name(roi->dtype));
    if (x->rank < 0) {
        set_out(c->out[0], x->dtype, -1, NULL, NULL);
        return KILN_OK;
    }
    int r = x->rank;
    resize_cfg p;
    st = resize_cfg_read(c->node, r, &p);
    if (st) return st;
    int s_state = opt_state(sc), z_state = opt_state(sz);
    if (s_state == 2 && z_state == 2)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "only one of scales and sizes may be given");
    if (s_state == 0 && z_state == 0)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "one of scales and sizes must be given");
    if (p.ctm == CT_TF_CROP && opt_state(roi) == 0)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "tf_crop_and_resize needs a roi input");
    if (p.ctm == CT_TF_CROP && roi->rank == 1 && roi->dims[0] >= 0 && roi->dims[0] != 2 * p.naxes)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "roi has %" PRId64 " values, expected %d", roi->dims[0],
                                2 * p.naxes);
    int64_t od[KILN_MAX_RANK];
    int32_t s[KILN_MAX_RANK];
    double scale[KILN_MAX_RANK];
    if (s_state == 2 || z_state == 2) {
        double sv[KILN_MAX_RANK];
        int64_t zv[KILN_MAX_RANK];
        int nv;
        if (s_state == 2) {
            if (sc->data->numel > KILN_MAX_RANK) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "too many scales");
            nv = (int)sc->data->numel;
            for (int i = 0; i < nv; i++) sv[i] = kiln_tensor_get(sc->data, i);
        } else {
            nv = kiln_value_const_ints(sz, zv, KILN_MAX_RANK);
            if (nv < 0) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "too many sizes");
        }
        st = resize_plan(c->node, &p, r, x->dims, s_state == 2 ? sv : NULL, s_state == 2 ? NULL : zv, nv, scale, od);
        if (st) return st;
        for (int i = 0; i < r; i++) s[i] = od[i] == x->dims[i] && scale[i] == 1.0 ? x->sym[i] : 0;
    } else {
        /* scales/sizes not known yet: resized axes become dynamic */
        for (int i = 0; i < r; i++) od[i] = x->dims[i], s[i] = x->sym[i];
        for (int i = 0; i < p.naxes; i++) od[p.axes[i]] = -1, s[p.axes[i]] = 0;
    }
    set_out(c->out[0], x->dtype, r, od, s);
    return KILN_OK;
}

/* Source coordinate of output index j along an axis of input length L, output length M. */
static double resize_coord(int ctm, int64_t j, int64_t L, int64_t M, double s, double roi_s, double roi_e) {
    double y = (double)j, out_f = s * (double)L; /* out_f: the fractional output length */
    switch (ctm) {
    case CT_PYTORCH_HALF_PIXEL: return M > 1 ? (y + 0.5) / s - 0.5 : 0.0;
    case CT_ALIGN_CORNERS: return M > 1 ? y * (double)(L - 1) / (out_f - 1.0) : 0.0;
    case CT_ASYMMETRIC: return y / s;
    case CT_TF_CROP:
        if (M > 1) return roi_s * (double)(L - 1) + y * (roi_e - roi_s) * (double)(L - 1) / (out_f - 1.0);
        return 0.5 * (roi_s + roi_e) * (double)(L - 1);
    case CT_HALF_PIXEL_SYM: {
        double adj = (double)M / out_f, center = (double)L / 2.0;
        return center * (1.0 - adj) + (y + 0.5) / s - 0.5;
    }
    case CT_TF_HALF_PIXEL_NN: return (y + 0.5) / s;
    default: return (y + 0.5) / s - 0.5; /* half_pixel */
    }
}

static double cubic_kernel(double x, double a) {
    x = fabs(x);
    if (x <= 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    return 0.0;
}

/* Interpolation taps of one axis: for each output index, ntap (source index, weight)
 * pairs, or ext[j] = 1 when the output takes the extrapolation value. */
typedef struct axis_taps {
    int ntap;
    int64_t *idx;
    double *w;
    unsigned char *ext;
} axis_taps;

static void axis_taps_free(axis_taps *t) {
    free(t->idx);
    free(t->w);
    free(t->ext);
}

static kiln_status resize_axis_taps(const kiln_node *n, const resize_cfg *p, int64_t L, int64_t M, double s,
                                    double roi_s, double roi_e, axis_taps *t) {
    memset(t, 0, sizeof *t);
    double ss = 1.0, first = 0.0; /* kernel scale, first tap offset relative to floor(x) */
    int ntap = 1;
    if (p->mode != RS_NEAREST) {
        /* Antialias stretches the kernel by 1/scale when downsampling. */
        double support = p->mode == RS_LINEAR ? 1.0 : 2.0;
        ss = p->antialias ? fmin(s, 1.0) : 1.0;
        first = floor(-support / ss) + 1.0;
        double cnt = 2.0 - 2.0 * first;
        /* M >= 1 implies s >= 0.5 / L, so a sane kernel never needs more than ~8L taps */
        if (!(cnt <= 16.0 * (double)L + 16.0))
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "antialias kernel too wide (scale %g)", s);
        ntap = (int)cnt;
    }
    int64_t total;
    if (!kiln_mul_dims(M, ntap, &total) || total > (int64_t)(SIZE_MAX / sizeof(double)))
        return kiln_node_errorf(n, KILN_ERR_LIMIT, "resize tap table too large");
    t->ntap = ntap;
    t->idx = malloc((size_t)(total ? total : 1) * sizeof *t->idx);
    t->w = malloc((size_t)(total ? total : 1) * sizeof *t->w);
    t->ext = calloc((size_t)(M ? M : 1), 1);
    if (!t->idx || !t->w || !t->ext) {
        axis_taps_free(t);
        return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory");
    }
    for (int64_t j = 0; j < M; j++) {
        int64_t *ix = t->idx + j * ntap;
        double *w = t->w + j * ntap;
        double x = resize_coord(p->ctm, j, L, M, s, roi_s, roi_e);
        if (!(fabs(x) < 1.0e15)) {
            axis_taps_free(t);
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "source coordinate %g out of range", x);
        }
        if (p->ctm == CT_TF_CROP && (x < 0.0 || x > (double)(L - 1))) {
            t->ext[j] = 1;
            for (int k = 0; k < ntap; k++) ix[k] = 0, w[k] = 0.0;
            continue;
        }
        double x0 = floor(x), fr = x - x0;
        if (p->mode == RS_NEAREST) {
            double k;
            switch (p->nearest) {
            case NM_ROUND_CEIL: k = fr >= 0.5 ? x0 + 1.0 : x0; break;
            case NM_FLOOR: k = x0; break;
            case NM_CEIL: k = fr > 0.0 ? x0 + 1.0 : x0; break;
            default: k = fr > 0.5 ? x0 + 1.0 : x0; break;
            }
            k = fmin(fmax(k, 0.0), (double)(L - 1));
            ix[0] = (int64_t)k;
            w[0] = 1.0;
            continue;
        }
        double sum = 0.0;
        for (int k = 0; k < ntap; k++) {
            double off = first + k, d = (off - fr) * ss, wt;
            wt = p->mode == RS_LINEAR ? fmax(0.0, 1.0 - fabs(d)) : cubic_kernel(d, p->cubic_a);
            int64_t src = (int64_t)x0 + (int64_t)off;
            if (p->exclude && (src < 0 || src >= L)) wt = 0.0;
            ix[k] = src < 0 ? 0 : src >= L ? L - 1 : src; /* edge clamp */
            w[k] = wt;
            sum += wt;
        }
        if ((p->antialias || p->exclude) && sum != 0.0)
            for (int k = 0; k < ntap; k++) w[k] /= sum;
    }
    return KILN_OK;
}

kiln_status kiln_eval_Resize(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                             int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 1, out, n_out);
    if (st) return st;
    const kiln_tensor *x = in[0];
    const kiln_tensor *roi = n_in > 1 ? in[1] : NULL, *sc = n_in > 2 ? in[2] : NULL, *sz = n_in > 3 ? in[3] : NULL;
    if (sc && sc->numel == 0) sc = NULL;
    if (sz && sz->numel == 0) sz = NULL;
    if (roi && roi->numel == 0) roi = NULL;
    kiln_tensor *y = out[0];
    int r = x->rank;
    resize_cfg p;
    st = resize_cfg_read(n, r, &p);
    if (st) return st;
    if (!sc == !sz) return kiln_node_errorf(n, KILN_ERR_SHAPE, "exactly one of scales and sizes must be given");
    const kiln_tensor *vt = sc ? sc : sz;
    if (vt->numel > KILN_MAX_RANK) return kiln_node_errorf(n, KILN_ERR_SHAPE, "too many scales/sizes");
    double sv[KILN_MAX_RANK], scale[KILN_MAX_RANK], rs[KILN_MAX_RANK], re[KILN_MAX_RANK];
    int64_t zv[KILN_MAX_RANK], od[KILN_MAX_RANK];
    for (int64_t i = 0; i < vt->numel; i++) {
        if (sc) sv[i] = kiln_tensor_get(sc, i);
        else zv[i] = kiln_tensor_get_i64(sz, i);
    }
    st = resize_plan(n, &p, r, x->dims, sc ? sv : NULL, sc ? NULL : zv, (int)vt->numel, scale, od);
    if (st) return st;
    st = check_out_shape(n, y, r, od);
    if (st) return st;
    for (int i = 0; i < r; i++) rs[i] = 0.0, re[i] = 1.0;
    if (p.ctm == CT_TF_CROP) {
        if (!roi || roi->numel != 2 * p.naxes)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "tf_crop_and_resize needs roi with %d values", 2 * p.naxes);
        for (int i = 0; i < p.naxes; i++) {
            rs[p.axes[i]] = kiln_tensor_get(roi, i);
            re[p.axes[i]] = kiln_tensor_get(roi, p.naxes + i);
        }
    }
    if (y->numel == 0) return KILN_OK;
    if (x->numel == 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "cannot resize an empty tensor to a non-empty one");

    /* Separable: resample one axis at a time in double, shrinking axes first to keep
     * the intermediates small. */
    int order[KILN_MAX_RANK], nord = 0;
    for (int i = 0; i < r; i++) {
        bool identity = od[i] == x->dims[i] && scale[i] == 1.0 && (p.ctm != CT_TF_CROP || (rs[i] == 0.0 && re[i] == 1.0));
        if (!identity) order[nord++] = i;
    }
    for (int i = 1; i < nord; i++) { /* insertion sort by output/input ratio */
        int a = order[i], j = i - 1;
        double ra = (double)od[a] / (double)x->dims[a];
        while (j >= 0 && (double)od[order[j]] / (double)x->dims[order[j]] > ra) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = a;
    }
    double *cur = malloc((size_t)x->numel * sizeof *cur);
    if (!cur) return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory");
    if (x->dtype == KILN_F32) {
        const float *xf = x->data;
        for (int64_t i = 0; i < x->numel; i++) cur[i] = xf[i];
    } else {
        for (int64_t i = 0; i < x->numel; i++) cur[i] = kiln_tensor_get(x, i);
    }
    int64_t cd[KILN_MAX_RANK];
    for (int i = 0; i < r; i++) cd[i] = x->dims[i];
    for (int oi = 0; oi < nord; oi++) {
        int a = order[oi];
        int64_t L = cd[a], M = od[a];
        axis_taps t;
        st = resize_axis_taps(n, &p, L, M, scale[a], rs[a], re[a], &t);
        if (st) {
            free(cur);
            return st;
        }
        int64_t outer = dims_prod(cd, 0, a), inner = dims_prod(cd, a + 1, r), nn;
        if (!kiln_mul_dims(outer, M, &nn) || !kiln_mul_dims(nn, inner, &nn) ||
            nn > (int64_t)(SIZE_MAX / sizeof(double))) {
            axis_taps_free(&t);
            free(cur);
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "resize intermediate too large");
        }
        double *nxt = malloc((size_t)(nn ? nn : 1) * sizeof *nxt);
        if (!nxt) {
            axis_taps_free(&t);
            free(cur);
            return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory");
        }
        for (int64_t o = 0; o < outer; o++) {
            for (int64_t j = 0; j < M; j++) {
                double *drow = nxt + (o * M + j) * inner;
                if (t.ext[j]) {
                    for (int64_t i = 0; i < inner; i++) drow[i] = p.extrap;
                    continue;
                }
                for (int64_t i = 0; i < inner; i++) drow[i] = 0.0;
                for (int k = 0; k < t.ntap; k++) {
                    double w = t.w[j * t.ntap + k];
                    if (w == 0.0) continue;
                    const double *srow = cur + (o * L + t.idx[j * t.ntap + k]) * inner;
                    for (int64_t i = 0; i < inner; i++) drow[i] += w * srow[i];
                }
            }
        }
        axis_taps_free(&t);
        free(cur);
        cur = nxt;
        cd[a] = M;
    }
    if (y->dtype == KILN_F32) {
        float *yf = y->data;
        for (int64_t i = 0; i < y->numel; i++) yf[i] = (float)cur[i];
    } else if (kiln_dtype_is_float(y->dtype)) {
        for (int64_t i = 0; i < y->numel; i++) kiln_tensor_set(y, i, cur[i]);
    } else {
        /* integers: round half to even, then saturate (kiln_tensor_set clamps) */
        for (int64_t i = 0; i < y->numel; i++) {
            double v = cur[i];
            kiln_tensor_set(y, i, isnan(v) ? 0.0 : nearbyint(v));
        }
    }
    free(cur);
    return KILN_OK;
}

/* ==================================================================== Compress == */

/* Count true entries of condition within limit (< 0: unknown); a true past the limit is an error. */
static kiln_status compress_count(const kiln_node *n, const kiln_tensor *cond, int64_t limit, int64_t *count) {
    int64_t cnt = 0;
    for (int64_t i = 0; i < cond->numel; i++) {
        if (kiln_tensor_get_i64(cond, i) == 0) continue;
        if (limit >= 0 && i >= limit)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "condition selects index %" PRId64 " beyond length %" PRId64, i,
                                    limit);
        cnt++;
    }
    *count = cnt;
    return KILN_OK;
}

kiln_status kiln_infer_Compress(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 2);
    if (st) return st;
    const kiln_value *x = c->in[0], *cond = c->in[1];
    if (cond->dtype != KILN_BOOL)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "condition must be bool, got %s", kiln_dtype_name(cond->dtype));
    if (cond->rank >= 0 && cond->rank != 1) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "condition must be 1-D");
    bool has_axis = kiln_attr_find(c->node, "axis") != NULL;
    int64_t ax = 0;
    if (has_axis) {
        int64_t axis = kiln_attr_int(c->node, "axis", 0);
        if (x->rank == 0) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "axis given for a scalar input");
        if (x->rank > 0 && !kiln_norm_axis(axis, x->rank, &ax))
            return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "axis %" PRId64 " out of range for rank %d", axis, x->rank);
        if (x->rank < 0) {
            set_out(c->out[0], x->dtype, -1, NULL, NULL);
            return KILN_OK;
        }
    }
    int64_t limit = has_axis ? x->dims[ax] : kiln_value_numel(x), cnt = -1;
    if (limit < -1) limit = -1;
    if (cond->data) {
        st = compress_count(c->node, cond->data, limit, &cnt);
        if (st) return st;
    }
    if (!has_axis) {
        set_out(c->out[0], x->dtype, 1, &cnt, NULL);
        return KILN_OK;
    }
    int64_t d[KILN_MAX_RANK];
    int32_t s[KILN_MAX_RANK];
    for (int i = 0; i < x->rank; i++) d[i] = x->dims[i], s[i] = x->sym[i];
    d[ax] = cnt, s[ax] = 0;
    set_out(c->out[0], x->dtype, x->rank, d, s);
    return KILN_OK;
}

kiln_status kiln_eval_Compress(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                               int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 2, out, n_out);
    if (st) return st;
    const kiln_tensor *x = in[0], *cond = in[1];
    kiln_tensor *y = out[0];
    bool has_axis = kiln_attr_find(n, "axis") != NULL;
    int64_t ax = 0, len, outer = 1, inner = 1;
    if (has_axis) {
        if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), x->rank, &ax))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis out of range");
        len = x->dims[ax];
    } else {
        len = x->numel;
    }
    int64_t cnt;
    st = compress_count(n, cond, len, &cnt);
    if (st) return st;
    if (y->numel == 0) return KILN_OK;
    if (has_axis) {
        outer = dims_prod(x->dims, 0, (int)ax);
        inner = dims_prod(x->dims, (int)ax + 1, x->rank);
    }
    size_t es = kiln_dtype_size(x->dtype), row = (size_t)inner * es;
    const unsigned char *src = x->data;
    unsigned char *dst = y->data;
    int64_t lim = cond->numel < len ? cond->numel : len;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < lim; j++)
            if (kiln_tensor_get_i64(cond, j) != 0) {
                memcpy(dst, src + (size_t)((o * len + j) * inner) * es, row);
                dst += row;
            }
    return KILN_OK;
}

/* ===================================================================== NonZero == */

static int64_t count_nonzero(const kiln_tensor *t) {
    int64_t cnt = 0;
    for (int64_t i = 0; i < t->numel; i++) cnt += kiln_tensor_get(t, i) != 0.0; /* NaN counts */
    return cnt;
}

kiln_status kiln_infer_NonZero(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 1);
    if (st) return st;
    const kiln_value *x = c->in[0];
    /* A scalar is treated as a 1-element vector (as numpy and ONNX Runtime do). */
    int64_t d[2] = {x->rank < 0 ? -1 : x->rank == 0 ? 1 : x->rank, x->data ? count_nonzero(x->data) : -1};
    set_out(c->out[0], KILN_I64, 2, d, NULL);
    return KILN_OK;
}

kiln_status kiln_eval_NonZero(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                              int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 1, out, n_out);
    if (st) return st;
    const kiln_tensor *x = in[0];
    kiln_tensor *y = out[0];
    int r = x->rank == 0 ? 1 : x->rank;
    int64_t nnz = count_nonzero(x), one = 1;
    const int64_t *dims = x->rank == 0 ? &one : x->dims;
    int64_t want[2] = {r, nnz};
    st = check_out_shape(n, y, 2, want);
    if (st) return st;
    if (nnz == 0) return KILN_OK;
    int64_t *yo = y->data, pos[KILN_MAX_RANK] = {0}, k = 0, i = 0;
    do {
        if (kiln_tensor_get(x, i) != 0.0) {
            for (int d = 0; d < r; d++) yo[d * nnz + k] = pos[d];
            k++;
        }
        i++;
    } while (kiln_index_next(r, dims, pos));
    return KILN_OK;
}

/* ============================================================= ReverseSequence == */

kiln_status kiln_infer_ReverseSequence(kiln_infer_ctx *c) {
    kiln_status st = check_io(c, 2);
    if (st) return st;
    const kiln_value *x = c->in[0], *lens = c->in[1];
    if (!is_index_dtype(lens->dtype))
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "sequence_lens must be i64, got %s",
                                kiln_dtype_name(lens->dtype));
    int64_t ta = kiln_attr_int(c->node, "time_axis", 0), ba = kiln_attr_int(c->node, "batch_axis", 1);
    if ((ta != 0 && ta != 1) || (ba != 0 && ba != 1) || ta == ba)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "time_axis (%" PRId64 ") and batch_axis (%" PRId64 ") must be 0 and 1",
                                ta, ba);
    if (x->rank >= 0 && x->rank < 2) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "input must have rank >= 2");
    if (lens->rank >= 0 && lens->rank != 1) return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "sequence_lens must be 1-D");
    if (x->rank >= 2 && lens->rank == 1 && x->dims[ba] >= 0 && lens->dims[0] >= 0 && x->dims[ba] != lens->dims[0])
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "sequence_lens has %" PRId64 " entries for batch size %" PRId64,
                                lens->dims[0], x->dims[ba]);
    if (lens->data && x->rank >= 2 && x->dims[ta] >= 0) {
        for (int64_t i = 0; i < lens->data->numel; i++) {
            int64_t v = index_at(lens->data, i);
            if (v < 0 || v > x->dims[ta])
                return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "sequence length %" PRId64 " outside [0, %" PRId64 "]",
                                        v, x->dims[ta]);
        }
    }
    kiln_value_copy_type(c->out[0], x);
    return KILN_OK;
}

kiln_status kiln_eval_ReverseSequence(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                      kiln_tensor *const *out, int n_out) {
    kiln_status st = check_eval_io(n, in, n_in, 2, out, n_out);
    if (st) return st;
    const kiln_tensor *x = in[0], *lens = in[1];
    kiln_tensor *y = out[0];
    int64_t ta = kiln_attr_int(n, "time_axis", 0), ba = kiln_attr_int(n, "batch_axis", 1);
    if (x->rank < 2 || ta < 0 || ta > 1 || ba < 0 || ba > 1 || ta == ba)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "bad rank or axes");
    int64_t nt = x->dims[ta], nbatch = x->dims[ba];
    if (lens->numel != nbatch) return kiln_node_errorf(n, KILN_ERR_SHAPE, "sequence_lens size mismatch");
    if (x->numel == 0) return KILN_OK;
    size_t es = kiln_dtype_size(x->dtype);
    int64_t inner = dims_prod(x->dims, 2, x->rank);
    size_t row = (size_t)inner * es;
    const unsigned char *src = x->data;
    unsigned char *dst = y->data;
    for (int64_t b = 0; b < nbatch; b++) {
        int64_t len = index_at(lens, b);
        if (len < 0 || len > nt)
            return kiln_node_errorf(n, KILN_ERR_INVALID_ARG, "sequence length %" PRId64 " outside [0, %" PRId64 "]", len, nt);
        for (int64_t t = 0; t < nt; t++) {
            int64_t st_t = t < len ? len - 1 - t : t;
            int64_t o_dst = ta == 0 ? t * nbatch + b : b * nt + t;
            int64_t o_src = ta == 0 ? st_t * nbatch + b : b * nt + st_t;
            memcpy(dst + (size_t)o_dst * row, src + (size_t)o_src * row, row);
        }
    }
    return KILN_OK;
}
