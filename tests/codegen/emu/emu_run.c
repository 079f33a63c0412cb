/* emu_run.c — runs a bundle's launch plan on the CPU through kiln's generated CUDA compiled as
 * host C++ (emu_shim.h, emu_sched.cpp) and compares every output with the CPU evaluator on
 * seeded random inputs. Outputs and the arena are poisoned (0xff bytes: NaN) first, so
 * unwritten elements fail. This checks codegen's kernels and launch plan (arguments, arena
 * offsets, aliasing, launch order) without a GPU.
 * usage: emu_run MODEL.onnx M.kiln MODULE.so [RTOL ATOL]; exit 0 PASS, 1 FAIL.
 * KILN_EMU_ORDER=reverse runs the bundle's layers in another order that its dependencies allow
 * (always the latest ready layer first): a dependency the layer table misses shows up as wrong
 * outputs, as it would as a race between streams on a GPU. */
#include "codegen/codegen.h"
#include "runtime/bundle.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*tramp_fn)(void **);
typedef int (*launch_fn)(tramp_fn, void **, const unsigned *, const unsigned *);

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float rnd(void) { /* uniform [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: emu_run MODEL.onnx M.kiln MODULE.so [RTOL ATOL]\n");
        return 2;
    }
    double rtol = argc > 4 ? atof(argv[4]) : 1e-3, atol = argc > 5 ? atof(argv[5]) : 1e-4;
    kiln_graph *g = NULL;
    kiln_bundle *b = NULL;
    if (kiln_model_load(argv[1], &g) || kiln_bundle_read(argv[2], &b)) {
        fprintf(stderr, "emu_run: %s\n", kiln_last_error());
        return 1;
    }
    void *so = dlopen(argv[3], RTLD_NOW);
    launch_fn launch = so ? (launch_fn)(uintptr_t)dlsym(so, "emu_launch") : NULL;
    if (!launch) {
        fprintf(stderr, "emu_run: %s\n", dlerror());
        return 1;
    }
    int n_in = 0, n_out = 0;
    kiln_tensor *ins[64] = {0}, *outs[64] = {0}, *cpu[64] = {0};
    for (int i = 0; i < b->n_io; i++) {
        kiln_bundle_io *io = &b->io[i];
        kiln_tensor *t = kiln_tensor_new(io->dtype, io->rank, io->dims);
        if (!t || n_in >= 64 || n_out >= 64) return 1;
        if (io->is_output) {
            memset(t->data, 0xff, t->nbytes);
            outs[n_out++] = t;
        } else {
            for (int64_t k = 0; k < t->numel; k++) { /* other dtypes (f64 cases) through kiln_tensor_set */
                if (t->dtype == KILN_F32) ((float *)t->data)[k] = rnd();
                else kiln_tensor_set(t, k, rnd());
            }
            if (kiln_codegen_fix_shape(g, io->name, io->rank, io->dims)) {
                fprintf(stderr, "emu_run: %s\n", kiln_last_error());
                return 1;
            }
            ins[n_in++] = t;
        }
    }
    uint8_t *arena = malloc(b->arena_bytes + 1), *weights = aligned_alloc(64, (b->weight_bytes + 64) / 64 * 64);
    if (!arena || !weights) return 1;
    memset(arena, 0xff, b->arena_bytes + 1);
    memcpy(weights, b->weight_data, b->weight_bytes);
    /* launch order: the plan's, or layer by layer in the latest-ready-first order */
    int *order = malloc(sizeof(int) * (size_t)(b->n_launches + 1));
    if (!order) return 1;
    for (int l = 0; l < b->n_launches; l++) order[l] = l;
    const char *ord = getenv("KILN_EMU_ORDER");
    if (ord && !strcmp(ord, "reverse") && b->n_layers) {
        bool *done = calloc((size_t)b->n_layers + 1, 1);
        if (!done) return 1;
        int n = 0;
        printf("  layer order:");
        for (int step = 0; step < b->n_layers; step++) {
            int pick = -1;
            for (int k = b->n_layers - 1; k >= 0 && pick < 0; k--) {
                bool ready = !done[k];
                for (int d = 0; ready && d < b->layers[k].n_deps; d++) ready = done[b->layers[k].deps[d]];
                if (ready) pick = k;
            }
            if (pick < 0) return 1;
            done[pick] = true;
            printf(" %d", pick);
            for (uint32_t l = 0; l < b->layers[pick].n_launches; l++) order[n++] = (int)(b->layers[pick].first_launch + l);
        }
        printf("\n");
        free(done);
    }
    for (int li = 0; li < b->n_launches; li++) {
        const kiln_bundle_launch *L = &b->launches[order[li]];
        char sym[512];
        snprintf(sym, sizeof sym, "emu_tramp_%s", b->kernels[L->kernel].function);
        tramp_fn t = (tramp_fn)(uintptr_t)dlsym(so, sym);
        if (!t) {
            fprintf(stderr, "emu_run: no %s in the module\n", sym);
            return 1;
        }
        uint64_t vals[KILN_BUNDLE_MAX_ARGS];
        void *params[KILN_BUNDLE_MAX_ARGS];
        for (uint32_t a = 0; a < L->n_args; a++) {
            const kiln_bundle_arg *A = &L->args[a];
            void *p = NULL;
            switch (A->kind) {
            case KILN_ARG_ARENA: p = arena + A->value; break;
            case KILN_ARG_WEIGHT: p = weights + A->value; break;
            case KILN_ARG_INPUT: p = ins[A->value]->data; break;
            case KILN_ARG_OUTPUT: p = outs[A->value]->data; break;
            case KILN_ARG_SCALAR: vals[a] = A->value; break;
            case KILN_ARG_BYTES: break;
            }
            if (A->kind <= KILN_ARG_OUTPUT) memcpy(&vals[a], &p, sizeof p);
            params[a] = A->kind == KILN_ARG_BYTES ? (void *)(b->const_pool + A->value) : (void *)&vals[a];
        }
        if (launch(t, params, L->grid, L->block)) return 1;
    }
    if (kiln_graph_run_cpu(g, ins, n_in, cpu, n_out)) {
        fprintf(stderr, "emu_run: %s\n", kiln_last_error());
        return 1;
    }
    int failed = 0;
    for (int o = 0; o < n_out; o++) {
        double max_err = 0;
        int64_t bad = 0, first = -1;
        for (int64_t k = 0; k < cpu[o]->numel; k++) {
            double e = kiln_tensor_get(cpu[o], k), v = kiln_tensor_get(outs[o], k), d = fabs(v - e); /* any dtype */
            bool ok = (isnan(e) && isnan(v)) || d <= atol + rtol * fabs(e);
            if (!ok && first < 0) first = k;
            bad += !ok;
            if (d > max_err || isnan(d)) max_err = isnan(d) ? INFINITY : d;
        }
        printf("  %s: %lld elements, max abs error %.3g, %lld bad%s\n", kiln_graph_output_name(g, o),
               (long long)cpu[o]->numel, max_err, (long long)bad, bad ? "" : " PASS");
        if (bad)
            printf("    first bad element %lld: got %g, want %g\n", (long long)first, kiln_tensor_get(outs[o], first),
                   kiln_tensor_get(cpu[o], first));
        failed |= bad > 0;
    }
    printf("%s\n", failed ? "FAIL" : "PASS");
    for (int i = 0; i < n_in; i++) kiln_tensor_free(ins[i]);
    for (int i = 0; i < n_out; i++) kiln_tensor_free(outs[i]), kiln_tensor_free(cpu[i]);
    free(arena);
    free(weights);
    free(order);
    kiln_bundle_free(b);
    kiln_graph_free(g);
    void (*release)(void) = (void (*)(void))(uintptr_t)dlsym(so, "emu_release");
    if (release) release();
    dlclose(so);
    return failed;
}
