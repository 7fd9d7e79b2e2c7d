/* Quantization Networks (src/quant/qn.c, METHODS.md section 4) on plain arrays.
 *
 * The reference is the method's formula evaluated term by term in double:
 *   y = alpha * (sum_i s_i * sig(clamp(T*(beta*x - b_i), -10, 10)) - o).
 * Tolerances:
 * - soft forward: |y - ref| <= alpha * (1e-6 * sum_i s_i + 1e-6): the float sum of up to 255
 *   sigmoids, each within 3e-7 relative of the double value (qn_exp is checked at 2.5e-7);
 * - soft -> hard: METHODS.md's bound, 5e-5 * s_i per step, where every |T(beta*x - b_i)| >= 10;
 * - hard forward: bit-exact against decode(encode(x)) with the codebook alpha*(Y_j - Y_0 - o);
 * - gradients: central differences of the scalar loss L = sum dy*y, summed in double over a
 *   float forward; dx with a step of 1e-3 in beta*x units, dalpha with 1e-3 and dbeta with
 *   1e-4 relative. Float rounding of y (6e-8 * alpha * sum_i s_i at most) over the step
 *   gives noise of 6e-5 * alpha*beta * sum_i s_i for dx, and the clamp a bias: the rule
 *   keeps sig(1-sig) = 4.5e-5 for a step on the clamp, where the function is flat, up to
 *   4.6e-5 * T * sum_i s_i (times alpha*beta, or alpha*|x| for beta) per element. Bounds:
 *     dx:     1e-3 |an| + alpha*beta * (2e-4 + 6e-5 T) * sum_i s_i * |dy|
 *     dalpha: 1e-3 |an| + 1e-6 * alpha * sum_i s_i * sum|dy| / step
 *     dbeta:  1e-3 |an| + 6e-5 * alpha * T * sum_i s_i * sum|x dy| + 1e-6 * alpha * sum_i s_i * sum|dy| / step
 *   A wrong factor (T, beta, s_i, a missing o) is off by 100% and more. */
#include "quant/quant.h"
#include "test_util.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const lb_qops *ops(const lb_quant *q) { return q->role == LB_QW ? q->method->w : q->method->a; }

/* parse `spec` into *c (which must outlive the quantizer) and create one over n values */
static lb_quant *mk(lb_qcfg *c, const char *spec, int role, int64_t n) {
    lb_quant *q = NULL;
    int64_t shape[2] = {1, n};
    CHECK_OK(lb_qcfg_parse(c, spec, "test"));
    if (role == LB_QW) CHECK_OK(lb_quant_new(&q, c, LB_QW, 2, shape));
    else CHECK_OK(lb_quant_new(&q, c, LB_QA, 1, shape + 1));
    return q;
}

static void set_params(lb_quant *q, float alpha, float beta, const float *b) {
    q->learn[0][0] = alpha;
    q->learn[1][0] = beta;
    memcpy(q->learn[2], b, (size_t)q->learn_size[2] * sizeof(float));
    q->initialized = 1;
}

/* The target set the quantizer should use (the test's own copy of METHODS.md's sets). */
static int target_set(const lb_quant *q, const char *set, double *Y) {
    int k = 0, B = q->bits;
    if (q->role == LB_QA) for (int j = 0; j < (1 << B); j++) Y[k++] = j;
    else if (B == 1) { Y[k++] = -1; Y[k++] = 1; }
    else if (B == 2 || !strcmp(set, "int")) for (int j = -((1 << (B - 1)) - 1); j <= (1 << (B - 1)) - 1; j++) Y[k++] = j;
    else {
        int emax = (1 << (B - 1)) - 2;
        for (int e = emax; e >= 0; e--) Y[k++] = -ldexp(1, e);
        Y[k++] = 0;
        for (int e = 0; e <= emax; e++) Y[k++] = ldexp(1, e);
    }
    return k;
}

static double sig(double z) { z = z < -10 ? -10 : z > 10 ? 10 : z; return 1 / (1 + exp(-z)); }

/* y(x) in double from the float parameters; *g = sum s_i sig_i (1 - sig_i) at temperature Tg */
static double ref_y(const lb_quant *q, const double *Y, int nY, double x, double T, double Tg, double *g) {
    double alpha = q->learn[0][0], beta = q->learn[1][0], o = q->role == LB_QW ? (Y[nY - 1] - Y[0]) / 2 : 0, a = 0, d = 0;
    const float *b = q->learn[2];
    double u = (double)(float)(beta * (float)x);   /* the quantizer's float beta*x */
    for (int i = 0; i < nY - 1; i++) {
        double s = Y[i + 1] - Y[i], sg = sig(T * (u - b[i])), s1 = sig(Tg * (u - b[i]));
        a += s * sg;
        d += s * s1 * (1 - s1);
    }
    if (g) *g = d;
    return alpha * (a - o);
}

static double stot_of(const double *Y, int nY) { return Y[nY - 1] - Y[0]; }

/* deterministic data: lb_rng_uniform in [lo, hi) */
static void fill(float *x, int64_t n, float lo, float hi, uint64_t stream) { lb_rng_uniform(x, n, lo, hi, 12345, stream); }

/* ------------------------------------------------------------------ 1. hand-computed values */

static void test_hand(void) {
    lb_qcfg c;
    float y[8];
    /* binary {-1, 1}: y = alpha*(2 sig(2 T beta x) - 1) = alpha*tanh(T beta x) */
    lb_quant *q = mk(&c, "qn:1/4", LB_QW, 8);
    set_params(q, 0.5f, 2.0f, (const float[]){0.0f});
    q->temperature = 2;
    const float xb[4] = {0.1f, -0.3f, 5.0f, 0.0f};
    ops(q)->forward(q, y, xb, 4, 1);
    CHECK_CLOSE(y[0], 0.5 * tanh(2 * 2 * 0.1f / 2), 1e-7, 1e-6);
    CHECK_CLOSE(y[1], 0.5 * tanh(2 * 2 * -0.3f / 2), 1e-7, 1e-6);
    CHECK_CLOSE(y[2], 0.5 * tanh(5.0), 1e-7, 1e-6);            /* clamped at 10: 0.4999546 */
    CHECK_CLOSE(y[3], 0.0, 1e-7, 0);
    ops(q)->forward(q, y, xb, 4, 0);
    CHECK(y[0] == 0.5f && y[1] == -0.5f && y[2] == 0.5f && y[3] == 0.5f);   /* A(0) = 1 */
    lb_quant_free(q);

    /* ternary {-1, 0, 1}, b = +-0.05, o = 1 */
    q = mk(&c, "qn:2/4", LB_QW, 8);
    set_params(q, 1.0f, 1.0f, (const float[]){-0.05f, 0.05f});
    q->temperature = 10;
    const float xt[6] = {0.0f, 0.1f, 0.05f, 0.049f, -0.05f, -0.06f};
    ops(q)->forward(q, y, xt, 2, 1);
    CHECK_CLOSE(y[0], 0.0, 1e-7, 0);
    CHECK_CLOSE(y[1], 1 / (1 + exp(-10 * (0.1f + 0.05f))) + 1 / (1 + exp(-10 * (0.1f - 0.05f))) - 1, 1e-7, 1e-6);
    ops(q)->forward(q, y, xt, 6, 0);
    CHECK(y[0] == 0 && y[1] == 1 && y[2] == 1 && y[3] == 0 && y[4] == 0 && y[5] == -1);
    lb_quant_free(q);

    /* 3 bits, powers of two {-4, -2, -1, 0, 1, 2, 4}: s = 2 1 1 1 1 2, o = 4 */
    q = mk(&c, "qn:3/4", LB_QW, 8);
    set_params(q, 0.5f, 1.0f, (const float[]){-3.0f, -1.5f, -0.05f, 0.05f, 1.5f, 3.0f});
    q->temperature = 2;
    const float x3[4] = {1.0f, 3.0f, -2.0f, -100.0f};
#define S(z) (1 / (1 + exp(-(double)(z))))
    ops(q)->forward(q, y, x3, 1, 1);
    CHECK_CLOSE(y[0], 0.5 * (2 * S(8) + S(5) + S(2 * 1.05f) + S(2 * 0.95f) + S(-1) + 2 * S(-4) - 4), 1e-6, 1e-6);
    ops(q)->forward(q, y, x3, 4, 0);
    CHECK(y[0] == 0.5f && y[1] == 2.0f && y[2] == -1.0f && y[3] == -2.0f);
    lb_quant_free(q);

    /* 2-bit activations {0, 1, 2, 3}: o = 0 */
    q = mk(&c, "qn:3/2", LB_QA, 8);
    set_params(q, 0.5f, 2.0f, (const float[]){0.5f, 1.5f, 2.5f});
    q->temperature = 4;
    const float xa[4] = {0.3f, 0.75f, 10.0f, -1.0f};
    ops(q)->forward(q, y, xa, 1, 1);
    CHECK_CLOSE(y[0], 0.5 * (S(4 * (0.6f - 0.5f)) + S(4 * (0.6f - 1.5f)) + S(4 * (0.6f - 2.5f))), 1e-7, 1e-6);
#undef S
    ops(q)->forward(q, y, xa, 4, 0);
    CHECK(y[0] == 0.5f && y[1] == 1.0f && y[2] == 1.5f && y[3] == 0.0f);
    lb_quant_free(q);

    /* the declared learned tensors */
    q = mk(&c, "qn:3/4", LB_QW, 8);
    CHECK(q->nlearn == 3 && !strcmp(q->learn_name[0], "alpha") && !strcmp(q->learn_name[1], "beta") && !strcmp(q->learn_name[2], "b"));
    CHECK(q->learn_size[0] == 1 && q->learn_size[1] == 1 && q->learn_size[2] == 6);
    CHECK(!q->learn_fixed[0] && !q->learn_fixed[1] && q->learn_fixed[2]);
    CHECK(q->learn_log[0] && q->learn_log[1] && !q->learn_log[2]);   /* ab=log by default */
    lb_quant_free(q);
    q = mk(&c, "qn:3/4,ab=linear", LB_QA, 8);
    CHECK(!q->learn_log[0] && !q->learn_log[1] && !q->learn_log[2]);
    lb_quant_free(q);
}

/* ------------------------------------------------------------------ soft forward vs reference */

typedef struct qcase { const char *spec; int role; const char *set; } qcase;
static const qcase CASES[] = {
    {"qn:1/4", LB_QW, ""}, {"qn:2/4", LB_QW, ""}, {"qn:3/4", LB_QW, "pow2"}, {"qn:4/4", LB_QW, "pow2"},
    {"qn:3/4,set=int", LB_QW, "int"}, {"qn:8/4", LB_QW, "int"}, {"qn:3/1", LB_QA, ""}, {"qn:3/2", LB_QA, ""},
    {"qn:3/4", LB_QA, ""}, {"qn:3/4,b=kmeans", LB_QA, ""}, {"qn:3/8", LB_QA, ""}, {"qn:3/8,b=kmeans", LB_QA, ""},
};
enum { NCASES = sizeof CASES / sizeof CASES[0] };

/* a quantizer initialised on deterministic data: weights ~ U(-0.1, 0.1) plus a few
 * larger ones, activations = ReLU of U(-1, 3) */
static lb_quant *mk_init(lb_qcfg *c, const qcase *k, int64_t n, float *x) {
    lb_quant *q = mk(c, k->spec, k->role, n);
    if (!q) return NULL;
    if (k->role == LB_QW) {
        fill(x, n, -0.1f, 0.1f, 1);
        x[0] = 0.3f;
        ops(q)->init(q, x, n);
    } else {
        fill(x, n, -1.0f, 3.0f, 2);
        for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
        ops(q)->observe(q, x, n / 2);
        ops(q)->observe(q, x + n / 2, n - n / 2);
        ops(q)->init(q, NULL, 0);
    }
    return q;
}

static void test_soft_vs_ref(void) {
    enum { N = 4096 };
    static float x[N], y[N];
    const float Ts[] = {1, 2, 9.5f, 10, 13, 20, 37, 2000};
    for (int k = 0; k < NCASES; k++) {
        lb_qcfg c;
        lb_quant *q = mk_init(&c, &CASES[k], N, x);
        if (!q) continue;
        double Y[256];
        int nY = target_set(q, CASES[k].set, Y);
        CHECK_MSG(q->learn_size[2] == nY - 1, "%s: %d steps, expected %d", CASES[k].spec, (int)q->learn_size[2], nY - 1);
        /* inputs over the whole range, plus every threshold and +-10/T around it */
        const float beta = q->learn[1][0], umax = 1.3f * (float)fmax(fabs(Y[0]), fabs(Y[nY - 1]));
        for (int ti = 0; ti < (int)(sizeof Ts / sizeof Ts[0]); ti++) {
            const float T = Ts[ti];
            fill(x, N, -umax / beta, umax / beta, 10 + (uint64_t)ti);
            for (int i = 0; i < nY - 1 && 3 * i + 2 < N / 2; i++) {
                float bi = q->learn[2][i];
                x[3 * i] = bi / beta;
                x[3 * i + 1] = (bi + 10 / T) / beta;
                x[3 * i + 2] = (bi - 10 / T) / beta;
            }
            q->temperature = T;
            ops(q)->forward(q, y, x, N, 1);
            double worst = 0;
            const double tol = q->learn[0][0] * (1e-6 * stot_of(Y, nY) + 1e-6);
            for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - ref_y(q, Y, nY, x[i], T, T, NULL)));
            CHECK_MSG(worst <= tol, "%s T=%g: soft forward off the reference by %g (tolerance %g)", CASES[k].spec, T, worst, tol);
        }
        /* unsorted thresholds (a foreign checkpoint) still give the formula */
        if (nY > 3) {
            float t = q->learn[2][0];
            q->learn[2][0] = q->learn[2][1];
            q->learn[2][1] = t;
            q->temperature = 10;
            ops(q)->forward(q, y, x, N, 1);
            double worst = 0;
            for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - ref_y(q, Y, nY, x[i], 10, 10, NULL)));
            CHECK_MSG(worst <= q->learn[0][0] * (1e-6 * stot_of(Y, nY) + 1e-6), "%s unsorted b: off by %g", CASES[k].spec, worst);
        }
        lb_quant_free(q);
    }
    /* evenly spaced thresholds whose spacing is not a power of two (the code from a
     * division must be corrected), inputs on and beside every threshold */
    lb_qcfg c;
    lb_quant *q = mk(&c, "qn:3/4", LB_QA, N);
    double Y[16];
    int nY = target_set(q, "", Y);
    /* a spacing near 0.7 that b_1 - b_0 reproduces exactly, so the quantizer sees it */
    float b[15], db = 0.7f;
    while ((0.1f + db) - 0.1f != db) db = nextafterf(db, 1);
    for (int i = 0; i < 15; i++) b[i] = 0.1f + (float)i * db;
    set_params(q, 0.8f, 1.0f, b);
    for (int i = 0; i < N; i++) {
        float bi = b[(i / 3) % 15];
        x[i] = i % 3 == 0 ? bi : i % 3 == 1 ? nextafterf(bi, -1) : nextafterf(bi, 100);
    }
    for (int ti = 0; ti < (int)(sizeof Ts / sizeof Ts[0]); ti++) {
        q->temperature = Ts[ti];
        ops(q)->forward(q, y, x, N, 1);
        double worst = 0;
        for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - ref_y(q, Y, nY, x[i], Ts[ti], Ts[ti], NULL)));
        CHECK_MSG(worst <= 0.8 * (1e-6 * 15 + 1e-6), "spacing %.9g, T=%g: soft forward off the reference by %g", db, Ts[ti], worst);
    }
    lb_quant_free(q);
}

/* ------------------------------------------------------------------ 2, 3. hard quantizer */

static void test_hard(void) {
    enum { N = 8192 };
    static float x[N], y[N], y2[N], ys[N];
    static int32_t codes[N];
    for (int k = 0; k < NCASES; k++) {
        lb_qcfg c;
        lb_quant *q = mk_init(&c, &CASES[k], N, x);
        if (!q) continue;
        double Y[256];
        int nY = target_set(q, CASES[k].set, Y);
        const float alpha = q->learn[0][0], beta = q->learn[1][0], o = q->role == LB_QW ? (float)((Y[nY - 1] - Y[0]) / 2) : 0.0f;
        float cb[256];
        for (int j = 0; j < nY; j++) cb[j] = alpha * ((float)Y[j] - (float)Y[0] - o);
        const float umax = 1.3f * (float)fmax(fabs(Y[0]), fabs(Y[nY - 1]));
        fill(x, N, -umax / beta, umax / beta, 20);
        for (int i = 0; i < nY - 1; i++) x[i] = q->learn[2][i] / beta;   /* on the thresholds */
        ops(q)->forward(q, y, x, N, 0);
        ops(q)->encode(q, codes, x, N);
        int bad = 0, badcode = 0, distinct = 0;
        int seen[256] = {0};
        for (int i = 0; i < N; i++) {
            badcode += codes[i] < 0 || codes[i] >= nY;
            if (codes[i] < 0 || codes[i] >= nY) continue;
            bad += memcmp(&y[i], &cb[codes[i]], sizeof(float)) != 0 || y[i] != lbr_codebook_value(codes[i], cb);
            distinct += !seen[codes[i]]++;
        }
        CHECK_MSG(!badcode && !bad, "%s: %d codes out of range, %d hard values != decode(encode)", CASES[k].spec, badcode, bad);
        CHECK(distinct <= nY);
        /* HARD mode gives the hard quantizer while training too */
        q->mode = LB_QMODE_HARD;
        ops(q)->forward(q, y2, x, N, 1);
        CHECK(!memcmp(y, y2, sizeof y));
        q->mode = LB_QMODE_QUANT;

        /* 2. soft -> hard: where every |T(beta x - b_i)| >= 10 the gap per step is < 5e-5 s_i */
        double prev = INFINITY;
        for (float T = 10; T <= 2000; T *= 4) {
            q->temperature = T;
            ops(q)->forward(q, ys, x, N, 1);
            double gap_sum = 0, worst = 0;
            int checked = 0;
            for (int i = 0; i < N; i++) {
                gap_sum += fabs(ys[i] - y[i]);
                double u = (float)(beta * x[i]), zmin = INFINITY;
                for (int j = 0; j < nY - 1; j++) zmin = fmin(zmin, fabs(T * (u - q->learn[2][j])));
                if (zmin < 10) continue;
                checked++;
                worst = fmax(worst, fabs(ys[i] - y[i]) / (alpha * stot_of(Y, nY)));
            }
            CHECK_MSG(worst < 5e-5, "%s T=%g: soft-hard gap %g per unit of step height", CASES[k].spec, T, worst);
            CHECK_MSG(gap_sum < prev, "%s T=%g: mean gap %g did not shrink", CASES[k].spec, T, gap_sum / N);
            CHECK(checked > N / 4 || T < 100);
            prev = gap_sum;
        }
        lb_quant_free(q);
    }
    /* binary, one step: the gap at |T(beta x - b)| = 10 is sig(-10) * s = 4.54e-5 * 2 */
    lb_qcfg c;
    lb_quant *q = mk(&c, "qn:1/4", LB_QW, 4);
    set_params(q, 1.0f, 1.0f, (const float[]){0.0f});
    q->temperature = 100;
    const float xs[2] = {0.1f, -0.1f};
    ops(q)->forward(q, y, xs, 2, 1);
    CHECK(fabs(y[0] - 1) < 5e-5 * 2 && fabs(y[1] + 1) < 5e-5 * 2 && fabs(y[0] - 1) > 4e-5 * 2);
    lb_quant_free(q);
    /* unsorted thresholds (a foreign checkpoint): the hard forward is still
     * decode(lbr_step_code), through its fallback */
    q = mk(&c, "qn:2/2", LB_QA, 64);
    const float bu[3] = {2.5f, 0.5f, 1.5f};
    set_params(q, 0.5f, 1.0f, bu);
    q->mode = LB_QMODE_QUANT;
    fill(x, 64, -1, 4, 21);
    ops(q)->forward(q, y, x, 64, 0);
    int bad = 0;
    for (int i = 0; i < 64; i++) bad += y[i] != 0.5f * (float)lbr_step_code(x[i], bu, 3);
    CHECK_MSG(!bad, "unsorted b: %d hard values != decode(lbr_step_code)", bad);
    lb_quant_free(q);
}

/* ------------------------------------------------------------------ 4. gradients */

static double loss(lb_quant *q, const float *x, const float *dy, int n, float *y) {
    ops(q)->forward(q, y, x, n, 1);
    double L = 0;
    for (int i = 0; i < n; i++) L += (double)dy[i] * y[i];
    return L;
}

static void check_grads(const qcase *k, float T) {
    enum { N = 256 };
    float x[N], dy[N], dx[N], y[N], xp[1], yp[1], ym[1];
    lb_qcfg c;
    lb_quant *q = mk_init(&c, k, 4096, (float[4096]){0});
    if (!q) return;
    double Y[256];
    int nY = target_set(q, k->set, Y);
    const double stot = stot_of(Y, nY);
    /* move alpha, beta off their init so that the test sees their roles */
    q->learn[0][0] *= 1.3f;
    q->learn[1][0] *= 0.9f;
    const float alpha = q->learn[0][0], beta = q->learn[1][0];
    const float umax = 1.2f * (float)fmax(fabs(Y[0]), fabs(Y[nY - 1]));
    fill(x, N, -umax / beta, umax / beta, 30);
    fill(dy, N, -1.0f, 1.0f, 31);
    q->temperature = T;
    ops(q)->backward(q, dx, dy, x, N, 0);
    const double ga = q->glearn[0][0], gb = q->glearn[1][0];
    int bad = 0;
    double worst = 0;
    for (int i = 0; i < N; i++) {
        const float h = 1e-3f / beta;
        xp[0] = x[i] + h;
        ops(q)->forward(q, yp, xp, 1, 1);
        xp[0] = x[i] - h;
        ops(q)->forward(q, ym, xp, 1, 1);
        double fd = dy[i] * ((double)yp[0] - ym[0]) / ((double)(x[i] + h) - (x[i] - h));
        double tol = 1e-3 * fabs(dx[i]) + alpha * beta * (2e-4 + 6e-5 * T) * stot * fabs(dy[i]);
        bad += !(fabs(fd - dx[i]) <= tol);
        worst = fmax(worst, fabs(fd - dx[i]) / tol);
    }
    CHECK_MSG(!bad, "%s T=%g: %d of %d dx off the finite difference (worst %.3g x tolerance)", k->spec, T, bad, N, worst);
    double sxdy = 0, sdy = 0;
    for (int i = 0; i < N; i++) { sxdy += fabs((double)x[i] * dy[i]); sdy += fabs(dy[i]); }
    /* alpha: y is linear in it */
    const float ha = 1e-3f * alpha;
    q->learn[0][0] = alpha + ha;
    double Lp = loss(q, x, dy, N, y);
    q->learn[0][0] = alpha - ha;
    double Lm = loss(q, x, dy, N, y);
    q->learn[0][0] = alpha;
    double fda = (Lp - Lm) / ((double)(alpha + ha) - (alpha - ha));
    CHECK_MSG(fabs(fda - ga) <= 1e-3 * fabs(ga) + 1e-6 * alpha * stot * sdy / ha, "%s T=%g: dalpha %.7g, finite difference %.7g", k->spec, T, ga, fda);
    /* beta */
    const float hb = 1e-4f * beta;
    q->learn[1][0] = beta + hb;
    Lp = loss(q, x, dy, N, y);
    q->learn[1][0] = beta - hb;
    Lm = loss(q, x, dy, N, y);
    q->learn[1][0] = beta;
    double fdb = (Lp - Lm) / ((double)(beta + hb) - (beta - hb));
    double tolb = 1e-3 * fabs(gb) + alpha * 6e-5 * T * stot * sxdy + 1e-6 * alpha * stot * sdy / hb;
    CHECK_MSG(fabs(fdb - gb) <= tolb, "%s T=%g: dbeta %.7g, finite difference %.7g (tolerance %.3g)", k->spec, T, gb, fdb, tolb);
    lb_quant_free(q);
}

static void test_grads(void) {
    const qcase g[] = {{"qn:1/4", LB_QW, ""}, {"qn:2/4", LB_QW, ""}, {"qn:3/4", LB_QW, "pow2"}, {"qn:4/4", LB_QW, "pow2"},
                       {"qn:3/4,set=int,b=linear", LB_QW, "int"}, {"qn:3/2", LB_QA, ""}, {"qn:3/4", LB_QA, ""},
                       {"qn:3/4,b=kmeans", LB_QA, ""}};
    for (int k = 0; k < (int)(sizeof g / sizeof g[0]); k++) {
        check_grads(&g[k], 2);
        check_grads(&g[k], 10);
        check_grads(&g[k], 25);
    }
}

/* grad=code, acc, pass-through, frozen, thread count */
static void test_backward_modes(void) {
    enum { N = 3000 };
    static float x[N], dy[N], dx[N], dx2[N], y[N];
    lb_qcfg c;
    const qcase k = {"qn:3/4,grad=code", LB_QW, "pow2"};
    lb_quant *q = mk_init(&c, &k, N, x);
    double Y[256];
    int nY = target_set(q, "pow2", Y);
    fill(dy, N, -1.0f, 1.0f, 40);
    const float T = 30, alpha = q->learn[0][0], beta = q->learn[1][0];
    q->temperature = T;
    ops(q)->backward(q, dx, dy, x, N, 0);
    /* the released code: g from sigmoids at T = 1, times T; dalpha from the soft output at T */
    double ga = 0, gb = 0, worst = 0;
    for (int i = 0; i < N; i++) {
        double g1, yi = ref_y(q, Y, nY, x[i], T, 1, &g1);
        double want = dy[i] * alpha * T * beta * g1;
        worst = fmax(worst, fabs(dx[i] - want) / (1e-5 * alpha * beta * T * stot_of(Y, nY)));
        ga += dy[i] * (yi / alpha);
        gb += dy[i] * (double)x[i] * alpha * T * g1;
    }
    CHECK_MSG(worst <= 1, "grad=code: dx off the released code's rule by %g x 1e-5", worst);
    CHECK_CLOSE(q->glearn[0][0], ga, 1e-4, 1e-5);
    CHECK_CLOSE(q->glearn[1][0], gb, 1e-4, 1e-5);

    /* agrad=code on activations: g from sigmoids at T = 1 and no factor T (qa.py), in dx
     * and dbeta alike; dalpha is still the soft output at T */
    {
        static float xa[N], dxa[N];
        lb_qcfg ca;
        const qcase ka = {"qn:2/2,agrad=code", LB_QA, ""};
        lb_quant *qa = mk_init(&ca, &ka, N, xa);
        CHECK_MSG(qa, "%s", lb_last_error());
        if (qa) {
            double Ya[256];
            int nYa = target_set(qa, "", Ya);
            const float aa = qa->learn[0][0], ba = qa->learn[1][0];
            qa->temperature = T;
            ops(qa)->backward(qa, dxa, dy, xa, N, 0);
            double gaa = 0, gba = 0, wa = 0;
            for (int i = 0; i < N; i++) {
                double g1, yi = ref_y(qa, Ya, nYa, xa[i], T, 1, &g1);
                wa = fmax(wa, fabs(dxa[i] - dy[i] * aa * ba * g1) / (1e-5 * aa * ba * stot_of(Ya, nYa)));
                gaa += dy[i] * (yi / aa);
                gba += dy[i] * (double)xa[i] * aa * g1;
            }
            CHECK_MSG(wa <= 1, "agrad=code: dx off the released code's rule by %g x 1e-5", wa);
            CHECK_CLOSE(qa->glearn[0][0], gaa, 1e-4, 1e-5);
            CHECK_CLOSE(qa->glearn[1][0], gba, 1e-4, 1e-5);
            lb_quant_free(qa);
        }
    }

    /* acc adds to dx; glearn is overwritten, b's gradient is zero */
    q->glearn[0][0] = 123;
    q->glearn[2][0] = 7;
    for (int i = 0; i < N; i++) dx2[i] = 1.0f;
    ops(q)->backward(q, dx2, dy, x, N, 1);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += !(fabsf(dx2[i] - (1.0f + dx[i])) <= 1.2e-7f * (1.0f + fabsf(dx[i])));   /* an FMA may fuse it */
    CHECK(!bad);
    CHECK_CLOSE(q->glearn[0][0], ga, 1e-4, 1e-5);
    CHECK(q->glearn[2][0] == 0);

#ifdef _OPENMP
    /* the learned gradients do not depend on the thread count */
    const int nt = omp_get_max_threads();
    float g1[2], g3[2];
    omp_set_num_threads(1);
    ops(q)->backward(q, dx2, dy, x, N, 0);
    g1[0] = q->glearn[0][0], g1[1] = q->glearn[1][0];
    omp_set_num_threads(3);
    ops(q)->backward(q, dx2, dy, x, N, 0);
    g3[0] = q->glearn[0][0], g3[1] = q->glearn[1][0];
    omp_set_num_threads(nt);
    CHECK(!memcmp(g1, g3, sizeof g1));
#endif

    /* in place: dx may be dy, y may be x */
    q->temperature = 10;
    ops(q)->backward(q, dx, dy, x, N, 0);
    ga = q->glearn[0][0], gb = q->glearn[1][0];
    memcpy(dx2, dy, sizeof dx2);
    ops(q)->backward(q, dx2, dx2, x, N, 0);
    CHECK(!memcmp(dx, dx2, sizeof dx) && q->glearn[0][0] == (float)ga && q->glearn[1][0] == (float)gb);
    ops(q)->forward(q, y, x, N, 1);
    memcpy(dx2, x, sizeof dx2);
    ops(q)->forward(q, dx2, dx2, N, 1);
    CHECK(!memcmp(y, dx2, sizeof y));

    /* FLOAT: pass through both ways */
    q->mode = LB_QMODE_FLOAT;
    ops(q)->forward(q, y, x, N, 1);
    ops(q)->backward(q, dx2, dy, x, N, 0);
    CHECK(!memcmp(y, x, sizeof y) && !memcmp(dx2, dy, sizeof dx2));
    CHECK(q->glearn[0][0] == 0 && q->glearn[1][0] == 0);
    /* frozen (weights in phase 1 of 3): nothing moves */
    q->mode = LB_QMODE_HARD;
    q->frozen = 1;
    ops(q)->backward(q, dx2, dy, x, N, 0);
    bad = 0;
    for (int i = 0; i < N; i++) bad += dx2[i] != 0;
    CHECK(!bad && q->glearn[0][0] == 0 && q->glearn[1][0] == 0);
    lb_quant_free(q);
}

/* ------------------------------------------------------------------ 5. init */

/* naive Lloyd in double over all values, centres from Y; nearest centre, ties up */
static void ref_kmeans(double *cen, int K, const float *x, int n, float beta) {
    for (int it = 0; it < 200; it++) {
        double sum[256] = {0};
        int cnt[256] = {0};
        for (int i = 0; i < n; i++) {
            float v = beta * x[i];
            int j = 0;
            while (j + 1 < K && v >= (float)(0.5f * ((float)cen[j] + (float)cen[j + 1]))) j++;
            sum[j] += v;
            cnt[j]++;
        }
        int moved = 0;
        for (int j = 0; j < K; j++)
            if (cnt[j]) { double m = (float)(sum[j] / cnt[j]); moved |= m != cen[j]; cen[j] = m; }
        if (!moved) break;
    }
}

static void test_init(void) {
    enum { N = 5000 };
    static float x[N];
    lb_qcfg c;
    /* weights, 3 bits: beta*max|W| = 1.25*4, alpha = 1/beta, k-means thresholds */
    lb_quant *q = mk(&c, "qn:3/4", LB_QW, N);
    fill(x, N, -1.0f, 1.0f, 50);
    for (int i = 0; i < N; i++) x[i] = 0.05f * x[i] * x[i] * x[i];   /* peaked at 0 */
    x[17] = -0.08f;
    ops(q)->init(q, x, N);
    const float alpha = q->learn[0][0], beta = q->learn[1][0], *b = q->learn[2];
    CHECK(q->initialized);
    CHECK_CLOSE(beta * 0.08, 1.25 * 4, 0, 1e-6);
    CHECK_CLOSE((double)alpha * beta, 1.0, 0, 1e-6);
    int sorted = 1;
    for (int i = 1; i < 6; i++) sorted &= b[i - 1] <= b[i];
    CHECK(sorted);
    CHECK(b[2] == -0.05f && b[3] == 0.05f);
    double cen[7] = {-4, -2, -1, 0, 1, 2, 4};
    ref_kmeans(cen, 7, x, N, beta);
    for (int i = 0; i < 6; i++)
        if (i != 2 && i != 3) CHECK_CLOSE(b[i], 0.5 * (cen[i] + cen[i + 1]), 1e-4, 1e-4);
    lb_quant_free(q);
    /* b=linear: midpoints of Y */
    q = mk(&c, "qn:3/4,b=linear", LB_QW, N);
    ops(q)->init(q, x, N);
    const float mid[6] = {-3, -1.5f, -0.5f, 0.5f, 1.5f, 3};
    CHECK(!memcmp(q->learn[2], mid, sizeof mid));
    lb_quant_free(q);
    /* binary and ternary */
    q = mk(&c, "qn:1/4", LB_QW, N);
    ops(q)->init(q, x, N);
    CHECK(q->learn[2][0] == 0 && fabs(q->learn[1][0] * 0.08 - 1.25) < 1e-6);
    lb_quant_free(q);
    q = mk(&c, "qn:2/4", LB_QW, N);
    ops(q)->init(q, x, N);
    CHECK(q->learn[2][0] == -0.05f && q->learn[2][1] == 0.05f);
    lb_quant_free(q);
    /* an all-zero tensor still gives finite parameters */
    q = mk(&c, "qn:3/4", LB_QW, 16);
    ops(q)->init(q, (const float[16]){0}, 16);
    CHECK(isfinite(q->learn[0][0]) && isfinite(q->learn[1][0]) && q->learn[0][0] > 0);
    lb_quant_free(q);
    /* 5 bits default to the integer set; explicit pow2 beyond 4 bits is refused */
    q = mk(&c, "qn:5/4", LB_QW, 16);
    CHECK(q && q->learn_size[2] == 30);
    lb_quant_free(q);

    /* activations with arange=1: max over the observed batches; b=linear by default (j + 0.5) */
    q = mk(&c, "qn:3/4,arange=1", LB_QA, N);
    fill(x, N, -1.0f, 3.0f, 51);
    for (int i = 0; i < N; i++) x[i] = x[i] > 0 ? x[i] : 0;
    x[4000] = 3.5f;
    for (int bt = 0; bt < 5; bt++) ops(q)->observe(q, x + bt * 1000, 1000);
    ops(q)->init(q, NULL, 0);
    CHECK_CLOSE(q->learn[1][0] * 3.5, 1.25 * 15, 0, 1e-6);
    CHECK_CLOSE((double)q->learn[0][0] * q->learn[1][0], 1.0, 0, 1e-6);
    int lin = 1;
    for (int i = 0; i < 15; i++) lin &= q->learn[2][i] == i + 0.5f;
    CHECK(lin);
    lb_quant_free(q);
    /* by default the 99.9th percentile of |x| over the calibration sample: the outlier
     * 3.5 is clipped, beta is set by the bulk (values up to 3 here) */
    q = mk(&c, "qn:3/4", LB_QA, N);
    for (int bt = 0; bt < 5; bt++) ops(q)->observe(q, x + bt * 1000, 1000);
    ops(q)->init(q, NULL, 0);
    CHECK(q->learn[1][0] * 3.0 >= 1.25 * 15 * 0.999 && q->learn[1][0] * 2.9 <= 1.25 * 15);
    lb_quant_free(q);
    /* b=kmeans: sorted, inside the range, and the same for the same data seen in other batches */
    float bk[2][15];
    for (int r = 0; r < 2; r++) {
        q = mk(&c, "qn:3/4,b=kmeans", LB_QA, N);
        if (r == 0) ops(q)->observe(q, x, N);
        else for (int bt = 0; bt < 10; bt++) ops(q)->observe(q, x + bt * 500, 500);
        ops(q)->init(q, NULL, 0);
        memcpy(bk[r], q->learn[2], sizeof bk[r]);
        lb_quant_free(q);
    }
    sorted = 1;
    for (int i = 1; i < 15; i++) sorted &= bk[0][i - 1] <= bk[0][i];
    CHECK(sorted && bk[0][0] > 0 && bk[0][14] < 1.25f * 15);
    CHECK(!memcmp(bk[0], bk[1], sizeof bk[0]));
    /* more values than the sample holds: still a sorted, in-range result */
    enum { BIG = 300000 };
    float *xb = malloc(BIG * sizeof *xb);
    fill(xb, BIG, 0.0f, 2.0f, 52);
    q = mk(&c, "qn:3/2,b=kmeans", LB_QA, BIG);
    for (int bt = 0; bt < 3; bt++) ops(q)->observe(q, xb, BIG);
    ops(q)->init(q, NULL, 0);
    /* uniform data: k-means centres near the levels 0..3 scaled, thresholds near 0.5, 1.5, 2.5 (x 3.75/2 / 2) */
    CHECK(q->learn[2][0] < q->learn[2][1] && q->learn[2][1] < q->learn[2][2] && q->learn[2][2] < 3.75f);
    CHECK_CLOSE(q->learn[2][1], 3.75 / 2, 0.05, 0);
    free(xb);
    lb_quant_free(q);
}

/* ------------------------------------------------------------------ 6. schedule */

static void sched(lb_quant *q, int epoch, int epochs) {
    lb_qsched s = {.step = epoch * 10, .steps_per_epoch = 10, .total_steps = epochs * 10, .epoch = epoch, .epochs = epochs};
    ops(q)->schedule(q, &s);
}

static void test_schedule(void) {
    lb_qcfg c;
    lb_quant *w = mk(&c, "qn:3/4,tmul=5", LB_QW, 8), *a = mk(&c, "qn:3/4,tmul=5", LB_QA, 8);
    /* 9 epochs: phases [0, 3), [3, 6), [6, 9) */
    w->initialized = a->initialized = 1;
    sched(w, 0, 9), sched(a, 0, 9);
    CHECK(w->mode == LB_QMODE_QUANT && !w->frozen && w->temperature == 5 && a->mode == LB_QMODE_FLOAT);
    sched(w, 2, 9), sched(a, 2, 9);
    CHECK(w->mode == LB_QMODE_QUANT && w->temperature == 15 && a->mode == LB_QMODE_FLOAT);
    CHECK(a->initialized);
    sched(w, 3, 9), sched(a, 3, 9);
    CHECK(w->mode == LB_QMODE_HARD && w->frozen && a->mode == LB_QMODE_QUANT && a->temperature == 5);
    /* the first step of phase 1 asks for the activations' calibration, once */
    CHECK(w->initialized && !a->initialized);
    a->initialized = 1;
    lb_qsched s1 = {.step = 31, .steps_per_epoch = 10, .total_steps = 90, .epoch = 3, .epochs = 9};
    ops(a)->schedule(a, &s1);
    CHECK(a->initialized);
    sched(w, 5, 9), sched(a, 5, 9);
    CHECK(w->mode == LB_QMODE_HARD && w->frozen && a->temperature == 15);
    sched(w, 6, 9), sched(a, 6, 9);
    CHECK(w->mode == LB_QMODE_QUANT && !w->frozen && w->temperature == 35 && a->mode == LB_QMODE_QUANT && a->temperature == 20);
    /* 10 epochs: phase 1 starts at ceil(10/3) = 4, phase 2 at ceil(20/3) = 7 */
    sched(w, 3, 10), sched(a, 3, 10);
    CHECK(w->mode == LB_QMODE_QUANT && a->mode == LB_QMODE_FLOAT);
    sched(w, 4, 10), sched(a, 4, 10);
    CHECK(w->mode == LB_QMODE_HARD && a->mode == LB_QMODE_QUANT && a->temperature == 5);
    sched(w, 6, 10);
    CHECK(w->mode == LB_QMODE_HARD);
    sched(w, 7, 10), sched(a, 7, 10);
    CHECK(w->mode == LB_QMODE_QUANT && !w->frozen && w->temperature == 40 && a->temperature == 20);
    /* fewer than 3 epochs: one phase, both quantized from the start */
    sched(w, 0, 2), sched(a, 0, 2);
    CHECK(w->mode == LB_QMODE_QUANT && a->mode == LB_QMODE_QUANT && a->temperature == 5 && w->temperature == 5);
    lb_quant_free(w);
    lb_quant_free(a);
    /* phases=1, default tmul 5, the cap at 2000 */
    lb_qcfg c1;
    w = mk(&c1, "qn:3/4,phases=1", LB_QW, 8), a = mk(&c1, "qn:3/4,phases=1", LB_QA, 8);
    a->initialized = 1;
    sched(w, 0, 9), sched(a, 0, 9);
    CHECK(w->mode == LB_QMODE_QUANT && a->mode == LB_QMODE_QUANT && w->temperature == 5 && a->temperature == 5);
    CHECK(a->initialized);   /* one phase: the calibration at the start stands */
    sched(w, 4, 9), sched(a, 4, 9);
    CHECK(w->temperature == 25 && a->temperature == 25 && !w->frozen);
    sched(w, 500, 1000);
    CHECK(w->temperature == 2000);
    lb_quant_free(w);
    lb_quant_free(a);
    /* atmul: the activations' own multiplier (the released code's temperature_A) */
    lb_qcfg c2;
    w = mk(&c2, "qn:2/2,tmul=50,atmul=5", LB_QW, 8), a = mk(&c2, "qn:2/2,tmul=50,atmul=5", LB_QA, 8);
    sched(w, 3, 9), sched(a, 3, 9);
    CHECK(w->temperature == 200 && a->temperature == 5);
    sched(w, 8, 9), sched(a, 8, 9);
    CHECK(w->temperature == 450 && a->temperature == 30);
    lb_quant_free(w);
    lb_quant_free(a);
}

/* ------------------------------------------------------------------ 7. bad options */

static void bad_option(const char *spec, int role, const char *word) {
    lb_qcfg c;
    lb_quant *q = NULL;
    int64_t shape[2] = {1, 8};
    lb_status s = lb_qcfg_parse(&c, spec, "test");
    if (s == LB_OK) s = lb_quant_new(&q, &c, role, role == LB_QW ? 2 : 1, role == LB_QW ? shape : shape + 1);
    CHECK_MSG(s != LB_OK, "%s was accepted", spec);
    CHECK_MSG(s == LB_OK || strstr(lb_last_error(), word), "%s: message '%s' does not name '%s'", spec, lb_last_error(), word);
    lb_quant_free(q);
}

static void test_bad_options(void) {
    bad_option("qn:3/4,tmul=0", LB_QW, "tmul");
    bad_option("qn:3/4,tmul=abc", LB_QA, "tmul");
    bad_option("qn:3/4,set=foo", LB_QW, "set");
    bad_option("qn:3/4,phases=2", LB_QA, "phases");
    bad_option("qn:3/4,grad=foo", LB_QW, "grad");
    bad_option("qn:3/4,agrad=foo", LB_QA, "agrad");
    bad_option("qn:3/4,b=foo", LB_QW, "b=foo");
    bad_option("qn:3/4,ab=lin", LB_QA, "ab");
    bad_option("qn:3/4,atmul=0", LB_QA, "atmul");
    bad_option("qn:3/4,foo=1", LB_QW, "foo");
    bad_option("qn:5/4,set=pow2", LB_QW, "set");
    bad_option("qn:9/4", LB_QW, "bits");
    /* the method's table row: options, and the recipe with the batch-norm re-estimation */
    const lb_qmethod *m = lb_qmethod_find("qn");
    CHECK(m && !strcmp(m->recipe, "sgd lr=0.005 clip=5 bnfix=200") &&
          !strcmp(m->opts, "tmul atmul phases grad agrad set b arange ab"));
}

/* qn_exp through the forward: 1-bit activations {0, 1} with alpha = beta = T = 1, b = 0
 * give y = sig(x) */
static void test_exp_accuracy(void) {
    enum { N = 20001 };
    static float x[N], y[N];
    lb_qcfg c;
    lb_quant *q = mk(&c, "qn:3/1", LB_QA, N);
    set_params(q, 1.0f, 1.0f, (const float[]){0.0f});
    q->temperature = 1;
    for (int i = 0; i < N; i++) x[i] = -10.0f + 20.0f * (float)i / (N - 1);
    ops(q)->forward(q, y, x, N, 1);
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - sig(x[i])) / sig(x[i]));
    CHECK_MSG(worst < 3e-7, "sigmoid relative error %g", worst);
    lb_quant_free(q);
}

int main(void) {
    test_hand();
    test_exp_accuracy();
    test_soft_vs_ref();
    test_hard();
    test_grads();
    test_backward_modes();
    test_init();
    test_schedule();
    test_bad_options();
    return lbt_report("test_quant_qn");
}
