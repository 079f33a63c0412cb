/*
 * codegen.c — CUDA C for every kernel of an optimized graph, and the bundle around it
 * (interface and scope: codegen.h).
 *
 * Structure. One pass over the top-level nodes; each node's emitter appends readable CUDA C
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
#include "codegen/codegen.h"

#include "codegen/nvrtc.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_1D 256
#define MAX_GRID_1D (1 << 20) /* grid-stride kernels need no more blocks than this */
#define UNSUPPORTED_LIST 768  /* bytes of the error message for the unsupported-node list */

/* ------------------------------------------------------------- string buffer -- */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_vprintf(sbuf *b, const char *fmt, va_list ap) {
    if (b->oom) return;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

/* A float as a CUDA literal that reads back exactly ("1.0f", "0.100000001f", infinities). */
static const char *flit(char *buf, size_t len, float x) {
    if (isnan(x)) snprintf(buf, len, "__int_as_float(0x7fc00000)");
    else if (isinf(x)) snprintf(buf, len, "__int_as_float(%s)", x > 0 ? "0x7f800000" : "(int)0xff800000");
    else {
        char t[48];
        snprintf(t, sizeof t, "%.9g", (double)x);
        bool has_point = strpbrk(t, ".e") != NULL;
        snprintf(buf, len, "%s%sf", t, has_point ? "" : ".0");
    }
    return buf;
}

/* ----------------------------------------------------------------- context -- */
typedef struct cg {
    const kiln_graph *g;
    const kiln_codegen_opts *o;
    kiln_bundle *b;
    sbuf src;
    sbuf tiles;       /* "kernel=tiles;" for the tiles metadata */
    int64_t *weight;  /* per value: offset in the weights blob, -1 not added */
    int n_kernels;
    size_t kstart;    /* where the kernel being emitted starts in src */
    char **kkeys;     /* per emitted function: its text without the comment, name as "@K@" */
    char **knames;    /* per emitted function: its name */
    int n_keys, cap_keys;
    const kiln_node *node; /* the node being emitted (for names) */
    char group[256];       /* its group name */
} cg;

static int io_index(const int *ids, int n, int v) {
    for (int i = 0; i < n; i++)
        if (ids[i] == v) return i;
    return -1;
}

static kiln_status weight_arg(cg *c, int v, kiln_bundle_arg *a) {
    const kiln_value *val = &c->g->values[v];
    if (c->weight[v] < 0) {
        uint64_t off;
        const kiln_tensor *t = val->data;
        kiln_status st = kiln_bundle_add_weight(c->b, val->name && *val->name ? val->name : "const", t->dtype,
                                                t->rank, t->dims, t->data, t->nbytes, &off);
        if (st) return st;
        c->weight[v] = (int64_t)off;
    }
    *a = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, (uint64_t)c->weight[v]};
    return KILN_OK;
}

/* Where value v's bytes are at run time (see the header comment). */
static kiln_status value_arg(cg *c, int v, kiln_bundle_arg *a) {
    const kiln_graph *g = c->g;
    int r = v;
    for (int steps = 0; steps <= g->n_values; steps++) {
        int k;
        if ((k = io_index(g->outputs, g->n_outputs, r)) >= 0) {
            *a = (kiln_bundle_arg){KILN_ARG_OUTPUT, 8, (uint64_t)k};
            return KILN_OK;
        }
        if ((k = io_index(g->inputs, g->n_inputs, r)) >= 0) {
            *a = (kiln_bundle_arg){KILN_ARG_INPUT, 8, (uint64_t)k};
            return KILN_OK;
        }
        if (g->values[r].data) return weight_arg(c, r, a);
        if (g->values[r].alias_of < 0) break;
        r = g->values[r].alias_of;
    }
    if (g->values[r].arena_offset < 0)
        return kiln_errorf(KILN_ERR_INTERNAL, "value '%s' has no place in the memory plan (run plan-memory first)",
                           g->values[v].name);
    *a = (kiln_bundle_arg){KILN_ARG_ARENA, 8, (uint64_t)g->values[r].arena_offset};
    return KILN_OK;
}

static const kiln_bundle_arg null_arg = {KILN_ARG_SCALAR, 8, 0};

static kiln_status bytes_arg(cg *c, const void *data, uint64_t size, kiln_bundle_arg *a) {
    uint64_t off;
    kiln_status st = kiln_bundle_add_const(c->b, data, size, &off);
    if (st) return st;
    *a = (kiln_bundle_arg){KILN_ARG_BYTES, (uint32_t)size, off};
    return KILN_OK;
}

/* A fresh kernel name for the current node: k<N>_<what>. */
static void kernel_name(cg *c, const char *what, char *buf, size_t len) {
    snprintf(buf, len, "k%d_%s", c->n_kernels++, what);
    c->kstart = c->src.len;
}

/* Kernels with the same code (same template, tiles and epilogue; shapes are arguments) are
 * emitted once: NVRTC time grows with every instantiation, and ResNet-50's 56 launches need
 * only a handful. The text since kernel_name() is compared without its first comment line
 * and with its name masked; a repeat is cut from the source and *fn becomes the first one's
 * name. */
static kiln_status dedupe_kernel(cg *c, const char **fn) {
    if (c->src.oom || c->kstart > c->src.len) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    const char *text = c->src.s + c->kstart;
    const char *body = strchr(text + 1, '\n'); /* after "\n// comment" */
    body = body ? body + 1 : text;
    size_t nl = strlen(*fn), cap = strlen(body) + 1;
    char *key = malloc(cap);
    if (!key) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    size_t k = 0;
    for (const char *p = body; *p;) {
        if (!strncmp(p, *fn, nl)) {
            memcpy(key + k, "@K@", 3);
            k += 3;
            p += nl;
        } else {
            key[k++] = *p++;
        }
    }
    key[k] = 0;
    for (int i = 0; i < c->n_keys; i++)
        if (!strcmp(c->kkeys[i], key)) {
            free(key);
            /* keep the comment line so a reader sees which group runs the shared kernel */
            const char *eol = strchr(text + 1, '\n');
            size_t keep = eol ? (size_t)(eol - text) : 0;
            c->src.len = c->kstart + keep;
            c->src.s[c->src.len] = 0;
            sb_printf(&c->src, " -> runs %s\n", c->knames[i]);
            *fn = c->knames[i];
            return KILN_OK;
        }
    if (c->n_keys == c->cap_keys) {
        int cap2 = c->cap_keys ? 2 * c->cap_keys : 32;
        char **a = realloc(c->kkeys, sizeof(char *) * (size_t)cap2), **b;
        if (a) c->kkeys = a;
        b = a ? realloc(c->knames, sizeof(char *) * (size_t)cap2) : NULL;
        if (b) c->knames = b;
        if (!a || !b) {
            free(key);
            return kiln_errorf(KILN_ERR_OOM, "out of memory");
        }
        c->cap_keys = cap2;
    }
    char *name = strdup(*fn);
    if (!name) {
        free(key);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    c->kkeys[c->n_keys] = key;
    c->knames[c->n_keys++] = name;
    *fn = name;
    return KILN_OK;
}

static kiln_status launch(cg *c, const char *fn, uint64_t gx, uint64_t gy, uint64_t gz, uint32_t threads,
                          const kiln_bundle_arg *args, uint32_t n_args) {
    if (gx > 0x7fffffffu || gy > 65535 || gz > 65535)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "grid %llux%llux%llu is too large", (unsigned long long)gx,
                           (unsigned long long)gy, (unsigned long long)gz);
    uint32_t k;
    kiln_status st = dedupe_kernel(c, &fn);
    if (!st) st = kiln_bundle_add_kernel(c->b, fn, 0, c->group, &k);
    if (st) return st;
    uint32_t grid[3] = {(uint32_t)(gx ? gx : 1), (uint32_t)(gy ? gy : 1), (uint32_t)(gz ? gz : 1)};
    uint32_t block[3] = {threads, 1, 1};
    return kiln_bundle_add_launch(c->b, k, grid, block, 0, 0, args, n_args);
}

static uint64_t grid_1d(int64_t total) {
    int64_t blocks = (total + BLOCK_1D - 1) / BLOCK_1D;
    if (blocks < 1) blocks = 1;
    return (uint64_t)(blocks > MAX_GRID_1D ? MAX_GRID_1D : blocks);
}

static const kiln_value *val(const cg *c, int v) { return &c->g->values[v]; }

static int64_t numel(const kiln_value *v) {
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++) n *= v->dims[i];
    return n;
}

static bool is_f32(const kiln_value *v) { return v->dtype == KILN_F32; }

/* ------------------------------------------------------------- activations -- */
/* One activation of passes/fuse_epilogue.c as a statement on `v`. */
static kiln_status emit_activation(sbuf *s, const char *name, float alpha, float beta) {
    char a[64], b[64];
    flit(a, sizeof a, alpha);
    flit(b, sizeof b, beta);
    if (!strcmp(name, "none")) return KILN_OK;
    if (!strcmp(name, "relu")) sb_printf(s, "        v = fmaxf(v, 0.0f);\n");
    else if (!strcmp(name, "clip")) sb_printf(s, "        v = fminf(fmaxf(v, %s), %s);\n", a, b);
    else if (!strcmp(name, "leaky_relu")) sb_printf(s, "        v = v < 0.0f ? %s * v : v;\n", a);
    else if (!strcmp(name, "sigmoid")) sb_printf(s, "        v = 1.0f / (1.0f + expf(-v));\n");
    else if (!strcmp(name, "tanh")) sb_printf(s, "        v = tanhf(v);\n");
    else if (!strcmp(name, "hard_sigmoid")) sb_printf(s, "        v = fmaxf(0.0f, fminf(1.0f, %s * v + %s));\n", a, b);
    else if (!strcmp(name, "hard_swish"))
        sb_printf(s, "        v = v * fmaxf(0.0f, fminf(1.0f, v * (1.0f / 6.0f) + 0.5f));\n");
    else if (!strcmp(name, "gelu")) sb_printf(s, "        v = 0.5f * v * (1.0f + erff(v * 0.707106781f));\n");
    else if (!strcmp(name, "gelu_tanh"))
        sb_printf(s, "        v = 0.5f * v * (1.0f + tanhf(0.797884561f * (v + 0.044715f * v * v * v)));\n");
    else if (!strcmp(name, "elu")) sb_printf(s, "        v = v < 0.0f ? %s * (expf(v) - 1.0f) : v;\n", a);
    else if (!strcmp(name, "silu")) sb_printf(s, "        v = v / (1.0f + expf(-v));\n");
    else return kiln_errorf(KILN_ERR_UNSUPPORTED, "activation '%s'", name);
    return KILN_OK;
}

static kiln_status emit_act_attr(sbuf *s, const kiln_node *n, const char *prefix) {
    char ka[64], kb[64];
    snprintf(ka, sizeof ka, "%s_alpha", prefix);
    snprintf(kb, sizeof kb, "%s_beta", prefix);
    return emit_activation(s, kiln_attr_str(n, prefix, "none"), kiln_attr_float(n, ka, 0.0f),
                           kiln_attr_float(n, kb, 0.0f));
}

/* ------------------------------------------------------- anchor + epilogue -- */
/* What a Conv/Gemm/MatMul kernel computes, from a plain node or a *_epilogue group. */
typedef struct anchor {
    const kiln_node *an;    /* the anchor node (in the body for a group) */
    const kiln_graph *ag;   /* the graph the anchor lives in */
    int x, w;               /* outer value ids of the anchor's data inputs (A, B for gemm) */
    int bias;               /* outer value id, -1 none */
    bool bias_is_gemm_c;    /* Gemm's C (scaled by beta) rather than an Add constant */
    int residual;           /* outer value id, -1 none */
    const kiln_node *fused; /* the group node (activation attributes), NULL for plain */
    int y;                  /* outer output value */
} anchor;

/* The outer value id of body value bv (a body input), -1 when bv is computed in the body. */
static int outer_of(const kiln_node *n, int bv) {
    for (int i = 0; i < n->body->n_inputs; i++)
        if (n->body->inputs[i] == bv) return n->inputs[i];
    return -1;
}

static kiln_status get_anchor(cg *c, const kiln_node *n, anchor *a) {
    memset(a, 0, sizeof *a);
    a->bias = a->residual = -1;
    a->y = n->outputs[0];
    if (n->op != KILN_OP_Fused) {
        a->an = n;
        a->ag = c->g;
        a->x = n->inputs[0];
        a->w = n->inputs[1];
        if (n->n_inputs > 2 && n->inputs[2] >= 0) {
            a->bias = n->inputs[2];
            a->bias_is_gemm_c = n->op == KILN_OP_Gemm;
        }
        return KILN_OK;
    }
    const kiln_graph *body = n->body;
    if (!body || n->n_outputs != 1) return kiln_errorf(KILN_ERR_UNSUPPORTED, "a fused group with several outputs");
    a->fused = n;
    a->ag = body;
    const char *anchor_op = kiln_attr_str(n, "anchor", "");
    for (int i = 0; i < body->n_nodes && !a->an; i++) {
        const kiln_node *bn = &body->nodes[i];
        if (!strcmp(kiln_op_table[bn->op].onnx_type, anchor_op)) a->an = bn;
    }
    if (!a->an) return kiln_errorf(KILN_ERR_UNSUPPORTED, "fused group without its '%s' anchor", anchor_op);
    a->x = outer_of(n, a->an->inputs[0]);
    a->w = outer_of(n, a->an->inputs[1]);
    if (a->x < 0 || a->w < 0) return kiln_errorf(KILN_ERR_INTERNAL, "anchor inputs are not group inputs");
    int bi = (int)kiln_attr_int(n, "bias_input", -1), ri = (int)kiln_attr_int(n, "residual_input", -1);
    if (kiln_attr_int(n, "has_bias", 0) && bi >= 0 && bi < n->n_inputs) {
        a->bias = n->inputs[bi];
        a->bias_is_gemm_c = a->an->op == KILN_OP_Gemm && a->an->n_inputs > 2 &&
                            outer_of(n, a->an->inputs[2]) == a->bias;
    }
    if (kiln_attr_int(n, "has_residual", 0) && ri >= 0 && ri < n->n_inputs) a->residual = n->inputs[ri];
    return KILN_OK;
}

/* The epilogue statements after the accumulation: bias (caller's expression), activation,
 * residual, post-activation. */
static kiln_status emit_epilogue_body(cg *c, const anchor *a, const char *bias_expr) {
    kiln_status st;
    if (bias_expr) sb_printf(&c->src, "        v += %s;\n", bias_expr);
    if (a->fused && (st = emit_act_attr(&c->src, a->fused, "activation"))) return st;
    if (a->residual >= 0) sb_printf(&c->src, "        v += res[o];\n");
    if (a->fused && (st = emit_act_attr(&c->src, a->fused, "post_activation"))) return st;
    sb_printf(&c->src, "        return v;\n    }\n};\n");
    return KILN_OK;
}

static void tile_pick(int64_t M, int *bm, int *bn, int *tm, int *tn) {
    if (M >= 64) *bm = 64, *bn = 64, *tm = 4, *tn = 4;
    else if (M >= 32) *bm = 32, *bn = 64, *tm = 2, *tn = 4;
    else *bm = 16, *bn = 128, *tm = 1, *tn = 8;
}
#define TILE_BK 8

/* ----------------------------------------------------------------------- conv -- */
typedef struct conv_shape_host { /* kernels/conv.cuh conv2d_shape */
    int64_t N, C, H, W, K, P, Q, R, S, sh, sw, ph, pw, dh, dw, groups;
} conv_shape_host;

/* Leading pads of a window op, auto_pad resolved as kiln's shape inference does. */
static kiln_status window_pads(const kiln_node *n, int nsp, const int64_t *in, const int64_t *k,
                               const int64_t *s, const int64_t *d, int64_t *pb, int64_t *pe) {
    const char *ap = kiln_attr_str(n, "auto_pad", "NOTSET");
    const int64_t *pads;
    int np = kiln_attr_ints(n, "pads", &pads);
    for (int i = 0; i < nsp; i++) {
        pb[i] = np == 2 * nsp ? pads[i] : 0;
        pe[i] = np == 2 * nsp ? pads[nsp + i] : 0;
        if (!strcmp(ap, "VALID")) pb[i] = pe[i] = 0;
        else if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            int64_t out = (in[i] + s[i] - 1) / s[i], eff = (k[i] - 1) * d[i] + 1;
            int64_t total = out > 0 ? (out - 1) * s[i] + eff - in[i] : 0;
            if (total < 0) total = 0;
            pb[i] = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
            pe[i] = total - pb[i];
        } else if (*ap && strcmp(ap, "NOTSET"))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "auto_pad '%s'", ap);
    }
    return KILN_OK;
}

static void ints_or(const kiln_node *n, const char *name, int count, int64_t def, int64_t *out) {
    const int64_t *v;
    int cnt = kiln_attr_ints(n, name, &v);
    for (int i = 0; i < count; i++) out[i] = cnt == count ? v[i] : def;
}

static kiln_status emit_conv(cg *c, const kiln_node *n) {
    anchor a;
    kiln_status st = get_anchor(c, n, &a);
    if (st) return st;
    if (a.an->op != KILN_OP_Conv)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "anchor %s", kiln_op_table[a.an->op].onnx_type);
    const kiln_value *x = val(c, a.x), *w = val(c, a.w), *y = val(c, a.y);
    if (!is_f32(x) || !is_f32(w) || !is_f32(y)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "non-fp32 convolution");
    if (x->rank != 4 && x->rank != 3) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%d-D convolution", x->rank - 2);
    if (y->layout == KILN_LAYOUT_NHWC || x->layout == KILN_LAYOUT_NHWC)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout (fp32 kernels are NCHW)");
    int nsp = x->rank - 2;
    int64_t in[2], k[2], s[2], d[2], pb[2], pe[2];
    for (int i = 0; i < nsp; i++) {
        in[i] = x->dims[2 + i];
        k[i] = w->dims[2 + i];
    }
    ints_or(a.an, "strides", nsp, 1, s);
    ints_or(a.an, "dilations", nsp, 1, d);
    if ((st = window_pads(a.an, nsp, in, k, s, d, pb, pe))) return st;
    conv_shape_host sh = {.N = x->dims[0], .C = x->dims[1], .K = y->dims[1], .groups = kiln_attr_int(a.an, "group", 1)};
    if (nsp == 2) {
        sh.H = in[0], sh.W = in[1], sh.P = y->dims[2], sh.Q = y->dims[3], sh.R = k[0], sh.S = k[1];
        sh.sh = s[0], sh.sw = s[1], sh.ph = pb[0], sh.pw = pb[1], sh.dh = d[0], sh.dw = d[1];
    } else {
        sh.H = 1, sh.W = in[0], sh.P = 1, sh.Q = y->dims[2], sh.R = 1, sh.S = k[0];
        sh.sh = 1, sh.sw = s[0], sh.ph = 0, sh.pw = pb[0], sh.dh = 1, sh.dw = d[0];
    }
    if (sh.groups < 1 || sh.C % sh.groups || sh.K % sh.groups)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "group %lld", (long long)sh.groups);
    const char *bias_expr = NULL;
    if (a.bias >= 0) {
        int64_t bn = numel(val(c, a.bias));
        if (!is_f32(val(c, a.bias)) || (bn != sh.K && bn != 1))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "a bias that is not per channel");
        bias_expr = bn == 1 ? "bias[0]" : "bias[ch]";
    }
    if (a.residual >= 0 && numel(val(c, a.residual)) != numel(y))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "a residual of another shape");

    char fn[64], epi[80];
    int64_t taps = (sh.C / sh.groups) * sh.R * sh.S;
    bool direct = taps <= 32;
    kernel_name(c, direct ? "conv_direct" : "conv_igemm", fn, sizeof fn);
    snprintf(epi, sizeof epi, "%s_epilogue", fn);
    sb_printf(&c->src, "\n// %s: %s (%s), x[%lld,%lld,%lld,%lld] * w[%lld,%lld,%lld,%lld] group %lld\n", fn, c->group,
              a.fused ? "conv_epilogue" : "Conv", (long long)sh.N, (long long)sh.C, (long long)sh.H, (long long)sh.W,
              (long long)sh.K, (long long)(sh.C / sh.groups), (long long)sh.R, (long long)sh.S, (long long)sh.groups);
    sb_printf(&c->src,
              "struct %s {\n    static __device__ __forceinline__ float apply(const float *bias, const float *res, "
              "kiln::i64 ch, kiln::i64 o, float v) {\n",
              epi);
    if ((st = emit_epilogue_body(c, &a, bias_expr))) return st;
    int bm = 0, bn = 0, tm = 0, tn = 0;
    uint64_t gx, gy, gz;
    uint32_t threads;
    if (direct) {
        sb_printf(&c->src,
                  "extern \"C\" __global__ void __launch_bounds__(%d) %s(const float *x, const float *w, const float "
                  "*bias, const float *res, float *y, kiln::conv2d_shape s) {\n"
                  "    kiln::conv2d_direct<%s>({x, w, bias, res, y, s});\n}\n",
                  BLOCK_1D, fn, epi);
        gx = grid_1d(sh.N * sh.K * sh.P * sh.Q), gy = gz = 1, threads = BLOCK_1D;
        sb_printf(&c->tiles, "%s=direct;", c->group);
    } else {
        tile_pick(sh.K / sh.groups, &bm, &bn, &tm, &tn);
        threads = (uint32_t)((bm / tm) * (bn / tn));
        sb_printf(&c->src,
                  "extern \"C\" __global__ void __launch_bounds__(%u) %s(const float *x, const float *w, const float "
                  "*bias, const float *res, float *y, kiln::conv2d_shape s) {\n"
                  "    kiln::conv2d_igemm<%d, %d, %d, %d, %d, %s>({x, w, bias, res, y, s});\n}\n",
                  threads, fn, bm, bn, TILE_BK, tm, tn, epi);
        int64_t N = sh.N * sh.P * sh.Q, M = sh.K / sh.groups;
        gx = (uint64_t)((N + bn - 1) / bn), gy = (uint64_t)((M + bm - 1) / bm), gz = (uint64_t)sh.groups;
        sb_printf(&c->tiles, "%s=%dx%dx%d/%dx%d;", c->group, bm, bn, TILE_BK, tm, tn);
    }
    kiln_bundle_arg args[6];
    if ((st = value_arg(c, a.x, &args[0])) || (st = value_arg(c, a.w, &args[1]))) return st;
    if (a.bias >= 0 ? (st = value_arg(c, a.bias, &args[2])) : (args[2] = null_arg, 0)) return st;
    if (a.residual >= 0 ? (st = value_arg(c, a.residual, &args[3])) : (args[3] = null_arg, 0)) return st;
    if ((st = value_arg(c, a.y, &args[4])) || (st = bytes_arg(c, &sh, sizeof sh, &args[5]))) return st;
    return launch(c, fn, gx, gy, gz, threads, args, 6);
}

/* ------------------------------------------------------------ gemm / matmul -- */
typedef struct gemm_shape_host { /* kernels/gemm.cuh gemm_shape */
    int64_t M, N, K, sam, sak, sbk, sbn, batch_dims[4], a_batch[4], b_batch[4];
} gemm_shape_host;

/* Element strides of a broadcast batch operand: dims[0..nb) of value v (right-aligned to
 * the output's nb batch dims, padded to 4 at the front). */
static void batch_strides(const kiln_value *v, int vb, int64_t mat, const int64_t *out_b, int nb, int64_t *st) {
    int64_t stride = mat;
    for (int i = 0; i < 4; i++) st[i] = 0;
    for (int i = nb - 1, j = vb - 1; i >= 0; i--, j--) {
        int64_t dim = j >= 0 ? v->dims[j] : 1;
        st[4 - nb + i] = dim == 1 && out_b[i] != 1 ? 0 : stride;
        if (dim == 1) st[4 - nb + i] = 0;
        stride *= dim;
    }
}

static kiln_status emit_gemm(cg *c, const kiln_node *n) {
    anchor a;
    kiln_status st = get_anchor(c, n, &a);
    if (st) return st;
    const kiln_node *an = a.an;
    if (an->op != KILN_OP_Gemm && an->op != KILN_OP_MatMul)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "anchor %s", kiln_op_table[an->op].onnx_type);
    const kiln_value *A = val(c, a.x), *B = val(c, a.w), *Y = val(c, a.y);
    if (!is_f32(A) || !is_f32(B) || !is_f32(Y)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "non-fp32 matrix product");
    gemm_shape_host sh;
    memset(&sh, 0, sizeof sh);
    for (int i = 0; i < 4; i++) sh.batch_dims[i] = 1;
    float alpha = 1.0f, beta = 1.0f;
    int nb = 0;
    if (an->op == KILN_OP_Gemm) {
        if (A->rank != 2 || B->rank != 2) return kiln_errorf(KILN_ERR_UNSUPPORTED, "Gemm operands of rank != 2");
        bool ta = kiln_attr_int(an, "transA", 0) != 0, tb = kiln_attr_int(an, "transB", 0) != 0;
        alpha = kiln_attr_float(an, "alpha", 1.0f);
        beta = kiln_attr_float(an, "beta", 1.0f);
        sh.M = ta ? A->dims[1] : A->dims[0];
        sh.K = ta ? A->dims[0] : A->dims[1];
        sh.N = tb ? B->dims[0] : B->dims[1];
        sh.sam = ta ? 1 : sh.K, sh.sak = ta ? sh.M : 1;
        sh.sbk = tb ? 1 : sh.N, sh.sbn = tb ? sh.K : 1;
    } else {
        if (A->rank < 1 || B->rank < 1) return kiln_errorf(KILN_ERR_UNSUPPORTED, "MatMul of scalars");
        sh.M = A->rank >= 2 ? A->dims[A->rank - 2] : 1;
        sh.K = A->dims[A->rank - 1];
        sh.N = B->rank >= 2 ? B->dims[B->rank - 1] : 1;
        sh.sam = sh.K, sh.sak = 1, sh.sbk = sh.N, sh.sbn = 1;
        if (B->rank == 1) sh.sbk = 1;
        nb = Y->rank - (A->rank >= 2) - (B->rank >= 2);
        if (nb > 4) return kiln_errorf(KILN_ERR_UNSUPPORTED, "MatMul with more than 4 batch dims");
        for (int i = 0; i < nb; i++) sh.batch_dims[4 - nb + i] = Y->dims[i];
        batch_strides(A, A->rank - 2, sh.M * sh.K, Y->dims, nb, sh.a_batch);
        batch_strides(B, B->rank - 2, sh.K * sh.N, Y->dims, nb, sh.b_batch);
    }
    int64_t Z = 1;
    for (int i = 0; i < 4; i++) Z *= sh.batch_dims[i];
    /* bias strides over (m, n): right-aligned broadcast of the bias to the output */
    char bias_expr[160] = "";
    if (a.bias >= 0) {
        const kiln_value *bv = val(c, a.bias);
        if (!is_f32(bv)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "non-fp32 bias");
        int64_t dm = bv->rank >= 2 ? bv->dims[bv->rank - 2] : 1, dn = bv->rank >= 1 ? bv->dims[bv->rank - 1] : 1;
        for (int i = 0; i < bv->rank - 2; i++)
            if (bv->dims[i] != 1) return kiln_errorf(KILN_ERR_UNSUPPORTED, "a bias that broadcasts over the batch");
        /* a 1-D output (MatMul with a vector B) has only N = 1: its last dim is M */
        bool vec_b = an->op == KILN_OP_MatMul && B->rank == 1;
        if (vec_b) dm = dn, dn = 1;
        int64_t sm = dm == 1 ? 0 : dn, sn = dn == 1 ? 0 : 1;
        char bt[64];
        snprintf(bias_expr, sizeof bias_expr, "%s%sbias[m * %lldll + n * %lldll]",
                 a.bias_is_gemm_c && beta != 1.0f ? flit(bt, sizeof bt, beta) : "",
                 a.bias_is_gemm_c && beta != 1.0f ? " * " : "", (long long)sm, (long long)sn);
    }
    if (a.residual >= 0 && numel(val(c, a.residual)) != numel(Y))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "a residual of another shape");
    char fn[64], epi[80], al[64];
    kernel_name(c, "gemm", fn, sizeof fn);
    snprintf(epi, sizeof epi, "%s_epilogue", fn);
    sb_printf(&c->src, "\n// %s: %s (%s), M %lld N %lld K %lld, batch %lld\n", fn, c->group,
              a.fused ? "gemm_epilogue" : kiln_op_table[an->op].onnx_type, (long long)sh.M, (long long)sh.N,
              (long long)sh.K, (long long)Z);
    sb_printf(&c->src,
              "struct %s {\n    static __device__ __forceinline__ float apply(const float *bias, const float *res, "
              "kiln::i64 m, kiln::i64 n, kiln::i64 o, float v) {\n",
              epi);
    if (alpha != 1.0f) sb_printf(&c->src, "        v *= %s;\n", flit(al, sizeof al, alpha));
    if ((st = emit_epilogue_body(c, &a, a.bias >= 0 ? bias_expr : NULL))) return st;
    int bm, bn, tm, tn;
    tile_pick(sh.M, &bm, &bn, &tm, &tn);
    uint32_t threads = (uint32_t)((bm / tm) * (bn / tn));
    sb_printf(&c->src,
              "extern \"C\" __global__ void __launch_bounds__(%u) %s(const float *a, const float *b, const float "
              "*bias, const float *res, float *y, kiln::gemm_shape s) {\n"
              "    kiln::tiled_gemm<%d, %d, %d, %d, %d, kiln::gemm_problem<%s>>({a, b, bias, res, y, s}, s.M, s.N, "
              "s.K);\n}\n",
              threads, fn, bm, bn, TILE_BK, tm, tn, epi);
    sb_printf(&c->tiles, "%s=%dx%dx%d/%dx%d;", c->group, bm, bn, TILE_BK, tm, tn);
    kiln_bundle_arg args[6];
    if ((st = value_arg(c, a.x, &args[0])) || (st = value_arg(c, a.w, &args[1]))) return st;
    if (a.bias >= 0 ? (st = value_arg(c, a.bias, &args[2])) : (args[2] = null_arg, 0)) return st;
    if (a.residual >= 0 ? (st = value_arg(c, a.residual, &args[3])) : (args[3] = null_arg, 0)) return st;
    if ((st = value_arg(c, a.y, &args[4])) || (st = bytes_arg(c, &sh, sizeof sh, &args[5]))) return st;
    return launch(c, fn, (uint64_t)((sh.N + bn - 1) / bn), (uint64_t)((sh.M + bm - 1) / bm), (uint64_t)Z, threads,
                  args, 6);
}

/* ---------------------------------------------------------------- pooling -- */
typedef struct pool_shape_host { /* kernels/pool.cuh pool2d_shape */
    int64_t NC, H, W, P, Q, R, S, sh, sw, ph, pw, dh, dw, pe_h, pe_w;
} pool_shape_host;

static kiln_status emit_pool(cg *c, const kiln_node *n) {
    const kiln_value *x = val(c, n->inputs[0]), *y = val(c, n->outputs[0]);
    kiln_status st;
    if (!is_f32(x)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "non-fp32 pooling");
    if (x->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    if (n->n_outputs > 1 && n->outputs[1] >= 0 && kiln_value_live_uses(c->g, n->outputs[1]) > 0)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "MaxPool's Indices output");
    char fn[64];
    kiln_bundle_arg args[3];
    if (n->op == KILN_OP_GlobalAveragePool || n->op == KILN_OP_GlobalMaxPool) {
        bool mx = n->op == KILN_OP_GlobalMaxPool;
        int64_t rows = x->rank >= 2 ? x->dims[0] * x->dims[1] : 1, len = numel(x) / (rows ? rows : 1);
        kernel_name(c, mx ? "global_max_pool" : "global_avg_pool", fn, sizeof fn);
        sb_printf(&c->src,
                  "\n// %s: %s, %lld rows of %lld\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const float "
                  "*x, float *y, kiln::i64 rows, kiln::i64 len) {\n    kiln::global_pool<%s>(x, y, rows, len);\n}\n",
                  fn, c->group, (long long)rows, (long long)len, BLOCK_1D, fn, mx ? "true" : "false");
        if ((st = value_arg(c, n->inputs[0], &args[0])) || (st = value_arg(c, n->outputs[0], &args[1]))) return st;
        kiln_bundle_arg sc[2] = {{KILN_ARG_SCALAR, 8, (uint64_t)rows}, {KILN_ARG_SCALAR, 8, (uint64_t)len}};
        kiln_bundle_arg all[4] = {args[0], args[1], sc[0], sc[1]};
        return launch(c, fn, (uint64_t)((rows + BLOCK_1D / 32 - 1) / (BLOCK_1D / 32)), 1, 1, BLOCK_1D, all, 4);
    }
    if (x->rank != 4 && x->rank != 3) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%d-D pooling", x->rank - 2);
    int nsp = x->rank - 2;
    int64_t in[2], k[2], s[2], d[2], pb[2], pe[2];
    for (int i = 0; i < nsp; i++) in[i] = x->dims[2 + i];
    ints_or(n, "kernel_shape", nsp, 1, k);
    ints_or(n, "strides", nsp, 1, s);
    ints_or(n, "dilations", nsp, 1, d);
    if ((st = window_pads(n, nsp, in, k, s, d, pb, pe))) return st;
    pool_shape_host sh = {.NC = x->dims[0] * x->dims[1]};
    if (nsp == 2) {
        sh.H = in[0], sh.W = in[1], sh.P = y->dims[2], sh.Q = y->dims[3], sh.R = k[0], sh.S = k[1];
        sh.sh = s[0], sh.sw = s[1], sh.ph = pb[0], sh.pw = pb[1], sh.dh = d[0], sh.dw = d[1];
        sh.pe_h = pe[0], sh.pe_w = pe[1];
    } else {
        sh.H = 1, sh.W = in[0], sh.P = 1, sh.Q = y->dims[2], sh.R = 1, sh.S = k[0];
        sh.sh = 1, sh.sw = s[0], sh.ph = 0, sh.pw = pb[0], sh.dh = 1, sh.dw = d[0], sh.pe_h = 0, sh.pe_w = pe[0];
    }
    const char *mode = n->op == KILN_OP_MaxPool                      ? "kiln::pool_max"
                       : kiln_attr_int(n, "count_include_pad", 0) ? "kiln::pool_avg_include_pad"
                                                                   : "kiln::pool_avg";
    kernel_name(c, n->op == KILN_OP_MaxPool ? "max_pool" : "avg_pool", fn, sizeof fn);
    sb_printf(&c->src,
              "\n// %s: %s, window %lldx%lld stride %lldx%lld\nextern \"C\" __global__ void __launch_bounds__(%d) "
              "%s(const float *x, float *y, kiln::pool2d_shape s) {\n    kiln::pool2d<%s>(x, y, s);\n}\n",
              fn, c->group, (long long)sh.R, (long long)sh.S, (long long)sh.sh, (long long)sh.sw, BLOCK_1D, fn, mode);
    if ((st = value_arg(c, n->inputs[0], &args[0])) || (st = value_arg(c, n->outputs[0], &args[1])) ||
        (st = bytes_arg(c, &sh, sizeof sh, &args[2])))
        return st;
    return launch(c, fn, grid_1d(sh.NC * sh.P * sh.Q), 1, 1, BLOCK_1D, args, 3);
}

/* ---------------------------------------------------------------- softmax -- */
static kiln_status emit_softmax(cg *c, const kiln_node *n) {
    const kiln_value *x = val(c, n->inputs[0]);
    if (!is_f32(x)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "non-fp32 softmax");
    int64_t axis;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", -1), x->rank < 1 ? 1 : x->rank, &axis))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
    int64_t outer = 1, D = x->rank ? x->dims[axis] : 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
    bool lg = n->op == KILN_OP_LogSoftmax;
    char fn[64];
    kernel_name(c, lg ? "log_softmax" : "softmax", fn, sizeof fn);
    sb_printf(&c->src,
              "\n// %s: %s, [%lld, %lld, %lld] along the middle\nextern \"C\" __global__ void __launch_bounds__(%d) "
              "%s(const float *x, float *y, kiln::i64 outer, kiln::i64 d, kiln::i64 inner) {\n"
              "    kiln::softmax_rows<%s>(x, y, outer, d, inner);\n}\n",
              fn, c->group, (long long)outer, (long long)D, (long long)inner, BLOCK_1D, fn, lg ? "true" : "false");
    kiln_bundle_arg args[5];
    kiln_status st;
    if ((st = value_arg(c, n->inputs[0], &args[0])) || (st = value_arg(c, n->outputs[0], &args[1]))) return st;
    args[2] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)outer};
    args[3] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)D};
    args[4] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)inner};
    int64_t rows = outer * inner, per_block = BLOCK_1D / 32;
    return launch(c, fn, (uint64_t)((rows + per_block - 1) / per_block), 1, 1, BLOCK_1D, args, 5);
}

/* ------------------------------------------------------- copies and concat -- */
static const char *uint_of_size(size_t sz) {
    switch (sz) {
    case 1: return "unsigned char";
    case 2: return "unsigned short";
    case 4: return "unsigned int";
    case 8: return "unsigned long long";
    default: return NULL;
    }
}

/* y[outer][row_y] at offset <- x[outer][row_x] (elements of esize bytes). */
static kiln_status emit_copy(cg *c, int xv, int yv, int64_t outer, int64_t row_x, int64_t row_y, int64_t offset,
                             const char *what) {
    size_t es = kiln_dtype_size(val(c, yv)->dtype);
    const char *T = uint_of_size(es);
    if (!T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "element size %zu", es);
    char fn[64];
    kernel_name(c, what, fn, sizeof fn);
    sb_printf(&c->src,
              "\n// %s: %s, %lld rows of %lld into rows of %lld at %lld\nextern \"C\" __global__ void "
              "__launch_bounds__(%d) %s(const %s *x, %s *y, kiln::i64 outer, kiln::i64 row_x, kiln::i64 row_y, "
              "kiln::i64 offset) {\n    kiln::copy_rows<%s>(x, y, outer, row_x, row_y, offset);\n}\n",
              fn, c->group, (long long)outer, (long long)row_x, (long long)row_y, (long long)offset, BLOCK_1D, fn, T, T,
              T);
    kiln_bundle_arg args[6];
    kiln_status st;
    if ((st = value_arg(c, xv, &args[0])) || (st = value_arg(c, yv, &args[1]))) return st;
    args[2] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)outer};
    args[3] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)row_x};
    args[4] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)row_y};
    args[5] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)offset};
    return launch(c, fn, grid_1d(outer * row_x), 1, 1, BLOCK_1D, args, 6);
}

static kiln_status emit_concat(cg *c, const kiln_node *n) {
    const kiln_value *y = val(c, n->outputs[0]);
    if (y->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    int64_t axis;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), y->rank, &axis))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
    int64_t outer = 1, inner = 1, at = 0;
    for (int i = 0; i < axis; i++) outer *= y->dims[i];
    for (int i = (int)axis + 1; i < y->rank; i++) inner *= y->dims[i];
    for (int i = 0; i < n->n_inputs; i++) {
        const kiln_value *x = val(c, n->inputs[i]);
        if (x->dtype != y->dtype) return kiln_errorf(KILN_ERR_UNSUPPORTED, "mixed dtypes");
        int64_t d = x->dims[axis];
        if (d > 0) {
            kiln_status st = emit_copy(c, n->inputs[i], n->outputs[0], outer, d * inner, y->dims[axis] * inner,
                                       at * inner, "concat");
            if (st) return st;
        }
        at += d;
    }
    return KILN_OK;
}

/* y = affine gather of x (kernels/copy.cuh): per output dim, the input index start + i * step
 * (outside [0, in_dims): pad_bits) and its element stride. */
static kiln_status emit_gather(cg *c, int xv, int yv, const int64_t *start, const int64_t *step,
                               const int64_t *in_dims, const int64_t *in_strides, uint64_t pad_bits,
                               const char *what) {
    const kiln_value *y = val(c, yv);
    size_t es = kiln_dtype_size(y->dtype);
    const char *T = uint_of_size(es);
    if (!T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "element size %zu", es);
    int R = y->rank < 1 ? 1 : y->rank;
    int64_t total = numel(y);
    if (total == 0) return KILN_OK;
    int64_t sh[1 + 5 * KILN_MAX_RANK];
    sh[0] = total;
    for (int d = 0; d < R; d++) {
        bool scalar = y->rank == 0;
        sh[1 + d] = scalar ? 1 : y->dims[d];
        sh[1 + R + d] = scalar ? 0 : start[d];
        sh[1 + 2 * R + d] = scalar ? 0 : step[d];
        sh[1 + 3 * R + d] = scalar ? 1 : in_dims[d];
        sh[1 + 4 * R + d] = scalar ? 0 : in_strides[d];
    }
    char fn[64];
    kernel_name(c, what, fn, sizeof fn);
    sb_printf(&c->src,
              "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, %s *y, "
              "kiln::gather_shape<%d> s, %s pad) {\n    kiln::affine_gather<%s, %d>(x, y, s, pad);\n}\n",
              fn, c->group, y->name, BLOCK_1D, fn, T, T, R, T, T, R);
    kiln_bundle_arg args[4];
    kiln_status st;
    if ((st = value_arg(c, xv, &args[0])) || (st = value_arg(c, yv, &args[1])) ||
        (st = bytes_arg(c, sh, sizeof(int64_t) * (size_t)(1 + 5 * R), &args[2])))
        return st;
    args[3] = (kiln_bundle_arg){KILN_ARG_SCALAR, (uint32_t)es, pad_bits};
    return launch(c, fn, grid_1d(total), 1, 1, BLOCK_1D, args, 4);
}

/* Constant integer input i of n (at most KILN_MAX_RANK values), -1 when absent or not known. */
static int const_input_ints(const cg *c, const kiln_node *n, int i, int64_t *out) {
    if (i >= n->n_inputs || n->inputs[i] < 0) return -1;
    return kiln_value_const_ints(val(c, n->inputs[i]), out, 2 * KILN_MAX_RANK);
}

static kiln_status emit_data_movement(cg *c, const kiln_node *n) {
    const kiln_value *x = val(c, n->inputs[0]);
    int64_t xs[KILN_MAX_RANK], start[KILN_MAX_RANK], step[KILN_MAX_RANK], ind[KILN_MAX_RANK], ins[KILN_MAX_RANK];
    if (x->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    kiln_strides(x->rank, x->dims, xs);
    for (int d = 0; d < x->rank; d++) start[d] = 0, step[d] = 1, ind[d] = x->dims[d], ins[d] = xs[d];
    switch (n->op) {
    case KILN_OP_Transpose: {
        const int64_t *perm;
        int np = kiln_attr_ints(n, "perm", &perm);
        for (int k = 0; k < x->rank; k++) {
            int64_t p = np == x->rank ? perm[k] : x->rank - 1 - k;
            if (p < 0 || p >= x->rank) return kiln_errorf(KILN_ERR_UNSUPPORTED, "bad perm");
            ind[k] = x->dims[p];
            ins[k] = xs[p];
        }
        return emit_gather(c, n->inputs[0], n->outputs[0], start, step, ind, ins, 0, "transpose");
    }
    case KILN_OP_Slice: {
        int64_t st_[2 * KILN_MAX_RANK], en[2 * KILN_MAX_RANK], ax[2 * KILN_MAX_RANK], sp[2 * KILN_MAX_RANK];
        int ns = const_input_ints(c, n, 1, st_), ne = const_input_ints(c, n, 2, en);
        int na = const_input_ints(c, n, 3, ax), nt = const_input_ints(c, n, 4, sp);
        if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nt >= 0 && nt != ns))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "Slice with starts/ends/axes/steps not known at build time");
        for (int i = 0; i < ns; i++) {
            int64_t a = na >= 0 ? ax[i] : i, dim, s0 = st_[i], stp = nt >= 0 ? sp[i] : 1;
            if (a < 0) a += x->rank;
            if (a < 0 || a >= x->rank || stp == 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "bad Slice axis or step");
            dim = x->dims[a];
            if (s0 < 0) s0 += dim;
            if (stp > 0) s0 = s0 < 0 ? 0 : (s0 > dim ? dim : s0);
            else s0 = s0 < 0 ? 0 : (s0 > dim - 1 ? dim - 1 : s0);
            start[a] = s0;
            step[a] = stp;
        }
        return emit_gather(c, n->inputs[0], n->outputs[0], start, step, ind, ins, 0, "slice");
    }
    case KILN_OP_Pad: {
        int64_t pads[2 * KILN_MAX_RANK], axes[KILN_MAX_RANK];
        if (strcmp(kiln_attr_str(n, "mode", "constant"), "constant"))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "Pad mode '%s'", kiln_attr_str(n, "mode", ""));
        int np = const_input_ints(c, n, 1, pads), na = const_input_ints(c, n, 3, axes);
        int nax = na >= 0 ? na : x->rank;
        if (np != 2 * nax) return kiln_errorf(KILN_ERR_UNSUPPORTED, "Pad with pads not known at build time");
        for (int i = 0; i < nax; i++) {
            int64_t a = na >= 0 ? axes[i] : i;
            if (a < 0) a += x->rank;
            if (a < 0 || a >= x->rank) return kiln_errorf(KILN_ERR_UNSUPPORTED, "bad Pad axis");
            start[a] = -pads[i];
        }
        uint64_t bits = 0;
        if (n->n_inputs > 2 && n->inputs[2] >= 0) {
            const kiln_value *cv = val(c, n->inputs[2]);
            if (!cv->data || cv->data->numel != 1)
                return kiln_errorf(KILN_ERR_UNSUPPORTED, "Pad with a constant_value not known at build time");
            double v = kiln_tensor_get(cv->data, 0);
            if (x->dtype == KILN_F32) {
                float f = (float)v;
                uint32_t u;
                memcpy(&u, &f, 4);
                bits = u;
            } else if (v != 0.0) {
                return kiln_errorf(KILN_ERR_UNSUPPORTED, "a non-zero pad value for %s", kiln_dtype_name(x->dtype));
            }
        }
        return emit_gather(c, n->inputs[0], n->outputs[0], start, step, ind, ins, bits, "pad");
    }
    case KILN_OP_Expand: {
        const kiln_value *y = val(c, n->outputs[0]);
        int64_t s2[KILN_MAX_RANK], st2[KILN_MAX_RANK], d2[KILN_MAX_RANK], i2[KILN_MAX_RANK];
        for (int k = y->rank - 1, j = x->rank - 1; k >= 0; k--, j--) {
            bool bc = j < 0 || x->dims[j] == 1;
            s2[k] = 0;
            st2[k] = bc ? 0 : 1;
            d2[k] = bc ? 1 : x->dims[j];
            i2[k] = bc ? 0 : xs[j];
        }
        return emit_gather(c, n->inputs[0], n->outputs[0], s2, st2, d2, i2, 0, "expand");
    }
    case KILN_OP_Split: {
        int64_t axis;
        if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), x->rank, &axis))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
        int64_t at = 0;
        for (int o = 0; o < n->n_outputs; o++) {
            if (n->outputs[o] < 0) continue;
            start[axis] = at;
            kiln_status st = emit_gather(c, n->inputs[0], n->outputs[o], start, step, ind, ins, 0, "split");
            if (st) return st;
            at += val(c, n->outputs[o])->dims[axis];
        }
        return KILN_OK;
    }
    default: return kiln_errorf(KILN_ERR_UNSUPPORTED, "no GPU kernel for this op yet");
    }
}

/* A view whose output is a graph output: its bytes must land in the output binding. */
static kiln_status emit_view(cg *c, const kiln_node *n) {
    int yv = n->outputs[0];
    if (io_index(c->g->outputs, c->g->n_outputs, yv) < 0) return KILN_OK;
    int64_t e = numel(val(c, yv));
    if (e == 0) return KILN_OK;
    return emit_copy(c, n->inputs[0], yv, 1, e, e, 0, "copy");
}

/* ------------------------------------------------------------ elementwise -- */
/* Expression emitter over the elementwise op table: per output element, each leaf is loaded
 * at its broadcast offset and every node of the set becomes one `const float tN = ...;`. */
typedef struct ew {
    cg *c;
    const kiln_graph *gr; /* where the nodes live: a group's body, or the top graph */
    const int *leaf_outer; /* leaf slot -> outer value id */
    int n_leaves;
    int *var;             /* per gr value: -1 not yet, else t-number; leaves use slot */
    bool *loaded;         /* per leaf slot */
    const bool *allowed;  /* per gr node: may be emitted (NULL: only `single`) */
    int single;           /* the one node allowed when allowed == NULL */
    int next_t;
    sbuf body;
} ew;

static int leaf_slot(const ew *e, int v) {
    if (e->gr == e->c->g) {
        for (int i = 0; i < e->n_leaves; i++)
            if (e->leaf_outer[i] == v) return i;
        return -1;
    }
    for (int i = 0; i < e->gr->n_inputs; i++)
        if (e->gr->inputs[i] == v) return i;
    return -1;
}

/* Writes the expression naming value v into out. */
static kiln_status ew_value(ew *e, int v, char *out, size_t len);

static kiln_status ew_node(ew *e, const kiln_node *n, int t) {
    char a[4][64];
    int ni = n->n_inputs;
    kiln_status st;
    if (n->n_outputs < 1 || !is_f32(&e->gr->values[n->outputs[0]]))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s with a non-fp32 result", kiln_op_table[n->op].onnx_type);
    for (int i = 0; i < ni && i < 4; i++) {
        if (n->inputs[i] < 0) {
            a[i][0] = 0;
            continue;
        }
        if ((st = ew_value(e, n->inputs[i], a[i], sizeof a[i]))) return st;
    }
    char f1[64], f2[64];
    float al, be;
    sbuf *s = &e->body;
    sb_printf(s, "        const float t%d = ", t);
    switch (n->op) {
    case KILN_OP_Identity: case KILN_OP_Dropout: sb_printf(s, "%s", a[0]); break;
    case KILN_OP_Abs: sb_printf(s, "fabsf(%s)", a[0]); break;
    case KILN_OP_Neg: sb_printf(s, "-%s", a[0]); break;
    case KILN_OP_Exp: sb_printf(s, "expf(%s)", a[0]); break;
    case KILN_OP_Log: sb_printf(s, "logf(%s)", a[0]); break;
    case KILN_OP_Sqrt: sb_printf(s, "sqrtf(%s)", a[0]); break;
    case KILN_OP_Reciprocal: sb_printf(s, "1.0f / %s", a[0]); break;
    case KILN_OP_Ceil: sb_printf(s, "ceilf(%s)", a[0]); break;
    case KILN_OP_Floor: sb_printf(s, "floorf(%s)", a[0]); break;
    case KILN_OP_Round: sb_printf(s, "rintf(%s)", a[0]); break;
    case KILN_OP_Sign: sb_printf(s, "(float)((%s > 0.0f) - (%s < 0.0f))", a[0], a[0]); break;
    case KILN_OP_Sin: sb_printf(s, "sinf(%s)", a[0]); break;
    case KILN_OP_Cos: sb_printf(s, "cosf(%s)", a[0]); break;
    case KILN_OP_Tan: sb_printf(s, "tanf(%s)", a[0]); break;
    case KILN_OP_Erf: sb_printf(s, "erff(%s)", a[0]); break;
    case KILN_OP_Sigmoid: sb_printf(s, "1.0f / (1.0f + expf(-%s))", a[0]); break;
    case KILN_OP_Tanh: sb_printf(s, "tanhf(%s)", a[0]); break;
    case KILN_OP_Relu: sb_printf(s, "fmaxf(%s, 0.0f)", a[0]); break;
    case KILN_OP_Softplus: sb_printf(s, "log1pf(expf(%s))", a[0]); break;
    case KILN_OP_Softsign: sb_printf(s, "%s / (1.0f + fabsf(%s))", a[0], a[0]); break;
    case KILN_OP_Mish: sb_printf(s, "%s * tanhf(log1pf(expf(%s)))", a[0], a[0]); break;
    case KILN_OP_LeakyRelu:
        sb_printf(s, "%s < 0.0f ? %s * %s : %s", a[0], flit(f1, sizeof f1, kiln_attr_float(n, "alpha", 0.01f)), a[0],
                  a[0]);
        break;
    case KILN_OP_Elu:
        sb_printf(s, "%s < 0.0f ? %s * (expf(%s) - 1.0f) : %s", a[0],
                  flit(f1, sizeof f1, kiln_attr_float(n, "alpha", 1.0f)), a[0], a[0]);
        break;
    case KILN_OP_Selu:
        al = kiln_attr_float(n, "alpha", 1.67326319217681884765625f);
        be = kiln_attr_float(n, "gamma", 1.05070102214813232421875f);
        sb_printf(s, "%s * (%s > 0.0f ? %s : %s * (expf(%s) - 1.0f))", flit(f2, sizeof f2, be), a[0], a[0],
                  flit(f1, sizeof f1, al), a[0]);
        break;
    case KILN_OP_Celu:
        al = kiln_attr_float(n, "alpha", 1.0f);
        flit(f1, sizeof f1, al);
        sb_printf(s, "fmaxf(0.0f, %s) + fminf(0.0f, %s * (expf(%s / %s) - 1.0f))", a[0], f1, a[0], f1);
        break;
    case KILN_OP_ThresholdedRelu:
        sb_printf(s, "%s > %s ? %s : 0.0f", a[0], flit(f1, sizeof f1, kiln_attr_float(n, "alpha", 1.0f)), a[0]);
        break;
    case KILN_OP_HardSigmoid:
        sb_printf(s, "fmaxf(0.0f, fminf(1.0f, %s * %s + %s))", flit(f1, sizeof f1, kiln_attr_float(n, "alpha", 0.2f)),
                  a[0], flit(f2, sizeof f2, kiln_attr_float(n, "beta", 0.5f)));
        break;
    case KILN_OP_HardSwish: sb_printf(s, "%s * fmaxf(0.0f, fminf(1.0f, %s * (1.0f / 6.0f) + 0.5f))", a[0], a[0]); break;
    case KILN_OP_Gelu:
        if (!strcmp(kiln_attr_str(n, "approximate", "none"), "tanh"))
            sb_printf(s, "0.5f * %s * (1.0f + tanhf(0.797884561f * (%s + 0.044715f * %s * %s * %s)))", a[0], a[0], a[0],
                      a[0], a[0]);
        else
            sb_printf(s, "0.5f * %s * (1.0f + erff(%s * 0.707106781f))", a[0], a[0]);
        break;
    case KILN_OP_Clip:
        if (ni > 1 && a[1][0] && ni > 2 && a[2][0]) sb_printf(s, "fminf(fmaxf(%s, %s), %s)", a[0], a[1], a[2]);
        else if (ni > 1 && a[1][0]) sb_printf(s, "fmaxf(%s, %s)", a[0], a[1]);
        else if (ni > 2 && a[2][0]) sb_printf(s, "fminf(%s, %s)", a[0], a[2]);
        else sb_printf(s, "%s", a[0]);
        break;
    case KILN_OP_Add: sb_printf(s, "%s + %s", a[0], a[1]); break;
    case KILN_OP_Sub: sb_printf(s, "%s - %s", a[0], a[1]); break;
    case KILN_OP_Mul: sb_printf(s, "%s * %s", a[0], a[1]); break;
    case KILN_OP_Div: sb_printf(s, "%s / %s", a[0], a[1]); break;
    case KILN_OP_Pow: sb_printf(s, "powf(%s, %s)", a[0], a[1]); break;
    case KILN_OP_PRelu: sb_printf(s, "%s < 0.0f ? %s * %s : %s", a[0], a[1], a[0], a[0]); break;
    case KILN_OP_Max: case KILN_OP_Min: case KILN_OP_Sum: case KILN_OP_Mean: {
        const char *f = n->op == KILN_OP_Max ? "fmaxf" : n->op == KILN_OP_Min ? "fminf" : NULL;
        if (ni > 4) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s of more than 4 inputs", kiln_op_table[n->op].onnx_type);
        sb_printf(s, "%s", n->op == KILN_OP_Mean ? "(" : "");
        for (int i = 0; i < ni - 1; i++) sb_printf(s, f ? "%s(" : "", f);
        sb_printf(s, "%s", a[0]);
        for (int i = 1; i < ni; i++) sb_printf(s, f ? ", %s)" : " + %s", a[i]);
        if (n->op == KILN_OP_Mean) sb_printf(s, ") * %s", flit(f1, sizeof f1, 1.0f / (float)ni));
        break;
    }
    default:
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s is not in the GPU elementwise table",
                           kiln_op_table[n->op].onnx_type);
    }
    sb_printf(s, ";\n");
    return KILN_OK;
}

static kiln_status ew_value(ew *e, int v, char *out, size_t len) {
    const kiln_value *gv = &e->gr->values[v];
    int slot = leaf_slot(e, v);
    const kiln_value *cv = slot >= 0 ? &e->c->g->values[e->leaf_outer[slot]] : gv;
    if (cv->data && cv->data->numel == 1 && kiln_dtype_is_float(cv->data->dtype)) { /* scalar constant: a literal */
        flit(out, len, (float)kiln_tensor_get(cv->data, 0));
        return KILN_OK;
    }
    if (slot >= 0) {
        if (!is_f32(cv)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "a %s operand", kiln_dtype_name(cv->dtype));
        if (!e->loaded[slot]) {
            sb_printf(&e->body, "        const float x%d = kiln::load_f32<float>(in[%d], off[%d]);\n", slot, slot, slot);
            e->loaded[slot] = true;
        }
        snprintf(out, len, "x%d", slot);
        return KILN_OK;
    }
    if (e->var[v] >= 0) {
        snprintf(out, len, "t%d", e->var[v]);
        return KILN_OK;
    }
    int p = gv->producer;
    if (p < 0 || (e->allowed ? !e->allowed[p] : p != e->single) || gv->data)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "an operand '%s' that is neither an input nor computed in the group",
                           gv->name);
    const kiln_node *pn = &e->gr->nodes[p];
    if (pn->outputs[0] != v) return kiln_errorf(KILN_ERR_UNSUPPORTED, "a second output of %s", kiln_op_table[pn->op].onnx_type);
    int t = e->next_t++;
    kiln_status st = ew_node(e, pn, t);
    if (st) return st;
    e->var[v] = t;
    snprintf(out, len, "t%d", t);
    return KILN_OK;
}

/* One kernel computing outer value yv (body value by in gr) from the leaves. */
static kiln_status emit_ew_output(cg *c, ew *e, int by, int yv) {
    const kiln_value *y = val(c, yv);
    if (!is_f32(y)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "a %s result", kiln_dtype_name(y->dtype));
    if (y->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    for (int v = 0; v < e->gr->n_values; v++) e->var[v] = -1;
    for (int i = 0; i < e->n_leaves; i++) e->loaded[i] = false;
    e->next_t = 0;
    e->body.len = 0;
    if (e->body.s) e->body.s[0] = 0;
    char res[64];
    kiln_status st = ew_value(e, by, res, sizeof res);
    if (st) return st;
    if (e->body.oom) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    int R = y->rank < 1 ? 1 : y->rank, NIN = e->n_leaves < 1 ? 1 : e->n_leaves;
    int64_t dims[KILN_MAX_RANK], total = numel(y);
    for (int i = 0; i < R; i++) dims[i] = y->rank ? y->dims[i] : 1;
    /* the shape struct: numel, dims[R], strides[NIN][R] (0 on broadcast dims) */
    size_t words = 1 + (size_t)R + (size_t)NIN * (size_t)R;
    int64_t *shape = calloc(words, sizeof *shape);
    if (!shape) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    shape[0] = total;
    memcpy(shape + 1, dims, sizeof(int64_t) * (size_t)R);
    bool contiguous = true;
    for (int k = 0; k < e->n_leaves; k++) {
        if (e->leaf_outer[k] < 0) continue; /* an omitted optional input (Clip without min): never read */
        const kiln_value *x = val(c, e->leaf_outer[k]);
        int64_t *st_k = shape + 1 + R + (size_t)k * R, stride = 1;
        if (numel(x) != total) contiguous = false;
        for (int i = R - 1, j = x->rank - 1; i >= 0; i--, j--) {
            int64_t d = j >= 0 ? x->dims[j] : 1;
            st_k[i] = d == 1 ? 0 : stride;
            stride *= d;
        }
    }
    char fn[64];
    kernel_name(c, "ew", fn, sizeof fn);
    sb_printf(&c->src, "\n// %s: %s -> %s\nstruct %s_expr {\n    template <int NIN>\n    static __device__ "
                       "__forceinline__ float eval(const void *const (&in)[NIN], const kiln::i64 (&off)[NIN]) {\n",
              fn, c->group, y->name, fn);
    sb_printf(&c->src, "%s        return %s;\n    }\n};\n", e->body.s ? e->body.s : "", res);
    sb_printf(&c->src, "struct %s_shape {\n    kiln::i64 numel, dims[%d], strides[%d][%d];\n};\n", fn, R, NIN, R);
    sb_printf(&c->src, "extern \"C\" __global__ void __launch_bounds__(%d) %s(", BLOCK_1D, fn);
    for (int k = 0; k < NIN; k++) sb_printf(&c->src, "const void *in%d, ", k);
    sb_printf(&c->src, "void *out, %s_shape s) {\n    kiln::ew_params<%d, %d> p;\n", fn, NIN, R);
    for (int k = 0; k < NIN; k++) sb_printf(&c->src, "    p.in[%d] = in%d;\n", k, k);
    sb_printf(&c->src,
              "    p.out = out;\n    p.numel = s.numel;\n    for (int d = 0; d < %d; d++) {\n        p.dims[d] = "
              "s.dims[d];\n        for (int k = 0; k < %d; k++) p.strides[k][d] = s.strides[k][d];\n    }\n"
              "    kiln::elementwise<%s_expr, float, %d, %d, %s>(p);\n}\n",
              R, NIN, fn, NIN, R, contiguous ? "true" : "false");
    kiln_bundle_arg *args = calloc((size_t)NIN + 2, sizeof *args);
    if (!args) {
        free(shape);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    st = KILN_OK;
    for (int k = 0; k < e->n_leaves && !st; k++)
        if (e->leaf_outer[k] < 0) args[k] = null_arg;
        else st = value_arg(c, e->leaf_outer[k], &args[k]);
    if (e->n_leaves == 0) args[0] = null_arg;
    if (!st) st = value_arg(c, yv, &args[NIN]);
    if (!st) st = bytes_arg(c, shape, words * sizeof *shape, &args[NIN + 1]);
    if (!st) st = launch(c, fn, grid_1d(total), 1, 1, BLOCK_1D, args, (uint32_t)NIN + 2);
    free(args);
    free(shape);
    return st;
}

static kiln_status emit_elementwise(cg *c, const kiln_node *n) {
    ew e;
    memset(&e, 0, sizeof e);
    e.c = c;
    kiln_status st = KILN_OK;
    bool *allowed = NULL;
    if (n->op == KILN_OP_Fused) {
        e.gr = n->body;
        e.leaf_outer = n->inputs;
        e.n_leaves = n->n_inputs;
        allowed = calloc((size_t)n->body->n_nodes + 1, sizeof *allowed);
        if (!allowed) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        for (int i = 0; i < n->body->n_nodes; i++) allowed[i] = !n->body->nodes[i].dead;
        e.allowed = allowed;
    } else {
        e.gr = c->g;
        e.leaf_outer = n->inputs;
        e.n_leaves = n->n_inputs;
        e.single = (int)(n - c->g->nodes);
    }
    e.var = malloc(sizeof(int) * (size_t)(e.gr->n_values + 1));
    e.loaded = calloc((size_t)e.n_leaves + 1, sizeof *e.loaded);
    if (!e.var || !e.loaded) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    /* One kernel per output. plan-memory may have put an output in place over an input
     * (it plans a group as one kernel): that output goes last, after every kernel that
     * still reads the input; two such outputs would need one multi-output kernel. */
    int n_inplace = 0;
    for (int k = 0; k < n->n_outputs; k++) n_inplace += n->outputs[k] >= 0 && c->g->values[n->outputs[k]].alias_of >= 0;
    if (n_inplace > 1 && !st) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "two outputs written in place");
    for (int pass = 0; pass < 2 * n->n_outputs && !st; pass++) {
        int k = pass % n->n_outputs;
        int yv = n->outputs[k];
        if ((pass < n->n_outputs) != (yv < 0 || c->g->values[yv].alias_of < 0)) continue;
        if (yv < 0 || (k > 0 && n->op != KILN_OP_Fused)) {
            if (yv >= 0 && kiln_value_live_uses(c->g, yv) > 0)
                st = kiln_errorf(KILN_ERR_UNSUPPORTED, "a second output");
            continue;
        }
        int by = n->op == KILN_OP_Fused ? n->body->outputs[k] : yv;
        st = emit_ew_output(c, &e, by, yv);
    }
    free(e.var);
    free(e.loaded);
    free(e.body.s);
    free(allowed);
    return st;
}

/* -------------------------------------------------------------- dispatcher -- */
static kiln_status emit_node(cg *c, const kiln_node *n) {
    if (kiln_node_is_view(n)) return emit_view(c, n);
    switch (n->op) {
    case KILN_OP_Conv: return emit_conv(c, n);
    case KILN_OP_Gemm: case KILN_OP_MatMul: return emit_gemm(c, n);
    case KILN_OP_MaxPool: case KILN_OP_AveragePool: case KILN_OP_GlobalAveragePool: case KILN_OP_GlobalMaxPool:
        return emit_pool(c, n);
    case KILN_OP_Softmax: case KILN_OP_LogSoftmax: return emit_softmax(c, n);
    case KILN_OP_Concat: return emit_concat(c, n);
    case KILN_OP_Transpose: case KILN_OP_Slice: case KILN_OP_Pad: case KILN_OP_Expand: case KILN_OP_Split:
        return emit_data_movement(c, n);
    case KILN_OP_Fused: {
        const char *kind = kiln_attr_str(n, "kind", "");
        if (!strcmp(kind, "conv_epilogue")) return emit_conv(c, n);
        if (!strcmp(kind, "gemm_epilogue")) return emit_gemm(c, n);
        if (!strcmp(kind, "elementwise")) return emit_elementwise(c, n);
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "fused group kind '%s'", kind);
    }
    default:
        if (kiln_op_table[n->op].kind == KILN_KIND_ELEMENTWISE || kiln_op_table[n->op].kind == KILN_KIND_BROADCAST)
            return emit_elementwise(c, n);
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "no GPU kernel for this op yet");
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
            (g->values[v].producer >= 0 || io_index(g->inputs, g->n_inputs, v) >= 0))
            return kiln_errorf(KILN_ERR_SHAPE, "value '%s' has dynamic dims: fix the graph inputs with --shape",
                               g->values[v].name);
    for (int v = 0; v < g->n_values; v++) /* the kernels index in 32 bits */
        if (g->values[v].rank >= 0 && kiln_value_is_static(&g->values[v]) && numel(&g->values[v]) >= (1ll << 31))
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
    sb_printf(&c.src,
              "// Generated by kiln %s from graph '%s': one module, one kernel per launch group.\n"
              "// Templates: kernels/*.cuh (embedded in kiln). Arguments come from the bundle's launch plan.\n"
              "#include \"conv.cuh\"\n#include \"copy.cuh\"\n#include \"elementwise.cuh\"\n#include \"gemm.cuh\"\n"
              "#include \"pool.cuh\"\n#include \"softmax.cuh\"\n",
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
    if (!st && n_bad)
        st = kiln_errorf(KILN_ERR_UNSUPPORTED, "%d node%s cannot run on the GPU yet:%s%s", n_bad, n_bad == 1 ? "" : "s",
                         unsupported, n_listed < n_bad ? "\n  ..." : "");
    if (!st && (c.src.oom || c.tiles.oom)) st = kiln_errorf(KILN_ERR_OOM, "out of memory");

    if (!st && g->arena_bytes > 0) st = kiln_bundle_set_arena(b, (uint64_t)g->arena_bytes, 256);
    for (int v = 0; !st && v < g->n_values; v++) {
        const kiln_value *gv = &g->values[v];
        if (gv->arena_offset < 0 || gv->alias_of >= 0 || gv->data || io_index(g->outputs, g->n_outputs, v) >= 0 ||
            io_index(g->inputs, g->n_inputs, v) >= 0)
            continue;
        int64_t e = numel(gv) * (int64_t)kiln_dtype_size(gv->dtype);
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
