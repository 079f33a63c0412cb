/*
 * codegen.h — from an optimized, memory-planned graph to a bundle: CUDA C for every kernel,
 * compiled with NVRTC, plus the launch plan, the weights, the I/O signature and the arena.
 *
 * How to use
 * ----------
 *     kiln_graph *g = ...;               // loaded, every dim static (kiln_codegen_fix_shape)
 *     kiln_pipeline_run(g, &opts, ...);  // passes, including plan-memory
 *     const char *archs[] = {"sm_80", "sm_90"};
 *     kiln_codegen_opts o;
 *     kiln_codegen_opts_init(&o);        // fp32, sm_90, PTX of the newest
 *     o.archs = archs; o.n_archs = 2;
 *     kiln_bundle *b = kiln_bundle_new();
 *     char *cuda = NULL;                 // the generated module, for --emit-cuda (may be NULL)
 *     if (kiln_codegen_build(g, &o, b, &cuda) != KILN_OK) puts(kiln_last_error());
 *     ... kiln_bundle_set_meta(b, ...); kiln_bundle_write(b, "m.kiln"); free(cuda);
 *
 * What it emits: one module (one .cu source) per model. For every top-level node in order:
 * views (kiln_node_is_view) emit nothing, since plan-memory made them alias their input (a
 * view that is a graph output gets a copy); every other node instantiates a template of
 * kernels/ *.cuh with its tile sizes and its fused prologue/epilogue as readable code, and
 * adds one launch (Concat: one per input). Activations are ARENA arguments at the memory
 * plan's offsets, graph inputs and outputs INPUT / OUTPUT bindings, constants WEIGHT
 * arguments (each constant is added to the weights blob once), shapes and strides BYTES.
 *
 * Supported (NCHW; f32 and f16 values; precision: docs/codegen.md): conv_epilogue / gemm_epilogue fused groups (bias, every
 * activation of passes/fuse_epilogue.c, residual, post-activation), Conv (2-D and 1-D, any
 * stride/padding/dilation/groups; implicit GEMM, direct for depthwise), Gemm, MatMul
 * (batched, broadcast), MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Softmax,
 * LogSoftmax, Concat, Transpose, Slice, Pad (constant mode), Expand, Split, elementwise fused groups and single elementwise / broadcast ops
 * (codegen/codegen.c's expression table). Anything else fails with KILN_ERR_UNSUPPORTED and
 * a message listing every unsupported node (op and node name) with the reason.
 *
 * Thread safety: distinct graphs and bundles may be used from several threads at once.
 */
#ifndef KILN_CODEGEN_H
#define KILN_CODEGEN_H

#include "pass.h"
#include "runtime/bundle.h"

/* Where a tunable kernel's configuration came from. */
typedef enum kiln_tune_source {
    KILN_TUNE_HEURISTIC = 0, /* the per-architecture heuristic (no GPU, or nothing measured) */
    KILN_TUNE_LOOKUP = 1,    /* tune_lookup: a tuning cache or this build's measurements */
    KILN_TUNE_FORCED = 2     /* the node's "kiln_tile" attribute */
} kiln_tune_source;

typedef struct kiln_codegen_opts {
    const char *const *archs; /* "sm_80", "sm_90", ...: one cubin each */
    int n_archs;
    bool ptx;                 /* also PTX of the newest architecture (default true) */
    kiln_precision precision; /* FP32 (FFMA), TF32 or FP16 (conv/gemm on tensor cores; FP16 also
                               * stores constant conv/gemm operands as fp16); INT8 is refused */
    bool compile;             /* false: emit the source and the plan only, no NVRTC (tests) */
    /* Tunable kernels (codegen/cg_tune.c). For every kernel with several candidate
     * configurations codegen asks tune_lookup(tune_ctx, signature) for the name of the
     * candidate to use (NULL or an unknown name: the heuristic's pick), then reports the choice
     * with tune_record: the group name, the signature (the kernel family, shape and dtypes:
     * layers with the same signature get the same code), every candidate's name, the chosen
     * index and where the choice came from. A node attribute "kiln_tile" (string) forces a
     * candidate by name (the tuner times one candidate that way). Both callbacks may be NULL. */
    const char *(*tune_lookup)(void *tune_ctx, const char *signature);
    void (*tune_record)(void *tune_ctx, const char *group, const char *signature, const char *const *names, int n,
                        int chosen, kiln_tune_source source);
    void *tune_ctx;
    /* The tuner's split builds (codegen/tune.c), both NULL otherwise. base_out: receives this build's
     * kernels (text with the name masked, name) and, when compiled, its images. split_base: a build
     * whose kernels are already compiled (base_out of another build of the same graph and options):
     * this build's kernels with the same text run from that module (module 0, the base's images and
     * names); only the others are compiled, as module 1. The bundle runs as the whole-module build
     * would. Why: the tuner's candidate sets differ from the heuristic build in a few kernels each. */
    struct kiln_codegen_base *base_out;
    const struct kiln_codegen_base *split_base;
} kiln_codegen_opts;

/* A build's kernels for split builds (see kiln_codegen_opts): keys[i] is kernel i's text with its
 * name masked, names[i] its function; images (module 0) are filled by whoever compiles source. */
typedef struct kiln_codegen_base {
    int n;
    char **keys, **names;
    char *source; /* the whole module */
    int n_images;
    struct kiln_codegen_base_image {
        bool is_ptx;
        char arch[16];
        uint8_t *data;
        size_t size;
    } *images;
} kiln_codegen_base;
void kiln_codegen_base_free(kiln_codegen_base *b);

/* NVRTC of one generated module (source) with the embedded kernel headers for o's archs and PTX;
 * name is what errors call it. *out as kiln_nvrtc_compile's (the caller frees it). */
struct kiln_nvrtc_output;
kiln_status kiln_codegen_compile(const kiln_codegen_opts *o, const char *name, const char *source,
                                 struct kiln_nvrtc_output *out);

/* fp32, {"sm_90"}, PTX, compile. */
void kiln_codegen_opts_init(kiln_codegen_opts *o);

/* Emits, compiles and fills b (I/O, weights, images, kernels, launches, arena, buffers).
 * The graph must be memory-planned with every dim static. *cuda_source (may be NULL)
 * receives the generated module (caller frees), also when compilation fails, so that it
 * can be read. Metadata is the caller's (kiln build sets version, options, hash, ...). */
kiln_status kiln_codegen_build(const kiln_graph *g, const kiln_codegen_opts *o, kiln_bundle *b,
                               char **cuda_source);

/* Fix the dims of graph input `name` (rank must match; a static dim must stay the same)
 * and re-infer the graph. For `kiln build --shape NAME=DIMS`. */
kiln_status kiln_codegen_fix_shape(kiln_graph *g, const char *name, int rank, const int64_t *dims);

/* Parses "1x3x224x224" or "1,3,224,224" into dims (at most KILN_MAX_RANK). */
kiln_status kiln_codegen_parse_dims(const char *s, int *rank, int64_t *dims);

#endif /* KILN_CODEGEN_H */
