// elementwise.cuh — the fused elementwise DAG: one kernel computes a whole group of
// elementwise ops per output element, reading each input once and writing the output once.
//
// Codegen fills in the per-element expression as a struct with one static member function,
// then instantiates the kernel template in an extern "C" wrapper whose name is the group's:
//
//     #include "elementwise.cuh"
//     struct group_7_expr {          // out = relu(x0 * x1 + x2), x1 fp16, x2 broadcast
//         template <int NIN>
//         static __device__ __forceinline__ float eval(const void *const (&in)[NIN], const kiln::i64 (&off)[NIN]) {
//             float x0 = kiln::load_f32<float>(in[0], off[0]);
//             float x1 = kiln::load_f32<__half>(in[1], off[1]);
//             float x2 = kiln::load_f32<float>(in[2], off[2]);
//             return fmaxf(x0 * x1 + x2, 0.0f);
//         }
//     };
//     extern "C" __global__ void group_7(kiln::ew_params<3, 4> p) {
//         kiln::elementwise<group_7_expr, float, 3, 4, false>(p);
//     }
//
// The expression returns its value in the compute type of the output's dtype (float for
// f32/f16/bf16, double for f64, i64/u64 for integers, bool for bool); ew_store<TOut> turns it
// into the storage type (fp16/bf16 round to nearest even, integers truncate, bool is a byte).
//
// The host passes ew_params by value (cuLaunchKernel's params[0] points at it); its layout is
// plain C: NIN pointers, the output pointer, then 64-bit integers, so a C struct with the same
// members matches it. Launch a 1-D grid of any size: the loop strides over the grid.
#pragma once

#include "kiln_common.cuh"

namespace kiln {

template <int NIN, int RANK> struct ew_params {
    const void *in[NIN];
    void *out;
    i64 numel;                 // output elements
    i64 dims[RANK];            // output shape
    i64 strides[NIN][RANK];    // per input, per output dim, in elements; 0 = broadcast
};

// Storage conversion of the expression's value: C conversion, except fp16/bf16 (rounding).
template <typename T> struct ew_store {
    template <typename V> static __device__ __forceinline__ T conv(V v) { return (T)v; }
};
template <> struct ew_store<__half> {
    static __device__ __forceinline__ __half conv(float v) { return from_f32<__half>(v); }
};
template <> struct ew_store<__nv_bfloat16> {
    static __device__ __forceinline__ __nv_bfloat16 conv(float v) { return from_f32<__nv_bfloat16>(v); }
};

// ------------------------------------------------- integer and cast helpers --
// These follow kiln's CPU evaluator (ir/ops_elementwise.c), the golden semantics: integer
// division truncates, x / 0 and x % 0 are 0 (not a trap), INT_MIN / -1 wraps; float -> int
// truncates toward zero and saturates, NaN -> 0.
__device__ __forceinline__ i64 idiv(i64 a, i64 b) { return b == 0 ? 0 : b == -1 ? (i64)(0ull - (u64)a) : a / b; }
__device__ __forceinline__ u64 udiv(u64 a, u64 b) { return b ? a / b : 0; }
// PY: the result takes the divisor's sign (ONNX Mod fmod=0), else the dividend's (fmod=1).
template <bool PY> __device__ __forceinline__ i64 imod(i64 a, i64 b) {
    if (b == 0 || b == -1) return 0;
    i64 r = a % b;
    if (PY && r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}
__device__ __forceinline__ u64 umod(u64 a, u64 b) { return b ? a % b : 0; }
__device__ __forceinline__ float fmod_py(float x, float y) {
    float r = fmodf(x, y);
    if (r != 0.0f && ((r < 0.0f) != (y < 0.0f))) r += y;
    return r;
}
__device__ __forceinline__ i64 sat_i(double d, i64 lo, i64 hi) {
    if (d != d) return 0;
    if (d >= (double)hi) return hi; // (double)INT64_MAX is 2^63: still right
    if (d <= (double)lo) return lo;
    return (i64)d;
}
__device__ __forceinline__ u64 sat_u(double d, u64 hi) {
    if (d != d || d <= 0.0) return 0;
    if (d >= (double)hi) return hi;
    return (u64)d;
}
// Max/Min that propagate NaN from either side like numpy (and the CPU evaluator).
template <typename T> __device__ __forceinline__ T max_nan(T a, T b) { return (a > b || a != a) ? a : b; }
template <typename T> __device__ __forceinline__ T min_nan(T a, T b) { return (a < b || a != a) ? a : b; }
__device__ __forceinline__ float pos_inf() { return __int_as_float(0x7f800000); }

// CONTIGUOUS: every input has the output's shape and is dense, so its offset is the output
// index (no division); codegen picks it when no input broadcasts.
template <typename Expr, typename TOut, int NIN, int RANK, bool CONTIGUOUS>
__device__ __forceinline__ void elementwise(const ew_params<NIN, RANK> &p) {
    const i64 step = grid_thread_count();
    for (i64 i = global_thread_index(); i < p.numel; i += step) {
        i64 off[NIN];
#pragma unroll
        for (int k = 0; k < NIN; k++) off[k] = CONTIGUOUS ? i : broadcast_offset<RANK>(i, p.dims, p.strides[k]);
        static_cast<TOut *>(p.out)[i] = ew_store<TOut>::conv(Expr::template eval<NIN>(p.in, off));
    }
}

// NOUT outputs of one shape in one pass (codegen uses it when outputs are written in place
// over each other's inputs): Expr::eval reads every input of element i, then stores each
// output's element i itself.
template <typename Expr, int NIN, int NOUT, int RANK, bool CONTIGUOUS>
__device__ __forceinline__ void elementwise_multi(const ew_params<NIN, RANK> &p, void *const (&out)[NOUT]) {
    const i64 step = grid_thread_count();
    for (i64 i = global_thread_index(); i < p.numel; i += step) {
        i64 off[NIN];
#pragma unroll
        for (int k = 0; k < NIN; k++) off[k] = CONTIGUOUS ? i : broadcast_offset<RANK>(i, p.dims, p.strides[k]);
        Expr::template eval<NIN>(p.in, off, out, i);
    }
}

} // namespace kiln
