/*
 * cg_elementwise.c — the elementwise expression emitter: a fused elementwise group or a single
 * elementwise/broadcast op becomes one expression per output element.
 */
#include "codegen/cg_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ elementwise -- */
/* Expression emitter over the elementwise op table: per output element, each leaf is loaded
 * at its broadcast offset and every node of the set becomes one `const T tN = ...;`.
 *
 * Types: every value computes in the type of its dtype's kind (ek): f32/f16/bf16 in float
 * (loads widen with kiln::to_f32, the output store rounds: kiln computes in fp32 and stores
 * in the tensor's dtype), f64 in double, signed integers in i64 and unsigned ones in u64
 * (exact integer arithmetic, never through float; a narrower integer result is truncated to
 * its width right away, as the CPU evaluator stores it), bool in bool. Integer arithmetic
 * wraps through u64 (no signed overflow). Semantics follow ir/ops_elementwise.c. */
typedef enum ek { EK_F, EK_D, EK_I, EK_U, EK_B, EK_NONE } ek;

static ek kind_of(kiln_dtype dt) {
    switch (dt) {
    case KILN_F16: case KILN_BF16: case KILN_F32: return EK_F;
    case KILN_F64: return EK_D;
    case KILN_I8: case KILN_I16: case KILN_I32: case KILN_I64: return EK_I;
    case KILN_U8: case KILN_U16: case KILN_U32: case KILN_U64: return EK_U;
    case KILN_BOOL: return EK_B;
    default: return EK_NONE;
    }
}

static const char *ctype_of(ek k) {
    static const char *const names[] = {"float", "double", "kiln::i64", "kiln::u64", "bool", "void"};
    return names[k];
}

/* The C type a tensor of dtype dt is stored as on the device (NULL: none). */
static const char *stype_of(kiln_dtype dt) {
    switch (dt) {
    case KILN_F32: return "float";
    case KILN_F16: return "__half";
    case KILN_BF16: return "__nv_bfloat16";
    case KILN_F64: return "double";
    case KILN_I8: return "signed char";
    case KILN_I16: return "short";
    case KILN_I32: return "int";
    case KILN_I64: return "kiln::i64";
    case KILN_U8: return "unsigned char";
    case KILN_U16: return "unsigned short";
    case KILN_U32: return "unsigned int";
    case KILN_U64: return "kiln::u64";
    case KILN_BOOL: return "unsigned char";
    default: return NULL;
    }
}

/* Appends expression e (of kind `from`) converted to dtype `to` the way Cast does on the CPU:
 * floats round to nearest even (f16/bf16 from the float value), float -> int truncates and
 * saturates (NaN -> 0), int -> int wraps to the width, anything -> bool is "nonzero". The
 * result is in kind_of(to)'s compute type. */
static void conv_expr(sbuf *s, const char *e, ek from, kiln_dtype to) {
    ek k = kind_of(to);
    size_t sz = kiln_dtype_size(to);
    switch (k) {
    case EK_B:
        if (from == EK_B) kiln_cg_printf(s, "%s", e);
        else kiln_cg_printf(s, "((%s) != 0)", e);
        break;
    case EK_F:
        if (to == KILN_F32) kiln_cg_printf(s, from == EK_F ? "%s" : "(float)(%s)", e);
        else kiln_cg_printf(s, from == EK_F ? "kiln::to_f32(kiln::from_f32<%s>(%s))" : "kiln::to_f32(kiln::from_f32<%s>((float)(%s)))",
                            stype_of(to), e);
        break;
    case EK_D: kiln_cg_printf(s, from == EK_D ? "%s" : "(double)(%s)", e); break;
    case EK_I:
        if (from == EK_F || from == EK_D) {
            if (sz == 8) kiln_cg_printf(s, "kiln::sat_i((double)(%s), (-9223372036854775807LL - 1), 9223372036854775807LL)", e);
            else
                kiln_cg_printf(s, "kiln::sat_i((double)(%s), %lldLL, %lldLL)", e, -(1ll << (sz * 8 - 1)),
                               (1ll << (sz * 8 - 1)) - 1);
        } else if (sz == 8) {
            kiln_cg_printf(s, "(kiln::i64)(%s)", e);
        } else {
            kiln_cg_printf(s, "(kiln::i64)(%s)(%s)", stype_of(to), e);
        }
        break;
    case EK_U:
        if (from == EK_F || from == EK_D) {
            unsigned long long hi = sz == 8 ? ~0ull : (1ull << (sz * 8)) - 1;
            kiln_cg_printf(s, "kiln::sat_u((double)(%s), %lluULL)", e, hi);
        } else if (sz == 8) {
            kiln_cg_printf(s, "(kiln::u64)(%s)", e);
        } else {
            kiln_cg_printf(s, "(kiln::u64)(%s)(%s)", stype_of(to), e);
        }
        break;
    case EK_NONE: break;
    }
}

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

/* Ops that only float tensors reach (transcendental and activation functions). */
static kiln_status float_op(sbuf *s, const kiln_node *n, char (*a)[64], int ni) {
    char f1[64], f2[64];
    float al, be;
    switch (n->op) {
    case KILN_OP_Exp: kiln_cg_printf(s, "expf(%s)", a[0]); break;
    case KILN_OP_Log: kiln_cg_printf(s, "logf(%s)", a[0]); break;
    case KILN_OP_Sqrt: kiln_cg_printf(s, "sqrtf(%s)", a[0]); break;
    case KILN_OP_Reciprocal: kiln_cg_printf(s, "1.0f / %s", a[0]); break;
    case KILN_OP_Ceil: kiln_cg_printf(s, "ceilf(%s)", a[0]); break;
    case KILN_OP_Floor: kiln_cg_printf(s, "floorf(%s)", a[0]); break;
    case KILN_OP_Round: kiln_cg_printf(s, "rintf(%s)", a[0]); break;
    case KILN_OP_Sin: kiln_cg_printf(s, "sinf(%s)", a[0]); break;
    case KILN_OP_Cos: kiln_cg_printf(s, "cosf(%s)", a[0]); break;
    case KILN_OP_Tan: kiln_cg_printf(s, "tanf(%s)", a[0]); break;
    case KILN_OP_Erf: kiln_cg_printf(s, "erff(%s)", a[0]); break;
    case KILN_OP_Sigmoid: kiln_cg_printf(s, "1.0f / (1.0f + expf(-%s))", a[0]); break;
    case KILN_OP_Tanh: kiln_cg_printf(s, "tanhf(%s)", a[0]); break;
    case KILN_OP_Softplus: kiln_cg_printf(s, "log1pf(expf(%s))", a[0]); break;
    case KILN_OP_Softsign: kiln_cg_printf(s, "%s / (1.0f + fabsf(%s))", a[0], a[0]); break;
    case KILN_OP_Mish: kiln_cg_printf(s, "%s * tanhf(log1pf(expf(%s)))", a[0], a[0]); break;
    case KILN_OP_LeakyRelu:
        kiln_cg_printf(s, "%s < 0.0f ? %s * %s : %s", a[0], kiln_cg_flit(f1, sizeof f1, kiln_attr_float(n, "alpha", 0.01f)), a[0],
                  a[0]);
        break;
    case KILN_OP_Elu:
        kiln_cg_printf(s, "%s < 0.0f ? %s * (expf(%s) - 1.0f) : %s", a[0],
                  kiln_cg_flit(f1, sizeof f1, kiln_attr_float(n, "alpha", 1.0f)), a[0], a[0]);
        break;
    case KILN_OP_Selu:
        al = kiln_attr_float(n, "alpha", 1.67326319217681884765625f);
        be = kiln_attr_float(n, "gamma", 1.05070102214813232421875f);
        kiln_cg_printf(s, "%s * (%s > 0.0f ? %s : %s * (expf(%s) - 1.0f))", kiln_cg_flit(f2, sizeof f2, be), a[0], a[0],
                  kiln_cg_flit(f1, sizeof f1, al), a[0]);
        break;
    case KILN_OP_Celu:
        al = kiln_attr_float(n, "alpha", 1.0f);
        kiln_cg_flit(f1, sizeof f1, al);
        kiln_cg_printf(s, "fmaxf(0.0f, %s) + fminf(0.0f, %s * (expf(%s / %s) - 1.0f))", a[0], f1, a[0], f1);
        break;
    case KILN_OP_ThresholdedRelu:
        kiln_cg_printf(s, "%s > %s ? %s : 0.0f", a[0], kiln_cg_flit(f1, sizeof f1, kiln_attr_float(n, "alpha", 1.0f)), a[0]);
        break;
    case KILN_OP_HardSigmoid:
        kiln_cg_printf(s, "fmaxf(0.0f, fminf(1.0f, %s * %s + %s))", kiln_cg_flit(f1, sizeof f1, kiln_attr_float(n, "alpha", 0.2f)),
                  a[0], kiln_cg_flit(f2, sizeof f2, kiln_attr_float(n, "beta", 0.5f)));
        break;
    case KILN_OP_HardSwish: kiln_cg_printf(s, "%s * fmaxf(0.0f, fminf(1.0f, %s * (1.0f / 6.0f) + 0.5f))", a[0], a[0]); break;
    case KILN_OP_Gelu:
        if (!strcmp(kiln_attr_str(n, "approximate", "none"), "tanh"))
            kiln_cg_printf(s, "0.5f * %s * (1.0f + tanhf(0.797884561f * (%s + 0.044715f * %s * %s * %s)))", a[0], a[0], a[0],
                      a[0], a[0]);
        else
            kiln_cg_printf(s, "0.5f * %s * (1.0f + erff(%s * 0.707106781f))", a[0], a[0]);
        break;
    case KILN_OP_Pow: kiln_cg_printf(s, "powf(%s, %s)", a[0], a[1]); break;
    case KILN_OP_PRelu: kiln_cg_printf(s, "%s < 0.0f ? %s * %s : %s", a[0], a[1], a[0], a[0]); break;
    case KILN_OP_Mean: {
        if (ni > 4) return kiln_errorf(KILN_ERR_UNSUPPORTED, "Mean of more than 4 inputs");
        kiln_cg_printf(s, "(%s", a[0]);
        for (int i = 1; i < ni; i++) kiln_cg_printf(s, " + %s", a[i]);
        kiln_cg_printf(s, ") * %s", kiln_cg_flit(f1, sizeof f1, 1.0f / (float)ni));
        break;
    }
    default:
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s is not in the GPU elementwise table",
                           kiln_op_table[n->op].onnx_type);
    }
    return KILN_OK;
}

static kiln_status ew_node(ew *e, const kiln_node *n, int t) {
    char a[4][64];
    ek k[4] = {EK_NONE, EK_NONE, EK_NONE, EK_NONE};
    int ni = n->n_inputs;
    kiln_status st;
    const char *opn = kiln_op_table[n->op].onnx_type;
    if (n->n_outputs < 1) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s without an output", opn);
    kiln_dtype ydt = e->gr->values[n->outputs[0]].dtype;
    ek yk = kind_of(ydt);
    if (yk == EK_NONE) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s with a %s result", opn, kiln_dtype_name(ydt));
    if (ni > 4) return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s of more than 4 inputs", opn);
    for (int i = 0; i < ni; i++) {
        if (n->inputs[i] < 0) {
            a[i][0] = 0;
            continue;
        }
        k[i] = kind_of(e->gr->values[n->inputs[i]].dtype);
        if (k[i] == EK_NONE)
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "%s of a %s operand", opn, kiln_dtype_name(e->gr->values[n->inputs[i]].dtype));
        if ((st = ew_value(e, n->inputs[i], a[i], sizeof a[i]))) return st;
    }
    sbuf x = {0};
    sbuf *s = &x;
    const char *i64c = "(kiln::i64)((kiln::u64)"; /* wrap-around signed arithmetic through u64 */
    st = KILN_OK;
    switch (n->op) {
    case KILN_OP_Identity: case KILN_OP_Dropout: kiln_cg_printf(s, "%s", a[0]); break;
    case KILN_OP_Cast: case KILN_OP_CastLike: conv_expr(s, a[0], k[0], ydt); break;
    case KILN_OP_Neg:
        if (yk == EK_I) kiln_cg_printf(s, "(kiln::i64)(0ull - (kiln::u64)%s)", a[0]);
        else if (yk == EK_U) kiln_cg_printf(s, "0ull - %s", a[0]);
        else kiln_cg_printf(s, "-%s", a[0]);
        break;
    case KILN_OP_Abs:
        if (yk == EK_I) kiln_cg_printf(s, "%s < 0 ? (kiln::i64)(0ull - (kiln::u64)%s) : %s", a[0], a[0], a[0]);
        else if (yk == EK_U) kiln_cg_printf(s, "%s", a[0]);
        else kiln_cg_printf(s, yk == EK_F ? "fabsf(%s)" : "fabs(%s)", a[0]);
        break;
    case KILN_OP_Relu:
        if (yk == EK_F) kiln_cg_printf(s, "fmaxf(%s, 0.0f)", a[0]);
        else if (yk == EK_U) kiln_cg_printf(s, "%s", a[0]);
        else kiln_cg_printf(s, "%s < 0 ? (%s)0 : %s", a[0], ctype_of(yk), a[0]);
        break;
    case KILN_OP_Sign:
        if (yk == EK_F) kiln_cg_printf(s, "(float)((%s > 0.0f) - (%s < 0.0f))", a[0], a[0]);
        else kiln_cg_printf(s, "(%s)((%s > 0) - (%s < 0))", ctype_of(yk), a[0], a[0]);
        break;
    case KILN_OP_Add: case KILN_OP_Sub: case KILN_OP_Mul: case KILN_OP_Sum: {
        const char *o = n->op == KILN_OP_Sub ? "-" : n->op == KILN_OP_Mul ? "*" : "+";
        if (yk == EK_B) { st = kiln_errorf(KILN_ERR_UNSUPPORTED, "%s on bool", opn); break; }
        if (yk == EK_I) kiln_cg_printf(s, "%s%s", i64c, a[0]);
        else kiln_cg_printf(s, "%s", a[0]);
        for (int i = 1; i < ni; i++) kiln_cg_printf(s, yk == EK_I ? " %s (kiln::u64)%s" : " %s %s", o, a[i]);
        if (yk == EK_I) kiln_cg_printf(s, ")");
        break;
    }
    case KILN_OP_Div:
        if (yk == EK_I) kiln_cg_printf(s, "kiln::idiv(%s, %s)", a[0], a[1]);
        else if (yk == EK_U) kiln_cg_printf(s, "kiln::udiv(%s, %s)", a[0], a[1]);
        else if (yk == EK_B) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "Div on bool");
        else kiln_cg_printf(s, "%s / %s", a[0], a[1]);
        break;
    case KILN_OP_Mod: {
        bool py = kiln_attr_int(n, "fmod", 0) == 0;
        if (yk == EK_I) kiln_cg_printf(s, "kiln::imod<%s>(%s, %s)", py ? "true" : "false", a[0], a[1]);
        else if (yk == EK_U) kiln_cg_printf(s, "kiln::umod(%s, %s)", a[0], a[1]);
        else if (yk == EK_F) kiln_cg_printf(s, py ? "kiln::fmod_py(%s, %s)" : "fmodf(%s, %s)", a[0], a[1]);
        else st = kiln_errorf(KILN_ERR_UNSUPPORTED, "Mod on %s", kiln_dtype_name(ydt));
        break;
    }
    case KILN_OP_Max: case KILN_OP_Min: {
        const char *f = n->op == KILN_OP_Max ? "kiln::max_nan" : "kiln::min_nan";
        if (yk == EK_B) { st = kiln_errorf(KILN_ERR_UNSUPPORTED, "%s on bool", opn); break; }
        for (int i = 0; i < ni - 1; i++) kiln_cg_printf(s, "%s(", f);
        kiln_cg_printf(s, "%s", a[0]);
        for (int i = 1; i < ni; i++) kiln_cg_printf(s, ", %s)", a[i]);
        break;
    }
    case KILN_OP_Clip: {
        /* lower bound first, then upper (min > max gives max), NaN passes: as on the CPU */
        bool lo = ni > 1 && a[1][0], hi = ni > 2 && a[2][0];
        if (yk == EK_B) { st = kiln_errorf(KILN_ERR_UNSUPPORTED, "Clip on bool"); break; }
        if (yk == EK_F && lo && hi) kiln_cg_printf(s, "fminf(fmaxf(%s, %s), %s)", a[0], a[1], a[2]);
        else if (lo && hi) kiln_cg_printf(s, "kiln::min_nan(kiln::max_nan(%s, %s), %s)", a[0], a[1], a[2]);
        else if (lo) kiln_cg_printf(s, yk == EK_F ? "fmaxf(%s, %s)" : "kiln::max_nan(%s, %s)", a[0], a[1]);
        else if (hi) kiln_cg_printf(s, yk == EK_F ? "fminf(%s, %s)" : "kiln::min_nan(%s, %s)", a[0], a[2]);
        else kiln_cg_printf(s, "%s", a[0]);
        break;
    }
    case KILN_OP_Equal: case KILN_OP_Less: case KILN_OP_Greater: case KILN_OP_LessOrEqual: case KILN_OP_GreaterOrEqual: {
        const char *o = n->op == KILN_OP_Equal ? "==" : n->op == KILN_OP_Less ? "<" : n->op == KILN_OP_Greater ? ">"
                        : n->op == KILN_OP_LessOrEqual ? "<=" : ">=";
        if (k[0] != k[1]) { st = kiln_errorf(KILN_ERR_UNSUPPORTED, "%s of mixed dtypes", opn); break; }
        kiln_cg_printf(s, "%s %s %s", a[0], o, a[1]);
        break;
    }
    case KILN_OP_And: kiln_cg_printf(s, "%s && %s", a[0], a[1]); break;
    case KILN_OP_Or: kiln_cg_printf(s, "%s || %s", a[0], a[1]); break;
    case KILN_OP_Xor: kiln_cg_printf(s, "%s != %s", a[0], a[1]); break;
    case KILN_OP_Not: kiln_cg_printf(s, "!%s", a[0]); break;
    case KILN_OP_BitwiseAnd: kiln_cg_printf(s, "%s & %s", a[0], a[1]); break;
    case KILN_OP_BitwiseOr: kiln_cg_printf(s, "%s | %s", a[0], a[1]); break;
    case KILN_OP_BitwiseXor: kiln_cg_printf(s, "%s ^ %s", a[0], a[1]); break;
    case KILN_OP_BitwiseNot: kiln_cg_printf(s, "~%s", a[0]); break;
    case KILN_OP_BitShift: {
        bool left = !strcmp(kiln_attr_str(n, "direction", ""), "LEFT");
        if (yk != EK_U) { st = kiln_errorf(KILN_ERR_UNSUPPORTED, "BitShift on %s", kiln_dtype_name(ydt)); break; }
        kiln_cg_printf(s, "%s >= %dull ? 0ull : %s %s %s", a[1], (int)kiln_dtype_size(ydt) * 8, a[0], left ? "<<" : ">>", a[1]);
        break;
    }
    case KILN_OP_Where:
        if (k[1] != k[2] || k[0] != EK_B) { st = kiln_errorf(KILN_ERR_UNSUPPORTED, "Where of mixed dtypes"); break; }
        kiln_cg_printf(s, "%s ? %s : %s", a[0], a[1], a[2]);
        break;
    case KILN_OP_IsNaN: kiln_cg_printf(s, "%s != %s", a[0], a[0]); break;
    case KILN_OP_IsInf: {
        const char *inf = k[0] == EK_D ? "(double)kiln::pos_inf()" : "kiln::pos_inf()";
        bool pos = kiln_attr_int(n, "detect_positive", 1) != 0, neg = kiln_attr_int(n, "detect_negative", 1) != 0;
        kiln_cg_printf(s, "(%s && %s == %s) || (%s && %s == -%s)", pos ? "true" : "false", a[0], inf, neg ? "true" : "false",
                       a[0], inf);
        break;
    }
    default:
        if (yk != EK_F) {
            st = kiln_errorf(KILN_ERR_UNSUPPORTED, "%s on %s", opn, kiln_dtype_name(ydt));
            break;
        }
        for (int i = 0; i < ni; i++)
            if (a[i][0] && k[i] != EK_F) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "%s of a non-float operand", opn);
        if (!st) st = float_op(s, n, a, ni);
        break;
    }
    if (!st && x.oom) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    if (!st) {
        kiln_cg_printf(&e->body, "        const %s t%d = ", ctype_of(yk), t);
        /* a narrower integer result wraps to its width now, as the CPU evaluator stores it */
        if ((yk == EK_I || yk == EK_U) && kiln_dtype_size(ydt) < 8 && n->op != KILN_OP_Cast && n->op != KILN_OP_CastLike)
            kiln_cg_printf(&e->body, "(%s)(%s)(%s);\n", ctype_of(yk), stype_of(ydt), x.s);
        else
            kiln_cg_printf(&e->body, "%s;\n", x.s ? x.s : "");
    }
    free(x.s);
    return st;
}

/* A scalar constant of kind k as a literal (false: load it like any input). */
static bool scalar_literal(const kiln_tensor *d, ek k, char *out, size_t len) {
    if (!d || d->numel != 1) return false;
    switch (k) {
    case EK_F: {
        char lit[64];
        kiln_cg_flit(lit, sizeof lit, (float)kiln_tensor_get(d, 0));
        snprintf(out, len, lit[0] == '-' ? "(%s)" : "%s", lit); /* so that -x and expf(-x) stay C */
        return true;
    }
    case EK_I: {
        int64_t v = kiln_tensor_get_i64(d, 0);
        if (v == INT64_MIN) snprintf(out, len, "(-9223372036854775807LL - 1)");
        else snprintf(out, len, "((kiln::i64)%lldLL)", (long long)v);
        return true;
    }
    case EK_U: snprintf(out, len, "((kiln::u64)%lluULL)", (unsigned long long)kiln_tensor_get_i64(d, 0)); return true;
    case EK_B: snprintf(out, len, "%s", kiln_tensor_get(d, 0) != 0 ? "true" : "false"); return true;
    default: return false;
    }
}

static kiln_status ew_value(ew *e, int v, char *out, size_t len) {
    const kiln_value *gv = &e->gr->values[v];
    int slot = leaf_slot(e, v);
    const kiln_value *cv = slot >= 0 ? &e->c->g->values[e->leaf_outer[slot]] : gv;
    ek k = kind_of(cv->dtype);
    if (cv->data && cv->data->dtype == cv->dtype && scalar_literal(cv->data, k, out, len)) return KILN_OK;
    if (slot >= 0) {
        const char *T = stype_of(cv->dtype);
        if (k == EK_NONE || !T) return kiln_errorf(KILN_ERR_UNSUPPORTED, "a %s operand", kiln_dtype_name(cv->dtype));
        if (!e->loaded[slot]) {
            kiln_cg_printf(&e->body, "        const %s x%d = ", ctype_of(k), slot);
            if (k == EK_F) kiln_cg_printf(&e->body, "kiln::load_f32<%s>(in[%d], off[%d]);\n", T, slot, slot);
            else if (k == EK_B) kiln_cg_printf(&e->body, "static_cast<const unsigned char *>(in[%d])[off[%d]] != 0;\n", slot, slot);
            else kiln_cg_printf(&e->body, "(%s)static_cast<const %s *>(in[%d])[off[%d]];\n", ctype_of(k), T, slot, slot);
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

/* Storage root of outer value v: views and in-place writes share their target's storage. */
static int storage_root(const kiln_graph *g, int v) {
    for (int guard = 0; v >= 0 && g->values[v].alias_of >= 0 && guard < g->n_values; guard++) v = g->values[v].alias_of;
    return v;
}

/* Marks in reads[] the leaf slots that the expression of value v reads. */
static void cone_leaves(const ew *e, int v, bool *seen, bool *reads) {
    if (v < 0 || seen[v]) return;
    seen[v] = true;
    int slot = leaf_slot(e, v);
    if (slot >= 0) {
        reads[slot] = true;
        return;
    }
    int p = e->gr->values[v].producer;
    if (p < 0 || (e->allowed ? !e->allowed[p] : p != e->single)) return;
    const kiln_node *pn = &e->gr->nodes[p];
    for (int i = 0; i < pn->n_inputs; i++) cone_leaves(e, pn->inputs[i], seen, reads);
}

/* One kernel computing outer value yv (body value by in gr) from the leaves. */
/* One kernel computing the cnt outer values yv[] (body values by[] in gr) from the leaves.
 * With cnt > 1 (outputs written in place over each other's inputs) every output has the
 * same shape and one thread computes all of them per element, reading before writing. */
static kiln_status emit_ew_outputs(cg *c, ew *e, const int *by, const int *yv, int cnt) {
    const kiln_value *y = kiln_cg_val(c, yv[0]);
    for (int o = 0; o < cnt; o++) {
        const kiln_value *yo = kiln_cg_val(c, yv[o]);
        if (kind_of(yo->dtype) == EK_NONE || !stype_of(yo->dtype))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "a %s result", kiln_dtype_name(yo->dtype));
        if (yo->rank == 4 && y->rank == 4 && (yo->layout == KILN_LAYOUT_NHWC) != (y->layout == KILN_LAYOUT_NHWC))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "outputs in different layouts written in one pass");
        if (yo->rank != y->rank || memcmp(yo->dims, y->dims, sizeof(int64_t) * (size_t)(y->rank > 0 ? y->rank : 0)))
            return kiln_errorf(KILN_ERR_UNSUPPORTED, "outputs of different shapes written in place over each other's inputs");
    }
    for (int v = 0; v < e->gr->n_values; v++) e->var[v] = -1;
    for (int i = 0; i < e->n_leaves; i++) e->loaded[i] = false;
    e->next_t = 0;
    e->body.len = 0;
    if (e->body.s) e->body.s[0] = 0;
    char res[8][64];
    if (cnt > 8) return kiln_errorf(KILN_ERR_UNSUPPORTED, "more than 8 outputs written in place");
    kiln_status st = KILN_OK;
    for (int o = 0; o < cnt && !st; o++) st = ew_value(e, by[o], res[o], sizeof res[o]);
    if (st) return st;
    if (e->body.oom) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    int R = y->rank < 1 ? 1 : y->rank, NIN = e->n_leaves < 1 ? 1 : e->n_leaves;
    /* The loop runs over y's storage order: NHWC (select-layout) permutes the logical dims to
     * N,H,W,C and every leaf's strides with them; each leaf's strides follow its own storage
     * (an NHWC activation, or a logical row-major constant / per-channel / scalar operand). */
    static const int nhwc_dim[4] = {0, 2, 3, 1};
    const bool nhwc = y->rank == 4 && y->layout == KILN_LAYOUT_NHWC;
    int64_t dims[KILN_MAX_RANK], cstr[KILN_MAX_RANK], total = kiln_cg_numel(y);
    for (int i = 0; i < R; i++) dims[i] = y->rank ? y->dims[nhwc ? nhwc_dim[i] : i] : 1;
    for (int i = R - 1, s = 1; i >= 0; i--) {
        cstr[i] = dims[i] == 1 ? 0 : s;
        s *= (int)(dims[i] > 0 ? dims[i] : 1);
    }
    /* the shape struct: numel, dims[R], strides[NIN][R] (0 on broadcast dims) */
    size_t words = 1 + (size_t)R + (size_t)NIN * (size_t)R;
    int64_t *shape = calloc(words, sizeof *shape);
    if (!shape) return kiln_errorf(KILN_ERR_OOM, "out of memory");
    shape[0] = total;
    memcpy(shape + 1, dims, sizeof(int64_t) * (size_t)R);
    bool contiguous = true;
    for (int k = 0; k < e->n_leaves; k++) {
        if (e->leaf_outer[k] < 0) continue; /* an omitted optional input (Clip without min): never read */
        const kiln_value *x = kiln_cg_val(c, e->leaf_outer[k]);
        int64_t *st_k = shape + 1 + R + (size_t)k * R, ls[KILN_MAX_RANK];
        if (kiln_cg_numel(x) != total) contiguous = false;
        kiln_cg_storage_strides(x, R, ls);
        for (int i = 0; i < R; i++) {
            st_k[i] = dims[i] == 1 ? 0 : ls[nhwc ? nhwc_dim[i] : i];
            if (st_k[i] != cstr[i]) contiguous = false;
        }
    }
    char fn[64];
    kiln_cg_kernel_name(c, "ew", fn, sizeof fn);
    const char *body = e->body.s ? e->body.s : "";
    if (cnt == 1) {
        kiln_cg_printf(&c->src, "\n// %s: %s -> %s\nstruct %s_expr {\n    template <int NIN>\n    static __device__ "
                           "__forceinline__ %s eval(const void *const (&in)[NIN], const kiln::i64 (&off)[NIN]) {\n",
                  fn, c->group, y->name, fn, ctype_of(kind_of(y->dtype)));
        kiln_cg_printf(&c->src, "%s        return %s;\n    }\n};\n", body, res[0]);
    } else {
        kiln_cg_printf(&c->src, "\n// %s: %s -> %d outputs in one pass (some overwrite inputs)\nstruct %s_expr {\n"
                                "    template <int NIN>\n    static __device__ __forceinline__ void eval(const void *const "
                                "(&in)[NIN], const kiln::i64 (&off)[NIN], void *const *out, kiln::i64 i) {\n%s",
                       fn, c->group, cnt, fn, body);
        for (int o = 0; o < cnt; o++) {
            const char *T = stype_of(kiln_cg_val(c, yv[o])->dtype);
            kiln_cg_printf(&c->src, "        static_cast<%s *>(out[%d])[i] = kiln::ew_store<%s>::conv(%s); // %s\n", T, o, T,
                           res[o], kiln_cg_val(c, yv[o])->name);
        }
        kiln_cg_printf(&c->src, "    }\n};\n");
    }
    kiln_cg_printf(&c->src, "struct %s_shape {\n    kiln::i64 numel, dims[%d], strides[%d][%d];\n};\n", fn, R, NIN, R);
    kiln_cg_printf(&c->src, "extern \"C\" __global__ void __launch_bounds__(%d) %s(", BLOCK_1D, fn);
    for (int k = 0; k < NIN; k++) kiln_cg_printf(&c->src, "const void *in%d, ", k);
    if (cnt == 1) kiln_cg_printf(&c->src, "void *out, ");
    else
        for (int o = 0; o < cnt; o++) kiln_cg_printf(&c->src, "void *out%d, ", o);
    kiln_cg_printf(&c->src, "%s_shape s) {\n    kiln::ew_params<%d, %d> p;\n", fn, NIN, R);
    for (int k = 0; k < NIN; k++) kiln_cg_printf(&c->src, "    p.in[%d] = in%d;\n", k, k);
    kiln_cg_printf(&c->src,
              "    p.out = %s;\n    p.numel = s.numel;\n    for (int d = 0; d < %d; d++) {\n        p.dims[d] = "
              "s.dims[d];\n        for (int k = 0; k < %d; k++) p.strides[k][d] = s.strides[k][d];\n    }\n",
              cnt == 1 ? "out" : "out0", R, NIN);
    if (cnt == 1) {
        kiln_cg_printf(&c->src, "    kiln::elementwise<%s_expr, %s, %d, %d, %s>(p);\n}\n", fn, stype_of(y->dtype), NIN, R,
                       contiguous ? "true" : "false");
    } else {
        kiln_cg_printf(&c->src, "    void *const outs[%d] = {", cnt);
        for (int o = 0; o < cnt; o++) kiln_cg_printf(&c->src, "%sout%d", o ? ", " : "", o);
        kiln_cg_printf(&c->src, "};\n    kiln::elementwise_multi<%s_expr, %d, %d, %d, %s>(p, outs);\n}\n", fn, NIN, cnt, R,
                       contiguous ? "true" : "false");
    }
    kiln_bundle_arg *args = calloc((size_t)NIN + (size_t)cnt + 1, sizeof *args);
    if (!args) {
        free(shape);
        return kiln_errorf(KILN_ERR_OOM, "out of memory");
    }
    st = KILN_OK;
    for (int k = 0; k < e->n_leaves && !st; k++)
        if (e->leaf_outer[k] < 0) args[k] = kiln_cg_null_arg;
        else st = kiln_cg_value_arg(c, e->leaf_outer[k], &args[k]);
    if (e->n_leaves == 0) args[0] = kiln_cg_null_arg;
    for (int o = 0; o < cnt && !st; o++) st = kiln_cg_value_arg(c, yv[o], &args[NIN + o]);
    if (!st) st = kiln_cg_bytes_arg(c, shape, words * sizeof *shape, &args[NIN + cnt]);
    if (!st) st = kiln_cg_launch(c, fn, kiln_cg_grid_1d(total), 1, 1, BLOCK_1D, args, (uint32_t)(NIN + cnt + 1));
    free(args);
    free(shape);
    return st;
}

/* Dropout is the identity only in inference: a training_mode input that is not a constant
 * false would need the random mask (cleanup already removed every inference Dropout it could). */
static bool dropout_training(const cg *c, const kiln_node *n) {
    if (n->op != KILN_OP_Dropout || n->n_inputs < 3 || n->inputs[2] < 0) return false;
    const kiln_tensor *t = kiln_cg_val(c, n->inputs[2])->data;
    return !t || t->numel != 1 || kiln_tensor_get(t, 0) != 0.0;
}

kiln_status kiln_cg_emit_elementwise(cg *c, const kiln_node *n) {
    if (dropout_training(c, n))
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "Dropout in training mode (or training_mode not known at build time)");
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
    /* One kernel per output. plan-memory may have put outputs in place over inputs (it plans
     * a group as one kernel): such an output's kernel goes after every other kernel that still
     * reads the storage it overwrites; when in-place outputs read each other's targets no
     * order works (that would need one multi-output kernel). */
    int no = n->n_outputs, nl = e.n_leaves + 1;
    bool *reads = st ? NULL : calloc((size_t)no * (size_t)nl, sizeof *reads);
    bool *seen = st ? NULL : calloc((size_t)e.gr->n_values + 1, sizeof *seen);
    bool *done = st ? NULL : calloc((size_t)no + 1, sizeof *done);
    if (!st && (!reads || !seen || !done)) st = kiln_errorf(KILN_ERR_OOM, "out of memory");
    for (int k = 0; k < no && !st; k++) {
        int yv = n->outputs[k];
        if (yv < 0 || (k > 0 && n->op != KILN_OP_Fused)) {
            if (yv >= 0 && kiln_value_live_uses(c->g, yv) > 0) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "a second output");
            done[k] = true;
            continue;
        }
        memset(seen, 0, sizeof *seen * (size_t)(e.gr->n_values + 1));
        cone_leaves(&e, n->op == KILN_OP_Fused ? n->body->outputs[k] : yv, seen, reads + (size_t)k * nl);
    }
    for (bool progress = true; !st && progress;) {
        progress = false;
        for (int k = 0; k < no && !st; k++) {
            if (done[k]) continue;
            int yv = n->outputs[k];
            bool ready = true;
            if (c->g->values[yv].alias_of >= 0) {
                int root = storage_root(c->g, yv);
                for (int j = 0; j < no && ready; j++)
                    for (int l = 0; j != k && !done[j] && l < e.n_leaves && ready; l++)
                        if (reads[(size_t)j * nl + l] && e.leaf_outer[l] >= 0 && storage_root(c->g, e.leaf_outer[l]) == root)
                            ready = false;
            }
            if (!ready) continue;
            int by = n->op == KILN_OP_Fused ? n->body->outputs[k] : yv;
            st = emit_ew_outputs(c, &e, &by, &yv, 1);
            done[k] = progress = true;
        }
    }
    /* what is left reads each other's overwritten inputs: one kernel computes all of it */
    int left_by[8], left_y[8], n_left = 0;
    for (int k = 0; k < no && !st; k++) {
        if (done[k]) continue;
        if (n_left == 8) st = kiln_errorf(KILN_ERR_UNSUPPORTED, "more than 8 outputs written in place");
        else left_by[n_left] = n->body->outputs[k], left_y[n_left++] = n->outputs[k];
    }
    if (!st && n_left) st = emit_ew_outputs(c, &e, left_by, left_y, n_left);
    free(reads);
    free(seen);
    free(done);
    free(e.var);
    free(e.loaded);
    free(e.body.s);
    free(allowed);
    return st;
}
