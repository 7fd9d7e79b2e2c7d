/* bucket_avx512.c - bucket sums by subset-sum tables over groups of 4 activations,
 * looked up 64 bytes at a time with vpshufb (AVX-512BW).
 *
 * Algorithm. For a group of 4 consecutive activations (k = 4g .. 4g+3) of row m the
 * 16-byte table T_g[x] = sum of a_{4g+i} over the bits i set in x holds every share a
 * bucket can take from the group, and the nibble of the indicator row I_j(n) (w == j) at
 * the group picks bucket j's: C[m][n][j] = sum_g T_g[nibble g of I_j(n)]. One vpshufb
 * looks the table (broadcast to all 4 lanes) up for a tile of 64 consecutive elements of
 * C's row m, 64 / J weight rows times their J buckets. Table entries fit a byte for
 * 4-bit activation digits (4 * 15 = 60), so 5- to 8-bit activations run as two digits
 * (low and high planes), C = S_lo + 16 S_hi; bytes take as many lookups as they hold
 * (4 at 4-bit digits, 8 at 3, 16 at 1-2) before they are widened to 16 bits.
 *
 * The index vectors (bytes = nibbles of I_j(n) at one group for the tile's elements)
 * depend on the weights only: they are built once per tile and 4-word chunk of k from
 * 64-bit indicator rows (a vpermq or a broadcast and a vpternlogq per weight plane),
 * transposed 64 rows x 8 bytes -> 8 x 64 bytes by vpshufb and three 16-bit unpack
 * stages, split into nibbles, and reused by up to 16 rows of A, whose tables are built
 * once per chunk. Bytes are ordered (bucket_impl.h) so that widening to int32 takes
 * in-lane unpacks only and each 16-element quarter of the tile is stored as it is.
 *
 * Why tables: per row, 64 elements and 64 k at 4-bit weights and activations, the
 * lookups cost 48 vector ops (16 vpshufb, 16 vpaddb, 16 for widening; 36 at 1-2-bit
 * activations); the bit-serial form S_j = sum_p 2^p popcount(A_p & I_j) about 124 with
 * VPOPCNTQ (32 AND, 32 popcounts, 32 adds, the 2^p shifts and the indicators); masked
 * byte adds of unpacked activations under I_j as a k-mask 64 plus 64 mask loads. Building
 * a tile's indices costs 70-105 ops per word: at M = 1 it is not amortized and the
 * tables run about even with bit-serial, from M = 2 on they are ahead, at M >= 16 (rows
 * of a convolution) by about 2.3x. These are operation counts, not measurements.
 *
 * Stack: tables 16 rows x 64 groups x 16 B = 16 KB, indices 64 groups x 64 B = 4 KB,
 * indicator constants and weight words 3.5 KB; about 24 KB in all, fixed. */
#include "kernels/bucket/bucket_impl.h"

#if LBR_X86
#include <immintrin.h>
#include <string.h>

enum {
    LANES = 4,
    TILE = 16 * LANES, /* output elements per lookup vector; a chunk's indices: 64 groups, 4 KB */
};

/* How the tile's indicator rows come from the weight planes (bucket_impl.h): qword q of
 * transpose input u is row b = lbr_bucket_row(u, q), bucket j of weight row n0 + ns. The
 * rows of one input lie in one block of 8 weight rows (blk) for every J, and at J = 16
 * on one row (bcast >= 0), whose words are then broadcast instead of permuted. */
struct lbr_bucket_layout {
    __m512i notmask[8][4]; /* ~0 where bit p of the row's bucket j is 0: take ~W_p */
    __m512i perm[8];       /* vpermq index: ns within its block */
    __m512i sel[16 / LANES]; /* table selectors (lbr_bucket_sel) */
    int blk[8], bcast[8];
};

static void layout_init(lbr_bucket_layout *ly, int wbits) {
    const int J = 1 << wbits;
    lbr_bucket_sel((uint8_t *)ly->sel, LANES);
    for (int u = 0; u < 8; u++) {
        uint64_t nm[4][8], pi[8];
        int ns0 = 0, same = 1;
        for (int q = 0; q < 8; q++) {
            const int e = lbr_bucket_elem(lbr_bucket_row(u, q), LANES), ns = e / J, j = e % J;
            if (q == 0) ns0 = ns;
            same &= ns == ns0;
            pi[q] = (uint64_t)(ns & 7);
            for (int p = 0; p < 4; p++) nm[p][q] = (j >> p) & 1 ? 0 : ~(uint64_t)0;
        }
        ly->blk[u] = ns0 >> 3;
        ly->bcast[u] = same ? ns0 : -1;
        memcpy(&ly->perm[u], pi, sizeof pi);
        for (int p = 0; p < 4; p++) memcpy(&ly->notmask[u][p], nm[p], sizeof nm[p]);
    }
}

/* tables of the 4 groups whose activations are lane 0 of b (b holds one lane 4 times) */
static LBR_TARGET_AVX512 void tables4(__m512i b, const __m512i sel[4], uint8_t *dst) {
    const __m512i t01 = _mm512_add_epi8(_mm512_shuffle_epi8(b, sel[0]), _mm512_shuffle_epi8(b, sel[1]));
    const __m512i t23 = _mm512_add_epi8(_mm512_shuffle_epi8(b, sel[2]), _mm512_shuffle_epi8(b, sel[3]));
    _mm512_store_si512((void *)dst, _mm512_add_epi8(t01, t23));
}

/* tables of row a for planes p0 .. p1-1 (one digit) over words w0 .. w0+cw-1 */
static LBR_TARGET_AVX512 void build_tables(uint8_t *tab, const uint64_t *a, int KW, int w0, int cw, int p0,
                                           int p1, const lbr_bucket_layout *ly) {
    for (int w = 0; w < cw; w++) {
        __m512i v = _mm512_setzero_si512(); /* byte k = the digit of a_k */
        for (int p = p0; p < p1; p++)
            v = _mm512_mask_add_epi8(v, (__mmask64)a[(size_t)p * KW + w0 + w], v,
                                     _mm512_set1_epi8((char)(1 << (p - p0))));
        tables4(_mm512_shuffle_i32x4(v, v, 0x00), ly->sel, tab + 16 * (16 * w + 0));
        tables4(_mm512_shuffle_i32x4(v, v, 0x55), ly->sel, tab + 16 * (16 * w + 4));
        tables4(_mm512_shuffle_i32x4(v, v, 0xAA), ly->sel, tab + 16 * (16 * w + 8));
        tables4(_mm512_shuffle_i32x4(v, v, 0xFF), ly->sel, tab + 16 * (16 * w + 12));
    }
}

/* indices of the tile of weight rows n0 .. n0+rows-1 (rows past N read as zero: their
 * elements are never stored) over words w0 .. w0+cw-1 */
static LBR_TARGET_AVX512 void build_idx(uint8_t *idx, const uint64_t *W, int N, int wbits, int KW, int n0,
                                        int rows, int w0, int cw, const lbr_bucket_layout *ly) {
    _Alignas(64) uint64_t wt[4][32];
    const int fill = rows < 8 ? 8 : rows;
    const __m512i nib = _mm512_set1_epi8(0x0F);
    /* in-lane byte order (s0 c2 c1 c0) -> (c2 c1 c0 s0): qword s0's byte c to 2c + s0 */
    const __m512i tp = _mm512_set4_epi32(0x0f070e06, 0x0d050c04, 0x0b030a02, 0x09010800);
    for (int w = 0; w < cw; w++) {
        for (int p = 0; p < wbits; p++)
            for (int r = 0; r < fill; r++)
                wt[p][r] = r < rows && n0 + r < N ? W[((size_t)(n0 + r) * wbits + p) * KW + w0 + w] : 0;
        __m512i q[8], y[8], z[8], o[8];
        for (int u = 0; u < 8; u++) {
            __m512i acc = _mm512_set1_epi64(-1);
            for (int p = 0; p < wbits; p++) {
                const uint64_t *src = wt[p] + (ly->bcast[u] >= 0 ? ly->bcast[u] : 8 * ly->blk[u]);
                const __m512i wv = ly->bcast[u] >= 0
                                       ? _mm512_set1_epi64((long long)*src)
                                       : _mm512_permutexvar_epi64(ly->perm[u], _mm512_load_si512((const void *)src));
                acc = _mm512_ternarylogic_epi64(wv, ly->notmask[u][p], acc, 0x28); /* (wv ^ notmask) & acc */
            }
            q[u] = _mm512_shuffle_epi8(acc, tp);
        }
        /* each 16-bit unpack stage trades a bit of the input index (u2, u1, u0: row bits
         * b3, b2, b1) for the top in-lane byte bit (c2, c1, c0) and puts it above the low
         * bit (q & 1 = b0): o[c] ends with row b's byte c at byte b */
        for (int u = 0; u < 4; u++) {
            y[u] = _mm512_unpacklo_epi16(q[u], q[u + 4]);
            y[u + 4] = _mm512_unpackhi_epi16(q[u], q[u + 4]);
        }
        for (int i = 0; i < 8; i += 4)
            for (int v = 0; v < 2; v++) {
                z[i + v] = _mm512_unpacklo_epi16(y[i + v], y[i + v + 2]);
                z[i + v + 2] = _mm512_unpackhi_epi16(y[i + v], y[i + v + 2]);
            }
        for (int i = 0; i < 8; i += 2) {
            o[i] = _mm512_unpacklo_epi16(z[i], z[i + 1]);
            o[i + 1] = _mm512_unpackhi_epi16(z[i], z[i + 1]);
        }
        for (int c = 0; c < 8; c++) {
            uint8_t *x = idx + TILE * (16 * w + 2 * c);
            _mm512_store_si512((void *)x, _mm512_and_si512(o[c], nib));
            _mm512_store_si512((void *)(x + TILE), _mm512_and_si512(_mm512_srli_epi16(o[c], 4), nib));
        }
    }
}

static LBR_TARGET_AVX512 __m512i look(const uint8_t *tab, const uint8_t *idx) {
    return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)tab)),
                               _mm512_load_si512((const void *)idx));
}

/* one row's sums over the chunk's gc groups for one digit, added (or stored, first) to
 * the tile's nval elements of C at c, times 16 for the high digit. Bytes take `run`
 * lookups (4, 8 or 16: gc is a multiple of 16) before they are widened; 16-bit sums stay
 * below 64 groups x 60 = 3840. */
static LBR_TARGET_AVX512 void lookup(const uint8_t *tab, const uint8_t *idx, int gc, int run, int32_t *c,
                                     int nval, int digit, int first) {
    const __m512i lo8 = _mm512_set1_epi16(0x00FF), zero = _mm512_setzero_si512();
    __m512i se = zero, so = zero; /* 16-bit sums of even, odd bytes */
    for (int g = 0; g < gc; g += run) {
        __m512i acc = zero;
        for (int i = g; i < g + run; i += 4) {
            const uint8_t *t = tab + 16 * i, *x = idx + TILE * i;
            const __m512i s01 = _mm512_add_epi8(look(t, x), look(t + 16, x + TILE));
            const __m512i s23 = _mm512_add_epi8(look(t + 32, x + 2 * TILE), look(t + 48, x + 3 * TILE));
            acc = _mm512_add_epi8(acc, _mm512_add_epi8(s01, s23));
        }
        se = _mm512_add_epi16(se, _mm512_and_si512(acc, lo8));
        so = _mm512_add_epi16(so, _mm512_srli_epi16(acc, 8));
    }
    const __m512i lo = _mm512_unpacklo_epi16(se, so), hi = _mm512_unpackhi_epi16(se, so);
    const __m512i v[4] = {_mm512_unpacklo_epi16(lo, zero), _mm512_unpackhi_epi16(lo, zero),
                          _mm512_unpacklo_epi16(hi, zero), _mm512_unpackhi_epi16(hi, zero)};
    for (int r = 0; r < 4 && 16 * r < nval; r++) {
        const int left = nval - 16 * r;
        const __mmask16 mk = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512i x = digit ? _mm512_slli_epi32(v[r], 4) : v[r];
        if (!first) x = _mm512_add_epi32(x, _mm512_maskz_loadu_epi32(mk, c + 16 * r));
        _mm512_mask_storeu_epi32(c + 16 * r, mk, x);
    }
}

LBR_TARGET_AVX512 void lbr_bucket_avx512(int M, int N, int K, int abits, int wbits, const uint64_t *A,
                                         const uint64_t *W, int32_t *C) {
    lbr_bucket_layout ly;
    layout_init(&ly, wbits);
    _Alignas(64) uint8_t tab[LBR_BUCKET_MB * LBR_BUCKET_GC * 16]; /* [row x digit][group][x] */
    _Alignas(64) uint8_t idx[LBR_BUCKET_GC * TILE];                /* [group][byte] */
    lbr_bucket_gemm(M, N, K, abits, wbits, A, W, C, TILE, &ly, tab, idx, build_tables, build_idx, lookup);
}
#else
typedef int lbr_bucket_avx512_unused;
#endif
