/* s8u8_avx512.c - s8u8 with AVX-512BW, for CPUs without VNNI.
 * As in AVX2, vpmaddubsw saturates its int16 pair sums (2 * 255 * 127 > 32767), so 32
 * bytes of each row are widened to int16 as they are loaded (vpmovzxbw / vpmovsxbw) and
 * vpmaddwd adds pairs of exact products into 16 int32 lanes.
 * Blocking: a 4 x 4 tile keeps 4 widened A vectors and streams the 4 W rows, so each load
 * feeds 4 vpmaddwd; 16 accumulators + 4 A + 1 W + 1 product = 22 of the 32 zmm registers.
 * Edge tiles are the same code specialised for their size (LBR_BYTES_TILES_4x4).
 * W is taken in blocks that stay in L2 while all of A passes over them (lbr_bytes_nblock).
 * No overflow: every int32 lane, and every partial sum of the final reduction, adds a
 * subset of the K products a_k w_k, and |sum| <= 65536 * 255 * 128 < 2^31. */
#include "kernels/bytes/bytes_impl.h"

#if LBR_X86
#define MR 4
#define NR 4

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
    LBR_BYTES_STORE(lbr_bytes_hsum4_avx512, mr, nr, MR, NR, acc, C, ldc);
}

LBR_BYTES_TILES_4x4(LBR_TARGET_AVX512)

LBR_TARGET_AVX512 void lbr_s8u8_avx512(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc) {
    lbr_bytes_gemm(M, N, K, A, W, C, ldc, MR, NR, tiles);
}
#endif
