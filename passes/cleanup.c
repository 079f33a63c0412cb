/*
 * cleanup.c — removes nodes that compute nothing new.
 *
 * Matches, in one forward sweep per round (use lists rebuilt after every rewrite):
 *   Identity                          y := x
 *   Dropout in inference              y := x; a used mask becomes a constant all-true tensor
 *   Cast / CastLike to x's own dtype  y := x
 *   Transpose with perm 0..n-1        y := x
 *   Expand / Tile to x's own type     y := x
 *   step-1 Slice to x's own type      y := x (step 1 and full length cover everything)
 *   a view (Reshape, Flatten, Squeeze, Unsqueeze) whose output has the type of x or of a
 *   view ancestor a of x              y := a (views keep element order)
 *   Reshape(view(x), s)               Reshape(x, s) when s has no 0 (a 0 would copy a dim of
 *                                     the middle tensor); with a 0, only when the output is
 *                                     static, and s becomes the output's dims
 *   Transpose(Transpose(x, p), q)     Transpose(x, p[q[i]]), or x when that is the identity
 *   Squeeze(Unsqueeze(x, a), a), Unsqueeze(Squeeze(x, a), a)   y := x
 * ("type": dtype and dims, each static or carrying the same symbol). Then dead nodes (no
 * output used, none a graph output) go, from the back.
 *
 * "y := x" is kiln_graph_replace_uses. When y is a graph output that x cannot become (x is a
 * graph input, a constant or an output itself) the node stays; a no-op Dropout, Cast,
 * Slice, Transpose, Expand or Tile then turns into an Identity, which codegen treats as a view.
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

/* Same dtype and shape; a dynamic dim must carry the same symbol on both sides. */
static bool same_type(const kiln_value *a, const kiln_value *b) {
    if (a->dtype != b->dtype || a->rank < 0 || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++) {
        if (a->dims[i] != b->dims[i]) return false;
        if (a->dims[i] < 0 && (a->sym[i] == 0 || a->sym[i] != b->sym[i])) return false;
    }
    return true;
}

static bool is_const(const kiln_value *v) { return v->data && !(v->flags & KILN_VALUE_INPUT); }

static bool is_view_op(kiln_op op) {
    return op == KILN_OP_Reshape || op == KILN_OP_Flatten || op == KILN_OP_Squeeze || op == KILN_OP_Unsqueeze ||
           op == KILN_OP_Identity;
}

/* Live producer of value v, -1 when none. */
static int producer_of(const kiln_graph *g, int v) {
    int p = v >= 0 ? g->values[v].producer : -1;
    return p >= 0 && !g->nodes[p].dead ? p : -1;
}

static int input_at(const kiln_node *n, int i) { return i < n->n_inputs ? n->inputs[i] : -1; }

/* Outputs other than the first are unused. */
static bool only_first_output_used(const kiln_graph *g, const kiln_node *n) {
    for (int i = 1; i < n->n_outputs; i++)
        if (n->outputs[i] >= 0 && kiln_value_live_uses(g, n->outputs[i]) > 0) return false;
    return true;
}

/* The node's first output becomes its first input; when that cannot be done (graph output
 * naming) and as_identity, the node turns into an Identity instead. */
static void forward(kiln_graph *g, int ni, bool as_identity, bool *changed) {
    kiln_node *n = &g->nodes[ni];
    int x = n->inputs[0], y = n->outputs[0];
    if (kiln_value_live_uses(g, y) == 0) return; /* dead: the dead-code sweep takes it */
    if (kiln_graph_replace_uses(g, y, x)) {
        *changed = true;
        return;
    }
    if (!as_identity || n->op == KILN_OP_Identity || !only_first_output_used(g, n)) return;
    n->op = KILN_OP_Identity;
    n->n_inputs = 1;
    n->n_outputs = 1; /* the other outputs are unused; compaction drops them */
    for (int a = 0; a < n->n_attrs; a++) kiln_attr_free(&n->attrs[a]);
    n->n_attrs = 0;
    *changed = true;
}

/* Normalized, sorted axes of a constant axes input for a tensor of rank r; count or -1. */
static int const_axes(const kiln_graph *g, int v, int r, int64_t *ax) {
    if (v < 0 || !is_const(&g->values[v])) return -1;
    int k = kiln_value_const_ints(&g->values[v], ax, KILN_MAX_RANK);
    if (k < 0) return -1;
    for (int i = 0; i < k; i++)
        if (!kiln_norm_axis(ax[i], r, &ax[i])) return -1;
    for (int i = 1; i < k; i++) /* insertion sort; duplicates make it invalid */
        for (int j = i; j > 0 && ax[j - 1] >= ax[j]; j--) {
            if (ax[j - 1] == ax[j]) return -1;
            int64_t t = ax[j];
            ax[j] = ax[j - 1];
            ax[j - 1] = t;
        }
    return k;
}

/* Permutation of a Transpose on a rank-r input (default: reversed); false if invalid. */
static bool transpose_perm(const kiln_node *n, int r, int64_t *perm) {
    const int64_t *p;
    int k = kiln_attr_ints(n, "perm", &p);
    if (r < 0 || r > KILN_MAX_RANK) return false;
    if (k < 0) {
        for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
        return true;
    }
    if (k != r) return false;
    for (int i = 0; i < r; i++) {
        if (p[i] < 0 || p[i] >= r) return false;
        perm[i] = p[i];
    }
    return true;
}

static kiln_status rewrite_dropout(kiln_graph *g, int ni, bool *changed) {
    kiln_node *n = &g->nodes[ni];
    int ratio = input_at(n, 1), train = input_at(n, 2);
    if (train >= 0) {
        int64_t t[1];
        if (!is_const(&g->values[train]) || kiln_value_const_ints(&g->values[train], t, 1) != 1) return KILN_OK;
        bool zero_ratio = ratio < 0 || (is_const(&g->values[ratio]) && g->values[ratio].data->numel == 1 &&
                                        kiln_tensor_get(g->values[ratio].data, 0) == 0.0);
        if (t[0] && !(ratio >= 0 && zero_ratio)) return KILN_OK; /* training mode: random */
    }
    int mask = n->n_outputs > 1 ? n->outputs[1] : -1;
    if (mask >= 0 && kiln_value_live_uses(g, mask) > 0) {
        kiln_value *m = &g->values[mask];
        if (!kiln_value_is_static(m) || (m->flags & KILN_VALUE_OUTPUT) || m->dtype != KILN_BOOL) return KILN_OK;
        kiln_tensor *t = kiln_tensor_new(KILN_BOOL, m->rank, m->dims);
        if (!t) return kiln_error_prefix(KILN_ERR_OOM, "cleanup: Dropout mask");
        if (t->nbytes) memset(t->data, 1, t->nbytes);
        int c = kiln_graph_add_const(g, t, g->values[mask].name);
        if (c < 0) return kiln_errorf(KILN_ERR_OOM, "cleanup: out of memory");
        kiln_graph_replace_uses(g, mask, c); /* not an output: cannot fail */
        *changed = true;
    }
    forward(g, ni, true, changed);
    return KILN_OK;
}

/* z = Transpose(y, q) with y = Transpose(x, p): z = Transpose(x, p[q[i]]). */
static kiln_status rewrite_transpose(kiln_graph *g, int ni, bool *changed) {
    kiln_node *n = &g->nodes[ni];
    const kiln_value *y = &g->values[n->inputs[0]];
    int64_t q[KILN_MAX_RANK], p[KILN_MAX_RANK], c[KILN_MAX_RANK];
    int r = y->rank;
    if (!transpose_perm(n, r, q)) return KILN_OK;
    bool ident = true;
    for (int i = 0; i < r; i++) ident &= q[i] == i;
    if (ident) {
        forward(g, ni, true, changed);
        return KILN_OK;
    }
    int pn = producer_of(g, n->inputs[0]);
    if (pn < 0 || g->nodes[pn].op != KILN_OP_Transpose) return KILN_OK;
    if (!transpose_perm(&g->nodes[pn], g->values[g->nodes[pn].inputs[0]].rank, p) ||
        g->values[g->nodes[pn].inputs[0]].rank != r)
        return KILN_OK;
    ident = true;
    for (int i = 0; i < r; i++) {
        c[i] = p[q[i]];
        ident &= c[i] == i;
    }
    int x = g->nodes[pn].inputs[0];
    kiln_status st = kiln_node_set_ints(n, "perm", c, r);
    if (st) return st;
    n->inputs[0] = x;
    *changed = true;
    if (ident) forward(g, ni, true, changed);
    return KILN_OK;
}

/* Squeeze(Unsqueeze(x, a), a) and Unsqueeze(Squeeze(x, a), a) are x. */
static void rewrite_squeeze_pair(kiln_graph *g, int ni, bool *changed) {
    kiln_node *n = &g->nodes[ni];
    int pn = producer_of(g, n->inputs[0]);
    kiln_op want = n->op == KILN_OP_Squeeze ? KILN_OP_Unsqueeze : KILN_OP_Squeeze;
    if (pn < 0 || g->nodes[pn].op != want) return;
    const kiln_node *p = &g->nodes[pn];
    int x = p->inputs[0];
    int64_t a[KILN_MAX_RANK], b[KILN_MAX_RANK];
    /* both sets normalize against the rank of the middle tensor (Unsqueeze output / Squeeze input) */
    int r = g->values[n->op == KILN_OP_Squeeze ? n->inputs[0] : x].rank;
    if (r < 0) return;
    int ka = const_axes(g, input_at(p, 1), r, a), kb = const_axes(g, input_at(n, 1), r, b);
    if (ka <= 0 || ka != kb || memcmp(a, b, sizeof(int64_t) * (size_t)ka)) return;
    if (g->values[x].dtype != g->values[n->outputs[0]].dtype) return;
    if (kiln_value_live_uses(g, n->outputs[0]) == 0) return;
    if (kiln_graph_replace_uses(g, n->outputs[0], x)) *changed = true;
}

/* Reshape(view(x), s): drop the middle views when s does not depend on the middle shape. */
static kiln_status rewrite_reshape_chain(kiln_graph *g, int ni, bool *changed) {
    kiln_node *n = &g->nodes[ni];
    int pn = producer_of(g, n->inputs[0]);
    if (pn < 0 || !is_view_op(g->nodes[pn].op)) return KILN_OK;
    int x = g->nodes[pn].inputs[0];
    int s = n->inputs[1];
    bool allowzero = kiln_attr_int(n, "allowzero", 0) != 0;
    int64_t sh[KILN_MAX_RANK];
    int k = is_const(&g->values[s]) ? kiln_value_const_ints(&g->values[s], sh, KILN_MAX_RANK) : -1;
    bool has_zero = false;
    for (int i = 0; i < k; i++) has_zero |= sh[i] == 0;
    if (k < 0 || (has_zero && !allowzero)) {
        /* s reads the middle shape: replace it by the output's static dims (no 0 in them) */
        const kiln_value *y = &g->values[n->outputs[0]];
        if (!kiln_value_is_static(y)) return KILN_OK;
        for (int i = 0; i < y->rank; i++)
            if (y->dims[i] == 0) return KILN_OK;
        int64_t d = y->rank;
        kiln_tensor *t = kiln_tensor_new(KILN_I64, 1, &d);
        if (!t) return kiln_error_prefix(KILN_ERR_OOM, "cleanup: reshape shape");
        memcpy(t->data, y->dims, sizeof(int64_t) * (size_t)y->rank);
        int c = kiln_graph_add_const(g, t, g->values[s].name);
        if (c < 0) return kiln_errorf(KILN_ERR_OOM, "cleanup: out of memory");
        n = &g->nodes[ni];
        n->inputs[1] = c;
    }
    n->inputs[0] = x;
    *changed = true;
    return KILN_OK;
}

/* The first ancestor through views (or the input itself) whose type is y's; -1 if none. */
static int same_typed_ancestor(const kiln_graph *g, int x, const kiln_value *y) {
    for (int depth = 0; depth < 16 && x >= 0; depth++) {
        if (same_type(&g->values[x], y)) return x;
        int p = producer_of(g, x);
        if (p < 0 || !is_view_op(g->nodes[p].op)) return -1;
        x = g->nodes[p].inputs[0];
    }
    return -1;
}

static kiln_status rewrite_node(kiln_graph *g, int ni, bool *changed) {
    kiln_node *n = &g->nodes[ni];
    if (n->n_inputs < 1 || n->inputs[0] < 0 || n->n_outputs < 1 || n->outputs[0] < 0) return KILN_OK;
    const kiln_value *x = &g->values[n->inputs[0]], *y = &g->values[n->outputs[0]];
    switch (n->op) {
    case KILN_OP_Identity:
        forward(g, ni, false, changed);
        break;
    case KILN_OP_Dropout:
        return rewrite_dropout(g, ni, changed);
    case KILN_OP_Cast:
    case KILN_OP_CastLike:
        if (x->dtype == y->dtype && x->dtype != KILN_UNDEF) forward(g, ni, true, changed);
        break;
    case KILN_OP_Transpose:
        return rewrite_transpose(g, ni, changed);
    case KILN_OP_Expand: /* broadcasting to x's own shape (Tile: every repeat 1) */
    case KILN_OP_Tile:
        if (same_type(x, y)) forward(g, ni, true, changed);
        break;
    case KILN_OP_Slice: {
        /* every step 1 and nothing cut off: the output has the input's exact type */
        int steps = input_at(n, 4);
        if (steps >= 0) {
            int64_t st[KILN_MAX_RANK];
            int k = is_const(&g->values[steps]) ? kiln_value_const_ints(&g->values[steps], st, KILN_MAX_RANK) : -1;
            if (k < 0) break;
            for (int i = 0; i < k; i++)
                if (st[i] != 1) return KILN_OK;
        }
        if (same_type(x, y)) forward(g, ni, true, changed);
        break;
    }
    case KILN_OP_Reshape:
    case KILN_OP_Flatten:
    case KILN_OP_Squeeze:
    case KILN_OP_Unsqueeze: {
        int a = same_typed_ancestor(g, n->inputs[0], y);
        if (a >= 0) {
            if (kiln_value_live_uses(g, n->outputs[0]) > 0 && kiln_graph_replace_uses(g, n->outputs[0], a))
                *changed = true;
            break;
        }
        if (n->op == KILN_OP_Reshape) return rewrite_reshape_chain(g, ni, changed);
        rewrite_squeeze_pair(g, ni, changed);
        break;
    }
    default:
        break;
    }
    return KILN_OK;
}

/* Dead nodes from the back, so whole dead chains go in one sweep. Use lists must be fresh. */
static void remove_dead(kiln_graph *g, bool *changed) {
    for (int ni = g->n_nodes - 1; ni >= 0; ni--) {
        kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        bool used = false;
        for (int i = 0; i < n->n_outputs && !used; i++)
            used = n->outputs[i] >= 0 && kiln_value_live_uses(g, n->outputs[i]) > 0;
        if (!used) {
            kiln_graph_remove_node(g, ni);
            *changed = true;
        }
    }
}

kiln_status kiln_pass_cleanup(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    (void)ctx;
    *changed = false;
    kiln_status st = kiln_graph_rebuild_uses(g);
    for (int round = 0; !st && round < 64; round++) {
        bool any = false;
        for (int ni = 0; ni < g->n_nodes && !st; ni++) {
            if (g->nodes[ni].dead) continue;
            bool c = false;
            st = rewrite_node(g, ni, &c);
            if (c && !st) st = kiln_graph_rebuild_uses(g); /* later matches read producers and uses */
            any |= c;
        }
        if (st) break;
        remove_dead(g, &any);
        if (!any) break;
        *changed = true;
        st = kiln_graph_compact(g);
    }
    return st ? kiln_error_prefix(st, "cleanup") : KILN_OK;
}
