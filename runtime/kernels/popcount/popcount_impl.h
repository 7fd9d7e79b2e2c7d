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
void lbr_bitserial_lanes_avx2(int M, int N, int K, int abits, const uint64_t *A, const uint64_t *W, int32_t *C,
                              int ldc);
void lbr_bitserial_lanes_avx512(int M, int N, int K, int abits, const uint64_t *A, const uint64_t *W, int32_t *C,
                                int ldc);
void lbr_xnor_lanes_avx2(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C, int ldc);
void lbr_xnor_lanes_avx512(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C, int ldc);

/* The tiles' loops over rows and columns run to the tile size (a constant) and skip the
 * rows an edge tile lacks; GCC unrolls such loops completely at -O2 only when asked, and
 * without unrolling the accumulator arrays live on the stack. */
#define LBR_UNROLL _Pragma("GCC unroll 8")
#define LBR_INLINE static inline __attribute__((always_inline))

/* The drivers' dispatch on the size rm x rn of a tile (MR x NR, smaller at the bottom and
 * right edges of C): fn(rm, rn, ...) with the size as constants, so that every size is its
 * own instance of the always_inline tile (fixed loop bounds, accumulators in registers). */
#define LBR_TILE_CASE(key, fn, i, j, ...) case key: fn(i, j, __VA_ARGS__); break;
#define LBR_TILE_SWITCH_2x2(rm, rn, fn, ...)                                                                 \
    {                                                                                                        \
        _Static_assert(MR == 2 && NR == 2, "a 2 x 2 tile");                                                  \
        switch (((rm) - 1) * 2 + (rn) - 1) {                                                                 \
            LBR_TILE_CASE(0, fn, 1, 1, __VA_ARGS__) LBR_TILE_CASE(1, fn, 1, 2, __VA_ARGS__)                  \
            LBR_TILE_CASE(2, fn, 2, 1, __VA_ARGS__) LBR_TILE_CASE(3, fn, 2, 2, __VA_ARGS__)                  \
        }                                                                                                    \
    }
#define LBR_TILE_SWITCH_4x4(rm, rn, fn, ...)                                                                 \
    {                                                                                                        \
        _Static_assert(MR == 4 && NR == 4, "a 4 x 4 tile");                                                  \
        switch (((rm) - 1) * 4 + (rn) - 1) {                                                                 \
            LBR_TILE_CASE(0, fn, 1, 1, __VA_ARGS__) LBR_TILE_CASE(1, fn, 1, 2, __VA_ARGS__)                  \
            LBR_TILE_CASE(2, fn, 1, 3, __VA_ARGS__) LBR_TILE_CASE(3, fn, 1, 4, __VA_ARGS__)                  \
            LBR_TILE_CASE(4, fn, 2, 1, __VA_ARGS__) LBR_TILE_CASE(5, fn, 2, 2, __VA_ARGS__)                  \
            LBR_TILE_CASE(6, fn, 2, 3, __VA_ARGS__) LBR_TILE_CASE(7, fn, 2, 4, __VA_ARGS__)                  \
            LBR_TILE_CASE(8, fn, 3, 1, __VA_ARGS__) LBR_TILE_CASE(9, fn, 3, 2, __VA_ARGS__)                  \
            LBR_TILE_CASE(10, fn, 3, 3, __VA_ARGS__) LBR_TILE_CASE(11, fn, 3, 4, __VA_ARGS__)                \
            LBR_TILE_CASE(12, fn, 4, 1, __VA_ARGS__) LBR_TILE_CASE(13, fn, 4, 2, __VA_ARGS__)                \
            LBR_TILE_CASE(14, fn, 4, 3, __VA_ARGS__) LBR_TILE_CASE(15, fn, 4, 4, __VA_ARGS__)                \
        }                                                                                                    \
    }

#if LBR_X86
#include <immintrin.h>

/* Per-byte popcounts by two 16-entry lookups (Mula): `lut` maps a nibble to its count. */
LBR_INLINE LBR_TARGET_AVX2 __m256i lbr_popcnt_nibbles(__m256i x, __m256i lut, __m256i low4) {
    const __m256i lo = _mm256_and_si256(x, low4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

/* The AVX2 kernels' 2 x 2 tiles count in bytes: adds the byte counters of the rm x rn
 * used into their 64-bit lanes (vpsadbw) and clears them. */
LBR_INLINE LBR_TARGET_AVX2 void lbr_popcnt_flush(int rm, int rn, __m256i acc[2][2], __m256i cnt[2][2]) {
    LBR_UNROLL
    for (int i = 0; i < 2; i++) {
        LBR_UNROLL
        for (int j = 0; j < 2; j++) {
            if (i >= rm || j >= rn) continue;
            acc[i][j] = _mm256_add_epi64(acc[i][j], _mm256_sad_epu8(cnt[i][j], _mm256_setzero_si256()));
            cnt[i][j] = _mm256_setzero_si256();
        }
    }
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
