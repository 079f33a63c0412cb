/* frontend.h — internal API of the ONNX frontend and the tensor file readers. */
#ifndef KILN_FRONTEND_H
#define KILN_FRONTEND_H

#include "ir.h"
#include "onnx.pb-c.h"

/* Limits that keep hostile files from exhausting memory (checked with clear errors). */
/* Limits that keep hostile files from exhausting memory (checked with clear errors); they are
 * the process-wide kiln_limits (kiln.h): the largest file read whole, and one tensor. */
size_t kiln_max_file_bytes(void);
#define KILN_MAX_MODEL_BYTES (kiln_max_file_bytes())
/* KILN_ERR_LIMIT when the ModelProto in data nests messages more than max_depth deep (checked
 * before protobuf-c, whose unpacking recursion is unbounded). */
kiln_status kiln_onnx_check_nesting(const uint8_t *data, size_t len, int max_depth);

/* Name -> value id map used while importing (open addressing). */
typedef struct kiln_name_map {
    const char **keys; /* borrowed from the values */
    int *ids;
    size_t cap, count;
} kiln_name_map;

typedef struct kiln_import_ctx {
    kiln_graph *g;
    int64_t opset;           /* default-domain opset */
    const char *base_dir;    /* external data root, NULL = refuse external data */
    kiln_name_map names;
    int const_counter;       /* for naming constants the importer creates */
} kiln_import_ctx;

/* One row per ONNX op type: which IR op it becomes and the function that lowers a node
 * (NULL = the generic lowering: same inputs, outputs and attributes). */
typedef kiln_status (*kiln_import_fn)(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index,
                                      kiln_op op);
typedef struct kiln_importer {
    const char *onnx_type;
    kiln_op op;
    kiln_import_fn fn;
} kiln_importer;

const kiln_importer *kiln_importer_find(const char *onnx_type);
/* Number of rows in the importer table and row i (for docs and tests). */
int kiln_importer_count(void);
const kiln_importer *kiln_importer_at(int i);

/* Generic lowering of a node to op, then shape inference of it. */
kiln_status kiln_import_generic(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op);
/* Lower with explicit input names (NULL or "" = omitted) and optional extra attrs already
 * on *node_out; returns the new node's index in *node_out_index. */
kiln_status kiln_import_node(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op,
                             const int *inputs, int n_in, int *node_index);
/* Look up / create values. */
int kiln_import_lookup(kiln_import_ctx *ctx, const char *name);
int kiln_import_new_value(kiln_import_ctx *ctx, const char *hint); /* fresh unique name */
int kiln_import_const(kiln_import_ctx *ctx, kiln_tensor *t, const char *hint); /* takes t */
int kiln_import_const_i64(kiln_import_ctx *ctx, const int64_t *v, int n, const char *hint);
int kiln_import_const_f32(kiln_import_ctx *ctx, const float *v, int n, int rank0, const char *hint);
kiln_status kiln_import_infer_node(kiln_import_ctx *ctx, int node_index);

/* TensorProto -> kiln_tensor. base_dir resolves external data (NULL refuses it). */
kiln_status kiln_onnx_tensor_convert(const Onnx__TensorProto *tp, const char *base_dir, kiln_tensor **out);
/* Read a serialized TensorProto file (the backend tests' input_N.pb). name may be NULL. */
kiln_status kiln_onnx_read_tensor_file(const char *path, kiln_tensor **out, char **name);
/* Read a whole file (limit bytes). */
kiln_status kiln_read_file(const char *path, size_t limit, uint8_t **data, size_t *len);

/* .npy files (NumPy format 1.0-3.0, C order, little-endian). */
kiln_status kiln_npy_read(const char *path, kiln_tensor **out);
kiln_status kiln_npy_parse(const uint8_t *data, size_t len, kiln_tensor **out);
/* Writes atomically (temporary file, then rename). */
kiln_status kiln_npy_write(const char *path, const kiln_tensor *t);

#endif
