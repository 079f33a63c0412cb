/* emu_args.h — one launch's kernel parameters for the CPU emulator (emu_run.c, conv_harness.h):
 * pointers into the host arena, weights, inputs (ins[i]) and outputs (outs[i]), scalars by value,
 * byte arguments from the bundle's constant pool, zeros for tensor maps. vals and params hold KILN_BUNDLE_MAX_ARGS. */
#pragma once

#include <stdint.h>
#include <string.h>

static inline void emu_launch_params(const kiln_bundle *b, const kiln_bundle_launch *L, uint8_t *arena, uint8_t *weights,
                                     void *const *ins, void *const *outs, uint64_t *vals, void **params) {
    for (uint32_t a = 0; a < L->n_args; a++) {
        const kiln_bundle_arg *A = &L->args[a];
        void *p = NULL;
        switch (A->kind) {
        case KILN_ARG_ARENA: p = arena + A->value; break;
        case KILN_ARG_WEIGHT: p = weights + A->value; break;
        case KILN_ARG_INPUT: p = ins[A->value]; break;
        case KILN_ARG_OUTPUT: p = outs[A->value]; break;
        case KILN_ARG_SCALAR: vals[a] = A->value; break;
        case KILN_ARG_BYTES: break;
        case KILN_ARG_TMAP: break; /* the emulator runs kernels' non-TMA fallback: zeros */
        case KILN_ARG_SYNC: { /* (read only by stream-K's wgmma path: zeros) */
            static _Alignas(64) uint8_t sync_zeros[KILN_SYNC_REGION_BYTES];
            p = sync_zeros;
            break;
        }
        }
        if (A->kind <= KILN_ARG_OUTPUT || A->kind == KILN_ARG_SYNC) memcpy(&vals[a], &p, sizeof p);
        static _Alignas(64) uint8_t no_tmap[128];
        params[a] = A->kind == KILN_ARG_BYTES  ? (void *)(b->const_pool + A->value)
                    : A->kind == KILN_ARG_TMAP ? (void *)no_tmap
                                               : (void *)&vals[a];
    }
}
