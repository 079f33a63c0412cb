/* check_rewrite.c — graph editing used by passes: fusing a convex set into a fused node
 * (which must evaluate exactly like the nodes it replaced), refusing non-convex sets,
 * replacing uses of graph outputs, compaction and cloning. */
#include "pass.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 42;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* x[N,6] -> relu -> a -> neg -> b -> abs -> c ; also a -> sigmoid -> d ; outputs c, d */
static kiln_graph *chain(int *n_relu, int *n_neg, int *n_abs, int *n_sig) {
    kiln_graph *g = kiln_graph_new();
    int x = kiln_graph_add_value(g, "x"), a = kiln_graph_add_value(g, "a"), b = kiln_graph_add_value(g, "b");
    int c = kiln_graph_add_value(g, "c"), d = kiln_graph_add_value(g, "d");
    int64_t dims[2] = {-1, 6};
    kiln_value_set(&g->values[x], KILN_F32, 2, dims);
    g->values[x].sym[0] = kiln_graph_symbol(g, "N");
    g->values[x].flags = KILN_VALUE_INPUT;
    g->inputs = malloc(sizeof(int));
    g->inputs[g->n_inputs++] = x;
    *n_relu = kiln_graph_add_node(g, KILN_OP_Relu, "relu", &x, 1, &a, 1);
    *n_neg = kiln_graph_add_node(g, KILN_OP_Neg, "neg", &a, 1, &b, 1);
    *n_abs = kiln_graph_add_node(g, KILN_OP_Abs, "abs", &b, 1, &c, 1);
    *n_sig = kiln_graph_add_node(g, KILN_OP_Sigmoid, "sig", &a, 1, &d, 1);
    g->outputs = malloc(2 * sizeof(int));
    g->outputs[g->n_outputs++] = c;
    g->outputs[g->n_outputs++] = d;
    g->values[c].flags = g->values[d].flags = KILN_VALUE_OUTPUT;
    ck_assert_int_eq(kiln_graph_normalize(g), KILN_OK);
    return g;
}

static void run(const kiln_graph *g, const kiln_tensor *x, kiln_tensor **outs) {
    kiln_tensor *in = (kiln_tensor *)x;
    ck_assert_msg(kiln_graph_run_cpu(g, &in, 1, outs, 2) == KILN_OK, "%s", kiln_last_error());
}

static kiln_tensor *input(void) {
    int64_t d[2] = {5, 6};
    kiln_tensor *x = kiln_tensor_new(KILN_F32, 2, d);
    for (int i = 0; i < 30; i++) ((float *)x->data)[i] = frand();
    return x;
}

START_TEST(fuse_evaluates_like_the_original) {
    int r, n, a, s;
    kiln_graph *g = chain(&r, &n, &a, &s);
    kiln_tensor *x = input(), *want[2], *got[2];
    run(g, x, want);
    int nodes[3] = {r, n, a};
    int fused;
    ck_assert_msg(kiln_graph_fuse(g, nodes, 3, "elementwise", &fused) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(kiln_graph_normalize(g), KILN_OK);
    ck_assert_int_eq(g->n_nodes, 2); /* fused + sigmoid */
    int fi = g->nodes[0].op == KILN_OP_Fused ? 0 : 1;
    ck_assert_int_eq(g->nodes[fi].op, KILN_OP_Fused);
    ck_assert_int_eq(g->nodes[fi].body->n_nodes, 3);
    ck_assert_int_eq(g->nodes[fi].n_outputs, 2); /* a (used by sigmoid) and c */
    ck_assert_str_eq(kiln_attr_str(&g->nodes[fi], "kind", ""), "elementwise");
    ck_assert_int_eq(kiln_graph_kernel_count(g), 2);
    run(g, x, got);
    for (int o = 0; o < 2; o++) {
        ck_assert_int_eq(memcmp(got[o]->data, want[o]->data, want[o]->nbytes), 0);
        kiln_tensor_free(got[o]);
    }
    /* the symbolic batch survives inside the body */
    char buf[64];
    kiln_value_format_type(g, &g->values[g->outputs[0]], buf, sizeof buf);
    ck_assert_str_eq(buf, "f32[N,6]");
    /* a clone evaluates the same */
    kiln_graph *c = kiln_graph_clone(g);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(kiln_graph_verify(c), KILN_OK);
    run(c, x, got);
    for (int o = 0; o < 2; o++) {
        ck_assert_int_eq(memcmp(got[o]->data, want[o]->data, want[o]->nbytes), 0);
        kiln_tensor_free(got[o]);
        kiln_tensor_free(want[o]);
    }
    kiln_graph_free(c);
    kiln_graph_free(g);
    kiln_tensor_free(x);
}
END_TEST

START_TEST(fuse_refuses_non_convex_sets) {
    int r, n, a, s;
    kiln_graph *g = chain(&r, &n, &a, &s);
    int nodes[2] = {r, a}; /* relu -> neg (outside) -> abs: the path leaves and re-enters */
    ck_assert(!kiln_graph_is_convex(g, nodes, 2));
    int fused;
    ck_assert_int_eq(kiln_graph_fuse(g, nodes, 2, "bad", &fused), KILN_ERR_INVALID_ARG);
    ck_assert(strstr(kiln_last_error(), "not convex"));
    int ok[2] = {r, s};
    ck_assert(kiln_graph_is_convex(g, ok, 2));
    kiln_graph_free(g);
}
END_TEST

START_TEST(replace_uses_keeps_output_names) {
    int r, n, a, s;
    kiln_graph *g = chain(&r, &n, &a, &s);
    kiln_tensor *x = input(), *want[2], *got[2];
    run(g, x, want);
    /* bypass abs: c := b (numerically different, but names are what is checked here) */
    int b = g->nodes[n].outputs[0], c = g->nodes[a].outputs[0];
    ck_assert(kiln_graph_replace_uses(g, c, b));
    kiln_graph_remove_node(g, a);
    ck_assert_int_eq(kiln_graph_normalize(g), KILN_OK);
    ck_assert_int_eq(g->n_nodes, 3);
    ck_assert_str_eq(kiln_graph_output_name(g, 0), "c");
    run(g, x, got);
    for (int i = 0; i < 30; i++) /* c is now -relu(x) */
        ck_assert_float_eq(((float *)got[0]->data)[i], -((float *)want[0]->data)[i]);
    /* an input cannot take over an output's name */
    int xv = g->inputs[0], dv = g->outputs[1];
    ck_assert(!kiln_graph_replace_uses(g, dv, xv));
    for (int o = 0; o < 2; o++) {
        kiln_tensor_free(got[o]);
        kiln_tensor_free(want[o]);
    }
    kiln_tensor_free(x);
    kiln_graph_free(g);
}
END_TEST

START_TEST(pipeline_rejects_unknown_pass_names) {
    int r, n, a, s;
    kiln_graph *g = chain(&r, &n, &a, &s);
    kiln_pipeline_opts o;
    kiln_pipeline_opts_init(&o);
    o.disabled = "cleanup,no-such-pass";
    ck_assert_int_eq(kiln_pipeline_run(g, &o, NULL, 0, NULL), KILN_ERR_INVALID_ARG);
    ck_assert(strstr(kiln_last_error(), "unknown pass 'no-such-pass'"));
    kiln_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rewrite");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, fuse_evaluates_like_the_original);
    tcase_add_test(tc, fuse_refuses_non_convex_sets);
    tcase_add_test(tc, replace_uses_keeps_output_names);
    tcase_add_test(tc, pipeline_rejects_unknown_pass_names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
