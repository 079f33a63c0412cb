/* cuda_driver.c — dlopen'ed CUDA driver table, error messages, device and module helpers. */
#include "runtime/cuda_driver.h"

#include "ir.h"

#ifndef KILN_HAVE_CUDA

bool kiln_cuda_available(void) { return false; }

#else

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool kiln_cuda_available(void) { return true; }

/* One table entry: the plain name cuGetProcAddress wants, the export dlsym falls back to
 * (the name cuda.h maps the plain one to at KILN_CUDA_ABI_VERSION), and where it goes. */
typedef struct sym_entry {
    const char *plain;
    const char *exported;
    size_t offset;
} sym_entry;

#define SYM(field, plain, exported) {plain, exported, offsetof(kiln_cuda_driver, field)}
static const sym_entry kiln_cuda_syms[] = {
    SYM(init, "cuInit", "cuInit"),
    SYM(driver_get_version, "cuDriverGetVersion", "cuDriverGetVersion"),
    SYM(get_error_name, "cuGetErrorName", "cuGetErrorName"),
    SYM(get_error_string, "cuGetErrorString", "cuGetErrorString"),
    SYM(device_get_count, "cuDeviceGetCount", "cuDeviceGetCount"),
    SYM(device_get, "cuDeviceGet", "cuDeviceGet"),
    SYM(device_get_attribute, "cuDeviceGetAttribute", "cuDeviceGetAttribute"),
    SYM(device_get_name, "cuDeviceGetName", "cuDeviceGetName"),
    SYM(device_total_mem, "cuDeviceTotalMem", "cuDeviceTotalMem_v2"),
    SYM(device_primary_ctx_retain, "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRetain"),
    SYM(device_primary_ctx_release, "cuDevicePrimaryCtxRelease", "cuDevicePrimaryCtxRelease_v2"),
    SYM(ctx_set_current, "cuCtxSetCurrent", "cuCtxSetCurrent"),
    SYM(ctx_get_current, "cuCtxGetCurrent", "cuCtxGetCurrent"),
    SYM(ctx_synchronize, "cuCtxSynchronize", "cuCtxSynchronize"),
    SYM(module_load_data, "cuModuleLoadData", "cuModuleLoadData"),
    SYM(module_load_data_ex, "cuModuleLoadDataEx", "cuModuleLoadDataEx"),
    SYM(module_unload, "cuModuleUnload", "cuModuleUnload"),
    SYM(module_get_function, "cuModuleGetFunction", "cuModuleGetFunction"),
    SYM(func_set_attribute, "cuFuncSetAttribute", "cuFuncSetAttribute"),
    SYM(func_get_attribute, "cuFuncGetAttribute", "cuFuncGetAttribute"),
    SYM(occupancy_max_active_blocks, "cuOccupancyMaxActiveBlocksPerMultiprocessor",
        "cuOccupancyMaxActiveBlocksPerMultiprocessor"),
    SYM(launch_kernel, "cuLaunchKernel", "cuLaunchKernel"),
    SYM(launch_kernel_ex, "cuLaunchKernelEx", "cuLaunchKernelEx"),
    SYM(mem_get_info, "cuMemGetInfo", "cuMemGetInfo_v2"),
    SYM(mem_alloc, "cuMemAlloc", "cuMemAlloc_v2"),
    SYM(mem_free, "cuMemFree", "cuMemFree_v2"),
    SYM(memcpy_htod, "cuMemcpyHtoD", "cuMemcpyHtoD_v2"),
    SYM(memcpy_dtoh, "cuMemcpyDtoH", "cuMemcpyDtoH_v2"),
    SYM(memcpy_htod_async, "cuMemcpyHtoDAsync", "cuMemcpyHtoDAsync_v2"),
    SYM(memcpy_dtoh_async, "cuMemcpyDtoHAsync", "cuMemcpyDtoHAsync_v2"),
    SYM(memset_d8_async, "cuMemsetD8Async", "cuMemsetD8Async"),
    SYM(tensor_map_encode_tiled, "cuTensorMapEncodeTiled", "cuTensorMapEncodeTiled"),
    SYM(tensor_map_encode_im2col, "cuTensorMapEncodeIm2col", "cuTensorMapEncodeIm2col"),
    SYM(stream_create, "cuStreamCreate", "cuStreamCreate"),
    SYM(stream_destroy, "cuStreamDestroy", "cuStreamDestroy_v2"),
    SYM(stream_synchronize, "cuStreamSynchronize", "cuStreamSynchronize"),
    SYM(stream_wait_event, "cuStreamWaitEvent", "cuStreamWaitEvent"),
    SYM(event_create, "cuEventCreate", "cuEventCreate"),
    SYM(event_destroy, "cuEventDestroy", "cuEventDestroy_v2"),
    SYM(event_record, "cuEventRecord", "cuEventRecord"),
    SYM(event_synchronize, "cuEventSynchronize", "cuEventSynchronize"),
    SYM(event_elapsed_time, "cuEventElapsedTime", "cuEventElapsedTime"),
    SYM(stream_begin_capture, "cuStreamBeginCapture", "cuStreamBeginCapture_v2"),
    SYM(stream_end_capture, "cuStreamEndCapture", "cuStreamEndCapture"),
    SYM(graph_instantiate, "cuGraphInstantiateWithFlags", "cuGraphInstantiateWithFlags"),
    SYM(graph_launch, "cuGraphLaunch", "cuGraphLaunch"),
    SYM(graph_exec_destroy, "cuGraphExecDestroy", "cuGraphExecDestroy"),
    SYM(graph_destroy, "cuGraphDestroy", "cuGraphDestroy"),
};
#undef SYM

typedef CUresult (*get_proc_address_fn)(const char *symbol, void **pfn, int cuda_version,
                                        cuuint64_t flags, CUdriverProcAddressQueryResult *status);

/* The driver's name for a result code, even when the table is incomplete. */
static const char *result_name(const kiln_cuda_driver *drv, CUresult r) {
    const char *s = NULL;
    if (drv && drv->get_error_name && drv->get_error_name(r, &s) == CUDA_SUCCESS && s) return s;
    switch (r) { /* the ones that matter before the table exists */
    case CUDA_ERROR_STUB_LIBRARY: return "CUDA_ERROR_STUB_LIBRARY";
    case CUDA_ERROR_NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH: return "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH";
    default: return "CUDA_ERROR_?";
    }
}

static const char *result_string(const kiln_cuda_driver *drv, CUresult r) {
    const char *s = NULL;
    if (drv && drv->get_error_string && drv->get_error_string(r, &s) == CUDA_SUCCESS && s)
        return s;
    return "no description";
}

kiln_status kiln_cuda_check(const kiln_cuda_driver *drv, CUresult r, const char *call) {
    if (r == CUDA_SUCCESS) return KILN_OK;
    kiln_status st = KILN_ERR_INTERNAL;
    if (r == CUDA_ERROR_OUT_OF_MEMORY) st = KILN_ERR_OOM;
    else if (r == CUDA_ERROR_NO_DEVICE || r == CUDA_ERROR_NO_BINARY_FOR_GPU ||
             r == CUDA_ERROR_UNSUPPORTED_PTX_VERSION || r == CUDA_ERROR_STUB_LIBRARY ||
             r == CUDA_ERROR_SYSTEM_DRIVER_MISMATCH)
        st = KILN_ERR_UNSUPPORTED;
    return kiln_errorf(st, "%s failed: %s (%d): %s", call, result_name(drv, r), (int)r,
                       result_string(drv, r));
}

/* dlsym into a function pointer: ISO C has no cast between object and function pointers, and
 * POSIX guarantees they have the same representation, so copy the bytes. */
static void load_sym(void *lib, const char *name, void *fn_ptr, size_t size) {
    void *p = dlsym(lib, name);
    memcpy(fn_ptr, &p, size);
}

void kiln_cuda_driver_unload(kiln_cuda_driver *drv) {
    if (!drv) return;
    if (drv->lib) dlclose(drv->lib);
    memset(drv, 0, sizeof *drv);
}

static kiln_status no_driver(kiln_cuda_driver *drv, const char *fmt, const char *a, const char *b) {
    char detail[512];
    snprintf(detail, sizeof detail, fmt, a, b);
    kiln_cuda_driver_unload(drv);
    return kiln_errorf(KILN_ERR_UNSUPPORTED, "no CUDA driver on this machine (%s)", detail);
}

kiln_status kiln_cuda_driver_load(const char *path, bool init, kiln_cuda_driver *drv) {
    if (!path || !drv) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_cuda_driver_load: NULL argument");
    memset(drv, 0, sizeof *drv);
    snprintf(drv->path, sizeof drv->path, "%s", path);
    /* RTLD_LOCAL: the driver's symbols must not satisfy other libraries' lookups. */
    drv->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!drv->lib) {
        const char *why = dlerror();
        return no_driver(drv, "%s could not be loaded: %s", path, why ? why : "unknown reason");
    }

    /* Resolve the whole table first: it needs no working driver, so a stub library shows
     * whether every symbol kiln uses exists. */
    load_sym(drv->lib, "cuGetErrorName", &drv->get_error_name, sizeof drv->get_error_name);
    load_sym(drv->lib, "cuGetErrorString", &drv->get_error_string, sizeof drv->get_error_string);
    get_proc_address_fn gpa = NULL;
    load_sym(drv->lib, "cuGetProcAddress_v2", &gpa, sizeof gpa);
    int n_proc = 0;
    for (size_t i = 0; i < sizeof kiln_cuda_syms / sizeof kiln_cuda_syms[0]; i++) {
        const sym_entry *e = &kiln_cuda_syms[i];
        void *fn = NULL;
        if (gpa) {
            CUdriverProcAddressQueryResult qs = CU_GET_PROC_ADDRESS_SUCCESS;
            if (gpa(e->plain, &fn, KILN_CUDA_ABI_VERSION, CU_GET_PROC_ADDRESS_LEGACY_STREAM, &qs) !=
                    CUDA_SUCCESS ||
                qs != CU_GET_PROC_ADDRESS_SUCCESS)
                fn = NULL;
            if (fn) n_proc++;
        }
        if (!fn) fn = dlsym(drv->lib, e->exported);
        if (!fn) {
            kiln_cuda_driver_unload(drv);
            return kiln_errorf(KILN_ERR_UNSUPPORTED,
                               "the CUDA driver at %s lacks %s (%s): driver too old or damaged",
                               path, e->plain, e->exported);
        }
        memcpy((char *)drv + e->offset, &fn, sizeof fn);
    }
    drv->via_proc_address = n_proc == (int)(sizeof kiln_cuda_syms / sizeof kiln_cuda_syms[0]);
    if (!init) return KILN_OK;

    /* Entries that cuGetProcAddress returned at KILN_CUDA_ABI_VERSION are only right if the
     * driver is at least that new. */
    int version = 0;
    CUresult r = drv->driver_get_version(&version);
    if (r == CUDA_ERROR_STUB_LIBRARY)
        return no_driver(drv, "%s is the CUDA toolkit's stub library, not a driver%s", path, "");
    if (r != CUDA_SUCCESS) {
        kiln_status st = kiln_cuda_check(drv, r, "cuDriverGetVersion");
        kiln_error_prefix(st, "no CUDA driver on this machine (%s)", path);
        kiln_cuda_driver_unload(drv);
        return KILN_ERR_UNSUPPORTED;
    }
    drv->driver_version = version;
    if (version < KILN_CUDA_ABI_VERSION) {
        kiln_cuda_driver_unload(drv);
        return kiln_errorf(KILN_ERR_UNSUPPORTED,
                           "the CUDA driver at %s supports CUDA %d.%d; kiln needs CUDA 12.0 or newer",
                           path, version / 1000, version % 1000 / 10);
    }

    {
        r = drv->init(0);
        if (r == CUDA_ERROR_STUB_LIBRARY)
            return no_driver(drv, "%s is the CUDA toolkit's stub library, not a driver%s", path, "");
        if (r == CUDA_ERROR_NO_DEVICE) {
            kiln_cuda_driver_unload(drv);
            return kiln_errorf(KILN_ERR_UNSUPPORTED,
                               "the CUDA driver at %s sees no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE)",
                               path);
        }
        if (r != CUDA_SUCCESS) {
            kiln_status st = kiln_cuda_check(drv, r, "cuInit");
            kiln_cuda_driver_unload(drv);
            return st;
        }
    }
    return KILN_OK;
}

/* The process-wide table: loaded once; its outcome (table or message) is kept. */
static pthread_once_t kiln_cuda_once = PTHREAD_ONCE_INIT;
static kiln_cuda_driver kiln_cuda_global;
static kiln_status kiln_cuda_global_status;
static char kiln_cuda_global_error[1024];

static void kiln_cuda_load_global(void) {
    const char *path = getenv("KILN_CUDA_DRIVER");
    if (!path || !*path) path = "libcuda.so.1";
    kiln_cuda_global_status = kiln_cuda_driver_load(path, true, &kiln_cuda_global);
    if (kiln_cuda_global_status != KILN_OK)
        snprintf(kiln_cuda_global_error, sizeof kiln_cuda_global_error, "%s", kiln_last_error());
}

kiln_status kiln_cuda_driver_get(const kiln_cuda_driver **out) {
    if (!out) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_cuda_driver_get: NULL argument");
    *out = NULL;
    pthread_once(&kiln_cuda_once, kiln_cuda_load_global);
    /* the message was recorded on the loading thread; repeat it on this one */
    if (kiln_cuda_global_status != KILN_OK)
        return kiln_errorf(kiln_cuda_global_status, "%s", kiln_cuda_global_error);
    *out = &kiln_cuda_global;
    return KILN_OK;
}

kiln_status kiln_cuda_device_open(int ordinal, kiln_cuda_device *out) {
    if (!out) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_cuda_device_open: NULL argument");
    memset(out, 0, sizeof *out);
    out->ordinal = -1;
    const kiln_cuda_driver *cu;
    kiln_status st = kiln_cuda_driver_get(&cu);
    if (st != KILN_OK) return st;
    int count = 0;
    KILN_CU_TRY(cu, cuDeviceGetCount, cu->device_get_count(&count));
    if (count == 0)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "no CUDA device on this machine (cuDeviceGetCount: 0)");
    if (ordinal < 0 || ordinal >= count)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "CUDA device %d does not exist (this machine has %d)",
                           ordinal, count);
    CUdevice dev;
    KILN_CU_TRY(cu, cuDeviceGet, cu->device_get(&dev, ordinal));
    KILN_CU_TRY(cu, cuDeviceGetName, cu->device_get_name(out->name, (int)sizeof out->name, dev));
    out->name[sizeof out->name - 1] = '\0';
    KILN_CU_TRY(cu, cuDeviceGetAttribute,
                cu->device_get_attribute(&out->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
    KILN_CU_TRY(cu, cuDeviceGetAttribute,
                cu->device_get_attribute(&out->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
    KILN_CU_TRY(cu, cuDeviceGetAttribute,
                cu->device_get_attribute(&out->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
    KILN_CU_TRY(cu, cuDeviceTotalMem, cu->device_total_mem(&out->total_mem, dev));
    CUcontext ctx;
    KILN_CU_TRY(cu, cuDevicePrimaryCtxRetain, cu->device_primary_ctx_retain(&ctx, dev));
    st = kiln_cuda_check(cu, cu->ctx_set_current(ctx), "cuCtxSetCurrent");
    if (st != KILN_OK) {
        cu->device_primary_ctx_release(dev); /* the first error is the one to report */
        return st;
    }
    out->drv = cu;
    out->dev = dev;
    out->ctx = ctx;
    out->ordinal = ordinal;
    return KILN_OK;
}

void kiln_cuda_device_close(kiln_cuda_device *d) {
    if (!d || !d->drv) return;
    /* Detach first so that the thread does not keep a released context current. */
    CUcontext cur = NULL;
    if (d->drv->ctx_get_current(&cur) == CUDA_SUCCESS && cur == d->ctx) d->drv->ctx_set_current(NULL);
    d->drv->device_primary_ctx_release(d->dev);
    d->drv = NULL;
}

kiln_status kiln_cuda_module_load(const kiln_cuda_driver *drv, const void *image, CUmodule *out) {
    if (!drv || !image || !out) return kiln_errorf(KILN_ERR_INVALID_ARG, "kiln_cuda_module_load: NULL argument");
    char log[4096] = {0};
    CUjit_option opts[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *vals[2] = {log, (void *)(uintptr_t)(sizeof log - 1)};
    CUresult r = drv->module_load_data_ex(out, image, 2, opts, vals);
    if (r == CUDA_SUCCESS) return KILN_OK;
    *out = NULL;
    kiln_status st = kiln_cuda_check(drv, r, "cuModuleLoadDataEx");
    if (log[0]) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", kiln_last_error());
        return kiln_errorf(st, "%s; JIT log: %.600s", msg, log);
    }
    return st;
}

#endif /* KILN_HAVE_CUDA */
