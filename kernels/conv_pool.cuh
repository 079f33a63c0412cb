// conv_pool.cuh — a network's stem as one kernel: a stride-2 convolution over an input with few
// channels (C <= 4, ResNet's 7x7 over RGB), its bias and ReLU, and the 3x3 stride-2 MaxPool
// (padding 1) that follows it, for sm_80+ (mma.sync.m16n8k16, fp16 in, fp32 accumulation),
// emitted by codegen/cg_conv_pool.c for groups made by passes/fuse_conv_pool.c.
//
//     conv_pool_f16<SH, RELU>(x, w, bias, y, smem)
//     conv_pool_wg_f16<SH, RELU>(x, wwg, bias, y, smem)   (sm_90a, wgmma; below)
//
// x NHWC fp16 [N][H][W][C] (or, XT = float, the float32 NCHW graph input whose fp16 Cast was fused:
// the kernel converts its rows itself), w fp16 [64][KP] (the packed depth below, zero where no tap is), bias
// fp32 [64], y NHWC fp16 [N][H2][W2][64]: the conv's own output (4x the pooled bytes) is never
// written. SH is a generated struct of `static constexpr int`: N, H, W, C, R, S, PH, PW, P, Q (the
// conv's output), H2, W2 (the pool's), BP (pooled rows a block), NB (blocks an image), NT (n8
// tiles a warp: the conv row's Q pixels padded to 16 * NT), FRONT, SEG, KS, PITCH, ROWS (below).
//
// Why this shape. The conv's output row p is a 64 x Q matrix = W'[64][K] x B[K][Q] with the
// depth packed per kernel row r: the S * C values x[2p - PH + r][2q - PW + s][c] of output pixel q
// are one contiguous run of the NHWC input row. So B is never built: a block keeps its input rows
// in shared memory ([PITCH] halves a row, x's (col, c) at OFF + C * col + c, zero columns around)
// and each mma B register (two depth values of one pixel) is one 32-bit shared load from the row.
// A kernel row's run is FRONT (0 or 1: a zero-weight value in front keeps every pair 4-byte
// aligned) + S * C values, padded to SEG (even); K = R * SEG, padded to KS * 16 (ResNet: 22 a row,
// 154 -> 160 of depth for 147 multiply-adds a pixel and channel).
//
// Work split: a block (4 warps) takes BP pooled rows of one image, i.e. the conv rows 2 * i0 - 1
// .. 2 * i1 + 1 (one recomputed with the neighbouring block), one after the other. Warp w owns
// output channels 32 * (w % 2) .. +31 (its weights stay in registers for the whole kernel) and
// pixels 8 * NT * (w / 2) .. +8 * NT - 1. MaxPool is done on the accumulators: a thread holds
// pixels 2m, 2m + 1 of its channels (the mma C layout), so pooled column m = max(2m - 1, 2m,
// 2m + 1) takes 2m - 1 from the lane before (one warp shuffle; across the two pixel halves through
// shared memory); pooled row i = max over conv rows 2i - 1, 2i, 2i + 1 is kept in registers (fp32,
// before the bias) as the block walks down its rows. Bias and ReLU commute with max (the same constant a channel, a
// monotonic function), and fp16 rounding is monotonic, so the result is bit for bit the
// unfused conv -> relu -> maxpool on the same accumulators. A pooled row is staged in shared
// memory and stored as contiguous 16-byte chunks.
//
// fp16 input rows arrive by cp.async in three commit groups (the first two conv rows' input, the next
// four's, the rest), so the first mma waits only for the first few rows; float32 rows (XT = float)
// are loaded two rows ahead, issued after a row's mma and stored after its epilogue.
#pragma once

#include "kiln_common.cuh"
#include "mma.cuh"
#include "conv_nhwc.cuh"
#include "conv_wgmma.cuh"

namespace kiln {

constexpr int conv_pool_off = 16;   // halves before input column 0 in a shared row (zeros)
constexpr int conv_pool_stage = 72; // halves a pooled pixel in the output staging (64 + 8: banks)

// Shared bytes of conv_pool_f16: ROWS input rows, the output staging, the exchange words.
#define KILN_CONV_POOL_SMEM_BYTES(ROWS, PITCH, W2P) ((ROWS) * (PITCH) * 2 + (W2P) * 72 * 2 + 2 * 2 * 2 * 32 * 4)

__device__ __forceinline__ unsigned short conv_pool_h(float v) { return __half_as_ushort(__float2half_rn(v)); }

// x float32 NCHW (the graph input, its fp16 Cast fused): shared rows [r0, r1) (at most two) are input
// rows y0 + r of image n, VEC floats of one channel an item, converted when stored; rows outside the
// image are zeros. Load and store are split so the loads' latency hides under other work.
template <class SH, int VEC, int ITEMS, int NTH = 128>
__device__ __forceinline__ void conv_pool_f32_load(const float *x, int n, int y0, int r0, int r1, int tid,
                                                   float (&v)[ITEMS][VEC]) {
    constexpr int PER_ROW = SH::C * (SH::W / VEC);
#pragma unroll
    for (int it = 0; it < ITEMS; it++) {
        const int i = tid + NTH * it, rr = r0 + i / PER_ROW, c = (i % PER_ROW) / (SH::W / VEC), k = i % (SH::W / VEC);
        const int iy = y0 + rr;
        const bool in = i < (r1 - r0) * PER_ROW && iy >= 0 && iy < SH::H;
        const float *src = x + (((i64)n * SH::C + c) * SH::H + (in ? iy : 0)) * SH::W + VEC * k;
#pragma unroll
        for (int u = 0; u < VEC; u++) v[it][u] = 0.0f;
        if (in) {
            if constexpr (VEC == 4) {
                const float4 f = *reinterpret_cast<const float4 *>(src);
                v[it][0] = f.x, v[it][1] = f.y, v[it][2] = f.z, v[it][3] = f.w;
            } else {
                v[it][0] = src[0];
            }
        }
    }
}
template <class SH, int VEC, int ITEMS, int NTH = 128>
__device__ __forceinline__ void conv_pool_f32_store(unsigned short *rows, int r0, int r1, int tid, const float (&v)[ITEMS][VEC]) {
    constexpr int PER_ROW = SH::C * (SH::W / VEC);
#pragma unroll
    for (int it = 0; it < ITEMS; it++) {
        const int i = tid + NTH * it, rr = r0 + i / PER_ROW, c = (i % PER_ROW) / (SH::W / VEC), k = i % (SH::W / VEC);
        if (i >= (r1 - r0) * PER_ROW) continue;
#pragma unroll
        for (int u = 0; u < VEC; u++)
            rows[rr * SH::PITCH + conv_pool_off + SH::C * (VEC * k + u) + c] = __half_as_ushort(__float2half_rn(v[it][u]));
    }
}

template <class SH, bool RELU, class XT, int NTH = 128>
__device__ __forceinline__ void conv_pool_f16(const XT *__restrict__ x, const __half *__restrict__ w,
                                              const float *__restrict__ bias, __half *__restrict__ y,
                                              unsigned char *smem) {
    constexpr int C = SH::C, R = SH::R, NT = SH::NT, KS = SH::KS, SEG = SH::SEG, PITCH = SH::PITCH;
    constexpr int KP = KS * 16, QH = 8 * NT, W2P = 4 * NT * 2, ROWS = SH::ROWS;
    constexpr int CB = NTH / 64, MI = 4 / CB; // channel blocks (warps = 2 pixel halves x CB), m16 tiles a warp
    static_assert(NTH == 128 || NTH == 256, "4 or 8 warps");
    static_assert(SH::FRONT + SH::S * C <= SEG && SEG % 2 == 0 && R * SEG <= KP, "packed depth");
    static_assert(conv_pool_off % 2 == 0 && (C * SH::PW + SH::FRONT) % 2 == 0 && C * SH::PW + SH::FRONT <= conv_pool_off,
                  "pairs 4-byte aligned, the first pixel's run inside the row");
    static_assert(PITCH % 8 == 0 && PITCH >= conv_pool_off + C * SH::W, "row pitch");
    static_assert(conv_pool_off + C * (2 * (2 * QH - 1) - SH::PW) - SH::FRONT + SEG <= PITCH, "last run in the row");
    static_assert(2 * QH >= SH::Q && W2P >= SH::W2, "pixel halves");
    constexpr bool F32X = !conv_nhwc_is_half<XT>::value; // x float32 NCHW: its Cast fused
    constexpr int VEC = SH::W % 4 == 0 ? 4 : 1, F32_ITEMS = (2 * C * (SH::W / VEC) + NTH - 1) / NTH; // two rows' items a thread
    unsigned short *rows = reinterpret_cast<unsigned short *>(smem);
    unsigned short *stage = rows + ROWS * PITCH;
    float *xch = reinterpret_cast<float *>(stage + W2P * conv_pool_stage); // [row parity][m16][cb][16]

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3, cb = warp % CB, ph = warp / CB;
    const int n = blockIdx.x / SH::NB, i0 = (blockIdx.x % SH::NB) * SH::BP;
    const int i1 = (i0 + SH::BP < SH::H2 ? i0 + SH::BP : SH::H2) - 1;
    const int rs = 2 * i0 - 1, cr = 2 * (i1 - i0) + 3; // first conv row, conv rows
    const int y0 = 2 * rs - SH::PH;                     // the input row of shared row 0

    // ---- input rows: zero borders; fp16 x by cp.async in three groups, float32 x two rows at a time
    {
        constexpr int CW = C * SH::W, TAIL = PITCH - conv_pool_off - CW;
        for (int i = tid; i < ROWS * (conv_pool_off + TAIL); i += NTH) {
            const int rr = i / (conv_pool_off + TAIL), e = i % (conv_pool_off + TAIL);
            rows[rr * PITCH + (e < conv_pool_off ? e : conv_pool_off + CW + (e - conv_pool_off))] = 0;
        }
        const int last = 2 * (cr - 1) + R; // shared rows in use
        if constexpr (F32X) { // the first two conv rows' input now, the rest two rows ahead in the row loop
            const int first = 2 + R < last ? 2 + R : last;
            for (int r = 0; r < first; r += 2) {
                float v[F32_ITEMS][VEC];
                conv_pool_f32_load<SH, VEC, F32_ITEMS, NTH>(x, n, y0, r, r + 2 < first ? r + 2 : first, tid, v);
                conv_pool_f32_store<SH, VEC, F32_ITEMS, NTH>(rows, r, r + 2 < first ? r + 2 : first, tid, v);
            }
        }
        const int ends[3] = {2 * 1 + R < last ? 2 * 1 + R : last, 2 * 5 + R < last ? 2 * 5 + R : last, last};
        int from = 0;
#pragma unroll
        for (int grp = 0; grp < 3; grp++) {
            const int to = ends[grp];
            if constexpr (F32X) {
                break;
            } else if constexpr (CW % 8 == 0) {
                constexpr int CH = CW / 8; // 16-byte chunks a row
                for (int i = tid; i < (to - from) * CH; i += NTH) {
                    const int rr = from + i / CH, ck = i % CH, iy = y0 + rr;
                    const bool in = iy >= 0 && iy < SH::H;
                    const __half *src = x + (((i64)n * SH::H + (in ? iy : 0)) * SH::W) * C + ck * 8;
                    cp_async16(rows + rr * PITCH + conv_pool_off + ck * 8, src, in);
                }
            } else {
                for (int i = tid; i < (to - from) * CW; i += NTH) {
                    const int rr = from + i / CW, e = i % CW, iy = y0 + rr;
                    rows[rr * PITCH + conv_pool_off + e] =
                        iy >= 0 && iy < SH::H ? __half_as_ushort(x[(((i64)n * SH::H + iy) * SH::W) * C + e]) : 0;
                }
            }
            cp_async_commit();
            from = to;
        }
    }

    // ---- this warp's weights as mma A fragments, for the whole kernel
    u32 a[KS][MI][4];
    {
        const unsigned short *wh = reinterpret_cast<const unsigned short *>(w);
#pragma unroll
        for (int ks = 0; ks < KS; ks++)
#pragma unroll
            for (int mi = 0; mi < MI; mi++) {
                const int ch = 16 * (MI * cb + mi) + g, k = 16 * ks + 2 * t;
                a[ks][mi][0] = ld_pair(wh + (i64)ch * KP + k);
                a[ks][mi][1] = ld_pair(wh + (i64)(ch + 8) * KP + k);
                a[ks][mi][2] = ld_pair(wh + (i64)ch * KP + k + 8);
                a[ks][mi][3] = ld_pair(wh + (i64)(ch + 8) * KP + k + 8);
            }
    }
    float bz[MI][2];
#pragma unroll
    for (int mi = 0; mi < MI; mi++) bz[mi][0] = bias[16 * (MI * cb + mi) + g], bz[mi][1] = bias[16 * (MI * cb + mi) + g + 8];

    // Shared offsets (halves, from a conv row's first input row) of this lane's B pairs per k16
    // step: depth k = 16 ks + 2t (+ 8) -> kernel row k / SEG, run element k % SEG; the padding past
    // R * SEG has zero weights and reads any finite value (row R - 1).
    int koff[KS][2];
#pragma unroll
    for (int ks = 0; ks < KS; ks++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int k = 16 * ks + 2 * t + 8 * h, r = k / SEG;
            koff[ks][h] = (r < R ? r : R - 1) * PITCH + k % SEG;
        }
    const int q0 = QH * ph;                                               // the warp's first pixel
    const int pix = conv_pool_off - C * SH::PW - SH::FRONT + 2 * C * (q0 + g); // lane's run start, tile 0

    // the pooled row in progress, before bias and ReLU: [m16][n8][channel g / g + 8]
    float cur[MI][NT][2];
#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int j = 0; j < NT; j++) cur[mi][j][0] = cur[mi][j][1] = neg_inf();
    constexpr bool FULL = 2 * QH == SH::Q; // no pixel past Q (ResNet: 112 = 2 x 56)
    const int src = t == 0 ? lane + 3 : lane - 1; // the lane holding this lane's pixel 2m - 1

    for (int tr = 0; tr < cr; tr++) {
        if (tr == 0) {
            cp_async_wait<2>();
            __syncthreads();
        } else if (tr == 2) {
            cp_async_wait<1>();
            __syncthreads();
        } else if (tr == 6) {
            cp_async_wait<0>();
            __syncthreads();
        }
        const int p = rs + tr;
        const bool emit = !(tr & 1) && tr > 0; // conv row p = 2i + 1 ends pooled row i (and starts i + 1)
        if (p >= 0 && p < SH::P) {             // (the same for the whole block)
            float acc[MI][NT][4];
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
#pragma unroll
                for (int j = 0; j < NT; j++) acc[mi][j][0] = acc[mi][j][1] = acc[mi][j][2] = acc[mi][j][3] = 0.0f;
            const unsigned short *rb = rows + 2 * tr * PITCH + pix;
#pragma unroll
            for (int ks = 0; ks < KS; ks++) {
                u32 b[NT][2];
#pragma unroll
                for (int j = 0; j < NT; j++) {
                    b[j][0] = ld_pair(rb + koff[ks][0] + 16 * C * j);
                    b[j][1] = ld_pair(rb + koff[ks][1] + 16 * C * j);
                }
                warp_mma<mma_f16, MI, NT>(acc, a[ks], b);
            }
            // (x float32: the input rows of conv row tr + 2 load under this row's epilogue)
            float xv[F32X ? F32_ITEMS : 1][F32X ? VEC : 1];
            const int nr0 = 2 * tr + R + 2, nr1 = nr0 + 2 < 2 * (cr - 1) + R ? nr0 + 2 : 2 * (cr - 1) + R;
            if constexpr (F32X) conv_pool_f32_load<SH, VEC, F32_ITEMS, NTH>(x, n, y0, nr0, nr1, tid, xv);
            if constexpr (!FULL) // pixels past Q drop out of every max
#pragma unroll
                for (int j = 0; j < NT; j++)
#pragma unroll
                    for (int mi = 0; mi < MI; mi++) {
                        const int q = q0 + 8 * j + 2 * t;
                        if (q >= SH::Q) acc[mi][j][0] = acc[mi][j][2] = neg_inf();
                        if (q + 1 >= SH::Q) acc[mi][j][1] = acc[mi][j][3] = neg_inf();
                    }
            // Maxima are taken before the bias (a constant a channel) is added: the same as after.
            float *xw = xch + (tr & 1) * 64; // [m16][cb][channel g / g + 8]
            if (ph == 0 && t == 3)           // pixel QH - 1, for the other half's pooled column QH / 2
#pragma unroll
                for (int mi = 0; mi < MI; mi++)
                    xw[(MI * cb + mi) * 16 + g] = acc[mi][NT - 1][1], xw[(MI * cb + mi) * 16 + 8 + g] = acc[mi][NT - 1][3];
            __syncthreads(); // the exchange words are written
            // pooled column m = max(pixel 2m - 1, 2m, 2m + 1); 2m - 1 is lane t - 1's odd pixel (t > 0) or
            // lane t + 3's odd pixel of the previous n8 tile (t == 0): one shuffle, lane 3 sending that one
            float po[MI][2];
#pragma unroll
            for (int j = 0; j < NT; j++)
#pragma unroll
                for (int mi = 0; mi < MI; mi++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const float e = acc[mi][j][2 * h], o = acc[mi][j][2 * h + 1];
                        const float r = __shfl_sync(0xffffffffu, t == 3 && j > 0 ? po[mi][h] : o, src);
                        po[mi][h] = o;
                        const float prev =
                            t != 0 || j > 0 ? r : ph ? xw[(MI * cb + mi) * 16 + 8 * h + g] : neg_inf();
                        const float hm = fmaxf(prev, fmaxf(e, o));
                        if (!emit) {
                            cur[mi][j][h] = fmaxf(cur[mi][j][h], hm);
                            continue;
                        }
                        float v = fmaxf(cur[mi][j][h], hm) + bz[mi][h];
                        if (RELU) v = fmaxf(v, 0.0f);
                        stage[(4 * NT * ph + 4 * j + t) * conv_pool_stage + 16 * (MI * cb + mi) + 8 * h + g] = conv_pool_h(v);
                        cur[mi][j][h] = hm;
                    }
            if constexpr (F32X) conv_pool_f32_store<SH, VEC, F32_ITEMS, NTH>(rows, nr0, nr1, tid, xv);
        } else { // a conv row past the image: -inf
            if constexpr (F32X) {
                float xv[F32_ITEMS][VEC];
                const int nr0 = 2 * tr + R + 2, nr1 = nr0 + 2 < 2 * (cr - 1) + R ? nr0 + 2 : 2 * (cr - 1) + R;
                conv_pool_f32_load<SH, VEC, F32_ITEMS, NTH>(x, n, y0, nr0, nr1, tid, xv);
                conv_pool_f32_store<SH, VEC, F32_ITEMS, NTH>(rows, nr0, nr1, tid, xv);
            }
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
#pragma unroll
                for (int j = 0; j < NT; j++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        if (emit) {
                            float v = cur[mi][j][h] + bz[mi][h];
                            if (RELU) v = fmaxf(v, 0.0f);
                            stage[(4 * NT * ph + 4 * j + t) * conv_pool_stage + 16 * (MI * cb + mi) + 8 * h + g] =
                                conv_pool_h(v);
                        }
                        cur[mi][j][h] = neg_inf();
                    }
        }
        if (emit) {
            const int i = i0 + tr / 2 - 1; // the finished pooled row
            __syncthreads();               // the staged row is complete
            constexpr int CHUNKS = SH::W2 * 8; // 16 bytes = 8 channels
            __half *yr = y + (((i64)n * SH::H2 + i) * SH::W2) * 64;
            for (int c = tid; c < CHUNKS; c += NTH)
                *reinterpret_cast<conv_nhwc_v8h *>(yr + c * 8) =
                    *reinterpret_cast<const conv_nhwc_v8h *>(stage + (c / 8) * conv_pool_stage + (c % 8) * 8);
            __syncthreads(); // the staging is read before the next row writes it
        }
    }
}

// ---- the wgmma variant (sm_90a): conv_pool_wg_f16<SH, RELU, XT>(x, w, bias, y, smem) ----
//
// The same block (one warpgroup, BP pooled rows of one image), results and epilogue as
// conv_pool_f16, but the conv row p = W'[64][K] x B[K][NW] is KW k16 steps of
// wgmma.m64nNWk16 (NW = 64 or 112 >= Q pixels), weights as A in registers (w: the emitter's
// second packing, [64][16 KW] in the steps' chunk order), B from shared memory through
// descriptors. B's depth is ordered by (tap s, chunk j): chunk j of tap s of pixel q is
// the 8 values x[2p - PH + r][2q - PW + s][c] for the pairs (r, c) 8j .. 8j + 7 (pair = r * C +
// c; pairs >= R * C are zero weights), one 16-byte entry. Pixel q's input column for tap s is
// x' = 2q + s (x' = column + PW), so with the entries of each column parity in their own
// "plane", plane[s % 2][j][e] for x' = 2e + s % 2, tap s of pixels q .. q + 7 is the 8 entries
// from e = q + s / 2: one no-swizzle K-major core matrix, 128 contiguous bytes, and the next 8
// pixels the next 128 (stride byte offset 128). Each k16 step takes two chunks, the second at
// the leading byte offset from the first: the emitter orders the chunks by address and pairs
// them (SH::ka, SH::kl; an odd count gets a zero-weight dummy that points at chunk 0). ResNet's
// 7x7 over RGB: 21 pairs -> J = 3 chunks a tap, 21 chunks, 11 steps, 176 of depth for 147.
//
// The planes of conv row p (2 * J * E entries, E = NW + (S - 1) / 2) are built from a "strip":
// the block's input, column by column: slot par * E + e holds x' = 2e + par, its ROWS input rows
// x C channels contiguous (pitch SP halves, SP / 2 odd: the threads of a warp read consecutive
// slots without bank conflicts), so conv row tr's R * C values of a column are one run of words
// from 2 tr C. Two plane buffers: row tr + 1's planes are built while row tr's wgmmas run; then
// the block waits, pools as conv_pool_f16 does (the wgmma accumulator holds pixels 8j + 2t, + 1 of
// channels g, g + 8 of the warp's 16: a whole conv row is in each warp, no exchange between
// warps) and stages the pooled row. float32 x: the first two conv rows' input rows are loaded in
// one go, then two rows for conv row tr + 2 under conv row tr's wgmmas and pooling.
// Why no deeper overlap: a second accumulator set (pooling one row under the next row's wgmmas)
// does not fit two blocks' registers, and rows as two halves of 56 pixels, one half's wgmmas under
// the other's pooling, ran slower (docs/gpu.md, fifteenth session).
#define KILN_CONV_POOL_WG_SMEM_BYTES(E, SP, J, NW) (2 * 2 * (J) * (E) * 16 + (NW) / 2 * 72 * 2 + 2 * (E) * (SP) * 2)

template <class SH, int VEC, int ITEMS>
__device__ __forceinline__ void conv_pool_wg_f32_store(unsigned short *strip, int r0, int r1, int tid, const float (&v)[ITEMS][VEC]) {
    constexpr int PER_ROW = SH::C * (SH::W / VEC);
#pragma unroll
    for (int it = 0; it < ITEMS; it++) {
        const int i = tid + 128 * it, rr = r0 + i / PER_ROW, c = (i % PER_ROW) / (SH::W / VEC), k = i % (SH::W / VEC);
        if (i >= (r1 - r0) * PER_ROW) continue;
#pragma unroll
        for (int u = 0; u < VEC; u++) {
            const int xs = VEC * k + u + SH::PW; // x'
            if (xs < 2 * SH::E)
                strip[((xs & 1) * SH::E + (xs >> 1)) * SH::SP + rr * SH::C + c] = __half_as_ushort(__float2half_rn(v[it][u]));
        }
    }
}

template <class SH, bool RELU, class XT>
__device__ __forceinline__ void conv_pool_wg_f16(const XT *__restrict__ x, const __half *__restrict__ w,
                                                 const float *__restrict__ bias, __half *__restrict__ y,
                                                 unsigned char *smem) {
#if defined(KILN_HAVE_WGMMA) || defined(KILN_EMU_WGMMA)
    constexpr int C = SH::C, R = SH::R, NW = SH::NW, NJ = NW / 8, E = SH::E, J = SH::J, SP = SH::SP, KW = SH::KW;
    constexpr int RC = R * C, WN = (RC + 1) / 2, PLANE = E * 16, BUF = 2 * J * PLANE;
    static_assert(NW == 64 || NW == 112, "wgmma N");
    static_assert(NW >= SH::Q && E == NW + (SH::S - 1) / 2 && J == (RC + 7) / 8 && 2 * KW >= SH::S * J, "planes");
    static_assert(SP % 2 == 0 && (SP / 2) % 2 == 1 && SP >= SH::ROWS * C && SP >= 2 * (2 * SH::BP) * C + 2 * WN, "strip");
    constexpr bool F32X = !conv_nhwc_is_half<XT>::value;
    constexpr int VEC = SH::W % 4 == 0 ? 4 : 1, F32_ITEMS = (2 * C * (SH::W / VEC) + 127) / 128;
    unsigned char *planes = smem;
    unsigned short *stage = reinterpret_cast<unsigned short *>(smem + 2 * BUF);
    unsigned short *strip = stage + NW / 2 * conv_pool_stage;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int n = blockIdx.x / SH::NB, i0 = (blockIdx.x % SH::NB) * SH::BP;
    const int i1 = (i0 + SH::BP < SH::H2 ? i0 + SH::BP : SH::H2) - 1;
    const int rs = 2 * i0 - 1, cr = 2 * (i1 - i0) + 3; // first conv row, conv rows
    const int y0 = 2 * rs - SH::PH;                     // the input row of strip row 0
    const int last = 2 * (cr - 1) + R;                  // strip rows in use

    // ---- the strip: zeros (padding columns, rows outside the image, the over-read), then the rows
    for (int i = tid; i < E * SP; i += 128) reinterpret_cast<u32 *>(strip)[i] = 0u;
    __syncthreads();
    if constexpr (F32X) { // the first two conv rows' input now, in one go (one memory round trip: 2 us less than
        // two rows at a time for ResNet-50 b32), the rest two rows ahead in the row loop
        const int first = 2 + R < last ? 2 + R : last;
        constexpr int FIRST_ITEMS = ((2 + R) * C * (SH::W / VEC) + 127) / 128;
        float v[FIRST_ITEMS][VEC];
        conv_pool_f32_load<SH, VEC, FIRST_ITEMS>(x, n, y0, 0, first, tid, v);
        conv_pool_wg_f32_store<SH, VEC, FIRST_ITEMS>(strip, 0, first, tid, v);
    } else { // fp16 NHWC x: every row now (not the network's hot path: the graph input is float32)
        for (int i = tid; i < last * SH::W * C; i += 128) {
            const int rr = i / (SH::W * C), col = (i / C) % SH::W, c = i % C, iy = y0 + rr, xs = col + SH::PW;
            if (iy >= 0 && iy < SH::H && xs < 2 * E)
                strip[((xs & 1) * E + (xs >> 1)) * SP + rr * C + c] =
                    __half_as_ushort(x[(((i64)n * SH::H + iy) * SH::W + col) * C + c]);
        }
    }

    // ---- this warp's weights (output channels 16 warp .. + 15) as wgmma A fragments
    u32 a[KW][4];
    {
        const unsigned short *wh = reinterpret_cast<const unsigned short *>(w);
        const int ch = 16 * warp + g;
#pragma unroll
        for (int ks = 0; ks < KW; ks++) {
            const int k = 16 * ks + 2 * t;
            a[ks][0] = ld_pair(wh + (i64)ch * (16 * KW) + k);
            a[ks][1] = ld_pair(wh + (i64)(ch + 8) * (16 * KW) + k);
            a[ks][2] = ld_pair(wh + (i64)ch * (16 * KW) + k + 8);
            a[ks][3] = ld_pair(wh + (i64)(ch + 8) * (16 * KW) + k + 8);
        }
    }
    const float bz[2] = {bias[16 * warp + g], bias[16 * warp + g + 8]};

    // conv row trr's planes into buffer b: slot idx of the strip is x' = 2e + par, entry e of plane par
    auto build = [&](int trr, int b) {
        unsigned char *pb = planes + b * BUF;
        for (int idx = tid; idx < 2 * E; idx += 128) {
            const int par = idx >= E, e = idx - par * E;
            const u32 *col = reinterpret_cast<const u32 *>(strip + idx * SP + 2 * trr * C);
            u32 v[4 * J];
#pragma unroll
            for (int k = 0; k < 4 * J; k++) v[k] = k < RC / 2 ? col[k] : 0u;
            if constexpr (RC & 1) // the run's last value alone (the next half is the next row's, maybe being written)
                v[RC / 2] = reinterpret_cast<const unsigned short *>(col)[RC - 1];
#pragma unroll
            for (int j = 0; j < J; j++) {
                u32 *d = reinterpret_cast<u32 *>(pb + (par * J + j) * PLANE + e * 16);
#ifdef KILN_EMU
                d[0] = v[4 * j], d[1] = v[4 * j + 1], d[2] = v[4 * j + 2], d[3] = v[4 * j + 3];
#else
                *reinterpret_cast<uint4 *>(d) = make_uint4(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]);
#endif
            }
        }
    };
    __syncthreads(); // the strip's first rows
    build(0, 0);
    fence_proxy_async(); // generic-proxy plane writes, before wgmma (async proxy) reads them
    __syncthreads();

    float cur[NJ][2]; // the pooled row in progress, before bias and ReLU: [n8][channel g / g + 8]
#pragma unroll
    for (int j = 0; j < NJ; j++) cur[j][0] = cur[j][1] = neg_inf();
    constexpr bool FULL = NW == SH::Q;
    const int src = t == 0 ? lane + 3 : lane - 1; // the lane holding this lane's pixel 2m - 1

    for (int tr = 0; tr < cr; tr++) {
        const int p = rs + tr;
        const bool emit = !(tr & 1) && tr > 0; // conv row p = 2i + 1 ends pooled row i (and starts i + 1)
        const bool valid = p >= 0 && p < SH::P; // (the same for the whole block)
        float acc[NW / 2];
        if (valid) {
#pragma unroll
            for (int i = 0; i < NW / 2; i++) acc[i] = 0.0f;
            wgmma_pin<NW / 2>(acc);
            wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < KW; ks++) {
                wgmma_rs_f16<NW>::run(acc, a[ks], wgmma_desc(planes + (tr & 1) * BUF + SH::ka(ks), SH::kl(ks), 128));
            }
            wgmma_commit();
        }
        if (tr + 1 < cr) build(tr + 1, (tr + 1) & 1); // under this row's wgmmas
        float xv[F32X ? F32_ITEMS : 1][F32X ? VEC : 1];
        const int nr0 = 2 * tr + R + 2, nr1 = nr0 + 2 < last ? nr0 + 2 : last;
        if constexpr (F32X) conv_pool_f32_load<SH, VEC, F32_ITEMS>(x, n, y0, nr0, nr1, tid, xv);
        if (valid) {
            wgmma_wait<0>();
            wgmma_pin<NW / 2>(acc);
            if constexpr (!FULL) // pixels past Q drop out of every max
#pragma unroll
                for (int j = 0; j < NJ; j++) {
                    const int q = 8 * j + 2 * t;
                    if (q >= SH::Q) acc[4 * j] = acc[4 * j + 2] = neg_inf();
                    if (q + 1 >= SH::Q) acc[4 * j + 1] = acc[4 * j + 3] = neg_inf();
                }
            // pooled column m = 4 j + t = max(pixel 2m - 1, 2m, 2m + 1): as in conv_pool_f16, the whole
            // row is in the warp (the wgmma accumulator: pixels 8 j + 2 t, + 1 of channels g, g + 8)
            float po[2];
#pragma unroll
            for (int j = 0; j < NJ; j++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const float e = acc[4 * j + 2 * h], o = acc[4 * j + 2 * h + 1];
                    const float r = __shfl_sync(0xffffffffu, t == 3 && j > 0 ? po[h] : o, src);
                    po[h] = o;
                    const float prev = t != 0 || j > 0 ? r : neg_inf();
                    const float hm = fmaxf(prev, fmaxf(e, o));
                    if (!emit) {
                        cur[j][h] = fmaxf(cur[j][h], hm);
                        continue;
                    }
                    float v = fmaxf(cur[j][h], hm) + bz[h];
                    if (RELU) v = fmaxf(v, 0.0f);
                    stage[(4 * j + t) * conv_pool_stage + 16 * warp + 8 * h + g] = conv_pool_h(v);
                    cur[j][h] = hm;
                }
        } else { // a conv row past the image: -inf
#pragma unroll
            for (int j = 0; j < NJ; j++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    if (emit) {
                        float v = cur[j][h] + bz[h];
                        if (RELU) v = fmaxf(v, 0.0f);
                        stage[(4 * j + t) * conv_pool_stage + 16 * warp + 8 * h + g] = conv_pool_h(v);
                    }
                    cur[j][h] = neg_inf();
                }
        }
        if (emit) {
            const int i = i0 + tr / 2 - 1; // the finished pooled row
            __syncthreads();               // the staged row is complete
            constexpr int CHUNKS = SH::W2 * 8;
            __half *yr = y + (((i64)n * SH::H2 + i) * SH::W2) * 64;
            for (int c = tid; c < CHUNKS; c += 128)
                *reinterpret_cast<conv_nhwc_v8h *>(yr + c * 8) =
                    *reinterpret_cast<const conv_nhwc_v8h *>(stage + (c / 8) * conv_pool_stage + (c % 8) * 8);
        }
        if constexpr (F32X) conv_pool_wg_f32_store<SH, VEC, F32_ITEMS>(strip, nr0, nr1, tid, xv);
        fence_proxy_async(); // row tr + 1's planes, for the wgmmas
        __syncthreads();     // ... and the strip rows and the staging, for everyone
    }
#else
    (void)x, (void)w, (void)bias, (void)y, (void)smem;
#endif
}


// ---- the warp-specialized wgmma variant (sm_90a): conv_pool_ws_f16<SH, RELU, XT>(x, w, bias, y, smem) ----
//
// conv_pool_wg_f16's rows, planes, wgmma steps and pooling, split over two warpgroups of a
// 256-thread block so that the tensor cores do not wait for the plane builds or the input:
//   warpgroup 1, the producer: the block's float32 input rows (pairs of rows by cp.async into a
//     ring of NS slots, D0 + 1 .. NS pairs ahead of the conv row being built), their conversion
//     into the strip, and each conv row's planes into one of two plane buffers;
//   warpgroup 0, the consumer: per conv row the 11 wgmmas, then the pooling and the stores of
//     the pooled rows, while the producer builds the next row's planes.
// Named barriers (bar.sync / bar.arrive, 256 threads: the producer arrives, the consumer waits,
// or the other way round): FULL[b] the planes of buffer b are built (after fence.proxy.async), EMPTY[b]
// the consumer's wgmmas that read buffer b have completed; PROD and CONS (128) are each
// warpgroup's own. No block-wide barrier: the two warpgroups meet only at FULL / EMPTY, so the
// consumer of one block pools while the other block's consumer (two blocks an SM) has its
// wgmmas in flight. Registers: launched at 128 a thread (two 256-thread blocks), the producer
// gives 56 to the consumer (setmaxnreg 72 / 184: accumulators 56, weights 44, pooled row 28).
// Inputs other than float32 rows of a multiple of 4 floats (fp16 x, odd widths) are loaded whole
// by the producer before the first row (not the network's hot path).
// KILN_WS_BULK: 1 (default) the ring is filled by bulk copies (cp.async.bulk, one thread, an mbarrier a
// slot), 0 by cp.async (LDGSTS, every producer thread). KILN_EXP_WS: diagnostics (wrong results):
// bits 1 no plane build, 2 no conversion, 4 no loads, 8 no proxy fence, 16 no pooling, 32 no wgmma.
#ifndef KILN_WS_BULK
#define KILN_WS_BULK 1
#endif
#ifndef KILN_EXP_WS
#define KILN_EXP_WS 0
#endif
// KILN_WS_VPOOL: 1 the consumer pools vertically first (horizontal max once a pooled row; its
// accumulators and the running maximum need 224 registers: the producer keeps KILN_WS_PREG = 32),
// 0 (default) horizontally first on every conv row, as conv_pool_wg_f16 (producer 72, consumer 184).
// VPOOL = 1 passed the emulator but gave wrong ResNet-50 outputs on the H100 (sixteenth session).
#ifndef KILN_WS_VPOOL
#define KILN_WS_VPOOL 0
#endif
#ifndef KILN_WS_PREG
#define KILN_WS_PREG (KILN_WS_VPOOL ? 32 : 72)
#endif
#define KILN_CONV_POOL_WS_BUFS 3 // plane buffers
#define KILN_CONV_POOL_WS_RING_OFF(E, SP, J, NW) \
    ((KILN_CONV_POOL_WS_BUFS * 2 * (J) * (E) * 16 + (NW) / 2 * 72 * 2 + 2 * (E) * (SP) * 2 + 15) / 16 * 16)
#define KILN_CONV_POOL_WS_SMEM_BYTES(E, SP, J, NW, RING) (KILN_CONV_POOL_WS_RING_OFF(E, SP, J, NW) + (RING) + 64)

#ifdef KILN_EMU
extern "C" void emu_bar_sync(int id, int count);
extern "C" void emu_bar_arrive(int id, int count);
inline void named_bar_sync(int id, int count) { emu_bar_sync(id, count); }
inline void named_bar_arrive(int id, int count) { emu_bar_arrive(id, count); }
template <int N> inline void setmaxnreg_dec() {}
template <int N> inline void setmaxnreg_inc() {}
// mbarriers under the emulator: the word counts completed phases; the copies are synchronous, issued
// right after the arrival (no yield between), so the arrival completes the phase; a waiter yields to
// the other threads until its phase has completed
extern "C" void emu_yield(void);
inline void pool_bulk_load(void *dst, const void *src, unsigned bytes, u64 *) { memcpy(dst, src, bytes); }
inline void pool_mbar_init(u64 *bar) { *bar = 0; }
inline void pool_mbar_expect(u64 *bar, unsigned) { ++*bar; }
inline void pool_mbar_wait(u64 *bar, unsigned parity) {
    while ((*(volatile u64 *)bar & 1) == parity) emu_yield();
}
#else
__device__ __forceinline__ void named_bar_sync(int id, int count) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int count) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
// one bulk copy (TMA engine, async proxy) global -> shared, completing bytes on the mbarrier bar
// (a u64 in shared memory); init (one arrival a phase), arrive with the phase's bytes, wait for a
// phase's parity
__device__ __forceinline__ unsigned pool_smem_addr(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void pool_bulk_load(void *dst, const void *src, unsigned bytes, u64 *bar) {
#if defined(KILN_HAVE_WGMMA)
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                     pool_smem_addr(dst)),
                 "l"(src), "r"(bytes), "r"(pool_smem_addr(bar))
                 : "memory");
#else
    (void)dst, (void)src, (void)bytes, (void)bar;
#endif
}
__device__ __forceinline__ void pool_mbar_init(u64 *bar) {
#if defined(KILN_HAVE_WGMMA)
    mbar_init(pool_smem_addr(bar), 1);
#else
    (void)bar;
#endif
}
__device__ __forceinline__ void pool_mbar_expect(u64 *bar, unsigned bytes) {
#if defined(KILN_HAVE_WGMMA)
    mbar_expect_tx(pool_smem_addr(bar), bytes);
#else
    (void)bar, (void)bytes;
#endif
}
__device__ __forceinline__ void pool_mbar_wait(u64 *bar, unsigned parity) {
#if defined(KILN_HAVE_WGMMA)
    mbar_wait(pool_smem_addr(bar), parity);
#else
    (void)bar, (void)parity;
#endif
}
template <int N> __device__ __forceinline__ void setmaxnreg_dec() {
#if defined(KILN_HAVE_WGMMA)
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
template <int N> __device__ __forceinline__ void setmaxnreg_inc() {
#if defined(KILN_HAVE_WGMMA)
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
#endif

template <class SH, bool RELU, class XT>
__device__ __forceinline__ void conv_pool_ws_f16(const XT *__restrict__ x, const __half *__restrict__ w,
                                                 const float *__restrict__ bias, __half *__restrict__ y,
                                                 unsigned char *smem) {
#if defined(KILN_HAVE_WGMMA) || defined(KILN_EMU_WGMMA)
    constexpr int C = SH::C, R = SH::R, NW = SH::NW, NJ = NW / 8, E = SH::E, J = SH::J, SP = SH::SP, KW = SH::KW;
    constexpr int RC = R * C, WN = (RC + 1) / 2, PLANE = E * 16, BUF = 2 * J * PLANE;
    static_assert(NW == 64 || NW == 112, "wgmma N");
    static_assert(NW >= SH::Q && E == NW + (SH::S - 1) / 2 && J == (RC + 7) / 8 && 2 * KW >= SH::S * J, "planes");
    static_assert(SP % 2 == 0 && (SP / 2) % 2 == 1 && SP >= SH::ROWS * C && SP >= 2 * (2 * SH::BP) * C + 2 * WN, "strip");
    constexpr bool F32X = !conv_nhwc_is_half<XT>::value;
    constexpr bool RING = F32X && SH::W % 4 == 0;      // float32 rows through the cp.async ring
    constexpr int NS = SH::NS, D0 = (R - 1) / 2;       // ring slots; conv row tr reads pairs tr .. tr + D0
    constexpr int W4 = SH::W / 4, PAIR_CHUNKS = 2 * C * W4; // 16-byte chunks a pair of rows
    static_assert(!RING || (NS >= D0 + 1 && SP >= (SH::ROWS + 1) * C), "ring: the first conv row's pairs, whole pairs in a slot");
    constexpr int NB = KILN_CONV_POOL_WS_BUFS;
    enum { FULL0 = 1, EMPTY0 = 1 + KILN_CONV_POOL_WS_BUFS, PROD = 1 + 2 * KILN_CONV_POOL_WS_BUFS, CONS = PROD + 1 };
    unsigned char *planes = smem;
    unsigned short *stage = reinterpret_cast<unsigned short *>(smem + NB * BUF);
    unsigned short *strip = stage + NW / 2 * conv_pool_stage;
    float *ring = reinterpret_cast<float *>(smem + KILN_CONV_POOL_WS_RING_OFF(E, SP, J, NW)); // [NS][2 rows][C][W]

    const int tid = threadIdx.x & 127, producer = threadIdx.x >= 128;
    const int n = blockIdx.x / SH::NB, i0 = (blockIdx.x % SH::NB) * SH::BP;
    const int i1 = (i0 + SH::BP < SH::H2 ? i0 + SH::BP : SH::H2) - 1;
    const int rs = 2 * i0 - 1, cr = 2 * (i1 - i0) + 3; // first conv row, conv rows
    const int y0 = 2 * rs - SH::PH;                     // the input row of strip row 0
    const int last = 2 * (cr - 1) + R;                  // strip rows in use

    if (producer) {
        setmaxnreg_dec<KILN_WS_PREG>();
        if constexpr (RING) { // the padding columns' slots (convert writes every row of the others, zeros included)
            constexpr int PADS = SH::PW + (2 * E - SH::W - SH::PW);
            for (int i = tid; i < PADS * (SP / 2); i += 128) {
                const int k = i / (SP / 2), xs = k < SH::PW ? k : SH::W + k;
                reinterpret_cast<u32 *>(strip + ((xs & 1) * E + (xs >> 1)) * SP)[i % (SP / 2)] = 0u;
            }
        } else {
            for (int i = tid; i < E * SP; i += 128) reinterpret_cast<u32 *>(strip)[i] = 0u;
        }
        const int npairs = (last + 1) / 2;
        u64 *bars = reinterpret_cast<u64 *>(ring + NS * 2 * C * SH::W); // [NS] mbarriers, one a ring slot
        // pair m (strip rows 2m, 2m + 1) into ring slot m % NS (LDGSTS: one commit group a pair, empty past the last)
        auto issue = [&](int m) {
            if (KILN_EXP_WS & 4) {
                if (!KILN_WS_BULK) cp_async_commit();
                return;
            }
            if (KILN_WS_BULK) { // thread 0: the pair's rows inside the image, channel by channel
                if (m >= npairs) return;
                int nrows = 0;
                for (int rr = 0; rr < 2; rr++) {
                    const int row = 2 * m + rr, iy = y0 + row;
                    nrows += row < last && iy >= 0 && iy < SH::H;
                }
                u64 *bar = bars + m % NS;
                pool_mbar_expect(bar, (unsigned)(nrows * C * SH::W * 4));
                for (int rr = 0; rr < 2; rr++) {
                    const int row = 2 * m + rr, iy = y0 + row;
                    if (row >= last || iy < 0 || iy >= SH::H) continue;
                    for (int c = 0; c < C; c++)
                        pool_bulk_load(ring + (((m % NS) * 2 + rr) * C + c) * SH::W,
                                       reinterpret_cast<const float *>(x) + (((i64)n * C + c) * SH::H + iy) * SH::W,
                                       (unsigned)(SH::W * 4), bar);
                }
                return;
            }
            if (m < npairs)
                for (int i = tid; i < PAIR_CHUNKS; i += 128) {
                    const int rr = i / (C * W4), c = (i / W4) % C, k = i % W4, row = 2 * m + rr, iy = y0 + row;
                    const bool in = row < last && iy >= 0 && iy < SH::H;
                    cp_async16(ring + (((m % NS) * 2 + rr) * C + c) * SH::W + 4 * k,
                               reinterpret_cast<const float *>(x) + (((i64)n * C + c) * SH::H + (in ? iy : 0)) * SH::W + 4 * k,
                               in);
                }
            cp_async_commit();
        };
        auto convert = [&](int m) { // ring slot -> strip rows 2m, 2m + 1 of each column: C words (rows outside: 0)
            if (KILN_EXP_WS & 2) return;
            bool rin[2];
#pragma unroll
            for (int rr = 0; rr < 2; rr++) {
                const int row = 2 * m + rr, iy = y0 + row;
                rin[rr] = row < last && iy >= 0 && iy < SH::H;
            }
            const float *sl = ring + (m % NS) * 2 * C * SH::W;
#pragma unroll
            for (int it = 0; it < (SH::W + 127) / 128; it++) {
                const int col = tid + 128 * it, xs = col + SH::PW;
                if (col >= SH::W || xs >= 2 * E) continue;
                float v[2 * C];
#pragma unroll
                for (int u = 0; u < 2 * C; u++) v[u] = rin[u / C] ? sl[u * SH::W + col] : 0.0f;
                u32 *d = reinterpret_cast<u32 *>(strip + ((xs & 1) * E + (xs >> 1)) * SP + 2 * m * C);
#pragma unroll
                for (int u = 0; u < C; u++) d[u] = (u32)conv_pool_h(v[2 * u]) | ((u32)conv_pool_h(v[2 * u + 1]) << 16);
            }
        };
        if (KILN_WS_BULK && RING && tid == 0)
            for (int m = 0; m < NS; m++) pool_mbar_init(bars + m);
        named_bar_sync(PROD, 128); // the zeroed strip, the mbarriers initialized
        if constexpr (RING) {
            if (!KILN_WS_BULK || tid == 0)
                for (int m = 0; m < NS; m++) issue(m);
        }
        if constexpr (!RING) { // every row now
            if constexpr (F32X) {
                constexpr int ITEMS = (2 * C * SH::W + 127) / 128;
                for (int r = 0; r < last; r += 2) {
                    float v[ITEMS][1];
                    conv_pool_f32_load<SH, 1, ITEMS>(x, n, y0, r, r + 2 < last ? r + 2 : last, tid, v);
                    conv_pool_wg_f32_store<SH, 1, ITEMS>(strip, r, r + 2 < last ? r + 2 : last, tid, v);
                }
            } else {
                for (int i = tid; i < last * SH::W * C; i += 128) {
                    const int rr = i / (SH::W * C), col = (i / C) % SH::W, c = i % C, iy = y0 + rr, xs = col + SH::PW;
                    if (iy >= 0 && iy < SH::H && xs < 2 * E)
                        strip[((xs & 1) * E + (xs >> 1)) * SP + rr * C + c] =
                            __half_as_ushort(reinterpret_cast<const __half *>(x)[(((i64)n * SH::H + iy) * SH::W + col) * C + c]);
                }
            }
            named_bar_sync(PROD, 128);
        }
        for (int tr = 0; tr < cr; tr++) {
            if constexpr (RING) { // pairs up to tr + D0 into the strip, then their slots refilled NS pairs ahead
                const int m0 = tr == 0 ? 0 : tr + D0;
                if (KILN_WS_BULK) {
                    if (!(KILN_EXP_WS & 4))
                        for (int m = m0; m <= tr + D0; m++) pool_mbar_wait(bars + m % NS, (unsigned)(m / NS) & 1);
                } else {
                    if (tr == 0)
                        cp_async_wait<NS - 1 - D0>();
                    else
                        cp_async_wait<NS - 1>();
                    named_bar_sync(PROD, 128); // every thread's copies have landed
                }
                for (int m = m0; m <= tr + D0; m++) convert(m);
                named_bar_sync(PROD, 128); // the strip rows are written, the slots read
                if (!KILN_WS_BULK || tid == 0)
                    for (int m = m0; m <= tr + D0; m++) issue(m + NS);
            }
            if (tr >= NB) named_bar_sync(EMPTY0 + tr % NB, 256); // row tr - NB's wgmmas are done with the buffer
            unsigned char *pb = planes + (tr % NB) * BUF;
            for (int idx = tid; idx < ((KILN_EXP_WS & 1) ? 0 : 2 * E); idx += 128) {
                const int par = idx >= E, e = idx - par * E;
                const u32 *col = reinterpret_cast<const u32 *>(strip + idx * SP + 2 * tr * C);
                u32 v[4 * J];
#pragma unroll
                for (int k = 0; k < 4 * J; k++) v[k] = k < RC / 2 ? col[k] : 0u;
                if constexpr (RC & 1) v[RC / 2] = reinterpret_cast<const unsigned short *>(col)[RC - 1];
#pragma unroll
                for (int j = 0; j < J; j++) {
                    u32 *d = reinterpret_cast<u32 *>(pb + (par * J + j) * PLANE + e * 16);
#ifdef KILN_EMU
                    d[0] = v[4 * j], d[1] = v[4 * j + 1], d[2] = v[4 * j + 2], d[3] = v[4 * j + 3];
#else
                    *reinterpret_cast<uint4 *>(d) = make_uint4(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]);
#endif
                }
            }
            if (!(KILN_EXP_WS & 8)) fence_proxy_async(); // generic-proxy plane writes, before the wgmmas (async proxy) read them
            named_bar_arrive(FULL0 + tr % NB, 256);
        }
        return;
    }

    // ---- the consumer
    setmaxnreg_inc<256 - KILN_WS_PREG>(); // (two 256-thread blocks an SM: 128 a thread on average)
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    u32 a[KW][4]; // this warp's weights (output channels 16 warp .. + 15) as wgmma A fragments
    {
        const unsigned short *wh = reinterpret_cast<const unsigned short *>(w);
        const int ch = 16 * warp + g;
#pragma unroll
        for (int ks = 0; ks < KW; ks++) {
            const int k = 16 * ks + 2 * t;
            a[ks][0] = ld_pair(wh + (i64)ch * (16 * KW) + k);
            a[ks][1] = ld_pair(wh + (i64)(ch + 8) * (16 * KW) + k);
            a[ks][2] = ld_pair(wh + (i64)ch * (16 * KW) + k + 8);
            a[ks][3] = ld_pair(wh + (i64)(ch + 8) * (16 * KW) + k + 8);
        }
    }
    const float bz[2] = {bias[16 * warp + g], bias[16 * warp + g + 8]};
#if KILN_WS_VPOOL
    // vertical first: vm = max over the pooled row's conv rows so far (before the bias), then on the
    // row that ends it (2i + 1) the 3-wide horizontal max, bias and ReLU, and vm restarts from that row
    float vm[NW / 2];
#pragma unroll
    for (int i = 0; i < NW / 2; i++) vm[i] = neg_inf();
#else
    float cur[NJ][2]; // the pooled row in progress, before bias and ReLU: [n8][channel g / g + 8]
#pragma unroll
    for (int j = 0; j < NJ; j++) cur[j][0] = cur[j][1] = neg_inf();
#endif
    constexpr bool FULL = NW == SH::Q;
    const int src = t == 0 ? lane + 3 : lane - 1; // the lane holding this lane's pixel 2m - 1

    for (int tr = 0; tr < cr; tr++) {
        const int p = rs + tr;
        const bool emit = !(tr & 1) && tr > 0;  // conv row p = 2i + 1 ends pooled row i (and starts i + 1)
        const bool valid = p >= 0 && p < SH::P; // (the same for the whole block)
        named_bar_sync(FULL0 + tr % NB, 256);   // (also: every consumer thread has stored the last pooled row)
        float acc[NW / 2];
        if (valid) {
#pragma unroll
            for (int i = 0; i < NW / 2; i++) acc[i] = 0.0f;
            wgmma_pin<NW / 2>(acc);
            wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < ((KILN_EXP_WS & 32) ? 0 : KW); ks++)
                wgmma_rs_f16<NW>::run(acc, a[ks], wgmma_desc(planes + (tr % NB) * BUF + SH::ka(ks), SH::kl(ks), 128));
            wgmma_commit();
            wgmma_wait<0>();
            wgmma_pin<NW / 2>(acc);
        }
        if (tr + NB < cr) named_bar_arrive(EMPTY0 + tr % NB, 256);
#if KILN_WS_VPOOL
        if (valid && !(KILN_EXP_WS & 16)) {
            if constexpr (!FULL) // pixels past Q drop out of every max
#pragma unroll
                for (int j = 0; j < NJ; j++) {
                    const int q = 8 * j + 2 * t;
                    if (q >= SH::Q) acc[4 * j] = acc[4 * j + 2] = neg_inf();
                    if (q + 1 >= SH::Q) acc[4 * j + 1] = acc[4 * j + 3] = neg_inf();
                }
#pragma unroll
            for (int i = 0; i < NW / 2; i++) vm[i] = fmaxf(vm[i], acc[i]);
        }
        if (emit && !(KILN_EXP_WS & 16)) { // pooled column m = 4 j + t = max(pixel 2m - 1, 2m, 2m + 1) of vm
            float po[2];
#pragma unroll
            for (int j = 0; j < NJ; j++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const float e = vm[4 * j + 2 * h], o = vm[4 * j + 2 * h + 1];
                    const float r = __shfl_sync(0xffffffffu, t == 3 && j > 0 ? po[h] : o, src);
                    po[h] = o;
                    const float prev = t != 0 || j > 0 ? r : neg_inf();
                    float v = fmaxf(prev, fmaxf(e, o)) + bz[h];
                    if (RELU) v = fmaxf(v, 0.0f);
                    stage[(4 * j + t) * conv_pool_stage + 16 * warp + 8 * h + g] = conv_pool_h(v);
                }
        }
        if (emit && valid) // the next pooled row starts from this conv row
#pragma unroll
            for (int i = 0; i < NW / 2; i++) vm[i] = acc[i];
        else if (!valid) // (-inf: a conv row outside the image)
#pragma unroll
            for (int i = 0; i < NW / 2; i++) vm[i] = neg_inf();
#else
        if (valid && !(KILN_EXP_WS & 16)) {
            if constexpr (!FULL) // pixels past Q drop out of every max
#pragma unroll
                for (int j = 0; j < NJ; j++) {
                    const int q = 8 * j + 2 * t;
                    if (q >= SH::Q) acc[4 * j] = acc[4 * j + 2] = neg_inf();
                    if (q + 1 >= SH::Q) acc[4 * j + 1] = acc[4 * j + 3] = neg_inf();
                }
            float po[2]; // pooled column m = 4 j + t = max(pixel 2m - 1, 2m, 2m + 1), as in conv_pool_wg_f16
#pragma unroll
            for (int j = 0; j < NJ; j++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const float e = acc[4 * j + 2 * h], o = acc[4 * j + 2 * h + 1];
                    const float r = __shfl_sync(0xffffffffu, t == 3 && j > 0 ? po[h] : o, src);
                    po[h] = o;
                    const float prev = t != 0 || j > 0 ? r : neg_inf();
                    const float hm = fmaxf(prev, fmaxf(e, o));
                    if (!emit) {
                        cur[j][h] = fmaxf(cur[j][h], hm);
                        continue;
                    }
                    float v = fmaxf(cur[j][h], hm) + bz[h];
                    if (RELU) v = fmaxf(v, 0.0f);
                    stage[(4 * j + t) * conv_pool_stage + 16 * warp + 8 * h + g] = conv_pool_h(v);
                    cur[j][h] = hm;
                }
        } else { // a conv row past the image: -inf
#pragma unroll
            for (int j = 0; j < NJ; j++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    if (emit) {
                        float v = cur[j][h] + bz[h];
                        if (RELU) v = fmaxf(v, 0.0f);
                        stage[(4 * j + t) * conv_pool_stage + 16 * warp + 8 * h + g] = conv_pool_h(v);
                    }
                    cur[j][h] = neg_inf();
                }
        }
#endif
        if (emit) {
            const int i = i0 + tr / 2 - 1; // the finished pooled row
            named_bar_sync(CONS, 128);     // the staged row is complete
            constexpr int CHUNKS = SH::W2 * 8;
            __half *yr = y + (((i64)n * SH::H2 + i) * SH::W2) * 64;
            for (int c = tid; c < CHUNKS; c += 128)
                *reinterpret_cast<conv_nhwc_v8h *>(yr + c * 8) =
                    *reinterpret_cast<const conv_nhwc_v8h *>(stage + (c / 8) * conv_pool_stage + (c % 8) * 8);
        }
    }
#else
    (void)x, (void)w, (void)bias, (void)y, (void)smem;
#endif
}

} // namespace kiln
