/* s8u8_avx512.c - s8u8 with AVX-512BW, for CPUs without VNNI.
 * As in AVX2, vpmaddubsw saturates its int16 pair sums (2 * 255 * 127 > 32767), so 32
 * bytes of each row are widened to int16 as they are loaded (vpmovzxbw / vpmovsxbw) and
 * vpmaddwd adds pairs of exact products into 16 int32 lanes.
 * Blocking: a 4 x 4 tile keeps 4 widened A vectors and streams the 4 W rows, so each load
 * feeds 4 vpmaddwd; 16 accumulators + 4 A + 1 W + 1 product = 22 of the 32 zmm registers.
 * Edge tiles are the same code specialised for their size (tile11 to tile44 below).
 * W is taken in blocks that stay in L2 while all of A passes over them (lbr_bytes_nblock).
 * No overflow: every int32 lane, and every partial sum of the final reduction, adds a
 * subset of the K products a_k w_k, and |sum| <= 65536 * 255 * 128 < 2^31. */
#include "kernels/bytes/bytes_impl.h"

#if LBR_X86
#include <immintrin.h>

#define MR 4
#define NR 4

/* the sums of four int32 vectors, one in each lane; unpacks, not vphaddd, which has no
 * EVEX form and so would tie the accumulators to zmm0-15 */
LBR_TARGET_AVX512 LBR_INLINE __m128i hsum4(__m512i a, __m512i b, __m512i c, __m512i d) {
    const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    const __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* C[0, mr) x [0, nr) from A rows [0, mr) and W rows [0, nr) */
LBR_TARGET_AVX512 LBR_INLINE void tile(const int mr, const int nr, size_t KB, const uint8_t *A, const int8_t *W,
                                       int32_t *C, int ldc) {
    __m512i acc[MR * NR];
    LBR_UNROLL
    for (int t = 0; t < MR * NR; t++) acc[t] = _mm512_setzero_si512();
    for (size_t k = 0; k < KB; k += 32) {
        __m512i a[MR];
        LBR_UNROLL
        for (int i = 0; i < mr; i++) a[i] = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(A + i * KB + k)));
        LBR_UNROLL
        for (int j = 0; j < nr; j++) {
            const __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(W + j * KB + k)));
            LBR_UNROLL
            for (int i = 0; i < mr; i++)
                acc[i * NR + j] = _mm512_add_epi32(acc[i * NR + j], _mm512_madd_epi16(a[i], w));
        }
    }
    LBR_UNROLL
    for (int t = 0; t < MR * NR; t++) LBR_PIN(acc[t]);
    int32_t out[MR * NR];
    LBR_UNROLL
    for (int i = 0; i < mr; i++)
        _mm_storeu_si128((__m128i *)(out + 4 * i), hsum4(acc[4 * i], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3]));
    LBR_UNROLL
    for (int i = 0; i < mr; i++)
        LBR_UNROLL
        for (int j = 0; j < nr; j++) C[(size_t)i * ldc + j] = out[i * NR + j];
}

/* One function per tile size, each register-allocated on its own: inlined together into
 * one function, GCC 12 spills accumulators in the full tile's K loop. */
#define TILE_ARGS size_t KB, const uint8_t *A, const int8_t *W, int32_t *C, int ldc
#define TILE(i, j) \
    LBR_TARGET_AVX512 __attribute__((noinline)) static void tile##i##j(TILE_ARGS) { tile(i, j, KB, A, W, C, ldc); }
TILE(1, 1) TILE(1, 2) TILE(1, 3) TILE(1, 4)
TILE(2, 1) TILE(2, 2) TILE(2, 3) TILE(2, 4)
TILE(3, 1) TILE(3, 2) TILE(3, 3) TILE(3, 4)
TILE(4, 1) TILE(4, 2) TILE(4, 3) TILE(4, 4)
static void (*const tiles[MR][NR])(TILE_ARGS) = {
    {tile11, tile12, tile13, tile14},
    {tile21, tile22, tile23, tile24},
    {tile31, tile32, tile33, tile34},
    {tile41, tile42, tile43, tile44},
};

LBR_TARGET_AVX512 void lbr_s8u8_avx512(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc) {
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
