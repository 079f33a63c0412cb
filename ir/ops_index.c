/* ops_index.c — shape/dtype rules and CPU reference for indexing, scatter, padding and resampling: Gather*, Scatter*, OneHot, Pad, Resize. */
#include "ops_common.h"

kiln_status kiln_infer_Gather(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Gather(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_GatherElements(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_GatherElements(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_GatherND(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_GatherND(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ScatterElements(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ScatterElements(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ScatterND(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ScatterND(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_OneHot(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_OneHot(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Pad(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Pad(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Resize(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Resize(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Compress(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Compress(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_NonZero(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_NonZero(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ReverseSequence(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ReverseSequence(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
