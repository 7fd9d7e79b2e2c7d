/* xnor_lanes_avx2.c - xnor on the xnor lanes layout (lbr_kernels.h) with the nibble-lookup
 * popcount (vpshufb, Mula) and vpsadbw: a block of 8 outputs is two ymm halves of 4 lanes,
 * one output per 64-bit lane, and an activation word is broadcast to all lanes, so no
 * horizontal sums are needed (the row kernel, xnor_avx2.c, reduces every 2 x 2 tile
 * across lanes) and no lane idles whatever K is.
 * A tile is MR activation rows x one block. The nibbles are split before the XOR rather
 * than after it: (a ^ w) & 0x0f.. = a_lo ^ w_lo and ((a ^ w) >> 4) & 0x0f.. = a_hi ^ w_hi,
 * with a_lo, a_hi made once per activation word (shared by the block's 2 vectors) and
 * w_lo, w_hi once per weight vector (shared by the MR rows); a product (one half, one row)
 * is then 2 XOR, 2 vpshufb and 2 adds instead of the row kernel's 8 operations. As in
 * bitserial_lanes_avx2.c the loop is ALU-bound and 2 rows fit the 16 ymm registers (2
 * constants, 4 weight nibble vectors, 4 byte counters, a row's 2 nibble vectors and
 * temporaries) with room for the compiler.
 * A byte counter gains at most 8 per word (4 per nibble lookup), so counters are flushed
 * into 64-bit lanes (vpsadbw, whose 8-byte groups are exactly the lanes) every 31 words
 * (31 * 8 = 248 <= 255). A lane holds d = sum of popcount(a xor w) <= K <= 65536, and
 * C = K - 2 d. K needs no tail: bits past K are zero in both operands and xor to zero;
 * the layout's zero rows compute popcount(a) in lanes that are never stored. */
#include "kernels/popcount/popcount_impl.h"

#if LBR_X86
#define MR 2
#define CHUNK 31 /* words between byte-counter flushes */

LBR_INLINE LBR_TARGET_AVX2 __m256i lanes_load(const uint64_t *w) { return _mm256_loadu_si256((const __m256i *)w); }

/* rm is a constant in every instantiation (see LBR_UNROLL); nj: outputs of the block to
 * store, 1..8. */
LBR_INLINE LBR_TARGET_AVX2 void lanes_tile(int rm, int K, const uint64_t *A, const uint64_t *W, int32_t *C,
                                            int ldc, int nj) {
    const int KW = lbr_words(K);
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i acc[MR][2], cnt[MR][2];
    LBR_UNROLL
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = cnt[i][0] = cnt[i][1] = _mm256_setzero_si256();
    for (int k0 = 0; k0 < KW; k0 += CHUNK) {
        const int k1 = KW - k0 < CHUNK ? KW : k0 + CHUNK;
        for (int k = k0; k < k1; k++) {
            const uint64_t *w = W + (size_t)k * 8; /* halves: w, w + 4 */
            __m256i wlo[2], whi[2];
            LBR_UNROLL
            for (int h = 0; h < 2; h++) {
                const __m256i v = lanes_load(w + 4 * h);
                wlo[h] = _mm256_and_si256(v, low4);
                whi[h] = _mm256_and_si256(_mm256_srli_epi64(v, 4), low4);
            }
            LBR_UNROLL
            for (int i = 0; i < MR; i++) {
                if (i >= rm) continue;
                const __m256i a = _mm256_set1_epi64x((long long)A[(size_t)i * KW + k]);
                const __m256i alo = _mm256_and_si256(a, low4);
                const __m256i ahi = _mm256_and_si256(_mm256_srli_epi64(a, 4), low4);
                LBR_UNROLL
                for (int h = 0; h < 2; h++) {
                    const __m256i pl = _mm256_shuffle_epi8(lut, _mm256_xor_si256(alo, wlo[h]));
                    const __m256i ph = _mm256_shuffle_epi8(lut, _mm256_xor_si256(ahi, whi[h]));
                    cnt[i][h] = _mm256_add_epi8(cnt[i][h], _mm256_add_epi8(pl, ph));
                }
            }
        }
        LBR_UNROLL
        for (int i = 0; i < MR; i++) {
            if (i >= rm) continue;
            LBR_UNROLL
            for (int h = 0; h < 2; h++) {
                acc[i][h] = _mm256_add_epi64(acc[i][h], _mm256_sad_epu8(cnt[i][h], _mm256_setzero_si256()));
                cnt[i][h] = _mm256_setzero_si256();
            }
        }
    }
    const __m256i k64 = _mm256_set1_epi64x(K);
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(nj), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        if (i >= rm) continue;
        const __m128i lo = lbr_narrow4_epi64(_mm256_sub_epi64(k64, _mm256_add_epi64(acc[i][0], acc[i][0])));
        const __m128i hi = lbr_narrow4_epi64(_mm256_sub_epi64(k64, _mm256_add_epi64(acc[i][1], acc[i][1])));
        _mm256_maskstore_epi32((int *)(C + (size_t)i * ldc), mk, _mm256_set_m128i(hi, lo));
    }
}

LBR_TARGET_AVX2 void lbr_xnor_lanes_avx2(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C,
                                         int ldc) {
    _Static_assert(MR == 2, "the driver below covers 1..2 rows");
    const int KW = lbr_words(K), nblk = (N + 7) / 8;
    for (int m = 0; m < M; m += MR) {
        const uint64_t *a = A + (size_t)m * KW;
        for (int n = 0; n < nblk; n++) {
            const int nj = N - n * 8 < 8 ? N - n * 8 : 8;
            const uint64_t *w = W + (size_t)n * KW * 8;
            int32_t *c = C + (size_t)m * ldc + n * 8;
            if (M - m >= 2) lanes_tile(2, K, a, w, c, ldc, nj);
            else lanes_tile(1, K, a, w, c, ldc, nj);
        }
    }
}
#endif
