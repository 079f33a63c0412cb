/* emu_conv_f32.c — the fp32 NCHW convolution (kernels/conv_f32.cuh, codegen/cg_conv.c
 * emit_conv_f32) without a GPU, every candidate tile. Each case builds x [N,C,H,W] -> Conv
 * (+ bias, relu, residual, relu as a conv_epilogue group) -> y by hand, runs fuse-epilogue and
 * plan-memory, forces a candidate with "kiln_tile" where the case names one, generates the
 * module, compiles it as host C++ with the CUDA shim (emu_shim.h) and runs the launch plan on
 * seeded random inputs (the output and the arena poisoned with NaN first). Reference: the CPU
 * evaluator on the same graph; pass: |got - want| <= 1e-4 + 1e-3 |want| per element (the fp32
 * tolerance of emu_codegen) and no NaN.
 * --nvrtc: every candidate of one shape (3x3, C = K = 256, 14x14, batch 8, bias + relu +
 * residual) NVRTC-compiled for sm_80 and sm_90 with ptxas -v: registers and spills per
 * candidate, FAIL on a compile error or a spill (SKIP 77 without NVRTC).
 * --gpu (label gpu): the same cases plus ResNet-50's conv shapes (batch 1 and 8, heuristic tiles)
 * compiled for sm_80 + sm_90 and run through the runtime against the CPU evaluator; each bundle is
 * left as WORK/NAME.kiln for `kiln bench` (tests/gpu/bench_conv_f32.sh), with WORK/NAME_old.kiln, the
 * same conv on the generic fp32 path, as its baseline. SKIP 77 without a GPU;
 * EMU_CONV_F32_SMALL=1: the small cases only.
 * usage: emu_conv_f32 SOURCE_DIR WORK_DIR [--nvrtc | --gpu]; exit 0 pass, 1 fail, 77 skip. */
#include "codegen/codegen.h"
#include "codegen/nvrtc.h"
#include "runtime/bundle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_harness.h"

typedef struct conv_case {
    const char *name;
    int n, c, h, w, k, r, s, stride, pad, group;
    int bias, relu, residual; /* residual: + r, then relu again */
    const char *tile;         /* forced candidate, NULL = heuristic */
} conv_case;

/* Every candidate of cg_conv.c's f32_cfgs at least once (split-K ones on shapes with a small
 * grid and enough K tiles; the k16 ones leave the last split empty), M/N/K tails, groups. */
static const conv_case cases[] = {
    {"1x1", 2, 48, 8, 8, 32, 1, 1, 1, 0, 1, 1, 0, 0, NULL},
    {"3x3_pad1", 1, 16, 9, 9, 16, 3, 3, 1, 1, 1, 1, 1, 0, NULL},
    {"3x3_s2", 2, 32, 10, 10, 24, 3, 3, 2, 1, 1, 0, 0, 0, NULL},
    {"7x7_s2_c3", 1, 3, 20, 20, 16, 7, 7, 2, 3, 1, 1, 1, 0, NULL},
    {"res_relu", 1, 32, 7, 7, 32, 3, 3, 1, 1, 1, 1, 1, 1, NULL},
    {"groups2", 1, 16, 8, 8, 24, 3, 3, 1, 1, 2, 1, 0, 0, NULL},
    {"groups4_k4", 1, 32, 6, 6, 32, 3, 3, 1, 1, 4, 1, 1, 0, "f32_32x32x8_4x4_k4"},
    {"t128x128_1x1", 2, 40, 12, 12, 130, 1, 1, 1, 0, 1, 1, 1, 1, "f32_128x128x8_8x8_k1"},
    {"t128x64", 1, 24, 9, 11, 100, 3, 3, 1, 1, 1, 1, 0, 0, "f32_128x64x8_8x8_k1"},
    {"t64x128_1x1s2", 2, 36, 10, 10, 70, 1, 1, 2, 0, 1, 0, 0, 0, "f32_64x128x8_8x8_k1"},
    {"t64x64", 1, 40, 9, 9, 65, 3, 3, 1, 1, 1, 1, 1, 0, "f32_64x64x8_8x4_k1"},
    {"t64x32_s2", 2, 12, 11, 13, 33, 3, 3, 2, 1, 1, 1, 0, 0, "f32_64x32x8_4x4_k1"},
    {"t32x64", 1, 8, 15, 15, 20, 5, 5, 1, 2, 1, 0, 1, 0, "f32_32x64x8_4x4_k1"},
    {"t32x32", 1, 10, 7, 9, 40, 3, 3, 1, 0, 1, 1, 0, 0, "f32_32x32x8_4x4_k1"},
    {"t128x128x16", 1, 20, 9, 9, 40, 3, 3, 1, 1, 1, 1, 1, 0, "f32_128x128x16_8x8_k1"},
    {"k2_128x64", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, 1, "f32_128x64x8_8x8_k2"},
    {"k4_128x64", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 0, 0, "f32_128x64x8_8x8_k4"},
    {"k2_64x64", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 0, 0, 1, "f32_64x64x8_8x4_k2"},
    {"k4_64x64", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, 0, "f32_64x64x8_8x4_k4"},
    {"k8_64x64", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, 1, "f32_64x64x8_8x4_k8"},
    {"k2_64x32", 1, 64, 7, 7, 72, 3, 3, 2, 1, 1, 1, 1, 0, "f32_64x32x8_4x4_k2"},
    {"k4_64x32", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, 1, "f32_64x32x8_4x4_k4"},
    {"k8_64x32", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 0, 1, 0, "f32_64x32x8_4x4_k8"},
    {"k16_64x32", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, 1, "f32_64x32x8_4x4_k16"},
    {"k8_32x32", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 0, 0, "f32_32x32x8_4x4_k8"},
    {"k16_32x32_g2", 1, 128, 5, 5, 40, 3, 3, 1, 1, 2, 1, 1, 1, "f32_32x32x8_4x4_k16"},
    {"t64x64x16", 1, 20, 9, 9, 70, 3, 3, 1, 1, 1, 1, 1, 0, "f32_64x64x16_8x4_k1"},
    {"t64x64_4x4", 2, 24, 9, 7, 65, 3, 3, 1, 1, 1, 1, 0, 1, "f32_64x64x8_4x4_k1"},
    {"k4_64x64_4x4", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, 1, "f32_64x64x8_4x4_k4"},
    {"k8_64x64_4x4", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 0, 1, 0, "f32_64x64x8_4x4_k8"},
    {"k2_128x128", 1, 64, 7, 7, 130, 3, 3, 1, 1, 1, 1, 1, 1, "f32_128x128x8_8x8_k2"},
    /* the wave-filling splits: 72 K tiles in 3, 4, 5 (15 + 15 + 15 + 15 + 12) and 6 */
    {"k3_128x128", 1, 64, 7, 7, 130, 3, 3, 1, 1, 1, 1, 1, 1, "f32_128x128x8_8x8_k3"},
    {"k4_128x128", 2, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 0, 0, "f32_128x128x8_8x8_k4"},
    {"k5_128x128", 1, 64, 7, 7, 130, 3, 3, 1, 1, 1, 1, 1, 1, "f32_128x128x8_8x8_k5"},
    {"k6_128x128", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 0, 1, 0, "f32_128x128x8_8x8_k6"},
    {"k3_128x64", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, 1, "f32_128x64x8_8x8_k3"},
    {"k6_128x64", 1, 64, 7, 7, 130, 3, 3, 1, 1, 1, 1, 0, 1, "f32_128x64x8_8x8_k6"},
    {"k3_64x64", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 0, 0, 0, "f32_64x64x8_8x4_k3"},
    {"k6_64x64", 1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, 1, "f32_64x64x8_8x4_k6"},
    {"generic", 1, 40, 7, 9, 24, 3, 3, 1, 1, 1, 1, 1, 1, "f32_generic"},
    /* few taps (24, 27) but several channels per group: still conv_f32 */
    {"1x1_c24", 2, 24, 7, 9, 40, 1, 1, 1, 0, 1, 1, 1, 1, NULL},
    {"3x3_c3", 1, 3, 13, 12, 32, 3, 3, 2, 1, 1, 1, 1, 0, NULL},
    /* depthwise (C / G == 1): conv_f32_dw */
    {"dw3x3", 2, 32, 9, 10, 32, 3, 3, 1, 1, 32, 1, 1, 1, NULL},
    {"dw3x3_s2_mult2", 1, 16, 11, 11, 32, 3, 3, 2, 1, 16, 1, 0, 0, NULL},
    {"dw5x5_s2", 2, 8, 12, 9, 8, 5, 5, 2, 2, 8, 0, 1, 0, NULL},
};

/* --gpu also runs ResNet-50's convolution shapes (heuristic tiles; too slow to emulate) and
 * leaves each bundle as WORK/NAME.kiln for `kiln bench`. */
static const conv_case gpu_cases[] = {
    {"r50_stem_b1", 1, 3, 224, 224, 64, 7, 7, 2, 3, 1, 1, 1, 0, NULL},
    {"r50_s1_1x1_b1", 1, 64, 56, 56, 256, 1, 1, 1, 0, 1, 1, 1, 1, NULL},
    {"r50_s1_3x3_b1", 1, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 0, NULL},
    {"r50_s2_3x3_b1", 1, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1, 1, 0, NULL},
    {"r50_s3_3x3_b1", 1, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 1, 0, NULL},
    {"r50_s3_1x1_b1", 1, 1024, 14, 14, 256, 1, 1, 1, 0, 1, 1, 1, 0, NULL},
    {"r50_s4_3x3_b1", 1, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 0, NULL},
    {"r50_s4_1x1_b1", 1, 2048, 7, 7, 512, 1, 1, 1, 0, 1, 1, 1, 0, NULL},
    {"r50_s4_1x1up_b1", 1, 512, 7, 7, 2048, 1, 1, 1, 0, 1, 1, 1, 1, NULL},
    {"r50_s4_3x3s2_b1", 1, 256, 14, 14, 256, 3, 3, 2, 1, 1, 1, 1, 0, NULL},
    {"r50_s1_3x3_b8", 8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 0, NULL},
    {"r50_s3_3x3_b8", 8, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 1, 0, NULL},
    {"r50_s4_3x3_b8", 8, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 0, NULL},
    {"r50_stem_b8", 8, 3, 224, 224, 64, 7, 7, 2, 3, 1, 1, 1, 0, NULL},
    {"mnv2_dw_s1_b8", 8, 96, 56, 56, 96, 3, 3, 1, 1, 96, 1, 1, 0, NULL},
    {"mnv2_dw_s2_b8", 8, 144, 56, 56, 144, 3, 3, 2, 1, 144, 1, 1, 0, NULL},
    {"mnv2_pw_b8", 8, 24, 56, 56, 144, 1, 1, 1, 0, 1, 1, 1, 0, NULL},
};

static bool w_as_input; /* the weights as a graph input: the generic conv2d_igemm (a timing baseline) */

/* The graph of a case (weights from the seeded generator: two builds are identical). */
static kiln_graph *build(const conv_case *k) {
    rng = 0x2545F4914F6CDD1Dull;
    kiln_graph *g = kiln_graph_new();
    if (!g) return NULL;
    int64_t p = (k->h + 2 * k->pad - k->r) / k->stride + 1, q = (k->w + 2 * k->pad - k->s) / k->stride + 1;
    int64_t xd[4] = {k->n, k->c, k->h, k->w}, wd[4] = {k->k, k->c / k->group, k->r, k->s}, bd[1] = {k->k};
    int64_t yd[4] = {k->n, k->k, p, q};
    io(g, val(g, "x", 4, xd), false);
    if (k->residual) io(g, val(g, "res", 4, yd), false);
    if (w_as_input) io(g, val(g, "w", 4, wd), false);
    else cst(g, "w", 4, wd, 1.0 / sqrt((double)(k->c / k->group * k->r * k->s)));
    if (k->bias) cst(g, "b", 1, bd, 0.5);
    const char *cur = "conv";
    int ci[3] = {val(g, "x", 0, NULL), val(g, "w", 0, NULL), k->bias ? val(g, "b", 0, NULL) : -1};
    int co = val(g, "conv", 0, NULL);
    int nid = kiln_graph_add_node(g, KILN_OP_Conv, "conv", ci, k->bias ? 3 : 2, &co, 1);
    if (nid < 0) return NULL;
    int64_t st[2] = {k->stride, k->stride}, pads[4] = {k->pad, k->pad, k->pad, k->pad}, ks[2] = {k->r, k->s};
    kiln_node_set_ints(&g->nodes[nid], "strides", st, 2);
    kiln_node_set_ints(&g->nodes[nid], "pads", pads, 4);
    kiln_node_set_ints(&g->nodes[nid], "kernel_shape", ks, 2);
    kiln_node_set_int(&g->nodes[nid], "group", k->group);
    if (k->relu) {
        int i = val(g, cur, 0, NULL), o = val(g, "act", 0, NULL);
        kiln_graph_add_node(g, KILN_OP_Relu, "relu", &i, 1, &o, 1);
        cur = "act";
    }
    if (k->residual) {
        int i[2] = {val(g, cur, 0, NULL), val(g, "res", 0, NULL)}, o = val(g, "sum", 0, NULL);
        kiln_graph_add_node(g, KILN_OP_Add, "add", i, 2, &o, 1);
        int o2 = val(g, "y", 0, NULL);
        kiln_graph_add_node(g, KILN_OP_Relu, "relu2", &o, 1, &o2, 1);
        cur = "y";
    }
    io(g, val(g, cur, 0, NULL), true);
    if (kiln_graph_normalize(g)) {
        fprintf(stderr, "%s: %s\n", k->name, kiln_last_error());
        kiln_graph_free(g);
        return NULL;
    }
    return g;
}

/* fuse-epilogue + plan-memory; the node gets the forced tile. */
static kiln_graph *prepare(const conv_case *k) {
    kiln_graph *g = build(k);
    if (!g) return NULL;
    kiln_pipeline_opts po;
    kiln_pipeline_opts_init(&po);
    po.only = "fuse-epilogue,plan-memory";
    po.ctx.precision = KILN_PREC_FP32;
    int ns = 0;
    if (kiln_pipeline_run(g, &po, NULL, 0, &ns)) {
        fprintf(stderr, "%s: %s\n", k->name, kiln_last_error());
        kiln_graph_free(g);
        return NULL;
    }
    if (k->tile)
        for (int i = 0; i < g->n_nodes; i++) kiln_node_set_str(&g->nodes[i], "kiln_tile", k->tile);
    return g;
}

/* Checks the generated source: conv_f32 used, the forced tile taken. */
static int check_source(const conv_case *k, const char *cuda, char *tile, size_t len) {
    tile_of(cuda, tile, len);
    if (k->tile && !strcmp(k->tile, "f32_generic")) { /* the escape hatch: the generic conv2d_igemm */
        snprintf(tile, len, "f32_generic");
        if (!strstr(cuda, "kiln::conv_f32<") && strstr(cuda, "kiln::conv2d_igemm<")) return 0;
        printf("FAIL: %s: f32_generic did not give the generic conv2d_igemm\n", k->name);
        return 1;
    }
    if (k->group == k->c) { /* depthwise: conv_dw.cuh (cg_conv_dw.c) for multiplier 1, else conv_f32_dw */
        snprintf(tile, len, "%s", strstr(cuda, "kiln::conv_dw_nchw<") ? "dw_nchw" : "direct_f32");
        if (strstr(cuda, k->k == k->c ? "kiln::conv_dw_nchw<" : "kiln::conv_f32_dw<")) return 0;
        printf("FAIL: %s: %s was not used\n", k->name, k->k == k->c ? "conv_dw_nchw" : "conv_f32_dw");
        return 1;
    }
    if (!strstr(cuda, "kiln::conv_f32<")) {
        printf("FAIL: %s: conv_f32 was not used\n", k->name);
        return 1;
    }
    if (k->tile && strcmp(tile, k->tile)) {
        printf("FAIL: %s: the forced tile %s was not used (got %s)\n", k->name, k->tile, tile);
        return 1;
    }
    return 0;
}

/* Seeded random inputs (fp32 NCHW: the same bytes for the CPU and the kernels); out[0] the
 * output, poisoned (NaN). Returns the output's element count. */
static int64_t make_io(const kiln_graph *ref, kiln_tensor **cin, float **out) {
    rng = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < ref->n_inputs; i++) {
        const kiln_value *v = &ref->values[ref->inputs[i]];
        cin[i] = kiln_tensor_new(KILN_F32, v->rank, v->dims);
        for (int64_t e = 0; e < cin[i]->numel; e++) kiln_tensor_set(cin[i], e, rnd());
    }
    const kiln_value *yv = &ref->values[ref->outputs[0]];
    int64_t yn = 1;
    for (int i = 0; i < yv->rank; i++) yn *= yv->dims[i];
    out[0] = malloc(4 * (size_t)yn);
    memset(out[0], 0xff, 4 * (size_t)yn);
    return yn;
}

/* The CPU evaluator against the result: |d| <= 1e-4 + 1e-3 |want| per element, no NaN. */
static int compare(const conv_case *k, const kiln_graph *ref, kiln_tensor **cin, const float *y, int64_t yn,
                   uint32_t n_launches, const char *tile) {
    kiln_tensor *cout[1] = {0};
    if (kiln_graph_run_cpu(ref, cin, ref->n_inputs, cout, 1)) {
        printf("FAIL: %s: CPU: %s\n", k->name, kiln_last_error());
        return 1;
    }
    double worst = 0;
    int64_t bad = 0, nan = 0;
    for (int64_t e = 0; e < yn; e++) {
        double want = kiln_tensor_get(cout[0], e), got = y[e], d = fabs(got - want);
        if (isnan(got)) nan++;
        else if (d > 1e-4 + 1e-3 * fabs(want)) bad++;
        if (!isnan(got) && d / (1e-4 + 1e-3 * fabs(want)) > worst) worst = d / (1e-4 + 1e-3 * fabs(want));
    }
    kiln_tensor_free(cout[0]);
    int failed = nan > 0 || bad > 0;
    printf("%s: %s (%dx%d s%d p%d g%d, C %d K %d, pixels %lld, %.3g GFLOP): %lld over tolerance (worst %.3g of it), "
           "%lld NaN, %u launches, tile %s\n",
           failed ? "FAIL" : "PASS", k->name, k->r, k->s, k->stride, k->pad, k->group, k->c, k->k,
           (long long)(yn / k->k), 2e-9 * (double)yn * (k->c / k->group) * k->r * k->s, (long long)bad, worst,
           (long long)nan, n_launches, tile);
    return failed;
}

static int run_case(const conv_case *k, const char *src, const char *work) {
    kiln_graph *g = prepare(k), *ref = build(k);
    if (!g || !ref) return 1;
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = KILN_PREC_FP32;
    o.compile = false;
    kiln_bundle *b = kiln_bundle_new();
    char *cuda = NULL, tile[64];
    if (!b || kiln_codegen_build(g, &o, b, &cuda)) {
        printf("FAIL: %s: codegen: %s\n", k->name, kiln_last_error());
        return 1;
    }
    if (check_source(k, cuda, tile, sizeof tile)) return 1;
    kiln_tensor *cin[4] = {0};
    float *out[1] = {0};
    int64_t yn = make_io(ref, cin, out);
    void *ins[4] = {0};
    for (int i = 0; i < 4; i++) ins[i] = cin[i] ? cin[i]->data : NULL;
    int failed = harness_emu_run(k->name, src, work, b, cuda, ins, out[0]);
    if (!failed) failed = compare(k, ref, cin, out[0], yn, b->n_launches, tile);
    free(cuda);
    for (int i = 0; i < 4; i++) kiln_tensor_free(cin[i]);
    free(out[0]);
    kiln_bundle_free(b);
    kiln_graph_free(g);
    kiln_graph_free(ref);
    return failed;
}

/* --gpu: a case compiled for sm_80 + sm_90 and run through the runtime (host-bound I/O). */
static int gpu_case(const conv_case *k, const char *work, bool *skip) {
    kiln_graph *g = prepare(k), *ref = build(k);
    if (!g || !ref) return 1;
    static const char *const archs[] = {"sm_80", "sm_90"};
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = KILN_PREC_FP32;
    o.archs = archs;
    o.n_archs = 2;
    kiln_bundle *b = kiln_bundle_new();
    char *cuda = NULL, tile[64];
    if (!b || kiln_codegen_build(g, &o, b, &cuda)) {
        printf("FAIL: %s: codegen: %s\n", k->name, kiln_last_error());
        return 1;
    }
    int failed = check_source(k, cuda, tile, sizeof tile);
    free(cuda);
    kiln_tensor *cin[4] = {0};
    float *out[1] = {0};
    int64_t yn = make_io(ref, cin, out);
    void *ins[4] = {0};
    for (int i = 0; i < 4; i++) ins[i] = cin[i] ? cin[i]->data : NULL;
    int r = harness_gpu_run(k->name, work, b, ref, ins, out[0], skip);
    if (r == 2) printf("  generated %s: %u launches, tile %s\n", k->name, b->n_launches, tile);
    else failed |= r ? 1 : compare(k, ref, cin, out[0], yn, b->n_launches, tile);
    for (int i = 0; i < 4; i++) kiln_tensor_free(cin[i]);
    free(out[0]);
    kiln_bundle_free(b);
    kiln_graph_free(g);
    kiln_graph_free(ref);
    return failed;
}

/* For `kiln bench` against the generic fp32 path: WORK/NAME_old.kiln, the same conv with the
 * weights as a graph input (conv2d_igemm on tiled_gemm; depthwise: conv2d_direct, which
 * conv_f32_dw replaces for any weights, so the baseline is built at tf32, where depthwise
 * convs keep conv2d_direct, true fp32 FFMA as well); built only. */
static int gpu_baseline(const conv_case *k, const char *work) {
    w_as_input = true;
    kiln_graph *g = prepare(k);
    w_as_input = false;
    static const char *const archs[] = {"sm_80", "sm_90"};
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = k->group == k->c ? KILN_PREC_TF32 : KILN_PREC_FP32;
    o.archs = archs;
    o.n_archs = 2;
    kiln_bundle *b = kiln_bundle_new();
    char path[1024], *cuda = NULL;
    snprintf(path, sizeof path, "%s/%s_old.kiln", work, k->name);
    int failed = !g || !b || kiln_codegen_build(g, &o, b, &cuda) || kiln_bundle_write(b, path);
    if (failed) printf("FAIL: %s_old: %s\n", k->name, kiln_last_error());
    else if (!strstr(cuda, "kiln::conv2d_direct<") && !strstr(cuda, "kiln::conv2d_igemm<") &&
             !strstr(cuda, "kiln::conv_dw_nchw<")) printf("FAIL: %s_old: not the generic conv2d_igemm / conv2d_direct\n", k->name), failed = 1;
    free(cuda);
    kiln_bundle_free(b);
    kiln_graph_free(g);
    return failed;
}

/* --nvrtc: every candidate on one shape, ptxas -v per architecture. */
static const char *const all_tiles[] = {
    "f32_128x128x8_8x8_k1", "f32_128x64x8_8x8_k1", "f32_64x128x8_8x8_k1", "f32_64x64x8_8x4_k1",
    "f32_64x32x8_4x4_k1",   "f32_32x64x8_4x4_k1",  "f32_32x32x8_4x4_k1",  "f32_128x128x16_8x8_k1",
    "f32_128x64x8_8x8_k2",  "f32_128x64x8_8x8_k4", "f32_64x64x8_8x4_k2",  "f32_64x64x8_8x4_k4",
    "f32_64x64x8_8x4_k8",   "f32_64x32x8_4x4_k2",  "f32_64x32x8_4x4_k4",  "f32_64x32x8_4x4_k8",
    "f32_64x32x8_4x4_k16",  "f32_32x32x8_4x4_k4",  "f32_32x32x8_4x4_k8",  "f32_32x32x8_4x4_k16",
    "f32_64x64x16_8x4_k1",  "f32_64x64x8_4x4_k1",  "f32_64x64x8_4x4_k4",  "f32_64x64x8_4x4_k8",
    "f32_128x128x8_8x8_k2",  "f32_128x128x8_8x8_k3", "f32_128x128x8_8x8_k4", "f32_128x128x8_8x8_k5",
    "f32_128x128x8_8x8_k6",  "f32_128x64x8_8x8_k3",  "f32_128x64x8_8x8_k6",  "f32_64x64x8_8x4_k3",
    "f32_64x64x8_8x4_k6"};
static int nvrtc_all(void) {
    int major, minor;
    if (kiln_nvrtc_version(&major, &minor)) {
        printf("SKIP: emu_conv_f32 --nvrtc: %s\n", kiln_last_error());
        return 77;
    }
    int fails = 0;
    for (size_t t = 0; t < sizeof all_tiles / sizeof all_tiles[0]; t++) {
        conv_case k = {"nvrtc", 1, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 1, 1, all_tiles[t]};
        kiln_graph *g = prepare(&k);
        kiln_codegen_opts o;
        kiln_codegen_opts_init(&o);
        o.precision = KILN_PREC_FP32;
        o.compile = false;
        kiln_bundle *b = kiln_bundle_new();
        char *cuda = NULL, tile[64];
        if (!g || !b || kiln_codegen_build(g, &o, b, &cuda)) {
            printf("FAIL: %s: codegen: %s\n", all_tiles[t], kiln_last_error());
            fails++;
            continue;
        }
        fails += check_source(&k, cuda, tile, sizeof tile);
        static const char *const archs[] = {"sm_80", "sm_90"};
        for (int a = 0; a < 2; a++) {
            static const char *const opts[] = {"--ptxas-options=-v"};
            kiln_nvrtc_request rq = {.name = "conv_f32", .source = cuda, .headers = kiln_kernel_headers,
                                     .n_headers = kiln_kernel_header_count, .archs = &archs[a], .n_archs = 1,
                                     .options = opts, .n_options = 1};
            kiln_nvrtc_output out;
            memset(&out, 0, sizeof out);
            kiln_status st = kiln_nvrtc_compile(&rq, &out);
            /* ptxas -v: per function "N bytes stack frame, N bytes spill stores" then "Used N registers" */
            int regs = -1, spills = 0;
            const char *lg = out.log ? out.log : "", *p = strstr(lg, "_conv_igemm' for"), *u;
            if (getenv("KILN_F32_LOG")) fputs(lg, stdout);
            if (p) {
                const char *sp = strstr(p, "bytes stack frame, ");
                if (sp) spills = atoi(sp + 19);
                sp = sp ? strstr(sp, "bytes spill stores, ") : NULL;
                if (sp) spills += atoi(sp + 20);
                if ((u = strstr(p, "Used "))) regs = atoi(u + 5);
            }
            printf("%s: %-22s %s: %d registers, %d B stack/spills%s%s\n", st || spills || !p ? "FAIL" : "PASS",
                   all_tiles[t], archs[a], regs, spills, st ? ": " : "", st ? kiln_last_error() : "");
            fails += st != KILN_OK || spills > 0 || !p;
            kiln_nvrtc_output_free(&out);
        }
        free(cuda);
        kiln_bundle_free(b);
        kiln_graph_free(g);
    }
    printf("%s: %d failures\n", fails ? "FAIL" : "PASS", fails);
    return fails ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: emu_conv_f32 SOURCE_DIR WORK_DIR [--nvrtc | --gpu]\n");
        return 2;
    }
    const char *src = argv[1], *work = argv[2];
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", work);
    if (system(cmd)) return 1;
    if (argc > 3 && !strcmp(argv[3], "--nvrtc")) return nvrtc_all();
    if (argc > 3 && !strcmp(argv[3], "--gpu")) {
        int fails = 0, n = 0;
        bool skip = false;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++, n++) fails += gpu_case(&cases[i], work, &skip);
        /* EMU_CONV_F32_SMALL=1 (compute-sanitizer runs): the small cases only */
        const char *small = getenv("EMU_CONV_F32_SMALL");
        for (size_t i = 0; i < sizeof gpu_cases / sizeof gpu_cases[0] && !(small && *small == '1'); i++, n++)
            fails += gpu_case(&gpu_cases[i], work, &skip) + gpu_baseline(&gpu_cases[i], work);
        if (skip) return fails ? 1 : 77;
        printf("%s: %d of %d cases failed on the GPU\n", fails ? "FAIL" : "PASS", fails, n);
        return fails ? 1 : 0;
    }
    if (system("command -v g++ >/dev/null 2>&1")) {
        printf("SKIP: emu_conv_f32: no g++\n");
        return 77;
    }
    snprintf(cmd, sizeof cmd, "g++ -O1 -fPIC -c %s/tests/codegen/emu/emu_sched.cpp -o %s/emu_sched.o", src, work);
    if (system(cmd)) {
        printf("FAIL: emu_conv_f32: %s\n", cmd);
        return 1;
    }
    int fails = 0;
    const char *only = getenv("EMU_CONV_F32_ONLY"); /* one case by name (debugging) */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!only || !strcmp(only, cases[i].name)) fails += run_case(&cases[i], src, work);
    printf("%s: %d of %d cases failed\n", fails ? "FAIL" : "PASS", fails, (int)(sizeof cases / sizeof cases[0]));
    return fails ? 1 : 0;
}
