/* libFuzzer target for the .lbm container loader (runtime/lbr_file.c). Without clang's
 * fuzzer it links with replay_main.c and replays tests/fuzz/corpus/lbm/ (written by
 * `test_lbm_file --write-corpus`; valid_model_* by `test_runtime --write-corpus`;
 * valid_token_lstm and valid_token_gru are `lowbit export`s of tiny language models:
 * the LSTM in Bit-RNN's form with balanced:2/2, so its embedding is a table of codes,
 * the GRU with uniform:2/2, both trained one epoch on tests/cli_lm.sh's corpus).
 *
 * A mutated file almost never keeps its CRCs, which would stop the fuzzer at the first
 * checksum. So each input is opened twice: as is, and as a copy whose header, tables
 * and array CRCs are recomputed wherever the (untrusted) counts and offsets let them be
 * located, which lets mutations reach every later check. The copy sits one byte past an
 * aligned address, so unaligned field reads are exercised as well.
 *
 * An accepted file must keep the loader's promises: every array inside the buffer with
 * the bytes its dtype and count imply, aligned, in order and not overlapping, after the
 * tables; reserved layer fields 0; out-of-range queries answered without a read. Reading
 * every byte lets ASan catch a bad pointer. A refused one leaves a message and *f zeroed.
 *
 * An accepted container then goes to the executor (runtime/lbr.c): lbr_plan at
 * max_batch 2 and, when it accepts the layers and the arena is below 64 MiB, lbr_load
 * into an exact-size arena and one lbr_run of zeros (inputs up to 2^20 floats, and up to
 * 2^24 multiply-adds per sample so a replay stays quick), or for a token model two steps
 * of lbr_run_tokens. A refusal must come with a
 * message. */
#include "lbr.h"
#include "lbr_file.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* plan, load and run an opened file; any refusal must say why */
static void run_model(const uint8_t *buf, size_t len, const lbr_file *f) {
    char err[256] = "";
    size_t need = 0;
    if (lbr_plan(buf, len, 2, NULL, &need, err, sizeof err) != LBR_OK) {
        if (!err[0] || need) abort();
        return;
    }
    if (need == 0 || need >= ((size_t)64 << 20)) return;
    const uint64_t nin = (uint64_t)f->in_c * f->in_h * f->in_w * 2;
    if (nin > ((uint64_t)1 << 20)) return;
    /* an exact-size block: ASan's redzone starts at need */
    void *arena = aligned_alloc(64, (need + 63) / 64 * 64);
    float *x = calloc((size_t)nin, sizeof(float)), *out = malloc(sizeof(float) * 2 * (size_t)f->n_outputs);
    lbr_model *m = NULL;
    if (arena && x && out) {
        if (lbr_load(&m, buf, len, 2, arena, need, NULL, err, sizeof err) != LBR_OK || !m) abort();
        if (lbr_num_outputs(m) != (int)f->n_outputs || lbr_num_layers(m) != (int)f->n_layers) abort();
        uint64_t macs = 0;
        for (int i = 0; i < lbr_num_layers(m); i++) {
            lbr_layer_info li;
            if (lbr_layer(m, i, &li) != LBR_OK || (unsigned)li.path >= LBR_PATH_COUNT) abort();
            macs += li.macs < ((uint64_t)1 << 40) ? li.macs : ((uint64_t)1 << 40);
        }
        if (macs <= ((uint64_t)1 << 24)) {
            if (!lbr_is_token_model(m, NULL)) {
                if (lbr_run(m, x, 2, out) != LBR_OK) abort();
            } else { /* token 0 for two streams, two steps: the second reads the carried state */
                const int32_t tok[2] = {0, 0};
                if (lbr_run(m, x, 2, out) != LBR_ERR_ARG || lbr_run_tokens(m, tok, 2, out) != LBR_OK ||
                    lbr_run_tokens(m, tok, 2, out) != LBR_OK)
                    abort();
            }
        }
    }
    free(out);
    free(x);
    free(arena);
}

static void check(const uint8_t *buf, size_t len) {
    lbr_file f;
    char err[256];
    memset(&f, 0x5A, sizeof f);
    if (lbr_file_open(&f, buf, len, err, sizeof err) != LBR_OK) {
        if (!err[0] || f.n_arrays || f.n_layers || f.base || f.layers) abort();
        lbr_array a;
        if (lbr_file_array(&f, 0, &a) == LBR_OK || lbr_layer_field(&f, 0, 0) != 0) abort();
        return;
    }
    if (err[0] || f.base != buf || f.file_size != len || f.version != LBR_VERSION) abort();
    const uint64_t tables_end = 64 + 32 * (uint64_t)f.n_arrays + 128 * (uint64_t)f.n_layers;
    if (tables_end > len || f.layers != buf + 64 + 32 * (size_t)f.n_arrays) abort();
    if (!f.in_c || !f.in_h || !f.in_w || !f.n_outputs) abort();
    if ((uint64_t)f.in_c * f.in_h > LBR_MAX_INPUT || (uint64_t)f.in_c * f.in_h * f.in_w > LBR_MAX_INPUT) abort();
    if (f.arena_fixed > LBR_MAX_ARENA || f.arena_per_sample > LBR_MAX_ARENA) abort();
    volatile uint8_t sink = 0;
    uint64_t prev_end = tables_end;
    for (uint32_t i = 0; i < f.n_arrays; i++) {
        lbr_array a;
        if (lbr_file_array(&f, i, &a) != LBR_OK) abort();
        const uint64_t bytes = a.count * lbr_dtype_size(a.dtype);
        if (!lbr_dtype_size(a.dtype) || a.offset % LBR_ALIGN || a.offset < prev_end || a.offset > len ||
            bytes > len - a.offset || a.data != buf + a.offset)
            abort();
        if (lbr_crc32(a.data, (size_t)bytes, 0) != rd32(buf + 64 + 32 * (size_t)i + 24)) abort();
        for (uint64_t k = 0; k < bytes; k++) sink ^= ((const uint8_t *)a.data)[k];
        prev_end = a.offset + bytes;
    }
    lbr_array a;
    if (lbr_file_array(&f, f.n_arrays, &a) != LBR_ERR_ARG || a.data) abort();
    for (uint32_t l = 0; l < f.n_layers; l++)
        for (int k = 0; k < LBR_LAYER_FIELDS; k++) {
            uint32_t v = lbr_layer_field(&f, l, k);
            if (k >= LBR_LAYER_RESERVED && v) abort();
            sink ^= (uint8_t)v;
        }
    if (lbr_layer_field(&f, f.n_layers, 0) || lbr_layer_field(&f, 0, -1) || lbr_layer_field(&f, 0, LBR_LAYER_FIELDS))
        abort();
    (void)sink;
    run_model(buf, len, &f);
}

/* Recompute every CRC that can be located inside w[0 .. len), innermost first (arrays,
 * then the tables that hold their CRCs, then the header that holds the tables' CRC). */
static void fix_crcs(uint8_t *w, size_t len) {
    if (len < 64) return;
    uint64_t n_layers = rd32(w + LBR_H_N_LAYERS), n_arrays = rd32(w + LBR_H_N_ARRAYS);
    uint64_t tables_end = 64 + 32 * n_arrays + 128 * n_layers; /* < 2^40: no overflow */
    if (tables_end <= len) {
        for (uint64_t i = 0; i < n_arrays; i++) {
            uint8_t *e = w + 64 + 32 * i;
            uint32_t size = lbr_dtype_size(rd32(e + LBR_A_DTYPE));
            uint64_t off = rd64(e + LBR_A_OFFSET), count = rd64(e + LBR_A_COUNT);
            if (size && off <= len && count <= (len - off) / size)
                wr32(e + LBR_A_CRC, lbr_crc32(w + off, (size_t)(count * size), 0));
        }
        wr32(w + LBR_H_TABLES_CRC, lbr_crc32(w + 64, (size_t)(tables_end - 64), 0));
    }
    wr32(w + LBR_H_HEADER_CRC, lbr_crc32(w, LBR_H_HEADER_CRC, 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check(data, size);
    /* an exact-size heap block (one byte ahead for the misalignment) keeps ASan's
     * redzone right after the last byte */
    uint8_t *block = malloc(size + 1);
    if (!block) return 0;
    uint8_t *w = block + 1;
    if (size) memcpy(w, data, size);
    fix_crcs(w, size);
    check(w, size);
    free(block);
    return 0;
}
