/* graph_builder.h — small helpers for writing pass tests: build a graph by names, then check
 * its structure (an op list string) and that two graphs compute the same outputs on seeded
 * random inputs. Header-only; Check's ck_assert is used for failures. */
#ifndef KILN_GRAPH_BUILDER_H
#define KILN_GRAPH_BUILDER_H

#include "pass.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t gb_rng = 0x9e3779b97f4a7c15ull;
static inline double gb_rand(void) { /* uniform [-1, 1) */
    gb_rng = gb_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(gb_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static inline int gb_value(kiln_graph *g, const char *name) {
    int v = kiln_graph_find_value(g, name);
    if (v < 0) v = kiln_graph_add_value(g, name);
    ck_assert_int_ge(v, 0);
    return v;
}

/* Graph input; dims < 0 are symbolic with the name sym (e.g. "N"). */
static inline int gb_input(kiln_graph *g, const char *name, kiln_dtype dt, int rank, const int64_t *dims,
                           const char *sym) {
    int v = gb_value(g, name);
    kiln_value_set(&g->values[v], dt, rank, dims);
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0 && sym) g->values[v].sym[i] = kiln_graph_symbol(g, sym);
    g->values[v].flags |= KILN_VALUE_INPUT;
    g->inputs = realloc(g->inputs, sizeof(int) * (size_t)(g->n_inputs + 1));
    g->inputs[g->n_inputs++] = v;
    return v;
}

/* Constant with seeded random values in [lo, hi). */
static inline int gb_const(kiln_graph *g, const char *name, kiln_dtype dt, int rank, const int64_t *dims, double lo,
                           double hi) {
    kiln_tensor *t = kiln_tensor_new(dt, rank, dims);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->numel; i++) kiln_tensor_set(t, i, lo + (hi - lo) * (gb_rand() + 1) / 2);
    int v = gb_value(g, name);
    g->values[v].data = t;
    g->values[v].flags |= KILN_VALUE_INITIALIZER;
    kiln_value_set(&g->values[v], dt, rank, dims);
    return v;
}

static inline int gb_const_i64(kiln_graph *g, const char *name, int n, const int64_t *vals) {
    int64_t d = n;
    kiln_tensor *t = kiln_tensor_new(KILN_I64, 1, &d);
    memcpy(t->data, vals, sizeof(int64_t) * (size_t)n);
    int v = gb_value(g, name);
    g->values[v].data = t;
    g->values[v].flags |= KILN_VALUE_INITIALIZER;
    kiln_value_set(&g->values[v], KILN_I64, 1, &d);
    return v;
}

/* Node from comma-separated value names ("" for an omitted optional input). */
static inline kiln_node *gb_node(kiln_graph *g, kiln_op op, const char *name, const char *ins, const char *outs) {
    int iv[32], ov[32], ni = 0, no = 0;
    char buf[512];
    const char *lists[2] = {ins, outs};
    for (int which = 0; which < 2; which++) {
        snprintf(buf, sizeof buf, "%s", lists[which]);
        char *save = NULL;
        if (!*buf) continue;
        char *p = buf;
        for (;;) {
            char *comma = strchr(p, ',');
            if (comma) *comma = 0;
            int v = *p ? gb_value(g, p) : -1;
            if (which == 0) iv[ni++] = v;
            else ov[no++] = v;
            if (!comma) break;
            p = comma + 1;
        }
        (void)save;
    }
    int k = kiln_graph_add_node(g, op, name, iv, ni, ov, no);
    ck_assert_int_ge(k, 0);
    return &g->nodes[k];
}

static inline void gb_output(kiln_graph *g, const char *name) {
    int v = gb_value(g, name);
    g->values[v].flags |= KILN_VALUE_OUTPUT;
    g->outputs = realloc(g->outputs, sizeof(int) * (size_t)(g->n_outputs + 1));
    g->outputs[g->n_outputs++] = v;
}

/* Infer and verify; fails the test with the message otherwise. */
static inline void gb_finish(kiln_graph *g) {
    kiln_status st = kiln_graph_normalize(g);
    ck_assert_msg(st == KILN_OK, "graph does not verify: %s", kiln_last_error());
}

/* Top-level ops in order, comma-separated ONNX names; a fused node prints as
 * "Fused:kind[Op+Op+...]". E.g. "Fused:conv_epilogue[Conv+Relu],Flatten". */
static inline const char *gb_ops(const kiln_graph *g) {
    static char buf[4096];
    size_t o = 0;
    buf[0] = 0;
    for (int ni = 0; ni < g->n_nodes && o < sizeof buf; ni++) {
        const kiln_node *n = &g->nodes[ni];
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", ni ? "," : "", kiln_op_table[n->op].onnx_type);
        if (n->body && o < sizeof buf) {
            o += (size_t)snprintf(buf + o, sizeof buf - o, ":%s[", kiln_attr_str(n, "kind", "?"));
            for (int k = 0; k < n->body->n_nodes && o < sizeof buf; k++)
                o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", k ? "+" : "",
                                      kiln_op_table[n->body->nodes[k].op].onnx_type);
            if (o < sizeof buf) o += (size_t)snprintf(buf + o, sizeof buf - o, "]");
        }
    }
    return buf;
}

/* Runs both graphs on the same seeded random inputs (symbolic dims = sym_value) and checks
 * every output: same dtype/shape, relative L2 error <= rel_l2 (exact for ints/bool). */
static inline void gb_assert_same(const kiln_graph *a, const kiln_graph *b, int64_t sym_value, double rel_l2) {
    ck_assert_int_eq(a->n_inputs, b->n_inputs);
    ck_assert_int_eq(a->n_outputs, b->n_outputs);
    kiln_tensor *ins[16] = {0}, *oa[16] = {0}, *ob[16] = {0};
    for (int i = 0; i < a->n_inputs; i++) {
        const kiln_value *v = &a->values[a->inputs[i]];
        int64_t dims[KILN_MAX_RANK];
        for (int d = 0; d < v->rank; d++) dims[d] = v->dims[d] < 0 ? sym_value : v->dims[d];
        ins[i] = kiln_tensor_new(v->dtype, v->rank, dims);
        for (int64_t k = 0; k < ins[i]->numel; k++)
            kiln_tensor_set(ins[i], k, v->dtype == KILN_BOOL ? gb_rand() > 0 : gb_rand());
    }
    ck_assert_msg(kiln_graph_run_cpu(a, ins, a->n_inputs, oa, 16) == KILN_OK, "%s", kiln_last_error());
    ck_assert_msg(kiln_graph_run_cpu(b, ins, b->n_inputs, ob, 16) == KILN_OK, "%s", kiln_last_error());
    for (int o = 0; o < a->n_outputs; o++) {
        ck_assert_int_eq(oa[o]->dtype, ob[o]->dtype);
        ck_assert_int_eq(oa[o]->rank, ob[o]->rank);
        ck_assert_int_eq(memcmp(oa[o]->dims, ob[o]->dims, sizeof(int64_t) * (size_t)oa[o]->rank), 0);
        double num = 0, den = 0;
        for (int64_t k = 0; k < oa[o]->numel; k++) {
            double x = kiln_tensor_get(ob[o], k), y = kiln_tensor_get(oa[o], k);
            num += (x - y) * (x - y);
            den += y * y;
        }
        double err = num == 0 ? 0 : sqrt(num / (den > 0 ? den : 1e-300));
        ck_assert_msg(err <= (kiln_dtype_is_float(oa[o]->dtype) ? rel_l2 : 0), "output %d: relative L2 %g", o, err);
        kiln_tensor_free(oa[o]);
        kiln_tensor_free(ob[o]);
    }
    for (int i = 0; i < a->n_inputs; i++) kiln_tensor_free(ins[i]);
}

/* Runs one pass (and the manager's normalization) on g; returns whether it changed g. */
static inline bool gb_run_pass(kiln_graph *g, const char *pass, kiln_precision prec) {
    kiln_pipeline_opts o;
    kiln_pipeline_opts_init(&o);
    o.only = pass;
    o.ctx.precision = prec;
    kiln_pass_stat st[4];
    int n = 0;
    kiln_status s = kiln_pipeline_run(g, &o, st, 4, &n);
    ck_assert_msg(s == KILN_OK, "pass %s: %s", pass, kiln_last_error());
    return n > 0 && st[0].changed;
}

/* For the fp16 fusion passes that run after select-layout (fuse-conv-pair, fuse-conv-pool): runs
 * fuse-epilogue, convert-precision and select-layout at prec, then `pass`; checks whether it changed
 * the graph, that `fewer` kernels fewer remain when it did, and the CPU evaluator's outputs. */
static inline void gb_check_late_fusion(kiln_graph *g, kiln_precision prec, const char *pass, bool want, int fewer) {
    gb_finish(g);
    kiln_graph *ref = kiln_graph_clone(g);
    ck_assert_ptr_nonnull(ref);
    gb_run_pass(g, "fuse-epilogue,convert-precision,select-layout", prec);
    const int kernels = kiln_graph_kernel_count(g);
    bool changed = gb_run_pass(g, pass, prec);
    ck_assert_msg(changed == want, "%s: changed=%d, ops now %s", pass, changed, gb_ops(g));
    ck_assert_int_eq(kiln_graph_kernel_count(g), kernels - (want ? fewer : 0));
    gb_assert_same(ref, g, 2, prec == KILN_PREC_FP16 ? 2e-3 : 1e-5);
    kiln_graph_free(ref);
}

#endif
