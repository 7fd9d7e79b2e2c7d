/* bitserial_lanes_avx512.c - bitserial on the lanes layout (lbr_kernels.h) with VPOPCNTQ:
 * a zmm holds word k of 8 outputs' P rows (the next zmm their Q rows), and an activation
 * word is broadcast to all 8 lanes, so each lane sums one output's popcounts and a tile
 * ends with its 8 outputs' sums in lane order: no horizontal sums, and every lane does
 * useful work whatever K is (the row kernel, bitserial_avx512.c, uses 5 of 8 lanes at
 * K = 288 and then reduces them across lanes).
 * A tile is MR activation rows x NB blocks of 8 outputs: a step (one word k) loads the
 * blocks' P and Q vectors (2 NB) and broadcasts MR activation words, for MR x NB products
 * of two popcounts; 6 vector operations per product (2 AND, 2 VPOPCNTQ, SUB, ADD) on the
 * two 512-bit ports, so the loop is ALU-bound (about 3 cycles a product) and the tile only
 * needs to cover the loads and the loop's own work. 6 x 2 keeps 12 accumulators, 4 weight
 * vectors and a broadcast in registers without spills; on fmnist-cnn's shapes it measured
 * 3-5 % faster than 4 x 2, and level with 8 x 1, 2 x 2 and 4 x 1 within the noise (one
 * core of a Xeon with VPOPCNTDQ, abits 1 and 2).
 * Planes are folded in by Horner's rule, highest first (acc = 2 acc + plane sum), in
 * signed 64-bit lanes: |plane sum| <= K and |total| <= 255 K < 2^24, so nothing
 * overflows, and each lane narrows to its int32 result exactly. The last block of a row
 * of tiles is stored under a mask of the outputs left (the layout's zero rows compute
 * zeros that are never stored). Edge tiles (fewer rows, one block) are their own
 * instantiations. K needs no tail: bits past K are zero in both operands. */
#include "kernels/popcount/popcount_impl.h"

#if LBR_X86
#define MR 6
#define NB 2

/* rm, rb are constants in every instantiation (see LBR_UNROLL); nlast: the outputs of
 * the tile's last block to store, 1..8. */
LBR_INLINE LBR_TARGET_AVX512POP void lanes_tile(int rm, int rb, int KW, int abits, const uint64_t *A,
                                                 const uint64_t *W, int32_t *C, int ldc, int nlast) {
    const size_t rs = (size_t)abits * KW, bs = (size_t)KW * 16; /* row and block strides */
    __m512i acc[MR][NB], p[NB], q[NB];
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NB; j++) acc[i][j] = _mm512_setzero_si512();
    }
    for (int b = abits - 1; b >= 0; b--) {
        const uint64_t *ab = A + (size_t)b * KW;
        LBR_UNROLL
        for (int i = 0; i < MR; i++) {
            LBR_UNROLL
            for (int j = 0; j < NB; j++)
                if (i < rm && j < rb) acc[i][j] = _mm512_add_epi64(acc[i][j], acc[i][j]);
        }
        for (int k = 0; k < KW; k++) {
            LBR_UNROLL
            for (int j = 0; j < NB; j++) {
                if (j >= rb) continue;
                p[j] = _mm512_loadu_si512((const void *)(W + j * bs + (size_t)k * 16));
                q[j] = _mm512_loadu_si512((const void *)(W + j * bs + (size_t)k * 16 + 8));
            }
            LBR_UNROLL
            for (int i = 0; i < MR; i++) {
                if (i >= rm) continue;
                const __m512i a = _mm512_set1_epi64((long long)ab[i * rs + k]);
                LBR_UNROLL
                for (int j = 0; j < NB; j++) {
                    if (j >= rb) continue;
                    const __m512i plus = _mm512_popcnt_epi64(_mm512_and_si512(a, p[j]));
                    const __m512i minus = _mm512_popcnt_epi64(_mm512_and_si512(a, q[j]));
                    acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_sub_epi64(plus, minus));
                }
            }
        }
    }
    LBR_UNROLL
    for (int i = 0; i < MR; i++) {
        LBR_UNROLL
        for (int j = 0; j < NB; j++) {
            if (i >= rm || j >= rb) continue;
            const __mmask8 mk = j == rb - 1 ? (__mmask8)((1u << nlast) - 1) : (__mmask8)0xff;
            _mm256_mask_storeu_epi32(C + (size_t)i * ldc + j * 8, mk, _mm512_cvtepi64_epi32(acc[i][j]));
        }
    }
}

#define LANES_CASE(i, ...)                                                                                   \
    case i:                                                                                                  \
        if (rb == NB) lanes_tile(i, NB, __VA_ARGS__);                                                        \
        else lanes_tile(i, 1, __VA_ARGS__);                                                                  \
        break;

LBR_TARGET_AVX512POP void lbr_bitserial_lanes_avx512(int M, int N, int K, int abits, const uint64_t *A,
                                                     const uint64_t *W, int32_t *C, int ldc) {
    _Static_assert(MR == 6 && NB == 2, "the switch below covers 1..6 rows and 1..2 blocks");
    const int KW = lbr_words(K), nblk = (N + 7) / 8;
    for (int m = 0; m < M; m += MR) {
        const int rm = M - m < MR ? M - m : MR;
        const uint64_t *a = A + (size_t)m * abits * KW;
        for (int n = 0; n < nblk; n += NB) {
            const int rb = nblk - n < NB ? nblk - n : NB;
            const int nlast = N - (n + rb - 1) * 8 < 8 ? N - (n + rb - 1) * 8 : 8;
            const uint64_t *w = W + (size_t)n * KW * 16;
            int32_t *c = C + (size_t)m * ldc + n * 8;
            switch (rm) {
                LANES_CASE(1, KW, abits, a, w, c, ldc, nlast)
                LANES_CASE(2, KW, abits, a, w, c, ldc, nlast)
                LANES_CASE(3, KW, abits, a, w, c, ldc, nlast)
                LANES_CASE(4, KW, abits, a, w, c, ldc, nlast)
                LANES_CASE(5, KW, abits, a, w, c, ldc, nlast)
                LANES_CASE(6, KW, abits, a, w, c, ldc, nlast)
            }
        }
    }
}
#endif
