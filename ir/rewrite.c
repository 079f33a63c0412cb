/* rewrite.c — graph editing for passes: replacing uses, removing nodes, compaction with a
 * stable topological sort, constants, cloning, and carving a convex node set out into a
 * fused node that owns it as a sub-graph. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

static char *dup_s(const char *s) {
    size_t n = strlen(s ? s : "") + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s ? s : "", n);
    return d;
}

int kiln_value_live_uses(const kiln_graph *g, int v) {
    int n = 0;
    const kiln_value *val = &g->values[v];
    for (int i = 0; i < val->n_users; i++) n += !g->nodes[val->users[i]].dead;
    for (int i = 0; i < g->n_outputs; i++) n += g->outputs[i] == v;
    return n;
}

bool kiln_graph_replace_uses(kiln_graph *g, int old_v, int new_v) {
    if (old_v == new_v) return true;
    bool is_out = false, new_is_out = false;
    for (int i = 0; i < g->n_outputs; i++) {
        is_out |= g->outputs[i] == old_v;
        new_is_out |= g->outputs[i] == new_v;
    }
    kiln_value *ov = &g->values[old_v], *nv = &g->values[new_v];
    if (is_out) {
        if (nv->producer < 0 || (nv->flags & (KILN_VALUE_INPUT | KILN_VALUE_OUTPUT)) || new_is_out) return false;
        char *tmp = ov->name; /* the output keeps its name */
        ov->name = nv->name;
        nv->name = tmp;
        nv->flags |= KILN_VALUE_OUTPUT;
        ov->flags &= ~(unsigned)KILN_VALUE_OUTPUT;
        for (int i = 0; i < g->n_outputs; i++)
            if (g->outputs[i] == old_v) g->outputs[i] = new_v;
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] == old_v) n->inputs[i] = new_v;
    }
    return true;
}

void kiln_graph_remove_node(kiln_graph *g, int node) { g->nodes[node].dead = true; }

static void free_node_contents(kiln_node *n) {
    free(n->name);
    free(n->inputs);
    free(n->outputs);
    for (int a = 0; a < n->n_attrs; a++) kiln_attr_free(&n->attrs[a]);
    free(n->attrs);
    kiln_graph_free(n->body);
    memset(n, 0, sizeof *n);
}

kiln_status kiln_graph_compact(kiln_graph *g) {
    kiln_status st = KILN_OK;
    int nv = g->n_values, nn = g->n_nodes;
    int *producer = malloc(sizeof(int) * (size_t)(nv + 1));
    int *order = malloc(sizeof(int) * (size_t)(nn + 1));
    int *pending = calloc((size_t)nn + 1, sizeof(int));
    bool *ready_v = calloc((size_t)nv + 1, sizeof(bool));
    bool *placed = calloc((size_t)nn + 1, sizeof(bool));
    int *vmap = malloc(sizeof(int) * (size_t)(nv + 1));
    bool *used = calloc((size_t)nv + 1, sizeof(bool));
    if (!producer || !order || !pending || !ready_v || !placed || !vmap || !used) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        goto done;
    }
    /* 1. stable topological order of live nodes: repeatedly take the first ready node */
    for (int v = 0; v < nv; v++) producer[v] = -1;
    for (int ni = 0; ni < nn; ni++) {
        if (g->nodes[ni].dead) continue;
        for (int i = 0; i < g->nodes[ni].n_outputs; i++)
            if (g->nodes[ni].outputs[i] >= 0) producer[g->nodes[ni].outputs[i]] = ni;
    }
    for (int v = 0; v < nv; v++) ready_v[v] = producer[v] < 0;
    int n_live = 0, n_order = 0;
    for (int ni = 0; ni < nn; ni++) n_live += !g->nodes[ni].dead;
    int scan = 0;
    while (n_order < n_live) {
        int pick = -1;
        for (int ni = scan; ni < nn && pick < 0; ni++) {
            const kiln_node *n = &g->nodes[ni];
            if (n->dead || placed[ni]) continue;
            bool ok = true;
            for (int i = 0; i < n->n_inputs && ok; i++) ok = n->inputs[i] < 0 || ready_v[n->inputs[i]];
            if (ok) pick = ni;
        }
        if (pick < 0) {
            st = kiln_errorf(KILN_ERR_INTERNAL, "graph has a cycle after a rewrite");
            goto done;
        }
        placed[pick] = true;
        order[n_order++] = pick;
        for (int i = 0; i < g->nodes[pick].n_outputs; i++)
            if (g->nodes[pick].outputs[i] >= 0) ready_v[g->nodes[pick].outputs[i]] = true;
        while (scan < nn && (g->nodes[scan].dead || placed[scan])) scan++;
    }
    /* 2. values in use: graph inputs/outputs, live node inputs/outputs */
    for (int i = 0; i < g->n_inputs; i++) used[g->inputs[i]] = true;
    for (int i = 0; i < g->n_outputs; i++) used[g->outputs[i]] = true;
    for (int k = 0; k < n_order; k++) {
        const kiln_node *n = &g->nodes[order[k]];
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] >= 0) used[n->inputs[i]] = true;
        for (int i = 0; i < n->n_outputs; i++)
            if (n->outputs[i] >= 0) used[n->outputs[i]] = true;
    }
    int w = 0;
    for (int v = 0; v < nv; v++) {
        if (!used[v]) {
            vmap[v] = -1;
            free(g->values[v].name);
            free(g->values[v].users);
            kiln_tensor_free(g->values[v].data);
            continue;
        }
        vmap[v] = w;
        g->values[w++] = g->values[v];
    }
    g->n_values = w;
    /* 3. nodes in the new order, value ids remapped */
    kiln_node *nodes = malloc(sizeof *nodes * (size_t)(nn + 1));
    if (!nodes) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        goto done;
    }
    for (int k = 0; k < n_order; k++) {
        nodes[k] = g->nodes[order[k]];
        kiln_node *n = &nodes[k];
        for (int i = 0; i < n->n_inputs; i++) n->inputs[i] = n->inputs[i] >= 0 ? vmap[n->inputs[i]] : -1;
        for (int i = 0; i < n->n_outputs; i++) n->outputs[i] = n->outputs[i] >= 0 ? vmap[n->outputs[i]] : -1;
    }
    for (int ni = 0; ni < nn; ni++)
        if (g->nodes[ni].dead) free_node_contents(&g->nodes[ni]);
    free(g->nodes);
    g->nodes = nodes;
    g->n_nodes = n_order;
    g->cap_nodes = nn + 1;
    for (int i = 0; i < g->n_inputs; i++) g->inputs[i] = vmap[g->inputs[i]];
    for (int i = 0; i < g->n_outputs; i++) g->outputs[i] = vmap[g->outputs[i]];
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].alias_of >= 0 && g->values[v].alias_of < nv) g->values[v].alias_of = vmap[g->values[v].alias_of];
    st = kiln_graph_rebuild_uses(g);
done:
    free(producer);
    free(order);
    free(pending);
    free(ready_v);
    free(placed);
    free(vmap);
    free(used);
    return st;
}

kiln_status kiln_graph_normalize(kiln_graph *g) {
    kiln_status st = kiln_graph_compact(g);
    if (!st) st = kiln_graph_infer(g);
    if (!st) st = kiln_graph_verify(g);
    return st;
}

int kiln_graph_add_const(kiln_graph *g, kiln_tensor *t, const char *hint) {
    char name[192];
    for (int k = 0;; k++) {
        snprintf(name, sizeof name, "%.120s__const%d", hint ? hint : "", k);
        if (kiln_graph_find_value(g, name) < 0) break;
    }
    int id = kiln_graph_add_value(g, name);
    if (id < 0) {
        kiln_tensor_free(t);
        return -1;
    }
    kiln_value *v = &g->values[id];
    v->data = t;
    v->flags |= KILN_VALUE_INITIALIZER;
    kiln_value_set(v, t->dtype, t->rank, t->dims);
    return id;
}

/* ------------------------------------------------------------- clone -- */
static kiln_status copy_attr(kiln_attr *d, const kiln_attr *s) {
    memset(d, 0, sizeof *d);
    d->name = dup_s(s->name);
    d->type = s->type;
    d->i = s->i;
    d->f = s->f;
    d->n = s->n;
    if (!d->name) return KILN_ERR_OOM;
    if (s->s && !(d->s = dup_s(s->s))) return KILN_ERR_OOM;
    if (s->ints) {
        d->ints = malloc(sizeof(int64_t) * (size_t)(s->n + 1));
        if (!d->ints) return KILN_ERR_OOM;
        memcpy(d->ints, s->ints, sizeof(int64_t) * (size_t)s->n);
    }
    if (s->floats) {
        d->floats = malloc(sizeof(float) * (size_t)(s->n + 1));
        if (!d->floats) return KILN_ERR_OOM;
        memcpy(d->floats, s->floats, sizeof(float) * (size_t)s->n);
    }
    if (s->strings) {
        d->strings = calloc((size_t)s->n + 1, sizeof(char *));
        if (!d->strings) return KILN_ERR_OOM;
        for (int i = 0; i < s->n; i++)
            if (!(d->strings[i] = dup_s(s->strings[i]))) return KILN_ERR_OOM;
    }
    if (s->t && !(d->t = kiln_tensor_clone(s->t))) return KILN_ERR_OOM;
    return KILN_OK;
}

kiln_graph *kiln_graph_clone(const kiln_graph *g) {
    kiln_graph *c = kiln_graph_new();
    if (!c) return NULL;
    free(c->name);
    c->name = dup_s(g->name);
    c->opset = g->opset;
    c->arena_bytes = g->arena_bytes;
    for (int i = 0; i < g->n_symbols; i++)
        if (!kiln_graph_symbol(c, g->symbols[i])) goto oom;
    for (int v = 0; v < g->n_values; v++) {
        const kiln_value *s = &g->values[v];
        int id = kiln_graph_add_value(c, s->name);
        if (id < 0) goto oom;
        kiln_value *d = &c->values[id];
        char *name = d->name;
        *d = *s;
        d->name = name;
        d->users = NULL;
        d->n_users = d->cap_users = 0;
        d->data = NULL;
        if (s->data && !(d->data = kiln_tensor_clone(s->data))) goto oom;
    }
    c->inputs = malloc(sizeof(int) * (size_t)(g->n_inputs + 1));
    c->outputs = malloc(sizeof(int) * (size_t)(g->n_outputs + 1));
    if (!c->inputs || !c->outputs) goto oom;
    memcpy(c->inputs, g->inputs, sizeof(int) * (size_t)g->n_inputs);
    memcpy(c->outputs, g->outputs, sizeof(int) * (size_t)g->n_outputs);
    c->n_inputs = g->n_inputs;
    c->n_outputs = g->n_outputs;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const kiln_node *s = &g->nodes[ni];
        if (s->dead) continue;
        int k = kiln_graph_add_node(c, s->op, s->name, s->inputs, s->n_inputs, s->outputs, s->n_outputs);
        if (k < 0) goto oom;
        kiln_node *d = &c->nodes[k];
        d->id = s->id;
        if (s->n_attrs) {
            d->attrs = calloc((size_t)s->n_attrs, sizeof *d->attrs);
            if (!d->attrs) goto oom;
            for (int a = 0; a < s->n_attrs; a++) {
                d->n_attrs++;
                if (copy_attr(&d->attrs[a], &s->attrs[a])) goto oom;
            }
        }
        if (s->body && !(d->body = kiln_graph_clone(s->body))) goto oom;
    }
    return c;
oom:
    kiln_graph_free(c);
    kiln_errorf(KILN_ERR_OOM, "out of memory cloning a graph");
    return NULL;
}

/* ------------------------------------------------------------ fusion -- */
bool kiln_graph_is_convex(const kiln_graph *g, const int *nodes, int n) {
    /* Walk forward from the set's outputs through nodes outside the set; reaching a set
     * node means a path leaves and re-enters. Nodes are in topological order, so one pass
     * in index order suffices. */
    bool *in_set = calloc((size_t)g->n_nodes + 1, sizeof(bool));
    bool *tainted = calloc((size_t)g->n_nodes + 1, sizeof(bool)); /* outside node downstream of the set */
    bool ok = in_set && tainted;
    if (!ok) goto done;
    int first = g->n_nodes;
    for (int k = 0; k < n; k++) {
        in_set[nodes[k]] = true;
        if (nodes[k] < first) first = nodes[k];
    }
    for (int ni = first; ni < g->n_nodes && ok; ni++) {
        const kiln_node *nd = &g->nodes[ni];
        if (nd->dead) continue;
        bool from_set = false, from_taint = false;
        for (int i = 0; i < nd->n_inputs; i++) {
            int v = nd->inputs[i];
            if (v < 0 || g->values[v].producer < 0) continue;
            int p = g->values[v].producer;
            if (in_set[p]) from_set = true;
            if (tainted[p]) from_taint = true;
        }
        if (in_set[ni]) {
            if (from_taint) ok = false;
        } else if (from_set || from_taint) {
            tainted[ni] = true;
        }
    }
done:
    free(in_set);
    free(tainted);
    return ok;
}

static int index_of(const int *arr, int n, int x) {
    for (int i = 0; i < n; i++)
        if (arr[i] == x) return i;
    return -1;
}

kiln_status kiln_graph_fuse(kiln_graph *g, const int *nodes, int n, const char *kind, int *fused) {
    if (n <= 0) return kiln_errorf(KILN_ERR_INVALID_ARG, "fusing an empty node set");
    if (!kiln_graph_is_convex(g, nodes, n))
        return kiln_errorf(KILN_ERR_INVALID_ARG, "fusing a node set that is not convex would create a cycle");
    kiln_status st = KILN_OK;
    int cap = 16;
    for (int k = 0; k < n; k++) cap += g->nodes[nodes[k]].n_inputs + g->nodes[nodes[k]].n_outputs;
    int *ins = malloc(sizeof(int) * (size_t)cap), *outs = malloc(sizeof(int) * (size_t)cap);
    int *vmap = malloc(sizeof(int) * (size_t)(g->n_values + 1));
    int *sorted = malloc(sizeof(int) * (size_t)n);
    bool *in_set = calloc((size_t)g->n_nodes + 1, sizeof(bool));
    int n_ins = 0, n_outs = 0;
    kiln_graph *body = NULL;
    if (!ins || !outs || !vmap || !sorted || !in_set) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        goto done;
    }
    for (int k = 0; k < n; k++) in_set[nodes[k]] = true;
    int m = 0; /* the set in graph (topological) order */
    for (int ni = 0; ni < g->n_nodes; ni++)
        if (in_set[ni]) sorted[m++] = ni;
    for (int k = 0; k < m; k++) {
        const kiln_node *nd = &g->nodes[sorted[k]];
        for (int i = 0; i < nd->n_inputs; i++) {
            int v = nd->inputs[i];
            if (v < 0) continue;
            int p = g->values[v].producer;
            if ((p < 0 || !in_set[p] || g->nodes[p].dead) && index_of(ins, n_ins, v) < 0) ins[n_ins++] = v;
        }
    }
    for (int k = 0; k < m; k++) {
        const kiln_node *nd = &g->nodes[sorted[k]];
        for (int i = 0; i < nd->n_outputs; i++) {
            int v = nd->outputs[i];
            if (v < 0) continue;
            bool outside = false;
            const kiln_value *val = &g->values[v];
            for (int u = 0; u < val->n_users && !outside; u++)
                outside = !in_set[val->users[u]] && !g->nodes[val->users[u]].dead;
            for (int o = 0; o < g->n_outputs && !outside; o++) outside = g->outputs[o] == v;
            if (outside) outs[n_outs++] = v;
        }
    }
    if (n_outs == 0) {
        st = kiln_errorf(KILN_ERR_INVALID_ARG, "the fused set defines nothing used outside it");
        goto done;
    }
    /* body: copies of the boundary and inner values, then the nodes */
    body = kiln_graph_new();
    if (!body) {
        st = KILN_ERR_OOM;
        goto done;
    }
    free(body->name);
    body->name = dup_s(kind);
    body->opset = g->opset;
    for (int i = 0; i < g->n_symbols; i++)
        if (!kiln_graph_symbol(body, g->symbols[i])) goto oom;
    for (int v = 0; v < g->n_values; v++) vmap[v] = -1;
    body->inputs = malloc(sizeof(int) * (size_t)(n_ins + 1));
    body->outputs = malloc(sizeof(int) * (size_t)(n_outs + 1));
    if (!body->inputs || !body->outputs) goto oom;
#define BODY_VALUE(v)                                                                              \
    do {                                                                                           \
        if (vmap[v] < 0) {                                                                         \
            int id_ = kiln_graph_add_value(body, g->values[v].name);                               \
            if (id_ < 0) goto oom;                                                                 \
            kiln_value_copy_type(&body->values[id_], &g->values[v]);                               \
            body->values[id_].arena_offset = -1;                                                   \
            body->values[id_].alias_of = -1;                                                       \
            vmap[v] = id_;                                                                         \
        }                                                                                          \
    } while (0)
    for (int i = 0; i < n_ins; i++) {
        BODY_VALUE(ins[i]);
        body->values[vmap[ins[i]]].flags |= KILN_VALUE_INPUT;
        body->inputs[body->n_inputs++] = vmap[ins[i]];
    }
    for (int k = 0; k < m; k++) {
        const kiln_node *nd = &g->nodes[sorted[k]];
        int bi[64], bo[64];
        int *pi = nd->n_inputs <= 64 ? bi : malloc(sizeof(int) * (size_t)nd->n_inputs);
        int *po = nd->n_outputs <= 64 ? bo : malloc(sizeof(int) * (size_t)nd->n_outputs);
        if (!pi || !po) goto oom;
        for (int i = 0; i < nd->n_inputs; i++) pi[i] = nd->inputs[i] >= 0 ? vmap[nd->inputs[i]] : -1;
        for (int i = 0; i < nd->n_outputs; i++) {
            if (nd->outputs[i] >= 0) BODY_VALUE(nd->outputs[i]);
            po[i] = nd->outputs[i] >= 0 ? vmap[nd->outputs[i]] : -1;
        }
        int bn = kiln_graph_add_node(body, nd->op, nd->name, pi, nd->n_inputs, po, nd->n_outputs);
        if (pi != bi) free(pi);
        if (po != bo) free(po);
        if (bn < 0) goto oom;
        kiln_node *dn = &body->nodes[bn];
        dn->id = nd->id;
        /* move attributes and a nested body: the original node dies */
        kiln_node *sn = &g->nodes[sorted[k]];
        dn->attrs = sn->attrs;
        dn->n_attrs = sn->n_attrs;
        dn->body = sn->body;
        sn->attrs = NULL;
        sn->n_attrs = 0;
        sn->body = NULL;
    }
#undef BODY_VALUE
    for (int o = 0; o < n_outs; o++) {
        body->values[vmap[outs[o]]].flags |= KILN_VALUE_OUTPUT;
        body->outputs[body->n_outputs++] = vmap[outs[o]];
    }
    for (int k = 0; k < m; k++) g->nodes[sorted[k]].dead = true;
    /* the fused node itself (appended; the next compaction puts it in order) */
    char name[256];
    snprintf(name, sizeof name, "%s_%s", kind, g->nodes[sorted[0]].name ? g->nodes[sorted[0]].name : "");
    int id0 = g->nodes[sorted[0]].id;
    int fn = kiln_graph_add_node(g, KILN_OP_Fused, name, ins, n_ins, outs, n_outs);
    if (fn < 0) goto oom;
    g->nodes[fn].id = id0;
    g->nodes[fn].body = body;
    body = NULL;
    if ((st = kiln_node_set_str(&g->nodes[fn], "kind", kind))) goto done;
    *fused = fn;
    goto done;
oom:
    st = kiln_errorf(KILN_ERR_OOM, "out of memory while fusing");
done:
    kiln_graph_free(body);
    free(ins);
    free(outs);
    free(vmap);
    free(sorted);
    free(in_set);
    return st;
}

int kiln_fused_outer_value(const kiln_node *f, int bv) {
    for (int i = 0; i < f->body->n_inputs; i++)
        if (f->body->inputs[i] == bv) return f->inputs[i];
    for (int i = 0; i < f->body->n_outputs; i++)
        if (f->body->outputs[i] == bv) return f->outputs[i];
    return -1;
}

int kiln_graph_unfuse(kiln_graph *g, int fi, int *out, int max) {
    kiln_graph *body = g->nodes[fi].body;
    if (body->n_nodes > max) return -1;
    int *vmap = malloc(sizeof(int) * (size_t)(body->n_values + 1));
    if (!vmap) return -1;
    for (int v = 0; v < body->n_values; v++) {
        vmap[v] = kiln_fused_outer_value(&g->nodes[fi], v);
        if (vmap[v] >= 0) continue;
        bool used = false;
        for (int k = 0; k < body->n_nodes && !used; k++)
            for (int i = 0; i < body->nodes[k].n_outputs; i++) used |= body->nodes[k].outputs[i] == v;
        if (!used) continue;
        int nv = kiln_graph_add_value(g, NULL); /* an inner value: anonymous, the group hides it */
        if (nv < 0) {
            free(vmap);
            return -1;
        }
        kiln_value_copy_type(&g->values[nv], &body->values[v]);
        g->values[nv].layout = body->values[v].layout;
        g->values[nv].arena_offset = -1;
        g->values[nv].alias_of = -1;
        vmap[v] = nv;
    }
    int n = 0;
    for (int k = 0; k < body->n_nodes; k++) {
        kiln_node *bn = &body->nodes[k];
        int ins[16], outs[4];
        if (bn->n_inputs > 16 || bn->n_outputs > 4) break;
        for (int i = 0; i < bn->n_inputs; i++) ins[i] = bn->inputs[i] >= 0 ? vmap[bn->inputs[i]] : -1;
        for (int i = 0; i < bn->n_outputs; i++) outs[i] = bn->outputs[i] >= 0 ? vmap[bn->outputs[i]] : -1;
        int ni = kiln_graph_add_node(g, bn->op, bn->name, ins, bn->n_inputs, outs, bn->n_outputs);
        if (ni < 0) break;
        kiln_node *dn = &g->nodes[ni];
        dn->id = bn->id;
        dn->attrs = bn->attrs; /* moved: the body dies with F */
        dn->n_attrs = bn->n_attrs;
        bn->attrs = NULL;
        bn->n_attrs = 0;
        out[n++] = ni;
    }
    free(vmap);
    if (n != body->n_nodes) return -1;
    g->nodes[fi].dead = true;
    return n;
}
