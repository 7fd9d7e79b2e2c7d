/* pot: low-bit power-of-two weights (Long et al., 2020; METHODS.md section 5, our
 * reading, INQ-style levels). Levels for b bits: {0} U {+-2^e, e = e_max - 2^(b-1) + 2
 * .. e_max}, 2^b - 1 values, e_max = floor(log2(4 max|W| / 3)); each weight goes to the
 * nearest level (thresholds at the arithmetic midpoints; below half the smallest level
 * it is zero). Every multiplication by a weight is then a shift.
 *   update=ste (default)  the latent float weights are updated with the STE gradient and
 *                         re-projected every step
 *   update=inq            incremental quantization: 50%, 75%, 87.5%, 100% of the weights,
 *                         largest magnitudes first, are quantized and frozen in four equal
 *                         stages of the run; the rest train in float. e_max is fixed when
 *                         the first stage starts. The mask and e_max are checkpointed.
 * Activations: b bits on [0, 1) with step 2^-b (runtime/lbr_quant.h, lbr_act_pot_*). */
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pot_state {
    int inq;
    int e_max;
    float target;            /* inq: fraction to be frozen now */
    float *tmp;              /* inq: selection scratch */
} pot_state;

static lb_status pot_setup(lb_quant *q) {
    if (q->bits < 2) return lb_fail(LB_ERR_INVALID, "pot needs at least 2 weight bits ({0, +-2^e}); 1 bit would leave only zero");
    int inq = 0;
    lb_status s;
    if ((s = lb_qopt_choice(q, "update", "ste inq", &inq))) return s;
    pot_state *st = calloc(1, sizeof *st);
    if (!st) return lb_fail(LB_ERR_NOMEM, "out of memory");
    q->state = st;
    st->inq = inq;
    if (inq) {
        if (!(st->tmp = malloc(sizeof(float) * (size_t)q->n))) return lb_fail(LB_ERR_NOMEM, "out of memory");
        q->nlearn = 2;
        q->learn_name[0] = "emax";
        q->learn_size[0] = 1;
        q->learn_fixed[0] = 1;
        q->learn_name[1] = "mask";
        q->learn_size[1] = q->n;
        q->learn_fixed[1] = 1;
    }
    return LB_OK;
}

static void pot_release(lb_quant *q) {
    pot_state *st = q->state;
    if (st) free(st->tmp);
    free(st);
    q->state = NULL;
}

static int pot_emax(const float *x, int64_t n) {
    float m = lb_q_maxabs(x, n);
    return m > 0 ? (int)floorf(log2f(4.0f * m / 3.0f)) : 0;
}

/* code 0 = zero, else (k << 1) | sign with k = e - e_min + 1 (lbr_pot_value). The
 * nearest power of two comes from the float's own bits: |w| = (1 + f) 2^E with f in
 * [0, 1), and the midpoint to 2^(E+1) is at f = 1/2, the top mantissa bit. */
static inline int32_t pot_code(float w, float zero_below, int e_min, int e_max) {
    float a = fabsf(w);
    if (!(a >= zero_below)) return 0; /* half the smallest level, 2^(e_min - 1) */
    uint32_t b;
    memcpy(&b, &a, 4);
    int e = (int)((b >> 23) & 0xff) - 127 + (int)((b >> 22) & 1);
    e = e < e_min ? e_min : e;
    e = e > e_max ? e_max : e;
    return ((e - e_min + 1) << 1) | (w < 0);
}

static int pot_emin(const lb_quant *q, int e_max) { return e_max - (1 << (q->bits - 1)) + 2; }

static void pot_init(lb_quant *q, const float *x, int64_t n) {
    pot_state *st = q->state;
    if (st->inq) {
        q->learn[0][0] = (float)pot_emax(x, n);
        memset(q->learn[1], 0, sizeof(float) * (size_t)n);
    }
    q->initialized = 1;
}

static void pot_encode(const lb_quant *q, int32_t *codes, const float *x, int64_t n) {
    const pot_state *st = q->state;
    int e_max = st->inq ? (int)q->learn[0][0] : pot_emax(x, n), e_min = pot_emin(q, e_max);
    for (int64_t i = 0; i < n; i++) codes[i] = pot_code(x[i], ldexpf(1.0f, e_min - 1), e_min, e_max);
}

/* inq: freeze the largest-magnitude unfrozen weights until `target` of all are frozen */
static void inq_freeze(lb_quant *q, const float *x) {
    pot_state *st = q->state;
    float *mask = q->learn[1];
    int64_t frozen = 0, m = 0;
    for (int64_t i = 0; i < q->n; i++) frozen += mask[i] != 0;
    int64_t want = (int64_t)ceil((double)st->target * (double)q->n);
    if (want <= frozen) return;
    for (int64_t i = 0; i < q->n; i++)
        if (mask[i] == 0) st->tmp[m++] = -fabsf(x[i]);
    /* the (want - frozen) largest |w| among the unfrozen: threshold by a full sort of
     * the small remainder is simplest; this runs four times per training run */
    int64_t k = want - frozen;
    qsort(st->tmp, (size_t)m, sizeof(float), lb_q_cmp_float);
    float thr = -st->tmp[k - 1];
    for (int64_t i = 0; i < q->n && k > 0; i++)
        if (mask[i] == 0 && fabsf(x[i]) >= thr) { mask[i] = 1; k--; }
}

static void pot_forward(lb_quant *q, float *y, const float *x, int64_t n, int training) {
    pot_state *st = q->state;
    if (q->mode == LB_QMODE_FLOAT) { lb_q_ste(y, x, n, 0); return; }
    int e_max = st->inq ? (int)q->learn[0][0] : pot_emax(x, n), e_min = pot_emin(q, e_max);
    const float lo = ldexpf(1.0f, e_min - 1);
    float v[256]; /* the values of all codes, from the one definition */
    for (int c = 0; c < (1 << q->bits); c++) v[c] = lbr_pot_value(c, 1.0f, e_min);
    if (!st->inq) {
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = v[pot_code(x[i], lo, e_min, e_max)];
        return;
    }
    if (training) inq_freeze(q, x);
    const float *mask = q->learn[1];
    /* evaluation outside training quantizes everything: the deployed model */
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        y[i] = (!training || mask[i] != 0) ? v[pot_code(x[i], lo, e_min, e_max)] : x[i];
}

static void pot_backward(lb_quant *q, float *dx, const float *dy, const float *x, int64_t n, int acc) {
    (void)x;
    const pot_state *st = q->state;
    if (!st->inq || q->mode == LB_QMODE_FLOAT) { lb_q_ste(dx, dy, n, acc); return; }
    const float *mask = q->learn[1];
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = mask[i] != 0 ? 0.0f : dy[i];
        dx[i] = acc ? dx[i] + g : g;
    }
}

static void pot_schedule(lb_quant *q, const lb_qsched *s) {
    pot_state *st = q->state;
    q->step = s->step;
    if (!st->inq) return;
    int stage = s->epochs > 0 ? (int)((int64_t)s->epoch * 4 / s->epochs) : 3;
    stage = stage > 3 ? 3 : stage;
    st->target = 1.0f - ldexpf(1.0f, -(stage + 1));
    if (stage == 3) st->target = 1.0f;
}

static const lb_qops pot_w = {pot_setup, NULL, pot_init, pot_forward, pot_backward, pot_schedule, pot_encode, pot_release};

/* ------------------------------------------------------------------ activations */

static lb_status pact_setup(lb_quant *q) {
    if (q->bits < 1 || q->bits > 16) return lb_fail(LB_ERR_INVALID, "pot: activation bits must be in [1, 16]");
    return LB_OK;
}
static void pact_init(lb_quant *q, const float *x, int64_t n) { (void)x; (void)n; q->initialized = 1; }
static void pact_forward(lb_quant *q, float *y, const float *x, int64_t n, int training) {
    (void)training;
    const int b = q->bits;
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = lbr_act_pot_value(lbr_act_pot_code(x[i], b), b);
}
static void pact_backward(lb_quant *q, float *dx, const float *dy, const float *x, int64_t n, int acc) {
    lb_q_ste_clip(dx, dy, x, n, 0.0f, 1.0f - ldexpf(1.0f, -q->bits), acc);
}
static void pact_encode(const lb_quant *q, int32_t *codes, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) codes[i] = lbr_act_pot_code(x[i], q->bits);
}
static const lb_qops pot_a = {pact_setup, NULL, pact_init, pact_forward, pact_backward, NULL, pact_encode, NULL};

const lb_qmethod lb_qm_pot = {"pot", "power-of-two weights {0, +-2^e} (shifts), activations on a 2^-b grid",
                              "update", 2, 8, 1, 16, &pot_w, &pot_a, "sgd lr=0.005"};
