/* check_pass_fuse_conv_pair.c — fuse-conv-pair: at fp16 in NHWC, Add(conv(x), conv2(a)) (+ act)
 * after fuse-epilogue becomes one group with both convolutions (structure, attributes, the CPU
 * evaluator's outputs unchanged), and the cases where it must not fire. */
#include "graph_builder.h"

static void check_pair(kiln_graph *g, kiln_precision prec, bool want) { gb_check_late_fusion(g, prec, "fuse-conv-pair", want, 1); }

static const kiln_node *pair_node(const kiln_graph *g) {
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == KILN_OP_Fused && kiln_attr_int(&g->nodes[i], "pair_x_input", -1) >= 0) return &g->nodes[i];
    return NULL;
}

/* x [N,C,8,8] -> u = Conv(x, wu [16,C,1,1], bu); a = Relu(Conv(x, wa [C,C,3,3] pads 1));
 * v = Conv(a, wv [16,C,3,3], stride s, pads 1); y = Relu(Add(u', v)) where u' is u (or u
 * taken at stride s: the 1x1 conv gets the same stride). bias_v adds a bias to v. */
static kiln_graph *projection(int64_t C, int s, bool bias_v, bool act_before_add) {
    kiln_graph *g = kiln_graph_new();
    const int64_t xd[4] = {2, C, 8, 8}, wu[4] = {16, C, 1, 1}, wa[4] = {C, C, 3, 3}, wv[4] = {16, C, 3, 3}, b16 = 16;
    const int64_t pads[4] = {1, 1, 1, 1}, st[2] = {s, s};
    gb_input(g, "x", KILN_F32, 4, xd, "N");
    gb_const(g, "wu", KILN_F32, 4, wu, -0.3, 0.3);
    gb_const(g, "bu", KILN_F32, 1, &b16, -1, 1);
    gb_const(g, "wa", KILN_F32, 4, wa, -0.2, 0.2);
    gb_const(g, "wv", KILN_F32, 4, wv, -0.2, 0.2);
    gb_const(g, "bv", KILN_F32, 1, &b16, -1, 1);
    kiln_node *c = gb_node(g, KILN_OP_Conv, "u", "x,wu,bu", "u");
    kiln_node_set_ints(c, "strides", st, 2);
    c = gb_node(g, KILN_OP_Conv, "a", "x,wa", "a0");
    kiln_node_set_ints(c, "pads", pads, 4);
    gb_node(g, KILN_OP_Relu, "ar", "a0", "a");
    c = gb_node(g, KILN_OP_Conv, "v", bias_v ? "a,wv,bv" : "a,wv", "v");
    kiln_node_set_ints(c, "pads", pads, 4);
    kiln_node_set_ints(c, "strides", st, 2);
    const char *vv = "v";
    if (act_before_add) {
        gb_node(g, KILN_OP_Sigmoid, "vs", "v", "vs");
        vv = "vs";
    }
    char ins[16];
    snprintf(ins, sizeof ins, "u,%s", vv);
    gb_node(g, KILN_OP_Add, "add", ins, "s");
    gb_node(g, KILN_OP_Relu, "relu", "s", "y");
    gb_output(g, "y");
    return g;
}

START_TEST(projection_block_pairs_at_fp16) {
    for (int s = 1; s <= 2; s++)
        for (int b = 0; b < 2; b++) {
            kiln_graph *g = projection(64, s, b, false);
            check_pair(g, KILN_PREC_FP16, true);
            const kiln_node *f = pair_node(g);
            ck_assert_ptr_nonnull(f);
            /* the later conv (v, depth 576) is the anchor; u (1x1, depth 64) the pair */
            /* (convert-precision renamed it "wu_fp16...") */
            ck_assert_int_eq(strncmp(g->values[f->inputs[kiln_attr_int(f, "pair_w_input", -1)]].name, "wu", 2), 0);
            ck_assert_int_ge(kiln_attr_int(f, "pair_bias_input", -1), 0);
            ck_assert_int_eq(kiln_attr_int(f, "has_residual", -1), 0);
            ck_assert_str_eq(kiln_attr_str(f, "post_activation", ""), "relu");
            ck_assert_str_eq(kiln_attr_str(f, "kiln_layout", ""), "NHWC");
            ck_assert_int_eq(kiln_attr_int(f, "has_bias", -1), b);
            kiln_graph_free(g);
        }
}
END_TEST

START_TEST(does_not_pair) {
    /* fp32 and tf32: the pair kernel is fp16 only */
    kiln_graph *g = projection(64, 1, true, false);
    check_pair(g, KILN_PREC_FP32, false);
    kiln_graph_free(g);
    g = projection(64, 1, true, false);
    check_pair(g, KILN_PREC_TF32, false);
    kiln_graph_free(g);
    /* an activation between the anchor and the Add: not one accumulator */
    g = projection(64, 1, true, true);
    check_pair(g, KILN_PREC_FP16, false);
    kiln_graph_free(g);
    /* C = 12: not a multiple of 8 (the kernel's 16-byte chunks) */
    g = projection(12, 1, true, false);
    check_pair(g, KILN_PREC_FP16, false);
    kiln_graph_free(g);
    /* C = 24: both depths (24 and 216) are not whole 64-deep K tiles */
    g = projection(24, 1, true, false);
    check_pair(g, KILN_PREC_FP16, false);
    kiln_graph_free(g);
    /* the residual conv's output is also a graph output */
    g = projection(64, 1, true, false);
    gb_output(g, "u");
    check_pair(g, KILN_PREC_FP16, false);
    kiln_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pass_fuse_conv_pair");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, projection_block_pairs_at_fp16);
    tcase_add_test(tc, does_not_pair);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
