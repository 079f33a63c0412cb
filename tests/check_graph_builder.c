/* check_graph_builder.c — the test helpers themselves: gb_ops and gb_assert_same must be
 * able to fail, so a broken pass cannot slip through them. */
#include "graph_builder.h"

static kiln_graph *small(void) {
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {-1, 4};
    gb_input(g, "x", KILN_F32, 2, d, "N");
    gb_node(g, KILN_OP_Relu, "r", "x", "y");
    gb_node(g, KILN_OP_Neg, "n", "y", "z");
    gb_output(g, "z");
    gb_finish(g);
    return g;
}

START_TEST(ops_string_and_same_outputs) {
    kiln_graph *a = small(), *b = kiln_graph_clone(a);
    ck_assert_str_eq(gb_ops(a), "Relu,Neg");
    gb_assert_same(a, b, 3, 0.0);
    int nodes[2] = {0, 1}, f;
    ck_assert_int_eq(kiln_graph_fuse(b, nodes, 2, "elementwise", &f), KILN_OK);
    gb_finish(b);
    ck_assert_str_eq(gb_ops(b), "Fused:elementwise[Relu+Neg]");
    gb_assert_same(a, b, 3, 0.0);
    /* a different graph must differ: Neg -> Abs */
    b->nodes[0].body->nodes[1].op = KILN_OP_Abs;
    kiln_tensor *x = NULL, *oa = NULL, *ob = NULL;
    int64_t d[2] = {3, 4};
    x = kiln_tensor_new(KILN_F32, 2, d);
    for (int i = 0; i < 12; i++) ((float *)x->data)[i] = (float)gb_rand();
    ck_assert_int_eq(kiln_graph_run_cpu(a, &x, 1, &oa, 1), KILN_OK);
    ck_assert_int_eq(kiln_graph_run_cpu(b, &x, 1, &ob, 1), KILN_OK);
    ck_assert_int_ne(memcmp(oa->data, ob->data, oa->nbytes), 0);
    kiln_tensor_free(x);
    kiln_tensor_free(oa);
    kiln_tensor_free(ob);
    kiln_graph_free(a);
    kiln_graph_free(b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("graph_builder");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, ops_string_and_same_outputs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
