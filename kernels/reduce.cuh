// reduce.cuh — Reduce* (any set of axes) and ArgMax / ArgMin, any storage dtype.
//
// The input is seen as two index spaces: output element o (the kept dims, reduced ones of
// size 1) and reduced element r (the reduced dims, kept ones of size 1); the input offset of
// (o, r) is the sum of both through their input strides (broadcast_offset with stride 0 for
// the other space's dims). One warp reduces one output element: its lanes stride over r and
// combine with shuffles. Floating dtypes accumulate in fp32, integer dtypes in 64 bits
// (wrapping, as the CPU evaluator does), so integer sums and products are exact.
//
//     extern "C" __global__ void __launch_bounds__(256) k3_reduce(const float *x, float *y,
//                                                                 kiln::reduce_shape<4> s) {
//         kiln::reduce_rows<float, float, kiln::RED_SUM, 4>(x, y, s);
//     }
//
// Launch: block 256 (8 warps = 8 outputs per step), any 1-D grid (the loop strides over it;
// every thread of a block runs the same number of steps, so the shuffles stay converged).
#pragma once

#include "kiln_common.cuh"

namespace kiln {

enum reduce_op { RED_SUM, RED_MEAN, RED_PROD, RED_MAX, RED_MIN, RED_L1, RED_L2, RED_SUMSQ, RED_LOGSUM, RED_LOGSUMEXP };

template <int RANK> struct reduce_shape {
    i64 n_out, n_red;
    i64 out_dims[RANK], out_strides[RANK]; // kept dims (reduced ones 1) and their input strides
    i64 red_dims[RANK], red_strides[RANK]; // reduced dims (kept ones 1) and their input strides
};

// Load into the accumulator type (fp32 for floating dtypes, i64 for integers and bool).
__device__ __forceinline__ void red_load(float &a, float x) { a = x; }
__device__ __forceinline__ void red_load(float &a, __half x) { a = __half2float(x); }
__device__ __forceinline__ void red_load(float &a, __nv_bfloat16 x) { a = __bfloat162float(x); }
template <typename I> __device__ __forceinline__ void red_load(i64 &a, I x) { a = (i64)x; }
__device__ __forceinline__ void red_load(double &a, double x) { a = x; } // f64 accumulates in f64
template <typename T> __device__ __forceinline__ T red_store(float a) { return from_f32<T>(a); }
template <typename T> __device__ __forceinline__ T red_store(i64 a) { return (T)a; }
template <typename T> __device__ __forceinline__ T red_store(double a) { return (T)a; }

__device__ __forceinline__ float red_abs(float v) { return fabsf(v); }
__device__ __forceinline__ double red_abs(double v) { return fabs(v); }
__device__ __forceinline__ i64 red_abs(i64 v) { return v < 0 ? -v : v; }
__device__ __forceinline__ bool red_isnan(float v) { return v != v; }
__device__ __forceinline__ bool red_isnan(double v) { return v != v; }
__device__ __forceinline__ bool red_isnan(i64) { return false; }
__device__ __forceinline__ float red_exp(float v) { return expf(v); }
__device__ __forceinline__ double red_exp(double v) { return exp(v); }
__device__ __forceinline__ float red_log(float v) { return logf(v); }
__device__ __forceinline__ double red_log(double v) { return log(v); }
__device__ __forceinline__ float red_sqrt(float v) { return sqrtf(v); }
__device__ __forceinline__ double red_sqrt(double v) { return sqrt(v); }

// The identities of max / min per accumulator type.
__device__ __forceinline__ float red_lowest(float) { return neg_inf(); }
__device__ __forceinline__ double red_lowest(double) { return (double)neg_inf(); }
__device__ __forceinline__ i64 red_lowest(i64) { return -0x7fffffffffffffffll - 1; }
__device__ __forceinline__ float red_highest(float) { return -neg_inf(); }
__device__ __forceinline__ double red_highest(double) { return -(double)neg_inf(); }
__device__ __forceinline__ i64 red_highest(i64) { return 0x7fffffffffffffffll; }

template <int OP, typename A> __device__ __forceinline__ A red_identity() {
    if (OP == RED_PROD) return (A)1;
    if (OP == RED_MAX) return red_lowest(A());
    if (OP == RED_MIN) return red_highest(A());
    return (A)0;
}

// max/min keep a NaN once seen, as the CPU evaluator does.
template <int OP, typename A> __device__ __forceinline__ A red_combine(A a, A b) {
    if (OP == RED_PROD) return a * b;
    if (OP == RED_MAX) return (red_isnan(b) || b > a) ? b : a;
    if (OP == RED_MIN) return (red_isnan(b) || b < a) ? b : a;
    return a + b;
}

template <typename A> __device__ __forceinline__ A shfl_xor(A v, int off) { return __shfl_xor_sync(0xffffffffu, v, off); }

template <int OP, typename A> __device__ __forceinline__ A warp_reduce(A v) {
#pragma unroll
    for (int off = 16; off > 0; off /= 2) v = red_combine<OP, A>(v, shfl_xor(v, off));
    return v;
}

template <typename T, typename A, int OP, int RANK>
__device__ __forceinline__ void reduce_rows(const T *x, T *y, const reduce_shape<RANK> &s) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (i64 base = (i64)blockIdx.x * wpb; base < s.n_out; base += (i64)gridDim.x * wpb) {
        const i64 o = base + (threadIdx.x >> 5);
        const bool valid = o < s.n_out;
        const i64 ob = valid ? broadcast_offset<RANK>(o, s.out_dims, s.out_strides) : 0;
        const i64 n = valid ? s.n_red : 0;
        float shift = 0.0f; // LOGSUMEXP: the largest finite value, so that exp cannot overflow
        if (OP == RED_LOGSUMEXP) {
            float m = neg_inf();
            for (i64 r = lane; r < n; r += 32) {
                A v;
                red_load(v, x[ob + broadcast_offset<RANK>(r, s.red_dims, s.red_strides)]);
                const float f = (float)v;
                if (f - f == 0.0f && f > m) m = f; // finite
            }
            m = warp_reduce<RED_MAX, float>(m);
            shift = m == neg_inf() ? 0.0f : m;
        }
        A acc = red_identity<OP, A>();
        for (i64 r = lane; r < n; r += 32) {
            A v;
            red_load(v, x[ob + broadcast_offset<RANK>(r, s.red_dims, s.red_strides)]);
            if (OP == RED_L1) v = red_abs(v);
            if (OP == RED_L2 || OP == RED_SUMSQ) v = v * v;
            if (OP == RED_LOGSUMEXP) v = (A)expf((float)v - shift);
            acc = red_combine<OP, A>(acc, v);
        }
        acc = warp_reduce<OP == RED_MEAN || OP == RED_L1 || OP == RED_L2 || OP == RED_SUMSQ || OP == RED_LOGSUM ||
                                  OP == RED_LOGSUMEXP
                              ? RED_SUM
                              : OP,
                          A>(acc);
        if (valid && lane == 0) {
            if (OP == RED_MEAN) acc = (A)((double)acc / (double)s.n_red);
            if (OP == RED_L2) acc = (A)sqrt((double)acc);
            if (OP == RED_LOGSUM) acc = (A)log((double)acc);
            if (OP == RED_LOGSUMEXP) acc = (A)(log((double)acc) + shift);
            y[o] = red_store<T>(acc);
        }
    }
}

// ArgMax / ArgMin over one axis (red_dims has that one dim): the int64 index of the largest /
// smallest value; ties go to the first index, or the last with SELECT_LAST.
template <bool MAX, bool SELECT_LAST, typename A>
__device__ __forceinline__ bool arg_better(A bv, i64 bi, A av, i64 ai) {
    if (bi < 0) return false;
    if (ai < 0) return true;
    if (MAX ? bv > av : bv < av) return true;
    if (bv == av) return SELECT_LAST ? bi > ai : bi < ai;
    return false;
}

template <typename T, typename A, bool MAX, bool SELECT_LAST, int RANK>
__device__ __forceinline__ void arg_reduce_rows(const T *x, i64 *y, const reduce_shape<RANK> &s) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (i64 base = (i64)blockIdx.x * wpb; base < s.n_out; base += (i64)gridDim.x * wpb) {
        const i64 o = base + (threadIdx.x >> 5);
        const bool valid = o < s.n_out;
        const i64 ob = valid ? broadcast_offset<RANK>(o, s.out_dims, s.out_strides) : 0;
        const i64 n = valid ? s.n_red : 0;
        A best = (A)0;
        i64 bi = -1;
        for (i64 r = lane; r < n; r += 32) {
            A v;
            red_load(v, x[ob + broadcast_offset<RANK>(r, s.red_dims, s.red_strides)]);
            if (arg_better<MAX, SELECT_LAST, A>(v, r, best, bi)) best = v, bi = r;
        }
#pragma unroll
        for (int off = 16; off > 0; off /= 2) {
            const A ov = shfl_xor(best, off);
            const i64 oi = shfl_xor(bi, off);
            if (arg_better<MAX, SELECT_LAST, A>(ov, oi, best, bi)) best = ov, bi = oi;
        }
        if (valid && lane == 0) y[o] = bi < 0 ? 0 : bi;
    }
}

} // namespace kiln

namespace kiln {

// ------------------------------------------------------- fused reduction groups --
// A `reduction` group of passes/fuse_elementwise.c: an elementwise prologue over the
// reduction's input, the reduction, an elementwise epilogue over its output (one or more
// outputs). Codegen writes Expr:
//     static float pre(const void *const *in, const i64 *off);   // the reduced element
//     static void epi(float r, const void *const *in, const i64 *off, void *const *out, i64 o);
// Prologue leaf k is read at off[k] = its (kept, reduced) strides applied to (o, r); epilogue
// leaf k (in + NPRE) at its strides over the output dims applied to o. NEPI1 = max(NEPI, 1).
template <int NPRE, int NEPI1, int RANK, int RANKY> struct reduce_fused_shape {
    i64 n_out, n_red;
    i64 out_dims[RANK], red_dims[RANK];
    i64 pre_out_strides[NPRE][RANK], pre_red_strides[NPRE][RANK];
    i64 y_dims[RANKY];
    i64 epi_strides[NEPI1][RANKY];
};

template <typename Expr, int OP, int NPRE, int NEPI, int NEPI1, int RANK, int RANKY, typename A = float>
__device__ __forceinline__ void reduce_fused(const void *const *in, void *const *out,
                                             const reduce_fused_shape<NPRE, NEPI1, RANK, RANKY> &s) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (i64 base = (i64)blockIdx.x * wpb; base < s.n_out; base += (i64)gridDim.x * wpb) {
        const i64 o = base + (threadIdx.x >> 5);
        const bool valid = o < s.n_out;
        const i64 n = valid ? s.n_red : 0;
        i64 ob[NPRE], off[NPRE];
#pragma unroll
        for (int k = 0; k < NPRE; k++) ob[k] = valid ? broadcast_offset<RANK>(o, s.out_dims, s.pre_out_strides[k]) : 0;
        A shift = (A)0;
        if (OP == RED_LOGSUMEXP) {
            A m = red_lowest(A());
            for (i64 r = lane; r < n; r += 32) {
#pragma unroll
                for (int k = 0; k < NPRE; k++) off[k] = ob[k] + broadcast_offset<RANK>(r, s.red_dims, s.pre_red_strides[k]);
                const A f = Expr::pre(in, off);
                if (f - f == (A)0 && f > m) m = f;
            }
            m = warp_reduce<RED_MAX, A>(m);
            shift = m == red_lowest(A()) ? (A)0 : m;
        }
        A acc = red_identity<OP, A>();
        for (i64 r = lane; r < n; r += 32) {
#pragma unroll
            for (int k = 0; k < NPRE; k++) off[k] = ob[k] + broadcast_offset<RANK>(r, s.red_dims, s.pre_red_strides[k]);
            A v = Expr::pre(in, off);
            if (OP == RED_L1) v = red_abs(v);
            if (OP == RED_L2 || OP == RED_SUMSQ) v = v * v;
            if (OP == RED_LOGSUMEXP) v = red_exp(v - shift);
            acc = red_combine<OP, A>(acc, v);
        }
        acc = warp_reduce<OP == RED_MEAN || OP == RED_L1 || OP == RED_L2 || OP == RED_SUMSQ || OP == RED_LOGSUM ||
                                  OP == RED_LOGSUMEXP
                              ? RED_SUM
                              : OP,
                          A>(acc);
        if (valid && lane == 0) {
            if (OP == RED_MEAN) acc = acc / (A)s.n_red;
            if (OP == RED_L2) acc = red_sqrt(acc);
            if (OP == RED_LOGSUM) acc = red_log(acc);
            if (OP == RED_LOGSUMEXP) acc = red_log(acc) + shift;
            i64 eo[NEPI1];
#pragma unroll
            for (int k = 0; k < NEPI1; k++) eo[k] = NEPI ? broadcast_offset<RANKY>(o, s.y_dims, s.epi_strides[k]) : 0;
            Expr::epi(acc, in + NPRE, eo, out, o);
        }
    }
}

} // namespace kiln

namespace kiln {

// ------------------------------------------- Softmax / LogSoftmax in a fused group --
// A `reduction` group whose reduction is Softmax or LogSoftmax (the elementwise prologue
// feeds it, the epilogue reads its output, shaped like the input). One warp per row (the
// kept dims); the row is the reduced dims (one axis, or the whole tail for opset < 13).
// Every leaf, the prologue's and the epilogue's, has (kept, reduced) strides; so does the
// output (its dense strides split). Expr is the same as reduce_fused's; epi gets the
// element's output offset as o.
template <int NPRE, int NEPI1, int RANK> struct softmax_fused_shape {
    i64 n_out, n_red;
    i64 out_dims[RANK], red_dims[RANK];
    i64 y_out_strides[RANK], y_red_strides[RANK];
    i64 pre_out_strides[NPRE][RANK], pre_red_strides[NPRE][RANK];
    i64 epi_out_strides[NEPI1][RANK], epi_red_strides[NEPI1][RANK];
};

template <typename Expr, bool LOG, int NPRE, int NEPI, int NEPI1, int RANK>
__device__ __forceinline__ void softmax_fused(const void *const *in, void *const *out,
                                              const softmax_fused_shape<NPRE, NEPI1, RANK> &s) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (i64 base = (i64)blockIdx.x * wpb; base < s.n_out; base += (i64)gridDim.x * wpb) {
        const i64 o = base + (threadIdx.x >> 5);
        const bool valid = o < s.n_out;
        const i64 n = valid ? s.n_red : 0;
        i64 ob[NPRE], off[NPRE];
#pragma unroll
        for (int k = 0; k < NPRE; k++) ob[k] = valid ? broadcast_offset<RANK>(o, s.out_dims, s.pre_out_strides[k]) : 0;
        float m = neg_inf();
        for (i64 r = lane; r < n; r += 32) {
#pragma unroll
            for (int k = 0; k < NPRE; k++) off[k] = ob[k] + broadcast_offset<RANK>(r, s.red_dims, s.pre_red_strides[k]);
            m = fmaxf(m, Expr::pre(in, off));
        }
        m = warp_reduce<RED_MAX, float>(m);
        float sum = 0.0f;
        for (i64 r = lane; r < n; r += 32) {
#pragma unroll
            for (int k = 0; k < NPRE; k++) off[k] = ob[k] + broadcast_offset<RANK>(r, s.red_dims, s.pre_red_strides[k]);
            sum += expf(Expr::pre(in, off) - m);
        }
        sum = warp_reduce<RED_SUM, float>(sum);
        const float lse = logf(sum);
        const i64 yb = valid ? broadcast_offset<RANK>(o, s.out_dims, s.y_out_strides) : 0;
        i64 eb[NEPI1], eo[NEPI1];
#pragma unroll
        for (int k = 0; k < NEPI1; k++) eb[k] = valid && NEPI ? broadcast_offset<RANK>(o, s.out_dims, s.epi_out_strides[k]) : 0;
        for (i64 r = lane; r < n; r += 32) {
#pragma unroll
            for (int k = 0; k < NPRE; k++) off[k] = ob[k] + broadcast_offset<RANK>(r, s.red_dims, s.pre_red_strides[k]);
#pragma unroll
            for (int k = 0; k < NEPI1; k++) eo[k] = NEPI ? eb[k] + broadcast_offset<RANK>(r, s.red_dims, s.epi_red_strides[k]) : 0;
            const float v = Expr::pre(in, off) - m;
            Expr::epi(LOG ? v - lse : expf(v) / sum, in + NPRE, eo, out,
                      yb + broadcast_offset<RANK>(r, s.red_dims, s.y_red_strides));
        }
    }
}

} // namespace kiln

namespace kiln {

// ------------------------------------------- LayerNormalization / RMSNormalization --
// Rows of `cols` elements (the dims from the axis on); one warp per row: the mean, then the
// variance around it (two passes, as the CPU evaluator does; RMS: mean 0 and the mean
// square), then y = (x - mean) * inv * scale [+ bias] with inv = 1 / sqrt(var + eps). Scale
// and bias broadcast to x's shape through their strides (0 on broadcast dims); mean_out and
// inv_out (fp32, one per row) may be null.
template <int RANK> struct norm_shape {
    i64 rows, cols;
    i64 dims[RANK];
    i64 scale_strides[RANK], bias_strides[RANK];
};

template <typename T, typename TS, typename TB, bool RMS, int RANK>
__device__ __forceinline__ void norm_rows(const T *x, const TS *scale, const TB *bias, T *y, float *mean_out,
                                          float *inv_out, float eps, const norm_shape<RANK> &s) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (i64 base = (i64)blockIdx.x * wpb; base < s.rows; base += (i64)gridDim.x * wpb) {
        const i64 row = base + (threadIdx.x >> 5);
        const bool valid = row < s.rows;
        const i64 n = valid ? s.cols : 0, x0 = row * s.cols;
        float mean = 0.0f;
        if (!RMS) {
            float sum = 0.0f;
            for (i64 j = lane; j < n; j += 32) sum += to_f32(x[x0 + j]);
            mean = warp_reduce<RED_SUM, float>(sum) / (float)(s.cols > 0 ? s.cols : 1);
        }
        float sq = 0.0f;
        for (i64 j = lane; j < n; j += 32) {
            const float d = to_f32(x[x0 + j]) - mean;
            sq += d * d;
        }
        const float var = warp_reduce<RED_SUM, float>(sq) / (float)(s.cols > 0 ? s.cols : 1);
        const float inv = 1.0f / sqrtf(var + eps);
        if (valid && lane == 0) {
            if (mean_out) mean_out[row] = mean;
            if (inv_out) inv_out[row] = inv;
        }
        for (i64 j = lane; j < n; j += 32) {
            const i64 i = x0 + j;
            float v = (to_f32(x[i]) - mean) * inv * to_f32(scale[broadcast_offset<RANK>(i, s.dims, s.scale_strides)]);
            if (bias) v += to_f32(bias[broadcast_offset<RANK>(i, s.dims, s.bias_strides)]);
            y[i] = from_f32<T>(v);
        }
    }
}

} // namespace kiln

namespace kiln {

// ------------------------------------------------------------------ CumSum, CumProd --
// x viewed as [outer, len, inner]; one thread scans one (outer, inner) line sequentially
// (exclusive: each output leaves its own element out; reverse: from the end; PROD: CumProd).
// A is the accumulator (fp32 for f16/bf16/f32, f64 for f64, wrapping i64 for integers).
template <typename T, typename A, bool EXCLUSIVE, bool REVERSE, bool PROD = false>
__device__ __forceinline__ void cumsum(const T *x, T *y, i64 outer, i64 len, i64 inner) {
    for (i64 line = global_thread_index(); line < outer * inner; line += grid_thread_count()) {
        const i64 o = line / inner, in = line - o * inner, base = o * len * inner + in;
        A acc = (A)(PROD ? 1 : 0);
        for (i64 k = 0; k < len; k++) {
            const i64 i = base + (REVERSE ? len - 1 - k : k) * inner;
            A v;
            red_load(v, x[i]);
            if (EXCLUSIVE) {
                y[i] = red_store<T>(acc);
                acc = PROD ? acc * v : acc + v;
            } else {
                acc = PROD ? acc * v : acc + v;
                y[i] = red_store<T>(acc);
            }
        }
    }
}

} // namespace kiln

namespace kiln {

// ------------------------------------ NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss --
// x [N, C, D] (scores; SOFTMAX: log-softmax over C first), target [N, D] class ids, weight
// [C] or null. Element loss -w[t] * lp[n, t, d], 0 (and weight 0) where t == ignore_index.
// RED 0 none: y[n, d] per element (any 1-D grid); 1 sum, 2 mean (sum / summed weights): one
// block of 256 threads reduces everything (launch grid 1). log_prob (SOFTMAX only, may be
// null) receives the log-softmax of x. A: fp32 (f64 for f64 inputs).
template <typename T, typename I, typename A, bool SOFTMAX, int RED>
__device__ __forceinline__ void nll_loss(const T *x, const I *target, const T *weight, T *y, T *log_prob, i64 N,
                                         i64 C, i64 D, bool has_ii, i64 ii) {
    __shared__ A part_loss[32], part_w[32];
    A total = (A)0, wsum = (A)0;
    const i64 stride = RED == 0 ? grid_thread_count() : (i64)blockDim.x;
    for (i64 e = RED == 0 ? global_thread_index() : (i64)threadIdx.x; e < N * D; e += stride) {
        const i64 n = e / D, d = e - n * D, base = n * C * D + d;
        A shift = (A)0;
        if (SOFTMAX) {
            A m = red_lowest(A()), s = (A)0, v;
            for (i64 k = 0; k < C; k++) {
                red_load(v, x[base + k * D]);
                m = v > m ? v : m;
            }
            for (i64 k = 0; k < C; k++) {
                red_load(v, x[base + k * D]);
                s += (A)exp((double)(v - m));
            }
            shift = m + (A)log((double)s);
            if (log_prob)
                for (i64 k = 0; k < C; k++) {
                    red_load(v, x[base + k * D]);
                    log_prob[base + k * D] = red_store<T>((A)(v - shift));
                }
        }
        const i64 t = (i64)target[e];
        A loss = (A)0, w = (A)0;
        if (!(has_ii && t == ii) && t >= 0 && t < C) {
            if (weight) red_load(w, weight[t]);
            else w = (A)1;
            A v;
            red_load(v, x[base + t * D]);
            loss = -w * (v - shift);
        }
        if (RED == 0) y[e] = red_store<T>(loss);
        total += loss;
        wsum += w;
    }
    if (RED == 0) return;
    total = warp_reduce<RED_SUM, A>(total);
    wsum = warp_reduce<RED_SUM, A>(wsum);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part_loss[warp] = total, part_w[warp] = wsum;
    __syncthreads();
    if (threadIdx.x == 0) {
        A tl = (A)0, tw = (A)0;
        for (int k = 0; k < (int)(blockDim.x >> 5); k++) tl += part_loss[k], tw += part_w[k];
        y[0] = red_store<T>(RED == 1 ? tl : tl / tw);
    }
}

} // namespace kiln

namespace kiln {

// Hardmax: 1 at the first largest element of each row (the reduced dims), 0 elsewhere; y is
// shaped like x, so both use x's (kept, reduced) strides. One warp per row.
template <typename T, typename A, int RANK>
__device__ __forceinline__ void hardmax_rows(const T *x, T *y, const reduce_shape<RANK> &s) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (i64 base = (i64)blockIdx.x * wpb; base < s.n_out; base += (i64)gridDim.x * wpb) {
        const i64 o = base + (threadIdx.x >> 5);
        const bool valid = o < s.n_out;
        const i64 ob = valid ? broadcast_offset<RANK>(o, s.out_dims, s.out_strides) : 0;
        const i64 n = valid ? s.n_red : 0;
        A best = (A)0;
        i64 bi = -1;
        for (i64 r = lane; r < n; r += 32) {
            A v;
            red_load(v, x[ob + broadcast_offset<RANK>(r, s.red_dims, s.red_strides)]);
            if (arg_better<true, false, A>(v, r, best, bi)) best = v, bi = r;
        }
#pragma unroll
        for (int off = 16; off > 0; off /= 2) {
            const A ov = shfl_xor(best, off);
            const i64 oi = shfl_xor(bi, off);
            if (arg_better<true, false, A>(ov, oi, best, bi)) best = ov, bi = oi;
        }
        for (i64 r = lane; r < n; r += 32)
            y[ob + broadcast_offset<RANK>(r, s.red_dims, s.red_strides)] = red_store<T>((A)(r == bi ? 1 : 0));
    }
}

} // namespace kiln

namespace kiln {

// LpNormalization (p 1 or 2) along one axis: y = x / ||row||_p, 0 where the norm is 0. One
// warp per row of x's reduce_shape (the axis is the reduced dim).
template <typename T, typename A, int P, int RANK>
__device__ __forceinline__ void lp_norm_rows(const T *x, T *y, const reduce_shape<RANK> &s) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (i64 base = (i64)blockIdx.x * wpb; base < s.n_out; base += (i64)gridDim.x * wpb) {
        const i64 o = base + (threadIdx.x >> 5);
        const bool valid = o < s.n_out;
        const i64 ob = valid ? broadcast_offset<RANK>(o, s.out_dims, s.out_strides) : 0;
        const i64 n = valid ? s.n_red : 0;
        A acc = (A)0, v;
        for (i64 r = lane; r < n; r += 32) {
            red_load(v, x[ob + broadcast_offset<RANK>(r, s.red_dims, s.red_strides)]);
            acc += P == 1 ? red_abs(v) : v * v;
        }
        acc = warp_reduce<RED_SUM, A>(acc);
        const A norm = P == 1 ? acc : (A)sqrt((double)acc);
        for (i64 r = lane; r < n; r += 32) {
            const i64 i = ob + broadcast_offset<RANK>(r, s.red_dims, s.red_strides);
            red_load(v, x[i]);
            y[i] = red_store<T>(norm == (A)0 ? (A)0 : v / norm);
        }
    }
}

} // namespace kiln

namespace kiln {

// LayerNormalization / RMSNormalization inside a fused group: like softmax_fused (same shape
// struct), with Expr::affine(v, in, off) applying Scale [and B] (prologue-side leaves at the
// element's offsets) between the normalization and the epilogue. fp32.
template <typename Expr, bool RMS, int NPRE, int NEPI, int NEPI1, int RANK>
__device__ __forceinline__ void norm_fused(const void *const *in, void *const *out,
                                           const softmax_fused_shape<NPRE, NEPI1, RANK> &s, float eps) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (i64 base = (i64)blockIdx.x * wpb; base < s.n_out; base += (i64)gridDim.x * wpb) {
        const i64 o = base + (threadIdx.x >> 5);
        const bool valid = o < s.n_out;
        const i64 n = valid ? s.n_red : 0;
        i64 ob[NPRE], off[NPRE];
#pragma unroll
        for (int k = 0; k < NPRE; k++) ob[k] = valid ? broadcast_offset<RANK>(o, s.out_dims, s.pre_out_strides[k]) : 0;
        float mean = 0.0f;
        if (!RMS) {
            float sum = 0.0f;
            for (i64 r = lane; r < n; r += 32) {
#pragma unroll
                for (int k = 0; k < NPRE; k++) off[k] = ob[k] + broadcast_offset<RANK>(r, s.red_dims, s.pre_red_strides[k]);
                sum += Expr::pre(in, off);
            }
            mean = warp_reduce<RED_SUM, float>(sum) / (float)(s.n_red > 0 ? s.n_red : 1);
        }
        float sq = 0.0f;
        for (i64 r = lane; r < n; r += 32) {
#pragma unroll
            for (int k = 0; k < NPRE; k++) off[k] = ob[k] + broadcast_offset<RANK>(r, s.red_dims, s.pre_red_strides[k]);
            const float d = Expr::pre(in, off) - mean;
            sq += d * d;
        }
        const float inv = 1.0f / sqrtf(warp_reduce<RED_SUM, float>(sq) / (float)(s.n_red > 0 ? s.n_red : 1) + eps);
        const i64 yb = valid ? broadcast_offset<RANK>(o, s.out_dims, s.y_out_strides) : 0;
        i64 eb[NEPI1], eo[NEPI1];
#pragma unroll
        for (int k = 0; k < NEPI1; k++) eb[k] = valid && NEPI ? broadcast_offset<RANK>(o, s.out_dims, s.epi_out_strides[k]) : 0;
        for (i64 r = lane; r < n; r += 32) {
#pragma unroll
            for (int k = 0; k < NPRE; k++) off[k] = ob[k] + broadcast_offset<RANK>(r, s.red_dims, s.pre_red_strides[k]);
#pragma unroll
            for (int k = 0; k < NEPI1; k++) eo[k] = NEPI ? eb[k] + broadcast_offset<RANK>(r, s.red_dims, s.epi_red_strides[k]) : 0;
            const float v = Expr::affine((Expr::pre(in, off) - mean) * inv, in, off);
            Expr::epi(v, in + NPRE, eo, out, yb + broadcast_offset<RANK>(r, s.red_dims, s.y_red_strides));
        }
    }
}

} // namespace kiln

namespace kiln {

// LRN across channels of x [N, C, inner]: y = x / (bias + alpha / size * sum x^2)^beta over the
// channel window [c - (size-1)/2, c + size/2] clipped to [0, C). One thread per element.
template <typename T>
__device__ __forceinline__ void lrn(const T *x, T *y, i64 N, i64 C, i64 inner, i64 size, float alpha, float beta,
                                    float bias) {
    const i64 lo_off = (size - 1) / 2, hi_off = size / 2;
    for (i64 i = global_thread_index(); i < N * C * inner; i += grid_thread_count()) {
        const i64 j = i % inner, c = (i / inner) % C, n = i / (inner * C);
        const i64 lo = c - lo_off < 0 ? 0 : c - lo_off, hi = c + hi_off > C - 1 ? C - 1 : c + hi_off;
        float s = 0.0f;
        for (i64 k = lo; k <= hi; k++) {
            const float v = to_f32(x[(n * C + k) * inner + j]);
            s += v * v;
        }
        y[i] = from_f32<T>(to_f32(x[i]) / powf(bias + alpha / (float)size * s, beta));
    }
}

} // namespace kiln

namespace kiln {

// TopK along one axis of x [outer, len, inner] -> values / indices [outer, k, inner]. One thread
// per line picks k times the next element in the order (largest or smallest first, ties to
// the lower index, as the CPU evaluator's stable sort): O(k * len), no scratch memory.
template <typename T, typename A, bool LARGEST>
__device__ __forceinline__ bool topk_before(A va, i64 ia, A vb, i64 ib) { // a comes before b
    return (LARGEST ? va > vb : va < vb) || (va == vb && ia < ib);
}
template <typename T, typename A, bool LARGEST>
__device__ __forceinline__ void topk(const T *x, T *vals, i64 *idx, i64 outer, i64 len, i64 inner, i64 k) {
    for (i64 line = global_thread_index(); line < outer * inner; line += grid_thread_count()) {
        const i64 o = line / inner, in = line - o * inner, base = o * len * inner + in, obase = o * k * inner + in;
        A pv = (A)0;
        i64 pi = -1;
        for (i64 j = 0; j < k; j++) {
            A bv = (A)0;
            i64 bi = -1;
            for (i64 e = 0; e < len; e++) {
                A v;
                red_load(v, x[base + e * inner]);
                if (pi >= 0 && !topk_before<T, A, LARGEST>(pv, pi, v, e)) continue; // taken already
                if (bi < 0 || topk_before<T, A, LARGEST>(v, e, bv, bi)) bv = v, bi = e;
            }
            if (vals) vals[obase + j * inner] = x[base + bi * inner];
            if (idx) idx[obase + j * inner] = bi;
            pv = bv, pi = bi;
        }
    }
}

} // namespace kiln

namespace kiln {

// Einsum: one thread per output element sums, over the contracted labels, the product of
// every operand at its offset. Each operand has strides over the output labels and over the
// contracted ones (a label repeated in one operand adds its strides: a diagonal; a broadcast
// ellipsis dim has stride 0). RO / RR: counts of output / contracted labels (at least 1).
template <int NIN, int RO, int RR> struct einsum_shape {
    i64 n_out, n_red;
    i64 out_dims[RO], red_dims[RR];
    i64 out_strides[NIN][RO], red_strides[NIN][RR];
};
template <typename T, typename A, int NIN, int RO, int RR>
__device__ __forceinline__ void einsum(const T *const *x, T *y, const einsum_shape<NIN, RO, RR> &s) {
    for (i64 o = global_thread_index(); o < s.n_out; o += grid_thread_count()) {
        i64 ob[NIN];
#pragma unroll
        for (int k = 0; k < NIN; k++) ob[k] = broadcast_offset<RO>(o, s.out_dims, s.out_strides[k]);
        A acc = (A)0;
        for (i64 r = 0; r < s.n_red; r++) {
            A p = (A)1, v;
#pragma unroll
            for (int k = 0; k < NIN; k++) {
                red_load(v, x[k][ob[k] + broadcast_offset<RR>(r, s.red_dims, s.red_strides[k])]);
                p = p * v;
            }
            acc = acc + p;
        }
        y[o] = red_store<T>(acc);
    }
}

} // namespace kiln
