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

namespace kiln {

// ------------------------------------------------------- more index-family kernels --
// Trilu: x viewed as [batch, rows, cols]; keeps j - i >= k (upper) or j - i <= k (lower).
template <typename T, bool UPPER>
__device__ __forceinline__ void trilu(const T *x, T *y, i64 numel, i64 rows, i64 cols, i64 k) {
    for (i64 i = global_thread_index(); i < numel; i += grid_thread_count()) {
        const i64 c = i % cols, r = (i / cols) % rows;
        const bool keep = UPPER ? c - r >= k : c - r <= k;
        y[i] = keep ? x[i] : (T)0;
    }
}

// Tile: output index d reads the input at d mod in_dims (per dim).
template <int RANK> struct tile_shape {
    i64 numel;
    i64 out_dims[RANK], in_dims[RANK], in_strides[RANK];
};
template <typename T, int RANK>
__device__ __forceinline__ void tile(const T *x, T *y, const tile_shape<RANK> &s) {
    for (i64 i = global_thread_index(); i < s.numel; i += grid_thread_count()) {
        i64 rem = i, off = 0;
#pragma unroll
        for (int d = RANK - 1; d >= 0; d--) {
            const i64 q = rem / s.out_dims[d], idx = rem - q * s.out_dims[d];
            rem = q;
            off += (idx % s.in_dims[d]) * s.in_strides[d];
        }
        y[i] = x[off];
    }
}

// DepthToSpace (TO_SPACE) / SpaceToDepth on NCHW with block b. The depth side has C*b*b
// channels, the space side C channels of H*b x W*b; CRD orders the depth channel as
// (c, bh, bw), DCR (and SpaceToDepth) as (bh, bw, c). Dims are the depth side's [N, CD, H, W].
template <typename T, bool TO_SPACE, bool CRD>
__device__ __forceinline__ void depth_space(const T *x, T *y, i64 N, i64 CD, i64 H, i64 W, i64 b) {
    const i64 C = CD / (b * b), total = N * CD * H * W;
    for (i64 i = global_thread_index(); i < total; i += grid_thread_count()) {
        // i enumerates the space side [N, C, H*b, W*b] for DepthToSpace, the depth side for SpaceToDepth
        i64 n, c, h, w, bh, bw;
        if (TO_SPACE) {
            const i64 Ws = W * b, Hs = H * b;
            const i64 ws = i % Ws, hs = (i / Ws) % Hs;
            c = (i / (Ws * Hs)) % C;
            n = i / (Ws * Hs * C);
            h = hs / b, bh = hs % b, w = ws / b, bw = ws % b;
        } else {
            w = i % W;
            h = (i / W) % H;
            const i64 cd = (i / (W * H)) % CD;
            n = i / (W * H * CD);
            c = cd % C, bw = (cd / C) % b, bh = cd / (C * b);
        }
        const i64 cd = CRD ? (c * b + bh) * b + bw : (bh * b + bw) * C + c;
        const i64 di = ((n * CD + cd) * H + h) * W + w;                           // depth-side index
        const i64 si = ((n * C + c) * H * b + h * b + bh) * (W * b) + w * b + bw; // space-side index
        if (TO_SPACE) y[si] = x[di];
        else y[di] = x[si];
    }
}

// Range: y[i] = start + i * delta, start and delta read from device scalars; floating
// types compute in fp32, integer types exactly.
template <typename T> __device__ __forceinline__ void range_float(const T *start, const T *delta, T *y, i64 n) {
    const float s = to_f32(start[0]), d = to_f32(delta[0]);
    for (i64 i = global_thread_index(); i < n; i += grid_thread_count()) y[i] = from_f32<T>(s + (float)i * d);
}
template <typename T> __device__ __forceinline__ void range_int(const T *start, const T *delta, T *y, i64 n) {
    for (i64 i = global_thread_index(); i < n; i += grid_thread_count()) y[i] = (T)(start[0] + (T)i * delta[0]);
}

} // namespace kiln

namespace kiln {

// GatherND: M index tuples of k entries (idx, int32/int64, negative wrapped); each selects a
// slice of S elements of x. With batch_dims, tuple m belongs to batch m / per_batch, whose
// data starts at batch * batch_stride. y is [M, S].
struct gather_nd_shape {
    i64 numel, M, S, k, per_batch, batch_stride;
    i64 dims[max_rank], strides[max_rank]; // x's dims / strides of the k indexed dims
};
template <typename T, typename I>
__device__ __forceinline__ void gather_nd(const T *x, const I *idx, T *y, const gather_nd_shape &s) {
    for (i64 i = global_thread_index(); i < s.numel; i += grid_thread_count()) {
        const i64 m = i / s.S, e = i - m * s.S;
        i64 off = (m / s.per_batch) * s.batch_stride + e;
        bool ok = true;
        for (i64 j = 0; j < s.k; j++) {
            const i64 a = wrap_index(idx[m * s.k + j], s.dims[j]);
            ok = ok && a >= 0 && a < s.dims[j];
            off += a * s.strides[j];
        }
        y[i] = ok ? x[off] : (T)0;
    }
}

// EyeLike: ones on the diagonal shifted by k of a [rows, cols] output.
template <typename T> __device__ __forceinline__ void eye_like(T *y, i64 rows, i64 cols, i64 k) {
    for (i64 i = global_thread_index(); i < rows * cols; i += grid_thread_count()) {
        const i64 r = i / cols, c = i - r * cols;
        y[i] = (T)(c - r == k ? 1 : 0);
    }
}

} // namespace kiln

namespace kiln {

// ScatterElements / ScatterND onto y (already a copy of the data input): one thread applies
// every update in order, so duplicates resolve as the CPU evaluator resolves them (the last
// one wins for reduction none; add / mul / max / min combine). A: fp32 for f16/bf16/f32, f64,
// wrapping i64 for integers. Correctness over speed: scatters are rare in inference graphs.
template <typename A, int RED> __device__ __forceinline__ A scatter_combine(A a, A b) {
    return RED == 1 ? a + b : RED == 2 ? a * b : RED == 3 ? (b > a ? b : a) : RED == 4 ? (b < a ? b : a) : b;
}
__device__ __forceinline__ void sc_load(float &a, float x) { a = x; }
__device__ __forceinline__ void sc_load(float &a, __half x) { a = __half2float(x); }
__device__ __forceinline__ void sc_load(float &a, __nv_bfloat16 x) { a = __bfloat162float(x); }
__device__ __forceinline__ void sc_load(double &a, double x) { a = x; }
template <typename I> __device__ __forceinline__ void sc_load(i64 &a, I x) { a = (i64)x; }
template <typename T> __device__ __forceinline__ T sc_store(float a) { return from_f32<T>(a); }
template <typename T> __device__ __forceinline__ T sc_store(double a) { return (T)a; }
template <typename T> __device__ __forceinline__ T sc_store(i64 a) { return (T)a; }

template <typename T, typename A, int RED> __device__ __forceinline__ void scatter_apply(T *dst, const T *src) {
    A a, b;
    sc_load(a, *dst);
    sc_load(b, *src);
    *dst = sc_store<T>(scatter_combine<A, RED>(a, b));
}

template <int RANK> struct scatter_shape {
    i64 n, axis, axis_dim;
    i64 dims[RANK], x_strides[RANK]; // the indices' dims, the data's strides
};
template <typename T, typename I, typename A, int RED, int RANK>
__device__ __forceinline__ void scatter_elements(T *y, const I *idx, const T *upd, const scatter_shape<RANK> &s) {
    if (global_thread_index() != 0) return;
    for (i64 i = 0; i < s.n; i++) {
        i64 rem = i, off = 0;
        const i64 k = wrap_index(idx[i], s.axis_dim);
        if (k < 0 || k >= s.axis_dim) continue;
        for (int d = RANK - 1; d >= 0; d--) {
            const i64 q = rem / s.dims[d], p = rem - q * s.dims[d];
            rem = q;
            off += (d == s.axis ? k : p) * s.x_strides[d];
        }
        scatter_apply<T, A, RED>(y + off, upd + i);
    }
}

struct scatter_nd_shape {
    i64 ntup, slice, k;
    i64 dims[max_rank], strides[max_rank]; // the data's first k dims and their strides
};
template <typename T, typename I, typename A, int RED>
__device__ __forceinline__ void scatter_nd(T *y, const I *idx, const T *upd, const scatter_nd_shape &s) {
    if (global_thread_index() != 0) return;
    for (i64 t = 0; t < s.ntup; t++) {
        i64 off = 0;
        bool ok = true;
        for (i64 j = 0; j < s.k; j++) {
            const i64 a = wrap_index(idx[t * s.k + j], s.dims[j]);
            ok = ok && a >= 0 && a < s.dims[j];
            off += a * s.strides[j];
        }
        if (!ok) continue;
        for (i64 e = 0; e < s.slice; e++) scatter_apply<T, A, RED>(y + off + e, upd + t * s.slice + e);
    }
}

} // namespace kiln

namespace kiln {

// OneHot: y [outer, depth, inner] = values[1] where the index (any numeric type, truncated;
// negative counts from depth; out of range: none) of (outer, inner) equals the depth
// position, else values[0].
template <typename T, typename I>
__device__ __forceinline__ void one_hot(const I *idx, const T *values, T *y, i64 outer, i64 depth, i64 inner) {
    for (i64 i = global_thread_index(); i < outer * depth * inner; i += grid_thread_count()) {
        const i64 p = i % inner, d = (i / inner) % depth, o = i / (inner * depth);
        const double v = (double)idx[o * inner + p];
        bool on = false;
        if (v >= (double)-depth && v < (double)depth) {
            i64 k = (i64)v;
            if (k < 0) k += depth;
            on = k == d;
        }
        y[i] = values[on ? 1 : 0];
    }
}

} // namespace kiln

namespace kiln {

// RotaryEmbedding: x [B, H, S, hd] (sh, ss strides) or [B, S, H*hd]; the first rot dims of
// each head rotate pairwise, (i, i + rot/2) or interleaved (2i, 2i+1), by cos/sin rows of
// rot/2 taken at position_ids[b or 0, s] (pos != null) or at row (b or 0) * S + s. One
// thread per element (it reads its pair partner).
struct rope_shape {
    i64 B, H, S, hd, rot, sb, sh, ss, pos_b, cache_b;
};
template <typename T, typename P, bool INTERLEAVED>
__device__ __forceinline__ void rotary(const T *x, const T *cs, const T *sn, const P *pos, T *y, const rope_shape &s) {
    const i64 total = s.B * s.H * s.S * s.hd, half = s.rot / 2;
    for (i64 t = global_thread_index(); t < total; t += grid_thread_count()) {
        const i64 j = t % s.hd, hs = t / s.hd, si = hs % s.S, h = (hs / s.S) % s.H, b = hs / (s.S * s.H);
        const i64 base = b * s.sb + h * s.sh + si * s.ss;
        if (j >= s.rot) {
            y[base + j] = x[base + j];
            continue;
        }
        const i64 i = INTERLEAVED ? j / 2 : j % half;
        const bool first = INTERLEAVED ? j % 2 == 0 : j < half;
        const i64 i1 = INTERLEAVED ? 2 * i : i, i2 = INTERLEAVED ? 2 * i + 1 : i + half;
        const i64 crow = pos ? (i64)pos[(s.pos_b == 1 ? 0 : b) * s.S + si] * half : ((s.cache_b == 1 ? 0 : b) * s.S + si) * half;
        const float c = to_f32(cs[crow + i]), sv = to_f32(sn[crow + i]);
        const float x1 = to_f32(x[base + i1]), x2 = to_f32(x[base + i2]);
        y[base + j] = from_f32<T>(first ? x1 * c - x2 * sv : x1 * sv + x2 * c);
    }
}

} // namespace kiln
