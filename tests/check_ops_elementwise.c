/* check_ops_elementwise.c — unit tests for ir/ops_elementwise.c: each op group against a
 * naive computation written here (or a math identity) on seeded random inputs, plus bad
 * inputs that must come back as errors. Tolerances are stated at each comparison. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ---------------------------------------------------------------- helpers -- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static void rng_seed(uint64_t s) { rng_state = s ? s : 1; }
static uint64_t rng_u64(void)
{
    /* xorshift64*: deterministic across platforms */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static double rng_unit(void) { return (double)(rng_u64() >> 11) / 9007199254740992.0; }
static double rng_range(double lo, double hi) { return lo + (hi - lo) * rng_unit(); }

/* A one-node graph; the node is g->nodes[0]. */
typedef struct tcase {
    kiln_graph *g;
    kiln_node *n;
} tcase;

static tcase mk(kiln_op op, int n_in, int n_out)
{
    tcase t;
    t.g = kiln_graph_new();
    ck_assert_ptr_nonnull(t.g);
    int ins[8], outs[4];
    char name[32];
    for (int i = 0; i < n_in; i++) {
        snprintf(name, sizeof name, "in%d", i);
        ins[i] = kiln_graph_add_value(t.g, name);
        ck_assert_int_ge(ins[i], 0);
    }
    for (int i = 0; i < n_out; i++) {
        snprintf(name, sizeof name, "out%d", i);
        outs[i] = kiln_graph_add_value(t.g, name);
        ck_assert_int_ge(outs[i], 0);
    }
    int id = kiln_graph_add_node(t.g, op, "t", ins, n_in, outs, n_out);
    ck_assert_int_ge(id, 0);
    t.n = &t.g->nodes[id];
    return t;
}

static void done(tcase *t, kiln_tensor **outs, int n_out)
{
    for (int i = 0; i < n_out; i++) kiln_tensor_free(outs[i]);
    kiln_graph_free(t->g);
}

static kiln_tensor *tnew(kiln_dtype dt, int rank, const int64_t *dims)
{
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    ck_assert_ptr_nonnull(t);
    return t;
}

static kiln_tensor *rand_f32(int rank, const int64_t *dims, double lo, double hi)
{
    kiln_tensor *t = tnew(KILN_F32, rank, dims);
    float *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = (float)rng_range(lo, hi);
    return t;
}

static kiln_tensor *from_f32(int rank, const int64_t *dims, const float *v)
{
    kiln_tensor *t = tnew(KILN_F32, rank, dims);
    memcpy(t->data, v, t->nbytes);
    return t;
}

static kiln_tensor *scalar_of(kiln_dtype dt, double v)
{
    kiln_tensor *t = tnew(dt, 0, NULL);
    kiln_tensor_set(t, 0, v);
    return t;
}

/* Relative-or-absolute closeness: |a-b| <= tol * max(1, |b|); NaN matches NaN. */
static int close_to(double a, double b, double tol)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= tol * fmax(1.0, fabs(b));
}

/* ------------------------------------------------------ unary float ops -- */

static double r_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double r_softplus(double x) { return log(1.0 + exp(x)); }
static double r_softsign(double x) { return x / (1.0 + fabs(x)); }
static double r_relu(double x) { return x > 0 ? x : 0; }
static double r_recip(double x) { return 1.0 / x; }
static double r_neg(double x) { return -x; }
static double r_hswish(double x) { return x * fmin(fmax(x + 3.0, 0.0), 6.0) / 6.0; }
static double r_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double r_mish(double x) { return x * tanh(log(1.0 + exp(x))); }
static double r_sign(double x) { return (x > 0) - (x < 0); }
static double r_round(double x)
{
    double f = floor(x), d = x - f;
    if (d > 0.5) return f + 1;
    if (d < 0.5) return f;
    return fmod(f, 2.0) == 0 ? f : f + 1; /* ties to even */
}
static double r_selu(double x)
{
    const double a = 1.67326319217681884765625, g = 1.05070102214813232421875;
    return x > 0 ? g * x : g * a * (exp(x) - 1.0);
}

typedef struct uref {
    kiln_op op;
    double (*ref)(double);
    double lo, hi;
} uref;

static const uref unary_refs[] = {
    {KILN_OP_Abs, fabs, -5, 5},          {KILN_OP_Acos, acos, -1, 1},
    {KILN_OP_Acosh, acosh, 1, 9},        {KILN_OP_Asin, asin, -1, 1},
    {KILN_OP_Asinh, asinh, -5, 5},       {KILN_OP_Atan, atan, -5, 5},
    {KILN_OP_Atanh, atanh, -0.99, 0.99}, {KILN_OP_Ceil, ceil, -5, 5},
    {KILN_OP_Cos, cos, -5, 5},           {KILN_OP_Cosh, cosh, -5, 5},
    {KILN_OP_Erf, erf, -3, 3},           {KILN_OP_Exp, exp, -5, 5},
    {KILN_OP_Floor, floor, -5, 5},       {KILN_OP_Log, log, 0.01, 9},
    {KILN_OP_Neg, r_neg, -5, 5},         {KILN_OP_Reciprocal, r_recip, 0.5, 9},
    {KILN_OP_Round, r_round, -5, 5},     {KILN_OP_Sign, r_sign, -5, 5},
    {KILN_OP_Sin, sin, -5, 5},           {KILN_OP_Sinh, sinh, -5, 5},
    {KILN_OP_Sqrt, sqrt, 0, 9},          {KILN_OP_Tan, tan, -1.5, 1.5},
    {KILN_OP_Relu, r_relu, -5, 5},       {KILN_OP_Sigmoid, r_sigmoid, -8, 8},
    {KILN_OP_Tanh, tanh, -5, 5},         {KILN_OP_Softplus, r_softplus, -8, 8},
    {KILN_OP_Softsign, r_softsign, -5, 5}, {KILN_OP_Selu, r_selu, -5, 5},
    {KILN_OP_HardSwish, r_hswish, -5, 5}, {KILN_OP_Gelu, r_gelu, -5, 5},
    {KILN_OP_Mish, r_mish, -5, 5},
};

START_TEST(test_unary_f32)
{
    rng_seed(11);
    int64_t dims[3] = {2, 3, 17};
    for (size_t k = 0; k < sizeof unary_refs / sizeof unary_refs[0]; k++) {
        const uref *u = &unary_refs[k];
        tcase t = mk(u->op, 1, 1);
        kiln_tensor *x = rand_f32(3, dims, u->lo, u->hi);
        /* round-half cases for Round, exact zeros for Sign */
        if (u->op == KILN_OP_Round) {
            ((float *)x->data)[0] = 2.5f;
            ((float *)x->data)[1] = -2.5f;
            ((float *)x->data)[2] = 3.5f;
        }
        if (u->op == KILN_OP_Sign) ((float *)x->data)[0] = 0.0f;
        kiln_tensor *y = NULL;
        ck_assert_msg(kiln_eval_node(t.n, &x, 1, &y, 1) == KILN_OK, "%s: %s",
                      kiln_op_name(u->op), kiln_last_error());
        ck_assert_int_eq(y->dtype, KILN_F32);
        ck_assert_int_eq(y->rank, 3);
        for (int64_t i = 0; i < x->numel; i++) {
            double xv = ((float *)x->data)[i], want = u->ref(xv), got = ((float *)y->data)[i];
            /* f32 output: a few float ulps */
            ck_assert_msg(close_to(got, want, 2e-6), "%s(%g) = %.9g, want %.9g",
                          kiln_op_name(u->op), xv, got, want);
        }
        kiln_tensor_free(x);
        done(&t, &y, 1);
    }
}
END_TEST

/* f64 and f16 go through the generic path: check identities and rounding there. */
START_TEST(test_unary_f64_f16)
{
    rng_seed(12);
    int64_t dims[1] = {64};
    kiln_tensor *x = tnew(KILN_F64, 1, dims);
    for (int64_t i = 0; i < 64; i++) ((double *)x->data)[i] = rng_range(-3, 3);
    tcase ts = mk(KILN_OP_Sin, 1, 1), tc = mk(KILN_OP_Cos, 1, 1);
    kiln_tensor *s = NULL, *c = NULL;
    ck_assert_int_eq(kiln_eval_node(ts.n, &x, 1, &s, 1), KILN_OK);
    ck_assert_int_eq(kiln_eval_node(tc.n, &x, 1, &c, 1), KILN_OK);
    ck_assert_int_eq(s->dtype, KILN_F64);
    for (int64_t i = 0; i < 64; i++) {
        double sv = ((double *)s->data)[i], cv = ((double *)c->data)[i];
        ck_assert(fabs(sv * sv + cv * cv - 1.0) < 1e-14); /* sin^2 + cos^2 = 1 in f64 */
    }
    done(&ts, &s, 1);
    done(&tc, &c, 1);
    kiln_tensor_free(x);

    /* f16 exp: result must be the f16 rounding of exp(x) (within one f16 ulp) */
    kiln_tensor *h = tnew(KILN_F16, 1, dims);
    for (int64_t i = 0; i < 64; i++) kiln_tensor_set(h, i, rng_range(-4, 4));
    tcase te = mk(KILN_OP_Exp, 1, 1);
    kiln_tensor *e = NULL;
    ck_assert_int_eq(kiln_eval_node(te.n, &h, 1, &e, 1), KILN_OK);
    ck_assert_int_eq(e->dtype, KILN_F16);
    for (int64_t i = 0; i < 64; i++) {
        double want = exp(kiln_tensor_get(h, i)), got = kiln_tensor_get(e, i);
        ck_assert(fabs(got - want) <= fabs(want) * (1.0 / 1024)); /* 1 ulp of f16 */
    }
    kiln_tensor_free(h);
    done(&te, &e, 1);
}
END_TEST

START_TEST(test_activation_attrs)
{
    rng_seed(13);
    int64_t dims[1] = {100};
    struct {
        kiln_op op;
        const char *a1;
        float v1;
        const char *a2;
        float v2;
    } cases[] = {
        {KILN_OP_LeakyRelu, "alpha", 0.3f, NULL, 0},
        {KILN_OP_Elu, "alpha", 2.0f, NULL, 0},
        {KILN_OP_Celu, "alpha", 1.5f, NULL, 0},
        {KILN_OP_ThresholdedRelu, "alpha", 0.7f, NULL, 0},
        {KILN_OP_HardSigmoid, "alpha", 0.3f, "beta", 0.4f},
        {KILN_OP_Shrink, "lambd", 1.0f, "bias", 0.25f},
        {KILN_OP_Selu, "alpha", 2.0f, "gamma", 3.0f},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tcase t = mk(cases[k].op, 1, 1);
        kiln_node_set_float(t.n, cases[k].a1, cases[k].v1);
        if (cases[k].a2) kiln_node_set_float(t.n, cases[k].a2, cases[k].v2);
        kiln_tensor *x = rand_f32(1, dims, -4, 4), *y = NULL;
        ck_assert_msg(kiln_eval_node(t.n, &x, 1, &y, 1) == KILN_OK, "%s", kiln_last_error());
        double a = cases[k].v1, b = cases[k].v2;
        for (int64_t i = 0; i < 100; i++) {
            double v = ((float *)x->data)[i], want = 0;
            switch (cases[k].op) {
            case KILN_OP_LeakyRelu: want = v >= 0 ? v : a * v; break;
            case KILN_OP_Elu: want = v >= 0 ? v : a * (exp(v) - 1); break;
            case KILN_OP_Celu: want = fmax(0, v) + fmin(0, a * (exp(v / a) - 1)); break;
            case KILN_OP_ThresholdedRelu: want = v > a ? v : 0; break;
            case KILN_OP_HardSigmoid: want = fmax(0, fmin(1, a * v + b)); break;
            case KILN_OP_Shrink: want = v < -a ? v + b : v > a ? v - b : 0; break;
            case KILN_OP_Selu: want = v > 0 ? b * v : b * a * (exp(v) - 1); break;
            default: break;
            }
            ck_assert_msg(close_to(((float *)y->data)[i], want, 2e-6), "%s(%g)",
                          kiln_op_name(cases[k].op), v);
        }
        kiln_tensor_free(x);
        done(&t, &y, 1);
    }
    /* Gelu tanh approximation */
    tcase t = mk(KILN_OP_Gelu, 1, 1);
    kiln_node_set_str(t.n, "approximate", "tanh");
    kiln_tensor *x = rand_f32(1, dims, -4, 4), *y = NULL;
    ck_assert_int_eq(kiln_eval_node(t.n, &x, 1, &y, 1), KILN_OK);
    for (int64_t i = 0; i < 100; i++) {
        double v = ((float *)x->data)[i];
        double want = 0.5 * v * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
        ck_assert(close_to(((float *)y->data)[i], want, 2e-6));
    }
    kiln_tensor_free(x);
    done(&t, &y, 1);
}
END_TEST

START_TEST(test_unary_int)
{
    int64_t dims[1] = {6};
    kiln_tensor *x = tnew(KILN_I8, 1, dims);
    int8_t xv[6] = {-128, -5, 0, 7, 127, -1};
    memcpy(x->data, xv, 6);
    struct {
        kiln_op op;
        int8_t want[6];
    } cases[] = {
        {KILN_OP_Abs, {-128, 5, 0, 7, 127, 1}}, /* |INT8_MIN| wraps, like numpy */
        {KILN_OP_Neg, {-128, 5, 0, -7, -127, 1}},
        {KILN_OP_Sign, {-1, -1, 0, 1, 1, -1}},
        {KILN_OP_Relu, {0, 0, 0, 7, 127, 0}},
        {KILN_OP_BitwiseNot, {127, 4, -1, -8, -128, 0}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tcase t = mk(cases[k].op, 1, 1);
        kiln_tensor *y = NULL;
        ck_assert_msg(kiln_eval_node(t.n, &x, 1, &y, 1) == KILN_OK, "%s", kiln_last_error());
        ck_assert_int_eq(y->dtype, KILN_I8);
        ck_assert_mem_eq(y->data, cases[k].want, 6);
        done(&t, &y, 1);
    }
    kiln_tensor_free(x);

    /* Abs on u64 is the identity, Sign is 0/1 */
    kiln_tensor *u = tnew(KILN_U64, 1, dims);
    uint64_t uv[6] = {0, 1, UINT64_MAX, 1ull << 63, 42, 7};
    memcpy(u->data, uv, sizeof uv);
    tcase ta = mk(KILN_OP_Abs, 1, 1), tsg = mk(KILN_OP_Sign, 1, 1);
    kiln_tensor *ya = NULL, *ys = NULL;
    ck_assert_int_eq(kiln_eval_node(ta.n, &u, 1, &ya, 1), KILN_OK);
    ck_assert_int_eq(kiln_eval_node(tsg.n, &u, 1, &ys, 1), KILN_OK);
    ck_assert_mem_eq(ya->data, uv, sizeof uv);
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(((uint64_t *)ys->data)[i], uv[i] != 0);
    kiln_tensor_free(u);
    done(&ta, &ya, 1);
    done(&tsg, &ys, 1);
}
END_TEST

START_TEST(test_predicates)
{
    int64_t dims[1] = {6};
    float v[6] = {1.0f, NAN, INFINITY, -INFINITY, -0.0f, 3e38f};
    kiln_tensor *x = from_f32(1, dims, v);
    tcase tn = mk(KILN_OP_IsNaN, 1, 1), ti = mk(KILN_OP_IsInf, 1, 1), tp = mk(KILN_OP_IsInf, 1, 1);
    kiln_node_set_int(tp.n, "detect_negative", 0);
    kiln_tensor *yn = NULL, *yi = NULL, *yp = NULL;
    ck_assert_int_eq(kiln_eval_node(tn.n, &x, 1, &yn, 1), KILN_OK);
    ck_assert_int_eq(kiln_eval_node(ti.n, &x, 1, &yi, 1), KILN_OK);
    ck_assert_int_eq(kiln_eval_node(tp.n, &x, 1, &yp, 1), KILN_OK);
    ck_assert_int_eq(yn->dtype, KILN_BOOL);
    uint8_t wn[6] = {0, 1, 0, 0, 0, 0}, wi[6] = {0, 0, 1, 1, 0, 0}, wp[6] = {0, 0, 1, 0, 0, 0};
    ck_assert_mem_eq(yn->data, wn, 6);
    ck_assert_mem_eq(yi->data, wi, 6);
    ck_assert_mem_eq(yp->data, wp, 6);
    kiln_tensor_free(x);
    done(&tn, &yn, 1);
    done(&ti, &yi, 1);
    done(&tp, &yp, 1);

    kiln_tensor *b = tnew(KILN_BOOL, 1, dims);
    uint8_t bv[6] = {1, 0, 1, 1, 0, 0}, nb[6] = {0, 1, 0, 0, 1, 1};
    memcpy(b->data, bv, 6);
    tcase t = mk(KILN_OP_Not, 1, 1);
    kiln_tensor *y = NULL;
    ck_assert_int_eq(kiln_eval_node(t.n, &b, 1, &y, 1), KILN_OK);
    ck_assert_mem_eq(y->data, nb, 6);
    kiln_tensor_free(b);
    done(&t, &y, 1);
}
END_TEST

/* ------------------------------------------------------ binary broadcast -- */

/* Naive numpy broadcasting index: offset in t of output multi-index idx (rank r). */
static int64_t naive_off(const kiln_tensor *t, int r, const int64_t *idx)
{
    int64_t off = 0;
    for (int d = 0; d < t->rank; d++) {
        int od = d + r - t->rank;
        off = off * t->dims[d] + (t->dims[d] == 1 ? 0 : idx[od]);
    }
    return off;
}

static double naive_bin(kiln_op op, double a, double b)
{
    switch (op) {
    case KILN_OP_Add: return a + b;
    case KILN_OP_Sub: return a - b;
    case KILN_OP_Mul: return a * b;
    case KILN_OP_Div: return a / b;
    case KILN_OP_Pow: return pow(a, b);
    case KILN_OP_PRelu: return a >= 0 ? a : a * b;
    default: return NAN;
    }
}

START_TEST(test_binary_broadcast_float)
{
    rng_seed(21);
    static const kiln_op ops[] = {KILN_OP_Add, KILN_OP_Sub, KILN_OP_Mul, KILN_OP_Div,
                                  KILN_OP_Pow, KILN_OP_PRelu};
    /* same shape, scalar, row, column, both-ways broadcasts */
    struct {
        int ra, rb;
        int64_t a[4], b[4];
    } shapes[] = {
        {3, 3, {2, 3, 4}, {2, 3, 4}}, {3, 0, {2, 3, 4}, {0}},     {3, 1, {2, 3, 4}, {4}},
        {3, 2, {2, 3, 4}, {3, 1}},    {2, 3, {3, 1}, {2, 1, 5}},  {4, 4, {2, 1, 3, 1}, {1, 4, 1, 5}},
        {1, 3, {1}, {2, 2, 2}},
    };
    static const kiln_dtype dts[] = {KILN_F32, KILN_F64, KILN_F16};
    for (size_t di = 0; di < 3; di++) {
        kiln_dtype dt = dts[di];
        for (size_t oi = 0; oi < sizeof ops / sizeof ops[0]; oi++) {
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                tcase t = mk(ops[oi], 2, 1);
                kiln_tensor *in[2];
                in[0] = tnew(dt, shapes[si].ra, shapes[si].a);
                in[1] = tnew(dt, shapes[si].rb, shapes[si].b);
                for (int k = 0; k < 2; k++)
                    for (int64_t i = 0; i < in[k]->numel; i++)
                        kiln_tensor_set(in[k], i, ops[oi] == KILN_OP_Pow && k == 0
                                                      ? rng_range(0.1, 3)
                                                      : rng_range(-3, 3) + (k ? 0.05 : 0));
                kiln_tensor *y = NULL;
                ck_assert_msg(kiln_eval_node(t.n, in, 2, &y, 1) == KILN_OK, "%s",
                              kiln_last_error());
                int r = y->rank;
                ck_assert_int_eq(y->dtype, dt);
                int64_t idx[KILN_MAX_RANK] = {0};
                for (int64_t i = 0; i < y->numel; i++) {
                    double a = kiln_tensor_get(in[0], naive_off(in[0], r, idx));
                    double b = kiln_tensor_get(in[1], naive_off(in[1], r, idx));
                    double want = naive_bin(ops[oi], a, b), got = kiln_tensor_get(y, i);
                    /* one rounding into the dtype: f16 2^-10, f32 2^-23 relative */
                    double tol = dt == KILN_F16 ? 1.0 / 1024 : dt == KILN_F32 ? 2e-7 : 1e-15;
                    ck_assert_msg(close_to(got, want, tol), "%s dt %d shape %zu i %lld: %g vs %g",
                                  kiln_op_name(ops[oi]), dt, si, (long long)i, got, want);
                    /* advance the output multi-index */
                    for (int d = r - 1; d >= 0; d--) {
                        if (++idx[d] < y->dims[d]) break;
                        idx[d] = 0;
                    }
                }
                kiln_tensor_free(in[0]);
                kiln_tensor_free(in[1]);
                done(&t, &y, 1);
            }
        }
    }
}
END_TEST

START_TEST(test_binary_int)
{
    int64_t dims[1] = {6};
    kiln_tensor *a = tnew(KILN_I8, 1, dims), *b = tnew(KILN_I8, 1, dims);
    int8_t av[6] = {127, -128, -7, 7, -7, 100}, bv[6] = {1, -1, 2, -2, 0, 3};
    memcpy(a->data, av, 6);
    memcpy(b->data, bv, 6);
    kiln_tensor *in[2] = {a, b};
    struct {
        kiln_op op;
        int64_t fmod;
        int8_t want[6];
    } cases[] = {
        {KILN_OP_Add, -1, {-128, 127, -5, 5, -7, 103}},     /* wraps */
        {KILN_OP_Sub, -1, {126, -127, -9, 9, -7, 97}},
        {KILN_OP_Mul, -1, {127, -128, -14, -14, 0, 44}},    /* 300 wraps to 44 */
        {KILN_OP_Div, -1, {127, -128, -3, -3, 0, 33}},      /* trunc; /0 -> 0; MIN/-1 wraps */
        {KILN_OP_Mod, 0, {0, 0, 1, -1, 0, 1}},              /* sign of divisor */
        {KILN_OP_Mod, 1, {0, 0, -1, 1, 0, 1}},              /* sign of dividend */
        {KILN_OP_Max, -1, {127, -1, 2, 7, 0, 100}},
        {KILN_OP_Min, -1, {1, -128, -7, -2, -7, 3}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tcase t = mk(cases[k].op, 2, 1);
        if (cases[k].fmod >= 0) kiln_node_set_int(t.n, "fmod", cases[k].fmod);
        kiln_tensor *y = NULL;
        ck_assert_msg(kiln_eval_node(t.n, in, 2, &y, 1) == KILN_OK, "%s", kiln_last_error());
        for (int i = 0; i < 6; i++)
            ck_assert_msg(((int8_t *)y->data)[i] == cases[k].want[i], "%s[%d] = %d, want %d",
                          kiln_op_name(cases[k].op), i, ((int8_t *)y->data)[i], cases[k].want[i]);
        done(&t, &y, 1);
    }
    kiln_tensor_free(a);
    kiln_tensor_free(b);

    /* random i32 Mod/Div against C (and Python-style) formulas */
    rng_seed(22);
    int64_t d2[1] = {200};
    kiln_tensor *x = tnew(KILN_I32, 1, d2), *z = tnew(KILN_I32, 1, d2);
    for (int i = 0; i < 200; i++) {
        ((int32_t *)x->data)[i] = (int32_t)(rng_u64() % 2001) - 1000;
        int32_t dv = (int32_t)(rng_u64() % 41) - 20;
        ((int32_t *)z->data)[i] = dv ? dv : 3;
    }
    kiln_tensor *xz[2] = {x, z};
    tcase tm = mk(KILN_OP_Mod, 2, 1), td = mk(KILN_OP_Div, 2, 1);
    kiln_tensor *ym = NULL, *yd = NULL;
    ck_assert_int_eq(kiln_eval_node(tm.n, xz, 2, &ym, 1), KILN_OK);
    ck_assert_int_eq(kiln_eval_node(td.n, xz, 2, &yd, 1), KILN_OK);
    for (int i = 0; i < 200; i++) {
        int32_t p = ((int32_t *)x->data)[i], q = ((int32_t *)z->data)[i];
        int32_t m = ((int32_t *)ym->data)[i], dq = ((int32_t *)yd->data)[i];
        ck_assert_int_eq(dq, p / q);
        /* Python: p == q*floor(p/q) + m, m has q's sign, |m| < |q| */
        ck_assert_int_eq(m, p - q * (int32_t)floor((double)p / q));
    }
    kiln_tensor_free(x);
    kiln_tensor_free(z);
    done(&tm, &ym, 1);
    done(&td, &yd, 1);

    /* u64 beyond 2^63 compares and divides unsigned */
    kiln_tensor *u = tnew(KILN_U64, 1, dims), *w = tnew(KILN_U64, 1, dims);
    uint64_t uv[6] = {UINT64_MAX, 1ull << 63, 5, 0, 10, 3};
    uint64_t wv[6] = {2, 1, 5, 9, 0, UINT64_MAX};
    memcpy(u->data, uv, sizeof uv);
    memcpy(w->data, wv, sizeof wv);
    kiln_tensor *uw[2] = {u, w};
    tcase tg = mk(KILN_OP_Greater, 2, 1), tdv = mk(KILN_OP_Div, 2, 1);
    kiln_tensor *yg = NULL, *ydv = NULL;
    ck_assert_int_eq(kiln_eval_node(tg.n, uw, 2, &yg, 1), KILN_OK);
    ck_assert_int_eq(kiln_eval_node(tdv.n, uw, 2, &ydv, 1), KILN_OK);
    ck_assert_int_eq(yg->dtype, KILN_BOOL);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(((uint8_t *)yg->data)[i], uv[i] > wv[i]);
        ck_assert_uint_eq(((uint64_t *)ydv->data)[i], wv[i] ? uv[i] / wv[i] : 0);
    }
    kiln_tensor_free(u);
    kiln_tensor_free(w);
    done(&tg, &yg, 1);
    done(&tdv, &ydv, 1);
}
END_TEST

START_TEST(test_compare_logic_bitwise)
{
    rng_seed(23);
    int64_t da[2] = {4, 5}, db[1] = {5};
    kiln_tensor *a = tnew(KILN_I16, 2, da), *b = tnew(KILN_I16, 1, db);
    for (int64_t i = 0; i < a->numel; i++) ((int16_t *)a->data)[i] = (int16_t)(rng_u64() % 7) - 3;
    for (int64_t i = 0; i < b->numel; i++) ((int16_t *)b->data)[i] = (int16_t)(rng_u64() % 7) - 3;
    kiln_tensor *in[2] = {a, b};
    static const kiln_op ops[] = {KILN_OP_Equal, KILN_OP_Greater, KILN_OP_GreaterOrEqual,
                                  KILN_OP_Less, KILN_OP_LessOrEqual, KILN_OP_BitwiseAnd,
                                  KILN_OP_BitwiseOr, KILN_OP_BitwiseXor};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        tcase t = mk(ops[k], 2, 1);
        kiln_tensor *y = NULL;
        ck_assert_int_eq(kiln_eval_node(t.n, in, 2, &y, 1), KILN_OK);
        for (int64_t i = 0; i < 20; i++) {
            int x = ((int16_t *)a->data)[i], z = ((int16_t *)b->data)[i % 5];
            int want = 0;
            switch (ops[k]) {
            case KILN_OP_Equal: want = x == z; break;
            case KILN_OP_Greater: want = x > z; break;
            case KILN_OP_GreaterOrEqual: want = x >= z; break;
            case KILN_OP_Less: want = x < z; break;
            case KILN_OP_LessOrEqual: want = x <= z; break;
            case KILN_OP_BitwiseAnd: want = (int16_t)(x & z); break;
            case KILN_OP_BitwiseOr: want = (int16_t)(x | z); break;
            case KILN_OP_BitwiseXor: want = (int16_t)(x ^ z); break;
            default: break;
            }
            int got = y->dtype == KILN_BOOL ? ((uint8_t *)y->data)[i] : ((int16_t *)y->data)[i];
            ck_assert_msg(got == want, "%s(%d, %d) = %d", kiln_op_name(ops[k]), x, z, got);
        }
        done(&t, &y, 1);
    }
    kiln_tensor_free(a);
    kiln_tensor_free(b);

    /* And/Or/Xor truth tables with a [2,1] x [2] broadcast */
    int64_t d21[2] = {2, 1}, d2[1] = {2};
    kiln_tensor *p = tnew(KILN_BOOL, 2, d21), *q = tnew(KILN_BOOL, 1, d2);
    ((uint8_t *)p->data)[1] = 1;
    ((uint8_t *)q->data)[1] = 1;
    kiln_tensor *pq[2] = {p, q};
    static const kiln_op lops[] = {KILN_OP_And, KILN_OP_Or, KILN_OP_Xor};
    static const uint8_t lwant[3][4] = {{0, 0, 0, 1}, {0, 1, 1, 1}, {0, 1, 1, 0}};
    for (int k = 0; k < 3; k++) {
        tcase t = mk(lops[k], 2, 1);
        kiln_tensor *y = NULL;
        ck_assert_int_eq(kiln_eval_node(t.n, pq, 2, &y, 1), KILN_OK);
        ck_assert_int_eq(y->numel, 4);
        ck_assert_mem_eq(y->data, lwant[k], 4);
        done(&t, &y, 1);
    }
    kiln_tensor_free(p);
    kiln_tensor_free(q);

    /* BitShift on u8, shift counts at and past the width give 0 */
    int64_t d4[1] = {4};
    kiln_tensor *x = tnew(KILN_U8, 1, d4), *s = tnew(KILN_U8, 1, d4);
    uint8_t xv[4] = {0x81, 0x81, 0xff, 0x10}, sv[4] = {1, 7, 8, 200};
    memcpy(x->data, xv, 4);
    memcpy(s->data, sv, 4);
    kiln_tensor *xs[2] = {x, s};
    tcase tl = mk(KILN_OP_BitShift, 2, 1), tr = mk(KILN_OP_BitShift, 2, 1);
    kiln_node_set_str(tl.n, "direction", "LEFT");
    kiln_node_set_str(tr.n, "direction", "RIGHT");
    kiln_tensor *yl = NULL, *yr = NULL;
    ck_assert_int_eq(kiln_eval_node(tl.n, xs, 2, &yl, 1), KILN_OK);
    ck_assert_int_eq(kiln_eval_node(tr.n, xs, 2, &yr, 1), KILN_OK);
    uint8_t wl[4] = {0x02, 0x80, 0, 0}, wr[4] = {0x40, 0x01, 0, 0};
    ck_assert_mem_eq(yl->data, wl, 4);
    ck_assert_mem_eq(yr->data, wr, 4);
    kiln_tensor_free(x);
    kiln_tensor_free(s);
    done(&tl, &yl, 1);
    done(&tr, &yr, 1);
}
END_TEST

START_TEST(test_pow_mixed)
{
    int64_t d[1] = {4};
    kiln_tensor *bi = tnew(KILN_I32, 1, d), *ef = tnew(KILN_F32, 1, d), *ei = tnew(KILN_I64, 1, d);
    int32_t bv[4] = {2, 3, -2, 0};
    float fv[4] = {3.0f, 0.5f, 2.0f, 0.0f};
    int64_t iv[4] = {10, 3, 3, -1};
    memcpy(bi->data, bv, sizeof bv);
    memcpy(ef->data, fv, sizeof fv);
    memcpy(ei->data, iv, sizeof iv);
    tcase t1 = mk(KILN_OP_Pow, 2, 1), t2 = mk(KILN_OP_Pow, 2, 1);
    kiln_tensor *in1[2] = {bi, ef}, *in2[2] = {bi, ei}, *y1 = NULL, *y2 = NULL;
    ck_assert_int_eq(kiln_eval_node(t1.n, in1, 2, &y1, 1), KILN_OK);
    ck_assert_int_eq(kiln_eval_node(t2.n, in2, 2, &y2, 1), KILN_OK);
    ck_assert_int_eq(y1->dtype, KILN_I32); /* output follows the base */
    int32_t w1[4] = {8, 1 /* trunc(sqrt 3) */, 4, 1}, w2[4] = {1024, 27, -8, 0};
    ck_assert_mem_eq(y1->data, w1, sizeof w1);
    ck_assert_mem_eq(y2->data, w2, sizeof w2);
    kiln_tensor_free(bi);
    kiln_tensor_free(ef);
    kiln_tensor_free(ei);
    done(&t1, &y1, 1);
    done(&t2, &y2, 1);
}
END_TEST

/* ------------------------------------------------- where, variadic, clip -- */

START_TEST(test_where)
{
    rng_seed(31);
    int64_t dc[2] = {3, 1}, dx[1] = {4}, dy[2] = {1, 4};
    kiln_tensor *c = tnew(KILN_BOOL, 2, dc), *x = tnew(KILN_I64, 1, dx), *y = tnew(KILN_I64, 2, dy);
    for (int i = 0; i < 3; i++) ((uint8_t *)c->data)[i] = i != 1;
    for (int i = 0; i < 4; i++) {
        ((int64_t *)x->data)[i] = 100 + i;
        ((int64_t *)y->data)[i] = -i;
    }
    kiln_tensor *in[3] = {c, x, y}, *o = NULL;
    tcase t = mk(KILN_OP_Where, 3, 1);
    ck_assert_int_eq(kiln_eval_node(t.n, in, 3, &o, 1), KILN_OK);
    ck_assert_int_eq(o->rank, 2);
    ck_assert_int_eq(o->dims[0], 3);
    ck_assert_int_eq(o->dims[1], 4);
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < 4; j++)
            ck_assert_int_eq(((int64_t *)o->data)[r * 4 + j], r != 1 ? 100 + j : -j);
    kiln_tensor_free(c);
    kiln_tensor_free(x);
    kiln_tensor_free(y);
    done(&t, &o, 1);
}
END_TEST

START_TEST(test_variadic)
{
    rng_seed(32);
    int64_t d0[2] = {3, 4}, d1[1] = {4}, d2[2] = {3, 1};
    kiln_tensor *in[3] = {rand_f32(2, d0, -2, 2), rand_f32(1, d1, -2, 2), rand_f32(2, d2, -2, 2)};
    ((float *)in[1]->data)[2] = NAN; /* Max/Min propagate NaN */
    static const kiln_op ops[] = {KILN_OP_Max, KILN_OP_Min, KILN_OP_Sum, KILN_OP_Mean};
    for (int k = 0; k < 4; k++) {
        tcase t = mk(ops[k], 3, 1);
        kiln_tensor *y = NULL;
        ck_assert_int_eq(kiln_eval_node(t.n, in, 3, &y, 1), KILN_OK);
        ck_assert_int_eq(y->numel, 12);
        for (int r = 0; r < 3; r++)
            for (int j = 0; j < 4; j++) {
                double a = ((float *)in[0]->data)[r * 4 + j], b = ((float *)in[1]->data)[j],
                       c = ((float *)in[2]->data)[r], want;
                if (isnan(b)) want = NAN;
                else if (ops[k] == KILN_OP_Max) want = fmax(a, fmax(b, c));
                else if (ops[k] == KILN_OP_Min) want = fmin(a, fmin(b, c));
                else if (ops[k] == KILN_OP_Sum) want = a + b + c;
                else want = (a + b + c) / 3;
                ck_assert_msg(close_to(((float *)y->data)[r * 4 + j], want, 1e-6), "%s",
                              kiln_op_name(ops[k]));
            }
        done(&t, &y, 1);
    }
    /* one input: a copy */
    tcase t = mk(KILN_OP_Sum, 1, 1);
    kiln_tensor *y = NULL;
    ck_assert_int_eq(kiln_eval_node(t.n, in, 1, &y, 1), KILN_OK);
    ck_assert_mem_eq(y->data, in[0]->data, in[0]->nbytes);
    done(&t, &y, 1);
    for (int i = 0; i < 3; i++) kiln_tensor_free(in[i]);
}
END_TEST

START_TEST(test_clip)
{
    rng_seed(33);
    int64_t d[1] = {50};
    kiln_tensor *x = rand_f32(1, d, -3, 3);
    kiln_tensor *lo = scalar_of(KILN_F32, -1), *hi = scalar_of(KILN_F32, 0.5);
    struct {
        kiln_tensor *lo, *hi;
    } cases[] = {{lo, hi}, {lo, NULL}, {NULL, hi}, {NULL, NULL}, {hi, lo} /* min > max */};
    for (int k = 0; k < 5; k++) {
        tcase t = mk(KILN_OP_Clip, 3, 1);
        kiln_tensor *in[3] = {x, cases[k].lo, cases[k].hi}, *y = NULL;
        ck_assert_msg(kiln_eval_node(t.n, in, 3, &y, 1) == KILN_OK, "%s", kiln_last_error());
        double l = cases[k].lo ? ((float *)cases[k].lo->data)[0] : -INFINITY;
        double h = cases[k].hi ? ((float *)cases[k].hi->data)[0] : INFINITY;
        for (int i = 0; i < 50; i++) {
            double v = ((float *)x->data)[i];
            double want = l > h ? h : fmin(fmax(v, l), h);
            ck_assert(((float *)y->data)[i] == (float)want); /* exact: only selects */
        }
        done(&t, &y, 1);
    }
    kiln_tensor_free(x);
    kiln_tensor_free(lo);
    kiln_tensor_free(hi);

    /* u8 with only max */
    kiln_tensor *u = tnew(KILN_U8, 1, d), *uh = scalar_of(KILN_U8, 200);
    for (int i = 0; i < 50; i++) ((uint8_t *)u->data)[i] = (uint8_t)(i * 5);
    tcase t = mk(KILN_OP_Clip, 3, 1);
    kiln_tensor *in[3] = {u, NULL, uh}, *y = NULL;
    ck_assert_int_eq(kiln_eval_node(t.n, in, 3, &y, 1), KILN_OK);
    for (int i = 0; i < 50; i++) ck_assert_int_eq(((uint8_t *)y->data)[i], i * 5 > 200 ? 200 : i * 5);
    kiln_tensor_free(u);
    kiln_tensor_free(uh);
    done(&t, &y, 1);
}
END_TEST

/* ------------------------------------------------------- cast, dropout -- */

static kiln_tensor *run_cast(kiln_tensor *x, kiln_dtype to)
{
    tcase t = mk(KILN_OP_Cast, 1, 1);
    kiln_node_set_int(t.n, "to", to);
    kiln_tensor *y = NULL;
    ck_assert_msg(kiln_eval_node(t.n, &x, 1, &y, 1) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(y->dtype, to);
    kiln_graph_free(t.g);
    return y;
}

START_TEST(test_cast)
{
    /* f32 -> f16 rounds to nearest even, overflows to inf, keeps subnormals */
    int64_t d[1] = {7};
    float fv[7] = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 65504.0f, 65520.0f, -1e-7f, 6e-8f, NAN};
    uint16_t want16[7] = {0x3c00, 0x3c02, 0x7bff, 0x7c00, 0x8002, 0x0001, 0};
    kiln_tensor *x = from_f32(1, d, fv), *y = run_cast(x, KILN_F16);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(((uint16_t *)y->data)[i] == want16[i], "f16[%d] = %04x want %04x", i,
                      ((uint16_t *)y->data)[i], want16[i]);
    ck_assert_int_eq(((uint16_t *)y->data)[6] & 0x7c00, 0x7c00); /* NaN stays NaN */
    ck_assert_int_ne(((uint16_t *)y->data)[6] & 0x03ff, 0);
    kiln_tensor_free(y);

    /* f32 -> bf16 rounds to nearest even */
    float bvf[3] = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -2.0f};
    kiln_tensor *xb = from_f32(1, d, fv);
    memcpy(xb->data, bvf, sizeof bvf);
    kiln_tensor *yb = run_cast(xb, KILN_BF16);
    ck_assert_int_eq(((uint16_t *)yb->data)[0], 0x3f80);
    ck_assert_int_eq(((uint16_t *)yb->data)[1], 0x3f82);
    ck_assert_int_eq(((uint16_t *)yb->data)[2], 0xc000);
    kiln_tensor_free(xb);
    kiln_tensor_free(yb);

    /* f64 -> f16 rounds once: just above a tie must round up */
    kiln_tensor *xd = tnew(KILN_F64, 1, d);
    ((double *)xd->data)[0] = 1.0 + 1.0 / 2048 + 1e-12;
    kiln_tensor *yd = run_cast(xd, KILN_F16);
    ck_assert_int_eq(((uint16_t *)yd->data)[0], 0x3c01);
    kiln_tensor_free(xd);
    kiln_tensor_free(yd);

    /* float -> int truncates toward zero and saturates; NaN -> 0 */
    float iv[7] = {2.9f, -2.9f, 3e9f, -3e9f, NAN, 0.0f, 127.5f};
    memcpy(x->data, iv, sizeof iv);
    kiln_tensor *yi = run_cast(x, KILN_I32), *yu = run_cast(x, KILN_U8), *yq = run_cast(x, KILN_BOOL);
    int32_t wi[7] = {2, -2, INT32_MAX, INT32_MIN, 0, 0, 127};
    uint8_t wu[7] = {2, 0, 255, 0, 0, 0, 127}, wq[7] = {1, 1, 1, 1, 1, 0, 1};
    ck_assert_mem_eq(yi->data, wi, sizeof wi);
    ck_assert_mem_eq(yu->data, wu, sizeof wu);
    ck_assert_mem_eq(yq->data, wq, sizeof wq);
    kiln_tensor_free(yi);
    kiln_tensor_free(yu);
    kiln_tensor_free(yq);
    kiln_tensor_free(x);

    /* int -> int wraps; int -> float exact for small values; bool -> f32 */
    kiln_tensor *xi = tnew(KILN_I64, 1, d);
    int64_t i64v[7] = {300, -1, 1ll << 40, -129, 0, 255, INT64_MIN};
    memcpy(xi->data, i64v, sizeof i64v);
    kiln_tensor *yu8 = run_cast(xi, KILN_U8), *yi8 = run_cast(xi, KILN_I8), *yf = run_cast(xi, KILN_F64);
    uint8_t wu8[7] = {44, 255, 0, 127, 0, 255, 0};
    int8_t wi8[7] = {44, -1, 0, 127, 0, -1, 0};
    ck_assert_mem_eq(yu8->data, wu8, 7);
    ck_assert_mem_eq(yi8->data, wi8, 7);
    for (int i = 0; i < 7; i++) ck_assert(((double *)yf->data)[i] == (double)i64v[i]);
    kiln_tensor_free(yu8);
    kiln_tensor_free(yi8);
    kiln_tensor_free(yf);
    kiln_tensor_free(xi);

    /* CastLike takes the dtype of its second input */
    tcase t = mk(KILN_OP_CastLike, 2, 1);
    kiln_tensor *src = scalar_of(KILN_F32, 2.75), *like = tnew(KILN_I16, 1, d), *in[2] = {src, like};
    kiln_tensor *out = NULL;
    ck_assert_int_eq(kiln_eval_node(t.n, in, 2, &out, 1), KILN_OK);
    ck_assert_int_eq(out->dtype, KILN_I16);
    ck_assert_int_eq(out->rank, 0);
    ck_assert_int_eq(((int16_t *)out->data)[0], 2);
    kiln_tensor_free(src);
    kiln_tensor_free(like);
    done(&t, &out, 1);
}
END_TEST

START_TEST(test_dropout_identity)
{
    rng_seed(41);
    int64_t d[2] = {3, 5};
    kiln_tensor *x = rand_f32(2, d, -1, 1);
    kiln_tensor *ratio = scalar_of(KILN_F32, 0.3);
    kiln_tensor *train = tnew(KILN_BOOL, 0, NULL);
    tcase t = mk(KILN_OP_Dropout, 3, 2);
    kiln_tensor *in[3] = {x, ratio, train}, *y[2] = {NULL, NULL};
    ck_assert_int_eq(kiln_eval_node(t.n, in, 3, y, 2), KILN_OK);
    ck_assert_mem_eq(y[0]->data, x->data, x->nbytes);
    ck_assert_int_eq(y[1]->dtype, KILN_BOOL);
    for (int64_t i = 0; i < 15; i++) ck_assert_int_eq(((uint8_t *)y[1]->data)[i], 1);
    done(&t, y, 2);

    /* training with ratio 0 is still the identity */
    ((uint8_t *)train->data)[0] = 1;
    kiln_tensor *zero = scalar_of(KILN_F32, 0);
    kiln_tensor *in0[3] = {x, zero, train}, *y0 = NULL;
    tcase t0 = mk(KILN_OP_Dropout, 3, 1);
    ck_assert_int_eq(kiln_eval_node(t0.n, in0, 3, &y0, 1), KILN_OK);
    ck_assert_mem_eq(y0->data, x->data, x->nbytes);
    done(&t0, &y0, 1);

    /* training with ratio > 0 is random: refused */
    tcase t1 = mk(KILN_OP_Dropout, 3, 1);
    kiln_tensor *y1 = NULL;
    ck_assert_int_eq(kiln_eval_node(t1.n, in, 3, &y1, 1), KILN_ERR_UNSUPPORTED);
    kiln_tensor_free(y1);
    kiln_graph_free(t1.g);

    kiln_tensor_free(x);
    kiln_tensor_free(ratio);
    kiln_tensor_free(train);
    kiln_tensor_free(zero);
}
END_TEST

/* --------------------------------------------------------- inference -- */

/* Symbolic dims flow through unary and broadcast ops. */
START_TEST(test_infer_symbolic)
{
    kiln_graph *g = kiln_graph_new();
    int a = kiln_graph_add_value(g, "a"), b = kiln_graph_add_value(g, "b");
    int y = kiln_graph_add_value(g, "y"), z = kiln_graph_add_value(g, "z");
    int32_t sym = kiln_graph_symbol(g, "N");
    ck_assert_int_gt(sym, 0);
    kiln_value *va = &g->values[a], *vb = &g->values[b];
    int64_t da[2] = {-1, 4}, db[1] = {4};
    kiln_value_set(va, KILN_F32, 2, da);
    va->sym[0] = sym;
    kiln_value_set(vb, KILN_F32, 1, db);
    int n_relu = kiln_graph_add_node(g, KILN_OP_Relu, "r", &a, 1, &y, 1);
    int ins[2] = {y, b};
    int n_add = kiln_graph_add_node(g, KILN_OP_Add, "s", ins, 2, &z, 1);
    ck_assert_int_ge(n_relu, 0);
    ck_assert_int_ge(n_add, 0);

    const kiln_value *cin[2] = {va, NULL};
    kiln_value *cout[1] = {&g->values[y]};
    kiln_infer_ctx c = {g, &g->nodes[n_relu], 1, cin, 1, cout};
    ck_assert_int_eq(kiln_infer_Relu(&c), KILN_OK);
    ck_assert_int_eq(g->values[y].rank, 2);
    ck_assert_int_eq(g->values[y].sym[0], sym);
    ck_assert_int_eq(g->values[y].dims[1], 4);

    const kiln_value *cin2[2] = {&g->values[y], vb};
    kiln_value *cout2[1] = {&g->values[z]};
    kiln_infer_ctx c2 = {g, &g->nodes[n_add], 2, cin2, 1, cout2};
    ck_assert_int_eq(kiln_infer_Add(&c2), KILN_OK);
    ck_assert_int_eq(g->values[z].dtype, KILN_F32);
    ck_assert_int_eq(g->values[z].sym[0], sym);
    ck_assert_int_eq(g->values[z].dims[1], 4);

    /* comparison output is bool with the broadcast shape */
    ck_assert_int_eq(kiln_infer_Less(&c2), KILN_OK);
    ck_assert_int_eq(g->values[z].dtype, KILN_BOOL);

    /* Cast to an unsupported dtype (float8e4m3fn = 17) is UNSUPPORTED at inference */
    kiln_node_set_int(&g->nodes[n_relu], "to", 17);
    ck_assert_int_eq(kiln_infer_Cast(&c), KILN_ERR_UNSUPPORTED);
    kiln_graph_free(g);
}
END_TEST

/* -------------------------------------------------------- bad inputs -- */

static kiln_status try_eval(kiln_op op, kiln_tensor **in, int n_in, const char *attr, int64_t iv,
                            const char *sattr, const char *sv, float fval)
{
    tcase t = mk(op, n_in, 1);
    if (attr) kiln_node_set_int(t.n, attr, iv);
    if (sattr) {
        if (sv) kiln_node_set_str(t.n, sattr, sv);
        else kiln_node_set_float(t.n, sattr, fval);
    }
    kiln_tensor *y = NULL;
    kiln_status st = kiln_eval_node(t.n, in, n_in, &y, 1);
    kiln_tensor_free(y); /* NULL-safe */
    kiln_graph_free(t.g);
    return st;
}

START_TEST(test_bad_inputs)
{
    int64_t d3[1] = {3}, d4[1] = {4}, d2[2] = {2, 2};
    kiln_tensor *f3 = tnew(KILN_F32, 1, d3), *f4 = tnew(KILN_F32, 1, d4), *i3 = tnew(KILN_I32, 1, d3);
    kiln_tensor *u3 = tnew(KILN_U8, 1, d3), *b3 = tnew(KILN_BOOL, 1, d3), *f22 = tnew(KILN_F32, 2, d2);
    kiln_status st;

    /* binary: shapes that do not broadcast, mixed dtypes */
    kiln_tensor *ff[2] = {f3, f4}, *fi[2] = {f3, i3};
    ck_assert_int_ne(try_eval(KILN_OP_Add, ff, 2, NULL, 0, NULL, NULL, 0), KILN_OK);
    ck_assert_int_ne(try_eval(KILN_OP_Mul, fi, 2, NULL, 0, NULL, NULL, 0), KILN_OK);
    ck_assert_int_ne(try_eval(KILN_OP_Equal, fi, 2, NULL, 0, NULL, NULL, 0), KILN_OK);
    /* unary dtype not accepted: Relu on u8, Sqrt on i32, Not on f32, BitwiseNot on f32 */
    ck_assert_int_eq(try_eval(KILN_OP_Relu, &u3, 1, NULL, 0, NULL, NULL, 0), KILN_ERR_SHAPE);
    ck_assert_int_eq(try_eval(KILN_OP_Sqrt, &i3, 1, NULL, 0, NULL, NULL, 0), KILN_ERR_SHAPE);
    ck_assert_int_eq(try_eval(KILN_OP_Not, &f3, 1, NULL, 0, NULL, NULL, 0), KILN_ERR_SHAPE);
    ck_assert_int_eq(try_eval(KILN_OP_BitwiseNot, &f3, 1, NULL, 0, NULL, NULL, 0), KILN_ERR_SHAPE);
    /* attributes out of range */
    ck_assert_int_ne(try_eval(KILN_OP_Gelu, &f3, 1, NULL, 0, "approximate", "erf", 0), KILN_OK);
    ck_assert_int_ne(try_eval(KILN_OP_Celu, &f3, 1, NULL, 0, "alpha", NULL, 0.0f), KILN_OK);
    kiln_tensor *uu[2] = {u3, u3}, *ii[2] = {i3, i3};
    ck_assert_int_ne(try_eval(KILN_OP_BitShift, uu, 2, NULL, 0, NULL, NULL, 0), KILN_OK);
    ck_assert_int_ne(try_eval(KILN_OP_BitShift, uu, 2, NULL, 0, "direction", "UP", 0), KILN_OK);
    ck_assert_int_ne(try_eval(KILN_OP_BitShift, ii, 2, NULL, 0, "direction", "LEFT", 0), KILN_OK);
    ck_assert_int_ne(try_eval(KILN_OP_Mod, ii, 2, "fmod", 2, NULL, NULL, 0), KILN_OK);
    /* Cast: unsupported target dtypes (string, float8, int4) and a missing 'to' */
    ck_assert_int_eq(try_eval(KILN_OP_Cast, &f3, 1, "to", 8, NULL, NULL, 0), KILN_ERR_UNSUPPORTED);
    ck_assert_int_eq(try_eval(KILN_OP_Cast, &f3, 1, "to", 17, NULL, NULL, 0), KILN_ERR_UNSUPPORTED);
    ck_assert_int_eq(try_eval(KILN_OP_Cast, &f3, 1, "to", 22, NULL, NULL, 0), KILN_ERR_UNSUPPORTED);
    ck_assert_int_ne(try_eval(KILN_OP_Cast, &f3, 1, NULL, 0, NULL, NULL, 0), KILN_OK);
    /* Clip with a non-scalar bound or a bound of another dtype */
    kiln_tensor *clip1[3] = {f3, f22, NULL}, *clip2[3] = {f3, NULL, i3};
    ck_assert_int_ne(try_eval(KILN_OP_Clip, clip1, 3, NULL, 0, NULL, NULL, 0), KILN_OK);
    ck_assert_int_ne(try_eval(KILN_OP_Clip, clip2, 3, NULL, 0, NULL, NULL, 0), KILN_OK);
    /* Where with a non-bool condition, X/Y of different dtypes */
    kiln_tensor *w1[3] = {f3, f3, f3}, *w2[3] = {b3, f3, i3};
    ck_assert_int_ne(try_eval(KILN_OP_Where, w1, 3, NULL, 0, NULL, NULL, 0), KILN_OK);
    ck_assert_int_ne(try_eval(KILN_OP_Where, w2, 3, NULL, 0, NULL, NULL, 0), KILN_OK);
    /* variadic with mixed dtypes; Mean on ints */
    kiln_tensor *v1[3] = {f3, f3, i3};
    ck_assert_int_ne(try_eval(KILN_OP_Max, v1, 3, NULL, 0, NULL, NULL, 0), KILN_OK);
    ck_assert_int_ne(try_eval(KILN_OP_Mean, ii, 2, NULL, 0, NULL, NULL, 0), KILN_OK);
    /* Dropout ratio out of range */
    kiln_tensor *r2 = scalar_of(KILN_F32, 1.5), *dr[2] = {f3, r2};
    ck_assert_int_ne(try_eval(KILN_OP_Dropout, dr, 2, NULL, 0, NULL, NULL, 0), KILN_OK);
    kiln_tensor_free(r2);
    /* And on non-bool */
    st = try_eval(KILN_OP_And, ii, 2, NULL, 0, NULL, NULL, 0);
    ck_assert_int_ne(st, KILN_OK);
    ck_assert_str_ne(kiln_last_error(), "");

    /* integer division by zero is defined (0), not a crash */
    kiln_tensor *zero = tnew(KILN_I32, 1, d3), *iz[2] = {i3, zero};
    ck_assert_int_eq(try_eval(KILN_OP_Div, iz, 2, NULL, 0, NULL, NULL, 0), KILN_OK);
    ck_assert_int_eq(try_eval(KILN_OP_Mod, iz, 2, NULL, 0, NULL, NULL, 0), KILN_OK);
    kiln_tensor_free(zero);

    kiln_tensor_free(f3);
    kiln_tensor_free(f4);
    kiln_tensor_free(i3);
    kiln_tensor_free(u3);
    kiln_tensor_free(b3);
    kiln_tensor_free(f22);
}
END_TEST

/* A large same-shape f32 Add and a bias broadcast exercise the fast paths. */
START_TEST(test_f32_fast_paths)
{
    rng_seed(51);
    int64_t d[4] = {2, 8, 16, 16}, db[3] = {8, 1, 1};
    kiln_tensor *a = rand_f32(4, d, -1, 1), *b = rand_f32(4, d, -1, 1), *bias = rand_f32(3, db, -1, 1);
    kiln_tensor *ab[2] = {a, b}, *abias[2] = {a, bias}, *y1 = NULL, *y2 = NULL;
    tcase t1 = mk(KILN_OP_Mul, 2, 1), t2 = mk(KILN_OP_Sub, 2, 1);
    ck_assert_int_eq(kiln_eval_node(t1.n, ab, 2, &y1, 1), KILN_OK);
    ck_assert_int_eq(kiln_eval_node(t2.n, abias, 2, &y2, 1), KILN_OK);
    const float *A = a->data, *B = b->data, *C = bias->data;
    for (int64_t i = 0; i < a->numel; i++) {
        int64_t ch = (i / 256) % 8;
        ck_assert(((float *)y1->data)[i] == A[i] * B[i]); /* exact: one f32 op */
        ck_assert(((float *)y2->data)[i] == A[i] - C[ch]);
    }
    kiln_tensor_free(a);
    kiln_tensor_free(b);
    kiln_tensor_free(bias);
    done(&t1, &y1, 1);
    done(&t2, &y2, 1);
}
END_TEST

static Suite *elementwise_suite(void)
{
    Suite *s = suite_create("ops_elementwise");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_unary_f32);
    tcase_add_test(tc, test_unary_f64_f16);
    tcase_add_test(tc, test_activation_attrs);
    tcase_add_test(tc, test_unary_int);
    tcase_add_test(tc, test_predicates);
    tcase_add_test(tc, test_binary_broadcast_float);
    tcase_add_test(tc, test_binary_int);
    tcase_add_test(tc, test_compare_logic_bitwise);
    tcase_add_test(tc, test_pow_mixed);
    tcase_add_test(tc, test_where);
    tcase_add_test(tc, test_variadic);
    tcase_add_test(tc, test_clip);
    tcase_add_test(tc, test_cast);
    tcase_add_test(tc, test_dropout_identity);
    tcase_add_test(tc, test_infer_symbolic);
    tcase_add_test(tc, test_bad_inputs);
    tcase_add_test(tc, test_f32_fast_paths);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(elementwise_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
