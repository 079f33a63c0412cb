/*
 * fuse_conv_pool.c — fuse-conv-pool: a network's stem, a stride-2 convolution over a few input
 * channels with its bias and ReLU (a conv_epilogue group, or a Conv alone), and the 3x3 stride-2
 * MaxPool after it become one group (--precision fp16, NHWC), so the convolution's output, four times the
 * pooled bytes, never goes through memory (ResNet-50 batch 32: 51 MB written and read back).
 *
 *     x ──▶ conv_epilogue{Conv, [Relu]} ──y──▶ MaxPool 3x3 s2 p1 ──▶ m
 *  =>
 *     x ──▶ conv_epilogue{Conv, [Relu], MaxPool} ──▶ m          (kernels/conv_pool.cuh)
 *
 * The pool moves into the group's body (which stays the reference semantics) and the group
 * gets the attribute pool = "max"; codegen/cg_conv_pool.c emits the kernel. When x is the fp16 Cast
 * of a float32 NCHW value used by nothing else (the graph input's boundary Cast at fp16), the Cast
 * joins the group too (x_nchw_f32 = 1): the kernel reads the float32 rows and converts them itself. MaxPool commutes
 * with the bias (a constant per channel) and ReLU (monotonic), so the kernel pools the
 * accumulators and applies both after.
 *
 * Runs after select-layout (the layout and dtypes are final) and only where the kernel takes the
 * group (its conditions, repeated here): precision fp16; the group's anchor (or the Conv) 2-D, group 1,
 * dilation 1, stride 2, no residual, no conv pair, activation none or relu, no post-activation,
 * no layout conversions; x fp16 NHWC with C <= 4 and C * (left pad) + (C * left pad) % 2 <= 16;
 * 64 output channels; constant weights and bias; the conv's output at most 128 pixels wide and
 * used only by the MaxPool (not a graph output); the MaxPool 3x3, stride 2, pads 1, dilation 1,
 * ceil_mode 0, one output, fp16 NHWC.
 */
#include "pass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* (one channel: NCHW and NHWC are the same bytes, and select-layout leaves such values NCHW) */
static bool f16_nhwc(const kiln_value *v) {
    return v->rank == 4 && !v->data && v->dtype == KILN_F16 && (v->layout == KILN_LAYOUT_NHWC || v->dims[1] == 1);
}

static bool is_graph_io(const kiln_graph *g, int v) {
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == v) return true;
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return true;
    return false;
}

static bool const_tensor(const kiln_graph *g, int v) {
    return v >= 0 && g->values[v].data && !is_graph_io(g, v) &&
           (g->values[v].data->dtype == KILN_F32 || g->values[v].data->dtype == KILN_F16);
}

/* ints attribute `name` of n equals vals[0..n) (absent: equals def for every entry) */
static bool ints_are(const kiln_node *n, const char *name, int count, const int64_t *vals, int64_t def) {
    const int64_t *v = NULL;
    const int k = kiln_attr_ints(n, name, &v); /* -1: absent */
    if (k != count && k != -1) return false;
    for (int i = 0; i < count; i++)
        if ((k == count ? v[i] : def) != vals[i]) return false;
    return true;
}

/* The MaxPool node the kernel fuses into node F (index fi: a conv_epilogue group, or a Conv that
 * fuse-epilogue left alone, having nothing to fuse), -1 when it does not apply; *xo: the conv's x. */
static int match(const kiln_graph *g, int fi, int *xo) {
    const kiln_node *f = &g->nodes[fi], *an = NULL;
    if (f->dead || f->n_outputs != 1 || kiln_attr_int(f, "kiln_convert_input", 0) ||
        kiln_attr_int(f, "kiln_convert_output", 0))
        return -1;
    int x, w, y = f->outputs[0], b = -1;
    if (f->op == KILN_OP_Conv) {
        an = f;
        x = f->inputs[0], w = f->n_inputs > 1 ? f->inputs[1] : -1, b = f->n_inputs > 2 ? f->inputs[2] : -1;
    } else {
        if (f->op != KILN_OP_Fused || !f->body || strcmp(kiln_attr_str(f, "kind", ""), "conv_epilogue") ||
            strcmp(kiln_attr_str(f, "anchor", ""), "Conv") || kiln_attr_int(f, "has_residual", 0) ||
            kiln_attr_int(f, "pair_x_input", -1) >= 0 || strcmp(kiln_attr_str(f, "post_activation", "none"), "none") ||
            kiln_attr_str(f, "pool", NULL))
            return -1;
        const char *act = kiln_attr_str(f, "activation", "none");
        if (strcmp(act, "none") && strcmp(act, "relu")) return -1;
        for (int k = 0; k < f->body->n_nodes; k++)
            if (f->body->nodes[k].op == KILN_OP_Conv) {
                if (an) return -1;
                an = &f->body->nodes[k];
            }
        if (!an || an->n_inputs < 2) return -1;
        x = kiln_fused_outer_value(f, an->inputs[0]), w = kiln_fused_outer_value(f, an->inputs[1]);
        const int bi = kiln_attr_int(f, "has_bias", 0) ? (int)kiln_attr_int(f, "bias_input", -1) : -1;
        if (bi >= f->n_inputs) return -1;
        b = bi >= 0 ? f->inputs[bi] : -1;
    }
    if (x < 0 || w < 0 || y < 0 || !const_tensor(g, w) || (b >= 0 && !const_tensor(g, b))) return -1;
    const kiln_value *xv = &g->values[x], *wv = &g->values[w], *yv = &g->values[y];
    if (!f16_nhwc(xv) || !f16_nhwc(yv) || wv->rank != 4) return -1;
    for (int i = 0; i < 4; i++)
        if (xv->dims[i] < 1 || yv->dims[i] < 1 || wv->dims[i] < 1) return -1;
    const int64_t C = xv->dims[1];
    static const int64_t one[2] = {1, 1}, two[2] = {2, 2};
    if (C > 4 || yv->dims[1] != 64 || wv->dims[0] != 64 || wv->dims[1] != C || yv->dims[3] > 128 ||
        kiln_attr_int(an, "group", 1) != 1 || !ints_are(an, "strides", 2, two, 1) ||
        !ints_are(an, "dilations", 2, one, 1) || strcmp(kiln_attr_str(an, "auto_pad", "NOTSET"), "NOTSET"))
        return -1;
    const int64_t *pads = NULL;
    const int np = kiln_attr_ints(an, "pads", &pads);
    const int64_t pw = np == 4 ? pads[1] : 0;
    if ((np != -1 && np != 4) || (np == 4 && (pads[0] < 0 || pads[1] < 0 || pads[2] < 0 || pads[3] < 0)) ||
        C * pw + ((C * pw) & 1) > 16)
        return -1;
    /* the one user: the MaxPool */
    if (kiln_value_live_uses(g, y) != 1 || is_graph_io(g, y)) return -1;
    int mi = -1;
    for (int k = 0; k < g->n_nodes && mi < 0; k++) {
        const kiln_node *m = &g->nodes[k];
        if (!m->dead && m->n_inputs > 0 && m->inputs[0] == y) mi = k;
    }
    if (mi < 0) return -1;
    const kiln_node *m = &g->nodes[mi];
    static const int64_t three[2] = {3, 3}, pads1[4] = {1, 1, 1, 1};
    if (m->op != KILN_OP_MaxPool || m->n_outputs != 1 || m->outputs[0] < 0 || !f16_nhwc(&g->values[m->outputs[0]]) ||
        kiln_attr_int(m, "kiln_convert_input", 0) || kiln_attr_int(m, "kiln_convert_output", 0) ||
        !ints_are(m, "kernel_shape", 2, three, -1) || !ints_are(m, "strides", 2, two, 1) ||
        !ints_are(m, "pads", 4, pads1, 0) || !ints_are(m, "dilations", 2, one, 1) || kiln_attr_int(m, "ceil_mode", 0) ||
        kiln_attr_int(m, "storage_order", 0) || strcmp(kiln_attr_str(m, "auto_pad", "NOTSET"), "NOTSET"))
        return -1;
    const int set[2] = {fi, mi};
    *xo = x;
    return kiln_graph_is_convex(g, set, 2) ? mi : -1;
}

/* The Cast that makes x, when the kernel can take its input instead: a Cast to fp16 of a float32
 * NCHW activation (the graph input's boundary Cast, which select-layout has also transposing to NHWC),
 * x used by nothing else. The kernel then reads the float32 rows itself (x_nchw_f32). -1 otherwise. */
static int input_cast(const kiln_graph *g, int x) {
    const int p = g->values[x].producer;
    if (p < 0 || kiln_value_live_uses(g, x) != 1 || is_graph_io(g, x)) return -1;
    const kiln_node *c = &g->nodes[p];
    if (c->dead || c->op != KILN_OP_Cast || c->n_inputs != 1 || c->n_outputs != 1 || c->inputs[0] < 0 ||
        kiln_attr_int(c, "to", 0) != KILN_F16 || kiln_attr_int(c, "kiln_convert_output", 0))
        return -1;
    const kiln_value *v = &g->values[c->inputs[0]], *xv = &g->values[x];
    if (v->rank != 4 || v->data || v->dtype != KILN_F32 || v->layout == KILN_LAYOUT_NHWC) return -1;
    for (int i = 0; i < 4; i++)
        if (v->dims[i] != xv->dims[i]) return -1;
    return p;
}

kiln_status kiln_pass_fuse_conv_pool(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    *changed = false;
    if (ctx->precision != KILN_PREC_FP16) return KILN_OK;
    const int n_nodes = g->n_nodes;
    for (int fi = 0; fi < n_nodes; fi++) {
        int x;
        const int mi = match(g, fi, &x);
        if (mi < 0) continue;
        const int ci = input_cast(g, x); /* the input's Cast, taken in too (one kernel fewer, fp16 x never written) */
        /* F is taken apart and fused again with the MaxPool, its attributes carried over */
        kiln_node *f = &g->nodes[fi];
        const bool plain = f->op == KILN_OP_Conv; /* a Conv alone: a new group, conv_epilogue's attributes */
        const int bi = plain ? 2 : (int)kiln_attr_int(f, "bias_input", -1);
        const int bias_v = (plain || kiln_attr_int(f, "has_bias", 0)) && bi >= 0 && bi < f->n_inputs ? f->inputs[bi] : -1;
        kiln_attr *attrs = plain ? NULL : f->attrs;
        int n_attrs = plain ? 0 : f->n_attrs;
        if (!plain) f->attrs = NULL, f->n_attrs = 0;
        int set[18], gi;
        int nb = plain ? (set[0] = fi, 1) : kiln_graph_unfuse(g, fi, set, 16);
        if (nb > 0 && ci >= 0) set[nb++] = ci;
        kiln_status st = nb < 0 ? kiln_errorf(KILN_ERR_OOM, "out of memory while fusing a MaxPool") : KILN_OK;
        if (!st) { /* the MaxPool again after the body's nodes (kiln_graph_fuse wants the set in topological order) */
            kiln_node *m = &g->nodes[mi];
            int in = m->inputs[0], out = m->outputs[0];
            const int ni = kiln_graph_add_node(g, KILN_OP_MaxPool, m->name, &in, 1, &out, 1);
            if (ni < 0) {
                st = kiln_errorf(KILN_ERR_OOM, "out of memory while fusing a MaxPool");
            } else {
                m = &g->nodes[mi]; /* (the node array may have moved) */
                kiln_node *dn = &g->nodes[ni];
                dn->id = m->id;
                dn->attrs = m->attrs;
                dn->n_attrs = m->n_attrs;
                m->attrs = NULL;
                m->n_attrs = 0;
                m->dead = true;
                set[nb] = ni;
                st = kiln_graph_fuse(g, set, nb + 1, "conv_epilogue", &gi);
                /* named after the Conv, as fuse-epilogue names groups (not after the Cast that comes first) */
                const char *cn = NULL;
                for (int k = 0; k < nb && !st; k++)
                    if (g->nodes[set[k]].op == KILN_OP_Conv) cn = g->nodes[set[k]].name;
                char *name = !st ? malloc(strlen(cn ? cn : "") + 16) : NULL;
                if (name) {
                    sprintf(name, "conv_epilogue_%s", cn ? cn : "");
                    free(g->nodes[gi].name);
                    g->nodes[gi].name = name;
                } else if (!st) {
                    st = kiln_errorf(KILN_ERR_OOM, "out of memory while fusing a MaxPool");
                }
            }
        }
        if (!st) {
            kiln_node *gn = &g->nodes[gi];
            for (int i = 0; i < n_attrs && !st; i++)
                if (strcmp(attrs[i].name, "kind")) st = kiln_node_take_attr(gn, &attrs[i]);
            int nbi = -1; /* the bias's input index in the new group */
            for (int i = 0; i < gn->n_inputs && bias_v >= 0; i++)
                if (gn->inputs[i] == bias_v) nbi = i;
            if (!st) st = kiln_node_set_int(gn, "bias_input", nbi);
            if (!st && plain) {
                st = kiln_node_set_str(gn, "anchor", "Conv");
                if (!st) st = kiln_node_set_int(gn, "has_bias", nbi >= 0);
                if (!st) st = kiln_node_set_str(gn, "activation", "none");
                if (!st) st = kiln_node_set_int(gn, "has_residual", 0);
                if (!st) st = kiln_node_set_int(gn, "residual_input", -1);
                if (!st) st = kiln_node_set_str(gn, "post_activation", "none");
                if (!st) st = kiln_node_set_str(gn, "kiln_layout", "NHWC");
            }
            if (!st) st = kiln_node_set_str(gn, "pool", "max");
            if (!st && ci >= 0) st = kiln_node_set_int(gn, "x_nchw_f32", 1);
        }
        for (int i = 0; i < n_attrs; i++) kiln_attr_free(&attrs[i]);
        free(attrs);
        if (st) return st;
        *changed = true;
    }
    return KILN_OK;
}
