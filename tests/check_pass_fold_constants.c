/* check_pass_fold_constants.c — constant folding: chains fold in one sweep, outputs stay
 * the same, and the size rules keep Expand/ConstantOfShape of constants from blowing up. */
#include "graph_builder.h"

/* Runs fold-constants alone with the given cap; returns whether it changed g. */
static bool fold(kiln_graph *g, int64_t cap) {
    kiln_pipeline_opts o;
    kiln_pipeline_opts_init(&o);
    o.only = "fold-constants";
    if (cap > 0) o.ctx.fold_max_bytes = cap;
    kiln_pass_stat st[4];
    int n = 0;
    ck_assert_msg(kiln_pipeline_run(g, &o, st, 4, &n) == KILN_OK, "%s", kiln_last_error());
    return n > 0 && st[0].changed;
}

static kiln_node *cos_node(kiln_graph *g, const char *name, const char *in, const char *out, float value) {
    kiln_node *n = gb_node(g, KILN_OP_ConstantOfShape, name, in, out);
    int64_t one = 1;
    kiln_tensor *t = kiln_tensor_new(KILN_F32, 1, &one);
    ((float *)t->data)[0] = value;
    ck_assert_int_eq(kiln_node_set_tensor(n, "value", t), KILN_OK);
    kiln_tensor_free(t);
    return n;
}

START_TEST(constant_chain_folds) {
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {-1, 4}, d4[1] = {4};
    gb_input(g, "x", KILN_F32, 2, d, "N");
    gb_const(g, "a", KILN_F32, 1, d4, -1, 1);
    gb_const(g, "b", KILN_F32, 1, d4, 0.5, 1);
    gb_node(g, KILN_OP_Mul, "m", "a,b", "ab");
    gb_node(g, KILN_OP_Exp, "e", "ab", "eab");
    gb_const_i64(g, "shape", 2, (int64_t[]){1, 4});
    gb_node(g, KILN_OP_Reshape, "r", "eab,shape", "row");
    gb_node(g, KILN_OP_Add, "add", "x,row", "y");
    gb_output(g, "y");
    gb_finish(g);
    ck_assert_str_eq(gb_ops(g), "Mul,Exp,Reshape,Add");
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert(fold(c, 0));
    ck_assert_str_eq(gb_ops(c), "Add");
    const kiln_value *row = &c->values[c->nodes[0].inputs[1]];
    ck_assert_ptr_nonnull(row->data);
    ck_assert_int_eq(row->rank, 2);
    gb_assert_same(g, c, 5, 1e-6);
    ck_assert(!fold(c, 0)); /* fixpoint */
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(size_rules) {
    /* ConstantOfShape [512,512] (1 MiB from 16 bytes) feeding an Add: not folded;
     * a [64,3,7,7] conv weight (37 KiB) and a [256,64,3,3] one (576 KiB): folded as weights
     * under the default cap, not under a 64 KiB cap; Expand to [8,8]: small, folded. */
    kiln_graph *g = kiln_graph_new();
    int64_t dx[2] = {512, 512}, dimg[4] = {1, 64, 9, 9}, d8[2] = {8, 8};
    gb_input(g, "x", KILN_F32, 2, dx, NULL);
    gb_input(g, "img", KILN_F32, 4, dimg, NULL);
    gb_input(g, "s", KILN_F32, 2, d8, NULL);
    gb_const_i64(g, "big_shape", 2, (int64_t[]){512, 512});
    cos_node(g, "big", "big_shape", "bigc", 0.25f);
    gb_node(g, KILN_OP_Add, "add", "x,bigc", "y");
    gb_const_i64(g, "w_shape", 4, (int64_t[]){256, 64, 3, 3});
    cos_node(g, "w", "w_shape", "wc", 0.01f);
    gb_node(g, KILN_OP_Conv, "conv", "img,wc", "z");
    gb_const_i64(g, "e_shape", 2, (int64_t[]){8, 8});
    int64_t one = 1;
    gb_const(g, "e_val", KILN_F32, 1, &one, 1, 2);
    gb_node(g, KILN_OP_Expand, "expand", "e_val,e_shape", "ec");
    gb_node(g, KILN_OP_Mul, "mul", "s,ec", "u");
    gb_output(g, "y");
    gb_output(g, "z");
    gb_output(g, "u");
    gb_finish(g);
    ck_assert_str_eq(gb_ops(g), "ConstantOfShape,Add,ConstantOfShape,Conv,Expand,Mul");
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert(fold(c, 64 << 10));
    ck_assert_str_eq(gb_ops(c), "ConstantOfShape,Add,ConstantOfShape,Conv,Mul");
    kiln_graph_free(c);
    c = kiln_graph_clone(g);
    ck_assert(fold(c, 0));
    ck_assert_str_eq(gb_ops(c), "ConstantOfShape,Add,Conv,Mul");
    gb_assert_same(g, c, 1, 1e-6);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(leaves_outputs_and_runtime_values) {
    kiln_graph *g = kiln_graph_new();
    int64_t d4[1] = {4};
    gb_const(g, "a", KILN_F32, 1, d4, -1, 1);
    gb_const(g, "b", KILN_F32, 1, d4, -1, 1);
    gb_node(g, KILN_OP_Add, "add", "a,b", "y"); /* a graph output: keeps its producer */
    gb_input(g, "w", KILN_F32, 1, d4, NULL);
    gb_node(g, KILN_OP_Neg, "neg", "w", "nw");
    gb_node(g, KILN_OP_Relu, "relu", "nw", "z");
    gb_output(g, "y");
    gb_output(g, "z");
    gb_finish(g);
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert(!fold(c, 0));
    ck_assert_str_eq(gb_ops(c), "Add,Neg,Relu");
    gb_assert_same(g, c, 1, 0);
    kiln_graph_free(c);
    kiln_graph_free(g);
}
END_TEST

START_TEST(unevaluable_node_stays) {
    /* Gather with an out-of-range constant index fails at run time; folding must not fail
     * the pass nor remove the node. */
    kiln_graph *g = kiln_graph_new();
    int64_t d4[1] = {4}, d1[1] = {1};
    gb_input(g, "x", KILN_F32, 1, d1, NULL);
    gb_const(g, "a", KILN_F32, 1, d4, -1, 1);
    gb_const_i64(g, "idx", 1, (int64_t[]){1});
    gb_node(g, KILN_OP_Gather, "gather", "a,idx", "ga");
    gb_node(g, KILN_OP_Add, "add", "x,ga", "y");
    gb_output(g, "y");
    gb_finish(g);
    /* make the index bad after inference accepted the graph */
    ((int64_t *)g->values[kiln_graph_find_value(g, "idx")].data->data)[0] = 9;
    ck_assert(!fold(g, 0));
    ck_assert_str_eq(gb_ops(g), "Gather,Add");
    kiln_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pass_fold_constants");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, constant_chain_folds);
    tcase_add_test(tc, size_rules);
    tcase_add_test(tc, leaves_outputs_and_runtime_values);
    tcase_add_test(tc, unevaluable_node_stays);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
