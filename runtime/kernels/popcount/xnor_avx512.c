/* xnor_avx512.c - xnor with VPOPCNTQ on 512-bit vectors.
 * A tile is 4 rows of A x 4 rows of W: each step loads 8 vectors and feeds them to 16
 * xor + vpopcntq + add, so a load serves four products and the loop is bound by the
 * popcount port, not by loads. 16 accumulators + 8 operands fit the 32 zmm registers.
 * Accumulators are 64-bit lanes; a lane gains at most 64 per step and sees K/512 steps,
 * so it holds at most K <= 65536: no overflow is possible. Edge tiles (M or N not a
 * multiple of 4) are their own instantiations rather than padded full tiles, so M = 1
 * (one output position) does not pay for four rows. Every load is zero-masked to the
 * words left in the row, so the K tail (KW not a multiple of 8) needs no second copy of
 * the loop: masked words are not read and xor to zero. */
#include "kernels/popcount/popcount_impl.h"

#if LBR_X86
#define MR 4
#define NR 4

/* rm, rn are constants in every instantiation: the loops run to MR, NR so that both
 * compilers unroll them before inlining, and the guards fold away after it. */
LBR_INLINE LBR_TARGET_AVX512POP void xnor_tile(int rm, int rn, int K, const uint64_t *A, const uint64_t *W,
                                                int32_t *C, int ldc) {
    const int KW = lbr_words(K);
    __m512i acc[MR][NR], a[MR], w[NR];
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_si512();
    }
    for (int k = 0; k < KW; k += 8) {
        const __mmask8 mk = KW - k >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (KW - k)) - 1);
        LBR_UNROLL
        for (int i = 0; i < MR; i++)
            if (i < rm) a[i] = _mm512_maskz_loadu_epi64(mk, A + (size_t)i * KW + k);
        LBR_UNROLL
        for (int j = 0; j < NR; j++)
            if (j < rn) w[j] = _mm512_maskz_loadu_epi64(mk, W + (size_t)j * KW + k);
        LBR_UNROLL
        for (int i = 0; i < MR; i++) {
            LBR_UNROLL
            for (int j = 0; j < NR; j++)
                if (i < rm && j < rn)
                    acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(a[i], w[j])));
        }
    }
    /* two rows per reduction; a missing second row (rm odd) reduces zeros */
    const __m512i k64 = _mm512_set1_epi64(K);
    LBR_UNROLL
    for (int i = 0; i < MR; i += 2) {
        if (i >= rm) continue;
        const __m512i x[8] = {acc[i][0], acc[i][1], acc[i][2], acc[i][3],
                              acc[i + 1][0], acc[i + 1][1], acc[i + 1][2], acc[i + 1][3]};
        const __m512i d = lbr_hsum8_epi64(x);
        lbr_store_2x4(_mm512_sub_epi64(k64, _mm512_add_epi64(d, d)), C + (size_t)i * ldc, ldc, rm - i, rn);
    }
}

LBR_TARGET_AVX512POP void lbr_xnor_avx512(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C,
                                          int ldc) {
    const int KW = lbr_words(K);
    for (int m = 0; m < M; m += MR) {
        const int rm = M - m < MR ? M - m : MR;
        const uint64_t *a = A + (size_t)m * KW;
        for (int n = 0; n < N; n += NR) {
            const int rn = N - n < NR ? N - n : NR;
            const uint64_t *w = W + (size_t)n * KW;
            int32_t *c = C + (size_t)m * ldc + n;
            LBR_TILE_SWITCH_4x4(rm, rn, xnor_tile, K, a, w, c, ldc)
        }
    }
}
#endif
