// wgmma_rate: the tensor-core rate one SM reaches with chains of m64nNk16 wgmmas (fp16 in, fp32
// accumulate) as a function of N, of where A comes from (shared memory "ss" or registers "rs") and of
// how many warpgroups issue at once; every SM runs one block. It tells how far a kernel built on a
// given wgmma shape can get (docs/gpu.md, eleventh session: the stage-1 3x3's m64n64k16 chains).
//   build: nvcc -O3 -std=c++17 -arch=sm_90a -I kernels -o wgmma_rate bench/micro/wgmma_rate.cu
//   run:   ./wgmma_rate   (prints one line a variant: TFLOP/s over all SMs, and clocks a wgmma per SM)
// The operands are zeros in 128-byte swizzled layouts (the values do not change the rate); each
// warpgroup's chain is 36 wgmmas (a 3x3 over 64 channels) between a fence and a wait, as the halo
// conv issues them.
#include <cstdio>
#include <cuda_runtime.h>
#include "conv_wgmma.cuh"
using namespace kiln;

template <int N, bool RS>
__global__ void __launch_bounds__(N == 256 || RS ? 256 : 512, 1) chain(float *out, int iters, long long *clk) {
#ifdef KILN_HAVE_WGMMA
    extern __shared__ __align__(1024) unsigned char sm[];
    unsigned char *s = sm + ((1024 - ((unsigned)__cvta_generic_to_shared(sm) & 1023)) & 1023);
    for (int i = threadIdx.x; i < (64 + 256) * 128 * 2 / 16; i += blockDim.x) reinterpret_cast<uint4 *>(s)[i] = uint4{0, 0, 0, 0};
    __syncthreads();
    unsigned char *a = s, *b = s + 64 * 128 * 2; // A: 64 rows x 2 k64 blocks, B: N rows x 2 k64 blocks
    float acc[N / 2];
    for (int i = 0; i < N / 2; i++) acc[i] = 0.0f;
    unsigned wa[RS ? 36 : 1][4]; // (RS: the registers of every k step, as the hr tiles hold their weights)
    for (int k = 0; k < (RS ? 36 : 1); k++)
        for (int j = 0; j < 4; j++) wa[k][j] = (unsigned)iters >> 31; // zero, unknown to the compiler
    const long long t0 = clock64();
    for (int it = 0; it < iters; it++) {
        wgmma_pin<N / 2>(acc);
        wgmma_fence();
#pragma unroll
        for (int k = 0; k < 36; k++) {
            const u64 db = wgmma_desc(b + (k & 1) * N * 128 + 32 * ((k >> 1) & 3), 16, 1024) | ((u64)1 << 62);
            if constexpr (RS) wgmma_rs_f16<N>::run(acc, wa[RS ? k : 0], db);
            else wgmma_f16<N>::run(acc, wgmma_desc(a + (k & 1) * 8192 + 32 * ((k >> 1) & 3), 16, 1024) | ((u64)1 << 62), db);
        }
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_pin<N / 2>(acc);
    }
    const long long t1 = clock64();
    float sum = 0.0f;
    for (int i = 0; i < N / 2; i++) sum += acc[i];
    if (sum != 0.0f) out[blockIdx.x] = sum;
    if (threadIdx.x == 0) clk[blockIdx.x] = t1 - t0;
#else
    (void)out, (void)iters, (void)clk;
#endif
}

template <int N, bool RS> static void run(int wgs, int sms, float *out, long long *clk) {
    const int iters = 400, smem = (64 + 256) * 128 * 2 + 1024;
    auto k = chain<N, RS>;
    cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    k<<<sms, 128 * wgs, smem>>>(out, 10, clk);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    cudaEventRecord(e0);
    k<<<sms, 128 * wgs, smem>>>(out, iters, clk);
    cudaEventRecord(e1);
    cudaError_t err = cudaEventSynchronize(e1);
    if (err != cudaSuccess) { printf("N=%d %s wg=%d: %s\n", N, RS ? "rs" : "ss", wgs, cudaGetErrorString(err)); return; }
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    long long c = 0;
    cudaMemcpy(&c, clk, sizeof c, cudaMemcpyDeviceToHost);
    const double flop = 2.0 * 64 * N * 16 * 36.0 * iters * wgs * sms;
    printf("m64n%dk16 %s, %d warpgroup%s a block: %6.1f TFLOP/s, %5.1f clocks a wgmma on an SM (%.3f ms)\n", N,
           RS ? "rs" : "ss", wgs, wgs > 1 ? "s" : "", flop / (ms * 1e-3) / 1e12, (double)c / (36.0 * iters * wgs), ms);
}

int main() {
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    float *out;
    long long *clk;
    cudaMalloc(&out, sms * sizeof(float));
    cudaMalloc(&clk, sms * sizeof(long long));
    for (int w = 1; w <= 4; w++) run<64, false>(w, sms, out, clk);
    for (int w = 1; w <= 2; w++) run<64, true>(w, sms, out, clk);
    for (int w = 1; w <= 2; w++) run<112, true>(w, sms, out, clk);
    for (int w = 1; w <= 3; w++) run<112, false>(w, sms, out, clk);
    for (int w = 1; w <= 3; w++) run<128, false>(w, sms, out, clk);
    for (int w = 1; w <= 2; w++) run<256, false>(w, sms, out, clk);
    return 0;
}
