/* shift_avx512.c - shift with AVX-512BW, without multiplications.
 * Products are computed in 32-bit lanes (vpsllvd), not 16-bit ones (vpsllvw, twice as
 * wide): a term 255 << 7 fits int16, but summing int16 lanes into int32 without vpmaddwd
 * (a multiply) takes two shifts and an add more, 7 instructions per 32 products against
 * 6 here. So 16 activations are widened to int32 as they are loaded (vpmovzxbd), and each
 * product is three instructions: shift by |s| - 1, negate under the mask of negative codes
 * (AVX-512 has no vpsignd), add. The count |s| - 1 is -1 for s = 0, which vpsllvd reads
 * as 2^32 - 1 > 31 and turns into 0, so zero weights need no mask.
 * Blocking: a 4 x 4 tile keeps 4 widened A vectors and streams the 4 shift rows, whose
 * counts and masks are then shared by the 4 A rows; 16 accumulators + 4 A + s + count +
 * 1 product + 2 constants = 25 of the 32 zmm registers. Edge tiles are the same code
 * specialised for their size (LBR_BYTES_TILES_4x4). S is taken in blocks that stay in L2
 * while all of A passes over them (lbr_bytes_nblock).
 * No overflow: every int32 lane, and every partial sum of the final reduction, adds a
 * subset of the K terms, each at most 255 << 7 = 32640 in magnitude, and
 * |sum| <= 65536 * 32640 < 2^31. */
#include "kernels/bytes/bytes_impl.h"

#if LBR_X86
#define MR 4
#define NR 4

/* C[0, mr) x [0, nr) from A rows [0, mr) and shift rows [0, nr) */
LBR_TARGET_AVX512 LBR_INLINE void tile(const int mr, const int nr, size_t KB, const uint8_t *A, const int8_t *S,
                                       int32_t *C, int ldc) {
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
    __m512i acc[MR * NR];
    LBR_UNROLL
    for (int t = 0; t < MR * NR; t++) acc[t] = zero;
    for (size_t k = 0; k < KB; k += 16) {
        __m512i a[MR];
        LBR_UNROLL
        for (int i = 0; i < mr; i++) a[i] = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(A + i * KB + k)));
        LBR_UNROLL
        for (int j = 0; j < nr; j++) {
            const __m512i s = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(S + j * KB + k)));
            const __m512i count = _mm512_sub_epi32(_mm512_abs_epi32(s), one);
            const __mmask16 neg = _mm512_cmplt_epi32_mask(s, zero);
            LBR_UNROLL
            for (int i = 0; i < mr; i++) {
                const __m512i x = _mm512_sllv_epi32(a[i], count);
                acc[i * NR + j] = _mm512_add_epi32(acc[i * NR + j], _mm512_mask_sub_epi32(x, neg, zero, x));
            }
        }
    }
    LBR_BYTES_STORE(lbr_bytes_hsum4_avx512, mr, nr, MR, NR, acc, C, ldc);
}

LBR_BYTES_TILES_4x4(LBR_TARGET_AVX512)

LBR_TARGET_AVX512 void lbr_shift_avx512(int M, int N, int K, const uint8_t *A, const int8_t *S, int32_t *C, int ldc) {
    lbr_bytes_gemm(M, N, K, A, S, C, ldc, MR, NR, tiles);
}
#endif
