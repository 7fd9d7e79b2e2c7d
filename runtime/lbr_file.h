/* lbr_file.h - the .lbm container: header, array table, layer table, CRCs and bounds
 * (docs/format.md). What a layer's fields mean is runtime/lbr.c's
 * business; this level only guarantees that every array named by the table lies inside
 * the buffer with the size its dtype and count imply, and that nothing was corrupted.
 *
 * Layout (all integers little-endian):
 *   0     header, LBR_HEADER_BYTES
 *   64    array table, n_arrays x LBR_ARRAY_BYTES
 *   ...   layer table, n_layers x LBR_LAYER_BYTES (LBR_LAYER_FIELDS u32 each)
 *   ...   arrays, each at a multiple of LBR_ALIGN, in table order, not overlapping
 *
 * Ownership: lbr_file_open copies nothing and allocates nothing. An lbr_file points into
 * the caller's buffer (f->base == buf, f->layers and every lbr_array.data inside it), so
 * the buffer must outlive the lbr_file and stay unmodified. Fields are read byte by byte,
 * so buf may have any alignment and the host any byte order; array data is handed out
 * as stored (little-endian), and is LBR_ALIGN-aligned in memory when buf is.
 *
 * Errors: lbr_file_open returns LBR_OK or one of the LBR_ERR_* codes below and writes
 * a NUL-terminated message into err (truncated to errlen; err may be NULL) that starts
 * with the part at fault - "header: ", "tables: ", "array N: " or "layer N: " - and names
 * the field and its value. On error *f is zeroed: no arrays, no layers. Any input, of any
 * length and content, gives a result without reading outside [buf, buf + len) (tests/
 * fuzz/fuzz_lbm.c). Work is linear in len: one CRC pass over the file.
 *
 * Threads: no global state; an opened lbr_file is read-only and may be shared. */
#ifndef LBR_FILE_H
#define LBR_FILE_H

#include <stddef.h>
#include <stdint.h>

#define LBR_MAGIC "LBM1"
#define LBR_VERSION 1u
#define LBR_HEADER_BYTES 64u
#define LBR_ARRAY_BYTES 32u
#define LBR_LAYER_BYTES 128u
#define LBR_LAYER_FIELDS 32            /* u32 fields per layer entry */
#define LBR_LAYER_RESERVED 32          /* fields LBR_LAYER_RESERVED .. 31 must be 0 (lbr.h: LBR_L_COUNT; none now) */
#define LBR_ALIGN 64u                  /* array offsets are multiples of this */
#define LBR_MAX_ARRAYS 65536u
#define LBR_MAX_LAYERS 65536u
#define LBR_MAX_INPUT ((uint64_t)1 << 28)  /* in_c * in_h * in_w: bounds the input buffer */
#define LBR_MAX_ARENA ((uint64_t)1 << 40)  /* each arena size: fixed + batch * per sample
                                              cannot overflow u64 for any int batch */

/* Byte offsets of the header fields. */
enum {
    LBR_H_MAGIC = 0, LBR_H_VERSION = 4, LBR_H_N_LAYERS = 8, LBR_H_N_ARRAYS = 12,
    LBR_H_FILE_SIZE = 16, LBR_H_IN_C = 24, LBR_H_IN_H = 28, LBR_H_IN_W = 32,
    LBR_H_N_OUTPUTS = 36, LBR_H_ARENA_FIXED = 40, LBR_H_ARENA_PER_SAMPLE = 48,
    LBR_H_TABLES_CRC = 56, /* CRC-32 of the array table followed by the layer table */
    LBR_H_HEADER_CRC = 60, /* CRC-32 of header bytes 0 .. 59 */
};
/* Byte offsets within an array table entry; the two reserved u32 must be 0. */
enum {
    LBR_A_DTYPE = 0, LBR_A_RESERVED0 = 4, LBR_A_OFFSET = 8, LBR_A_COUNT = 16, LBR_A_CRC = 24,
    LBR_A_RESERVED1 = 28,
};

/* Element types; LBR_DT_U64 holds bit rows (lbr_kernels.h), 64 one-bit values a word. */
enum { LBR_DT_F32 = 1, LBR_DT_U8 = 2, LBR_DT_I8 = 3, LBR_DT_I32 = 4, LBR_DT_U64 = 5 };

/* Bytes per element of `dtype`; 0 for an unknown dtype. */
static inline uint32_t lbr_dtype_size(uint32_t dtype) {
    switch (dtype) {
    case LBR_DT_F32: case LBR_DT_I32: return 4;
    case LBR_DT_U8: case LBR_DT_I8: return 1;
    case LBR_DT_U64: return 8;
    default: return 0;
    }
}

/* Return codes. A CRC mismatch is told apart from a malformed file (corruption in
 * transit or storage, versus a writer bug), and a newer version from both (the file may
 * be fine: the runtime is old). */
enum {
    LBR_OK = 0,
    LBR_ERR_ARG = 1,      /* NULL pointer, or an index out of range */
    LBR_ERR_FORMAT = 2,   /* a size, count, offset, dtype or reserved field is invalid */
    LBR_ERR_CRC = 3,      /* a CRC-32 does not match the bytes it covers */
    LBR_ERR_VERSION = 4,  /* version other than LBR_VERSION */
};

typedef struct lbr_array {
    uint32_t dtype;        /* LBR_DT_* */
    uint64_t offset;       /* from the start of the file; a multiple of LBR_ALIGN */
    uint64_t count;        /* elements; count * lbr_dtype_size(dtype) bytes at data */
    const void *data;      /* base + offset, little-endian elements */
} lbr_array;

typedef struct lbr_file {
    uint32_t version, n_layers, n_arrays;
    uint64_t file_size;                  /* == len */
    uint32_t in_c, in_h, in_w, n_outputs;  /* each >= 1; in_c * in_h * in_w <= LBR_MAX_INPUT */
    uint64_t arena_fixed, arena_per_sample;  /* each <= LBR_MAX_ARENA */
    const uint8_t *layers;   /* n_layers x 128 bytes, read with lbr_layer_field */
    const uint8_t *base;     /* the buffer given to lbr_file_open */
} lbr_file;

/* zlib's CRC-32 (polynomial 0xEDB88320, reflected, pre- and post-inverted) with zlib's
 * running convention: lbr_crc32(p, n, 0) == crc32(0, p, n), and
 * lbr_crc32(b, nb, lbr_crc32(a, na, 0)) is the CRC of a followed by b. p may be NULL
 * when n is 0. */
uint32_t lbr_crc32(const void *p, size_t n, uint32_t crc);

/* Validate the .lbm image buf[0 .. len) and describe it in *f (see the top of this file
 * for ownership and errors). Every rule of docs/format.md is checked before
 * returning LBR_OK:
 *   header: len >= 64; magic; version 1; header CRC; file size == len;
 *           n_arrays, n_layers <= 65536; in_c, in_h, in_w, n_outputs >= 1;
 *           in_c * in_h * in_w <= 2^28; arena sizes <= 2^40; tables inside the file;
 *   tables: their CRC;
 *   array:  known dtype; reserved fields 0; offset a multiple of 64, after the tables
 *           and after the end of the previous array; offset + count * size <= len;
 *           CRC of its bytes;
 *   layer:  fields LBR_LAYER_RESERVED .. 31 are 0. */
int lbr_file_open(lbr_file *f, const void *buf, size_t len, char *err, size_t errlen);

/* Array `index` of an opened file into *out. LBR_ERR_ARG (and *out zeroed) when index
 * >= f->n_arrays. */
int lbr_file_array(const lbr_file *f, uint32_t index, lbr_array *out);

/* u32 field `field` (0 .. 31) of layer `layer`. The caller keeps both in range; outside
 * it the answer is 0 rather than a read outside the table (a reserved field is 0 too). */
uint32_t lbr_layer_field(const lbr_file *f, uint32_t layer, int field);

#endif
