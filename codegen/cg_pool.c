/*
 * cg_pool.c — pooling (max/average/global) and Softmax/LogSoftmax.
 */
#include "codegen/cg_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool_shape_host { /* kernels/pool.cuh pool2d_shape */
    int64_t NC, H, W, P, Q, R, S, sh, sw, ph, pw, dh, dw, pe_h, pe_w, C;
} pool_shape_host;

/* The storage type of a float tensor the pooling and softmax templates take (NULL: none). */
static const char *float_type(kiln_dtype dt) {
    switch (dt) {
    case KILN_F32: return "float";
    case KILN_F16: return "__half";
    case KILN_BF16: return "__nv_bfloat16";
    default: return NULL;
    }
}

kiln_status kiln_cg_emit_pool(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *y = kiln_cg_val(c, n->outputs[0]);
    kiln_status st;
    const char *T = float_type(x->dtype);
    if (!T || y->dtype != x->dtype) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s pooling", kiln_dtype_name(x->dtype));
    /* NHWC (select-layout): x is stored [N][H][W][C]; a [N,C,1,1] output is the same bytes in
     * both layouts */
    const bool nhwc = kiln_cg_node_nhwc(n) && x->rank == 4;
    if (n->n_outputs > 1 && n->outputs[1] >= 0 && kiln_value_live_uses(c->g, n->outputs[1]) > 0)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "MaxPool's Indices output");
    char fn[64];
    kiln_bundle_arg args[3];
    if (n->op == KILN_OP_GlobalAveragePool || n->op == KILN_OP_GlobalMaxPool) {
        bool mx = n->op == KILN_OP_GlobalMaxPool;
        int64_t rows = x->rank >= 2 ? x->dims[0] * x->dims[1] : 1, len = kiln_cg_numel(x) / (rows ? rows : 1);
        if (nhwc) {
            int64_t L = x->dims[2] * x->dims[3], N = x->dims[0], C = x->dims[1];
            kiln_cg_kernel_name(c, mx ? "global_max_pool_nhwc" : "global_avg_pool_nhwc", fn, sizeof fn);
            kiln_cg_printf(&c->src,
                      "\n// %s: %s, NHWC [%lld, %lld, %lld]\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s "
                      "*x, %s *y, kiln::i64 n, kiln::i64 l, kiln::i64 ch) {\n    kiln::global_pool_nhwc<%s, %s>(x, y, n, l, ch);\n}\n",
                      fn, c->group, (long long)N, (long long)L, (long long)C, BLOCK_1D, fn, T, T, mx ? "true" : "false", T);
            if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->outputs[0], &args[1])))
                return st;
            kiln_bundle_arg all[5] = {args[0], args[1], {KILN_ARG_SCALAR, 8, (uint64_t)N}, {KILN_ARG_SCALAR, 8, (uint64_t)L},
                                      {KILN_ARG_SCALAR, 8, (uint64_t)C}};
            return kiln_cg_launch(c, fn, kiln_cg_grid_1d(N * C), 1, 1, BLOCK_1D, all, 5);
        }
        kiln_cg_kernel_name(c, mx ? "global_max_pool" : "global_avg_pool", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                  "\n// %s: %s, %lld rows of %lld\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s "
                  "*x, %s *y, kiln::i64 rows, kiln::i64 len) {\n    kiln::global_pool<%s, %s>(x, y, rows, len);\n}\n",
                  fn, c->group, (long long)rows, (long long)len, BLOCK_1D, fn, T, T, mx ? "true" : "false", T);
        if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->outputs[0], &args[1]))) return st;
        kiln_bundle_arg sc[2] = {{KILN_ARG_SCALAR, 8, (uint64_t)rows}, {KILN_ARG_SCALAR, 8, (uint64_t)len}};
        kiln_bundle_arg all[4] = {args[0], args[1], sc[0], sc[1]};
        return kiln_cg_launch(c, fn, (uint64_t)((rows + BLOCK_1D / 32 - 1) / (BLOCK_1D / 32)), 1, 1, BLOCK_1D, all, 4);
    }
    if (x->rank != 4 && x->rank != 3) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%d-D pooling", x->rank - 2);
    int nsp = x->rank - 2;
    int64_t in[2], k[2], s[2], d[2], pb[2], pe[2];
    for (int i = 0; i < nsp; i++) in[i] = x->dims[2 + i];
    kiln_cg_ints_or(n, "kernel_shape", nsp, 1, k);
    kiln_cg_ints_or(n, "strides", nsp, 1, s);
    kiln_cg_ints_or(n, "dilations", nsp, 1, d);
    if ((st = kiln_cg_window_pads(n, nsp, in, k, s, d, pb, pe))) return st;
    pool_shape_host sh = {.NC = x->dims[0] * x->dims[1], .C = x->dims[1]};
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
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->outputs[0], &args[1])))
        return st;
    /* fp16 NHWC, 8 channels per thread in 16-byte vectors: arena offsets must be 16-byte aligned
     * (bound inputs and outputs are device allocations) */
    if (nhwc && nsp == 2 && x->dtype == KILN_F16 && sh.C % 8 == 0 && sh.NC * in[0] * in[1] < ((int64_t)1 << 31) &&
        (args[0].kind != KILN_ARG_ARENA || args[0].value % 16 == 0) &&
        (args[1].kind != KILN_ARG_ARENA || args[1].value % 16 == 0)) {
        if (n->op == KILN_OP_MaxPool && sh.dh == 1 && sh.dw == 1 && sh.R <= 8 && sh.S <= 8) {
            /* compile-time shape, QT = 2 output columns a thread (max_pool_nhwc_h8_ct) */
            const int64_t QT = sh.Q >= 2 ? 2 : 1, items = sh.NC / 8 * sh.P * ((sh.Q + QT - 1) / QT);
            kiln_cg_kernel_name(c, "max_pool_nhwc_h8", fn, sizeof fn);
            kiln_cg_printf(&c->src,
                           "\n// %s: %s, window %lldx%lld stride %lldx%lld, NHWC fp16 x 8 channels, %lld columns a thread\n"
                           "extern \"C\" __global__ void __launch_bounds__(%d) %s(const __half *x, __half *y) {\n"
                           "    kiln::max_pool_nhwc_h8_ct<%lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, "
                           "%lld>(x, y);\n}\n",
                           fn, c->group, (long long)sh.R, (long long)sh.S, (long long)sh.sh, (long long)sh.sw, (long long)QT,
                           BLOCK_1D, fn, (long long)(sh.NC / sh.C), (long long)sh.H, (long long)sh.W, (long long)(sh.C / 8),
                           (long long)sh.P, (long long)sh.Q, (long long)sh.R, (long long)sh.S, (long long)sh.sh,
                           (long long)sh.sw, (long long)sh.ph, (long long)sh.pw, (long long)QT);
            return kiln_cg_launch(c, fn, kiln_cg_grid_1d(items), 1, 1, BLOCK_1D, args, 2);
        }
        kiln_cg_kernel_name(c, n->op == KILN_OP_MaxPool ? "max_pool_nhwc_h8" : "avg_pool_nhwc_h8", fn, sizeof fn);
        kiln_cg_printf(&c->src,
                       "\n// %s: %s, window %lldx%lld stride %lldx%lld, NHWC fp16 x 8 channels\nextern \"C\" __global__ void "
                       "__launch_bounds__(%d) %s(const __half *x, __half *y, kiln::pool2d_shape s) {\n"
                       "    kiln::pool2d_nhwc_h8<%s>(x, y, s);\n}\n",
                       fn, c->group, (long long)sh.R, (long long)sh.S, (long long)sh.sh, (long long)sh.sw, BLOCK_1D, fn, mode);
        if ((st = kiln_cg_bytes_arg(c, &sh, sizeof sh, &args[2]))) return st;
        return kiln_cg_launch(c, fn, kiln_cg_grid_1d(sh.NC / 8 * sh.P * sh.Q), 1, 1, BLOCK_1D, args, 3);
    }
    kiln_cg_kernel_name(c, n->op == KILN_OP_MaxPool ? (nhwc ? "max_pool_nhwc" : "max_pool") : (nhwc ? "avg_pool_nhwc" : "avg_pool"),
                        fn, sizeof fn);
    kiln_cg_printf(&c->src,
              "\n// %s: %s, window %lldx%lld stride %lldx%lld%s\nextern \"C\" __global__ void __launch_bounds__(%d) "
              "%s(const %s *x, %s *y, kiln::pool2d_shape s) {\n    kiln::pool2d<%s, %s%s>(x, y, s);\n}\n",
              fn, c->group, (long long)sh.R, (long long)sh.S, (long long)sh.sh, (long long)sh.sw, nhwc ? ", NHWC" : "",
              BLOCK_1D, fn, T, T, mode, T, nhwc ? ", true" : "");
    if ((st = kiln_cg_bytes_arg(c, &sh, sizeof sh, &args[2]))) return st;
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(sh.NC * sh.P * sh.Q), 1, 1, BLOCK_1D, args, 3);
}

/* ---------------------------------------------------------------- softmax -- */
kiln_status kiln_cg_emit_softmax(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]);
    const char *T = float_type(x->dtype);
    if (!T || kiln_cg_val(c, n->outputs[0])->dtype != x->dtype)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s softmax", kiln_dtype_name(x->dtype));
    int64_t axis;
    if (!kiln_norm_axis(kiln_attr_int(n, "axis", -1), x->rank < 1 ? 1 : x->rank, &axis))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
    int64_t outer = 1, D = x->rank ? x->dims[axis] : 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
    bool lg = n->op == KILN_OP_LogSoftmax;
    char fn[64];
    kiln_cg_kernel_name(c, lg ? "log_softmax" : "softmax", fn, sizeof fn);
    kiln_cg_printf(&c->src,
              "\n// %s: %s, [%lld, %lld, %lld] along the middle\nextern \"C\" __global__ void __launch_bounds__(%d) "
              "%s(const %s *x, %s *y, kiln::i64 outer, kiln::i64 d, kiln::i64 inner) {\n"
              "    kiln::softmax_rows<%s, %s>(x, y, outer, d, inner);\n}\n",
              fn, c->group, (long long)outer, (long long)D, (long long)inner, BLOCK_1D, fn, T, T, lg ? "true" : "false", T);
    kiln_bundle_arg args[5];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->outputs[0], &args[1]))) return st;
    args[2] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)outer};
    args[3] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)D};
    args[4] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)inner};
    int64_t rows = outer * inner, per_block = BLOCK_1D / 32;
    return kiln_cg_launch(c, fn, (uint64_t)((rows + per_block - 1) / per_block), 1, 1, BLOCK_1D, args, 5);
}

/* ------------------------------------------------------- copies and concat -- */