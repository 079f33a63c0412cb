/* ops_nlp.c — shape/dtype rules and CPU reference for losses, attention and rotary embeddings. */
#include "ops_common.h"
