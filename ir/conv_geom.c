/* conv_geom.c — convolution / sliding-window geometry (see conv_geom.h). */
#include "conv_geom.h"

#include <string.h>

/* Python-style floor division (b > 0). */
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

kiln_status kiln_conv_auto_pad(const kiln_node *n, kiln_auto_pad *ap)
{
    const char *s = kiln_attr_str(n, "auto_pad", "NOTSET");
    if (!strcmp(s, "NOTSET") || !*s) *ap = KILN_AUTO_PAD_NOTSET;
    else if (!strcmp(s, "SAME_UPPER")) *ap = KILN_AUTO_PAD_SAME_UPPER;
    else if (!strcmp(s, "SAME_LOWER")) *ap = KILN_AUTO_PAD_SAME_LOWER;
    else if (!strcmp(s, "VALID")) *ap = KILN_AUTO_PAD_VALID;
    else return kiln_node_errorf(n, KILN_ERR_SHAPE, "unknown auto_pad '%s'", s);
    return KILN_OK;
}

kiln_status kiln_conv_attr_ints(const kiln_node *n, const char *name, int count, int64_t lo, int64_t def,
                                int64_t *out)
{
    const int64_t *v;
    int cnt = kiln_attr_ints(n, name, &v);
    if (cnt < 0) {
        for (int i = 0; i < count; i++) out[i] = def;
        return KILN_OK;
    }
    if (cnt != count)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "attribute %s has %d values, expected %d", name, cnt, count);
    for (int i = 0; i < count; i++) {
        if (v[i] < lo || v[i] > KILN_CONV_ATTR_MAX)
            return kiln_node_errorf(n, KILN_ERR_SHAPE, "attribute %s[%d] = %lld is out of range", name, i,
                                    (long long)v[i]);
        out[i] = v[i];
    }
    return KILN_OK;
}

kiln_status kiln_conv_window_attrs(const kiln_node *n, int nsp, const int64_t *wk, kiln_conv_geom *g)
{
    kiln_status st;
    memset(g, 0, sizeof *g);
    g->nsp = nsp;
    const int64_t *v;
    if (kiln_attr_ints(n, "kernel_shape", &v) >= 0) {
        if ((st = kiln_conv_attr_ints(n, "kernel_shape", nsp, 1, 1, g->k))) return st;
        for (int i = 0; wk && i < nsp; i++)
            if (wk[i] >= 0 && wk[i] != g->k[i])
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "kernel_shape[%d] = %lld but the weight has %lld", i,
                                        (long long)g->k[i], (long long)wk[i]);
    } else if (wk) {
        for (int i = 0; i < nsp; i++) {
            if (wk[i] == 0 || wk[i] > KILN_CONV_ATTR_MAX)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "weight kernel dim %d is %lld", i, (long long)wk[i]);
            g->k[i] = wk[i];
        }
    } else {
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "attribute kernel_shape is required");
    }
    int64_t pads[2 * KILN_MAX_RANK];
    if ((st = kiln_conv_attr_ints(n, "strides", nsp, 1, 1, g->s))) return st;
    if ((st = kiln_conv_attr_ints(n, "dilations", nsp, 1, 1, g->d))) return st;
    if ((st = kiln_conv_attr_ints(n, "pads", 2 * nsp, 0, 0, pads))) return st;
    for (int i = 0; i < nsp; i++) {
        g->pb[i] = pads[i];
        g->pe[i] = pads[nsp + i];
    }
    return KILN_OK;
}

kiln_status kiln_conv_window_out(const kiln_node *n, kiln_conv_geom *g, kiln_auto_pad ap, bool ceil_mode)
{
    g->auto_pad = ap;
    bool same = ap == KILN_AUTO_PAD_SAME_UPPER || ap == KILN_AUTO_PAD_SAME_LOWER;
    for (int i = 0; i < g->nsp; i++) {
        int64_t in = g->in[i], k = g->k[i], s = g->s[i], d = g->d[i];
        if (ap == KILN_AUTO_PAD_VALID) g->pb[i] = g->pe[i] = 0;
        g->keep[i] = s == 1 && (same || (k >= 0 && g->pb[i] + g->pe[i] == (k - 1) * d));
        if (in > KILN_CONV_DIM_MAX) return kiln_node_errorf(n, KILN_ERR_LIMIT, "spatial dim %d is too large", i);
        if (in < 0 || k < 0) {
            g->out[i] = -1;
            continue;
        }
        int64_t eff = (k - 1) * d + 1; /* window extent with dilation */
        if (same) {
            int64_t out = (in + s - 1) / s;
            int64_t total = out > 0 ? (out - 1) * s + eff - in : 0;
            if (total < 0) total = 0;
            /* SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning */
            g->pb[i] = ap == KILN_AUTO_PAD_SAME_UPPER ? total / 2 : total - total / 2;
            g->pe[i] = total - g->pb[i];
            g->out[i] = out;
            continue;
        }
        int64_t num = in + g->pb[i] + g->pe[i] - eff;
        if (num < 0)
            return kiln_node_errorf(n, KILN_ERR_SHAPE,
                                    "spatial dim %d: padded input %lld is smaller than the window %lld", i,
                                    (long long)(in + g->pb[i] + g->pe[i]), (long long)eff);
        int64_t out = ceil_mode ? (num + s - 1) / s + 1 : num / s + 1;
        /* ceil mode: the last window must start inside the input or its begin pad */
        if (ceil_mode && (out - 1) * s >= in + g->pb[i]) out--;
        g->out[i] = out;
    }
    return KILN_OK;
}

/* group attribute into g->group. */
static kiln_status read_group(const kiln_node *n, kiln_conv_geom *g)
{
    g->group = kiln_attr_int(n, "group", 1);
    if (g->group < 1 || g->group > KILN_CONV_ATTR_MAX)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "group %lld is out of range", (long long)g->group);
    return KILN_OK;
}

kiln_status kiln_conv_geom_make(const kiln_node *n, int rank, const int64_t *xd, const int64_t *wd,
                                kiln_conv_geom *g)
{
    kiln_status st;
    if (rank < 3 || rank > KILN_MAX_RANK)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input rank %d: %s needs N x C x D1... (rank >= 3)", rank,
                                kiln_op_table[n->op].onnx_type);
    int nsp = rank - 2;
    if ((st = kiln_conv_window_attrs(n, nsp, wd + 2, g))) return st;
    if ((st = read_group(n, g))) return st;
    g->N = xd[0];
    g->C = xd[1];
    g->M = wd[0];
    g->Cg = wd[1];
    if (g->C >= 0 && g->C % g->group)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%lld input channels are not divisible by group %lld",
                                (long long)g->C, (long long)g->group);
    if (g->C >= 0 && g->Cg >= 0 && g->C / g->group != g->Cg)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input has %lld channels but W expects %lld per group x %lld groups",
                                (long long)g->C, (long long)g->Cg, (long long)g->group);
    if (g->M >= 0 && g->M % g->group)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%lld output channels are not divisible by group %lld",
                                (long long)g->M, (long long)g->group);
    g->Mg = g->M >= 0 ? g->M / g->group : -1;
    for (int i = 0; i < nsp; i++) g->in[i] = xd[2 + i];
    kiln_auto_pad ap;
    if ((st = kiln_conv_auto_pad(n, &ap))) return st;
    return kiln_conv_window_out(n, g, ap, false);
}

kiln_status kiln_conv_transpose_geom_make(const kiln_node *n, int rank, const int64_t *xd, const int64_t *wd,
                                          kiln_conv_geom *g)
{
    kiln_status st;
    if (rank < 3 || rank > KILN_MAX_RANK)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "input rank %d: ConvTranspose needs rank >= 3", rank);
    int nsp = rank - 2;
    if ((st = kiln_conv_window_attrs(n, nsp, wd + 2, g))) return st;
    int64_t opad[KILN_MAX_RANK];
    if ((st = kiln_conv_attr_ints(n, "output_padding", nsp, 0, 0, opad))) return st;
    if ((st = read_group(n, g))) return st;
    g->N = xd[0];
    g->C = xd[1];
    g->Mg = wd[1];
    g->M = g->Mg >= 0 ? g->Mg * g->group : -1;
    if (g->C >= 0 && wd[0] >= 0 && g->C != wd[0])
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "X has %lld channels but W has %lld", (long long)g->C,
                                (long long)wd[0]);
    if (g->C >= 0 && g->C % g->group)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "%lld input channels are not divisible by group %lld",
                                (long long)g->C, (long long)g->group);
    g->Cg = g->C >= 0 ? g->C / g->group : -1;
    if (g->Mg > KILN_CONV_DIM_MAX) return kiln_node_errorf(n, KILN_ERR_LIMIT, "W dim 1 is too large");
    kiln_auto_pad ap;
    if ((st = kiln_conv_auto_pad(n, &ap))) return st;
    g->auto_pad = ap;
    const int64_t *os;
    int ocnt = kiln_attr_ints(n, "output_shape", &os);
    if (ocnt >= 0 && ocnt != nsp && ocnt != nsp + 2)
        return kiln_node_errorf(n, KILN_ERR_SHAPE, "output_shape has %d values, expected %d", ocnt, nsp);
    for (int i = 0; i < nsp; i++) {
        int64_t in = xd[2 + i], k = g->k[i], s = g->s[i], d = g->d[i];
        g->in[i] = in;
        g->keep[i] = false;
        if (in > KILN_CONV_DIM_MAX) return kiln_node_errorf(n, KILN_ERR_LIMIT, "spatial dim %d is too large", i);
        int64_t want = -1; /* requested output size */
        if (ocnt >= 0) {
            want = os[ocnt - nsp + i];
            if (want < 0 || want > KILN_CONV_DIM_MAX)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "output_shape[%d] = %lld is out of range", i,
                                        (long long)want);
        } else if (ap == KILN_AUTO_PAD_SAME_UPPER || ap == KILN_AUTO_PAD_SAME_LOWER) {
            want = in >= 0 ? in * s : -1;
        }
        if (ap == KILN_AUTO_PAD_VALID) g->pb[i] = g->pe[i] = 0;
        if (in < 0 || k < 0) {
            g->out[i] = ocnt >= 0 ? want : -1;
            continue;
        }
        /* natural size without pads: s*(in-1) + output_padding + extent */
        int64_t span = 0;
        if (in > 0 && (!kiln_mul_dims(s, in - 1, &span) || span > KILN_CONV_DIM_MAX))
            return kiln_node_errorf(n, KILN_ERR_LIMIT, "spatial dim %d: output would be too large", i);
        int64_t full = span + opad[i] + (k - 1) * d + 1;
        if (want >= 0) {
            int64_t total = full - want;
            /* SAME_UPPER puts the odd pad at the end; NOTSET/SAME_LOWER at the beginning */
            int64_t half = floor_div(total, 2);
            g->pb[i] = ap == KILN_AUTO_PAD_SAME_UPPER ? half : total - half;
            g->pe[i] = total - g->pb[i];
            g->out[i] = want;
        } else {
            g->out[i] = full - g->pb[i] - g->pe[i];
            if (g->out[i] < 0)
                return kiln_node_errorf(n, KILN_ERR_SHAPE, "spatial dim %d: pads exceed the output size", i);
        }
    }
    return KILN_OK;
}

int kiln_conv_geom_out_dims(const kiln_conv_geom *g, int64_t *od)
{
    od[0] = g->N;
    od[1] = g->M;
    for (int i = 0; i < g->nsp; i++) od[2 + i] = g->out[i];
    return g->nsp + 2;
}
