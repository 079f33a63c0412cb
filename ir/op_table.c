/* op_table.c — the op table, its names and the dispatch tables, all from op_table.def. */
#include "ir.h"

#define KILN_OP(id, name, min_in, max_in, min_out, max_out, kind, family) \
    {name, #id, min_in, max_in, min_out, max_out, KILN_KIND_##kind, #family},
const kiln_op_info kiln_op_table[KILN_OP_COUNT] = {
#include "op_table.def"
};
#undef KILN_OP

#define KILN_OP(id, ...) +1
_Static_assert(0
#include "op_table.def"
               == KILN_OP_COUNT, "op table and enum disagree");
#undef KILN_OP

#define KILN_OP(id, ...) kiln_infer_##id,
const kiln_infer_fn kiln_infer_table[KILN_OP_COUNT] = {
#include "op_table.def"
};
#undef KILN_OP

#define KILN_OP(id, ...) kiln_eval_##id,
const kiln_eval_fn kiln_eval_table[KILN_OP_COUNT] = {
#include "op_table.def"
};
#undef KILN_OP

const char *kiln_op_name(kiln_op op) {
    return (unsigned)op < KILN_OP_COUNT ? kiln_op_table[op].name : "invalid_op";
}

const char *kiln_op_kind_name(kiln_op_kind k) {
    static const char *names[] = {"elementwise", "broadcast", "injective",
                                  "reduction",   "conv-like", "opaque"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "invalid_kind";
}
