/* bucket_impl.h - the bucket family's SIMD variants and the tile layout they share.
 *
 * Both SIMD variants look up 16-byte tables with vpshufb into one vector of bucket sums
 * per output tile: TILE = 16 * lanes consecutive elements e = (n - n0) * J + j of one row
 * of C (lanes = 128-bit lanes per vector: 2 for AVX2, 4 for AVX-512). The byte of the
 * vector that holds element e is chosen so that widening bytes to int32 costs only
 * in-lane unpacks: after even/odd bytes are split into 16-bit sums and unpacked twice,
 * 32-bit lane group r of 128-bit lane L carries bytes b = 16L + 4r + i (i = 0..3), and
 * storing group r of every lane as one contiguous vector needs e = r * 4 * lanes + 4L + i.
 * The index vectors are built by transposing 64-bit indicator rows: qword q of input
 * vector u (u = 0..7) is row b = 16 * (q >> 1) + 2u + (q & 1), which keeps each input
 * vector within one aligned block of 8 (AVX-512) or 4 (AVX2) weight rows for every J,
 * and on one weight row where a 128-bit lane holds a single row's buckets (J = 16 on
 * AVX-512, J >= 8 on AVX2), so that its weight words are a broadcast. */
#ifndef LBR_BUCKET_IMPL_H
#define LBR_BUCKET_IMPL_H

#include "kernels/lbr_kernels_impl.h"

/* element of C (within a tile) held by byte b of a lookup vector with `lanes` lanes */
static inline int lbr_bucket_elem(int b, int lanes) {
    return ((b >> 2) & 3) * 4 * lanes + (b >> 4) * 4 + (b & 3);
}
/* indicator row that the transpose puts into qword q of its input vector u */
static inline int lbr_bucket_row(int u, int q) { return 16 * (q >> 1) + 2 * u + (q & 1); }

#if LBR_X86
void lbr_bucket_avx2(int M, int N, int K, int abits, int wbits, const uint64_t *A, const uint64_t *W, int32_t *C);
void lbr_bucket_avx512(int M, int N, int K, int abits, int wbits, const uint64_t *A, const uint64_t *W, int32_t *C);
#endif

#endif
