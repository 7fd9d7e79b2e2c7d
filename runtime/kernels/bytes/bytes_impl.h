/* bytes_impl.h - the byte-row families' SIMD variants (private to runtime/kernels/bytes/).
 * Each has its family's signature and is bit-identical to its *_ref; bytes.c lists those
 * the CPU can run. */
#ifndef LBR_BYTES_IMPL_H
#define LBR_BYTES_IMPL_H

#include "kernels/lbr_kernels.h"
#include "kernels/lbr_kernels_impl.h"

#if LBR_X86
#include <immintrin.h>

/* The SIMD files write one tile function over loops whose bounds (the tile's rows and
 * columns) are constants after inlining: the loops unroll and their vector arrays become
 * registers, so one body serves the full tile and every edge tile. */
#define LBR_INLINE static inline __attribute__((always_inline))
#if defined(__clang__)
#define LBR_UNROLL _Pragma("clang loop unroll(full)")
#else
#define LBR_UNROLL _Pragma("GCC unroll 16")
#endif
/* An empty asm that takes v in a register: applied to the accumulators between the K loop
 * and the reduction, it stops GCC 12 from copying accumulators between registers and
 * spilling them inside the K loop (8 extra instructions and a spill per iteration of the
 * 4 x 2 AVX2 loop). It emits no instruction. */
#define LBR_PIN(v) __asm__("" : "+v"(v))

/* W rows per block of the outer loop: about 128 KB of W, a multiple of the tile's nr, so
 * that the block stays in L2 while every tile of A rows passes over it (without it, W
 * is read from L3 or memory once per MR rows of A) */
static inline int lbr_bytes_nblock(size_t KB, int nr) {
    const int rows = (int)((size_t)128 * 1024 / KB) / nr * nr;
    return rows > nr ? rows : nr;
}

/* Every SIMD file defines its tile, C[0, mr) x [0, nr) from A rows [0, mr) and W rows
 * [0, nr) for an mr x nr tile of at most MR x NR (always_inline, with the file's target
 * attribute), and then instantiates what follows around it: LBR_BYTES_TILES_MRxNR, one
 * function per tile size and their table, and lbr_bytes_gemm, the loops over the tiles,
 * inlined into the variant's public function. The tile ends in LBR_BYTES_STORE, which
 * reduces its accumulators and stores them. */
typedef void (*lbr_bytes_tile_fn)(size_t KB, const uint8_t *A, const int8_t *W, int32_t *C, int ldc);

/* One function per tile size, tileIJ = tile(I, J, ...), each register-allocated on its
 * own: inlined together into one function, GCC 12 spills accumulators in the full tile's
 * K loop. `tiles` lists them, tile i x j at (i - 1) * NR + j - 1. TARGET is the file's
 * target attribute, and MR, NR its tile size. */
#define LBR_BYTES_TILE(TARGET, i, j)                                                                         \
    TARGET __attribute__((noinline)) static void tile##i##j(size_t KB, const uint8_t *A, const int8_t *W,    \
                                                            int32_t *C, int ldc) {                           \
        tile(i, j, KB, A, W, C, ldc);                                                                        \
    }
#define LBR_BYTES_TILES_4x2(TARGET)                                                                          \
    _Static_assert(MR == 4 && NR == 2, "a 4 x 2 tile");                                                      \
    LBR_BYTES_TILE(TARGET, 1, 1) LBR_BYTES_TILE(TARGET, 1, 2)                                                \
    LBR_BYTES_TILE(TARGET, 2, 1) LBR_BYTES_TILE(TARGET, 2, 2)                                                \
    LBR_BYTES_TILE(TARGET, 3, 1) LBR_BYTES_TILE(TARGET, 3, 2)                                                \
    LBR_BYTES_TILE(TARGET, 4, 1) LBR_BYTES_TILE(TARGET, 4, 2)                                                \
    static const lbr_bytes_tile_fn tiles[MR * NR] = {tile11, tile12, tile21, tile22,                         \
                                                     tile31, tile32, tile41, tile42};
#define LBR_BYTES_TILES_4x4(TARGET)                                                                          \
    _Static_assert(MR == 4 && NR == 4, "a 4 x 4 tile");                                                      \
    LBR_BYTES_TILE(TARGET, 1, 1) LBR_BYTES_TILE(TARGET, 1, 2) LBR_BYTES_TILE(TARGET, 1, 3)                   \
    LBR_BYTES_TILE(TARGET, 1, 4) LBR_BYTES_TILE(TARGET, 2, 1) LBR_BYTES_TILE(TARGET, 2, 2)                   \
    LBR_BYTES_TILE(TARGET, 2, 3) LBR_BYTES_TILE(TARGET, 2, 4) LBR_BYTES_TILE(TARGET, 3, 1)                   \
    LBR_BYTES_TILE(TARGET, 3, 2) LBR_BYTES_TILE(TARGET, 3, 3) LBR_BYTES_TILE(TARGET, 3, 4)                   \
    LBR_BYTES_TILE(TARGET, 4, 1) LBR_BYTES_TILE(TARGET, 4, 2) LBR_BYTES_TILE(TARGET, 4, 3)                   \
    LBR_BYTES_TILE(TARGET, 4, 4)                                                                             \
    static const lbr_bytes_tile_fn tiles[MR * NR] = {tile11, tile12, tile13, tile14, tile21, tile22,         \
                                                     tile23, tile24, tile31, tile32, tile33, tile34,         \
                                                     tile41, tile42, tile43, tile44};

/* C = A x W^T by tiles of tm x tn (smaller at the edges), tiles as LBR_BYTES_TILES lists
 * them; W is taken in blocks of lbr_bytes_nblock rows. Inlined into each variant, so that
 * tm and tn are constants there. */
LBR_INLINE void lbr_bytes_gemm(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc, int tm,
                               int tn, const lbr_bytes_tile_fn *tiles) {
    const size_t KB = (size_t)lbr_bytes(K);
    const int NB = lbr_bytes_nblock(KB, tn);
    for (int n0 = 0; n0 < N; n0 += NB) {
        const int n1 = N - n0 < NB ? N : n0 + NB;
        for (int m = 0; m < M; m += tm) {
            const int mr = M - m < tm ? M - m : tm;
            for (int n = n0; n < n1; n += tn) {
                const int nr = n1 - n < tn ? n1 - n : tn;
                tiles[(mr - 1) * tn + nr - 1](KB, A + (size_t)m * KB, W + (size_t)n * KB, C + (size_t)m * ldc + n,
                                              ldc);
            }
        }
    }
}

/* the sums of four int32 vectors, one in each lane */
LBR_TARGET_AVX2 LBR_INLINE __m128i lbr_bytes_hsum4_avx2(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    const __m256i s = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

/* the same for 512-bit vectors; unpacks, not vphaddd, which has no EVEX form and so would
 * tie the accumulators to zmm0-15 */
LBR_TARGET_AVX512 LBR_INLINE __m128i lbr_bytes_hsum4_avx512(__m512i a, __m512i b, __m512i c, __m512i d) {
    const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    const __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* The end of an mr x nr tile whose tm x tn int32 accumulators (C[i][j] summed over the
 * lanes of acc[i * tn + j]) are complete: pins them (LBR_PIN), reduces them four at a time
 * and stores the tile's elements of C. */
#define LBR_BYTES_STORE(hsum4, mr, nr, tm, tn, acc, C, ldc)                                                  \
    do {                                                                                                     \
        LBR_UNROLL                                                                                           \
        for (int t = 0; t < (tm) * (tn); t++) LBR_PIN((acc)[t]);                                             \
        int32_t out[(tm) * (tn)];                                                                            \
        LBR_UNROLL                                                                                           \
        for (int t = 0; t < ((mr) * (tn) + 3) / 4; t++)                                                      \
            _mm_storeu_si128((__m128i *)(out + 4 * t),                                                       \
                             hsum4((acc)[4 * t], (acc)[4 * t + 1], (acc)[4 * t + 2], (acc)[4 * t + 3]));     \
        LBR_UNROLL                                                                                           \
        for (int i = 0; i < (mr); i++)                                                                       \
            LBR_UNROLL                                                                                       \
            for (int j = 0; j < (nr); j++) (C)[(size_t)i * (ldc) + j] = out[i * (tn) + j];                   \
    } while (0)

void lbr_s8u8_avx2(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc);
void lbr_s8u8_avx512(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc);
void lbr_s8u8_avx512vnni(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc);
void lbr_shift_avx2(int M, int N, int K, const uint8_t *A, const int8_t *S, int32_t *C, int ldc);
void lbr_shift_avx512(int M, int N, int K, const uint8_t *A, const int8_t *S, int32_t *C, int ldc);
#endif

#endif
