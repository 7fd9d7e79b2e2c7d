/* lbr_file.c - .lbm container validation (lbr_file.h). Every check is done before the
 * first pointer is handed out, in file order (header, tables, arrays, layers), so the
 * message names the first bad field a reader of the file would meet. */
#include "lbr_file.h"
#include "lbr_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Little-endian reads assembled from bytes: any alignment, any host byte order. */
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* One step of the reflected CRC: shift a bit out, xor the polynomial in when it was 1
 * (the mask avoids a data-dependent branch). */
static uint32_t crc_bit(uint32_t c) { return (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u))); }

uint32_t lbr_crc32(const void *p, size_t n, uint32_t crc) {
    const uint8_t *b = p;
    crc = ~crc;
    /* Bit at a time is 8 dependent steps per byte; for long runs (weight arrays) a
     * 1 KB table built on the stack costs as much as 256 bytes and then gives one lookup
     * per byte. It lives on the stack so the runtime keeps no global writable state. */
    if (n >= 1024) {
        uint32_t t[256];
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = crc_bit(c);
            t[i] = c;
        }
        for (; n; n--) crc = t[(crc ^ *b++) & 0xFFu] ^ (crc >> 8);
        return ~crc;
    }
    for (; n; n--) {
        crc ^= *b++;
        for (int k = 0; k < 8; k++) crc = crc_bit(crc);
    }
    return ~crc;
}



int lbr_file_open(lbr_file *f, const void *buf, size_t len, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!f) return lbr_fail(err, errlen, LBR_ERR_ARG, "lbr_file_open: f is NULL");
    memset(f, 0, sizeof *f);
    if (!buf) return lbr_fail(err, errlen, LBR_ERR_ARG, "header: buffer is NULL");
    const uint8_t *b = buf;

    /* ---- header. Magic and version come before the CRC: a file that is not .lbm, or
     * a later version whose header may differ, gets that message, not "CRC mismatch". */
    if (len < LBR_HEADER_BYTES)
        return lbr_fail(err, errlen, LBR_ERR_FORMAT, "header: file is %zu bytes, shorter than the %u-byte header", len,
                    LBR_HEADER_BYTES);
    if (memcmp(b + LBR_H_MAGIC, LBR_MAGIC, 4) != 0)
        return lbr_fail(err, errlen, LBR_ERR_FORMAT, "header: bad magic (not an .lbm file)");
    const uint32_t version = rd32(b + LBR_H_VERSION);
    if (version != LBR_VERSION)
        return lbr_fail(err, errlen, LBR_ERR_VERSION, "header: version %" PRIu32 " not supported (this runtime reads %u)",
                    version, LBR_VERSION);
    const uint32_t hcrc = rd32(b + LBR_H_HEADER_CRC), hcrc_now = lbr_crc32(b, LBR_H_HEADER_CRC, 0);
    if (hcrc != hcrc_now)
        return lbr_fail(err, errlen, LBR_ERR_CRC, "header: CRC mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
                    hcrc, hcrc_now);
    /* The header is intact from here on: a bad value is a writer's bug, not noise. */
    const uint64_t file_size = rd64(b + LBR_H_FILE_SIZE);
    if (file_size != (uint64_t)len)
        return lbr_fail(err, errlen, LBR_ERR_FORMAT, "header: file size %" PRIu64 " but the buffer holds %zu bytes%s",
                    file_size, len, file_size > (uint64_t)len ? " (truncated)" : "");
    const uint32_t n_layers = rd32(b + LBR_H_N_LAYERS), n_arrays = rd32(b + LBR_H_N_ARRAYS);
    if (n_arrays > LBR_MAX_ARRAYS)
        return lbr_fail(err, errlen, LBR_ERR_FORMAT, "header: n_arrays %" PRIu32 " exceeds %u", n_arrays, LBR_MAX_ARRAYS);
    if (n_layers > LBR_MAX_LAYERS)
        return lbr_fail(err, errlen, LBR_ERR_FORMAT, "header: n_layers %" PRIu32 " exceeds %u", n_layers, LBR_MAX_LAYERS);
    const uint32_t dims[3] = {rd32(b + LBR_H_IN_C), rd32(b + LBR_H_IN_H), rd32(b + LBR_H_IN_W)};
    static const char dim_names[3][5] = {"in_c", "in_h", "in_w"};
    uint64_t in_elems = 1;
    for (int i = 0; i < 3; i++) {
        if (dims[i] == 0) return lbr_fail(err, errlen, LBR_ERR_FORMAT, "header: %s is 0, must be >= 1", dim_names[i]);
        /* in_elems <= 2^28 before the multiply and dims[i] < 2^32: no overflow */
        in_elems *= dims[i];
        if (in_elems > LBR_MAX_INPUT)
            return lbr_fail(err, errlen, LBR_ERR_FORMAT,
                        "header: input %" PRIu32 " x %" PRIu32 " x %" PRIu32 " exceeds 2^28 elements", dims[0], dims[1],
                        dims[2]);
    }
    const uint32_t n_outputs = rd32(b + LBR_H_N_OUTPUTS);
    if (n_outputs == 0) return lbr_fail(err, errlen, LBR_ERR_FORMAT, "header: n_outputs is 0, must be >= 1");
    const uint64_t arena_fixed = rd64(b + LBR_H_ARENA_FIXED), arena_per = rd64(b + LBR_H_ARENA_PER_SAMPLE);
    if (arena_fixed > LBR_MAX_ARENA)
        return lbr_fail(err, errlen, LBR_ERR_FORMAT, "header: arena_fixed %" PRIu64 " exceeds 2^40", arena_fixed);
    if (arena_per > LBR_MAX_ARENA)
        return lbr_fail(err, errlen, LBR_ERR_FORMAT, "header: arena_per_sample %" PRIu64 " exceeds 2^40", arena_per);
    /* counts <= 2^16, so this is below 2^24: no overflow */
    const uint64_t tables_end =
        LBR_HEADER_BYTES + (uint64_t)n_arrays * LBR_ARRAY_BYTES + (uint64_t)n_layers * LBR_LAYER_BYTES;
    if (tables_end > file_size)
        return lbr_fail(err, errlen, LBR_ERR_FORMAT,
                    "header: %" PRIu32 " arrays and %" PRIu32 " layers need %" PRIu64
                    " bytes of header and tables, the file has %" PRIu64,
                    n_arrays, n_layers, tables_end, file_size);

    /* ---- tables: one CRC over both, which the header (itself checked) holds */
    const uint32_t tcrc = rd32(b + LBR_H_TABLES_CRC),
                   tcrc_now = lbr_crc32(b + LBR_HEADER_BYTES, (size_t)(tables_end - LBR_HEADER_BYTES), 0);
    if (tcrc != tcrc_now)
        return lbr_fail(err, errlen, LBR_ERR_CRC, "tables: CRC mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
                    tcrc, tcrc_now);

    /* ---- arrays: in table order, each after the previous one's end */
    uint64_t prev_end = tables_end;
    for (uint32_t i = 0; i < n_arrays; i++) {
        const uint8_t *e = b + LBR_HEADER_BYTES + (size_t)i * LBR_ARRAY_BYTES;
        const uint32_t dtype = rd32(e + LBR_A_DTYPE), size = lbr_dtype_size(dtype);
        const uint64_t off = rd64(e + LBR_A_OFFSET), count = rd64(e + LBR_A_COUNT);
        if (size == 0) return lbr_fail(err, errlen, LBR_ERR_FORMAT, "array %" PRIu32 ": unknown dtype %" PRIu32, i, dtype);
        if (rd32(e + LBR_A_RESERVED0) != 0 || rd32(e + LBR_A_RESERVED1) != 0)
            return lbr_fail(err, errlen, LBR_ERR_FORMAT,
                        "array %" PRIu32 ": reserved fields are 0x%08" PRIx32 " and 0x%08" PRIx32 ", must be 0", i,
                        rd32(e + LBR_A_RESERVED0), rd32(e + LBR_A_RESERVED1));
        if (off % LBR_ALIGN != 0)
            return lbr_fail(err, errlen, LBR_ERR_FORMAT, "array %" PRIu32 ": offset %" PRIu64 " is not a multiple of %u", i,
                        off, LBR_ALIGN);
        if (off < tables_end)
            return lbr_fail(err, errlen, LBR_ERR_FORMAT,
                        "array %" PRIu32 ": offset %" PRIu64 " is inside the header and tables (which end at %" PRIu64
                        ")",
                        i, off, tables_end);
        if (off < prev_end)
            return lbr_fail(err, errlen, LBR_ERR_FORMAT,
                        "array %" PRIu32 ": offset %" PRIu64 " overlaps array %" PRIu32 " (which ends at %" PRIu64
                        "): arrays must be in increasing offset order",
                        i, off, i - 1, prev_end);
        if (off > file_size)
            return lbr_fail(err, errlen, LBR_ERR_FORMAT,
                        "array %" PRIu32 ": offset %" PRIu64 " is beyond the end of the file (%" PRIu64 " bytes)", i, off,
                        file_size);
        /* count * size <= file_size - off, tested by division so that no product of
         * untrusted numbers is ever formed */
        if (count > (file_size - off) / size)
            return lbr_fail(err, errlen, LBR_ERR_FORMAT,
                        "array %" PRIu32 ": count %" PRIu64 " of %s at offset %" PRIu64
                        " runs past the end of the file (%" PRIu64 " bytes)",
                        i, count, lbr_dtype_name(dtype), off, file_size);
        const uint64_t bytes = count * size;
        const uint32_t acrc = rd32(e + LBR_A_CRC), acrc_now = lbr_crc32(b + off, (size_t)bytes, 0);
        if (acrc != acrc_now)
            return lbr_fail(err, errlen, LBR_ERR_CRC,
                        "array %" PRIu32 ": CRC mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")", i, acrc,
                        acrc_now);
        prev_end = off + bytes;
    }

    /* ---- layers: only the reserved fields are this level's business */
    const uint8_t *layers = b + LBR_HEADER_BYTES + (size_t)n_arrays * LBR_ARRAY_BYTES;
    for (uint32_t l = 0; l < n_layers; l++)
        for (int k = LBR_LAYER_RESERVED; k < LBR_LAYER_FIELDS; k++) {
            const uint32_t v = rd32(layers + (size_t)l * LBR_LAYER_BYTES + 4 * (size_t)k);
            if (v != 0)
                return lbr_fail(err, errlen, LBR_ERR_FORMAT,
                            "layer %" PRIu32 ": field %d is %" PRIu32 ", reserved fields (%d .. %d) must be 0", l, k, v,
                            LBR_LAYER_RESERVED, LBR_LAYER_FIELDS - 1);
        }

    f->version = version;
    f->n_layers = n_layers;
    f->n_arrays = n_arrays;
    f->file_size = file_size;
    f->in_c = dims[0];
    f->in_h = dims[1];
    f->in_w = dims[2];
    f->n_outputs = n_outputs;
    f->arena_fixed = arena_fixed;
    f->arena_per_sample = arena_per;
    f->layers = layers;
    f->base = b;
    return LBR_OK;
}

int lbr_file_array(const lbr_file *f, uint32_t index, lbr_array *out) {
    if (!out) return LBR_ERR_ARG;
    memset(out, 0, sizeof *out);
    if (!f || !f->base || index >= f->n_arrays) return LBR_ERR_ARG;
    /* re-read from the table, validated by lbr_file_open: the lbr_file stays small */
    const uint8_t *e = f->base + LBR_HEADER_BYTES + (size_t)index * LBR_ARRAY_BYTES;
    out->dtype = rd32(e + LBR_A_DTYPE);
    out->offset = rd64(e + LBR_A_OFFSET);
    out->count = rd64(e + LBR_A_COUNT);
    out->data = f->base + (size_t)out->offset;
    return LBR_OK;
}

uint32_t lbr_layer_field(const lbr_file *f, uint32_t layer, int field) {
    if (!f || !f->layers || layer >= f->n_layers || field < 0 || field >= LBR_LAYER_FIELDS) return 0;
    return rd32(f->layers + (size_t)layer * LBR_LAYER_BYTES + 4 * (size_t)field);
}
