/* verify.c — structural checks of a graph: every value defined once and before use (so
 * the node order is topological and the graph acyclic), arities within the op table,
 * use lists consistent with the nodes, and every value typed. */
#include "ir.h"

#include <stdlib.h>

kiln_status kiln_graph_verify(const kiln_graph *g) {
    kiln_status st = KILN_OK;
    int *def = malloc(sizeof(int) * (size_t)(g->n_values + 1)); /* -2 undefined, -1 graph-level */
    int *count = calloc((size_t)g->n_values + 1, sizeof(int));
    if (!def || !count) {
        free(def);
        free(count);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    for (int v = 0; v < g->n_values; v++) def[v] = g->values[v].data && g->values[v].producer < 0 ? -1 : -2;
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        if (v < 0 || v >= g->n_values) {
            st = kiln_errorf(KILN_ERR_INTERNAL, "graph input %d refers to value %d", i, v);
            goto done;
        }
        if (def[v] != -2) {
            st = kiln_errorf(KILN_ERR_MODEL, "graph input '%s' is also an initializer or listed twice",
                             g->values[v].name);
            goto done;
        }
        def[v] = -1;
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        const kiln_op_info *oi = &kiln_op_table[n->op];
        if ((unsigned)n->op >= KILN_OP_COUNT || n->dead) {
            st = kiln_errorf(KILN_ERR_INTERNAL, "node %d has an invalid op or is dead (compact first)", ni);
            goto done;
        }
        if ((n->op == KILN_OP_Fused) != (n->body != NULL)) {
            st = kiln_node_errorf(n, KILN_ERR_INTERNAL, "only fused nodes own a body");
            goto done;
        }
        if (n->body) {
            if (n->body->n_inputs != n->n_inputs || n->body->n_outputs != n->n_outputs) {
                st = kiln_node_errorf(n, KILN_ERR_INTERNAL, "body I/O (%d->%d) differs from the node's (%d->%d)",
                                      n->body->n_inputs, n->body->n_outputs, n->n_inputs, n->n_outputs);
                goto done;
            }
            if ((st = kiln_graph_verify(n->body))) {
                kiln_error_prefix(st, "in the body of fused node '%s'", n->name);
                goto done;
            }
        }
        if (n->n_inputs < oi->min_in || (oi->max_in >= 0 && n->n_inputs > oi->max_in) ||
            n->n_outputs < oi->min_out || (oi->max_out >= 0 && n->n_outputs > oi->max_out)) {
            st = kiln_node_errorf(n, KILN_ERR_MODEL, "arity %d->%d outside the op table's %d..%d -> %d..%d",
                                  n->n_inputs, n->n_outputs, oi->min_in, oi->max_in, oi->min_out, oi->max_out);
            goto done;
        }
        for (int i = 0; i < n->n_inputs; i++) {
            int v = n->inputs[i];
            if (v < -1 || v >= g->n_values) {
                st = kiln_node_errorf(n, KILN_ERR_INTERNAL, "input %d refers to value %d", i, v);
                goto done;
            }
            if (v >= 0 && def[v] == -2) {
                st = kiln_node_errorf(n, KILN_ERR_MODEL,
                                      "input '%s' is used before it is defined (graph not in order, a cycle, "
                                      "or a missing initializer/input)",
                                      g->values[v].name);
                goto done;
            }
            if (v >= 0) count[v]++;
        }
        for (int i = 0; i < n->n_outputs; i++) {
            int v = n->outputs[i];
            if (v < -1 || v >= g->n_values) {
                st = kiln_node_errorf(n, KILN_ERR_INTERNAL, "output %d refers to value %d", i, v);
                goto done;
            }
            if (v < 0) continue;
            if (def[v] != -2) {
                st = kiln_node_errorf(n, KILN_ERR_MODEL, "output '%s' is defined more than once", g->values[v].name);
                goto done;
            }
            def[v] = ni;
            if (g->values[v].producer != ni) {
                st = kiln_node_errorf(n, KILN_ERR_INTERNAL, "producer link of '%s' is stale", g->values[v].name);
                goto done;
            }
        }
    }
    for (int v = 0; v < g->n_values; v++) {
        if (count[v] != g->values[v].n_users) {
            st = kiln_errorf(KILN_ERR_INTERNAL, "use list of '%s' has %d entries, the nodes use it %d times",
                             g->values[v].name, g->values[v].n_users, count[v]);
            goto done;
        }
        if (def[v] != -2 && !kiln_dtype_is_supported(g->values[v].dtype)) {
            st = kiln_errorf(KILN_ERR_MODEL, "value '%s' has no supported dtype (%s)", g->values[v].name,
                             kiln_dtype_name(g->values[v].dtype));
            goto done;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (v < 0 || v >= g->n_values || def[v] == -2) {
            st = kiln_errorf(KILN_ERR_MODEL, "graph output '%s' is never defined",
                             v >= 0 && v < g->n_values ? g->values[v].name : "?");
            goto done;
        }
    }
done:
    free(def);
    free(count);
    return st;
}
