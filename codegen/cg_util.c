/*
 * cg_util.c — the string buffer, kernel arguments, kernel dedupe and launch records that every
 * emitter uses (cg_internal.h).
 */
#include "codegen/cg_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- string buffer -- */


void kiln_cg_vprintf(sbuf *b, const char *fmt, va_list ap) {
    if (b->oom) return;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void kiln_cg_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kiln_cg_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    kiln_cg_vprintf(b, fmt, ap);
    va_end(ap);
}

/* A float as a CUDA literal that reads back exactly ("1.0f", "0.100000001f", infinities). */
const char *kiln_cg_flit(char *buf, size_t len, float x) {
    if (isnan(x)) snprintf(buf, len, "__int_as_float(0x7fc00000)");
    else if (isinf(x)) snprintf(buf, len, "__int_as_float(%s)", x > 0 ? "0x7f800000" : "(int)0xff800000");
    else {
        char t[48];
        snprintf(t, sizeof t, "%.9g", (double)x);
        bool has_point = strpbrk(t, ".e") != NULL;
        snprintf(buf, len, "%s%sf", t, has_point ? "" : ".0");
    }
    return buf;
}

/* ----------------------------------------------------------------- context -- */


int kiln_cg_io_index(const int *ids, int n, int v) {
    for (int i = 0; i < n; i++)
        if (ids[i] == v) return i;
    return -1;
}

kiln_status kiln_cg_weight_arg(cg *c, int v, kiln_bundle_arg *a) {
    const kiln_value *val = &c->g->values[v];
    if (c->weight[v] < 0) {
        uint64_t off;
        const kiln_tensor *t = val->data;
        kiln_status st = kiln_bundle_add_weight(c->b, val->name && *val->name ? val->name : "const", t->dtype,
                                                t->rank, t->dims, t->data, t->nbytes, &off);
        if (st) return st;
        c->weight[v] = (int64_t)off;
    }
    *a = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, (uint64_t)c->weight[v]};
    return KILN_OK;
}

/* Where value v's bytes are at run time (see the header comment). */
kiln_status kiln_cg_value_arg(cg *c, int v, kiln_bundle_arg *a) {
    const kiln_graph *g = c->g;
    for (int i = 0; i < c->n_ovr; i++)
        if (c->ovr_v[i] == v) {
            *a = c->ovr_arg[i];
            return KILN_OK;
        }
    int r = v;
    for (int steps = 0; steps <= g->n_values; steps++) {
        int k;
        if ((k = kiln_cg_io_index(g->outputs, g->n_outputs, r)) >= 0) {
            *a = (kiln_bundle_arg){KILN_ARG_OUTPUT, 8, (uint64_t)k};
            return KILN_OK;
        }
        if ((k = kiln_cg_io_index(g->inputs, g->n_inputs, r)) >= 0) {
            *a = (kiln_bundle_arg){KILN_ARG_INPUT, 8, (uint64_t)k};
            return KILN_OK;
        }
        if (g->values[r].data) return kiln_cg_weight_arg(c, r, a);
        if (g->values[r].alias_of < 0) break;
        r = g->values[r].alias_of;
    }
    if (g->values[r].arena_offset < 0)
        return kiln_errorf(KILN_ERR_INTERNAL, "value '%s' has no place in the memory plan (run plan-memory first)",
                           g->values[v].name);
    *a = (kiln_bundle_arg){KILN_ARG_ARENA, 8, (uint64_t)g->values[r].arena_offset};
    return KILN_OK;
}

const kiln_bundle_arg kiln_cg_null_arg = {KILN_ARG_SCALAR, 8, 0};

kiln_status kiln_cg_bytes_arg(cg *c, const void *data, uint64_t size, kiln_bundle_arg *a) {
    uint64_t off;
    kiln_status st = kiln_bundle_add_const(c->b, data, size, &off);
    if (st) return st;
    *a = (kiln_bundle_arg){KILN_ARG_BYTES, (uint32_t)size, off};
    return KILN_OK;
}

kiln_status kiln_cg_sync_arg(cg *c, kiln_bundle_arg *a) {
    if (c->n_sync >= KILN_SYNC_MAX_REGIONS)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "more than %d kernels with cross-block flags", KILN_SYNC_MAX_REGIONS);
    *a = (kiln_bundle_arg){KILN_ARG_SYNC, 8, (uint64_t)c->n_sync++};
    return KILN_OK;
}

/* A fresh kernel name for the current node: k<N>_<what>. */
bool kiln_cg_has_sm90a(const cg *c) {
    for (int i = 0; i < c->o->n_archs && c->o->archs; i++)
        if (!strcmp(c->o->archs[i], "sm_90a")) return true;
    return false;
}

void kiln_cg_kernel_name(cg *c, const char *what, char *buf, size_t len) {
    snprintf(buf, len, "k%d_%s", c->n_kernels++, what);
    c->kstart = c->src.len;
}

/* Kernels with the same code (same template, tiles and epilogue; shapes are arguments) are
 * emitted once: NVRTC time grows with every instantiation, and ResNet-50's 56 launches need
 * only a handful. The text since kiln_cg_kernel_name() is compared without its first comment line
 * and with its name masked; a repeat is cut from the source and *fn becomes the first one's
 * name. */
/* Every kernel begins with kiln::pdl_enter() (kernels/kiln_common.cuh: the wait of programmatic
 * dependent launch). It is inserted here, after the opening brace of each __global__ definition in
 * the text since kiln_cg_kernel_name(), so that no generator can forget it: a kernel without it
 * would race with its predecessor once the runtime launches it early. The brace is the first one
 * outside parentheses after "__global__" (a signature has none). */
static kiln_status pdl_insert(cg *c) {
    static const char call[] = "\n    kiln::pdl_enter();";
    const char *text = c->src.s + c->kstart;
    int n = 0;
    for (const char *p = strstr(text, "__global__"); p; p = strstr(p + 1, "__global__")) n++;
    if (!n) return KILN_OK;
    size_t cap = strlen(text) + (size_t)n * (sizeof call - 1) + 1, k = 0;
    char *out = malloc(cap);
    if (!out) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (const char *p = text; *p;) {
        const char *g = strstr(p, "__global__");
        if (!g) g = p + strlen(p);
        int depth = 0;
        const char *b = g;
        if (*g) /* (check_codegen asserts that each __global__ is followed by the call at its body's brace) */
            for (b = g; *b && !(*b == '{' && depth == 0); b++) depth += *b == '(' ? 1 : *b == ')' ? -1 : 0;
        if (*g && !*b) {
            free(out);
            return kiln_errorf(KILN_ERR_INTERNAL, "codegen: a __global__ definition without a body");
        }
        const size_t upto = *g ? (size_t)(b + 1 - p) : strlen(p);
        memcpy(out + k, p, upto);
        k += upto;
        if (*g) {
            memcpy(out + k, call, sizeof call - 1);
            k += sizeof call - 1;
        }
        p += upto;
    }
    out[k] = 0;
    c->src.len = c->kstart;
    c->src.s[c->src.len] = 0;
    kiln_cg_printf(&c->src, "%s", out);
    free(out);
    return c->src.oom ? kiln_errorf(KILN_ERR_OOM, "out of memory") : KILN_OK;
}

kiln_status kiln_cg_dedupe_kernel(cg *c, const char **fn) {
    if (c->src.oom || c->kstart > c->src.len) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_status pst = pdl_insert(c);
    if (pst) return pst;
    const char *text = c->src.s + c->kstart;
    const char *body = strchr(text + 1, '\n'); /* after "\n// comment" */
    body = body ? body + 1 : text;
    size_t nl = strlen(*fn), cap = strlen(body) + 1;
    char *key = malloc(cap);
    if (!key) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    size_t k = 0;
    for (const char *p = body; *p;) {
        if (!strncmp(p, *fn, nl)) {
            memcpy(key + k, "@K@", 3);
            k += 3;
            p += nl;
        } else {
            key[k++] = *p++;
        }
    }
    key[k] = 0;
    for (int i = 0; i < c->n_keys; i++)
        if (!strcmp(c->kkeys[i], key)) {
            free(key);
            /* keep the comment line so a reader sees which group runs the shared kernel */
            const char *eol = strchr(text + 1, '\n');
            size_t keep = eol ? (size_t)(eol - text) : 0;
            c->src.len = c->kstart + keep;
            c->src.s[c->src.len] = 0;
            kiln_cg_printf(&c->src, " -> runs %s\n", c->knames[i]);
            *fn = c->knames[i];
            return KILN_OK;
        }
    if (c->n_keys == c->cap_keys) {
        int cap2 = c->cap_keys ? 2 * c->cap_keys : 32;
        char **a = realloc(c->kkeys, sizeof(char *) * (size_t)cap2), **b;
        if (a) c->kkeys = a;
        b = a ? realloc(c->knames, sizeof(char *) * (size_t)cap2) : NULL;
        if (b) c->knames = b;
        size_t *e = b ? realloc(c->kend, sizeof(size_t) * (size_t)cap2) : NULL;
        if (e) c->kend = e;
        if (!a || !b || !e) {
            free(key);
            return kiln_errorf(KILN_ERR_OOM, "out of memory");
        }
        c->cap_keys = cap2;
    }
    char *name = strdup(*fn);
    if (!name) {
        free(key);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    c->kkeys[c->n_keys] = key;
    c->kend[c->n_keys] = c->src.len;
    c->knames[c->n_keys++] = name;
    *fn = name;
    return KILN_OK;
}

kiln_status kiln_cg_launch(cg *c, const char *fn, uint64_t gx, uint64_t gy, uint64_t gz, uint32_t threads,
                          const kiln_bundle_arg *args, uint32_t n_args) {
    return kiln_cg_launch_smem(c, fn, gx, gy, gz, threads, 0, args, n_args);
}

kiln_status kiln_cg_launch_smem(cg *c, const char *fn, uint64_t gx, uint64_t gy, uint64_t gz, uint32_t threads,
                                uint32_t shared_bytes, const kiln_bundle_arg *args, uint32_t n_args) {
    if (gx > 0x7fffffffu || gy > 65535 || gz > 65535)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "grid %llux%llux%llu is too large", (unsigned long long)gx,
                           (unsigned long long)gy, (unsigned long long)gz);
    uint32_t k;
    kiln_status st = kiln_cg_dedupe_kernel(c, &fn);
    if (!st) st = kiln_bundle_add_kernel(c->b, fn, 0, c->group, &k);
    if (st) return st;
    uint32_t grid[3] = {(uint32_t)(gx ? gx : 1), (uint32_t)(gy ? gy : 1), (uint32_t)(gz ? gz : 1)};
    uint32_t block[3] = {threads, 1, 1};
    return kiln_bundle_add_launch(c->b, k, grid, block, shared_bytes, 0, args, n_args);
}

uint64_t kiln_cg_scratch_base(const cg *c) {
    uint64_t a = c->g->arena_bytes > 0 ? (uint64_t)c->g->arena_bytes : 0;
    return (a + 255) & ~(uint64_t)255;
}

/* c->anc: the ancestors of node `self` (producers of its inputs, transitively). */
static kiln_status scratch_ancestors(cg *c, int self) {
    const kiln_graph *g = c->g;
    if (!c->anc && !(c->anc = malloc((size_t)g->n_nodes + 1))) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    memset(c->anc, 0, (size_t)g->n_nodes + 1);
    int *stack = malloc(sizeof(int) * ((size_t)g->n_nodes + 1)), n = 0;
    if (!stack) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    stack[n++] = self;
    while (n) {
        const kiln_node *nd = &g->nodes[stack[--n]];
        for (int i = 0; i < nd->n_inputs; i++) {
            int v = nd->inputs[i], p = v >= 0 ? g->values[v].producer : -1;
            if (p >= 0 && p < g->n_nodes && !c->anc[p]) {
                c->anc[p] = 1;
                stack[n++] = p;
            }
        }
    }
    free(stack);
    c->anc_node = self;
    return KILN_OK;
}

kiln_status kiln_cg_scratch(cg *c, uint64_t bytes, kiln_bundle_arg *a) {
    if (!bytes || bytes > ((uint64_t)1 << 40)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "scratch of %llu bytes", (unsigned long long)bytes);
    if (c->n_node_alloc >= 8) return kiln_errorf(KILN_ERR_INTERNAL, "more than 8 scratch buffers in one node");
    bytes = (bytes + 255) & ~(uint64_t)255;
    int self = c->node ? (int)(c->node - c->g->nodes) : -1;
    if (self >= c->g->n_nodes) self = -1; /* (not a node of the graph: no reuse) */
    kiln_status st;
    if (self >= 0 && c->anc_node != self && (st = scratch_ancestors(c, self))) return st;
    /* a slot whose last user is an ancestor: first fit, else the last slot grown */
    int pick = -1;
    for (int i = 0; i < c->n_slots && pick < 0; i++) {
        const struct cg_scratch_slot *sl = &c->slots[i];
        if (self >= 0 && sl->owner >= 0 && sl->owner != self && c->anc[sl->owner] && sl->size >= bytes) pick = i;
    }
    if (pick < 0 && c->n_slots && self >= 0) {
        struct cg_scratch_slot *last = &c->slots[c->n_slots - 1];
        if (last->owner >= 0 && last->owner != self && c->anc[last->owner]) {
            c->scratch_bytes += bytes - last->size;
            last->size = bytes;
            pick = c->n_slots - 1;
        }
    }
    if (pick < 0) {
        if (c->n_slots == c->cap_slots) {
            int cap = c->cap_slots ? 2 * c->cap_slots : 8;
            struct cg_scratch_slot *ns = realloc(c->slots, sizeof *ns * (size_t)cap);
            if (!ns) return kiln_errorf(KILN_ERR_OOM, "out of memory");
            c->slots = ns;
            c->cap_slots = cap;
        }
        c->slots[c->n_slots] = (struct cg_scratch_slot){c->scratch_bytes, bytes, self};
        c->scratch_bytes += bytes;
        pick = c->n_slots++;
    }
    c->slots[pick].owner = self;
    c->node_alloc[c->n_node_alloc][0] = c->slots[pick].base;
    c->node_alloc[c->n_node_alloc++][1] = bytes;
    *a = (kiln_bundle_arg){KILN_ARG_ARENA, 8, kiln_cg_scratch_base(c) + c->slots[pick].base};
    return KILN_OK;
}

int kiln_cg_choose(cg *c, const char *signature, const char *const *names, int n, int heuristic) {
    if (n <= 0) return 0;
    if (heuristic < 0 || heuristic >= n) heuristic = 0;
    int chosen = heuristic;
    kiln_tune_source src = KILN_TUNE_HEURISTIC;
    const char *want = c->node ? kiln_attr_str(c->node, "kiln_tile", NULL) : NULL;
    if (want) src = KILN_TUNE_FORCED;
    else if (c->o->tune_lookup && (want = c->o->tune_lookup(c->o->tune_ctx, signature))) src = KILN_TUNE_LOOKUP;
    if (want) {
        for (int i = 0; i < n; i++)
            if (!strcmp(names[i], want)) {
                chosen = i;
                break;
            }
        if (strcmp(names[chosen], want)) src = KILN_TUNE_HEURISTIC; /* a stale name: keep the heuristic */
    }
    if (c->o->tune_record) c->o->tune_record(c->o->tune_ctx, c->group, signature, names, n, chosen, src);
    return chosen;
}

uint64_t kiln_cg_grid_1d(int64_t total) {
    int64_t blocks = (total + BLOCK_1D - 1) / BLOCK_1D;
    if (blocks < 1) blocks = 1;
    return (uint64_t)(blocks > MAX_GRID_1D ? MAX_GRID_1D : blocks);
}

const kiln_value *kiln_cg_val(const cg *c, int v) {
    for (int i = 0; i < c->n_ovr; i++)
        if (c->ovr_v[i] == v) return &c->ovr_val[i];
    return &c->g->values[v];
}

int64_t kiln_cg_numel(const kiln_value *v) {
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++) n *= v->dims[i];
    return n;
}

bool kiln_cg_is_f32(const kiln_value *v) { return v->dtype == KILN_F32; }

/* ------------------------------------------------------------- activations -- */
/* One activation of passes/fuse_epilogue.c as a statement on `v`. */

/* Leading pads of a window op, auto_pad resolved as kiln's shape inference does. */
kiln_status kiln_cg_window_pads(const kiln_node *n, int nsp, const int64_t *in, const int64_t *k,
                                const int64_t *s, const int64_t *d, int64_t *pb, int64_t *pe) {
    const char *ap = kiln_attr_str(n, "auto_pad", "NOTSET");
    const int64_t *pads;
    int np = kiln_attr_ints(n, "pads", &pads);
    for (int i = 0; i < nsp; i++) {
        pb[i] = np == 2 * nsp ? pads[i] : 0;
        pe[i] = np == 2 * nsp ? pads[nsp + i] : 0;
        if (!strcmp(ap, "VALID")) pb[i] = pe[i] = 0;
        else if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            int64_t out = (in[i] + s[i] - 1) / s[i], eff = (k[i] - 1) * d[i] + 1;
            int64_t total = out > 0 ? (out - 1) * s[i] + eff - in[i] : 0;
            if (total < 0) total = 0;
            pb[i] = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
            pe[i] = total - pb[i];
        } else if (*ap && strcmp(ap, "NOTSET"))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "auto_pad '%s'", ap);
    }
    return KILN_OK;
}

void kiln_cg_ints_or(const kiln_node *n, const char *name, int count, int64_t def, int64_t *out) {
    const int64_t *v;
    int cnt = kiln_attr_ints(n, name, &v);
    for (int i = 0; i < count; i++) out[i] = cnt == count ? v[i] : def;
}
