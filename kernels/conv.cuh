// conv.cuh — 2-D convolution in NCHW: an implicit GEMM on tiled_gemm (gemm.cuh, FFMA) or
// mma_gemm (mma.cuh, tensor cores) for ordinary convolutions, and a direct kernel for
// convolutions with few taps per output (depthwise: C/groups * R * S small), where a GEMM tile
// would be mostly padding. Storage types are template parameters: TX the input, TW the
// weights, TY the output (float or __half); the bias and residual types are the epilogue's
// (Epi::bias_t, Epi::res_t). Every value is loaded through to_f32 and accumulated in fp32.
//
// Implicit GEMM per group g (grid z): M = K/groups output channels, N = batch * P * Q
// output pixels, K = C/groups * R * S taps; A is the weight tensor [K][C/groups][R][S] as
// ONNX stores it, B(k, n) is the input pixel tap k of output pixel n reads (0 in padding).
// Any stride, padding, dilation and group count. A 1-D convolution is H = R = 1.
//
// The epilogue is codegen's: a struct with
//     typedef float bias_t; typedef __half res_t;   // the bias and residual storage types
//     static __device__ float apply(const bias_t *bias, const res_t *res, i64 channel,
//                                   i64 out_index, float acc);
// that adds the bias, applies the activation, the residual and the post-activation.
#pragma once

#include "gemm.cuh"
#include "mma.cuh"

namespace kiln {

struct conv2d_shape {
    i64 N, C, H, W;    // input
    i64 K, P, Q;       // output channels and spatial size
    i64 R, S;          // filter
    i64 sh, sw, ph, pw, dh, dw;  // stride, leading padding, dilation
    i64 groups;
};

// FR, FS: the filter size when codegen fixes it at compile time (the tap decomposition of k
// then divides by constants), 0: read from the shape. NHWC: x and y are stored [N][H][W][C]
// (select-layout); the weights stay OIHW and K keeps its (c, r, s) order. The epilogue's
// out_index is then the NHWC offset (a residual is stored in the same layout).
template <class Epi, typename TX = float, typename TW = float, typename TY = float, int FR = 0, int FS = 0,
          bool NHWC = false>
struct conv2d_problem {
    struct args {
        const TX *x;
        const TW *w;
        const typename Epi::bias_t *bias;
        const typename Epi::res_t *res;
        TY *y;
        conv2d_shape s;
    };
    // Index math in 32 bits (64-bit division is slow on GPUs): codegen refuses tensors of
    // 2^31 elements or more; only the final element offsets are 64-bit.
    static __device__ __forceinline__ float load_a(const args &p, int g, i64 m, i64 k) {
        const int kg = (int)(p.s.K / p.s.groups), crs = (int)((p.s.C / p.s.groups) * p.s.R * p.s.S);
        return to_f32(p.w[(i64)(g * kg + (int)m) * crs + k]);
    }
    static __device__ __forceinline__ float load_b(const args &p, int g, i64 k64, i64 n64) {
        const int S = FS ? FS : (int)p.s.S, rs = (FR ? FR : (int)p.s.R) * S;
        const int Q = (int)p.s.Q, pq = (int)(p.s.P * p.s.Q);
        const int k = (int)k64, n = (int)n64;
        if (NHWC) {
            // B(k, n): pixel n's channel; consecutive k of one tap are consecutive in memory
            const int c = k / rs, t = k - c * rs, r = t / S, s = t - r * S;
            const int ch = g * (int)(p.s.C / p.s.groups) + c;
            if (rs == 1 && p.s.sh == 1 && p.s.sw == 1 && p.s.ph == 0 && p.s.pw == 0 && p.s.P == p.s.H && p.s.Q == p.s.W)
                return to_f32(p.x[(i64)n * p.s.C + ch]);
            const int b = n / pq, o = n - b * pq, op = o / Q, oq = o - op * Q;
            const int h = op * (int)p.s.sh - (int)p.s.ph + r * (int)p.s.dh;
            const int w = oq * (int)p.s.sw - (int)p.s.pw + s * (int)p.s.dw;
            if (h < 0 || h >= (int)p.s.H || w < 0 || w >= (int)p.s.W) return 0.0f;
            return to_f32(p.x[((i64)(b * (int)p.s.H + h) * p.s.W + w) * p.s.C + ch]);
        }
        if (rs == 1 && p.s.sh == 1 && p.s.sw == 1 && p.s.ph == 0 && p.s.pw == 0 && p.s.P == p.s.H && p.s.Q == p.s.W) {
            // 1x1, stride 1, no padding (most of ResNet's convolutions): B is the input itself,
            // [C][H*W] per image; no tap decomposition, and n's (a loop invariant of the GEMM
            // main loops, which keep one n per thread) is hoisted out.
            const int b = n / pq;
            return to_f32(p.x[(i64)(b * (int)p.s.C + g * (int)(p.s.C / p.s.groups) + k) * pq + (n - b * pq)]);
        }
        const int c = k / rs, t = k - c * rs, r = t / S, s = t - r * S;
        const int b = n / pq, o = n - b * pq, op = o / Q, oq = o - op * Q;
        const int h = op * (int)p.s.sh - (int)p.s.ph + r * (int)p.s.dh;
        const int w = oq * (int)p.s.sw - (int)p.s.pw + s * (int)p.s.dw;
        if (h < 0 || h >= (int)p.s.H || w < 0 || w >= (int)p.s.W) return 0.0f;
        const int ch = g * (int)(p.s.C / p.s.groups) + c;
        return to_f32(p.x[((i64)(b * (int)p.s.C + ch) * p.s.H + h) * p.s.W + w]);
    }
    static __device__ __forceinline__ void store(const args &p, int g, i64 m, i64 n64, float acc) {
        const int k = g * (int)(p.s.K / p.s.groups) + (int)m, pq = (int)(p.s.P * p.s.Q), n = (int)n64;
        const int b = n / pq;
        const i64 o = NHWC ? (i64)n * p.s.K + k : (i64)(b * (int)p.s.K + k) * pq + (n - b * pq);
        p.y[o] = from_f32<TY>(Epi::apply(p.bias, p.res, k, o, acc));
    }
};

// NHWC with the GEMM's roles swapped: Y^T (output pixels x output channels) = B^T * A^T, so
// M = N*P*Q pixels and N = K/groups channels, and K is tap-major (k = (r*S + s) * C/groups + c).
// mma.cuh's consecutive threads load consecutive k of A: here consecutive channels of one
// input pixel, contiguous in NHWC (coalesced), where conv2d_problem<..., NHWC> reads them C
// apart. The weights (OIHW, small, cached) are B. Same args and epilogue as conv2d_problem.
template <class Epi, typename TX = float, typename TW = float, typename TY = float, int FR = 0, int FS = 0>
struct conv2d_problem_nhwc_t {
    typedef typename conv2d_problem<Epi, TX, TW, TY, FR, FS, true>::args args;
    static __device__ __forceinline__ float load_a(const args &p, int g, i64 m64, i64 k64) {
        const int cg = (int)(p.s.C / p.s.groups), S = FS ? FS : (int)p.s.S, rs = (FR ? FR : (int)p.s.R) * S;
        const int k = (int)k64, n = (int)m64, t = k / cg, ch = g * cg + (k - t * cg);
        if (rs == 1 && p.s.sh == 1 && p.s.sw == 1 && p.s.ph == 0 && p.s.pw == 0 && p.s.P == p.s.H && p.s.Q == p.s.W)
            return to_f32(p.x[(i64)n * p.s.C + ch]);
        const int Q = (int)p.s.Q, pq = (int)(p.s.P * p.s.Q);
        const int r = t / S, s = t - r * S, b = n / pq, o = n - b * pq, op = o / Q, oq = o - op * Q;
        const int h = op * (int)p.s.sh - (int)p.s.ph + r * (int)p.s.dh;
        const int w = oq * (int)p.s.sw - (int)p.s.pw + s * (int)p.s.dw;
        if (h < 0 || h >= (int)p.s.H || w < 0 || w >= (int)p.s.W) return 0.0f;
        return to_f32(p.x[((i64)(b * (int)p.s.H + h) * p.s.W + w) * p.s.C + ch]);
    }
    static __device__ __forceinline__ float load_b(const args &p, int g, i64 k64, i64 n64) {
        const int cg = (int)(p.s.C / p.s.groups), rs = (FR ? FR : (int)p.s.R) * (FS ? FS : (int)p.s.S);
        const int k = (int)k64, t = k / cg, c = k - t * cg, kout = g * (int)(p.s.K / p.s.groups) + (int)n64;
        return to_f32(p.w[((i64)kout * cg + c) * rs + t]);
    }
    static __device__ __forceinline__ void store(const args &p, int g, i64 m, i64 n, float acc) {
        const int k = g * (int)(p.s.K / p.s.groups) + (int)n;
        const i64 o = m * p.s.K + k;
        p.y[o] = from_f32<TY>(Epi::apply(p.bias, p.res, k, o, acc));
    }
};

// Grid (ceil((K/groups) / BN), ceil(N*P*Q / BM), groups), (BM/WM)*(BN/WN) warps: the swapped
// NHWC implicit GEMM on tensor cores (conv2d_problem_nhwc_t).
template <int BM, int BN, int BK, int WM, int WN, int PREC, class Epi, typename TX = float, typename TW = float,
          typename TY = float, int FR = 0, int FS = 0>
__device__ __forceinline__ void conv2d_igemm_mma_nhwc_t(const typename conv2d_problem_nhwc_t<Epi, TX, TW, TY, FR, FS>::args &a) {
    const conv2d_shape &s = a.s;
    mma_gemm<BM, BN, BK, WM, WN, PREC, conv2d_problem_nhwc_t<Epi, TX, TW, TY, FR, FS>>(a, s.N * s.P * s.Q, s.K / s.groups,
                                                                                     (s.C / s.groups) * s.R * s.S);
}

// Grid (ceil(N*P*Q / BN), ceil((K/groups) / BM), groups), (BM/TM)*(BN/TN) threads.
template <int BM, int BN, int BK, int TM, int TN, class Epi, typename TX = float, typename TW = float,
          typename TY = float, bool NHWC = false>
__device__ __forceinline__ void conv2d_igemm(const typename conv2d_problem<Epi, TX, TW, TY, 0, 0, NHWC>::args &a) {
    const conv2d_shape &s = a.s;
    tiled_gemm<BM, BN, BK, TM, TN, conv2d_problem<Epi, TX, TW, TY, 0, 0, NHWC>>(a, s.K / s.groups, s.N * s.P * s.Q,
                                                                                (s.C / s.groups) * s.R * s.S);
}

// The same on tensor cores (mma.cuh): PREC mma_tf32 or mma_f16, block tile BMxBNxBK, warp tile
// WMxWN. Grid (ceil(N*P*Q / BN), ceil((K/groups) / BM), groups), (BM/WM)*(BN/WN) warps.
// FR x FS: the filter size (compile-time constants; must match the shape).
template <int BM, int BN, int BK, int WM, int WN, int PREC, class Epi, typename TX = float, typename TW = float,
          typename TY = float, int FR = 0, int FS = 0, bool NHWC = false>
__device__ __forceinline__ void conv2d_igemm_mma(const typename conv2d_problem<Epi, TX, TW, TY, FR, FS, NHWC>::args &a) {
    const conv2d_shape &s = a.s;
    mma_gemm<BM, BN, BK, WM, WN, PREC, conv2d_problem<Epi, TX, TW, TY, FR, FS, NHWC>>(a, s.K / s.groups, s.N * s.P * s.Q,
                                                                                      (s.C / s.groups) * s.R * s.S);
}

// One thread per output element (grid-stride), every tap in a loop: for depthwise and other
// convolutions with few taps. Neighbouring threads compute neighbouring output pixels (NCHW)
// or neighbouring channels of one pixel (NHWC: coalesced loads and stores along C).
template <class Epi, typename TX = float, typename TW = float, typename TY = float, bool NHWC = false>
__device__ __forceinline__ void conv2d_direct(const typename conv2d_problem<Epi, TX, TW, TY, 0, 0, NHWC>::args &a) {
    const conv2d_shape &s = a.s;
    const i64 total = s.N * s.K * s.P * s.Q, cg = s.C / s.groups, kg = s.K / s.groups;
    const int H = (int)s.H, W = (int)s.W, P = (int)s.P, Q = (int)s.Q, K = (int)s.K, R = (int)s.R, S = (int)s.S;
    for (i64 o = global_thread_index(); o < total; o += grid_thread_count()) {
        int t = (int)o; // 32-bit index math: codegen refuses tensors of 2^31 elements or more
        int oq, op, k, b;
        if (NHWC) {
            k = t % K; t /= K;
            oq = t % Q; t /= Q;
            op = t % P;
            b = t / P;
        } else {
            oq = t % Q; t /= Q;
            op = t % P; t /= P;
            k = t % K;
            b = t / K;
        }
        const int g = k / (int)kg;
        const int h0 = op * (int)s.sh - (int)s.ph, w0 = oq * (int)s.sw - (int)s.pw;
        float acc = 0.0f;
        for (int c = 0; c < (int)cg; c++) {
            // NHWC: xc[pixel * xs] is channel g*cg+c of that pixel
            const int xs = NHWC ? (int)s.C : 1;
            const TX *xc = NHWC ? a.x + (i64)b * H * W * s.C + g * (int)cg + c : a.x + (i64)(b * (int)s.C + g * (int)cg + c) * H * W;
            const TW *wc = a.w + (i64)(k * (int)cg + c) * R * S;
            for (int r = 0; r < R; r++) {
                const int h = h0 + r * (int)s.dh;
                if (h < 0 || h >= H) continue;
                for (int q = 0; q < S; q++) {
                    const int w = w0 + q * (int)s.dw;
                    if (w < 0 || w >= W) continue;
                    acc = fmaf(to_f32(xc[(i64)(h * W + w) * xs]), to_f32(wc[r * S + q]), acc);
                }
            }
        }
        a.y[o] = from_f32<TY>(Epi::apply(a.bias, a.res, k, o, acc));
    }
}

} // namespace kiln
