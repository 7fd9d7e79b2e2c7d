/* bucket_avx2.c - bucket sums by subset-sum tables over groups of 4 activations,
 * looked up 32 bytes at a time with vpshufb (AVX2).
 *
 * Algorithm (bucket_avx512.c at half the width). For a group of 4 consecutive
 * activations of row m the 16-byte table T_g[x] = sum of a_{4g+i} over the bits i set in
 * x holds every share a bucket can take from the group, and the nibble of the indicator
 * row I_j(n) (w == j) at the group picks bucket j's: C[m][n][j] = sum_g T_g[nibble g of
 * I_j(n)]. One vpshufb looks the table (broadcast to both lanes) up for a tile of 32
 * consecutive elements of C's row m, 32 / J weight rows times their J buckets. Entries
 * fit a byte for 4-bit activation digits (4 * 15 = 60); 5- to 8-bit activations run as
 * two digits, C = S_lo + 16 S_hi; bytes are widened to 16 bits every 4 to 16 lookups.
 *
 * The index vectors depend on the weights only: built once per tile and 4-word chunk of
 * k (indicator rows by a vpermd or a broadcast and XOR + AND per weight plane, a 32 rows
 * x 8 bytes -> 8 x 32 bytes transpose by vpshufb and three 16-bit unpack stages, a nibble
 * split) and reused by up to 16 rows of A, whose tables are built once per chunk. The
 * byte order (bucket_impl.h) lets int32 widening use in-lane unpacks and store 8-element
 * pieces as they are.
 *
 * Why tables: AVX2 has no vector popcount, so the bit-serial form S_j = sum_p 2^p
 * popcount(A_p & I_j) costs per row, 32 elements and 64 k at 4-bit activations 128
 * scalar AND + POPCNT + ADD triples (or about 250 vector ops counting nibbles with
 * vpshufb), against 48 vector ops of lookups here. A tile's indices cost 80-120 ops per
 * word, amortized over the rows of A (operation counts, not measurements).
 *
 * Stack: tables 16 rows x 64 groups x 16 B = 16 KB, indices 64 groups x 32 B = 2 KB,
 * indicator constants and weight words 2 KB; about 20 KB in all, fixed. */
#include "kernels/bucket/bucket_impl.h"

#if LBR_X86
#include <immintrin.h>
#include <string.h>

enum {
    LANES = 2,
    TILE = 16 * LANES, /* output elements per lookup vector; a chunk's indices: 64 groups, 2 KB */
};

/* How the tile's indicator rows come from the weight planes (bucket_impl.h): qword q of
 * transpose input u is row b = lbr_bucket_row(u, q), bucket j of weight row n0 + ns. The
 * rows of one input lie in one block of 4 weight rows (blk) for every J, and at J >= 8
 * on one row (bcast >= 0), whose words are then broadcast instead of permuted. */
struct lbr_bucket_layout {
    __m256i notmask[8][4]; /* ~0 where bit p of the row's bucket j is 0: take ~W_p */
    __m256i perm[8];       /* vpermd index: the two dwords of ns within its block */
    __m256i sel[16 / LANES]; /* table selectors (lbr_bucket_sel) */
    int blk[8], bcast[8];
};

static void layout_init(lbr_bucket_layout *ly, int wbits) {
    const int J = 1 << wbits;
    lbr_bucket_sel((uint8_t *)ly->sel, LANES);
    for (int u = 0; u < 8; u++) {
        uint64_t nm[4][4];
        uint32_t pi[8];
        int ns0 = 0, same = 1;
        for (int q = 0; q < 4; q++) {
            const int e = lbr_bucket_elem(lbr_bucket_row(u, q), LANES), ns = e / J, j = e % J;
            if (q == 0) ns0 = ns;
            same &= ns == ns0;
            pi[2 * q] = (uint32_t)(2 * (ns & 3));
            pi[2 * q + 1] = (uint32_t)(2 * (ns & 3) + 1);
            for (int p = 0; p < 4; p++) nm[p][q] = (j >> p) & 1 ? 0 : ~(uint64_t)0;
        }
        ly->blk[u] = ns0 >> 2;
        ly->bcast[u] = same ? ns0 : -1;
        memcpy(&ly->perm[u], pi, sizeof pi);
        for (int p = 0; p < 4; p++) memcpy(&ly->notmask[u][p], nm[p], sizeof nm[p]);
    }
}

/* tables of 2 groups from b (both lanes hold the same 4 groups), sel picks which 2 */
static LBR_TARGET_AVX2 void tables2(__m256i b, const __m256i sel[4], uint8_t *dst) {
    const __m256i t01 = _mm256_add_epi8(_mm256_shuffle_epi8(b, sel[0]), _mm256_shuffle_epi8(b, sel[1]));
    const __m256i t23 = _mm256_add_epi8(_mm256_shuffle_epi8(b, sel[2]), _mm256_shuffle_epi8(b, sel[3]));
    _mm256_store_si256((__m256i *)dst, _mm256_add_epi8(t01, t23));
}

/* digits of 32 activations from bits 32h .. 32h+31 of planes p0 .. p1-1 (word w) */
static LBR_TARGET_AVX2 __m256i unpack32(const uint64_t *a, int KW, int w, int h, int p0, int p1) {
    /* byte i takes source byte i / 8 of the 32 bits, then keeps bit i % 8 */
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_setzero_si256();
    for (int p = p0; p < p1; p++) {
        __m256i x = _mm256_set1_epi32((int)(uint32_t)(a[(size_t)p * KW + w] >> (32 * h)));
        x = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(x, spread), bit), bit);
        v = _mm256_or_si256(v, _mm256_and_si256(x, _mm256_set1_epi8((char)(1 << (p - p0)))));
    }
    return v;
}

/* tables of row a for planes p0 .. p1-1 (one digit) over words w0 .. w0+cw-1 */
static LBR_TARGET_AVX2 void build_tables(uint8_t *tab, const uint64_t *a, int KW, int w0, int cw, int p0,
                                         int p1, const lbr_bucket_layout *ly) {
    for (int w = 0; w < cw; w++)
        for (int h = 0; h < 2; h++) {
            const __m256i v = unpack32(a, KW, w0 + w, h, p0, p1); /* groups 8h .. 8h+7 */
            const __m256i b0 = _mm256_permute2x128_si256(v, v, 0x00), b1 = _mm256_permute2x128_si256(v, v, 0x11);
            uint8_t *t = tab + 16 * (16 * w + 8 * h);
            tables2(b0, ly->sel, t);
            tables2(b0, ly->sel + 4, t + 32);
            tables2(b1, ly->sel, t + 64);
            tables2(b1, ly->sel + 4, t + 96);
        }
}

/* indices of the tile of weight rows n0 .. n0+rows-1 (rows past N read as zero: their
 * elements are never stored) over words w0 .. w0+cw-1 */
static LBR_TARGET_AVX2 void build_idx(uint8_t *idx, const uint64_t *W, int N, int wbits, int KW, int n0,
                                      int rows, int w0, int cw, const lbr_bucket_layout *ly) {
    _Alignas(32) uint64_t wt[4][16];
    const int fill = rows < 4 ? 4 : rows;
    const __m256i nib = _mm256_set1_epi8(0x0F);
    /* in-lane byte order (s0 c2 c1 c0) -> (c2 c1 c0 s0): qword s0's byte c to 2c + s0 */
    const __m256i tp = _mm256_set_epi32(0x0f070e06, 0x0d050c04, 0x0b030a02, 0x09010800, 0x0f070e06, 0x0d050c04,
                                        0x0b030a02, 0x09010800);
    for (int w = 0; w < cw; w++) {
        for (int p = 0; p < wbits; p++)
            for (int r = 0; r < fill; r++)
                wt[p][r] = r < rows && n0 + r < N ? W[((size_t)(n0 + r) * wbits + p) * KW + w0 + w] : 0;
        __m256i q[8], y[8], z[8], o[8];
        for (int u = 0; u < 8; u++) {
            __m256i acc = _mm256_set1_epi64x(-1);
            for (int p = 0; p < wbits; p++) {
                const __m256i blk = _mm256_load_si256((const __m256i *)(wt[p] + 4 * ly->blk[u]));
                const __m256i wv = ly->bcast[u] >= 0 ? _mm256_set1_epi64x((long long)wt[p][ly->bcast[u]])
                                                     : _mm256_permutevar8x32_epi32(blk, ly->perm[u]);
                acc = _mm256_and_si256(acc, _mm256_xor_si256(wv, ly->notmask[u][p]));
            }
            q[u] = _mm256_shuffle_epi8(acc, tp);
        }
        /* each 16-bit unpack stage trades a bit of the input index (u2, u1, u0: row bits
         * b3, b2, b1) for the top in-lane byte bit (c2, c1, c0) and puts it above the low
         * bit (q & 1 = b0): o[c] ends with row b's byte c at byte b */
        for (int u = 0; u < 4; u++) {
            y[u] = _mm256_unpacklo_epi16(q[u], q[u + 4]);
            y[u + 4] = _mm256_unpackhi_epi16(q[u], q[u + 4]);
        }
        for (int i = 0; i < 8; i += 4)
            for (int v = 0; v < 2; v++) {
                z[i + v] = _mm256_unpacklo_epi16(y[i + v], y[i + v + 2]);
                z[i + v + 2] = _mm256_unpackhi_epi16(y[i + v], y[i + v + 2]);
            }
        for (int i = 0; i < 8; i += 2) {
            o[i] = _mm256_unpacklo_epi16(z[i], z[i + 1]);
            o[i + 1] = _mm256_unpackhi_epi16(z[i], z[i + 1]);
        }
        for (int c = 0; c < 8; c++) {
            uint8_t *x = idx + TILE * (16 * w + 2 * c);
            _mm256_store_si256((__m256i *)x, _mm256_and_si256(o[c], nib));
            _mm256_store_si256((__m256i *)(x + TILE), _mm256_and_si256(_mm256_srli_epi16(o[c], 4), nib));
        }
    }
}

static LBR_TARGET_AVX2 __m256i look(const uint8_t *tab, const uint8_t *idx) {
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)tab)),
                               _mm256_load_si256((const __m256i *)idx));
}

/* one row's sums over the chunk's gc groups for one digit, added (or stored, first) to
 * the tile's nval elements of C at c, times 16 for the high digit. Bytes take `run`
 * lookups (4, 8 or 16: gc is a multiple of 16) before they are widened; 16-bit sums stay
 * below 64 groups x 60 = 3840. */
static LBR_TARGET_AVX2 void lookup(const uint8_t *tab, const uint8_t *idx, int gc, int run, int32_t *c,
                                   int nval, int digit, int first) {
    const __m256i lo8 = _mm256_set1_epi16(0x00FF), zero = _mm256_setzero_si256();
    __m256i se = zero, so = zero; /* 16-bit sums of even, odd bytes */
    for (int g = 0; g < gc; g += run) {
        __m256i acc = zero;
        for (int i = g; i < g + run; i += 4) {
            const uint8_t *t = tab + 16 * i, *x = idx + TILE * i;
            const __m256i s01 = _mm256_add_epi8(look(t, x), look(t + 16, x + TILE));
            const __m256i s23 = _mm256_add_epi8(look(t + 32, x + 2 * TILE), look(t + 48, x + 3 * TILE));
            acc = _mm256_add_epi8(acc, _mm256_add_epi8(s01, s23));
        }
        se = _mm256_add_epi16(se, _mm256_and_si256(acc, lo8));
        so = _mm256_add_epi16(so, _mm256_srli_epi16(acc, 8));
    }
    const __m256i lo = _mm256_unpacklo_epi16(se, so), hi = _mm256_unpackhi_epi16(se, so);
    const __m256i v[4] = {_mm256_unpacklo_epi16(lo, zero), _mm256_unpackhi_epi16(lo, zero),
                          _mm256_unpacklo_epi16(hi, zero), _mm256_unpackhi_epi16(hi, zero)};
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int r = 0; r < 4 && 8 * r < nval; r++) {
        const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(nval - 8 * r), iota);
        __m256i x = digit ? _mm256_slli_epi32(v[r], 4) : v[r];
        if (!first) x = _mm256_add_epi32(x, _mm256_maskload_epi32((const int *)(c + 8 * r), mk));
        _mm256_maskstore_epi32((int *)(c + 8 * r), mk, x);
    }
}

LBR_TARGET_AVX2 void lbr_bucket_avx2(int M, int N, int K, int abits, int wbits, const uint64_t *A, const uint64_t *W,
                                     int32_t *C) {
    lbr_bucket_layout ly;
    layout_init(&ly, wbits);
    _Alignas(32) uint8_t tab[LBR_BUCKET_MB * LBR_BUCKET_GC * 16]; /* [row x digit][group][x] */
    _Alignas(32) uint8_t idx[LBR_BUCKET_GC * TILE];                /* [group][byte] */
    lbr_bucket_gemm(M, N, K, abits, wbits, A, W, C, TILE, &ly, tab, idx, build_tables, build_idx, lookup);
}
#else
typedef int lbr_bucket_avx2_unused;
#endif
