/* s8u8_avx2.c - s8u8 with AVX2.
 * vpmaddubsw would take 32 products per instruction but saturates its int16 pair sums
 * (2 * 255 * 127 > 32767), so both rows are widened to int16 as they are loaded
 * (vpmovzxbw / vpmovsxbw from memory: the widening is the load) and vpmaddwd adds pairs
 * of exact products into int32 lanes.
 * Blocking: a 4 x 2 tile keeps 4 widened A vectors and streams the 2 W rows, so each A
 * load feeds 2 vpmaddwd and each W load 4; 8 accumulators + 4 A + 1 W + 1 product = 14
 * of the 16 ymm registers. Edge tiles are the same code specialised for their size
 * (LBR_BYTES_TILES_4x2), so M = 1 or N = 1 computes nothing twice. W is taken in
 * blocks that stay in L2 while all of A passes over them (lbr_bytes_nblock).
 * No overflow: every int32 lane, and every partial sum of the final reduction, adds a
 * subset of the K products a_k w_k, and |sum| <= 65536 * 255 * 128 < 2^31. */
#include "kernels/bytes/bytes_impl.h"

#if LBR_X86
#define MR 4
#define NR 2

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
    LBR_BYTES_STORE(lbr_bytes_hsum4_avx2, mr, nr, MR, NR, acc, C, ldc);
}

LBR_BYTES_TILES_4x2(LBR_TARGET_AVX2)

LBR_TARGET_AVX2 void lbr_s8u8_avx2(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc) {
    lbr_bytes_gemm(M, N, K, A, W, C, ldc, MR, NR, tiles);
}
#endif
