/* Errors: a thread-local message behind every failing lb_status. */
#include "lb_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char lb_errbuf[1024] = "no error";

lb_status lb_fail(lb_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lb_errbuf, sizeof lb_errbuf, fmt, ap);
    va_end(ap);
    return s;
}

void lb_error_prefix(const char *prefix) {
    /* build in a larger buffer, then truncate explicitly: a long message loses its tail */
    char tmp[2 * sizeof lb_errbuf + 8];
    snprintf(tmp, sizeof tmp, "%.1000s: %s", prefix, lb_errbuf);
    memcpy(lb_errbuf, tmp, sizeof lb_errbuf - 1);
    lb_errbuf[sizeof lb_errbuf - 1] = 0;
}

const char *lb_last_error(void) { return lb_errbuf; }

const char *lb_status_name(lb_status s) {
    switch (s) {
    case LB_OK: return "ok";
    case LB_ERR_INVALID: return "invalid";
    case LB_ERR_IO: return "io";
    case LB_ERR_FORMAT: return "format";
    case LB_ERR_NOMEM: return "out of memory";
    case LB_ERR_WRITE: return "write";
    case LB_ERR_RUNTIME: return "runtime";
    }
    return "unknown";
}

int lb_status_is_input_error(lb_status s) {
    return s == LB_ERR_INVALID || s == LB_ERR_IO || s == LB_ERR_FORMAT;
}

const char *lb_version(void) { return LB_VERSION; }
