/* ops_common.h — shared helpers for the per-family op files (ir/ops_*.c). */
#ifndef KILN_OPS_COMMON_H
#define KILN_OPS_COMMON_H

#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Placeholder bodies for ops whose rules are not written yet: they report the op as
 * unsupported, so a model using it fails cleanly at load time. */
#define KILN_STUB_INFER(c) \
    kiln_node_errorf((c)->node, KILN_ERR_UNSUPPORTED, "shape inference not implemented")
#define KILN_STUB_EVAL(n, in, n_in, out, n_out)                                              \
    ((void)(in), (void)(n_in), (void)(out), (void)(n_out),                                   \
     kiln_node_errorf((n), KILN_ERR_UNSUPPORTED, "CPU reference not implemented"))

#endif
