/* shift_avx2.c - shift with AVX2, without multiplications.
 * AVX2's only variable shift is per 32-bit lane (vpsllvd), so 8 activations are widened
 * to int32 as they are loaded (vpmovzxbd) and each product is three instructions: shift
 * by |s| - 1, vpsignd by s, add. The count |s| - 1 is -1 for s = 0, which vpsllvd reads
 * as 2^32 - 1 > 31 and turns into 0, so zero weights need no mask.
 * Blocking: a 4 x 2 tile keeps 4 widened A vectors and streams the 2 shift rows, whose
 * counts (vpmovsxbd, vpabsd, vpsubd) are then shared by the 4 A rows; 8 accumulators +
 * 4 A + s + count + 1 product = 15 of the 16 ymm registers. Edge tiles are the same code
 * specialised for their size (tile11 to tile42 below). S is taken in blocks that stay in L2
 * while all of A passes over them (lbr_bytes_nblock).
 * No overflow: every int32 lane, and every partial sum of the final reduction, adds a
 * subset of the K terms, each at most 255 << 7 = 32640 in magnitude, and
 * |sum| <= 65536 * 32640 < 2^31. */
#include "kernels/bytes/bytes_impl.h"

#if LBR_X86
#include <immintrin.h>

#define MR 4
#define NR 2

/* the sums of four int32 vectors, one in each lane */
LBR_TARGET_AVX2 LBR_INLINE __m128i hsum4(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    const __m256i s = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

/* C[0, mr) x [0, nr) from A rows [0, mr) and shift rows [0, nr) */
LBR_TARGET_AVX2 LBR_INLINE void tile(const int mr, const int nr, size_t KB, const uint8_t *A, const int8_t *S,
                                     int32_t *C, int ldc) {
    const __m256i one = _mm256_set1_epi32(1);
    __m256i acc[MR * NR];
    LBR_UNROLL
    for (int t = 0; t < MR * NR; t++) acc[t] = _mm256_setzero_si256();
    for (size_t k = 0; k < KB; k += 8) {
        __m256i a[MR];
        LBR_UNROLL
        for (int i = 0; i < mr; i++) a[i] = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(A + i * KB + k)));
        LBR_UNROLL
        for (int j = 0; j < nr; j++) {
            const __m256i s = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(S + j * KB + k)));
            const __m256i count = _mm256_sub_epi32(_mm256_abs_epi32(s), one);
            LBR_UNROLL
            for (int i = 0; i < mr; i++) {
                const __m256i x = _mm256_sllv_epi32(a[i], count);
                acc[i * NR + j] = _mm256_add_epi32(acc[i * NR + j], _mm256_sign_epi32(x, s));
            }
        }
    }
    LBR_UNROLL
    for (int t = 0; t < MR * NR; t++) LBR_PIN(acc[t]);
    int32_t out[MR * NR];
    LBR_UNROLL
    for (int t = 0; t < (mr * NR + 3) / 4; t++)
        _mm_storeu_si128((__m128i *)(out + 4 * t), hsum4(acc[4 * t], acc[4 * t + 1], acc[4 * t + 2], acc[4 * t + 3]));
    LBR_UNROLL
    for (int i = 0; i < mr; i++)
        LBR_UNROLL
        for (int j = 0; j < nr; j++) C[(size_t)i * ldc + j] = out[i * NR + j];
}

/* One function per tile size, each register-allocated on its own: inlined together into
 * one function, GCC 12 spills accumulators in the full tile's K loop. */
#define TILE_ARGS size_t KB, const uint8_t *A, const int8_t *S, int32_t *C, int ldc
#define TILE(i, j) \
    LBR_TARGET_AVX2 __attribute__((noinline)) static void tile##i##j(TILE_ARGS) { tile(i, j, KB, A, S, C, ldc); }
TILE(1, 1) TILE(1, 2)
TILE(2, 1) TILE(2, 2)
TILE(3, 1) TILE(3, 2)
TILE(4, 1) TILE(4, 2)
static void (*const tiles[MR][NR])(TILE_ARGS) = {
    {tile11, tile12},
    {tile21, tile22},
    {tile31, tile32},
    {tile41, tile42},
};

LBR_TARGET_AVX2 void lbr_shift_avx2(int M, int N, int K, const uint8_t *A, const int8_t *S, int32_t *C, int ldc) {
    const size_t KB = (size_t)lbr_bytes(K);
    const int NB = lbr_bytes_nblock(KB, NR);
    for (int n0 = 0; n0 < N; n0 += NB) {
        const int n1 = N - n0 < NB ? N : n0 + NB;
        for (int m = 0; m < M; m += MR) {
            const int mr = M - m < MR ? M - m : MR;
            for (int n = n0; n < n1; n += NR) {
                const int nr = n1 - n < NR ? n1 - n : NR;
                tiles[mr - 1][nr - 1](KB, A + (size_t)m * KB, S + (size_t)n * KB, C + (size_t)m * ldc + n, ldc);
            }
        }
    }
}
#endif
