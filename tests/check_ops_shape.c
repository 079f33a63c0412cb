/* check_ops_shape.c — unit tests for the shape-family ops (ir/ops_shape.c).
 *
 * Each op runs through kiln_eval_node (infer, allocate, evaluate) on seeded random inputs and
 * is compared element by element with a naive index computation written here, independent of
 * the implementation. These ops only move data, so comparisons are exact (tolerance 0) except
 * Range on floats (stated per case). Shape inference with symbolic dims is checked by calling
 * the infer rules directly, and each op group has bad-input cases that must return an error. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ------------------------------------------------------------ fixtures -- */

static kiln_graph *G;
static uint64_t rng;

static void setup(void)
{
    G = kiln_graph_new();
    ck_assert_ptr_nonnull(G);
    rng = 0x9e3779b97f4a7c15ull;
}

static void teardown(void)
{
    kiln_graph_free(G);
    G = NULL;
}

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t rnd_range(int64_t lo, int64_t hi) /* inclusive */
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

/* A node of op with n_in inputs and n_out outputs (anonymous values); returns its index. */
static int mk(kiln_op op, int n_in, int n_out)
{
    int ins[16], outs[16];
    for (int i = 0; i < n_in; i++)
        ins[i] = kiln_graph_add_value(G, NULL);
    for (int i = 0; i < n_out; i++)
        outs[i] = kiln_graph_add_value(G, NULL);
    int id = kiln_graph_add_node(G, op, "t", ins, n_in, outs, n_out);
    ck_assert_int_ge(id, 0);
    return id;
}

#define NODE(id) (&G->nodes[(id)])

static kiln_tensor *tnew(kiln_dtype dt, int rank, const int64_t *dims)
{
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* Random bytes: every bit pattern is fine because the ops only move bytes. */
static kiln_tensor *trand(kiln_dtype dt, int rank, const int64_t *dims)
{
    kiln_tensor *t = tnew(dt, rank, dims);
    unsigned char *p = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        p[i] = (unsigned char)rnd();
    if (dt == KILN_BOOL)
        for (size_t i = 0; i < t->nbytes; i++)
            p[i] &= 1;
    return t;
}

static kiln_tensor *ti64(int n, const int64_t *v)
{
    int64_t d = n;
    kiln_tensor *t = tnew(KILN_I64, 1, &d);
    if (n)
        memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return t;
}

static kiln_tensor *tscalar(kiln_dtype dt, double v)
{
    kiln_tensor *t = tnew(dt, 0, NULL);
    kiln_tensor_set(t, 0, v);
    return t;
}

static void free_all(kiln_tensor **t, int n)
{
    for (int i = 0; i < n; i++) {
        kiln_tensor_free(t[i]);
        t[i] = NULL;
    }
}

static kiln_status run(int id, kiln_tensor **in, int n_in, kiln_tensor **out, int n_out)
{
    return kiln_eval_node(NODE(id), in, n_in, out, n_out);
}

static void assert_dims(const kiln_tensor *t, int rank, const int64_t *dims)
{
    ck_assert_int_eq(t->rank, rank);
    for (int i = 0; i < rank; i++)
        ck_assert_int_eq(t->dims[i], dims[i]);
}

/* Element i of t and j of u are bytewise identical. */
static int same_elem(const kiln_tensor *t, int64_t i, const kiln_tensor *u, int64_t j)
{
    size_t es = kiln_dtype_size(t->dtype);
    return memcmp((const char *)t->data + (size_t)i * es, (const char *)u->data + (size_t)j * es, es) == 0;
}

/* Flat index of a multi-index in a row-major shape. */
static int64_t flat(int rank, const int64_t *dims, const int64_t *idx)
{
    int64_t f = 0;
    for (int d = 0; d < rank; d++)
        f = f * dims[d] + idx[d];
    return f;
}

/* Multi-index of flat index f. */
static void unflat(int rank, const int64_t *dims, int64_t f, int64_t *idx)
{
    for (int d = rank - 1; d >= 0; d--) {
        idx[d] = dims[d] ? f % dims[d] : 0;
        f = dims[d] ? f / dims[d] : 0;
    }
}

/* Values for direct infer calls. */
static void vinit(kiln_value *v, kiln_dtype dt, int rank, const int64_t *dims, const int32_t *sym)
{
    memset(v, 0, sizeof *v);
    v->name = "";
    v->producer = -1;
    v->dtype = dt;
    v->rank = rank;
    for (int i = 0; i < rank && i < KILN_MAX_RANK; i++) {
        v->dims[i] = dims[i];
        v->sym[i] = sym ? sym[i] : 0;
    }
}

static kiln_status infer(int id, const kiln_value **in, int n_in, kiln_value **out, int n_out)
{
    kiln_infer_ctx c = {G, NODE(id), n_in, in, n_out, out};
    return kiln_infer_table[NODE(id)->op](&c);
}

/* ---------------------------------------------------- reshape family -- */

START_TEST(test_reshape)
{
    int id = mk(KILN_OP_Reshape, 2, 1);
    int64_t xd[3] = {2, 3, 4};
    kiln_tensor *in[2] = {trand(KILN_F32, 3, xd), NULL}, *out[1] = {NULL};

    int64_t s1[2] = {0, -1}, e1[2] = {2, 12};
    in[1] = ti64(2, s1);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_OK);
    assert_dims(out[0], 2, e1);
    ck_assert_mem_eq(out[0]->data, in[0]->data, in[0]->nbytes);
    free_all(out, 1);
    kiln_tensor_free(in[1]);

    int64_t s2[3] = {4, 0, -1}, e2[3] = {4, 3, 2};
    in[1] = ti64(3, s2);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_OK);
    assert_dims(out[0], 3, e2);
    free_all(out, 1);
    kiln_tensor_free(in[1]);

    /* Bad: size mismatch, two -1, dim < -1. */
    int64_t bad1[2] = {5, -1}, bad2[3] = {-1, -1, 2}, bad3[2] = {-2, 12};
    const int64_t *bads[3] = {bad1, bad2, bad3};
    int nb[3] = {2, 3, 2};
    for (int b = 0; b < 3; b++) {
        in[1] = ti64(nb[b], bads[b]);
        ck_assert_int_eq(run(id, in, 2, out, 1), KILN_ERR_SHAPE);
        ck_assert_ptr_null(out[0]);
        kiln_tensor_free(in[1]);
    }
    int64_t s3[2] = {7, 7};
    in[1] = ti64(2, s3);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_ERR_SHAPE);
    kiln_tensor_free(in[1]);
    kiln_tensor_free(in[0]);

    /* allowzero: a 0 is a real zero-size dim. */
    kiln_node_set_int(NODE(id), "allowzero", 1);
    int64_t zd[3] = {0, 3, 4}, s4[2] = {0, 12}, e4[2] = {0, 12};
    in[0] = trand(KILN_F16, 3, zd);
    in[1] = ti64(2, s4);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_OK);
    assert_dims(out[0], 2, e4);
    free_all(out, 1);
    kiln_tensor_free(in[1]);
    int64_t s5[2] = {0, -1}; /* 0 and -1 together are invalid with allowzero */
    in[1] = ti64(2, s5);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_ERR_SHAPE);
    free_all(in, 2);
}
END_TEST

START_TEST(test_reshape_infer_symbolic)
{
    int id = mk(KILN_OP_Reshape, 2, 1);
    int32_t n = kiln_graph_symbol(G, "N");
    int64_t xd[3] = {-1, 3, 4};
    int32_t xs[3] = {n, 0, 0};
    kiln_value x, s, y;
    vinit(&x, KILN_F32, 3, xd, xs);
    int64_t sd = 2;
    vinit(&s, KILN_I64, 1, &sd, NULL);
    const kiln_value *in[2] = {&x, &s};
    kiln_value *out[1] = {&y};

    /* [0, -1]: N copied, 12 inferred. */
    int64_t v1[2] = {0, -1};
    s.data = ti64(2, v1);
    ck_assert_int_eq(infer(0 + id, in, 2, out, 1), KILN_OK);
    ck_assert_int_eq(y.rank, 2);
    ck_assert_int_eq(y.dims[0], -1);
    ck_assert_int_eq(y.sym[0], n);
    ck_assert_int_eq(y.dims[1], 12);
    kiln_tensor_free(s.data);

    /* [-1, 12]: the -1 is exactly N. */
    int64_t v2[2] = {-1, 12};
    s.data = ti64(2, v2);
    ck_assert_int_eq(infer(id, in, 2, out, 1), KILN_OK);
    ck_assert_int_eq(y.dims[0], -1);
    ck_assert_int_eq(y.sym[0], n);
    ck_assert_int_eq(y.dims[1], 12);
    kiln_tensor_free(s.data);

    /* [-1, 6]: 2*N, unknown and anonymous. [5, 0, -1] with static data would fail; here
     * a 7 that does not divide 12 is caught even with N symbolic. */
    int64_t v3[2] = {-1, 6};
    s.data = ti64(2, v3);
    ck_assert_int_eq(infer(id, in, 2, out, 1), KILN_OK);
    ck_assert_int_eq(y.dims[0], -1);
    ck_assert_int_eq(y.sym[0], 0);
    kiln_tensor_free(s.data);
    int64_t v4[3] = {0, 7, -1};
    sd = 3;
    vinit(&s, KILN_I64, 1, &sd, NULL);
    s.data = ti64(3, v4);
    ck_assert_int_eq(infer(id, in, 2, out, 1), KILN_ERR_SHAPE);
    kiln_tensor_free(s.data);

    /* Unknown shape data: rank from the shape's length. */
    s.data = NULL;
    ck_assert_int_eq(infer(id, in, 2, out, 1), KILN_OK);
    ck_assert_int_eq(y.rank, 3);
    ck_assert_int_eq(y.dims[0], -1);

    /* Bad: shape must be integer. */
    s.dtype = KILN_F32;
    ck_assert_int_eq(infer(id, in, 2, out, 1), KILN_ERR_SHAPE);
}
END_TEST

START_TEST(test_flatten)
{
    int id = mk(KILN_OP_Flatten, 1, 1);
    int64_t xd[4] = {2, 3, 4, 5};
    kiln_tensor *in[1] = {trand(KILN_U8, 4, xd)}, *out[1] = {NULL};
    int64_t axes[6] = {0, 1, 2, 4, -1, -4};
    int64_t want[6][2] = {{1, 120}, {2, 60}, {6, 20}, {120, 1}, {24, 5}, {1, 120}};
    for (int i = 0; i < 6; i++) {
        kiln_node_set_int(NODE(id), "axis", axes[i]);
        ck_assert_int_eq(run(id, in, 1, out, 1), KILN_OK);
        assert_dims(out[0], 2, want[i]);
        ck_assert_mem_eq(out[0]->data, in[0]->data, in[0]->nbytes);
        free_all(out, 1);
    }
    kiln_node_set_int(NODE(id), "axis", 5);
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_ERR_SHAPE);
    kiln_node_set_int(NODE(id), "axis", -5);
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_ERR_SHAPE);
    free_all(in, 1);

    /* Symbolic batch survives axis 1; a product including N is unknown. */
    int32_t n = kiln_graph_symbol(G, "N");
    int64_t sd[3] = {-1, 3, 4};
    int32_t ss[3] = {n, 0, 0};
    kiln_value x, y;
    vinit(&x, KILN_F32, 3, sd, ss);
    const kiln_value *vin[1] = {&x};
    kiln_value *vout[1] = {&y};
    kiln_node_set_int(NODE(id), "axis", 1);
    ck_assert_int_eq(infer(id, vin, 1, vout, 1), KILN_OK);
    ck_assert_int_eq(y.dims[0], -1);
    ck_assert_int_eq(y.sym[0], n);
    ck_assert_int_eq(y.dims[1], 12);
    kiln_node_set_int(NODE(id), "axis", 2);
    ck_assert_int_eq(infer(id, vin, 1, vout, 1), KILN_OK);
    ck_assert_int_eq(y.dims[0], -1);
    ck_assert_int_eq(y.sym[0], 0);
    ck_assert_int_eq(y.dims[1], 4);
}
END_TEST

START_TEST(test_squeeze_unsqueeze)
{
    int sq = mk(KILN_OP_Squeeze, 1, 1), sqa = mk(KILN_OP_Squeeze, 2, 1), un = mk(KILN_OP_Unsqueeze, 2, 1);
    int64_t xd[4] = {1, 3, 1, 2};
    kiln_tensor *in[2] = {trand(KILN_BOOL, 4, xd), NULL}, *out[1] = {NULL};

    int64_t e1[2] = {3, 2};
    ck_assert_int_eq(run(sq, in, 1, out, 1), KILN_OK);
    assert_dims(out[0], 2, e1);
    ck_assert_mem_eq(out[0]->data, in[0]->data, in[0]->nbytes);
    free_all(out, 1);

    int64_t a2[1] = {-2}, e2[3] = {1, 3, 2};
    in[1] = ti64(1, a2);
    ck_assert_int_eq(run(sqa, in, 2, out, 1), KILN_OK);
    assert_dims(out[0], 3, e2);
    free_all(out, 1);
    kiln_tensor_free(in[1]);

    /* Bad: squeezing a dim of 3, an out-of-range axis, a repeated axis. */
    int64_t b1[1] = {1}, b2[1] = {4}, b3[2] = {0, -4};
    const int64_t *bads[3] = {b1, b2, b3};
    int nb[3] = {1, 1, 2};
    for (int b = 0; b < 3; b++) {
        in[1] = ti64(nb[b], bads[b]);
        ck_assert_int_eq(run(sqa, in, 2, out, 1), KILN_ERR_SHAPE);
        kiln_tensor_free(in[1]);
    }
    kiln_tensor_free(in[0]);

    int64_t ud[2] = {3, 2};
    in[0] = trand(KILN_F32, 2, ud);
    int64_t a3[2] = {-1, 0}, e3[4] = {1, 3, 2, 1};
    in[1] = ti64(2, a3);
    ck_assert_int_eq(run(un, in, 2, out, 1), KILN_OK);
    assert_dims(out[0], 4, e3);
    ck_assert_mem_eq(out[0]->data, in[0]->data, in[0]->nbytes);
    free_all(out, 1);
    kiln_tensor_free(in[1]);
    int64_t b4[2] = {1, 1}, b5[1] = {3};
    in[1] = ti64(2, b4);
    ck_assert_int_eq(run(un, in, 2, out, 1), KILN_ERR_SHAPE);
    kiln_tensor_free(in[1]);
    in[1] = ti64(1, b5);
    ck_assert_int_eq(run(un, in, 2, out, 1), KILN_ERR_SHAPE);
    free_all(in, 2);

    /* Symbols flow through Unsqueeze; Squeeze without axes on a dynamic dim has unknown rank. */
    int32_t n = kiln_graph_symbol(G, "N");
    int64_t sd[2] = {-1, 4};
    int32_t ss[2] = {n, 0};
    kiln_value x, ax, y;
    vinit(&x, KILN_F32, 2, sd, ss);
    int64_t one = 1;
    vinit(&ax, KILN_I64, 1, &one, NULL);
    int64_t a4[1] = {1};
    ax.data = ti64(1, a4);
    const kiln_value *vin[2] = {&x, &ax};
    kiln_value *vout[1] = {&y};
    ck_assert_int_eq(infer(un, vin, 2, vout, 1), KILN_OK);
    ck_assert_int_eq(y.rank, 3);
    ck_assert_int_eq(y.sym[0], n);
    ck_assert_int_eq(y.dims[1], 1);
    ck_assert_int_eq(y.dims[2], 4);
    kiln_tensor_free(ax.data);
    ck_assert_int_eq(infer(sq, vin, 1, vout, 1), KILN_OK);
    ck_assert_int_eq(y.rank, -1);
}
END_TEST

START_TEST(test_shape_size)
{
    int sh = mk(KILN_OP_Shape, 1, 1), sz = mk(KILN_OP_Size, 1, 1);
    int64_t xd[4] = {2, 3, 4, 5};
    kiln_tensor *in[1] = {trand(KILN_F32, 4, xd)}, *out[1] = {NULL};
    struct {
        int has_s, has_e;
        int64_t s, e;
        int len;
        int64_t first;
    } cases[] = {{0, 0, 0, 0, 4, 2}, {1, 0, 1, 0, 3, 3}, {1, 1, 1, -1, 2, 3}, {1, 0, -10, 0, 4, 2},
                 {0, 1, 0, 10, 4, 2}, {1, 1, 3, 1, 0, 0}, {1, 0, -1, 0, 1, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        kiln_node_remove_attr(NODE(sh), "start");
        kiln_node_remove_attr(NODE(sh), "end");
        if (cases[i].has_s)
            kiln_node_set_int(NODE(sh), "start", cases[i].s);
        if (cases[i].has_e)
            kiln_node_set_int(NODE(sh), "end", cases[i].e);
        ck_assert_int_eq(run(sh, in, 1, out, 1), KILN_OK);
        ck_assert_int_eq(out[0]->dtype, KILN_I64);
        ck_assert_int_eq(out[0]->numel, cases[i].len);
        if (cases[i].len)
            ck_assert_int_eq(((int64_t *)out[0]->data)[0], cases[i].first);
        free_all(out, 1);
    }
    ck_assert_int_eq(run(sz, in, 1, out, 1), KILN_OK);
    ck_assert_int_eq(out[0]->rank, 0);
    ck_assert_int_eq(((int64_t *)out[0]->data)[0], 120);
    free_all(out, 1);
    free_all(in, 1);
    /* Bad: the output slot is missing. */
    kiln_value x;
    vinit(&x, KILN_F32, 4, xd, NULL);
    const kiln_value *vin[1] = {&x};
    kiln_value *vout[1] = {NULL};
    ck_assert_int_ne(infer(sz, vin, 1, vout, 1), KILN_OK);
}
END_TEST

/* ------------------------------------------------------ concat / split -- */

START_TEST(test_concat)
{
    int id = mk(KILN_OP_Concat, 3, 1);
    int64_t mids[3] = {1, 2, 0};
    kiln_tensor *in[3], *out[1] = {NULL};
    for (int i = 0; i < 3; i++) {
        int64_t d[3] = {2, mids[i], 3};
        in[i] = trand(KILN_I32, 3, d);
    }
    int64_t axes[2] = {1, -2};
    for (int a = 0; a < 2; a++) {
        kiln_node_set_int(NODE(id), "axis", axes[a]);
        ck_assert_int_eq(run(id, in, 3, out, 1), KILN_OK);
        int64_t e[3] = {2, 3, 3};
        assert_dims(out[0], 3, e);
        for (int64_t f = 0; f < out[0]->numel; f++) {
            int64_t idx[3];
            unflat(3, e, f, idx);
            int k = 0;
            int64_t j = idx[1];
            while (j >= mids[k]) {
                j -= mids[k];
                k++;
            }
            int64_t src[3] = {idx[0], j, idx[2]};
            ck_assert(same_elem(out[0], f, in[k], flat(3, in[k]->dims, src)));
        }
        free_all(out, 1);
    }
    /* Bad: a non-axis dim differs; dtypes differ; axis out of range; missing axis. */
    int64_t bd[3] = {3, 1, 3};
    kiln_tensor *keep = in[0];
    in[0] = trand(KILN_I32, 3, bd);
    ck_assert_int_eq(run(id, in, 3, out, 1), KILN_ERR_SHAPE);
    kiln_tensor_free(in[0]);
    int64_t od[3] = {2, 1, 3};
    in[0] = trand(KILN_F32, 3, od);
    ck_assert_int_eq(run(id, in, 3, out, 1), KILN_ERR_SHAPE);
    kiln_tensor_free(in[0]);
    in[0] = keep;
    kiln_node_set_int(NODE(id), "axis", 3);
    ck_assert_int_eq(run(id, in, 3, out, 1), KILN_ERR_SHAPE);
    kiln_node_remove_attr(NODE(id), "axis");
    ck_assert_int_eq(run(id, in, 3, out, 1), KILN_ERR_SHAPE);
    free_all(in, 3);

    /* Symbols: batch N shared on a non-axis dim is kept. */
    int32_t n = kiln_graph_symbol(G, "N");
    kiln_value v[3], y;
    const kiln_value *vin[3];
    for (int i = 0; i < 3; i++) {
        int64_t d[2] = {-1, i + 1};
        int32_t s[2] = {n, 0};
        vinit(&v[i], KILN_F32, 2, d, s);
        vin[i] = &v[i];
    }
    kiln_value *vout[1] = {&y};
    kiln_node_set_int(NODE(id), "axis", 1);
    ck_assert_int_eq(infer(id, vin, 3, vout, 1), KILN_OK);
    ck_assert_int_eq(y.sym[0], n);
    ck_assert_int_eq(y.dims[1], 6);
}
END_TEST

static void check_split(kiln_tensor *x, int axis, kiln_tensor **out, int n_out, const int64_t *sizes)
{
    int64_t off = 0;
    for (int k = 0; k < n_out; k++) {
        ck_assert_int_eq(out[k]->dims[axis], sizes[k]);
        for (int64_t f = 0; f < out[k]->numel; f++) {
            int64_t idx[KILN_MAX_RANK];
            unflat(out[k]->rank, out[k]->dims, f, idx);
            idx[axis] += off;
            ck_assert(same_elem(out[k], f, x, flat(x->rank, x->dims, idx)));
        }
        off += sizes[k];
    }
}

START_TEST(test_split)
{
    int64_t xd[2] = {7, 4};
    kiln_tensor *in[2] = {trand(KILN_I64, 2, xd), NULL}, *out[4] = {NULL};

    int nu = mk(KILN_OP_Split, 1, 3);
    kiln_node_set_int(NODE(nu), "num_outputs", 3);
    ck_assert_int_eq(run(nu, in, 1, out, 3), KILN_OK);
    int64_t s1[3] = {3, 3, 1};
    check_split(in[0], 0, out, 3, s1);
    free_all(out, 3);

    int ex = mk(KILN_OP_Split, 2, 2);
    int64_t sp[2] = {2, 5};
    in[1] = ti64(2, sp);
    ck_assert_int_eq(run(ex, in, 2, out, 2), KILN_OK);
    check_split(in[0], 0, out, 2, sp);
    free_all(out, 2);
    kiln_tensor_free(in[1]);

    int eq = mk(KILN_OP_Split, 1, 4);
    kiln_node_set_int(NODE(eq), "axis", -1);
    ck_assert_int_eq(run(eq, in, 1, out, 4), KILN_OK);
    int64_t s2[4] = {1, 1, 1, 1};
    check_split(in[0], 1, out, 4, s2);
    free_all(out, 4);

    /* Zero-size parts. */
    int64_t sp0[2] = {0, 7};
    in[1] = ti64(2, sp0);
    ck_assert_int_eq(run(ex, in, 2, out, 2), KILN_OK);
    check_split(in[0], 0, out, 2, sp0);
    free_all(out, 2);
    kiln_tensor_free(in[1]);

    /* Bad: sizes do not sum to 7; negative size; uneven equal split; wrong split length. */
    int64_t b1[2] = {2, 2}, b2[2] = {-1, 8}, b3[3] = {1, 1, 5};
    in[1] = ti64(2, b1);
    ck_assert_int_eq(run(ex, in, 2, out, 2), KILN_ERR_SHAPE);
    kiln_tensor_free(in[1]);
    in[1] = ti64(2, b2);
    ck_assert_int_eq(run(ex, in, 2, out, 2), KILN_ERR_SHAPE);
    kiln_tensor_free(in[1]);
    in[1] = ti64(3, b3);
    ck_assert_int_ne(run(ex, in, 2, out, 2), KILN_OK);
    int eq3 = mk(KILN_OP_Split, 1, 3);
    ck_assert_int_eq(run(eq3, in, 1, out, 3), KILN_ERR_SHAPE);
    free_all(in, 2);
}
END_TEST

/* -------------------------------------------------------------- slice -- */

/* Source indices along one axis, by filtering every index rather than by a count formula. */
static int64_t naive_slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *idx)
{
    int64_t k = 0, e = end < 0 ? end + dim : end;
    if (step > 0) {
        int64_t s = start < 0 ? start + dim : start;
        if (s < 0)
            s = 0;
        for (int64_t j = 0; j < dim; j++)
            if (j >= s && j < e && (j - s) % step == 0)
                idx[k++] = j;
    } else {
        /* The ONNX spec (and onnxruntime) clamp a negative-step start into [0, dim-1]; plain
         * Python would give an empty slice when start < -dim. */
        int64_t s = start < 0 ? start + dim : start;
        s = s < 0 ? 0 : (s > dim - 1 ? dim - 1 : s);
        for (int64_t j = dim - 1; j >= 0; j--)
            if (j <= s && j > e && (s - j) % (-step) == 0)
                idx[k++] = j;
    }
    return k;
}

START_TEST(test_slice_random)
{
    int id = mk(KILN_OP_Slice, 5, 1);
    for (int trial = 0; trial < 300; trial++) {
        int rank = (int)rnd_range(1, 4);
        int64_t xd[4];
        for (int d = 0; d < rank; d++)
            xd[d] = rnd_range(0, 6);
        kiln_dtype dts[4] = {KILN_F32, KILN_U8, KILN_F16, KILN_F64};
        kiln_tensor *x = trand(dts[trial % 4], rank, xd);
        /* A random subset of axes in random order, some written negative. */
        int perm[4] = {0, 1, 2, 3};
        for (int i = rank - 1; i > 0; i--) {
            int j = (int)rnd_range(0, i), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        int cnt = (int)rnd_range(1, rank);
        int64_t st[4], en[4], ax[4], sp[4];
        for (int i = 0; i < cnt; i++) {
            ax[i] = perm[i] - (rnd() % 2 ? rank : 0);
            st[i] = rnd_range(-9, 9);
            en[i] = rnd_range(-9, 9);
            if (rnd() % 8 == 0)
                en[i] = INT64_MAX;
            if (rnd() % 8 == 0)
                en[i] = INT64_MIN;
            if (rnd() % 10 == 0)
                st[i] = INT64_MIN;
            do
                sp[i] = rnd_range(-3, 3);
            while (sp[i] == 0);
        }
        kiln_tensor *in[5] = {x, ti64(cnt, st), ti64(cnt, en), ti64(cnt, ax), ti64(cnt, sp)};
        kiln_tensor *out[1] = {NULL};
        ck_assert_int_eq(run(id, in, 5, out, 1), KILN_OK);
        /* Reference: per-axis index lists, then a full gather. */
        int64_t lists[4][8], len[4];
        for (int d = 0; d < rank; d++) {
            len[d] = xd[d];
            for (int64_t j = 0; j < xd[d]; j++)
                lists[d][j] = j;
        }
        for (int i = 0; i < cnt; i++) {
            int d = (int)(ax[i] < 0 ? ax[i] + rank : ax[i]);
            len[d] = naive_slice_axis(xd[d], st[i], en[i], sp[i], lists[d]);
        }
        assert_dims(out[0], rank, len);
        for (int64_t f = 0; f < out[0]->numel; f++) {
            int64_t idx[4], src[4];
            unflat(rank, len, f, idx);
            for (int d = 0; d < rank; d++)
                src[d] = lists[d][idx[d]];
            ck_assert(same_elem(out[0], f, x, flat(rank, xd, src)));
        }
        free_all(out, 1);
        free_all(in, 5);
    }
}
END_TEST

START_TEST(test_slice_errors_and_infer)
{
    int id = mk(KILN_OP_Slice, 5, 1), id3 = mk(KILN_OP_Slice, 3, 1);
    int64_t xd[2] = {4, 5};
    int64_t zero[2] = {0, 0}, four[2] = {4, 4}, ax[2] = {0, 1}, dup[2] = {1, -1}, st0[2] = {1, 0};
    kiln_tensor *in[5] = {trand(KILN_F32, 2, xd), ti64(2, zero), ti64(2, four), ti64(2, ax), ti64(2, st0)};
    kiln_tensor *out[1] = {NULL};
    ck_assert_int_eq(run(id, in, 5, out, 1), KILN_ERR_SHAPE); /* step 0 */
    kiln_tensor_free(in[4]);
    in[4] = NULL; /* omitted steps */
    kiln_tensor_free(in[3]);
    in[3] = ti64(2, dup);
    ck_assert_int_eq(run(id, in, 5, out, 1), KILN_ERR_SHAPE); /* axis twice */
    kiln_tensor_free(in[3]);
    int64_t far[2] = {0, 2};
    in[3] = ti64(2, far);
    ck_assert_int_eq(run(id, in, 5, out, 1), KILN_ERR_SHAPE); /* axis out of range */
    kiln_tensor_free(in[2]);
    in[2] = ti64(1, four);
    ck_assert_int_ne(run(id3, in, 3, out, 1), KILN_OK); /* length mismatch */
    free_all(in, 5);

    /* Symbols: the batch passes through a slice of another axis and a full slice of itself. */
    int32_t n = kiln_graph_symbol(G, "N");
    int64_t sd[2] = {-1, 10}, one = 1;
    int32_t ss[2] = {n, 0};
    kiln_value x, vs, ve, va, y;
    vinit(&x, KILN_F32, 2, sd, ss);
    vinit(&vs, KILN_I64, 1, &one, NULL);
    vinit(&ve, KILN_I64, 1, &one, NULL);
    vinit(&va, KILN_I64, 1, &one, NULL);
    int64_t s2 = 2, e8 = 8, a1 = 1, a0 = 0, s0 = 0, emax = INT64_MAX;
    vs.data = ti64(1, &s2);
    ve.data = ti64(1, &e8);
    va.data = ti64(1, &a1);
    const kiln_value *vin[5] = {&x, &vs, &ve, &va, NULL};
    kiln_value *vout[1] = {&y};
    ck_assert_int_eq(infer(id, vin, 5, vout, 1), KILN_OK);
    ck_assert_int_eq(y.sym[0], n);
    ck_assert_int_eq(y.dims[1], 6);
    free_all(&vs.data, 1);
    free_all(&ve.data, 1);
    free_all(&va.data, 1);
    vs.data = ti64(1, &s0);
    ve.data = ti64(1, &emax);
    va.data = ti64(1, &a0);
    ck_assert_int_eq(infer(id, vin, 5, vout, 1), KILN_OK);
    ck_assert_int_eq(y.sym[0], n);
    ck_assert_int_eq(y.dims[1], 10);
    free_all(&vs.data, 1);
    free_all(&ve.data, 1);
    /* A reversed full axis keeps the symbol; a partial one cannot. */
    int64_t sm1 = -1, emin = INT64_MIN, e3 = 3;
    kiln_value vt;
    vinit(&vt, KILN_I64, 1, &one, NULL);
    vt.data = ti64(1, &sm1);
    vs.data = ti64(1, &sm1);
    ve.data = ti64(1, &emin);
    vin[4] = &vt;
    ck_assert_int_eq(infer(id, vin, 5, vout, 1), KILN_OK);
    ck_assert_int_eq(y.dims[0], -1);
    ck_assert_int_eq(y.sym[0], n);
    free_all(&ve.data, 1);
    ve.data = ti64(1, &e3);
    ck_assert_int_eq(infer(id, vin, 5, vout, 1), KILN_OK);
    ck_assert_int_eq(y.dims[0], -1);
    ck_assert_int_eq(y.sym[0], 0);
    free_all(&vs.data, 1);
    free_all(&ve.data, 1);
    free_all(&va.data, 1);
    free_all(&vt.data, 1);
}
END_TEST

/* ------------------------------------------- transpose / expand / tile -- */

START_TEST(test_transpose)
{
    int id = mk(KILN_OP_Transpose, 1, 1);
    for (int trial = 0; trial < 40; trial++) {
        int rank = (int)rnd_range(1, 5);
        int64_t xd[5], perm[5], yd[5];
        for (int d = 0; d < rank; d++) {
            xd[d] = rnd_range(1, 4);
            perm[d] = d;
        }
        for (int i = rank - 1; i > 0; i--) {
            int j = (int)rnd_range(0, i);
            int64_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        bool dflt = trial % 5 == 0;
        if (dflt) {
            kiln_node_remove_attr(NODE(id), "perm");
            for (int d = 0; d < rank; d++)
                perm[d] = rank - 1 - d;
        } else {
            kiln_node_set_ints(NODE(id), "perm", perm, rank);
        }
        for (int d = 0; d < rank; d++)
            yd[d] = xd[perm[d]];
        kiln_dtype dts[3] = {KILN_F16, KILN_I64, KILN_BOOL};
        kiln_tensor *in[1] = {trand(dts[trial % 3], rank, xd)}, *out[1] = {NULL};
        ck_assert_int_eq(run(id, in, 1, out, 1), KILN_OK);
        assert_dims(out[0], rank, yd);
        for (int64_t f = 0; f < out[0]->numel; f++) {
            int64_t idx[5], src[5];
            unflat(rank, yd, f, idx);
            for (int d = 0; d < rank; d++)
                src[perm[d]] = idx[d];
            ck_assert(same_elem(out[0], f, in[0], flat(rank, xd, src)));
        }
        free_all(out, 1);
        free_all(in, 1);
    }
    int64_t xd[3] = {2, 3, 4}, p1[3] = {0, 0, 1}, p2[2] = {1, 0}, p3[3] = {0, 1, 3};
    kiln_tensor *in[1] = {trand(KILN_F32, 3, xd)}, *out[1] = {NULL};
    const int64_t *bads[3] = {p1, p2, p3};
    int nb[3] = {3, 2, 3};
    for (int b = 0; b < 3; b++) {
        kiln_node_set_ints(NODE(id), "perm", bads[b], nb[b]);
        ck_assert_int_eq(run(id, in, 1, out, 1), KILN_ERR_SHAPE);
    }
    free_all(in, 1);
}
END_TEST

START_TEST(test_expand)
{
    int id = mk(KILN_OP_Expand, 2, 1);
    int64_t xd[2] = {3, 1}, sh[3] = {2, 1, 4}, yd[3] = {2, 3, 4};
    kiln_tensor *in[2] = {trand(KILN_F32, 2, xd), ti64(3, sh)}, *out[1] = {NULL};
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_OK);
    assert_dims(out[0], 3, yd);
    for (int64_t f = 0; f < out[0]->numel; f++) {
        int64_t idx[3];
        unflat(3, yd, f, idx);
        ck_assert(same_elem(out[0], f, in[0], idx[1]));
    }
    free_all(out, 1);
    kiln_tensor_free(in[1]);
    /* A shape smaller than the input keeps the input's dims. */
    int64_t sh2[1] = {1};
    in[1] = ti64(1, sh2);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_OK);
    assert_dims(out[0], 2, xd);
    ck_assert_mem_eq(out[0]->data, in[0]->data, in[0]->nbytes);
    free_all(out, 1);
    kiln_tensor_free(in[1]);
    /* Bad: 3 cannot broadcast to 2; a negative dim. */
    int64_t b1[2] = {2, 2}, b2[2] = {-1, 1};
    in[1] = ti64(2, b1);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_ERR_SHAPE);
    kiln_tensor_free(in[1]);
    in[1] = ti64(2, b2);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_ERR_SHAPE);
    free_all(in, 2);
}
END_TEST

START_TEST(test_tile)
{
    int id = mk(KILN_OP_Tile, 2, 1);
    int64_t xd[3] = {2, 3, 2}, rep[3] = {2, 1, 3}, yd[3] = {4, 3, 6};
    kiln_tensor *in[2] = {trand(KILN_I8, 3, xd), ti64(3, rep)}, *out[1] = {NULL};
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_OK);
    assert_dims(out[0], 3, yd);
    for (int64_t f = 0; f < out[0]->numel; f++) {
        int64_t idx[3];
        unflat(3, yd, f, idx);
        for (int d = 0; d < 3; d++)
            idx[d] %= xd[d];
        ck_assert(same_elem(out[0], f, in[0], flat(3, xd, idx)));
    }
    free_all(out, 1);
    kiln_tensor_free(in[1]);
    int64_t r0[3] = {1, 0, 2};
    in[1] = ti64(3, r0);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_OK);
    ck_assert_int_eq(out[0]->numel, 0);
    free_all(out, 1);
    kiln_tensor_free(in[1]);
    int64_t b1[2] = {1, 1}, b2[3] = {1, -1, 1};
    in[1] = ti64(2, b1);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_ERR_SHAPE);
    kiln_tensor_free(in[1]);
    in[1] = ti64(3, b2);
    ck_assert_int_eq(run(id, in, 2, out, 1), KILN_ERR_SHAPE);
    free_all(in, 2);
}
END_TEST

/* -------------------------------------------------- constants / range -- */

START_TEST(test_constant)
{
    kiln_tensor *out[1] = {NULL};
    int a = mk(KILN_OP_Constant, 0, 1);
    int64_t td[2] = {2, 3};
    kiln_tensor *t = trand(KILN_BF16, 2, td);
    ck_assert_int_eq(kiln_node_set_tensor(NODE(a), "value", t), KILN_OK);
    ck_assert_int_eq(run(a, NULL, 0, out, 1), KILN_OK);
    assert_dims(out[0], 2, td);
    ck_assert_int_eq(out[0]->dtype, KILN_BF16);
    ck_assert_mem_eq(out[0]->data, t->data, t->nbytes);
    free_all(out, 1);
    kiln_tensor_free(t);

    int b = mk(KILN_OP_Constant, 0, 1);
    float fl[3] = {1.5f, -2.0f, 3.25f};
    kiln_node_set_floats(NODE(b), "value_floats", fl, 3);
    ck_assert_int_eq(run(b, NULL, 0, out, 1), KILN_OK);
    ck_assert_int_eq(out[0]->dtype, KILN_F32);
    ck_assert_int_eq(out[0]->numel, 3);
    ck_assert_mem_eq(out[0]->data, fl, sizeof fl);
    free_all(out, 1);

    int c = mk(KILN_OP_Constant, 0, 1);
    kiln_node_set_int(NODE(c), "value_int", -7);
    ck_assert_int_eq(run(c, NULL, 0, out, 1), KILN_OK);
    ck_assert_int_eq(out[0]->rank, 0);
    ck_assert_int_eq(((int64_t *)out[0]->data)[0], -7);
    free_all(out, 1);

    /* Bad: two values; none; a string value. */
    kiln_node_set_float(NODE(c), "value_float", 1.0f);
    ck_assert_int_eq(run(c, NULL, 0, out, 1), KILN_ERR_SHAPE);
    int d = mk(KILN_OP_Constant, 0, 1);
    ck_assert_int_eq(run(d, NULL, 0, out, 1), KILN_ERR_SHAPE);
    kiln_node_set_str(NODE(d), "value_string", "hi");
    ck_assert_int_eq(run(d, NULL, 0, out, 1), KILN_ERR_UNSUPPORTED);
}
END_TEST

START_TEST(test_constant_of_shape)
{
    int id = mk(KILN_OP_ConstantOfShape, 1, 1);
    kiln_tensor *out[1] = {NULL};
    int64_t sh[2] = {2, 3};
    kiln_tensor *in[1] = {ti64(2, sh)};
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_OK); /* default: f32 zeros */
    ck_assert_int_eq(out[0]->dtype, KILN_F32);
    assert_dims(out[0], 2, sh);
    for (int64_t i = 0; i < 6; i++)
        ck_assert(((float *)out[0]->data)[i] == 0.0f);
    free_all(out, 1);

    kiln_tensor *v = tscalar(KILN_I32, 7);
    int64_t one = 1;
    kiln_tensor *v1 = tnew(KILN_I32, 1, &one);
    memcpy(v1->data, v->data, 4);
    kiln_node_set_tensor(NODE(id), "value", v1);
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_OK);
    ck_assert_int_eq(out[0]->dtype, KILN_I32);
    for (int64_t i = 0; i < 6; i++)
        ck_assert_int_eq(((int32_t *)out[0]->data)[i], 7);
    free_all(out, 1);
    kiln_tensor_free(in[0]);
    in[0] = ti64(0, NULL); /* empty shape: a scalar */
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_OK);
    ck_assert_int_eq(out[0]->rank, 0);
    ck_assert_int_eq(((int32_t *)out[0]->data)[0], 7);
    free_all(out, 1);
    kiln_tensor_free(in[0]);
    int64_t neg[2] = {2, -3};
    in[0] = ti64(2, neg);
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_ERR_SHAPE);
    /* Bad: a value with two elements. */
    int64_t two = 2;
    kiln_tensor *v2 = tnew(KILN_I32, 1, &two);
    kiln_node_set_tensor(NODE(id), "value", v2);
    kiln_tensor_free(in[0]);
    in[0] = ti64(2, sh);
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_ERR_SHAPE);
    free_all(in, 1);
    kiln_tensor_free(v);
    kiln_tensor_free(v1);
    kiln_tensor_free(v2);
}
END_TEST

START_TEST(test_range)
{
    int id = mk(KILN_OP_Range, 3, 1);
    kiln_tensor *out[1] = {NULL};
    kiln_tensor *in[3] = {tscalar(KILN_I32, 10), tscalar(KILN_I32, 4), tscalar(KILN_I32, -2)};
    ck_assert_int_eq(run(id, in, 3, out, 1), KILN_OK);
    ck_assert_int_eq(out[0]->numel, 3);
    int32_t want[3] = {10, 8, 6};
    ck_assert_mem_eq(out[0]->data, want, sizeof want);
    free_all(out, 1);
    free_all(in, 3);

    /* Random int64 ranges: count = max(ceil((l - s) / d), 0), element i = s + i*d (exact). */
    for (int t = 0; t < 50; t++) {
        int64_t s = rnd_range(-50, 50), l = rnd_range(-50, 50), d = rnd_range(-7, 7);
        if (d == 0)
            d = 3;
        in[0] = tscalar(KILN_I64, (double)s);
        in[1] = tscalar(KILN_I64, (double)l);
        in[2] = tscalar(KILN_I64, (double)d);
        ck_assert_int_eq(run(id, in, 3, out, 1), KILN_OK);
        int64_t cnt = 0;
        for (int64_t v = s; d > 0 ? v < l : v > l; v += d)
            cnt++;
        ck_assert_int_eq(out[0]->numel, cnt);
        for (int64_t i = 0; i < cnt; i++)
            ck_assert_int_eq(((int64_t *)out[0]->data)[i], s + i * d);
        free_all(out, 1);
        free_all(in, 3);
    }

    /* Float: 0, 0.3, 0.6, 0.9 below 1 (|err| <= 1e-6). */
    in[0] = tscalar(KILN_F32, 0.0);
    in[1] = tscalar(KILN_F32, 1.0);
    in[2] = tscalar(KILN_F32, 0.3);
    ck_assert_int_eq(run(id, in, 3, out, 1), KILN_OK);
    ck_assert_int_eq(out[0]->numel, 4);
    for (int i = 0; i < 4; i++)
        ck_assert(fabs(((float *)out[0]->data)[i] - 0.3 * i) <= 1e-6);
    free_all(out, 1);
    free_all(in, 3);
    /* f16: 1, 1.5, ..., 4.5 (exact in f16). */
    in[0] = tscalar(KILN_F16, 1.0);
    in[1] = tscalar(KILN_F16, 5.0);
    in[2] = tscalar(KILN_F16, 0.5);
    ck_assert_int_eq(run(id, in, 3, out, 1), KILN_OK);
    ck_assert_int_eq(out[0]->numel, 8);
    for (int i = 0; i < 8; i++)
        ck_assert(kiln_tensor_get(out[0], i) == 1.0 + 0.5 * i);
    free_all(out, 1);
    free_all(in, 3);

    /* Bad: zero delta; mixed dtypes; non-scalar start. */
    in[0] = tscalar(KILN_I32, 0);
    in[1] = tscalar(KILN_I32, 4);
    in[2] = tscalar(KILN_I32, 0);
    ck_assert_int_eq(run(id, in, 3, out, 1), KILN_ERR_SHAPE);
    kiln_tensor_free(in[2]);
    in[2] = tscalar(KILN_I64, 1);
    ck_assert_int_eq(run(id, in, 3, out, 1), KILN_ERR_SHAPE);
    kiln_tensor_free(in[2]);
    in[2] = tscalar(KILN_I32, 1);
    kiln_tensor_free(in[0]);
    int64_t two = 2;
    in[0] = tnew(KILN_I32, 1, &two);
    ck_assert_int_eq(run(id, in, 3, out, 1), KILN_ERR_SHAPE);
    free_all(in, 3);
}
END_TEST

/* ------------------------------------------- depth/space, trilu, eye -- */

START_TEST(test_depth_space)
{
    int d2s = mk(KILN_OP_DepthToSpace, 1, 1), s2d = mk(KILN_OP_SpaceToDepth, 1, 1);
    const int64_t b = 2;
    kiln_node_set_int(NODE(d2s), "blocksize", b);
    kiln_node_set_int(NODE(s2d), "blocksize", b);
    int64_t xd[4] = {2, 12, 3, 2};
    kiln_tensor *in[1] = {trand(KILN_F32, 4, xd)}, *out[1] = {NULL}, *back[1] = {NULL};
    const char *modes[2] = {"DCR", "CRD"};
    for (int m = 0; m < 2; m++) {
        kiln_node_set_str(NODE(d2s), "mode", modes[m]);
        ck_assert_int_eq(run(d2s, in, 1, out, 1), KILN_OK);
        int64_t yd[4] = {2, 3, 6, 4};
        assert_dims(out[0], 4, yd);
        for (int64_t f = 0; f < out[0]->numel; f++) {
            int64_t o[4];
            unflat(4, yd, f, o);
            int64_t i = o[2] % b, j = o[3] % b;
            int64_t ch = m == 0 ? (i * b + j) * yd[1] + o[1] : o[1] * b * b + i * b + j;
            int64_t src[4] = {o[0], ch, o[2] / b, o[3] / b};
            ck_assert(same_elem(out[0], f, in[0], flat(4, xd, src)));
        }
        if (m == 0) {
            /* SpaceToDepth inverts DepthToSpace in DCR mode. */
            ck_assert_int_eq(run(s2d, out, 1, back, 1), KILN_OK);
            assert_dims(back[0], 4, xd);
            ck_assert_mem_eq(back[0]->data, in[0]->data, in[0]->nbytes);
            free_all(back, 1);
        }
        free_all(out, 1);
    }
    /* Bad: channels not divisible by 4; unknown mode; spatial dim not divisible; rank 3. */
    kiln_node_set_int(NODE(d2s), "blocksize", 5);
    ck_assert_int_eq(run(d2s, in, 1, out, 1), KILN_ERR_SHAPE);
    kiln_node_set_int(NODE(d2s), "blocksize", 2);
    kiln_node_set_str(NODE(d2s), "mode", "XYZ");
    ck_assert_int_eq(run(d2s, in, 1, out, 1), KILN_ERR_SHAPE);
    kiln_node_set_int(NODE(s2d), "blocksize", 2);
    ck_assert_int_eq(run(s2d, in, 1, out, 1), KILN_ERR_SHAPE); /* H = 3 */
    free_all(in, 1);
    int64_t r3[3] = {4, 2, 2};
    in[0] = trand(KILN_F32, 3, r3);
    ck_assert_int_eq(run(s2d, in, 1, out, 1), KILN_ERR_SHAPE);
    free_all(in, 1);
}
END_TEST

START_TEST(test_trilu)
{
    int lo = mk(KILN_OP_Trilu, 2, 1), up = mk(KILN_OP_Trilu, 1, 1);
    kiln_node_set_int(NODE(lo), "upper", 0);
    int64_t xd[3] = {2, 3, 5};
    kiln_tensor *in[2] = {trand(KILN_I16, 3, xd), NULL}, *out[1] = {NULL};
    for (int64_t k = -4; k <= 6; k++) {
        in[1] = tscalar(KILN_I64, (double)k);
        ck_assert_int_eq(run(lo, in, 2, out, 1), KILN_OK);
        for (int64_t f = 0; f < out[0]->numel; f++) {
            int64_t idx[3];
            unflat(3, xd, f, idx);
            if (idx[2] - idx[1] <= k)
                ck_assert(same_elem(out[0], f, in[0], f));
            else
                ck_assert_int_eq(((int16_t *)out[0]->data)[f], 0);
        }
        free_all(out, 1);
        kiln_tensor_free(in[1]);
        in[1] = NULL;
    }
    ck_assert_int_eq(run(up, in, 1, out, 1), KILN_OK); /* upper, k = 0 */
    for (int64_t f = 0; f < out[0]->numel; f++) {
        int64_t idx[3];
        unflat(3, xd, f, idx);
        if (idx[2] >= idx[1])
            ck_assert(same_elem(out[0], f, in[0], f));
        else
            ck_assert_int_eq(((int16_t *)out[0]->data)[f], 0);
    }
    free_all(out, 1);
    /* Extreme k must not overflow. */
    in[1] = tscalar(KILN_I64, 0);
    int64_t kmax = INT64_MAX, kmin = INT64_MIN;
    memcpy(in[1]->data, &kmin, 8);
    ck_assert_int_eq(run(lo, in, 2, out, 1), KILN_OK);
    free_all(out, 1);
    memcpy(in[1]->data, &kmax, 8);
    ck_assert_int_eq(run(lo, in, 2, out, 1), KILN_OK);
    ck_assert_mem_eq(out[0]->data, in[0]->data, in[0]->nbytes);
    free_all(out, 1);
    free_all(in, 2);
    /* Bad: rank 1. */
    int64_t r1 = 4;
    in[0] = trand(KILN_F32, 1, &r1);
    ck_assert_int_eq(run(up, in, 1, out, 1), KILN_ERR_SHAPE);
    free_all(in, 1);
}
END_TEST

START_TEST(test_eyelike)
{
    int id = mk(KILN_OP_EyeLike, 1, 1);
    int64_t xd[2] = {3, 5};
    kiln_tensor *in[1] = {trand(KILN_F32, 2, xd)}, *out[1] = {NULL};
    for (int64_t k = -4; k <= 6; k++) {
        kiln_node_set_int(NODE(id), "k", k);
        ck_assert_int_eq(run(id, in, 1, out, 1), KILN_OK);
        ck_assert_int_eq(out[0]->dtype, KILN_F32);
        for (int64_t i = 0; i < 3; i++)
            for (int64_t j = 0; j < 5; j++)
                ck_assert(((float *)out[0]->data)[i * 5 + j] == (j - i == k ? 1.0f : 0.0f));
        free_all(out, 1);
    }
    kiln_node_set_int(NODE(id), "k", INT64_MIN);
    kiln_node_set_int(NODE(id), "dtype", KILN_BOOL);
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_OK);
    ck_assert_int_eq(out[0]->dtype, KILN_BOOL);
    free_all(out, 1);
    kiln_node_set_int(NODE(id), "k", 1);
    kiln_node_set_int(NODE(id), "dtype", KILN_I32);
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_OK);
    ck_assert_int_eq(((int32_t *)out[0]->data)[1], 1);
    ck_assert_int_eq(((int32_t *)out[0]->data)[0], 0);
    free_all(out, 1);
    /* Bad: string dtype; rank 3 input. */
    kiln_node_set_int(NODE(id), "dtype", KILN_STRING);
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_ERR_UNSUPPORTED);
    kiln_node_remove_attr(NODE(id), "dtype");
    free_all(in, 1);
    int64_t r3[3] = {2, 2, 2};
    in[0] = trand(KILN_F32, 3, r3);
    ck_assert_int_eq(run(id, in, 1, out, 1), KILN_ERR_SHAPE);
    free_all(in, 1);
}
END_TEST

/* --------------------------------------------------------------- fuzz -- */

static int64_t fuzz_int(int64_t lo, int64_t hi)
{
    /* Mostly small values, sometimes the int64 extremes. */
    uint64_t r = rnd() % 16;
    if (r == 0)
        return INT64_MAX;
    if (r == 1)
        return INT64_MIN;
    return rnd_range(lo, hi);
}

static kiln_tensor *fuzz_ints(int n, int64_t lo, int64_t hi, bool extremes)
{
    int64_t v[8];
    for (int i = 0; i < n; i++)
        v[i] = extremes ? fuzz_int(lo, hi) : rnd_range(lo, hi);
    return ti64(n, v);
}

static kiln_tensor *fuzz_data(void)
{
    static const kiln_dtype dts[5] = {KILN_F32, KILN_U8, KILN_F16, KILN_I64, KILN_BOOL};
    int rank = (int)rnd_range(0, 4);
    int64_t d[4];
    for (int i = 0; i < rank; i++)
        d[i] = rnd_range(0, 4);
    return trand(dts[rnd() % 5], rank, d);
}

/* Random, often invalid, inputs and attributes: every op must return a status (ASan/UBSan
 * catch any bad access), and on success produce every output. */
START_TEST(test_fuzz_eval)
{
    static const kiln_op ops[] = {KILN_OP_Reshape, KILN_OP_Flatten, KILN_OP_Squeeze, KILN_OP_Unsqueeze,
                                  KILN_OP_Shape, KILN_OP_Size, KILN_OP_Concat, KILN_OP_Split, KILN_OP_Slice,
                                  KILN_OP_Transpose, KILN_OP_Expand, KILN_OP_Tile, KILN_OP_ConstantOfShape,
                                  KILN_OP_Range, KILN_OP_DepthToSpace, KILN_OP_SpaceToDepth, KILN_OP_Trilu,
                                  KILN_OP_EyeLike};
    const int n_ops = (int)(sizeof ops / sizeof *ops);
    for (int trial = 0; trial < 1500; trial++) {
        kiln_op op = ops[trial % n_ops];
        kiln_tensor *in[5] = {NULL}, *out[4] = {NULL};
        int n_in = 1, n_out = 1;
        in[0] = fuzz_data();
        int64_t rank = in[0]->rank;
        switch (op) {
        case KILN_OP_Reshape:
        case KILN_OP_Expand:
        case KILN_OP_Tile:
            n_in = 2;
            in[1] = fuzz_ints((int)rnd_range(0, 4), -2, 4, false);
            break;
        case KILN_OP_Squeeze:
        case KILN_OP_Unsqueeze:
            n_in = op == KILN_OP_Unsqueeze || rnd() % 2 ? 2 : 1;
            if (n_in == 2)
                in[1] = fuzz_ints((int)rnd_range(0, 3), -6, 6, true);
            break;
        case KILN_OP_Concat:
            n_in = (int)rnd_range(1, 3);
            for (int i = 1; i < n_in; i++)
                in[i] = rnd() % 2 ? kiln_tensor_clone(in[0]) : fuzz_data();
            break;
        case KILN_OP_Split:
            n_in = (int)rnd_range(1, 2);
            n_out = (int)rnd_range(1, 4);
            if (n_in == 2)
                in[1] = fuzz_ints((int)rnd_range(0, 4), -1, 4, false);
            break;
        case KILN_OP_Slice: {
            n_in = (int)rnd_range(3, 5);
            int len = (int)rnd_range(0, 4);
            for (int i = 1; i < n_in; i++)
                in[i] = fuzz_ints(i == 3 && rnd() % 8 == 0 ? len + 1 : len, -6, 6, true);
            break;
        }
        case KILN_OP_ConstantOfShape:
            kiln_tensor_free(in[0]);
            in[0] = fuzz_ints((int)rnd_range(0, 4), -1, 4, false);
            break;
        case KILN_OP_Range: {
            static const kiln_dtype rdt[4] = {KILN_F32, KILN_I32, KILN_I64, KILN_F16};
            kiln_tensor_free(in[0]);
            n_in = 3;
            for (int i = 0; i < 3; i++)
                in[i] = tscalar(rdt[(trial / n_ops + (rnd() % 8 == 0 ? i : 0)) % 4], (double)rnd_range(-20, 20));
            break;
        }
        case KILN_OP_Trilu:
            n_in = (int)rnd_range(1, 2);
            if (n_in == 2) {
                int64_t k = fuzz_int(-6, 6);
                in[1] = tnew(KILN_I64, 0, NULL);
                memcpy(in[1]->data, &k, sizeof k);
            }
            break;
        default:
            break;
        }
        int id = mk(op, n_in, n_out);
        kiln_node *n = NODE(id);
        kiln_node_set_int(n, "axis", rnd_range(-5, 5));
        kiln_node_set_int(n, "start", fuzz_int(-6, 6));
        if (rnd() % 2)
            kiln_node_set_int(n, "end", fuzz_int(-6, 6));
        kiln_node_set_int(n, "allowzero", rnd() % 2);
        kiln_node_set_int(n, "blocksize", rnd_range(-1, 3));
        kiln_node_set_str(n, "mode", rnd() % 4 ? "DCR" : (rnd() % 2 ? "CRD" : "bad"));
        kiln_node_set_int(n, "k", fuzz_int(-6, 6));
        kiln_node_set_int(n, "upper", rnd_range(0, 1));
        if (op == KILN_OP_Split && rnd() % 2)
            kiln_node_set_int(n, "num_outputs", rnd() % 4 ? n_out : rnd_range(-1, 5));
        if (op == KILN_OP_EyeLike && rnd() % 2)
            kiln_node_set_int(n, "dtype", rnd_range(0, 17));
        if (op == KILN_OP_Transpose && rnd() % 4) {
            int64_t perm[5];
            int plen = rnd() % 8 ? (int)rank : (int)rnd_range(0, 5);
            for (int i = 0; i < plen; i++)
                perm[i] = rnd() % 8 ? (plen - 1 - i) : rnd_range(-2, 5);
            kiln_node_set_ints(n, "perm", perm, plen);
        }
        kiln_status st = run(id, in, n_in, out, n_out);
        for (int i = 0; i < n_out; i++) {
            if (st == KILN_OK)
                ck_assert_ptr_nonnull(out[i]);
            else
                ck_assert_ptr_null(out[i]);
        }
        free_all(out, n_out);
        free_all(in, n_in);
    }
}
END_TEST

/* ---------------------------------------------------------------- main -- */

static Suite *shape_suite(void)
{
    Suite *s = suite_create("ops_shape");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_reshape);
    tcase_add_test(tc, test_reshape_infer_symbolic);
    tcase_add_test(tc, test_flatten);
    tcase_add_test(tc, test_squeeze_unsqueeze);
    tcase_add_test(tc, test_shape_size);
    tcase_add_test(tc, test_concat);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_slice_random);
    tcase_add_test(tc, test_slice_errors_and_infer);
    tcase_add_test(tc, test_transpose);
    tcase_add_test(tc, test_expand);
    tcase_add_test(tc, test_tile);
    tcase_add_test(tc, test_constant);
    tcase_add_test(tc, test_constant_of_shape);
    tcase_add_test(tc, test_range);
    tcase_add_test(tc, test_depth_space);
    tcase_add_test(tc, test_trilu);
    tcase_add_test(tc, test_eyelike);
    tcase_add_test(tc, test_fuzz_eval);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(shape_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
