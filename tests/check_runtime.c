/* check_runtime.c — the GPU runtime (kiln_bundle_model, kiln_exec_context) on a hand-built
 * bundle: two NVRTC-compiled test kernels, a 2-launch plan using every argument kind (arena,
 * weight, input, output, scalars of 4 and 8 bytes, a params struct from the constant pool).
 *
 * Without arguments (ctest `check_runtime`, label unit): what works without a GPU — opening
 * parses and validates the whole bundle and then reports "no CUDA driver" (or works, on a GPU
 * machine), bad bundles are refused naming the fault, and the inspect description.
 * With --gpu (ctest `check_runtime_gpu`, label gpu): runs the bundle and compares every output
 * with a CPU computation (outputs poisoned with NaN before each run); CUDA-graph replay over
 * repeated runs with new inputs, device-pointer bindings on a caller's stream, PTX JIT, two
 * contexts of one model, wrong shapes refused, programmatic dependent launch (a kernel that waits
 * is correct; one that does not reads too early, so the early launch is real). Without a GPU it prints SKIP and exits 77.
 * With --write-files DIR: writes DIR/m.kiln (this bundle), DIR/m.onnx (the same computation as
 * an ONNX model, for `kiln compare`; m_wrong.onnx with another alpha), DIR/x.npy and DIR/x_wrong.npy (a wrong shape) for
 * tests/cli_bundle.sh. */
#include "codegen/nvrtc.h"
#include "frontend.h"
#include "ir.h"
#include "onnx_builder.h"
#include "runtime/bundle.h"
#include "runtime/cuda_driver.h"
#include "runtime/runtime.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { A = 4, B = 5, C = 1000, NUMEL = A * B * C, TMP_OFF = 256 };
static const float ALPHA = 0.75f, BETA = -1.5f;

/* The host twin of rt_params below. */
typedef struct rt_params {
    int32_t n, c, b;
    float beta;
} rt_params;

static const char *source =
    "struct rt_params { int n, c, b; float beta; };\n"
    "// tmp = scaled = x * w[last dim] * alpha (a grid-stride loop: any grid works)\n"
    "extern \"C\" __global__ void rt_scale(const float *x, const float *w, float *tmp, float *scaled, int n,\n"
    "                                      float alpha, long long c) {\n"
    "    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {\n"
    "        float v = x[i] * w[i % c] * alpha;\n"
    "        tmp[i] = v;\n"
    "        scaled[i] = v;\n"
    "    }\n"
    "}\n"
    "// y = relu(tmp + bias[middle dim] * beta)\n"
    "extern \"C\" __global__ void rt_bias_relu(const float *tmp, const float *bias, float *y, rt_params p) {\n"
    "    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < p.n; i += (long long)gridDim.x * blockDim.x)\n"
    "        y[i] = fmaxf(tmp[i] + bias[(i / p.c) % p.b] * p.beta, 0.0f);\n"
    "}\n";

static float w_host[C], bias_host[B];

static uint64_t rng_state;
static float frand(void) { /* xorshift64*, uniform in [-1, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (float)((rng_state * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1 << 23) - 1.0f;
}

static void cpu_reference(const float *x, float *y, float *scaled) {
    for (int i = 0; i < NUMEL; i++) {
        float v = x[i] * w_host[i % C] * ALPHA;
        scaled[i] = v;
        y[i] = fmaxf(v + bias_host[(i / C) % B] * BETA, 0.0f);
    }
}

/* Images: real NVRTC output when kiln has CUDA (sm_80, sm_90, the GPU's own arch `own_cc` if
 * nonzero, PTX), else placeholder bytes (enough for everything short of a GPU). */
static kiln_bundle *make_bundle(int own_cc) {
    kiln_bundle *b = kiln_bundle_new();
    ck_assert_ptr_nonnull(b);
    int64_t dims[3] = {A, B, C}, wd[1] = {C}, bd[1] = {B};
    ck_assert_int_eq(kiln_bundle_add_io(b, "x", KILN_F32, 3, dims, false), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_io(b, "y", KILN_F32, 3, dims, true), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_io(b, "scaled", KILN_F32, 3, dims, true), KILN_OK);
    rng_state = 0x1234567ull;
    for (int i = 0; i < C; i++) w_host[i] = frand() * 2.0f;
    for (int i = 0; i < B; i++) bias_host[i] = frand();
    uint64_t w_off, b_off;
    ck_assert_int_eq(kiln_bundle_add_weight(b, "w", KILN_F32, 1, wd, w_host, sizeof w_host, &w_off), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_weight(b, "bias", KILN_F32, 1, bd, bias_host, sizeof bias_host, &b_off), KILN_OK);
#ifdef KILN_HAVE_CUDA
    char own[16];
    snprintf(own, sizeof own, "sm_%d", own_cc);
    const char *archs[] = {"sm_80", "sm_90", own};
    int n_archs = (own_cc == 0 || own_cc == 80 || own_cc == 90) ? 2 : 3;
    kiln_nvrtc_request rq = {.name = "check_runtime", .source = source, .archs = archs, .n_archs = n_archs, .ptx = true};
    kiln_nvrtc_output co;
    kiln_status st = kiln_nvrtc_compile(&rq, &co);
    ck_assert_msg(st == KILN_OK, "%s", kiln_last_error());
    for (int i = 0; i < co.n_images; i++)
        ck_assert_int_eq(kiln_bundle_add_image(b, co.images[i].is_ptx ? KILN_IMAGE_PTX : KILN_IMAGE_CUBIN,
                                               co.images[i].arch, 0, co.images[i].data, co.images[i].size),
                         KILN_OK);
    kiln_nvrtc_output_free(&co);
#else
    (void)own_cc;
    uint8_t elf[8] = {0x7f, 'E', 'L', 'F'};
    ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_CUBIN, "sm_90", 0, elf, sizeof elf), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_PTX, "compute_90", 0, "// ptx", sizeof "// ptx"), KILN_OK);
#endif
    uint32_t k_scale, k_bias;
    ck_assert_int_eq(kiln_bundle_add_kernel(b, "rt_scale", 0, "group_scale", &k_scale), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_kernel(b, "rt_bias_relu", 0, "group_bias_relu", &k_bias), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_arena(b, TMP_OFF + NUMEL * sizeof(float), 256), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_buffer(b, "tmp", TMP_OFF, NUMEL * sizeof(float)), KILN_OK);
    rt_params p = {.n = NUMEL, .c = C, .b = B, .beta = BETA};
    uint64_t p_off;
    ck_assert_int_eq(kiln_bundle_add_const(b, &p, sizeof p, &p_off), KILN_OK);
    uint32_t alpha_bits;
    memcpy(&alpha_bits, &ALPHA, 4);
    /* small grids, so that the grid-stride loops cover the data several times */
    uint32_t grid[3] = {7, 1, 1}, block[3] = {128, 1, 1};
    kiln_bundle_arg a1[] = {{KILN_ARG_INPUT, 8, 0},         {KILN_ARG_WEIGHT, 8, w_off}, {KILN_ARG_ARENA, 8, TMP_OFF},
                            {KILN_ARG_OUTPUT, 8, 1},        {KILN_ARG_SCALAR, 4, NUMEL}, {KILN_ARG_SCALAR, 4, alpha_bits},
                            {KILN_ARG_SCALAR, 8, C}};
    ck_assert_int_eq(kiln_bundle_add_launch(b, k_scale, grid, block, 0, 0, a1, 7), KILN_OK);
    uint32_t grid2[3] = {5, 1, 1}, block2[3] = {96, 1, 1};
    kiln_bundle_arg a2[] = {{KILN_ARG_ARENA, 8, TMP_OFF}, {KILN_ARG_WEIGHT, 8, b_off}, {KILN_ARG_OUTPUT, 8, 0},
                            {KILN_ARG_BYTES, sizeof p, p_off}};
    ck_assert_int_eq(kiln_bundle_add_launch(b, k_bias, grid2, block2, 0, 0, a2, 4), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_meta(b, "kiln_version", KILN_VERSION_STRING), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_meta(b, "precision", "fp32"), KILN_OK);
    return b;
}

static char bundle_path[64];

static void write_bundle(int own_cc) {
    kiln_bundle *b = make_bundle(own_cc);
    snprintf(bundle_path, sizeof bundle_path, "/tmp/kiln_check_runtime_XXXXXX");
    int fd = mkstemp(bundle_path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_msg(kiln_bundle_write(b, bundle_path) == KILN_OK, "%s", kiln_last_error());
    kiln_bundle_free(b);
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc((size_t)n);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(fread(d, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return d;
}

/* The bundle's computation as an ONNX model: scaled = x * w * alpha, y = relu(scaled + bias * beta)
 * (w [C], bias [B, 1], scalars alpha and beta): `kiln compare m.onnx m.kiln` must PASS. */
static uint8_t *make_onnx(ob_arena *a, size_t *len, const float *alpha) {
    ob_model *om = ob_model_new(a, 17);
    int64_t dims[3] = {A, B, C}, wd[1] = {C}, bd[2] = {B, 1};
    ob_add_input(a, om, ob_value(a, "x", 1, 3, dims, NULL));
    ob_add_output(a, om, ob_value(a, "y", 1, 3, dims, NULL));
    ob_add_output(a, om, ob_value(a, "scaled", 1, 3, dims, NULL));
    ob_add_init(a, om, ob_tensor_f32(a, "w", 1, wd, w_host, C));
    ob_add_init(a, om, ob_tensor_f32(a, "bias", 2, bd, bias_host, B));
    static const int64_t scalar_dims[1] = {1}; /* rank 0: not read, but memcpy wants a pointer */
    ob_add_init(a, om, ob_tensor_f32(a, "alpha", 0, scalar_dims, alpha, 1));
    ob_add_init(a, om, ob_tensor_f32(a, "beta", 0, scalar_dims, &BETA, 1));
    const char *n1[] = {"x", "w"}, *o1[] = {"xw"}, *n2[] = {"xw", "alpha"}, *o2[] = {"scaled"};
    const char *n3[] = {"bias", "beta"}, *o3[] = {"bb"}, *n4[] = {"scaled", "bb"}, *o4[] = {"pre"};
    const char *n5[] = {"pre"}, *o5[] = {"y"};
    ob_add_node(a, om, ob_node(a, "Mul", "mul_w", 2, n1, 1, o1));
    ob_add_node(a, om, ob_node(a, "Mul", "mul_alpha", 2, n2, 1, o2));
    ob_add_node(a, om, ob_node(a, "Mul", "mul_beta", 2, n3, 1, o3));
    ob_add_node(a, om, ob_node(a, "Add", "add_bias", 2, n4, 1, o4));
    ob_add_node(a, om, ob_node(a, "Relu", "relu", 1, n5, 1, o5));
    return ob_pack(a, om, len);
}

/* ---------------------------------------------------------------- without a GPU -- */

/* The bundle is read and validated completely; then either the GPU path works (GPU machine) or
 * the error says clearly that there is no driver / device, naming the file. */
START_TEST(open_works_up_to_the_gpu) {
    write_bundle(0);
    kiln_bundle_model *m = (kiln_bundle_model *)1;
    kiln_status st = kiln_bundle_model_open(bundle_path, NULL, &m);
    if (st == KILN_OK) {
        printf("check_runtime: a GPU is here: %s\n", kiln_bundle_model_image_info(m));
        ck_assert_int_eq(kiln_bundle_model_num_inputs(m), 1);
        kiln_bundle_model_free(m);
    } else {
        ck_assert_ptr_null(m);
        const char *msg = kiln_last_error();
#ifdef KILN_HAVE_CUDA
        ck_assert_int_eq(st, KILN_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(msg, "no CUDA driver") || strstr(msg, "no CUDA device"), "%s", msg);
#else
        ck_assert_msg(strstr(msg, "without CUDA"), "%s", msg);
#endif
        ck_assert_msg(strstr(msg, bundle_path), "%s", msg);
        printf("check_runtime: as expected without a GPU: %s\n", msg);
        /* the same from bytes */
        size_t len;
        uint8_t *d = slurp(bundle_path, &len);
        ck_assert_int_eq(kiln_bundle_model_open_bytes(d, len, NULL, &m), st);
        ck_assert_ptr_null(m);
        free(d);
    }
    unlink(bundle_path);
}
END_TEST

/* Bad bundles are refused before the GPU is touched: truncated, one byte flipped, not a bundle. */
START_TEST(bad_bundles_refused_before_the_gpu) {
    write_bundle(0);
    size_t len;
    uint8_t *d = slurp(bundle_path, &len);
    kiln_bundle_model *m = (kiln_bundle_model *)1;
    size_t cuts[] = {0, 7, 63, 64, 200, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        kiln_status st = kiln_bundle_model_open_bytes(d, cuts[i], NULL, &m);
        ck_assert_msg(st == KILN_ERR_PARSE || st == KILN_ERR_IO, "cut %zu: %d %s", cuts[i], st, kiln_last_error());
        ck_assert_ptr_null(m);
        ck_assert_msg(!strstr(kiln_last_error(), "no CUDA"), "cut %zu: %s", cuts[i], kiln_last_error());
    }
    for (size_t at = 0; at < len; at += len / 17 + 1) {
        d[at] ^= 0x10;
        kiln_status st = kiln_bundle_model_open_bytes(d, len, NULL, &m);
        ck_assert_msg(st != KILN_OK && st != KILN_ERR_UNSUPPORTED, "flip at %zu: %d %s", at, st, kiln_last_error());
        ck_assert_msg(strstr(kiln_last_error(), "header") || strstr(kiln_last_error(), "section"), "%s",
                      kiln_last_error());
        d[at] ^= 0x10;
    }
    ck_assert_int_ne(kiln_bundle_model_open("/nonexistent/m.kiln", NULL, &m), KILN_OK);
    ck_assert_ptr_nonnull(strstr(kiln_last_error(), "/nonexistent/m.kiln"));
    ck_assert_int_eq(kiln_bundle_model_open(NULL, NULL, &m), KILN_ERR_INVALID_ARG);
    free(d);
    unlink(bundle_path);
}
END_TEST

START_TEST(describe_hand_built_bundle) {
    kiln_bundle *b = make_bundle(0);
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    ck_assert_ptr_nonnull(f);
    kiln_bundle_describe(b, "hand.kiln", 12345, f);
    fclose(f);
    const char *want[] = {"bundle hand.kiln: format version 1, 12345 bytes", "precision: fp32",
                          "input  0 x: f32 [4,5,1000]", "output 0 y: f32 [4,5,1000]", "output 1 scaled: f32 [4,5,1000]",
                          "sm_90", "compute_90", "rt_scale", "group group_scale", "group group_bias_relu",
                          "launch plan (2 launches, constant pool 16 bytes)", "grid (7,1,1) block (128,1,1)",
                          "input:0 weight:0 arena:256 output:1 scalar:20000", "bytes:0",
                          "arena: 80256 bytes (align 256), 1 buffers", "weights: 2 tensors, 4052 bytes", "weight:4032 output:0"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text, want[i]), "missing '%s' in:\n%s", want[i], text);
    free(text);
    kiln_bundle_free(b);
}
END_TEST

/* The ONNX twin computes what cpu_reference does (so `kiln compare` tests the GPU, not the twin). */
START_TEST(onnx_twin_matches_reference) {
    kiln_bundle_free(make_bundle(0)); /* sets w_host, bias_host */
    ob_arena a = {0};
    size_t len;
    uint8_t *bytes = make_onnx(&a, &len, &ALPHA);
    kiln_graph *g = NULL;
    ck_assert_msg(kiln_model_load_bytes(bytes, len, NULL, &g) == KILN_OK, "%s", kiln_last_error());
    int64_t dims[3] = {A, B, C};
    kiln_tensor *x = kiln_tensor_new(KILN_F32, 3, dims), *outs[2] = {0};
    rng_state = 77;
    float *xf = x->data, *ry = malloc(NUMEL * sizeof *ry), *rs = malloc(NUMEL * sizeof *rs);
    for (int i = 0; i < NUMEL; i++) xf[i] = frand() * 4.0f;
    cpu_reference(xf, ry, rs);
    ck_assert_msg(kiln_graph_run_cpu(g, &x, 1, outs, 2) == KILN_OK, "%s", kiln_last_error());
    const float *gy = outs[0]->data, *gs = outs[1]->data;
    for (int i = 0; i < NUMEL; i++) {
        ck_assert_msg(fabsf(gy[i] - ry[i]) <= fabsf(ry[i]) * 1e-6f + 1e-6f, "y[%d] %g vs %g", i, gy[i], ry[i]);
        ck_assert_msg(gs[i] == rs[i], "scaled[%d] %g vs %g", i, gs[i], rs[i]);
    }
    free(ry);
    free(rs);
    kiln_tensor_free(x);
    kiln_tensor_free(outs[0]);
    kiln_tensor_free(outs[1]);
    kiln_graph_free(g);
    ob_free(&a);
}
END_TEST

/* API misuse gets messages, not crashes (no GPU needed). */
START_TEST(null_arguments) {
    kiln_bundle_model_free(NULL);
    kiln_exec_context_free(NULL);
    ck_assert_int_eq(kiln_bundle_model_num_inputs(NULL), 0);
    ck_assert_int_eq(kiln_bundle_model_find_input(NULL, "x"), -1);
    ck_assert_int_eq(kiln_exec_context_new(NULL, 0, NULL), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_exec_context_run(NULL, NULL), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_exec_context_bind_input(NULL, 0, NULL, KILN_F32, 0, NULL, KILN_MEM_HOST),
                     KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_bundle_model_input_info(NULL, 0, NULL, NULL, NULL, NULL), KILN_ERR_INVALID_ARG);
    kiln_launch_resources lr;
    ck_assert_int_eq(kiln_bundle_model_launch_resources(NULL, 0, &lr), KILN_ERR_INVALID_ARG);
}
END_TEST

/* -------------------------------------------------------------------- on a GPU -- */
#ifdef KILN_HAVE_CUDA
static int gpu_cc;
static const int64_t DIMS[3] = {A, B, C};

/* |got - want| <= 1e-6 |want| + 1e-6 everywhere (the GPU may fuse the last multiply-add);
 * NaN (a poisoned, unwritten element) always fails. Returns the number of mismatches. */
static int compare(const char *what, const float *got, const float *want) {
    int bad = 0;
    double max_err = 0;
    for (int i = 0; i < NUMEL; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= fabs(want[i]) * 1e-6 + 1e-6)) {
            if (bad++ < 5) fprintf(stderr, "  %s[%d]: got %.9g want %.9g\n", what, i, got[i], want[i]);
        } else if (err > max_err) {
            max_err = err;
        }
    }
    printf("check_runtime: %-36s max abs error %.3g, %d mismatches\n", what, max_err, bad);
    return bad;
}

typedef struct host_io {
    float x[NUMEL], y[NUMEL], scaled[NUMEL], ref_y[NUMEL], ref_s[NUMEL];
} host_io;

static void new_inputs(host_io *h, uint64_t seed) {
    rng_state = seed;
    for (int i = 0; i < NUMEL; i++) h->x[i] = frand() * 4.0f;
    cpu_reference(h->x, h->ref_y, h->ref_s);
    memset(h->y, 0xff, sizeof h->y); /* NaN: unwritten elements show */
    memset(h->scaled, 0xff, sizeof h->scaled);
}

static kiln_bundle_model *open_gpu_model(bool force_ptx) {
    write_bundle(gpu_cc);
    kiln_bundle_model_options o = {.device = 0, .force_ptx = force_ptx};
    kiln_bundle_model *m = NULL;
    kiln_status st = kiln_bundle_model_open(bundle_path, &o, &m);
    ck_assert_msg(st == KILN_OK, "%s", kiln_last_error());
    unlink(bundle_path);
    printf("check_runtime: %s\n", kiln_bundle_model_image_info(m));
    ck_assert_int_eq(kiln_bundle_model_used_jit(m), force_ptx);
    return m;
}

static void bind_host(kiln_exec_context *ctx, host_io *h) {
    ck_assert_msg(kiln_exec_context_bind_input(ctx, 0, h->x, KILN_F32, 3, DIMS, KILN_MEM_HOST) == KILN_OK, "%s",
                  kiln_last_error());
    ck_assert_msg(kiln_exec_context_bind_output(ctx, 0, h->y, KILN_F32, 3, DIMS, KILN_MEM_HOST) == KILN_OK, "%s",
                  kiln_last_error());
    ck_assert_msg(kiln_exec_context_bind_output(ctx, 1, h->scaled, KILN_F32, 3, DIMS, KILN_MEM_HOST) == KILN_OK,
                  "%s", kiln_last_error());
}

START_TEST(gpu_run_matches_cpu) {
    kiln_bundle_model *m = open_gpu_model(false);
    const char *name;
    kiln_dtype dt;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    ck_assert_int_eq(kiln_bundle_model_output_info(m, 1, &name, &dt, &rank, dims), KILN_OK);
    ck_assert_str_eq(name, "scaled");
    ck_assert_int_eq(kiln_bundle_model_find_output(m, "y"), 0);
    kiln_exec_context *ctx;
    ck_assert_msg(kiln_exec_context_new(m, KILN_EXEC_POISON, &ctx) == KILN_OK, "%s", kiln_last_error());
    host_io *h = malloc(sizeof *h);
    new_inputs(h, 42);
    bind_host(ctx, h);
    ck_assert_msg(kiln_exec_context_run(ctx, NULL) == KILN_OK, "%s", kiln_last_error());
    int bad = compare("y (first run)", h->y, h->ref_y) + compare("scaled (first run)", h->scaled, h->ref_s);
    ck_assert_int_eq(bad, 0);
    /* what each launch holds of an SM: the plan's block and grid, registers and blocks an SM from the
     * driver; a launch past the plan is refused */
    const kiln_bundle *b = kiln_bundle_model_bundle(m);
    for (int l = 0; l < b->n_launches; l++) {
        kiln_launch_resources lr;
        ck_assert_msg(kiln_bundle_model_launch_resources(m, l, &lr) == KILN_OK, "%s", kiln_last_error());
        const kiln_bundle_launch *la = &b->launches[l];
        ck_assert_int_eq(lr.threads, (int)(la->block[0] * la->block[1] * la->block[2]));
        ck_assert_uint_eq(lr.grid_blocks, (uint64_t)la->grid[0] * la->grid[1] * la->grid[2]);
        ck_assert_uint_ge(lr.shared_bytes, la->shared_bytes);
        ck_assert_int_gt(lr.registers, 0);
        ck_assert_int_ge(lr.blocks_per_sm, 1);
    }
    kiln_launch_resources lr;
    ck_assert_int_eq(kiln_bundle_model_launch_resources(m, b->n_launches, &lr), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_bundle_model_launch_resources(m, -1, &lr), KILN_ERR_INVALID_ARG);
    free(h);
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
}
END_TEST

/* Run 1 launches kernels, runs 2.. replay a CUDA graph; each run has new inputs and must match
 * the CPU, and be bit-identical to a context that never uses a graph. */
START_TEST(gpu_graph_replay_new_inputs) {
    kiln_bundle_model *m = open_gpu_model(false);
    kiln_exec_context *g, *ng;
    ck_assert_int_eq(kiln_exec_context_new(m, KILN_EXEC_POISON, &g), KILN_OK);
    ck_assert_int_eq(kiln_exec_context_new(m, KILN_EXEC_NO_GRAPH | KILN_EXEC_POISON, &ng), KILN_OK);
    host_io *h = malloc(sizeof *h), *h2 = malloc(sizeof *h2);
    int bad = 0;
    for (int run = 0; run < 6; run++) {
        new_inputs(h, 1000 + (uint64_t)run);
        new_inputs(h2, 1000 + (uint64_t)run);
        bind_host(g, h);
        bind_host(ng, h2);
        ck_assert_msg(kiln_exec_context_run(g, NULL) == KILN_OK, "%s", kiln_last_error());
        ck_assert_msg(kiln_exec_context_run(ng, NULL) == KILN_OK, "%s", kiln_last_error());
        char what[64];
        snprintf(what, sizeof what, "y (run %d%s)", run, run ? ", graph" : "");
        bad += compare(what, h->y, h->ref_y);
        snprintf(what, sizeof what, "scaled (run %d%s)", run, run ? ", graph" : "");
        bad += compare(what, h->scaled, h->ref_s);
        ck_assert_msg(!memcmp(h->y, h2->y, sizeof h->y) && !memcmp(h->scaled, h2->scaled, sizeof h->scaled),
                      "run %d: graph replay and kernel launches differ", run);
    }
    ck_assert_int_eq(bad, 0);
    int64_t replays;
    ck_assert_int_eq(kiln_exec_context_runs(g, &replays), 6);
    ck_assert_int_eq(replays, 5);
    ck_assert_int_eq(kiln_exec_context_runs(ng, &replays), 6);
    ck_assert_int_eq(replays, 0);
    free(h);
    free(h2);
    kiln_exec_context_free(g);
    kiln_exec_context_free(ng);
    kiln_bundle_model_free(m);
}
END_TEST

/* Device-pointer bindings on a caller's stream (asynchronous), rebinding to other buffers
 * (the graph is captured again), and two contexts of one model. */
START_TEST(gpu_device_bindings_on_caller_stream) {
    kiln_bundle_model *m = open_gpu_model(false);
    const kiln_cuda_driver *cu;
    ck_assert_int_eq(kiln_cuda_driver_get(&cu), KILN_OK);
    kiln_exec_context *c1, *c2;
    ck_assert_int_eq(kiln_exec_context_new(m, 0, &c1), KILN_OK);
    ck_assert_int_eq(kiln_exec_context_new(m, 0, &c2), KILN_OK);
    CUstream s;
    ck_assert_int_eq(cu->stream_create(&s, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
    CUdeviceptr d[2][3];
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++) ck_assert_int_eq(cu->mem_alloc(&d[k][j], NUMEL * sizeof(float)), CUDA_SUCCESS);
    host_io *h = malloc(sizeof *h);
    int bad = 0;
    for (int run = 0; run < 6; run++) {
        kiln_exec_context *ctx = run % 3 == 2 ? c2 : c1;
        int k = run / 2 % 2; /* runs 0,1 buffers 0; 2,3 buffers 1; 4,5 buffers 0 */
        new_inputs(h, 7000 + (uint64_t)run);
        ck_assert_int_eq(cu->memcpy_htod_async(d[k][0], h->x, sizeof h->x, s), CUDA_SUCCESS);
        ck_assert_int_eq(cu->memset_d8_async(d[k][1], 0xff, sizeof h->y, s), CUDA_SUCCESS);
        ck_assert_int_eq(cu->memset_d8_async(d[k][2], 0xff, sizeof h->y, s), CUDA_SUCCESS);
        for (int j = 0; j < 3; j++) {
            void *p = (void *)(uintptr_t)d[k][j];
            kiln_status st = j == 0 ? kiln_exec_context_bind_input(ctx, 0, p, KILN_F32, 3, DIMS, KILN_MEM_DEVICE)
                                    : kiln_exec_context_bind_output(ctx, j - 1, p, KILN_F32, 3, DIMS, KILN_MEM_DEVICE);
            ck_assert_msg(st == KILN_OK, "%s", kiln_last_error());
        }
        ck_assert_msg(kiln_exec_context_run(ctx, s) == KILN_OK, "%s", kiln_last_error());
        ck_assert_int_eq(cu->memcpy_dtoh_async(h->y, d[k][1], sizeof h->y, s), CUDA_SUCCESS);
        ck_assert_int_eq(cu->memcpy_dtoh_async(h->scaled, d[k][2], sizeof h->y, s), CUDA_SUCCESS);
        ck_assert_int_eq(cu->stream_synchronize(s), CUDA_SUCCESS);
        char what[64];
        snprintf(what, sizeof what, "y (device run %d, ctx %d)", run, ctx == c2 ? 2 : 1);
        bad += compare(what, h->y, h->ref_y);
        snprintf(what, sizeof what, "scaled (device run %d, ctx %d)", run, ctx == c2 ? 2 : 1);
        bad += compare(what, h->scaled, h->ref_s);
    }
    ck_assert_int_eq(bad, 0);
    int64_t replays;
    ck_assert_int_eq(kiln_exec_context_runs(c1, &replays), 4);
    ck_assert_int_ge(replays, 2);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++) ck_assert_int_eq(cu->mem_free(d[k][j]), CUDA_SUCCESS);
    ck_assert_int_eq(cu->stream_destroy(s), CUDA_SUCCESS);
    free(h);
    kiln_exec_context_free(c1);
    kiln_exec_context_free(c2);
    kiln_bundle_model_free(m);
}
END_TEST

START_TEST(gpu_ptx_jit) {
    kiln_bundle_model *m = open_gpu_model(true);
    ck_assert_ptr_nonnull(strstr(kiln_bundle_model_image_info(m), "JIT"));
    kiln_exec_context *ctx;
    ck_assert_int_eq(kiln_exec_context_new(m, KILN_EXEC_POISON, &ctx), KILN_OK);
    host_io *h = malloc(sizeof *h);
    new_inputs(h, 99);
    bind_host(ctx, h);
    for (int run = 0; run < 2; run++) {
        ck_assert_msg(kiln_exec_context_run(ctx, NULL) == KILN_OK, "%s", kiln_last_error());
        ck_assert_int_eq(compare("y (PTX JIT)", h->y, h->ref_y) + compare("scaled (PTX JIT)", h->scaled, h->ref_s), 0);
        memset(h->y, 0xff, sizeof h->y);
        memset(h->scaled, 0xff, sizeof h->scaled);
    }
    free(h);
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
}
END_TEST

/* Several threads, each with its own context of one shared model, run at once. */
enum { THREADS = 4, THREAD_RUNS = 8 };
typedef struct thread_job {
    const kiln_bundle_model *m;
    int id, bad;
    char err[512];
} thread_job;

static float thread_frand(uint64_t *st) {
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return (float)((*st * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1 << 23) - 1.0f;
}

static void *thread_main(void *arg) {
    thread_job *job = arg;
    kiln_exec_context *ctx = NULL;
    host_io *h = malloc(sizeof *h);
    if (!h || kiln_exec_context_new(job->m, KILN_EXEC_POISON, &ctx) != KILN_OK) {
        snprintf(job->err, sizeof job->err, "context: %s", kiln_last_error());
        free(h);
        return NULL;
    }
    uint64_t st = 0xABCDull + (uint64_t)job->id;
    for (int run = 0; run < THREAD_RUNS && !job->err[0]; run++) {
        for (int i = 0; i < NUMEL; i++) h->x[i] = thread_frand(&st) * 4.0f; /* frand's state is global */
        cpu_reference(h->x, h->ref_y, h->ref_s);
        memset(h->y, 0xff, sizeof h->y);
        memset(h->scaled, 0xff, sizeof h->scaled);
        if (kiln_exec_context_bind_input(ctx, 0, h->x, KILN_F32, 3, DIMS, KILN_MEM_HOST) ||
            kiln_exec_context_bind_output(ctx, 0, h->y, KILN_F32, 3, DIMS, KILN_MEM_HOST) ||
            kiln_exec_context_bind_output(ctx, 1, h->scaled, KILN_F32, 3, DIMS, KILN_MEM_HOST) ||
            kiln_exec_context_run(ctx, NULL)) {
            snprintf(job->err, sizeof job->err, "run %d: %s", run, kiln_last_error());
            break;
        }
        for (int i = 0; i < NUMEL; i++) {
            job->bad += !(fabs((double)h->y[i] - h->ref_y[i]) <= fabs(h->ref_y[i]) * 1e-6 + 1e-6);
            job->bad += !(fabs((double)h->scaled[i] - h->ref_s[i]) <= fabs(h->ref_s[i]) * 1e-6 + 1e-6);
        }
    }
    kiln_exec_context_free(ctx);
    free(h);
    return NULL;
}

START_TEST(gpu_threads_share_a_model) {
    kiln_bundle_model *m = open_gpu_model(false);
    pthread_t th[THREADS];
    thread_job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (thread_job){.m = m, .id = t};
        ck_assert_int_eq(pthread_create(&th[t], NULL, thread_main, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < THREADS; t++) {
        ck_assert_msg(!jobs[t].err[0], "thread %d: %s", t, jobs[t].err);
        ck_assert_msg(jobs[t].bad == 0, "thread %d: %d mismatches", t, jobs[t].bad);
    }
    printf("check_runtime: %d threads x %d runs, each its own context of one model: all match\n", THREADS, THREAD_RUNS);
    kiln_bundle_model_free(m);
}
END_TEST

/* A hand-built bundle written to bytes and opened from them (b is freed). */
static kiln_bundle_model *open_in_memory(kiln_bundle *b) {
    uint8_t *bytes;
    size_t len;
    ck_assert_msg(kiln_bundle_write_bytes(b, &bytes, &len) == KILN_OK, "%s", kiln_last_error());
    kiln_bundle_free(b);
    kiln_bundle_model *m;
    ck_assert_msg(kiln_bundle_model_open_bytes(bytes, len, NULL, &m) == KILN_OK, "%s", kiln_last_error());
    free(bytes);
    return m;
}

/* More than 48 KiB of dynamic shared memory (the runtime must opt the kernel in) and an arena
 * aligned to 4096 bytes (more than cuMemAlloc's 256): y0 = x reversed twice through the arena,
 * y1 = x reversed once. The kernel writes NaN when its input pointer is not 4096-aligned. */
enum { SMEM_N = 16384 }; /* 64 KiB of floats */
static const char *smem_source =
    "extern \"C\" __global__ void rt_smem_reverse(const float *x, float *y, int n, int check_align) {\n"
    "    extern __shared__ float s[];\n"
    "    bool bad = check_align && ((unsigned long long)x & 4095ull);\n"
    "    for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = x[i];\n"
    "    __syncthreads();\n"
    "    for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = bad ? __int_as_float(0x7fc00000) : s[n - 1 - i];\n"
    "}\n";

START_TEST(gpu_big_shared_memory_and_arena_alignment) {
    kiln_bundle *b = kiln_bundle_new();
    int64_t dims[1] = {SMEM_N};
    ck_assert_int_eq(kiln_bundle_add_io(b, "x", KILN_F32, 1, dims, false), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_io(b, "twice", KILN_F32, 1, dims, true), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_io(b, "once", KILN_F32, 1, dims, true), KILN_OK);
    char own[16];
    snprintf(own, sizeof own, "sm_%d", gpu_cc);
    const char *archs[] = {own};
    kiln_nvrtc_request rq = {.name = "smem", .source = smem_source, .archs = archs, .n_archs = 1, .ptx = false};
    kiln_nvrtc_output co;
    ck_assert_msg(kiln_nvrtc_compile(&rq, &co) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_CUBIN, co.images[0].arch, 0, co.images[0].data,
                                           co.images[0].size), KILN_OK);
    kiln_nvrtc_output_free(&co);
    uint32_t k;
    ck_assert_int_eq(kiln_bundle_add_kernel(b, "rt_smem_reverse", 0, "group_reverse", &k), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_arena(b, 4096 + SMEM_N * 4, 4096), KILN_OK);
    uint32_t grid[3] = {1, 1, 1}, block[3] = {256, 1, 1}, smem = SMEM_N * 4;
    kiln_bundle_arg l1[] = {{KILN_ARG_INPUT, 8, 0}, {KILN_ARG_ARENA, 8, 4096}, {KILN_ARG_SCALAR, 4, SMEM_N},
                            {KILN_ARG_SCALAR, 4, 0}};
    kiln_bundle_arg l2[] = {{KILN_ARG_ARENA, 8, 4096}, {KILN_ARG_OUTPUT, 8, 0}, {KILN_ARG_SCALAR, 4, SMEM_N},
                            {KILN_ARG_SCALAR, 4, 1}};
    kiln_bundle_arg l3[] = {{KILN_ARG_INPUT, 8, 0}, {KILN_ARG_OUTPUT, 8, 1}, {KILN_ARG_SCALAR, 4, SMEM_N},
                            {KILN_ARG_SCALAR, 4, 0}};
    ck_assert_int_eq(kiln_bundle_add_launch(b, k, grid, block, smem, 0, l1, 4), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_launch(b, k, grid, block, smem, 0, l2, 4), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_launch(b, k, grid, block, smem, 1, l3, 4), KILN_OK); /* another stream id */
    kiln_bundle_model *m = open_in_memory(b);
    ck_assert_int_eq(kiln_bundle_model_arena_bytes(m), 4096 + SMEM_N * 4);
    kiln_exec_context *ctx;
    ck_assert_msg(kiln_exec_context_new(m, KILN_EXEC_POISON, &ctx) == KILN_OK, "%s", kiln_last_error());
    float *x = malloc(SMEM_N * 4), *twice = malloc(SMEM_N * 4), *once = malloc(SMEM_N * 4);
    for (int run = 0; run < 3; run++) {
        rng_state = 500 + (uint64_t)run;
        for (int i = 0; i < SMEM_N; i++) x[i] = frand();
        memset(twice, 0xff, SMEM_N * 4);
        memset(once, 0xff, SMEM_N * 4);
        ck_assert_int_eq(kiln_exec_context_bind_input(ctx, 0, x, KILN_F32, 1, dims, KILN_MEM_HOST), KILN_OK);
        ck_assert_int_eq(kiln_exec_context_bind_output(ctx, 0, twice, KILN_F32, 1, dims, KILN_MEM_HOST), KILN_OK);
        ck_assert_int_eq(kiln_exec_context_bind_output(ctx, 1, once, KILN_F32, 1, dims, KILN_MEM_HOST), KILN_OK);
        ck_assert_msg(kiln_exec_context_run(ctx, NULL) == KILN_OK, "%s", kiln_last_error());
        for (int i = 0; i < SMEM_N; i++) {
            ck_assert_msg(twice[i] == x[i], "run %d: twice[%d] = %g, want %g", run, i, twice[i], x[i]);
            ck_assert_msg(once[i] == x[SMEM_N - 1 - i], "run %d: once[%d] = %g", run, i, once[i]);
        }
    }
    printf("check_runtime: 64 KiB dynamic shared memory, 4096-aligned arena, stream ids 0/1: 3 runs exact\n");
    free(x);
    free(twice);
    free(once);
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
}
END_TEST

/* Programmatic dependent launch (kernels/kiln_common.cuh, runtime.c launch_range). A slow kernel
 * lets the next grid launch at once (griddepcontrol.launch_dependents, which kiln's kernels do not
 * issue: without it the next grid launches as this one's blocks exit, too late to show anything),
 * then spins PDL_SPIN_NS before it writes tmp = 2 x; the next one reads y = tmp + 1. On sm_90+
 * with the bundle's "pdl" key the second launch then starts while the first still spins:
 *  - a reader that waits (kiln::pdl_enter) gives y exactly, eager and through a graph replay;
 *  - a reader without the wait reads the poisoned tmp: proof that the early launch happens (and
 *    that the wait is what keeps a kiln kernel correct), eager and in the graph;
 *  - KILN_EXEC_NO_PDL (plain launches): even that reader gives y exactly. */
enum { PDL_N = 4096 };
#define PDL_SPIN_NS "200000"
static const char *pdl_source =
    "#include \"kiln_common.cuh\"\n"
    "extern \"C\" __global__ void pdl_slow(const float *x, float *tmp, int n) {\n"
    "    kiln::pdl_enter();\n"
    "#if __CUDA_ARCH__ >= 900\n"
    "    asm volatile(\"griddepcontrol.launch_dependents;\" ::: \"memory\");\n"
    "#endif\n"
    "    unsigned long long t0, t;\n"
    "    asm volatile(\"mov.u64 %0, %%globaltimer;\" : \"=l\"(t0));\n"
    "    do asm volatile(\"mov.u64 %0, %%globaltimer;\" : \"=l\"(t)); while (t - t0 < " PDL_SPIN_NS "ull);\n"
    "    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) tmp[i] = 2.0f * x[i];\n"
    "}\n"
    "extern \"C\" __global__ void pdl_read(const float *tmp, float *y, int n) {\n"
    "    kiln::pdl_enter();\n"
    "    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = tmp[i] + 1.0f;\n"
    "}\n"
    "extern \"C\" __global__ void pdl_read_nowait(const float *tmp, float *y, int n) {\n"
    "    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = tmp[i] + 1.0f;\n"
    "}\n";

/* y's mismatches against 2 x + 1 after `runs` runs of a context with `flags` (the last run's). */
static int pdl_run(const char *reader, unsigned flags, int runs, const char **info) {
    kiln_bundle *b = kiln_bundle_new();
    int64_t dims[1] = {PDL_N};
    ck_assert_int_eq(kiln_bundle_add_io(b, "x", KILN_F32, 1, dims, false), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_io(b, "y", KILN_F32, 1, dims, true), KILN_OK);
    char own[16];
    snprintf(own, sizeof own, "sm_%d", gpu_cc);
    const char *archs[] = {own};
    kiln_nvrtc_request rq = {.name = "pdl", .source = pdl_source, .headers = kiln_kernel_headers,
                             .n_headers = kiln_kernel_header_count, .archs = archs, .n_archs = 1, .ptx = false};
    kiln_nvrtc_output co;
    ck_assert_msg(kiln_nvrtc_compile(&rq, &co) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(kiln_bundle_add_image(b, KILN_IMAGE_CUBIN, co.images[0].arch, 0, co.images[0].data,
                                           co.images[0].size), KILN_OK);
    kiln_nvrtc_output_free(&co);
    uint32_t k1, k2;
    ck_assert_int_eq(kiln_bundle_add_kernel(b, "pdl_slow", 0, "group_slow", &k1), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_kernel(b, reader, 0, "group_read", &k2), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_arena(b, PDL_N * 4, 256), KILN_OK);
    ck_assert_int_eq(kiln_bundle_set_meta(b, "pdl", "1"), KILN_OK);
    uint32_t grid[3] = {4, 1, 1}, block[3] = {256, 1, 1};
    kiln_bundle_arg l1[] = {{KILN_ARG_INPUT, 8, 0}, {KILN_ARG_ARENA, 8, 0}, {KILN_ARG_SCALAR, 4, PDL_N}};
    kiln_bundle_arg l2[] = {{KILN_ARG_ARENA, 8, 0}, {KILN_ARG_OUTPUT, 8, 0}, {KILN_ARG_SCALAR, 4, PDL_N}};
    ck_assert_int_eq(kiln_bundle_add_launch(b, k1, grid, block, 0, 0, l1, 3), KILN_OK);
    ck_assert_int_eq(kiln_bundle_add_launch(b, k2, grid, block, 0, 0, l2, 3), KILN_OK);
    kiln_bundle_model *m = open_in_memory(b);
    static char info_copy[512];
    snprintf(info_copy, sizeof info_copy, "%s", kiln_bundle_model_image_info(m));
    if (info) *info = info_copy;
    kiln_exec_context *ctx;
    ck_assert_msg(kiln_exec_context_new(m, flags | KILN_EXEC_POISON, &ctx) == KILN_OK, "%s", kiln_last_error());
    float *x = malloc(PDL_N * 4), *y = malloc(PDL_N * 4);
    int bad = 0;
    for (int run = 0; run < runs; run++) {
        rng_state = 900 + (uint64_t)run;
        for (int i = 0; i < PDL_N; i++) x[i] = frand();
        memset(y, 0xff, PDL_N * 4);
        ck_assert_int_eq(kiln_exec_context_bind_input(ctx, 0, x, KILN_F32, 1, dims, KILN_MEM_HOST), KILN_OK);
        ck_assert_int_eq(kiln_exec_context_bind_output(ctx, 0, y, KILN_F32, 1, dims, KILN_MEM_HOST), KILN_OK);
        ck_assert_msg(kiln_exec_context_run(ctx, NULL) == KILN_OK, "%s", kiln_last_error());
        bad = 0;
        for (int i = 0; i < PDL_N; i++) bad += !(y[i] == 2.0f * x[i] + 1.0f); /* exact: one rounding each way */
    }
    free(x);
    free(y);
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
    return bad;
}

START_TEST(gpu_pdl_waits_for_the_previous_kernel) {
    const char *info;
    /* run 1 launches the kernels, run 2 replays a CUDA graph of them */
    for (int runs = 1; runs <= 2; runs++) {
        const char *how = runs == 1 ? "launches" : "graph replay";
        int waits = pdl_run("pdl_read", 0, runs, &info);
        printf("check_runtime: PDL, reader waits (%s): %d of %d wrong\n", how, waits, PDL_N);
        ck_assert_int_eq(waits, 0);
        int plain = pdl_run("pdl_read_nowait", KILN_EXEC_NO_PDL, runs, NULL);
        printf("check_runtime: plain launches, reader without the wait (%s): %d of %d wrong\n", how, plain, PDL_N);
        ck_assert_int_eq(plain, 0);
        if (gpu_cc < 90) {
            ck_assert_ptr_null(strstr(info, "programmatic"));
            continue;
        }
        ck_assert_msg(strstr(info, "programmatic dependent launch"), "image info: %s", info);
        int early = pdl_run("pdl_read_nowait", 0, runs, NULL);
        printf("check_runtime: PDL, reader without the wait (%s): %d of %d read before the write\n", how, early, PDL_N);
        ck_assert_msg(early > 0, "%s: the second kernel never started before the first had finished", how);
    }
}
END_TEST

START_TEST(gpu_wrong_bindings_refused) {
    kiln_bundle_model *m = open_gpu_model(false);
    kiln_exec_context *ctx;
    ck_assert_int_eq(kiln_exec_context_new(m, 0, &ctx), KILN_OK);
    host_io *h = malloc(sizeof *h);
    new_inputs(h, 5);
    /* running before everything is bound */
    ck_assert_int_eq(kiln_exec_context_run(ctx, NULL), KILN_ERR_INVALID_ARG);
    ck_assert_msg(strstr(kiln_last_error(), "'x' is not bound"), "%s", kiln_last_error());
    int64_t wrong[3] = {A, B, C + 1};
    ck_assert_int_eq(kiln_exec_context_bind_input(ctx, 0, h->x, KILN_F32, 3, wrong, KILN_MEM_HOST), KILN_ERR_SHAPE);
    ck_assert_msg(strstr(kiln_last_error(), "input 'x'") && strstr(kiln_last_error(), "f32 [4,5,1000]") &&
                      strstr(kiln_last_error(), "f32 [4,5,1001]"),
                  "%s", kiln_last_error());
    ck_assert_int_eq(kiln_exec_context_bind_input(ctx, 0, h->x, KILN_F16, 3, DIMS, KILN_MEM_HOST), KILN_ERR_SHAPE);
    ck_assert_int_eq(kiln_exec_context_bind_input(ctx, 0, h->x, KILN_F32, 2, DIMS, KILN_MEM_HOST), KILN_ERR_SHAPE);
    ck_assert_int_eq(kiln_exec_context_bind_output(ctx, 1, h->y, KILN_F32, 3, wrong, KILN_MEM_HOST), KILN_ERR_SHAPE);
    ck_assert_msg(strstr(kiln_last_error(), "output 'scaled'"), "%s", kiln_last_error());
    ck_assert_int_eq(kiln_exec_context_bind_input(ctx, 1, h->x, KILN_F32, 3, DIMS, KILN_MEM_HOST), KILN_ERR_INVALID_ARG);
    ck_assert_int_eq(kiln_exec_context_bind_input(ctx, 0, NULL, KILN_F32, 3, DIMS, KILN_MEM_HOST), KILN_ERR_INVALID_ARG);
    /* a device pointer that kernels' vector loads could not take (bind does not dereference it) */
    void *odd = (void *)(uintptr_t)0x10004;
    ck_assert_int_eq(kiln_exec_context_bind_input(ctx, 0, odd, KILN_F32, 3, DIMS, KILN_MEM_DEVICE), KILN_ERR_INVALID_ARG);
    ck_assert_msg(strstr(kiln_last_error(), "input 'x'") && strstr(kiln_last_error(), "32-byte aligned"), "%s",
                  kiln_last_error());
    ck_assert_int_eq(kiln_exec_context_bind_output(ctx, 0, odd, KILN_F32, 3, DIMS, KILN_MEM_DEVICE), KILN_ERR_INVALID_ARG);
    /* a refused binding leaves the context usable */
    bind_host(ctx, h);
    ck_assert_msg(kiln_exec_context_run(ctx, NULL) == KILN_OK, "%s", kiln_last_error());
    ck_assert_int_eq(compare("y (after refusals)", h->y, h->ref_y), 0);
    free(h);
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
}
END_TEST
#endif

/* --write-files DIR (for tests/cli_bundle.sh); runs as a Check test, as make_bundle asserts. */
static const char *files_dir;
START_TEST(write_files_test) {
    const char *dir = files_dir;
    char path[4096];
    kiln_bundle *b = make_bundle(0);
    snprintf(path, sizeof path, "%s/m.kiln", dir);
    ck_assert_msg(kiln_bundle_write(b, path) == KILN_OK, "%s", kiln_last_error());
    kiln_bundle_free(b);
    ob_arena a = {0};
    size_t len;
    static const float other_alpha = 0.8f;
    for (int k = 0; k < 2; k++) {
        uint8_t *bytes = make_onnx(&a, &len, k ? &other_alpha : &ALPHA);
        snprintf(path, sizeof path, "%s/%s.onnx", dir, k ? "m_wrong" : "m");
        FILE *f = fopen(path, "wb");
        ck_assert_msg(f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0, "cannot write %s", path);
    }
    ob_free(&a);
    int64_t dims[3] = {A, B, C}, wrong[3] = {A, B, C + 1};
    kiln_tensor *x = kiln_tensor_new(KILN_F32, 3, dims), *xw = kiln_tensor_new(KILN_F32, 3, wrong);
    rng_state = 3;
    for (int i = 0; i < NUMEL; i++) ((float *)x->data)[i] = frand();
    snprintf(path, sizeof path, "%s/x.npy", dir);
    ck_assert_msg(kiln_npy_write(path, x) == KILN_OK, "%s", kiln_last_error());
    snprintf(path, sizeof path, "%s/x_wrong.npy", dir);
    ck_assert_msg(kiln_npy_write(path, xw) == KILN_OK, "%s", kiln_last_error());
    kiln_tensor_free(x);
    kiln_tensor_free(xw);
}
END_TEST

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    bool write = argc > 2 && !strcmp(argv[1], "--write-files");
    if (write) files_dir = argv[2];
    bool gpu = argc > 1 && !strcmp(argv[1], "--gpu");
    if (gpu) { /* decide SKIP before building the suite */
#ifndef KILN_HAVE_CUDA
        printf("SKIP: check_runtime --gpu: kiln was built without CUDA (KILN_CUDA=OFF)\n");
        return 77;
#else
        kiln_cuda_device dev;
        if (kiln_cuda_device_open(0, &dev) != KILN_OK) {
            printf("SKIP: check_runtime --gpu: %s\n", kiln_last_error());
            return 77;
        }
        gpu_cc = dev.cc_major * 10 + dev.cc_minor;
        printf("check_runtime: GPU %s (sm_%d)\n", dev.name, gpu_cc);
        kiln_cuda_device_close(&dev);
#endif
    }
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create(gpu ? "gpu" : "core");
    tcase_set_timeout(tc, 300);
    if (write) {
        tcase_add_test(tc, write_files_test);
    } else if (!gpu) {
        tcase_add_test(tc, open_works_up_to_the_gpu);
        tcase_add_test(tc, bad_bundles_refused_before_the_gpu);
        tcase_add_test(tc, describe_hand_built_bundle);
        tcase_add_test(tc, null_arguments);
        tcase_add_test(tc, onnx_twin_matches_reference);
    } else {
#ifdef KILN_HAVE_CUDA
        tcase_add_test(tc, gpu_run_matches_cpu);
        tcase_add_test(tc, gpu_graph_replay_new_inputs);
        tcase_add_test(tc, gpu_device_bindings_on_caller_stream);
        tcase_add_test(tc, gpu_ptx_jit);
        tcase_add_test(tc, gpu_wrong_bindings_refused);
        tcase_add_test(tc, gpu_threads_share_a_model);
        tcase_add_test(tc, gpu_big_shared_memory_and_arena_alignment);
        tcase_add_test(tc, gpu_pdl_waits_for_the_previous_kernel);
#endif
    }
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
