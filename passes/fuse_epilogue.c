/*
 * fuse_epilogue.c — a Conv / ConvTranspose / Gemm / MatMul "anchor" and the cheap ops that
 * follow it become one fused node, so the anchor's kernel applies them while its output
 * tile is still in registers instead of writing it out and reading it back.
 *
 * Algorithm. From each anchor, walk down a linear chain, taking each step only when the
 * value it consumes is used by nothing else (not even as a graph output):
 *
 *     X    W  [b]
 *      \   |  /
 *       anchor            Conv / ConvTranspose (kind conv_epilogue), Gemm / MatMul (gemm_epilogue)
 *         |
 *     [Add c]             bias: c constant, broadcast along the channel axis (Conv: 1,
 *         |                     Gemm/MatMul: last); only when the anchor has no bias input
 *     [act]               Relu, Clip (constant bounds), LeakyRelu, Sigmoid, Tanh, HardSigmoid,
 *         |               HardSwish, Gelu, Elu, SiLU written as x * Sigmoid(x), or HardSwish
 *         |               written as x * HardSigmoid(x) (alpha 1/6, beta 1/2)
 *     [Add r] <-- r       residual: Add or 2-input Sum; r has the output's exact shape
 *         |
 *     [act]               activation after the residual
 *
 * Every step is optional; a chain of the anchor alone is left as it is. Chains are found on
 * the unchanged graph first, then fused: when two anchors reach the same residual Add (the
 * two branches of a ResNet projection block), the later anchor in topological order takes
 * it and the earlier one's chain ends before it, so the shortcut is computed first. Only the
 * last value of a chain escapes its group and r never depends on the anchor (that would
 * need an intermediate used outside), so groups are convex; kiln_graph_is_convex checks it.
 *
 * Attributes of the fused node (for codegen; the body is the reference semantics):
 *   kind            "conv_epilogue" | "gemm_epilogue"
 *   anchor          ONNX op of the anchor: "Conv", "ConvTranspose", "Gemm", "MatMul"
 *   has_bias        1 when the anchor has a bias input (Conv B, Gemm C) or a bias Add was taken
 *   bias_input      the fused node's input index of the bias tensor, -1 none
 *   activation      "none", "relu", "clip", "leaky_relu", "sigmoid", "tanh", "hard_sigmoid",
 *                   "hard_swish", "gelu", "gelu_tanh", "elu", "silu"
 *   activation_alpha, activation_beta   floats where the activation has parameters:
 *                   clip min/max (+-FLT_MAX when absent), leaky_relu/elu alpha,
 *                   hard_sigmoid alpha/beta
 *   has_residual    1 when a residual Add was taken
 *   residual_input  the fused node's input index of r, -1 none
 *   post_activation, post_activation_alpha, post_activation_beta   likewise, after the Add
 */
#include "pass.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHAIN 8

typedef struct act_match {
    const char *name;
    float alpha, beta;
    bool has_alpha, has_beta;
    int nodes[2], n_nodes;
    int out; /* value after the activation */
} act_match;

typedef struct chain {
    int nodes[MAX_CHAIN], n;
    int step_of[MAX_CHAIN]; /* which step each node belongs to (enum below) */
    int bias_value;         /* the bias tensor's value id (anchor input or Add constant), -1 */
    int residual_value;     /* r, -1 */
    act_match act, post;    /* name NULL when absent */
} chain;

enum { STEP_ANCHOR, STEP_BIAS, STEP_ACT, STEP_RESIDUAL, STEP_POST };

static bool is_anchor(kiln_op op) {
    return op == KILN_OP_Conv || op == KILN_OP_ConvTranspose || op == KILN_OP_Gemm || op == KILN_OP_MatMul;
}

/* The node that is v's only use (v not a graph output), or -1. */
static int sole_user(const kiln_graph *g, int v) {
    if (kiln_value_live_uses(g, v) != 1) return -1;
    const kiln_value *val = &g->values[v];
    for (int u = 0; u < val->n_users; u++)
        if (!g->nodes[val->users[u]].dead) return val->users[u];
    return -1;
}

static bool same_type(const kiln_value *a, const kiln_value *b) {
    if (a->dtype != b->dtype || a->rank < 0 || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++) {
        if (a->dims[i] != b->dims[i]) return false;
        if (a->dims[i] < 0 && (a->sym[i] == 0 || a->sym[i] != b->sym[i])) return false;
    }
    return true;
}

/* A scalar constant input (or an omitted one: def). */
static bool const_scalar(const kiln_graph *g, const kiln_node *n, int i, float def, float *out) {
    if (i >= n->n_inputs || n->inputs[i] < 0) {
        *out = def;
        return true;
    }
    const kiln_value *v = &g->values[n->inputs[i]];
    if (!v->data || v->data->numel != 1) return false;
    *out = (float)kiln_tensor_get(v->data, 0);
    return true;
}

/* Is the activation applied to cur one of ours, consuming every use of cur? */
static bool match_activation(const kiln_graph *g, int cur, act_match *m) {
    memset(m, 0, sizeof *m);
    int ni = sole_user(g, cur);
    if (ni >= 0) {
        const kiln_node *n = &g->nodes[ni];
        if (n->n_outputs != 1 || n->outputs[0] < 0 || n->inputs[0] != cur) return false;
        switch (n->op) {
        case KILN_OP_Relu: m->name = "relu"; break;
        case KILN_OP_Sigmoid: m->name = "sigmoid"; break;
        case KILN_OP_Tanh: m->name = "tanh"; break;
        case KILN_OP_HardSwish: m->name = "hard_swish"; break;
        case KILN_OP_Gelu:
            m->name = strcmp(kiln_attr_str(n, "approximate", "none"), "tanh") ? "gelu" : "gelu_tanh";
            break;
        case KILN_OP_LeakyRelu:
            m->name = "leaky_relu";
            m->alpha = kiln_attr_float(n, "alpha", 0.01f);
            m->has_alpha = true;
            break;
        case KILN_OP_Elu:
            m->name = "elu";
            m->alpha = kiln_attr_float(n, "alpha", 1.0f);
            m->has_alpha = true;
            break;
        case KILN_OP_HardSigmoid:
            m->name = "hard_sigmoid";
            m->alpha = kiln_attr_float(n, "alpha", 0.2f);
            m->beta = kiln_attr_float(n, "beta", 0.5f);
            m->has_alpha = m->has_beta = true;
            break;
        case KILN_OP_Clip:
            /* only constant bounds: codegen bakes them into the kernel */
            if (!const_scalar(g, n, 1, -FLT_MAX, &m->alpha) || !const_scalar(g, n, 2, FLT_MAX, &m->beta))
                return false;
            m->name = "clip";
            m->has_alpha = m->has_beta = true;
            break;
        default: return false;
        }
        m->nodes[0] = ni;
        m->n_nodes = 1;
        m->out = n->outputs[0];
        return true;
    }
    /* SiLU: cur feeds exactly a Sigmoid and a Mul(cur, sigmoid(cur)); likewise HardSwish
     * written as x * HardSigmoid(x) with HardSwish's alpha = 1/6, beta = 1/2 */
    if (kiln_value_live_uses(g, cur) != 2) return false;
    const kiln_value *cv = &g->values[cur];
    int sig = -1, mul = -1;
    for (int u = 0; u < cv->n_users; u++) {
        int ui = cv->users[u];
        if (g->nodes[ui].dead) continue;
        kiln_op op = g->nodes[ui].op;
        if ((op == KILN_OP_Sigmoid || op == KILN_OP_HardSigmoid) && sig < 0) sig = ui;
        else if (op == KILN_OP_Mul && mul < 0) mul = ui;
        else return false;
    }
    if (sig < 0 || mul < 0) return false;
    const kiln_node *s = &g->nodes[sig], *mn = &g->nodes[mul];
    if (s->n_outputs != 1 || s->outputs[0] < 0 || mn->n_outputs != 1 || mn->outputs[0] < 0 || mn->n_inputs != 2)
        return false;
    int so = s->outputs[0];
    if (!((mn->inputs[0] == cur && mn->inputs[1] == so) || (mn->inputs[1] == cur && mn->inputs[0] == so)))
        return false;
    if (sole_user(g, so) != mul) return false;
    if (s->op == KILN_OP_HardSigmoid && (fabsf(kiln_attr_float(s, "alpha", 0.2f) - 1.0f / 6) > 1e-6f ||
                                         kiln_attr_float(s, "beta", 0.5f) != 0.5f))
        return false;
    m->name = s->op == KILN_OP_Sigmoid ? "silu" : "hard_swish";
    m->nodes[0] = sig;
    m->nodes[1] = mul;
    m->n_nodes = 2;
    m->out = mn->outputs[0];
    return true;
}

/* Constant c broadcast against y only along axis (or a scalar), without growing y. */
static bool channel_const(const kiln_value *c, const kiln_value *y, int axis) {
    if (!c->data || c->dtype != y->dtype || c->rank < 0 || y->rank < 0 || c->rank > y->rank) return false;
    for (int i = 0; i < c->rank; i++) {
        int oa = y->rank - c->rank + i;
        if (c->dims[i] != 1 && (oa != axis || c->dims[i] != y->dims[oa])) return false;
    }
    return true;
}

static void push(chain *c, int node, int step) {
    c->nodes[c->n] = node;
    c->step_of[c->n++] = step;
}

/* Walk from anchor ai; returns the chain (n == 1 when nothing follows). */
static void build_chain(const kiln_graph *g, int ai, chain *c) {
    memset(c, 0, sizeof *c);
    c->bias_value = c->residual_value = -1;
    const kiln_node *a = &g->nodes[ai];
    push(c, ai, STEP_ANCHOR);
    if (a->n_outputs != 1 || a->outputs[0] < 0) return;
    int cur = a->outputs[0];
    const kiln_value *y = &g->values[cur];
    bool anchor_bias = a->op != KILN_OP_MatMul && a->n_inputs > 2 && a->inputs[2] >= 0;
    if (anchor_bias) c->bias_value = a->inputs[2];

    /* bias Add */
    int ni = sole_user(g, cur);
    if (!anchor_bias && ni >= 0 && g->nodes[ni].op == KILN_OP_Add && y->rank >= 1) {
        const kiln_node *n = &g->nodes[ni];
        int other = n->inputs[0] == cur ? n->inputs[1] : n->inputs[0];
        int axis = a->op == KILN_OP_Conv || a->op == KILN_OP_ConvTranspose ? 1 : y->rank - 1;
        if (other >= 0 && other != cur && channel_const(&g->values[other], y, axis) && n->outputs[0] >= 0 &&
            same_type(&g->values[n->outputs[0]], y)) {
            push(c, ni, STEP_BIAS);
            c->bias_value = other;
            cur = n->outputs[0];
        }
    }
    /* activation */
    act_match m;
    if (match_activation(g, cur, &m)) {
        for (int k = 0; k < m.n_nodes; k++) push(c, m.nodes[k], STEP_ACT);
        c->act = m;
        cur = m.out;
    }
    /* residual Add (or a 2-input Sum) */
    ni = sole_user(g, cur);
    if (ni < 0) return;
    const kiln_node *n = &g->nodes[ni];
    if (!((n->op == KILN_OP_Add || n->op == KILN_OP_Sum) && n->n_inputs == 2) || n->n_outputs != 1 ||
        n->outputs[0] < 0)
        return;
    int r = n->inputs[0] == cur ? n->inputs[1] : n->inputs[0];
    if (r < 0 || r == cur || !same_type(&g->values[r], &g->values[cur]) ||
        !same_type(&g->values[n->outputs[0]], &g->values[cur]))
        return;
    push(c, ni, STEP_RESIDUAL);
    c->residual_value = r;
    cur = n->outputs[0];
    if (match_activation(g, cur, &m)) {
        for (int k = 0; k < m.n_nodes; k++) push(c, m.nodes[k], STEP_POST);
        c->post = m;
    }
}

static int input_index(const kiln_node *n, int v) {
    if (v < 0) return -1;
    for (int i = 0; i < n->n_inputs; i++)
        if (n->inputs[i] == v) return i;
    return -1;
}

static kiln_status set_act(kiln_node *n, const char *prefix, const act_match *m) {
    char key[64];
    kiln_status st;
    snprintf(key, sizeof key, "%s", prefix);
    if ((st = kiln_node_set_str(n, key, m->name ? m->name : "none"))) return st;
    snprintf(key, sizeof key, "%s_alpha", prefix);
    if (m->has_alpha && (st = kiln_node_set_float(n, key, m->alpha))) return st;
    snprintf(key, sizeof key, "%s_beta", prefix);
    if (m->has_beta && (st = kiln_node_set_float(n, key, m->beta))) return st;
    return KILN_OK;
}

kiln_status kiln_pass_fuse_epilogue(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    (void)ctx;
    *changed = false;
    kiln_status st = KILN_OK;
    int n_nodes = g->n_nodes, n_anchors = 0;
    for (int ni = 0; ni < n_nodes; ni++) n_anchors += !g->nodes[ni].dead && is_anchor(g->nodes[ni].op);
    if (!n_anchors) return KILN_OK;
    chain *chains = calloc((size_t)n_anchors, sizeof *chains);
    int *claim = malloc(sizeof(int) * (size_t)(n_nodes + 1)); /* node -> chain index, -1 */
    if (!chains || !claim) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        goto done;
    }
    int n_chains = 0;
    for (int ni = 0; ni < n_nodes; ni++) {
        claim[ni] = -1;
        if (g->nodes[ni].dead || !is_anchor(g->nodes[ni].op)) continue;
        build_chain(g, ni, &chains[n_chains]);
        if (chains[n_chains].n > 1) n_chains++;
    }
    /* later anchors first: a contested residual Add goes to the later one; the earlier
     * chain ends before the first node already taken */
    for (int k = n_chains - 1; k >= 0; k--) {
        chain *c = &chains[k];
        for (int i = 0; i < c->n; i++) {
            if (claim[c->nodes[i]] < 0) continue;
            /* truncate: drop this step and everything after it */
            int keep = i;
            if (c->step_of[i] == STEP_ACT) /* a half-taken SiLU pair: drop the whole activation */
                while (keep > 0 && c->step_of[keep - 1] == STEP_ACT) keep--;
            for (int j = keep; j < c->n; j++) {
                if (c->step_of[j] == STEP_RESIDUAL) c->residual_value = -1;
                if (c->step_of[j] == STEP_ACT) c->act.name = NULL;
                if (c->step_of[j] == STEP_POST) c->post.name = NULL;
                if (c->step_of[j] == STEP_BIAS) c->bias_value = -1;
            }
            c->n = keep;
            break;
        }
        if (c->n > 1 && !kiln_graph_is_convex(g, c->nodes, c->n)) c->n = 1;
        if (c->n <= 1) continue;
        for (int i = 0; i < c->n; i++) claim[c->nodes[i]] = k;
    }
    for (int k = 0; k < n_chains; k++) {
        chain *c = &chains[k];
        if (c->n <= 1) continue;
        const kiln_node *a = &g->nodes[c->nodes[0]];
        kiln_op aop = a->op;
        bool has_bias = c->bias_value >= 0;
        const char *kind = aop == KILN_OP_Conv || aop == KILN_OP_ConvTranspose ? "conv_epilogue" : "gemm_epilogue";
        int fi;
        if ((st = kiln_graph_fuse(g, c->nodes, c->n, kind, &fi))) goto done;
        kiln_node *f = &g->nodes[fi];
        if ((st = kiln_node_set_str(f, "anchor", kiln_op_table[aop].onnx_type)) ||
            (st = kiln_node_set_int(f, "has_bias", has_bias)) ||
            (st = kiln_node_set_int(f, "bias_input", input_index(f, c->bias_value))) ||
            (st = set_act(f, "activation", &c->act)) ||
            (st = kiln_node_set_int(f, "has_residual", c->residual_value >= 0)) ||
            (st = kiln_node_set_int(f, "residual_input", input_index(f, c->residual_value))) ||
            (st = set_act(f, "post_activation", &c->post)))
            goto done;
        *changed = true;
    }
done:
    free(chains);
    free(claim);
    return st;
}
