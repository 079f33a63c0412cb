/* check_tune.c — autotuning without a GPU: the tuning cache's text format (round trip, atomic
 * save, other devices' entries, corrupt files), the choice log and its bundle metadata,
 * "kiln_tile" and tune_lookup changing the generated tiles, the heuristic as the default,
 * determinism of codegen, and the layer_costs metadata through the bundle writer/reader.
 * (Timing on the GPU: tests/codegen/cli_tune.sh with a GPU.) */
#include "codegen/tune.h"
#include "graph_builder.h"

#include <stdio.h>
#include <unistd.h>

static const kiln_tune_device DEV_A = {"NVIDIA H100 80GB HBM3", "9.0", "12.4", "12040"};
static const kiln_tune_device DEV_B = {"NVIDIA A100-SXM4-80GB", "8.0", "12.4", "12040"};

START_TEST(cache_round_trip) {
    kiln_tune_cache c;
    kiln_tune_cache_init(&c);
    ck_assert_int_eq(kiln_tune_cache_put(&c, &DEV_A, "conv_mma:f16:1,64", "64x64x32/32x32", 12.5), KILN_OK);
    ck_assert_int_eq(kiln_tune_cache_put(&c, &DEV_A, "gemm_mma:f16:33,2", "16x32x32/16x8", 3.25), KILN_OK);
    ck_assert_int_eq(kiln_tune_cache_put(&c, &DEV_B, "conv_mma:f16:1,64", "32x32x32/16x16", 20), KILN_OK);
    /* replacing keeps one entry */
    ck_assert_int_eq(kiln_tune_cache_put(&c, &DEV_A, "conv_mma:f16:1,64", "64x32x32/32x16", 11.0), KILN_OK);
    ck_assert_int_eq(c.n, 3);
    /* fields with tabs / newlines, empty fields and bad times are refused */
    ck_assert_int_eq(kiln_tune_cache_put(&c, &DEV_A, "a\tb", "x", 1), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_tune_cache_put(&c, &DEV_A, "sig", "", 1), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_tune_cache_put(&c, &DEV_A, "sig", "x", -1), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(c.n, 3);
    char *text;
    ck_assert_int_eq(kiln_tune_cache_format(&c, &text), KILN_OK);
    ck_assert_msg(!strncmp(text, "kiln-tuning-cache 1\n", 20), "%s", text);
    kiln_tune_cache d;
    kiln_tune_cache_init(&d);
    ck_assert_msg(kiln_tune_cache_parse(&d, text, strlen(text), "mem") == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(d.n, 3);
    const kiln_tune_cache_entry *e = kiln_tune_cache_find(&d, &DEV_A, "conv_mma:f16:1,64");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->choice, "64x32x32/32x16");
    ck_assert_double_eq_tol(e->us, 11.0, 1e-9);
    /* the same cache prints the same file, whatever the insertion order */
    char *text2;
    ck_assert_int_eq(kiln_tune_cache_format(&d, &text2), KILN_OK);
    ck_assert_str_eq(text, text2);
    /* another device's entries: kept, not answered */
    ck_assert_int_eq(kiln_tune_cache_foreign(&d, &DEV_A), 1);
    ck_assert_int_eq(kiln_tune_cache_foreign(&d, &DEV_B), 2);
    kiln_tune_device other_driver = DEV_A;
    snprintf(other_driver.driver, sizeof other_driver.driver, "12080");
    ck_assert_ptr_null(kiln_tune_cache_find(&d, &other_driver, "conv_mma:f16:1,64"));
    ck_assert_ptr_null(kiln_tune_cache_find(&d, &DEV_A, "conv_mma:f16:1,65"));
    kiln_tune_answer ans = {&d, &DEV_B, NULL, NULL};
    ck_assert_str_eq(kiln_tune_answer_lookup(&ans, "conv_mma:f16:1,64"), "32x32x32/16x16");
    ck_assert_ptr_null(kiln_tune_answer_lookup(&ans, "gemm_mma:f16:33,2"));
    ans.force = "16x32x32/16x8"; /* kiln build --tile */
    ck_assert_str_eq(kiln_tune_answer_lookup(&ans, "gemm_mma:f16:33,2"), "16x32x32/16x8");
    /* ... and the choices it answers are logged as forced, not tuned (the summary line, the bundle's metadata) */
    kiln_tune_log flog;
    kiln_tune_log_init(&flog);
    ans.log = &flog;
    const char *fnames[2] = {"32x32x32/16x16", "16x32x32/16x8"};
    kiln_tune_answer_record(&ans, "g0", "gemm_mma:f16:33,2", fnames, 2, 1, KILN_TUNE_LOOKUP);
    kiln_tune_answer_record(&ans, "g1", "gemm_mma:f16:34,2", fnames, 2, 0, KILN_TUNE_HEURISTIC); /* (not a candidate) */
    ck_assert_int_eq(kiln_tune_log_count(&flog, KILN_TUNE_FORCED, true), 1);
    ck_assert_int_eq(kiln_tune_log_count(&flog, KILN_TUNE_LOOKUP, true), 0);
    ck_assert_int_eq(kiln_tune_log_count(&flog, KILN_TUNE_HEURISTIC, true), 1);
    kiln_tune_log_free(&flog);
    free(text);
    free(text2);
    kiln_tune_cache_free(&c);
    kiln_tune_cache_free(&d);
}
END_TEST

START_TEST(cache_file) {
    char dir[] = "/tmp/kiln_tune_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], tmp[300];
    snprintf(path, sizeof path, "%s/cache.txt", dir);
    kiln_tune_cache c;
    kiln_tune_cache_init(&c);
    ck_assert_int_eq(kiln_tune_cache_load(&c, path), KILN_OK); /* missing: empty */
    ck_assert_int_eq(c.n, 0);
    ck_assert_int_eq(kiln_tune_cache_put(&c, &DEV_A, "sig one", "a", 1.5), KILN_OK);
    ck_assert_int_eq(kiln_tune_cache_save(&c, path), KILN_OK);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    ck_assert_int_ne(access(tmp, F_OK), 0); /* the temporary file was renamed */
    kiln_tune_cache d;
    kiln_tune_cache_init(&d);
    ck_assert_int_eq(kiln_tune_cache_load(&d, path), KILN_OK);
    ck_assert_int_eq(d.n, 1);
    ck_assert_str_eq(kiln_tune_cache_find(&d, &DEV_A, "sig one")->choice, "a");
    kiln_tune_cache_free(&d);
    /* corrupt files are errors that name the line */
    static const char *const bad[] = {
        "",                                                  /* empty */
        "not a cache\n",                                     /* header */
        "kiln-tuning-cache 2\n",                             /* another version */
        "kiln-tuning-cache 1\nGPU\t9.0\t12.4\t1\tsig\tx\n",   /* 6 fields */
        "kiln-tuning-cache 1\nGPU\t9.0\t12.4\t1\tsig\tx\t1\t2\n", /* 8 fields */
        "kiln-tuning-cache 1\nGPU\t9.0\t12.4\t1\tsig\tx\tfast\n",  /* time */
        "kiln-tuning-cache 1\nGPU\t9.0\t12.4\t1\tsig\tx\t-3\n",    /* negative time */
        "kiln-tuning-cache 1\nGPU\t9.0\t12.4\t1\t\tx\t3\n",        /* empty signature */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(bad[i], f);
        fclose(f);
        kiln_tune_cache_init(&d);
        ck_assert_msg(kiln_tune_cache_load(&d, path) == KILN_ERR_PARSE, "case %zu accepted", i);
        ck_assert_msg(strstr(kiln_last_error(), "cache.txt"), "%s", kiln_last_error());
        kiln_tune_cache_free(&d);
    }
    /* comments, blank lines and CRLF are fine */
    FILE *f = fopen(path, "w");
    fputs("kiln-tuning-cache 1\r\n# c\r\n\r\nGPU X\t9.0\t12.4\t1\tsig\tx\t3.5\r\n", f);
    fclose(f);
    kiln_tune_cache_init(&d);
    ck_assert_msg(kiln_tune_cache_load(&d, path) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(d.n, 1);
    ck_assert_str_eq(d.e[0].dev.gpu, "GPU X");
    kiln_tune_cache_free(&d);
    kiln_tune_cache_free(&c);
    remove(path);
    rmdir(dir);
}
END_TEST

/* Conv 16 -> 70 channels (mma), a Gemm and a MatMul: three tunable kernels at tf32/fp16. */
static kiln_graph *tune_graph(void) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {2, 16, 20, 20}, wd[4] = {70, 16, 3, 3}, bd = 70;
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    gb_const(g, "w", KILN_F32, 4, wd, -0.5, 0.5);
    gb_const(g, "b", KILN_F32, 1, &bd, -0.5, 0.5);
    kiln_node *c1 = gb_node(g, KILN_OP_Conv, "c1", "x,w,b", "y");
    int64_t pads[4] = {1, 1, 1, 1};
    ck_assert_int_eq(kiln_node_set_ints(c1, "pads", pads, 4), KILN_OK);
    gb_node(g, KILN_OP_Relu, "r1", "y", "a");
    gb_output(g, "a");
    int64_t ad[3] = {3, 4, 40}, md[2] = {40, 48};
    gb_input(g, "ma", KILN_F32, 3, ad, NULL);
    gb_const(g, "bm", KILN_F32, 2, md, -1, 1);
    gb_node(g, KILN_OP_MatMul, "mm", "ma,bm", "mmo");
    gb_output(g, "mmo");
    gb_finish(g);
    kiln_pipeline_opts po;
    kiln_pipeline_opts_init(&po);
    ck_assert_msg(kiln_pipeline_run(g, &po, NULL, 0, NULL) == KILN_OK, "%s", kiln_last_error());
    return g;
}

typedef struct lookup_ctx {
    const char *answer;
    kiln_tune_log *log;
} lookup_ctx;
static const char *fixed_lookup(void *ctx, const char *sig) {
    (void)sig;
    return ((lookup_ctx *)ctx)->answer;
}
static void fixed_record(void *ctx, const char *group, const char *signature, const char *const *names, int n,
                         int chosen, kiln_tune_source source) {
    kiln_tune_log_record(((lookup_ctx *)ctx)->log, group, signature, names, n, chosen, source);
}

/* codegen (no NVRTC) at fp16; returns the generated source, fills log and the tiles metadata */
static uint8_t *gen(const kiln_graph *g, const char *answer, kiln_tune_log *log, char **tiles, size_t *len) {
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = KILN_PREC_FP16;
    o.compile = false;
    lookup_ctx lc = {answer, log};
    o.tune_lookup = fixed_lookup;
    o.tune_record = fixed_record;
    o.tune_ctx = &lc;
    kiln_bundle *b = kiln_bundle_new();
    char *src = NULL;
    ck_assert_msg(kiln_codegen_build(g, &o, b, &src) == KILN_OK, "%s", kiln_last_error());
    const char *t = kiln_bundle_get_meta(b, "tiles");
    ck_assert_ptr_nonnull(t);
    *tiles = strdup(t);
    ck_assert_ptr_nonnull(src);
    *len = strlen(src);
    kiln_bundle_free(b);
    return (uint8_t *)src;
}

START_TEST(choices_and_forcing) {
    kiln_graph *g = tune_graph();
    kiln_tune_log log;
    kiln_tune_log_init(&log);
    char *tiles_h, *tiles_h2, *tiles_l, *tiles_f;
    size_t len1, len2, len3;
    uint8_t *b1 = gen(g, NULL, &log, &tiles_h, &len1);
    /* the heuristic by default: every tunable kernel says so */
    ck_assert_int_ge(log.n, 2);
    int tunable = kiln_tune_log_count(&log, KILN_TUNE_HEURISTIC, true);
    ck_assert_int_eq(tunable, log.n);
    ck_assert_int_eq(kiln_tune_log_count(&log, KILN_TUNE_LOOKUP, false), 0);
    ck_assert_int_eq(kiln_tune_log_signatures(&log), log.n);
    /* the 6 mma tiles; a small-M GEMM (the MatMul, M = 4) also has rows_w4 (kernels/gemv.cuh) */
    for (int i = 0; i < log.n; i++) {
        bool gemm = !strncmp(log.e[i].signature, "gemm_mma:", 9);
        ck_assert_int_eq(log.e[i].n, gemm ? 7 : 6);
        if (gemm) ck_assert_str_eq(log.e[i].names[6], "rows_w4");
    }
    int ci = -1;
    for (int i = 0; i < log.n; i++)
        if (!strncmp(log.e[i].signature, "conv_mma:mma_f16:", 17)) ci = i;
    ck_assert_int_ge(ci, 0);
    ck_assert_str_eq(log.e[ci].names[log.e[ci].chosen], "32x32x32/16x16"); /* M = 70, a small grid */
    char *meta;
    ck_assert_int_eq(kiln_tune_log_meta(&log, &meta), KILN_OK);
    ck_assert_msg(strstr(meta, "=32x32x32/16x16@heuristic;"), "%s", meta);
    free(meta);
    kiln_tune_log_free(&log);
    /* determinism: the same graph gives the same bytes */
    kiln_tune_log_init(&log);
    uint8_t *b2 = gen(g, NULL, &log, &tiles_h2, &len2);
    ck_assert_uint_eq(len1, len2);
    ck_assert_int_eq(memcmp(b1, b2, len1), 0);
    kiln_tune_log_free(&log);
    /* tune_lookup: every kernel takes the answer, and the generated tiles change */
    kiln_tune_log_init(&log);
    uint8_t *b3 = gen(g, "16x32x32/16x8", &log, &tiles_l, &len3);
    ck_assert_int_eq(kiln_tune_log_count(&log, KILN_TUNE_LOOKUP, true), log.n);
    ck_assert_msg(strstr(tiles_l, "f16:16x32x32/16x8"), "%s", tiles_l);
    ck_assert_str_ne(tiles_h, tiles_l);
    kiln_tune_log_free(&log);
    free(b3);
    /* an unknown answer (a stale cache) falls back to the heuristic */
    kiln_tune_log_init(&log);
    free(tiles_h2);
    b3 = gen(g, "128x512", &log, &tiles_h2, &len3);
    ck_assert_int_eq(kiln_tune_log_count(&log, KILN_TUNE_HEURISTIC, true), log.n);
    ck_assert_str_eq(tiles_h, tiles_h2);
    kiln_tune_log_free(&log);
    free(b3);
    /* kiln_tile on one node beats the lookup for that node only */
    kiln_node *conv = NULL;
    for (int i = 0; i < g->n_nodes && !conv; i++)
        if (g->nodes[i].op == KILN_OP_Fused || g->nodes[i].op == KILN_OP_Conv) conv = &g->nodes[i];
    ck_assert_ptr_nonnull(conv);
    ck_assert_int_eq(kiln_node_set_str(conv, "kiln_tile", "32x64x32/32x16"), KILN_OK);
    kiln_tune_log_init(&log);
    b3 = gen(g, "16x32x32/16x8", &log, &tiles_f, &len3);
    ck_assert_int_eq(kiln_tune_log_count(&log, KILN_TUNE_FORCED, true), 1);
    ck_assert_int_eq(kiln_tune_log_count(&log, KILN_TUNE_LOOKUP, true), log.n - 1);
    ck_assert_msg(strstr(tiles_f, "f16:32x64x32/32x16"), "%s", tiles_f);
    ck_assert_str_ne(tiles_f, tiles_l);
    ck_assert_int_eq(kiln_tune_log_meta(&log, &meta), KILN_OK);
    ck_assert_msg(strstr(meta, "@forced;") && strstr(meta, "@tuned;"), "%s", meta);
    free(meta);
    kiln_tune_log_free(&log);
    free(b1);
    free(b2);
    free(b3);
    free(tiles_h);
    free(tiles_h2);
    free(tiles_l);
    free(tiles_f);
    kiln_graph_free(g);
}
END_TEST

/* A strided 1x1 conv (ResNet's downsample) reads a quarter of its input: its layer's bytes count
 * those; a 3x3 stride-2 conv reads all of it (both fused with a Relu: the count goes through the
 * group's body). */
START_TEST(layer_costs_strided_input) {
    kiln_graph *g = kiln_graph_new();
    int64_t xd[4] = {2, 16, 20, 20}, w1[4] = {8, 16, 1, 1}, w3[4] = {8, 16, 3, 3};
    gb_input(g, "x", KILN_F32, 4, xd, NULL);
    gb_const(g, "w1", KILN_F32, 4, w1, -0.5, 0.5);
    gb_const(g, "w3", KILN_F32, 4, w3, -0.5, 0.5);
    kiln_node *c1 = gb_node(g, KILN_OP_Conv, "c1", "x,w1", "y1");
    kiln_node *c3 = gb_node(g, KILN_OP_Conv, "c3", "x,w3", "y3");
    int64_t st[2] = {2, 2}, pads[4] = {1, 1, 1, 1};
    ck_assert_int_eq(kiln_node_set_ints(c1, "strides", st, 2), KILN_OK);
    ck_assert_int_eq(kiln_node_set_ints(c3, "strides", st, 2), KILN_OK);
    ck_assert_int_eq(kiln_node_set_ints(c3, "pads", pads, 4), KILN_OK);
    gb_node(g, KILN_OP_Relu, "r1", "y1", "a1");
    gb_node(g, KILN_OP_Relu, "r3", "y3", "a3");
    gb_output(g, "a1");
    gb_output(g, "a3");
    gb_finish(g);
    kiln_pipeline_opts po;
    kiln_pipeline_opts_init(&po);
    ck_assert_msg(kiln_pipeline_run(g, &po, NULL, 0, NULL) == KILN_OK, "%s", kiln_last_error());
    char *costs;
    ck_assert_int_eq(kiln_tune_layer_costs(g, &costs), KILN_OK);
    int seen = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = &g->nodes[i];
        if (n->op != KILN_OP_Fused && n->op != KILN_OP_Conv) continue;
        const char *name = n->name && *n->name ? n->name : g->values[n->outputs[0]].name;
        uint64_t flops, bytes;
        ck_assert_msg(kiln_tune_layer_cost_find(costs, name, &flops, &bytes), "%s not in %s", name, costs);
        const bool one = flops == 2ull * 2 * 8 * 10 * 10 * 16; /* the 1x1 */
        ck_assert(one || flops == 2ull * 2 * 8 * 10 * 10 * 16 * 9);
        /* x (the 1x1: rows and columns 0, 2, ..., 18 of 20: a quarter) + w + y, fp32 */
        const uint64_t x = 4ull * 2 * 16 * 20 * 20 / (one ? 4 : 1), w = 4ull * 8 * 16 * (one ? 1 : 9), y = 4ull * 2 * 8 * 10 * 10;
        ck_assert_uint_eq(bytes, x + w + y);
        seen++;
    }
    ck_assert_int_eq(seen, 2);
    free(costs);
    kiln_graph_free(g);
}
END_TEST

START_TEST(layer_costs_round_trip) {
    kiln_graph *g = tune_graph();
    char *costs;
    ck_assert_int_eq(kiln_tune_layer_costs(g, &costs), KILN_OK);
    /* the conv group: 2 x (2*70*20*20 outputs) x (16*3*3) */
    uint64_t flops = 0, bytes = 0;
    const kiln_node *conv = NULL;
    for (int i = 0; i < g->n_nodes && !conv; i++)
        if (g->nodes[i].op == KILN_OP_Fused || g->nodes[i].op == KILN_OP_Conv) conv = &g->nodes[i];
    ck_assert_ptr_nonnull(conv);
    const char *name = conv->name && *conv->name ? conv->name : g->values[conv->outputs[0]].name;
    ck_assert_msg(kiln_tune_layer_cost_find(costs, name, &flops, &bytes), "%s not in %s", name, costs);
    ck_assert_uint_eq(flops, 2ull * 2 * 70 * 20 * 20 * 16 * 3 * 3);
    /* x + w + b + y, fp32 */
    ck_assert_uint_eq(bytes, 4ull * (2 * 16 * 20 * 20 + 70 * 16 * 9 + 70 + 2 * 70 * 20 * 20));
    char dup[300];
    snprintf(dup, sizeof dup, "%s@y", name); /* a layer named after a duplicate group */
    ck_assert(kiln_tune_layer_cost_find(costs, dup, &flops, &bytes));
    ck_assert(!kiln_tune_layer_cost_find(costs, "nope", &flops, &bytes));
    /* MatMul [3,4,40] x [40,48] */
    ck_assert(kiln_tune_layer_cost_find(costs, "mm", &flops, &bytes));
    ck_assert_uint_eq(flops, 2ull * 3 * 4 * 48 * 40);
    /* through the bundle writer and reader (strict validation) */
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = KILN_PREC_FP16;
    static const char *const arch[] = {"sm_80"};
    o.archs = arch;
    o.n_archs = 1;
    o.ptx = false;
#ifndef KILN_HAVE_CUDA
    return; /* an uncompiled bundle does not validate: nothing to round-trip */
#endif
    kiln_bundle *b = kiln_bundle_new();
    ck_assert_msg(kiln_codegen_build(g, &o, b, NULL) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(kiln_bundle_set_meta(b, "layer_costs", costs), KILN_OK);
    uint8_t *bytes_out;
    size_t len;
    ck_assert_msg(kiln_bundle_write_bytes(b, &bytes_out, &len) == KILN_OK, "%s", kiln_last_error());
    kiln_bundle *r = NULL;
    ck_assert_msg(kiln_bundle_read_bytes(bytes_out, len, "mem", &r) == KILN_OK, "%s", kiln_last_error());
    ck_assert_str_eq(kiln_bundle_get_meta(r, "layer_costs"), costs);
    /* every layer of the plan has its costs */
    for (int l = 0; l < r->n_layers; l++)
        ck_assert_msg(kiln_tune_layer_cost_find(costs, r->layers[l].name, &flops, &bytes), "layer %s", r->layers[l].name);
    kiln_bundle_free(r);
    kiln_bundle_free(b);
    free(bytes_out);
    free(costs);
    kiln_graph_free(g);
}
END_TEST

/* The tuner's split builds (kiln_codegen_opts.split_base): a candidate set compiles only the kernels that
 * differ from the heuristic build and runs the others from its module 0. Each launch must reach a kernel
 * with the same text as the whole-module build of that set; both modules are used; module 1 is compiled. */
typedef struct one_sig {
    const char *signature, *answer;
    kiln_tune_log *log;
} one_sig;
static const char *one_lookup(void *ctx, const char *sig) { /* answer for one signature only */
    const one_sig *o = ctx;
    return o->answer && !strcmp(sig, o->signature) ? o->answer : NULL;
}
static void one_record(void *ctx, const char *group, const char *signature, const char *const *names, int n, int chosen,
                       kiln_tune_source source) {
    kiln_tune_log_record(((one_sig *)ctx)->log, group, signature, names, n, chosen, source);
}
static int key_of(const kiln_codegen_base *bs, const char *name) {
    for (int i = 0; i < bs->n; i++)
        if (!strcmp(bs->names[i], name)) return i;
    return -1;
}
START_TEST(split_build_matches_whole) {
    kiln_graph *g = tune_graph();
    kiln_tune_log log;
    kiln_tune_log_init(&log);
    char *tiles;
    size_t len;
    free(gen(g, NULL, &log, &tiles, &len));
    free(tiles);
    const kiln_tune_entry *e = NULL;
    for (int i = 0; i < log.n && !e; i++)
        if (log.e[i].n > 1 && strncmp(log.e[i].signature, "gemm", 4)) e = &log.e[i];
    ck_assert_ptr_nonnull(e);
    const char *other = e->names[e->chosen == 0 ? 1 : 0]; /* a candidate set other than the heuristic's */
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = KILN_PREC_FP16;
    const char *arch[1] = {"sm_80"};
    o.archs = arch, o.n_archs = 1, o.ptx = false;
    kiln_tune_log log2;
    kiln_tune_log_init(&log2);
    one_sig lc = {e->signature, NULL, &log2};
    o.tune_lookup = one_lookup, o.tune_record = one_record, o.tune_ctx = &lc;
    kiln_codegen_base base, whole, own;
    memset(&base, 0, sizeof base), memset(&whole, 0, sizeof whole), memset(&own, 0, sizeof own);
    kiln_bundle *b0 = kiln_bundle_new(), *bw = kiln_bundle_new(), *bs = kiln_bundle_new();
    o.compile = false, o.base_out = &base; /* the heuristic build */
    ck_assert_msg(kiln_codegen_build(g, &o, b0, NULL) == KILN_OK, "%s", kiln_last_error());
    lc.answer = other, o.base_out = &whole; /* the set, whole */
    ck_assert_msg(kiln_codegen_build(g, &o, bw, NULL) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_ge(base.n, 2);
    ck_assert_ptr_nonnull(base.source);
#ifdef KILN_HAVE_CUDA
    o.compile = true, o.base_out = &own, o.split_base = &base; /* the set, split */
    ck_assert_msg(kiln_codegen_build(g, &o, bs, NULL) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(bs->n_launches, bw->n_launches);
    int in0 = 0, in1 = 0;
    for (int l = 0; l < bs->n_launches; l++) {
        const kiln_bundle_kernel *kw = &bw->kernels[bw->launches[l].kernel], *ks = &bs->kernels[bs->launches[l].kernel];
        const int iw = key_of(&whole, kw->function), is = key_of(ks->module ? &own : &base, ks->function);
        ck_assert_msg(iw >= 0 && is >= 0, "launch %d: %s / %s", l, kw->function, ks->function);
        ck_assert_str_eq(whole.keys[iw], ks->module ? own.keys[is] : base.keys[is]);
        ck_assert_uint_le(ks->module, 1);
        *(ks->module ? &in1 : &in0) += 1;
    }
    ck_assert_int_gt(in0, 0); /* (the MatMul comes from the base) */
    ck_assert_int_gt(in1, 0); /* (the conv with the other tile is the set's own) */
    int img1 = 0, img0 = 0;
    for (int i = 0; i < bs->n_images; i++) *(bs->images[i].module ? &img1 : &img0) += 1;
    ck_assert_int_eq(img1, 1); /* module 1 compiled; module 0's images are the caller's (the base has none) */
    ck_assert_int_eq(img0, 0);
    /* the heuristic's own set: every kernel from the base, nothing compiled */
    kiln_bundle *bh = kiln_bundle_new();
    lc.answer = NULL, o.base_out = NULL;
    ck_assert_msg(kiln_codegen_build(g, &o, bh, NULL) == KILN_OK, "%s", kiln_last_error());
    for (int k = 0; k < bh->n_kernels; k++) ck_assert_uint_eq(bh->kernels[k].module, 0);
    ck_assert_int_eq(bh->n_images, 0);
    kiln_bundle_free(bh);
#endif
    kiln_codegen_base_free(&base), kiln_codegen_base_free(&whole), kiln_codegen_base_free(&own);
    kiln_bundle_free(b0), kiln_bundle_free(bw), kiln_bundle_free(bs);
    kiln_tune_log_free(&log), kiln_tune_log_free(&log2);
    kiln_graph_free(g);
}
END_TEST

/* The tuner without a GPU: the candidate sets compile in parallel threads (NVRTC from several
 * threads), then timing fails cleanly; with every signature in the cache nothing is built or
 * timed and it succeeds. */
START_TEST(tuner_without_gpu) {
    kiln_graph *g = tune_graph();
    kiln_codegen_opts co;
    kiln_codegen_opts_init(&co);
    co.precision = KILN_PREC_FP16;
    kiln_tune_device here;
    bool gpu = kiln_tune_device_query(&here, 0) == KILN_OK;
    char native[24] = "sm_80"; /* a GPU: its own cubin, so that the candidate sets load */
    int maj, min;
    if (gpu && sscanf(here.cc, "%d.%d", &maj, &min) == 2) snprintf(native, sizeof native, "sm_%d%d", maj, min);
    const char *arch[1] = {native};
    co.archs = arch;
    co.n_archs = 1;
    co.ptx = false;
    kiln_tune_opts to;
    kiln_tune_opts_init(&to);
    to.threads = 3;
    FILE *prog = tmpfile();
    ck_assert_ptr_nonnull(prog);
    to.progress = prog;
    kiln_tune_cache cache;
    kiln_tune_cache_init(&cache);
    kiln_tune_summary sum;
    kiln_status st = kiln_tune_run(g, &co, &to, &DEV_A, &cache, &sum);
    ck_assert_int_eq(sum.signatures, 2);
    ck_assert_int_eq(sum.from_cache, 0);
    if (gpu) { /* a GPU after all: both signatures timed and cached */
        ck_assert_msg(st == KILN_OK, "%s", kiln_last_error());
        ck_assert_int_eq(cache.n, 2);
        ck_assert_int_eq(sum.tuned, 2);
        kiln_tune_cache_free(&cache);
        kiln_tune_cache_init(&cache);
    } else {
#ifdef KILN_HAVE_CUDA
        ck_assert_int_ne(st, KILN_OK); /* the candidate builds worked, the timing failed */
        ck_assert_msg(strstr(kiln_last_error(), "timing candidate set 0"), "%s", kiln_last_error());
#endif
        ck_assert_int_eq(cache.n, 0);
    }
    /* a full cache: nothing to time */
    kiln_tune_log log;
    kiln_tune_log_init(&log);
    char *tiles;
    size_t len;
    free(gen(g, NULL, &log, &tiles, &len));
    free(tiles);
    for (int i = 0; i < log.n; i++)
        ck_assert_int_eq(kiln_tune_cache_put(&cache, &DEV_A, log.e[i].signature, log.e[i].names[1], 5.0), KILN_OK);
    ck_assert_msg(kiln_tune_run(g, &co, &to, &DEV_A, &cache, &sum) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(sum.from_cache, 2);
    ck_assert_int_eq(sum.tuned, 0);
    ck_assert_int_eq(sum.candidates, 0);
    rewind(prog);
    char line[512];
    bool said = false;
    while (fgets(line, sizeof line, prog)) said |= strstr(line, "nothing timed") != NULL;
    ck_assert(said);
    fclose(prog);
    kiln_tune_log_free(&log);
    kiln_tune_cache_free(&cache);
    kiln_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tune");
    TCase *tc = tcase_create("tune");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cache_round_trip);
    tcase_add_test(tc, cache_file);
    tcase_add_test(tc, choices_and_forcing);
    tcase_add_test(tc, layer_costs_round_trip);
    tcase_add_test(tc, layer_costs_strided_input);
    tcase_add_test(tc, split_build_matches_whole);
    tcase_add_test(tc, tuner_without_gpu);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
