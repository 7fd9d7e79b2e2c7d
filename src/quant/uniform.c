/* uniform: the baseline the papers compare with (METHODS.md section 0).
 *   mode=dorefa  (default) w' = tanh(w) / (2 max|tanh W|) + 1/2, Q = 2 round(w' (K-1)) / (K-1) - 1;
 *                backward: identity through the rounding, tanh and the normalisation
 *                (including the max) differentiated exactly.
 *   mode=maxabs  s = max|W| / (2^(b-1) - 1), Q = s clamp(round(w / s)); per=tensor or per=channel
 *                (one s per output channel); backward: STE. Needs b >= 2.
 * Activations: clipped uniform on [0, 1]. */
#include "quant/quant.h"
#include "lbr_math.h"

#include <math.h>
#include <stdlib.h>

typedef struct uni_state {
    int maxabs, per_channel;
    float *scale;            /* maxabs: one per group */
    float mt;                /* dorefa: max|tanh W| of the last forward */
    float *th;               /* dorefa: tanh(w) of the last forward, for the backward */
} uni_state;

static int64_t uni_groups(const lb_quant *q, const uni_state *st) { return st->per_channel ? q->shape[0] : 1; }

static lb_status uni_setup(lb_quant *q) {
    int mode = 0, per = 0;
    lb_status s;
    if ((s = lb_qopt_choice(q, "mode", "dorefa maxabs", &mode)) || (s = lb_qopt_choice(q, "per", "tensor channel", &per))) return s;
    if (mode == 1 && q->bits < 2)
        return lb_fail(LB_ERR_INVALID, "uniform mode=maxabs needs at least 2 weight bits (1 bit has no symmetric grid)");
    if (per == 1 && mode == 0) return lb_fail(LB_ERR_INVALID, "uniform per=channel applies to mode=maxabs only");
    uni_state *st = calloc(1, sizeof *st);
    if (!st) return lb_fail(LB_ERR_NOMEM, "out of memory");
    st->maxabs = mode;
    st->per_channel = per;
    q->state = st;
    st->th = mode == 0 ? malloc(sizeof(float) * (size_t)q->n) : NULL;
    if (!(st->scale = calloc((size_t)uni_groups(q, st), sizeof(float))) || (mode == 0 && !st->th))
        return lb_fail(LB_ERR_NOMEM, "out of memory");
    return LB_OK;
}

static void uni_release(lb_quant *q) {
    uni_state *st = q->state;
    if (st) { free(st->scale); free(st->th); }
    free(st);
    q->state = NULL;
}

static void uni_init(lb_quant *q, const float *x, int64_t n) { (void)x; (void)n; q->initialized = 1; }

/* statistics of the current latent weights: scales (maxabs) or max|tanh| (dorefa) */
static void uni_fit(lb_quant *q, const float *x) {
    uni_state *st = q->state;
    if (!st->maxabs) { /* tanh once per element per step: the forward and backward share it */
        /* lbr_tanhf (runtime/lbr_math.h, the RNN cells' tanh) vectorises where libm's
         * tanhf is a call per element */
        #pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < q->n; i++) st->th[i] = lbr_tanhf(x[i]);
        st->mt = lbr_tanhf(lb_q_maxabs(x, q->n));
        return;
    }
    const int64_t G = uni_groups(q, st), per = q->n / G;
    const float qmax = (float)((1 << (q->bits - 1)) - 1);
    for (int64_t g = 0; g < G; g++) {
        float m = lb_q_maxabs(x + g * per, per);
        st->scale[g] = m > 0 ? m / qmax : 1.0f;
    }
}

static void uni_encode_fitted(const lb_quant *q, int32_t *codes, const float *x) {
    const uni_state *st = q->state;
    const int K = 1 << q->bits;
    if (st->maxabs) {
        const int64_t G = uni_groups(q, st), per = q->n / G;
        const int32_t qmax = (1 << (q->bits - 1)) - 1;
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < q->n; i++) codes[i] = lbr_sym_code(x[i], 1.0f / st->scale[i / per], qmax);
        (void)G;
        return;
    }
    const float inv = st->mt > 0 ? 0.5f / st->mt : 0.0f;
    (void)x;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < q->n; i++) codes[i] = (int32_t)rintf((st->th[i] * inv + 0.5f) * (float)(K - 1));
}

static float uni_value(const lb_quant *q, int32_t code, int64_t i) {
    const uni_state *st = q->state;
    if (st->maxabs) return lbr_sym_value(code, st->scale[st->per_channel ? i / (q->n / q->shape[0]) : 0]);
    return lbr_affine_value(code, 1 << q->bits, 1.0f);
}

static void uni_encode(const lb_quant *q, int32_t *codes, const float *x, int64_t n) {
    (void)n;
    uni_fit((lb_quant *)q, x);
    uni_encode_fitted(q, codes, x);
}

static void uni_forward(lb_quant *q, float *y, const float *x, int64_t n, int training) {
    (void)training;
    if (q->mode == LB_QMODE_FLOAT) { lb_q_ste(y, x, n, 0); return; }
    uni_fit(q, x);
    /* codes go through y's storage as int32 (same size), then decode in place */
    int32_t *codes = (int32_t *)(void *)y;
    uni_encode_fitted(q, codes, x);
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = uni_value(q, codes[i], i);
}

static void uni_backward(lb_quant *q, float *dx, const float *dy, const float *x, int64_t n, int acc) {
    const uni_state *st = q->state;
    if (st->maxabs || q->mode == LB_QMODE_FLOAT || !(st->mt > 0)) { lb_q_ste(dx, dy, n, acc); return; }
    /* Q = tanh(w)/M with M = max|tanh W| (the rounding passes the gradient through; the
     * affine 2w'-1 cancels the 1/2): dQ_i/dw_i = (1 - tanh^2 w_i)/M, and the element k
     * holding the max also gets -sum_i g_i tanh(w_i) / M^2 * sign(w_k) (1 - tanh^2 w_k). */
    const float M = st->mt;
    double dot = 0;
    int64_t k = 0;
    float best = -1;
    const float *th = st->th; /* tanh(x) from this step's forward */
    for (int64_t i = 0; i < n; i++) {
        dot += (double)dy[i] * th[i];
        if (fabsf(x[i]) > best) { best = fabsf(x[i]); k = i; }
    }
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float t = th[i], g = dy[i] * (1.0f - t * t) / M;
        dx[i] = acc ? dx[i] + g : g;
    }
    float tk = th[k];
    dx[k] -= (float)(dot / ((double)M * M)) * (x[k] < 0 ? -1.0f : 1.0f) * (1.0f - tk * tk);
}

static const lb_qops uni_w = {uni_setup, NULL, uni_init, uni_forward, uni_backward, NULL, uni_encode, uni_release};

const lb_qmethod lb_qm_uniform = {"uniform", "DoReFa weights (or max-abs symmetric), clipped uniform activations",
                                  "mode per", 1, 8, 1, 16, &uni_w, &lb_qops_act_uniform, "sgd lr=0.005"};
