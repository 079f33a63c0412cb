/* check_pass_fuse_elementwise.c — the recognize-patterns and fuse-elementwise passes:
 * expected structure after each pass, numeric equality with the graph before it, and the
 * cases where a pass must leave the graph as it is. */
#include "graph_builder.h"

static const int64_t D23[] = {2, 3}, D234[] = {2, 3, 4}, D4[] = {4}, D1[] = {1};
static const int64_t CONV_X[] = {1, 2, 5, 5}, CONV_W[] = {2, 2, 1, 1};

/* Scalar float constant (rank 0). */
static int scalar(kiln_graph *g, const char *name, double v) { return gb_const(g, name, KILN_F32, 0, D1, v, v); }

/* Runs `pass` on g and checks: changed as expected, the op string, same outputs as before. */
static void check_pass(kiln_graph *g, const char *pass, bool want_changed, const char *want_ops) {
    gb_finish(g);
    kiln_graph *ref = kiln_graph_clone(g);
    ck_assert_ptr_nonnull(ref);
    const char *before = gb_ops(g);
    char saved[4096];
    snprintf(saved, sizeof saved, "%s", before);
    bool changed = gb_run_pass(g, pass, KILN_PREC_FP32);
    ck_assert_msg(changed == want_changed, "%s: changed=%d, ops %s", pass, changed, gb_ops(g));
    ck_assert_str_eq(gb_ops(g), want_ops);
    if (!want_changed) ck_assert_str_eq(gb_ops(g), saved);
    gb_assert_same(ref, g, 3, 1e-5);
    kiln_graph_free(ref);
}

static kiln_graph *with_input(const int64_t *dims, int rank) {
    kiln_graph *g = kiln_graph_new();
    ck_assert_ptr_nonnull(g);
    gb_input(g, "x", KILN_F32, rank, dims, NULL);
    return g;
}

/* --------------------------------------------------------- grouping -- */
START_TEST(chain_becomes_one_group) {
    kiln_graph *g = with_input(D23, 2);
    gb_node(g, KILN_OP_Relu, "r", "x", "a");
    gb_node(g, KILN_OP_Neg, "n", "a", "b");
    gb_node(g, KILN_OP_Sigmoid, "s", "b", "y");
    gb_output(g, "y");
    check_pass(g, "fuse-elementwise", true, "Fused:elementwise[Relu+Neg+Sigmoid]");
    ck_assert_int_eq(kiln_graph_kernel_count(g), 1);
    ck_assert_str_eq(kiln_graph_output_name(g, 0), "y");
    kiln_graph_free(g);
}
END_TEST

START_TEST(diamond_with_broadcast_constant) {
    kiln_graph *g = with_input(D23, 2);
    gb_const(g, "c", KILN_F32, 1, (int64_t[]){3}, -1, 1);
    gb_node(g, KILN_OP_Relu, "r", "x", "a");
    gb_node(g, KILN_OP_Mul, "m", "a,c", "b");
    gb_node(g, KILN_OP_Exp, "e", "a", "d");
    gb_node(g, KILN_OP_Add, "s", "b,d", "y");
    gb_output(g, "y");
    check_pass(g, "fuse-elementwise", true, "Fused:elementwise[Relu+Mul+Exp+Add]");
    ck_assert_int_eq(g->nodes[0].n_inputs, 2); /* x and c */
    kiln_graph_free(g);
}
END_TEST

START_TEST(multi_output_group) {
    /* a feeds the group and a MatMul outside it; y1 and y2 are both graph outputs */
    kiln_graph *g = with_input(D23, 2);
    gb_const(g, "w", KILN_F32, 2, (int64_t[]){3, 4}, -1, 1);
    gb_node(g, KILN_OP_Relu, "r", "x", "a");
    gb_node(g, KILN_OP_Neg, "n", "a", "y1");
    gb_node(g, KILN_OP_Sigmoid, "s", "a", "y2");
    gb_node(g, KILN_OP_MatMul, "mm", "a,w", "y3");
    gb_output(g, "y1");
    gb_output(g, "y2");
    gb_output(g, "y3");
    check_pass(g, "fuse-elementwise", true, "Fused:elementwise[Relu+Neg+Sigmoid],MatMul");
    ck_assert_int_eq(g->nodes[0].n_outputs, 3); /* a (for the MatMul), y1, y2 */
    ck_assert_str_eq(kiln_graph_output_name(g, 0), "y1");
    ck_assert_str_eq(kiln_graph_output_name(g, 1), "y2");
    kiln_graph_free(g);
}
END_TEST

static kiln_graph *conv_graph(void) {
    kiln_graph *g = with_input(CONV_X, 4);
    gb_const(g, "w", KILN_F32, 4, CONV_W, -1, 1);
    return g;
}

START_TEST(path_through_conv_is_not_fused) {
    /* Relu -> Conv -> Add and Relu -> Add: fusing Relu with Add would be a cycle */
    kiln_graph *g = conv_graph();
    gb_node(g, KILN_OP_Relu, "r", "x", "a");
    gb_node(g, KILN_OP_Conv, "c", "a,w", "c");
    gb_node(g, KILN_OP_Add, "s", "a,c", "y");
    gb_output(g, "y");
    check_pass(g, "fuse-elementwise", false, "Relu,Conv,Add");
    kiln_graph_free(g);
}
END_TEST

START_TEST(non_convex_union_splits) {
    /* Add may join Sigmoid's group but not Relu's (Relu -> Conv -> Sigmoid -> Add) */
    kiln_graph *g = conv_graph();
    gb_node(g, KILN_OP_Relu, "r", "x", "a");
    gb_node(g, KILN_OP_Neg, "n", "a", "a2");
    gb_node(g, KILN_OP_Conv, "c", "a2,w", "c");
    gb_node(g, KILN_OP_Sigmoid, "s", "c", "b");
    gb_node(g, KILN_OP_Add, "add", "a2,b", "y");
    gb_output(g, "y");
    check_pass(g, "fuse-elementwise", true, "Fused:elementwise[Relu+Neg],Conv,Fused:elementwise[Sigmoid+Add]");
    kiln_graph_free(g);
}
END_TEST

START_TEST(single_nodes_are_left_alone) {
    kiln_graph *g = with_input(D23, 2);
    gb_const(g, "w", KILN_F32, 2, (int64_t[]){3, 3}, -1, 1);
    gb_node(g, KILN_OP_Relu, "r", "x", "a");
    gb_node(g, KILN_OP_MatMul, "mm", "a,w", "b");
    gb_node(g, KILN_OP_Tanh, "t", "b", "y");
    gb_output(g, "y");
    check_pass(g, "fuse-elementwise", false, "Relu,MatMul,Tanh");
    kiln_graph_free(g);
}
END_TEST

START_TEST(conv_epilogue_group_is_not_absorbed) {
    kiln_graph *g = conv_graph();
    gb_node(g, KILN_OP_Conv, "c", "x,w", "c");
    gb_node(g, KILN_OP_Relu, "r", "c", "a");
    gb_node(g, KILN_OP_Sigmoid, "s", "a", "b");
    gb_node(g, KILN_OP_Neg, "n", "b", "y");
    gb_output(g, "y");
    gb_finish(g);
    int set[2] = {0, 1}, fused;
    ck_assert_int_eq(kiln_graph_fuse(g, set, 2, "conv_epilogue", &fused), KILN_OK);
    check_pass(g, "fuse-elementwise", true, "Fused:conv_epilogue[Conv+Relu],Fused:elementwise[Sigmoid+Neg]");
    /* running it again changes nothing */
    ck_assert(!gb_run_pass(g, "fuse-elementwise", KILN_PREC_FP32));
    kiln_graph_free(g);
}
END_TEST

START_TEST(expand_shape_stays_outside) {
    /* the Expand's shape is computed by an elementwise op: it must not be inside the body */
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 1, D4, NULL);
    gb_input(g, "s", KILN_I64, 1, (int64_t[]){2}, NULL);
    gb_node(g, KILN_OP_Abs, "abs", "s", "s1");
    gb_node(g, KILN_OP_Neg, "neg", "s1", "s2");
    gb_node(g, KILN_OP_Relu, "r", "x", "a");
    gb_node(g, KILN_OP_Expand, "ex", "a,s2", "y");
    gb_output(g, "y");
    gb_finish(g);
    ck_assert(gb_run_pass(g, "fuse-elementwise", KILN_PREC_FP32));
    ck_assert_str_eq(gb_ops(g), "Fused:elementwise[Abs+Neg],Fused:elementwise[Relu+Expand]");
    kiln_graph_free(g);
}
END_TEST

/* ------------------------------------------------------- reductions -- */
static int axes(kiln_graph *g, const char *name, int64_t a) { return gb_const_i64(g, name, 1, &a); }

START_TEST(reduction_with_prologue_and_epilogue) {
    kiln_graph *g = with_input(D234, 3);
    axes(g, "ax", -1);
    scalar(g, "eps", 1e-3);
    gb_node(g, KILN_OP_Mul, "sq", "x,x", "x2");
    gb_node(g, KILN_OP_ReduceSum, "rs", "x2,ax", "s");
    gb_node(g, KILN_OP_Add, "add", "s,eps", "se");
    gb_node(g, KILN_OP_Sqrt, "sqrt", "se", "n");
    gb_node(g, KILN_OP_Div, "div", "x,n", "y"); /* broadcasts back up: not an epilogue */
    gb_output(g, "y");
    check_pass(g, "fuse-elementwise", true, "Fused:reduction[Mul+ReduceSum+Add+Sqrt],Div");
    kiln_graph_free(g);
}
END_TEST

START_TEST(reduction_prologue_used_twice_stays_out) {
    /* x2 is also a graph output: the reduction does not own it */
    kiln_graph *g = with_input(D234, 3);
    axes(g, "ax", 1);
    gb_node(g, KILN_OP_Mul, "sq", "x,x", "x2");
    gb_node(g, KILN_OP_ReduceMax, "rm", "x2,ax", "y");
    gb_output(g, "x2");
    gb_output(g, "y");
    check_pass(g, "fuse-elementwise", false, "Mul,ReduceMax");
    kiln_graph_free(g);
}
END_TEST

START_TEST(reduction_with_symbolic_batch) {
    /* log-sum-exp over the last axis of x[N,4]: one reduction kernel */
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 2, (int64_t[]){-1, 4}, "N");
    axes(g, "ax", 1);
    gb_node(g, KILN_OP_Exp, "exp", "x", "e");
    gb_node(g, KILN_OP_ReduceSum, "rs", "e,ax", "s");
    gb_node(g, KILN_OP_Log, "log", "s", "y");
    gb_output(g, "y");
    check_pass(g, "fuse-elementwise", true, "Fused:reduction[Exp+ReduceSum+Log]");
    char buf[64];
    kiln_value_format_type(g, &g->values[g->outputs[0]], buf, sizeof buf);
    ck_assert_str_eq(buf, "f32[N,1]");
    kiln_graph_free(g);
}
END_TEST

/* ----------------------------------------------------------- Softmax -- */
static kiln_graph *softmax_graph(int64_t max_axis, int64_t sum_axis) {
    kiln_graph *g = with_input(D234, 3);
    axes(g, "amax", max_axis);
    axes(g, "asum", sum_axis);
    gb_node(g, KILN_OP_ReduceMax, "rm", "x,amax", "m");
    gb_node(g, KILN_OP_Sub, "sub", "x,m", "t");
    gb_node(g, KILN_OP_Exp, "exp", "t", "e");
    gb_node(g, KILN_OP_ReduceSum, "rs", "e,asum", "s");
    gb_node(g, KILN_OP_Div, "div", "e,s", "y");
    gb_output(g, "y");
    return g;
}

START_TEST(softmax_recognized) {
    kiln_graph *g = softmax_graph(1, -2);
    check_pass(g, "recognize-patterns", true, "Softmax");
    ck_assert_int_eq(kiln_attr_int(&g->nodes[0], "axis", -9), 1);
    ck_assert_str_eq(kiln_graph_output_name(g, 0), "y");
    kiln_graph_free(g);
}
END_TEST

START_TEST(softmax_wrong_axes_not_recognized) {
    kiln_graph *g = softmax_graph(1, 2);
    check_pass(g, "recognize-patterns", false, "ReduceMax,Sub,Exp,ReduceSum,Div");
    kiln_graph_free(g);
}
END_TEST

START_TEST(softmax_inner_value_used_elsewhere) {
    kiln_graph *g = softmax_graph(2, 2);
    gb_output(g, "e"); /* the exponentials are needed outside */
    check_pass(g, "recognize-patterns", false, "ReduceMax,Sub,Exp,ReduceSum,Div");
    kiln_graph_free(g);
}
END_TEST

START_TEST(softmax_then_epilogue_is_one_reduction_group) {
    /* softmax over the last axis, then the probabilities are scaled */
    kiln_graph *g = with_input(D234, 3);
    axes(g, "a", 2);
    scalar(g, "k", 3.0);
    gb_node(g, KILN_OP_ReduceMax, "rm", "x,a", "m");
    gb_node(g, KILN_OP_Sub, "sub", "x,m", "t");
    gb_node(g, KILN_OP_Exp, "exp", "t", "e");
    gb_node(g, KILN_OP_ReduceSum, "rs", "e,a", "s");
    gb_node(g, KILN_OP_Div, "div", "e,s", "p");
    gb_node(g, KILN_OP_Mul, "scale", "p,k", "y");
    gb_output(g, "y");
    check_pass(g, "recognize-patterns,fuse-elementwise", true, "Fused:reduction[Softmax+Mul]");
    kiln_graph_free(g);
}
END_TEST

/* --------------------------------------------------------- LayerNorm -- */
typedef struct ln_opts {
    int64_t ax1, ax2;     /* axes of the two ReduceMeans */
    double pow_exp;       /* 0: Mul(d, d) */
    bool gamma, beta;
    bool gamma_on_batch;  /* gamma varies along dim 0: not a LayerNorm scale */
} ln_opts;

static kiln_graph *layernorm_graph(ln_opts o) {
    kiln_graph *g = with_input(D234, 3);
    axes(g, "a1", o.ax1);
    axes(g, "a2", o.ax2);
    scalar(g, "eps", 1e-5);
    gb_node(g, KILN_OP_ReduceMean, "mean", "x,a1", "mu");
    gb_node(g, KILN_OP_Sub, "sub", "x,mu", "d");
    if (o.pow_exp) {
        scalar(g, "two", o.pow_exp);
        gb_node(g, KILN_OP_Pow, "pow", "d,two", "d2");
    } else {
        gb_node(g, KILN_OP_Mul, "sq", "d,d", "d2");
    }
    gb_node(g, KILN_OP_ReduceMean, "var", "d2,a2", "v");
    gb_node(g, KILN_OP_Add, "addeps", "eps,v", "ve");
    gb_node(g, KILN_OP_Sqrt, "sqrt", "ve", "sd");
    gb_node(g, KILN_OP_Div, "div", "d,sd", o.gamma || o.beta ? "n" : "y");
    if (o.gamma) {
        if (o.gamma_on_batch) gb_const(g, "gamma", KILN_F32, 3, (int64_t[]){2, 1, 4}, 0.5, 1.5);
        else gb_const(g, "gamma", KILN_F32, 2, (int64_t[]){1, 4}, 0.5, 1.5);
        gb_node(g, KILN_OP_Mul, "scale", "gamma,n", o.beta ? "ns" : "y");
    }
    if (o.beta) {
        gb_const(g, "beta", KILN_F32, 1, D4, -1, 1);
        gb_node(g, KILN_OP_Add, "bias", o.gamma ? "ns,beta" : "n,beta", "y");
    }
    gb_output(g, "y");
    return g;
}

START_TEST(layernorm_recognized_with_affine) {
    kiln_graph *g = layernorm_graph((ln_opts){.ax1 = -1, .ax2 = 2, .pow_exp = 2, .gamma = true, .beta = true});
    check_pass(g, "recognize-patterns", true, "LayerNormalization");
    const kiln_node *n = &g->nodes[0];
    ck_assert_int_eq(kiln_attr_int(n, "axis", 0), 2);
    ck_assert_float_eq_tol(kiln_attr_float(n, "epsilon", 0), 1e-5f, 1e-9f);
    ck_assert_int_eq(n->n_inputs, 3);
    ck_assert_int_eq(g->values[n->inputs[1]].rank, 1); /* gamma [1,4] -> [4] */
    kiln_graph_free(g);
}
END_TEST

START_TEST(layernorm_recognized_plain_mul_square) {
    kiln_graph *g = layernorm_graph((ln_opts){.ax1 = -1, .ax2 = -1, .pow_exp = 0});
    check_pass(g, "recognize-patterns", true, "LayerNormalization");
    ck_assert_ptr_nonnull(g->values[g->nodes[0].inputs[1]].data); /* ones */
    kiln_graph_free(g);
}
END_TEST

START_TEST(layernorm_wrong_axes_not_recognized) {
    /* axis 1 of 3 is not the trailing axes; the two means disagree in the second case */
    kiln_graph *g = layernorm_graph((ln_opts){.ax1 = 1, .ax2 = 1, .pow_exp = 2});
    check_pass(g, "recognize-patterns", false, "ReduceMean,Sub,Pow,ReduceMean,Add,Sqrt,Div");
    kiln_graph_free(g);
    g = layernorm_graph((ln_opts){.ax1 = -1, .ax2 = 1, .pow_exp = 2});
    check_pass(g, "recognize-patterns", false, "ReduceMean,Sub,Pow,ReduceMean,Add,Sqrt,Div");
    kiln_graph_free(g);
}
END_TEST

START_TEST(layernorm_wrong_constants_not_recognized) {
    kiln_graph *g = layernorm_graph((ln_opts){.ax1 = -1, .ax2 = -1, .pow_exp = 4.0} /* d^4: not a variance */);
    check_pass(g, "recognize-patterns", false, "ReduceMean,Sub,Pow,ReduceMean,Add,Sqrt,Div");
    kiln_graph_free(g);
}
END_TEST

START_TEST(layernorm_gamma_on_batch_stays_a_mul) {
    kiln_graph *g = layernorm_graph((ln_opts){.ax1 = -1, .ax2 = -1, .pow_exp = 2, .gamma = true,
                                              .gamma_on_batch = true});
    check_pass(g, "recognize-patterns", true, "LayerNormalization,Mul");
    kiln_graph_free(g);
}
END_TEST

/* -------------------------------------------------------------- GELU -- */
typedef enum { GELU_DIV, GELU_MUL_HALF_FIRST, GELU_TANH } gelu_form;

static kiln_graph *gelu_graph(gelu_form form, double half, double k, double c3) {
    kiln_graph *g = with_input(D23, 2);
    scalar(g, "half", half);
    scalar(g, "one", 1.0);
    scalar(g, "k", k);
    if (form == GELU_TANH) {
        scalar(g, "c3", c3);
        scalar(g, "three", 3.0);
        gb_node(g, KILN_OP_Pow, "cube", "x,three", "x3");
        gb_node(g, KILN_OP_Mul, "m3", "x3,c3", "t3");
        gb_node(g, KILN_OP_Add, "inner", "x,t3", "s");
        gb_node(g, KILN_OP_Mul, "mk", "k,s", "u");
        gb_node(g, KILN_OP_Tanh, "tanh", "u", "e");
    } else {
        gb_node(g, form == GELU_DIV ? KILN_OP_Div : KILN_OP_Mul, "scale", "x,k", "t");
        gb_node(g, KILN_OP_Erf, "erf", "t", "e");
    }
    gb_node(g, KILN_OP_Add, "plus1", "e,one", "p");
    if (form == GELU_MUL_HALF_FIRST) { /* x * 0.5 * (1 + erf) */
        gb_node(g, KILN_OP_Mul, "mh", "x,half", "xh");
        gb_node(g, KILN_OP_Mul, "out", "xh,p", "y");
    } else { /* 0.5 * (x * (1 + ...)) */
        gb_node(g, KILN_OP_Mul, "mx", "x,p", "xp");
        gb_node(g, KILN_OP_Mul, "out", "half,xp", "y");
    }
    gb_output(g, "y");
    return g;
}

START_TEST(gelu_erf_recognized) {
    kiln_graph *g = gelu_graph(GELU_DIV, 0.5, 1.4142135, 0);
    check_pass(g, "recognize-patterns", true, "Gelu");
    ck_assert_str_eq(kiln_attr_str(&g->nodes[0], "approximate", "none"), "none");
    kiln_graph_free(g);
    g = gelu_graph(GELU_MUL_HALF_FIRST, 0.5, 0.70710678, 0);
    check_pass(g, "recognize-patterns", true, "Gelu");
    kiln_graph_free(g);
}
END_TEST

START_TEST(gelu_tanh_recognized) {
    kiln_graph *g = gelu_graph(GELU_TANH, 0.5, 0.7978845608, 0.044715);
    check_pass(g, "recognize-patterns", true, "Gelu");
    ck_assert_str_eq(kiln_attr_str(&g->nodes[0], "approximate", "none"), "tanh");
    kiln_graph_free(g);
}
END_TEST

START_TEST(gelu_wrong_constants_not_recognized) {
    kiln_graph *g = gelu_graph(GELU_DIV, 0.6, 1.4142135, 0);
    check_pass(g, "recognize-patterns", false, "Div,Erf,Add,Mul,Mul");
    kiln_graph_free(g);
    g = gelu_graph(GELU_DIV, 0.5, 1.5, 0);
    check_pass(g, "recognize-patterns", false, "Div,Erf,Add,Mul,Mul");
    kiln_graph_free(g);
    g = gelu_graph(GELU_MUL_HALF_FIRST, 0.5, 1.4142135, 0); /* Mul wants 1/sqrt(2) */
    check_pass(g, "recognize-patterns", false, "Mul,Erf,Add,Mul,Mul");
    kiln_graph_free(g);
    g = gelu_graph(GELU_TANH, 0.5, 0.7978845608, 0.05);
    check_pass(g, "recognize-patterns", false, "Pow,Mul,Add,Mul,Tanh,Add,Mul,Mul");
    kiln_graph_free(g);
}
END_TEST

START_TEST(gelu_then_group) {
    /* the recognized Gelu is one node of the following elementwise group */
    kiln_graph *g = gelu_graph(GELU_DIV, 0.5, 1.4142135, 0);
    gb_node(g, KILN_OP_Neg, "neg", "y", "z");
    g->outputs[0] = kiln_graph_find_value(g, "z");
    g->values[kiln_graph_find_value(g, "y")].flags &= ~(unsigned)KILN_VALUE_OUTPUT;
    g->values[g->outputs[0]].flags |= KILN_VALUE_OUTPUT;
    check_pass(g, "recognize-patterns,fuse-elementwise", true, "Fused:elementwise[Gelu+Neg]");
    kiln_graph_free(g);
}
END_TEST

static int count_op(const kiln_graph *g, kiln_op op) {
    int k = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        k += g->nodes[ni].op == op;
        if (g->nodes[ni].body) k += count_op(g->nodes[ni].body, op);
    }
    return k;
}

START_TEST(whole_pipeline_on_a_transformer_block) {
    /* LayerNorm and GELU written out around a MatMul, then a residual Add: the default
     * pipeline recognizes both and computes the same */
    kiln_graph *g = layernorm_graph((ln_opts){.ax1 = -1, .ax2 = -1, .pow_exp = 2, .gamma = true, .beta = true});
    gb_const(g, "w", KILN_F32, 2, (int64_t[]){4, 4}, -0.5, 0.5);
    gb_node(g, KILN_OP_MatMul, "mm", "y,w", "h");
    scalar(g, "half", 0.5);
    scalar(g, "one", 1.0);
    scalar(g, "r2", 1.4142135);
    gb_node(g, KILN_OP_Div, "gdiv", "h,r2", "gt");
    gb_node(g, KILN_OP_Erf, "gerf", "gt", "ge");
    gb_node(g, KILN_OP_Add, "gadd", "ge,one", "gp");
    gb_node(g, KILN_OP_Mul, "gmx", "h,gp", "gxp");
    gb_node(g, KILN_OP_Mul, "gout", "gxp,half", "gel");
    gb_node(g, KILN_OP_Add, "res", "gel,x", "z");
    g->values[g->outputs[0]].flags &= ~(unsigned)KILN_VALUE_OUTPUT;
    g->outputs[0] = kiln_graph_find_value(g, "z");
    g->values[g->outputs[0]].flags |= KILN_VALUE_OUTPUT;
    gb_finish(g);
    kiln_graph *ref = kiln_graph_clone(g);
    int before = kiln_graph_kernel_count(g);
    kiln_pipeline_opts o;
    kiln_pipeline_opts_init(&o);
    ck_assert_msg(kiln_pipeline_run(g, &o, NULL, 0, NULL) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(count_op(g, KILN_OP_LayerNormalization), 1);
    ck_assert_int_eq(count_op(g, KILN_OP_Gelu), 1);
    ck_assert_int_eq(count_op(g, KILN_OP_ReduceMean) + count_op(g, KILN_OP_Erf), 0);
    ck_assert_int_le(kiln_graph_kernel_count(g), 4); /* LayerNorm, MatMul, Gelu, Add at most */
    ck_assert_int_lt(kiln_graph_kernel_count(g), before);
    gb_assert_same(ref, g, 3, 1e-5);
    kiln_graph_free(ref);
    kiln_graph_free(g);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("fuse_elementwise");
    TCase *t = tcase_create("group");
    tcase_add_test(t, chain_becomes_one_group);
    tcase_add_test(t, diamond_with_broadcast_constant);
    tcase_add_test(t, multi_output_group);
    tcase_add_test(t, path_through_conv_is_not_fused);
    tcase_add_test(t, non_convex_union_splits);
    tcase_add_test(t, single_nodes_are_left_alone);
    tcase_add_test(t, conv_epilogue_group_is_not_absorbed);
    tcase_add_test(t, expand_shape_stays_outside);
    tcase_add_test(t, reduction_with_prologue_and_epilogue);
    tcase_add_test(t, reduction_prologue_used_twice_stays_out);
    tcase_add_test(t, reduction_with_symbolic_batch);
    suite_add_tcase(s, t);
    t = tcase_create("recognize");
    tcase_add_test(t, softmax_recognized);
    tcase_add_test(t, softmax_wrong_axes_not_recognized);
    tcase_add_test(t, softmax_inner_value_used_elsewhere);
    tcase_add_test(t, softmax_then_epilogue_is_one_reduction_group);
    tcase_add_test(t, layernorm_recognized_with_affine);
    tcase_add_test(t, layernorm_recognized_plain_mul_square);
    tcase_add_test(t, layernorm_wrong_axes_not_recognized);
    tcase_add_test(t, layernorm_wrong_constants_not_recognized);
    tcase_add_test(t, layernorm_gamma_on_batch_stays_a_mul);
    tcase_add_test(t, gelu_erf_recognized);
    tcase_add_test(t, gelu_tanh_recognized);
    tcase_add_test(t, gelu_wrong_constants_not_recognized);
    tcase_add_test(t, gelu_then_group);
    tcase_add_test(t, whole_pipeline_on_a_transformer_block);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
