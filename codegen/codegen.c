/*
 * codegen.c — CUDA C for every kernel of an optimized graph, and the bundle around it
 * (interface and scope: codegen.h).
 *
 * Structure (emitters: one file per family, see cg_internal.h). One pass over the top-level nodes; each node's emitter appends readable CUDA C
 * to the module source (an expression struct or an epilogue struct, then an extern "C"
 * kernel that instantiates a kernels/ *.cuh template with its tile sizes) and adds its
 * kernel and launch records to the bundle. A node that cannot be emitted records why and
 * the pass goes on, so that one error lists every unsupported node. Then NVRTC compiles the
 * module once per architecture.
 *
 * Argument sources (value_arg): a graph output is always written to (and read from) its
 * OUTPUT binding, a graph input is its INPUT binding, a constant is a WEIGHT, anything else
 * lives in the arena at the offset of the root of its alias chain (views and in-place
 * writes share their target's storage).
 */
#include "codegen/cg_internal.h"
#include "codegen/nvrtc.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNSUPPORTED_LIST 768  /* bytes of the error message for the unsupported-node list */

/* -------------------------------------------------------------- dispatcher -- */
static kiln_status emit_node(cg *c, const kiln_node *n) {
    if (kiln_cg_node_is_constant(c, n)) return KILN_OK; /* consumers read weights; see emit_const_outputs */
    if (kiln_node_is_view(n)) return kiln_cg_emit_view(c, n);
    switch (n->op) {
    case KILN_OP_Conv: return kiln_cg_emit_conv(c, n);
    case KILN_OP_Gemm: case KILN_OP_MatMul: return kiln_cg_emit_gemm(c, n);
    case KILN_OP_MaxPool: case KILN_OP_AveragePool: case KILN_OP_GlobalAveragePool: case KILN_OP_GlobalMaxPool:
        return kiln_cg_emit_pool(c, n);
    case KILN_OP_Softmax: case KILN_OP_LogSoftmax: return kiln_cg_emit_softmax(c, n);
    case KILN_OP_Concat: return kiln_cg_emit_concat(c, n);
    case KILN_OP_Transpose: case KILN_OP_Slice: case KILN_OP_Pad: case KILN_OP_Expand: case KILN_OP_Split:
        return kiln_cg_emit_data_movement(c, n);
    case KILN_OP_ReduceSum: case KILN_OP_ReduceMean: case KILN_OP_ReduceProd: case KILN_OP_ReduceMax:
    case KILN_OP_ReduceMin: case KILN_OP_ReduceL1: case KILN_OP_ReduceL2: case KILN_OP_ReduceSumSquare:
    case KILN_OP_ReduceLogSum: case KILN_OP_ReduceLogSumExp: case KILN_OP_ArgMax: case KILN_OP_ArgMin: case KILN_OP_Hardmax:
    case KILN_OP_LpNormalization:
        return kiln_cg_emit_reduce(c, n);
    case KILN_OP_Gather: case KILN_OP_GatherElements: return kiln_cg_emit_gather(c, n);
    case KILN_OP_Trilu: case KILN_OP_Tile: case KILN_OP_DepthToSpace: case KILN_OP_SpaceToDepth: case KILN_OP_Range:
    case KILN_OP_GatherND: case KILN_OP_EyeLike: case KILN_OP_OneHot:
        return kiln_cg_emit_index_misc(c, n);
    case KILN_OP_ScatterElements: case KILN_OP_ScatterND: return kiln_cg_emit_scatter(c, n);
    case KILN_OP_RotaryEmbedding: return kiln_cg_emit_rotary(c, n);
    case KILN_OP_ConvTranspose: return kiln_cg_emit_conv_transpose(c, n);
    case KILN_OP_Resize: return kiln_cg_emit_resize(c, n);
    case KILN_OP_LayerNormalization: case KILN_OP_RMSNormalization: case KILN_OP_InstanceNormalization:
        return kiln_cg_emit_norm(c, n);
    case KILN_OP_CumSum: case KILN_OP_CumProd: return kiln_cg_emit_cumsum(c, n);
    case KILN_OP_LRN: return kiln_cg_emit_lrn(c, n);
    case KILN_OP_TopK: return kiln_cg_emit_topk(c, n);
    case KILN_OP_Einsum: return kiln_cg_emit_einsum(c, n);
    case KILN_OP_NegativeLogLikelihoodLoss: case KILN_OP_SoftmaxCrossEntropyLoss: return kiln_cg_emit_loss(c, n);
    case KILN_OP_Fused: {
        const char *kind = kiln_attr_str(n, "kind", "");
        if (!strcmp(kind, "conv_epilogue")) return kiln_cg_emit_conv(c, n);
        if (!strcmp(kind, "gemm_epilogue")) return kiln_cg_emit_gemm(c, n);
        if (!strcmp(kind, "elementwise")) return kiln_cg_emit_elementwise(c, n);
        if (!strcmp(kind, "reduction")) return kiln_cg_emit_reduction_group(c, n);
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "fused group kind '%s'", kind);
    }
    default:
        if (kiln_op_table[n->op].kind == KILN_KIND_ELEMENTWISE || kiln_op_table[n->op].kind == KILN_KIND_BROADCAST)
            return kiln_cg_emit_elementwise(c, n);
        return kiln_cg_emit_build_time(c, n); /* or "no GPU kernel for this op yet" */
    }
}

void kiln_codegen_opts_init(kiln_codegen_opts *o) {
    static const char *const default_archs[] = {"sm_90"};
    memset(o, 0, sizeof *o);
    o->archs = default_archs;
    o->n_archs = 1;
    o->ptx = true;
    o->precision = KILN_PREC_FP32;
    o->compile = true;
}

static kiln_status add_io(const kiln_graph *g, kiln_bundle *b) {
    for (int k = 0; k < 2; k++) {
        const int *ids = k ? g->outputs : g->inputs;
        int n = k ? g->n_outputs : g->n_inputs;
        for (int i = 0; i < n; i++) {
            const kiln_value *v = &g->values[ids[i]];
            if (!kiln_value_is_static(v))
                return kiln_errorf(KILN_ERR_SHAPE, "graph %s '%s' has dynamic dims: fix them with --shape %s=DIMS",
                                   k ? "output" : "input", v->name, v->name);
            kiln_status st = kiln_bundle_add_io(b, v->name, v->dtype, v->rank, v->dims, k == 1);
            if (st) return st;
        }
    }
    return KILN_OK;
}

/* The group name a kernel records: the node's name, else its first output's. */
static void group_name(const kiln_graph *g, const kiln_node *n, char *buf, size_t len) {
    if (n->name && *n->name) snprintf(buf, len, "%s", n->name);
    else if (n->n_outputs > 0 && n->outputs[0] >= 0) snprintf(buf, len, "%s", g->values[n->outputs[0]].name);
    else snprintf(buf, len, "node_%d", n->id);
}

kiln_status kiln_codegen_build(const kiln_graph *g, const kiln_codegen_opts *o, kiln_bundle *b, char **cuda_source) {
    if (cuda_source) *cuda_source = NULL;
    if (!g || !o || !b) return kiln_errorf(KILN_ERR_INVALID_ARG, "codegen: graph, options and bundle are required");
    if (o->precision != KILN_PREC_FP32)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "precision %s is not implemented yet (fp32 only for now)",
                           o->precision == KILN_PREC_TF32   ? "tf32"
                           : o->precision == KILN_PREC_FP16 ? "fp16"
                                                            : "int8");
    if (o->compile && o->n_archs < 1) return kiln_errorf(KILN_ERR_INVALID_ARG, "codegen: no target architecture");
    for (int i = 0; i < g->n_inputs; i++)
        if (!kiln_value_is_static(&g->values[g->inputs[i]]))
            return kiln_errorf(KILN_ERR_SHAPE, "graph input '%s' has dynamic dims: fix them with --shape %s=DIMS",
                               g->values[g->inputs[i]].name, g->values[g->inputs[i]].name);
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].rank >= 0 && !kiln_value_is_static(&g->values[v]) && !g->values[v].data &&
            (g->values[v].producer >= 0 || kiln_cg_io_index(g->inputs, g->n_inputs, v) >= 0))
            return kiln_errorf(KILN_ERR_SHAPE, "value '%s' has dynamic dims: fix the graph inputs with --shape",
                               g->values[v].name);
    for (int v = 0; v < g->n_values; v++) /* the kernels index in 32 bits */
        if (g->values[v].rank >= 0 && kiln_value_is_static(&g->values[v]) && kiln_cg_numel(&g->values[v]) >= (1ll << 31))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "value '%s' has 2^31 elements or more (kernels index in 32 bits)",
                               g->values[v].name);
    cg c;
    memset(&c, 0, sizeof c);
    c.g = g;
    c.o = o;
    c.b = b;
    c.weight = malloc(sizeof(int64_t) * (size_t)(g->n_values + 1));
    kiln_status st = c.weight ? KILN_OK : kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int v = 0; v < g->n_values; v++) c.weight[v] = -1;
    if (!st) st = add_io(g, b);
    kiln_cg_printf(&c.src,
              "// Generated by kiln %s from graph '%s': one module, one kernel per launch group.\n"
              "// Templates: kernels/*.cuh (embedded in kiln). Arguments come from the bundle's launch plan.\n"
              "#include \"conv.cuh\"\n#include \"copy.cuh\"\n#include \"elementwise.cuh\"\n#include \"gemm.cuh\"\n"
              "#include \"pool.cuh\"\n#include \"softmax.cuh\"\n"
              "#include \"reduce.cuh\"\n#include \"gather.cuh\"\n#include \"convtranspose.cuh\"\n"
              "#include \"resize.cuh\"\n",
              KILN_VERSION_STRING, g->name ? g->name : "");

    /* every node; unsupported ones are collected into one message */
    char unsupported[UNSUPPORTED_LIST] = "";
    size_t ulen = 0;
    int n_bad = 0, n_listed = 0;
    for (int ni = 0; !st && ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        c.node = n;
        group_name(g, n, c.group, sizeof c.group);
        kiln_status ns = emit_node(&c, n);
        if (ns == KILN_ERR_UNSUPPORTED) {
            n_bad++;
            char line[256];
            char opname[160]; /* a fused group names its kind and body ops: reduction[CumSum+Relu] */
            snprintf(opname, sizeof opname, "%s", n->op == KILN_OP_Fused ? kiln_attr_str(n, "kind", "Fused") : kiln_op_table[n->op].onnx_type);
            for (int k = 0; n->body && k < n->body->n_nodes; k++) {
                size_t l = strlen(opname);
                snprintf(opname + l, sizeof opname - l, "%s%s%s", k ? "+" : "[",
                         kiln_op_table[n->body->nodes[k].op].onnx_type, k + 1 == n->body->n_nodes ? "]" : "");
            }
            int w = snprintf(line, sizeof line, "\n  %s (node '%s'): %s", opname, c.group, kiln_last_error());
            if (w > 0 && ulen + (size_t)w + 40 < sizeof unsupported) {
                memcpy(unsupported + ulen, line, (size_t)w + 1);
                ulen += (size_t)w;
                n_listed++;
            }
        } else if (ns) {
            st = kiln_error_prefix(ns, "codegen of node '%s'", c.group);
        }
    }
    if (!st && !n_bad) st = kiln_cg_emit_const_outputs(&c);
    if (!st && n_bad)
        st = kiln_errorf(KILN_ERR_UNSUPPORTED, "%d node%s cannot run on the GPU yet:%s%s", n_bad, n_bad == 1 ? "" : "s",
                         unsupported, n_listed < n_bad ? "\n  ..." : "");
    if (!st && (c.src.oom || c.tiles.oom)) st = kiln_errorf(KILN_ERR_OOM, "out of memory");

    if (!st && g->arena_bytes > 0) st = kiln_bundle_set_arena(b, (uint64_t)g->arena_bytes, 256);
    for (int v = 0; !st && v < g->n_values; v++) {
        const kiln_value *gv = &g->values[v];
        if (gv->arena_offset < 0 || gv->alias_of >= 0 || gv->data || kiln_cg_io_index(g->outputs, g->n_outputs, v) >= 0 ||
            kiln_cg_io_index(g->inputs, g->n_inputs, v) >= 0)
            continue;
        int64_t e = kiln_cg_numel(gv) * (int64_t)kiln_dtype_size(gv->dtype);
        if (e > 0) st = kiln_bundle_add_buffer(b, gv->name, (uint64_t)gv->arena_offset, (uint64_t)e);
    }
    if (!st && c.tiles.len) st = kiln_bundle_set_meta(b, "tiles", c.tiles.s);

    if (!st && o->compile) {
        kiln_nvrtc_request rq = {.name = g->name && *g->name ? g->name : "model",
                                 .source = c.src.s,
                                 .headers = kiln_kernel_headers,
                                 .n_headers = kiln_kernel_header_count,
                                 .archs = o->archs,
                                 .n_archs = o->n_archs,
                                 .ptx = o->ptx};
        kiln_nvrtc_output out;
        st = kiln_nvrtc_compile(&rq, &out);
        for (int i = 0; !st && i < out.n_images; i++)
            st = kiln_bundle_add_image(b, out.images[i].is_ptx ? KILN_IMAGE_PTX : KILN_IMAGE_CUBIN,
                                       out.images[i].arch, 0, out.images[i].data, out.images[i].size);
        kiln_nvrtc_output_free(&out);
    }
    if (cuda_source) {
        *cuda_source = c.src.s;
        c.src.s = NULL;
    }
    free(c.src.s);
    free(c.tiles.s);
    for (int i = 0; i < c.n_keys; i++) {
        free(c.kkeys[i]);
        free(c.knames[i]);
    }
    free(c.kkeys);
    free(c.knames);
    free(c.weight);
    return st;
}

/* ------------------------------------------------------------------ shapes -- */
kiln_status kiln_codegen_parse_dims(const char *s, int *rank, int64_t *dims) {
    int r = 0;
    const char *p = s;
    if (!s || !*s) return kiln_errorf(KILN_ERR_INVALID_ARG, "empty dims");
    while (*p) {
        char *end;
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 0 || r == KILN_MAX_RANK)
            return kiln_errorf(KILN_ERR_INVALID_ARG, "bad dims '%s' (want e.g. 1x3x224x224)", s);
        dims[r++] = d;
        p = end;
        if (*p == 'x' || *p == ',') {
            p++;
            if (!*p) return kiln_errorf(KILN_ERR_INVALID_ARG, "bad dims '%s' (want e.g. 1x3x224x224)", s);
        } else if (*p) {
            return kiln_errorf(KILN_ERR_INVALID_ARG, "bad dims '%s' (want e.g. 1x3x224x224)", s);
        }
    }
    *rank = r;
    return KILN_OK;
}

kiln_status kiln_codegen_fix_shape(kiln_graph *g, const char *name, int rank, const int64_t *dims) {
    int v = -1;
    for (int i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->values[g->inputs[i]].name, name)) v = g->inputs[i];
    if (v < 0) return kiln_errorf(KILN_ERR_INVALID_ARG, "--shape: the model has no input named '%s'", name);
    kiln_value *val_ = &g->values[v];
    if (val_->rank >= 0 && val_->rank != rank)
        return kiln_errorf(KILN_ERR_SHAPE, "--shape %s: rank %d, but the input has rank %d", name, rank, val_->rank);
    for (int i = 0; val_->rank >= 0 && i < rank; i++)
        if (val_->dims[i] >= 0 && val_->dims[i] != dims[i])
            return kiln_errorf(KILN_ERR_SHAPE, "--shape %s: dim %d is %lld in the model, not %lld", name, i,
                               (long long)val_->dims[i], (long long)dims[i]);
    kiln_value_set(val_, val_->dtype, rank, dims);
    return kiln_graph_infer(g);
}
