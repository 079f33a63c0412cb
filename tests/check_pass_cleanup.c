/* check_pass_cleanup.c — the cleanup pass: what it removes (structure before/after and the
 * same outputs as the untouched graph) and what it must leave alone. */
#include "graph_builder.h"

static const int64_t D234[3] = {2, 3, 4};

/* Runs cleanup on a copy of g; checks the structure and that outputs match g's. */
static kiln_graph *cleaned(const kiln_graph *g, const char *want, bool want_changed) {
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert_ptr_nonnull(c);
    bool ch = gb_run_pass(c, "cleanup", KILN_PREC_FP32);
    ck_assert_msg(ch == want_changed, "changed=%d, expected %d (%s)", ch, want_changed, gb_ops(c));
    ck_assert_str_eq(gb_ops(c), want);
    gb_assert_same(g, c, 3, 1e-5);
    return c;
}

START_TEST(identity_dropout_and_dead_code) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 3, D234, NULL);
    gb_node(g, KILN_OP_Identity, "id", "x", "a");
    gb_node(g, KILN_OP_Relu, "relu", "a", "b");
    gb_node(g, KILN_OP_Dropout, "drop", "b", "c,mask");
    gb_node(g, KILN_OP_Cast, "mcast", "mask", "mf");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "to", KILN_F32);
    gb_node(g, KILN_OP_Add, "add", "c,mf", "y");
    gb_node(g, KILN_OP_Sigmoid, "unused", "b", "dead1");
    gb_node(g, KILN_OP_Neg, "unused2", "dead1", "dead2");
    gb_output(g, "y");
    gb_finish(g);
    ck_assert_str_eq(gb_ops(g), "Identity,Relu,Dropout,Cast,Add,Sigmoid,Neg");
    kiln_graph *c = cleaned(g, "Relu,Cast,Add", true);
    ck_assert_str_eq(kiln_graph_output_name(c, 0), "y");
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(no_op_cast_reshape_transpose_slice_expand_tile) {
    kiln_graph *g = kiln_graph_new();
    int64_t d[3] = {-1, 4, 6};
    gb_input(g, "x", KILN_F32, 3, d, "N");
    gb_node(g, KILN_OP_Cast, "cast", "x", "a");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "to", KILN_F32);
    gb_const_i64(g, "shape", 3, (int64_t[]){0, 4, 6});
    gb_node(g, KILN_OP_Reshape, "reshape", "a,shape", "b");
    gb_node(g, KILN_OP_Transpose, "tr", "b", "c");
    kiln_node_set_ints(&g->nodes[g->n_nodes - 1], "perm", (int64_t[]){0, 1, 2}, 3);
    gb_const_i64(g, "starts", 1, (int64_t[]){0});
    gb_const_i64(g, "ends", 1, (int64_t[]){INT64_MAX});
    gb_const_i64(g, "axes", 1, (int64_t[]){2});
    gb_node(g, KILN_OP_Slice, "slice", "c,starts,ends,axes", "e");
    gb_const_i64(g, "ones", 2, (int64_t[]){1, 1});
    gb_node(g, KILN_OP_Expand, "expand", "e,ones", "f");
    gb_const_i64(g, "reps", 3, (int64_t[]){1, 1, 1});
    gb_node(g, KILN_OP_Tile, "tile", "f,reps", "h");
    gb_node(g, KILN_OP_Relu, "relu", "h", "y");
    gb_output(g, "y");
    gb_finish(g);
    ck_assert_str_eq(gb_ops(g), "Cast,Reshape,Transpose,Slice,Expand,Tile,Relu");
    kiln_graph *c = cleaned(g, "Relu", true);
    ck_assert_int_eq(c->nodes[0].inputs[0], c->inputs[0]);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(reshape_chain_keeps_the_last) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 3, D234, NULL);
    gb_const_i64(g, "s1", 2, (int64_t[]){6, 4});
    gb_const_i64(g, "s2", 2, (int64_t[]){4, -1});
    gb_const_i64(g, "ax", 1, (int64_t[]){0});
    gb_node(g, KILN_OP_Reshape, "r1", "x,s1", "a");
    gb_node(g, KILN_OP_Unsqueeze, "u", "a,ax", "b");
    gb_node(g, KILN_OP_Reshape, "r2", "b,s2", "c");
    gb_node(g, KILN_OP_Relu, "relu", "c", "y");
    gb_output(g, "y");
    gb_finish(g);
    kiln_graph *c = cleaned(g, "Reshape,Relu", true);
    ck_assert_int_eq(c->nodes[0].inputs[0], c->inputs[0]);
    kiln_graph_free(c);
    kiln_graph_free(g);
    /* a 0 in the last shape copies a dim of the middle tensor: rewritten to static dims */
    kiln_graph *h = kiln_graph_new();
    gb_input(h, "x", KILN_F32, 3, D234, NULL);
    gb_const_i64(h, "s1", 2, (int64_t[]){4, 6});
    gb_const_i64(h, "s2", 3, (int64_t[]){0, 3, 2});
    gb_node(h, KILN_OP_Reshape, "r1", "x,s1", "a");
    gb_node(h, KILN_OP_Reshape, "r2", "a,s2", "y");
    gb_output(h, "y");
    gb_finish(h);
    c = cleaned(h, "Reshape", true);
    int64_t s[3];
    ck_assert_int_eq(kiln_value_const_ints(&c->values[c->nodes[0].inputs[1]], s, 3), 3);
    ck_assert(s[0] == 4 && s[1] == 3 && s[2] == 2);
    kiln_graph_free(c);
    kiln_graph_free(h);
}
END_TEST

START_TEST(transpose_pairs_cancel_or_compose) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 3, D234, NULL);
    gb_node(g, KILN_OP_Transpose, "t1", "x", "a");
    kiln_node_set_ints(&g->nodes[g->n_nodes - 1], "perm", (int64_t[]){1, 0, 2}, 3);
    gb_node(g, KILN_OP_Transpose, "t2", "a", "b");
    kiln_node_set_ints(&g->nodes[g->n_nodes - 1], "perm", (int64_t[]){1, 0, 2}, 3);
    gb_node(g, KILN_OP_Relu, "relu", "b", "y");
    gb_output(g, "y");
    gb_finish(g);
    kiln_graph *c = cleaned(g, "Relu", true);
    kiln_graph_free(c);
    kiln_graph_free(g);

    g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 3, D234, NULL);
    gb_node(g, KILN_OP_Transpose, "t1", "x", "a");
    kiln_node_set_ints(&g->nodes[g->n_nodes - 1], "perm", (int64_t[]){1, 2, 0}, 3);
    gb_node(g, KILN_OP_Transpose, "t2", "a", "b");
    kiln_node_set_ints(&g->nodes[g->n_nodes - 1], "perm", (int64_t[]){1, 2, 0}, 3);
    gb_node(g, KILN_OP_Transpose, "t3", "b", "y"); /* default perm: reversed */
    gb_output(g, "y");
    gb_finish(g);
    c = cleaned(g, "Transpose", true);
    const int64_t *p;
    ck_assert_int_eq(kiln_attr_ints(&c->nodes[0], "perm", &p), 3);
    /* (1,2,0) then (1,2,0) is (2,0,1); then reversed (2,1,0): (1,0,2) */
    ck_assert(p[0] == 1 && p[1] == 0 && p[2] == 2);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(squeeze_unsqueeze_cancel) {
    kiln_graph *g = kiln_graph_new();
    int64_t d[3] = {-1, 1, 3};
    gb_input(g, "x", KILN_F32, 3, d, "N");
    gb_const_i64(g, "a1", 1, (int64_t[]){1});
    gb_const_i64(g, "a2", 1, (int64_t[]){-2});
    gb_node(g, KILN_OP_Squeeze, "sq", "x,a1", "a");
    gb_node(g, KILN_OP_Unsqueeze, "us", "a,a2", "b");
    gb_node(g, KILN_OP_Unsqueeze, "us2", "b,a1", "c");
    gb_node(g, KILN_OP_Squeeze, "sq2", "c,a1", "e");
    gb_node(g, KILN_OP_Relu, "relu", "e", "y");
    gb_output(g, "y");
    gb_finish(g);
    kiln_graph *c = cleaned(g, "Relu", true);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(leaves_real_work_alone) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 3, D234, NULL);
    int64_t sc[1] = {0};
    gb_input(g, "train", KILN_BOOL, 0, sc, NULL);
    gb_node(g, KILN_OP_Cast, "cast", "x", "a");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "to", KILN_F64);
    gb_node(g, KILN_OP_Transpose, "tr", "a", "b");
    kiln_node_set_ints(&g->nodes[g->n_nodes - 1], "perm", (int64_t[]){0, 2, 1}, 3);
    gb_const_i64(g, "starts", 1, (int64_t[]){1});
    gb_const_i64(g, "ends", 1, (int64_t[]){INT64_MAX});
    gb_const_i64(g, "axes", 1, (int64_t[]){0});
    gb_node(g, KILN_OP_Slice, "slice", "b,starts,ends,axes", "c");
    gb_node(g, KILN_OP_Cast, "back", "c", "d");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "to", KILN_F32);
    gb_const_i64(g, "to3", 3, (int64_t[]){3, 1, 1});
    gb_node(g, KILN_OP_Expand, "expand", "d,to3", "e"); /* [1,4,3] -> [3,4,3] */
    gb_node(g, KILN_OP_Dropout, "drop", "e,,train", "y"); /* training mode unknown */
    gb_node(g, KILN_OP_Identity, "id", "x", "z");        /* input -> output: must stay */
    gb_output(g, "y");
    gb_output(g, "z");
    gb_finish(g);
    const char *want = "Cast,Transpose,Slice,Cast,Expand,Dropout,Identity";
    ck_assert_str_eq(gb_ops(g), want);
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert(!gb_run_pass(c, "cleanup", KILN_PREC_FP32));
    ck_assert_str_eq(gb_ops(c), want);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(no_op_at_graph_output_becomes_identity) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 3, D234, NULL);
    gb_node(g, KILN_OP_Cast, "cast", "x", "y");
    kiln_node_set_int(&g->nodes[g->n_nodes - 1], "to", KILN_F32);
    gb_output(g, "y");
    gb_finish(g);
    kiln_graph *c = cleaned(g, "Identity", true);
    ck_assert_str_eq(kiln_graph_output_name(c, 0), "y");
    ck_assert(!gb_run_pass(c, "cleanup", KILN_PREC_FP32)); /* and that is a fixpoint */
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pass_cleanup");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, identity_dropout_and_dead_code);
    tcase_add_test(tc, no_op_cast_reshape_transpose_slice_expand_tile);
    tcase_add_test(tc, reshape_chain_keeps_the_last);
    tcase_add_test(tc, transpose_pairs_cancel_or_compose);
    tcase_add_test(tc, squeeze_unsqueeze_cancel);
    tcase_add_test(tc, leaves_real_work_alone);
    tcase_add_test(tc, no_op_at_graph_output_becomes_identity);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
