/* xnor_avx2.c - xnor with the nibble-lookup popcount (vpshufb) and vpsadbw (Mula).
 * A tile is 2 rows of A x 2 rows of W: a step loads 4 vectors for 4 xor + popcount
 * products. The lookup popcount costs ~7 ALU operations per vector, so the loop is
 * ALU-bound and a larger tile would only add register pressure (16 ymm: 2 constants,
 * 4 byte counters, 4 operands, temporaries).
 * Byte counters gain at most 8 per step, so they are summed into 64-bit lanes (vpsadbw)
 * every 31 steps (31 * 8 = 248 <= 255) rather than every step; a 64-bit lane holds at
 * most K <= 65536. The K tail (KW not a multiple of 4) is one step of masked loads
 * (vpmaskmovq does not touch the masked words): masked lanes are zero and xor to zero.
 * The full steps use plain loads, since vpmaskmovq costs more than a load here. */
#include "kernels/popcount/popcount_impl.h"

#if LBR_X86
#define MR 2
#define NR 2
#define CHUNK 31   /* steps between byte-counter flushes */

/* rm, rn are constants in every instantiation: the loops run to MR, NR so that both
 * compilers unroll them before inlining, and the guards fold away after it. */
LBR_INLINE LBR_TARGET_AVX2 void xnor_step(int rm, int rn, __m256i cnt[MR][NR], const __m256i a[MR],
                                           const __m256i w[NR], __m256i lut, __m256i low4) {
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NR; j++)
            if (i < rm && j < rn)
                cnt[i][j] = _mm256_add_epi8(cnt[i][j], lbr_popcnt_nibbles(_mm256_xor_si256(a[i], w[j]), lut, low4));
    }
}

LBR_INLINE LBR_TARGET_AVX2 void xnor_tile(int rm, int rn, int K, const uint64_t *A, const uint64_t *W, int32_t *C,
                                           int ldc) {
    const int KW = lbr_words(K), kv = KW & ~3;
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i acc[MR][NR], cnt[MR][NR], a[MR], w[NR];
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NR; j++) acc[i][j] = cnt[i][j] = _mm256_setzero_si256();
    }
    for (int k0 = 0; k0 < kv; k0 += 4 * CHUNK) {
        const int k1 = kv - k0 < 4 * CHUNK ? kv : k0 + 4 * CHUNK;
        for (int k = k0; k < k1; k += 4) {
            LBR_UNROLL
            for (int i = 0; i < MR; i++)
                if (i < rm) a[i] = _mm256_loadu_si256((const __m256i *)(A + (size_t)i * KW + k));
            LBR_UNROLL
            for (int j = 0; j < NR; j++)
                if (j < rn) w[j] = _mm256_loadu_si256((const __m256i *)(W + (size_t)j * KW + k));
            xnor_step(rm, rn, cnt, a, w, lut, low4);
        }
        lbr_popcnt_flush(rm, rn, acc, cnt);
    }
    if (kv < KW) {
        const __m256i mk = _mm256_cmpgt_epi64(_mm256_set1_epi64x(KW - kv), _mm256_setr_epi64x(0, 1, 2, 3));
        LBR_UNROLL
        for (int i = 0; i < MR; i++)
            if (i < rm) a[i] = _mm256_maskload_epi64((const long long *)(A + (size_t)i * KW + kv), mk);
        LBR_UNROLL
        for (int j = 0; j < NR; j++)
            if (j < rn) w[j] = _mm256_maskload_epi64((const long long *)(W + (size_t)j * KW + kv), mk);
        xnor_step(rm, rn, cnt, a, w, lut, low4);
        lbr_popcnt_flush(rm, rn, acc, cnt);
    }
    /* lanes (0,0), (0,1), (1,0), (1,1), unused ones zero; C = K - 2 d */
    const __m256i d = lbr_hsum4_epi64(acc[0][0], acc[0][1], acc[1][0], acc[1][1]);
    int32_t out[MR * NR];
    const __m256i c = _mm256_sub_epi64(_mm256_set1_epi64x(K), _mm256_add_epi64(d, d));
    _mm_storeu_si128((__m128i *)out, lbr_narrow4_epi64(c));
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NR; j++)
            if (i < rm && j < rn) C[(size_t)i * ldc + j] = out[i * NR + j];
    }
}

LBR_TARGET_AVX2 void lbr_xnor_avx2(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C, int ldc) {
    const int KW = lbr_words(K);
    for (int m = 0; m < M; m += MR) {
        const int rm = M - m < MR ? M - m : MR;
        const uint64_t *a = A + (size_t)m * KW;
        for (int n = 0; n < N; n += NR) {
            const int rn = N - n < NR ? N - n : NR;
            const uint64_t *w = W + (size_t)n * KW;
            int32_t *c = C + (size_t)m * ldc + n;
            LBR_TILE_SWITCH_2x2(rm, rn, xnor_tile, K, a, w, c, ldc)
        }
    }
}
#endif
