/* .lbm builder (lbm_write.h). Arrays are copied in little-endian order with their CRC
 * at lbm_add_array, so lbm_build only lays out and copies. */
#include "export/lbm_write.h"

#include "lb_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct lbm_array_rec {
    uint32_t dtype, crc;
    uint64_t count;
    uint8_t *data;   /* count * size bytes, little-endian; NULL when count is 0 */
};

static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int host_is_le(void) {
    const uint16_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

void lbm_builder_init(lbm_builder *b) { memset(b, 0, sizeof *b); }

void lbm_builder_free(lbm_builder *b) {
    for (uint32_t i = 0; i < b->n_arrays; i++) free(b->arrays[i].data);
    free(b->arrays);
    free(b->layers);
    lbm_builder_init(b);
}

lb_status lbm_add_array(lbm_builder *b, uint32_t dtype, const void *data, uint64_t count, uint32_t *index) {
    const uint32_t size = lbr_dtype_size(dtype);
    if (size == 0) return lb_fail(LB_ERR_INVALID, "lbm: array %" PRIu32 ": unknown dtype %" PRIu32, b->n_arrays, dtype);
    if (b->n_arrays >= LBR_MAX_ARRAYS)
        return lb_fail(LB_ERR_INVALID, "lbm: more than %u arrays", LBR_MAX_ARRAYS);
    if (count > SIZE_MAX / size)
        return lb_fail(LB_ERR_INVALID, "lbm: array %" PRIu32 ": %" PRIu64 " elements do not fit in memory", b->n_arrays,
                       count);
    if (count && !data) return lb_fail(LB_ERR_INVALID, "lbm: array %" PRIu32 ": data is NULL", b->n_arrays);
    if (b->n_arrays == b->arrays_cap) {
        uint32_t cap = b->arrays_cap ? 2 * b->arrays_cap : 16;
        struct lbm_array_rec *a = realloc(b->arrays, cap * sizeof *a);
        if (!a) return lb_fail(LB_ERR_NOMEM, "lbm: out of memory for the array table");
        b->arrays = a;
        b->arrays_cap = cap;
    }
    const size_t bytes = (size_t)count * size;
    uint8_t *copy = NULL;
    if (bytes) {
        copy = malloc(bytes);
        if (!copy) return lb_fail(LB_ERR_NOMEM, "lbm: array %" PRIu32 ": cannot allocate %zu bytes", b->n_arrays, bytes);
        memcpy(copy, data, bytes);
        /* the file is little-endian whatever the host: reverse each element elsewhere */
        if (size > 1 && !host_is_le())
            for (size_t e = 0; e < bytes; e += size)
                for (uint32_t i = 0; i < size / 2; i++) {
                    uint8_t t = copy[e + i];
                    copy[e + i] = copy[e + size - 1 - i];
                    copy[e + size - 1 - i] = t;
                }
    }
    b->arrays[b->n_arrays] = (struct lbm_array_rec){dtype, lbr_crc32(copy, bytes, 0), count, copy};
    if (index) *index = b->n_arrays;
    b->n_arrays++;
    return LB_OK;
}

lb_status lbm_add_layer(lbm_builder *b, const uint32_t fields[LBR_LAYER_FIELDS], uint32_t *index) {
    if (b->n_layers >= LBR_MAX_LAYERS) return lb_fail(LB_ERR_INVALID, "lbm: more than %u layers", LBR_MAX_LAYERS);
    if (b->n_layers == b->layers_cap) {
        uint32_t cap = b->layers_cap ? 2 * b->layers_cap : 16;
        uint32_t(*l)[LBR_LAYER_FIELDS] = realloc(b->layers, cap * sizeof *l);
        if (!l) return lb_fail(LB_ERR_NOMEM, "lbm: out of memory for the layer table");
        b->layers = l;
        b->layers_cap = cap;
    }
    memcpy(b->layers[b->n_layers], fields, sizeof b->layers[0]);
    if (index) *index = b->n_layers;
    b->n_layers++;
    return LB_OK;
}

static uint64_t align_up(uint64_t x) { return (x + LBR_ALIGN - 1) / LBR_ALIGN * LBR_ALIGN; }

lb_status lbm_build(const lbm_builder *b, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    /* Layout first; the total must fit size_t (each array's bytes do, checked when
     * added, but not necessarily their sum on a 32-bit host). */
    const uint64_t tables_end =
        LBR_HEADER_BYTES + (uint64_t)b->n_arrays * LBR_ARRAY_BYTES + (uint64_t)b->n_layers * LBR_LAYER_BYTES;
    uint64_t end = tables_end;
    for (uint32_t i = 0; i < b->n_arrays; i++) {
        const uint64_t bytes = b->arrays[i].count * lbr_dtype_size(b->arrays[i].dtype);
        if (end > (uint64_t)SIZE_MAX - LBR_ALIGN || bytes > (uint64_t)SIZE_MAX - align_up(end))
            return lb_fail(LB_ERR_INVALID, "lbm: array %" PRIu32 ": the file would exceed %zu bytes", i, (size_t)SIZE_MAX);
        end = align_up(end) + bytes;
    }
    const size_t n = (size_t)end;
    /* zeroed: the padding between arrays and the reserved fields are 0 */
    uint8_t *buf = lb_calloc(1, n);
    if (!buf) return lb_fail(LB_ERR_NOMEM, "lbm: cannot allocate %zu bytes", n);

    memcpy(buf + LBR_H_MAGIC, LBR_MAGIC, 4);
    wr32(buf + LBR_H_VERSION, LBR_VERSION);
    wr32(buf + LBR_H_N_LAYERS, b->n_layers);
    wr32(buf + LBR_H_N_ARRAYS, b->n_arrays);
    wr64(buf + LBR_H_FILE_SIZE, end);
    wr32(buf + LBR_H_IN_C, b->in_c);
    wr32(buf + LBR_H_IN_H, b->in_h);
    wr32(buf + LBR_H_IN_W, b->in_w);
    wr32(buf + LBR_H_N_OUTPUTS, b->n_outputs);
    wr64(buf + LBR_H_ARENA_FIXED, b->arena_fixed);
    wr64(buf + LBR_H_ARENA_PER_SAMPLE, b->arena_per_sample);

    uint64_t pos = tables_end;
    for (uint32_t i = 0; i < b->n_arrays; i++) {
        const struct lbm_array_rec *a = &b->arrays[i];
        const size_t bytes = (size_t)a->count * lbr_dtype_size(a->dtype);
        const uint64_t off = align_up(pos);
        uint8_t *e = buf + LBR_HEADER_BYTES + (size_t)i * LBR_ARRAY_BYTES;
        wr32(e + LBR_A_DTYPE, a->dtype);
        wr64(e + LBR_A_OFFSET, off);
        wr64(e + LBR_A_COUNT, a->count);
        wr32(e + LBR_A_CRC, a->crc);
        if (bytes) memcpy(buf + off, a->data, bytes);
        pos = off + bytes;
    }
    uint8_t *lt = buf + LBR_HEADER_BYTES + (size_t)b->n_arrays * LBR_ARRAY_BYTES;
    for (uint32_t l = 0; l < b->n_layers; l++)
        for (int k = 0; k < LBR_LAYER_FIELDS; k++) wr32(lt + (size_t)l * LBR_LAYER_BYTES + 4 * (size_t)k, b->layers[l][k]);

    wr32(buf + LBR_H_TABLES_CRC, lbr_crc32(buf + LBR_HEADER_BYTES, (size_t)(tables_end - LBR_HEADER_BYTES), 0));
    wr32(buf + LBR_H_HEADER_CRC, lbr_crc32(buf, LBR_H_HEADER_CRC, 0));

    /* The loader is the definition of a valid file: whatever it refuses (a zero input
     * dimension, a reserved layer field) is refused here, with its message. */
    lbr_file f;
    char msg[256];
    if (lbr_file_open(&f, buf, n, msg, sizeof msg) != LBR_OK) {
        free(buf);
        return lb_fail(LB_ERR_INVALID, "lbm: %s", msg);
    }
    *out = buf;
    *len = n;
    return LB_OK;
}

lb_status lbm_write_file(const lbm_builder *b, const char *path) {
    uint8_t *buf;
    size_t n;
    lb_status s = lbm_build(b, &buf, &n);
    if (s != LB_OK) {
        lb_error_prefix(path);
        return s;
    }
    const void *chunk = buf;
    s = lb_write_atomic(path, 1, &chunk, &n);
    free(buf);
    return s;
}
