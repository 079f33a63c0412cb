// mma.cuh — a tensor-core GEMM main loop (mma.sync, fp32 accumulation) with the problem
// interface of tiled_gemm (gemm.cuh): P::load_a / P::load_b return fp32 operands and P::store
// receives the fp32 accumulator, so convolution (implicit GEMM), Gemm/MatMul and the fused
// epilogues run on it unchanged.
//
//     mma_gemm<BM, BN, BK, WM, WN, PREC, P>(args, M, N, K)
//
// PREC mma_tf32: m16n8k8 with tf32 operands (rounded from fp32 with cvt.rna.tf32.f32: to
// nearest, ties away from zero); mma_f16: m16n8k16 with fp16 operands (rounded to nearest
// even). Launch: block = (BM / WM) * (BN / WN) warps (1-D), grid = (ceil(N / BN), ceil(M / BM),
// Z). Each warp computes a WM x WN tile as (WM / 16) x (WN / 8) mma tiles; BK is the K depth of
// one shared-memory stage (a multiple of the mma K: 8 for tf32, 16 for fp16).
//
// Data flow per K stage: every thread loads its share of the A (BM x BK) and B (BK x BN) tiles
// from global memory into registers (consecutive threads read consecutive k of A, which is
// contiguous for weights [M][K], and consecutive n of B, which is contiguous for a
// convolution's output pixels), converts them to the mma input type and writes them to one of
// two shared-memory stages; the loads of stage s+1 are issued before the mma work on stage s
// (double buffering, one barrier per stage). Shared layouts: As[m][k] with a row pad and
// Bs[k][n] with a row pad, chosen so that the fragment loads below hit 32 distinct banks
// (tf32: bank = 4 * row + col of As, 8 * k + n of Bs).
//
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k8 / m16n8k16"), lane = 4 * g + t:
//   tf32 A (16 x 8):  a0 (g, t)    a1 (g + 8, t)    a2 (g, t + 4)    a3 (g + 8, t + 4)
//   tf32 B (8 x 8):   b0 (k t, n g)                 b1 (k t + 4, n g)
//   f16 A (16 x 16):  a0 (g, 2t..2t+1)  a1 (g + 8, 2t..)  a2 (g, 2t + 8..)  a3 (g + 8, 2t + 8..)
//   f16 B (16 x 8):   b0 (k 2t..2t+1, n g)          b1 (k 2t + 8..2t + 9, n g)
//   C/D (16 x 8):     c0 (g, 2t)  c1 (g, 2t + 1)  c2 (g + 8, 2t)  c3 (g + 8, 2t + 1)
// (an f16 register holds two halves, the lower k in the low 16 bits).
//
// Under the CPU emulator (tests/codegen/emu/, KILN_EMU defined) the PTX is replaced by calls
// into the emulator, which exchanges the fragments of the warp's 32 lanes and computes D from
// exactly these layouts, so that a layout bug fails the emulated tests.
#pragma once

#include "kiln_common.cuh"

namespace kiln {

enum mma_precision { mma_tf32 = 0, mma_f16 = 1 };

#ifdef KILN_EMU
extern "C" void emu_warp_mma(int prec, int mt, int nt, float *acc, const u32 *a, const u32 *b);
extern "C" u32 emu_tf32_rna(float x);
#endif

template <int PREC> struct mma_traits;

template <> struct mma_traits<mma_tf32> {
    typedef u32 smem_t; // tf32 bit pattern in a 32-bit word
    static constexpr int KS = 8;
    static constexpr int A_PAD = 4; // As row = BK + 4 words: rows 4 banks apart
    static __device__ __forceinline__ u32 cvt(float x) {
#ifdef KILN_EMU
        return emu_tf32_rna(x);
#else
        u32 r;
        asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
        return r;
#endif
    }
};

template <> struct mma_traits<mma_f16> {
    typedef unsigned short smem_t; // fp16 bit pattern
    static constexpr int KS = 16;
    static constexpr int A_PAD = 8; // As row = BK + 8 halves: (BK + 8) / 2 words
    static __device__ __forceinline__ unsigned short cvt(float x) { return __half_as_ushort(__float2half_rn(x)); }
};

// Two consecutive halves as one 32-bit register (the first in the low bits).
__device__ __forceinline__ u32 ld_pair(const unsigned short *p) {
#ifdef KILN_EMU
    return (u32)p[0] | ((u32)p[1] << 16);
#else
    return *reinterpret_cast<const u32 *>(p);
#endif
}
__device__ __forceinline__ u32 pack_pair(unsigned short lo, unsigned short hi) { return (u32)lo | ((u32)hi << 16); }

// acc[i][j] += A fragment i * B fragment j for the warp: MT x NT mma instructions.
template <int PREC, int MT, int NT>
__device__ __forceinline__ void warp_mma(float (&acc)[MT][NT][4], const u32 (&a)[MT][4], const u32 (&b)[NT][2]) {
#ifdef KILN_EMU
    emu_warp_mma(PREC, MT, NT, &acc[0][0][0], &a[0][0], &b[0][0]);
#else
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++) {
            float *c = acc[i][j];
            if constexpr (PREC == mma_tf32)
                asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                             "{%8, %9}, {%0, %1, %2, %3};"
                             : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                             : "r"(a[i][0]), "r"(a[i][1]), "r"(a[i][2]), "r"(a[i][3]), "r"(b[j][0]), "r"(b[j][1]));
            else
                asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                             "{%8, %9}, {%0, %1, %2, %3};"
                             : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                             : "r"(a[i][0]), "r"(a[i][1]), "r"(a[i][2]), "r"(a[i][3]), "r"(b[j][0]), "r"(b[j][1]));
        }
#endif
}

template <int BM, int BN, int BK, int WM, int WN, int PREC, class P>
__device__ __forceinline__ void mma_gemm(const typename P::args &a, i64 M, i64 N, i64 K) {
    typedef mma_traits<PREC> T;
    typedef typename T::smem_t S;
    constexpr int KS = T::KS, WARPS_N = BN / WN, NTH = (BM / WM) * WARPS_N * 32;
    constexpr int MT = WM / 16, NT = WN / 8;
    constexpr int AS = BK + T::A_PAD, BS = BN + 8; // shared row strides in elements
    constexpr int A_PER = BM * BK / NTH, B_PER = BK * BN / NTH;
    static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 8 == 0, "warp tiles must divide the block tile");
    static_assert(BK % KS == 0, "BK must be a multiple of the mma K");
    static_assert((BM * BK) % NTH == 0 && (BK * BN) % NTH == 0, "tiles must split evenly over the threads");
    alignas(16) __shared__ S As[2][BM][AS]; // fp16 fragments are read as 32-bit pairs
    alignas(16) __shared__ S Bs[2][BK][BS];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm0 = (warp / WARPS_N) * WM, wn0 = (warp % WARPS_N) * WN;
    const int z = blockIdx.z;
    const i64 m0 = (i64)blockIdx.y * BM, n0 = (i64)blockIdx.x * BN;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[i][j][r] = 0.0f;

    // Thread tid loads A elements (a_m + j * A_STEP, a_k) and B elements (b_k + j * B_STEP, b_n)
    // of each stage: its k column of A and its n column of B stay the same for the whole kernel,
    // so the problem's index math on them (a convolution's pixel -> (batch, row, col)) is done
    // once, not per element.
    static_assert(NTH % BK == 0 && NTH % BN == 0, "a thread keeps one column of each tile");
    constexpr int A_STEP = NTH / BK, B_STEP = NTH / BN;
    const int a_k = tid % BK, a_m = tid / BK, b_n = tid % BN, b_k = tid / BN;
    const i64 n_col = n0 + b_n;
    float ra[A_PER], rb[B_PER];
    // global -> registers for the stage at k0 (0 outside the matrices)
    auto load = [&](i64 k0) {
        const i64 ka = k0 + a_k;
#pragma unroll
        for (int j = 0; j < A_PER; j++) {
            const i64 m = m0 + a_m + j * A_STEP;
            ra[j] = (m < M && ka < K) ? P::load_a(a, z, m, ka) : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < B_PER; j++) {
            const i64 k = k0 + b_k + j * B_STEP;
            rb[j] = (k < K && n_col < N) ? P::load_b(a, z, k, n_col) : 0.0f;
        }
    };
    // registers -> shared stage s, converted to the mma input type
    auto stash = [&](int s) {
#pragma unroll
        for (int j = 0; j < A_PER; j++) As[s][a_m + j * A_STEP][a_k] = T::cvt(ra[j]);
#pragma unroll
        for (int j = 0; j < B_PER; j++) Bs[s][b_k + j * B_STEP][b_n] = T::cvt(rb[j]);
    };

    load(0);
    stash(0);
    __syncthreads();
    int s = 0;
    for (i64 k0 = 0; k0 < K; k0 += BK) {
        const bool more = k0 + BK < K;
        if (more) load(k0 + BK); // in flight during the mma work below
#pragma unroll
        for (int ks = 0; ks < BK; ks += KS) {
            u32 af[MT][4], bf[NT][2];
#pragma unroll
            for (int i = 0; i < MT; i++) {
                const int r = wm0 + i * 16 + g;
                if constexpr (PREC == mma_tf32) {
                    af[i][0] = As[s][r][ks + t];
                    af[i][1] = As[s][r + 8][ks + t];
                    af[i][2] = As[s][r][ks + t + 4];
                    af[i][3] = As[s][r + 8][ks + t + 4];
                } else {
                    const unsigned short *a0 = (const unsigned short *)&As[s][r][ks + 2 * t];
                    const unsigned short *a8 = (const unsigned short *)&As[s][r + 8][ks + 2 * t];
                    af[i][0] = ld_pair(a0);
                    af[i][1] = ld_pair(a8);
                    af[i][2] = ld_pair(a0 + 8);
                    af[i][3] = ld_pair(a8 + 8);
                }
            }
#pragma unroll
            for (int j = 0; j < NT; j++) {
                const int n = wn0 + j * 8 + g;
                if constexpr (PREC == mma_tf32) {
                    bf[j][0] = Bs[s][ks + t][n];
                    bf[j][1] = Bs[s][ks + t + 4][n];
                } else {
                    const int k = ks + 2 * t;
                    bf[j][0] = pack_pair(Bs[s][k][n], Bs[s][k + 1][n]);
                    bf[j][1] = pack_pair(Bs[s][k + 8][n], Bs[s][k + 9][n]);
                }
            }
            warp_mma<PREC, MT, NT>(acc, af, bf);
        }
        if (more) stash(s ^ 1); // the other stage: everyone finished reading it before the last barrier
        __syncthreads();
        s ^= 1;
    }

#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const i64 m = m0 + wm0 + i * 16 + g + (r >= 2 ? 8 : 0);
                const i64 n = n0 + wn0 + j * 8 + 2 * t + (r & 1);
                if (m < M && n < N) P::store(a, z, m, n, acc[i][j][r]);
            }
}

} // namespace kiln
