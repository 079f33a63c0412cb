/* optimize.c — `kiln optimize`: runs the pass pipeline on a model and reports what each pass
 * did. The pass options are parsed here for every command that runs the pipeline. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kiln_cli_pass_option(int argc, char **argv, int *i, kiln_pipeline_opts *o, const char **err) {
    const char *a = argv[*i];
    *err = NULL;
    if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3]) {
        o->ctx.opt_level = a[2] - '0';
        return 1;
    }
    const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "--passes") || !strcmp(a, "--disable-pass") || !strcmp(a, "--dump-ir-after") ||
        !strcmp(a, "--precision")) {
        if (!val) {
            *err = "missing value";
            return -1;
        }
        ++*i;
        if (!strcmp(a, "--passes")) o->only = val;
        else if (!strcmp(a, "--disable-pass")) o->disabled = val;
        else if (!strcmp(a, "--dump-ir-after")) o->dump_after = val;
        else if (!strcmp(val, "fp32")) o->ctx.precision = KILN_PREC_FP32;
        else if (!strcmp(val, "tf32")) o->ctx.precision = KILN_PREC_TF32;
        else if (!strcmp(val, "fp16")) o->ctx.precision = KILN_PREC_FP16;
        else if (!strcmp(val, "int8")) o->ctx.precision = KILN_PREC_INT8;
        else {
            *err = "--precision takes fp32, tf32, fp16 or int8";
            return -1;
        }
        return 1;
    }
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: kiln optimize MODEL.onnx [-O0..-O3] [--passes a,b,c] [--disable-pass X]\n"
            "                     [--dump-ir-after PASS] [--precision fp32|tf32|fp16|int8]\n"
            "                     [--dot FILE] [--report FILE.json]\n"
            "Runs kiln's graph passes and prints, per pass: time, nodes before -> after, fused groups and\n"
            "estimated bytes moved through device memory. The last line is\n"
            "`optimize: N nodes -> K kernels` (K: what codegen will emit as kernels).\n"
            "  -O<n>              optimization level (default -O2; -O0 runs only memory planning)\n"
            "  --passes a,b       run only these passes (pipeline order)\n"
            "  --disable-pass X   skip pass X (comma-separated list allowed)\n"
            "  --dump-ir-after P  print the IR after pass P to stdout\n"
            "  --precision P      target precision; drives the layout cost model (default fp32)\n"
            "  --dot FILE         write the optimized graph as Graphviz\n"
            "  --report FILE      write the report as JSON: per-pass stats, op histograms before and\n"
            "                     after, kernels by op kind, every fused group with its kind and body\n"
            "passes (pipeline order, minimum -O level):\n");
    for (int i = 0; i < kiln_pass_count(); i++)
        fprintf(f, "  %-18s O%d  %s\n", kiln_pass_at(i)->name, kiln_pass_at(i)->min_level, kiln_pass_at(i)->summary);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

/* ---------------------------------------------------------------- report -- */
/* `--report FILE.json`: the pipeline summary and per-pass stats, plus what the optimization
 * targets are checked against (tests/optimize_targets.sh):
 *   model, opt_level, nodes_before, nodes_after, kernels, bytes_moved_before/after, arena_bytes
 *   passes        [{name, runs, changed, ms, nodes_before, nodes_after, fused_groups, bytes_moved}]
 *   ops_before    {"Conv": 53, ...}  top-level ops as imported (ONNX op types; "Fused" for groups)
 *   ops           the same after the pipeline
 *   kernel_kinds  kernels by op kind (elementwise, broadcast, injective, reduction, conv-like,
 *                 opaque; fused groups as "fused"); they add up to "kernels"
 *   fused         [{name, kind, inputs, outputs, body_ops: ["Conv", "Relu"],
 *                   body: [{op, op_kind, from: [...]}, ...]}]  (see json_fused; a nested group
 *                 appears in its body entry as "fused": {...}) */

static void op_histogram(const kiln_graph *g, int *count) {
    memset(count, 0, sizeof(int) * KILN_OP_COUNT);
    for (int ni = 0; ni < g->n_nodes; ni++)
        if (!g->nodes[ni].dead) count[g->nodes[ni].op]++;
}

static void json_op_histogram(FILE *f, const int *count) {
    fputc('{', f);
    bool first = true;
    for (int op = 0; op < KILN_OP_COUNT; op++) {
        if (!count[op]) continue;
        fprintf(f, "%s", first ? "" : ", ");
        json_str(f, kiln_op_table[op].onnx_type);
        fprintf(f, ": %d", count[op]);
        first = false;
    }
    fputc('}', f);
}

/* One fused group: kind, boundary, body ops in order and the body's edges. For each input of
 * a body node, "from" gives the body node (index into "body") that produces it, -1 for a
 * run-time tensor from outside the group, -2 for a constant (weights: the group's constant
 * inputs or constants of the body), -3 for an omitted optional. outer is the graph that
 * holds n. */
static void json_fused(FILE *f, const kiln_graph *outer, const kiln_node *n, int indent) {
    const kiln_graph *b = n->body;
    fprintf(f, "%*s{\"name\": ", indent, "");
    json_str(f, n->name ? n->name : "");
    fprintf(f, ", \"kind\": ");
    json_str(f, kiln_attr_str(n, "kind", ""));
    fprintf(f, ", \"inputs\": %d, \"outputs\": %d,\n%*s \"body_ops\": [", n->n_inputs, n->n_outputs, indent, "");
    for (int bi = 0; b && bi < b->n_nodes; bi++) {
        if (bi) fprintf(f, ", ");
        json_str(f, kiln_op_table[b->nodes[bi].op].onnx_type);
    }
    fprintf(f, "],\n%*s \"body\": [", indent, "");
    for (int bi = 0; b && bi < b->n_nodes; bi++) {
        const kiln_node *bn = &b->nodes[bi];
        fprintf(f, "%s{\"op\": ", bi ? ", " : "");
        json_str(f, kiln_op_table[bn->op].onnx_type);
        fprintf(f, ", \"op_kind\": \"%s\", \"from\": [", kiln_op_kind_name(kiln_op_table[bn->op].kind));
        for (int i = 0; i < bn->n_inputs; i++) {
            int v = bn->inputs[i], from = -3;
            if (v >= 0) {
                int p = b->values[v].producer;
                from = p >= 0 ? p : b->values[v].data ? -2 : -1;
                for (int k = 0; p < 0 && k < b->n_inputs && k < n->n_inputs; k++)
                    if (b->inputs[k] == v && n->inputs[k] >= 0 && outer->values[n->inputs[k]].data) from = -2;
            }
            fprintf(f, "%s%d", i ? ", " : "", from);
        }
        fputc(']', f);
        if (bn->op == KILN_OP_Fused) {
            fprintf(f, ", \"fused\":\n");
            json_fused(f, b, bn, indent + 4);
        }
        fputc('}', f);
    }
    fprintf(f, "]}");
}

static void write_report(FILE *f, const char *model, const kiln_pipeline_opts *o, const kiln_graph *g, int n0,
                         int64_t bytes0, const int *ops0, const kiln_pass_stat *stats, int ns) {
    fprintf(f, "{\n  \"model\": ");
    json_str(f, model);
    fprintf(f, ",\n  \"opt_level\": %d,\n  \"nodes_before\": %d,\n  \"nodes_after\": %d,\n  \"kernels\": %d,\n",
            o->ctx.opt_level, n0, g->n_nodes, kiln_graph_kernel_count(g));
    fprintf(f, "  \"bytes_moved_before\": %lld,\n  \"bytes_moved_after\": %lld,\n  \"arena_bytes\": %lld,\n",
            (long long)bytes0, (long long)kiln_graph_bytes_moved(g), (long long)g->arena_bytes);
    fprintf(f, "  \"passes\": [\n");
    for (int s = 0; s < ns; s++)
        fprintf(f,
                "    {\"name\": \"%s\", \"runs\": %d, \"changed\": %s, \"ms\": %.3f, \"nodes_before\": %d, "
                "\"nodes_after\": %d, \"fused_groups\": %d, \"bytes_moved\": %lld}%s\n",
                stats[s].name, stats[s].runs, stats[s].changed ? "true" : "false", stats[s].ms, stats[s].nodes_before,
                stats[s].nodes_after, stats[s].fused_groups, (long long)stats[s].bytes_after, s + 1 < ns ? "," : "");
    fprintf(f, "  ],\n  \"ops_before\": ");
    json_op_histogram(f, ops0);
    int ops[KILN_OP_COUNT];
    op_histogram(g, ops);
    fprintf(f, ",\n  \"ops\": ");
    json_op_histogram(f, ops);
    /* kernels by what they are: a fused group counts as "fused", views are not kernels */
    int kinds[KILN_KIND_OPAQUE + 2] = {0};
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead || kiln_node_is_view(n)) continue;
        kinds[n->op == KILN_OP_Fused ? KILN_KIND_OPAQUE + 1 : (int)kiln_op_table[n->op].kind]++;
    }
    fprintf(f, ",\n  \"kernel_kinds\": {");
    for (int k = 0; k <= KILN_KIND_OPAQUE + 1; k++)
        fprintf(f, "%s\"%s\": %d", k ? ", " : "", k <= KILN_KIND_OPAQUE ? kiln_op_kind_name((kiln_op_kind)k) : "fused",
                kinds[k]);
    fprintf(f, "},\n  \"fused\": [");
    int nf = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        if (g->nodes[ni].dead || g->nodes[ni].op != KILN_OP_Fused) continue;
        fprintf(f, "%s\n", nf++ ? "," : "");
        json_fused(f, g, &g->nodes[ni], 4);
    }
    fprintf(f, "%s]\n}\n", nf ? "\n  " : "");
}

int kiln_cmd_optimize(int argc, char **argv) {
    kiln_pipeline_opts o;
    kiln_pipeline_opts_init(&o);
    const char *model = NULL, *dot = NULL, *report = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *err;
        int r = kiln_cli_pass_option(argc, argv, &i, &o, &err);
        if (r < 0) {
            fprintf(stderr, "kiln optimize: %s: %s\n", a, err);
            return 2;
        }
        if (r > 0) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dot") && i + 1 < argc) {
            dot = argv[++i];
        } else if (!strcmp(a, "--report") && i + 1 < argc) {
            report = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "kiln optimize: unknown option or missing value: '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!model) {
            model = a;
        } else {
            fprintf(stderr, "kiln optimize: more than one model given\n");
            return 2;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    if (o.dump_after) o.dump_file = stdout;
    kiln_graph *g = NULL;
    if (kiln_model_load(model, &g)) {
        fprintf(stderr, "kiln optimize: %s\n", kiln_last_error());
        return 1;
    }
    int n0 = g->n_nodes;
    int64_t bytes0 = kiln_graph_bytes_moved(g);
    int ops0[KILN_OP_COUNT];
    op_histogram(g, ops0);
    kiln_pass_stat stats[64];
    int ns = 0;
    if (kiln_pipeline_run(g, &o, stats, 64, &ns)) {
        fprintf(stderr, "kiln optimize: %s\n", kiln_last_error());
        kiln_graph_free(g);
        return 1;
    }
    int kernels = kiln_graph_kernel_count(g);
    printf("%-18s %5s %9s %15s %7s %14s\n", "pass", "runs", "time ms", "nodes", "fused", "bytes moved");
    printf("%-18s %5s %9s %15d %7s %14lld\n", "(imported)", "", "", n0, "0", (long long)bytes0);
    for (int s = 0; s < ns; s++) {
        char nodes[40];
        snprintf(nodes, sizeof nodes, "%d -> %d", stats[s].nodes_before, stats[s].nodes_after);
        printf("%-18s %5d %9.2f %15s %7d %14lld%s\n", stats[s].name, stats[s].runs, stats[s].ms, nodes,
               stats[s].fused_groups, (long long)stats[s].bytes_after, stats[s].changed ? "" : "  (no change)");
    }
    int nhwc = 0, conversions = kiln_graph_layout_conversions(g, &nhwc);
    if (nhwc || conversions) printf("layout: %d values NHWC, %d layout conversions\n", nhwc, conversions);
    if (g->arena_bytes)
        printf("memory plan: arena %lld bytes (sum of planned intermediates %lld bytes)\n", (long long)g->arena_bytes,
               (long long)kiln_memory_plan_intermediate_bytes(g));
    int rc = 0;
    if (dot) {
        FILE *f = fopen(dot, "w");
        if (!f || kiln_graph_write_dot(g, f) || fclose(f)) {
            fprintf(stderr, "kiln optimize: cannot write '%s'\n", dot);
            rc = 1;
        }
    }
    if (report) {
        FILE *f = fopen(report, "w");
        if (!f) {
            fprintf(stderr, "kiln optimize: cannot write '%s'\n", report);
            rc = 1;
        } else {
            write_report(f, model, &o, g, n0, bytes0, ops0, stats, ns);
            if (ferror(f) | fclose(f)) {
                fprintf(stderr, "kiln optimize: cannot write '%s'\n", report);
                rc = 1;
            }
        }
    }
    printf("optimize: %d nodes -> %d kernels\n", n0, kernels);
    kiln_graph_free(g);
    return rc;
}
