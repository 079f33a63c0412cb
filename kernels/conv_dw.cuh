// conv_dw.cuh — depthwise 2-D convolution (group == C == K, one filter per channel) with every
// shape a compile-time constant (codegen/cg_conv_dw.c): divisions by the shape become
// multiplies, the tap loops unroll completely, and a thread computes TQ consecutive output
// columns of one row, loading each input column of the window once per filter row (a 3x3
// stride-1 window over 4 outputs reads 6 columns instead of 12) and keeping it in registers
// while it feeds every output and tap that uses it. Accumulation in fp32; the fused epilogue
// (Epi::apply: bias, activation, residual, post-activation; conv.cuh) runs per output element.
//
// Shape `Sh`: a struct with static constexpr int N, C, H, W (input), P, Q (output), R, S
// (filter), SH, SW (stride), PH, PW (leading padding), DH, DW (dilation). K == C.
// One thread per (output pixel group of TQ columns, channel group); launch ceil(threads / B)
// blocks of any size B (conv_dw_nhwc_threads / conv_dw_nchw_threads give the count).
#pragma once

#include "conv.cuh"

namespace kiln {

// A value's bits as a plain integer (dw_store).
template <typename T>
struct dw_bits;
template <>
struct dw_bits<float> {
    typedef unsigned int type;
    static __device__ __forceinline__ type get(float f) {
        union {
            float f;
            unsigned int u;
        } b;
        b.f = f;
        return b.u;
    }
};
template <>
struct dw_bits<__half> {
    typedef unsigned short type;
    static __device__ __forceinline__ type get(__half h) { return __half_as_ushort(h); }
};

// Loads V values at p (aligned to V elements) as floats: one 16-, 8- or 4-byte read-only load
// (ld.global.nc: the explicit form, as the stores' inline PTX hides that x is never written),
// unpacked from 32-bit words (the emulator copies the words and unpacks them the same way).
__device__ __forceinline__ void dw_unpack(unsigned int u, float *f, float) {
    union {
        unsigned int u;
        float f;
    } b;
    b.u = u;
    f[0] = b.f;
}
__device__ __forceinline__ float dw_half_bits_to_f32(unsigned short b) {
#ifdef KILN_EMU
    __half h;
    h.x = b;
    return __half2float(h);
#else
    return __half2float(__ushort_as_half(b));
#endif
}
__device__ __forceinline__ void dw_unpack(unsigned int u, float *f, __half) {
    f[0] = dw_half_bits_to_f32((unsigned short)(u & 0xffffu)); // the lower address
    f[1] = dw_half_bits_to_f32((unsigned short)(u >> 16));
}
template <typename T, int V>
__device__ __forceinline__ void dw_load(const T *p, float (&f)[V]) {
    constexpr int BYTES = V * (int)sizeof(T), PER = 4 / (int)sizeof(T);
    if constexpr (BYTES >= 4 && BYTES <= 16) {
        unsigned int u[BYTES / 4];
#ifdef KILN_EMU
        memcpy(u, p, BYTES);
#else
        if constexpr (BYTES == 16) {
            const uint4 v = __ldg(reinterpret_cast<const uint4 *>(p));
            u[0] = v.x, u[1] = v.y, u[2] = v.z, u[3] = v.w;
        } else if constexpr (BYTES == 8) {
            const uint2 v = __ldg(reinterpret_cast<const uint2 *>(p));
            u[0] = v.x, u[1] = v.y;
        } else {
            u[0] = __ldg(reinterpret_cast<const unsigned int *>(p));
        }
#endif
#pragma unroll
        for (int k = 0; k < BYTES / 4; k++) dw_unpack(u[k], f + k * PER, T());
    } else {
#pragma unroll
        for (int i = 0; i < V; i++) f[i] = to_f32(p[i]);
    }
}

// Stores V values at y (global memory, aligned to V elements, V * sizeof(TY) <= 16) as 32-bit
// words packed by hand in one 4-, 8- or 16-byte store.
template <typename TY, int V>
__device__ __forceinline__ void dw_store(TY *y, const TY (&v)[V]) {
    constexpr int BYTES = V * (int)sizeof(TY);
    static_assert(BYTES <= 16, "at most 16 bytes a store");
    if constexpr (BYTES >= 4) {
        unsigned int u[BYTES / 4];
#pragma unroll
        for (int k = 0; k < BYTES / 4; k++) {
            if constexpr (sizeof(TY) == 4) u[k] = dw_bits<TY>::get(v[k]);
            else u[k] = (unsigned int)dw_bits<TY>::get(v[2 * k]) | (unsigned int)dw_bits<TY>::get(v[2 * k + 1]) << 16;
        }
#ifdef KILN_EMU
        memcpy(y, u, BYTES);
#else
        // __stcg (st.global.cg): NVVM splits even a plain uint4 store here into 4-byte stores
        if constexpr (BYTES == 16) __stcg(reinterpret_cast<uint4 *>(y), make_uint4(u[0], u[1], u[2], u[3]));
        else if constexpr (BYTES == 8) __stcg(reinterpret_cast<uint2 *>(y), make_uint2(u[0], u[1]));
        else *reinterpret_cast<unsigned int *>(y) = u[0];
#endif
    } else {
#pragma unroll
        for (int i = 0; i < V; i++) y[i] = v[i];
    }
}

// The input columns one row of a TQ-wide output group reads: TQ outputs SW apart, S taps DW apart.
template <class Sh, int TQ>
struct dw_span {
    static constexpr int value = (TQ - 1) * Sh::SW + (Sh::S - 1) * Sh::DW + 1;
};

// NHWC: x [N][H][W][C], y [N][P][Q][C], weights transposed to [R][S][C] (codegen's constant), so
// each thread owns V consecutive channels (V * sizeof(T) == 16: one 16-byte load per tap
// column and weight vector; V = 1 for channel counts without a vector width) and consecutive
// threads take consecutive channel groups of one pixel: a warp reads contiguous bytes.
// x, w, y must be aligned to V elements.
template <class Sh, int V, int TQ>
__host__ __device__ constexpr i64 conv_dw_nhwc_threads() {
    return (i64)Sh::N * Sh::P * ((Sh::Q + TQ - 1) / TQ) * (Sh::C / V);
}

template <class Sh, int V, int TQ, class Epi, typename TX, typename TW, typename TY>
__device__ __forceinline__ void conv_dw_nhwc(const TX *__restrict__ x, const TW *__restrict__ w,
                                             const typename Epi::bias_t *bias, const typename Epi::res_t *res,
                                             TY *__restrict__ y) {
    static_assert(Sh::C % V == 0, "V must divide C");
    constexpr int CV = Sh::C / V, QB = (Sh::Q + TQ - 1) / TQ, SPAN = dw_span<Sh, TQ>::value;
    // 32-bit index math: codegen refuses tensors of 2^31 elements or more
    const int t = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (t >= (int)conv_dw_nhwc_threads<Sh, V, TQ>()) return;
    const int cv = t % CV, pix = t / CV;
    const int qb = pix % QB, np = pix / QB; // np = n * P + p
    const int p = np % Sh::P, n = np / Sh::P;
    const int c0 = cv * V, q0 = qb * TQ;
    const int h0 = p * Sh::SH - Sh::PH, w0 = q0 * Sh::SW - Sh::PW;
    float acc[TQ][V];
#pragma unroll
    for (int j = 0; j < TQ; j++)
#pragma unroll
        for (int i = 0; i < V; i++) acc[j][i] = 0.0f;
    const TX *xn = x + (i64)n * Sh::H * Sh::W * Sh::C + c0;
#pragma unroll
    for (int r = 0; r < Sh::R; r++) {
        const int h = h0 + r * Sh::DH;
        if (h < 0 || h >= Sh::H) continue;
        float wf[Sh::S][V];
#pragma unroll
        for (int s = 0; s < Sh::S; s++) dw_load<TW, V>(w + (r * Sh::S + s) * Sh::C + c0, wf[s]);
        const TX *xr = xn + (i64)h * Sh::W * Sh::C;
#pragma unroll
        for (int col = 0; col < SPAN; col++) {
            const int wc = w0 + col;
            if (wc < 0 || wc >= Sh::W) continue;
            float xf[V];
            dw_load<TX, V>(xr + wc * Sh::C, xf);
            // every (output j, tap s) that reads this column: j*SW + s*DW == col (compile time)
#pragma unroll
            for (int j = 0; j < TQ; j++)
#pragma unroll
                for (int s = 0; s < Sh::S; s++)
                    if (j * Sh::SW + s * Sh::DW == col)
#pragma unroll
                        for (int i = 0; i < V; i++) acc[j][i] = fmaf(xf[i], wf[s][i], acc[j][i]);
        }
    }
    // every output first, then the stores (their inline PTX would otherwise reload the bias)
    const i64 o0 = ((i64)np * Sh::Q + q0) * Sh::C + c0;
    TY yv[TQ][V];
#pragma unroll
    for (int j = 0; j < TQ; j++)
        if (q0 + j < Sh::Q) // (a residual past the row's end may be past the tensor's)
#pragma unroll
            for (int i = 0; i < V; i++)
                yv[j][i] = from_f32<TY>(Epi::apply(bias, res, c0 + i, o0 + j * Sh::C + i, acc[j][i]));
#pragma unroll
    for (int j = 0; j < TQ; j++)
        if (q0 + j < Sh::Q) dw_store<TY, V>(y + o0 + j * Sh::C, yv[j]);
}

// NCHW: x [N][C][H][W], y [N][C][P][Q], weights as ONNX stores them ([C][1][R][S]). Consecutive
// threads take consecutive TQ-column groups of one output row (n, c, p): a warp's loads and
// stores cover contiguous runs of the row.
template <class Sh, int TQ>
__host__ __device__ constexpr i64 conv_dw_nchw_threads() {
    return (i64)Sh::N * Sh::C * Sh::P * ((Sh::Q + TQ - 1) / TQ);
}

template <class Sh, int TQ, class Epi, typename TX, typename TW, typename TY>
__device__ __forceinline__ void conv_dw_nchw(const TX *__restrict__ x, const TW *__restrict__ w,
                                             const typename Epi::bias_t *bias, const typename Epi::res_t *res,
                                             TY *__restrict__ y) {
    constexpr int QB = (Sh::Q + TQ - 1) / TQ, SPAN = dw_span<Sh, TQ>::value;
    const int t = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (t >= (int)conv_dw_nchw_threads<Sh, TQ>()) return;
    const int qb = t % QB, row = t / QB; // row = (n * C + c) * P + p
    const int p = row % Sh::P, nc = row / Sh::P, c = nc % Sh::C;
    const int q0 = qb * TQ;
    const int h0 = p * Sh::SH - Sh::PH, w0 = q0 * Sh::SW - Sh::PW;
    float acc[TQ];
#pragma unroll
    for (int j = 0; j < TQ; j++) acc[j] = 0.0f;
    const TX *xc = x + (i64)nc * Sh::H * Sh::W;
    const TW *wc = w + c * Sh::R * Sh::S;
#pragma unroll
    for (int r = 0; r < Sh::R; r++) {
        const int h = h0 + r * Sh::DH;
        if (h < 0 || h >= Sh::H) continue;
        float wf[Sh::S];
#pragma unroll
        for (int s = 0; s < Sh::S; s++) wf[s] = to_f32(wc[r * Sh::S + s]);
        const TX *xr = xc + h * Sh::W;
#pragma unroll
        for (int col = 0; col < SPAN; col++) {
            const int wcol = w0 + col;
            if (wcol < 0 || wcol >= Sh::W) continue;
            const float xf = to_f32(xr[wcol]);
#pragma unroll
            for (int j = 0; j < TQ; j++)
#pragma unroll
                for (int s = 0; s < Sh::S; s++)
                    if (j * Sh::SW + s * Sh::DW == col) acc[j] = fmaf(xf, wf[s], acc[j]);
        }
    }
#pragma unroll
    for (int j = 0; j < TQ; j++) {
        const int q = q0 + j;
        if (q >= Sh::Q) break;
        const i64 o = (i64)row * Sh::Q + q;
        y[o] = from_f32<TY>(Epi::apply(bias, res, c, o, acc[j]));
    }
}

} // namespace kiln
