/* check_ops_quant.c — quantization, signal and image ops (ir/ops_quant.c) against naive
 * computations written here, known values and identities. Inputs are seeded pseudo-random.
 * Integer results must match exactly; float results within |a-e| <= atol + rtol|e| with the
 * tolerance stated at each check (1e-5 unless noted: the kernels and the naive loops both
 * work through double or float with a handful of roundings). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ---------------------------------------------------------------- helpers -- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static double rnd(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / (double)(1ULL << 53) * 2.0 - 1.0;
}

static int64_t rnd_int(int64_t lo, int64_t hi) /* inclusive */
{
    double u = (rnd() + 1.0) / 2.0;
    int64_t v = lo + (int64_t)(u * (double)(hi - lo + 1));
    return v > hi ? hi : v;
}

static kiln_tensor *tens(kiln_dtype dt, int rank, const int64_t *dims, const double *vals)
{
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; vals && i < t->numel; i++) kiln_tensor_set(t, i, vals[i]);
    return t;
}

static kiln_tensor *rand_f32(int rank, const int64_t *dims, double scale)
{
    kiln_tensor *t = tens(KILN_F32, rank, dims, NULL);
    for (int64_t i = 0; i < t->numel; i++) kiln_tensor_set(t, i, rnd() * scale);
    return t;
}

static kiln_tensor *rand_int(kiln_dtype dt, int rank, const int64_t *dims, int64_t lo, int64_t hi)
{
    kiln_tensor *t = tens(dt, rank, dims, NULL);
    for (int64_t i = 0; i < t->numel; i++) kiln_tensor_set_i64(t, i, rnd_int(lo, hi));
    return t;
}

static kiln_tensor *scalar(kiln_dtype dt, double v) { return tens(dt, 0, NULL, &v); }

static kiln_tensor *vec_i64(int n, const int64_t *v)
{
    int64_t d = n;
    kiln_tensor *t = tens(KILN_I64, 1, &d, NULL);
    for (int i = 0; i < n; i++) kiln_tensor_set_i64(t, i, v[i]);
    return t;
}

typedef struct one_node {
    kiln_graph *g;
    kiln_node *n;
} one_node;

static one_node make_node(kiln_op op, int n_in, int n_out)
{
    one_node r;
    r.g = kiln_graph_new();
    ck_assert_ptr_nonnull(r.g);
    int ins[16], outs[8];
    for (int i = 0; i < n_in; i++) ins[i] = kiln_graph_add_value(r.g, NULL);
    for (int i = 0; i < n_out; i++) outs[i] = kiln_graph_add_value(r.g, NULL);
    int id = kiln_graph_add_node(r.g, op, "t", ins, n_in, outs, n_out);
    ck_assert_int_ge(id, 0);
    r.n = &r.g->nodes[id];
    return r;
}

static void set_int(one_node *o, const char *name, int64_t v) { ck_assert_int_eq(kiln_node_set_int(o->n, name, v), KILN_OK); }
static void set_ints(one_node *o, const char *name, int count, const int64_t *v)
{
    ck_assert_int_eq(kiln_node_set_ints(o->n, name, v, count), KILN_OK);
}
static void set_str(one_node *o, const char *name, const char *v) { ck_assert_int_eq(kiln_node_set_str(o->n, name, v), KILN_OK); }

static kiln_status run(one_node *o, kiln_tensor **in, kiln_tensor **out)
{
    for (int i = 0; i < o->n->n_outputs; i++) out[i] = NULL;
    return kiln_eval_node(o->n, in, o->n->n_inputs, out, o->n->n_outputs);
}

/* Runs a single-output node that must succeed. */
static kiln_tensor *run1(one_node *o, kiln_tensor **in)
{
    kiln_tensor *out[8];
    kiln_status st = run(o, in, out);
    ck_assert_msg(st == KILN_OK, "eval failed: %s", kiln_last_error());
    for (int i = 1; i < o->n->n_outputs; i++) kiln_tensor_free(out[i]);
    return out[0];
}

/* Runs a node that must fail with `want` (and leave no outputs). */
static void expect_fail(one_node *o, kiln_tensor **in, kiln_status want)
{
    kiln_tensor *out[8];
    kiln_status st = run(o, in, out);
    ck_assert_msg(st == want, "expected %s, got %s (%s)", kiln_status_name(want), kiln_status_name(st), kiln_last_error());
    for (int i = 0; i < o->n->n_outputs; i++) ck_assert_ptr_null(out[i]);
    ck_assert(strlen(kiln_last_error()) > 0);
}

static void expect_close(const kiln_tensor *t, const double *want, int64_t count, double atol, double rtol)
{
    ck_assert_int_eq(t->numel, count);
    for (int64_t i = 0; i < count; i++) {
        double a = kiln_tensor_get(t, i), e = want[i];
        if (isnan(e) && isnan(a)) continue;
        ck_assert_msg(fabs(a - e) <= atol + rtol * fabs(e), "element %lld: got %.9g want %.9g", (long long)i, a, e);
    }
}

static void expect_exact(const kiln_tensor *t, const int64_t *want, int64_t count)
{
    ck_assert_int_eq(t->numel, count);
    for (int64_t i = 0; i < count; i++)
        ck_assert_msg(kiln_tensor_get_i64(t, i) == want[i], "element %lld: got %lld want %lld", (long long)i,
                      (long long)kiln_tensor_get_i64(t, i), (long long)want[i]);
}

static void expect_dims(const kiln_tensor *t, int rank, const int64_t *dims)
{
    ck_assert_int_eq(t->rank, rank);
    for (int i = 0; i < rank; i++) ck_assert_int_eq(t->dims[i], dims[i]);
}

static void free_all(one_node *o, kiln_tensor **ts, int n)
{
    for (int i = 0; i < n; i++) kiln_tensor_free(ts[i]);
    kiln_graph_free(o->g);
}

/* Round half to even, spelled out (independent of rint and the rounding mode). */
static double rhe(double v)
{
    double f = floor(v), d = v - f;
    if (d > 0.5) return f + 1;
    if (d < 0.5) return f;
    return fmod(f, 2.0) == 0.0 ? f : f + 1;
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* -------------------------------------------------- Quantize/Dequantize -- */

START_TEST(quantize_per_tensor_axis_block)
{
    /* x [2, 6, 3]; per tensor (u8 default), per axis 1 (i8) and blocked along axis 1 (i16, block 4) */
    int64_t xd[3] = {2, 6, 3};
    for (int mode = 0; mode < 3; mode++) {
        one_node o = make_node(KILN_OP_QuantizeLinear, 3, 1);
        kiln_tensor *x = rand_f32(3, xd, 40.0), *s, *z;
        kiln_dtype zdt = mode == 0 ? KILN_U8 : mode == 1 ? KILN_I8 : KILN_I16;
        if (mode == 0) {
            s = scalar(KILN_F32, 0.37);
            z = scalar(zdt, 128);
        } else if (mode == 1) {
            int64_t sd = 6;
            s = tens(KILN_F32, 1, &sd, NULL);
            z = tens(zdt, 1, &sd, NULL);
            for (int i = 0; i < 6; i++) kiln_tensor_set(s, i, 0.1 + 0.05 * i), kiln_tensor_set_i64(z, i, i - 3);
        } else {
            int64_t sd[3] = {2, 2, 3};
            s = tens(KILN_F32, 3, sd, NULL);
            z = tens(zdt, 3, sd, NULL);
            for (int i = 0; i < 12; i++) kiln_tensor_set(s, i, 0.01 + 0.003 * i), kiln_tensor_set_i64(z, i, 100 * i - 500);
            set_int(&o, "block_size", 4);
        }
        kiln_tensor *in[3] = {x, s, z};
        kiln_tensor *y = run1(&o, in);
        ck_assert_int_eq(y->dtype, zdt);
        expect_dims(y, 3, xd);
        double lo = zdt == KILN_U8 ? 0 : zdt == KILN_I8 ? -128 : -32768, hi = zdt == KILN_U8 ? 255 : zdt == KILN_I8 ? 127 : 32767;
        for (int64_t a = 0; a < 2; a++)
            for (int64_t b = 0; b < 6; b++)
                for (int64_t c = 0; c < 3; c++) {
                    int64_t i = (a * 6 + b) * 3 + c, si = mode == 0 ? 0 : mode == 1 ? b : (a * 2 + b / 4) * 3 + c;
                    float q = (float)kiln_tensor_get(x, i) / (float)kiln_tensor_get(s, si);
                    double want = clampd(rhe(q) + (double)kiln_tensor_get_i64(z, si), lo, hi);
                    ck_assert_int_eq(kiln_tensor_get_i64(y, i), (int64_t)want);
                }
        /* round trip: dequantizing gives x back within half a step wherever nothing saturated */
        one_node d = make_node(KILN_OP_DequantizeLinear, 3, 1);
        if (mode == 2) set_int(&d, "block_size", 4);
        kiln_tensor *din[3] = {y, s, z};
        kiln_tensor *xr = run1(&d, din);
        ck_assert_int_eq(xr->dtype, KILN_F32);
        for (int64_t i = 0; i < x->numel; i++) {
            int64_t b = (i / 3) % 6, a = i / 18, c = i % 3;
            int64_t si = mode == 0 ? 0 : mode == 1 ? b : (a * 2 + b / 4) * 3 + c;
            double sv = kiln_tensor_get(s, si), qv = (double)kiln_tensor_get_i64(y, i);
            if (qv == lo || qv == hi) continue;
            ck_assert(fabs(kiln_tensor_get(xr, i) - kiln_tensor_get(x, i)) <= sv * 0.5 + 1e-5);
        }
        kiln_tensor_free(xr);
        kiln_graph_free(d.g);
        kiln_tensor *all[4] = {x, s, z, y};
        free_all(&o, all, 4);
    }
}
END_TEST

START_TEST(quantize_ties_dtypes_and_defaults)
{
    /* ties round to even; no zero point: uint8 unless output_dtype says otherwise */
    double xv[8] = {0.5, 1.5, 2.5, -0.5, -1.5, 300, -300, 1e30};
    int64_t d = 8;
    kiln_tensor *x = tens(KILN_F32, 1, &d, xv), *s = scalar(KILN_F32, 1.0);
    one_node o = make_node(KILN_OP_QuantizeLinear, 2, 1);
    kiln_tensor *in[2] = {x, s};
    kiln_tensor *y = run1(&o, in);
    ck_assert_int_eq(y->dtype, KILN_U8);
    int64_t want_u8[8] = {0, 2, 2, 0, 0, 255, 0, 255};
    expect_exact(y, want_u8, 8);
    kiln_tensor_free(y);
    set_int(&o, "output_dtype", KILN_I8);
    y = run1(&o, in);
    ck_assert_int_eq(y->dtype, KILN_I8);
    int64_t want_i8[8] = {0, 2, 2, 0, -2, 127, -128, 127};
    expect_exact(y, want_i8, 8);
    kiln_tensor_free(y);
    set_int(&o, "output_dtype", KILN_I32);
    y = run1(&o, in);
    ck_assert_int_eq(kiln_tensor_get_i64(y, 7), INT32_MAX);
    kiln_tensor_free(y);
    /* f16 input and scale: the division is rounded to f16 before rounding to an integer */
    kiln_tensor *xh = tens(KILN_F16, 1, &d, xv), *sh = scalar(KILN_F16, 0.5);
    set_int(&o, "output_dtype", KILN_I16);
    kiln_tensor *inh[2] = {xh, sh};
    y = run1(&o, inh);
    int64_t want_i16[8] = {1, 3, 5, -1, -3, 600, -600, 32767};
    expect_exact(y, want_i16, 8);
    /* DequantizeLinear int32 input, output_dtype f16 */
    one_node dq = make_node(KILN_OP_DequantizeLinear, 3, 1);
    kiln_node_set_int(dq.n, "output_dtype", KILN_F16);
    int64_t qv[3] = {-7, 0, 10000};
    kiln_tensor *q = tens(KILN_I32, 1, (int64_t[]){3}, NULL), *qs = scalar(KILN_F32, 0.25), *qz = scalar(KILN_I32, 4);
    for (int i = 0; i < 3; i++) kiln_tensor_set_i64(q, i, qv[i]);
    kiln_tensor *din[3] = {q, qs, qz};
    kiln_tensor *dy = run1(&dq, din);
    ck_assert_int_eq(dy->dtype, KILN_F16);
    double dwant[3] = {-2.75, -1.0, 2499.0};
    expect_close(dy, dwant, 3, 0, 1e-3);
    kiln_tensor *all[9] = {x, s, y, xh, sh, q, qs, qz, dy};
    kiln_graph_free(dq.g);
    free_all(&o, all, 9);
}
END_TEST

START_TEST(quantize_bad_inputs)
{
    int64_t xd[2] = {3, 4}, four = 4, five = 5;
    kiln_tensor *x = rand_f32(2, xd, 1.0), *s5 = tens(KILN_F32, 1, &five, NULL), *s = scalar(KILN_F32, 0.1);
    kiln_tensor *z8 = scalar(KILN_I8, 0), *s4 = tens(KILN_F32, 1, &four, NULL), *xi = rand_int(KILN_I8, 2, xd, -5, 5);
    for (int i = 0; i < 5; i++) kiln_tensor_set(s5, i, 1), i < 4 ? kiln_tensor_set(s4, i, 1) : (void)0;
    one_node o = make_node(KILN_OP_QuantizeLinear, 3, 1);
    kiln_tensor *in1[3] = {x, s5, NULL}; /* per-axis scale of the wrong length */
    expect_fail(&o, in1, KILN_ERR_SHAPE);
    kiln_tensor *in2[3] = {x, s, z8};
    set_int(&o, "output_dtype", KILN_U8); /* disagrees with the zero point */
    expect_fail(&o, in2, KILN_ERR_SHAPE);
    set_int(&o, "output_dtype", 17); /* float8: recognised, unsupported */
    kiln_tensor *in3[3] = {x, s, NULL};
    expect_fail(&o, in3, KILN_ERR_UNSUPPORTED);
    set_int(&o, "output_dtype", 0);
    set_int(&o, "axis", 5);
    kiln_tensor *in4[3] = {x, s4, NULL};
    expect_fail(&o, in4, KILN_ERR_SHAPE);
    set_int(&o, "axis", 1);
    set_int(&o, "block_size", -2);
    expect_fail(&o, in3, KILN_ERR_SHAPE);
    one_node d = make_node(KILN_OP_DequantizeLinear, 3, 1);
    kiln_tensor *din[3] = {x, s, NULL}; /* float x */
    expect_fail(&d, din, KILN_ERR_SHAPE);
    kiln_tensor *u8z = scalar(KILN_U8, 0);
    kiln_tensor *din2[3] = {xi, s, u8z}; /* zero point type differs */
    expect_fail(&d, din2, KILN_ERR_SHAPE);
    kiln_graph_free(d.g);
    kiln_tensor *all[8] = {x, s5, s, z8, s4, xi, u8z, NULL};
    free_all(&o, all, 7);
}
END_TEST

START_TEST(dynamic_quantize)
{
    int64_t d[2] = {3, 5};
    for (int t = 0; t < 3; t++) {
        kiln_tensor *x = rand_f32(2, d, 4.0);
        if (t == 1) for (int64_t i = 0; i < x->numel; i++) kiln_tensor_set(x, i, fabs(kiln_tensor_get(x, i))); /* min 0 */
        if (t == 2) for (int64_t i = 0; i < x->numel; i++) kiln_tensor_set(x, i, 0.0); /* max == min */
        one_node o = make_node(KILN_OP_DynamicQuantizeLinear, 1, 3);
        kiln_tensor *out[3];
        ck_assert_int_eq(run(&o, &x, out), KILN_OK);
        float mx = 0, mn = 0;
        for (int64_t i = 0; i < x->numel; i++) mx = fmaxf(mx, (float)kiln_tensor_get(x, i)), mn = fminf(mn, (float)kiln_tensor_get(x, i));
        float sc = (mx == mn ? 1.0f : mx - mn) / 255.0f;
        double zp = rhe(clampd(0.0f - mn / sc, 0, 255));
        expect_close(out[1], (double[]){sc}, 1, 0, 1e-7);
        ck_assert_int_eq(out[1]->rank, 0);
        ck_assert_int_eq(kiln_tensor_get_i64(out[2], 0), (int64_t)zp);
        for (int64_t i = 0; i < x->numel; i++) {
            float q = (float)kiln_tensor_get(x, i) / sc;
            ck_assert_int_eq(kiln_tensor_get_i64(out[0], i), (int64_t)clampd(rhe(q) + zp, 0, 255));
        }
        kiln_tensor *all[4] = {x, out[0], out[1], out[2]};
        free_all(&o, all, 4);
    }
    one_node o = make_node(KILN_OP_DynamicQuantizeLinear, 1, 3);
    kiln_tensor *xi = rand_int(KILN_I32, 2, d, 0, 3);
    expect_fail(&o, &xi, KILN_ERR_SHAPE);
    free_all(&o, &xi, 1);
}
END_TEST

/* ---------------------------------------------------- integer products -- */

/* Naive zero-point matmul of A [B?, M, K] and B [K, N] (B shared across batches). */
static void naive_mm(const kiln_tensor *a, const kiln_tensor *b, const kiln_tensor *az, const kiln_tensor *bz,
                     int64_t batches, int64_t M, int64_t K, int64_t N, int64_t *c)
{
    for (int64_t t = 0; t < batches; t++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                int64_t acc = 0;
                for (int64_t k = 0; k < K; k++) {
                    int64_t av = kiln_tensor_get_i64(a, (t * M + m) * K + k) - (az ? kiln_tensor_get_i64(az, az->numel == 1 ? 0 : m) : 0);
                    int64_t bv = kiln_tensor_get_i64(b, k * N + n) - (bz ? kiln_tensor_get_i64(bz, bz->numel == 1 ? 0 : n) : 0);
                    acc += av * bv;
                }
                c[(t * M + m) * N + n] = acc;
            }
}

START_TEST(matmul_integer_cases)
{
    int64_t ad[3] = {2, 4, 5}, bd[2] = {5, 3}, M = 4, K = 5, N = 3, four = 4, three = 3;
    kiln_tensor *a = rand_int(KILN_U8, 3, ad, 0, 255), *b = rand_int(KILN_I8, 2, bd, -128, 127);
    kiln_tensor *az = rand_int(KILN_U8, 1, &four, 0, 255), *bz = rand_int(KILN_I8, 1, &three, -128, 127);
    one_node o = make_node(KILN_OP_MatMulInteger, 4, 1);
    kiln_tensor *in[4] = {a, b, az, bz};
    kiln_tensor *y = run1(&o, in);
    ck_assert_int_eq(y->dtype, KILN_I32);
    expect_dims(y, 3, (int64_t[]){2, 4, 3});
    int64_t want[24];
    naive_mm(a, b, az, bz, 2, M, K, N, want);
    expect_exact(y, want, 24);
    kiln_tensor_free(y);
    /* no zero points */
    kiln_tensor *in2[4] = {a, b, NULL, NULL};
    y = run1(&o, in2);
    naive_mm(a, b, NULL, NULL, 2, M, K, N, want);
    expect_exact(y, want, 24);
    /* QLinearMatMul on the same operands with scalar scales */
    one_node q = make_node(KILN_OP_QLinearMatMul, 8, 1);
    kiln_tensor *as = scalar(KILN_F32, 0.02), *a0 = scalar(KILN_U8, 120), *bs = scalar(KILN_F32, 0.05), *b0 = scalar(KILN_I8, 3);
    kiln_tensor *ys = scalar(KILN_F32, 0.7), *y0 = scalar(KILN_I8, -5);
    kiln_tensor *qin[8] = {a, as, a0, b, bs, b0, ys, y0};
    kiln_tensor *qy = run1(&q, qin);
    ck_assert_int_eq(qy->dtype, KILN_I8);
    naive_mm(a, b, a0, b0, 2, M, K, N, want);
    double mult = (double)(float)((float)(0.02f * 0.05f) / 0.7f);
    for (int i = 0; i < 24; i++) {
        double v = clampd(rhe((double)want[i] * mult - 5.0), -128, 127);
        ck_assert_int_eq(kiln_tensor_get_i64(qy, i), (int64_t)v);
    }
    /* a zero-sized batch dim broadcasts against 1 to zero */
    kiln_tensor *ea = rand_int(KILN_I8, 3, (int64_t[]){0, 2, 3}, 0, 1), *eb = rand_int(KILN_I8, 3, (int64_t[]){1, 3, 2}, 0, 1);
    kiln_tensor *ein[4] = {ea, eb, NULL, NULL};
    kiln_tensor *ey = run1(&o, ein);
    expect_dims(ey, 3, (int64_t[]){0, 2, 2});
    kiln_tensor_free(ea), kiln_tensor_free(eb), kiln_tensor_free(ey);
    kiln_tensor *all[12] = {a, b, az, bz, y, as, a0, bs, b0, ys, y0, qy};
    kiln_graph_free(q.g);
    free_all(&o, all, 12);
}
END_TEST

START_TEST(matmul_integer_bad_inputs)
{
    int64_t ad[2] = {2, 3}, bd[2] = {4, 2}, two = 2;
    kiln_tensor *a = rand_int(KILN_I8, 2, ad, -3, 3), *b = rand_int(KILN_I8, 2, bd, -3, 3), *af = rand_f32(2, ad, 1);
    kiln_tensor *bad_zp = rand_int(KILN_I8, 1, &two, 0, 1);
    one_node o = make_node(KILN_OP_MatMulInteger, 4, 1);
    kiln_tensor *in1[4] = {a, b, NULL, NULL}; /* K mismatch */
    expect_fail(&o, in1, KILN_ERR_SHAPE);
    kiln_tensor *in2[4] = {af, b, NULL, NULL}; /* float A */
    expect_fail(&o, in2, KILN_ERR_SHAPE);
    kiln_tensor *b2 = rand_int(KILN_I8, 2, (int64_t[]){3, 4}, -3, 3);
    kiln_tensor *in3[4] = {a, b2, NULL, bad_zp}; /* b zero point of 2 values for 4 columns */
    expect_fail(&o, in3, KILN_ERR_SHAPE);
    kiln_tensor *all[5] = {a, b, af, bad_zp, b2};
    free_all(&o, all, 5);
}
END_TEST

/* Naive 2-D grouped convolution of zero-point-adjusted int values (NCHW). */
static void naive_conv_int(const kiln_tensor *x, const kiln_tensor *w, int64_t xz, const kiln_tensor *wz, int64_t group,
                           const int64_t *s, const int64_t *pads, int64_t oh, int64_t ow, int64_t *y)
{
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t M = w->dims[0], Cg = w->dims[1], KH = w->dims[2], KW = w->dims[3], Mg = M / group;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    int64_t acc = 0, wzv = wz ? kiln_tensor_get_i64(wz, wz->numel == 1 ? 0 : m) : 0;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t h = i * s[0] - pads[0] + kh, ww = j * s[1] - pads[1] + kw;
                                if (h < 0 || h >= H || ww < 0 || ww >= W) continue;
                                int64_t xv = kiln_tensor_get_i64(x, ((n * C + (m / Mg) * Cg + c) * H + h) * W + ww) - xz;
                                acc += xv * (kiln_tensor_get_i64(w, ((m * Cg + c) * KH + kh) * KW + kw) - wzv);
                            }
                    y[((n * M + m) * oh + i) * ow + j] = acc;
                }
}

START_TEST(conv_integer_cases)
{
    int64_t xd[4] = {2, 4, 5, 6}, wd[4] = {6, 2, 3, 2}, six = 6, st[2] = {2, 1}, pads[4] = {1, 0, 1, 1};
    kiln_tensor *x = rand_int(KILN_U8, 4, xd, 0, 255), *w = rand_int(KILN_I8, 4, wd, -128, 127);
    kiln_tensor *xz = scalar(KILN_U8, 77), *wz = rand_int(KILN_I8, 1, &six, -10, 10);
    one_node o = make_node(KILN_OP_ConvInteger, 4, 1);
    set_int(&o, "group", 2);
    set_ints(&o, "strides", 2, st);
    set_ints(&o, "pads", 4, pads);
    kiln_tensor *in[4] = {x, w, xz, wz};
    kiln_tensor *y = run1(&o, in);
    int64_t oh = (5 + 2 - 3) / 2 + 1, ow = (6 + 1 - 2) / 1 + 1;
    expect_dims(y, 4, (int64_t[]){2, 6, oh, ow});
    int64_t *want = calloc((size_t)y->numel, sizeof *want);
    naive_conv_int(x, w, 77, wz, 2, st, pads, oh, ow, want);
    expect_exact(y, want, y->numel);
    /* QLinearConv: same accumulators, per-channel w scale, bias, requantized to u8 */
    one_node q = make_node(KILN_OP_QLinearConv, 9, 1);
    set_int(&q, "group", 2);
    set_ints(&q, "strides", 2, st);
    set_ints(&q, "pads", 4, pads);
    kiln_tensor *xs = scalar(KILN_F32, 0.01), *ws = tens(KILN_F32, 1, &six, NULL), *ys = scalar(KILN_F32, 0.3);
    kiln_tensor *yz = scalar(KILN_U8, 100), *bias = tens(KILN_I32, 1, &six, NULL);
    for (int i = 0; i < 6; i++) kiln_tensor_set(ws, i, 0.002 * (i + 1)), kiln_tensor_set_i64(bias, i, 1000 * i - 2500);
    kiln_tensor *qin[9] = {x, xs, xz, w, ws, wz, ys, yz, bias};
    kiln_tensor *qy = run1(&q, qin);
    ck_assert_int_eq(qy->dtype, KILN_U8);
    for (int64_t i = 0; i < qy->numel; i++) {
        int64_t m = (i / (oh * ow)) % 6;
        double mult = (double)(float)((float)(0.01f * (float)kiln_tensor_get(ws, m)) / 0.3f);
        double v = clampd(rhe((double)(want[i] + kiln_tensor_get_i64(bias, m)) * mult + 100), 0, 255);
        ck_assert_int_eq(kiln_tensor_get_i64(qy, i), (int64_t)v);
    }
    free(want);
    /* auto_pad SAME_UPPER (the shared conv geometry): H 5/2 -> 3, pads 1/1; W 6 -> 6, pads 0/1 */
    kiln_node_remove_attr(o.n, "pads");
    ck_assert_int_eq(kiln_node_set_str(o.n, "auto_pad", "SAME_UPPER"), KILN_OK);
    kiln_tensor *ys2 = run1(&o, in);
    expect_dims(ys2, 4, (int64_t[]){2, 6, 3, 6});
    int64_t same_pads[4] = {1, 0, 1, 1};
    want = calloc((size_t)ys2->numel, sizeof *want);
    naive_conv_int(x, w, 77, wz, 2, st, same_pads, 3, 6, want);
    expect_exact(ys2, want, ys2->numel);
    free(want);
    kiln_tensor_free(ys2);
    kiln_node_remove_attr(o.n, "auto_pad");
    set_ints(&o, "pads", 4, pads);
    /* bad: channels do not match W */
    kiln_tensor *w3 = rand_int(KILN_I8, 4, (int64_t[]){6, 3, 3, 2}, -1, 1);
    kiln_tensor *bad[4] = {x, w3, NULL, NULL};
    expect_fail(&o, bad, KILN_ERR_SHAPE);
    kiln_tensor *xzv = rand_int(KILN_U8, 1, (int64_t[]){4}, 0, 1); /* x zero point must be per tensor */
    kiln_tensor *bad2[4] = {x, w, xzv, NULL};
    expect_fail(&o, bad2, KILN_ERR_SHAPE);
    kiln_tensor *all[13] = {x, w, xz, wz, y, xs, ws, ys, yz, bias, qy, w3, xzv};
    kiln_graph_free(q.g);
    free_all(&o, all, 13);
}
END_TEST

/* ---------------------------------------------------------------- CumProd -- */

START_TEST(cumprod_cases)
{
    int64_t d[3] = {2, 3, 4};
    for (int axis = -3; axis < 3; axis++)
        for (int flags = 0; flags < 4; flags++) {
            bool excl = flags & 1, rev = flags & 2;
            kiln_tensor *x = rand_f32(3, d, 2.0), *ax = scalar(KILN_I64, axis);
            one_node o = make_node(KILN_OP_CumProd, 2, 1);
            set_int(&o, "exclusive", excl);
            set_int(&o, "reverse", rev);
            kiln_tensor *in[2] = {x, ax};
            kiln_tensor *y = run1(&o, in);
            int a = axis < 0 ? axis + 3 : axis;
            int64_t str[3] = {12, 4, 1};
            double want[24];
            for (int64_t i = 0; i < 24; i++) {
                int64_t pos = (i / str[a]) % d[a];
                double p = 1.0;
                for (int64_t k = 0; k < d[a]; k++) {
                    bool take = rev ? (excl ? k > pos : k >= pos) : (excl ? k < pos : k <= pos);
                    if (take) p *= kiln_tensor_get(x, i + (k - pos) * str[a]);
                }
                want[i] = p;
            }
            expect_close(y, want, 24, 1e-6, 1e-5);
            kiln_tensor *all[3] = {x, ax, y};
            free_all(&o, all, 3);
        }
    /* int32 products wrap like fixed-width arithmetic */
    int64_t four = 4;
    kiln_tensor *xi = tens(KILN_I32, 1, &four, (double[]){65536, 65536, 3, -1}), *ax = scalar(KILN_I32, 0);
    one_node o = make_node(KILN_OP_CumProd, 2, 1);
    kiln_tensor *in[2] = {xi, ax};
    kiln_tensor *y = run1(&o, in);
    int64_t want[4] = {65536, 0, 0, 0};
    expect_exact(y, want, 4);
    kiln_tensor *bad_ax = scalar(KILN_I64, 1);
    kiln_tensor *bin[2] = {xi, bad_ax};
    expect_fail(&o, bin, KILN_ERR_SHAPE);
    kiln_tensor *all[4] = {xi, ax, y, bad_ax};
    free_all(&o, all, 4);
}
END_TEST

/* ---------------------------------------------------------------- windows -- */

START_TEST(window_cases)
{
    kiln_op ops[3] = {KILN_OP_HannWindow, KILN_OP_HammingWindow, KILN_OP_BlackmanWindow};
    for (int k = 0; k < 3; k++)
        for (int periodic = 0; periodic < 2; periodic++) {
            one_node o = make_node(ops[k], 1, 1);
            set_int(&o, "periodic", periodic);
            if (k == 1) set_int(&o, "output_datatype", KILN_F64);
            kiln_tensor *sz = scalar(KILN_I64, 10);
            kiln_tensor *y = run1(&o, &sz);
            ck_assert_int_eq(y->dtype, k == 1 ? KILN_F64 : KILN_F32);
            expect_dims(y, 1, (int64_t[]){10});
            double N = periodic ? 10 : 9, want[10];
            for (int i = 0; i < 10; i++) {
                double c1 = cos(2 * 3.14159265358979323846 * i / N), c2 = cos(4 * 3.14159265358979323846 * i / N);
                want[i] = k == 0 ? 0.5 - 0.5 * c1 : k == 1 ? 25.0 / 46 - 21.0 / 46 * c1 : 0.42 - 0.5 * c1 + 0.08 * c2;
            }
            expect_close(y, want, 10, 1e-6, 1e-6);
            /* symmetric windows are mirror images */
            if (!periodic)
                for (int i = 0; i < 5; i++) ck_assert(fabs(kiln_tensor_get(y, i) - kiln_tensor_get(y, 9 - i)) < 1e-6);
            kiln_tensor *all[2] = {sz, y};
            free_all(&o, all, 2);
        }
    one_node o = make_node(KILN_OP_HannWindow, 1, 1);
    kiln_tensor *neg = scalar(KILN_I64, -3), *fl = scalar(KILN_F32, 3);
    expect_fail(&o, &neg, KILN_ERR_SHAPE);
    expect_fail(&o, &fl, KILN_ERR_SHAPE);
    kiln_tensor *all[2] = {neg, fl};
    free_all(&o, all, 2);
}
END_TEST

START_TEST(mel_weight_matrix_cases)
{
    one_node o = make_node(KILN_OP_MelWeightMatrix, 5, 1);
    kiln_tensor *in[5] = {scalar(KILN_I64, 8), scalar(KILN_I64, 64), scalar(KILN_I64, 8000), scalar(KILN_F32, 0),
                          scalar(KILN_F32, 4000)};
    kiln_tensor *y = run1(&o, in);
    expect_dims(y, 2, (int64_t[]){33, 8});
    /* triangular filters: every weight in [0, 1], every filter has a peak of 1 */
    for (int64_t m = 0; m < 8; m++) {
        double peak = 0;
        for (int64_t b = 0; b < 33; b++) {
            double v = kiln_tensor_get(y, b * 8 + m);
            ck_assert(v >= 0 && v <= 1);
            peak = fmax(peak, v);
        }
        ck_assert(fabs(peak - 1.0) < 1e-6);
    }
    kiln_tensor_free(in[0]);
    in[0] = scalar(KILN_I64, -1);
    expect_fail(&o, in, KILN_ERR_SHAPE);
    kiln_tensor *all[6] = {in[0], in[1], in[2], in[3], in[4], y};
    free_all(&o, all, 6);
}
END_TEST

/* -------------------------------------------------- CenterCropPad, Col2Im -- */

START_TEST(center_crop_pad_cases)
{
    int64_t xd[3] = {5, 4, 3};
    kiln_tensor *x = rand_f32(3, xd, 1.0), *sh = vec_i64(2, (int64_t[]){2, 7});
    one_node o = make_node(KILN_OP_CenterCropPad, 2, 1);
    set_ints(&o, "axes", 2, (int64_t[]){0, -2});
    kiln_tensor *in[2] = {x, sh};
    kiln_tensor *y = run1(&o, in);
    expect_dims(y, 3, (int64_t[]){2, 7, 3});
    /* crop 5 -> 2 starts at 1; pad 4 -> 7 puts the input at offset 1 */
    for (int64_t a = 0; a < 2; a++)
        for (int64_t b = 0; b < 7; b++)
            for (int64_t c = 0; c < 3; c++) {
                double want = (b >= 1 && b < 5) ? kiln_tensor_get(x, ((a + 1) * 4 + (b - 1)) * 3 + c) : 0.0;
                ck_assert(kiln_tensor_get(y, (a * 7 + b) * 3 + c) == want);
            }
    set_ints(&o, "axes", 2, (int64_t[]){1, -2}); /* the same axis twice */
    expect_fail(&o, in, KILN_ERR_SHAPE);
    kiln_tensor *all[3] = {x, sh, y};
    free_all(&o, all, 3);
}
END_TEST

START_TEST(col2im_cases)
{
    /* non-overlapping blocks (stride = block): Col2Im undoes the block unfolding exactly */
    int64_t N = 2, C = 3, H = 4, W = 6, bh = 2, bw = 3;
    int64_t xd[4] = {N, C, H, W};
    kiln_tensor *img = rand_f32(4, xd, 1.0);
    int64_t L = (H / bh) * (W / bw), cd[3] = {N, C * bh * bw, L};
    kiln_tensor *cols = tens(KILN_F32, 3, cd, NULL);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < bh; i++)
                for (int64_t j = 0; j < bw; j++)
                    for (int64_t l = 0; l < L; l++) {
                        int64_t h = (l / (W / bw)) * bh + i, w = (l % (W / bw)) * bw + j;
                        kiln_tensor_set(cols, ((n * C * bh * bw) + (c * bh * bw + i * bw + j)) * L + l,
                                        kiln_tensor_get(img, ((n * C + c) * H + h) * W + w));
                    }
    kiln_tensor *ims = vec_i64(2, (int64_t[]){H, W}), *bls = vec_i64(2, (int64_t[]){bh, bw});
    one_node o = make_node(KILN_OP_Col2Im, 3, 1);
    set_ints(&o, "strides", 2, (int64_t[]){bh, bw});
    kiln_tensor *in[3] = {cols, ims, bls};
    kiln_tensor *y = run1(&o, in);
    expect_dims(y, 4, xd);
    double *want = malloc(sizeof *want * (size_t)img->numel);
    for (int64_t i = 0; i < img->numel; i++) want[i] = kiln_tensor_get(img, i);
    expect_close(y, want, img->numel, 0, 0);
    free(want);
    /* overlapping 1-D case, stride 1: each pixel sums the blocks covering it */
    kiln_tensor *c1 = tens(KILN_F32, 3, (int64_t[]){1, 2, 3}, (double[]){1, 1, 1, 1, 1, 1});
    kiln_tensor *i1 = vec_i64(2, (int64_t[]){1, 4}), *b1 = vec_i64(2, (int64_t[]){1, 2});
    one_node o1 = make_node(KILN_OP_Col2Im, 3, 1);
    kiln_tensor *in1[3] = {c1, i1, b1};
    kiln_tensor *y1 = run1(&o1, in1);
    expect_close(y1, (double[]){1, 2, 2, 1}, 4, 0, 0);
    /* bad: L does not match the number of blocks */
    kiln_tensor *b2 = vec_i64(2, (int64_t[]){1, 3});
    kiln_tensor *bad[3] = {c1, i1, b2};
    expect_fail(&o1, bad, KILN_ERR_SHAPE);
    kiln_tensor *all[10] = {img, cols, ims, bls, y, c1, i1, b1, y1, b2};
    kiln_graph_free(o1.g);
    free_all(&o, all, 10);
}
END_TEST

/* ---------------------------------------------- GridSample, AffineGrid -- */

START_TEST(grid_sample_identity)
{
    /* AffineGrid with the identity transform samples pixel centers (align_corners 0) or
     * corners-aligned centers (align_corners 1); GridSample then returns the input in every
     * mode and padding */
    const char *modes[3] = {"linear", "nearest", "cubic"}, *pads[3] = {"zeros", "border", "reflection"};
    for (int nd = 2; nd <= 3; nd++)
        for (int align = 0; align < 2; align++) {
            int64_t xd[5] = {2, 3, 4, 5, 3};
            int r = nd + 2;
            kiln_tensor *x = rand_f32(r, xd, 1.0);
            int64_t thd[3] = {2, nd, nd + 1};
            kiln_tensor *th = tens(KILN_F32, 3, thd, NULL);
            for (int b = 0; b < 2; b++)
                for (int i = 0; i < nd; i++) kiln_tensor_set(th, (b * nd + i) * (nd + 1) + i, 1.0);
            kiln_tensor *sz = vec_i64(r, xd);
            one_node ag = make_node(KILN_OP_AffineGrid, 2, 1);
            set_int(&ag, "align_corners", align);
            kiln_tensor *agin[2] = {th, sz};
            kiln_tensor *grid = run1(&ag, agin);
            int64_t gd[5] = {2, xd[2], xd[3], xd[4], nd};
            gd[1 + nd] = nd;
            expect_dims(grid, nd + 2, gd);
            double *want = malloc(sizeof *want * (size_t)x->numel);
            for (int64_t i = 0; i < x->numel; i++) want[i] = kiln_tensor_get(x, i);
            for (int m = 0; m < 3; m++)
                for (int p = 0; p < 3; p++) {
                    if (nd == 3 && m == 2) continue; /* cubic is 2-D only in ONNX */
                    one_node gs = make_node(KILN_OP_GridSample, 2, 1);
                    set_str(&gs, "mode", modes[m]);
                    set_str(&gs, "padding_mode", pads[p]);
                    set_int(&gs, "align_corners", align);
                    kiln_tensor *gin[2] = {x, grid};
                    kiln_tensor *y = run1(&gs, gin);
                    expect_dims(y, r, xd);
                    expect_close(y, want, x->numel, 1e-5, 1e-5);
                    kiln_tensor_free(y);
                    kiln_graph_free(gs.g);
                }
            free(want);
            kiln_tensor *all[4] = {x, th, sz, grid};
            free_all(&ag, all, 4);
        }
}
END_TEST

START_TEST(grid_sample_values)
{
    /* 1 x 1 x 2 x 2 input; sample the center (bilinear average), a point outside (zeros: 0,
     * border: nearest corner) and a half-way point along x */
    int64_t xd[4] = {1, 1, 2, 2}, gd[4] = {1, 1, 3, 2};
    kiln_tensor *x = tens(KILN_F32, 4, xd, (double[]){1, 2, 3, 4});
    kiln_tensor *g = tens(KILN_F32, 4, gd, (double[]){0, 0, -3, -3, 0, -1});
    one_node o = make_node(KILN_OP_GridSample, 2, 1);
    set_int(&o, "align_corners", 1);
    kiln_tensor *in[2] = {x, g};
    kiln_tensor *y = run1(&o, in);
    expect_close(y, (double[]){2.5, 0, 1.5}, 3, 1e-6, 0);
    kiln_tensor_free(y);
    set_str(&o, "padding_mode", "border");
    y = run1(&o, in);
    expect_close(y, (double[]){2.5, 1, 1.5}, 3, 1e-6, 0);
    /* bad: grid's last dim must equal the spatial rank */
    kiln_tensor *g3 = tens(KILN_F32, 4, (int64_t[]){1, 1, 1, 3}, NULL);
    kiln_tensor *bad[2] = {x, g3};
    expect_fail(&o, bad, KILN_ERR_SHAPE);
    set_str(&o, "mode", "area");
    expect_fail(&o, in, KILN_ERR_SHAPE);
    kiln_tensor *all[4] = {x, g, y, g3};
    free_all(&o, all, 4);
}
END_TEST

START_TEST(affine_grid_values)
{
    /* a pure translation by (0.5, -0.25) on a 1 x 1 x 2 x 3 grid, align_corners 1 */
    kiln_tensor *th = tens(KILN_F32, 3, (int64_t[]){1, 2, 3}, (double[]){1, 0, 0.5, 0, 1, -0.25});
    kiln_tensor *sz = vec_i64(4, (int64_t[]){1, 1, 2, 3});
    one_node o = make_node(KILN_OP_AffineGrid, 2, 1);
    set_int(&o, "align_corners", 1);
    kiln_tensor *in[2] = {th, sz};
    kiln_tensor *y = run1(&o, in);
    expect_dims(y, 4, (int64_t[]){1, 2, 3, 2});
    double want[12] = {-0.5, -1.25, 0.5, -1.25, 1.5, -1.25, -0.5, 0.75, 0.5, 0.75, 1.5, 0.75};
    expect_close(y, want, 12, 1e-6, 0);
    kiln_tensor *sz3 = vec_i64(3, (int64_t[]){1, 1, 2});
    kiln_tensor *bad[2] = {th, sz3};
    expect_fail(&o, bad, KILN_ERR_SHAPE);
    kiln_tensor *all[4] = {th, sz, y, sz3};
    free_all(&o, all, 4);
}
END_TEST

/* ----------------------------------------------------------------- Unique -- */

START_TEST(unique_flat_random)
{
    for (int sorted = 0; sorted < 2; sorted++) {
        int64_t d[2] = {5, 7};
        kiln_tensor *x = rand_int(KILN_I32, 2, d, -6, 6);
        one_node o = make_node(KILN_OP_Unique, 1, 4);
        set_int(&o, "sorted", sorted);
        kiln_tensor *out[4];
        ck_assert_int_eq(run(&o, &x, out), KILN_OK);
        /* naive: distinct values in first-occurrence order, then sorted if asked */
        int64_t vals[35], first[35], cnt[35], U = 0;
        for (int64_t i = 0; i < 35; i++) {
            int64_t v = kiln_tensor_get_i64(x, i), k = 0;
            while (k < U && vals[k] != v) k++;
            if (k == U) vals[U] = v, first[U] = i, cnt[U] = 0, U++;
            cnt[k]++;
        }
        if (sorted)
            for (int64_t a = 0; a < U; a++)
                for (int64_t b = a + 1; b < U; b++)
                    if (vals[b] < vals[a]) {
                        int64_t t = vals[a]; vals[a] = vals[b]; vals[b] = t;
                        t = first[a]; first[a] = first[b]; first[b] = t;
                        t = cnt[a]; cnt[a] = cnt[b]; cnt[b] = t;
                    }
        expect_exact(out[0], vals, U);
        expect_exact(out[1], first, U);
        expect_exact(out[3], cnt, U);
        ck_assert_int_eq(out[2]->numel, 35);
        for (int64_t i = 0; i < 35; i++) ck_assert_int_eq(vals[kiln_tensor_get_i64(out[2], i)], kiln_tensor_get_i64(x, i));
        kiln_tensor *all[5] = {x, out[0], out[1], out[2], out[3]};
        free_all(&o, all, 5);
    }
}
END_TEST

START_TEST(unique_axis_and_bad)
{
    /* rows of a 4 x 3 matrix along axis 0; rows 0 and 2 are equal */
    kiln_tensor *x = tens(KILN_F32, 2, (int64_t[]){4, 3}, (double[]){1, 2, 3, 0, 5, 1, 1, 2, 3, 0, 4, 9});
    one_node o = make_node(KILN_OP_Unique, 1, 4);
    set_int(&o, "axis", -2);
    kiln_tensor *out[4];
    ck_assert_int_eq(run(&o, &x, out), KILN_OK);
    expect_dims(out[0], 2, (int64_t[]){3, 3});
    expect_close(out[0], (double[]){0, 4, 9, 0, 5, 1, 1, 2, 3}, 9, 0, 0);
    expect_exact(out[1], (int64_t[]){3, 1, 0}, 3);
    expect_exact(out[2], (int64_t[]){2, 1, 2, 0}, 4);
    expect_exact(out[3], (int64_t[]){1, 1, 2}, 3);
    for (int i = 0; i < 4; i++) kiln_tensor_free(out[i]);
    set_int(&o, "axis", 2);
    expect_fail(&o, &x, KILN_ERR_SHAPE);
    free_all(&o, &x, 1);
}
END_TEST

/* ------------------------------------------------------ NonMaxSuppression -- */

START_TEST(nms_cases)
{
    /* the ONNX spec example: 6 boxes, one class */
    double bv[24] = {0, 0, 1, 1, 0, 0.1, 1, 1.1, 0, -0.1, 1, 0.9, 0, 10, 1, 11, 0, 10.1, 1, 11.1, 0, 100, 1, 101};
    kiln_tensor *boxes = tens(KILN_F32, 3, (int64_t[]){1, 6, 4}, bv);
    kiln_tensor *scores = tens(KILN_F32, 3, (int64_t[]){1, 1, 6}, (double[]){0.9, 0.75, 0.6, 0.95, 0.5, 0.3});
    kiln_tensor *mo = scalar(KILN_I64, 3), *iou = scalar(KILN_F32, 0.5), *sth = scalar(KILN_F32, 0.0);
    one_node o = make_node(KILN_OP_NonMaxSuppression, 5, 1);
    kiln_tensor *in[5] = {boxes, scores, mo, iou, sth};
    kiln_tensor *y = run1(&o, in);
    expect_dims(y, 2, (int64_t[]){3, 3});
    expect_exact(y, (int64_t[]){0, 0, 3, 0, 0, 0, 0, 0, 5}, 9);
    kiln_tensor_free(y);
    /* a high score threshold keeps only boxes above it; no max_output means no boxes */
    kiln_tensor *sth2 = scalar(KILN_F32, 0.8);
    kiln_tensor *in2[5] = {boxes, scores, mo, iou, sth2};
    y = run1(&o, in2);
    expect_exact(y, (int64_t[]){0, 0, 3, 0, 0, 0}, 6);
    kiln_tensor_free(y);
    kiln_tensor *in3[5] = {boxes, scores, NULL, NULL, NULL};
    y = run1(&o, in3);
    ck_assert_int_eq(y->dims[0], 0);
    /* bad: boxes with 3 coordinates */
    kiln_tensor *b3 = tens(KILN_F32, 3, (int64_t[]){1, 6, 3}, NULL);
    kiln_tensor *bad[5] = {b3, scores, mo, iou, sth};
    expect_fail(&o, bad, KILN_ERR_SHAPE);
    kiln_tensor *all[8] = {boxes, scores, mo, iou, sth, sth2, y, b3};
    free_all(&o, all, 8);
}
END_TEST

/* -------------------------------------------------------------- DFT, STFT -- */

/* Naive complex DFT along one axis of [outer, L, inner, 2] data, straight from the sum. */
static void naive_dft(const double *re, const double *im, int64_t n, int64_t kout, bool inverse, double *ore, double *oim)
{
    for (int64_t k = 0; k < kout; k++) {
        double ar = 0, ai = 0;
        for (int64_t j = 0; j < n; j++) {
            double ang = (inverse ? 2 : -2) * 3.14159265358979323846 * (double)j * (double)k / (double)n;
            ar += re[j] * cos(ang) - im[j] * sin(ang);
            ai += re[j] * sin(ang) + im[j] * cos(ang);
        }
        ore[k] = inverse ? ar / n : ar;
        oim[k] = inverse ? ai / n : ai;
    }
}

START_TEST(dft_cases)
{
    int64_t xd[4] = {2, 7, 3, 2};
    kiln_tensor *x = rand_f32(4, xd, 1.0);
    for (int variant = 0; variant < 4; variant++) {
        bool inverse = variant == 1, onesided = variant == 2, padded = variant == 3;
        int64_t n = padded ? 9 : 7, kout = onesided ? n / 2 + 1 : n;
        one_node o = make_node(KILN_OP_DFT, 3, 1);
        set_int(&o, "inverse", inverse);
        set_int(&o, "onesided", onesided);
        kiln_tensor *len = padded ? scalar(KILN_I64, n) : NULL, *ax = scalar(KILN_I64, 1);
        kiln_tensor *in[3] = {x, len, ax};
        kiln_tensor *y = run1(&o, in);
        expect_dims(y, 4, (int64_t[]){2, kout, 3, 2});
        for (int64_t a = 0; a < 2; a++)
            for (int64_t c = 0; c < 3; c++) {
                double re[9] = {0}, im[9] = {0}, ore[9], oim[9];
                for (int64_t j = 0; j < 7; j++) re[j] = kiln_tensor_get(x, ((a * 7 + j) * 3 + c) * 2), im[j] = kiln_tensor_get(x, ((a * 7 + j) * 3 + c) * 2 + 1);
                naive_dft(re, im, n, kout, inverse, ore, oim);
                for (int64_t k = 0; k < kout; k++) {
                    int64_t idx = ((a * kout + k) * 3 + c) * 2;
                    ck_assert(fabs(kiln_tensor_get(y, idx) - ore[k]) < 1e-5);
                    ck_assert(fabs(kiln_tensor_get(y, idx + 1) - oim[k]) < 1e-5);
                }
            }
        kiln_tensor *all[3] = {len, ax, y};
        free_all(&o, all, 3);
    }
    /* identity: irfft(rfft(real x)) == x (even length 8 along the default axis -2) */
    int64_t rd[3] = {3, 8, 1};
    kiln_tensor *xr = rand_f32(3, rd, 1.0);
    one_node f = make_node(KILN_OP_DFT, 1, 1), b = make_node(KILN_OP_DFT, 1, 1);
    set_int(&f, "onesided", 1);
    set_int(&b, "onesided", 1);
    set_int(&b, "inverse", 1);
    kiln_tensor *spec = run1(&f, &xr);
    expect_dims(spec, 3, (int64_t[]){3, 5, 2});
    kiln_tensor *back = run1(&b, &spec);
    expect_dims(back, 3, rd);
    double *want = malloc(sizeof *want * 24);
    for (int i = 0; i < 24; i++) want[i] = kiln_tensor_get(xr, i);
    expect_close(back, want, 24, 1e-5, 1e-5);
    free(want);
    /* bad: the axis may not be the real/imaginary dim */
    one_node o = make_node(KILN_OP_DFT, 3, 1);
    kiln_tensor *ax_last = scalar(KILN_I64, -1);
    kiln_tensor *bad[3] = {x, NULL, ax_last};
    expect_fail(&o, bad, KILN_ERR_SHAPE);
    kiln_tensor *x3 = rand_f32(3, (int64_t[]){2, 4, 3}, 1.0);
    kiln_tensor *bad2[3] = {x3, NULL, NULL};
    expect_fail(&o, bad2, KILN_ERR_SHAPE);
    kiln_tensor *all[7] = {x, xr, spec, back, ax_last, x3, NULL};
    kiln_graph_free(f.g);
    kiln_graph_free(b.g);
    free_all(&o, all, 6);
}
END_TEST

START_TEST(stft_cases)
{
    int64_t xd[3] = {2, 20, 1}, fl = 8, step = 3, frames = 1 + (20 - 8) / 3, bins = 8 / 2 + 1;
    kiln_tensor *x = rand_f32(3, xd, 1.0), *st = scalar(KILN_I64, step), *win = rand_f32(1, &fl, 1.0), *flv = scalar(KILN_I64, fl);
    one_node o = make_node(KILN_OP_STFT, 4, 1);
    kiln_tensor *in[4] = {x, st, win, flv};
    kiln_tensor *y = run1(&o, in);
    expect_dims(y, 4, (int64_t[]){2, frames, bins, 2});
    for (int64_t b = 0; b < 2; b++)
        for (int64_t f = 0; f < frames; f++) {
            double re[8], im[8] = {0}, ore[8], oim[8];
            for (int64_t j = 0; j < 8; j++) re[j] = kiln_tensor_get(x, b * 20 + f * step + j) * kiln_tensor_get(win, j);
            naive_dft(re, im, 8, bins, false, ore, oim);
            for (int64_t k = 0; k < bins; k++) {
                int64_t idx = ((b * frames + f) * bins + k) * 2;
                ck_assert(fabs(kiln_tensor_get(y, idx) - ore[k]) < 1e-5 && fabs(kiln_tensor_get(y, idx + 1) - oim[k]) < 1e-5);
            }
        }
    kiln_tensor *fl_bad = scalar(KILN_I64, 6); /* disagrees with the window */
    kiln_tensor *bad[4] = {x, st, win, fl_bad};
    expect_fail(&o, bad, KILN_ERR_SHAPE);
    kiln_tensor *st0 = scalar(KILN_I64, 0);
    kiln_tensor *bad2[4] = {x, st0, win, flv};
    expect_fail(&o, bad2, KILN_ERR_SHAPE);
    kiln_tensor *all[7] = {x, st, win, flv, y, fl_bad, st0};
    free_all(&o, all, 7);
}
END_TEST

/* ------------------------------------------------------ MaxUnpool, RoiAlign -- */

START_TEST(max_unpool_cases)
{
    /* 2x2 pooled values with indices into the 4x4 unpooled plane */
    kiln_tensor *x = tens(KILN_F32, 4, (int64_t[]){1, 1, 2, 2}, (double[]){5, 6, 7, 8});
    kiln_tensor *ix = tens(KILN_I64, 4, (int64_t[]){1, 1, 2, 2}, (double[]){0, 7, 9, 15});
    one_node o = make_node(KILN_OP_MaxUnpool, 3, 1);
    set_ints(&o, "kernel_shape", 2, (int64_t[]){2, 2});
    set_ints(&o, "strides", 2, (int64_t[]){2, 2});
    kiln_tensor *in[3] = {x, ix, NULL};
    kiln_tensor *y = run1(&o, in);
    expect_dims(y, 4, (int64_t[]){1, 1, 4, 4});
    double want[16] = {5, 0, 0, 0, 0, 0, 0, 6, 0, 7, 0, 0, 0, 0, 0, 8};
    expect_close(y, want, 16, 0, 0);
    kiln_tensor_free(y);
    /* a larger output_shape keeps the unpooled plane in its top-left corner */
    kiln_tensor *os = vec_i64(4, (int64_t[]){1, 1, 5, 5});
    kiln_tensor *in2[3] = {x, ix, os};
    y = run1(&o, in2);
    expect_dims(y, 4, (int64_t[]){1, 1, 5, 5});
    ck_assert(kiln_tensor_get(y, 1 * 5 + 3) == 6 && kiln_tensor_get(y, 3 * 5 + 3) == 8);
    kiln_tensor *ix_bad = tens(KILN_I64, 4, (int64_t[]){1, 1, 2, 2}, (double[]){0, 7, 9, 16});
    kiln_tensor *bad[3] = {x, ix_bad, NULL};
    expect_fail(&o, bad, KILN_ERR_SHAPE);
    kiln_tensor *all[5] = {x, ix, y, os, ix_bad};
    free_all(&o, all, 5);
}
END_TEST

START_TEST(roi_align_cases)
{
    /* a constant image: every average is the constant; a ramp along x: averages are linear */
    int64_t xd[4] = {2, 2, 6, 8};
    kiln_tensor *x = tens(KILN_F32, 4, xd, NULL);
    for (int64_t i = 0; i < x->numel; i++) kiln_tensor_set(x, i, (i / 96) == 0 ? 3.0 : (double)(i % 8));
    kiln_tensor *rois = tens(KILN_F32, 2, (int64_t[]){2, 4}, (double[]){1, 1, 5, 4, 0.5, 0.5, 6.5, 5.5});
    kiln_tensor *bi = tens(KILN_I64, 1, (int64_t[]){2}, (double[]){0, 1});
    one_node o = make_node(KILN_OP_RoiAlign, 3, 1);
    set_int(&o, "output_height", 2);
    set_int(&o, "output_width", 3);
    set_int(&o, "sampling_ratio", 2);
    kiln_tensor *in[3] = {x, rois, bi};
    kiln_tensor *y = run1(&o, in);
    expect_dims(y, 4, (int64_t[]){2, 2, 2, 3});
    for (int i = 0; i < 12; i++) ck_assert(fabs(kiln_tensor_get(y, i) - 3.0) < 1e-5);
    /* roi 1 (half_pixel): x from 0 to 6 in 3 bins of width 2, samples at bin quarters */
    for (int c = 0; c < 2; c++)
        for (int ph = 0; ph < 2; ph++)
            for (int pw = 0; pw < 3; pw++)
                ck_assert(fabs(kiln_tensor_get(y, 12 + (c * 2 + ph) * 3 + pw) - (2.0 * pw + 1.0)) < 1e-5);
    kiln_tensor *bi_bad = tens(KILN_I64, 1, (int64_t[]){2}, (double[]){0, 2});
    kiln_tensor *bad[3] = {x, rois, bi_bad};
    expect_fail(&o, bad, KILN_ERR_SHAPE);
    set_str(&o, "mode", "median");
    expect_fail(&o, in, KILN_ERR_SHAPE);
    kiln_tensor *all[5] = {x, rois, bi, y, bi_bad};
    free_all(&o, all, 5);
}
END_TEST

/* Shape inference with unknown data: data-dependent dims stay -1, known dims and symbols flow. */
START_TEST(infer_unknown_data)
{
    kiln_graph *g = kiln_graph_new();
    int xv = kiln_graph_add_value(g, "x"), yv[4];
    for (int i = 0; i < 4; i++) yv[i] = kiln_graph_add_value(g, NULL);
    int32_t s = kiln_graph_symbol(g, "N");
    kiln_value_set(&g->values[xv], KILN_F32, 2, (int64_t[]){-1, 4});
    g->values[xv].sym[0] = s;
    int id = kiln_graph_add_node(g, KILN_OP_Unique, "u", &xv, 1, yv, 4);
    ck_assert_int_ge(id, 0);
    ck_assert_int_eq(kiln_node_set_int(&g->nodes[id], "axis", 0), KILN_OK);
    ck_assert_int_eq(kiln_graph_infer(g), KILN_OK);
    ck_assert_int_eq(g->values[yv[0]].dims[0], -1);
    ck_assert_int_eq(g->values[yv[0]].dims[1], 4);
    ck_assert_int_eq(g->values[yv[2]].sym[0], s); /* inverse indices: one per input row */
    kiln_graph_free(g);
}
END_TEST

static Suite *quant_suite(void)
{
    Suite *s = suite_create("ops_quant");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, quantize_per_tensor_axis_block);
    tcase_add_test(tc, quantize_ties_dtypes_and_defaults);
    tcase_add_test(tc, quantize_bad_inputs);
    tcase_add_test(tc, dynamic_quantize);
    tcase_add_test(tc, matmul_integer_cases);
    tcase_add_test(tc, matmul_integer_bad_inputs);
    tcase_add_test(tc, conv_integer_cases);
    tcase_add_test(tc, cumprod_cases);
    tcase_add_test(tc, window_cases);
    tcase_add_test(tc, mel_weight_matrix_cases);
    tcase_add_test(tc, center_crop_pad_cases);
    tcase_add_test(tc, col2im_cases);
    tcase_add_test(tc, grid_sample_identity);
    tcase_add_test(tc, grid_sample_values);
    tcase_add_test(tc, affine_grid_values);
    tcase_add_test(tc, unique_flat_random);
    tcase_add_test(tc, unique_axis_and_bad);
    tcase_add_test(tc, nms_cases);
    tcase_add_test(tc, dft_cases);
    tcase_add_test(tc, stft_cases);
    tcase_add_test(tc, max_unpool_cases);
    tcase_add_test(tc, roi_align_cases);
    tcase_add_test(tc, infer_unknown_data);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(quant_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
