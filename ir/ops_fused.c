/* ops_fused.c — shape rule and CPU reference of KILN_OP_Fused: a group of nodes a fusion
 * pass carved out, owning them as a sub-graph (node->body). Both interpret the body, so a
 * fused graph evaluates exactly like the graph it came from. */
#include "ops_common.h"

/* Infer the body's outputs from the node's input types without touching the body (several
 * threads may evaluate one graph): the body's values are copied, typed and inferred. */
kiln_status kiln_infer_Fused(kiln_infer_ctx *c) {
    const kiln_node *n = c->node;
    const kiln_graph *b = n->body;
    if (!b) return kiln_node_errorf(n, KILN_ERR_MODEL, "a fused node without a body (not an ONNX op)");
    if (b->n_inputs != c->n_in || b->n_outputs != c->n_out)
        return kiln_node_errorf(n, KILN_ERR_INTERNAL, "body has %d->%d values, the node %d->%d", b->n_inputs,
                                b->n_outputs, c->n_in, c->n_out);
    kiln_status st = KILN_OK;
    kiln_value *vals = calloc((size_t)b->n_values + 1, sizeof *vals);
    const kiln_value **pin = NULL;
    kiln_value **pout = NULL;
    int max_io = 1;
    for (int ni = 0; ni < b->n_nodes; ni++) {
        if (b->nodes[ni].n_inputs > max_io) max_io = b->nodes[ni].n_inputs;
        if (b->nodes[ni].n_outputs > max_io) max_io = b->nodes[ni].n_outputs;
    }
    pin = calloc((size_t)max_io, sizeof *pin);
    pout = calloc((size_t)max_io, sizeof *pout);
    if (!vals || !pin || !pout) {
        st = kiln_errorf(KILN_ERR_OOM, "out of memory");
        goto done;
    }
    for (int v = 0; v < b->n_values; v++) {
        vals[v] = b->values[v];
        vals[v].users = NULL;
        vals[v].n_users = 0;
    }
    for (int i = 0; i < b->n_inputs; i++) {
        kiln_value *bv = &vals[b->inputs[i]];
        if (!c->in[i]) {
            st = kiln_node_errorf(n, KILN_ERR_INTERNAL, "fused input %d is missing", i);
            goto done;
        }
        kiln_value_copy_type(bv, c->in[i]);
        bv->data = c->in[i]->data; /* borrowed */
    }
    for (int ni = 0; ni < b->n_nodes; ni++) {
        const kiln_node *bn = &b->nodes[ni];
        for (int i = 0; i < bn->n_inputs; i++) pin[i] = bn->inputs[i] >= 0 ? &vals[bn->inputs[i]] : NULL;
        for (int i = 0; i < bn->n_outputs; i++) {
            pout[i] = bn->outputs[i] >= 0 ? &vals[bn->outputs[i]] : NULL;
            if (pout[i]) pout[i]->data = NULL; /* only body constants keep data */
        }
        if ((st = kiln_infer_node_values(c->g, bn, pin, pout))) goto done;
    }
    for (int o = 0; o < c->n_out; o++)
        if (c->out[o]) kiln_value_copy_type(c->out[o], &vals[b->outputs[o]]);
done:
    free(vals);
    free(pin);
    free(pout);
    return st;
}

kiln_status kiln_eval_Fused(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out,
                            int n_out) {
    kiln_tensor **res = calloc((size_t)n_out + 1, sizeof *res);
    if (!res) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_status st = kiln_graph_run_cpu(n->body, in, n_in, res, n_out);
    for (int o = 0; !st && o < n_out; o++) {
        if (!out[o]) continue;
        if (res[o]->nbytes != out[o]->nbytes || res[o]->dtype != out[o]->dtype)
            st = kiln_node_errorf(n, KILN_ERR_INTERNAL, "body output %d disagrees with the inferred type", o);
        else if (res[o]->nbytes)
            memcpy(out[o]->data, res[o]->data, res[o]->nbytes);
    }
    for (int o = 0; o < n_out; o++) kiln_tensor_free(res[o]);
    free(res);
    if (st && !strstr(kiln_last_error(), "fused")) kiln_error_prefix(st, "in fused group '%s'", n->name);
    return st;
}
