/*
 * cg_resize.c — Resize (and Upsample, which the frontend imports as Resize) with constant
 * scales / sizes / roi: per-axis tap tables computed here at build time, the same taps the
 * CPU evaluator (ir/ops_index.c) interpolates with, then kernels/resize.cuh sums their tensor
 * product per output element.
 */
#include "codegen/cg_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RS_NEAREST, RS_LINEAR, RS_CUBIC };
enum { CT_HALF_PIXEL, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC, CT_TF_CROP, CT_HALF_PIXEL_SYM,
       CT_TF_HALF_PIXEL_NN };
enum { NM_ROUND_FLOOR, NM_ROUND_CEIL, NM_FLOOR, NM_CEIL };

#define MAX_TAPS (1 << 22) /* table entries over all axes */

static int pick(const char *s, const char *const *names, int count) {
    for (int i = 0; i < count; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

/* Source coordinate of output index j (input length L, output length M, scale s). */
static double src_coord(int ctm, int64_t j, int64_t L, int64_t M, double s, double roi_s, double roi_e) {
    double y = (double)j, out_f = s * (double)L;
    switch (ctm) {
    case CT_PYTORCH_HALF_PIXEL: return M > 1 ? (y + 0.5) / s - 0.5 : 0.0;
    case CT_ALIGN_CORNERS: return M > 1 ? y * (double)(L - 1) / (out_f - 1.0) : 0.0;
    case CT_ASYMMETRIC: return y / s;
    case CT_TF_CROP:
        if (M > 1) return roi_s * (double)(L - 1) + y * (roi_e - roi_s) * (double)(L - 1) / (out_f - 1.0);
        return 0.5 * (roi_s + roi_e) * (double)(L - 1);
    case CT_HALF_PIXEL_SYM: {
        double adj = (double)M / out_f, center = (double)L / 2.0;
        return center * (1.0 - adj) + (y + 0.5) / s - 0.5;
    }
    case CT_TF_HALF_PIXEL_NN: return (y + 0.5) / s;
    default: return (y + 0.5) / s - 0.5;
    }
}

static double cubic_w(double x, double a) {
    x = fabs(x);
    if (x <= 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    return 0.0;
}

typedef struct rs_cfg {
    int mode, ctm, nearest;
    double cubic_a;
    bool exclude, antialias;
} rs_cfg;

/* Number of taps per output index of a resized axis with scale s. */
static int axis_ntap(const rs_cfg *p, double s, double *first, double *ss) {
    *first = 0.0;
    *ss = 1.0;
    if (p->mode == RS_NEAREST) return 1;
    double support = p->mode == RS_LINEAR ? 1.0 : 2.0;
    *ss = p->antialias ? fmin(s, 1.0) : 1.0;
    *first = floor(-support / *ss) + 1.0;
    double cnt = 2.0 - 2.0 * *first;
    return cnt > 4096 ? -1 : (int)cnt;
}

/* Taps of one axis into idx/w (M * ntap entries). */
static void axis_taps(const rs_cfg *p, int64_t L, int64_t M, double s, double roi_s, double roi_e, int ntap,
                      double first, double ss, int64_t *idx, float *wout) {
    for (int64_t j = 0; j < M; j++) {
        int64_t *ix = idx + j * ntap;
        float *wo = wout + j * ntap;
        double x = src_coord(p->ctm, j, L, M, s, roi_s, roi_e);
        if (p->ctm == CT_TF_CROP && (x < 0.0 || x > (double)(L - 1))) {
            for (int k = 0; k < ntap; k++) ix[k] = k ? 0 : -1, wo[k] = 0.0f;
            continue;
        }
        double x0 = floor(x), fr = x - x0;
        if (p->mode == RS_NEAREST) {
            double k;
            switch (p->nearest) {
            case NM_ROUND_CEIL: k = fr >= 0.5 ? x0 + 1.0 : x0; break;
            case NM_FLOOR: k = x0; break;
            case NM_CEIL: k = fr > 0.0 ? x0 + 1.0 : x0; break;
            default: k = fr > 0.5 ? x0 + 1.0 : x0; break;
            }
            k = fmin(fmax(k, 0.0), (double)(L - 1));
            ix[0] = (int64_t)k;
            wo[0] = 1.0f;
            continue;
        }
        double w[4096], sum = 0.0;
        for (int k = 0; k < ntap; k++) {
            double off = first + k, d = (off - fr) * ss;
            double wt = p->mode == RS_LINEAR ? fmax(0.0, 1.0 - fabs(d)) : cubic_w(d, p->cubic_a);
            int64_t src = (int64_t)x0 + (int64_t)off;
            if (p->exclude && (src < 0 || src >= L)) wt = 0.0;
            ix[k] = src < 0 ? 0 : src >= L ? L - 1 : src;
            w[k] = wt;
            sum += wt;
        }
        for (int k = 0; k < ntap; k++) wo[k] = (float)((p->antialias || p->exclude) && sum != 0.0 ? w[k] / sum : w[k]);
    }
}

kiln_status kiln_cg_emit_resize(cg *c, const kiln_node *n) {
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    static const char *const ctms[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                       "tf_crop_and_resize", "half_pixel_symmetric", "tf_half_pixel_for_nn"};
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *y = kiln_cg_val(c, n->outputs[0]);
    const char *T = kiln_cg_ctype(x->dtype);
    if (!kiln_dtype_is_float(x->dtype) || x->dtype == KILN_F64 || !T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    if (x->layout == KILN_LAYOUT_NHWC || y->layout == KILN_LAYOUT_NHWC)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    rs_cfg p;
    const char *ms = kiln_attr_str(n, "mode", "nearest");
    if ((p.mode = pick(ms, modes, 3)) < 0) p.mode = !strcmp(ms, "bilinear") || !strcmp(ms, "trilinear") ? RS_LINEAR : -1;
    p.ctm = pick(kiln_attr_str(n, "coordinate_transformation_mode", "half_pixel"), ctms, 7);
    p.nearest = pick(kiln_attr_str(n, "nearest_mode", "round_prefer_floor"), nms, 4);
    if (p.mode < 0 || p.ctm < 0 || p.nearest < 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "an unknown mode");
    p.cubic_a = kiln_attr_float(n, "cubic_coeff_a", -0.75f);
    p.exclude = kiln_attr_int(n, "exclude_outside", 0) != 0;
    p.antialias = kiln_attr_int(n, "antialias", 0) != 0 && p.mode != RS_NEAREST;
    int r = x->rank;
    if (r < 1 || y->rank != r) return kiln_errorf(KILN_ERR_UNSUPPORTED, "rank %d", r);
    int axes[KILN_MAX_RANK], na;
    const int64_t *av;
    int nav = kiln_attr_ints(n, "axes", &av);
    if (nav < 0) {
        na = r;
        for (int i = 0; i < r; i++) axes[i] = i;
    } else {
        na = nav;
        for (int i = 0; i < na; i++) {
            int64_t a;
            if (!kiln_norm_axis(av[i], r, &a)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
            axes[i] = (int)a;
        }
    }
    /* per-axis scale: from scales, or from sizes (stretch, or the one aspect-keeping scale) */
    const kiln_value *sc = n->n_inputs > 2 && n->inputs[2] >= 0 ? kiln_cg_val(c, n->inputs[2]) : NULL;
    const kiln_value *sz = n->n_inputs > 3 && n->inputs[3] >= 0 ? kiln_cg_val(c, n->inputs[3]) : NULL;
    const kiln_value *roi = n->n_inputs > 1 && n->inputs[1] >= 0 ? kiln_cg_val(c, n->inputs[1]) : NULL;
    if (sc && sc->data && sc->data->numel == 0) sc = NULL;
    if (sz && sz->data && sz->data->numel == 0) sz = NULL;
    if (roi && roi->data && roi->data->numel == 0) roi = NULL;
    if ((sc && !sc->data) || (sz && !sz->data) || (roi && !roi->data))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "scales, sizes or roi not known at build time");
    double scale[KILN_MAX_RANK], rs[KILN_MAX_RANK], re[KILN_MAX_RANK];
    for (int i = 0; i < r; i++) scale[i] = 1.0, rs[i] = 0.0, re[i] = 1.0;
    if (sc) {
        if (sc->data->numel != na) return kiln_errorf(KILN_ERR_UNSUPPORTED, "scales count");
        for (int i = 0; i < na; i++) scale[axes[i]] = kiln_tensor_get(sc->data, i);
    } else if (sz) {
        if (sz->data->numel != na) return kiln_errorf(KILN_ERR_UNSUPPORTED, "sizes count");
        const char *keep = kiln_attr_str(n, "keep_aspect_ratio_policy", "stretch");
        if (!strcmp(keep, "stretch")) {
            for (int i = 0; i < na; i++)
                scale[axes[i]] = x->dims[axes[i]] > 0
                                     ? (double)kiln_tensor_get_i64(sz->data, i) / (double)x->dims[axes[i]]
                                     : 1.0;
        } else {
            bool smaller = !strcmp(keep, "not_larger");
            double s = smaller ? INFINITY : 0.0;
            for (int i = 0; i < na; i++) {
                double v = (double)kiln_tensor_get_i64(sz->data, i) / (double)x->dims[axes[i]];
                s = smaller ? fmin(s, v) : fmax(s, v);
            }
            for (int i = 0; i < na; i++) scale[axes[i]] = s;
        }
    } else {
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "neither scales nor sizes");
    }
    if (p.ctm == CT_TF_CROP) {
        if (!roi || roi->data->numel != 2 * na) return kiln_errorf(KILN_ERR_UNSUPPORTED, "tf_crop_and_resize without roi");
        for (int i = 0; i < na; i++) {
            rs[axes[i]] = kiln_tensor_get(roi->data, i);
            re[axes[i]] = kiln_tensor_get(roi->data, na + i);
        }
    }
    int64_t total = kiln_cg_numel(y);
    if (total == 0) return KILN_OK;
    if (kiln_cg_numel(x) == 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "an empty input");
    /* tables: an unresized axis gets one tap of weight 1 at the same index */
    int ntap[KILN_MAX_RANK];
    double first[KILN_MAX_RANK], ss[KILN_MAX_RANK];
    int64_t toff[KILN_MAX_RANK], entries = 0;
    for (int a = 0; a < r; a++) {
        bool identity = y->dims[a] == x->dims[a] && scale[a] == 1.0 && (p.ctm != CT_TF_CROP || (rs[a] == 0.0 && re[a] == 1.0));
        ntap[a] = identity ? 0 : axis_ntap(&p, scale[a], &first[a], &ss[a]);
        if (ntap[a] < 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "an antialias kernel too wide");
        toff[a] = entries;
        entries += y->dims[a] * (ntap[a] ? ntap[a] : 1);
        if (entries > MAX_TAPS) return kiln_errorf(KILN_ERR_UNSUPPORTED, "tap tables too large");
    }
    int64_t *idx = malloc(sizeof *idx * (size_t)(entries ? entries : 1));
    float *wt = malloc(sizeof *wt * (size_t)(entries ? entries : 1));
    if (!idx || !wt) {
        free(idx);
        free(wt);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    int64_t xs[KILN_MAX_RANK], sh[1 + 4 * KILN_MAX_RANK];
    kiln_strides(r, x->dims, xs);
    sh[0] = total;
    for (int a = 0; a < r; a++) {
        if (ntap[a] == 0) {
            for (int64_t j = 0; j < y->dims[a]; j++) idx[toff[a] + j] = j, wt[toff[a] + j] = 1.0f;
        } else {
            axis_taps(&p, x->dims[a], y->dims[a], scale[a], rs[a], re[a], ntap[a], first[a], ss[a], idx + toff[a],
                      wt + toff[a]);
        }
        sh[1 + a] = y->dims[a];
        sh[1 + r + a] = xs[a];
        sh[1 + 2 * r + a] = ntap[a] ? ntap[a] : 1;
        sh[1 + 3 * r + a] = toff[a];
    }
    kiln_bundle_arg args[6];
    uint64_t off_i, off_w;
    int64_t tdims[1] = {entries};
    char wname[300];
    snprintf(wname, sizeof wname, "%s/resize_taps", c->group);
    kiln_status st = kiln_bundle_add_weight(c->b, wname, KILN_I64, 1, tdims, idx,
                                            sizeof *idx * (size_t)entries, &off_i);
    if (!st)
        st = kiln_bundle_add_weight(c->b, wname, KILN_F32, 1, tdims, wt, sizeof *wt * (size_t)entries,
                                    &off_w);
    free(idx);
    free(wt);
    if (st) return st;
    float extrap = kiln_attr_float(n, "extrapolation_value", 0.0f);
    uint32_t eb;
    memcpy(&eb, &extrap, 4);
    char fn[64];
    kiln_cg_kernel_name(c, "resize", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, %s *y, "
                   "const kiln::i64 *tap_idx, const float *tap_w, float extrap, kiln::resize_shape<%d> s) {\n"
                   "    kiln::resize<%s, %d>(x, y, tap_idx, tap_w, extrap, s);\n}\n",
                   fn, c->group, y->name, BLOCK_1D, fn, T, T, r, T, r);
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->outputs[0], &args[1])))
        return st;
    args[2] = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, off_i};
    args[3] = (kiln_bundle_arg){KILN_ARG_WEIGHT, 8, off_w};
    args[4] = (kiln_bundle_arg){KILN_ARG_SCALAR, 4, eb};
    if ((st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(1 + 4 * r), &args[5]))) return st;
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 6);
}
