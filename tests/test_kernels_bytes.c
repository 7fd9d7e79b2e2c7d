/* Byte-row GEMM kernels (s8u8, shift): every variant this CPU runs against the scalar
 * reference, bit for bit (memcmp of the whole C buffer, so entries outside the M x N block
 * must be left as they were), over shapes that hit every edge tile (M, N from 1 to 70,
 * odd sizes) and K around the 64-byte row blocks; and the reference against a naive
 * element-by-element definition in int64, so that a wrong reference fails too. The
 * extreme cases (a = 255 with w = -128 or +127, shift codes +-8, at K = 65536) reach
 * |C| = 65536 * 255 * 128, the largest value the format allows, and are also compared
 * with the closed form. */
#include "kernels/lbr_kernels.h"
#include "test_util.h"

#include <stdint.h>
#include <string.h>

typedef void (*gemm_fn)(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc);

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) { return lbt_splitmix64(&rng); }
static int rnd(int n) { return (int)(next_u64() % (uint64_t)n); }

static const char *fam_name(lbr_kfamily f) { return f == LBR_K_S8U8 ? "s8u8" : "shift"; }

/* the weight a code stands for */
static int64_t weight(lbr_kfamily f, int8_t w) {
    if (f == LBR_K_S8U8) return w;
    return w > 0 ? (int64_t)1 << (w - 1) : w < 0 ? -((int64_t)1 << (-w - 1)) : 0;
}

enum { A_RANDOM, A_BITS, A_MAX };      /* activations: uniform bytes, b-bit codes, all 255 */
enum { W_RANDOM, W_MIN, W_MAX, W_SPARSE }; /* weights: uniform, all most negative, all most positive, mostly 0 */

/* M rows of K values in zero-padded rows of lbr_bytes(K), exactly sized so that ASan sees
 * any read past the last row */
static uint8_t *make_a(int M, int K, int kind) {
    const size_t KB = (size_t)lbr_bytes(K);
    uint8_t *a = calloc((size_t)M * KB, 1);
    const int bits = 1 + rnd(8);
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++)
            a[m * KB + k] = kind == A_MAX ? 255 : kind == A_BITS ? (uint8_t)rnd(1 << bits) : (uint8_t)rnd(256);
    return a;
}
static int8_t *make_w(lbr_kfamily f, int N, int K, int kind) {
    const size_t KB = (size_t)lbr_bytes(K);
    int8_t *w = calloc((size_t)N * KB, 1);
    const int lo = f == LBR_K_S8U8 ? -128 : -8, hi = f == LBR_K_S8U8 ? 127 : 8;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            int v = lo + rnd(hi - lo + 1);
            if (kind == W_MIN) v = lo;
            else if (kind == W_MAX) v = hi;
            else if (kind == W_SPARSE && rnd(4)) v = 0;
            w[n * KB + k] = (int8_t)v;
        }
    return w;
}

static lbr_kvariant variants[LBR_K_COUNT][4];
static int nvariants[LBR_K_COUNT];

/* C from every variant against the reference; naive: the reference against the int64
 * definition too; want: if not NULL, the value every entry must have */
static void run(lbr_kfamily f, int M, int N, int K, int ldc, const uint8_t *A, const int8_t *W, int naive,
                const int64_t *want) {
    const size_t KB = (size_t)lbr_bytes(K), nc = (size_t)(M - 1) * ldc + N;
    int32_t *fill = malloc(nc * sizeof *fill), *ref = malloc(nc * sizeof *ref), *c = malloc(nc * sizeof *c);
    for (size_t i = 0; i < nc; i++) fill[i] = (int32_t)next_u64();
    memcpy(ref, fill, nc * sizeof *ref);
    ((gemm_fn)variants[f][0].fn)(M, N, K, A, W, ref, ldc);

    int outside = 0, wrong = 0;
    for (int m = 0; m < M; m++)
        for (int j = N; j < ldc && (size_t)m * ldc + j < nc; j++) outside += ref[m * ldc + j] != fill[m * ldc + j];
    CHECK_MSG(outside == 0, "%s ref wrote %d entries outside C (M=%d N=%d K=%d ldc=%d)", fam_name(f), outside, M, N,
              K, ldc);
    if (naive || want) {
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                int64_t e = 0;
                for (int k = 0; k < K; k++) e += (int64_t)A[m * KB + k] * weight(f, W[n * KB + k]);
                if (want && e != *want) wrong++;
                if (e < INT32_MIN || e > INT32_MAX || ref[m * ldc + n] != (int32_t)e) wrong++;
            }
        CHECK_MSG(wrong == 0, "%s ref: %d entries differ from the definition (M=%d N=%d K=%d)", fam_name(f), wrong, M,
                  N, K);
    }
    for (int v = 1; v < nvariants[f]; v++) {
        memcpy(c, fill, nc * sizeof *c);
        ((gemm_fn)variants[f][v].fn)(M, N, K, A, W, c, ldc);
        int diff = 0;
        if (memcmp(c, ref, nc * sizeof *c))
            for (size_t i = 0; i < nc; i++) diff += c[i] != ref[i];
        CHECK_MSG(diff == 0, "%s %s: %d entries differ from ref (M=%d N=%d K=%d ldc=%d)", fam_name(f),
                  variants[f][v].name, diff, M, N, K, ldc);
    }
    free(fill);
    free(ref);
    free(c);
}

static void shape(lbr_kfamily f, int M, int N, int K, int akind, int wkind, int naive) {
    const int ldc = rnd(3) ? N : N + 1 + rnd(7);
    uint8_t *A = make_a(M, K, akind);
    int8_t *W = make_w(f, N, K, wkind);
    run(f, M, N, K, ldc, A, W, naive, NULL);
    free(A);
    free(W);
}

static void family(lbr_kfamily f, const lbr_cpu *cpu) {
    nvariants[f] = lbr_kernel_variants(f, cpu, variants[f]);
    CHECK(nvariants[f] >= 1 && strcmp(variants[f][0].name, "ref") == 0);
    if (nvariants[f] < 1) return;
    CHECK(variants[f][0].fn == (f == LBR_K_S8U8 ? (void (*)(void))lbr_s8u8_ref : (void (*)(void))lbr_shift_ref));
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) /* as LBR_X86 */
    const int expect = 1 + (cpu->avx2 != 0) + (cpu->avx512bw != 0) + (f == LBR_K_S8U8 && cpu->avx512vnni);
    CHECK_MSG(nvariants[f] == expect, "%s: %d variants, the CPU runs %d", fam_name(f), nvariants[f], expect);
#endif
    printf("%s variants:", fam_name(f));
    for (int v = 0; v < nvariants[f]; v++) printf(" %s", variants[f][v].name);
    printf("\n");

    /* every edge tile: M, N = 1..9 cover each remainder of the 4 x 2 and 4 x 4 tiles */
    for (int M = 1; M <= 9; M++)
        for (int N = 1; N <= 9; N++) shape(f, M, N, 1 + rnd(130), A_RANDOM, W_RANDOM, 1);
    static const int Ks[] = {1, 3, 4, 63, 64, 65, 127, 128, 129, 200, 511, 512, 513, 3136, 4096 + 17};
    for (size_t i = 0; i < sizeof Ks / sizeof *Ks; i++) {
        const int K = Ks[i], big = K > 1000;
        shape(f, 1, 1, K, A_RANDOM, W_RANDOM, 1);
        shape(f, 1, 1 + rnd(70), K, A_RANDOM, W_RANDOM, 1);
        shape(f, 1 + rnd(70), 1, K, A_BITS, W_RANDOM, 1);
        shape(f, 1 + 2 * rnd(35), 1 + 2 * rnd(35), K, A_RANDOM, W_SPARSE, !big); /* odd M and N */
        shape(f, 1 + rnd(70), 1 + rnd(70), K, A_BITS, W_RANDOM, !big);
        shape(f, big ? 1 + rnd(9) : 70, 70, K, A_RANDOM, W_RANDOM, K <= 200); /* N = 70 spans W blocks at big K */
        shape(f, 1 + rnd(70), 1 + rnd(70), K, A_MAX, W_MIN, !big);
        shape(f, 1 + rnd(70), 1 + rnd(70), K, A_MAX, W_MAX, !big);
    }

    /* the int32 bound: K = 65536, a = 255, w at either end of its range */
    const int K = 65536, M = 5, N = 6, ldc = N + 3;
    uint8_t *A = make_a(M, K, A_MAX);
    for (int wkind = W_MIN; wkind <= W_MAX; wkind++) {
        int8_t *W = make_w(f, N, K, wkind);
        const int64_t want = (int64_t)K * 255 * weight(f, W[0]);
        run(f, M, N, K, ldc, A, W, 1, &want);
        free(W);
    }
    int8_t *W = make_w(f, N, K, W_RANDOM); /* mixed signs at full size */
    run(f, M, N, K, ldc, A, W, 1, NULL);
    free(W);
    free(A);
}

int main(void) {
    lbr_cpu cpu;
    lbr_cpu_detect(&cpu);
    family(LBR_K_S8U8, &cpu);
    family(LBR_K_SHIFT, &cpu);
    return lbt_report("test_kernels_bytes");
}
