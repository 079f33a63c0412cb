/* ops_quant.c — shape/dtype rules and CPU reference for quantization, signal and image ops.
 *
 * Quantized arithmetic follows the ONNX reference's precision: divisions by scales happen
 * in the scales' float type, integer products accumulate exactly (int64), and requantizing
 * multipliers are formed in the scale type before being applied in double. Rounding is half
 * to even (rint under the default rounding mode) and always saturates before converting. */
#include "conv_geom.h"
#include "ops_common.h"

#include <float.h>
#include <stdint.h>

static const double Q_PI = 3.14159265358979323846;

/* ---------------------------------------------------------------- helpers -- */

static kiln_status oom(const kiln_node *n) { return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory"); }

/* calloc of count elements; NULL on overflow or OOM (a zero count still allocates). */
static void *alloc_n(int64_t count, size_t elem)
{
    if (count < 0 || (uint64_t)count > (uint64_t)SIZE_MAX / (elem ? elem : 1)) return NULL;
    return calloc(count ? (size_t)count : 1, elem);
}

static void set_out(kiln_value *v, kiln_dtype dt, int rank, const int64_t *dims, const int32_t *sym)
{
    if (!v) return;
    kiln_value_set(v, dt, rank, dims);
    for (int i = 0; sym && i < rank; i++) v->sym[i] = dims[i] < 0 ? sym[i] : 0;
}

static void set_unknown_rank(kiln_value *v, kiln_dtype dt)
{
    if (!v) return;
    kiln_value_set(v, dt, 0, NULL);
    v->rank = -1;
}

static int64_t prod_dims(int r, const int64_t *d)
{
    int64_t p = 1;
    for (int i = 0; i < r; i++) p *= d[i];
    return p;
}

/* Number of elements of a value when static, else -1. */
static int64_t vnumel(const kiln_value *v) { return v ? kiln_value_numel(v) : -1; }

/* A value with exactly one element (or rank 0). */
static bool one_elem(const kiln_value *v) { return v && (v->rank == 0 || vnumel(v) == 1); }

/* Round a float result to the precision of dt, as a numpy computation in that type would. */
static double round_to(kiln_dtype dt, double v)
{
    switch (dt) {
    case KILN_F32: return (float)v;
    case KILN_F16: return kiln_f16_to_f32(kiln_f32_to_f16((float)v));
    case KILN_BF16: return kiln_bf16_to_f32(kiln_f32_to_bf16((float)v));
    default: return v;
    }
}

/* Integer range of a quantized dtype. */
static bool int_range(kiln_dtype dt, double *lo, double *hi)
{
    *lo = *hi = 0;
    switch (dt) {
    case KILN_U8: *lo = 0; *hi = 255; return true;
    case KILN_I8: *lo = -128; *hi = 127; return true;
    case KILN_U16: *lo = 0; *hi = 65535; return true;
    case KILN_I16: *lo = -32768; *hi = 32767; return true;
    case KILN_I32: *lo = -2147483648.0; *hi = 2147483647.0; return true;
    default: return false;
    }
}

/* Round half to even and saturate into [lo, hi]; NaN maps to 0 (then saturated). */
static int64_t round_sat(double v, double lo, double hi)
{
    double r = rint(v);
    if (r != r) r = 0;
    if (r < lo) r = lo;
    if (r > hi) r = hi;
    return (int64_t)r;
}

/* ONNX element types kiln recognises but does not support (float8, int4, float4, int2). */
static bool exotic_dtype(int64_t dt) { return dt >= 17 && dt <= 27; }

static bool float_dt(kiln_dtype dt) { return kiln_dtype_is_float(dt); }

/* A scalar integer input: *known false when its data is not known. */
static kiln_status scalar_int(const kiln_node *n, const kiln_value *v, const char *what, int64_t *out, bool *known)
{
    *known = false;
    if (!v) return KILN_OK;
    if (!kiln_dtype_is_int(v->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be an integer tensor, got %s", what,
                                kiln_dtype_name(v->dtype));
    if (v->rank > 1 || (v->rank == 1 && v->dims[0] >= 0 && v->dims[0] != 1))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be a scalar", what);
    int64_t tmp[1];
    int cnt = kiln_value_const_ints(v, tmp, 1);
    if (cnt == -1) return KILN_OK;
    if (cnt != 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must hold exactly one value", what);
    *out = tmp[0];
    *known = true;
    return KILN_OK;
}

/* Shape-only value view of a tensor (for re-running layout checks in eval). */
static void view_of(kiln_value *v, const kiln_tensor *t)
{
    memset(v, 0, sizeof *v);
    v->dtype = t->dtype;
    v->rank = t->rank;
    memcpy(v->dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
}

/* ----------------------------------------------- quantization parameters -- */

/* How a scale / zero point maps onto x: one value, one per index of `axis`, or one per
 * block of block_size indices along `axis` (the scale then has x's rank). */
typedef enum { QP_TENSOR, QP_AXIS, QP_BLOCK } qp_mode;

typedef struct qlayout {
    qp_mode mode;
    int64_t axis, block;
    int64_t outer, len, inner, slen; /* x viewed as [outer, len, inner]; slen: scale dim at axis */
} qlayout;

static kiln_status qlayout_make(const kiln_node *n, const kiln_value *x, const kiln_value *s, const kiln_value *zp,
                                qlayout *q)
{
    memset(q, 0, sizeof *q);
    int64_t axis = kiln_attr_int(n, "axis", 1), block = kiln_attr_int(n, "block_size", 0);
    if (block < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "block_size %lld is negative", (long long)block);
    if (zp && s->rank >= 0 && zp->rank >= 0) {
        bool same = zp->rank == s->rank;
        for (int i = 0; same && i < s->rank; i++)
            if (s->dims[i] >= 0 && zp->dims[i] >= 0 && s->dims[i] != zp->dims[i]) same = false;
        if (!same && !(one_elem(s) && one_elem(zp)))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "the zero point's shape differs from the scale's");
    }
    if (s->rank < 0 || one_elem(s)) { /* per tensor (or not yet known) */
        q->mode = QP_TENSOR;
        return KILN_OK;
    }
    if (x->rank < 0) return KILN_OK;
    if (!kiln_norm_axis(axis, x->rank, &q->axis))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
    int64_t xa = x->dims[q->axis];
    if (block == 0) {
        if (s->rank != 1)
            return kiln_node_errorf(n, KILN_ERR_SHAPE,
                                    "the scale must be a scalar or 1-D (per-axis) without block_size, got rank %d",
                                    s->rank);
        if (xa >= 0 && s->dims[0] >= 0 && s->dims[0] != xa)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "per-axis scale has %lld values but axis %lld has %lld",
                                    (long long)s->dims[0], (long long)q->axis, (long long)xa);
        q->mode = QP_AXIS;
    } else {
        if (s->rank != x->rank)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "blocked scale must have the input's rank %d, got %d",
                                    x->rank, s->rank);
        for (int i = 0; i < x->rank; i++) {
            int64_t xd = x->dims[i], sd = s->dims[i];
            if (xd < 0 || sd < 0) continue;
            int64_t want = i == q->axis ? (xd + block - 1) / block : xd;
            if (sd != want)
                return kiln_node_errorf(n, KILN_ERR_SHAPE,
                                        "blocked scale dim %d is %lld, expected %lld (block_size %lld)", i,
                                        (long long)sd, (long long)want, (long long)block);
        }
        q->mode = QP_BLOCK;
        q->block = block;
    }
    return KILN_OK;
}

/* Fill the [outer, len, inner] view from concrete dims. */
static void qlayout_bind(qlayout *q, const kiln_tensor *x, const kiln_tensor *s)
{
    if (q->mode == QP_TENSOR) {
        q->outer = 1;
        q->len = 1;
        q->inner = x->numel;
        return;
    }
    q->outer = prod_dims((int)q->axis, x->dims);
    q->len = x->dims[q->axis];
    q->inner = prod_dims(x->rank - (int)q->axis - 1, x->dims + q->axis + 1);
    q->slen = s->dims[s->rank == 1 ? 0 : q->axis];
}

/* Index of the scale element for x element (o, a, i). */
static int64_t qlayout_index(const qlayout *q, int64_t o, int64_t a, int64_t i)
{
    switch (q->mode) {
    case QP_AXIS: return a;
    case QP_BLOCK: return (o * q->slen + a / q->block) * q->inner + i;
    default: return 0;
    }
}

/* ------------------------------------------------------- QuantizeLinear -- */

kiln_status kiln_infer_QuantizeLinear(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *s = c->in[1], *zp = c->n_in > 2 ? c->in[2] : NULL;
    if (!x || !s) return kiln_node_errorf(n, KILN_ERR_SHAPE, "x and y_scale are required");
    if (!float_dt(x->dtype) && x->dtype != KILN_I32)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "x must be float or int32, got %s", kiln_dtype_name(x->dtype));
    if (!float_dt(s->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "y_scale must be float, got %s", kiln_dtype_name(s->dtype));
    int64_t od = kiln_attr_int(n, "output_dtype", 0), prec = kiln_attr_int(n, "precision", 0);
    if (prec && !float_dt((kiln_dtype)prec))
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "precision %lld is not a supported float type",
                                (long long)prec);
    int64_t out_dt = zp ? zp->dtype : od ? od : KILN_U8;
    if (zp && od && od != zp->dtype)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "output_dtype %lld disagrees with the zero point's %s",
                                (long long)od, kiln_dtype_name(zp->dtype));
    double lo, hi;
    if (exotic_dtype(out_dt))
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "quantizing to ONNX type %lld (float8/int4/int2) is not supported",
                                (long long)out_dt);
    if (!int_range((kiln_dtype)out_dt, &lo, &hi))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "output type %s is not a quantized type",
                                kiln_dtype_name((kiln_dtype)out_dt));
    qlayout q;
    kiln_status st = qlayout_make(n, x, s, zp, &q);
    if (st) return st;
    kiln_value_copy_type(c->out[0], x);
    c->out[0]->dtype = (kiln_dtype)out_dt;
    return KILN_OK;
}

kiln_status kiln_eval_QuantizeLinear(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                     int n_out)
{
    (void)n_out;
    const kiln_tensor *x = in[0], *s = in[1], *zp = n_in > 2 ? in[2] : NULL;
    kiln_tensor *y = out[0];
    qlayout q;
    kiln_value vx, vs, vz;
    view_of(&vx, x);
    view_of(&vs, s);
    if (zp) view_of(&vz, zp);
    kiln_status st = qlayout_make(n, &vx, &vs, zp ? &vz : NULL, &q);
    if (st) return st;
    qlayout_bind(&q, x, s);
    double lo, hi;
    int_range(y->dtype, &lo, &hi);
    kiln_dtype prec = (kiln_dtype)kiln_attr_int(n, "precision", 0);
    /* numpy divides in the promoted type of x and the scale unless precision says otherwise */
    kiln_dtype div_t = prec ? prec : x->dtype == KILN_I32 ? KILN_F64 : x->dtype == s->dtype ? x->dtype : KILN_F32;
    for (int64_t o = 0; o < q.outer; o++)
        for (int64_t a = 0; a < q.len; a++)
            for (int64_t i = 0; i < q.inner; i++) {
                int64_t idx = (o * q.len + a) * q.inner + i, si = qlayout_index(&q, o, a, i);
                double xv = kiln_tensor_get(x, idx), sv = kiln_tensor_get(s, si);
                double qv = div_t == KILN_F64 ? xv / sv : round_to(div_t, (double)((float)xv / (float)sv));
                double z = zp ? (double)kiln_tensor_get_i64(zp, si) : 0.0;
                double r = rint(qv);
                if (r != r) r = 0;
                kiln_tensor_set_i64(y, idx, round_sat(r + z, lo, hi));
            }
    return KILN_OK;
}

/* ----------------------------------------------------- DequantizeLinear -- */

kiln_status kiln_infer_DequantizeLinear(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *s = c->in[1], *zp = c->n_in > 2 ? c->in[2] : NULL;
    if (!x || !s) return kiln_node_errorf(n, KILN_ERR_SHAPE, "x and x_scale are required");
    double lo, hi;
    if (!int_range(x->dtype, &lo, &hi))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "x must be a quantized integer type, got %s",
                                kiln_dtype_name(x->dtype));
    if (!float_dt(s->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "x_scale must be float, got %s", kiln_dtype_name(s->dtype));
    if (zp && zp->dtype != x->dtype)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "zero point type %s differs from x's %s",
                                kiln_dtype_name(zp->dtype), kiln_dtype_name(x->dtype));
    int64_t od = kiln_attr_int(n, "output_dtype", 0);
    if (od && !float_dt((kiln_dtype)od))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "output_dtype %lld is not a float type", (long long)od);
    qlayout q;
    kiln_status st = qlayout_make(n, x, s, zp, &q);
    if (st) return st;
    kiln_value_copy_type(c->out[0], x);
    c->out[0]->dtype = od ? (kiln_dtype)od : s->dtype;
    return KILN_OK;
}

kiln_status kiln_eval_DequantizeLinear(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                       int n_out)
{
    (void)n_out;
    const kiln_tensor *x = in[0], *s = in[1], *zp = n_in > 2 ? in[2] : NULL;
    kiln_value vx, vs, vz;
    view_of(&vx, x);
    view_of(&vs, s);
    if (zp) view_of(&vz, zp);
    qlayout q;
    kiln_status st = qlayout_make(n, &vx, &vs, zp ? &vz : NULL, &q);
    if (st) return st;
    qlayout_bind(&q, x, s);
    bool wide = x->dtype == KILN_I32; /* float32 - int32 promotes to double in numpy */
    for (int64_t o = 0; o < q.outer; o++)
        for (int64_t a = 0; a < q.len; a++)
            for (int64_t i = 0; i < q.inner; i++) {
                int64_t idx = (o * q.len + a) * q.inner + i, si = qlayout_index(&q, o, a, i);
                float xf = (float)kiln_tensor_get_i64(x, idx), sv = (float)kiln_tensor_get(s, si);
                double y;
                if (wide) {
                    double d = (double)xf - (zp ? (double)kiln_tensor_get_i64(zp, si) : 0.0);
                    y = zp ? d * (double)sv : (double)(xf * sv);
                } else {
                    float d = xf - (zp ? (float)kiln_tensor_get_i64(zp, si) : 0.0f);
                    y = d * sv;
                }
                kiln_tensor_set(out[0], idx, y);
            }
    return KILN_OK;
}

/* ------------------------------------------------ DynamicQuantizeLinear -- */

kiln_status kiln_infer_DynamicQuantizeLinear(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0];
    if (!x) return kiln_node_errorf(n, KILN_ERR_SHAPE, "x is required");
    if (x->dtype != KILN_F32 && x->dtype != KILN_F16 && x->dtype != KILN_BF16)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "x must be float, got %s", kiln_dtype_name(x->dtype));
    if (c->out[0]) {
        kiln_value_copy_type(c->out[0], x);
        c->out[0]->dtype = KILN_U8;
    }
    set_out(c->out[1], x->dtype, 0, NULL, NULL);
    set_out(c->out[2], KILN_U8, 0, NULL, NULL);
    return KILN_OK;
}

kiln_status kiln_eval_DynamicQuantizeLinear(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                            kiln_tensor *const *out, int n_out)
{
    (void)n, (void)n_in, (void)n_out;
    const kiln_tensor *x = in[0];
    float mx = 0.0f, mn = 0.0f; /* the range always includes zero */
    for (int64_t i = 0; i < x->numel; i++) {
        float v = (float)kiln_tensor_get(x, i);
        if (v > mx) mx = v;
        if (v < mn) mn = v;
    }
    float scale = (mx == mn ? 1.0f : mx - mn) / 255.0f;
    float zp0 = 0.0f - mn / scale;
    if (zp0 < 0.0f) zp0 = 0.0f;
    if (zp0 > 255.0f) zp0 = 255.0f;
    float zpi = rintf(zp0);
    if (out[0])
        for (int64_t i = 0; i < x->numel; i++) {
            float q = rintf((float)kiln_tensor_get(x, i) / scale) + zpi;
            kiln_tensor_set_i64(out[0], i, round_sat(q, 0.0, 255.0));
        }
    if (out[1]) kiln_tensor_set(out[1], 0, scale);
    if (out[2]) kiln_tensor_set_i64(out[2], 0, (int64_t)zpi);
    return KILN_OK;
}

/* ------------------------------------------------ integer matrix products -- */

static bool int8_dt(kiln_dtype dt) { return dt == KILN_I8 || dt == KILN_U8; }

/* Output shape of a numpy-style matmul of a and b (MatMulInteger, QLinearMatMul). */
static kiln_status mm_infer(const kiln_node *n, const kiln_value *a, const kiln_value *b, kiln_dtype dt,
                            kiln_value *out)
{
    if (a->rank < 0 || b->rank < 0) {
        set_unknown_rank(out, dt);
        return KILN_OK;
    }
    int ra = a->rank, rb = b->rank;
    if (ra < 1 || rb < 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "matrix operands must have rank >= 1");
    int64_t ka = a->dims[ra - 1], kb = b->dims[rb >= 2 ? rb - 2 : 0];
    if (ka >= 0 && kb >= 0 && ka != kb)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "inner dims differ: %lld vs %lld", (long long)ka, (long long)kb);
    kiln_value ba, bb, bo;
    memset(&ba, 0, sizeof ba);
    memset(&bb, 0, sizeof bb);
    memset(&bo, 0, sizeof bo);
    ba.rank = ra > 2 ? ra - 2 : 0;
    bb.rank = rb > 2 ? rb - 2 : 0;
    for (int i = 0; i < ba.rank; i++) ba.dims[i] = a->dims[i], ba.sym[i] = a->sym[i];
    for (int i = 0; i < bb.rank; i++) bb.dims[i] = b->dims[i], bb.sym[i] = b->sym[i];
    const kiln_value *vals[2] = {&ba, &bb};
    kiln_status st = kiln_infer_broadcast(n, vals, 2, &bo);
    if (st) return st;
    int64_t od[KILN_MAX_RANK + 2];
    int32_t os[KILN_MAX_RANK + 2];
    int r = bo.rank;
    for (int i = 0; i < r; i++) od[i] = bo.dims[i], os[i] = bo.sym[i];
    if (ra >= 2) od[r] = a->dims[ra - 2], os[r++] = a->sym[ra - 2];
    if (rb >= 2) od[r] = b->dims[rb - 1], os[r++] = b->sym[rb - 1];
    if (r > KILN_MAX_RANK) return kiln_node_errorf(n, KILN_ERR_LIMIT, "output rank %d is too large", r);
    set_out(out, dt, r, od, os);
    return KILN_OK;
}

/* The matrix view of a matmul: A as [batch..., M, K], B as [batch..., K, N] (rank-1 operands
 * promoted as numpy does), output batch dims broadcast. */
typedef struct mm_view {
    int nb;
    int64_t bdims[KILN_MAX_RANK], astr[KILN_MAX_RANK], bstr[KILN_MAX_RANK];
    int64_t M, K, N, batches;
} mm_view;

static void mm_view_make(const kiln_tensor *a, const kiln_tensor *b, mm_view *v)
{
    int ra = a->rank, rb = b->rank;
    v->M = ra >= 2 ? a->dims[ra - 2] : 1;
    v->K = a->dims[ra - 1];
    v->N = rb >= 2 ? b->dims[rb - 1] : 1;
    int na = ra > 2 ? ra - 2 : 0, nbb = rb > 2 ? rb - 2 : 0;
    v->nb = na > nbb ? na : nbb;
    int64_t sa = v->M * v->K, sb = v->K * v->N;
    /* batch strides (in matrices) of each operand, 0 where broadcast */
    int64_t ma = 1, mb = 1;
    for (int i = v->nb - 1; i >= 0; i--) {
        int ia = i - (v->nb - na), ib = i - (v->nb - nbb);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        v->bdims[i] = da == 1 ? db : da; /* numpy: 1 broadcasts, including against 0 */
        v->astr[i] = da == 1 ? 0 : ma * sa;
        v->bstr[i] = db == 1 ? 0 : mb * sb;
        ma *= da;
        mb *= db;
    }
    v->batches = prod_dims(v->nb, v->bdims);
}

/* Exact integer matmul of zero-point-adjusted operands into c[batches*M*N]. */
static void mm_int(const mm_view *v, const int32_t *a, const int32_t *b, int64_t *c)
{
    int64_t idx[KILN_MAX_RANK] = {0};
    for (int64_t bi = 0; bi < v->batches; bi++) {
        int64_t ao = 0, bo = 0;
        for (int i = 0; i < v->nb; i++) ao += idx[i] * v->astr[i], bo += idx[i] * v->bstr[i];
        const int32_t *ap = a + ao, *bp = b + bo;
        int64_t *cp = c + bi * v->M * v->N;
        for (int64_t m = 0; m < v->M; m++)
            for (int64_t j = 0; j < v->N; j++) {
                int64_t acc = 0;
                for (int64_t k = 0; k < v->K; k++) acc += (int64_t)ap[m * v->K + k] * bp[k * v->N + j];
                cp[m * v->N + j] = acc;
            }
        kiln_index_next(v->nb, v->bdims, idx);
    }
}

/* A zero point must be one value, a vector of `vec_len` values (vec_axis of x: rows of A,
 * columns of B, output channels of W), or broadcastable to x. */
static kiln_status check_zp(const kiln_node *n, const kiln_value *x, const kiln_value *zp, const char *what,
                            int vec_axis)
{
    if (!zp) return KILN_OK;
    if (zp->dtype != x->dtype)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s type %s differs from its input's %s", what,
                                kiln_dtype_name(zp->dtype), kiln_dtype_name(x->dtype));
    if (zp->rank < 0 || x->rank < 0 || one_elem(zp)) return KILN_OK;
    if (zp->rank == 1 && vec_axis >= 0 && vec_axis < x->rank) {
        if (zp->dims[0] >= 0 && x->dims[vec_axis] >= 0 && zp->dims[0] != x->dims[vec_axis])
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s has %lld values, expected 1 or %lld", what,
                                    (long long)zp->dims[0], (long long)x->dims[vec_axis]);
        return KILN_OK;
    }
    if (zp->rank > x->rank) return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s has a higher rank than its input", what);
    for (int i = 0; i < zp->rank; i++) {
        int64_t zd = zp->dims[i], xd = x->dims[x->rank - zp->rank + i];
        if (zd >= 0 && xd >= 0 && zd != 1 && zd != xd)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s cannot be broadcast to its input", what);
    }
    return KILN_OK;
}

/* x - zp as int32 (int8/uint8 differences always fit). A 1-D zp of x->dims[vec_axis]
 * values applies along vec_axis; any other shape broadcasts numpy-style. NULL on OOM. */
static int32_t *zp_adjust(const kiln_tensor *x, const kiln_tensor *zp, int vec_axis)
{
    int32_t *r = alloc_n(x->numel, sizeof *r);
    if (!r) return NULL;
    if (!zp || zp->numel == 1) {
        int64_t z = zp ? kiln_tensor_get_i64(zp, 0) : 0;
        for (int64_t i = 0; i < x->numel; i++) r[i] = (int32_t)(kiln_tensor_get_i64(x, i) - z);
        return r;
    }
    if (zp->rank == 1 && vec_axis >= 0 && vec_axis < x->rank && zp->dims[0] == x->dims[vec_axis]) {
        int64_t inner = prod_dims(x->rank - vec_axis - 1, x->dims + vec_axis + 1), len = x->dims[vec_axis];
        for (int64_t i = 0; i < x->numel; i++)
            r[i] = (int32_t)(kiln_tensor_get_i64(x, i) - kiln_tensor_get_i64(zp, (i / inner) % len));
        return r;
    }
    int64_t str[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0};
    kiln_bcast_strides(zp, x->rank, x->dims, str);
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t zo = 0;
        for (int d = 0; d < x->rank; d++) zo += idx[d] * str[d];
        r[i] = (int32_t)(kiln_tensor_get_i64(x, i) - kiln_tensor_get_i64(zp, zo));
        kiln_index_next(x->rank, x->dims, idx);
    }
    return r;
}

/* Store an exact int64 result into an int32 output with two's-complement wraparound (numpy's
 * int32 arithmetic), without relying on implementation-defined narrowing. */
static int32_t wrap_i32(int64_t v)
{
    uint32_t u = (uint32_t)(uint64_t)v;
    return u <= INT32_MAX ? (int32_t)u : (int32_t)(u - 2147483648u) - INT32_MAX - 1;
}

kiln_status kiln_infer_MatMulInteger(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *a = c->in[0], *b = c->in[1];
    const kiln_value *az = c->n_in > 2 ? c->in[2] : NULL, *bz = c->n_in > 3 ? c->in[3] : NULL;
    if (!a || !b) return kiln_node_errorf(n, KILN_ERR_SHAPE, "A and B are required");
    if (!int8_dt(a->dtype) || !int8_dt(b->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "A and B must be int8 or uint8, got %s and %s",
                                kiln_dtype_name(a->dtype), kiln_dtype_name(b->dtype));
    kiln_status st;
    if ((st = check_zp(n, a, az, "a_zero_point", a->rank >= 2 ? a->rank - 2 : -1))) return st;
    if ((st = check_zp(n, b, bz, "b_zero_point", b->rank - 1))) return st;
    return mm_infer(n, a, b, KILN_I32, c->out[0]);
}

kiln_status kiln_eval_MatMulInteger(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                    int n_out)
{
    (void)n_out;
    const kiln_tensor *a = in[0], *b = in[1], *az = n_in > 2 ? in[2] : NULL, *bz = n_in > 3 ? in[3] : NULL;
    mm_view v;
    mm_view_make(a, b, &v);
    int32_t *aa = zp_adjust(a, az, a->rank >= 2 ? a->rank - 2 : -1), *bb = zp_adjust(b, bz, b->rank - 1);
    int64_t *acc = alloc_n(out[0]->numel, sizeof *acc);
    if (!aa || !bb || !acc) {
        free(aa);
        free(bb);
        free(acc);
        return oom(n);
    }
    mm_int(&v, aa, bb, acc);
    int32_t *y = out[0]->data;
    for (int64_t i = 0; i < out[0]->numel; i++) y[i] = wrap_i32(acc[i]);
    free(aa);
    free(bb);
    free(acc);
    return KILN_OK;
}

/* Requantizing multiplier a_s * b_s / y_s, formed in the scales' type as numpy does. */
static double requant_mult(kiln_dtype st, double as, double bs, double ys)
{
    if (st == KILN_F64) return as * bs / ys;
    double p = round_to(st, (double)((float)as * (float)bs));
    return round_to(st, (double)((float)p / (float)ys));
}

/* A scale (or y zero point) that is one value or a vector of `len` values. */
static kiln_status check_vec(const kiln_node *n, const kiln_value *v, const char *what, int64_t len, bool is_float)
{
    if (!v) return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s is required", what);
    if (is_float && !float_dt(v->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be float, got %s", what, kiln_dtype_name(v->dtype));
    if (v->rank < 0 || one_elem(v)) return KILN_OK;
    if (v->rank != 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be a scalar or 1-D, got rank %d", what, v->rank);
    if (v->dims[0] >= 0 && len >= 0 && v->dims[0] != len)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s has %lld values, expected 1 or %lld", what,
                                (long long)v->dims[0], (long long)len);
    return KILN_OK;
}

static double vec_at(const kiln_tensor *t, int64_t i) { return kiln_tensor_get(t, t->numel == 1 ? 0 : i); }

kiln_status kiln_infer_QLinearMatMul(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *a = c->in[0], *as = c->in[1], *az = c->in[2], *b = c->in[3], *bs = c->in[4], *bz = c->in[5],
                     *ys = c->in[6], *yz = c->in[7];
    if (!a || !b || !yz) return kiln_node_errorf(n, KILN_ERR_SHAPE, "a, b and y_zero_point are required");
    if (!int8_dt(a->dtype) || !int8_dt(b->dtype) || !int8_dt(yz->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "a, b and y_zero_point must be int8 or uint8");
    int64_t M = a->rank >= 2 ? a->dims[a->rank - 2] : a->rank == 1 ? 1 : -1;
    int64_t N = b->rank >= 2 ? b->dims[b->rank - 1] : b->rank == 1 ? 1 : -1;
    kiln_status st;
    if ((st = check_vec(n, as, "a_scale", M, true)) || (st = check_vec(n, bs, "b_scale", N, true)) ||
        (st = check_vec(n, ys, "y_scale", M, true)) || (st = check_vec(n, yz, "y_zero_point", M, false)))
        return st;
    if ((st = check_zp(n, a, az, "a_zero_point", a->rank >= 2 ? a->rank - 2 : -1))) return st;
    if ((st = check_zp(n, b, bz, "b_zero_point", b->rank - 1))) return st;
    return mm_infer(n, a, b, yz->dtype, c->out[0]);
}

kiln_status kiln_eval_QLinearMatMul(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                    int n_out)
{
    (void)n_in, (void)n_out;
    const kiln_tensor *a = in[0], *as = in[1], *az = in[2], *b = in[3], *bs = in[4], *bz = in[5], *ys = in[6],
                      *yz = in[7];
    mm_view v;
    mm_view_make(a, b, &v);
    int32_t *aa = zp_adjust(a, az, a->rank >= 2 ? a->rank - 2 : -1), *bb = zp_adjust(b, bz, b->rank - 1);
    int64_t *acc = alloc_n(out[0]->numel, sizeof *acc);
    if (!aa || !bb || !acc) {
        free(aa);
        free(bb);
        free(acc);
        return oom(n);
    }
    mm_int(&v, aa, bb, acc);
    kiln_dtype st = as->dtype == bs->dtype && bs->dtype == ys->dtype ? as->dtype : KILN_F32;
    double lo, hi;
    int_range(out[0]->dtype, &lo, &hi);
    for (int64_t i = 0; i < out[0]->numel; i++) {
        int64_t m = (i / v.N) % v.M, j = i % v.N;
        double mult = requant_mult(st, vec_at(as, m), vec_at(bs, j), vec_at(ys, m));
        double r = (double)acc[i] * mult + (double)kiln_tensor_get_i64(yz, yz->numel == 1 ? 0 : m);
        kiln_tensor_set_i64(out[0], i, round_sat(r, lo, hi));
    }
    free(aa);
    free(bb);
    free(acc);
    return KILN_OK;
}

/* ------------------------------------------------- integer convolutions -- */

#define Q_ATTR_MAX ((int64_t)1 << 31)

/* Convolution geometry of ConvInteger/QLinearConv from the X and W shapes (dims may be -1)
 * and the Conv attributes (conv_geom.h). */
static kiln_status qconv_geom(const kiln_node *n, const kiln_value *x, const kiln_value *w, kiln_conv_geom *g)
{
    if (x->rank < 3) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X must be N x C x D1... (rank >= 3), got rank %d", x->rank);
    if (w->rank != x->rank) return kiln_node_errorf(n, KILN_ERR_SHAPE, "W rank %d differs from X rank %d", w->rank, x->rank);
    return kiln_conv_geom_make(n, x->rank, x->dims, w->dims, g);
}

static kiln_status qconv_out(const kiln_node *n, const kiln_value *x, const kiln_value *w, kiln_dtype dt,
                             kiln_value *out)
{
    if (x->rank < 0 || w->rank < 0) {
        set_unknown_rank(out, dt);
        return KILN_OK;
    }
    kiln_conv_geom g;
    kiln_status st = qconv_geom(n, x, w, &g);
    if (st) return st;
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK] = {0};
    kiln_conv_geom_out_dims(&g, od);
    os[0] = x->sym[0];
    os[1] = w->sym[0];
    set_out(out, dt, x->rank, od, os);
    return KILN_OK;
}

/* Exact integer N-d convolution; x/w are zero-point adjusted; bias (int32, may be NULL). */
static void conv_int(const kiln_conv_geom *g, const int32_t *x, const int32_t *w, const kiln_tensor *bias, int64_t *y)
{
    int nsp = g->nsp;
    int64_t in_sz = prod_dims(nsp, g->in), out_sz = prod_dims(nsp, g->out), k_sz = prod_dims(nsp, g->k);
    int64_t in_str[KILN_MAX_RANK];
    kiln_strides(nsp, g->in, in_str);
    for (int64_t b = 0; b < g->N; b++)
        for (int64_t m = 0; m < g->M; m++) {
            int64_t grp = m / g->Mg, bv = bias ? kiln_tensor_get_i64(bias, m) : 0;
            int64_t op[KILN_MAX_RANK] = {0};
            for (int64_t o = 0; o < out_sz; o++) {
                int64_t acc = bv;
                for (int64_t ci = 0; ci < g->Cg; ci++) {
                    const int32_t *xp = x + (b * g->C + grp * g->Cg + ci) * in_sz;
                    const int32_t *wp = w + (m * g->Cg + ci) * k_sz;
                    int64_t kp[KILN_MAX_RANK] = {0};
                    for (int64_t kk = 0; kk < k_sz; kk++) {
                        int64_t off = 0;
                        bool inside = true;
                        for (int i = 0; i < nsp && inside; i++) {
                            int64_t p = op[i] * g->s[i] - g->pb[i] + kp[i] * g->d[i];
                            if (p < 0 || p >= g->in[i]) inside = false;
                            off += p * in_str[i];
                        }
                        if (inside) acc += (int64_t)xp[off] * wp[kk];
                        kiln_index_next(nsp, g->k, kp);
                    }
                }
                y[(b * g->M + m) * out_sz + o] = acc;
                kiln_index_next(nsp, g->out, op);
            }
        }
}

kiln_status kiln_infer_ConvInteger(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *w = c->in[1];
    const kiln_value *xz = c->n_in > 2 ? c->in[2] : NULL, *wz = c->n_in > 3 ? c->in[3] : NULL;
    if (!x || !w) return kiln_node_errorf(n, KILN_ERR_SHAPE, "x and w are required");
    if (!int8_dt(x->dtype) || !int8_dt(w->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "x and w must be int8 or uint8, got %s and %s",
                                kiln_dtype_name(x->dtype), kiln_dtype_name(w->dtype));
    kiln_status st;
    if ((st = check_zp(n, x, xz, "x_zero_point", -1))) return st;
    if (xz && xz->rank >= 0 && !one_elem(xz))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "x_zero_point must be a scalar (per-tensor)");
    if ((st = check_zp(n, w, wz, "w_zero_point", 0))) return st;
    return qconv_out(n, x, w, KILN_I32, c->out[0]);
}

kiln_status kiln_eval_ConvInteger(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                  int n_out)
{
    (void)n_out;
    const kiln_tensor *x = in[0], *w = in[1], *xz = n_in > 2 ? in[2] : NULL, *wz = n_in > 3 ? in[3] : NULL;
    kiln_value vx, vw;
    view_of(&vx, x);
    view_of(&vw, w);
    kiln_conv_geom g;
    kiln_status st = qconv_geom(n, &vx, &vw, &g);
    if (st) return st;
    int32_t *xa = zp_adjust(x, xz, -1), *wa = zp_adjust(w, wz, 0);
    int64_t *acc = alloc_n(out[0]->numel, sizeof *acc);
    if (!xa || !wa || !acc) {
        free(xa);
        free(wa);
        free(acc);
        return oom(n);
    }
    conv_int(&g, xa, wa, NULL, acc);
    int32_t *y = out[0]->data;
    for (int64_t i = 0; i < out[0]->numel; i++) y[i] = wrap_i32(acc[i]);
    free(xa);
    free(wa);
    free(acc);
    return KILN_OK;
}

kiln_status kiln_infer_QLinearConv(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *xs = c->in[1], *xz = c->in[2], *w = c->in[3], *ws = c->in[4], *wz = c->in[5],
                     *ys = c->in[6], *yz = c->in[7], *bias = c->n_in > 8 ? c->in[8] : NULL;
    if (!x || !w || !yz) return kiln_node_errorf(n, KILN_ERR_SHAPE, "x, w and y_zero_point are required");
    if (!int8_dt(x->dtype) || !int8_dt(w->dtype) || !int8_dt(yz->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "x, w and y_zero_point must be int8 or uint8");
    int64_t M = w->rank >= 1 ? w->dims[0] : -1;
    kiln_status st;
    if ((st = check_vec(n, xs, "x_scale", 1, true)) || (st = check_vec(n, ws, "w_scale", M, true)) ||
        (st = check_vec(n, ys, "y_scale", 1, true)) || (st = check_vec(n, yz, "y_zero_point", 1, false)))
        return st;
    if ((st = check_zp(n, x, xz, "x_zero_point", -1))) return st;
    if (xz && xz->rank >= 0 && !one_elem(xz))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "x_zero_point must be a scalar (per-tensor)");
    if ((st = check_zp(n, w, wz, "w_zero_point", 0))) return st;
    if (bias) {
        if (bias->dtype != KILN_I32)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "B must be int32, got %s", kiln_dtype_name(bias->dtype));
        if (bias->rank >= 0 && (bias->rank != 1 || (bias->dims[0] >= 0 && M >= 0 && bias->dims[0] != M)))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "B must be 1-D with one value per output channel");
    }
    return qconv_out(n, x, w, yz->dtype, c->out[0]);
}

kiln_status kiln_eval_QLinearConv(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                  int n_out)
{
    (void)n_out;
    const kiln_tensor *x = in[0], *xs = in[1], *xz = in[2], *w = in[3], *ws = in[4], *wz = in[5], *ys = in[6],
                      *yz = in[7], *bias = n_in > 8 ? in[8] : NULL;
    kiln_value vx, vw;
    view_of(&vx, x);
    view_of(&vw, w);
    kiln_conv_geom g;
    kiln_status st = qconv_geom(n, &vx, &vw, &g);
    if (st) return st;
    int32_t *xa = zp_adjust(x, xz, -1), *wa = zp_adjust(w, wz, 0);
    int64_t *acc = alloc_n(out[0]->numel, sizeof *acc);
    if (!xa || !wa || !acc) {
        free(xa);
        free(wa);
        free(acc);
        return oom(n);
    }
    conv_int(&g, xa, wa, bias, acc);
    kiln_dtype sdt = xs->dtype == ws->dtype && ws->dtype == ys->dtype ? xs->dtype : KILN_F32;
    double lo, hi, z = (double)kiln_tensor_get_i64(yz, 0);
    int_range(out[0]->dtype, &lo, &hi);
    int64_t per_m = prod_dims(g.nsp, g.out);
    for (int64_t i = 0; i < out[0]->numel; i++) {
        int64_t m = (i / per_m) % g.M;
        double mult = requant_mult(sdt, kiln_tensor_get(xs, 0), vec_at(ws, m), kiln_tensor_get(ys, 0));
        kiln_tensor_set_i64(out[0], i, round_sat((double)acc[i] * mult + z, lo, hi));
    }
    free(xa);
    free(wa);
    free(acc);
    return KILN_OK;
}

/* ---------------------------------------------------------------- CumProd -- */

kiln_status kiln_infer_CumProd(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *ax = c->in[1];
    if (!x || !ax) return kiln_node_errorf(n, KILN_ERR_SHAPE, "x and axis are required");
    if (x->dtype == KILN_BOOL || x->dtype == KILN_I8 || x->dtype == KILN_U8 || x->dtype == KILN_I16 ||
        x->dtype == KILN_U16)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "CumProd does not take %s", kiln_dtype_name(x->dtype));
    int64_t axis;
    bool known;
    kiln_status st = scalar_int(n, ax, "axis", &axis, &known);
    if (st) return st;
    if (known && x->rank >= 0 && !kiln_norm_axis(axis, x->rank, &axis))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
    kiln_value_copy_type(c->out[0], x);
    return KILN_OK;
}

kiln_status kiln_eval_CumProd(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                              int n_out)
{
    (void)n_in, (void)n_out;
    const kiln_tensor *x = in[0];
    kiln_tensor *y = out[0];
    int64_t axis = kiln_tensor_get_i64(in[1], 0);
    if (!kiln_norm_axis(axis, x->rank, &axis))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range", (long long)axis);
    bool excl = kiln_attr_int(n, "exclusive", 0) != 0, rev = kiln_attr_int(n, "reverse", 0) != 0;
    int64_t len = x->dims[axis], inner = prod_dims(x->rank - (int)axis - 1, x->dims + axis + 1);
    int64_t outer = len && inner ? x->numel / (len * inner) : 0;
    bool is_int = kiln_dtype_is_int(x->dtype);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            uint64_t ip = 1; /* integer products wrap like numpy's fixed-width ints */
            double fp = 1.0;
            for (int64_t s = 0; s < len; s++) {
                int64_t a = rev ? len - 1 - s : s, idx = (o * len + a) * inner + i;
                if (is_int) {
                    uint64_t v = (uint64_t)kiln_tensor_get_i64(x, idx);
                    if (!excl) ip *= v;
                    kiln_tensor_set_i64(y, idx, (int64_t)ip);
                    if (excl) ip *= v;
                } else {
                    double v = kiln_tensor_get(x, idx);
                    if (!excl) fp = round_to(x->dtype == KILN_F64 ? KILN_F64 : KILN_F32, fp * v);
                    kiln_tensor_set(y, idx, fp);
                    if (excl) fp = round_to(x->dtype == KILN_F64 ? KILN_F64 : KILN_F32, fp * v);
                }
            }
        }
    return KILN_OK;
}

/* ---------------------------------------------------------------- windows -- */

typedef enum { WIN_HANN, WIN_HAMMING, WIN_BLACKMAN } win_kind;

static kiln_status window_infer(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    int64_t dt = kiln_attr_int(n, "output_datatype", KILN_F32), size = -1;
    if (!kiln_dtype_is_supported((kiln_dtype)dt) || dt == KILN_BOOL)
        return kiln_node_errorf(n, exotic_dtype(dt) ? KILN_ERR_UNSUPPORTED : KILN_ERR_SHAPE,
                                "output_datatype %lld is not supported", (long long)dt);
    bool known;
    kiln_status st = scalar_int(n, c->in[0], "size", &size, &known);
    if (st) return st;
    if (!known) size = -1;
    else if (size < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "window size %lld is negative", (long long)size);
    set_out(c->out[0], (kiln_dtype)dt, 1, &size, NULL);
    return KILN_OK;
}

static kiln_status window_eval(const kiln_node *n, kiln_tensor *y, win_kind kind)
{
    int64_t size = y->dims[0];
    double den = kiln_attr_int(n, "periodic", 1) ? (double)size : (double)(size - 1);
    for (int64_t i = 0; i < size; i++) {
        double v;
        if (den == 0.0) {
            v = NAN; /* a one-point symmetric window divides 0 by 0 in the definition */
        } else {
            double t = (double)i / den;
            if (kind == WIN_HANN) {
                double sn = sin(Q_PI * t);
                v = sn * sn;
            } else if (kind == WIN_HAMMING) {
                v = 25.0 / 46.0 - (21.0 / 46.0) * cos(2.0 * Q_PI * t);
            } else {
                v = 0.42 - 0.5 * cos(2.0 * Q_PI * t) + 0.08 * cos(4.0 * Q_PI * t);
            }
        }
        kiln_tensor_set(y, i, v);
    }
    return KILN_OK;
}

kiln_status kiln_infer_HannWindow(kiln_infer_ctx *c) { return window_infer(c); }
kiln_status kiln_infer_HammingWindow(kiln_infer_ctx *c) { return window_infer(c); }
kiln_status kiln_infer_BlackmanWindow(kiln_infer_ctx *c) { return window_infer(c); }

kiln_status kiln_eval_HannWindow(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                 int n_out)
{
    (void)in, (void)n_in, (void)n_out;
    return window_eval(n, out[0], WIN_HANN);
}

kiln_status kiln_eval_HammingWindow(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                    int n_out)
{
    (void)in, (void)n_in, (void)n_out;
    return window_eval(n, out[0], WIN_HAMMING);
}

kiln_status kiln_eval_BlackmanWindow(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                     int n_out)
{
    (void)in, (void)n_in, (void)n_out;
    return window_eval(n, out[0], WIN_BLACKMAN);
}

/* -------------------------------------------------------- MelWeightMatrix -- */

static kiln_status scalar_float(const kiln_node *n, const kiln_value *v, const char *what, double *out, bool *known)
{
    *known = false;
    if (!v) return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s is required", what);
    if (!float_dt(v->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be float, got %s", what, kiln_dtype_name(v->dtype));
    if (v->rank > 1 || (v->rank == 1 && v->dims[0] >= 0 && v->dims[0] != 1))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s must be a scalar", what);
    if (v->data && v->data->numel == 1) {
        *out = kiln_tensor_get(v->data, 0);
        *known = true;
    }
    return KILN_OK;
}

kiln_status kiln_infer_MelWeightMatrix(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    int64_t bins = -1, dft = -1, rate = -1;
    double lo, hi;
    bool kb, kd, kr, kl, kh;
    kiln_status st;
    if ((st = scalar_int(n, c->in[0], "num_mel_bins", &bins, &kb)) || (st = scalar_int(n, c->in[1], "dft_length", &dft, &kd)) ||
        (st = scalar_int(n, c->in[2], "sample_rate", &rate, &kr)) ||
        (st = scalar_float(n, c->in[3], "lower_edge_hertz", &lo, &kl)) ||
        (st = scalar_float(n, c->in[4], "upper_edge_hertz", &hi, &kh)))
        return st;
    int64_t dt = kiln_attr_int(n, "output_datatype", KILN_F32);
    if (!kiln_dtype_is_supported((kiln_dtype)dt) || dt == KILN_BOOL)
        return kiln_node_errorf(n, exotic_dtype(dt) ? KILN_ERR_UNSUPPORTED : KILN_ERR_SHAPE,
                                "output_datatype %lld is not supported", (long long)dt);
    if ((kb && (bins < 0 || bins > Q_ATTR_MAX)) || (kd && (dft < 0 || dft > Q_ATTR_MAX)) || (kr && rate <= 0))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "num_mel_bins, dft_length must be >= 0 and sample_rate > 0");
    int64_t dims[2] = {kd ? dft / 2 + 1 : -1, kb ? bins : -1};
    set_out(c->out[0], (kiln_dtype)dt, 2, dims, NULL);
    return KILN_OK;
}

kiln_status kiln_eval_MelWeightMatrix(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                      int n_out)
{
    (void)n_in, (void)n_out;
    kiln_tensor *y = out[0];
    int64_t bins = kiln_tensor_get_i64(in[0], 0), dft = kiln_tensor_get_i64(in[1], 0),
            rate = kiln_tensor_get_i64(in[2], 0), nspec = y->dims[0];
    float lo = (float)kiln_tensor_get(in[3], 0), hi = (float)kiln_tensor_get(in[4], 0);
    /* edge mels in float32, the bin frequencies in double: the reference's numpy types */
    float lmel = 2595.0f * log10f(1.0f + lo / 700.0f), hmel = 2595.0f * log10f(1.0f + hi / 700.0f);
    float step = (hmel - lmel) / (float)(bins + 2);
    int64_t *fb = alloc_n(bins + 2, sizeof *fb);
    double *w = alloc_n(y->numel, sizeof *w);
    if (!fb || !w) {
        free(fb);
        free(w);
        return oom(n);
    }
    for (int64_t i = 0; i < bins + 2; i++) {
        double mel = (double)i * step + lmel, hz = 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
        double b = floor((double)(dft + 1) * hz / (double)rate);
        fb[i] = b != b || b < -1e15 ? -1 : b > 1e15 ? INT64_MAX / 4 : (int64_t)b;
    }
    for (int64_t i = 0; i < bins; i++) {
        int64_t l = fb[i], ce = fb[i + 1], r = fb[i + 2];
        /* only rows inside the matrix are written (loops clamped to them) */
        if (ce - l == 0) {
            if (ce >= 0 && ce < nspec) w[ce * bins + i] = 1.0;
        } else {
            for (int64_t j = l > 0 ? l : 0; j <= ce && j < nspec; j++) w[j * bins + i] = (double)(j - l) / (double)(ce - l);
        }
        if (r - ce > 0)
            for (int64_t j = ce > 0 ? ce : 0; j < r && j < nspec; j++) w[j * bins + i] = (double)(r - j) / (double)(r - ce);
    }
    for (int64_t i = 0; i < y->numel; i++) kiln_tensor_set(y, i, w[i]);
    free(fb);
    free(w);
    return KILN_OK;
}

/* ---------------------------------------------------------- CenterCropPad -- */

/* Axes of CenterCropPad (attribute, default all), normalized and unique. */
static kiln_status ccp_axes(const kiln_node *n, int rank, int64_t *axes, int *count)
{
    const int64_t *v;
    int cnt = kiln_attr_ints(n, "axes", &v);
    if (cnt < 0) {
        for (int i = 0; i < rank; i++) axes[i] = i;
        *count = rank;
        return KILN_OK;
    }
    if (cnt > rank) return kiln_node_errorf(n, KILN_ERR_SHAPE, "%d axes for rank %d", cnt, rank);
    bool seen[KILN_MAX_RANK] = {false};
    for (int i = 0; i < cnt; i++) {
        if (!kiln_norm_axis(v[i], rank, &axes[i]))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d", (long long)v[i], rank);
        if (seen[axes[i]]) return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is repeated", (long long)v[i]);
        seen[axes[i]] = true;
    }
    *count = cnt;
    return KILN_OK;
}

kiln_status kiln_infer_CenterCropPad(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *sh = c->in[1];
    if (!x || !sh) return kiln_node_errorf(n, KILN_ERR_SHAPE, "input_data and shape are required");
    if (sh->dtype != KILN_I32 && sh->dtype != KILN_I64)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "shape must be int32 or int64");
    if (sh->rank >= 0 && sh->rank != 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "shape must be 1-D");
    if (x->rank < 0) {
        set_unknown_rank(c->out[0], x->dtype);
        return KILN_OK;
    }
    int64_t axes[KILN_MAX_RANK], vals[KILN_MAX_RANK];
    int na = 0;
    kiln_status st = ccp_axes(n, x->rank, axes, &na);
    if (st) return st;
    if (sh->rank == 1 && sh->dims[0] >= 0 && sh->dims[0] != na)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "shape has %lld values for %d axes", (long long)sh->dims[0], na);
    int cnt = kiln_value_const_ints(sh, vals, KILN_MAX_RANK);
    kiln_value_copy_type(c->out[0], x);
    for (int i = 0; i < na; i++) {
        if (cnt >= 0 && vals[i] < 0)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "shape[%d] = %lld is negative", i, (long long)vals[i]);
        int64_t d = cnt >= 0 ? vals[i] : -1;
        if (d != x->dims[axes[i]] || d < 0) {
            c->out[0]->dims[axes[i]] = d;
            c->out[0]->sym[axes[i]] = 0;
        }
    }
    return KILN_OK;
}

kiln_status kiln_eval_CenterCropPad(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                    int n_out)
{
    (void)n, (void)n_in, (void)n_out;
    const kiln_tensor *x = in[0];
    kiln_tensor *y = out[0];
    int r = x->rank;
    /* output index + off = input index, per dim (crop start minus pad start) */
    int64_t off[KILN_MAX_RANK], xs[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0};
    for (int i = 0; i < r; i++) {
        int64_t din = x->dims[i], dout = y->dims[i];
        off[i] = din >= dout ? (din - dout) / 2 : -((dout - din) / 2);
    }
    kiln_strides(r, x->dims, xs);
    size_t es = kiln_dtype_size(x->dtype);
    for (int64_t o = 0; o < y->numel; o++) {
        int64_t src = 0;
        bool inside = true;
        for (int i = 0; i < r && inside; i++) {
            int64_t p = idx[i] + off[i];
            if (p < 0 || p >= x->dims[i]) inside = false;
            src += p * xs[i];
        }
        if (inside) memcpy((char *)y->data + (size_t)o * es, (const char *)x->data + (size_t)src * es, es);
        kiln_index_next(r, y->dims, idx);
    }
    return KILN_OK;
}

/* ----------------------------------------------------------------- Col2Im -- */

typedef struct c2i_geom {
    int nsp;
    int64_t img[KILN_MAX_RANK], blk[KILN_MAX_RANK], s[KILN_MAX_RANK], d[KILN_MAX_RANK], pb[KILN_MAX_RANK],
        pe[KILN_MAX_RANK], nbl[KILN_MAX_RANK];
    int64_t ksize, L;
} c2i_geom;

/* Reads image_shape/block_shape (when known) and the attributes. *known false when the
 * shapes' contents are not known yet. */
static kiln_status c2i_make(const kiln_node *n, const kiln_value *ims, const kiln_value *bls, c2i_geom *g, bool *known)
{
    memset(g, 0, sizeof *g);
    *known = false;
    if (!kiln_dtype_is_int(ims->dtype) || !kiln_dtype_is_int(bls->dtype) || ims->rank != 1 || bls->rank != 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "image_shape and block_shape must be 1-D int64 tensors");
    if (ims->dims[0] >= 0 && bls->dims[0] >= 0 && ims->dims[0] != bls->dims[0])
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "image_shape and block_shape have different lengths");
    int64_t nd = ims->dims[0] >= 0 ? ims->dims[0] : bls->dims[0];
    if (nd > KILN_MAX_RANK - 2 || nd == 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "Col2Im over %lld spatial dims is not supported", (long long)nd);
    g->nsp = (int)nd;
    if (nd < 0) return KILN_OK;
    int64_t pads[2 * KILN_MAX_RANK];
    kiln_status st;
    if ((st = kiln_conv_attr_ints(n, "strides", g->nsp, 1, 1, g->s)) || (st = kiln_conv_attr_ints(n, "dilations", g->nsp, 1, 1, g->d)) ||
        (st = kiln_conv_attr_ints(n, "pads", 2 * g->nsp, 0, 0, pads)))
        return st;
    for (int i = 0; i < g->nsp; i++) g->pb[i] = pads[i], g->pe[i] = pads[g->nsp + i];
    int ci = kiln_value_const_ints(ims, g->img, KILN_MAX_RANK), cb = kiln_value_const_ints(bls, g->blk, KILN_MAX_RANK);
    if (ci < 0 || cb < 0) return KILN_OK;
    g->ksize = 1;
    g->L = 1;
    for (int i = 0; i < g->nsp; i++) {
        if (g->img[i] < 1 || g->blk[i] < 1 || g->img[i] > Q_ATTR_MAX || g->blk[i] > Q_ATTR_MAX)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "image_shape and block_shape values must be positive");
        int64_t span = g->img[i] + g->pb[i] + g->pe[i] - (g->d[i] * (g->blk[i] - 1) + 1);
        if (span < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "dim %d: the block does not fit the padded image", i);
        g->nbl[i] = span / g->s[i] + 1;
        if (!kiln_mul_dims(g->ksize, g->blk[i], &g->ksize) || !kiln_mul_dims(g->L, g->nbl[i], &g->L))
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "block counts overflow");
    }
    *known = true;
    return KILN_OK;
}

kiln_status kiln_infer_Col2Im(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *ims = c->in[1], *bls = c->in[2];
    if (!x || !ims || !bls) return kiln_node_errorf(n, KILN_ERR_SHAPE, "input, image_shape and block_shape are required");
    if (x->rank >= 0 && x->rank != 3)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input must be N x (C*prod(block)) x L, got rank %d", x->rank);
    if (ims->rank < 0 || bls->rank < 0) {
        set_unknown_rank(c->out[0], x->dtype);
        return KILN_OK;
    }
    c2i_geom g;
    bool known;
    kiln_status st = c2i_make(n, ims, bls, &g, &known);
    if (st) return st;
    if (g.nsp < 0) {
        set_unknown_rank(c->out[0], x->dtype);
        return KILN_OK;
    }
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK] = {0};
    od[0] = x->rank == 3 ? x->dims[0] : -1;
    os[0] = x->rank == 3 ? x->sym[0] : 0;
    od[1] = -1;
    for (int i = 0; i < g.nsp; i++) od[2 + i] = known ? g.img[i] : -1;
    if (known && x->rank == 3) {
        if (x->dims[1] >= 0) {
            if (x->dims[1] % g.ksize)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "input dim 1 (%lld) is not divisible by the block size %lld",
                                        (long long)x->dims[1], (long long)g.ksize);
            od[1] = x->dims[1] / g.ksize;
        }
        if (x->dims[2] >= 0 && x->dims[2] != g.L)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "input dim 2 is %lld but there are %lld blocks",
                                    (long long)x->dims[2], (long long)g.L);
    }
    set_out(c->out[0], x->dtype, 2 + g.nsp, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_Col2Im(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    (void)n_in, (void)n_out;
    const kiln_tensor *x = in[0];
    kiln_tensor *y = out[0];
    kiln_value vi, vb;
    view_of(&vi, in[1]);
    view_of(&vb, in[2]);
    vi.data = in[1];
    vb.data = in[2];
    c2i_geom g;
    bool known;
    kiln_status st = c2i_make(n, &vi, &vb, &g, &known);
    if (st) return st;
    double *acc = alloc_n(y->numel, sizeof *acc);
    if (!acc) return oom(n);
    int64_t N = y->dims[0], C = y->dims[1], img_sz = prod_dims(g.nsp, g.img), istr[KILN_MAX_RANK];
    kiln_strides(g.nsp, g.img, istr);
    for (int64_t b = 0; b < N; b++)
        for (int64_t ch = 0; ch < C; ch++) {
            double *dst = acc + (b * C + ch) * img_sz;
            int64_t kp[KILN_MAX_RANK] = {0};
            for (int64_t k = 0; k < g.ksize; k++) {
                int64_t bp[KILN_MAX_RANK] = {0};
                int64_t row = (b * C * g.ksize + ch * g.ksize + k) * g.L;
                for (int64_t l = 0; l < g.L; l++) {
                    int64_t off = 0;
                    bool inside = true;
                    for (int i = 0; i < g.nsp && inside; i++) {
                        int64_t p = bp[i] * g.s[i] - g.pb[i] + kp[i] * g.d[i];
                        if (p < 0 || p >= g.img[i]) inside = false;
                        off += p * istr[i];
                    }
                    if (inside) dst[off] += kiln_tensor_get(x, row + l);
                    kiln_index_next(g.nsp, g.nbl, bp);
                }
                kiln_index_next(g.nsp, g.blk, kp);
            }
        }
    for (int64_t i = 0; i < y->numel; i++) kiln_tensor_set(y, i, acc[i]);
    free(acc);
    return KILN_OK;
}

/* ------------------------------------------------------------- GridSample -- */

typedef enum { GS_NEAREST, GS_LINEAR, GS_CUBIC } gs_mode;
typedef enum { GS_ZEROS, GS_BORDER, GS_REFLECTION } gs_pad;

static kiln_status gs_attrs(const kiln_node *n, gs_mode *mode, gs_pad *pad)
{
    const char *m = kiln_attr_str(n, "mode", "linear"), *p = kiln_attr_str(n, "padding_mode", "zeros");
    /* opset 16 spelled the modes bilinear / bicubic */
    if (!strcmp(m, "linear") || !strcmp(m, "bilinear")) *mode = GS_LINEAR;
    else if (!strcmp(m, "nearest")) *mode = GS_NEAREST;
    else if (!strcmp(m, "cubic") || !strcmp(m, "bicubic")) *mode = GS_CUBIC;
    else return kiln_node_errorf(n, KILN_ERR_SHAPE, "unknown mode '%s'", m);
    if (!strcmp(p, "zeros")) *pad = GS_ZEROS;
    else if (!strcmp(p, "border")) *pad = GS_BORDER;
    else if (!strcmp(p, "reflection")) *pad = GS_REFLECTION;
    else return kiln_node_errorf(n, KILN_ERR_SHAPE, "unknown padding_mode '%s'", p);
    return KILN_OK;
}

kiln_status kiln_infer_GridSample(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *grid = c->in[1];
    if (!x || !grid) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X and grid are required");
    if (!float_dt(x->dtype) || !float_dt(grid->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "X and grid must be float");
    gs_mode mode;
    gs_pad pad;
    kiln_status st = gs_attrs(n, &mode, &pad);
    if (st) return st;
    if (x->rank < 0 || grid->rank < 0) {
        set_unknown_rank(c->out[0], x->dtype);
        return KILN_OK;
    }
    if (x->rank < 3) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X must be N x C x D1..., got rank %d", x->rank);
    if (grid->rank != x->rank)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "grid rank %d differs from X rank %d", grid->rank, x->rank);
    int nsp = x->rank - 2;
    if (grid->dims[x->rank - 1] >= 0 && grid->dims[x->rank - 1] != nsp)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "grid's last dim is %lld, expected %d",
                                (long long)grid->dims[x->rank - 1], nsp);
    if (x->dims[0] >= 0 && grid->dims[0] >= 0 && x->dims[0] != grid->dims[0])
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "X and grid batch sizes differ");
    int64_t od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK];
    od[0] = x->dims[0] >= 0 ? x->dims[0] : grid->dims[0];
    os[0] = x->dims[0] >= 0 ? 0 : x->sym[0] ? x->sym[0] : grid->sym[0];
    od[1] = x->dims[1];
    os[1] = x->sym[1];
    for (int i = 0; i < nsp; i++) od[2 + i] = grid->dims[1 + i], os[2 + i] = grid->sym[1 + i];
    set_out(c->out[0], x->dtype, x->rank, od, os);
    return KILN_OK;
}

/* Reflect x into [lo, hi] by bouncing off the borders (the ONNX reference's rule). */
static double gs_reflect(double x, double lo, double hi)
{
    double rng = hi - lo;
    if (rng <= 0) return lo;
    if (x < lo) {
        double dx = lo - x, k = floor(dx / rng), r = dx - k * rng;
        return fmod(k, 2.0) == 0 ? lo + r : hi - r;
    }
    if (x > hi) {
        double dx = x - hi, k = floor(dx / rng), r = dx - k * rng;
        return fmod(k, 2.0) == 0 ? hi - r : lo + r;
    }
    return x;
}

/* Keys cubic convolution weights (alpha -0.75) for the 4 taps around fraction t. */
static void gs_cubic(double t, double *w)
{
    const double a = -0.75;
    double x0 = t + 1, x1 = t, x2 = 1 - t, x3 = 2 - t;
    w[0] = ((a * x0 - 5 * a) * x0 + 8 * a) * x0 - 4 * a;
    w[1] = ((a + 2) * x1 - (a + 3)) * x1 * x1 + 1;
    w[2] = ((a + 2) * x2 - (a + 3)) * x2 * x2 + 1;
    w[3] = ((a * x3 - 5 * a) * x3 + 8 * a) * x3 - 4 * a;
}

/* Index of tap i of a dim of size d under the padding mode; -1 reads as zero. */
static int64_t gs_tap(int64_t i, int64_t d, gs_pad pad, double lo, double hi)
{
    if (i >= 0 && i < d) return i;
    if (pad == GS_ZEROS) return -1;
    if (pad == GS_BORDER) return i < 0 ? 0 : d - 1;
    int64_t r = (int64_t)gs_reflect((double)i, lo, hi);
    return r < 0 ? 0 : r >= d ? d - 1 : r;
}

kiln_status kiln_eval_GridSample(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                 int n_out)
{
    (void)n_in, (void)n_out;
    const kiln_tensor *x = in[0], *grid = in[1];
    kiln_tensor *y = out[0];
    gs_mode mode;
    gs_pad pad;
    kiln_status st = gs_attrs(n, &mode, &pad);
    if (st) return st;
    bool align = kiln_attr_int(n, "align_corners", 0) != 0;
    int nsp = x->rank - 2;
    int64_t N = x->dims[0], C = x->dims[1], in_sz = prod_dims(nsp, x->dims + 2), npos = prod_dims(nsp, y->dims + 2);
    int64_t xs[KILN_MAX_RANK];
    kiln_strides(nsp, x->dims + 2, xs);
    int ntap = mode == GS_NEAREST ? 1 : mode == GS_LINEAR ? 2 : 4;
    int64_t tap_i[KILN_MAX_RANK][4], ntaps[KILN_MAX_RANK];
    double tap_w[KILN_MAX_RANK][4];
    int64_t corners = 1;
    for (int i = 0; i < nsp; i++) ntaps[i] = ntap, corners *= ntap;
    for (int64_t b = 0; b < N; b++)
        for (int64_t p = 0; p < npos; p++) {
            const int64_t gbase = (b * npos + p) * nsp;
            for (int i = 0; i < nsp; i++) {
                int64_t d = x->dims[2 + i];
                float g = (float)kiln_tensor_get(grid, gbase + (nsp - 1 - i)); /* grid is (x, y, z): last dim first */
                float xf = align ? (g + 1.0f) / 2.0f * (float)(d - 1) : ((g + 1.0f) * (float)d - 1.0f) / 2.0f;
                if (mode == GS_NEAREST) xf = rintf(xf);
                double lo = align ? 0.0 : -0.5, hi = align ? (double)d - 1.0 : (double)d - 0.5, v = xf;
                if (v < lo || v > hi) {
                    if (pad == GS_BORDER) v = v < 0 ? 0 : v > (double)(d - 1) ? (double)(d - 1) : v;
                    else if (pad == GS_REFLECTION) v = (float)gs_reflect(v, lo, hi);
                }
                /* far outside (zeros padding) every tap reads zero; keep the integer conversion in range */
                if (!(v >= -8.0)) v = -8.0;
                if (v > (double)d + 8.0) v = (double)d + 8.0;
                if (mode == GS_NEAREST) {
                    tap_i[i][0] = gs_tap((int64_t)v, d, pad, lo, hi);
                    tap_w[i][0] = 1.0;
                    continue;
                }
                double f0 = floor(v), t = v - f0;
                int64_t i0 = (int64_t)f0;
                if (mode == GS_LINEAR) {
                    tap_w[i][0] = 1.0 - t;
                    tap_w[i][1] = t;
                    tap_i[i][0] = gs_tap(i0, d, pad, lo, hi);
                    tap_i[i][1] = gs_tap(i0 + 1, d, pad, lo, hi);
                } else {
                    gs_cubic(t, tap_w[i]);
                    for (int k = 0; k < 4; k++) tap_i[i][k] = gs_tap(i0 - 1 + k, d, pad, lo, hi);
                }
            }
            for (int64_t ch = 0; ch < C; ch++) {
                const int64_t xbase = (b * C + ch) * in_sz;
                double acc = 0.0;
                int64_t ci[KILN_MAX_RANK] = {0};
                for (int64_t k = 0; k < corners; k++) {
                    double w = 1.0;
                    int64_t off = 0;
                    bool zero = false;
                    for (int i = 0; i < nsp; i++) {
                        int64_t ti = tap_i[i][ci[i]];
                        if (ti < 0) zero = true;
                        w *= tap_w[i][ci[i]];
                        off += ti * xs[i];
                    }
                    if (!zero) acc += w * kiln_tensor_get(x, xbase + off);
                    kiln_index_next(nsp, ntaps, ci);
                }
                kiln_tensor_set(y, (b * C + ch) * npos + p, acc);
            }
        }
    return KILN_OK;
}

/* ------------------------------------------------------------- AffineGrid -- */

kiln_status kiln_infer_AffineGrid(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *th = c->in[0], *sz = c->in[1];
    if (!th || !sz) return kiln_node_errorf(n, KILN_ERR_SHAPE, "theta and size are required");
    if (!float_dt(th->dtype)) return kiln_node_errorf(n, KILN_ERR_SHAPE, "theta must be float");
    if (!kiln_dtype_is_int(sz->dtype) || (sz->rank >= 0 && sz->rank != 1))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "size must be a 1-D int64 tensor");
    if (th->rank >= 0 && th->rank != 3) return kiln_node_errorf(n, KILN_ERR_SHAPE, "theta must be N x 2 x 3 or N x 3 x 4");
    int64_t len = sz->rank == 1 ? sz->dims[0] : -1;
    if (len < 0 && th->rank == 3 && th->dims[1] >= 0) len = th->dims[1] + 2;
    if (len < 0) {
        set_unknown_rank(c->out[0], th->dtype);
        return KILN_OK;
    }
    if (len != 4 && len != 5) return kiln_node_errorf(n, KILN_ERR_SHAPE, "size must have 4 or 5 values, got %lld", (long long)len);
    int nsp = (int)len - 2;
    if (th->rank == 3 && ((th->dims[1] >= 0 && th->dims[1] != nsp) || (th->dims[2] >= 0 && th->dims[2] != nsp + 1)))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "theta must be N x %d x %d for %d-D grids", nsp, nsp + 1, nsp);
    int64_t v[5], od[KILN_MAX_RANK];
    int32_t os[KILN_MAX_RANK] = {0};
    int cnt = kiln_value_const_ints(sz, v, 5);
    od[0] = th->rank == 3 ? th->dims[0] : -1;
    os[0] = th->rank == 3 ? th->sym[0] : 0;
    for (int i = 0; i < nsp; i++) od[1 + i] = cnt == len ? v[2 + i] : -1;
    od[1 + nsp] = nsp;
    if (cnt == len) {
        for (int i = 0; i < (int)len; i++)
            if (v[i] < 0 || v[i] > Q_ATTR_MAX)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "size[%d] = %lld is out of range", i, (long long)v[i]);
        if (od[0] >= 0 && v[0] != od[0])
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "size[0] = %lld but theta has %lld matrices", (long long)v[0],
                                    (long long)od[0]);
        od[0] = v[0];
    }
    set_out(c->out[0], th->dtype, nsp + 2, od, os);
    return KILN_OK;
}

/* Normalized coordinate of index i of s points in [-1, 1]. */
static double ag_coord(int64_t i, int64_t s, bool align)
{
    if (s <= 1) return 0.0;
    return align ? -1.0 + 2.0 * (double)i / (double)(s - 1) : -1.0 + (2.0 * (double)i + 1.0) / (double)s;
}

kiln_status kiln_eval_AffineGrid(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                 int n_out)
{
    (void)n_in, (void)n_out;
    const kiln_tensor *th = in[0];
    kiln_tensor *y = out[0];
    bool align = kiln_attr_int(n, "align_corners", 0) != 0;
    int nsp = y->rank - 2;
    int64_t N = y->dims[0], npos = prod_dims(nsp, y->dims + 1);
    int64_t idx[KILN_MAX_RANK] = {0};
    for (int64_t p = 0; p < npos; p++) {
        double base[4]; /* (x, y[, z], 1): x runs along the last spatial dim */
        for (int i = 0; i < nsp; i++) base[i] = ag_coord(idx[nsp - 1 - i], y->dims[nsp - i], align);
        base[nsp] = 1.0;
        for (int64_t b = 0; b < N; b++)
            for (int j = 0; j < nsp; j++) {
                double acc = 0.0;
                for (int k = 0; k <= nsp; k++) acc += kiln_tensor_get(th, (b * nsp + j) * (nsp + 1) + k) * base[k];
                kiln_tensor_set(y, (b * npos + p) * nsp + j, acc);
            }
        kiln_index_next(nsp, y->dims + 1, idx);
    }
    return KILN_OK;
}

/* -------------------------------------------------------------- MaxUnpool -- */

/* The unpooled shape implied by X's shape and the pooling attributes. */
static kiln_status unpool_shape(const kiln_node *n, const kiln_value *x, int64_t *dims)
{
    int nsp = x->rank - 2;
    int64_t k[KILN_MAX_RANK], s[KILN_MAX_RANK], pads[2 * KILN_MAX_RANK];
    const int64_t *kv;
    if (kiln_attr_ints(n, "kernel_shape", &kv) < 0)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "attribute kernel_shape is required");
    kiln_status st;
    if ((st = kiln_conv_attr_ints(n, "kernel_shape", nsp, 1, 1, k)) || (st = kiln_conv_attr_ints(n, "strides", nsp, 1, 1, s)) ||
        (st = kiln_conv_attr_ints(n, "pads", 2 * nsp, 0, 0, pads)))
        return st;
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 0; i < nsp; i++) {
        int64_t d = x->dims[2 + i];
        if (d < 0) {
            dims[2 + i] = -1;
            continue;
        }
        if (d > Q_ATTR_MAX) return kiln_node_errorf(n, KILN_ERR_LIMIT, "spatial dim %d is too large", i);
        dims[2 + i] = (d - 1) * s[i] - (pads[i] + pads[nsp + i]) + k[i];
        if (dims[2 + i] < 0) return kiln_node_errorf(n, KILN_ERR_SHAPE, "pads exceed the unpooled size in dim %d", i);
    }
    return KILN_OK;
}

kiln_status kiln_infer_MaxUnpool(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *ix = c->in[1], *os = c->n_in > 2 ? c->in[2] : NULL;
    if (!x || !ix) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X and I are required");
    if (ix->dtype != KILN_I64) return kiln_node_errorf(n, KILN_ERR_SHAPE, "I must be int64");
    if (x->rank < 0) {
        set_unknown_rank(c->out[0], x->dtype);
        return KILN_OK;
    }
    if (x->rank < 3) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X must be N x C x D1..., got rank %d", x->rank);
    if (ix->rank >= 0 && ix->rank != x->rank) return kiln_node_errorf(n, KILN_ERR_SHAPE, "I must have X's shape");
    for (int i = 0; ix->rank >= 0 && i < x->rank; i++)
        if (ix->dims[i] >= 0 && x->dims[i] >= 0 && ix->dims[i] != x->dims[i])
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "I must have X's shape");
    int64_t dims[KILN_MAX_RANK];
    kiln_status st = unpool_shape(n, x, dims);
    if (st) return st;
    if (os) {
        if (!kiln_dtype_is_int(os->dtype) || (os->rank >= 0 && os->rank != 1) ||
            (os->rank == 1 && os->dims[0] >= 0 && os->dims[0] != x->rank))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "output_shape must be a 1-D int64 tensor of %d values", x->rank);
        int64_t v[KILN_MAX_RANK];
        int cnt = kiln_value_const_ints(os, v, KILN_MAX_RANK);
        for (int i = 0; i < x->rank; i++) {
            if (cnt != x->rank) {
                dims[i] = -1;
                continue;
            }
            /* indices address the inferred layout, which sits in the output's top-left corner */
            if (v[i] < 0 || (dims[i] >= 0 && v[i] < dims[i]))
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "output_shape[%d] = %lld is smaller than the unpooled %lld", i,
                                        (long long)v[i], (long long)dims[i]);
            dims[i] = v[i];
        }
    }
    int32_t sym[KILN_MAX_RANK] = {x->sym[0], x->sym[1]};
    set_out(c->out[0], x->dtype, x->rank, dims, sym);
    return KILN_OK;
}

kiln_status kiln_eval_MaxUnpool(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                int n_out)
{
    (void)n_in, (void)n_out;
    const kiln_tensor *x = in[0], *ix = in[1];
    kiln_tensor *y = out[0];
    kiln_value vx;
    view_of(&vx, x);
    int64_t dims[KILN_MAX_RANK], ystr[KILN_MAX_RANK], tot = 1;
    kiln_status st = unpool_shape(n, &vx, dims);
    if (st) return st;
    tot = prod_dims(x->rank, dims);
    kiln_strides(y->rank, y->dims, ystr);
    size_t es = kiln_dtype_size(x->dtype);
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t t = kiln_tensor_get_i64(ix, i);
        if (t < 0 || t >= tot)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "index %lld is outside the unpooled tensor of %lld elements",
                                    (long long)t, (long long)tot);
        int64_t off = 0; /* unflatten in the inferred shape, re-flatten in the output's */
        for (int d = x->rank - 1; d >= 0; d--) {
            off += (t % dims[d]) * ystr[d];
            t /= dims[d];
        }
        memcpy((char *)y->data + (size_t)off * es, (const char *)x->data + (size_t)i * es, es);
    }
    return KILN_OK;
}

/* --------------------------------------------------------------- RoiAlign -- */

kiln_status kiln_infer_RoiAlign(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *rois = c->in[1], *bi = c->in[2];
    if (!x || !rois || !bi) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X, rois and batch_indices are required");
    if (!float_dt(x->dtype) || !float_dt(rois->dtype)) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X and rois must be float");
    if (!kiln_dtype_is_int(bi->dtype)) return kiln_node_errorf(n, KILN_ERR_SHAPE, "batch_indices must be int64");
    const char *mode = kiln_attr_str(n, "mode", "avg"), *ctm = kiln_attr_str(n, "coordinate_transformation_mode", "half_pixel");
    if (strcmp(mode, "avg") && strcmp(mode, "max")) return kiln_node_errorf(n, KILN_ERR_SHAPE, "unknown mode '%s'", mode);
    if (strcmp(ctm, "half_pixel") && strcmp(ctm, "output_half_pixel"))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "unknown coordinate_transformation_mode '%s'", ctm);
    int64_t oh = kiln_attr_int(n, "output_height", 1), ow = kiln_attr_int(n, "output_width", 1);
    int64_t sr = kiln_attr_int(n, "sampling_ratio", 0);
    if (oh < 1 || ow < 1 || oh > Q_ATTR_MAX || ow > Q_ATTR_MAX || sr < 0 || sr > Q_ATTR_MAX)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "output_height/output_width must be >= 1, sampling_ratio >= 0");
    if (x->rank >= 0 && x->rank != 4) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X must be N x C x H x W");
    if (rois->rank >= 0 && (rois->rank != 2 || (rois->dims[1] >= 0 && rois->dims[1] != 4)))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "rois must be num_rois x 4");
    if (bi->rank >= 0 && bi->rank != 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "batch_indices must be 1-D");
    int64_t r1 = rois->rank == 2 ? rois->dims[0] : -1, r2 = bi->rank == 1 ? bi->dims[0] : -1;
    if (r1 >= 0 && r2 >= 0 && r1 != r2) return kiln_node_errorf(n, KILN_ERR_SHAPE, "rois and batch_indices disagree on the count");
    int64_t od[4] = {r1 >= 0 ? r1 : r2, x->rank == 4 ? x->dims[1] : -1, oh, ow};
    int32_t os[4] = {r1 >= 0 ? rois->sym[0] : r2 >= 0 ? bi->sym[0] : 0, x->rank == 4 ? x->sym[1] : 0, 0, 0};
    set_out(c->out[0], x->dtype, 4, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_RoiAlign(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                               int n_out)
{
    (void)n_in, (void)n_out;
    const kiln_tensor *x = in[0], *rois = in[1], *bi = in[2];
    kiln_tensor *y = out[0];
    bool is_max = !strcmp(kiln_attr_str(n, "mode", "avg"), "max");
    bool half = !strcmp(kiln_attr_str(n, "coordinate_transformation_mode", "half_pixel"), "half_pixel");
    float scale = kiln_attr_float(n, "spatial_scale", 1.0f);
    int64_t sr = kiln_attr_int(n, "sampling_ratio", 0);
    int64_t R = y->dims[0], C = y->dims[1], PH = y->dims[2], PW = y->dims[3];
    int64_t N = x->dims[0], H = x->dims[2], W = x->dims[3];
    float off = half ? 0.5f : 0.0f;
    /* float arithmetic throughout, as the reference computes in the input's float32 */
    for (int64_t r = 0; r < R; r++) {
        int64_t b = kiln_tensor_get_i64(bi, r);
        if (b < 0 || b >= N)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "batch index %lld is out of range [0, %lld)", (long long)b, (long long)N);
        float x0 = (float)kiln_tensor_get(rois, r * 4 + 0) * scale - off;
        float y0 = (float)kiln_tensor_get(rois, r * 4 + 1) * scale - off;
        float x1 = (float)kiln_tensor_get(rois, r * 4 + 2) * scale - off;
        float y1 = (float)kiln_tensor_get(rois, r * 4 + 3) * scale - off;
        float rw = x1 - x0, rh = y1 - y0;
        if (!half) {
            if (rw < 1.0f) rw = 1.0f;
            if (rh < 1.0f) rh = 1.0f;
        }
        float bh = rh / (float)PH, bw = rw / (float)PW;
        double gh_d = sr > 0 ? (double)sr : ceil((double)(rh / (float)PH)), gw_d = sr > 0 ? (double)sr : ceil((double)(rw / (float)PW));
        if (!(gh_d >= 0)) gh_d = 0;
        if (!(gw_d >= 0)) gw_d = 0;
        if (gh_d > 4096 || gw_d > 4096)
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "region %lld needs too many samples per bin", (long long)r);
        int64_t gh = (int64_t)gh_d, gw = (int64_t)gw_d, count = gh * gw > 1 ? gh * gw : 1;
        for (int64_t ch = 0; ch < C; ch++) {
            int64_t base = (b * C + ch) * H * W;
            for (int64_t ph = 0; ph < PH; ph++)
                for (int64_t pw = 0; pw < PW; pw++) {
                    float acc = 0.0f;
                    bool first = true;
                    for (int64_t iy = 0; iy < gh; iy++) {
                        float yy = y0 + (float)ph * bh + ((float)iy + 0.5f) * bh / (float)gh;
                        for (int64_t ix = 0; ix < gw; ix++) {
                            float xx = x0 + (float)pw * bw + ((float)ix + 0.5f) * bw / (float)gw;
                            float v1 = 0, v2 = 0, v3 = 0, v4 = 0, w1 = 0, w2 = 0, w3 = 0, w4 = 0;
                            if (yy >= -1.0f && yy <= (float)H && xx >= -1.0f && xx <= (float)W && H > 0 && W > 0) {
                                float yv = yy < 0 ? 0 : yy, xv = xx < 0 ? 0 : xx;
                                int64_t yl = (int64_t)yv, xl = (int64_t)xv, yhi, xhi;
                                if (yl >= H - 1) yhi = yl = H - 1, yv = (float)yl;
                                else yhi = yl + 1;
                                if (xl >= W - 1) xhi = xl = W - 1, xv = (float)xl;
                                else xhi = xl + 1;
                                float ly = yv - (float)yl, lx = xv - (float)xl, hy = 1.0f - ly, hx = 1.0f - lx;
                                w1 = hy * hx, w2 = hy * lx, w3 = ly * hx, w4 = ly * lx;
                                v1 = (float)kiln_tensor_get(x, base + yl * W + xl);
                                v2 = (float)kiln_tensor_get(x, base + yl * W + xhi);
                                v3 = (float)kiln_tensor_get(x, base + yhi * W + xl);
                                v4 = (float)kiln_tensor_get(x, base + yhi * W + xhi);
                            } else {
                                /* outside: every corner reads element 0 with weight 0 */
                                v1 = v2 = v3 = v4 = H > 0 && W > 0 ? (float)kiln_tensor_get(x, base) : 0.0f;
                            }
                            if (is_max) {
                                float m = w1 * v1;
                                if (w2 * v2 > m) m = w2 * v2;
                                if (w3 * v3 > m) m = w3 * v3;
                                if (w4 * v4 > m) m = w4 * v4;
                                if (first || m > acc) acc = m;
                                first = false;
                            } else {
                                acc += w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4;
                            }
                        }
                    }
                    if (!is_max) acc /= (float)count;
                    kiln_tensor_set(y, ((r * C + ch) * PH + ph) * PW + pw, acc);
                }
        }
    }
    return KILN_OK;
}

/* ----------------------------------------------------------------- Unique -- */

/* Total order on elements: numbers by value, NaN after everything and equal to NaN. */
static int elem_cmp(const kiln_tensor *t, int64_t i, int64_t j)
{
    if (t->dtype == KILN_U64) {
        uint64_t a = ((const uint64_t *)t->data)[i], b = ((const uint64_t *)t->data)[j];
        return (a > b) - (a < b);
    }
    if (!float_dt(t->dtype)) {
        int64_t a = kiln_tensor_get_i64(t, i), b = kiln_tensor_get_i64(t, j);
        return (a > b) - (a < b);
    }
    double a = kiln_tensor_get(t, i), b = kiln_tensor_get(t, j);
    bool na = a != a, nb = b != b;
    if (na || nb) return (int)na - (int)nb;
    return (a > b) - (a < b);
}

/* x viewed as `rows` slices along the unique axis; a slice's elements in row-major order. */
typedef struct uq_view {
    const kiln_tensor *x;
    int64_t rows, outer, inner; /* element e of row r: (e / inner * rows + r) * inner + e % inner */
} uq_view;

static int row_cmp(const uq_view *v, int64_t r1, int64_t r2)
{
    int64_t len = v->outer * v->inner;
    for (int64_t e = 0; e < len; e++) {
        int64_t o = e / v->inner, i = e % v->inner;
        int c = elem_cmp(v->x, (o * v->rows + r1) * v->inner + i, (o * v->rows + r2) * v->inner + i);
        if (c) return c;
    }
    return 0;
}

/* Stable merge sort of idx[0..count) by row_cmp (tmp: scratch of the same size). */
static void row_sort(const uq_view *v, int64_t *idx, int64_t *tmp, int64_t count)
{
    for (int64_t w = 1; w < count; w *= 2) {
        for (int64_t lo = 0; lo < count; lo += 2 * w) {
            int64_t mid = lo + w < count ? lo + w : count, hi = lo + 2 * w < count ? lo + 2 * w : count;
            int64_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = row_cmp(v, idx[b], idx[a]) < 0 ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, sizeof *idx * (size_t)count);
    }
}

typedef struct uq_result {
    int64_t count;   /* number of unique rows */
    int64_t *first;  /* [count] index of each unique row's first occurrence, in output order */
    int64_t *inv;    /* [rows] output position of each input row */
    int64_t *counts; /* [count] occurrences */
} uq_result;

static void uq_free(uq_result *r)
{
    free(r->first);
    free(r->inv);
    free(r->counts);
    memset(r, 0, sizeof *r);
}

static kiln_status uq_run(const kiln_node *n, const uq_view *v, bool sorted, uq_result *res)
{
    memset(res, 0, sizeof *res);
    int64_t R = v->rows;
    int64_t *idx = alloc_n(R, sizeof *idx), *tmp = alloc_n(R, sizeof *tmp);
    res->first = alloc_n(R, sizeof *res->first);
    res->inv = alloc_n(R, sizeof *res->inv);
    res->counts = alloc_n(R, sizeof *res->counts);
    if (!idx || !tmp || !res->first || !res->inv || !res->counts) {
        free(idx);
        free(tmp);
        uq_free(res);
        return oom(n);
    }
    for (int64_t i = 0; i < R; i++) idx[i] = i;
    row_sort(v, idx, tmp, R);
    /* groups of equal rows, in sorted order; stability makes a group's head its first occurrence */
    int64_t U = 0;
    for (int64_t i = 0; i < R; i++) {
        if (i == 0 || row_cmp(v, idx[i - 1], idx[i]) != 0) {
            res->first[U] = idx[i];
            res->counts[U] = 0;
            U++;
        }
        res->counts[U - 1]++;
        res->inv[idx[i]] = U - 1;
    }
    res->count = U;
    if (!sorted) { /* reorder groups by first occurrence: tmp[g] = new position of group g */
        int64_t *order = idx; /* reuse: group ids sorted by first index */
        int64_t pos = 0;
        for (int64_t r = 0; r < R; r++) /* rows in input order meet groups in first-occurrence order */
            if (res->first[res->inv[r]] == r) order[pos++] = res->inv[r];
        for (int64_t k = 0; k < U; k++) tmp[order[k]] = k;
        int64_t *nf = alloc_n(U, sizeof *nf), *nc = alloc_n(U, sizeof *nc);
        if (!nf || !nc) {
            free(nf);
            free(nc);
            free(idx);
            free(tmp);
            uq_free(res);
            return oom(n);
        }
        for (int64_t g = 0; g < U; g++) nf[tmp[g]] = res->first[g], nc[tmp[g]] = res->counts[g];
        for (int64_t r = 0; r < R; r++) res->inv[r] = tmp[res->inv[r]];
        free(res->first);
        free(res->counts);
        res->first = nf;
        res->counts = nc;
    }
    free(idx);
    free(tmp);
    return KILN_OK;
}

/* The unique axis (-1: flattened) from the attribute. */
static kiln_status uq_axis(const kiln_node *n, int rank, int64_t *axis)
{
    *axis = -1;
    if (!kiln_attr_find(n, "axis")) return KILN_OK;
    int64_t a = kiln_attr_int(n, "axis", 0);
    if (rank >= 0 && !kiln_norm_axis(a, rank, axis))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range for rank %d", (long long)a, rank);
    return KILN_OK;
}

static void uq_view_make(const kiln_tensor *x, int64_t axis, uq_view *v)
{
    v->x = x;
    if (axis < 0) {
        v->rows = x->numel;
        v->outer = v->inner = 1;
        return;
    }
    v->rows = x->dims[axis];
    v->outer = prod_dims((int)axis, x->dims);
    v->inner = prod_dims(x->rank - (int)axis - 1, x->dims + axis + 1);
}

kiln_status kiln_infer_Unique(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0];
    if (!x) return kiln_node_errorf(n, KILN_ERR_SHAPE, "X is required");
    int64_t axis;
    kiln_status st = uq_axis(n, x->rank, &axis);
    if (st) return st;
    if (axis >= 0 && x->rank < 0) {
        set_unknown_rank(c->out[0], x->dtype);
        int64_t d = -1;
        for (int i = 1; i < 4 && i < c->n_out; i++) set_out(c->out[i], KILN_I64, 1, &d, NULL);
        return KILN_OK;
    }
    if (axis < 0 && x->rank == 0 && kiln_attr_find(n, "axis"))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis given for a scalar input");
    int64_t U = -1;
    if (x->data) {
        uq_view v;
        uq_result r;
        uq_view_make(x->data, axis, &v);
        if ((st = uq_run(n, &v, kiln_attr_int(n, "sorted", 1) != 0, &r))) return st;
        U = r.count;
        uq_free(&r);
    }
    if (axis < 0) {
        set_out(c->out[0], x->dtype, 1, &U, NULL);
    } else {
        kiln_value_copy_type(c->out[0], x);
        c->out[0]->dims[axis] = U;
        c->out[0]->sym[axis] = 0;
    }
    int64_t rows = axis < 0 ? vnumel(x) : x->dims[axis];
    int32_t rsym = axis < 0 ? 0 : x->sym[axis];
    if (c->n_out > 1) set_out(c->out[1], KILN_I64, 1, &U, NULL);
    if (c->n_out > 2) set_out(c->out[2], KILN_I64, 1, &rows, &rsym);
    if (c->n_out > 3) set_out(c->out[3], KILN_I64, 1, &U, NULL);
    return KILN_OK;
}

kiln_status kiln_eval_Unique(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    (void)n_in;
    const kiln_tensor *x = in[0];
    int64_t axis;
    kiln_status st = uq_axis(n, x->rank, &axis);
    if (st) return st;
    uq_view v;
    uq_result r;
    uq_view_make(x, axis, &v);
    if ((st = uq_run(n, &v, kiln_attr_int(n, "sorted", 1) != 0, &r))) return st;
    size_t es = kiln_dtype_size(x->dtype);
    kiln_tensor *y = out[0];
    if (y)
        for (int64_t o = 0; o < v.outer; o++)
            for (int64_t u = 0; u < r.count; u++)
                memcpy((char *)y->data + (size_t)((o * r.count + u) * v.inner) * es,
                       (const char *)x->data + (size_t)((o * v.rows + r.first[u]) * v.inner) * es, (size_t)v.inner * es);
    if (n_out > 1 && out[1]) memcpy(out[1]->data, r.first, sizeof(int64_t) * (size_t)r.count);
    if (n_out > 2 && out[2]) memcpy(out[2]->data, r.inv, sizeof(int64_t) * (size_t)v.rows);
    if (n_out > 3 && out[3]) memcpy(out[3]->data, r.counts, sizeof(int64_t) * (size_t)r.count);
    uq_free(&r);
    return KILN_OK;
}

/* ------------------------------------------------------ NonMaxSuppression -- */

/* An optional scalar input; absent or empty tensors count as not given. */
static bool opt_scalar(const kiln_tensor *t, double *v)
{
    if (!t || t->numel == 0) return false;
    *v = kiln_tensor_get(t, 0);
    return true;
}

/* IoU test of the reference, in float32 arithmetic. */
static bool nms_suppress(const float *b1, const float *b2, bool center, float thr)
{
    float x1lo, x1hi, x2lo, x2hi, y1lo, y1hi, y2lo, y2hi;
    if (!center) {
        x1lo = fminf(b1[1], b1[3]), x1hi = fmaxf(b1[1], b1[3]);
        x2lo = fminf(b2[1], b2[3]), x2hi = fmaxf(b2[1], b2[3]);
        y1lo = fminf(b1[0], b1[2]), y1hi = fmaxf(b1[0], b1[2]);
        y2lo = fminf(b2[0], b2[2]), y2hi = fmaxf(b2[0], b2[2]);
    } else {
        x1lo = b1[0] - b1[2] / 2, x1hi = b1[0] + b1[2] / 2;
        x2lo = b2[0] - b2[2] / 2, x2hi = b2[0] + b2[2] / 2;
        y1lo = b1[1] - b1[3] / 2, y1hi = b1[1] + b1[3] / 2;
        y2lo = b2[1] - b2[3] / 2, y2hi = b2[1] + b2[3] / 2;
    }
    float ixlo = fmaxf(x1lo, x2lo), ixhi = fminf(x1hi, x2hi), iylo = fmaxf(y1lo, y2lo), iyhi = fminf(y1hi, y2hi);
    if (!(ixhi > ixlo) || !(iyhi > iylo)) return false;
    float inter = (ixhi - ixlo) * (iyhi - iylo);
    if (!(inter > 0)) return false;
    float a1 = (x1hi - x1lo) * (y1hi - y1lo), a2 = (x2hi - x2lo) * (y2hi - y2lo), uni = a1 + a2 - inter;
    if (!(a1 > 0) || !(a2 > 0) || !(uni > 0)) return false;
    return inter / uni > thr;
}

/* Runs NMS; *sel receives count triples (batch, class, box) (caller frees). */
static kiln_status nms_run(const kiln_node *n, const kiln_tensor *boxes, const kiln_tensor *scores,
                           const kiln_tensor *maxo, const kiln_tensor *iou, const kiln_tensor *sth, int64_t **sel,
                           int64_t *count)
{
    *sel = NULL;
    *count = 0;
    int64_t B = boxes->dims[0], S = boxes->dims[1], C = scores->dims[1];
    double mv = 0, iv = 0, sv = 0;
    int64_t max_out = 0;
    if (opt_scalar(maxo, &mv)) max_out = mv > 0 ? kiln_tensor_get_i64(maxo, 0) : 0;
    opt_scalar(iou, &iv);
    bool have_sth = opt_scalar(sth, &sv);
    float thr = (float)iv, sthr = (float)sv;
    bool center = kiln_attr_int(n, "center_point_box", 0) != 0;
    if (max_out > S) max_out = S;
    int64_t cap = 0;
    if (!kiln_mul_dims(B, C, &cap) || !kiln_mul_dims(cap, max_out, &cap) || !kiln_mul_dims(cap, 3, &cap))
        return kiln_node_errorf(n, KILN_ERR_LIMIT, "too many boxes");
    int64_t *out = alloc_n(cap, sizeof *out), *cand = alloc_n(S, sizeof *cand), *tmp = alloc_n(S, sizeof *tmp);
    int64_t *kept = alloc_n(max_out, sizeof *kept);
    float *bx = alloc_n(S * 4, sizeof *bx), *sc = alloc_n(S, sizeof *sc);
    if (!out || !cand || !tmp || !kept || !bx || !sc) {
        free(out), free(cand), free(tmp), free(kept), free(bx), free(sc);
        return oom(n);
    }
    int64_t total = 0;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t i = 0; i < S * 4; i++) bx[i] = (float)kiln_tensor_get(boxes, b * S * 4 + i);
        for (int64_t c = 0; c < C; c++) {
            int64_t nc = 0;
            for (int64_t i = 0; i < S; i++) {
                sc[i] = (float)kiln_tensor_get(scores, (b * C + c) * S + i);
                if (!have_sth || sc[i] > sthr) cand[nc++] = i;
            }
            /* stable merge sort by descending score: ties keep the lower box index first */
            for (int64_t w = 1; w < nc; w *= 2) {
                for (int64_t lo = 0; lo < nc; lo += 2 * w) {
                    int64_t mid = lo + w < nc ? lo + w : nc, hi = lo + 2 * w < nc ? lo + 2 * w : nc, p = lo, q = mid, k = lo;
                    while (p < mid && q < hi) tmp[k++] = sc[cand[q]] > sc[cand[p]] ? cand[q++] : cand[p++];
                    while (p < mid) tmp[k++] = cand[p++];
                    while (q < hi) tmp[k++] = cand[q++];
                }
                memcpy(cand, tmp, sizeof *cand * (size_t)nc);
            }
            int64_t nk = 0;
            for (int64_t i = 0; i < nc && nk < max_out; i++) {
                bool keep = true;
                for (int64_t j = 0; j < nk && keep; j++)
                    if (nms_suppress(bx + cand[i] * 4, bx + kept[j] * 4, center, thr)) keep = false;
                if (!keep) continue;
                kept[nk++] = cand[i];
                out[total * 3] = b, out[total * 3 + 1] = c, out[total * 3 + 2] = cand[i];
                total++;
            }
        }
    }
    free(cand), free(tmp), free(kept), free(bx), free(sc);
    *sel = out;
    *count = total;
    return KILN_OK;
}

kiln_status kiln_infer_NonMaxSuppression(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *bx = c->in[0], *sc = c->in[1];
    const kiln_value *mo = c->n_in > 2 ? c->in[2] : NULL, *iou = c->n_in > 3 ? c->in[3] : NULL,
                     *sth = c->n_in > 4 ? c->in[4] : NULL;
    if (!bx || !sc) return kiln_node_errorf(n, KILN_ERR_SHAPE, "boxes and scores are required");
    if (!float_dt(bx->dtype) || !float_dt(sc->dtype)) return kiln_node_errorf(n, KILN_ERR_SHAPE, "boxes and scores must be float");
    if (mo && !kiln_dtype_is_int(mo->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "max_output_boxes_per_class must be int64");
    if ((iou && !float_dt(iou->dtype)) || (sth && !float_dt(sth->dtype)))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "iou_threshold and score_threshold must be float");
    if (bx->rank >= 0 && (bx->rank != 3 || (bx->dims[2] >= 0 && bx->dims[2] != 4)))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "boxes must be batches x boxes x 4");
    if (sc->rank >= 0 && sc->rank != 3) return kiln_node_errorf(n, KILN_ERR_SHAPE, "scores must be batches x classes x boxes");
    if (bx->rank == 3 && sc->rank == 3) {
        if ((bx->dims[0] >= 0 && sc->dims[0] >= 0 && bx->dims[0] != sc->dims[0]) ||
            (bx->dims[1] >= 0 && sc->dims[2] >= 0 && bx->dims[1] != sc->dims[2]))
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "boxes and scores disagree on batches or box count");
    }
    const kiln_value *opt[3] = {mo, iou, sth};
    for (int i = 0; i < 3; i++)
        if (opt[i] && vnumel(opt[i]) > 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "optional inputs must be scalars");
    int64_t dims[2] = {-1, 3};
    bool all = bx->data && sc->data && (!mo || mo->data) && (!iou || iou->data) && (!sth || sth->data);
    if (all) {
        int64_t *sel, count;
        kiln_status st = nms_run(n, bx->data, sc->data, mo ? mo->data : NULL, iou ? iou->data : NULL,
                                 sth ? sth->data : NULL, &sel, &count);
        if (st) return st;
        free(sel);
        dims[0] = count;
    }
    set_out(c->out[0], KILN_I64, 2, dims, NULL);
    return KILN_OK;
}

kiln_status kiln_eval_NonMaxSuppression(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                                        int n_out)
{
    (void)n_out;
    int64_t *sel, count;
    kiln_status st = nms_run(n, in[0], in[1], n_in > 2 ? in[2] : NULL, n_in > 3 ? in[3] : NULL,
                             n_in > 4 ? in[4] : NULL, &sel, &count);
    if (st) return st;
    if (count != out[0]->dims[0]) {
        free(sel);
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "selected box count changed between inference and evaluation");
    }
    memcpy(out[0]->data, sel, sizeof(int64_t) * (size_t)(count * 3));
    free(sel);
    return KILN_OK;
}

/* -------------------------------------------------------------- DFT, STFT -- */

/* Naive DFT helpers in double. Twiddles come from a table indexed by (j*k) mod n, which
 * keeps the angles exact for long transforms. */
typedef struct twiddle {
    int64_t n;
    double *c, *s; /* cos and sin of 2*pi*t/n */
} twiddle;

static bool twiddle_make(twiddle *t, int64_t n)
{
    t->n = n;
    t->c = alloc_n(n, sizeof *t->c);
    t->s = alloc_n(n, sizeof *t->s);
    if (!t->c || !t->s) {
        free(t->c);
        free(t->s);
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        double a = 2.0 * Q_PI * (double)i / (double)n;
        t->c[i] = cos(a);
        t->s[i] = sin(a);
    }
    return true;
}

static void twiddle_free(twiddle *t)
{
    free(t->c);
    free(t->s);
}

/* out[k] = sum_j in[j] * exp(sign * 2*pi*i*j*k/n) for k < kout; in has n complex values. */
static void dft_line(const twiddle *t, const double *re, const double *im, int64_t kout, double sign, double *ore,
                     double *oim)
{
    int64_t n = t->n;
    for (int64_t k = 0; k < kout; k++) {
        double ar = 0, ai = 0;
        int64_t ph = 0; /* j*k mod n, advanced incrementally */
        for (int64_t j = 0; j < n; j++) {
            double c = t->c[ph], s = sign * t->s[ph];
            ar += re[j] * c - im[j] * s;
            ai += re[j] * s + im[j] * c;
            ph += k % n;
            if (ph >= n) ph -= n;
        }
        ore[k] = ar;
        oim[k] = ai;
    }
}

typedef struct dft_cfg {
    int64_t axis, n, in_len, out_len, out_last;
    bool inverse, onesided;
} dft_cfg;

/* Resolves axis and length; *known false when they depend on unknown data. */
static kiln_status dft_make(const kiln_node *n, const kiln_value *x, const kiln_value *len_v, const kiln_value *axis_v,
                            dft_cfg *d, bool *known)
{
    memset(d, 0, sizeof *d);
    *known = false;
    d->inverse = kiln_attr_int(n, "inverse", 0) != 0;
    d->onesided = kiln_attr_int(n, "onesided", 0) != 0;
    d->out_last = d->inverse && d->onesided ? 1 : 2;
    int64_t axis = -2, len = -1;
    bool ka = true, kl = false;
    kiln_status st;
    if (axis_v && (st = scalar_int(n, axis_v, "axis", &axis, &ka))) return st;
    if (len_v && (st = scalar_int(n, len_v, "dft_length", &len, &kl))) return st;
    if (x->rank < 0 || !ka || (len_v && !kl)) return KILN_OK;
    if (x->rank < 2) return kiln_node_errorf(n, KILN_ERR_SHAPE, "input must have rank >= 2 (signal dims plus 1 or 2)");
    int64_t a = axis < 0 ? axis + x->rank : axis;
    if (a < 0 || a >= x->rank - 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "axis %lld is out of range (the last dim holds real/imaginary parts)",
                                (long long)axis);
    d->axis = a;
    d->in_len = x->dims[a];
    if (kl) {
        if (len < 1 || len > Q_ATTR_MAX)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "dft_length %lld is out of range", (long long)len);
        d->n = len;
    } else if (d->in_len < 0) {
        return KILN_OK;
    } else {
        d->n = d->inverse && d->onesided ? 2 * (d->in_len - 1) : d->in_len;
        if (d->n < 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "the transform length is %lld", (long long)d->n);
    }
    d->out_len = !d->inverse && d->onesided ? d->n / 2 + 1 : d->n;
    *known = true;
    return KILN_OK;
}

kiln_status kiln_infer_DFT(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *lv = c->n_in > 1 ? c->in[1] : NULL, *av = c->n_in > 2 ? c->in[2] : NULL;
    if (!x) return kiln_node_errorf(n, KILN_ERR_SHAPE, "input is required");
    if (!float_dt(x->dtype)) return kiln_node_errorf(n, KILN_ERR_SHAPE, "input must be float, got %s", kiln_dtype_name(x->dtype));
    if (x->rank >= 0 && x->rank >= 1 && x->dims[x->rank - 1] >= 0 && x->dims[x->rank - 1] != 1 && x->dims[x->rank - 1] != 2)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "the last dim must be 1 (real) or 2 (complex), got %lld",
                                (long long)x->dims[x->rank - 1]);
    dft_cfg d;
    bool known;
    kiln_status st = dft_make(n, x, lv, av, &d, &known);
    if (st) return st;
    if (x->rank < 0) {
        set_unknown_rank(c->out[0], x->dtype);
        return KILN_OK;
    }
    if (x->rank < 2) /* [..., signal, 1 or 2]: found by fuzz_onnx (a scalar input) */
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input must have rank >= 2 ([..., signal, 1|2]), got rank %d", x->rank);
    kiln_value_copy_type(c->out[0], x);
    kiln_value *o = c->out[0];
    o->dims[x->rank - 1] = d.out_last;
    o->sym[x->rank - 1] = 0;
    if (known) {
        if (d.out_len != x->dims[d.axis] || d.out_len < 0) {
            o->dims[d.axis] = d.out_len;
            o->sym[d.axis] = 0;
        }
    } else {
        for (int i = 0; i < x->rank - 1; i++) { /* the transformed dim is not known: any may change */
            bool axis_known = !av || av->data;
            if (axis_known && i != d.axis) continue;
            o->dims[i] = -1;
            o->sym[i] = 0;
        }
    }
    return KILN_OK;
}

kiln_status kiln_eval_DFT(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    (void)n_out;
    const kiln_tensor *x = in[0];
    kiln_tensor *y = out[0];
    kiln_value vx, vl, va;
    view_of(&vx, x);
    if (n_in > 1 && in[1]) view_of(&vl, in[1]), vl.data = in[1];
    if (n_in > 2 && in[2]) view_of(&va, in[2]), va.data = in[2];
    dft_cfg d;
    bool known;
    kiln_status st = dft_make(n, &vx, n_in > 1 && in[1] ? &vl : NULL, n_in > 2 && in[2] ? &va : NULL, &d, &known);
    if (st) return st;
    if (!known) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "DFT geometry unresolved");
    int r = x->rank;
    int64_t cin = x->dims[r - 1], L = d.in_len, outer = prod_dims((int)d.axis, x->dims);
    int64_t inner = prod_dims(r - 2 - (int)d.axis, x->dims + d.axis + 1), n_ = d.n;
    twiddle t;
    if (!twiddle_make(&t, n_)) return oom(n);
    double *re = alloc_n(n_, sizeof *re), *im = alloc_n(n_, sizeof *im);
    double *ore = alloc_n(n_, sizeof *ore), *oim = alloc_n(n_, sizeof *oim);
    if (!re || !im || !ore || !oim) {
        twiddle_free(&t), free(re), free(im), free(ore), free(oim);
        return oom(n);
    }
    bool irfft = d.inverse && d.onesided;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            for (int64_t j = 0; j < n_; j++) re[j] = im[j] = 0.0;
            if (irfft) { /* rebuild the Hermitian spectrum from its first n/2+1 bins */
                int64_t half = n_ / 2;
                for (int64_t k = 0; k <= half && k < L; k++) {
                    int64_t src = ((o * L + k) * inner + i) * cin;
                    re[k] = kiln_tensor_get(x, src);
                    im[k] = cin == 2 ? kiln_tensor_get(x, src + 1) : 0.0;
                }
                im[0] = 0.0;
                if (n_ % 2 == 0) im[half] = 0.0;
                for (int64_t k = half + 1; k < n_; k++) re[k] = re[n_ - k], im[k] = -im[n_ - k];
            } else {
                for (int64_t j = 0; j < n_ && j < L; j++) {
                    int64_t src = ((o * L + j) * inner + i) * cin;
                    re[j] = kiln_tensor_get(x, src);
                    im[j] = cin == 2 ? kiln_tensor_get(x, src + 1) : 0.0;
                }
            }
            dft_line(&t, re, im, d.out_len, d.inverse ? 1.0 : -1.0, ore, oim);
            double scale = d.inverse ? 1.0 / (double)n_ : 1.0;
            for (int64_t k = 0; k < d.out_len; k++) {
                int64_t dst = ((o * d.out_len + k) * inner + i) * d.out_last;
                kiln_tensor_set(y, dst, ore[k] * scale);
                if (d.out_last == 2) kiln_tensor_set(y, dst + 1, oim[k] * scale);
            }
        }
    twiddle_free(&t), free(re), free(im), free(ore), free(oim);
    return KILN_OK;
}

typedef struct stft_cfg {
    int64_t step, flen, frames, bins;
    bool known;
} stft_cfg;

static kiln_status stft_make(const kiln_node *n, const kiln_value *x, const kiln_value *stp, const kiln_value *win,
                             const kiln_value *flv, stft_cfg *s)
{
    memset(s, 0, sizeof *s);
    bool ks, kf = false;
    kiln_status st;
    if ((st = scalar_int(n, stp, "frame_step", &s->step, &ks))) return st;
    if (flv && (st = scalar_int(n, flv, "frame_length", &s->flen, &kf))) return st;
    if (win && win->rank >= 0 && win->rank != 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "window must be 1-D");
    int64_t wl = win && win->rank == 1 ? win->dims[0] : -1;
    if (kf && wl >= 0 && wl != s->flen)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "window has %lld values but frame_length is %lld", (long long)wl,
                                (long long)s->flen);
    if (!kf) {
        if (flv) return KILN_OK;
        s->flen = win ? wl : x->rank == 3 ? x->dims[1] : -1;
    }
    if (!ks || s->flen < 0 || x->rank != 3 || x->dims[1] < 0) return KILN_OK;
    if (s->step < 1) return kiln_node_errorf(n, KILN_ERR_SHAPE, "frame_step %lld must be positive", (long long)s->step);
    if (s->flen < 1 || s->flen > x->dims[1] || s->flen > Q_ATTR_MAX)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "frame_length %lld must be in [1, %lld]", (long long)s->flen,
                                (long long)x->dims[1]);
    s->frames = 1 + (x->dims[1] - s->flen) / s->step;
    s->bins = kiln_attr_int(n, "onesided", 1) ? s->flen / 2 + 1 : s->flen;
    s->known = true;
    return KILN_OK;
}

kiln_status kiln_infer_STFT(kiln_infer_ctx *c)
{
    const kiln_node *n = c->node;
    const kiln_value *x = c->in[0], *stp = c->in[1], *win = c->n_in > 2 ? c->in[2] : NULL,
                     *flv = c->n_in > 3 ? c->in[3] : NULL;
    if (!x || !stp) return kiln_node_errorf(n, KILN_ERR_SHAPE, "signal and frame_step are required");
    if (!float_dt(x->dtype)) return kiln_node_errorf(n, KILN_ERR_SHAPE, "signal must be float");
    if (win && !float_dt(win->dtype)) return kiln_node_errorf(n, KILN_ERR_SHAPE, "window must be float");
    if (x->rank >= 0 && (x->rank != 3 || (x->dims[2] >= 0 && x->dims[2] != 1 && x->dims[2] != 2)))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "signal must be batch x length x 1 (real) or 2 (complex)");
    stft_cfg s;
    kiln_status st = stft_make(n, x, stp, win, flv, &s);
    if (st) return st;
    int64_t od[4] = {x->rank == 3 ? x->dims[0] : -1, s.known ? s.frames : -1, s.known ? s.bins : -1, 2};
    int32_t os[4] = {x->rank == 3 ? x->sym[0] : 0, 0, 0, 0};
    set_out(c->out[0], x->dtype, 4, od, os);
    return KILN_OK;
}

kiln_status kiln_eval_STFT(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out)
{
    (void)n_out;
    const kiln_tensor *x = in[0], *win = n_in > 2 ? in[2] : NULL;
    kiln_tensor *y = out[0];
    kiln_value vx, vs, vw, vf;
    view_of(&vx, x);
    view_of(&vs, in[1]);
    vs.data = in[1];
    if (win) view_of(&vw, win);
    if (n_in > 3 && in[3]) view_of(&vf, in[3]), vf.data = in[3];
    stft_cfg s;
    kiln_status st = stft_make(n, &vx, &vs, win ? &vw : NULL, n_in > 3 && in[3] ? &vf : NULL, &s);
    if (st) return st;
    if (!s.known) return kiln_node_errorf(n, KILN_ERR_INTERNAL, "STFT geometry unresolved");
    int64_t B = x->dims[0], L = x->dims[1], cin = x->dims[2], fl = s.flen;
    twiddle t;
    if (!twiddle_make(&t, fl)) return oom(n);
    double *re = alloc_n(fl, sizeof *re), *im = alloc_n(fl, sizeof *im);
    double *ore = alloc_n(fl, sizeof *ore), *oim = alloc_n(fl, sizeof *oim);
    if (!re || !im || !ore || !oim) {
        twiddle_free(&t), free(re), free(im), free(ore), free(oim);
        return oom(n);
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t f = 0; f < s.frames; f++) {
            for (int64_t j = 0; j < fl; j++) {
                double w = win ? kiln_tensor_get(win, j) : 1.0;
                int64_t src = (b * L + f * s.step + j) * cin;
                re[j] = kiln_tensor_get(x, src) * w;
                im[j] = cin == 2 ? kiln_tensor_get(x, src + 1) * w : 0.0;
            }
            dft_line(&t, re, im, s.bins, -1.0, ore, oim);
            for (int64_t k = 0; k < s.bins; k++) {
                int64_t dst = ((b * s.frames + f) * s.bins + k) * 2;
                kiln_tensor_set(y, dst, ore[k]);
                kiln_tensor_set(y, dst + 1, oim[k]);
            }
        }
    twiddle_free(&t), free(re), free(im), free(ore), free(oim);
    return KILN_OK;
}
