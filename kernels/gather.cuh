// gather.cuh — Gather and GatherElements, any element type (T: an unsigned integer of the
// element's size) and int32 / int64 indices (I). Negative indices count from the end; an
// index still outside [0, axis_dim) yields a zero element (the CPU evaluator refuses such a
// model; a kernel cannot, and must not read out of bounds).
//
// Gather: x is [outer, axis_dim, inner], the indices a flat list of n_idx; y is
// [outer, n_idx, inner] and y[o, j, k] = x[o, idx[j], k].
// GatherElements: y has the indices' shape; y[i] = x at i's multi-index with the axis
// coordinate replaced by idx[i] (strides: x's per index dim, 0 on the axis).
// Launch: block 256, any 1-D grid (grid-stride loop).
#pragma once

#include "kiln_common.cuh"

namespace kiln {

template <typename I> __device__ __forceinline__ i64 wrap_index(I v, i64 dim) {
    i64 k = (i64)v;
    return k < 0 ? k + dim : k;
}

template <typename T, typename I>
__device__ __forceinline__ void gather_axis(const T *x, const I *idx, T *y, i64 outer, i64 axis_dim, i64 n_idx,
                                            i64 inner) {
    const i64 total = outer * n_idx * inner;
    for (i64 i = global_thread_index(); i < total; i += grid_thread_count()) {
        const i64 k = i % inner, t = i / inner, j = t % n_idx, o = t / n_idx;
        const i64 a = wrap_index(idx[j], axis_dim);
        y[i] = (a >= 0 && a < axis_dim) ? x[(o * axis_dim + a) * inner + k] : (T)0;
    }
}

template <int RANK> struct gather_elements_shape {
    i64 numel, axis_dim, axis_stride;
    i64 dims[RANK];      // the indices' (and the output's) shape
    i64 x_strides[RANK]; // x's strides, 0 on the axis
};

template <typename T, typename I, int RANK>
__device__ __forceinline__ void gather_elements(const T *x, const I *idx, T *y, const gather_elements_shape<RANK> &s) {
    for (i64 i = global_thread_index(); i < s.numel; i += grid_thread_count()) {
        const i64 a = wrap_index(idx[i], s.axis_dim);
        y[i] = (a >= 0 && a < s.axis_dim) ? x[broadcast_offset<RANK>(i, s.dims, s.x_strides) + a * s.axis_stride]
                                          : (T)0;
    }
}

} // namespace kiln
