/*
 * cg_conv_nhwc.c — 2-D convolutions with NHWC activations at --precision fp16 on the
 * cp.async + ldmatrix + mma.sync implicit GEMM of kernels/conv_nhwc.cuh.
 *
 * kiln_cg_emit_conv (cg_conv.c) asks kiln_cg_emit_conv_nhwc first; it handles a Conv or
 * conv_epilogue group when: 2-D, group 1, x and y stored NHWC, precision fp16, x / y / residual
 * fp16, C % 8 == 0 (or C < 8: x is first copied to node scratch with C padded to 8 by
 * emit_pad_c, the weights padded with zeros, the signature says ":cpadC"; for C <= 4 also the
 * two-tap "t4:" candidates on x padded to 4, see pair_cfgs) and K % 8 == 0,
 * constant weights. Anything else is left to the generic path
 * (*handled = false, KILN_OK). The weights are added to the bundle as OHWI [K][R][S][C] fp16.
 *
 * Tile configurations are candidates of kiln_cg_choose() (names "BMxBNxBKsSTAGESwWARPSkSPLITK",
 * warp tiles fixed per name); the shape filters them (no block tile much taller than M or wider
 * than K, split-K only with >= 2 K tiles per split, shared memory within the smallest target's
 * limit) and a heuristic picks the candidate of least estimated time (cfg_cost: SM waves x tile
 * efficiency and resident warps, a latency per K tile, vs DRAM traffic; batch 1's late stages get
 * small tiles and split-K).
 */
#include "codegen/cg_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct nhwc_cfg {
    int bm, bn, bk, wm, wn, stages, splitk;
    int wg; /* > 0: conv_wgmma.cuh with this many warpgroups (sm_90a builds only; wm, wn unused) */
    int sw; /* wgmma flags: NHWC_SWZ = 128-byte swizzled shared layout ("wgz" names), NHWC_WS =
             * warp-specialized: one more (producer) warpgroup, mbarrier stages ("ws" names) */
} nhwc_cfg;
#define NHWC_SWZ 1
#define NHWC_WS 2
#define NHWC_TR 4 /* wgmma with transposed roles (conv_wgmma_f16 TR): weights as A, pixels as B; BN = 64 */
#define NHWC_HALO 8 /* conv_halo_f16: stride 1, K = 64, C <= 64; BM = 8 * TY pixels ("hl" names) */
#define NHWC_TMA 16 /* conv_tma_f16: TMA im2col / tiled loads, a producer warpgroup ("tm" names); C % 64 == 0 */
#define NHWC_PP 32  /* with NHWC_TMA: conv_tma_pp_f16, persistent, two consumer warpgroups taking turns,
                     * the epilogue stored by TMA ("tp" names; bm = one warpgroup's tile rows, wg = 2);
                     * y (and the residual) in the arena */
#define NHWC_COOP 64 /* with NHWC_PP: both consumer warpgroups share each tile, bm/2 rows each ("tc" names) */
#define NHWC_SK 128  /* with NHWC_COOP: stream-K, each block an even share of all tiles' depth tiles ("ts" names;
                      * fp32 partials in node scratch, flags in a KILN_ARG_SYNC region) */
#define NHWC_HALF 256 /* with NHWC_COOP: the epilogue staged in two passes through half the buffer (no residual) */
#define NHWC_RA 512   /* with NHWC_HALO | NHWC_PP: the weights in registers (conv_halo_pp_f16 RA, "hr" names) */
#define NHWC_HTMA 1024 /* with NHWC_HALO | NHWC_PP, C = 64, x in the arena: the halo by TMA (conv_halo_pp_f16 TMAH, "hq") */
#define NHWC_CL 2048   /* with NHWC_COOP: 2-block clusters sharing one operand by TMA multicast (conv_tma_pp_f16 CL, "tx") */
#define NHWC_OV 4096   /* with NHWC_COOP, no residual: the epilogue under the next tile's wgmmas (conv_tma_pp_f16 OV, "to") */
/* the ts tiles are candidates only where the tc tiles fill the last wave below this share of the
 * SMs (tiles / (waves * SMs); ResNet-50 b32: 98 tiles of 128 x 128 for 132 SMs, 0.74) */
#define NHWC_SK_WAVE 0.8

/* In preference order: larger tiles first, split-K last. */
static const nhwc_cfg nhwc_cfgs[] = {
    {128, 128, 32, 64, 32, 4, 1, 0, 0}, {128, 64, 32, 64, 32, 4, 1, 0, 0}, {64, 128, 32, 32, 64, 4, 1, 0, 0},
    {64, 64, 32, 32, 32, 4, 1, 0, 0},   {64, 64, 64, 32, 32, 3, 1, 0, 0},  {32, 64, 64, 16, 32, 4, 1, 0, 0},
    {32, 32, 64, 16, 32, 4, 1, 0, 0},   {64, 64, 32, 32, 32, 4, 2, 0, 0},  {64, 64, 32, 32, 32, 4, 4, 0, 0},
    {32, 64, 64, 16, 32, 4, 2, 0, 0},   {32, 64, 64, 16, 32, 4, 4, 0, 0},  {32, 64, 64, 16, 32, 4, 8, 0, 0},
    {32, 64, 64, 16, 32, 4, 16, 0, 0},
    /* wgmma (kernels/conv_wgmma.cuh), offered only when the build targets sm_90a */
    {128, 128, 64, 0, 0, 4, 1, 1, 0}, {128, 128, 64, 0, 0, 4, 1, 2, 0}, {128, 256, 64, 0, 0, 4, 1, 2, 0},
    {256, 128, 64, 0, 0, 4, 1, 2, 0}, {128, 256, 64, 0, 0, 3, 1, 2, 0}, {64, 128, 64, 0, 0, 4, 1, 1, 0},
    {128, 64, 64, 0, 0, 4, 1, 2, 0},  {128, 128, 64, 0, 0, 4, 2, 2, 0}, {128, 128, 64, 0, 0, 4, 4, 2, 0},
    /* the same with the 128-byte swizzled layout; after the plain ones, so that the heuristic
     * keeps the plain tile at equal cost (the tuner measures) */
    {128, 128, 64, 0, 0, 4, 1, 1, 1}, {128, 128, 64, 0, 0, 4, 1, 2, 1}, {128, 256, 64, 0, 0, 4, 1, 2, 1},
    {256, 128, 64, 0, 0, 4, 1, 2, 1}, {128, 64, 64, 0, 0, 4, 1, 2, 1},
    /* 96 KiB: two blocks (four warpgroups) per SM */
    {128, 128, 64, 0, 0, 3, 1, 2, 0}, {128, 128, 64, 0, 0, 3, 1, 2, 1},
    /* swizzled split-K and a 64-row tile for the late stages' small grids (ResNet-50 b32 layer4:
     * M = 1568 pixels, 104 blocks of 128x64 for 132 SMs) */
    {128, 128, 64, 0, 0, 4, 2, 2, 1}, {128, 64, 64, 0, 0, 4, 2, 2, 1}, {64, 128, 64, 0, 0, 4, 1, 1, 1},
    /* warp-specialized wgmma (conv_wgmma_ws_f16): a producer warpgroup feeds the consumers through
     * mbarriers; separate names so that a GPU failure drops only these. Never the heuristic's
     * pick (NHWC_WS_HEURISTIC) until measured: the tuner (or --tile) chooses them. Smaller M
     * tiles and split-K for the late ResNet stages (M = 6272 at batch 32 is 49 blocks of 128). */
    {128, 256, 64, 0, 0, 4, 1, 2, NHWC_WS},          {128, 128, 64, 0, 0, 4, 1, 2, NHWC_WS},
    {128, 128, 64, 0, 0, 6, 1, 2, NHWC_WS},          {64, 128, 64, 0, 0, 6, 1, 1, NHWC_WS},
    {64, 256, 64, 0, 0, 4, 1, 1, NHWC_WS},           {128, 256, 64, 0, 0, 4, 2, 2, NHWC_WS},
    {128, 128, 64, 0, 0, 4, 2, 2, NHWC_WS},          {128, 256, 64, 0, 0, 4, 1, 2, NHWC_WS | NHWC_SWZ},
    {128, 128, 64, 0, 0, 6, 1, 2, NHWC_WS | NHWC_SWZ},
    /* transposed roles for 64-channel convs ("wt" names: m64nNk16 with N = BM / WG pixels): tuner
     * candidates (KILN_WGMMA_TR=0 drops them), never the heuristic's pick */
    {256, 64, 64, 0, 0, 4, 1, 2, NHWC_TR | NHWC_SWZ}, {256, 64, 64, 0, 0, 4, 1, 1, NHWC_TR | NHWC_SWZ},
    {128, 64, 64, 0, 0, 4, 1, 1, NHWC_TR | NHWC_SWZ}, {256, 64, 64, 0, 0, 4, 1, 2, NHWC_TR},
    {256, 64, 64, 0, 0, 4, 2, 2, NHWC_TR | NHWC_SWZ},
    /* deeper pipelines (prefetch distance STAGES - 2): ncu on an H100 shows the 4-stage tiles
     * latency-bound, not shared-memory- or tensor-bound (ResNet-18 b32 stage 1: 12% occupancy,
     * 30% SM throughput); each still under 224 KiB */
    {128, 128, 64, 0, 0, 6, 1, 2, NHWC_SWZ},          {128, 64, 64, 0, 0, 8, 1, 2, NHWC_SWZ},
    {128, 128, 64, 0, 0, 6, 2, 2, NHWC_SWZ},          {256, 64, 64, 0, 0, 5, 1, 2, NHWC_TR | NHWC_SWZ},
    {128, 64, 64, 0, 0, 8, 1, 1, NHWC_TR | NHWC_SWZ}, {256, 64, 64, 0, 0, 5, 2, 2, NHWC_TR | NHWC_SWZ},
    /* the halo kernel (kernels/conv_wgmma.cuh conv_halo_f16: the input tile loaded once, no
     * im2col copies): TY = BM / 8 output rows of 8 columns, WG warpgroups; tuner candidates only */
    {256, 64, 64, 0, 0, 2, 1, 2, NHWC_HALO}, {128, 64, 64, 0, 0, 2, 1, 1, NHWC_HALO},
    {256, 64, 64, 0, 0, 2, 1, 1, NHWC_HALO}, {128, 64, 64, 0, 0, 2, 1, 2, NHWC_HALO},
    /* TMA loads (kernels/conv_wgmma.cuh conv_tma_f16: hardware im2col, one producer thread, the
     * 128-byte swizzled layout): every source's C % 64 == 0 and x in the arena; tuner candidates
     * only (KILN_WGMMA_TMA=0 drops them) */
    {128, 128, 64, 0, 0, 5, 1, 2, NHWC_TMA}, {128, 256, 64, 0, 0, 4, 1, 2, NHWC_TMA},
    {256, 128, 64, 0, 0, 4, 1, 2, NHWC_TMA}, {128, 128, 64, 0, 0, 6, 1, 2, NHWC_TMA},
    {128, 64, 64, 0, 0, 8, 1, 2, NHWC_TMA},  {64, 128, 64, 0, 0, 8, 1, 1, NHWC_TMA},
    {128, 128, 64, 0, 0, 5, 2, 2, NHWC_TMA}, {128, 256, 64, 0, 0, 4, 2, 2, NHWC_TMA},
    /* ... two blocks per SM (<= 113 KiB: one block's epilogue overlaps the other's main loop) */
    {64, 128, 64, 0, 0, 4, 1, 1, NHWC_TMA}, {128, 64, 64, 0, 0, 4, 1, 2, NHWC_TMA},
    /* (not 128x128 g2 at two blocks: 384 threads get 85 registers, ptxas needs 90 for m64n128) */
    /* ... persistent, the two consumer warpgroups taking turns (one's epilogue under the other's
     * main loop; for short depths: ResNet's 1x1 convs) */
    {128, 128, 64, 0, 0, 4, 1, 2, NHWC_TMA | NHWC_PP}, {64, 256, 64, 0, 0, 3, 1, 2, NHWC_TMA | NHWC_PP},
    {64, 128, 64, 0, 0, 6, 1, 2, NHWC_TMA | NHWC_PP},  {128, 64, 64, 0, 0, 6, 1, 2, NHWC_TMA | NHWC_PP},
    /* ... persistent, the two consumer warpgroups sharing each tile (fewer L2 bytes per flop than
     * two tp tiles; on ResNet-50 the tuner picks them for some convs, about as fast as tp) */
    {256, 128, 64, 0, 0, 3, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP}, {128, 256, 64, 0, 0, 3, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP},
    {128, 128, 64, 0, 0, 6, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP}, {256, 64, 64, 0, 0, 4, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP},
    /* ... 4 stages of the large tiles, their epilogue staged half at a time (convs without a residual;
     * H100, ResNet-50 b32: stage-2 3x3 21.7 -> 19.8 us, layer-4 conv pair 24.1 -> 22.6 us) */
    {256, 128, 64, 0, 0, 4, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_HALF},
    {128, 256, 64, 0, 0, 4, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_HALF},
    /* ... 128x128 (5 stages) and 256x64 with stream-K where the tiles fill the last wave badly:
     * opt-in (KILN_WGMMA_SK=1), slower than tc / tp on every ResNet-50 conv measured (docs/gpu.md,
     * eighth session); not the 128-float accumulators of 256x128 / 128x256: with stream-K's
     * bookkeeping they spill under the 168 registers of 384 threads */
    {128, 128, 64, 0, 0, 5, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_SK},
    {256, 64, 64, 0, 0, 4, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_SK},
    /* ... the previous tile's staging and TMA store under this tile's first two wgmma groups ("to"; no
     * residual, 64 rows a warpgroup: ncu showed the tc128x128 layer-2 conv pair a quarter of its time in
     * epilogues that both warpgroups run at once, the tensor pipe idle); opt-in (KILN_WGMMA_OV=1): on an
     * H100 slower than tc128x128 (layer-2 pair 24.8 vs 22.9 us; the first version on every ResNet-50
     * conv, docs/gpu.md) */
    {128, 128, 64, 0, 0, 6, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_OV},
    /* ... the same in 2-block clusters, the shared operand multicast ("tx": a quarter fewer L2 bytes per
     * flop for 128x128; ncu on an H100 showed the layer-2 conv pair moving 125 MB through L2 with the
     * tensor pipe idle half the time); opt-in (KILN_WGMMA_CL=1): on an H100 8-12% slower than tc
     * (docs/gpu.md, twelfth session) */
    {128, 128, 64, 0, 0, 6, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_CL},
    {256, 128, 64, 0, 0, 3, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_CL},
    {128, 256, 64, 0, 0, 3, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_CL},
    {256, 128, 64, 0, 0, 4, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_HALF | NHWC_CL},
    {128, 256, 64, 0, 0, 4, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_HALF | NHWC_CL},
    /* ... and with transposed roles for 64 output channels ("tmt": weights as A, pixels as B) */
    {256, 64, 64, 0, 0, 5, 1, 2, NHWC_TMA | NHWC_TR}, {256, 64, 64, 0, 0, 5, 1, 1, NHWC_TMA | NHWC_TR},
    {128, 64, 64, 0, 0, 8, 1, 1, NHWC_TMA | NHWC_TR}, {256, 64, 64, 0, 0, 5, 2, 2, NHWC_TMA | NHWC_TR},
    /* ... and the persistent ones with transposed roles ("tct" / "tpt": one m64n128k16 per warpgroup
     * and k16 step instead of two m64n64k16, a quarter fewer shared-memory bytes read): opt-in
     * (KILN_WGMMA_TRPP=1) until gpu_conv_wgmma --gpu has run them on an H100 */
    {256, 64, 64, 0, 0, 4, 1, 2, NHWC_TMA | NHWC_PP | NHWC_COOP | NHWC_TR},
    {128, 64, 64, 0, 0, 6, 1, 2, NHWC_TMA | NHWC_PP | NHWC_TR},
    /* the halo kernel with two warpgroups taking turns on tiles of their own and one copy of the
     * weights (conv_halo_pp_f16, "hp" names; bm = one warpgroup's tile, 8 x TY pixels, TY = 14 fits
     * ResNet's 56 / 112 rows); which are candidates: hpp_enabled */
    {112, 64, 64, 0, 0, 2, 1, 2, NHWC_HALO | NHWC_PP}, {128, 64, 64, 0, 0, 2, 1, 2, NHWC_HALO | NHWC_PP},
    {64, 64, 64, 0, 0, 2, 1, 2, NHWC_HALO | NHWC_PP},
    /* ... with the weights in registers (depth <= 576: 4 registers a k16 step) */
    {64, 64, 64, 0, 0, 2, 1, 2, NHWC_HALO | NHWC_PP | NHWC_RA}, {112, 64, 64, 0, 0, 2, 1, 2, NHWC_HALO | NHWC_PP | NHWC_RA},
    /* ... three or four warpgroups taking turns (stages = halo buffers a warpgroup, 2 or 1): on an H100
     * hp64 g2 spent more time per turn outside its wgmma chain (loads, staging, stores) than in it */
    {64, 64, 64, 0, 0, 2, 1, 3, NHWC_HALO | NHWC_PP}, {64, 64, 64, 0, 0, 1, 1, 4, NHWC_HALO | NHWC_PP},
    {112, 64, 64, 0, 0, 1, 1, 3, NHWC_HALO | NHWC_PP},
    /* ... where the epilogue stages fp16 (no residual: a quarter of the fp32 rows' bytes), larger tiles
     * and more halo buffers fit beside 64-channel 3x3 weights */
    {112, 64, 64, 0, 0, 1, 1, 4, NHWC_HALO | NHWC_PP}, {64, 64, 64, 0, 0, 2, 1, 4, NHWC_HALO | NHWC_PP},
    {128, 64, 64, 0, 0, 1, 1, 3, NHWC_HALO | NHWC_PP},
    /* ... with the halo loaded by TMA ("hq": one 4-D box a tile instead of each thread's copies and their
     * address arithmetic, which ncu showed outlasting the other warpgroups' wgmma chains) */
    {64, 64, 64, 0, 0, 1, 1, 4, NHWC_HALO | NHWC_PP | NHWC_HTMA}, {64, 64, 64, 0, 0, 2, 1, 4, NHWC_HALO | NHWC_PP | NHWC_HTMA},
    {112, 64, 64, 0, 0, 1, 1, 4, NHWC_HALO | NHWC_PP | NHWC_HTMA},
};
/* The tct / tpt tiles: candidates only with KILN_WGMMA_TRPP=1 (gpu_conv_wgmma sets it) */
static bool trpp_enabled(void) {
    const char *e = getenv("KILN_WGMMA_TRPP");
    return e && *e && strcmp(e, "0") != 0;
}
/* The tx (cluster) tiles: candidates only with KILN_WGMMA_CL=1 (gpu_conv_wgmma sets it) */
static bool cl_enabled(void) {
    const char *e = getenv("KILN_WGMMA_CL");
    return e && *e && strcmp(e, "0") != 0;
}
/* which operand a tx tile's cluster shares: 1 the pixel tile (two channel tiles of a pixel row; NT even),
 * 2 the weight tile (two pixel rows); the larger one where both are possible */
static int cl_mode(const nhwc_cfg *f, int64_t K) {
    const int64_t nt = (K + f->bn - 1) / f->bn;
    return nt % 2 == 0 && f->bm >= f->bn ? 1 : 2;
}
/* The to (overlapped store) tiles: candidates only with KILN_WGMMA_OV=1 (gpu_conv_wgmma sets it) */
static bool ov_enabled(void) {
    const char *e = getenv("KILN_WGMMA_OV");
    return e && *e && strcmp(e, "0") != 0;
}
/* The ts (stream-K) tiles: candidates only with KILN_WGMMA_SK=1 (gpu_conv_wgmma sets it) */
static bool sk_enabled(void) {
    const char *e = getenv("KILN_WGMMA_SK");
    return e && *e && strcmp(e, "0") != 0;
}
/* 1: the heuristic may pick a "ws" tile (by cfg_cost); 0: only the tuner or a forced tile does */
#define NHWC_WS_HEURISTIC 0
/* The ws tiles are candidates only with KILN_WGMMA_WS=1 in the environment (or by default when
 * this is 1), until tests/codegen/emu/gpu_conv_wgmma.c --gpu has passed on an H100: a hang or a
 * wrong result there must not reach the autotuner of every sm_90a build. */
#define NHWC_WS_DEFAULT 0
static bool ws_enabled(void) {
    const char *e = getenv("KILN_WGMMA_WS");
    return e && *e ? strcmp(e, "0") != 0 : NHWC_WS_DEFAULT;
}
#define N_CFGS ((int)(sizeof nhwc_cfgs / sizeof nhwc_cfgs[0]))
static bool tr_enabled(void) { /* gpu_conv_wgmma --gpu wt passed on an H100 (docs/gpu.md, fifth session) */
    const char *e = getenv("KILN_WGMMA_TR");
    return !(e && !strcmp(e, "0"));
}
/* The halo tiles: tuner candidates (gpu_conv_wgmma --gpu hl,s2d:hl passed on an H100);
 * KILN_WGMMA_HALO=0 drops them */
static bool halo_enabled(void) {
    const char *e = getenv("KILN_WGMMA_HALO");
    return !(e && !strcmp(e, "0"));
}
/* The TMA tiles: tuner candidates (gpu_conv_wgmma --gpu tm passed on an H100: 82 tile x shape
 * cases); KILN_WGMMA_TMA=0 drops them */
#define NHWC_TMA_DEFAULT 1
static bool tma_enabled(void) {
    const char *e = getenv("KILN_WGMMA_TMA");
    return e && *e ? strcmp(e, "0") != 0 : NHWC_TMA_DEFAULT;
}
/* The stem's two-tap kernel (C <= 4, x padded to 4 channels; names "t4:<tile>") takes the mma.sync
 * tiles above and these: BK 16 (a 3x3 stem's depth is 3 * 4 * 4 = 48) and BN 32 (MobileNetV2's
 * stem has K = 32) with tall BM (M = N * P * Q is large). The tile loads need BM and BN to be
 * multiples of threads / (BK / 8). */
static const nhwc_cfg pair_cfgs[] = {
    {128, 64, 16, 64, 32, 6, 1, 0, 0}, {64, 64, 16, 32, 32, 6, 1, 0, 0}, {128, 32, 32, 32, 32, 4, 1, 0, 0},
    {128, 32, 16, 64, 32, 6, 1, 0, 0}, {64, 32, 16, 32, 32, 6, 1, 0, 0}};
#define N_PAIR ((int)(sizeof pair_cfgs / sizeof pair_cfgs[0]))
#define N_CANDS (2 * N_CFGS + N_PAIR)
/* ... and the stride-2 stem's space-to-depth candidates ("s2d:<tile>", conv_nhwc_s2d) after them */
#define N_ALL (N_CANDS + N_CFGS)
enum { CAND_T4, CAND_PLAIN, CAND_S2D };
/* The hp / hr / hq tiles: by default one for plain convs and one for the stem, those that won on an H100
 * (ResNet-50 b32, one forced tile each): hq64 with 4 warpgroups on the stage-1 3x3, 13.9 us against hp64 g4's
 * 16.5 (the same without the TMA halo: the default where hq does not apply, hq_ok false), hq64 g4 s2's 14.4,
 * hq112 g4's 15.1 and tc256x64's 23.6; s2d:hp112 with 4 warpgroups on the stem, 45.9 us against s2d:hr112
 * g2's 47.6. KILN_WGMMA_HPP=1 offers them all (gpu_conv_wgmma sets it), =0 none */
static bool hpp_enabled(const nhwc_cfg *f, int kind, bool hq_ok) {
    const char *e = getenv("KILN_WGMMA_HPP");
    if (e && *e) return strcmp(e, "0") != 0;
    if (f->wg != 4 || f->stages != 1 || (f->sw & NHWC_RA)) return false;
    if (kind == CAND_S2D) return f->bm == 112 && !(f->sw & NHWC_HTMA);
    return f->bm == 64 && !!(f->sw & NHWC_HTMA) == hq_ok;
}
/* under sm_80's 163 KiB per block; 227 KiB when every target is sm_90 or later (tc128x128's 6 stages
 * take 225.3 KiB: 5 stages ran the ResNet-50 b32 layer-2 conv pair 5% slower on an H100) */
static uint32_t smem_limit(const cg *c) {
    for (int i = 0; i < c->o->n_archs && c->o->archs; i++)
        if (strncmp(c->o->archs[i], "sm_9", 4) && strncmp(c->o->archs[i], "sm_1", 4)) return 160 * 1024;
    return c->o->n_archs > 0 ? 227 * 1024 : 160 * 1024;
}

static int cfg_threads(const nhwc_cfg *f) {
    return f->wg ? 128 * (f->wg + !!(f->sw & (NHWC_WS | NHWC_TMA))) : (f->bm / f->wm) * (f->bn / f->wn) * 32;
}
static uint32_t cfg_smem(const nhwc_cfg *f) { /* ws / tm: + the mbarriers (KILN_WGMMA_WS_SMEM_BYTES, _TMA_, _PP_) */
    return (uint32_t)(f->stages * (f->bm + f->bn) * (f->bk + (f->wg ? 0 : 8)) * 2 + (f->sw & (NHWC_SWZ | NHWC_TMA) ? 1024 : 0) +
                      (f->sw & (NHWC_WS | NHWC_TMA) ? 256 : 0) +
                      (f->sw & NHWC_PP ? (f->sw & NHWC_COOP ? 2 : 4) * f->bm * f->bn / (f->sw & NHWC_HALF ? 2 : 1) : 0));
}
/* the hp tiles' 128-byte swizzled halo (conv_halo_pp_f16 SWZ): where a pixel's channels are one 128-byte row */
static int hp_swz(int64_t c) { return c == 64; }
/* the halo kernel's: all weights, two input tiles, the epilogue's fp32 rows (KILN_HALO_SMEM_BYTES;
 * hp: NB input tiles and the staging rows for each warpgroup, rows of 8 + S - 1 pixels, the staging
 * fp16 where there is no residual (f16s), KILN_HALO_PP_SMEM_BYTES) */
static uint32_t halo_smem(const nhwc_cfg *f, int64_t c, int64_t r, int64_t s, bool f16s) {
    if (f->sw & NHWC_PP) {
        const int sw = hp_swz(c);
        const int64_t px = 8 + s - 1, rnd = sw ? 1024 : 1, stg_row = f16s ? 72 * 2 : (64 + 8) * 4;
        const int64_t halo = ((c / 8) * (f->bm / 8 + r - 1) * px * 16 + rnd - 1) / rnd * rnd, stg = (f->bm * stg_row + rnd - 1) / rnd * rnd;
        return (uint32_t)(r * s * c * 128 + f->wg * (f->stages * halo + stg) + (sw ? 1024 : 0) + (f->sw & NHWC_HTMA ? 64 : 0));
    }
    return (uint32_t)(r * s * c * 128 + 2 * (c / 8) * (f->bm / 8 + r - 1) * 256 + f->bm * (64 + 8) * 4);
}
static void cfg_name(const nhwc_cfg *f, char *buf, size_t len) {
    if (f->wg)
        snprintf(buf, len, "%s%s%dx%dx%ds%dg%dk%d",
                 f->sw & NHWC_TMA    ? (f->sw & NHWC_TR ? (f->sw & NHWC_COOP ? "tct" : f->sw & NHWC_PP ? "tpt" : "tmt")
                                        : f->sw & NHWC_SK ? "ts" : f->sw & NHWC_CL ? "tx" : f->sw & NHWC_OV ? "to" : f->sw & NHWC_COOP ? "tc" : f->sw & NHWC_PP ? "tp" : "tm")
                 : f->sw & NHWC_WS   ? "ws"
                 : f->sw & NHWC_TR   ? "wt"
                 : f->sw & NHWC_HALO ? (f->sw & NHWC_RA ? "hr" : f->sw & NHWC_HTMA ? "hq" : f->sw & NHWC_PP ? "hp" : "hl")
                                     : "wg",
                 f->sw & NHWC_SWZ ? "z" : "", f->bm, f->bn, f->bk, f->stages,
                 f->wg, f->splitk);
    else snprintf(buf, len, "%dx%dx%ds%dw%dk%d", f->bm, f->bn, f->bk, f->stages, cfg_threads(f) / 32, f->splitk);
}
static int64_t round_pow2(int64_t v, int64_t lo) {
    int64_t p = lo;
    while (p < v) p *= 2;
    return p;
}

/* The heuristic's machine: SMs, fp16 mma rate per SM (flop/s), DRAM bandwidth (bytes/s), for the
 * first target architecture: sm_80 (A100) or sm_90 and later (H100). */
typedef struct nhwc_gpu {
    double sms, sm_rate, bw;
} nhwc_gpu;
static nhwc_gpu target_gpu(const cg *c) {
    const char *a = c->o->n_archs > 0 && c->o->archs ? c->o->archs[0] : "sm_90";
    if (!strncmp(a, "sm_8", 4)) return (nhwc_gpu){108, 312e12 / 108, 2.0e12};
    return (nhwc_gpu){132, 990e12 / 132, 3.3e12};
}

/* Estimated seconds of one candidate: the busiest SM's mma work (ceil(blocks / SMs) block tiles)
 * at an efficiency that grows with the tile's arithmetic intensity BM*BN/(BM+BN) and with the
 * warps resident per SM (at least ~80 ns per K tile), or the DRAM
 * traffic (with split-K's partials written and read back), whichever is larger, plus the second
 * launch of split-K. A model to rank candidates, not a prediction; the tuner measures. */
static double cfg_cost(const nhwc_cfg *f, nhwc_gpu gpu, int64_t M, int64_t K, int64_t KD, int64_t x_bytes) {
    double blocks = (double)((M + f->bm - 1) / f->bm) * (double)((K + f->bn - 1) / f->bn) * f->splitk;
    double waves = ceil(blocks / gpu.sms);
    double kd = (double)((KD + f->bk - 1) / f->bk) / f->splitk * f->bk;
    /* wgmma needs less operand traffic per flop than ldmatrix + mma.sync (KERNELS.md: mma.sync
     * tops out near 65% of Hopper's peak) and one warpgroup per SM can keep it busy */
    double inten = (double)f->bm * f->bn / (f->bm + f->bn), eff = inten / (inten + (f->wg ? 12.0 : 32.0));
    /* fewer than 8 warps on an SM leave tensor cores idle; each K tile costs some latency */
    double warps = (double)cfg_threads(f) / 32.0 * fmin(blocks / gpu.sms, floor(228.0 * 1024 / cfg_smem(f)));
    eff *= fmin(1.0, warps / (f->wg ? 4.0 : 8.0));
    double t_mma = fmax(waves * 2.0 * f->bm * f->bn * kd / (gpu.sm_rate * eff), waves * kd / f->bk * 8e-8);
    double bytes = (double)x_bytes + 2.0 * (double)K * KD + 2.0 * (double)M * K;
    if (f->splitk > 1) bytes += 8.0 * f->splitk * (double)M * K;
    return fmax(t_mma, bytes / gpu.bw) + (f->splitk > 1 ? 3e-6 : 0.0);
}

/* The stem's input padding: x NHWC [pixels][c0] (c0 < to, to = 4 or 8) copied to node scratch as
 * [pixels][to] with zero channels c0..to-1 (kernels/conv_nhwc.cuh conv_nhwc_pad_c4 / _c8); *xp:
 * the copy, for the conv launch that follows in the same node. */
static kiln_status emit_pad_c(cg *c, int x, int64_t pixels, int64_t c0, int to, kiln_bundle_arg *xp) {
    char fn[64], kn[32];
    kiln_bundle_arg args[3];
    kiln_status st;
    snprintf(kn, sizeof kn, "conv_nhwc_pad_c%d", to);
    kiln_cg_kernel_name(c, kn, fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s, NHWC x [%lld pixels][%lld] padded to %d channels for conv_nhwc\n"
                   "extern \"C\" __global__ void __launch_bounds__(%d) %s(const __half *x, __half *xp, kiln::i64 n) {\n"
                   "    kiln::%s<%lld>(x, xp, n);\n}\n",
                   fn, c->group, (long long)pixels, (long long)c0, to, BLOCK_1D, fn, kn, (long long)c0);
    if ((st = kiln_cg_value_arg(c, x, &args[0]))) return st;
    if ((st = kiln_cg_scratch(c, (uint64_t)pixels * 2 * (uint64_t)to, &args[1]))) return st;
    args[2] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)pixels};
    *xp = args[1];
    /* pad_c4: a thread per 8 pixels */
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(to == 4 ? (pixels + 7) / 8 : pixels), 1, 1, BLOCK_1D, args, 3);
}

/* The stride-2 stem's space-to-depth copy of x (kernels/conv_nhwc.cuh conv_nhwc_s2d) into node
 * scratch: [N][h2][w2][16]; *xs: the copy, for the conv launch that follows. */
static kiln_status emit_s2d(cg *c, int x, int64_t N, int64_t c0, int64_t H, int64_t W, const int64_t *pb, int64_t h2,
                            int64_t w2, kiln_bundle_arg *xs) {
    char fn[64];
    kiln_bundle_arg args[3];
    kiln_status st;
    const int64_t pixels = N * h2 * w2;
    kiln_cg_kernel_name(c, "conv_nhwc_s2d", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s, NHWC x [%lld,%lld,%lld,%lld] as space-to-depth [%lld,%lld,%lld,16] for a stride-1 conv\n"
                   "extern \"C\" __global__ void __launch_bounds__(%d) %s(const __half *x, __half *xs, kiln::i64 n) {\n"
                   "    kiln::conv_nhwc_s2d<%lld, %lld, %lld, %lld, %lld, %lld, %lld>(x, xs, n);\n}\n",
                   fn, c->group, (long long)N, (long long)H, (long long)W, (long long)c0, (long long)N, (long long)h2,
                   (long long)w2, BLOCK_1D, fn, (long long)c0, (long long)H, (long long)W, (long long)pb[0],
                   (long long)pb[1], (long long)h2, (long long)w2);
    if ((st = kiln_cg_value_arg(c, x, &args[0]))) return st;
    if ((st = kiln_cg_scratch(c, (uint64_t)pixels * 32, &args[1]))) return st;
    args[2] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)pixels};
    *xs = args[1];
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(pixels), 1, 1, BLOCK_1D, args, 3);
}

static bool is_f16(const cg *c, int v) { return v < 0 || kiln_cg_val(c, v)->dtype == KILN_F16; }

/* v lives in the arena (a tensor map needs its address when the runtime lays out the launches;
 * graph inputs and outputs are bound per run) */
static bool in_arena(cg *c, int v) {
    kiln_bundle_arg a;
    if (v < 0 || kiln_cg_val(c, v)->data) return false;
    return kiln_cg_value_arg(c, v, &a) == KILN_OK && a.kind == KILN_ARG_ARENA && a.value % 16 == 0;
}

/* One GEMM source of the kernel: a convolution's input x (NHWC), geometry and weights. A plain
 * conv has one; a conv pair (passes/fuse_conv_pair.c) two, the second's depth after the first's. */
typedef struct conv_src {
    int x;
    const kiln_node *node;
    int64_t h, w, c, r, s, st[2], d[2], pb[2];
    const kiln_value *wv;
    int bias; /* a pair's second bias (outer value id), -1 none */
} conv_src;

/* The second convolution of a conv pair group n, when the kernel can take it: x2 fp16 NHWC with
 * C % 8 == 0, constant weights [K][C][R][S], group 1, the same output grid N x P x Q x K. */
static bool pair_source(cg *c, const kiln_node *n, int64_t N, int64_t K, int64_t P, int64_t Q, conv_src *q) {
    const int xi = (int)kiln_attr_int(n, "pair_x_input", -1), wi = (int)kiln_attr_int(n, "pair_w_input", -1);
    const int bi = (int)kiln_attr_int(n, "pair_bias_input", -1);
    if (!n->body || xi < 0 || xi >= n->n_inputs || wi < 0 || wi >= n->n_inputs || bi >= n->n_inputs) return false;
    memset(q, 0, sizeof *q);
    q->x = n->inputs[xi];
    q->bias = bi >= 0 ? n->inputs[bi] : -1;
    const int wv = n->inputs[wi];
    for (int k = 0; k < n->body->n_nodes && !q->node; k++) {
        const kiln_node *bn = &n->body->nodes[k];
        if (bn->op != KILN_OP_Conv || bn->n_inputs < 2) continue;
        for (int i = 0; i < n->body->n_inputs; i++)
            if (n->body->inputs[i] == bn->inputs[1] && n->inputs[i] == wv) q->node = bn;
    }
    if (!q->node || q->x < 0 || kiln_attr_int(q->node, "group", 1) != 1) return false;
    const kiln_value *x = kiln_cg_val(c, q->x), *w = kiln_cg_val(c, wv);
    if (x->rank != 4 || w->rank != 4 || x->dtype != KILN_F16 || (x->layout != KILN_LAYOUT_NHWC && x->dims[1] != 1))
        return false;
    if (!w->data || (w->data->dtype != KILN_F32 && w->data->dtype != KILN_F16) ||
        kiln_cg_io_index(c->g->inputs, c->g->n_inputs, wv) >= 0)
        return false;
    q->h = x->dims[2], q->w = x->dims[3], q->c = x->dims[1], q->r = w->dims[2], q->s = w->dims[3], q->wv = w;
    if (x->dims[0] != N || q->c % 8 || w->dims[0] != K || w->dims[1] != q->c) return false;
    int64_t in[2] = {q->h, q->w}, k[2] = {q->r, q->s}, pe[2];
    kiln_cg_ints_or(q->node, "strides", 2, 1, q->st);
    kiln_cg_ints_or(q->node, "dilations", 2, 1, q->d);
    if (kiln_cg_window_pads(q->node, 2, in, k, q->st, q->d, q->pb, pe)) return false;
    for (int i = 0; i < 2; i++) {
        const int64_t out = (in[i] + q->pb[i] + pe[i] - q->d[i] * (k[i] - 1) - 1) / q->st[i] + 1;
        if (out != (i ? Q : P)) return false;
    }
    if (q->bias >= 0) {
        const kiln_value *b = kiln_cg_val(c, q->bias);
        if (!b->data || (kiln_cg_numel(b) != K && kiln_cg_numel(b) != 1)) return false;
    }
    return true;
}

/* A TMA tile loads a 1x1, stride-1, unpadded source (its im2col is the identity) as rows [N*H*W][C]
 * through a tiled map instead of an im2col map (KILN_WGMMA_ROWS=1; docs/codegen.md). */
static bool tma_rows_src(const conv_src *q, int64_t P, int64_t Q) {
    const char *e = getenv("KILN_WGMMA_ROWS");
    if (!e || *e != '1') return false;
    return q->r == 1 && q->s == 1 && q->st[0] == 1 && q->st[1] == 1 && q->pb[0] == 0 && q->pb[1] == 0 && P == q->h &&
           Q == q->w;
}

/* The kernel's SHP struct: the output grid and one source's geometry; rows: its TMA loads are rows of a
 * tiled map (tma_rows_src). */
static void emit_shape(cg *c, const char *name, int64_t N, int64_t K, int64_t P, int64_t Q, const conv_src *q, bool rows) {
    kiln_cg_printf(&c->src,
                   "struct %s {\n    static constexpr int N = %lld, H = %lld, W = %lld, C = %lld, K = %lld, P = %lld, "
                   "Q = %lld, R = %lld, S = %lld;\n    static constexpr int SH = %lld, SW = %lld, PH = %lld, PW = %lld, "
                   "DH = %lld, DW = %lld;\n%s};\n",
                   name, (long long)N, (long long)q->h, (long long)q->w, (long long)q->c, (long long)K, (long long)P,
                   (long long)Q, (long long)q->r, (long long)q->s, (long long)q->st[0], (long long)q->st[1],
                   (long long)q->pb[0], (long long)q->pb[1], (long long)q->d[0], (long long)q->d[1],
                   rows ? "    static constexpr bool ROWS = true;\n" : "");
}

/* A KILN_ARG_TMAP argument from descriptor d (into the constant pool). */
static kiln_status tmap_arg(cg *c, const kiln_tmap_desc *d, kiln_bundle_arg *a) {
    uint8_t bytes[KILN_TMAP_DESC_BYTES];
    uint64_t off;
    kiln_tmap_desc_put(d, bytes);
    kiln_status st = kiln_bundle_add_const(c->b, bytes, sizeof bytes, &off);
    if (!st) *a = (kiln_bundle_arg){KILN_ARG_TMAP, KILN_TMAP_BYTES, off};
    return st;
}

/* The pixel box corners of source q's im2col map (kernels/conv_wgmma.cuh conv_tma_f16): lower =
 * -pad, and upper such that the last position the traversal visits in a row (column) is the last
 * output pixel's: (P - 1) * stride - pad = dim - 1 + upper. */
static void tmap_corners(const conv_src *q, int64_t P, int64_t Q, int32_t lo[2], int32_t hi[2]) {
    lo[0] = (int32_t)-q->pb[1], lo[1] = (int32_t)-q->pb[0];
    hi[0] = (int32_t)((Q - 1) * q->st[1] - q->pb[1] - (q->w - 1));
    hi[1] = (int32_t)((P - 1) * q->st[0] - q->pb[0] - (q->h - 1));
}
/* What TMA's im2col mode takes for a rank-4 map: corners and filter offsets in 8 bits, element
 * strides up to 8, whole 64-channel boxes. */
static bool tmap_fits(const conv_src *q, int64_t P, int64_t Q) {
    int32_t lo[2], hi[2];
    tmap_corners(q, P, Q, lo, hi);
    for (int i = 0; i < 2; i++)
        if (lo[i] < -128 || lo[i] > 127 || hi[i] < -128 || hi[i] > 127) return false;
    return q->c % 64 == 0 && q->st[0] <= 8 && q->st[1] <= 8 && (q->r - 1) * q->d[0] <= 255 && (q->s - 1) * q->d[1] <= 255;
}
static kiln_status tmap_rows_arg(cg *c, uint64_t off, int64_t M, int64_t K, int bm, kiln_bundle_arg *a);
/* Source q's im2col map over x at arena offset xo: BM pixels x 64 channels, 128-byte swizzle (a rows
 * source, tma_rows_src: its tiled map of rows instead). */
static kiln_status tmap_im2col_arg(cg *c, const conv_src *q, int64_t N, int64_t P, int64_t Q, uint64_t xo, int bm,
                                   kiln_bundle_arg *a) {
    if (tma_rows_src(q, P, Q)) return tmap_rows_arg(c, xo, N * q->h * q->w, q->c, bm, a); /* (as emit_shape said) */
    kiln_tmap_desc d;
    memset(&d, 0, sizeof d);
    d.mode = KILN_TMAP_IM2COL, d.rank = 4, d.base = KILN_ARG_ARENA, d.dtype = 6, d.offset = xo, d.swizzle = 3;
    const int64_t dims[4] = {q->c, q->w, q->h, N};
    uint64_t stride = 2;
    for (int i = 0; i < 4; i++) d.dims[i] = (uint64_t)dims[i], d.strides[i] = stride, stride *= (uint64_t)dims[i];
    d.box[0] = 64, d.box[1] = (uint32_t)bm;
    d.estrides[0] = 1, d.estrides[1] = (uint32_t)q->st[1], d.estrides[2] = (uint32_t)q->st[0], d.estrides[3] = 1;
    tmap_corners(q, P, Q, d.lower, d.upper);
    return tmap_arg(c, &d, a);
}

/* An NHWC fp16 tensor at arena offset off as rows [M][K]: boxes of 64 channels x bm rows, 128-byte
 * swizzle (conv_tma_pp_f16's epilogue stores y and loads the residual with it). */
static kiln_status tmap_rows_arg(cg *c, uint64_t off, int64_t M, int64_t K, int bm, kiln_bundle_arg *a) {
    kiln_tmap_desc d;
    memset(&d, 0, sizeof d);
    d.mode = KILN_TMAP_TILED, d.rank = 2, d.base = KILN_ARG_ARENA, d.dtype = 6, d.offset = off, d.swizzle = 3;
    d.dims[0] = (uint64_t)K, d.dims[1] = (uint64_t)M, d.strides[0] = 2, d.strides[1] = 2 * (uint64_t)K;
    d.box[0] = 64, d.box[1] = (uint32_t)bm, d.estrides[0] = d.estrides[1] = 1;
    return tmap_arg(c, &d, a);
}

/* Source q's weights (tensor t [K][c0][R][S]) as OHWI fp16 rows into h[K][ld] at column off; sw is
 * the filter width in h (the stem's padded taps stay zero, as do channels c0..q->c-1). */
static void fill_ohwi(uint16_t *h, int64_t ld, int64_t off, const kiln_tensor *t, int64_t K, int64_t c0,
                      const conv_src *q, int64_t sw) {
    for (int64_t ko = 0; ko < K; ko++)
        for (int64_t ci = 0; ci < c0; ci++)
            for (int64_t r = 0; r < q->r; r++)
                for (int64_t sx = 0; sx < q->s; sx++)
                    h[ko * ld + off + (r * sw + sx) * q->c + ci] =
                        kiln_f32_to_f16((float)kiln_tensor_get(t, ((ko * c0 + ci) * q->r + r) * q->s + sx));
}

/* A pair's bias: the anchor's (b1, -1 none) plus the second conv's (b2), one [K] weight in b1's
 * type (fp32 when b1 is absent: the epilogue's bias_t is then float). */
static kiln_status pair_bias(cg *c, int b1, int b2, int64_t K, kiln_bundle_arg *arg) {
    const kiln_value *v1 = b1 >= 0 ? kiln_cg_val(c, b1) : NULL, *v2 = kiln_cg_val(c, b2);
    const bool h = v1 && v1->dtype == KILN_F16;
    if ((v1 && !v1->data) || !v2->data) return kiln_errorf(KILN_ERR_INTERNAL, "conv pair: a bias is not a constant");
    float *f = malloc(sizeof(float) * (size_t)K);
    uint16_t *hf = malloc(sizeof(uint16_t) * (size_t)K);
    kiln_status st = KILN_OK;
    if (!f || !hf) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        goto done;
    }
    for (int64_t k = 0; k < K; k++) {
        double s = kiln_tensor_get(v2->data, v2->data->numel == 1 ? 0 : k);
        if (v1) s += kiln_tensor_get(v1->data, v1->data->numel == 1 ? 0 : k);
        f[k] = (float)s;
        hf[k] = kiln_f32_to_f16(f[k]);
    }
    char name[256];
    snprintf(name, sizeof name, "%s+pair", v2->name && *v2->name ? v2->name : "bias");
    int64_t dims[1] = {K};
    uint64_t off;
    st = kiln_bundle_add_weight(c->b, name, h ? KILN_F16 : KILN_F32, 1, dims, h ? (const void *)hf : (const void *)f,
                                (uint64_t)K * (h ? 2 : 4), &off);
    if (!st) *arg = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, off};
done:
    free(f);
    free(hf);
    return st;
}

kiln_status kiln_cg_emit_conv_nhwc(cg *c, const kiln_node *n, bool *handled) {
    *handled = false;
    if (c->o->precision != KILN_PREC_FP16) return KILN_OK;
    kiln_cg_conv_operands a;
    kiln_status st = kiln_cg_conv_operands_get(c, n, &a);
    if (st || a.an->op != KILN_OP_Conv) return KILN_OK; /* the generic path reports it */
    const kiln_value *x = kiln_cg_val(c, a.x), *w = kiln_cg_val(c, a.w), *y = kiln_cg_val(c, a.y);
    /* (one channel: NCHW and NHWC are the same bytes) */
    if (x->rank != 4 || y->rank != 4 || w->rank != 4 || (x->layout != KILN_LAYOUT_NHWC && x->dims[1] != 1) ||
        y->layout != KILN_LAYOUT_NHWC)
        return KILN_OK;
    if (!is_f16(c, a.x) || !is_f16(c, a.y) || !is_f16(c, a.residual)) return KILN_OK;
    if (a.residual >= 0 && (kiln_cg_val(c, a.residual)->layout != KILN_LAYOUT_NHWC ||
                            kiln_cg_numel(kiln_cg_val(c, a.residual)) != kiln_cg_numel(y)))
        return KILN_OK;
    if (!w->data || (w->data->dtype != KILN_F32 && w->data->dtype != KILN_F16) ||
        kiln_cg_io_index(c->g->inputs, c->g->n_inputs, a.w) >= 0)
        return KILN_OK;
    if (kiln_attr_int(a.an, "group", 1) != 1) return KILN_OK;
    const int64_t N = x->dims[0], C0 = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t K = y->dims[1], P = y->dims[2], Q = y->dims[3], R = w->dims[2], S = w->dims[3];
    if (K % 8 || w->dims[0] != K || w->dims[1] != C0 || C0 < 1 || (C0 % 8 && C0 > 8)) return KILN_OK;
    /* C < 8 (a stem's RGB input): the kernel runs on x padded to C = 8 (emit_pad_c), or for
     * C <= 4 on x padded to 4 with two taps per 16-byte chunk ("t4:" candidates, S padded to SE) */
    int64_t C = C0 % 8 ? 8 : C0;
    const bool pair_ok = C0 <= 4;
    int64_t in[2] = {H, W}, k[2] = {R, S}, s[2], d[2], pb[2], pe[2];
    kiln_cg_ints_or(a.an, "strides", 2, 1, s);
    kiln_cg_ints_or(a.an, "dilations", 2, 1, d);
    if ((st = kiln_cg_window_pads(a.an, 2, in, k, s, d, pb, pe))) return st;
    /* a conv pair (passes/fuse_conv_pair.c): the second convolution's source; the kernel's first
     * source is the one whose depth is a multiple of 64 (whole K tiles per source) */
    conv_src pr;
    const bool is_pair = n->op == KILN_OP_Fused && kiln_attr_int(n, "pair_x_input", -1) >= 0;
    if (is_pair && (C != C0 || !pair_source(c, n, N, K, P, Q, &pr))) return KILN_OK;
    conv_src an_src = {a.x, a.an, H, W, C, R, S, {s[0], s[1]}, {d[0], d[1]}, {pb[0], pb[1]}, w, -1};
    const conv_src *s1 = &an_src, *s2 = is_pair ? &pr : NULL;
    if (is_pair && (R * S * C) % 64) s1 = &pr, s2 = &an_src;
    const int64_t KD2 = s2 ? s2->r * s2->s * s2->c : 0;
    const int64_t M = N * P * Q, SE = S + (S & 1), KD8 = s1->r * s1->s * s1->c + KD2, KD4 = R * SE * 4;
    int64_t KD = KD8;
    /* a stride-2 stem (C <= 4) also as a stride-1 conv over its space-to-depth input: 16 channels,
     * filter ceil(R / 2) x ceil(S / 2), input (P + R2 - 1) x (Q + S2 - 1) with the padding in it */
    const bool s2d_ok = pair_ok && !is_pair && s[0] == 2 && s[1] == 2 && d[0] == 1 && d[1] == 1;
    const int64_t R2 = (R + 1) / 2, S2 = (S + 1) / 2, H2 = P + R2 - 1, W2 = Q + S2 - 1, KDS = R2 * S2 * 16;
    /* the kernel indexes with 32-bit ints below the element offset */
    if (M * K > ((int64_t)1 << 31) - 1 || N * H * W * C > ((int64_t)1 << 31) - 1 || K * KD > ((int64_t)1 << 31) - 1 ||
        (s2 && N * s2->h * s2->w * s2->c > ((int64_t)1 << 31) - 1))
        return KILN_OK;
    const char *bias_expr = NULL, *bias_t = "none";
    if (a.bias >= 0) {
        const kiln_value *bv = kiln_cg_val(c, a.bias);
        int64_t bn = kiln_cg_numel(bv);
        if (bn != K && bn != 1) return KILN_OK;
        bias_expr = bn == 1 ? KILN_CG_BIAS_SCALAR : KILN_CG_BIAS_CH;
        bias_t = bv->dtype == KILN_F16 ? (bn == 1 ? "f16s" : "f16") : (bn == 1 ? "f32s" : "f32");
        if (bv->dtype != KILN_F16 && bv->dtype != KILN_F32) return KILN_OK;
    }
    if (is_pair && pr.bias >= 0) { /* one summed bias vector (pair_bias), in the anchor bias' type */
        if (!kiln_cg_val(c, pr.bias)->data) return KILN_OK;
        const bool h = a.bias >= 0 && kiln_cg_val(c, a.bias)->dtype == KILN_F16;
        bias_expr = KILN_CG_BIAS_CH;
        bias_t = h ? "f16" : "f32";
    }

    /* candidates for this shape */
    /* the two-tap stem candidates first (mma.sync only; pair_cfgs' tall tiles before the others:
     * at equal estimates, often all DRAM-bound for a stem, the first one stays), then C = 8 */
    const char *names[N_ALL];
    char name_buf[N_ALL][48];
    const nhwc_cfg *cfg_of[N_ALL];
    int kind_of[N_ALL];
    int n_c = 0, heur = 0;
    double best = 0;
    const nhwc_gpu gpu = target_gpu(c);
    const uint32_t smem_max = smem_limit(c);
    /* wgmma exists only on sm_90a: its tiles are candidates only when the build has an sm_90a image */
    const bool wgmma = kiln_cg_has_sm90a(c), ws = wgmma && ws_enabled(), tr = wgmma && tr_enabled();
    const bool halo_ok = wgmma && halo_enabled();
    const bool tma_ok = wgmma && tma_enabled() && C == C0 && in_arena(c, s1->x) && tmap_fits(s1, P, Q) &&
                        (!s2 || (in_arena(c, s2->x) && tmap_fits(s2, P, Q)));
    /* hq: the swizzled 64-channel halo as a TMA box, from x in the arena (the map is encoded at load) */
    const bool hq_ok = wgmma && !s2 && hp_swz(C) && C == C0 && in_arena(c, s1->x);
    /* the tp tiles store y (and load the residual) with TMA: both in the arena too */
    const bool tma_store_ok = in_arena(c, a.y) && (a.residual < 0 || in_arena(c, a.residual));
    for (int i = pair_ok ? 0 : N_CFGS + N_PAIR; i < (s2d_ok ? N_ALL : N_CANDS); i++) {
        const int kind = i < N_CFGS + N_PAIR ? CAND_T4 : i < N_CANDS ? CAND_PLAIN : CAND_S2D;
        const bool pair = kind == CAND_T4;
        const nhwc_cfg *f = i < N_PAIR ? &pair_cfgs[i] : &nhwc_cfgs[(i - N_PAIR) % N_CFGS];
        const int64_t kd = pair ? KD4 : kind == CAND_S2D ? KDS : KD8, kt = (kd + f->bk - 1) / f->bk;
        if (f->wg && (!wgmma || pair)) continue;
        if ((f->sw & NHWC_WS) && (!ws || s2)) continue; /* (the ws kernel has no second source) */
        if ((f->sw & NHWC_TR) && (!tr || K % 64 || ((f->sw & NHWC_PP) && !trpp_enabled()))) continue;
        if ((f->sw & NHWC_TMA) && (!tma_ok || kind != CAND_PLAIN)) continue;
        if ((f->sw & NHWC_PP) && (f->sw & NHWC_TMA) && !tma_store_ok) continue;
        if ((f->sw & NHWC_PP) && (f->sw & NHWC_HALO) && !hpp_enabled(f, kind, hq_ok)) continue;
        if ((f->sw & NHWC_HALF) && a.residual >= 0) continue; /* (the residual is loaded into the whole buffer) */
        if ((f->sw & NHWC_CL) && !cl_enabled()) continue;
        if ((f->sw & NHWC_OV) && (!ov_enabled() || a.residual >= 0 || kd < 128)) continue; /* (2 depth tiles or more) */
        /* without a residual the 4-stage twins replace the 3-stage 256x128 / 128x256 tc tiles (as fast or
         * faster on every ResNet-50 b32 conv timed on an H100; the tuner's list stays as long) */
        if ((f->sw & NHWC_COOP) && !(f->sw & (NHWC_HALF | NHWC_SK)) && f->bm * f->bn == 256 * 128 && a.residual < 0) continue;
        if (f->sw & NHWC_SK) { /* where the tc twin fills the last wave badly */
            const int64_t tiles = ((M + f->bm - 1) / f->bm) * ((K + f->bn - 1) / f->bn), g = (int64_t)gpu.sms;
            if (!sk_enabled() || (double)tiles / (double)(((tiles + g - 1) / g) * g) >= NHWC_SK_WAVE || tiles * kt < 2 * g)
                continue;
        }
        if (f->sw & NHWC_HALO) { /* on the conv the kernel runs: the s2d one is stride 1 over 16 channels */
            const int64_t hc = kind == CAND_S2D ? 16 : C, hr = kind == CAND_S2D ? R2 : R, hs = kind == CAND_S2D ? S2 : S;
            const bool st1 = kind == CAND_S2D || (s[0] == 1 && s[1] == 1 && d[0] == 1 && d[1] == 1);
            if (!halo_ok || s2 || K != 64 || !st1 || hc % 16 || hc > 64 || hs > 9 || halo_smem(f, hc, hr, hs, a.residual < 0) > smem_max) continue;
            if ((f->sw & NHWC_PP) && hr * hs == 1) continue; /* (hp: a 1x1 conv reads no pixel twice) */
            if ((f->sw & NHWC_RA) && hr * hs * hc > 576) continue;
            if ((f->sw & NHWC_HTMA) && (kind != CAND_PLAIN || !hq_ok)) continue;
        }
        if (f->bm > round_pow2(M, 32) || f->bn > round_pow2(K, 32) || cfg_smem(f) > smem_max) continue;
        if (f->splitk > 1 && kt < 2 * f->splitk) continue;
        char tn[40];
        cfg_name(f, tn, sizeof tn);
        snprintf(name_buf[n_c], sizeof name_buf[n_c], "%s%s", pair ? "t4:" : kind == CAND_S2D ? "s2d:" : "", tn);
        names[n_c] = name_buf[n_c];
        cfg_of[n_c] = f;
        kind_of[n_c] = kind;
        const int64_t xb = kind == CAND_S2D ? H2 * W2 * 16 : H * W * (pair ? 4 : C);
        double cost = cfg_cost(f, gpu, M, K, kd, 2 * N * (xb + (s2 ? s2->h * s2->w * s2->c : 0)));
        if ((f->sw & NHWC_WS) && !NHWC_WS_HEURISTIC && n_c) cost = INFINITY;
        if ((f->sw & (NHWC_TR | NHWC_HALO | NHWC_TMA)) && n_c) cost = INFINITY;
        if (!n_c || cost < best * 0.97) best = cost, heur = n_c; /* within 3%: keep the larger tile */
        n_c++;
    }
    if (!n_c) return KILN_OK;
    /* With the TMA tiles among them, the cp.async wgmma and mma.sync tiles did not win the tuner on
     * an H100 (ResNet-50 b32 fp16: 0 of 24 convolution signatures; docs/gpu.md, seventh session):
     * of those only the heuristic's pick stays (heuristic builds are unchanged), so tuning compiles
     * and times fewer kernels (ResNet-50's cold build stays under its 90 s target). The hp tiles
     * stay (they load no im2col tiles; conv_halo_f16's hl tiles go with the others). */
    if (tma_ok && tma_store_ok) {
        int kept = 0, h = 0;
        for (int i = 0; i < n_c; i++) {
            const bool hp = (cfg_of[i]->sw & NHWC_HALO) && (cfg_of[i]->sw & NHWC_PP);
            if (kind_of[i] == CAND_PLAIN && !(cfg_of[i]->sw & NHWC_TMA) && !hp && i != heur) continue;
            if (i == heur) h = kept;
            names[kept] = names[i], cfg_of[kept] = cfg_of[i], kind_of[kept] = kind_of[i];
            kept++;
        }
        n_c = kept, heur = h;
    }

    /* the signature: everything the generated code depends on */
    char sig[512];
    int sl = snprintf(sig, sizeof sig,
                      "conv_nhwc_f16:n%lld:c%lld:h%lld:w%lld:k%lld:p%lld:q%lld:r%lld:s%lld:st%lldx%lld:pad%lldx%lld:"
                      "dil%lldx%lld:bias=%s:res=%s",
                      (long long)N, (long long)C, (long long)H, (long long)W, (long long)K, (long long)P, (long long)Q,
                      (long long)R, (long long)S, (long long)s[0], (long long)s[1], (long long)pb[0], (long long)pb[1],
                      (long long)d[0], (long long)d[1], bias_t, a.residual >= 0 ? "f16" : "none");
    if (C != C0 && sl > 0 && sl < (int)sizeof sig)
        sl += snprintf(sig + sl, sizeof sig - (size_t)sl, ":cpad%lld%s%s", (long long)C0, pair_ok ? ":t4" : "",
                       s2d_ok ? ":s2d" : "");
    if (s2 && sl > 0 && sl < (int)sizeof sig) /* a pair: the sources in kernel order (SHP, SHP2) */
        for (int i = 0; i < 2 && sl > 0 && sl < (int)sizeof sig; i++) {
            const conv_src *q = i ? s2 : s1;
            sl += snprintf(sig + sl, sizeof sig - (size_t)sl, ":%s=h%lldw%lldc%lldr%llds%lldst%lldx%lldpad%lldx%lld",
                           i ? "pair2" : "pair1", (long long)q->h, (long long)q->w, (long long)q->c, (long long)q->r,
                           (long long)q->s, (long long)q->st[0], (long long)q->st[1], (long long)q->pb[0],
                           (long long)q->pb[1]);
            if (q->d[0] != 1 || q->d[1] != 1)
                sl += snprintf(sig + sl, sizeof sig - (size_t)sl, "dil%lldx%lld", (long long)q->d[0], (long long)q->d[1]);
        }
    if (a.an != n) { /* a group: its activations with their parameters */
        static const char *const keys[] = {"activation", "post_activation"};
        for (int i = 0; i < 2 && sl > 0 && sl < (int)sizeof sig; i++) {
            char ka[64], kb[64];
            snprintf(ka, sizeof ka, "%s_alpha", keys[i]);
            snprintf(kb, sizeof kb, "%s_beta", keys[i]);
            sl += snprintf(sig + sl, sizeof sig - (size_t)sl, ":%s=%s(%.9g,%.9g)", keys[i],
                           kiln_attr_str(n, keys[i], "none"), (double)kiln_attr_float(n, ka, 0.0f),
                           (double)kiln_attr_float(n, kb, 0.0f));
        }
    }
    int pick = kiln_cg_choose(c, sig, names, n_c, heur);
    kiln_cg_printf(&c->tiles, "%s=nhwc_f16:%s;", c->group, names[pick]); /* the `tiles` metadata (kiln bench --profile) */
    const nhwc_cfg *f = cfg_of[pick];
    const bool pair = kind_of[pick] == CAND_T4, s2d = kind_of[pick] == CAND_S2D;
    const int64_t SW_ = pair ? SE : S; /* the weights' (padded) filter width */
    if (pair) C = 4, KD = KD4;
    if (s2d) { /* the conv over the space-to-depth copy */
        C = 16, KD = KDS;
        an_src.h = H2, an_src.w = W2, an_src.c = 16, an_src.r = R2, an_src.s = S2;
        an_src.st[0] = an_src.st[1] = 1, an_src.pb[0] = an_src.pb[1] = 0;
    }
    const int threads = cfg_threads(f);
    const bool halo = f->sw & NHWC_HALO, tma = f->sw & NHWC_TMA;
    const uint32_t smem = halo ? halo_smem(f, C, an_src.r, an_src.s, a.residual < 0) : cfg_smem(f);

    /* the padded copy of x first: kiln_cg_launch takes the source emitted since the previous
     * launch as the launched function, so each kernel's text must directly precede its launch */
    kiln_bundle_arg args[13];
    if (s2d ? (st = emit_s2d(c, a.x, N, C0, H, W, pb, H2, W2, &args[0]))
            : C != C0 && (st = emit_pad_c(c, a.x, N * H * W, C0, (int)C, &args[0])))
        return st;

    /* main kernel */
    char fn[64], epi[80], shp[80], shp2[80] = "";
    kiln_cg_kernel_name(c, "conv_nhwc", fn, sizeof fn);
    snprintf(epi, sizeof epi, "%s_epilogue", fn);
    snprintf(shp, sizeof shp, "%s_shape", fn);
    kiln_cg_printf(&c->src, "\n// %s: %s (%s), NHWC x[%lld,%lld,%lld,%lld] * OHWI w[%lld,%lld,%lld,%lld], tile %s\n", fn,
                   c->group, a.an != n ? "conv_epilogue" : "Conv", (long long)N, (long long)H, (long long)W, (long long)C,
                   (long long)K, (long long)R, (long long)S, (long long)C, names[pick]);
    {
        conv_src q = *s1;
        if (!s2) q.c = C; /* (the stem's padded channels) */
        emit_shape(c, shp, N, K, P, Q, &q, tma && tma_rows_src(&q, P, Q));
        if (s2) {
            snprintf(shp2, sizeof shp2, "%s_shape2", fn);
            emit_shape(c, shp2, N, K, P, Q, s2, tma && tma_rows_src(s2, P, Q));
        }
    }
    if ((st = kiln_cg_conv_emit_epilogue(c, n, epi, bias_expr))) return st;
    /* the halo kernel is persistent: its grid is the blocks resident at once, per_sm a block
     * (shared memory; launch bounds keep the registers to match: 128 a thread, 255 for N = 256) */
    int per_sm = 1;
    if (halo && !(f->sw & NHWC_PP)) { /* (hp: one block, its warpgroups take turns) */
        const int cap = f->wg == 1 && f->bm == 256 ? 2 : 4 / f->wg, fit = (int)((228 * 1024) / (smem + 1024));
        per_sm = fit < 1 ? 1 : fit > cap ? cap : fit;
    }
    /* TMA tiles small enough for several blocks per SM say so (the registers must allow it) */
    if (tma && !(f->sw & NHWC_PP)) {
        const int fit = (int)((228 * 1024) / (smem + 1024));
        per_sm = fit < 1 ? 1 : fit > 3 ? 3 : fit;
    }
    char tma_lb[16] = "";
    if (tma && per_sm > 1) snprintf(tma_lb, sizeof tma_lb, ", %d", per_sm);
    if (halo && (f->sw & NHWC_PP))
        kiln_cg_printf(&c->src,
                       "#include \"conv_wgmma.cuh\"\n"
                       "extern \"C\" __global__ void __launch_bounds__(%d, 1) %s(const __half *x, const __half *w, const "
                       "%s::bias_t *bias, const %s::res_t *res, __half *y, float *part%s) {\n"
                       "    KILN_NHWC_SMEM(smem, %u);\n"
                       "    static_assert(KILN_HALO_PP_SMEM_BYTES(%d, %lld, %lld, %lld, %d, %d, %d, %d, %d) == %u, \"halo_smem\");\n"
                       "    kiln::conv_halo_pp_f16<%s, %d, %s, %s, %s, %d, %d, %s, %s>(x, w, bias, res, y, smem%s);\n}\n",
                       threads, fn, epi, epi, f->sw & NHWC_HTMA ? ", const __grid_constant__ kiln::tmap th" : "", smem, f->bm / 8,
                       (long long)an_src.r, (long long)an_src.s, (long long)C, hp_swz(C), f->wg, f->stages, a.residual < 0,
                       !!(f->sw & NHWC_HTMA), smem, shp, f->bm / 8, epi, hp_swz(C) ? "true" : "false",
                       f->sw & NHWC_RA ? "true" : "false", f->wg, f->stages, a.residual < 0 ? "true" : "false",
                       f->sw & NHWC_HTMA ? "true" : "false", f->sw & NHWC_HTMA ? ", &th" : "");
    else if (halo)
        kiln_cg_printf(&c->src,
                       "#include \"conv_wgmma.cuh\"\n"
                       "extern \"C\" __global__ void __launch_bounds__(%d, %d) %s(const __half *x, const __half *w, const "
                       "%s::bias_t *bias, const %s::res_t *res, __half *y, float *part) {\n"
                       "    KILN_NHWC_SMEM(smem, %u);\n"
                       "    kiln::conv_halo_f16<%s, %d, %d, %s>(x, w, bias, res, y, smem);\n}\n",
                       threads, per_sm, fn, epi, epi, smem, shp, f->bm / 8, f->wg, epi);
    else if (tma && (f->sw & NHWC_PP)) { /* persistent: the grid is at most one block per SM */
        char tail[48]; /* conv_tma_pp_f16's COOP, SK, SP, TR, CL */
        if (f->sw & NHWC_CL)
            snprintf(tail, sizeof tail, ", true, false, %d, false, %d", f->sw & NHWC_HALF ? 2 : 1, cl_mode(f, K));
        else if (f->sw & NHWC_OV)
            snprintf(tail, sizeof tail, ", true, false, 1, false, 0, true");
        else
            snprintf(tail, sizeof tail, "%s",
                     f->sw & NHWC_TR     ? (f->sw & NHWC_COOP ? ", true, false, 1, true" : ", false, false, 1, true")
                     : f->sw & NHWC_SK   ? ", true, true"
                     : f->sw & NHWC_HALF ? ", true, false, 2"
                     : f->sw & NHWC_COOP ? ", true"
                                         : "");
        kiln_cg_printf(&c->src,
                       "#include \"conv_wgmma.cuh\"\n"
                       "extern \"C\" __global__ void __launch_bounds__(%d)%s %s(const __half *x, const __half *w, const "
                       "%s::bias_t *bias, const %s::res_t *res, __half *y, const __half *x2, "
                       "const __grid_constant__ kiln::tmap ta, const __grid_constant__ kiln::tmap tb, "
                       "const __grid_constant__ kiln::tmap ta2, const __grid_constant__ kiln::tmap ty, "
                       "const __grid_constant__ kiln::tmap tr%s) {\n"
                       "    KILN_NHWC_SMEM(smem, %u);\n"
                       "    kiln::conv_tma_pp_f16<%s, %d, %d, %d, %s, %s, %s%s>(x, w, bias, res, y, smem, x2, &ta, &tb, &ta2, "
                       "&ty, &tr%s);\n}\n",
                       threads, f->sw & NHWC_CL ? " KILN_CLUSTER2" : "", fn, epi, epi,
                       f->sw & NHWC_SK ? ", float *part, unsigned *flags" : "", smem, shp,
                       f->sw & NHWC_COOP ? f->bm / 2 : f->bm, f->bn, f->stages, epi, a.residual >= 0 ? "true" : "false",
                       s2 ? shp2 : "kiln::conv_no_src2", tail, f->sw & NHWC_SK ? ", part, flags" : "");
    } else if (tma) /* sm_90a: TMA + wgmma; other targets the mma.sync fallback (the maps unread) */
        kiln_cg_printf(&c->src,
                       "#include \"conv_wgmma.cuh\"\n"
                       "extern \"C\" __global__ void __launch_bounds__(%d%s) %s(const __half *x, const __half *w, const "
                       "%s::bias_t *bias, const %s::res_t *res, __half *y, float *part, const __half *x2, "
                       "const __grid_constant__ kiln::tmap ta, const __grid_constant__ kiln::tmap tb, "
                       "const __grid_constant__ kiln::tmap ta2) {\n"
                       "    KILN_NHWC_SMEM(smem, %u);\n"
                       "    kiln::conv_tma_f16<%s, %d, %d, %d, %d, %d, %s%s%s%s>(x, w, bias, res, y, part, smem, x2, &ta, &tb, "
                       "&ta2);\n}\n",
                       threads, tma_lb, fn, epi, epi, smem, shp, f->bm, f->bn, f->wg, f->stages, f->splitk, epi,
                       s2 || (f->sw & NHWC_TR) ? ", " : "", s2 ? shp2 : f->sw & NHWC_TR ? "kiln::conv_no_src2" : "",
                       f->sw & NHWC_TR ? ", true" : "");
    else if (f->wg) /* sm_90a: wgmma; other targets run the mma.sync fallback inside conv_wgmma_f16 */
        kiln_cg_printf(&c->src,
                       "#include \"conv_wgmma.cuh\"\n"
                       "extern \"C\" __global__ void __launch_bounds__(%d) %s(const __half *x, const __half *w, const "
                       "%s::bias_t *bias, const %s::res_t *res, __half *y, float *part%s) {\n"
                       "    KILN_NHWC_SMEM(smem, %u);\n"
                       "    kiln::conv_wgmma%s_f16<%s, %d, %d, %d, %d, %d, %s, %s%s%s%s>(x, w, bias, res, y, part, smem%s);\n}\n",
                       threads, fn, epi, epi, s2 ? ", const __half *x2" : "", smem, f->sw & NHWC_WS ? "_ws" : "", shp,
                       f->bm, f->bn, f->wg, f->stages, f->splitk, epi, f->sw & NHWC_SWZ ? "true" : "false",
                       s2 || (f->sw & NHWC_TR) ? ", " : "", s2 ? shp2 : f->sw & NHWC_TR ? "kiln::conv_no_src2" : "",
                       f->sw & NHWC_TR ? ", true" : "", s2 ? ", x2" : "");
    else
        kiln_cg_printf(&c->src,
                       "extern \"C\" __global__ void __launch_bounds__(%d) %s(const __half *x, const __half *w, const "
                       "%s::bias_t *bias, const %s::res_t *res, __half *y, float *part%s) {\n"
                       "    KILN_NHWC_SMEM(smem, %u);\n"
                       "    kiln::conv_nhwc_f16<%s, %d, %d, %d, %d, %d, %d, %d, %s%s%s>(x, w, bias, res, y, part, smem%s);\n}\n",
                       threads, fn, epi, epi, s2 ? ", const __half *x2" : "", smem, shp, f->bm, f->bn, f->bk, f->wm, f->wn,
                       f->stages, f->splitk, epi, s2 ? ", " : "", shp2, s2 ? ", x2" : "");

    /* OHWI fp16 weights; a pair's rows are [source 1's R*S*C | source 2's] */
    {
        uint16_t *h = calloc((size_t)(K * KD), sizeof *h); /* padded channels stay zero */
        if (!h) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        conv_src q = *s1;
        if (!s2) q.c = C;
        if (s2d) /* w'[k][i][j][(2a + b) * 4 + c] = w[k][c][2i + a][2j + b] */
            for (int64_t ko = 0; ko < K; ko++)
                for (int64_t ci = 0; ci < C0; ci++)
                    for (int64_t r = 0; r < R; r++)
                        for (int64_t sx = 0; sx < S; sx++)
                            h[ko * KD + ((r / 2) * S2 + sx / 2) * 16 + ((r % 2) * 2 + sx % 2) * 4 + ci] =
                                kiln_f32_to_f16((float)kiln_tensor_get(w->data, ((ko * C0 + ci) * R + r) * S + sx));
        else
            fill_ohwi(h, KD, 0, q.wv->data, K, s2 ? q.c : C0, &q, s2 ? q.s : SW_);
        if (s2) fill_ohwi(h, KD, KD - KD2, s2->wv->data, K, s2->c, s2, s2->s);
        char wname[256];
        snprintf(wname, sizeof wname, "%s%s.ohwi", w->name && *w->name ? w->name : "const", s2 ? "+pair" : "");
        int64_t dims[4] = {K, R, SW_, C};
        if (s2 || s2d) dims[1] = 1, dims[2] = 1, dims[3] = KD;
        uint64_t off;
        st = kiln_bundle_add_weight(c->b, wname, KILN_F16, 4, dims, h, (uint64_t)(K * KD) * 2, &off);
        free(h);
        if (st) return st;
        args[1] = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, off};
    }
    if (C == C0 && (st = kiln_cg_value_arg(c, s1->x, &args[0]))) return st;
    if (is_pair && pr.bias >= 0) {
        if ((st = pair_bias(c, a.bias, pr.bias, K, &args[2]))) return st;
    } else if (a.bias >= 0 ? (st = kiln_cg_value_arg(c, a.bias, &args[2])) : (args[2] = kiln_cg_null_arg, 0)) {
        return st;
    }
    if (a.residual >= 0 ? (st = kiln_cg_value_arg(c, a.residual, &args[3])) : (args[3] = kiln_cg_null_arg, 0)) return st;
    if ((st = kiln_cg_value_arg(c, a.y, &args[4]))) return st;
    if (f->splitk > 1) {
        if ((st = kiln_cg_scratch(c, (uint64_t)f->splitk * (uint64_t)(M * K) * 4, &args[5]))) return st;
    } else {
        args[5] = kiln_cg_null_arg;
    }
    uint64_t gx = (uint64_t)((M + f->bm - 1) / f->bm), gy = (uint64_t)((K + f->bn - 1) / f->bn);
    if (tma && (f->sw & NHWC_PP)) { /* persistent: one block per SM at most (stream-K: a depth tile a block at least) */
        const uint64_t sms = (uint64_t)target_gpu(c).sms, tiles = f->sw & NHWC_SK ? gx * gy * (uint64_t)(KD / 64) : gx * gy;
        gx = tiles < sms ? tiles : sms, gy = 1;
        if (f->sw & NHWC_CL) { /* clusters of two blocks, each a pair of tiles (cl_mode) */
            const uint64_t mt = (uint64_t)((M + f->bm - 1) / f->bm), nt = (uint64_t)((K + f->bn - 1) / f->bn);
            const uint64_t units = cl_mode(f, K) == 2 ? (mt + 1) / 2 * nt : tiles / 2;
            gx = 2 * (units < sms / 2 ? units : sms / 2);
        }
    }
    if (halo) { /* persistent: at most the blocks resident on the target (228 KiB, 1 KiB reserved a block) */
        int64_t tiles = N * ((P + f->bm / 8 - 1) / (f->bm / 8)) * ((Q + 7) / 8);
        if (f->sw & NHWC_PP) tiles = (tiles + f->wg - 1) / f->wg; /* (a block takes sets of wg tiles) */
        const int64_t most = (int64_t)target_gpu(c).sms * per_sm;
        gx = (uint64_t)(tiles < most ? tiles : most), gy = 1;
    }
    if (s2 && (st = kiln_cg_value_arg(c, s2->x, &args[6]))) return st;
    int n_args = s2 ? 7 : 6;
    if (halo && (f->sw & NHWC_HTMA)) { /* hq: x as [N][H][W][C], a box of (TY + R - 1) x (8 + S - 1) pixels x 64 channels */
        if (args[0].kind != KILN_ARG_ARENA) return kiln_errorf(KILN_ERR_INTERNAL, "%s: hq tile on an input outside the arena", fn);
        kiln_tmap_desc td;
        memset(&td, 0, sizeof td);
        td.mode = KILN_TMAP_TILED, td.rank = 4, td.base = KILN_ARG_ARENA, td.dtype = 6, td.offset = args[0].value, td.swizzle = 3;
        td.dims[0] = (uint64_t)C, td.dims[1] = (uint64_t)W, td.dims[2] = (uint64_t)H, td.dims[3] = (uint64_t)N;
        td.strides[0] = 2, td.strides[1] = 2 * (uint64_t)C, td.strides[2] = td.strides[1] * (uint64_t)W;
        td.strides[3] = td.strides[2] * (uint64_t)H;
        td.box[0] = 64, td.box[1] = (uint32_t)(8 + an_src.s - 1), td.box[2] = (uint32_t)(f->bm / 8 + an_src.r - 1), td.box[3] = 1;
        td.estrides[0] = td.estrides[1] = td.estrides[2] = td.estrides[3] = 1;
        if ((st = tmap_arg(c, &td, &args[6]))) return st;
        n_args = 7;
    }
    if (tma) { /* x2 (null without a second source), then the maps: x, the weights [K][KD], x2 (x's again) */
        if (!s2) args[6] = kiln_cg_null_arg;
        if ((st = tmap_im2col_arg(c, s1, N, P, Q, args[0].value, f->bm, &args[7]))) return st;
        kiln_tmap_desc td;
        memset(&td, 0, sizeof td);
        td.mode = KILN_TMAP_TILED, td.rank = 2, td.base = KILN_ARG_WEIGHT, td.dtype = 6, td.offset = args[1].value, td.swizzle = 3;
        td.dims[0] = (uint64_t)KD, td.dims[1] = (uint64_t)K, td.strides[0] = 2, td.strides[1] = 2 * (uint64_t)KD;
        td.box[0] = 64, td.box[1] = (uint32_t)f->bn, td.estrides[0] = td.estrides[1] = 1;
        if ((st = tmap_arg(c, &td, &args[8]))) return st;
        if (s2 ? (st = tmap_im2col_arg(c, s2, N, P, Q, args[6].value, f->bm, &args[9])) : (args[9] = args[7], 0)) return st;
        n_args = 10;
        if (f->sw & NHWC_PP) { /* no split-K partials; the maps of y and of the residual (y's without one) */
            for (int i = 5; i < 9; i++) args[i] = args[i + 1];
            const int wbm = f->sw & NHWC_COOP ? f->bm / 2 : f->bm; /* one warpgroup's rows */
            if ((st = tmap_rows_arg(c, args[4].value, M, K, wbm, &args[9]))) return st;
            if (a.residual >= 0 ? (st = tmap_rows_arg(c, args[3].value, M, K, wbm, &args[10])) : (args[10] = args[9], 0))
                return st;
            n_args = 11;
            if (f->sw & NHWC_SK) { /* a block's fp32 partial tile each, and its flags */
                if ((st = kiln_cg_scratch(c, gx * (uint64_t)(f->bm * f->bn) * 4, &args[11]))) return st;
                if ((st = kiln_cg_sync_arg(c, &args[12]))) return st;
                n_args = 13;
            }
        }
    }
    if ((st = kiln_cg_launch_smem(c, fn, gx, gy, (uint64_t)f->splitk, (uint32_t)threads, smem, args, n_args))) return st;
    *handled = true;
    if (f->splitk == 1) return KILN_OK;

    /* split-K: the ordered sum of the partials and the epilogue */
    char rfn[64], repi[80];
    kiln_cg_kernel_name(c, "conv_nhwc_splitk", rfn, sizeof rfn);
    snprintf(repi, sizeof repi, "%s_epilogue", rfn);
    kiln_cg_printf(&c->src, "\n// %s: %s, the sum of %d split-K partials and the epilogue\n", rfn, c->group, f->splitk);
    if ((st = kiln_cg_conv_emit_epilogue(c, n, repi, bias_expr))) return st;
    kiln_cg_printf(&c->src,
                   "extern \"C\" __global__ void __launch_bounds__(%d) %s(const float *part, const %s::bias_t *bias, const "
                   "%s::res_t *res, __half *y) {\n"
                   "    kiln::conv_nhwc_splitk_reduce<%lld, %lld, %d, %s>(part, bias, res, y);\n}\n",
                   BLOCK_1D, rfn, repi, repi, (long long)M, (long long)K, f->splitk, repi);
    kiln_bundle_arg rargs[4] = {args[5], args[2], args[3], args[4]};
    return kiln_cg_launch(c, rfn, kiln_cg_grid_1d(M * K / 8), 1, 1, BLOCK_1D, rargs, 4); /* 8 channels a thread */
}
