/* ops_nn.c — shape/dtype rules and CPU reference for convolution, pooling, Gemm/MatMul/Einsum. */
#include "ops_common.h"

kiln_status kiln_infer_Conv(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Conv(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ConvTranspose(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ConvTranspose(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_AveragePool(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_AveragePool(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_MaxPool(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_MaxPool(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_LpPool(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_LpPool(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_GlobalAveragePool(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_GlobalAveragePool(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_GlobalMaxPool(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_GlobalMaxPool(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Gemm(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Gemm(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_MatMul(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_MatMul(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Einsum(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Einsum(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
