/* popcount_impl.h - the xnor and bitserial SIMD variants and the helpers they share
 * (private to runtime/kernels/popcount/). The helpers are always_inline so that each
 * kernel's tile, instantiated with constant sizes, keeps its accumulators in registers. */
#ifndef LBR_POPCOUNT_IMPL_H
#define LBR_POPCOUNT_IMPL_H

#include "kernels/lbr_kernels.h"
#include "kernels/lbr_kernels_impl.h"

void lbr_xnor_avx2(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C, int ldc);
void lbr_xnor_avx512(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C, int ldc);
void lbr_bitserial_avx2(int M, int N, int K, int abits, const uint64_t *A, const uint64_t *P, const uint64_t *Q,
                        int32_t *C, int ldc);
void lbr_bitserial_avx512(int M, int N, int K, int abits, const uint64_t *A, const uint64_t *P, const uint64_t *Q,
                          int32_t *C, int ldc);

/* The tiles' loops over rows and columns run to the tile size (a constant) and skip the
 * rows an edge tile lacks; GCC unrolls such loops completely at -O2 only when asked, and
 * without unrolling the accumulator arrays live on the stack. */
#define LBR_UNROLL _Pragma("GCC unroll 8")
#define LBR_INLINE static inline __attribute__((always_inline))

#if LBR_X86
#include <immintrin.h>

/* Per-byte popcounts by two 16-entry lookups (Mula): `lut` maps a nibble to its count. */
LBR_INLINE LBR_TARGET_AVX2 __m256i lbr_popcnt_nibbles(__m256i x, __m256i lut, __m256i low4) {
    const __m256i lo = _mm256_and_si256(x, low4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

/* Lane l of the result is the sum of the four 64-bit lanes of x_l: two unpack levels share
 * their work across the four sums (9 operations instead of 4 separate reductions of 4). */
LBR_INLINE LBR_TARGET_AVX2 __m256i lbr_hsum4_epi64(__m256i x0, __m256i x1, __m256i x2, __m256i x3) {
    const __m256i t01 = _mm256_add_epi64(_mm256_unpacklo_epi64(x0, x1), _mm256_unpackhi_epi64(x0, x1));
    const __m256i t23 = _mm256_add_epi64(_mm256_unpacklo_epi64(x2, x3), _mm256_unpackhi_epi64(x2, x3));
    return _mm256_add_epi64(_mm256_permute2x128_si256(t01, t23, 0x20), _mm256_permute2x128_si256(t01, t23, 0x31));
}

/* The low 32 bits of each 64-bit lane, in lane order, in the low half (values fit int32). */
LBR_INLINE LBR_TARGET_AVX2 __m128i lbr_narrow4_epi64(__m256i x) {
    return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)));
}

/* Lane l of the result is the sum of the eight 64-bit lanes of x[l]: a tree of unpacks and
 * 128-bit shuffles (21 operations for 8 sums). For K of a few hundred bits the reduction
 * costs as much as the K loop, so sharing it across accumulators matters. */
LBR_INLINE LBR_TARGET_AVX512POP __m512i lbr_hsum8_epi64(const __m512i x[8]) {
    __m512i t[4], u[2];
    LBR_UNROLL
    for (int i = 0; i < 4; i++)   /* per 128-bit block: (x[2i] partial, x[2i+1] partial) */
        t[i] = _mm512_add_epi64(_mm512_unpacklo_epi64(x[2 * i], x[2 * i + 1]),
                                _mm512_unpackhi_epi64(x[2 * i], x[2 * i + 1]));
    LBR_UNROLL
    for (int i = 0; i < 2; i++)   /* blocks 0+1 and 2+3 of t[2i], then of t[2i+1] */
        u[i] = _mm512_add_epi64(_mm512_shuffle_i64x2(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                                _mm512_shuffle_i64x2(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_epi64(_mm512_shuffle_i64x2(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i64x2(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* Stores lanes 0..rn-1 of s (int64) to row c and, if two rows, lanes 4..4+rn-1 to row
 * c + ldc; masked stores leave the columns past rn (and past N) untouched. */
LBR_INLINE LBR_TARGET_AVX512POP void lbr_store_2x4(__m512i s, int32_t *c, int ldc, int rows, int rn) {
    const __m256i v = _mm512_cvtepi64_epi32(s);
    const __mmask8 mk = (__mmask8)((1u << rn) - 1);
    _mm_mask_storeu_epi32(c, mk, _mm256_castsi256_si128(v));
    if (rows > 1) _mm_mask_storeu_epi32(c + ldc, mk, _mm256_extracti128_si256(v, 1));
}
#endif

#endif
