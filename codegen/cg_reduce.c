/*
 * cg_reduce.c — Reduce* over any axes and ArgMax / ArgMin (kernels/reduce.cuh): one warp per
 * output element, any storage dtype (fp32 accumulation for floating dtypes, 64-bit integer
 * accumulation for integer ones).
 */
#include "codegen/cg_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The CUDA C type of a dtype's elements, NULL when the kernels do not handle it. */
const char *kiln_cg_ctype(kiln_dtype dt) {
    switch (dt) {
    case KILN_F32: return "float";
    case KILN_F64: return "double"; /* reductions and scans only: other kernels load through to_f32 */
    case KILN_F16: return "__half";
    case KILN_BF16: return "__nv_bfloat16";
    case KILN_I64: return "long long";
    case KILN_I32: return "int";
    case KILN_I16: return "short";
    case KILN_I8: return "signed char";
    case KILN_U8: case KILN_BOOL: return "unsigned char";
    case KILN_U16: return "unsigned short";
    case KILN_U32: return "unsigned int";
    default: return NULL;
    }
}

/* The accumulator type of reductions and scans over a dtype. */
static const char *acc_type(kiln_dtype dt) {
    return dt == KILN_F64 ? "double" : kiln_dtype_is_float(dt) ? "float" : "kiln::i64";
}

static const char *red_op_name(kiln_op op) {
    switch (op) {
    case KILN_OP_ReduceSum: return "RED_SUM";
    case KILN_OP_ReduceMean: return "RED_MEAN";
    case KILN_OP_ReduceProd: return "RED_PROD";
    case KILN_OP_ReduceMax: return "RED_MAX";
    case KILN_OP_ReduceMin: return "RED_MIN";
    case KILN_OP_ReduceL1: return "RED_L1";
    case KILN_OP_ReduceL2: return "RED_L2";
    case KILN_OP_ReduceSumSquare: return "RED_SUMSQ";
    case KILN_OP_ReduceLogSum: return "RED_LOGSUM";
    case KILN_OP_ReduceLogSumExp: return "RED_LOGSUMEXP";
    default: return NULL;
    }
}

/* Which axes of a rank-`rank` input a Reduce* node reduces (red[d]); the axes come from a
 * constant input 1 or the pre-18 attribute, as the CPU evaluator reads them. */
static kiln_status reduce_axes(const kiln_value *axes_val, const kiln_node *n, int rank, bool *red) {
    int64_t axes[KILN_MAX_RANK + 1];
    int count;
    for (int d = 0; d < KILN_MAX_RANK; d++) red[d] = false;
    if (axes_val) {
        count = kiln_value_const_ints(axes_val, axes, KILN_MAX_RANK + 1);
        if (count < 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "axes not known at build time");
    } else {
        const int64_t *v;
        count = kiln_attr_ints(n, "axes", &v);
        if (count < 0) count = 0;
        if (count > KILN_MAX_RANK) return kiln_errorf(KILN_ERR_UNSUPPORTED, "too many axes");
        for (int i = 0; i < count; i++) axes[i] = v[i];
    }
    if (count == 0) {
        if (!kiln_attr_int(n, "noop_with_empty_axes", 0))
            for (int d = 0; d < rank; d++) red[d] = true;
        return KILN_OK;
    }
    for (int i = 0; i < count; i++) {
        int64_t a;
        if (!kiln_norm_axis(axes[i], rank, &a)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
        red[a] = true;
    }
    return KILN_OK;
}

/* One warp-per-output launch over x's [kept | reduced] index spaces; `call` is the
 * reduce.cuh template with its arguments up to (not including) the rank. */
static kiln_status emit_reduce_launch(cg *c, const kiln_node *n, const bool *red, const char *yT, const char *call,
                                      const char *what) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *y = kiln_cg_val(c, n->outputs[0]);
    const char *T = kiln_cg_ctype(x->dtype);
    if (!T || !yT) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    if (x->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    int R = x->rank < 1 ? 1 : x->rank;
    int64_t xs[KILN_MAX_RANK], sh[2 + 4 * KILN_MAX_RANK];
    kiln_strides(x->rank, x->dims, xs);
    int64_t n_out = kiln_cg_numel(y), n_red = 1;
    for (int d = 0; d < R; d++) {
        bool scalar = x->rank == 0, r = !scalar && red[d];
        int64_t dim = scalar ? 1 : x->dims[d], st = scalar ? 0 : xs[d];
        sh[2 + d] = r ? 1 : dim;
        sh[2 + R + d] = r ? 0 : st;
        sh[2 + 2 * R + d] = r ? dim : 1;
        sh[2 + 3 * R + d] = r ? st : 0;
        if (r) n_red *= dim;
    }
    if (n->op == KILN_OP_Hardmax || n->op == KILN_OP_LpNormalization) /* rows: y is shaped like x */
        n_out = n_red ? kiln_cg_numel(x) / n_red : 0;
    sh[0] = n_out;
    sh[1] = n_red;
    if (n_out == 0) return KILN_OK;
    char fn[64];
    kiln_cg_kernel_name(c, what, fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s (%lld outputs of %lld elements)\nextern \"C\" __global__ void "
                   "__launch_bounds__(%d) %s(const %s *x, %s *y, kiln::reduce_shape<%d> s) {\n    %s, %d>(x, y, "
                   "s);\n}\n",
                   fn, c->group, y->name, (long long)n_out, (long long)n_red, BLOCK_1D, fn, T, yT, R, call, R);
    kiln_bundle_arg args[3];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->outputs[0], &args[1])) ||
        (st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(2 + 4 * R), &args[2])))
        return st;
    int64_t blocks = (n_out + BLOCK_1D / 32 - 1) / (BLOCK_1D / 32);
    return kiln_cg_launch(c, fn, (uint64_t)(blocks > MAX_GRID_1D ? MAX_GRID_1D : blocks), 1, 1, BLOCK_1D, args, 3);
}

kiln_status kiln_cg_emit_reduce(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *y = kiln_cg_val(c, n->outputs[0]);
    bool red[KILN_MAX_RANK];
    char call[128];
    if (n->op == KILN_OP_ArgMax || n->op == KILN_OP_ArgMin) {
        int64_t axis;
        if (y->dtype != KILN_I64) return kiln_errorf(KILN_ERR_UNSUPPORTED, "output dtype %s", kiln_dtype_name(y->dtype));
        if (!kiln_norm_axis(kiln_attr_int(n, "axis", 0), x->rank < 1 ? 1 : x->rank, &axis))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
        for (int d = 0; d < KILN_MAX_RANK; d++) red[d] = d == axis;
        const char *T = kiln_cg_ctype(x->dtype);
        if (!T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
        snprintf(call, sizeof call, "kiln::arg_reduce_rows<%s, %s, %s, %s", T, acc_type(x->dtype), n->op == KILN_OP_ArgMax ? "true" : "false",
                 kiln_attr_int(n, "select_last_index", 0) ? "true" : "false");
        return emit_reduce_launch(c, n, red, "long long", call, n->op == KILN_OP_ArgMax ? "argmax" : "argmin");
    }
    if (n->op == KILN_OP_LpNormalization) {
        int64_t a, p = kiln_attr_int(n, "p", 2);
        if (p != 1 && p != 2) return kiln_errorf(KILN_ERR_UNSUPPORTED, "p = %lld", (long long)p);
        if (x->rank < 1 || !kiln_norm_axis(kiln_attr_int(n, "axis", -1), x->rank, &a))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
        for (int d = 0; d < KILN_MAX_RANK; d++) red[d] = d == a;
        const char *T = kiln_cg_ctype(x->dtype);
        if (!T || !kiln_dtype_is_float(x->dtype)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
        snprintf(call, sizeof call, "kiln::lp_norm_rows<%s, %s, %d", T, acc_type(x->dtype), (int)p);
        return emit_reduce_launch(c, n, red, T, call, "lp_norm");
    }
    if (n->op == KILN_OP_Hardmax) { /* one axis, or the whole tail for opset < 13 (kiln_coerce_2d) */
        bool coerce = kiln_attr_int(n, "kiln_coerce_2d", 0) != 0;
        int64_t a;
        if (x->rank < 1 || !kiln_norm_axis(kiln_attr_int(n, "axis", coerce ? 1 : -1), x->rank, &a))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
        for (int d = 0; d < KILN_MAX_RANK; d++) red[d] = d == a || (coerce && d > a && d < x->rank);
        const char *T = kiln_cg_ctype(x->dtype);
        if (!T || !kiln_dtype_is_float(x->dtype)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
        snprintf(call, sizeof call, "kiln::hardmax_rows<%s, %s", T, acc_type(x->dtype));
        return emit_reduce_launch(c, n, red, T, call, "hardmax");
    }
    const char *op = red_op_name(n->op);
    if (!op) return kiln_errorf(KILN_ERR_UNSUPPORTED, "no GPU kernel for this op yet");
    if (!kiln_dtype_is_float(x->dtype) && n->op != KILN_OP_ReduceSum && n->op != KILN_OP_ReduceProd &&
        n->op != KILN_OP_ReduceMax && n->op != KILN_OP_ReduceMin && n->op != KILN_OP_ReduceL1 &&
        n->op != KILN_OP_ReduceSumSquare)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s of integers", kiln_op_table[n->op].onnx_type);
    kiln_status st =
        reduce_axes(n->n_inputs > 1 && n->inputs[1] >= 0 ? kiln_cg_val(c, n->inputs[1]) : NULL, n, x->rank, red);
    if (st) return st;
    const char *T = kiln_cg_ctype(x->dtype);
    if (!T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    snprintf(call, sizeof call, "kiln::reduce_rows<%s, %s, kiln::%s", T, acc_type(x->dtype), op);
    return emit_reduce_launch(c, n, red, kiln_cg_ctype(y->dtype), call, "reduce");
}

/* ------------------------------------------------------- fused reduction groups -- */
#define MAX_LEAVES 16

/* The fp32 expression of one elementwise body op on operands a (and b), or NULL. */
static const char *ew_expr(const kiln_graph *bg, const kiln_node *nd, const char *a, const char *b, char *buf,
                           size_t len) {
    switch (nd->op) {
    case KILN_OP_Add: snprintf(buf, len, "(%s + %s)", a, b); break;
    case KILN_OP_Sub: snprintf(buf, len, "(%s - %s)", a, b); break;
    case KILN_OP_Mul: snprintf(buf, len, "(%s * %s)", a, b); break;
    case KILN_OP_Div: snprintf(buf, len, "(%s / %s)", a, b); break;
    case KILN_OP_Pow: snprintf(buf, len, "powf(%s, %s)", a, b); break;
    case KILN_OP_Max: snprintf(buf, len, "fmaxf(%s, %s)", a, b); break;
    case KILN_OP_Min: snprintf(buf, len, "fminf(%s, %s)", a, b); break;
    case KILN_OP_Neg: snprintf(buf, len, "(-%s)", a); break;
    case KILN_OP_Abs: snprintf(buf, len, "fabsf(%s)", a); break;
    case KILN_OP_Exp: snprintf(buf, len, "expf(%s)", a); break;
    case KILN_OP_Log: snprintf(buf, len, "logf(%s)", a); break;
    case KILN_OP_Sqrt: snprintf(buf, len, "sqrtf(%s)", a); break;
    case KILN_OP_Reciprocal: snprintf(buf, len, "(1.0f / %s)", a); break;
    case KILN_OP_Relu: snprintf(buf, len, "fmaxf(%s, 0.0f)", a); break;
    case KILN_OP_Sigmoid: snprintf(buf, len, "(1.0f / (1.0f + expf(-%s)))", a); break;
    case KILN_OP_Tanh: snprintf(buf, len, "tanhf(%s)", a); break;
    case KILN_OP_Erf: snprintf(buf, len, "erff(%s)", a); break;
    case KILN_OP_Floor: snprintf(buf, len, "floorf(%s)", a); break;
    case KILN_OP_Ceil: snprintf(buf, len, "ceilf(%s)", a); break;
    case KILN_OP_Identity: snprintf(buf, len, "%s", a); break;
    case KILN_OP_Cast: case KILN_OP_CastLike: /* fp32 -> fp32 only (checked by the caller) */
        snprintf(buf, len, "%s", a);
        break;
    default: return NULL;
    }
    (void)bg;
    return buf;
}

typedef struct fused_leaves {
    int v[MAX_LEAVES];
    int n;
} fused_leaves;

static int leaf_slot(fused_leaves *l, int v) {
    for (int i = 0; i < l->n; i++)
        if (l->v[i] == v) return i;
    if (l->n == MAX_LEAVES) return -1;
    l->v[l->n] = v;
    return l->n++;
}

/* Strides of a value of rank vr/dims vd broadcast (right-aligned) onto dims[rank]. */
static void bcast_strides(int vr, const int64_t *vd, int rank, const int64_t *dims, int64_t *out) {
    int64_t vs[KILN_MAX_RANK];
    kiln_strides(vr, vd, vs);
    for (int d = rank - 1, j = vr - 1; d >= 0; d--, j--) out[d] = (j < 0 || vd[j] == 1 || dims[d] == 1) ? 0 : vs[j];
}

/* Emits the statements computing body nodes [from, to) into src; operands are v<id>. Leaf
 * reads (body inputs) go to `leaves` (the `side` array of in/off). */
/* The body's compute type: "double" when the group is f64 (every value f64), else "float". */
static bool body_is_f64(const kiln_graph *bg) {
    for (int v = 0; v < bg->n_values; v++)
        if (bg->values[v].dtype == KILN_F64) return true;
    return false;
}

/* expf( -> exp( and so on, for a double body. */
static void to_double_math(char *e) {
    static const char *const fns[] = {"expf(", "logf(", "sqrtf(", "fabsf(", "powf(", "fmaxf(", "fminf(",
                                      "tanhf(", "erff(", "floorf(", "ceilf("};
    for (size_t k = 0; k < sizeof fns / sizeof *fns; k++) {
        size_t l = strlen(fns[k]);
        for (char *p = strstr(e, fns[k]); p; p = strstr(p, fns[k])) {
            memmove(p + l - 2, p + l - 1, strlen(p + l - 1) + 1); /* drop the 'f' before '(' */
            p += l - 1;
        }
    }
    /* float literals (1.0f, 1e-05f) become double literals: mixed overloads are ambiguous */
    for (char *p = e; *p; p++) {
        bool ident_before = p > e && (isalpha((unsigned char)p[-1]) || p[-1] == '_');
        if (ident_before) { /* skip identifiers and hex literals whole */
            while (isalnum((unsigned char)*p) || *p == '_') p++;
            if (!*p) break;
            continue;
        }
        if (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))) {
            char *q = p;
            if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) { /* hex: never a float suffix */
                while (isalnum((unsigned char)*q)) q++;
            } else {
                while (isdigit((unsigned char)*q) || *q == '.' || *q == 'e' || *q == 'E' ||
                       ((*q == '-' || *q == '+') && (q[-1] == 'e' || q[-1] == 'E')))
                    q++;
                if (*q == 'f' && !isalnum((unsigned char)q[1]) && q[1] != '_') memmove(q, q + 1, strlen(q + 1) + 1);
            }
            p = q - 1;
            if (!*q) break;
        }
    }
}

static kiln_status emit_body_range(cg *c, const kiln_graph *bg, int from, int to, fused_leaves *leaves,
                                   const char *in, int in_base, bool *have) {
    const bool dbl = body_is_f64(bg);
    const char *A = dbl ? "double" : "float";
    for (int k = from; k < to; k++) {
        const kiln_node *nd = &bg->nodes[k];
        if (nd->dead) continue;
        if (nd->n_outputs < 1 || nd->outputs[0] < 0) continue;
        char ops[2][64];
        for (int i = 0; i < 2; i++) snprintf(ops[i], sizeof ops[i], "0.0f");
        int nin = nd->n_inputs < 2 ? nd->n_inputs : 2;
        if (nd->op == KILN_OP_CastLike) nin = 1;
        for (int i = 0; i < nin; i++) {
            int v = nd->inputs[i];
            if (v < 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "an omitted input in a fused reduction");
            const kiln_value *bv = &bg->values[v];
            if (!kiln_dtype_is_float(bv->dtype) || (bv->dtype == KILN_F64) != dbl)
                return kiln_errorf(KILN_ERR_UNSUPPORTED, "a %s value in a fused reduction", kiln_dtype_name(bv->dtype));
            if (bv->data) {
                if (bv->data->numel != 1)
                    return kiln_errorf(KILN_ERR_UNSUPPORTED, "a non-scalar constant in a fused reduction");
                kiln_cg_flit(ops[i], sizeof ops[i], (float)kiln_tensor_get(bv->data, 0));
            } else if (!have[v]) {
                int slot = leaf_slot(leaves, v);
                if (slot < 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "too many inputs in a fused reduction");
                const char *T = kiln_cg_ctype(bv->dtype);
                if (dbl)
                    kiln_cg_printf(&c->src, "        const double v%d = static_cast<const double *>(%s[%d])[off[%d]];\n",
                                   v, in, in_base + slot, slot);
                else
                    kiln_cg_printf(&c->src, "        const float v%d = kiln::load_f32<%s>(%s[%d], off[%d]);\n", v, T,
                                   in, in_base + slot, slot);
                have[v] = true;
                snprintf(ops[i], sizeof ops[i], "v%d", v);
            } else {
                snprintf(ops[i], sizeof ops[i], "v%d", v);
            }
        }
        const kiln_value *ov = &bg->values[nd->outputs[0]];
        if (!kiln_dtype_is_float(ov->dtype) || (ov->dtype == KILN_F64) != dbl)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "a %s value in a fused reduction", kiln_dtype_name(ov->dtype));
        if ((nd->op == KILN_OP_Cast || nd->op == KILN_OP_CastLike) && ov->dtype != (dbl ? KILN_F64 : KILN_F32))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "a Cast to %s in a fused reduction", kiln_dtype_name(ov->dtype));
        char e[200];
        if (!ew_expr(bg, nd, ops[0], ops[1], e, sizeof e))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s in a fused reduction", kiln_op_table[nd->op].onnx_type);
        if (dbl) to_double_math(e);
        kiln_cg_printf(&c->src, "        const %s v%d = %s;\n", A, nd->outputs[0], e);
        have[nd->outputs[0]] = true;
    }
    return KILN_OK;
}

/* softmax_fused_shape (kernels/reduce.cuh) for a Softmax group over x's dims, as a bytes arg. */
static kiln_status softmax_group_shape(cg *c, const kiln_graph *bg, const kiln_value *x, const bool *red,
                                       const fused_leaves *pre, const fused_leaves *epi, int64_t n_out, int64_t n_red,
                                       kiln_bundle_arg *arg) {
    int R = x->rank, NEPI1 = epi->n ? epi->n : 1;
    size_t ns = (size_t)(2 + 4 * R + 2 * pre->n * R + 2 * NEPI1 * R), p = 0;
    int64_t *sh = calloc(ns, sizeof *sh), xs[KILN_MAX_RANK], ls[KILN_MAX_RANK];
    if (!sh) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    kiln_strides(R, x->dims, xs);
    sh[p++] = n_out;
    sh[p++] = n_red;
    for (int d = 0; d < R; d++) sh[p++] = red[d] ? 1 : x->dims[d];
    for (int d = 0; d < R; d++) sh[p++] = red[d] ? x->dims[d] : 1;
    for (int d = 0; d < R; d++) sh[p++] = red[d] ? 0 : xs[d];
    for (int d = 0; d < R; d++) sh[p++] = red[d] ? xs[d] : 0;
    kiln_status st = KILN_OK;
    for (int side = 0; side < 2; side++) {
        const fused_leaves *l = side ? epi : pre;
        int cnt = side ? NEPI1 : pre->n;
        for (int k = 0; k < cnt; k++) {
            memset(ls, 0, sizeof ls);
            if (k < l->n) {
                const kiln_value *lv = &bg->values[l->v[k]];
                if (lv->rank > R) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "a group input of higher rank");
                else bcast_strides(lv->rank, lv->dims, R, x->dims, ls);
            }
            /* [k][out] then [k][red] are separate arrays of the struct: fill both at their places */
            size_t base_out = p + (size_t)k * (size_t)R, base_red = p + (size_t)(cnt + k) * (size_t)R;
            for (int d = 0; d < R; d++) {
                sh[base_out + (size_t)d] = red[d] ? 0 : ls[d];
                sh[base_red + (size_t)d] = red[d] ? ls[d] : 0;
            }
        }
        p += (size_t)(2 * cnt * R);
    }
    if (!st) st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * ns, arg);
    free(sh);
    return st;
}

kiln_status kiln_cg_emit_reduction_group(cg *c, const kiln_node *n) {
    const kiln_graph *bg = n->body;
    if (!bg) return kiln_errorf(KILN_ERR_INTERNAL, "fused node without a body");
    int ri = -1;
    for (int k = 0; k < bg->n_nodes; k++)
        if (!bg->nodes[k].dead && (red_op_name(bg->nodes[k].op) || bg->nodes[k].op == KILN_OP_Softmax ||
                                   bg->nodes[k].op == KILN_OP_LogSoftmax || bg->nodes[k].op == KILN_OP_GlobalAveragePool ||
                                   bg->nodes[k].op == KILN_OP_GlobalMaxPool ||
                                   bg->nodes[k].op == KILN_OP_LayerNormalization ||
                                   bg->nodes[k].op == KILN_OP_RMSNormalization)) {
            if (ri >= 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "two reductions in one group");
            ri = k;
        }
    if (ri < 0)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "a reduction group around an op other than Reduce*, Softmax, "
                                                 "LogSoftmax, GlobalAveragePool, GlobalMaxPool, Layer/RMSNormalization");
    const kiln_node *rn = &bg->nodes[ri];
    /* global pools are ReduceMean / ReduceMax over the spatial dims, keepdims */
    const bool gpool = rn->op == KILN_OP_GlobalAveragePool || rn->op == KILN_OP_GlobalMaxPool;
    const char *rop = gpool ? (rn->op == KILN_OP_GlobalAveragePool ? "RED_MEAN" : "RED_MAX") : red_op_name(rn->op);
    const kiln_value *x = &bg->values[rn->inputs[0]], *ry = &bg->values[rn->outputs[0]];
    const bool dbl = body_is_f64(bg);
    const char *A = dbl ? "double" : "float";
    if (!kiln_dtype_is_float(x->dtype) || (x->dtype == KILN_F64) != dbl)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "a fused reduction of %s", kiln_dtype_name(x->dtype));
    for (int i = 0; i < n->n_inputs; i++)
        if (n->inputs[i] >= 0 && kiln_cg_val(c, n->inputs[i])->layout == KILN_LAYOUT_NHWC)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    bool red[KILN_MAX_RANK];
    const bool norm = rn->op == KILN_OP_LayerNormalization || rn->op == KILN_OP_RMSNormalization;
    const bool softmax = rn->op == KILN_OP_Softmax || rn->op == KILN_OP_LogSoftmax || norm; /* row-wise kinds */
    if (softmax && dbl) return kiln_errorf(KILN_ERR_UNSUPPORTED, "an f64 Softmax / normalization group");
    const kiln_value *axv = NULL; /* the axes: a body constant, or a group input (a graph constant) */
    if (rn->n_inputs > 1 && rn->inputs[1] >= 0) {
        axv = &bg->values[rn->inputs[1]];
        int bi = kiln_cg_io_index(bg->inputs, bg->n_inputs, rn->inputs[1]);
        if (!axv->data && bi >= 0 && bi < n->n_inputs && n->inputs[bi] >= 0) axv = kiln_cg_val(c, n->inputs[bi]);
    }
    kiln_status st = KILN_OK;
    if (norm) { /* the dims from the axis on */
        int64_t a;
        if (x->rank < 1 || !kiln_norm_axis(kiln_attr_int(rn, "axis", -1), x->rank, &a))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "normalization axis out of range");
        for (int d = 0; d < KILN_MAX_RANK; d++) red[d] = d >= a && d < x->rank;
    } else if (softmax) { /* one axis, or the whole tail from the axis for opset < 13 (kiln_coerce_2d) */
        bool coerce = kiln_attr_int(rn, "kiln_coerce_2d", 0) != 0;
        int64_t a;
        if (x->rank < 1 || !kiln_norm_axis(kiln_attr_int(rn, "axis", coerce ? 1 : -1), x->rank, &a))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "softmax axis out of range");
        for (int d = 0; d < KILN_MAX_RANK; d++) red[d] = d == a || (coerce && d > a && d < x->rank);
    } else if (gpool) {
        for (int d = 0; d < KILN_MAX_RANK; d++) red[d] = d >= 2 && d < x->rank;
    } else {
        st = reduce_axes(axv, rn, x->rank, red);
    }
    if (st) return st;
    int R = x->rank < 1 ? 1 : x->rank, RY = ry->rank < 1 ? 1 : ry->rank;
    int64_t xd[KILN_MAX_RANK], yd[KILN_MAX_RANK];
    for (int d = 0; d < R; d++) xd[d] = x->rank == 0 ? 1 : x->dims[d];
    for (int d = 0; d < RY; d++) yd[d] = ry->rank == 0 ? 1 : ry->dims[d];
    int64_t n_out = kiln_cg_numel(ry), n_red = 1;
    for (int d = 0; d < R; d++)
        if (red[d] && x->rank > 0) n_red *= xd[d];
    if (softmax) n_out = n_red ? kiln_cg_numel(x) / n_red : 0; /* rows; outputs are shaped like x */
    if (n_out == 0) return KILN_OK;

    bool *have = calloc((size_t)bg->n_values + 1, sizeof *have);
    if (!have) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    fused_leaves pre = {.n = 0}, epi = {.n = 0};
    char fn[64];
    kiln_cg_kernel_name(c, "reduction", fn, sizeof fn);
    kiln_cg_printf(&c->src, "\n// %s: fused reduction group %s\nstruct %s_expr {\n", fn, c->group, fn);
    kiln_cg_printf(&c->src, "    static __device__ __forceinline__ %s pre(const void *const *in, const kiln::i64 *off) {\n",
                   A);
    st = emit_body_range(c, bg, 0, ri, &pre, "in", 0, have);
    if (!st) {
        int xv = rn->inputs[0];
        if (!have[xv]) { /* the reduction reads a body input directly */
            int slot = leaf_slot(&pre, xv);
            if (slot < 0) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "too many inputs in a fused reduction");
            else if (dbl)
                kiln_cg_printf(&c->src, "        const double v%d = static_cast<const double *>(in[%d])[off[%d]];\n", xv,
                               slot, slot);
            else kiln_cg_printf(&c->src, "        const float v%d = kiln::load_f32<%s>(in[%d], off[%d]);\n", xv,
                                kiln_cg_ctype(x->dtype), slot, slot);
        }
        kiln_cg_printf(&c->src, "        return v%d;\n    }\n", xv);
    }
    if (!st && norm) { /* Scale [and B]: group inputs (or scalar constants) read at the element */
        kiln_cg_printf(&c->src, "    static __device__ __forceinline__ float affine(float v, const void *const *in, const "
                                "kiln::i64 *off) {\n        return v");
        for (int k = 1; !st && k <= 2; k++) {
            if (k >= rn->n_inputs || rn->inputs[k] < 0 || (k == 2 && rn->op == KILN_OP_RMSNormalization)) continue;
            const kiln_value *pv = &bg->values[rn->inputs[k]];
            char lit[48];
            if (pv->data && pv->data->numel == 1) {
                kiln_cg_printf(&c->src, " %s %s", k == 1 ? "*" : "+",
                               kiln_cg_flit(lit, sizeof lit, (float)kiln_tensor_get(pv->data, 0)));
                continue;
            }
            int bi = kiln_cg_io_index(bg->inputs, bg->n_inputs, rn->inputs[k]);
            int slot = bi >= 0 ? leaf_slot(&pre, rn->inputs[k]) : -1;
            if (slot < 0 || !kiln_cg_ctype(pv->dtype) || pv->dtype == KILN_F64) {
                st = kiln_errorf(KILN_ERR_UNSUPPORTED, "a normalization Scale / B computed inside the group");
                break;
            }
            kiln_cg_printf(&c->src, " %s kiln::load_f32<%s>(in[%d], off[%d])", k == 1 ? "*" : "+",
                           kiln_cg_ctype(pv->dtype), slot, slot);
        }
        kiln_cg_printf(&c->src, ";\n    }\n");
    }
    /* epilogue: the reduction's output is `r`; fresh leaf reads */
    if (!st) {
        memset(have, 0, sizeof *have * (size_t)bg->n_values);
        kiln_cg_printf(&c->src, "    static __device__ __forceinline__ void epi(%s r, const void *const *in, const "
                                "kiln::i64 *off, void *const *out, kiln::i64 o) {\n        const %s v%d = r;\n",
                       A, A, rn->outputs[0]);
        have[rn->outputs[0]] = true;
        st = emit_body_range(c, bg, ri + 1, bg->n_nodes, &epi, "in", 0, have);
    }
    for (int j = 0; !st && j < bg->n_outputs; j++) {
        int v = bg->outputs[j];
        if (n->outputs[j] < 0) continue;
        if (!have[v]) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "a group output that is not on the reduced side");
        else if (kiln_cg_numel(&bg->values[v]) != kiln_cg_numel(ry))
            st = kiln_errorf(KILN_ERR_UNSUPPORTED, "a group output shaped unlike the reduction's output");
        else if (dbl)
            kiln_cg_printf(&c->src, "        static_cast<double *>(out[%d])[o] = v%d;\n", j, v);
        else
            kiln_cg_printf(&c->src, "        kiln::store_f32<%s>(out[%d], o, v%d);\n",
                           kiln_cg_ctype(bg->values[v].dtype), j, v);
    }
    if (!st && pre.n == 0) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "a reduction of constants");
    if (st) {
        free(have);
        return st;
    }
    kiln_cg_printf(&c->src, "    }\n};\n");
    int NPRE = pre.n, NEPI = epi.n, NEPI1 = epi.n ? epi.n : 1;
    /* map leaves (body inputs) to the node's inputs */
    kiln_bundle_arg args[2 * MAX_LEAVES + KILN_MAX_RANK + 1];
    int na = 0;
    /* the shape type gets a name: a parameter list stays free of template commas */
    if (softmax)
        kiln_cg_printf(&c->src, "typedef kiln::softmax_fused_shape<%d, %d, %d> %s_shape;\n", NPRE, NEPI1, R, fn);
    else
        kiln_cg_printf(&c->src, "typedef kiln::reduce_fused_shape<%d, %d, %d, %d> %s_shape;\n", NPRE, NEPI1, R, RY,
                       fn);
    kiln_cg_printf(&c->src, "extern \"C\" __global__ void __launch_bounds__(%d) %s(", BLOCK_1D, fn);
    for (int side = 0; !st && side < 2; side++) {
        const fused_leaves *l = side ? &epi : &pre;
        for (int k = 0; !st && k < l->n; k++) {
            int bi = kiln_cg_io_index(bg->inputs, bg->n_inputs, l->v[k]);
            if (bi < 0 || bi >= n->n_inputs || n->inputs[bi] < 0) {
                st = kiln_errorf(KILN_ERR_UNSUPPORTED, "a fused reduction leaf that is not a group input");
                break;
            }
            kiln_cg_printf(&c->src, "const void *a%d, ", na);
            st = kiln_cg_value_arg(c, n->inputs[bi], &args[na++]);
        }
    }
    int n_outs = 0;
    for (int j = 0; !st && j < n->n_outputs; j++) {
        if (n->outputs[j] < 0) { /* an unused output: a scratch slot never written is not allowed */
            st = kiln_errorf(KILN_ERR_UNSUPPORTED, "an omitted group output");
            break;
        }
        kiln_cg_printf(&c->src, "void *y%d, ", j);
        st = kiln_cg_value_arg(c, n->outputs[j], &args[na++]);
        n_outs++;
    }
    if (st) {
        free(have);
        return st;
    }
    kiln_cg_printf(&c->src, "%s_shape s) {\n    const void *const in[] = {", fn);
    for (int k = 0; k < NPRE + NEPI; k++) kiln_cg_printf(&c->src, "%sa%d", k ? ", " : "", k);
    kiln_cg_printf(&c->src, "};\n    void *const out[] = {");
    for (int j = 0; j < n_outs; j++) kiln_cg_printf(&c->src, "%sy%d", j ? ", " : "", j);
    char eps[48];
    if (norm)
        kiln_cg_printf(&c->src, "};\n    kiln::norm_fused<%s_expr, %s, %d, %d, %d, %d>(in, out, s, %s);\n}\n", fn,
                       rn->op == KILN_OP_RMSNormalization ? "true" : "false", NPRE, NEPI, NEPI1, R,
                       kiln_cg_flit(eps, sizeof eps, kiln_attr_float(rn, "epsilon", 1e-5f)));
    else if (softmax)
        kiln_cg_printf(&c->src, "};\n    kiln::softmax_fused<%s_expr, %s, %d, %d, %d, %d>(in, out, s);\n}\n", fn,
                       rn->op == KILN_OP_LogSoftmax ? "true" : "false", NPRE, NEPI, NEPI1, R);
    else
        kiln_cg_printf(&c->src, "};\n    kiln::reduce_fused<%s_expr, kiln::%s, %d, %d, %d, %d, %d, %s>(in, out, s);\n}\n",
                       fn, rop, NPRE, NEPI, NEPI1, R, RY, A);
    /* the shape struct */
    if (softmax) {
        st = softmax_group_shape(c, bg, x, red, &pre, &epi, n_out, n_red, &args[na++]);
        free(have);
        if (st) return st;
        int64_t blocks = (n_out + BLOCK_1D / 32 - 1) / (BLOCK_1D / 32);
        return kiln_cg_launch(c, fn, (uint64_t)(blocks > MAX_GRID_1D ? MAX_GRID_1D : blocks), 1, 1, BLOCK_1D, args,
                              (uint32_t)na);
    }
    size_t ns = (size_t)(2 + 2 * R + 2 * NPRE * R + RY + NEPI1 * RY);
    int64_t *sh = calloc(ns, sizeof *sh);
    if (!sh) {
        free(have);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    size_t p = 0;
    sh[p++] = n_out;
    sh[p++] = n_red;
    for (int d = 0; d < R; d++) sh[p++] = red[d] && x->rank > 0 ? 1 : xd[d];
    for (int d = 0; d < R; d++) sh[p++] = red[d] && x->rank > 0 ? xd[d] : 1;
    int64_t ls[MAX_LEAVES][KILN_MAX_RANK];
    for (int k = 0; k < NPRE; k++) {
        const kiln_value *lv = &bg->values[pre.v[k]];
        if (lv->rank > R) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "a prologue input of higher rank");
        else bcast_strides(lv->rank, lv->dims, R, xd, ls[k]);
    }
    for (int k = 0; k < NPRE; k++)
        for (int d = 0; d < R; d++) sh[p++] = red[d] && x->rank > 0 ? 0 : ls[k][d];
    for (int k = 0; k < NPRE; k++)
        for (int d = 0; d < R; d++) sh[p++] = red[d] && x->rank > 0 ? ls[k][d] : 0;
    for (int d = 0; d < RY; d++) sh[p++] = yd[d];
    for (int k = 0; k < NEPI1; k++) {
        int64_t es[KILN_MAX_RANK] = {0};
        if (k < NEPI) {
            const kiln_value *lv = &bg->values[epi.v[k]];
            if (lv->rank > RY) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "an epilogue input of higher rank");
            else bcast_strides(lv->rank, lv->dims, RY, yd, es);
        }
        for (int d = 0; d < RY; d++) sh[p++] = es[d];
    }
    if (!st) st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * ns, &args[na++]);
    free(sh);
    free(have);
    if (st) return st;
    int64_t blocks = (n_out + BLOCK_1D / 32 - 1) / (BLOCK_1D / 32);
    return kiln_cg_launch(c, fn, (uint64_t)(blocks > MAX_GRID_1D ? MAX_GRID_1D : blocks), 1, 1, BLOCK_1D, args,
                          (uint32_t)na);
}

/* ------------------------------------------- LayerNormalization / RMSNormalization -- */
kiln_status kiln_cg_emit_norm(cg *c, const kiln_node *n) {
    const bool rms = n->op == KILN_OP_RMSNormalization, inst = n->op == KILN_OP_InstanceNormalization;
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *y = kiln_cg_val(c, n->outputs[0]);
    const kiln_value *sc = kiln_cg_val(c, n->inputs[1]);
    const kiln_value *b = !rms && n->n_inputs > 2 && n->inputs[2] >= 0 ? kiln_cg_val(c, n->inputs[2]) : NULL;
    const char *T = kiln_cg_ctype(x->dtype), *TS = kiln_cg_ctype(sc->dtype), *TB = b ? kiln_cg_ctype(b->dtype) : T;
    if (!kiln_dtype_is_float(x->dtype) || !T || !TS || !TB || x->dtype == KILN_F64 || sc->dtype == KILN_F64 ||
        (b && b->dtype == KILN_F64))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    if (x->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    int64_t axis;
    if (x->rank < 1 || !kiln_norm_axis(inst ? 2 : kiln_attr_int(n, "axis", -1), x->rank, &axis))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
    if (inst && (sc->rank != 1 || (b && b->rank != 1))) return kiln_errorf(KILN_ERR_UNSUPPORTED, "scale / B not 1-D");
    for (int i = 1; i < n->n_outputs; i++)
        if (n->outputs[i] >= 0 && kiln_cg_val(c, n->outputs[i])->dtype != KILN_F32)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "a stash_type other than float");
    int R = x->rank;
    int64_t rows = 1, cols = 1, sh[2 + 3 * KILN_MAX_RANK];
    for (int d = 0; d < R; d++) *(d < axis ? &rows : &cols) *= x->dims[d];
    if (rows * cols == 0) return KILN_OK;
    sh[0] = rows;
    sh[1] = cols;
    int64_t ss[KILN_MAX_RANK], bs[KILN_MAX_RANK] = {0};
    if (sc->rank > R) return kiln_errorf(KILN_ERR_UNSUPPORTED, "Scale of higher rank");
    bcast_strides(sc->rank, sc->dims, R, x->dims, ss);
    if (inst) /* scale[C] and B[C] follow the channel dim (1), not the last one */
        for (int d = 0; d < R; d++) ss[d] = bs[d] = d == 1 ? 1 : 0;
    if (b && !inst) {
        if (b->rank > R) return kiln_errorf(KILN_ERR_UNSUPPORTED, "B of higher rank");
        bcast_strides(b->rank, b->dims, R, x->dims, bs);
    }
    for (int d = 0; d < R; d++) {
        sh[2 + d] = x->dims[d];
        sh[2 + R + d] = ss[d];
        sh[2 + 2 * R + d] = bs[d];
    }
    char fn[64], eps[48];
    kiln_cg_kernel_name(c, rms ? "rms_norm" : inst ? "instance_norm" : "layer_norm", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s (%lld rows of %lld)\ntypedef kiln::norm_shape<%d> %s_shape;\n"
                   "extern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, const %s *scale, const %s *bias, "
                   "%s *y, float *mean_out, float *inv_out, %s_shape s) {\n"
                   "    kiln::norm_rows<%s, %s, %s, %s, %d>(x, scale, bias, y, mean_out, inv_out, %s, s);\n}\n",
                   fn, c->group, y->name, (long long)rows, (long long)cols, R, fn, BLOCK_1D, fn, T, TS, TB, T, fn, T,
                   TS, TB, rms ? "true" : "false", R, kiln_cg_flit(eps, sizeof eps, kiln_attr_float(n, "epsilon", 1e-5f)));
    kiln_bundle_arg args[7];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->inputs[1], &args[1])))
        return st;
    args[2] = kiln_cg_null_arg;
    if (b && (st = kiln_cg_value_arg(c, n->inputs[2], &args[2]))) return st;
    if ((st = kiln_cg_value_arg(c, n->outputs[0], &args[3]))) return st;
    for (int i = 1; i <= 2; i++) {
        args[3 + i] = kiln_cg_null_arg;
        if (i < n->n_outputs && n->outputs[i] >= 0 && (st = kiln_cg_value_arg(c, n->outputs[i], &args[3 + i])))
            return st;
    }
    if ((st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * (size_t)(2 + 3 * R), &args[6]))) return st;
    int64_t blocks = (rows + BLOCK_1D / 32 - 1) / (BLOCK_1D / 32);
    return kiln_cg_launch(c, fn, (uint64_t)(blocks > MAX_GRID_1D ? MAX_GRID_1D : blocks), 1, 1, BLOCK_1D, args, 7);
}

/* ------------------------------------------------------------------------ CumSum -- */
kiln_status kiln_cg_emit_cumsum(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *y = kiln_cg_val(c, n->outputs[0]);
    const char *T = kiln_cg_ctype(x->dtype);
    if (!T || x->dtype == KILN_BOOL) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    if (x->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    int64_t a, axis;
    if (n->n_inputs < 2 || n->inputs[1] < 0 || kiln_value_const_ints(kiln_cg_val(c, n->inputs[1]), &a, 1) != 1)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis not known at build time");
    if (x->rank < 1 || !kiln_norm_axis(a, x->rank, &axis)) return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis out of range");
    int64_t outer = 1, inner = 1, len = x->dims[axis];
    for (int d = 0; d < axis; d++) outer *= x->dims[d];
    for (int d = (int)axis + 1; d < x->rank; d++) inner *= x->dims[d];
    if (outer * inner * len == 0) return KILN_OK;
    bool excl = kiln_attr_int(n, "exclusive", 0) != 0, rev = kiln_attr_int(n, "reverse", 0) != 0;
    char fn[64];
    const bool prod = n->op == KILN_OP_CumProd;
    kiln_cg_kernel_name(c, prod ? "cumprod" : "cumsum", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, %s *y, "
                   "kiln::i64 outer, kiln::i64 len, kiln::i64 inner) {\n"
                   "    kiln::cumsum<%s, %s, %s, %s, %s>(x, y, outer, len, inner);\n}\n",
                   fn, c->group, y->name, BLOCK_1D, fn, T, T, T, acc_type(x->dtype), excl ? "true" : "false",
                   rev ? "true" : "false", prod ? "true" : "false");
    kiln_bundle_arg args[5];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->outputs[0], &args[1])))
        return st;
    int64_t v[3] = {outer, len, inner};
    for (int i = 0; i < 3; i++) args[2 + i] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)v[i]};
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(outer * inner), 1, 1, BLOCK_1D, args, 5);
}

/* ------------------------------------ NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss -- */
kiln_status kiln_cg_emit_loss(cg *c, const kiln_node *n) {
    const bool sce = n->op == KILN_OP_SoftmaxCrossEntropyLoss;
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *t = kiln_cg_val(c, n->inputs[1]);
    const kiln_value *w = n->n_inputs > 2 && n->inputs[2] >= 0 ? kiln_cg_val(c, n->inputs[2]) : NULL;
    const kiln_value *y = kiln_cg_val(c, n->outputs[0]);
    const char *T = kiln_cg_ctype(x->dtype);
    if (!kiln_dtype_is_float(x->dtype) || !T || (w && w->dtype != x->dtype))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    if (t->dtype != KILN_I64 && t->dtype != KILN_I32)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "target dtype %s", kiln_dtype_name(t->dtype));
    if (x->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    if (x->rank < 2) return kiln_errorf(KILN_ERR_UNSUPPORTED, "rank %d", x->rank);
    const char *rs = kiln_attr_str(n, "reduction", "mean");
    int red = !strcmp(rs, "none") ? 0 : !strcmp(rs, "sum") ? 1 : !strcmp(rs, "mean") ? 2 : -1;
    if (red < 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "reduction '%s'", rs);
    int64_t N = x->dims[0], C = x->dims[1], D = 1;
    for (int d = 2; d < x->rank; d++) D *= x->dims[d];
    bool has_ii = kiln_attr_find(n, "ignore_index") != NULL;
    int64_t ii = kiln_attr_int(n, "ignore_index", 0);
    char fn[64];
    kiln_cg_kernel_name(c, sce ? "softmax_cross_entropy" : "nll_loss", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s (reduction %s)\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s "
                   "*x, const %s *target, const %s *weight, %s *y, %s *log_prob, kiln::i64 N, kiln::i64 C, kiln::i64 D, "
                   "int has_ii, kiln::i64 ii) {\n    kiln::nll_loss<%s, %s, %s, %s, %d>(x, target, weight, y, log_prob, "
                   "N, C, D, has_ii != 0, ii);\n}\n",
                   fn, c->group, y->name, rs, BLOCK_1D, fn, T, kiln_cg_ctype(t->dtype), T, T, T, T,
                   kiln_cg_ctype(t->dtype), acc_type(x->dtype), sce ? "true" : "false", red);
    kiln_bundle_arg args[10];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->inputs[1], &args[1])))
        return st;
    args[2] = kiln_cg_null_arg;
    if (w && (st = kiln_cg_value_arg(c, n->inputs[2], &args[2]))) return st;
    if ((st = kiln_cg_value_arg(c, n->outputs[0], &args[3]))) return st;
    args[4] = kiln_cg_null_arg;
    if (sce && n->n_outputs > 1 && n->outputs[1] >= 0 && (st = kiln_cg_value_arg(c, n->outputs[1], &args[4])))
        return st;
    args[5] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)N};
    args[6] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)C};
    args[7] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)D};
    args[8] = (kiln_bundle_arg){KILN_ARG_SCALAR, 4, has_ii ? 1u : 0u};
    args[9] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)ii};
    return kiln_cg_launch(c, fn, red == 0 ? kiln_cg_grid_1d(N * D) : 1, 1, 1, BLOCK_1D, args, 10);
}

/* --------------------------------------------------------------------------- LRN -- */
kiln_status kiln_cg_emit_lrn(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]), *y = kiln_cg_val(c, n->outputs[0]);
    const char *T = kiln_cg_ctype(x->dtype);
    if (!T || !kiln_dtype_is_float(x->dtype) || x->dtype == KILN_F64)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    if (x->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    int64_t size = kiln_attr_int(n, "size", 1);
    if (x->rank < 2 || size < 1) return kiln_errorf(KILN_ERR_UNSUPPORTED, "rank %d or size %lld", x->rank, (long long)size);
    int64_t inner = 1;
    for (int d = 2; d < x->rank; d++) inner *= x->dims[d];
    int64_t total = kiln_cg_numel(x);
    if (total == 0) return KILN_OK;
    char fn[64], a[48], b[48], bi[48];
    kiln_cg_kernel_name(c, "lrn", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s -> %s\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, %s *y, "
                   "kiln::i64 N, kiln::i64 C, kiln::i64 inner, kiln::i64 size) {\n"
                   "    kiln::lrn<%s>(x, y, N, C, inner, size, %s, %s, %s);\n}\n",
                   fn, c->group, y->name, BLOCK_1D, fn, T, T, T,
                   kiln_cg_flit(a, sizeof a, kiln_attr_float(n, "alpha", 1e-4f)),
                   kiln_cg_flit(b, sizeof b, kiln_attr_float(n, "beta", 0.75f)),
                   kiln_cg_flit(bi, sizeof bi, kiln_attr_float(n, "bias", 1.0f)));
    kiln_bundle_arg args[6];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0])) || (st = kiln_cg_value_arg(c, n->outputs[0], &args[1])))
        return st;
    int64_t v[4] = {x->dims[0], x->dims[1], inner, size};
    for (int i = 0; i < 4; i++) args[2 + i] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)v[i]};
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, 6);
}

/* -------------------------------------------------------------------------- TopK -- */
kiln_status kiln_cg_emit_topk(cg *c, const kiln_node *n) {
    const kiln_value *x = kiln_cg_val(c, n->inputs[0]);
    const char *T = kiln_cg_ctype(x->dtype);
    if (!T || x->dtype == KILN_BOOL || x->dtype == KILN_U64)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(x->dtype));
    if (x->layout == KILN_LAYOUT_NHWC) return kiln_errorf(KILN_ERR_UNSUPPORTED, "NHWC layout");
    int64_t k, a;
    if (kiln_value_const_ints(kiln_cg_val(c, n->inputs[1]), &k, 1) != 1)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "K not known at build time");
    if (x->rank < 1 || !kiln_norm_axis(kiln_attr_int(n, "axis", -1), x->rank, &a) || k < 0 || k > x->dims[a])
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "axis or K out of range");
    int64_t outer = 1, inner = 1, len = x->dims[a];
    for (int d = 0; d < a; d++) outer *= x->dims[d];
    for (int d = (int)a + 1; d < x->rank; d++) inner *= x->dims[d];
    if (k == 0 || outer * inner == 0) return KILN_OK;
    bool largest = kiln_attr_int(n, "largest", 1) != 0;
    char fn[64];
    kiln_cg_kernel_name(c, "topk", fn, sizeof fn);
    kiln_cg_printf(&c->src,
                   "\n// %s: %s (k %lld of %lld)\nextern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, %s "
                   "*vals, kiln::i64 *idx, kiln::i64 outer, kiln::i64 len, kiln::i64 inner, kiln::i64 k) {\n"
                   "    kiln::topk<%s, %s, %s>(x, vals, idx, outer, len, inner, k);\n}\n",
                   fn, c->group, (long long)k, (long long)len, BLOCK_1D, fn, T, T, T, acc_type(x->dtype),
                   largest ? "true" : "false");
    kiln_bundle_arg args[7];
    kiln_status st;
    if ((st = kiln_cg_value_arg(c, n->inputs[0], &args[0]))) return st;
    for (int j = 0; j < 2; j++) {
        args[1 + j] = kiln_cg_null_arg;
        if (j < n->n_outputs && n->outputs[j] >= 0 && (st = kiln_cg_value_arg(c, n->outputs[j], &args[1 + j]))) return st;
    }
    int64_t v[4] = {outer, len, inner, k};
    for (int i = 0; i < 4; i++) args[3 + i] = (kiln_bundle_arg){KILN_ARG_SCALAR, 8, (uint64_t)v[i]};
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(outer * inner), 1, 1, BLOCK_1D, args, 7);
}

/* ------------------------------------------------------------------------ Einsum -- */
/* Labels: 'A'-'Z' 0..25, 'a'-'z' 26..51, ellipsis dims 52.. (right-aligned), as the CPU
 * evaluator numbers them (the implicit output lists single labels in this order). */
#define EIN_LAB (52 + KILN_MAX_RANK)
#define EIN_MAX_IN 4

static int ein_id(char ch) {
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' : ch >= 'a' && ch <= 'z' ? 26 + ch - 'a' : -1;
}

/* One term into labels, the ellipsis expanded: for an operand of rank `rank` into its
 * rank - letters dims (right-aligned among n_ell), for the output (rank < 0) into all n_ell.
 * Returns the label count, -1 if malformed. */
static int ein_term(const char *s, size_t len, int rank, int n_ell, int *lab) {
    int letters = 0, ell_at = -1; /* letters before the "..." */
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (ell_at >= 0 || i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.') return -1;
            ell_at = letters;
            i += 2;
        } else if (ein_id(s[i]) >= 0) {
            letters++;
        } else {
            return -1;
        }
    }
    int e = rank < 0 ? (ell_at >= 0 ? n_ell : 0) : rank - letters, n = 0, li = 0;
    if (e < 0 || (ell_at < 0 && e != 0) || letters + e > KILN_MAX_RANK) return -1;
    for (size_t i = 0; i <= len; i++) {
        if (li == ell_at) {
            for (int k = 0; k < e; k++) lab[n++] = 52 + (rank < 0 ? k : n_ell - e + k);
            ell_at = -1;
        }
        if (i == len) break;
        if (s[i] == '.') {
            i += 2;
            continue;
        }
        lab[n++] = ein_id(s[i]);
        li++;
    }
    return n;
}

kiln_status kiln_cg_emit_einsum(cg *c, const kiln_node *n) {
    const kiln_value *y = kiln_cg_val(c, n->outputs[0]);
    int nin = n->n_inputs;
    if (nin < 1 || nin > EIN_MAX_IN) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%d operands", nin);
    const char *T = kiln_cg_ctype(y->dtype);
    if (!T || y->dtype == KILN_BOOL) return kiln_errorf(KILN_ERR_UNSUPPORTED, "dtype %s", kiln_dtype_name(y->dtype));
    const char *eq = kiln_attr_str(n, "equation", NULL);
    char buf[256];
    size_t len = 0;
    for (const char *p = eq ? eq : ""; *p; p++)
        if (*p != ' ' && *p != '\t' && len + 1 < sizeof buf) buf[len++] = *p;
    buf[len] = 0;
    if (!eq || !len) return kiln_errorf(KILN_ERR_UNSUPPORTED, "no equation");
    char *arrow = strstr(buf, "->");
    size_t lhs = arrow ? (size_t)(arrow - buf) : len;
    int lab[EIN_MAX_IN][KILN_MAX_RANK], rank[EIN_MAX_IN], n_ell = 0, count[EIN_LAB] = {0};
    int64_t size[EIN_LAB];
    for (int l = 0; l < EIN_LAB; l++) size[l] = -1;
    size_t pos = 0;
    for (int i = 0; i < nin; i++) {
        const kiln_value *x = kiln_cg_val(c, n->inputs[i]);
        if (x->dtype != y->dtype || x->layout == KILN_LAYOUT_NHWC)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "operand dtypes or layout");
        size_t end = pos;
        while (end < lhs && buf[end] != ',') end++;
        int letters = 0;
        for (size_t k = pos; k < end; k++) letters += ein_id(buf[k]) >= 0;
        if (x->rank - letters > n_ell) n_ell = x->rank - letters;
        pos = end + 1;
    }
    pos = 0;
    for (int i = 0; i < nin; i++) {
        const kiln_value *x = kiln_cg_val(c, n->inputs[i]);
        size_t end = pos;
        while (end < lhs && buf[end] != ',') end++;
        rank[i] = ein_term(buf + pos, end - pos, x->rank, n_ell, lab[i]);
        if (rank[i] != x->rank) return kiln_errorf(KILN_ERR_UNSUPPORTED, "equation '%s' for operand %d", eq, i);
        for (int j = 0; j < rank[i]; j++) {
            int l = lab[i][j];
            if (l < 52) count[l]++;
            else count[l] = 1;
            if (size[l] < 0 || (l >= 52 && size[l] == 1)) size[l] = x->dims[j];
        }
        pos = end + 1;
    }
    int olab[KILN_MAX_RANK], orank;
    if (arrow) {
        orank = ein_term(arrow + 2, strlen(arrow + 2), -1, n_ell, olab);
        if (orank < 0) return kiln_errorf(KILN_ERR_UNSUPPORTED, "output term of '%s'", eq);
    } else {
        orank = 0;
        for (int e = 0; e < n_ell; e++) olab[orank++] = 52 + e;
        for (int l = 0; l < 52 && orank < KILN_MAX_RANK; l++)
            if (count[l] == 1) olab[orank++] = l;
    }
    if (orank != y->rank) return kiln_errorf(KILN_ERR_UNSUPPORTED, "output rank");
    bool is_out[EIN_LAB] = {false};
    for (int j = 0; j < orank; j++) is_out[olab[j]] = true;
    int rlab[EIN_LAB], nr = 0;
    for (int l = 0; l < EIN_LAB; l++)
        if (size[l] >= 0 && !is_out[l]) rlab[nr++] = l;
    if (nr > KILN_MAX_RANK) return kiln_errorf(KILN_ERR_UNSUPPORTED, "too many contracted labels");
    int RO = orank ? orank : 1, RR = nr ? nr : 1;
    int64_t n_out = kiln_cg_numel(y), n_red = 1;
    for (int j = 0; j < nr; j++) n_red *= size[rlab[j]];
    if (n_out == 0) return KILN_OK;
    size_t ns = (size_t)(2 + RO + RR + nin * (RO + RR)), p = 0;
    int64_t sh[2 + 2 * KILN_MAX_RANK + EIN_MAX_IN * 2 * KILN_MAX_RANK];
    sh[p++] = n_out;
    sh[p++] = n_red;
    for (int j = 0; j < RO; j++) sh[p++] = orank ? y->dims[j] : 1;
    for (int j = 0; j < RR; j++) sh[p++] = nr ? size[rlab[j]] : 1;
    int64_t st_[EIN_MAX_IN][EIN_LAB];
    for (int i = 0; i < nin; i++) {
        const kiln_value *x = kiln_cg_val(c, n->inputs[i]);
        int64_t xs[KILN_MAX_RANK];
        kiln_strides(x->rank, x->dims, xs);
        for (int l = 0; l < EIN_LAB; l++) st_[i][l] = 0;
        for (int j = 0; j < rank[i]; j++)
            if (!(lab[i][j] >= 52 && x->dims[j] == 1)) st_[i][lab[i][j]] += xs[j]; /* broadcast ellipsis: 0 */
    }
    for (int i = 0; i < nin; i++)
        for (int j = 0; j < RO; j++) sh[p++] = orank ? st_[i][olab[j]] : 0;
    for (int i = 0; i < nin; i++)
        for (int j = 0; j < RR; j++) sh[p++] = nr ? st_[i][rlab[j]] : 0;
    const char *A = y->dtype == KILN_F64 ? "double" : kiln_dtype_is_float(y->dtype) ? "float" : "kiln::i64";
    char fn[64];
    kiln_cg_kernel_name(c, "einsum", fn, sizeof fn);
    kiln_cg_printf(&c->src, "\n// %s: %s (%s)\ntypedef kiln::einsum_shape<%d, %d, %d> %s_shape;\n", fn, c->group, eq, nin,
                   RO, RR, fn);
    kiln_cg_printf(&c->src, "extern \"C\" __global__ void __launch_bounds__(%d) %s(", BLOCK_1D, fn);
    for (int i = 0; i < nin; i++) kiln_cg_printf(&c->src, "const %s *x%d, ", T, i);
    kiln_cg_printf(&c->src, "%s *y, %s_shape s) {\n    const %s *const x[] = {", T, fn, T);
    for (int i = 0; i < nin; i++) kiln_cg_printf(&c->src, "%sx%d", i ? ", " : "", i);
    kiln_cg_printf(&c->src, "};\n    kiln::einsum<%s, %s, %d, %d, %d>(x, y, s);\n}\n", T, A, nin, RO, RR);
    kiln_bundle_arg args[EIN_MAX_IN + 2];
    kiln_status st;
    for (int i = 0; i < nin; i++)
        if ((st = kiln_cg_value_arg(c, n->inputs[i], &args[i]))) return st;
    if ((st = kiln_cg_value_arg(c, n->outputs[0], &args[nin])) ||
        (st = kiln_cg_bytes_arg(c, sh, sizeof(int64_t) * ns, &args[nin + 1])))
        return st;
    return kiln_cg_launch(c, fn, kiln_cg_grid_1d(n_out), 1, 1, BLOCK_1D, args, (uint32_t)(nin + 2));
}
