/* pipeline.c — the pass manager: the ordered pipeline table, fixpoint iteration, per-pass
 * statistics, and the cost figures the report prints (bytes moved, kernel count). */
#include "pass.h"

#include <string.h>
#include <time.h>

/* The pipeline, in order. Group 1 passes enable each other (folding exposes shape chains,
 * simplification exposes folding and cleanup), so they iterate to a fixpoint. */
static const kiln_pass_info pipeline[] = {
    {"cleanup", kiln_pass_cleanup, 1, 1,
     "dead code, Identity, inference Dropout, no-op Cast/Reshape/Transpose/Slice, reshape chains, transpose pairs"},
    {"fold-constants", kiln_pass_fold_constants, 1, 1, "evaluate nodes whose inputs are all constant (size-capped)"},
    {"simplify-shapes", kiln_pass_simplify_shapes, 1, 1,
     "Shape->Gather->Unsqueeze->Concat->Reshape chains to constants; only a dynamic batch stays symbolic"},
    {"fold-batchnorm", kiln_pass_fold_batchnorm, 1, 1,
     "BatchNormalization and per-channel Mul/Add by constants into Conv/ConvTranspose/Gemm weights"},
    {"recognize-patterns", kiln_pass_recognize_patterns, 2, 0,
     "Softmax, LayerNormalization and GELU written out as primitive ops become that one op"},
    {"fuse-epilogue", kiln_pass_fuse_epilogue, 2, 0,
     "Conv/ConvTranspose/Gemm/MatMul + bias + activation + residual Add (+ activation) as one kernel"},
    {"fuse-elementwise", kiln_pass_fuse_elementwise, 2, 0,
     "connected elementwise/broadcast DAGs; reductions with their elementwise prologue/epilogue"},
    {"convert-precision", kiln_pass_convert_precision, 0, 0,
     "--precision fp16: float32 activations and constants stored as float16 (graph I/O stays float32)"},
    {"select-layout", kiln_pass_select_layout, 2, 0,
     "NCHW or NHWC per convolution region from a precision-aware cost model"},
    {"fuse-conv-pair", kiln_pass_fuse_conv_pair, 2, 0,
     "fp16 NHWC: Add(conv(x), conv2(a)) groups as one GEMM over both depths (ResNet projection blocks)"},
    {"fuse-conv-pool", kiln_pass_fuse_conv_pool, 2, 0,
     "fp16 NHWC: a stride-2 stem conv (C <= 4, 64 channels) + bias + relu + MaxPool 3x3 s2 as one kernel"},
    {"plan-memory", kiln_pass_plan_memory, 0, 0, "liveness -> offsets in one activation arena, in-place reuse"},
};
#define N_PASSES ((int)(sizeof pipeline / sizeof pipeline[0]))

int kiln_pass_count(void) { return N_PASSES; }
const kiln_pass_info *kiln_pass_at(int i) { return i >= 0 && i < N_PASSES ? &pipeline[i] : NULL; }
const kiln_pass_info *kiln_pass_find(const char *name) {
    for (int i = 0; i < N_PASSES; i++)
        if (!strcmp(pipeline[i].name, name)) return &pipeline[i];
    return NULL;
}

void kiln_pipeline_opts_init(kiln_pipeline_opts *o) {
    memset(o, 0, sizeof *o);
    o->ctx.opt_level = 2;
    o->ctx.precision = KILN_PREC_FP32;
    o->ctx.fold_max_bytes = (int64_t)16 << 20;
    o->ctx.verify = true;
}

bool kiln_node_is_view(const kiln_node *n) {
    switch (n->op) {
    case KILN_OP_Reshape: case KILN_OP_Flatten: case KILN_OP_Squeeze: case KILN_OP_Unsqueeze:
    case KILN_OP_Identity:
        return true;
    default:
        return false;
    }
}

int kiln_graph_kernel_count(const kiln_graph *g) {
    int k = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) k += !g->nodes[ni].dead && !kiln_node_is_view(&g->nodes[ni]);
    return k;
}

int kiln_graph_fused_count(const kiln_graph *g) {
    int k = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) k += !g->nodes[ni].dead && g->nodes[ni].op == KILN_OP_Fused;
    return k;
}

static int64_t value_bytes(const kiln_value *v) {
    if (v->rank < 0 || !kiln_dtype_is_supported(v->dtype)) return 0;
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++) {
        int64_t d = v->dims[i] < 0 ? 1 : v->dims[i];
        if (!kiln_mul_dims(n, d, &n)) return INT64_MAX / 4;
    }
    return n * (int64_t)kiln_dtype_size(v->dtype);
}

int64_t kiln_graph_bytes_moved(const kiln_graph *g) {
    int64_t total = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead || kiln_node_is_view(n)) continue;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] >= 0) total += value_bytes(&g->values[n->inputs[i]]);
        for (int i = 0; i < n->n_outputs; i++)
            if (n->outputs[i] >= 0) total += value_bytes(&g->values[n->outputs[i]]);
    }
    return total;
}

static bool in_list(const char *list, const char *name) {
    if (!list) return false;
    size_t l = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == l && !strncmp(p, name, l)) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static kiln_status check_names(const char *list, const char *what) {
    if (!list) return KILN_OK;
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool found = false;
        for (int i = 0; i < N_PASSES && !found; i++)
            found = strlen(pipeline[i].name) == n && !strncmp(pipeline[i].name, p, n);
        if (!found && n) {
            char known[512] = "";
            for (int i = 0; i < N_PASSES; i++) {
                strncat(known, pipeline[i].name, sizeof known - strlen(known) - 1);
                if (i + 1 < N_PASSES) strncat(known, ", ", sizeof known - strlen(known) - 1);
            }
            return kiln_errorf(KILN_ERR_INVALID_ARG, "%s: unknown pass '%.*s' (passes: %s)", what, (int)n, p, known);
        }
        if (!e) break;
        p = e + 1;
    }
    return KILN_OK;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool selected(const kiln_pipeline_opts *o, const kiln_pass_info *p) {
    if (o->only) return in_list(o->only, p->name) && !in_list(o->disabled, p->name);
    return o->ctx.opt_level >= p->min_level && !in_list(o->disabled, p->name);
}

kiln_status kiln_pipeline_run(kiln_graph *g, const kiln_pipeline_opts *o, kiln_pass_stat *stats, int max_stats,
                              int *n_stats) {
    kiln_status st;
    if ((st = check_names(o->only, "--passes")) || (st = check_names(o->disabled, "--disable-pass")) ||
        (o->dump_after && (st = check_names(o->dump_after, "--dump-ir-after"))))
        return st;
    int ns = 0;
    if (n_stats) *n_stats = 0;
    for (int i = 0; i < N_PASSES;) {
        /* the run of passes [i, j) iterates together when they share a fixpoint group */
        int j = i + 1;
        if (pipeline[i].fixpoint_group)
            while (j < N_PASSES && pipeline[j].fixpoint_group == pipeline[i].fixpoint_group) j++;
        int first_stat = ns;
        for (int k = i; k < j; k++)
            if (selected(o, &pipeline[k]) && stats && ns < max_stats) {
                memset(&stats[ns], 0, sizeof stats[ns]);
                stats[ns].name = pipeline[k].name;
                stats[ns].nodes_before = g->n_nodes;
                ns++;
            }
        for (int iter = 0; iter < 16; iter++) {
            bool any = false;
            int s = first_stat;
            for (int k = i; k < j; k++) {
                const kiln_pass_info *p = &pipeline[k];
                if (!selected(o, p)) continue;
                bool changed = false;
                double t0 = now_ms();
                st = p->fn(g, &o->ctx, &changed);
                if (!st && changed) {
                    st = kiln_graph_compact(g);
                    if (!st) st = kiln_graph_infer(g);
                    if (!st && o->ctx.verify) st = kiln_graph_verify(g);
                }
                if (st) return kiln_error_prefix(st, "pass %s", p->name);
                any |= changed;
                if (stats && s < ns) {
                    stats[s].runs++;
                    stats[s].changed |= changed;
                    stats[s].ms += now_ms() - t0;
                    stats[s].nodes_after = g->n_nodes;
                    stats[s].fused_groups = kiln_graph_fused_count(g);
                    stats[s].bytes_after = kiln_graph_bytes_moved(g);
                    s++;
                }
                if (o->dump_after && !strcmp(o->dump_after, p->name) && o->dump_file) {
                    fprintf(o->dump_file, "; IR after %s (iteration %d)\n", p->name, iter + 1);
                    kiln_graph_print(g, o->dump_file);
                }
            }
            if (!any || j == i + 1) break; /* a single pass is not iterated */
        }
        i = j;
    }
    if (n_stats) *n_stats = ns;
    return KILN_OK;
}
