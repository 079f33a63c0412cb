// conv_wgmma.cuh — fp16 NHWC implicit-GEMM convolution on Hopper's warpgroup MMA (wgmma,
// sm_90a only), emitted by codegen/cg_conv_nhwc.c for the "wg..." tile candidates.
//
//     conv_wgmma_f16<SHP, BM, BN, WG, STAGES, SPLITK, E, SWZ>(x, w, bias, res, y, part, smem)
//
// Same GEMM view, arguments, SHP struct, epilogue E and split-K protocol as conv_nhwc_f16
// (kernels/conv_nhwc.cuh): rows m = output pixels, columns = output channels, depth = (r, s, c)
// with c innermost; x NHWC, w OHWI [K][R][S][C], y NHWC; SPLITK > 1 writes fp32 partials
// part[z][M][K] summed by conv_nhwc_splitk_reduce. Requires C % 8 == 0 and K % 8 == 0.
//
// Launch: 128 * WG threads (WG warpgroups stacked along M, each BM / WG rows = MI m64 blocks,
// all BN columns), grid (ceil(M / BM), ceil(K / BN), SPLITK), dynamic shared memory
// KILN_WGMMA_SMEM_BYTES(BM, BN, STAGES), 128-byte aligned. BK is 64 (four k16 steps per tile).
//
// Shared layout: wgmma's no-swizzle ("interleaved") K-major canonical layout. A tile of R rows x
// 64 halves is a grid of core matrices (8 rows x 16 bytes, 128 contiguous bytes, row i at 16 i):
// core matrix (row group g, chunk kc) at byte g * 1024 + kc * 128. In the matrix descriptor the
// leading-dimension byte offset (between core matrices adjacent in K) is 128 and the stride
// byte offset (adjacent in M or N) is 1024. A and B (weights, [n][k] = K-major B) use the
// same layout, so both wgmma operands come from shared memory with transpose flags 0.
// SWZ = true: the 128-byte swizzle mode instead: row r of an 8-row, 1024-byte atom is 128
// contiguous bytes at r * 128, its 16-byte chunk c stored at chunk position c ^ r (bank-conflict
// free for wgmma's reads); shared memory then needs 1 KiB more for the 1024-byte alignment.
// Each thread copies 16-byte chunks (row t % 8 of a core matrix, chunk (t / 8) % 8): a warp
// writes 512 contiguous shared bytes (no bank conflicts) and reads 64 contiguous global bytes
// from each of 8 pixels.
//
// Pipeline: STAGES slots filled by cp.async (zero fill for padding taps and tails, as in
// conv_nhwc.cuh), prefetch distance STAGES - 2, and one wgmma group left in flight
// (wgmma.wait_group 1): the slot refilled at iteration i was read by the wgmma group of
// iteration i - 2, which every warpgroup has waited for before the barrier of iteration i.
// Generic-proxy writes (cp.async) become visible to wgmma (async proxy) through
// fence.proxy.async after the cp.async wait and before the barrier.
//
// Accumulator fragment (m64nNk16, f32): thread lane l of warp w (of its warpgroup) holds
// d[4 j + q] = D[16 w + l / 4 + 8 (q / 2)][8 j + 2 (l % 4) + q % 2], j < N / 8.
//
// Other targets (sm_80, sm_90 without "a", the PTX image, the CPU emulator) have no wgmma:
// there the same launch runs conv_nhwc_f16 with a BK = 32, 4-stage mma.sync tile of the same
// BM x BN and 4 * WG warps (its shared memory fits in this kernel's), so a bundle with a "wg"
// tile stays correct on every architecture and the emulator checks the plumbing.
#pragma once

#include "conv_nhwc.cuh"

namespace kiln {

#define KILN_WGMMA_SMEM_BYTES(BM, BN, STAGES) ((STAGES) * ((BM) + (BN)) * 64 * 2)

template <class...> using kiln_void_t = void; // (detection of optional members: tma_rows_of, epi_has_apply_b)

#if defined(__CUDA_ARCH_FEAT_SM90_ALL) && !defined(KILN_EMU)
#define KILN_HAVE_WGMMA 1
#elif defined(KILN_WGMMA_REQUIRE) && defined(__CUDA_ARCH__)
#error "KILN_WGMMA_REQUIRE: this target has no wgmma (__CUDA_ARCH_FEAT_SM90_ALL undefined)"
#endif

// Diagnostics for timing experiments only (wrong outputs; set through KILN_NVRTC_DEFINES, docs/tuning.md):
// KILN_EXP_NOMMA = 1: conv_tma_pp_f16 issues no wgmma (the loads, barriers and epilogue alone);
// KILN_EXP_DIAG = 2: no TMA store of the output; 4: a conv pair's A tiles all from its second source;
// 5: every A tile a tiled load of weight rows instead of an im2col load (BN = 128 tiles).
#ifndef KILN_EXP_NOMMA
#define KILN_EXP_NOMMA 0
#endif
#ifndef KILN_EXP_DIAG
#define KILN_EXP_DIAG 0
#endif

// A 2-block cluster ("tx" tiles): on sm_90a; elsewhere the kernel runs the fallback without one.
#ifdef KILN_HAVE_WGMMA
#define KILN_CLUSTER2 __cluster_dims__(2, 1, 1)
#else
#define KILN_CLUSTER2
#endif

#ifdef KILN_HAVE_WGMMA

// wgmma's 64-bit shared memory descriptor, no swizzle: start address, leading-dimension byte
// offset (K) and stride byte offset (M/N), each in 16-byte units (PTX ISA "Matrix Descriptor").
__device__ __forceinline__ u64 wgmma_desc(const void *p, unsigned lbo, unsigned sbo) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    return (u64)((a & 0x3FFFF) >> 4) | ((u64)(lbo >> 4) << 16) | ((u64)(sbo >> 4) << 32);
}
// The same for the 128-byte swizzle mode (1 in bits 62-63): K-major rows of 128 bytes, 8-row
// atoms of 1024 bytes (stride byte offset), 16-byte chunk c of row r stored at chunk c ^ r; the
// leading byte offset is unused (1). p advances along K inside a row (the hardware swizzles the
// address, so the atom must be 1024-byte aligned).
__device__ __forceinline__ u64 wgmma_desc_sw128(const void *p) {
    return wgmma_desc(p, 16, 1024) | ((u64)1 << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Pins the accumulators in registers at this point (an empty asm that "redefines" them), so
// that no move or rematerialisation lands inside a wgmma pipeline stage (ptxas C7515 would
// otherwise serialize the wgmmas).
template <int N> __device__ __forceinline__ void wgmma_pin(float *d) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// D[64 x N] += A[64 x 16] * B[16 x N], both operands from shared memory (descriptors), K-major.
template <int N> struct wgmma_f16;
template <> struct wgmma_f16<64> {
    static __device__ __forceinline__ void run(float *d, u64 da, u64 db) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
                     "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                     : "l"(da), "l"(db), "r"(1));
    }
};
template <> struct wgmma_f16<128> {
    static __device__ __forceinline__ void run(float *d, u64 da, u64 db) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
                     "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                       "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                       "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                       "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                       "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                     : "l"(da), "l"(db), "r"(1));
    }
};
// (n112: the halo tiles of 14 output rows x 8 columns, conv_halo_pp_f16)
template <> struct wgmma_f16<112> {
    static __device__ __forceinline__ void run(float *d, u64 da, u64 db) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %58, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n112k16.f32.f16.f16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                     "%48, %49, %50, %51, %52, %53, %54, %55"
                     "}, %56, %57, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                       "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                       "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                       "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55])
                     : "l"(da), "l"(db), "r"(1));
    }
};
// D[64 x N] += A[64 x 16] * B[16 x N], A from registers (the m16n8k16 A fragment of each warp's 16
// rows: a[0] = (row g, k 2 t, 2 t + 1), a[1] = (g + 8, same k), a[2] = (g, 2 t + 8, + 9), a[3] = (g + 8,
// 2 t + 8, + 9) with g = lane / 4, t = lane % 4), B from shared memory (descriptor), K-major;
// sd = 0: D = A * B (D's old values ignored: no zeroing of a fresh accumulator set)
template <int N> struct wgmma_rs_f16;
template <> struct wgmma_rs_f16<64> {
    static __device__ __forceinline__ void run(float *d, const unsigned *a, u64 db, int sd = 1) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
                     "}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(sd));
    }
};
template <> struct wgmma_rs_f16<112> {
    static __device__ __forceinline__ void run(float *d, const unsigned *a, u64 db, int sd = 1) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %61, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n112k16.f32.f16.f16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                     "%48, %49, %50, %51, %52, %53, %54, %55"
                     "}, {%56, %57, %58, %59}, %60, p, 1, 1, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                       "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                       "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                       "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(sd));
    }
};
template <> struct wgmma_f16<256> {
    static __device__ __forceinline__ void run(float *d, u64 da, u64 db) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
                     "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
                     "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
                     "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
                     "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
                     "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                       "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                       "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                       "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                       "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
                       "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
                       "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
                       "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
                       "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
                       "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
                       "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
                       "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
                       "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                     : "l"(da), "l"(db), "r"(1));
    }
};

// The SPLITK == 1 epilogue of the wgmma kernels through shared memory (conv_nhwc.cuh's
// conv_nhwc_epi_rows): 64-row units u = wg * MI + mi are staged as fp32 rows, UPP units per pass
// (all at once when BM rows fit in the SMEM bytes of pipeline shared memory), then all NTH
// threads of the block store 16-byte chunks. Threads of warpgroup wg >= WG (a producer) hold no
// accumulators but take part in the barriers and the stores.
template <class SHP, int BM, int BN, int WG, int NTH, int SMEM, class E>
__device__ __forceinline__ void wgmma_epi_smem(float (*acc)[BN / 2], unsigned char *smem, int wg, int tid, int m0,
                                               int n0, const typename E::bias_t *bias, const typename E::res_t *res,
                                               __half *y) {
    constexpr int M = SHP::N * SHP::P * SHP::Q, NN = SHP::K, MI = BM / WG / 64;
    constexpr int UNITS = WG * MI, UNIT_B = 64 * KILN_NHWC_EPI_LD(BN) * 4;
    constexpr int UPP = UNITS * UNIT_B <= SMEM ? UNITS : (UNITS / 2) * UNIT_B <= SMEM ? UNITS / 2 : 1;
    static_assert(UNIT_B <= SMEM && UNITS % UPP == 0, "epilogue staging");
    const int lane = tid & 31, warp = (tid >> 5) & 3, g = lane >> 2, t = lane & 3;
    float *cs = reinterpret_cast<float *>(smem);
    __syncthreads(); // every warpgroup's wgmma reads of the last stages are done
#pragma unroll
    for (int p = 0; p < UNITS / UPP; p++) {
#pragma unroll
        for (int mi = 0; mi < MI; mi++) {
            const int u = wg * MI + mi;
            if (wg >= WG || u / UPP != p) continue;
#pragma unroll
            for (int j = 0; j < BN / 8; j++)
#pragma unroll
                for (int h = 0; h < 2; h++)
                    conv_nhwc_epi_put<BN>(cs, (u % UPP) * 64 + warp * 16 + g + 8 * h, j * 8 + 2 * t,
                                          acc[mi][4 * j + 2 * h], acc[mi][4 * j + 2 * h + 1]);
        }
        __syncthreads();
        conv_nhwc_epi_rows<BN, UPP * 64, NTH, M, NN, E>(cs, m0 + p * UPP * 64, n0, bias, res, y, tid);
        if (p + 1 < UNITS / UPP) __syncthreads(); // the next pass overwrites the buffer
    }
}

// The SPLITK == 1 epilogue of the transposed-roles tiles (TR, see conv_wgmma_f16): warpgroup wg
// holds D[64 channels][NP pixels] of pixels wg * NP ...; each element goes to the staging rows
// (pixel-major, as wgmma_epi_smem) by itself, then the block stores rows of 64 channels.
template <class SHP, int BM, int NP, int WG, int NTH, int SMEM, class E>
__device__ __forceinline__ void wgmma_epi_smem_tr(const float *acc, unsigned char *smem, int wg, int tid, int m0,
                                                  int n0, const typename E::bias_t *bias, const typename E::res_t *res,
                                                  __half *y) {
    constexpr int M = SHP::N * SHP::P * SHP::Q, NN = SHP::K, LD = KILN_NHWC_EPI_LD(64);
    static_assert(BM * LD * 4 <= SMEM, "epilogue staging");
    const int lane = tid & 31, warp = (tid >> 5) & 3, g = lane >> 2, t = lane & 3;
    float *cs = reinterpret_cast<float *>(smem);
    __syncthreads(); // every warpgroup's wgmma reads of the last stages are done
    if (wg < WG) // (a producer warpgroup holds no accumulators)
#pragma unroll
        for (int j = 0; j < NP / 8; j++)
#pragma unroll
            for (int q = 0; q < 4; q++)
                cs[(wg * NP + 8 * j + 2 * t + (q & 1)) * LD + warp * 16 + g + 8 * (q >> 1)] = acc[4 * j + q];
    __syncthreads();
    conv_nhwc_epi_rows<64, BM, NTH, M, NN, E>(cs, m0, n0, bias, res, y, tid);
}

// SPLITK > 1: a warp's accumulators (MI m64 blocks x BN columns, rows from wr within the tile) to
// the fp32 partials part[z][M][NN] (conv_nhwc_splitk_reduce sums them).
template <class SHP, int BN, int MI>
__device__ __forceinline__ void wgmma_store_partials(float (*acc)[BN / 2], float *part, int m0, int n0, int wr,
                                                     int lane) {
    constexpr int M = SHP::N * SHP::P * SHP::Q, NN = SHP::K;
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int j = 0; j < BN / 8; j++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int m = m0 + wr + mi * 64 + g + 8 * h, n = n0 + j * 8 + 2 * t;
                if (m >= M || n >= NN) continue; // n even, NN % 8 == 0: n + 1 < NN too
                float *p = part + (i64)blockIdx.z * M * NN + (i64)m * NN + n;
                p[0] = acc[mi][4 * j + 2 * h];
                p[1] = acc[mi][4 * j + 2 * h + 1];
            }
}
// One 64-deep tile of wgmmas (four k16 steps) for a warpgroup, from a stage in shared memory: as =
// its A rows (MA m64 blocks, 8 KiB apart), bs = the B rows. TR: the weights (bs, 64 rows) are
// wgmma's A and the warpgroup's NP pixel rows (as) its B, one accumulator block of NP columns.
// SWZ: the 128-byte swizzled layout (k16 step = 32 bytes along a row), else the core-matrix one.
template <int BN, int NP, int MA, bool SWZ, bool TR>
__device__ __forceinline__ void wgmma_k64(float (*acc)[(TR ? NP : BN) / 2], const unsigned char *as,
                                          const unsigned char *bs) {
    if constexpr (TR) {
#pragma unroll
        for (int ks = 0; ks < 4; ks++)
            if constexpr (SWZ)
                wgmma_f16<NP>::run(acc[0], wgmma_desc_sw128(bs + ks * 32), wgmma_desc_sw128(as + ks * 32));
            else
                wgmma_f16<NP>::run(acc[0], wgmma_desc(bs + ks * 256, 128, 1024), wgmma_desc(as + ks * 256, 128, 1024));
    } else {
#pragma unroll
        for (int mi = 0; mi < MA; mi++)
#pragma unroll
            for (int ks = 0; ks < 4; ks++)
                if constexpr (SWZ)
                    wgmma_f16<BN>::run(acc[mi], wgmma_desc_sw128(as + mi * 8 * 1024 + ks * 32), wgmma_desc_sw128(bs + ks * 32));
                else
                    wgmma_f16<BN>::run(acc[mi], wgmma_desc(as + mi * 8 * 1024 + ks * 256, 128, 1024),
                                       wgmma_desc(bs + ks * 256, 128, 1024));
    }
}

// The same for the transposed-roles tiles: a warp's D[16 channels from n0][NP pixels from m0]
// to the partials [z][pixel][channel].
template <class SHP, int NP>
__device__ __forceinline__ void wgmma_store_partials_tr(const float *acc, float *part, int m0, int n0, int lane) {
    constexpr int M = SHP::N * SHP::P * SHP::Q, NN = SHP::K;
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int j = 0; j < NP / 8; j++)
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int m = m0 + 8 * j + 2 * t + (q & 1), n = n0 + g + 8 * (q >> 1);
            if (m < M && n < NN) part[(i64)blockIdx.z * M * NN + (i64)m * NN + n] = acc[4 * j + q];
        }
}
#elif defined(KILN_EMU)
// Under the CPU emulator (tests/codegen/emu/emu_sched.cpp) the wgmma operations that
// conv_pool_wg_f16 uses are calls: a descriptor is a handle to (address, leading and stride byte
// offsets); wgmma_rs_f16 records the operation, and wgmma_wait carries out the lane's operations
// of all but the newest N committed groups (A from the warp's recorded fragments, B read through
// the descriptor with the no-swizzle K-major layout at that moment), so that a plane or descriptor
// bug, an accumulator read before its wait or planes overwritten under another warp's wgmmas fail.
#define KILN_EMU_WGMMA 1
extern "C" u64 emu_wgmma_desc(const void *p, unsigned lbo, unsigned sbo);
extern "C" void emu_wgmma_rs_f16(int n, int sd, float *d, const u32 *a, u64 db);
extern "C" void emu_wgmma_commit(void);
extern "C" void emu_wgmma_wait(int n);
inline u64 wgmma_desc(const void *p, unsigned lbo, unsigned sbo) { return emu_wgmma_desc(p, lbo, sbo); }
inline void wgmma_fence() {}
inline void wgmma_commit() { emu_wgmma_commit(); }
template <int N> inline void wgmma_wait() { emu_wgmma_wait(N); }
template <int N> inline void wgmma_pin(float *) {}
inline void fence_proxy_async() {}
template <int N> struct wgmma_rs_f16 {
    static void run(float *d, const unsigned *a, u64 db, int sd = 1) { emu_wgmma_rs_f16(N, sd, d, a, db); }
};
#endif // __CUDA_ARCH_FEAT_SM90_ALL

// TR = true ("wt" candidates: transposed roles, BN == 64 output channels): the GEMM is computed as
// D[channels][pixels] = W[64][k] * X[pixels][k]^T, weights as wgmma's A (M = 64) and each
// warpgroup's BM / WG pixels as its B (N = BM / WG = 64, 128 or 256): for 64-channel convs the
// m64nNk16 wgmma then reads 64 + N rows of shared memory per 64 x N x 16 MACs instead of 64 + 64
// per 64 x 64 x 16 (ResNet's stage-1 3x3 convs and stem are bound by that). Same loads, shared
// layout, pipeline and results; the epilogue transposes through the staging rows.
template <class SHP, int BM, int BN, int WG, int STAGES, int SPLITK, class E, bool SWZ = false,
          class SHP2 = conv_no_src2, bool TR = false>
__device__ __forceinline__ void conv_wgmma_f16(const __half *__restrict__ x, const __half *__restrict__ w,
                                               const typename E::bias_t *bias, const typename E::res_t *res,
                                               __half *y, float *part, unsigned char *smem,
                                               const __half *__restrict__ x2 = nullptr) {
    static_assert(BN == 64 || BN == 128 || BN == 256, "wgmma N");
    static_assert(BM % (64 * WG) == 0 && STAGES >= 3, "tile");
#ifdef KILN_HAVE_WGMMA
    constexpr int KD1 = SHP::R * SHP::S * SHP::C, KD2 = SHP2::R * SHP2::S * SHP2::C;
    constexpr int M = SHP::N * SHP::P * SHP::Q, NN = SHP::K, KD = KD1 + KD2;
    constexpr int BK = 64, KT = (KD + BK - 1) / BK, KT_SPLIT = (KT + SPLITK - 1) / SPLITK;
    static_assert(KD2 == 0 || (KD1 % BK == 0 && SHP2::C % 8 == 0), "conv pair: whole K tiles per source");
    constexpr int NTH = 128 * WG, MI = BM / WG / 64;
    constexpr int NP = BM / WG, AN = TR ? NP : BN, MA = TR ? 1 : MI; // accumulators: [MA][AN / 2]
    static_assert(!TR || (BN == 64 && (NP == 64 || NP == 128 || NP == 256)), "transposed roles: 64 channels");
    constexpr int ROWS = 8 * (NTH / 64), A_CH = BM / ROWS, B_CH = BN / ROWS; // rows per copy pass
    static_assert(SHP::C % 8 == 0 && SHP::K % 8 == 0, "channels must be multiples of 8");
    static_assert(BM % ROWS == 0 && BN % ROWS == 0, "tile loads");
    constexpr int A_BYTES = BM * BK * 2, B_BYTES = BN * BK * 2;
    if constexpr (SWZ) // 128-byte swizzle atoms must start on 1024 bytes (the launch has 1 KiB spare)
        smem += (1024 - ((unsigned)__cvta_generic_to_shared(smem) & 1023)) & 1023;
    unsigned char *As = smem, *Bs = smem + STAGES * A_BYTES; // [STAGES][BM/8][1024 B core-matrix group]

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int m0 = (int)blockIdx.x * BM, n0 = (int)blockIdx.y * BN;
    const int cr = tid & 7, cc = (tid >> 3) & 7, row0 = (tid >> 6) * 8 + cr; // chunk row / column
    const int s_off = (tid >> 6) * 1024 + (SWZ ? cr * 128 + ((cc ^ cr) << 4) : cc * 128 + cr * 16); // shared bytes

    const nhwc_rows<SHP, SHP, A_CH> ra(m0 + row0, ROWS);
    const nhwc_rows<SHP, SHP2, KD2 ? A_CH : 1> rb(m0 + row0, ROWS);
    auto load = [&](int slot, int kt) {
        const int kk = kt * BK + cc * 8;
        const bool kin = kk < KD;
        unsigned char *as = As + slot * A_BYTES + s_off, *bs = Bs + slot * B_BYTES + s_off;
        if constexpr (KD2 > 0) { // (KD1 % BK == 0: a K tile is all of one source)
            if (kt * BK >= KD1) rb.copy(as, (ROWS / 8) * 1024, x2, kk - KD1, kin);
            else ra.copy(as, (ROWS / 8) * 1024, x, kk, kin);
        } else {
            ra.copy(as, (ROWS / 8) * 1024, x, kk, kin);
        }
#pragma unroll
        for (int j = 0; j < B_CH; j++) {
            const int n = n0 + row0 + j * ROWS;
            const bool ok = kin && n < NN;
            cp_async16(bs + j * (ROWS / 8) * 1024, ok ? w + (i64)n * KD + kk : w, ok);
        }
    };

    float acc[MA][AN / 2];
#pragma unroll
    for (int i = 0; i < MA; i++)
#pragma unroll
        for (int j = 0; j < AN / 2; j++) acc[i][j] = 0.0f;

#pragma unroll
    for (int mi = 0; mi < MA; mi++) wgmma_pin<AN / 2>(acc[mi]);
    const int kt0 = (int)blockIdx.z * KT_SPLIT;
    const int nk = KT - kt0 < KT_SPLIT ? KT - kt0 : KT_SPLIT; // <= 0: an empty last split
#pragma unroll
    for (int s = 0; s < STAGES - 2; s++) {
        if (s < nk) load(s, kt0 + s);
        cp_async_commit(); // always: the group count stays in step with the tiles
    }
    for (int i = 0; i < nk; i++) {
        cp_async_wait<STAGES - 3>(); // tile i landed (this thread's copies) ...
        fence_proxy_async();         // ... visible to the async proxy ...
        __syncthreads();             // ... everyone's; wgmma group i - 2 finished in every warpgroup
        const int pf = i + STAGES - 2;
        if (pf < nk) load(pf % STAGES, kt0 + pf);
        cp_async_commit();
        const unsigned char *as = As + (i % STAGES) * A_BYTES + wg * MI * 64 * 128, *bs = Bs + (i % STAGES) * B_BYTES;
        wgmma_fence();
        wgmma_k64<BN, NP, MA, SWZ, TR>(acc, as, bs);
        wgmma_commit();
        wgmma_wait<1>();
    }
    wgmma_wait<0>();
#pragma unroll
    for (int mi = 0; mi < MA; mi++) wgmma_pin<AN / 2>(acc[mi]);
    cp_async_wait<0>();

    if constexpr (TR) {
        if constexpr (SPLITK == 1) {
            wgmma_epi_smem_tr<SHP, BM, NP, WG, NTH, STAGES * (A_BYTES + B_BYTES), E>(acc[0], smem, wg, tid, m0, n0, bias,
                                                                                  res, y);
        } else { // D[channel][pixel] to the partials [z][pixel][channel]
            wgmma_store_partials_tr<SHP, NP>(acc[0], part, m0 + wg * NP, n0 + (warp & 3) * 16, lane);
        }
    } else if constexpr (SPLITK == 1) {
        wgmma_epi_smem<SHP, BM, BN, WG, NTH, STAGES * (A_BYTES + B_BYTES), E>(acc, smem, wg, tid, m0, n0, bias, res, y);
    } else {
        wgmma_store_partials<SHP, BN, MI>(acc, part, m0, n0, wg * MI * 64 + (warp & 3) * 16, lane);
    }
#else
    // no wgmma here: the mma.sync kernel with the same block tile and thread count
    static_assert(KILN_NHWC_SMEM_BYTES(BM, BN, 32, 4) <= KILN_WGMMA_SMEM_BYTES(BM, BN, STAGES), "fallback smem");
    conv_nhwc_f16<SHP, BM, BN, 32, BM / 2, BN / (2 * WG), 4, SPLITK, E, SHP2>(x, w, bias, res, y, part, smem, x2);
#endif
}

// ---- warp-specialized variant ("ws" candidates) ----
//
//     conv_wgmma_ws_f16<SHP, BM, BN, WG, STAGES, SPLITK, E, SWZ>(x, w, bias, res, y, part, smem)
//
// Same arguments, tile layout and results as conv_wgmma_f16, but 128 * (WG + 1) threads: the
// last warpgroup is a producer that only issues the cp.async copies of every stage, the first WG
// warpgroups only issue wgmma. No block-wide barrier in the main loop; per stage s two mbarriers
// in shared memory after the stages (KILN_WGMMA_WS_SMEM_BYTES):
//   full[s]  (128 arrivals): each producer thread arrives once its copies of the stage have
//            landed (KILN_WGMMA_WS_ASYNC_ARRIVE below): the phase completes when all have;
//   empty[s] (4 * WG arrivals): lane 0 of each consumer warp, once wgmma.wait_group 1 has
//            retired the wgmma group that read the stage.
// Tile i uses stage i % STAGES; the producer waits for empty phase (i / STAGES - 1) & 1 before
// refilling (i >= STAGES), the consumers for full phase (i / STAGES) & 1, then fence.proxy.async
// (the copies are generic-proxy writes, wgmma reads through the async proxy). Up to STAGES tiles
// are in flight ahead of the tensor cores (the plain kernel: STAGES - 2).
// Other targets: the producer warpgroup exits at once (bar.sync waits only for non-exited
// threads) and the first 4 * WG warps run conv_wgmma_f16's mma.sync fallback.
#define KILN_WGMMA_WS_SMEM_BYTES(BM, BN, STAGES) (KILN_WGMMA_SMEM_BYTES(BM, BN, STAGES) + 256)
// 0 (default): the producer publishes tile i once its own copies of it have landed
// (cp.async.wait_group, then fence.proxy.async on the writing thread, then a plain mbarrier
// arrive: the same writer-side proxy fence as conv_wgmma_f16), two tiles of copies in flight
// per thread; 1: `cp.async.mbarrier.arrive.noinc` (the hardware arrives when the copies land;
// the consumers' fence.proxy.async after the wait is then the only proxy fence).
#ifndef KILN_WGMMA_WS_ASYNC_ARRIVE
#define KILN_WGMMA_WS_ASYNC_ARRIVE 0
#endif

#ifdef KILN_HAVE_WGMMA
__device__ __forceinline__ void mbar_init(unsigned a, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned a) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(a) : "memory");
}
// arrive once all of this thread's earlier cp.async copies have completed (count set at init)
__device__ __forceinline__ void mbar_arrive_cp_async(unsigned a) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(a) : "memory");
}
__device__ __forceinline__ void mbar_wait(unsigned a, unsigned parity) {
    unsigned done;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(a), "r"(parity)
                     : "memory");
    } while (!done);
}
#endif

template <class SHP, int BM, int BN, int WG, int STAGES, int SPLITK, class E, bool SWZ = false>
__device__ __forceinline__ void conv_wgmma_ws_f16(const __half *__restrict__ x, const __half *__restrict__ w,
                                                  const typename E::bias_t *bias, const typename E::res_t *res,
                                                  __half *y, float *part, unsigned char *smem) {
    static_assert(BN == 64 || BN == 128 || BN == 256, "wgmma N");
    static_assert(BM % (64 * WG) == 0 && STAGES >= 3 && STAGES <= 16, "tile");
#ifdef KILN_HAVE_WGMMA
    constexpr int M = SHP::N * SHP::P * SHP::Q, NN = SHP::K, KD = SHP::R * SHP::S * SHP::C;
    constexpr int BK = 64, KT = (KD + BK - 1) / BK, KT_SPLIT = (KT + SPLITK - 1) / SPLITK;
    constexpr int NTH = 128 * (WG + 1), MI = BM / WG / 64;
    constexpr int ROWS = 16, A_CH = BM / ROWS, B_CH = BN / ROWS; // the producer's 128 threads: 16 rows per pass
    constexpr int WS_LAG = 2; // tiles of copies in flight per producer thread (<= STAGES - 1: no deadlock)
    static_assert(SHP::C % 8 == 0 && SHP::K % 8 == 0, "channels must be multiples of 8");
    constexpr int A_BYTES = BM * BK * 2, B_BYTES = BN * BK * 2, STAGE_BYTES = STAGES * (A_BYTES + B_BYTES);
    if constexpr (SWZ) // 128-byte swizzle atoms must start on 1024 bytes (the launch has 1 KiB spare)
        smem += (1024 - ((unsigned)__cvta_generic_to_shared(smem) & 1023)) & 1023;
    unsigned char *As = smem, *Bs = smem + STAGES * A_BYTES;
    const unsigned bar0 = (unsigned)__cvta_generic_to_shared(smem + STAGE_BYTES); // full[s] at 8 s, empty[s] at 8 (STAGES + s)

    const int tid = threadIdx.x, warp = tid >> 5, wg = warp >> 2;
    const int m0 = (int)blockIdx.x * BM, n0 = (int)blockIdx.y * BN;
    const int kt0 = (int)blockIdx.z * KT_SPLIT;
    const int nk = KT - kt0 < KT_SPLIT ? KT - kt0 : KT_SPLIT; // <= 0: an empty last split
    if (tid < STAGES) {
        mbar_init(bar0 + 8 * tid, 128);
        mbar_init(bar0 + 8 * (STAGES + tid), 4 * WG);
    }
    __syncthreads();

    float acc[MI][BN / 2];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < BN / 2; j++) acc[i][j] = 0.0f;

    if (wg == WG) { // producer
        const int pt = tid - 128 * WG;
        const int cr = pt & 7, cc = (pt >> 3) & 7, row0 = (pt >> 6) * 8 + cr;
        const int s_off = (pt >> 6) * 1024 + (SWZ ? cr * 128 + ((cc ^ cr) << 4) : cc * 128 + cr * 16);
        const nhwc_rows<SHP, SHP, A_CH> ra(m0 + row0, ROWS);
        for (int i = 0; i < nk; i++) {
            const int slot = i % STAGES;
#if KILN_WGMMA_WS_ASYNC_ARRIVE == 0
            if (i >= WS_LAG) { // tile i - WS_LAG landed (this thread's copies): publish it
                cp_async_wait<WS_LAG - 1>();
                fence_proxy_async();
                mbar_arrive(bar0 + 8 * ((i - WS_LAG) % STAGES));
            }
#endif
            if (i >= STAGES) mbar_wait(bar0 + 8 * (STAGES + slot), (unsigned)(i / STAGES - 1) & 1);
            const int kk = (kt0 + i) * BK + cc * 8;
            const bool kin = kk < KD;
            unsigned char *as = As + slot * A_BYTES + s_off, *bs = Bs + slot * B_BYTES + s_off;
            ra.copy(as, (ROWS / 8) * 1024, x, kk, kin);
#pragma unroll
            for (int j = 0; j < B_CH; j++) {
                const int n = n0 + row0 + j * ROWS;
                const bool ok = kin && n < NN;
                cp_async16(bs + j * (ROWS / 8) * 1024, ok ? w + (i64)n * KD + kk : w, ok);
            }
#if KILN_WGMMA_WS_ASYNC_ARRIVE
            mbar_arrive_cp_async(bar0 + 8 * slot);
#else
            cp_async_commit();
#endif
        }
        cp_async_wait<0>();
#if KILN_WGMMA_WS_ASYNC_ARRIVE == 0
        fence_proxy_async();
        for (int i = nk - WS_LAG < 0 ? 0 : nk - WS_LAG; i < nk; i++) mbar_arrive(bar0 + 8 * (i % STAGES));
#endif
    } else { // consumers
#pragma unroll
        for (int mi = 0; mi < MI; mi++) wgmma_pin<BN / 2>(acc[mi]);
        for (int i = 0; i < nk; i++) {
            const int slot = i % STAGES;
            mbar_wait(bar0 + 8 * slot, (unsigned)(i / STAGES) & 1);
            fence_proxy_async(); // the producer's generic-proxy copies, seen here, before wgmma reads them
            const unsigned char *as = As + slot * A_BYTES + wg * MI * 64 * 128, *bs = Bs + slot * B_BYTES;
            wgmma_fence();
            wgmma_k64<BN, BN, MI, SWZ, false>(acc, as, bs);
            wgmma_commit();
            wgmma_wait<1>(); // the group of tile i - 1 retired: its stage goes back to the producer
            if (i > 0 && (tid & 31) == 0) mbar_arrive(bar0 + 8 * (STAGES + (i - 1) % STAGES));
        }
        wgmma_wait<0>();
#pragma unroll
        for (int mi = 0; mi < MI; mi++) wgmma_pin<BN / 2>(acc[mi]);
    }

    if constexpr (SPLITK == 1) {
        wgmma_epi_smem<SHP, BM, BN, WG, NTH, STAGE_BYTES, E>(acc, smem, wg, tid, m0, n0, bias, res, y);
    } else if (wg < WG) {
        wgmma_store_partials<SHP, BN, MI>(acc, part, m0, n0, wg * MI * 64 + (warp & 3) * 16, tid & 31);
    }
#else
    if ((int)threadIdx.x >= 128 * WG) return; // the producer warpgroup has nothing to do here
    conv_wgmma_f16<SHP, BM, BN, WG, STAGES, SPLITK, E, SWZ>(x, w, bias, res, y, part, smem);
#endif
}

// ---- TMA variant ("tm" candidates) ----
//
//     conv_tma_f16<SHP, BM, BN, WG, STAGES, SPLITK, E, SHP2>(x, w, bias, res, y, part, smem, x2, ta, tb, ta2)
//
// Same arguments, GEMM view, results and epilogue as conv_wgmma_f16 (128-byte swizzled layout),
// plus TMA tensor maps the runtime encodes at load (KILN_ARG_TMAP, runtime/bundle.h), made by
// cg_conv_nhwc.c:
//   ta (ta2): im2col map over x (x2), NHWC dims {C, W, H, N}, element strides {1, SW, SH, 1},
//             pixel box corners lower = -pad, upper = (P - 1) * stride - pad - (dim - 1) (so that
//             the traversal of the corner's positions visits exactly the P x Q output pixels, in
//             m order, into the next image), 64 channels per pixel, BM pixels per column;
//   tb:       tiled map over the OHWI weights as [NN][KD], box {64, BN}.
// Both with the 128-byte swizzle: TMA writes row r (one pixel's / channel's 64 depth values) at
// r * 128 with 16-byte chunk c at c ^ (r % 8), exactly the SWZ layout wgmma_desc_sw128 reads.
// Depth tile kt is one filter tap (r, s) and 64 channels (C % 64 == 0): the load starts at the
// tile's first output pixel (n, p, q) -> input (q * SW - PW, p * SH - PH) with im2col offsets
// (s * DW, r * DH); padding taps, rows past M and weights past NN are zero-filled by the TMA unit.
//
// 128 * (WG + 1) threads: one thread of the last warpgroup issues both loads of every stage
// (mbarrier full[s], expect_tx = the stage's bytes); the first WG warpgroups run wgmma as in
// conv_wgmma_ws_f16 (empty[s]: 4 * WG arrivals, lane 0 of each consumer warp after
// wgmma.wait_group 1 retired the group that read the stage). No proxy fence in the loop: TMA
// writes and wgmma reads are both async-proxy operations ordered by the mbarrier.
// TR = true ("tmt" candidates): the transposed roles of conv_wgmma_f16's TR (BN = 64 output
// channels as wgmma's M, each warpgroup's BM / WG pixels as its N), same loads.
// Other targets (no wgmma, no TMA): the last warpgroup exits and the others run
// conv_wgmma_f16's mma.sync fallback from x / x2 / w (the maps are not read).
struct alignas(64) tmap {
    unsigned long long v[16];
};
#define KILN_WGMMA_TMA_SMEM_BYTES(BM, BN, STAGES) (KILN_WGMMA_SMEM_BYTES(BM, BN, STAGES) + 1024 + 256)

#ifdef KILN_HAVE_WGMMA
__device__ __forceinline__ void mbar_expect_tx(unsigned a, unsigned bytes) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(a), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void tma_load_2d(unsigned dst, const tmap *m, int c0, int c1, unsigned bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], "
                 "[%4];\n" ::"r"(dst),
                 "l"((u64)m), "r"(c0), "r"(c1), "r"(bar)
                 : "memory");
}
__device__ __forceinline__ void tma_load_im2col_4d(unsigned dst, const tmap *m, int c, int w, int h, int n,
                                                   unsigned short ow, unsigned short oh, unsigned bar) {
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, "
                 "%4, %5}], [%6], {%7, %8};\n" ::"r"(dst),
                 "l"((u64)m), "r"(c), "r"(w), "r"(h), "r"(n), "r"(bar), "h"(ow), "h"(oh)
                 : "memory");
}
// The same two loads written to both blocks of a 2-block cluster (the same shared-memory offsets
// there; each block's mbarrier at bar's offset gets the bytes it received): "tx" tiles.
__device__ __forceinline__ void tma_load_2d_mc(unsigned dst, const tmap *m, int c0, int c1, unsigned bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster "
                 "[%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dst),
                 "l"((u64)m), "r"(c0), "r"(c1), "r"(bar), "h"((unsigned short)3)
                 : "memory");
}
__device__ __forceinline__ void tma_load_im2col_4d_mc(unsigned dst, const tmap *m, int c, int w, int h, int n,
                                                      unsigned short ow, unsigned short oh, unsigned bar) {
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes.multicast::cluster "
                 "[%0], [%1, {%2, %3, %4, %5}], [%6], {%7, %8}, %9;\n" ::"r"(dst),
                 "l"((u64)m), "r"(c), "r"(w), "r"(h), "r"(n), "r"(bar), "h"(ow), "h"(oh), "h"((unsigned short)3)
                 : "memory");
}
// Q::ROWS (codegen's tma_rows_src: a 1x1, stride-1, unpadded source): the map is a tiled one over x
// as rows [N * H * W][C], whose rows are the output pixels themselves.
template <class Q, class = void> struct tma_rows_of {
    static constexpr bool value = false;
};
template <class Q> struct tma_rows_of<Q, kiln_void_t<decltype(Q::ROWS)>> {
    static constexpr bool value = Q::ROWS;
};
// One source's A tile for depth d (< its R * S * C) of the output pixels from m0 (n, p, q)
// (MC: to both blocks of the cluster).
template <class Q, bool MC = false>
__device__ __forceinline__ void tma_conv_a(unsigned dst, const tmap *m, int d, int n, int p, int q, unsigned bar) {
    if constexpr (tma_rows_of<Q>::value) {
        static_assert(Q::R == 1 && Q::S == 1 && Q::SH == 1 && Q::SW == 1 && Q::PH == 0 && Q::PW == 0, "rows: 1x1 convs");
        const int row = (n * Q::H + p) * Q::W + q;
        if constexpr (MC) tma_load_2d_mc(dst, m, d, row, bar);
        else tma_load_2d(dst, m, d, row, bar);
        return;
    }
    const int tap = d / Q::C, c = d % Q::C, r = tap / Q::S, s = tap % Q::S;
    if constexpr (MC)
        tma_load_im2col_4d_mc(dst, m, c, q * Q::SW - Q::PW, p * Q::SH - Q::PH, n, (unsigned short)(s * Q::DW),
                              (unsigned short)(r * Q::DH), bar);
    else
        tma_load_im2col_4d(dst, m, c, q * Q::SW - Q::PW, p * Q::SH - Q::PH, n, (unsigned short)(s * Q::DW),
                           (unsigned short)(r * Q::DH), bar);
}
// One stage: expect its bytes on mbarrier full, then the A tile of depth d (from x, or from x2
// past the first source's depth) and the weights' BN rows from n0.
// LA / LB (2-block clusters): whether this block issues the A / B load (MA / MB: to both blocks).
template <class SHP, class SHP2, bool MA = false, bool MB = false>
__device__ __forceinline__ void tma_conv_stage(unsigned as, unsigned bs, unsigned bytes, const tmap *ta, const tmap *tb,
                                               const tmap *ta2, int d, int n, int p, int q, int n0, unsigned full,
                                               bool LA = true, bool LB = true) {
    constexpr int KD1 = SHP::R * SHP::S * SHP::C, KD2 = SHP2::R * SHP2::S * SHP2::C;
    mbar_expect_tx(full, bytes);
#if KILN_EXP_DIAG == 4
    if (KD2 > 0) d = KD1 + d % (KD2 > 0 ? KD2 : 1); // (timing only: every A tile from the second source)
#endif
#if KILN_EXP_DIAG == 5
    if (LA && !MA) { // (timing only: A's bytes as tiled loads of weight rows)
        for (unsigned o = 0; o < bytes - 128 * 128; o += 128 * 128) tma_load_2d(as + o, tb, d, 0, full);
        LA = false;
    }
#endif
    if (LA) {
        if constexpr (KD2 > 0) {
            if (d < KD1) tma_conv_a<SHP, MA>(as, ta, d, n, p, q, full);
            else tma_conv_a<SHP2, MA>(as, ta2, d - KD1, n, p, q, full);
        } else {
            (void)ta2;
            tma_conv_a<SHP, MA>(as, ta, d, n, p, q, full);
        }
    }
    if (LB) {
        if constexpr (MB) tma_load_2d_mc(bs, tb, d, n0, full);
        else tma_load_2d(bs, tb, d, n0, full);
    }
}
#endif

template <class SHP, int BM, int BN, int WG, int STAGES, int SPLITK, class E, class SHP2 = conv_no_src2, bool TR = false>
__device__ __forceinline__ void conv_tma_f16(const __half *__restrict__ x, const __half *__restrict__ w,
                                             const typename E::bias_t *bias, const typename E::res_t *res, __half *y,
                                             float *part, unsigned char *smem, const __half *__restrict__ x2,
                                             const tmap *ta, const tmap *tb, const tmap *ta2) {
    static_assert(BN == 64 || BN == 128 || BN == 256, "wgmma N");
    static_assert(BM % (64 * WG) == 0 && BM <= 256 && BN <= 256 && STAGES >= 3 && STAGES <= 16, "tile");
    static_assert(SHP::C % 64 == 0 && SHP2::C % 64 == 0, "TMA tiles: whole 64-channel depth tiles per tap");
#ifdef KILN_HAVE_WGMMA
    (void)x, (void)w, (void)x2;
    constexpr int KD1 = SHP::R * SHP::S * SHP::C, KD2 = SHP2::R * SHP2::S * SHP2::C;
    constexpr int M = SHP::N * SHP::P * SHP::Q, NN = SHP::K, KD = KD1 + KD2;
    constexpr int BK = 64, KT = KD / BK, KT_SPLIT = (KT + SPLITK - 1) / SPLITK;
    constexpr int NTH = 128 * (WG + 1), MI = BM / WG / 64;
    constexpr int NP = BM / WG, AN = TR ? NP : BN, MA = TR ? 1 : MI; // accumulators: [MA][AN / 2]
    static_assert(!TR || (BN == 64 && (NP == 64 || NP == 128 || NP == 256)), "transposed roles: 64 channels");
    constexpr int A_BYTES = BM * BK * 2, B_BYTES = BN * BK * 2, STAGE_BYTES = STAGES * (A_BYTES + B_BYTES);
    (void)M;
    smem += (1024 - ((unsigned)__cvta_generic_to_shared(smem) & 1023)) & 1023; // swizzle atoms on 1024 bytes
    unsigned char *As = smem, *Bs = smem + STAGES * A_BYTES;
    const unsigned bar0 = (unsigned)__cvta_generic_to_shared(smem + STAGE_BYTES); // full[s] at 8 s, empty[s] at 8 (STAGES + s)

    const int tid = threadIdx.x, warp = tid >> 5, wg = warp >> 2;
    const int m0 = (int)blockIdx.x * BM, n0 = (int)blockIdx.y * BN;
    const int kt0 = (int)blockIdx.z * KT_SPLIT;
    const int nk = KT - kt0 < KT_SPLIT ? KT - kt0 : KT_SPLIT; // <= 0: an empty last split
    if (tid < STAGES) {
        mbar_init(bar0 + 8 * tid, 1);
        mbar_init(bar0 + 8 * (STAGES + tid), 4 * WG);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); // the inits, visible to the TMA unit
    __syncthreads();

    float acc[MA][AN / 2];
#pragma unroll
    for (int i = 0; i < MA; i++)
#pragma unroll
        for (int j = 0; j < AN / 2; j++) acc[i][j] = 0.0f;

    if (wg == WG) { // producer: one thread
        if (tid == 128 * WG) {
            const int n = m0 / (SHP::P * SHP::Q), pq = m0 % (SHP::P * SHP::Q), p = pq / SHP::Q, q = pq % SHP::Q;
            const unsigned as0 = (unsigned)__cvta_generic_to_shared(As), bs0 = (unsigned)__cvta_generic_to_shared(Bs);
            for (int i = 0; i < nk; i++) {
                const int slot = i % STAGES, d = (kt0 + i) * BK;
                if (i >= STAGES) mbar_wait(bar0 + 8 * (STAGES + slot), (unsigned)(i / STAGES - 1) & 1);
                tma_conv_stage<SHP, SHP2>(as0 + slot * A_BYTES, bs0 + slot * B_BYTES, A_BYTES + B_BYTES, ta, tb, ta2, d,
                                          n, p, q, n0, bar0 + 8 * slot);
            }
        }
    } else { // consumers
#pragma unroll
        for (int mi = 0; mi < MA; mi++) wgmma_pin<AN / 2>(acc[mi]);
        for (int i = 0; i < nk; i++) {
            const int slot = i % STAGES;
            mbar_wait(bar0 + 8 * slot, (unsigned)(i / STAGES) & 1);
            const unsigned char *as = As + slot * A_BYTES + wg * MI * 64 * 128, *bs = Bs + slot * B_BYTES;
            wgmma_fence();
            wgmma_k64<BN, NP, MA, true, TR>(acc, as, bs);
            wgmma_commit();
            wgmma_wait<1>(); // the group of tile i - 1 retired: its stage goes back to the producer
            if (i > 0 && (tid & 31) == 0) mbar_arrive(bar0 + 8 * (STAGES + (i - 1) % STAGES));
        }
        wgmma_wait<0>();
#pragma unroll
        for (int mi = 0; mi < MA; mi++) wgmma_pin<AN / 2>(acc[mi]);
    }

    if constexpr (TR) {
        if constexpr (SPLITK == 1) {
            wgmma_epi_smem_tr<SHP, BM, NP, WG, NTH, STAGE_BYTES, E>(acc[0], smem, wg, tid, m0, n0, bias, res, y);
        } else if (wg < WG) { // D[channel][pixel] to the partials [z][pixel][channel]
            wgmma_store_partials_tr<SHP, NP>(acc[0], part, m0 + wg * NP, n0 + (warp & 3) * 16, tid & 31);
        }
    } else if constexpr (SPLITK == 1) {
        wgmma_epi_smem<SHP, BM, BN, WG, NTH, STAGE_BYTES, E>(acc, smem, wg, tid, m0, n0, bias, res, y);
    } else if (wg < WG) {
        wgmma_store_partials<SHP, BN, MI>(acc, part, m0, n0, wg * MI * 64 + (warp & 3) * 16, tid & 31);
    }
#else
    (void)ta, (void)tb, (void)ta2;
    if ((int)threadIdx.x >= 128 * WG) return; // the producer warpgroup has nothing to do here
    conv_wgmma_f16<SHP, BM, BN, WG, STAGES, SPLITK, E, true, SHP2, TR>(x, w, bias, res, y, part, smem, x2);
#endif
}

// ---- persistent ping-pong TMA variant ("tp" candidates) ----
//
//     conv_tma_pp_f16<SHP, BM, BN, STAGES, E, RES, SHP2>(x, w, bias, res, y, smem, x2, ta, tb, ta2, ty, tr)
//
// The loads of conv_tma_f16 in a persistent kernel whose two consumer warpgroups take turns:
// the grid is at most one block per SM; block b takes output tiles t = b, b + grid, ... of BM
// pixels x BN channels (BM = 64 or 128 rows per warpgroup; tile t is column t % NT of row
// t / NT, so consecutive tiles share their pixels); its j-th tile goes to warpgroup j % 2. The
// producer thread streams every tile's depth tiles through one STAGES-deep ring (global stage
// counter g = j * KT + k: tile j's stages are consumed by one warpgroup, so empty[s] takes the
// 4 warps of one warpgroup). While one warpgroup runs its tile's epilogue, the other runs its
// main loop, and the producer fills ahead across tile boundaries (no pipeline refill per tile).
// The warpgroups' main loops are ordered (mbarriers turn[0], turn[1], 4 arrivals each): tile j
// starts its wgmmas only after tile j - 1 issued its last one, so no warpgroup waits on a stage
// more than one phase ahead of the ring (an mbarrier parity wait cannot tell two phases apart).
//
// Epilogue through TMA (ty: a tiled map of y as [M][NN] fp16, box 64 channels x BM rows, 128-byte
// swizzle; tr: the same over the residual when RES): each warpgroup owns a staging buffer of BN / 64
// such boxes. With RES, the warpgroup's first thread loads the tile's residual boxes into it when
// the tile starts (they arrive during the main loop, mbarrier resb[wg]); each thread then applies
// E to its accumulators, reading the residual in place (E::apply's res pointer is the staging
// buffer, its index the element's position there), writes the fp16 results over it, and the
// first thread stores the boxes with cp.async.bulk.tensor (M and channel tails clipped by the TMA
// unit). The store drains while the warpgroup runs its next main loop; the buffer is reused only
// after cp.async.bulk.wait_group.read. So the epilogue costs shared-memory writes, not global
// stores, and y and the residual move in whole 128-byte lines. A per-channel bias (E::apply_b) is
// loaded into registers when a tile starts, its latency under the tile's wgmmas.
// COOP ("tc" tiles): the two consumer warpgroups share each tile instead (2 BM rows x BN: warpgroup
// wg takes rows wg * BM ..., both read the same weight rows; empty[s] takes all 8 warps; no
// turns): a third fewer operand bytes from L2 per flop than two BM x BN tiles, the epilogue still
// cheap (shared-memory writes; the producer fills the next tile's stages meanwhile). (Meant for the
// short-depth conv pairs; ncu later showed them latency-bound, not L2-bound: about as fast as tp.)
// SK with COOP ("ts" tiles, stream-K, arXiv 2301.03598): a grid of G blocks over T tiles leaves
// SMs idle in the last wave (ResNet-50 b32's 3x3 convs: 98 tiles of 128 x 128 for 132 SMs), so
// block b takes an even share of all T * KT depth tiles instead, [I b / G, I (b + 1) / G) in
// tile-major order, cut into segments at tile boundaries (the producer streams the same
// segments). A segment that starts at depth tile 0 stores the tile; one that starts further in
// (only a block's first) writes its fp32 accumulators to part[b] (each thread its own fragment,
// 16-byte stores) and releases flags[b]; the block that started the tile (it ends there, its
// last segment) waits for the flags of the blocks after it that reach into the tile, adds their
// partials, zeroes their flags (flags stay zero between launches: a per-context zeroed region,
// KILN_ARG_SYNC; a flag per block: grid <= SMs <= 1024) and runs the epilogue. Waiting cannot
// deadlock: only later blocks are awaited, they wait for nothing before their first segment, and
// the grid is at most one block per SM. Opt-in (KILN_WGMMA_SK=1): on an H100 these ran slower than
// the tc / tp tiles on every ResNet-50 conv they apply to (docs/gpu.md, eighth session).
// SP = 2 (the 4-stage tc256x128 / tc128x256 tiles, convs without a residual): each warpgroup stages
// half its boxes at a time (two passes, the second after the first store has read the buffer), so
// a fourth stage fits in 227 KiB: a third fewer operand bytes per flop than tc128x128 at its depth.
// TR ("tpt" / "tct" tiles, BN = 64 output channels): transposed roles as in conv_tma_f16: each
// warpgroup computes D[64 channels][BM pixels] with the weights as wgmma's A and its BM pixel rows
// as B, one m64nBMk16 per k16 step reading 64 + BM rows of shared memory instead of two m64n64k16
// reading 2 x (64 + 64) (ResNet-50's stage-1 3x3 convs are bound by the latter); same loads,
// staging and TMA stores, the epilogue writing each fp16 at its transposed place in the box.
// OV with COOP ("to" tiles; no residual, 64 rows a warpgroup, N <= 128): after a tile's last wgmma
// group the warpgroup applies the epilogue to its accumulators into fp16 registers of their own (not
// the accumulators: ptxas serializes the wgmmas when accumulator registers are read while later wgmmas
// are in flight, C7514, as a first version with two accumulator sets did) and stages / stores them by
// TMA after issuing the next tile's first two depth tiles, so the staging, the fences, the barriers
// and the store run under wgmma work; the tile's first stage goes back to the producer before the store
// (once its wgmma group retired), not after it: stored first, its refill came too late for the next
// tile (layer-2 conv pair 26.7 -> 24.8 us). Opt-in: on an H100 (ResNet-50 b32, forced tiles) still
// slower than tc128x128 (layer-2 conv pair 24.8 vs 22.9 us); outputs bit-identical to tc's.
// CL with COOP ("tx" tiles, a kernel declared KILN_CLUSTER2, an even grid): the two blocks of a
// cluster take a pair of tiles in step that share one operand, and block 0's producer loads that
// operand into both blocks' shared memory with one multicast copy: CL = 1 the pixel tile A of two
// channel tiles of one pixel row (NT even), CL = 2 the weight tile B of two pixel rows. Each
// operand byte then crosses L2 once per pair: a quarter fewer L2 bytes per flop for tc128x128.
// Block 0's empty[s] counts both blocks' consumer warps (block 1's arrive remotely, mapa), since
// its copy writes both; block 1's its own; the full barriers expect the whole stage in each block.
// A cluster barrier after the mbarrier inits and another before exit (no remote arrival may reach
// a block that has exited). Opt-in: on an H100 (forced tiles, 32 x 256 x 14 x 14 3x3 and 32 x 512 x
// 28 x 28 1x1 convs) tx128x128 ran 18.6 / 29.9 us against tc128x128's 16.6 / 27.7: the clusters
// alone (no multicast, no remote arrivals) cost as much, and multicast saved nothing on top; these
// convs are not bound by L2 bandwidth.
// Other targets: the producer warpgroup exits; the others loop over the same tiles with
// conv_nhwc_f16's mma.sync kernel (TBM x BN, 8 warps) per tile (the maps unread).
#define KILN_WGMMA_PP_SMEM_BYTES(BM, BN, STAGES, COOP) \
    (KILN_WGMMA_SMEM_BYTES((COOP) ? 2 * (BM) : (BM), BN, STAGES) + 4 * (BM) * (BN) + 1024 + 256)

#ifdef KILN_HAVE_WGMMA
__device__ __forceinline__ void tma_store_2d(const tmap *m, int c0, int c1, unsigned src) {
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"((u64)m), "r"(c0),
                 "r"(c1), "r"(src)
                 : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_read0() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait0() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ void wg_bar(int id) { asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory"); }
__device__ __forceinline__ void consumers_bar() { asm volatile("bar.sync 3, 256;\n" ::: "memory"); }
// every thread of both blocks of a cluster (release / acquire: mbarrier inits, the end of remote arrivals)
__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
// arrive on the mbarrier at the same offset in block `rank` of this cluster (the default .release.cta:
// with .release.cluster ptxas put a MEMBAR.ALL.GPU before each arrival, and the H100 ran the tx
// tiles 2.2x slower than the tc ones)
__device__ __forceinline__ void mbar_arrive_rank(unsigned a, unsigned rank) {
    asm volatile("{\n.reg .b32 ra;\nmapa.shared::cluster.u32 ra, %0, %1;\n"
                 "mbarrier.arrive.shared::cluster.b64 _, [ra];\n}\n" ::"r"(a),
                 "r"(rank)
                 : "memory");
}
__device__ __forceinline__ void flag_release(unsigned *f) {
    asm volatile("red.release.gpu.global.add.u32 [%0], 1;\n" ::"l"(f) : "memory");
}
__device__ __forceinline__ unsigned flag_acquire(const unsigned *f) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(f) : "memory");
    return v;
}
#endif
// Stream-K ("ts" tiles): block b of G takes depth tiles [I b / G, I (b + 1) / G) of the I = TILES * KT
// in tile-major order; each stretch inside one tile is a segment (tile t, depth tiles k0 .. k1).
// (32-bit arithmetic where I * 1024 fits: a 64-bit division costs registers the accumulators need)
template <long long I> __device__ __forceinline__ int sk_start(int b, int grid) {
    if constexpr (I * 1024 < (1ll << 32)) return (int)((unsigned)I * (unsigned)b / (unsigned)grid);
    else return (int)(I * b / grid);
}
// the first block whose share starts at or past depth tile x: c = ceil(x * grid / I)
template <long long I> __device__ __forceinline__ int sk_block_at(int x, int grid) {
    if constexpr (I * 1024 < (1ll << 32)) return (int)(((unsigned)x * (unsigned)grid + (unsigned)I - 1) / (unsigned)I);
    else return (int)(((long long)x * grid + I - 1) / I);
}

// Whether epilogue E has apply_b (codegen emits it for a per-channel bias: apply with the bias value given).
template <class E, class = void> struct epi_has_apply_b {
    static constexpr bool value = false;
};
template <class E> struct epi_has_apply_b<E, kiln_void_t<decltype(&E::apply_b)>> {
    static constexpr bool value = true;
};

template <class SHP, int BM, int BN, int STAGES, class E, bool RES, class SHP2 = conv_no_src2, bool COOP = false,
          bool SK = false, int SP = 1, bool TR = false, int CL = 0, bool OV = false>
__device__ __forceinline__ void conv_tma_pp_f16(const __half *__restrict__ x, const __half *__restrict__ w,
                                                const typename E::bias_t *bias, const typename E::res_t *res, __half *y,
                                                unsigned char *smem, const __half *__restrict__ x2, const tmap *ta,
                                                const tmap *tb, const tmap *ta2, const tmap *ty, const tmap *tr,
                                                float *part = nullptr, unsigned *flags = nullptr) {
    static_assert(!SK || COOP, "stream-K: the shared-tile (COOP) kernel");
    static_assert(SP == 1 || (SP == 2 && !RES && BN >= 128), "staging in two passes: no residual, two boxes or more");
    static_assert(!TR || (BN == 64 && !SK && SP == 1), "transposed roles: 64 output channels a tile, whole tiles");
    static_assert(BN == 64 || BN == 128 || BN == 256, "wgmma N");
    static_assert((BM == 64 || BM == 128) && BM * BN <= 128 * 128 && STAGES >= 3 && STAGES <= 12, "tile");
    static_assert(SHP::C % 64 == 0 && SHP2::C % 64 == 0, "TMA tiles: whole 64-channel depth tiles per tap");
    constexpr int KD1 = SHP::R * SHP::S * SHP::C, KD2 = SHP2::R * SHP2::S * SHP2::C;
    constexpr int M = SHP::N * SHP::P * SHP::Q, NN = SHP::K, KD = KD1 + KD2;
    constexpr int TBM = COOP ? 2 * BM : BM; // a tile's rows
    constexpr int BK = 64, KT = KD / BK, MT = (M + TBM - 1) / TBM, NT = (NN + BN - 1) / BN, TILES = MT * NT;
    static_assert(CL == 0 || (COOP && !SK && !TR && (CL == 2 || NT % 2 == 0)), "2-block clusters: tc tiles");
    static_assert(!OV || (COOP && !RES && !SK && !TR && SP == 1 && CL == 0 && BM == 64 && BN <= 128 && KT >= 2),
                  "the epilogue under the next tile's wgmmas: tc tiles of 64 rows a warpgroup, no residual");
#ifdef KILN_HAVE_WGMMA
    (void)x, (void)w, (void)x2, (void)res, (void)y, (void)part, (void)flags;
    // the schedule's units: tiles, or (CL) pairs of tiles, one a block of the cluster: CL = 1 the two
    // channel tiles 2u, 2u + 1 of one pixel row (A multicast), CL = 2 pixel rows 2 (u / NT) + rank of
    // channel tile u % NT (B multicast; with MT odd the last pairs' second tile is past M: no loads of
    // its own, no store)
    unsigned rank = 0;
    if constexpr (CL != 0) asm("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
    constexpr int PU = CL == 1 ? TILES / 2 : CL == 2 ? (MT + 1) / 2 * NT : TILES;
    const int U0 = CL ? (int)blockIdx.x / 2 : (int)blockIdx.x, US = CL ? (int)gridDim.x / 2 : (int)gridDim.x;
    const auto tile_of = [&](int u) {
        return CL == 1 ? 2 * u + (int)rank : CL == 2 ? (2 * (u / NT) + (int)rank) * NT + u % NT : u;
    };
    constexpr int MI = BM / 64, NB = BN / 64;
    constexpr int AM = TR ? 1 : MI, AN = TR ? BM : BN; // accumulators [AM][AN / 2] (TR: D[64 channels][BM pixels])
    constexpr int A_BYTES = TBM * BK * 2, B_BYTES = BN * BK * 2, STAGE_BYTES = STAGES * (A_BYTES + B_BYTES);
    // the bias loaded when a tile starts (where the accumulators leave the registers: with 128 floats of
    // them ptxas spilled on tp128x128, tp64x256 and tc128x256 s3, not on the shared 256 x 128 tiles)
    constexpr bool BL = epi_has_apply_b<E>::value && !TR && (AM * AN / 2 <= 64 || (COOP && BN == 128));
    constexpr int SNB = NB / SP; // boxes staged at once (SP = 2: the epilogue in two passes, half the buffer)
    constexpr int BOX_BYTES = BM * 128, ST_BYTES = SNB * BOX_BYTES; // one warpgroup's staging: SNB boxes
    smem += (1024 - ((unsigned)__cvta_generic_to_shared(smem) & 1023)) & 1023; // swizzle atoms on 1024 bytes
    unsigned char *As = smem, *Bs = smem + STAGES * A_BYTES, *Ss = smem + STAGE_BYTES;
    // full[s] at 8 s, empty[s] at 8 (STAGES + s), turn[c] at 8 (2 STAGES + c), resb[c] at 8 (2 STAGES + 2 + c)
    const unsigned bar0 = (unsigned)__cvta_generic_to_shared(smem + STAGE_BYTES + 2 * ST_BYTES);
    const int tid = threadIdx.x, warp = tid >> 5, wg = warp >> 2;
    if (tid < STAGES) {
        mbar_init(bar0 + 8 * tid, 1);
        // (CL: rank 0's loads write both blocks, so its stages wait for both blocks' consumers)
        mbar_init(bar0 + 8 * (STAGES + tid), (COOP ? 8 : 4) * (CL && rank == 0 ? 2 : 1));
    }
    if (tid < 2) mbar_init(bar0 + 8 * (2 * STAGES + tid), 4);
    if (tid < 2) mbar_init(bar0 + 8 * (2 * STAGES + 2 + tid), 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    __syncthreads();
    if constexpr (CL != 0) cluster_sync(); // (both blocks' mbarriers initialized before any remote use)

    // registers: the producer warpgroup gives most of its share to the consumers' accumulators
    // (launched at 65536 / 384 = 168 a thread; 40 + 2 * 232 = 504 = 3 * 168)
    if (wg == 2) { // producer: one thread
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        if (tid == 256) {
            const unsigned as0 = (unsigned)__cvta_generic_to_shared(As), bs0 = (unsigned)__cvta_generic_to_shared(Bs);
            int g = 0;
            int it = SK ? sk_start<(long long)TILES * KT>((int)blockIdx.x, (int)gridDim.x) : 0; // (stream-K)
            const int end = SK ? sk_start<(long long)TILES * KT>((int)blockIdx.x + 1, (int)gridDim.x) : 0;
            for (int u = SK ? it / KT : U0; SK ? it < end : u < PU; u = SK ? it / KT : u + US) {
                const int t = tile_of(u);
                const int k0 = SK ? it % KT : 0, k1 = SK && end - it < KT - k0 ? k0 + end - it : KT;
                if (SK) it += k1 - k0;
                const int m0 = (t / NT) * TBM, n0 = (t % NT) * BN;
                const int n = m0 / (SHP::P * SHP::Q), pq = m0 % (SHP::P * SHP::Q), p = pq / SHP::Q, q = pq % SHP::Q;
                // CL: which loads this block issues (rank 0 the shared operand, to both blocks)
                const bool la = CL == 1 ? rank == 0 : m0 < M, lb = CL == 2 ? rank == 0 : true;
                const unsigned bytes = (CL == 2 && m0 >= M ? 0 : A_BYTES) + B_BYTES;
                for (int k = k0; k < k1; k++, g++) {
                    const int slot = g % STAGES, d = k * BK;
                    if (g >= STAGES) mbar_wait(bar0 + 8 * (STAGES + slot), (unsigned)(g / STAGES - 1) & 1);
                    tma_conv_stage<SHP, SHP2, CL == 1, CL == 2>(as0 + slot * A_BYTES, bs0 + slot * B_BYTES, bytes, ta, tb,
                                                                ta2, d, n, p, q, n0, bar0 + 8 * slot, la, lb);
                }
            }
        }
        if constexpr (CL != 0) cluster_sync(); // (the other block may still arrive on this one's mbarriers)
        return; // (no block-wide barrier after this point)
    }
    // consumers: warpgroup wg takes this block's tiles j = wg, wg + 2, ... (COOP: rows wg * BM ... of every tile)
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
    const int lane = tid & 31, wq = warp & 3, gr = lane >> 2, tq = lane & 3;
    const bool leader = (tid & 127) == 0;
    const unsigned my_turn = bar0 + 8 * (2 * STAGES + wg), their_turn = bar0 + 8 * (2 * STAGES + 1 - wg);
    const unsigned resb = bar0 + 8 * (2 * STAGES + 2 + wg);
    unsigned char *stg = Ss + wg * ST_BYTES;
    const unsigned stg_s = (unsigned)__cvta_generic_to_shared(stg);
    int r = 0; // epilogues this warpgroup has done
    constexpr int JS = COOP ? 1 : 2; // tiles between a warpgroup's turns
    // a stage read: back to this block's producer (CL, rank 1: and to rank 0's, whose loads wrote it too)
    const auto release = [&](unsigned e) {
        mbar_arrive(e);
        if (CL != 0 && rank == 1) mbar_arrive_rank(e, 0);
    };
    if constexpr (OV) { // ("to" tiles: see the comment above conv_tma_pp_f16)
        const int lane0 = lane == 0;
        // a finished tile's results, bias and activation applied, as fp16 pairs: row wq 16 + gr + 8 h,
        // channels n0 + 8 c + 2 tq, + 1 (registers of their own: ptxas serializes the wgmmas when
        // accumulators are read while later wgmmas are in flight, C7514)
        __half2 keep[2][BN / 8];
        // ... staged and stored by TMA (the previous tile's, under this tile's first wgmmas)
        const auto store = [&](int m0, int n0, int nb) {
            if (leader) bulk_wait_read0(); // (the store before has read the buffer)
            wg_bar(1 + wg);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int row = wq * 16 + gr + 8 * h;
#pragma unroll
                for (int c = 0; c < BN / 8; c++)
                    if (n0 + 8 * c + 2 * tq < NN)
                        *reinterpret_cast<__half2 *>(stg + (c / 8) * BOX_BYTES + row * 128 + (((c & 7) ^ (row & 7)) << 4) +
                                                     4 * tq) = keep[h][c];
            }
            fence_proxy_async();
            wg_bar(1 + wg);
            if (leader) {
                for (int b = 0; b < nb; b++) tma_store_2d(ty, n0 + 64 * b, m0, stg_s + b * BOX_BYTES);
                bulk_commit();
            }
        };
        const auto step = [&](float (&X)[1][BN / 2], int g) { // depth tile g of the ring into X
            const int slot = g % STAGES;
            mbar_wait(bar0 + 8 * slot, (unsigned)(g / STAGES) & 1);
            wgmma_fence();
            wgmma_k64<BN, BM, 1, true, false>(X, As + slot * A_BYTES + wg * BM * 128, Bs + slot * B_BYTES);
            wgmma_commit();
        };
        const typename E::res_t *rs = nullptr; // (no residual)
        float acc[1][BN / 2];
        int pm0 = 0, pn0 = 0, pnb = 0, j = 0;
        for (int u = U0; u < PU; u += US, j++) {
            const int t = tile_of(u);
            const int m0 = (t / NT) * TBM + wg * BM, n0 = (t % NT) * BN;
            const int nb = m0 >= M ? 0 : (NN - n0 + 63) / 64 < NB ? (NN - n0 + 63) / 64 : NB;
#pragma unroll
            for (int c = 0; c < BN / 2; c++) acc[0][c] = 0.0f;
            wgmma_pin<BN / 2>(acc[0]);
            const int g0 = j * KT;
            step(acc, g0);
            step(acc, g0 + 1);
            wgmma_wait<1>(); // (the first stage back to the producer before the store, not after it)
            if (lane0) release(bar0 + 8 * (STAGES + g0 % STAGES));
            if (j > 0) store(pm0, pn0, pnb); // (the second group of this tile in flight meanwhile)
            for (int k = 2; k < KT; k++) {
                step(acc, g0 + k);
                wgmma_wait<1>();
                if (lane0) release(bar0 + 8 * (STAGES + (g0 + k - 1) % STAGES));
            }
            wgmma_wait<0>();
            if (lane0) release(bar0 + 8 * (STAGES + (g0 + KT - 1) % STAGES));
            wgmma_pin<BN / 2>(acc[0]);
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int c = 0; c < BN / 8; c++) {
                    const int ch = n0 + 8 * c + 2 * tq < NN ? n0 + 8 * c + 2 * tq : 0; // (past NN: not stored)
                    keep[h][c] = __floats2half2_rn(E::apply(bias, rs, ch, 0, acc[0][4 * c + 2 * h]),
                                                   E::apply(bias, rs, ch + 1, 0, acc[0][4 * c + 2 * h + 1]));
                }
            pm0 = m0, pn0 = n0, pnb = nb;
        }
        if (j > 0) store(pm0, pn0, pnb);
        if (leader) bulk_wait0();
        return;
    }
    // (stream-K: this block's depth tiles it .. end - 1)
    int it = SK ? sk_start<(long long)TILES * KT>((int)blockIdx.x, (int)gridDim.x) : 0;
    const int end = SK ? sk_start<(long long)TILES * KT>((int)blockIdx.x + 1, (int)gridDim.x) : 0;
    for (int j = COOP ? 0 : wg, u = SK ? it / KT : U0 + (COOP ? 0 : wg) * US; SK ? it < end : u < PU;
         j += JS, u = SK ? it / KT : u + JS * US) {
        const int t = tile_of(u);
        const int k0 = SK ? it % KT : 0, k1 = SK && end - it < KT - k0 ? k0 + end - it : KT;
        if (SK) it += k1 - k0;
        // a segment from depth tile 0 stores the tile (stream-K: after adding the later blocks' partials);
        // one from further in leaves its partial sums to the block that started the tile
        const bool epi = k0 == 0;
        const int m0 = (t / NT) * TBM + (COOP ? wg * BM : 0), n0 = (t % NT) * BN; // (this warpgroup's rows)
        // boxes holding channels (a box past NN, or past M for COOP's second half: nothing to load or store)
        const int nb = m0 >= M ? 0 : (NN - n0 + 63) / 64 < NB ? (NN - n0 + 63) / 64 : NB;
        if constexpr (RES) { // the residual boxes into the staging buffer, once the previous store has read it
            if (leader && epi) {
                bulk_wait_read0();
                mbar_expect_tx(resb, (unsigned)(nb * BOX_BYTES));
                for (int b = 0; b < nb; b++) tma_load_2d(stg_s + b * BOX_BYTES, tr, n0 + 64 * b, m0, resb);
            }
        }
        float acc[AM][AN / 2];
#pragma unroll
        for (int i = 0; i < AM; i++)
#pragma unroll
            for (int c = 0; c < AN / 2; c++) acc[i][c] = 0.0f;
        // BL: the bias of this thread's channels n0 + 8 c + 2 tq, + 1, loaded now so that the loads'
        // latency passes under the wgmmas (in the epilogue it took a third of the epilogue's time:
        // ncu, ResNet-50's layer-2 conv pair)
        typename E::bias_t bl[BL ? BN / 8 : 1][2];
        if constexpr (BL) {
#pragma unroll
            for (int c = 0; c < BN / 8; c++) {
                const int ch = n0 + 8 * c + 2 * tq < NN ? n0 + 8 * c + 2 * tq : 0; // (past NN: not stored)
                bl[c][0] = bias[ch], bl[c][1] = bias[ch + 1];
            }
        }
        (void)bl;
        if (!COOP) {
            if (wg == 1) mbar_wait(my_turn, (unsigned)r & 1);            // tile j - 1 (warpgroup 0's r-th) issued
            else if (r > 0) mbar_wait(my_turn, (unsigned)(r - 1) & 1); // tile j - 1 (warpgroup 1's (r-1)-th) issued
        }
#pragma unroll
        for (int mi = 0; mi < AM; mi++) wgmma_pin<AN / 2>(acc[mi]);
        // stage of depth tile k: g0 + k (stream-K: it - k1 depth tiles of the block's share came before)
        const int g0 = SK ? it - k1 - sk_start<(long long)TILES * KT>((int)blockIdx.x, (int)gridDim.x) : j * KT;
        for (int k = k0; k < k1; k++) {
            const int g = g0 + k, slot = g % STAGES;
            mbar_wait(bar0 + 8 * slot, (unsigned)(g / STAGES) & 1);
            const unsigned char *as = As + slot * A_BYTES + (COOP ? wg * BM * 128 : 0), *bs = Bs + slot * B_BYTES;
            wgmma_fence();
#if !KILN_EXP_NOMMA
            wgmma_k64<BN, BM, MI, true, TR>(acc, as, bs); // (TR: the weights bs as A, the pixels as as B)
#else
            (void)as, (void)bs;
#endif
            wgmma_commit();
            if (!COOP && k == KT - 1 && lane == 0) mbar_arrive(their_turn); // the other warpgroup may start its wgmmas
            wgmma_wait<1>();
            if (k > k0 && lane == 0) release(bar0 + 8 * (STAGES + (g - 1) % STAGES));
        }
        wgmma_wait<0>();
        if (lane == 0) release(bar0 + 8 * (STAGES + (g0 + k1 - 1) % STAGES));
#pragma unroll
        for (int mi = 0; mi < AM; mi++) wgmma_pin<AN / 2>(acc[mi]);
        if constexpr (SK) { // partial sums: [block][MI * BN / 8 float4s][256 threads] (each thread its own fragment)
            constexpr int F4 = MI * BN / 8;
            if (!epi) { // to this block's slot; then its flag (release: every consumer thread's stores before it)
                float4 *dst = reinterpret_cast<float4 *>(part) + (size_t)blockIdx.x * F4 * 256 + tid;
#pragma unroll
                for (int mi = 0; mi < MI; mi++)
#pragma unroll
                    for (int c = 0; c < BN / 8; c++)
                        __stcg(dst + (mi * (BN / 8) + c) * 256,
                               make_float4(acc[mi][4 * c], acc[mi][4 * c + 1], acc[mi][4 * c + 2], acc[mi][4 * c + 3]));
                consumers_bar();
                if (tid == 0) {
                    __threadfence();
                    flag_release(flags + blockIdx.x);
                }
                continue;
            }
            // the tile's later depth tiles: blocks blockIdx.x + 1 ... (their first segments, done early in
            // their runs; every block of the grid is resident: the grid is at most one block per SM)
            const int c_end = k1 < KT ? sk_block_at<(long long)TILES * KT>((t + 1) * KT, (int)gridDim.x) : 0;
            for (int c = (int)blockIdx.x + 1; c < c_end; c++) {
                if (tid == 0) {
                    while (!flag_acquire(flags + c)) __nanosleep(100);
                    flags[c] = 0; // (consumed: zero again for the next launch)
                }
                consumers_bar();
                const float4 *src = reinterpret_cast<const float4 *>(part) + (size_t)c * F4 * 256 + tid;
#pragma unroll
                for (int mi = 0; mi < MI; mi++)
#pragma unroll
                    for (int cc = 0; cc < BN / 8; cc++) {
                        const float4 v = __ldcg(src + (mi * (BN / 8) + cc) * 256);
                        acc[mi][4 * cc] += v.x, acc[mi][4 * cc + 1] += v.y, acc[mi][4 * cc + 2] += v.z, acc[mi][4 * cc + 3] += v.w;
                        // (no barrier between the loads: all of a thread's may be in flight at once)
                    }
            }
        }
        // epilogue: the staging buffer is free (RES: holds the residual) ...
        if constexpr (RES) {
            mbar_wait(resb, (unsigned)r & 1);
        } else {
            if (leader) bulk_wait_read0();
            wg_bar(1 + wg);
        }
        // ... each element at its place in box col / 64: row at 128 bytes, 16-byte chunk (col % 64) / 8
        // swizzled with row % 8 (the 128-byte mode of ty); acc row 16 wq + gr + 8 h of m64 block mi,
        // channels 8 c + 2 tq, + 1. SP = 2: the second half's results wait in registers (fp16 pairs)
        // until the first half's store has read the buffer (the accumulators are not read across it:
        // ptxas would serialize the wgmmas, C7514).
        const typename E::res_t *rs = reinterpret_cast<const typename E::res_t *>(stg);
        constexpr int CH = BN / 8 / SP; // 8-channel columns staged per pass
        // byte offset in the staging buffer of row, channels 8 c + 2 tq (c's box within its pass)
        const auto stg_off = [&](int row, int c) {
            return (c % CH / 8) * BOX_BYTES + row * 128 + (((c & 7) ^ (row & 7)) << 4) + 4 * tq;
        };
        __half2 keep[MI][2][SP == 2 ? CH : 1];
        if constexpr (TR) { // D[channel 16 wq + gr + 8 (q / 2)][pixel 8 j + 2 tq + q % 2]: an fp16 at a time
#pragma unroll
            for (int j = 0; j < BM / 8; j++)
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    const int row = 8 * j + 2 * tq + (q & 1), cc = 16 * wq + gr + 8 * (q >> 1);
                    if (n0 + cc >= NN) continue;
                    const int off = row * 128 + (((cc >> 3) ^ (row & 7)) << 4) + 2 * (cc & 7);
                    *reinterpret_cast<__half *>(stg + off) =
                        __float2half_rn(E::apply(bias, rs, n0 + cc, off / 2, acc[0][4 * j + q]));
                }
        } else {
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int row = mi * 64 + wq * 16 + gr + 8 * h;
#pragma unroll
                    for (int c = 0; c < BN / 8; c++) {
                        const int ch = n0 + 8 * c + 2 * tq;
                        if (ch >= NN) continue; // NN % 8 == 0: ch + 1 < NN too
                        const int off = stg_off(row, c);
                        float v0, v1;
                        if constexpr (BL) {
                            v0 = E::apply_b(to_f32(bl[c][0]), rs, off / 2, acc[mi][4 * c + 2 * h]);
                            v1 = E::apply_b(to_f32(bl[c][1]), rs, off / 2 + 1, acc[mi][4 * c + 2 * h + 1]);
                        } else {
                            v0 = E::apply(bias, rs, ch, off / 2, acc[mi][4 * c + 2 * h]);
                            v1 = E::apply(bias, rs, ch + 1, off / 2 + 1, acc[mi][4 * c + 2 * h + 1]);
                        }
                        if (c < CH) *reinterpret_cast<__half2 *>(stg + off) = __floats2half2_rn(v0, v1);
                        else keep[mi][h][c - CH] = __floats2half2_rn(v0, v1);
                    }
                }
        }
#pragma unroll
        for (int sp = 0; sp < SP; sp++) {
            if (sp > 0) { // the first half's store has read the buffer: the second half into it
                if (leader) bulk_wait_read0();
                wg_bar(1 + wg);
#pragma unroll
                for (int mi = 0; mi < MI; mi++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const int row = mi * 64 + wq * 16 + gr + 8 * h;
#pragma unroll
                        for (int c = CH; c < BN / 8; c++) {
                            if (n0 + 8 * c + 2 * tq >= NN) continue;
                            *reinterpret_cast<__half2 *>(stg + stg_off(row, c)) = keep[mi][h][c - CH];
                        }
                    }
            }
            fence_proxy_async(); // this thread's writes, visible to the TMA unit ...
            wg_bar(1 + wg);      // ... everyone's
            if (leader && KILN_EXP_DIAG != 2) {
                for (int b = sp * SNB; b < nb && b < (sp + 1) * SNB; b++)
                    tma_store_2d(ty, n0 + 64 * b, m0, stg_s + (b - sp * SNB) * BOX_BYTES);
                bulk_commit();
            }
        }
        r++;
    }
    if (leader) bulk_wait0(); // (the last stores read shared memory: it must outlive them)
    if constexpr (CL != 0) cluster_sync(); // (the other block may still arrive on this one's mbarriers)
#else
    (void)ta, (void)tb, (void)ta2, (void)ty, (void)tr, (void)part, (void)flags; // (whole tiles: no stream-K)
    if ((int)threadIdx.x >= 256) return; // the producer warpgroup has nothing to do here
    for (int t = (int)blockIdx.x; t < TILES; t += (int)gridDim.x)
        for (int h = 0; h < TBM / BM; h++) { // (COOP: the tile's two BM-row halves)
            conv_nhwc_f16<SHP, BM, BN, 32, BM / 2, BN / 4, 4, 1, E, SHP2>(x, w, bias, res, y, nullptr, smem, x2,
                                                                        t / NT * (TBM / BM) + h, t % NT);
            __syncthreads(); // the next tile's loads overwrite shared memory
        }
#endif
}

// conv_halo_f16 ("hl" candidates, cg_conv_nhwc.c): a stride-1, dilation-1 convolution with 64 output
// channels and C = 16, 32 or 64 input channels (ResNet's stage-1 3x3 convs, the space-to-depth
// stem) without im2col copies. The im2col loaders read every input pixel R * S times from L2
// (ncu on an H100: the s2d stem moved 4.9 TB/s through L2 for 360 MB, 16x its input); here a
// block loads each tile's input halo once and points wgmma's descriptors into it.
//
//   output tile: TY rows x 8 columns of one image; warpgroup wg takes rows wg * TY / WG ... (NP =
//   8 * TY / WG pixels: the N of m64nNk16); transposed roles as the "wt" tiles: D[64 channels]
//   [NP pixels] = W[64][k] * X[pixels][k]^T.
//   halo: (TY + R - 1) x 16 pixels (8 + S - 1 used), stored [C / 8][row][16 columns] x 16 bytes:
//   a core matrix (8 pixels x 8 channels) for tap (r, s) and output row i is 128 contiguous bytes
//   at ((i + r) * 16 + s) * 16 of its channel plane, whatever s is; so B's descriptor has the
//   stride byte offset 256 (next output row) and the leading byte offset one plane (next 8
//   channels), no swizzle.
//   weights: all of W[64][R * S * C] (OHWI) stay in shared memory, [depth / 8][64 rows] x 16 B
//   (A's leading byte offset 1024, stride byte offset 128).
//
// Persistent: the grid is at most the resident blocks; block b takes tiles b, b + grid, ...; the
// next tile's halo loads (double buffer) fly during this tile's wgmmas and epilogue. The epilogue
// stages fp32 rows in a region of its own (the next halo is in flight) and stores 16-byte chunks
// (conv_nhwc_epi_rows_at with the tile's pixel map).
// Without wgmma (sm_80, sm_90, PTX, the CPU emulator) a scalar loop reads the same shared layout
// through the same descriptor arithmetic (wgmma_soft), so the emulator checks the layout.
#define KILN_HALO_SMEM_BYTES(TY, R, S, C) ((R) * (S) * (C) * 128 + 2 * ((C) / 8) * ((TY) + (R) - 1) * 256 + (TY) * 8 * KILN_NHWC_EPI_LD(64) * 4)
#ifndef KILN_HAVE_WGMMA
// D[64][NP] += A[64][16] * B[NP][16] from no-swizzle K-major layouts (start, leading = K-adjacent
// core matrix offset, stride = M/N-adjacent), into this thread's wgmma accumulator fragment
template <int NP>
__device__ __forceinline__ void wgmma_soft(float *acc, const unsigned char *a, int a_lbo, int a_sbo,
                                           const unsigned char *b, int b_lbo, int b_sbo, int warp, int lane) {
    for (int j = 0; j < NP / 8; j++)
        for (int q = 0; q < 4; q++) {
            const int row = 16 * warp + lane / 4 + 8 * (q / 2), col = 8 * j + 2 * (lane % 4) + q % 2;
            float sum = 0.0f;
            for (int k = 0; k < 16; k++) {
                const __half av = *reinterpret_cast<const __half *>(a + (row / 8) * a_sbo + (row % 8) * 16 + (k / 8) * a_lbo + (k % 8) * 2);
                const __half bv = *reinterpret_cast<const __half *>(b + (col / 8) * b_sbo + (col % 8) * 16 + (k / 8) * b_lbo + (k % 8) * 2);
                sum += __half2float(av) * __half2float(bv);
            }
            acc[4 * j + q] += sum;
        }
}
#endif
template <class SHP, int TY, int WG, class E>
__device__ __forceinline__ void conv_halo_f16(const __half *__restrict__ x, const __half *__restrict__ w,
                                              const typename E::bias_t *__restrict__ bias,
                                              const typename E::res_t *__restrict__ res, __half *__restrict__ y,
                                              unsigned char *smem) {
    constexpr int C = SHP::C, R = SHP::R, S = SHP::S, P = SHP::P, Q = SHP::Q, H = SHP::H, W = SHP::W;
    static_assert(SHP::K == 64 && C % 16 == 0 && C <= 64 && S <= 9, "halo conv: K 64, C 16/32/64");
    static_assert(SHP::SH == 1 && SHP::SW == 1 && SHP::DH == 1 && SHP::DW == 1, "halo conv: stride 1");
    constexpr int HX = 16, UX = 8 + S - 1, HY = TY + R - 1, CK = C / 8, RWG = TY / WG, NP = 8 * RWG;
    static_assert(TY % WG == 0 && (NP == 64 || NP == 128 || NP == 256), "halo tile");
    constexpr int KD = R * S * C, W_BYTES = KD * 128, PLANE = HY * HX * 16, HALO = CK * PLANE, LD = KILN_NHWC_EPI_LD(64);
    static_assert(W_BYTES + 2 * HALO + TY * 8 * LD * 4 == KILN_HALO_SMEM_BYTES(TY, R, S, C), "shared layout");
    constexpr int TQ = (Q + 7) / 8, TP = (P + TY - 1) / TY, NT = SHP::N * TP * TQ, NTH = 128 * WG;
    unsigned char *ws = smem, *hs = smem + W_BYTES;
    float *cs = reinterpret_cast<float *>(smem + W_BYTES + 2 * HALO); // epilogue staging: [TY * 8 pixels][LD]
    const int tid = threadIdx.x, lane = tid & 31, warp = (tid >> 5) & 3, wg = tid >> 7;

    // the weights, once (consecutive threads: consecutive 16 bytes of a filter row)
    for (int i = tid; i < KD / 8 * 64; i += NTH) {
        const int row = i / (KD / 8), kc = i % (KD / 8);
        cp_async16(ws + kc * 1024 + row * 16, w + (i64)row * KD + kc * 8, true);
    }
    auto load_halo = [&](int t, unsigned char *buf) { // consecutive threads: a pixel's channel chunks
        const int n = t / (TP * TQ), y0 = (t % (TP * TQ)) / TQ * TY, x0 = t % TQ * 8;
        for (int i = tid; i < HY * UX * CK; i += NTH) {
            const int kc = i % CK, px = i / CK, hx = px % UX, hy = px / UX;
            const int ih = y0 - SHP::PH + hy, iw = x0 - SHP::PW + hx;
            const bool ok = (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W;
            cp_async16(buf + kc * PLANE + (hy * HX + hx) * 16, ok ? x + (((i64)n * H + ih) * W + iw) * C + kc * 8 : x, ok);
        }
    };
    int t = (int)blockIdx.x;
    if (t < NT) load_halo(t, hs);
    cp_async_commit();
    for (int it = 0; t < NT; it++, t += (int)gridDim.x) {
        if (t + (int)gridDim.x < NT) load_halo(t + (int)gridDim.x, hs + ((it + 1) & 1) * HALO);
        cp_async_commit();
        cp_async_wait<1>(); // this tile's halo (and the weights) landed: this thread's copies ...
#ifdef KILN_HAVE_WGMMA
        fence_proxy_async(); // ... visible to the async proxy ...
#endif
        __syncthreads(); // ... everyone's
        float acc[NP / 2];
#pragma unroll
        for (int i = 0; i < NP / 2; i++) acc[i] = 0.0f;
        const unsigned char *hb = hs + (it & 1) * HALO + wg * RWG * HX * 16;
#ifdef KILN_HAVE_WGMMA
        wgmma_pin<NP / 2>(acc);
        wgmma_fence();
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int s = 0; s < S; s++)
#pragma unroll
                for (int k = 0; k < C / 16; k++)
                    wgmma_f16<NP>::run(acc, wgmma_desc(ws + (((r * S + s) * C) / 8 + 2 * k) * 1024, 1024, 128),
                                       wgmma_desc(hb + 2 * k * PLANE + (r * HX + s) * 16, PLANE, HX * 16));
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_pin<NP / 2>(acc);
#else
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++)
                for (int k = 0; k < C / 16; k++)
                    wgmma_soft<NP>(acc, ws + (((r * S + s) * C) / 8 + 2 * k) * 1024, 1024, 128,
                                   hb + 2 * k * PLANE + (r * HX + s) * 16, PLANE, HX * 16, warp, lane);
#endif
        // d[4 j + q] = D[channel 16 warp + lane / 4 + 8 (q / 2)][pixel 8 j + 2 (lane % 4) + q % 2]
        // (pixel row j of this warpgroup's rows): staged pixel-major as the wt tiles' epilogue,
        // staging row (wg * RWG + j) * 8 + column
        const int g = lane >> 2, tq = lane & 3;
#pragma unroll
        for (int j = 0; j < NP / 8; j++)
#pragma unroll
            for (int q = 0; q < 4; q++)
                cs[(wg * NP + 8 * j + 2 * tq + (q & 1)) * LD + warp * 16 + g + 8 * (q >> 1)] = acc[4 * j + q];
        __syncthreads(); // staged; and every warpgroup is done with this halo buffer (refilled next)
        const int n = t / (TP * TQ), y0 = (t % (TP * TQ)) / TQ * TY, x0 = t % TQ * 8;
        conv_nhwc_epi_rows_at<64, TY * 8, NTH, 64, E>(
            cs,
            [=](int r) {
                const int oy = y0 + r / 8, ox = x0 + r % 8;
                return oy < P && ox < Q ? (n * P + oy) * Q + ox : -1;
            },
            0, bias, res, y, tid);
    }
    cp_async_wait<0>();
}

// conv_halo_pp_f16 ("hp" candidates, cg_conv_nhwc.c): conv_halo_f16's shapes, halo loads and epilogue,
// with its warpgroups taking turns on tiles of their own (as conv_tma_pp_f16): one's epilogue (stores
// of 64 channels a pixel: the stage-1 3x3's output is as large as its input) runs while another's
// wgmmas do, and all share one copy of the weights (73.7 KB for a 64-channel 3x3, so two blocks of
// conv_halo_f16 do not fit on an SM).
//
//   tiles: TY output rows x 8 columns of one image (NP = 8 * TY pixels, the N of m64nNk16: 64, 112
//   or 128); WGS warpgroups (2, 3 or 4) take turns: tile set p = (WGS p ... WGS p + WGS - 1) goes to
//   warpgroups 0 ... WGS - 1 of block p % grid, so all warpgroups of a block make the same number of
//   turns (the last set's tiles may not all exist: such a warpgroup only keeps the turn order).
//   NB = 2 halo buffers a warpgroup: the next tile's halo loads before this one's wgmmas; NB = 1: after
//   them (the buffer is free once they completed), during the epilogue and the others' turns.
//   halo: (TY + R - 1) x UX pixels (UX = 8 + S - 1).
//   SWZ = false: conv_halo_f16's no-swizzle layout, [C / 8][row][UX] x 16 bytes (B's stride byte offset
//   the row pitch UX * 16, leading byte offset one channel plane); weights [depth / 8][64] x 16 B.
//   SWZ = true (C = 64): the 128-byte swizzle of the TMA tiles: a pixel's 64 channels are one 128-byte
//   row, pixel p = row * UX + column at p * 128 with 16-byte chunk c at c ^ (p % 8); B for tap (r, s)
//   starts at pixel r * UX + s, k16 step k 32 bytes further, stride byte offset UX * 128. The start
//   falls on any row of a 1024-byte atom and the 8-pixel groups on different rows: the hardware
//   swizzles by the address bits (base offset field 0; an H100 gave wrong sums with the PTX ISA's
//   "(start >> 7) & 7" there), so any row start works. Weights [tap][64 rows] x 128 bytes, swizzled
//   alike. On an H100 the stage-1 3x3 (ResNet-50 b32) took 30 us without the swizzle, 20 us with.
//   RA = true (wgmma only): the weights stay in registers instead, each warp's A fragments of all
//   R * S * C / 16 k16 steps (4 a step: 144 registers for a 64-channel 3x3), loaded once; wgmma then
//   reads only B from shared memory.
//   F16S = true (codegen: the conv has no residual): the epilogue (E::apply: bias, activation) runs on
//   the accumulators, packed to fp16 and stored transposed by stmatrix into [NP pixels][72 halves]
//   staging rows; the stores are then 16-byte copies. A quarter of the fp32 rows' shared bytes (H100,
//   ResNet-50 b32 stage-1 3x3, hp64 g4: 18.5 -> 16.3 us), and room for larger tiles.
//   TMAH = true (SWZ only; "hq" tiles, codegen: x in the arena): one thread a warpgroup loads each halo as
//   one TMA box (th: x as [N][H][W][C], box 64 channels x UX x HY pixels, 128-byte swizzle, which is the SWZ
//   layout above; the padding zero-filled by the TMA unit), completing on an mbarrier per halo buffer (64
//   bytes at the end of shared memory); the warpgroup waits on its phase (the buffer's load count & 1)
//   instead of cp.async groups and a barrier. ncu had shown the per-thread copies' address arithmetic
//   outlasting the other warpgroups' chains (H100, ResNet-50 b32 stage-1 3x3: hp64 g4 16.5 -> hq64 g4 13.9 us).
//   The fallback (no wgmma) copies the same layout with cp.async.
//   shared: weights | warpgroup 0: NB halo buffers, staging [NP][LD] fp32 (F16S: [NP][72] fp16) | warpgroup 1: ...
//   | (TMAH: WGS x NB mbarriers)
//   (halo and staging rounded up to 1 KiB when swizzled; + 1 KiB to align the start).
//   turns: before its wgmmas warpgroup w waits at named barrier WGS + 1 + w (256 threads) for warpgroup
//   w - 1 (mod WGS) to arrive there after issuing its own; so the wgmma chains go round (warpgroup 0
//   first) and each epilogue overlaps the others' chains. Each warpgroup's loads, staging and stores
//   sync on its own named barrier 1 + w (128 threads).
// Without wgmma the same loop runs a scalar product over the same layouts (no turns), and
// __syncthreads for the warpgroup barriers (legal: all warpgroups make the same number of turns and
// reach them unconditionally).
#define KILN_HALO_PP_RND(v, SWZ) ((SWZ) ? ((v) + 1023) / 1024 * 1024 : (v)) /* (swizzled: 1 KiB atoms) */
#define KILN_HALO_PP_HALO_BYTES(TY, R, S, C, SWZ) KILN_HALO_PP_RND(((C) / 8) * ((TY) + (R) - 1) * (8 + (S) - 1) * 16, SWZ)
#define KILN_HALO_PP_F16_LD 72 /* fp16 staging: a pixel's 64 channels and 16 bytes of padding */
#define KILN_HALO_PP_STG_BYTES(TY, SWZ, F16S) \
    KILN_HALO_PP_RND((F16S) ? (TY) * 8 * KILN_HALO_PP_F16_LD * 2 : (TY) * 8 * KILN_NHWC_EPI_LD(64) * 4, SWZ)
#define KILN_HALO_PP_SMEM_BYTES(TY, R, S, C, SWZ, WGS, NB, F16S, TMAH)                                             \
    ((R) * (S) * (C) * 128 + (WGS) * ((NB) * KILN_HALO_PP_HALO_BYTES(TY, R, S, C, SWZ) + KILN_HALO_PP_STG_BYTES(TY, SWZ, F16S)) + \
     ((SWZ) ? 1024 : 0) + ((TMAH) ? 64 : 0))
#ifdef KILN_HAVE_WGMMA
// A tiled 4-D box (TMA, the map's swizzle) into shared memory at dst, completing on mbarrier bar
__device__ __forceinline__ void tma_load_4d(unsigned dst, const tmap *m, int c0, int c1, int c2, int c3, unsigned bar) {
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, "
                 "%5}], [%6];\n" ::"r"(dst),
                 "l"((u64)m), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
                 : "memory");
}
// Four 8x8 fp16 matrices from registers (each thread's m16n8 fragment pair, as mma's accumulators
// packed) to shared memory transposed: lane l gives the address of row l % 8 of matrix l / 8
__device__ __forceinline__ void stmatrix_x4_trans(unsigned addr, unsigned r0, unsigned r1, unsigned r2, unsigned r3) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r0), "r"(r1),
                 "r"(r2), "r"(r3)
                 : "memory");
}
#endif
__device__ __forceinline__ void halo_pp_bar(int wg) {
#ifdef KILN_HAVE_WGMMA
    wg_bar(1 + wg);
#else
    (void)wg;
    __syncthreads();
#endif
}
#ifndef KILN_HAVE_WGMMA
// D[64][NP] += A[64][16] * B[NP][16] from 128-byte swizzled K-major layouts: element (row, k) at
// a + (row / 8) * a_sbo + (row % 8) * 128 + 2 k, its 16-byte chunk swizzled by the row of the atom
// its offset from the 1024-aligned base (abase, bbase) falls in
template <int NP>
__device__ __forceinline__ void wgmma_soft_sw128(float *acc, const unsigned char *abase, int a_off, int a_sbo,
                                                 const unsigned char *bbase, int b_off, int b_sbo, int warp, int lane) {
    auto at = [](const unsigned char *base, int off) {
        return __half2float(*reinterpret_cast<const __half *>(base + (off ^ (((off >> 7) & 7) << 4))));
    };
    for (int j = 0; j < NP / 8; j++)
        for (int q = 0; q < 4; q++) {
            const int row = 16 * warp + lane / 4 + 8 * (q / 2), col = 8 * j + 2 * (lane % 4) + q % 2;
            float sum = 0.0f;
            for (int k = 0; k < 16; k++)
                sum += at(abase, a_off + (row / 8) * a_sbo + (row % 8) * 128 + 2 * k) *
                       at(bbase, b_off + (col / 8) * b_sbo + (col % 8) * 128 + 2 * k);
            acc[4 * j + q] += sum;
        }
}
#endif
template <class SHP, int TY, class E, bool SWZ = false, bool RA = false, int WGS = 2, int NB = 2, bool F16S = false,
          bool TMAH = false>
__device__ __forceinline__ void conv_halo_pp_f16(const __half *__restrict__ x, const __half *__restrict__ w,
                                                 const typename E::bias_t *__restrict__ bias,
                                                 const typename E::res_t *__restrict__ res, __half *__restrict__ y,
                                                 unsigned char *smem, const tmap *th = nullptr) {
    constexpr int C = SHP::C, R = SHP::R, S = SHP::S, P = SHP::P, Q = SHP::Q, H = SHP::H, W = SHP::W;
    static_assert(SHP::K == 64 && C % 16 == 0 && C <= 64 && S <= 9, "halo conv: K 64, C 16/32/64");
    static_assert(SHP::SH == 1 && SHP::SW == 1 && SHP::DH == 1 && SHP::DW == 1, "halo conv: stride 1");
    static_assert(!SWZ || C == 64, "the swizzled halo: 64 channels (one 128-byte row a pixel)");
    constexpr int UX = 8 + S - 1, HY = TY + R - 1, CK = C / 8, NP = 8 * TY;
    static_assert(NP == 64 || NP == 112 || NP == 128, "halo pp tile");
    constexpr int KD = R * S * C, W_BYTES = KD * 128, PLANE = HY * UX * 16, LD = KILN_NHWC_EPI_LD(64);
    static_assert(WGS >= 2 && WGS <= 4 && (NB == 1 || NB == 2), "2-4 warpgroups, 1-2 halo buffers each");
    constexpr int HALO = KILN_HALO_PP_HALO_BYTES(TY, R, S, C, SWZ), WG_BYTES = NB * HALO + KILN_HALO_PP_STG_BYTES(TY, SWZ, F16S);
    static_assert(HALO >= CK * PLANE &&
                      W_BYTES + WGS * WG_BYTES + (SWZ ? 1024 : 0) + (TMAH ? 64 : 0) ==
                          KILN_HALO_PP_SMEM_BYTES(TY, R, S, C, SWZ, WGS, NB, F16S, TMAH),
                  "shared layout");
    static_assert(!TMAH || (SWZ && WGS * NB <= 8), "the halo by TMA: the swizzled layout (C = 64)");
    constexpr int TQ = (Q + 7) / 8, TP = (P + TY - 1) / TY, NT = SHP::N * TP * TQ, NSET = (NT + WGS - 1) / WGS;
    constexpr int NTH = 128 * WGS;
    const int tid = threadIdx.x, wg = tid >> 7, wt = tid & 127, lane = tid & 31, warp = (tid >> 5) & 3;
    if constexpr (SWZ) { // swizzle atoms on 1024 bytes
#ifdef KILN_EMU
        smem += (1024 - (unsigned)(reinterpret_cast<unsigned long long>(smem) & 1023)) & 1023;
#else
        smem += (1024 - ((unsigned)__cvta_generic_to_shared(smem) & 1023)) & 1023;
#endif
    }
    unsigned char *ws = smem, *hs = smem + W_BYTES + wg * WG_BYTES;
    float *cs = reinterpret_cast<float *>(hs + NB * HALO); // this warpgroup's epilogue staging: [NP pixels][LD]
    __half *hst = reinterpret_cast<__half *>(hs + NB * HALO); // ... F16S: [NP pixels][KILN_HALO_PP_F16_LD] fp16
#ifdef KILN_HAVE_WGMMA
    constexpr bool TM = TMAH; // the halo by TMA (one thread a warpgroup), mbarrier hbar(b) per halo buffer
    const unsigned hbar0 = (unsigned)__cvta_generic_to_shared(smem + W_BYTES + WGS * WG_BYTES) + 8 * NB * wg;
    if constexpr (TM) {
        if (tid == 0)
            for (int i = 0; i < WGS * NB; i++) mbar_init(hbar0 - 8 * NB * wg + 8 * i, 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        __syncthreads();
    }
#else
    constexpr bool TM = false; // (the fallback loads the same layout with cp.async)
    (void)th;
#endif

#ifdef KILN_HAVE_WGMMA
    constexpr bool RW = RA; // weights in registers
#else
    constexpr bool RW = false;
#endif
    unsigned wa[RW ? KD / 16 : 1][4];
    if constexpr (RW) { // this warp's A fragments of every k16 step (m16n8k16's layout, rows 16 warp ...)
        const __half *w0 = w + (i64)(16 * warp + (lane >> 2)) * KD + 2 * (lane & 3), *w1 = w0 + 8 * KD;
#pragma unroll
        for (int ks = 0; ks < KD / 16; ks++) {
            wa[ks][0] = *reinterpret_cast<const unsigned *>(w0 + 16 * ks);
            wa[ks][1] = *reinterpret_cast<const unsigned *>(w1 + 16 * ks);
            wa[ks][2] = *reinterpret_cast<const unsigned *>(w0 + 16 * ks + 8);
            wa[ks][3] = *reinterpret_cast<const unsigned *>(w1 + 16 * ks + 8);
        }
    } else { // the weights, once, by both warpgroups (consecutive threads: consecutive 16 bytes of a filter row)
        (void)wa;
        for (int i = tid; i < KD / 8 * 64; i += NTH) {
            const int row = i / (KD / 8), kc = i % (KD / 8);
            unsigned char *dst = SWZ ? ws + (kc / 8) * 8192 + row * 128 + (((kc % 8) ^ (row & 7)) << 4) : ws + kc * 1024 + row * 16;
            cp_async16(dst, w + (i64)row * KD + kc * 8, true);
        }
    }
    auto load_halo = [&](int t, unsigned char *buf) { // this warpgroup's threads: a pixel's channel chunks
        const int n = t / (TP * TQ), y0 = (t % (TP * TQ)) / TQ * TY, x0 = t % TQ * 8;
        if constexpr (TM) { // one box of HY x UX pixels x 64 channels, the padding zero-filled by the TMA unit
#ifdef KILN_HAVE_WGMMA
            if (wt == 0) {
                const unsigned bar = hbar0 + 8 * (NB == 2 ? (int)((buf - hs) / HALO) : 0);
                mbar_expect_tx(bar, (unsigned)(HY * UX * 128));
                tma_load_4d((unsigned)__cvta_generic_to_shared(buf), th, 0, x0 - SHP::PW, y0 - SHP::PH, n, bar);
            }
#endif
        } else if constexpr (WGS < 4) {
            for (int i = wt; i < HY * UX * CK; i += 128) {
            const int kc = i % CK, px = i / CK, hx = px % UX, hy = px / UX, pp = hy * UX + hx;
            const int ih = y0 - SHP::PH + hy, iw = x0 - SHP::PW + hx;
            const bool ok = (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W;
            unsigned char *dst = SWZ ? buf + pp * 128 + ((kc ^ (pp & 7)) << 4) : buf + kc * PLANE + pp * 16;
            cp_async16(dst, ok ? x + (((i64)n * H + ih) * W + iw) * C + kc * 8 : x, ok);
            }
        } else { // (128 registers a thread: unrolled, this loop spills)
#pragma unroll 1
            for (int i = wt; i < HY * UX * CK; i += 128) {
            const int kc = i % CK, px = i / CK, hx = px % UX, hy = px / UX, pp = hy * UX + hx;
            const int ih = y0 - SHP::PH + hy, iw = x0 - SHP::PW + hx;
            const bool ok = (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W;
            unsigned char *dst = SWZ ? buf + pp * 128 + ((kc ^ (pp & 7)) << 4) : buf + kc * PLANE + pp * 16;
            cp_async16(dst, ok ? x + (((i64)n * H + ih) * W + iw) * C + kc * 8 : x, ok);
            }
        }
    };
    int pr = (int)blockIdx.x, it = 0;
    if (pr < NSET && WGS * pr + wg < NT) load_halo(WGS * pr + wg, hs);
    cp_async_commit();
    for (; pr < NSET; it++, pr += (int)gridDim.x) {
        const int t = WGS * pr + wg, tn = t + WGS * (int)gridDim.x;
        const bool live = t < NT;
        if constexpr (TM) { // this tile's halo: its buffer's barrier, phase (the buffer's load count) & 1
#ifdef KILN_HAVE_WGMMA
            if constexpr (NB == 2)
                if (tn < NT) load_halo(tn, hs + ((it + 1) & 1) * HALO);
            if (it == 0) { // the weights (cp.async) ...
                cp_async_wait<0>();
                fence_proxy_async(); // ... visible to the async proxy ...
                __syncthreads();     // ... everyone's
            }
            if (live) mbar_wait(hbar0 + 8 * (NB == 2 ? (it & 1) : 0), (unsigned)(NB == 2 ? it >> 1 : it) & 1);
#endif
        } else {
            if constexpr (NB == 2) {
                if (tn < NT) load_halo(tn, hs + ((it + 1) & 1) * HALO);
                cp_async_commit();
                cp_async_wait<1>(); // this tile's halo (and the weights) landed: this thread's copies ...
            } else {
                cp_async_wait<0>(); // (NB = 1: loaded during the previous turn's epilogue)
            }
#ifdef KILN_HAVE_WGMMA
            fence_proxy_async(); // ... visible to the async proxy ...
#endif
            if (it == 0) __syncthreads(); // ... everyone's (the weights: both warpgroups')
            else halo_pp_bar(wg);         // ... this warpgroup's
        }
        float acc[NP / 2];
#pragma unroll
        for (int i = 0; i < NP / 2; i++) acc[i] = 0.0f;
        const unsigned char *hb = hs + (NB == 2 ? (it & 1) * HALO : 0);
#ifdef KILN_HAVE_WGMMA
        // (without a tile the chain runs anyway, on a stale buffer, its sums unused: wgmma under a
        // branch is serialized, ptxas C7518)
        if (it > 0 || (WGS == 2 ? wg == 1 : wg > 0)) asm volatile("bar.sync %0, 256;\n" ::"r"(WGS + 1 + wg) : "memory"); // my turn
        wgmma_pin<NP / 2>(acc);
        wgmma_fence();
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int s = 0; s < S; s++)
#pragma unroll
                for (int k = 0; k < C / 16; k++) {
                    u64 da, db;
                    if constexpr (SWZ) {
                        da = wgmma_desc(ws + (r * S + s) * 8192 + 32 * k, 16, 1024) | ((u64)1 << 62);
                        db = wgmma_desc(hb + (r * UX + s) * 128 + 32 * k, 16, UX * 128) | ((u64)1 << 62);
                    } else {
                        da = wgmma_desc(ws + (((r * S + s) * C) / 8 + 2 * k) * 1024, 1024, 128);
                        db = wgmma_desc(hb + 2 * k * PLANE + (r * UX + s) * 16, PLANE, UX * 16);
                    }
                    if constexpr (RW) wgmma_rs_f16<NP>::run(acc, wa[(r * S + s) * (C / 16) + k], db);
                    else wgmma_f16<NP>::run(acc, da, db);
                }
        wgmma_commit();
        asm volatile("bar.arrive %0, 256;\n" ::"r"(WGS == 2 ? 4 - wg : WGS + 1 + (wg + 1) % WGS) : "memory"); // the next one's turn
        wgmma_wait<0>();
        wgmma_pin<NP / 2>(acc);
#else
        if (live)
            for (int r = 0; r < R; r++)
                for (int s = 0; s < S; s++)
                    for (int k = 0; k < C / 16; k++) {
                        if constexpr (SWZ)
                            wgmma_soft_sw128<NP>(acc, ws, (r * S + s) * 8192 + 32 * k, 1024, hb,
                                                 (r * UX + s) * 128 + 32 * k, UX * 128, warp, lane);
                        else
                            wgmma_soft<NP>(acc, ws + (((r * S + s) * C) / 8 + 2 * k) * 1024, 1024, 128,
                                           hb + 2 * k * PLANE + (r * UX + s) * 16, PLANE, UX * 16, warp, lane);
                    }
#endif
        if constexpr (NB == 1) { // the halo buffer is free (every warp's wgmmas completed): the next tile's
            halo_pp_bar(wg);
            if (tn < NT) load_halo(tn, hs);
            if constexpr (!TM) cp_async_commit();
        }
        // d[4 j + q] = D[channel 16 warp + lane / 4 + 8 (q / 2)][pixel 8 j + 2 (lane % 4) + q % 2]: staged
        // pixel-major (staging row = pixel = 8 * tile row + column)
        const int g = lane >> 2, tq = lane & 3;
        if constexpr (F16S) { // the epilogue (no residual: it reads nothing per pixel) in registers, staged as fp16
            if (live) {
                unsigned hv[NP / 4]; // d[4 j + 2 h + b] -> half2 (b = 0, 1) of channel 16 warp + g + 8 h, pixels 8 j + 2 tq + b
#pragma unroll
                for (int j = 0; j < NP / 8; j++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const int ch = 16 * warp + g + 8 * h;
                        hv[2 * j + h] = (unsigned)__half_as_ushort(__float2half_rn(E::apply(bias, res, ch, 0, acc[4 * j + 2 * h]))) |
                                        (unsigned)__half_as_ushort(__float2half_rn(E::apply(bias, res, ch, 0, acc[4 * j + 2 * h + 1])))
                                            << 16;
                    }
#ifdef KILN_HAVE_WGMMA
                // matrices (j, h), (j, h + 1), (j + 1, h), (j + 1, h + 1) of m8n8 fragments, stored transposed: row
                // = pixel 8 j' + l % 8, its 8 channels 16 warp + 8 h' ... contiguous
                const unsigned sb = (unsigned)__cvta_generic_to_shared(hst);
                const int mi = lane >> 3;
                static_assert(NP % 16 == 0, "pairs of pixel rows");
#pragma unroll
                for (int j = 0; j < NP / 8; j += 2)
                    stmatrix_x4_trans(sb + ((8 * (j + (mi >> 1)) + (lane & 7)) * KILN_HALO_PP_F16_LD + 16 * warp + 8 * (mi & 1)) * 2,
                                      hv[2 * j], hv[2 * j + 1], hv[2 * j + 2], hv[2 * j + 3]);
#else
#pragma unroll
                for (int j = 0; j < NP / 8; j++)
#pragma unroll
                    for (int q = 0; q < 4; q++)
                        reinterpret_cast<unsigned short *>(hst)[(8 * j + 2 * tq + (q & 1)) * KILN_HALO_PP_F16_LD + warp * 16 + g + 8 * (q >> 1)] =
                            (unsigned short)(hv[2 * j + (q >> 1)] >> (16 * (q & 1)));
#endif
            }
        } else if (live) {
#pragma unroll
            for (int j = 0; j < NP / 8; j++)
#pragma unroll
                for (int q = 0; q < 4; q++) cs[(8 * j + 2 * tq + (q & 1)) * LD + warp * 16 + g + 8 * (q >> 1)] = acc[4 * j + q];
        }
        halo_pp_bar(wg); // staged; and this warpgroup is done with this halo buffer (refilled next turn)
        if (live) {
            const int n = t / (TP * TQ), y0 = (t % (TP * TQ)) / TQ * TY, x0 = t % TQ * 8;
            auto rows = [=](int r) {
                const int oy = y0 + r / 8, ox = x0 + r % 8;
                return oy < P && ox < Q ? (n * P + oy) * Q + ox : -1;
            };
            if constexpr (F16S) { // 16-byte copies: 8 threads a pixel's 128 bytes
#pragma unroll 4
                for (int i = wt; i < NP * 8; i += 128) {
                    const int m = rows(i >> 3);
                    if (m >= 0)
                        *reinterpret_cast<conv_nhwc_v8h *>(y + (i64)m * 64 + (i & 7) * 8) =
                            *reinterpret_cast<const conv_nhwc_v8h *>(hst + (i >> 3) * KILN_HALO_PP_F16_LD + (i & 7) * 8);
                }
            } else {
                conv_nhwc_epi_rows_at<64, NP, 128, 64, E>(cs, rows, 0, bias, res, y, wt);
            }
        }
    }
#ifdef KILN_HAVE_WGMMA
    if (it > 0 && wg == 0) { // the last warpgroup's last arrival
        if constexpr (WGS == 2) asm volatile("bar.sync 3, 256;\n" ::: "memory");
        else asm volatile("bar.sync %0, 256;\n" ::"n"(WGS + 1) : "memory");
    }
#endif
    cp_async_wait<0>();
}
} // namespace kiln
