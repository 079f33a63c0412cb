/*
 * simplify_shapes.c — turns shape sub-graphs into constants, leaving only dynamic dims
 * symbolic.
 *
 * PyTorch exports x.view(x.size(0), -1) as
 *
 *     x[N,2048,1,1] ──> Shape ──> Gather(0) ──> Unsqueeze(0) ──┐
 *           │                                  [-1] ──────────> Concat ──> s
 *           └──────────────────────────────────────────────────────────> Reshape(x, s)
 *
 * A "partial constant" evaluator runs over the small integer vectors of such chains (Shape,
 * Size, Gather, Slice, Unsqueeze, Squeeze, Concat, Cast, Identity and integer Add/Sub/Mul/Div
 * on vectors of at most PV_MAX elements). Each element is a known integer, "dim d of value v"
 * (with v's symbol, when it has one), or opaque. Then:
 *   - a value of such a chain whose elements are all known becomes a constant (Shape of a
 *     static tensor, Shape(x)[i] for a static dim i of a partially dynamic x, ...); constant
 *     folding and cleanup finish the chain;
 *   - a Reshape whose shape is such a vector gets a constant shape: an element that is dim j
 *     of the Reshape's own input at position j becomes 0 ("copy", when allowzero is 0), and
 *     the single remaining unknown element becomes -1 ("infer"). In the example s becomes
 *     [0, -1] and the whole Shape chain dies.
 * Values that are graph outputs are left alone (a constant cannot carry an output's name).
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

#define PV_MAX 16

enum { PE_OPAQUE = 0, PE_KNOWN, PE_DIM };

typedef struct pelem {
    int kind;
    int64_t k;   /* PE_KNOWN: the value */
    int v, d;    /* PE_DIM: dim d of value v ... */
    int32_t sym; /* ... whose symbol is sym (0: none) */
} pelem;

typedef struct pvec {
    bool valid;
    int rank; /* 0 (scalar) or 1 */
    int n;
    pelem e[PV_MAX];
} pvec;

static bool is_const(const kiln_value *v) { return v->data && !(v->flags & KILN_VALUE_INPUT); }

static bool const_ints(const kiln_graph *g, int v, int64_t *out, int max, int *n) {
    if (v < 0 || !is_const(&g->values[v]) || !kiln_dtype_is_int(g->values[v].dtype)) return false;
    *n = kiln_value_const_ints(&g->values[v], out, max);
    return *n >= 0;
}

/* The vector a value holds, when it is tracked (constant or built by a tracked node). */
static const pvec *get(const kiln_graph *g, pvec *pv, int v) {
    if (v < 0) return NULL;
    if (pv[v].valid) return &pv[v];
    const kiln_value *val = &g->values[v];
    if (is_const(val) && kiln_dtype_is_int(val->dtype) && val->rank <= 1 && val->data->numel <= PV_MAX) {
        pvec *p = &pv[v];
        p->rank = val->rank;
        p->n = (int)val->data->numel;
        for (int i = 0; i < p->n; i++) {
            p->e[i].kind = PE_KNOWN;
            p->e[i].k = kiln_tensor_get_i64(val->data, i);
        }
        p->valid = true;
        return p;
    }
    return NULL;
}

static pelem known(int64_t k) {
    pelem e = {PE_KNOWN, k, -1, -1, 0};
    return e;
}

/* Elementwise integer arithmetic on known elements; anything else is opaque. */
static pelem arith(kiln_op op, pelem a, pelem b) {
    pelem o = {PE_OPAQUE, 0, -1, -1, 0};
    if (a.kind != PE_KNOWN || b.kind != PE_KNOWN) return o;
    int64_t r;
    switch (op) {
    case KILN_OP_Add:
        if (__builtin_add_overflow(a.k, b.k, &r)) return o;
        break;
    case KILN_OP_Sub:
        if (__builtin_sub_overflow(a.k, b.k, &r)) return o;
        break;
    case KILN_OP_Mul:
        if (__builtin_mul_overflow(a.k, b.k, &r)) return o;
        break;
    case KILN_OP_Div: /* only where truncation and floor agree */
        if (a.k < 0 || b.k <= 0) return o;
        r = a.k / b.k;
        break;
    default:
        return o;
    }
    return known(r);
}

/* Evaluate node n's first output as a vector, if its inputs are tracked. */
static void eval_node(const kiln_graph *g, pvec *pv, const kiln_node *n) {
    if (n->n_outputs < 1 || n->outputs[0] < 0) return;
    const kiln_value *yv = &g->values[n->outputs[0]];
    if (yv->rank < 0 || yv->rank > 1 || !kiln_dtype_is_int(yv->dtype)) return;
    pvec r;
    memset(&r, 0, sizeof r);
    r.rank = yv->rank;
    const pvec *a = n->n_inputs > 0 ? get(g, pv, n->inputs[0]) : NULL;
    int64_t idx[PV_MAX];
    int k;
    switch (n->op) {
    case KILN_OP_Shape: {
        const kiln_value *x = &g->values[n->inputs[0]];
        if (x->rank < 0) return;
        int64_t lo = kiln_attr_int(n, "start", 0), hi = kiln_attr_int(n, "end", x->rank);
        if (lo < 0) lo = lo < -x->rank ? 0 : lo + x->rank;
        if (hi < 0) hi = hi < -x->rank ? 0 : hi + x->rank;
        if (lo > x->rank) lo = x->rank;
        if (hi > x->rank) hi = x->rank;
        for (int64_t d = lo; d < hi; d++) {
            pelem e = {PE_DIM, 0, n->inputs[0], (int)d, x->sym[d]};
            r.e[r.n++] = x->dims[d] >= 0 ? known(x->dims[d]) : e;
        }
        break;
    }
    case KILN_OP_Size: {
        int64_t c = kiln_value_numel(&g->values[n->inputs[0]]);
        if (c < 0) return;
        r.e[r.n++] = known(c);
        break;
    }
    case KILN_OP_Identity:
    case KILN_OP_Cast:
        if (!a) return;
        r.n = a->n;
        memcpy(r.e, a->e, sizeof(pelem) * (size_t)a->n);
        break;
    case KILN_OP_Gather: {
        if (!a || a->rank != 1 || !const_ints(g, n->inputs[1], idx, PV_MAX, &k)) return;
        int64_t axis = kiln_attr_int(n, "axis", 0);
        if (axis != 0 && axis != -1) return;
        for (int i = 0; i < k; i++) {
            int64_t j = idx[i] < 0 ? idx[i] + a->n : idx[i];
            if (j < 0 || j >= a->n) return;
            r.e[r.n++] = a->e[j];
        }
        break;
    }
    case KILN_OP_Unsqueeze:
    case KILN_OP_Squeeze:
        if (!a || a->n != 1) return; /* scalar <-> [1] */
        r.n = 1;
        r.e[0] = a->e[0];
        break;
    case KILN_OP_Concat:
        if (kiln_attr_int(n, "axis", 0) != 0 && kiln_attr_int(n, "axis", 0) != -1) return;
        for (int i = 0; i < n->n_inputs; i++) {
            const pvec *p = get(g, pv, n->inputs[i]);
            if (!p || p->rank != 1 || r.n + p->n > PV_MAX) return;
            memcpy(r.e + r.n, p->e, sizeof(pelem) * (size_t)p->n);
            r.n += p->n;
        }
        break;
    case KILN_OP_Slice: {
        int64_t s[1], e[1], ax[1] = {0}, st[1] = {1};
        int ks, ke, ka, kt;
        if (!a || a->rank != 1 || !const_ints(g, n->inputs[1], s, 1, &ks) || !const_ints(g, n->inputs[2], e, 1, &ke) ||
            ks != 1 || ke != 1)
            return;
        if (n->n_inputs > 3 && n->inputs[3] >= 0 && (!const_ints(g, n->inputs[3], ax, 1, &ka) || ka != 1)) return;
        if (n->n_inputs > 4 && n->inputs[4] >= 0 && (!const_ints(g, n->inputs[4], st, 1, &kt) || kt != 1)) return;
        if ((ax[0] != 0 && ax[0] != -1) || st[0] == 0) return;
        int64_t len = a->n, b = s[0], en = e[0];
        if (b < 0) b += len;
        if (en < 0) en += len;
        if (st[0] > 0) {
            b = b < 0 ? 0 : b > len ? len : b;
            en = en < 0 ? 0 : en > len ? len : en;
            for (int64_t i = b; i < en; i += st[0]) { /* no i + step past en: steps may be huge */
                r.e[r.n++] = a->e[i];
                if (en - i <= st[0]) break;
            }
        } else {
            b = b < -1 ? -1 : b > len - 1 ? len - 1 : b;
            en = en < -1 ? -1 : en > len - 1 ? len - 1 : en;
            for (int64_t i = b; i > en; i += st[0]) {
                r.e[r.n++] = a->e[i];
                if (st[0] == INT64_MIN || i - en <= -st[0]) break;
            }
        }
        break;
    }
    case KILN_OP_Add:
    case KILN_OP_Sub:
    case KILN_OP_Mul:
    case KILN_OP_Div: {
        const pvec *b = get(g, pv, n->inputs[1]);
        if (!a || !b || (a->n != b->n && a->n != 1 && b->n != 1)) return;
        r.n = a->n > b->n ? a->n : b->n;
        for (int i = 0; i < r.n; i++) r.e[i] = arith(n->op, a->e[a->n == 1 ? 0 : i], b->e[b->n == 1 ? 0 : i]);
        break;
    }
    default:
        return;
    }
    /* what the vector says must agree with inference */
    if (r.rank == 0 ? r.n != 1 : (yv->dims[0] >= 0 && yv->dims[0] != r.n)) return;
    r.valid = true;
    pv[n->outputs[0]] = r;
}

static bool all_known(const pvec *p) {
    for (int i = 0; i < p->n; i++)
        if (p->e[i].kind != PE_KNOWN) return false;
    return true;
}

static kiln_status make_const(kiln_graph *g, kiln_dtype dt, int rank, const int64_t *vals, int n, const char *hint,
                              int *id) {
    int64_t d = n;
    kiln_tensor *t = kiln_tensor_new(dt, rank, &d);
    if (!t) return kiln_error_prefix(KILN_ERR_OOM, "simplify-shapes");
    for (int i = 0; i < n; i++) kiln_tensor_set_i64(t, i, vals[i]);
    *id = kiln_graph_add_const(g, t, hint);
    return *id < 0 ? kiln_errorf(KILN_ERR_OOM, "simplify-shapes: out of memory") : KILN_OK;
}

/* Value v of node n: all elements known -> a constant. */
static kiln_status constify(kiln_graph *g, const pvec *p, const kiln_node *n, int v, bool *changed) {
    bool has_var_input = false;
    for (int i = 0; i < n->n_inputs; i++) has_var_input |= n->inputs[i] >= 0 && !is_const(&g->values[n->inputs[i]]);
    if (!has_var_input || !all_known(p)) return KILN_OK; /* constant inputs: folding's job */
    if ((g->values[v].flags & KILN_VALUE_OUTPUT) || kiln_value_live_uses(g, v) == 0) return KILN_OK;
    int64_t vals[PV_MAX];
    for (int i = 0; i < p->n; i++) vals[i] = p->e[i].k;
    int c = -1;
    kiln_status st = make_const(g, g->values[v].dtype, p->rank, vals, p->n, g->values[v].name, &c);
    if (st) return st;
    kiln_graph_replace_uses(g, v, c); /* not an output: cannot fail */
    *changed = true;
    return KILN_OK;
}

/* Reshape(x, s) with s a tracked vector: 0 for "dim j of x", -1 for the one unknown. */
static kiln_status reshape_shape(kiln_graph *g, const pvec *pv, int ni, bool *changed) {
    const kiln_node *n = &g->nodes[ni];
    int xv = n->inputs[0], s = n->inputs[1];
    if (is_const(&g->values[s]) || !pv[s].valid || pv[s].rank != 1) return KILN_OK;
    const pvec *p = &pv[s];
    const kiln_value *x = &g->values[xv];
    bool allowzero = kiln_attr_int(n, "allowzero", 0) != 0;
    int64_t vals[PV_MAX];
    int unknown = -1, minus_one = 0, zeros = 0;
    for (int j = 0; j < p->n; j++) {
        const pelem *e = &p->e[j];
        if (e->kind == PE_KNOWN) {
            vals[j] = e->k;
            minus_one += e->k == -1;
            zeros += e->k == 0;
            continue;
        }
        bool copy = !allowzero && e->kind == PE_DIM && j < x->rank && x->dims[j] < 0 &&
                    ((e->v == xv && e->d == j) || (e->sym != 0 && x->sym[j] == e->sym));
        if (copy) {
            vals[j] = 0;
            continue;
        }
        if (unknown >= 0) return KILN_OK; /* two unknowns: -1 can stand for one only */
        unknown = j;
    }
    if (unknown >= 0) {
        if (minus_one || (allowzero && zeros)) return KILN_OK;
        vals[unknown] = -1;
    }
    int c = -1;
    kiln_status st = make_const(g, g->values[s].dtype, 1, vals, p->n, g->values[s].name, &c);
    if (st) return st;
    g->nodes[ni].inputs[1] = c;
    *changed = true;
    return KILN_OK;
}

kiln_status kiln_pass_simplify_shapes(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    (void)ctx;
    *changed = false;
    kiln_status st = kiln_graph_rebuild_uses(g);
    if (st) return kiln_error_prefix(st, "simplify-shapes");
    int nv = g->n_values;
    pvec *pv = calloc((size_t)nv + 1, sizeof *pv);
    if (!pv) return kiln_errorf(KILN_ERR_OOM, "simplify-shapes: out of memory");
    /* 1. vectors, in topological order (values added below are never looked up: ids >= nv) */
    for (int ni = 0; ni < g->n_nodes; ni++)
        if (!g->nodes[ni].dead) eval_node(g, pv, &g->nodes[ni]);
    /* 2. rewrites */
    int nn = g->n_nodes;
    for (int ni = 0; ni < nn && !st; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead || n->n_outputs < 1 || n->outputs[0] < 0) continue;
        if (n->op == KILN_OP_Reshape) {
            st = reshape_shape(g, pv, ni, changed);
            continue;
        }
        int v = n->outputs[0];
        if (v < nv && pv[v].valid) st = constify(g, &pv[v], n, v, changed);
    }
    free(pv);
    return st ? kiln_error_prefix(st, "simplify-shapes") : KILN_OK;
}
