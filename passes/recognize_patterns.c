/* recognize_patterns.c — Softmax, LayerNormalization and GELU written out by exporters as
 * primitive ops become the one op they spell, so that the elementwise grouping that follows
 * sees one node (one reduction kernel, one activation) instead of a small DAG.
 *
 * Algorithm note. Each matcher starts at the last node of its pattern (the root) and walks
 * producers backwards, checking op, operand order (commutative ops either way), constants
 * (within 1e-4 relative), reduce axes/keepdims, and that every inner value is used only
 * inside the pattern (and is not a graph output), so removing the pattern loses nothing.
 * The new op writes the root's output value, so consumers and graph-output names stay.
 *
 *   Softmax    Div(Exp(x - ReduceMax(x,a)), ReduceSum(Exp(..), a))        -> Softmax(axis=a)
 *   LayerNorm  (x - ReduceMean(x,A)) / Sqrt(ReduceMean(d*d | d^2, A) + eps)
 *              [* gamma] [+ beta], A = the trailing axes                   -> LayerNormalization
 *   GELU       {x, 0.5, 1 + Erf(x / 1.41421 | x * 0.70711)} multiplied    -> Gelu
 *              {x, 0.5, 1 + Tanh(0.79788 * (x + 0.044715 * x^3))}          -> Gelu(approximate=tanh)
 */
#include "pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXP 12 /* nodes in one pattern */

typedef struct match {
    int nodes[MAXP];
    int n;
} match;

static void take(match *m, int node) {
    if (m->n < MAXP) m->nodes[m->n++] = node;
}

/* Live producer of v with op `op`, or -1. */
static int prod_op(const kiln_graph *g, int v, kiln_op op) {
    if (v < 0) return -1;
    int p = g->values[v].producer;
    if (p < 0 || g->nodes[p].dead || g->nodes[p].op != op) return -1;
    return p;
}

/* Add, or a two-input Sum (ONNX function bodies spell + that way). */
static int prod_add(const kiln_graph *g, int v) {
    int p = prod_op(g, v, KILN_OP_Add);
    if (p < 0 && (p = prod_op(g, v, KILN_OP_Sum)) >= 0 && g->nodes[p].n_inputs != 2) p = -1;
    return p;
}

static bool is_graph_output(const kiln_graph *g, int v) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return true;
    return false;
}

/* v is an inner value of a pattern: used exactly `uses` times, not a graph output. */
static bool inner(const kiln_graph *g, int v, int uses) {
    return v >= 0 && !is_graph_output(g, v) && kiln_value_live_uses(g, v) == uses;
}

/* A known single-element float constant; its value in *out. */
static bool scalar_const(const kiln_graph *g, int v, double *out) {
    if (v < 0) return false;
    const kiln_tensor *t = g->values[v].data;
    if (!t || t->numel != 1 || !kiln_dtype_is_float(t->dtype)) return false;
    *out = kiln_tensor_get(t, 0);
    return true;
}

static bool near(double a, double b) { return fabs(a - b) <= 1e-4 * fabs(b); }

static bool scalar_near(const kiln_graph *g, int v, double want) {
    double c;
    /* the constant must not widen the other operand's rank by broadcasting */
    return scalar_const(g, v, &c) && near(c, want);
}

/* For a binary node, the input that is not v (either order), or -2 when v is not an input. */
static int other_input(const kiln_node *n, int v) {
    if (n->n_inputs != 2) return -2;
    if (n->inputs[0] == v) return n->inputs[1];
    if (n->inputs[1] == v) return n->inputs[0];
    return -2;
}

/* Commutative binary node with one scalar constant ~want: returns the other input or -1. */
static int with_const(const kiln_graph *g, const kiln_node *n, double want) {
    for (int k = 0; k < 2; k++)
        if (scalar_near(g, n->inputs[k], want) && !g->values[n->inputs[1 - k]].data) return n->inputs[1 - k];
    return -1;
}

static bool float_rank(const kiln_graph *g, int v) {
    return v >= 0 && g->values[v].rank > 0 && kiln_dtype_is_float(g->values[v].dtype);
}

/* Sorted, normalized reduce axes of a keepdims=1 reduction over input x (all axes when the
 * axes input is absent). Returns the count, -1 when not a plain keepdims reduction. */
static int reduce_axes(const kiln_graph *g, const kiln_node *r, int rank, int64_t *axes) {
    if (kiln_attr_int(r, "keepdims", 1) != 1) return -1;
    int n;
    if (r->n_inputs < 2 || r->inputs[1] < 0) {
        if (kiln_attr_int(r, "noop_with_empty_axes", 0)) return -1;
        for (n = 0; n < rank; n++) axes[n] = n;
        return n;
    }
    n = kiln_value_const_ints(&g->values[r->inputs[1]], axes, KILN_MAX_RANK);
    if (n <= 0) return -1;
    for (int i = 0; i < n; i++)
        if (!kiln_norm_axis(axes[i], rank, &axes[i])) return -1;
    for (int i = 1; i < n; i++) /* insertion sort; duplicates are rejected */
        for (int j = i; j > 0 && axes[j - 1] >= axes[j]; j--) {
            if (axes[j - 1] == axes[j]) return -1;
            int64_t t = axes[j];
            axes[j] = axes[j - 1];
            axes[j - 1] = t;
        }
    return n;
}

/* Same dtype and shape (static dims equal, symbolic dims the same symbol). */
static bool same_type(const kiln_graph *g, int a, int b) {
    const kiln_value *x = &g->values[a], *y = &g->values[b];
    if (x->dtype != y->dtype || x->rank != y->rank || x->rank < 0) return false;
    for (int i = 0; i < x->rank; i++)
        if (x->dims[i] != y->dims[i] || x->sym[i] != y->sym[i]) return false;
    return true;
}

/* Replaces the matched nodes by one node of op `op` that reads ins and writes root's output.
 * *new_node is -1 (nothing done) when the pattern's result is not shaped like ins[0]: a
 * constant that widened the shape by broadcasting is not part of the op. */
static kiln_status replace(kiln_graph *g, const match *m, int root, kiln_op op, const int *ins, int n_in,
                           int *new_node) {
    int out = g->nodes[root].outputs[0];
    *new_node = -1;
    if (!same_type(g, out, ins[0])) return KILN_OK;
    char name[256];
    snprintf(name, sizeof name, "%s", g->nodes[root].name ? g->nodes[root].name : "");
    int id = g->nodes[root].id;
    for (int k = 0; k < m->n; k++) kiln_graph_remove_node(g, m->nodes[k]);
    int nn = kiln_graph_add_node(g, op, name, ins, n_in, &out, 1);
    if (nn < 0) return kiln_error_prefix(KILN_ERR_OOM, "recognizing %s", kiln_op_table[op].onnx_type);
    g->nodes[nn].id = id;
    *new_node = nn;
    return KILN_OK;
}

/* ------------------------------------------------------------ Softmax -- */
static kiln_status try_softmax(kiln_graph *g, int root, bool *hit) {
    const kiln_node *d = &g->nodes[root];
    if (d->op != KILN_OP_Div) return KILN_OK;
    match m = {.n = 0};
    take(&m, root);
    int e = d->inputs[0], s = d->inputs[1];
    int rs = prod_op(g, s, KILN_OP_ReduceSum), ex = prod_op(g, e, KILN_OP_Exp);
    if (rs < 0 || ex < 0 || g->nodes[rs].inputs[0] != e || !inner(g, s, 1) || !inner(g, e, 2)) return KILN_OK;
    int t = g->nodes[ex].inputs[0];
    int sub = prod_op(g, t, KILN_OP_Sub);
    if (sub < 0 || !inner(g, t, 1)) return KILN_OK;
    int x = g->nodes[sub].inputs[0], mx = g->nodes[sub].inputs[1];
    int rm = prod_op(g, mx, KILN_OP_ReduceMax);
    if (rm < 0 || g->nodes[rm].inputs[0] != x || !inner(g, mx, 1) || !float_rank(g, x)) return KILN_OK;
    int rank = g->values[x].rank;
    int64_t a1[KILN_MAX_RANK], a2[KILN_MAX_RANK];
    if (reduce_axes(g, &g->nodes[rs], rank, a1) != 1 || reduce_axes(g, &g->nodes[rm], rank, a2) != 1 ||
        a1[0] != a2[0])
        return KILN_OK;
    take(&m, rs);
    take(&m, ex);
    take(&m, sub);
    take(&m, rm);
    int nn;
    kiln_status st = replace(g, &m, root, KILN_OP_Softmax, &x, 1, &nn);
    if (!st && nn >= 0) st = kiln_node_set_int(&g->nodes[nn], "axis", a1[0]);
    *hit = !st && nn >= 0;
    return st;
}

/* ---------------------------------------------------------- LayerNorm -- */
/* gamma/beta: a float constant of x's dtype that varies only along the normalized axes
 * [axis, rank) and does not widen x by broadcasting. */
static bool affine_param(const kiln_graph *g, int p, int x, int axis) {
    const kiln_value *pv = &g->values[p], *xv = &g->values[x];
    if (!pv->data || pv->dtype != xv->dtype || pv->rank > xv->rank) return false;
    for (int i = 0; i < pv->rank; i++) {
        int xd = xv->rank - pv->rank + i; /* right-aligned */
        int64_t d = pv->dims[i];
        if (d == 1) continue;
        if (xd < axis || xv->dims[xd] != d) return false;
    }
    return true;
}

/* The parameter as a constant of rank <= rank-axis (leading ones dropped), or a constant
 * filled with `fill` over the normalized dims ([1] when they are not static). */
static int param_value(kiln_graph *g, int p, int x, int axis, double fill, const char *hint) {
    const kiln_value *xv = &g->values[x];
    int nr = xv->rank - axis;
    int64_t dims[KILN_MAX_RANK];
    kiln_tensor *t;
    if (p >= 0) {
        const kiln_tensor *src = g->values[p].data;
        if (src->rank <= nr) return p;
        int lead = src->rank - nr;
        t = kiln_tensor_new(src->dtype, nr, src->dims + lead);
        if (!t) return -1;
        memcpy(t->data, src->data, t->nbytes);
    } else {
        bool stat = true;
        for (int i = 0; i < nr; i++) stat &= (dims[i] = xv->dims[axis + i]) >= 0;
        if (!stat) {
            nr = 1;
            dims[0] = 1;
        }
        t = kiln_tensor_new(xv->dtype, nr, dims);
        if (!t) return -1;
        for (int64_t i = 0; i < t->numel; i++) kiln_tensor_set(t, i, fill);
    }
    return kiln_graph_add_const(g, t, hint);
}

/* The single live user of v, or -1. */
static int sole_user(const kiln_graph *g, int v) {
    if (!inner(g, v, 1)) return -1;
    const kiln_value *val = &g->values[v];
    for (int u = 0; u < val->n_users; u++)
        if (!g->nodes[val->users[u]].dead) return val->users[u];
    return -1;
}

static kiln_status try_layernorm(kiln_graph *g, int div, bool *hit) {
    const kiln_node *dn = &g->nodes[div];
    if (dn->op != KILN_OP_Div) return KILN_OK;
    match m = {.n = 0};
    int d = dn->inputs[0], sd = dn->inputs[1];
    int sq = prod_op(g, sd, KILN_OP_Sqrt), sub = prod_op(g, d, KILN_OP_Sub);
    if (sq < 0 || sub < 0 || !inner(g, sd, 1)) return KILN_OK;
    int ve = g->nodes[sq].inputs[0];
    int add = prod_add(g, ve);
    if (add < 0 || !inner(g, ve, 1)) return KILN_OK;
    int var = -1;
    double eps = 0;
    for (int k = 0; k < 2 && var < 0; k++)
        if (scalar_const(g, g->nodes[add].inputs[k], &eps) && !g->values[g->nodes[add].inputs[1 - k]].data)
            var = g->nodes[add].inputs[1 - k];
    int rv = prod_op(g, var, KILN_OP_ReduceMean);
    if (rv < 0 || !inner(g, var, 1) || !(eps >= 0)) return KILN_OK;
    int sqv = g->nodes[rv].inputs[0];
    int pw = prod_op(g, sqv, KILN_OP_Pow), mul = prod_op(g, sqv, KILN_OP_Mul);
    int d_uses;
    if (pw >= 0 && g->nodes[pw].inputs[0] == d && scalar_near(g, g->nodes[pw].inputs[1], 2.0)) d_uses = 2;
    else if (mul >= 0 && g->nodes[mul].inputs[0] == d && g->nodes[mul].inputs[1] == d) d_uses = 3;
    else return KILN_OK;
    if (!inner(g, sqv, 1) || !inner(g, d, d_uses)) return KILN_OK;
    int x = g->nodes[sub].inputs[0], mean = g->nodes[sub].inputs[1];
    int rm = prod_op(g, mean, KILN_OP_ReduceMean);
    if (rm < 0 || g->nodes[rm].inputs[0] != x || !inner(g, mean, 1) || !float_rank(g, x)) return KILN_OK;
    int rank = g->values[x].rank;
    int64_t a1[KILN_MAX_RANK], a2[KILN_MAX_RANK];
    int n1 = reduce_axes(g, &g->nodes[rm], rank, a1), n2 = reduce_axes(g, &g->nodes[rv], rank, a2);
    if (n1 <= 0 || n1 != n2) return KILN_OK;
    for (int i = 0; i < n1; i++) /* the same trailing axes: [axis, rank) */
        if (a1[i] != a2[i] || a1[i] != rank - n1 + i) return KILN_OK;
    int axis = rank - n1;
    int nodes[] = {div, sq, add, rv, pw >= 0 ? pw : mul, sub, rm};
    for (int k = 0; k < 7; k++) take(&m, nodes[k]);
    /* optional affine tail: * gamma, then + beta (constants on the normalized axes) */
    int root = div, gamma = -1, beta = -1;
    int u = sole_user(g, dn->outputs[0]);
    if (u >= 0 && g->nodes[u].op == KILN_OP_Mul) {
        int p = other_input(&g->nodes[u], dn->outputs[0]);
        if (p >= 0 && affine_param(g, p, x, axis)) {
            gamma = p;
            root = u;
            take(&m, u);
        }
    }
    u = sole_user(g, g->nodes[root].outputs[0]);
    if (u >= 0 && (g->nodes[u].op == KILN_OP_Add || g->nodes[u].op == KILN_OP_Sum)) {
        int p = other_input(&g->nodes[u], g->nodes[root].outputs[0]);
        if (p >= 0 && affine_param(g, p, x, axis)) {
            beta = p;
            root = u;
            take(&m, u);
        }
    }
    if (!same_type(g, g->nodes[root].outputs[0], x)) return KILN_OK;
    char hint[160];
    snprintf(hint, sizeof hint, "%.100s_ln", g->nodes[root].name ? g->nodes[root].name : "");
    int ins[3] = {x, param_value(g, gamma, x, axis, 1.0, hint), param_value(g, beta, x, axis, 0.0, hint)};
    if (ins[1] < 0 || ins[2] < 0) return kiln_error_prefix(KILN_ERR_OOM, "recognizing LayerNormalization");
    int nn;
    kiln_status st = replace(g, &m, root, KILN_OP_LayerNormalization, ins, 3, &nn);
    if (!st && nn >= 0) st = kiln_node_set_int(&g->nodes[nn], "axis", axis);
    if (!st && nn >= 0) st = kiln_node_set_float(&g->nodes[nn], "epsilon", (float)eps);
    *hit = !st && nn >= 0;
    return st;
}

/* --------------------------------------------------------------- GELU -- */
/* Is c = x^3 (Pow(x,3), x*(x*x) or (x*x)*x)? Adds its nodes to m. */
static bool cube_of(const kiln_graph *g, int c, int x, match *m) {
    int pw = prod_op(g, c, KILN_OP_Pow);
    if (pw >= 0 && g->nodes[pw].inputs[0] == x && scalar_near(g, g->nodes[pw].inputs[1], 3.0)) {
        take(m, pw);
        return true;
    }
    int mu = prod_op(g, c, KILN_OP_Mul);
    if (mu < 0) return false;
    int sqv = other_input(&g->nodes[mu], x);
    int sq = prod_op(g, sqv, KILN_OP_Mul);
    if (sq < 0 || !inner(g, sqv, 1) || g->nodes[sq].inputs[0] != x || g->nodes[sq].inputs[1] != x) return false;
    take(m, mu);
    take(m, sq);
    return true;
}

/* p = 1 + Erf(x/sqrt2) or 1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3)); *x_out gets x. */
static bool gelu_inner(const kiln_graph *g, int p, match *m, int *x_out, bool *tanh_form) {
    int add = prod_add(g, p);
    if (add < 0 || !inner(g, p, 1)) return false;
    int e = with_const(g, &g->nodes[add], 1.0);
    if (!inner(g, e, 1)) return false;
    take(m, add);
    int erf = prod_op(g, e, KILN_OP_Erf), th = prod_op(g, e, KILN_OP_Tanh);
    if (erf >= 0) {
        take(m, erf);
        int t = g->nodes[erf].inputs[0];
        int dv = prod_op(g, t, KILN_OP_Div), mu = prod_op(g, t, KILN_OP_Mul);
        if (!inner(g, t, 1)) return false;
        if (dv >= 0 && scalar_near(g, g->nodes[dv].inputs[1], sqrt(2.0))) {
            *x_out = g->nodes[dv].inputs[0];
            take(m, dv);
        } else if (mu >= 0 && (*x_out = with_const(g, &g->nodes[mu], sqrt(0.5))) >= 0) {
            take(m, mu);
        } else {
            return false;
        }
        *tanh_form = false;
        return true;
    }
    if (th < 0) return false;
    take(m, th);
    int uv = g->nodes[th].inputs[0];
    int mu = prod_op(g, uv, KILN_OP_Mul);
    if (mu < 0 || !inner(g, uv, 1)) return false;
    int s = with_const(g, &g->nodes[mu], 0.7978845608028654 /* sqrt(2/pi) */);
    int sa = prod_add(g, s);
    if (sa < 0 || !inner(g, s, 1)) return false;
    take(m, mu);
    take(m, sa);
    /* x + k with k = 0.044715 * x^3: try both operand orders for which one is x */
    for (int k = 0; k < 2; k++) {
        int x = g->nodes[sa].inputs[k], kv = g->nodes[sa].inputs[1 - k];
        int km = prod_op(g, kv, KILN_OP_Mul);
        if (km < 0 || !inner(g, kv, 1)) continue;
        int c = with_const(g, &g->nodes[km], 0.044715);
        match save = *m;
        if (c >= 0 && inner(g, c, 1) && cube_of(g, c, x, m)) {
            take(m, km);
            *x_out = x;
            *tanh_form = true;
            return true;
        }
        *m = save;
    }
    return false;
}

static kiln_status try_gelu(kiln_graph *g, int root, bool *hit) {
    const kiln_node *r = &g->nodes[root];
    if (r->op != KILN_OP_Mul) return KILN_OK;
    /* the factors of a two-Mul product tree: exactly {x, 0.5, p} */
    int leaves[3], nl = 0, inner_mul = -1;
    for (int i = 0; i < 2; i++) {
        int v = r->inputs[i];
        int mu = prod_op(g, v, KILN_OP_Mul);
        if (mu >= 0 && inner_mul < 0 && inner(g, v, 1)) {
            inner_mul = mu;
            leaves[nl++] = g->nodes[mu].inputs[0];
            leaves[nl++] = g->nodes[mu].inputs[1];
        } else if (nl < 3) {
            leaves[nl++] = v;
        } else {
            return KILN_OK;
        }
    }
    if (nl != 3 || inner_mul < 0) return KILN_OK;
    for (int h = 0; h < 3; h++) {
        if (!scalar_near(g, leaves[h], 0.5)) continue;
        for (int pi = 0; pi < 3; pi++) {
            if (pi == h) continue;
            int p = leaves[pi], xo = leaves[3 - h - pi];
            match m = {.n = 0};
            take(&m, root);
            take(&m, inner_mul);
            int x = -1;
            bool tanh_form = false;
            if (!gelu_inner(g, p, &m, &x, &tanh_form) || x != xo || !float_rank(g, x)) continue;
            int nn;
            kiln_status st = replace(g, &m, root, KILN_OP_Gelu, &x, 1, &nn);
            if (!st && nn >= 0 && tanh_form) st = kiln_node_set_str(&g->nodes[nn], "approximate", "tanh");
            *hit = !st && nn >= 0;
            return st;
        }
    }
    return KILN_OK;
}

kiln_status kiln_pass_recognize_patterns(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    (void)ctx;
    *changed = false;
    int n = g->n_nodes; /* nodes appended by rewrites are not roots again */
    for (int ni = 0; ni < n; ni++) {
        bool hit = false;
        kiln_status st = KILN_OK;
        if (!g->nodes[ni].dead && g->nodes[ni].n_outputs == 1 && g->nodes[ni].outputs[0] >= 0) {
            st = try_softmax(g, ni, &hit);
            if (!st && !hit) st = try_layernorm(g, ni, &hit);
            if (!st && !hit) st = try_gelu(g, ni, &hit);
        }
        if (st) return st;
        *changed |= hit;
    }
    return KILN_OK;
}
