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

// CONTIGUOUS: every input has the output's shape and is dense, so its offset is the output
// index (no division); codegen picks it when no input broadcasts.
template <typename Expr, typename TOut, int NIN, int RANK, bool CONTIGUOUS>
__device__ __forceinline__ void elementwise(const ew_params<NIN, RANK> &p) {
    const i64 step = grid_thread_count();
    for (i64 i = global_thread_index(); i < p.numel; i += step) {
        i64 off[NIN];
#pragma unroll
        for (int k = 0; k < NIN; k++) off[k] = CONTIGUOUS ? i : broadcast_offset<RANK>(i, p.dims, p.strides[k]);
        store_f32<TOut>(p.out, i, Expr::template eval<NIN>(p.in, off));
    }
}

} // namespace kiln
