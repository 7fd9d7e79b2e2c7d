/* Bucket kernels (runtime/kernels/bucket): the scalar reference against a naive
 * definition over unpacked integer codes, and every variant this CPU runs against the
 * reference, bit-exact (memcmp), with a canary after C to catch writes past its end.
 *
 * Shapes: every weight width 1..4 x activation width 1..8 x K in {1, 3, 4, 5, 63, 64, 65,
 * 127, 128, 129, 255, 256, 257, 288, 511, 513, 1024, 3136, 4113} (word, 4-word chunk
 * and tile edges of the SIMD variants) with random M, N in 1..40 (1 forced now and
 * then; the product capped so the test stays fast), then extreme values: every
 * activation 2^abits - 1 with random weights, all weights J - 1 and all weights 0, at
 * K = 513 and 4113, and K = 65536 (the largest allowed, C = 65536 * 255 in one bucket).
 * Also checked on the reference: the J buckets of an output sum to the plain sum of the
 * activations over k. Fixed seed. */
#include "kernels/lbr_kernels.h"
#include "test_util.h"

#include <stdint.h>
#include <string.h>

#define GUARD 64
static const int32_t CANARY = 0x5eadbeef;

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t rnd(void) { return lbt_splitmix64(&rng); }
static int rnd_int(int lo, int hi) { return lo + (int)(rnd() % (uint64_t)(hi - lo + 1)); }

/* rows x K codes -> bit planes: row r's plane p at word ((size_t)r * bits + p) * KW */
static void pack(uint64_t *dst, const uint8_t *codes, int rows, int K, int bits) {
    const int KW = lbr_words(K);
    memset(dst, 0, sizeof(uint64_t) * (size_t)rows * bits * KW);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < K; k++)
            for (int p = 0; p < bits; p++)
                if ((codes[(size_t)r * K + k] >> p) & 1)
                    dst[((size_t)r * bits + p) * KW + (k >> 6)] |= 1ull << (k & 63);
}

static void naive(int32_t *C, const uint8_t *a, const uint8_t *w, int M, int N, int K, int J) {
    memset(C, 0, sizeof(int32_t) * (size_t)M * N * J);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) C[((size_t)m * N + n) * J + w[(size_t)n * K + k]] += a[(size_t)m * K + k];
}

enum { A_RANDOM, A_MAX };
enum { W_RANDOM, W_TOP, W_ZERO };

static void run_case(int M, int N, int K, int abits, int wbits, int amode, int wmode, const lbr_kvariant *var,
                     int nv) {
    const int KW = lbr_words(K), J = 1 << wbits, amax = (1 << abits) - 1;
    const size_t nc = (size_t)M * N * J;
    if (nc > ((size_t)1 << 30)) return; /* not a shape of this test; bounds sizes for GCC's overread check */
    uint8_t *a = malloc((size_t)M * K), *w = malloc((size_t)N * K);
    uint64_t *A = malloc(sizeof(uint64_t) * (size_t)M * abits * KW);
    uint64_t *W = malloc(sizeof(uint64_t) * (size_t)N * wbits * KW);
    int32_t *want = malloc(sizeof(int32_t) * nc), *ref = malloc(sizeof(int32_t) * nc);
    int32_t *got = malloc(sizeof(int32_t) * (nc + GUARD));
    if (!a || !w || !A || !W || !want || !ref || !got) {
        CHECK_MSG(0, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < (size_t)M * K; i++)
        a[i] = (uint8_t)(amode == A_MAX ? amax : (int)(rnd() & (uint64_t)amax));
    for (size_t i = 0; i < (size_t)N * K; i++)
        w[i] = (uint8_t)(wmode == W_TOP ? J - 1 : wmode == W_ZERO ? 0 : (int)(rnd() & (uint64_t)(J - 1)));
    pack(A, a, M, K, abits);
    pack(W, w, N, K, wbits);
    naive(want, a, w, M, N, K, J);

    /* the reference first: against the naive sums, and its buckets against sum_k a */
    for (size_t i = 0; i < nc; i++) ref[i] = CANARY;
    lbr_bucket_ref(M, N, K, abits, wbits, A, W, ref);
    CHECK_MSG(memcmp(ref, want, sizeof(int32_t) * nc) == 0, "ref != naive: M=%d N=%d K=%d abits=%d wbits=%d", M, N,
              K, abits, wbits);
    int sums_ok = 1;
    for (int m = 0; m < M; m++) {
        int64_t s = 0;
        for (int k = 0; k < K; k++) s += a[(size_t)m * K + k];
        for (int n = 0; n < N; n++) {
            int64_t t = 0;
            for (int j = 0; j < J; j++) t += ref[((size_t)m * N + n) * J + j];
            sums_ok &= t == s;
        }
    }
    CHECK_MSG(sums_ok, "ref buckets do not sum to sum_k a: M=%d N=%d K=%d abits=%d wbits=%d", M, N, K, abits, wbits);

    for (int v = 1; v < nv; v++) {
        for (size_t i = 0; i < nc + GUARD; i++) got[i] = CANARY;
        ((lbr_bucket_fn)var[v].fn)(M, N, K, abits, wbits, A, W, got);
        int diff = memcmp(got, ref, sizeof(int32_t) * nc) != 0, guard_ok = 1;
        for (size_t i = nc; i < nc + GUARD; i++) guard_ok &= got[i] == CANARY;
        if (diff) {
            size_t i = 0;
            while (got[i] == ref[i]) i++;
            CHECK_MSG(0, "%s != ref: M=%d N=%d K=%d abits=%d wbits=%d amode=%d wmode=%d: first at m=%d n=%d j=%d: "
                      "%d vs %d", var[v].name, M, N, K, abits, wbits, amode, wmode, (int)(i / J / N),
                      (int)(i / J % N), (int)(i % J), got[i], ref[i]);
        } else {
            CHECK(1);
        }
        CHECK_MSG(guard_ok, "%s wrote past C: M=%d N=%d K=%d abits=%d wbits=%d", var[v].name, M, N, K, abits, wbits);
    }
done:
    free(a);
    free(w);
    free(A);
    free(W);
    free(want);
    free(ref);
    free(got);
}

/* random M, N in 1..40, shrunk until M * N * K <= cap */
static void random_shape(int *M, int *N, int K, int s, long cap) {
    *M = s % 5 == 0 ? 1 : rnd_int(1, 40);
    *N = s % 7 == 3 ? 1 : rnd_int(1, 40);
    while ((long)*M * *N * K > cap) {
        if (*M >= *N) *M = (*M + 1) / 2;
        else *N = (*N + 1) / 2;
    }
}

int main(void) {
    lbr_cpu cpu;
    lbr_cpu_detect(&cpu);
    lbr_kvariant var[4];
    const int nv = lbr_kernel_variants(LBR_K_BUCKET, &cpu, var);
    CHECK(nv >= 1 && strcmp(var[0].name, "ref") == 0 && (lbr_bucket_fn)var[0].fn == lbr_bucket_ref);
    printf("bucket variants:");
    for (int v = 0; v < nv; v++) printf(" %s", var[v].name);
    printf("\n");

    static const int Ks[] = {1, 3, 4, 5, 63, 64, 65, 127, 128, 129, 255, 256, 257, 288, 511, 513, 1024, 3136, 4113};
    const int nk = (int)(sizeof Ks / sizeof Ks[0]);
    int s = 0;
    for (int wbits = 1; wbits <= 4; wbits++)
        for (int abits = 1; abits <= 8; abits++)
            for (int i = 0; i < nk; i++, s++) {
                int M, N;
                random_shape(&M, &N, Ks[i], s, 80000);
                run_case(M, N, Ks[i], abits, wbits, A_RANDOM, W_RANDOM, var, nv);
            }
    /* full 40 x 40 tiles and row blocks at a few K */
    run_case(40, 40, 288, 4, 4, A_RANDOM, W_RANDOM, var, nv);
    run_case(40, 39, 129, 2, 2, A_RANDOM, W_RANDOM, var, nv);
    run_case(33, 40, 65, 8, 1, A_RANDOM, W_RANDOM, var, nv);
    run_case(17, 37, 257, 6, 3, A_RANDOM, W_RANDOM, var, nv);
    run_case(40, 40, 1024, 8, 2, A_RANDOM, W_RANDOM, var, nv); /* row blocks x tiles x chunks, two digits */
    run_case(37, 33, 1100, 3, 4, A_RANDOM, W_RANDOM, var, nv);

    for (int wbits = 1; wbits <= 4; wbits++)
        for (int abits = 1; abits <= 8; abits++)
            for (int wmode = W_RANDOM; wmode <= W_ZERO; wmode++) {
                int M, N;
                random_shape(&M, &N, 513, s++, 20000);
                run_case(M, N, 513, abits, wbits, A_MAX, wmode, var, nv);
                random_shape(&M, &N, 4113, s++, 20000);
                run_case(M, N, 4113, abits, wbits, A_MAX, wmode, var, nv);
            }
    run_case(2, 3, 65536, 8, 4, A_MAX, W_TOP, var, nv);
    run_case(1, 2, 65536, 8, 1, A_MAX, W_ZERO, var, nv);
    run_case(3, 2, 65536, 4, 2, A_RANDOM, W_RANDOM, var, nv);
    return lbt_report("test_kernels_bucket");
}
