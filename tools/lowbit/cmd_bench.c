/* lowbit bench: every variant of every packed-runtime GEMM kernel family
 * (runtime/kernels/lbr_kernels.h) on the GEMM shapes of fmnist-cnn's quantizable layers
 * (or the shape given), beside OpenBLAS cblas_sgemm on the same (M, N, K) in the same run.
 *   lowbit bench [--quick] [--json FILE] [--batch B] [--family NAME] [--shape M,N,K]
 *     --quick        fewer, shorter measurements: a smoke test, not figures to report
 *     --json FILE    also write one JSON object per row, one per line
 *     --batch B      only batch B (default: batch 1 and batch 64)
 *     --family NAME  only this family (xnor, bitserial, s8u8, shift, bucket); sgemm always runs
 *     --shape M,N,K  this GEMM (M rows of activations, N outputs, K) instead of the model's
 *                    layers; M is per image, times the batch
 * Run with OPENBLAS_CORETYPE=SkylakeX (bench/bench_kernels.sh): the machine's default
 * holds OpenBLAS to its AVX2 kernels, which would make the float baseline too easy.
 *
 * Shapes (im2col rows of output positions x output channels x 3x3xC; DESIGN.md's model):
 * conv2 M = 784 B, N = 32, K = 288; conv3 M = 196 B, N = 64, K = 288; conv4 M = 196 B,
 * N = 64, K = 576; fc1 M = B, N = 256, K = 3136. conv1 and fc2 stay float in the packed
 * runtime, so they have no integer GEMM to measure.
 *
 * Families at their natural widths (weights x activations): xnor 1 x 1, its row variants
 * and, as rows "avx2-lanes" and "avx512-lanes", its kernels on the xnor lanes layout (the
 * same weight rows packed once by lbr_xnor_pack_lanes, outside the timed calls); bitserial
 * ternary (stored as two bit rows P, Q: wbits 2) x 2, its row variants and, as rows
 * "avx2-lanes" and "avx512-lanes", its kernels on the lanes layout (the same P, Q packed
 * once by lbr_bitserial_pack_lanes, outside the timed calls); s8u8 8 x 8 (4-bit layers run this same
 * kernel on smaller codes, and its time does not depend on the values); shift 4-bit
 * power-of-two codes |s| <= 7 x 4; bucket 2 x 2 and 4 x 4. Inputs are random valid codes
 * from a fixed seed, so every run measures the same data.
 *
 * Everything is single-threaded: the kernels are (the runtime parallelises over them), so
 * sgemm runs on one thread too (openblas_set_num_threads(1)) and the ceilings are per core.
 *
 * Method: before any variant of a (shape, family) is timed, every variant's output is
 * compared with the ref's (memcmp, after filling the buffers with different sentinels, so
 * an element a variant leaves unwritten differs too); a mismatch aborts the run, since the
 * timing of a wrong kernel means nothing. That call is also the variant's warm-up (sgemm
 * gets one of its own). Then per variant: calibration (repetitions doubled until one
 * measurement takes at least 0.2 s), then the median of 5 measurements of that many calls
 * (the machine is shared: the median ignores a measurement disturbed by others in either
 * direction). --quick: 0.01 s and the median of 3. The scalar refs take seconds per call
 * at batch 64, so they dominate a full run (several minutes).
 *
 * Reported per row: time per GEMM, G MAC/s (M N K / time), the speed-up over sgemm on the
 * same shape (t_sgemm / t_kernel) and the fraction of the relevant per-core ceiling. For
 * bucket a MAC is one activation added into the bucket its weight names, and its time
 * leaves out the caller's combination of the J bucket sums with the float codebook (J
 * multiply-adds per output, M N J in all, small beside M N K at these K). */
#include "cli.h"
#include "kernels/lbr_kernels.h"

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the machine's ceilings (DESIGN.md section 5, "The machine's ceilings"), given there
 * for 2 cores; halved here because every measurement is single-threaded. */
#define CORES_IN_TABLE 2.0
/* fp32 FMA peak 446 GFLOP/s; one MAC is one FMA = 2 flops */
#define CEIL_FP32_GMACS (446.0 / 2.0 / CORES_IN_TABLE)
/* int8 VNNI about 900 G MAC/s */
#define CEIL_INT8_GMACS (900.0 / CORES_IN_TABLE)
/* XOR-popcount about 8.9 G 512-bit dot products/s: 512 binary MACs each */
#define CEIL_POPCOUNT_GMACS (8.9 * 512.0 / CORES_IN_TABLE)

static double ceiling_gmacs(lbr_kfamily f, int abits) {
    switch (f) {
    case LBR_K_XNOR: return CEIL_POPCOUNT_GMACS;
    /* two popcounts (A_p & P and A_p & Q) per activation plane, each as costly as one
     * xnor popcount, so a MAC takes 2 abits of them */
    case LBR_K_BITSERIAL: return CEIL_POPCOUNT_GMACS / (2.0 * abits);
    case LBR_K_S8U8: return CEIL_INT8_GMACS;
    /* shift does the same job on the same byte rows as s8u8, without multiplies: its
     * point is to be no slower than int8 multiply-add, so the int8 VNNI ceiling is its bar */
    case LBR_K_SHIFT: return CEIL_INT8_GMACS;
    /* bucket has no ceiling of its own: its inner operation is a vpshufb table lookup
     * that serves a group of 4 activations for 16-64 output elements at once (and the
     * output is J bucket sums, not one dot product), so neither the popcount nor the VNNI
     * rate bounds it in a way a fraction could be read against. Left out (null). */
    case LBR_K_BUCKET: return 0;
    case LBR_K_COUNT: break;
    }
    return 0;
}

static const char *family_name(lbr_kfamily f) {
    static const char *names[LBR_K_COUNT] = {"xnor", "bitserial", "s8u8", "shift", "bucket"};
    return (int)f >= 0 && f < LBR_K_COUNT ? names[f] : "?";
}

/* ---- what is measured */
typedef struct {
    const char *name;
    int m_per_image, N, K; /* M = m_per_image * batch */
} layer;
static layer LAYERS[] = {
    {"conv2", 28 * 28, 32, 3 * 3 * 32},
    {"conv3", 14 * 14, 64, 3 * 3 * 32},
    {"conv4", 14 * 14, 64, 3 * 3 * 64},
    {"fc1", 1, 256, 64 * 7 * 7},
};
static int N_LAYERS = (int)(sizeof LAYERS / sizeof LAYERS[0]);

typedef struct {
    lbr_kfamily fam;
    int wbits, abits;
} config;
static const config CONFIGS[] = {
    {LBR_K_XNOR, 1, 1},   {LBR_K_BITSERIAL, 2, 2}, {LBR_K_S8U8, 8, 8},
    {LBR_K_SHIFT, 4, 4},  {LBR_K_BUCKET, 2, 2},    {LBR_K_BUCKET, 4, 4},
};
#define N_CONFIGS ((int)(sizeof CONFIGS / sizeof CONFIGS[0]))

static int g_quick;
static FILE *g_json;

static void die(const char *msg) {
    fprintf(stderr, "lowbit bench: %s\n", msg);
    exit(EXIT_RUNTIME);
}

/* 64-byte aligned, so that no variant gets an advantage or a penalty from where its
 * buffers happen to start (aligned_alloc needs a size that is a multiple of 64) */
static void *xalloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) die("out of memory");
    return p;
}

static uint64_t g_rng;
static uint64_t rnd(void) { /* splitmix64, as in tests/test_kernels_*.c */
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rnd_below(int n) { return (int)(rnd() % (uint64_t)n); }

/* rows of K uniformly random bits in bit-row layout; bits at k >= K must be zero (the
 * layout's rule, which the kernels rely on instead of masking) */
static void fill_bits(uint64_t *w, size_t rows, int K) {
    const int KW = lbr_words(K);
    const uint64_t last = (K & 63) ? (1ull << (K & 63)) - 1 : ~0ull;
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < KW; k++) w[r * KW + k] = rnd() & (k == KW - 1 ? last : ~0ull);
}

/* ---- one family's inputs at one shape */
typedef struct {
    config c;
    int M, N, K;
    uint64_t *A, *W, *Q; /* bit rows / planes (Q: bitserial's w = -1 rows) */
    uint64_t *L;         /* xnor: W in the xnor lanes layout; bitserial: W and Q in the lanes layout */
    uint8_t *a8;         /* byte rows */
    int8_t *w8;
    size_t nc; /* int32 elements of C */
} job;

static void job_make(job *j, const config *c, int M, int N, int K, uint64_t seed) {
    memset(j, 0, sizeof *j);
    j->c = *c;
    j->M = M, j->N = N, j->K = K;
    g_rng = seed;
    const int KW = lbr_words(K);
    const size_t KB = (size_t)lbr_bytes(K);
    j->nc = (size_t)M * N;
    switch (c->fam) {
    case LBR_K_XNOR:
        j->A = xalloc(sizeof(uint64_t) * M * KW);
        j->W = xalloc(sizeof(uint64_t) * N * KW);
        fill_bits(j->A, (size_t)M, K);
        fill_bits(j->W, (size_t)N, K);
        j->L = xalloc(sizeof(uint64_t) * lbr_xnor_lanes_words(N, K));
        lbr_xnor_pack_lanes(N, K, j->W, j->L);
        break;
    case LBR_K_BITSERIAL: {
        /* uniform codes 0..2^abits-1 have independent uniform bits, so the planes are
         * random bit rows; ternary weights uniform over {-1, 0, +1}, P and Q disjoint as a
         * ternary layer stores them */
        j->A = xalloc(sizeof(uint64_t) * M * c->abits * KW);
        j->W = xalloc(sizeof(uint64_t) * N * KW);
        j->Q = xalloc(sizeof(uint64_t) * N * KW);
        fill_bits(j->A, (size_t)M * c->abits, K);
        memset(j->W, 0, sizeof(uint64_t) * N * KW);
        memset(j->Q, 0, sizeof(uint64_t) * N * KW);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                const int t = rnd_below(3);
                if (t) (t == 1 ? j->W : j->Q)[(size_t)n * KW + (k >> 6)] |= 1ull << (k & 63);
            }
        j->L = xalloc(sizeof(uint64_t) * lbr_bitserial_lanes_words(N, K));
        lbr_bitserial_pack_lanes(N, K, j->W, j->Q, j->L);
        break;
    }
    case LBR_K_S8U8:
    case LBR_K_SHIFT: {
        /* byte rows zero-padded to KB; s8u8: full uint8 x int8 ranges; shift: 4-bit
         * activation codes and shift codes -7..7 (4-bit sign-magnitude) */
        const int amax = c->fam == LBR_K_S8U8 ? 255 : 15, wlo = c->fam == LBR_K_S8U8 ? -128 : -7,
                  whi = c->fam == LBR_K_S8U8 ? 127 : 7;
        j->a8 = xalloc((size_t)M * KB);
        j->w8 = xalloc((size_t)N * KB);
        memset(j->a8, 0, (size_t)M * KB);
        memset(j->w8, 0, (size_t)N * KB);
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) j->a8[m * KB + k] = (uint8_t)rnd_below(amax + 1);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) j->w8[n * KB + k] = (int8_t)(wlo + rnd_below(whi - wlo + 1));
        break;
    }
    case LBR_K_BUCKET:
        /* uniform unsigned codes in bit planes: random bit rows, as for bitserial */
        j->A = xalloc(sizeof(uint64_t) * M * c->abits * KW);
        j->W = xalloc(sizeof(uint64_t) * N * c->wbits * KW);
        fill_bits(j->A, (size_t)M * c->abits, K);
        fill_bits(j->W, (size_t)N * c->wbits, K);
        j->nc = (size_t)M * N << c->wbits; /* J = 2^wbits bucket sums per output */
        break;
    case LBR_K_COUNT: break;
    }
}

static void job_free(job *j) {
    free(j->A);
    free(j->W);
    free(j->Q);
    free(j->L);
    free(j->a8);
    free(j->w8);
}

/* lanes: fn is a kernel on its family's lanes layout (lbr_xnor_lanes_fn or
 * lbr_bitserial_lanes_fn) */
static void job_run(const job *j, void (*fn)(void), int lanes, int32_t *C) {
    if (lanes && j->c.fam == LBR_K_XNOR) {
        ((lbr_xnor_lanes_fn)fn)(j->M, j->N, j->K, j->A, j->L, C, j->N);
        return;
    }
    if (lanes) {
        ((lbr_bitserial_lanes_fn)fn)(j->M, j->N, j->K, j->c.abits, j->A, j->L, C, j->N);
        return;
    }
    switch (j->c.fam) {
    case LBR_K_XNOR: ((lbr_xnor_fn)fn)(j->M, j->N, j->K, j->A, j->W, C, j->N); break;
    case LBR_K_BITSERIAL: ((lbr_bitserial_fn)fn)(j->M, j->N, j->K, j->c.abits, j->A, j->W, j->Q, C, j->N); break;
    case LBR_K_S8U8: ((lbr_s8u8_fn)fn)(j->M, j->N, j->K, j->a8, j->w8, C, j->N); break;
    case LBR_K_SHIFT: ((lbr_shift_fn)fn)(j->M, j->N, j->K, j->a8, j->w8, C, j->N); break;
    case LBR_K_BUCKET: ((lbr_bucket_fn)fn)(j->M, j->N, j->K, j->c.abits, j->c.wbits, j->A, j->W, C); break;
    case LBR_K_COUNT: break;
    }
}

/* ---- timing */
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef void (*call_fn)(const void *ctx);

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* seconds per call: one warm-up call unless the caller has just run this call on the same
 * buffers (the kernels' correctness check is their warm-up, and skipping a second one
 * keeps the scalar refs, seconds per call at batch 64, from doubling the run); then
 * repetitions doubled until a measurement lasts `target` seconds (these runs warm up
 * further: caches, frequency), then the median of `nmeas` measurements of that many calls.
 * A single call that already lasts `target` is a measurement in its own right, so it is
 * kept as the first. */
static double measure(call_fn f, const void *ctx, int warmed) {
    const double target = g_quick ? 0.01 : 0.2;
    const int nmeas = g_quick ? 3 : 5;
    double t[5];
    int have = 0;
    if (!warmed) f(ctx);
    long reps = 1;
    for (;;) {
        const double t0 = now();
        for (long r = 0; r < reps; r++) f(ctx);
        const double dt = now() - t0;
        if (dt >= target) {
            if (reps == 1) t[have++] = dt;
            break;
        }
        reps *= 2;
    }
    for (; have < nmeas; have++) {
        const double t0 = now();
        for (long r = 0; r < reps; r++) f(ctx);
        t[have] = (now() - t0) / (double)reps;
    }
    qsort(t, (size_t)nmeas, sizeof t[0], cmp_double);
    return t[nmeas / 2];
}

typedef struct {
    const job *j;
    void (*fn)(void);
    int lanes;
    int32_t *C;
} kernel_ctx;
static void kernel_call(const void *p) {
    const kernel_ctx *k = p;
    job_run(k->j, k->fn, k->lanes, k->C);
}

typedef struct {
    int M, N, K;
    const float *A, *W;
    float *C;
} sgemm_ctx;
/* the float path as the library runs it (src/ops/conv.c, src/ops/linear.c): rows of
 * activations times the transpose of rows of weights, the same layout as the kernels' */
static void sgemm_call(const void *p) {
    const sgemm_ctx *s = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->M, s->N, s->K, 1.0f, s->A, s->K, s->W, s->K, 0.0f, s->C,
                s->N);
}

/* ---- output */
static void row(const char *lname, int batch, const char *fam, const char *var, int wbits, int abits, int M, int N,
                int K, double sec, double t_sgemm, double ceil_g) {
    const double gmacs = (double)M * N * K / sec * 1e-9, speedup = t_sgemm / sec;
    char frac[16] = "-";
    if (ceil_g > 0) snprintf(frac, sizeof frac, "%.1f%%", 100.0 * gmacs / ceil_g);
    printf("%-6s %5d  %-9s %-12s %2d x %-2d %6d %4d %5d %12.1f %9.2f %8.2fx %8s\n", lname, batch, fam, var, wbits,
           abits, M, N, K, sec * 1e6, gmacs, speedup, frac);
    fflush(stdout);
    if (g_json) {
        fprintf(g_json,
                "{\"layer\": \"%s\", \"batch\": %d, \"family\": \"%s\", \"variant\": \"%s\", \"wbits\": %d, "
                "\"abits\": %d, \"M\": %d, \"N\": %d, \"K\": %d, \"seconds\": %.6e, \"gmacs\": %.4f, "
                "\"speedup_vs_sgemm\": %.4f, ",
                lname, batch, fam, var, wbits, abits, M, N, K, sec, gmacs, speedup);
        if (ceil_g > 0)
            fprintf(g_json, "\"ceiling_gmacs\": %.1f, \"ceiling_fraction\": %.4f, \"quick\": %s}\n", ceil_g,
                    gmacs / ceil_g, g_quick ? "true" : "false");
        else
            fprintf(g_json, "\"ceiling_gmacs\": null, \"ceiling_fraction\": null, \"quick\": %s}\n",
                    g_quick ? "true" : "false");
    }
}

/* ---- correctness, once per (shape, family), before any of its variants is timed;
 * variants from index `lanes` on are lanes-layout kernels */
static void check_variants(const job *j, const lbr_kvariant *var, int nv, int lanes, int32_t *ref, int32_t *got,
                           const char *lname, int batch) {
    const size_t bytes = sizeof(int32_t) * j->nc;
    /* different sentinels: an element that a variant does not write differs from ref's */
    memset(ref, 0x5a, bytes);
    job_run(j, var[0].fn, 0, ref);
    for (int v = 1; v < nv; v++) {
        memset(got, 0xa5, bytes);
        job_run(j, var[v].fn, v >= lanes, got);
        if (memcmp(got, ref, bytes) != 0) {
            size_t i = 0;
            while (got[i] == ref[i]) i++;
            fprintf(stderr,
                    "lowbit bench: %s variant %s (w%d a%d) differs from ref on %s batch %d (M=%d N=%d K=%d): "
                    "element %zu is %d, ref %d\n",
                    family_name(j->c.fam), var[v].name, j->c.wbits, j->c.abits, lname, batch, j->M, j->N, j->K, i,
                    got[i], ref[i]);
            exit(EXIT_RUNTIME);
        }
    }
}

static const char *USAGE = "[--quick] [--json FILE] [--batch B] [--family NAME] [--shape M,N,K]";
static const char *DESC =
    "Time every variant of every integer kernel family of the runtime (xnor, bitserial, s8u8, shift,\n"
    "bucket) on one thread, beside OpenBLAS sgemm on the same shape in the same run: by default the\n"
    "GEMMs of fmnist-cnn's conv2, conv3, conv4 and fc1 at batch 1 and 64. Every variant is checked\n"
    "against its scalar reference before it is timed. Reports time per GEMM, G MAC/s, the speed-up\n"
    "over sgemm and the fraction of the machine's per-core ceiling (DESIGN.md section 5). Run it on an\n"
    "idle machine with OPENBLAS_CORETYPE=SkylakeX (bench/bench_kernels.sh does).";

int cmd_bench(int argc, char **argv) {
    const char *cmd = "bench";
    const char *json_path = NULL, *family = NULL, *shape = NULL;
    int only_batch = 0, only_family = -1;
    cli_arg args[] = {
        {"--quick", ARG_FLAG, &g_quick, NULL, "short measurements: a smoke test, not figures to report", 0},
        {"--json", ARG_STR, &json_path, "FILE", "also write one JSON object per row", 0},
        {"--batch", ARG_INT, &only_batch, "B", "only this batch (default 1 and 64)", 0},
        {"--family", ARG_STR, &family, "NAME", "only this family (xnor, bitserial, s8u8, shift, bucket)", 0},
        {"--shape", ARG_STR, &shape, "M,N,K", "this GEMM instead of fmnist-cnn's (M per image)", 0},
    };
    int rc = cli_parse(argc, argv, 2, args, (int)(sizeof args / sizeof args[0]), cmd, USAGE, DESC);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (args[2].seen && (only_batch < 1 || only_batch > 4096)) return cli_error(cmd, EXIT_USAGE, "--batch must be in [1, 4096]");
    if (family) {
        for (int f = 0; f < LBR_K_COUNT; f++)
            if (!strcmp(family, family_name((lbr_kfamily)f))) only_family = f;
        if (only_family < 0)
            return cli_error(cmd, EXIT_USAGE, "--family '%s': one of xnor, bitserial, s8u8, shift, bucket", family);
    }
    if (shape) {
        int m, n, k;
        char tail;
        if (sscanf(shape, "%d,%d,%d%c", &m, &n, &k, &tail) != 3 || m < 1 || n < 1 || k < 1 || k > 65536 || m > (1 << 20) ||
            n > (1 << 16))
            return cli_error(cmd, EXIT_USAGE, "--shape '%s': M,N,K with 1 <= M <= 2^20, 1 <= N <= 65536, 1 <= K <= 65536", shape);
        LAYERS[0] = (layer){"shape", m, n, k};
        N_LAYERS = 1;
    }
    if (json_path && !(g_json = fopen(json_path, "w"))) {
        return cli_error(cmd, EXIT_RUNTIME, "%s: cannot write", json_path);
    }
    openblas_set_num_threads(1);

    lbr_cpu cpu;
    lbr_cpu_detect(&cpu);
    /* a family's variants, then (xnor, bitserial) its lanes-layout kernels from index lanes_at[f] */
    lbr_kvariant vars[LBR_K_COUNT][8];
    int nvars[LBR_K_COUNT], lanes_at[LBR_K_COUNT];
    printf("lowbit bench: single thread, %s\n", g_quick ? "--quick (smoke test: short measurements, not figures to report)"
                                                          : "median of 5 measurements of >= 0.2 s each");
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("OpenBLAS core %s (OPENBLAS_CORETYPE=%s), 1 thread; CPU: avx2 %d, avx512bw %d, vpopcntdq %d, vnni %d\n",
           openblas_get_corename(), ct ? ct : "unset", cpu.avx2, cpu.avx512bw, cpu.avx512vpopcntdq, cpu.avx512vnni);
    for (int f = 0; f < LBR_K_COUNT; f++) {
        nvars[f] = lbr_kernel_variants((lbr_kfamily)f, &cpu, vars[f]);
        /* the check below takes variant 0 as the definition */
        if (nvars[f] < 1 || strcmp(vars[f][0].name, "ref") != 0) die("a kernel family does not list ref first");
        lanes_at[f] = nvars[f];
        if (f == LBR_K_XNOR) nvars[f] += lbr_xnor_lanes_variants(&cpu, vars[f] + nvars[f]);
        if (f == LBR_K_BITSERIAL) nvars[f] += lbr_bitserial_lanes_variants(&cpu, vars[f] + nvars[f]);
        printf("  %-9s variants:", family_name((lbr_kfamily)f));
        for (int v = 0; v < nvars[f]; v++) printf(" %s", vars[f][v].name);
        printf("\n");
    }
    printf("per-core ceilings (DESIGN.md section 5, halved): fp32 %.1f, int8 %.1f, popcount %.1f G MAC/s; "
           "bitserial popcount / (2 abits); bucket none (see source)\n",
           CEIL_FP32_GMACS, CEIL_INT8_GMACS, CEIL_POPCOUNT_GMACS);
    printf("\n%-6s %5s  %-9s %-12s %7s %6s %4s %5s %12s %9s %9s %8s\n", "layer", "batch", "family", "variant", "w x a",
           "M", "N", "K", "us/GEMM", "G MAC/s", "vs sgemm", "%ceil");

    const int batches[] = {1, 64};
    for (int bi = 0; bi < 2; bi++) {
        const int batch = only_batch ? only_batch : batches[bi];
        if (only_batch && bi > 0) break;
        for (int l = 0; l < N_LAYERS; l++) {
            const layer *L = &LAYERS[l];
            const int M = L->m_per_image * batch, N = L->N, K = L->K;

            /* the float baseline on this shape */
            sgemm_ctx s = {M, N, K, xalloc(sizeof(float) * M * K), xalloc(sizeof(float) * N * K),
                           xalloc(sizeof(float) * M * N)};
            g_rng = 0x5eed0000u + (uint64_t)l;
            for (size_t i = 0; i < (size_t)M * K; i++) ((float *)s.A)[i] = (float)(rnd() >> 40) * 0x1p-23f - 1.0f;
            for (size_t i = 0; i < (size_t)N * K; i++) ((float *)s.W)[i] = (float)(rnd() >> 40) * 0x1p-23f - 1.0f;
            const double t_sgemm = measure(sgemm_call, &s, 0);
            row(L->name, batch, "sgemm", "openblas", 32, 32, M, N, K, t_sgemm, t_sgemm, CEIL_FP32_GMACS);
            free((void *)s.A);
            free((void *)s.W);
            free(s.C);

            for (int c = 0; c < N_CONFIGS; c++) {
                const config *cf = &CONFIGS[c];
                if (only_family >= 0 && (int)cf->fam != only_family) continue;
                const lbr_kvariant *var = vars[cf->fam];
                const int nv = nvars[cf->fam];
                job j;
                /* the seed depends on the layer and configuration only, so --batch and
                 * --family runs see the same data as full ones */
                job_make(&j, cf, M, N, K, 0x6c6f776269740000ull + (uint64_t)l * 16 + (uint64_t)c);
                int32_t *ref = xalloc(sizeof(int32_t) * j.nc), *got = xalloc(sizeof(int32_t) * j.nc);
                check_variants(&j, var, nv, lanes_at[cf->fam], ref, got, L->name, batch);
                for (int v = 0; v < nv; v++) {
                    kernel_ctx k = {&j, var[v].fn, v >= lanes_at[cf->fam], got};
                    const double t = measure(kernel_call, &k, 1);
                    row(L->name, batch, family_name(cf->fam), var[v].name, cf->wbits, cf->abits, M, N, K, t, t_sgemm,
                        ceiling_gmacs(cf->fam, cf->abits));
                }
                free(ref);
                free(got);
                job_free(&j);
            }
        }
    }
    if (g_json && fclose(g_json) != 0) die("cannot finish the JSON file");
    return EXIT_OK;
}
