/*
 * fold_constants.c — evaluates nodes whose inputs are all known constants with the CPU
 * reference (kiln_eval_node) and replaces their outputs by constants.
 *
 * One forward sweep in topological order folds whole constant chains: a folded output is a
 * constant by the time its users are visited. Size rules, so that folding never blows a
 * model up (Expand/Tile/ConstantOfShape of constants):
 *   - no folded constant is larger than ctx->fold_max_bytes;
 *   - an output larger than 2x the node's constant inputs + 64 KiB is not folded, unless
 *     every use of it is a parameter operand of a weighted op (Conv/Gemm/MatMul weights,
 *     normalization scales): kernels need those materialized anyway, and real exports carry
 *     them as initializers (the onnx "light" models build their weights with ConstantOfShape).
 * Graph outputs are not folded (a constant cannot carry an output's name), nor are inputs
 * that are also graph inputs treated as constants (the caller may override them). A node the
 * reference cannot evaluate (say, an index out of range) stays as it is: the graph keeps
 * failing at run time the way it did.
 */
#include "pass.h"

#include <stdlib.h>

#define GROWTH_SLACK ((int64_t)64 << 10)

static bool is_const(const kiln_value *v) { return v->data && !(v->flags & KILN_VALUE_INPUT); }

/* Ops whose outputs are random draws must never be folded (the table has none today; a
 * RandomNormal/RandomUniform/Bernoulli/Multinomial row would be listed here). */
static bool is_random(kiln_op op) {
    (void)op;
    return false;
}

/* Is input slot i of node n a parameter that kernels read as a materialized tensor? */
static bool param_slot(const kiln_node *n, int i) {
    switch (n->op) {
    case KILN_OP_Conv: case KILN_OP_ConvTranspose: case KILN_OP_Gemm: case KILN_OP_BatchNormalization:
    case KILN_OP_InstanceNormalization: case KILN_OP_LayerNormalization: case KILN_OP_GroupNormalization:
    case KILN_OP_RMSNormalization: case KILN_OP_PRelu:
        return i >= 1;
    case KILN_OP_MatMul:
        return i == 1;
    default:
        return false;
    }
}

static bool only_param_uses(const kiln_graph *g, int v) {
    const kiln_value *val = &g->values[v];
    if (val->flags & KILN_VALUE_OUTPUT) return false;
    int uses = 0;
    for (int u = 0; u < val->n_users; u++) {
        const kiln_node *n = &g->nodes[val->users[u]];
        if (n->dead) continue;
        for (int i = 0; i < n->n_inputs; i++) {
            if (n->inputs[i] != v) continue;
            if (!param_slot(n, i)) return false;
            uses++;
        }
    }
    return uses > 0;
}

static bool size_ok(const kiln_graph *g, const kiln_pass_ctx *ctx, int v, int64_t out_bytes, int64_t in_bytes) {
    if (out_bytes > ctx->fold_max_bytes) return false;
    if (out_bytes <= 2 * in_bytes + GROWTH_SLACK) return true;
    return only_param_uses(g, v);
}

static int64_t value_bytes(const kiln_value *v) {
    int64_t n = kiln_value_numel(v);
    if (n < 0 || !kiln_dtype_is_supported(v->dtype)) return -1;
    int64_t b;
    return kiln_mul_dims(n, (int64_t)kiln_dtype_size(v->dtype), &b) ? b : -1;
}

/* Try to fold node ni; *folded tells whether it did. */
static kiln_status fold_node(kiln_graph *g, const kiln_pass_ctx *ctx, int ni, bool *folded) {
    kiln_node *n = &g->nodes[ni];
    *folded = false;
    if (n->op == KILN_OP_Fused && !n->body) return KILN_OK;
    if (is_random(n->op)) return KILN_OK;
    int64_t in_bytes = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        int v = n->inputs[i];
        if (v < 0) continue;
        if (!is_const(&g->values[v])) return KILN_OK;
        in_bytes += (int64_t)g->values[v].data->nbytes;
    }
    if (n->op == KILN_OP_Constant) in_bytes = ctx->fold_max_bytes; /* the data exists already */
    bool any_out = false;
    for (int i = 0; i < n->n_outputs; i++) {
        int v = n->outputs[i];
        if (v < 0) continue;
        if (g->values[v].flags & KILN_VALUE_OUTPUT) return KILN_OK; /* keeps its producer */
        any_out |= kiln_value_live_uses(g, v) > 0;
        /* check what inference promises before allocating anything */
        int64_t b = value_bytes(&g->values[v]);
        if (b >= 0 && !size_ok(g, ctx, v, b, in_bytes)) return KILN_OK;
    }
    if (!any_out) return KILN_OK; /* dead: cleanup's job */

    int ni_count = n->n_inputs, no = n->n_outputs;
    kiln_tensor **in = calloc((size_t)ni_count + 1, sizeof *in);
    kiln_tensor **out = calloc((size_t)no + 1, sizeof *out);
    int *ids = calloc((size_t)no + 1, sizeof *ids);
    kiln_status st = KILN_OK;
    if (!in || !out || !ids) {
        st = kiln_errorf(KILN_ERR_OOM, "fold-constants: out of memory");
        goto done;
    }
    for (int i = 0; i < ni_count; i++) in[i] = n->inputs[i] >= 0 ? g->values[n->inputs[i]].data : NULL;
    st = kiln_eval_node(n, in, ni_count, out, no);
    if (st == KILN_ERR_OOM) goto done;
    if (st) { /* not evaluable here: leave the node to fail (or not) at run time */
        st = KILN_OK;
        goto done;
    }
    for (int i = 0; i < no; i++) {
        int v = n->outputs[i];
        if (v < 0 || !out[i]) continue;
        if (!size_ok(g, ctx, v, (int64_t)out[i]->nbytes, in_bytes) || out[i]->dtype != g->values[v].dtype)
            goto done;
    }
    for (int i = 0; i < no; i++) {
        ids[i] = -1;
        int v = g->nodes[ni].outputs[i];
        if (v < 0 || !out[i]) continue;
        ids[i] = kiln_graph_add_const(g, out[i], g->values[v].name);
        out[i] = NULL; /* taken (freed on failure) */
        if (ids[i] < 0) {
            st = kiln_errorf(KILN_ERR_OOM, "fold-constants: out of memory");
            goto done;
        }
    }
    for (int i = 0; i < no; i++) {
        int v = g->nodes[ni].outputs[i];
        if (v >= 0 && ids[i] >= 0) kiln_graph_replace_uses(g, v, ids[i]); /* not an output: cannot fail */
    }
    kiln_graph_remove_node(g, ni);
    *folded = true;
done:
    if (out)
        for (int i = 0; i < no; i++) kiln_tensor_free(out[i]);
    free(in);
    free(out);
    free(ids);
    return st;
}

kiln_status kiln_pass_fold_constants(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    *changed = false;
    kiln_status st = kiln_graph_rebuild_uses(g);
    for (int ni = 0; ni < g->n_nodes && !st; ni++) {
        if (g->nodes[ni].dead) continue;
        bool folded = false;
        st = fold_node(g, ctx, ni, &folded);
        if (folded) {
            *changed = true;
            /* the new constants' users were rewired; keep use counts exact for later nodes */
            if (!st) st = kiln_graph_rebuild_uses(g);
        }
    }
    return st ? kiln_error_prefix(st, "fold-constants") : KILN_OK;
}
