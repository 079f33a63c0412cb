/* eval.c — the CPU reference evaluator: runs a graph node by node through the per-op
 * rules of ir/ops_*.c, freeing each intermediate as soon as its last user has run. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

static void value_from_tensor(kiln_value *v, const kiln_tensor *t) {
    memset(v, 0, sizeof *v);
    v->name = "";
    v->dtype = t->dtype;
    v->rank = t->rank;
    memcpy(v->dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
    v->data = (kiln_tensor *)t; /* borrowed: never freed through v */
    v->producer = -1;
}

kiln_status kiln_eval_node(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor **out,
                           int n_out) {
    if (n_in != n->n_inputs || n_out != n->n_outputs)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "evaluator got %d inputs/%d outputs", n_in, n_out);
    kiln_status st = KILN_OK;
    kiln_value *vin = calloc((size_t)n_in + 1, sizeof *vin);
    kiln_value *vout = calloc((size_t)n_out + 1, sizeof *vout);
    const kiln_value **pin = calloc((size_t)n_in + 1, sizeof *pin);
    kiln_value **pout = calloc((size_t)n_out + 1, sizeof *pout);
    kiln_graph scratch; /* receives symbols an inference rule might create */
    memset(&scratch, 0, sizeof scratch);
    for (int i = 0; i < n_out; i++) out[i] = NULL;
    if (!vin || !vout || !pin || !pout) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) continue;
        value_from_tensor(&vin[i], in[i]);
        pin[i] = &vin[i];
    }
    for (int i = 0; i < n_out; i++) {
        vout[i].name = "";
        vout[i].rank = -1;
        vout[i].producer = -1;
        pout[i] = n->outputs[i] >= 0 ? &vout[i] : NULL;
    }
    st = kiln_infer_node_values(&scratch, n, pin, pout);
    if (st) goto done;
    for (int i = 0; i < n_out; i++) {
        if (!pout[i]) continue;
        if (!kiln_value_is_static(&vout[i])) {
            st = kiln_node_errorf(n, KILN_ERR_INTERNAL, "output %d shape unresolved with all inputs known", i);
            goto done;
        }
        out[i] = kiln_tensor_new(vout[i].dtype, vout[i].rank, vout[i].dims);
        if (!out[i]) {
            st = kiln_error_prefix(KILN_ERR_LIMIT, "output %d of %s", i, kiln_op_table[n->op].onnx_type);
            goto done;
        }
    }
    st = kiln_eval_table[n->op](n, in, n_in, out, n_out);
done:
    if (st)
        for (int i = 0; i < n_out; i++) {
            kiln_tensor_free(out[i]);
            out[i] = NULL;
        }
    for (int i = 0; i < scratch.n_symbols; i++) free(scratch.symbols[i]);
    free(scratch.symbols);
    free(vin);
    free(vout);
    free(pin);
    free(pout);
    return st;
}

/* Check a bound input against the graph's declared input type; symbolic dims must be
 * bound consistently across inputs. */
static kiln_status check_input(const kiln_graph *g, int i, const kiln_tensor *t, int64_t *sym_val) {
    const kiln_value *v = &g->values[g->inputs[i]];
    if (!t) return kiln_errorf(KILN_ERR_INVALID_ARG, "input '%s' is not bound", v->name);
    if (t->dtype != v->dtype)
        return kiln_errorf(KILN_ERR_SHAPE, "input '%s' has dtype %s, the model expects %s", v->name,
                           kiln_dtype_name(t->dtype), kiln_dtype_name(v->dtype));
    if (v->rank >= 0 && t->rank != v->rank)
        return kiln_errorf(KILN_ERR_SHAPE, "input '%s' has rank %d, the model expects rank %d", v->name, t->rank,
                           v->rank);
    for (int d = 0; v->rank >= 0 && d < v->rank; d++) {
        if (v->dims[d] >= 0 && t->dims[d] != v->dims[d]) {
            char want[160];
            kiln_value_format_type(g, v, want, sizeof want);
            return kiln_errorf(KILN_ERR_SHAPE, "input '%s' dim %d is %lld, the model expects %s", v->name, d,
                               (long long)t->dims[d], want);
        }
        int32_t s = v->sym[d];
        if (s > 0 && s <= g->n_symbols) {
            if (sym_val[s - 1] < 0) sym_val[s - 1] = t->dims[d];
            else if (sym_val[s - 1] != t->dims[d])
                return kiln_errorf(KILN_ERR_SHAPE, "input '%s' dim %d is %lld but '%s' was bound to %lld", v->name,
                                   d, (long long)t->dims[d], g->symbols[s - 1], (long long)sym_val[s - 1]);
        }
    }
    return KILN_OK;
}

kiln_status kiln_graph_run_cpu_ex(const kiln_graph *g, kiln_tensor *const *inputs, int n_inputs,
                                  kiln_tensor **outputs, int n_outputs, kiln_eval_observer obs, void *user) {
    if (!g) return kiln_errorf(KILN_ERR_INVALID_ARG, "graph is NULL");
    if (n_inputs != g->n_inputs)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "the model has %d inputs, %d were given", g->n_inputs, n_inputs);
    if (n_outputs < g->n_outputs)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "the model has %d outputs, room for %d was given", g->n_outputs,
                           n_outputs);
    for (int i = 0; i < n_outputs; i++) outputs[i] = NULL;
    kiln_status st = KILN_OK;
    kiln_tensor **slot = calloc((size_t)g->n_values + 1, sizeof *slot);
    bool *owned = calloc((size_t)g->n_values + 1, sizeof *owned);
    int *uses = calloc((size_t)g->n_values + 1, sizeof *uses);
    int64_t *sym_val = malloc(sizeof(int64_t) * (size_t)(g->n_symbols + 1));
    kiln_tensor **nin = NULL, **nout = NULL;
    int max_io = 1;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        if (g->nodes[ni].n_inputs > max_io) max_io = g->nodes[ni].n_inputs;
        if (g->nodes[ni].n_outputs > max_io) max_io = g->nodes[ni].n_outputs;
    }
    nin = calloc((size_t)max_io, sizeof *nin);
    nout = calloc((size_t)max_io, sizeof *nout);
    if (!slot || !owned || !uses || !sym_val || !nin || !nout) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        goto done;
    }
    for (int i = 0; i < g->n_symbols; i++) sym_val[i] = -1;
    for (int i = 0; i < g->n_inputs; i++) {
        st = check_input(g, i, inputs[i], sym_val);
        if (st) goto done;
        slot[g->inputs[i]] = inputs[i];
    }
    for (int v = 0; v < g->n_values; v++) {
        if (g->values[v].data && g->values[v].producer < 0 && !slot[v]) slot[v] = g->values[v].data;
        uses[v] = g->values[v].n_users;
        if (g->values[v].flags & KILN_VALUE_OUTPUT) uses[v] += 1 << 20; /* never freed early */
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        for (int i = 0; i < n->n_inputs; i++) {
            int v = n->inputs[i];
            nin[i] = v >= 0 ? slot[v] : NULL;
            if (v >= 0 && !nin[i]) {
                st = kiln_node_errorf(n, KILN_ERR_MODEL, "input '%s' has no value", g->values[v].name);
                goto done;
            }
        }
        st = kiln_eval_node(n, nin, n->n_inputs, nout, n->n_outputs);
        if (st) goto done;
        for (int i = 0; i < n->n_outputs; i++) {
            int v = n->outputs[i];
            if (v < 0) {
                kiln_tensor_free(nout[i]);
                continue;
            }
            slot[v] = nout[i];
            owned[v] = true;
        }
        if (obs) obs(user, g, ni, nout, n->n_outputs);
        for (int i = 0; i < n->n_outputs; i++) { /* outputs nobody reads */
            int v = n->outputs[i];
            if (v >= 0 && uses[v] == 0 && owned[v]) {
                kiln_tensor_free(slot[v]);
                slot[v] = NULL;
                owned[v] = false;
            }
        }
        for (int i = 0; i < n->n_inputs; i++) {
            int v = n->inputs[i];
            if (v >= 0 && --uses[v] == 0 && owned[v]) {
                kiln_tensor_free(slot[v]);
                slot[v] = NULL;
                owned[v] = false;
            }
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        bool first = owned[v];
        if (first) {
            outputs[i] = slot[v];
            owned[v] = false; /* handed to the caller; later duplicates clone */
        } else {
            outputs[i] = slot[v] ? kiln_tensor_clone(slot[v]) : NULL;
        }
        if (!outputs[i]) {
            st = kiln_errorf(KILN_ERR_MODEL, "output '%s' was not computed", g->values[v].name);
            goto done;
        }
    }
done:
    if (st)
        for (int i = 0; i < n_outputs; i++) {
            kiln_tensor_free(outputs[i]);
            outputs[i] = NULL;
        }
    if (slot && owned)
        for (int v = 0; v < g->n_values; v++)
            if (owned[v]) kiln_tensor_free(slot[v]);
    free(slot);
    free(owned);
    free(uses);
    free(sym_val);
    free(nin);
    free(nout);
    return st;
}

kiln_status kiln_graph_run_cpu(const kiln_graph *g, kiln_tensor *const *inputs, int n_inputs,
                               kiln_tensor **outputs, int n_outputs) {
    return kiln_graph_run_cpu_ex(g, inputs, n_inputs, outputs, n_outputs, NULL, NULL);
}
