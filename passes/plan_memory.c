/* plan_memory.c — plan-memory: every intermediate activation gets a byte offset in one
 * activation arena ("dynamic tensor memory"); the arena is the peak, not the sum.
 *
 * Algorithm
 *   1. Liveness. Nodes are numbered in graph (topological) order, t = 0..T-1. A value produced
 *      by a node at t that is not a known constant lives [t, last use]; a graph output lives to
 *      T (the end). Graph inputs and constants are not in the arena.
 *   2. Storage classes. A value either owns storage (a root) or shares the storage of another
 *      value (value->alias_of):
 *        - views (kiln_node_is_view: Reshape/Flatten/Squeeze/Unsqueeze/Identity) alias their
 *          data input: no bytes of their own, they extend the input's lifetime;
 *        - in place: an elementwise/broadcast node (or a fused group whose path from that input
 *          to the outputs is elementwise only) writes an output over an input whose storage
 *          class dies at this node, when both have the same element count and element size.
 *      A class lives from its root's definition to the last use of any member.
 *   3. Offsets. Sweeping t forward: allocate the roots defined at t (largest first) best-fit
 *      into the free blocks (smallest block that fits, lowest offset on ties, growing the top
 *      block or the arena when none fits), then free every class whose lifetime ends at t.
 *      Blocks are 256-byte aligned and coalesce when freed.
 *
 *        t:   0    1    2    3    4          arena
 *        a    [=========]                  [ a ][ c ]   b reuses a's block once a died;
 *        b              [==========]       [ b ][ c ]   e is written in place over d
 *        c         [=========]
 *        d                   [=]-e (in place)
 *
 * Shapes: the plan is made for the dims in the graph, symbolic or dynamic dims counted as 1
 * (batch 1). `kiln build` fixes shapes with --shape before planning, so there every dim is
 * static; `kiln optimize` on a dynamic-batch model shows the batch-1 plan. Values of unknown
 * rank are left unplanned (arena_offset -1). The plan uses the IR dtypes (fp32 for an fp32
 * model, also when building for fp16: codegen scales the offsets).
 *
 * kiln_memory_plan_check re-derives liveness from the graph and verifies a plan: aligned, in
 * bounds, no two classes that are live at the same time share bytes, an alias has its
 * target's offset and is produced by a node that reads the target, and an in-place write
 * happens only when nothing else of its class is read later. */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 256

/* Bytes of a value with symbolic/dynamic dims counted as 1; -1 when it cannot be planned. */
static int64_t plan_bytes(const kiln_value *v) {
    if (v->rank < 0 || !kiln_dtype_is_supported(v->dtype) || kiln_dtype_size(v->dtype) == 0) return -1;
    int64_t n = (int64_t)kiln_dtype_size(v->dtype);
    for (int i = 0; i < v->rank; i++)
        if (!kiln_mul_dims(n, v->dims[i] < 0 ? 1 : v->dims[i], &n)) return -1;
    return n;
}

static int64_t plan_numel(const kiln_value *v) {
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++)
        if (!kiln_mul_dims(n, v->dims[i] < 0 ? 1 : v->dims[i], &n)) return -1;
    return n;
}

static int64_t align_up(int64_t x) { return (x + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

/* Liveness in node order: def[v] = position of v's producer (-1: none), last[v] = last
 * position that reads it (T for graph outputs). */
typedef struct liveness {
    int T;
    int *pos;  /* per node: position among live nodes, -1 dead */
    int *def;  /* per value */
    int *last; /* per value */
} liveness;

static void liveness_free(liveness *l) {
    free(l->pos);
    free(l->def);
    free(l->last);
}

static kiln_status liveness_build(const kiln_graph *g, liveness *l) {
    memset(l, 0, sizeof *l);
    l->pos = malloc(sizeof(int) * (size_t)(g->n_nodes + 1));
    l->def = malloc(sizeof(int) * (size_t)(g->n_values + 1));
    l->last = malloc(sizeof(int) * (size_t)(g->n_values + 1));
    if (!l->pos || !l->def || !l->last) {
        liveness_free(l);
        return kiln_errorf(KILN_ERR_OOM, "out of memory planning memory");
    }
    for (int v = 0; v < g->n_values; v++) l->def[v] = l->last[v] = -1;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        l->pos[ni] = n->dead ? -1 : l->T++;
        if (n->dead) continue;
        for (int i = 0; i < n->n_inputs; i++) {
            int v = n->inputs[i];
            if (v >= 0 && v < g->n_values && l->pos[ni] > l->last[v]) l->last[v] = l->pos[ni];
        }
        for (int i = 0; i < n->n_outputs; i++) {
            int v = n->outputs[i];
            if (v < 0 || v >= g->n_values) continue;
            l->def[v] = l->pos[ni];
            if (l->last[v] < l->pos[ni]) l->last[v] = l->pos[ni];
        }
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] >= 0 && g->outputs[i] < g->n_values) l->last[g->outputs[i]] = l->T;
    return KILN_OK;
}

/* Is v an activation the arena holds (produced by a node, not a known constant, plannable)? */
static bool is_activation(const kiln_graph *g, const liveness *l, int v) {
    const kiln_value *val = &g->values[v];
    return l->def[v] >= 0 && !val->data && plan_bytes(val) >= 0;
}

/* For a fused node: may output storage overwrite input i? Only when everything in the body
 * that depends on input i is elementwise/broadcast (so element k is read only to produce
 * element k); an input that also feeds the anchor (a conv reads many positions) may not. */
static bool fused_input_inplace_ok(const kiln_node *n, int i, bool *scratch) {
    const kiln_graph *b = n->body;
    if (!b || i >= b->n_inputs) return false;
    memset(scratch, 0, sizeof(bool) * (size_t)(b->n_values + 1));
    scratch[b->inputs[i]] = true;
    for (int ni = 0; ni < b->n_nodes; ni++) { /* body nodes are in topological order */
        const kiln_node *bn = &b->nodes[ni];
        if (bn->dead) continue;
        bool reads = false;
        for (int k = 0; k < bn->n_inputs && !reads; k++) reads = bn->inputs[k] >= 0 && scratch[bn->inputs[k]];
        if (!reads) continue;
        kiln_op_kind kind = kiln_op_table[bn->op].kind;
        if (kind != KILN_KIND_ELEMENTWISE && kind != KILN_KIND_BROADCAST) return false;
        for (int k = 0; k < bn->n_outputs; k++)
            if (bn->outputs[k] >= 0) scratch[bn->outputs[k]] = true;
    }
    return true;
}

static bool node_is_elementwise(const kiln_node *n) {
    kiln_op_kind kind = kiln_op_table[n->op].kind;
    return n->op != KILN_OP_Fused && (kind == KILN_KIND_ELEMENTWISE || kind == KILN_KIND_BROADCAST);
}

/* ---------------------------------------------------------- free list -- */
typedef struct block {
    int64_t off, size;
} block;

typedef struct arena {
    block *free; /* sorted by offset, coalesced */
    int n, cap;
    int64_t top, peak;
} arena;

static int64_t arena_alloc(arena *a, int64_t size) {
    int best = -1;
    for (int i = 0; i < a->n; i++)
        if (a->free[i].size >= size && (best < 0 || a->free[i].size < a->free[best].size)) best = i;
    int64_t off;
    if (best >= 0) {
        off = a->free[best].off;
        a->free[best].off += size;
        a->free[best].size -= size;
        if (a->free[best].size == 0) {
            memmove(&a->free[best], &a->free[best + 1], sizeof(block) * (size_t)(a->n - best - 1));
            a->n--;
        }
    } else if (a->n > 0 && a->free[a->n - 1].off + a->free[a->n - 1].size == a->top) {
        off = a->free[a->n - 1].off; /* grow the block at the top */
        a->n--;
        a->top = off + size;
    } else {
        off = a->top;
        a->top += size;
    }
    if (a->top > a->peak) a->peak = a->top;
    return off;
}

static kiln_status arena_release(arena *a, int64_t off, int64_t size) {
    if (a->n + 1 > a->cap) {
        int cap = a->cap ? a->cap * 2 : 64;
        block *f = realloc(a->free, sizeof(block) * (size_t)cap);
        if (!f) return kiln_errorf(KILN_ERR_OOM, "out of memory planning memory");
        a->free = f;
        a->cap = cap;
    }
    int i = 0;
    while (i < a->n && a->free[i].off < off) i++;
    memmove(&a->free[i + 1], &a->free[i], sizeof(block) * (size_t)(a->n - i));
    a->free[i] = (block){off, size};
    a->n++;
    if (i + 1 < a->n && a->free[i].off + a->free[i].size == a->free[i + 1].off) { /* merge right */
        a->free[i].size += a->free[i + 1].size;
        memmove(&a->free[i + 1], &a->free[i + 2], sizeof(block) * (size_t)(a->n - i - 2));
        a->n--;
    }
    if (i > 0 && a->free[i - 1].off + a->free[i - 1].size == a->free[i].off) { /* merge left */
        a->free[i - 1].size += a->free[i].size;
        memmove(&a->free[i], &a->free[i + 1], sizeof(block) * (size_t)(a->n - i - 1));
        a->n--;
    }
    return KILN_OK;
}

/* ------------------------------------------------------------- planner -- */
kiln_status kiln_pass_plan_memory(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    (void)ctx;
    *changed = false;
    liveness l;
    kiln_status st = liveness_build(g, &l);
    if (st) return st;
    int nv = g->n_values;
    int *root = malloc(sizeof(int) * (size_t)(nv + 1));     /* storage owner; -1: unplanned/external */
    int *alias = malloc(sizeof(int) * (size_t)(nv + 1));    /* new alias_of */
    int *end = malloc(sizeof(int) * (size_t)(nv + 1));      /* per root: class lifetime end */
    int64_t *off = malloc(sizeof(int64_t) * (size_t)(nv + 1));
    int64_t *bytes = malloc(sizeof(int64_t) * (size_t)(nv + 1)); /* per root: aligned size */
    int *claimed = calloc((size_t)nv + 1, sizeof(int));     /* per root: node position + 1 that wrote in place */
    int *order = malloc(sizeof(int) * (size_t)(nv + 1));
    int max_body = 1;
    for (int ni = 0; ni < g->n_nodes; ni++)
        if (g->nodes[ni].body && g->nodes[ni].body->n_values + 1 > max_body) max_body = g->nodes[ni].body->n_values + 1;
    bool *scratch = malloc(sizeof(bool) * (size_t)max_body);
    arena a = {0};
    if (!root || !alias || !end || !off || !bytes || !claimed || !order || !scratch) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory planning memory");
        goto done;
    }
    for (int v = 0; v < nv; v++) {
        root[v] = alias[v] = end[v] = -1;
        off[v] = -1;
        bytes[v] = 0;
    }
    /* 1. storage classes, in node order */
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        int t = l.pos[ni];
        if (kiln_node_is_view(n) && n->n_inputs >= 1 && n->inputs[0] >= 0 && n->n_outputs >= 1 && n->outputs[0] >= 0) {
            int in = n->inputs[0], out = n->outputs[0];
            alias[out] = in; /* no storage of its own, also when the input is a graph input */
            root[out] = root[in];
            if (root[out] >= 0 && l.last[out] > end[root[out]]) end[root[out]] = l.last[out];
            continue;
        }
        for (int o = 0; o < n->n_outputs; o++) {
            int ov = n->outputs[o];
            if (ov < 0 || !is_activation(g, &l, ov)) continue;
            const kiln_value *oval = &g->values[ov];
            int in_place = -1;
            bool ew = node_is_elementwise(n), fused = n->op == KILN_OP_Fused && n->body;
            for (int i = 0; (ew || fused) && i < n->n_inputs && in_place < 0; i++) {
                int iv = n->inputs[i];
                if (iv < 0 || root[iv] < 0) continue;
                int r = root[iv];
                const kiln_value *ival = &g->values[iv];
                if (end[r] != t || claimed[r] == t + 1 || kiln_dtype_size(ival->dtype) != kiln_dtype_size(oval->dtype) ||
                    plan_numel(ival) != plan_numel(oval) || plan_bytes(oval) > bytes[r])
                    continue;
                if (fused && !fused_input_inplace_ok(n, i, scratch)) continue;
                in_place = iv;
            }
            if (in_place >= 0) {
                int r = root[in_place];
                claimed[r] = t + 1;
                alias[ov] = in_place;
                root[ov] = r;
                if (l.last[ov] > end[r]) end[r] = l.last[ov];
            } else {
                root[ov] = ov;
                end[ov] = l.last[ov];
                bytes[ov] = align_up(plan_bytes(oval));
            }
        }
    }
    /* 2. offsets: sweep node order; allocate the roots defined at t (largest first), then free
     * the classes that end at t. Classes are chained by end time (order[] links, head[] per t). */
    int *head = malloc(sizeof(int) * (size_t)(l.T + 2));
    if (!head) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory planning memory");
        goto done;
    }
    for (int t = 0; t <= l.T; t++) head[t] = -1;
    for (int v = 0; v < nv; v++)
        if (root[v] == v) {
            order[v] = head[end[v]];
            head[end[v]] = v;
        }
    for (int ni = 0, t = 0; ni < g->n_nodes && !st; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        for (;;) { /* outputs of this node that own storage, largest first */
            int pick = -1;
            for (int o = 0; o < n->n_outputs; o++) {
                int v = n->outputs[o];
                if (v >= 0 && root[v] == v && off[v] < 0 && (pick < 0 || bytes[v] > bytes[pick])) pick = v;
            }
            if (pick < 0) break;
            off[pick] = bytes[pick] ? arena_alloc(&a, bytes[pick]) : 0;
        }
        for (int v = head[t]; v >= 0 && !st; v = order[v])
            if (bytes[v]) st = arena_release(&a, off[v], bytes[v]);
        t++;
    }
    free(head);
    if (st) goto done;
    /* 3. write the plan; an alias takes its root's offset */
    for (int v = 0; v < nv; v++) {
        kiln_value *val = &g->values[v];
        int64_t new_off = root[v] >= 0 ? off[root[v]] : -1;
        if (val->arena_offset != new_off || val->alias_of != alias[v]) *changed = true;
        val->arena_offset = new_off;
        val->alias_of = alias[v];
    }
    if (g->arena_bytes != a.peak) *changed = true;
    g->arena_bytes = a.peak;
done:
    liveness_free(&l);
    free(root);
    free(alias);
    free(end);
    free(off);
    free(bytes);
    free(claimed);
    free(order);
    free(scratch);
    free(a.free);
    return st;
}

/* ------------------------------------------------------------- checker -- */
static const char *vname(const kiln_graph *g, int v) { return g->values[v].name ? g->values[v].name : "?"; }

kiln_status kiln_memory_plan_check(const kiln_graph *g) {
    liveness l;
    kiln_status st = liveness_build(g, &l);
    if (st) return st;
    int nv = g->n_values;
    int *root = malloc(sizeof(int) * (size_t)(nv + 1));
    int *end = malloc(sizeof(int) * (size_t)(nv + 1));
    if (!root || !end) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory checking the memory plan");
        goto done;
    }
    /* aliases: chains end at a root, offsets agree, the producer reads the target */
    for (int v = 0; v < nv && !st; v++) {
        const kiln_value *val = &g->values[v];
        int r = v, steps = 0;
        while (r >= 0 && g->values[r].alias_of >= 0 && steps++ <= nv) {
            if (g->values[r].alias_of >= nv) {
                st = kiln_errorf(KILN_ERR_INTERNAL, "memory plan: '%s' aliases value %d of %d", vname(g, r),
                                 g->values[r].alias_of, nv);
                break;
            }
            r = g->values[r].alias_of;
        }
        if (st) break;
        if (steps > nv) {
            st = kiln_errorf(KILN_ERR_INTERNAL, "memory plan: alias cycle through '%s'", vname(g, v));
            break;
        }
        root[v] = r;
        if (val->alias_of >= 0) {
            if (val->producer < 0 || g->nodes[val->producer].dead) {
                st = kiln_errorf(KILN_ERR_INTERNAL, "memory plan: '%s' aliases '%s' but has no producer", vname(g, v),
                                 vname(g, val->alias_of));
                break;
            }
            const kiln_node *p = &g->nodes[val->producer];
            bool reads = false;
            for (int i = 0; i < p->n_inputs; i++) reads |= p->inputs[i] == val->alias_of;
            if (!reads)
                st = kiln_errorf(KILN_ERR_INTERNAL, "memory plan: '%s' aliases '%s', which its producer does not read",
                                 vname(g, v), vname(g, val->alias_of));
            else if (val->arena_offset != g->values[val->alias_of].arena_offset)
                st = kiln_errorf(KILN_ERR_INTERNAL, "memory plan: '%s' at %lld aliases '%s' at %lld", vname(g, v),
                                 (long long)val->arena_offset, vname(g, val->alias_of),
                                 (long long)g->values[val->alias_of].arena_offset);
            else if (plan_bytes(val) > plan_bytes(&g->values[r]))
                st = kiln_errorf(KILN_ERR_INTERNAL, "memory plan: '%s' is larger than the storage of '%s' it aliases",
                                 vname(g, v), vname(g, r));
        }
    }
    if (st) goto done;
    /* every activation is planned (or views external storage); roots are aligned and in bounds */
    for (int v = 0; v < nv && !st; v++) {
        const kiln_value *val = &g->values[v];
        bool external = g->values[root[v]].arena_offset < 0 && root[v] != v;
        if (is_activation(g, &l, v) && val->arena_offset < 0 && !external)
            st = kiln_errorf(KILN_ERR_INTERNAL, "memory plan: intermediate '%s' has no offset", vname(g, v));
        else if (root[v] == v && val->arena_offset >= 0 &&
                 (val->arena_offset % ARENA_ALIGN || val->arena_offset + plan_bytes(val) > g->arena_bytes))
            st = kiln_errorf(KILN_ERR_INTERNAL, "memory plan: '%s' at %lld (+%lld) is unaligned or beyond the arena (%lld)",
                             vname(g, v), (long long)val->arena_offset, (long long)plan_bytes(val),
                             (long long)g->arena_bytes);
        else if (root[v] == v && val->arena_offset >= 0 && l.def[v] < 0)
            st = kiln_errorf(KILN_ERR_INTERNAL, "memory plan: '%s' has an offset but no producer", vname(g, v));
    }
    if (st) goto done;
    /* class lifetimes */
    for (int v = 0; v < nv; v++) end[v] = -1;
    for (int v = 0; v < nv; v++)
        if (g->values[root[v]].arena_offset >= 0 && l.last[v] > end[root[v]]) end[root[v]] = l.last[v];
    /* no two classes live at the same time share bytes */
    for (int x = 0; x < nv && !st; x++) {
        const kiln_value *a = &g->values[x];
        if (root[x] != x || a->arena_offset < 0) continue;
        int64_t ab = plan_bytes(a);
        for (int y = x + 1; y < nv && !st; y++) {
            const kiln_value *b = &g->values[y];
            if (root[y] != y || b->arena_offset < 0) continue;
            int64_t bb = plan_bytes(b);
            bool time = l.def[x] <= end[y] && l.def[y] <= end[x];
            bool space = a->arena_offset < b->arena_offset + bb && b->arena_offset < a->arena_offset + ab && ab && bb;
            if (time && space)
                st = kiln_errorf(KILN_ERR_INTERNAL,
                                 "memory plan: '%s' [%lld, +%lld) live %d..%d and '%s' [%lld, +%lld) live %d..%d overlap",
                                 vname(g, x), (long long)a->arena_offset, (long long)ab, l.def[x], end[x], vname(g, y),
                                 (long long)b->arena_offset, (long long)bb, l.def[y], end[y]);
        }
    }
    /* an in-place write: nothing of its class outside its own alias subtree is read later */
    for (int v = 0; v < nv && !st; v++) {
        const kiln_value *val = &g->values[v];
        if (val->alias_of < 0 || val->arena_offset < 0 || kiln_node_is_view(&g->nodes[val->producer])) continue;
        for (int m = 0; m < nv && !st; m++) {
            if (m == v || root[m] != root[v]) continue;
            bool below = false;
            for (int c = m, steps = 0; c >= 0 && steps <= nv && !below; c = g->values[c].alias_of, steps++) below = c == v;
            if (!below && l.last[m] > l.def[v])
                st = kiln_errorf(KILN_ERR_INTERNAL, "memory plan: '%s' is written in place over '%s' while '%s' is read later",
                                 vname(g, v), vname(g, val->alias_of), vname(g, m));
        }
    }
done:
    liveness_free(&l);
    free(root);
    free(end);
    return st;
}

int64_t kiln_memory_plan_intermediate_bytes(const kiln_graph *g) {
    int64_t sum = 0;
    for (int v = 0; v < g->n_values; v++) {
        const kiln_value *val = &g->values[v];
        if (val->producer < 0 || val->producer >= g->n_nodes || val->arena_offset < 0) continue;
        if (kiln_node_is_view(&g->nodes[val->producer])) continue;
        int64_t b = plan_bytes(val);
        if (b > 0) sum += b;
    }
    return sum;
}
