/* s8u8_ref.c - the definition of the s8u8 family: a plain dot product of uint8 activation
 * codes and int8 weights over the K real elements of each byte row. int32 is exact: a
 * partial sum covers at most 65536 products of magnitude <= 255 * 128, below 2^31. */
#include "kernels/lbr_kernels.h"
#include "kernels/lbr_kernels_impl.h"

void lbr_s8u8_ref(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc) {
    const size_t KB = (size_t)lbr_bytes(K);
    for (int m = 0; m < M; m++) {
        const uint8_t *a = A + (size_t)m * KB;
        for (int n = 0; n < N; n++) {
            const int8_t *w = W + (size_t)n * KB;
            int32_t acc = 0;
            for (int k = 0; k < K; k++) acc += (int32_t)a[k] * w[k];
            C[(size_t)m * ldc + n] = acc;
        }
    }
}
