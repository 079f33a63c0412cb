// emu_sched.cpp — runs a kernel's blocks one after the other on the CPU, the threads of a block
// as coroutines (ucontext): a thread runs until __syncthreads (or a warp shuffle) or its end,
// and the barrier opens when every thread of the block got there.
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

struct emu_dim3 {
    unsigned x, y, z;
};
extern "C" {
emu_dim3 blockIdx, threadIdx, blockDim, gridDim;
}

static ucontext_t sched_ctx;
static ucontext_t *ctxs;
static char *stacks;
static int *state; /* 0 ready, 1 at the barrier, 2 done */
static int cur, cap;
static unsigned long long *slots; /* one 64-bit shuffle slot per thread */
static void (*tramp_fn)(void **);
static void **tramp_params;
static const size_t STACK = 256 * 1024;

extern "C" void __syncthreads(void) {
    state[cur] = 1;
    swapcontext(&ctxs[cur], &sched_ctx);
}

static unsigned long long shfl_bits(unsigned long long v, int off) {
    int t = cur;
    slots[t] = v;
    __syncthreads();
    unsigned long long r = slots[t ^ off];
    __syncthreads();
    return r;
}

extern "C" float emu_shfl_xor(float v, int off) {
    unsigned u;
    memcpy(&u, &v, 4);
    unsigned r = (unsigned)shfl_bits(u, off);
    float f;
    memcpy(&f, &r, 4);
    return f;
}

/* 64-bit shuffles (double, long long: reductions of f64 and integer tensors) */
extern "C" unsigned long long emu_shfl_xor64(unsigned long long v, int off) { return shfl_bits(v, off); }

static void entry(void) {
    tramp_fn(tramp_params);
    state[cur] = 2;
}

extern "C" int emu_launch(void (*tramp)(void **), void **params, const unsigned grid[3], const unsigned block[3]) {
    int n = (int)(block[0] * block[1] * block[2]);
    if (n > cap) {
        free(ctxs), free(stacks), free(state), free(slots);
        ctxs = (ucontext_t *)calloc((size_t)n, sizeof *ctxs);
        stacks = (char *)malloc((size_t)n * STACK);
        state = (int *)calloc((size_t)n, sizeof *state);
        slots = (unsigned long long *)calloc((size_t)n, sizeof *slots);
        if (!ctxs || !stacks || !state || !slots) return -1;
        cap = n;
    }
    tramp_fn = tramp;
    tramp_params = params;
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    for (unsigned bz = 0; bz < grid[2]; bz++)
        for (unsigned by = 0; by < grid[1]; by++)
            for (unsigned bx = 0; bx < grid[0]; bx++) {
                blockIdx = {bx, by, bz};
                for (int t = 0; t < n; t++) {
                    getcontext(&ctxs[t]);
                    ctxs[t].uc_stack.ss_sp = stacks + (size_t)t * STACK;
                    ctxs[t].uc_stack.ss_size = STACK;
                    ctxs[t].uc_link = &sched_ctx;
                    makecontext(&ctxs[t], entry, 0);
                    state[t] = 0;
                }
                for (;;) {
                    int done = 0;
                    for (int t = 0; t < n; t++) {
                        if (state[t] == 0) {
                            cur = t;
                            threadIdx = {(unsigned)t % block[0], ((unsigned)t / block[0]) % block[1],
                                         (unsigned)t / (block[0] * block[1])};
                            swapcontext(&sched_ctx, &ctxs[t]);
                        }
                        done += state[t] == 2;
                    }
                    if (done == n) break;
                    for (int t = 0; t < n; t++)
                        if (state[t] == 1) state[t] = 0;
                }
            }
    return 0;
}

// Frees the scheduler's buffers (emu_run calls it before dlclose, so that leak checkers see
// nothing left).
extern "C" void emu_release(void) {
    free(ctxs), free(stacks), free(state), free(slots);
    ctxs = NULL, stacks = NULL, state = NULL, slots = NULL;
    cap = 0;
}
