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
template <class SH, int VEC, int ITEMS>
__device__ __forceinline__ void conv_pool_f32_load(const float *x, int n, int y0, int r0, int r1, int tid,
                                                   float (&v)[ITEMS][VEC]) {
    constexpr int PER_ROW = SH::C * (SH::W / VEC);
#pragma unroll
    for (int it = 0; it < ITEMS; it++) {
        const int i = tid + 128 * it, rr = r0 + i / PER_ROW, c = (i % PER_ROW) / (SH::W / VEC), k = i % (SH::W / VEC);
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
template <class SH, int VEC, int ITEMS>
__device__ __forceinline__ void conv_pool_f32_store(unsigned short *rows, int r0, int r1, int tid, const float (&v)[ITEMS][VEC]) {
    constexpr int PER_ROW = SH::C * (SH::W / VEC);
#pragma unroll
    for (int it = 0; it < ITEMS; it++) {
        const int i = tid + 128 * it, rr = r0 + i / PER_ROW, c = (i % PER_ROW) / (SH::W / VEC), k = i % (SH::W / VEC);
        if (i >= (r1 - r0) * PER_ROW) continue;
#pragma unroll
        for (int u = 0; u < VEC; u++)
            rows[rr * SH::PITCH + conv_pool_off + SH::C * (VEC * k + u) + c] = __half_as_ushort(__float2half_rn(v[it][u]));
    }
}

template <class SH, bool RELU, class XT>
__device__ __forceinline__ void conv_pool_f16(const XT *__restrict__ x, const __half *__restrict__ w,
                                              const float *__restrict__ bias, __half *__restrict__ y,
                                              unsigned char *smem) {
    constexpr int C = SH::C, R = SH::R, NT = SH::NT, KS = SH::KS, SEG = SH::SEG, PITCH = SH::PITCH;
    constexpr int KP = KS * 16, QH = 8 * NT, W2P = 4 * NT * 2, ROWS = SH::ROWS;
    static_assert(SH::FRONT + SH::S * C <= SEG && SEG % 2 == 0 && R * SEG <= KP, "packed depth");
    static_assert(conv_pool_off % 2 == 0 && (C * SH::PW + SH::FRONT) % 2 == 0 && C * SH::PW + SH::FRONT <= conv_pool_off,
                  "pairs 4-byte aligned, the first pixel's run inside the row");
    static_assert(PITCH % 8 == 0 && PITCH >= conv_pool_off + C * SH::W, "row pitch");
    static_assert(conv_pool_off + C * (2 * (2 * QH - 1) - SH::PW) - SH::FRONT + SEG <= PITCH, "last run in the row");
    static_assert(2 * QH >= SH::Q && W2P >= SH::W2, "pixel halves");
    constexpr bool F32X = !conv_nhwc_is_half<XT>::value; // x float32 NCHW: its Cast fused
    constexpr int VEC = SH::W % 4 == 0 ? 4 : 1, F32_ITEMS = (2 * C * (SH::W / VEC) + 127) / 128; // two rows' items a thread
    unsigned short *rows = reinterpret_cast<unsigned short *>(smem);
    unsigned short *stage = rows + ROWS * PITCH;
    float *xch = reinterpret_cast<float *>(stage + W2P * conv_pool_stage); // [row parity][m16][cb][16]

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3, cb = warp & 1, ph = warp >> 1;
    const int n = blockIdx.x / SH::NB, i0 = (blockIdx.x % SH::NB) * SH::BP;
    const int i1 = (i0 + SH::BP < SH::H2 ? i0 + SH::BP : SH::H2) - 1;
    const int rs = 2 * i0 - 1, cr = 2 * (i1 - i0) + 3; // first conv row, conv rows
    const int y0 = 2 * rs - SH::PH;                     // the input row of shared row 0

    // ---- input rows: zero borders; fp16 x by cp.async in three groups, float32 x two rows at a time
    {
        constexpr int CW = C * SH::W, TAIL = PITCH - conv_pool_off - CW;
        for (int i = tid; i < ROWS * (conv_pool_off + TAIL); i += 128) {
            const int rr = i / (conv_pool_off + TAIL), e = i % (conv_pool_off + TAIL);
            rows[rr * PITCH + (e < conv_pool_off ? e : conv_pool_off + CW + (e - conv_pool_off))] = 0;
        }
        const int last = 2 * (cr - 1) + R; // shared rows in use
        if constexpr (F32X) { // the first two conv rows' input now, the rest two rows ahead in the row loop
            const int first = 2 + R < last ? 2 + R : last;
            for (int r = 0; r < first; r += 2) {
                float v[F32_ITEMS][VEC];
                conv_pool_f32_load<SH, VEC, F32_ITEMS>(x, n, y0, r, r + 2 < first ? r + 2 : first, tid, v);
                conv_pool_f32_store<SH, VEC, F32_ITEMS>(rows, r, r + 2 < first ? r + 2 : first, tid, v);
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
                for (int i = tid; i < (to - from) * CH; i += 128) {
                    const int rr = from + i / CH, ck = i % CH, iy = y0 + rr;
                    const bool in = iy >= 0 && iy < SH::H;
                    const __half *src = x + (((i64)n * SH::H + (in ? iy : 0)) * SH::W) * C + ck * 8;
                    cp_async16(rows + rr * PITCH + conv_pool_off + ck * 8, src, in);
                }
            } else {
                for (int i = tid; i < (to - from) * CW; i += 128) {
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
    u32 a[KS][2][4];
    {
        const unsigned short *wh = reinterpret_cast<const unsigned short *>(w);
#pragma unroll
        for (int ks = 0; ks < KS; ks++)
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const int ch = 32 * cb + 16 * mi + g, k = 16 * ks + 2 * t;
                a[ks][mi][0] = ld_pair(wh + (i64)ch * KP + k);
                a[ks][mi][1] = ld_pair(wh + (i64)(ch + 8) * KP + k);
                a[ks][mi][2] = ld_pair(wh + (i64)ch * KP + k + 8);
                a[ks][mi][3] = ld_pair(wh + (i64)(ch + 8) * KP + k + 8);
            }
    }
    float bz[2][2];
#pragma unroll
    for (int mi = 0; mi < 2; mi++) bz[mi][0] = bias[32 * cb + 16 * mi + g], bz[mi][1] = bias[32 * cb + 16 * mi + g + 8];

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
    float cur[2][NT][2];
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
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
            float acc[2][NT][4];
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
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
                warp_mma<mma_f16, 2, NT>(acc, a[ks], b);
            }
            // (x float32: the input rows of conv row tr + 2 load under this row's epilogue)
            float xv[F32X ? F32_ITEMS : 1][F32X ? VEC : 1];
            const int nr0 = 2 * tr + R + 2, nr1 = nr0 + 2 < 2 * (cr - 1) + R ? nr0 + 2 : 2 * (cr - 1) + R;
            if constexpr (F32X) conv_pool_f32_load<SH, VEC, F32_ITEMS>(x, n, y0, nr0, nr1, tid, xv);
            if constexpr (!FULL) // pixels past Q drop out of every max
#pragma unroll
                for (int j = 0; j < NT; j++)
#pragma unroll
                    for (int mi = 0; mi < 2; mi++) {
                        const int q = q0 + 8 * j + 2 * t;
                        if (q >= SH::Q) acc[mi][j][0] = acc[mi][j][2] = neg_inf();
                        if (q + 1 >= SH::Q) acc[mi][j][1] = acc[mi][j][3] = neg_inf();
                    }
            // Maxima are taken before the bias (a constant a channel) is added: the same as after.
            float *xw = xch + (tr & 1) * 64; // [m16][cb][channel g / g + 8]
            if (ph == 0 && t == 3)           // pixel QH - 1, for the other half's pooled column QH / 2
#pragma unroll
                for (int mi = 0; mi < 2; mi++)
                    xw[(mi * 2 + cb) * 16 + g] = acc[mi][NT - 1][1], xw[(mi * 2 + cb) * 16 + 8 + g] = acc[mi][NT - 1][3];
            __syncthreads(); // the exchange words are written
            // pooled column m = max(pixel 2m - 1, 2m, 2m + 1); 2m - 1 is lane t - 1's odd pixel (t > 0) or
            // lane t + 3's odd pixel of the previous n8 tile (t == 0): one shuffle, lane 3 sending that one
            float po[2][2];
#pragma unroll
            for (int j = 0; j < NT; j++)
#pragma unroll
                for (int mi = 0; mi < 2; mi++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const float e = acc[mi][j][2 * h], o = acc[mi][j][2 * h + 1];
                        const float r = __shfl_sync(0xffffffffu, t == 3 && j > 0 ? po[mi][h] : o, src);
                        po[mi][h] = o;
                        const float prev =
                            t != 0 || j > 0 ? r : ph ? xw[(mi * 2 + cb) * 16 + 8 * h + g] : neg_inf();
                        const float hm = fmaxf(prev, fmaxf(e, o));
                        if (!emit) {
                            cur[mi][j][h] = fmaxf(cur[mi][j][h], hm);
                            continue;
                        }
                        float v = fmaxf(cur[mi][j][h], hm) + bz[mi][h];
                        if (RELU) v = fmaxf(v, 0.0f);
                        stage[(4 * NT * ph + 4 * j + t) * conv_pool_stage + 32 * cb + 16 * mi + 8 * h + g] = conv_pool_h(v);
                        cur[mi][j][h] = hm;
                    }
            if constexpr (F32X) conv_pool_f32_store<SH, VEC, F32_ITEMS>(rows, nr0, nr1, tid, xv);
        } else { // a conv row past the image: -inf
            if constexpr (F32X) {
                float xv[F32_ITEMS][VEC];
                const int nr0 = 2 * tr + R + 2, nr1 = nr0 + 2 < 2 * (cr - 1) + R ? nr0 + 2 : 2 * (cr - 1) + R;
                conv_pool_f32_load<SH, VEC, F32_ITEMS>(x, n, y0, nr0, nr1, tid, xv);
                conv_pool_f32_store<SH, VEC, F32_ITEMS>(rows, nr0, nr1, tid, xv);
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int j = 0; j < NT; j++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        if (emit) {
                            float v = cur[mi][j][h] + bz[mi][h];
                            if (RELU) v = fmaxf(v, 0.0f);
                            stage[(4 * NT * ph + 4 * j + t) * conv_pool_stage + 32 * cb + 16 * mi + 8 * h + g] =
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
            for (int c = tid; c < CHUNKS; c += 128)
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
// them (SH::ka, SH::kl). One more chunk carries the bias: its entries (ONES bytes before the first
// plane buffer, the lowest address, shared by the three buffers: the bias step's start is the same for
// all, its leading byte offset grows with the buffer) read 1, 1, 0, .. for every pixel and its weights
// are the bias as fp16 hi + lo, so the accumulators come out biased; it pairs with the last chunk (odd
// count) or, with zero entries after the ones and zero weights, makes a step of its own. ResNet's 7x7 over RGB:
// 21 pairs -> J = 3 chunks a tap, 21 chunks + the bias chunk, 11 steps, 176 of depth for 147 + bias.
//
// The planes of conv row p (2 * J * E entries, E = NW + (S - 1) / 2) are built from a "strip":
// the block's input, column by column: slot par * E + e holds x' = 2e + par, its ROWS input rows
// x C channels contiguous (pitch SP halves, SP / 2 odd: the threads of a warp read consecutive
// slots without bank conflicts), so conv row tr's R * C values of a column are one run of words
// from 2 tr C. Two accumulator sets and three plane buffers: while row tr's wgmmas run (set tr % 2,
// buffer tr % 3) the block builds row tr + 1's planes (buffer (tr + 1) % 3: row tr - 2's, retired
// before the last barrier; with two buffers a warp could overwrite planes that another warp's part of
// row tr - 1's wgmmas still reads), loads float32 rows and stores the pooled row staged before; at a
// barrier row tr + 1's wgmmas go out into the other set, and row tr is pooled under them
// (`wgmma.wait_group 1`): each warpgroup keeps the tensor cores busy while it pools, where one set
// left them to the SM's other block. Pooling as conv_pool_f16 does (the wgmma accumulator holds
// pixels 8j + 2t, + 1 of channels g, g + 8 of the warp's 16: a whole conv row is in each warp, no
// exchange between warps) on fp16 pairs of its two channels (max.f16x2: the conv's own fp16 values,
// rounded from the biased accumulators; one shuffle and three maxima a pair of pixels). Every conv
// row gets its wgmmas, also the rows past the image (zero planes, ignored by the pooling), so that
// no wgmma sits on a conditional path. 239 registers (191 with one set, before the pairs of rows
// below), 89.6 KiB of shared memory for ResNet-50 (two blocks an SM); H100: median 25.4 us against
// 26.5 us with one set (docs/gpu.md seventeenth session). float32 x: the first three conv rows' input
// rows (FR: rounded up to an even count) are loaded in one go, then two rows for conv row tr + 3 under
// conv row tr's wgmmas (stored after the pooling; the barrier of the next row orders them before their
// reader, row tr + 3's build). With an even width those two rows go as a pair (conv_pool_wg_f32p_*:
// a thread takes two columns of both rows of every channel, C packed 32-bit stores a column where the
// single rows took 2 C 16-bit ones, two-way bank conflicts included): 22.3-22.6 us against 23.6-23.9 for
// ResNet-50's stem at b32 on an H200 (docs/gpu.md twenty-fourth session).
// Tried before: rows as two halves of 56 pixels, one half's wgmmas under the other's pooling (slower,
// docs/gpu.md fifteenth session); a producer warpgroup for the rows and planes (no faster, sixteenth).
#define KILN_CONV_POOL_WG_SMEM_BYTES(E, SP, J, NW, ONES) \
    ((ONES) + 3 * 2 * (J) * (E) * 16 + (NW) / 2 * 72 * 2 + 2 * (E) * (SP) * 2)

// two fp16 in a 32-bit word: packed from floats (round to nearest), their maximum lane by lane
__device__ __forceinline__ u32 conv_pool_pack2(float lo, float hi) {
#ifdef KILN_EMU
    return (u32)conv_pool_h(lo) | ((u32)conv_pool_h(hi) << 16);
#else
    u32 r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
#endif
}
__device__ __forceinline__ u32 conv_pool_max2(u32 a, u32 b) {
#ifdef KILN_EMU
    auto f = [](unsigned short x) {
        __half h;
        h.x = x;
        return __half2float(h);
    };
    auto m = [&](unsigned short x, unsigned short y) { return f(x) >= f(y) ? x : y; };
    return (u32)m((unsigned short)(a & 0xffffu), (unsigned short)(b & 0xffffu)) |
           ((u32)m((unsigned short)(a >> 16), (unsigned short)(b >> 16)) << 16);
#else
    u32 r;
    asm("max.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(a), "r"(b));
    return r;
#endif
}

// One item of float32 input (VEC values of columns VEC k ..., channel c, strip row rr) into the strip's
// fp16 column planes: column x' = VEC k + u + PW at plane x' % 2, position x' / 2.
template <class SH, int VEC>
__device__ __forceinline__ void conv_pool_wg_put(unsigned short *strip, int rr, int c, int k, const float (&v)[VEC]) {
    // VEC even and every column inside the strip: value u of an item sits at a fixed distance from the
    // item's first slot (VEC k is even, so x' = VEC k + u + PW has the parity of u + PW): one address an
    // item, the rest immediates
    constexpr bool FIXED = VEC % 2 == 0 && SH::W % VEC == 0 && SH::W - 1 + SH::PW < 2 * SH::E;
    if constexpr (FIXED) {
        unsigned short *b = strip + (VEC / 2 * k) * SH::SP + rr * SH::C + c;
#pragma unroll
        for (int u = 0; u < VEC; u++) b[(((u + SH::PW) & 1) * SH::E + ((u + SH::PW) >> 1)) * SH::SP] = conv_pool_h(v[u]);
    } else {
#pragma unroll
        for (int u = 0; u < VEC; u++) {
            const int xs = VEC * k + u + SH::PW; // x'
            if (xs < 2 * SH::E) strip[((xs & 1) * SH::E + (xs >> 1)) * SH::SP + rr * SH::C + c] = conv_pool_h(v[u]);
        }
    }
}
template <class SH, int VEC, int ITEMS>
__device__ __forceinline__ void conv_pool_wg_f32_store(unsigned short *strip, int r0, int r1, int tid, const float (&v)[ITEMS][VEC]) {
    constexpr int PER_ROW = SH::C * (SH::W / VEC);
#pragma unroll
    for (int it = 0; it < ITEMS; it++) {
        const int i = tid + 128 * it, rr = r0 + i / PER_ROW, c = (i % PER_ROW) / (SH::W / VEC), k = i % (SH::W / VEC);
        if (i >= (r1 - r0) * PER_ROW) continue;
        conv_pool_wg_put<SH, VEC>(strip, rr, c, k, v[it]);
    }
}

// The first rows [0, first) of float32 NCHW x (rows of W % 4 == 0 floats), channel by channel: a
// channel's rows lie back to back, so item f (16 bytes) of channel c is at one base plus constants
// (cheap to address: these loads are what every block of the wave waits for first), and rows outside
// the image are a range of f. Thread tid holds items f = tid + 128 j of each channel.
template <class SH, int FR>
__device__ __forceinline__ void conv_pool_wg_f32_first_load(const float *x, int n, int y0, int first, int tid,
                                                            float (&v)[SH::C * ((FR * (SH::W / 4) + 127) / 128)][4]) {
    constexpr int KQ = SH::W / 4, IPC = (FR * KQ + 127) / 128;
    const int lo = (y0 < 0 ? -y0 : 0) * KQ, hi = (first < SH::H - y0 ? first : SH::H - y0) * KQ;
    const i64 ob = ((i64)n * SH::C * SH::H + y0) * SH::W + 4 * tid; // (y0 < 0: an address formed only in range)
#pragma unroll
    for (int c = 0; c < SH::C; c++)
#pragma unroll
        for (int j = 0; j < IPC; j++) {
            const int f = tid + 128 * j;
            float4 q;
            q.x = q.y = q.z = q.w = 0.0f;
            if (f >= lo && f < hi) q = *reinterpret_cast<const float4 *>(x + (ob + (i64)c * SH::H * SH::W + 512 * j));
            v[c * IPC + j][0] = q.x, v[c * IPC + j][1] = q.y, v[c * IPC + j][2] = q.z, v[c * IPC + j][3] = q.w;
        }
}
template <class SH, int FR>
__device__ __forceinline__ void conv_pool_wg_f32_first_store(unsigned short *strip, int first, int tid,
                                                             const float (&v)[SH::C * ((FR * (SH::W / 4) + 127) / 128)][4]) {
    constexpr int KQ = SH::W / 4, IPC = (FR * KQ + 127) / 128;
    const int q0 = tid / KQ, r0 = tid % KQ;
#pragma unroll
    for (int j = 0; j < IPC; j++) {
        int rr = q0 + 128 * j / KQ, k = r0 + 128 * j % KQ; // the item's row and column group
        if (k >= KQ) k -= KQ, rr++;
        if (rr >= first) continue;
#pragma unroll
        for (int c = 0; c < SH::C; c++) conv_pool_wg_put<SH, 4>(strip, rr, c, k, v[c * IPC + j]);
    }
}

// float32 NCHW rows r0, r0 + 1 (r0 even; r0 + 1 only where r0 + 1 < r1) as pairs of rows: thread k < W / 2
// loads columns 2k, 2k + 1 of both rows of every channel; a column's two rows x C channels are C
// consecutive words of its strip slot (from r0 C, even), so a column takes C 32-bit stores of packed
// pairs where single values took 2 C 16-bit ones.
template <class SH>
__device__ __forceinline__ void conv_pool_wg_f32p_load(const float *x, int n, int y0, int r0, int r1, int tid,
                                                       float2 (&v)[2][SH::C]) {
#pragma unroll
    for (int rr = 0; rr < 2; rr++)
#pragma unroll
        for (int c = 0; c < SH::C; c++) {
            const int iy = y0 + r0 + rr;
            v[rr][c] = make_float2(0.0f, 0.0f);
            if (tid < SH::W / 2 && r0 + rr < r1 && iy >= 0 && iy < SH::H)
                v[rr][c] = *reinterpret_cast<const float2 *>(x + (((i64)n * SH::C + c) * SH::H + iy) * SH::W + 2 * tid);
        }
}
template <class SH>
__device__ __forceinline__ void conv_pool_wg_f32p_store(unsigned short *strip, int r0, int r1, int tid,
                                                        const float2 (&v)[2][SH::C]) {
    constexpr int C = SH::C;
    if (tid >= SH::W / 2 || r0 >= r1) return;
    const bool two = r0 + 1 < r1; // (one row: the words of row r0 only, the slot may end after it)
#pragma unroll
    for (int u = 0; u < 2; u++) {
        const int xs = 2 * tid + u + SH::PW; // x'
        if (xs >= 2 * SH::E) continue;
        unsigned short *b = strip + ((xs & 1) * SH::E + (xs >> 1)) * SH::SP + r0 * C;
#pragma unroll
        for (int w = 0; w < C; w++) {
            const float2 p0 = v[(2 * w) / C][(2 * w) % C], p1 = v[(2 * w + 1) / C][(2 * w + 1) % C];
            const float lo = u ? p0.y : p0.x, hi = u ? p1.y : p1.x;
            if (2 * w + 1 < C || two)
                reinterpret_cast<u32 *>(b)[w] = conv_pool_pack2(lo, hi);
            else if (2 * w < C)
                b[2 * w] = conv_pool_h(lo);
        }
    }
}

template <class SH, bool RELU, class XT>
__device__ __forceinline__ void conv_pool_wg_f16(const XT *__restrict__ x, const __half *__restrict__ w,
                                                 const float *__restrict__ bias, __half *__restrict__ y,
                                                 unsigned char *smem) {
#if defined(KILN_HAVE_WGMMA) || defined(KILN_EMU_WGMMA)
    constexpr int C = SH::C, R = SH::R, NW = SH::NW, NJ = NW / 8, E = SH::E, J = SH::J, SP = SH::SP, KW = SH::KW;
    constexpr int RC = R * C, WN = (RC + 1) / 2, PLANE = E * 16, BUF = 2 * J * PLANE, ONES = SH::ONES;
    static_assert(NW == 64 || NW == 112, "wgmma N");
    static_assert(NW >= SH::Q && E == NW + (SH::S - 1) / 2 && J == (RC + 7) / 8 && KW == SH::S * J / 2 + 1, "planes");
    static_assert(ONES == (SH::S * J % 2 ? 1 : 2) * NW * 16, "the bias chunk's entries");
    static_assert(SP % 2 == 0 && (SP / 2) % 2 == 1 && SP >= SH::ROWS * C && SP >= 2 * (2 * SH::BP) * C + 2 * WN, "strip");
    constexpr bool F32X = !conv_nhwc_is_half<XT>::value;
    constexpr int VEC = SH::W % 4 == 0 ? 4 : 1, F32_ITEMS = (2 * C * (SH::W / VEC) + 127) / 128;
    unsigned char *planes = smem + ONES; // buffer b at planes + b * BUF, the bias entries the ONES bytes before
    unsigned short *stage = reinterpret_cast<unsigned short *>(planes + 3 * BUF);
    unsigned short *strip = stage + NW / 2 * conv_pool_stage;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int n = blockIdx.x / SH::NB, i0 = (blockIdx.x % SH::NB) * SH::BP;
    const int i1 = (i0 + SH::BP < SH::H2 ? i0 + SH::BP : SH::H2) - 1;
    const int rs = 2 * i0 - 1, cr = 2 * (i1 - i0) + 3; // first conv row, conv rows
    const int y0 = 2 * rs - SH::PH;                     // the input row of strip row 0
    const int last = 2 * (cr - 1) + R;                  // strip rows in use

    // The block's global loads go out first, the first three conv rows' float32 input (in one go: one
    // memory round trip, 2 us less than two rows at a time for ResNet-50 b32; the rest three rows ahead in
    // the row loop) and this warp's weights, and the shared memory is zeroed under them: every block of
    // the wave starts at once and waits for these loads (ncu: more than a quarter of the kernel's warp
    // samples fell before the first wgmma when the zeroing went first, docs/gpu.md eighteenth session).
    constexpr bool FLAT = F32X && VEC == 4; // rows of whole 16-byte items: conv_pool_wg_f32_first_*
    constexpr bool F32P = F32X && SH::W % 2 == 0 && SH::W / 2 <= 128; // the row loop's rows as pairs
    constexpr int FR = F32P ? (R + 5) / 2 * 2 : 4 + R; // rows loaded first (F32P: even, the pairs start even)
    constexpr int FIRST_ITEMS = FLAT ? C * ((FR * (SH::W / 4) + 127) / 128)
                                     : F32X ? (FR * C * (SH::W / VEC) + 127) / 128 : 1;
    const int first = FR < last ? FR : last;
    float v0[FIRST_ITEMS][VEC];
    if constexpr (FLAT)
        conv_pool_wg_f32_first_load<SH, FR>(x, n, y0, first, tid, v0);
    else if constexpr (F32X)
        conv_pool_f32_load<SH, VEC, FIRST_ITEMS>(x, n, y0, 0, first, tid, v0);
    // this warp's weights (output channels 16 warp .. + 15) as wgmma A fragments, packed in fragment
    // order by the codegen (cg_conv_pool.c): one 16-byte load a step
    u32 a[KW][4];
    {
        const uint4 *wf = reinterpret_cast<const uint4 *>(w) + warp * KW * 32 + lane;
#pragma unroll
        for (int ks = 0; ks < KW; ks++) {
            const uint4 q = wf[ks * 32];
            a[ks][0] = q.x, a[ks][1] = q.y, a[ks][2] = q.z, a[ks][3] = q.w;
        }
    }
    // the bias chunk's entries before each buffer: NW entries 1, 1, 0, .. (the weights hold bias hi, lo),
    // then (even chunk counts) NW zero entries for its zero-weight partner
    for (int k = tid; k < ONES / 4; k += 128) {
        reinterpret_cast<u32 *>(smem)[k] = k % 4 == 0 && k < NW * 4 ? 0x3c003c00u : 0u;
    }
    // ---- the strip: zeros (padding columns, rows outside the image, the over-read), then the rows
    {
        constexpr int WORDS = E * SP; // (SP even: whole words; 16-byte stores for all but the last few)
#ifdef KILN_EMU
        for (int i = tid; i < WORDS; i += 128) reinterpret_cast<u32 *>(strip)[i] = 0u;
#else
        static_assert((ONES + 3 * BUF + NW / 2 * conv_pool_stage * 2) % 16 == 0, "the strip's 16-byte stores");
        for (int i = tid; i < WORDS / 4; i += 128) reinterpret_cast<uint4 *>(strip)[i] = make_uint4(0u, 0u, 0u, 0u);
        if (tid < WORDS % 4) reinterpret_cast<u32 *>(strip)[WORDS / 4 * 4 + tid] = 0u;
#endif
    }
    __syncthreads();
    if constexpr (FLAT) {
        conv_pool_wg_f32_first_store<SH, FR>(strip, first, tid, v0);
    } else if constexpr (F32X) {
        conv_pool_wg_f32_store<SH, VEC, FIRST_ITEMS>(strip, 0, first, tid, v0);
    } else { // fp16 NHWC x: every row now (not the network's hot path: the graph input is float32)
        for (int i = tid; i < last * SH::W * C; i += 128) {
            const int rr = i / (SH::W * C), col = (i / C) % SH::W, c = i % C, iy = y0 + rr, xs = col + SH::PW;
            if (iy >= 0 && iy < SH::H && xs < 2 * E)
                strip[((xs & 1) * E + (xs >> 1)) * SP + rr * C + c] =
                    __half_as_ushort(x[(((i64)n * SH::H + iy) * SH::W + col) * C + c]);
        }
    }
    (void)bias; // (in the accumulators: the bias chunk)

    // conv row trr's planes into buffer b: slot idx of the strip is x' = 2e + par, entry e of plane par
    auto build = [&](int trr, int b) {
        unsigned char *pb = planes + b * BUF;
        constexpr int IT = (2 * E + 127) / 128;
        u32 v[IT][4 * J]; // every slot's loads first, then the stores (their latency overlaps)
#pragma unroll
        for (int it = 0; it < IT; it++) {
            const int idx = tid + 128 * it;
            if (idx >= 2 * E) continue;
            const u32 *col = reinterpret_cast<const u32 *>(strip + idx * SP + 2 * trr * C);
#pragma unroll
            for (int k = 0; k < 4 * J; k++) v[it][k] = k < RC / 2 ? col[k] : 0u;
            if constexpr (RC & 1) // the run's last value alone (the next half is the next row's, maybe being written)
                v[it][RC / 2] = reinterpret_cast<const unsigned short *>(col)[RC - 1];
        }
#pragma unroll
        for (int it = 0; it < IT; it++) {
            const int idx = tid + 128 * it;
            if (idx >= 2 * E) continue;
            const int par = idx >= E, e = idx - par * E;
#pragma unroll
            for (int j = 0; j < J; j++) {
                u32 *d = reinterpret_cast<u32 *>(pb + (par * J + j) * PLANE + e * 16);
#ifdef KILN_EMU
                d[0] = v[it][4 * j], d[1] = v[it][4 * j + 1], d[2] = v[it][4 * j + 2], d[3] = v[it][4 * j + 3];
#else
                *reinterpret_cast<uint4 *>(d) = make_uint4(v[it][4 * j], v[it][4 * j + 1], v[it][4 * j + 2], v[it][4 * j + 3]);
#endif
            }
        }
    };
    __syncthreads(); // the strip's first rows
    build(0, 0);
    fence_proxy_async(); // generic-proxy plane writes, before wgmma (async proxy) reads them
    __syncthreads();

    // the pooled row in progress (biased, before ReLU), fp16 pairs: [n8] (channel g, channel g + 8)
    constexpr u32 NEG2 = 0xfc00fc00u; // -inf, -inf
    u32 cur[NJ];
#pragma unroll
    for (int j = 0; j < NJ; j++) cur[j] = NEG2;
    constexpr bool FULL = NW == SH::Q;
    const int src = t == 0 ? lane + 3 : lane - 1; // the lane holding this lane's pixel 2m - 1

    // step ks's B descriptor in plane buffer b: on the GPU the fields are sums of constants and the
    // buffers' base (one add a wgmma, not an address conversion and three field operations)
#ifdef KILN_EMU
    auto bdesc = [&](int b, int ks) {
        const int ka = SH::ka(ks), kl = SH::kl(ks); // the bias chunk (ka < 0) is shared by the buffers
        return wgmma_desc(planes + (ka < 0 ? 0 : b * BUF) + ka, kl + (ka < 0 && ka + kl >= 0 ? b * BUF : 0), 128);
    };
#else
    static_assert(BUF % 16 == 0 && ONES % 16 == 0, "16-byte entries");
    const u32 pl16 = ((u32)__cvta_generic_to_shared(planes) & 0x3FFFFu) >> 4;
    auto bdesc = [&](int b, int ks) {
        const int ka = SH::ka(ks), kl = SH::kl(ks); // the bias chunk (ka < 0) is shared by the buffers
        const int sb = ka < 0 ? 0 : b * (BUF / 16), lb = ka < 0 && ka + kl >= 0 ? b * (BUF / 16) : 0;
        return (u64)(pl16 + (u32)(sb + ka / 16 + ((kl / 16 + lb) << 16))) | ((u64)(128 / 16) << 32);
    };
#endif
    // conv row trr's wgmmas into d (every row, also those past the image: their planes are zeros and
    // the pooling ignores them, so that no wgmma sits on a conditional path)
    auto issue = [&](float(&d)[NW / 2], int trr) {
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < KW; ks++)
            wgmma_rs_f16<NW>::run(d, a[ks], bdesc(trr % 3, ks), ks > 0);
        wgmma_commit();
    };
    // pool conv row trr (retired) into the pooled row in progress; a row p = 2i + 1 ends pooled row i:
    // it goes to the staging, stored by store_row after the next barrier
    auto pool = [&](float(&d)[NW / 2], int trr) {
        const int p = rs + trr;
        const bool emit = !(trr & 1) && trr > 0;
        if (p >= 0 && p < SH::P) { // (the same for the whole block)
            wgmma_pin<NW / 2>(d);
            if constexpr (!FULL) { // pixels past Q drop out of every max
#pragma unroll
                for (int j = 0; j < NJ; j++) {
                    const int q = 8 * j + 2 * t;
                    if (q >= SH::Q) d[4 * j] = d[4 * j + 2] = neg_inf();
                    if (q + 1 >= SH::Q) d[4 * j + 1] = d[4 * j + 3] = neg_inf();
                }
            }
            // pooled column m = 4 j + t = max(pixel 2m - 1, 2m, 2m + 1): as in conv_pool_f16, the whole
            // row is in the warp (the wgmma accumulator: pixels 8 j + 2 t, + 1 of channels g, g + 8), here
            // on fp16 pairs of the two channels (the conv's fp16 output values: rounding is monotonic)
            u32 po = NEG2;
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                const u32 e = conv_pool_pack2(d[4 * j], d[4 * j + 2]), o = conv_pool_pack2(d[4 * j + 1], d[4 * j + 3]);
                // (lane t = 0 receives lane 3's pixel 8 j + 7, its 2m - 1 in tile j + 1: kept in po for then)
                const u32 r = __shfl_sync(0xffffffffu, o, src);
                const u32 prev = t != 0 ? r : po;
                po = r;
                const u32 hm = conv_pool_max2(prev, conv_pool_max2(e, o));
                if (!emit) {
                    cur[j] = conv_pool_max2(cur[j], hm);
                    continue;
                }
                u32 v = conv_pool_max2(cur[j], hm);
                if (RELU) v = conv_pool_max2(v, 0u);
                stage[(4 * j + t) * conv_pool_stage + 16 * warp + g] = (unsigned short)(v & 0xffffu);
                stage[(4 * j + t) * conv_pool_stage + 16 * warp + 8 + g] = (unsigned short)(v >> 16);
                cur[j] = hm;
            }
        } else { // a conv row past the image: -inf
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                if (emit) {
                    u32 v = cur[j];
                    if (RELU) v = conv_pool_max2(v, 0u);
                    stage[(4 * j + t) * conv_pool_stage + 16 * warp + g] = (unsigned short)(v & 0xffffu);
                    stage[(4 * j + t) * conv_pool_stage + 16 * warp + 8 + g] = (unsigned short)(v >> 16);
                }
                cur[j] = NEG2;
            }
        }
    };
    // the staged pooled row ended by conv row trr (after a barrier)
    auto store_row = [&](int trr) {
        const int i = i0 + trr / 2 - 1;
        constexpr int CHUNKS = SH::W2 * 8;
        __half *yr = y + (((i64)n * SH::H2 + i) * SH::W2) * 64;
        for (int c = tid; c < CHUNKS; c += 128)
            *reinterpret_cast<conv_nhwc_v8h *>(yr + c * 8) =
                *reinterpret_cast<const conv_nhwc_v8h *>(stage + (c / 8) * conv_pool_stage + (c % 8) * 8);
    };
    float xv[F32X && !F32P ? F32_ITEMS : 1][F32X && !F32P ? VEC : 1]; // (here, not in the lambda: g++ 12 fails on it there)
    float2 xp[2][C];
    // Row trr's wgmmas are in flight in d (plane buffer trr % 3). Under them: row trr + 1's planes
    // (buffer (trr + 1) % 3: row trr - 2's, which every warp waited for before the last barrier), the
    // float32 rows of row trr + 3, the store of the row staged a step ago; then row trr + 1's wgmmas go
    // out into dn and row trr is pooled under them. (cr is odd: the loop below ends in finish(acc0).)
    auto step = [&](float(&d)[NW / 2], float(&dn)[NW / 2], int trr) {
        build(trr + 1, (trr + 1) % 3);
        const int nr0 = 2 * trr + FR, nr1 = nr0 + 2 < last ? nr0 + 2 : last;
        if constexpr (F32P) conv_pool_wg_f32p_load<SH>(x, n, y0, nr0, nr1, tid, xp);
        else if constexpr (F32X) conv_pool_f32_load<SH, VEC, F32_ITEMS>(x, n, y0, nr0, nr1, tid, xv);
        fence_proxy_async(); // row trr + 1's planes, for the wgmmas
        __syncthreads();     // ... and the strip rows and the staging, for everyone
        if ((trr & 1) && trr > 1) store_row(trr - 1);
        issue(dn, trr + 1);
        wgmma_wait<1>(); // row trr retired
        pool(d, trr);
        if constexpr (F32P) conv_pool_wg_f32p_store<SH>(strip, nr0, nr1, tid, xp);
        else if constexpr (F32X) conv_pool_wg_f32_store<SH, VEC, F32_ITEMS>(strip, nr0, nr1, tid, xv);
    };
    auto finish = [&](float(&d)[NW / 2], int trr) { // the last row
        __syncthreads(); // the staging: written below, maybe still read by the last step's store_row
        if ((trr & 1) && trr > 1) { // the staging of row trr - 1
            store_row(trr - 1);
            __syncthreads();
        }
        wgmma_wait<0>();
        pool(d, trr);
        if (!(trr & 1) && trr > 0) {
            __syncthreads();
            store_row(trr);
        }
    };

    float acc0[NW / 2], acc1[NW / 2];
    issue(acc0, 0);
    int tr = 0;
    for (; tr + 2 < cr; tr += 2) {
        step(acc0, acc1, tr);
        step(acc1, acc0, tr + 1);
    }
    // (cr = 2 (i1 - i0) + 3 is odd, so only the else branch runs; without the other, and finish's odd-row
    // branches, ptxas serializes the wgmmas, C7514 (nvcc 13.0, the ResNet-50 stem): they stay)
    if (tr + 1 < cr) {
        step(acc0, acc1, tr);
        finish(acc1, tr + 1);
    } else {
        finish(acc0, tr);
    }
#else
    (void)x, (void)w, (void)bias, (void)y, (void)smem;
#endif
}

} // namespace kiln
