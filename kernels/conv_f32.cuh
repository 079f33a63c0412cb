// conv_f32.cuh — fp32 NCHW implicit-GEMM convolution on FFMA (true fp32: fp32 products and
// accumulation), emitted by codegen/cg_conv.c at --precision fp32.
//
//     conv_f32<SHP, BM, BN, BK, TM, TN, SPLITK, E>(x, wt, bias, res, y, part)
//
// GEMM view per group g: rows m = output channels of the group (KG = K / G), columns n = output
// pixels (img, p, q) of the whole batch, depth k = (c, r, s) over C / G * R * S taps. A is the
// weight tensor transposed at build time to wt[G][KD][KG] (consecutive threads load consecutive
// m: coalesced, and shared stores without conflicts); B(k, n) gathers the input tap k of pixel n
// from x [N][C][H][W] (consecutive n are consecutive output columns q: coalesced), 0 in padding.
// SHP is a generated struct of `static constexpr int` N, C, H, W, K, P, Q, R, S, SH, SW, PH,
// PW, DH, DW, G: every index division is by a constant.
//
// Launch: (BM / TM) * (BN / TN) threads, grid (ceil(N*P*Q / BN), ceil(KG / BM), G * SPLITK).
// Each thread owns a TM x TN register tile made of (TM / 4) x (TN / 4) 4x4 pieces spaced
// 4 * (BM / TM) rows and 4 * (BN / TN) columns apart, so that one 16-byte shared read gives a
// thread four operands and the reads of a warp do not conflict. The thread's one B column (its
// pixel's image base, top-left input tap) and A row are fixed for the whole kernel: the pixel
// decomposition is hoisted out of the K loop; per tap only (c, r, s) of k is computed, by
// constant divisions. Two shared stages: tile i + 1 is loaded from global memory into registers
// before the FFMA work on tile i and stored to the other stage after it (one barrier a tile).
//
// SPLITK > 1: split z % SPLITK accumulates K tiles [z * KT_SPLIT, (z + 1) * KT_SPLIT) and writes
// fp32 partials part[split][y index]; conv_f32_splitk_reduce sums the splits in order
// (deterministic) and applies the epilogue. SPLITK == 1 applies E::apply(bias, res, channel,
// y index, v) and stores y.
#pragma once

#include "kiln_common.cuh"

namespace kiln {

struct alignas(16) f32x4 {
    float v[4];
};

__device__ __forceinline__ f32x4 conv_f32_ld4(const float *p) { // p: 16-byte aligned shared memory
#ifdef KILN_EMU
    f32x4 r;
    for (int i = 0; i < 4; i++) r.v[i] = p[i];
    return r;
#else
    return *reinterpret_cast<const f32x4 *>(p);
#endif
}

__device__ __forceinline__ void conv_f32_st4(float *p, const f32x4 &v) { // p: 16-byte aligned global memory
#ifdef KILN_EMU
    for (int i = 0; i < 4; i++) p[i] = v.v[i];
#else
    *reinterpret_cast<f32x4 *>(p) = v;
#endif
}

template <class SHP, int BM, int BN, int BK, int TM, int TN, int SPLITK, class E>
__device__ __forceinline__ void conv_f32(const float *__restrict__ x, const float *__restrict__ wt,
                                         const typename E::bias_t *bias, const typename E::res_t *res,
                                         float *__restrict__ y, float *__restrict__ part) {
    constexpr int G = SHP::G, KG = SHP::K / G, CG = SHP::C / G, RS = SHP::R * SHP::S, KD = CG * RS;
    constexpr int PQ = SHP::P * SHP::Q, NPIX = SHP::N * PQ, HW = SHP::H * SHP::W;
    constexpr int TX = BN / TN, TY = BM / TM, NT = TX * TY;
    constexpr int A_LD = BM * BK / NT, B_LD = BK * BN / NT; // global loads per thread and tile
    constexpr int KT = (KD + BK - 1) / BK, KT_SPLIT = (KT + SPLITK - 1) / SPLITK;
    // no tap of a valid pixel reads padding: the bounds checks on h and w go away
    constexpr bool NOPAD = SHP::PH == 0 && SHP::PW == 0 && (SHP::P - 1) * SHP::SH + (SHP::R - 1) * SHP::DH < SHP::H &&
                           (SHP::Q - 1) * SHP::SW + (SHP::S - 1) * SHP::DW < SHP::W;
    static_assert(TM % 4 == 0 && TN % 4 == 0 && BM % TM == 0 && BN % TN == 0, "register tiles of 4x4 pieces");
    static_assert(NT % BM == 0 && NT % BN == 0 && (BM * BK) % NT == 0 && (BK * BN) % NT == 0, "tile loads");
    alignas(16) __shared__ float As[2][BK][BM];
    alignas(16) __shared__ float Bs[2][BK][BN];

    const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
    const int g = (int)blockIdx.z / SPLITK, split = (int)blockIdx.z % SPLITK;
    const int m0 = (int)blockIdx.y * BM, n0 = (int)blockIdx.x * BN;

    // this thread's A column (output channel) and B column (output pixel) in the tile loads
    const int a_mm = tid % BM, a_kk = tid / BM, b_nn = tid % BN, b_kk = tid / BN;
    const bool a_ok = m0 + a_mm < KG;
    const float *a_src = wt + (i64)g * KD * KG + m0 + a_mm;
    const int pix = n0 + b_nn;
    const bool b_ok = pix < NPIX;
    const int img = pix / PQ, pq = pix - img * PQ, op = pq / SHP::Q, oq = pq - op * SHP::Q;
    const int h0 = op * SHP::SH - SHP::PH, w0 = oq * SHP::SW - SHP::PW;
    const float *b_src = x + ((i64)img * SHP::C + g * CG) * HW;

    float ra[A_LD], rb[B_LD];
    auto load = [&](int kt) {
#pragma unroll
        for (int j = 0; j < A_LD; j++) {
            const int k = kt * BK + a_kk + j * (NT / BM);
            ra[j] = a_ok && k < KD ? a_src[(i64)k * KG] : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < B_LD; j++) {
            const int k = kt * BK + b_kk + j * (NT / BN);
            const int c = k / RS, t = k - c * RS, r = t / SHP::S, s = t - r * SHP::S;
            const int h = h0 + r * SHP::DH, w = w0 + s * SHP::DW;
            bool ok = b_ok && k < KD;
            if (!NOPAD) ok = ok && (unsigned)h < (unsigned)SHP::H && (unsigned)w < (unsigned)SHP::W;
            rb[j] = ok ? b_src[c * HW + h * SHP::W + w] : 0.0f;
        }
    };
    auto store = [&](int st) {
#pragma unroll
        for (int j = 0; j < A_LD; j++) As[st][a_kk + j * (NT / BM)][a_mm] = ra[j];
#pragma unroll
        for (int j = 0; j < B_LD; j++) Bs[st][b_kk + j * (NT / BN)][b_nn] = rb[j];
    };

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    const int kt0 = split * KT_SPLIT;
    const int nk = KT - kt0 < KT_SPLIT ? KT - kt0 : KT_SPLIT; // <= 0: an empty last split (writes zeros)
    if (nk > 0) {
        load(kt0);
        store(0);
        __syncthreads();
    }
    for (int i = 0; i < nk; i++) {
        const int cur = i & 1;
        if (i + 1 < nk) load(kt0 + i + 1); // in flight during the FFMA work below
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            float a[TM], b[TN];
#pragma unroll
            for (int u = 0; u < TM / 4; u++) {
                const f32x4 v = conv_f32_ld4(&As[cur][kk][u * TY * 4 + ty * 4]);
#pragma unroll
                for (int e = 0; e < 4; e++) a[u * 4 + e] = v.v[e];
            }
#pragma unroll
            for (int u = 0; u < TN / 4; u++) {
                const f32x4 v = conv_f32_ld4(&Bs[cur][kk][u * TX * 4 + tx * 4]);
#pragma unroll
                for (int e = 0; e < 4; e++) b[u * 4 + e] = v.v[e];
            }
#pragma unroll
            for (int ii = 0; ii < TM; ii++)
#pragma unroll
                for (int jj = 0; jj < TN; jj++) acc[ii][jj] = fmaf(a[ii], b[jj], acc[ii][jj]);
        }
        if (i + 1 < nk) store(cur ^ 1); // the other stage: everyone finished reading it last tile
        __syncthreads();
    }

    // epilogue: per column its pixel's NCHW offset (image, p*Q + q), per row its channel. With
    // P*Q % 4 == 0 a thread's 4 consecutive columns are 4 consecutive pixels of one image: one
    // 16-byte store when dst is 16-byte aligned (arena values and the split-K scratch are; a
    // bound graph output may not be) and o % 4 == 0.
    float *dst = SPLITK == 1 ? y : part + (i64)split * NPIX * SHP::K;
    const bool vec = PQ % 4 == 0 && ((unsigned long long)dst & 15) == 0;
#pragma unroll
    for (int u = 0; u < TN / 4; u++) {
        const int nb = n0 + u * TX * 4 + tx * 4;
        if (vec) {
            if (nb >= NPIX) continue; // NPIX % 4 == 0: nb + 3 < NPIX too
            const int b = nb / PQ;
            const i64 ybase = (i64)b * SHP::K * PQ + (nb - b * PQ);
#pragma unroll
            for (int ii = 0; ii < TM; ii++) {
                const int m = m0 + (ii / 4) * TY * 4 + ty * 4 + (ii % 4);
                if (m >= KG) continue;
                const int ch = g * KG + m;
                const i64 o = ybase + (i64)ch * PQ;
                f32x4 v;
#pragma unroll
                for (int e = 0; e < 4; e++)
                    v.v[e] = SPLITK == 1 ? E::apply(bias, res, ch, o + e, acc[ii][u * 4 + e]) : acc[ii][u * 4 + e];
                conv_f32_st4(dst + o, v);
            }
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int n = nb + e;
                if (n >= NPIX) continue;
                const int b = n / PQ;
                const i64 ybase = (i64)b * SHP::K * PQ + (n - b * PQ);
#pragma unroll
                for (int ii = 0; ii < TM; ii++) {
                    const int m = m0 + (ii / 4) * TY * 4 + ty * 4 + (ii % 4);
                    if (m >= KG) continue;
                    const int ch = g * KG + m;
                    const i64 o = ybase + (i64)ch * PQ;
                    dst[o] = SPLITK == 1 ? E::apply(bias, res, ch, o, acc[ii][u * 4 + e]) : acc[ii][u * 4 + e];
                }
            }
        }
    }
}

// Split-K second pass: y[o] = epilogue(sum over the splits of part[split][o]), summed in split
// order. Grid-stride, one thread per output element (coalesced).
template <class SHP, int SPLITK, class E>
__device__ __forceinline__ void conv_f32_splitk_reduce(const float *__restrict__ part, const typename E::bias_t *bias,
                                                       const typename E::res_t *res, float *__restrict__ y) {
    constexpr i64 PQ = (i64)SHP::P * SHP::Q, TOTAL = (i64)SHP::N * SHP::K * PQ;
    for (i64 o = global_thread_index(); o < TOTAL; o += grid_thread_count()) {
        float v = 0.0f;
#pragma unroll
        for (int z = 0; z < SPLITK; z++) v += part[z * TOTAL + o];
        y[o] = E::apply(bias, res, ((int)o / (int)PQ) % SHP::K, o, v); // o < 2^31 (codegen checks)
    }
}

// Depthwise (one input channel per group: C / G == 1, any channel multiplier K / G) fp32 NCHW
// convolution, for the convs with few taps that a GEMM tile would mostly pad: one thread per
// output, grid-stride over the NCHW output (consecutive threads: consecutive q, so the input
// row loads of a warp coalesce and neighbouring taps hit L1). Shapes from SHP (as conv_f32):
// constant divisions, and the R x S taps unrolled.
template <class SHP, class E>
__device__ __forceinline__ void conv_f32_dw(const float *__restrict__ x, const float *__restrict__ w,
                                            const typename E::bias_t *bias, const typename E::res_t *res,
                                            float *__restrict__ y) {
    constexpr int KG = SHP::K / SHP::G, HW = SHP::H * SHP::W;
    constexpr i64 TOTAL = (i64)SHP::N * SHP::K * SHP::P * SHP::Q;
    static_assert(SHP::C == SHP::G, "one input channel per group");
    for (i64 i = global_thread_index(); i < TOTAL; i += grid_thread_count()) {
        const int o = (int)i; // < 2^31 (codegen checks)
        const int t = o / SHP::Q, oq = o - t * SHP::Q, t2 = t / SHP::P, op = t - t2 * SHP::P;
        const int b = t2 / SHP::K, k = t2 - b * SHP::K;
        const float *xc = x + (i64)(b * SHP::C + k / KG) * HW;
        const float *wk = w + k * SHP::R * SHP::S;
        const int h0 = op * SHP::SH - SHP::PH, w0 = oq * SHP::SW - SHP::PW;
        float acc = 0.0f;
#pragma unroll
        for (int r = 0; r < SHP::R; r++) {
            const int h = h0 + r * SHP::DH;
            if ((unsigned)h >= (unsigned)SHP::H) continue;
#pragma unroll
            for (int s = 0; s < SHP::S; s++) {
                const int ww = w0 + s * SHP::DW;
                if ((unsigned)ww < (unsigned)SHP::W) acc = fmaf(xc[h * SHP::W + ww], wk[r * SHP::S + s], acc);
            }
        }
        y[i] = E::apply(bias, res, k, i, acc);
    }
}

} // namespace kiln
