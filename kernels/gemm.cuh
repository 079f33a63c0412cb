// gemm.cuh — a tiled FFMA GEMM that convolution (implicit GEMM), Gemm and MatMul share.
//
// C[z][m][n] = sum_k A(z, m, k) * B(z, k, n), then P::store(args, z, m, n, acc). The problem
// class P supplies the operand loads and the store, so one main loop serves every layout:
// a convolution's B(k, n) gathers its im2col column from the input on the fly, and store()
// is where the fused epilogue (bias, activation, residual) runs while the value is in a
// register. P must provide:
//
//     struct P {
//         struct args { ... };   // pointers + shapes, built by the generated kernel
//         static __device__ float load_a(const args &, int z, i64 m, i64 k);
//         static __device__ float load_b(const args &, int z, i64 k, i64 n);
//         static __device__ void store(const args &, int z, i64 m, i64 n, float acc);
//     };
//
// Launch: block = (BM / TM) * (BN / TN) threads (1-D), grid = (ceil(N / BN), ceil(M / BM), Z).
// Tile sizes are template parameters so that codegen (and later the autotuner) picks them.
// Each thread owns TM x TN outputs spaced BM / TM rows and BN / TN columns apart, so that
// neighbouring threads touch neighbouring columns: shared-memory reads do not conflict and
// the stores of a row (consecutive output pixels of a convolution) coalesce.
#pragma once

#include "kiln_common.cuh"

namespace kiln {

template <int BM, int BN, int BK, int TM, int TN, class P>
__device__ __forceinline__ void tiled_gemm(const typename P::args &a, i64 M, i64 N, i64 K) {
    constexpr int TX = BN / TN, TY = BM / TM, NT = TX * TY;
    static_assert(BM % TM == 0 && BN % TN == 0, "tile sizes must divide");
    __shared__ float As[BK][BM];
    __shared__ float Bs[BK][BN];
    const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
    const int z = blockIdx.z;
    const i64 m0 = (i64)blockIdx.y * BM, n0 = (i64)blockIdx.x * BN;
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    for (i64 k0 = 0; k0 < K; k0 += BK) {
        // A tile: consecutive threads read consecutive k (weights are [M][K] row-major)
        for (int i = tid; i < BM * BK; i += NT) {
            const int mm = i / BK, kk = i % BK;
            const i64 m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < K) ? P::load_a(a, z, m, k) : 0.0f;
        }
        // B tile: consecutive threads read consecutive n (neighbouring output pixels)
        for (int i = tid; i < BK * BN; i += NT) {
            const int kk = i / BN, nn = i % BN;
            const i64 k = k0 + kk, n = n0 + nn;
            Bs[kk][nn] = (k < K && n < N) ? P::load_b(a, z, k, n) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            float ra[TM], rb[TN];
#pragma unroll
            for (int i = 0; i < TM; i++) ra[i] = As[kk][ty + i * TY];
#pragma unroll
            for (int j = 0; j < TN; j++) rb[j] = Bs[kk][tx + j * TX];
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = fmaf(ra[i], rb[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const i64 m = m0 + ty + i * TY;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            const i64 n = n0 + tx + j * TX;
            if (n < N) P::store(a, z, m, n, acc[i][j]);
        }
    }
}

// ------------------------------------------------------------------ Gemm / MatMul --
// out[b][m][n] = epilogue(sum_k A[b](m, k) * B[b](k, n)) with A and B addressed by strides
// (so Gemm's transA/transB are just strides), up to 4 broadcast batch dims.
struct gemm_shape {
    i64 M, N, K;
    i64 sam, sak, sbk, sbn;      // element strides of A (m, k) and B (k, n)
    i64 batch_dims[4];           // output batch dims, padded with 1 at the front
    i64 a_batch[4], b_batch[4];  // per batch dim element strides (0 = broadcast)
};

// Epi: struct with `typedef ... bias_t, res_t;` (storage types) and `static __device__ float
// apply(const bias_t *bias, const res_t *res, i64 m, i64 n, i64 out_index, float acc)` (codegen
// writes it with the group's epilogue). TA, TB, TY: storage types of A, B and the output
// (float or __half); loads widen to fp32, the store rounds to TY.
template <class Epi, typename TA = float, typename TB = float, typename TY = float> struct gemm_problem {
    struct args {
        const TA *a;
        const TB *b;
        const typename Epi::bias_t *bias;
        const typename Epi::res_t *res;
        TY *y;
        gemm_shape s;
    };
    // batch 0 is at offset 0: Gemm and unbatched MatMul skip the (64-bit) division chain
    static __device__ __forceinline__ i64 a_base(const args &p, int z) {
        return z == 0 ? 0 : broadcast_offset<4>(z, p.s.batch_dims, p.s.a_batch);
    }
    static __device__ __forceinline__ i64 b_base(const args &p, int z) {
        return z == 0 ? 0 : broadcast_offset<4>(z, p.s.batch_dims, p.s.b_batch);
    }
    static __device__ __forceinline__ float load_a(const args &p, int z, i64 m, i64 k) {
        return to_f32(p.a[a_base(p, z) + m * p.s.sam + k * p.s.sak]);
    }
    static __device__ __forceinline__ float load_b(const args &p, int z, i64 k, i64 n) {
        return to_f32(p.b[b_base(p, z) + k * p.s.sbk + n * p.s.sbn]);
    }
    static __device__ __forceinline__ void store(const args &p, int z, i64 m, i64 n, float acc) {
        const i64 o = ((i64)z * p.s.M + m) * p.s.N + n;
        p.y[o] = from_f32<TY>(Epi::apply(p.bias, p.res, m, n, o, acc));
    }
};

} // namespace kiln
