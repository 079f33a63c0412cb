/* fuse_elementwise.c — connected DAGs of elementwise/broadcast ops become one fused node
 * (kind "elementwise"); a reduction becomes one fused node with its elementwise prologue and
 * epilogue (kind "reduction").
 *
 * Algorithm note. Groups are decided on the unchanged graph, then carved out one by one with
 * kiln_graph_fuse. A group is a set of nodes that will be contracted into one node; the
 * invariant is that contracting every group keeps the graph acyclic. Before a node (or a
 * union of groups) joins, `convex` walks forward from the candidate set through outside nodes;
 * entering a node of another group continues from every member of that group (it will be one
 * node). Reaching the candidate set again means a path leaves it and comes back: a cycle once
 * contracted, so the merge is refused.
 *
 *   1. Reductions (REDUCTION kind), in topological order. Prologue: producers of the data
 *      input that are elementwise, used only by the group, and shaped like the reduction's
 *      input (x*x before ReduceSum). Epilogue: users of the group's values that are
 *      elementwise and shaped like the reduction's output (ReduceMean -> + eps -> Sqrt).
 *      An op that broadcasts the reduced value back up (x - mean) is not an epilogue.
 *
 *             a   b                        a   b
 *              \ /                          \ /
 *              Mul  (prologue)          +----------------+
 *               |                       | Mul->ReduceSum |
 *           ReduceSum                   | ->Add->Sqrt    |  kind "reduction"
 *               |         ==>           +----------------+
 *              Add eps  (epilogue)              |
 *               |
 *              Sqrt
 *
 *   2. Elementwise groups, in topological order: a node joins the union of its producers'
 *      elementwise groups, or failing that (non-convex) the first single producer group that
 *      keeps the invariant, or starts its own group. A path through a conv (or any other
 *      node) from one member to another therefore splits the chain:
 *
 *        Relu --> Conv --> Add          Relu and Add stay apart: fusing them would make
 *          \_______________/            Fused -> Conv -> Fused a cycle.
 *
 * Existing fused nodes (conv epilogues) are never absorbed; single-node groups stay as they
 * are. Expand's shape input and every value known at compile time stay outside groups, so
 * the fused body infers the same shapes the graph did.
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

enum { G_EW = 0, G_RED = 1 };

typedef struct fuser {
    kiln_graph *g;
    int n;          /* nodes at the start (fusing appends) */
    int *group;     /* node -> group id, -1 none */
    int *next;      /* node -> next member of its group, -1 end */
    int *head;      /* group -> first member */
    int *size;      /* group -> member count */
    int *kind;      /* group -> G_EW / G_RED */
    int *gmin, *gmax; /* group -> first and last member index */
    int *red;       /* reduction groups */
    int n_red;
    int n_groups;
    int *stamp;     /* node -> visit mark of the current check */
    int *gmark;     /* group -> candidate mark of the current check */
    int *work;      /* worklist */
    int cur;        /* current mark */
} fuser;

/* Only the first output is used (and it is: dead code is cleanup's business). */
static bool live_outputs_only_first(const kiln_graph *g, const kiln_node *nd) {
    if (nd->n_outputs < 1 || nd->outputs[0] < 0 || kiln_value_live_uses(g, nd->outputs[0]) == 0) return false;
    for (int i = 1; i < nd->n_outputs; i++)
        if (nd->outputs[i] >= 0 && kiln_value_live_uses(g, nd->outputs[i]) > 0) return false;
    return true;
}

/* May this node be a member of an elementwise group (or a reduction's prologue/epilogue)? */
static bool fusible_ew(const kiln_graph *g, int ni) {
    const kiln_node *nd = &g->nodes[ni];
    kiln_op_kind k = kiln_op_table[nd->op].kind;
    if (nd->dead || (k != KILN_KIND_ELEMENTWISE && k != KILN_KIND_BROADCAST)) return false;
    /* views and inference no-ops are cleanup's business; training-mode ops are not pure */
    if (nd->op == KILN_OP_Identity || nd->op == KILN_OP_Dropout || nd->op == KILN_OP_Fused) return false;
    if (nd->op == KILN_OP_BatchNormalization && kiln_attr_int(nd, "training_mode", 0)) return false;
    /* a value known at compile time is folding's business, and its data feeds shape inference */
    return live_outputs_only_first(g, nd) && !g->values[nd->outputs[0]].data;
}

static bool fusible_red(const kiln_graph *g, int ni) {
    const kiln_node *nd = &g->nodes[ni];
    return !nd->dead && kiln_op_table[nd->op].kind == KILN_KIND_REDUCTION && live_outputs_only_first(g, nd) &&
           !g->values[nd->outputs[0]].data;
}

static bool same_shape(const kiln_graph *g, int a, int b) {
    const kiln_value *x = &g->values[a], *y = &g->values[b];
    if (x->rank < 0 || x->rank != y->rank) return false;
    for (int i = 0; i < x->rank; i++) {
        if (x->dims[i] != y->dims[i] || x->sym[i] != y->sym[i]) return false;
        if (x->dims[i] < 0 && !x->sym[i]) return false; /* unknown dims are not known equal */
    }
    return true;
}

static bool is_graph_output(const kiln_graph *g, int v) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return true;
    return false;
}

/* Node ni is in the candidate set: node `extra`, or a member of a marked group. */
static bool in_cand(const fuser *f, int ni, int extra) {
    return ni == extra || (f->group[ni] >= 0 && f->gmark[f->group[ni]] == f->cur);
}

/* Would contracting the candidate set (groups cands[0..nc) + node extra) keep the contracted
 * graph acyclic, and keep every Expand's shape input outside it?
 * Pruning: a path that returns to the set must end at index <= hi (the set's last node). From
 * a node past bound it can only come back by jumping through a group that spans hi, so
 * nodes past bound = max(hi, last node of every reduction group starting before hi) are
 * never visited. (Elementwise groups only hold nodes placed so far, all before hi.) */
static bool convex(fuser *f, const int *cands, int nc, int extra) {
    const kiln_graph *g = f->g;
    f->cur++;
    for (int k = 0; k < nc; k++) f->gmark[cands[k]] = f->cur;
    int nw = 0, hi = extra;
    f->stamp[extra] = f->cur;
    f->work[nw++] = extra;
    for (int k = 0; k < nc; k++)
        for (int m = f->head[cands[k]]; m >= 0; m = f->next[m]) {
            f->stamp[m] = f->cur;
            f->work[nw++] = m;
            if (m > hi) hi = m;
        }
    int bound = hi;
    for (int k = 0; k < f->n_red; k++) {
        int gi = f->red[k];
        if (f->gmark[gi] != f->cur && f->gmin[gi] < hi && f->gmax[gi] > bound) bound = f->gmax[gi];
    }
    for (int w = 0; w < nw; w++) { /* Expand's shape is data the body's inference must know */
        const kiln_node *nd = &g->nodes[f->work[w]];
        if (nd->op == KILN_OP_Expand && nd->n_inputs > 1 && nd->inputs[1] >= 0) {
            int p = g->values[nd->inputs[1]].producer;
            if (p >= 0 && p < f->n && in_cand(f, p, extra)) return false;
        }
    }
    /* forward walk: the set's nodes are the seeds, outside nodes get visited */
    int seeds = nw;
    for (int w = 0; w < nw; w++) {
        int u = f->work[w];
        const kiln_node *nd = &g->nodes[u];
        bool outside = w >= seeds;
        for (int o = 0; o < nd->n_outputs; o++) {
            int v = nd->outputs[o];
            if (v < 0) continue;
            const kiln_value *val = &g->values[v];
            for (int k = 0; k < val->n_users; k++) {
                int c = val->users[k];
                if (c >= f->n || g->nodes[c].dead) continue;
                if (in_cand(f, c, extra)) {
                    if (outside) return false; /* left the set and came back */
                    continue;
                }
                if (c > bound || f->stamp[c] == f->cur) continue;
                f->stamp[c] = f->cur;
                f->work[nw++] = c;
                /* a group is one node once contracted: all its members are reached */
                int gc = f->group[c];
                if (gc >= 0)
                    for (int m = f->head[gc]; m >= 0; m = f->next[m])
                        if (m <= bound && f->stamp[m] != f->cur) {
                            f->stamp[m] = f->cur;
                            f->work[nw++] = m;
                        }
            }
        }
    }
    return true;
}

static int new_group(fuser *f, int ni, int kind) {
    int gi = f->n_groups++;
    f->head[gi] = ni;
    f->size[gi] = 1;
    f->kind[gi] = kind;
    f->gmin[gi] = f->gmax[gi] = ni;
    if (kind == G_RED) f->red[f->n_red++] = gi;
    f->group[ni] = gi;
    f->next[ni] = -1;
    return gi;
}

static void add_to_group(fuser *f, int gi, int ni) {
    f->group[ni] = gi;
    if (ni < f->gmin[gi]) f->gmin[gi] = ni;
    if (ni > f->gmax[gi]) f->gmax[gi] = ni;
    f->next[ni] = f->head[gi];
    f->head[gi] = ni;
    f->size[gi]++;
}

static void merge_groups(fuser *f, int into, int from) {
    if (into == from) return;
    int last = -1;
    for (int m = f->head[from]; m >= 0; m = f->next[m]) {
        f->group[m] = into;
        last = m;
    }
    if (last >= 0) {
        f->next[last] = f->head[into];
        f->head[into] = f->head[from];
    }
    f->size[into] += f->size[from];
    if (f->gmin[from] < f->gmin[into]) f->gmin[into] = f->gmin[from];
    if (f->gmax[from] > f->gmax[into]) f->gmax[into] = f->gmax[from];
    f->head[from] = -1;
    f->size[from] = 0;
}

/* Check whether node ni may join group gi (alone). */
static bool can_join(fuser *f, int gi, int ni) { return convex(f, &gi, 1, ni); }

/* Reduction r with its prologue and epilogue. */
static void grow_reduction(fuser *f, int r) {
    kiln_graph *g = f->g;
    int gi = new_group(f, r, G_RED);
    int rin = g->nodes[r].inputs[0], rout = g->nodes[r].outputs[0];
    /* prologue: walk producers of the data input back through single-use elementwise ops */
    bool grew = true;
    while (grew) {
        grew = false;
        for (int m = f->head[gi]; m >= 0 && !grew; m = f->next[m]) {
            const kiln_node *nd = &g->nodes[m];
            int n_data = m == r ? 1 : (nd->op == KILN_OP_Expand ? 1 : nd->n_inputs);
            if (m != r && !same_shape(g, nd->outputs[0], rin)) continue; /* epilogue member */
            for (int i = 0; i < n_data && !grew; i++) {
                int v = nd->inputs[i];
                if (v < 0) continue;
                int p = g->values[v].producer;
                if (p < 0 || p >= f->n || f->group[p] >= 0 || !fusible_ew(g, p)) continue;
                if (kiln_value_live_uses(g, v) != 1 || is_graph_output(g, v) || !same_shape(g, v, rin)) continue;
                if (can_join(f, gi, p)) {
                    add_to_group(f, gi, p);
                    grew = true;
                }
            }
        }
    }
    /* epilogue: elementwise users shaped like the reduction's output */
    grew = true;
    while (grew) {
        grew = false;
        for (int m = f->head[gi]; m >= 0 && !grew; m = f->next[m]) {
            const kiln_node *nd = &g->nodes[m];
            if (m != r && !same_shape(g, nd->outputs[0], rout)) continue; /* prologue member */
            const kiln_value *val = &g->values[nd->outputs[0]];
            for (int k = 0; k < val->n_users && !grew; k++) {
                int c = val->users[k];
                if (c >= f->n || f->group[c] >= 0 || !fusible_ew(g, c)) continue;
                if (!same_shape(g, g->nodes[c].outputs[0], rout)) continue;
                if (can_join(f, gi, c)) {
                    add_to_group(f, gi, c);
                    grew = true;
                }
            }
        }
    }
}

/* Elementwise node ni joins its producers' groups, or starts one. */
static void place_elementwise(fuser *f, int ni) {
    kiln_graph *g = f->g;
    const kiln_node *nd = &g->nodes[ni];
    int cands[64], nc = 0;
    int n_data = nd->op == KILN_OP_Expand ? 1 : nd->n_inputs;
    for (int i = 0; i < n_data; i++) {
        int v = nd->inputs[i];
        if (v < 0) continue;
        int p = g->values[v].producer;
        if (p < 0 || p >= f->n || f->group[p] < 0 || f->kind[f->group[p]] != G_EW) continue;
        bool seen = false;
        for (int k = 0; k < nc; k++) seen |= cands[k] == f->group[p];
        if (!seen && nc < 64) cands[nc++] = f->group[p];
    }
    if (nc > 1) { /* all producer groups at once */
        if (convex(f, cands, nc, ni)) {
            for (int k = 1; k < nc; k++) merge_groups(f, cands[0], cands[k]);
            add_to_group(f, cands[0], ni);
            return;
        }
    }
    for (int k = 0; k < nc; k++)
        if (can_join(f, cands[k], ni)) {
            add_to_group(f, cands[k], ni);
            return;
        }
    new_group(f, ni, G_EW);
}

kiln_status kiln_pass_fuse_elementwise(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    (void)ctx;
    *changed = false;
    kiln_status st = KILN_OK;
    fuser f = {.g = g, .n = g->n_nodes};
    size_t n1 = (size_t)f.n + 1;
    f.group = malloc(sizeof(int) * n1);
    f.next = malloc(sizeof(int) * n1);
    f.head = malloc(sizeof(int) * n1);
    f.size = malloc(sizeof(int) * n1);
    f.kind = malloc(sizeof(int) * n1);
    f.gmin = malloc(sizeof(int) * n1);
    f.gmax = malloc(sizeof(int) * n1);
    f.red = malloc(sizeof(int) * n1);
    f.stamp = calloc(n1, sizeof(int));
    f.gmark = calloc(n1, sizeof(int));
    f.work = malloc(sizeof(int) * n1 * 2);
    int *members = malloc(sizeof(int) * n1);
    if (!f.group || !f.next || !f.head || !f.size || !f.kind || !f.gmin || !f.gmax || !f.red || !f.stamp || !f.gmark || !f.work || !members) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory grouping elementwise ops");
        goto done;
    }
    for (int ni = 0; ni < f.n; ni++) f.group[ni] = f.next[ni] = -1;
    for (int ni = 0; ni < f.n; ni++)
        if (fusible_red(g, ni)) grow_reduction(&f, ni);
    for (int ni = 0; ni < f.n; ni++)
        if (f.group[ni] < 0 && fusible_ew(g, ni)) place_elementwise(&f, ni);
    /* carve out every group of two or more; groups are disjoint and jointly acyclic */
    for (int gi = 0; gi < f.n_groups; gi++) {
        if (f.size[gi] < 2) continue;
        int k = 0;
        for (int m = f.head[gi]; m >= 0; m = f.next[m]) members[k++] = m;
        int fused;
        st = kiln_graph_fuse(g, members, k, f.kind[gi] == G_RED ? "reduction" : "elementwise", &fused);
        if (st) goto done;
        *changed = true;
    }
done:
    free(f.group);
    free(f.next);
    free(f.head);
    free(f.size);
    free(f.kind);
    free(f.gmin);
    free(f.gmax);
    free(f.red);
    free(f.stamp);
    free(f.gmark);
    free(f.work);
    free(members);
    return st;
}
