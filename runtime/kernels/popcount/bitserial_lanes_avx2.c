/* bitserial_lanes_avx2.c - bitserial on the lanes layout (lbr_kernels.h) with the
 * nibble-lookup popcount (vpshufb, Mula) and vpsadbw: a block of 8 outputs is two ymm
 * halves of 4 lanes, one output per 64-bit lane, and an activation word is broadcast to
 * all lanes, so no horizontal sums are needed and no lane idles whatever K is.
 * A tile is MR activation rows x one block. The nibbles are split before the AND rather
 * than after it: (a & p) & 0x0f.. = a_lo & p and ((a & p) >> 4) & 0x0f.. = a_hi & (p >> 4),
 * with a_lo, a_hi made once per activation word (shared by the 4 vectors of the block)
 * and p >> 4 once per weight vector (shared by the MR rows); a product (P and Q of one
 * half) is then 4 AND, 4 vpshufb and 4 adds instead of the row kernel's 16 operations.
 * The loop is ALU-bound (about 14.5 operations a product over three vector ports), so the
 * tile only shares the weights' shifts: 2 rows measured 10-15 % faster than 1, and 3 or 4
 * were no faster (one core, fmnist-cnn's shapes), with 16 ymm registers to fit in.
 * As in bitserial_avx2.c the difference is kept in one unsigned byte counter by looking
 * Q's nibbles up in 4 - popcount: a byte gains popc_P + 8 - popc_Q, in 0..16, per word, so
 * counters are flushed into 64-bit lanes (vpsadbw, whose 8-byte groups are exactly the
 * lanes) every 15 words (15 * 16 = 240 <= 255), and the bias, 64 per lane per word, is
 * taken off at the end: Horner (acc = 2 acc + plane sum, highest plane first) scales it to
 * 64 KW (2^abits - 1). A lane stays below 128 KW 255 < 2^25. */
#include "kernels/popcount/popcount_impl.h"

#if LBR_X86
#define MR 2
#define CHUNK 15 /* words between byte-counter flushes */

LBR_INLINE LBR_TARGET_AVX2 __m256i lanes_load(const uint64_t *w) { return _mm256_loadu_si256((const __m256i *)w); }

/* rm is a constant in every instantiation (see LBR_UNROLL); nj: outputs of the block to
 * store, 1..8. */
LBR_INLINE LBR_TARGET_AVX2 void lanes_tile(int rm, int KW, int abits, const uint64_t *A, const uint64_t *W,
                                            int32_t *C, int ldc, int nj) {
    const size_t rs = (size_t)abits * KW; /* from one activation row to the next */
    const __m256i lut_p = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i lut_q = _mm256_setr_epi8(4, 3, 3, 2, 3, 2, 2, 1, 3, 2, 2, 1, 2, 1, 1, 0,
                                           4, 3, 3, 2, 3, 2, 2, 1, 3, 2, 2, 1, 2, 1, 1, 0);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i acc[MR][2], cnt[MR][2];
    LBR_UNROLL
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = cnt[i][0] = cnt[i][1] = _mm256_setzero_si256();
    for (int b = abits - 1; b >= 0; b--) {
        const uint64_t *ab = A + (size_t)b * KW;
        LBR_UNROLL
        for (int i = 0; i < MR; i++) {
            if (i >= rm) continue;
            acc[i][0] = _mm256_add_epi64(acc[i][0], acc[i][0]);
            acc[i][1] = _mm256_add_epi64(acc[i][1], acc[i][1]);
        }
        for (int k0 = 0; k0 < KW; k0 += CHUNK) {
            const int k1 = KW - k0 < CHUNK ? KW : k0 + CHUNK;
            for (int k = k0; k < k1; k++) {
                const uint64_t *w = W + (size_t)k * 16; /* P: w, w + 4; Q: w + 8, w + 12 */
                __m256i p4[2], q4[2];
                LBR_UNROLL
                for (int h = 0; h < 2; h++) {
                    p4[h] = _mm256_srli_epi64(lanes_load(w + 4 * h), 4);
                    q4[h] = _mm256_srli_epi64(lanes_load(w + 8 + 4 * h), 4);
                }
                LBR_UNROLL
                for (int i = 0; i < MR; i++) {
                    if (i >= rm) continue;
                    const __m256i a = _mm256_set1_epi64x((long long)ab[i * rs + k]);
                    const __m256i alo = _mm256_and_si256(a, low4);
                    const __m256i ahi = _mm256_and_si256(_mm256_srli_epi64(a, 4), low4);
                    LBR_UNROLL
                    for (int h = 0; h < 2; h++) {
                        const __m256i pl = _mm256_shuffle_epi8(lut_p, _mm256_and_si256(alo, lanes_load(w + 4 * h)));
                        const __m256i ph = _mm256_shuffle_epi8(lut_p, _mm256_and_si256(ahi, p4[h]));
                        const __m256i ql =
                            _mm256_shuffle_epi8(lut_q, _mm256_and_si256(alo, lanes_load(w + 8 + 4 * h)));
                        const __m256i qh = _mm256_shuffle_epi8(lut_q, _mm256_and_si256(ahi, q4[h]));
                        cnt[i][h] = _mm256_add_epi8(cnt[i][h],
                                                    _mm256_add_epi8(_mm256_add_epi8(pl, ph), _mm256_add_epi8(ql, qh)));
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
    }
    const __m256i bias = _mm256_set1_epi64x(64LL * KW * ((1LL << abits) - 1));
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(nj), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        if (i >= rm) continue;
        const __m128i lo = lbr_narrow4_epi64(_mm256_sub_epi64(acc[i][0], bias));
        const __m128i hi = lbr_narrow4_epi64(_mm256_sub_epi64(acc[i][1], bias));
        _mm256_maskstore_epi32((int *)(C + (size_t)i * ldc), mk, _mm256_set_m128i(hi, lo));
    }
}

LBR_TARGET_AVX2 void lbr_bitserial_lanes_avx2(int M, int N, int K, int abits, const uint64_t *A, const uint64_t *W,
                                              int32_t *C, int ldc) {
    _Static_assert(MR == 2, "the driver below covers 1..2 rows");
    const int KW = lbr_words(K), nblk = (N + 7) / 8;
    for (int m = 0; m < M; m += MR) {
        const uint64_t *a = A + (size_t)m * abits * KW;
        for (int n = 0; n < nblk; n++) {
            const int nj = N - n * 8 < 8 ? N - n * 8 : 8;
            const uint64_t *w = W + (size_t)n * KW * 16;
            int32_t *c = C + (size_t)m * ldc + n * 8;
            if (M - m >= 2) lanes_tile(2, KW, abits, a, w, c, ldc, nj);
            else lanes_tile(1, KW, abits, a, w, c, ldc, nj);
        }
    }
}
#endif
