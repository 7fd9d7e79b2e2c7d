/* bitserial_ref.c - the definition of the bitserial family: an unsigned b-bit code is
 * sum_p 2^p a_p, and a ternary weight is P - Q (P: w = +1, Q: w = -1), so the dot product
 * splits into one signed popcount difference per activation plane, weighted by 2^p.
 * The plane sums are multiplied, not shifted: a difference can be negative, and shifting
 * a negative int left is undefined in C. */
#include "kernels/lbr_kernels.h"
#include "kernels/lbr_kernels_impl.h"

void lbr_bitserial_ref(int M, int N, int K, int abits, const uint64_t *A, const uint64_t *P, const uint64_t *Q,
                       int32_t *C, int ldc) {
    const int KW = lbr_words(K);
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            const uint64_t *p = P + (size_t)n * KW, *q = Q + (size_t)n * KW;
            int32_t acc = 0;
            for (int b = 0; b < abits; b++) {
                const uint64_t *a = A + ((size_t)m * abits + b) * KW;
                int d = 0;
                for (int k = 0; k < KW; k++) d += __builtin_popcountll(a[k] & p[k]) - __builtin_popcountll(a[k] & q[k]);
                acc += d * (1 << b);
            }
            C[(size_t)m * ldc + n] = acc;
        }
    }
}

/* The lanes layout (lbr_kernels.h): blocks of 8 outputs, per word k the 8 P words then
 * the 8 Q words, outputs past N as zero rows. */
size_t lbr_bitserial_lanes_words(int N, int K) { return (size_t)((N + 7) / 8) * lbr_words(K) * 16; }

void lbr_bitserial_pack_lanes(int N, int K, const uint64_t *P, const uint64_t *Q, uint64_t *out) {
    const int KW = lbr_words(K), NP = (N + 7) / 8 * 8; /* outputs with the padding */
    for (int n = 0; n < NP; n++)
        for (int k = 0; k < KW; k++) {
            out[lbr_bitserial_lanes_index(K, n, k, 0)] = n < N ? P[(size_t)n * KW + k] : 0;
            out[lbr_bitserial_lanes_index(K, n, k, 1)] = n < N ? Q[(size_t)n * KW + k] : 0;
        }
}
