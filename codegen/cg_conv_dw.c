/*
 * cg_conv_dw.c — depthwise 2-D convolutions (group == C == K, weights [C][1][R][S]) on the
 * compile-time-shape kernels of kernels/conv_dw.cuh, NHWC (select-layout's regions at tf32 and
 * fp16) and NCHW (fp32).
 *
 * kiln_cg_emit_conv (cg_conv.c) asks kiln_cg_emit_conv_dw after the NHWC implicit GEMM; it
 * handles a Conv or conv_epilogue group when: 2-D, group == C == K, x and y fp32 or fp16 in the
 * same layout (a residual too), tensors under 2^31 elements, a per-channel or scalar bias, and
 * for NHWC constant weights (added to the bundle transposed to [R][S][C] in x's type, name
 * ".rsc", so that a thread's V channels of one tap are one aligned vector). Anything else is
 * left to the generic path (*handled = false, KILN_OK).
 *
 * Candidates (kiln_cg_choose, names "dw_q1".."dw_q8"): TQ, the output columns one thread
 * computes; and, for R*S <= 32, "direct": not handled here (cg_conv.c's conv2d_direct, the
 * previous kernel). The heuristic takes 4 at stride 1 and 2 otherwise (window reuse in registers),
 * halved while the grid has fewer than DW_MIN_THREADS threads (small late layers need
 * parallelism more than reuse).
 */
#include "codegen/cg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DW_BLOCK 128
#define DW_MIN_THREADS (132 * 1024) /* about half of an H100's resident threads */

static const int dw_tq[] = {1, 2, 4, 8};
#define DW_N_TQ ((int)(sizeof dw_tq / sizeof dw_tq[0]))

static bool dtype_ok(const kiln_value *v) { return v->dtype == KILN_F32 || v->dtype == KILN_F16; }

/* An arena argument's alignment in bytes is its offset's; bound values are device allocations. */
static bool arg_aligned(const kiln_bundle_arg *a, uint64_t bytes) {
    return a->kind != KILN_ARG_ARENA || a->value % bytes == 0;
}

/* The transposed weights [R][S][C] (fp16 when half) as a bundle constant. */
static kiln_status add_rsc_weights(cg *c, const kiln_value *w, bool half, kiln_bundle_arg *arg) {
    const int64_t C = w->dims[0], R = w->dims[2], S = w->dims[3], n = C * R * S;
    const size_t es = half ? 2 : 4;
    void *buf = malloc((size_t)n * es);
    if (!buf) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t t = 0; t < R * S; t++) {
            float v = (float)kiln_tensor_get(w->data, ch * R * S + t);
            if (half) ((uint16_t *)buf)[t * C + ch] = kiln_f32_to_f16(v);
            else ((float *)buf)[t * C + ch] = v;
        }
    char name[256];
    snprintf(name, sizeof name, "%s.rsc", w->name && *w->name ? w->name : "const");
    int64_t dims[3] = {R, S, C};
    uint64_t off;
    kiln_status st = kiln_bundle_add_weight(c->b, name, half ? KILN_F16 : KILN_F32, 3, dims, buf, (uint64_t)n * es, &off);
    free(buf);
    if (!st) *arg = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, off};
    return st;
}

kiln_status kiln_cg_emit_conv_dw(cg *c, const kiln_node *n, bool *handled) {
    *handled = false;
    kiln_cg_conv_operands a;
    kiln_status st = kiln_cg_conv_operands_get(c, n, &a);
    if (st || a.an->op != KILN_OP_Conv) return KILN_OK; /* the generic path reports it */
    const kiln_value *x = kiln_cg_val(c, a.x), *w = kiln_cg_val(c, a.w), *y = kiln_cg_val(c, a.y);
    if (x->rank != 4 || y->rank != 4 || w->rank != 4 || !dtype_ok(x) || !dtype_ok(y) || !dtype_ok(w)) return KILN_OK;
    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t K = y->dims[1], P = y->dims[2], Q = y->dims[3], R = w->dims[2], S = w->dims[3];
    if (kiln_attr_int(a.an, "group", 1) != C || K != C || w->dims[0] != C || w->dims[1] != 1 || y->dims[0] != N)
        return KILN_OK;
    /* layouts: x, y (and a residual) all NHWC or all NCHW; C == 1 is the same bytes either way */
    const bool nhwc = kiln_cg_node_nhwc(n);
    if (nhwc != (y->layout == KILN_LAYOUT_NHWC) || (C != 1 && nhwc != (x->layout == KILN_LAYOUT_NHWC))) return KILN_OK;
    if (a.residual >= 0) {
        const kiln_value *rv = kiln_cg_val(c, a.residual);
        if (!dtype_ok(rv) || kiln_cg_numel(rv) != kiln_cg_numel(y) || rv->rank != 4 ||
            (C != 1 && nhwc != (rv->layout == KILN_LAYOUT_NHWC)))
            return KILN_OK;
    }
    const bool w_const = w->data && kiln_cg_io_index(c->g->inputs, c->g->n_inputs, a.w) < 0;
    if (nhwc && !w_const) return KILN_OK;
    /* 32-bit index math in the kernels */
    if (N * C * H * W >= ((int64_t)1 << 31) || N * C * P * Q >= ((int64_t)1 << 31) || P < 1 || Q < 1) return KILN_OK;
    int64_t in[2] = {H, W}, k[2] = {R, S}, s[2], d[2], pb[2], pe[2];
    kiln_cg_ints_or(a.an, "strides", 2, 1, s);
    kiln_cg_ints_or(a.an, "dilations", 2, 1, d);
    if ((st = kiln_cg_window_pads(a.an, 2, in, k, s, d, pb, pe))) return st;
    /* unrolled tap loops: keep the generated code small */
    if (R * S > 81 || s[0] < 1 || s[1] < 1 || d[0] < 1 || d[1] < 1 || s[1] > 4 || d[1] > 4) return KILN_OK;
    const char *bias_expr = NULL;
    if (a.bias >= 0) {
        const kiln_value *bv = kiln_cg_val(c, a.bias);
        int64_t bn = kiln_cg_numel(bv);
        if ((bn != K && bn != 1) || !dtype_ok(bv)) return KILN_OK;
        bias_expr = bn == 1 ? KILN_CG_BIAS_SCALAR : KILN_CG_BIAS_CH;
    }
    const char *tx = x->dtype == KILN_F16 ? "__half" : "float", *ty = y->dtype == KILN_F16 ? "__half" : "float";
    /* NHWC weights: the transposed constant in x's type; NCHW: the stored operand */
    const bool w_half = nhwc ? x->dtype == KILN_F16 : w->dtype == KILN_F16;
    const char *tw = w_half ? "__half" : "float";

    kiln_bundle_arg args[5];
    if ((st = kiln_cg_value_arg(c, a.x, &args[0])) || (st = kiln_cg_value_arg(c, a.y, &args[4]))) return st;
    /* NHWC vector width: 16 bytes of channels where C, x's and y's alignment allow it */
    int V = 1;
    if (nhwc) {
        const int64_t xs = x->dtype == KILN_F16 ? 2 : 4, ys = y->dtype == KILN_F16 ? 2 : 4;
        for (V = (int)(16 / xs); V > 1; V /= 2)
            if (C % V == 0 && arg_aligned(&args[0], (uint64_t)(V * xs)) && arg_aligned(&args[4], (uint64_t)(V * ys)) &&
                V * ys <= 16)
                break;
    }

    /* candidates and the heuristic */
    const int64_t threads_q1 = nhwc ? N * P * Q * (C / V) : N * C * P * Q;
    int heur = s[1] == 1 ? 2 : 1; /* dw_q4 / dw_q2 */
    while (heur > 0 && threads_q1 / dw_tq[heur] < DW_MIN_THREADS) heur--;
    /* the last candidate, "direct", leaves the node to cg_conv.c's generic conv2d_direct (the
     * tuner may measure it; `kiln build --tile direct` is the baseline and the way back); only
     * where that path makes no choice of its own (<= 32 taps), so a group records one choice */
    const char *names[DW_N_TQ + 1];
    char nbuf[DW_N_TQ][16];
    for (int i = 0; i < DW_N_TQ; i++) {
        snprintf(nbuf[i], sizeof nbuf[i], "dw_q%d", dw_tq[i]);
        names[i] = nbuf[i];
    }
    names[DW_N_TQ] = "direct";
    char sig[512];
    int sl = snprintf(sig, sizeof sig,
                      "conv_dw:%s:v%d:n%lld:c%lld:h%lld:w%lld:p%lld:q%lld:r%lld:s%lld:st%lldx%lld:pad%lldx%lld:dil%lldx%lld:"
                      "%s,%s,%s:bias=%s:res=%s",
                      nhwc ? "nhwc" : "nchw", V, (long long)N, (long long)C, (long long)H, (long long)W, (long long)P,
                      (long long)Q, (long long)R, (long long)S, (long long)s[0], (long long)s[1], (long long)pb[0],
                      (long long)pb[1], (long long)d[0], (long long)d[1], tx, tw, ty,
                      a.bias < 0 ? "none" : kiln_cg_val(c, a.bias)->dtype == KILN_F16 ? "f16" : "f32",
                      a.residual < 0 ? "none" : kiln_cg_val(c, a.residual)->dtype == KILN_F16 ? "f16" : "f32");
    if (a.an != n) { /* a group: its activations with their parameters */
        static const char *const keys[] = {"activation", "post_activation"};
        for (int i = 0; i < 2 && sl > 0 && sl < (int)sizeof sig; i++) {
            char ka[64], kb[64];
            snprintf(ka, sizeof ka, "%s_alpha", keys[i]);
            snprintf(kb, sizeof kb, "%s_beta", keys[i]);
            sl += snprintf(sig + sl, sizeof sig - (size_t)sl, ":%s=%s(%.9g,%.9g)", keys[i], kiln_attr_str(n, keys[i], "none"),
                           (double)kiln_attr_float(n, ka, 0.0f), (double)kiln_attr_float(n, kb, 0.0f));
        }
    }
    const int pick = kiln_cg_choose(c, sig, names, R * S <= 32 ? DW_N_TQ + 1 : DW_N_TQ, heur);
    if (pick == DW_N_TQ) return KILN_OK;
    const int tq = dw_tq[pick];
    const int64_t total = nhwc ? N * P * ((Q + tq - 1) / tq) * (C / V) : N * C * P * ((Q + tq - 1) / tq);

    char fn[64], epi[80], shp[80];
    kiln_cg_kernel_name(c, "conv_dw", fn, sizeof fn);
    snprintf(epi, sizeof epi, "%s_epilogue", fn);
    snprintf(shp, sizeof shp, "%s_shape", fn);
    kiln_cg_printf(&c->src, "\n// %s: %s (%s), depthwise x[%lld,%lld,%lld,%lld] * w[%lld,1,%lld,%lld]%s, %d channels x %d columns a thread\n",
                   fn, c->group, a.an != n ? "conv_epilogue" : "Conv", (long long)N, (long long)C, (long long)H,
                   (long long)W, (long long)C, (long long)R, (long long)S, nhwc ? ", NHWC" : "", V, tq);
    kiln_cg_printf(&c->src,
                   "#include \"conv_dw.cuh\"\n"
                   "struct %s {\n    static constexpr int N = %lld, C = %lld, H = %lld, W = %lld, P = %lld, Q = %lld, R = "
                   "%lld, S = %lld;\n    static constexpr int SH = %lld, SW = %lld, PH = %lld, PW = %lld, DH = %lld, DW = "
                   "%lld;\n};\n",
                   shp, (long long)N, (long long)C, (long long)H, (long long)W, (long long)P, (long long)Q, (long long)R,
                   (long long)S, (long long)s[0], (long long)s[1], (long long)pb[0], (long long)pb[1], (long long)d[0],
                   (long long)d[1]);
    if ((st = kiln_cg_conv_emit_epilogue(c, n, epi, bias_expr))) return st;
    if (nhwc)
        kiln_cg_printf(&c->src,
                       "extern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, const %s *w, const %s::bias_t "
                       "*bias, const %s::res_t *res, %s *y) {\n"
                       "    kiln::conv_dw_nhwc<%s, %d, %d, %s, %s, %s, %s>(x, w, bias, res, y);\n}\n",
                       DW_BLOCK, fn, tx, tw, epi, epi, ty, shp, V, tq, epi, tx, tw, ty);
    else
        kiln_cg_printf(&c->src,
                       "extern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, const %s *w, const %s::bias_t "
                       "*bias, const %s::res_t *res, %s *y) {\n"
                       "    kiln::conv_dw_nchw<%s, %d, %s, %s, %s, %s>(x, w, bias, res, y);\n}\n",
                       DW_BLOCK, fn, tx, tw, epi, epi, ty, shp, tq, epi, tx, tw, ty);
    kiln_cg_printf(&c->tiles, "%s=dw_%s:v%dq%d;", c->group, nhwc ? "nhwc" : "nchw", V, tq);

    if (nhwc) st = add_rsc_weights(c, w, w_half, &args[1]);
    else st = kiln_cg_value_arg(c, a.w, &args[1]);
    if (st) return st;
    if (a.bias >= 0 ? (st = kiln_cg_value_arg(c, a.bias, &args[2])) : (args[2] = kiln_cg_null_arg, 0)) return st;
    if (a.residual >= 0 ? (st = kiln_cg_value_arg(c, a.residual, &args[3])) : (args[3] = kiln_cg_null_arg, 0)) return st;
    /* kiln_cg_value_arg may have added constants (weights) but emits no source */
    if ((st = kiln_cg_launch(c, fn, (uint64_t)((total + DW_BLOCK - 1) / DW_BLOCK), 1, 1, DW_BLOCK, args, 5))) return st;
    *handled = true;
    return KILN_OK;
}
