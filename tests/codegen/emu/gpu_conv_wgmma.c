/* gpu_conv_wgmma.c — the wgmma (sm_90a) tiles of the fp16 NHWC convolution
 * (kernels/conv_wgmma.cuh, the "wg..." candidates of codegen/cg_conv_nhwc.c).
 * Reuses emu_conv_nhwc.c's graph builders, seeded inputs and CPU-evaluator comparison.
 *
 * usage: gpu_conv_wgmma SOURCE_DIR WORK_DIR --nvrtc | --gpu | --emu; exit 0 pass, 1 fail, 77 skip.
 *   --nvrtc [PREFIXES] (no GPU needed; label codegen): every wg candidate of a ResNet-50-like shape
 *     NVRTC-compiled for sm_90a with -DKILN_WGMMA_REQUIRE (conv_wgmma.cuh #errors if the wgmma
 *     body is not the one compiled) and ptxas -v: fails on a compile error, a spill or a
 *     "wgmma serialized" warning; also compiled for sm_80 and sm_90 (the mma.sync fallback).
 *     Writes WORK/NAME.sm_90a.cubin for `cuobjdump --dump-sass ... | grep HGMMA`.
 *   --emu (label codegen): the wg tiles' fallback path (what sm_80/sm_90 run) on the CPU
 *     emulator for a few cases: the codegen plumbing (threads, shared bytes, split-K).
 *   --gpu [PREFIXES] (label gpu, SKIP 77 without one; PREFIXES: comma-separated tile-name
 *     prefixes, e.g. "ws,wg128x256x64s4g2k1", limit the tiles): every wg/ws candidate x shape (1x1, 3x3 pad 1, 3x3
 *     stride 2, residual epilogue, M and K tails, split-K) built for sm_90 + sm_90a and run on
 *     the GPU against the CPU evaluator (rel L2 <= 5e-3, no NaN), one PASS/FAIL line each; then
 *     bundles WORK/bench/SHAPE@TILE.kiln of ResNet-50's batch-32 shapes for every wg tile and the
 *     largest mma.sync tiles, which tests/gpu/bench_conv_wgmma.sh times with `kiln bench`
 *     (not with KILN_WGMMA_BUNDLES=0: the GPU pack skips them unless KILN_KERNEL_BENCH=1).
 *     Without a GPU: every case generated, the first compiled, no timing bundles (SKIP 77). */
#define main emu_conv_nhwc_main
#include "emu_conv_nhwc.c"
#undef main

static const char *const wg_tiles[] = {"wg128x128x64s4g1k1", "wg128x128x64s4g2k1", "wg128x256x64s4g2k1",
                                       "wg256x128x64s4g2k1", "wg128x256x64s3g2k1", "wg64x128x64s4g1k1",
                                       "wg128x64x64s4g2k1",  "wg128x128x64s4g2k2", "wg128x128x64s4g2k4",
                                       "wgz128x128x64s4g1k1", "wgz128x128x64s4g2k1", "wgz128x256x64s4g2k1",
                                       "wgz256x128x64s4g2k1", "wgz128x64x64s4g2k1",  "wg128x128x64s3g2k1",
                                       "wgz128x128x64s3g2k1", "wgz128x128x64s4g2k2", "wgz128x64x64s4g2k2",
                                       "wgz64x128x64s4g1k1",
                                       /* warp-specialized (conv_wgmma_ws_f16) */
                                       "ws128x256x64s4g2k1", "ws128x128x64s4g2k1", "ws128x128x64s6g2k1",
                                       "ws64x128x64s6g1k1", "ws64x256x64s4g1k1", "ws128x256x64s4g2k2",
                                       "ws128x128x64s4g2k2", "wsz128x256x64s4g2k1", "wsz128x128x64s6g2k1",
                                       /* transposed roles, 64-channel shapes only (conv_wgmma_f16 TR) */
                                       "wtz256x64x64s4g2k1", "wtz256x64x64s4g1k1", "wtz128x64x64s4g1k1",
                                       "wt256x64x64s4g2k1", "wtz256x64x64s4g2k2",
                                       /* deeper pipelines */
                                       "wgz128x128x64s6g2k1", "wgz128x64x64s8g2k1", "wgz128x128x64s6g2k2",
                                       "wtz256x64x64s5g2k1", "wtz128x64x64s8g1k1", "wtz256x64x64s5g2k2",
                                       /* the halo kernel (conv_halo_f16; stride 1, K = 64, C <= 64) */
                                       "hl256x64x64s2g2k1", "hl128x64x64s2g1k1", "hl256x64x64s2g1k1",
                                       "hl128x64x64s2g2k1",
                                       /* TMA loads (conv_tma_f16; every source's C % 64 == 0) */
                                       "tm128x128x64s5g2k1", "tm128x256x64s4g2k1", "tm256x128x64s4g2k1",
                                       "tm128x128x64s6g2k1", "tm128x64x64s8g2k1", "tm64x128x64s8g1k1",
                                       "tm128x128x64s5g2k2", "tm128x256x64s4g2k2",
                                       /* two blocks per SM */
                                       "tm64x128x64s4g1k1", "tm128x64x64s4g2k1",
                                       /* TMA with transposed roles (64 output channels) */
                                       "tmt256x64x64s5g2k1", "tmt256x64x64s5g1k1", "tmt128x64x64s8g1k1",
                                       "tmt256x64x64s5g2k2",
                                       /* persistent, two consumer warpgroups taking turns (conv_tma_pp_f16) */
                                       "tp128x128x64s4g2k1", "tp64x256x64s3g2k1", "tp64x128x64s6g2k1",
                                       "tp128x64x64s6g2k1",
                                       /* ... sharing each tile */
                                       "tc256x128x64s3g2k1", "tc128x256x64s3g2k1", "tc128x128x64s6g2k1",
                                       "tc256x64x64s4g2k1",
                                       /* ... 4 stages, the epilogue staged in two passes (no residual) */
                                       "tc256x128x64s4g2k1", "tc128x256x64s4g2k1",
                                       /* ... the epilogue under the next tile's wgmmas (no residual) */
                                       "to128x128x64s6g2k1",
                                       /* ... in 2-block clusters sharing one operand (TMA multicast) */
                                       "tx128x128x64s6g2k1", "tx256x128x64s3g2k1", "tx128x256x64s3g2k1",
                                       "tx256x128x64s4g2k1", "tx128x256x64s4g2k1",
                                       /* ... with stream-K (where the tiles fill the last wave badly) */
                                       "ts128x128x64s5g2k1", "ts256x64x64s4g2k1",
                                       /* ... with transposed roles (64 output channels a tile) */
                                       "tct256x64x64s4g2k1", "tpt128x64x64s6g2k1",
                                       /* the halo kernel, two warpgroups taking turns (conv_halo_pp_f16) */
                                       "hp112x64x64s2g2k1", "hp128x64x64s2g2k1", "hp64x64x64s2g2k1",
                                       /* ... the weights in registers */
                                       "hr64x64x64s2g2k1", "hr112x64x64s2g2k1",
                                       /* ... three or four warpgroups, one or two halo buffers each */
                                       "hp64x64x64s2g3k1", "hp64x64x64s1g4k1", "hp112x64x64s1g3k1",
                                       /* ... (fp16 staging without a residual) */
                                       "hp112x64x64s1g4k1", "hp64x64x64s2g4k1", "hp128x64x64s1g3k1",
                                       /* ... the halo by TMA */
                                       "hq64x64x64s1g4k1", "hq64x64x64s2g4k1", "hq112x64x64s1g4k1"};
#define N_WG ((int)(sizeof wg_tiles / sizeof wg_tiles[0]))

/* correctness shapes: n c h w k r s stride pad bias relu residual (M and K tails: 13x13 pixels,
 * K = 200 not a multiple of 64/128; C*R*S = 8*9 = 72 not a multiple of 64) */
static const conv_case wg_cases[] = {
    {"wg_1x1", 2, 64, 16, 16, 128, 1, 1, 1, 0, 1, 0, 0, NULL},
    {"wg_3x3_pad1", 1, 64, 13, 13, 200, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"wg_3x3_s2", 2, 32, 33, 33, 128, 3, 3, 2, 1, 0, 0, 0, NULL},
    {"wg_res_relu", 2, 128, 14, 14, 256, 3, 3, 1, 1, 1, 1, 1, NULL},
    {"wg_ktail_c8", 1, 8, 23, 23, 136, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"wg_deep_1x1", 4, 512, 7, 7, 256, 1, 1, 1, 0, 1, 1, 1, NULL},
    /* 64 output channels (the transposed-roles "wt" tiles' shapes): a stage-1 3x3 with M tails,
     * a 1x1 with a residual */
    {"wg_k64_3x3", 2, 64, 19, 17, 64, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"wg_k64_res", 1, 64, 15, 15, 64, 1, 1, 1, 0, 1, 1, 1, NULL},
    /* the halo kernel's C = 32 (two k16 steps a tap), tails in both tile directions, residual */
    {"hl_c32_res", 2, 32, 21, 10, 64, 3, 3, 1, 1, 1, 1, 1, NULL},
    /* the TMA tiles' im2col traversal with strides (odd sizes: the last row of taps in the padding) */
    {"tm_3x3_s2", 2, 64, 29, 27, 128, 3, 3, 2, 1, 1, 1, 0, NULL},
    {"tm_1x1_s2_res", 3, 128, 14, 14, 256, 1, 1, 2, 0, 1, 1, 1, NULL},
    /* enough tiles (392 of 64 x 128) for the persistent "tp" tiles' warpgroups to take turns
     * several times per block */
    {"tp_many_res", 32, 64, 28, 28, 128, 1, 1, 1, 0, 1, 1, 1, NULL},
    /* stream-K ("ts"): 26 tiles of 128 x 128 over 132 blocks (each tile's 18 depth tiles summed from
     * about five blocks; a channel tail: K = 200); 196 tiles of 4 depth tiles (blocks cross tiles,
     * segments start and end inside them), with a residual */
    {"ts_3x3_ktail", 2, 128, 28, 28, 200, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"ts_many_res", 32, 256, 28, 28, 128, 1, 1, 1, 0, 1, 1, 1, NULL},
    /* the hp tiles: ResNet's stage-1 3x3 with a residual, 448 tile pairs of 14 x 8 pixels (each
     * block's warpgroups take several turns); an odd tile count with tails in both directions */
    {"hp_many_res", 32, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, NULL},
    /* ... without one (the epilogue in registers, staged as fp16: stmatrix) */
    {"hp_many", 32, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 0, NULL},
    /* the "to" tiles' overlap (a tile's store under the next one's wgmmas): 784 tiles of 128 x 128 over 132
     * blocks, 4 depth tiles each, no residual */
    {"to_many", 32, 256, 28, 28, 512, 1, 1, 1, 0, 1, 1, 0, NULL},
    {"hp_odd_c16", 1, 16, 13, 17, 64, 3, 3, 1, 1, 1, 0, 0, NULL},
};

/* ResNet-50's convolutions at batch 32 (the issue-5 targets) for the timing bundles */
static const conv_case wg_bench[] = {
    {"b32_s1_3x3", 32, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"b32_s1_1x1_up", 32, 64, 56, 56, 256, 1, 1, 1, 0, 1, 1, 1, NULL},
    {"b32_s2_3x3", 32, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"b32_s3_3x3", 32, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"b32_s3_1x1_dn", 32, 1024, 14, 14, 256, 1, 1, 1, 0, 1, 1, 0, NULL},
    {"b32_s4_3x3", 32, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 0, NULL},
    {"b32_s4_1x1_up", 32, 512, 7, 7, 2048, 1, 1, 1, 0, 1, 1, 1, NULL},
};
static const char *const mma_tiles[] = {"128x128x32s4w8k1", "128x64x32s4w4k1", "64x128x32s4w4k1", "64x64x32s4w4k1"};

static const char *const arch_90a[] = {"sm_90", "sm_90a"};

/* Codegen of case k with tile forced for archs; the generated source in *cuda (caller frees).
 * 1 = the tile is not a candidate of this shape (skipped), -1 = error. */
static int gen(const conv_case *k, const char *tile, const char *const *archs, int n_archs, bool compile,
               kiln_bundle **bo, char **cuda) {
    conv_case kk = *k;
    kk.tile = tile;
    kiln_graph *g = prepare(&kk);
    kiln_codegen_opts o;
    kiln_codegen_opts_init(&o);
    o.precision = KILN_PREC_FP16;
    o.archs = archs;
    o.n_archs = n_archs;
    o.compile = compile;
    kiln_bundle *b = kiln_bundle_new();
    *cuda = NULL;
    if (!g || !b || kiln_codegen_build(g, &o, b, cuda)) {
        printf("FAIL: %s %s: codegen: %s\n", k->name, tile, kiln_last_error());
        kiln_bundle_free(b);
        kiln_graph_free(g);
        return -1;
    }
    kiln_graph_free(g);
    char want[96];
    snprintf(want, sizeof want, "tile %s\n", tile);
    if (!strstr(*cuda, want)) { /* kiln_cg_choose ignores a tile that is not a candidate */
        kiln_bundle_free(b);
        free(*cuda);
        *cuda = NULL;
        return 1;
    }
    if (bo) *bo = b;
    else kiln_bundle_free(b);
    return 0;
}

/* --gpu [PREFIXES]: a comma-separated list of tile-name prefixes ("ws,wg128x256") limits the
 * wg/ws tiles checked and bundled (GPU time); without it, all */
static const char *tile_filter;
static bool tile_selected(const char *tile) {
    if (!tile_filter || !*tile_filter) return true;
    for (const char *p = tile_filter; *p;) {
        size_t n = strcspn(p, ",");
        if (n && !strncmp(tile, p, n)) return true;
        p += n + (p[n] == ',');
    }
    return false;
}

static int wg_nvrtc(const char *work) {
    int major, minor;
    if (kiln_nvrtc_version(&major, &minor)) {
        printf("SKIP: gpu_conv_wgmma --nvrtc: %s\n", kiln_last_error());
        return 77;
    }
    char mk[1100];
    snprintf(mk, sizeof mk, "mkdir -p %s", work);
    if (system(mk)) return 1;
    int fails = 0;
    const conv_case k = {"nvrtc", 32, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 1, NULL};
    /* the halo tiles: 64 output channels, C = 32 (the 256-row ones do not fit C = 64) */
    const conv_case k64 = {"nvrtc_k64", 32, 32, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, NULL};
    /* the tiles only for convs without a residual (tc256x128x64s4, tc128x256x64s4): k without one */
    const conv_case k_nores = {"nvrtc_nores", 32, 256, 14, 14, 256, 3, 3, 1, 1, 1, 1, 0, NULL};
    /* the hp tiles on ResNet's stage-1 3x3 (C = 64: all 73.7 KB of weights in shared memory) */
    const conv_case k64c64 = {"nvrtc_k64c64", 32, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 0, NULL};
    for (int t = 0; t < N_WG; t++) {
        if (!tile_selected(wg_tiles[t])) continue;
        char *cuda = NULL;
        const bool hl = !strncmp(wg_tiles[t], "hl", 2), hp = !strncmp(wg_tiles[t], "hp", 2) || !strncmp(wg_tiles[t], "hr", 2) || !strncmp(wg_tiles[t], "hq", 2);
        int r = gen(hp ? &k64c64 : hl ? &k64 : &k, wg_tiles[t], arch_90a, 2, false, NULL, &cuda);
        if (r == 1 && !hl && !hp) r = gen(&k_nores, wg_tiles[t], arch_90a, 2, false, NULL, &cuda);
        if (r == 1 && hp) r = gen(&k64, wg_tiles[t], arch_90a, 2, false, NULL, &cuda); /* (hp128: C = 64 does not fit) */
        if (r) {
            printf("FAIL: %s: not generated for the sm_90a build\n", wg_tiles[t]);
            fails++;
            continue;
        }
        static const char *const archs[] = {"sm_90a", "sm_90", "sm_80"};
        for (int a = 0; a < 3; a++) {
            static const char *const opts_a[] = {"--ptxas-options=-v", "-DKILN_WGMMA_REQUIRE"};
            kiln_nvrtc_request rq = {.name = "conv_wgmma", .source = cuda, .headers = kiln_kernel_headers,
                                     .n_headers = kiln_kernel_header_count, .archs = &archs[a], .n_archs = 1,
                                     .options = opts_a, .n_options = a == 0 ? 2 : 1};
            kiln_nvrtc_output out;
            memset(&out, 0, sizeof out);
            kiln_status st = kiln_nvrtc_compile(&rq, &out);
            const char *lg = out.log ? out.log : "", *p = strstr(lg, "_conv_nhwc' for"), *u;
            int regs = -1, spills = 0;
            if (getenv("KILN_WGMMA_LOG")) fputs(lg, stdout);
            if (!p) p = lg;
            const char *sp = strstr(p, "bytes stack frame, ");
            if (sp) spills = atoi(sp + 19);
            sp = sp ? strstr(sp, "bytes spill stores, ") : NULL;
            if (sp) spills += atoi(sp + 20);
            if ((u = strstr(p, "Used "))) regs = atoi(u + 5);
            bool serial = strstr(lg, "C7509") || strstr(lg, "C7510") || strstr(lg, "serializ");
            /* a ws / tm tile's fallback (sm_80 / sm_90: no wgmma) runs 4 * WG of its 4 * (WG + 1) warps
             * under the kernel's __launch_bounds__: 128x256 then spills a little there, where it
             * does not matter (an H100 loads the sm_90a cubin); sm_90a must not spill */
            bool ws_fallback = a > 0 && (!strncmp(wg_tiles[t], "ws", 2) || wg_tiles[t][0] == 't'); /* (and tm / tp / tc / ts's) */
            bool bad = st != KILN_OK || (spills > 0 && !ws_fallback) || serial;
            printf("%s: %-20s %-6s: %d registers, %d B spills%s%s%s%s\n", bad ? "FAIL" : "PASS", wg_tiles[t], archs[a],
                   regs, spills, spills > 0 && ws_fallback ? " (mma.sync fallback, tolerated)" : "",
                   serial ? ", wgmma serialized" : "", st ? ": " : "", st ? kiln_last_error() : "");
            fails += bad;
            if (!st && a == 0 && out.n_images > 0) {
                char path[1200];
                snprintf(path, sizeof path, "%s/%s.sm_90a.cubin", work, wg_tiles[t]);
                FILE *f = fopen(path, "wb");
                if (!f || fwrite(out.images[0].data, 1, out.images[0].size, f) != out.images[0].size) fails++;
                if (f) fclose(f);
            }
            kiln_nvrtc_output_free(&out);
        }
        free(cuda);
    }
    /* what the heuristic picks for ResNet-50 batch 32 in an sm_90 + sm_90a build (information) */
    for (size_t i = 0; i < sizeof wg_bench / sizeof wg_bench[0]; i++) {
        kiln_graph *g = prepare(&wg_bench[i]);
        kiln_codegen_opts o;
        kiln_codegen_opts_init(&o);
        o.precision = KILN_PREC_FP16;
        o.archs = arch_90a;
        o.n_archs = 2;
        o.compile = false;
        kiln_bundle *b = kiln_bundle_new();
        char *cuda = NULL, tile[64] = "";
        if (g && b && !kiln_codegen_build(g, &o, b, &cuda)) tile_of(cuda, tile, sizeof tile);
        printf("heuristic (sm_90,sm_90a): %-16s tile %s\n", wg_bench[i].name, tile);
        free(cuda);
        kiln_bundle_free(b);
        kiln_graph_free(g);
    }
    printf("%s: gpu_conv_wgmma --nvrtc: %d failures\n", fails ? "FAIL" : "PASS", fails);
    return fails ? 1 : 0;
}

/* --emu: the fallback of two wg tiles (one split-K) on the CPU emulator via emu_conv_nhwc's run_case */
static int wg_emu(const char *src, const char *work) {
    char cmd[2048];
    if (system("command -v g++ >/dev/null 2>&1")) {
        printf("SKIP: gpu_conv_wgmma --emu: no g++\n");
        return 77;
    }
    snprintf(cmd, sizeof cmd, "mkdir -p %s && g++ -O1 -fPIC -c %s/tests/codegen/emu/emu_sched.cpp -o %s/emu_sched.o", work,
             src, work);
    if (system(cmd)) return 1;
    /* run_case builds without archs (no sm_90a), so the wg tiles are offered through an
     * sm_90a codegen here and checked for the fallback's template; then emulated */
    static const conv_case ec[] = {
        {"emu_wg_res", 1, 16, 9, 9, 128, 3, 3, 1, 1, 1, 1, 1, NULL},
        {"emu_wg_s2_splitk", 2, 64, 17, 17, 128, 3, 3, 2, 1, 1, 0, 0, NULL},
    };
    static const char *const et[] = {"wg64x128x64s4g1k1", "wg128x128x64s4g2k2", "ws64x128x64s6g1k1", "ws128x128x64s4g2k2"};
    /* the halo kernel: its scalar fallback reads the shared layout through wgmma's descriptor
     * arithmetic, so a layout or fragment-mapping bug fails here (tails in x and y, residual;
     * a 3x3 over 32 channels, the 7x7 stem as space-to-depth) */
    static const conv_case hc[] = {
        {"emu_hl_c32_res", 1, 32, 19, 10, 64, 3, 3, 1, 1, 1, 1, 1, NULL},
        {"emu_hl_s2d", 1, 3, 23, 21, 64, 7, 7, 2, 3, 1, 1, 0, NULL},
    };
    static const char *const ht[] = {"hl128x64x64s2g1k1", "s2d:hl256x64x64s2g2k1"};
    /* the TMA tiles: tensor-map arguments (zeros here) beside the pointers the fallback reads */
    static const conv_case tc[] = {
        {"emu_tm_res", 1, 64, 9, 9, 128, 3, 3, 1, 1, 1, 1, 1, NULL},
        {"emu_tm_s2_splitk", 2, 64, 17, 17, 128, 3, 3, 2, 1, 1, 0, 0, NULL},
        /* (stream-K's: few tiles, several depth tiles each: 9 x 2 tiles of 128 x 128, 18 deep) */
        {"emu_ts_res", 2, 128, 23, 23, 200, 3, 3, 1, 1, 1, 1, 1, NULL},
    };
    static const char *const tt[] = {"tm64x128x64s8g1k1", "tm128x128x64s5g2k2", "tp64x128x64s6g2k1", "tc256x128x64s4g2k1",
                                     "ts128x128x64s5g2k1"};
    int fails = 0;
    for (int i = 0; i < 11; i++) { /* the ws tiles: the producer warpgroup exits, the others run the fallback */
        char *cuda = NULL;
        kiln_bundle *b = NULL;
        const conv_case *cs = i < 4 ? &ec[i % 2] : i < 6 ? &hc[i - 4] : &tc[i < 9 ? (i - 6) % 2 : i - 8];
        const char *tile = i < 4 ? et[i] : i < 6 ? ht[i - 4] : tt[i - 6];
        int r = gen(cs, tile, arch_90a, 2, false, &b, &cuda);
        if (r || !strstr(cuda, i < 2   ? "conv_wgmma_f16<"
                               : i < 4 ? "conv_wgmma_ws_f16<"
                               : i < 6 ? "conv_halo_f16<"
                               : i < 8 ? "conv_tma_f16<"
                                       : "conv_tma_pp_f16<")) {
            printf("FAIL: %s: tile %s not generated\n", cs->name, tile);
            fails++;
        } else {
            conv_case kk = *cs;
            kk.tile = tile;
            case_archs = arch_90a, case_n_archs = 2;
            fails += run_case(&kk, src, work);
        }
        free(cuda);
        kiln_bundle_free(b);
    }
    /* the persistent transposed-roles tiles (64 output channels, a residual, M tails) */
    static const conv_case trc = {"emu_tct_k64_res", 2, 64, 13, 11, 64, 3, 3, 1, 1, 1, 1, 1, NULL};
    static const char *const trt[] = {"tct256x64x64s4g2k1", "tpt128x64x64s6g2k1"};
    for (int i = 0; i < 2; i++) {
        char *cuda = NULL;
        kiln_bundle *b = NULL;
        int r = gen(&trc, trt[i], arch_90a, 2, false, &b, &cuda);
        if (r || !strstr(cuda, "conv_tma_pp_f16<") || !strstr(cuda, ", 1, true>")) {
            printf("FAIL: %s: tile %s not generated\n", trc.name, trt[i]);
            fails++;
        } else {
            conv_case kk = trc;
            kk.tile = trt[i];
            case_archs = arch_90a, case_n_archs = 2;
            fails += run_case(&kk, src, work);
        }
        free(cuda);
        kiln_bundle_free(b);
    }
    /* the cluster tiles (the fallback ignores the pairing; an even grid): 9 x 2 tiles of 128 x 128 (pairs of
     * channel tiles), 5 x 1 of 128 x 256 (pairs of pixel rows, the last pair's second row past M) */
    /* ... and the epilogue under the next tile's wgmmas ("to", no residual: the stride-2 case) */
    static const char *const txt[] = {"tx128x128x64s6g2k1", "tx128x256x64s3g2k1", "to128x128x64s6g2k1"};
    for (int i = 0; i < 3; i++) {
        char *cuda = NULL;
        kiln_bundle *b = NULL;
        const conv_case *cs = i < 2 ? &tc[2] : &tc[1];
        int r = gen(cs, txt[i], arch_90a, 2, false, &b, &cuda);
        if (r || (i < 2 && !strstr(cuda, "KILN_CLUSTER2")) ||
            !strstr(cuda, i == 2 ? ", 0, true>" : i ? ", false, 2>" : ", false, 1>")) {
            printf("FAIL: %s: tile %s not generated\n", cs->name, txt[i]);
            fails++;
        } else {
            conv_case kk = *cs;
            kk.tile = txt[i];
            case_archs = arch_90a, case_n_archs = 2;
            fails += run_case(&kk, src, work);
        }
        free(cuda);
        kiln_bundle_free(b);
    }
    /* the halo kernel's turns (conv_halo_pp_f16): C = 32 with a residual (14-row tiles over 19 rows,
     * 8-column tiles over 10); an odd number of tiles (3: the second warpgroup's last turn has none);
     * the stem as space-to-depth */
    static const conv_case hpc[] = {
        {"emu_hp_c32_res", 1, 32, 19, 10, 64, 3, 3, 1, 1, 1, 1, 1, NULL},
        {"emu_hp_odd", 1, 16, 13, 17, 64, 3, 3, 1, 1, 1, 0, 0, NULL},
        {"emu_hp_s2d", 1, 3, 23, 21, 64, 7, 7, 2, 3, 1, 1, 0, NULL},
        /* C = 64 (the swizzled layout where KILN_HP_SWZ asks for it), a residual */
        {"emu_hp_c64_res", 1, 64, 11, 17, 64, 3, 3, 1, 1, 1, 1, 1, NULL},
        {"emu_hp_c64_res", 1, 64, 11, 17, 64, 3, 3, 1, 1, 1, 1, 1, NULL},
        /* 3 and 4 warpgroups: 6 tiles (two full sets of 3; one set of 4 and one of 2) */
        {"emu_hp_g34", 1, 64, 15, 22, 64, 3, 3, 1, 1, 1, 1, 1, NULL},
        {"emu_hp_g34", 1, 64, 15, 22, 64, 3, 3, 1, 1, 1, 1, 1, NULL},
        {"emu_hp_s2d", 1, 3, 23, 21, 64, 7, 7, 2, 3, 1, 1, 0, NULL},
        /* C = 64 without a residual (fp16 staging): 4 warpgroups of 112- and 64-pixel tiles, 3 of 128 */
        {"emu_hp_c64", 1, 64, 15, 22, 64, 3, 3, 1, 1, 1, 1, 0, NULL},
        {"emu_hp_c64", 1, 64, 15, 22, 64, 3, 3, 1, 1, 1, 1, 0, NULL},
        {"emu_hp_c64", 1, 64, 15, 22, 64, 3, 3, 1, 1, 1, 1, 0, NULL},
        /* hq (the halo by TMA where there is wgmma; the fallback copies it): with and without a residual */
        {"emu_hp_c64_res", 1, 64, 11, 17, 64, 3, 3, 1, 1, 1, 1, 1, NULL},
        {"emu_hp_c64", 1, 64, 15, 22, 64, 3, 3, 1, 1, 1, 1, 0, NULL},
    };
    /* (hr: the weights in registers only where there is wgmma; the fallback reads them from shared memory) */
    static const char *const hpt[] = {"hp112x64x64s2g2k1", "hp112x64x64s2g2k1", "s2d:hp128x64x64s2g2k1", "hp64x64x64s2g2k1",
                                      "hr64x64x64s2g2k1",  "hp64x64x64s2g3k1",  "hp64x64x64s1g4k1",      "s2d:hp112x64x64s1g3k1",
                                      "hp112x64x64s1g4k1", "hp64x64x64s2g4k1",  "hp128x64x64s1g3k1",
                                      "hq64x64x64s1g4k1",  "hq112x64x64s1g4k1"};
    for (int i = 0; i < (int)(sizeof hpt / sizeof hpt[0]); i++) {
        char *cuda = NULL;
        kiln_bundle *b = NULL;
        int r = gen(&hpc[i], hpt[i], arch_90a, 2, false, &b, &cuda);
        if (r || !strstr(cuda, "conv_halo_pp_f16<")) {
            printf("FAIL: %s: tile %s not generated\n", hpc[i].name, hpt[i]);
            fails++;
        } else {
            conv_case kk = hpc[i];
            kk.tile = hpt[i];
            case_archs = arch_90a, case_n_archs = 2;
            fails += run_case(&kk, src, work);
        }
        free(cuda);
        kiln_bundle_free(b);
    }
    printf("%s: gpu_conv_wgmma --emu: %d failures\n", fails ? "FAIL" : "PASS", fails);
    return fails ? 1 : 0;
}

/* Each selected tile x case on the GPU (a tile that is no candidate of a shape is skipped). */
typedef struct run_state {
    int fails, n, skipped;
    bool skip;
    char first_run[128];
} run_state;
static void run_tiles(const conv_case *cs, size_t n_cases, const char *const *tiles, int n_tiles, const char *work,
                      run_state *rs) {
    for (size_t i = 0; i < n_cases; i++)
        for (int t = 0; t < n_tiles; t++) {
            char *cuda = NULL;
            if (!tile_selected(tiles[t])) continue;
            int r = gen(&cs[i], tiles[t], arch_90a, 2, false, NULL, &cuda);
            free(cuda);
            if (r) { /* not a candidate of this shape (e.g. split-K with too few K tiles) */
                rs->skipped += r > 0;
                rs->fails += r < 0;
                continue;
            }
            conv_case kk = cs[i];
            kk.tile = tiles[t];
            char name[128];
            snprintf(name, sizeof name, "%s@%s", cs[i].name, tiles[t]);
            for (char *q = name; *q; q++)
                if (*q == ':') *q = '_'; /* (a file name) */
            kk.name = name;
            if (rs->skip) { /* no GPU (found by the first case): the codegen above is all that runs */
                rs->n++;
                continue;
            }
            rs->fails += gpu_case(&kk, work, &rs->skip);
            if (!rs->first_run[0]) snprintf(rs->first_run, sizeof rs->first_run, "%s", name);
            rs->n++;
        }
}

/* --gpu: every wg candidate x correctness shape on the GPU, then the timing bundles */
static int wg_gpu(const char *work) {
    char mk[1100];
    snprintf(mk, sizeof mk, "mkdir -p %s/bench", work);
    if (system(mk)) return 1;
    case_archs = arch_90a, case_n_archs = 2;
    run_state st_ = {0};
    run_tiles(wg_cases, sizeof wg_cases / sizeof wg_cases[0], wg_tiles, N_WG, work, &st_);
    /* the stride-2 stem as a space-to-depth conv on wgmma tiles ("s2d:", cg_conv_nhwc.c): 7x7 and
     * 3x3 filters, C = 3 and 1, odd sizes, split-K */
    static const conv_case s2d_cases[] = {
        {"s2d_7x7", 2, 3, 37, 35, 64, 7, 7, 2, 3, 1, 1, 0, NULL},
        {"s2d_3x3_k128", 1, 3, 30, 29, 128, 3, 3, 2, 1, 1, 1, 0, NULL},
        {"s2d_7x7_c1", 1, 1, 41, 40, 64, 7, 7, 2, 3, 0, 1, 0, NULL},
    };
    static const char *const s2d_tiles[] = {"s2d:wgz128x64x64s4g2k1", "s2d:wg128x128x64s4g2k1",
                                            "s2d:wgz128x64x64s4g2k2", "s2d:hl256x64x64s2g2k1",
                                            "s2d:hl128x64x64s2g1k1", "s2d:hl256x64x64s2g1k1",
                                            "s2d:hp128x64x64s2g2k1", "s2d:hp112x64x64s2g2k1",
                                            "s2d:hr112x64x64s2g2k1", "s2d:hr64x64x64s2g2k1",
                                            "s2d:hp112x64x64s1g3k1", "s2d:hp64x64x64s1g4k1",
                                            "s2d:hp112x64x64s1g4k1"};
    run_tiles(s2d_cases, sizeof s2d_cases / sizeof s2d_cases[0], s2d_tiles, 13, work, &st_);
    int fails = st_.fails, n = st_.n, skipped = st_.skipped;
    bool skip = st_.skip;
    const char *first_run = st_.first_run;
    /* the runtime must have loaded the sm_90a cubin (else the cases above ran the fallback) */
    if (!skip && first_run[0]) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.kiln", work, first_run);
        kiln_bundle_model *m = NULL;
        kiln_status st = kiln_bundle_model_open(path, NULL, &m);
        const char *info = st ? kiln_last_error() : kiln_bundle_model_image_info(m);
        bool ok = !st && strstr(info, "cubin sm_90a") != NULL;
        printf("%s: image loaded for the wg tiles: %s\n", ok ? "PASS" : "FAIL", info);
        fails += !ok;
        kiln_bundle_model_free(m);
    }
    /* timing bundles: ResNet-50 batch 32, every wg tile and the big mma.sync tiles (sm_90 only);
     * WORK/bench/gflop.txt: "SHAPE GFLOP" for the TFLOP/s of tests/gpu/bench_conv_wgmma.sh */
    static const char *const arch_90[] = {"sm_90"};
    const char *nb = getenv("KILN_WGMMA_BUNDLES"); /* "0": no timing bundles (minutes of NVRTC) */
    if ((nb && !strcmp(nb, "0")) || skip) { /* (without a GPU they would only be compiled: --nvrtc does that) */
        printf("%s: gpu_conv_wgmma --gpu: %d of %d wg cases failed (%d tile/shape pairs not candidates; no timing "
               "bundles%s)%s\n",
               fails ? "FAIL" : "PASS", fails, n, skipped, skip ? "" : ": KILN_WGMMA_BUNDLES=0",
               skip ? " (no GPU: the first case compiled, the others generated only)" : "");
        return fails ? 1 : skip ? 77 : 0;
    }
    char gpath[1200];
    snprintf(gpath, sizeof gpath, "%s/bench/gflop.txt", work);
    FILE *gf = fopen(gpath, "w");
    if (!gf) return 1;
    for (size_t i = 0; i < sizeof wg_bench / sizeof wg_bench[0]; i++) {
        const conv_case *k = &wg_bench[i];
        int64_t p = (k->h + 2 * k->pad - k->r) / k->stride + 1, q = (k->w + 2 * k->pad - k->s) / k->stride + 1;
        fprintf(gf, "%s %.6f\n", k->name, 2e-9 * (double)k->n * p * q * k->k * k->c * k->r * k->s);
    }
    fclose(gf);
    for (size_t i = 0; i < sizeof wg_bench / sizeof wg_bench[0]; i++)
        for (int t = 0; t < N_WG + 4; t++) {
            const bool wg = t < N_WG;
            const char *tile = wg ? wg_tiles[t] : mma_tiles[t - N_WG];
            if (wg && !tile_selected(tile)) continue;
            kiln_bundle *b = NULL;
            char *cuda = NULL, path[1200];
            int r = gen(&wg_bench[i], tile, wg ? arch_90a : arch_90, wg ? 2 : 1, true, &b, &cuda);
            free(cuda);
            if (r) {
                fails += r < 0;
                continue;
            }
            snprintf(path, sizeof path, "%s/bench/%s@%s.kiln", work, wg_bench[i].name, tile);
            if (kiln_bundle_write(b, path)) {
                printf("FAIL: %s: %s\n", path, kiln_last_error());
                fails++;
            }
            kiln_bundle_free(b);
        }
    printf("%s: gpu_conv_wgmma --gpu: %d of %d wg cases failed (%d tile/shape pairs not candidates)%s\n",
           fails ? "FAIL" : "PASS", fails, n, skipped, skip ? " (no GPU: generated and compiled only)" : "");
    if (skip) return fails ? 1 : 77;
    return fails ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: gpu_conv_wgmma SOURCE_DIR WORK_DIR --nvrtc | --emu | --gpu\n");
        return 2;
    }
    setenv("KILN_WGMMA_WS", "1", 1); /* the warp-specialized "ws" tiles are candidates only then */
    setenv("KILN_WGMMA_TR", "1", 1); /* likewise the transposed-roles "wt" tiles */
    setenv("KILN_WGMMA_SK", "1", 1); /* and the stream-K "ts" tiles */
    setenv("KILN_WGMMA_TRPP", "1", 1); /* and the persistent transposed-roles "tct" / "tpt" tiles */
    setenv("KILN_WGMMA_CL", "1", 1);   /* and the cluster "tx" tiles */
    setenv("KILN_WGMMA_OV", "1", 1);   /* and the overlapped-store "to" tiles */
    setenv("KILN_WGMMA_HALO", "1", 1); /* and the halo kernel's "hl" tiles */
    setenv("KILN_WGMMA_HPP", "1", 1);  /* and its turn-taking "hp" tiles */
    setenv("KILN_WGMMA_TMA", "1", 1);  /* and the TMA "tm" tiles */
    if (!strcmp(argv[3], "--nvrtc")) {
        tile_filter = argc > 4 ? argv[4] : NULL;
        return wg_nvrtc(argv[2]);
    }
    if (!strcmp(argv[3], "--emu")) return wg_emu(argv[1], argv[2]);
    if (!strcmp(argv[3], "--gpu")) {
        tile_filter = argc > 4 ? argv[4] : NULL;
        return wg_gpu(argv[2]);
    }
    fprintf(stderr, "gpu_conv_wgmma: unknown mode %s\n", argv[3]);
    return 2;
}
