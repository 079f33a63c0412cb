/*
 * fold_batchnorm.c — fold per-output-channel affine maps into the weights of the producer.
 *
 * Algorithm. Every op handled here is, at inference, an affine map y = s[c] * x + t[c] per
 * output channel c (BatchNormalization: s = scale / sqrt(var + eps), t = B - mean * s;
 * Mul/Div/Add/Sub by a constant that only varies along the channel axis). When x is the
 * output of a Conv / ConvTranspose / Gemm whose weights (and bias, if any) are constant and
 * whose output feeds nothing else, the map is folded into new constant weights:
 *
 *     Conv(X, W, b) -> BN(s, t)      ==>   Conv(X, W', b')   W'[m,...] = W[m,...] * s[m]
 *                                                            b'[m]     = b[m] * s[m] + t[m]
 *
 *   ConvTranspose: W is [C_in, M/group, k...]; element [c, j, ...] feeds output channel
 *                  (c / (C_in/group)) * (M/group) + j.
 *   Gemm:          Y = alpha*A*B + beta*C, channel = the N dim (last). B's column j (row j
 *                  with transB) is scaled; the new C is beta*C*s + t (shape [N], or [M,N]
 *                  when C varied along M) and beta becomes 1.
 *
 * The producer takes over the folded op's output value (so graph output names survive) and
 * the folded op dies. Chains (Conv -> BN -> Mul -> Add) fold in one sweep because nodes are
 * visited in topological order. Weights are computed in double and stored in the weight's
 * dtype (f32/f64 only: folding f16 weights would round more than the unfused graph does).
 * Original weight tensors are never modified (another node may share them).
 *
 * A BatchNormalization that cannot fold (its producer is no such op or feeds other nodes)
 * but has constant parameters becomes Mul(x, s) -> Add(., t)
 * with precomputed [C,1,...,1] constants: codegen then never sees BatchNormalization, the
 * elementwise fusion merges the pair with its neighbours. A BN after a sole-use Conv whose
 * weights are computed by nodes (not yet folded to constants) is left for a later fixpoint
 * iteration (BN stays BN if they never do); after weights that are graph inputs, which
 * never become constant, it converts.
 */
#include "pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Channel count and axis of an anchor's output, or false when op is no fold target. */
static bool anchor_channels(const kiln_graph *g, const kiln_node *n, int64_t *M, int *axis) {
    const kiln_value *y = &g->values[n->outputs[0]];
    if (y->rank < 2) return false;
    if (n->op == KILN_OP_Conv || n->op == KILN_OP_ConvTranspose) {
        *axis = 1;
    } else if (n->op == KILN_OP_Gemm) {
        *axis = y->rank - 1;
    } else {
        return false;
    }
    *M = y->dims[*axis];
    if (*M <= 0) return false;
    /* the weight's output-channel extent must agree with the output (else leave it alone) */
    const kiln_value *w = &g->values[n->inputs[1]];
    if (n->op == KILN_OP_Conv) return w->rank >= 1 && w->dims[0] == *M;
    if (n->op == KILN_OP_Gemm) return w->rank == 2 && w->dims[kiln_attr_int(n, "transB", 0) ? 0 : 1] == *M;
    return true;
}

/* May node n's weights take a fold? Constant float weights (and bias / C if present),
 * single output used by exactly one live node and not a graph output. */
static bool foldable_producer(const kiln_graph *g, int pi, int64_t *M, int *axis) {
    if (pi < 0) return false;
    const kiln_node *p = &g->nodes[pi];
    if (p->dead || (p->op != KILN_OP_Conv && p->op != KILN_OP_ConvTranspose && p->op != KILN_OP_Gemm)) return false;
    if (p->n_outputs != 1 || p->outputs[0] < 0 || p->n_inputs < 2 || p->inputs[1] < 0) return false;
    const kiln_value *w = &g->values[p->inputs[1]];
    if (!w->data || (w->dtype != KILN_F32 && w->dtype != KILN_F64)) return false;
    if (p->n_inputs > 2 && p->inputs[2] >= 0 && !g->values[p->inputs[2]].data) return false;
    if (p->op == KILN_OP_Gemm && w->rank != 2) return false;
    if (kiln_value_live_uses(g, p->outputs[0]) != 1) return false;
    if (!anchor_channels(g, p, M, axis)) return false;
    return g->values[p->outputs[0]].dtype == w->dtype;
}

/* Would producer pi take a fold once its weights are constant (folding may make them so in
 * a later fixpoint iteration)? Then a BN after it waits instead of becoming Mul+Add. */
static bool awaits_constants(const kiln_graph *g, int pi) {
    if (pi < 0) return false;
    const kiln_node *p = &g->nodes[pi];
    if (p->op != KILN_OP_Conv && p->op != KILN_OP_ConvTranspose && p->op != KILN_OP_Gemm) return false;
    if (p->n_outputs != 1 || p->outputs[0] < 0 || p->n_inputs < 2 || p->inputs[1] < 0) return false;
    return kiln_value_live_uses(g, p->outputs[0]) == 1 && g->values[p->inputs[1]].producer >= 0;
}

/* Values of constant c per channel when c, broadcast against y (rank r), only varies along
 * axis (size M): rank <= r, every dim 1 except possibly that axis. out[M]. */
static bool per_channel(const kiln_value *c, const kiln_value *y, int axis, int64_t M, double *out) {
    if (!c->data || !kiln_dtype_is_float(c->dtype) || c->rank < 0 || c->rank > y->rank) return false;
    int64_t stride = 0, acc = 1;
    for (int i = c->rank - 1; i >= 0; i--) {
        int oa = y->rank - c->rank + i;
        if (c->dims[i] != 1) {
            if (oa != axis || c->dims[i] != M) return false;
            stride = acc;
        }
        acc *= c->dims[i];
    }
    for (int64_t m = 0; m < M; m++) out[m] = kiln_tensor_get(c->data, stride ? m * stride : 0);
    return true;
}

/* Replace input slot k of node ni with a new constant t (adds the slot when missing). */
static kiln_status set_const_input(kiln_graph *g, int ni, int k, kiln_tensor *t, const char *hint) {
    int v = kiln_graph_add_const(g, t, hint);
    if (v < 0) return kiln_errorf(KILN_ERR_OOM, "out of memory adding a folded constant");
    kiln_node *n = &g->nodes[ni];
    if (n->n_inputs <= k) {
        int *in = realloc(n->inputs, sizeof(int) * (size_t)(k + 1));
        if (!in) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        n->inputs = in;
        for (int i = n->n_inputs; i <= k; i++) in[i] = -1;
        n->n_inputs = k + 1;
    }
    n->inputs[k] = v;
    return KILN_OK;
}

/* Fold y = s[c] * x + t[c] into producer pi of x; the producer then defines out_v. */
static kiln_status fold_into(kiln_graph *g, int pi, int M, const double *s, const double *t, int out_v) {
    kiln_status st;
    const kiln_node *p = &g->nodes[pi];
    const kiln_value *wv = &g->values[p->inputs[1]];
    const kiln_tensor *w = wv->data;
    const kiln_tensor *b = p->n_inputs > 2 && p->inputs[2] >= 0 ? g->values[p->inputs[2]].data : NULL;
    kiln_op op = p->op;
    char hint[160];
    snprintf(hint, sizeof hint, "%.100s_folded", wv->name);

    /* weights: channel of each element */
    kiln_tensor *nw = kiln_tensor_new(w->dtype, w->rank, w->dims);
    if (!nw) return kiln_errorf(KILN_ERR_OOM, "out of memory folding weights");
    int64_t inner = 1;
    for (int i = 2; i < w->rank; i++) inner *= w->dims[i];
    bool tb = op == KILN_OP_Gemm && kiln_attr_int(p, "transB", 0) != 0;
    int64_t group = op == KILN_OP_ConvTranspose ? kiln_attr_int(p, "group", 1) : 1;
    if (op == KILN_OP_ConvTranspose && (group < 1 || w->dims[0] % group || w->dims[1] * group != M)) {
        kiln_tensor_free(nw);
        return KILN_OK; /* inconsistent; leave it to the verifier */
    }
    if (op == KILN_OP_Conv && w->dtype == KILN_F32) { /* the common case, without divisions */
        int64_t per = w->numel / w->dims[0];
        const float *src = w->data;
        float *dst = nw->data;
        for (int64_t m = 0; m < M; m++)
            for (int64_t j = 0; j < per; j++) dst[m * per + j] = (float)((double)src[m * per + j] * s[m]);
    } else {
        for (int64_t i = 0; i < w->numel; i++) {
            int64_t m;
            if (op == KILN_OP_Conv) {
                m = i / (w->numel / w->dims[0]);
            } else if (op == KILN_OP_ConvTranspose) {
                int64_t c = i / (w->dims[1] * inner), j = (i / inner) % w->dims[1];
                m = (c / (w->dims[0] / group)) * w->dims[1] + j;
            } else {
                m = tb ? i / w->dims[1] : i % w->dims[1];
            }
            kiln_tensor_set(nw, i, kiln_tensor_get(w, i) * s[m]);
        }
    }

    /* bias */
    kiln_tensor *nb;
    if (op != KILN_OP_Gemm) {
        int64_t d = M;
        nb = kiln_tensor_new(w->dtype, 1, &d);
        if (!nb) {
            kiln_tensor_free(nw);
            return kiln_errorf(KILN_ERR_OOM, "out of memory folding a bias");
        }
        for (int64_t m = 0; m < M; m++) kiln_tensor_set(nb, m, (b ? kiln_tensor_get(b, m) : 0.0) * s[m] + t[m]);
    } else {
        /* C broadcasts to [Mrows, N]; keep its row extent when it has one */
        double beta = kiln_attr_float(p, "beta", 1.0f);
        int64_t rows = b && b->rank == 2 ? b->dims[0] : 1;
        int64_t cst[2] = {0, 0}, od[2] = {rows, M};
        if (b) kiln_bcast_strides(b, 2, od, cst);
        nb = rows > 1 ? kiln_tensor_new(w->dtype, 2, od) : kiln_tensor_new(w->dtype, 1, &od[1]);
        if (!nb) {
            kiln_tensor_free(nw);
            return kiln_errorf(KILN_ERR_OOM, "out of memory folding a bias");
        }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t m = 0; m < M; m++)
                kiln_tensor_set(nb, r * M + m,
                                (b ? beta * kiln_tensor_get(b, r * cst[0] + m * cst[1]) : 0.0) * s[m] + t[m]);
    }
    if ((st = set_const_input(g, pi, 1, nw, hint))) {
        kiln_tensor_free(nb);
        return st;
    }
    snprintf(hint, sizeof hint, "%.100s_bias_folded", g->values[g->nodes[pi].outputs[0]].name);
    if ((st = set_const_input(g, pi, 2, nb, hint))) return st;
    if (op == KILN_OP_Gemm && (st = kiln_node_set_float(&g->nodes[pi], "beta", 1.0f))) return st;
    /* the producer now defines the folded op's output (its old output dies unused) */
    g->nodes[pi].outputs[0] = out_v;
    g->values[out_v].producer = pi;
    return KILN_OK;
}

/* s, t of a BatchNormalization with constant parameters (M channels); false otherwise. */
static bool bn_affine(const kiln_graph *g, const kiln_node *n, int64_t M, double *s, double *t) {
    if (n->n_inputs != 5 || kiln_attr_int(n, "training_mode", 0) != 0) return false;
    for (int o = 1; o < n->n_outputs; o++)
        if (n->outputs[o] >= 0 && kiln_value_live_uses(g, n->outputs[o]) > 0) return false;
    const kiln_tensor *p[4];
    for (int i = 0; i < 4; i++) {
        int v = n->inputs[i + 1];
        if (v < 0 || !(p[i] = g->values[v].data) || p[i]->numel != M || !kiln_dtype_is_float(p[i]->dtype))
            return false;
    }
    double eps = kiln_attr_float(n, "epsilon", 1e-5f);
    for (int64_t m = 0; m < M; m++) {
        s[m] = kiln_tensor_get(p[0], m) / sqrt(kiln_tensor_get(p[3], m) + eps);
        t[m] = kiln_tensor_get(p[1], m) - kiln_tensor_get(p[2], m) * s[m];
    }
    return true;
}

/* Standalone BN -> Mul(x, s) -> Add(., t) with [C,1,...,1] constants. */
static kiln_status bn_to_mul_add(kiln_graph *g, int ni, int64_t M, const double *s, const double *t) {
    const kiln_value *x = &g->values[g->nodes[ni].inputs[0]];
    int64_t d[KILN_MAX_RANK];
    int rank = x->rank - 1;
    d[0] = M;
    for (int i = 1; i < rank; i++) d[i] = 1;
    kiln_dtype dt = x->dtype;
    kiln_tensor *ts = kiln_tensor_new(dt, rank, d), *tt = kiln_tensor_new(dt, rank, d);
    if (!ts || !tt) {
        kiln_tensor_free(ts);
        kiln_tensor_free(tt);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    for (int64_t m = 0; m < M; m++) {
        kiln_tensor_set(ts, m, s[m]);
        kiln_tensor_set(tt, m, t[m]);
    }
    char hint[160];
    int y = g->nodes[ni].outputs[0], in = g->nodes[ni].inputs[0];
    snprintf(hint, sizeof hint, "%.100s_scale", g->values[y].name);
    int vs = kiln_graph_add_const(g, ts, hint);
    snprintf(hint, sizeof hint, "%.100s_shift", g->values[y].name);
    int vt = vs < 0 ? -1 : kiln_graph_add_const(g, tt, hint);
    if (vs < 0) kiln_tensor_free(tt);
    snprintf(hint, sizeof hint, "%.100s__scaled", g->values[y].name);
    int vm = -1;
    for (int k = 0; vt >= 0 && vm < 0; k++) {
        char name[192];
        snprintf(name, sizeof name, "%s%d", hint, k);
        if (kiln_graph_find_value(g, name) >= 0) continue;
        if ((vm = kiln_graph_add_value(g, name)) < 0) break;
    }
    if (vm < 0) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    char name[160];
    snprintf(name, sizeof name, "%.120s_mul", g->nodes[ni].name);
    int mi[2] = {in, vs}, ai[2] = {vm, vt};
    if (kiln_graph_add_node(g, KILN_OP_Mul, name, mi, 2, &vm, 1) < 0) return KILN_ERR_OOM;
    snprintf(name, sizeof name, "%.120s_add", g->nodes[ni].name);
    if (kiln_graph_add_node(g, KILN_OP_Add, name, ai, 2, &y, 1) < 0) return KILN_ERR_OOM;
    kiln_graph_remove_node(g, ni);
    return KILN_OK;
}

/* Affine (s, t) of a Mul/Add/Sub/Div of producer output x by a per-channel constant. */
static bool binary_affine(const kiln_graph *g, const kiln_node *n, int x, int axis, int64_t M, double *s, double *t) {
    if (n->n_inputs != 2 || n->inputs[0] < 0 || n->inputs[1] < 0 || n->inputs[0] == n->inputs[1]) return false;
    int xi = n->inputs[0] == x ? 0 : n->inputs[1] == x ? 1 : -1;
    if (xi < 0) return false;
    const kiln_value *c = &g->values[n->inputs[1 - xi]], *y = &g->values[x];
    if (c->dtype != y->dtype || !per_channel(c, y, axis, M, t)) return false;
    for (int64_t m = 0; m < M; m++) {
        switch (n->op) {
        case KILN_OP_Mul: s[m] = t[m]; t[m] = 0; break;
        case KILN_OP_Add: s[m] = 1; break;
        case KILN_OP_Sub:
            if (xi == 0) { s[m] = 1; t[m] = -t[m]; }
            else s[m] = -1;
            break;
        case KILN_OP_Div:
            if (xi != 0 || t[m] == 0) return false;
            s[m] = 1.0 / t[m];
            t[m] = 0;
            break;
        default: return false;
        }
    }
    return true;
}

/* Grow the per-channel scratch arrays to M entries. */
static kiln_status reserve(double **s, double **t, int64_t *cap, int64_t M) {
    if (M <= *cap) return KILN_OK;
    double *ns = realloc(*s, sizeof(double) * (size_t)M);
    if (ns) *s = ns;
    double *nt = ns ? realloc(*t, sizeof(double) * (size_t)M) : NULL;
    if (nt) *t = nt;
    if (!ns || !nt) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    *cap = M;
    return KILN_OK;
}

kiln_status kiln_pass_fold_batchnorm(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    (void)ctx;
    *changed = false;
    kiln_status st = KILN_OK;
    double *s = NULL, *t = NULL;
    int64_t cap = 0;
    int n_nodes = g->n_nodes; /* nodes added below (BN -> Mul+Add) are not revisited */
    for (int ni = 0; ni < n_nodes; ni++) {
        kiln_node *n = &g->nodes[ni];
        kiln_op op = n->op;
        if (n->dead || n->n_outputs < 1 || n->outputs[0] < 0 || n->n_inputs < 1 || n->inputs[0] < 0) continue;
        if (op != KILN_OP_BatchNormalization && op != KILN_OP_Mul && op != KILN_OP_Add && op != KILN_OP_Sub &&
            op != KILN_OP_Div)
            continue;
        /* the producer candidate: BN reads X; binary ops either operand */
        int x = -1, pi = -1;
        int64_t M = 0;
        int axis = 1;
        for (int i = 0; i < (op == KILN_OP_BatchNormalization ? 1 : n->n_inputs) && pi < 0; i++) {
            int v = n->inputs[i];
            if (v >= 0 && foldable_producer(g, g->values[v].producer, &M, &axis)) {
                x = v;
                pi = g->values[v].producer;
            }
        }
        if (op == KILN_OP_BatchNormalization) {
            const kiln_value *xv = &g->values[n->inputs[0]];
            if (pi < 0) { /* standalone: Mul + Add when the channel count is known */
                if (xv->rank < 2 || xv->dims[1] <= 0 || (xv->dtype != KILN_F32 && xv->dtype != KILN_F64)) continue;
                if (awaits_constants(g, xv->producer)) continue;
                M = xv->dims[1];
            }
            if ((st = reserve(&s, &t, &cap, M))) break;
            /* BN's channel axis is 1; for a Gemm anchor that is its N axis when rank is 2 */
            if (pi >= 0 && axis != 1) continue;
            if (!bn_affine(g, n, M, s, t)) continue;
            st = pi >= 0 ? fold_into(g, pi, (int)M, s, t, n->outputs[0]) : bn_to_mul_add(g, ni, M, s, t);
            if (st) break;
            if (pi >= 0) kiln_graph_remove_node(g, ni);
            *changed = true;
            continue;
        }
        if (pi < 0) continue;
        if ((st = reserve(&s, &t, &cap, M))) break;
        /* the result must keep the producer's shape (no broadcast growth) */
        const kiln_value *yv = &g->values[n->outputs[0]], *xv = &g->values[x];
        if (yv->rank != xv->rank || memcmp(yv->dims, xv->dims, sizeof(int64_t) * (size_t)xv->rank)) continue;
        if (!binary_affine(g, n, x, axis, M, s, t)) continue;
        if ((st = fold_into(g, pi, (int)M, s, t, n->outputs[0]))) break;
        kiln_graph_remove_node(g, ni);
        *changed = true;
    }
    free(s);
    free(t);
    return st;
}
