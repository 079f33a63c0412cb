// gemv.cuh — small-M Gemm/MatMul ("rows_w<W>"): a classifier layer (A = [M][K] activations,
// M <= 64, B = N weight rows of K contiguous elements) is bound by reading B once, which the
// tile GEMMs (gemm.cuh, mma.cuh) do poorly: few blocks, each walking all of K.
//
// Each warp owns one output column n (one weight row), reads it with 16-byte vector loads
// while the K range is contiguous and aligned (scalar loads otherwise), and dot-products it
// with MB rows of A (read through L1: every warp of a block reads the same A rows), then
// reduces across the warp with shuffles and stores through gemm_problem::store (the fused
// epilogue). Accumulation is fp32 at every precision.
//
// Launch: block = W * 32 threads, grid = (ceil(N / W), ceil(M / MB), Z). No early return:
// every lane reaches the shuffles (the CPU emulator treats them as block barriers).
#pragma once

#include "gemm.cuh"
#include "mma.cuh"

namespace kiln {

// V elements of T in one 16-byte aligned load (a struct of T: no aliasing through other types)
template <typename T, int V> struct alignas(sizeof(T) * V) gemv_vec {
    T v[V];
};

template <int W, int MB, class Epi, typename TA, typename TB, typename TY>
__device__ __forceinline__ void gemv_rows(const typename gemm_problem<Epi, TA, TB, TY>::args &p) {
    typedef gemm_problem<Epi, TA, TB, TY> P;
    constexpr int VB = 16 / (int)sizeof(TB); // weight elements per 16-byte load: 8 halves, 4 floats
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int z = blockIdx.z;
    const i64 M = p.s.M, N = p.s.N, K = p.s.K;
    const i64 n_raw = (i64)blockIdx.x * W + warp;
    const bool n_ok = n_raw < N;
    const i64 n = n_ok ? n_raw : N - 1; // out-of-range warps compute a copy and store nothing
    const i64 m0 = (i64)blockIdx.y * MB;
    const TB *brow = p.b + P::b_base(p, z) + n * p.s.sbn;
    const TA *arow[MB];
#pragma unroll
    for (int i = 0; i < MB; i++) {
        const i64 m = m0 + i < M ? m0 + i : M - 1; // rows past M: a copy of the last, not stored
        arow[i] = p.a + P::a_base(p, z) + m * p.s.sam;
    }
    float acc[MB];
#pragma unroll
    for (int i = 0; i < MB; i++) acc[i] = 0.0f;

    // vector path: both operands contiguous in k, K a multiple of VB and every row 16-byte
    // aligned for B and VB-element aligned for A (uniform over the block)
    bool vec = p.s.sbk == 1 && p.s.sak == 1 && K % VB == 0 && ((unsigned long long)brow % 16) == 0;
#pragma unroll
    for (int i = 0; i < MB; i++) vec = vec && ((unsigned long long)arow[i] % (sizeof(TA) * VB)) == 0;
    i64 k_done = 0;
    if (vec) {
        const gemv_vec<TB, VB> *bv = reinterpret_cast<const gemv_vec<TB, VB> *>(brow);
        const i64 nv = K / VB;
#pragma unroll 4
        for (i64 j = lane; j < nv; j += 32) {
            const gemv_vec<TB, VB> wv = bv[j];
            float wf[VB];
#pragma unroll
            for (int e = 0; e < VB; e++) wf[e] = to_f32(wv.v[e]);
#pragma unroll
            for (int i = 0; i < MB; i++) {
                const gemv_vec<TA, VB> av = reinterpret_cast<const gemv_vec<TA, VB> *>(arow[i])[j];
#pragma unroll
                for (int e = 0; e < VB; e++) acc[i] = fmaf(to_f32(av.v[e]), wf[e], acc[i]);
            }
        }
        k_done = K;
    }
    // scalar path (strided or unaligned operands): consecutive lanes read consecutive k
    for (i64 k = k_done + lane; k < K; k += 32) {
        const float wk = to_f32(brow[k * p.s.sbk]);
#pragma unroll
        for (int i = 0; i < MB; i++) acc[i] = fmaf(to_f32(arow[i][k * p.s.sak]), wk, acc[i]);
    }
#pragma unroll
    for (int i = 0; i < MB; i++)
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], off);
    // lane i stores row m0 + i (spreads the epilogue's work over the warp)
#pragma unroll
    for (int i = 0; i < MB; i++)
        if (lane == (i & 31) && n_ok && m0 + i < M) P::store(p, z, m0 + i, n, acc[i]);
}

// "mma_rows_w<W>": the same small-M GEMM on tensor cores (fp16 A and B, k contiguous in both, K
// % 16 == 0, rows 4-byte aligned). Converting every fp16 operand to fp32 is what bounds
// gemv_rows at fp16 (ResNet-50's classifier at batch 32: 65M conversions); mma.sync.m16n8k16
// takes fp16 as it is. A block owns 8 output columns (one n8 tile) and all M <= 16 * MT rows;
// its W warps split K (warp w takes k16 steps w, w + W, ...), loading their fragments straight
// from global memory (A rows through L1: every block reads the same A), then sum their
// accumulators in shared memory in warp order (deterministic) and warp 0 applies the epilogue.
// Launch: block = W * 32 threads, grid = (ceil(N / 8), 1, Z).
template <int W, int MT, class Epi, typename TY>
__device__ __forceinline__ void gemv_mma_rows(const typename gemm_problem<Epi, __half, __half, TY>::args &p) {
    typedef gemm_problem<Epi, __half, __half, TY> P;
    __shared__ float red[W][MT * 4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int z = blockIdx.z;
    const i64 M = p.s.M, N = p.s.N, K = p.s.K;
    const i64 n0 = (i64)blockIdx.x * 8, nl = n0 + g < N ? n0 + g : N - 1; // columns past N: loads only
    const unsigned short *a = reinterpret_cast<const unsigned short *>(p.a + P::a_base(p, z));
    const unsigned short *brow = reinterpret_cast<const unsigned short *>(p.b + P::b_base(p, z) + nl * p.s.sbn) + 2 * t;
    const unsigned short *arow[MT][2];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const i64 m = i * 16 + g + 8 * h;
            arow[i][h] = a + (m < M ? m : M - 1) * p.s.sam + 2 * t; // rows past M: loads only
        }
    float acc[MT][1][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int q = 0; q < 4; q++) acc[i][0][q] = 0.0f;
#pragma unroll 4
    for (i64 k = (i64)warp * 16; k < K; k += W * 16) {
        u32 af[MT][4], bf[1][2];
#pragma unroll
        for (int i = 0; i < MT; i++) {
            af[i][0] = ld_pair(arow[i][0] + k);
            af[i][1] = ld_pair(arow[i][1] + k);
            af[i][2] = ld_pair(arow[i][0] + k + 8);
            af[i][3] = ld_pair(arow[i][1] + k + 8);
        }
        bf[0][0] = ld_pair(brow + k);
        bf[0][1] = ld_pair(brow + k + 8);
        warp_mma<mma_f16, MT, 1>(acc, af, bf);
    }
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int q = 0; q < 4; q++) red[warp][i * 4 + q][lane] = acc[i][0][q];
    __syncthreads();
    if (warp != 0) return;
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int q = 0; q < 4; q++) {
            float v = red[0][i * 4 + q][lane];
#pragma unroll
            for (int w = 1; w < W; w++) v += red[w][i * 4 + q][lane];
            const i64 m = i * 16 + g + 8 * (q / 2), n = n0 + 2 * t + (q % 2);
            if (m < M && n < N) P::store(p, z, m, n, v);
        }
}

} // namespace kiln
