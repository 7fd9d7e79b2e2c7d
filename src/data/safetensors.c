/* safetensors reader and writer (https://github.com/huggingface/safetensors).
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON (optionally padded
 * with trailing whitespace), then the data section. The JSON maps each tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data
 * section), plus an optional "__metadata__" object of string values.
 *
 * Checkpoints come from anywhere, so the parser treats its input as hostile: every
 * count, size and offset is checked before use, and the tensors must tile the data
 * section exactly (no overlap, no hole), as the reference implementation requires;
 * that rule is also what turns a truncated or padded file into an error instead of
 * garbage weights. The checks follow the reference reader, with a few stricter ones
 * (unknown fields, duplicate keys, a NUL inside a string) noted where they are made. */
#include "lb_internal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tensor bytes are copied to and from memory unchanged, and safetensors is
 * little-endian; a big-endian port would have to byte-swap every element. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

/* The reference implementation's limit (MAX_HEADER_SIZE); it bounds the JSON work. */
#define ST_MAX_HEADER 100000000ull
/* lb_st_read loads the whole file; larger checkpoints are not what lowbit trains. */
#define ST_MAX_FILE (16ull << 30)
#define ST_MAX_DIMS 8
/* cJSON stores numbers as doubles: integers above 2^53 would be silently rounded. */
#define ST_MAX_INT 9007199254740992.0
/* Names quoted in messages are cut so the rest of the message still fits. */
#define ST_NAME_MAX 120

/* Every dtype of the reference implementation (safetensors 0.8), with its size in
 * bits: sub-byte types are legal as long as a tensor ends on a byte boundary. */
static const struct {
    const char *name;
    int bits;
} st_dtypes[] = {
    {"BOOL", 8},     {"U8", 8},      {"I8", 8},       {"F8_E5M2", 8}, {"F8_E4M3", 8},
    {"F8_E8M0", 8},  {"I16", 16},    {"U16", 16},     {"F16", 16},    {"BF16", 16},
    {"I32", 32},     {"U32", 32},    {"F32", 32},     {"F64", 64},    {"I64", 64},
    {"U64", 64},     {"C64", 64},    {"F4", 4},       {"F6_E2M3", 6}, {"F6_E3M2", 6},
};

static int dtype_bits(const char *s) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) return st_dtypes[i].bits;
    return 0;
}

/* Length to print of a (possibly hostile, possibly huge) name. */
static int nlen(const char *s) {
    size_t n = strlen(s);
    return n > ST_NAME_MAX ? ST_NAME_MAX : (int)n;
}

/* "[3, 3]" into buf (truncated if it does not fit, which only affects messages). */
static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

/* Bytes of a tensor into *out: 0 on success, 1 if the size overflows 64 bits, 2 if a
 * sub-byte tensor ends inside a byte. */
static int tensor_bytes(int bits, int ndim, const int64_t *shape, uint64_t *out) {
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        if (__builtin_mul_overflow(numel, (uint64_t)shape[i], &numel)) return 1;
    uint64_t nbits;
    if (__builtin_mul_overflow(numel, (uint64_t)bits, &nbits)) return 1;
    if (nbits % 8) return 2;
    *out = nbits / 8;
    return 0;
}

/* Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF), as the
 * reference reader demands. Returns the offset of the first bad byte, or len. */
static size_t utf8_bad(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0) lo = 0xA0;      /* overlong */
            if (c == 0xED) hi = 0x9F;      /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0) lo = 0x90;      /* overlong */
            if (c == 0xF4) hi = 0x8F;      /* above U+10FFFF */
        } else return i;
        if (len - i - 1 < n) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += n + 1;
    }
    return len;
}

static bool json_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* A JSON number that is an exact non-negative integer (cJSON also accepts "2.0" and
 * "1e3"; the reference reader does not, but the value is unambiguous either way). */
static bool get_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= ST_MAX_INT)) return false; /* also rejects NaN */
    uint64_t u = (uint64_t)v;
    if ((double)u != v) return false;
    *out = u;
    return true;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* First name that appears twice, or NULL. cJSON keeps duplicate keys, so without
 * this check a second entry could silently shadow the first. Sorting keeps it
 * O(n log n) for headers with millions of entries. */
static const char *find_duplicate(char **names, int n, lb_status *st) {
    *st = LB_OK;
    if (n < 2) return NULL;
    char **tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) {
        *st = LB_ERR_NOMEM;
        return NULL;
    }
    memcpy(tmp, names, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_str);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (strcmp(tmp[i - 1], tmp[i]) == 0) dup = tmp[i];
    free(tmp);
    return dup;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} st_span;

static int cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* The tensors must cover [0, data_len) exactly once (zero-size tensors may sit at any
 * tensor boundary). */
static lb_status check_coverage(const lb_st_file *f, const char *src) {
    st_span *sp = malloc((size_t)(f->n ? f->n : 1) * sizeof *sp);
    if (!sp) return lb_fail(LB_ERR_NOMEM, "%s: out of memory checking tensor offsets", src);
    for (int i = 0; i < f->n; i++) sp[i] = (st_span){f->tensors[i].begin, f->tensors[i].end, i};
    qsort(sp, (size_t)f->n, sizeof *sp, cmp_span);
    uint64_t pos = 0;
    int prev = -1; /* tensor that ends at pos */
    lb_status s = LB_OK;
    for (int i = 0; i < f->n && s == LB_OK; i++) {
        const lb_st_tensor *t = &f->tensors[sp[i].idx];
        if (t->begin < pos) {
            const lb_st_tensor *p = &f->tensors[prev];
            s = lb_fail(LB_ERR_FORMAT,
                        "%s: tensor '%.*s': data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor "
                        "'%.*s' [%" PRIu64 ", %" PRIu64 "]",
                        src, nlen(t->name), t->name, t->begin, t->end, nlen(p->name), p->name,
                        p->begin, p->end);
        } else if (t->begin > pos) {
            s = lb_fail(LB_ERR_FORMAT,
                        "%s: tensor '%.*s': hole in the data section: bytes [%" PRIu64 ", %" PRIu64
                        ") belong to no tensor",
                        src, nlen(t->name), t->name, pos, t->begin);
        } else if (t->end > pos) {
            pos = t->end;
            prev = sp[i].idx;
        } else if (prev < 0) {
            prev = sp[i].idx;
        }
    }
    free(sp);
    if (s == LB_OK && pos != f->data_len)
        s = lb_fail(LB_ERR_FORMAT,
                    "%s: data section has %zu bytes but the tensors cover only %" PRIu64
                    " (trailing bytes belong to no tensor)",
                    src, f->data_len, pos);
    return s;
}

static lb_status parse_metadata(const cJSON *meta, const char *src, lb_st_file *out) {
    if (cJSON_IsNull(meta)) return LB_OK; /* the reference reader accepts null */
    if (!cJSON_IsObject(meta))
        return lb_fail(LB_ERR_FORMAT, "%s: __metadata__ is not an object", src);
    int n = cJSON_GetArraySize(meta);
    out->meta_keys = calloc((size_t)(n ? n : 1), sizeof *out->meta_keys);
    out->meta_vals = calloc((size_t)(n ? n : 1), sizeof *out->meta_vals);
    if (!out->meta_keys || !out->meta_vals)
        return lb_fail(LB_ERR_NOMEM, "%s: out of memory reading __metadata__", src);
    const cJSON *it;
    cJSON_ArrayForEach(it, meta) {
        if (!cJSON_IsString(it) || !it->valuestring)
            return lb_fail(LB_ERR_FORMAT, "%s: __metadata__: value of '%.*s' is not a string", src,
                           nlen(it->string), it->string);
        int i = out->n_meta;
        out->meta_keys[i] = lb_strdup(it->string);
        out->meta_vals[i] = lb_strdup(it->valuestring);
        if (!out->meta_keys[i] || !out->meta_vals[i]) {
            /* count the pair so lb_st_free releases whichever half was allocated */
            out->n_meta++;
            return lb_fail(LB_ERR_NOMEM, "%s: out of memory reading __metadata__", src);
        }
        out->n_meta++;
    }
    lb_status st;
    const char *dup = find_duplicate(out->meta_keys, out->n_meta, &st);
    if (st != LB_OK) return lb_fail(st, "%s: out of memory reading __metadata__", src);
    if (dup)
        return lb_fail(LB_ERR_FORMAT, "%s: __metadata__: duplicate key '%.*s'", src, nlen(dup), dup);
    return LB_OK;
}

static lb_status parse_tensor(const cJSON *obj, const char *src, uint64_t data_len, lb_st_tensor *t) {
    const char *name = t->name;
    int nm = nlen(name);
    if (!cJSON_IsObject(obj))
        return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': entry is not an object", src, nm, name);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL, *it;
    /* Exactly three fields, each once: stricter than the reference reader, which
     * ignores unknown fields, because a misspelt field is more likely than an
     * extension and silently dropping it would hide the mistake. */
    cJSON_ArrayForEach(it, obj) {
        const cJSON **slot = strcmp(it->string, "dtype") == 0          ? &dtype
                             : strcmp(it->string, "shape") == 0        ? &shape
                             : strcmp(it->string, "data_offsets") == 0 ? &offs
                                                                       : NULL;
        if (!slot)
            return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': unknown field '%.*s'", src, nm, name,
                           nlen(it->string), it->string);
        if (*slot)
            return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': duplicate field '%s'", src, nm, name,
                           it->string);
        *slot = it;
    }
    if (!dtype) return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': missing field 'dtype'", src, nm, name);
    if (!shape) return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': missing field 'shape'", src, nm, name);
    if (!offs)
        return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': missing field 'data_offsets'", src, nm, name);

    if (!cJSON_IsString(dtype) || !dtype->valuestring)
        return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': dtype is not a string", src, nm, name);
    int bits = dtype_bits(dtype->valuestring);
    if (!bits)
        return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': unknown dtype '%.*s'", src, nm, name,
                       nlen(dtype->valuestring), dtype->valuestring);
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype->valuestring); /* table names fit */

    if (!cJSON_IsArray(shape))
        return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': shape is not an array", src, nm, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ST_MAX_DIMS)
        return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': shape has %d dimensions (at most %d)", src,
                       nm, name, ndim, ST_MAX_DIMS);
    t->ndim = 0;
    cJSON_ArrayForEach(it, shape) {
        uint64_t d;
        if (!get_uint(it, &d))
            return lb_fail(LB_ERR_FORMAT,
                           "%s: tensor '%.*s': shape entry %d is not a non-negative integer", src, nm,
                           name, t->ndim);
        t->shape[t->ndim++] = (int64_t)d;
    }
    char sbuf[256];
    uint64_t nbytes;
    int why = tensor_bytes(bits, t->ndim, t->shape, &nbytes);
    if (why)
        return lb_fail(LB_ERR_FORMAT, "%s: tensor '%.*s': shape %s with dtype %s %s", src, nm, name,
                       shape_str(sbuf, sizeof sbuf, t->ndim, t->shape), t->dtype,
                       why == 1 ? "is too large (byte size overflows 64 bits)"
                                : "does not end on a byte boundary");

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !get_uint(offs->child, &t->begin) ||
        !get_uint(offs->child->next, &t->end))
        return lb_fail(LB_ERR_FORMAT,
                       "%s: tensor '%.*s': data_offsets is not an array of two non-negative integers",
                       src, nm, name);
    if (t->begin > t->end || t->end > data_len)
        return lb_fail(LB_ERR_FORMAT,
                       "%s: tensor '%.*s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] are out of range of the data section (%" PRIu64 " bytes)",
                       src, nm, name, t->begin, t->end, data_len);
    if (t->end - t->begin != nbytes)
        return lb_fail(LB_ERR_FORMAT,
                       "%s: tensor '%.*s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] do not match dtype %s and shape %s (%" PRIu64 " bytes)",
                       src, nm, name, t->begin, t->end, t->dtype,
                       shape_str(sbuf, sizeof sbuf, t->ndim, t->shape), nbytes);
    return LB_OK;
}

/* Byte checks cJSON does not make: valid UTF-8, and no "\u0000" escape, which cJSON
 * would decode into a NUL that cuts the name short (so "a\u0000b" would load as "a"). */
static lb_status check_header_bytes(const uint8_t *h, size_t n, const char *src) {
    size_t bad = utf8_bad(h, n);
    if (bad != n)
        return lb_fail(LB_ERR_FORMAT, "%s: header is not valid UTF-8 (byte %zu of the header)", src, bad);
    for (size_t i = 0; i < n; i++) {
        if (h[i] == 0) return lb_fail(LB_ERR_FORMAT, "%s: header contains a NUL byte", src);
        if (h[i] != '\\' || i + 1 >= n) continue;
        if (h[i + 1] == 'u' && n - i >= 6 && memcmp(h + i + 2, "0000", 4) == 0)
            return lb_fail(LB_ERR_FORMAT, "%s: header contains a \\u0000 escape (NUL in a string)", src);
        i++; /* skip the escaped character, so "\\u0000" (a literal backslash) passes */
    }
    return LB_OK;
}

static lb_status parse_json(const char *json, size_t n, const char *src, lb_st_file *out) {
    /* The reference reader accepts leading whitespace; after it must come an object. */
    size_t start = 0;
    while (start < n && json_space((uint8_t)json[start])) start++;
    if (start == n || json[start] != '{')
        return lb_fail(LB_ERR_FORMAT, "%s: header is not a JSON object", src);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json + start, n - start, &end, 0);
    if (!root) {
        size_t at = end && end >= json && end <= json + n ? (size_t)(end - json) : 0;
        return lb_fail(LB_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu of the header)",
                       src, at);
    }
    /* cJSON stops after the value; only whitespace padding may follow. */
    size_t tail = (size_t)(end - json);
    while (tail < n && json_space((uint8_t)json[tail])) tail++;
    lb_status s = LB_OK;
    if (tail != n)
        s = lb_fail(LB_ERR_FORMAT, "%s: unexpected data after the header JSON (byte %zu of the header)",
                    src, tail);

    int count = cJSON_GetArraySize(root), nmeta = 0;
    const cJSON *it, *meta = NULL;
    cJSON_ArrayForEach(it, root) {
        if (s != LB_OK) break;
        if (strcmp(it->string, "__metadata__") == 0) {
            if (nmeta++) s = lb_fail(LB_ERR_FORMAT, "%s: duplicate __metadata__", src);
            meta = it;
        }
    }
    if (s == LB_OK && meta) s = parse_metadata(meta, src, out);
    if (s == LB_OK) {
        out->tensors = calloc((size_t)(count - nmeta ? count - nmeta : 1), sizeof *out->tensors);
        if (!out->tensors) s = lb_fail(LB_ERR_NOMEM, "%s: out of memory reading the header", src);
    }
    cJSON_ArrayForEach(it, root) {
        if (s != LB_OK) break;
        if (it == meta) continue;
        lb_st_tensor *t = &out->tensors[out->n];
        if (!(t->name = lb_strdup(it->string))) {
            s = lb_fail(LB_ERR_NOMEM, "%s: out of memory reading the header", src);
            break;
        }
        out->n++;
        s = parse_tensor(it, src, out->data_len, t);
    }
    cJSON_Delete(root);
    if (s != LB_OK) return s;

    char **names = malloc((size_t)(out->n ? out->n : 1) * sizeof *names);
    if (!names) return lb_fail(LB_ERR_NOMEM, "%s: out of memory reading the header", src);
    for (int i = 0; i < out->n; i++) names[i] = out->tensors[i].name;
    const char *dup = find_duplicate(names, out->n, &s);
    if (s != LB_OK) s = lb_fail(s, "%s: out of memory reading the header", src);
    else if (dup) s = lb_fail(LB_ERR_FORMAT, "%s: duplicate tensor name '%.*s'", src, nlen(dup), dup);
    free(names);
    if (s != LB_OK) return s;
    return check_coverage(out, src);
}

lb_status lb_st_parse(const uint8_t *buf, size_t len, const char *source, lb_st_file *out) {
    memset(out, 0, sizeof *out);
    const char *src = source ? source : "safetensors";
    if (!buf && len) return lb_fail(LB_ERR_INVALID, "%s: no buffer", src);
    if (len < 8)
        return lb_fail(LB_ERR_FORMAT, "%s: file too short for a safetensors header (%zu bytes)", src, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i]; /* little-endian whatever the host */
    if (n > ST_MAX_HEADER)
        return lb_fail(LB_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the limit of %llu bytes",
                       src, n, ST_MAX_HEADER);
    if (n > len - 8)
        return lb_fail(LB_ERR_FORMAT,
                       "%s: header length %" PRIu64 " exceeds the file size (%zu bytes); truncated?",
                       src, n, len);
    lb_status s = check_header_bytes(buf + 8, (size_t)n, src);
    if (s != LB_OK) return s;

    /* cJSON gets a NUL-terminated copy: its length handling is then never the only
     * thing standing between hostile input and a read past the buffer. */
    char *json = malloc((size_t)n + 1);
    if (!json) return lb_fail(LB_ERR_NOMEM, "%s: out of memory for a %" PRIu64 "-byte header", src, n);
    memcpy(json, buf + 8, (size_t)n);
    json[n] = '\0';

    out->buf = (uint8_t *)buf; /* borrowed: owned stays 0, so lb_st_free leaves it alone */
    out->len = len;
    out->data = buf + 8 + n;
    out->data_len = len - 8 - (size_t)n;
    s = parse_json(json, (size_t)n, src, out);
    free(json);
    if (s != LB_OK) lb_st_free(out);
    return s;
}

lb_status lb_st_read(const char *path, lb_st_file *out) {
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    lb_status s = lb_read_file(path, (size_t)ST_MAX_FILE, &buf, &len);
    if (s != LB_OK) return s;
    s = lb_st_parse(buf, len, path, out);
    if (s != LB_OK) {
        free(buf);
        return s;
    }
    out->owned = 1;
    return LB_OK;
}

const lb_st_tensor *lb_st_find(const lb_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *lb_st_meta(const lb_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

void lb_st_free(lb_st_file *f) {
    if (!f) return;
    if (f->owned) free(f->buf);
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------ writer */

/* A JSON integer printed exactly: cJSON prints numbers from doubles and would turn
 * 10^15 into "1e+15", which readers expecting an integer reject. */
static cJSON *raw_uint(uint64_t v) {
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    return cJSON_CreateRaw(s);
}

/* Checks the caller's arguments (LB_ERR_INVALID: they are the caller's bug, not bad
 * input) and builds the header object; sizes[i] gets tensor i's byte count. */
static lb_status build_header(const char *path, const lb_st_entry *e, int n,
                              const char *const *meta_keys, const char *const *meta_vals, int n_meta,
                              uint64_t *sizes, cJSON **out) {
    *out = NULL;
    for (int i = 0; i < n_meta; i++) {
        if (!meta_keys[i] || !meta_vals[i])
            return lb_fail(LB_ERR_INVALID, "%s: metadata entry %d is NULL", path, i);
        /* strings are written as they are, so they must already be UTF-8 */
        if (utf8_bad((const uint8_t *)meta_keys[i], strlen(meta_keys[i])) != strlen(meta_keys[i]) ||
            utf8_bad((const uint8_t *)meta_vals[i], strlen(meta_vals[i])) != strlen(meta_vals[i]))
            return lb_fail(LB_ERR_INVALID, "%s: metadata '%.*s' is not valid UTF-8", path,
                           nlen(meta_keys[i]), meta_keys[i]);
    }
    for (int i = 0; i < n; i++) {
        const lb_st_entry *t = &e[i];
        if (!t->name || !t->dtype)
            return lb_fail(LB_ERR_INVALID, "%s: tensor %d has no name or dtype", path, i);
        int nm = nlen(t->name);
        if (utf8_bad((const uint8_t *)t->name, strlen(t->name)) != strlen(t->name))
            return lb_fail(LB_ERR_INVALID, "%s: tensor name '%.*s' is not valid UTF-8", path, nm, t->name);
        if (strcmp(t->name, "__metadata__") == 0)
            return lb_fail(LB_ERR_INVALID, "%s: '__metadata__' is reserved, not a tensor name", path);
        int bits = dtype_bits(t->dtype);
        if (!bits)
            return lb_fail(LB_ERR_INVALID, "%s: tensor '%.*s': unknown dtype '%.*s'", path, nm, t->name,
                           nlen(t->dtype), t->dtype);
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
            return lb_fail(LB_ERR_INVALID, "%s: tensor '%.*s': ndim %d out of range [0, %d]", path, nm,
                           t->name, t->ndim, ST_MAX_DIMS);
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0)
                return lb_fail(LB_ERR_INVALID, "%s: tensor '%.*s': negative dimension %" PRId64, path,
                               nm, t->name, t->shape[d]);
        if (tensor_bytes(bits, t->ndim, t->shape, &sizes[i]) || sizes[i] > SIZE_MAX / 2)
            return lb_fail(LB_ERR_INVALID, "%s: tensor '%.*s': size overflows or ends inside a byte",
                           path, nm, t->name);
        if (sizes[i] && !t->data)
            return lb_fail(LB_ERR_INVALID, "%s: tensor '%.*s': no data", path, nm, t->name);
    }
    /* duplicate names would make an unreadable file (readers reject them) */
    lb_status s = LB_OK;
    char **names = malloc((size_t)(LB_MAX(n, n_meta) + 1) * sizeof *names);
    if (!names) return lb_fail(LB_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) names[i] = (char *)e[i].name;
    const char *dup = find_duplicate(names, n, &s);
    if (s == LB_OK && dup)
        s = lb_fail(LB_ERR_INVALID, "%s: duplicate tensor name '%.*s'", path, nlen(dup), dup);
    if (s == LB_OK) {
        for (int i = 0; i < n_meta; i++) names[i] = (char *)meta_keys[i];
        dup = find_duplicate(names, n_meta, &s);
        if (s == LB_OK && dup)
            s = lb_fail(LB_ERR_INVALID, "%s: duplicate metadata key '%.*s'", path, nlen(dup), dup);
    }
    free(names);
    if (s == LB_ERR_NOMEM) return lb_fail(s, "%s: out of memory", path);
    if (s != LB_OK) return s;

    /* cJSON keeps insertion order: metadata first, then the tensors as given */
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (ok && n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < n_meta; i++)
            ok = cJSON_AddStringToObject(m, meta_keys[i], meta_vals[i]) != NULL;
    }
    uint64_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        const lb_st_entry *t = &e[i];
        cJSON *o = cJSON_AddObjectToObject(root, t->name);
        /* field order as in the reference writer's output: dtype, shape, data_offsets */
        ok = o && cJSON_AddStringToObject(o, "dtype", t->dtype);
        cJSON *shape = ok ? cJSON_AddArrayToObject(o, "shape") : NULL;
        ok = shape != NULL;
        for (int d = 0; ok && d < t->ndim; d++) {
            cJSON *v = raw_uint((uint64_t)t->shape[d]);
            ok = v && cJSON_AddItemToArray(shape, v);
            if (!ok) cJSON_Delete(v);
        }
        cJSON *offs = ok ? cJSON_AddArrayToObject(o, "data_offsets") : NULL;
        ok = offs != NULL;
        for (int k = 0; ok && k < 2; k++) {
            cJSON *v = raw_uint(k ? off + sizes[i] : off);
            ok = v && cJSON_AddItemToArray(offs, v);
            if (!ok) cJSON_Delete(v);
        }
        off += sizes[i]; /* cannot wrap: both terms are <= SIZE_MAX / 2 */
        if (off > SIZE_MAX / 2) {
            cJSON_Delete(root);
            return lb_fail(LB_ERR_INVALID, "%s: total tensor size overflows", path);
        }
    }
    if (!ok) {
        cJSON_Delete(root);
        return lb_fail(LB_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    *out = root;
    return LB_OK;
}

lb_status lb_st_write(const char *path, const lb_st_entry *e, int n, const char *const *meta_keys,
                      const char *const *meta_vals, int n_meta) {
    if (!path) return lb_fail(LB_ERR_INVALID, "lb_st_write: no path");
    if (n < 0 || n_meta < 0 || (n > 0 && !e) || (n_meta > 0 && (!meta_keys || !meta_vals)) ||
        n > INT32_MAX - 2)
        return lb_fail(LB_ERR_INVALID, "%s: bad tensor or metadata list", path);
    uint64_t *sizes = malloc((size_t)(n ? n : 1) * sizeof *sizes);
    if (!sizes) return lb_fail(LB_ERR_NOMEM, "%s: out of memory", path);
    cJSON *root;
    lb_status s = build_header(path, e, n, meta_keys, meta_vals, n_meta, sizes, &root);
    if (s != LB_OK) {
        free(sizes);
        return s;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) {
        free(sizes);
        return lb_fail(LB_ERR_NOMEM, "%s: out of memory printing the header", path);
    }
    /* Pad with spaces so the data section starts 8-byte aligned in the file, as the
     * reference writer does (lets readers mmap and use 8-byte types in place). */
    size_t jlen = strlen(json);
    size_t hlen = jlen + (8 - jlen % 8) % 8;
    uint8_t *head = malloc(8 + hlen);
    const void **chunks = malloc((size_t)(n + 1) * sizeof *chunks);
    size_t *lens = malloc((size_t)(n + 1) * sizeof *lens);
    if (!head || !chunks || !lens) {
        s = lb_fail(LB_ERR_NOMEM, "%s: out of memory", path);
    } else {
        for (int i = 0; i < 8; i++) head[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
        memcpy(head + 8, json, jlen);
        memset(head + 8 + jlen, ' ', hlen - jlen);
        chunks[0] = head;
        lens[0] = 8 + hlen;
        for (int i = 0; i < n; i++) {
            chunks[i + 1] = e[i].data;
            lens[i + 1] = (size_t)sizes[i];
        }
        s = lb_write_atomic(path, n + 1, chunks, lens);
    }
    cJSON_free(json);
    free(head);
    free(chunks);
    free(lens);
    free(sizes);
    return s;
}
