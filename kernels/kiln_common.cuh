// kiln_common.cuh — what every kiln kernel shares: integer types, fp16/bf16 conversions to and
// from fp32 (kiln computes in fp32 and stores in the tensor's dtype), and index math.
//
// Compiled by NVRTC only (kernels are generated at build time, see codegen/nvrtc.h), so it uses
// no host headers; cuda_fp16.h and cuda_bf16.h come from the CUDA include directory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace kiln {

typedef long long i64;
typedef unsigned long long u64;
typedef int i32;
typedef unsigned int u32;

// The largest rank kiln handles (KILN_MAX_RANK in include/kiln.h).
constexpr int max_rank = 8;

// ---------------------------------------------------------------- conversions --
// Loads widen to fp32 and stores round to nearest even, so that a fused group computes each
// intermediate in fp32 whatever the storage type is: the CPU evaluator does the same.
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(i32 x) { return (float)x; }
__device__ __forceinline__ float to_f32(i64 x) { return (float)x; }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

// Element `i` of a type-erased tensor as fp32 (codegen knows each input's dtype).
template <typename T> __device__ __forceinline__ float load_f32(const void *base, i64 i) {
    return to_f32(static_cast<const T *>(base)[i]);
}
template <typename T> __device__ __forceinline__ void store_f32(void *base, i64 i, float v) {
    static_cast<T *>(base)[i] = from_f32<T>(v);
}

// -inf without math.h (NVRTC has no INFINITY macro): the identity of max.
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// --------------------------------------------------- programmatic dependent launch --
// Every generated kernel begins with pdl_enter(): codegen inserts the call after the opening
// brace of each __global__ definition (kiln_cg_dedupe_kernel, codegen/cg_util.c). On sm_90+ the
// runtime launches a kernel that follows another in its stream with programmatic stream
// serialization (runtime.c): the next grid is launched as soon as every block of the previous one
// has exited, and its blocks are placed and started while the previous grid's writes drain and
// its completion is processed, instead of after that.
// griddepcontrol.wait holds each thread until the previous grid has completed and its writes are
// visible. Nothing before it may read or write memory: the previous kernel may still read a buffer
// this one is about to overwrite (the arena reuses memory by liveness). Launched without the
// attribute it returns at once; below sm_90 (and in the CPU emulator) the call is empty, and the
// runtime launches such images plainly.
// No griddepcontrol.launch_dependents (an earlier launch of the next grid): measured on an H100
// (ResNet-50 b32 fp16), triggering it right after the wait made the network 3% slower than no
// PDL at all and the layer-2 conv pair 4% slower, while the wait alone made them 1.4% and 6%
// faster (docs/gpu.md, twenty-first session). KILN_PDL_TRIGGER=1 puts it back, for experiments.
#ifndef KILN_PDL_TRIGGER
#define KILN_PDL_TRIGGER 0
#endif
__device__ __forceinline__ void pdl_enter() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#if KILN_PDL_TRIGGER
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
#endif
}

// ---------------------------------------------------------------------- index --
__host__ __device__ constexpr i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }

// This thread's index in a 1-D grid, and the grid's thread count (for grid-stride loops,
// which keep one launch valid for any element count).
__device__ __forceinline__ i64 global_thread_index() {
    return (i64)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ i64 grid_thread_count() { return (i64)gridDim.x * blockDim.x; }

// Offset of output element `linear` in an input whose strides (in elements) are given per
// output dim; a broadcast dim has stride 0. RANK is a compile-time constant, so the loop
// unrolls and the divisions by dims stay in registers.
template <int RANK>
__device__ __forceinline__ i64 broadcast_offset(i64 linear, const i64 (&dims)[RANK], const i64 (&strides)[RANK]) {
    i64 off = 0;
#pragma unroll
    for (int d = RANK - 1; d >= 0; d--) {
        i64 q = linear / dims[d];
        off += (linear - q * dims[d]) * strides[d];
        linear = q;
    }
    return off;
}

} // namespace kiln
