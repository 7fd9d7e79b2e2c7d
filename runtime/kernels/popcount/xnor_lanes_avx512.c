/* xnor_lanes_avx512.c - xnor on the xnor lanes layout (lbr_kernels.h) with VPOPCNTQ: a
 * zmm holds word k of a block's 8 weight rows, and an activation word is broadcast to all
 * 8 lanes, so each lane sums one output's popcounts and a tile ends with its 8 outputs'
 * sums in lane order: no horizontal sums (the row kernel, xnor_avx512.c, reduces 16
 * accumulators across lanes per tile, and uses 5 of 8 lanes at K = 288).
 * A tile is MR activation rows x NB blocks of 8 outputs: a step (one word k) loads the
 * blocks' NB weight vectors and broadcasts MR activation words, for MR x NB products of
 * 3 vector operations each (XOR, VPOPCNTQ, ADD), so the loop is ALU-bound and the tile
 * only needs to cover the loads (MR + NB per step) and the loop's own work. 6 x 2, as in
 * bitserial_lanes_avx512.c, keeps 12 accumulators, 2 weight vectors and a broadcast in
 * registers without spills, and reads each weight vector once per 6 rows.
 * Accumulators are 64-bit lanes holding d = sum of popcount(a xor w) <= K <= 65536;
 * C = K - 2 d narrows to int32 exactly. The last block of a row of tiles is stored under
 * a mask of the outputs left (the layout's zero rows compute popcount(a), never stored).
 * Edge tiles (fewer rows, one block) are their own instantiations. K needs no tail: bits
 * past K are zero in both operands and xor to zero. */
#include "kernels/popcount/popcount_impl.h"

#if LBR_X86
#define MR 6
#define NB 2

/* rm, rb are constants in every instantiation (see LBR_UNROLL); nlast: the outputs of
 * the tile's last block to store, 1..8. */
LBR_INLINE LBR_TARGET_AVX512POP void lanes_tile(int rm, int rb, int K, const uint64_t *A, const uint64_t *W,
                                                 int32_t *C, int ldc, int nlast) {
    const int KW = lbr_words(K);
    const size_t bs = (size_t)KW * 8; /* block stride */
    __m512i acc[MR][NB], w[NB];
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NB; j++) acc[i][j] = _mm512_setzero_si512();
    }
    for (int k = 0; k < KW; k++) {
        LBR_UNROLL
        for (int j = 0; j < NB; j++)
            if (j < rb) w[j] = _mm512_loadu_si512((const void *)(W + j * bs + (size_t)k * 8));
        LBR_UNROLL
        for (int i = 0; i < MR; i++) {
            if (i >= rm) continue;
            const __m512i a = _mm512_set1_epi64((long long)A[(size_t)i * KW + k]);
            LBR_UNROLL
            for (int j = 0; j < NB; j++)
                if (j < rb) acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(a, w[j])));
        }
    }
    const __m512i k64 = _mm512_set1_epi64(K);
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NB; j++) {
            if (i >= rm || j >= rb) continue;
            const __mmask8 mk = j == rb - 1 ? (__mmask8)((1u << nlast) - 1) : (__mmask8)0xff;
            const __m512i c = _mm512_sub_epi64(k64, _mm512_add_epi64(acc[i][j], acc[i][j]));
            _mm256_mask_storeu_epi32(C + (size_t)i * ldc + j * 8, mk, _mm512_cvtepi64_epi32(c));
        }
    }
}

#define LANES_CASE(i, ...)                                                                                   \
    case i:                                                                                                  \
        if (rb == NB) lanes_tile(i, NB, __VA_ARGS__);                                                        \
        else lanes_tile(i, 1, __VA_ARGS__);                                                                  \
        break;

LBR_TARGET_AVX512POP void lbr_xnor_lanes_avx512(int M, int N, int K, const uint64_t *A, const uint64_t *W,
                                                int32_t *C, int ldc) {
    _Static_assert(MR == 6 && NB == 2, "the switch below covers 1..6 rows and 1..2 blocks");
    const int KW = lbr_words(K), nblk = (N + 7) / 8;
    for (int m = 0; m < M; m += MR) {
        const int rm = M - m < MR ? M - m : MR;
        const uint64_t *a = A + (size_t)m * KW;
        for (int n = 0; n < nblk; n += NB) {
            const int rb = nblk - n < NB ? nblk - n : NB;
            const int nlast = N - (n + rb - 1) * 8 < 8 ? N - (n + rb - 1) * 8 : 8;
            const uint64_t *w = W + (size_t)n * KW * 8;
            int32_t *c = C + (size_t)m * ldc + n * 8;
            switch (rm) {
                LANES_CASE(1, K, a, w, c, ldc, nlast)
                LANES_CASE(2, K, a, w, c, ldc, nlast)
                LANES_CASE(3, K, a, w, c, ldc, nlast)
                LANES_CASE(4, K, a, w, c, ldc, nlast)
                LANES_CASE(5, K, a, w, c, ldc, nlast)
                LANES_CASE(6, K, a, w, c, ldc, nlast)
            }
        }
    }
}
#endif
