/*
 * fuse_conv_pair.c — fuse-conv-pair: a conv_epilogue group whose residual is another
 * convolution's output becomes one group that computes both convolutions in one accumulator
 * (--precision fp16, NHWC), so the second convolution's output never goes through memory.
 *
 * Algorithm. ResNet's projection blocks end in Add(conv3(a), downsample(x)) (+ Relu): after
 * fuse-epilogue the later conv is the anchor of a conv_epilogue group F whose residual r is the
 * other conv P's output, written by P's kernel and read back by F's epilogue (ResNet-50 batch 32:
 * 50 MB each way in stage 1). Both are GEMMs over the same output pixels and channels, so
 *
 *     a ──▶ P (Conv, bias b2) ──r──┐                 a ──┐
 *                                   ▼                     ├─▶ conv_epilogue{P, anchor, Add, act}
 *     x ──▶ anchor (bias b1) ──▶ Add ──▶ act    =>    x ──┘   y = act(W1·x + W2·a + b1 + b2)
 *
 * one implicit GEMM whose depth is the anchor's R*S*C followed by P's (weights concatenated per
 * output channel, kernels/conv_nhwc.cuh SHP2), the biases summed. F is taken apart into its body's
 * nodes and fused again with P (the body stays the reference semantics: Conv, Conv, Add, act).
 * Runs after select-layout, where the layout and dtypes are final, and only where
 * codegen/cg_conv_nhwc.c takes the result (its conditions, repeated here): precision fp16, both
 * convolutions 2-D, group 1, fp16 NHWC activations with C % 8 == 0, K % 8 == 0, constant weights,
 * constant biases, no layout conversions on either node, no activation between the anchor and
 * the Add (the sum must be one accumulator), one of the two depths a multiple of 64 (whole K
 * tiles per source), 32-bit element offsets, and {P, F} convex.
 *
 * Attributes added to the group (besides conv_epilogue's; has_residual becomes 0):
 *   pair_x_input, pair_w_input   the group's input indices of P's x and weights
 *   pair_bias_input              P's bias input index, -1 none
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

static bool f16_nhwc_act(const kiln_value *v) {
    return v->rank == 4 && !v->data && v->dtype == KILN_F16 && (v->layout == KILN_LAYOUT_NHWC || v->dims[1] == 1);
}

static bool const_weight(const kiln_graph *g, int v) {
    if (v < 0 || !g->values[v].data) return false;
    kiln_dtype t = g->values[v].data->dtype;
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == v) return false;
    return t == KILN_F32 || t == KILN_F16;
}

/* A conv the NHWC kernel takes as one source of a pair; *kd = R * S * C. */
static bool pair_conv_ok(const kiln_graph *g, const kiln_node *cn, int x, int w, int y, int64_t *kd) {
    if (cn->op != KILN_OP_Conv || kiln_attr_int(cn, "group", 1) != 1 || x < 0 || w < 0) return false;
    const kiln_value *xv = &g->values[x], *wv = &g->values[w], *yv = &g->values[y];
    if (!f16_nhwc_act(xv) || !f16_nhwc_act(yv) || wv->rank != 4 || !const_weight(g, w)) return false;
    for (int i = 0; i < 4; i++)
        if (xv->dims[i] < 1 || yv->dims[i] < 1 || wv->dims[i] < 1) return false;
    const int64_t C = xv->dims[1], K = yv->dims[1];
    if (C % 8 || K % 8 || wv->dims[0] != K || wv->dims[1] != C) return false;
    *kd = C * wv->dims[2] * wv->dims[3];
    const int64_t lim = ((int64_t)1 << 31) - 1, M = yv->dims[0] * yv->dims[2] * yv->dims[3];
    return xv->dims[0] * xv->dims[2] * xv->dims[3] * C <= lim && M * K <= lim && K * *kd <= lim / 2;
}

static bool const_bias(const kiln_graph *g, int b, int64_t K) {
    if (b < 0) return true;
    const kiln_value *v = &g->values[b];
    if (!const_weight(g, b)) return false;
    int64_t n = v->data->numel;
    return n == K || n == 1;
}

static int input_index(const kiln_node *n, int v) {
    if (v < 0) return -1;
    for (int i = 0; i < n->n_inputs; i++)
        if (n->inputs[i] == v) return i;
    return -1;
}

/* Is F (index fi) a group this pass pairs with the producer of its residual? *pi = P's index. */
static bool match(const kiln_graph *g, const kiln_pass_ctx *ctx, int fi, int *pi) {
    const kiln_node *f = &g->nodes[fi];
    if (f->dead || f->op != KILN_OP_Fused || !f->body || f->n_outputs != 1 || ctx->precision != KILN_PREC_FP16)
        return false;
    if (strcmp(kiln_attr_str(f, "kind", ""), "conv_epilogue") || strcmp(kiln_attr_str(f, "anchor", ""), "Conv") ||
        !kiln_attr_int(f, "has_residual", 0) || strcmp(kiln_attr_str(f, "activation", "none"), "none") ||
        kiln_attr_int(f, "kiln_convert_input", 0) || kiln_attr_int(f, "kiln_convert_output", 0) ||
        kiln_attr_int(f, "pair_x_input", -1) >= 0)
        return false;
    const int ri = (int)kiln_attr_int(f, "residual_input", -1);
    if (ri < 0 || ri >= f->n_inputs) return false;
    const int r = f->inputs[ri];
    const int p = r >= 0 ? g->values[r].producer : -1;
    if (p < 0 || kiln_value_live_uses(g, r) != 1) return false;
    for (int o = 0; o < g->n_outputs; o++)
        if (g->outputs[o] == r) return false;
    const kiln_node *pn = &g->nodes[p];
    if (pn->dead || pn->op != KILN_OP_Conv || pn->n_outputs != 1 || pn->n_inputs < 2 ||
        kiln_attr_int(pn, "kiln_convert_input", 0) || kiln_attr_int(pn, "kiln_convert_output", 0))
        return false;
    /* the anchor: the body's one Conv */
    const kiln_node *an = NULL;
    for (int k = 0; k < f->body->n_nodes; k++) {
        const kiln_node *bn = &f->body->nodes[k];
        if (bn->op == KILN_OP_Conv) {
            if (an) return false;
            an = bn;
        }
    }
    if (!an || an->n_inputs < 2) return false;
    const int ax = kiln_fused_outer_value(f, an->inputs[0]), aw = kiln_fused_outer_value(f, an->inputs[1]);
    int64_t kd1, kd2;
    if (!pair_conv_ok(g, an, ax, aw, f->outputs[0], &kd1) ||
        !pair_conv_ok(g, pn, pn->inputs[0], pn->inputs[1], r, &kd2))
        return false;
    if (kd1 % 64 && kd2 % 64) return false;
    const int64_t K = g->values[r].dims[1];
    const int bi = kiln_attr_int(f, "has_bias", 0) ? (int)kiln_attr_int(f, "bias_input", -1) : -1;
    if (!const_bias(g, bi >= 0 && bi < f->n_inputs ? f->inputs[bi] : -1, K) ||
        !const_bias(g, pn->n_inputs > 2 ? pn->inputs[2] : -1, K))
        return false;
    const int set[2] = {p, fi};
    if (!kiln_graph_is_convex(g, set, 2)) return false;
    *pi = p;
    return true;
}

kiln_status kiln_pass_fuse_conv_pair(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    *changed = false;
    if (ctx->precision != KILN_PREC_FP16) return KILN_OK;
    const int n_nodes = g->n_nodes;
    for (int fi = 0; fi < n_nodes; fi++) {
        int p;
        if (!match(g, ctx, fi, &p)) continue;
        /* what the new group needs from F, read before F dies */
        kiln_node *f = &g->nodes[fi];
        const int bi = (int)kiln_attr_int(f, "bias_input", -1);
        const int bias_v = kiln_attr_int(f, "has_bias", 0) && bi >= 0 && bi < f->n_inputs ? f->inputs[bi] : -1;
        kiln_attr *attrs = f->attrs;
        int n_attrs = f->n_attrs;
        f->attrs = NULL;
        f->n_attrs = 0;
        const kiln_node *pn = &g->nodes[p];
        const int px = pn->inputs[0], pw = pn->inputs[1], pb = pn->n_inputs > 2 ? pn->inputs[2] : -1;
        int set[17];
        set[0] = p;
        int nb = kiln_graph_unfuse(g, fi, set + 1, 16), gi;
        kiln_status st = nb < 0 ? kiln_errorf(KILN_ERR_OOM, "out of memory while pairing convolutions")
                                : kiln_graph_fuse(g, set, nb + 1, "conv_epilogue", &gi);
        if (!st) {
            kiln_node *gn = &g->nodes[gi];
            for (int i = 0; i < n_attrs && !st; i++)
                if (strcmp(attrs[i].name, "kind")) st = kiln_node_take_attr(gn, &attrs[i]);
            if (!st) st = kiln_node_set_int(gn, "bias_input", input_index(gn, bias_v));
            if (!st) st = kiln_node_set_int(gn, "has_residual", 0);
            if (!st) st = kiln_node_set_int(gn, "residual_input", -1);
            if (!st) st = kiln_node_set_int(gn, "pair_x_input", input_index(gn, px));
            if (!st) st = kiln_node_set_int(gn, "pair_w_input", input_index(gn, pw));
            if (!st) st = kiln_node_set_int(gn, "pair_bias_input", input_index(gn, pb));
        }
        for (int i = 0; i < n_attrs; i++) kiln_attr_free(&attrs[i]);
        free(attrs);
        if (st) return st;
        *changed = true;
    }
    return KILN_OK;
}
