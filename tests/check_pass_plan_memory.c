/* check_pass_plan_memory.c — plan-memory: liveness, best-fit offsets, views, in-place reuse
 * (and where it must not happen), the plan checker (which must catch broken plans), and real
 * models: light resnet50 with the other passes off and on. */
#include "graph_builder.h"

#include <stdio.h>

#define AL(x) (((x) + 255) / 256 * 256)

static const kiln_value *val(const kiln_graph *g, const char *name) {
    int v = kiln_graph_find_value(g, name);
    ck_assert_msg(v >= 0, "no value '%s'", name);
    return &g->values[v];
}
static int vid(const kiln_graph *g, const char *name) {
    int v = kiln_graph_find_value(g, name);
    ck_assert_msg(v >= 0, "no value '%s'", name);
    return v;
}

/* Runs plan-memory on g, checks the plan, the structure and the numbers are unchanged. */
static void plan(kiln_graph *g) {
    kiln_graph *before = kiln_graph_clone(g);
    ck_assert_ptr_nonnull(before);
    char ops[4096];
    snprintf(ops, sizeof ops, "%s", gb_ops(g));
    ck_assert(gb_run_pass(g, "plan-memory", KILN_PREC_FP32));
    ck_assert_msg(kiln_memory_plan_check(g) == KILN_OK, "%s", kiln_last_error());
    ck_assert_str_eq(gb_ops(g), ops);
    gb_assert_same(before, g, 2, 1e-5);
    kiln_graph_free(before);
    /* a second run plans the same: no change */
    ck_assert(!gb_run_pass(g, "plan-memory", KILN_PREC_FP32));
}

static const int64_t D4[4] = {1, 8, 4, 4}; /* 512 bytes of f32 */

START_TEST(chain_in_place) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 4, D4, NULL);
    gb_node(g, KILN_OP_Exp, "e", "x", "a");
    gb_node(g, KILN_OP_Relu, "r", "a", "b");
    gb_node(g, KILN_OP_Neg, "n", "b", "c");
    gb_output(g, "c");
    gb_finish(g);
    plan(g);
    ck_assert_int_eq(val(g, "a")->alias_of, -1); /* x is a graph input: never overwritten */
    ck_assert_int_eq(val(g, "b")->alias_of, vid(g, "a"));
    ck_assert_int_eq(val(g, "c")->alias_of, vid(g, "b"));
    ck_assert_int_eq(val(g, "c")->arena_offset, val(g, "a")->arena_offset);
    ck_assert_int_eq(g->arena_bytes, 512);
    ck_assert_int_eq(kiln_memory_plan_intermediate_bytes(g), 3 * 512);
    ck_assert_int_eq(val(g, "x")->arena_offset, -1);
    kiln_graph_free(g);
}
END_TEST

START_TEST(input_still_used_is_not_reused) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 4, D4, NULL);
    gb_node(g, KILN_OP_Exp, "e", "x", "a");
    gb_node(g, KILN_OP_Relu, "r", "a", "b"); /* a is read again by the Add */
    gb_node(g, KILN_OP_Add, "add", "a,b", "c");
    gb_output(g, "c");
    gb_finish(g);
    plan(g);
    ck_assert_int_eq(val(g, "b")->alias_of, -1);
    ck_assert_int_ne(val(g, "b")->arena_offset, val(g, "a")->arena_offset);
    ck_assert_int_eq(val(g, "c")->alias_of, vid(g, "a")); /* both die at the Add: the first is taken */
    ck_assert_int_eq(g->arena_bytes, 2 * 512);
    kiln_graph_free(g);
}
END_TEST

START_TEST(graph_output_is_not_reused) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 4, D4, NULL);
    gb_node(g, KILN_OP_Exp, "e", "x", "a");
    gb_node(g, KILN_OP_Relu, "r", "a", "b");
    gb_output(g, "a");
    gb_output(g, "b");
    gb_finish(g);
    plan(g);
    ck_assert_int_eq(val(g, "b")->alias_of, -1);
    ck_assert_int_eq(g->arena_bytes, 2 * 512);
    kiln_graph_free(g);
}
END_TEST

START_TEST(size_or_dtype_change_is_not_in_place) {
    kiln_graph *g = kiln_graph_new();
    int64_t dc[4] = {1, 8, 1, 1};
    gb_input(g, "x", KILN_F32, 4, D4, NULL);
    gb_input(g, "s", KILN_F32, 4, dc, NULL);
    gb_node(g, KILN_OP_Exp, "e", "x", "a");
    gb_node(g, KILN_OP_Neg, "ns", "s", "sc");    /* [1,8,1,1] */
    gb_node(g, KILN_OP_Mul, "m", "sc,a", "b");   /* broadcast: only a (same size) can be overwritten */
    kiln_node *c = gb_node(g, KILN_OP_Cast, "c", "b", "h");
    kiln_node_set_int(c, "to", KILN_F16);        /* 2-byte elements: not in place */
    gb_output(g, "h");
    gb_finish(g);
    plan(g);
    ck_assert_int_eq(val(g, "b")->alias_of, vid(g, "a"));
    ck_assert_int_eq(val(g, "h")->alias_of, -1);
    ck_assert_int_ne(val(g, "h")->arena_offset, val(g, "b")->arena_offset);
    kiln_graph_free(g);
}
END_TEST

START_TEST(views_alias_and_extend_lifetime) {
    kiln_graph *g = kiln_graph_new();
    int64_t shp[2] = {1, 128};
    gb_input(g, "x", KILN_F32, 4, D4, NULL);
    gb_const_i64(g, "shape", 2, shp);
    gb_node(g, KILN_OP_Exp, "e", "x", "a");
    gb_node(g, KILN_OP_Reshape, "rs", "a,shape", "r");
    gb_node(g, KILN_OP_Sigmoid, "sg", "x", "u");       /* allocated while a (via r) is alive */
    gb_node(g, KILN_OP_Relu, "re", "r", "s");          /* in place over the view's storage */
    gb_node(g, KILN_OP_Reshape, "rx", "x,shape", "xv"); /* a view of a graph input: no arena */
    gb_node(g, KILN_OP_Add, "ad", "s,xv", "o1");
    gb_node(g, KILN_OP_Mul, "mu", "u,u", "o2");
    gb_output(g, "o1");
    gb_output(g, "o2");
    gb_finish(g);
    plan(g);
    ck_assert_int_eq(val(g, "r")->alias_of, vid(g, "a"));
    ck_assert_int_eq(val(g, "r")->arena_offset, val(g, "a")->arena_offset);
    ck_assert_int_ne(val(g, "u")->arena_offset, val(g, "a")->arena_offset);
    ck_assert_int_eq(val(g, "s")->alias_of, vid(g, "r"));
    ck_assert_int_eq(val(g, "xv")->alias_of, vid(g, "x"));
    ck_assert_int_eq(val(g, "xv")->arena_offset, -1);
    /* views do not count as intermediates of their own: a, u, s, o1, o2 */
    ck_assert_int_eq(kiln_memory_plan_intermediate_bytes(g), 5 * 512);
    ck_assert_int_eq(g->arena_bytes, 2 * 512);
    kiln_graph_free(g);
}
END_TEST

/* x -> a -> {sigmoid b, tanh c} -> add d -> relu e: two buffers suffice. */
START_TEST(diamond) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 4, D4, NULL);
    gb_node(g, KILN_OP_Exp, "e", "x", "a");
    gb_node(g, KILN_OP_Sigmoid, "s", "a", "b");
    gb_node(g, KILN_OP_Tanh, "t", "a", "c");
    gb_node(g, KILN_OP_Add, "add", "b,c", "d");
    gb_node(g, KILN_OP_Relu, "r", "d", "y");
    gb_output(g, "y");
    gb_finish(g);
    plan(g);
    ck_assert_int_eq(val(g, "b")->alias_of, -1);
    ck_assert_int_eq(val(g, "c")->alias_of, vid(g, "a"));
    ck_assert_int_eq(val(g, "d")->alias_of, vid(g, "b"));
    ck_assert_int_eq(g->arena_bytes, 2 * 512);
    kiln_graph_free(g);
}
END_TEST

/* Best fit: a small hole is reused by a small tensor, not by a big one; the big one goes to
 * the larger hole. */
START_TEST(best_fit) {
    kiln_graph *g = kiln_graph_new();
    int64_t big[4] = {1, 8, 8, 8}, small[4] = {1, 8, 4, 4};
    gb_input(g, "x", KILN_F32, 4, big, NULL);
    gb_input(g, "y", KILN_F32, 4, small, NULL);
    gb_node(g, KILN_OP_Exp, "e1", "x", "A");   /* 2048 */
    gb_node(g, KILN_OP_Exp, "e2", "y", "B");   /* 512 */
    gb_node(g, KILN_OP_Neg, "n1", "x", "C");   /* 2048, keeps the arena wide */
    gb_node(g, KILN_OP_Sigmoid, "s1", "A", "A2");  /* A and B die here */
    gb_node(g, KILN_OP_Add, "a1", "B,B", "B2");   /* in place over B */
    gb_node(g, KILN_OP_Tanh, "t1", "y", "S");      /* 512: best fit */
    gb_node(g, KILN_OP_Add, "fin", "A2,C", "Z");
    gb_node(g, KILN_OP_Mul, "fin2", "B2,S", "W");
    gb_output(g, "Z");
    gb_output(g, "W");
    gb_finish(g);
    plan(g);
    ck_assert_int_le(g->arena_bytes, 2048 * 2 + 512 * 2);
    kiln_graph_free(g);
}
END_TEST

/* Conv -> relu -> [conv + residual add + relu fused]: the fused group writes over its residual
 * input (elementwise in the body), never over the conv's input. */
static kiln_graph *residual(bool residual_is_conv_input) {
    kiln_graph *g = kiln_graph_new();
    int64_t wd[4] = {8, 8, 3, 3}, bd[1] = {8};
    gb_input(g, "x", KILN_F32, 4, D4, NULL);
    gb_const(g, "w1", KILN_F32, 4, wd, -0.3, 0.3);
    gb_const(g, "w2", KILN_F32, 4, wd, -0.3, 0.3);
    gb_const(g, "b2", KILN_F32, 1, bd, -0.1, 0.1);
    int64_t pads[4] = {1, 1, 1, 1};
    kiln_node *c1 = gb_node(g, KILN_OP_Conv, "c1", "x,w1", "a");
    kiln_node_set_ints(c1, "pads", pads, 4);
    gb_node(g, KILN_OP_Relu, "r1", "a", "b");
    gb_node(g, KILN_OP_Exp, "ex", "b", "skip");
    kiln_node *c2 = gb_node(g, KILN_OP_Conv, "c2", residual_is_conv_input ? "skip,w2,b2" : "b,w2,b2", "c");
    kiln_node_set_ints(c2, "pads", pads, 4);
    gb_node(g, KILN_OP_Add, "add", "c,skip", "d");
    gb_node(g, KILN_OP_Relu, "r2", "d", "y");
    gb_output(g, "y");
    gb_finish(g);
    int set[3] = {3, 4, 5}, f;
    ck_assert_int_eq(g->nodes[3].op, KILN_OP_Conv);
    ck_assert_msg(kiln_graph_fuse(g, set, 3, "conv_epilogue", &f) == KILN_OK, "%s", kiln_last_error());
    gb_finish(g);
    return g;
}

START_TEST(residual_in_place) {
    kiln_graph *g = residual(false);
    ck_assert_str_eq(gb_ops(g), "Conv,Relu,Exp,Fused:conv_epilogue[Conv+Add+Relu]");
    plan(g);
    ck_assert_int_eq(val(g, "b")->alias_of, vid(g, "a"));
    ck_assert_int_eq(val(g, "y")->alias_of, vid(g, "skip")); /* not b: the conv reads b */
    ck_assert_int_eq(g->arena_bytes, 2 * 512);
    kiln_graph_free(g);
}
END_TEST

START_TEST(residual_that_feeds_the_conv_is_not_overwritten) {
    kiln_graph *g = residual(true);
    plan(g);
    ck_assert_int_eq(val(g, "y")->alias_of, -1);
    kiln_graph_free(g);
}
END_TEST

START_TEST(symbolic_batch_planned_as_one) {
    kiln_graph *g = kiln_graph_new();
    int64_t d[2] = {-1, 64};
    gb_input(g, "x", KILN_F32, 2, d, "N");
    gb_node(g, KILN_OP_Exp, "e", "x", "a");
    gb_node(g, KILN_OP_Exp, "e2", "x", "b");
    gb_node(g, KILN_OP_Add, "ad", "a,b", "y");
    gb_output(g, "y");
    gb_finish(g);
    plan(g);
    ck_assert_int_eq(g->arena_bytes, 2 * 256);
    kiln_graph_free(g);
}
END_TEST

/* The checker must reject broken plans. */
START_TEST(checker_catches_errors) {
    kiln_graph *g = kiln_graph_new();
    gb_input(g, "x", KILN_F32, 4, D4, NULL);
    gb_node(g, KILN_OP_Exp, "e", "x", "a");
    gb_node(g, KILN_OP_Relu, "r", "a", "b");
    gb_node(g, KILN_OP_Add, "add", "a,b", "c");
    gb_output(g, "c");
    gb_finish(g);
    plan(g);
    kiln_value *a = &g->values[vid(g, "a")], *b = &g->values[vid(g, "b")];
    int64_t bo = b->arena_offset;
    b->arena_offset = a->arena_offset; /* a and b are live together */
    ck_assert_int_ne(kiln_memory_plan_check(g), KILN_OK);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "overlap"));
    b->arena_offset = a->arena_offset;
    b->alias_of = vid(g, "a"); /* in place over a, which the Add still reads */
    ck_assert_int_ne(kiln_memory_plan_check(g), KILN_OK);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "in place"));
    b->alias_of = -1;
    b->arena_offset = bo + 8; /* unaligned */
    ck_assert_int_ne(kiln_memory_plan_check(g), KILN_OK);
    b->arena_offset = -1; /* unplanned */
    ck_assert_int_ne(kiln_memory_plan_check(g), KILN_OK);
    b->arena_offset = bo;
    ck_assert_int_eq(kiln_memory_plan_check(g), KILN_OK);
    g->arena_bytes = 512; /* too small for two buffers */
    ck_assert_int_ne(kiln_memory_plan_check(g), KILN_OK);
    kiln_graph_free(g);
}
END_TEST

/* ------------------------------------------------------- real models -- */
static int onnx_data(char *buf, size_t len) {
    FILE *p = popen("python3 -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "
                    "\"backend\", \"test\", \"data\"))' 2>/dev/null",
                    "r");
    if (!p) return 0;
    int ok = fgets(buf, (int)len, p) != NULL;
    pclose(p);
    if (!ok) return 0;
    buf[strcspn(buf, "\n")] = 0;
    return buf[0] != 0;
}

static kiln_graph *load_light(const char *name) {
    char dir[1024], path[1200];
    if (!onnx_data(dir, sizeof dir)) return NULL;
    snprintf(path, sizeof path, "%s/light/%s", dir, name);
    kiln_graph *g = NULL;
    if (kiln_model_load(path, &g)) {
        fprintf(stderr, "note: %s not loaded (%s); real-model test skipped\n", path, kiln_last_error());
        return NULL;
    }
    return g;
}

/* The light models carry weights as ConstantOfShape nodes: make them constants (what
 * fold-constants does) so that the arena holds activations only. */
static void fold_weights(kiln_graph *g) {
    for (int ni = 0; ni < g->n_nodes; ni++) {
        kiln_node *n = &g->nodes[ni];
        if (n->op != KILN_OP_ConstantOfShape || !g->values[n->inputs[0]].data) continue;
        kiln_tensor *in = g->values[n->inputs[0]].data, *out = NULL;
        ck_assert_int_eq(kiln_eval_node(n, &in, 1, &out, 1), KILN_OK);
        g->values[n->outputs[0]].data = out;
        g->values[n->outputs[0]].flags |= KILN_VALUE_INITIALIZER;
        kiln_graph_remove_node(g, ni);
    }
    gb_finish(g);
}

static bool has_op(const kiln_graph *g, kiln_op op) {
    for (int ni = 0; ni < g->n_nodes; ni++)
        if (g->nodes[ni].op == op) return true;
    return false;
}

START_TEST(resnet50_passes_off_and_on) {
    kiln_graph *g = load_light("light_resnet50.onnx");
    if (!g) return;
    /* passes off: memory planning alone, on the imported graph */
    kiln_graph *raw = kiln_graph_clone(g);
    ck_assert_ptr_nonnull(raw);
    ck_assert(gb_run_pass(raw, "plan-memory", KILN_PREC_FP32));
    ck_assert_msg(kiln_memory_plan_check(raw) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_lt(raw->arena_bytes, kiln_memory_plan_intermediate_bytes(raw));
    kiln_graph_free(raw);
    /* weights as constants: the bound, arena <= 40% of the intermediates at batch 1 */
    kiln_graph *folded = kiln_graph_clone(g);
    ck_assert_ptr_nonnull(folded);
    fold_weights(folded);
    ck_assert(gb_run_pass(folded, "select-layout,plan-memory", KILN_PREC_FP16));
    ck_assert_msg(kiln_memory_plan_check(folded) == KILN_OK, "%s", kiln_last_error());
    int64_t sum = kiln_memory_plan_intermediate_bytes(folded);
    ck_assert_msg(folded->arena_bytes * 10 <= sum * 4, "arena %lld, intermediates %lld",
                  (long long)folded->arena_bytes, (long long)sum);
    kiln_graph_free(folded);
    /* passes on: the whole pipeline at -O2 and -O3, fp32 and fp16 */
    for (int k = 0; k < 2; k++) {
        kiln_graph *o = kiln_graph_clone(g);
        ck_assert_ptr_nonnull(o);
        kiln_pipeline_opts opts;
        kiln_pipeline_opts_init(&opts);
        opts.ctx.opt_level = 2 + k;
        opts.ctx.precision = k ? KILN_PREC_FP16 : KILN_PREC_FP32;
        ck_assert_msg(kiln_pipeline_run(o, &opts, NULL, 0, NULL) == KILN_OK, "%s", kiln_last_error());
        ck_assert_msg(kiln_memory_plan_check(o) == KILN_OK, "%s", kiln_last_error());
        sum = kiln_memory_plan_intermediate_bytes(o);
        ck_assert_int_lt(o->arena_bytes, sum);
        if (!has_op(o, KILN_OP_ConstantOfShape)) /* once weights are folded by the pipeline */
            ck_assert_msg(o->arena_bytes * 10 <= sum * 4, "arena %lld, intermediates %lld", (long long)o->arena_bytes,
                          (long long)sum);
        kiln_graph_free(o);
    }
    kiln_graph_free(g);
}
END_TEST

START_TEST(other_light_models_plan_validly) {
    const char *models[] = {"light_densenet121.onnx", "light_inception_v1.onnx", "light_squeezenet.onnx",
                            "light_shufflenet.onnx"};
    for (int m = 0; m < 4; m++) {
        kiln_graph *g = load_light(models[m]);
        if (!g) return;
        fold_weights(g);
        ck_assert(gb_run_pass(g, "select-layout,plan-memory", KILN_PREC_FP16));
        ck_assert_msg(kiln_memory_plan_check(g) == KILN_OK, "%s: %s", models[m], kiln_last_error());
        ck_assert_int_lt(g->arena_bytes, kiln_memory_plan_intermediate_bytes(g));
        kiln_graph_free(g);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("pass_plan_memory");
    TCase *tc = tcase_create("plan");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, chain_in_place);
    tcase_add_test(tc, input_still_used_is_not_reused);
    tcase_add_test(tc, graph_output_is_not_reused);
    tcase_add_test(tc, size_or_dtype_change_is_not_in_place);
    tcase_add_test(tc, views_alias_and_extend_lifetime);
    tcase_add_test(tc, diamond);
    tcase_add_test(tc, best_fit);
    tcase_add_test(tc, residual_in_place);
    tcase_add_test(tc, residual_that_feeds_the_conv_is_not_overwritten);
    tcase_add_test(tc, symbolic_batch_planned_as_one);
    tcase_add_test(tc, checker_catches_errors);
    tcase_add_test(tc, resnet50_passes_off_and_on);
    tcase_add_test(tc, other_light_models_plan_validly);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
