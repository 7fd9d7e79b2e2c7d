/* shift_ref.c - the definition of the shift family: code s > 0 is the weight 2^(s-1) and
 * s < 0 is -2^(-s-1), so each product is the activation shifted left by |s| - 1 and added
 * or subtracted. The shift is applied to the non-negative activation before the sign, as
 * shifting a negative int left is undefined in C. Codes with |s| > 8 are outside the
 * format (the packer never writes them) and are not defined here. int32 is exact:
 * |C| <= 65536 * (255 << 7) < 2^31. */
#include "kernels/lbr_kernels.h"
#include "kernels/lbr_kernels_impl.h"

void lbr_shift_ref(int M, int N, int K, const uint8_t *A, const int8_t *S, int32_t *C, int ldc) {
    const size_t KB = (size_t)lbr_bytes(K);
    for (int m = 0; m < M; m++) {
        const uint8_t *a = A + (size_t)m * KB;
        for (int n = 0; n < N; n++) {
            const int8_t *s = S + (size_t)n * KB;
            int32_t acc = 0;
            for (int k = 0; k < K; k++) {
                if (s[k] > 0) acc += (int32_t)a[k] << (s[k] - 1);
                else if (s[k] < 0) acc -= (int32_t)a[k] << (-s[k] - 1);
            }
            C[(size_t)m * ldc + n] = acc;
        }
    }
}
