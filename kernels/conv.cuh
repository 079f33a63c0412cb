// conv.cuh — 2-D convolution in NCHW, fp32: an implicit GEMM on tiled_gemm (gemm.cuh) for
// ordinary convolutions, and a direct kernel for convolutions with few taps per output
// (depthwise: C/groups * R * S small), where a GEMM tile would be mostly padding.
//
// Implicit GEMM per group g (grid z): M = K/groups output channels, N = batch * P * Q
// output pixels, K = C/groups * R * S taps; A is the weight tensor [K][C/groups][R][S] as
// ONNX stores it, B(k, n) is the input pixel tap k of output pixel n reads (0 in padding).
// Any stride, padding, dilation and group count. A 1-D convolution is H = R = 1.
//
// The epilogue is codegen's: a struct with
//     static __device__ float apply(const float *bias, const float *res, i64 channel,
//                                   i64 out_index, float acc);
// that adds the bias, applies the activation, the residual and the post-activation.
#pragma once

#include "gemm.cuh"

namespace kiln {

struct conv2d_shape {
    i64 N, C, H, W;    // input
    i64 K, P, Q;       // output channels and spatial size
    i64 R, S;          // filter
    i64 sh, sw, ph, pw, dh, dw;  // stride, leading padding, dilation
    i64 groups;
};

template <class Epi> struct conv2d_problem {
    struct args {
        const float *x, *w, *bias, *res;
        float *y;
        conv2d_shape s;
    };
    static __device__ __forceinline__ float load_a(const args &p, int g, i64 m, i64 k) {
        const i64 kg = p.s.K / p.s.groups, crs = (p.s.C / p.s.groups) * p.s.R * p.s.S;
        return p.w[(g * kg + m) * crs + k];
    }
    static __device__ __forceinline__ float load_b(const args &p, int g, i64 k, i64 n) {
        const i64 rs = p.s.R * p.s.S, pq = p.s.P * p.s.Q;
        const i64 c = k / rs, t = k - c * rs, r = t / p.s.S, s = t - r * p.s.S;
        const i64 b = n / pq, o = n - b * pq, op = o / p.s.Q, oq = o - op * p.s.Q;
        const i64 h = op * p.s.sh - p.s.ph + r * p.s.dh, w = oq * p.s.sw - p.s.pw + s * p.s.dw;
        if (h < 0 || h >= p.s.H || w < 0 || w >= p.s.W) return 0.0f;
        const i64 ch = g * (p.s.C / p.s.groups) + c;
        return p.x[((b * p.s.C + ch) * p.s.H + h) * p.s.W + w];
    }
    static __device__ __forceinline__ void store(const args &p, int g, i64 m, i64 n, float acc) {
        const i64 k = g * (p.s.K / p.s.groups) + m, pq = p.s.P * p.s.Q;
        const i64 b = n / pq, o = (b * p.s.K + k) * pq + (n - b * pq);
        p.y[o] = Epi::apply(p.bias, p.res, k, o, acc);
    }
};

// Grid (ceil(N*P*Q / BN), ceil((K/groups) / BM), groups), (BM/TM)*(BN/TN) threads.
template <int BM, int BN, int BK, int TM, int TN, class Epi>
__device__ __forceinline__ void conv2d_igemm(const typename conv2d_problem<Epi>::args &a) {
    const conv2d_shape &s = a.s;
    tiled_gemm<BM, BN, BK, TM, TN, conv2d_problem<Epi>>(a, s.K / s.groups, s.N * s.P * s.Q,
                                                        (s.C / s.groups) * s.R * s.S);
}

// One thread per output element (grid-stride), every tap in a loop: for depthwise and other
// convolutions with few taps. Neighbouring threads compute neighbouring output pixels.
template <class Epi> __device__ __forceinline__ void conv2d_direct(const typename conv2d_problem<Epi>::args &a) {
    const conv2d_shape &s = a.s;
    const i64 total = s.N * s.K * s.P * s.Q, cg = s.C / s.groups, kg = s.K / s.groups;
    for (i64 o = global_thread_index(); o < total; o += grid_thread_count()) {
        i64 t = o;
        const i64 oq = t % s.Q; t /= s.Q;
        const i64 op = t % s.P; t /= s.P;
        const i64 k = t % s.K;
        const i64 b = t / s.K;
        const i64 g = k / kg;
        float acc = 0.0f;
        for (i64 c = 0; c < cg; c++) {
            const float *xc = a.x + (b * s.C + g * cg + c) * s.H * s.W;
            const float *wc = a.w + (k * cg + c) * s.R * s.S;
            for (i64 r = 0; r < s.R; r++) {
                const i64 h = op * s.sh - s.ph + r * s.dh;
                if (h < 0 || h >= s.H) continue;
                for (i64 q = 0; q < s.S; q++) {
                    const i64 w = oq * s.sw - s.pw + q * s.dw;
                    if (w < 0 || w >= s.W) continue;
                    acc = fmaf(xc[h * s.W + w], wc[r * s.S + q], acc);
                }
            }
        }
        a.y[o] = Epi::apply(a.bias, a.res, k, o, acc);
    }
}

} // namespace kiln
