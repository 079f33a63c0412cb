/* ops_shape.c — shape/dtype rules and CPU reference for shape manipulation and data movement: Reshape, Concat, Split, Slice, Transpose, Expand, Tile, constants, Range. */
#include "ops_common.h"

kiln_status kiln_infer_Reshape(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Reshape(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Flatten(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Flatten(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Squeeze(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Squeeze(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Unsqueeze(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Unsqueeze(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Shape(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Shape(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Size(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Size(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Concat(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Concat(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Split(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Split(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Slice(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Slice(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Transpose(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Transpose(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Expand(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Expand(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Tile(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Tile(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Constant(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Constant(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_ConstantOfShape(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_ConstantOfShape(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Range(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Range(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_DepthToSpace(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_DepthToSpace(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_SpaceToDepth(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_SpaceToDepth(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_Trilu(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_Trilu(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
kiln_status kiln_infer_EyeLike(kiln_infer_ctx *c) { return KILN_STUB_INFER(c); }
kiln_status kiln_eval_EyeLike(const kiln_node *n, kiln_tensor *const *in, int n_in, kiln_tensor *const *out, int n_out) { return KILN_STUB_EVAL(n, in, n_in, out, n_out); }
