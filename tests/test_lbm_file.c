/* The .lbm container (runtime/lbr_file.c) and its builder (src/export/lbm_write.c):
 * CRC-32 against zlib, round trips of every dtype with odd counts, then every header
 * field, array-table field, array byte and reserved layer field corrupted and every
 * truncation, each refused with a message naming the part at fault. Corruptions are
 * applied twice where a CRC covers the field: as is (the CRC catches it) and with the
 * CRCs recomputed (the field's own check must catch it). Every buffer handed to the
 * loader is a heap block of exactly its length, so under ASan a read past the end fails.
 *
 * `test_lbm_file --write-corpus DIR` writes the fuzz corpus (tests/fuzz/corpus/lbm/). */
#include "export/lbm_write.h"
#include "lb_internal.h"
#include "lbr_file.h"
#include "test_util.h"

#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[256];

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64*: deterministic test data */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
static uint64_t align64(uint64_t x) { return (x + 63) / 64 * 64; }
static uint64_t tables_end_of(const uint8_t *w) {
    return 64 + 32 * (uint64_t)get32(w + LBR_H_N_ARRAYS) + 128 * (uint64_t)get32(w + LBR_H_N_LAYERS);
}

/* Recompute the CRCs after an edit, so that the edited field's own check is the one
 * that must fire. fix_tables also fixes the header (the tables' CRC lives there). */
static void fix_header(uint8_t *w) { put32(w + LBR_H_HEADER_CRC, lbr_crc32(w, LBR_H_HEADER_CRC, 0)); }
static void fix_tables(uint8_t *w) {
    put32(w + LBR_H_TABLES_CRC, lbr_crc32(w + 64, (size_t)(tables_end_of(w) - 64), 0));
    fix_header(w);
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
    uint8_t *q = malloc(n ? n : 1);
    if (n) memcpy(q, p, n);
    return q;
}

/* Open buf[0 .. len) expecting code `code` (-1: any error) and a message that starts
 * with `part` ("header: ", "array 3: ") and contains `what` (if non-NULL). */
static void expect_err(const uint8_t *buf, size_t len, int code, const char *part, const char *what,
                       const char *ctx) {
    lbr_file f;
    memset(&f, 0xAB, sizeof f);
    char msg[256];
    int rc = lbr_file_open(&f, buf, len, msg, sizeof msg);
    CHECK_MSG(code < 0 ? rc != LBR_OK : rc == code, "%s: returned %d, expected %d (%s)", ctx, rc, code, msg);
    CHECK_MSG(strncmp(msg, part, strlen(part)) == 0, "%s: message '%s' does not start with '%s'", ctx, msg, part);
    CHECK_MSG(!what || strstr(msg, what), "%s: message '%s' lacks '%s'", ctx, msg, what);
    CHECK_MSG(f.n_arrays == 0 && f.n_layers == 0 && !f.base && !f.layers, "%s: *f not cleared on error", ctx);
}
static void expect_ok(const uint8_t *buf, size_t len, const char *ctx) {
    lbr_file f;
    char msg[256];
    int rc = lbr_file_open(&f, buf, len, msg, sizeof msg);
    CHECK_MSG(rc == LBR_OK, "%s: refused: %s", ctx, msg);
}

/* ------------------------------------------------------------ fixtures */

#define MAX_ARRAYS 32

/* A built file and what went into it. */
typedef struct fixture {
    uint32_t n, dtype[MAX_ARRAYS];
    uint64_t count[MAX_ARRAYS];
    uint8_t *src[MAX_ARRAYS];   /* the bytes given to the builder (host = little-endian here) */
    uint32_t n_layers;
    uint8_t *buf;               /* lbm_build's output */
    size_t len;
} fixture;

/* Non-reserved layer fields: distinct values, with field 1 at -1 (the "model input"). */
static uint32_t layer_value(uint32_t l, int k) {
    if (k >= LBR_LAYER_RESERVED) return 0;
    return k == 1 ? 0xFFFFFFFFu : l * 1000u + (uint32_t)k * 7u + 1u;
}

static void fixture_make(fixture *x, uint32_t n, const uint32_t *dtypes, const uint64_t *counts, uint32_t n_layers) {
    memset(x, 0, sizeof *x);
    lbm_builder b;
    lbm_builder_init(&b);
    b.in_c = 3;
    b.in_h = 5;
    b.in_w = 7;
    b.n_outputs = 10;
    b.arena_fixed = 12345;
    b.arena_per_sample = (uint64_t)1 << 40; /* the limit itself is allowed */
    x->n = n;
    for (uint32_t i = 0; i < n; i++) {
        size_t bytes = (size_t)counts[i] * lbr_dtype_size(dtypes[i]);
        x->dtype[i] = dtypes[i];
        x->count[i] = counts[i];
        x->src[i] = bytes ? malloc(bytes) : NULL;
        for (size_t j = 0; j < bytes; j++) x->src[i][j] = (uint8_t)rnd();
        uint32_t idx = 99;
        CHECK_OK(lbm_add_array(&b, dtypes[i], x->src[i], counts[i], &idx));
        CHECK(idx == i);
    }
    x->n_layers = n_layers;
    for (uint32_t l = 0; l < n_layers; l++) {
        uint32_t fields[LBR_LAYER_FIELDS], idx = 99;
        for (int k = 0; k < LBR_LAYER_FIELDS; k++) fields[k] = layer_value(l, k);
        CHECK_OK(lbm_add_layer(&b, fields, &idx));
        CHECK(idx == l);
    }
    CHECK_OK(lbm_build(&b, &x->buf, &x->len));
    lbm_builder_free(&b);
    CHECK(b.n_arrays == 0 && b.arrays == NULL);
}

static void fixture_free(fixture *x) {
    for (uint32_t i = 0; i < x->n; i++) free(x->src[i]);
    free(x->buf);
}

/* Every dtype, odd counts, a size that is an exact multiple of 64 (no padding after it)
 * and an empty array in the middle. */
static const uint32_t MAIN_DT[] = {LBR_DT_F32, LBR_DT_U8, LBR_DT_I8, LBR_DT_I32, LBR_DT_U64, LBR_DT_F32,
                                   LBR_DT_U8,  LBR_DT_I8, LBR_DT_I32, LBR_DT_U64, LBR_DT_U8,  LBR_DT_F32,
                                   LBR_DT_I8,  LBR_DT_U64};
static const uint64_t MAIN_COUNT[] = {1, 63, 7, 5, 1, 33, 65, 64, 11, 9, 1, 0, 129, 3};
#define MAIN_N (sizeof MAIN_DT / sizeof MAIN_DT[0])

/* ------------------------------------------------------------ CRC-32 */

static void test_crc(void) {
    CHECK(lbr_crc32("123456789", 9, 0) == 0xCBF43926u); /* the standard check value */
    CHECK(lbr_crc32(NULL, 0, 0) == 0);
    CHECK(lbr_crc32(NULL, 0, 0x12345678u) == 0x12345678u);
    static uint8_t buf[20000 + 8];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)rnd();
    /* both paths (bit at a time below 1024 bytes, a stack table above) and odd alignments */
    const size_t lens[] = {0, 1, 2, 3, 4, 7, 8, 63, 64, 255, 256, 1023, 1024, 1025, 4096, 10007, 20000};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (size_t a = 0; a < 8; a++) {
            const uint8_t *p = buf + a;
            size_t n = lens[li];
            uint32_t want = (uint32_t)crc32(0L, p, (uInt)n);
            CHECK_MSG(lbr_crc32(p, n, 0) == want, "n %zu align %zu", n, a);
            /* running CRC: any split, and any starting value, as zlib */
            size_t k = n ? (size_t)(rnd() % n) : 0;
            CHECK_MSG(lbr_crc32(p + k, n - k, lbr_crc32(p, k, 0)) == want, "n %zu split %zu", n, k);
            uint32_t seed = (uint32_t)rnd();
            CHECK_MSG(lbr_crc32(p, n, seed) == (uint32_t)crc32(seed, p, (uInt)n), "n %zu seed %08x", n, seed);
        }
    /* random lengths and contents */
    for (int t = 0; t < 200; t++) {
        size_t n = (size_t)(rnd() % 3000), a = (size_t)(rnd() % 8);
        for (size_t i = 0; i < n; i++) buf[a + i] = (uint8_t)rnd();
        CHECK_MSG(lbr_crc32(buf + a, n, 0) == (uint32_t)crc32(0L, buf + a, (uInt)n), "random n %zu", n);
    }
}

/* ------------------------------------------------------------ round trips */

/* Everything lbr_file_open reports about x's file, read from `buf` (a copy of x->buf,
 * at any address). */
static void check_contents(const fixture *x, const uint8_t *buf, const char *ctx) {
    lbr_file f;
    char msg[256] = "unset";
    int rc = lbr_file_open(&f, buf, x->len, msg, sizeof msg);
    CHECK_MSG(rc == LBR_OK, "%s: %s", ctx, msg);
    if (rc != LBR_OK) return;
    CHECK_MSG(msg[0] == 0, "%s: message '%s' on success", ctx, msg);
    CHECK(f.version == 1 && f.n_arrays == x->n && f.n_layers == x->n_layers && f.file_size == x->len);
    CHECK(f.in_c == 3 && f.in_h == 5 && f.in_w == 7 && f.n_outputs == 10);
    CHECK(f.arena_fixed == 12345 && f.arena_per_sample == (uint64_t)1 << 40);
    CHECK(f.base == buf && f.layers == buf + 64 + 32 * (size_t)x->n);
    const uint64_t tables_end = 64 + 32 * (uint64_t)x->n + 128 * (uint64_t)x->n_layers;
    uint64_t end = tables_end;
    for (uint32_t i = 0; i < x->n; i++) {
        lbr_array a;
        CHECK(lbr_file_array(&f, i, &a) == LBR_OK);
        uint64_t bytes = x->count[i] * lbr_dtype_size(x->dtype[i]);
        CHECK_MSG(a.dtype == x->dtype[i] && a.count == x->count[i], "%s: array %u", ctx, i);
        /* the builder's layout: the next multiple of 64 after the previous array */
        CHECK_MSG(a.offset == align64(end) && a.offset % 64 == 0, "%s: array %u offset %llu", ctx, i,
                  (unsigned long long)a.offset);
        CHECK(a.data == buf + a.offset);
        CHECK(bytes == 0 || memcmp(a.data, x->src[i], (size_t)bytes) == 0);
        end = a.offset + bytes;
    }
    CHECK(end == x->len); /* the file ends with the last array */
    for (uint32_t l = 0; l < x->n_layers; l++)
        for (int k = 0; k < LBR_LAYER_FIELDS; k++) CHECK(lbr_layer_field(&f, l, k) == layer_value(l, k));
    /* out of range: an error or 0, never a read outside the tables */
    lbr_array a;
    memset(&a, 0xAB, sizeof a);
    CHECK(lbr_file_array(&f, x->n, &a) == LBR_ERR_ARG && a.data == NULL && a.count == 0);
    CHECK(lbr_file_array(&f, UINT32_MAX, &a) == LBR_ERR_ARG);
    CHECK(lbr_file_array(NULL, 0, &a) == LBR_ERR_ARG);
    CHECK(lbr_file_array(&f, 0, NULL) == LBR_ERR_ARG);
    CHECK(lbr_layer_field(&f, x->n_layers, 0) == 0);
    CHECK(lbr_layer_field(&f, 0, -1) == 0 && lbr_layer_field(&f, 0, LBR_LAYER_FIELDS) == 0);
    CHECK(lbr_layer_field(NULL, 0, 0) == 0);
}

static void test_round_trip(void) {
    fixture x;
    for (uint32_t nl = 0; nl <= 3; nl += 3) {
        fixture_make(&x, MAIN_N, MAIN_DT, MAIN_COUNT, nl);
        char ctx[64];
        snprintf(ctx, sizeof ctx, "main, %u layers", nl);
        check_contents(&x, x.buf, ctx);
        /* the builder's buffer is 64-byte aligned, so every array's data is */
        lbr_file f;
        CHECK(lbr_file_open(&f, x.buf, x.len, NULL, 0) == LBR_OK);
        for (uint32_t i = 0; i < x.n; i++) {
            lbr_array a;
            lbr_file_array(&f, i, &a);
            CHECK((uintptr_t)a.data % 64 == 0);
        }
        /* any alignment of the buffer reads the same (fields are read byte by byte) */
        for (size_t shift = 1; shift < 8; shift += 2) {
            uint8_t *m = malloc(x.len + shift);
            memcpy(m + shift, x.buf, x.len);
            snprintf(ctx, sizeof ctx, "main, %u layers, buffer at +%zu", nl, shift);
            check_contents(&x, m + shift, ctx);
            free(m);
        }
        fixture_free(&x);
    }

    /* no arrays and no layers: the 64-byte header is the whole file */
    fixture_make(&x, 0, NULL, NULL, 0);
    CHECK(x.len == 64);
    check_contents(&x, x.buf, "empty");
    fixture_free(&x);
    /* layers but no arrays */
    fixture_make(&x, 0, NULL, NULL, 2);
    CHECK(x.len == 64 + 256);
    check_contents(&x, x.buf, "layers only");
    fixture_free(&x);
    /* a last array with no elements: the file ends at its (aligned) offset */
    const uint32_t dt[2] = {LBR_DT_U8, LBR_DT_F32};
    const uint64_t cnt[2] = {5, 0};
    fixture_make(&x, 2, dt, cnt, 1);
    CHECK(x.len == 320);
    check_contents(&x, x.buf, "empty last array");
    fixture_free(&x);
    /* values the builder converts to little-endian: read back through the bytes */
    lbm_builder b;
    lbm_builder_init(&b);
    b.in_c = b.in_h = b.in_w = b.n_outputs = 1;
    const uint32_t v32[2] = {0x01020304u, 0xA0B0C0D0u};
    const uint64_t v64 = 0x0102030405060708ull;
    CHECK_OK(lbm_add_array(&b, LBR_DT_I32, v32, 2, NULL));
    CHECK_OK(lbm_add_array(&b, LBR_DT_U64, &v64, 1, NULL));
    uint8_t *buf;
    size_t len;
    CHECK_OK(lbm_build(&b, &buf, &len));
    lbm_builder_free(&b);
    if (buf) {
        lbr_file f;
        lbr_array a0, a1;
        CHECK(lbr_file_open(&f, buf, len, NULL, 0) == LBR_OK);
        CHECK(lbr_file_array(&f, 0, &a0) == LBR_OK && lbr_file_array(&f, 1, &a1) == LBR_OK);
        CHECK(get32(a0.data) == v32[0] && get32((const uint8_t *)a0.data + 4) == v32[1]);
        CHECK(get64(a1.data) == v64);
        /* the documented bytes of the header */
        CHECK(memcmp(buf, "LBM1", 4) == 0 && get32(buf + 4) == 1 && get32(buf + 8) == 0 && get32(buf + 12) == 2);
        CHECK(get64(buf + 16) == len && get32(buf + 24) == 1 && get32(buf + 36) == 1);
        CHECK(get32(buf + 56) == (uint32_t)crc32(0L, buf + 64, 64) && get32(buf + 60) == (uint32_t)crc32(0L, buf, 60));
        CHECK(get32(buf + 64 + 24) == (uint32_t)crc32(0L, (const Bytef *)buf + 128, 8));
        free(buf);
    }
}

/* The largest tables allowed: 65536 empty arrays, then 65536 layers. */
static void test_limits(void) {
    lbm_builder b;
    lbm_builder_init(&b);
    b.in_c = 1 << 14;
    b.in_h = 1 << 14;
    b.in_w = 1; /* exactly 2^28 input elements */
    b.n_outputs = 1;
    b.arena_fixed = (uint64_t)1 << 40;
    for (uint32_t i = 0; i < LBR_MAX_ARRAYS; i++) {
        lb_status s = lbm_add_array(&b, LBR_DT_U8, NULL, 0, NULL);
        if (s != LB_OK) { CHECK_OK(s); break; }
    }
    CHECK_STATUS(lbm_add_array(&b, LBR_DT_U8, NULL, 0, NULL), LB_ERR_INVALID);
    CHECK(strstr(lb_last_error(), "more than 65536 arrays") != NULL);
    uint8_t *buf;
    size_t len;
    CHECK_OK(lbm_build(&b, &buf, &len));
    lbr_file f;
    CHECK(buf && lbr_file_open(&f, buf, len, NULL, 0) == LBR_OK && f.n_arrays == LBR_MAX_ARRAYS);
    free(buf);
    lbm_builder_free(&b);

    lbm_builder_init(&b);
    b.in_c = b.in_h = b.in_w = b.n_outputs = 1;
    const uint32_t zero[LBR_LAYER_FIELDS] = {0};
    for (uint32_t l = 0; l < LBR_MAX_LAYERS; l++) {
        lb_status s = lbm_add_layer(&b, zero, NULL);
        if (s != LB_OK) { CHECK_OK(s); break; }
    }
    CHECK_STATUS(lbm_add_layer(&b, zero, NULL), LB_ERR_INVALID);
    CHECK_OK(lbm_build(&b, &buf, &len));
    CHECK(buf && lbr_file_open(&f, buf, len, NULL, 0) == LBR_OK && f.n_layers == LBR_MAX_LAYERS);
    CHECK(buf && lbr_layer_field(&f, LBR_MAX_LAYERS - 1, 24) == 0);
    free(buf);
    lbm_builder_free(&b);
}

/* ------------------------------------------------------------ corrupt header */

static void test_header(const fixture *x) {
    uint8_t *w = malloc(x->len);
    char ctx[96];
    /* every header byte flipped, CRC left alone: refused by the magic, version or CRC */
    for (int i = 0; i < 64; i++)
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(w, x->buf, x->len);
            w[i] ^= (uint8_t)(1u << bit);
            snprintf(ctx, sizeof ctx, "header byte %d bit %d", i, bit);
            if (i < 4) expect_err(w, x->len, LBR_ERR_FORMAT, "header: ", "bad magic", ctx);
            else if (i < 8) expect_err(w, x->len, LBR_ERR_VERSION, "header: ", "version", ctx);
            else expect_err(w, x->len, LBR_ERR_CRC, "header: ", "CRC mismatch (stored 0x", ctx);
        }

    /* each field set to a bad value with the header CRC recomputed: the field's own
     * check names it. `ok` cases are boundary values that must be accepted. */
    struct { int off, size; uint64_t v; int code; const char *part, *what; } cases[] = {
        {LBR_H_VERSION, 4, 2, LBR_ERR_VERSION, "header: ", "version 2 not supported"},
        {LBR_H_VERSION, 4, 0, LBR_ERR_VERSION, "header: ", "version 0"},
        {LBR_H_N_ARRAYS, 4, 65537, LBR_ERR_FORMAT, "header: ", "n_arrays 65537 exceeds 65536"},
        {LBR_H_N_ARRAYS, 4, UINT32_MAX, LBR_ERR_FORMAT, "header: ", "n_arrays"},
        {LBR_H_N_ARRAYS, 4, 65536, LBR_ERR_FORMAT, "header: ", "bytes of header and tables"},
        {LBR_H_N_LAYERS, 4, 65537, LBR_ERR_FORMAT, "header: ", "n_layers 65537 exceeds 65536"},
        {LBR_H_N_LAYERS, 4, 65536, LBR_ERR_FORMAT, "header: ", "bytes of header and tables"},
        {LBR_H_FILE_SIZE, 8, x->len + 1, LBR_ERR_FORMAT, "header: ", "(truncated)"},
        {LBR_H_FILE_SIZE, 8, x->len - 1, LBR_ERR_FORMAT, "header: ", "file size"},
        {LBR_H_FILE_SIZE, 8, 0, LBR_ERR_FORMAT, "header: ", "file size 0"},
        {LBR_H_FILE_SIZE, 8, UINT64_MAX, LBR_ERR_FORMAT, "header: ", "file size"},
        {LBR_H_IN_C, 4, 0, LBR_ERR_FORMAT, "header: ", "in_c is 0"},
        {LBR_H_IN_H, 4, 0, LBR_ERR_FORMAT, "header: ", "in_h is 0"},
        {LBR_H_IN_W, 4, 0, LBR_ERR_FORMAT, "header: ", "in_w is 0"},
        {LBR_H_IN_C, 4, UINT32_MAX, LBR_ERR_FORMAT, "header: ", "exceeds 2^28"},
        {LBR_H_IN_W, 4, (1u << 28) / 15 + 1, LBR_ERR_FORMAT, "header: ", "exceeds 2^28"},
        {LBR_H_IN_W, 4, (1u << 28) / 15, LBR_OK, NULL, NULL},
        {LBR_H_N_OUTPUTS, 4, 0, LBR_ERR_FORMAT, "header: ", "n_outputs is 0"},
        {LBR_H_N_OUTPUTS, 4, UINT32_MAX, LBR_OK, NULL, NULL},
        {LBR_H_ARENA_FIXED, 8, ((uint64_t)1 << 40) + 1, LBR_ERR_FORMAT, "header: ", "arena_fixed"},
        {LBR_H_ARENA_FIXED, 8, UINT64_MAX, LBR_ERR_FORMAT, "header: ", "arena_fixed"},
        {LBR_H_ARENA_FIXED, 8, 0, LBR_OK, NULL, NULL},
        {LBR_H_ARENA_PER_SAMPLE, 8, ((uint64_t)1 << 40) + 1, LBR_ERR_FORMAT, "header: ", "arena_per_sample"},
        {LBR_H_TABLES_CRC, 4, get32(x->buf + LBR_H_TABLES_CRC) ^ 1, LBR_ERR_CRC, "tables: ", "CRC mismatch"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(w, x->buf, x->len);
        if (cases[c].size == 4) put32(w + cases[c].off, (uint32_t)cases[c].v);
        else put64(w + cases[c].off, cases[c].v);
        fix_header(w);
        snprintf(ctx, sizeof ctx, "header field at %d = %llu", cases[c].off, (unsigned long long)cases[c].v);
        if (cases[c].code == LBR_OK) expect_ok(w, x->len, ctx);
        else expect_err(w, x->len, cases[c].code, cases[c].part, cases[c].what, ctx);
    }
    /* the input-size limit at its edge: 2^28 elements pass, 2^28 + 1 = 17 x 15790321 do not */
    const uint32_t dims[4][3] = {{1u << 14, 1u << 14, 1}, {1, 1, 1u << 28}, {17, 15790321, 1}, {1, 17, 15790321}};
    for (int d = 0; d < 4; d++) {
        memcpy(w, x->buf, x->len);
        for (int k = 0; k < 3; k++) put32(w + LBR_H_IN_C + 4 * k, dims[d][k]);
        fix_header(w);
        snprintf(ctx, sizeof ctx, "input %u x %u x %u", dims[d][0], dims[d][1], dims[d][2]);
        if (d < 2) expect_ok(w, x->len, ctx);
        else expect_err(w, x->len, LBR_ERR_FORMAT, "header: ", "exceeds 2^28 elements", ctx);
    }
    /* one more array or layer than the tables hold: the tables grow into the arrays
     * (caught by the tables' CRC) or past the end of the file */
    for (int field = LBR_H_N_LAYERS; field <= LBR_H_N_ARRAYS; field += 4) {
        memcpy(w, x->buf, x->len);
        put32(w + field, get32(w + field) + 1);
        fix_header(w);
        snprintf(ctx, sizeof ctx, "header count at %d + 1", field);
        if (tables_end_of(w) > x->len) expect_err(w, x->len, LBR_ERR_FORMAT, "header: ", "tables", ctx);
        else expect_err(w, x->len, LBR_ERR_CRC, "tables: ", "CRC mismatch", ctx);
    }
    free(w);
}

/* ------------------------------------------------------------ corrupt arrays */

static void test_arrays(const fixture *x) {
    uint8_t *w = malloc(x->len);
    char ctx[96], part[32];
    const uint8_t *table = x->buf + 64;
    for (uint32_t i = 0; i < x->n; i++) {
        snprintf(part, sizeof part, "array %u: ", i);
        const uint8_t *e = table + 32 * (size_t)i;
        const uint64_t off = get64(e + LBR_A_OFFSET), count = get64(e + LBR_A_COUNT);
        const uint64_t bytes = count * lbr_dtype_size(get32(e));
        /* any byte of the entry flipped: the tables' CRC */
        for (int k = 0; k < 32; k++) {
            memcpy(w, x->buf, x->len);
            w[64 + 32 * (size_t)i + k] ^= 0x10;
            snprintf(ctx, sizeof ctx, "array %u entry byte %d", i, k);
            expect_err(w, x->len, LBR_ERR_CRC, "tables: ", "CRC mismatch", ctx);
        }
        /* each field bad, tables' CRC recomputed: the array's own checks */
        struct { int off, size; uint64_t v; int code; const char *what; } cases[] = {
            {LBR_A_DTYPE, 4, 0, LBR_ERR_FORMAT, "unknown dtype 0"},
            {LBR_A_DTYPE, 4, 6, LBR_ERR_FORMAT, "unknown dtype 6"},
            {LBR_A_DTYPE, 4, UINT32_MAX, LBR_ERR_FORMAT, "unknown dtype"},
            {LBR_A_RESERVED0, 4, 1, LBR_ERR_FORMAT, "reserved fields are 0x00000001"},
            {LBR_A_RESERVED1, 4, 0x80000000u, LBR_ERR_FORMAT, "reserved fields"},
            {LBR_A_OFFSET, 8, off + 1, LBR_ERR_FORMAT, "is not a multiple of 64"},
            {LBR_A_OFFSET, 8, off + 32, LBR_ERR_FORMAT, "is not a multiple of 64"},
            {LBR_A_OFFSET, 8, 0, LBR_ERR_FORMAT, "inside the header and tables"},
            {LBR_A_OFFSET, 8, 64, LBR_ERR_FORMAT, "inside the header and tables"},
            {LBR_A_OFFSET, 8, UINT64_MAX & ~(uint64_t)63, LBR_ERR_FORMAT, "beyond the end of the file"},
            {LBR_A_OFFSET, 8, align64(x->len + 1), LBR_ERR_FORMAT, "beyond the end of the file"},
            {LBR_A_COUNT, 8, UINT64_MAX, LBR_ERR_FORMAT, "runs past the end of the file"},
            {LBR_A_COUNT, 8, (uint64_t)1 << 62, LBR_ERR_FORMAT, "runs past the end of the file"},
            {LBR_A_COUNT, 8, (uint64_t)1 << 61, LBR_ERR_FORMAT, "runs past the end of the file"},
            /* one element more: into the padding or the next array (this array's CRC), or
             * past the end of the file; also one fewer */
            {LBR_A_COUNT, 8, count + 1, -1, NULL},
            {LBR_A_CRC, 4, get32(e + LBR_A_CRC) ^ 1, LBR_ERR_CRC, "CRC mismatch"},
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            memcpy(w, x->buf, x->len);
            if (cases[c].size == 4) put32(w + 64 + 32 * (size_t)i + cases[c].off, (uint32_t)cases[c].v);
            else put64(w + 64 + 32 * (size_t)i + cases[c].off, cases[c].v);
            fix_tables(w);
            snprintf(ctx, sizeof ctx, "array %u field at %d = %llu", i, cases[c].off, (unsigned long long)cases[c].v);
            expect_err(w, x->len, cases[c].code, part, cases[c].what, ctx);
        }
        if (count > 0) {
            memcpy(w, x->buf, x->len);
            put64(w + 64 + 32 * (size_t)i + LBR_A_COUNT, count - 1);
            fix_tables(w);
            snprintf(ctx, sizeof ctx, "array %u count - 1", i);
            expect_err(w, x->len, LBR_ERR_CRC, part, "CRC mismatch", ctx);
        }
        /* on top of the previous array: out of order */
        if (i > 0 && get64(e - 32 + LBR_A_COUNT) > 0) {
            memcpy(w, x->buf, x->len);
            put64(w + 64 + 32 * (size_t)i + LBR_A_OFFSET, get64(e - 32 + LBR_A_OFFSET));
            fix_tables(w);
            char what[64];
            snprintf(what, sizeof what, "overlaps array %u", i - 1);
            expect_err(w, x->len, LBR_ERR_FORMAT, part, what, "offset of the previous array");
        }
        /* a byte of the data: the array's CRC (no other CRC covers it) */
        if (bytes > 0) {
            const uint64_t at[3] = {off, off + bytes / 2, off + bytes - 1};
            for (int k = 0; k < 3; k++) {
                memcpy(w, x->buf, x->len);
                w[at[k]] ^= 0x01;
                snprintf(ctx, sizeof ctx, "array %u data byte %llu", i, (unsigned long long)at[k]);
                expect_err(w, x->len, LBR_ERR_CRC, part, "CRC mismatch (stored 0x", ctx);
            }
        }
        /* padding after it is no array's: not checked (documented) */
        if (bytes % 64 != 0 && off + bytes < x->len) {
            memcpy(w, x->buf, x->len);
            w[off + bytes] ^= 0xFF;
            expect_ok(w, x->len, "padding byte");
        }
    }
    free(w);
}

/* ------------------------------------------------------------ corrupt layers */

static void test_layers(const fixture *x) {
    uint8_t *w = malloc(x->len);
    char ctx[96], part[32], what[64];
    for (uint32_t l = 0; l < x->n_layers; l++) {
        snprintf(part, sizeof part, "layer %u: ", l);
        const size_t at = 64 + 32 * (size_t)x->n + 128 * (size_t)l;
        for (int k = 0; k < LBR_LAYER_FIELDS; k++) {
            /* raw: the tables' CRC */
            memcpy(w, x->buf, x->len);
            put32(w + at + 4 * (size_t)k, layer_value(l, k) ^ 0x100);
            snprintf(ctx, sizeof ctx, "layer %u field %d raw", l, k);
            expect_err(w, x->len, LBR_ERR_CRC, "tables: ", "CRC mismatch", ctx);
            /* CRC recomputed: a reserved field is refused, another one is not this
             * level's business and reads back as written */
            fix_tables(w);
            snprintf(ctx, sizeof ctx, "layer %u field %d", l, k);
            if (k >= LBR_LAYER_RESERVED) {
                snprintf(what, sizeof what, "field %d is 256, reserved", k);
                expect_err(w, x->len, LBR_ERR_FORMAT, part, what, ctx);
                put32(w + at + 4 * (size_t)k, UINT32_MAX);
                fix_tables(w);
                char rs[64];
                snprintf(rs, sizeof rs, "reserved fields (%d .. %d) must be 0", LBR_LAYER_RESERVED, LBR_LAYER_FIELDS - 1);
                expect_err(w, x->len, LBR_ERR_FORMAT, part, rs, ctx);
            } else {
                lbr_file f;
                CHECK_MSG(lbr_file_open(&f, w, x->len, NULL, 0) == LBR_OK, "%s", ctx);
                CHECK(lbr_layer_field(&f, l, k) == (layer_value(l, k) ^ 0x100));
            }
        }
    }
    free(w);
}

/* ------------------------------------------------------------ truncation */

static void test_truncation(const fixture *x, const char *name) {
    char ctx[96], part[32];
    const uint64_t tables_end = tables_end_of(x->buf);
    /* every shorter length: refused by the size check, before anything else is read */
    for (size_t n = 0; n < x->len; n++) {
        uint8_t *w = dup_bytes(x->buf, n);
        snprintf(ctx, sizeof ctx, "%s cut at %zu", name, n);
        expect_err(w, n, LBR_ERR_FORMAT, "header: ", n < 64 ? "shorter than the 64-byte header" : "(truncated)", ctx);
        /* the same with the header claiming the shorter size: the tables or the first
         * array that no longer fits are at fault */
        if (n >= 64) {
            put64(w + LBR_H_FILE_SIZE, n);
            fix_header(w);
            if (n < tables_end) {
                expect_err(w, n, LBR_ERR_FORMAT, "header: ", "bytes of header and tables", ctx);
            } else {
                uint32_t k = 0;
                while (k < x->n && get64(x->buf + 64 + 32 * k + LBR_A_OFFSET) +
                                           get64(x->buf + 64 + 32 * k + LBR_A_COUNT) *
                                               lbr_dtype_size(get32(x->buf + 64 + 32 * k)) <= n)
                    k++;
                snprintf(part, sizeof part, "array %u: ", k);
                expect_err(w, n, LBR_ERR_FORMAT, part, "end of the file", ctx);
            }
        }
        free(w);
    }
    /* one byte more than the header says */
    uint8_t *w = malloc(x->len + 1);
    memcpy(w, x->buf, x->len);
    w[x->len] = 0;
    expect_err(w, x->len + 1, LBR_ERR_FORMAT, "header: ", "but the buffer holds", "one byte more");
    free(w);
}

/* ------------------------------------------------------------ API misuse */

static void test_api(const fixture *x) {
    lbr_file f;
    char msg[16];
    CHECK(lbr_file_open(NULL, x->buf, x->len, msg, sizeof msg) == LBR_ERR_ARG);
    CHECK(lbr_file_open(&f, NULL, 64, msg, sizeof msg) == LBR_ERR_ARG && f.n_arrays == 0);
    /* no message buffer, or a tiny one: still refused, message truncated and terminated */
    CHECK(lbr_file_open(&f, x->buf, 10, NULL, 0) == LBR_ERR_FORMAT);
    memset(msg, 'x', sizeof msg);
    CHECK(lbr_file_open(&f, x->buf, 10, msg, 8) == LBR_ERR_FORMAT);
    CHECK(strlen(msg) == 7 && strncmp(msg, "header:", 7) == 0 && msg[8] == 'x');
    memset(msg, 'x', sizeof msg);
    CHECK(lbr_file_open(&f, x->buf, 10, msg, 0) == LBR_ERR_FORMAT && msg[0] == 'x');
    /* the same lbr_file reused after a failure */
    CHECK(lbr_file_open(&f, x->buf, x->len, msg, sizeof msg) == LBR_OK && msg[0] == 0 && f.n_arrays == x->n);
}

static void test_builder_errors(void) {
    lbm_builder b;
    lbm_builder_init(&b);
    const float v[3] = {1, 2, 3};
    CHECK_STATUS(lbm_add_array(&b, 0, v, 3, NULL), LB_ERR_INVALID);
    CHECK(strstr(lb_last_error(), "unknown dtype 0") != NULL);
    CHECK_STATUS(lbm_add_array(&b, 6, v, 3, NULL), LB_ERR_INVALID);
    CHECK_STATUS(lbm_add_array(&b, LBR_DT_F32, NULL, 3, NULL), LB_ERR_INVALID);
    CHECK_STATUS(lbm_add_array(&b, LBR_DT_F32, v, (uint64_t)1 << 62, NULL), LB_ERR_INVALID); /* no read */
    CHECK_STATUS(lbm_add_array(&b, LBR_DT_U64, v, UINT64_MAX, NULL), LB_ERR_INVALID);
    CHECK(b.n_arrays == 0);
    CHECK_OK(lbm_add_array(&b, LBR_DT_F32, v, 3, NULL));
    uint8_t *buf = (uint8_t *)1;
    size_t len = 7;
    /* header fields the loader refuses are refused here, with the loader's message */
    CHECK_STATUS(lbm_build(&b, &buf, &len), LB_ERR_INVALID);
    CHECK_MSG(strstr(lb_last_error(), "header: in_c is 0") != NULL, "%s", lb_last_error());
    CHECK(buf == NULL && len == 0);
    b.in_c = b.in_h = b.in_w = 1;
    CHECK_STATUS(lbm_build(&b, &buf, &len), LB_ERR_INVALID);
    CHECK(strstr(lb_last_error(), "n_outputs is 0") != NULL);
    b.n_outputs = 1;
    b.arena_per_sample = ((uint64_t)1 << 40) + 1;
    CHECK_STATUS(lbm_build(&b, &buf, &len), LB_ERR_INVALID);
    CHECK(strstr(lb_last_error(), "arena_per_sample") != NULL);
    b.arena_per_sample = 0;
#if LBR_LAYER_RESERVED < LBR_LAYER_FIELDS /* version 1 uses every field since the LSTM/GRU ones */
    uint32_t layer[LBR_LAYER_FIELDS] = {0};
    layer[LBR_LAYER_RESERVED] = 1;
    CHECK_OK(lbm_add_layer(&b, layer, NULL));
    CHECK_STATUS(lbm_build(&b, &buf, &len), LB_ERR_INVALID);
    char want[64];
    snprintf(want, sizeof want, "layer 0: field %d is 1", LBR_LAYER_RESERVED);
    CHECK_MSG(strstr(lb_last_error(), want) != NULL, "%s", lb_last_error());
#endif
    lbm_builder_free(&b);
    CHECK(b.n_layers == 0 && b.layers == NULL);
    lbm_builder_free(&b); /* twice is harmless */
}

/* ------------------------------------------------------------ files */

static int dir_entries(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_write_file(void) {
    lbm_builder b;
    lbm_builder_init(&b);
    b.in_c = b.in_h = b.in_w = b.n_outputs = 2;
    const int8_t codes[5] = {-1, 2, -3, 4, -128};
    CHECK_OK(lbm_add_array(&b, LBR_DT_I8, codes, 5, NULL));
    uint8_t *want;
    size_t want_len;
    CHECK_OK(lbm_build(&b, &want, &want_len));
    char path[512];
    snprintf(path, sizeof path, "%s/m.lbm", tmpdir);
    for (int round = 0; round < 2; round++) { /* the second writes over the first */
        CHECK_OK(lbm_write_file(&b, path));
        uint8_t *got;
        size_t got_len;
        CHECK_OK(lb_read_file(path, 1 << 20, &got, &got_len));
        CHECK(got && want && got_len == want_len && memcmp(got, want, want_len) == 0);
        free(got);
    }
    CHECK(dir_entries() == 1);
    free(want);

    /* a directory that does not exist: nothing created, the path in the message */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no-such-dir/m.lbm", tmpdir);
    CHECK_STATUS(lbm_write_file(&b, bad), LB_ERR_WRITE);
    CHECK(strstr(lb_last_error(), "no-such-dir/m.lbm") != NULL);
    CHECK(!file_exists(bad));
    /* the target is a directory: the rename fails after the data was written, and the
     * temporary must be gone */
    snprintf(bad, sizeof bad, "%s/a-dir", tmpdir);
    CHECK(mkdir(bad, 0700) == 0);
    CHECK_STATUS(lbm_write_file(&b, bad), LB_ERR_WRITE);
    CHECK(dir_entries() == 2);
    rmdir(bad);
    /* an invalid model: nothing written, the old file kept */
    b.n_outputs = 0;
    CHECK_STATUS(lbm_write_file(&b, path), LB_ERR_INVALID);
    CHECK_MSG(strstr(lb_last_error(), "m.lbm: lbm: header: n_outputs is 0") != NULL, "%s", lb_last_error());
    CHECK(dir_entries() == 1);
    uint8_t *got;
    size_t got_len;
    CHECK_OK(lb_read_file(path, 1 << 20, &got, &got_len));
    CHECK(got && got_len == want_len);
    free(got);
    unlink(path);
    lbm_builder_free(&b);
}

/* ------------------------------------------------------------ fuzz corpus */

static int write_bytes(const char *dir, const char *name, const uint8_t *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(p, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "%s: cannot write\n", path);
    return ok ? 0 : 1;
}

/* A few small valid files and damaged ones, each damage behind the CRCs (recomputed) so
 * the fuzzer starts from inputs that reach the deeper checks. */
static int write_corpus(const char *dir) {
    int errs = 0;
    fixture x;
    fixture_make(&x, 0, NULL, NULL, 0);
    errs += write_bytes(dir, "valid_empty", x.buf, x.len);
    fixture_free(&x);
    fixture_make(&x, 0, NULL, NULL, 2);
    errs += write_bytes(dir, "valid_layers_only", x.buf, x.len);
    fixture_free(&x);
    const uint32_t dt[6] = {LBR_DT_F32, LBR_DT_U8, LBR_DT_I8, LBR_DT_I32, LBR_DT_U64, LBR_DT_F32};
    const uint64_t cnt[6] = {3, 5, 1, 2, 3, 0};
    fixture_make(&x, 6, dt, cnt, 2);
    errs += write_bytes(dir, "valid_all_dtypes", x.buf, x.len);
    uint8_t *w = dup_bytes(x.buf, x.len);
    errs += write_bytes(dir, "bad_truncated_header", w, 40);
    errs += write_bytes(dir, "bad_truncated_raw", w, x.len - 1);
    put64(w + LBR_H_FILE_SIZE, 200); /* inside the layer table */
    fix_header(w);
    errs += write_bytes(dir, "bad_truncated_tables", w, 200);
    const size_t cut = (size_t)get64(w + 64 + 32 * 4 + LBR_A_OFFSET) + 10; /* inside array 4 */
    put64(w + LBR_H_FILE_SIZE, cut);
    fix_header(w);
    errs += write_bytes(dir, "bad_truncated_array", w, cut);
    memcpy(w, x.buf, x.len);
    put32(w + 64 + 32 * 6 + 128 + 4 * 30, 1);
    fix_tables(w);
    errs += write_bytes(dir, "bad_reserved_layer", w, x.len);
    memcpy(w, x.buf, x.len);
    put64(w + 64 + 32 * 2 + LBR_A_OFFSET, get64(w + 64 + 32 * 2 + LBR_A_OFFSET) + 8);
    fix_tables(w);
    errs += write_bytes(dir, "bad_unaligned_offset", w, x.len);
    memcpy(w, x.buf, x.len);
    put64(w + 64 + 32 * 3 + LBR_A_OFFSET, get64(w + 64 + 32 * 2 + LBR_A_OFFSET));
    fix_tables(w);
    errs += write_bytes(dir, "bad_overlap", w, x.len);
    memcpy(w, x.buf, x.len);
    put64(w + 64 + 32 * 4 + LBR_A_COUNT, (uint64_t)1 << 61);
    fix_tables(w);
    errs += write_bytes(dir, "bad_count_overflow", w, x.len);
    memcpy(w, x.buf, x.len);
    w[get64(w + 64 + LBR_A_OFFSET)] ^= 1; /* array 0's first byte */
    errs += write_bytes(dir, "bad_array_crc", w, x.len);
    free(w);
    fixture_free(&x);
    printf("wrote the corpus to %s (%d errors)\n", dir, errs);
    return errs ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) return write_corpus(argv[2]);
    if (lbt_mkdtemp(tmpdir, sizeof tmpdir, "lbt_lbm")) return 1;
    test_crc();
    test_round_trip();
    test_limits();
    fixture x;
    for (uint32_t nl = 0; nl <= 2; nl += 2) {
        fixture_make(&x, MAIN_N, MAIN_DT, MAIN_COUNT, nl);
        test_header(&x);
        test_arrays(&x);
        test_layers(&x);
        test_truncation(&x, nl ? "main with layers" : "main");
        test_api(&x);
        fixture_free(&x);
    }
    fixture_make(&x, 0, NULL, NULL, 3);
    test_header(&x);
    test_layers(&x);
    test_truncation(&x, "layers only");
    fixture_free(&x);
    fixture_make(&x, 0, NULL, NULL, 0);
    test_header(&x);
    test_truncation(&x, "empty");
    fixture_free(&x);
    test_builder_errors();
    test_write_file();
    CHECK_MSG(rmdir(tmpdir) == 0, "%s not empty after the tests", tmpdir);
    return lbt_report("test_lbm_file");
}
