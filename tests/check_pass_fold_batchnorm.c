/* check_pass_fold_batchnorm.c — fold-batchnorm: BatchNormalization and per-channel
 * Mul/Add/Sub/Div by constants folded into Conv / ConvTranspose / Gemm weights (structure
 * before/after and numeric equality with the unoptimized graph), standalone BN becoming
 * Mul+Add, and the cases where nothing may fold. */
#include "graph_builder.h"

static const int64_t X4[4] = {-1, 3, 8, 8}; /* N x 3 x 8 x 8, N symbolic */

/* BN parameters "<p>_s", "<p>_b", "<p>_m", "<p>_v" with c channels (var > 0). */
static void bn_params(kiln_graph *g, const char *p, int64_t c) {
    char n[64];
    snprintf(n, sizeof n, "%s_s", p);
    gb_const(g, n, KILN_F32, 1, &c, 0.5, 2.0);
    snprintf(n, sizeof n, "%s_b", p);
    gb_const(g, n, KILN_F32, 1, &c, -1, 1);
    snprintf(n, sizeof n, "%s_m", p);
    gb_const(g, n, KILN_F32, 1, &c, -1, 1);
    snprintf(n, sizeof n, "%s_v", p);
    gb_const(g, n, KILN_F32, 1, &c, 0.1, 2.0);
}

static kiln_node *bn(kiln_graph *g, const char *p, const char *x, const char *y) {
    char ins[256];
    snprintf(ins, sizeof ins, "%s,%s_s,%s_b,%s_m,%s_v", x, p, p, p, p);
    kiln_node *n = gb_node(g, KILN_OP_BatchNormalization, p, ins, y);
    kiln_node_set_float(n, "epsilon", 1e-3f);
    return n;
}

/* Runs fold-batchnorm on g and checks: changed as expected, ops after, same outputs. */
static void check_fold(kiln_graph *g, bool want_changed, const char *before, const char *after) {
    gb_finish(g);
    ck_assert_str_eq(gb_ops(g), before);
    kiln_graph *ref = kiln_graph_clone(g);
    ck_assert_ptr_nonnull(ref);
    bool changed = gb_run_pass(g, "fold-batchnorm", KILN_PREC_FP32);
    ck_assert_msg(changed == want_changed, "changed=%d, ops now %s", changed, gb_ops(g));
    ck_assert_str_eq(gb_ops(g), after);
    gb_assert_same(ref, g, 2, 1e-5);
    for (int o = 0; o < g->n_outputs; o++)
        ck_assert_str_eq(g->values[g->outputs[o]].name, ref->values[ref->outputs[o]].name);
    kiln_graph_free(ref);
}

static int node_of(const kiln_graph *g, kiln_op op) {
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == op) return i;
    return -1;
}

START_TEST(conv_bn_folds) {
    kiln_graph *g = kiln_graph_new();
    int64_t wd[4] = {4, 3, 3, 3}, bd = 4;
    gb_input(g, "x", KILN_F32, 4, X4, "N");
    gb_const(g, "w", KILN_F32, 4, wd, -1, 1);
    gb_const(g, "b", KILN_F32, 1, &bd, -1, 1);
    bn_params(g, "bn", 4);
    kiln_node *c = gb_node(g, KILN_OP_Conv, "conv", "x,w,b", "c");
    int64_t pads[4] = {1, 1, 1, 1};
    kiln_node_set_ints(c, "pads", pads, 4);
    bn(g, "bn", "c", "y");
    gb_output(g, "y");
    check_fold(g, true, "Conv,BatchNormalization", "Conv");
    /* the original weights are untouched (they may be shared); new ones replace them */
    int ci = node_of(g, KILN_OP_Conv);
    ck_assert_str_ne(g->values[g->nodes[ci].inputs[1]].name, "w");
    ck_assert_int_eq(kiln_graph_find_value(g, "w"), -1);
    kiln_graph_free(g);
}
END_TEST

START_TEST(conv_without_bias_folds_a_chain) {
    /* Conv (no bias) -> BN -> Mul [4,1,1] -> Add [1,4,1,1] -> Sub scalar -> Div [4,1,1] */
    kiln_graph *g = kiln_graph_new();
    int64_t wd[4] = {4, 3, 1, 1}, cd[3] = {4, 1, 1}, ad[4] = {1, 4, 1, 1}, one = 1;
    gb_input(g, "x", KILN_F32, 4, X4, "N");
    gb_const(g, "w", KILN_F32, 4, wd, -1, 1);
    bn_params(g, "bn", 4);
    gb_const(g, "k", KILN_F32, 3, cd, -2, 2);
    gb_const(g, "a", KILN_F32, 4, ad, -2, 2);
    gb_const(g, "s", KILN_F32, 1, &one, -2, 2);
    gb_const(g, "d", KILN_F32, 3, cd, 0.5, 2);
    gb_node(g, KILN_OP_Conv, "conv", "x,w", "c");
    bn(g, "bn", "c", "t0");
    gb_node(g, KILN_OP_Mul, "mul", "k,t0", "t1");
    gb_node(g, KILN_OP_Add, "add", "t1,a", "t2");
    gb_node(g, KILN_OP_Sub, "sub", "t2,s", "t3");
    gb_node(g, KILN_OP_Div, "div", "t3,d", "y");
    gb_output(g, "y");
    check_fold(g, true, "Conv,BatchNormalization,Mul,Add,Sub,Div", "Conv");
    ck_assert_int_eq(g->nodes[0].n_inputs, 3); /* a bias was added */
    kiln_graph_free(g);
}
END_TEST

START_TEST(conv_transpose_grouped_bn_folds) {
    /* W is [C_in=4, M/group=3, 3, 3] with group 2: 6 output channels */
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {-1, 4, 5, 5}, wd[4] = {4, 3, 3, 3}, bd = 6;
    gb_input(g, "x", KILN_F32, 4, xd, "N");
    gb_const(g, "w", KILN_F32, 4, wd, -1, 1);
    gb_const(g, "b", KILN_F32, 1, &bd, -1, 1);
    bn_params(g, "bn", 6);
    kiln_node *c = gb_node(g, KILN_OP_ConvTranspose, "convt", "x,w,b", "c");
    kiln_node_set_int(c, "group", 2);
    int64_t strides[2] = {2, 2};
    kiln_node_set_ints(c, "strides", strides, 2);
    bn(g, "bn", "c", "y");
    gb_output(g, "y");
    check_fold(g, true, "ConvTranspose,BatchNormalization", "ConvTranspose");
    kiln_graph_free(g);
}
END_TEST

START_TEST(gemm_trans_b_bn_folds) {
    /* y = BN(0.5 * x * W^T + 2 * C), W [7,5], C [7] */
    kiln_graph *g = kiln_graph_new();
    int64_t xd[2] = {-1, 5}, wd[2] = {7, 5}, cd = 7;
    gb_input(g, "x", KILN_F32, 2, xd, "N");
    gb_const(g, "w", KILN_F32, 2, wd, -1, 1);
    gb_const(g, "c", KILN_F32, 1, &cd, -1, 1);
    bn_params(g, "bn", 7);
    kiln_node *n = gb_node(g, KILN_OP_Gemm, "gemm", "x,w,c", "t");
    kiln_node_set_int(n, "transB", 1);
    kiln_node_set_float(n, "alpha", 0.5f);
    kiln_node_set_float(n, "beta", 2.0f);
    bn(g, "bn", "t", "y");
    gb_output(g, "y");
    check_fold(g, true, "Gemm,BatchNormalization", "Gemm");
    ck_assert(kiln_attr_float(&g->nodes[0], "beta", 0) == 1.0f);
    kiln_graph_free(g);
}
END_TEST

START_TEST(gemm_mul_add_fold_with_row_bias) {
    /* Gemm with C [3,1] (varies along M) -> Mul [7] -> Add scalar: C becomes [3,7] */
    kiln_graph *g = kiln_graph_new();
    int64_t xd[2] = {3, 5}, wd[2] = {5, 7}, cd[2] = {3, 1}, md = 7;
    gb_input(g, "x", KILN_F32, 2, xd, NULL);
    gb_const(g, "w", KILN_F32, 2, wd, -1, 1);
    gb_const(g, "c", KILN_F32, 2, cd, -1, 1);
    gb_const(g, "m", KILN_F32, 1, &md, -2, 2);
    gb_const(g, "a", KILN_F32, 0, NULL, -2, 2);
    kiln_node *n = gb_node(g, KILN_OP_Gemm, "gemm", "x,w,c", "t");
    kiln_node_set_float(n, "beta", -1.5f);
    gb_node(g, KILN_OP_Mul, "mul", "t,m", "u");
    gb_node(g, KILN_OP_Add, "add", "a,u", "y");
    gb_output(g, "y");
    check_fold(g, true, "Gemm,Mul,Add", "Gemm");
    const kiln_value *c = &g->values[g->nodes[0].inputs[2]];
    ck_assert_int_eq(c->rank, 2);
    ck_assert_int_eq(c->dims[0], 3);
    ck_assert_int_eq(c->dims[1], 7);
    kiln_graph_free(g);
}
END_TEST

START_TEST(standalone_bn_becomes_mul_add) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 4, X4, "N");
    bn_params(g, "bn", 3);
    gb_node(g, KILN_OP_Relu, "relu", "x", "r");
    bn(g, "bn", "r", "y");
    gb_output(g, "y");
    check_fold(g, true, "Relu,BatchNormalization", "Relu,Mul,Add");
    /* per-channel constants shaped [C,1,1] */
    int mi = node_of(g, KILN_OP_Mul);
    const kiln_value *s = &g->values[g->nodes[mi].inputs[1]];
    ck_assert_int_eq(s->rank, 3);
    ck_assert_int_eq(s->dims[0], 3);
    kiln_graph_free(g);
}
END_TEST

START_TEST(shared_conv_output_does_not_fold) {
    /* the conv output also feeds a Relu: weights must stay; BN still becomes Mul+Add */
    kiln_graph *g = kiln_graph_new();
    int64_t wd[4] = {4, 3, 3, 3};
    gb_input(g, "x", KILN_F32, 4, X4, "N");
    gb_const(g, "w", KILN_F32, 4, wd, -1, 1);
    bn_params(g, "bn", 4);
    gb_node(g, KILN_OP_Conv, "conv", "x,w", "c");
    bn(g, "bn", "c", "y");
    gb_node(g, KILN_OP_Relu, "relu", "c", "z");
    gb_output(g, "y");
    gb_output(g, "z");
    check_fold(g, true, "Conv,BatchNormalization,Relu", "Conv,Relu,Mul,Add");
    int ci = node_of(g, KILN_OP_Conv);
    ck_assert_str_eq(g->values[g->nodes[ci].inputs[1]].name, "w");
    ck_assert_int_eq(g->nodes[ci].n_inputs, 2);
    kiln_graph_free(g);
}
END_TEST

START_TEST(conv_output_as_graph_output_does_not_fold) {
    kiln_graph *g = kiln_graph_new();
    int64_t wd[4] = {4, 3, 3, 3}, cd[3] = {4, 1, 1};
    gb_input(g, "x", KILN_F32, 4, X4, "N");
    gb_const(g, "w", KILN_F32, 4, wd, -1, 1);
    gb_const(g, "k", KILN_F32, 3, cd, -2, 2);
    gb_node(g, KILN_OP_Conv, "conv", "x,w", "c");
    gb_node(g, KILN_OP_Mul, "mul", "c,k", "y");
    gb_output(g, "c");
    gb_output(g, "y");
    check_fold(g, false, "Conv,Mul", "Conv,Mul");
    kiln_graph_free(g);
}
END_TEST

START_TEST(non_constant_bn_params_do_not_fold) {
    kiln_graph *g = kiln_graph_new();
    int64_t wd[4] = {4, 3, 3, 3}, c = 4;
    gb_input(g, "x", KILN_F32, 4, X4, "N");
    gb_input(g, "bn_s", KILN_F32, 1, &c, NULL); /* scale fed at run time */
    gb_const(g, "w", KILN_F32, 4, wd, -1, 1);
    gb_const(g, "bn_b", KILN_F32, 1, &c, -1, 1);
    gb_const(g, "bn_m", KILN_F32, 1, &c, -1, 1);
    gb_const(g, "bn_v", KILN_F32, 1, &c, 0.5, 1);
    gb_node(g, KILN_OP_Conv, "conv", "x,w", "c");
    bn(g, "bn", "c", "y");
    gb_output(g, "y");
    check_fold(g, false, "Conv,BatchNormalization", "Conv,BatchNormalization");
    kiln_graph_free(g);
}
END_TEST

START_TEST(bn_after_computed_weights_waits) {
    /* weights computed by a node may become constant in a later fixpoint iteration: the BN
     * waits (unchanged); with weights fed at run time it becomes Mul+Add */
    for (int k = 0; k < 2; k++) {
        kiln_graph *g = kiln_graph_new();
        int64_t wd[4] = {4, 3, 1, 1};
        gb_input(g, "x", KILN_F32, 4, X4, "N");
        gb_input(g, k == 0 ? "w0" : "w", KILN_F32, 4, wd, NULL);
        bn_params(g, "bn", 4);
        if (k == 0) gb_node(g, KILN_OP_Neg, "neg", "w0", "w");
        gb_node(g, KILN_OP_Conv, "conv", "x,w", "c");
        bn(g, "bn", "c", "y");
        gb_output(g, "y");
        if (k == 0)
            check_fold(g, false, "Neg,Conv,BatchNormalization", "Neg,Conv,BatchNormalization");
        else
            check_fold(g, true, "Conv,BatchNormalization", "Conv,Mul,Add");
        kiln_graph_free(g);
    }
}
END_TEST

START_TEST(non_channel_constants_and_weights_do_not_fold) {
    /* Mul by a [1,1,8,8] constant varies spatially; Add after a conv with runtime weights */
    kiln_graph *g = kiln_graph_new();
    int64_t wd[4] = {3, 3, 1, 1}, sd[4] = {1, 1, 8, 8}, cd[3] = {3, 1, 1};
    gb_input(g, "x", KILN_F32, 4, X4, "N");
    gb_input(g, "wr", KILN_F32, 4, wd, NULL);
    gb_const(g, "w", KILN_F32, 4, wd, -1, 1);
    gb_const(g, "sp", KILN_F32, 4, sd, -1, 1);
    gb_const(g, "k", KILN_F32, 3, cd, -1, 1);
    gb_node(g, KILN_OP_Conv, "conv", "x,w", "c");
    gb_node(g, KILN_OP_Mul, "mul", "c,sp", "t");
    gb_node(g, KILN_OP_Conv, "conv2", "t,wr", "c2");
    gb_node(g, KILN_OP_Add, "add", "c2,k", "y");
    /* k / conv is not affine in the conv output */
    gb_node(g, KILN_OP_Conv, "conv3", "x,w", "c3");
    gb_node(g, KILN_OP_Div, "div", "k,c3", "z");
    gb_output(g, "y");
    gb_output(g, "z");
    check_fold(g, false, "Conv,Mul,Conv,Add,Conv,Div", "Conv,Mul,Conv,Add,Conv,Div");
    kiln_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pass_fold_batchnorm");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, conv_bn_folds);
    tcase_add_test(tc, conv_without_bias_folds_a_chain);
    tcase_add_test(tc, conv_transpose_grouped_bn_folds);
    tcase_add_test(tc, gemm_trans_b_bn_folds);
    tcase_add_test(tc, gemm_mul_add_fold_with_row_bias);
    tcase_add_test(tc, standalone_bn_becomes_mul_add);
    tcase_add_test(tc, shared_conv_output_does_not_fold);
    tcase_add_test(tc, conv_output_as_graph_output_does_not_fold);
    tcase_add_test(tc, non_constant_bn_params_do_not_fold);
    tcase_add_test(tc, bn_after_computed_weights_waits);
    tcase_add_test(tc, non_channel_constants_and_weights_do_not_fold);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
