/* check_ops_nn.c — Conv/ConvTranspose/pools/Gemm/MatMul/Einsum against naive loops written
 * here (independently of ir/ops_nn.c), known values from the ONNX spec, and math identities.
 * Inputs are seeded pseudo-random. f32 results are compared with |a-e| <= 1e-4 + 1e-4|e|
 * (the kernel accumulates in float, the naive loops in double); f64 with 1e-12. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_geom.h"
#include "ir.h"

/* ---------------------------------------------------------------- helpers -- */

static uint64_t rng_state = 12345;

static double rnd(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / (double)(1ULL << 53) * 2.0 - 1.0;
}

static kiln_tensor *rand_tensor(kiln_dtype dt, int rank, const int64_t *dims)
{
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->numel; i++) kiln_tensor_set(t, i, kiln_dtype_is_float(dt) ? rnd() : (double)(int)(rnd() * 10));
    return t;
}

/* A one-node graph; attributes go on g->nodes[0]. */
typedef struct one_node {
    kiln_graph *g;
    kiln_node *n;
} one_node;

static one_node make_node(kiln_op op, int n_in, int n_out)
{
    one_node r;
    r.g = kiln_graph_new();
    ck_assert_ptr_nonnull(r.g);
    int ins[8], outs[8];
    for (int i = 0; i < n_in; i++) ins[i] = kiln_graph_add_value(r.g, NULL);
    for (int i = 0; i < n_out; i++) outs[i] = kiln_graph_add_value(r.g, NULL);
    int id = kiln_graph_add_node(r.g, op, "t", ins, n_in, outs, n_out);
    ck_assert_int_ge(id, 0);
    r.n = &r.g->nodes[id];
    return r;
}

static void set_ints(one_node *o, const char *name, int count, const int64_t *v)
{
    ck_assert_int_eq(kiln_node_set_ints(o->n, name, v, count), KILN_OK);
}

/* Runs the node; the single output is returned (caller frees). */
static kiln_tensor *run1(one_node *o, kiln_tensor **in, int n_in)
{
    kiln_tensor *out[2] = {NULL, NULL};
    kiln_status st = kiln_eval_node(o->n, in, n_in, out, o->n->n_outputs);
    ck_assert_msg(st == KILN_OK, "eval failed: %s", kiln_last_error());
    kiln_tensor_free(out[1]);
    return out[0];
}

static kiln_status run_status(one_node *o, kiln_tensor **in, int n_in)
{
    kiln_tensor *out[2] = {NULL, NULL};
    kiln_status st = kiln_eval_node(o->n, in, n_in, out, o->n->n_outputs);
    kiln_tensor_free(out[0]);
    kiln_tensor_free(out[1]);
    return st;
}

static void expect_close(const kiln_tensor *t, const double *want, int64_t count, double atol, double rtol)
{
    ck_assert_int_eq(t->numel, count);
    for (int64_t i = 0; i < count; i++) {
        double a = kiln_tensor_get(t, i), e = want[i];
        ck_assert_msg(fabs(a - e) <= atol + rtol * fabs(e), "element %lld: got %.9g want %.9g", (long long)i, a, e);
    }
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

/* ------------------------------------------------------------------ Conv -- */

/* Naive 2-D grouped convolution (NCHW), directly from the definition. */
static void naive_conv2d(const kiln_tensor *x, const kiln_tensor *w, const kiln_tensor *b, int64_t group,
                         const int64_t *s, const int64_t *d, const int64_t *pads, int64_t oh, int64_t ow, double *y)
{
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t M = w->dims[0], Cg = w->dims[1], KH = w->dims[2], KW = w->dims[3], Mg = M / group;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double acc = b ? kiln_tensor_get(b, m) : 0.0;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t h = i * s[0] - pads[0] + kh * d[0], ww = j * s[1] - pads[1] + kw * d[1];
                                if (h < 0 || h >= H || ww < 0 || ww >= W) continue;
                                int64_t ch = (m / Mg) * Cg + c;
                                acc += kiln_tensor_get(x, ((n * C + ch) * H + h) * W + ww) *
                                       kiln_tensor_get(w, ((m * Cg + c) * KH + kh) * KW + kw);
                            }
                    y[((n * M + m) * oh + i) * ow + j] = acc;
                }
}

static void conv2d_case(kiln_dtype dt, int64_t N, int64_t C, int64_t H, int64_t W, int64_t M, int64_t group,
                        int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t dh, int64_t dw, const int64_t *pads,
                        bool bias, double tol)
{
    int64_t xd[4] = {N, C, H, W}, wd[4] = {M, C / group, KH, KW}, bd[1] = {M};
    kiln_tensor *in[3] = {rand_tensor(dt, 4, xd), rand_tensor(dt, 4, wd), bias ? rand_tensor(dt, 1, bd) : NULL};
    one_node o = make_node(KILN_OP_Conv, bias ? 3 : 2, 1);
    int64_t s[2] = {sh, sw}, d[2] = {dh, dw};
    set_ints(&o, "strides", 2, s);
    set_ints(&o, "dilations", 2, d);
    set_ints(&o, "pads", 4, pads);
    ck_assert_int_eq(kiln_node_set_int(o.n, "group", group), KILN_OK);
    kiln_tensor *y = run1(&o, in, bias ? 3 : 2);
    int64_t oh = (H + pads[0] + pads[2] - ((KH - 1) * dh + 1)) / sh + 1;
    int64_t ow = (W + pads[1] + pads[3] - ((KW - 1) * dw + 1)) / sw + 1;
    int64_t yd[4] = {N, M, oh, ow};
    expect_dims(y, 4, yd);
    double *want = malloc(sizeof(double) * (size_t)y->numel);
    naive_conv2d(in[0], in[1], in[2], group, s, d, pads, oh, ow, want);
    expect_close(y, want, y->numel, tol, tol);
    free(want);
    kiln_tensor_free(y);
    free_all(&o, in, 3);
}

START_TEST(conv2d_f32_shapes)
{
    const int64_t p0[4] = {0, 0, 0, 0}, p1[4] = {1, 1, 1, 1}, pa[4] = {1, 0, 2, 1};
    conv2d_case(KILN_F32, 2, 3, 9, 8, 5, 1, 3, 3, 1, 1, 1, 1, p1, true, 1e-4);  /* plain, padded */
    conv2d_case(KILN_F32, 1, 4, 11, 7, 6, 2, 3, 2, 2, 1, 1, 2, pa, true, 1e-4); /* groups, strides, dilations */
    conv2d_case(KILN_F32, 1, 6, 5, 5, 6, 6, 3, 3, 1, 1, 1, 1, p1, false, 1e-4); /* depthwise */
    conv2d_case(KILN_F32, 2, 8, 6, 6, 9, 1, 1, 1, 1, 1, 1, 1, p0, true, 1e-4);  /* pointwise */
    /* K = 40*9 = 360 > one K block and 300 output channels > one M block */
    conv2d_case(KILN_F32, 1, 40, 14, 13, 300, 1, 3, 3, 1, 1, 1, 1, p1, true, 1e-4);
}
END_TEST

START_TEST(conv2d_other_dtypes)
{
    const int64_t p1[4] = {1, 1, 1, 1};
    conv2d_case(KILN_F64, 2, 4, 7, 6, 4, 2, 3, 3, 2, 1, 1, 1, p1, true, 1e-12);
    conv2d_case(KILN_F16, 1, 3, 6, 6, 4, 1, 3, 3, 1, 1, 1, 1, p1, true, 1e-2);
}
END_TEST

/* Conv over 3-D data whose depth and kernel depth are 1 equals the 2-D conv, and the f64
 * path (direct loops) agrees with the f32 path (im2col + blocked GEMM) on a 3-D case. */
START_TEST(conv3d_and_1d)
{
    int64_t xd[5] = {2, 4, 5, 6, 7}, wd[5] = {3, 4, 2, 3, 2}, bd[1] = {3};
    kiln_tensor *x64 = rand_tensor(KILN_F64, 5, xd), *w64 = rand_tensor(KILN_F64, 5, wd), *b64 = rand_tensor(KILN_F64, 1, bd);
    kiln_tensor *x32 = kiln_tensor_new(KILN_F32, 5, xd), *w32 = kiln_tensor_new(KILN_F32, 5, wd), *b32 = kiln_tensor_new(KILN_F32, 1, bd);
    for (int64_t i = 0; i < x64->numel; i++) kiln_tensor_set(x32, i, kiln_tensor_get(x64, i));
    for (int64_t i = 0; i < w64->numel; i++) kiln_tensor_set(w32, i, kiln_tensor_get(w64, i));
    for (int64_t i = 0; i < b64->numel; i++) kiln_tensor_set(b32, i, kiln_tensor_get(b64, i));
    int64_t s[3] = {1, 2, 1}, d[3] = {2, 1, 1}, pads[6] = {1, 0, 1, 0, 1, 2};
    kiln_tensor *ys[2];
    for (int k = 0; k < 2; k++) {
        one_node o = make_node(KILN_OP_Conv, 3, 1);
        set_ints(&o, "strides", 3, s);
        set_ints(&o, "dilations", 3, d);
        set_ints(&o, "pads", 6, pads);
        kiln_tensor *in[3] = {k ? x32 : x64, k ? w32 : w64, k ? b32 : b64};
        ys[k] = run1(&o, in, 3);
        kiln_graph_free(o.g);
    }
    ck_assert_int_eq(ys[0]->numel, ys[1]->numel);
    double *want = malloc(sizeof(double) * (size_t)ys[0]->numel);
    for (int64_t i = 0; i < ys[0]->numel; i++) want[i] = kiln_tensor_get(ys[0], i);
    expect_close(ys[1], want, ys[0]->numel, 1e-4, 1e-4);
    free(want);
    kiln_tensor *all[8] = {x64, w64, b64, x32, w32, b32, ys[0], ys[1]};
    for (int i = 0; i < 8; i++) kiln_tensor_free(all[i]);

    /* 1-D conv = 2-D conv with H = 1 */
    int64_t x1[3] = {1, 2, 9}, w1[3] = {3, 2, 3};
    one_node o = make_node(KILN_OP_Conv, 2, 1);
    int64_t p1[2] = {2, 1};
    set_ints(&o, "pads", 2, p1);
    kiln_tensor *in[2] = {rand_tensor(KILN_F32, 3, x1), rand_tensor(KILN_F32, 3, w1)};
    kiln_tensor *y = run1(&o, in, 2);
    int64_t yd[3] = {1, 3, 10};
    expect_dims(y, 3, yd);
    int64_t x2d[4] = {1, 2, 1, 9}, w2d[4] = {3, 2, 1, 3}, s2[2] = {1, 1}, d2[2] = {1, 1}, p2[4] = {0, 2, 0, 1};
    kiln_tensor *x2 = kiln_tensor_clone(in[0]), *w2 = kiln_tensor_clone(in[1]);
    x2->rank = 4;
    memcpy(x2->dims, x2d, sizeof x2d);
    w2->rank = 4;
    memcpy(w2->dims, w2d, sizeof w2d);
    double want1[30];
    naive_conv2d(x2, w2, NULL, 1, s2, d2, p2, 1, 10, want1);
    expect_close(y, want1, 30, 1e-5, 1e-5);
    kiln_tensor_free(x2);
    kiln_tensor_free(w2);
    kiln_tensor_free(y);
    free_all(&o, in, 2);
}
END_TEST

START_TEST(conv_auto_pad)
{
    /* SAME_UPPER, stride 2 on 7x8: out = ceil(in/2); SAME_LOWER with even total pad */
    int64_t xd[4] = {1, 1, 7, 8}, wd[4] = {1, 1, 3, 3}, st[2] = {2, 2};
    kiln_tensor *in[2] = {rand_tensor(KILN_F32, 4, xd), rand_tensor(KILN_F32, 4, wd)};
    one_node o = make_node(KILN_OP_Conv, 2, 1);
    set_ints(&o, "strides", 2, st);
    kiln_node_set_str(o.n, "auto_pad", "SAME_UPPER");
    kiln_tensor *y = run1(&o, in, 2);
    int64_t yd[4] = {1, 1, 4, 4};
    expect_dims(y, 4, yd);
    /* total pad: H (4-1)*2+3-7 = 2 -> 1/1; W (4-1)*2+3-8 = 1 -> 0 begin, 1 end */
    int64_t s[2] = {2, 2}, d[2] = {1, 1}, pads[4] = {1, 0, 1, 1};
    double want[16];
    naive_conv2d(in[0], in[1], NULL, 1, s, d, pads, 4, 4, want);
    expect_close(y, want, 16, 1e-5, 1e-5);
    kiln_tensor_free(y);
    kiln_node_set_str(o.n, "auto_pad", "SAME_LOWER");
    y = run1(&o, in, 2);
    int64_t pads_l[4] = {1, 1, 1, 0};
    naive_conv2d(in[0], in[1], NULL, 1, s, d, pads_l, 4, 4, want);
    expect_close(y, want, 16, 1e-5, 1e-5);
    kiln_tensor_free(y);
    free_all(&o, in, 2);
}
END_TEST

START_TEST(conv_bad_inputs)
{
    int64_t xd[4] = {1, 3, 5, 5}, wd[4] = {2, 2, 3, 3}, w_ok[4] = {2, 3, 3, 3}, xi[4] = {1, 3, 5, 5};
    /* channel mismatch */
    kiln_tensor *in[2] = {rand_tensor(KILN_F32, 4, xd), rand_tensor(KILN_F32, 4, wd)};
    one_node o = make_node(KILN_OP_Conv, 2, 1);
    ck_assert_int_eq(run_status(&o, in, 2), KILN_ERR_SHAPE);
    kiln_tensor_free(in[1]);
    in[1] = rand_tensor(KILN_F32, 4, w_ok);
    /* kernel larger than the input */
    int64_t pads[4] = {0, 0, 0, 0}, big[2] = {9, 9};
    set_ints(&o, "kernel_shape", 2, big);
    ck_assert_int_eq(run_status(&o, in, 2), KILN_ERR_SHAPE);
    kiln_node_remove_attr(o.n, "kernel_shape");
    /* wrong pads count, bad strides, bad group, bad auto_pad */
    set_ints(&o, "pads", 2, pads);
    ck_assert_int_eq(run_status(&o, in, 2), KILN_ERR_SHAPE);
    set_ints(&o, "pads", 4, pads);
    int64_t zero_stride[2] = {0, 1};
    set_ints(&o, "strides", 2, zero_stride);
    ck_assert_int_eq(run_status(&o, in, 2), KILN_ERR_SHAPE);
    kiln_node_remove_attr(o.n, "strides");
    kiln_node_set_int(o.n, "group", 2);
    ck_assert_int_eq(run_status(&o, in, 2), KILN_ERR_SHAPE);
    kiln_node_set_int(o.n, "group", 1);
    kiln_node_set_str(o.n, "auto_pad", "SIDEWAYS");
    ck_assert_int_eq(run_status(&o, in, 2), KILN_ERR_SHAPE);
    kiln_node_set_str(o.n, "auto_pad", "NOTSET");
    ck_assert_int_eq(run_status(&o, in, 2), KILN_OK);
    /* integer input is unsupported; dtype mismatch is a shape error */
    kiln_tensor *xint = rand_tensor(KILN_I32, 4, xi);
    kiln_tensor *bad[2] = {xint, in[1]};
    ck_assert_int_eq(run_status(&o, bad, 2), KILN_ERR_UNSUPPORTED);
    kiln_tensor *x64 = rand_tensor(KILN_F64, 4, xi);
    bad[0] = x64;
    ck_assert_int_eq(run_status(&o, bad, 2), KILN_ERR_SHAPE);
    kiln_tensor_free(xint);
    kiln_tensor_free(x64);
    free_all(&o, in, 2);
}
END_TEST

/* ------------------------------------------------------- ConvTranspose -- */

/* Direct gather form: y[o] sums x[i] * w[kk] over taps with i*s - p + kk*d == o. */
static void naive_convt2d(const kiln_tensor *x, const kiln_tensor *w, int64_t group, const int64_t *s,
                          const int64_t *pads, int64_t OH, int64_t OW, double *y)
{
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t Mg = w->dims[1], KH = w->dims[2], KW = w->dims[3], M = Mg * group, Cg = C / group;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = 0;
                    int64_t gi = m / Mg;
                    for (int64_t c = gi * Cg; c < (gi + 1) * Cg; c++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t th = oh + pads[0] - kh, tw = ow + pads[1] - kw;
                                if (th < 0 || tw < 0 || th % s[0] || tw % s[1]) continue;
                                int64_t ih = th / s[0], iw = tw / s[1];
                                if (ih >= H || iw >= W) continue;
                                acc += kiln_tensor_get(x, ((n * C + c) * H + ih) * W + iw) *
                                       kiln_tensor_get(w, ((c * Mg + m % Mg) * KH + kh) * KW + kw);
                            }
                    y[((n * M + m) * OH + oh) * OW + ow] = acc;
                }
}

START_TEST(convtranspose_cases)
{
    int64_t xd[4] = {2, 4, 3, 4}, wd[4] = {4, 3, 3, 2};
    kiln_tensor *in[2] = {rand_tensor(KILN_F32, 4, xd), rand_tensor(KILN_F32, 4, wd)};
    one_node o = make_node(KILN_OP_ConvTranspose, 2, 1);
    int64_t s[2] = {3, 2}, pads[4] = {1, 0, 1, 1}, opad[2] = {1, 0};
    set_ints(&o, "strides", 2, s);
    set_ints(&o, "pads", 4, pads);
    set_ints(&o, "output_padding", 2, opad);
    kiln_node_set_int(o.n, "group", 2);
    kiln_tensor *y = run1(&o, in, 2);
    /* out = s*(in-1) + opad + k - pads */
    int64_t OH = 3 * 2 + 1 + 3 - 2, OW = 2 * 3 + 0 + 2 - 1;
    int64_t yd[4] = {2, 6, OH, OW};
    expect_dims(y, 4, yd);
    double *want = malloc(sizeof(double) * (size_t)y->numel);
    naive_convt2d(in[0], in[1], 2, s, pads, OH, OW, want);
    expect_close(y, want, y->numel, 1e-5, 1e-5);
    kiln_tensor_free(y);
    /* output_shape: pads derived (total = natural - wanted; NOTSET puts the odd one first) */
    kiln_node_remove_attr(o.n, "pads");
    int64_t oshape[2] = {9, 8};
    set_ints(&o, "output_shape", 2, oshape);
    y = run1(&o, in, 2);
    int64_t yd2[4] = {2, 6, 9, 8};
    expect_dims(y, 4, yd2);
    int64_t natural_h = 3 * 2 + 1 + 3, natural_w = 2 * 3 + 0 + 2;
    int64_t th = natural_h - 9, tw = natural_w - 8;
    int64_t pads2[4] = {th - th / 2, tw - tw / 2, th / 2, tw / 2};
    double *want2 = malloc(sizeof(double) * (size_t)y->numel);
    naive_convt2d(in[0], in[1], 2, s, pads2, 9, 8, want2);
    expect_close(y, want2, y->numel, 1e-5, 1e-5);
    free(want);
    free(want2);
    kiln_tensor_free(y);
    /* bad: W's first dim must equal C */
    int64_t wbad[4] = {3, 3, 3, 2};
    kiln_tensor *wb = rand_tensor(KILN_F32, 4, wbad);
    kiln_tensor *bad[2] = {in[0], wb};
    ck_assert_int_eq(run_status(&o, bad, 2), KILN_ERR_SHAPE);
    kiln_tensor_free(wb);
    free_all(&o, in, 2);
}
END_TEST

/* ------------------------------------------------------------------ pools -- */

START_TEST(pool_spec_examples)
{
    /* ONNX spec: AveragePool 3x3 stride 2 ceil_mode on 4x4 (1..16) -> [[6, 7.5], [12, 13.5]] */
    int64_t xd[4] = {1, 1, 4, 4}, k[2] = {3, 3}, s[2] = {2, 2};
    kiln_tensor *x = kiln_tensor_new(KILN_F32, 4, xd);
    for (int i = 0; i < 16; i++) kiln_tensor_set(x, i, i + 1);
    one_node o = make_node(KILN_OP_AveragePool, 1, 1);
    set_ints(&o, "kernel_shape", 2, k);
    set_ints(&o, "strides", 2, s);
    kiln_node_set_int(o.n, "ceil_mode", 1);
    kiln_tensor *y = run1(&o, &x, 1);
    double want[4] = {6, 7.5, 12, 13.5};
    expect_close(y, want, 4, 1e-6, 0);
    kiln_tensor_free(y);
    kiln_graph_free(o.g);
    /* MaxPool same setting -> [[11, 12], [15, 16]], indices row-major and column-major */
    one_node m = make_node(KILN_OP_MaxPool, 1, 2);
    set_ints(&m, "kernel_shape", 2, k);
    set_ints(&m, "strides", 2, s);
    kiln_node_set_int(m.n, "ceil_mode", 1);
    kiln_tensor *out[2];
    ck_assert_int_eq(kiln_eval_node(m.n, &x, 1, out, 2), KILN_OK);
    double wmax[4] = {11, 12, 15, 16}, widx[4] = {10, 11, 14, 15}, widx_col[4] = {6, 7, 10, 11};
    expect_close(out[0], wmax, 4, 0, 0);
    ck_assert_int_eq(out[1]->dtype, KILN_I64);
    expect_close(out[1], widx, 4, 0, 0);
    kiln_tensor_free(out[0]);
    kiln_tensor_free(out[1]);
    kiln_node_set_int(m.n, "storage_order", 1);
    ck_assert_int_eq(kiln_eval_node(m.n, &x, 1, out, 2), KILN_OK);
    /* column-major: index = h + w * H */
    for (int i = 0; i < 4; i++) {
        int64_t rm = (int64_t)widx[i];
        widx_col[i] = (double)(rm / 4 + (rm % 4) * 4);
    }
    expect_close(out[1], widx_col, 4, 0, 0);
    kiln_tensor_free(out[0]);
    kiln_tensor_free(out[1]);
    kiln_graph_free(m.g);
    kiln_tensor_free(x);
}
END_TEST

/* Naive 2-D pooling with explicit pads (floor mode). kind 0 avg, 1 max, 2 lp(p). */
static void naive_pool2d(const kiln_tensor *x, int kind, const int64_t *k, const int64_t *s, const int64_t *pads,
                         bool cip, double p, int64_t OH, int64_t OW, double *y)
{
    int64_t NC = x->dims[0] * x->dims[1], H = x->dims[2], W = x->dims[3];
    for (int64_t c = 0; c < NC; c++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++) {
                double acc = kind == 1 ? -INFINITY : 0;
                int64_t cnt = 0, cnt_pad = 0;
                for (int64_t a = 0; a < k[0]; a++)
                    for (int64_t b = 0; b < k[1]; b++) {
                        int64_t h = i * s[0] - pads[0] + a, w = j * s[1] - pads[1] + b;
                        if (h < H + pads[2] && w < W + pads[3]) cnt_pad++;
                        if (h < 0 || w < 0 || h >= H || w >= W) continue;
                        double v = kiln_tensor_get(x, (c * H + h) * W + w);
                        cnt++;
                        if (kind == 0) acc += v;
                        else if (kind == 1) acc = v > acc ? v : acc;
                        else acc += pow(fabs(v), p);
                    }
                y[(c * OH + i) * OW + j] = kind == 0 ? acc / (double)(cip ? cnt_pad : cnt) : kind == 2 ? pow(acc, 1 / p) : acc;
            }
}

START_TEST(pool_random)
{
    int64_t xd[4] = {2, 3, 9, 8}, k[2] = {3, 2}, s[2] = {2, 1}, pads[4] = {1, 1, 1, 0};
    int64_t OH = (9 + 2 - 3) / 2 + 1, OW = (8 + 1 - 2) / 1 + 1;
    kiln_tensor *x = rand_tensor(KILN_F32, 4, xd);
    double *want = malloc(sizeof(double) * 2 * 3 * (size_t)(OH * OW));
    kiln_op ops[4] = {KILN_OP_AveragePool, KILN_OP_AveragePool, KILN_OP_MaxPool, KILN_OP_LpPool};
    for (int t = 0; t < 4; t++) {
        one_node o = make_node(ops[t], 1, 1);
        set_ints(&o, "kernel_shape", 2, k);
        set_ints(&o, "strides", 2, s);
        set_ints(&o, "pads", 4, pads);
        if (t == 1) kiln_node_set_int(o.n, "count_include_pad", 1);
        if (t == 3) kiln_node_set_int(o.n, "p", 3);
        kiln_tensor *y = run1(&o, &x, 1);
        int64_t yd[4] = {2, 3, OH, OW};
        expect_dims(y, 4, yd);
        int kind = t <= 1 ? 0 : t == 2 ? 1 : 2;
        naive_pool2d(x, kind, k, s, pads, t == 1, 3.0, OH, OW, want);
        expect_close(y, want, y->numel, 1e-5, 1e-5);
        kiln_tensor_free(y);
        kiln_graph_free(o.g);
    }
    free(want);
    /* global pools */
    for (int t = 0; t < 2; t++) {
        one_node o = make_node(t ? KILN_OP_GlobalMaxPool : KILN_OP_GlobalAveragePool, 1, 1);
        kiln_tensor *y = run1(&o, &x, 1);
        int64_t yd[4] = {2, 3, 1, 1};
        expect_dims(y, 4, yd);
        double g[6];
        for (int c = 0; c < 6; c++) {
            double acc = t ? -INFINITY : 0;
            for (int i = 0; i < 72; i++) {
                double v = kiln_tensor_get(x, c * 72 + i);
                acc = t ? (v > acc ? v : acc) : acc + v;
            }
            g[c] = t ? acc : acc / 72;
        }
        expect_close(y, g, 6, 1e-6, 1e-6);
        kiln_tensor_free(y);
        kiln_graph_free(o.g);
    }
    kiln_tensor_free(x);
}
END_TEST

START_TEST(pool_bad_inputs)
{
    int64_t xd[4] = {1, 1, 4, 4}, k3[3] = {2, 2, 2}, k2[2] = {2, 2};
    kiln_tensor *x = rand_tensor(KILN_F32, 4, xd);
    one_node o = make_node(KILN_OP_MaxPool, 1, 1);
    ck_assert_int_eq(run_status(&o, &x, 1), KILN_ERR_SHAPE); /* no kernel_shape */
    set_ints(&o, "kernel_shape", 3, k3);
    ck_assert_int_eq(run_status(&o, &x, 1), KILN_ERR_SHAPE); /* rank mismatch */
    set_ints(&o, "kernel_shape", 2, k2);
    kiln_node_set_int(o.n, "ceil_mode", 7);
    ck_assert_int_eq(run_status(&o, &x, 1), KILN_ERR_SHAPE);
    kiln_node_set_int(o.n, "ceil_mode", 0);
    ck_assert_int_eq(run_status(&o, &x, 1), KILN_OK);
    kiln_graph_free(o.g);
    one_node a = make_node(KILN_OP_AveragePool, 1, 1);
    set_ints(&a, "kernel_shape", 2, k2);
    kiln_tensor *xi = rand_tensor(KILN_I32, 4, xd);
    ck_assert_int_eq(run_status(&a, &xi, 1), KILN_ERR_UNSUPPORTED);
    kiln_graph_free(a.g);
    one_node g = make_node(KILN_OP_GlobalAveragePool, 1, 1);
    int64_t d1[1] = {4};
    kiln_tensor *v = rand_tensor(KILN_F32, 1, d1);
    ck_assert_int_eq(run_status(&g, &v, 1), KILN_ERR_SHAPE);
    kiln_graph_free(g.g);
    kiln_tensor_free(v);
    kiln_tensor_free(xi);
    kiln_tensor_free(x);
}
END_TEST

/* ------------------------------------------------------------ Gemm/MatMul -- */

static void gemm_case(kiln_dtype dt, int64_t M, int64_t N, int64_t K, int ta, int tb, float alpha, float beta,
                      int c_rank, double tol)
{
    int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N};
    int64_t cd[2] = {c_rank == 2 ? M : N, N};
    kiln_tensor *in[3] = {rand_tensor(dt, 2, ad), rand_tensor(dt, 2, bd),
                          c_rank ? rand_tensor(dt, c_rank, c_rank == 2 ? cd : cd + 1) : NULL};
    one_node o = make_node(KILN_OP_Gemm, c_rank ? 3 : 2, 1);
    kiln_node_set_int(o.n, "transA", ta);
    kiln_node_set_int(o.n, "transB", tb);
    kiln_node_set_float(o.n, "alpha", alpha);
    kiln_node_set_float(o.n, "beta", beta);
    kiln_tensor *y = run1(&o, in, c_rank ? 3 : 2);
    int64_t yd[2] = {M, N};
    expect_dims(y, 2, yd);
    double *want = malloc(sizeof(double) * (size_t)(M * N));
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += kiln_tensor_get(in[0], ta ? k * M + m : m * K + k) * kiln_tensor_get(in[1], tb ? j * K + k : k * N + j);
            double cval = c_rank == 2 ? kiln_tensor_get(in[2], m * N + j) : c_rank == 1 ? kiln_tensor_get(in[2], j) : 0;
            want[m * N + j] = (double)alpha * acc + (double)beta * cval;
        }
    expect_close(y, want, M * N, tol, tol);
    free(want);
    kiln_tensor_free(y);
    free_all(&o, in, 3);
}

START_TEST(gemm_cases)
{
    gemm_case(KILN_F32, 5, 7, 3, 0, 0, 1.0f, 1.0f, 1, 1e-5);
    gemm_case(KILN_F32, 6, 9, 11, 1, 1, 0.25f, 0.35f, 2, 1e-5);
    gemm_case(KILN_F32, 1, 33, 70, 0, 1, 1.0f, 1.0f, 1, 1e-5);   /* small-M dot path */
    gemm_case(KILN_F32, 2, 19, 40, 0, 0, 2.0f, 0.5f, 0, 1e-5);   /* small-M axpy path */
    gemm_case(KILN_F32, 1, 5, 9, 1, 1, 1.0f, 1.0f, 0, 1e-5);     /* small M, transposed A */
    gemm_case(KILN_F32, 133, 1100, 300, 1, 0, 1.0f, 1.0f, 2, 1e-4); /* crosses M, N and K blocks */
    gemm_case(KILN_F64, 7, 5, 6, 0, 1, 0.5f, 2.0f, 2, 1e-12);
    gemm_case(KILN_BF16, 4, 4, 8, 0, 0, 1.0f, 1.0f, 1, 5e-2);
}
END_TEST

/* numpy matmul semantics written out: 1-D promotion and batch broadcasting. */
static void matmul_case(kiln_dtype dt, int ra, const int64_t *adims, int rb, const int64_t *bdims, int ry,
                        const int64_t *ydims, double tol)
{
    kiln_tensor *in[2] = {rand_tensor(dt, ra, adims), rand_tensor(dt, rb, bdims)};
    one_node o = make_node(KILN_OP_MatMul, 2, 1);
    kiln_tensor *y = run1(&o, in, 2);
    expect_dims(y, ry, ydims);
    /* promote to >= 2-D, then broadcast batch dims */
    int64_t A[KILN_MAX_RANK + 1], B[KILN_MAX_RANK + 1];
    int pa = ra, pb = rb;
    if (ra == 1) {
        A[0] = 1;
        A[1] = adims[0];
        pa = 2;
    } else {
        memcpy(A, adims, sizeof(int64_t) * (size_t)ra);
    }
    if (rb == 1) {
        B[0] = bdims[0];
        B[1] = 1;
        pb = 2;
    } else {
        memcpy(B, bdims, sizeof(int64_t) * (size_t)rb);
    }
    int64_t M = A[pa - 2], K = A[pa - 1], N = B[pb - 1];
    int nb = (pa > pb ? pa : pb) - 2;
    int64_t bshape[KILN_MAX_RANK], nbatch = 1;
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - (pa - 2)), ib = i - (nb - (pb - 2));
        int64_t da = ia >= 0 ? A[ia] : 1, db = ib >= 0 ? B[ib] : 1;
        bshape[i] = da > db ? da : db;
        nbatch *= bshape[i];
    }
    double *want = malloc(sizeof(double) * (size_t)(nbatch * M * N));
    for (int64_t t = 0; t < nbatch; t++) {
        int64_t rem = t, aoff = 0, boff = 0, amul = 1, bmul = 1;
        for (int i = nb - 1; i >= 0; i--) {
            int64_t idx = rem % bshape[i];
            rem /= bshape[i];
            int ia = i - (nb - (pa - 2)), ib = i - (nb - (pb - 2));
            if (ia >= 0) {
                aoff += (A[ia] == 1 ? 0 : idx) * amul;
                amul *= A[ia];
            }
            if (ib >= 0) {
                boff += (B[ib] == 1 ? 0 : idx) * bmul;
                bmul *= B[ib];
            }
        }
        for (int64_t m = 0; m < M; m++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += kiln_tensor_get(in[0], aoff * M * K + m * K + k) * kiln_tensor_get(in[1], boff * K * N + k * N + j);
                want[(t * M + m) * N + j] = acc;
            }
    }
    expect_close(y, want, nbatch * M * N, tol, tol);
    free(want);
    kiln_tensor_free(y);
    free_all(&o, in, 2);
}

START_TEST(matmul_cases)
{
    int64_t a1[1] = {6}, b1[1] = {6}, y0[1] = {0};
    matmul_case(KILN_F32, 1, a1, 1, b1, 0, y0, 1e-5);
    int64_t b2[4] = {1, 2, 4, 6}, y2[4] = {3, 2, 5, 6};
    int64_t a2b[4] = {3, 1, 5, 4};
    matmul_case(KILN_F32, 4, a2b, 4, b2, 4, y2, 1e-5);
    int64_t a3[1] = {4}, b3[3] = {2, 4, 3}, y3[2] = {2, 3};
    matmul_case(KILN_F32, 1, a3, 3, b3, 2, y3, 1e-5);
    int64_t a4[3] = {2, 7, 4}, b4[1] = {4}, y4[2] = {2, 7};
    matmul_case(KILN_F64, 3, a4, 1, b4, 2, y4, 1e-12);
    int64_t a5[2] = {70, 300}, b5[3] = {2, 300, 45}, y5[3] = {2, 70, 45};
    matmul_case(KILN_F32, 2, a5, 3, b5, 3, y5, 1e-4);
    int64_t a6[3] = {2, 3, 5}, b6[2] = {5, 4}, y6[3] = {2, 3, 4};
    matmul_case(KILN_I64, 3, a6, 2, b6, 3, y6, 0);
    matmul_case(KILN_I32, 3, a6, 2, b6, 3, y6, 0);
    matmul_case(KILN_F16, 3, a6, 2, b6, 3, y6, 1e-2);
}
END_TEST

START_TEST(matmul_gemm_bad_inputs)
{
    int64_t ad[2] = {3, 4}, bd[2] = {5, 6}, vd[1] = {4};
    kiln_tensor *in[2] = {rand_tensor(KILN_F32, 2, ad), rand_tensor(KILN_F32, 2, bd)};
    one_node o = make_node(KILN_OP_MatMul, 2, 1);
    ck_assert_int_eq(run_status(&o, in, 2), KILN_ERR_SHAPE);
    kiln_graph_free(o.g);
    one_node g = make_node(KILN_OP_Gemm, 2, 1);
    ck_assert_int_eq(run_status(&g, in, 2), KILN_ERR_SHAPE);
    kiln_tensor *v = rand_tensor(KILN_F32, 1, vd);
    kiln_tensor *bad[2] = {v, in[1]};
    ck_assert_int_eq(run_status(&g, bad, 2), KILN_ERR_SHAPE); /* Gemm needs 2-D */
    kiln_graph_free(g.g);
    int64_t bool_d[2] = {3, 4};
    kiln_tensor *bt = kiln_tensor_new(KILN_BOOL, 2, bool_d), *bt2 = kiln_tensor_new(KILN_BOOL, 2, bool_d);
    one_node o2 = make_node(KILN_OP_MatMul, 2, 1);
    kiln_tensor *bb[2] = {bt, bt2};
    ck_assert_int_eq(run_status(&o2, bb, 2), KILN_ERR_UNSUPPORTED);
    kiln_graph_free(o2.g);
    kiln_tensor_free(bt);
    kiln_tensor_free(bt2);
    kiln_tensor_free(v);
    kiln_tensor_free(in[0]);
    kiln_tensor_free(in[1]);
}
END_TEST

/* ---------------------------------------------------------------- Einsum -- */

static kiln_tensor *einsum(const char *eq, kiln_tensor **in, int n_in, kiln_status *st)
{
    one_node o = make_node(KILN_OP_Einsum, n_in, 1);
    kiln_node_set_str(o.n, "equation", eq);
    kiln_tensor *out[1] = {NULL};
    *st = kiln_eval_node(o.n, in, n_in, out, 1);
    kiln_graph_free(o.g);
    return out[0];
}

START_TEST(einsum_cases)
{
    kiln_status st;
    int64_t ad[3] = {2, 3, 4}, bd[3] = {2, 4, 5}, sq[3] = {2, 3, 3};
    kiln_tensor *a = rand_tensor(KILN_F64, 3, ad), *b = rand_tensor(KILN_F64, 3, bd), *s = rand_tensor(KILN_F64, 3, sq);
    /* batched matmul, explicit; implicit output keeps labels seen once (i, k): b is summed */
    kiln_tensor *in[2] = {a, b};
    const char *eqs[2] = {"bij, bjk -> bik", "bij,bjk"};
    for (int e = 0; e < 2; e++) {
        kiln_tensor *y = einsum(eqs[e], in, 2, &st);
        ck_assert_int_eq(st, KILN_OK);
        int64_t yd[3] = {2, 3, 5};
        if (e == 1) {
            expect_dims(y, 2, yd + 1);
        } else {
            expect_dims(y, 3, yd);
        }
        double want[30];
        for (int bb = 0; bb < 2; bb++)
            for (int i = 0; i < 3; i++)
                for (int k = 0; k < 5; k++) {
                    double acc = 0;
                    for (int j = 0; j < 4; j++) acc += kiln_tensor_get(a, (bb * 3 + i) * 4 + j) * kiln_tensor_get(b, (bb * 4 + j) * 5 + k);
                    want[(bb * 3 + i) * 5 + k] = acc;
                }
        if (e == 1)
            for (int q = 0; q < 15; q++) want[q] += want[15 + q];
        expect_close(y, want, e == 1 ? 15 : 30, 1e-12, 1e-12);
        kiln_tensor_free(y);
    }
    /* batch diagonal with ellipsis, trace (implicit: repeated label summed), transpose */
    kiln_tensor *y = einsum("...ii->...i", &s, 1, &st);
    ck_assert_int_eq(st, KILN_OK);
    double dg[6];
    for (int bb = 0; bb < 2; bb++)
        for (int i = 0; i < 3; i++) dg[bb * 3 + i] = kiln_tensor_get(s, bb * 9 + i * 4);
    expect_close(y, dg, 6, 0, 0);
    kiln_tensor_free(y);
    y = einsum("bii", &s, 1, &st);
    ck_assert_int_eq(st, KILN_OK);
    double tr[2] = {dg[0] + dg[1] + dg[2], dg[3] + dg[4] + dg[5]};
    expect_close(y, tr, 2, 1e-12, 0);
    kiln_tensor_free(y);
    y = einsum("...ij->...ji", &a, 1, &st);
    ck_assert_int_eq(st, KILN_OK);
    int64_t td[3] = {2, 4, 3};
    expect_dims(y, 3, td);
    ck_assert(kiln_tensor_get(y, (1 * 4 + 2) * 3 + 1) == kiln_tensor_get(a, (1 * 3 + 1) * 4 + 2));
    kiln_tensor_free(y);
    /* scalar sum over everything, integer dtype exact */
    int64_t id[2] = {3, 4};
    kiln_tensor *it = rand_tensor(KILN_I64, 2, id);
    y = einsum("ij->", &it, 1, &st);
    ck_assert_int_eq(st, KILN_OK);
    ck_assert_int_eq(y->rank, 0);
    int64_t sum = 0;
    for (int i = 0; i < 12; i++) sum += kiln_tensor_get_i64(it, i);
    ck_assert_int_eq(kiln_tensor_get_i64(y, 0), sum);
    kiln_tensor_free(y);
    /* bad: unknown output label, wrong term count, size mismatch, bad character */
    const char *bad[4] = {"ij->k", "ij,jk->ik", "ii->i", "i$j->ij"};
    kiln_tensor *only[1] = {a};
    for (int e = 0; e < 4; e++) {
        y = einsum(bad[e], e == 2 ? &a : only, 1, &st);
        ck_assert_msg(st == KILN_ERR_SHAPE, "'%s' gave %d", bad[e], st);
        ck_assert_ptr_null(y);
    }
    kiln_tensor_free(it);
    kiln_tensor_free(a);
    kiln_tensor_free(b);
    kiln_tensor_free(s);
}
END_TEST

/* ----------------------------------------------------- shape inference -- */

START_TEST(infer_symbolic_dims)
{
    /* Conv keeps N's symbol; a 3x3 pad-1 stride-1 conv keeps H and W symbols too */
    kiln_graph *g = kiln_graph_new();
    int x = kiln_graph_add_value(g, "x"), w = kiln_graph_add_value(g, "w"), y = kiln_graph_add_value(g, "y");
    int ins[2] = {x, w}, outs[1] = {y};
    int id = kiln_graph_add_node(g, KILN_OP_Conv, "c", ins, 2, outs, 1);
    int64_t xd[4] = {-1, 3, -1, 17}, wd[4] = {8, 3, 3, 3}, pads[4] = {1, 1, 1, 1};
    kiln_value_set(&g->values[x], KILN_F32, 4, xd);
    g->values[x].dims[0] = -1;
    g->values[x].dims[2] = -1;
    g->values[x].sym[0] = kiln_graph_symbol(g, "N");
    g->values[x].sym[2] = kiln_graph_symbol(g, "H");
    kiln_value_set(&g->values[w], KILN_F32, 4, wd);
    ck_assert_int_eq(kiln_node_set_ints(&g->nodes[id], "pads", pads, 4), KILN_OK);
    ck_assert_int_eq(kiln_graph_infer(g), KILN_OK);
    const kiln_value *v = &g->values[y];
    ck_assert_int_eq(v->rank, 4);
    ck_assert_int_eq(v->dims[1], 8);
    ck_assert_int_eq(v->dims[3], 17);
    ck_assert_int_eq(v->sym[0], g->values[x].sym[0]);
    ck_assert_int_eq(v->sym[2], g->values[x].sym[2]);
    kiln_graph_free(g);
}
END_TEST

/* Absurd but legal attributes must not overflow (UBSan build) or crash. */
START_TEST(huge_attributes)
{
    const int64_t big = INT32_MAX;
    int64_t xd[5] = {1, 1, 1, 1, 1}, k[3] = {big, big, big}, pads[6] = {big, big, big, big, big, big};
    kiln_tensor *x = rand_tensor(KILN_F32, 5, xd);
    one_node o = make_node(KILN_OP_AveragePool, 1, 1);
    set_ints(&o, "kernel_shape", 3, k);
    set_ints(&o, "strides", 3, k);
    set_ints(&o, "pads", 6, pads);
    kiln_node_set_int(o.n, "count_include_pad", 1);
    kiln_tensor *y = run1(&o, &x, 1);
    ck_assert_int_eq(y->numel, 8);
    for (int i = 0; i < 8; i++) ck_assert(isfinite(kiln_tensor_get(y, i)));
    kiln_tensor_free(y);
    free_all(&o, &x, 1);
    /* ConvTranspose whose output size would overflow: shape inference reports a limit */
    kiln_graph *g = kiln_graph_new();
    int xv = kiln_graph_add_value(g, "x"), wv = kiln_graph_add_value(g, "w"), yv = kiln_graph_add_value(g, "y");
    int ins[2] = {xv, wv}, outs[1] = {yv};
    int id = kiln_graph_add_node(g, KILN_OP_ConvTranspose, "ct", ins, 2, outs, 1);
    int64_t xdims[3] = {1, 1, (int64_t)1 << 40}, wdims[3] = {1, 1, 3}, st[1] = {big};
    kiln_value_set(&g->values[xv], KILN_F32, 3, xdims);
    kiln_value_set(&g->values[wv], KILN_F32, 3, wdims);
    ck_assert_int_eq(kiln_node_set_ints(&g->nodes[id], "strides", st, 1), KILN_OK);
    ck_assert_int_eq(kiln_graph_infer(g), KILN_ERR_LIMIT);
    kiln_graph_free(g);
}
END_TEST

/* conv_geom.h used directly, as codegen does: dims (some unknown) + node attributes only. */
START_TEST(conv_geom_api)
{
    one_node o = make_node(KILN_OP_Conv, 2, 1);
    int64_t st[2] = {2, 2};
    set_ints(&o, "strides", 2, st);
    kiln_node_set_str(o.n, "auto_pad", "SAME_LOWER");
    kiln_node_set_int(o.n, "group", 2);
    int64_t xd[4] = {-1, 4, 8, -1}, wd[4] = {6, 2, 3, 3};
    kiln_conv_geom g;
    ck_assert_int_eq(kiln_conv_geom_make(o.n, 4, xd, wd, &g), KILN_OK);
    ck_assert_int_eq(g.nsp, 2);
    ck_assert_int_eq(g.auto_pad, KILN_AUTO_PAD_SAME_LOWER);
    ck_assert(g.N == -1 && g.C == 4 && g.M == 6 && g.group == 2 && g.Cg == 2 && g.Mg == 3);
    ck_assert(g.k[0] == 3 && g.k[1] == 3 && g.s[0] == 2 && g.d[1] == 1);
    /* H: out 4, total pad (4-1)*2+3-8 = 1, SAME_LOWER puts it at the beginning */
    ck_assert(g.out[0] == 4 && g.pb[0] == 1 && g.pe[0] == 0);
    ck_assert_int_eq(g.out[1], -1);
    int64_t od[KILN_MAX_RANK];
    ck_assert_int_eq(kiln_conv_geom_out_dims(&g, od), 4);
    ck_assert(od[0] == -1 && od[1] == 6 && od[2] == 4 && od[3] == -1);
    /* errors name the node, the attribute and the value */
    int64_t dil[2] = {1, 0};
    set_ints(&o, "dilations", 2, dil);
    ck_assert_int_eq(kiln_conv_geom_make(o.n, 4, xd, wd, &g), KILN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "Conv"));
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "attribute dilations[1] = 0 is out of range"));
    kiln_node_remove_attr(o.n, "dilations");
    int64_t wbad[4] = {6, 3, 3, 3};
    ck_assert_int_eq(kiln_conv_geom_make(o.n, 4, xd, wbad, &g), KILN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "W expects 3 per group x 2 groups"));
    kiln_graph_free(o.g);
    /* ConvTranspose: natural size s*(in-1) + extent = 2*2 + 3 = 7 */
    one_node t = make_node(KILN_OP_ConvTranspose, 2, 1);
    int64_t s1[1] = {2}, txd[3] = {1, 2, 3}, twd[3] = {2, 3, 3};
    set_ints(&t, "strides", 1, s1);
    ck_assert_int_eq(kiln_conv_transpose_geom_make(t.n, 3, txd, twd, &g), KILN_OK);
    ck_assert(g.M == 3 && g.Mg == 3 && g.Cg == 2 && g.out[0] == 7 && g.pb[0] == 0 && g.pe[0] == 0);
    kiln_graph_free(t.g);
    /* pools: kernel_shape required; ceil_mode rounding */
    one_node p = make_node(KILN_OP_MaxPool, 1, 1);
    ck_assert_int_eq(kiln_conv_window_attrs(p.n, 1, NULL, &g), KILN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "kernel_shape is required"));
    int64_t k2[1] = {2};
    set_ints(&p, "kernel_shape", 1, k2);
    set_ints(&p, "strides", 1, k2);
    ck_assert_int_eq(kiln_conv_window_attrs(p.n, 1, NULL, &g), KILN_OK);
    g.in[0] = 5;
    ck_assert_int_eq(kiln_conv_window_out(p.n, &g, KILN_AUTO_PAD_NOTSET, true), KILN_OK);
    ck_assert_int_eq(g.out[0], 3);
    ck_assert_int_eq(kiln_conv_window_out(p.n, &g, KILN_AUTO_PAD_NOTSET, false), KILN_OK);
    ck_assert_int_eq(g.out[0], 2);
    kiln_graph_free(p.g);
}
END_TEST

static Suite *nn_suite(void)
{
    Suite *s = suite_create("ops_nn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, conv2d_f32_shapes);
    tcase_add_test(tc, conv2d_other_dtypes);
    tcase_add_test(tc, conv3d_and_1d);
    tcase_add_test(tc, conv_auto_pad);
    tcase_add_test(tc, conv_bad_inputs);
    tcase_add_test(tc, convtranspose_cases);
    tcase_add_test(tc, pool_spec_examples);
    tcase_add_test(tc, pool_random);
    tcase_add_test(tc, pool_bad_inputs);
    tcase_add_test(tc, gemm_cases);
    tcase_add_test(tc, matmul_cases);
    tcase_add_test(tc, matmul_gemm_bad_inputs);
    tcase_add_test(tc, einsum_cases);
    tcase_add_test(tc, infer_symbolic_dims);
    tcase_add_test(tc, huge_attributes);
    tcase_add_test(tc, conv_geom_api);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(nn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
