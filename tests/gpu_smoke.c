/* gpu_smoke.c — the GPU path end to end on a real GPU: NVRTC compiles a fused elementwise
 * group from the embedded templates, the cubins and PTX travel through a .kiln bundle file,
 * and the driver (dlopen'ed) loads the image for this GPU, runs both kernels on seeded random
 * data, replays them from a captured CUDA graph, and JIT-runs the PTX; every output is compared
 * with a CPU computation. Without a driver or a GPU it prints a SKIP line and exits 77. */
#include "codegen/nvrtc.h"
#include "ir.h"
#include "runtime/bundle.h"
#include "runtime/cuda_driver.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SKIP 77

#ifndef KILN_HAVE_CUDA
int main(void) {
    printf("SKIP: gpu_smoke: kiln was built without CUDA (KILN_CUDA=OFF)\n");
    return SKIP;
}
#else

static const char *source =
    "#include \"elementwise.cuh\"\n"
    "struct smoke_expr {  // relu(x0 * x1 + x2): x1 fp16, x2 per-channel\n"
    "    template <int NIN>\n"
    "    static __device__ __forceinline__ float eval(const void *const (&in)[NIN], const kiln::i64 (&off)[NIN]) {\n"
    "        float x0 = kiln::load_f32<float>(in[0], off[0]);\n"
    "        float x1 = kiln::load_f32<__half>(in[1], off[1]);\n"
    "        float x2 = kiln::load_f32<float>(in[2], off[2]);\n"
    "        return fmaxf(x0 * x1 + x2, 0.0f);\n"
    "    }\n"
    "};\n"
    "extern \"C\" __global__ void smoke_bcast(kiln::ew_params<3, 4> p) {\n"
    "    kiln::elementwise<smoke_expr, float, 3, 4, false>(p);\n"
    "}\n"
    "extern \"C\" __global__ void smoke_contig_h(kiln::ew_params<3, 4> p) {\n"
    "    kiln::elementwise<smoke_expr, __half, 3, 4, true>(p);\n"
    "}\n";

/* The host twin of kiln::ew_params<3, 4>: same members, same order, same sizes. */
typedef struct ew_params_3_4 {
    CUdeviceptr in[3];
    CUdeviceptr out;
    int64_t numel;
    int64_t dims[4];
    int64_t strides[3][4];
} ew_params_3_4;

enum { N = 2, C = 3, H = 64, W = 65, NUMEL = N * C * H * W };

static int fail(const char *what) {
    fprintf(stderr, "gpu_smoke: FAIL: %s: %s\n", what, kiln_last_error());
    return 1;
}

#define TRY(what, expr)                                                                        \
    do {                                                                                       \
        if ((expr) != KILN_OK) return fail(what);                                              \
    } while (0)
#define CU(name, expr) TRY(#name, kiln_cuda_check(cu, (expr), #name))

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* xorshift64*, uniform in [-1, 1) */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((rng * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1 << 23) - 1.0f;
}

/* Compare out (fp32 or fp16 bits) against ref; returns the number of mismatches. */
static int compare(const char *what, const void *out, bool half, const float *ref) {
    int bad = 0;
    double max_err = 0;
    for (int i = 0; i < NUMEL; i++) {
        float got = half ? kiln_f16_to_f32(((const uint16_t *)out)[i]) : ((const float *)out)[i];
        float want = half ? kiln_f16_to_f32(kiln_f32_to_f16(ref[i])) : ref[i];
        /* fp32: the GPU may fuse the multiply-add (one rounding fewer, up to an ulp of the
         * product, |x0 * x1| < 4); fp16: one ulp, or a flip of a rounding tie */
        double tol = half ? fabs(want) * 1e-3 + 4e-6 : fabs(want) * 1e-6 + 4e-6;
        double err = fabs((double)got - want);
        if (err > max_err) max_err = err;
        if (!(err <= tol) && bad++ < 5) fprintf(stderr, "  %s[%d]: got %.9g want %.9g\n", what, i, got, want);
    }
    printf("gpu_smoke: %-28s max abs error %.3g, %d mismatches\n", what, max_err, bad);
    return bad;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    kiln_cuda_device dev;
    if (kiln_cuda_device_open(0, &dev) != KILN_OK) {
        printf("SKIP: gpu_smoke: %s\n", kiln_last_error());
        return SKIP;
    }
    const kiln_cuda_driver *cu = dev.drv;
    int cc = dev.cc_major * 10 + dev.cc_minor;
    printf("gpu_smoke: %s (sm_%d, %d SMs, %.1f GiB), driver CUDA %d.%d via %s\n", dev.name, cc, dev.sm_count,
           (double)dev.total_mem / (1 << 30), cu->driver_version / 1000, cu->driver_version % 1000 / 10,
           cu->via_proc_address ? "cuGetProcAddress" : "dlsym");

    /* 1. compile for the usual targets plus this GPU's own arch */
    char own[16];
    snprintf(own, sizeof own, "sm_%d", cc);
    const char *archs[] = {"sm_80", "sm_90", own};
    int n_archs = (cc == 80 || cc == 90) ? 2 : 3;
    kiln_nvrtc_request rq = {.name = "smoke", .source = source, .headers = kiln_kernel_headers,
                             .n_headers = kiln_kernel_header_count, .archs = archs, .n_archs = n_archs, .ptx = true};
    kiln_nvrtc_output co;
    TRY("NVRTC", kiln_nvrtc_compile(&rq, &co));

    /* 2. through a bundle file */
    kiln_bundle *b = kiln_bundle_new();
    for (int i = 0; i < co.n_images; i++)
        TRY("bundle image", kiln_bundle_add_image(b, co.images[i].is_ptx ? KILN_IMAGE_PTX : KILN_IMAGE_CUBIN,
                                                  co.images[i].arch, 0, co.images[i].data, co.images[i].size));
    TRY("bundle kernel", kiln_bundle_add_kernel(b, "smoke_bcast", 0, "smoke", NULL));
    TRY("bundle kernel", kiln_bundle_add_kernel(b, "smoke_contig_h", 0, "smoke", NULL));
    kiln_nvrtc_output_free(&co);
    char path[] = "/tmp/kiln_gpu_smoke_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return fail("mkstemp");
    close(fd);
    TRY("bundle write", kiln_bundle_write(b, path));
    kiln_bundle_free(b);
    TRY("bundle read", kiln_bundle_read(path, &b));
    unlink(path);
    bool jit;
    const kiln_bundle_image *im = kiln_bundle_find_image(b, 0, cc, false, &jit);
    if (!im) return fail("no image for this GPU");
    printf("gpu_smoke: loading %s %s\n", im->arch, jit ? "(PTX, JIT)" : "(cubin)");
    CUmodule mod;
    TRY("cubin load", kiln_cuda_module_load(cu, im->data, &mod));
    CUfunction k_bcast, k_contig;
    CU(cuModuleGetFunction, cu->module_get_function(&k_bcast, mod, b->kernels[0].function));
    CU(cuModuleGetFunction, cu->module_get_function(&k_contig, mod, b->kernels[1].function));

    /* 3. seeded data and the CPU reference */
    float *x0 = malloc(NUMEL * sizeof *x0), *x2 = malloc(NUMEL * sizeof *x2), bias[C];
    uint16_t *x1 = malloc(NUMEL * sizeof *x1);
    float *ref_b = malloc(NUMEL * sizeof *ref_b), *ref_c = malloc(NUMEL * sizeof *ref_c);
    float *out_f = malloc(NUMEL * sizeof *out_f);
    uint16_t *out_h = malloc(NUMEL * sizeof *out_h);
    if (!x0 || !x1 || !x2 || !ref_b || !ref_c || !out_f || !out_h) return fail("host memory");
    for (int c = 0; c < C; c++) bias[c] = frand() * 0.5f;
    for (int i = 0; i < NUMEL; i++) {
        x0[i] = frand() * 4.0f;
        x1[i] = kiln_f32_to_f16(frand());
        x2[i] = frand();
        int c = i / (H * W) % C;
        float h1 = kiln_f16_to_f32(x1[i]);
        ref_b[i] = fmaxf(x0[i] * h1 + bias[c], 0.0f);
        ref_c[i] = fmaxf(x0[i] * h1 + x2[i], 0.0f);
    }

    CUstream stream;
    CU(cuStreamCreate, cu->stream_create(&stream, CU_STREAM_NON_BLOCKING));
    CUdeviceptr d_x0, d_x1, d_x2, d_bias, d_out_f, d_out_h;
    CU(cuMemAlloc, cu->mem_alloc(&d_x0, NUMEL * sizeof *x0));
    CU(cuMemAlloc, cu->mem_alloc(&d_x1, NUMEL * sizeof *x1));
    CU(cuMemAlloc, cu->mem_alloc(&d_x2, NUMEL * sizeof *x2));
    CU(cuMemAlloc, cu->mem_alloc(&d_bias, sizeof bias));
    CU(cuMemAlloc, cu->mem_alloc(&d_out_f, NUMEL * sizeof *out_f));
    CU(cuMemAlloc, cu->mem_alloc(&d_out_h, NUMEL * sizeof *out_h));
    CU(cuMemcpyHtoD, cu->memcpy_htod(d_x0, x0, NUMEL * sizeof *x0));
    CU(cuMemcpyHtoD, cu->memcpy_htod(d_x1, x1, NUMEL * sizeof *x1));
    CU(cuMemcpyHtoDAsync, cu->memcpy_htod_async(d_x2, x2, NUMEL * sizeof *x2, stream));
    CU(cuMemcpyHtoDAsync, cu->memcpy_htod_async(d_bias, bias, sizeof bias, stream));
    CU(cuStreamSynchronize, cu->stream_synchronize(stream));

    /* broadcast: bias [1, C, 1, 1] seen through strides {0, 1, 0, 0} */
    ew_params_3_4 pb = {.in = {d_x0, d_x1, d_bias}, .out = d_out_f, .numel = NUMEL, .dims = {N, C, H, W},
                        .strides = {{C * H * W, H * W, W, 1}, {C * H * W, H * W, W, 1}, {0, 1, 0, 0}}};
    ew_params_3_4 pc = {.in = {d_x0, d_x1, d_x2}, .out = d_out_h, .numel = NUMEL, .dims = {N, C, H, W}};
    void *args_b[] = {&pb}, *args_c[] = {&pc};
    /* a grid smaller than the data, so that the grid-stride loop is exercised */
    unsigned grid = 16, block = 256;
    int bad = 0;
    for (int round = 0; round < 2; round++) {
        CU(cuMemsetD8Async, cu->memset_d8_async(d_out_f, 0xff, NUMEL * sizeof *out_f, stream));
        CU(cuMemsetD8Async, cu->memset_d8_async(d_out_h, 0xff, NUMEL * sizeof *out_h, stream));
        if (round == 0) {
            CU(cuLaunchKernel, cu->launch_kernel(k_bcast, grid, 1, 1, block, 1, 1, 0, stream, args_b, NULL));
            CU(cuLaunchKernel, cu->launch_kernel(k_contig, grid, 1, 1, block, 1, 1, 0, stream, args_c, NULL));
        } else { /* the same two launches captured into a CUDA graph and replayed */
            CUgraph graph;
            CUgraphExec exec;
            CU(cuStreamBeginCapture, cu->stream_begin_capture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
            CU(cuLaunchKernel, cu->launch_kernel(k_bcast, grid, 1, 1, block, 1, 1, 0, stream, args_b, NULL));
            CU(cuLaunchKernel, cu->launch_kernel(k_contig, grid, 1, 1, block, 1, 1, 0, stream, args_c, NULL));
            CU(cuStreamEndCapture, cu->stream_end_capture(stream, &graph));
            CU(cuGraphInstantiateWithFlags, cu->graph_instantiate(&exec, graph, 0));
            CUevent e0, e1;
            CU(cuEventCreate, cu->event_create(&e0, CU_EVENT_DEFAULT));
            CU(cuEventCreate, cu->event_create(&e1, CU_EVENT_DEFAULT));
            CU(cuEventRecord, cu->event_record(e0, stream));
            for (int rep = 0; rep < 10; rep++) CU(cuGraphLaunch, cu->graph_launch(exec, stream));
            CU(cuEventRecord, cu->event_record(e1, stream));
            CU(cuEventSynchronize, cu->event_synchronize(e1));
            float ms = 0;
            CU(cuEventElapsedTime, cu->event_elapsed_time(&ms, e0, e1));
            printf("gpu_smoke: graph replay: %.1f us per replay of 2 kernels\n", ms * 100.0f);
            CU(cuEventDestroy, cu->event_destroy(e0));
            CU(cuEventDestroy, cu->event_destroy(e1));
            CU(cuGraphExecDestroy, cu->graph_exec_destroy(exec));
            CU(cuGraphDestroy, cu->graph_destroy(graph));
        }
        CU(cuMemcpyDtoHAsync, cu->memcpy_dtoh_async(out_f, d_out_f, NUMEL * sizeof *out_f, stream));
        CU(cuMemcpyDtoHAsync, cu->memcpy_dtoh_async(out_h, d_out_h, NUMEL * sizeof *out_h, stream));
        CU(cuStreamSynchronize, cu->stream_synchronize(stream));
        bad += compare(round ? "broadcast fp32 (graph)" : "broadcast fp32", out_f, false, ref_b);
        bad += compare(round ? "contiguous fp16 (graph)" : "contiguous fp16", out_h, true, ref_c);
    }

    /* 4. the PTX through the driver's JIT, as on a GPU newer than every cubin */
    for (int i = 0; i < b->n_images; i++) {
        if (b->images[i].kind != KILN_IMAGE_PTX) continue;
        CUmodule pm;
        CUfunction pk;
        TRY("PTX load (JIT)", kiln_cuda_module_load(cu, b->images[i].data, &pm));
        CU(cuModuleGetFunction, cu->module_get_function(&pk, pm, "smoke_bcast"));
        CU(cuMemsetD8Async, cu->memset_d8_async(d_out_f, 0xff, NUMEL * sizeof *out_f, stream));
        CU(cuLaunchKernel, cu->launch_kernel(pk, grid, 1, 1, block, 1, 1, 0, stream, args_b, NULL));
        CU(cuMemcpyDtoHAsync, cu->memcpy_dtoh_async(out_f, d_out_f, NUMEL * sizeof *out_f, stream));
        CU(cuStreamSynchronize, cu->stream_synchronize(stream));
        bad += compare("broadcast fp32 (PTX JIT)", out_f, false, ref_b);
        CU(cuModuleUnload, cu->module_unload(pm));
    }
    /* a broken image is refused with the JIT's message, not a crash */
    CUmodule junk;
    if (kiln_cuda_module_load(cu, ".version 99.0\n.target sm_90\nnot ptx\n", &junk) == KILN_OK) {
        fprintf(stderr, "gpu_smoke: FAIL: junk PTX loaded\n");
        bad++;
    } else {
        printf("gpu_smoke: junk PTX refused: %.160s\n", kiln_last_error());
    }

    CUdeviceptr bufs[] = {d_x0, d_x1, d_x2, d_bias, d_out_f, d_out_h};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) CU(cuMemFree, cu->mem_free(bufs[i]));
    CU(cuStreamDestroy, cu->stream_destroy(stream));
    CU(cuModuleUnload, cu->module_unload(mod));
    kiln_cuda_device_close(&dev);
    kiln_bundle_free(b);
    free(x0);
    free(x1);
    free(x2);
    free(ref_b);
    free(ref_c);
    free(out_f);
    free(out_h);
    printf("gpu_smoke: %s\n", bad ? "FAIL" : "PASS");
    return bad ? 1 : 0;
}
#endif
