/* Embedding, LSTM and GRU (ONNX semantics) over a sequence, forward and backward.
 *
 * Buffers (row r = b*T + t, the order of x and y, so the input projection, dW, dx and the
 * bias sums are each one GEMM or reduction over all B*T rows):
 *   LSTM save:  gates [BT,4H] (pre-activations, then the activations i,o,f,g) | c [BT,H] |
 *               h_pre [T][B][H] (pre-quantization h, step-major: what the hook reads) |
 *               hprev [BT,H] (row r holds hq_{t-1}, h0 at t = 0: dR is then one GEMM)
 *   LSTM scratch: forward: gates [BT,4H] (evaluation only) | c state | h_pre | hq, [B,H] each;
 *               backward: dgates [BT,4H] | dh | gh | dc, [B,H] each
 *   GRU save:   gates [BT,3H] (z,r,n) | hn [BT,H] (Rh h + Rbh, for dr) | h_pre | hprev
 *   GRU scratch: forward: gates [BT,3H] (evaluation) | recurrent projection [B,3H] | h_pre | hq;
 *               backward: dgr [BT,3H] (dz, dr, dn*r: what multiplies R) | dn [BT,H] | dh | gh
 * The per-step recurrent GEMMs read and write these in place with row strides (T*H, T*4H);
 * the only per-step copies are of the B*H state (into hprev, and through the contiguous
 * [B,H] blocks the hook reads and writes).
 *
 * The sigmoid and tanh are our own float formulas (Cephes' expf and tanhf, a few ulp)
 * because libm's expf and tanhf are scalar calls that GCC does not vectorise without
 * -ffast-math; these let the elementwise passes run 16 lanes wide. */
#include "ops/rnn.h"

#include "lb_internal.h"
#include "ops/reduce.h"
#include "ops/vmath.h"

#include <cblas.h>
/* OpenBLAS's cblas.h includes <complex.h>, whose macro I would rewrite the shape's field */
#undef I
#include <omp.h>
#include <string.h>

/* Columns of one elementwise work item: the split is fixed (not per thread), and each
 * element is computed alone, so results do not depend on the thread count. */
enum { CH = 64 };
/* B*H below which a step's elementwise pass runs on one thread: a pass over 8k values takes
 * about 30 us on one core (measured, LSTM forward), so splitting smaller ones would save
 * less than the microseconds it costs to wake a sleeping team every step. */
#define PAR_MIN 8192

#define AI __attribute__((always_inline))

/* The cell kernels below take flags (bt: Bit-RNN; hb: there is a bias; hc, hp: there is a
 * previous state) and are called with constants from a switch inside the parallel loop,
 * so each flag combination is its own loop. OpenMP outlines a parallel body before the
 * inliner runs: flags passed into the body would stay runtime values, and GCC would then
 * compute both sides of every flag under masks (tanh and sigmoid, with and without c_{t-1}),
 * which measured twice as slow. */
#define DISPATCH2(v, K) do { if (v) K(1); else K(0); } while (0)
#define DISPATCH4(v, K) do { switch (v) { \
    case 0: K(0, 0); break; case 1: K(0, 1); break; case 2: K(1, 0); break; default: K(1, 1); break; } } while (0)
#define DISPATCH8(v, K) do { switch (v) { \
    case 0: K(0, 0, 0); break; case 1: K(0, 0, 1); break; case 2: K(0, 1, 0); break; case 3: K(0, 1, 1); break; \
    case 4: K(1, 0, 0); break; case 5: K(1, 0, 1); break; case 6: K(1, 1, 0); break; default: K(1, 1, 1); break; \
    } } while (0)

/* ---------------------------------------------------------------- math */

/* the gates' functions: runtime/lbr_math.h, shared with the packed-model runtime */
#define rnn_sigmoid lbr_sigmoidf
#define act lbr_cell_act
static inline AI float dact(float y, int bit) { return bit ? y * (1.0f - y) : 1.0f - y * y; }

/* ---------------------------------------------------------------- helpers */

/* dst rows (stride ds) = src rows (stride ss), B rows of H */
static void copy_rows(float *dst, int64_t ds, const float *src, int64_t ss, int B, int H) {
    for (int b = 0; b < B; b++) memcpy(dst + b * ds, src + b * ss, sizeof(float) * (size_t)H);
}

/* d[B,H] += src rows (stride ss) */
static void add_rows(float *d, const float *src, int64_t ss, int B, int H) {
    for (int b = 0; b < B; b++) {
        float *dr = d + (int64_t)b * H;
        const float *sr = src + b * ss;
        #pragma omp simd
        for (int j = 0; j < H; j++) dr[j] += sr[j];
    }
}

/* dst[B,H] = src rows (stride ss), or zeros when src is NULL */
static void init_rows(float *dst, int64_t ds, const float *src, int B, int H) {
    for (int b = 0; b < B; b++) {
        if (src) memcpy(dst + b * ds, src + (int64_t)b * H, sizeof(float) * (size_t)H);
        else memset(dst + b * ds, 0, sizeof(float) * (size_t)H);
    }
}

/* out[BT,N] = x[BT,K] @ W[N,K]^T (the input projection; biases are added per step) */
static void proj(float *out, const float *x, const float *W, int64_t BT, int K, int N) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)BT, N, K, 1.0f, x, K, W, K, 0.0f, out, N);
}

/* ---------------------------------------------------------------- embedding */

void lb_embedding_forward(float *out, const int32_t *idx, const float *table, int64_t n, int E) {
    #pragma omp parallel for schedule(static) if (n * E >= 65536)
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * E, table + (int64_t)idx[i] * E, sizeof(float) * (size_t)E);
}

void lb_embedding_backward(float *dtable, const float *dout, const int32_t *idx, int64_t n, int V, int E) {
    const int64_t VE = (int64_t)V * E;
    const int nchunk = (E + 15) / 16; /* 16 floats: threads never share a cache line of a row */
    #pragma omp parallel if (VE + n * E >= 65536)
    {
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < VE; i++) dtable[i] = 0.0f;
        /* implicit barrier: every row is zero before any thread adds */
        int64_t c0, c1;
        lb_split_range(nchunk, omp_get_num_threads(), omp_get_thread_num(), &c0, &c1);
        const int e0 = (int)c0 * 16, e1 = (int)LB_MIN(c1 * 16, E);
        for (int64_t i = 0; i < n; i++) {
            float *d = dtable + (int64_t)idx[i] * E;
            const float *g = dout + i * E;
            #pragma omp simd
            for (int e = e0; e < e1; e++) d[e] += g[e];
        }
    }
}

/* ---------------------------------------------------------------- LSTM */

int64_t lb_lstm_save_size(const lb_rnn_shape *s) { return 7 * (int64_t)s->B * s->T * s->H; }
int64_t lb_lstm_scratch_size(const lb_rnn_shape *s) {
    return 4 * (int64_t)s->B * s->T * s->H + 3 * (int64_t)s->B * s->H;
}

/* One row's columns [j0, j1) of a forward step: g holds x@W^T + h@R^T for gates i,o,f,g
 * and receives their activations; pr: c_{t-1} (read only when hc); cr: c_t (may be pr: each
 * element is read before it is written); hr: h_t. */
static inline AI void lstm_row(float *g, const float *pr, float *cr, float *hr, const float *bW, const float *bR,
                               int H, int j0, int j1, int bt, int hb, int hc) {
    #pragma omp simd
    for (int j = j0; j < j1; j++) {
        float ai = g[j], ao = g[H + j], af = g[2 * H + j], ag = g[3 * H + j];
        if (hb) {
            ai += bW[j] + bR[j];
            ao += bW[H + j] + bR[H + j];
            af += bW[2 * H + j] + bR[2 * H + j];
            ag += bW[3 * H + j] + bR[3 * H + j];
        }
        float i = rnn_sigmoid(ai), o = rnn_sigmoid(ao), f = rnn_sigmoid(af), c = act(ag, bt);
        g[j] = i; g[H + j] = o; g[2 * H + j] = f; g[3 * H + j] = c;
        c = hc ? f * pr[j] + i * c : i * c;
        cr[j] = c;
        hr[j] = o * act(c, bt);
    }
}

/* One forward step for all B rows: gate rows G (stride gs), c_{t-1} rows cp (stride cpstride;
 * NULL: zero), c_t rows co (stride costride), h_t rows h (stride hs). */
static void lstm_cell(float *G, int64_t gs, const float *cp, int64_t cpstride, float *co, int64_t costride, float *h,
                      int64_t hs, const float *bias, int B, int H, int bit) {
    const int nch = (H + CH - 1) / CH, v = (bit ? 4 : 0) + (bias ? 2 : 0) + (cp ? 1 : 0);
    const int64_t items = (int64_t)B * nch;
    const float *bW = bias, *bR = bias ? bias + 4 * H : NULL;
    #pragma omp parallel for schedule(static) if ((int64_t)B * H >= PAR_MIN)
    for (int64_t it = 0; it < items; it++) {
        const int b = (int)(it / nch), j0 = (int)(it % nch) * CH, j1 = LB_MIN(H, j0 + CH);
        float *g = G + b * gs, *cr = co + b * costride, *hr = h + b * hs;
        const float *pr = cp ? cp + b * cpstride : NULL;
#define ROW(bt, hb, hc) lstm_row(g, pr, cr, hr, bW, bR, H, j0, j1, bt, hb, hc)
        DISPATCH8(v, ROW);
#undef ROW
    }
}

void lb_lstm_forward(float *y, float *hT, float *cT, float *save, float *scratch, const float *x,
                     const float *W, const float *R, const float *bias, const float *h0, const float *c0,
                     const lb_rnn_shape *s, const lb_rnn_hook *hq) {
    const int B = s->B, T = s->T, I = s->I, H = s->H, G4 = 4 * H;
    const int64_t BT = (int64_t)B * T, BH = (int64_t)B * H, TH = (int64_t)T * H, TG = (int64_t)T * G4;
    float *gates = save ? save : scratch;
    float *cbuf = save ? save + BT * G4 : NULL, *hpre = save ? cbuf + BT * H : NULL;
    float *hprev = save ? hpre + BT * H : NULL;
    float *cst = scratch + BT * G4, *hpre_tmp = cst + BH, *hq_tmp = hpre_tmp + BH;

    proj(gates, x, W, BT, I, G4);
    if (c0) memcpy(cst, c0, sizeof(float) * (size_t)BH);
    if (save) init_rows(hprev, TH, h0, B, H);
    for (int t = 0; t < T; t++) {
        float *Gt = gates + t * G4;
        const float *hp = t == 0 ? h0 : save ? hprev + t * H : y + (t - 1) * H;
        if (hp) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, G4, H, 1.0f, hp, t == 0 ? H : (int)TH, R, H,
                            1.0f, Gt, (int)TG);
        /* c_{t-1}: the initial state at t = 0 (none: zero), then the saved c (training) or
         * the running state updated in place (evaluation) */
        const float *cp = t == 0 ? (c0 ? cst : NULL) : save ? cbuf + (t - 1) * H : cst;
        float *co = save ? cbuf + t * H : cst;
        const int64_t cpstride = (t == 0 || !save) ? H : TH, costride = save ? TH : H;
        float *h = hq ? (save ? hpre + t * BH : hpre_tmp) : y + t * H;
        lstm_cell(Gt, TG, cp, cpstride, co, costride, h, hq ? H : TH, bias, B, H, s->bitrnn);
        if (hq) {
            hq->forward(hq->ctx, hq_tmp, h, BH);
            copy_rows(y + t * H, TH, hq_tmp, H, B, H);
        }
        if (save && t + 1 < T) copy_rows(hprev + (t + 1) * H, TH, y + t * H, TH, B, H);
    }
    if (hT) copy_rows(hT, H, y + (T - 1) * H, TH, B, H);
    if (cT) {
        if (save) copy_rows(cT, H, cbuf + (T - 1) * H, TH, B, H);
        else memcpy(cT, cst, sizeof(float) * (size_t)BH);
    }
}

/* One row's columns of a backward step. ghr: gradient w.r.t. h_t; dcr: gradient w.r.t. c_t
 * from step t+1, replaced by the one w.r.t. c_{t-1}; d: gate pre-activation gradients. */
static inline AI void lstm_row_bwd(float *d, const float *g, const float *cr, const float *pr, const float *ghr,
                                   float *dcr, int H, int j0, int j1, int bt, int hc) {
    #pragma omp simd
    for (int j = j0; j < j1; j++) {
        float i = g[j], o = g[H + j], f = g[2 * H + j], gg = g[3 * H + j];
        float tc = act(cr[j], bt), dh = ghr[j];
        float dcc = dcr[j] + dh * o * dact(tc, bt);
        float prev = hc ? pr[j] : 0.0f;
        d[j] = dcc * gg * i * (1.0f - i);
        d[H + j] = dh * tc * o * (1.0f - o);
        d[2 * H + j] = dcc * prev * f * (1.0f - f);
        d[3 * H + j] = dcc * i * dact(gg, bt);
        dcr[j] = dcc * f;
    }
}

/* One backward step: D, G gate rows (stride gs), C c_t rows and cp c_{t-1} rows (strides
 * cs, cpstride; cp NULL: zero), gh, dc [B,H]. */
static void lstm_cell_bwd(float *D, const float *G, const float *C, const float *cp, int64_t cpstride, const float *gh,
                          float *dc, int64_t gs, int64_t cs, int B, int H, int bit) {
    const int nch = (H + CH - 1) / CH, v = (bit ? 2 : 0) + (cp ? 1 : 0);
    const int64_t items = (int64_t)B * nch;
    #pragma omp parallel for schedule(static) if ((int64_t)B * H >= PAR_MIN)
    for (int64_t it = 0; it < items; it++) {
        const int b = (int)(it / nch), j0 = (int)(it % nch) * CH, j1 = LB_MIN(H, j0 + CH);
        float *d = D + b * gs, *dcr = dc + (int64_t)b * H;
        const float *g = G + b * gs, *cr = C + b * cs, *ghr = gh + (int64_t)b * H;
        const float *pr = cp ? cp + b * cpstride : NULL;
#define ROW(bt, hc) lstm_row_bwd(d, g, cr, pr, ghr, dcr, H, j0, j1, bt, hc)
        DISPATCH4(v, ROW);
#undef ROW
    }
}

void lb_lstm_backward(float *dx, float *dW, float *dR, float *dbias, float *dh0, float *dc0, float *scratch,
                      const float *dy, const float *save, const float *x, const float *W, const float *R,
                      const float *h0, const float *c0, const lb_rnn_shape *s, const lb_rnn_hook *hq, int acc) {
    (void)h0;
    const int B = s->B, T = s->T, I = s->I, H = s->H, G4 = 4 * H, bit = s->bitrnn;
    const int64_t BT = (int64_t)B * T, BH = (int64_t)B * H, TH = (int64_t)T * H, TG = (int64_t)T * G4;
    const float *gates = save, *cbuf = save + BT * G4, *hpre = cbuf + BT * H, *hprev = hpre + BT * H;
    float *dg = scratch, *dh = dg + BT * G4, *gh = dh + BH, *dc = gh + BH;

    memset(dh, 0, sizeof(float) * (size_t)BH);
    memset(dc, 0, sizeof(float) * (size_t)BH);
    for (int t = T - 1; t >= 0; t--) {
        /* dh: gradient w.r.t. hq_t = the output's plus the next step's (through R) */
        add_rows(dh, dy + t * H, TH, B, H);
        const float *g = dh;
        if (hq) {
            hq->backward(hq->ctx, gh, dh, hpre + t * BH, BH);
            g = gh;
        }
        const float *cp = t == 0 ? c0 : cbuf + (t - 1) * H;
        const int64_t cpstride = t == 0 ? H : TH;
        float *Dt = dg + t * G4;
        const float *Gt = gates + t * G4, *Ct = cbuf + t * H;
        lstm_cell_bwd(Dt, Gt, Ct, cp, cpstride, g, dc, TG, TH, B, H, bit);
        if (t > 0 || dh0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, G4, 1.0f, Dt, (int)TG, R, H, 0.0f, dh, H);
    }
    if (dh0) memcpy(dh0, dh, sizeof(float) * (size_t)BH);
    if (dc0) memcpy(dc0, dc, sizeof(float) * (size_t)BH);

    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G4, I, (int)BT, 1.0f, dg, G4, x, I, 0.0f, dW, I);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G4, H, (int)BT, 1.0f, dg, G4, hprev, H, 0.0f, dR, H);
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)BT, I, G4, 1.0f, dg, G4, W, I, acc ? 1.0f : 0.0f,
                    dx, I);
    if (dbias) {
        lb_colsum(dbias, dg, BT, G4);
        memcpy(dbias + G4, dbias, sizeof(float) * (size_t)G4); /* Wb and Rb enter the same sum */
    }
}

/* ---------------------------------------------------------------- GRU */

int64_t lb_gru_save_size(const lb_rnn_shape *s) { return 6 * (int64_t)s->B * s->T * s->H; }
int64_t lb_gru_scratch_size(const lb_rnn_shape *s) {
    return 4 * (int64_t)s->B * s->T * s->H + 5 * (int64_t)s->B * s->H;
}

/* One row's columns of a forward step: g holds x@W^T for gates z,r,h and receives z,r,n;
 * rg: h@R^T (read only when hp); pr: h_{t-1} (read only when hp); hnr: receives Rh h + Rbh;
 * hr: h_t. */
static inline AI void gru_row(float *g, const float *rg, const float *pr, float *hnr, float *hr, const float *bW,
                              const float *bR, int H, int j0, int j1, int bt, int hb, int hp) {
    #pragma omp simd
    for (int j = j0; j < j1; j++) {
        float az = g[j], ar = g[H + j], an = g[2 * H + j];
        float rz = hp ? rg[j] : 0.0f, rr = hp ? rg[H + j] : 0.0f, rn = hp ? rg[2 * H + j] : 0.0f;
        if (hb) {
            az += bW[j] + bR[j];
            ar += bW[H + j] + bR[H + j];
            an += bW[2 * H + j];
            rn += bR[2 * H + j];
        }
        float z = rnn_sigmoid(az + rz), r = rnn_sigmoid(ar + rr), n = act(an + r * rn, bt);
        float prev = hp ? pr[j] : 0.0f;
        g[j] = z; g[H + j] = r; g[2 * H + j] = n;
        hnr[j] = rn;
        hr[j] = n + z * (prev - n);
    }
}

/* One forward step for all B rows: gate rows G (stride gs), RG [B,3H], h_{t-1} rows hp
 * (stride hps; NULL: zero), hn rows (stride hns), h_t rows h (stride hs). */
static void gru_cell(float *G, int64_t gs, const float *RG, const float *hp, int64_t hps, float *hn, int64_t hns,
                     float *h, int64_t hs, const float *bias, int B, int H, int bit) {
    const int nch = (H + CH - 1) / CH, v = (bit ? 4 : 0) + (bias ? 2 : 0) + (hp ? 1 : 0);
    const int64_t items = (int64_t)B * nch;
    const float *bW = bias, *bR = bias ? bias + 3 * H : NULL;
    #pragma omp parallel for schedule(static) if ((int64_t)B * H >= PAR_MIN)
    for (int64_t it = 0; it < items; it++) {
        const int b = (int)(it / nch), j0 = (int)(it % nch) * CH, j1 = LB_MIN(H, j0 + CH);
        float *g = G + b * gs, *hnr = hn + b * hns, *hr = h + b * hs;
        const float *rg = RG + (int64_t)b * 3 * H, *pr = hp ? hp + b * hps : NULL;
#define ROW(bt, hb, hc) gru_row(g, rg, pr, hnr, hr, bW, bR, H, j0, j1, bt, hb, hc)
        DISPATCH8(v, ROW);
#undef ROW
    }
}

void lb_gru_forward(float *y, float *hT, float *save, float *scratch, const float *x, const float *W,
                    const float *R, const float *bias, const float *h0, const lb_rnn_shape *s,
                    const lb_rnn_hook *hq) {
    const int B = s->B, T = s->T, I = s->I, H = s->H, G3 = 3 * H;
    const int64_t BT = (int64_t)B * T, BH = (int64_t)B * H, TH = (int64_t)T * H, TG = (int64_t)T * G3;
    float *gates = save ? save : scratch;
    float *hnb = save ? save + BT * G3 : NULL, *hpre = save ? hnb + BT * H : NULL;
    float *hprev = save ? hpre + BT * H : NULL;
    float *rg = scratch + BT * G3, *hpre_tmp = rg + 3 * BH, *hq_tmp = hpre_tmp + BH;

    proj(gates, x, W, BT, I, G3);
    if (save) init_rows(hprev, TH, h0, B, H);
    for (int t = 0; t < T; t++) {
        const float *hp = t == 0 ? h0 : save ? hprev + t * H : y + (t - 1) * H;
        const int64_t hps = t == 0 ? H : TH;
        if (hp)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, G3, H, 1.0f, hp, (int)hps, R, H, 0.0f, rg, G3);
        float *hn = save ? hnb + t * H : rg + 2 * H;
        float *h = hq ? (save ? hpre + t * BH : hpre_tmp) : y + t * H;
        gru_cell(gates + t * G3, TG, rg, hp, hps, hn, save ? TH : G3, h, hq ? H : TH, bias, B, H, s->bitrnn);
        if (hq) {
            hq->forward(hq->ctx, hq_tmp, h, BH);
            copy_rows(y + t * H, TH, hq_tmp, H, B, H);
        }
        if (save && t + 1 < T) copy_rows(hprev + (t + 1) * H, TH, y + t * H, TH, B, H);
    }
    if (hT) copy_rows(hT, H, y + (T - 1) * H, TH, B, H);
}

/* One row's columns of a backward step. ghr: gradient w.r.t. h_t; dhr: receives the
 * direct part of the gradient w.r.t. h_{t-1} (z * gh; the part through R is added by the
 * caller's GEMM; may be ghr); dr: dz, dr, dn*r; dn: dn. */
static inline AI void gru_row_bwd(float *dr, float *dn, const float *g, const float *hn, const float *hp,
                                  const float *ghr, float *dhr, int H, int j0, int j1, int bt) {
    #pragma omp simd
    for (int j = j0; j < j1; j++) {
        float z = g[j], r = g[H + j], n = g[2 * H + j], d = ghr[j];
        float an = d * (1.0f - z) * dact(n, bt);
        dr[j] = d * (hp[j] - n) * z * (1.0f - z);
        dr[H + j] = an * hn[j] * r * (1.0f - r);
        dr[2 * H + j] = an * r;
        dn[j] = an;
        dhr[j] = d * z;
    }
}

/* One backward step: DR, G rows (stride gs), DN, HN, HP rows (stride hs), gh, dh [B,H]. */
static void gru_cell_bwd(float *DR, float *DN, const float *G, const float *HN, const float *HP, const float *gh,
                         float *dh, int64_t gs, int64_t hs, int B, int H, int bit) {
    const int nch = (H + CH - 1) / CH;
    const int64_t items = (int64_t)B * nch;
    #pragma omp parallel for schedule(static) if ((int64_t)B * H >= PAR_MIN)
    for (int64_t it = 0; it < items; it++) {
        const int b = (int)(it / nch), j0 = (int)(it % nch) * CH, j1 = LB_MIN(H, j0 + CH);
        float *dr = DR + b * gs, *dn = DN + b * hs, *dhr = dh + (int64_t)b * H;
        const float *g = G + b * gs, *hn = HN + b * hs, *hp = HP + b * hs, *ghr = gh + (int64_t)b * H;
#define ROW(bt) gru_row_bwd(dr, dn, g, hn, hp, ghr, dhr, H, j0, j1, bt)
        DISPATCH2(bit, ROW);
#undef ROW
    }
}

void lb_gru_backward(float *dx, float *dW, float *dR, float *dbias, float *dh0, float *scratch,
                     const float *dy, const float *save, const float *x, const float *W, const float *R,
                     const float *h0, const lb_rnn_shape *s, const lb_rnn_hook *hq, int acc) {
    (void)h0; /* the forward saved it as hprev's first step */
    const int B = s->B, T = s->T, I = s->I, H = s->H, G3 = 3 * H;
    const int64_t BT = (int64_t)B * T, BH = (int64_t)B * H, TH = (int64_t)T * H, TG = (int64_t)T * G3;
    const float *gates = save, *hnb = save + BT * G3, *hpre = hnb + BT * H, *hprev = hpre + BT * H;
    float *dgr = scratch, *dn = dgr + BT * G3, *dh = dn + BT * H, *gh = dh + BH;

    memset(dh, 0, sizeof(float) * (size_t)BH);
    for (int t = T - 1; t >= 0; t--) {
        add_rows(dh, dy + t * H, TH, B, H);
        const float *g = dh;
        if (hq) {
            hq->backward(hq->ctx, gh, dh, hpre + t * BH, BH);
            g = gh;
        }
        float *Dt = dgr + t * G3;
        gru_cell_bwd(Dt, dn + t * H, gates + t * G3, hnb + t * H, hprev + t * H, g, dh, TG, TH, B, H, s->bitrnn);
        if (t > 0 || dh0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, G3, 1.0f, Dt, (int)TG, R, H, 1.0f, dh, H);
    }
    if (dh0) memcpy(dh0, dh, sizeof(float) * (size_t)BH);

    /* z and r: dgr; candidate: dn for W (x enters before the reset gate), dn*r for R */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 2 * H, I, (int)BT, 1.0f, dgr, G3, x, I, 0.0f, dW, I);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, I, (int)BT, 1.0f, dn, H, x, I, 0.0f,
                dW + 2 * (int64_t)H * I, I);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G3, H, (int)BT, 1.0f, dgr, G3, hprev, H, 0.0f, dR, H);
    if (dx) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)BT, I, 2 * H, 1.0f, dgr, G3, W, I,
                    acc ? 1.0f : 0.0f, dx, I);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)BT, I, H, 1.0f, dn, H, W + 2 * (int64_t)H * I, I,
                    1.0f, dx, I);
    }
    if (dbias) {
        lb_colsum(dbias + G3, dgr, BT, G3);
        memcpy(dbias, dbias + G3, sizeof(float) * (size_t)(2 * H)); /* Wbz, Wbr: same sums as Rbz, Rbr */
        lb_colsum(dbias + 2 * H, dn, BT, H);
    }
}
