/*
 * pass.h — kiln's graph passes and the pass manager.
 *
 * A pass is one file in passes/ with one public entry point of type kiln_pass_fn and one
 * row in the pipeline table (passes/pipeline.c). It rewrites the graph in place with the
 * helpers of ir/ir.h (kiln_graph_replace_uses, kiln_graph_remove_node, kiln_graph_fuse,
 * kiln_graph_add_const, ...) and sets *changed when it changed anything. It need not keep
 * the node order, use lists or shapes tidy: after a pass that changed the graph the
 * manager runs kiln_graph_compact and kiln_graph_infer, and (when ctx->verify) the verifier.
 * Consecutive passes that share a fixpoint group run in a loop until none changes.
 *
 * Adding a pass: write passes/<name>.c with `kiln_status kiln_pass_<name>(kiln_graph *g,
 * const kiln_pass_ctx *ctx, bool *changed)`, declare it below, add one row to the table.
 */
#ifndef KILN_PASS_H
#define KILN_PASS_H

#include "ir.h"

typedef enum kiln_precision {
    KILN_PREC_FP32 = 0,
    KILN_PREC_TF32,
    KILN_PREC_FP16,
    KILN_PREC_INT8
} kiln_precision;

typedef struct kiln_pass_ctx {
    int opt_level;            /* 0..3 */
    kiln_precision precision; /* what the kernels will compute in (drives layout choice) */
    int64_t fold_max_bytes;   /* constant folding never creates a constant larger than this */
    bool verify;              /* run kiln_graph_verify after every pass that changed the graph */
} kiln_pass_ctx;

typedef kiln_status (*kiln_pass_fn)(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);

typedef struct kiln_pass_info {
    const char *name;     /* as given to --passes / --disable-pass / --dump-ir-after */
    kiln_pass_fn fn;
    int min_level;        /* runs at -O<min_level> and above */
    int fixpoint_group;   /* consecutive passes with the same nonzero group iterate together */
    const char *summary;
} kiln_pass_info;

/* The passes (one file each). */
kiln_status kiln_pass_cleanup(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_fold_constants(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_simplify_shapes(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_fold_batchnorm(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_fuse_epilogue(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_recognize_patterns(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_fuse_elementwise(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_convert_precision(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_select_layout(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_fuse_conv_pair(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_fuse_conv_pool(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);
kiln_status kiln_pass_plan_memory(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed);

int kiln_pass_count(void);
const kiln_pass_info *kiln_pass_at(int i);
const kiln_pass_info *kiln_pass_find(const char *name);

/* What one pass run did (for the report). */
typedef struct kiln_pass_stat {
    const char *name;
    int runs;                    /* times it ran (fixpoint iterations) */
    bool changed;
    double ms;
    int nodes_before, nodes_after;
    int fused_groups;            /* fused nodes in the graph after it */
    int64_t bytes_after;         /* estimated device-memory traffic after it */
} kiln_pass_stat;

typedef struct kiln_pipeline_opts {
    kiln_pass_ctx ctx;
    const char *only;            /* comma-separated pass names to run (in pipeline order), NULL = all */
    const char *disabled;        /* comma-separated pass names to skip, NULL = none */
    const char *dump_after;      /* pass name: print the IR after it to dump_file */
    FILE *dump_file;
} kiln_pipeline_opts;

/* Defaults: -O2, fp32, fold cap 16 MiB, verify on. */
void kiln_pipeline_opts_init(kiln_pipeline_opts *o);
/* Runs the pipeline. stats (may be NULL) receives one entry per pass that ran, up to
 * max_stats; *n_stats their count. Unknown pass names in only/disabled are an error. */
kiln_status kiln_pipeline_run(kiln_graph *g, const kiln_pipeline_opts *o, kiln_pass_stat *stats, int max_stats,
                              int *n_stats);

/* Estimated bytes the graph moves through device memory: every node reads its inputs and
 * writes its outputs once (a fused node only its boundary); views move nothing. Symbolic
 * dims count as 1. */
int64_t kiln_graph_bytes_moved(const kiln_graph *g);
/* Kernels codegen will emit: nodes that are not views (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity) or no-ops. */
int kiln_graph_kernel_count(const kiln_graph *g);
/* Is this node a pure view of its input (no kernel, no data movement)? */
bool kiln_node_is_view(const kiln_node *n);
int kiln_graph_fused_count(const kiln_graph *g);

/* Verifies the memory plan that plan-memory left in g (value->arena_offset, alias_of,
 * g->arena_bytes): every intermediate planned, offsets aligned and inside the arena, no two
 * storage classes that are live at the same time share bytes, aliases read by their producer,
 * in-place writes only over storage nothing reads later. KILN_OK or an error naming the values. */
kiln_status kiln_memory_plan_check(const kiln_graph *g);
/* Bytes of the intermediates plan-memory placed, each counted as if it had its own buffer
 * (views excluded: they never had storage): what the arena is compared with. */
int64_t kiln_memory_plan_intermediate_bytes(const kiln_graph *g);
/* Layout conversions select-layout recorded (distinct values marked by kiln_convert_input /
 * kiln_convert_output); *nhwc_values (may be NULL) receives the number of NHWC values. */
int kiln_graph_layout_conversions(const kiln_graph *g, int *nhwc_values);

#endif
