/* lbm_write.h - builds .lbm packed-model files (docs/format.md) for
 * the exporter and the tests. The reader is runtime/lbr_file.c; lbm_build opens its own
 * output with it before returning, so the builder cannot produce a file the runtime
 * refuses, and both share one CRC-32 (lbr_crc32).
 *
 * Usage:
 *   lbm_builder b;
 *   lbm_builder_init(&b);
 *   b.in_c = 1; b.in_h = 28; b.in_w = 28; b.n_outputs = 10;
 *   uint32_t w;
 *   if (lbm_add_array(&b, LBR_DT_F32, weights, n, &w) != LB_OK) ...
 *   uint32_t layer[LBR_LAYER_FIELDS] = {0};  (fields as runtime/lbr.c defines them)
 *   if (lbm_add_layer(&b, layer, NULL) != LB_OK || lbm_write_file(&b, "m.lbm") != LB_OK) ...
 *   lbm_builder_free(&b);
 *
 * Errors follow lowbit.h: an lb_status with lb_last_error() naming the field. */
#ifndef LBM_WRITE_H
#define LBM_WRITE_H

#include "lbr_file.h"
#include "lowbit.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lbm_builder {
    /* header fields, set by the caller (lbm_builder_init zeroes them); lbm_build
     * refuses values the loader would (a zero dimension, an arena above 2^40) */
    uint32_t in_c, in_h, in_w, n_outputs;
    uint64_t arena_fixed, arena_per_sample;
    /* filled by lbm_add_array and lbm_add_layer; read-only for the caller */
    uint32_t n_arrays, n_layers;
    struct lbm_array_rec *arrays;
    uint32_t (*layers)[LBR_LAYER_FIELDS];
    uint32_t arrays_cap, layers_cap;
} lbm_builder;

void lbm_builder_init(lbm_builder *b);
/* Frees what the builder holds and leaves it initialised (empty). */
void lbm_builder_free(lbm_builder *b);

/* Append an array of `count` host-order elements of `dtype` (LBR_DT_*). The data is
 * copied (converted to little-endian), so the caller's buffer can go at once; data may
 * be NULL when count is 0. *index (if non-NULL) receives the array's table index, the
 * number layer fields use to refer to it. LB_ERR_INVALID for an unknown dtype, more
 * than LBR_MAX_ARRAYS arrays or a size that does not fit size_t; LB_ERR_NOMEM. */
lb_status lbm_add_array(lbm_builder *b, uint32_t dtype, const void *data, uint64_t count, uint32_t *index);

/* Append a layer record of LBR_LAYER_FIELDS u32 (fields LBR_LAYER_RESERVED.. must be 0,
 * checked by lbm_build). *index (if non-NULL) receives its position. */
lb_status lbm_add_layer(lbm_builder *b, const uint32_t fields[LBR_LAYER_FIELDS], uint32_t *index);

/* Serialise: header, tables, then each array at the next multiple of LBR_ALIGN in the
 * order added, zero padding between, the file ending with the last array's last byte;
 * all CRCs filled in. *out is 64-byte aligned (so lbr_file_open's data pointers into it
 * are too), owned by the caller and released with free(). On error *out is NULL. */
lb_status lbm_build(const lbm_builder *b, uint8_t **out, size_t *len);

/* lbm_build, then write the bytes to `path` atomically (lb_write_atomic: a temporary in
 * the same directory, fsync, rename). On failure nothing is left at or beside path, and
 * an existing file at path is unchanged. */
lb_status lbm_write_file(const lbm_builder *b, const char *path);

#endif
