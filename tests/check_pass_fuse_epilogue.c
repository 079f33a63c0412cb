/* check_pass_fuse_epilogue.c — fuse-epilogue: Conv / ConvTranspose / Gemm / MatMul with
 * bias, activation, residual Add and a second activation as one fused node (structure,
 * recorded attributes, numeric equality with the unfused graph), and the cases where the
 * pass must not fire or must stop early. */
#include "graph_builder.h"

static const int64_t X4[4] = {-1, 3, 6, 6}; /* N x 3 x 6 x 6 */

/* Runs fuse-epilogue on g and checks: changed as expected, ops after, same outputs. */
static void check_fuse(kiln_graph *g, bool want_changed, const char *before, const char *after) {
    gb_finish(g);
    ck_assert_str_eq(gb_ops(g), before);
    kiln_graph *ref = kiln_graph_clone(g);
    ck_assert_ptr_nonnull(ref);
    bool changed = gb_run_pass(g, "fuse-epilogue", KILN_PREC_FP32);
    ck_assert_msg(changed == want_changed, "changed=%d, ops now %s", changed, gb_ops(g));
    ck_assert_str_eq(gb_ops(g), after);
    gb_assert_same(ref, g, 2, 1e-5);
    for (int o = 0; o < g->n_outputs; o++)
        ck_assert_str_eq(g->values[g->outputs[o]].name, ref->values[ref->outputs[o]].name);
    kiln_graph_free(ref);
}

static const kiln_node *fused(const kiln_graph *g, int k) { /* the k-th fused node */
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == KILN_OP_Fused && k-- == 0) return &g->nodes[i];
    ck_abort_msg("no fused node %d", k);
    return NULL;
}

/* x -> Conv(w [4,3,3,3], b) pads 1 -> "c" */
static kiln_graph *conv_graph(bool bias) {
    kiln_graph *g = kiln_graph_new();
    int64_t wd[4] = {4, 3, 3, 3}, bd = 4;
    gb_input(g, "x", KILN_F32, 4, X4, "N");
    gb_const(g, "w", KILN_F32, 4, wd, -1, 1);
    if (bias) gb_const(g, "b", KILN_F32, 1, &bd, -1, 1);
    kiln_node *c = gb_node(g, KILN_OP_Conv, "conv", bias ? "x,w,b" : "x,w", "c");
    int64_t pads[4] = {1, 1, 1, 1};
    kiln_node_set_ints(c, "pads", pads, 4);
    return g;
}

START_TEST(conv_bias_relu) {
    kiln_graph *g = conv_graph(true);
    gb_node(g, KILN_OP_Relu, "relu", "c", "y");
    gb_output(g, "y");
    check_fuse(g, true, "Conv,Relu", "Fused:conv_epilogue[Conv+Relu]");
    const kiln_node *f = fused(g, 0);
    ck_assert_str_eq(kiln_attr_str(f, "anchor", ""), "Conv");
    ck_assert_str_eq(kiln_attr_str(f, "activation", ""), "relu");
    ck_assert_int_eq(kiln_attr_int(f, "has_bias", -1), 1);
    ck_assert_str_eq(g->values[f->inputs[kiln_attr_int(f, "bias_input", -1)]].name, "b");
    ck_assert_int_eq(kiln_attr_int(f, "has_residual", -1), 0);
    ck_assert_int_eq(kiln_attr_int(f, "residual_input", 0), -1);
    ck_assert_str_eq(kiln_attr_str(f, "post_activation", ""), "none");
    ck_assert_int_eq(kiln_graph_kernel_count(g), 1);
    kiln_graph_free(g);
}
END_TEST

START_TEST(conv_bias_add_relu6) {
    /* Conv without bias + Add of a [4,1,1] bias + Clip(0, 6) */
    kiln_graph *g = conv_graph(false);
    int64_t bd[3] = {4, 1, 1};
    gb_const(g, "bb", KILN_F32, 3, bd, -1, 1);
    gb_const(g, "lo", KILN_F32, 0, NULL, 0, 0);
    gb_const(g, "hi", KILN_F32, 0, NULL, 6, 6);
    gb_node(g, KILN_OP_Add, "bias", "bb,c", "t");
    gb_node(g, KILN_OP_Clip, "relu6", "t,lo,hi", "y");
    gb_output(g, "y");
    check_fuse(g, true, "Conv,Add,Clip", "Fused:conv_epilogue[Conv+Add+Clip]");
    const kiln_node *f = fused(g, 0);
    ck_assert_int_eq(kiln_attr_int(f, "has_bias", -1), 1);
    ck_assert_str_eq(g->values[f->inputs[kiln_attr_int(f, "bias_input", -1)]].name, "bb");
    ck_assert_str_eq(kiln_attr_str(f, "activation", ""), "clip");
    ck_assert(kiln_attr_float(f, "activation_alpha", -1) == 0.0f);
    ck_assert(kiln_attr_float(f, "activation_beta", -1) == 6.0f);
    ck_assert_int_eq(kiln_attr_int(f, "has_residual", -1), 0);
    kiln_graph_free(g);
}
END_TEST

START_TEST(conv_silu) {
    kiln_graph *g = conv_graph(true);
    gb_node(g, KILN_OP_Sigmoid, "sig", "c", "s");
    gb_node(g, KILN_OP_Mul, "mul", "s,c", "y");
    gb_output(g, "y");
    check_fuse(g, true, "Conv,Sigmoid,Mul", "Fused:conv_epilogue[Conv+Sigmoid+Mul]");
    ck_assert_str_eq(kiln_attr_str(fused(g, 0), "activation", ""), "silu");
    kiln_graph_free(g);
    /* x * HardSigmoid(x) with alpha 1/6 is HardSwish; with the default alpha it is not */
    for (int k = 0; k < 2; k++) {
        g = conv_graph(true);
        kiln_node *h = gb_node(g, KILN_OP_HardSigmoid, "hsig", "c", "s");
        if (k == 0) kiln_node_set_float(h, "alpha", 1.0f / 6);
        gb_node(g, KILN_OP_Mul, "mul", "c,s", "y");
        gb_output(g, "y");
        if (k == 0) {
            check_fuse(g, true, "Conv,HardSigmoid,Mul", "Fused:conv_epilogue[Conv+HardSigmoid+Mul]");
            ck_assert_str_eq(kiln_attr_str(fused(g, 0), "activation", ""), "hard_swish");
        } else {
            check_fuse(g, false, "Conv,HardSigmoid,Mul", "Conv,HardSigmoid,Mul");
        }
        kiln_graph_free(g);
    }
}
END_TEST

START_TEST(every_activation_fuses) {
    static const struct {
        kiln_op op;
        const char *name;
    } acts[] = {{KILN_OP_Relu, "relu"},           {KILN_OP_Sigmoid, "sigmoid"},
                {KILN_OP_Tanh, "tanh"},           {KILN_OP_LeakyRelu, "leaky_relu"},
                {KILN_OP_HardSigmoid, "hard_sigmoid"}, {KILN_OP_HardSwish, "hard_swish"},
                {KILN_OP_Gelu, "gelu"},           {KILN_OP_Elu, "elu"}};
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
        kiln_graph *g = conv_graph(true);
        kiln_node *n = gb_node(g, acts[k].op, "act", "c", "y");
        if (acts[k].op == KILN_OP_LeakyRelu) kiln_node_set_float(n, "alpha", 0.3f);
        gb_output(g, "y");
        char before[64], after[96];
        snprintf(before, sizeof before, "Conv,%s", kiln_op_table[acts[k].op].onnx_type);
        snprintf(after, sizeof after, "Fused:conv_epilogue[Conv+%s]", kiln_op_table[acts[k].op].onnx_type);
        check_fuse(g, true, before, after);
        ck_assert_str_eq(kiln_attr_str(fused(g, 0), "activation", ""), acts[k].name);
        if (acts[k].op == KILN_OP_LeakyRelu) ck_assert(kiln_attr_float(fused(g, 0), "activation_alpha", 0) == 0.3f);
        kiln_graph_free(g);
    }
}
END_TEST

START_TEST(residual_block) {
    /* x -> conv1+relu -> conv2 -> Add(., x) -> relu : two groups, the second with the residual */
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {-1, 4, 5, 5}, wd[4] = {4, 4, 3, 3}, bd = 4;
    int64_t pads[4] = {1, 1, 1, 1};
    gb_input(g, "x", KILN_F32, 4, xd, "N");
    gb_const(g, "w1", KILN_F32, 4, wd, -1, 1);
    gb_const(g, "b1", KILN_F32, 1, &bd, -1, 1);
    gb_const(g, "w2", KILN_F32, 4, wd, -1, 1);
    gb_const(g, "b2", KILN_F32, 1, &bd, -1, 1);
    kiln_node_set_ints(gb_node(g, KILN_OP_Conv, "conv1", "x,w1,b1", "c1"), "pads", pads, 4);
    gb_node(g, KILN_OP_Relu, "relu1", "c1", "r1");
    kiln_node_set_ints(gb_node(g, KILN_OP_Conv, "conv2", "r1,w2,b2", "c2"), "pads", pads, 4);
    gb_node(g, KILN_OP_Add, "add", "x,c2", "s");
    gb_node(g, KILN_OP_Relu, "relu2", "s", "y");
    gb_output(g, "y");
    check_fuse(g, true, "Conv,Relu,Conv,Add,Relu", "Fused:conv_epilogue[Conv+Relu],Fused:conv_epilogue[Conv+Add+Relu]");
    const kiln_node *f = fused(g, 1);
    ck_assert_str_eq(kiln_attr_str(f, "activation", ""), "none");
    ck_assert_int_eq(kiln_attr_int(f, "has_residual", -1), 1);
    ck_assert_str_eq(g->values[f->inputs[kiln_attr_int(f, "residual_input", -1)]].name, "x");
    ck_assert_str_eq(kiln_attr_str(f, "post_activation", ""), "relu");
    ck_assert_int_eq(kiln_graph_kernel_count(g), 2);
    kiln_graph_free(g);
}
END_TEST

START_TEST(projection_block_later_conv_takes_the_add) {
    /* main: conv_a -> relu -> conv_b ; shortcut: conv_s (after conv_b in order);
     * Sum(conv_b, conv_s) -> relu. conv_s, the later anchor, takes the Sum. */
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {1, 3, 5, 5}, wd[4] = {4, 3, 1, 1}, wb[4] = {4, 4, 1, 1}, bd = 4;
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    gb_const(g, "wa", KILN_F32, 4, wd, -1, 1);
    gb_const(g, "wb", KILN_F32, 4, wb, -1, 1);
    gb_const(g, "ws", KILN_F32, 4, wd, -1, 1);
    gb_const(g, "b", KILN_F32, 1, &bd, -1, 1);
    gb_node(g, KILN_OP_Conv, "conv_a", "x,wa,b", "a");
    gb_node(g, KILN_OP_Relu, "relu_a", "a", "ra");
    gb_node(g, KILN_OP_Conv, "conv_b", "ra,wb,b", "cb");
    gb_node(g, KILN_OP_Conv, "conv_s", "x,ws,b", "cs");
    gb_node(g, KILN_OP_Sum, "sum", "cb,cs", "s");
    gb_node(g, KILN_OP_Relu, "relu", "s", "y");
    gb_output(g, "y");
    check_fuse(g, true, "Conv,Relu,Conv,Conv,Sum,Relu",
               "Fused:conv_epilogue[Conv+Relu],Conv,Fused:conv_epilogue[Conv+Sum+Relu]");
    const kiln_node *f = fused(g, 1);
    ck_assert_str_eq(f->body->nodes[0].name, "conv_s");
    ck_assert_str_eq(g->values[f->inputs[kiln_attr_int(f, "residual_input", -1)]].name, "cb");
    kiln_graph_free(g);
}
END_TEST

START_TEST(matmul_bias_gelu) {
    /* x[N,5,6] @ w[6,8] + b[8] -> Gelu(tanh) */
    kiln_graph *g = kiln_graph_new();
    int64_t xd[3] = {-1, 5, 6}, wd[2] = {6, 8}, bd = 8;
    gb_input(g, "x", KILN_F32, 3, xd, "N");
    gb_const(g, "w", KILN_F32, 2, wd, -1, 1);
    gb_const(g, "b", KILN_F32, 1, &bd, -1, 1);
    gb_node(g, KILN_OP_MatMul, "mm", "x,w", "m");
    gb_node(g, KILN_OP_Add, "bias", "m,b", "t");
    kiln_node_set_str(gb_node(g, KILN_OP_Gelu, "gelu", "t", "y"), "approximate", "tanh");
    gb_output(g, "y");
    check_fuse(g, true, "MatMul,Add,Gelu", "Fused:gemm_epilogue[MatMul+Add+Gelu]");
    const kiln_node *f = fused(g, 0);
    ck_assert_str_eq(kiln_attr_str(f, "anchor", ""), "MatMul");
    ck_assert_str_eq(kiln_attr_str(f, "activation", ""), "gelu_tanh");
    ck_assert_str_eq(g->values[f->inputs[kiln_attr_int(f, "bias_input", -1)]].name, "b");
    kiln_graph_free(g);
}
END_TEST

START_TEST(gemm_and_conv_transpose) {
    /* Gemm(transB) -> HardSwish -> Add(r) ; ConvTranspose -> Relu */
    kiln_graph *g = kiln_graph_new();
    int64_t xd[2] = {3, 5}, wd[2] = {7, 5}, cd = 7, rd[2] = {3, 7};
    int64_t td[4] = {1, 2, 3, 3}, twd[4] = {2, 3, 2, 2};
    gb_input(g, "x", KILN_F32, 2, xd, NULL);
    gb_input(g, "r", KILN_F32, 2, rd, NULL);
    gb_input(g, "xt", KILN_F32, 4, td, NULL);
    gb_const(g, "w", KILN_F32, 2, wd, -1, 1);
    gb_const(g, "c", KILN_F32, 1, &cd, -1, 1);
    gb_const(g, "wt", KILN_F32, 4, twd, -1, 1);
    kiln_node_set_int(gb_node(g, KILN_OP_Gemm, "gemm", "x,w,c", "m"), "transB", 1);
    gb_node(g, KILN_OP_HardSwish, "hs", "m", "h");
    gb_node(g, KILN_OP_Add, "res", "r,h", "y");
    gb_node(g, KILN_OP_ConvTranspose, "convt", "xt,wt", "ct");
    gb_node(g, KILN_OP_Relu, "relu", "ct", "z");
    gb_output(g, "y");
    gb_output(g, "z");
    check_fuse(g, true, "Gemm,HardSwish,Add,ConvTranspose,Relu",
               "Fused:gemm_epilogue[Gemm+HardSwish+Add],Fused:conv_epilogue[ConvTranspose+Relu]");
    const kiln_node *f = fused(g, 0);
    ck_assert_int_eq(kiln_attr_int(f, "has_bias", -1), 1);
    ck_assert_str_eq(kiln_attr_str(f, "activation", ""), "hard_swish");
    ck_assert_str_eq(g->values[f->inputs[kiln_attr_int(f, "residual_input", -1)]].name, "r");
    ck_assert_int_eq(kiln_attr_int(fused(g, 1), "has_bias", -1), 0);
    kiln_graph_free(g);
}
END_TEST

START_TEST(conv_output_used_twice_does_not_fuse) {
    kiln_graph *g = conv_graph(true);
    gb_node(g, KILN_OP_Relu, "relu", "c", "y");
    gb_node(g, KILN_OP_Sigmoid, "sig", "c", "z");
    gb_output(g, "y");
    gb_output(g, "z");
    check_fuse(g, false, "Conv,Relu,Sigmoid", "Conv,Relu,Sigmoid");
    kiln_graph_free(g);
    /* a conv output that is also a graph output */
    g = conv_graph(true);
    gb_node(g, KILN_OP_Relu, "relu", "c", "y");
    gb_output(g, "c");
    gb_output(g, "y");
    check_fuse(g, false, "Conv,Relu", "Conv,Relu");
    kiln_graph_free(g);
}
END_TEST

START_TEST(residual_depending_on_the_conv_is_not_taken) {
    /* Add(c, Neg(c)): the other operand depends on the conv */
    kiln_graph *g = conv_graph(true);
    gb_node(g, KILN_OP_Neg, "neg", "c", "n");
    gb_node(g, KILN_OP_Add, "add", "c,n", "y");
    gb_output(g, "y");
    check_fuse(g, false, "Conv,Neg,Add", "Conv,Neg,Add");
    kiln_graph_free(g);
    /* after an activation: Conv+Relu fuse, the Add of Relu and Tanh(Relu) stays out */
    g = conv_graph(true);
    gb_node(g, KILN_OP_Relu, "relu", "c", "r");
    gb_node(g, KILN_OP_Tanh, "tanh", "r", "t");
    gb_node(g, KILN_OP_Add, "add", "t,r", "y");
    gb_output(g, "y");
    check_fuse(g, true, "Conv,Relu,Tanh,Add", "Fused:conv_epilogue[Conv+Relu],Tanh,Add");
    kiln_graph_free(g);
}
END_TEST

START_TEST(non_constant_clip_bounds_do_not_fuse) {
    kiln_graph *g = conv_graph(true);
    gb_input(g, "hi", KILN_F32, 0, NULL, NULL);
    gb_const(g, "lo", KILN_F32, 0, NULL, 0, 0);
    gb_node(g, KILN_OP_Clip, "clip", "c,lo,hi", "y");
    gb_output(g, "y");
    check_fuse(g, false, "Conv,Clip", "Conv,Clip");
    kiln_graph_free(g);
}
END_TEST

START_TEST(broadcast_residual_and_lone_anchor_do_not_fuse) {
    /* Add of a runtime [1,4,1,1] tensor broadcasts: not a residual, not a constant bias */
    kiln_graph *g = conv_graph(true);
    int64_t sd[4] = {1, 4, 1, 1};
    gb_input(g, "s", KILN_F32, 4, sd, NULL);
    gb_node(g, KILN_OP_Add, "add", "c,s", "y");
    gb_output(g, "y");
    check_fuse(g, false, "Conv,Add", "Conv,Add");
    kiln_graph_free(g);
    /* a conv with nothing after it */
    g = conv_graph(false);
    gb_output(g, "c");
    check_fuse(g, false, "Conv", "Conv");
    kiln_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pass_fuse_epilogue");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, conv_bias_relu);
    tcase_add_test(tc, conv_bias_add_relu6);
    tcase_add_test(tc, conv_silu);
    tcase_add_test(tc, every_activation_fuses);
    tcase_add_test(tc, residual_block);
    tcase_add_test(tc, projection_block_later_conv_takes_the_add);
    tcase_add_test(tc, matmul_bias_gelu);
    tcase_add_test(tc, gemm_and_conv_transpose);
    tcase_add_test(tc, conv_output_used_twice_does_not_fuse);
    tcase_add_test(tc, residual_depending_on_the_conv_is_not_taken);
    tcase_add_test(tc, non_constant_clip_bounds_do_not_fuse);
    tcase_add_test(tc, broadcast_residual_and_lone_anchor_do_not_fuse);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
