/* libFuzzer target: the IDX parser on arbitrary bytes. Inputs that look like gzip also go
 * through lb_idx_read (via a temporary file, the only way in) so the decompression path
 * is fuzzed too. */
#include "lowbit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check(lb_status s, void *data, int dtype, int ndim, const int64_t dims[4]) {
    if (s != LB_OK) {
        /* a failure must leave nothing behind and say why */
        if (data || !lb_last_error()[0]) abort();
        return;
    }
    if (!data || ndim < 1 || ndim > 4 || dtype < 0x08 || dtype > 0x0E) abort();
    for (int i = 0; i < ndim; i++)
        if (dims[i] <= 0) abort();
    free(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    void *out = NULL;
    int dtype = 0, ndim = 0;
    int64_t dims[4];
    lb_status s = lb_idx_parse(data, size, "fuzz.idx", &out, &dtype, &ndim, dims);
    check(s, out, dtype, ndim, dims);

    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        char path[] = "/tmp/lowbit-fuzz-idx-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0) return 0;
        FILE *f = fdopen(fd, "wb");
        if (!f) {
            close(fd);
            unlink(path);
            return 0;
        }
        size_t w = fwrite(data, 1, size, f);
        fclose(f);
        if (w == size) {
            out = NULL;
            s = lb_idx_read(path, &out, &dtype, &ndim, dims);
            check(s, out, dtype, ndim, dims);
        }
        unlink(path);
    }
    return 0;
}
