/* check_pass_fuse_conv_pool.c — fuse-conv-pool: at fp16 in NHWC, a stride-2 stem conv (C <= 4,
 * 64 outputs) with its bias and ReLU, and the 3x3 stride-2 MaxPool after it, become one group
 * (structure, attributes, the CPU evaluator's outputs unchanged), and the cases where it must
 * not fire. */
#include "graph_builder.h"

/* (x is the graph input: its fp16 Cast joins the group too, two kernels fewer) */
static void check_pool(kiln_graph *g, kiln_precision prec, bool want) {
    gb_check_late_fusion(g, prec, "fuse-conv-pool", want, 2);
}

static const kiln_node *pool_node(const kiln_graph *g) {
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].op == KILN_OP_Fused && kiln_attr_str(&g->nodes[i], "pool", NULL))
            return &g->nodes[i];
    return NULL;
}

typedef struct stem {
    int64_t c, k, kernel, stride, pool_k, pool_s;
    bool bias, relu, sigmoid, ceil_mode, conv_out, x_used_twice;
} stem;

/* x [2,C,23,21] -> Conv(w [K,C,R,R], stride, pads R/2) [+ b] -> [Relu | Sigmoid] -> MaxPool
 * (pool_k, pool_s, pads 1) -> Conv 1x1 to 8 channels -> y (a consumer so that the pool's output is
 * an activation); conv_out: the conv's output is also a graph output. */
static kiln_graph *stem_graph(stem s) {
    kiln_graph *g = kiln_graph_new();
    const int64_t xd[4] = {2, s.c, 23, 21}, wd[4] = {s.k, s.c, s.kernel, s.kernel}, w2[4] = {8, s.k, 1, 1};
    const int64_t p = s.kernel / 2, pads[4] = {p, p, p, p}, st[2] = {s.stride, s.stride};
    const int64_t pk[2] = {s.pool_k, s.pool_k}, ps[2] = {s.pool_s, s.pool_s}, pp[4] = {1, 1, 1, 1};
    gb_input(g, "x", KILN_F32, 4, xd, "N");
    gb_const(g, "w", KILN_F32, 4, wd, -0.3, 0.3);
    gb_const(g, "b", KILN_F32, 1, &s.k, -1, 1);
    gb_const(g, "w2", KILN_F32, 4, w2, -0.3, 0.3);
    kiln_node *c = gb_node(g, KILN_OP_Conv, "conv", s.bias ? "x,w,b" : "x,w", "c");
    kiln_node_set_ints(c, "pads", pads, 4);
    kiln_node_set_ints(c, "strides", st, 2);
    const char *cur = "c";
    if (s.relu || s.sigmoid) {
        gb_node(g, s.relu ? KILN_OP_Relu : KILN_OP_Sigmoid, "act", "c", "a");
        cur = "a";
    }
    kiln_node *m = gb_node(g, KILN_OP_MaxPool, "pool", cur, "m");
    kiln_node_set_ints(m, "kernel_shape", pk, 2);
    kiln_node_set_ints(m, "strides", ps, 2);
    kiln_node_set_ints(m, "pads", pp, 4);
    if (s.ceil_mode) kiln_node_set_int(m, "ceil_mode", 1);
    gb_node(g, KILN_OP_Conv, "head", "m,w2", "y");
    gb_output(g, "y");
    if (s.x_used_twice) { /* x's fp16 Cast has another reader: it stays a kernel of its own */
        gb_node(g, KILN_OP_GlobalAveragePool, "gap", "x", "gx");
        gb_output(g, "gx");
    }
    if (s.conv_out) gb_output(g, cur);
    return g;
}

static const stem resnet = {3, 64, 7, 2, 3, 2, true, true, false, false, false, false};

START_TEST(stem_and_maxpool_fuse_at_fp16) {
    for (int v = 0; v < 4; v++) { /* with and without bias and ReLU (neither: a plain Conv, no group yet) */
        stem s = resnet;
        s.bias = v & 1, s.relu = (v >> 1) & 1;
        kiln_graph *g = stem_graph(s);
        check_pool(g, KILN_PREC_FP16, true);
        const kiln_node *f = pool_node(g);
        ck_assert_ptr_nonnull(f);
        ck_assert_str_eq(kiln_attr_str(f, "kind", ""), "conv_epilogue");
        ck_assert_str_eq(kiln_attr_str(f, "anchor", ""), "Conv");
        ck_assert_str_eq(kiln_attr_str(f, "pool", ""), "max");
        ck_assert_str_eq(kiln_attr_str(f, "activation", ""), s.relu ? "relu" : "none");
        ck_assert_str_eq(kiln_attr_str(f, "kiln_layout", ""), "NHWC");
        ck_assert_int_eq(kiln_attr_int(f, "has_bias", -1), s.bias);
        const int bi = (int)kiln_attr_int(f, "bias_input", -2);
        if (s.bias) {
            ck_assert(bi >= 0 && bi < f->n_inputs);
            ck_assert_int_eq(strncmp(g->values[f->inputs[bi]].name, "b", 1), 0);
        } else {
            ck_assert_int_eq(bi, -1);
        }
        /* the body: Cast, Conv, [Relu], MaxPool; the group reads the graph input (float32 NCHW) */
        ck_assert_int_eq(f->body->n_nodes, s.relu ? 4 : 3);
        ck_assert_int_eq(f->body->nodes[0].op, KILN_OP_Cast);
        ck_assert_int_eq(f->body->nodes[f->body->n_nodes - 1].op, KILN_OP_MaxPool);
        ck_assert_int_eq(kiln_attr_int(f, "x_nchw_f32", 0), 1);
        ck_assert_int_eq(f->inputs[0], g->inputs[0]);
        ck_assert_str_eq(f->name, "conv_epilogue_conv");
        kiln_graph_free(g);
    }
    for (int64_t c = 1; c <= 4; c++) { /* C = 1..4 (C = 1: x stays NCHW, the same bytes) */
        stem s = resnet;
        s.c = c;
        kiln_graph *g = stem_graph(s);
        check_pool(g, KILN_PREC_FP16, true);
        kiln_graph_free(g);
    }
    /* x also read elsewhere: the Cast stays, the group reads its fp16 NHWC output */
    stem s = resnet;
    s.x_used_twice = true;
    kiln_graph *g = stem_graph(s);
    gb_check_late_fusion(g, KILN_PREC_FP16, "fuse-conv-pool", true, 1);
    const kiln_node *f = pool_node(g);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(kiln_attr_int(f, "x_nchw_f32", 0), 0);
    ck_assert_int_eq(f->body->nodes[0].op, KILN_OP_Conv);
    kiln_graph_free(g);
}
END_TEST

START_TEST(does_not_fuse) {
    stem cases[] = {resnet, resnet, resnet, resnet, resnet, resnet, resnet, resnet};
    cases[0].c = 8;          /* C = 8: the ordinary NHWC kernels take it */
    cases[1].k = 32;         /* the kernel's 64 output channels */
    cases[2].stride = 1;     /* stride 1 */
    cases[3].pool_k = 2;     /* a 2x2 pool */
    cases[4].pool_s = 1;     /* a stride-1 pool */
    cases[5].sigmoid = true, cases[5].relu = false; /* sigmoid: not what the kernel applies */
    cases[6].ceil_mode = true;                      /* ceil_mode 1 */
    cases[7].conv_out = true;                       /* the conv's output is also a graph output */
    for (int i = 0; i < 8; i++) {
        kiln_graph *g = stem_graph(cases[i]);
        check_pool(g, KILN_PREC_FP16, false);
        kiln_graph_free(g);
    }
    /* fp32 and tf32: the kernel is fp16 only */
    kiln_graph *g = stem_graph(resnet);
    check_pool(g, KILN_PREC_FP32, false);
    kiln_graph_free(g);
    g = stem_graph(resnet);
    check_pool(g, KILN_PREC_TF32, false);
    kiln_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pass_fuse_conv_pool");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stem_and_maxpool_fuse_at_fp16);
    tcase_add_test(tc, does_not_fuse);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
