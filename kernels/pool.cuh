// pool.cuh — max / average pooling over 2-D windows (NCHW, NHWC; fp16 NHWC with C % 8 == 0 in
// 16-byte vectors), and global average / max pooling.
// T is the storage type (float, __half or __nv_bfloat16): loads widen to fp32, the
// accumulation is fp32, the store rounds to T. Semantics follow kiln's CPU evaluator: windows may hang over the end padding
// (ceil_mode); max pooling takes the largest tap inside the input; average pooling divides
// by the taps inside the input, or with count_include_pad by the taps inside the padded
// input (end padding included, nothing past it).
#pragma once

#include "kiln_common.cuh"

namespace kiln {

struct pool2d_shape {
    i64 NC, H, W, P, Q;  // batch * channels, input and output spatial size
    i64 R, S;            // window
    i64 sh, sw, ph, pw, dh, dw;
    i64 pe_h, pe_w;      // end padding (for count_include_pad)
    i64 C;               // channels: NHWC indexing (NC = batch * C)
};

enum pool_mode { pool_max = 0, pool_avg = 1, pool_avg_include_pad = 2 };

// One thread per output element, grid-stride; a 1-D grid of any size. NHWC: x and y are
// [N][H][W][C] (neighbouring threads take neighbouring channels: coalesced), else [NC][H][W].
template <int MODE, typename T = float, bool NHWC = false>
__device__ __forceinline__ void pool2d(const T *x, T *y, const pool2d_shape &s) {
    const i64 total = s.NC * s.P * s.Q;
    for (i64 o = global_thread_index(); o < total; o += grid_thread_count()) {
        // 32-bit index math: codegen refuses tensors of 2^31 elements or more
        const int Q = (int)s.Q, P = (int)s.P, H = (int)s.H, W = (int)s.W, oi = (int)o, C = (int)s.C;
        int oq, op, xs; // xs: element stride between neighbouring w in x
        const T *xc;
        if (NHWC) {
            const int ch = oi % C, pix = oi / C;
            oq = pix % Q, op = (pix / Q) % P;
            xc = x + (i64)(pix / (P * Q)) * H * W * C + ch;
            xs = C;
        } else {
            oq = oi % Q, op = (oi / Q) % P;
            xc = x + (i64)(oi / (P * Q)) * H * W;
            xs = 1;
        }
        const int h0 = op * (int)s.sh - (int)s.ph, w0 = oq * (int)s.sw - (int)s.pw;
        float acc = MODE == pool_max ? neg_inf() : 0.0f;
        int valid = 0, rows = 0, cols = 0;
        for (int r = 0; r < (int)s.R; r++) {
            const int h = h0 + r * (int)s.dh;
            if (h < H + (int)s.pe_h) rows = r + 1;
            if (h < 0 || h >= H) continue;
            for (int q = 0; q < (int)s.S; q++) {
                const int w = w0 + q * (int)s.dw;
                if (w < 0 || w >= W) continue;
                const float v = to_f32(xc[(i64)(h * W + w) * xs]);
                if (MODE == pool_max) acc = fmaxf(acc, v);
                else acc += v;
                valid++;
            }
        }
        for (int q = 0; q < (int)s.S; q++)
            if (w0 + q * s.dw < s.W + s.pe_w) cols = q + 1;
        if (MODE == pool_avg) acc = valid ? acc / (float)valid : 0.0f;
        if (MODE == pool_avg_include_pad) acc = rows * cols ? acc / (float)(rows * cols) : 0.0f;
        y[o] = from_f32<T>(acc);
    }
}

// 8 fp16 channels as one 16-byte word: a struct copy of it is one 128-bit load / store.
struct alignas(16) half8 {
    __half h[8];
};

// pool2d for fp16 NHWC with C % 8 == 0 (x and y 16-byte aligned): one thread per (output pixel,
// 8 channels), one 16-byte load per window tap; neighbouring threads take neighbouring 8-channel
// groups of one pixel, so a warp reads 512 contiguous bytes per tap. Same semantics as pool2d.
template <int MODE>
__device__ __forceinline__ void pool2d_nhwc_h8(const __half *x, __half *y, const pool2d_shape &s) {
    const int C8 = (int)s.C / 8, Q = (int)s.Q, P = (int)s.P, H = (int)s.H, W = (int)s.W;
    const i64 total = s.NC / 8 * s.P * s.Q;
    const half8 *x8 = reinterpret_cast<const half8 *>(x);
    for (i64 o = global_thread_index(); o < total; o += grid_thread_count()) {
        const int oi = (int)o, g = oi % C8, pix = oi / C8; // 32-bit: codegen refuses 2^31 elements
        const int oq = pix % Q, op = (pix / Q) % P, nb = pix / (P * Q);
        const half8 *xc = x8 + (i64)nb * H * W * C8 + g;
        const int h0 = op * (int)s.sh - (int)s.ph, w0 = oq * (int)s.sw - (int)s.pw;
        float acc[8];
#pragma unroll
        for (int i = 0; i < 8; i++) acc[i] = MODE == pool_max ? neg_inf() : 0.0f;
        int valid = 0, rows = 0, cols = 0;
        for (int r = 0; r < (int)s.R; r++) {
            const int h = h0 + r * (int)s.dh;
            if (h < H + (int)s.pe_h) rows = r + 1;
            if (h < 0 || h >= H) continue;
            for (int q = 0; q < (int)s.S; q++) {
                const int w = w0 + q * (int)s.dw;
                if (w < 0 || w >= W) continue;
                const half8 v = xc[(i64)(h * W + w) * C8];
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    const float f = to_f32(v.h[i]);
                    acc[i] = MODE == pool_max ? fmaxf(acc[i], f) : acc[i] + f;
                }
                valid++;
            }
        }
        for (int q = 0; q < (int)s.S; q++)
            if (w0 + q * s.dw < s.W + s.pe_w) cols = q + 1;
        const float div = MODE == pool_avg ? (float)valid : MODE == pool_avg_include_pad ? (float)(rows * cols) : 1.0f;
        half8 out;
#pragma unroll
        for (int i = 0; i < 8; i++)
            out.h[i] = from_f32<__half>(MODE == pool_max ? acc[i] : div > 0.0f ? acc[i] / div : 0.0f);
        reinterpret_cast<half8 *>(y)[o] = out;
    }
}

// MaxPool for fp16 NHWC with C % 8 == 0, compile-time shape, no dilation (ResNet's 3x3 stride-2
// pool after the stem): one thread per (n, p, QT adjacent output columns, 8 channels); the QT
// windows of a row overlap when S > SW, so the thread loads each input column once ((QT - 1) * SW
// + S columns a row instead of QT * S) and keeps QT maxima. No runtime division but by constants.
// Neighbouring threads take neighbouring 8-channel groups. Same semantics as pool2d's max.
template <int N, int H, int W, int C8, int P, int Q, int R, int S, int SH, int SW, int PH, int PW, int QT>
__device__ __forceinline__ void max_pool_nhwc_h8_ct(const __half *x, __half *y) {
    constexpr int QB = (Q + QT - 1) / QT, COLS = (QT - 1) * SW + S;
    constexpr i64 total = (i64)N * P * QB * C8;
    const half8 *x8 = reinterpret_cast<const half8 *>(x);
    half8 *y8 = reinterpret_cast<half8 *>(y);
    for (i64 t = global_thread_index(); t < total; t += grid_thread_count()) {
        const int g = (int)(t % C8), qb = (int)((t / C8) % QB), op = (int)((t / ((i64)C8 * QB)) % P);
        const int nb = (int)(t / ((i64)C8 * QB * P));
        const int q0 = qb * QT, h0 = op * SH - PH, w0 = q0 * SW - PW;
        const half8 *xc = x8 + (i64)nb * H * W * C8 + g;
        float acc[QT][8];
#pragma unroll
        for (int k = 0; k < QT; k++)
#pragma unroll
            for (int i = 0; i < 8; i++) acc[k][i] = neg_inf();
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int h = h0 + r;
            if (h < 0 || h >= H) continue;
#pragma unroll
            for (int cix = 0; cix < COLS; cix++) {
                const int w = w0 + cix;
                if (w < 0 || w >= W) continue;
                const half8 v = xc[(i64)(h * W + w) * C8];
                float f[8];
#pragma unroll
                for (int i = 0; i < 8; i++) f[i] = to_f32(v.h[i]);
#pragma unroll
                for (int k = 0; k < QT; k++) // column cix is in window k when 0 <= cix - k * SW < S
                    if (cix - k * SW >= 0 && cix - k * SW < S)
#pragma unroll
                        for (int i = 0; i < 8; i++) acc[k][i] = fmaxf(acc[k][i], f[i]);
            }
        }
#pragma unroll
        for (int k = 0; k < QT; k++) {
            if (q0 + k >= Q) break;
            half8 out;
#pragma unroll
            for (int i = 0; i < 8; i++) out.h[i] = from_f32<__half>(acc[k][i]);
            y8[(((i64)nb * P + op) * Q + q0 + k) * C8 + g] = out;
        }
    }
}

// Global pooling: one warp per (n, c) row of `len` elements; block 256 threads = 8 rows.
template <bool MAX, typename T = float>
__device__ __forceinline__ void global_pool(const T *x, T *y, i64 rows, i64 len) {
    const i64 row = (i64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const T *xr = x + row * len;
    float acc = MAX ? neg_inf() : 0.0f;
    for (i64 i = lane; i < len; i += 32) acc = MAX ? fmaxf(acc, to_f32(xr[i])) : acc + to_f32(xr[i]);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) {
        const float o = __shfl_xor_sync(0xffffffffu, acc, off);
        acc = MAX ? fmaxf(acc, o) : acc + o;
    }
    if (lane == 0) y[row] = from_f32<T>(MAX ? acc : acc / (float)len);
}

// Global pooling of NHWC x [N][L][C] into y [N][C]: one thread per (n, c), grid-stride;
// neighbouring threads read neighbouring channels.
template <bool MAX, typename T = float>
__device__ __forceinline__ void global_pool_nhwc(const T *x, T *y, i64 N, i64 L, i64 C) {
    for (i64 o = global_thread_index(); o < N * C; o += grid_thread_count()) {
        const i64 n = o / C, ch = o - n * C;
        const T *xr = x + n * L * C + ch;
        float acc = MAX ? neg_inf() : 0.0f;
        for (i64 i = 0; i < L; i++) acc = MAX ? fmaxf(acc, to_f32(xr[i * C])) : acc + to_f32(xr[i * C]);
        y[o] = from_f32<T>(MAX ? acc : acc / (float)L);
    }
}

} // namespace kiln
