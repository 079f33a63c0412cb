/* check_ops_reduce.c — reduce-family ops (ir/ops_reduce.c) against naive references
 * written here, on seeded random inputs, plus bad-input cases that must fail cleanly. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ------------------------------------------------------------ fixtures -- */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 2654435761u + 1; }
static double rng_unit(void) /* [0, 1) */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static float rng_f(void) { return (float)(rng_unit() * 4.0 - 2.0); }

/* A one-node graph so the node owns its attributes. */
typedef struct one_node {
    kiln_graph *g;
    kiln_node *n;
} one_node;

static one_node mk(kiln_op op, int n_in, int n_out)
{
    one_node o;
    o.g = kiln_graph_new();
    ck_assert_ptr_nonnull(o.g);
    int ins[8], outs[8];
    for (int i = 0; i < n_in; i++) ins[i] = kiln_graph_add_value(o.g, NULL);
    for (int i = 0; i < n_out; i++) outs[i] = kiln_graph_add_value(o.g, NULL);
    int id = kiln_graph_add_node(o.g, op, "t", ins, n_in, outs, n_out);
    ck_assert_int_ge(id, 0);
    o.n = &o.g->nodes[id];
    return o;
}

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

static kiln_tensor *ti64(int64_t n, const int64_t *v)
{
    kiln_tensor *t = tnew(KILN_I64, 1, &n);
    if (n && v) memcpy(t->data, v, (size_t)n * 8);
    return t;
}

static void free_all(kiln_tensor **ts, int n)
{
    for (int i = 0; i < n; i++) kiln_tensor_free(ts[i]);
}

static void close_to(double got, double want, double tol, const char *what, int64_t i)
{
    if (isnan(want)) {
        ck_assert_msg(isnan(got), "%s[%lld]: got %g, want NaN", what, (long long)i, got);
        return;
    }
    if (isinf(want)) {
        ck_assert_msg(got == want, "%s[%lld]: got %g, want %g", what, (long long)i, got, want);
        return;
    }
    ck_assert_msg(fabs(got - want) <= tol * (1.0 + fabs(want)), "%s[%lld]: got %.9g, want %.9g", what,
                  (long long)i, got, want);
}

/* ------------------------------------------------- Reduce* vs naive -- */

typedef enum { K_SUM, K_MEAN, K_PROD, K_MAX, K_MIN, K_L1, K_L2, K_SUMSQ, K_LOGSUM, K_LOGSUMEXP } rk;
static const kiln_op red_ops[10] = {KILN_OP_ReduceSum, KILN_OP_ReduceMean, KILN_OP_ReduceProd,
                                    KILN_OP_ReduceMax, KILN_OP_ReduceMin,  KILN_OP_ReduceL1,
                                    KILN_OP_ReduceL2,  KILN_OP_ReduceSumSquare, KILN_OP_ReduceLogSum,
                                    KILN_OP_ReduceLogSumExp};

/* Naive: for each output element, loop over every input element and test membership. */
static double naive_reduce(rk k, const float *x, const int64_t *dims, unsigned mask, const int64_t *oidx)
{
    double acc = k == K_PROD ? 1.0 : k == K_MAX ? -INFINITY : k == K_MIN ? INFINITY : 0.0;
    double cnt = 0;
    for (int64_t a = 0; a < dims[0]; a++)
        for (int64_t b = 0; b < dims[1]; b++)
            for (int64_t c = 0; c < dims[2]; c++) {
                int64_t id[3] = {a, b, c};
                bool in_set = true;
                for (int d = 0; d < 3; d++)
                    if (!(mask >> d & 1) && id[d] != oidx[d]) in_set = false;
                if (!in_set) continue;
                double v = x[(a * dims[1] + b) * dims[2] + c];
                cnt++;
                switch (k) {
                case K_SUM: case K_MEAN: case K_LOGSUM: acc += v; break;
                case K_PROD: acc *= v; break;
                case K_MAX: acc = v > acc ? v : acc; break;
                case K_MIN: acc = v < acc ? v : acc; break;
                case K_L1: acc += fabs(v); break;
                case K_L2: case K_SUMSQ: acc += v * v; break;
                case K_LOGSUMEXP: acc += exp(v); break;
                }
            }
    switch (k) {
    case K_MEAN: return acc / cnt;
    case K_L2: return sqrt(acc);
    case K_LOGSUM: case K_LOGSUMEXP: return log(acc);
    default: return acc;
    }
}

START_TEST(test_reduce_all_axes_subsets)
{
    rng_seed(1);
    int64_t dims[3] = {3, 4, 5};
    kiln_tensor *x = trand(3, dims);
    /* Keep values positive for LogSum so log is defined. */
    kiln_tensor *xp = kiln_tensor_clone(x);
    for (int64_t i = 0; i < xp->numel; i++) ((float *)xp->data)[i] = fabsf(((float *)xp->data)[i]) + 0.1f;
    for (int k = 0; k < 10; k++)
        for (unsigned mask = 0; mask < 8; mask++)
            for (int keep = 0; keep < 2; keep++) {
                one_node o = mk(red_ops[k], 2, 1);
                kiln_node_set_int(o.n, "keepdims", keep);
                int64_t axv[3];
                int na = 0;
                for (int d = 0; d < 3; d++)
                    if (mask >> d & 1) axv[na++] = (d % 2) ? d - 3 : d; /* mix negative axes */
                kiln_tensor *axes = ti64(na, axv);
                const kiln_tensor *src = k == K_LOGSUM ? xp : x;
                kiln_tensor *ins[2] = {(kiln_tensor *)src, axes}, *outs[1] = {NULL};
                ck_assert_int_eq(kiln_eval_node(o.n, ins, 2, outs, 1), KILN_OK);
                unsigned eff = mask ? mask : 7; /* empty axes reduce all */
                int want_rank = keep ? 3 : 3 - __builtin_popcount(eff);
                ck_assert_int_eq(outs[0]->rank, want_rank);
                int64_t kd[3];
                for (int d = 0; d < 3; d++) kd[d] = (eff >> d & 1) ? 1 : dims[d];
                int64_t i = 0, oi[3];
                for (oi[0] = 0; oi[0] < kd[0]; oi[0]++)
                    for (oi[1] = 0; oi[1] < kd[1]; oi[1]++)
                        for (oi[2] = 0; oi[2] < kd[2]; oi[2]++, i++) {
                            double want = naive_reduce((rk)k, src->data, dims, eff, oi);
                            close_to(((float *)outs[0]->data)[i], want, 2e-5, kiln_op_name(red_ops[k]), i);
                        }
                ck_assert_int_eq(i, outs[0]->numel);
                kiln_tensor_free(outs[0]);
                kiln_tensor_free(axes);
                kiln_graph_free(o.g);
            }
    kiln_tensor_free(x);
    kiln_tensor_free(xp);
}
END_TEST

START_TEST(test_reduce_empty_set_and_noop)
{
    int64_t dims[3] = {2, 0, 4}, ax1 = 1;
    kiln_tensor *x = tnew(KILN_F32, 3, dims);
    const double want[10] = {0, NAN, 1, -INFINITY, INFINITY, 0, 0, 0, -INFINITY, -INFINITY};
    for (int k = 0; k < 10; k++) {
        one_node o = mk(red_ops[k], 2, 1);
        kiln_tensor *axes = ti64(1, &ax1), *ins[2] = {x, axes}, *outs[1] = {NULL};
        ck_assert_int_eq(kiln_eval_node(o.n, ins, 2, outs, 1), KILN_OK);
        ck_assert_int_eq(outs[0]->numel, 8); /* [2,1,4] */
        for (int64_t i = 0; i < 8; i++) close_to(((float *)outs[0]->data)[i], want[k], 0, "empty", i);
        kiln_tensor_free(outs[0]);
        kiln_tensor_free(axes);
        kiln_graph_free(o.g);
    }
    kiln_tensor_free(x);

    /* noop_with_empty_axes = 1 with empty axes: the identity. */
    rng_seed(2);
    int64_t d2[2] = {3, 2};
    kiln_tensor *y = trand(2, d2), *axes = ti64(0, NULL), *ins[2] = {y, axes}, *outs[1] = {NULL};
    one_node o = mk(KILN_OP_ReduceSum, 2, 1);
    kiln_node_set_int(o.n, "noop_with_empty_axes", 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 2, outs, 1), KILN_OK);
    ck_assert_int_eq(outs[0]->rank, 2);
    ck_assert_mem_eq(outs[0]->data, y->data, 6 * sizeof(float));
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);

    /* Absent axes input reduces everything; keepdims = 0 gives a scalar. */
    o = mk(KILN_OP_ReduceMean, 1, 1);
    kiln_node_set_int(o.n, "keepdims", 0);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    ck_assert_int_eq(outs[0]->rank, 0);
    double s = 0;
    for (int i = 0; i < 6; i++) s += ((float *)y->data)[i];
    close_to(((float *)outs[0]->data)[0], s / 6, 1e-6, "mean", 0);
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);
    kiln_tensor_free(y);
    kiln_tensor_free(axes);
}
END_TEST

START_TEST(test_reduce_int_exact)
{
    /* i64 values beyond 2^53 must reduce exactly. */
    int64_t n = 4;
    kiln_tensor *x = tnew(KILN_I64, 1, &n);
    int64_t *p = x->data;
    p[0] = INT64_C(9007199254740993);
    p[1] = -5;
    p[2] = INT64_C(9007199254740995);
    p[3] = INT64_MIN;
    kiln_tensor *ins[1] = {x}, *outs[1] = {NULL};
    one_node o = mk(KILN_OP_ReduceMax, 1, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    ck_assert_int_eq(((int64_t *)outs[0]->data)[0], INT64_C(9007199254740995));
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);
    o = mk(KILN_OP_ReduceMin, 1, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    ck_assert_int_eq(((int64_t *)outs[0]->data)[0], INT64_MIN);
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);
    p[3] = 7;
    o = mk(KILN_OP_ReduceSum, 1, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    ck_assert_int_eq(((int64_t *)outs[0]->data)[0], INT64_C(9007199254740993) - 5 + INT64_C(9007199254740995) + 7);
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);
    kiln_tensor_free(x);

    /* u64 above INT64_MAX compares as unsigned. */
    kiln_tensor *u = tnew(KILN_U64, 1, &n);
    uint64_t *q = u->data;
    q[0] = 3; q[1] = UINT64_MAX - 1; q[2] = 1; q[3] = UINT64_C(1) << 63;
    ins[0] = u;
    o = mk(KILN_OP_ReduceMax, 1, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    ck_assert(((uint64_t *)outs[0]->data)[0] == UINT64_MAX - 1);
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);
    kiln_tensor_free(u);

    /* i32: sum of squares and L1 of negatives. */
    int64_t d2[2] = {2, 3};
    kiln_tensor *t = tnew(KILN_I32, 2, d2);
    int32_t v[6] = {-3, 4, 5, -6, 0, 2};
    memcpy(t->data, v, sizeof v);
    int64_t ax = 1;
    kiln_tensor *axes = ti64(1, &ax), *ins2[2] = {t, axes};
    o = mk(KILN_OP_ReduceSumSquare, 2, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins2, 2, outs, 1), KILN_OK);
    ck_assert_int_eq(outs[0]->dtype, KILN_I32);
    ck_assert_int_eq(((int32_t *)outs[0]->data)[0], 50);
    ck_assert_int_eq(((int32_t *)outs[0]->data)[1], 40);
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);
    o = mk(KILN_OP_ReduceL1, 2, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins2, 2, outs, 1), KILN_OK);
    ck_assert_int_eq(((int32_t *)outs[0]->data)[0], 12);
    ck_assert_int_eq(((int32_t *)outs[0]->data)[1], 8);
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);
    kiln_tensor_free(t);
    kiln_tensor_free(axes);

    /* bool min/max. */
    kiln_tensor *b = tnew(KILN_BOOL, 2, d2);
    uint8_t bv[6] = {1, 0, 1, 1, 1, 1};
    memcpy(b->data, bv, 6);
    axes = ti64(1, &ax);
    kiln_tensor *ins3[2] = {b, axes};
    o = mk(KILN_OP_ReduceMin, 2, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins3, 2, outs, 1), KILN_OK);
    ck_assert_int_eq(outs[0]->dtype, KILN_BOOL);
    ck_assert_int_eq(((uint8_t *)outs[0]->data)[0], 0);
    ck_assert_int_eq(((uint8_t *)outs[0]->data)[1], 1);
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);
    kiln_tensor_free(b);
    kiln_tensor_free(axes);
}
END_TEST

START_TEST(test_reduce_bad)
{
    int64_t dims[2] = {2, 3}, bad = 2, dup[2] = {1, -1};
    kiln_tensor *x = tnew(KILN_F32, 2, dims), *outs[1] = {NULL};
    kiln_tensor *a1 = ti64(1, &bad), *a2 = ti64(2, dup);
    kiln_tensor *ins1[2] = {x, a1}, *ins2[2] = {x, a2};
    one_node o = mk(KILN_OP_ReduceSum, 2, 1);
    ck_assert_int_ne(kiln_eval_node(o.n, ins1, 2, outs, 1), KILN_OK); /* axis out of range */
    ck_assert_ptr_null(outs[0]);
    ck_assert_int_ne(kiln_eval_node(o.n, ins2, 2, outs, 1), KILN_OK); /* repeated axis */
    kiln_graph_free(o.g);
    /* bool data is only for Max/Min */
    kiln_tensor *b = tnew(KILN_BOOL, 2, dims), *insb[1] = {b};
    o = mk(KILN_OP_ReduceSum, 1, 1);
    ck_assert_int_ne(kiln_eval_node(o.n, insb, 1, outs, 1), KILN_OK);
    kiln_graph_free(o.g);
    kiln_tensor_free(b);
    free_all((kiln_tensor *[]){x, a1, a2}, 3);
}
END_TEST

/* ------------------------------------------------------- ArgMax/Min -- */

START_TEST(test_argmax_argmin)
{
    int64_t dims[2] = {2, 4};
    kiln_tensor *x = tnew(KILN_F32, 2, dims), *ins[1] = {x}, *outs[1] = {NULL};
    float v[8] = {1, 3, 3, 0, -1, -1, 2, -1};
    memcpy(x->data, v, sizeof v);
    struct { kiln_op op; int last; int64_t want[2]; } cases[4] = {
        {KILN_OP_ArgMax, 0, {1, 2}}, {KILN_OP_ArgMax, 1, {2, 2}},
        {KILN_OP_ArgMin, 0, {3, 0}}, {KILN_OP_ArgMin, 1, {3, 3}}};
    for (int c = 0; c < 4; c++) {
        one_node o = mk(cases[c].op, 1, 1);
        kiln_node_set_int(o.n, "axis", -1);
        kiln_node_set_int(o.n, "keepdims", 0);
        kiln_node_set_int(o.n, "select_last_index", cases[c].last);
        ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
        ck_assert_int_eq(outs[0]->dtype, KILN_I64);
        ck_assert_int_eq(outs[0]->rank, 1);
        ck_assert_int_eq(((int64_t *)outs[0]->data)[0], cases[c].want[0]);
        ck_assert_int_eq(((int64_t *)outs[0]->data)[1], cases[c].want[1]);
        kiln_tensor_free(outs[0]);
        kiln_graph_free(o.g);
    }
    /* axis 0, keepdims default: shape [1,4] */
    one_node o = mk(KILN_OP_ArgMax, 1, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    ck_assert_int_eq(outs[0]->rank, 2);
    ck_assert_int_eq(outs[0]->dims[0], 1);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(((int64_t *)outs[0]->data)[i], 0);
    kiln_tensor_free(outs[0]);
    /* bad: axis out of range */
    kiln_node_set_int(o.n, "axis", 2);
    ck_assert_int_ne(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    kiln_graph_free(o.g);
    kiln_tensor_free(x);
}
END_TEST

/* ---------------------------------------------------- softmax family -- */

START_TEST(test_softmax_family)
{
    rng_seed(3);
    int64_t dims[3] = {2, 3, 4};
    kiln_tensor *x = trand(3, dims), *ins[1] = {x};
    const float *xd = x->data;
    for (int64_t axis = -3; axis < 3; axis++) {
        int64_t a = axis < 0 ? axis + 3 : axis;
        kiln_tensor *s[1] = {NULL}, *l[1] = {NULL}, *h[1] = {NULL};
        one_node os = mk(KILN_OP_Softmax, 1, 1), ol = mk(KILN_OP_LogSoftmax, 1, 1), oh = mk(KILN_OP_Hardmax, 1, 1);
        kiln_node_set_int(os.n, "axis", axis);
        kiln_node_set_int(ol.n, "axis", axis);
        kiln_node_set_int(oh.n, "axis", axis);
        ck_assert_int_eq(kiln_eval_node(os.n, ins, 1, s, 1), KILN_OK);
        ck_assert_int_eq(kiln_eval_node(ol.n, ins, 1, l, 1), KILN_OK);
        ck_assert_int_eq(kiln_eval_node(oh.n, ins, 1, h, 1), KILN_OK);
        const float *sd = s[0]->data, *ld = l[0]->data, *hd = h[0]->data;
        int64_t str[3] = {12, 4, 1};
        /* Naive per-slice: softmax(x)_k = exp(x_k) / sum exp(x_j). */
        for (int64_t i = 0; i < 24; i++) {
            int64_t pos = (i / str[a]) % dims[a], base = i - pos * str[a];
            double den = 0, mx = -INFINITY;
            int64_t am = 0;
            for (int64_t j = 0; j < dims[a]; j++) {
                double v = xd[base + j * str[a]];
                den += exp(v);
                if (v > mx) { mx = v; am = j; }
            }
            close_to(sd[i], exp(xd[i]) / den, 1e-6, "softmax", i);
            close_to(ld[i], xd[i] - log(den), 1e-6, "logsoftmax", i);
            ck_assert_float_eq(hd[i], pos == am ? 1.0f : 0.0f);
        }
        free_all(s, 1); free_all(l, 1); free_all(h, 1);
        kiln_graph_free(os.g); kiln_graph_free(ol.g); kiln_graph_free(oh.g);
    }
    /* Old (coerce-to-2D) semantics: axis 1 normalizes over the flattened [3*4] tail. */
    one_node o = mk(KILN_OP_Softmax, 1, 1);
    kiln_node_set_int(o.n, "kiln_coerce_2d", 1);
    kiln_tensor *outs[1] = {NULL};
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    for (int r = 0; r < 2; r++) {
        double den = 0;
        for (int j = 0; j < 12; j++) den += exp(xd[r * 12 + j]);
        for (int j = 0; j < 12; j++)
            close_to(((float *)outs[0]->data)[r * 12 + j], exp(xd[r * 12 + j]) / den, 1e-6, "coerce", j);
    }
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);
    /* Large inputs must not overflow. */
    float big[3] = {10000.f, 10001.f, 10002.f};
    int64_t n3 = 3;
    kiln_tensor *xb = tnew(KILN_F32, 1, &n3), *insb[1] = {xb};
    memcpy(xb->data, big, sizeof big);
    o = mk(KILN_OP_Softmax, 1, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, insb, 1, outs, 1), KILN_OK);
    close_to(((float *)outs[0]->data)[2], 1.0 / (1.0 + exp(-1.0) + exp(-2.0)), 1e-6, "big", 2);
    kiln_tensor_free(outs[0]);
    kiln_graph_free(o.g);
    kiln_tensor_free(xb);
    /* bad: int input, axis out of range */
    kiln_tensor *xi = tnew(KILN_I32, 3, dims), *insi[1] = {xi};
    o = mk(KILN_OP_Softmax, 1, 1);
    ck_assert_int_ne(kiln_eval_node(o.n, insi, 1, outs, 1), KILN_OK);
    kiln_node_set_int(o.n, "axis", 3);
    ck_assert_int_ne(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    kiln_graph_free(o.g);
    kiln_tensor_free(xi);
    kiln_tensor_free(x);
}
END_TEST

/* ------------------------------------------------------------ CumSum -- */

START_TEST(test_cumsum)
{
    rng_seed(4);
    int64_t dims[2] = {3, 5};
    kiln_tensor *x = tnew(KILN_F64, 2, dims);
    double *xd = x->data;
    for (int i = 0; i < 15; i++) xd[i] = rng_f();
    for (int axis = -2; axis < 2; axis++)
        for (int ex = 0; ex < 2; ex++)
            for (int rev = 0; rev < 2; rev++) {
                int64_t one = 1;
                kiln_tensor *at = tnew(KILN_I32, 0, &one), *ins[2] = {x, at}, *outs[1] = {NULL};
                ((int32_t *)at->data)[0] = axis;
                one_node o = mk(KILN_OP_CumSum, 2, 1);
                kiln_node_set_int(o.n, "exclusive", ex);
                kiln_node_set_int(o.n, "reverse", rev);
                ck_assert_int_eq(kiln_eval_node(o.n, ins, 2, outs, 1), KILN_OK);
                int a = axis < 0 ? axis + 2 : axis;
                for (int r = 0; r < 3; r++)
                    for (int c = 0; c < 5; c++) {
                        int pos = a == 0 ? r : c;
                        double s = 0;
                        for (int j = 0; j < dims[a]; j++) {
                            bool take = rev ? (ex ? j > pos : j >= pos) : (ex ? j < pos : j <= pos);
                            if (take) s += a == 0 ? xd[j * 5 + c] : xd[r * 5 + j];
                        }
                        close_to(((double *)outs[0]->data)[r * 5 + c], s, 1e-12, "cumsum", r * 5 + c);
                    }
                kiln_tensor_free(outs[0]);
                kiln_tensor_free(at);
                kiln_graph_free(o.g);
            }
    kiln_tensor_free(x);
    /* int32 exclusive, and a bad axis */
    int64_t n = 4;
    kiln_tensor *xi = tnew(KILN_I32, 1, &n), *at = tnew(KILN_I64, 0, NULL), *ins[2] = {xi, at}, *outs[1] = {NULL};
    int32_t v[4] = {1, 2, 3, 4};
    memcpy(xi->data, v, sizeof v);
    one_node o = mk(KILN_OP_CumSum, 2, 1);
    kiln_node_set_int(o.n, "exclusive", 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 2, outs, 1), KILN_OK);
    ck_assert_int_eq(((int32_t *)outs[0]->data)[3], 6);
    ck_assert_int_eq(((int32_t *)outs[0]->data)[0], 0);
    kiln_tensor_free(outs[0]);
    outs[0] = NULL;
    ((int64_t *)at->data)[0] = 1;
    ck_assert_int_ne(kiln_eval_node(o.n, ins, 2, outs, 1), KILN_OK);
    kiln_graph_free(o.g);
    kiln_tensor_free(xi);
    kiln_tensor_free(at);
}
END_TEST

/* -------------------------------------------------------------- TopK -- */

START_TEST(test_topk)
{
    rng_seed(5);
    int64_t dims[2] = {3, 6};
    kiln_tensor *x = tnew(KILN_F32, 2, dims);
    float *xd = x->data;
    for (int i = 0; i < 18; i++) xd[i] = (float)(int)(rng_unit() * 4); /* many ties */
    for (int largest = 0; largest < 2; largest++) {
        int64_t k = 4;
        kiln_tensor *kt = ti64(1, &k), *ins[2] = {x, kt}, *outs[2] = {NULL, NULL};
        one_node o = mk(KILN_OP_TopK, 2, 2);
        kiln_node_set_int(o.n, "largest", largest);
        ck_assert_int_eq(kiln_eval_node(o.n, ins, 2, outs, 2), KILN_OK);
        ck_assert_int_eq(outs[0]->dims[1], 4);
        ck_assert_int_eq(outs[1]->dtype, KILN_I64);
        for (int r = 0; r < 3; r++) {
            /* Naive selection: repeatedly take the best unused element, lowest index on ties. */
            bool used[6] = {0};
            for (int j = 0; j < 4; j++) {
                int best = -1;
                for (int c = 0; c < 6; c++) {
                    if (used[c]) continue;
                    float v = xd[r * 6 + c];
                    if (best < 0 || (largest ? v > xd[r * 6 + best] : v < xd[r * 6 + best])) best = c;
                }
                used[best] = true;
                ck_assert_int_eq(((int64_t *)outs[1]->data)[r * 4 + j], best);
                ck_assert_float_eq(((float *)outs[0]->data)[r * 4 + j], xd[r * 6 + best]);
            }
        }
        free_all(outs, 2);
        outs[0] = outs[1] = NULL;
        /* bad: K larger than the axis */
        ((int64_t *)kt->data)[0] = 7;
        ck_assert_int_ne(kiln_eval_node(o.n, ins, 2, outs, 2), KILN_OK);
        kiln_tensor_free(kt);
        kiln_graph_free(o.g);
    }
    kiln_tensor_free(x);
    /* u64 beyond INT64_MAX sorts as unsigned */
    int64_t n = 3, k = 1;
    kiln_tensor *u = tnew(KILN_U64, 1, &n), *kt = ti64(1, &k), *ins[2] = {u, kt}, *outs[2] = {NULL, NULL};
    uint64_t uv[3] = {5, UINT64_MAX, 7};
    memcpy(u->data, uv, sizeof uv);
    one_node o = mk(KILN_OP_TopK, 2, 2);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 2, outs, 2), KILN_OK);
    ck_assert(((uint64_t *)outs[0]->data)[0] == UINT64_MAX);
    ck_assert_int_eq(((int64_t *)outs[1]->data)[0], 1);
    free_all(outs, 2);
    kiln_graph_free(o.g);
    kiln_tensor_free(u);
    kiln_tensor_free(kt);
}
END_TEST

/* ---------------------------------------------------- normalizations -- */

START_TEST(test_batch_instance_norm)
{
    rng_seed(6);
    int64_t dims[4] = {2, 3, 2, 2}, c3 = 3;
    kiln_tensor *x = trand(4, dims), *s = trand(1, &c3), *b = trand(1, &c3), *m = trand(1, &c3);
    kiln_tensor *v = trand(1, &c3);
    for (int i = 0; i < 3; i++) ((float *)v->data)[i] = fabsf(((float *)v->data)[i]) + 0.5f;
    const float *xd = x->data, *sd = s->data, *bd = b->data, *md = m->data, *vd = v->data;
    kiln_tensor *ins[5] = {x, s, b, m, v}, *outs[3] = {NULL, NULL, NULL};
    one_node o = mk(KILN_OP_BatchNormalization, 5, 1);
    kiln_node_set_float(o.n, "epsilon", 1e-3f);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 5, outs, 1), KILN_OK);
    for (int64_t i = 0; i < 24; i++) {
        int ch = (int)((i / 4) % 3);
        double want = (xd[i] - md[ch]) / sqrt(vd[ch] + (double)1e-3f) * sd[ch] + bd[ch];
        close_to(((float *)outs[0]->data)[i], want, 1e-5, "batchnorm", i);
    }
    kiln_tensor_free(outs[0]);
    outs[0] = NULL;
    kiln_node_set_int(o.n, "training_mode", 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 5, outs, 1), KILN_ERR_UNSUPPORTED);
    kiln_graph_free(o.g);
    /* bad: scale of the wrong length */
    int64_t c2 = 2;
    kiln_tensor *s2 = trand(1, &c2), *bad[5] = {x, s2, b, m, v};
    o = mk(KILN_OP_BatchNormalization, 5, 1);
    ck_assert_int_ne(kiln_eval_node(o.n, bad, 5, outs, 1), KILN_OK);
    kiln_graph_free(o.g);

    /* InstanceNormalization: per (n, c) over the spatial dims. */
    kiln_tensor *iins[3] = {x, s, b};
    o = mk(KILN_OP_InstanceNormalization, 3, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, iins, 3, outs, 1), KILN_OK);
    for (int nc = 0; nc < 6; nc++) {
        double mean = 0, var = 0;
        for (int j = 0; j < 4; j++) mean += xd[nc * 4 + j] / 4.0;
        for (int j = 0; j < 4; j++) var += (xd[nc * 4 + j] - mean) * (xd[nc * 4 + j] - mean) / 4.0;
        for (int j = 0; j < 4; j++) {
            double want = (xd[nc * 4 + j] - mean) / sqrt(var + (double)1e-5f) * sd[nc % 3] + bd[nc % 3];
            close_to(((float *)outs[0]->data)[nc * 4 + j], want, 1e-5, "instancenorm", nc * 4 + j);
        }
    }
    kiln_tensor_free(outs[0]);
    outs[0] = NULL;
    kiln_tensor *ibad[3] = {x, s2, b};
    ck_assert_int_ne(kiln_eval_node(o.n, ibad, 3, outs, 1), KILN_OK);
    kiln_graph_free(o.g);
    free_all((kiln_tensor *[]){x, s, b, m, v, s2}, 6);
}
END_TEST

START_TEST(test_layer_rms_norm)
{
    rng_seed(7);
    int64_t dims[3] = {2, 3, 4};
    kiln_tensor *x = trand(3, dims);
    const float *xd = x->data;
    for (int axis = -3; axis < 3; axis++) {
        int a = axis < 0 ? axis + 3 : axis;
        int64_t rows = 1, cols = 1;
        for (int d = 0; d < 3; d++) *(d < a ? &rows : &cols) *= dims[d];
        kiln_tensor *w = trand(3 - a, dims + a), *b = trand(3 - a, dims + a);
        const float *wd = w->data, *bd = b->data;
        kiln_tensor *ins[3] = {x, w, b}, *outs[3] = {NULL, NULL, NULL};
        one_node o = mk(KILN_OP_LayerNormalization, 3, 3);
        kiln_node_set_int(o.n, "axis", axis);
        ck_assert_int_eq(kiln_eval_node(o.n, ins, 3, outs, 3), KILN_OK);
        ck_assert_int_eq(outs[1]->rank, 3);
        ck_assert_int_eq(outs[1]->numel, rows);
        ck_assert_int_eq(outs[2]->dtype, KILN_F32);
        kiln_tensor *ro[1] = {NULL};
        one_node orms = mk(KILN_OP_RMSNormalization, 2, 1);
        kiln_node_set_int(orms.n, "axis", axis);
        kiln_node_set_float(orms.n, "epsilon", 0.1f);
        ck_assert_int_eq(kiln_eval_node(orms.n, ins, 2, ro, 1), KILN_OK);
        for (int64_t r = 0; r < rows; r++) {
            double mean = 0, var = 0, ms = 0;
            for (int64_t j = 0; j < cols; j++) mean += xd[r * cols + j];
            mean /= (double)cols;
            for (int64_t j = 0; j < cols; j++) {
                double d = xd[r * cols + j] - mean;
                var += d * d / (double)cols;
                ms += (double)xd[r * cols + j] * xd[r * cols + j] / (double)cols;
            }
            double inv = 1.0 / sqrt(var + (double)1e-5f);
            close_to(((float *)outs[1]->data)[r], mean, 1e-5, "ln mean", r);
            close_to(((float *)outs[2]->data)[r], inv, 1e-5, "ln invstd", r);
            for (int64_t j = 0; j < cols; j++) {
                close_to(((float *)outs[0]->data)[r * cols + j], (xd[r * cols + j] - mean) * inv * wd[j] + bd[j],
                         1e-5, "layernorm", r * cols + j);
                close_to(((float *)ro[0]->data)[r * cols + j], xd[r * cols + j] / sqrt(ms + (double)0.1f) * wd[j],
                         1e-5, "rmsnorm", r * cols + j);
            }
        }
        free_all(outs, 3);
        free_all(ro, 1);
        kiln_tensor_free(w);
        kiln_tensor_free(b);
        kiln_graph_free(o.g);
        kiln_graph_free(orms.g);
    }
    /* f16 input computes through f32 and stays close to the f32 result. */
    kiln_tensor *xh = tnew(KILN_F16, 3, dims), *w = tnew(KILN_F16, 1, dims + 2);
    for (int i = 0; i < 24; i++) ((uint16_t *)xh->data)[i] = kiln_f32_to_f16(xd[i]);
    for (int i = 0; i < 4; i++) ((uint16_t *)w->data)[i] = kiln_f32_to_f16(1.0f);
    kiln_tensor *ins[2] = {xh, w}, *outs[3] = {NULL, NULL, NULL};
    one_node o = mk(KILN_OP_LayerNormalization, 2, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 2, outs, 1), KILN_OK);
    ck_assert_int_eq(outs[0]->dtype, KILN_F16);
    for (int r = 0; r < 6; r++) {
        double mean = 0, var = 0;
        for (int j = 0; j < 4; j++) mean += kiln_f16_to_f32(((uint16_t *)xh->data)[r * 4 + j]) / 4.0;
        for (int j = 0; j < 4; j++) {
            double d = kiln_f16_to_f32(((uint16_t *)xh->data)[r * 4 + j]) - mean;
            var += d * d / 4.0;
        }
        for (int j = 0; j < 4; j++)
            close_to(kiln_f16_to_f32(((uint16_t *)outs[0]->data)[r * 4 + j]),
                     (kiln_f16_to_f32(((uint16_t *)xh->data)[r * 4 + j]) - mean) / sqrt(var + 1e-5), 2e-3, "ln f16", j);
    }
    kiln_tensor_free(outs[0]);
    outs[0] = NULL;
    /* bad: axis out of range; scale that does not broadcast */
    kiln_node_set_int(o.n, "axis", 3);
    ck_assert_int_ne(kiln_eval_node(o.n, ins, 2, outs, 1), KILN_OK);
    kiln_graph_free(o.g);
    int64_t five = 5;
    kiln_tensor *w5 = trand(1, &five), *bad[2] = {x, w5};
    o = mk(KILN_OP_RMSNormalization, 2, 1);
    ck_assert_int_ne(kiln_eval_node(o.n, bad, 2, outs, 1), KILN_OK);
    kiln_graph_free(o.g);
    free_all((kiln_tensor *[]){x, xh, w, w5}, 4);
}
END_TEST

START_TEST(test_group_norm)
{
    rng_seed(8);
    int64_t dims[4] = {2, 4, 3, 1}, c4 = 4, g2 = 2;
    kiln_tensor *x = trand(4, dims), *sc = trand(1, &c4), *bc = trand(1, &c4);
    kiln_tensor *sg = trand(1, &g2), *bg = trand(1, &g2);
    const float *xd = x->data;
    for (int per_group = 0; per_group < 2; per_group++) {
        kiln_tensor *ins[3] = {x, per_group ? sg : sc, per_group ? bg : bc}, *outs[1] = {NULL};
        one_node o = mk(KILN_OP_GroupNormalization, 3, 1);
        kiln_node_set_int(o.n, "num_groups", 2);
        ck_assert_int_eq(kiln_eval_node(o.n, ins, 3, outs, 1), KILN_OK);
        for (int n = 0; n < 2; n++)
            for (int g = 0; g < 2; g++) {
                /* a group = 2 channels x 3 positions, contiguous */
                const float *p = xd + (n * 4 + g * 2) * 3;
                double mean = 0, var = 0;
                for (int j = 0; j < 6; j++) mean += p[j] / 6.0;
                for (int j = 0; j < 6; j++) var += (p[j] - mean) * (p[j] - mean) / 6.0;
                for (int j = 0; j < 6; j++) {
                    int ch = g * 2 + j / 3, pi = per_group ? g : ch;
                    double want = (p[j] - mean) / sqrt(var + (double)1e-5f) * ((float *)ins[1]->data)[pi] +
                                  ((float *)ins[2]->data)[pi];
                    int64_t at = (n * 4 + g * 2) * 3 + j;
                    close_to(((float *)outs[0]->data)[at], want, 1e-5, "groupnorm", at);
                }
            }
        kiln_tensor_free(outs[0]);
        outs[0] = NULL;
        /* bad: 4 channels do not split into 3 groups */
        kiln_node_set_int(o.n, "num_groups", 3);
        ck_assert_int_ne(kiln_eval_node(o.n, ins, 3, outs, 1), KILN_OK);
        kiln_graph_free(o.g);
    }
    free_all((kiln_tensor *[]){x, sc, bc, sg, bg}, 5);
}
END_TEST

START_TEST(test_lp_mvn_lrn)
{
    rng_seed(9);
    int64_t dims[4] = {2, 5, 3, 2};
    kiln_tensor *x = trand(4, dims), *ins[1] = {x}, *outs[1] = {NULL};
    const float *xd = x->data;
    /* LpNormalization along axis 1, p = 1 and 2; a zero slice normalizes to 0. */
    for (int c = 0; c < 5; c++) ((float *)x->data)[c * 6] = 0.0f;
    for (int p = 1; p <= 2; p++) {
        one_node o = mk(KILN_OP_LpNormalization, 1, 1);
        kiln_node_set_int(o.n, "axis", 1);
        kiln_node_set_int(o.n, "p", p);
        ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 6; j++) {
                double s = 0;
                for (int c = 0; c < 5; c++) {
                    double v = xd[(n * 5 + c) * 6 + j];
                    s += p == 1 ? fabs(v) : v * v;
                }
                double norm = p == 1 ? s : sqrt(s);
                for (int c = 0; c < 5; c++) {
                    int at = (n * 5 + c) * 6 + j;
                    close_to(((float *)outs[0]->data)[at], norm == 0 ? 0 : xd[at] / norm, 1e-6, "lpnorm", at);
                }
            }
        kiln_tensor_free(outs[0]);
        outs[0] = NULL;
        kiln_node_set_int(o.n, "p", 3);
        ck_assert_int_ne(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
        kiln_graph_free(o.g);
    }
    for (int c = 0; c < 5; c++) ((float *)x->data)[c * 6] = rng_f();

    /* MVN default axes [0,2,3]: each channel ends with mean 0 and std 1 (up to 1e-9). */
    one_node o = mk(KILN_OP_MeanVarianceNormalization, 1, 1);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    for (int c = 0; c < 5; c++) {
        double m = 0, q = 0;
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 6; j++) m += ((float *)outs[0]->data)[(n * 5 + c) * 6 + j] / 12.0;
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 6; j++) {
                double d = ((float *)outs[0]->data)[(n * 5 + c) * 6 + j] - m;
                q += d * d / 12.0;
            }
        close_to(m, 0.0, 1e-6, "mvn mean", c);
        close_to(q, 1.0, 1e-5, "mvn var", c);
    }
    kiln_tensor_free(outs[0]);
    outs[0] = NULL;
    kiln_node_set_ints(o.n, "axes", (int64_t[]){0, 4}, 2);
    ck_assert_int_ne(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    kiln_graph_free(o.g);

    /* LRN, size 4 (asymmetric window: 1 below, 2 above). */
    o = mk(KILN_OP_LRN, 1, 1);
    kiln_node_set_int(o.n, "size", 4);
    kiln_node_set_float(o.n, "alpha", 0.5f);
    kiln_node_set_float(o.n, "beta", 0.75f);
    kiln_node_set_float(o.n, "bias", 2.0f);
    ck_assert_int_eq(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 5; c++)
            for (int j = 0; j < 6; j++) {
                double s = 0;
                for (int cc = c - 1; cc <= c + 2; cc++)
                    if (cc >= 0 && cc < 5) s += (double)xd[(n * 5 + cc) * 6 + j] * xd[(n * 5 + cc) * 6 + j];
                int at = (n * 5 + c) * 6 + j;
                double want = xd[at] / pow(2.0 + (double)0.5f / 4.0 * s, 0.75);
                close_to(((float *)outs[0]->data)[at], want, 1e-6, "lrn", at);
            }
    kiln_tensor_free(outs[0]);
    outs[0] = NULL;
    kiln_node_set_int(o.n, "size", 0);
    ck_assert_int_ne(kiln_eval_node(o.n, ins, 1, outs, 1), KILN_OK);
    kiln_graph_free(o.g);
    kiln_tensor_free(x);
}
END_TEST

/* ------------------------------------------------------------ runner -- */

static Suite *reduce_suite(void)
{
    Suite *s = suite_create("ops_reduce");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_reduce_all_axes_subsets);
    tcase_add_test(tc, test_reduce_empty_set_and_noop);
    tcase_add_test(tc, test_reduce_int_exact);
    tcase_add_test(tc, test_reduce_bad);
    tcase_add_test(tc, test_argmax_argmin);
    tcase_add_test(tc, test_softmax_family);
    tcase_add_test(tc, test_cumsum);
    tcase_add_test(tc, test_topk);
    tcase_add_test(tc, test_batch_instance_norm);
    tcase_add_test(tc, test_layer_rms_norm);
    tcase_add_test(tc, test_group_norm);
    tcase_add_test(tc, test_lp_mvn_lrn);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reduce_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
