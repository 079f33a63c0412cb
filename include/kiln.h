/*
 * kiln.h — the public C API of kiln, an open GPU graph compiler for ONNX models.
 *
 * Overview
 * --------
 * kiln reads an ONNX model, lowers it into its own IR (a graph of typed values and
 * nodes), infers shapes and dtypes, and evaluates it. Today the library offers the
 * front half of the compiler: loading, shape inference and a CPU reference evaluator
 * that is the project's golden semantics. Later stages (graph passes, CUDA codegen,
 * bundles, the GPU runtime) plug in behind the same handles.
 *
 * Conventions
 * -----------
 * - Every fallible function returns a kiln_status; KILN_OK is 0. On failure a message
 *   naming what is wrong is available from kiln_last_error() (per thread) until the
 *   next failing call on that thread. The library never calls exit().
 * - Objects come in init/free or new/free pairs; free functions accept NULL.
 * - Thread safety: distinct graphs and tensors may be used from different threads at
 *   once. A graph is not safe to modify from two threads at the same time; running
 *   the CPU evaluator on one graph from several threads is safe (it does not modify it).
 *
 * Worked example (error checks shortened)
 * ---------------------------------------
 *     kiln_graph *g = NULL;
 *     if (kiln_model_load("model.onnx", &g) != KILN_OK) {
 *         fprintf(stderr, "kiln: %s\n", kiln_last_error());
 *         return 1;
 *     }
 *     int64_t dims[4] = {1, 3, 224, 224};
 *     kiln_tensor *x = kiln_tensor_new(KILN_F32, 4, dims);     // fill x->data ...
 *     kiln_tensor *outs[4] = {0};
 *     kiln_status st = kiln_graph_run_cpu(g, &x, 1, outs, 4);  // outputs are allocated
 *     ...
 *     for (int i = 0; i < 4; i++) kiln_tensor_free(outs[i]);
 *     kiln_tensor_free(x);
 *     kiln_graph_free(g);
 */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_VERSION_STRING "0.1.0"
#define KILN_MAX_RANK 8

typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERR_INVALID_ARG,  /* a caller passed something wrong */
    KILN_ERR_IO,           /* a file could not be read or written */
    KILN_ERR_PARSE,        /* bytes are not a valid model/tensor/bundle */
    KILN_ERR_MODEL,        /* the model is well-formed protobuf but inconsistent */
    KILN_ERR_UNSUPPORTED,  /* an op, dtype or attribute kiln does not handle */
    KILN_ERR_SHAPE,        /* shapes or dtypes do not agree */
    KILN_ERR_LIMIT,        /* a size limit was exceeded (overflow, too large) */
    KILN_ERR_OOM,          /* memory allocation failed */
    KILN_ERR_INTERNAL      /* a bug in kiln */
} kiln_status;

/* Element types. The numeric values are ONNX's TensorProto.DataType values. */
typedef enum kiln_dtype {
    KILN_UNDEF = 0,
    KILN_F32 = 1,
    KILN_U8 = 2,
    KILN_I8 = 3,
    KILN_U16 = 4,
    KILN_I16 = 5,
    KILN_I32 = 6,
    KILN_I64 = 7,
    KILN_STRING = 8, /* recognised so errors can name it; not supported */
    KILN_BOOL = 9,
    KILN_F16 = 10,
    KILN_F64 = 11,
    KILN_U32 = 12,
    KILN_U64 = 13,
    KILN_BF16 = 16
} kiln_dtype;

/* A dense, row-major tensor in host memory. */
typedef struct kiln_tensor {
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    int64_t numel;  /* product of dims (1 for rank 0) */
    size_t nbytes;  /* numel * element size */
    void *data;     /* never NULL for a tensor from kiln_tensor_new, even when numel == 0 */
} kiln_tensor;

typedef struct kiln_graph kiln_graph;

/* The message of the last failure on this thread ("" if none). */
const char *kiln_last_error(void);
const char *kiln_status_name(kiln_status st);

/* dtype facts. kiln_dtype_size returns 0 for unsupported dtypes. */
size_t kiln_dtype_size(kiln_dtype dt);
const char *kiln_dtype_name(kiln_dtype dt); /* "f32", "i64", ... */

/* Tensors. kiln_tensor_new zero-fills; it returns NULL (with a message) on overflow,
 * a bad rank or dtype, or out-of-memory. */
kiln_tensor *kiln_tensor_new(kiln_dtype dt, int rank, const int64_t *dims);
kiln_tensor *kiln_tensor_clone(const kiln_tensor *t);
void kiln_tensor_free(kiln_tensor *t);

/* Limits on what a file read from outside may make kiln do, so that a hostile or broken
 * model, .npy or tensor file fails with KILN_ERR_LIMIT and a message naming the limit instead
 * of exhausting memory or the stack (docs/reliability.md). Process-wide: set them before
 * loading, not while other threads load. A field of 0 means "the default". */
typedef struct kiln_limits {
    uint64_t max_file_bytes;        /* an ONNX model, .npy or TensorProto file (default 4 GiB) */
    uint64_t max_tensor_bytes;      /* any one tensor kiln allocates: initializer, .npy, constant,
                                       evaluator output (default 16 GiB) */
    uint64_t max_initializer_bytes; /* all initializers of one model together (default 64 GiB) */
    int64_t max_nodes;              /* nodes of one graph (default 10,000,000) */
    int64_t max_values;             /* values (tensors) of one graph (default 20,000,000) */
    int max_nesting_depth;          /* nesting of protobuf messages (a subgraph in an attribute in a
                                       node in a graph ...; default 64, at most 1000) */
} kiln_limits;
#define KILN_MAX_NESTING_DEPTH 1000
/* The defaults / the limits in force now. */
void kiln_limits_default(kiln_limits *out);
void kiln_limits_get(kiln_limits *out);
/* Replace the limits (NULL: back to the defaults). Negative counts are KILN_ERR_INVALID_ARG. */
kiln_status kiln_limits_set(const kiln_limits *l);
/* Apply "name=value[,name=value...]" to *l: names file-bytes, tensor-bytes, initializer-bytes,
 * nodes, values, nesting-depth; values are integers with an optional K, M, G or T suffix
 * (powers of 1024), e.g. "tensor-bytes=64M,nodes=1000". Used by the CLI's --limit option. */
kiln_status kiln_limits_parse(const char *spec, kiln_limits *l);

/* Load an ONNX model file: parse, import into kiln's IR, infer shapes, verify.
 * External data is resolved against the model's directory and may not leave it. */
kiln_status kiln_model_load(const char *path, kiln_graph **out);
/* Same, from bytes; base_dir resolves external data (NULL: external data is refused). */
kiln_status kiln_model_load_bytes(const void *data, size_t len, const char *base_dir,
                                  kiln_graph **out);
void kiln_graph_free(kiln_graph *g);

/* Graph I/O. Names point into the graph. dims: -1 for a dynamic dim. */
int kiln_graph_num_inputs(const kiln_graph *g);
int kiln_graph_num_outputs(const kiln_graph *g);
const char *kiln_graph_input_name(const kiln_graph *g, int i);
const char *kiln_graph_output_name(const kiln_graph *g, int i);
kiln_status kiln_graph_input_info(const kiln_graph *g, int i, kiln_dtype *dt, int *rank,
                                  int64_t dims[KILN_MAX_RANK]);
kiln_status kiln_graph_output_info(const kiln_graph *g, int i, kiln_dtype *dt, int *rank,
                                   int64_t dims[KILN_MAX_RANK]);

/* Run the CPU reference evaluator. inputs[i] binds graph input i (n_inputs must equal
 * kiln_graph_num_inputs). outputs[] receives newly allocated tensors (caller frees);
 * n_outputs must be at least kiln_graph_num_outputs. */
kiln_status kiln_graph_run_cpu(const kiln_graph *g, kiln_tensor *const *inputs, int n_inputs,
                               kiln_tensor **outputs, int n_outputs);


/* ====================================================================== GPU runtime ====
 * Running a compiled bundle (`.kiln`, made by `kiln build`; format in docs/bundle.md) on an
 * NVIDIA GPU. libcuda.so.1 is loaded with dlopen on first use: on a machine without a driver
 * or a GPU, kiln_bundle_model_open parses and validates the whole file and then fails with
 * KILN_ERR_UNSUPPORTED and "no CUDA driver on this machine ..." (or "no CUDA device ...").
 *
 *     kiln_bundle_model *m;
 *     if (kiln_bundle_model_open("m.kiln", NULL, &m) != KILN_OK) { puts(kiln_last_error()); ... }
 *     kiln_exec_context *ctx;
 *     kiln_exec_context_new(m, 0, &ctx);
 *     kiln_exec_context_bind_input(ctx, 0, host_x, KILN_F32, 4, dims, KILN_MEM_HOST);
 *     kiln_exec_context_bind_output(ctx, 0, host_y, KILN_F32, 2, ydims, KILN_MEM_HOST);
 *     kiln_exec_context_run(ctx, NULL);            // NULL: kiln's own stream, waits for the end
 *     ...                                          // rebind / rerun as often as wanted
 *     kiln_exec_context_free(ctx);
 *     kiln_bundle_model_free(m);
 *
 * Device. A model uses one GPU (options->device, default 0) through its primary context, as
 * the CUDA runtime API does, so callers' cudart streams and memory work with it. Every call
 * below makes that context current on the calling thread.
 *
 * Kernels. For each module the model loads the bundle's cubin for the GPU's architecture; when
 * there is none it JIT-compiles the newest PTX that fits (slower first load) and says so:
 * kiln_bundle_model_used_jit() and kiln_bundle_model_image_info().
 *
 * Memory. The weights are uploaded once, at open, into one allocation that every context of the
 * model shares. Each execution context owns one allocation for all activations (the bundle's
 * arena_bytes) and one staging allocation for inputs and outputs bound as host memory.
 *
 * Running. kiln_exec_context_run enqueues, on the caller's stream (a CUstream / cudaStream_t
 * passed as void*): copies of host-bound inputs, the launch plan, copies of host-bound outputs.
 * With a non-NULL stream it returns without waiting unless an output is bound as host memory
 * (then it synchronizes the stream so that the data is there on return). With a NULL stream it
 * uses a stream of the context's own and always waits. Device-bound buffers must stay valid
 * until the work is done; so must host-bound inputs when the run does not wait (pinned host
 * memory is copied asynchronously; pageable memory is copied before the call returns). After the first run the launch sequence is captured as a CUDA graph
 * and later runs replay it (binding a different device pointer captures again);
 * KILN_EXEC_NO_GRAPH launches kernel by kernel every time. A caller that captures the run into
 * a CUDA graph of its own (stream capture around kiln_exec_context_run) must pass
 * KILN_EXEC_NO_GRAPH and bind inputs and outputs as device memory: kiln's own capture cannot nest
 * in the caller's, and host copies cannot be captured.
 *
 * Thread safety. An open model is immutable: several threads may create and use contexts of
 * one model at once. One context must not be used by two threads at the same time (use one
 * context per thread or stream). The free functions must not race with other use; free every
 * context of a model before the model.
 */
typedef struct kiln_bundle_model kiln_bundle_model;
typedef struct kiln_exec_context kiln_exec_context;

typedef struct kiln_bundle_model_options {
    int device;             /* CUDA device ordinal (default 0) */
    int force_ptx;          /* nonzero: ignore cubins and JIT-compile the PTX (for tests) */
} kiln_bundle_model_options;

/* Open a bundle file / bytes (copied). opts may be NULL. Parse or checksum errors name the
 * bad section (KILN_ERR_PARSE / KILN_ERR_IO); no driver or GPU: KILN_ERR_UNSUPPORTED. */
kiln_status kiln_bundle_model_open(const char *path, const kiln_bundle_model_options *opts,
                                   kiln_bundle_model **out);
kiln_status kiln_bundle_model_open_bytes(const void *data, size_t len, const kiln_bundle_model_options *opts,
                                         kiln_bundle_model **out);
void kiln_bundle_model_free(kiln_bundle_model *m);

/* I/O signature (static shapes). Names point into the model. */
int kiln_bundle_model_num_inputs(const kiln_bundle_model *m);
int kiln_bundle_model_num_outputs(const kiln_bundle_model *m);
kiln_status kiln_bundle_model_input_info(const kiln_bundle_model *m, int i, const char **name, kiln_dtype *dt,
                                         int *rank, int64_t dims[KILN_MAX_RANK]);
kiln_status kiln_bundle_model_output_info(const kiln_bundle_model *m, int i, const char **name, kiln_dtype *dt,
                                          int *rank, int64_t dims[KILN_MAX_RANK]);
/* Index of the input / output called name, or -1. */
int kiln_bundle_model_find_input(const kiln_bundle_model *m, const char *name);
int kiln_bundle_model_find_output(const kiln_bundle_model *m, const char *name);

/* Whether any module had to be JIT-compiled from PTX, and a line saying what was loaded:
 * "NVIDIA H100 80GB HBM3 (sm_90): 3 modules, cubin sm_90" or "... PTX compute_90 (JIT)". */
int kiln_bundle_model_used_jit(const kiln_bundle_model *m);
const char *kiln_bundle_model_image_info(const kiln_bundle_model *m);
/* What launch `launch` of the plan (0 .. the bundle's launch count - 1) takes of the GPU it was
 * loaded on: threads a block, blocks in the grid, registers a thread, shared memory a block
 * (static + dynamic), and how many of its blocks one SM holds at once
 * (cuOccupancyMaxActiveBlocksPerMultiprocessor). `kiln bench --profile-json` reports it per layer. */
typedef struct kiln_launch_resources {
    int threads, registers, blocks_per_sm;
    uint64_t grid_blocks, shared_bytes;
} kiln_launch_resources;
kiln_status kiln_bundle_model_launch_resources(const kiln_bundle_model *m, int launch, kiln_launch_resources *out);
/* Bytes of the weights allocation and of each context's arena. */
uint64_t kiln_bundle_model_weight_bytes(const kiln_bundle_model *m);
uint64_t kiln_bundle_model_arena_bytes(const kiln_bundle_model *m);

/* Execution contexts. */
/* flags: KILN_EXEC_NO_GRAPH never captures a CUDA graph; KILN_EXEC_NO_PDL launches every kernel
 * only after its predecessor has finished (by default, on sm_90+, a kernel that follows another
 * in its stream is launched with programmatic stream serialization: its blocks start while the
 * previous grid drains and wait for it in the kernel; also off with the environment variable
 * KILN_PDL=0) */
enum { KILN_EXEC_NO_GRAPH = 1, KILN_EXEC_NO_PDL = 4 };
typedef enum kiln_mem_kind {
    KILN_MEM_HOST = 0,  /* ptr is host memory: inputs are copied in, outputs copied out */
    KILN_MEM_DEVICE = 1 /* ptr is a CUdeviceptr (cast to void*) in the model's device context */
} kiln_mem_kind;

kiln_status kiln_exec_context_new(const kiln_bundle_model *m, unsigned flags, kiln_exec_context **out);
void kiln_exec_context_free(kiln_exec_context *ctx);

/* Bind input / output i. dtype, rank and dims must equal the signature's (else KILN_ERR_SHAPE
 * naming the input and both shapes). A device pointer (KILN_MEM_DEVICE) must be 32-byte aligned
 * (else KILN_ERR_INVALID_ARG): kernels move graph inputs and outputs in vectors of up to 32 bytes.
 * A binding stays until rebound; every input and output must be bound before the first run. */
kiln_status kiln_exec_context_bind_input(kiln_exec_context *ctx, int i, const void *ptr, kiln_dtype dt, int rank,
                                         const int64_t *dims, kiln_mem_kind mem);
kiln_status kiln_exec_context_bind_output(kiln_exec_context *ctx, int i, void *ptr, kiln_dtype dt, int rank,
                                          const int64_t *dims, kiln_mem_kind mem);
/* Convenience: bind a host tensor (checked like the above). */
kiln_status kiln_exec_context_bind_input_tensor(kiln_exec_context *ctx, int i, const kiln_tensor *t);
kiln_status kiln_exec_context_bind_output_tensor(kiln_exec_context *ctx, int i, kiln_tensor *t);

/* Run once on `stream` (see "Running" above). */
kiln_status kiln_exec_context_run(kiln_exec_context *ctx, void *stream);
/* Runs so far, and how many of them replayed a CUDA graph. */
int64_t kiln_exec_context_runs(const kiln_exec_context *ctx, int64_t *graph_replays);

/* Multi-stream execution. With n_streams > 1 (at most KILN_MAX_STREAMS) the context runs
 * independent branches of the plan concurrently: layers are put greedily on up to n_streams
 * streams (stream 0 is the run's stream; the others belong to the context), forked from the
 * run's stream and joined back into it with events, cross-stream dependencies as event waits.
 * The captured CUDA graph then has parallel branches. Outputs are bit-identical to one stream.
 * 1 (the default) launches everything in order on the run's stream. Needs the bundle's layer
 * table (KILN_ERR_UNSUPPORTED for bundles of older kilns). The next run captures again. */
#define KILN_MAX_STREAMS 16
kiln_status kiln_exec_context_set_streams(kiln_exec_context *ctx, int n_streams);
/* Streams the current plan really uses (1 when the graph has no parallel branches). */
int kiln_exec_context_streams_used(const kiln_exec_context *ctx);

/* Per-layer debugging. A layer is the launches of one graph node; it finalizes one or more IR
 * values of the optimized graph the bundle was built from (name, dtype, shape), which live in
 * the arena or in a bound input/output buffer. kiln_exec_context_run_layers runs the plan layer
 * by layer on one stream (no CUDA graph), synchronizes after each layer and calls cb with the
 * values it finalized, whose memory may be overwritten by later layers (read them during the
 * call). With copy_to_host the values are also copied to host memory owned by the context
 * (`host`, valid during the call). A nonzero return from cb stops the run (outputs are then
 * incomplete). Needs the bundle's layer table. */
typedef struct kiln_layer_value {
    const char *name;      /* the IR value's name */
    kiln_dtype dtype;
    int rank;
    const int64_t *dims;
    uint64_t device_ptr;   /* CUdeviceptr in the model's context */
    const void *host;      /* copy_to_host: the bytes; else NULL */
    size_t nbytes;
} kiln_layer_value;
typedef struct kiln_layer_info {
    int index;             /* 0..kiln_bundle_model_num_layers - 1 */
    const char *name;      /* the node / fused group name */
    const char *op;        /* "Conv", "conv_epilogue[Conv+Relu]", ... */
    int first_launch, n_launches;
    int n_values;
    const kiln_layer_value *values;
} kiln_layer_info;
typedef int (*kiln_layer_callback)(void *user, const kiln_layer_info *layer);
kiln_status kiln_exec_context_run_layers(kiln_exec_context *ctx, void *stream, int copy_to_host,
                                         kiln_layer_callback cb, void *user);
/* Layers in the bundle's table (0: none). */
int kiln_bundle_model_num_layers(const kiln_bundle_model *m);

#ifdef __cplusplus
}
#endif
#endif /* KILN_H */
