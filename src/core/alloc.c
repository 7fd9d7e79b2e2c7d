/* Aligned allocation. One place to swap the allocator (e.g. to inject failures). */
#include "lb_internal.h"

#include <stdlib.h>
#include <string.h>

void *lb_alloc(size_t size) {
    size_t rounded = (size + LB_ALIGN - 1) / LB_ALIGN * LB_ALIGN;
    if (rounded < size) return NULL;
    return aligned_alloc(LB_ALIGN, rounded ? rounded : LB_ALIGN);
}

void *lb_calloc(size_t n, size_t size) {
    size_t total;
    if (!lb_mul_ok(n, size, &total)) return NULL;
    void *p = lb_alloc(total);
    if (p) memset(p, 0, total);
    return p;
}

void lb_free(void *p) { free(p); }

char *lb_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}
