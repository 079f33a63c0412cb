// copy.cuh — data movement: a strided block copy that implements Concat (one launch per
// input: the input's rows land at an offset inside the output's rows) and plain copies
// (a graph output that is a view of another value). Type-agnostic: T is an unsigned
// integer of the element's size.
#pragma once

#include "kiln_common.cuh"

namespace kiln {

// x is [outer][row_x] dense; y is [outer][row_y], and x's row goes to y's row at `offset`
// (all in elements). A plain copy is outer = 1, row_x = row_y = numel, offset = 0.
template <typename T>
__device__ __forceinline__ void copy_rows(const T *x, T *y, i64 outer, i64 row_x, i64 row_y, i64 offset) {
    const i64 total = outer * row_x;
    for (i64 i = global_thread_index(); i < total; i += grid_thread_count()) {
        const i64 o = i / row_x, r = i - o * row_x;
        y[o * row_y + offset + r] = x[i];
    }
}

} // namespace kiln

namespace kiln {

// An affine gather: output element at multi-index d (row-major over `dims`) reads the input
// at sum_k (start[k] + d[k] * step[k]) * in_strides[k], or is `pad` when any of those input
// indices falls outside [0, in_dims[k]). Transpose (permuted strides), Slice (start, step),
// Pad (negative start, pad value), Expand (step 0) and Split are all this one kernel.
template <int RANK> struct gather_shape {
    i64 numel;
    i64 dims[RANK];
    i64 start[RANK], step[RANK], in_dims[RANK], in_strides[RANK];
};

template <typename T, int RANK>
__device__ __forceinline__ void affine_gather(const T *x, T *y, const gather_shape<RANK> &s, T pad) {
    for (i64 i = global_thread_index(); i < s.numel; i += grid_thread_count()) {
        i64 rem = i, off = 0;
        bool inside = true;
#pragma unroll
        for (int d = RANK - 1; d >= 0; d--) {
            const i64 q = rem / s.dims[d], idx = rem - q * s.dims[d];
            rem = q;
            const i64 src = s.start[d] + idx * s.step[d];
            inside = inside && src >= 0 && src < s.in_dims[d];
            off += src * s.in_strides[d];
        }
        y[i] = inside ? x[off] : pad;
    }
}

} // namespace kiln

namespace kiln {

// Batched transpose with a type conversion: y[n][b][a] = TO(x[n][a][b]) for x [N][A][B], y
// [N][B][A] — NCHW <-> NHWC (A = C, B = H*W, or A = H*W, B = C), and the fp32 NCHW graph input
// cast to fp16 NHWC in one pass. One block of 256 threads per WA x WB tile (grid (ceil(B / WB),
// ceil(A / WA), N)): coalesced reads along B into shared memory, then coalesced writes along A;
// a tile with WA == A (few channels) writes one contiguous run of WB * A elements. VEC > 1: V
// consecutive outputs of a thread go out as one store of V * sizeof(TO) bytes (the generator
// checks the alignment: A % V == 0 and WA % V == 0, or WA == A with A * B and A * WB multiples
// of V). RV > 1: reads of RV * sizeof(TI) bytes (B % RV == 0 and WB % RV == 0; scalar when x
// itself is not 16-byte aligned). Shared rows are LDS = WB (odd) or WB + 1 floats long: the
// transposed reads hit distinct banks.
template <int V, int BYTES> struct alignas(BYTES) transpose_vec {
    unsigned char b[BYTES];
};
// Few rows (A <= 4: an RGB graph input, NCHW -> NHWC) without shared memory: one thread takes 8
// consecutive columns b of one n, reads them from each of the A rows (one 8-element vector per
// row where x is aligned to it) and writes its 8 * A outputs, contiguous in y, as 16-byte stores
// when 8 * A * sizeof(TO) is a multiple of 16 and y is 16-byte aligned (scalar otherwise).
// The tiled transpose_cvt below leaves such a tile's warps with little work per barrier (~500 GB/s on an
// H100 for ResNet-50's batch-32 input); this is two plain streams. Launch: 1-D, grid-stride over
// the groups = N * B / 8 column groups.
template <typename TI, typename TO, int A, int B>
__device__ __forceinline__ void transpose_few_rows_one(const TI *__restrict__ x, TO *__restrict__ y, i64 g) {
    const i64 n = g / (B / 8);
    const int b = (int)(g - n * (B / 8)) * 8;
    const TI *xs = x + n * A * B + b;
    float v[A][8];
    const bool xv = !((unsigned long long)x % (8 * sizeof(TI))); // B % 8 == 0: every row start aligned too
#pragma unroll
    for (int a = 0; a < A; a++) {
        if (xv) {
            const transpose_vec<8, 8 * sizeof(TI)> w = *reinterpret_cast<const transpose_vec<8, 8 * sizeof(TI)> *>(xs + (i64)a * B);
#pragma unroll
            for (int e = 0; e < 8; e++) v[a][e] = to_f32(reinterpret_cast<const TI *>(w.b)[e]);
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++) v[a][e] = to_f32(xs[(i64)a * B + e]);
        }
    }
    constexpr int OB = 8 * A * (int)sizeof(TO);
    struct alignas(16) out_t {
        TO o[8 * A];
    } out;
#pragma unroll
    for (int e = 0; e < 8; e++)
#pragma unroll
        for (int a = 0; a < A; a++) out.o[e * A + a] = from_f32<TO>(v[a][e]);
    TO *ys = y + (n * B + b) * A;
    if (OB % 16 == 0 && !((unsigned long long)y % 16)) { // (n * B + b) * A * sizeof(TO) is a multiple of OB
#pragma unroll
        for (int q = 0; q < OB / 16; q++)
            reinterpret_cast<transpose_vec<16 / sizeof(TO), 16> *>(ys)[q] = reinterpret_cast<const transpose_vec<16 / sizeof(TO), 16> *>(&out)[q];
    } else {
#pragma unroll
        for (int q = 0; q < 8 * A; q++) ys[q] = out.o[q];
    }
}

template <typename TI, typename TO, int A, int B>
__device__ __forceinline__ void transpose_few_rows(const TI *__restrict__ x, TO *__restrict__ y, i64 groups) {
    static_assert(B % 8 == 0 && A >= 1 && A <= 4, "transpose_few_rows: B % 8 == 0, A <= 4");
    for (i64 g = global_thread_index(); g < groups; g += grid_thread_count())
        transpose_few_rows_one<TI, TO, A, B>(x, y, g);
}

template <typename TI, typename TO, int A, int B, int WA, int WB, int V, int RV = 1>
__device__ __forceinline__ void transpose_cvt(const TI *__restrict__ x, TO *__restrict__ y) {
    constexpr int NT = 256, LDS = WB % 2 ? WB : WB + 1, TILE = WA * WB;
    __shared__ float s[WA * LDS];
    const int b0 = (int)blockIdx.x * WB, a0 = (int)blockIdx.y * WA, tid = threadIdx.x;
    const int ta = A - a0 < WA ? A - a0 : WA, tb = B - b0 < WB ? B - b0 : WB;
    const i64 n = blockIdx.z;
    const TI *xs = x + (n * A + a0) * B + b0;
    if (RV > 1 && !((unsigned long long)x & 15)) {
        static_assert(RV == 1 || (B % RV == 0 && WB % RV == 0), "vector reads");
#pragma unroll 4
        for (int f = tid * RV; f < TILE; f += NT * RV) {
            const int i = f / WB, j = f % WB; // j % RV == 0, and tb % RV == 0
            if (i < ta && j < tb) {
                const transpose_vec<RV, RV * sizeof(TI)> w =
                    *reinterpret_cast<const transpose_vec<RV, RV * sizeof(TI)> *>(xs + (i64)i * B + j);
#pragma unroll
                for (int e = 0; e < RV; e++) s[i * LDS + j + e] = to_f32(reinterpret_cast<const TI *>(w.b)[e]);
            }
        }
    } else {
#pragma unroll 4
        for (int f = tid; f < TILE; f += NT) {
            const int i = f / WB, j = f % WB;
            if (i < ta && j < tb) s[i * LDS + j] = to_f32(xs[(i64)i * B + j]);
        }
    }
    __syncthreads();
    TO *ys = y + (n * B + b0) * A + a0;
#pragma unroll 4
    for (int f0 = tid * V; f0 < TILE; f0 += NT * V) {
        TO v[V];
        bool all = true;
#pragma unroll
        for (int e = 0; e < V; e++) {
            const int f = f0 + e, i = f % WA, j = f / WA;
            const bool ok = i < ta && j < tb;
            all = all && ok;
            v[e] = from_f32<TO>(ok ? s[i * LDS + j] : 0.0f);
        }
        const int i = f0 % WA, j = f0 / WA;
        if (V > 1 && all) { // V consecutive outputs (see the header)
            transpose_vec<V, V * sizeof(TO)> w;
#pragma unroll
            for (int e = 0; e < V; e++) reinterpret_cast<TO *>(w.b)[e] = v[e];
            *reinterpret_cast<transpose_vec<V, V * sizeof(TO)> *>(ys + (i64)j * A + i) = w;
        } else {
#pragma unroll
            for (int e = 0; e < V; e++) {
                const int fi = (f0 + e) % WA, fj = (f0 + e) / WA;
                if (fi < ta && fj < tb) ys[(i64)fj * A + fi] = v[e];
            }
        }
    }
}

} // namespace kiln
