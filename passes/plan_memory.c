/* plan_memory.c — (not written yet: the pass changes nothing). */
#include "pass.h"

kiln_status kiln_pass_plan_memory(kiln_graph *g, const kiln_pass_ctx *ctx, bool *changed) {
    (void)g;
    (void)ctx;
    *changed = false;
    return KILN_OK;
}
