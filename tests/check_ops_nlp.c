/* check_ops_nlp.c — nlp-family ops (ir/ops_nlp.c) against naive references written here,
 * on seeded random inputs, plus bad-input cases that must fail cleanly.
 * Tolerances: results are compared as |got - want| <= tol * (1 + |want|) with tol 1e-5
 * for f32 outputs (the op computes in double and rounds once; the references here use
 * double too, so only the final f32 rounding and summation order differ). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

#define TOL 1e-5

/* ------------------------------------------------------------ fixtures -- */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 2654435761u + 1; }
static double rng_unit(void) /* [0, 1) */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static float rng_f(void) { return (float)(rng_unit() * 4.0 - 2.0); }
static int64_t rng_int(int64_t n) { return (int64_t)(rng_unit() * (double)n); }

/* A one-node graph so the node owns its attributes. present: bit i set when input i is
 * given (the others are omitted optionals, id -1); outputs likewise. */
typedef struct one_node {
    kiln_graph *g;
    kiln_node *n;
} one_node;

static one_node mk_sel(kiln_op op, int n_in, unsigned in_present, int n_out, unsigned out_present)
{
    one_node o;
    o.g = kiln_graph_new();
    ck_assert_ptr_nonnull(o.g);
    int ins[8], outs[8];
    for (int i = 0; i < n_in; i++) ins[i] = (in_present >> i & 1) ? kiln_graph_add_value(o.g, NULL) : -1;
    for (int i = 0; i < n_out; i++) outs[i] = (out_present >> i & 1) ? kiln_graph_add_value(o.g, NULL) : -1;
    int id = kiln_graph_add_node(o.g, op, "t", ins, n_in, outs, n_out);
    ck_assert_int_ge(id, 0);
    o.n = &o.g->nodes[id];
    return o;
}

static one_node mk(kiln_op op, int n_in, int n_out) { return mk_sel(op, n_in, 0xffu, n_out, 0xffu); }

static kiln_tensor *tnew(kiln_dtype dt, int rank, const int64_t *dims)
{
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    ck_assert_ptr_nonnull(t);
    return t;
}

static kiln_tensor *trand(int rank, const int64_t *dims)
{
    kiln_tensor *t = tnew(KILN_F32, rank, dims);
    float *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = rng_f();
    return t;
}

static void free_all(kiln_tensor **ts, int n)
{
    for (int i = 0; i < n; i++) {
        kiln_tensor_free(ts[i]);
        ts[i] = NULL;
    }
}

static void close_to(double got, double want, double tol, const char *what, int64_t i)
{
    if (isnan(want)) {
        ck_assert_msg(isnan(got), "%s[%lld]: got %g, want NaN", what, (long long)i, got);
        return;
    }
    ck_assert_msg(fabs(got - want) <= tol * (1.0 + fabs(want)), "%s[%lld]: got %.9g, want %.9g", what,
                  (long long)i, got, want);
}

static const float *F(const kiln_tensor *t) { return (const float *)t->data; }

/* ============================================================= losses ==== */

/* Naive NLL over x [N, C, D] given as log-probabilities (doubles). */
static void naive_nll(const double *lp, const int64_t *tg, const float *w, int64_t N, int64_t C, int64_t D,
                      int has_ii, int64_t ii, double *per, double *sum, double *mean)
{
    double s = 0, ws = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t d = 0; d < D; d++) {
            int64_t t = tg[i * D + d];
            double l = 0, wt = 0;
            if (!(has_ii && t == ii)) {
                wt = w ? w[t] : 1.0;
                l = -wt * lp[i * C * D + t * D + d];
            }
            per[i * D + d] = l;
            s += l;
            ws += wt;
        }
    *sum = s;
    *mean = s / ws;
}

START_TEST(test_losses_vs_naive)
{
    rng_seed(11);
    static const char *reds[3] = {"none", "sum", "mean"};
    /* shapes: [N, C], [N, C, D1], [N, C, D1, D2] */
    int64_t shapes[3][4] = {{4, 5, 1, 1}, {3, 6, 4, 1}, {2, 3, 2, 5}};
    int ranks[3] = {2, 3, 4};
    for (int sh = 0; sh < 3; sh++)
        for (int sce = 0; sce < 2; sce++)
            for (int wgt = 0; wgt < 2; wgt++)
                for (int ii = 0; ii < 3; ii++) /* no ignore_index, an in-range one, a negative one */
                    for (int r = 0; r < 3; r++) {
                        int rank = ranks[sh];
                        int64_t N = shapes[sh][0], C = shapes[sh][1], D = shapes[sh][2] * shapes[sh][3];
                        int64_t xd[4] = {N, C, shapes[sh][2], shapes[sh][3]}, td[3] = {N, shapes[sh][2], shapes[sh][3]};
                        int64_t ii_val = ii == 1 ? 1 : -7;
                        kiln_tensor *in[3] = {trand(rank, xd), tnew(KILN_I64, rank - 1, td), NULL};
                        int64_t *tg = in[1]->data;
                        for (int64_t i = 0; i < in[1]->numel; i++)
                            tg[i] = (ii && rng_unit() < 0.3) ? ii_val : rng_int(C);
                        if (wgt) {
                            in[2] = tnew(KILN_F32, 1, &C);
                            for (int64_t c = 0; c < C; c++) ((float *)in[2]->data)[c] = (float)(0.25 + rng_unit());
                        }
                        int n_in = wgt ? 3 : 2, n_out = sce ? 2 : 1;
                        one_node o = mk(sce ? KILN_OP_SoftmaxCrossEntropyLoss : KILN_OP_NegativeLogLikelihoodLoss,
                                        n_in, n_out);
                        kiln_node_set_str(o.n, "reduction", reds[r]);
                        if (ii) kiln_node_set_int(o.n, "ignore_index", ii_val);
                        kiln_tensor *out[2] = {0};
                        ck_assert_int_eq(kiln_eval_node(o.n, in, n_in, out, n_out), KILN_OK);
                        /* naive log-probabilities */
                        double *lp = malloc(sizeof(double) * (size_t)in[0]->numel);
                        double *per = malloc(sizeof(double) * (size_t)(N * D));
                        ck_assert_ptr_nonnull(lp);
                        ck_assert_ptr_nonnull(per);
                        for (int64_t i = 0; i < N; i++)
                            for (int64_t d = 0; d < D; d++) {
                                double z = 0;
                                for (int64_t c = 0; c < C; c++) z += exp(F(in[0])[i * C * D + c * D + d]);
                                for (int64_t c = 0; c < C; c++) {
                                    double v = F(in[0])[i * C * D + c * D + d];
                                    lp[i * C * D + c * D + d] = sce ? v - log(z) : v;
                                }
                            }
                        double sum, mean;
                        naive_nll(lp, tg, wgt ? F(in[2]) : NULL, N, C, D, ii != 0, ii_val, per, &sum, &mean);
                        if (r == 0) {
                            ck_assert_int_eq(out[0]->rank, rank - 1);
                            ck_assert_int_eq(out[0]->numel, N * D);
                            for (int64_t i = 0; i < N * D; i++) close_to(F(out[0])[i], per[i], TOL, "loss", i);
                        } else {
                            ck_assert_int_eq(out[0]->rank, 0);
                            close_to(F(out[0])[0], r == 1 ? sum : mean, TOL, "loss", 0);
                        }
                        if (sce) {
                            ck_assert_int_eq(out[1]->rank, rank);
                            for (int64_t i = 0; i < in[0]->numel; i++) close_to(F(out[1])[i], lp[i], TOL, "log_prob", i);
                        }
                        free(lp);
                        free(per);
                        free_all(out, 2);
                        free_all(in, 3);
                        kiln_graph_free(o.g);
                    }
}
END_TEST

/* Identities: SCE(x) == NLL(LogSoftmax(x)); f64 and int32 targets work; mean of all-ignored is NaN. */
START_TEST(test_losses_identities)
{
    rng_seed(12);
    int64_t xd[3] = {3, 4, 2}, td[2] = {3, 2};
    kiln_tensor *x = tnew(KILN_F64, 3, xd), *t = tnew(KILN_I32, 2, td);
    for (int64_t i = 0; i < x->numel; i++) ((double *)x->data)[i] = rng_f();
    for (int64_t i = 0; i < t->numel; i++) ((int32_t *)t->data)[i] = (int32_t)rng_int(4);
    one_node s = mk(KILN_OP_SoftmaxCrossEntropyLoss, 2, 2);
    kiln_node_set_str(s.n, "reduction", "sum");
    kiln_tensor *in[2] = {x, t}, *so[2] = {0}, *no[1] = {0};
    ck_assert_int_eq(kiln_eval_node(s.n, in, 2, so, 2), KILN_OK);
    ck_assert_int_eq(so[0]->dtype, KILN_F64);
    one_node nl = mk(KILN_OP_NegativeLogLikelihoodLoss, 2, 1);
    kiln_node_set_str(nl.n, "reduction", "sum");
    kiln_tensor *in2[2] = {so[1], t};
    ck_assert_int_eq(kiln_eval_node(nl.n, in2, 2, no, 1), KILN_OK);
    close_to(((double *)no[0]->data)[0], ((double *)so[0]->data)[0], 1e-12, "sce vs nll", 0);
    /* log_prob rows are normalized: sum over C of exp == 1 */
    for (int64_t i = 0; i < 3; i++)
        for (int64_t d = 0; d < 2; d++) {
            double z = 0;
            for (int64_t c = 0; c < 4; c++) z += exp(((double *)so[1]->data)[i * 8 + c * 2 + d]);
            close_to(z, 1.0, 1e-12, "softmax sum", i);
        }
    free_all(so, 2);
    free_all(no, 1);
    /* every target ignored: the mean is 0/0 */
    for (int64_t i = 0; i < t->numel; i++) ((int32_t *)t->data)[i] = 3;
    kiln_node_set_int(nl.n, "ignore_index", 3);
    kiln_node_set_str(nl.n, "reduction", "mean");
    kiln_tensor *in3[2] = {x, t};
    ck_assert_int_eq(kiln_eval_node(nl.n, in3, 2, no, 1), KILN_OK);
    ck_assert(isnan(((double *)no[0]->data)[0]));
    free_all(no, 1);
    kiln_graph_free(s.g);
    kiln_graph_free(nl.g);
    kiln_tensor_free(x);
    kiln_tensor_free(t);
}
END_TEST

START_TEST(test_losses_bad)
{
    int64_t xd[2] = {3, 4}, td[1] = {3}, tbad[2] = {3, 1}, wd[1] = {5};
    kiln_tensor *x = tnew(KILN_F32, 2, xd), *t = tnew(KILN_I64, 1, td);
    kiln_tensor *t2 = tnew(KILN_I64, 2, tbad), *w = tnew(KILN_F32, 1, wd), *tf = tnew(KILN_F32, 1, td);
    kiln_tensor *x1 = tnew(KILN_F32, 1, td);
    kiln_tensor *out[2] = {0};
    for (int op = 0; op < 2; op++) {
        kiln_op k = op ? KILN_OP_SoftmaxCrossEntropyLoss : KILN_OP_NegativeLogLikelihoodLoss;
        one_node o = mk(k, 2, 1);
        kiln_tensor *a[2] = {x, t2}; /* target rank */
        ck_assert_int_eq(kiln_eval_node(o.n, a, 2, out, 1), KILN_ERR_SHAPE);
        kiln_tensor *b[2] = {x, tf}; /* float target */
        ck_assert_int_eq(kiln_eval_node(o.n, b, 2, out, 1), KILN_ERR_SHAPE);
        kiln_tensor *c1[2] = {x1, t}; /* input rank 1 */
        ck_assert_int_eq(kiln_eval_node(o.n, c1, 2, out, 1), KILN_ERR_SHAPE);
        ((int64_t *)t->data)[1] = 4; /* class id out of range */
        kiln_tensor *d[2] = {x, t};
        ck_assert_int_eq(kiln_eval_node(o.n, d, 2, out, 1), KILN_ERR_INVALID_ARG);
        ck_assert_ptr_null(out[0]);
        ((int64_t *)t->data)[1] = 0;
        kiln_node_set_str(o.n, "reduction", "avg");
        ck_assert_int_eq(kiln_eval_node(o.n, d, 2, out, 1), KILN_ERR_SHAPE);
        kiln_graph_free(o.g);
        one_node ow = mk(k, 3, 1); /* weight of the wrong length */
        kiln_tensor *e[3] = {x, t, w};
        ck_assert_int_eq(kiln_eval_node(ow.n, e, 3, out, 1), KILN_ERR_SHAPE);
        kiln_graph_free(ow.g);
    }
    kiln_tensor_free(x);
    kiln_tensor_free(t);
    kiln_tensor_free(t2);
    kiln_tensor_free(w);
    kiln_tensor_free(tf);
    kiln_tensor_free(x1);
}
END_TEST

/* Symbolic batch flows to the reduction-none loss; reductions give a scalar. */
START_TEST(test_losses_infer_symbolic)
{
    kiln_graph *g = kiln_graph_new();
    int32_t sym_n = kiln_graph_symbol(g, "N");
    int x = kiln_graph_add_value(g, "x"), t = kiln_graph_add_value(g, "t"), y = kiln_graph_add_value(g, "y");
    int64_t xd[3] = {-1, 5, 7}, td[2] = {-1, 7};
    kiln_value_set(&g->values[x], KILN_F32, 3, xd);
    kiln_value_set(&g->values[t], KILN_I64, 2, td);
    g->values[x].sym[0] = sym_n;
    g->values[t].sym[0] = sym_n;
    int ins[2] = {x, t};
    int ni = kiln_graph_add_node(g, KILN_OP_NegativeLogLikelihoodLoss, "l", ins, 2, &y, 1);
    kiln_node_set_str(&g->nodes[ni], "reduction", "none");
    ck_assert_int_eq(kiln_graph_infer(g), KILN_OK);
    ck_assert_int_eq(g->values[y].rank, 2);
    ck_assert_int_eq(g->values[y].dims[0], -1);
    ck_assert_int_eq(g->values[y].sym[0], sym_n);
    ck_assert_int_eq(g->values[y].dims[1], 7);
    kiln_node_set_str(&g->nodes[ni], "reduction", "mean");
    ck_assert_int_eq(kiln_graph_infer(g), KILN_OK);
    ck_assert_int_eq(g->values[y].rank, 0);
    /* mismatched static dims are caught at inference */
    g->values[t].dims[1] = 6;
    ck_assert_int_eq(kiln_graph_infer(g), KILN_ERR_SHAPE);
    kiln_graph_free(g);
}
END_TEST

/* ===================================================== RotaryEmbedding ==== */

/* Naive: read X through explicit [b, h, s, e] indexing of either layout. */
static void naive_rope(const float *x, int rank3, int64_t B, int64_t H, int64_t S, int64_t hd, int64_t rot,
                       int inter, const float *cs, const float *sn, const int64_t *pos, double *y)
{
    int64_t half = rot / 2;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t s = 0; s < S; s++) {
                int64_t base = rank3 ? (b * S + s) * H * hd + h * hd : ((b * H + h) * S + s) * hd;
                int64_t row = pos ? pos[b * S + s] : b * S + s;
                for (int64_t e = 0; e < hd; e++) {
                    double v = x[base + e];
                    if (e < rot) {
                        int64_t i, partner;
                        double sign;
                        if (inter) {
                            i = e / 2;
                            partner = e % 2 ? e - 1 : e + 1;
                            sign = e % 2 ? 1.0 : -1.0;
                        } else {
                            i = e % half;
                            partner = e < half ? e + half : e - half;
                            sign = e < half ? -1.0 : 1.0;
                        }
                        double c = cs[row * half + i], sv = sn[row * half + i];
                        v = x[base + e] * c + sign * x[base + partner] * sv;
                    }
                    y[base + e] = v;
                }
            }
}

START_TEST(test_rope_vs_naive)
{
    rng_seed(21);
    const int64_t B = 2, H = 3, S = 4, hd = 8, max_pos = 10;
    for (int rank3 = 0; rank3 < 2; rank3++)
        for (int inter = 0; inter < 2; inter++)
            for (int rd = 0; rd < 2; rd++) /* full rotation, rotary_embedding_dim 4 */
                for (int use_pos = 0; use_pos < 2; use_pos++) {
                    int64_t rot = rd ? 4 : hd, half = rot / 2;
                    int64_t xd4[4] = {B, H, S, hd}, xd3[3] = {B, S, H * hd};
                    int64_t cd2[2] = {max_pos, half}, cd3[3] = {B, S, half}, pd[2] = {B, S};
                    kiln_tensor *in[4] = {rank3 ? trand(3, xd3) : trand(4, xd4), NULL, NULL, NULL};
                    in[1] = use_pos ? trand(2, cd2) : trand(3, cd3);
                    in[2] = use_pos ? trand(2, cd2) : trand(3, cd3);
                    if (use_pos) {
                        in[3] = tnew(KILN_I64, 2, pd);
                        for (int64_t i = 0; i < B * S; i++) ((int64_t *)in[3]->data)[i] = rng_int(max_pos);
                    }
                    int n_in = use_pos ? 4 : 3;
                    one_node o = mk(KILN_OP_RotaryEmbedding, n_in, 1);
                    if (rank3) kiln_node_set_int(o.n, "num_heads", H);
                    if (inter) kiln_node_set_int(o.n, "interleaved", 1);
                    if (rd) kiln_node_set_int(o.n, "rotary_embedding_dim", rot);
                    kiln_tensor *out[1] = {0};
                    ck_assert_int_eq(kiln_eval_node(o.n, in, n_in, out, 1), KILN_OK);
                    ck_assert_int_eq(out[0]->rank, rank3 ? 3 : 4);
                    double *want = malloc(sizeof(double) * (size_t)in[0]->numel);
                    ck_assert_ptr_nonnull(want);
                    naive_rope(F(in[0]), rank3, B, H, S, hd, rot, inter, F(in[1]), F(in[2]),
                               use_pos ? in[3]->data : NULL, want);
                    for (int64_t i = 0; i < in[0]->numel; i++) close_to(F(out[0])[i], want[i], TOL, "rope", i);
                    free(want);
                    free_all(out, 1);
                    free_all(in, 4);
                    kiln_graph_free(o.g);
                }
}
END_TEST

/* Identity: with cos = cos(a), sin = sin(a) each rotated pair keeps its length. */
START_TEST(test_rope_norm_preserved)
{
    rng_seed(22);
    int64_t xd[4] = {1, 2, 3, 6}, cd[2] = {3, 3}, pd[2] = {1, 3};
    kiln_tensor *in[4] = {trand(4, xd), tnew(KILN_F32, 2, cd), tnew(KILN_F32, 2, cd), tnew(KILN_I64, 2, pd)};
    for (int64_t i = 0; i < 9; i++) {
        double a = rng_unit() * 6.0;
        ((float *)in[1]->data)[i] = (float)cos(a);
        ((float *)in[2]->data)[i] = (float)sin(a);
    }
    for (int64_t i = 0; i < 3; i++) ((int64_t *)in[3]->data)[i] = 2 - i;
    one_node o = mk(KILN_OP_RotaryEmbedding, 4, 1);
    kiln_tensor *out[1] = {0};
    ck_assert_int_eq(kiln_eval_node(o.n, in, 4, out, 1), KILN_OK);
    for (int64_t r = 0; r < 6; r++)
        for (int64_t i = 0; i < 3; i++) {
            const float *a = F(in[0]) + r * 6, *b = F(out[0]) + r * 6;
            double n0 = a[i] * a[i] + a[i + 3] * a[i + 3], n1 = (double)b[i] * b[i] + (double)b[i + 3] * b[i + 3];
            close_to(n1, n0, 1e-5, "pair norm", r * 3 + i);
        }
    free_all(out, 1);
    free_all(in, 4);
    kiln_graph_free(o.g);
}
END_TEST

START_TEST(test_rope_bad)
{
    int64_t xd[4] = {1, 2, 3, 8}, x3[3] = {1, 3, 16}, cd[2] = {4, 4}, cbad[2] = {4, 3}, pd[2] = {1, 3};
    kiln_tensor *x = tnew(KILN_F32, 4, xd), *xr3 = tnew(KILN_F32, 3, x3);
    kiln_tensor *c = tnew(KILN_F32, 2, cd), *cb = tnew(KILN_F32, 2, cbad), *p = tnew(KILN_I64, 2, pd);
    kiln_tensor *ch = tnew(KILN_F16, 2, cd);
    kiln_tensor *out[1] = {0};
    one_node o = mk(KILN_OP_RotaryEmbedding, 4, 1);
    kiln_tensor *a[4] = {x, cb, cb, p}; /* cache width is not rot/2 */
    ck_assert_int_eq(kiln_eval_node(o.n, a, 4, out, 1), KILN_ERR_SHAPE);
    kiln_tensor *b[4] = {xr3, c, c, p}; /* 3-D input without num_heads */
    ck_assert_int_eq(kiln_eval_node(o.n, b, 4, out, 1), KILN_ERR_SHAPE);
    kiln_tensor *d[4] = {x, ch, ch, p}; /* cache dtype differs */
    ck_assert_int_eq(kiln_eval_node(o.n, d, 4, out, 1), KILN_ERR_SHAPE);
    ((int64_t *)p->data)[2] = 4; /* position past the cache */
    kiln_tensor *e[4] = {x, c, c, p};
    ck_assert_int_eq(kiln_eval_node(o.n, e, 4, out, 1), KILN_ERR_INVALID_ARG);
    ck_assert_ptr_null(out[0]);
    ((int64_t *)p->data)[2] = -1;
    ck_assert_int_eq(kiln_eval_node(o.n, e, 4, out, 1), KILN_ERR_INVALID_ARG);
    ((int64_t *)p->data)[2] = 0;
    kiln_node_set_int(o.n, "rotary_embedding_dim", 5); /* odd */
    ck_assert_int_eq(kiln_eval_node(o.n, e, 4, out, 1), KILN_ERR_SHAPE);
    kiln_node_set_int(o.n, "rotary_embedding_dim", 10); /* beyond the head */
    ck_assert_int_eq(kiln_eval_node(o.n, e, 4, out, 1), KILN_ERR_SHAPE);
    kiln_graph_free(o.g);
    one_node o3 = mk(KILN_OP_RotaryEmbedding, 3, 1); /* no position_ids: caches must be 3-D */
    kiln_tensor *f[3] = {x, c, c};
    ck_assert_int_eq(kiln_eval_node(o3.n, f, 3, out, 1), KILN_ERR_SHAPE);
    kiln_graph_free(o3.g);
    kiln_tensor_free(x);
    kiln_tensor_free(xr3);
    kiln_tensor_free(c);
    kiln_tensor_free(cb);
    kiln_tensor_free(p);
    kiln_tensor_free(ch);
}
END_TEST

/* =========================================================== Attention ==== */

typedef struct att_case {
    int64_t B, Hq, Hkv, Sq, Skv, P, hd, vhd;
    int rank3;       /* feed Q/K/V as 3-D */
    int mask;        /* 0 none, 1 float [Sq, T], 2 bool [B, 1, Sq, T], 3 float short [Sq, T-2] */
    int causal;
    int softcap;     /* use softcap 1.5 */
    int scale;       /* explicit scale 0.3 */
    int mode;        /* qk_matmul_output_mode */
    int nonpad;      /* nonpad_kv_seqlen input */
} att_case;

/* [B, H, S, e] <-> [B, S, H*e] */
static kiln_tensor *to3d(const kiln_tensor *t)
{
    int64_t B = t->dims[0], H = t->dims[1], S = t->dims[2], E = t->dims[3];
    int64_t d[3] = {B, S, H * E};
    kiln_tensor *r = tnew(KILN_F32, 3, d);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t s = 0; s < S; s++)
                for (int64_t e = 0; e < E; e++)
                    ((float *)r->data)[((b * S + s) * H + h) * E + e] = F(t)[((b * H + h) * S + s) * E + e];
    return r;
}

/* Naive attention on 4-D float arrays: builds the full bias matrix first, repeats KV heads. */
static void naive_attention(const att_case *ac, const float *q, const float *k, const float *v, const float *pk,
                            const float *pv, const float *fmask, const uint8_t *bmask, int64_t mlen,
                            const int64_t *nonpad, double *y, double *qk)
{
    int64_t T = ac->P + ac->Skv;
    double scale = ac->scale ? 0.3 : 1.0 / sqrt((double)ac->hd);
    double *w = malloc(sizeof(double) * (size_t)T);
    ck_assert_ptr_nonnull(w);
    for (int64_t b = 0; b < ac->B; b++)
        for (int64_t h = 0; h < ac->Hq; h++) {
            int64_t g = h / (ac->Hq / ac->Hkv);
            for (int64_t i = 0; i < ac->Sq; i++) {
                for (int64_t j = 0; j < T; j++) {
                    double dot = 0;
                    for (int64_t e = 0; e < ac->hd; e++) {
                        double kk = j < ac->P ? pk[((b * ac->Hkv + g) * ac->P + j) * ac->hd + e]
                                              : k[((b * ac->Hkv + g) * ac->Skv + (j - ac->P)) * ac->hd + e];
                        dot += q[((b * ac->Hq + h) * ac->Sq + i) * ac->hd + e] * kk;
                    }
                    double s = dot * scale, raw = s;
                    if (ac->softcap) s = 1.5 * tanh(s / 1.5);
                    double capped = s, bias = 0;
                    if (ac->mask == 1) bias += fmask[i * T + j];
                    if (ac->mask == 2 && !bmask[(b * ac->Sq + i) * T + j]) bias = -INFINITY;
                    if (ac->mask == 3) bias += j < mlen ? fmask[i * mlen + j] : -INFINITY;
                    if (ac->causal && j - ac->P > i) bias = -INFINITY;
                    if (nonpad && j >= nonpad[b]) bias = -INFINITY;
                    s += bias;
                    w[j] = s;
                    int64_t qo = ((b * ac->Hq + h) * ac->Sq + i) * T + j;
                    qk[qo] = ac->mode == 0 ? raw : ac->mode == 1 ? capped : s;
                }
                double mx = -INFINITY, z = 0;
                for (int64_t j = 0; j < T; j++) mx = w[j] > mx ? w[j] : mx;
                for (int64_t j = 0; j < T; j++) z += exp(w[j] - mx);
                for (int64_t j = 0; j < T; j++) {
                    w[j] = exp(w[j] - mx) / z;
                    if (ac->mode == 3) qk[((b * ac->Hq + h) * ac->Sq + i) * T + j] = w[j];
                }
                for (int64_t e = 0; e < ac->vhd; e++) {
                    double a = 0;
                    for (int64_t j = 0; j < T; j++) {
                        double vv = j < ac->P ? pv[((b * ac->Hkv + g) * ac->P + j) * ac->vhd + e]
                                              : v[((b * ac->Hkv + g) * ac->Skv + (j - ac->P)) * ac->vhd + e];
                        a += w[j] * vv;
                    }
                    y[((b * ac->Hq + h) * ac->Sq + i) * ac->vhd + e] = a;
                }
            }
        }
    free(w);
}

static void run_att_case(const att_case *ac)
{
    int64_t T = ac->P + ac->Skv;
    int64_t qd[4] = {ac->B, ac->Hq, ac->Sq, ac->hd}, kd[4] = {ac->B, ac->Hkv, ac->Skv, ac->hd};
    int64_t vd[4] = {ac->B, ac->Hkv, ac->Skv, ac->vhd};
    int64_t pkd[4] = {ac->B, ac->Hkv, ac->P, ac->hd}, pvd[4] = {ac->B, ac->Hkv, ac->P, ac->vhd};
    kiln_tensor *q4 = trand(4, qd), *k4 = trand(4, kd), *v4 = trand(4, vd);
    kiln_tensor *in[7] = {0};
    in[0] = ac->rank3 ? to3d(q4) : kiln_tensor_clone(q4);
    in[1] = ac->rank3 ? to3d(k4) : kiln_tensor_clone(k4);
    in[2] = ac->rank3 ? to3d(v4) : kiln_tensor_clone(v4);
    int64_t mlen = ac->mask == 3 ? T - 2 : T;
    if (ac->mask == 1 || ac->mask == 3) {
        int64_t md[2] = {ac->Sq, mlen};
        in[3] = trand(2, md);
    } else if (ac->mask == 2) {
        int64_t md[4] = {ac->B, 1, ac->Sq, T};
        in[3] = tnew(KILN_BOOL, 4, md);
        for (int64_t i = 0; i < in[3]->numel; i++) ((uint8_t *)in[3]->data)[i] = (i % T == 0) || rng_unit() < 0.7;
    }
    if (ac->P) {
        in[4] = trand(4, pkd);
        in[5] = trand(4, pvd);
    }
    if (ac->nonpad) {
        in[6] = tnew(KILN_I64, 1, &ac->B);
        for (int64_t b = 0; b < ac->B; b++) ((int64_t *)in[6]->data)[b] = T - b % 2; /* >= 1 key stays */
    }
    unsigned present = 7u | (in[3] ? 8u : 0) | (ac->P ? 48u : 0) | (ac->nonpad ? 64u : 0);
    int n_in = ac->nonpad ? 7 : ac->P ? 6 : in[3] ? 4 : 3;
    unsigned out_present = 1u | (ac->P ? 6u : 0) | 8u;
    one_node o = mk_sel(KILN_OP_Attention, n_in, present, 4, out_present);
    if (ac->rank3) {
        kiln_node_set_int(o.n, "q_num_heads", ac->Hq);
        kiln_node_set_int(o.n, "kv_num_heads", ac->Hkv);
    }
    if (ac->causal) kiln_node_set_int(o.n, "is_causal", 1);
    if (ac->softcap) kiln_node_set_float(o.n, "softcap", 1.5f);
    if (ac->scale) kiln_node_set_float(o.n, "scale", 0.3f);
    if (ac->mode) kiln_node_set_int(o.n, "qk_matmul_output_mode", ac->mode);
    kiln_tensor *out[4] = {0};
    ck_assert_msg(kiln_eval_node(o.n, in, n_in, out, 4) == KILN_OK, "%s", kiln_last_error());
    int64_t nq = ac->B * ac->Hq * ac->Sq;
    double *y = malloc(sizeof(double) * (size_t)(nq * ac->vhd)), *qk = malloc(sizeof(double) * (size_t)(nq * T));
    ck_assert_ptr_nonnull(y);
    ck_assert_ptr_nonnull(qk);
    naive_attention(ac, F(q4), F(k4), F(v4), ac->P ? F(in[4]) : NULL, ac->P ? F(in[5]) : NULL,
                    (ac->mask == 1 || ac->mask == 3) ? F(in[3]) : NULL, ac->mask == 2 ? in[3]->data : NULL, mlen,
                    ac->nonpad ? in[6]->data : NULL, y, qk);
    /* Y: compare in 4-D order */
    ck_assert_ptr_nonnull(out[0]);
    ck_assert_int_eq(out[0]->rank, ac->rank3 ? 3 : 4);
    for (int64_t b = 0; b < ac->B; b++)
        for (int64_t h = 0; h < ac->Hq; h++)
            for (int64_t i = 0; i < ac->Sq; i++)
                for (int64_t e = 0; e < ac->vhd; e++) {
                    int64_t o4 = ((b * ac->Hq + h) * ac->Sq + i) * ac->vhd + e;
                    int64_t og = ac->rank3 ? ((b * ac->Sq + i) * ac->Hq + h) * ac->vhd + e : o4;
                    close_to(F(out[0])[og], y[o4], TOL, "Y", o4);
                }
    ck_assert_int_eq(out[3]->numel, nq * T);
    for (int64_t i = 0; i < nq * T; i++) {
        double want = qk[i];
        if (isinf(want)) ck_assert_msg(F(out[3])[i] == want, "qk[%lld]", (long long)i);
        else close_to(F(out[3])[i], want, TOL, "qk", i);
    }
    if (ac->P) { /* present = concat(past, new) along the sequence */
        for (int which = 0; which < 2; which++) {
            const kiln_tensor *pr = out[1 + which], *past = in[4 + which], *cur = which ? v4 : k4;
            int64_t E = which ? ac->vhd : ac->hd;
            ck_assert_int_eq(pr->dims[2], T);
            for (int64_t bh = 0; bh < ac->B * ac->Hkv; bh++)
                for (int64_t j = 0; j < T; j++)
                    for (int64_t e = 0; e < E; e++) {
                        float want = j < ac->P ? F(past)[(bh * ac->P + j) * E + e]
                                               : F(cur)[(bh * ac->Skv + j - ac->P) * E + e];
                        ck_assert(F(pr)[(bh * T + j) * E + e] == want);
                    }
        }
    }
    free(y);
    free(qk);
    free_all(out, 4);
    free_all(in, 7);
    kiln_tensor_free(q4);
    kiln_tensor_free(k4);
    kiln_tensor_free(v4);
    kiln_graph_free(o.g);
}

START_TEST(test_attention_vs_naive)
{
    rng_seed(31);
    /*            B  Hq Hkv Sq Skv P hd vhd r3 mask causal cap scale mode nonpad */
    att_case cases[] = {
        {2, 2, 2, 3, 4, 0, 4, 4, 0, 0, 0, 0, 0, 0, 0},  /* plain MHA */
        {2, 4, 2, 3, 5, 0, 4, 6, 0, 1, 0, 0, 0, 2, 0},  /* GQA, float mask, qk with bias */
        {1, 3, 1, 2, 3, 0, 8, 4, 1, 0, 1, 0, 1, 0, 0},  /* MQA, 3-D, causal, scale */
        {2, 2, 2, 3, 2, 4, 4, 5, 0, 2, 1, 0, 0, 3, 0},  /* past/present, bool mask + causal, softmax out */
        {2, 6, 3, 4, 3, 2, 4, 4, 1, 3, 0, 1, 0, 1, 0},  /* 3-D GQA with past, short mask, softcap */
        {2, 2, 2, 3, 5, 0, 4, 4, 0, 1, 0, 1, 1, 0, 1},  /* nonpad padding, softcap + scale, raw qk */
        {1, 2, 2, 4, 4, 0, 4, 4, 0, 0, 1, 1, 0, 2, 0},  /* causal square + softcap, qk mode 2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_att_case(&cases[i]);
}
END_TEST

/* Identity: when every key is equal, attention weights are uniform and Y is the mean of V. */
START_TEST(test_attention_uniform_keys)
{
    rng_seed(32);
    int64_t qd[4] = {1, 2, 3, 4}, kd[4] = {1, 2, 5, 4}, vd[4] = {1, 2, 5, 3};
    kiln_tensor *in[3] = {trand(4, qd), trand(4, kd), trand(4, vd)};
    for (int64_t h = 0; h < 2; h++)
        for (int64_t j = 1; j < 5; j++)
            for (int64_t e = 0; e < 4; e++)
                ((float *)in[1]->data)[(h * 5 + j) * 4 + e] = F(in[1])[(h * 5) * 4 + e];
    one_node o = mk(KILN_OP_Attention, 3, 1);
    kiln_tensor *out[1] = {0};
    ck_assert_int_eq(kiln_eval_node(o.n, in, 3, out, 1), KILN_OK);
    for (int64_t h = 0; h < 2; h++)
        for (int64_t i = 0; i < 3; i++)
            for (int64_t e = 0; e < 3; e++) {
                double m = 0;
                for (int64_t j = 0; j < 5; j++) m += F(in[2])[(h * 5 + j) * 3 + e] / 5.0;
                close_to(F(out[0])[(h * 3 + i) * 3 + e], m, TOL, "uniform", e);
            }
    free_all(out, 1);
    free_all(in, 3);
    kiln_graph_free(o.g);
}
END_TEST

START_TEST(test_attention_bad)
{
    int64_t qd[4] = {1, 3, 2, 4}, kd[4] = {1, 2, 2, 4}, k5[4] = {1, 3, 2, 5}, q3[3] = {1, 2, 12};
    int64_t md[2] = {2, 3}, pd[4] = {1, 3, 1, 4};
    kiln_tensor *q = tnew(KILN_F32, 4, qd), *k2 = tnew(KILN_F32, 4, kd), *kh5 = tnew(KILN_F32, 4, k5);
    kiln_tensor *qq3 = tnew(KILN_F32, 3, q3), *mask = tnew(KILN_F32, 2, md), *past = tnew(KILN_F32, 4, pd);
    kiln_tensor *qi = tnew(KILN_I32, 4, qd);
    kiln_tensor *out[4] = {0};
    one_node o = mk(KILN_OP_Attention, 3, 1);
    kiln_tensor *a[3] = {q, k2, k2}; /* 3 q heads over 2 kv heads */
    ck_assert_int_eq(kiln_eval_node(o.n, a, 3, out, 1), KILN_ERR_SHAPE);
    kiln_tensor *b[3] = {q, kh5, kh5}; /* head size 4 vs 5 */
    ck_assert_int_eq(kiln_eval_node(o.n, b, 3, out, 1), KILN_ERR_SHAPE);
    kiln_tensor *c[3] = {qq3, qq3, qq3}; /* 3-D without head counts */
    ck_assert_int_eq(kiln_eval_node(o.n, c, 3, out, 1), KILN_ERR_SHAPE);
    kiln_tensor *d[3] = {q, q, qq3}; /* mixed ranks */
    ck_assert_int_eq(kiln_eval_node(o.n, d, 3, out, 1), KILN_ERR_SHAPE);
    kiln_tensor *e[3] = {qi, qi, qi}; /* int inputs */
    ck_assert_int_eq(kiln_eval_node(o.n, e, 3, out, 1), KILN_ERR_SHAPE);
    kiln_node_set_int(o.n, "qk_matmul_output_mode", 7);
    kiln_tensor *f[3] = {q, q, q};
    ck_assert_int_eq(kiln_eval_node(o.n, f, 3, out, 1), KILN_ERR_SHAPE);
    kiln_graph_free(o.g);
    one_node om = mk(KILN_OP_Attention, 4, 1); /* mask longer than the keys */
    kiln_tensor *g[4] = {q, q, q, mask};
    ck_assert_int_eq(kiln_eval_node(om.n, g, 4, out, 1), KILN_ERR_SHAPE);
    kiln_graph_free(om.g);
    one_node op = mk_sel(KILN_OP_Attention, 6, 0x17u, 1, 1u); /* past_key without past_value */
    kiln_tensor *h[6] = {q, q, q, NULL, past, NULL};
    ck_assert_int_eq(kiln_eval_node(op.n, h, 6, out, 1), KILN_ERR_SHAPE);
    kiln_graph_free(op.g);
    for (int i = 0; i < 4; i++) ck_assert_ptr_null(out[i]);
    kiln_tensor_free(q);
    kiln_tensor_free(k2);
    kiln_tensor_free(kh5);
    kiln_tensor_free(qq3);
    kiln_tensor_free(mask);
    kiln_tensor_free(past);
    kiln_tensor_free(qi);
}
END_TEST

/* Symbolic batch and sequence dims flow to Y, present_key and qk_matmul_output. */
START_TEST(test_attention_infer_symbolic)
{
    kiln_graph *g = kiln_graph_new();
    int32_t sb = kiln_graph_symbol(g, "B"), ss = kiln_graph_symbol(g, "S"), sk = kiln_graph_symbol(g, "L");
    int vq = kiln_graph_add_value(g, "q"), vk = kiln_graph_add_value(g, "k"), vv = kiln_graph_add_value(g, "v");
    int64_t qd[3] = {-1, -1, 64}, kd[3] = {-1, -1, 32};
    kiln_value_set(&g->values[vq], KILN_F16, 3, qd);
    kiln_value_set(&g->values[vk], KILN_F16, 3, kd);
    kiln_value_set(&g->values[vv], KILN_F16, 3, kd);
    g->values[vq].sym[0] = g->values[vk].sym[0] = g->values[vv].sym[0] = sb;
    g->values[vq].sym[1] = ss;
    g->values[vk].sym[1] = g->values[vv].sym[1] = sk;
    int outs[4];
    for (int i = 0; i < 4; i++) outs[i] = kiln_graph_add_value(g, NULL);
    int ins[3] = {vq, vk, vv};
    int ni = kiln_graph_add_node(g, KILN_OP_Attention, "a", ins, 3, outs, 4);
    kiln_node_set_int(&g->nodes[ni], "q_num_heads", 8);
    kiln_node_set_int(&g->nodes[ni], "kv_num_heads", 4);
    ck_assert_int_eq(kiln_graph_infer(g), KILN_OK);
    const kiln_value *y = &g->values[outs[0]], *pk = &g->values[outs[1]], *qk = &g->values[outs[3]];
    ck_assert_int_eq(y->dtype, KILN_F16);
    ck_assert_int_eq(y->rank, 3);
    ck_assert_int_eq(y->sym[0], sb);
    ck_assert_int_eq(y->sym[1], ss);
    ck_assert_int_eq(y->dims[2], 64);
    ck_assert_int_eq(pk->rank, 4);
    ck_assert_int_eq(pk->dims[1], 4);
    ck_assert_int_eq(pk->dims[3], 8);
    ck_assert_int_eq(pk->sym[2], sk);
    ck_assert_int_eq(qk->dims[1], 8);
    ck_assert_int_eq(qk->sym[2], ss);
    ck_assert_int_eq(qk->sym[3], sk);
    /* 64 is not divisible by 5 heads */
    kiln_node_set_int(&g->nodes[ni], "q_num_heads", 5);
    ck_assert_int_eq(kiln_graph_infer(g), KILN_ERR_SHAPE);
    kiln_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------ runner -- */

static Suite *nlp_suite(void)
{
    Suite *s = suite_create("ops_nlp");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_losses_vs_naive);
    tcase_add_test(tc, test_losses_identities);
    tcase_add_test(tc, test_losses_bad);
    tcase_add_test(tc, test_losses_infer_symbolic);
    tcase_add_test(tc, test_rope_vs_naive);
    tcase_add_test(tc, test_rope_norm_preserved);
    tcase_add_test(tc, test_rope_bad);
    tcase_add_test(tc, test_attention_vs_naive);
    tcase_add_test(tc, test_attention_uniform_keys);
    tcase_add_test(tc, test_attention_bad);
    tcase_add_test(tc, test_attention_infer_symbolic);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(nlp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
