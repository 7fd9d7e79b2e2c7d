/* syq: SYQ (Faraone et al., CVPR 2018; METHODS.md section 3). Binary (1 bit) or ternary
 * (2 bits) weights with a symmetric codebook {-a_g, (0,) +a_g} whose scale a_g is
 * learned per group:
 *   group=layer  one a per layer
 *   group=row    one per kernel row (k_h per conv); one per output row for linear
 *   group=pixel  one per kernel position (i, j), shared by all channels (k_h k_w per
 *                conv); linear layers use one per layer
 * Default as the authors' code: pixel for conv, layer for linear.
 *   alpha=learned (default) or fixed (a_g = mean|w| over the group at every step: the
 *   ablation "learned a >= fixed a").
 * Threshold eta = t max|W| (t = 0.05 ternary, 0 binary; no gradient).
 * Backward (exact, checked by finite differences):
 *   dE/dw = a_g dE/dQ if |w| > eta else dE/dQ
 *   dE/da_g = sum over w in g with |w| > eta of sign(w) dE/dQ(w) */
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct syq_state {
    int group, fixed;        /* group: 0 layer, 1 row, 2 pixel */
    int64_t G;
    float eta;
    float *fixed_alpha;      /* alpha=fixed: the per-step means */
    double *acc;             /* per-group sums (means, alpha gradients), G entries */
    int64_t *cnt;            /* per-group counts, G entries */
} syq_state;

enum { G_LAYER, G_ROW, G_PIXEL };

/* group of element i of a weight in PyTorch layout */
static inline int64_t syq_group(const lb_quant *q, const syq_state *st, int64_t i) {
    if (st->group == G_LAYER) return 0;
    if (q->ndim == 4) {
        int64_t kw = q->shape[3], kh = q->shape[2], pos = i % (kh * kw);
        return st->group == G_ROW ? pos / kw : pos;
    }
    return i / q->shape[q->ndim - 1]; /* linear, row: output row */
}

static lb_status syq_setup(lb_quant *q) {
    if (q->bits != 1 && q->bits != 2) return lb_fail(LB_ERR_INVALID, "syq takes 1 (binary) or 2 (ternary) weight bits, not %d", q->bits);
    int g = -1, fixed = 0;
    lb_status s;
    if (lb_qopt(q->cfg, "group", NULL) && (s = lb_qopt_choice(q, "group", "layer row pixel", &g))) return s;
    if ((s = lb_qopt_choice(q, "alpha", "learned fixed", &fixed))) return s;
    if (g < 0) g = q->ndim == 4 ? G_PIXEL : G_LAYER;
    if (g == G_PIXEL && q->ndim != 4) g = G_LAYER;
    syq_state *st = calloc(1, sizeof *st);
    if (!st) return lb_fail(LB_ERR_NOMEM, "out of memory");
    q->state = st;
    st->group = g;
    st->fixed = fixed;
    st->G = g == G_LAYER ? 1 : q->ndim == 4 ? (g == G_ROW ? q->shape[2] : q->shape[2] * q->shape[3]) : q->shape[0];
    st->acc = malloc(sizeof(double) * (size_t)st->G);
    st->cnt = malloc(sizeof(int64_t) * (size_t)st->G);
    if (!st->acc || !st->cnt) return lb_fail(LB_ERR_NOMEM, "out of memory");
    if (fixed) {
        if (!(st->fixed_alpha = calloc((size_t)st->G, sizeof(float)))) return lb_fail(LB_ERR_NOMEM, "out of memory");
    } else {
        q->nlearn = 1;
        q->learn_name[0] = "alpha";
        q->learn_size[0] = st->G;
    }
    return LB_OK;
}

static void syq_release(lb_quant *q) {
    syq_state *st = q->state;
    if (st) { free(st->fixed_alpha); free(st->acc); free(st->cnt); }
    free(st);
    q->state = NULL;
}

/* a_g = mean |w| over each group */
static void group_meanabs(const lb_quant *q, const syq_state *st, const float *x, float *alpha) {
    memset(st->acc, 0, sizeof(double) * (size_t)st->G);
    memset(st->cnt, 0, sizeof(int64_t) * (size_t)st->G);
    for (int64_t i = 0; i < q->n; i++) {
        int64_t g = syq_group(q, st, i);
        st->acc[g] += fabs((double)x[i]);
        st->cnt[g]++;
    }
    for (int64_t g = 0; g < st->G; g++) alpha[g] = st->cnt[g] ? (float)(st->acc[g] / (double)st->cnt[g]) : 0.0f;
}

static void syq_fit(lb_quant *q, const float *x) {
    syq_state *st = q->state;
    st->eta = q->bits == 2 ? 0.05f * lb_q_maxabs(x, q->n) : 0.0f;
    if (st->fixed) group_meanabs(q, st, x, st->fixed_alpha);
}

static const float *syq_alpha(const lb_quant *q) {
    const syq_state *st = q->state;
    return st->fixed ? st->fixed_alpha : q->learn[0];
}

static void syq_init(lb_quant *q, const float *x, int64_t n) {
    (void)n;
    if (!((syq_state *)q->state)->fixed) group_meanabs(q, q->state, x, q->learn[0]);
    q->initialized = 1;
}

/* binary: 1 for w >= 0, 0 below; ternary: 0 (-a), 1 (zero), 2 (+a) */
static inline int32_t syq_code(float w, int ternary, float eta) {
    if (!ternary) return w >= 0 ? 1 : 0;
    return fabsf(w) > eta ? (w > 0 ? 2 : 0) : 1;
}

static void syq_encode(const lb_quant *q, int32_t *codes, const float *x, int64_t n) {
    syq_fit((lb_quant *)q, x);
    const syq_state *st = q->state;
    for (int64_t i = 0; i < n; i++) codes[i] = syq_code(x[i], q->bits == 2, st->eta);
}

static void syq_forward(lb_quant *q, float *y, const float *x, int64_t n, int training) {
    (void)training;
    if (q->mode == LB_QMODE_FLOAT) { lb_q_ste(y, x, n, 0); return; }
    syq_fit(q, x);
    const syq_state *st = q->state;
    const float *a = syq_alpha(q);
    const int ter = q->bits == 2;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = lbr_syq_value(syq_code(x[i], ter, st->eta), ter, a[syq_group(q, st, i)]);
}

static void syq_backward(lb_quant *q, float *dx, const float *dy, const float *x, int64_t n, int acc) {
    const syq_state *st = q->state;
    if (q->mode == LB_QMODE_FLOAT) { lb_q_ste(dx, dy, n, acc); return; }
    const float *a = syq_alpha(q);
    const float eta = st->eta;
    /* binary has eta = 0: every w != 0 is "above"; w == 0 exactly maps to +a and passes
     * the plain gradient, a measure-zero case */
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = fabsf(x[i]) > eta ? a[syq_group(q, st, i)] * dy[i] : dy[i];
        dx[i] = acc ? dx[i] + g : g;
    }
    if (st->fixed) return;
    memset(st->acc, 0, sizeof(double) * (size_t)st->G);
    for (int64_t i = 0; i < n; i++)
        if (fabsf(x[i]) > eta) st->acc[syq_group(q, st, i)] += x[i] > 0 ? dy[i] : -dy[i];
    for (int64_t g = 0; g < st->G; g++) q->glearn[0][g] = (float)st->acc[g];
}

static const lb_qops syq_w = {syq_setup, NULL, syq_init, syq_forward, syq_backward, NULL, syq_encode, syq_release};

const lb_qmethod lb_qm_syq = {"syq", "binary (W1) / ternary (W2) weights with learned symmetric scales per group",
                              "group alpha", 1, 2, 1, 16, &syq_w, &lb_qops_act_uniform, "adam lr=0.0001 wd=0"};
