/* bucket_ref.c - the bucket sums by their definition: unpack each code, add the
 * activation to the bucket its weight names. Bits at k >= K are zero, so the loop
 * stops at K and padding never reaches bucket 0. */
#include "kernels/lbr_kernels_impl.h"

/* the b-bit code at k of the bit-plane row starting at `row` (planes KW words apart) */
static int code_at(const uint64_t *row, int b, int KW, int k) {
    int v = 0;
    for (int p = 0; p < b; p++) v |= (int)((row[(size_t)p * KW + (k >> 6)] >> (k & 63)) & 1) << p;
    return v;
}

void lbr_bucket_ref(int M, int N, int K, int abits, int wbits, const uint64_t *A, const uint64_t *W, int32_t *C) {
    const int KW = lbr_words(K), J = 1 << wbits;
    for (int m = 0; m < M; m++) {
        const uint64_t *a = A + (size_t)m * abits * KW;
        for (int n = 0; n < N; n++) {
            const uint64_t *w = W + (size_t)n * wbits * KW;
            int32_t *c = C + ((size_t)m * N + n) * J;
            for (int j = 0; j < J; j++) c[j] = 0;
            for (int k = 0; k < K; k++) c[code_at(w, wbits, KW, k)] += code_at(a, abits, KW, k);
        }
    }
}
