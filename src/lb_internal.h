/* lb_internal.h - services shared by the library's modules (not installed). */
#ifndef LB_INTERNAL_H
#define LB_INTERNAL_H

#include "lowbit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LB_ALIGN 64
#define LB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LB_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ------------------------------------------------------------ errors (core/error.c) */

/* Record a printf-style message for lb_last_error() and return `s`, so callers write
 * `return lb_fail(LB_ERR_FORMAT, "%s: bad magic", path);`. */
lb_status lb_fail(lb_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with "<prefix>: " (adds context while unwinding). */
void lb_error_prefix(const char *prefix);

/* ------------------------------------------------------------ memory (core/alloc.c) */

/* 64-byte aligned allocation; size 0 returns a valid unique pointer. NULL on failure
 * (no message is set: the caller says what it was allocating). */
void *lb_alloc(size_t size);
void *lb_calloc(size_t n, size_t size);
void lb_free(void *p);
/* a*b overflow-checked; returns false on overflow. */
static inline bool lb_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
char *lb_strdup(const char *s);

/* ------------------------------------------------------------ files (core/io.c) */

/* Read a whole file into a malloc'd buffer (owned by the caller, free()). A message
 * naming the path is set on failure (LB_ERR_IO). Files above max_len are refused. */
lb_status lb_read_file(const char *path, size_t max_len, uint8_t **buf, size_t *len);
/* Write the concatenation of n chunks to `path` atomically: a temporary file in the
 * same directory, fsync'd, then renamed over `path`. Nothing is left behind on failure. */
lb_status lb_write_atomic(const char *path, int n, const void *const *chunks, const size_t *lens);

/* ------------------------------------------------------------ random (core/rng.c) */

/* Counter-based generator (Philox-4x32-10). Every random number is a pure function of
 * (key, counter), so results do not depend on thread count or call order. The CLI
 * derives keys from (seed, purpose) with lb_rng_key. */
void lb_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]);
uint64_t lb_rng_key(uint64_t seed, uint64_t purpose);
/* Uniform float in [0, 1) with 24 random bits, for element `index` of stream `stream`. */
/* floats in order as unsigned integers: lb_fkey(a) < lb_fkey(b) iff a < b (with -0 < +0;
 * NaN-free input). The exporter's bisection over all floats and balanced's radix select use it. */
static inline uint32_t lb_fkey(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

static inline float lb_u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }
/* Fill out[0..n) with U[lo, hi) from (key, stream); element i uses counter (stream, i/4). */
void lb_rng_uniform(float *out, int64_t n, float lo, float hi, uint64_t key, uint64_t stream);
/* A random permutation of 0..n-1 (Fisher-Yates driven by (key, stream)). */
void lb_rng_permutation(int64_t *perm, int64_t n, uint64_t key, uint64_t stream);

/* Purposes for lb_rng_key: fixed forever, since checkpoints depend on them. */
enum { LB_RNG_INIT = 1, LB_RNG_SHUFFLE = 2, LB_RNG_DROPOUT = 3, LB_RNG_AUGMENT = 4, LB_RNG_QUANT = 5, LB_RNG_SAMPLE = 6 };

/* ------------------------------------------------------------ threads (core/threads.c) */

/* Static split of [0, n) into `parts` contiguous ranges: range i is [*lo, *hi). */
static inline void lb_split_range(int64_t n, int parts, int i, int64_t *lo, int64_t *hi) {
    int64_t q = n / parts, r = n % parts;
    *lo = i * q + (i < r ? i : r);
    *hi = *lo + q + (i < r ? 1 : 0);
}

/* ------------------------------------------------------------ safetensors (data/safetensors.c) */

typedef struct lb_st_tensor {
    char *name;
    char dtype[8];           /* "F32", "I32", "I64", "U8", ... */
    int ndim;
    int64_t shape[8];
    uint64_t begin, end;     /* byte offsets relative to the data section */
} lb_st_tensor;

typedef struct lb_st_file {
    uint8_t *buf;            /* whole file (owned if `owned`) */
    size_t len;
    int owned;
    const uint8_t *data;     /* start of the data section */
    size_t data_len;
    lb_st_tensor *tensors;
    int n;
    char **meta_keys, **meta_vals; /* __metadata__ (string values only, per the format) */
    int n_meta;
} lb_st_file;

/* Parse a safetensors image held in `buf` (borrowed; must outlive `out`). Validates the
 * header length, JSON, dtypes, shapes, offsets (in bounds, sizes matching dtype*shape,
 * non-overlapping). `source` names the file in messages. */
lb_status lb_st_parse(const uint8_t *buf, size_t len, const char *source, lb_st_file *out);
/* Read and parse a file; the buffer is owned by `out`. */
lb_status lb_st_read(const char *path, lb_st_file *out);
const lb_st_tensor *lb_st_find(const lb_st_file *f, const char *name);
const char *lb_st_meta(const lb_st_file *f, const char *key);
void lb_st_free(lb_st_file *f);

typedef struct lb_st_entry {
    const char *name;
    const char *dtype;       /* "F32", "I64", ... */
    int ndim;
    int64_t shape[8];
    const void *data;        /* little-endian element data */
} lb_st_entry;
/* Write tensors (in the given order, contiguous) and string metadata, atomically. The
 * data section starts at a multiple of 8; tensors after an odd-sized one are not aligned
 * (the format allows no padding between them), so readers copy rather than cast. */
lb_status lb_st_write(const char *path, const lb_st_entry *e, int n, const char *const *meta_keys,
                      const char *const *meta_vals, int n_meta);

#endif /* LB_INTERNAL_H */
