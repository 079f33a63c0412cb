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
