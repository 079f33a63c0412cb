/* shape.c — shape/dtype helpers for the per-op inference rules, and the graph-wide
 * inference driver. */
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kiln_node_describe(const kiln_node *n, char *buf, size_t len) {
    snprintf(buf, len, "node '%s' (#%d %s)", n->name && *n->name ? n->name : "",
             n->id, kiln_op_table[n->op].onnx_type);
}

kiln_status kiln_node_errorf(const kiln_node *n, kiln_status code, const char *fmt, ...) {
    char msg[768], who[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kiln_node_describe(n, who, sizeof who);
    return kiln_errorf(code, "%s: %s", who, msg);
}

void kiln_value_set(kiln_value *v, kiln_dtype dt, int rank, const int64_t *dims) {
    v->dtype = dt;
    v->rank = rank;
    for (int i = 0; i < KILN_MAX_RANK; i++) {
        v->dims[i] = (i < rank && dims) ? dims[i] : 0;
        v->sym[i] = 0;
    }
}

void kiln_value_copy_type(kiln_value *dst, const kiln_value *src) {
    dst->dtype = src->dtype;
    dst->rank = src->rank;
    memcpy(dst->dims, src->dims, sizeof dst->dims);
    memcpy(dst->sym, src->sym, sizeof dst->sym);
}

bool kiln_value_is_static(const kiln_value *v) {
    if (v->rank < 0) return false;
    for (int i = 0; i < v->rank; i++)
        if (v->dims[i] < 0) return false;
    return true;
}

int64_t kiln_value_numel(const kiln_value *v) {
    if (!kiln_value_is_static(v)) return -1;
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++)
        if (!kiln_mul_dims(n, v->dims[i], &n)) return -2;
    return n;
}

bool kiln_norm_axis(int64_t axis, int rank, int64_t *out) {
    if (axis < -rank || axis >= rank) return false;
    *out = axis < 0 ? axis + rank : axis;
    return true;
}

int kiln_value_const_ints(const kiln_value *v, int64_t *out, int max) {
    if (!v || !v->data) return -1;
    const kiln_tensor *t = v->data;
    if (t->numel > max) return -2;
    for (int64_t i = 0; i < t->numel; i++) out[i] = kiln_tensor_get_i64(t, i);
    return (int)t->numel;
}

kiln_status kiln_infer_broadcast(const kiln_node *node, const kiln_value *const *vals, int n,
                                 kiln_value *out) {
    int rank = 0;
    for (int k = 0; k < n; k++) {
        if (!vals[k]) continue;
        if (vals[k]->rank < 0) {
            out->rank = -1;
            return KILN_OK;
        }
        if (vals[k]->rank > rank) rank = vals[k]->rank;
    }
    int64_t dims[KILN_MAX_RANK];
    int32_t sym[KILN_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        int64_t d = 1; /* 1 until something bigger or unknown is seen */
        int32_t s = 0;
        bool unknown = false;
        for (int k = 0; k < n; k++) {
            const kiln_value *v = vals[k];
            if (!v) continue;
            int j = i - (rank - v->rank);
            if (j < 0) continue;
            int64_t e = v->dims[j];
            if (e == 1) continue;
            if (e < 0) { /* dynamic: same symbol as before, or adopt it */
                if (d > 1) continue; /* static d wins: e must equal d at run time */
                if (unknown && s != 0 && v->sym[j] == s) continue;
                if (!unknown) {
                    unknown = true;
                    s = v->sym[j];
                } else if (v->sym[j] != s) {
                    s = 0;
                }
                continue;
            }
            if (d == 1) {
                d = e;
                unknown = false;
                s = 0;
            } else if (d != e) {
                return kiln_node_errorf(node, KILN_ERR_SHAPE,
                                        "inputs cannot be broadcast: dim %d is %lld in one and %lld in another",
                                        i, (long long)d, (long long)e);
            }
        }
        dims[i] = unknown ? -1 : d;
        sym[i] = unknown ? s : 0;
    }
    out->rank = rank;
    for (int i = 0; i < KILN_MAX_RANK; i++) {
        out->dims[i] = i < rank ? dims[i] : 0;
        out->sym[i] = i < rank ? sym[i] : 0;
    }
    return KILN_OK;
}

static kiln_status check_arity(const kiln_node *n) {
    const kiln_op_info *oi = &kiln_op_table[n->op];
    if (n->n_inputs < oi->min_in || (oi->max_in >= 0 && n->n_inputs > oi->max_in))
        return kiln_node_errorf(n, KILN_ERR_MODEL, "has %d inputs, expected %d..%d", n->n_inputs,
                                oi->min_in, oi->max_in);
    if (n->n_outputs < oi->min_out || (oi->max_out >= 0 && n->n_outputs > oi->max_out))
        return kiln_node_errorf(n, KILN_ERR_MODEL, "has %d outputs, expected %d..%d", n->n_outputs,
                                oi->min_out, oi->max_out);
    /* required inputs (the first min_in) must be present */
    for (int i = 0; i < oi->min_in && i < n->n_inputs; i++)
        if (n->inputs[i] < 0 && n->op != KILN_OP_Clip)
            return kiln_node_errorf(n, KILN_ERR_MODEL, "required input %d is missing", i);
    /* and the required outputs (an empty name omits an output; only optional ones may be) */
    for (int i = 0; i < oi->min_out && i < n->n_outputs; i++)
        if (n->outputs[i] < 0) return kiln_node_errorf(n, KILN_ERR_MODEL, "required output %d is missing", i);
    return KILN_OK;
}

/* Infer one node given value pointers (used by the graph driver and the evaluator). */
kiln_status kiln_infer_node_values(kiln_graph *g, const kiln_node *n, const kiln_value *const *in,
                                   kiln_value *const *out) {
    kiln_status st = check_arity(n);
    if (st) return st;
    for (int i = 0; i < n->n_inputs; i++)
        if (in[i] && !kiln_dtype_is_supported(in[i]->dtype))
            return kiln_node_errorf(n, KILN_ERR_UNSUPPORTED, "input %d ('%s') has unsupported dtype %s", i,
                                    in[i]->name ? in[i]->name : "", kiln_dtype_name(in[i]->dtype));
    kiln_infer_ctx c = {g, n, n->n_inputs, in, n->n_outputs, out};
    st = kiln_infer_table[n->op](&c);
    if (st) return st;
    for (int i = 0; i < n->n_outputs; i++) {
        if (!out[i]) continue;
        if (!kiln_dtype_is_supported(out[i]->dtype))
            return kiln_node_errorf(n, KILN_ERR_INTERNAL, "inference left output %d without a dtype", i);
        if (out[i]->rank > KILN_MAX_RANK)
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "output rank %d exceeds %d", out[i]->rank, KILN_MAX_RANK);
        if (kiln_value_numel(out[i]) == -2)
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "output %d element count overflows", i);
    }
    return KILN_OK;
}

kiln_status kiln_graph_infer(kiln_graph *g) {
    const kiln_value *in[64];
    kiln_value *out[64];
    for (int ni = 0; ni < g->n_nodes; ni++) {
        kiln_node *n = &g->nodes[ni];
        const kiln_value **pin = in;
        kiln_value **pout = out;
        const kiln_value **hin = NULL;
        kiln_value **hout = NULL;
        if (n->n_inputs > 64 || n->n_outputs > 64) {
            hin = malloc(sizeof *hin * (size_t)(n->n_inputs + 1));
            hout = malloc(sizeof *hout * (size_t)(n->n_outputs + 1));
            if (!hin || !hout) {
                free(hin);
                free(hout);
                return kiln_errorf(KILN_ERR_OOM, "out of memory");
            }
            pin = hin;
            pout = hout;
        }
        for (int i = 0; i < n->n_inputs; i++) pin[i] = n->inputs[i] >= 0 ? &g->values[n->inputs[i]] : NULL;
        for (int i = 0; i < n->n_outputs; i++) pout[i] = n->outputs[i] >= 0 ? &g->values[n->outputs[i]] : NULL;
        kiln_status st = kiln_infer_node_values(g, n, pin, pout);
        free(hin);
        free(hout);
        if (st) return st;
    }
    return KILN_OK;
}
