/* UNIQ (METHODS.md section 2): k-quantile weight quantization, trained by injecting
 * uniform noise in the CDF domain, with a gradual schedule that quantizes the layers
 * stage by stage in network order.
 *
 * Per call the tensor is fitted with a Gaussian: mu = mean(W), sigma = max(std(W), 1e-5),
 * F(w) = Phi((w - mu) / sigma). The K = 2^b bins are equal in probability under F:
 *
 *   code   j = min(floor(F(w) K), K - 1)
 *   value  cb[j] = mu + sigma Phi^-1((j + 1/2) / K)        (the bin's median under F)
 *   noise  w~ = mu + sigma Phi^-1(clamp(F(w) + e, 1e-5, 1 - 1e-5)),  e ~ U[-1/(2K), 1/(2K))
 *
 * mu and sigma are statistics of the latent weights (no gradient, nothing learned);
 * the backward pass is the identity (STE). Activations use the shared uniform
 * quantizer (section 0). train=ste replaces the noise with the hard quantizer (the
 * ablation METHODS.md asks for: the same k-quantile levels trained straight-through).
 *
 * Speed: the noisy forward runs over every quantized weight at every step (~870k on
 * fmnist-cnn, against a ~70 ms step), so everything per element is float arithmetic
 * that GCC vectorizes without -ffast-math: libm's erfcf, logf and expf are scalar calls
 * of 20-40 cycles each, which made the first version 5x too slow. Phi, exp, log and
 * Phi^-1 are therefore written out here (Cephes / Numerical Recipes / Giles, with their
 * accuracies noted), and Philox runs 128 counters at a time. Results are bit-identical
 * whatever the thread count: per-element arithmetic, counter-based noise, and moments
 * summed in fixed blocks. */
#include "quant/quant.h"
#include "ops/vmath.h"

#include <math.h>
#include <string.h>

/* what follows the last stage (option final=) */
enum { UNIQ_FINAL_HARD = 0, UNIQ_FINAL_STE = 1, UNIQ_FINAL_NONE = 2 };

typedef struct uniq_state {
    int stages;        /* 0: one stage per quantized layer */
    int stage_epochs;  /* 0: the run's epochs split equally among the stages */
    int final;         /* UNIQ_FINAL_* */
    int ste;           /* train=ste: the stage in training sees the hard quantizer, not noise */
    double lv[256];    /* standard levels Phi^-1((j + 1/2) / K) */
} uniq_state;

/* The Gaussian fitted to one tensor, in the forms the loops use. */
typedef struct uniq_fit {
    float mu, sigma;
    float a;           /* 1 / (sigma sqrt 2): F(w) = erfc((mu - w) a) / 2 */
    float cb[256];     /* codebook mu + sigma lv[j], computed in double, stored as float */
} uniq_fit;

/* ------------------------------------------------------------------ statistics */

/* The moments are summed in UNIQ_NB fixed blocks and the blocks added in order, so
 * mu and sigma (and with them every code) do not depend on the thread count. */
enum { UNIQ_NB = 64 };

/* sum over x[lo, hi) of (x - c) (sq = 0) or (x - c)^2 (sq = 1), in double; eight
 * independent lanes let the compiler vectorize what would be a serial chain of adds */
static double uniq_block_sum(const float *restrict x, int64_t lo, int64_t hi, double c, int sq) {
    double acc[8] = {0};
    int64_t i = lo;
    if (sq)
        for (; i + 8 <= hi; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += ((double)x[i + l] - c) * ((double)x[i + l] - c);
    else
        for (; i + 8 <= hi; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += (double)x[i + l] - c;
    for (; i < hi; i++) acc[0] += sq ? ((double)x[i] - c) * ((double)x[i] - c) : (double)x[i] - c;
    double s = 0;
    for (int l = 0; l < 8; l++) s += acc[l];
    return s;
}

static double uniq_sum(const float *x, int64_t n, double c, int sq) {
    double part[UNIQ_NB];
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < UNIQ_NB; b++) {
        int64_t lo, hi;
        lb_split_range(n, UNIQ_NB, b, &lo, &hi);
        part[b] = uniq_block_sum(x, lo, hi, c, sq);
    }
    double s = 0;
    for (int b = 0; b < UNIQ_NB; b++) s += part[b];
    return s;
}

/* Two passes (mean, then squared deviations): exact enough in double at any n. The
 * standard deviation is the population one (divides by n). */
static void uniq_fit_tensor(const lb_quant *q, const float *x, int64_t n, uniq_fit *f) {
    const uniq_state *st = q->state;
    const int K = 1 << q->bits;
    double mu = n > 0 ? uniq_sum(x, n, 0.0, 0) / (double)n : 0.0;
    double var = n > 0 ? uniq_sum(x, n, mu, 1) / (double)n : 0.0;
    double sigma = fmax(sqrt(var), 1e-5);
    f->mu = (float)mu;
    f->sigma = (float)sigma;
    f->a = (float)(1.0 / (sigma * sqrt(2.0)));
    for (int j = 0; j < K; j++) f->cb[j] = (float)(mu + sigma * st->lv[j]);
}

/* ------------------------------------------------------------------ per element */


/* F(w) = Phi(z), z = (w - mu) / sigma, as erfc(|z|/sqrt2)/2 by Numerical Recipes' erfcc
 * (Chebyshev fit, relative error < 1.2e-7), then reflected for z > 0. Absolute error
 * 2.2e-7 over the line (erfcf: 6e-8), relative 6e-6 in the lower tail down to z = -8.
 * Not erfcf: glibc's is a scalar call of about 40 cycles, which alone made the forward
 * pass over 870k weights take 7 ms on 2 threads; this one vectorizes. */
static inline float uniq_cdf(float w, float mu, float a) {
    float x = fabsf(w - mu) * a, t = 1.0f / (1.0f + 0.5f * x);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float h = 0.5f * t * lb_vexpf(p - x * x); /* Phi(-|z|) */
    return w < mu ? h : 1.0f - h;
}

static inline int32_t uniq_code(float w, float mu, float a, int K) {
    /* clamped before the conversion, so u = 1 gives K - 1 and a NaN weight code 0 */
    float t = uniq_cdf(w, mu, a) * (float)K;
    t = t > 0.0f ? t : 0.0f;
    t = t < (float)(K - 1) ? t : (float)(K - 1);
    return (int32_t)t;
}

/* log(v) for a normal float v > 0 (Cephes logf: v = m 2^e with m in [sqrt(1/2), sqrt 2),
 * polynomial in m - 1): relative error below 1e-7 here, and it vectorizes. */
static inline float uniq_logf(float v) {
    union { float f; int32_t i; } u = {.f = v};
    int32_t e = ((u.i >> 23) & 0xff) - 126;  /* v = m 2^e, m in [1/2, 1) */
    u.i = (u.i & 0x007fffff) | 0x3f000000;
    /* below sqrt(1/2) use 2m - 1 and e - 1; arithmetic on the flag, since GCC leaves
     * these two selects as branches */
    int32_t lt = u.f < 0.70710678f;
    float x = u.f + (float)lt * u.f - 1.0f, fe = (float)(e - lt);
    float z = x * x, y = 7.0376836292e-2f;
    y = y * x - 1.1514610310e-1f;
    y = y * x + 1.1676998740e-1f;
    y = y * x - 1.2420140846e-1f;
    y = y * x + 1.4249322787e-1f;
    y = y * x - 1.6668057665e-1f;
    y = y * x + 2.0000714765e-1f;
    y = y * x - 2.4999993993e-1f;
    y = y * x + 3.3333331174e-1f;
    y = y * x * z - 2.12194440e-4f * fe - 0.5f * z;
    return (x + y) + 0.693359375f * fe;
}

/* Phi^-1(p) = sqrt2 erfinv(2p - 1) by Giles' single-precision erfinv ("Approximating
 * the erfinv function", GPU Computing Gems, 2011): with w = -log(1 - x^2), one
 * polynomial in w for w < 5 (|z| < 2.9, 99.7% of draws) and one in sqrt(w) beyond.
 * 1 - x^2 is formed as 4p(1-p), which keeps its relative precision down to p = 1e-5.
 * |F(Phi^-1(p)) - p| < 7e-8 over [1e-5, 1 - 1e-5], measured against lb_q_phi (plenty
 * for a noise sample; Acklam's rational form needs double in its central branch, where
 * its large alternating coefficients cancel, and a log on about 5% of draws). */
static inline float uniq_ppf_w(float p) { return -uniq_logf(4.0f * p * (1.0f - p)); }
static inline float uniq_ppf_central(float p, float w) {
    w = w - 2.5f;
    float r = 2.81022636e-08f;
    r = r * w + 3.43273939e-07f;
    r = r * w - 3.5233877e-06f;
    r = r * w - 4.39150654e-06f;
    r = r * w + 0.00021858087f;
    r = r * w - 0.00125372503f;
    r = r * w - 0.00417768164f;
    r = r * w + 0.246640727f;
    r = r * w + 1.50140941f;
    return 1.41421356f * r * (2.0f * p - 1.0f);
}
static inline float uniq_ppf_tail(float p, float w) {
    w = sqrtf(w) - 3.0f;
    float r = -0.000200214257f;
    r = r * w + 0.000100950558f;
    r = r * w + 0.00134934322f;
    r = r * w - 0.00367342844f;
    r = r * w + 0.00573950773f;
    r = r * w - 0.0076224613f;
    r = r * w + 0.00943887047f;
    r = r * w + 1.00167406f;
    r = r * w + 2.83297682f;
    return 1.41421356f * r * (2.0f * p - 1.0f);
}

/* Philox-4x32-10 for UNIQ_NCTR consecutive counters (ctr_lo0, ctr_lo0 + 1, ...): the
 * same numbers as lb_philox4x32 (core/rng.c; the test checks it), computed lane-parallel
 * so the multiplies vectorize instead of one call per four elements. out[4 l + k] is
 * word k of counter ctr_lo0 + l. 128 counters give each round enough independent
 * multiplies to hide their latency (64 elements per chunk ran at half the speed). */
enum { UNIQ_CHUNK = 512, UNIQ_NCTR = UNIQ_CHUNK / 4 };
static void uniq_philox(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo0, uint32_t out[UNIQ_CHUNK]) {
    /* 32-bit words held in 64-bit lanes: the 32x32->64 products then vectorize as plain
     * 64-bit multiplies (GCC 12 vectorizes neither a 32-bit high-part multiply nor a
     * widening one whose product is split in two) */
    uint64_t c0[UNIQ_NCTR], c1[UNIQ_NCTR], c2[UNIQ_NCTR], c3[UNIQ_NCTR];
    const uint64_t m32 = 0xFFFFFFFFu;
    for (int l = 0; l < UNIQ_NCTR; l++) {
        uint64_t lo = ctr_lo0 + (uint64_t)l;
        c0[l] = lo & m32;
        c1[l] = lo >> 32;
        c2[l] = ctr_hi & m32;
        c3[l] = ctr_hi >> 32;
    }
    uint64_t k0 = key & m32, k1 = key >> 32;
    /* rounds outer and not unrolled, lanes inner as one simd loop: left to itself GCC
     * unrolls everything and then only half-vectorizes the result (slower than calling
     * lb_philox4x32 sixteen times) */
    #pragma GCC unroll 1
    for (int r = 0; r < 10; r++) {
        #pragma omp simd
        for (int l = 0; l < UNIQ_NCTR; l++) {
            uint64_t p0 = c0[l] * 0xD2511F53u, p1 = c2[l] * 0xCD9E8D57u;
            uint64_t n0 = (p1 >> 32) ^ c1[l] ^ k0, n2 = (p0 >> 32) ^ c3[l] ^ k1;
            c1[l] = p1 & m32;
            c3[l] = p0 & m32;
            c0[l] = n0;
            c2[l] = n2;
        }
        k0 = (k0 + 0x9E3779B9u) & m32;
        k1 = (k1 + 0xBB67AE85u) & m32;
    }
    for (int l = 0; l < UNIQ_NCTR; l++) {
        out[4 * l + 0] = (uint32_t)c0[l];
        out[4 * l + 1] = (uint32_t)c1[l];
        out[4 * l + 2] = (uint32_t)c2[l];
        out[4 * l + 3] = (uint32_t)c3[l];
    }
}

/* ------------------------------------------------------------------ forward passes */

static void uniq_hard(const uniq_fit *f, float *y, const float *x, int64_t n, int K) {
    const float mu = f->mu, a = f->a, *cb = f->cb;
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = lbr_codebook_value(uniq_code(x[i], mu, a, K), cb);
}

/* Noise injection. Element i draws word i % 4 of Philox counter (step << 16 | layer,
 * i / 4) under q->noise_key: a pure function of (key, step, layer, i). */
static void uniq_noisy(const lb_quant *q, const uniq_fit *f, float *y, const float *x, int64_t n, int K) {
    const uint64_t ctr_hi = ((uint64_t)q->step << 16) | (uint64_t)q->layer;
    const float inv_k = 1.0f / (float)K, lo = 1e-5f, hi = 1.0f - 1e-5f;
    const float mu = f->mu, sigma = f->sigma, a = f->a;
    const int64_t nchunk = (n + UNIQ_CHUNK - 1) / UNIQ_CHUNK;
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunk; c++) {
        const int64_t i0 = c * UNIQ_CHUNK;
        const int m = (int)LB_MIN((int64_t)UNIQ_CHUNK, n - i0);
        uint32_t r[UNIQ_CHUNK];
        float p[UNIQ_CHUNK], w[UNIQ_CHUNK];
        uniq_philox(q->noise_key, ctr_hi, (uint64_t)(i0 / 4), r);
        /* two loops, not one: fused, GCC threads the clamp's constant branches into
         * the code that follows and gives up vectorizing */
        for (int k = 0; k < m; k++) {
            float e = (lb_u32_to_unit(r[k]) - 0.5f) * inv_k; /* exact: K is a power of two */
            float u = uniq_cdf(x[i0 + k], mu, a) + e;
            u = u > lo ? u : lo;
            p[k] = u < hi ? u : hi;
        }
        for (int k = 0; k < m; k++) {
            w[k] = uniq_ppf_w(p[k]);
            y[i0 + k] = mu + sigma * uniq_ppf_central(p[k], w[k]);
        }
        for (int k = 0; k < m; k++) /* the far tails: 0.3% of draws, plus the clamped ones */
            if (w[k] >= 5.0f) y[i0 + k] = mu + sigma * uniq_ppf_tail(p[k], w[k]);
    }
}

static void uniq_forward(lb_quant *q, float *y, const float *x, int64_t n, int training) {
    /* a later stage, not quantized yet; as in the other methods this holds in evaluation
     * too, and lb_quant_reset_modes sets every layer back to QUANT after training */
    if (q->mode == LB_QMODE_FLOAT) {
        if (y != x) memcpy(y, x, (size_t)n * sizeof *y);
        return;
    }
    const int K = 1 << q->bits;
    uniq_fit f;
    uniq_fit_tensor(q, x, n, &f);
    const uniq_state *st = q->state;
    if (training && q->mode == LB_QMODE_QUANT && !st->ste) uniq_noisy(q, &f, y, x, n, K);
    else uniq_hard(&f, y, x, n, K);
}

static void uniq_encode(const lb_quant *q, int32_t *codes, const float *x, int64_t n) {
    const int K = 1 << q->bits;
    uniq_fit f;
    uniq_fit_tensor(q, x, n, &f);
    const float mu = f.mu, a = f.a;
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) codes[i] = uniq_code(x[i], mu, a, K);
}

static void uniq_backward(lb_quant *q, float *dx, const float *dy, const float *x, int64_t n, int acc) {
    (void)q;
    (void)x;
    lb_q_ste(dx, dy, n, acc);
}

/* ------------------------------------------------------------------ setup, schedule */

/* an integer option >= 0 (0 = default) */
static lb_status uniq_int_opt(const lb_quant *q, const char *key, int *out) {
    double v;
    lb_status s = lb_qopt_num(q, key, 0, 0, 1e6, &v);
    if (s) return s;
    if (v != floor(v))
        return lb_fail(LB_ERR_INVALID, "%s option %s=%s: must be a whole number >= 0 (0 = default)", q->method->name, key,
                       lb_qopt(q->cfg, key, ""));
    *out = (int)v;
    return LB_OK;
}

static lb_status uniq_setup(lb_quant *q) {
    if (q->bits < 1 || q->bits > 8)
        return lb_fail(LB_ERR_INVALID, "%s: uniq takes 1 to 8 weight bits, not %d", q->name, q->bits);
    int stages = 0, stage_epochs = 0, final = 0, ste = 0;
    lb_status s = uniq_int_opt(q, "stages", &stages);
    if (!s) s = uniq_int_opt(q, "stage_epochs", &stage_epochs);
    if (!s) s = lb_qopt_choice(q, "final", "hard ste none", &final);
    if (!s) s = lb_qopt_choice(q, "train", "noise ste", &ste);
    if (s) return s;
    uniq_state *st = lb_calloc(1, sizeof *st);
    if (!st) return lb_fail(LB_ERR_NOMEM, "%s: out of memory", q->name);
    st->stages = stages;
    st->stage_epochs = stage_epochs;
    st->final = final;
    st->ste = ste;
    const int K = 1 << q->bits;
    for (int j = 0; j < K; j++) st->lv[j] = lb_q_phi_inv((j + 0.5) / K);
    q->state = st;
    q->nlearn = 0;
    return LB_OK;
}

static void uniq_release(lb_quant *q) {
    lb_free(q->state);
    q->state = NULL;
}

static void uniq_init(lb_quant *q, const float *x, int64_t n) {
    (void)x;
    (void)n;
    q->initialized = 1; /* nothing learned: mu and sigma are refitted at every call */
}

/* Gradual schedule: layers split into S stages in network order, E epochs each; during
 * stage s, earlier stages are hard-quantized and frozen, stage s trains with noise and
 * later stages train in float. Then one more stage of the same length (final=hard): every
 * quantized layer hard and frozen while the layers left in float (first and last, batch
 * norm) train on, as each stage's successors did; without it (final=none, the released
 * code) the last stage is only ever trained with noise and meets its hard weights at
 * evaluation: fmnist-cnn W2/A2 ends about 0.9 points lower (docs/results.md). final=ste
 * trains every quantized layer through its hard quantizer (straight-through) in that
 * stage instead. */
static void uniq_schedule(lb_quant *q, const lb_qsched *s) {
    const uniq_state *st = q->state;
    const int L = LB_MAX(q->n_layers, 1);
    const int S = st->stages ? LB_MIN(st->stages, L) : L;
    const int P = S + (st->final != UNIQ_FINAL_NONE);   /* stages, with the final one */
    const int mine = LB_MIN((int)((int64_t)q->layer * S / L), S - 1);
    /* stage_epochs fixes each stage's length; by default the run is split equally by
     * steps, so a short fine-tune (fewer epochs than layers) still trains every stage */
    const int cur = st->stage_epochs ? LB_MIN(s->epoch / st->stage_epochs, P - 1)
                  : s->total_steps > 0 ? (int)LB_MIN(s->step * P / s->total_steps, (int64_t)P - 1)
                                       : P - 1;
    q->mode = mine < cur ? LB_QMODE_HARD : mine == cur ? LB_QMODE_QUANT : LB_QMODE_FLOAT;
    q->frozen = mine < cur && !(cur == S && st->final == UNIQ_FINAL_STE);
    q->step = s->step;
}

static const lb_qops uniq_w = {uniq_setup, NULL, uniq_init, uniq_forward, uniq_backward, uniq_schedule, uniq_encode, uniq_release};

const lb_qmethod lb_qm_uniq = {"uniq", "k-quantile levels of a fitted Gaussian, trained with uniform noise in the CDF domain, layer by layer",
                               "stages stage_epochs final train", 1, 8, 1, 8, &uniq_w, &lb_qops_act_uniform, "sgd lr=0.005 bnfix=200"};
