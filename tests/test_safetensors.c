/* safetensors reader and writer: round trips, the exact bytes the writer produces, a
 * file written by the reference Python package, hostile inputs and failed writes. */
#include "lb_internal.h"
#include "test_util.h"

#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef LB_SOURCE_DIR
#define LB_SOURCE_DIR "."
#endif

static char tmpdir[256];

static void tmp_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static uint8_t *slurp(const char *path, size_t *len) {
    uint8_t *buf = NULL;
    if (lb_read_file(path, (size_t)1 << 30, &buf, len) != LB_OK) return NULL;
    return buf;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Number of entries in tmpdir (not counting . and ..): catches leftover temp files. */
static int dir_entries(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static int shape_is(const lb_st_tensor *t, int ndim, const int64_t *shape) {
    if (!t || t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

/* ------------------------------------------------------------ round trip */

static void test_round_trip(void) {
    float w[6] = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-30f};
    int64_t step = -1234567890123LL;
    uint8_t bytes[5] = {0, 1, 127, 128, 255};
    float conv[2 * 1 * 3 * 2];
    for (int i = 0; i < 12; i++) conv[i] = (float)i * 0.25f - 1.0f;
    lb_st_entry e[5] = {
        {.name = "fc.weight", .dtype = "F32", .ndim = 2, .shape = {2, 3}, .data = w},
        {.name = "opt.step", .dtype = "I64", .ndim = 0, .data = &step},
        {.name = "codes", .dtype = "U8", .ndim = 1, .shape = {5}, .data = bytes},
        {.name = "conv1.weight", .dtype = "F32", .ndim = 4, .shape = {2, 1, 3, 2}, .data = conv},
        {.name = "empty", .dtype = "F32", .ndim = 2, .shape = {3, 0}, .data = NULL},
    };
    const char *keys[2] = {"epoch", "spec"};
    const char *vals[2] = {"3", "{\"name\": \"m\", \"quote\": \"\\\"\", \"utf8\": \"\xc3\xa9\"}"};
    char path[512];
    tmp_path(path, sizeof path, "rt.safetensors");
    CHECK_OK(lb_st_write(path, e, 5, keys, vals, 2));

    lb_st_file f;
    CHECK_OK(lb_st_read(path, &f));
    CHECK(f.owned == 1);
    CHECK(f.n == 5);
    CHECK(f.n_meta == 2);
    if (f.n == 5) {
        /* the reader keeps the header's order, which is the order written */
        for (int i = 0; i < 5; i++) CHECK(strcmp(f.tensors[i].name, e[i].name) == 0);
        const lb_st_tensor *t = lb_st_find(&f, "fc.weight");
        CHECK(t && strcmp(t->dtype, "F32") == 0 && shape_is(t, 2, (int64_t[]){2, 3}));
        CHECK(t && t->end - t->begin == sizeof w && memcmp(f.data + t->begin, w, sizeof w) == 0);
        t = lb_st_find(&f, "opt.step");
        CHECK(t && strcmp(t->dtype, "I64") == 0 && t->ndim == 0 && t->end - t->begin == 8);
        int64_t s2 = 0;
        if (t) memcpy(&s2, f.data + t->begin, 8);
        CHECK(s2 == step);
        t = lb_st_find(&f, "codes");
        CHECK(t && strcmp(t->dtype, "U8") == 0 && shape_is(t, 1, (int64_t[]){5}));
        CHECK(t && memcmp(f.data + t->begin, bytes, 5) == 0);
        t = lb_st_find(&f, "conv1.weight");
        CHECK(t && shape_is(t, 4, (int64_t[]){2, 1, 3, 2}) && t->end - t->begin == sizeof conv);
        CHECK(t && memcmp(f.data + t->begin, conv, sizeof conv) == 0);
        t = lb_st_find(&f, "empty");
        CHECK(t && shape_is(t, 2, (int64_t[]){3, 0}) && t->begin == t->end);
        CHECK(lb_st_find(&f, "missing") == NULL);
        CHECK(lb_st_find(&f, "fc.weigh") == NULL);
    }
    CHECK(lb_st_meta(&f, "epoch") && strcmp(lb_st_meta(&f, "epoch"), "3") == 0);
    CHECK(lb_st_meta(&f, "spec") && strcmp(lb_st_meta(&f, "spec"), vals[1]) == 0);
    CHECK(lb_st_meta(&f, "nope") == NULL);
    CHECK(lb_st_meta(&f, "fc.weight") == NULL);
    lb_st_free(&f);
    CHECK(f.n == 0 && f.tensors == NULL && f.buf == NULL);
    lb_st_free(&f); /* freeing twice is harmless: the struct is zeroed */

    /* no tensors, no metadata: the smallest valid file */
    tmp_path(path, sizeof path, "empty.safetensors");
    CHECK_OK(lb_st_write(path, NULL, 0, NULL, NULL, 0));
    CHECK_OK(lb_st_read(path, &f));
    CHECK(f.n == 0 && f.n_meta == 0 && f.data_len == 0);
    lb_st_free(&f);
    size_t len;
    uint8_t *raw = slurp(path, &len);
    CHECK(raw && len == 16 && le64(raw) == 8 && memcmp(raw + 8, "{}      ", 8) == 0);
    free(raw);

    /* writing over an existing file replaces it */
    tmp_path(path, sizeof path, "rt.safetensors");
    CHECK_OK(lb_st_write(path, e + 2, 1, NULL, NULL, 0));
    CHECK_OK(lb_st_read(path, &f));
    CHECK(f.n == 1 && f.n_meta == 0 && lb_st_find(&f, "codes") != NULL);
    lb_st_free(&f);
}

/* ------------------------------------------------------------ writer bytes */

static void test_writer_bytes(void) {
    char path[512];
    tmp_path(path, sizeof path, "bytes.safetensors");

    /* one tensor, no metadata: the whole header is known */
    float a[2] = {1.0f, 2.0f};
    lb_st_entry one = {.name = "a", .dtype = "F32", .ndim = 1, .shape = {2}, .data = a};
    CHECK_OK(lb_st_write(path, &one, 1, NULL, NULL, 0));
    size_t len;
    uint8_t *raw = slurp(path, &len);
    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t jl = strlen(json); /* 54, padded to 56 */
    CHECK(jl == 54);
    CHECK(raw && len == 8 + 56 + 8);
    if (raw && len == 8 + 56 + 8) {
        CHECK(le64(raw) == 56);
        CHECK(memcmp(raw + 8, json, jl) == 0);
        CHECK(memcmp(raw + 8 + jl, "  ", 2) == 0);
        CHECK(memcmp(raw + 64, a, 8) == 0);
    }
    free(raw);

    /* odd sizes, metadata first, offsets contiguous in the given order */
    uint8_t u3[3] = {1, 2, 3};
    double d2[2] = {0.5, -0.25};
    int64_t big = INT64_MAX;
    lb_st_entry e[4] = {
        {.name = "z.first", .dtype = "U8", .ndim = 1, .shape = {3}, .data = u3},
        {.name = "a.second", .dtype = "F64", .ndim = 2, .shape = {1, 2}, .data = d2},
        {.name = "zero", .dtype = "I32", .ndim = 1, .shape = {0}, .data = NULL},
        /* a large dimension of an empty tensor must print as an integer, not 1e+15 */
        {.name = "wide", .dtype = "I64", .ndim = 2, .shape = {1000000000000000LL, 0}, .data = NULL},
    };
    lb_st_entry all[5];
    memcpy(all, e, sizeof e);
    all[4] = (lb_st_entry){.name = "big", .dtype = "I64", .ndim = 0, .data = &big};
    const char *k[1] = {"k"}, *v[1] = {"v"};
    CHECK_OK(lb_st_write(path, all, 5, k, v, 1));
    raw = slurp(path, &len);
    CHECK(raw && len > 8);
    if (raw && len > 8) {
        uint64_t n = le64(raw);
        CHECK(n % 8 == 0);           /* data section starts 8-byte aligned */
        CHECK(8 + n + 3 + 16 + 8 == len);
        const char *head = "{\"__metadata__\":{\"k\":\"v\"},\"z.first\":";
        CHECK(n >= strlen(head) && memcmp(raw + 8, head, strlen(head)) == 0);
        char *hdr = malloc(n + 1);
        memcpy(hdr, raw + 8, n);
        hdr[n] = 0;
        CHECK(strstr(hdr, "\"z.first\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}"));
        CHECK(strstr(hdr, "\"a.second\":{\"dtype\":\"F64\",\"shape\":[1,2],\"data_offsets\":[3,19]}"));
        CHECK(strstr(hdr, "\"zero\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[19,19]}"));
        CHECK(strstr(hdr, "\"shape\":[1000000000000000,0],\"data_offsets\":[19,19]}"));
        CHECK(strstr(hdr, "\"big\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[19,27]}"));
        /* the padding is spaces only */
        size_t jend = strlen(hdr);
        while (jend > 0 && hdr[jend - 1] == ' ') jend--;
        CHECK(jend > 0 && hdr[jend - 1] == '}' && n - jend < 8);
        free(hdr);
        const uint8_t *data = raw + 8 + n;
        CHECK(memcmp(data, u3, 3) == 0);
        CHECK(memcmp(data + 3, d2, 16) == 0); /* unaligned: the format has no padding between tensors */
        CHECK(memcmp(data + 19, &big, 8) == 0);
    }
    free(raw);
    lb_st_file f;
    CHECK_OK(lb_st_read(path, &f));
    const lb_st_tensor *t = lb_st_find(&f, "wide");
    CHECK(t && shape_is(t, 2, (int64_t[]){1000000000000000LL, 0}));
    CHECK(f.n == 5 && (uintptr_t)f.data % 8 == 0);
    lb_st_free(&f);
}

/* ------------------------------------------------------------ reference file */

static void test_py_reference(void) {
    lb_st_file f;
    const char *path = LB_SOURCE_DIR "/tests/data/py_reference.safetensors";
    CHECK_OK(lb_st_read(path, &f));
    if (f.n == 0) return;
    CHECK(f.n == 9);
    CHECK(f.n_meta == 3);
    CHECK(lb_st_meta(&f, "format") && strcmp(lb_st_meta(&f, "format"), "np") == 0);
    CHECK(lb_st_meta(&f, "lowbit.test") && strcmp(lb_st_meta(&f, "lowbit.test"), "py_reference") == 0);
    CHECK(lb_st_meta(&f, "unicode") && strcmp(lb_st_meta(&f, "unicode"), "h\xc3\xa9llo \xe2\x9c\x93") == 0);

    const lb_st_tensor *t = lb_st_find(&f, "weight");
    CHECK(t && strcmp(t->dtype, "F32") == 0 && shape_is(t, 2, (int64_t[]){2, 3}));
    if (t && t->end - t->begin == 24) {
        float w[6];
        memcpy(w, f.data + t->begin, sizeof w); /* copy: tensors need not be aligned */
        for (int i = 0; i < 6; i++) CHECK(w[i] == (float)i * 0.5f - 1.0f);
    }
    t = lb_st_find(&f, "bias");
    CHECK(t && strcmp(t->dtype, "F64") == 0 && shape_is(t, 1, (int64_t[]){2}));
    if (t && t->end - t->begin == 16) {
        double b[2];
        memcpy(b, f.data + t->begin, sizeof b);
        CHECK(b[0] == 1.5 && b[1] == -2.25);
    }
    t = lb_st_find(&f, "ids");
    CHECK(t && strcmp(t->dtype, "I64") == 0 && shape_is(t, 1, (int64_t[]){4}));
    if (t && t->end - t->begin == 32) {
        int64_t ids[4];
        memcpy(ids, f.data + t->begin, sizeof ids);
        CHECK(ids[0] == -1 && ids[1] == 0 && ids[2] == (int64_t)1 << 40 && ids[3] == 7);
    }
    t = lb_st_find(&f, "mask");
    CHECK(t && strcmp(t->dtype, "U8") == 0 && shape_is(t, 2, (int64_t[]){2, 2}));
    CHECK(t && t->end - t->begin == 4 && memcmp(f.data + t->begin, "\x00\xff\x01\x80", 4) == 0);
    t = lb_st_find(&f, "count");
    CHECK(t && strcmp(t->dtype, "I32") == 0 && t->ndim == 0);
    if (t && t->end - t->begin == 4) {
        int32_t c;
        memcpy(&c, f.data + t->begin, 4);
        CHECK(c == 42);
    }
    t = lb_st_find(&f, "empty");
    CHECK(t && strcmp(t->dtype, "F32") == 0 && shape_is(t, 2, (int64_t[]){0, 3}) && t->begin == t->end);
    t = lb_st_find(&f, "flags");
    CHECK(t && strcmp(t->dtype, "BOOL") == 0 && t->end - t->begin == 3);
    CHECK(t && memcmp(f.data + t->begin, "\x01\x00\x01", 3) == 0);
    t = lb_st_find(&f, "half");
    CHECK(t && strcmp(t->dtype, "F16") == 0 && t->end - t->begin == 6);
    /* little-endian 0x3C00 (1.0), 0xC000 (-2.0), 0x3800 (0.5) */
    CHECK(t && memcmp(f.data + t->begin, "\x00\x3c\x00\xc0\x00\x38", 6) == 0);
    t = lb_st_find(&f, "conv.w");
    CHECK(t && strcmp(t->dtype, "F32") == 0 && shape_is(t, 4, (int64_t[]){2, 3, 2, 2}));
    if (t && t->end - t->begin == 96) {
        float c[24];
        memcpy(c, f.data + t->begin, sizeof c);
        for (int i = 0; i < 24; i++) CHECK(c[i] == (float)i);
    }
    lb_st_free(&f);
}

/* ------------------------------------------------------------ hostile inputs */

/* u64 length + header + data_len bytes of data (0xAB). */
static uint8_t *image(const char *header, size_t data_len, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    uint8_t *b = malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    memset(b + 8 + h, 0xAB, data_len);
    return b;
}

/* Parses the image and expects LB_ERR_FORMAT with the source name and `want` in the
 * message, and the output left empty. */
static void expect_bad_buf(int line, const uint8_t *b, size_t len, const char *want) {
    lb_st_file f;
    memset(&f, 0x5A, sizeof f); /* parse must reset it, whatever it held */
    lb_status s = lb_st_parse(b, len, "bad.safetensors", &f);
    const char *msg = lb_last_error();
    CHECK_MSG(s == LB_ERR_FORMAT, "line %d: status %d (%s)", line, (int)s, msg);
    CHECK_MSG(strstr(msg, "bad.safetensors") != NULL, "line %d: message without source: %s", line, msg);
    CHECK_MSG(strstr(msg, want) != NULL, "line %d: message lacks '%s': %s", line, want, msg);
    CHECK_MSG(f.n == 0 && f.tensors == NULL && f.n_meta == 0 && f.meta_keys == NULL && f.buf == NULL,
              "line %d: output not reset", line);
    if (s == LB_OK) lb_st_free(&f);
}

static void expect_bad(int line, const char *header, size_t data_len, const char *want) {
    size_t len;
    uint8_t *b = image(header, data_len, &len);
    expect_bad_buf(line, b, len, want);
    free(b);
}
#define BAD(header, data_len, want) expect_bad(__LINE__, header, data_len, want)

static void expect_good(int line, const char *header, size_t data_len, int ntensors) {
    size_t len;
    uint8_t *b = image(header, data_len, &len);
    lb_st_file f;
    lb_status s = lb_st_parse(b, len, "good.safetensors", &f);
    CHECK_MSG(s == LB_OK, "line %d: %s", line, lb_last_error());
    CHECK_MSG(s != LB_OK || f.n == ntensors, "line %d: %d tensors", line, f.n);
    lb_st_free(&f);
    free(b);
}
#define GOOD(header, data_len, n) expect_good(__LINE__, header, data_len, n)

#define T(name, dt, shape, b, e) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_hostile(void) {
    /* sanity: the helpers make valid files */
    GOOD("{" T("a", "F32", "[2]", 0, 8) "}", 8, 1);
    GOOD("{}", 0, 0);
    GOOD("{}      ", 0, 0);                               /* space padding */
    GOOD(" \n{" T("a", "U8", "[1]", 0, 1) "}\n\t ", 1, 1); /* whitespace, as the reference accepts */
    GOOD("{\"__metadata__\":null," T("a", "U8", "[1]", 0, 1) "}", 1, 1);
    GOOD("{" T("a", "U8", "[2]", 0, 2) "," T("b", "U8", "[0]", 2, 2) "}", 2, 2); /* empty at the end */
    GOOD("{" T("b", "U8", "[0]", 0, 0) "," T("a", "U8", "[2]", 0, 2) "}", 2, 2); /* and at the start */
    GOOD("{" T("x\\\\u0000", "U8", "[1]", 0, 1) "}", 1, 1); /* an escaped backslash, not a NUL */
    GOOD("{" T("q", "F4", "[4]", 0, 2) "}", 2, 1);         /* sub-byte dtypes */
    GOOD("{" T("s", "I64", "[]", 0, 8) "}", 8, 1);         /* scalar */
    GOOD("{" T("\xf0\x9f\x98\x80\xc3\xa9", "U8", "[1]", 0, 1) "}", 1, 1); /* 4- and 2-byte UTF-8 */
    GOOD("{" T("b", "U8", "[1]", 1, 2) "," T("a", "U8", "[1]", 0, 1) "}", 2, 2); /* any order */

    /* framing */
    size_t len;
    uint8_t *b = image("{}", 0, &len);
    expect_bad_buf(__LINE__, b, 5, "too short");
    expect_bad_buf(__LINE__, b, 9, "exceeds the file size");
    b[0] = 0x00; b[1] = 0xC2; b[2] = 0xEB; b[3] = 0x0B; /* 200,000,000 */
    expect_bad_buf(__LINE__, b, len, "exceeds the limit");
    memset(b, 0xFF, 8);
    expect_bad_buf(__LINE__, b, len, "exceeds the limit");
    memset(b, 0, 8);
    expect_bad_buf(__LINE__, b, len, "not a JSON object"); /* zero-length header */
    free(b);

    /* JSON */
    BAD("{\"a\":", 0, "not valid JSON");
    BAD("{\"a\":{\"dtype\":\"F32\"", 0, "not valid JSON");
    BAD("[1,2]", 0, "not a JSON object");
    BAD("\"str\"", 0, "not a JSON object");
    BAD("{}x", 0, "unexpected data after the header");
    BAD("{}{}", 0, "unexpected data after the header");
    BAD("{\"a\xff\":1}", 0, "not valid UTF-8");
    BAD("{\"\xc0\xaf\":1}", 0, "not valid UTF-8");      /* overlong '/' */
    BAD("{\"\xed\xa0\x80\":1}", 0, "not valid UTF-8");  /* surrogate */
    BAD("{\"\xf4\x90\x80\x80\":1}", 0, "not valid UTF-8"); /* above U+10FFFF */
    BAD("{\"\xf0\x9f\x98\":1}", 0, "not valid UTF-8");     /* cut short */
    BAD("{" T("a\\u0000b", "U8", "[1]", 0, 1) "}", 1, "\\u0000");
    BAD("{\"a\":1}", 0, "tensor 'a': entry is not an object");

    /* fields */
    BAD("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "tensor 'w': missing field 'dtype'");
    BAD("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, "tensor 'w': missing field 'shape'");
    BAD("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, "tensor 'w': missing field 'data_offsets'");
    BAD("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"offset\":0}}", 1,
        "tensor 'w': unknown field 'offset'");
    BAD("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
        "duplicate field 'dtype'");
    BAD("{" T("w", "F33", "[1]", 0, 4) "}", 4, "tensor 'w': unknown dtype 'F33'");
    BAD("{" T("w", "f32", "[1]", 0, 4) "}", 4, "unknown dtype 'f32'");
    BAD("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is not a string");

    /* shapes */
    BAD("{" T("w", "U8", "[-1]", 0, 0) "}", 0, "shape entry 0 is not a non-negative integer");
    BAD("{" T("w", "U8", "[1.5]", 0, 0) "}", 0, "shape entry 0 is not a non-negative integer");
    BAD("{" T("w", "U8", "[1,\"2\"]", 0, 2) "}", 2, "shape entry 1 is not a non-negative integer");
    BAD("{" T("w", "U8", "[1e300]", 0, 0) "}", 0, "not a non-negative integer");
    BAD("{" T("w", "U8", "3", 0, 3) "}", 3, "shape is not an array");
    BAD("{" T("w", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1, "9 dimensions");
    BAD("{" T("w", "F32", "[4294967296,4294967296,4294967296]", 0, 0) "}", 0, "too large");
    BAD("{" T("w", "F32", "[4611686018427387904,4]", 0, 0) "}", 0, "not a non-negative integer");
    BAD("{" T("w", "F4", "[3]", 0, 2) "}", 2, "byte boundary");

    /* offsets */
    BAD("{" T("conv1.weight", "F32", "[3,3]", 0, 100) "}", 100,
        "tensor 'conv1.weight': data_offsets [0, 100] do not match dtype F32 and shape [3, 3] (36 bytes)");
    BAD("{" T("w", "F32", "[2]", 0, 8) "}", 7, "tensor 'w': data_offsets [0, 8] are out of range");
    BAD("{" T("w", "F32", "[2]", 8, 0) "}", 8, "out of range");
    BAD("{" T("w", "F32", "[2]", 18446744073709551615, 8) "}", 8, "two non-negative integers");
    BAD("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, "two non-negative integers");
    BAD("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1, "two non-negative integers");
    BAD("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{\"a\":0,\"b\":1}}}", 1,
        "two non-negative integers");
    BAD("{" T("a", "U8", "[4]", 0, 4) "," T("b", "U8", "[4]", 2, 6) "}", 6, "overlap");
    BAD("{" T("a", "U8", "[4]", 0, 4) "," T("b", "U8", "[4]", 0, 4) "}", 4, "overlap");
    BAD("{" T("a", "U8", "[4]", 0, 4) "," T("b", "U8", "[0]", 2, 2) "}", 4, "overlap");
    BAD("{" T("a", "U8", "[4]", 0, 4) "," T("b", "U8", "[4]", 6, 10) "}", 10,
        "tensor 'b': hole in the data section: bytes [4, 6)");
    BAD("{" T("a", "U8", "[4]", 2, 6) "}", 6, "hole");
    BAD("{" T("a", "U8", "[4]", 0, 4) "}", 5, "trailing bytes"); /* data past the last tensor */
    BAD("{}", 3, "trailing bytes");

    /* names and metadata */
    BAD("{" T("a", "U8", "[1]", 0, 1) "," T("a", "U8", "[1]", 1, 2) "}", 2, "duplicate tensor name 'a'");
    BAD("{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "__metadata__: duplicate key 'k'");
    BAD("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__");
    BAD("{\"__metadata__\":{\"epoch\":3}}", 0, "__metadata__: value of 'epoch' is not a string");
    BAD("{\"__metadata__\":{\"x\":null}}", 0, "value of 'x' is not a string");
    BAD("{\"__metadata__\":{\"x\":{\"y\":\"z\"}}}", 0, "value of 'x' is not a string");
    BAD("{\"__metadata__\":[\"a\"]}", 0, "__metadata__ is not an object");
    BAD("{\"__metadata__\":\"a\"}", 0, "__metadata__ is not an object");

    /* very long names are cut in messages, which still name the field */
    char longhdr[3000];
    char name[2001];
    memset(name, 'n', 2000);
    name[2000] = 0;
    snprintf(longhdr, sizeof longhdr, "{\"%s\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}", name);
    BAD(longhdr, 4, "do not match dtype F64");
}

/* Truncating a real file anywhere makes it fail cleanly through lb_st_read, with the
 * path in the message (the no-hole rule is what catches cuts inside the data). */
static void test_truncated_files(void) {
    char path[512], cut[512];
    tmp_path(path, sizeof path, "full.safetensors");
    tmp_path(cut, sizeof cut, "cut.safetensors");
    float w[4] = {1, 2, 3, 4};
    uint8_t u[3] = {7, 8, 9};
    lb_st_entry e[2] = {{.name = "w", .dtype = "F32", .ndim = 1, .shape = {4}, .data = w},
                        {.name = "u", .dtype = "U8", .ndim = 1, .shape = {3}, .data = u}};
    CHECK_OK(lb_st_write(path, e, 2, NULL, NULL, 0));
    size_t len;
    uint8_t *raw = slurp(path, &len);
    CHECK(raw != NULL);
    int bad = 0;
    for (size_t l = 0; raw && l < len; l++) {
        FILE *fp = fopen(cut, "wb");
        if (!fp) { bad++; break; }
        fwrite(raw, 1, l, fp);
        fclose(fp);
        lb_st_file f;
        lb_status s = lb_st_read(cut, &f);
        if (s != LB_ERR_FORMAT || !strstr(lb_last_error(), cut)) {
            fprintf(stderr, "truncated to %zu bytes: status %d: %s\n", l, (int)s, lb_last_error());
            bad++;
        }
        if (s == LB_OK) lb_st_free(&f);
    }
    CHECK(bad == 0);
    /* one extra byte at the end is rejected too */
    FILE *fp = fopen(cut, "wb");
    if (fp && raw) {
        fwrite(raw, 1, len, fp);
        fputc(0, fp);
        fclose(fp);
        lb_st_file f;
        CHECK_STATUS(lb_st_read(cut, &f), LB_ERR_FORMAT);
    }
    free(raw);
    lb_st_file f;
    tmp_path(cut, sizeof cut, "does-not-exist.safetensors");
    CHECK_STATUS(lb_st_read(cut, &f), LB_ERR_IO);
    CHECK(strstr(lb_last_error(), "does-not-exist.safetensors") != NULL);
    unlink(path);
    tmp_path(cut, sizeof cut, "cut.safetensors");
    unlink(cut);
}

/* ------------------------------------------------------------ failed writes */

static void test_write_errors(void) {
    float w[2] = {1, 2};
    lb_st_entry ok = {.name = "w", .dtype = "F32", .ndim = 1, .shape = {2}, .data = w};
    char path[512];
    int before = dir_entries();

    /* a directory that does not exist: nothing created, LB_ERR_WRITE naming the path */
    tmp_path(path, sizeof path, "no-such-dir/x.safetensors");
    CHECK_STATUS(lb_st_write(path, &ok, 1, NULL, NULL, 0), LB_ERR_WRITE);
    CHECK(strstr(lb_last_error(), "no-such-dir/x.safetensors") != NULL);
    CHECK(!file_exists(path));

    /* the target is a directory: the rename fails after the data was written, and
     * the temporary file must not be left behind */
    tmp_path(path, sizeof path, "a-dir");
    CHECK(mkdir(path, 0700) == 0);
    before = dir_entries();
    CHECK_STATUS(lb_st_write(path, &ok, 1, NULL, NULL, 0), LB_ERR_WRITE);
    CHECK(dir_entries() == before);
    rmdir(path);
    before = dir_entries();

    /* caller errors: LB_ERR_INVALID, no file */
    tmp_path(path, sizeof path, "invalid.safetensors");
    lb_st_entry e[2] = {ok, ok};
    CHECK_STATUS(lb_st_write(path, e, 2, NULL, NULL, 0), LB_ERR_INVALID); /* duplicate name */
    CHECK(strstr(lb_last_error(), "duplicate tensor name 'w'") != NULL);
    e[1].name = "v";
    e[1].dtype = "F31";
    CHECK_STATUS(lb_st_write(path, e, 2, NULL, NULL, 0), LB_ERR_INVALID);
    CHECK(strstr(lb_last_error(), "unknown dtype 'F31'") != NULL);
    e[1].dtype = "F32";
    e[1].shape[0] = -2;
    CHECK_STATUS(lb_st_write(path, e, 2, NULL, NULL, 0), LB_ERR_INVALID);
    e[1].shape[0] = 2;
    e[1].ndim = 9;
    CHECK_STATUS(lb_st_write(path, e, 2, NULL, NULL, 0), LB_ERR_INVALID);
    e[1].ndim = 1;
    e[1].data = NULL;
    CHECK_STATUS(lb_st_write(path, e, 2, NULL, NULL, 0), LB_ERR_INVALID);
    e[1].data = w;
    e[1].name = "__metadata__";
    CHECK_STATUS(lb_st_write(path, e, 2, NULL, NULL, 0), LB_ERR_INVALID);
    e[1].name = "bad\xff";
    CHECK_STATUS(lb_st_write(path, e, 2, NULL, NULL, 0), LB_ERR_INVALID);
    e[1].name = "v";
    e[1].dtype = "U8";
    e[1].shape[0] = (int64_t)1 << 62; /* 4 EiB: checked before anything is read */
    e[1].ndim = 2;
    e[1].shape[1] = 4;
    CHECK_STATUS(lb_st_write(path, e, 2, NULL, NULL, 0), LB_ERR_INVALID);
    e[1].ndim = 1;
    /* each size fits, the sum does not (no memory is touched: the check comes first) */
    lb_st_entry huge[9];
    char hnames[9][3] = {"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"};
    for (int i = 0; i < 9; i++) {
        huge[i] = (lb_st_entry){.name = hnames[i], .dtype = "U8", .ndim = 1, .shape = {(int64_t)1 << 60},
                                .data = w};
    }
    CHECK_STATUS(lb_st_write(path, huge, 9, NULL, NULL, 0), LB_ERR_INVALID);
    CHECK_MSG(strstr(lb_last_error(), "total tensor size") != NULL, "%s", lb_last_error());
    e[1].dtype = "F32";
    e[1].shape[0] = 2;
    const char *bad_v[1] = {"\xc3"};
    const char *kk[1] = {"k"};
    CHECK_STATUS(lb_st_write(path, e, 2, kk, bad_v, 1), LB_ERR_INVALID);
    const char *k[2] = {"a", "a"}, *v[2] = {"1", "2"};
    CHECK_STATUS(lb_st_write(path, e, 2, k, v, 2), LB_ERR_INVALID);
    CHECK(strstr(lb_last_error(), "duplicate metadata key 'a'") != NULL);
    CHECK_STATUS(lb_st_write(path, e, -1, NULL, NULL, 0), LB_ERR_INVALID);
    CHECK(!file_exists(path));
    CHECK(dir_entries() == before);
    CHECK_OK(lb_st_write(path, e, 2, k, v, 1)); /* and the fixed list writes */
    unlink(path);
}

int main(void) {
    if (lbt_mkdtemp(tmpdir, sizeof tmpdir, "lbt_st")) return 1;
    test_round_trip();
    test_writer_bytes();
    test_py_reference();
    test_hostile();
    test_truncated_files();
    test_write_errors();

    /* clean up the few files the tests keep */
    const char *left[] = {"rt.safetensors", "empty.safetensors", "bytes.safetensors"};
    char p[512];
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++) {
        tmp_path(p, sizeof p, left[i]);
        unlink(p);
    }
    CHECK_MSG(rmdir(tmpdir) == 0, "%s not empty after the tests", tmpdir);
    return lbt_report("test_safetensors");
}
