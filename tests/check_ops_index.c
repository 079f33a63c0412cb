/* check_ops_index.c — unit tests for the index family (ir/ops_index.c).
 *
 * Each op runs through kiln_eval_node on seeded pseudo-random inputs and is compared with
 * a naive computation written here, independently of the implementation (loops over
 * explicit coordinates, non-separable Resize). Exact comparison for data movement;
 * Resize compares with a stated absolute tolerance. Every op group also has bad-input
 * cases that must fail with an error (and no output), not crash. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ---------------------------------------------------------------- helpers -- */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 2654435761u + 1; }
static uint32_t rng_u32(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}
static int64_t rng_int(int64_t lo, int64_t hi) { return lo + (int64_t)(rng_u32() % (uint32_t)(hi - lo + 1)); }
static float rng_f(void) { return (float)rng_u32() / 2147483648.0f - 1.0f; } /* [-1, 1) */

/* A one-node graph; inputs whose bit is set in `omit` are omitted (-1). */
typedef struct {
    kiln_graph *g;
    kiln_node *n;
} tnode;

static tnode mk(kiln_op op, int n_in, unsigned omit) {
    tnode t;
    t.g = kiln_graph_new();
    ck_assert_ptr_nonnull(t.g);
    int ins[8], outv;
    for (int i = 0; i < n_in; i++) ins[i] = (omit >> i) & 1u ? -1 : kiln_graph_add_value(t.g, NULL);
    outv = kiln_graph_add_value(t.g, NULL);
    int ni = kiln_graph_add_node(t.g, op, "t", ins, n_in, &outv, 1);
    ck_assert_int_ge(ni, 0);
    t.n = &t.g->nodes[ni];
    return t;
}

static kiln_tensor *tnew(kiln_dtype dt, int rank, const int64_t *dims) {
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    ck_assert_ptr_nonnull(t);
    return t;
}
static kiln_tensor *t_i64(int rank, const int64_t *dims, const int64_t *v) {
    kiln_tensor *t = tnew(KILN_I64, rank, dims);
    memcpy(t->data, v, t->nbytes);
    return t;
}
static kiln_tensor *t_f32(int rank, const int64_t *dims, const float *v) {
    kiln_tensor *t = tnew(KILN_F32, rank, dims);
    memcpy(t->data, v, t->nbytes);
    return t;
}
static kiln_tensor *rand_f32(int rank, const int64_t *dims) {
    kiln_tensor *t = tnew(KILN_F32, rank, dims);
    float *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = rng_f();
    return t;
}
static kiln_tensor *rand_i32(int rank, const int64_t *dims, int lo, int hi) {
    kiln_tensor *t = tnew(KILN_I32, rank, dims);
    int32_t *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = (int32_t)rng_int(lo, hi);
    return t;
}
static kiln_tensor *rand_idx(int rank, const int64_t *dims, int lo, int hi) {
    kiln_tensor *t = tnew(KILN_I64, rank, dims);
    int64_t *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = rng_int(lo, hi);
    return t;
}
static kiln_tensor *scalar_i64(int64_t v) { return t_i64(0, NULL, &v); }

static kiln_status run(tnode *t, kiln_tensor **in, int n_in, kiln_tensor **out) {
    *out = NULL;
    kiln_status st = kiln_eval_node(t->n, in, n_in, out, 1);
    if (st) ck_assert_ptr_null(*out);
    else ck_assert_ptr_nonnull(*out);
    return st;
}

static void free_all(tnode *t, kiln_tensor **in, int n_in, kiln_tensor *out) {
    for (int i = 0; i < n_in; i++) kiln_tensor_free(in[i]);
    kiln_tensor_free(out);
    kiln_graph_free(t->g);
}

static void check_dims(const kiln_tensor *t, int rank, const int64_t *dims) {
    ck_assert_int_eq(t->rank, rank);
    for (int i = 0; i < rank; i++) ck_assert_int_eq(t->dims[i], dims[i]);
}

static int64_t wrap(int64_t v, int64_t n) { return v < 0 ? v + n : v; }

/* ------------------------------------------------------------------ Gather -- */

START_TEST(gather_random) {
    rng_seed(1);
    int64_t xd[3] = {3, 4, 5}, id[2] = {2, 3};
    tnode t = mk(KILN_OP_Gather, 2, 0);
    kiln_node_set_int(t.n, "axis", 1);
    kiln_tensor *in[2] = {rand_f32(3, xd), rand_idx(2, id, -4, 3)}, *y;
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_OK);
    int64_t yd[4] = {3, 2, 3, 5};
    check_dims(y, 4, yd);
    const float *x = in[0]->data, *o = y->data;
    const int64_t *ix = in[1]->data;
    for (int a = 0; a < 3; a++)
        for (int j = 0; j < 6; j++)
            for (int c = 0; c < 5; c++)
                ck_assert(o[(a * 6 + j) * 5 + c] == x[(a * 4 + wrap(ix[j], 4)) * 5 + c]);
    free_all(&t, in, 2, y);

    /* f16 data, i32 indices, negative axis: raw 16-bit copies */
    int64_t xd2[2] = {3, 7}, id2[1] = {4};
    t = mk(KILN_OP_Gather, 2, 0);
    kiln_node_set_int(t.n, "axis", -1);
    in[0] = tnew(KILN_F16, 2, xd2);
    in[1] = rand_i32(1, id2, -7, 6);
    uint16_t *h = in[0]->data;
    for (int i = 0; i < 21; i++) h[i] = kiln_f32_to_f16((float)i * 0.5f);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_OK);
    const uint16_t *ho = y->data;
    const int32_t *i32 = in[1]->data;
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < 4; j++) ck_assert_uint_eq(ho[r * 4 + j], h[r * 7 + wrap(i32[j], 7)]);
    free_all(&t, in, 2, y);
}
END_TEST

START_TEST(gather_errors) {
    int64_t xd[2] = {2, 4}, one[1] = {1};
    kiln_tensor *y;
    /* index out of range */
    tnode t = mk(KILN_OP_Gather, 2, 0);
    kiln_node_set_int(t.n, "axis", 1);
    int64_t bad = 4;
    kiln_tensor *in[2] = {rand_f32(2, xd), t_i64(1, one, &bad)};
    ck_assert_int_ne(run(&t, in, 2, &y), KILN_OK);
    free_all(&t, in, 2, y);
    /* too negative */
    t = mk(KILN_OP_Gather, 2, 0);
    bad = -3;
    in[0] = rand_f32(2, xd);
    in[1] = t_i64(1, one, &bad);
    ck_assert_int_ne(run(&t, in, 2, &y), KILN_OK);
    free_all(&t, in, 2, y);
    /* axis out of range */
    t = mk(KILN_OP_Gather, 2, 0);
    kiln_node_set_int(t.n, "axis", 2);
    in[0] = rand_f32(2, xd);
    in[1] = scalar_i64(0);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 2, y);
    /* float indices */
    t = mk(KILN_OP_Gather, 2, 0);
    in[0] = rand_f32(2, xd);
    in[1] = rand_f32(1, one);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 2, y);
    /* GatherElements: rank mismatch */
    t = mk(KILN_OP_GatherElements, 2, 0);
    in[0] = rand_f32(2, xd);
    in[1] = rand_idx(1, one, 0, 0);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 2, y);
    /* GatherND: last indices dim larger than rank */
    int64_t id[2] = {1, 3};
    t = mk(KILN_OP_GatherND, 2, 0);
    in[0] = rand_f32(2, xd);
    in[1] = rand_idx(2, id, 0, 0);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 2, y);
}
END_TEST

START_TEST(gather_elements_random) {
    rng_seed(2);
    for (int axis = 0; axis < 2; axis++) {
        int64_t xd[2] = {4, 5}, id[2] = {axis == 0 ? 3 : 4, axis == 0 ? 5 : 2};
        int64_t lim = xd[axis];
        tnode t = mk(KILN_OP_GatherElements, 2, 0);
        kiln_node_set_int(t.n, "axis", axis - 2); /* negative axis form */
        kiln_tensor *in[2] = {rand_i32(2, xd, -100, 100), rand_idx(2, id, -lim, lim - 1)}, *y;
        ck_assert_int_eq(run(&t, in, 2, &y), KILN_OK);
        check_dims(y, 2, id);
        const int32_t *x = in[0]->data, *o = y->data;
        const int64_t *ix = in[1]->data;
        for (int i = 0; i < id[0]; i++)
            for (int j = 0; j < id[1]; j++) {
                int64_t k = wrap(ix[i * id[1] + j], lim);
                int64_t src = axis == 0 ? k * 5 + j : i * 5 + k;
                ck_assert_int_eq(o[i * id[1] + j], x[src]);
            }
        free_all(&t, in, 2, y);
    }
}
END_TEST

START_TEST(gathernd_random) {
    rng_seed(3);
    /* batch_dims = 1: data [2,3,4], indices [2,2,1] -> [2,2,4] */
    int64_t xd[3] = {2, 3, 4}, id[3] = {2, 2, 1};
    tnode t = mk(KILN_OP_GatherND, 2, 0);
    kiln_node_set_int(t.n, "batch_dims", 1);
    kiln_tensor *in[2] = {rand_f32(3, xd), rand_idx(3, id, -3, 2)}, *y;
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_OK);
    int64_t yd[3] = {2, 2, 4};
    check_dims(y, 3, yd);
    const float *x = in[0]->data, *o = y->data;
    const int64_t *ix = in[1]->data;
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 2; j++)
            for (int c = 0; c < 4; c++)
                ck_assert(o[(b * 2 + j) * 4 + c] == x[(b * 3 + wrap(ix[b * 2 + j], 3)) * 4 + c]);
    free_all(&t, in, 2, y);
    /* batch_dims = 0, k = 2: data [2,3,4], indices [3,2] -> [3,4] */
    int64_t id2[2] = {3, 2};
    t = mk(KILN_OP_GatherND, 2, 0);
    in[0] = rand_f32(3, xd);
    in[1] = tnew(KILN_I64, 2, id2);
    int64_t *p = in[1]->data;
    for (int i = 0; i < 3; i++) p[2 * i] = rng_int(-2, 1), p[2 * i + 1] = rng_int(-3, 2);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_OK);
    int64_t yd2[2] = {3, 4};
    check_dims(y, 2, yd2);
    x = in[0]->data;
    o = y->data;
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 4; c++)
            ck_assert(o[i * 4 + c] == x[(wrap(p[2 * i], 2) * 3 + wrap(p[2 * i + 1], 3)) * 4 + c]);
    free_all(&t, in, 2, y);
}
END_TEST

/* ----------------------------------------------------------------- Scatter -- */

static double naive_red(double a, double b, const char *red) {
    if (!strcmp(red, "add")) return a + b;
    if (!strcmp(red, "mul")) return a * b;
    if (!strcmp(red, "max")) return a > b ? a : b;
    if (!strcmp(red, "min")) return a < b ? a : b;
    return b;
}

START_TEST(scatter_elements_reductions) {
    static const char *reds[] = {"none", "add", "mul", "max", "min"};
    rng_seed(4);
    for (int ri = 0; ri < 5; ri++)
        for (int use_int = 0; use_int < 2; use_int++) {
            int64_t xd[2] = {4, 3}, id[2] = {5, 3};
            tnode t = mk(KILN_OP_ScatterElements, 3, 0);
            kiln_node_set_int(t.n, "axis", 0);
            kiln_node_set_str(t.n, "reduction", reds[ri]);
            kiln_tensor *in[3], *y;
            in[0] = use_int ? rand_i32(2, xd, -3, 3) : rand_f32(2, xd);
            in[1] = rand_idx(2, id, -4, 3);
            in[2] = use_int ? rand_i32(2, id, -3, 3) : rand_f32(2, id);
            ck_assert_int_eq(run(&t, in, 3, &y), KILN_OK);
            double want[12];
            for (int i = 0; i < 12; i++) want[i] = kiln_tensor_get(in[0], i);
            const int64_t *ix = in[1]->data;
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 3; j++) {
                    int64_t dst = wrap(ix[i * 3 + j], 4) * 3 + j;
                    double u = kiln_tensor_get(in[2], i * 3 + j);
                    want[dst] = naive_red(use_int ? want[dst] : (float)want[dst], u, reds[ri]);
                    if (!use_int) want[dst] = (float)want[dst]; /* f32 accumulation */
                }
            for (int i = 0; i < 12; i++) ck_assert_double_eq_tol(kiln_tensor_get(y, i), want[i], 1e-6);
            free_all(&t, in, 3, y);
        }
}
END_TEST

START_TEST(scatternd_random) {
    static const char *reds[] = {"none", "add", "max", "mul"};
    rng_seed(5);
    for (int ri = 0; ri < 4; ri++) {
        /* k = 1 with duplicate rows: data [4,3,2], indices [5,1], updates [5,3,2] */
        int64_t xd[3] = {4, 3, 2}, id[2] = {5, 1}, ud[3] = {5, 3, 2};
        tnode t = mk(KILN_OP_ScatterND, 3, 0);
        kiln_node_set_str(t.n, "reduction", reds[ri]);
        kiln_tensor *in[3] = {rand_f32(3, xd), rand_idx(2, id, -4, 3), rand_f32(3, ud)}, *y;
        ck_assert_int_eq(run(&t, in, 3, &y), KILN_OK);
        float want[24];
        memcpy(want, in[0]->data, sizeof want);
        const int64_t *ix = in[1]->data;
        const float *u = in[2]->data;
        for (int i = 0; i < 5; i++)
            for (int e = 0; e < 6; e++) {
                int64_t dst = wrap(ix[i], 4) * 6 + e;
                want[dst] = (float)naive_red(want[dst], u[i * 6 + e], reds[ri]);
            }
        for (int i = 0; i < 24; i++) ck_assert_float_eq_tol(((float *)y->data)[i], want[i], 1e-6f);
        free_all(&t, in, 3, y);
    }
    /* k = 2, distinct tuples: indices [3,2], updates [3,2] */
    int64_t xd[3] = {4, 3, 2}, id[2] = {3, 2}, ud[2] = {3, 2};
    int64_t iv[6] = {0, 0, -1, 2, 2, -3};
    tnode t = mk(KILN_OP_ScatterND, 3, 0);
    kiln_tensor *in[3] = {rand_f32(3, xd), t_i64(2, id, iv), rand_f32(2, ud)}, *y;
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_OK);
    float want[24];
    memcpy(want, in[0]->data, sizeof want);
    for (int i = 0; i < 3; i++)
        for (int e = 0; e < 2; e++)
            want[(wrap(iv[2 * i], 4) * 3 + wrap(iv[2 * i + 1], 3)) * 2 + e] = ((float *)in[2]->data)[i * 2 + e];
    ck_assert_int_eq(memcmp(y->data, want, sizeof want), 0);
    free_all(&t, in, 3, y);
}
END_TEST

START_TEST(scatter_errors) {
    int64_t xd[2] = {4, 3}, id[2] = {2, 3}, one[2] = {1, 1};
    kiln_tensor *in[3], *y;
    /* unknown reduction */
    tnode t = mk(KILN_OP_ScatterElements, 3, 0);
    kiln_node_set_str(t.n, "reduction", "avg");
    in[0] = rand_f32(2, xd), in[1] = rand_idx(2, id, 0, 3), in[2] = rand_f32(2, id);
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_ERR_UNSUPPORTED);
    free_all(&t, in, 3, y);
    /* index out of range */
    t = mk(KILN_OP_ScatterElements, 3, 0);
    in[0] = rand_f32(2, xd), in[1] = rand_idx(2, one, 4, 4), in[2] = rand_f32(2, one);
    ck_assert_int_ne(run(&t, in, 3, &y), KILN_OK);
    free_all(&t, in, 3, y);
    /* updates dtype differs */
    t = mk(KILN_OP_ScatterElements, 3, 0);
    in[0] = rand_f32(2, xd), in[1] = rand_idx(2, id, 0, 3), in[2] = rand_i32(2, id, 0, 1);
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 3, y);
    /* ScatterND: updates shape mismatch ([2,2] instead of [2,3]) */
    int64_t nid[2] = {2, 1}, ud[2] = {2, 2};
    t = mk(KILN_OP_ScatterND, 3, 0);
    in[0] = rand_f32(2, xd), in[1] = rand_idx(2, nid, 0, 3), in[2] = rand_f32(2, ud);
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 3, y);
    /* ScatterND: indices tuple longer than data rank */
    int64_t nid3[2] = {1, 3}, ud1[1] = {1};
    t = mk(KILN_OP_ScatterND, 3, 0);
    in[0] = rand_f32(2, xd), in[1] = rand_idx(2, nid3, 0, 0), in[2] = rand_f32(1, ud1);
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 3, y);
}
END_TEST

/* ------------------------------------------------------------------ OneHot -- */

START_TEST(onehot_random) {
    rng_seed(6);
    for (int axis = -3; axis <= 2; axis++) {
        int64_t id[2] = {2, 3}, two[1] = {2};
        float depth_f = 5.0f, vals[2] = {-1.0f, 2.5f};
        tnode t = mk(KILN_OP_OneHot, 3, 0);
        kiln_node_set_int(t.n, "axis", axis);
        kiln_tensor *in[3] = {rand_idx(2, id, -7, 7), t_f32(0, NULL, &depth_f), t_f32(1, two, vals)}, *y;
        ck_assert_int_eq(run(&t, in, 3, &y), KILN_OK);
        int ax = axis < 0 ? axis + 3 : axis;
        ck_assert_int_eq(y->rank, 3);
        ck_assert_int_eq(y->dims[ax], 5);
        const int64_t *ix = in[0]->data;
        int64_t pos[3];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                for (int d = 0; d < 5; d++) {
                    int64_t v = ix[i * 3 + j];
                    bool on = v >= -5 && v < 5 && wrap(v, 5) == d;
                    int64_t src[2] = {i, j};
                    for (int k = 0, s = 0; k < 3; k++) pos[k] = k == ax ? d : src[s++];
                    float got = ((float *)y->data)[(pos[0] * y->dims[1] + pos[1]) * y->dims[2] + pos[2]];
                    ck_assert_float_eq(got, on ? vals[1] : vals[0]);
                }
        free_all(&t, in, 3, y);
    }
}
END_TEST

START_TEST(onehot_errors) {
    int64_t id[1] = {3}, two[1] = {2}, three[1] = {3};
    float zero = 0.0f, five = 5.0f, vals[3] = {0, 1, 2};
    kiln_tensor *in[3], *y;
    tnode t = mk(KILN_OP_OneHot, 3, 0);
    in[0] = rand_idx(1, id, 0, 2), in[1] = t_f32(0, NULL, &zero), in[2] = t_f32(1, two, vals);
    ck_assert_int_ne(run(&t, in, 3, &y), KILN_OK); /* depth 0 */
    free_all(&t, in, 3, y);
    t = mk(KILN_OP_OneHot, 3, 0);
    in[0] = rand_idx(1, id, 0, 2), in[1] = t_f32(0, NULL, &five), in[2] = t_f32(1, three, vals);
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_ERR_SHAPE); /* three values */
    free_all(&t, in, 3, y);
    t = mk(KILN_OP_OneHot, 3, 0);
    kiln_node_set_int(t.n, "axis", 2);
    in[0] = rand_idx(1, id, 0, 2), in[1] = t_f32(0, NULL, &five), in[2] = t_f32(1, two, vals);
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_ERR_SHAPE); /* axis out of range */
    free_all(&t, in, 3, y);
}
END_TEST

/* --------------------------------------------------------------------- Pad -- */

/* Map a coordinate into [0, n) the way numpy.pad does, by explicit folding steps. */
static int64_t naive_fold(int mode, int64_t i, int64_t n) {
    if (mode == 1) { /* reflect */
        if (n == 1) return 0;
        while (i < 0 || i >= n) {
            if (i < 0) i = -i;
            if (i >= n) i = 2 * (n - 1) - i;
        }
        return i;
    }
    if (mode == 2) return i < 0 ? 0 : i >= n ? n - 1 : i; /* edge */
    while (i < 0) i += n;                                  /* wrap */
    while (i >= n) i -= n;
    return i;
}

START_TEST(pad_modes_random) {
    static const char *modes[] = {"constant", "reflect", "edge", "wrap"};
    rng_seed(7);
    for (int iter = 0; iter < 40; iter++) {
        int mode = iter % 4;
        int64_t xd[2] = {rng_int(1, 4), rng_int(1, 5)}, pv[4];
        /* pads in [-1, 6]; keep at least one source element per axis */
        for (int a = 0; a < 2; a++) {
            do {
                pv[a] = rng_int(-1, 6), pv[a + 2] = rng_int(-1, 6);
            } while (xd[a] + (pv[a] < 0 ? pv[a] : 0) + (pv[a + 2] < 0 ? pv[a + 2] : 0) < 1);
        }
        int64_t four[1] = {4};
        int32_t cval = 77;
        tnode t = mk(KILN_OP_Pad, 3, 0);
        kiln_node_set_str(t.n, "mode", modes[mode]);
        kiln_tensor *in[3] = {rand_i32(2, xd, -50, 50), t_i64(1, four, pv), tnew(KILN_I32, 0, NULL)}, *y;
        memcpy(in[2]->data, &cval, 4);
        ck_assert_int_eq(run(&t, in, 3, &y), KILN_OK);
        /* naive: crop explicitly, then pad the cropped array */
        int64_t lo[2], cn[2];
        for (int a = 0; a < 2; a++) {
            lo[a] = pv[a] < 0 ? -pv[a] : 0;
            cn[a] = xd[a] - lo[a] - (pv[a + 2] < 0 ? -pv[a + 2] : 0);
            ck_assert_int_eq(y->dims[a], xd[a] + pv[a] + pv[a + 2]);
        }
        const int32_t *x = in[0]->data, *o = y->data;
        for (int64_t i = 0; i < y->dims[0]; i++)
            for (int64_t j = 0; j < y->dims[1]; j++) {
                int64_t si = i - (pv[0] > 0 ? pv[0] : 0), sj = j - (pv[1] > 0 ? pv[1] : 0);
                int32_t want;
                if (mode == 0 && (si < 0 || si >= cn[0] || sj < 0 || sj >= cn[1])) {
                    want = cval;
                } else {
                    si = naive_fold(mode, si, cn[0]);
                    sj = naive_fold(mode, sj, cn[1]);
                    want = x[(si + lo[0]) * xd[1] + sj + lo[1]];
                }
                ck_assert_int_eq(o[i * y->dims[1] + j], want);
            }
        free_all(&t, in, 3, y);
    }
    /* axes input (negative axis), constant_value omitted -> zero, bool data */
    int64_t xd[2] = {2, 3}, two[1] = {2}, one[1] = {1}, pv[2] = {1, 2}, axv = -1;
    tnode t = mk(KILN_OP_Pad, 4, 1u << 2);
    kiln_tensor *in[4] = {tnew(KILN_BOOL, 2, xd), t_i64(1, two, pv), NULL, t_i64(1, one, &axv)}, *y;
    memset(in[0]->data, 1, 6);
    ck_assert_int_eq(run(&t, in, 4, &y), KILN_OK);
    int64_t yd[2] = {2, 6};
    check_dims(y, 2, yd);
    const uint8_t *b = y->data;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 6; j++) ck_assert_int_eq(b[i * 6 + j], j >= 1 && j < 4);
    free_all(&t, in, 4, y);
}
END_TEST

START_TEST(pad_errors) {
    int64_t xd[2] = {0, 3}, xd2[2] = {2, 3}, three[1] = {3}, four[1] = {4};
    int64_t pv[4] = {1, 0, 1, 0}, pv3[3] = {1, 1, 1}, pneg[4] = {-3, 0, 0, 0};
    kiln_tensor *in[2], *y;
    tnode t = mk(KILN_OP_Pad, 2, 0);
    kiln_node_set_str(t.n, "mode", "reflect");
    in[0] = tnew(KILN_F32, 2, xd), in[1] = t_i64(1, four, pv);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_SHAPE); /* reflect an empty axis */
    free_all(&t, in, 2, y);
    t = mk(KILN_OP_Pad, 2, 0);
    in[0] = rand_f32(2, xd2), in[1] = t_i64(1, three, pv3);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_SHAPE); /* odd pads count */
    free_all(&t, in, 2, y);
    t = mk(KILN_OP_Pad, 2, 0);
    in[0] = rand_f32(2, xd2), in[1] = t_i64(1, four, pneg);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_SHAPE); /* crops below zero */
    free_all(&t, in, 2, y);
    t = mk(KILN_OP_Pad, 2, 0);
    kiln_node_set_str(t.n, "mode", "mirror");
    in[0] = rand_f32(2, xd2), in[1] = t_i64(1, four, pv);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_UNSUPPORTED);
    free_all(&t, in, 2, y);
}
END_TEST

/* ------------------------------------------------------------------ Resize -- */

typedef struct {
    const char *mode, *ctm;
    double a;
    int exclude, antialias;
} rs_case;

static double naive_kernel(const rs_case *c, double d) {
    d = fabs(d);
    if (!strcmp(c->mode, "linear")) return d < 1 ? 1 - d : 0;
    double a = c->a;
    if (d <= 1) return (a + 2) * d * d * d - (a + 3) * d * d + 1;
    if (d < 2) return a * d * d * d - 5 * a * d * d + 8 * a * d - 4 * a;
    return 0;
}

static double naive_coord(const char *ctm, int64_t j, int64_t L, int64_t M, double s) {
    if (!strcmp(ctm, "asymmetric")) return j / s;
    if (!strcmp(ctm, "align_corners")) return M == 1 ? 0 : j * (L - 1) / (s * L - 1);
    if (!strcmp(ctm, "pytorch_half_pixel")) return M > 1 ? (j + 0.5) / s - 0.5 : 0;
    return (j + 0.5) / s - 0.5;
}

/* Weights of all input positions p in [0, L) for source coordinate x, by brute force over
 * a wide window (clamped positions accumulate onto the edges). */
static void naive_weights(const rs_case *c, double x, int64_t L, double s, double *w) {
    double ss = c->antialias && s < 1 ? s : 1, sum = 0;
    for (int64_t p = 0; p < L; p++) w[p] = 0;
    for (int64_t p = (int64_t)floor(x) - 40; p <= (int64_t)floor(x) + 40; p++) {
        double k = naive_kernel(c, (p - x) * ss);
        if (c->exclude && (p < 0 || p >= L)) k = 0;
        w[p < 0 ? 0 : p >= L ? L - 1 : p] += k;
        sum += k;
    }
    if ((c->antialias || c->exclude) && sum != 0)
        for (int64_t p = 0; p < L; p++) w[p] /= sum;
}

START_TEST(resize_vs_naive) {
    static const rs_case cases[] = {
        {"linear", "half_pixel", 0, 0, 0},          {"linear", "align_corners", 0, 0, 0},
        {"linear", "asymmetric", 0, 0, 0},          {"linear", "pytorch_half_pixel", 0, 0, 0},
        {"linear", "half_pixel", 0, 0, 1},          {"cubic", "half_pixel", -0.75, 0, 0},
        {"cubic", "half_pixel", -0.5, 1, 0},        {"cubic", "align_corners", -0.75, 0, 0},
        {"cubic", "asymmetric", -0.75, 1, 0},       {"cubic", "half_pixel", -0.75, 0, 1},
        {"cubic", "pytorch_half_pixel", -0.5, 1, 1},
    };
    static const float scale_sets[][2] = {{0.6f, 1.7f}, {2.0f, 0.5f}, {0.34f, 3.0f}, {1.0f, 0.75f}};
    rng_seed(8);
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
        for (size_t si = 0; si < 4; si++) {
            const rs_case *c = &cases[ci];
            int64_t xd[4] = {1, 2, 5, 6}, four[1] = {4};
            float sc[4] = {1, 1, scale_sets[si][0], scale_sets[si][1]};
            tnode t = mk(KILN_OP_Resize, 3, 1u << 1);
            kiln_node_set_str(t.n, "mode", c->mode);
            kiln_node_set_str(t.n, "coordinate_transformation_mode", c->ctm);
            kiln_node_set_float(t.n, "cubic_coeff_a", (float)c->a);
            kiln_node_set_int(t.n, "exclude_outside", c->exclude);
            kiln_node_set_int(t.n, "antialias", c->antialias);
            kiln_tensor *in[3] = {rand_f32(4, xd), NULL, t_f32(1, four, sc)}, *y;
            ck_assert_int_eq(run(&t, in, 3, &y), KILN_OK);
            int64_t M0 = (int64_t)floor((double)sc[2] * 5), M1 = (int64_t)floor((double)sc[3] * 6);
            int64_t yd[4] = {1, 2, M0, M1};
            check_dims(y, 4, yd);
            const float *x = in[0]->data, *o = y->data;
            double wy[5], wx[6];
            for (int ch = 0; ch < 2; ch++)
                for (int64_t i = 0; i < M0; i++) {
                    naive_weights(c, naive_coord(c->ctm, i, 5, M0, sc[2]), 5, sc[2], wy);
                    for (int64_t j = 0; j < M1; j++) {
                        naive_weights(c, naive_coord(c->ctm, j, 6, M1, sc[3]), 6, sc[3], wx);
                        double want = 0;
                        for (int p = 0; p < 5; p++)
                            for (int q = 0; q < 6; q++) want += wy[p] * wx[q] * x[(ch * 5 + p) * 6 + q];
                        ck_assert_double_eq_tol(o[(ch * M0 + i) * M1 + j], want, 1e-5);
                    }
                }
            free_all(&t, in, 3, y);
        }
}
END_TEST

START_TEST(resize_nearest_and_identities) {
    rng_seed(9);
    /* nearest, asymmetric + floor (the Upsample form), integer factors: pure replication */
    int64_t xd[4] = {1, 1, 2, 3}, four[1] = {4};
    float sc[4] = {1, 1, 2, 3};
    tnode t = mk(KILN_OP_Resize, 3, 1u << 1);
    kiln_node_set_str(t.n, "coordinate_transformation_mode", "asymmetric");
    kiln_node_set_str(t.n, "nearest_mode", "floor");
    kiln_tensor *in[4] = {rand_f32(4, xd), NULL, t_f32(1, four, sc), NULL}, *y;
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_OK);
    int64_t yd[4] = {1, 1, 4, 9};
    check_dims(y, 4, yd);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 9; j++)
            ck_assert(((float *)y->data)[i * 9 + j] == ((float *)in[0]->data)[(i / 2) * 3 + j / 3]);
    free_all(&t, in, 3, y);

    /* linear + align_corners reproduces a linear ramp exactly (up to rounding) */
    int64_t rd[1] = {7}, one[1] = {1}, sz = 13;
    t = mk(KILN_OP_Resize, 4, 3u << 1);
    kiln_node_set_str(t.n, "mode", "linear");
    kiln_node_set_str(t.n, "coordinate_transformation_mode", "align_corners");
    in[0] = tnew(KILN_F32, 1, rd);
    for (int i = 0; i < 7; i++) ((float *)in[0]->data)[i] = 3.0f * i - 2.0f;
    in[1] = in[2] = NULL;
    in[3] = t_i64(1, one, &sz);
    ck_assert_int_eq(run(&t, in, 4, &y), KILN_OK);
    ck_assert_int_eq(y->dims[0], 13);
    for (int j = 0; j < 13; j++) ck_assert_float_eq_tol(((float *)y->data)[j], 3.0f * (j * 6.0f / 12.0f) - 2.0f, 1e-5f);
    free_all(&t, in, 4, y);

    /* cubic of a constant is the constant (kernel weights sum to one) */
    int64_t cd[2] = {4, 5}, two[1] = {2}, szs[2] = {7, 3};
    t = mk(KILN_OP_Resize, 4, 3u << 1);
    kiln_node_set_str(t.n, "mode", "cubic");
    in[0] = tnew(KILN_F32, 2, cd);
    for (int i = 0; i < 20; i++) ((float *)in[0]->data)[i] = 1.25f;
    in[3] = t_i64(1, two, szs);
    ck_assert_int_eq(run(&t, in, 4, &y), KILN_OK);
    check_dims(y, 2, szs);
    for (int i = 0; i < 21; i++) ck_assert_float_eq_tol(((float *)y->data)[i], 1.25f, 1e-6f);
    free_all(&t, in, 4, y);

    /* nearest_mode rounding on a ramp: asymmetric upsample by 2 -> x = j/2 */
    static const char *nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    for (int m = 0; m < 4; m++) {
        int64_t ld[1] = {4}, n_out = 8;
        t = mk(KILN_OP_Resize, 4, 3u << 1);
        kiln_node_set_str(t.n, "nearest_mode", nms[m]);
        kiln_node_set_str(t.n, "coordinate_transformation_mode", "asymmetric");
        in[0] = tnew(KILN_F32, 1, ld);
        for (int i = 0; i < 4; i++) ((float *)in[0]->data)[i] = (float)i;
        in[3] = t_i64(1, one, &n_out);
        ck_assert_int_eq(run(&t, in, 4, &y), KILN_OK);
        for (int j = 0; j < 8; j++) {
            double xo = j / 2.0, f = floor(xo), fr = xo - f, k;
            if (m == 0) k = fr > 0.5 ? f + 1 : f;
            else if (m == 1) k = fr >= 0.5 ? f + 1 : f;
            else if (m == 2) k = f;
            else k = ceil(xo);
            if (k > 3) k = 3;
            ck_assert_float_eq(((float *)y->data)[j], (float)k);
        }
        free_all(&t, in, 4, y);
    }
}
END_TEST

START_TEST(resize_crop_aspect_int) {
    rng_seed(10);
    /* tf_crop_and_resize with an roi reaching outside: outside points take the value */
    int64_t xd[2] = {4, 4}, two[1] = {2}, four[1] = {4}, szs[2] = {3, 5};
    float roi[4] = {0.2f, -0.5f, 0.9f, 1.4f};
    tnode t = mk(KILN_OP_Resize, 4, 1u << 2);
    kiln_node_set_str(t.n, "mode", "linear");
    kiln_node_set_str(t.n, "coordinate_transformation_mode", "tf_crop_and_resize");
    kiln_node_set_float(t.n, "extrapolation_value", -9.0f);
    kiln_tensor *in[4] = {rand_f32(2, xd), t_f32(1, four, roi), NULL, t_i64(1, two, szs)}, *y;
    ck_assert_int_eq(run(&t, in, 4, &y), KILN_OK);
    check_dims(y, 2, szs);
    const float *x = in[0]->data;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            double yi = roi[0] * 3 + i * (roi[2] - roi[0]) * 3 / 2.0;
            double xj = roi[1] * 3 + j * (roi[3] - roi[1]) * 3 / 4.0;
            double want;
            if (yi < 0 || yi > 3 || xj < 0 || xj > 3) {
                want = -9.0;
            } else {
                int y0 = (int)floor(yi), x0 = (int)floor(xj);
                int y1 = y0 + 1 > 3 ? 3 : y0 + 1, x1 = x0 + 1 > 3 ? 3 : x0 + 1;
                double fy = yi - y0, fx = xj - x0;
                want = (1 - fy) * ((1 - fx) * x[y0 * 4 + x0] + fx * x[y0 * 4 + x1]) +
                       fy * ((1 - fx) * x[y1 * 4 + x0] + fx * x[y1 * 4 + x1]);
            }
            ck_assert_double_eq_tol(((float *)y->data)[i * 5 + j], want, 1e-5);
        }
    free_all(&t, in, 4, y);

    /* keep_aspect_ratio_policy with axes: [1,1,2,4] sizes (3,3) on axes (2,3) */
    static const char *pol[] = {"not_larger", "not_smaller"};
    int64_t want_dims[2][4] = {{1, 1, 2, 3}, {1, 1, 3, 6}};
    for (int k = 0; k < 2; k++) {
        int64_t xd4[4] = {1, 1, 2, 4}, s2[2] = {3, 3}, axes[2] = {2, 3};
        t = mk(KILN_OP_Resize, 4, 3u << 1);
        kiln_node_set_str(t.n, "keep_aspect_ratio_policy", pol[k]);
        kiln_node_set_ints(t.n, "axes", axes, 2);
        in[0] = rand_f32(4, xd4), in[1] = in[2] = NULL, in[3] = t_i64(1, two, s2);
        ck_assert_int_eq(run(&t, in, 4, &y), KILN_OK);
        check_dims(y, 4, want_dims[k]);
        free_all(&t, in, 4, y);
    }

    /* not_larger can scale an axis below 1/L (here 12 -> 1 at scale 1/16): the wide
     * antialias kernel must still work; a constant input stays constant */
    {
        int64_t xd2[2] = {16, 12}, s2[2] = {1, 12}, yd2[2] = {1, 1};
        t = mk(KILN_OP_Resize, 4, 3u << 1);
        kiln_node_set_str(t.n, "mode", "cubic");
        kiln_node_set_int(t.n, "antialias", 1);
        kiln_node_set_str(t.n, "keep_aspect_ratio_policy", "not_larger");
        in[0] = tnew(KILN_F32, 2, xd2), in[1] = in[2] = NULL, in[3] = t_i64(1, two, s2);
        for (int i = 0; i < 16 * 12; i++) ((float *)in[0]->data)[i] = 0.5f;
        ck_assert_int_eq(run(&t, in, 4, &y), KILN_OK);
        check_dims(y, 2, yd2);
        ck_assert_float_eq_tol(((float *)y->data)[0], 0.5f, 1e-6f);
        free_all(&t, in, 4, y);
    }

    /* u8 linear: results round to nearest and saturate */
    int64_t ud[1] = {2}, one[1] = {1}, n3 = 3;
    t = mk(KILN_OP_Resize, 4, 3u << 1);
    kiln_node_set_str(t.n, "mode", "linear");
    kiln_node_set_str(t.n, "coordinate_transformation_mode", "align_corners");
    in[0] = tnew(KILN_U8, 1, ud);
    ((uint8_t *)in[0]->data)[0] = 10;
    ((uint8_t *)in[0]->data)[1] = 15; /* midpoint 12.5 -> 12 (half to even) */
    in[1] = in[2] = NULL;
    in[3] = t_i64(1, one, &n3);
    ck_assert_int_eq(run(&t, in, 4, &y), KILN_OK);
    ck_assert_int_eq(((uint8_t *)y->data)[0], 10);
    ck_assert_int_eq(((uint8_t *)y->data)[1], 12);
    ck_assert_int_eq(((uint8_t *)y->data)[2], 15);
    free_all(&t, in, 4, y);
}
END_TEST

START_TEST(resize_errors) {
    int64_t xd[2] = {2, 2}, two[1] = {2}, three[1] = {3}, sz[2] = {4, 4};
    float sc[3] = {2, 2, 2}, neg[2] = {-1, 2};
    kiln_tensor *in[4], *y;
    tnode t = mk(KILN_OP_Resize, 4, 1u << 1); /* both scales and sizes */
    in[0] = rand_f32(2, xd), in[1] = NULL, in[2] = t_f32(1, two, sc), in[3] = t_i64(1, two, sz);
    ck_assert_int_eq(run(&t, in, 4, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 4, y);
    t = mk(KILN_OP_Resize, 4, 3u << 1 | 1u << 3); /* neither */
    in[0] = rand_f32(2, xd), in[1] = in[2] = in[3] = NULL;
    ck_assert_int_eq(run(&t, in, 4, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 4, y);
    t = mk(KILN_OP_Resize, 3, 1u << 1); /* negative scale */
    in[0] = rand_f32(2, xd), in[1] = NULL, in[2] = t_f32(1, two, neg);
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 3, y);
    t = mk(KILN_OP_Resize, 3, 1u << 1); /* wrong count */
    in[0] = rand_f32(2, xd), in[1] = NULL, in[2] = t_f32(1, three, sc);
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 3, y);
    t = mk(KILN_OP_Resize, 3, 1u << 1); /* unknown mode */
    kiln_node_set_str(t.n, "mode", "lanczos");
    in[0] = rand_f32(2, xd), in[1] = NULL, in[2] = t_f32(1, two, sc);
    ck_assert_int_eq(run(&t, in, 3, &y), KILN_ERR_UNSUPPORTED);
    free_all(&t, in, 3, y);
    t = mk(KILN_OP_Resize, 4, 3u << 1); /* tf_crop_and_resize without roi */
    kiln_node_set_str(t.n, "coordinate_transformation_mode", "tf_crop_and_resize");
    in[0] = rand_f32(2, xd), in[1] = in[2] = NULL, in[3] = t_i64(1, two, sz);
    ck_assert_int_eq(run(&t, in, 4, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 4, y);
}
END_TEST

/* ---------------------------------------- Compress, NonZero, ReverseSequence -- */

START_TEST(compress_random) {
    rng_seed(11);
    for (int axis = -1; axis < 2; axis++) { /* -1 here: no axis attribute */
        int64_t xd[2] = {3, 4}, cd[1] = {axis < 0 ? 10 : xd[axis] - (axis == 1)}; /* shorter condition on axis 1 */
        tnode t = mk(KILN_OP_Compress, 2, 0);
        if (axis >= 0) kiln_node_set_int(t.n, "axis", axis);
        kiln_tensor *in[2] = {rand_f32(2, xd), tnew(KILN_BOOL, 1, cd)}, *y;
        uint8_t *cv = in[1]->data;
        int cnt = 0;
        for (int i = 0; i < cd[0]; i++) cnt += cv[i] = (uint8_t)(rng_u32() & 1);
        ck_assert_int_eq(run(&t, in, 2, &y), KILN_OK);
        const float *x = in[0]->data, *o = y->data;
        if (axis < 0) {
            ck_assert_int_eq(y->rank, 1);
            ck_assert_int_eq(y->dims[0], cnt);
            for (int i = 0, k = 0; i < 10; i++)
                if (cv[i]) ck_assert(o[k++] == x[i]);
        } else if (axis == 0) {
            ck_assert_int_eq(y->dims[0], cnt);
            for (int i = 0, k = 0; i < 3; i++)
                if (cv[i]) {
                    for (int j = 0; j < 4; j++) ck_assert(o[k * 4 + j] == x[i * 4 + j]);
                    k++;
                }
        } else {
            ck_assert_int_eq(y->dims[1], cnt);
            for (int i = 0; i < 3; i++)
                for (int j = 0, k = 0; j < 3; j++)
                    if (cv[j]) ck_assert(o[i * cnt + k++] == x[i * 4 + j]);
        }
        free_all(&t, in, 2, y);
    }
    /* errors: float condition; a true entry beyond the axis */
    int64_t xd[2] = {2, 2}, c2[1] = {2}, c3[1] = {3};
    tnode t = mk(KILN_OP_Compress, 2, 0);
    kiln_tensor *in[2] = {rand_f32(2, xd), rand_f32(1, c2)}, *y;
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 2, y);
    t = mk(KILN_OP_Compress, 2, 0);
    kiln_node_set_int(t.n, "axis", 0);
    in[0] = rand_f32(2, xd), in[1] = tnew(KILN_BOOL, 1, c3);
    ((uint8_t *)in[1]->data)[2] = 1;
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 2, y);
}
END_TEST

START_TEST(nonzero_random) {
    rng_seed(12);
    int64_t xd[3] = {2, 3, 4};
    tnode t = mk(KILN_OP_NonZero, 1, 0);
    kiln_tensor *in[1] = {rand_i32(3, xd, -1, 1)}, *y;
    ck_assert_int_eq(run(&t, in, 1, &y), KILN_OK);
    const int32_t *x = in[0]->data;
    int nnz = 0;
    for (int i = 0; i < 24; i++) nnz += x[i] != 0;
    ck_assert_int_eq(y->dtype, KILN_I64);
    int64_t yd[2] = {3, nnz};
    check_dims(y, 2, yd);
    const int64_t *o = y->data;
    for (int i = 0, k = 0; i < 24; i++)
        if (x[i]) {
            ck_assert_int_eq(o[k], i / 12);
            ck_assert_int_eq(o[nnz + k], (i / 4) % 3);
            ck_assert_int_eq(o[2 * nnz + k], i % 4);
            k++;
        }
    free_all(&t, in, 1, y);
    /* scalar: treated as one element */
    t = mk(KILN_OP_NonZero, 1, 0);
    float v = 2.0f;
    in[0] = t_f32(0, NULL, &v);
    ck_assert_int_eq(run(&t, in, 1, &y), KILN_OK);
    int64_t sd[2] = {1, 1};
    check_dims(y, 2, sd);
    ck_assert_int_eq(((int64_t *)y->data)[0], 0);
    free_all(&t, in, 1, y);
}
END_TEST

START_TEST(reversesequence_random) {
    rng_seed(13);
    for (int time_axis = 0; time_axis < 2; time_axis++) {
        int64_t T = 5, B = 3, xd[3] = {time_axis == 0 ? T : B, time_axis == 0 ? B : T, 2}, ld[1] = {B};
        tnode t = mk(KILN_OP_ReverseSequence, 2, 0);
        kiln_node_set_int(t.n, "time_axis", time_axis);
        kiln_node_set_int(t.n, "batch_axis", 1 - time_axis);
        kiln_tensor *in[2] = {rand_f32(3, xd), rand_idx(1, ld, 0, T)}, *y;
        ck_assert_int_eq(run(&t, in, 2, &y), KILN_OK);
        check_dims(y, 3, xd);
        const float *x = in[0]->data, *o = y->data;
        const int64_t *lens = in[1]->data;
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < T; s++)
                for (int e = 0; e < 2; e++) {
                    int64_t src = s < lens[b] ? lens[b] - 1 - s : s;
                    int64_t od = time_axis == 0 ? (s * B + b) * 2 + e : (b * T + s) * 2 + e;
                    int64_t xs = time_axis == 0 ? (src * B + b) * 2 + e : (b * T + src) * 2 + e;
                    ck_assert(o[od] == x[xs]);
                }
        free_all(&t, in, 2, y);
    }
    /* errors: length beyond the time axis; equal axes */
    int64_t xd[2] = {3, 2}, ld[1] = {2}, lv[2] = {4, 1};
    tnode t = mk(KILN_OP_ReverseSequence, 2, 0);
    kiln_tensor *in[2] = {rand_f32(2, xd), t_i64(1, ld, lv)}, *y;
    ck_assert_int_ne(run(&t, in, 2, &y), KILN_OK);
    free_all(&t, in, 2, y);
    t = mk(KILN_OP_ReverseSequence, 2, 0);
    kiln_node_set_int(t.n, "batch_axis", 0);
    lv[0] = 1;
    in[0] = rand_f32(2, xd), in[1] = t_i64(1, ld, lv);
    ck_assert_int_eq(run(&t, in, 2, &y), KILN_ERR_SHAPE);
    free_all(&t, in, 2, y);
}
END_TEST

/* ------------------------------------------------------- symbolic inference -- */

/* Shape inference with unknown data: symbols flow, data-dependent dims become -1. */
START_TEST(infer_symbolic) {
    kiln_graph *g = kiln_graph_new();
    ck_assert_ptr_nonnull(g);
    int32_t sym_n = kiln_graph_symbol(g, "N");
    ck_assert_int_gt(sym_n, 0);
    kiln_value x, idx, pads, outv, sc;
    memset(&x, 0, sizeof x);
    memset(&idx, 0, sizeof idx);
    memset(&pads, 0, sizeof pads);
    memset(&sc, 0, sizeof sc);
    memset(&outv, 0, sizeof outv);
    int64_t xd[3] = {-1, 4, 6};
    kiln_value_set(&x, KILN_F32, 3, xd);
    x.sym[0] = sym_n;
    int64_t id[1] = {2};
    kiln_value_set(&idx, KILN_I64, 1, id);
    int64_t pd[1] = {6};
    kiln_value_set(&pads, KILN_I64, 1, pd);
    int64_t sd[1] = {3};
    kiln_value_set(&sc, KILN_F32, 1, sd);

    tnode t = mk(KILN_OP_Gather, 2, 0);
    kiln_node_set_int(t.n, "axis", 2);
    const kiln_value *in[4] = {&x, &idx, NULL, NULL};
    kiln_value *out[1] = {&outv};
    ck_assert_int_eq(kiln_infer_node_values(g, t.n, in, out), KILN_OK);
    ck_assert_int_eq(outv.rank, 3);
    ck_assert_int_eq(outv.sym[0], sym_n);
    ck_assert_int_eq(outv.dims[1], 4);
    ck_assert_int_eq(outv.dims[2], 2);
    kiln_graph_free(t.g);

    t = mk(KILN_OP_Pad, 2, 0); /* unknown pads: every axis dynamic, rank kept */
    in[1] = &pads;
    ck_assert_int_eq(kiln_infer_node_values(g, t.n, in, out), KILN_OK);
    ck_assert_int_eq(outv.rank, 3);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(outv.dims[i], -1);
    kiln_graph_free(t.g);

    t = mk(KILN_OP_Resize, 3, 1u << 1); /* unknown scales with axes (1,2): N flows */
    int64_t axes[2] = {1, 2};
    kiln_node_set_ints(t.n, "axes", axes, 2);
    in[1] = NULL;
    in[2] = &sc;
    sc.dims[0] = 2;
    ck_assert_int_eq(kiln_infer_node_values(g, t.n, in, out), KILN_OK);
    ck_assert_int_eq(outv.rank, 3);
    ck_assert_int_eq(outv.sym[0], sym_n);
    ck_assert_int_eq(outv.dims[1], -1);
    ck_assert_int_eq(outv.dims[2], -1);
    kiln_graph_free(t.g);

    t = mk(KILN_OP_NonZero, 1, 0);
    in[1] = in[2] = NULL;
    ck_assert_int_eq(kiln_infer_node_values(g, t.n, in, out), KILN_OK);
    ck_assert_int_eq(outv.rank, 2);
    ck_assert_int_eq(outv.dims[0], 3);
    ck_assert_int_eq(outv.dims[1], -1);
    kiln_graph_free(t.g);

    t = mk(KILN_OP_GatherElements, 2, 0); /* unknown indices rank: rank from data */
    kiln_value unk;
    memset(&unk, 0, sizeof unk);
    kiln_value_set(&unk, KILN_I64, 0, NULL);
    unk.rank = -1;
    in[1] = &unk;
    ck_assert_int_eq(kiln_infer_node_values(g, t.n, in, out), KILN_OK);
    ck_assert_int_eq(outv.rank, 3);
    ck_assert_int_eq(outv.dims[0], -1);
    kiln_graph_free(t.g);

    t = mk(KILN_OP_GatherElements, 2, 0); /* rank mismatch caught at inference */
    in[1] = &idx;
    ck_assert_int_eq(kiln_infer_node_values(g, t.n, in, out), KILN_ERR_SHAPE);
    kiln_graph_free(t.g);
    kiln_graph_free(g);
}
END_TEST

/* --------------------------------------------------------------- fuzzing -- */

/* Random small tensor: rank 0..3, dims 0..3, values in [-4, 4] (ints) or [-1, 1]. */
static kiln_tensor *fuzz_tensor(void) {
    static const kiln_dtype dts[] = {KILN_F32, KILN_I64, KILN_I64, KILN_I32, KILN_BOOL, KILN_F16, KILN_U8};
    int64_t d[3];
    int rank = (int)rng_int(0, 3);
    for (int i = 0; i < rank; i++) d[i] = rng_int(0, 3);
    kiln_tensor *t = tnew(dts[rng_int(0, 6)], rank, d);
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == KILN_F32 || t->dtype == KILN_F16) kiln_tensor_set(t, i, rng_f() * 4.0);
        else kiln_tensor_set_i64(t, i, t->dtype == KILN_BOOL ? rng_int(0, 1) : rng_int(-4, 4));
    }
    return t;
}

static kiln_tensor *fuzz_ints(kiln_dtype dt, int rank, const int64_t *d, int lo, int hi) {
    kiln_tensor *t = tnew(dt, rank, d);
    for (int64_t i = 0; i < t->numel; i++) kiln_tensor_set_i64(t, i, rng_int(lo, hi));
    return t;
}

/* Inputs 1.. shaped to fit data x for op (mostly valid, values sometimes out of range). */
static kiln_tensor *fuzz_plausible(kiln_op op, int i, const kiln_tensor *x) {
    int r = x->rank;
    int64_t d[KILN_MAX_RANK], one = 1;
    switch (op) {
    case KILN_OP_Gather: {
        int q = (int)rng_int(0, 2);
        for (int k = 0; k < q; k++) d[k] = rng_int(0, 3);
        return fuzz_ints(KILN_I64, q, d, -4, 3);
    }
    case KILN_OP_GatherElements:
    case KILN_OP_ScatterElements:
        if (i == 1 || op == KILN_OP_GatherElements) {
            for (int k = 0; k < r; k++) d[k] = rng_int(0, x->dims[k] + 1);
            return fuzz_ints(KILN_I64, r, d, -3, 3);
        }
        return NULL; /* updates: built by the caller from indices */
    case KILN_OP_GatherND:
    case KILN_OP_ScatterND:
        if (i == 1) {
            d[0] = rng_int(0, 3);
            d[1] = rng_int(0, r > 0 ? r : 1);
            return fuzz_ints(KILN_I64, 2, d, -3, 3);
        }
        return NULL;
    case KILN_OP_OneHot:
        if (i == 1) {
            kiln_tensor *t = tnew(KILN_F32, 0, NULL);
            kiln_tensor_set(t, 0, (double)rng_int(0, 4));
            return t;
        }
        d[0] = 2;
        return fuzz_ints(KILN_I32, 1, d, -5, 5);
    case KILN_OP_Pad:
        if (i == 1) {
            d[0] = 2 * r;
            return fuzz_ints(KILN_I64, 1, d, -2, 3);
        }
        if (i == 2) return fuzz_ints(x->dtype, 0, NULL, 0, 1);
        d[0] = r;
        {
            kiln_tensor *t = tnew(KILN_I64, 1, d);
            for (int k = 0; k < r; k++) ((int64_t *)t->data)[k] = k - (rng_int(0, 1) ? r : 0);
            return t;
        }
    case KILN_OP_Resize:
        d[0] = i == 1 ? 2 * r : r;
        if (i == 3) return fuzz_ints(KILN_I64, 1, d, 0, 5);
        {
            static const float vals[] = {0.5f, 1.0f, 1.5f, 2.0f, 0.3f, 0.0f, 1.2f};
            kiln_tensor *t = tnew(KILN_F32, 1, d);
            for (int k = 0; k < d[0]; k++) ((float *)t->data)[k] = vals[rng_int(0, 6)];
            return t;
        }
    case KILN_OP_Compress:
        d[0] = rng_int(0, 4);
        return fuzz_ints(KILN_BOOL, 1, d, 0, 1);
    case KILN_OP_ReverseSequence:
        return fuzz_ints(KILN_I64, 1, r >= 2 ? &x->dims[1] : &one, 0, 4);
    default: return NULL;
    }
}

/* Random shapes, dtypes, attributes and omitted inputs: every op must return a status
 * (OK or an error) without crashing; run under ASan+UBSan this checks memory safety. */
START_TEST(fuzz_no_crash) {
    static const kiln_op ops[] = {KILN_OP_Gather, KILN_OP_GatherElements, KILN_OP_GatherND,
                                  KILN_OP_ScatterElements, KILN_OP_ScatterND, KILN_OP_OneHot,
                                  KILN_OP_Pad, KILN_OP_Resize, KILN_OP_Compress,
                                  KILN_OP_NonZero, KILN_OP_ReverseSequence};
    static const char *strs[] = {"nearest", "linear", "cubic", "constant", "reflect", "edge", "wrap",
                                 "add", "max", "tf_crop_and_resize", "align_corners", "bogus"};
    rng_seed(99);
    int ok = 0;
    for (int iter = 0; iter < 3000; iter++) {
        kiln_op op = ops[iter % 11];
        const kiln_op_info *oi = &kiln_op_table[op];
        int n_in = (int)rng_int(oi->min_in, oi->max_in);
        unsigned omit = 0;
        for (int i = oi->min_in; i < n_in; i++)
            if (rng_int(0, 2) == 0) omit |= 1u << i;
        tnode t = mk(op, n_in, omit);
        kiln_node_set_int(t.n, "axis", rng_int(-3, 3));
        if (rng_int(0, 1)) kiln_node_set_int(t.n, "batch_dims", rng_int(-1, 2));
        if (rng_int(0, 1)) kiln_node_set_int(t.n, "time_axis", rng_int(-1, 2));
        if (rng_int(0, 1)) kiln_node_set_int(t.n, "antialias", 1);
        if (rng_int(0, 1)) kiln_node_set_int(t.n, "exclude_outside", 1);
        kiln_node_set_str(t.n, "mode", strs[rng_int(0, 11)]);
        kiln_node_set_str(t.n, "reduction", strs[rng_int(6, 11)]);
        if (rng_int(0, 2) == 0) kiln_node_set_str(t.n, "coordinate_transformation_mode", strs[rng_int(9, 11)]);
        if (rng_int(0, 3) == 0) {
            int64_t ax[2] = {rng_int(-3, 3), rng_int(-3, 3)};
            kiln_node_set_ints(t.n, "axes", ax, (int)rng_int(1, 2));
        }
        kiln_tensor *in[4] = {NULL, NULL, NULL, NULL}, *y = NULL;
        bool plausible = rng_int(0, 3) != 0;
        for (int i = 0; i < n_in; i++) {
            if ((omit >> i) & 1u) continue;
            if (plausible && i > 0) in[i] = fuzz_plausible(op, i, in[0]);
            if (plausible && i == 2 && !in[2] && in[1]) {
                /* updates: indices shape (ScatterElements) or indices[:-1] + data[k:] */
                int64_t d[KILN_MAX_RANK];
                int ur = 0;
                if (op == KILN_OP_ScatterElements) {
                    ur = in[1]->rank;
                    for (int k = 0; k < ur; k++) d[k] = in[1]->dims[k];
                } else {
                    int64_t k = in[1]->dims[1];
                    d[ur++] = in[1]->dims[0];
                    for (int64_t a = k; a < in[0]->rank; a++) d[ur++] = in[0]->dims[a];
                }
                in[2] = tnew(in[0]->dtype, ur, d);
            }
            if (!in[i]) in[i] = fuzz_tensor();
        }
        if (plausible && op == KILN_OP_Resize) {
            /* a usable mode, and scales or sizes (the other one empty, meaning absent) */
            kiln_node_set_str(t.n, "mode", strs[rng_int(0, 2)]);
            int drop = rng_int(0, 1) ? 2 : 3;
            if (in[2] && n_in > 3 && in[3]) {
                int64_t zero = 0;
                kiln_tensor_free(in[drop]);
                in[drop] = tnew(drop == 2 ? KILN_F32 : KILN_I64, 1, &zero);
            }
        }
        kiln_status st = run(&t, in, n_in, &y);
        if (st == KILN_OK) ok++;
        else ck_assert_str_ne(kiln_last_error(), ""); /* failures carry a message */
        free_all(&t, in, n_in, y);
    }
    ck_assert_int_gt(ok, 0);
}
END_TEST

static Suite *index_suite(void) {
    Suite *s = suite_create("ops_index");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, gather_random);
    tcase_add_test(tc, gather_errors);
    tcase_add_test(tc, gather_elements_random);
    tcase_add_test(tc, gathernd_random);
    tcase_add_test(tc, scatter_elements_reductions);
    tcase_add_test(tc, scatternd_random);
    tcase_add_test(tc, scatter_errors);
    tcase_add_test(tc, onehot_random);
    tcase_add_test(tc, onehot_errors);
    tcase_add_test(tc, pad_modes_random);
    tcase_add_test(tc, pad_errors);
    tcase_add_test(tc, resize_vs_naive);
    tcase_add_test(tc, resize_nearest_and_identities);
    tcase_add_test(tc, resize_crop_aspect_int);
    tcase_add_test(tc, resize_errors);
    tcase_add_test(tc, compress_random);
    tcase_add_test(tc, nonzero_random);
    tcase_add_test(tc, reversesequence_random);
    tcase_add_test(tc, infer_symbolic);
    tcase_add_test(tc, fuzz_no_crash);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(index_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
