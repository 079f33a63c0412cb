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

#ifdef __cplusplus
}
#endif
#endif /* KILN_H */
