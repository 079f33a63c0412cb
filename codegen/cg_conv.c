/*
 * cg_conv.c — Conv, Gemm and MatMul (alone or as conv_epilogue / gemm_epilogue groups): the
 * implicit-GEMM and direct convolution templates, the GEMM template, and the generated epilogue
 * struct (bias, activation, residual, post-activation).
 */
#include "codegen/cg_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kiln_status emit_activation(sbuf *s, const char *name, float alpha, float beta) {
    char a[64], b[64];
    kiln_cg_flit(a, sizeof a, alpha);
    kiln_cg_flit(b, sizeof b, beta);
    if (!strcmp(name, "none")) return KILN_OK;
    if (!strcmp(name, "relu")) kiln_cg_printf(s, "        v = fmaxf(v, 0.0f);\n");
    else if (!strcmp(name, "clip")) kiln_cg_printf(s, "        v = fminf(fmaxf(v, %s), %s);\n", a, b);
    else if (!strcmp(name, "leaky_relu")) kiln_cg_printf(s, "        v = v < 0.0f ? %s * v : v;\n", a);
    else if (!strcmp(name, "sigmoid")) kiln_cg_printf(s, "        v = 1.0f / (1.0f + expf(-v));\n");
    else if (!strcmp(name, "tanh")) kiln_cg_printf(s, "        v = tanhf(v);\n");
    else if (!strcmp(name, "hard_sigmoid")) kiln_cg_printf(s, "        v = fmaxf(0.0f, fminf(1.0f, %s * v + %s));\n", a, b);
    else if (!strcmp(name, "hard_swish"))
        kiln_cg_printf(s, "        v = v * fmaxf(0.0f, fminf(1.0f, v * (1.0f / 6.0f) + 0.5f));\n");
    else if (!strcmp(name, "gelu")) kiln_cg_printf(s, "        v = 0.5f * v * (1.0f + erff(v * 0.707106781f));\n");
    else if (!strcmp(name, "gelu_tanh"))
        kiln_cg_printf(s, "        v = 0.5f * v * (1.0f + tanhf(0.797884561f * (v + 0.044715f * v * v * v)));\n");
    else if (!strcmp(name, "elu")) kiln_cg_printf(s, "        v = v < 0.0f ? %s * (expf(v) - 1.0f) : v;\n", a);
    else if (!strcmp(name, "silu")) kiln_cg_printf(s, "        v = v / (1.0f + expf(-v));\n");
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
    /* a conv pair (passes/fuse_conv_pair.c): the second Conv is not the anchor */
    const int pw = (int)kiln_attr_int(n, "pair_w_input", -1);
    const int pair_w = pw >= 0 && pw < n->n_inputs ? n->inputs[pw] : -1;
    for (int i = 0; i < body->n_nodes && !a->an; i++) {
        const kiln_node *bn = &body->nodes[i];
        if (!strcmp(kiln_op_table[bn->op].onnx_type, anchor_op) &&
            (pair_w < 0 || bn->n_inputs < 2 || outer_of(n, bn->inputs[1]) != pair_w))
            a->an = bn;
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
 * residual, post-activation; they close the function (emit_epilogue_body: and the struct). */
static kiln_status emit_epilogue_stmts(cg *c, const anchor *a, const char *bias_expr) {
    kiln_status st;
    if (bias_expr) kiln_cg_printf(&c->src, "        v += %s;\n", bias_expr);
    if (a->fused && (st = emit_act_attr(&c->src, a->fused, "activation"))) return st;
    if (a->residual >= 0) kiln_cg_printf(&c->src, "        v += kiln::to_f32(res[o]);\n");
    if (a->fused && (st = emit_act_attr(&c->src, a->fused, "post_activation"))) return st;
    kiln_cg_printf(&c->src, "        return v;\n    }\n");
    return KILN_OK;
}
static kiln_status emit_epilogue_body(cg *c, const anchor *a, const char *bias_expr) {
    kiln_status st = emit_epilogue_stmts(c, a, bias_expr);
    if (!st) kiln_cg_printf(&c->src, "};\n");
    return st;
}

/* The CUDA storage type of a value: the kernels load through kiln::to_f32 and store through
 * kiln::from_f32<T>, so any mix of fp32 and fp16 operands works. */
static kiln_status elem_type(const kiln_value *v, const char **t) {
    if (v->dtype == KILN_F32) *t = "float";
    else if (v->dtype == KILN_F16) *t = "__half";
    else return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s of '%s' not supported on the GPU", kiln_dtype_name(v->dtype), v->name);
    return KILN_OK;
}

/* The epilogue struct's head: storage types of the bias and residual (float when absent). */
static kiln_status emit_epilogue_head(cg *c, const anchor *a, const char *epi, const char *index_params) {
    const char *bt = "float", *rt = "float";
    kiln_status st;
    if (a->bias >= 0 && (st = elem_type(kiln_cg_val(c, a->bias), &bt))) return st;
    if (a->residual >= 0 && (st = elem_type(kiln_cg_val(c, a->residual), &rt))) return st;
    kiln_cg_printf(&c->src,
                   "struct %s {\n    typedef %s bias_t;\n    typedef %s res_t;\n"
                   "    static __device__ __forceinline__ float apply(const bias_t *bias, const res_t *res, %s, float v) {\n",
                   epi, bt, rt, index_params);
    return KILN_OK;
}

static void tile_pick(int64_t M, int *bm, int *bn, int *tm, int *tn) {
    if (M >= 64) *bm = 64, *bn = 64, *tm = 4, *tn = 4;
    else if (M >= 32) *bm = 32, *bn = 64, *tm = 2, *tn = 4;
    else *bm = 16, *bn = 128, *tm = 1, *tn = 8;
}
#define TILE_BK 8

/* Tensor-core tiles (kernels/mma.cuh): block BMxBNxBK, warp WMxWN, always 4 warps. Small M (a
 * convolution's output channels per group) gets shorter block tiles so that fewer rows are
 * padding; a grid of fewer than MMA_FILL_BLOCKS blocks (batch 1: late ResNet stages have 49
 * output pixels) takes the next narrower tile, down to the last candidate, so that more SMs
 * work. BK = 32 keeps both shared stages under the 48 KiB of static shared memory at tf32. */
#define MMA_FILL_BLOCKS 128 /* about one block per SM on A100/H100 */
typedef struct mma_tile {
    int bm, bn, bk, wm, wn;
} mma_tile;
static mma_tile mma_tile_pick(int64_t M, int64_t N, int64_t Z) {
    static const mma_tile big[] = {{64, 64, 32, 32, 32}, {64, 32, 32, 32, 16}, {32, 32, 32, 16, 16}};
    static const mma_tile mid[] = {{32, 64, 32, 32, 16}, {32, 32, 32, 16, 16}};
    static const mma_tile small[] = {{16, 64, 32, 16, 16}, {16, 32, 32, 16, 8}};
    const mma_tile *c = M >= 64 ? big : M >= 32 ? mid : small;
    int n = M >= 64 ? 3 : 2;
    for (int i = 0; i < n - 1; i++)
        if (((M + c[i].bm - 1) / c[i].bm) * ((N + c[i].bn - 1) / c[i].bn) * Z >= MMA_FILL_BLOCKS) return c[i];
    return c[n - 1];
}
/* Every tile the mma templates take, for the tuner (kiln_cg_choose): the heuristic's pick is one
 * of them. Names are stable: they key tuning caches. */
static const mma_tile mma_all[] = {{64, 64, 32, 32, 32}, {64, 32, 32, 32, 16}, {32, 64, 32, 32, 16},
                                   {32, 32, 32, 16, 16}, {16, 64, 32, 16, 16}, {16, 32, 32, 16, 8}};
#define MMA_N_ALL ((int)(sizeof mma_all / sizeof mma_all[0]))
/* The tile of a conv/gemm mma kernel: the heuristic's, a forced one or the tuner's. `sig` is the
 * kernel's signature without the tile (family, shape, dtypes, epilogue). */
static mma_tile mma_tile_choose(cg *c, const char *sig, int64_t M, int64_t N, int64_t Z) {
    mma_tile h = mma_tile_pick(M, N, Z);
    char names[MMA_N_ALL][40];
    const char *np[MMA_N_ALL];
    int heur = 0;
    for (int i = 0; i < MMA_N_ALL; i++) {
        const mma_tile *t = &mma_all[i];
        snprintf(names[i], sizeof names[i], "%dx%dx%d/%dx%d", t->bm, t->bn, t->bk, t->wm, t->wn);
        np[i] = names[i];
        if (!memcmp(t, &h, sizeof h)) heur = i;
    }
    return mma_all[kiln_cg_choose(c, sig, np, MMA_N_ALL, heur)];
}
static uint32_t mma_threads(mma_tile t) { return (uint32_t)((t.bm / t.wm) * (t.bn / t.wn) * 32); }

/* "kiln::mma_tf32" or "kiln::mma_f16" when conv/gemm run on tensor cores, NULL for FFMA. */
static const char *mma_kind(const cg *c) {
    return c->o->precision == KILN_PREC_TF32 ? "kiln::mma_tf32" : c->o->precision == KILN_PREC_FP16 ? "kiln::mma_f16" : NULL;
}

/* A conv/gemm operand that --precision fp16 stores as fp16 in the bundle: a constant fp32
 * tensor (the mma rounds it to fp16 anyway; half the bytes to read). */
static bool f16_weight(const cg *c, int v) {
    const kiln_value *val = kiln_cg_val(c, v);
    return c->o->precision == KILN_PREC_FP16 && val->data && val->dtype == KILN_F32 && val->data->dtype == KILN_F32 &&
           kiln_cg_io_index(c->g->inputs, c->g->n_inputs, v) < 0 && kiln_cg_io_index(c->g->outputs, c->g->n_outputs, v) < 0;
}

/* Operand v's kernel argument, converted to fp16 when f16_weight(). Each conversion adds its
 * own copy (conv/gemm weights are not shared between nodes in practice). */
static kiln_status operand_arg(cg *c, int v, kiln_bundle_arg *a) {
    if (!f16_weight(c, v)) return kiln_cg_value_arg(c, v, a);
    const kiln_value *val = kiln_cg_val(c, v);
    const kiln_tensor *t = val->data;
    uint16_t *h = malloc(sizeof *h * (size_t)(t->numel ? t->numel : 1));
    if (!h) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int64_t i = 0; i < t->numel; i++) h[i] = kiln_f32_to_f16(((const float *)t->data)[i]);
    uint64_t off;
    kiln_status st = kiln_bundle_add_weight(c->b, val->name && *val->name ? val->name : "const", KILN_F16, t->rank, t->dims,
                                            h, (uint64_t)t->numel * 2, &off);
    free(h);
    if (st) return st;
    *a = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, off};
    return KILN_OK;
}

/* NHWC tensor-core conv: pixels as the GEMM's M ("pixels_m", conv2d_igemm_mma_nhwc_t: the
 * input loads are coalesced along C) or output channels as M ("channels_m", the NCHW kernel
 * with NHWC indexing: input loads C apart). A tunable choice (kiln_cg_choose); the heuristic
 * takes pixels_m. */
static bool nhwc_swapped(cg *c, const anchor *a, const void *shape, const char *tx, const char *tw, const char *ty) {
    static const char *const names[] = {"pixels_m", "channels_m"};
    struct conv_dims { /* the layout of conv_shape_host (below) */
        int64_t N, C, H, W, K, P, Q, R, S, sh, sw, ph, pw, dh, dw, groups;
    } shv;
    memcpy(&shv, shape, sizeof shv);
    const struct conv_dims *sh = &shv;
    char sig[320];
    snprintf(sig, sizeof sig, "conv_nhwc_mma:%s:x%lldx%lldx%lldx%lld:w%lldx%lldx%lldx%lld:s%lldx%lld:p%lldx%lld:d%lldx%lld:g%lld:%s,%s,%s:b%d:r%d:%s:%s",
             c->o->precision == KILN_PREC_TF32 ? "tf32" : "fp16", (long long)sh->N, (long long)sh->C, (long long)sh->H,
             (long long)sh->W, (long long)sh->K, (long long)(sh->C / sh->groups), (long long)sh->R, (long long)sh->S,
             (long long)sh->sh, (long long)sh->sw, (long long)sh->ph, (long long)sh->pw, (long long)sh->dh,
             (long long)sh->dw, (long long)sh->groups, tx, tw, ty, a->bias >= 0, a->residual >= 0,
             a->fused ? kiln_attr_str(a->fused, "activation", "none") : "none",
             a->fused ? kiln_attr_str(a->fused, "post_activation", "none") : "none");
    return kiln_cg_choose(c, sig, names, 2, 0) == 0;
}

/* ----------------------------------------------------------------------- conv -- */
typedef struct conv_shape_host { /* kernels/conv.cuh conv2d_shape */
    int64_t N, C, H, W, K, P, Q, R, S, sh, sw, ph, pw, dh, dw, groups;
} conv_shape_host;



/* ------------------------------------------------------ fp32 conv (conv_f32) -- */
/* kernels/conv_f32.cuh: the fp32 NCHW implicit GEMM (FFMA) with compile-time shapes, weights
 * transposed at build time to [G][C/G*R*S][K/G] (".crsk"), register-tile micro kernels and
 * split-K through node scratch. Candidates (kiln_cg_choose) are named
 * "f32_BMxBNxBK_TMxTN_kSPLITK"; split-K candidates exist only when the grid without split has
 * fewer than two blocks per SM, each split gets >= 2 K tiles and the partials fit in 64 MiB. The heuristic takes the least
 * f32_cost(). */
typedef struct f32_cfg {
    int bm, bn, bk, tm, tn, splitk;
    bool tuner_only; /* a candidate the tuner times but the heuristic never picks */
} f32_cfg;
static const f32_cfg f32_cfgs[] = {
    {128, 128, 8, 8, 8, 1, false}, {128, 64, 8, 8, 8, 1, false}, {64, 128, 8, 8, 8, 1, false}, {64, 64, 8, 8, 4, 1, false},
    {64, 32, 8, 4, 4, 1, false},   {32, 64, 8, 4, 4, 1, false},  {32, 32, 8, 4, 4, 1, false},  {128, 128, 16, 8, 8, 1, false},
    {128, 64, 8, 8, 8, 2, false},  {128, 64, 8, 8, 8, 4, false}, {64, 64, 8, 8, 4, 2, false},  {64, 64, 8, 8, 4, 4, false},
    {64, 64, 8, 8, 4, 8, false},   {64, 32, 8, 4, 4, 2, false},  {64, 32, 8, 4, 4, 4, false},  {64, 32, 8, 4, 4, 8, false},
    {64, 32, 8, 4, 4, 16, false},  {32, 32, 8, 4, 4, 4, false},  {32, 32, 8, 4, 4, 8, false},  {32, 32, 8, 4, 4, 16, false},
    /* more for the tuner: BK 16, 256-thread 64x64 (more warps for small grids), 128x128 split */
    {64, 64, 16, 8, 4, 1, false},  {64, 64, 8, 4, 4, 1, false},  {64, 64, 8, 4, 4, 4, false},  {64, 64, 8, 4, 4, 8, false},
    {128, 128, 8, 8, 8, 2, false},
    /* for the tuner only: splits that fill a wave of the large tiles on deep, small grids
     * (ResNet-18's 7x7 stage at batch 32 on an H200: 64x64 split 8 is 1600 blocks at six an SM,
     * 2.02 waves; 128x128 split 5 is 260 at two). f32_cost does not model waves: a version that
     * did picked these where the tuner does at batch 32 but cost 6-13% at batch 1 (docs/gpu.md,
     * twenty-third session), so heuristic builds keep their tiles. */
    {128, 128, 8, 8, 8, 3, true}, {128, 128, 8, 8, 8, 4, true}, {128, 128, 8, 8, 8, 5, true},
    {128, 128, 8, 8, 8, 6, true}, {128, 64, 8, 8, 8, 3, true},  {128, 64, 8, 8, 8, 6, true},
    {64, 64, 8, 8, 4, 3, true},   {64, 64, 8, 8, 4, 6, true},
};
#define N_F32_CFGS ((int)(sizeof f32_cfgs / sizeof f32_cfgs[0]))
static int f32_threads(const f32_cfg *f) { return (f->bm / f->tm) * (f->bn / f->tn); }
static void f32_name(const f32_cfg *f, char *buf, size_t len) {
    snprintf(buf, len, "f32_%dx%dx%d_%dx%d_k%d", f->bm, f->bn, f->bk, f->tm, f->tn, f->splitk);
}

/* Estimated seconds of one candidate (a model to rank candidates; the tuner measures): the
 * busiest SM's FFMA work at an efficiency that grows with the thread tile (FFMA per shared
 * load) and the block tile (FFMA per global load) and with resident warps, or the latency of
 * its K tiles (overlapped by the blocks resident on an SM), or the DRAM traffic, whichever is
 * larger, plus the second launch of split-K. */
static double f32_cost(const cg *c, const f32_cfg *f, int64_t KG, int64_t NPIX, int64_t G, int64_t KD, double bytes,
                       double y_elems) {
    const char *arch = c->o->n_archs > 0 && c->o->archs ? c->o->archs[0] : "sm_90";
    const bool a100 = !strncmp(arch, "sm_8", 4);
    const double sms = a100 ? 108 : 132, sm_rate = (a100 ? 19.5e12 : 51e12) / sms, bw = a100 ? 2.0e12 : 3.3e12;
    const int nt = f32_threads(f);
    double blocks = (double)((KG + f->bm - 1) / f->bm) * (double)((NPIX + f->bn - 1) / f->bn) * (double)G * f->splitk;
    double regs = f->tm * f->tn + 40.0, smem = 2.0 * f->bk * (f->bm + f->bn) * 4;
    double res = fmin(fmin(2048.0 / nt, 65536.0 / (nt * regs)), fmin(32.0, 228.0 * 1024 / smem));
    res = fmax(1.0, floor(res));
    double per_sm = fmin(res, blocks / sms); /* blocks resident on a busy SM */
    double tt = (double)f->tm * f->tn, inten = (double)f->bm * f->bn / (f->bm + f->bn);
    double eff = tt / (tt + 12.0) * inten / (inten + 8.0) * fmin(1.0, per_sm * nt / 32.0 / 8.0);
    double kt = ceil((double)((KD + f->bk - 1) / f->bk) / f->splitk);
    double t_ffma = ceil(blocks / sms) * 2.0 * f->bm * f->bn * kt * f->bk / (sm_rate * eff);
    double t_lat = ceil(blocks / (sms * res)) * kt * 6e-7 / fmax(1.0, per_sm);
    double b = bytes + (f->splitk > 1 ? 8.0 * f->splitk * y_elems : 0.0);
    return fmax(fmax(t_ffma, t_lat), b / bw) + (f->splitk > 1 ? 3e-6 : 0.0);
}

/* The fp32 NCHW conv on conv_f32 when it applies (fp32 x, w, y stored NCHW, constant fp32
 * weights, 32-bit indices); *handled = false otherwise (the generic conv2d_igemm runs). fn and
 * epi: the kernel name and the epilogue struct kiln_cg_emit_conv emitted just before. */
static kiln_status emit_conv_f32(cg *c, const kiln_node *n, const anchor *a, const conv_shape_host *sh, const char *fn,
                                 const char *epi, const char *bias_expr, bool *handled) {
    kiln_status st;
    const kiln_value *w = kiln_cg_val(c, a->w);
    *handled = false;
    const int64_t G = sh->groups, KG = sh->K / G, CG = sh->C / G, KD = CG * sh->R * sh->S, NPIX = sh->N * sh->P * sh->Q;
    const int64_t lim = ((int64_t)1 << 31) - 1, y_elems = sh->N * sh->K * sh->P * sh->Q;
    if (y_elems * 16 > lim || sh->N * sh->C * sh->H * sh->W > lim || sh->K * KD > lim) return KILN_OK;

    const char *names[N_F32_CFGS + 1];
    char name_buf[N_F32_CFGS][48];
    int idx[N_F32_CFGS], n_c = 0, heur = 0;
    double best = 0;
    const double bytes = 4.0 * (double)(sh->N * sh->C * sh->H * sh->W + sh->K * KD + y_elems);
    for (int i = 0; i < N_F32_CFGS; i++) {
        const f32_cfg *f = &f32_cfgs[i];
        int64_t kt = (KD + f->bk - 1) / f->bk, blocks1 = ((KG + f->bm - 1) / f->bm) * ((NPIX + f->bn - 1) / f->bn) * G;
        /* split-K: only for small grids, >= 2 K tiles per split, <= 64 MiB of partials (node scratch
         * is not shared between nodes) */
        if (f->splitk > 1 && (kt < 2 * f->splitk || blocks1 >= 264 || (double)f->splitk * (double)y_elems * 4 > 64.0 * 1048576))
            continue;
        if (G * f->splitk > 65535 || (KG + f->bm - 1) / f->bm > 65535) continue; /* grid.z, grid.y limits */
        f32_name(f, name_buf[n_c], sizeof name_buf[n_c]);
        names[n_c] = name_buf[n_c];
        idx[n_c] = i;
        double cost = f32_cost(c, f, KG, NPIX, G, KD, bytes, (double)y_elems);
        if (!f->tuner_only && (best == 0 || cost < best * 0.97))
            best = cost, heur = n_c; /* within 3%: keep the earlier (larger) tile */
        n_c++;
    }
    if (!n_c) return KILN_OK; /* (absurd group counts) the generic path */
    names[n_c] = "f32_generic"; /* the generic conv2d_igemm (never the heuristic's; an escape hatch: --tile f32_generic) */
    char sig[512];
    snprintf(sig, sizeof sig,
             "conv_f32:n%lld:c%lld:h%lld:w%lld:k%lld:p%lld:q%lld:r%lld:s%lld:st%lldx%lld:pad%lldx%lld:dil%lldx%lld:g%lld:"
             "b%d:r%d:%s:%s",
             (long long)sh->N, (long long)sh->C, (long long)sh->H, (long long)sh->W, (long long)sh->K, (long long)sh->P,
             (long long)sh->Q, (long long)sh->R, (long long)sh->S, (long long)sh->sh, (long long)sh->sw,
             (long long)sh->ph, (long long)sh->pw, (long long)sh->dh, (long long)sh->dw, (long long)G, a->bias >= 0,
             a->residual >= 0, a->fused ? kiln_attr_str(a->fused, "activation", "none") : "none",
             a->fused ? kiln_attr_str(a->fused, "post_activation", "none") : "none");
    int pick = kiln_cg_choose(c, sig, names, n_c + 1, heur);
    if (pick == n_c) return KILN_OK; /* f32_generic: kiln_cg_emit_conv's generic path */
    const f32_cfg *f = &f32_cfgs[idx[pick]];
    const int threads = f32_threads(f);
    kiln_cg_printf(&c->tiles, "%s=%s;", c->group, names[pick]);

    char shp[96];
    snprintf(shp, sizeof shp, "%s_shape", fn);
    kiln_cg_printf(&c->src, "// tile %s\n", names[pick]); /* (tests read it) */
    kiln_cg_printf(&c->src,
                   "struct %s {\n    static constexpr int N = %lld, C = %lld, H = %lld, W = %lld, K = %lld, P = %lld, Q = "
                   "%lld, R = %lld, S = %lld;\n    static constexpr int SH = %lld, SW = %lld, PH = %lld, PW = %lld, DH = "
                   "%lld, DW = %lld, G = %lld;\n};\n",
                   shp, (long long)sh->N, (long long)sh->C, (long long)sh->H, (long long)sh->W, (long long)sh->K,
                   (long long)sh->P, (long long)sh->Q, (long long)sh->R, (long long)sh->S, (long long)sh->sh,
                   (long long)sh->sw, (long long)sh->ph, (long long)sh->pw, (long long)sh->dh, (long long)sh->dw,
                   (long long)G);
    kiln_cg_printf(&c->src,
                   "#include \"conv_f32.cuh\"\n"
                   "extern \"C\" __global__ void __launch_bounds__(%d) %s(const float *x, const float *w, const %s::bias_t "
                   "*bias, const %s::res_t *res, float *y, float *part) {\n"
                   "    kiln::conv_f32<%s, %d, %d, %d, %d, %d, %d, %s>(x, w, bias, res, y, part);\n}\n",
                   threads, fn, epi, epi, shp, f->bm, f->bn, f->bk, f->tm, f->tn, f->splitk, epi);

    /* weights transposed to [G][KD][KG] (fp32) */
    kiln_bundle_arg args[6];
    {
        const kiln_tensor *t = w->data;
        float *h = malloc(sizeof *h * (size_t)(sh->K * KD));
        if (!h) return kiln_errorf(KILN_ERR_OOM, "out of memory");
        for (int64_t g = 0; g < G; g++)
            for (int64_t m = 0; m < KG; m++)
                for (int64_t k = 0; k < KD; k++)
                    h[(g * KD + k) * KG + m] = (float)kiln_tensor_get(t, (g * KG + m) * KD + k);
        char wname[256];
        snprintf(wname, sizeof wname, "%s.crsk", w->name && *w->name ? w->name : "const");
        int64_t dims[3] = {G, KD, KG};
        uint64_t off;
        st = kiln_bundle_add_weight(c->b, wname, KILN_F32, 3, dims, h, (uint64_t)(sh->K * KD) * 4, &off);
        free(h);
        if (st) return st;
        args[1] = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, off};
    }
    if ((st = kiln_cg_value_arg(c, a->x, &args[0]))) return st;
    if (a->bias >= 0 ? (st = kiln_cg_value_arg(c, a->bias, &args[2])) : (args[2] = kiln_cg_null_arg, 0)) return st;
    if (a->residual >= 0 ? (st = kiln_cg_value_arg(c, a->residual, &args[3])) : (args[3] = kiln_cg_null_arg, 0)) return st;
    if ((st = kiln_cg_value_arg(c, a->y, &args[4]))) return st;
    if (f->splitk > 1) {
        if ((st = kiln_cg_scratch(c, (uint64_t)f->splitk * (uint64_t)y_elems * 4, &args[5]))) return st;
    } else {
        args[5] = kiln_cg_null_arg;
    }
    const uint64_t gx = (uint64_t)((NPIX + f->bn - 1) / f->bn), gy = (uint64_t)((KG + f->bm - 1) / f->bm);
    if ((st = kiln_cg_launch(c, fn, gx, gy, (uint64_t)(G * f->splitk), (uint32_t)threads, args, 6))) return st;
    *handled = true;
    if (f->splitk == 1) return KILN_OK;

    /* split-K: the ordered sum of the partials and the epilogue (its own epilogue struct: the
     * main kernel's text may have been deduplicated away) */
    char rfn[64], repi[80], rshp[96];
    kiln_cg_kernel_name(c, "conv_f32_splitk", rfn, sizeof rfn);
    snprintf(repi, sizeof repi, "%s_epilogue", rfn);
    snprintf(rshp, sizeof rshp, "%s_shape", rfn);
    kiln_cg_printf(&c->src, "\n// %s: %s, the sum of %d split-K partials and the epilogue\n", rfn, c->group, f->splitk);
    if ((st = kiln_cg_conv_emit_epilogue(c, n, repi, bias_expr))) return st;
    kiln_cg_printf(&c->src,
                   "struct %s {\n    static constexpr int N = %lld, K = %lld, P = %lld, Q = %lld;\n};\n"
                   "extern \"C\" __global__ void __launch_bounds__(%d) %s(const float *part, const %s::bias_t *bias, const "
                   "%s::res_t *res, float *y) {\n"
                   "    kiln::conv_f32_splitk_reduce<%s, %d, %s>(part, bias, res, y);\n}\n",
                   rshp, (long long)sh->N, (long long)sh->K, (long long)sh->P, (long long)sh->Q, BLOCK_1D, rfn, repi, repi,
                   rshp, f->splitk, repi);
    kiln_bundle_arg rargs[4] = {args[5], args[2], args[3], args[4]};
    return kiln_cg_launch(c, rfn, kiln_cg_grid_1d(y_elems), 1, 1, BLOCK_1D, rargs, 4);
}

kiln_status kiln_cg_emit_conv(cg *c, const kiln_node *n) {
    if (n->op == KILN_OP_Fused && kiln_attr_str(n, "pool", NULL)) return kiln_cg_emit_conv_pool(c, n); /* cg_conv_pool.c */
    bool nhwc = false; /* the fp16 NHWC tensor-core kernel when it applies (cg_conv_nhwc.c) */
    kiln_status st = kiln_cg_emit_conv_nhwc(c, n, &nhwc);
    if (st || nhwc) return st;
    if (n->op == KILN_OP_Fused && kiln_attr_int(n, "pair_x_input", -1) >= 0) /* fuse-conv-pair checked its conditions */
        return kiln_errorf(KILN_ERR_INTERNAL, "conv pair group '%s': the fp16 NHWC kernel did not take it", c->group);
    bool dw = false; /* depthwise: the compile-time-shape kernels (cg_conv_dw.c) */
    if ((st = kiln_cg_emit_conv_dw(c, n, &dw)) || dw) return st;
    anchor a;
    if ((st = get_anchor(c, n, &a))) return st;
    if (a.an->op != KILN_OP_Conv)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "anchor %s", kiln_op_table[a.an->op].onnx_type);
    const kiln_value *x = kiln_cg_val(c, a.x), *w = kiln_cg_val(c, a.w), *y = kiln_cg_val(c, a.y);
    const char *tx = NULL, *tw = NULL, *ty = NULL; /* gcc 12 -O2 sees a maybe-uninitialized path */
    if ((st = elem_type(x, &tx)) || (st = elem_type(w, &tw)) || (st = elem_type(y, &ty))) return st;
    if (x->rank != 4 && x->rank != 3) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%d-D convolution", x->rank - 2);
    /* NHWC (select-layout): the same kernels index x, y and the residual as [N][H][W][C]; a
     * layout-invariant operand (C == 1 or H*W == 1, stored NCHW) has the same bytes */
    const bool nhwc_layout = kiln_cg_node_nhwc(n) && x->rank == 4;
    const char *lay = nhwc_layout ? ", true" : ""; /* NCHW: the template's default (the same source as before) */
    int nsp = x->rank - 2;
    int64_t in[2], k[2], s[2], d[2], pb[2], pe[2];
    for (int i = 0; i < nsp; i++) {
        in[i] = x->dims[2 + i];
        k[i] = w->dims[2 + i];
    }
    kiln_cg_ints_or(a.an, "strides", nsp, 1, s);
    kiln_cg_ints_or(a.an, "dilations", nsp, 1, d);
    if ((st = kiln_cg_window_pads(a.an, nsp, in, k, s, d, pb, pe))) return st;
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
        int64_t bn = kiln_cg_numel(kiln_cg_val(c, a.bias));
        if (bn != sh.K && bn != 1) return kiln_errorf(KILN_ERR_UNSUPPORTED, "a bias that is not per channel");
        bias_expr = bn == 1 ? KILN_CG_BIAS_SCALAR : KILN_CG_BIAS_CH;
    }
    if (a.residual >= 0 && kiln_cg_numel(kiln_cg_val(c, a.residual)) != kiln_cg_numel(y))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "a residual of another shape");

    char fn[64], epi[80];
    int64_t taps = (sh.C / sh.groups) * sh.R * sh.S;
    /* few taps: the direct kernel, except fp32 convs with several input channels per group and
     * constant weights (MobileNetV2's 1x1 convs on 16-24 channels): conv_f32 shares each input
     * load across its tile's output channels */
    bool direct = taps <= 32 && !(c->o->precision == KILN_PREC_FP32 && sh.C / sh.groups > 1 && !nhwc_layout && w->data &&
                                  w->data->dtype == KILN_F32 && kiln_cg_io_index(c->g->inputs, c->g->n_inputs, a.w) < 0);
    const char *mma = direct ? NULL : mma_kind(c);
    if (!direct && f16_weight(c, a.w)) tw = "__half";
    kiln_cg_kernel_name(c, direct ? "conv_direct" : mma ? "conv_mma" : "conv_igemm", fn, sizeof fn);
    snprintf(epi, sizeof epi, "%s_epilogue", fn);
    kiln_cg_printf(&c->src, "\n// %s: %s (%s), x[%lld,%lld,%lld,%lld] * w[%lld,%lld,%lld,%lld] group %lld%s\n", fn, c->group,
              a.fused ? "conv_epilogue" : "Conv", (long long)sh.N, (long long)sh.C, (long long)sh.H, (long long)sh.W,
              (long long)sh.K, (long long)(sh.C / sh.groups), (long long)sh.R, (long long)sh.S, (long long)sh.groups,
              nhwc_layout ? ", NHWC" : "");
    if ((st = emit_epilogue_head(c, &a, epi, "kiln::i64 ch, kiln::i64 o")) || (st = emit_epilogue_body(c, &a, bias_expr)))
        return st;
    int bm = 0, bn = 0, tm = 0, tn = 0;
    bool f32 = false; /* emitted by emit_conv_f32 */
    uint64_t gx, gy, gz;
    uint32_t threads;
    if (direct && c->o->precision == KILN_PREC_FP32 && !nhwc_layout && sh.C == sh.groups && !strcmp(tx, "float") && !strcmp(tw, "float") &&
        !strcmp(ty, "float") && sh.N * sh.K * sh.P * sh.Q < ((int64_t)1 << 31) && sh.N * sh.C * sh.H * sh.W < ((int64_t)1 << 31)) {
        /* fp32 NCHW depthwise: kernels/conv_f32.cuh conv_f32_dw (constant shapes, unrolled taps) */
        kiln_cg_printf(&c->src,
                       "struct %s_shape {\n    static constexpr int N = %lld, C = %lld, H = %lld, W = %lld, K = %lld, P = "
                       "%lld, Q = %lld, R = %lld, S = %lld;\n    static constexpr int SH = %lld, SW = %lld, PH = %lld, PW = "
                       "%lld, DH = %lld, DW = %lld, G = %lld;\n};\n"
                       "#include \"conv_f32.cuh\"\n"
                       "extern \"C\" __global__ void __launch_bounds__(%d) %s(const float *x, const float *w, const "
                       "%s::bias_t *bias, const %s::res_t *res, float *y) {\n"
                       "    kiln::conv_f32_dw<%s_shape, %s>(x, w, bias, res, y);\n}\n",
                       fn, (long long)sh.N, (long long)sh.C, (long long)sh.H, (long long)sh.W, (long long)sh.K,
                       (long long)sh.P, (long long)sh.Q, (long long)sh.R, (long long)sh.S, (long long)sh.sh,
                       (long long)sh.sw, (long long)sh.ph, (long long)sh.pw, (long long)sh.dh, (long long)sh.dw,
                       (long long)sh.groups, BLOCK_1D, fn, epi, epi, fn, epi);
        kiln_bundle_arg args[5];
        if ((st = kiln_cg_value_arg(c, a.x, &args[0])) || (st = kiln_cg_value_arg(c, a.w, &args[1]))) return st;
        if (a.bias >= 0 ? (st = kiln_cg_value_arg(c, a.bias, &args[2])) : (args[2] = kiln_cg_null_arg, 0)) return st;
        if (a.residual >= 0 ? (st = kiln_cg_value_arg(c, a.residual, &args[3])) : (args[3] = kiln_cg_null_arg, 0))
            return st;
        if ((st = kiln_cg_value_arg(c, a.y, &args[4]))) return st;
        kiln_cg_printf(&c->tiles, "%s=direct_f32;", c->group);
        return kiln_cg_launch(c, fn, kiln_cg_grid_1d(sh.N * sh.K * sh.P * sh.Q), 1, 1, BLOCK_1D, args, 5);
    } else if (direct) {
        kiln_cg_printf(&c->src,
                  "extern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, const %s *w, const %s::bias_t "
                  "*bias, const %s::res_t *res, %s *y, kiln::conv2d_shape s) {\n"
                  "    kiln::conv2d_direct<%s, %s, %s, %s%s>({x, w, bias, res, y, s});\n}\n",
                  BLOCK_1D, fn, tx, tw, epi, epi, ty, epi, tx, tw, ty, lay);
        gx = kiln_cg_grid_1d(sh.N * sh.K * sh.P * sh.Q), gy = gz = 1, threads = BLOCK_1D;
        kiln_cg_printf(&c->tiles, "%s=direct;", c->group);
    } else if (mma && nhwc_layout && nhwc_swapped(c, &a, &sh, tx, tw, ty)) {
        /* NHWC, pixels as the GEMM's M (conv2d_igemm_mma_nhwc_t: coalesced input loads) */
        int64_t M = sh.N * sh.P * sh.Q, N = sh.K / sh.groups;
        mma_tile t = mma_tile_pick(M, N, sh.groups);
        threads = mma_threads(t);
        kiln_cg_printf(&c->src,
                  "extern \"C\" __global__ void __launch_bounds__(%u) %s(const %s *x, const %s *w, const %s::bias_t "
                  "*bias, const %s::res_t *res, %s *y, kiln::conv2d_shape s) {\n"
                  "    kiln::conv2d_igemm_mma_nhwc_t<%d, %d, %d, %d, %d, %s, %s, %s, %s, %s, %d, %d>({x, w, bias, res, y, s});\n}\n",
                  threads, fn, tx, tw, epi, epi, ty, t.bm, t.bn, t.bk, t.wm, t.wn, mma, epi, tx, tw, ty, (int)sh.R,
                  (int)sh.S);
        gx = (uint64_t)((N + t.bn - 1) / t.bn), gy = (uint64_t)((M + t.bm - 1) / t.bm), gz = (uint64_t)sh.groups;
        kiln_cg_printf(&c->tiles, "%s=%s:%dx%dx%d/%dx%d:nhwc_t;", c->group, mma + 6, t.bm, t.bn, t.bk, t.wm, t.wn);
    } else if (mma) {
        char sig[400];
        snprintf(sig, sizeof sig, "conv_mma:%s:%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld:%s,%s,%s:b%dr%d",
                 mma + 6, (long long)sh.N, (long long)sh.C, (long long)sh.H, (long long)sh.W, (long long)sh.K,
                 (long long)sh.R, (long long)sh.S, (long long)sh.sh, (long long)sh.sw, (long long)sh.ph, (long long)sh.pw,
                 (long long)sh.dh, (long long)sh.dw, (long long)sh.groups, tx, tw, ty, a.bias >= 0, a.residual >= 0);
        mma_tile t = mma_tile_choose(c, sig, sh.K / sh.groups, sh.N * sh.P * sh.Q, sh.groups);
        threads = mma_threads(t);
        kiln_cg_printf(&c->src,
                  "extern \"C\" __global__ void __launch_bounds__(%u) %s(const %s *x, const %s *w, const %s::bias_t "
                  "*bias, const %s::res_t *res, %s *y, kiln::conv2d_shape s) {\n"
                  "    kiln::conv2d_igemm_mma<%d, %d, %d, %d, %d, %s, %s, %s, %s, %s, %d, %d%s>({x, w, bias, res, y, s});\n}\n",
                  threads, fn, tx, tw, epi, epi, ty, t.bm, t.bn, t.bk, t.wm, t.wn, mma, epi, tx, tw, ty, (int)sh.R,
                  (int)sh.S, lay);
        int64_t N = sh.N * sh.P * sh.Q, M = sh.K / sh.groups;
        gx = (uint64_t)((N + t.bn - 1) / t.bn), gy = (uint64_t)((M + t.bm - 1) / t.bm), gz = (uint64_t)sh.groups;
        kiln_cg_printf(&c->tiles, "%s=%s:%dx%dx%d/%dx%d;", c->group, mma + 6, t.bm, t.bn, t.bk, t.wm, t.wn);
    } else if (!nhwc_layout && !strcmp(tx, "float") && !strcmp(tw, "float") && !strcmp(ty, "float") && w->data &&
               w->data->dtype == KILN_F32 && kiln_cg_io_index(c->g->inputs, c->g->n_inputs, a.w) < 0 &&
               (st = emit_conv_f32(c, n, &a, &sh, fn, epi, bias_expr, &f32)) == KILN_OK && f32) {
        return KILN_OK; /* launched (conv_f32 and, with split-K, its reduce) */
    } else if (st) {
        return st;
    } else {
        tile_pick(sh.K / sh.groups, &bm, &bn, &tm, &tn);
        threads = (uint32_t)((bm / tm) * (bn / tn));
        kiln_cg_printf(&c->src,
                  "extern \"C\" __global__ void __launch_bounds__(%u) %s(const %s *x, const %s *w, const %s::bias_t "
                  "*bias, const %s::res_t *res, %s *y, kiln::conv2d_shape s) {\n"
                  "    kiln::conv2d_igemm<%d, %d, %d, %d, %d, %s, %s, %s, %s%s>({x, w, bias, res, y, s});\n}\n",
                  threads, fn, tx, tw, epi, epi, ty, bm, bn, TILE_BK, tm, tn, epi, tx, tw, ty, lay);
        int64_t N = sh.N * sh.P * sh.Q, M = sh.K / sh.groups;
        gx = (uint64_t)((N + bn - 1) / bn), gy = (uint64_t)((M + bm - 1) / bm), gz = (uint64_t)sh.groups;
        kiln_cg_printf(&c->tiles, "%s=%dx%dx%d/%dx%d;", c->group, bm, bn, TILE_BK, tm, tn);
    }
    kiln_bundle_arg args[6];
    if ((st = kiln_cg_value_arg(c, a.x, &args[0])) ||
        (st = (direct ? kiln_cg_value_arg(c, a.w, &args[1]) : operand_arg(c, a.w, &args[1]))))
        return st;
    if (a.bias >= 0 ? (st = kiln_cg_value_arg(c, a.bias, &args[2])) : (args[2] = kiln_cg_null_arg, 0)) return st;
    if (a.residual >= 0 ? (st = kiln_cg_value_arg(c, a.residual, &args[3])) : (args[3] = kiln_cg_null_arg, 0)) return st;
    if ((st = kiln_cg_value_arg(c, a.y, &args[4])) || (st = kiln_cg_bytes_arg(c, &sh, sizeof sh, &args[5]))) return st;
    return kiln_cg_launch(c, fn, gx, gy, gz, threads, args, 6);
}

/* For cg_conv_nhwc.c (cg_internal.h). */
kiln_status kiln_cg_conv_operands_get(cg *c, const kiln_node *n, kiln_cg_conv_operands *o) {
    anchor a;
    kiln_status st = get_anchor(c, n, &a);
    if (st) return st;
    *o = (kiln_cg_conv_operands){a.an, a.x, a.w, a.bias, a.residual, a.y};
    return KILN_OK;
}

kiln_status kiln_cg_conv_emit_epilogue(cg *c, const kiln_node *n, const char *epi, const char *bias_expr) {
    anchor a;
    kiln_status st = get_anchor(c, n, &a);
    if (!st) st = emit_epilogue_head(c, &a, epi, "kiln::i64 ch, kiln::i64 o");
    if (!st) st = emit_epilogue_stmts(c, &a, bias_expr);
    /* a per-channel bias: also apply_b, the same with the channel's bias value given, for kernels
     * that load it ahead of the epilogue (conv_tma_pp_f16) */
    if (!st && bias_expr && !strcmp(bias_expr, KILN_CG_BIAS_CH)) {
        kiln_cg_printf(&c->src,
                       "    static __device__ __forceinline__ float apply_b(float b, const res_t *res, kiln::i64 o, float v) {\n");
        st = emit_epilogue_stmts(c, &a, "b");
    }
    if (!st) kiln_cg_printf(&c->src, "};\n");
    return st;
}

/* ------------------------------------------------------------ gemm / matmul -- */
/* kernels/gemv.cuh: small-M Gemm/MatMul, one weight row per warp, GEMV_WARPS warps a block,
 * up to GEMV_MB rows of A per block (more rows: more blocks, each re-reading its weight rows
 * from L2). */
#define GEMV_MAX_M 64
#define GEMV_WARPS 4
#define GEMV_MB 8
#define GEMV_MMA_WARPS 8 /* gemv_mma_rows: warps splitting K in a block of 8 output columns */
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

kiln_status kiln_cg_emit_gemm(cg *c, const kiln_node *n) {
    anchor a;
    kiln_status st = get_anchor(c, n, &a);
    if (st) return st;
    const kiln_node *an = a.an;
    if (an->op != KILN_OP_Gemm && an->op != KILN_OP_MatMul)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "anchor %s", kiln_op_table[an->op].onnx_type);
    const kiln_value *A = kiln_cg_val(c, a.x), *B = kiln_cg_val(c, a.w), *Y = kiln_cg_val(c, a.y);
    const char *ta_ = NULL, *tb_ = NULL, *ty = NULL; /* see kiln_cg_emit_conv */
    if ((st = elem_type(A, &ta_)) || (st = elem_type(B, &tb_)) || (st = elem_type(Y, &ty))) return st;
    if (f16_weight(c, a.x)) ta_ = "__half"; /* --precision fp16: constant operands stored as fp16 */
    if (f16_weight(c, a.w)) tb_ = "__half";
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
        const kiln_value *bv = kiln_cg_val(c, a.bias);
        int64_t dm = bv->rank >= 2 ? bv->dims[bv->rank - 2] : 1, dn = bv->rank >= 1 ? bv->dims[bv->rank - 1] : 1;
        for (int i = 0; i < bv->rank - 2; i++)
            if (bv->dims[i] != 1) return kiln_errorf(KILN_ERR_UNSUPPORTED, "a bias that broadcasts over the batch");
        /* a 1-D output (MatMul with a vector B) has only N = 1: its last dim is M */
        bool vec_b = an->op == KILN_OP_MatMul && B->rank == 1;
        if (vec_b) dm = dn, dn = 1;
        int64_t sm = dm == 1 ? 0 : dn, sn = dn == 1 ? 0 : 1;
        char bt[64];
        snprintf(bias_expr, sizeof bias_expr, "%s%skiln::to_f32(bias[m * %lldll + n * %lldll])",
                 a.bias_is_gemm_c && beta != 1.0f ? kiln_cg_flit(bt, sizeof bt, beta) : "",
                 a.bias_is_gemm_c && beta != 1.0f ? " * " : "", (long long)sm, (long long)sn);
    }
    if (a.residual >= 0 && kiln_cg_numel(kiln_cg_val(c, a.residual)) != kiln_cg_numel(Y))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "a residual of another shape");
    const char *mma = mma_kind(c);
    /* Candidates: the mma tiles (tf32/fp16) or the FFMA tile (fp32), plus the small-M warp-per-
     * column kernel (kernels/gemv.cuh, "rows_w4") when M <= GEMV_MAX_M; the heuristic takes the
     * latter for a constant B with contiguous K (a classifier's transB=1 weights). */
    char sig[400];
    snprintf(sig, sizeof sig, "%s:%s:%lld,%lld,%lld,%lld:%lld,%lld,%lld,%lld:%s,%s,%s:b%dr%d", mma ? "gemm_mma" : "gemm",
             mma ? mma + 6 : "f32", (long long)sh.M, (long long)sh.N, (long long)sh.K, (long long)Z, (long long)sh.sam,
             (long long)sh.sak, (long long)sh.sbk, (long long)sh.sbn, ta_, tb_, ty, a.bias >= 0, a.residual >= 0);
    bool gemv = false, mrows = false;
    mma_tile t = {0, 0, 0, 0, 0};
    /* "mma_rows_w8" (kernels/gemv.cuh gemv_mma_rows): the small-M kernel on fp16 tensor cores, for
     * fp16 operands with k contiguous, K % 16 == 0 and even row strides (4-byte fragment loads) */
    const bool mrows_ok = !strcmp(ta_, "__half") && !strcmp(tb_, "__half") && sh.sak == 1 && sh.sbk == 1 &&
                          sh.K % 16 == 0 && sh.sam % 2 == 0 && sh.sbn % 2 == 0 && sh.M <= GEMV_MAX_M;
    if (sh.M <= GEMV_MAX_M) {
        char names[MMA_N_ALL + 2][40];
        const char *np[MMA_N_ALL + 2];
        int nc = 0, heur = 0;
        mma_tile h = mma_tile_pick(sh.M, sh.N, Z);
        if (mma)
            for (; nc < MMA_N_ALL; nc++) {
                const mma_tile *ti = &mma_all[nc];
                snprintf(names[nc], sizeof names[nc], "%dx%dx%d/%dx%d", ti->bm, ti->bn, ti->bk, ti->wm, ti->wn);
                if (!memcmp(ti, &h, sizeof h)) heur = nc;
            }
        else
            snprintf(names[nc++], sizeof names[0], "tiled");
        snprintf(names[nc++], sizeof names[0], "rows_w%d", GEMV_WARPS);
        const int i_rows = nc - 1;
        if (mrows_ok) snprintf(names[nc++], sizeof names[0], "mma_rows_w%d", GEMV_MMA_WARPS);
        for (int i = 0; i < nc; i++) np[i] = names[i];
        /* the heuristic: a classifier (constant B, contiguous K) takes a rows kernel; tensor
         * cores from 8 rows up (below, the fp32 kernel's conversions are few) */
        if (sh.sbk == 1 && B->data) heur = mrows_ok && sh.M >= 8 ? nc - 1 : i_rows;
        int pick = kiln_cg_choose(c, sig, np, nc, heur);
        gemv = pick == i_rows;
        mrows = mrows_ok && pick == nc - 1;
        if (mma && !gemv && !mrows) t = mma_all[pick];
    } else if (mma) {
        t = mma_tile_choose(c, sig, sh.M, sh.N, Z);
    }
    char fn[64], epi[80], al[64];
    kiln_cg_kernel_name(c, gemv || mrows ? "gemv" : mma ? "gemm_mma" : "gemm", fn, sizeof fn);
    snprintf(epi, sizeof epi, "%s_epilogue", fn);
    kiln_cg_printf(&c->src, "\n// %s: %s (%s), M %lld N %lld K %lld, batch %lld\n", fn, c->group,
              a.fused ? "gemm_epilogue" : kiln_op_table[an->op].onnx_type, (long long)sh.M, (long long)sh.N,
              (long long)sh.K, (long long)Z);
    if ((st = emit_epilogue_head(c, &a, epi, "kiln::i64 m, kiln::i64 n, kiln::i64 o"))) return st;
    if (alpha != 1.0f) kiln_cg_printf(&c->src, "        v *= %s;\n", kiln_cg_flit(al, sizeof al, alpha));
    if ((st = emit_epilogue_body(c, &a, a.bias >= 0 ? bias_expr : NULL))) return st;
    uint32_t threads;
    uint64_t gx, gy;
    if (gemv) {
        /* rows of A per block: M itself up to GEMV_MB (one pass over the weights at batch 1) */
        int mb = sh.M <= 1 ? 1 : sh.M <= 2 ? 2 : sh.M <= 4 ? 4 : GEMV_MB;
        threads = GEMV_WARPS * 32;
        gx = (uint64_t)((sh.N + GEMV_WARPS - 1) / GEMV_WARPS), gy = (uint64_t)((sh.M + mb - 1) / mb);
        kiln_cg_printf(&c->src,
                       "extern \"C\" __global__ void __launch_bounds__(%u) %s(const %s *a, const %s *b, const %s::bias_t "
                       "*bias, const %s::res_t *res, %s *y, kiln::gemm_shape s) {\n"
                       "    kiln::gemv_rows<%d, %d, %s, %s, %s, %s>({a, b, bias, res, y, s});\n}\n",
                       threads, fn, ta_, tb_, epi, epi, ty, GEMV_WARPS, mb, epi, ta_, tb_, ty);
        kiln_cg_printf(&c->tiles, "%s=rows_w%d/m%d;", c->group, GEMV_WARPS, mb);
    } else if (mrows) {
        const int mt = (int)((sh.M + 15) / 16);
        threads = GEMV_MMA_WARPS * 32;
        gx = (uint64_t)((sh.N + 7) / 8), gy = 1;
        kiln_cg_printf(&c->src,
                       "extern \"C\" __global__ void __launch_bounds__(%u) %s(const __half *a, const __half *b, const %s::bias_t "
                       "*bias, const %s::res_t *res, %s *y, kiln::gemm_shape s) {\n"
                       "    kiln::gemv_mma_rows<%d, %d, %s, %s>({a, b, bias, res, y, s});\n}\n",
                       threads, fn, epi, epi, ty, GEMV_MMA_WARPS, mt, epi, ty);
        kiln_cg_printf(&c->tiles, "%s=mma_rows_w%d/mt%d;", c->group, GEMV_MMA_WARPS, mt);
    } else if (mma) {
        threads = mma_threads(t);
        gx = (uint64_t)((sh.N + t.bn - 1) / t.bn), gy = (uint64_t)((sh.M + t.bm - 1) / t.bm);
        kiln_cg_printf(&c->src,
                  "extern \"C\" __global__ void __launch_bounds__(%u) %s(const %s *a, const %s *b, const %s::bias_t "
                  "*bias, const %s::res_t *res, %s *y, kiln::gemm_shape s) {\n"
                  "    kiln::mma_gemm<%d, %d, %d, %d, %d, %s, kiln::gemm_problem<%s, %s, %s, %s>>({a, b, bias, res, y, s}, "
                  "s.M, s.N, s.K);\n}\n",
                  threads, fn, ta_, tb_, epi, epi, ty, t.bm, t.bn, t.bk, t.wm, t.wn, mma, epi, ta_, tb_, ty);
        kiln_cg_printf(&c->tiles, "%s=%s:%dx%dx%d/%dx%d;", c->group, mma + 6, t.bm, t.bn, t.bk, t.wm, t.wn);
    } else {
        int bm, bn, tm, tn;
        tile_pick(sh.M, &bm, &bn, &tm, &tn);
        threads = (uint32_t)((bm / tm) * (bn / tn));
        gx = (uint64_t)((sh.N + bn - 1) / bn), gy = (uint64_t)((sh.M + bm - 1) / bm);
        kiln_cg_printf(&c->src,
                  "extern \"C\" __global__ void __launch_bounds__(%u) %s(const %s *a, const %s *b, const %s::bias_t "
                  "*bias, const %s::res_t *res, %s *y, kiln::gemm_shape s) {\n"
                  "    kiln::tiled_gemm<%d, %d, %d, %d, %d, kiln::gemm_problem<%s, %s, %s, %s>>({a, b, bias, res, y, s}, "
                  "s.M, s.N, s.K);\n}\n",
                  threads, fn, ta_, tb_, epi, epi, ty, bm, bn, TILE_BK, tm, tn, epi, ta_, tb_, ty);
        kiln_cg_printf(&c->tiles, "%s=%dx%dx%d/%dx%d;", c->group, bm, bn, TILE_BK, tm, tn);
    }
    /* operand_arg: fp16 copies of constant operands at --precision fp16 (ta_/tb_ say __half) */
    kiln_bundle_arg args[6];
    if ((st = operand_arg(c, a.x, &args[0])) || (st = operand_arg(c, a.w, &args[1]))) return st;
    if (a.bias >= 0 ? (st = kiln_cg_value_arg(c, a.bias, &args[2])) : (args[2] = kiln_cg_null_arg, 0)) return st;
    if (a.residual >= 0 ? (st = kiln_cg_value_arg(c, a.residual, &args[3])) : (args[3] = kiln_cg_null_arg, 0)) return st;
    if ((st = kiln_cg_value_arg(c, a.y, &args[4])) || (st = kiln_cg_bytes_arg(c, &sh, sizeof sh, &args[5]))) return st;
    return kiln_cg_launch(c, fn, gx, gy, (uint64_t)Z, threads, args, 6);
}

/* ---------------------------------------------------------------- pooling -- */

