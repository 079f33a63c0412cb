// softmax.cuh — Softmax / LogSoftmax along one axis; T is the storage type (float, __half or
// __nv_bfloat16), the math is fp32. The tensor is viewed as
// [outer, D, inner]; one warp computes one (outer, inner) row of D elements spaced `inner`
// apart: the max, then the sum of exp(x - max), then the outputs.
#pragma once

#include "kiln_common.cuh"

namespace kiln {

// Block 256 threads = 8 rows; grid = ceil(outer * inner / 8).
template <bool LOG, typename T = float>
__device__ __forceinline__ void softmax_rows(const T *x, T *y, i64 outer, i64 D, i64 inner) {
    const i64 row = (i64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= outer * inner) return;
    const i64 o = row / inner, i = row % inner, base = o * D * inner + i;
    float mx = neg_inf();
    for (i64 d = lane; d < D; d += 32) mx = fmaxf(mx, to_f32(x[base + d * inner]));
#pragma unroll
    for (int off = 16; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    float sum = 0.0f;
    for (i64 d = lane; d < D; d += 32) sum += expf(to_f32(x[base + d * inner]) - mx);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    const float lse = logf(sum);
    for (i64 d = lane; d < D; d += 32) {
        const float v = to_f32(x[base + d * inner]) - mx;
        y[base + d * inner] = from_f32<T>(LOG ? v - lse : expf(v) / sum);
    }
}

} // namespace kiln
