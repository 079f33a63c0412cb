// conv_nhwc.cuh — fp16 NHWC implicit-GEMM convolution for sm_80+ (cp.async, ldmatrix,
// mma.sync.m16n8k16 with fp32 accumulation), emitted by codegen/cg_conv_nhwc.c.
//
//     conv_nhwc_f16<SHP, BM, BN, BK, WM, WN, STAGES, SPLITK, E[, SHP2]>(x, w, bias, res, y, part, smem[, x2])
//
// GEMM view: rows m = output pixels (n, p, q) of x NHWC [N][H][W][C], columns = output channels
// k, depth = R*S*C in (r, s, c) order (c innermost) so that one 16-byte chunk of 8 channels is
// one contiguous piece of x and of the weights, stored OHWI [K][R][S][C]. y is NHWC: y[m * K + k].
// SHP is a generated struct of `static constexpr int` N, H, W, C, K, P, Q, R, S, SH, SW, PH, PW,
// DH, DW: every index division is by a constant. Requires C % 8 == 0 (or C == 4: the stem's
// two-tap chunks, nhwc_load_a_pair; S padded to even, weights [K][R][S + S % 2][4]) and K % 8 == 0.
// With SHP2 (a conv pair, see conv_no_src2) the depth continues with a second convolution's
// (r, s, c) over x2: y = conv(x) + conv2(x2) in one accumulator.
//
// Launch: (BM / WM) * (BN / WN) warps, grid (ceil(M / BM), ceil(K / BN), SPLITK), dynamic shared
// memory conv_nhwc_smem_bytes(BM, BN, BK, STAGES). Each thread keeps the same 16-byte chunk
// column of the A and B tiles for the whole kernel, so its pixels' (n, p, q) decomposition is
// done once; per K tile only (r, s, c) of its one chunk column is computed.
//
// Pipeline: STAGES shared stages filled with cp.async.cg (16 bytes, src-size 0 = zero fill for
// padding taps, rows past M or K and depth past R*S*C), one commit group per stage; the loads of
// tile i + STAGES - 1 are issued before the mma work on tile i. Shared rows are BK + 8 halves
// long: the 8 row addresses of one ldmatrix 8x8 matrix then fall on 8 distinct 4-bank groups.
// Fragments: ldmatrix.x4 (non-transposed) gives A's a0..a3 of one 16x16 tile (lane l addresses
// row l % 16, column 8 * (l / 16)), and for B = weights [n][k] (what mma's .col B wants) the
// b0, b1 of two adjacent n8 tiles (lane l: row (l % 8) + 8 * (l / 16), column 8 * ((l / 8) % 2)).
//
// SPLITK > 1: split z accumulates K tiles [z * KT_SPLIT, (z + 1) * KT_SPLIT) and writes fp32
// partials part[z][M][K]; conv_nhwc_splitk_reduce sums the splits in order (deterministic) and
// applies the epilogue. SPLITK == 1 stages the accumulators in shared memory and stores 16-byte
// chunks of 8 channels (conv_nhwc_epi_rows below; a tile whose fp32 rows do not fit in the
// pipeline's shared memory applies E::apply(bias, res, channel, flat index, v) to the fragments
// and stores two adjacent channels as one 32-bit word).
//
// Under the CPU emulator (KILN_EMU) cp.async is a synchronous copy with zero fill (commit and
// wait do nothing) and ldmatrix is a warp exchange in tests/codegen/emu/emu_sched.cpp that hands
// each lane the words the PTX ISA's layout gives it, so a fragment-layout bug fails the tests.
#pragma once

#include "kiln_common.cuh"
#include "mma.cuh"

#ifdef KILN_EMU
extern "C" void emu_cp_async16(void *dst, const void *src, int src_bytes);
extern "C" void emu_cp_async8(void *dst, const void *src, int src_bytes);
extern "C" void emu_ldmatrix(int n, int trans, kiln::u32 *r, const void *row);
#define KILN_NHWC_SMEM(name, bytes) alignas(16) static unsigned char name[bytes]
#else
#define KILN_NHWC_SMEM(name, bytes) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace kiln {

#define KILN_NHWC_SMEM_BYTES(BM, BN, BK, STAGES) ((STAGES) * ((BM) + (BN)) * ((BK) + 8) * 2)

// 16 bytes global -> shared; valid == false writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
#ifdef KILN_EMU
    emu_cp_async16(dst, src, valid ? 16 : 0);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    const int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(n) : "memory");
#endif
}
// 8 bytes global -> shared (cp.async.ca: .cg takes only 16); valid == false zero-fills. The
// stem's two-tap chunks (conv_nhwc_f16 with SHP::C == 4).
__device__ __forceinline__ void cp_async8(void *dst, const void *src, bool valid) {
#ifdef KILN_EMU
    emu_cp_async8(dst, src, valid ? 8 : 0);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    const int n = valid ? 8 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(d), "l"(src), "r"(n) : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifndef KILN_EMU
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
#ifndef KILN_EMU
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); // shared memory changed under the compiler
#endif
}

// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16: lane l supplies the row address for
// matrix l / 8 (the addresses of lanes 8 * NMAT and up are not used), receives r[i]
// of matrix i.
template <int NMAT, bool TRANS> __device__ __forceinline__ void ldmatrix(u32 *r, const void *row) {
#ifdef KILN_EMU
    emu_ldmatrix(NMAT, TRANS, r, row);
#else
    const unsigned a = (unsigned)__cvta_generic_to_shared(row);
    if constexpr (NMAT == 4 && !TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
    else if constexpr (NMAT == 4)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
    else if constexpr (NMAT == 2 && !TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
    else if constexpr (NMAT == 2)
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
    else if constexpr (!TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
#endif
}

// Two floats as two halves in one 32-bit store (p is 4-byte aligned: even channel, K % 8 == 0).
__device__ __forceinline__ void st_half2(__half *p, float a, float b) {
    const u32 v = (u32)__half_as_ushort(__float2half_rn(a)) | ((u32)__half_as_ushort(__float2half_rn(b)) << 16);
    *reinterpret_cast<u32 *>(p) = v;
}

// ---- the shared-memory epilogue (SPLITK == 1) ----
// After the main loop the block's fp32 accumulators are staged in the (now free) pipeline
// shared memory as rows of BN floats, stride KILN_NHWC_EPI_LD(BN) = BN + 8 floats: the warps'
// fragment stores (two floats at row g (+8), column 2t, g = lane / 4, t = lane % 4) then put the
// 4 rows of a half-warp 8 banks apart (conflict-free 8-byte stores). The block reads back chunks
// of 8 channels of one pixel, loads 16 bytes of the residual (when E has one: E::res_t is __half,
// NHWC like y), applies E::apply per element and stores 16 bytes of y: whole rows of BN channels
// are contiguous in NHWC, so a warp's stores are coalesced 16-byte writes.
#define KILN_NHWC_EPI_LD(BN) ((BN) + 8)
struct alignas(16) conv_nhwc_v8h {
    __half h[8];
};
struct alignas(16) conv_nhwc_v4f {
    float f[4];
};
struct alignas(8) conv_nhwc_v2f {
    float f[2];
};
// The residual is present exactly when the generated epilogue's res_t is __half (cg_conv_nhwc.c
// only takes fp16 residuals; without one res_t is float and res is null).
template <class T> struct conv_nhwc_is_half {
    static constexpr bool value = false;
};
template <> struct conv_nhwc_is_half<__half> {
    static constexpr bool value = true;
};

// Two accumulators of row `row`, columns col, col + 1 into the staging buffer.
template <int BN> __device__ __forceinline__ void conv_nhwc_epi_put(float *cs, int row, int col, float a, float b) {
    conv_nhwc_v2f v;
    v.f[0] = a, v.f[1] = b;
    *reinterpret_cast<conv_nhwc_v2f *>(cs + row * KILN_NHWC_EPI_LD(BN) + col) = v;
}

// Staged rows [0, NR) of the buffer are output pixels rows(row) (< 0: none), channels n0 .. n0 +
// BN - 1; all NTH threads of the block (after a barrier that follows the staging) store them to y.
// E::apply reads res[o] only, so with a residual it gets the 8 loaded halves and o = 0..7.
template <int BN, int NR, int NTH, int NN, class E, class ROWS>
__device__ __forceinline__ void conv_nhwc_epi_rows_at(const float *cs, ROWS rows, int n0, const typename E::bias_t *bias,
                                                      const typename E::res_t *res, __half *y, int tid) {
    constexpr int CPR = BN / 8, LD = KILN_NHWC_EPI_LD(BN);
#pragma unroll 4
    for (int i = tid; i < NR * CPR; i += NTH) {
        const int r = i / CPR, c = i % CPR;
        const int m = rows(r), n = n0 + 8 * c;
        if (m < 0 || n >= NN) continue; // NN % 8 == 0: a chunk is all in or all out
        // chunks i and i + 4 are 256 bytes apart (same banks; rows are LD = 8 mod 32 floats
        // apart): odd groups of four read their upper half first, so 8 consecutive threads
        // read 8 distinct bank quads
        const bool sw = (i >> 2) & 1;
        const float *src = cs + r * LD + 8 * c;
        const conv_nhwc_v4f p0 = *reinterpret_cast<const conv_nhwc_v4f *>(src + (sw ? 4 : 0));
        const conv_nhwc_v4f p1 = *reinterpret_cast<const conv_nhwc_v4f *>(src + (sw ? 0 : 4));
        float v[8];
#pragma unroll
        for (int q = 0; q < 4; q++) v[q] = sw ? p1.f[q] : p0.f[q], v[4 + q] = sw ? p0.f[q] : p1.f[q];
        const i64 o = (i64)m * NN + n;
        conv_nhwc_v8h out;
        if constexpr (conv_nhwc_is_half<typename E::res_t>::value) {
            const conv_nhwc_v8h rv = *reinterpret_cast<const conv_nhwc_v8h *>(res + o);
#pragma unroll
            for (int q = 0; q < 8; q++) out.h[q] = __float2half_rn(E::apply(bias, rv.h, n + q, q, v[q]));
        } else {
#pragma unroll
            for (int q = 0; q < 8; q++) out.h[q] = __float2half_rn(E::apply(bias, res, n + q, o + q, v[q]));
        }
        *reinterpret_cast<conv_nhwc_v8h *>(y + o) = out;
    }
}
// ... rows m_first + row, those below M
template <int M> struct conv_nhwc_rows_from {
    int m_first;
    __device__ __forceinline__ int operator()(int r) const { return m_first + r < M ? m_first + r : -1; }
};
template <int BN, int NR, int NTH, int M, int NN, class E>
__device__ __forceinline__ void conv_nhwc_epi_rows(const float *cs, int m_first, int n0, const typename E::bias_t *bias,
                                                   const typename E::res_t *res, __half *y, int tid) {
    conv_nhwc_epi_rows_at<BN, NR, NTH, NN, E>(cs, conv_nhwc_rows_from<M>{m_first}, n0, bias, res, y, tid);
}

// The stem's A chunk (SHP::C == 4, x [pixels][4]): depth kk = (r * SE + s) * 4 + c with s even,
// so the chunk at kk is taps (r, s) and (r, s + 1), 4 channels each: two 8-byte copies, each
// with its own border predicate (the second also off for the padded tap s + 1 == S). as: this
// thread's chunk in row 0 of its A rows, DST: the shared stride between its A rows.
template <class SHP, int A_CH, int DST, int SE>
__device__ __forceinline__ void nhwc_load_a_pair(unsigned short *as, const __half *x, const i64 *a_base, const int *a_h,
                                                 const int *a_w, int kk, bool kin) {
    const int r = kk / (SE * 4), s = (kk / 4) % SE;
    const bool s1 = s + 1 < SHP::S;
#pragma unroll
    for (int j = 0; j < A_CH; j++) {
        const int ih = a_h[j] + r * SHP::DH, iw = a_w[j] + s * SHP::DW, iw1 = iw + SHP::DW;
        const bool hok = kin && (unsigned)ih < (unsigned)SHP::H;
        const bool ok0 = hok && (unsigned)iw < (unsigned)SHP::W, ok1 = hok && s1 && (unsigned)iw1 < (unsigned)SHP::W;
        const i64 row = a_base[j] + (i64)ih * SHP::W * 4; // (only offset into x where a copy is valid)
        cp_async8(as + j * DST, ok0 ? x + row + iw * 4 : x, ok0);
        cp_async8(as + j * DST + 4, ok1 ? x + row + iw1 * 4 : x, ok1);
    }
}

// The second operand source of a conv pair (cg_conv_nhwc.c, "conv_pair" groups: Add(conv(x), conv2(x2))
// as one GEMM): SHP2 is a second convolution with the same output pixels and channels; its depth
// KD2 = R2 * S2 * C2 follows the first's KD1 (a multiple of BK) in the GEMM, the weights are
// [K][KD1 + KD2] and its pixels come from x2. conv_no_src2: no second source.
struct conv_no_src2 {
    static constexpr int H = 1, W = 1, C = 0, R = 0, S = 0, SH = 1, SW = 1, PH = 0, PW = 0, DH = 1, DW = 1;
};

// One thread's A rows of one source (im2col): per row, the pixel's image offset and its top-left
// input tap; rows past M get a tap far outside the image, so every copy of them zero-fills.
// OUT gives the output grid (N, P, Q), SRC the source's H, W, C, strides, pads and dilations.
template <class OUT, class SRC, int A_CH> struct nhwc_rows {
    i64 base[A_CH];
    int h[A_CH], w[A_CH];
    __device__ __forceinline__ nhwc_rows(int m_first, int step) {
        constexpr int M = OUT::N * OUT::P * OUT::Q;
#pragma unroll
        for (int j = 0; j < A_CH; j++) {
            const int m = m_first + j * step;
            const int b = m / (OUT::P * OUT::Q), pq = m % (OUT::P * OUT::Q);
            base[j] = (i64)b * SRC::H * SRC::W * SRC::C;
            h[j] = m < M ? (pq / OUT::Q) * SRC::SH - SRC::PH : -(1 << 28);
            w[j] = (pq % OUT::Q) * SRC::SW - SRC::PW;
        }
    }
    // cp.async of depth chunk kk (8 channels at tap (r, s), channel c) of every row: row j to
    // dst + j * step bytes; kin == false zero-fills
    __device__ __forceinline__ void copy(unsigned char *dst, int step, const __half *x, int kk, bool kin) const {
        const int r = kk / (SRC::S * SRC::C), s = (kk / SRC::C) % SRC::S, c = kk % SRC::C;
#pragma unroll
        for (int j = 0; j < A_CH; j++) {
            const int ih = h[j] + r * SRC::DH, iw = w[j] + s * SRC::DW;
            const bool ok = kin && (unsigned)ih < (unsigned)SRC::H && (unsigned)iw < (unsigned)SRC::W;
            cp_async16(dst + j * step, ok ? x + base[j] + ((i64)ih * SRC::W + iw) * SRC::C + c : x, ok);
        }
    }
};

template <class SHP, int BM, int BN, int BK, int WM, int WN, int STAGES, int SPLITK, class E, class SHP2 = conv_no_src2>
__device__ __forceinline__ void conv_nhwc_f16(const __half *__restrict__ x, const __half *__restrict__ w,
                                              const typename E::bias_t *bias, const typename E::res_t *res,
                                              __half *y, float *part, unsigned char *smem,
                                              const __half *__restrict__ x2 = nullptr, int tile_m = -1, int tile_n = -1) {
    // tile_m, tile_n >= 0: this block tile instead of (blockIdx.x, blockIdx.y) (a persistent
    // caller's loop over tiles)
    // C == 4 (the stem, x padded to 4 channels): one 16-byte chunk is two taps (s, s + 1) of 4
    // channels, S padded to even (SE) with zero weights; see nhwc_load_a_pair
    constexpr bool PAIR = SHP::C == 4;
    constexpr int SE = PAIR ? (SHP::S + 1) / 2 * 2 : SHP::S;
    constexpr int KD1 = SHP::R * SE * SHP::C, KD2 = SHP2::R * SHP2::S * SHP2::C;
    constexpr int M = SHP::N * SHP::P * SHP::Q, NN = SHP::K, KD = KD1 + KD2;
    static_assert(KD2 == 0 || (KD1 % BK == 0 && SHP2::C % 8 == 0 && !PAIR), "conv pair: whole K tiles per source");
    constexpr int KT = (KD + BK - 1) / BK, KT_SPLIT = (KT + SPLITK - 1) / SPLITK;
    constexpr int WARPS_N = BN / WN, NTH = (BM / WM) * WARPS_N * 32;
    constexpr int MT = WM / 16, NT = WN / 8;
    constexpr int LD = BK + 8;  // shared row stride in halves (see the header)
    constexpr int CPR = BK / 8; // 16-byte chunks per tile row
    constexpr int ROWS = NTH / CPR, A_CH = BM / ROWS, B_CH = BN / ROWS;
    static_assert((SHP::C % 8 == 0 || PAIR) && SHP::K % 8 == 0, "channels must be multiples of 8 (or C == 4)");
    static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 16 == 0, "warp tiles");
    static_assert(BK % 16 == 0 && NTH % CPR == 0 && BM % ROWS == 0 && BN % ROWS == 0, "tile loads");
    static_assert(STAGES >= 2, "at least two stages");
    unsigned short *As = reinterpret_cast<unsigned short *>(smem); // [STAGES][BM][LD]
    unsigned short *Bs = As + STAGES * BM * LD;                    // [STAGES][BN][LD]

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm0 = (warp / WARPS_N) * WM, wn0 = (warp % WARPS_N) * WN;
    const int m0 = (tile_m >= 0 ? tile_m : (int)blockIdx.x) * BM, n0 = (tile_n >= 0 ? tile_n : (int)blockIdx.y) * BN;
    const int cc = tid % CPR, row0 = tid / CPR;

    // this thread's A rows of each source
    const nhwc_rows<SHP, SHP, A_CH> ra(m0 + row0, ROWS);
    const nhwc_rows<SHP, SHP2, KD2 ? A_CH : 1> rb(m0 + row0, ROWS);

    // issue the cp.async copies of K tile kt into stage slot
    auto load = [&](int slot, int kt) {
        const int kk = kt * BK + cc * 8;
        const bool kin = kk < KD;
        unsigned short *as = As + slot * BM * LD + row0 * LD + cc * 8;
        unsigned short *bs = Bs + slot * BN * LD + row0 * LD + cc * 8;
        unsigned char *ab = reinterpret_cast<unsigned char *>(as);
        (void)ab;
        if constexpr (PAIR) {
            nhwc_load_a_pair<SHP, A_CH, ROWS * LD, SE>(as, x, ra.base, ra.h, ra.w, kk, kin);
        } else if constexpr (KD2 > 0) { // (KD1 % BK == 0: a K tile is all of one source)
            if (kt * BK >= KD1) rb.copy(ab, ROWS * LD * 2, x2, kk - KD1, kin);
            else ra.copy(ab, ROWS * LD * 2, x, kk, kin);
        } else {
            ra.copy(ab, ROWS * LD * 2, x, kk, kin);
        }
#pragma unroll
        for (int j = 0; j < B_CH; j++) {
            const int n = n0 + row0 + j * ROWS;
            const bool ok = kin && n < NN;
            cp_async16(bs + j * ROWS * LD, ok ? w + (i64)n * KD + kk : w, ok);
        }
    };

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;

    const int kt0 = (int)blockIdx.z * KT_SPLIT;
    const int nk = KT - kt0 < KT_SPLIT ? KT - kt0 : KT_SPLIT; // <= 0: an empty last split
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < nk) load(s, kt0 + s);
        cp_async_commit(); // always: the group count stays in step with the tiles
    }
    // lane's ldmatrix row/column inside a 16x16 A tile and a 16(n)x16(k) B pair
    const int la_r = lane & 15, la_c = (lane >> 4) * 8;
    const int lb_r = (lane & 7) + ((lane >> 4) << 3), lb_c = ((lane >> 3) & 1) * 8;
    for (int i = 0; i < nk; i++) {
        cp_async_wait<STAGES - 2>(); // tile i landed (this thread's copies) ...
        __syncthreads();             // ... everyone's, and stage (i - 1) % STAGES is free
        const int pf = i + STAGES - 1;
        if (pf < nk) load(pf % STAGES, kt0 + pf);
        cp_async_commit();
        const unsigned short *as = As + (i % STAGES) * BM * LD, *bs = Bs + (i % STAGES) * BN * LD;
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            u32 af[MT][4], bf[NT][2];
#pragma unroll
            for (int mi = 0; mi < MT; mi++) ldmatrix<4, false>(af[mi], as + (wm0 + mi * 16 + la_r) * LD + ks + la_c);
#pragma unroll
            for (int nj = 0; nj < NT; nj += 2) {
                u32 r4[4];
                ldmatrix<4, false>(r4, bs + (wn0 + nj * 8 + lb_r) * LD + ks + lb_c);
                bf[nj][0] = r4[0], bf[nj][1] = r4[1], bf[nj + 1][0] = r4[2], bf[nj + 1][1] = r4[3];
            }
            warp_mma<mma_f16, MT, NT>(acc, af, bf);
        }
    }
    cp_async_wait<0>();

    const int g = lane >> 2, t = lane & 3;
    if constexpr (SPLITK == 1 && BM * KILN_NHWC_EPI_LD(BN) * 4 <= KILN_NHWC_SMEM_BYTES(BM, BN, BK, STAGES)) {
        __syncthreads(); // every warp is done with the pipeline's shared memory
        float *cs = reinterpret_cast<float *>(smem);
#pragma unroll
        for (int i = 0; i < MT; i++)
#pragma unroll
            for (int j = 0; j < NT; j++)
#pragma unroll
                for (int h = 0; h < 2; h++)
                    conv_nhwc_epi_put<BN>(cs, wm0 + i * 16 + g + 8 * h, wn0 + j * 8 + 2 * t, acc[i][j][2 * h],
                                          acc[i][j][2 * h + 1]);
        __syncthreads();
        conv_nhwc_epi_rows<BN, BM, NTH, M, NN, E>(cs, m0, n0, bias, res, y, tid);
    } else {
#pragma unroll
        for (int i = 0; i < MT; i++)
#pragma unroll
            for (int j = 0; j < NT; j++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int m = m0 + wm0 + i * 16 + g + 8 * h, n = n0 + wn0 + j * 8 + 2 * t;
                    if (m >= M || n >= NN) continue; // n even, NN % 8 == 0: n + 1 < NN too
                    const i64 o = (i64)m * NN + n;
                    if constexpr (SPLITK == 1) {
                        st_half2(y + o, E::apply(bias, res, n, o, acc[i][j][2 * h]),
                                 E::apply(bias, res, n + 1, o + 1, acc[i][j][2 * h + 1]));
                    } else {
                        float *p = part + (i64)blockIdx.z * M * NN + o;
                        p[0] = acc[i][j][2 * h];
                        p[1] = acc[i][j][2 * h + 1];
                    }
                }
    }
}

// Split-K second pass: y = epilogue(sum over z of part[z]), summed in split order. One thread
// per 8 adjacent channels (NN % 8 == 0): 16-byte loads of the partials and of the residual,
// 16-byte stores of y; grid-stride.
template <int M, int NN, int SPLITK, class E>
__device__ __forceinline__ void conv_nhwc_splitk_reduce(const float *__restrict__ part, const typename E::bias_t *bias,
                                                        const typename E::res_t *res, __half *y) {
    constexpr i64 CHUNKS = (i64)M * NN / 8, PLANE = (i64)M * NN;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < CHUNKS; i += (i64)gridDim.x * blockDim.x) {
        const i64 o = 8 * i;
        const int n = (int)(o % NN);
        float v[8];
#pragma unroll
        for (int q = 0; q < 8; q++) v[q] = 0.0f;
#pragma unroll
        for (int z = 0; z < SPLITK; z++) {
            const conv_nhwc_v4f a = *reinterpret_cast<const conv_nhwc_v4f *>(part + z * PLANE + o);
            const conv_nhwc_v4f b = *reinterpret_cast<const conv_nhwc_v4f *>(part + z * PLANE + o + 4);
#pragma unroll
            for (int q = 0; q < 4; q++) v[q] += a.f[q], v[4 + q] += b.f[q];
        }
        conv_nhwc_v8h out;
        if constexpr (conv_nhwc_is_half<typename E::res_t>::value) {
            const conv_nhwc_v8h rv = *reinterpret_cast<const conv_nhwc_v8h *>(res + o);
#pragma unroll
            for (int q = 0; q < 8; q++) out.h[q] = __float2half_rn(E::apply(bias, rv.h, n + q, q, v[q]));
        } else {
#pragma unroll
            for (int q = 0; q < 8; q++) out.h[q] = __float2half_rn(E::apply(bias, res, n + q, o + q, v[q]));
        }
        *reinterpret_cast<conv_nhwc_v8h *>(y + o) = out;
    }
}

} // namespace kiln

// ---- stem input padding (codegen/cg_conv_nhwc.c emit_pad_c8) ----
// conv_nhwc_pad_c8<C>: x NHWC [pixels][C] with C < 8 -> xp [pixels][8], channels C..7 zero, so
// that conv_nhwc_f16 runs with C = 8 on it (its weights padded alike at build time). One thread
// per pixel, one 16-byte store; xp is 16-byte aligned (node scratch).
namespace kiln {
struct alignas(16) conv_nhwc_h8 {
    __half h[8];
};
// conv_nhwc_pad_c4<C>: the same to [pixels][4] (C < 4) for the two-tap stem kernel. Groups of 8
// pixels: C 16-byte loads and four 16-byte stores per thread (x 16-byte aligned; else and for
// the last pixels % 8, one thread and one 8-byte store per pixel).
struct alignas(8) conv_nhwc_h4 {
    __half h[4];
};
template <int C> __device__ __forceinline__ void conv_nhwc_pad_c4(const __half *x, __half *xp, i64 pixels) {
    static_assert(C > 0 && C < 4, "pads fewer than 4 channels");
    const __half zero = from_f32<__half>(0.0f);
    const i64 groups = ((unsigned long long)x & 15) ? 0 : pixels / 8;
    for (i64 g = global_thread_index(); g < groups; g += grid_thread_count()) {
        conv_nhwc_h8 in[C], out[4];
#pragma unroll
        for (int i = 0; i < C; i++) in[i] = reinterpret_cast<const conv_nhwc_h8 *>(x + g * 8 * C)[i];
#pragma unroll
        for (int q = 0; q < 8; q++)
#pragma unroll
            for (int i = 0; i < 4; i++) out[q / 2].h[(q % 2) * 4 + i] = i < C ? in[(q * C + i) / 8].h[(q * C + i) % 8] : zero;
#pragma unroll
        for (int k = 0; k < 4; k++) reinterpret_cast<conv_nhwc_h8 *>(xp + g * 32)[k] = out[k];
    }
    for (i64 p = groups * 8 + global_thread_index(); p < pixels; p += grid_thread_count()) {
        conv_nhwc_h4 v;
#pragma unroll
        for (int i = 0; i < 4; i++) v.h[i] = i < C ? x[p * C + i] : zero;
        reinterpret_cast<conv_nhwc_h4 *>(xp)[p] = v;
    }
}
// conv_nhwc_s2d<C0, H, W, PH, PW, H2, W2>: a stride-2 stem as a stride-1 convolution ("s2d:"
// candidates of cg_conv_nhwc.c): x NHWC [N][H][W][C0] (C0 <= 4) to the space-to-depth tensor
// xs [N][H2][W2][16], xs[n][i][j][(2a + b) * 4 + c] = x[n][2i + a - PH][2j + b - PW][c], zero
// outside x and for c >= C0 (the conv's padding is in xs). With the weights rearranged the same
// way, w'[k][i][j][(2a + b) * 4 + c] = w[k][c][2i + a][2j + b], a 7x7 stride-2 conv is a 4x4
// stride-1 conv over 16 channels: whole 16-byte chunks, so the wgmma kernel takes it. A thread
// per xs pixel: two 16-byte stores.
template <int C0, int H, int W, int PH, int PW, int H2, int W2>
__device__ __forceinline__ void conv_nhwc_s2d(const __half *x, __half *xs, i64 pixels) {
    static_assert(C0 > 0 && C0 <= 4, "space-to-depth of at most 4 channels");
    const __half zero = from_f32<__half>(0.0f);
    for (i64 t = global_thread_index(); t < pixels; t += grid_thread_count()) {
        const int j = (int)(t % W2), i = (int)((t / W2) % H2);
        const i64 n = t / ((i64)W2 * H2);
        conv_nhwc_h8 out[2];
#pragma unroll
        for (int a = 0; a < 2; a++)
#pragma unroll
            for (int b = 0; b < 2; b++) {
                const int ih = 2 * i + a - PH, iw = 2 * j + b - PW;
                const bool ok = (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W;
                const __half *px = x + ((n * H + (ok ? ih : 0)) * W + (ok ? iw : 0)) * C0;
#pragma unroll
                for (int c = 0; c < 4; c++) out[a].h[b * 4 + c] = ok && c < C0 ? px[c < C0 ? c : 0] : zero;
            }
        reinterpret_cast<conv_nhwc_h8 *>(xs + t * 16)[0] = out[0];
        reinterpret_cast<conv_nhwc_h8 *>(xs + t * 16)[1] = out[1];
    }
}
template <int C> __device__ __forceinline__ void conv_nhwc_pad_c8(const __half *x, __half *xp, i64 pixels) {
    static_assert(C > 0 && C < 8, "pads fewer than 8 channels");
    const __half zero = from_f32<__half>(0.0f);
    for (i64 p = global_thread_index(); p < pixels; p += grid_thread_count()) {
        conv_nhwc_h8 v;
#pragma unroll
        for (int i = 0; i < 8; i++) v.h[i] = i < C ? x[p * C + i] : zero;
        reinterpret_cast<conv_nhwc_h8 *>(xp)[p] = v;
    }
}
} // namespace kiln
