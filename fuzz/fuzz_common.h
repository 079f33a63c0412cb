/* fuzz_common.h — shared by the fuzz targets: the limits they run under, and the invariant every
 * failing call must keep (a status with a message, no half-made result). */
#ifndef KILN_FUZZ_COMMON_H
#define KILN_FUZZ_COMMON_H

#include "kiln.h"

#include <stdio.h>
#include <stdlib.h>

/* Small limits, so that a large declared size is reported as KILN_ERR_LIMIT well under
 * libFuzzer's -malloc_limit_mb=1024 / -rss_limit_mb=2048: a finding is then a bug, not an
 * input that asked for (and was allowed) a lot of memory. */
static inline void kiln_fuzz_init_limits(void) {
    static int done;
    if (done) return;
    done = 1;
    kiln_limits l;
    kiln_limits_default(&l);
    l.max_file_bytes = 64u << 20;
    l.max_tensor_bytes = 64u << 20;
    l.max_initializer_bytes = 256u << 20;
    l.max_nodes = 100000;
    l.max_values = 400000;
    if (kiln_limits_set(&l) != KILN_OK) abort();
}

/* A failure must carry a message that says what is wrong. */
static inline void kiln_fuzz_check_failure(kiln_status st, const char *what) {
    const char *msg = kiln_last_error();
    if (st < 0 || st > KILN_ERR_INTERNAL || !msg || !*msg) {
        fprintf(stderr, "%s failed with status %d and no message\n", what, (int)st);
        abort();
    }
    if (st == KILN_ERR_INTERNAL) { /* a bug in kiln by its own account */
        fprintf(stderr, "%s: internal error: %s\n", what, msg);
        abort();
    }
}

#endif
