/* The xnor and bitserial kernels. The scalar references are checked against the plain
 * definitions (sum over k of a_k w_k) on unpacked {-1, +1}, {-1, 0, +1} and 0..2^b-1
 * integers, packed here by a separate helper, so a wrong reference fails too; every SIMD
 * variant the CPU offers must then equal the reference bit for bit (memcmp of the whole
 * C buffer). C has ldc > N and is pre-filled with a sentinel, so a kernel that writes
 * outside the M x N block fails the same comparison. Shapes cover 1 and odd sizes in M
 * and N (edge tiles), K around word and vector boundaries (tails), K = 65536 with
 * extreme values (counter flushes, largest |C|), and overlapping P/Q bits, for which the
 * reference's formula still defines the result. The bitserial kernels on the lanes layout
 * get the same P and Q packed by lbr_bitserial_pack_lanes (into a buffer of exactly
 * lbr_bitserial_lanes_words, pre-filled with a sentinel, so a short packing or a kernel
 * reading past the last block shows under ASan) and must equal the reference too; a sweep
 * of N over 1..33 covers partial blocks and odd block counts. The xnor kernels on the
 * xnor lanes layout likewise get the xnor weight rows packed by lbr_xnor_pack_lanes
 * (exactly lbr_xnor_lanes_words, sentinel-filled) and must equal lbr_xnor_ref, over every
 * xnor shape above and a sweep of M, N (partial blocks: 1, 7, 9, 33) and K (1 to 4096 + 7).
 * Integer results: no tolerance. */
#include "kernels/lbr_kernels.h"
#include "test_util.h"

#include <stdint.h>
#include <string.h>

#define SENTINEL 0x5a5a5a5a

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng_next(void) { return lbt_splitmix64(&rng_state); }
static int rng_int(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }

/* value distributions: uniform; all +1 weights and largest codes; all -1 weights and
 * largest codes (the most negative C); skewed (mostly +1, mostly 0, mostly code 0) */
enum { DIST_UNIFORM, DIST_MAX, DIST_MIN, DIST_SKEW, DIST_COUNT };

static int8_t rand_sign(int dist) {
    switch (dist) {
    case DIST_MAX: return 1;
    case DIST_MIN: return -1;
    case DIST_SKEW: return rng_int(0, 7) ? 1 : -1;
    default: return rng_int(0, 1) ? 1 : -1;
    }
}
static int8_t rand_ternary(int dist) {
    switch (dist) {
    case DIST_MAX: return 1;
    case DIST_MIN: return -1;
    case DIST_SKEW: return (int8_t)(rng_int(0, 7) ? 0 : rng_int(0, 1) * 2 - 1);
    default: return (int8_t)rng_int(-1, 1);
    }
}
static uint8_t rand_code(int dist, int abits) {
    const int top = (1 << abits) - 1;
    switch (dist) {
    case DIST_MAX: case DIST_MIN: return (uint8_t)top;
    case DIST_SKEW: return (uint8_t)(rng_int(0, 3) ? 0 : rng_int(0, top));
    default: return (uint8_t)rng_int(0, top);
    }
}

/* rows of K values to bit rows: bit k of row r set where v[r][k] == one */
static void pack_rows(const int8_t *v, int rows, int K, int8_t one, uint64_t *out) {
    const int KW = lbr_words(K);
    memset(out, 0, (size_t)rows * KW * sizeof *out);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < K; k++)
            if (v[(size_t)r * K + k] == one) out[(size_t)r * KW + (k >> 6)] |= 1ULL << (k & 63);
}

/* rows of K b-bit codes to bit planes: plane p of row r holds bit p of each code */
static void pack_planes(const uint8_t *a, int rows, int K, int abits, uint64_t *out) {
    const int KW = lbr_words(K);
    memset(out, 0, (size_t)rows * abits * KW * sizeof *out);
    for (int r = 0; r < rows; r++)
        for (int p = 0; p < abits; p++)
            for (int k = 0; k < K; k++)
                if ((a[(size_t)r * K + k] >> p) & 1) out[((size_t)r * abits + p) * KW + (k >> 6)] |= 1ULL << (k & 63);
}

static int32_t *new_c(int M, int ldc) {
    int32_t *c = malloc((size_t)M * ldc * sizeof *c);
    for (size_t i = 0; i < (size_t)M * ldc; i++) c[i] = SENTINEL;
    return c;
}

/* ref: inside the block equal to `want`, outside it the sentinel */
static void check_ref(const char *fam, const int32_t *c, const int64_t *want, int M, int N, int K, int ldc,
                      int abits) {
    int bad = -1;
    for (int m = 0; m < M && bad < 0; m++)
        for (int n = 0; n < ldc; n++) {
            const int64_t w = n < N ? want[(size_t)m * N + n] : SENTINEL;
            if (c[(size_t)m * ldc + n] != w) { bad = m * ldc + n; break; }
        }
    CHECK_MSG(bad < 0, "%s ref M=%d N=%d K=%d abits=%d ldc=%d: C[%d] = %d", fam, M, N, K, abits, ldc, bad,
              bad < 0 ? 0 : c[bad]);
}

static void check_same(const char *fam, const char *name, const int32_t *got, const int32_t *ref, int M, int N,
                       int K, int ldc, int abits) {
    const int same = memcmp(got, ref, (size_t)M * ldc * sizeof *got) == 0;
    int first = -1;
    for (int i = 0; i < M * ldc && !same; i++)
        if (got[i] != ref[i]) { first = i; break; }
    CHECK_MSG(same, "%s %s M=%d N=%d K=%d abits=%d ldc=%d: C[%d] = %d, ref %d", fam, name, M, N, K, abits, ldc,
              first, first < 0 ? 0 : got[first], first < 0 ? 0 : ref[first]);
}

/* the lanes variants of the xnor family (xnor lanes layout), beside the row ones */
static lbr_kvariant xlanes_v[4];
static int n_xlanes;

static void xnor_case(const lbr_kvariant *v, int nv, int M, int N, int K, int ldc, int dist_a, int dist_w) {
    const int KW = lbr_words(K);
    int8_t *a = malloc((size_t)M * K), *w = malloc((size_t)N * K);
    uint64_t *A = malloc((size_t)M * KW * sizeof *A), *W = malloc((size_t)N * KW * sizeof *W);
    int64_t *want = malloc((size_t)M * N * sizeof *want);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = rand_sign(dist_a);
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = rand_sign(dist_w);
    pack_rows(a, M, K, 1, A);
    pack_rows(w, N, K, 1, W);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t s = 0;
            for (int k = 0; k < K; k++) s += a[(size_t)m * K + k] * w[(size_t)n * K + k];
            want[(size_t)m * N + n] = s;
        }
    int32_t *ref = new_c(M, ldc);
    ((lbr_xnor_fn)v[0].fn)(M, N, K, A, W, ref, ldc);
    check_ref("xnor", ref, want, M, N, K, ldc, 1);
    for (int i = 1; i < nv; i++) {
        int32_t *c = new_c(M, ldc);
        ((lbr_xnor_fn)v[i].fn)(M, N, K, A, W, c, ldc);
        check_same("xnor", v[i].name, c, ref, M, N, K, ldc, 1);
        free(c);
    }
    if (n_xlanes) {
        const size_t nw = lbr_xnor_lanes_words(N, K);
        CHECK(nw == (size_t)((N + 7) / 8) * KW * 8);
        uint64_t *L = malloc(nw * sizeof *L);
        for (size_t i = 0; i < nw; i++) L[i] = 0x5a5a5a5a5a5a5a5aULL;
        lbr_xnor_pack_lanes(N, K, W, L);
        for (int i = 0; i < n_xlanes; i++) {
            int32_t *c = new_c(M, ldc);
            ((lbr_xnor_lanes_fn)xlanes_v[i].fn)(M, N, K, A, L, c, ldc);
            check_same("xnor", xlanes_v[i].name, c, ref, M, N, K, ldc, 1);
            free(c);
        }
        free(L);
    }
    free(ref); free(want); free(W); free(A); free(w); free(a);
}

/* the lanes variants of the bitserial family (lanes layout), beside the row ones */
static lbr_kvariant lanes_v[4];
static int n_lanes;

/* overlap: P and Q are independent random bits (not a ternary weight), compared with the
 * reference only */
static void bitserial_case(const lbr_kvariant *v, int nv, int M, int N, int K, int abits, int ldc, int dist_a,
                           int dist_w, int overlap) {
    const int KW = lbr_words(K);
    uint8_t *a = malloc((size_t)M * K);
    int8_t *w = malloc((size_t)N * K);
    uint64_t *A = malloc((size_t)M * abits * KW * sizeof *A), *P = malloc((size_t)N * KW * sizeof *P),
             *Q = malloc((size_t)N * KW * sizeof *Q);
    int64_t *want = malloc((size_t)M * N * sizeof *want);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = rand_code(dist_a, abits);
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = rand_ternary(dist_w);
    pack_planes(a, M, K, abits, A);
    pack_rows(w, N, K, 1, P);
    pack_rows(w, N, K, -1, Q);
    if (overlap) {
        for (size_t i = 0; i < (size_t)N * K; i++) w[i] = rand_ternary(DIST_UNIFORM);
        pack_rows(w, N, K, 1, Q);   /* Q's bits now independent of P's */
    }
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t s = 0;
            for (int k = 0; k < K; k++) s += a[(size_t)m * K + k] * w[(size_t)n * K + k];
            want[(size_t)m * N + n] = s;
        }
    int32_t *ref = new_c(M, ldc);
    ((lbr_bitserial_fn)v[0].fn)(M, N, K, abits, A, P, Q, ref, ldc);
    if (!overlap) check_ref("bitserial", ref, want, M, N, K, ldc, abits);
    for (int i = 1; i < nv; i++) {
        int32_t *c = new_c(M, ldc);
        ((lbr_bitserial_fn)v[i].fn)(M, N, K, abits, A, P, Q, c, ldc);
        check_same(overlap ? "bitserial(overlapping P/Q)" : "bitserial", v[i].name, c, ref, M, N, K, ldc, abits);
        free(c);
    }
    if (n_lanes) {
        const size_t nw = lbr_bitserial_lanes_words(N, K);
        CHECK(nw == (size_t)((N + 7) / 8) * KW * 16);
        uint64_t *W = malloc(nw * sizeof *W);
        for (size_t i = 0; i < nw; i++) W[i] = 0x5a5a5a5a5a5a5a5aULL;
        lbr_bitserial_pack_lanes(N, K, P, Q, W);
        for (int i = 0; i < n_lanes; i++) {
            int32_t *c = new_c(M, ldc);
            ((lbr_bitserial_lanes_fn)lanes_v[i].fn)(M, N, K, abits, A, W, c, ldc);
            check_same(overlap ? "bitserial(overlapping P/Q)" : "bitserial", lanes_v[i].name, c, ref, M, N, K, ldc,
                       abits);
            free(c);
        }
        free(W);
    }
    free(ref); free(want); free(Q); free(P); free(A); free(w); free(a);
}

/* the variants listed must be exactly those the CPU flags call for, ref first; a CPU
 * with no SIMD flags gets the ref alone */
static int get_variants(const char *fam_name, lbr_kfamily fam, const lbr_cpu *cpu, lbr_kvariant v[4],
                        void (*ref)(void)) {
    const lbr_cpu none = {0};
    lbr_kvariant only[4];
    CHECK(lbr_kernel_variants(fam, &none, only) == 1 && only[0].fn == ref);
    const int nv = lbr_kernel_variants(fam, cpu, v);
    CHECK(nv >= 1 && nv <= 4);
    CHECK(nv >= 1 && strcmp(v[0].name, "ref") == 0 && v[0].fn == ref);
#if defined(__x86_64__)
    const int want = 1 + (cpu->avx2 != 0) + (cpu->avx512vpopcntdq != 0);
    CHECK_MSG(nv == want, "%s: %d variants, CPU flags call for %d", fam_name, nv, want);
#endif
    printf("%s variants:", fam_name);
    for (int i = 0; i < nv; i++) printf(" %s", v[i].name);
    printf("\n");
    return nv;
}

/* the xnor lanes list: exactly the variants the CPU flags call for, none without SIMD */
static int get_xnor_lanes_variants(const lbr_cpu *cpu, lbr_kvariant v[4]) {
    const lbr_cpu none = {0};
    lbr_kvariant only[4];
    CHECK(lbr_xnor_lanes_variants(&none, only) == 0);
    const int nv = lbr_xnor_lanes_variants(cpu, v);
    CHECK(nv >= 0 && nv <= 4);
#if defined(__x86_64__)
    const int want = (cpu->avx2 != 0) + (cpu->avx512bw != 0 && cpu->avx512vpopcntdq != 0);
    CHECK_MSG(nv == want, "xnor lanes: %d variants, CPU flags call for %d", nv, want);
    if (nv >= 1) CHECK(strcmp(v[0].name, cpu->avx2 ? "avx2-lanes" : "avx512-lanes") == 0);
    if (nv == 2) CHECK(strcmp(v[1].name, "avx512-lanes") == 0);
#endif
    printf("xnor lanes variants:");
    for (int i = 0; i < nv; i++) printf(" %s", v[i].name);
    printf("\n");
    return nv;
}

/* the xnor lanes layout from its definition in lbr_kernels.h, padding included */
static void check_xnor_pack_lanes(int N, int K) {
    const int KW = lbr_words(K), NB = (N + 7) / 8;
    uint64_t *W = malloc((size_t)N * KW * sizeof *W);
    for (size_t i = 0; i < (size_t)N * KW; i++) W[i] = rng_next();
    const size_t nw = lbr_xnor_lanes_words(N, K);
    uint64_t *L = malloc(nw * sizeof *L);
    for (size_t i = 0; i < nw; i++) L[i] = 0x5a5a5a5a5a5a5a5aULL;
    lbr_xnor_pack_lanes(N, K, W, L);
    int bad = 0;
    CHECK(nw == (size_t)NB * KW * 8);
    for (int b = 0; b < NB; b++)
        for (int k = 0; k < KW; k++)
            for (int j = 0; j < 8; j++) {
                const int n = 8 * b + j;
                bad += L[((size_t)b * KW + k) * 8 + j] != (n < N ? W[(size_t)n * KW + k] : 0);
                bad += lbr_xnor_lanes_index(K, n, k) != ((size_t)b * KW + k) * 8 + (size_t)j;
            }
    CHECK_MSG(bad == 0, "lbr_xnor_pack_lanes N=%d K=%d: %d words wrong", N, K, bad);
    free(L); free(W);
}

/* the lanes list: exactly the variants the CPU flags call for, none without SIMD */
static int get_lanes_variants(const lbr_cpu *cpu, lbr_kvariant v[4]) {
    const lbr_cpu none = {0};
    lbr_kvariant only[4];
    CHECK(lbr_bitserial_lanes_variants(&none, only) == 0);
    const int nv = lbr_bitserial_lanes_variants(cpu, v);
    CHECK(nv >= 0 && nv <= 4);
#if defined(__x86_64__)
    const int want = (cpu->avx2 != 0) + (cpu->avx512vpopcntdq != 0);
    CHECK_MSG(nv == want, "bitserial lanes: %d variants, CPU flags call for %d", nv, want);
#endif
    printf("bitserial lanes variants:");
    for (int i = 0; i < nv; i++) printf(" %s", v[i].name);
    printf("\n");
    return nv;
}

/* The lanes layout itself, from its definition in lbr_kernels.h, padding included. */
static void check_pack_lanes(int N, int K) {
    const int KW = lbr_words(K), NB = (N + 7) / 8;
    uint64_t *P = malloc((size_t)N * KW * sizeof *P), *Q = malloc((size_t)N * KW * sizeof *Q);
    for (size_t i = 0; i < (size_t)N * KW; i++) P[i] = rng_next(), Q[i] = rng_next();
    const size_t nw = lbr_bitserial_lanes_words(N, K);
    uint64_t *W = malloc(nw * sizeof *W);
    for (size_t i = 0; i < nw; i++) W[i] = 0x5a5a5a5a5a5a5a5aULL;
    lbr_bitserial_pack_lanes(N, K, P, Q, W);
    int bad = 0;
    CHECK(nw == (size_t)NB * KW * 16);
    for (int b = 0; b < NB; b++)
        for (int k = 0; k < KW; k++)
            for (int j = 0; j < 8; j++) {
                const int n = 8 * b + j;
                bad += W[((size_t)b * KW + k) * 16 + j] != (n < N ? P[(size_t)n * KW + k] : 0);
                bad += W[((size_t)b * KW + k) * 16 + 8 + j] != (n < N ? Q[(size_t)n * KW + k] : 0);
            }
    CHECK_MSG(bad == 0, "lbr_bitserial_pack_lanes N=%d K=%d: %d words wrong", N, K, bad);
    free(W); free(Q); free(P);
}

int main(void) {
    lbr_cpu cpu;
    lbr_cpu_detect(&cpu);
    lbr_kvariant xv[4], bv[4];
    const int nx = get_variants("xnor", LBR_K_XNOR, &cpu, xv, (void (*)(void))lbr_xnor_ref);
    const int nb = get_variants("bitserial", LBR_K_BITSERIAL, &cpu, bv, (void (*)(void))lbr_bitserial_ref);
    n_lanes = get_lanes_variants(&cpu, lanes_v);
    n_xlanes = get_xnor_lanes_variants(&cpu, xlanes_v);
    for (int N = 1; N <= 17; N++) check_pack_lanes(N, N * 37);
    for (int N = 1; N <= 17; N++) check_xnor_pack_lanes(N, N * 37);

    static const int Ks[] = {1,   2,   63,  64,  65,  127, 128,  129,  200,     255,
                             256, 257, 288, 511, 512, 513, 576, 3136, 4096 + 17};
    static const int MNs[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 70};
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
        const int K = Ks[ki];
        for (int t = 0; t < 8; t++) {
            /* the first shapes take edge sizes (1 x n, m x 1, tile edges), the rest are random;
             * for long rows M, N <= 24 keep the element-by-element definition quick */
            const int M = t == 0 ? 1 : t < 4 ? MNs[rng_int(0, 9)] : rng_int(1, K > 1000 ? 24 : 70);
            const int N = t == 1 ? 1 : t < 4 ? MNs[rng_int(0, 9)] : rng_int(1, K > 1000 ? 24 : 70);
            const int ldc = N + rng_int(1, 5);
            const int da = rng_int(0, DIST_COUNT - 1), dw = rng_int(0, DIST_COUNT - 1);
            xnor_case(xv, nx, M, N, K, ldc, da, dw);
            bitserial_case(bv, nb, M, N, K, t + 1, ldc, da, dw, 0);
        }
        bitserial_case(bv, nb, rng_int(1, 9), rng_int(1, 9), K, rng_int(1, 8), 11, DIST_UNIFORM, DIST_UNIFORM, 1);
    }
    /* the lanes kernels' tiles: N over 1..33 (partial blocks, one to five blocks, so odd
     * block counts for pairs of blocks), M over 1..9 (row tiles and their edges), at
     * fmnist-cnn's K = 288 and one full word */
    for (int N = 1; N <= 33; N++)
        for (int M = 1; M <= 9; M++) {
            bitserial_case(bv, nb, M, N, 288, rng_int(1, 8), N + rng_int(1, 3), DIST_UNIFORM, DIST_UNIFORM, 0);
            bitserial_case(bv, nb, M, N, 64, rng_int(1, 8), N + 1, DIST_UNIFORM, DIST_UNIFORM, M == 5);
        }
    /* the xnor lanes kernels' tiles and tails: M over 1..13 (row tiles of 2 and 6 and their
     * edges), N with partial blocks and one to five blocks, K around word boundaries, past
     * a byte-counter flush (31 words) and long; ldc > N */
    {
        static const int xK[] = {1, 63, 64, 65, 200, 1000, 1984, 1985, 4096 + 7};
        static const int xN[] = {1, 7, 8, 9, 16, 17, 24, 33, 40};
        for (size_t ki = 0; ki < sizeof xK / sizeof *xK; ki++)
            for (size_t ni = 0; ni < sizeof xN / sizeof *xN; ni++) {
                const int K = xK[ki], N = xN[ni];
                for (int M = 1; M <= (K > 1000 ? 7 : 13); M++)
                    xnor_case(xv, nx, M, N, K, N + rng_int(1, 4), rng_int(0, DIST_COUNT - 1),
                              rng_int(0, DIST_COUNT - 1));
            }
    }
    /* every activation width on one larger shape with odd edges in both dimensions */
    for (int abits = 1; abits <= 8; abits++)
        bitserial_case(bv, nb, 70, 67, 1000, abits, 71, DIST_UNIFORM, DIST_UNIFORM, 0);
    xnor_case(xv, nx, 70, 67, 1000, 70, DIST_UNIFORM, DIST_UNIFORM);

    /* the largest K: extreme values give the largest |C| (65536 for xnor, 65536 * 255 for
     * bitserial) and fill the byte counters of the lookup variants before every flush */
    const int KMAX = 65536;
    xnor_case(xv, nx, 5, 6, KMAX, 7, DIST_MAX, DIST_MAX);
    xnor_case(xv, nx, 5, 6, KMAX, 7, DIST_MAX, DIST_MIN);
    xnor_case(xv, nx, 3, 5, KMAX - 1, 6, DIST_UNIFORM, DIST_SKEW);
    bitserial_case(bv, nb, 5, 6, KMAX, 8, 7, DIST_MAX, DIST_MAX, 0);
    bitserial_case(bv, nb, 5, 6, KMAX, 8, 7, DIST_MAX, DIST_MIN, 0);
    bitserial_case(bv, nb, 3, 5, KMAX - 1, 7, 6, DIST_UNIFORM, DIST_SKEW, 0);
    return lbt_report("test_kernels_popcount");
}
