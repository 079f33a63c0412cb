/* check_cuda_driver.c — the dlopen'ed driver table: clear errors when there is no driver (the
 * build machines have none), every symbol resolvable from the toolkit's stub library, and
 * error messages that name the call. On a GPU machine the real driver must load. */
#include "ir.h"
#include "runtime/cuda_driver.h"

#include <check.h>
#include <unistd.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#ifdef KILN_HAVE_CUDA

/* Whatever this machine has, kiln_cuda_driver_get either works or says clearly why not. */
START_TEST(driver_get_works_or_says_why) {
    const kiln_cuda_driver *cu = NULL;
    kiln_status st = kiln_cuda_driver_get(&cu);
    void *probe = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (st == KILN_OK) {
        ck_assert_ptr_nonnull(cu);
        ck_assert_int_ge(cu->driver_version, KILN_CUDA_ABI_VERSION);
        ck_assert_ptr_nonnull(cu->launch_kernel);
        ck_assert_ptr_nonnull(cu->graph_instantiate);
        printf("check_cuda_driver: driver %s, CUDA %d.%d, %s\n", cu->path, cu->driver_version / 1000,
               cu->driver_version % 1000 / 10, cu->via_proc_address ? "cuGetProcAddress" : "dlsym");
    } else {
        ck_assert_ptr_null(cu);
        ck_assert_int_eq(st, KILN_ERR_UNSUPPORTED);
        const char *msg = kiln_last_error();
        ck_assert_msg(strstr(msg, "no CUDA driver on this machine") || strstr(msg, "no CUDA device"), "%s", msg);
        if (!probe) /* the machine really has no driver: the message must say so, naming the library */
            ck_assert_msg(strstr(msg, "no CUDA driver on this machine") && strstr(msg, "libcuda.so.1"), "%s", msg);
        printf("check_cuda_driver: as expected here: %s\n", msg);
        /* the same answer again (cached), on this and on later calls */
        ck_assert_int_eq(kiln_cuda_driver_get(&cu), st);
        ck_assert_str_eq(kiln_last_error(), msg);
        kiln_cuda_device dev;
        ck_assert_int_eq(kiln_cuda_device_open(0, &dev), st);
        ck_assert_ptr_nonnull(strstr(kiln_last_error(), "no CUDA"));
        kiln_cuda_device_close(&dev); /* closing a never-opened device is fine */
    }
    if (probe) dlclose(probe);
}
END_TEST

START_TEST(missing_library_is_no_driver) {
    kiln_cuda_driver drv;
    kiln_status st = kiln_cuda_driver_load("/nonexistent/libcuda.so.1", true, &drv);
    ck_assert_int_eq(st, KILN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "no CUDA driver on this machine"));
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "/nonexistent/libcuda.so.1"));
    ck_assert_ptr_null(drv.lib);
    kiln_cuda_driver_unload(&drv);
    /* a library that is not a driver at all */
    st = kiln_cuda_driver_load("libc.so.6", true, &drv);
    ck_assert_int_eq(st, KILN_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(kiln_last_error(), "lacks cuInit"), "%s", kiln_last_error());
    ck_assert_ptr_null(drv.lib);
}
END_TEST

START_TEST(stub_resolves_every_symbol_but_is_no_driver) {
#ifndef KILN_CUDA_STUB
    printf("SKIP: stub_resolves_every_symbol: the toolkit's stubs/libcuda.so was not found\n");
#else
    if (access(KILN_CUDA_STUB, R_OK) != 0) { /* built elsewhere: a GPU machine has no toolkit stubs */
        printf("SKIP: stub_resolves_every_symbol: %s is not on this machine\n", KILN_CUDA_STUB);
        return;
    }
    kiln_cuda_driver drv;
    /* resolve only: every versioned symbol kiln uses exists in the stub */
    ck_assert_msg(kiln_cuda_driver_load(KILN_CUDA_STUB, false, &drv) == KILN_OK, "%s", kiln_last_error());
    void *const *fns = (void *const *)&drv.init;
    size_t n = (sizeof drv - offsetof(kiln_cuda_driver, init)) / sizeof(void *);
    for (size_t i = 0; i < n; i++) ck_assert_msg(fns[i] != NULL, "table entry %zu unresolved", i);
    ck_assert(!drv.via_proc_address); /* the stub's cuGetProcAddress fails: dlsym fallback */
    /* every call answers "stub"; the check names the call and the error */
    kiln_status st = kiln_cuda_check(&drv, drv.init(0), "cuInit");
    ck_assert_int_eq(st, KILN_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(kiln_last_error(), "cuInit failed: CUDA_ERROR_STUB_LIBRARY (34)"), "%s", kiln_last_error());
    kiln_cuda_driver_unload(&drv);
    ck_assert_ptr_null(drv.lib);
    /* with init, the stub is reported as no driver */
    st = kiln_cuda_driver_load(KILN_CUDA_STUB, true, &drv);
    ck_assert_int_eq(st, KILN_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(kiln_last_error(), "no CUDA driver on this machine") && strstr(kiln_last_error(), "stub"),
                  "%s", kiln_last_error());
#endif
}
END_TEST

START_TEST(check_names_call_and_error) {
    ck_assert_int_eq(kiln_cuda_check(NULL, CUDA_SUCCESS, "cuMemAlloc"), KILN_OK);
    ck_assert_int_eq(kiln_cuda_check(NULL, CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc"), KILN_ERR_OOM);
    ck_assert_msg(strstr(kiln_last_error(), "cuMemAlloc failed") && strstr(kiln_last_error(), "(2)"), "%s",
                  kiln_last_error());
    ck_assert_int_eq(kiln_cuda_check(NULL, CUDA_ERROR_NO_DEVICE, "cuInit"), KILN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "cuInit failed: CUDA_ERROR_NO_DEVICE (100)"));
    ck_assert_int_eq(kiln_cuda_check(NULL, CUDA_ERROR_LAUNCH_FAILED, "cuLaunchKernel"), KILN_ERR_INTERNAL);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "cuLaunchKernel failed"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("cuda_driver");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, driver_get_works_or_says_why);
    tcase_add_test(tc, missing_library_is_no_driver);
    tcase_add_test(tc, stub_resolves_every_symbol_but_is_no_driver);
    tcase_add_test(tc, check_names_call_and_error);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#else
int main(void) {
    if (kiln_cuda_available()) return 1; /* the build and the library disagree */
    printf("SKIP: check_cuda_driver: kiln was built without CUDA (KILN_CUDA=OFF)\n");
    return 77;
}
#endif
