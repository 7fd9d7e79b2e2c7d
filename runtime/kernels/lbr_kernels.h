/* lbr_kernels.h - the packed runtime's integer GEMM kernels, one family per arithmetic.
 *
 * Every kernel computes an int32 matrix C (M rows of activations x N rows of weights,
 * row-major, leading dimension ldc) from integer codes, exactly: the scalar reference
 * (`*_ref`) is the definition, and every SIMD variant must give bit-identical results
 * for every shape (tests/test_kernels_<family>.c). The caller (runtime/lbr.c) turns C into
 * values with per-layer or per-channel scales, codebooks and folded batch norm.
 *
 * Layouts (all buffers owned by the caller; kernels never allocate):
 *   bit rows   K one-bit values in KW = lbr_words(K) uint64 words; element k is bit
 *              (k & 63) of word (k >> 6); bits at k >= K are zero.
 *   bit planes a row of K unsigned b-bit codes as b bit rows, plane p holding bit p of
 *              every code; row m's plane p starts at word ((size_t)m * b + p) * KW.
 *   byte rows  K int8 or uint8 values padded with zeros to KB = lbr_bytes(K) bytes.
 *   lanes      bitserial weights (N rows of P and of Q, bit rows) in blocks of 8
 *              outputs, NB = ceil(N / 8) blocks, word k of the block's 8 P rows then
 *              word k of its 8 Q rows: 16 uint64 per (block, word), k fastest after
 *              them, so a block is one contiguous stream of 128-byte steps:
 *                W[((b * KW + k) * 2 + 0) * 8 + j] = P[(8 b + j) * KW + k]
 *                W[((b * KW + k) * 2 + 1) * 8 + j] = Q[(8 b + j) * KW + k]
 *              Outputs 8 b + j >= N are zero rows. lbr_bitserial_lanes_words(N, K)
 *              words in all; lbr_bitserial_pack_lanes builds it from P and Q.
 *   xnor lanes xnor weights (N bit rows) in the same blocks of 8 outputs, word k of the
 *              block's 8 rows contiguous: 8 uint64 per (block, word), k fastest after
 *              them, so a block is one contiguous stream of 64-byte steps:
 *                W[(b * KW + k) * 8 + j] = Wrow[(8 b + j) * KW + k]
 *              Outputs 8 b + j >= N are zero rows. lbr_xnor_lanes_words(N, K) words in
 *              all; lbr_xnor_pack_lanes builds it from the bit rows.
 *
 * Families:
 *   xnor       binary weights x binary activations, both {-1, +1} stored as bits
 *              (1 = +1): C = K - 2 popcount(A xor W). Zero padding in convolutions is
 *              the caller's correction (the padded inputs are stored as +1 bits, and
 *              the caller subtracts their contribution per output position). The same
 *              sums also come from the weights in the xnor lanes layout, whose kernels
 *              (like bitserial's) put 8 outputs in the lanes of a vector.
 *   bitserial  ternary or binary weights as two bit rows per output, P (w = +1) and
 *              Q (w = -1), x unsigned b-bit activation codes as bit planes:
 *              C = sum_p 2^p (popcount(A_p & P) - popcount(A_p & Q)); P and Q
 *              need not be disjoint (the formula holds as written). The same sums
 *              also come from the weights in the lanes layout (below), whose kernels
 *              put 8 outputs in the lanes of a vector: no horizontal sums, and no
 *              lanes wasted on a K of a few words.
 *   s8u8       int8 weights x uint8 activation codes (up to 8 bits), byte rows:
 *              C = sum_k a_k w_k (VNNI vpdpbusd where present).
 *   shift      power-of-two weights as int8 shift codes s (0: zero; s > 0: +2^(s-1);
 *              s < 0: -2^(-s-1); |s| <= 8, larger codes are invalid) x uint8
 *              activation codes, byte rows:
 *              C = sum_k sign(s_k) (a_k << (|s_k| - 1)), no multiplications.
 *   bucket     codebook weights (b_w <= 4 bits, unsigned codes as bit planes,
 *              J = 2^b_w entries) x unsigned b-bit activation codes (bit planes):
 *              C[(m * N + n) * J + j] = sum over k with w_k = j of a_k, the bucket sums
 *              the caller combines with the float codebook, sum_j cb[j] * C_j (in j
 *              order), so that the integer part is exact. SIMD variants may build
 *              lookup tables over groups of activations; the result is the same.
 * Sizes: 1 <= M, N; N <= ldc; 1 <= K <= 65536; activation bits 1..8. Results fit int32 for every
 * K allowed (|C| <= 65536 * 255 * 128 < 2^31).
 */
#ifndef LBR_KERNELS_H
#define LBR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

static inline int lbr_words(int k) { return (k + 63) >> 6; }
static inline int lbr_bytes(int k) { return (k + 63) & ~63; }

/* What the CPU offers, read once at start-up (lbr_cpu_detect). */
typedef struct lbr_cpu {
    int avx2, avx512bw, avx512vpopcntdq, avx512vnni;
} lbr_cpu;
void lbr_cpu_detect(lbr_cpu *c);

typedef void (*lbr_xnor_fn)(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C, int ldc);
typedef void (*lbr_bitserial_fn)(int M, int N, int K, int abits, const uint64_t *A, const uint64_t *P,
                                 const uint64_t *Q, int32_t *C, int ldc);
typedef void (*lbr_s8u8_fn)(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc);
typedef void (*lbr_shift_fn)(int M, int N, int K, const uint8_t *A, const int8_t *S, int32_t *C, int ldc);
typedef void (*lbr_bucket_fn)(int M, int N, int K, int abits, int wbits, const uint64_t *A, const uint64_t *W,
                              int32_t *C);

/* scalar references: the definitions */
void lbr_xnor_ref(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C, int ldc);
void lbr_bitserial_ref(int M, int N, int K, int abits, const uint64_t *A, const uint64_t *P, const uint64_t *Q,
                       int32_t *C, int ldc);
void lbr_s8u8_ref(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc);
void lbr_shift_ref(int M, int N, int K, const uint8_t *A, const int8_t *S, int32_t *C, int ldc);
void lbr_bucket_ref(int M, int N, int K, int abits, int wbits, const uint64_t *A, const uint64_t *W, int32_t *C);

/* One family's variants. `name` is "ref", "avx2", "avx512" (or "avx512vnni"); a variant
 * the CPU cannot run is absent from the list lbr_kernel_variants returns. */
typedef enum { LBR_K_XNOR, LBR_K_BITSERIAL, LBR_K_S8U8, LBR_K_SHIFT, LBR_K_BUCKET, LBR_K_COUNT } lbr_kfamily;
typedef struct lbr_kvariant {
    const char *name;
    void (*fn)(void);   /* cast to the family's lbr_*_fn */
} lbr_kvariant;
/* The variants of `family` this CPU runs, best last; returns how many (at most 4). */
int lbr_kernel_variants(lbr_kfamily family, const lbr_cpu *cpu, lbr_kvariant out[4]);

/* The lanes layout (above) of bitserial weights: its size in uint64 words, and the packing
 * from N bit rows each of P and Q (KW = lbr_words(K) words a row) into out (that many
 * words; every word written, the padding outputs as zeros). Scalar, any caller. The
 * lanes kernels take W = out and give C as lbr_bitserial_ref(M, N, K, abits, A, P, Q, C,
 * ldc) does, bit for bit; they only read whole blocks of W and write only C's M x N block. */
size_t lbr_bitserial_lanes_words(int N, int K);
void lbr_bitserial_pack_lanes(int N, int K, const uint64_t *P, const uint64_t *Q, uint64_t *out);
/* Where word w of output n's P row (neg 0) or Q row (neg 1) lies in the lanes layout: the
 * layout's one definition, for callers that write the bits in place (runtime/lbr.c). */
static inline size_t lbr_bitserial_lanes_index(int K, int n, int w, int neg) {
    return (((size_t)(n >> 3) * lbr_words(K) + (size_t)w) * 2 + (size_t)neg) * 8 + (size_t)(n & 7);
}
typedef void (*lbr_bitserial_lanes_fn)(int M, int N, int K, int abits, const uint64_t *A, const uint64_t *W,
                                       int32_t *C, int ldc);
/* The lanes kernels this CPU runs ("avx2-lanes", "avx512-lanes"), best last; returns how
 * many (0 to 2: none without AVX2, where lbr_bitserial_ref on P and Q serves). Their fn
 * casts to lbr_bitserial_lanes_fn. */
int lbr_bitserial_lanes_variants(const lbr_cpu *cpu, lbr_kvariant out[4]);

/* The xnor lanes layout (above): its size in uint64 words, and the packing from N bit rows
 * W (KW = lbr_words(K) words a row) into out (that many words; every word written, the
 * padding outputs as zeros). Scalar, any caller. The xnor lanes kernels take W = out and
 * give C as lbr_xnor_ref(M, N, K, A, W, C, ldc) does on the rows, bit for bit; they only
 * read whole blocks of out and write only C's M x N block (never outputs >= N). */
size_t lbr_xnor_lanes_words(int N, int K);
void lbr_xnor_pack_lanes(int N, int K, const uint64_t *W, uint64_t *out);
/* Where word w of output n's row lies in the xnor lanes layout: the layout's one definition. */
static inline size_t lbr_xnor_lanes_index(int K, int n, int w) {
    return ((size_t)(n >> 3) * lbr_words(K) + (size_t)w) * 8 + (size_t)(n & 7);
}
typedef void (*lbr_xnor_lanes_fn)(int M, int N, int K, const uint64_t *A, const uint64_t *W, int32_t *C, int ldc);
/* The xnor lanes kernels this CPU runs ("avx2-lanes": AVX2; "avx512-lanes": AVX-512BW and
 * VPOPCNTDQ), best last; returns how many (0 to 2: none without AVX2, where lbr_xnor_ref
 * on the rows serves). Their fn casts to lbr_xnor_lanes_fn. */
int lbr_xnor_lanes_variants(const lbr_cpu *cpu, lbr_kvariant out[4]);

#endif
