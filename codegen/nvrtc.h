/*
 * nvrtc.h — compile CUDA C to cubins (one per GPU architecture) and PTX with NVRTC.
 *
 * No GPU or driver is needed: NVRTC is a library of the CUDA toolkit (linked dynamically,
 * libnvrtc.so.13). kiln compiles each fused group's generated source once per requested
 * architecture to a cubin ("sm_90"), plus PTX of the newest portable architecture
 * ("compute_90"), which a newer GPU's driver can JIT-compile when no cubin matches.
 *
 * How to use
 * ----------
 *     const char *archs[] = {"sm_80", "sm_90"};
 *     kiln_nvrtc_request rq = {.name = "group_3", .source = src,
 *                              .headers = kiln_kernel_headers, .n_headers = kiln_kernel_header_count,
 *                              .archs = archs, .n_archs = 2, .ptx = true};
 *     kiln_nvrtc_output out;
 *     if (kiln_nvrtc_compile(&rq, &out) != KILN_OK) puts(kiln_last_error()); // names rq.name
 *     ... out.images[i].arch / .is_ptx / .data / .size ...
 *     kiln_nvrtc_output_free(&out);
 *
 * Kernels should be `extern "C" __global__` so that their symbol is their name; for template
 * instantiations pass `name_exprs` and read the mangled names from out.lowered_names.
 *
 * Architectures: "sm_XX" or "sm_XXa" (e.g. sm_80, sm_86, sm_89, sm_90, sm_90a). Code built for
 * sm_90a (wgmma, TMA) runs only on sm_90 GPUs, and its PTX cannot be JIT-compiled for other
 * GPUs, so the PTX is made for the newest requested architecture without the "a" suffix.
 *
 * Headers: every `#include "NAME"` of the source (and of the headers) is served from
 * `headers` by name first; <cuda_fp16.h> and other toolkit headers come from the CUDA
 * include directory ($KILN_CUDA_INCLUDE, else the one found at build time, else
 * /usr/local/cuda/include).
 *
 * Thread safety: kiln_nvrtc_compile may run on several threads at once (NVRTC programs are
 * independent). Architectures of one request compile one after the other.
 */
#ifndef KILN_NVRTC_H
#define KILN_NVRTC_H

#include "kiln.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A named in-memory header: `source` is NUL-terminated. */
typedef struct kiln_nvrtc_header {
    const char *name;
    const char *source;
} kiln_nvrtc_header;

typedef struct kiln_nvrtc_request {
    const char *name;        /* what errors call it, and the program's file name: NAME.cu */
    const char *source;      /* CUDA C++ (NUL-terminated) */
    const kiln_nvrtc_header *headers;
    int n_headers;
    const char *const *archs; /* "sm_80", "sm_90a", ... */
    int n_archs;
    bool ptx;                 /* also emit PTX for the newest portable arch */
    const char *const *options; /* extra NVRTC options (e.g. "-lineinfo"), may be NULL */
    int n_options;
    const char *const *name_exprs; /* template kernels to look up, may be NULL */
    int n_name_exprs;
} kiln_nvrtc_request;

/* One compiled image: a cubin (ELF) for arch "sm_90", or NUL-terminated PTX for "compute_90"
 * (size then counts the terminating NUL, as cuModuleLoadData wants it). */
typedef struct kiln_nvrtc_image {
    char arch[16];
    bool is_ptx;
    uint8_t *data;
    size_t size;
} kiln_nvrtc_image;

typedef struct kiln_nvrtc_output {
    kiln_nvrtc_image *images; /* n_archs cubins in request order, then the PTX if asked */
    int n_images;
    char **lowered_names;     /* one per name_expr (mangled kernel symbols) */
    int n_lowered_names;
    char *log;                /* the last compilation's log (warnings), may be NULL */
} kiln_nvrtc_output;

/* Compile. On failure the message names the request, the arch and the first lines of NVRTC's
 * log; *out then holds no images but keeps the whole log in out->log. Always call
 * kiln_nvrtc_output_free(out) afterwards. */
kiln_status kiln_nvrtc_compile(const kiln_nvrtc_request *rq, kiln_nvrtc_output *out);
void kiln_nvrtc_output_free(kiln_nvrtc_output *out);

/* NVRTC's version (13.0 -> 13, 0); fails when kiln was built without CUDA. */
kiln_status kiln_nvrtc_version(int *major, int *minor);

/* Parse "sm_90" / "sm_90a" / "compute_90": the number (90) and whether it has the 'a'
 * suffix. Returns KILN_ERR_INVALID_ARG for anything else. Works without CUDA. */
kiln_status kiln_nvrtc_parse_arch(const char *arch, int *number, bool *arch_specific);

/* The embedded kernels/ *.cuh templates (generated at build time), for rq.headers. */
extern const kiln_nvrtc_header kiln_kernel_headers[];
extern const int kiln_kernel_header_count;

#endif /* KILN_NVRTC_H */
