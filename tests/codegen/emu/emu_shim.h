// emu_shim.h — just enough of CUDA to compile kiln's generated module with a host C++ compiler
// and run it on the CPU (tests/codegen/emu_codegen.sh): force-included before the module.
// Threads of a block are coroutines (emu_sched.cpp); __shared__ is a static, which the
// coroutines of the running block share; __syncthreads and warp shuffles are block barriers.
#pragma once
// Kernels replace their inline PTX (mma.sync, cvt.rna.tf32) with calls into the emulator.
#define KILN_EMU 1
#include <math.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __grid_constant__

struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct emu_dim3 {
    unsigned x, y, z;
};
extern "C" {
extern emu_dim3 blockIdx, threadIdx, blockDim, gridDim;
void __syncthreads(void);
float emu_shfl_xor(float v, int off);
}
static inline float __shfl_xor_sync(unsigned, float v, int off) { return emu_shfl_xor(v, off); }
extern "C" float emu_shfl_idx(float v, int src);
static inline float __shfl_sync(unsigned, float v, int src) { return emu_shfl_idx(v, src); }
extern "C" unsigned emu_shfl_idx_u32(unsigned v, int src);
static inline unsigned __shfl_sync(unsigned, unsigned v, int src) { return emu_shfl_idx_u32(v, src); }
extern "C" unsigned long long emu_shfl_xor64(unsigned long long v, int off);
static inline double __shfl_xor_sync(unsigned, double v, int off) {
    unsigned long long u;
    memcpy(&u, &v, 8);
    u = emu_shfl_xor64(u, off);
    memcpy(&v, &u, 8);
    return v;
}
static inline long long __shfl_xor_sync(unsigned, long long v, int off) {
    return (long long)emu_shfl_xor64((unsigned long long)v, off);
}
static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}
