/*
 * convert_precision.c — fp16 storage for --precision fp16: every float32 activation and every
 * float32 constant becomes float16, while kernels keep computing in fp32 (they load fp16,
 * compute in fp32 and store fp16; the CPU evaluator does the same per node).
 *
 * Runs only when ctx->precision == KILN_PREC_FP16, after the fusion passes (fused groups'
 * bodies are converted too) and before select-layout and plan-memory (which see the fp16
 * sizes). What it does:
 *   - graph inputs and outputs keep float32 (what TensorRT users expect by default): a Cast
 *     to float16 follows each float32 input, a Cast to float32 precedes each float32 output;
 *   - a float32 constant becomes a float16 constant, except where the op's input is not of
 *     the op's data type T (Resize roi/scales, Pow's exponent, Dropout's ratio): those keep
 *     float32 (a constant used both ways is split);
 *   - Cast(to=float) casts to float16 instead (unless it produces a graph output or feeds only
 *     inputs that keep float32), ConstantOfShape's float32 value and EyeLike's dtype likewise;
 *   - ops kiln runs in float32 only (dynamic/linear quantization, NonMaxSuppression, RoiAlign,
 *     DFT/STFT, window generators) stay float32: Casts around them;
 *   - then the graph and every fused body are re-inferred, so each value's dtype says f16.
 * float64 and integer tensors are left alone. A constant beyond fp16's range becomes +-inf.
 */
#include "pass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ops that stay in float32 as a whole (their float inputs are cast back, their outputs cast
 * to float16): their float operands are fixed to float32 in ONNX or in kiln's evaluator. */
static bool keeps_fp32(kiln_op op) {
    switch (op) {
    case KILN_OP_DynamicQuantizeLinear: case KILN_OP_QLinearConv: case KILN_OP_QLinearMatMul:
    case KILN_OP_NonMaxSuppression: case KILN_OP_RoiAlign: case KILN_OP_DFT: case KILN_OP_STFT:
    case KILN_OP_MelWeightMatrix: case KILN_OP_HannWindow: case KILN_OP_HammingWindow: case KILN_OP_BlackmanWindow:
    case KILN_OP_EyeLike: /* a constant-like pattern; the GPU kernel writes integer and fp32 types */
    case KILN_OP_ReduceProd: case KILN_OP_CumProd: /* products leave fp16's range after a few dozen factors */
        return true;
    default:
        return false;
    }
}

/* Is input i of n of a type of its own (not the op's data type T)? Those keep float32. */
static bool input_keeps_fp32(const kiln_node *n, int i) {
    if (keeps_fp32(n->op)) return true;
    switch (n->op) {
    case KILN_OP_Resize: return i == 1 || i == 2; /* roi, scales */
    case KILN_OP_Pow: return i == 1;              /* exponent: T1, any numeric type */
    case KILN_OP_Dropout: return i == 1;          /* ratio */
    case KILN_OP_OneHot: return i < 2;            /* indices (T1) and depth (T2); values are T3 */
    default: return false;
    }
}

/* A fresh value named after value v ("<name>_fp16"/"_fp32", made unique). -1 on OOM. */
static int new_value_like(kiln_graph *g, int v, const char *suffix) {
    char name[256];
    const char *base = g->values[v].name ? g->values[v].name : "";
    snprintf(name, sizeof name, "%s_%s", base, suffix);
    for (int k = 2; kiln_graph_find_value(g, name) >= 0 && k < 1000; k++)
        snprintf(name, sizeof name, "%s_%s_%d", base, suffix, k);
    return kiln_graph_add_value(g, name);
}

/* y = Cast(x, to); returns the node index, -1 on error. */
static int add_cast(kiln_graph *g, int x, int y, kiln_dtype to) {
    char name[300];
    snprintf(name, sizeof name, "cast_%s_%s", to == KILN_F16 ? "fp16" : "fp32", g->values[y].name ? g->values[y].name : "");
    int ni = kiln_graph_add_node(g, KILN_OP_Cast, name, &x, 1, &y, 1);
    if (ni < 0 || kiln_node_set_int(&g->nodes[ni], "to", (int64_t)to)) return -1;
    return ni;
}

static bool is_cast_to(const kiln_node *n, kiln_dtype dt) {
    return n->op == KILN_OP_Cast && kiln_attr_int(n, "to", 0) == (int64_t)dt;
}

/* Is every live reader of v a Cast to dt (the pass ran before)? */
static bool only_cast_to(const kiln_graph *g, int v, kiln_dtype dt) {
    for (int m = 0; m < g->n_nodes; m++) {
        const kiln_node *n = &g->nodes[m];
        if (n->dead) continue;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] == v && !is_cast_to(n, dt)) return false;
    }
    return true;
}

static kiln_status oom(void) { return kiln_errorf(KILN_ERR_OOM, "out of memory"); }

/* Node ni reads x through a Cast to `to` at input i. */
static kiln_status cast_input(kiln_graph *g, int ni, int i, kiln_dtype to) {
    int x = g->nodes[ni].inputs[i];
    int nv = new_value_like(g, x, to == KILN_F16 ? "fp16" : "fp32");
    if (nv < 0 || add_cast(g, x, nv, to) < 0) return oom();
    g->nodes[ni].inputs[i] = nv;
    return KILN_OK;
}

/* Output k of node ni goes through a Cast to `to` before it becomes value y (y keeps its id and
 * name); with move_users, the graph's other readers of y read the node's own output instead. */
static kiln_status cast_output(kiln_graph *g, int ni, int k, kiln_dtype to, bool move_users) {
    int y = g->nodes[ni].outputs[k];
    int nv = new_value_like(g, y, to == KILN_F16 ? "fp32" : "fp16");
    if (nv < 0) return oom();
    if (move_users)
        for (int m = 0; m < g->n_nodes; m++)
            for (int i = 0; i < g->nodes[m].n_inputs; i++)
                if (g->nodes[m].inputs[i] == y) g->nodes[m].inputs[i] = nv;
    g->nodes[ni].outputs[k] = nv;
    g->values[nv].producer = ni;
    if (add_cast(g, nv, y, to) < 0) return oom();
    g->values[y].producer = g->n_nodes - 1;
    return KILN_OK;
}

static bool is_graph_output(const kiln_graph *g, int v) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return true;
    return false;
}

/* Does any live reader of v take it at an input that converts to float16? */
static bool feeds_converted_input(const kiln_graph *g, int v) {
    for (int m = 0; m < g->n_nodes; m++) {
        const kiln_node *n = &g->nodes[m];
        if (n->dead) continue;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] == v && !input_keeps_fp32(n, i)) return true;
    }
    return false;
}

static kiln_tensor *to_f16(const kiln_tensor *t) {
    kiln_tensor *h = kiln_tensor_new(KILN_F16, t->rank, t->dims);
    if (!h) return NULL;
    const float *s = t->data;
    uint16_t *d = h->data;
    for (int64_t i = 0; i < t->numel; i++) d[i] = kiln_f32_to_f16(s[i]);
    return h;
}

/* Casts to float, ConstantOfShape and EyeLike of float in g (a top graph or a body) now make
 * float16. Only nodes [0, n_nodes) are looked at (the boundary casts come later). */
static kiln_status retarget_float_producers(kiln_graph *g, int n_nodes, bool top, bool *changed) {
    for (int ni = 0; ni < n_nodes; ni++) {
        kiln_node *n = &g->nodes[ni];
        if (n->dead || n->n_outputs < 1 || n->outputs[0] < 0) continue;
        int y = n->outputs[0];
        /* in a body everything converts (the outer readers of a body output convert too) */
        if (top && (is_graph_output(g, y) || !feeds_converted_input(g, y))) continue;
        if (n->op == KILN_OP_Cast && kiln_attr_int(n, "to", 0) == KILN_F32) {
            if (kiln_node_set_int(n, "to", KILN_F16)) return oom();
            *changed = true;
        } else if (n->op == KILN_OP_EyeLike && kiln_attr_int(n, "dtype", 0) == KILN_F32) {
            if (kiln_node_set_int(n, "dtype", KILN_F16)) return oom();
            *changed = true;
        } else if (n->op == KILN_OP_ConstantOfShape) {
            const kiln_tensor *t = kiln_attr_tensor(n, "value");
            if (!t || t->dtype != KILN_F32) continue;
            kiln_tensor *h = to_f16(t);
            if (!h) return oom();
            kiln_status st = kiln_node_set_tensor(n, "value", h);
            kiln_tensor_free(h);
            if (st) return st;
            *changed = true;
        }
    }
    return KILN_OK;
}

/* Re-infers every fused body from its node's (already inferred) input types. */
static kiln_status retype_bodies(kiln_graph *g) {
    for (int ni = 0; ni < g->n_nodes; ni++) {
        kiln_node *n = &g->nodes[ni];
        if (n->dead || !n->body) continue;
        kiln_graph *b = n->body;
        /* outer constants (Reduce axes, Clip bounds) lend their data for the body's inference,
         * as the Fused op's own inference does; the body never owns them */
        int nb = b->n_inputs < n->n_inputs ? b->n_inputs : n->n_inputs;
        kiln_tensor **saved = calloc((size_t)nb + 1, sizeof *saved);
        if (!saved) return oom();
        for (int i = 0; i < nb; i++) {
            if (n->inputs[i] < 0) continue;
            kiln_value *bv = &b->values[b->inputs[i]];
            kiln_value_copy_type(bv, &g->values[n->inputs[i]]);
            saved[i] = bv->data;
            if (!bv->data) bv->data = g->values[n->inputs[i]].data;
        }
        kiln_status st = kiln_graph_infer(b);
        for (int i = 0; i < nb; i++)
            if (n->inputs[i] >= 0) b->values[b->inputs[i]].data = saved[i];
        free(saved);
        if (!st) st = retype_bodies(b);
        if (st) return kiln_error_prefix(st, "fused group '%s'", n->name ? n->name : "");
    }
    return KILN_OK;
}

kiln_status kiln_pass_convert_precision(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    *changed = false;
    if (ctx->precision != KILN_PREC_FP16) return KILN_OK;
    kiln_status st;
    int n0 = g->n_nodes;
    kiln_dtype *out_dt = calloc((size_t)g->n_outputs + 1, sizeof *out_dt);
    if (!out_dt) return oom();
    for (int i = 0; i < g->n_outputs; i++) out_dt[i] = g->values[g->outputs[i]].dtype;

    /* 1. ops that stay float32: their float activations come back to float32 and leave as float16 */
    for (int ni = 0; ni < n0; ni++) {
        if (g->nodes[ni].dead || !keeps_fp32(g->nodes[ni].op)) continue;
        for (int i = 0; i < g->nodes[ni].n_inputs; i++) {
            int x = g->nodes[ni].inputs[i];
            if (x < 0 || g->values[x].dtype != KILN_F32 || (g->values[x].data && !(g->values[x].flags & KILN_VALUE_INPUT)))
                continue;
            if (g->values[x].producer >= 0 && is_cast_to(&g->nodes[g->values[x].producer], KILN_F32)) continue;
            if ((st = cast_input(g, ni, i, KILN_F32))) goto done;
            *changed = true;
        }
        for (int k = 0; k < g->nodes[ni].n_outputs; k++) {
            int y = g->nodes[ni].outputs[k];
            if (y < 0 || g->values[y].dtype != KILN_F32 || is_graph_output(g, y) || kiln_value_live_uses(g, y) == 0 ||
                only_cast_to(g, y, KILN_F16))
                continue;
            if ((st = cast_output(g, ni, k, KILN_F16, false))) goto done;
            *changed = true;
        }
    }

    /* 2. float32 graph inputs: one Cast to float16 that every reader uses */
    for (int gi = 0; gi < g->n_inputs; gi++) {
        int x = g->inputs[gi];
        if (g->values[x].dtype != KILN_F32) continue;
        int nv = -1;
        for (int m = 0; m < n0; m++) {
            kiln_node *n = &g->nodes[m];
            if (n->dead) continue;
            for (int i = 0; i < n->n_inputs; i++) {
                if (n->inputs[i] != x || input_keeps_fp32(n, i) || is_cast_to(n, KILN_F16)) continue;
                if (nv < 0) {
                    if ((nv = new_value_like(g, x, "fp16")) < 0 || add_cast(g, x, nv, KILN_F16) < 0) {
                        st = oom();
                        goto done;
                    }
                    n = &g->nodes[m];
                }
                n->inputs[i] = nv;
                *changed = true;
            }
        }
    }

    /* 3. float32 constants -> float16 at every input of the op's data type */
    {
        int nv0 = g->n_values;
        int *conv = malloc(sizeof(int) * (size_t)(nv0 + 1));
        if (!conv) {
            st = oom();
            goto done;
        }
        for (int v = 0; v < nv0; v++) conv[v] = -1;
        st = KILN_OK;
        for (int m = 0; m < n0 && !st; m++) {
            for (int i = 0; i < g->nodes[m].n_inputs && !st; i++) {
                int v = g->nodes[m].inputs[i];
                if (v < 0 || v >= nv0) continue;
                const kiln_value *cv = &g->values[v];
                if (!cv->data || cv->data->dtype != KILN_F32 || (cv->flags & KILN_VALUE_INPUT) || cv->producer >= 0 ||
                    input_keeps_fp32(&g->nodes[m], i))
                    continue;
                if (conv[v] < 0) {
                    kiln_tensor *h = to_f16(cv->data);
                    char hint[256];
                    snprintf(hint, sizeof hint, "%s_fp16", cv->name ? cv->name : "const");
                    if (!h || (conv[v] = kiln_graph_add_const(g, h, hint)) < 0) {
                        if (h && conv[v] < 0) kiln_tensor_free(h);
                        st = oom();
                        break;
                    }
                }
                g->nodes[m].inputs[i] = conv[v];
                *changed = true;
            }
        }
        free(conv);
        if (st) goto done;
    }

    /* 4. producers of float activations (top graph and bodies) */
    if ((st = retarget_float_producers(g, n0, true, changed))) goto done;
    for (int ni = 0; ni < n0; ni++)
        if (!g->nodes[ni].dead && g->nodes[ni].body &&
            (st = retarget_float_producers(g->nodes[ni].body, g->nodes[ni].body->n_nodes, false, changed)))
            goto done;
    if (!*changed) goto done;

    /* 5. types now; then float32 outputs that became float16 get their Cast back */
    if ((st = kiln_graph_compact(g)) || (st = kiln_graph_infer(g))) goto done;
    bool again = false;
    for (int i = 0; i < g->n_outputs; i++) {
        int y = g->outputs[i];
        if (out_dt[i] != KILN_F32 || g->values[y].dtype != KILN_F16 || g->values[y].producer < 0) continue;
        kiln_node *p = &g->nodes[g->values[y].producer];
        int k = 0;
        while (k < p->n_outputs && p->outputs[k] != y) k++;
        if (k == p->n_outputs) continue;
        if ((st = cast_output(g, g->values[y].producer, k, KILN_F32, true))) goto done;
        again = true;
    }
    if (again && ((st = kiln_graph_compact(g)) || (st = kiln_graph_infer(g)))) goto done;
    /* 6. an input of a type of its own (OneHot's indices, Resize's scales) that a converted
     * activation now feeds as float16 gets a Cast back to float32 */
    again = false;
    for (int m = 0, nn = g->n_nodes; m < nn; m++) {
        for (int i = 0; i < g->nodes[m].n_inputs; i++) {
            int x = g->nodes[m].inputs[i], nv;
            if (g->nodes[m].dead || x < 0 || !input_keeps_fp32(&g->nodes[m], i) || g->values[x].dtype != KILN_F16)
                continue;
            if ((nv = new_value_like(g, x, "fp32")) < 0 || add_cast(g, x, nv, KILN_F32) < 0) {
                st = oom();
                goto done;
            }
            g->nodes[m].inputs[i] = nv;
            again = true;
        }
    }
    if (again && ((st = kiln_graph_compact(g)) || (st = kiln_graph_infer(g)))) goto done;
    st = retype_bodies(g);
done:
    free(out_dt);
    return st;
}
