/* xnor_ref.c - the definition of the xnor family: with {-1, +1} stored as bits (1 = +1),
 * a product is +1 where the bits agree and -1 where they differ, so a row's dot product is
 * (K - d) - d = K - 2d, d = popcount(A xor W). Padding bits at k >= K are zero in both
 * rows, so they agree without counting as differences and K (not 64 KW) is the length.
 * Also the packing into the xnor lanes layout (no ref of its own: lbr_xnor_ref on the
 * rows the layout is packed from is the lanes kernels' definition). */
#include "kernels/lbr_kernels.h"
#include "kernels/lbr_kernels_impl.h"

void lbr_xnor_ref(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C, int ldc) {
    const int KW = lbr_words(K);
    for (int m = 0; m < M; m++) {
        const uint64_t *a = A + (size_t)m * KW;
        for (int n = 0; n < N; n++) {
            const uint64_t *w = W + (size_t)n * KW;
            int d = 0;
            for (int k = 0; k < KW; k++) d += __builtin_popcountll(a[k] ^ w[k]);
            C[(size_t)m * ldc + n] = K - 2 * d;
        }
    }
}

/* The xnor lanes layout (lbr_kernels.h): blocks of 8 outputs, per word k the block's 8
 * words, outputs past N as zero rows. */
size_t lbr_xnor_lanes_words(int N, int K) { return (size_t)((N + 7) / 8) * lbr_words(K) * 8; }

void lbr_xnor_pack_lanes(int N, int K, const uint64_t *W, uint64_t *out) {
    const int KW = lbr_words(K), NP = (N + 7) / 8 * 8; /* outputs with the padding */
    for (int n = 0; n < NP; n++)
        for (int k = 0; k < KW; k++) out[lbr_xnor_lanes_index(K, n, k)] = n < N ? W[(size_t)n * KW + k] : 0;
}
