// resize.cuh — Resize (nearest, linear, cubic; every coordinate transformation mode,
// antialias, exclude_outside, tf_crop_and_resize extrapolation) as a tensor product of
// per-axis tap tables that codegen computes at build time (the shapes are static): for output
// index j of axis a, ntap[a] (source index, weight) pairs at table_off[a] + j * ntap[a]; a
// source index of -1 on the first tap marks an output that takes the extrapolation value.
// Each thread computes one output element as the sum over every tap combination (1 for
// nearest, 2^k linear, 4^k cubic over k resized axes; unresized axes have one tap of weight
// 1). Accumulates in fp32 from the storage type T.
// Launch: block 256, any 1-D grid (grid-stride loop).
#pragma once

#include "kiln_common.cuh"

namespace kiln {

template <int RANK> struct resize_shape {
    i64 numel;
    i64 out_dims[RANK], in_strides[RANK], ntap[RANK], table_off[RANK];
};

template <typename T, int RANK>
__device__ __forceinline__ void resize(const T *x, T *y, const i64 *tap_idx, const float *tap_w, float extrap,
                                       const resize_shape<RANK> &s) {
    for (i64 i = global_thread_index(); i < s.numel; i += grid_thread_count()) {
        i64 rem = i, base[RANK], combos = 1;
        bool ext = false;
#pragma unroll
        for (int a = RANK - 1; a >= 0; a--) {
            const i64 j = rem % s.out_dims[a];
            rem /= s.out_dims[a];
            base[a] = s.table_off[a] + j * s.ntap[a];
            ext = ext || tap_idx[base[a]] < 0;
            combos *= s.ntap[a];
        }
        if (ext) {
            y[i] = from_f32<T>(extrap);
            continue;
        }
        float acc = 0.0f;
        for (i64 c = 0; c < combos; c++) {
            i64 cr = c, off = 0;
            float w = 1.0f;
#pragma unroll
            for (int a = RANK - 1; a >= 0; a--) {
                const i64 k = cr % s.ntap[a];
                cr /= s.ntap[a];
                w *= tap_w[base[a] + k];
                off += tap_idx[base[a] + k] * s.in_strides[a];
            }
            if (w != 0.0f) acc += w * to_f32(x[off]);
        }
        y[i] = from_f32<T>(acc);
    }
}

} // namespace kiln
