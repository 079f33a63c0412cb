/* ops_quant.c — shape/dtype rules and CPU reference for quantization, signal and image ops. */
#include "ops_common.h"
