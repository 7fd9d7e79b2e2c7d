/* lbr_internal.h - helpers the runtime's own files share (not installed, not API). */
#ifndef LBR_INTERNAL_H
#define LBR_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Format a message into err (when err and errlen allow) and return code: every runtime
 * error path is `return lbr_fail(err, errlen, LBR_ERR_..., "layer %u: ...", ...)`. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static inline int lbr_fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* "f32", "u8", ... for LBR_DT_* (lbr_file.h), "?" otherwise */
static inline const char *lbr_dtype_name(uint32_t dt) {
    /* char arrays, not pointers: no relocations, so the table is plain read-only data */
    static const char names[][4] = {"?", "f32", "u8", "i8", "i32", "u64"};
    return dt < sizeof names / sizeof names[0] ? names[dt] : "?";
}

#endif
