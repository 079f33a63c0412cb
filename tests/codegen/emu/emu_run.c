/* emu_run.c — runs a bundle's launch plan on the CPU through kiln's generated CUDA compiled as
 * host C++ (emu_shim.h, emu_sched.cpp) and compares every output with the CPU evaluator on
 * seeded random inputs. Outputs and the arena are poisoned (0xff bytes: NaN) first, so
 * unwritten elements fail. This checks codegen's kernels and launch plan (arguments, arena
 * offsets, aliasing, launch order) without a GPU.
 * KILN_EMU_ORDER=reverse runs the bundle's layers in another order that its dependencies allow
 * (always the latest ready layer first): a dependency the layer table misses shows up as wrong
 * outputs, as it would as a race between streams on a GPU.
 * Inputs of every dtype: floats uniform in [-1, 1), signed integers in [-8, 8], unsigned ones in
 * [0, 16] (zero divisors included), bool 0/1. Integer and bool outputs must match exactly;
 * f16/bf16 outputs get at least one unit in the last place of their dtype as rtol.
 * usage: emu_run MODEL.onnx M.kiln MODULE.so [RTOL ATOL [REL_L2]]; exit 0 PASS, 1 FAIL.
 * With REL_L2 (reduced precision: tf32, fp16) a float output passes when its relative L2 error
 * ||got - want|| / ||want|| is at most REL_L2 and it has no NaN where the CPU has none; the
 * elements out of rtol/atol are still counted and printed (integer outputs stay exact). */
#include "codegen/codegen.h"
#include "runtime/bundle.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_args.h"

typedef void (*tramp_fn)(void **);
typedef int (*launch_fn)(tramp_fn, void **, const unsigned *, const unsigned *);

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float rnd(void) { /* uniform [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill_random(kiln_tensor *t) {
    for (int64_t k = 0; k < t->numel; k++) {
        double r = rnd();
        if (kiln_dtype_is_float(t->dtype)) kiln_tensor_set(t, k, r);
        else if (t->dtype == KILN_BOOL) kiln_tensor_set(t, k, r > 0);
        else if (kiln_dtype_is_signed(t->dtype)) kiln_tensor_set(t, k, floor(r * 8.5 + 0.5));
        else kiln_tensor_set(t, k, floor((r + 1.0) * 8.5));
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: emu_run MODEL.onnx M.kiln MODULE.so [RTOL ATOL [REL_L2]]\n");
        return 2;
    }
    double rtol = argc > 4 ? atof(argv[4]) : 1e-3, atol = argc > 5 ? atof(argv[5]) : 1e-4;
    double rel_l2_max = argc > 6 ? atof(argv[6]) : -1.0;
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
            fill_random(t);
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
    void *in_ptrs[64] = {0}, *out_ptrs[64] = {0};
    for (int i = 0; i < n_in; i++) in_ptrs[i] = ins[i]->data;
    for (int i = 0; i < n_out; i++) out_ptrs[i] = outs[i]->data;
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
        emu_launch_params(b, L, arena, weights, in_ptrs, out_ptrs, vals, params);
        if (launch(t, params, L->grid, L->block)) return 1;
    }
    if (kiln_graph_run_cpu(g, ins, n_in, cpu, n_out)) {
        fprintf(stderr, "emu_run: %s\n", kiln_last_error());
        return 1;
    }
    int failed = 0;
    for (int o = 0; o < n_out; o++) {
        const kiln_tensor *ct = cpu[o], *gt = outs[o];
        if (ct->dtype != gt->dtype || ct->numel != gt->numel) {
            printf("  %s: the bundle's output is %s[%lld], the CPU's %s[%lld]\n", kiln_graph_output_name(g, o),
                   kiln_dtype_name(gt->dtype), (long long)gt->numel, kiln_dtype_name(ct->dtype), (long long)ct->numel);
            failed = 1;
            continue;
        }
        bool fl = kiln_dtype_is_float(ct->dtype);
        double rt = rtol, at = atol;
        if (!fl) rt = at = 0; /* integers and bool: exact */
        if (ct->dtype == KILN_F16 && rt < 1.0 / 1024) rt = 1.0 / 1024;
        if (ct->dtype == KILN_BF16 && rt < 1.0 / 128) rt = 1.0 / 128;
        double max_err = 0, num = 0, den = 0;
        int64_t bad = 0, first = -1, nan_bad = 0;
        for (int64_t k = 0; k < ct->numel; k++) {
            bool ok;
            double e, v, d;
            if (fl) {
                e = kiln_tensor_get(ct, k), v = kiln_tensor_get(gt, k), d = fabs(v - e);
                ok = (isnan(e) && isnan(v)) || d <= at + rt * fabs(e);
                nan_bad += isnan(v) && !isnan(e);
                if (!isnan(e) && !isnan(v)) num += (v - e) * (v - e), den += e * e;
            } else {
                int64_t ei = kiln_tensor_get_i64(ct, k), vi = kiln_tensor_get_i64(gt, k);
                ok = ei == vi;
                e = (double)ei, v = (double)vi, d = fabs(v - e);
            }
            if (!ok && first < 0) first = k;
            bad += !ok;
            if (d > max_err || isnan(d)) max_err = isnan(d) ? INFINITY : d;
        }
        double rel = den > 0 ? sqrt(num / den) : sqrt(num);
        bool by_l2 = fl && rel_l2_max >= 0;
        bool fail = by_l2 ? (nan_bad > 0 || !(rel <= rel_l2_max)) : bad > 0;
        printf("  %s (%s): %lld elements, max abs error %.3g, rel L2 %.3g, %lld out of rtol/atol%s%s\n",
               kiln_graph_output_name(g, o), kiln_dtype_name(ct->dtype), (long long)ct->numel, max_err, rel,
               (long long)bad, by_l2 ? " (judged by rel L2)" : "", fail ? "" : " PASS");
        if (bad)
            printf("    first bad element %lld: got %.9g, want %.9g\n", (long long)first, kiln_tensor_get(gt, first),
                   kiln_tensor_get(ct, first));
        if (fail && by_l2)
            printf("    rel L2 %.3g > %.3g or %lld NaN where the CPU has a number\n", rel, rel_l2_max, (long long)nan_bad);
        failed |= fail;
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
