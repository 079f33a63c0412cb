/* select_layout.c — select-layout: NCHW or NHWC for every 4-D activation, per convolution
 * region, from a cost model that depends on the target precision.
 *
 * Algorithm
 *   1. Classify each node. "Flexible" nodes can run in either layout: Conv / ConvTranspose with
 *      constant weights, Max/Average/LpPool, GlobalAverage/GlobalMaxPool, elementwise and
 *      broadcast ops (BatchNormalization too) whose operands are 4-D activations, constants
 *      (transformed at build time) or layout-free lower-rank tensors (a scalar or per-channel
 *      [C,1,1]), Concat/Split (codegen remaps the axis), and fused groups whose body is made of
 *      those (a conv_epilogue group takes its anchor's preference). Every other consumer of a
 *      4-D activation (Reshape, Flatten, Transpose, Gemm, MatMul, reductions, ...) needs the
 *      logical NCHW layout, and so do graph inputs and outputs (the contract).
 *   2. Regions: flexible nodes that touch the same 4-D activation (as producer or consumer)
 *      form one region (union-find); a region is one layout.
 *   3. Cost, in elements moved (so fp16 and fp32 compare alike):
 *        gain(region)  = sum over its nodes of what NHWC saves them, B = input + output elements
 *                        conv at tf32/fp16/int8 (tensor cores): 2.5 B (the library's own NCHW<->NHWC
 *                          transposes of input and output, and its slower NCHW kernels)
 *                        depthwise conv: B at fp16/int8 (channel-vectorized), 0 at tf32, -B/4 at fp32
 *                        conv at fp32 (FFMA kernels are fine with NCHW): -B/4
 *                        pools: B/2 below fp32, 0 at fp32; everything else 0
 *        cost(region)  = 2 x elements of every value that crosses the region border (one transpose,
 *                        read + write, shared by all consumers on the other side); a value with
 *                        C == 1 or H*W == 1 has the same bytes in both layouts and costs nothing.
 *      A region is NHWC only when gain > cost. Regions meet only through NCHW nodes, so deciding
 *      each one alone is optimal for this model. A region with a value a view (Reshape,
 *      Flatten, ...) reads stays NCHW: the view aliases the storage and cannot convert.
 *
 *        x(NCHW) ─▶[T]─▶ conv ─▶ relu ─▶ conv ─▶ add ─▶[T]─▶ Flatten      [T] = one conversion
 *                      └──────── one NHWC region ────────┘
 *
 * Annotations (the IR stays logically NCHW; codegen emits the physical layout):
 *   value->layout            KILN_LAYOUT_NHWC / NCHW for every 4-D activation, as stored; a
 *                            graph output is always stored NCHW (the contract), and so is a
 *                            layout-invariant value (C == 1 or H*W == 1: same bytes), which
 *                            every kernel may read in either layout;
 *   node "kiln_layout"       "NHWC"/"NCHW" on every flexible node (and a fused group's anchor);
 *                            conv weights stay OIHW (codegen's kernels index them so);
 *   node "kiln_convert_input"  bitmask: input i is stored in the other layout than this node
 *                            reads it in: codegen converts it into scratch memory first;
 *   node "kiln_convert_output" bitmask: output i is a graph output this NHWC node produces:
 *                            codegen writes it NHWC into scratch, then converts it to its NCHW
 *                            storage (NHWC consumers in the region convert it back on input).
 * "Flexible" is exactly what codegen runs in NHWC (cg_copy.c kiln_cg_emit_with_layout and the
 * emitters): a node this pass calls flexible must have an NHWC kernel; fused groups of kind
 * "elementwise" and "conv_epilogue" only, no ConvTranspose, LpPool or BatchNormalization.
 * kiln_graph_layout_conversions counts the converted values for the report. */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

typedef struct node_info {
    bool flex;
    double gain; /* elements NHWC saves over NCHW (negative: NCHW is better) */
} node_info;

static bool is_act4(const kiln_graph *g, int v) {
    return v >= 0 && g->values[v].rank == 4 && !g->values[v].data && kiln_dtype_is_supported(g->values[v].dtype);
}

static double numel1(const kiln_value *v) { /* symbolic dims as 1 */
    double n = 1;
    for (int i = 0; i < v->rank; i++) n *= v->dims[i] < 0 ? 1 : (double)v->dims[i];
    return n;
}

/* Same bytes in NCHW and NHWC: C == 1 or H*W == 1. */
static bool layout_invariant(const kiln_value *v) {
    return v->rank == 4 && (v->dims[1] == 1 || (v->dims[2] == 1 && v->dims[3] == 1));
}

/* A non-4-D operand of an elementwise op whose broadcast does not depend on the layout: a
 * scalar, or per-channel (its last two dims, aligned to H and W, are 1). */
static bool layout_free_operand(const kiln_value *v) {
    if (v->rank < 0 || v->rank > 4) return false;
    if (numel1(v) == 1 && v->rank >= 0) {
        for (int i = 0; i < v->rank; i++)
            if (v->dims[i] != 1) return false;
        return true;
    }
    return v->rank >= 3 && v->dims[v->rank - 1] == 1 && v->dims[v->rank - 2] == 1;
}

static double conv_gain(kiln_precision p, bool depthwise, double b) {
    if (depthwise) {
        switch (p) {
        case KILN_PREC_FP16: case KILN_PREC_INT8: return b;
        case KILN_PREC_TF32: return 0;
        default: return -b / 4;
        }
    }
    return p == KILN_PREC_FP32 ? -b / 4 : 2.5 * b;
}

/* Is a value of graph g (a fused body, or the outer graph) constant? For a body input the
 * outer node's input decides. */
static bool body_const(const kiln_graph *outer, const kiln_node *fn, const kiln_graph *b, int bv) {
    if (bv < 0) return true;
    if (b->values[bv].data) return true;
    if (!fn) return false;
    for (int i = 0; i < b->n_inputs && i < fn->n_inputs; i++)
        if (b->inputs[i] == bv) return fn->inputs[i] >= 0 && outer->values[fn->inputs[i]].data != NULL;
    return false;
}

/* Anchor (conv or pool) of a 4-D activation: preference and whether it can run NHWC at all.
 * g is the graph that holds n (outer graph or a fused body; fn the fused node, or NULL). */
static bool anchor_info(const kiln_graph *outer, const kiln_node *fn, const kiln_graph *g, const kiln_node *n,
                        kiln_precision p, double *gain) {
    if (n->n_inputs < 1 || n->inputs[0] < 0 || n->outputs[0] < 0) return false;
    const kiln_value *x = &g->values[n->inputs[0]], *y = &g->values[n->outputs[0]];
    if (x->rank != 4 || y->rank != 4) return false;
    double b = numel1(x) + numel1(y);
    switch (n->op) {
    case KILN_OP_Conv: {
        if (n->n_inputs < 2 || !body_const(outer, fn, g, n->inputs[1])) return false; /* weights are pre-transformed */
        if (n->n_inputs > 2 && !body_const(outer, fn, g, n->inputs[2])) return false;
        int64_t group = kiln_attr_int(n, "group", 1);
        int64_t cin = x->dims[1];
        bool depthwise = group > 1 && (cin <= 0 || cin / group < 8);
        *gain = conv_gain(p, depthwise, b);
        return true;
    }
    case KILN_OP_MaxPool:
        if (n->n_outputs > 1 && n->outputs[1] >= 0) return false; /* flat NCHW indices */
        /* fallthrough */
    case KILN_OP_AveragePool:
        *gain = p == KILN_PREC_FP32 ? 0 : b / 2;
        return true;
    case KILN_OP_GlobalAveragePool: case KILN_OP_GlobalMaxPool:
        *gain = 0;
        return true;
    default:
        return false;
    }
}

/* Elementwise / broadcast op that runs in either layout given its operands. */
static bool elementwise_flex(const kiln_graph *g, const kiln_node *n, bool (*is_const)(const kiln_graph *, int,
                                                                                         const void *),
                             const void *cx) {
    kiln_op_kind kind = kiln_op_table[n->op].kind;
    if ((kind != KILN_KIND_ELEMENTWISE && kind != KILN_KIND_BROADCAST) || n->op == KILN_OP_Expand ||
        n->op == KILN_OP_BatchNormalization) /* codegen's elementwise emitter has no BatchNormalization */
        return false;
    for (int o = 0; o < n->n_outputs; o++)
        if (n->outputs[o] >= 0 && g->values[n->outputs[o]].rank != 4) return false;
    for (int i = 0; i < n->n_inputs; i++) {
        int v = n->inputs[i];
        if (v < 0 || is_const(g, v, cx)) continue;
        const kiln_value *val = &g->values[v];
        if (val->rank == 4) continue;
        if (n->op == KILN_OP_BatchNormalization && i > 0 && val->rank == 1) continue; /* per-channel by definition */
        if (!layout_free_operand(val)) return false;
    }
    return true;
}

static bool outer_const(const kiln_graph *g, int v, const void *cx) {
    (void)cx;
    return g->values[v].data != NULL;
}

typedef struct body_cx {
    const kiln_graph *outer;
    const kiln_node *fn;
} body_cx;

static bool in_body_const(const kiln_graph *b, int v, const void *cx) {
    const body_cx *c = cx;
    return body_const(c->outer, c->fn, b, v);
}

static node_info classify(const kiln_graph *g, const kiln_node *n, kiln_precision p) {
    node_info r = {false, 0};
    double gain = 0;
    if (n->op == KILN_OP_Fused) {
        const kiln_graph *b = n->body;
        const char *kind = kiln_attr_str(n, "kind", "");
        if (!b || (strcmp(kind, "elementwise") && strcmp(kind, "conv_epilogue"))) return r; /* what codegen runs in NHWC */
        body_cx cx = {g, n};
        for (int k = 0; k < b->n_nodes; k++) {
            const kiln_node *bn = &b->nodes[k];
            if (bn->dead) continue;
            if (anchor_info(g, n, b, bn, p, &gain)) r.gain += gain;
            else if (!elementwise_flex(b, bn, in_body_const, &cx)) return (node_info){false, 0};
        }
        r.flex = true;
    } else if (anchor_info(g, NULL, g, n, p, &gain)) {
        r.flex = true;
        r.gain = gain;
    } else if (n->op == KILN_OP_Concat || n->op == KILN_OP_Split) {
        r.flex = n->n_outputs >= 1 && n->outputs[0] >= 0 && g->values[n->outputs[0]].rank == 4;
        if (n->op == KILN_OP_Concat)
            for (int i = 0; i < n->n_inputs && r.flex; i++) r.flex = n->inputs[i] < 0 || g->values[n->inputs[i]].rank == 4;
        else
            r.flex = r.flex && n->inputs[0] >= 0 && g->values[n->inputs[0]].rank == 4 &&
                     (n->n_inputs < 2 || n->inputs[1] < 0 || g->values[n->inputs[1]].data);
    } else {
        r.flex = elementwise_flex(g, n, outer_const, NULL);
    }
    return r;
}

static int uf_find(int *parent, int x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
}

static kiln_status set_attr_if(kiln_node *n, const char *name, int64_t mask, bool *changed) {
    if (kiln_attr_int(n, name, 0) == mask && (mask || !kiln_attr_find(n, name))) return KILN_OK;
    *changed = true;
    if (!mask) {
        kiln_node_remove_attr(n, name);
        return KILN_OK;
    }
    if (kiln_node_set_int(n, name, mask)) return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory setting %s", name);
    return KILN_OK;
}

static kiln_status set_layout_attr(kiln_node *n, int layout, bool *changed) {
    const char *want = layout == KILN_LAYOUT_NHWC ? "NHWC" : layout == KILN_LAYOUT_NCHW ? "NCHW" : NULL;
    const char *have = kiln_attr_str(n, "kiln_layout", NULL);
    if ((!want && !have) || (want && have && !strcmp(want, have))) return KILN_OK;
    *changed = true;
    if (!want) {
        kiln_node_remove_attr(n, "kiln_layout");
        return KILN_OK;
    }
    if (kiln_node_set_str(n, "kiln_layout", want))
        return kiln_node_errorf(n, KILN_ERR_OOM, "out of memory setting kiln_layout");
    return KILN_OK;
}

kiln_status kiln_pass_select_layout(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    *changed = false;
    kiln_status st = KILN_OK;
    int nn = g->n_nodes, nv = g->n_values;
    node_info *info = calloc((size_t)nn + 1, sizeof *info);
    int *parent = malloc(sizeof(int) * (size_t)(nn + 1));
    int *producer = malloc(sizeof(int) * (size_t)(nv + 1));
    int *first_flex = malloc(sizeof(int) * (size_t)(nv + 1)); /* a flexible toucher of each value */
    double *gain = calloc((size_t)nn + 1, sizeof(double));    /* per region root */
    double *cost = calloc((size_t)nn + 1, sizeof(double));
    uint8_t *layout = calloc((size_t)nv + 1, 1);
    int64_t *cin = calloc((size_t)nn + 1, sizeof(int64_t)), *cout = calloc((size_t)nn + 1, sizeof(int64_t));
    bool *has_fixed_user = calloc((size_t)nv + 1, sizeof(bool)), *is_out = calloc((size_t)nv + 1, sizeof(bool));
    if (!info || !parent || !producer || !first_flex || !gain || !cost || !layout || !cin || !cout || !has_fixed_user ||
        !is_out) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory selecting layouts");
        goto done;
    }
    /* 1. classify, 2. regions */
    for (int v = 0; v < nv; v++) producer[v] = first_flex[v] = -1;
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] >= 0) is_out[g->outputs[i]] = true;
    for (int ni = 0; ni < nn; ni++) {
        parent[ni] = ni;
        const kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        bool touches = false;
        for (int i = 0; i < n->n_inputs && !touches; i++) touches = is_act4(g, n->inputs[i]);
        for (int i = 0; i < n->n_outputs && !touches; i++) touches = is_act4(g, n->outputs[i]);
        if (touches) info[ni] = classify(g, n, ctx->precision);
        for (int i = 0; i < n->n_outputs; i++)
            if (n->outputs[i] >= 0) producer[n->outputs[i]] = ni;
    }
    for (int ni = 0; ni < nn; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        for (int side = 0; side < 2; side++) {
            const int *vs = side ? n->outputs : n->inputs;
            int cnt = side ? n->n_outputs : n->n_inputs;
            for (int i = 0; i < cnt; i++) {
                int v = vs[i];
                if (!is_act4(g, v)) continue;
                if (!info[ni].flex) {
                    if (!side) has_fixed_user[v] = true;
                    continue;
                }
                if (first_flex[v] < 0) first_flex[v] = ni;
                int a = uf_find(parent, first_flex[v]), b = uf_find(parent, ni);
                if (a != b) parent[b] = a;
            }
        }
    }
    /* 3. cost model per region */
    for (int ni = 0; ni < nn; ni++)
        if (!g->nodes[ni].dead && info[ni].flex) gain[uf_find(parent, ni)] += info[ni].gain;
    for (int v = 0; v < nv; v++) {
        if (!is_act4(g, v) || first_flex[v] < 0 || layout_invariant(&g->values[v])) continue;
        int p = producer[v];
        bool from_region = p >= 0 && info[p].flex;
        /* crosses the border: a region's value read in NCHW, or an NCHW value read by a region */
        if (from_region ? (has_fixed_user[v] || is_out[v]) : true)
            cost[uf_find(parent, first_flex[v])] += 2 * numel1(&g->values[v]);
    }
    /* A view (Reshape, Flatten, ...) aliases its input's storage (plan-memory), so it cannot
     * convert: a region whose value a view reads in NCHW stays NCHW (layout-invariant values,
     * such as a global pool's [N,C,1,1] before Flatten, are the same bytes and do not count). */
    for (int ni = 0; ni < nn; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead || !kiln_node_is_view(n) || n->n_inputs < 1) continue;
        int v = n->inputs[0];
        if (is_act4(g, v) && first_flex[v] >= 0 && !layout_invariant(&g->values[v]))
            gain[uf_find(parent, first_flex[v])] = -1e300;
    }
    /* 4. decide, then annotate */
    for (int v = 0; v < nv; v++) {
        if (!is_act4(g, v)) continue;
        int p = producer[v];
        if (p >= 0 && info[p].flex && !is_out[v] && !layout_invariant(&g->values[v])) {
            int r = uf_find(parent, p);
            layout[v] = gain[r] > cost[r] ? KILN_LAYOUT_NHWC : KILN_LAYOUT_NCHW;
        } else if (p >= 0 && info[p].flex) {
            layout[v] = KILN_LAYOUT_NCHW; /* a graph output (the contract), or the same bytes either way */
        } else if (p >= 0 || (g->values[v].flags & KILN_VALUE_INPUT)) {
            layout[v] = KILN_LAYOUT_NCHW;
        }
    }
    for (int ni = 0; ni < nn; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        int mine = KILN_LAYOUT_NCHW; /* the layout this node reads its 4-D activations in */
        if (info[ni].flex) {
            int r = uf_find(parent, ni);
            mine = gain[r] > cost[r] ? KILN_LAYOUT_NHWC : KILN_LAYOUT_NCHW;
        }
        for (int i = 0; i < n->n_inputs && i < 63; i++) {
            int v = n->inputs[i];
            if (is_act4(g, v) && layout[v] && layout[v] != mine && !layout_invariant(&g->values[v]))
                cin[ni] |= (int64_t)1 << i;
        }
        for (int i = 0; i < n->n_outputs && i < 63; i++) {
            int v = n->outputs[i];
            if (is_act4(g, v) && is_out[v] && mine == KILN_LAYOUT_NHWC && !layout_invariant(&g->values[v]))
                cout[ni] |= (int64_t)1 << i;
        }
    }
    for (int v = 0; v < nv; v++) {
        uint8_t want = is_act4(g, v) ? layout[v] : (uint8_t)KILN_LAYOUT_ANY;
        if (g->values[v].layout != want) {
            g->values[v].layout = want;
            *changed = true;
        }
    }
    for (int ni = 0; ni < nn && !st; ni++) {
        kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        int lay = KILN_LAYOUT_ANY;
        if (info[ni].flex) {
            int r = uf_find(parent, ni);
            lay = gain[r] > cost[r] ? KILN_LAYOUT_NHWC : KILN_LAYOUT_NCHW;
        }
        st = set_layout_attr(n, lay, changed);
        if (!st) st = set_attr_if(n, "kiln_convert_input", cin[ni], changed);
        if (!st) st = set_attr_if(n, "kiln_convert_output", cout[ni], changed);
        /* a fused group's anchors carry the layout too: the bundle writer transforms their weights */
        for (int k = 0; n->body && k < n->body->n_nodes && !st; k++) {
            kiln_node *bn = &n->body->nodes[k];
            bool anchor = bn->op == KILN_OP_Conv || bn->op == KILN_OP_ConvTranspose;
            st = set_layout_attr(bn, anchor ? lay : KILN_LAYOUT_ANY, changed);
        }
    }
done:
    free(info);
    free(parent);
    free(producer);
    free(first_flex);
    free(gain);
    free(cost);
    free(layout);
    free(cin);
    free(cout);
    free(has_fixed_user);
    free(is_out);
    return st;
}

int kiln_graph_layout_conversions(const kiln_graph *g, int *nhwc_values) {
    int conv = 0, nhwc = 0;
    bool *seen = calloc((size_t)g->n_values + 1, sizeof(bool));
    for (int v = 0; v < g->n_values; v++) nhwc += g->values[v].layout == KILN_LAYOUT_NHWC;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        int64_t mi = kiln_attr_int(n, "kiln_convert_input", 0), mo = kiln_attr_int(n, "kiln_convert_output", 0);
        for (int i = 0; i < n->n_inputs && i < 63; i++)
            if ((mi >> i & 1) && n->inputs[i] >= 0) {
                if (!seen) conv++;
                else if (!seen[n->inputs[i]]) {
                    seen[n->inputs[i]] = true;
                    conv++;
                }
            }
        for (int i = 0; i < n->n_outputs && i < 63; i++)
            if ((mo >> i & 1) && n->outputs[i] >= 0) {
                if (!seen) conv++;
                else if (!seen[n->outputs[i]]) {
                    seen[n->outputs[i]] = true;
                    conv++;
                }
            }
    }
    free(seen);
    if (nhwc_values) *nhwc_values = nhwc;
    return conv;
}
