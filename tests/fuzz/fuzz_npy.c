/* libFuzzer target: the .npy parser on arbitrary bytes. */
#include "lowbit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lb_npy a;
    lb_status s = lb_npy_parse(data, size, "fuzz.npy", &a);
    if (s != LB_OK) {
        /* a failure must leave nothing behind and say why */
        if (a.data || !lb_last_error()[0]) abort();
        return 0;
    }
    size_t esize = !strcmp(a.dtype, "u1") ? 1 : !strcmp(a.dtype, "f4") || !strcmp(a.dtype, "i4") ? 4
                 : !strcmp(a.dtype, "i8") ? 8 : 0;
    if (!esize || a.ndim < 0 || a.ndim > 8 || a.size < 0) abort();
    uint64_t n = 1;
    for (int i = 0; i < a.ndim; i++) n *= (uint64_t)a.shape[i];
    if (n != (uint64_t)a.size) abort();
    /* touch every byte so ASan sees an undersized buffer */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < (size_t)a.size * esize; i++) sink ^= ((const uint8_t *)a.data)[i];
    (void)sink;
    lb_npy_free(&a);
    return 0;
}
