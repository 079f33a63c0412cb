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
    if (kiln_cg_node_is_constant(c, n)) return kiln_cg_emit_const_node(c, n); /* consumers read weights */
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

/* ------------------------------------------------------------------ layers -- */
/* Per-layer bookkeeping for the bundle's `layers` section: which launches each node got, what
 * they finalize and which earlier layers they must wait for (multi-stream execution). */
typedef struct region {
    int space; /* 0: arena, 1 + 2k: input k, 2 + 2k: output k, -1: all memory (a barrier) */
    uint64_t lo, hi;
} region;

typedef struct pending_layer {
    int node;
    uint32_t first, count;
    region *rd, *wr;
    int n_rd, n_wr;
} pending_layer;

/* Where the launches find value v (as kiln_cg_value_arg decides, without adding weights):
 * KILN_ARG_ARENA / INPUT / OUTPUT with the offset or binding number, KILN_ARG_WEIGHT for
 * constants (read-only: no hazards), 0 when it has no storage. */
static kiln_arg_kind value_place(const kiln_graph *g, int v, uint64_t *at) {
    int r = v;
    for (int steps = 0; steps <= g->n_values; steps++) {
        int k;
        if ((k = kiln_cg_io_index(g->outputs, g->n_outputs, r)) >= 0) {
            *at = (uint64_t)k;
            return KILN_ARG_OUTPUT;
        }
        if ((k = kiln_cg_io_index(g->inputs, g->n_inputs, r)) >= 0) {
            *at = (uint64_t)k;
            return KILN_ARG_INPUT;
        }
        if (g->values[r].data) return KILN_ARG_WEIGHT;
        if (g->values[r].alias_of < 0) break;
        r = g->values[r].alias_of;
    }
    if (g->values[r].arena_offset < 0) return (kiln_arg_kind)0;
    *at = (uint64_t)g->values[r].arena_offset;
    return KILN_ARG_ARENA;
}

static uint64_t value_bytes(const kiln_value *v) {
    return v->rank < 0 ? 0 : (uint64_t)kiln_cg_numel(v) * kiln_dtype_size(v->dtype);
}

/* The memory a list of values occupies (weights and storage-less values left out). */
static kiln_status value_regions(const kiln_graph *g, const int *ids, int n, region **out, int *n_out) {
    *out = calloc((size_t)n + 1, sizeof **out);
    *n_out = 0;
    if (!*out) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int i = 0; i < n; i++) {
        uint64_t at = 0;
        if (ids[i] < 0) continue;
        kiln_arg_kind k = value_place(g, ids[i], &at);
        uint64_t bytes = value_bytes(&g->values[ids[i]]);
        if (!bytes || (k != KILN_ARG_ARENA && k != KILN_ARG_INPUT && k != KILN_ARG_OUTPUT)) continue;
        region *r = &(*out)[(*n_out)++];
        /* a binding is one object: any two accesses to it overlap */
        if (k == KILN_ARG_ARENA) *r = (region){0, at, at + bytes};
        else *r = (region){(int)(k == KILN_ARG_INPUT ? 1 + 2 * at : 2 + 2 * at), 0, 1};
    }
    return KILN_OK;
}

static bool regions_overlap(const region *a, int na, const region *b, int nb) {
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if ((a[i].space == b[j].space || a[i].space < 0 || b[j].space < 0) && a[i].lo < b[j].hi && b[j].lo < a[i].hi)
                return true;
    return false;
}

/* Every pointer argument of the layer's launches must point into memory its regions name; an
 * emitter that passes anything else (scratch space, a value that is not a node input or output)
 * would make the dependencies wrong, so such a layer conservatively reads and writes everything
 * and serializes with all others. */
static kiln_status cover_launch_args(const kiln_bundle *b, pending_layer *p) {
    bool stray = false;
    for (uint32_t l = p->first; l < p->first + p->count && !stray; l++)
        for (uint32_t a = 0; a < b->launches[l].n_args && !stray; a++) {
            const kiln_bundle_arg *arg = &b->launches[l].args[a];
            region want;
            if (arg->kind == KILN_ARG_ARENA) want = (region){0, arg->value, arg->value};
            else if (arg->kind == KILN_ARG_INPUT) want = (region){(int)(1 + 2 * arg->value), 0, 0};
            else if (arg->kind == KILN_ARG_OUTPUT) want = (region){(int)(2 + 2 * arg->value), 0, 0};
            else continue;
            bool found = false;
            for (int k = 0; k < p->n_rd + p->n_wr && !found; k++) {
                const region *r = k < p->n_rd ? &p->rd[k] : &p->wr[k - p->n_rd];
                found = r->space == want.space && r->lo <= want.lo && (want.lo < r->hi || want.lo == r->lo);
            }
            stray = !found;
        }
    if (!stray) return KILN_OK;
    region *rd = realloc(p->rd, sizeof *rd * (size_t)(p->n_rd + 1)), *wr = rd ? realloc(p->wr, sizeof *wr * (size_t)(p->n_wr + 1)) : NULL;
    if (rd) p->rd = rd;
    if (wr) p->wr = wr;
    if (!rd || !wr) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    p->rd[p->n_rd++] = (region){-1, 0, UINT64_MAX};
    p->wr[p->n_wr++] = (region){-1, 0, UINT64_MAX};
    return KILN_OK;
}

/* "Conv", or a fused group's kind with its body ops: "conv_epilogue[Conv+Relu]". */
static void layer_op(const kiln_node *n, char *buf, size_t len) {
    snprintf(buf, len, "%s", n->op == KILN_OP_Fused ? kiln_attr_str(n, "kind", "Fused") : kiln_op_table[n->op].onnx_type);
    for (int k = 0; n->body && k < n->body->n_nodes; k++) {
        size_t l = strlen(buf);
        if (l + 2 >= len) break;
        snprintf(buf + l, len - l, "%s%s%s", k ? "+" : "[", kiln_op_table[n->body->nodes[k].op].onnx_type,
                 k + 1 == n->body->n_nodes ? "]" : "");
    }
}

/* Dependencies: layer L waits for an earlier K when L writes memory K read or wrote (WAR, WAW:
 * the memory plan reuses arena space) or reads memory K wrote (RAW). Edges implied by others
 * are dropped (transitive reduction over ancestor bitsets), so that the runtime waits on few
 * events. deps[L] gets the kept indices, ascending. */
static kiln_status layer_deps(const pending_layer *p, int n, uint32_t **deps, int *n_deps) {
    size_t words = ((size_t)n + 63) / 64;
    uint64_t *anc = calloc((size_t)n * words + 1, sizeof *anc);
    uint32_t *direct = calloc((size_t)n + 1, sizeof *direct);
    if (!anc || !direct) {
        free(anc);
        free(direct);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    kiln_status st = KILN_OK;
    for (int l = 0; l < n && !st; l++) {
        int nd = 0;
        for (int k = 0; k < l; k++)
            if (regions_overlap(p[l].wr, p[l].n_wr, p[k].rd, p[k].n_rd) ||
                regions_overlap(p[l].wr, p[l].n_wr, p[k].wr, p[k].n_wr) ||
                regions_overlap(p[l].rd, p[l].n_rd, p[k].wr, p[k].n_wr))
                direct[nd++] = (uint32_t)k;
        uint64_t *a = anc + (size_t)l * words;
        for (int i = 0; i < nd; i++) {
            const uint64_t *ak = anc + (size_t)direct[i] * words;
            for (size_t w = 0; w < words; w++) a[w] |= ak[w];
        }
        /* keep k unless another direct dep already has it as an ancestor */
        deps[l] = calloc((size_t)nd + 1, sizeof **deps);
        if (!deps[l]) {
            st = kiln_errorf(KILN_ERR_OOM, "out of memory");
            break;
        }
        n_deps[l] = 0;
        for (int i = 0; i < nd; i++) {
            uint32_t k = direct[i];
            bool implied = (a[k / 64] >> (k % 64)) & 1;
            if (!implied) deps[l][n_deps[l]++] = k;
        }
        for (int i = 0; i < nd; i++) a[direct[i] / 64] |= 1ull << (direct[i] % 64);
    }
    free(anc);
    free(direct);
    return st;
}

static kiln_status add_layers(const cg *c, pending_layer *p, int n) {
    const kiln_graph *g = c->g;
    uint32_t **deps = calloc((size_t)n + 1, sizeof *deps);
    int *n_deps = calloc((size_t)n + 1, sizeof *n_deps);
    kiln_status st = deps && n_deps ? KILN_OK : kiln_errorf(KILN_ERR_OOM, "out of memory");
    if (!st) st = layer_deps(p, n, deps, n_deps);
    for (int l = 0; l < n && !st; l++) {
        /* node -1: the copies of constant graph outputs that no node produces */
        const kiln_node *nd = p[l].node >= 0 ? &g->nodes[p[l].node] : NULL;
        kiln_bundle_layer_value vals[64];
        char names[64][32];
        int nv = 0, n_out = nd ? nd->n_outputs : g->n_outputs;
        for (int i = 0; i < n_out && nv < 64; i++) {
            int v = nd ? nd->outputs[i] : g->outputs[i];
            if (!nd && v >= 0 && !g->values[v].data) continue;
            uint64_t at = 0;
            if (v < 0) continue;
            const kiln_value *gv = &g->values[v];
            kiln_arg_kind k = value_place(g, v, &at);
            if ((k != KILN_ARG_ARENA && k != KILN_ARG_INPUT && k != KILN_ARG_OUTPUT) || gv->rank < 0 ||
                !kiln_value_is_static(gv))
                continue;
            kiln_bundle_layer_value *e = &vals[nv];
            memset(e, 0, sizeof *e);
            snprintf(names[nv], sizeof names[nv], "value_%d", v);
            e->name = gv->name && *gv->name ? gv->name : names[nv];
            e->dtype = gv->dtype;
            e->rank = gv->rank;
            memcpy(e->dims, gv->dims, sizeof(int64_t) * (size_t)gv->rank);
            e->where = k;
            e->at = at;
            nv++;
        }
        char name[320], op[160];
        if (nd) {
            group_name(g, nd, name, sizeof name);
            layer_op(nd, op, sizeof op);
        } else {
            snprintf(name, sizeof name, "constant_outputs");
            snprintf(op, sizeof op, "Constant");
        }
        /* unnamed nodes can share a group name ("conv_epilogue_"): name the layer by its output too */
        bool dup = false;
        for (int k = 0; k < c->b->n_layers && !dup; k++) dup = !strcmp(c->b->layers[k].name, name);
        if (dup && nv) {
            size_t len = strlen(name);
            snprintf(name + len, sizeof name - len, "@%s", vals[0].name);
        }
        st = kiln_bundle_add_layer(c->b, name, op, p[l].first, p[l].count, vals, nv, deps[l], n_deps[l]);
    }
    for (int l = 0; deps && l < n; l++) free(deps[l]);
    free(deps);
    free(n_deps);
    return st;
}

kiln_status kiln_codegen_compile(const kiln_codegen_opts *o, const char *name, const char *source,
                                 kiln_nvrtc_output *out) {
    kiln_nvrtc_request rq = {.name = name,
                             .source = source,
                             .headers = kiln_kernel_headers,
                             .n_headers = kiln_kernel_header_count,
                             .archs = o->archs,
                             .n_archs = o->n_archs,
                             .ptx = o->ptx};
    return kiln_nvrtc_compile(&rq, out);
}

void kiln_codegen_base_free(kiln_codegen_base *bs) {
    if (!bs) return;
    for (int i = 0; i < bs->n; i++) {
        free(bs->keys ? bs->keys[i] : NULL);
        free(bs->names ? bs->names[i] : NULL);
    }
    free(bs->keys);
    free(bs->names);
    free(bs->source);
    for (int i = 0; i < bs->n_images; i++) free(bs->images[i].data);
    free(bs->images);
    memset(bs, 0, sizeof *bs);
}

/* kiln_codegen_opts.base_out: this build's kernels (masked text, name) and its source */
static kiln_status base_record(const cg *c, kiln_codegen_base *bs) {
    kiln_codegen_base_free(bs);
    bs->keys = calloc((size_t)c->n_keys + 1, sizeof *bs->keys);
    bs->names = calloc((size_t)c->n_keys + 1, sizeof *bs->names);
    bs->source = strdup(c->src.s ? c->src.s : "");
    if (!bs->keys || !bs->names || !bs->source) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int i = 0; i < c->n_keys; i++, bs->n++)
        if (!(bs->keys[i] = strdup(c->kkeys[i])) || !(bs->names[i] = strdup(c->knames[i])))
            return kiln_errorf(KILN_ERR_OOM, "out of memory");
    return KILN_OK;
}

/* kiln_codegen_opts.split_base: the kernels the base has (same masked text) run from its images as
 * module 0 under its names (added here if the base has them already, else by the caller before the
 * bundle is written); the others (each one's text since the previous kernel's) are compiled as
 * module 1 after the includes. *done false (and the bundle untouched): compile the whole module
 * instead (module 1 did not compile alone). */
static kiln_status compile_split(cg *c, const kiln_codegen_base *bs, bool *done) {
    *done = false;
    if (c->src.oom || !c->src.s) return KILN_OK;
    int *at = malloc(sizeof(int) * ((size_t)c->n_keys + 1)), n_own = 0;
    sbuf own = {0};
    if (!at) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_cg_printf(&own, "%.*s", (int)c->prelude_len, c->src.s);
    for (int i = 0; i < c->n_keys; i++) {
        at[i] = -1;
        for (int j = 0; j < bs->n && at[i] < 0; j++)
            if (!strcmp(bs->keys[j], c->kkeys[i])) at[i] = j;
        if (at[i] >= 0) continue;
        const size_t from = i ? c->kend[i - 1] : c->prelude_len;
        kiln_cg_printf(&own, "%.*s", (int)(c->kend[i] - from), c->src.s + from);
        n_own++;
    }
    kiln_status st = own.oom ? kiln_errorf(KILN_ERR_OOM, "out of memory") : KILN_OK;
    kiln_nvrtc_output out;
    memset(&out, 0, sizeof out);
    if (!st && n_own) {
        if (kiln_codegen_compile(c->o, "split", own.s, &out) != KILN_OK) { /* (not alone: the whole module then) */
            kiln_nvrtc_output_free(&out);
            free(own.s);
            free(at);
            return KILN_OK;
        }
    }
    for (int q = 0; !st && q < c->b->n_kernels; q++) {
        kiln_bundle_kernel *kn = &c->b->kernels[q];
        int i = 0;
        while (i < c->n_keys && strcmp(c->knames[i], kn->function)) i++;
        if (i == c->n_keys) {
            st = kiln_errorf(KILN_ERR_INTERNAL, "split build: kernel '%s' has no text", kn->function);
        } else if (at[i] >= 0) {
            char *f = strdup(bs->names[at[i]]);
            if (!f) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
            else free(kn->function), kn->function = f, kn->module = 0;
        } else {
            kn->module = 1;
        }
    }
    for (int i = 0; !st && i < bs->n_images; i++)
        st = kiln_bundle_add_image(c->b, bs->images[i].is_ptx ? KILN_IMAGE_PTX : KILN_IMAGE_CUBIN, bs->images[i].arch, 0,
                                   bs->images[i].data, bs->images[i].size);
    for (int i = 0; !st && i < out.n_images; i++)
        st = kiln_bundle_add_image(c->b, out.images[i].is_ptx ? KILN_IMAGE_PTX : KILN_IMAGE_CUBIN, out.images[i].arch, 1,
                                   out.images[i].data, out.images[i].size);
    kiln_nvrtc_output_free(&out);
    free(own.s);
    free(at);
    *done = !st;
    return st;
}

kiln_status kiln_codegen_build(const kiln_graph *g, const kiln_codegen_opts *o, kiln_bundle *b, char **cuda_source) {
    if (cuda_source) *cuda_source = NULL;
    if (!g || !o || !b) return kiln_errorf(KILN_ERR_INVALID_ARG, "codegen: graph, options and bundle are required");
    if (o->precision != KILN_PREC_FP32 && o->precision != KILN_PREC_TF32 && o->precision != KILN_PREC_FP16)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "precision int8 is not implemented yet (fp32, tf32, fp16)");
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
    c.anc_node = -1;
    c.weight = malloc(sizeof(int64_t) * (size_t)(g->n_values + 1));
    kiln_status st = c.weight ? KILN_OK : kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int v = 0; v < g->n_values; v++) c.weight[v] = -1;
    if (!st) st = add_io(g, b);
    kiln_cg_printf(&c.src,
              "// Generated by kiln %s from graph '%s': one module, one kernel per launch group.\n"
              "// Templates: kernels/*.cuh (embedded in kiln). Arguments come from the bundle's launch plan.\n"
              "#include \"conv.cuh\"\n#include \"copy.cuh\"\n#include \"elementwise.cuh\"\n#include \"gemm.cuh\"\n#include \"gemv.cuh\"\n"
              "#include \"pool.cuh\"\n#include \"softmax.cuh\"\n"
              "#include \"reduce.cuh\"\n#include \"gather.cuh\"\n#include \"convtranspose.cuh\"\n"
              "#include \"resize.cuh\"\n#include \"conv_nhwc.cuh\"\n",
              KILN_VERSION_STRING, g->name ? g->name : "");
    c.prelude_len = c.src.len;

    /* every node; unsupported ones are collected into one message */
    pending_layer *layers = calloc((size_t)g->n_nodes + 1, sizeof *layers);
    int n_layers = 0;
    if (!layers && !st) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    char unsupported[UNSUPPORTED_LIST] = "";
    size_t ulen = 0;
    int n_bad = 0, n_listed = 0;
    for (int ni = 0; !st && ni < g->n_nodes; ni++) {
        const kiln_node *n = &g->nodes[ni];
        if (n->dead) continue;
        c.node = n;
        group_name(g, n, c.group, sizeof c.group);
        uint32_t first = (uint32_t)b->n_launches;
        c.n_node_alloc = 0;
        kiln_status ns = kiln_cg_emit_with_layout(&c, n, emit_node);
        if (ns == KILN_OK && (uint32_t)b->n_launches > first) { /* views without a copy make no layer */
            pending_layer *pl = &layers[n_layers++];
            pl->node = ni;
            pl->first = first;
            pl->count = (uint32_t)b->n_launches - first;
            ns = value_regions(g, n->inputs, n->n_inputs, &pl->rd, &pl->n_rd);
            if (!ns) ns = value_regions(g, n->outputs, n->n_outputs, &pl->wr, &pl->n_wr);
            if (!ns && c.n_node_alloc) { /* this node's own scratch (kiln_cg_scratch) */
                region *wr = realloc(pl->wr, sizeof *wr * (size_t)(pl->n_wr + c.n_node_alloc));
                if (!wr) ns = kiln_errorf(KILN_ERR_OOM, "out of memory");
                else {
                    pl->wr = wr;
                    for (int k = 0; k < c.n_node_alloc; k++) {
                        const uint64_t lo = kiln_cg_scratch_base(&c) + c.node_alloc[k][0];
                        pl->wr[pl->n_wr++] = (region){0, lo, lo + c.node_alloc[k][1]};
                    }
                }
            }
            if (!ns) ns = cover_launch_args(b, pl);
        }
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
    if (!st && !n_bad && layers) { /* constant graph outputs no node produces: one layer of copies */
        uint32_t first = (uint32_t)b->n_launches;
        st = kiln_cg_emit_const_outputs(&c);
        if (!st && (uint32_t)b->n_launches > first) {
            pending_layer *pl = &layers[n_layers++]; /* layers has n_nodes + 1 slots */
            pl->node = -1;
            pl->first = first;
            pl->count = (uint32_t)b->n_launches - first;
            st = value_regions(g, NULL, 0, &pl->rd, &pl->n_rd);
            if (!st) st = value_regions(g, g->outputs, g->n_outputs, &pl->wr, &pl->n_wr);
            if (!st) st = cover_launch_args(b, pl);
        }
    }
    if (!st && n_bad)
        st = kiln_errorf(KILN_ERR_UNSUPPORTED, "%d node%s cannot run on the GPU yet:%s%s", n_bad, n_bad == 1 ? "" : "s",
                         unsupported, n_listed < n_bad ? "\n  ..." : "");
    if (!st && (c.src.oom || c.tiles.oom)) st = kiln_errorf(KILN_ERR_OOM, "out of memory");

    if (!st && (g->arena_bytes > 0 || c.scratch_bytes))
        st = kiln_bundle_set_arena(b, c.scratch_bytes ? kiln_cg_scratch_base(&c) + c.scratch_bytes : (uint64_t)g->arena_bytes, 256);
    for (int v = 0; !st && v < g->n_values; v++) {
        const kiln_value *gv = &g->values[v];
        if (gv->arena_offset < 0 || gv->alias_of >= 0 || gv->data || kiln_cg_io_index(g->outputs, g->n_outputs, v) >= 0 ||
            kiln_cg_io_index(g->inputs, g->n_inputs, v) >= 0)
            continue;
        int64_t e = kiln_cg_numel(gv) * (int64_t)kiln_dtype_size(gv->dtype);
        if (e > 0) st = kiln_bundle_add_buffer(b, gv->name, (uint64_t)gv->arena_offset, (uint64_t)e);
    }
    if (!st && c.tiles.len) st = kiln_bundle_set_meta(b, "tiles", c.tiles.s);
    /* every kernel waits for its predecessor (kiln::pdl_enter): the runtime may launch it early */
    if (!st && b->n_kernels) st = kiln_bundle_set_meta(b, "pdl", "1");
    if (!st && n_layers) st = add_layers(&c, layers, n_layers);
    for (int l = 0; layers && l < n_layers; l++) {
        free(layers[l].rd);
        free(layers[l].wr);
    }
    free(layers);

    if (!st && o->base_out) st = base_record(&c, o->base_out);
    bool split_done = false;
    if (!st && o->compile && o->split_base) st = compile_split(&c, o->split_base, &split_done);
    if (!st && o->compile && !split_done) {
        kiln_nvrtc_output out;
        st = kiln_codegen_compile(o, g->name && *g->name ? g->name : "model", c.src.s, &out);
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
    free(c.kend);
    free(c.weight);
    free(c.slots);
    free(c.anc);
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
