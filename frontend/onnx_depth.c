/* onnx_depth.c — bound the nesting depth of an ONNX ModelProto before protobuf-c unpacks it.
 *
 * protobuf-c unpacks (and frees) nested messages recursively, with no depth limit: a few bytes
 * per level (a graph in an attribute in a node in a graph ..., or TypeProto in TypeProto) are
 * enough to overflow the stack with a small hostile file. This walks the wire format, following
 * only the fields of the schema that hold messages that can recurse, with an explicit depth
 * bound. It does not validate anything else: malformed bytes end the walk quietly and are left
 * to protobuf-c to report. */
#include "frontend.h"

#include <stdbool.h>

typedef enum msg_kind {
    M_NONE, M_MODEL, M_GRAPH, M_NODE, M_ATTR, M_VALUE_INFO, M_TYPE, M_TYPE_SEQ, M_TYPE_MAP, M_TYPE_OPT
} msg_kind;

/* The message kind field `field` of a `kind` holds, for the fields on a recursive path. */
static msg_kind child_kind(msg_kind kind, uint64_t field) {
    switch (kind) {
    case M_MODEL: return field == 7 ? M_GRAPH : M_NONE;
    case M_GRAPH:
        if (field == 1) return M_NODE;
        return field == 11 || field == 12 || field == 13 ? M_VALUE_INFO : M_NONE;
    case M_NODE: return field == 5 ? M_ATTR : M_NONE;
    case M_ATTR:
        if (field == 6 || field == 11) return M_GRAPH;
        return field == 14 || field == 15 ? M_TYPE : M_NONE;
    case M_VALUE_INFO: return field == 2 ? M_TYPE : M_NONE;
    case M_TYPE:
        if (field == 4) return M_TYPE_SEQ;
        if (field == 5) return M_TYPE_MAP;
        return field == 9 ? M_TYPE_OPT : M_NONE;
    case M_TYPE_SEQ: case M_TYPE_OPT: return field == 1 ? M_TYPE : M_NONE;
    case M_TYPE_MAP: return field == 2 ? M_TYPE : M_NONE;
    default: return M_NONE;
    }
}

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return false;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Returns false only when the depth bound is exceeded. */
static bool walk(const uint8_t *p, const uint8_t *end, msg_kind kind, int depth, int max_depth) {
    if (depth > max_depth) return false;
    while (p < end) {
        uint64_t key, v;
        if (!read_varint(&p, end, &key)) return true;
        switch (key & 7) {
        case 0: if (!read_varint(&p, end, &v)) return true; break;
        case 1: if (end - p < 8) return true; p += 8; break;
        case 5: if (end - p < 4) return true; p += 4; break;
        case 2: {
            if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p)) return true;
            msg_kind ck = child_kind(kind, key >> 3);
            if (ck != M_NONE && !walk(p, p + v, ck, depth + 1, max_depth)) return false;
            p += v;
            break;
        }
        default: return true; /* groups and bad wire types: protobuf-c's to report */
        }
    }
    return true;
}

kiln_status kiln_onnx_check_nesting(const uint8_t *data, size_t len, int max_depth) {
    if (!walk(data, data + len, M_MODEL, 1, max_depth))
        return kiln_errorf(KILN_ERR_LIMIT,
                           "the model nests messages (subgraphs in attributes, or types in types) more than %d "
                           "deep, over the nesting limit",
                           max_depth);
    return KILN_OK;
}
