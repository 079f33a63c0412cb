// convtranspose.cuh — ConvTranspose (1-, 2- or 3-D, any stride, padding, dilation, groups,
// output_padding / output_shape) in gather form: each thread computes one output element
// by visiting the input positions that scatter to it. Output position o receives input
// position i through kernel tap kk when o = i*s - pb + kk*d, so i = (o + pb - kk*d) / s where
// that divides exactly and lands inside the input. X [N, C, in...], W [C, M/group, k...],
// Y [N, M, out...]; fp32 accumulation, storage type T. Direct, not tiled: correct for every
// geometry, and ConvTranspose is rare in the models kiln targets.
// Launch: block 256, any 1-D grid (grid-stride loop).
#pragma once

#include "kiln_common.cuh"

namespace kiln {

template <int NSP> struct convt_shape {
    i64 numel, N, C, M, Cg, Mg;
    i64 in[NSP], out[NSP], k[NSP], s[NSP], d[NSP], pb[NSP];
};

template <typename T, int NSP>
__device__ __forceinline__ void conv_transpose(const T *x, const T *w, const T *bias, T *y, const convt_shape<NSP> &s) {
    i64 in_sp = 1, k_sp = 1;
#pragma unroll
    for (int j = 0; j < NSP; j++) in_sp *= s.in[j], k_sp *= s.k[j];
    for (i64 i = global_thread_index(); i < s.numel; i += grid_thread_count()) {
        i64 rem = i, o[NSP];
#pragma unroll
        for (int j = NSP - 1; j >= 0; j--) {
            o[j] = rem % s.out[j];
            rem /= s.out[j];
        }
        const i64 m = rem % s.M, n = rem / s.M, g = m / s.Mg, mm = m - g * s.Mg;
        float acc = bias ? to_f32(bias[m]) : 0.0f;
        for (i64 kidx = 0; kidx < k_sp; kidx++) {
            i64 kr = kidx, ip = 0;
            bool ok = true;
#pragma unroll
            for (int j = NSP - 1; j >= 0; j--) {
                const i64 kk = kr % s.k[j];
                kr /= s.k[j];
                const i64 t = o[j] + s.pb[j] - kk * s.d[j];
                const i64 q = t >= 0 ? t / s.s[j] : -1;
                ok = ok && t >= 0 && q * s.s[j] == t && q < s.in[j];
            }
            if (!ok) continue;
            kr = kidx;
            i64 mul = 1;
#pragma unroll
            for (int j = NSP - 1; j >= 0; j--) {
                const i64 kk = kr % s.k[j];
                kr /= s.k[j];
                ip += ((o[j] + s.pb[j] - kk * s.d[j]) / s.s[j]) * mul;
                mul *= s.in[j];
            }
            for (i64 c = 0; c < s.Cg; c++) {
                const i64 ci = g * s.Cg + c;
                acc += to_f32(x[(n * s.C + ci) * in_sp + ip]) * to_f32(w[(ci * s.Mg + mm) * k_sp + kidx]);
            }
        }
        y[i] = from_f32<T>(acc);
    }
}

} // namespace kiln
