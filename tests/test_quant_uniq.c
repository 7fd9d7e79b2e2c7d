/* UNIQ weight quantizer (METHODS.md section 2) on plain arrays: the k-quantile levels,
 * equal-probability bins, train == deploy (hard forward is decode(encode)), the noise
 * injection's bounds and determinism, the gradual schedule, STE and option errors.
 * mu and sigma are recomputed here in double; the quantizer works in float with its
 * own Phi and Phi^-1 (each within 3e-7 in the CDF domain), far inside the tolerances. */
#include "quant/quant.h"
#include "test_util.h"

#include <omp.h>
#include <string.h>

enum { N = 100000 };

/* N(0,1) (Box-Muller) or Laplace(0,1) samples from the counter-based generator */
static void sample(float *x, int64_t n, int laplace, uint64_t seed) {
    float *u = malloc((size_t)(2 * n) * sizeof *u);
    lb_rng_uniform(u, 2 * n, 0.0f, 1.0f, lb_rng_key(seed, 99), 0);
    for (int64_t i = 0; i < n; i++) {
        double a = 1.0 - u[2 * i], b = u[2 * i + 1]; /* a in (0, 1] */
        if (laplace) x[i] = (float)(b < 0.5 ? log(a) : -log(a));
        else x[i] = (float)(sqrt(-2.0 * log(a)) * cos(6.283185307179586 * b));
    }
    free(u);
}

static void moments(const float *x, int64_t n, double *mu, double *sigma) {
    double s = 0, v = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    *mu = s / (double)n;
    for (int64_t i = 0; i < n; i++) v += (x[i] - *mu) * (x[i] - *mu);
    *sigma = fmax(sqrt(v / (double)n), 1e-5);
}

/* a weight quantizer over a [n/100, 100] tensor, or NULL with the error left set */
static lb_quant *make(lb_qcfg *cfg, const char *s, int64_t n) {
    lb_quant *q = NULL;
    int64_t shape[2] = {n / 100, 100};
    if (lb_qcfg_parse(cfg, s, "test") != LB_OK) return NULL;
    if (lb_quant_new(&q, cfg, LB_QW, 2, shape) != LB_OK) return NULL;
    q->method->w->init(q, NULL, 0);
    return q;
}

/* 1. levels of the standard normal: a standardized sample has mu = 0, sigma = 1 */
static void test_levels(void) {
    static const double want[3][8] = {{-0.6745, 0.6745},
                                      {-1.1503, -0.3186, 0.3186, 1.1503},
                                      {-1.5341, -0.8871, -0.4888, -0.1573, 0.1573, 0.4888, 0.8871, 1.5341}};
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    sample(x, N, 0, 1);
    double mu, sigma;
    moments(x, N, &mu, &sigma);
    for (int i = 0; i < N; i++) x[i] = (float)((x[i] - mu) / sigma);
    for (int b = 1; b <= 3; b++) {
        char s[32];
        snprintf(s, sizeof s, "uniq:%d/4", b);
        lb_qcfg cfg;
        lb_quant *q = make(&cfg, s, N);
        CHECK_MSG(q, "%s", lb_last_error());
        if (!q) continue;
        const int K = 1 << b;
        int hit[8] = {0}, bad = 0;
        q->method->w->forward(q, y, x, N, 0);
        for (int i = 0; i < N; i++) {
            int j = 0; /* nearest wanted level */
            for (int k = 1; k < K; k++)
                if (fabs(y[i] - want[b - 1][k]) < fabs(y[i] - want[b - 1][j])) j = k;
            if (fabs(y[i] - want[b - 1][j]) > 1e-4) bad++;
            hit[j] = 1;
        }
        CHECK_MSG(bad == 0, "b=%d: %d outputs off the levels", b, bad);
        for (int k = 0; k < K; k++) CHECK_MSG(hit[k], "b=%d: level %g never used", b, want[b - 1][k]);
        lb_quant_free(q);
    }
    free(x);
    free(y);
}

/* 2 + 3. equal-probability bins, at most K values, and hard forward == decode(encode) */
static void test_bins(int laplace, int bits) {
    char s[32];
    snprintf(s, sizeof s, "uniq:%d/4", bits);
    lb_qcfg cfg;
    lb_quant *q = make(&cfg, s, N);
    CHECK_MSG(q, "%s", lb_last_error());
    if (!q) return;
    const int K = 1 << bits;
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *y2 = malloc(N * sizeof *y2);
    int32_t *code = malloc(N * sizeof *code);
    sample(x, N, laplace, 2 + (uint64_t)laplace);
    q->method->w->forward(q, y, x, N, 0);
    q->method->w->encode(q, code, x, N);
    /* decode: the value of code j is the same float everywhere, and close to
     * mu + sigma Phi^-1((j + 1/2) / K) */
    double mu, sigma;
    moments(x, N, &mu, &sigma);
    float cb[256];
    int64_t count[256] = {0};
    int seen[256] = {0}, out_of_range = 0, mismatch = 0, distinct = 0;
    for (int i = 0; i < N; i++) {
        int32_t j = code[i];
        if (j < 0 || j >= K) { out_of_range++; continue; }
        count[j]++;
        if (!seen[j]) { seen[j] = 1; cb[j] = y[i]; distinct++; }
        if (y[i] != lbr_codebook_value(j, cb)) mismatch++;
    }
    CHECK(out_of_range == 0);
    CHECK_MSG(mismatch == 0, "%d outputs differ from decode(encode)", mismatch);
    CHECK(distinct <= K);
    for (int j = 0; j < K; j++)
        if (seen[j]) CHECK_CLOSE(cb[j], mu + sigma * lb_q_phi_inv((j + 0.5) / K), 1e-6, 1e-6);
    for (int j = 1; j < K; j++)
        if (seen[j] && seen[j - 1]) CHECK(cb[j] > cb[j - 1]);
    /* equal population under the fitted Gaussian (Laplace weights do not fit it) */
    if (!laplace)
        for (int j = 0; j < K; j++) CHECK_CLOSE((double)count[j], (double)N / K, 0, 0.03);
    /* train == deploy: a HARD-mode training forward is the evaluation forward */
    q->mode = LB_QMODE_HARD;
    q->method->w->forward(q, y2, x, N, 1);
    CHECK(!memcmp(y, y2, N * sizeof *y));
    lb_quant_free(q);
    free(x);
    free(y);
    free(y2);
    free(code);
}

/* 4. noise injection: bounded in the CDF domain, zero mean, the documented stream,
 * deterministic per (key, step, layer) and across thread counts */
static void test_noise(int bits) {
    char s[32];
    snprintf(s, sizeof s, "uniq:%d/4", bits);
    lb_qcfg cfg;
    lb_quant *q = make(&cfg, s, N);
    CHECK_MSG(q, "%s", lb_last_error());
    if (!q) return;
    const int K = 1 << bits;
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *y2 = malloc(N * sizeof *y2);
    sample(x, N, 0, 3);
    for (int i = 0; i < N; i++) x[i] = 0.05f * x[i] + 0.01f; /* weight-like scale, off-centre */
    double mu, sigma;
    moments(x, N, &mu, &sigma);
    q->noise_key = lb_rng_key(7, LB_RNG_QUANT);
    q->step = 5;
    q->layer = 2;
    q->n_layers = 4;
    q->mode = LB_QMODE_QUANT;
    q->method->w->forward(q, y, x, N, 1);
    double sum = 0, worst = 0, worst_ref = 0;
    int changed = 0;
    for (int i = 0; i < N; i++) {
        double f = lb_q_phi((x[i] - mu) / sigma), ft = lb_q_phi((y[i] - mu) / sigma);
        sum += ft - f;
        worst = fmax(worst, fabs(ft - f));
        changed += y[i] != x[i];
        /* the noise is word i % 4 of Philox(key, step << 16 | layer, i / 4) */
        uint32_t r[4];
        lb_philox4x32(q->noise_key, ((uint64_t)q->step << 16) | (uint64_t)q->layer, (uint64_t)(i / 4), r);
        double e = ((double)(r[i % 4] >> 8) / 16777216.0 - 0.5) / K;
        double want = fmin(fmax(f + e, 1e-5), 1 - 1e-5);
        worst_ref = fmax(worst_ref, fabs(ft - want));
    }
    CHECK_MSG(worst <= 0.5 / K + 1e-5, "max |F(w~) - F(w)| = %g > 1/(2K)", worst);
    CHECK_MSG(worst > 0.45 / K, "max |F(w~) - F(w)| = %g: noise too small", worst);
    CHECK_MSG(fabs(sum / N) < 2e-3, "mean F(w~) - F(w) = %g", sum / N);
    CHECK_MSG(worst_ref < 1e-6, "max |F(w~) - clamp(F(w) + e)| = %g (wrong stream?)", worst_ref);
    CHECK(changed > N * 9 / 10);
    /* same step: same noise; another step or layer: different noise */
    q->method->w->forward(q, y2, x, N, 1);
    CHECK(!memcmp(y, y2, N * sizeof *y));
    q->step = 6;
    q->method->w->forward(q, y2, x, N, 1);
    int diff = 0;
    for (int i = 0; i < N; i++) diff += y[i] != y2[i];
    CHECK_MSG(diff > N * 9 / 10, "step 5 and 6 share %d of %d samples", N - diff, N);
    q->step = 5;
    q->layer = 3;
    q->method->w->forward(q, y2, x, N, 1);
    diff = 0;
    for (int i = 0; i < N; i++) diff += y[i] != y2[i];
    CHECK(diff > N * 9 / 10);
    q->layer = 2;
    /* 1 and 2 threads: bit-identical noisy and hard outputs (N not a multiple of the
     * chunk, so the tail chunk is covered too) */
    const int n = N - 3;
    int saved = omp_get_max_threads();
    for (int training = 0; training <= 1; training++) {
        omp_set_num_threads(1);
        q->method->w->forward(q, y, x, n, training);
        omp_set_num_threads(2);
        q->method->w->forward(q, y2, x, n, training);
        CHECK_MSG(!memcmp(y, y2, (size_t)n * sizeof *y), "training=%d differs between 1 and 2 threads", training);
    }
    omp_set_num_threads(saved);
    /* FLOAT mode (a later stage) passes the weights through, in training and evaluation */
    q->mode = LB_QMODE_FLOAT;
    for (int training = 0; training <= 1; training++) {
        q->method->w->forward(q, y, x, N, training);
        CHECK(!memcmp(y, x, N * sizeof *y));
    }
    /* train=ste: the stage in training sees the hard quantizer, not noise */
    snprintf(s, sizeof s, "uniq:%d/4,train=ste", bits);
    lb_qcfg cfg2;
    lb_quant *qs = make(&cfg2, s, N);
    CHECK_MSG(qs, "%s", lb_last_error());
    if (qs) {
        qs->noise_key = q->noise_key;
        qs->step = 5;
        qs->mode = LB_QMODE_QUANT;
        qs->method->w->forward(qs, y, x, N, 1);
        q->mode = LB_QMODE_HARD;
        q->method->w->forward(q, y2, x, N, 0);
        CHECK_MSG(!memcmp(y, y2, N * sizeof *y), "train=ste: training forward differs from the hard quantizer");
        lb_quant_free(qs);
    }
    lb_quant_free(q);
    free(x);
    free(y);
    free(y2);
}

/* 5. gradual schedule */
static void test_schedule(void) {
    enum { NS = 6, Q = LB_QMODE_QUANT, F = LB_QMODE_FLOAT, H = LB_QMODE_HARD, HT = 3 /* hard, still trained */ };
    lb_qcfg cfg[NS];
    const char *specs[NS] = {"uniq:2/4", "uniq:2/4,stages=1", "uniq:2/4,stage_epochs=1", "uniq:2/4,stages=2",
                             "uniq:2/4,final=none", "uniq:2/4,final=ste"};
    /* expected mode of each layer at epochs 0, 3, 7 of an 8-epoch run */
    static const int want[NS][3][4] = {
        /* default: 4 stages and the final one, 1.6 epochs each */
        {{Q, F, F, F}, {H, Q, F, F}, {H, H, H, H}},
        /* stages=1: all noisy at once (one-shot), then the final stage */
        {{Q, Q, Q, Q}, {Q, Q, Q, Q}, {H, H, H, H}},
        /* stage_epochs=1: 4 stages of 1 epoch; the final stage runs to the end */
        {{Q, F, F, F}, {H, H, H, Q}, {H, H, H, H}},
        /* stages=2: layers {0,1}, {2,3}, then the final stage, 2.67 epochs each */
        {{Q, Q, F, F}, {H, H, Q, Q}, {H, H, H, H}},
        /* final=none: 4 stages of 2 epochs, the last one noisy to the end */
        {{Q, F, F, F}, {H, Q, F, F}, {H, H, H, Q}},
        /* final=ste: as the default, but the final stage trains every layer */
        {{Q, F, F, F}, {H, Q, F, F}, {HT, HT, HT, HT}}};
    static const int epochs[3] = {0, 3, 7};
    for (int c = 0; c < NS; c++) {
        lb_quant *q[4];
        int ok = 1;
        for (int l = 0; l < 4; l++) {
            q[l] = make(&cfg[c], specs[c], 1000);
            CHECK_MSG(q[l], "%s", lb_last_error());
            if (!q[l]) { ok = 0; break; }
            q[l]->layer = l;
            q[l]->n_layers = 4;
        }
        if (!ok) continue;
        for (int e = 0; e < 3; e++)
            for (int l = 0; l < 4; l++) {
                lb_qsched s = {.step = 100 * epochs[e] + 7, .steps_per_epoch = 100, .total_steps = 800,
                               .epoch = epochs[e], .epochs = 8};
                q[l]->method->w->schedule(q[l], &s);
                const int w = want[c][e][l], mode = w == HT ? H : w;
                CHECK_MSG(q[l]->mode == mode, "%s epoch %d layer %d: mode %d, expected %d", specs[c], epochs[e], l,
                          q[l]->mode, mode);
                CHECK_MSG(q[l]->frozen == (w == H), "%s epoch %d layer %d: frozen %d", specs[c], epochs[e], l, q[l]->frozen);
                CHECK(q[l]->step == s.step);
            }
        for (int l = 0; l < 4; l++) lb_quant_free(q[l]);
    }
}

/* 6. STE backward and option errors */
static void test_backward_and_errors(void) {
    lb_qcfg cfg;
    lb_quant *q = make(&cfg, "uniq:3/8", 1000);
    CHECK_MSG(q, "%s", lb_last_error());
    if (q) {
        CHECK(q->nlearn == 0);
        CHECK(q->initialized == 1);
        float x[1000], dy[1000], dx[1000];
        sample(x, 1000, 1, 4);
        for (int i = 0; i < 1000; i++) { dy[i] = 0.01f * (float)(i - 500); dx[i] = 1.0f; }
        for (int mode = 0; mode < 3; mode++) {
            q->mode = mode;
            q->method->w->backward(q, dx, dy, x, 1000, 0);
            CHECK(!memcmp(dx, dy, sizeof dx));
        }
        q->method->w->backward(q, dx, dy, x, 1000, 1);
        for (int i = 0; i < 1000; i++) CHECK_CLOSE(dx[i], 2.0f * dy[i], 0, 0);
        lb_quant_free(q);
    }
    /* values are checked by setup (lb_quant_new); keys and bits by the parser */
    static const struct { const char *spec, *names; } bad[] = {
        {"uniq:2/4,stages=-1", "stages"},       {"uniq:2/4,stages=abc", "stages"},
        {"uniq:2/4,stages=1.5", "stages"},      {"uniq:2/4,stage_epochs=-2", "stage_epochs"},
        {"uniq:2/4,stage_epochs=x", "stage_epochs"}, {"uniq:2/4,foo=1", "foo"},
        {"uniq:2/4,final=soft", "final"},       {"uniq:2/4,final=", "final"},
        {"uniq:2/4,train=hard", "train"},
        {"uniq:9/4", "9"},                      {"uniq:0/4", "0"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lb_quant *b = make(&cfg, bad[i].spec, 1000);
        CHECK_MSG(!b, "%s was accepted", bad[i].spec);
        if (b) { lb_quant_free(b); continue; }
        CHECK_MSG(strstr(lb_last_error(), bad[i].names), "%s: message '%s' does not name '%s'", bad[i].spec, lb_last_error(),
                  bad[i].names);
    }
    /* setup refuses bits outside 1..8 even when the parser let them through (32 = float) */
    CHECK_OK(lb_qcfg_parse(&cfg, "uniq:32/4", "test"));
    int64_t shape[1] = {10};
    lb_quant *f = NULL;
    CHECK(lb_quant_new(&f, &cfg, LB_QW, 1, shape) != LB_OK);
    CHECK(f == NULL && strstr(lb_last_error(), "bits"));
    /* the method's table row */
    const lb_qmethod *m = lb_qmethod_find("uniq");
    CHECK(m && !strcmp(m->recipe, "sgd lr=0.005 bnfix=200") && !strcmp(m->opts, "stages stage_epochs final train"));
    CHECK(m && m->a == &lb_qops_act_uniform);
}

int main(void) {
    test_levels();
    test_bins(0, 2);
    test_bins(0, 3);
    test_bins(1, 2);
    test_bins(1, 3);
    test_noise(2);
    test_noise(4);
    test_schedule();
    test_backward_and_errors();
    return lbt_report("test_quant_uniq");
}
