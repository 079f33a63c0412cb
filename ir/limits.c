/* limits.c — the process-wide limits on what an input file may make kiln allocate (kiln.h). */
#include "ir.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KILN_DEFAULT_LIMITS { \
    .max_file_bytes = (uint64_t)4 << 30, \
    .max_tensor_bytes = (uint64_t)16 << 30, \
    .max_initializer_bytes = (uint64_t)64 << 30, \
    .max_nodes = 10000000, \
    .max_values = 20000000, \
    .max_nesting_depth = 64, \
}

static const kiln_limits kiln_default_limits = KILN_DEFAULT_LIMITS;

static kiln_limits kiln_cur_limits = KILN_DEFAULT_LIMITS;

void kiln_limits_default(kiln_limits *out) {
    if (out) *out = kiln_default_limits;
}

void kiln_limits_get(kiln_limits *out) {
    if (out) *out = kiln_cur_limits;
}

kiln_status kiln_limits_set(const kiln_limits *l) {
    if (!l) {
        kiln_cur_limits = kiln_default_limits;
        return KILN_OK;
    }
    if (l->max_nodes < 0 || l->max_values < 0 || l->max_nesting_depth < 0)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "limits: counts must not be negative");
    /* protobuf-c unpacks nested messages recursively: much deeper and a hostile file could
     * overflow the stack (a 350 KB model 90,000 messages deep does) */
    if (l->max_nesting_depth > KILN_MAX_NESTING_DEPTH)
        return kiln_errorf(KILN_ERR_INVALID_ARG, "limits: nesting-depth %d is over %d, which the protobuf parser's "
                           "stack cannot be trusted with", l->max_nesting_depth, KILN_MAX_NESTING_DEPTH);
    kiln_limits n = *l;
    const kiln_limits *d = &kiln_default_limits;
    if (!n.max_file_bytes) n.max_file_bytes = d->max_file_bytes;
    if (!n.max_tensor_bytes) n.max_tensor_bytes = d->max_tensor_bytes;
    if (!n.max_initializer_bytes) n.max_initializer_bytes = d->max_initializer_bytes;
    if (!n.max_nodes) n.max_nodes = d->max_nodes;
    if (!n.max_values) n.max_values = d->max_values;
    if (!n.max_nesting_depth) n.max_nesting_depth = d->max_nesting_depth;
    kiln_cur_limits = n;
    return KILN_OK;
}

/* "123", "64K", "2G": a non-negative integer times a power of 1024, without overflow. */
static bool parse_size(const char *s, size_t len, uint64_t *v) {
    if (!len || *s < '0' || *s > '9') return false;
    uint64_t x = 0;
    size_t i = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (x > (UINT64_MAX - 9) / 10) return false;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    int shift = 0;
    if (i < len) {
        switch (s[i]) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
        default: return false;
        }
        if (++i != len) return false;
    }
    if (shift && x > (UINT64_MAX >> shift)) return false;
    *v = x << shift;
    return true;
}

kiln_status kiln_limits_parse(const char *spec, kiln_limits *l) {
    if (!spec || !l) return kiln_errorf(KILN_ERR_INVALID_ARG, "limits: spec or limits is NULL");
    kiln_limits n = *l;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        uint64_t v = 0;
        if (!eq || !parse_size(eq + 1, (size_t)(end - eq - 1), &v))
            return kiln_errorf(KILN_ERR_INVALID_ARG,
                               "limits: '%.*s' is not name=value (value: an integer with an optional K/M/G/T suffix)",
                               (int)(end - p), p);
        size_t nl = (size_t)(eq - p);
#define IS(name) (nl == strlen(name) && !strncmp(p, name, nl))
        if (IS("file-bytes")) n.max_file_bytes = v;
        else if (IS("tensor-bytes")) n.max_tensor_bytes = v;
        else if (IS("initializer-bytes")) n.max_initializer_bytes = v;
        else if (IS("nodes") || IS("values") || IS("nesting-depth")) {
            if (v > (IS("nesting-depth") ? (uint64_t)KILN_MAX_NESTING_DEPTH : (uint64_t)INT64_MAX))
                return kiln_errorf(KILN_ERR_INVALID_ARG, "limits: %.*s=%llu is too large", (int)nl, p,
                                   (unsigned long long)v);
            if (IS("nodes")) n.max_nodes = (int64_t)v;
            else if (IS("values")) n.max_values = (int64_t)v;
            else n.max_nesting_depth = (int)v;
        } else
            return kiln_errorf(KILN_ERR_INVALID_ARG,
                               "limits: unknown limit '%.*s' (file-bytes, tensor-bytes, initializer-bytes, nodes, "
                               "values, nesting-depth)",
                               (int)nl, p);
#undef IS
        p = *end ? end + 1 : end;
    }
    *l = n;
    return KILN_OK;
}
