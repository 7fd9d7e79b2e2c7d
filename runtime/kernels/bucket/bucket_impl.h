/* bucket_impl.h - the bucket family's SIMD variants, the tile layout and the blocking
 * (lbr_bucket_gemm) they share.
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

/* Chunks of k, CW words (GC groups of 4) at a time: the indices of a tile cover one chunk,
 * and the tables of up to MB rows of A (x digits) are built once per chunk. */
enum { LBR_BUCKET_CW = 4, LBR_BUCKET_GC = 16 * LBR_BUCKET_CW, LBR_BUCKET_MB = 16 };

/* The selectors of the tables of 4 groups (vpshufb indices, 256 bytes: 16 / lanes
 * vectors of 16 * lanes bytes): byte x of lane L of vector 4h + i picks activation i of
 * group lanes * h + L if bit i of x is set, and zero (0x80) if not. */
static inline void lbr_bucket_sel(uint8_t sel[256], int lanes) {
    for (int v = 0; v < 16 / lanes; v++) {
        const int h = v >> 2, i = v & 3;
        for (int b = 0; b < 16 * lanes; b++)
            sel[16 * lanes * v + b] = ((b & 15) >> i) & 1 ? (uint8_t)(4 * (lanes * h + (b >> 4)) + i) : 0x80;
    }
}

/* Each variant's constants, built once per call (its own definition, in its vector type):
 * how its tiles' indicator rows come from the weight planes, and the table selectors. */
typedef struct lbr_bucket_layout lbr_bucket_layout;
typedef void (*lbr_bucket_tables_fn)(uint8_t *tab, const uint64_t *a, int KW, int w0, int cw, int p0, int p1,
                                     const lbr_bucket_layout *ly);
typedef void (*lbr_bucket_idx_fn)(uint8_t *idx, const uint64_t *W, int N, int wbits, int KW, int n0, int rows,
                                  int w0, int cw, const lbr_bucket_layout *ly);
typedef void (*lbr_bucket_lookup_fn)(const uint8_t *tab, const uint8_t *idx, int gc, int run, int32_t *c, int nval,
                                     int digit, int first);

/* The blocking both variants share, over their own build_tables, build_idx and lookup
 * (which the variant passes as constants: inlined into it, the calls are direct). For
 * each chunk of k and block of rows of A, the rows' tables, then for each tile of `tile`
 * elements of C's rows (tile / J weight rows) its indices, looked up by every row. tab
 * holds MB x GC tables of 16 bytes, idx GC x tile bytes. */
static inline __attribute__((always_inline)) void
lbr_bucket_gemm(int M, int N, int K, int abits, int wbits, const uint64_t *A, const uint64_t *W, int32_t *C, int tile,
                const lbr_bucket_layout *ly, uint8_t *tab, uint8_t *idx, lbr_bucket_tables_fn build_tables,
                lbr_bucket_idx_fn build_idx, lbr_bucket_lookup_fn lookup) {
    enum { CW = LBR_BUCKET_CW, GC = LBR_BUCKET_GC, MB = LBR_BUCKET_MB };
    const int KW = lbr_words(K), J = 1 << wbits, rows = tile / J;
    const int ndig = (abits + 3) / 4, mbmax = MB / ndig;
    const int maxv = 4 * ((1 << (abits < 4 ? abits : 4)) - 1); /* largest table entry */
    const int run = maxv <= 15 ? 16 : maxv <= 31 ? 8 : 4;       /* run * maxv <= 255 */
    for (int w0 = 0; w0 < KW; w0 += CW) {
        const int cw = KW - w0 < CW ? KW - w0 : CW;
        for (int m0 = 0; m0 < M; m0 += mbmax) {
            const int mb = M - m0 < mbmax ? M - m0 : mbmax;
            for (int i = 0; i < mb; i++)
                for (int d = 0; d < ndig; d++) {
                    const uint64_t *a = A + (size_t)(m0 + i) * abits * KW;
                    const int p1 = abits < 4 * d + 4 ? abits : 4 * d + 4;
                    build_tables(tab + (i * ndig + d) * GC * 16, a, KW, w0, cw, 4 * d, p1, ly);
                }
            for (int n0 = 0; n0 < N; n0 += rows) {
                const int nval = (N - n0 < rows ? N - n0 : rows) * J;
                build_idx(idx, W, N, wbits, KW, n0, rows, w0, cw, ly);
                for (int i = 0; i < mb; i++)
                    for (int d = 0; d < ndig; d++)
                        lookup(tab + (i * ndig + d) * GC * 16, idx, 16 * cw, run, C + ((size_t)(m0 + i) * N + n0) * J,
                               nval, d, w0 == 0 && d == 0);
            }
        }
    }
}

#if LBR_X86
void lbr_bucket_avx2(int M, int N, int K, int abits, int wbits, const uint64_t *A, const uint64_t *W, int32_t *C);
void lbr_bucket_avx512(int M, int N, int K, int abits, int wbits, const uint64_t *A, const uint64_t *W, int32_t *C);
#endif

#endif
