/*
 * cg_internal.h — what codegen's emitter files share (not a public header).
 *
 * codegen.c walks the graph and calls one emitter per node kind; each emitter lives in the
 * file of its family (cg_conv.c: Conv/Gemm/MatMul with their fused epilogues, cg_pool.c:
 * pooling and softmax, cg_copy.c: concat, data movement and views, cg_elementwise.c: the
 * elementwise expression emitter). An emitter appends CUDA C to c->src, dedupes the
 * function (kiln_cg_dedupe_kernel) and records its launch (kiln_cg_launch). Adding a kernel
 * family: a new cg_<family>.c, its emitter declared here, one case in codegen.c's dispatcher.
 */
#pragma once

#include "codegen/codegen.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#define BLOCK_1D 256
#define MAX_GRID_1D (1 << 20) /* grid-stride kernels need no more blocks than this */

/* A growing string; `oom` sticks once an allocation fails (checked once at the end). */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

typedef struct cg {
    const kiln_graph *g;
    const kiln_codegen_opts *o;
    kiln_bundle *b;
    sbuf src;
    sbuf tiles;       /* "kernel=tiles;" for the tiles metadata */
    int64_t *weight;  /* per value: offset in the weights blob, -1 not added */
    int n_kernels;
    int n_sync;       /* KILN_ARG_SYNC regions handed out (kiln_cg_sync_arg) */
    size_t kstart;    /* where the kernel being emitted starts in src */
    char **kkeys;     /* per emitted function: its text without the comment, name as "@K@" */
    char **knames;    /* per emitted function: its name */
    size_t *kend;     /* per emitted function: where its text ends in src (split builds) */
    int n_keys, cap_keys;
    size_t prelude_len; /* the includes every module starts with */
    const kiln_node *node; /* the node being emitted (for names) */
    char group[256];       /* its group name */
    /* Node scratch (kiln_cg_scratch), after the memory plan's arena: slots [base, base + size)
     * reused by a later node only when the slot's last user is an ancestor of it in the graph
     * (so the reuse adds no ordering the data flow does not already impose: independent
     * branches keep separate slots and can run on separate streams). */
    struct cg_scratch_slot {
        uint64_t base, size;
        int owner; /* graph node index of its last user */
    } *slots;
    int n_slots, cap_slots;
    uint64_t scratch_bytes;  /* end of the scratch slots */
    unsigned char *anc;      /* per graph node: an ancestor of anc_node */
    int anc_node;            /* the node anc describes, -1 none */
    uint64_t node_alloc[8][2]; /* the current node's scratch ranges (offsets after the base, bytes) */
    int n_node_alloc;
    /* Layout conversions at region borders (cg_copy.c kiln_cg_emit_with_layout): while the
     * node is emitted, value ovr_v[i] is read from / written to ovr_arg[i] (scratch) and
     * kiln_cg_val() returns ovr_val[i], a copy that names the other layout. */
    int n_ovr;
    int ovr_v[8];
    kiln_bundle_arg ovr_arg[8];
    kiln_value ovr_val[8];
} cg;

void kiln_cg_vprintf(sbuf *b, const char *fmt, va_list ap);
void kiln_cg_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* x as a CUDA float literal (inf/nan spelled as bit casts). */
const char *kiln_cg_flit(char *buf, size_t len, float x);
int kiln_cg_io_index(const int *ids, int n, int v);
/* Kernel arguments: a constant (added to the weights blob once), a value (binding or arena),
 * bytes copied into the plan (shape structs), and an absent pointer. */
kiln_status kiln_cg_weight_arg(cg *c, int v, kiln_bundle_arg *a);
kiln_status kiln_cg_value_arg(cg *c, int v, kiln_bundle_arg *a);
kiln_status kiln_cg_bytes_arg(cg *c, const void *data, uint64_t size, kiln_bundle_arg *a);
extern const kiln_bundle_arg kiln_cg_null_arg;
void kiln_cg_kernel_name(cg *c, const char *what, char *buf, size_t len);
/* Whether the build has an sm_90a image (wgmma and TMA exist only there). */
bool kiln_cg_has_sm90a(const cg *c);
/* Emits the function started at c->kstart once: an identical earlier one is reused. */
kiln_status kiln_cg_dedupe_kernel(cg *c, const char **fn);
kiln_status kiln_cg_launch(cg *c, const char *fn, uint64_t gx, uint64_t gy, uint64_t gz, uint32_t threads,
                           const kiln_bundle_arg *args, uint32_t n_args);
/* The same with `shared_bytes` of dynamic shared memory (over 48 KiB: the runtime opts in). */
kiln_status kiln_cg_launch_smem(cg *c, const char *fn, uint64_t gx, uint64_t gy, uint64_t gz, uint32_t threads,
                                uint32_t shared_bytes, const kiln_bundle_arg *args, uint32_t n_args);
/* Picks one of n candidate configurations (names: short, stable strings such as
 * "128x128x32s4w8k1") for a kernel whose generated code is fully determined by `signature`
 * (family, shape, dtypes, epilogue: no value names). Precedence: the node's "kiln_tile"
 * attribute, then o->tune_lookup, then `heuristic`. Records the choice (o->tune_record; the
 * caller adds its `tiles` metadata entry). Returns the chosen index. */
/* `bytes` of arena memory that only the current node's launches use (split-K partial sums):
 * placed after the memory plan's arena, not initialized; a later node that descends from this
 * one may reuse it (nothing may be left there for another node). */
kiln_status kiln_cg_scratch(cg *c, uint64_t bytes, kiln_bundle_arg *a);
/* A KILN_ARG_SYNC argument: a zeroed region of KILN_SYNC_REGION_BYTES of its own, per context,
 * which the launched kernel must leave zero (cross-block flags). */
kiln_status kiln_cg_sync_arg(cg *c, kiln_bundle_arg *a);
uint64_t kiln_cg_scratch_base(const cg *c); /* where scratch starts in the arena */
int kiln_cg_choose(cg *c, const char *signature, const char *const *names, int n, int heuristic);
uint64_t kiln_cg_grid_1d(int64_t total);
const kiln_value *kiln_cg_val(const cg *c, int v);
int64_t kiln_cg_numel(const kiln_value *v);
bool kiln_cg_is_f32(const kiln_value *v);
/* Leading/trailing pads of a window op (auto_pad resolved as shape inference does). */
kiln_status kiln_cg_window_pads(const kiln_node *n, int nsp, const int64_t *in, const int64_t *k,
                                const int64_t *s, const int64_t *d, int64_t *pb, int64_t *pe);
/* An ints attribute of `count` values, or `def` for each when absent. */
void kiln_cg_ints_or(const kiln_node *n, const char *name, int count, int64_t def, int64_t *out);

/* Emitters, one per node kind (see codegen.c's dispatcher). */
kiln_status kiln_cg_emit_conv(cg *c, const kiln_node *n);
kiln_status kiln_cg_emit_gemm(cg *c, const kiln_node *n);
/* cg_conv_nhwc.c: the fp16 NHWC implicit GEMM; *handled = false (KILN_OK) when it does not apply. */
kiln_status kiln_cg_emit_conv_nhwc(cg *c, const kiln_node *n, bool *handled);
/* cg_conv_pool.c: a conv_epilogue group with pool = "max" (passes/fuse_conv_pool.c), one kernel. */
kiln_status kiln_cg_emit_conv_pool(cg *c, const kiln_node *n);
/* cg_conv_dw.c: depthwise convolutions (group == C == K); *handled = false when it does not apply. */
kiln_status kiln_cg_emit_conv_dw(cg *c, const kiln_node *n, bool *handled);
/* cg_conv.c, for other conv emitters: a Conv's (or conv_epilogue group's) anchor node and outer
 * value ids (bias, residual: -1 when absent), and the epilogue struct `epi` with
 * apply(bias, res, ch, o, v) (bias_expr: the bias term, NULL for none). */
typedef struct kiln_cg_conv_operands {
    const kiln_node *an;
    int x, w, bias, residual, y;
} kiln_cg_conv_operands;
kiln_status kiln_cg_conv_operands_get(cg *c, const kiln_node *n, kiln_cg_conv_operands *o);
/* The epilogue's bias expressions: one value for every channel, or the channel's own (this one also
 * gets E::apply_b, the bias value given, for kernels that load it ahead; kernels/conv_wgmma.cuh). */
#define KILN_CG_BIAS_SCALAR "kiln::to_f32(bias[0])"
#define KILN_CG_BIAS_CH "kiln::to_f32(bias[ch])"
kiln_status kiln_cg_conv_emit_epilogue(cg *c, const kiln_node *n, const char *epi, const char *bias_expr);
kiln_status kiln_cg_emit_pool(cg *c, const kiln_node *n);
kiln_status kiln_cg_emit_softmax(cg *c, const kiln_node *n);
kiln_status kiln_cg_emit_concat(cg *c, const kiln_node *n);
kiln_status kiln_cg_emit_data_movement(cg *c, const kiln_node *n);
kiln_status kiln_cg_emit_view(cg *c, const kiln_node *n);
/* cg_copy.c: emits node n with emit(), converting the inputs its "kiln_convert_input" mask names
 * into the node's layout first (scratch copies) and its "kiln_convert_output" outputs (graph
 * outputs, stored NCHW) from the node's NHWC afterwards. */
kiln_status kiln_cg_emit_with_layout(cg *c, const kiln_node *n, kiln_status (*emit)(cg *, const kiln_node *));
/* The node runs in NHWC (select-layout's "kiln_layout" attribute). */
bool kiln_cg_node_nhwc(const kiln_node *n);
/* Element strides of v's storage for its logical (NCHW) dims, 0 on dims of size 1; right-
 * aligned to rank R (a lower-rank operand gets 0s in front). */
void kiln_cg_storage_strides(const kiln_value *v, int R, int64_t *strides);
kiln_status kiln_cg_emit_elementwise(cg *c, const kiln_node *n);
kiln_status kiln_cg_emit_reduce(cg *c, const kiln_node *n);  /* cg_reduce.c: Reduce*, ArgMax, ArgMin */
kiln_status kiln_cg_emit_reduction_group(cg *c, const kiln_node *n); /* cg_reduce.c: fused kind "reduction" */
kiln_status kiln_cg_emit_conv_transpose(cg *c, const kiln_node *n); /* cg_convtranspose.c */
kiln_status kiln_cg_emit_resize(cg *c, const kiln_node *n);  /* cg_resize.c: Resize (and imported Upsample) */
kiln_status kiln_cg_emit_norm(cg *c, const kiln_node *n);    /* cg_reduce.c: Layer-, RMS-, InstanceNormalization */
kiln_status kiln_cg_emit_cumsum(cg *c, const kiln_node *n);  /* cg_reduce.c: CumSum */
kiln_status kiln_cg_emit_lrn(cg *c, const kiln_node *n);     /* cg_reduce.c: LRN */
kiln_status kiln_cg_emit_topk(cg *c, const kiln_node *n);    /* cg_reduce.c: TopK */
kiln_status kiln_cg_emit_einsum(cg *c, const kiln_node *n);  /* cg_reduce.c: Einsum */
kiln_status kiln_cg_emit_loss(cg *c, const kiln_node *n);    /* cg_reduce.c: NegativeLogLikelihood-, SoftmaxCrossEntropyLoss */
kiln_status kiln_cg_emit_gather(cg *c, const kiln_node *n);  /* cg_index.c: Gather, GatherElements */
kiln_status kiln_cg_emit_index_misc(cg *c, const kiln_node *n); /* cg_index.c: Trilu, Tile, Depth/SpaceToDepth, Range */
bool kiln_cg_node_is_constant(const cg *c, const kiln_node *n); /* cg_index.c: every output known at build time */
kiln_status kiln_cg_emit_scatter(cg *c, const kiln_node *n);    /* cg_index.c: ScatterElements, ScatterND */
kiln_status kiln_cg_emit_rotary(cg *c, const kiln_node *n);     /* cg_index.c: RotaryEmbedding */
kiln_status kiln_cg_emit_const_node(cg *c, const kiln_node *n); /* cg_index.c: copy its constant graph outputs */
kiln_status kiln_cg_emit_const_outputs(cg *c);                  /* cg_index.c: those no live node produces */
kiln_status kiln_cg_emit_build_time(cg *c, const kiln_node *n); /* cg_index.c: Shape, Size, constant-input nodes */
/* The CUDA C type of a dtype's elements ("float", "__half", "long long"...), NULL if none. */
const char *kiln_cg_ctype(kiln_dtype dt);
