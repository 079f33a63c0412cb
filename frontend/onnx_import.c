/* onnx_import.c — the importer table: one row per ONNX op type, mapping each opset
 * version's form onto kiln's IR form (the newest opset's: axes, pads, scales, split sizes,
 * clip bounds as inputs). Ops whose forms never changed use the generic lowering, so every
 * op-table row is importable; the rows below handle the ops whose form changed. */
#include "frontend.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *np, const char *name) {
    for (size_t i = 0; i < np->n_attribute; i++)
        if (np->attribute[i]->name && !strcmp(np->attribute[i]->name, name)) return np->attribute[i];
    return NULL;
}

static kiln_status node_err(const Onnx__NodeProto *np, int index, kiln_status code, const char *what) {
    return kiln_errorf(code, "node '%s' (#%d %s): %s", np->name ? np->name : "", index,
                       np->op_type ? np->op_type : "", what);
}

/* Resolve the node's own inputs into ids[0..n). */
static kiln_status resolve(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, int *ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i >= np->n_input || !np->input[i] || !*np->input[i]) {
            ids[i] = -1;
            continue;
        }
        ids[i] = kiln_import_lookup(ctx, np->input[i]);
        if (ids[i] < 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "input '%s' is not defined by any earlier node, graph input or initializer",
                     np->input[i]);
            return node_err(np, index, KILN_ERR_MODEL, msg);
        }
    }
    return KILN_OK;
}

/* How an attribute of an older opset becomes an input of the IR form. */
typedef enum { AS_INTS, AS_INT_1, AS_FLOAT_SCALAR, AS_FLOATS } attr_kind;
typedef struct {
    const char *attr; /* attribute name in the old form */
    attr_kind kind;
} attr_input;

/* Keep the first n_lead inputs of the node, then append one input per spec row built from
 * the attribute (omitted when the attribute is absent); drop those attributes. */
static kiln_status import_attrs_as_inputs(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op,
                                          int n_lead, const attr_input *spec, int n_spec, int *node_index) {
    int ids[16];
    kiln_status st = resolve(ctx, np, index, ids, (size_t)n_lead);
    if (st) return st;
    int n_in = n_lead;
    for (int s = 0; s < n_spec; s++) {
        const Onnx__AttributeProto *a = find_attr(np, spec[s].attr);
        int id = -1;
        if (a) {
            if (spec[s].kind == AS_INTS) id = kiln_import_const_i64(ctx, a->ints, (int)a->n_ints, spec[s].attr);
            else if (spec[s].kind == AS_INT_1) id = kiln_import_const_i64(ctx, &a->i, 1, spec[s].attr);
            else if (spec[s].kind == AS_FLOAT_SCALAR) id = kiln_import_const_f32(ctx, &a->f, 1, 1, spec[s].attr);
            else id = kiln_import_const_f32(ctx, a->floats, (int)a->n_floats, 0, spec[s].attr);
            if (id < 0) return KILN_ERR_OOM;
        }
        ids[n_in++] = id;
    }
    while (n_in > kiln_op_table[op].min_in && ids[n_in - 1] < 0) n_in--;
    int ni;
    if ((st = kiln_import_node(ctx, np, index, op, ids, n_in, &ni))) return st;
    for (int s = 0; s < n_spec; s++) kiln_node_remove_attr(&ctx->g->nodes[ni], spec[s].attr);
    if (node_index) *node_index = ni;
    return KILN_OK;
}

static kiln_status finish(kiln_import_ctx *ctx, int ni) { return kiln_import_infer_node(ctx, ni); }

/* ReduceSum took axes as an input from opset 13, the other reductions from 18. */
static kiln_status imp_reduce(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    int since = op == KILN_OP_ReduceSum ? 13 : 18;
    if (ctx->opset >= since) return kiln_import_generic(ctx, np, index, op);
    static const attr_input spec[] = {{"axes", AS_INTS}};
    int ni;
    kiln_status st = import_attrs_as_inputs(ctx, np, index, op, 1, spec, 1, &ni);
    return st ? st : finish(ctx, ni);
}

/* Squeeze/Unsqueeze axes and Split sizes became inputs in opset 13. */
static kiln_status imp_axes13(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 13) return kiln_import_generic(ctx, np, index, op);
    static const attr_input axes[] = {{"axes", AS_INTS}};
    static const attr_input split[] = {{"split", AS_INTS}};
    int ni;
    kiln_status st;
    if (op == KILN_OP_Split && np->n_input >= 2) /* Split-1 could pass sizes as an input already */
        return kiln_import_generic(ctx, np, index, op);
    st = import_attrs_as_inputs(ctx, np, index, op, 1, op == KILN_OP_Split ? split : axes, 1, &ni);
    return st ? st : finish(ctx, ni);
}

/* Clip's min/max became inputs in opset 11. */
static kiln_status imp_clip(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 11) return kiln_import_generic(ctx, np, index, op);
    static const attr_input spec[] = {{"min", AS_FLOAT_SCALAR}, {"max", AS_FLOAT_SCALAR}};
    int ni;
    kiln_status st = import_attrs_as_inputs(ctx, np, index, op, 1, spec, 2, &ni);
    return st ? st : finish(ctx, ni);
}

/* Pad-2 (pads, value attrs) and Pad-1 (paddings) -> Pad-18 inputs. */
static kiln_status imp_pad(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 11) return kiln_import_generic(ctx, np, index, op);
    attr_input spec[] = {{find_attr(np, "pads") ? "pads" : "paddings", AS_INTS}, {"value", AS_FLOAT_SCALAR}};
    int ni;
    kiln_status st = import_attrs_as_inputs(ctx, np, index, op, 1, spec, 2, &ni);
    return st ? st : finish(ctx, ni);
}

/* Slice-1: starts/ends/axes attributes. */
static kiln_status imp_slice(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 10) return kiln_import_generic(ctx, np, index, op);
    static const attr_input spec[] = {{"starts", AS_INTS}, {"ends", AS_INTS}, {"axes", AS_INTS}};
    int ni;
    kiln_status st = import_attrs_as_inputs(ctx, np, index, op, 1, spec, 3, &ni);
    return st ? st : finish(ctx, ni);
}

/* TopK-1: k attribute. */
static kiln_status imp_topk(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 10) return kiln_import_generic(ctx, np, index, op);
    static const attr_input spec[] = {{"k", AS_INT_1}};
    int ni;
    kiln_status st = import_attrs_as_inputs(ctx, np, index, op, 1, spec, 1, &ni);
    return st ? st : finish(ctx, ni);
}

/* Reshape-1: shape attribute. */
static kiln_status imp_reshape(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 5) return kiln_import_generic(ctx, np, index, op);
    static const attr_input spec[] = {{"shape", AS_INTS}};
    int ni;
    kiln_status st = import_attrs_as_inputs(ctx, np, index, op, 1, spec, 1, &ni);
    return st ? st : finish(ctx, ni);
}

/* Dropout before opset 12 had ratio/is_test attributes; inference ignores them. */
static kiln_status imp_dropout(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 12) return kiln_import_generic(ctx, np, index, op);
    int ids[1], ni;
    kiln_status st = resolve(ctx, np, index, ids, 1);
    if (!st) st = kiln_import_node(ctx, np, index, op, ids, 1, &ni);
    if (st) return st;
    kiln_node_remove_attr(&ctx->g->nodes[ni], "ratio");
    kiln_node_remove_attr(&ctx->g->nodes[ni], "is_test");
    kiln_node_remove_attr(&ctx->g->nodes[ni], "seed");
    return finish(ctx, ni);
}

/* BatchNormalization: drop spatial/is_test/momentum of older versions; older versions with
 * more than one output are in training mode. */
static kiln_status imp_batchnorm(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset < 14 && np->n_output > 1)
        return node_err(np, index, KILN_ERR_UNSUPPORTED,
                        "training-mode BatchNormalization (running statistics outputs) is not supported");
    int ids[5], ni;
    kiln_status st = resolve(ctx, np, index, ids, 5);
    if (!st) st = kiln_import_node(ctx, np, index, op, ids, (int)(np->n_input < 5 ? np->n_input : 5), &ni);
    if (st) return st;
    kiln_node_remove_attr(&ctx->g->nodes[ni], "spatial");
    kiln_node_remove_attr(&ctx->g->nodes[ni], "is_test");
    kiln_node_remove_attr(&ctx->g->nodes[ni], "momentum");
    return finish(ctx, ni);
}

/* Softmax, LogSoftmax, Hardmax before opset 13 coerce the input to 2-D at `axis` (default 1). */
static kiln_status imp_softmax(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 13) return kiln_import_generic(ctx, np, index, op);
    int ids[1], ni;
    kiln_status st = resolve(ctx, np, index, ids, 1);
    if (!st) st = kiln_import_node(ctx, np, index, op, ids, 1, &ni);
    if (st) return st;
    kiln_node *n = &ctx->g->nodes[ni];
    if (!kiln_attr_find(n, "axis") && (st = kiln_node_set_int(n, "axis", 1))) return st;
    if ((st = kiln_node_set_int(n, "kiln_coerce_2d", 1))) return st;
    return finish(ctx, ni);
}

/* Cast-1 named the target type with a string. */
static kiln_status imp_cast(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    const Onnx__AttributeProto *to = find_attr(np, "to");
    if (!to || (to->has_type ? to->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING : !to->has_s))
        return kiln_import_generic(ctx, np, index, op);
    static const char *names[] = {"", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING",
                                  "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64"};
    int64_t dt = -1;
    for (int i = 1; i < (int)(sizeof names / sizeof names[0]); i++)
        if (to->s.len == strlen(names[i]) && !memcmp(to->s.data, names[i], to->s.len)) dt = i;
    if (dt < 0) return node_err(np, index, KILN_ERR_UNSUPPORTED, "Cast to an unknown type name");
    int ids[1], ni;
    kiln_status st = resolve(ctx, np, index, ids, 1);
    if (!st) st = kiln_import_node(ctx, np, index, op, ids, 1, &ni);
    if (!st) st = kiln_node_set_int(&ctx->g->nodes[ni], "to", dt);
    return st ? st : finish(ctx, ni);
}

/* Opset < 7 binary ops: broadcast=1 with `axis` aligns B's dims at A's axis. Rewrite to
 * numpy broadcasting by giving B trailing 1-dims (reshaping a constant, else Unsqueeze). */
static kiln_status imp_legacy_binary(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    const Onnx__AttributeProto *axis = find_attr(np, "axis");
    const Onnx__AttributeProto *bc = find_attr(np, "broadcast");
    if (ctx->opset >= 7 || !bc || !bc->i || !axis) {
        int ids[2], ni;
        if (ctx->opset >= 7) return kiln_import_generic(ctx, np, index, op);
        kiln_status st = resolve(ctx, np, index, ids, 2);
        if (!st) st = kiln_import_node(ctx, np, index, op, ids, 2, &ni);
        if (st) return st;
        kiln_node_remove_attr(&ctx->g->nodes[ni], "broadcast");
        kiln_node_remove_attr(&ctx->g->nodes[ni], "axis");
        return finish(ctx, ni);
    }
    int ids[2];
    kiln_status st = resolve(ctx, np, index, ids, 2);
    if (st) return st;
    if (ids[0] < 0 || ids[1] < 0) return node_err(np, index, KILN_ERR_MODEL, "needs both inputs");
    kiln_graph *g = ctx->g;
    int ra = g->values[ids[0]].rank, rb = g->values[ids[1]].rank;
    if (ra < 0 || rb < 0) return node_err(np, index, KILN_ERR_UNSUPPORTED, "legacy broadcast needs known ranks");
    int64_t ax = axis->i < 0 ? axis->i + ra : axis->i;
    /* range-check before narrowing: a huge axis must not wrap into a small trailing count */
    if (ax < 0 || ax > ra || ra - ax - rb < 0)
        return node_err(np, index, KILN_ERR_SHAPE, "legacy broadcast axis out of range");
    int trailing = (int)(ra - ax - rb);
    if (trailing > 0) {
        const kiln_value *b = &g->values[ids[1]];
        if (b->data && b->producer < 0) {
            kiln_tensor *t = kiln_tensor_clone(b->data);
            if (!t) return KILN_ERR_OOM;
            for (int i = 0; i < trailing; i++) t->dims[t->rank++] = 1;
            if ((ids[1] = kiln_import_const(ctx, t, np->input[1])) < 0) return KILN_ERR_OOM;
        } else {
            int64_t ax_list[KILN_MAX_RANK];
            for (int i = 0; i < trailing; i++) ax_list[i] = rb + i;
            int axes = kiln_import_const_i64(ctx, ax_list, trailing, "legacy_axes");
            int outv = kiln_import_new_value(ctx, np->input[1]);
            if (axes < 0 || outv < 0) return KILN_ERR_OOM;
            int uin[2] = {ids[1], axes};
            int un = kiln_graph_add_node(g, KILN_OP_Unsqueeze, np->name ? np->name : "", uin, 2, &outv, 1);
            if (un < 0) return KILN_ERR_OOM;
            g->nodes[un].id = index;
            if ((st = finish(ctx, un))) return st;
            ids[1] = outv;
        }
    }
    int ni;
    if ((st = kiln_import_node(ctx, np, index, op, ids, 2, &ni))) return st;
    kiln_node_remove_attr(&g->nodes[ni], "broadcast");
    kiln_node_remove_attr(&g->nodes[ni], "axis");
    return finish(ctx, ni);
}

/* PRelu before opset 7 applied a 1-D slope of C values along axis 1 (the channels); the IR
 * form broadcasts numpy-style, so align the slope like a legacy broadcast=1, axis=1 binary. */
static kiln_status imp_prelu(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 7 || np->n_input < 2) return kiln_import_generic(ctx, np, index, op);
    int ids[2];
    kiln_status st = resolve(ctx, np, index, ids, 2);
    if (st) return st;
    if (ids[0] < 0 || ids[1] < 0) return kiln_import_generic(ctx, np, index, op); /* names what is missing */
    const kiln_value *x = &ctx->g->values[ids[0]], *slope = &ctx->g->values[ids[1]];
    if (slope->rank != 1 || slope->dims[0] == 1 || x->rank < 3) return kiln_import_generic(ctx, np, index, op);
    Onnx__AttributeProto bc = ONNX__ATTRIBUTE_PROTO__INIT, ax = ONNX__ATTRIBUTE_PROTO__INIT;
    bc.name = "broadcast";
    ax.name = "axis";
    bc.has_i = ax.has_i = 1;
    bc.i = ax.i = 1;
    bc.has_type = ax.has_type = 1;
    bc.type = ax.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    Onnx__AttributeProto *attrs[2] = {&bc, &ax};
    Onnx__NodeProto legacy = *np;
    legacy.attribute = attrs;
    legacy.n_attribute = 2;
    return imp_legacy_binary(ctx, &legacy, index, op);
}

/* Gemm before opset 7 had a broadcast flag; Concat before 4 defaulted axis to 1. */
static kiln_status imp_drop_broadcast(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    int ids[16], ni;
    if (np->n_input > 16) return kiln_import_generic(ctx, np, index, op);
    kiln_status st = resolve(ctx, np, index, ids, np->n_input);
    if (!st) st = kiln_import_node(ctx, np, index, op, ids, (int)np->n_input, &ni);
    if (st) return st;
    kiln_node *n = &ctx->g->nodes[ni];
    kiln_node_remove_attr(n, "broadcast");
    if (op == KILN_OP_Concat && !kiln_attr_find(n, "axis") && (st = kiln_node_set_int(n, "axis", 1))) return st;
    return finish(ctx, ni);
}

/* Upsample (7-9) and Resize-10 -> Resize with asymmetric coordinates and floor rounding. */
static kiln_status imp_upsample(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    bool is_resize = np->op_type && !strcmp(np->op_type, "Resize");
    if (is_resize && ctx->opset >= 11) return kiln_import_generic(ctx, np, index, op);
    int ids[4] = {-1, -1, -1, -1}, ni;
    kiln_status st;
    const Onnx__AttributeProto *scales = find_attr(np, "scales");
    if (scales) { /* Upsample-7/8 */
        if ((st = resolve(ctx, np, index, ids, 1))) return st;
        ids[2] = kiln_import_const_f32(ctx, scales->floats, (int)scales->n_floats, 0, "scales");
        if (ids[2] < 0) return KILN_ERR_OOM;
    } else {
        if (np->n_input < 2)
            return node_err(np, index, KILN_ERR_UNSUPPORTED, "Upsample without scales (opset 1 form) is not supported");
        int tmp[2];
        if ((st = resolve(ctx, np, index, tmp, 2))) return st;
        ids[0] = tmp[0];
        ids[2] = tmp[1];
    }
    if ((st = kiln_import_node(ctx, np, index, op, ids, 3, &ni))) return st;
    kiln_node *n = &ctx->g->nodes[ni];
    kiln_node_remove_attr(n, "scales");
    if ((st = kiln_node_set_str(n, "coordinate_transformation_mode", "asymmetric"))) return st;
    if ((st = kiln_node_set_str(n, "nearest_mode", "floor"))) return st;
    return finish(ctx, ni);
}

/* Constant nodes become constant values at import: no node remains in the IR. */
static kiln_status imp_constant(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (find_attr(np, "sparse_value"))
        return node_err(np, index, KILN_ERR_UNSUPPORTED, "sparse Constant values are not supported");
    if (np->n_output != 1 || !np->output[0] || !*np->output[0])
        return node_err(np, index, KILN_ERR_MODEL, "Constant needs exactly one output");
    int ni;
    kiln_status st = kiln_import_node(ctx, np, index, op, NULL, 0, &ni);
    if (st) return st;
    kiln_graph *g = ctx->g;
    kiln_tensor *t = NULL;
    st = kiln_eval_node(&g->nodes[ni], NULL, 0, &t, 1);
    if (!st) st = finish(ctx, ni);
    /* remove the node again; its output keeps the folded tensor */
    kiln_node *n = &g->nodes[ni];
    int v = n->outputs[0];
    free(n->name);
    free(n->inputs);
    free(n->outputs);
    for (int a = 0; a < n->n_attrs; a++) kiln_attr_free(&n->attrs[a]);
    free(n->attrs);
    g->n_nodes--;
    g->values[v].producer = -1;
    if (st) {
        kiln_tensor_free(t);
        return st;
    }
    g->values[v].data = t;
    g->values[v].flags |= KILN_VALUE_INITIALIZER;
    kiln_value_set(&g->values[v], t->dtype, t->rank, t->dims);
    return KILN_OK;
}

/* DFT before opset 20 took axis as an attribute (default 1); the IR form has it as input 2. */
static kiln_status imp_dft(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 20) return kiln_import_generic(ctx, np, index, op);
    const Onnx__AttributeProto *a = find_attr(np, "axis");
    int64_t axis = a ? a->i : 1;
    int ids[3], ni;
    kiln_status st = resolve(ctx, np, index, ids, 2);
    if (st) return st;
    if ((ids[2] = kiln_import_const_i64(ctx, &axis, 1, "axis")) < 0) return KILN_ERR_OOM;
    if ((st = kiln_import_node(ctx, np, index, op, ids, 3, &ni))) return st;
    kiln_node_remove_attr(&ctx->g->nodes[ni], "axis");
    return finish(ctx, ni);
}

/* RoiAlign-10 had no coordinate_transformation_mode and behaved as output_half_pixel. */
static kiln_status imp_roialign(kiln_import_ctx *ctx, const Onnx__NodeProto *np, int index, kiln_op op) {
    if (ctx->opset >= 16 || find_attr(np, "coordinate_transformation_mode"))
        return kiln_import_generic(ctx, np, index, op);
    int ids[3], ni;
    kiln_status st = resolve(ctx, np, index, ids, 3);
    if (!st) st = kiln_import_node(ctx, np, index, op, ids, 3, &ni);
    if (!st) st = kiln_node_set_str(&ctx->g->nodes[ni], "coordinate_transformation_mode", "output_half_pixel");
    return st ? st : finish(ctx, ni);
}

/* Rows for ops whose ONNX form differs from the IR form in some opset, and ONNX op types
 * that map onto another IR op. Every other op-table row imports generically. */
static const kiln_importer special_rows[] = {
    {"ReduceL1", KILN_OP_ReduceL1, imp_reduce},
    {"ReduceL2", KILN_OP_ReduceL2, imp_reduce},
    {"ReduceLogSum", KILN_OP_ReduceLogSum, imp_reduce},
    {"ReduceLogSumExp", KILN_OP_ReduceLogSumExp, imp_reduce},
    {"ReduceMax", KILN_OP_ReduceMax, imp_reduce},
    {"ReduceMean", KILN_OP_ReduceMean, imp_reduce},
    {"ReduceMin", KILN_OP_ReduceMin, imp_reduce},
    {"ReduceProd", KILN_OP_ReduceProd, imp_reduce},
    {"ReduceSum", KILN_OP_ReduceSum, imp_reduce},
    {"ReduceSumSquare", KILN_OP_ReduceSumSquare, imp_reduce},
    {"Squeeze", KILN_OP_Squeeze, imp_axes13},
    {"Unsqueeze", KILN_OP_Unsqueeze, imp_axes13},
    {"Split", KILN_OP_Split, imp_axes13},
    {"Clip", KILN_OP_Clip, imp_clip},
    {"Pad", KILN_OP_Pad, imp_pad},
    {"Slice", KILN_OP_Slice, imp_slice},
    {"TopK", KILN_OP_TopK, imp_topk},
    {"Reshape", KILN_OP_Reshape, imp_reshape},
    {"Dropout", KILN_OP_Dropout, imp_dropout},
    {"BatchNormalization", KILN_OP_BatchNormalization, imp_batchnorm},
    {"Softmax", KILN_OP_Softmax, imp_softmax},
    {"LogSoftmax", KILN_OP_LogSoftmax, imp_softmax},
    {"Hardmax", KILN_OP_Hardmax, imp_softmax},
    {"Cast", KILN_OP_Cast, imp_cast},
    {"Add", KILN_OP_Add, imp_legacy_binary},
    {"Sub", KILN_OP_Sub, imp_legacy_binary},
    {"Mul", KILN_OP_Mul, imp_legacy_binary},
    {"Div", KILN_OP_Div, imp_legacy_binary},
    {"Pow", KILN_OP_Pow, imp_legacy_binary},
    {"And", KILN_OP_And, imp_legacy_binary},
    {"Or", KILN_OP_Or, imp_legacy_binary},
    {"Xor", KILN_OP_Xor, imp_legacy_binary},
    {"Equal", KILN_OP_Equal, imp_legacy_binary},
    {"Greater", KILN_OP_Greater, imp_legacy_binary},
    {"Less", KILN_OP_Less, imp_legacy_binary},
    {"PRelu", KILN_OP_PRelu, imp_prelu},
    {"Gemm", KILN_OP_Gemm, imp_drop_broadcast},
    {"Concat", KILN_OP_Concat, imp_drop_broadcast},
    {"Upsample", KILN_OP_Resize, imp_upsample},
    {"Resize", KILN_OP_Resize, imp_upsample},
    {"Constant", KILN_OP_Constant, imp_constant},
    {"Scatter", KILN_OP_ScatterElements, NULL}, /* deprecated alias with the same form */
    {"DFT", KILN_OP_DFT, imp_dft},
    {"RoiAlign", KILN_OP_RoiAlign, imp_roialign},
};
#define N_SPECIAL ((int)(sizeof special_rows / sizeof special_rows[0]))

/* Every op-table row is importable under its ONNX name with the generic lowering. */
#define KILN_OP(id, ...) {#id, KILN_OP_##id, NULL},
static const kiln_importer generic_rows[KILN_OP_COUNT] = {
#include "op_table.def"
};
#undef KILN_OP

/* Rows are the special rows, then the generic rows (a generic row shadowed by a special
 * row of the same name is never found). */
int kiln_importer_count(void) { return N_SPECIAL + KILN_OP_COUNT; }

const kiln_importer *kiln_importer_at(int i) {
    if (i < 0 || i >= kiln_importer_count()) return NULL;
    return i < N_SPECIAL ? &special_rows[i] : &generic_rows[i - N_SPECIAL];
}

const kiln_importer *kiln_importer_find(const char *onnx_type) {
    if (!onnx_type) return NULL;
    for (int i = 0; i < kiln_importer_count(); i++) {
        const kiln_importer *imp = kiln_importer_at(i);
        if (imp->op != KILN_OP_Fused && !strcmp(imp->onnx_type, onnx_type)) return imp; /* Fused is kiln's own */
    }
    return NULL;
}
