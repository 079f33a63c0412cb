/* check_pass_simplify_shapes.c — the PyTorch flatten chain (static and dynamic batch),
 * Shape(x)[i] of a static dim, and chains that must stay (two dims that cannot be copied). */
#include "graph_builder.h"

#define GROUP "cleanup,fold-constants,simplify-shapes"

/* x -> Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])) -> Relu */
static kiln_graph *flatten_chain(int64_t batch) {
    kiln_graph *g = kiln_graph_new();
    int64_t d[4] = {batch, 8, 1, 1};
    gb_input(g, "x", KILN_F32, 4, d, "N");
    gb_node(g, KILN_OP_Shape, "shape", "x", "s");
    int zero = gb_const_i64(g, "zero", 1, (int64_t[]){0});
    g->values[zero].rank = 0; /* scalar index */
    g->values[zero].data->rank = 0;
    gb_node(g, KILN_OP_Gather, "gather", "s,zero", "b");
    gb_const_i64(g, "ax", 1, (int64_t[]){0});
    gb_node(g, KILN_OP_Unsqueeze, "unsq", "b,ax", "bu");
    gb_const_i64(g, "m1", 1, (int64_t[]){-1});
    gb_node(g, KILN_OP_Concat, "concat", "bu,m1", "shp");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "axis", 0);
    gb_node(g, KILN_OP_Reshape, "reshape", "x,shp", "f");
    gb_node(g, KILN_OP_Relu, "relu", "f", "y");
    gb_output(g, "y");
    gb_finish(g);
    ck_assert_str_eq(gb_ops(g), "Shape,Gather,Unsqueeze,Concat,Reshape,Relu");
    return g;
}

static void reshape_shape_is(const kiln_graph *g, int64_t a, int64_t b) {
    ck_assert_int_eq(g->nodes[0].op, KILN_OP_Reshape);
    int64_t s[4];
    ck_assert_int_eq(kiln_value_const_ints(&g->values[g->nodes[0].inputs[1]], s, 4), 2);
    ck_assert_msg(s[0] == a && s[1] == b, "shape [%lld,%lld]", (long long)s[0], (long long)s[1]);
}

START_TEST(dynamic_batch_flatten_keeps_only_the_batch) {
    kiln_graph *g = flatten_chain(-1);
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert(gb_run_pass(c, GROUP, KILN_PREC_FP32));
    ck_assert_str_eq(gb_ops(c), "Reshape,Relu");
    reshape_shape_is(c, 0, -1);
    char buf[64];
    kiln_value_format_type(c, &c->values[c->outputs[0]], buf, sizeof buf);
    ck_assert_str_eq(buf, "f32[N,8]");
    gb_assert_same(g, c, 3, 0);
    gb_assert_same(g, c, 1, 0);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(static_flatten_becomes_constant) {
    kiln_graph *g = flatten_chain(2);
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert(gb_run_pass(c, "simplify-shapes", KILN_PREC_FP32));
    /* the pass alone gives the Reshape a constant shape; the chain is left dead */
    ck_assert_ptr_nonnull(c->values[c->nodes[4].inputs[1]].data);
    ck_assert(gb_run_pass(c, GROUP, KILN_PREC_FP32));
    ck_assert_str_eq(gb_ops(c), "Reshape,Relu");
    reshape_shape_is(c, 2, -1);
    gb_assert_same(g, c, 1, 0);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(static_dim_of_a_dynamic_tensor) {
    /* y = x + float(x.shape[1]) with x[N,5]: the dim is 5 whatever N is */
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {-1, 5};
    gb_input(g, "x", KILN_F32, 2, d, "N");
    gb_node(g, KILN_OP_Shape, "shape", "x", "s");
    gb_const_i64(g, "one", 1, (int64_t[]){1});
    gb_node(g, KILN_OP_Gather, "gather", "s,one", "c");
    gb_node(g, KILN_OP_Cast, "cast", "c", "cf");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "to", KILN_F32);
    gb_node(g, KILN_OP_Add, "add", "x,cf", "y");
    gb_output(g, "y");
    gb_finish(g);
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert(gb_run_pass(c, GROUP, KILN_PREC_FP32));
    ck_assert_str_eq(gb_ops(c), "Add");
    const kiln_value *k = &c->values[c->nodes[0].inputs[1]];
    ck_assert_ptr_nonnull(k->data);
    ck_assert_float_eq(kiln_tensor_get(k->data, 0), 5.0);
    gb_assert_same(g, c, 4, 0);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(swapped_dynamic_dims_stay) {
    /* Reshape(x[N,M], [M, N]): neither dim can be copied in place and -1 covers only one */
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {-1, -1};
    int x = gb_input(g, "x", KILN_F32, 2, d, NULL);
    g->values[x].sym[0] = kiln_graph_symbol(g, "N");
    g->values[x].sym[1] = kiln_graph_symbol(g, "M");
    gb_node(g, KILN_OP_Shape, "shape", "x", "s");
    gb_const_i64(g, "i1", 1, (int64_t[]){1});
    gb_const_i64(g, "i0", 1, (int64_t[]){0});
    gb_node(g, KILN_OP_Gather, "g1", "s,i1", "m");
    gb_node(g, KILN_OP_Gather, "g0", "s,i0", "n");
    gb_node(g, KILN_OP_Concat, "concat", "m,n", "shp");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "axis", 0);
    gb_node(g, KILN_OP_Reshape, "reshape", "x,shp", "y");
    gb_output(g, "y");
    gb_finish(g);
    const char *want = "Shape,Gather,Gather,Concat,Reshape";
    ck_assert_str_eq(gb_ops(g), want);
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert(!gb_run_pass(c, GROUP, KILN_PREC_FP32));
    ck_assert_str_eq(gb_ops(c), want);
    gb_assert_same(g, c, 3, 0);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(in_place_dims_copy) {
    kiln_graph *g = kiln_graph_new();
    int64_t d[3] = {-1, -1, 4};
    int x = gb_input(g, "x", KILN_F32, 3, d, NULL);
    g->values[x].sym[0] = kiln_graph_symbol(g, "N");
    g->values[x].sym[1] = kiln_graph_symbol(g, "M");
    gb_node(g, KILN_OP_Shape, "shape", "x", "s");
    gb_const_i64(g, "i01", 2, (int64_t[]){0, 1});
    gb_node(g, KILN_OP_Gather, "g", "s,i01", "nm");
    gb_const_i64(g, "tail", 2, (int64_t[]){2, 2});
    gb_node(g, KILN_OP_Concat, "concat", "nm,tail", "shp");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "axis", 0);
    gb_node(g, KILN_OP_Reshape, "reshape", "x,shp", "r");
    gb_node(g, KILN_OP_Relu, "relu", "r", "y");
    gb_output(g, "y");
    gb_finish(g);
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert(gb_run_pass(c, GROUP, KILN_PREC_FP32));
    ck_assert_str_eq(gb_ops(c), "Reshape,Relu");
    int64_t s[4];
    ck_assert_int_eq(kiln_value_const_ints(&c->values[c->nodes[0].inputs[1]], s, 4), 4);
    ck_assert(s[0] == 0 && s[1] == 0 && s[2] == 2 && s[3] == 2);
    gb_assert_same(g, c, 3, 0);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(slice_of_shape) {
    /* x.view(*x.shape[:2], -1) as Slice(Shape(x), 0, 2) and, reversed twice with a huge
     * step, Slice(Slice(Shape(x), -1, -inf, -1), 2, 0, -2^63) picks dim 1 */
    kiln_graph *g = kiln_graph_new();
    int64_t d[4] = {-1, 8, 2, 2};
    gb_input(g, "x", KILN_F32, 4, d, "N");
    gb_node(g, KILN_OP_Shape, "shape", "x", "s");
    gb_const_i64(g, "st", 1, (int64_t[]){0});
    gb_const_i64(g, "en", 1, (int64_t[]){2});
    gb_node(g, KILN_OP_Slice, "head", "s,st,en", "head");
    gb_const_i64(g, "m1", 1, (int64_t[]){-1});
    gb_const_i64(g, "ninf", 1, (int64_t[]){INT64_MIN});
    gb_const_i64(g, "ax", 1, (int64_t[]){0});
    gb_node(g, KILN_OP_Slice, "rev", "s,m1,ninf,ax,m1", "rev");
    gb_const_i64(g, "two", 1, (int64_t[]){2});
    gb_const_i64(g, "zero", 1, (int64_t[]){0});
    gb_const_i64(g, "huge", 1, (int64_t[]){INT64_MIN});
    gb_node(g, KILN_OP_Slice, "pick", "rev,two,zero,ax,huge", "c");
    gb_node(g, KILN_OP_Concat, "concat", "head,m1", "shp");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "axis", 0);
    gb_node(g, KILN_OP_Reshape, "reshape", "x,shp", "r");
    gb_node(g, KILN_OP_Cast, "cast", "c", "cf");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "to", KILN_F32);
    gb_node(g, KILN_OP_Add, "add", "r,cf", "y");
    gb_output(g, "y");
    gb_finish(g);
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert(gb_run_pass(c, GROUP, KILN_PREC_FP32));
    ck_assert_str_eq(gb_ops(c), "Reshape,Add");
    int64_t v[4];
    ck_assert_int_eq(kiln_value_const_ints(&c->values[c->nodes[0].inputs[1]], v, 4), 3);
    ck_assert(v[0] == 0 && v[1] == 8 && v[2] == -1);
    ck_assert_float_eq(kiln_tensor_get(c->values[c->nodes[1].inputs[1]].data, 0), 8.0);
    gb_assert_same(g, c, 2, 0);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(shape_as_graph_output_stays) {
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {2, 3};
    gb_input(g, "x", KILN_F32, 2, d, NULL);
    gb_node(g, KILN_OP_Shape, "shape", "x", "s");
    gb_output(g, "s");
    gb_finish(g);
    ck_assert(!gb_run_pass(g, GROUP, KILN_PREC_FP32));
    ck_assert_str_eq(gb_ops(g), "Shape");
    kiln_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pass_simplify_shapes");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, dynamic_batch_flatten_keeps_only_the_batch);
    tcase_add_test(tc, static_flatten_becomes_constant);
    tcase_add_test(tc, static_dim_of_a_dynamic_tensor);
    tcase_add_test(tc, swapped_dynamic_dims_stay);
    tcase_add_test(tc, in_place_dims_copy);
    tcase_add_test(tc, slice_of_shape);
    tcase_add_test(tc, shape_as_graph_output_stays);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
