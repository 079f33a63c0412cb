// emu_sched.cpp — runs a kernel's blocks one after the other on the CPU, the threads of a block
// as coroutines (ucontext). A thread runs until it waits at a barrier or ends; a warp runs until
// all its lanes wait at a barrier wider than the warp (or end) before the next warp (warp 0 first,
// or with KILN_EMU_WARPS_REVERSED set in the environment the last warp first). Barriers:
//   __syncthreads    every thread of the block that has not ended;
//   warp, warpgroup  the exchanges of shuffles, ldmatrix, mma.sync (a warp's threads that have not
//                    ended) and wgmma (a warpgroup's), so that a kernel whose warps or warpgroups
//                    take different paths (warp specialization) runs as on the GPU;
//   named (1..15)    keys with an explicit count, for PTX bar.sync / bar.arrive id, count (the
//                    warp-specialized stem of commit fe9be73 used them; none of today's kernels).
// A launch whose live threads all wait at barriers that cannot open fails with a message.
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include "cuda_fp16.h"

struct emu_dim3 {
    unsigned x, y, z;
};
extern "C" {
emu_dim3 blockIdx, threadIdx, blockDim, gridDim;
}

static ucontext_t sched_ctx;
static ucontext_t *ctxs;
static char *stacks;
static int *state; /* 0 ready, 1 waiting at barrier waitkey[t], 2 done */
static int *waitkey;
static int cur, cap, nthreads;
static unsigned long long *slots; /* one 64-bit shuffle slot per thread */
static void (*tramp_fn)(void **);
static void **tramp_params;
static const size_t STACK = 256 * 1024;
static bool reversed; /* warps last to first (KILN_EMU_WARPS_REVERSED) */

/* barrier keys: 0 the block, 1..15 named, KEY_WARP + warp, then KEY_WARP + warps + warpgroup */
enum { KEY_NAMED = 16, KEY_WARP = 16 };
static int *arrived; /* per key */
static int *live;    /* per key: the threads of the block, warp or warpgroup that have not ended */
static int nkeys;

/* the threads a key's barrier waits for (named barriers: their count) */
static int needed(int key, int count) { return key > 0 && key < KEY_NAMED ? count : live[key]; }
static int named_count[KEY_NAMED];
static void open_if_full(int key) {
    if (arrived[key] == 0 || arrived[key] < needed(key, named_count[key % KEY_NAMED])) return;
    arrived[key] = 0;
    for (int t = 0; t < nthreads; t++)
        if (state[t] == 1 && waitkey[t] == key) state[t] = 0;
}
static void wait_at(int key, int count, bool wait) {
    if (key < KEY_NAMED) named_count[key] = count;
    arrived[key]++;
    if (wait) state[cur] = 1, waitkey[cur] = key;
    open_if_full(key);
    if (wait && state[cur] == 1) swapcontext(&ctxs[cur], &sched_ctx);
}
static int warp_key(void) { return KEY_WARP + cur / 32; }
static int wg_key(void) { return KEY_WARP + (nthreads + 31) / 32 + cur / 128; }
static void warp_sync(void) { wait_at(warp_key(), 32, true); }

extern "C" void __syncthreads(void) { wait_at(0, 0, true); }
extern "C" void emu_bar_sync(int id, int count) { wait_at(id & 15, count, true); }
extern "C" void emu_bar_arrive(int id, int count) { wait_at(id & 15, count, false); }

static unsigned long long shfl_bits(unsigned long long v, int off) {
    int t = cur;
    slots[t] = v;
    warp_sync();
    unsigned long long r = slots[t ^ off];
    warp_sync();
    return r;
}

// ------------------------------------------------------------------- tensor cores --
// kernels/mma.cuh's warp_mma: every thread of the block calls it at the same point (the mma
// loop is uniform), with its lane's fragments of MT A tiles, NT B tiles and MT x NT
// accumulators. The lanes publish pointers to their registers (their coroutine stacks stay
// alive while they wait), meet at a barrier, each lane rebuilds the warp's A and B matrices
// from the PTX fragment layouts and updates its own accumulators, and a second barrier keeps
// the registers alive until every lane has read them.
static const uint32_t **frag_a, **frag_b;
static int frag_cap;

static float tf32_value(uint32_t bits) { /* the tensor core reads the top 19 bits */
    bits &= 0xffffe000u;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static float f16_value(uint32_t reg, int high) {
    __half h;
    h.x = (uint16_t)(high ? reg >> 16 : reg & 0xffff);
    return __half2float(h);
}

// cvt.rna.tf32.f32: round to 10 mantissa bits, to nearest, ties away from zero.
extern "C" uint32_t emu_tf32_rna(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return u; /* inf, NaN */
    return (u + 0x1000u) & 0xffffe000u;
}

// A(row, k) of the lane fragments `a` (one mma tile), B(k, col) of `b`.
static float frag_a_at(int prec, const uint32_t *const *lanes, int tile, int row, int k) {
    if (prec == 0) { /* tf32 m16n8k8: a0 (g, t) a1 (g+8, t) a2 (g, t+4) a3 (g+8, t+4) */
        int lane = (row % 8) * 4 + k % 4, reg = (row >= 8) + 2 * (k >= 4);
        return tf32_value(lanes[lane][tile * 4 + reg]);
    }
    /* f16 m16n8k16: a0 (g, 2t..2t+1) a1 (g+8, ..) a2 (g, 2t+8..) a3 (g+8, 2t+8..) */
    int lane = (row % 8) * 4 + (k % 8) / 2, reg = (row >= 8) + 2 * (k >= 8);
    return f16_value(lanes[lane][tile * 4 + reg], k & 1);
}
static float frag_b_at(int prec, const uint32_t *const *lanes, int tile, int k, int col) {
    if (prec == 0) { /* b0 (k t, n g) b1 (k t+4, n g) */
        int lane = col * 4 + k % 4, reg = k >= 4;
        return tf32_value(lanes[lane][tile * 2 + reg]);
    }
    /* b0 (k 2t..2t+1, n g) b1 (k 2t+8..2t+9, n g) */
    int lane = col * 4 + (k % 8) / 2, reg = k >= 8;
    return f16_value(lanes[lane][tile * 2 + reg], k & 1);
}

extern "C" void emu_warp_mma(int prec, int mt, int nt, float *acc, const uint32_t *a, const uint32_t *b) {
    if (cur >= frag_cap) { /* cannot happen: emu_launch sizes the tables */
        fprintf(stderr, "emu_warp_mma: thread %d out of range\n", cur);
        abort();
    }
    const int t = cur, lane = t % 32, ks = prec == 0 ? 8 : 16;
    frag_a[t] = a;
    frag_b[t] = b;
    warp_sync();
    const uint32_t *const *wa = frag_a + (t - lane), *const *wb = frag_b + (t - lane);
    const int g = lane / 4, q = lane % 4;
    for (int i = 0; i < mt; i++)
        for (int j = 0; j < nt; j++)
            for (int r = 0; r < 4; r++) { /* c0 (g, 2t) c1 (g, 2t+1) c2 (g+8, 2t) c3 (g+8, 2t+1) */
                int row = g + (r >= 2 ? 8 : 0), col = 2 * q + (r & 1);
                float d = acc[(i * nt + j) * 4 + r];
                for (int k = 0; k < ks; k++) d += frag_a_at(prec, wa, i, row, k) * frag_b_at(prec, wb, j, k, col);
                acc[(i * nt + j) * 4 + r] = d;
            }
    warp_sync();
}

// kernels/conv_wgmma.cuh's emulated wgmma (conv_pool_wg_f16): a descriptor is an index into a
// ring of (shared address, leading byte offset, stride byte offset). wgmma_rs_f16 is asynchronous as
// on the GPU: a lane records the operation (its A fragment copied, the accumulator pointer, the
// descriptor) and meets the other lanes of its warp (PTX: .sync waits for the warp, not the
// warpgroup); wgmma.commit_group closes a group, and wgmma.wait_group N carries out, in order, the
// lane's operations of every group but the N newest: only then are its accumulators written
// (d[4 j + r] = D[16 w + g + 8 (r / 2)][8 j + 2 t + r % 2], warp w's m16 rows from its lanes' A
// fragments in the m16n8k16 A layout) and is B read from shared memory, as the PTX ISA's no-swizzle
// K-major canonical layout: core matrix (n / 8, k / 8) at start + (n / 8) * SBO + (k / 8) * LBO, row
// n % 8 at 16 (n % 8) bytes, element k % 8 at 2 (k % 8). So a kernel that reads accumulators before
// its wait, or lets one warp overwrite planes another warp's wgmmas have not yet waited for, gets
// wrong results here (the emulator runs each warp up to its next barrier before the next warp).
struct emu_desc {
    const unsigned char *p;
    unsigned lbo, sbo;
};
static emu_desc desc_ring[1 << 16];
static unsigned desc_next;

extern "C" unsigned long long emu_wgmma_desc(const void *p, unsigned lbo, unsigned sbo) {
    const unsigned i = desc_next++ & 0xffffu;
    desc_ring[i] = emu_desc{(const unsigned char *)p, lbo, sbo};
    return i;
}

enum { WG_RING = 64 }; /* operations a lane may have in flight */
struct emu_wg_op {
    unsigned seq, group;
    int n, sd;
    float *d;
    uint32_t a[4];
    emu_desc de;
};
static emu_wg_op *wg_ops;                          /* [thread][WG_RING] */
static unsigned *wg_issued, *wg_done, *wg_commits; /* per thread */

extern "C" void emu_wgmma_rs_f16(int n, int sd, float *d, const uint32_t *a, unsigned long long db) {
    const int t = cur;
    const unsigned seq = wg_issued[t]++;
    if (seq - wg_done[t] >= WG_RING) {
        fprintf(stderr, "emu: thread %d has more than %d wgmmas in flight (no wgmma.wait_group?)\n", t, (int)WG_RING);
        abort();
    }
    emu_wg_op *op = &wg_ops[(size_t)t * WG_RING + seq % WG_RING];
    *op = emu_wg_op{seq, wg_commits[t], n, sd, d, {a[0], a[1], a[2], a[3]}, desc_ring[db & 0xffffu]};
    warp_sync();
}

extern "C" void emu_wgmma_commit(void) { wg_commits[cur]++; }

static void wgmma_run(int t, const emu_wg_op &op) {
    const int lane = t % 32, w = (t / 32) % 4, g = lane / 4, q = lane % 4;
    (void)w;
    for (int j = 0; j < op.n / 8; j++)
        for (int r = 0; r < 4; r++) {
            const int row = g + 8 * (r / 2), col = 8 * j + 2 * q + (r & 1); /* row within the warp's 16 */
            float s = op.sd ? op.d[4 * j + r] : 0.0f;
            for (int k = 0; k < 16; k++) {
                const int owner = (t & ~31) + (row % 8) * 4 + (k % 8) / 2, reg = (row >= 8) + 2 * (k >= 8);
                const emu_wg_op &oo = wg_ops[(size_t)owner * WG_RING + op.seq % WG_RING];
                if (oo.seq != op.seq) {
                    fprintf(stderr, "emu: the lanes of warp %d issued different wgmma sequences\n", t / 32);
                    abort();
                }
                uint16_t bh;
                memcpy(&bh, op.de.p + (col / 8) * op.de.sbo + (k / 8) * op.de.lbo + (col % 8) * 16 + (k % 8) * 2, 2);
                s += f16_value(oo.a[reg], k & 1) * f16_value(bh, 0);
            }
            op.d[4 * j + r] = s;
        }
}

extern "C" void emu_wgmma_wait(int n) {
    const int t = cur;
    while (wg_done[t] != wg_issued[t]) {
        const emu_wg_op &op = wg_ops[(size_t)t * WG_RING + wg_done[t] % WG_RING];
        if (op.group + (unsigned)n >= wg_commits[t]) break; /* among the n newest groups (or not committed) */
        wgmma_run(t, op);
        wg_done[t]++;
    }
}

// ---------------------------------------------------------- cp.async, ldmatrix --
// kernels/conv_nhwc.cuh: cp.async.cg 16 bytes with src-size 0 or 16 (a synchronous copy here;
// commit/wait are no-ops), and ldmatrix.m8n8.x{1,2,4}[.trans].b16 as a warp exchange: every lane
// publishes its row address, meets the others at a barrier and takes the words the PTX ISA's
// layout gives it: matrix i's row addresses come from lanes 8i..8i+7; without .trans lane l
// receives row l / 4, halves 2 (l % 4) and 2 (l % 4) + 1; with .trans it receives column l / 4 of
// rows 2 (l % 4) and 2 (l % 4) + 1 (the first in the low 16 bits).
static const uint16_t **ldm_rows;

extern "C" void emu_cp_async16(void *dst, const void *src, int src_bytes) {
    memset(dst, 0, 16);
    if (src_bytes > 0) memcpy(dst, src, (size_t)src_bytes);
}

extern "C" void emu_cp_async8(void *dst, const void *src, int src_bytes) { // cp.async.ca 8 bytes
    memset(dst, 0, 8);
    if (src_bytes > 0) memcpy(dst, src, (size_t)src_bytes);
}

extern "C" void emu_ldmatrix(int n, int trans, uint32_t *r, const void *row) {
    if (cur >= frag_cap || (n != 1 && n != 2 && n != 4)) {
        fprintf(stderr, "emu_ldmatrix: thread %d, .x%d\n", cur, n);
        abort();
    }
    const int t = cur, lane = t % 32;
    ldm_rows[t] = (const uint16_t *)row;
    warp_sync();
    const uint16_t *const *w = ldm_rows + (t - lane);
    uint32_t out[4];
    for (int i = 0; i < n; i++) {
        uint16_t lo, hi;
        if (!trans) {
            const uint16_t *p = w[i * 8 + lane / 4];
            lo = p[2 * (lane % 4)], hi = p[2 * (lane % 4) + 1];
        } else {
            lo = w[i * 8 + 2 * (lane % 4)][lane / 4], hi = w[i * 8 + 2 * (lane % 4) + 1][lane / 4];
        }
        out[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
    warp_sync(); /* every lane has read the rows before anyone writes its registers */
    for (int i = 0; i < n; i++) r[i] = out[i];
}

extern "C" float emu_shfl_xor(float v, int off) {
    unsigned u;
    memcpy(&u, &v, 4);
    unsigned r = (unsigned)shfl_bits(u, off);
    float f;
    memcpy(&f, &r, 4);
    return f;
}

/* __shfl_sync: the bits of lane src (mod 32) of the caller's warp (32-bit integers: packed fp16 pairs) */
extern "C" unsigned emu_shfl_idx_u32(unsigned v, int src) {
    const int t = cur;
    slots[t] = v;
    warp_sync();
    const unsigned r = (unsigned)slots[(t & ~31) | (src & 31)];
    warp_sync();
    return r;
}
extern "C" float emu_shfl_idx(float v, int src) {
    unsigned u;
    memcpy(&u, &v, 4);
    u = emu_shfl_idx_u32(u, src);
    memcpy(&v, &u, 4);
    return v;
}

/* 64-bit shuffles (double, long long: reductions of f64 and integer tensors) */
extern "C" unsigned long long emu_shfl_xor64(unsigned long long v, int off) { return shfl_bits(v, off); }

static void entry(void) {
    tramp_fn(tramp_params);
    state[cur] = 2;
    /* barriers that waited for this thread may open now */
    const int keys[3] = {0, warp_key(), wg_key()};
    for (int k = 0; k < 3; k++) live[keys[k]]--;
    for (int k = 0; k < 3; k++) open_if_full(keys[k]);
}

extern "C" int emu_launch(void (*tramp)(void **), void **params, const unsigned grid[3], const unsigned block[3]) {
    int n = (int)(block[0] * block[1] * block[2]);
    if (n > cap) {
        free(ctxs), free(stacks), free(state), free(slots), free(frag_a), free(frag_b), free(ldm_rows);
        free(waitkey), free(arrived), free(live), free(wg_ops), free(wg_issued), free(wg_done), free(wg_commits);
        ctxs = (ucontext_t *)calloc((size_t)n, sizeof *ctxs);
        wg_ops = (emu_wg_op *)calloc((size_t)n * WG_RING, sizeof *wg_ops);
        wg_issued = (unsigned *)calloc((size_t)n, sizeof *wg_issued);
        wg_done = (unsigned *)calloc((size_t)n, sizeof *wg_done);
        wg_commits = (unsigned *)calloc((size_t)n, sizeof *wg_commits);
        waitkey = (int *)calloc((size_t)n, sizeof *waitkey);
        nkeys = KEY_WARP + (n + 31) / 32 + (n + 127) / 128;
        arrived = (int *)calloc((size_t)nkeys, sizeof *arrived);
        live = (int *)calloc((size_t)nkeys, sizeof *live);
        frag_a = (const uint32_t **)calloc((size_t)n + 32, sizeof *frag_a);
        frag_b = (const uint32_t **)calloc((size_t)n + 32, sizeof *frag_b);
        ldm_rows = (const uint16_t **)calloc((size_t)n + 32, sizeof *ldm_rows);
        frag_cap = n;
        stacks = (char *)malloc((size_t)n * STACK);
        state = (int *)calloc((size_t)n, sizeof *state);
        slots = (unsigned long long *)calloc((size_t)n, sizeof *slots);
        if (!ctxs || !stacks || !state || !slots || !frag_a || !frag_b || !ldm_rows || !waitkey || !arrived || !live ||
            !wg_ops || !wg_issued || !wg_done || !wg_commits)
            return -1;
        cap = n;
    }
    /* KILN_EMU_WARPS_REVERSED: the last warp first (a race between warps in the other direction) */
    reversed = getenv("KILN_EMU_WARPS_REVERSED") != NULL;
    tramp_fn = tramp;
    tramp_params = params;
    nthreads = n;
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
                memset(arrived, 0, (size_t)nkeys * sizeof *arrived);
                memset(wg_issued, 0, (size_t)n * sizeof *wg_issued);
                memset(wg_done, 0, (size_t)n * sizeof *wg_done);
                memset(wg_commits, 0, (size_t)n * sizeof *wg_commits);
                memset(live, 0, (size_t)nkeys * sizeof *live);
                live[0] = n;
                for (int t = 0; t < n; t++) live[KEY_WARP + t / 32]++, live[KEY_WARP + (n + 31) / 32 + t / 128]++;
                for (;;) {
                    int done = 0, ran = 0;
                    /* warp by warp: a warp's lanes run until each waits at a block, warpgroup or named
                     * barrier (or ends) before the next warp starts, so warps drift apart between block
                     * barriers as far as the kernel lets them (a missing barrier shows) */
                    for (int wi = 0; wi < (n + 31) / 32; wi++)
                        for (bool again = true; again;) {
                            const int w0 = 32 * (reversed ? (n + 31) / 32 - 1 - wi : wi);
                            again = false;
                            for (int t = w0; t < n && t < w0 + 32; t++)
                                if (state[t] == 0) {
                                    cur = t;
                                    threadIdx = {(unsigned)t % block[0], ((unsigned)t / block[0]) % block[1],
                                                 (unsigned)t / (block[0] * block[1])};
                                    swapcontext(&sched_ctx, &ctxs[t]);
                                    ran++, again = true;
                                }
                        }
                    for (int t = 0; t < n; t++) done += state[t] == 2;
                    if (done == n) break;
                    if (!ran) {
                        fprintf(stderr, "emu: block (%u,%u,%u): every live thread waits at a barrier that cannot open "
                                        "(thread 0 waits at key %d)\n", bx, by, bz, state[0] == 1 ? waitkey[0] : -1);
                        return -1;
                    }
                }
            }
    return 0;
}

// Frees the scheduler's buffers (emu_run calls it before dlclose, so that leak checkers see
// nothing left).
extern "C" void emu_release(void) {
    free(ctxs), free(stacks), free(state), free(slots), free(frag_a), free(frag_b), free(ldm_rows);
    free(waitkey), free(arrived), free(live), free(wg_ops), free(wg_issued), free(wg_done), free(wg_commits);
    ctxs = NULL, stacks = NULL, state = NULL, slots = NULL, frag_a = frag_b = NULL, ldm_rows = NULL;
    waitkey = arrived = live = NULL;
    wg_ops = NULL, wg_issued = wg_done = wg_commits = NULL;
    cap = frag_cap = 0;
}
