/* conv_harness.h — what the single-convolution kernel tests (emu_conv_nhwc.c, emu_conv_f32.c,
 * and gpu_conv_wgmma.c through emu_conv_nhwc.c) share: the seeded generator, graph building
 * helpers, and running one generated bundle either on the CPU emulator or on the GPU through the
 * runtime. Each test keeps its own cases, graph, inputs (dtype, layout) and comparison.
 *
 *   harness_emu_run(name, src, work, b, cuda, ins, out)   the bundle's launch plan on the emulator:
 *       the generated source compiled as host C++ with the CUDA shim (emu_shim.h) into
 *       WORK/NAME.so; arena poisoned (NaN) first; ins[i] is graph input i's host bytes, out the
 *       output's. 0 = ran, 1 = failed (printed).
 *   harness_gpu_run(name, work, b, ref, ins, out, skip)   WORK/NAME.kiln written and run on the GPU
 *       (inputs bound by name against ref's inputs, host memory). 0 = ran, 1 = failed, 2 = no GPU
 *       (*skip set; the SKIP line printed once).
 * A test includes this once, after the kiln headers, and links dl. */
#pragma once

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_args.h"

static uint64_t rng;
static double rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static int val(kiln_graph *g, const char *name, int rank, const int64_t *dims) {
    int v = kiln_graph_find_value(g, name);
    if (v < 0) v = kiln_graph_add_value(g, name);
    if (v >= 0 && rank) kiln_value_set(&g->values[v], KILN_F32, rank, dims);
    return v;
}
static int cst(kiln_graph *g, const char *name, int rank, const int64_t *dims, double scale) {
    int v = val(g, name, rank, dims);
    kiln_tensor *t = kiln_tensor_new(KILN_F32, rank, dims);
    if (v < 0 || !t) return -1;
    for (int64_t i = 0; i < t->numel; i++) kiln_tensor_set(t, i, rnd() * scale);
    g->values[v].data = t;
    g->values[v].flags |= KILN_VALUE_INITIALIZER;
    return v;
}
static void io(kiln_graph *g, int v, bool out) {
    int **ids = out ? &g->outputs : &g->inputs, *n = out ? &g->n_outputs : &g->n_inputs;
    *ids = realloc(*ids, sizeof(int) * (size_t)(*n + 1));
    (*ids)[(*n)++] = v;
    g->values[v].flags |= out ? KILN_VALUE_OUTPUT : KILN_VALUE_INPUT;
}

/* The tile name from the generated comment: "// tile NAME" (cg_conv.c) or "...], tile NAME"
 * (cg_conv_nhwc.c); "" if none. */
static void tile_of(const char *cuda, char *buf, size_t len) {
    const char *tl = strstr(cuda, "// tile ");
    if (!tl) tl = strstr(cuda, "], tile ");
    buf[0] = 0;
    if (tl) tl = strstr(tl, "tile ") + 5, snprintf(buf, len, "%.*s", (int)strcspn(tl, "\n"), tl);
}

typedef void (*harness_tramp_fn)(void **);
typedef int (*harness_launch_fn)(harness_tramp_fn, void **, const unsigned *, const unsigned *);

static int harness_emu_run(const char *name, const char *src, const char *work, const kiln_bundle *b, const char *cuda,
                           void *const *ins, void *out) {
    char path[1024], cmd[4096];
    snprintf(path, sizeof path, "%s/%s.cu", work, name);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fputs(cuda, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "python3 %s/tests/codegen/emu/gen_tramp.py %s/%s.cu %s/%s.cpp && g++ -O1 -std=c++17 -fPIC -shared -include "
             "%s/tests/codegen/emu/emu_shim.h -I%s/tests/codegen/emu -I%s/kernels %s/%s.cpp %s/emu_sched.o -o %s/%s.so",
             src, work, name, work, name, src, src, src, work, name, work, work, name);
    if (system(cmd)) {
        printf("FAIL: %s: host compile\n", name);
        return 1;
    }
    snprintf(path, sizeof path, "%s/%s.so", work, name);
    void *so = dlopen(path, RTLD_NOW);
    harness_launch_fn launch = so ? (harness_launch_fn)(uintptr_t)dlsym(so, "emu_launch") : NULL;
    if (!launch) {
        printf("FAIL: %s: %s\n", name, dlerror());
        if (so) dlclose(so);
        return 1;
    }
    uint8_t *arena = malloc(b->arena_bytes + 16), *weights = aligned_alloc(64, (b->weight_bytes + 64) / 64 * 64);
    memset(arena, 0xff, b->arena_bytes + 16); /* NaN: split-K partials and scratch must all be written */
    memcpy(weights, b->weight_data, b->weight_bytes);
    int failed = 0;
    for (int li = 0; li < (int)b->n_launches && !failed; li++) {
        const kiln_bundle_launch *L = &b->launches[li];
        char sym[512];
        snprintf(sym, sizeof sym, "emu_tramp_%s", b->kernels[L->kernel].function);
        harness_tramp_fn t = (harness_tramp_fn)(uintptr_t)dlsym(so, sym);
        if (!t) {
            printf("FAIL: %s: no %s\n", name, sym);
            failed = 1;
            break;
        }
        uint64_t vals[KILN_BUNDLE_MAX_ARGS];
        void *params[KILN_BUNDLE_MAX_ARGS];
        emu_launch_params(b, L, arena, weights, ins, &out, vals, params);
        failed = launch(t, params, L->grid, L->block) != 0;
    }
    free(arena);
    free(weights);
    void (*release)(void) = (void (*)(void))(uintptr_t)dlsym(so, "emu_release");
    if (release) release();
    dlclose(so);
    return failed;
}

static int harness_gpu_run(const char *name, const char *work, const kiln_bundle *b, const kiln_graph *ref,
                           void *const *ins, void *out, bool *skip) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.kiln", work, name);
    if (kiln_bundle_write(b, path)) {
        printf("FAIL: %s: %s\n", name, kiln_last_error());
        return 1;
    }
    kiln_bundle_model *m = NULL;
    kiln_exec_context *ctx = NULL;
    kiln_status st = kiln_bundle_model_open(path, NULL, &m);
    if (st == KILN_ERR_UNSUPPORTED) {
        if (!*skip) printf("SKIP: no GPU or driver (the cases are still generated and NVRTC-compiled): %s\n", kiln_last_error());
        *skip = true;
        return 2;
    }
    if (!st) st = kiln_exec_context_new(m, 0, &ctx);
    for (int i = 0; !st && i < kiln_bundle_model_num_inputs(m); i++) {
        const char *in_name;
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        st = kiln_bundle_model_input_info(m, i, &in_name, &dt, &rank, dims);
        int gi = -1;
        for (int j = 0; !st && j < ref->n_inputs; j++)
            if (!strcmp(ref->values[ref->inputs[j]].name, in_name)) gi = j;
        if (!st) st = gi < 0 ? KILN_ERR_INTERNAL : kiln_exec_context_bind_input(ctx, i, ins[gi], dt, rank, dims, KILN_MEM_HOST);
    }
    if (!st) {
        const char *out_name;
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        st = kiln_bundle_model_output_info(m, 0, &out_name, &dt, &rank, dims);
        if (!st) st = kiln_exec_context_bind_output(ctx, 0, out, dt, rank, dims, KILN_MEM_HOST);
    }
    if (!st) st = kiln_exec_context_run(ctx, NULL);
    if (st) printf("FAIL: %s: run: %s\n", name, kiln_last_error());
    kiln_exec_context_free(ctx);
    kiln_bundle_model_free(m);
    return st ? 1 : 0;
}
