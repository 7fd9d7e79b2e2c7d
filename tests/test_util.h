/* test_util.h - tiny test harness: checks count failures, and main returns non-zero
 * if any failed (unlike a print-only test, these cannot pass silently). */
#ifndef LB_TEST_UTIL_H
#define LB_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int lbt_failures = 0, lbt_checks = 0;

#define CHECK(cond) do { lbt_checks++; if (!(cond)) { lbt_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { lbt_checks++; if (!(cond)) { lbt_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
/* |a-b| <= atol + rtol*|b| */
#define CHECK_CLOSE(a, b, atol, rtol) do { double _a = (a), _b = (b); lbt_checks++; \
    if (!(fabs(_a - _b) <= (atol) + (rtol) * fabs(_b))) { lbt_failures++; \
    fprintf(stderr, "%s:%d: %s = %.9g, expected %s = %.9g (atol %g rtol %g)\n", __FILE__, __LINE__, \
            #a, _a, #b, _b, (double)(atol), (double)(rtol)); } } while (0)
#define CHECK_OK(expr) do { lb_status _s = (expr); lbt_checks++; if (_s != LB_OK) { lbt_failures++; \
    fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, lb_last_error()); } } while (0)
#define CHECK_STATUS(expr, want) do { lb_status _s = (expr); lbt_checks++; if (_s != (want)) { \
    lbt_failures++; fprintf(stderr, "%s:%d: %s returned %d, expected %d (%s)\n", __FILE__, __LINE__, \
    #expr, (int)_s, (int)(want), lb_last_error()); } } while (0)

#include <stdint.h>

/* splitmix64: a fixed-seed stream for random test inputs (*state is the seed, advanced) */
static inline uint64_t lbt_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A fresh directory $TMPDIR/<name>_XXXXXX (or under /tmp) into buf; 0, or 1 with a message
 * (needs _POSIX_C_SOURCE >= 200809L, as the tests are built) */
static inline int lbt_mkdtemp(char *buf, size_t n, const char *name) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, n, "%s/%s_XXXXXX", base && *base ? base : "/tmp", name);
    if (mkdtemp(buf)) return 0;
    perror("mkdtemp");
    return 1;
}

static inline int lbt_report(const char *name) {
    printf("%s: %d checks, %d failed\n", name, lbt_checks, lbt_failures);
    return lbt_failures ? 1 : 0;
}

#endif
