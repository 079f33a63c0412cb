/*
 * cg_conv_pool.c — conv_epilogue groups with pool = "max" (passes/fuse_conv_pool.c: a stride-2
 * stem conv over C <= 4 channels with 64 outputs, its bias and ReLU, and a 3x3 stride-2 MaxPool)
 * on kernels/conv_pool.cuh, one launch.
 *
 * The weights go into the bundle as fp16 [64][KP] in the kernel's packed depth (per kernel row r:
 * FRONT zero slots, the S * C values in (s, c) order, zeros to SEG; rows then zeros to KP), the bias
 * as fp32 [64] (zeros without one). A block takes BP pooled rows of one image: the fewest rows
 * (each block recomputes one conv row) that still give about two blocks per SM, at most 7 (ResNet-50
 * batch 32: 7, 256 blocks; batch 1: 1, 56 blocks; KILN_CONV_POOL_BP=1..16 sets it, for tests). No
 * candidates: nothing to tune.
 *
 * With an sm_90a image in the build and conv rows of at most 112 pixels the kernel also has the
 * wgmma variant (conv_pool_wg_f16, run by the sm_90a image; the other images run conv_pool_f16):
 * a second weight packing, fp16 [64][16 KW] in the order of its k16 steps' chunks (wg_plan_make,
 * the bias as one more chunk), is a fifth argument, and the shape struct carries the steps'
 * descriptor offsets.
 */
#include "codegen/cg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_OFF 16 /* kernels/conv_pool.cuh conv_pool_off */

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The group's operands (outer value ids): the anchor Conv's x (the input of the body's Cast with
 * x_nchw_f32), weights, bias (-1 none) and the pooled output. */
typedef struct pool_operands {
    const kiln_node *an;
    int x, w, bias, y;
} pool_operands;

static bool operands(const kiln_node *n, bool f32x, pool_operands *o) {
    const kiln_graph *b = n->body;
    o->an = NULL;
    if (!b || n->n_outputs != 1) return false;
    for (int k = 0; k < b->n_nodes; k++)
        if (b->nodes[k].op == KILN_OP_Conv) o->an = &b->nodes[k];
    if (!o->an || o->an->n_inputs < 2) return false;
    int xb = o->an->inputs[0];
    if (f32x) { /* x is the body Cast's output: its input is the group's */
        const kiln_node *cast = NULL;
        for (int k = 0; k < b->n_nodes; k++)
            if (b->nodes[k].op == KILN_OP_Cast && b->nodes[k].outputs[0] == xb) cast = &b->nodes[k];
        if (!cast) return false;
        xb = cast->inputs[0];
    }
    o->x = kiln_fused_outer_value(n, xb), o->w = kiln_fused_outer_value(n, o->an->inputs[1]), o->y = n->outputs[0];
    const int bi = kiln_attr_int(n, "has_bias", 0) ? (int)kiln_attr_int(n, "bias_input", -1) : -1;
    o->bias = bi >= 0 && bi < n->n_inputs ? n->inputs[bi] : -1;
    return o->x >= 0 && o->w >= 0 && o->y >= 0 && !kiln_attr_int(n, "has_residual", 0);
}

/* The wgmma variant's geometry (kernels/conv_pool.cuh, conv_pool_wg_f16): NW pixels a conv row
 * (64 or 112), planes of E entries, J chunks a tap, the strip's pitch SP, KW k16 steps and their
 * chunks (chunk s * J + j; -1 the bias chunk, whose entries are the ONES bytes before the first plane
 * buffer; -2 its zero partner for an even count), ordered by their address from the plane buffer
 * and paired, so that every step's leading byte offset is positive. */
#define WG_MAX_STEPS 64
typedef struct wg_plan {
    int64_t nw, e, j, sp, ones;
    int kw;
    int chunk[2 * WG_MAX_STEPS];
    int ka[WG_MAX_STEPS], kl[WG_MAX_STEPS];
    uint64_t smem;
} wg_plan;

/* false: no wgmma variant (no sm_90a image, rows wider than 112 pixels, a single chunk, or
 * KILN_CONV_POOL_WG=0, the developer switch for A/B runs) */
static bool wg_plan_make(const cg *c, int64_t C, int64_t R, int64_t S, int64_t Q, int64_t BP, int64_t ROWS, wg_plan *p) {
    const char *env = getenv("KILN_CONV_POOL_WG");
    if (!kiln_cg_has_sm90a(c) || (env && !strcmp(env, "0")) || Q > 112) return false;
    p->nw = Q <= 64 ? 64 : 112;
    p->e = p->nw + (S - 1) / 2;
    p->j = (R * C + 7) / 8;
    const int64_t nch = S * p->j, wn = R * C / 2 + (R * C) % 2;
    if (nch < 2 || nch > 2 * WG_MAX_STEPS - 2) return false;
    int64_t sp = max64(ROWS * C, 4 * BP * C + 2 * wn);
    sp += sp % 2;
    if ((sp / 2) % 2 == 0) sp += 2;
    p->sp = sp;
    p->kw = (int)(nch / 2 + 1); /* the chunks and the bias chunk, paired (an even count adds a zero chunk) */
    p->ones = (nch % 2 ? 1 : 2) * p->nw * 16;
    int64_t addr[2 * WG_MAX_STEPS];
    int nc = 0;
    for (int64_t s = 0; s < S; s++)
        for (int64_t j = 0; j < p->j; j++) {
            const int64_t a = ((s & 1) * p->j + j) * p->e * 16 + (s >> 1) * 16;
            int k = nc++;
            for (; k > 0 && addr[k - 1] > a; k--) addr[k] = addr[k - 1], p->chunk[k] = p->chunk[k - 1];
            addr[k] = a, p->chunk[k] = (int)(s * p->j + j);
        }
    /* the bias chunk (-1: the "ones" entries before each plane buffer, weights bias_hi, bias_lo) is the
     * lowest address: the last step takes it first and the last chunk second, or (even count) a step of
     * its own with the zero entries after the ones (-2, zero weights) */
    if (nc % 2) {
        addr[nc] = addr[nc - 1], p->chunk[nc] = p->chunk[nc - 1];
        addr[nc - 1] = -p->ones, p->chunk[nc - 1] = -1;
        nc++;
    } else {
        addr[nc] = -p->ones, p->chunk[nc] = -1, nc++;
        addr[nc] = -p->ones + p->nw * 16, p->chunk[nc] = -2, nc++;
    }
    for (int i = 0; i < p->kw; i++) p->ka[i] = (int)addr[2 * i], p->kl[i] = (int)(addr[2 * i + 1] - addr[2 * i]);
    p->smem = (uint64_t)(p->ones + 3 * 2 * p->j * p->e * 16 + p->nw / 2 * 72 * 2 + 2 * p->e * p->sp * 2);
    return true;
}

/* W'[64][16 KW] in fp16: step i's depth 16 i .. 16 i + 7 is its first chunk, + 8 .. + 15 its second;
 * chunk s * J + j, element u is the pair 8 j + u = r * C + c of tap s (zero past R * C); the bias chunk
 * holds the bias as fp16 hi + lo (its entries read 1, 1, 0, ..: the accumulators come out biased).
 * Stored in the order the kernel's warps hold it (wgmma A fragments): 16 bytes for lane l of warp w at
 * step i, at ((w * KW + i) * 32 + l) * 16, are the pairs (row 16 w + l / 4 + 8 (q % 2), depth 16 i +
 * 2 (l % 4) + 8 (q / 2)) for q = 0 .. 3, so that each is one 16-byte load (a block's start waited on
 * 4 KW 4-byte loads a thread, queued behind its first input rows: ncu, docs/gpu.md twentieth session). */
static kiln_status add_wg_weights(cg *c, const kiln_value *w, const float *bias, int64_t C, int64_t R, int64_t S,
                                  const wg_plan *p, uint64_t *off) {
    const int64_t KP = 16 * p->kw;
    uint16_t *h = calloc((size_t)(64 * KP), sizeof *h);
    if (!h) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int64_t ko = 0; ko < 64; ko++)
        for (int64_t kk = 0; kk < KP; kk++) {
            const int ch = p->chunk[kk / 8];
            if (ch == -1 && kk % 8 < 2) {
                const uint16_t hi = kiln_f32_to_f16(bias[ko]);
                h[ko * KP + kk] = kk % 8 == 0 ? hi : kiln_f32_to_f16(bias[ko] - kiln_f16_to_f32(hi));
                continue;
            }
            const int64_t pair = ch < 0 ? R * C : (ch % p->j) * 8 + kk % 8, sx = ch < 0 ? 0 : ch / p->j;
            if (pair >= R * C) continue;
            h[ko * KP + kk] = kiln_f32_to_f16((float)kiln_tensor_get(w->data, ((ko * C + pair % C) * R + pair / C) * S + sx));
        }
    uint16_t *f = malloc((size_t)(64 * KP) * sizeof *f);
    if (!f) {
        free(h);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    for (int64_t wp = 0; wp < 4; wp++)
        for (int64_t i = 0; i < p->kw; i++)
            for (int64_t l = 0; l < 32; l++)
                for (int64_t q = 0; q < 4; q++) {
                    const int64_t row = 16 * wp + l / 4 + 8 * (q % 2), k = 16 * i + 2 * (l % 4) + 8 * (q / 2);
                    uint16_t *d = f + (((wp * p->kw + i) * 32 + l) * 4 + q) * 2;
                    d[0] = h[row * KP + k], d[1] = h[row * KP + k + 1];
                }
    free(h);
    char wname[256];
    snprintf(wname, sizeof wname, "%s.pool_wgmma", w->name && *w->name ? w->name : "const");
    const int64_t wd[2] = {64, KP};
    const kiln_status st = kiln_bundle_add_weight(c->b, wname, KILN_F16, 2, wd, f, (uint64_t)(64 * KP) * 2, off);
    free(f);
    return st;
}

kiln_status kiln_cg_emit_conv_pool(cg *c, const kiln_node *n) {
    const bool f32x = kiln_attr_int(n, "x_nchw_f32", 0) != 0;
    pool_operands a;
    if (!operands(n, f32x, &a))
        return kiln_errorf(KILN_ERR_INTERNAL, "pooled conv group '%s': its operands are not what fuse-conv-pool makes", c->group);
    kiln_status st;
    const kiln_graph *body = n->body;
    const kiln_value *x = kiln_cg_val(c, a.x), *w = kiln_cg_val(c, a.w), *y = kiln_cg_val(c, a.y);
    const kiln_value *cv = a.an->n_outputs > 0 && a.an->outputs[0] >= 0 ? &body->values[a.an->outputs[0]] : NULL;
    const char *act = kiln_attr_str(n, "activation", "none");
    /* passes/fuse_conv_pool.c made the group only where these hold */
    const bool x_ok = f32x ? x->dtype == KILN_F32 && x->layout != KILN_LAYOUT_NHWC
                           : x->dtype == KILN_F16 && (x->layout == KILN_LAYOUT_NHWC || x->dims[1] == 1);
    if (!cv || c->o->precision != KILN_PREC_FP16 || x->rank != 4 || !x_ok || cv->rank != 4 || y->rank != 4 ||
        w->rank != 4 || !w->data || y->dtype != KILN_F16 || y->layout != KILN_LAYOUT_NHWC || x->dims[1] > 4 ||
        w->dims[0] != 64 || cv->dims[1] != 64 || cv->dims[3] > 128 || (strcmp(act, "none") && strcmp(act, "relu")))
        return kiln_errorf(KILN_ERR_INTERNAL, "pooled conv group '%s': not a stem the conv_pool kernel takes", c->group);
    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t R = w->dims[2], S = w->dims[3], P = cv->dims[2], Q = cv->dims[3], H2 = y->dims[2], W2 = y->dims[3];
    int64_t in[2] = {H, W}, k[2] = {R, S}, s[2], d[2], pb[2], pe[2];
    kiln_cg_ints_or(a.an, "strides", 2, 1, s);
    kiln_cg_ints_or(a.an, "dilations", 2, 1, d);
    if ((st = kiln_cg_window_pads(a.an, 2, in, k, s, d, pb, pe))) return st;
    if (s[0] != 2 || s[1] != 2 || d[0] != 1 || d[1] != 1 || H2 != (P - 1) / 2 + 1 || W2 != (Q - 1) / 2 + 1)
        return kiln_errorf(KILN_ERR_INTERNAL, "pooled conv group '%s': strides, dilations or pool shape", c->group);
    const int64_t NT = (Q + 15) / 16, QH = 8 * NT, FRONT = (C * pb[1]) & 1, SEG = (FRONT + S * C + 1) / 2 * 2;
    const int64_t KS = (R * SEG + 15) / 16, KP = 16 * KS;
    const int64_t PITCH = (max64(POOL_OFF + C * W, POOL_OFF + C * (2 * (2 * QH - 1) - pb[1]) - FRONT + SEG) + 7) / 8 * 8;
    if (C * pb[1] + FRONT > POOL_OFF)
        return kiln_errorf(KILN_ERR_INTERNAL, "pooled conv group '%s': left padding too wide", c->group);
    const char *a0 = c->o->n_archs > 0 && c->o->archs ? c->o->archs[0] : "sm_90";
    const int64_t sms = !strncmp(a0, "sm_8", 4) ? 108 : 132;
    /* blocks an SM the band height aims at (and the launch bounds promise); KILN_CONV_POOL_BLOCKS=2..4
     * for experiments (more blocks: fewer registers a thread, ptxas may spill) */
    const char *ebl = getenv("KILN_CONV_POOL_BLOCKS");
    const int bps = ebl && atoi(ebl) >= 2 && atoi(ebl) <= 4 ? atoi(ebl) : 2;
    int64_t BP = (N * H2 + bps * sms - 1) / (bps * sms);
    BP = BP < 1 ? 1 : BP > 7 ? 7 : BP;
    const char *ebp = getenv("KILN_CONV_POOL_BP"); /* tests: bands of several rows on small shapes */
    const int ebp_rows = ebp ? atoi(ebp) : 0;
    if (ebp_rows >= 1 && ebp_rows <= 16) BP = ebp_rows;
    const int64_t NB = (H2 + BP - 1) / BP, ROWS = 4 * BP + R, W2P = 8 * NT;
    uint64_t smem = (uint64_t)(ROWS * PITCH * 2 + W2P * 72 * 2 + 2 * 2 * 2 * 32 * 4);
    wg_plan wp = {0};
    const bool wg = wg_plan_make(c, C, R, S, Q, BP, ROWS, &wp);
    if (wg && wp.smem > smem) smem = wp.smem;
    if (smem > 227 * 1024)
        return kiln_errorf(KILN_ERR_INTERNAL, "pooled conv group '%s': %llu bytes of shared memory", c->group,
                           (unsigned long long)smem);

    char fn[64], shp[80];
    kiln_cg_kernel_name(c, "conv_pool", fn, sizeof fn);
    snprintf(shp, sizeof shp, "%s_shape", fn);
    kiln_cg_printf(&c->tiles, "%s=nhwc_f16:pool%s_bp%lld;", c->group, wg ? "wg" : "", (long long)BP);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s (conv_epilogue + MaxPool), %s [%lld,%lld,%lld,%lld] * w[64,%lld,%lld,%lld] stride 2, "
                   "%s, MaxPool 3x3 s2 -> [%lld,%lld,%lld,64], NHWC y, %lld pooled rows a block\n"
                   "#include \"conv_pool.cuh\"\n"
                   "struct %s {\n    static constexpr int N = %lld, H = %lld, W = %lld, C = %lld, R = %lld, S = %lld, "
                   "PH = %lld, PW = %lld, P = %lld, Q = %lld, H2 = %lld, W2 = %lld;\n"
                   "    static constexpr int BP = %lld, NB = %lld, NT = %lld, FRONT = %lld, SEG = %lld, KS = %lld, "
                   "PITCH = %lld, ROWS = %lld;\n",
                   fn, c->group, f32x ? "fp32 NCHW (its Cast fused) x as N,H,W,C" : "NHWC x", (long long)N, (long long)H,
                   (long long)W, (long long)C, (long long)C, (long long)R,
                   (long long)S, strcmp(act, "relu") ? "bias" : "bias, relu", (long long)N, (long long)H2, (long long)W2,
                   (long long)BP, shp, (long long)N, (long long)H, (long long)W, (long long)C, (long long)R, (long long)S,
                   (long long)pb[0], (long long)pb[1], (long long)P, (long long)Q, (long long)H2, (long long)W2,
                   (long long)BP, (long long)NB, (long long)NT, (long long)FRONT, (long long)SEG, (long long)KS,
                   (long long)PITCH, (long long)ROWS);
    const char *relu = strcmp(act, "relu") ? "false" : "true";
    if (wg) { /* the sm_90a image runs conv_pool_wg_f16, every other one conv_pool_f16 (both weight packings) */
        kiln_cg_printf(&c->src, "    static constexpr int NW = %lld, E = %lld, J = %lld, SP = %lld, KW = %d, ONES = %lld;\n"
                                "    // k16 step i: its first chunk's byte offset in a plane buffer, the second's from it\n"
                                "    __device__ static constexpr int ka(int i) {\n        constexpr int v[] = {",
                       (long long)wp.nw, (long long)wp.e, (long long)wp.j, (long long)wp.sp, wp.kw, (long long)wp.ones);
        for (int i = 0; i < wp.kw; i++) kiln_cg_printf(&c->src, "%s%d", i ? ", " : "", wp.ka[i]);
        kiln_cg_printf(&c->src, "};\n        return v[i];\n    }\n    __device__ static constexpr int kl(int i) {\n        "
                                "constexpr int v[] = {");
        for (int i = 0; i < wp.kw; i++) kiln_cg_printf(&c->src, "%s%d", i ? ", " : "", wp.kl[i]);
        kiln_cg_printf(&c->src, "};\n        return v[i];\n    }\n");
    }
    kiln_cg_printf(&c->src,
                   "};\n"
                   "extern \"C\" __global__ void __launch_bounds__(128, %d) %s(const %s *x, const __half *w, %s"
                   "const float *bias, __half *y) {\n"
                   "    KILN_NHWC_SMEM(smem, %llu);\n"
                   "    static_assert(KILN_CONV_POOL_SMEM_BYTES(%lld, %lld, %lld) <= %llu, \"conv_pool smem\");\n",
                   bps, fn, f32x ? "float" : "__half", wg ? "const __half *wwg, " : "", (unsigned long long)smem,
                   (long long)ROWS, (long long)PITCH, (long long)W2P, (unsigned long long)smem);
    if (wg)
        kiln_cg_printf(&c->src,
                       "    static_assert(KILN_CONV_POOL_WG_SMEM_BYTES(%lld, %lld, %lld, %lld, %lld) <= %llu, \"conv_pool_wg smem\");\n"
                       "#if defined(KILN_HAVE_WGMMA) || defined(KILN_EMU_WGMMA)\n    kiln::conv_pool_wg_f16<%s, %s>(x, wwg, bias, y, smem);\n#else\n"
                       "    (void)wwg;\n    kiln::conv_pool_f16<%s, %s>(x, w, bias, y, smem);\n#endif\n}\n",
                       (long long)wp.e, (long long)wp.sp, (long long)wp.j, (long long)wp.nw, (long long)wp.ones,
                       (unsigned long long)smem, shp,
                       relu, shp, relu);
    else
        kiln_cg_printf(&c->src, "    kiln::conv_pool_f16<%s, %s>(x, w, bias, y, smem);\n}\n", shp, relu);

    kiln_bundle_arg args[5];
    {
        uint16_t *h = calloc((size_t)(64 * KP), sizeof *h);
        float *b = calloc(64, sizeof *b);
        if (!h || !b) {
            free(h);
            free(b);
            return kiln_errorf(KILN_ERR_OOM, "out of memory");
        }
        for (int64_t ko = 0; ko < 64; ko++)
            for (int64_t kk = 0; kk < R * SEG; kk++) {
                const int64_t r = kk / SEG, u = kk % SEG - FRONT;
                if (u < 0 || u >= S * C) continue;
                const int64_t sx = u / C, ci = u % C;
                h[ko * KP + kk] = kiln_f32_to_f16((float)kiln_tensor_get(w->data, ((ko * C + ci) * R + r) * S + sx));
            }
        const kiln_value *bv = a.bias >= 0 ? kiln_cg_val(c, a.bias) : NULL;
        if (bv && (!bv->data || (bv->data->numel != 64 && bv->data->numel != 1))) {
            free(h);
            free(b);
            return kiln_errorf(KILN_ERR_INTERNAL, "pooled conv group '%s': the bias is not a constant of 64", c->group);
        }
        for (int64_t ko = 0; ko < 64 && bv; ko++)
            b[ko] = (float)kiln_tensor_get(bv->data, bv->data->numel == 1 ? 0 : ko);
        char wname[256], bname[256];
        snprintf(wname, sizeof wname, "%s.pool_packed", w->name && *w->name ? w->name : "const");
        snprintf(bname, sizeof bname, "%s.pool_bias", w->name && *w->name ? w->name : "const");
        const int64_t wd[2] = {64, KP}, bd[1] = {64};
        uint64_t woff = 0, boff = 0, wgoff = 0;
        st = kiln_bundle_add_weight(c->b, wname, KILN_F16, 2, wd, h, (uint64_t)(64 * KP) * 2, &woff);
        if (!st) st = kiln_bundle_add_weight(c->b, bname, KILN_F32, 1, bd, b, 64 * 4, &boff);
        if (!st && wg) st = add_wg_weights(c, w, b, C, R, S, &wp, &wgoff);
        free(h);
        free(b);
        if (st) return st;
        args[1] = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, woff};
        args[2 + wg] = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, boff};
        if (wg) args[2] = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, wgoff};
    }
    if ((st = kiln_cg_value_arg(c, a.x, &args[0])) || (st = kiln_cg_value_arg(c, a.y, &args[3 + wg]))) return st;
    return kiln_cg_launch_smem(c, fn, (uint64_t)(N * NB), 1, 1, 128, (uint32_t)smem, args, 4 + wg);
}
