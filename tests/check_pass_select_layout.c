/* check_pass_select_layout.c — select-layout: NHWC regions at tensor-core precisions, NCHW at
 * fp32, conversions only at region borders (and none for layout-invariant values), regions not
 * worth their conversions stay NCHW, fused conv groups take their anchor's layout. The pass only
 * annotates: structure and numbers are unchanged. */
#include "graph_builder.h"

#include <stdio.h>

static const kiln_value *val(const kiln_graph *g, const char *name) {
    int v = kiln_graph_find_value(g, name);
    ck_assert_msg(v >= 0, "no value '%s'", name);
    return &g->values[v];
}

static const kiln_node *node(const kiln_graph *g, const char *name) {
    for (int ni = 0; ni < g->n_nodes; ni++)
        if (!strcmp(g->nodes[ni].name, name)) return &g->nodes[ni];
    for (int ni = 0; ni < g->n_nodes; ni++) /* a fused node is named after its group */
        if (g->nodes[ni].body)
            for (int k = 0; k < g->nodes[ni].body->n_nodes; k++)
                if (!strcmp(g->nodes[ni].body->nodes[k].name, name)) return &g->nodes[ni].body->nodes[k];
    ck_abort_msg("no node '%s'", name);
    return NULL;
}

/* Runs select-layout at precision p; the graph computes the same and keeps its structure.
 * Returns the number of conversions. */
static int select(kiln_graph *g, kiln_precision p, bool expect_change) {
    kiln_graph *before = kiln_graph_clone(g);
    ck_assert_ptr_nonnull(before);
    char ops[4096];
    snprintf(ops, sizeof ops, "%s", gb_ops(g));
    ck_assert_int_eq(gb_run_pass(g, "select-layout", p), expect_change);
    ck_assert_str_eq(gb_ops(g), ops);
    gb_assert_same(before, g, 2, 1e-5);
    kiln_graph_free(before);
    ck_assert(!gb_run_pass(g, "select-layout", p)); /* idempotent */
    return kiln_graph_layout_conversions(g, NULL);
}

static void conv(kiln_graph *g, const char *name, const char *ins, const char *out) {
    int64_t pads[4] = {1, 1, 1, 1};
    kiln_node *n = gb_node(g, KILN_OP_Conv, name, ins, out);
    kiln_node_set_ints(n, "pads", pads, 4);
}

/* x -> conv -> relu -> conv (+ residual) -> relu -> GAP -> Flatten -> Gemm */
static kiln_graph *resblock(void) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {1, 16, 8, 8}, wd[4] = {16, 16, 3, 3}, gw[2] = {10, 16};
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    gb_const(g, "w1", KILN_F32, 4, wd, -0.2, 0.2);
    gb_const(g, "w2", KILN_F32, 4, wd, -0.2, 0.2);
    gb_const(g, "gw", KILN_F32, 2, gw, -0.2, 0.2);
    conv(g, "c1", "x,w1", "a");
    gb_node(g, KILN_OP_Relu, "r1", "a", "b");
    conv(g, "c2", "b,w2", "c");
    gb_node(g, KILN_OP_Add, "add", "c,b", "d");
    gb_node(g, KILN_OP_Relu, "r2", "d", "e");
    gb_node(g, KILN_OP_GlobalAveragePool, "gap", "e", "p");
    gb_node(g, KILN_OP_Flatten, "fl", "p", "f");
    kiln_node *gm = gb_node(g, KILN_OP_Gemm, "fc", "f,gw", "y");
    kiln_node_set_int(gm, "transB", 1);
    gb_output(g, "y");
    gb_finish(g);
    return g;
}

START_TEST(fp16_region_is_nhwc) {
    kiln_graph *g = resblock();
    int conversions = select(g, KILN_PREC_FP16, true);
    const char *nhwc[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++) ck_assert_int_eq(val(g, nhwc[i])->layout, KILN_LAYOUT_NHWC);
    ck_assert_int_eq(val(g, "p")->layout, KILN_LAYOUT_NCHW); /* [1,16,1,1]: the same bytes, stored NCHW */
    ck_assert_int_eq(val(g, "x")->layout, KILN_LAYOUT_NCHW); /* graph input: NCHW by contract */
    ck_assert_int_eq(val(g, "f")->layout, KILN_LAYOUT_ANY);  /* not 4-D */
    ck_assert_int_eq(val(g, "w1")->layout, KILN_LAYOUT_ANY); /* weights are transformed at build time */
    ck_assert_str_eq(kiln_attr_str(node(g, "c1"), "kiln_layout", ""), "NHWC");
    ck_assert_str_eq(kiln_attr_str(node(g, "c2"), "kiln_layout", ""), "NHWC");
    ck_assert_int_eq(kiln_attr_int(node(g, "c1"), "kiln_convert_input", 0), 1); /* x enters the region */
    ck_assert_ptr_null(kiln_attr_find(node(g, "c2"), "kiln_convert_input"));
    /* [1,16,1,1] has the same bytes in both layouts: Flatten reads it as is */
    ck_assert_ptr_null(kiln_attr_find(node(g, "fl"), "kiln_convert_input"));
    ck_assert_int_eq(conversions, 1);
    kiln_graph_free(g);
}
END_TEST

START_TEST(tf32_and_int8_also_nhwc) {
    kiln_precision ps[2] = {KILN_PREC_TF32, KILN_PREC_INT8};
    for (int i = 0; i < 2; i++) {
        kiln_graph *g = resblock();
        ck_assert_int_eq(select(g, ps[i], true), 1);
        ck_assert_int_eq(val(g, "d")->layout, KILN_LAYOUT_NHWC);
        kiln_graph_free(g);
    }
}
END_TEST

START_TEST(fp32_stays_nchw) {
    kiln_graph *g = resblock();
    ck_assert_int_eq(select(g, KILN_PREC_FP32, true), 0);
    int nhwc = -1;
    kiln_graph_layout_conversions(g, &nhwc);
    ck_assert_int_eq(nhwc, 0);
    ck_assert_int_eq(val(g, "d")->layout, KILN_LAYOUT_NCHW);
    ck_assert_str_eq(kiln_attr_str(node(g, "c1"), "kiln_layout", ""), "NCHW");
    ck_assert_ptr_null(kiln_attr_find(node(g, "c1"), "kiln_convert_input"));
    /* switching precision re-annotates: fp16 after fp32 changes, back to fp32 clears */
    ck_assert(gb_run_pass(g, "select-layout", KILN_PREC_FP16));
    ck_assert_int_eq(val(g, "d")->layout, KILN_LAYOUT_NHWC);
    ck_assert(gb_run_pass(g, "select-layout", KILN_PREC_FP32));
    ck_assert_ptr_null(kiln_attr_find(node(g, "c1"), "kiln_convert_input"));
    ck_assert_int_eq(kiln_graph_layout_conversions(g, NULL), 0);
    kiln_graph_free(g);
}
END_TEST

/* A lone pool between two NCHW ops saves less than its two conversions: stays NCHW. */
START_TEST(region_not_worth_its_conversions) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {1, 16, 8, 8}, k[2] = {2, 2};
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    gb_node(g, KILN_OP_Neg, "neg", "x", "a");
    kiln_node *mp = gb_node(g, KILN_OP_MaxPool, "mp", "a", "b");
    kiln_node_set_ints(mp, "kernel_shape", k, 2);
    kiln_node_set_ints(mp, "strides", k, 2);
    gb_node(g, KILN_OP_Flatten, "fl", "b", "y");
    gb_output(g, "y");
    gb_finish(g);
    ck_assert_int_eq(select(g, KILN_PREC_FP16, true), 0);
    ck_assert_int_eq(val(g, "b")->layout, KILN_LAYOUT_NCHW);
    ck_assert_str_eq(kiln_attr_str(node(g, "mp"), "kiln_layout", ""), "NCHW");
    kiln_graph_free(g);
}
END_TEST

/* A Reshape round trip splits two regions. A view aliases its input's storage and cannot
 * convert, so the region it reads from stays NCHW; the other pays its border conversions, and
 * its NHWC graph output is converted by its producer. */
START_TEST(reshape_splits_regions) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {1, 16, 8, 8}, wd[4] = {16, 16, 3, 3}, s1[2] = {16, 64}, s2[4] = {1, 16, 8, 8};
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    gb_const(g, "w1", KILN_F32, 4, wd, -0.2, 0.2);
    gb_const(g, "w2", KILN_F32, 4, wd, -0.2, 0.2);
    gb_const_i64(g, "s1", 2, s1);
    gb_const_i64(g, "s2", 4, s2);
    conv(g, "c1", "x,w1", "a");
    gb_node(g, KILN_OP_Reshape, "rs1", "a,s1", "m");
    gb_node(g, KILN_OP_Softmax, "sm", "m", "sm_out");
    gb_node(g, KILN_OP_Reshape, "rs2", "sm_out,s2", "n");
    conv(g, "c2", "n,w2", "y");
    gb_output(g, "y");
    gb_finish(g);
    ck_assert_int_eq(select(g, KILN_PREC_FP16, true), 2); /* n in, y out */
    ck_assert_str_eq(kiln_attr_str(node(g, "c1"), "kiln_layout", ""), "NCHW");
    ck_assert_int_eq(val(g, "a")->layout, KILN_LAYOUT_NCHW);
    ck_assert_ptr_null(kiln_attr_find(node(g, "rs1"), "kiln_convert_input"));
    ck_assert_str_eq(kiln_attr_str(node(g, "c2"), "kiln_layout", ""), "NHWC");
    ck_assert_int_eq(kiln_attr_int(node(g, "c2"), "kiln_convert_input", 0), 1);
    ck_assert_int_eq(kiln_attr_int(node(g, "c2"), "kiln_convert_output", 0), 1);
    ck_assert_int_eq(val(g, "n")->layout, KILN_LAYOUT_NCHW);
    ck_assert_int_eq(val(g, "y")->layout, KILN_LAYOUT_NCHW); /* a graph output is stored NCHW, c2 converts */
    kiln_graph_free(g);
}
END_TEST

/* Per-channel operands keep a node layout-free; a W-aligned one needs NCHW. */
START_TEST(broadcast_operands) {
    for (int k = 0; k < 2; k++) {
        kiln_graph *g = kiln_graph_new();
        int64_t xd[4] = {1, 16, 8, 8}, wd[4] = {16, 16, 3, 3}, pc[3] = {16, 1, 1}, wv[1] = {8};
        gb_input(g, "x", KILN_F32, 4, xd, NULL);
        gb_input(g, "s", KILN_F32, k ? 1 : 3, k ? wv : pc, NULL);
        gb_const(g, "w1", KILN_F32, 4, wd, -0.2, 0.2);
        gb_const(g, "w2", KILN_F32, 4, wd, -0.2, 0.2);
        conv(g, "c1", "x,w1", "a");
        gb_node(g, KILN_OP_Mul, "mul", "a,s", "b");
        conv(g, "c2", "b,w2", "c");
        gb_node(g, KILN_OP_GlobalAveragePool, "gap", "c", "y");
        gb_output(g, "y");
        gb_finish(g);
        int conversions = select(g, KILN_PREC_FP16, true);
        ck_assert_int_eq(val(g, "a")->layout, KILN_LAYOUT_NHWC);
        if (!k) {
            ck_assert_int_eq(conversions, 1); /* x only; y is [1,16,1,1] */
            ck_assert_str_eq(kiln_attr_str(node(g, "mul"), "kiln_layout", ""), "NHWC");
        } else {
            ck_assert_int_eq(conversions, 3); /* x, a to the Mul, b back */
            ck_assert_ptr_null(kiln_attr_find(node(g, "mul"), "kiln_layout"));
            ck_assert_int_eq(kiln_attr_int(node(g, "mul"), "kiln_convert_input", 0), 1);
        }
        kiln_graph_free(g);
    }
}
END_TEST

/* A conv_epilogue group is one flexible node with its anchor's preference. */
START_TEST(fused_group_takes_anchor_layout) {
    kiln_graph *g = resblock();
    int set[3] = {2, 3, 4}, f; /* c2, add, r2 */
    ck_assert_int_eq(g->nodes[2].op, KILN_OP_Conv);
    ck_assert_int_eq(kiln_graph_fuse(g, set, 3, "conv_epilogue", &f), KILN_OK);
    gb_finish(g);
    ck_assert_str_eq(gb_ops(g), "Conv,Relu,Fused:conv_epilogue[Conv+Add+Relu],GlobalAveragePool,Flatten,Gemm");
    ck_assert_int_eq(select(g, KILN_PREC_FP16, true), 1);
    const kiln_node *fn = NULL;
    for (int ni = 0; ni < g->n_nodes; ni++)
        if (g->nodes[ni].op == KILN_OP_Fused) fn = &g->nodes[ni];
    ck_assert_str_eq(kiln_attr_str(fn, "kiln_layout", ""), "NHWC");
    ck_assert_str_eq(kiln_attr_str(&fn->body->nodes[0], "kiln_layout", ""), "NHWC");
    ck_assert_ptr_null(kiln_attr_find(fn, "kiln_convert_input"));
    ck_assert_int_eq(val(g, "e")->layout, KILN_LAYOUT_NHWC);
    kiln_graph_free(g);
}
END_TEST

/* Nothing 4-D: the pass does not fire. */
START_TEST(no_4d_activations_no_change) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[2] = {4, 8}, wd[2] = {8, 3};
    gb_input(g, "x", KILN_F32, 2, xd, NULL);
    gb_const(g, "w", KILN_F32, 2, wd, -1, 1);
    gb_node(g, KILN_OP_MatMul, "mm", "x,w", "a");
    gb_node(g, KILN_OP_Relu, "r", "a", "y");
    gb_output(g, "y");
    gb_finish(g);
    ck_assert_int_eq(select(g, KILN_PREC_FP16, false), 0);
    for (int ni = 0; ni < g->n_nodes; ni++) ck_assert_int_eq(g->nodes[ni].n_attrs, 0);
    kiln_graph_free(g);
}
END_TEST

/* Depthwise convs: NHWC at fp16, no gain at tf32, so a depthwise-only region with borders
 * stays NCHW at tf32. */
START_TEST(depthwise_by_precision) {
    kiln_precision ps[2] = {KILN_PREC_FP16, KILN_PREC_TF32};
    for (int i = 0; i < 2; i++) {
        kiln_graph *g = kiln_graph_new();
        int64_t xd[4] = {1, 32, 8, 8}, wd[4] = {32, 1, 3, 3}, wp[4] = {32, 32, 1, 1};
        gb_input(g, "x", KILN_F32, 4, xd, NULL);
        gb_const(g, "wd", KILN_F32, 4, wd, -0.2, 0.2);
        gb_const(g, "wp", KILN_F32, 4, wp, -0.2, 0.2);
        int64_t pads[4] = {1, 1, 1, 1};
        kiln_node *dw = gb_node(g, KILN_OP_Conv, "dw", "x,wd", "a");
        kiln_node_set_ints(dw, "pads", pads, 4);
        kiln_node_set_int(dw, "group", 32);
        kiln_node *cl = gb_node(g, KILN_OP_Clip, "relu6", "a", "b");
        (void)cl;
        gb_node(g, KILN_OP_Flatten, "fl", "b", "y");
        gb_output(g, "y");
        gb_finish(g);
        select(g, ps[i], true);
        /* fp16: gain B = 2*2048 elements vs 2 conversions of 2048 each: not worth it alone */
        ck_assert_int_eq(val(g, "a")->layout, KILN_LAYOUT_NCHW);
        kiln_graph_free(g);
        /* with a pointwise conv after it, the region pays off (tf32: the pointwise conv alone) */
        g = kiln_graph_new();
        gb_input(g, "x", KILN_F32, 4, xd, NULL);
        gb_const(g, "wd", KILN_F32, 4, wd, -0.2, 0.2);
        gb_const(g, "wp", KILN_F32, 4, wp, -0.2, 0.2);
        dw = gb_node(g, KILN_OP_Conv, "dw", "x,wd", "a");
        kiln_node_set_ints(dw, "pads", pads, 4);
        kiln_node_set_int(dw, "group", 32);
        gb_node(g, KILN_OP_Conv, "pw", "a,wp", "b");
        gb_node(g, KILN_OP_Transpose, "tr", "b", "y"); /* not a view (a Flatten would pin NCHW) */
        gb_output(g, "y");
        gb_finish(g);
        select(g, ps[i], true);
        ck_assert_int_eq(val(g, "a")->layout, KILN_LAYOUT_NHWC); /* 2.5B of the pointwise conv pays */
        kiln_graph_free(g);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("pass_select_layout");
    TCase *tc = tcase_create("layout");
    tcase_add_test(tc, fp16_region_is_nhwc);
    tcase_add_test(tc, tf32_and_int8_also_nhwc);
    tcase_add_test(tc, fp32_stays_nchw);
    tcase_add_test(tc, region_not_worth_its_conversions);
    tcase_add_test(tc, reshape_splits_regions);
    tcase_add_test(tc, broadcast_operands);
    tcase_add_test(tc, fused_group_takes_anchor_layout);
    tcase_add_test(tc, no_4d_activations_no_change);
    tcase_add_test(tc, depthwise_by_precision);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
