/* s8u8_avx2.c - s8u8 with AVX2.
 * vpmaddubsw would take 32 products per instruction but saturates its int16 pair sums
 * (2 * 255 * 127 > 32767), so both rows are widened to int16 as they are loaded
 * (vpmovzxbw / vpmovsxbw from memory: the widening is the load) and vpmaddwd adds pairs
 * of exact products into int32 lanes.
 * Blocking: a 4 x 2 tile keeps 4 widened A vectors and streams the 2 W rows, so each A
 * load feeds 2 vpmaddwd and each W load 4; 8 accumulators + 4 A + 1 W + 1 product = 14
 * of the 16 ymm registers. Edge tiles are the same code specialised for their size
 * (tile11 to tile42 below), so M = 1 or N = 1 computes nothing twice. W is taken in
 * blocks that stay in L2 while all of A passes over them (lbr_bytes_nblock).
 * No overflow: every int32 lane, and every partial sum of the final reduction, adds a
 * subset of the K products a_k w_k, and |sum| <= 65536 * 255 * 128 < 2^31. */
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

/* C[0, mr) x [0, nr) from A rows [0, mr) and W rows [0, nr) */
LBR_TARGET_AVX2 LBR_INLINE void tile(const int mr, const int nr, size_t KB, const uint8_t *A, const int8_t *W,
                                     int32_t *C, int ldc) {
    __m256i acc[MR * NR];
    LBR_UNROLL
    for (int t = 0; t < MR * NR; t++) acc[t] = _mm256_setzero_si256();
    for (size_t k = 0; k < KB; k += 16) {
        __m256i a[MR];
        LBR_UNROLL
        for (int i = 0; i < mr; i++) a[i] = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(A + i * KB + k)));
        LBR_UNROLL
        for (int j = 0; j < nr; j++) {
            const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(W + j * KB + k)));
            LBR_UNROLL
            for (int i = 0; i < mr; i++)
                acc[i * NR + j] = _mm256_add_epi32(acc[i * NR + j], _mm256_madd_epi16(a[i], w));
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
#define TILE_ARGS size_t KB, const uint8_t *A, const int8_t *W, int32_t *C, int ldc
#define TILE(i, j) \
    LBR_TARGET_AVX2 __attribute__((noinline)) static void tile##i##j(TILE_ARGS) { tile(i, j, KB, A, W, C, ldc); }
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

LBR_TARGET_AVX2 void lbr_s8u8_avx2(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc) {
    const size_t KB = (size_t)lbr_bytes(K);
    const int NB = lbr_bytes_nblock(KB, NR);
    for (int n0 = 0; n0 < N; n0 += NB) {
        const int n1 = N - n0 < NB ? N : n0 + NB;
        for (int m = 0; m < M; m += MR) {
            const int mr = M - m < MR ? M - m : MR;
            for (int n = n0; n < n1; n += NR) {
                const int nr = n1 - n < NR ? n1 - n : NR;
                tiles[mr - 1][nr - 1](KB, A + (size_t)m * KB, W + (size_t)n * KB, C + (size_t)m * ldc + n, ldc);
            }
        }
    }
}
#endif
