/*
 * cuda_driver.h — the CUDA driver API, loaded with dlopen at first use.
 *
 * kiln never links against libcuda: a binary linked with the toolkit's stub does not even
 * start on a machine without a driver, and `kiln build` must run on such machines. So the
 * driver calls kiln needs are resolved at run time into a table of function pointers.
 *
 * How to use
 * ----------
 *     const kiln_cuda_driver *cu;
 *     if (kiln_cuda_driver_get(&cu) != KILN_OK) {        // loads + cuInit once per process
 *         fprintf(stderr, "%s\n", kiln_last_error());     // "no CUDA driver on this machine ..."
 *         ...
 *     }
 *     kiln_cuda_device dev;
 *     KILN_CU_TRY(cu, cuMemAlloc, cu->mem_alloc(&ptr, n));  // returns a kiln_status on failure
 *
 * Every call goes through the table (cu->mem_alloc, cu->launch_kernel, ...); check every
 * result with kiln_cuda_check() or KILN_CU_TRY(), which put the call's name, the error's name
 * and its description into kiln_last_error().
 *
 * Symbol versions: the driver exports several ABIs of some calls (cuMemAlloc and
 * cuMemAlloc_v2, ...). The table holds the ABIs that cuda.h maps the plain names to for
 * CUDA 12.0 (KILN_CUDA_ABI_VERSION), which are the ones declared below. With a driver that has
 * cuGetProcAddress_v2 (CUDA >= 12.0) each entry is asked for by its plain name at that
 * version (legacy default-stream variants: kiln passes explicit streams), as the CUDA runtime
 * does; otherwise (or if that fails) the versioned export name is looked up with dlsym. Drivers
 * older than CUDA 12.0 are refused.
 *
 * Thread safety: kiln_cuda_driver_get() is safe to call from any thread (pthread_once); the
 * table is immutable afterwards. The driver calls themselves follow CUDA's rules.
 *
 * Built without CUDA (KILN_CUDA=OFF) only kiln_cuda_available() and kiln_cuda_driver_get()
 * exist; the latter then fails with KILN_ERR_UNSUPPORTED.
 */
#ifndef KILN_CUDA_DRIVER_H
#define KILN_CUDA_DRIVER_H

#include "kiln.h"

#include <stdbool.h>

/* True when this kiln was built with the GPU path (KILN_CUDA=ON). Says nothing about
 * whether this machine has a driver or a GPU: that is what kiln_cuda_driver_get() finds out. */
bool kiln_cuda_available(void);

#ifdef KILN_HAVE_CUDA
#include <cuda.h>

/* The CUDA version whose ABIs the table below declares (see the header comment). */
#define KILN_CUDA_ABI_VERSION 12000

typedef struct kiln_cuda_driver {
    void *lib;          /* dlopen handle */
    char path[256];     /* what was opened */
    int driver_version; /* cuDriverGetVersion: 13000 = CUDA 13.0 */
    bool via_proc_address; /* entries came from cuGetProcAddress (else dlsym) */

    /* initialisation, errors, versions */
    CUresult (*init)(unsigned int flags);
    CUresult (*driver_get_version)(int *version);
    CUresult (*get_error_name)(CUresult e, const char **s);
    CUresult (*get_error_string)(CUresult e, const char **s);
    /* devices and contexts (kiln uses each device's primary context, as the runtime API does,
     * so that callers' streams and memory from cudart interoperate) */
    CUresult (*device_get_count)(int *n);
    CUresult (*device_get)(CUdevice *d, int ordinal);
    CUresult (*device_get_attribute)(int *v, CUdevice_attribute a, CUdevice d);
    CUresult (*device_get_name)(char *name, int len, CUdevice d);
    CUresult (*device_total_mem)(size_t *bytes, CUdevice d);                     /* _v2 */
    CUresult (*device_primary_ctx_retain)(CUcontext *ctx, CUdevice d);
    CUresult (*device_primary_ctx_release)(CUdevice d);                          /* _v2 */
    CUresult (*ctx_set_current)(CUcontext ctx);
    CUresult (*ctx_get_current)(CUcontext *ctx);
    CUresult (*ctx_synchronize)(void);
    /* modules and launches */
    CUresult (*module_load_data)(CUmodule *m, const void *image);
    CUresult (*module_load_data_ex)(CUmodule *m, const void *image, unsigned int n_opts,
                                    CUjit_option *opts, void **values);
    CUresult (*module_unload)(CUmodule m);
    CUresult (*module_get_function)(CUfunction *f, CUmodule m, const char *name);
    CUresult (*func_set_attribute)(CUfunction f, CUfunction_attribute a, int v);
    CUresult (*func_get_attribute)(int *v, CUfunction_attribute a, CUfunction f);
    CUresult (*occupancy_max_active_blocks)(int *blocks, CUfunction f, int block_size, size_t dynamic_smem);
    CUresult (*launch_kernel)(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                              unsigned by, unsigned bz, unsigned shared_bytes, CUstream s,
                              void **params, void **extra);
    /* a launch with attributes (programmatic dependent launch: runtime.c) */
    CUresult (*launch_kernel_ex)(const CUlaunchConfig *config, CUfunction f, void **params, void **extra);
    /* memory */
    CUresult (*mem_get_info)(size_t *free_bytes, size_t *total_bytes);           /* _v2 */
    CUresult (*mem_alloc)(CUdeviceptr *p, size_t bytes);                         /* _v2 */
    CUresult (*mem_free)(CUdeviceptr p);                                         /* _v2 */
    CUresult (*memcpy_htod)(CUdeviceptr dst, const void *src, size_t bytes);     /* _v2 */
    CUresult (*memcpy_dtoh)(void *dst, CUdeviceptr src, size_t bytes);           /* _v2 */
    CUresult (*memcpy_htod_async)(CUdeviceptr dst, const void *src, size_t bytes, CUstream s);
    CUresult (*memcpy_dtoh_async)(void *dst, CUdeviceptr src, size_t bytes, CUstream s);
    CUresult (*memset_d8_async)(CUdeviceptr dst, unsigned char v, size_t n, CUstream s);
    /* TMA tensor maps (CUDA >= 12.0; host-side encoders, KILN_ARG_TMAP launch arguments) */
    CUresult (*tensor_map_encode_tiled)(CUtensorMap *m, CUtensorMapDataType dt, cuuint32_t rank, void *addr,
                                        const cuuint64_t *dims, const cuuint64_t *strides, const cuuint32_t *box,
                                        const cuuint32_t *estrides, CUtensorMapInterleave il,
                                        CUtensorMapSwizzle sw, CUtensorMapL2promotion l2,
                                        CUtensorMapFloatOOBfill oob);
    CUresult (*tensor_map_encode_im2col)(CUtensorMap *m, CUtensorMapDataType dt, cuuint32_t rank, void *addr,
                                         const cuuint64_t *dims, const cuuint64_t *strides, const int *lower,
                                         const int *upper, cuuint32_t channels, cuuint32_t pixels,
                                         const cuuint32_t *estrides, CUtensorMapInterleave il,
                                         CUtensorMapSwizzle sw, CUtensorMapL2promotion l2,
                                         CUtensorMapFloatOOBfill oob);
    /* streams and events */
    CUresult (*stream_create)(CUstream *s, unsigned int flags);
    CUresult (*stream_destroy)(CUstream s);                                      /* _v2 */
    CUresult (*stream_synchronize)(CUstream s);
    CUresult (*stream_wait_event)(CUstream s, CUevent e, unsigned int flags);
    CUresult (*event_create)(CUevent *e, unsigned int flags);
    CUresult (*event_destroy)(CUevent e);                                        /* _v2 */
    CUresult (*event_record)(CUevent e, CUstream s);
    CUresult (*event_synchronize)(CUevent e);
    CUresult (*event_elapsed_time)(float *ms, CUevent start, CUevent end);
    /* CUDA graphs by stream capture */
    CUresult (*stream_begin_capture)(CUstream s, CUstreamCaptureMode mode);     /* _v2 */
    CUresult (*stream_end_capture)(CUstream s, CUgraph *g);
    CUresult (*graph_instantiate)(CUgraphExec *exec, CUgraph g,
                                  unsigned long long flags); /* cuGraphInstantiateWithFlags */
    CUresult (*graph_launch)(CUgraphExec exec, CUstream s);
    CUresult (*graph_exec_destroy)(CUgraphExec exec);
    CUresult (*graph_destroy)(CUgraph g);
} kiln_cuda_driver;

/* The process-wide driver: loads it (path from $KILN_CUDA_DRIVER, default "libcuda.so.1")
 * and calls cuInit(0) on first use; later calls return the same table or the same error.
 * Errors: KILN_ERR_UNSUPPORTED with "no CUDA driver on this machine ..." when libcuda is
 * missing or is the toolkit's stub, "... no CUDA device ..." when the driver sees no GPU. */
kiln_status kiln_cuda_driver_get(const kiln_cuda_driver **out);

/* Load a driver library from `path` into *drv and resolve the table. With `init`, also check
 * the driver's version and call cuInit(0); without, nothing is called (the table of the
 * toolkit's stub library resolves, but every call answers CUDA_ERROR_STUB_LIBRARY). Not
 * cached: for tests and tools. On failure *drv is left unloaded. */
kiln_status kiln_cuda_driver_load(const char *path, bool init, kiln_cuda_driver *drv);
void kiln_cuda_driver_unload(kiln_cuda_driver *drv);

/* KILN_OK for CUDA_SUCCESS; otherwise sets "CALL failed: CUDA_ERROR_X (n): description" and
 * returns KILN_ERR_OOM for out-of-memory, KILN_ERR_UNSUPPORTED for no-device / no-binary,
 * else KILN_ERR_INTERNAL. */
kiln_status kiln_cuda_check(const kiln_cuda_driver *drv, CUresult r, const char *call);

/* Evaluate a driver call and return its kiln_status from the enclosing function on failure. */
#define KILN_CU_TRY(drv, name, expr)                                                           \
    do {                                                                                       \
        kiln_status kiln_cu_st_ = kiln_cuda_check((drv), (expr), #name);                       \
        if (kiln_cu_st_ != KILN_OK) return kiln_cu_st_;                                        \
    } while (0)

/* One GPU with its primary context made current on the calling thread. */
typedef struct kiln_cuda_device {
    const kiln_cuda_driver *drv;
    int ordinal;
    CUdevice dev;
    CUcontext ctx;
    char name[128];
    int cc_major, cc_minor; /* compute capability: 9.0 = Hopper */
    int sm_count;
    size_t total_mem;
} kiln_cuda_device;

/* Retain device `ordinal`'s primary context and make it current on this thread. */
kiln_status kiln_cuda_device_open(int ordinal, kiln_cuda_device *out);
/* Release the primary context (NULL or never-opened is fine). */
void kiln_cuda_device_close(kiln_cuda_device *d);

/* Load a cubin or a NUL-terminated PTX image into the current context. On failure the JIT's
 * error log (PTX that cannot be compiled, a cubin for another GPU) is part of the message. */
kiln_status kiln_cuda_module_load(const kiln_cuda_driver *drv, const void *image, CUmodule *out);

#endif /* KILN_HAVE_CUDA */
#endif /* KILN_CUDA_DRIVER_H */
