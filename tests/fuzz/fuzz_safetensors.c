/* libFuzzer target for the safetensors parser (DESIGN.md section 6). Without clang's
 * fuzzer it links with replay_main.c and replays tests/fuzz/corpus/safetensors/.
 *
 * Beyond "no crash", an accepted file must keep the parser's promises: every tensor
 * inside the data section with the size its dtype and shape imply, tensors tiling the
 * data section, names unique. Reading every tensor byte lets ASan catch a bad offset. */
#include "lb_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lb_st_file f;
    if (lb_st_parse(data, size, "fuzz.safetensors", &f) != LB_OK) {
        /* a failed parse leaves nothing to free, but freeing must still be safe */
        if (f.n != 0 || f.tensors || f.n_meta != 0 || !lb_last_error()[0]) abort();
        lb_st_free(&f);
        return 0;
    }
    if (f.data < data || f.data + f.data_len != data + size) abort();
    uint64_t covered = 0;
    volatile uint8_t sink = 0;
    for (int i = 0; i < f.n; i++) {
        const lb_st_tensor *t = &f.tensors[i];
        if (t->begin > t->end || t->end > f.data_len || t->ndim < 0 || t->ndim > 8) abort();
        for (uint64_t b = t->begin; b < t->end; b++) sink ^= f.data[b];
        covered += t->end - t->begin;
        if (lb_st_find(&f, t->name) != t) abort(); /* unique names */
    }
    if (covered != f.data_len) abort(); /* no hole, no overlap */
    for (int i = 0; i < f.n_meta; i++)
        if (lb_st_meta(&f, f.meta_keys[i]) != f.meta_vals[i]) abort();
    (void)sink;
    lb_st_free(&f);
    return 0;
}
