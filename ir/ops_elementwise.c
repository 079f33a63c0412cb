/* ops_elementwise.c — shape/dtype rules and CPU reference for elementwise and broadcast ops: unary math, activations, binary arithmetic, comparison, logic, Cast, Where, variadic Max/Min/Sum/Mean. */
#include "ops_common.h"

kiln_status kiln_infer_Abs(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Abs(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Acos(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Acos(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Acosh(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Acosh(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Asin(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Asin(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Asinh(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Asinh(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Atan(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Atan(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Atanh(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Atanh(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Ceil(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Ceil(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Cos(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Cos(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Cosh(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Cosh(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Erf(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Erf(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Exp(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Exp(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Floor(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Floor(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Log(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Log(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Neg(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Neg(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Not(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Not(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Reciprocal(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Reciprocal(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Round(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Round(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Sign(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Sign(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Sin(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Sin(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Sinh(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Sinh(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Sqrt(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Sqrt(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Tan(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Tan(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_IsNaN(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_IsNaN(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_IsInf(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_IsInf(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_BitwiseNot(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_BitwiseNot(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Identity(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Identity(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Cast(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Cast(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_CastLike(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_CastLike(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Dropout(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Dropout(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Relu(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Relu(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Sigmoid(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Sigmoid(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Tanh(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Tanh(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Softplus(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Softplus(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Softsign(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Softsign(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Celu(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Celu(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Elu(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Elu(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Selu(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Selu(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_LeakyRelu(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_LeakyRelu(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ThresholdedRelu(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ThresholdedRelu(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_HardSigmoid(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_HardSigmoid(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_HardSwish(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_HardSwish(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Shrink(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Shrink(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Gelu(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Gelu(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Mish(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Mish(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Clip(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Clip(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Add(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Add(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Sub(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Sub(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Mul(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Mul(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Div(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Div(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Pow(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Pow(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Mod(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Mod(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_PRelu(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_PRelu(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_And(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_And(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Or(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Or(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Xor(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Xor(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_BitShift(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_BitShift(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_BitwiseAnd(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_BitwiseAnd(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_BitwiseOr(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_BitwiseOr(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_BitwiseXor(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_BitwiseXor(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Equal(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Equal(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Greater(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Greater(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_GreaterOrEqual(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_GreaterOrEqual(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Less(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Less(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_LessOrEqual(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_LessOrEqual(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Where(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Where(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Max(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Max(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Min(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Min(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Sum(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Sum(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Mean(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Mean(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
