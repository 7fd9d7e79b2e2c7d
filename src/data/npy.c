/* .npy arrays (NumPy's format, versions 1.0 to 3.0), little-endian and C order only.
 *
 * The header is a Python dict literal. It is parsed by hand (there is no Python to
 * eval it) and strictly: exactly the keys 'descr', 'fortran_order' and 'shape', each
 * once, and nothing after the closing brace but padding. The payload must be exactly
 * size * itemsize bytes. Writing reproduces numpy.save's bytes (NumPy >= 1.23) so files
 * diff cleanly against ones written from Python. */
#include "lb_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* npy files are analysis dumps (weights, activations); 16 GiB is far beyond those and
 * keeps a corrupt size from asking for absurd memory. */
#define NPY_MAX_BYTES ((size_t)1 << 34)
#define NPY_MAX_DIMS 8

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

static size_t npy_item_size(const char *dt) {
    if (!strcmp(dt, "u1")) return 1;
    if (!strcmp(dt, "f4") || !strcmp(dt, "i4")) return 4;
    if (!strcmp(dt, "i8")) return 8;
    return 0;
}

/* Host order <-> little-endian, in place. A no-op on little-endian hosts. */
static void le_swap(void *p, size_t n, size_t esize) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint8_t *d = p;
    for (size_t i = 0; i < n; i++) {
        uint8_t *e = d + i * esize;
        for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
            uint8_t t = e[a];
            e[a] = e[b];
            e[b] = t;
        }
    }
#else
    (void)p; (void)n; (void)esize;
#endif
}

/* ------------------------------------------------------------ header parsing */

typedef struct {
    const char *p, *end;
    const char *source;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int peek(const cursor *c) { return c->p < c->end ? (unsigned char)*c->p : -1; }

/* Printable description of the byte at the cursor, for messages. */
static const char *here(const cursor *c, char tmp[16]) {
    int ch = peek(c);
    if (ch < 0) return "end of header";
    if (ch >= 0x20 && ch < 0x7f) snprintf(tmp, 16, "'%c'", ch);
    else snprintf(tmp, 16, "byte 0x%02x", ch);
    return tmp;
}

static lb_status expect_char(cursor *c, char want, const char *what) {
    char tmp[16];
    if (peek(c) == (unsigned char)want) {
        c->p++;
        return LB_OK;
    }
    return lb_fail(LB_ERR_FORMAT, "%s: header: expected '%c' %s, found %s", c->source, want, what, here(c, tmp));
}

/* A quoted Python string without escapes (all a valid header needs); `cap` bounds it. */
static lb_status parse_str(cursor *c, char *out, size_t cap, const char *what) {
    char tmp[16];
    int q = peek(c);
    if (q != '\'' && q != '"')
        return lb_fail(LB_ERR_FORMAT, "%s: header: expected a quoted %s, found %s", c->source, what, here(c, tmp));
    c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '\\' || ch < 0x20 || ch >= 0x7f)
            return lb_fail(LB_ERR_FORMAT, "%s: header: unexpected byte 0x%02x in %s", c->source, ch, what);
        if (n + 1 >= cap) return lb_fail(LB_ERR_FORMAT, "%s: header: %s too long", c->source, what);
        out[n++] = (char)ch;
        c->p++;
    }
    if (c->p == c->end) return lb_fail(LB_ERR_FORMAT, "%s: header: unterminated %s", c->source, what);
    c->p++;
    out[n] = 0;
    return LB_OK;
}

static int match_word(cursor *c, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
    /* "Falsey" is not False */
    if ((size_t)(c->end - c->p) > n) {
        char ch = c->p[n];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_') return 0;
    }
    c->p += n;
    return 1;
}

static lb_status parse_shape(cursor *c, int *ndim, int64_t shape[NPY_MAX_DIMS]) {
    char tmp[16];
    lb_status s = expect_char(c, '(', "to open 'shape'");
    if (s != LB_OK) return s;
    int n = 0, comma_last = 0;
    skip_ws(c);
    while (peek(c) != ')') {
        int ch = peek(c);
        if (ch < '0' || ch > '9')
            return lb_fail(LB_ERR_FORMAT, "%s: shape: expected a non-negative integer, found %s", c->source, here(c, tmp));
        if (n == NPY_MAX_DIMS)
            return lb_fail(LB_ERR_FORMAT, "%s: shape: more than %d dimensions", c->source, NPY_MAX_DIMS);
        int64_t v = 0;
        while ((ch = peek(c)) >= '0' && ch <= '9') {
            if (v > (INT64_MAX - (ch - '0')) / 10)
                return lb_fail(LB_ERR_FORMAT, "%s: shape[%d]: number too large", c->source, n);
            v = v * 10 + (ch - '0');
            c->p++;
        }
        /* Python 2's long suffix, found in files written by NumPy under Python 2 */
        if (peek(c) == 'L') c->p++;
        shape[n++] = v;
        skip_ws(c);
        if (peek(c) == ',') {
            c->p++;
            skip_ws(c);
            comma_last = 1;
        } else if (peek(c) == ')') {
            comma_last = 0;
        } else {
            return lb_fail(LB_ERR_FORMAT, "%s: shape: expected ',' or ')', found %s", c->source, here(c, tmp));
        }
    }
    c->p++;
    /* "(5)" is the integer 5 in Python, not a tuple; NumPy rejects it too */
    if (n == 1 && !comma_last)
        return lb_fail(LB_ERR_FORMAT, "%s: shape: (%lld) is not a tuple (a 1-d shape is written (%lld,))",
                       c->source, (long long)shape[0], (long long)shape[0]);
    *ndim = n;
    return LB_OK;
}

static lb_status parse_header(cursor *c, char dtype[3], int *ndim, int64_t shape[NPY_MAX_DIMS]) {
    char tmp[16];
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    lb_status s;
    skip_ws(c);
    if ((s = expect_char(c, '{', "at the start of the header dict")) != LB_OK) return s;
    for (;;) {
        skip_ws(c);
        if (peek(c) == '}') break;
        char key[32];
        if ((s = parse_str(c, key, sizeof key, "key")) != LB_OK) return s;
        skip_ws(c);
        if ((s = expect_char(c, ':', "after a key")) != LB_OK) return s;
        skip_ws(c);
        if (!strcmp(key, "descr")) {
            if (have_descr++) return lb_fail(LB_ERR_FORMAT, "%s: header: 'descr' given twice", c->source);
            char d[16];
            if (peek(c) != '\'' && peek(c) != '"')
                return lb_fail(LB_ERR_FORMAT, "%s: descr: structured dtypes are not supported, found %s", c->source,
                               here(c, tmp));
            if ((s = parse_str(c, d, sizeof d, "descr")) != LB_OK) return s;
            if (!strcmp(d, "<f4")) memcpy(dtype, "f4", 3);
            else if (!strcmp(d, "|u1") || !strcmp(d, "<u1")) memcpy(dtype, "u1", 3);
            else if (!strcmp(d, "<i4")) memcpy(dtype, "i4", 3);
            else if (!strcmp(d, "<i8")) memcpy(dtype, "i8", 3);
            else if (d[0] == '>')
                return lb_fail(LB_ERR_FORMAT, "%s: descr '%s': big-endian data is not supported (save with "
                               "arr.astype(arr.dtype.newbyteorder('<')))", c->source, d);
            else if (!strcmp(d, "<f8") || !strcmp(d, "<f2"))
                /* float64 is NumPy's default, so this is the mistake users will make */
                return lb_fail(LB_ERR_FORMAT, "%s: descr '%s': unsupported dtype (expected '<f4', '|u1', '<i4' "
                               "or '<i8'; save arr.astype(np.float32))", c->source, d);
            else
                return lb_fail(LB_ERR_FORMAT, "%s: descr '%s': unsupported dtype (expected '<f4', '|u1', '<i4' "
                               "or '<i8')", c->source, d);
        } else if (!strcmp(key, "fortran_order")) {
            if (have_fortran++) return lb_fail(LB_ERR_FORMAT, "%s: header: 'fortran_order' given twice", c->source);
            if (match_word(c, "True"))
                return lb_fail(LB_ERR_FORMAT, "%s: fortran_order is True: only C-order arrays are supported (save "
                               "np.ascontiguousarray(arr))", c->source);
            if (!match_word(c, "False"))
                return lb_fail(LB_ERR_FORMAT, "%s: fortran_order: expected True or False, found %s", c->source,
                               here(c, tmp));
        } else if (!strcmp(key, "shape")) {
            if (have_shape++) return lb_fail(LB_ERR_FORMAT, "%s: header: 'shape' given twice", c->source);
            if ((s = parse_shape(c, ndim, shape)) != LB_OK) return s;
        } else {
            return lb_fail(LB_ERR_FORMAT, "%s: header: unexpected key '%s' (expected descr, fortran_order, shape)",
                           c->source, key);
        }
        skip_ws(c);
        if (peek(c) == ',') {
            c->p++;
        } else if (peek(c) != '}') {
            return lb_fail(LB_ERR_FORMAT, "%s: header: expected ',' or '}' after a value, found %s", c->source,
                           here(c, tmp));
        }
    }
    c->p++;
    skip_ws(c);
    if (c->p != c->end)
        return lb_fail(LB_ERR_FORMAT, "%s: header: unexpected %s after the closing '}'", c->source, here(c, tmp));
    if (!have_descr) return lb_fail(LB_ERR_FORMAT, "%s: header: missing key 'descr'", c->source);
    if (!have_fortran) return lb_fail(LB_ERR_FORMAT, "%s: header: missing key 'fortran_order'", c->source);
    if (!have_shape) return lb_fail(LB_ERR_FORMAT, "%s: header: missing key 'shape'", c->source);
    return LB_OK;
}

/* ------------------------------------------------------------ reading */

/* As lb_npy_parse; `owned`, when non-NULL, is `buf` itself, a malloc'd buffer taken over
 * (freed on failure, reused for the data on success) so a large file is not held twice. */
static lb_status npy_parse(const uint8_t *buf, size_t len, uint8_t *owned, const char *source, lb_npy *out) {
    lb_status s;
    memset(out, 0, sizeof *out);
    if (!source) source = "<npy>";
    if (len < 10) {
        s = lb_fail(LB_ERR_FORMAT, "%s: truncated header: %zu bytes, a .npy header needs at least 10", source, len);
        goto fail;
    }
    if (memcmp(buf, npy_magic, 6) != 0) {
        s = lb_fail(LB_ERR_FORMAT, "%s: magic: expected \\x93NUMPY, got %02x %02x %02x %02x %02x %02x (not a .npy file)",
                    source, buf[0], buf[1], buf[2], buf[3], buf[4], buf[5]);
        goto fail;
    }
    int major = buf[6], minor = buf[7];
    size_t hlen, hstart;
    if (major == 1 && minor == 0) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hstart = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (len < 12) {
            s = lb_fail(LB_ERR_FORMAT, "%s: truncated header: %zu bytes, a version %d.0 header needs at least 12",
                        source, len, major);
            goto fail;
        }
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hstart = 12;
    } else {
        s = lb_fail(LB_ERR_FORMAT, "%s: version %d.%d: expected 1.0, 2.0 or 3.0", source, major, minor);
        goto fail;
    }
    if (hlen > len - hstart) {
        s = lb_fail(LB_ERR_FORMAT, "%s: truncated header: header length %zu exceeds the %zu bytes left", source, hlen,
                    len - hstart);
        goto fail;
    }

    /* Version 3.0 allows UTF-8 in the header, which only matters inside structured
     * dtype field names; those are rejected anyway, so one ASCII parser serves all. */
    cursor c = {(const char *)buf + hstart, (const char *)buf + hstart + hlen, source};
    char dtype[3] = {0};
    int ndim = 0;
    int64_t shape[NPY_MAX_DIMS] = {0};
    if ((s = parse_header(&c, dtype, &ndim, shape)) != LB_OK) goto fail;

    size_t esize = npy_item_size(dtype), count = 1, expect;
    for (int i = 0; i < ndim; i++) {
        if (!lb_mul_ok(count, (size_t)shape[i], &count)) {
            s = lb_fail(LB_ERR_FORMAT, "%s: shape[%d] = %lld: element count overflows", source, i, (long long)shape[i]);
            goto fail;
        }
    }
    if (!lb_mul_ok(count, esize, &expect) || expect > NPY_MAX_BYTES || count > INT64_MAX) {
        s = lb_fail(LB_ERR_FORMAT, "%s: shape: %zu elements of %zu bytes exceed the %zu-byte limit", source, count,
                    esize, NPY_MAX_BYTES);
        goto fail;
    }
    size_t dstart = hstart + hlen, got = len - dstart;
    if (got != expect) {
        s = lb_fail(LB_ERR_FORMAT, "%s: data: expected %zu bytes, got %zu (%s)", source, expect, got,
                    got < expect ? "truncated file" : "trailing bytes after the data");
        goto fail;
    }

    void *data;
    if (owned) {
        memmove(owned, owned + dstart, expect);
        data = realloc(owned, expect ? expect : 1);
        if (!data) data = owned; /* the larger block is still valid */
        owned = NULL;
    } else {
        data = malloc(expect ? expect : 1);
        if (!data) {
            s = lb_fail(LB_ERR_NOMEM, "%s: cannot allocate %zu bytes", source, expect);
            goto fail;
        }
        if (expect) memcpy(data, buf + dstart, expect);
    }
    le_swap(data, count, esize);
    memcpy(out->dtype, dtype, 3);
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++) out->shape[i] = shape[i];
    out->size = (int64_t)count;
    out->data = data;
    return LB_OK;

fail:
    free(owned);
    memset(out, 0, sizeof *out);
    return s;
}

lb_status lb_npy_parse(const uint8_t *buf, size_t len, const char *source, lb_npy *out) {
    if (!buf && len) {
        memset(out, 0, sizeof *out);
        return lb_fail(LB_ERR_INVALID, "%s: lb_npy_parse: NULL buffer", source ? source : "<npy>");
    }
    return npy_parse(buf ? buf : (const uint8_t *)"", len, NULL, source, out);
}

lb_status lb_npy_read(const char *path, lb_npy *out) {
    memset(out, 0, sizeof *out);
    if (!path) return lb_fail(LB_ERR_INVALID, "lb_npy_read: NULL path");
    uint8_t *buf;
    size_t len;
    lb_status s = lb_read_file(path, NPY_MAX_BYTES + 65536, &buf, &len);
    if (s != LB_OK) return s;
    return npy_parse(buf, len, buf, path, out);
}

void lb_npy_free(lb_npy *a) {
    if (!a) return;
    free(a->data);
    a->data = NULL;
    a->size = 0;
    a->ndim = 0;
}

/* ------------------------------------------------------------ writing */

lb_status lb_npy_write(const char *path, const char *dtype, int ndim, const int64_t *shape, const void *data) {
    if (!path) return lb_fail(LB_ERR_INVALID, "lb_npy_write: NULL path");
    /* accept "f4" as in lb_npy, or NumPy's own spelling "<f4" / "|u1" */
    const char *dt = dtype ? dtype : "";
    if (dt[0] == '<' || dt[0] == '|') dt++;
    size_t esize = npy_item_size(dt);
    if (!esize || (dtype[0] == '|' && strcmp(dt, "u1") != 0))
        return lb_fail(LB_ERR_INVALID, "%s: dtype '%s': expected f4, u1, i4 or i8", path, dtype ? dtype : "(null)");
    const char *descr = !strcmp(dt, "f4") ? "<f4" : !strcmp(dt, "u1") ? "|u1" : !strcmp(dt, "i4") ? "<i4" : "<i8";
    if (ndim < 0 || ndim > NPY_MAX_DIMS)
        return lb_fail(LB_ERR_INVALID, "%s: ndim %d: expected 0 to %d", path, ndim, NPY_MAX_DIMS);
    if (ndim > 0 && !shape) return lb_fail(LB_ERR_INVALID, "%s: NULL shape", path);
    size_t count = 1, nbytes;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return lb_fail(LB_ERR_INVALID, "%s: shape[%d] = %lld is negative", path, i, (long long)shape[i]);
        if (!lb_mul_ok(count, (size_t)shape[i], &count))
            return lb_fail(LB_ERR_INVALID, "%s: shape[%d]: element count overflows", path, i);
    }
    if (!lb_mul_ok(count, esize, &nbytes) || count > INT64_MAX)
        return lb_fail(LB_ERR_INVALID, "%s: shape: array size overflows", path);
    if (nbytes && !data) return lb_fail(LB_ERR_INVALID, "%s: NULL data for %zu bytes", path, nbytes);

    /* numpy.save: "{'descr': ..., 'fortran_order': False, 'shape': (...), }", then spaces
     * so the first axis can grow to 21 digits in place, then padding so the data starts
     * at a multiple of 64, then '\n'. At most 8 dims of 19 digits: 512 bytes suffice. */
    char hdr[512];
    int n = snprintf(hdr + 10, sizeof hdr - 10, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++)
        n += snprintf(hdr + 10 + n, sizeof hdr - 10 - (size_t)n, i ? ", %lld" : "%lld", (long long)shape[i]);
    n += snprintf(hdr + 10 + n, sizeof hdr - 10 - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    if (ndim > 0) {
        int digits = snprintf(NULL, 0, "%lld", (long long)shape[0]);
        for (int i = digits; i < 21; i++) hdr[10 + n++] = ' ';
    }
    int hlen = n + 1;
    int pad = 64 - (10 + hlen) % 64;
    memset(hdr + 10 + n, ' ', (size_t)pad);
    n += pad;
    hdr[10 + n++] = '\n';
    memcpy(hdr, npy_magic, 6);
    hdr[6] = 1;
    hdr[7] = 0;
    hdr[8] = (char)(n & 0xff);
    hdr[9] = (char)(n >> 8);

    const void *payload = data ? data : "";
    void *swapped = NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if (esize > 1 && nbytes) {
        swapped = malloc(nbytes);
        if (!swapped) return lb_fail(LB_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, nbytes);
        memcpy(swapped, data, nbytes);
        le_swap(swapped, count, esize);
        payload = swapped;
    }
#endif
    const void *chunks[2] = {hdr, payload};
    size_t lens[2] = {(size_t)(10 + n), nbytes};
    lb_status s = lb_write_atomic(path, 2, chunks, lens);
    free(swapped);
    return s;
}
