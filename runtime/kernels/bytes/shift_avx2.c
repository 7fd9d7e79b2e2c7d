/* shift_avx2.c - shift with AVX2, without multiplications.
 * AVX2's only variable shift is per 32-bit lane (vpsllvd), so 8 activations are widened
 * to int32 as they are loaded (vpmovzxbd) and each product is three instructions: shift
 * by |s| - 1, vpsignd by s, add. The count |s| - 1 is -1 for s = 0, which vpsllvd reads
 * as 2^32 - 1 > 31 and turns into 0, so zero weights need no mask.
 * Blocking: a 4 x 2 tile keeps 4 widened A vectors and streams the 2 shift rows, whose
 * counts (vpmovsxbd, vpabsd, vpsubd) are then shared by the 4 A rows; 8 accumulators +
 * 4 A + s + count + 1 product = 15 of the 16 ymm registers. Edge tiles are the same code
 * specialised for their size (LBR_BYTES_TILES_4x2). S is taken in blocks that stay in L2
 * while all of A passes over them (lbr_bytes_nblock).
 * No overflow: every int32 lane, and every partial sum of the final reduction, adds a
 * subset of the K terms, each at most 255 << 7 = 32640 in magnitude, and
 * |sum| <= 65536 * 32640 < 2^31. */
#include "kernels/bytes/bytes_impl.h"

#if LBR_X86
#define MR 4
#define NR 2

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
    LBR_BYTES_STORE(lbr_bytes_hsum4_avx2, mr, nr, MR, NR, acc, C, ldc);
}

LBR_BYTES_TILES_4x2(LBR_TARGET_AVX2)

LBR_TARGET_AVX2 void lbr_shift_avx2(int M, int N, int K, const uint8_t *A, const int8_t *S, int32_t *C, int ldc) {
    lbr_bytes_gemm(M, N, K, A, S, C, ldc, MR, NR, tiles);
}
#endif
