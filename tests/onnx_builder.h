/* onnx_builder.h — builds small ONNX models in memory for tests (protobuf-c structs,
 * every allocation from one arena freed by ob_free). */
#ifndef KILN_ONNX_BUILDER_H
#define KILN_ONNX_BUILDER_H

#include "onnx.pb-c.h"

#include <stdlib.h>
#include <string.h>

typedef struct ob_arena {
    void **ptrs;
    size_t n, cap;
} ob_arena;

static inline void *ob_alloc(ob_arena *a, size_t size) {
    void *p = calloc(1, size ? size : 1);
    if (!p) abort();
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->ptrs = realloc(a->ptrs, a->cap * sizeof *a->ptrs);
        if (!a->ptrs) abort();
    }
    a->ptrs[a->n++] = p;
    return p;
}

static inline void ob_free(ob_arena *a) {
    for (size_t i = 0; i < a->n; i++) free(a->ptrs[i]);
    free(a->ptrs);
    memset(a, 0, sizeof *a);
}

static inline char *ob_str(ob_arena *a, const char *s) {
    char *d = ob_alloc(a, strlen(s) + 1);
    strcpy(d, s);
    return d;
}

/* Tensor value info; dims < 0 become a dim_param named `sym` (or none when sym is NULL). */
static inline Onnx__ValueInfoProto *ob_value(ob_arena *a, const char *name, int elem, int rank, const int64_t *dims,
                                             const char *sym) {
    Onnx__ValueInfoProto *vi = ob_alloc(a, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = ob_str(a, name);
    Onnx__TypeProto *tp = ob_alloc(a, sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = ob_alloc(a, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    if (rank >= 0) {
        Onnx__TensorShapeProto *sh = ob_alloc(a, sizeof *sh);
        onnx__tensor_shape_proto__init(sh);
        sh->n_dim = (size_t)rank;
        sh->dim = ob_alloc(a, sizeof(void *) * (size_t)(rank + 1));
        for (int i = 0; i < rank; i++) {
            Onnx__TensorShapeProto__Dimension *d = ob_alloc(a, sizeof *d);
            onnx__tensor_shape_proto__dimension__init(d);
            if (dims[i] >= 0 || !sym) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[i];
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = ob_str(a, sym);
            }
            sh->dim[i] = d;
        }
        tt->shape = sh;
    }
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->type = tp;
    return vi;
}

/* f32 initializer with raw data (vals may be NULL: no payload at all). */
static inline Onnx__TensorProto *ob_tensor_f32(ob_arena *a, const char *name, int rank, const int64_t *dims,
                                               const float *vals, size_t n_vals) {
    Onnx__TensorProto *t = ob_alloc(a, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = ob_str(a, name);
    t->has_data_type = 1;
    t->data_type = 1;
    t->n_dims = (size_t)rank;
    t->dims = ob_alloc(a, sizeof(int64_t) * (size_t)(rank + 1));
    memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
    if (vals) {
        t->has_raw_data = 1;
        t->raw_data.len = n_vals * 4;
        t->raw_data.data = ob_alloc(a, n_vals * 4);
        memcpy(t->raw_data.data, vals, n_vals * 4);
    }
    return t;
}

static inline Onnx__NodeProto *ob_node(ob_arena *a, const char *op, const char *name, int n_in, const char **ins,
                                       int n_out, const char **outs) {
    Onnx__NodeProto *n = ob_alloc(a, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = ob_str(a, op);
    n->name = ob_str(a, name);
    n->n_input = (size_t)n_in;
    n->input = ob_alloc(a, sizeof(char *) * (size_t)(n_in + 1));
    for (int i = 0; i < n_in; i++) n->input[i] = ob_str(a, ins[i]);
    n->n_output = (size_t)n_out;
    n->output = ob_alloc(a, sizeof(char *) * (size_t)(n_out + 1));
    for (int i = 0; i < n_out; i++) n->output[i] = ob_str(a, outs[i]);
    return n;
}

static inline void ob_node_attr_int(ob_arena *a, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *at = ob_alloc(a, sizeof *at);
    onnx__attribute_proto__init(at);
    at->name = ob_str(a, name);
    at->has_type = 1;
    at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    at->has_i = 1;
    at->i = v;
    Onnx__AttributeProto **na = ob_alloc(a, sizeof(void *) * (n->n_attribute + 1));
    if (n->n_attribute) memcpy(na, n->attribute, sizeof(void *) * n->n_attribute);
    na[n->n_attribute++] = at;
    n->attribute = na;
}

typedef struct ob_model {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto os;
    Onnx__OperatorSetIdProto *os_list[1];
} ob_model;

static inline ob_model *ob_model_new(ob_arena *a, int64_t opset) {
    ob_model *om = ob_alloc(a, sizeof *om);
    onnx__model_proto__init(&om->m);
    onnx__graph_proto__init(&om->g);
    onnx__operator_set_id_proto__init(&om->os);
    om->os.domain = ob_str(a, "");
    om->os.has_version = 1;
    om->os.version = opset;
    om->os_list[0] = &om->os;
    om->m.has_ir_version = 1;
    om->m.ir_version = 8;
    om->m.n_opset_import = 1;
    om->m.opset_import = om->os_list;
    om->m.graph = &om->g;
    om->g.name = ob_str(a, "test");
    return om;
}

#define OB_APPEND(a, arr, n, item)                                                  \
    do {                                                                            \
        void **na_ = ob_alloc((a), sizeof(void *) * ((n) + 1));                     \
        if (n) memcpy(na_, (arr), sizeof(void *) * (n));                            \
        na_[(n)++] = (item);                                                        \
        (arr) = (void *)na_;                                                        \
    } while (0)

static inline void ob_add_input(ob_arena *a, ob_model *om, Onnx__ValueInfoProto *vi) {
    OB_APPEND(a, om->g.input, om->g.n_input, vi);
}
static inline void ob_add_output(ob_arena *a, ob_model *om, Onnx__ValueInfoProto *vi) {
    OB_APPEND(a, om->g.output, om->g.n_output, vi);
}
static inline void ob_add_init(ob_arena *a, ob_model *om, Onnx__TensorProto *t) {
    OB_APPEND(a, om->g.initializer, om->g.n_initializer, t);
}
static inline void ob_add_node(ob_arena *a, ob_model *om, Onnx__NodeProto *n) {
    OB_APPEND(a, om->g.node, om->g.n_node, n);
}

static inline uint8_t *ob_pack(ob_arena *a, const ob_model *om, size_t *len) {
    *len = onnx__model_proto__get_packed_size(&om->m);
    uint8_t *buf = ob_alloc(a, *len);
    onnx__model_proto__pack(&om->m, buf);
    return buf;
}

#endif
