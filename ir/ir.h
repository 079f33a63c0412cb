/*
 * ir.h — kiln's intermediate representation (internal API, used by every stage).
 *
 * A kiln_graph owns arrays of values and nodes; everything refers to them by index
 * (int ids), so arrays may grow without dangling pointers. A value is a typed tensor
 * slot: dtype, rank, dims (static or symbolic), optional constant data, one producer
 * and a use list. A node is one op from ir/op_table.def with input/output value ids
 * (-1 = an omitted optional) and named attributes in the newest-opset form of its op.
 *
 * Per-op behaviour lives in one family file each (ir/ops_<family>.c) as two functions:
 *   kiln_status kiln_infer_<Op>(kiln_infer_ctx *c);  // dtype + shape of outputs
 *   kiln_status kiln_eval_<Op>(const kiln_node *n, kiln_tensor *const *in, int n_in,
 *                              kiln_tensor *const *out, int n_out); // CPU reference
 * Shape inference sees constant data of inputs where known (value->data), which is how
 * data-dependent shapes (Reshape, Range, ...) resolve. The evaluator calls infer with
 * every input known, allocates the outputs at the inferred shapes, then calls eval.
 */
#ifndef KILN_IR_H
#define KILN_IR_H

#include "kiln.h"

#include <stdarg.h>
#include <stdbool.h>

/* ---------------------------------------------------------------- errors -- */
/* Set the thread's last error and return code. */
kiln_status kiln_errorf(kiln_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with context ("while ...: "). Returns code. */
kiln_status kiln_error_prefix(kiln_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* -------------------------------------------------------------- op table -- */
typedef enum kiln_op_kind {
    KILN_KIND_ELEMENTWISE,
    KILN_KIND_BROADCAST,
    KILN_KIND_INJECTIVE,
    KILN_KIND_REDUCTION,
    KILN_KIND_CONV_LIKE,
    KILN_KIND_OPAQUE
} kiln_op_kind;

typedef enum kiln_op {
#define KILN_OP(id, name, min_in, max_in, min_out, max_out, kind, family) KILN_OP_##id,
#include "op_table.def"
#undef KILN_OP
    KILN_OP_COUNT
} kiln_op;

typedef struct kiln_op_info {
    const char *name;      /* IR name, snake_case */
    const char *onnx_type; /* ONNX op type */
    int min_in, max_in, min_out, max_out; /* max -1: variadic */
    kiln_op_kind kind;
    const char *family;
} kiln_op_info;

extern const kiln_op_info kiln_op_table[KILN_OP_COUNT];
const char *kiln_op_name(kiln_op op);
const char *kiln_op_kind_name(kiln_op_kind k);

/* ------------------------------------------------------------ attributes -- */
typedef enum kiln_attr_type { /* ONNX AttributeType values */
    KILN_ATTR_UNDEF = 0,
    KILN_ATTR_FLOAT = 1,
    KILN_ATTR_INT = 2,
    KILN_ATTR_STRING = 3,
    KILN_ATTR_TENSOR = 4,
    KILN_ATTR_GRAPH = 5,
    KILN_ATTR_FLOATS = 6,
    KILN_ATTR_INTS = 7,
    KILN_ATTR_STRINGS = 8
} kiln_attr_type;

typedef struct kiln_attr {
    char *name;
    kiln_attr_type type;
    int64_t i;
    float f;
    char *s;           /* STRING (NUL-terminated copy) */
    int n;             /* count for FLOATS / INTS / STRINGS */
    int64_t *ints;
    float *floats;
    char **strings;
    kiln_tensor *t;    /* TENSOR */
} kiln_attr;

/* --------------------------------------------------------- values, nodes -- */
enum {
    KILN_VALUE_INPUT = 1u,       /* graph input (fed at run time) */
    KILN_VALUE_OUTPUT = 2u,      /* graph output */
    KILN_VALUE_INITIALIZER = 4u  /* constant weight from the model */
};

typedef struct kiln_value {
    char *name;
    kiln_dtype dtype;              /* KILN_UNDEF until inferred */
    int rank;                      /* -1: unknown rank */
    int64_t dims[KILN_MAX_RANK];   /* >= 0 static, -1 dynamic */
    int32_t sym[KILN_MAX_RANK];    /* > 0: symbolic dim id (graph->symbols[id-1]); 0 none */
    kiln_tensor *data;             /* non-NULL: known constant contents (owned) */
    int producer;                  /* node index, -1 if none */
    int *users;                    /* node indices (a node appears once per use) */
    int n_users, cap_users;
    unsigned flags;
    /* Set by passes (see passes/pass.h); meaningless before them. */
    int64_t arena_offset;          /* byte offset in the activation arena, -1 = not planned */
    int alias_of;                  /* value id whose storage this one shares (views, in-place), -1 none */
    uint8_t layout;                /* kiln_layout: physical layout chosen for 4-D activations */
} kiln_value;

typedef enum kiln_layout {
    KILN_LAYOUT_ANY = 0, /* not chosen / layout-free (rank != 4, weights handled separately) */
    KILN_LAYOUT_NCHW = 1,
    KILN_LAYOUT_NHWC = 2
} kiln_layout;

typedef struct kiln_node {
    char *name;                    /* ONNX node name ("" if none) */
    int id;                        /* index in the source model, for messages */
    kiln_op op;
    int *inputs;  int n_inputs;    /* value ids; -1 = omitted optional input */
    int *outputs; int n_outputs;   /* value ids; -1 = omitted optional output */
    kiln_attr *attrs; int n_attrs;
    /* KILN_OP_Fused only: the group's sub-graph, owned. Its inputs and outputs correspond
     * one to one, in order, to the node's; attribute "kind" names the fusion pattern. */
    struct kiln_graph *body;
    bool dead;                     /* removed by a pass; dropped by kiln_graph_compact */
} kiln_node;

struct kiln_graph {
    char *name;
    int64_t opset;                 /* default-domain opset of the source model */
    kiln_value *values; int n_values, cap_values;
    kiln_node *nodes;   int n_nodes,  cap_nodes;
    int *inputs;  int n_inputs;    /* runtime inputs (initializers excluded) */
    int *outputs; int n_outputs;
    char **symbols; int n_symbols; /* names of symbolic dims */
    int64_t arena_bytes;           /* activation arena size from the memory plan, 0 = none */
};

/* ---------------------------------------------------------- graph build -- */
kiln_graph *kiln_graph_new(void);
/* Find a value by name, -1 if none. */
int kiln_graph_find_value(const kiln_graph *g, const char *name);
/* Add a value (name copied; must be unique unless NULL/"" for an anonymous value). -1 on OOM. */
int kiln_graph_add_value(kiln_graph *g, const char *name);
/* Add a node; copies input/output id arrays; wires producers and use lists. -1 on error. */
int kiln_graph_add_node(kiln_graph *g, kiln_op op, const char *name, const int *inputs, int n_in,
                        const int *outputs, int n_out);
/* Symbolic dims: id for a name (created on first use), >0; 0 on OOM. */
int32_t kiln_graph_symbol(kiln_graph *g, const char *name);
/* New anonymous symbol (for data-dependent dims), >0. */
int32_t kiln_graph_new_symbol(kiln_graph *g);
/* Rebuild producer and use lists from the node arrays. */
kiln_status kiln_graph_rebuild_uses(kiln_graph *g);

/* Attribute setters (copy their arguments; replace an attribute of the same name). */
kiln_status kiln_node_set_int(kiln_node *n, const char *name, int64_t v);
kiln_status kiln_node_set_float(kiln_node *n, const char *name, float v);
kiln_status kiln_node_set_str(kiln_node *n, const char *name, const char *s);
kiln_status kiln_node_set_ints(kiln_node *n, const char *name, const int64_t *v, int count);
kiln_status kiln_node_set_floats(kiln_node *n, const char *name, const float *v, int count);
kiln_status kiln_node_set_tensor(kiln_node *n, const char *name, const kiln_tensor *t); /* cloned */
kiln_status kiln_node_take_attr(kiln_node *n, kiln_attr *a); /* moves *a into n (a zeroed) */
void kiln_node_remove_attr(kiln_node *n, const char *name);
void kiln_attr_free(kiln_attr *a);

/* Attribute getters. */
const kiln_attr *kiln_attr_find(const kiln_node *n, const char *name);
int64_t kiln_attr_int(const kiln_node *n, const char *name, int64_t def);
float kiln_attr_float(const kiln_node *n, const char *name, float def);
const char *kiln_attr_str(const kiln_node *n, const char *name, const char *def);
/* Count of INTS (or FLOATS) and a pointer to them; -1 when absent. */
int kiln_attr_ints(const kiln_node *n, const char *name, const int64_t **v);
int kiln_attr_floats(const kiln_node *n, const char *name, const float **v);
const kiln_tensor *kiln_attr_tensor(const kiln_node *n, const char *name);

/* -------------------------------------------------------------- rewriting -- */
/* Passes edit graphs with these; the pass manager then calls kiln_graph_normalize. */
/* Deep copy (bodies of fused nodes included). NULL on OOM. */
kiln_graph *kiln_graph_clone(const kiln_graph *g);
/* Make every use of value old_v (node inputs, graph outputs) use new_v instead. When old_v
 * is a graph output, the output keeps its name: new_v takes old_v's name if new_v is produced
 * by a node and is not itself a graph input or output; otherwise nothing changes and false
 * is returned (keep the producer of old_v then). */
bool kiln_graph_replace_uses(kiln_graph *g, int old_v, int new_v);
/* Mark a node dead (kiln_graph_compact drops it and its use-list entries). */
void kiln_graph_remove_node(kiln_graph *g, int node);
/* Drop dead nodes and values that nothing defines or uses (ids of values and nodes change),
 * put nodes in topological order (stable), rebuild use lists. */
kiln_status kiln_graph_compact(kiln_graph *g);
/* compact + infer + verify: what the pass manager runs after a pass changed the graph. */
kiln_status kiln_graph_normalize(kiln_graph *g);
/* Value that holds a new constant (takes t; name made unique from hint). -1 on OOM. */
int kiln_graph_add_const(kiln_graph *g, kiln_tensor *t, const char *hint);
/* Does the node set form a convex sub-graph (no path leaves the set and comes back)? */
bool kiln_graph_is_convex(const kiln_graph *g, const int *nodes, int n);
/* Replace a convex set of live nodes by one KILN_OP_Fused node owning them as its body.
 * The body's inputs are the values the set reads from outside (in first-use order), its
 * outputs the values it defines that are used outside or are graph outputs (in definition
 * order); the outer value ids of those outputs are kept. kind names the pattern. On success
 * *fused is the new node's index; the old nodes are marked dead. */
kiln_status kiln_graph_fuse(kiln_graph *g, const int *nodes, int n, const char *kind, int *fused);
/* The outer value of body value bv of fused node f (one of the body's inputs or outputs), -1 for
 * an inner value. */
int kiln_fused_outer_value(const kiln_node *f, int bv);
/* The inverse for fused node fi: its body's nodes go back into g (appended, attributes moved;
 * inner values become anonymous values of g) and fi dies. Writes their indices to out (at most
 * max) and returns their count; -1 on OOM or more than max nodes. */
int kiln_graph_unfuse(kiln_graph *g, int fi, int *out, int max);
/* Number of live users of value v (dead nodes excluded) plus 1 if it is a graph output. */
int kiln_value_live_uses(const kiln_graph *g, int v);

/* ------------------------------------------------------------- checking -- */
/* Single definition, defined-before-use (acyclic, topologically ordered), arities
 * within the op table, use lists consistent, dtypes set. */
kiln_status kiln_graph_verify(const kiln_graph *g);
/* Infer dtypes and shapes of every node output, in order. */
kiln_status kiln_graph_infer(kiln_graph *g);
/* Infer one node from value pointers (in[i]/out[i] NULL when omitted). */
kiln_status kiln_infer_node_values(kiln_graph *g, const kiln_node *n, const kiln_value *const *in,
                                   kiln_value *const *out);

/* ------------------------------------------------------------- printing -- */
#include <stdio.h>
void kiln_graph_print(const kiln_graph *g, FILE *f);
kiln_status kiln_graph_write_dot(const kiln_graph *g, FILE *f);
/* "f32[1,3,N,224]" into buf. */
void kiln_value_format_type(const kiln_graph *g, const kiln_value *v, char *buf, size_t len);
/* "node 'name' (#id Conv)" */
void kiln_node_describe(const kiln_node *n, char *buf, size_t len);

/* -------------------------------------------------- shapes and inference -- */
typedef struct kiln_infer_ctx {
    kiln_graph *g;                  /* may be used to create symbols */
    const kiln_node *node;
    int n_in;
    const kiln_value *const *in;    /* in[i] NULL for an omitted optional input */
    int n_out;
    kiln_value *const *out;         /* out[i] NULL for an omitted optional output */
} kiln_infer_ctx;

/* Error with the node's description as prefix. */
kiln_status kiln_node_errorf(const kiln_node *n, kiln_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set dtype/rank/dims (all static) of v; clears sym. */
void kiln_value_set(kiln_value *v, kiln_dtype dt, int rank, const int64_t *dims);
/* Copy dtype, rank, dims and sym from src. */
void kiln_value_copy_type(kiln_value *dst, const kiln_value *src);
/* Rank known and every dim static. */
bool kiln_value_is_static(const kiln_value *v);
/* Number of elements, -1 when not static, -2 on overflow. */
int64_t kiln_value_numel(const kiln_value *v);
/* Numpy-style multidirectional broadcast of n values into out (dtype not touched).
 * Symbolic dims broadcast when equal or against 1. */
kiln_status kiln_infer_broadcast(const kiln_node *node, const kiln_value *const *vals, int n,
                                 kiln_value *out);
/* Normalize axis in [-rank, rank) to [0, rank); false when out of range. */
bool kiln_norm_axis(int64_t axis, int rank, int64_t *out);
/* Read a known integer tensor (any int dtype) of at most max elements into v.
 * Returns count, or -1 when v is unknown (no data); -2 when too large. */
int kiln_value_const_ints(const kiln_value *v, int64_t *out, int max);
/* a*b with overflow check into *r; false on overflow or negative. */
bool kiln_mul_dims(int64_t a, int64_t b, int64_t *r);

/* -------------------------------------------------------------- tensors -- */
/* Element access through double (any numeric dtype; fp16/bf16 via fp32, bool 0/1).
 * Stores round (float types) or truncate toward zero with saturation (int types). */
double kiln_tensor_get(const kiln_tensor *t, int64_t i);
void kiln_tensor_set(kiln_tensor *t, int64_t i, double v);
/* Exact integer access for int/bool dtypes (floats are truncated). */
int64_t kiln_tensor_get_i64(const kiln_tensor *t, int64_t i);
void kiln_tensor_set_i64(kiln_tensor *t, int64_t i, int64_t v);
/* Row-major strides (in elements) of dims. */
void kiln_strides(int rank, const int64_t *dims, int64_t *strides);
/* Strides of t when broadcast to (rank, dims): 0 on broadcast dims, aligned right. */
void kiln_bcast_strides(const kiln_tensor *t, int rank, const int64_t *dims, int64_t *strides);
/* Multi-index counter step (row-major); returns false after the last index. */
bool kiln_index_next(int rank, const int64_t *dims, int64_t *idx);

float kiln_f16_to_f32(uint16_t h);
uint16_t kiln_f32_to_f16(float f);
float kiln_bf16_to_f32(uint16_t h);
uint16_t kiln_f32_to_bf16(float f);
bool kiln_dtype_is_float(kiln_dtype dt);   /* f16 bf16 f32 f64 */
bool kiln_dtype_is_int(kiln_dtype dt);     /* signed and unsigned ints (not bool) */
bool kiln_dtype_is_signed(kiln_dtype dt);  /* signed ints and floats */
bool kiln_dtype_is_supported(kiln_dtype dt);

/* --------------------------------------------------------- CPU evaluator -- */
typedef kiln_status (*kiln_infer_fn)(kiln_infer_ctx *c);
typedef kiln_status (*kiln_eval_fn)(const kiln_node *n, kiln_tensor *const *in, int n_in,
                                    kiln_tensor *const *out, int n_out);
extern const kiln_infer_fn kiln_infer_table[KILN_OP_COUNT];
extern const kiln_eval_fn kiln_eval_table[KILN_OP_COUNT];

#define KILN_OP(id, name, min_in, max_in, min_out, max_out, kind, family) \
    kiln_status kiln_infer_##id(kiln_infer_ctx *c);                         \
    kiln_status kiln_eval_##id(const kiln_node *n, kiln_tensor *const *in, int n_in, \
                               kiln_tensor *const *out, int n_out);
#include "op_table.def"
#undef KILN_OP

/* Evaluate one node on concrete inputs: infers output shapes, allocates outs[] (caller
 * frees), runs the reference. in[i] may be NULL for omitted optional inputs. */
kiln_status kiln_eval_node(const kiln_node *n, kiln_tensor *const *in, int n_in,
                           kiln_tensor **out, int n_out);

/* Called after each node during kiln_graph_run_cpu_ex (for per-layer checks). */
typedef void (*kiln_eval_observer)(void *user, const kiln_graph *g, int node_index,
                                   kiln_tensor *const *outs, int n_out);
kiln_status kiln_graph_run_cpu_ex(const kiln_graph *g, kiln_tensor *const *inputs, int n_inputs,
                                  kiln_tensor **outputs, int n_outputs,
                                  kiln_eval_observer obs, void *user);

#endif /* KILN_IR_H */
