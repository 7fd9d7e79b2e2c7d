/* IDX files (the MNIST family's format), plain or gzip-compressed.
 *
 * Layout: 00 00, type byte, dims byte, dims as big-endian u32, big-endian data. Input is
 * treated as hostile: every header field is checked and the payload must be exactly as
 * long as the dims say, since a silently short or padded file usually means a wrong or
 * damaged download. */
#include "lb_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Fashion-MNIST's train images are 47 MB decompressed; 2 GiB leaves room for much larger
 * sets while keeping a hostile "gzip bomb" from exhausting memory. */
#define IDX_MAX_BYTES ((size_t)1 << 31)

static size_t idx_elem_size(int type) {
    switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    }
    return 0;
}

static uint32_t load_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Big-endian elements at `src` to host order at `dst`; src == dst is allowed. */
static void be_to_host(void *dst, const void *src, size_t n, size_t esize) {
    if (dst != src) memcpy(dst, src, n * esize);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    (void)esize;
#else
    uint8_t *d = dst;
    if (esize == 2) {
        for (size_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, d + 2 * i, 2);
            v = __builtin_bswap16(v);
            memcpy(d + 2 * i, &v, 2);
        }
    } else if (esize == 4) {
        for (size_t i = 0; i < n; i++) {
            uint32_t v;
            memcpy(&v, d + 4 * i, 4);
            v = __builtin_bswap32(v);
            memcpy(d + 4 * i, &v, 4);
        }
    } else if (esize == 8) {
        for (size_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, d + 8 * i, 8);
            v = __builtin_bswap64(v);
            memcpy(d + 8 * i, &v, 8);
        }
    }
#endif
}

/* Validate and convert. When `owned` is non-NULL it is `buf` itself, a malloc'd buffer
 * this function takes over (freed on failure, reused for the result on success), so a
 * large file is not held twice. */
static lb_status idx_parse(const uint8_t *buf, size_t len, uint8_t *owned, const char *source,
                           void **data, int *dtype, int *ndim, int64_t dims[4]) {
    lb_status s;
    *data = NULL;
    *dtype = 0;
    *ndim = 0;
    for (int i = 0; i < 4; i++) dims[i] = 0;
    if (!source) source = "<idx>";

    if (len < 4) {
        s = lb_fail(LB_ERR_FORMAT, "%s: truncated header: %zu bytes, an IDX header needs at least 4", source, len);
        goto fail;
    }
    if (buf[0] != 0 || buf[1] != 0) {
        s = lb_fail(LB_ERR_FORMAT, "%s: magic: expected 00 00, got %02x %02x%s", source, buf[0], buf[1],
                    buf[0] == 0x1f && buf[1] == 0x8b ? " (gzip data; decompress it first)" : " (not an IDX file)");
        goto fail;
    }
    int type = buf[2];
    size_t esize = idx_elem_size(type);
    if (!esize) {
        s = lb_fail(LB_ERR_FORMAT, "%s: type byte 0x%02x: expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e", source, type);
        goto fail;
    }
    int nd = buf[3];
    if (nd < 1 || nd > 4) {
        s = lb_fail(LB_ERR_FORMAT, "%s: dims byte %d: expected 1 to 4 dimensions", source, nd);
        goto fail;
    }
    size_t hdr = 4 + 4 * (size_t)nd;
    if (len < hdr) {
        s = lb_fail(LB_ERR_FORMAT, "%s: truncated header: %d dims need %zu bytes, got %zu", source, nd, hdr, len);
        goto fail;
    }
    size_t count = 1;
    for (int i = 0; i < nd; i++) {
        uint32_t d = load_be32(buf + 4 + 4 * i);
        if (d == 0) {
            s = lb_fail(LB_ERR_FORMAT, "%s: dims[%d] is 0", source, i);
            goto fail;
        }
        dims[i] = d;
        if (!lb_mul_ok(count, d, &count)) {
            s = lb_fail(LB_ERR_FORMAT, "%s: dims[%d] = %u: element count overflows", source, i, d);
            goto fail;
        }
    }
    size_t expect;
    if (!lb_mul_ok(count, esize, &expect) || expect > IDX_MAX_BYTES) {
        s = lb_fail(LB_ERR_FORMAT, "%s: payload: %zu elements of %zu bytes exceed the %zu-byte limit", source,
                    count, esize, IDX_MAX_BYTES);
        goto fail;
    }
    size_t got = len - hdr;
    if (got != expect) {
        s = lb_fail(LB_ERR_FORMAT, "%s: payload: expected %zu bytes, got %zu (%s)", source, expect, got,
                    got < expect ? "truncated file" : "trailing bytes after the data");
        goto fail;
    }

    void *out;
    if (owned) {
        memmove(owned, owned + hdr, expect);
        be_to_host(owned, owned, count, esize);
        /* shrinking cannot really fail, and if it does the larger block is still valid */
        out = realloc(owned, expect ? expect : 1);
        if (!out) out = owned;
    } else {
        out = malloc(expect);
        if (!out) {
            s = lb_fail(LB_ERR_NOMEM, "%s: cannot allocate %zu bytes", source, expect);
            goto fail;
        }
        be_to_host(out, buf + hdr, count, esize);
    }
    *data = out;
    *dtype = type;
    *ndim = nd;
    return LB_OK;

fail:
    free(owned);
    for (int i = 0; i < 4; i++) dims[i] = 0;
    return s;
}

lb_status lb_idx_parse(const uint8_t *buf, size_t len, const char *source, void **data, int *dtype,
                       int *ndim, int64_t dims[4]) {
    if (!buf && len) {
        *data = NULL;
        return lb_fail(LB_ERR_INVALID, "%s: lb_idx_parse: NULL buffer", source ? source : "<idx>");
    }
    return idx_parse(buf ? buf : (const uint8_t *)"", len, NULL, source, data, dtype, ndim, dims);
}

/* Decompress a whole gzip image (one or more concatenated members, as gzip(1) accepts)
 * into a malloc'd buffer of at most IDX_MAX_BYTES. */
static lb_status gunzip(const uint8_t *in, size_t in_len, const char *path, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    /* The trailer's ISIZE (size mod 2^32) sizes the buffer, bounded by deflate's best
     * ratio (about 1032:1) so a forged trailer cannot make a tiny file allocate gigabytes. */
    size_t cap = 1 << 16;
    if (in_len >= 18) {
        const uint8_t *t = in + in_len - 4;
        size_t isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
        size_t bound = in_len <= IDX_MAX_BYTES / 1032 ? in_len * 1032 : IDX_MAX_BYTES;
        isize = LB_MIN(isize, bound);
        cap = LB_MAX(cap, LB_MIN(isize + 1, IDX_MAX_BYTES + 1));
    }
    uint8_t *buf = malloc(cap);
    if (!buf) return lb_fail(LB_ERR_NOMEM, "%s: cannot allocate %zu bytes for decompression", path, cap);

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* 16 + MAX_WBITS: gzip wrapper only, so a raw zlib stream is reported as not gzip */
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        free(buf);
        return lb_fail(LB_ERR_NOMEM, "%s: cannot initialise zlib", path);
    }
    lb_status s = LB_OK;
    size_t in_pos = 0, used = 0;
    for (;;) {
        if (used == cap) {
            if (cap > IDX_MAX_BYTES) {
                s = lb_fail(LB_ERR_FORMAT, "%s: corrupt gzip: decompresses to more than %zu bytes", path,
                            IDX_MAX_BYTES);
                break;
            }
            size_t ncap = cap <= (IDX_MAX_BYTES + 1) / 2 ? cap * 2 : IDX_MAX_BYTES + 1;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                s = lb_fail(LB_ERR_NOMEM, "%s: cannot allocate %zu bytes for decompression", path, ncap);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        /* avail_* are 32-bit: feed large buffers in slices */
        size_t in_chunk = LB_MIN(in_len - in_pos, (size_t)1 << 30);
        size_t out_chunk = LB_MIN(cap - used, (size_t)1 << 30);
        zs.next_in = (Bytef *)(in + in_pos);
        zs.avail_in = (uInt)in_chunk;
        zs.next_out = buf + used;
        zs.avail_out = (uInt)out_chunk;
        int r = inflate(&zs, Z_NO_FLUSH);
        in_pos += in_chunk - zs.avail_in;
        used += out_chunk - zs.avail_out;
        if (r == Z_STREAM_END) {
            if (in_pos == in_len) break;
            if (in_len - in_pos >= 2 && in[in_pos] == 0x1f && in[in_pos + 1] == 0x8b) {
                inflateReset(&zs);
                continue;
            }
            s = lb_fail(LB_ERR_FORMAT, "%s: corrupt gzip: %zu trailing bytes after the compressed stream", path,
                        in_len - in_pos);
            break;
        }
        if (r == Z_OK) continue;
        if (r == Z_BUF_ERROR && zs.avail_out == 0) continue; /* output full: grow and retry */
        if (r == Z_BUF_ERROR) {
            s = lb_fail(LB_ERR_FORMAT, "%s: corrupt gzip: truncated (the stream ends before its trailer)", path);
            break;
        }
        if (r == Z_MEM_ERROR) {
            s = lb_fail(LB_ERR_NOMEM, "%s: out of memory while decompressing", path);
            break;
        }
        s = lb_fail(LB_ERR_FORMAT, "%s: corrupt gzip: %s", path, zs.msg ? zs.msg : "invalid data");
        break;
    }
    inflateEnd(&zs);
    if (s != LB_OK) {
        free(buf);
        return s;
    }
    if (used > IDX_MAX_BYTES) {
        free(buf);
        return lb_fail(LB_ERR_FORMAT, "%s: corrupt gzip: decompresses to more than %zu bytes", path, IDX_MAX_BYTES);
    }
    *out = buf;
    *out_len = used;
    return LB_OK;
}

lb_status lb_idx_read(const char *path, void **data, int *dtype, int *ndim, int64_t dims[4]) {
    *data = NULL;
    *dtype = 0;
    *ndim = 0;
    for (int i = 0; i < 4; i++) dims[i] = 0;
    if (!path) return lb_fail(LB_ERR_INVALID, "lb_idx_read: NULL path");
    uint8_t *raw;
    size_t len;
    lb_status s = lb_read_file(path, IDX_MAX_BYTES, &raw, &len);
    if (s != LB_OK) return s;
    if (len >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
        uint8_t *plain;
        size_t plain_len;
        s = gunzip(raw, len, path, &plain, &plain_len);
        free(raw);
        if (s != LB_OK) return s;
        raw = plain;
        len = plain_len;
    }
    return idx_parse(raw, len, raw, path, data, dtype, ndim, dims);
}
