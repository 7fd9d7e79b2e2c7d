/* bitserial_avx2.c - bitserial with the nibble-lookup popcount (vpshufb) and vpsadbw (Mula).
 * A tile is 2 activation rows x 2 weight rows (P and Q each): a step loads 2 A vectors of
 * one plane and 4 weight vectors for 4 products of two popcounts. The lookups make the
 * loop ALU-bound (~16 operations per product), so a larger tile would only add register
 * pressure. Planes are folded in by Horner's rule, highest first (acc = 2 acc + plane sum).
 * The difference popcount(A & P) - popcount(A & Q) is kept in one unsigned byte counter by
 * looking Q's nibbles up in 4 - popcount: a byte then gains popc_P + 8 - popc_Q, in 0..16,
 * so counters are flushed into 64-bit lanes (vpsadbw) every 15 steps (15 * 16 = 240 <= 255)
 * and the bias, 8 per byte per step, is subtracted once at the end: every plane takes the
 * same ceil(KW / 4) steps, so Horner scales it to 8 * 32 * steps * (2^abits - 1). A lane
 * stays below 2^24 (16 per byte x 8 bytes x 256 steps x 255), far from overflow. The K
 * tail is one step of masked loads (vpmaskmovq); its zero lanes carry the same bias as
 * any step. The full steps use plain loads, since vpmaskmovq costs more than a load. */
#include "kernels/popcount/popcount_impl.h"

#if LBR_X86
#define MR 2
#define NR 2
#define CHUNK 15   /* steps between byte-counter flushes */

/* rm, rn are constants in every instantiation: the loops run to MR, NR so that both
 * compilers unroll them before inlining, and the guards fold away after it. */
LBR_INLINE LBR_TARGET_AVX2 void bitserial_step(int rm, int rn, __m256i cnt[MR][NR], const __m256i a[MR],
                                                const __m256i p[NR], const __m256i q[NR], __m256i lut_p,
                                                __m256i lut_q, __m256i low4) {
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NR; j++) {
            if (i >= rm || j >= rn) continue;
            const __m256i plus = lbr_popcnt_nibbles(_mm256_and_si256(a[i], p[j]), lut_p, low4);
            const __m256i minus = lbr_popcnt_nibbles(_mm256_and_si256(a[i], q[j]), lut_q, low4);
            cnt[i][j] = _mm256_add_epi8(cnt[i][j], _mm256_add_epi8(plus, minus));
        }
    }
}

LBR_INLINE LBR_TARGET_AVX2 void bitserial_tile(int rm, int rn, int K, int abits, const uint64_t *A,
                                                const uint64_t *P, const uint64_t *Q, int32_t *C, int ldc) {
    const int KW = lbr_words(K), kv = KW & ~3;
    const size_t rs = (size_t)abits * KW;   /* from one activation row to the next */
    const __m256i lut_p = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i lut_q = _mm256_setr_epi8(4, 3, 3, 2, 3, 2, 2, 1, 3, 2, 2, 1, 2, 1, 1, 0,
                                           4, 3, 3, 2, 3, 2, 2, 1, 3, 2, 2, 1, 2, 1, 1, 0);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i acc[MR][NR], cnt[MR][NR], a[MR], p[NR], q[NR];
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NR; j++) acc[i][j] = cnt[i][j] = _mm256_setzero_si256();
    }
    for (int b = abits - 1; b >= 0; b--) {
        const uint64_t *ab = A + (size_t)b * KW;
        LBR_UNROLL
        for (int i = 0; i < MR; i++) {
            LBR_UNROLL
            for (int j = 0; j < NR; j++)
                if (i < rm && j < rn) acc[i][j] = _mm256_add_epi64(acc[i][j], acc[i][j]);
        }
        for (int k0 = 0; k0 < kv; k0 += 4 * CHUNK) {
            const int k1 = kv - k0 < 4 * CHUNK ? kv : k0 + 4 * CHUNK;
            for (int k = k0; k < k1; k += 4) {
                LBR_UNROLL
                for (int i = 0; i < MR; i++)
                    if (i < rm) a[i] = _mm256_loadu_si256((const __m256i *)(ab + i * rs + k));
                LBR_UNROLL
                for (int j = 0; j < NR; j++) {
                    if (j >= rn) continue;
                    p[j] = _mm256_loadu_si256((const __m256i *)(P + (size_t)j * KW + k));
                    q[j] = _mm256_loadu_si256((const __m256i *)(Q + (size_t)j * KW + k));
                }
                bitserial_step(rm, rn, cnt, a, p, q, lut_p, lut_q, low4);
            }
            lbr_popcnt_flush(rm, rn, acc, cnt);
        }
        if (kv < KW) {
            const __m256i mk = _mm256_cmpgt_epi64(_mm256_set1_epi64x(KW - kv), _mm256_setr_epi64x(0, 1, 2, 3));
            LBR_UNROLL
            for (int i = 0; i < MR; i++)
                if (i < rm) a[i] = _mm256_maskload_epi64((const long long *)(ab + i * rs + kv), mk);
            LBR_UNROLL
            for (int j = 0; j < NR; j++) {
                if (j >= rn) continue;
                p[j] = _mm256_maskload_epi64((const long long *)(P + (size_t)j * KW + kv), mk);
                q[j] = _mm256_maskload_epi64((const long long *)(Q + (size_t)j * KW + kv), mk);
            }
            bitserial_step(rm, rn, cnt, a, p, q, lut_p, lut_q, low4);
            lbr_popcnt_flush(rm, rn, acc, cnt);
        }
    }
    const long long steps = (KW + 3) / 4, bias = 8LL * 32 * steps * ((1LL << abits) - 1);
    /* lanes (0,0), (0,1), (1,0), (1,1); unused ones are not stored */
    const __m256i s = lbr_hsum4_epi64(acc[0][0], acc[0][1], acc[1][0], acc[1][1]);
    int32_t out[MR * NR];
    _mm_storeu_si128((__m128i *)out, lbr_narrow4_epi64(_mm256_sub_epi64(s, _mm256_set1_epi64x(bias))));
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NR; j++)
            if (i < rm && j < rn) C[(size_t)i * ldc + j] = out[i * NR + j];
    }
}

LBR_TARGET_AVX2 void lbr_bitserial_avx2(int M, int N, int K, int abits, const uint64_t *A, const uint64_t *P,
                                        const uint64_t *Q, int32_t *C, int ldc) {
    const int KW = lbr_words(K);
    for (int m = 0; m < M; m += MR) {
        const int rm = M - m < MR ? M - m : MR;
        const uint64_t *a = A + (size_t)m * abits * KW;
        for (int n = 0; n < N; n += NR) {
            const int rn = N - n < NR ? N - n : NR;
            const uint64_t *p = P + (size_t)n * KW, *q = Q + (size_t)n * KW;
            int32_t *c = C + (size_t)m * ldc + n;
            LBR_TILE_SWITCH_2x2(rm, rn, bitserial_tile, K, abits, a, p, q, c, ldc)
        }
    }
}
#endif
