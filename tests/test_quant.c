/* Quantizers uniform, balanced, SYQ and power-of-two: forward against hand-computed
 * values, properties on Gaussian and Laplacian tensors, gradients of learned parameters
 * against finite differences, the quantization-string parser's errors, quantizers on a
 * model (checkpoint round trip), and fmnist-cnn's BOPs against numbers worked by hand.
 * UNIQ and Quantization Networks have their own files (test_quant_uniq.c, _qn.c). */
#include "graph/graph.h"
#include "quant/quant.h"
#include "lbr_quant.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lb_quant *mk(const char *s, lb_qcfg *c, int role, int ndim, const int64_t *shape) {
    lb_quant *q = NULL;
    if (lb_qcfg_parse(c, s, "test") || lb_quant_new(&q, c, role, ndim, shape)) {
        fprintf(stderr, "cannot make '%s': %s\n", s, lb_last_error());
        return NULL;
    }
    return q;
}

/* init + hard forward, as after a fine-tune starts */
static void hard(lb_quant *q, float *y, const float *x) {
    q->method->w->init(q, x, q->n);
    q->method->w->forward(q, y, x, q->n, 0);
}

static void fill_gauss(float *x, int64_t n, uint64_t seed, int laplace) {
    for (int64_t i = 0; i < n; i += 4) {
        uint32_t r[4];
        lb_philox4x32(seed, 7, (uint64_t)i, r);
        for (int k = 0; k < 4 && i + k < n; k++) {
            double u1 = ((r[k] >> 8) + 0.5) / 16777216.0, u2 = ((r[(k + 1) % 4] >> 8) + 0.5) / 16777216.0;
            x[i + k] = laplace ? (float)((u1 < 0.5 ? 1 : -1) * log(2 * fmin(u1, 1 - u1)) * 0.1)
                               : (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2) * 0.1);
        }
    }
}

static int distinct(const float *y, int64_t n) {
    float seen[512];
    int k = 0;
    for (int64_t i = 0; i < n; i++) {
        int j = 0;
        while (j < k && seen[j] != y[i]) j++;
        if (j == k) {
            if (k == 512) return 9999;
            seen[k++] = y[i];
        }
    }
    return k;
}

static void test_uniform(void) {
    lb_qcfg c;
    int64_t s5[1] = {5}, s4[1] = {4}, s22[2] = {2, 2};
    float y[8];
    /* DoReFa 2 bits on [-1, -0.5, 0, 0.5, 1]: w' = tanh(w)/(2 tanh 1) + 1/2 -> 0, .197, .5, .803, 1;
     * times 3 and rounded half to even: 0, 1, 2 (1.5), 2, 3 -> 2j/3 - 1 */
    float x[5] = {-1, -0.5f, 0, 0.5f, 1};
    lb_quant *q = mk("uniform:2/4", &c, LB_QW, 1, s5);
    hard(q, y, x);
    const float want[5] = {-1, -1.0f / 3, 1.0f / 3, 1.0f / 3, 1};
    for (int i = 0; i < 5; i++) CHECK_CLOSE(y[i], want[i], 1e-6, 0);
    lb_quant_free(q);
    /* max-abs 3 bits: s = 1/3, codes round(3w) = -3, -2 (-1.5 half to even), 1, 3 */
    float x4[4] = {-1, -0.5f, 0.2f, 0.9f}, w4[4] = {-1, -2.0f / 3, 1.0f / 3, 0.9f / 0.9f};
    q = mk("uniform:3/4,mode=maxabs", &c, LB_QW, 1, s4);
    hard(q, y, x4);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(y[i], w4[i], 1e-6, 0);
    lb_quant_free(q);
    /* per channel, 2 bits (qmax 1): rows [1, .4] (s 1) and [.1, -.2] (s .2, .1/.2 = .5 -> 0) */
    float xc[4] = {1, 0.4f, 0.1f, -0.2f}, wc[4] = {1, 0, 0, -0.2f};
    q = mk("uniform:2/4,mode=maxabs,per=channel", &c, LB_QW, 2, s22);
    hard(q, y, xc);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(y[i], wc[i], 1e-6, 0);
    lb_quant_free(q);
    /* DoReFa backward against finite differences of L = sum g * Q(w) through the soft
     * map (the rounding passes the gradient through: differentiate tanh(w)/M directly) */
    enum { N = 7 };
    float w[N] = {0.3f, -0.8f, 0.05f, 1.2f, -0.4f, 0.7f, -1.1f}, g[N] = {0.5f, -1, 0.25f, 2, -0.3f, 0.8f, 1.5f}, dw[N];
    int64_t sn[1] = {N};
    q = mk("uniform:4/4", &c, LB_QW, 1, sn);
    hard(q, y, w);
    q->method->w->backward(q, dw, g, w, N, 0);
    for (int i = 0; i < N; i++) {
        double h = 1e-4, lp = 0, lm = 0;
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            double wi[N], mx = 0, l = 0;
            for (int k = 0; k < N; k++) wi[k] = w[k] + (k == i ? sgn * h : 0);
            for (int k = 0; k < N; k++) mx = fmax(mx, fabs(tanh(wi[k])));
            for (int k = 0; k < N; k++) l += g[k] * tanh(wi[k]) / mx;
            if (sgn < 0) lm = l; else lp = l;
        }
        CHECK_CLOSE(dw[i], (lp - lm) / (2 * h), 1e-3, 1e-3);
    }
    lb_quant_free(q);
    /* the activation quantizer: clip to [0, 1], 2 bits: 0, round(.3) = 0, round(1.5) = 2, 2, 3 */
    float xa[5] = {-0.2f, 0.1f, 0.5f, 0.74f, 1.3f}, wa[5] = {0, 0, 2.0f / 3, 2.0f / 3, 1}, ga[5] = {1, 1, 1, 1, 1}, da[5];
    q = mk("uniform:2/2", &c, LB_QA, 1, s5);
    q->method->a->forward(q, y, xa, 5, 1);
    for (int i = 0; i < 5; i++) CHECK_CLOSE(y[i], wa[i], 1e-6, 0);
    q->method->a->backward(q, da, ga, xa, 5, 0);
    CHECK(da[0] == 0 && da[1] == 1 && da[3] == 1 && da[4] == 0);
    lb_quant_free(q);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_balanced(void) {
    lb_qcfg c;
    float y[16];
    /* W = 1..8 at 2 bits: bins {1,2} {3,4} {5,6} {7,8}; meanabs: mean|W| = 4.5 and the
     * levels' mean |2j-3|/3 = 2/3, so s = 6.75: -6.75, -2.25, 2.25, 6.75 */
    float x[8] = {5, 1, 8, 3, 2, 7, 4, 6};
    int64_t s8[1] = {8};
    for (int mode = 0; mode < 2; mode++) { /* exact and mean agree here: means 4.5, 2.5, 6.5 */
        lb_quant *q = mk(mode ? "balanced:2/4,percentile=mean" : "balanced:2/4", &c, LB_QW, 1, s8);
        hard(q, y, x);
        for (int i = 0; i < 8; i++) {
            float want = x[i] <= 2 ? -6.75f : x[i] <= 4 ? -2.25f : x[i] <= 6 ? 2.25f : 6.75f;
            CHECK_CLOSE(y[i], want, 1e-5, 0);
        }
        lb_quant_free(q);
    }
    /* scale=one: levels -1, -1/3, 1/3, 1 */
    lb_quant *q = mk("balanced:2/4,scale=one", &c, LB_QW, 1, s8);
    hard(q, y, x);
    CHECK_CLOSE(y[1], -1, 1e-6, 0);
    CHECK_CLOSE(y[3], -1.0f / 3, 1e-6, 0);
    lb_quant_free(q);
    /* exact mode: equal populations within one, on Gaussian and Laplacian tensors of odd
     * size, at 1 to 4 bits; mean mode on a Gaussian: about 21/29/29/21 % at 2 bits */
    enum { N = 10007 };
    static float w[N], yy[N];
    static int32_t codes[N];
    int64_t sn[1] = {N};
    for (int lap = 0; lap < 2; lap++) {
        fill_gauss(w, N, 11 + lap, lap);
        for (int b = 1; b <= 4; b++) {
            char s[64];
            snprintf(s, sizeof s, "balanced:%d/4", b);
            q = mk(s, &c, LB_QW, 1, sn);
            hard(q, yy, w);
            q->method->w->encode(q, codes, w, N);
            int64_t cnt[16] = {0}, lo = N, hi = 0;
            for (int i = 0; i < N; i++) cnt[codes[i]]++;
            for (int j = 0; j < (1 << b); j++) { lo = cnt[j] < lo ? cnt[j] : lo; hi = cnt[j] > hi ? cnt[j] : hi; }
            CHECK_MSG(hi - lo <= 1, "balanced %d bits: bin populations %lld..%lld", b, (long long)lo, (long long)hi);
            CHECK(distinct(yy, N) == 1 << b);
            lb_quant_free(q);
        }
    }
    /* exact mode against a full sort: the edges are the order statistics at the ranks of
     * the recursive halving, so the codes equal those of edges read off the sorted copy;
     * sizes below and around K, ties (rounded values, all equal), both signs of zero */
    {
        static float srt[N];
        static int32_t want[N];
        const int64_t sizes[] = {1, 2, 3, 7, 15, 16, 17, 100, 1001, N};
        for (int t = 0; t < 3; t++)
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
                int64_t n = sizes[si];
                int64_t sz[1] = {n};
                fill_gauss(w, N, 21 + t, 0);
                for (int64_t i = 0; i < n; i++) {
                    if (t == 1) w[i] = roundf(w[i] * 4) / 4; /* many ties, +0 and -0 */
                    if (t == 2) w[i] = 0.5f;
                }
                memcpy(srt, w, sizeof(float) * (size_t)n);
                qsort(srt, (size_t)n, sizeof(float), cmp_float);
                for (int b = 1; b <= 4; b++) {
                    const int K = 1 << b;
                    float e[15];
                    for (int j = 0; j < K - 1; j++) e[j] = 0; /* an edge with no rank keeps its initial 0 */
                    for (int j = 0; j < K - 1; j++) {
                        /* the rank of edge j: the median of its node's range, halving from [0, n) */
                        int64_t lo = 0, hi = n;
                        int b0 = 0, nb = K;
                        while (j != b0 + nb / 2 - 1) {
                            int64_t mid = lo + (hi - lo) / 2;
                            if (j < b0 + nb / 2 - 1) hi = mid;
                            else { lo = mid; b0 += nb / 2; }
                            nb /= 2;
                        }
                        if (hi > lo) e[j] = srt[lo + (hi - lo) / 2];
                    }
                    for (int64_t i = 0; i < n; i++) {
                        int32_t cd = 0;
                        for (int j = 0; j < K - 1; j++) cd += e[j] <= w[i];
                        want[i] = cd;
                    }
                    char s[64];
                    snprintf(s, sizeof s, "balanced:%d/4", b);
                    q = mk(s, &c, LB_QW, 1, sz);
                    q->method->w->encode(q, codes, w, n);
                    int bad = 0;
                    for (int64_t i = 0; i < n; i++) bad += codes[i] != want[i];
                    CHECK_MSG(!bad, "balanced %d bits, n %lld, case %d: %d codes differ from the sorted reference", b, (long long)n, t, bad);
                    lb_quant_free(q);
                }
            }
    }
    fill_gauss(w, N, 5, 0);
    q = mk("balanced:2/4,percentile=mean", &c, LB_QW, 1, sn);
    q->method->w->encode(q, codes, w, N);
    int64_t cnt[4] = {0};
    for (int i = 0; i < N; i++) cnt[codes[i]]++;
    CHECK_MSG(fabs(cnt[0] / (double)N - 0.21) < 0.015 && fabs(cnt[1] / (double)N - 0.29) < 0.015,
              "mean-mode bins %.3f %.3f %.3f %.3f", cnt[0] / (double)N, cnt[1] / (double)N, cnt[2] / (double)N, cnt[3] / (double)N);
    lb_quant_free(q);
    /* learned scale: dL/ds = sum g (2j - (K-1))/(K-1), against finite differences of s */
    q = mk("balanced:2/4,scale=learned", &c, LB_QW, 1, s8);
    float g[8] = {0.3f, -1, 0.5f, 2, 0.1f, -0.7f, 1.1f, 0.4f}, dx[8];
    hard(q, y, x);
    CHECK_CLOSE(q->learn[0][0], 6.75, 1e-5, 0);
    q->method->w->forward(q, y, x, 8, 1);
    q->method->w->backward(q, dx, g, x, 8, 0);
    double lsum[2];
    float s0 = q->learn[0][0];
    for (int k = 0; k < 2; k++) {
        q->learn[0][0] = s0 + (k ? 1e-2f : -1e-2f);
        q->method->w->forward(q, y, x, 8, 1);
        lsum[k] = 0;
        for (int i = 0; i < 8; i++) lsum[k] += g[i] * y[i];
    }
    CHECK_CLOSE(q->glearn[0][0], (lsum[1] - lsum[0]) / 2e-2, 1e-3, 1e-3);
    for (int i = 0; i < 8; i++) CHECK(dx[i] == g[i]); /* STE */
    lb_quant_free(q);
}

static void test_syq(void) {
    lb_qcfg c;
    /* conv weight 3 x 2 x 2 x 2 */
    enum { N = 24 };
    int64_t sh[4] = {3, 2, 2, 2};
    float x[N], y[N], g[N], dx[N];
    fill_gauss(x, N, 3, 0);
    fill_gauss(g, N, 4, 1);
    const char *cfgs[6] = {"syq:2/4,group=layer", "syq:2/4,group=row", "syq:2/4", "syq:1/4,group=layer", "syq:1/4,group=row", "syq:1/4"};
    const int groups[6] = {1, 2, 4, 1, 2, 4};
    for (int t = 0; t < 6; t++) {
        lb_quant *q = mk(cfgs[t], &c, LB_QW, 4, sh);
        CHECK(q->learn_size[0] == groups[t]);
        hard(q, y, x);
        const int ter = t < 3;
        float eta = ter ? 0.05f * lb_q_maxabs(x, N) : 0;
        int zeros = 0, small = 0;
        for (int i = 0; i < N; i++) {
            int pos = i % 4, gi = groups[t] == 1 ? 0 : groups[t] == 2 ? pos / 2 : pos;
            float a = q->learn[0][gi];
            /* alpha starts at the group's mean |w| */
            double m = 0;
            int cnt = 0;
            for (int k = 0; k < N; k++) {
                int pk = k % 4, gk = groups[t] == 1 ? 0 : groups[t] == 2 ? pk / 2 : pk;
                if (gk == gi) { m += fabs(x[k]); cnt++; }
            }
            CHECK_CLOSE(a, m / cnt, 1e-6, 1e-5);
            CHECK(y[i] == a || y[i] == -a || (ter && y[i] == 0));
            zeros += y[i] == 0;
            small += fabsf(x[i]) <= eta;
        }
        CHECK(zeros == small);
        /* gradients: dw = a g above the threshold else g; dalpha against finite differences */
        q->method->w->forward(q, y, x, N, 1);
        q->method->w->backward(q, dx, g, x, N, 0);
        for (int i = 0; i < N; i++) {
            int pos = i % 4, gi = groups[t] == 1 ? 0 : groups[t] == 2 ? pos / 2 : pos;
            CHECK_CLOSE(dx[i], fabsf(x[i]) > eta ? q->learn[0][gi] * g[i] : g[i], 1e-7, 1e-6);
        }
        for (int gi = 0; gi < groups[t]; gi++) {
            double l[2];
            float a0 = q->learn[0][gi];
            for (int k = 0; k < 2; k++) {
                q->learn[0][gi] = a0 + (k ? 1e-3f : -1e-3f);
                q->method->w->forward(q, y, x, N, 1);
                l[k] = 0;
                for (int i = 0; i < N; i++) l[k] += (double)g[i] * y[i];
            }
            q->learn[0][gi] = a0;
            CHECK_CLOSE(q->glearn[0][gi], (l[1] - l[0]) / 2e-3, 1e-3, 1e-3);
        }
        lb_quant_free(q);
    }
    /* linear: pixel falls back to one alpha per layer, row is one per output row */
    int64_t sl[2] = {3, 8};
    lb_quant *q = mk("syq:1/4", &c, LB_QW, 2, sl);
    CHECK(q->learn_size[0] == 1);
    lb_quant_free(q);
    q = mk("syq:1/4,group=row", &c, LB_QW, 2, sl);
    CHECK(q->learn_size[0] == 3);
    lb_quant_free(q);
}

static void test_pot(void) {
    lb_qcfg c;
    /* 3 bits: max .9 -> e_max = floor(log2 1.2) = 0, exponents -2..0: levels 0, +-.25, +-.5, +-1;
     * midpoints .125, .375, .75 */
    float x[6] = {0.9f, -0.3f, 0.05f, 0.6f, -0.74f, 0.126f}, y[6];
    const float want[6] = {1, -0.25f, 0, 0.5f, -0.5f, 0.25f};
    int64_t s6[1] = {6};
    lb_quant *q = mk("pot:3/4", &c, LB_QW, 1, s6);
    hard(q, y, x);
    for (int i = 0; i < 6; i++) CHECK_CLOSE(y[i], want[i], 0, 0);
    lb_quant_free(q);
    /* random tensors: zero or +-2^e, at most 2^b - 1 values */
    enum { N = 5000 };
    static float w[N], yy[N];
    int64_t sn[1] = {N};
    for (int b = 2; b <= 5; b++) {
        char s[32];
        snprintf(s, sizeof s, "pot:%d/4", b);
        q = mk(s, &c, LB_QW, 1, sn);
        fill_gauss(w, N, (uint64_t)b, b & 1);
        hard(q, yy, w);
        int ok = 1;
        for (int i = 0; i < N; i++) {
            int e;
            float m = frexpf(fabsf(yy[i]), &e);
            ok &= yy[i] == 0 || m == 0.5f;
            /* nearest level: no level is closer than the chosen one (with clipping at the top) */
        }
        CHECK(ok);
        CHECK(distinct(yy, N) <= (1 << b) - 1);
        lb_quant_free(q);
    }
    /* INQ: frozen fractions 50, 75, 87.5, 100 % over four stages; frozen weights are
     * the largest and are quantized, the rest pass through in float */
    q = mk("pot:4/4,update=inq", &c, LB_QW, 1, sn);
    fill_gauss(w, N, 9, 0);
    q->method->w->init(q, w, N);
    const double frac[4] = {0.5, 0.75, 0.875, 1.0};
    for (int st = 0; st < 4; st++) {
        lb_qsched sc = {st * 10, 10, 40, st, 4};
        q->method->w->schedule(q, &sc);
        q->method->w->forward(q, yy, w, N, 1);
        int frozen = 0, quantized = 0;
        for (int i = 0; i < N; i++) { frozen += q->learn[1][i] != 0; quantized += yy[i] != w[i]; }
        CHECK_CLOSE(frozen, ceil(frac[st] * N), 0, 0);
        CHECK(quantized <= frozen);
    }
    lb_quant_free(q);
    /* activations on a 2^-b grid: 2 bits -> 0, .25, .5, .75 */
    float xa[5] = {-1, 0.1f, 0.3f, 0.6f, 2}, wa[5] = {0, 0, 0.25f, 0.5f, 0.75f};
    q = mk("pot:3/2", &c, LB_QA, 1, s6);
    q->method->a->forward(q, y, xa, 5, 1);
    for (int i = 0; i < 5; i++) CHECK_CLOSE(y[i], wa[i], 0, 0);
    lb_quant_free(q);
}

static void test_parse(void) {
    lb_qcfg c;
    const char *bad[] = {"foo:2/2", "balanced", "balanced:9/4", "syq:3/4", "balanced:2/4,foo=1", "pot:1/4", "balanced:2/x",
                         "balanced:2/4,percentile", "balanced:2/4,every=1,every=2", "", "uniq:2/0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_STATUS(lb_qcfg_parse(&c, bad[i], "--quant"), LB_ERR_INVALID);
        CHECK(strstr(lb_last_error(), "--quant") != NULL);
    }
    CHECK_STATUS(lb_qcfg_parse(&c, "foo:2/2", "--quant"), LB_ERR_INVALID);
    CHECK(strstr(lb_last_error(), "balanced") && strstr(lb_last_error(), "syq")); /* lists the methods */
    CHECK_OK(lb_qcfg_parse(&c, "balanced:2/4,percentile=mean", "--quant"));
    char buf[128];
    lb_qcfg_format(&c, buf, sizeof buf);
    CHECK(!strcmp(buf, "balanced:2/4,percentile=mean"));
    CHECK_OK(lb_qcfg_parse(&c, "syq:1/32", "--quant"));
    CHECK(c.abits == 32);
    /* option values are checked when the quantizer is made */
    int64_t s4[1] = {4};
    lb_quant *q;
    const char *badv[] = {"balanced:2/4,percentile=median", "uniform:1/4,mode=maxabs", "syq:2/4,group=channel", "balanced:2/4,every=0",
                          "pot:4/4,update=sgd"};
    for (size_t i = 0; i < sizeof badv / sizeof badv[0]; i++) {
        CHECK_OK(lb_qcfg_parse(&c, badv[i], "--quant"));
        CHECK_STATUS(lb_quant_new(&q, &c, LB_QW, 1, s4), LB_ERR_INVALID);
    }
}

static const char *SPEC =
    "{\"name\": \"t\", \"input\": [1, 6, 6], \"layers\": ["
    "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"pad\": 1},"
    "{\"name\": \"r1\", \"op\": \"Relu\"},"
    "{\"name\": \"c2\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"bias\": false},"
    "{\"name\": \"b2\", \"op\": \"BatchNormalization\"},"
    "{\"name\": \"r2\", \"op\": \"Relu\"},"
    "{\"name\": \"f\", \"op\": \"Flatten\"},"
    "{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 3}]}";

static void test_model(void) {
    lb_model *m, *m2;
    CHECK_OK(lb_model_create_from_json(&m, SPEC, strlen(SPEC), "spec"));
    CHECK_OK(lb_model_set_quant(m, "syq:2/4,group=row", 0));
    CHECK(!strcmp(lb_model_quant(m), "syq:2/4,group=row"));
    int a = lb_model_find_tensor(m, "c2.wq.alpha");
    CHECK(a >= 0 && m->tensors[a].size == 3);
    CHECK(lb_model_find_tensor(m, "c1.wq.alpha") < 0); /* first and last stay float */
    CHECK(m->nodes[1].aq && m->nodes[4].aq && !m->nodes[0].wq && m->nodes[2].wq && !m->nodes[6].wq);
    CHECK_STATUS(lb_model_set_quant(m, "syq:3/4", 0), LB_ERR_INVALID);
    CHECK_OK(lb_model_set_quant(m, "syq:2/4,group=row", 1));
    CHECK(lb_model_find_tensor(m, "c1.wq.alpha") >= 0 && lb_model_find_tensor(m, "fc.wq.alpha") >= 0);
    lb_model_init_params(m, 3);
    lb_quant_init_weights(m);
    for (int k = 0; k < m->n_tensors; k++) /* learned values made distinct from their init */
        if (m->tensors[k].qowner >= 0) m->params[m->tensors[k].offset] *= 1.5f;
    float x[2 * 36], l1[6], l2[6];
    for (int i = 0; i < 72; i++) x[i] = (float)((i * 37) % 11) / 11.0f;
    CHECK_OK(lb_model_forward(m, x, 2, 0, l1));
    char path[] = "/tmp/lowbit_test_quant_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(lb_checkpoint_save(m, path));
    CHECK_OK(lb_model_create_from_checkpoint(&m2, path));
    CHECK(!strcmp(lb_model_quant(m2), "syq:2/4,group=row") && lb_model_quant_all(m2));
    CHECK_OK(lb_model_forward(m2, x, 2, 0, l2));
    for (int i = 0; i < 6; i++) CHECK(l1[i] == l2[i]);
    int b = lb_model_find_tensor(m2, "c2.wq.alpha");
    CHECK(b >= 0 && m2->params[m2->tensors[b].offset] == m->params[m->tensors[a >= 0 ? lb_model_find_tensor(m, "c2.wq.alpha") : 0].offset]);
    /* a float checkpoint initialises a quantized model: the alphas come from the weights */
    lb_model *f;
    CHECK_OK(lb_model_create_from_json(&f, SPEC, strlen(SPEC), "spec"));
    CHECK_OK(lb_checkpoint_save(f, path));
    CHECK_OK(lb_checkpoint_load(m2, path, NULL));
    CHECK(!m2->nodes[2].wq->initialized);
    lb_model_destroy(f);
    lb_model_destroy(m2);
    lb_model_destroy(m);
    unlink(path);
    /* spec-level quant with a per-layer override; unknown layer names are errors */
    const char *spec2 = "{\"input\": [4], \"quant\": {\"default\": \"balanced:2/4\", \"h\": \"uniform:3/4\"}, \"layers\": ["
                        "{\"name\": \"a\", \"op\": \"Gemm\", \"out\": 4}, {\"name\": \"ra\", \"op\": \"Relu\"},"
                        "{\"name\": \"h\", \"op\": \"Gemm\", \"out\": 4}, {\"name\": \"rh\", \"op\": \"Relu\"},"
                        "{\"name\": \"o\", \"op\": \"Gemm\", \"out\": 2}]}";
    CHECK_OK(lb_model_create_from_json(&m, spec2, strlen(spec2), "spec2"));
    CHECK(m->nodes[2].wq && !strcmp(m->nodes[2].wq->method->name, "uniform") && m->nodes[2].wq->bits == 3);
    CHECK(m->nodes[1].aq && m->nodes[1].aq->bits == 4 && !m->nodes[0].wq);
    lb_model_destroy(m);
    const char *spec3 = "{\"input\": [4], \"quant\": {\"nope\": \"balanced:2/4\"}, \"layers\": [{\"name\": \"o\", \"op\": \"Gemm\", \"out\": 2}]}";
    CHECK_STATUS(lb_model_create_from_json(&m, spec3, strlen(spec3), "spec3"), LB_ERR_INVALID);
    CHECK(strstr(lb_last_error(), "nope") != NULL);
}

/* fmnist-cnn at balanced:2/4, BOPs worked by hand (METHODS.md section 0):
 *   conv1 (float weights, float input): 28*28 positions * 32*1*9 * (32*32 + 32 + 32 + log2 9)
 *         = 784 * 288 * 1091.169925 = 246,377,439.7
 *   conv2 (W2, A4): 784 * 32*32*9 * (2*4 + 2 + 4 + log2 288) = 784 * 9216 * 22.169925 = 160,185,334.6
 *   fc2 (float weights, A4 input): 2560 * (4*32 + 4 + 32 + log2 256) = 2560 * 172 = 440,320 */
static void test_bops(void) {
    lb_model *m;
    CHECK_OK(lb_model_create(&m, LB_SOURCE_DIR "/models/fmnist-cnn.json"));
    CHECK_OK(lb_model_set_quant(m, "balanced:2/4", 0));
    lb_layer_cost c;
    int found = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        if (!lb_model_layer_cost(m, i, &c)) continue;
        if (!strcmp(c.name, "conv1")) { found++; CHECK_CLOSE(c.bops, 246377439.7, 1, 0); CHECK(c.wbits == 32 && c.abits == 32); }
        if (!strcmp(c.name, "conv2")) {
            found++;
            CHECK_CLOSE(c.bops, 160185334.6, 1, 0);
            CHECK(c.macs == 7225344 && c.wbits == 2 && c.abits == 4);
            CHECK(c.bytes == 9216 * 2 / 8 + 4 + 0); /* 2-bit codes + s; no bias */
        }
        if (!strcmp(c.name, "fc2")) { found++; CHECK_CLOSE(c.bops, 440320, 1e-3, 0); CHECK(c.abits == 4 && c.bytes == 4 * 2570); }
    }
    CHECK(found == 3);
    lb_model_destroy(m);
}

/* lbr_step_code (lbr_quant.h, shared by training and the runtime) against counting: every
 * n from 0 to 300 thresholds (sorted, with ties), x on, between and beyond them, and NaN. */
static void test_step_code(void) {
    float t[300];
    int bad = 0;
    for (int n = 0; n <= 300; n++) {
        for (int i = 0; i < n; i++) t[i] = (float)(i / 3) * 0.5f; /* each value three times */
        for (int k = -3; k <= 2 * n / 3 + 3; k++) {
            const float x = (float)k * 0.25f;
            int want = 0;
            for (int i = 0; i < n; i++) want += t[i] <= x;
            bad += lbr_step_code(x, t, n) != want;
        }
        bad += lbr_step_code(NAN, t, n) != 0;
    }
    CHECK_MSG(bad == 0, "lbr_step_code: %d counts differ from counting", bad);
}

int main(void) {
    test_step_code();
    test_uniform();
    test_balanced();
    test_syq();
    test_pot();
    test_parse();
    test_model();
    test_bops();
    return lbt_report("test_quant");
}
