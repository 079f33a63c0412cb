/* error.c — per-thread last-error message behind kiln_status codes. */
#include "ir.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char kiln_err_buf[1024];

const char *kiln_last_error(void) { return kiln_err_buf; }

kiln_status kiln_errorf(kiln_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kiln_err_buf, sizeof kiln_err_buf, fmt, ap);
    va_end(ap);
    return code;
}

kiln_status kiln_error_prefix(kiln_status code, const char *fmt, ...) {
    char prefix[512], old[sizeof kiln_err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, kiln_err_buf, sizeof old);
    snprintf(kiln_err_buf, sizeof kiln_err_buf, "%s: %s", prefix, old);
    return code;
}

const char *kiln_status_name(kiln_status st) {
    switch (st) {
    case KILN_OK: return "ok";
    case KILN_ERR_INVALID_ARG: return "invalid argument";
    case KILN_ERR_IO: return "I/O error";
    case KILN_ERR_PARSE: return "parse error";
    case KILN_ERR_MODEL: return "invalid model";
    case KILN_ERR_UNSUPPORTED: return "unsupported";
    case KILN_ERR_SHAPE: return "shape error";
    case KILN_ERR_LIMIT: return "limit exceeded";
    case KILN_ERR_OOM: return "out of memory";
    case KILN_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
