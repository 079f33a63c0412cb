/* emu_conv_nhwc.c — the fp16 NHWC convolution (codegen/cg_conv_nhwc.c, kernels/conv_nhwc.cuh)
 * without a GPU. NHWC activations only appear once select-layout runs at fp16 on the GPU path,
 * so each case builds a graph by hand: x [N,C,H,W] -> Conv (+ bias, relu, residual, relu as a
 * conv_epilogue group) -> y, runs fuse-epilogue and plan-memory, then marks x, the residual
 * and y as fp16 NHWC graph I/O, generates the module (a tile forced with "kiln_tile" where the
 * case names one), compiles it as host C++ with the CUDA shim (emu_shim.h: cp.async, ldmatrix
 * and mma.sync emulated from the PTX layouts) and runs the launch plan on NHWC copies of seeded
 * random inputs (outputs poisoned with NaN first). The reference is the CPU evaluator on the fp32
 * graph with the same fp16-rounded inputs; pass: relative L2 error <= 5e-3 and no NaN.
 * With --nvrtc it instead NVRTC-compiles every candidate tile of one shape for sm_80 and sm_90
 * and prints ptxas's registers / shared memory / spills (SKIP 77 without NVRTC).
 * With --gpu (label gpu) the same cases are compiled for sm_80 + sm_90 and run through the runtime
 * on the GPU (SKIP 77 without one).
 * usage: emu_conv_nhwc SOURCE_DIR WORK_DIR [--nvrtc | --gpu]; exit 0 pass, 1 fail, 77 skip. */
#include "codegen/codegen.h"
#include "runtime/bundle.h"
#include "codegen/nvrtc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_harness.h"

typedef struct conv_case {
    const char *name;
    int n, c, h, w, k, r, s, stride, pad;
    int bias, relu, residual; /* residual: + r, then relu again */
    const char *tile;         /* forced candidate, NULL = heuristic */
} conv_case;

static const conv_case cases[] = {
    {"1x1", 2, 16, 8, 8, 32, 1, 1, 1, 0, 1, 0, 0, NULL},
    {"3x3_pad1", 1, 16, 9, 9, 16, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"3x3_s2", 2, 32, 10, 10, 24, 3, 3, 2, 1, 0, 0, 0, NULL},
    {"7x7_s2_c8", 1, 8, 20, 20, 16, 7, 7, 2, 3, 1, 1, 0, NULL},
    {"res_relu", 1, 32, 7, 7, 32, 3, 3, 1, 1, 1, 1, 1, NULL},
    {"c24", 1, 24, 6, 6, 40, 3, 3, 1, 1, 1, 0, 0, NULL},
    {"m_tail_64", 1, 16, 11, 11, 64, 1, 1, 1, 0, 0, 0, 0, "64x64x32s4w4k1"},
    {"big_tile", 2, 32, 12, 12, 128, 1, 1, 1, 0, 1, 1, 0, "128x128x32s4w8k1"},
    {"splitk4", 1, 64, 5, 5, 64, 3, 3, 1, 1, 1, 1, 1, "32x64x64s4w4k4"},
    {"splitk2_s3", 1, 32, 7, 7, 64, 3, 3, 1, 1, 1, 0, 0, "64x64x32s4w4k2"},
    /* C < 8: x padded to 8 channels in scratch (conv_nhwc_pad_c8), weights padded */
    {"stem_c3", 2, 3, 18, 18, 64, 7, 7, 2, 3, 1, 1, 0, NULL},
    {"stem_c1", 1, 1, 12, 12, 16, 3, 3, 1, 1, 1, 0, 0, "32x32x64s4w2k1"},
    {"stem_c4_splitk", 1, 4, 9, 9, 64, 7, 7, 2, 3, 0, 1, 0, "32x64x64s4w4k2"},
    {"stem_c3_pad8", 1, 3, 13, 11, 64, 7, 7, 2, 3, 1, 1, 0, "64x64x32s4w4k1"},
    /* C <= 4: two taps per chunk ("t4:", x padded to 4 channels; S odd -> padded tap), tails in
     * M (P*Q not a tile multiple), odd W, borders on every side */
    {"stem_t4_7x7s2", 2, 3, 19, 17, 64, 7, 7, 2, 3, 1, 1, 0, "t4:64x64x32s4w4k1"},
    {"stem_t4_3x3s2", 2, 3, 15, 13, 64, 3, 3, 2, 1, 1, 1, 0, "t4:64x64x16s6w4k1"},
    {"stem_t4_3x3s2_bk32", 1, 3, 16, 16, 32, 3, 3, 2, 1, 0, 0, 0, "t4:32x32x64s4w2k1"},
    {"stem_t4_c4_splitk", 1, 4, 9, 9, 64, 7, 7, 2, 3, 0, 1, 0, "t4:32x64x64s4w4k2"},
    {"stem_t4_c1_s1", 1, 1, 12, 12, 48, 3, 3, 1, 1, 1, 0, 0, "t4:128x64x16s6w4k1"},
    {"stem_t4_c2_even_s", 1, 2, 16, 14, 40, 4, 4, 2, 1, 1, 0, 0, "t4:64x64x32s4w4k1"},
    {"stem_t4_mbv2_bn32", 2, 3, 17, 15, 32, 3, 3, 2, 1, 1, 1, 0, "t4:128x32x16s6w2k1"},
    {"stem_t4_bn32_bk32", 1, 3, 21, 23, 32, 3, 3, 2, 1, 1, 0, 0, "t4:128x32x32s4w4k1"},
    {"stem_t4_heur", 1, 3, 23, 21, 32, 7, 7, 2, 3, 1, 1, 0, NULL},
    /* stride-2 stems as a stride-1 conv over a space-to-depth copy ("s2d:", conv_nhwc_s2d; 16
     * channels, filter ceil(R/2) x ceil(S/2)): odd and even filters, C = 1..4, split-K */
    {"stem_s2d_7x7s2", 2, 3, 19, 17, 64, 7, 7, 2, 3, 1, 1, 0, "s2d:64x64x32s4w4k1"},
    {"stem_s2d_3x3s2_bn32", 2, 3, 17, 15, 32, 3, 3, 2, 1, 1, 1, 0, "s2d:32x32x64s4w2k1"},
    {"stem_s2d_c1_splitk", 1, 1, 16, 14, 64, 7, 7, 2, 3, 0, 1, 0, "s2d:32x64x64s4w4k2"},
    {"stem_s2d_c4_4x4", 1, 4, 16, 14, 40, 4, 4, 2, 1, 1, 0, 0, "s2d:64x64x32s4w4k1"},
};

/* --gpu also runs ResNet-50's convolution shapes (heuristic tiles; too slow to emulate) and
 * leaves each bundle as WORK/NAME.kiln for `kiln bench`. */
static const conv_case gpu_cases[] = {
    {"r50_s1_3x3_b1", 1, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"r50_s1_1x1_b1", 1, 64, 56, 56, 256, 1, 1, 1, 0, 1, 1, 1, NULL},
    {"r50_s2_3x3_b1", 1, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"r50_s3_3x3_b1", 1, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"r50_s3_1x1_b1", 1, 1024, 14, 14, 256, 1, 1, 1, 0, 1, 1, 0, NULL},
    {"r50_s4_3x3_b1", 1, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"r50_s4_1x1_b1", 1, 2048, 7, 7, 512, 1, 1, 1, 0, 1, 1, 0, NULL},
    {"r50_s4_3x3s2_b1", 1, 256, 14, 14, 256, 3, 3, 2, 1, 1, 1, 0, NULL},
    {"r50_s3_3x3_b8", 8, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"r50_s1_3x3_b8", 8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"r50_stem_b1", 1, 3, 224, 224, 64, 7, 7, 2, 3, 1, 1, 0, NULL},
    {"r50_stem_b8", 8, 3, 224, 224, 64, 7, 7, 2, 3, 1, 1, 0, NULL},
    /* the stems (the heuristic takes the two-tap "t4:" kernel) vs C padded to 8, same tile size;
     * r50_stem3x3_b8 is MobileNetV2's stem (3x3 s2, K = 32); tests/gpu/bench_conv_nhwc.sh */
    {"r50_stem_b8_pad8", 8, 3, 224, 224, 64, 7, 7, 2, 3, 1, 1, 0, "128x64x32s4w4k1"},
    {"r50_stem3x3_b8", 8, 3, 224, 224, 32, 3, 3, 2, 1, 1, 1, 0, NULL},
    {"r50_stem3x3_b8_pad8", 8, 3, 224, 224, 32, 3, 3, 2, 1, 1, 1, 0, "32x32x64s4w2k1"},
};

/* The fp32 graph of a case (weights from the seeded generator: two builds are identical). */

static kiln_graph *build(const conv_case *k) {
    rng = 0x2545F4914F6CDD1Dull;
    kiln_graph *g = kiln_graph_new();
    if (!g) return NULL;
    int64_t p = (k->h + 2 * k->pad - k->r) / k->stride + 1, q = (k->w + 2 * k->pad - k->s) / k->stride + 1;
    int64_t xd[4] = {k->n, k->c, k->h, k->w}, wd[4] = {k->k, k->c, k->r, k->s}, bd[1] = {k->k}, yd[4] = {k->n, k->k, p, q};
    io(g, val(g, "x", 4, xd), false);
    if (k->residual) io(g, val(g, "res", 4, yd), false);
    cst(g, "w", 4, wd, 1.0 / sqrt((double)(k->c * k->r * k->s)));
    if (k->bias) cst(g, "b", 1, bd, 0.5);
    const char *cur = "conv";
    /* a TMA tile ("tm", "tmt", "tp", "tc", "ts", "tx", "to", and "hq", the halo by TMA): x goes through a Neg first, so that the
     * conv's input lives in the arena (tensor maps are made once per context; graph inputs are bound per run); "tp" /
     * "tc" / "ts" / "tx" / "to" (TMA stores) also the residual and, after the conv group, y */
    const bool neg_y = k->tile && (!strncmp(k->tile, "tp", 2) || !strncmp(k->tile, "tc", 2) || !strncmp(k->tile, "ts", 2) ||
                                      !strncmp(k->tile, "tx", 2) || !strncmp(k->tile, "to", 2));
    const bool neg = neg_y || (k->tile && (!strncmp(k->tile, "tm", 2) || !strncmp(k->tile, "hq", 2)));
    if (neg) {
        int i = val(g, "x", 0, NULL), o = val(g, "xn", 4, xd);
        kiln_graph_add_node(g, KILN_OP_Neg, "neg", &i, 1, &o, 1);
    }
    if (neg_y && k->residual) {
        int i = val(g, "res", 0, NULL), o = val(g, "resn", 4, yd);
        kiln_graph_add_node(g, KILN_OP_Neg, "neg_res", &i, 1, &o, 1);
    }
    int ci[3] = {val(g, neg ? "xn" : "x", 0, NULL), val(g, "w", 0, NULL), k->bias ? val(g, "b", 0, NULL) : -1};
    int co = val(g, "conv", 0, NULL);
    int nid = kiln_graph_add_node(g, KILN_OP_Conv, "conv", ci, k->bias ? 3 : 2, &co, 1);
    if (nid < 0) return NULL;
    int64_t st[2] = {k->stride, k->stride}, pads[4] = {k->pad, k->pad, k->pad, k->pad}, ks[2] = {k->r, k->s};
    kiln_node_set_ints(&g->nodes[nid], "strides", st, 2);
    kiln_node_set_ints(&g->nodes[nid], "pads", pads, 4);
    kiln_node_set_ints(&g->nodes[nid], "kernel_shape", ks, 2);
    if (k->relu) {
        int i = val(g, cur, 0, NULL), o = val(g, "act", 0, NULL);
        kiln_graph_add_node(g, KILN_OP_Relu, "relu", &i, 1, &o, 1);
        cur = "act";
    }
    if (k->residual) {
        int i[2] = {val(g, cur, 0, NULL), val(g, neg_y ? "resn" : "res", 0, NULL)}, o = val(g, "sum", 0, NULL);
        kiln_graph_add_node(g, KILN_OP_Add, "add", i, 2, &o, 1);
        int o2 = val(g, "y", 0, NULL);
        kiln_graph_add_node(g, KILN_OP_Relu, "relu2", &o, 1, &o2, 1);
        cur = "y";
    }
    if (neg_y) {
        int i = val(g, cur, 0, NULL), o = val(g, "yn", 4, yd);
        kiln_graph_add_node(g, KILN_OP_Neg, "neg_y", &i, 1, &o, 1);
        cur = "yn";
    }
    io(g, val(g, cur, 0, NULL), true);
    if (kiln_graph_normalize(g)) {
        fprintf(stderr, "%s: %s\n", k->name, kiln_last_error());
        kiln_graph_free(g);
        return NULL;
    }
    return g;
}

/* fuse-epilogue + plan-memory; x, res and y become fp16 NHWC I/O; the node gets the forced tile. */
static kiln_graph *prepare_layout(const conv_case *k, kiln_layout layout) {
    kiln_graph *g = build(k);
    if (!g) return NULL;
    kiln_pipeline_opts po;
    kiln_pipeline_opts_init(&po);
    po.only = "fuse-epilogue,plan-memory";
    po.ctx.precision = KILN_PREC_FP16;
    int ns = 0;
    if (kiln_pipeline_run(g, &po, NULL, 0, &ns)) {
        fprintf(stderr, "%s: %s\n", k->name, kiln_last_error());
        kiln_graph_free(g);
        return NULL;
    }
    for (int i = 0; i < g->n_inputs; i++) g->values[g->inputs[i]].dtype = KILN_F16, g->values[g->inputs[i]].layout = layout;
    for (int i = 0; i < g->n_outputs; i++)
        g->values[g->outputs[i]].dtype = KILN_F16, g->values[g->outputs[i]].layout = layout;
    static const char *const mid[] = {"xn", "resn", "y", "act", "conv"}; /* (planned as fp32: room to spare) */
    for (int i = 0; i < 5; i++) {
        const int v = kiln_graph_find_value(g, mid[i]);
        if (v >= 0 && !g->values[v].data) g->values[v].dtype = KILN_F16, g->values[v].layout = layout;
    }
    if (k->tile)
        for (int i = 0; i < g->n_nodes; i++) kiln_node_set_str(&g->nodes[i], "kiln_tile", k->tile);
    return g;
}

static kiln_graph *prepare(const conv_case *k) { return prepare_layout(k, KILN_LAYOUT_NHWC); }

static int64_t nhwc_index(const int64_t *d, int64_t i) { /* NCHW flat index i -> NHWC flat index */
    int64_t w = i % d[3], h = (i / d[3]) % d[2], c = (i / (d[3] * d[2])) % d[1], n = i / (d[3] * d[2] * d[1]);
    return ((n * d[2] + h) * d[3] + w) * d[1] + c;
}


/* Seeded random fp16 inputs: cin[i] fp32 NCHW for the CPU, hin[i] the same values fp16 NHWC;
 * hout[0] the NHWC output, poisoned (NaN). Returns the output's element count. */
static int64_t make_io(const kiln_graph *ref, kiln_tensor **cin, uint16_t **hin, uint16_t **hout) {
    rng = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < ref->n_inputs; i++) {
        const kiln_value *v = &ref->values[ref->inputs[i]];
        cin[i] = kiln_tensor_new(KILN_F32, v->rank, v->dims);
        hin[i] = malloc(2 * (size_t)cin[i]->numel);
        for (int64_t e = 0; e < cin[i]->numel; e++) {
            uint16_t h = kiln_f32_to_f16((float)rnd());
            hin[i][nhwc_index(v->dims, e)] = h;
            kiln_tensor_set(cin[i], e, kiln_f16_to_f32(h));
        }
    }
    const kiln_value *yv = &ref->values[ref->outputs[0]];
    int64_t yn = 1;
    for (int i = 0; i < yv->rank; i++) yn *= yv->dims[i];
    hout[0] = malloc(2 * (size_t)yn);
    memset(hout[0], 0xff, 2 * (size_t)yn);
    return yn;
}

/* The CPU evaluator on the fp32 graph against the NHWC fp16 result: rel L2 <= 5e-3, no NaN. */
static int compare(const conv_case *k, const kiln_graph *ref, kiln_tensor **cin, kiln_tensor **cout, const uint16_t *y,
                   int64_t yn, uint32_t n_launches, const char *tile) {
    const kiln_value *yv = &ref->values[ref->outputs[0]];
    if (kiln_graph_run_cpu(ref, cin, ref->n_inputs, cout, 1)) {
        printf("FAIL: %s: CPU: %s\n", k->name, kiln_last_error());
        return 1;
    }
    double num = 0, den = 0;
    int64_t nan = 0;
    for (int64_t e = 0; e < yn; e++) {
        double want = kiln_tensor_get(cout[0], e), got = kiln_f16_to_f32(y[nhwc_index(yv->dims, e)]);
        if (isnan(got)) nan++;
        else num += (got - want) * (got - want);
        den += want * want;
    }
    double rel = sqrt(num / (den > 0 ? den : 1));
    int failed = nan > 0 || !(rel <= 5e-3);
    printf("%s: %s (%dx%d s%d p%d, C %d K %d, M %lld, %.3g GFLOP): rel L2 %.3g, %lld NaN, %u launches, tile %s\n",
           failed ? "FAIL" : "PASS", k->name, k->r, k->s, k->stride, k->pad, k->c, k->k, (long long)(yn / k->k),
           2e-9 * (double)yn * k->c * k->r * k->s, rel, (long long)nan, n_launches, tile);
    return failed;
}

/* Target archs for run_case / gpu_case when set (gpu_conv_wgmma.c: sm_90 + sm_90a); else the
 * codegen default for the emulator and sm_80 + sm_90 on the GPU. */
static const char *const *case_archs;
static int case_n_archs;

static int run_case(const conv_case *k, const char *src, const char *work) {
    kiln_graph *g = prepare(k), *ref = build(k);
    if (!g || !ref) return 1;
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = KILN_PREC_FP16;
    o.compile = false;
    if (case_archs) o.archs = case_archs, o.n_archs = case_n_archs;
    kiln_bundle *b = kiln_bundle_new();
    char *cuda = NULL;
    if (!b || kiln_codegen_build(g, &o, b, &cuda)) {
        printf("FAIL: %s: codegen: %s\n", k->name, kiln_last_error());
        return 1;
    }
    if (!strstr(cuda, "conv_nhwc_f16<") && !strstr(cuda, "conv_wgmma_f16<") && !strstr(cuda, "conv_wgmma_ws_f16<") &&
        !strstr(cuda, "conv_halo_f16<") && !strstr(cuda, "conv_halo_pp_f16<") && !strstr(cuda, "conv_tma_f16<") &&
        !strstr(cuda, "conv_tma_pp_f16<")) {
        printf("FAIL: %s: the NHWC kernel was not used\n", k->name);
        return 1;
    }
    char want_tile[96];
    snprintf(want_tile, sizeof want_tile, "tile %s\n", k->tile ? k->tile : "");
    if (k->tile && !strstr(cuda, want_tile)) {
        printf("FAIL: %s: the forced tile %s was not used\n", k->name, k->tile);
        return 1;
    }
    char tile_used[64];
    tile_of(cuda, tile_used, sizeof tile_used);
    /* C < 8: padded to 8, or for the two-tap "t4:" kernel to 4 (C = 4 as it is) */
    const bool t4 = !strncmp(tile_used, "t4:", 3), s2d = !strncmp(tile_used, "s2d:", 4);
    const char *want_pad = s2d ? "conv_nhwc_s2d<"
                           : t4 ? (k->c < 4 ? "conv_nhwc_pad_c4<" : NULL)
                           : k->c % 8 ? "conv_nhwc_pad_c8<" : NULL;
    if ((want_pad && !strstr(cuda, want_pad)) || (!want_pad && strstr(cuda, "conv_nhwc_pad_c")) ||
        (!s2d && strstr(cuda, "conv_nhwc_s2d<"))) {
        printf("FAIL: %s: C = %d: expected %s\n", k->name, k->c, want_pad ? want_pad : "no padding kernel");
        return 1;
    }
    kiln_tensor *cin[4] = {0}, *cout[2] = {0};
    uint16_t *hin[4] = {0}, *hout[2] = {0};
    int64_t yn = make_io(ref, cin, hin, hout);
    int failed = harness_emu_run(k->name, src, work, b, cuda, (void *const *)hin, hout[0]);
    if (!failed) failed = compare(k, ref, cin, cout, hout[0], yn, b->n_launches, tile_used);
    free(cuda);
    for (int i = 0; i < 4; i++) free(hin[i]), kiln_tensor_free(cin[i]);
    free(hout[0]);
    kiln_tensor_free(cout[0]);
    kiln_bundle_free(b);
    kiln_graph_free(g);
    kiln_graph_free(ref);
    return failed;
}

/* --gpu: the same cases compiled for sm_80 + sm_90 and run through the runtime (host-bound I/O). */
static int gpu_case(const conv_case *k, const char *work, bool *skip) {
    kiln_graph *g = prepare(k), *ref = build(k);
    if (!g || !ref) return 1;
    static const char *const archs[] = {"sm_80", "sm_90"};
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = KILN_PREC_FP16;
    o.archs = case_archs ? case_archs : archs;
    o.n_archs = case_archs ? case_n_archs : 2;
    kiln_bundle *b = kiln_bundle_new();
    char *cuda = NULL, tile[64];
    if (!b || kiln_codegen_build(g, &o, b, &cuda)) {
        printf("FAIL: %s: codegen: %s\n", k->name, kiln_last_error());
        return 1;
    }
    tile_of(cuda, tile, sizeof tile);
    free(cuda);
    kiln_tensor *cin[4] = {0}, *cout[2] = {0};
    uint16_t *hin[4] = {0}, *hout[2] = {0};
    int64_t yn = make_io(ref, cin, hin, hout);
    int failed = harness_gpu_run(k->name, work, b, ref, (void *const *)hin, hout[0], skip);
    if (failed == 2) printf("  generated %s: %u launches, tile %s\n", k->name, b->n_launches, tile), failed = 0;
    else if (!failed) failed = compare(k, ref, cin, cout, hout[0], yn, b->n_launches, tile);
    for (int i = 0; i < 4; i++) free(hin[i]), kiln_tensor_free(cin[i]);
    free(hout[0]);
    kiln_tensor_free(cout[0]);
    kiln_bundle_free(b);
    kiln_graph_free(g);
    kiln_graph_free(ref);
    return failed;
}

/* For `kiln bench` against today's NCHW fp16 path: WORK/NAME_nchw.kiln, the same conv with
 * NCHW activations (conv2d_igemm_mma); built only. */
static int gpu_baseline(const conv_case *k, const char *work) {
    kiln_graph *g = prepare_layout(k, KILN_LAYOUT_NCHW);
    static const char *const archs[] = {"sm_80", "sm_90"};
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = KILN_PREC_FP16;
    o.archs = archs;
    o.n_archs = 2;
    kiln_bundle *b = kiln_bundle_new();
    char path[1024];
    snprintf(path, sizeof path, "%s/%s_nchw.kiln", work, k->name);
    int failed = !g || !b || kiln_codegen_build(g, &o, b, NULL) || kiln_bundle_write(b, path);
    if (failed) printf("FAIL: %s_nchw: %s\n", k->name, kiln_last_error());
    kiln_bundle_free(b);
    kiln_graph_free(g);
    return failed;
}

/* --nvrtc: every candidate of one shape (ResNet-50-like 3x3, C = K = 256, 14x14, batch 8, bias +
 * relu + residual) NVRTC-compiled for sm_80 and sm_90 with ptxas -v; prints registers, shared
 * memory and spills per candidate; fails on a compile error or a spill. */
static const char *const all_tiles[] = {"128x128x32s4w8k1", "128x64x32s4w4k1", "64x128x32s4w4k1", "64x64x32s4w4k1",
                                        "64x64x64s3w4k1",   "32x64x64s4w4k1",  "32x32x64s4w2k1",  "64x64x32s4w4k2",
                                        "64x64x32s4w4k4",   "32x64x64s4w4k2",  "32x64x64s4w4k4",  "32x64x64s4w4k8",
                                        "32x64x64s4w4k16",
                                        /* the stem's two-tap kernel (ResNet-50's 7x7 s2 and
                                         * MobileNetV2's 3x3 s2 stems, C = 3; see below) */
                                        "t4:128x64x32s4w4k1", "t4:64x64x32s4w4k1", "t4:128x64x16s6w4k1",
                                        "t4:64x64x16s6w4k1", "t4:32x64x64s4w4k2", "t4:128x32x32s4w4k1",
                                        "t4:128x32x16s6w2k1", "t4:64x32x16s6w2k1",
                                        /* its space-to-depth form (7x7 s2 as 4x4 s1 on 16 channels) */
                                        "s2d:128x64x32s4w4k1", "s2d:64x64x32s4w4k2"};
static int nvrtc_all(void) {
    int major, minor;
    if (kiln_nvrtc_version(&major, &minor)) {
        printf("SKIP: emu_conv_nhwc --nvrtc: %s\n", kiln_last_error());
        return 77;
    }
    int fails = 0;
    for (size_t t = 0; t < sizeof all_tiles / sizeof all_tiles[0]; t++) {
        conv_case k = {"nvrtc", 8, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 1, all_tiles[t]};
        if (!strncmp(all_tiles[t], "t4:", 3) || !strncmp(all_tiles[t], "s2d:", 4)) { /* stems: 7x7 s2, 3x3 s2 for BK 16 */
            bool bk16 = strstr(all_tiles[t], "x16s") != NULL;
            k = (conv_case){"nvrtc", 8, 3, 224, 224, strstr(all_tiles[t], "x32x") ? 32 : 64, bk16 ? 3 : 7, bk16 ? 3 : 7, 2, bk16 ? 1 : 3,
                            1, 1, 0, all_tiles[t]};
        }
        kiln_graph *g = prepare(&k);
        kiln_codegen_opts o;
        kiln_codegen_opts_init(&o);
        o.precision = KILN_PREC_FP16;
        o.compile = false;
        kiln_bundle *b = kiln_bundle_new();
        char *cuda = NULL, tile[64];
        if (!g || !b || kiln_codegen_build(g, &o, b, &cuda)) {
            printf("FAIL: %s: codegen: %s\n", all_tiles[t], kiln_last_error());
            fails++;
            continue;
        }
        tile_of(cuda, tile, sizeof tile);
        if (strcmp(tile, all_tiles[t])) {
            printf("FAIL: %s: got tile '%s'\n", all_tiles[t], tile);
            fails++;
        }
        static const char *const archs[] = {"sm_80", "sm_90"};
        for (int a = 0; a < 2; a++) {
            static const char *const opts[] = {"--ptxas-options=-v"};
            kiln_nvrtc_request rq = {.name = "conv_nhwc", .source = cuda, .headers = kiln_kernel_headers,
                                     .n_headers = kiln_kernel_header_count, .archs = &archs[a], .n_archs = 1,
                                     .options = opts, .n_options = 1};
            kiln_nvrtc_output out;
            memset(&out, 0, sizeof out);
            kiln_status st = kiln_nvrtc_compile(&rq, &out);
            /* ptxas -v: "Used N registers, ... N bytes smem" and "N bytes spill stores" per function */
            int regs = -1, spills = 0;
            const char *lg = out.log ? out.log : "", *p = lg, *u;
            if (getenv("KILN_NHWC_LOG")) fputs(lg, stdout);
            while ((p = strstr(p, "Function properties for k")) && strstr(p, "_conv_nhwc\n") != strchr(p, '_'))
                p++; /* the main kernel's entry, not the split-K sum's */
            if (p) {
                const char *sp = strstr(p, "bytes stack frame, ");
                if (sp) spills = atoi(sp + 19);
                sp = sp ? strstr(sp, "bytes spill stores, ") : NULL;
                if (sp) spills += atoi(sp + 20);
            }
            if ((u = strstr(p ? p : lg, "Used "))) regs = atoi(u + 5);
            printf("%s: %-16s %s: %d registers, %d B spills, %d B dynamic smem%s%s\n", st || spills ? "FAIL" : "PASS",
                   all_tiles[t], archs[a], regs, spills, (int)b->launches[0].shared_bytes, st ? ": " : "",
                   st ? kiln_last_error() : "");
            fails += st != KILN_OK || spills > 0;
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
        fprintf(stderr, "usage: emu_conv_nhwc SOURCE_DIR WORK_DIR [--nvrtc]\n");
        return 2;
    }
    const char *src = argv[1], *work = argv[2];
    if (argc > 3 && !strcmp(argv[3], "--nvrtc")) return nvrtc_all();
    if (argc > 3 && !strcmp(argv[3], "--gpu")) {
        char mk[1100];
        snprintf(mk, sizeof mk, "mkdir -p %s", work);
        if (system(mk)) return 1;
        int fails = 0;
        bool skip = false;
        int n = 0;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++, n++) fails += gpu_case(&cases[i], work, &skip);
        for (size_t i = 0; i < sizeof gpu_cases / sizeof gpu_cases[0]; i++, n++)
            fails += gpu_case(&gpu_cases[i], work, &skip) + gpu_baseline(&gpu_cases[i], work);
        if (skip) return fails ? 1 : 77;
        printf("%s: %d of %d cases failed on the GPU\n", fails ? "FAIL" : "PASS", fails, n);
        return fails ? 1 : 0;
    }
    char cmd[2048];
    if (system("command -v g++ >/dev/null 2>&1")) {
        printf("SKIP: emu_conv_nhwc: no g++\n");
        return 77;
    }
    snprintf(cmd, sizeof cmd, "mkdir -p %s && g++ -O1 -fPIC -c %s/tests/codegen/emu/emu_sched.cpp -o %s/emu_sched.o", work,
             src, work);
    if (system(cmd)) {
        printf("FAIL: emu_conv_nhwc: %s\n", cmd);
        return 1;
    }
    int fails = 0;
    /* not for this kernel: C = 12 (not a multiple of 8, not < 8 to pad) must not reach conv_nhwc_f16 */
    {
        conv_case k = {"c12", 1, 12, 6, 6, 16, 3, 3, 1, 1, 1, 0, 0, NULL};
        kiln_graph *g = prepare(&k);
        kiln_codegen_opts o;
        kiln_codegen_opts_init(&o);
        o.precision = KILN_PREC_FP16;
        o.compile = false;
        kiln_bundle *b = kiln_bundle_new();
        char *cuda = NULL;
        kiln_status st = g && b ? kiln_codegen_build(g, &o, b, &cuda) : KILN_ERR_OOM;
        bool used = cuda && strstr(cuda, "conv_nhwc_f16<");
        printf("%s: c12: C %% 8 != 0 and C > 8 left to the generic path (%s)\n", used ? "FAIL" : "PASS",
               st ? kiln_last_error() : "built");
        fails += used;
        free(cuda);
        kiln_bundle_free(b);
        kiln_graph_free(g);
    }
    /* EMU_CASES=substring: only the cases whose name contains it (quicker iteration) */
    const char *only = getenv("EMU_CASES");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!only || strstr(cases[i].name, only)) fails += run_case(&cases[i], src, work);
    printf("%s: %d of %d cases failed\n", fails ? "FAIL" : "PASS", fails, (int)(sizeof cases / sizeof cases[0]));
    return fails ? 1 : 0;
}
