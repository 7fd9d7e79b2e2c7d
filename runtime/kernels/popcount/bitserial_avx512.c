/* bitserial_avx512.c - bitserial with VPOPCNTQ on 512-bit vectors.
 * A tile is 4 activation rows x 4 weight rows (each a P and a Q vector): a step loads 4 A
 * vectors of one plane and 8 weight vectors for 16 products of two popcounts each, so the
 * loop is bound by the popcount port; 16 accumulators + 12 operands fit 32 zmm registers.
 * Planes are folded in by Horner's rule, highest plane first (acc = 2 acc + plane sum),
 * so one set of accumulators and one reduction serve all planes, and the tile's P and Q
 * rows (8 KW words) stay in L1 while every plane streams past them.
 * Accumulators are signed 64-bit lanes: a lane's plane sum is within +-K and the Horner
 * total within +-255 K < 2^24, so nothing can overflow, and doubling a negative lane (an
 * add, not a C shift) is exact in two's complement. Edge tiles are their own
 * instantiations. Every load is zero-masked to the words left in the row, so the K tail
 * needs no second copy of the loop: masked words are not read and count nothing. */
#include "kernels/popcount/popcount_impl.h"

#if LBR_X86
#define MR 4
#define NR 4

/* rm, rn are constants in every instantiation: the loops run to MR, NR so that both
 * compilers unroll them before inlining, and the guards fold away after it. */
LBR_INLINE LBR_TARGET_AVX512POP void bitserial_tile(int rm, int rn, int K, int abits, const uint64_t *A,
                                                     const uint64_t *P, const uint64_t *Q, int32_t *C, int ldc) {
    const int KW = lbr_words(K);
    const size_t rs = (size_t)abits * KW;   /* from one activation row to the next */
    __m512i acc[MR][NR], a[MR], p[NR], q[NR];
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_si512();
    }
    for (int b = abits - 1; b >= 0; b--) {
        const uint64_t *ab = A + (size_t)b * KW;
        LBR_UNROLL
        for (int i = 0; i < MR; i++) {
            LBR_UNROLL
            for (int j = 0; j < NR; j++)
                if (i < rm && j < rn) acc[i][j] = _mm512_add_epi64(acc[i][j], acc[i][j]);
        }
        for (int k = 0; k < KW; k += 8) {
            const __mmask8 mk = KW - k >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (KW - k)) - 1);
            LBR_UNROLL
            for (int i = 0; i < MR; i++)
                if (i < rm) a[i] = _mm512_maskz_loadu_epi64(mk, ab + i * rs + k);
            LBR_UNROLL
            for (int j = 0; j < NR; j++) {
                if (j >= rn) continue;
                p[j] = _mm512_maskz_loadu_epi64(mk, P + (size_t)j * KW + k);
                q[j] = _mm512_maskz_loadu_epi64(mk, Q + (size_t)j * KW + k);
            }
            LBR_UNROLL
            for (int i = 0; i < MR; i++) {
                LBR_UNROLL
                for (int j = 0; j < NR; j++) {
                    if (i >= rm || j >= rn) continue;
                    const __m512i plus = _mm512_popcnt_epi64(_mm512_and_si512(a[i], p[j]));
                    const __m512i minus = _mm512_popcnt_epi64(_mm512_and_si512(a[i], q[j]));
                    acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_sub_epi64(plus, minus));
                }
            }
        }
    }
    /* two rows per reduction; a missing second row (rm odd) reduces zeros */
    LBR_UNROLL
    for (int i = 0; i < MR; i += 2) {
        if (i >= rm) continue;
        const __m512i x[8] = {acc[i][0], acc[i][1], acc[i][2], acc[i][3],
                              acc[i + 1][0], acc[i + 1][1], acc[i + 1][2], acc[i + 1][3]};
        lbr_store_2x4(lbr_hsum8_epi64(x), C + (size_t)i * ldc, ldc, rm - i, rn);
    }
}

LBR_TARGET_AVX512POP void lbr_bitserial_avx512(int M, int N, int K, int abits, const uint64_t *A,
                                               const uint64_t *P, const uint64_t *Q, int32_t *C, int ldc) {
    const int KW = lbr_words(K);
    for (int m = 0; m < M; m += MR) {
        const int rm = M - m < MR ? M - m : MR;
        const uint64_t *a = A + (size_t)m * abits * KW;
        for (int n = 0; n < N; n += NR) {
            const int rn = N - n < NR ? N - n : NR;
            const uint64_t *p = P + (size_t)n * KW, *q = Q + (size_t)n * KW;
            int32_t *c = C + (size_t)m * ldc + n;
            LBR_TILE_SWITCH_4x4(rm, rn, bitserial_tile, K, abits, a, p, q, c, ldc)
        }
    }
}
#endif
