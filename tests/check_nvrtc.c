/* check_nvrtc.c — NVRTC compiles kiln's embedded kernel templates on a machine without a
 * GPU: cubins (ELF) for sm_80 and sm_90, PTX for the newest portable arch, template kernels by
 * name expression, and compile errors that name the kernel and quote the log. */
#include "codegen/nvrtc.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fused elementwise group as codegen will emit it: relu(x0 * x1 + x2), x1 in fp16, x2 a
 * per-channel broadcast. */
static const char *ew_source =
    "#include \"elementwise.cuh\"\n"
    "struct group_expr {\n"
    "    template <int NIN>\n"
    "    static __device__ __forceinline__ float eval(const void *const (&in)[NIN], const kiln::i64 (&off)[NIN]) {\n"
    "        float x0 = kiln::load_f32<float>(in[0], off[0]);\n"
    "        float x1 = kiln::load_f32<__half>(in[1], off[1]);\n"
    "        float x2 = kiln::load_f32<float>(in[2], off[2]);\n"
    "        return fmaxf(x0 * x1 + x2, 0.0f);\n"
    "    }\n"
    "};\n"
    "extern \"C\" __global__ void ew_group(kiln::ew_params<3, 4> p) {\n"
    "    kiln::elementwise<group_expr, float, 3, 4, false>(p);\n"
    "}\n"
    "extern \"C\" __global__ void ew_group_h(kiln::ew_params<3, 4> p) {\n"
    "    kiln::elementwise<group_expr, __half, 3, 4, true>(p);\n"
    "}\n";

#ifdef KILN_HAVE_CUDA

START_TEST(embedded_headers_present) {
    ck_assert_int_ge(kiln_kernel_header_count, 2);
    bool common = false, ew = false;
    for (int i = 0; i < kiln_kernel_header_count; i++) {
        ck_assert_ptr_nonnull(kiln_kernel_headers[i].name);
        ck_assert_ptr_nonnull(kiln_kernel_headers[i].source);
        ck_assert_uint_gt(strlen(kiln_kernel_headers[i].source), 100);
        if (strcmp(kiln_kernel_headers[i].name, "kiln_common.cuh") == 0)
            common = strstr(kiln_kernel_headers[i].source, "namespace kiln") != NULL;
        if (strcmp(kiln_kernel_headers[i].name, "elementwise.cuh") == 0)
            ew = strstr(kiln_kernel_headers[i].source, "struct ew_params") != NULL;
    }
    ck_assert(common && ew);
    ck_assert_ptr_null(kiln_kernel_headers[kiln_kernel_header_count].name); /* sentinel */
}
END_TEST

START_TEST(compile_elementwise_cubins_and_ptx) {
    int maj, min;
    ck_assert_int_eq(kiln_nvrtc_version(&maj, &min), KILN_OK);
    ck_assert_int_ge(maj, 12);
    const char *archs[] = {"sm_80", "sm_90"};
    kiln_nvrtc_request rq = {.name = "ew_group", .source = ew_source, .headers = kiln_kernel_headers,
                             .n_headers = kiln_kernel_header_count, .archs = archs, .n_archs = 2, .ptx = true};
    kiln_nvrtc_output out;
    kiln_status st = kiln_nvrtc_compile(&rq, &out);
    ck_assert_msg(st == KILN_OK, "%s\n%s", kiln_last_error(), out.log ? out.log : "");
    ck_assert_int_eq(out.n_images, 3);
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(out.images[i].arch, archs[i]);
        ck_assert(!out.images[i].is_ptx);
        ck_assert_uint_gt(out.images[i].size, 64);
        ck_assert_mem_eq(out.images[i].data, "\x7f" "ELF", 4);
        /* 64-bit little-endian ELF, machine EM_CUDA (190) */
        ck_assert_uint_eq(out.images[i].data[4], 2);
        ck_assert_uint_eq(out.images[i].data[5], 1);
        ck_assert_uint_eq(out.images[i].data[18] | out.images[i].data[19] << 8, 190);
    }
    ck_assert(memcmp(out.images[0].data, out.images[1].data, out.images[0].size < out.images[1].size
                                                                   ? out.images[0].size : out.images[1].size) != 0);
    const kiln_nvrtc_image *ptx = &out.images[2];
    ck_assert(ptx->is_ptx);
    ck_assert_str_eq(ptx->arch, "compute_90");
    ck_assert_uint_eq(ptx->data[ptx->size - 1], 0); /* NUL-terminated for cuModuleLoadData */
    ck_assert_ptr_nonnull(strstr((const char *)ptx->data, ".target sm_90"));
    ck_assert_ptr_nonnull(strstr((const char *)ptx->data, ".entry ew_group("));
    ck_assert_ptr_nonnull(strstr((const char *)ptx->data, ".entry ew_group_h("));
    kiln_nvrtc_output_free(&out);
    ck_assert_ptr_null(out.images);
}
END_TEST

START_TEST(arch_specific_gets_portable_ptx) {
    /* sm_90a code cannot be JIT-compiled elsewhere: the PTX is for the newest plain arch */
    const char *archs[] = {"sm_90a", "sm_80"};
    kiln_nvrtc_request rq = {.name = "tiny", .source = "extern \"C\" __global__ void tiny(float *x) { x[threadIdx.x] *= 2.0f; }\n",
                             .archs = archs, .n_archs = 2, .ptx = true};
    kiln_nvrtc_output out;
    ck_assert_msg(kiln_nvrtc_compile(&rq, &out) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(out.n_images, 3);
    ck_assert_str_eq(out.images[0].arch, "sm_90a");
    ck_assert_str_eq(out.images[2].arch, "compute_80");
    ck_assert_ptr_nonnull(strstr((const char *)out.images[2].data, ".target sm_80"));
    kiln_nvrtc_output_free(&out);
}
END_TEST

START_TEST(template_kernel_by_name_expression) {
    const char *archs[] = {"sm_90"};
    const char *exprs[] = {"scale<float, 4>"};
    kiln_nvrtc_request rq = {.name = "scale",
                             .source = "#include \"kiln_common.cuh\"\n"
                                       "template <typename T, int N> __global__ void scale(T *x) {\n"
                                       "  kiln::i64 i = kiln::global_thread_index(); x[i] = x[i] * (T)N; }\n",
                             .headers = kiln_kernel_headers, .n_headers = kiln_kernel_header_count,
                             .archs = archs, .n_archs = 1, .name_exprs = exprs, .n_name_exprs = 1};
    kiln_nvrtc_output out;
    ck_assert_msg(kiln_nvrtc_compile(&rq, &out) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(out.n_images, 1);
    ck_assert_int_eq(out.n_lowered_names, 1);
    ck_assert_str_eq(out.lowered_names[0], "_Z5scaleIfLi4EEvPT_");
    kiln_nvrtc_output_free(&out);
}
END_TEST

START_TEST(compile_error_names_kernel_and_log) {
    const char *archs[] = {"sm_80"};
    kiln_nvrtc_request rq = {.name = "broken_group",
                             .source = "#include \"kiln_common.cuh\"\n"
                                       "extern \"C\" __global__ void broken_group(float *x) { x[0] = undeclared_thing; }\n",
                             .headers = kiln_kernel_headers, .n_headers = kiln_kernel_header_count,
                             .archs = archs, .n_archs = 1, .ptx = true};
    kiln_nvrtc_output out;
    kiln_status st = kiln_nvrtc_compile(&rq, &out);
    ck_assert_int_eq(st, KILN_ERR_UNSUPPORTED);
    const char *msg = kiln_last_error();
    ck_assert_msg(strstr(msg, "'broken_group' (sm_80)") && strstr(msg, "undeclared_thing") &&
                      strstr(msg, "NVRTC_ERROR_COMPILATION"),
                  "%s", msg);
    ck_assert_int_eq(out.n_images, 0);
    ck_assert_ptr_nonnull(out.log); /* the whole log is kept for the caller */
    ck_assert_ptr_nonnull(strstr(out.log, "broken_group.cu"));
    kiln_nvrtc_output_free(&out);
}
END_TEST

/* KILN_NVRTC_DEFINES (a developer's switch for kernel experiments) reaches the compiler as -D options;
 * without it the same source must not compile, so the test can fail. */
START_TEST(developer_defines_reach_the_compiler) {
    const char *archs[] = {"sm_80"};
    kiln_nvrtc_request rq = {.name = "defs",
                             .source = "#if !defined(KILN_T_A) || KILN_T_B != 7\n#error the defines did not arrive\n#endif\n"
                                       "extern \"C\" __global__ void defs(float *x) { x[0] = KILN_T_B; }\n",
                             .archs = archs, .n_archs = 1};
    kiln_nvrtc_output out;
    unsetenv("KILN_NVRTC_DEFINES");
    ck_assert_int_eq(kiln_nvrtc_compile(&rq, &out), KILN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "the defines did not arrive"));
    kiln_nvrtc_output_free(&out);
    setenv("KILN_NVRTC_DEFINES", ",KILN_T_A,,KILN_T_B=7,", 1); /* (empty items are skipped) */
    kiln_status st = kiln_nvrtc_compile(&rq, &out);
    unsetenv("KILN_NVRTC_DEFINES");
    ck_assert_msg(st == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(out.n_images, 1);
    kiln_nvrtc_output_free(&out);
}
END_TEST

START_TEST(bad_requests) {
    kiln_nvrtc_output out;
    const char *bad[] = {"sm_9", "sm_90b", "gfx90a", "compute_90", "sm_35"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *archs[] = {bad[i]};
        kiln_nvrtc_request rq = {.name = "k", .source = "__global__ void k() {}", .archs = archs, .n_archs = 1};
        kiln_status st = kiln_nvrtc_compile(&rq, &out);
        ck_assert_msg(st == KILN_ERR_INVALID_ARG || st == KILN_ERR_UNSUPPORTED, "%s", bad[i]);
        ck_assert_msg(strstr(kiln_last_error(), bad[i]), "%s", kiln_last_error());
        kiln_nvrtc_output_free(&out);
    }
    kiln_nvrtc_request empty = {.name = "k", .source = "x"};
    ck_assert_int_eq(kiln_nvrtc_compile(&empty, &out), KILN_ERR_INVALID_ARG);
    kiln_nvrtc_output_free(&out);
}
END_TEST

START_TEST(parse_arch) {
    int n;
    bool a;
    ck_assert_int_eq(kiln_nvrtc_parse_arch("sm_90a", &n, &a), KILN_OK);
    ck_assert(n == 90 && a);
    ck_assert_int_eq(kiln_nvrtc_parse_arch("compute_86", &n, &a), KILN_OK);
    ck_assert(n == 86 && !a);
    ck_assert_int_eq(kiln_nvrtc_parse_arch("sm_100", &n, &a), KILN_OK);
    ck_assert_int_eq(n, 100);
    ck_assert_int_eq(kiln_nvrtc_parse_arch("sm_", &n, &a), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_nvrtc_parse_arch("sm_90 ", &n, &a), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_nvrtc_parse_arch(NULL, &n, &a), KILN_ERR_INVALID_ARG);
}
END_TEST

int main(void) {
    Suite *s = suite_create("nvrtc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, embedded_headers_present);
    tcase_add_test(tc, compile_elementwise_cubins_and_ptx);
    tcase_add_test(tc, arch_specific_gets_portable_ptx);
    tcase_add_test(tc, template_kernel_by_name_expression);
    tcase_add_test(tc, compile_error_names_kernel_and_log);
    tcase_add_test(tc, developer_defines_reach_the_compiler);
    tcase_add_test(tc, bad_requests);
    tcase_add_test(tc, parse_arch);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#else
int main(void) {
    (void)ew_source;
    printf("SKIP: check_nvrtc: kiln was built without CUDA (KILN_CUDA=OFF)\n");
    return 77;
}
#endif
