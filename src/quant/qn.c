/* qn.c - Quantization Networks (Yang et al., CVPR 2019; METHODS.md section 4).
 *
 * Quantization is a sum of n unit steps, relaxed to sigmoids of temperature T:
 *   training  y = alpha * (sum_i s_i * sig(clamp(T*(beta*x - b_i), -10, 10)) - o)
 *   hard      y = alpha * (sum_i s_i * [beta*x >= b_i] - o) = cb[code]
 *             code = #{i : b_i <= beta*x} (lbr_step_code), cb[j] = alpha*(Y_j - Y_0 - o)
 * Y is the sorted target set, n = |Y| - 1, s_i = Y_{i+1} - Y_i, o = (Y_n - Y_0)/2 for
 * weights (so cb[j] = alpha*Y_j for the symmetric sets) and 0 for activations.
 * Learned per quantizer: alpha, beta (trained) and the n thresholds b (set at init,
 * saved in checkpoints, frozen: learn_fixed).
 *
 * Speed: once T*(b_i+1 - b_i) >= 10 all but one or two sigmoids of an element sit on
 * the clamp, where sig = sig(+-10) exactly. So qn_soft finds the element's code k, works
 * out only the window of steps [k - wl, k + wr) that can be off the clamp (wl, wr from
 * b and T, per call), and adds the clamped steps on either side through prefix sums of
 * s. With evenly spaced thresholds (b=linear, the activations' default) k and the
 * window's b_i, s_i are arithmetic; otherwise a branch-free binary search and table
 * lookups; with few steps, all of them. Loops run over blocks of elements without
 * branches, so they vectorise. The result is the all-steps sum up to summation order.
 */
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { QN_ALPHA = 0, QN_BETA = 1, QN_B = 2 };   /* learned tensors */
enum {
    QN_MAXN = 255,      /* steps at 8 bits */
    QN_PAD = 256,       /* padding either side of the window tables (> QN_MAXN) */
    QN_CHUNKS = 64,     /* fixed reduction split: gradients independent of thread count */
    QN_SAMPLE = 65536,  /* activation values kept for k-means */
    QN_ITERS = 50,      /* k-means Lloyd iterations at most */
};
enum { QN_SET_POW2 = 0, QN_SET_INT = 1 };

typedef struct qn_state {
    int n;                     /* steps */
    float Y[QN_MAXN + 1];      /* target set, sorted */
    float o;                   /* output offset */
    float tmul;                /* T = tmul * (epochs active + 1) */
    int phases;                /* 3 or 1 */
    int grad_code;             /* weights: the released code's T = 1 surrogate */
    int agrad_code;            /* activations: the released code's T = 1 gradient */
    int kmeans;                /* thresholds from k-means (else midpoints of Y) */
    /* activation calibration: max |x| over all observed values and a uniform
     * subsample: value number g of the stream is kept while g % stride == 0; when the
     * buffer fills, every other kept value is dropped and the stride doubles */
    float amax;
    float pct;                 /* activations: beta from this quantile of |x| (1: the max) */
    int64_t seen, stride, nsample;
    float *sample;
} qn_state;

/* Start collecting activation statistics afresh (setup, and QN's new calibration at
 * phase 1): returns 0, or -1 when the sample buffer cannot be allocated. */
static int qn_calib_begin(qn_state *st) {
    if (!st->sample && !(st->sample = malloc(QN_SAMPLE * sizeof(float)))) return -1;
    st->amax = 0;
    st->seen = st->nsample = 0;
    st->stride = 1;
    return 0;
}

/* ------------------------------------------------------------------ the soft function */

/* a*b + c: fused where the target has FMA (one rounding, half the instructions), else
 * two roundings; only the training relaxation uses it, never the hard quantizer */
#if defined(__FMA__) || defined(__aarch64__)
#define QN_FMA(a, b, c) fmaf(a, b, c)
#else
#define QN_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* exp on the clamped range [-10, 10] in plain float arithmetic so that loops vectorise
 * (a libm expf call does not without -ffast-math, and costs 6x more here): Cody-Waite
 * reduction x = k ln2 + r, |r| <= ln2/2, and Cephes' degree-6 polynomial; relative error
 * below 2.5e-7 there (test_quant_qn checks it). k is rounded by adding 1.5*2^23, which
 * leaves k in the low mantissa bits, so 2^k comes from integer arithmetic on them. */
static inline float qn_exp(float x) {
    const float magic = 12582912.0f;
    const float t = QN_FMA(x, 1.44269504088896341f, magic);
    const float k = t - magic;
    float r = QN_FMA(k, -0.693359375f, x);
    r = QN_FMA(k, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = QN_FMA(p, r, 1.3981999507e-3f);
    p = QN_FMA(p, r, 8.3334519073e-3f);
    p = QN_FMA(p, r, 4.1665795894e-2f);
    p = QN_FMA(p, r, 1.6666665459e-1f);
    p = QN_FMA(p, r, 5.0000001201e-1f);
    p = QN_FMA(p, r * r, r) + 1.0f;
    int32_t e;
    memcpy(&e, &t, sizeof e);
    e = (e - 0x4B400000 + 127) * (1 << 23);   /* 2^k, |k| <= 15 */
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

/* sigmoid of z clamped to [-10, 10] (the clamp is part of the method: it bounds the
 * relaxation's gap to the step at 4.54e-5 per unit of step height) */
static inline float qn_sig(float z) {
    z = z < -10.0f ? -10.0f : z; /* two selects, not one nested: GCC vectorises this form */
    z = z > 10.0f ? 10.0f : z;
    return 1.0f / (1.0f + qn_exp(-z));
}

/* How qn_soft evaluates the sum: every step; a window around the element's code, its
 * steps looked up in the tables (gathers); or a window whose thresholds and heights are
 * arithmetic (b_i = b0 + i*db, s_i = s0: b=linear), which needs no lookups at all. */
enum { QN_FULL, QN_WINDOW, QN_UNIFORM };

/* One temperature's tables. Index i + QN_PAD holds step i; outside [0, n) the step
 * height is 0 and the prefix sum is 0 below, stot above. */
typedef struct qn_tab {
    int n, wl, wr, levels, path, sorted;
    float T, sat_hi, sat_lo, dsat_hi, dsat_lo, stot;
    float b0, db, s0;                  /* QN_UNIFORM */
    float bs[QN_MAXN + 1];             /* b padded with +inf to 2^levels - 1 (search) */
    float b[QN_MAXN + 2 * QN_PAD], s[QN_MAXN + 2 * QN_PAD], P[QN_MAXN + 2 * QN_PAD + 1];
} qn_tab;

/* The search part of a table (all the hard quantizer needs): b padded with +inf to
 * 2^levels - 1 entries, and whether b is sorted (a foreign checkpoint may not be). */
static void qn_search_build(qn_tab *t, const float *b, int n) {
    t->n = n;
    t->levels = 0;
    while ((1 << t->levels) - 1 < n) t->levels++;
    for (int i = 0; i < (1 << t->levels) - 1; i++) t->bs[i] = i < n ? b[i] : INFINITY;
    t->sorted = 1;
    for (int i = 1; i < n; i++)
        if (!(b[i - 1] <= b[i])) t->sorted = 0;
}

static void qn_tab_build(qn_tab *t, const qn_state *st, const float *b, float T) {
    const int n = st->n;
    t->n = n;
    t->T = T;
    t->sat_hi = qn_sig(10.0f);   /* steps far below beta*x */
    t->sat_lo = qn_sig(-10.0f);  /* steps far above */
    t->dsat_hi = t->sat_hi * (1.0f - t->sat_hi);
    t->dsat_lo = t->sat_lo * (1.0f - t->sat_lo);
    float acc = 0;
    for (int i = -QN_PAD; i < n + QN_PAD; i++) {
        int in = i >= 0 && i < n;
        t->b[i + QN_PAD] = in ? b[i] : 0.0f;
        t->s[i + QN_PAD] = in ? st->Y[i + 1] - st->Y[i] : 0.0f;
        t->P[i + QN_PAD] = acc;          /* sum of s_j, j < i */
        acc += t->s[i + QN_PAD];
    }
    t->P[n + 2 * QN_PAD] = acc;
    t->stot = acc;
    qn_search_build(t, b, n);
    /* The window. Let k be an element's code (b_k-1 <= u < b_k). For j < k-1,
     * T*(u - b_j) >= T*(b_k-1 - b_j) in float too (rounding is monotone), so step j is on
     * the clamp at +10 when T*(b_k-1 - b_j) >= 10; likewise step j > k is at -10 when
     * T*(b_k - b_j) <= -10. wl, wr count the steps that can be off the clamp, at most,
     * over k: the same float expression as qn_soft's, so the split is exact. */
    t->wl = t->wr = 1;
    for (int i = 0; i < n; i++) {
        int lo = i, hi = i;
        while (lo > 0 && T * (b[i] - b[lo - 1]) < 10.0f) lo--;
        while (hi < n - 1 && T * (b[i] - b[hi + 1]) > -10.0f) hi++;
        t->wl = LB_MAX(t->wl, i - lo + 1);
        t->wr = LB_MAX(t->wr, hi - i + 1);
    }
    /* arithmetic thresholds and heights, exactly as stored */
    t->b0 = b[0];
    t->db = n > 1 ? b[1] - b[0] : 1.0f;
    t->s0 = t->s[QN_PAD];
    int uniform = t->db > 0;
    for (int i = 0; i < n; i++)
        uniform &= b[i] == t->b0 + (float)i * t->db && t->s[i + QN_PAD] == t->s0;
    /* all steps when the window spans them, when b is not sorted (a foreign checkpoint),
     * or when n sigmoids cost less than a looked-up window: w sigmoids and levels + 2 + 2w
     * table lookups, each about a sigmoid's time (the compiler emulates gathers) */
    const int w = t->wl + t->wr;
    if (!t->sorted || w >= n || (!uniform && n <= 3 * w + t->levels + 2)) t->path = QN_FULL;
    else t->path = uniform ? QN_UNIFORM : QN_WINDOW;
}

/* k[e] = #{i : b_i <= u[e]} for sorted b (lbr_step_code's code): a branch-free binary
 * search over b padded with +inf to 2^levels - 1, each level one loop over the block */
static inline __attribute__((always_inline)) void qn_search(const qn_tab *t, const float *restrict u, int m, int32_t *restrict k) {
    const float *restrict bs = t->bs;
    for (int e = 0; e < m; e++) k[e] = 0;
    for (int st = 1 << t->levels >> 1; st; st >>= 1)
        for (int e = 0; e < m; e++) k[e] += bs[k[e] + st - 1] <= u[e] ? st : 0;
}

/* For a block of m <= QN_BLK values u = beta*x:
 *   a[e] = sum_i s_i sig_i,  d[e] = sum_i s_i sig_i (1 - sig_i)  (d NULL: not wanted)
 * with sig_i = qn_sig(T (u_e - b_i)). Steps below the window contribute s_i sig(10),
 * above it s_i sig(-10), through the prefix sums. Every loop runs over the block's
 * elements, so it vectorises; inlined, the d == NULL tests fold away. */
enum { QN_BLK = 256 };
static inline __attribute__((always_inline)) void qn_soft(const qn_tab *t, const float *restrict u, int m, float *restrict a,
                                                          float *restrict d) {
    const float T = t->T;
    const float *restrict B = t->b, *restrict S = t->s, *restrict P = t->P;
    const int n = t->n, wl = t->wl, w = t->wl + t->wr;
    const float sat_hi = t->sat_hi, sat_lo = t->sat_lo, dsat_hi = t->dsat_hi, dsat_lo = t->dsat_lo, stot = t->stot;
    if (t->path == QN_FULL) {
        for (int e = 0; e < m; e++) a[e] = 0.0f;
        if (d) for (int e = 0; e < m; e++) d[e] = 0.0f;
        for (int i = QN_PAD; i < QN_PAD + n; i++) {
            const float bi = B[i], si = S[i];
            for (int e = 0; e < m; e++) {
                float sg = qn_sig(T * (u[e] - bi));
                a[e] += si * sg;
                if (d) d[e] += si * (sg * (1.0f - sg));
            }
        }
    } else if (t->path == QN_UNIFORM) {
        /* all in float, no lookups: the code k from (u - b0)/db, made exact by one
         * comparison each way (b0 + k*db is the stored b_k bit for bit: qn_tab_build
         * checked it) */
        const float b0 = t->b0, db = t->db, idb = 1.0f / t->db, s0 = t->s0, fn = (float)n, fwl = (float)wl;
        float k[QN_BLK];
        for (int e = 0; e < m; e++) {
            const float v = (u[e] - b0) * idb;
            float c = rintf(v);                               /* floor (floorf does not vectorise) */
            c = (c > v ? c - 1.0f : c) + 1.0f;
            c = c < 0.0f ? 0.0f : c;
            c = c > fn ? fn : c;
            c += b0 + c * db <= u[e] ? 1.0f : 0.0f;           /* b_k <= u: one more */
            c = c > fn ? fn : c;
            c -= b0 + (c - 1.0f) * db > u[e] ? 1.0f : 0.0f;   /* b_k-1 > u: one less */
            c = c < 0.0f ? 0.0f : c;
            k[e] = c - fwl;                                   /* first step of the window */
            const float lo = k[e] > 0.0f ? k[e] : 0.0f, hi = k[e] + (float)w < fn ? k[e] + (float)w : fn;
            const float below = s0 * lo, above = stot - s0 * hi;
            a[e] = sat_hi * below + sat_lo * above;
            if (d) d[e] = dsat_hi * below + dsat_lo * above;
        }
        for (int j = 0; j < w; j++)
            for (int e = 0; e < m; e++) {
                const float i = k[e] + (float)j;
                const float si = i < 0.0f ? 0.0f : i < fn ? s0 : 0.0f;
                const float sg = qn_sig(T * (u[e] - (b0 + i * db)));
                a[e] += si * sg;
                if (d) d[e] += si * (sg * (1.0f - sg));
            }
    } else {
        int32_t k[QN_BLK];
        qn_search(t, u, m, k);
        for (int e = 0; e < m; e++) {
            k[e] = (k[e] < n ? k[e] : n) - wl + QN_PAD;   /* u = +inf passes the padding */
            const float below = P[k[e]], above = stot - P[k[e] + w];
            a[e] = sat_hi * below + sat_lo * above;
            if (d) d[e] = dsat_hi * below + dsat_lo * above;
        }
        for (int j = 0; j < w; j++)
            for (int e = 0; e < m; e++) {
                const int i = k[e] + j;
                float sg = qn_sig(T * (u[e] - B[i]));
                a[e] += S[i] * sg;
                if (d) d[e] += S[i] * (sg * (1.0f - sg));
            }
    }
}

/* ------------------------------------------------------------------ forward, encode */

static void qn_codebook(const lb_quant *q, float *cb) {
    const qn_state *st = q->state;
    const float alpha = q->learn[QN_ALPHA][0];
    for (int j = 0; j <= st->n; j++) cb[j] = alpha * (st->Y[j] - st->Y[0] - st->o);
}

static void qn_forward(lb_quant *q, float *y, const float *x, int64_t n, int training) {
    const qn_state *st = q->state;
    const float alpha = q->learn[QN_ALPHA][0], beta = q->learn[QN_BETA][0];
    const float *b = q->learn[QN_B];
    if (q->mode == LB_QMODE_FLOAT) {
        if (y != x) memcpy(y, x, (size_t)n * sizeof *y);
        return;
    }
    if (!training || q->mode == LB_QMODE_HARD) {
        /* decode(encode(x)): the same float beta*x, code and codebook as qn_encode */
        float cb[QN_MAXN + 1];
        qn_codebook(q, cb);
        const int ns = st->n;
        qn_tab t;
        qn_search_build(&t, b, ns);
        if (!t.sorted) {   /* a foreign checkpoint: the runtime's search as it is */
            #pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < n; i++) y[i] = lbr_codebook_value(lbr_step_code(beta * x[i], b, ns), cb);
            return;
        }
        /* lbr_step_code's code for sorted b (the same float beta*x), found for a block
         * at a time so that the search vectorises: lowbit eval of a qn:4/4 fmnist-cnn went
         * from 660 to 2,800 img/s */
        const int64_t nblk = (n + QN_BLK - 1) / QN_BLK;
        #pragma omp parallel for schedule(static)
        for (int64_t blk = 0; blk < nblk; blk++) {
            const int64_t i0 = blk * QN_BLK;
            const int m = (int)LB_MIN(QN_BLK, n - i0);
            float u[QN_BLK];
            int32_t k[QN_BLK];
            for (int e = 0; e < m; e++) u[e] = beta * x[i0 + e];
            qn_search(&t, u, m, k);
            for (int e = 0; e < m; e++) y[i0 + e] = lbr_codebook_value(k[e], cb);
        }
        return;
    }
    qn_tab t;
    qn_tab_build(&t, st, b, q->temperature);
    const float o = st->o;
    const int64_t nblk = (n + QN_BLK - 1) / QN_BLK;
    #pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t i0 = blk * QN_BLK;
        const int m = (int)LB_MIN(QN_BLK, n - i0);
        float u[QN_BLK], a[QN_BLK];
        for (int e = 0; e < m; e++) u[e] = beta * x[i0 + e];
        qn_soft(&t, u, m, a, NULL);
        for (int e = 0; e < m; e++) y[i0 + e] = alpha * (a[e] - o);
    }
}

static void qn_encode(const lb_quant *q, int32_t *codes, const float *x, int64_t n) {
    const float beta = q->learn[QN_BETA][0];
    const float *b = q->learn[QN_B];
    const int ns = ((const qn_state *)q->state)->n;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) codes[i] = lbr_step_code(beta * x[i], b, ns);
}

/* ------------------------------------------------------------------ backward */

/* dx = dy * alpha*T*beta * g, g = sum_i s_i sig_i (1 - sig_i)
 * dalpha = sum dy * (sum_i s_i sig_i - o),  dbeta = alpha*T * sum dy * x * g
 * grad=code (weights): g from sigmoids at T = 1 (times T), as the released code does
 * for both the weight and the beta gradient. agrad=code (activations): g from sigmoids
 * at T = 1 and not times T, the released code's activation backward (qa.py), so dx and
 * dbeta are those of the T = 1 function: a smooth ramp over the quantizer's range
 * instead of the paper's comb of spikes 1/T wide at the thresholds. The sums: QN_CHUNKS
 * fixed ranges, each a run of float block sums added in double, then the ranges in
 * order: the same result for any thread count. */
static void qn_backward(lb_quant *q, float *dx, const float *dy, const float *x, int64_t n, int acc) {
    const qn_state *st = q->state;
    const float alpha = q->learn[QN_ALPHA][0], beta = q->learn[QN_BETA][0];
    const float *b = q->learn[QN_B];
    memset(q->glearn[QN_B], 0, (size_t)st->n * sizeof(float));   /* frozen */
    q->glearn[QN_ALPHA][0] = q->glearn[QN_BETA][0] = 0.0f;
    if (q->mode == LB_QMODE_FLOAT) { lb_q_ste(dx, dy, n, acc); return; }
    if (q->frozen) {  /* weights in the middle phase: neither they nor alpha, beta move */
        if (!acc) memset(dx, 0, (size_t)n * sizeof *dx);
        return;
    }
    const int acode = q->role == LB_QA && st->agrad_code;
    const int code = (q->role == LB_QW && st->grad_code) || acode;
    qn_tab t, t1;
    qn_tab_build(&t, st, b, q->temperature);
    if (code) qn_tab_build(&t1, st, b, 1.0f);
    /* T: the factor of the input and beta gradients (1 for the activations' code rule) */
    const float T = acode ? 1.0f : q->temperature, c = alpha * T * beta, o = st->o;
    double pa[QN_CHUNKS], pb[QN_CHUNKS];
    #pragma omp parallel for schedule(static)
    for (int ch = 0; ch < QN_CHUNKS; ch++) {
        int64_t lo, hi;
        lb_split_range(n, QN_CHUNKS, ch, &lo, &hi);
        double sa = 0, sb = 0;
        for (int64_t i0 = lo; i0 < hi; i0 += QN_BLK) {
            const int m = (int)LB_MIN(QN_BLK, hi - i0);
            float u[QN_BLK], a[QN_BLK], d[QN_BLK], a1[QN_BLK];
            for (int e = 0; e < m; e++) u[e] = beta * x[i0 + e];
            if (code) {   /* a at T, d at T = 1 */
                qn_soft(&t, u, m, a, NULL);
                qn_soft(&t1, u, m, a1, d);
            } else {
                qn_soft(&t, u, m, a, d);
            }
            /* block sums in float (simd lanes: a fixed order for a given build), then double;
             * before dx is written, so that dx may be dy (in place) */
            const float *dyb = dy + i0, *xb = x + i0;
            float fa = 0, fb = 0;
            #pragma omp simd reduction(+ : fa, fb)
            for (int e = 0; e < m; e++) {
                fa += dyb[e] * (a[e] - o);
                fb += xb[e] * (dyb[e] * d[e]);
            }
            float *dxb = dx + i0;
            if (acc) for (int e = 0; e < m; e++) dxb[e] += c * (dyb[e] * d[e]);
            else for (int e = 0; e < m; e++) dxb[e] = c * (dyb[e] * d[e]);
            sa += fa;
            sb += fb;
        }
        pa[ch] = sa;
        pb[ch] = sb;
    }
    double sa = 0, sb = 0;
    for (int ch = 0; ch < QN_CHUNKS; ch++) { sa += pa[ch]; sb += pb[ch]; }
    q->glearn[QN_ALPHA][0] = (float)sa;
    q->glearn[QN_BETA][0] = (float)(alpha * T * sb);
}

/* ------------------------------------------------------------------ schedule */

/* T = tmul * (epochs this quantizer has been active + 1), at most 2000. With phases=3
 * (and at least 3 epochs), phase p covers epochs [p*E/3, (p+1)*E/3):
 *   0: weights QUANT, activations FLOAT (pass through)
 *   1: weights HARD and frozen, activations QUANT (their T starts at tmul)
 *   2: both QUANT; the weights' T has kept rising through phase 1 */
static void qn_schedule(lb_quant *q, const lb_qsched *s) {
    qn_state *st = q->state;
    const int E = s->epochs, e = s->epoch < 0 ? 0 : s->epoch;
    const int three = st->phases == 3 && E >= 3;
    const int phase = three ? LB_MIN(2, 3 * e / E) : 2;   /* one phase: as phase 2 */
    int start = 0;                                         /* first active epoch */
    if (q->role == LB_QW) {
        q->mode = phase == 1 ? LB_QMODE_HARD : LB_QMODE_QUANT;
        q->frozen = phase == 1;
    } else {
        start = three ? (E + 2) / 3 : 0;                   /* first epoch of phase 1 */
        q->mode = phase == 0 ? LB_QMODE_FLOAT : LB_QMODE_QUANT;
        /* The paper initialises the activation quantizers on the network whose weights
         * are already quantized: their range at the start of the run (float weights)
         * was stale by phase 1, and with it 2-bit activations saturated and the network
         * fell to chance at once (measured, tmul=50). So the first step of phase 1 asks
         * for a new calibration (on the same batches as the first: deterministic, and a
         * resume from the checkpoint at that epoch boundary does the same). */
        if (three && s->step == (int64_t)start * s->steps_per_epoch && q->initialized) {
            if (qn_calib_begin(st) == 0) q->initialized = 0;   /* out of memory: keep the old range */
        }
    }
    const double T = (double)st->tmul * (LB_MAX(e - start, 0) + 1);
    q->temperature = (float)(T < 2000 ? T : 2000);
}

/* ------------------------------------------------------------------ init */

static int qn_cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* first index of sorted w[0, n) with w >= m */
static int64_t qn_lower_bound(const float *w, int64_t n, float m) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (w[mid] < m) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Lloyd's 1-D k-means of beta*v into K clusters, centres c (sorted, given: Y). On sorted
 * data each cluster is the range between two midpoints of adjacent centres (a value on a
 * midpoint goes up, like the step code), found by binary search; sums come from double
 * prefix sums, so one iteration costs O(K log N) and the result is deterministic. An
 * empty cluster keeps its centre, which lies between its neighbours' ranges, so the
 * centres stay sorted. Stops when no centre moves, or after QN_ITERS iterations.
 * Returns 0, or -1 (out of memory; c untouched). */
static int qn_kmeans(float *c, int K, const float *v, int64_t nv, float beta) {
    float *w = malloc((size_t)(nv ? nv : 1) * sizeof *w);
    double *ps = malloc((size_t)(nv + 1) * sizeof *ps);
    if (!w || !ps) { free(w); free(ps); return -1; }
    int64_t m = 0;
    for (int64_t i = 0; i < nv; i++) {
        float t = beta * v[i];
        if (isfinite(t)) w[m++] = t;
    }
    qsort(w, (size_t)m, sizeof *w, qn_cmp);
    ps[0] = 0;
    for (int64_t i = 0; i < m; i++) ps[i + 1] = ps[i] + w[i];
    int64_t idx[QN_MAXN + 2];
    for (int it = 0; it < QN_ITERS && m > 0; it++) {
        idx[0] = 0;
        idx[K] = m;
        for (int j = 1; j < K; j++) idx[j] = qn_lower_bound(w, m, 0.5f * (c[j - 1] + c[j]));
        int moved = 0;
        for (int j = 0; j < K; j++) {
            int64_t cnt = idx[j + 1] - idx[j];
            if (cnt <= 0) continue;
            float cj = (float)((ps[idx[j + 1]] - ps[idx[j]]) / (double)cnt);
            moved |= cj != c[j];
            c[j] = cj;
        }
        if (!moved) break;
    }
    free(w);
    free(ps);
    return 0;
}

/* b: binary 0; ternary +-0.05; otherwise midpoints of adjacent centres, the centres
 * being Y (b=linear) or k-means of beta*v started at Y (b=kmeans). For weights k-means
 * then forces the two steps next to the zero level to +-0.05 (the paper's narrow zero
 * bin), keeping b sorted. */
static void qn_thresholds(const lb_quant *q, float *b, const float *v, int64_t nv, float beta) {
    const qn_state *st = q->state;
    const int n = st->n;
    if (q->role == LB_QW && n <= 2) {
        if (n == 1) b[0] = 0.0f;
        else { b[0] = -0.05f; b[1] = 0.05f; }
        return;
    }
    float c[QN_MAXN + 1];
    memcpy(c, st->Y, (size_t)(n + 1) * sizeof *c);
    int km = st->kmeans && nv > 0 && qn_kmeans(c, n + 1, v, nv, beta) == 0;
    for (int i = 0; i < n; i++) b[i] = 0.5f * (c[i] + c[i + 1]);
    if (q->role == LB_QW && km) {
        const int z = n / 2;   /* Y symmetric with Y[z] = 0: steps z-1 and z border it */
        b[z - 1] = -0.05f;
        b[z] = 0.05f;
        for (int i = z - 2; i >= 0; i--) b[i] = fminf(b[i], b[i + 1]);
        for (int i = z + 1; i < n; i++) b[i] = fmaxf(b[i], b[i - 1]);
    }
}

static void qn_observe(lb_quant *q, const float *x, int64_t n) {
    qn_state *st = q->state;
    float m = 0;
    #pragma omp parallel for schedule(static) reduction(max : m)
    for (int64_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    st->amax = fmaxf(st->amax, m);
    if (!st->sample) return;
    /* keep value g of the stream (g = seen + i) when g % stride == 0 */
    int64_t i = (st->stride - st->seen % st->stride) % st->stride;
    while (i < n) {
        if (st->nsample == QN_SAMPLE) {  /* full: keep every other, double the stride */
            for (int64_t j = 0; j < QN_SAMPLE / 2; j++) st->sample[j] = st->sample[2 * j];
            st->nsample = QN_SAMPLE / 2;
            st->stride *= 2;
            int64_t g = st->seen + i;
            i += (st->stride - g % st->stride) % st->stride;
            continue;
        }
        st->sample[st->nsample++] = x[i];
        i += st->stride;
    }
    st->seen += n;
}

/* beta = (5p/4) / max|x| with p = max|Y|, alpha = 1/beta; then b. Weights: from x.
 * Activations: from what observe saw (x, if given, is observed first). */
static void qn_init(lb_quant *q, const float *x, int64_t n) {
    qn_state *st = q->state;
    const float p = fmaxf(fabsf(st->Y[0]), fabsf(st->Y[st->n]));
    float m;
    const float *v = x;
    int64_t nv = n;
    if (q->role == LB_QA) {
        if (x && n) qn_observe(q, x, n);
        m = st->amax;
        v = st->sample;
        nv = st->nsample;
        /* Not the max of |x| (METHODS.md): ReLU outputs after batch norm have long tails,
         * and at 2 bits a max-based beta puts almost every activation on level 0 (the
         * network collapsed to chance in the first steps, measured). The 99.9th
         * percentile of the calibration sample keeps the tail's rare values clipped. */
        if (nv > 0 && st->pct > 0) {
            float *tmp = malloc(sizeof(float) * (size_t)nv);
            if (tmp) {
                for (int64_t i = 0; i < nv; i++) tmp[i] = fabsf(v[i]);
                qsort(tmp, (size_t)nv, sizeof(float), lb_q_cmp_float);
                float pm = tmp[(int64_t)((double)(nv - 1) * st->pct)];
                if (pm > 0) m = pm;
                free(tmp);
            }
        }
    } else {
        m = x ? lb_q_maxabs(x, n) : 0.0f;
    }
    if (!(m > 0) || !isfinite(m)) m = 1.0f;   /* nothing seen, all zero or not finite */
    const float beta = 1.25f * p / m;
    q->learn[QN_ALPHA][0] = 1.0f / beta;
    q->learn[QN_BETA][0] = beta;
    qn_thresholds(q, q->learn[QN_B], v, v ? nv : 0, beta);
    free(st->sample);   /* calibration is over */
    st->sample = NULL;
    st->nsample = 0;
    q->initialized = 1;
}

/* ------------------------------------------------------------------ setup */

static lb_status qn_setup(lb_quant *q) {
    if (q->bits < 1 || q->bits > 8) return lb_fail(LB_ERR_INVALID, "%s: qn takes 1 to 8 bits, not %d", q->name, q->bits);
    double tmul, atmul;
    int phases, grad, agrad, set, bk, ab;
    lb_status s;
    if ((s = lb_qopt_num(q, "tmul", 5, 1e-3, 2000, &tmul)) || (s = lb_qopt_num(q, "atmul", tmul, 1e-3, 2000, &atmul)) ||
        (s = lb_qopt_choice(q, "phases", "3 1", &phases)) ||
        (s = lb_qopt_choice(q, "grad", "exact code", &grad)) || (s = lb_qopt_choice(q, "agrad", "exact code", &agrad)) ||
        (s = lb_qopt_choice(q, "set", "pow2 int", &set)) ||
        (s = lb_qopt_choice(q, "b", "kmeans linear", &bk)) || (s = lb_qopt_choice(q, "ab", "log linear", &ab)))
        return s;
    const int B = q->bits;
    /* powers of two beyond 4 bits would reach 2^(2^(b-1)-2) = 2^14 at 5: use int there */
    if (q->role == LB_QW && B > 4 && set == QN_SET_POW2) {
        if (lb_qopt(q->cfg, "set", NULL))
            return lb_fail(LB_ERR_INVALID, "qn option set=pow2: powers of two go up to 4 weight bits (+-64), not %d; use set=int", B);
        set = QN_SET_INT;
    }
    qn_state *st = calloc(1, sizeof *st);
    if (!st) return lb_fail(LB_ERR_NOMEM, "out of memory");
    int k = 0;
    if (q->role == LB_QA) {                        /* {0, 1, ..., 2^b - 1} */
        for (int j = 0; j < (1 << B); j++) st->Y[k++] = (float)j;
    } else if (B == 1) {                           /* {-1, 1} */
        st->Y[k++] = -1.0f;
        st->Y[k++] = 1.0f;
    } else if (B == 2 || set == QN_SET_INT) {      /* {-m, ..., m}, m = 2^(b-1) - 1 */
        const int m = (1 << (B - 1)) - 1;
        for (int j = -m; j <= m; j++) st->Y[k++] = (float)j;
    } else {                                       /* {0} U {+-2^e, e = 0 .. 2^(b-1) - 2} */
        const int emax = (1 << (B - 1)) - 2;
        for (int e = emax; e >= 0; e--) st->Y[k++] = -ldexpf(1.0f, e);
        st->Y[k++] = 0.0f;
        for (int e = 0; e <= emax; e++) st->Y[k++] = ldexpf(1.0f, e);
    }
    st->n = k - 1;
    st->o = q->role == LB_QW ? 0.5f * (st->Y[st->n] - st->Y[0]) : 0.0f;
    /* the released code has one multiplier for weights and one for activations */
    st->tmul = (float)(q->role == LB_QA ? atmul : tmul);
    st->phases = phases == 0 ? 3 : 1;
    st->grad_code = grad == 1;
    st->agrad_code = agrad == 1;
    /* b=kmeans by default for weights (the paper), b=linear for activations: k-means on
     * ReLU outputs (a spike at 0, a long tail) pulls the thresholds towards 0 while the
     * levels stay at alpha*j, so values map to levels well above them (8-10x the hard
     * quantizer's squared error of b=linear on ReLU(normal) data at 2 and 4 bits) */
    st->kmeans = lb_qopt(q->cfg, "b", NULL) ? bk == 0 : q->role == LB_QW;
    double pct = 0.999;
    if ((s = lb_qopt_num(q, "arange", 0.999, 0.5, 1.0, &pct))) { free(st); return s; }
    st->pct = (float)pct;
    if (q->role == LB_QA && qn_calib_begin(st)) { free(st); return lb_fail(LB_ERR_NOMEM, "out of memory"); }
    q->state = st;
    q->nlearn = 3;
    q->learn_name[QN_ALPHA] = "alpha";
    q->learn_name[QN_BETA] = "beta";
    q->learn_name[QN_B] = "b";
    q->learn_size[QN_ALPHA] = q->learn_size[QN_BETA] = 1;
    q->learn_size[QN_B] = st->n;
    q->learn_fixed[QN_B] = 1;
    /* alpha and beta are scales: a plain SGD step on them is lr * dL/dalpha, and dL/dalpha
     * ~ 1/alpha (a sum over every element of the layer), so with alpha = max|W|/80 a step
     * at lr 1e-3 changed alpha several-fold and the loss jumped to 30 within 30 steps
     * (fc1, which no batch norm follows; measured). Stepping ln alpha, ln beta (ab=log)
     * makes each step relative. ab=linear is the released code's plain SGD on them, which
     * is harmless there only because batch norm after every layer zeroes dL/dalpha. */
    q->learn_log[QN_ALPHA] = q->learn_log[QN_BETA] = ab == 0;
    return LB_OK;
}

static void qn_release(lb_quant *q) {
    qn_state *st = q->state;
    if (st) free(st->sample);
    free(st);
    q->state = NULL;
}

static const lb_qops qn_w = {qn_setup, NULL, qn_init, qn_forward, qn_backward, qn_schedule, qn_encode, qn_release};
static const lb_qops qn_a = {qn_setup, qn_observe, qn_init, qn_forward, qn_backward, qn_schedule, qn_encode, qn_release};

const lb_qmethod lb_qm_qn = {"qn", "Quantization Networks: sum of sigmoid steps, temperature raised to the hard steps",
                             "tmul atmul phases grad agrad set b arange ab", 1, 8, 1, 8, &qn_w, &qn_a, "sgd lr=0.005 clip=5 bnfix=200"};
