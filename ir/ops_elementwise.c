/* ops_elementwise.c — shape/dtype rules and CPU reference for elementwise and broadcast
 * ops: unary math, activations, binary arithmetic, comparison, logic, Cast, Where,
 * variadic Max/Min/Sum/Mean.
 *
 * Numeric model (the golden semantics):
 * - float dtypes compute in double and round once into the output dtype (fp16/bf16
 *   round to nearest even; f32 hot paths read/write float* directly);
 * - integer dtypes compute exactly on 64-bit patterns: signed values are sign-extended,
 *   unsigned zero-extended, arithmetic wraps (done in uint64 so there is no UB) and the
 *   store truncates to the element width (two's complement);
 * - integer division/modulo by zero is defined as 0 rather than an error, so a model
 *   never crashes on data.
 */
#include "ops_common.h"

#include <float.h>

/* ------------------------------------------------------------------ dtypes -- */

enum {
    M_F = 1u,  /* f16 bf16 f32 f64 */
    M_SI = 2u, /* i8..i64 */
    M_UI = 4u, /* u8..u64 */
    M_B = 8u,  /* bool */
    M_INT = M_SI | M_UI,
    M_NUM = M_F | M_SI | M_UI,
    M_ALL = M_NUM | M_B
};

static unsigned dt_mask(kiln_dtype dt)
{
    switch (dt) {
    case KILN_F16: case KILN_BF16: case KILN_F32: case KILN_F64: return M_F;
    case KILN_I8: case KILN_I16: case KILN_I32: case KILN_I64: return M_SI;
    case KILN_U8: case KILN_U16: case KILN_U32: case KILN_U64: return M_UI;
    case KILN_BOOL: return M_B;
    default: return 0;
    }
}

static bool is_flt(kiln_dtype dt) { return dt_mask(dt) == M_F; }
static bool is_sgn(kiln_dtype dt) { return dt_mask(dt) == M_SI; }

static const char *dt_name(kiln_dtype dt)
{
    const char *s = kiln_dtype_name(dt);
    return s ? s : "?";
}

/* Element width in bits (shift counts are checked against it). */
static int dt_bits(kiln_dtype dt) { return (int)kiln_dtype_size(dt) * 8; }

/* A dtype error names the op's input; unsupported dtypes (string, float8, ...) are
 * UNSUPPORTED, dtypes the op does not accept are a SHAPE (type) error. */
static kiln_status check_dtype(const kiln_node *n, const kiln_value *v, unsigned allowed,
                               const char *what)
{
    if (v->dtype == KILN_UNDEF)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s has no inferred dtype", what);
    unsigned m = dt_mask(v->dtype);
    if (m == 0)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "%s has unsupported dtype %s", what,
                                dt_name(v->dtype));
    if (!(m & allowed))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%s dtype %s is not accepted by this op",
                                what, dt_name(v->dtype));
    return KILN_OK;
}

/* ------------------------------------------------------- element access -- */

/* double -> IEEE binary with ebits exponent / mbits mantissa bits, correctly rounded
 * (nearest even) from the double itself, so f64 -> f16 does not round twice. */
static uint16_t dbl_to_small(double d, int ebits, int mbits)
{
    uint32_t sign = signbit(d) ? 1u << (ebits + mbits) : 0u;
    int bias = (1 << (ebits - 1)) - 1;
    uint32_t inf = ((1u << ebits) - 1u) << mbits;
    if (isnan(d)) return (uint16_t)(sign | inf | (1u << (mbits - 1)));
    double a = fabs(d);
    if (isinf(a)) return (uint16_t)(sign | inf);
    if (a == 0.0) return (uint16_t)sign;
    int ex;
    (void)frexp(a, &ex);
    int e = ex - 1;                        /* a in [2^e, 2^(e+1)) */
    if (e + bias >= (1 << ebits) - 1) return (uint16_t)(sign | inf);
    if (e < 1 - bias) e = 1 - bias;        /* subnormal: fixed quantum */
    /* q quanta of 2^(e-mbits): in [2^mbits, 2^(mbits+1)] for normals, [0, 2^mbits]
     * for subnormals; the carry of a round-up lands in the exponent field by itself. */
    double q = nearbyint(ldexp(a, mbits - e));
    uint64_t bits = ((uint64_t)(e + bias - 1) << mbits) + (uint64_t)q;
    if (bits >= inf) return (uint16_t)(sign | inf);
    return (uint16_t)(sign | (uint32_t)bits);
}
static uint16_t dbl_to_f16(double d) { return dbl_to_small(d, 5, 10); }
static uint16_t dbl_to_bf16(double d) { return dbl_to_small(d, 8, 7); }

/* double -> float without relying on out-of-range conversion behaviour. */
static inline float dbl_to_flt(double d)
{
    if (d > (double)FLT_MAX || d < -(double)FLT_MAX) {
        if (isinf(d)) return (float)d;
        /* halfway between FLT_MAX and 2^128 rounds to infinity */
        double half = ldexp(1.0, 103);
        if (fabs(d) >= (double)FLT_MAX + half) return d > 0 ? INFINITY : -INFINITY;
        return d > 0 ? FLT_MAX : -FLT_MAX;
    }
    return (float)d;
}

/* Saturating truncation toward zero of a double to an integer dtype (NaN -> 0). */
static int64_t sat_i64(double d, int64_t lo, int64_t hi)
{
    if (isnan(d)) return 0;
    if (d >= (double)hi) return hi;  /* (double)INT64_MAX rounds up to 2^63: still right */
    if (d <= (double)lo) return lo;
    return (int64_t)d;
}
static uint64_t sat_u64(double d, uint64_t hi)
{
    if (isnan(d) || d <= 0.0) return 0;
    if (d >= (double)hi) return hi;
    return (uint64_t)d;
}

static inline double ld_f(const kiln_tensor *t, int64_t i)
{
    const void *p = t->data;
    switch (t->dtype) {
    case KILN_F32: return ((const float *)p)[i];
    case KILN_F64: return ((const double *)p)[i];
    case KILN_F16: return kiln_f16_to_f32(((const uint16_t *)p)[i]);
    case KILN_BF16: return kiln_bf16_to_f32(((const uint16_t *)p)[i]);
    case KILN_I8: return ((const int8_t *)p)[i];
    case KILN_I16: return ((const int16_t *)p)[i];
    case KILN_I32: return ((const int32_t *)p)[i];
    case KILN_I64: return (double)((const int64_t *)p)[i];
    case KILN_U8: return ((const uint8_t *)p)[i];
    case KILN_U16: return ((const uint16_t *)p)[i];
    case KILN_U32: return ((const uint32_t *)p)[i];
    case KILN_U64: return (double)((const uint64_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0.0;
    }
}

static inline void st_f(kiln_tensor *t, int64_t i, double v)
{
    void *p = t->data;
    switch (t->dtype) {
    case KILN_F32: ((float *)p)[i] = dbl_to_flt(v); break;
    case KILN_F64: ((double *)p)[i] = v; break;
    case KILN_F16: ((uint16_t *)p)[i] = dbl_to_f16(v); break;
    case KILN_BF16: ((uint16_t *)p)[i] = dbl_to_bf16(v); break;
    case KILN_I8: ((int8_t *)p)[i] = (int8_t)sat_i64(v, INT8_MIN, INT8_MAX); break;
    case KILN_I16: ((int16_t *)p)[i] = (int16_t)sat_i64(v, INT16_MIN, INT16_MAX); break;
    case KILN_I32: ((int32_t *)p)[i] = (int32_t)sat_i64(v, INT32_MIN, INT32_MAX); break;
    case KILN_I64: ((int64_t *)p)[i] = sat_i64(v, INT64_MIN, INT64_MAX); break;
    case KILN_U8: ((uint8_t *)p)[i] = (uint8_t)sat_u64(v, UINT8_MAX); break;
    case KILN_U16: ((uint16_t *)p)[i] = (uint16_t)sat_u64(v, UINT16_MAX); break;
    case KILN_U32: ((uint32_t *)p)[i] = (uint32_t)sat_u64(v, UINT32_MAX); break;
    case KILN_U64: ((uint64_t *)p)[i] = sat_u64(v, UINT64_MAX); break;
    case KILN_BOOL: ((uint8_t *)p)[i] = v != 0.0; break;
    default: break;
    }
}

/* Integer bit pattern: sign-extended for signed dtypes, zero-extended otherwise. */
static inline uint64_t ld_u(const kiln_tensor *t, int64_t i)
{
    const void *p = t->data;
    switch (t->dtype) {
    case KILN_I8: return (uint64_t)(int64_t)((const int8_t *)p)[i];
    case KILN_I16: return (uint64_t)(int64_t)((const int16_t *)p)[i];
    case KILN_I32: return (uint64_t)(int64_t)((const int32_t *)p)[i];
    case KILN_I64: return (uint64_t)((const int64_t *)p)[i];
    case KILN_U8: return ((const uint8_t *)p)[i];
    case KILN_U16: return ((const uint16_t *)p)[i];
    case KILN_U32: return ((const uint32_t *)p)[i];
    case KILN_U64: return ((const uint64_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

/* Store the low bits of v (two's complement wrap); bool stores v != 0. */
static inline void st_u(kiln_tensor *t, int64_t i, uint64_t v)
{
    void *p = t->data;
    switch (t->dtype) {
    case KILN_I8: case KILN_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case KILN_I16: case KILN_U16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case KILN_I32: case KILN_U32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case KILN_I64: case KILN_U64: ((uint64_t *)p)[i] = v; break;
    case KILN_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

/* ------------------------------------------------------ broadcast plans -- */

#define BC_MAX_IN 3

/* Inputs broadcast against the output shape, with size-1 dims dropped and adjacent
 * dims merged wherever every input walks them contiguously; a same-shape op becomes
 * one long row, a bias add becomes rows of the innermost run. */
typedef struct bc_plan {
    int n;
    int rank; /* >= 1 */
    int64_t dims[KILN_MAX_RANK];
    int64_t st[BC_MAX_IN][KILN_MAX_RANK];
    int64_t numel;
} bc_plan;

typedef struct bc_iter {
    const bc_plan *p;
    int64_t idx[KILN_MAX_RANK];
    int64_t off[BC_MAX_IN]; /* row start offset of each input */
    int64_t oo;             /* row start offset of the output */
} bc_iter;

/* Shapes were checked by inference; this re-checks cheaply so a bad call cannot read
 * out of bounds. */
static bool bc_plan_init(bc_plan *p, const kiln_tensor *o, const kiln_tensor *const *ins, int n)
{
    int r = o->rank;
    int64_t raw[BC_MAX_IN][KILN_MAX_RANK];
    p->n = n;
    p->numel = o->numel;
    for (int k = 0; k < n; k++) {
        const kiln_tensor *t = ins[k];
        if (t->rank > r) return false;
        int64_t s = 1;
        for (int d = r - 1; d >= 0; d--) {
            int id = d - (r - t->rank);
            if (id < 0) {
                raw[k][d] = 0;
                continue;
            }
            int64_t td = t->dims[id];
            if (td == o->dims[d]) raw[k][d] = td == 1 ? 0 : s;
            else if (td == 1) raw[k][d] = 0;
            else return false;
            s *= td;
        }
    }
    p->rank = 0;
    for (int d = 0; d < r; d++) {
        int64_t od = o->dims[d];
        if (od == 1) continue;
        if (p->rank > 0) {
            int last = p->rank - 1;
            bool merge = true;
            for (int k = 0; k < n; k++)
                if (p->st[k][last] != raw[k][d] * od) merge = false;
            if (merge) {
                p->dims[last] *= od;
                for (int k = 0; k < n; k++) p->st[k][last] = raw[k][d];
                continue;
            }
        }
        p->dims[p->rank] = od;
        for (int k = 0; k < n; k++) p->st[k][p->rank] = raw[k][d];
        p->rank++;
    }
    if (p->rank == 0) {
        p->rank = 1;
        p->dims[0] = 1;
        for (int k = 0; k < n; k++) p->st[k][0] = 0;
    }
    return true;
}

static void bc_iter_init(bc_iter *it, const bc_plan *p)
{
    memset(it, 0, sizeof *it);
    it->p = p;
}

/* Advance to the next row (all dims but the last); false after the last row. */
static bool bc_iter_next(bc_iter *it)
{
    const bc_plan *p = it->p;
    it->oo += p->dims[p->rank - 1];
    for (int d = p->rank - 2; d >= 0; d--) {
        it->idx[d]++;
        for (int k = 0; k < p->n; k++) it->off[k] += p->st[k][d];
        if (it->idx[d] < p->dims[d]) return true;
        it->idx[d] = 0;
        for (int k = 0; k < p->n; k++) it->off[k] -= p->st[k][d] * p->dims[d];
    }
    return false;
}

/* --------------------------------------------------- common arg checks -- */

static kiln_status need_io(const kiln_node *n, kiln_tensor *const *in, int n_in, int need_in,
                           kiln_tensor *const *out, int n_out)
{
    if (n_in < need_in || n_out < 1 || !out || !out[0])
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "evaluator called with missing tensors");
    for (int i = 0; i < need_in; i++)
        if (!in || !in[i])
            return kiln_node_errorf(n, KILN_ERR_INTERNAL, "evaluator called without input %d", i);
    return KILN_OK;
}

static kiln_status need_same_numel(const kiln_node *n, const kiln_tensor *a, const kiln_tensor *b)
{
    if (a->numel != b->numel)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output has %lld elements, input %lld",
                                (long long)b->numel, (long long)a->numel);
    return KILN_OK;
}

static kiln_status infer_io(kiln_infer_ctx *c, int need_in)
{
    if (c->n_in < need_in || c->n_out < 1 || !c->out[0])
        return kiln_node_errorf(c->node, KILN_ERR_MODEL, "missing inputs or outputs");
    for (int i = 0; i < need_in; i++)
        if (!c->in[i])
            return kiln_node_errorf(c->node, KILN_ERR_MODEL, "input %d is required", i);
    return KILN_OK;
}

/* -------------------------------------------------------- unary driver -- */

typedef struct uparams {
    double alpha, beta, gamma, bias, lambd;
    bool tanh_approx;
} uparams;

typedef double (*unary_f)(double x, const uparams *p);
typedef uint64_t (*unary_i)(uint64_t x, bool sgn);

static kiln_status infer_unary(kiln_infer_ctx *c, unsigned allowed, kiln_dtype out_dt)
{
    kiln_status st = infer_io(c, 1);
    if (st) return st;
    st = check_dtype(c->node, c->in[0], allowed, "input");
    if (st) return st;
    kiln_value_copy_type(c->out[0], c->in[0]);
    if (out_dt != KILN_UNDEF) c->out[0]->dtype = out_dt;
    return KILN_OK;
}

/* Non-f32 dtypes: f64 directly, f16/bf16 through the double path, ints through ifn
 * (exact) when the op has an integer form, else through double with saturation. */
static void unary_generic(const kiln_tensor *x, kiln_tensor *y, unary_f fn, unary_i ifn,
                          const uparams *p)
{
    int64_t ne = x->numel;
    if (x->dtype == KILN_F64) {
        const double *xd = x->data;
        double *yd = y->data;
        for (int64_t i = 0; i < ne; i++) yd[i] = fn(xd[i], p);
    } else if (is_flt(x->dtype) || !ifn) {
        for (int64_t i = 0; i < ne; i++) st_f(y, i, fn(ld_f(x, i), p));
    } else {
        bool sgn = is_sgn(x->dtype);
        for (int64_t i = 0; i < ne; i++) st_u(y, i, ifn(ld_u(x, i), sgn));
    }
}

static kiln_status params_none(const kiln_node *n, uparams *p)
{
    (void)n;
    memset(p, 0, sizeof *p);
    return KILN_OK;
}

/* One op = its infer (accepted dtypes) and eval: an f32 fast loop evaluating F32EXPR (in
 * terms of float x and uparams p), everything else through unary_generic. */
#define DEF_UNARY_X(Op, fn, ifn, allowed, params, F32EXPR)                                   \
    kiln_status kiln_infer_##Op(kiln_infer_ctx *c)                                           \
    {                                                                                        \
        uparams p;                                                                           \
        kiln_status st = params(c->node, &p);                                                \
        if (st) return st;                                                                   \
        return infer_unary(c, (allowed), KILN_UNDEF);                                        \
    }                                                                                        \
    kiln_status kiln_eval_##Op(const kiln_node *n, kiln_tensor *const *in, int n_in,         \
                               kiln_tensor *const *out, int n_out)                           \
    {                                                                                        \
        uparams p;                                                                           \
        kiln_status st = need_io(n, in, n_in, 1, out, n_out);                                \
        if (!st) st = params(n, &p);                                                         \
        if (!st) st = need_same_numel(n, in[0], out[0]);                                     \
        if (st) return st;                                                                   \
        if (in[0]->dtype == KILN_F32 && out[0]->dtype == KILN_F32) {                         \
            const float *xs = in[0]->data;                                                   \
            float *ys = out[0]->data;                                                        \
            for (int64_t i = 0; i < in[0]->numel; i++) {                                     \
                float x = xs[i];                                                             \
                ys[i] = (F32EXPR);                                                           \
            }                                                                                \
            return KILN_OK;                                                                  \
        }                                                                                    \
        unary_generic(in[0], out[0], fn, ifn, &p);                                           \
        return KILN_OK;                                                                      \
    }

/* Most ops: f32 computes in double and rounds once. */
#define DEF_UNARY(Op, fn, ifn, allowed, params) \
    DEF_UNARY_X(Op, fn, ifn, allowed, params, dbl_to_flt(fn((double)x, &p)))

/* ---- scalar functions ---- */
static inline double f_abs(double x, const uparams *p) { (void)p; return fabs(x); }
static inline double f_acos(double x, const uparams *p) { (void)p; return acos(x); }
static inline double f_acosh(double x, const uparams *p) { (void)p; return acosh(x); }
static inline double f_asin(double x, const uparams *p) { (void)p; return asin(x); }
static inline double f_asinh(double x, const uparams *p) { (void)p; return asinh(x); }
static inline double f_atan(double x, const uparams *p) { (void)p; return atan(x); }
static inline double f_atanh(double x, const uparams *p) { (void)p; return atanh(x); }
static inline double f_ceil(double x, const uparams *p) { (void)p; return ceil(x); }
static inline double f_cos(double x, const uparams *p) { (void)p; return cos(x); }
static inline double f_cosh(double x, const uparams *p) { (void)p; return cosh(x); }
static inline double f_erf(double x, const uparams *p) { (void)p; return erf(x); }
static inline double f_exp(double x, const uparams *p) { (void)p; return exp(x); }
static inline double f_floor(double x, const uparams *p) { (void)p; return floor(x); }
static inline double f_log(double x, const uparams *p) { (void)p; return log(x); }
static inline double f_neg(double x, const uparams *p) { (void)p; return -x; }
static inline double f_recip(double x, const uparams *p) { (void)p; return 1.0 / x; }
/* nearbyint in the default rounding mode rounds half to even, as ONNX Round wants */
static inline double f_round(double x, const uparams *p) { (void)p; return nearbyint(x); }
static inline double f_sign(double x, const uparams *p)
{
    (void)p;
    return x > 0 ? 1.0 : x < 0 ? -1.0 : x; /* 0 and NaN pass through */
}
static inline double f_sin(double x, const uparams *p) { (void)p; return sin(x); }
static inline double f_sinh(double x, const uparams *p) { (void)p; return sinh(x); }
static inline double f_sqrt(double x, const uparams *p) { (void)p; return sqrt(x); }
static inline double f_tan(double x, const uparams *p) { (void)p; return tan(x); }
static inline double f_relu(double x, const uparams *p) { (void)p; return x < 0 ? 0.0 : x; }
static inline double f_sigmoid(double x, const uparams *p)
{
    (void)p;
    /* split on sign so exp never overflows into inf/inf */
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}
static inline double f_tanh(double x, const uparams *p) { (void)p; return tanh(x); }
static inline double f_softplus(double x, const uparams *p)
{
    (void)p;
    /* log(1 + e^x) without overflow for large x */
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}
static inline double f_softsign(double x, const uparams *p) { (void)p; return x / (1.0 + fabs(x)); }
static inline double f_celu(double x, const uparams *p)
{
    return fmax(0.0, x) + fmin(0.0, p->alpha * expm1(x / p->alpha)) + (isnan(x) ? x : 0.0);
}
static inline double f_elu(double x, const uparams *p) { return x < 0 ? p->alpha * expm1(x) : x; }
static inline double f_selu(double x, const uparams *p)
{
    return x <= 0 ? p->gamma * (p->alpha * exp(x) - p->alpha) : p->gamma * x;
}
static inline double f_leaky(double x, const uparams *p) { return x < 0 ? p->alpha * x : x; }
static inline double f_threlu(double x, const uparams *p) { return x > p->alpha ? x : (isnan(x) ? x : 0.0); }
static inline double f_hsigmoid(double x, const uparams *p)
{
    double v = p->alpha * x + p->beta;
    return isnan(v) ? v : v < 0 ? 0.0 : v > 1 ? 1.0 : v;
}
static inline double f_hswish(double x, const uparams *p)
{
    (void)p;
    double v = x / 6.0 + 0.5;
    if (isnan(v)) return v;
    return x * (v < 0 ? 0.0 : v > 1 ? 1.0 : v);
}
static inline double f_shrink(double x, const uparams *p)
{
    if (x < -p->lambd) return x + p->bias;
    if (x > p->lambd) return x - p->bias;
    return isnan(x) ? x : 0.0;
}
static inline double f_gelu(double x, const uparams *p)
{
    if (p->tanh_approx) {
        const double k = 0.79788456080286535588; /* sqrt(2/pi) */
        return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
    }
    return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
}
static inline double f_mish(double x, const uparams *p) { return x * tanh(f_softplus(x, p)); }

/* ---- exact integer forms ---- */
static uint64_t i_abs(uint64_t x, bool sgn) { return sgn && (int64_t)x < 0 ? 0 - x : x; }
static uint64_t i_neg(uint64_t x, bool sgn) { (void)sgn; return 0 - x; }
static uint64_t i_sign(uint64_t x, bool sgn)
{
    if (x == 0) return 0;
    return sgn && (int64_t)x < 0 ? UINT64_MAX : 1; /* UINT64_MAX stores as -1 */
}
static uint64_t i_relu(uint64_t x, bool sgn) { return sgn && (int64_t)x < 0 ? 0 : x; }

/* ---- attribute readers (also validate, so infer reports bad attributes) ---- */
static kiln_status params_celu(const kiln_node *n, uparams *p)
{
    params_none(n, p);
    p->alpha = kiln_attr_float(n, "alpha", 1.0f);
    if (p->alpha == 0 || isnan(p->alpha))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "alpha must be nonzero");
    return KILN_OK;
}
static kiln_status params_elu(const kiln_node *n, uparams *p)
{
    params_none(n, p);
    p->alpha = kiln_attr_float(n, "alpha", 1.0f);
    return KILN_OK;
}
static kiln_status params_selu(const kiln_node *n, uparams *p)
{
    params_none(n, p);
    p->alpha = kiln_attr_float(n, "alpha", 1.67326319217681884765625f);
    p->gamma = kiln_attr_float(n, "gamma", 1.05070102214813232421875f);
    return KILN_OK;
}
static kiln_status params_leaky(const kiln_node *n, uparams *p)
{
    params_none(n, p);
    p->alpha = kiln_attr_float(n, "alpha", 0.01f);
    return KILN_OK;
}
static kiln_status params_threlu(const kiln_node *n, uparams *p)
{
    params_none(n, p);
    p->alpha = kiln_attr_float(n, "alpha", 1.0f);
    return KILN_OK;
}
static kiln_status params_hsigmoid(const kiln_node *n, uparams *p)
{
    params_none(n, p);
    p->alpha = kiln_attr_float(n, "alpha", 0.2f);
    p->beta = kiln_attr_float(n, "beta", 0.5f);
    return KILN_OK;
}
static kiln_status params_shrink(const kiln_node *n, uparams *p)
{
    params_none(n, p);
    p->bias = kiln_attr_float(n, "bias", 0.0f);
    p->lambd = kiln_attr_float(n, "lambd", 0.5f);
    return KILN_OK;
}
static kiln_status params_gelu(const kiln_node *n, uparams *p)
{
    params_none(n, p);
    const char *a = kiln_attr_str(n, "approximate", "none");
    if (strcmp(a, "tanh") == 0) p->tanh_approx = true;
    else if (strcmp(a, "none") != 0)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "approximate='%s' (want none or tanh)", a);
    return KILN_OK;
}

/* ops exact (or correctly rounded) in float use native f32 expressions so loops vectorise */
#define M_RELU (M_F | M_SI)

DEF_UNARY_X(Abs, f_abs, i_abs, M_NUM, params_none, fabsf(x))
DEF_UNARY(Acos, f_acos, NULL, M_F, params_none)
DEF_UNARY(Acosh, f_acosh, NULL, M_F, params_none)
DEF_UNARY(Asin, f_asin, NULL, M_F, params_none)
DEF_UNARY(Asinh, f_asinh, NULL, M_F, params_none)
DEF_UNARY(Atan, f_atan, NULL, M_F, params_none)
DEF_UNARY(Atanh, f_atanh, NULL, M_F, params_none)
DEF_UNARY_X(Ceil, f_ceil, NULL, M_F, params_none, ceilf(x))
DEF_UNARY(Cos, f_cos, NULL, M_F, params_none)
DEF_UNARY(Cosh, f_cosh, NULL, M_F, params_none)
DEF_UNARY(Erf, f_erf, NULL, M_NUM, params_none)
DEF_UNARY(Exp, f_exp, NULL, M_F, params_none)
DEF_UNARY_X(Floor, f_floor, NULL, M_F, params_none, floorf(x))
DEF_UNARY(Log, f_log, NULL, M_F, params_none)
DEF_UNARY_X(Neg, f_neg, i_neg, M_F | M_SI, params_none, -x)
DEF_UNARY(Reciprocal, f_recip, NULL, M_F, params_none)
DEF_UNARY_X(Round, f_round, NULL, M_F, params_none, nearbyintf(x))
DEF_UNARY(Sign, f_sign, i_sign, M_NUM, params_none)
DEF_UNARY(Sin, f_sin, NULL, M_F, params_none)
DEF_UNARY(Sinh, f_sinh, NULL, M_F, params_none)
DEF_UNARY_X(Sqrt, f_sqrt, NULL, M_F, params_none, sqrtf(x))
DEF_UNARY(Tan, f_tan, NULL, M_F, params_none)
DEF_UNARY_X(Relu, f_relu, i_relu, M_RELU, params_none, x < 0 ? 0.0f : x)
DEF_UNARY(Sigmoid, f_sigmoid, NULL, M_F, params_none)
DEF_UNARY(Tanh, f_tanh, NULL, M_F, params_none)
DEF_UNARY(Softplus, f_softplus, NULL, M_F, params_none)
DEF_UNARY(Softsign, f_softsign, NULL, M_F, params_none)
DEF_UNARY(Celu, f_celu, NULL, M_F, params_celu)
DEF_UNARY(Elu, f_elu, NULL, M_F, params_elu)
DEF_UNARY(Selu, f_selu, NULL, M_F, params_selu)
DEF_UNARY_X(LeakyRelu, f_leaky, NULL, M_F, params_leaky, x < 0 ? (float)p.alpha * x : x)
DEF_UNARY(ThresholdedRelu, f_threlu, NULL, M_F, params_threlu)
DEF_UNARY(HardSigmoid, f_hsigmoid, NULL, M_F, params_hsigmoid)
DEF_UNARY(HardSwish, f_hswish, NULL, M_F, params_none)
DEF_UNARY(Shrink, f_shrink, NULL, M_NUM, params_shrink)
DEF_UNARY(Gelu, f_gelu, NULL, M_F, params_gelu)
DEF_UNARY(Mish, f_mish, NULL, M_F, params_none)

/* ------------------------------------------- predicates, logic, identity -- */

kiln_status kiln_infer_IsNaN(kiln_infer_ctx *c) { return infer_unary(c, M_F, KILN_BOOL); }
kiln_status kiln_eval_IsNaN(const kiln_node *n, kiln_tensor *const *in, int n_in,
                            kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 1, out, n_out);
    if (!st) st = need_same_numel(n, in[0], out[0]);
    if (st) return st;
    uint8_t *y = out[0]->data;
    for (int64_t i = 0; i < in[0]->numel; i++) y[i] = isnan(ld_f(in[0], i)) != 0;
    return KILN_OK;
}

kiln_status kiln_infer_IsInf(kiln_infer_ctx *c) { return infer_unary(c, M_F, KILN_BOOL); }
kiln_status kiln_eval_IsInf(const kiln_node *n, kiln_tensor *const *in, int n_in,
                            kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 1, out, n_out);
    if (!st) st = need_same_numel(n, in[0], out[0]);
    if (st) return st;
    bool pos = kiln_attr_int(n, "detect_positive", 1) != 0;
    bool neg = kiln_attr_int(n, "detect_negative", 1) != 0;
    uint8_t *y = out[0]->data;
    for (int64_t i = 0; i < in[0]->numel; i++) {
        double v = ld_f(in[0], i);
        y[i] = isinf(v) && ((v > 0 && pos) || (v < 0 && neg));
    }
    return KILN_OK;
}

kiln_status kiln_infer_Not(kiln_infer_ctx *c) { return infer_unary(c, M_B, KILN_UNDEF); }
kiln_status kiln_eval_Not(const kiln_node *n, kiln_tensor *const *in, int n_in,
                          kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 1, out, n_out);
    if (!st) st = need_same_numel(n, in[0], out[0]);
    if (st) return st;
    const uint8_t *x = in[0]->data;
    uint8_t *y = out[0]->data;
    for (int64_t i = 0; i < in[0]->numel; i++) y[i] = x[i] == 0;
    return KILN_OK;
}

kiln_status kiln_infer_BitwiseNot(kiln_infer_ctx *c) { return infer_unary(c, M_INT, KILN_UNDEF); }
kiln_status kiln_eval_BitwiseNot(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                 kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 1, out, n_out);
    if (!st) st = need_same_numel(n, in[0], out[0]);
    if (st) return st;
    for (int64_t i = 0; i < in[0]->numel; i++) st_u(out[0], i, ~ld_u(in[0], i));
    return KILN_OK;
}

/* Byte copy of a same-dtype, same-numel tensor. */
static kiln_status copy_same(const kiln_node *n, const kiln_tensor *x, kiln_tensor *y)
{
    if (x->dtype != y->dtype || x->nbytes != y->nbytes)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "output type differs from input");
    if (x->nbytes) memcpy(y->data, x->data, x->nbytes);
    return KILN_OK;
}

kiln_status kiln_infer_Identity(kiln_infer_ctx *c) { return infer_unary(c, M_ALL, KILN_UNDEF); }
kiln_status kiln_eval_Identity(const kiln_node *n, kiln_tensor *const *in, int n_in,
                               kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 1, out, n_out);
    if (st) return st;
    return copy_same(n, in[0], out[0]);
}

/* ------------------------------------------------------------------ Cast -- */

/* ONNX TensorProto.DataType code -> kiln dtype; UNDEF for what kiln cannot hold. */
static kiln_dtype dtype_from_onnx(int64_t code)
{
    switch (code) {
    case KILN_F32: case KILN_U8: case KILN_I8: case KILN_U16: case KILN_I16: case KILN_I32:
    case KILN_I64: case KILN_BOOL: case KILN_F16: case KILN_F64: case KILN_U32: case KILN_U64:
    case KILN_BF16:
        return (kiln_dtype)code;
    default:
        return KILN_UNDEF;
    }
}

static const char *onnx_dtype_label(int64_t code)
{
    switch (code) {
    case 8: return "string";
    case 14: return "complex64";
    case 15: return "complex128";
    case 17: return "float8e4m3fn";
    case 18: return "float8e4m3fnuz";
    case 19: return "float8e5m2";
    case 20: return "float8e5m2fnuz";
    case 21: return "uint4";
    case 22: return "int4";
    case 23: return "float4e2m1";
    case 24: return "float8e8m0";
    case 25: return "uint2";
    case 26: return "int2";
    default: return "unknown";
    }
}

static kiln_status infer_cast_to(kiln_infer_ctx *c, kiln_dtype to)
{
    kiln_status st = check_dtype(c->node, c->in[0], M_ALL, "input");
    if (st) return st;
    kiln_value_copy_type(c->out[0], c->in[0]);
    c->out[0]->dtype = to;
    return KILN_OK;
}

kiln_status kiln_infer_Cast(kiln_infer_ctx *c)
{
    kiln_status st = infer_io(c, 1);
    if (st) return st;
    const kiln_attr *a = kiln_attr_find(c->node, "to");
    if (!a || a->type != KILN_ATTR_INT)
        return kiln_node_errorf(c->node, KILN_ERR_MODEL, "Cast needs an integer 'to' attribute");
    kiln_dtype to = dtype_from_onnx(a->i);
    if (to == KILN_UNDEF)
        return kiln_node_errorf(c->node, KILN_ERR_UNSUPPORTED, "Cast to %s (dtype %lld) not supported",
                                onnx_dtype_label(a->i), (long long)a->i);
    return infer_cast_to(c, to);
}

kiln_status kiln_infer_CastLike(kiln_infer_ctx *c)
{
    kiln_status st = infer_io(c, 2);
    if (!st) st = check_dtype(c->node, c->in[1], M_ALL, "target_type input");
    if (st) return st;
    return infer_cast_to(c, c->in[1]->dtype);
}

/* Any supported dtype to any other: floats via double (f16/bf16 rounded once, from the
 * double), float->int truncates toward zero and saturates, int->int wraps like numpy
 * astype, anything -> bool is "nonzero". */
static void cast_tensor(const kiln_tensor *x, kiln_tensor *y)
{
    int64_t ne = x->numel;
    kiln_dtype sd = x->dtype, dd = y->dtype;
    if (sd == dd) {
        if (x->nbytes) memcpy(y->data, x->data, x->nbytes);
        return;
    }
    if (sd == KILN_F32 && dd == KILN_F16) { /* common in mixed-precision models */
        const float *xs = x->data;
        uint16_t *ys = y->data;
        for (int64_t i = 0; i < ne; i++) ys[i] = kiln_f32_to_f16(xs[i]);
        return;
    }
    if (is_flt(sd)) {
        for (int64_t i = 0; i < ne; i++) st_f(y, i, ld_f(x, i));
        return;
    }
    bool sgn = is_sgn(sd);
    if (is_flt(dd)) {
        for (int64_t i = 0; i < ne; i++) {
            uint64_t b = ld_u(x, i);
            if (dd == KILN_F32) /* one rounding straight from the integer */
                ((float *)y->data)[i] = sgn ? (float)(int64_t)b : (float)b;
            else
                st_f(y, i, sgn ? (double)(int64_t)b : (double)b);
        }
        return;
    }
    for (int64_t i = 0; i < ne; i++) st_u(y, i, ld_u(x, i));
}

kiln_status kiln_eval_Cast(const kiln_node *n, kiln_tensor *const *in, int n_in,
                           kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 1, out, n_out);
    if (!st) st = need_same_numel(n, in[0], out[0]);
    if (st) return st;
    if (!dt_mask(in[0]->dtype) || !dt_mask(out[0]->dtype))
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "Cast %s -> %s not supported",
                                dt_name(in[0]->dtype), dt_name(out[0]->dtype));
    cast_tensor(in[0], out[0]);
    return KILN_OK;
}

kiln_status kiln_eval_CastLike(const kiln_node *n, kiln_tensor *const *in, int n_in,
                               kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 2, out, n_out);
    if (st) return st;
    return kiln_eval_Cast(n, in, 1, out, n_out);
}

/* --------------------------------------------------------------- Dropout -- */

kiln_status kiln_infer_Dropout(kiln_infer_ctx *c)
{
    kiln_status st = infer_io(c, 1);
    if (!st) st = check_dtype(c->node, c->in[0], M_F, "data");
    if (st) return st;
    const kiln_value *ratio = c->n_in > 1 ? c->in[1] : NULL;
    const kiln_value *train = c->n_in > 2 ? c->in[2] : NULL;
    if (ratio) {
        st = check_dtype(c->node, ratio, M_F, "ratio");
        if (st) return st;
        if (ratio->rank > 0 || (ratio->data && ratio->data->numel != 1))
            return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "ratio must be a scalar");
    }
    if (train) {
        st = check_dtype(c->node, train, M_B, "training_mode");
        if (st) return st;
        if (train->rank > 0 || (train->data && train->data->numel != 1))
            return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "training_mode must be a scalar");
    }
    double r = 0.5;
    bool r_known = true;
    if (ratio) {
        r_known = ratio->data != NULL;
        if (r_known) r = ld_f(ratio->data, 0);
        if (r_known && !(r >= 0.0 && r < 1.0))
            return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "ratio %g is not in [0, 1)", r);
    }
    /* Training-mode dropout draws random numbers; only the ratio-0 case (identity) is
     * deterministic. Unknown inputs are decided again at evaluation time. */
    if (train && train->data && ld_u(train->data, 0) && r_known && r != 0.0)
        return kiln_node_errorf(c->node, KILN_ERR_UNSUPPORTED,
                                "training-mode Dropout (random) with ratio %g not supported", r);
    kiln_value_copy_type(c->out[0], c->in[0]);
    if (c->n_out > 1 && c->out[1]) {
        kiln_value_copy_type(c->out[1], c->in[0]);
        c->out[1]->dtype = KILN_BOOL;
    }
    return KILN_OK;
}

kiln_status kiln_eval_Dropout(const kiln_node *n, kiln_tensor *const *in, int n_in,
                              kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 1, out, n_out);
    if (st) return st;
    bool train = n_in > 2 && in[2] && in[2]->numel > 0 && ld_u(in[2], 0);
    double r = n_in > 1 && in[1] && in[1]->numel > 0 ? ld_f(in[1], 0) : 0.5;
    if (train && r != 0.0)
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED,
                                "training-mode Dropout (random) with ratio %g not supported", r);
    st = copy_same(n, in[0], out[0]);
    if (st) return st;
    if (n_out > 1 && out[1]) {
        if (out[1]->dtype != KILN_BOOL)
            return kiln_node_errorf(n, KILN_ERR_INTERNAL, "mask output is not bool");
        if (out[1]->nbytes) memset(out[1]->data, 1, out[1]->nbytes);
    }
    return KILN_OK;
}

/* ------------------------------------------------------------------ Clip -- */

kiln_status kiln_infer_Clip(kiln_infer_ctx *c)
{
    kiln_status st = infer_io(c, 1);
    if (!st) st = check_dtype(c->node, c->in[0], M_NUM, "input");
    if (st) return st;
    static const char *const names[3] = {"input", "min", "max"};
    for (int i = 1; i < 3 && i < c->n_in; i++) {
        const kiln_value *b = c->in[i];
        if (!b) continue;
        if (b->dtype != c->in[0]->dtype)
            return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "%s has dtype %s, input has %s",
                                    names[i], dt_name(b->dtype), dt_name(c->in[0]->dtype));
        /* a scalar; a one-element tensor is accepted as well */
        int64_t ne = kiln_value_numel(b);
        if (ne >= 0 && ne != 1)
            return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "%s must be a scalar, has %lld elements",
                                    names[i], (long long)ne);
    }
    kiln_value_copy_type(c->out[0], c->in[0]);
    return KILN_OK;
}

kiln_status kiln_eval_Clip(const kiln_node *n, kiln_tensor *const *in, int n_in,
                           kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 1, out, n_out);
    if (!st) st = need_same_numel(n, in[0], out[0]);
    if (st) return st;
    const kiln_tensor *x = in[0], *lo = n_in > 1 ? in[1] : NULL, *hi = n_in > 2 ? in[2] : NULL;
    if ((lo && (lo->numel != 1 || lo->dtype != x->dtype)) ||
        (hi && (hi->numel != 1 || hi->dtype != x->dtype)))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "min/max must be scalars of the input dtype");
    kiln_tensor *y = out[0];
    int64_t ne = x->numel;
    /* Lower bound first, then upper: min > max yields max everywhere, as ONNX says. NaN
     * inputs pass through since every comparison with them is false. */
    if (is_flt(x->dtype)) {
        double l = lo ? ld_f(lo, 0) : -INFINITY, h = hi ? ld_f(hi, 0) : INFINITY;
        if (x->dtype == KILN_F32) {
            const float *xs = x->data;
            float *ys = y->data;
            float lf = lo ? ((const float *)lo->data)[0] : -INFINITY;
            float hf = hi ? ((const float *)hi->data)[0] : INFINITY;
            for (int64_t i = 0; i < ne; i++) {
                float v = xs[i];
                v = v < lf ? lf : v;
                ys[i] = v > hf ? hf : v;
            }
            return KILN_OK;
        }
        for (int64_t i = 0; i < ne; i++) {
            double v = ld_f(x, i);
            v = v < l ? l : v;
            st_f(y, i, v > h ? h : v);
        }
        return KILN_OK;
    }
    if (is_sgn(x->dtype)) {
        int64_t l = lo ? (int64_t)ld_u(lo, 0) : INT64_MIN, h = hi ? (int64_t)ld_u(hi, 0) : INT64_MAX;
        for (int64_t i = 0; i < ne; i++) {
            int64_t v = (int64_t)ld_u(x, i);
            v = v < l ? l : v;
            st_u(y, i, (uint64_t)(v > h ? h : v));
        }
        return KILN_OK;
    }
    uint64_t l = lo ? ld_u(lo, 0) : 0, h = hi ? ld_u(hi, 0) : UINT64_MAX;
    for (int64_t i = 0; i < ne; i++) {
        uint64_t v = ld_u(x, i);
        v = v < l ? l : v;
        st_u(y, i, v > h ? h : v);
    }
    return KILN_OK;
}

/* ------------------------------------------------------ binary driver -- */

typedef enum bop {
    BOP_ADD, BOP_SUB, BOP_MUL, BOP_DIV, BOP_POW, BOP_MOD, BOP_FMOD, BOP_PRELU, BOP_MAX, BOP_MIN,
    BOP_AND, BOP_OR, BOP_XOR, BOP_SHL, BOP_SHR, BOP_BAND, BOP_BOR, BOP_BXOR,
    /* comparisons (bool output) from here on */
    BOP_EQ, BOP_GT, BOP_GE, BOP_LT, BOP_LE
} bop;

static double python_mod_f(double x, double y)
{
    double r = fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return r;
}

static double bop_f(bop op, double x, double y)
{
    switch (op) {
    case BOP_ADD: return x + y;
    case BOP_SUB: return x - y;
    case BOP_MUL: return x * y;
    case BOP_DIV: return x / y;
    case BOP_POW: return pow(x, y);
    case BOP_MOD: return python_mod_f(x, y);
    case BOP_FMOD: return fmod(x, y);
    case BOP_PRELU: return x < 0 ? x * y : x;
    case BOP_MAX: return (x > y || isnan(x)) ? x : y; /* NaN propagates, like numpy */
    case BOP_MIN: return (x < y || isnan(x)) ? x : y;
    default: return 0;
    }
}

static bool cmp_f(bop op, double x, double y)
{
    switch (op) {
    case BOP_EQ: return x == y;
    case BOP_GT: return x > y;
    case BOP_GE: return x >= y;
    case BOP_LT: return x < y;
    case BOP_LE: return x <= y;
    default: return false;
    }
}

static bool cmp_i(bop op, uint64_t x, uint64_t y, bool sgn)
{
    if (sgn) {
        int64_t a = (int64_t)x, b = (int64_t)y;
        switch (op) {
        case BOP_EQ: return a == b;
        case BOP_GT: return a > b;
        case BOP_GE: return a >= b;
        case BOP_LT: return a < b;
        case BOP_LE: return a <= b;
        default: return false;
        }
    }
    switch (op) {
    case BOP_EQ: return x == y;
    case BOP_GT: return x > y;
    case BOP_GE: return x >= y;
    case BOP_LT: return x < y;
    case BOP_LE: return x <= y;
    default: return false;
    }
}

/* Integer power with wrap-around; a negative exponent gives the truncated exact result
 * (only bases 1 and -1 are nonzero), and 0 for base 0 rather than a division by zero. */
static uint64_t ipow(uint64_t base, bool base_sgn, uint64_t e, bool e_sgn)
{
    if (e_sgn && (int64_t)e < 0) {
        if (base == 1) return 1;
        if (base_sgn && base == UINT64_MAX) return (e & 1) ? UINT64_MAX : 1;
        return 0;
    }
    uint64_t r = 1;
    while (e) {
        if (e & 1) r *= base;
        base *= base;
        e >>= 1;
    }
    return r;
}

/* Exact integer op on bit patterns; bits is the element width (for shifts). */
static uint64_t bop_i(bop op, uint64_t x, uint64_t y, bool sgn, bool y_sgn, int bits)
{
    switch (op) {
    case BOP_ADD: return x + y;
    case BOP_SUB: return x - y;
    case BOP_MUL: return x * y;
    case BOP_DIV:
        if (y == 0) return 0;                       /* defined, not a trap */
        if (!sgn) return x / y;
        if ((int64_t)y == -1) return 0 - x;         /* INT_MIN / -1 wraps */
        return (uint64_t)((int64_t)x / (int64_t)y); /* C truncates toward zero */
    case BOP_MOD:
    case BOP_FMOD: {
        if (y == 0) return 0;
        if (!sgn) return x % y;
        int64_t a = (int64_t)x, b = (int64_t)y;
        if (b == -1) return 0;
        int64_t r = a % b; /* sign of the dividend (C fmod style) */
        if (op == BOP_MOD && r != 0 && ((r < 0) != (b < 0))) r += b; /* Python style */
        return (uint64_t)r;
    }
    case BOP_POW: return ipow(x, sgn, y, y_sgn);
    case BOP_PRELU: return sgn && (int64_t)x < 0 ? x * y : x;
    case BOP_MAX:
        if (sgn) return (int64_t)x > (int64_t)y ? x : y;
        return x > y ? x : y;
    case BOP_MIN:
        if (sgn) return (int64_t)x < (int64_t)y ? x : y;
        return x < y ? x : y;
    case BOP_AND: return (x != 0) & (y != 0);
    case BOP_OR: return (x != 0) | (y != 0);
    case BOP_XOR: return (x != 0) ^ (y != 0);
    case BOP_SHL: return y >= (uint64_t)bits ? 0 : x << y;
    case BOP_SHR: return y >= (uint64_t)bits ? 0 : x >> y;
    case BOP_BAND: return x & y;
    case BOP_BOR: return x | y;
    case BOP_BXOR: return x ^ y;
    default: return 0;
    }
}

/* f32 rows with the expression inlined; the common stride patterns get their own loops
 * so the compiler can vectorise them. x and y name the two operands. */
#define F32_ROWS(EXPR)                                                                       \
    do {                                                                                     \
        bc_iter it;                                                                          \
        bc_iter_init(&it, &p);                                                               \
        do {                                                                                 \
            const float *pa = A + it.off[0], *pb = B + it.off[1];                            \
            float *po = O + it.oo;                                                           \
            if (sa == 1 && sb == 1) {                                                        \
                for (int64_t j = 0; j < len; j++) {                                          \
                    float x = pa[j], y = pb[j];                                              \
                    po[j] = (EXPR);                                                          \
                }                                                                            \
            } else if (sa == 1 && sb == 0) {                                                 \
                const float y = pb[0];                                                       \
                for (int64_t j = 0; j < len; j++) {                                          \
                    float x = pa[j];                                                         \
                    po[j] = (EXPR);                                                          \
                }                                                                            \
            } else if (sa == 0 && sb == 1) {                                                 \
                const float x = pa[0];                                                       \
                for (int64_t j = 0; j < len; j++) {                                          \
                    float y = pb[j];                                                         \
                    po[j] = (EXPR);                                                          \
                }                                                                            \
            } else {                                                                         \
                for (int64_t j = 0; j < len; j++) {                                          \
                    float x = pa[j * sa], y = pb[j * sb];                                    \
                    po[j] = (EXPR);                                                          \
                }                                                                            \
            }                                                                                \
        } while (bc_iter_next(&it));                                                         \
    } while (0)

static bool bin_f32(bop op, const bc_plan *pp, const kiln_tensor *a, const kiln_tensor *b,
                    kiln_tensor *o)
{
    if (a->dtype != KILN_F32 || b->dtype != KILN_F32 || o->dtype != KILN_F32) return false;
    const bc_plan p = *pp;
    const float *A = a->data, *B = b->data;
    float *O = o->data;
    int64_t len = p.dims[p.rank - 1], sa = p.st[0][p.rank - 1], sb = p.st[1][p.rank - 1];
    switch (op) {
    case BOP_ADD: F32_ROWS(x + y); return true;
    case BOP_SUB: F32_ROWS(x - y); return true;
    case BOP_MUL: F32_ROWS(x * y); return true;
    case BOP_DIV: F32_ROWS(x / y); return true;
    case BOP_MAX: F32_ROWS((x > y || x != x) ? x : y); return true;
    case BOP_MIN: F32_ROWS((x < y || x != x) ? x : y); return true;
    case BOP_PRELU: F32_ROWS(x < 0 ? x * y : x); return true;
    case BOP_POW: F32_ROWS(dbl_to_flt(pow((double)x, (double)y))); return true;
    default: return false;
    }
}

/* o = a (op) b with numpy broadcasting. o may alias a when a has o's shape (the
 * variadic ops fold into their output). Inference guaranteed the shapes. */
static kiln_status bin_apply(const kiln_node *n, bop op, const kiln_tensor *a,
                             const kiln_tensor *b, kiln_tensor *o)
{
    bc_plan p;
    const kiln_tensor *ins[2] = {a, b};
    if (!bc_plan_init(&p, o, ins, 2))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input shapes do not broadcast to the output");
    if (p.numel == 0) return KILN_OK;
    if (bin_f32(op, &p, a, b, o)) return KILN_OK;

    bool fl = is_flt(a->dtype) || is_flt(b->dtype);
    bool cmp = op >= BOP_EQ;
    bool sa_sgn = is_sgn(a->dtype), sb_sgn = is_sgn(b->dtype);
    int bits = dt_bits(a->dtype);
    int64_t len = p.dims[p.rank - 1], sa = p.st[0][p.rank - 1], sb = p.st[1][p.rank - 1];
    bc_iter it;
    bc_iter_init(&it, &p);
    do {
        for (int64_t j = 0; j < len; j++) {
            int64_t ia = it.off[0] + j * sa, ib = it.off[1] + j * sb, io = it.oo + j;
            if (fl) {
                double x = ld_f(a, ia), y = ld_f(b, ib);
                if (cmp) st_u(o, io, cmp_f(op, x, y));
                else st_f(o, io, bop_f(op, x, y));
            } else {
                uint64_t x = ld_u(a, ia), y = ld_u(b, ib);
                if (cmp) st_u(o, io, cmp_i(op, x, y, sa_sgn));
                else st_u(o, io, bop_i(op, x, y, sa_sgn, sb_sgn, bits));
            }
        }
    } while (bc_iter_next(&it));
    return KILN_OK;
}

/* Shape/dtype rule shared by the binary ops: a in `allowed`; b the same dtype unless
 * b_allowed is nonzero (Pow's exponent); output dtype `out_dt` or a's dtype. */
static kiln_status infer_binary(kiln_infer_ctx *c, unsigned allowed, unsigned b_allowed,
                                kiln_dtype out_dt)
{
    kiln_status st = infer_io(c, 2);
    if (!st) st = check_dtype(c->node, c->in[0], allowed, "input A");
    if (st) return st;
    if (b_allowed) {
        st = check_dtype(c->node, c->in[1], b_allowed, "input B");
        if (st) return st;
    } else if (c->in[1]->dtype != c->in[0]->dtype) {
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "input dtypes differ: %s vs %s",
                                dt_name(c->in[0]->dtype), dt_name(c->in[1]->dtype));
    }
    st = kiln_infer_broadcast(c->node, c->in, 2, c->out[0]);
    if (st) return st;
    c->out[0]->dtype = out_dt != KILN_UNDEF ? out_dt : c->in[0]->dtype;
    return KILN_OK;
}

static kiln_status eval_binary(const kiln_node *n, bop op, kiln_tensor *const *in, int n_in,
                               kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 2, out, n_out);
    if (st) return st;
    return bin_apply(n, op, in[0], in[1], out[0]);
}

#define DEF_BINARY(Op, OPC, allowed, b_allowed, out_dt)                                      \
    kiln_status kiln_infer_##Op(kiln_infer_ctx *c)                                           \
    {                                                                                        \
        return infer_binary(c, (allowed), (b_allowed), (out_dt));                            \
    }                                                                                        \
    kiln_status kiln_eval_##Op(const kiln_node *n, kiln_tensor *const *in, int n_in,         \
                               kiln_tensor *const *out, int n_out)                           \
    {                                                                                        \
        return eval_binary(n, (OPC), in, n_in, out, n_out);                                  \
    }

DEF_BINARY(Add, BOP_ADD, M_NUM, 0, KILN_UNDEF)
DEF_BINARY(Sub, BOP_SUB, M_NUM, 0, KILN_UNDEF)
DEF_BINARY(Mul, BOP_MUL, M_NUM, 0, KILN_UNDEF)
DEF_BINARY(Div, BOP_DIV, M_NUM, 0, KILN_UNDEF)
DEF_BINARY(Pow, BOP_POW, M_F | M_SI | M_UI, M_NUM, KILN_UNDEF)
DEF_BINARY(PRelu, BOP_PRELU, M_NUM, 0, KILN_UNDEF)
DEF_BINARY(And, BOP_AND, M_B, 0, KILN_UNDEF)
DEF_BINARY(Or, BOP_OR, M_B, 0, KILN_UNDEF)
DEF_BINARY(Xor, BOP_XOR, M_B, 0, KILN_UNDEF)
DEF_BINARY(BitwiseAnd, BOP_BAND, M_INT, 0, KILN_UNDEF)
DEF_BINARY(BitwiseOr, BOP_BOR, M_INT, 0, KILN_UNDEF)
DEF_BINARY(BitwiseXor, BOP_BXOR, M_INT, 0, KILN_UNDEF)
DEF_BINARY(Equal, BOP_EQ, M_ALL, 0, KILN_BOOL)
DEF_BINARY(Greater, BOP_GT, M_NUM, 0, KILN_BOOL)
DEF_BINARY(GreaterOrEqual, BOP_GE, M_NUM, 0, KILN_BOOL)
DEF_BINARY(Less, BOP_LT, M_NUM, 0, KILN_BOOL)
DEF_BINARY(LessOrEqual, BOP_LE, M_NUM, 0, KILN_BOOL)

/* fmod=0: result has the divisor's sign (Python %); fmod=1: the dividend's (C fmod). */
static kiln_status mod_kind(const kiln_node *n, bop *op)
{
    int64_t f = kiln_attr_int(n, "fmod", 0);
    if (f != 0 && f != 1)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "fmod must be 0 or 1, got %lld", (long long)f);
    *op = f ? BOP_FMOD : BOP_MOD;
    return KILN_OK;
}

kiln_status kiln_infer_Mod(kiln_infer_ctx *c)
{
    bop op = BOP_ADD;
    kiln_status st = mod_kind(c->node, &op);
    if (st) return st;
    return infer_binary(c, M_NUM, 0, KILN_UNDEF);
}
kiln_status kiln_eval_Mod(const kiln_node *n, kiln_tensor *const *in, int n_in,
                          kiln_tensor *const *out, int n_out)
{
    bop op = BOP_ADD;
    kiln_status st = mod_kind(n, &op);
    if (st) return st;
    return eval_binary(n, op, in, n_in, out, n_out);
}

static kiln_status shift_kind(const kiln_node *n, bop *op)
{
    const char *d = kiln_attr_str(n, "direction", NULL);
    if (!d) return kiln_node_errorf(n, KILN_ERR_MODEL, "BitShift needs a 'direction' attribute");
    if (strcmp(d, "LEFT") == 0) *op = BOP_SHL;
    else if (strcmp(d, "RIGHT") == 0) *op = BOP_SHR;
    else return kiln_node_errorf(n, KILN_ERR_SHAPE, "direction '%s' (want LEFT or RIGHT)", d);
    return KILN_OK;
}

kiln_status kiln_infer_BitShift(kiln_infer_ctx *c)
{
    bop op = BOP_ADD;
    kiln_status st = shift_kind(c->node, &op);
    if (st) return st;
    return infer_binary(c, M_UI, 0, KILN_UNDEF);
}
kiln_status kiln_eval_BitShift(const kiln_node *n, kiln_tensor *const *in, int n_in,
                               kiln_tensor *const *out, int n_out)
{
    bop op = BOP_ADD;
    kiln_status st = shift_kind(n, &op);
    if (st) return st;
    return eval_binary(n, op, in, n_in, out, n_out);
}

/* ----------------------------------------------------------------- Where -- */

kiln_status kiln_infer_Where(kiln_infer_ctx *c)
{
    kiln_status st = infer_io(c, 3);
    if (!st) st = check_dtype(c->node, c->in[0], M_B, "condition");
    if (!st) st = check_dtype(c->node, c->in[1], M_ALL, "X");
    if (st) return st;
    if (c->in[2]->dtype != c->in[1]->dtype)
        return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "X and Y dtypes differ: %s vs %s",
                                dt_name(c->in[1]->dtype), dt_name(c->in[2]->dtype));
    st = kiln_infer_broadcast(c->node, c->in, 3, c->out[0]);
    if (st) return st;
    c->out[0]->dtype = c->in[1]->dtype;
    return KILN_OK;
}

#define WHERE_ROWS(T)                                                                        \
    do {                                                                                     \
        const T *X = in[1]->data, *Y = in[2]->data;                                          \
        T *O = out[0]->data;                                                                 \
        bc_iter it;                                                                          \
        bc_iter_init(&it, &p);                                                               \
        do {                                                                                 \
            for (int64_t j = 0; j < len; j++)                                                \
                O[it.oo + j] = C[it.off[0] + j * sc] ? X[it.off[1] + j * sx]                 \
                                                     : Y[it.off[2] + j * sy];                \
        } while (bc_iter_next(&it));                                                         \
    } while (0)

kiln_status kiln_eval_Where(const kiln_node *n, kiln_tensor *const *in, int n_in,
                            kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, 3, out, n_out);
    if (st) return st;
    if (in[0]->dtype != KILN_BOOL || in[1]->dtype != out[0]->dtype || in[2]->dtype != out[0]->dtype)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "Where dtypes do not match");
    bc_plan p;
    const kiln_tensor *ins[3] = {in[0], in[1], in[2]};
    if (!bc_plan_init(&p, out[0], ins, 3))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input shapes do not broadcast to the output");
    if (p.numel == 0) return KILN_OK;
    const uint8_t *C = in[0]->data;
    int r = p.rank - 1;
    int64_t len = p.dims[r], sc = p.st[0][r], sx = p.st[1][r], sy = p.st[2][r];
    switch (kiln_dtype_size(out[0]->dtype)) {
    case 1: WHERE_ROWS(uint8_t); break;
    case 2: WHERE_ROWS(uint16_t); break;
    case 4: WHERE_ROWS(uint32_t); break;
    case 8: WHERE_ROWS(uint64_t); break;
    default:
        return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "Where on dtype %s",
                                dt_name(out[0]->dtype));
    }
    return KILN_OK;
}

/* ------------------------------------------------------ Max/Min/Sum/Mean -- */

static kiln_status infer_variadic(kiln_infer_ctx *c, unsigned allowed)
{
    kiln_status st = infer_io(c, 1);
    if (st) return st;
    for (int i = 0; i < c->n_in; i++) {
        if (!c->in[i])
            return kiln_node_errorf(c->node, KILN_ERR_MODEL, "input %d is missing", i);
        st = check_dtype(c->node, c->in[i], allowed, "input");
        if (st) return st;
        if (c->in[i]->dtype != c->in[0]->dtype)
            return kiln_node_errorf(c->node, KILN_ERR_SHAPE, "input %d has dtype %s, input 0 has %s",
                                    i, dt_name(c->in[i]->dtype), dt_name(c->in[0]->dtype));
    }
    st = kiln_infer_broadcast(c->node, c->in, c->n_in, c->out[0]);
    if (st) return st;
    c->out[0]->dtype = c->in[0]->dtype;
    return KILN_OK;
}

/* dst = src broadcast to dst's shape (same dtype). */
static kiln_status bcast_copy(const kiln_node *n, const kiln_tensor *src, kiln_tensor *dst)
{
    bc_plan p;
    const kiln_tensor *ins[1] = {src};
    if (src->dtype != dst->dtype || !bc_plan_init(&p, dst, ins, 1))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input does not broadcast to the output");
    if (p.numel == 0) return KILN_OK;
    size_t es = kiln_dtype_size(dst->dtype);
    int64_t len = p.dims[p.rank - 1], s = p.st[0][p.rank - 1];
    const unsigned char *S = src->data;
    unsigned char *D = dst->data;
    bc_iter it;
    bc_iter_init(&it, &p);
    do {
        if (s == 1) {
            memcpy(D + (size_t)it.oo * es, S + (size_t)it.off[0] * es, (size_t)len * es);
        } else {
            for (int64_t j = 0; j < len; j++)
                memcpy(D + (size_t)(it.oo + j) * es, S + (size_t)(it.off[0] + j * s) * es, es);
        }
    } while (bc_iter_next(&it));
    return KILN_OK;
}

/* out = in[0] (op) in[1] (op) ... folded left, in place in out. */
static kiln_status eval_variadic(const kiln_node *n, bop op, kiln_tensor *const *in, int n_in,
                                 kiln_tensor *const *out, int n_out)
{
    kiln_status st = need_io(n, in, n_in, n_in, out, n_out);
    if (!st && n_in < 1) st = kiln_node_errorf(n, KILN_ERR_INTERNAL, "no inputs");
    if (!st) st = bcast_copy(n, in[0], out[0]);
    for (int i = 1; i < n_in && !st; i++) st = bin_apply(n, op, out[0], in[i], out[0]);
    return st;
}

kiln_status kiln_infer_Max(kiln_infer_ctx *c) { return infer_variadic(c, M_NUM); }
kiln_status kiln_eval_Max(const kiln_node *n, kiln_tensor *const *in, int n_in,
                          kiln_tensor *const *out, int n_out)
{
    return eval_variadic(n, BOP_MAX, in, n_in, out, n_out);
}
kiln_status kiln_infer_Min(kiln_infer_ctx *c) { return infer_variadic(c, M_NUM); }
kiln_status kiln_eval_Min(const kiln_node *n, kiln_tensor *const *in, int n_in,
                          kiln_tensor *const *out, int n_out)
{
    return eval_variadic(n, BOP_MIN, in, n_in, out, n_out);
}
kiln_status kiln_infer_Sum(kiln_infer_ctx *c) { return infer_variadic(c, M_NUM); }
kiln_status kiln_eval_Sum(const kiln_node *n, kiln_tensor *const *in, int n_in,
                          kiln_tensor *const *out, int n_out)
{
    return eval_variadic(n, BOP_ADD, in, n_in, out, n_out);
}
kiln_status kiln_infer_Mean(kiln_infer_ctx *c) { return infer_variadic(c, M_F); }
kiln_status kiln_eval_Mean(const kiln_node *n, kiln_tensor *const *in, int n_in,
                           kiln_tensor *const *out, int n_out)
{
    kiln_status st = eval_variadic(n, BOP_ADD, in, n_in, out, n_out);
    if (st) return st;
    if (!is_flt(out[0]->dtype))
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "Mean needs a float dtype");
    kiln_tensor *y = out[0];
    if (y->dtype == KILN_F32) {
        float *ys = y->data, k = (float)n_in;
        for (int64_t i = 0; i < y->numel; i++) ys[i] /= k;
    } else {
        for (int64_t i = 0; i < y->numel; i++) st_f(y, i, ld_f(y, i) / n_in);
    }
    return KILN_OK;
}
