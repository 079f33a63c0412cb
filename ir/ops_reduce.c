/* ops_reduce.c — shape/dtype rules and CPU reference for reductions, arg-reductions, softmax family, normalizations, CumSum, TopK. */
#include "ops_common.h"

kiln_status kiln_infer_ReduceL1(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReduceL1(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ReduceL2(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReduceL2(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ReduceLogSum(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReduceLogSum(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ReduceLogSumExp(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReduceLogSumExp(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ReduceMax(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReduceMax(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ReduceMean(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReduceMean(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ReduceMin(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReduceMin(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ReduceProd(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReduceProd(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ReduceSum(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReduceSum(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ReduceSumSquare(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReduceSumSquare(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ArgMax(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ArgMax(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ArgMin(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ArgMin(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Softmax(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Softmax(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_LogSoftmax(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_LogSoftmax(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Hardmax(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Hardmax(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_CumSum(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_CumSum(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_TopK(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_TopK(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_BatchNormalization(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_BatchNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_InstanceNormalization(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_InstanceNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_LayerNormalization(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_LayerNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_GroupNormalization(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_GroupNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_RMSNormalization(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_RMSNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_LpNormalization(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_LpNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_MeanVarianceNormalization(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_MeanVarianceNormalization(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_LRN(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_LRN(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
