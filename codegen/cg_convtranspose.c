/*
 * cg_convtranspose.c — ConvTranspose (kernels/convtranspose.cuh): the geometry of
 * ir/conv_geom.c (the one the CPU evaluator uses: auto_pad, output_padding and output_shape
 * resolved into pads), then a gather-form direct kernel.
 */
#include "codegen/cg_internal.h"
#include "conv_geom.h"

#include <stdio.h>
#include <string.h>

kiln_status kiln_cg_emit_conv_transpose(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *w = kiln_cg_val(c, n->inputs[1]);
    const kiln_value *y = kiln_cg_val(c, n->outputs[0]);
    const kiln_value *b = n->n_inputs > 2 && n->inputs[2] >= 0 ? kiln_cg_val(c, n->inputs[2]) : NULL;
    const char *T = kiln_cg_ctype(x->dtype);
    if (!kiln_dtype_is_float(x->dtype) || x->dtype == KILN_F64 || !T || w->dtype != x->dtype || (b && b->dtype != x->dtype))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    if (x->layout == KILN_LAYOUT_NHWC || y->layout == KILN_LAYOUT_NHWC)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    int nsp = x->rank - 2;
    if (nsp < 1 || nsp > 3) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%d spatial dims", nsp);
    kiln_conv_geom g;
    if (kiln_conv_transpose_geom_make(n, x->rank, x->dims, w->dims, &g))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "geometry: %s", kiln_last_error());
    int64_t sh[6 + 6 * 3];
    int64_t total = kiln_cg_numel(y);
    if (total == 0) return KILN_OK;
    sh[0] = total;
    sh[1] = g.N;
    sh[2] = g.C;
    sh[3] = g.M;
    sh[4] = g.Cg;
    sh[5] = g.Mg;
    for (int j = 0; j < nsp; j++) {
        if (y->dims[2 + j] != g.out[j]) return kiln_errorf(KILN_ERR_INTERNAL, "output dims disagree with the geometry");
        sh[6 + j] = g.in[j];
        sh[6 + nsp + j] = g.out[j];
        sh[6 + 2 * nsp + j] = g.k[j];
        sh[6 + 3 * nsp + j] = g.s[j];
        sh[6 + 4 * nsp + j] = g.d[j];
        sh[6 + 5 * nsp + j] = g.pb[j];
    }
    char fn[64];
    kiln_cg_kernel_name(c, "conv_transpose", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, const %s *w, "
                   "const %s *bias, %s *y, kiln::convt_shape<%d> s) {\n"
                   "    kiln::conv_transpose<%s, %d>(x, w, bias, y, s);\n}\n",
                   fn, c->group, y->name, BLOCK_1D, fn, T, T, T, T, nsp, T, nsp);
    kiln_bundle_arg args[5];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->inputs[1], &args[1])))
        return st;
    args[2] = kiln_cg_null_arg;
    if (b && (st = kiln_cg_value_arg(c, n->inputs[2], &args[2]))) return st;
    if ((st = kiln_cg_value_arg(c, n->outputs[0], &args[3])) ||
        (st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(6 + 6 * nsp), &args[4])))
        return st;
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 5);
}
