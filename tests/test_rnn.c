/* Embedding, LSTM and GRU ops (src/ops/rnn.c).
 *
 * 1. Gradients against central finite differences of L = sum(y * r) (r fixed, random),
 *    summed in double over a float network: |fd - analytic| <= 5e-4 + 2e-2*|fd|. The float
 *    forward rounds each of the N = B*T*H outputs by ~3e-8, which puts noise of about
 *    sqrt(N) * 3e-8 / eps in the difference quotient: eps = 1e-3 on the tiny shape (N = 40,
 *    noise ~1e-4), eps = 1e-2 on the larger one (N = 1005, where 1e-3 gave noise up to
 *    7e-4, shrinking with eps as noise does); the central difference's own error is
 *    O(eps^2). A wrong term (a gate's derivative, a missing recurrence path) is off by far
 *    more than 2%. Checked for both cells, both
 *    Bit-RNN settings, non-zero h0/c0, with and without a smooth stand-in quantizer hook
 *    (y = x + 0.1 x^2: a wrong placement of the hook in forward or backward moves the
 *    gradients by about 10%), every element on a tiny shape and sampled elements on a
 *    shape whose H spans more than one elementwise work item.
 * 2. Exact properties: a NULL hook is bit-identical to an identity hook; NULL h0/c0/bias
 *    are bit-identical to zeros; evaluation (save == NULL) gives the training forward's
 *    bits; the final state carries (two halves of a sequence = the whole, to rounding);
 *    acc adds; the buffer sizes for {B*T, 1} bound those for {B, T}; the hook runs once
 *    per step on B*H values.
 * 3. Embedding by hand-computed values (repeated indices accumulate, exact in float).
 * 4. Golden: tests/data/rnn_golden.safetensors (tests/data/make_rnn_golden.py) holds what
 *    PyTorch 1.13's nn.LSTM / nn.GRU computed on B=2, T=3, I=4, H=5: outputs, final state and
 *    the gradients of sum(y * r). Tolerance 1e-5 absolute + 1e-4 relative (float32 on both
 *    sides, different summation orders and exp/tanh implementations: a few 1e-7 expected).
 * 5. Threads: the same thread count twice is bit-identical; 1 and 2 threads agree to
 *    float rounding (OpenBLAS may split GEMMs differently): 1e-5 relative to the tensor's
 *    largest magnitude. */
#include "lb_internal.h"
#include "ops/rnn.h"
#include "test_util.h"

#include <omp.h>
#include <string.h>

#ifndef LB_SOURCE_DIR
#define LB_SOURCE_DIR "."
#endif

#define FD_ATOL 5e-4
#define FD_RTOL 2e-2
#define GOLD_ATOL 1e-5
#define GOLD_RTOL 1e-4

static float *falloc(int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

/* NaN everywhere: a read of a buffer element the op did not write first shows in the results */
static float *nanalloc(int64_t n) {
    float *p = falloc(n);
    for (int64_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static void fill(float *p, int64_t n, uint64_t seed, float lo, float hi) {
    uint64_t st = seed;
    for (int64_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * (float)((double)(lbt_splitmix64(&st) >> 40) / 16777216.0);
}

static float *dup(const float *p, int64_t n) {
    if (!p) return NULL;
    float *q = falloc(n);
    memcpy(q, p, sizeof(float) * (size_t)n);
    return q;
}

static int same(const float *a, const float *b, int64_t n) {
    if (!a || !b) return a == b;
    return memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

/* ---------------------------------------------------------------- test hooks */

typedef struct hook_ctx {
    int fwd_calls, bwd_calls, bad_n;
    int64_t n;     /* expected values per call (B*H) */
} hook_ctx;

static void smooth_fwd(void *ctx, float *y, const float *x, int64_t n) {
    hook_ctx *c = ctx;
    c->fwd_calls++;
    if (n != c->n) c->bad_n++;
    for (int64_t i = 0; i < n; i++) y[i] = x[i] + 0.1f * x[i] * x[i];
}
static void smooth_bwd(void *ctx, float *dx, const float *dy, const float *x, int64_t n) {
    hook_ctx *c = ctx;
    c->bwd_calls++;
    if (n != c->n) c->bad_n++;
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f + 0.2f * x[i]);
}
static void ident_fwd(void *ctx, float *y, const float *x, int64_t n) {
    (void)ctx;
    memcpy(y, x, sizeof(float) * (size_t)n);
}
static void ident_bwd(void *ctx, float *dx, const float *dy, const float *x, int64_t n) {
    (void)ctx; (void)x;
    memcpy(dx, dy, sizeof(float) * (size_t)n);
}

/* ---------------------------------------------------------------- a network under test */

typedef struct net {
    int lstm;
    lb_rnn_shape s;
    float *x, *W, *R, *bias, *h0, *c0, *r; /* r: loss weights [B,T,H] */
    const lb_rnn_hook *hook;
} net;

typedef struct grads {
    float *dx, *dW, *dR, *dbias, *dh0, *dc0;
} grads;

typedef struct outs {
    float *y, *hT, *cT;
} outs;

static int ngates(const net *n) { return n->lstm ? 4 : 3; }
static int64_t sz_x(const net *n) { return (int64_t)n->s.B * n->s.T * n->s.I; }
static int64_t sz_y(const net *n) { return (int64_t)n->s.B * n->s.T * n->s.H; }
static int64_t sz_W(const net *n) { return (int64_t)ngates(n) * n->s.H * n->s.I; }
static int64_t sz_R(const net *n) { return (int64_t)ngates(n) * n->s.H * n->s.H; }
static int64_t sz_b(const net *n) { return 2 * (int64_t)ngates(n) * n->s.H; }
static int64_t sz_h(const net *n) { return (int64_t)n->s.B * n->s.H; }

static void net_make(net *n, int lstm, int B, int T, int I, int H, int bit, uint64_t seed) {
    memset(n, 0, sizeof *n);
    n->lstm = lstm;
    n->s = (lb_rnn_shape){B, T, I, H, bit};
    n->x = falloc(sz_x(n)); fill(n->x, sz_x(n), seed + 1, -1.0f, 1.0f);
    n->W = falloc(sz_W(n)); fill(n->W, sz_W(n), seed + 2, -0.6f, 0.6f);
    n->R = falloc(sz_R(n)); fill(n->R, sz_R(n), seed + 3, -0.6f, 0.6f);
    n->bias = falloc(sz_b(n)); fill(n->bias, sz_b(n), seed + 4, -0.5f, 0.5f);
    n->h0 = falloc(sz_h(n)); fill(n->h0, sz_h(n), seed + 5, -0.5f, 0.5f);
    if (lstm) { n->c0 = falloc(sz_h(n)); fill(n->c0, sz_h(n), seed + 6, -1.0f, 1.0f); }
    n->r = falloc(sz_y(n)); fill(n->r, sz_y(n), seed + 7, -1.0f, 1.0f);
}

static void net_free(net *n) {
    free(n->x); free(n->W); free(n->R); free(n->bias); free(n->h0); free(n->c0); free(n->r);
}

static void outs_make(outs *o, const net *n) {
    o->y = nanalloc(sz_y(n));
    o->hT = nanalloc(sz_h(n));
    o->cT = n->lstm ? nanalloc(sz_h(n)) : NULL;
}
static void outs_free(outs *o) { free(o->y); free(o->hT); free(o->cT); }

static void grads_make(grads *g, const net *n) {
    g->dx = nanalloc(sz_x(n));
    g->dW = nanalloc(sz_W(n));
    g->dR = nanalloc(sz_R(n));
    g->dbias = n->bias ? nanalloc(sz_b(n)) : NULL;
    g->dh0 = nanalloc(sz_h(n));
    g->dc0 = n->lstm ? nanalloc(sz_h(n)) : NULL;
}
static void grads_free(grads *g) { free(g->dx); free(g->dW); free(g->dR); free(g->dbias); free(g->dh0); free(g->dc0); }

static int64_t save_size(const net *n) { return n->lstm ? lb_lstm_save_size(&n->s) : lb_gru_save_size(&n->s); }
static int64_t scratch_size(const net *n) { return n->lstm ? lb_lstm_scratch_size(&n->s) : lb_gru_scratch_size(&n->s); }

/* save == NULL: evaluation */
static void forward(const net *n, outs *o, float *save) {
    float *scratch = nanalloc(scratch_size(n));
    if (n->lstm)
        lb_lstm_forward(o->y, o->hT, o->cT, save, scratch, n->x, n->W, n->R, n->bias, n->h0, n->c0, &n->s, n->hook);
    else
        lb_gru_forward(o->y, o->hT, save, scratch, n->x, n->W, n->R, n->bias, n->h0, &n->s, n->hook);
    free(scratch);
}

static double loss(const net *n, const float *y) {
    double L = 0;
    for (int64_t i = 0; i < sz_y(n); i++) L += (double)y[i] * n->r[i];
    return L;
}

static double loss_of(const net *n) {
    outs o;
    outs_make(&o, n);
    forward(n, &o, NULL);
    double L = loss(n, o.y);
    outs_free(&o);
    return L;
}

/* training forward, then backward of L (dy = r) into g */
static void forward_backward(const net *n, outs *o, grads *g, int acc) {
    float *save = nanalloc(save_size(n)), *scratch = nanalloc(scratch_size(n));
    forward(n, o, save);
    if (n->lstm)
        lb_lstm_backward(g->dx, g->dW, g->dR, g->dbias, g->dh0, g->dc0, scratch, n->r, save, n->x, n->W, n->R, n->h0,
                         n->c0, &n->s, n->hook, acc);
    else
        lb_gru_backward(g->dx, g->dW, g->dR, g->dbias, g->dh0, scratch, n->r, save, n->x, n->W, n->R, n->h0, &n->s,
                        n->hook, acc);
    free(save);
    free(scratch);
}

/* ---------------------------------------------------------------- finite differences */

static double fd_worst_abs = 0, fd_worst_ratio = 0; /* largest |fd - analytic| and its share of the tolerance */

/* Central differences of L w.r.t. p[k] for every k (sample == 0) or `sample` random k,
 * against an[k]; one check per tensor, naming the worst element. */
static void fd_tensor(const char *label, const char *what, net *n, float *p, const float *an, int64_t cnt,
                      int sample, float eps, uint64_t seed) {
    double worst = 0, wfd = 0, wan = 0;
    int64_t wk = -1;
    uint64_t st = seed;
    int64_t m = sample ? sample : cnt;
    for (int64_t i = 0; i < m; i++) {
        int64_t k = sample ? (int64_t)(lbt_splitmix64(&st) % (uint64_t)cnt) : i;
        float o = p[k], pp = o + eps, pm = o - eps;
        p[k] = pp;
        double Lp = loss_of(n);
        p[k] = pm;
        double Lm = loss_of(n);
        p[k] = o;
        double fd = (Lp - Lm) / ((double)pp - (double)pm);
        double err = fabs(fd - an[k]), ratio = err / (FD_ATOL + FD_RTOL * fabs(fd));
        if (err > fd_worst_abs) fd_worst_abs = err;
        if (ratio > fd_worst_ratio) fd_worst_ratio = ratio;
        if (!(ratio <= worst)) { worst = ratio; wk = k; wfd = fd; wan = an[k]; }
    }
    CHECK_MSG(worst <= 1.0, "%s: d%s[%lld]: finite difference %.7g, analytic %.7g", label, what, (long long)wk, wfd,
              wan);
}

static void fd_check(net *n, const char *label, int sample, float eps) {
    outs o;
    grads g;
    outs_make(&o, n);
    grads_make(&g, n);
    forward_backward(n, &o, &g, 0);
    fd_tensor(label, "x", n, n->x, g.dx, sz_x(n), sample, eps, 11);
    fd_tensor(label, "W", n, n->W, g.dW, sz_W(n), sample, eps, 12);
    fd_tensor(label, "R", n, n->R, g.dR, sz_R(n), sample, eps, 13);
    fd_tensor(label, "bias", n, n->bias, g.dbias, sz_b(n), sample, eps, 14);
    fd_tensor(label, "h0", n, n->h0, g.dh0, sz_h(n), sample, eps, 15);
    if (n->lstm) fd_tensor(label, "c0", n, n->c0, g.dc0, sz_h(n), sample, eps, 16);
    outs_free(&o);
    grads_free(&g);
}

static void test_fd(void) {
    static const int shapes[][4] = {{2, 4, 3, 5}, {3, 5, 7, 67}}; /* H = 67 spans two 64-column work items */
    for (int lstm = 0; lstm <= 1; lstm++)
        for (int bit = 0; bit <= 1; bit++)
            for (int sh = 0; sh < 2; sh++)
                for (int hooked = 0; hooked <= 1; hooked++) {
                    net n;
                    const int *d = shapes[sh];
                    net_make(&n, lstm, d[0], d[1], d[2], d[3], bit, 100 + (uint64_t)(lstm * 8 + bit * 4 + sh * 2));
                    hook_ctx hc = {0, 0, 0, sz_h(&n)};
                    lb_rnn_hook hook = {&hc, smooth_fwd, smooth_bwd};
                    if (hooked) n.hook = &hook;
                    char label[96];
                    snprintf(label, sizeof label, "%s bitrnn=%d B%dT%dI%dH%d%s", lstm ? "lstm" : "gru", bit, d[0],
                             d[1], d[2], d[3], hooked ? " hook" : "");
                    fd_check(&n, label, sh == 0 ? 0 : 24, sh == 0 ? 1e-3f : 1e-2f);
                    if (hooked) CHECK_MSG(hc.bad_n == 0, "%s: hook called with n != B*H", label);
                    net_free(&n);
                }
    printf("finite differences: largest |fd - analytic| %.3g, largest error / tolerance %.3g\n", fd_worst_abs,
           fd_worst_ratio);
}

/* ---------------------------------------------------------------- exact properties */

static void check_same_run(const char *label, const net *a, const net *b) {
    outs oa, ob;
    grads ga, gb;
    outs_make(&oa, a); outs_make(&ob, b);
    grads_make(&ga, a); grads_make(&gb, b);
    forward_backward(a, &oa, &ga, 0);
    forward_backward(b, &ob, &gb, 0);
    CHECK_MSG(same(oa.y, ob.y, sz_y(a)) && same(oa.hT, ob.hT, sz_h(a)) && same(oa.cT, ob.cT, sz_h(a)),
              "%s: outputs differ", label);
    CHECK_MSG(same(ga.dx, gb.dx, sz_x(a)) && same(ga.dW, gb.dW, sz_W(a)) && same(ga.dR, gb.dR, sz_R(a)) &&
                  same(ga.dh0, gb.dh0, sz_h(a)) && same(ga.dc0, gb.dc0, sz_h(a)),
              "%s: gradients differ", label);
    if (ga.dbias && gb.dbias) CHECK_MSG(same(ga.dbias, gb.dbias, sz_b(a)), "%s: dbias differs", label);
    outs_free(&oa); outs_free(&ob);
    grads_free(&ga); grads_free(&gb);
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void test_properties(void) {
    for (int lstm = 0; lstm <= 1; lstm++)
        for (int bit = 0; bit <= 1; bit++) {
            const char *cell = lstm ? "lstm" : "gru";
            char label[64];
            net n;
            net_make(&n, lstm, 3, 5, 6, 70, bit, 300 + (uint64_t)(lstm * 2 + bit));

            /* a NULL hook is the identity hook */
            net m = n;
            lb_rnn_hook id = {NULL, ident_fwd, ident_bwd};
            m.hook = &id;
            snprintf(label, sizeof label, "%s bitrnn=%d NULL vs identity hook", cell, bit);
            check_same_run(label, &n, &m);

            /* NULL h0, c0, bias are zeros */
            net z = n, zn = n;
            z.h0 = falloc(sz_h(&n)); memset(z.h0, 0, sizeof(float) * (size_t)sz_h(&n));
            z.c0 = lstm ? dup(z.h0, sz_h(&n)) : NULL;
            z.bias = falloc(sz_b(&n)); memset(z.bias, 0, sizeof(float) * (size_t)sz_b(&n));
            zn.h0 = zn.c0 = zn.bias = NULL;
            snprintf(label, sizeof label, "%s bitrnn=%d NULL vs zero h0/c0/bias", cell, bit);
            check_same_run(label, &z, &zn);
            free(z.h0); free(z.c0); free(z.bias);

            /* evaluation = training forward, with and without a hook */
            for (int hooked = 0; hooked <= 1; hooked++) {
                hook_ctx hc = {0, 0, 0, sz_h(&n)};
                lb_rnn_hook sm = {&hc, smooth_fwd, smooth_bwd};
                m = n;
                m.hook = hooked ? &sm : NULL;
                outs oe, ot;
                outs_make(&oe, &m); outs_make(&ot, &m);
                float *save = nanalloc(save_size(&m));
                forward(&m, &oe, NULL);
                forward(&m, &ot, save);
                CHECK_MSG(same(oe.y, ot.y, sz_y(&m)) && same(oe.hT, ot.hT, sz_h(&m)) && same(oe.cT, ot.cT, sz_h(&m)),
                          "%s bitrnn=%d hook=%d: evaluation forward differs from training forward", cell, bit, hooked);
                /* hT is the last step's output */
                int ok = 1;
                for (int b = 0; b < m.s.B; b++)
                    ok &= same(ot.hT + b * m.s.H, ot.y + ((int64_t)b * m.s.T + m.s.T - 1) * m.s.H, m.s.H);
                CHECK_MSG(ok, "%s bitrnn=%d hook=%d: hT is not y[:, T-1]", cell, bit, hooked);
                if (hooked) CHECK_MSG(hc.fwd_calls == 2 * m.s.T, "%s: hook forward called %d times for 2 x %d steps",
                                      cell, hc.fwd_calls, m.s.T);
                /* the hook's backward runs once per step too */
                if (hooked) {
                    grads g;
                    grads_make(&g, &m);
                    hc.bwd_calls = 0;
                    forward_backward(&m, &ot, &g, 0);
                    CHECK_MSG(hc.bwd_calls == m.s.T && hc.bad_n == 0, "%s: hook backward called %d times for %d steps",
                              cell, hc.bwd_calls, m.s.T);
                    grads_free(&g);
                }
                free(save);
                outs_free(&oe); outs_free(&ot);
            }

            /* carried state: steps [0, T1) then [T1, T) from (hT, cT) = all T steps */
            {
                const int B = n.s.B, T = n.s.T, I = n.s.I, H = n.s.H, T1 = 2;
                outs full;
                outs_make(&full, &n);
                forward(&n, &full, NULL);
                net a = n, b = n;
                a.s.T = T1;
                b.s.T = T - T1;
                a.x = falloc((int64_t)B * T1 * I);
                b.x = falloc((int64_t)B * (T - T1) * I);
                for (int s = 0; s < B; s++) {
                    memcpy(a.x + (int64_t)s * T1 * I, n.x + (int64_t)s * T * I, sizeof(float) * (size_t)(T1 * I));
                    memcpy(b.x + (int64_t)s * (T - T1) * I, n.x + ((int64_t)s * T + T1) * I,
                           sizeof(float) * (size_t)((T - T1) * I));
                }
                outs oa, ob;
                outs_make(&oa, &a); outs_make(&ob, &b);
                forward(&a, &oa, NULL);
                b.h0 = oa.hT;
                b.c0 = oa.cT;
                forward(&b, &ob, NULL);
                double d = 0;
                for (int s = 0; s < B; s++) {
                    d = fmax(d, max_abs_diff(oa.y + (int64_t)s * T1 * H, full.y + (int64_t)s * T * H, (int64_t)T1 * H));
                    d = fmax(d, max_abs_diff(ob.y + (int64_t)s * (T - T1) * H, full.y + ((int64_t)s * T + T1) * H,
                                             (int64_t)(T - T1) * H));
                }
                d = fmax(d, max_abs_diff(ob.hT, full.hT, sz_h(&n)));
                if (lstm) d = fmax(d, max_abs_diff(ob.cT, full.cT, sz_h(&n)));
                CHECK_MSG(d <= 1e-6, "%s bitrnn=%d: carried state differs from one pass by %g", cell, bit, d);
                free(a.x); free(b.x);
                outs_free(&oa); outs_free(&ob); outs_free(&full);
            }

            /* acc adds dx to what was there; everything else is overwritten either way */
            {
                outs o;
                grads g0, g1;
                outs_make(&o, &n);
                grads_make(&g0, &n); grads_make(&g1, &n);
                forward_backward(&n, &o, &g0, 0);
                float *pre = falloc(sz_x(&n));
                fill(pre, sz_x(&n), 77, -2.0f, 2.0f);
                memcpy(g1.dx, pre, sizeof(float) * (size_t)sz_x(&n));
                forward_backward(&n, &o, &g1, 1);
                double d = 0;
                for (int64_t i = 0; i < sz_x(&n); i++) d = fmax(d, fabs((double)g1.dx[i] - (pre[i] + g0.dx[i])));
                CHECK_MSG(d <= 1e-6, "%s bitrnn=%d: acc=1 dx differs from dx + previous by %g", cell, bit, d);
                CHECK_MSG(same(g0.dW, g1.dW, sz_W(&n)) && same(g0.dbias, g1.dbias, sz_b(&n)),
                          "%s bitrnn=%d: acc changed the parameter gradients", cell, bit);
                free(pre);
                outs_free(&o);
                grads_free(&g0); grads_free(&g1);
            }

            /* optional outputs may be NULL */
            {
                float *y = nanalloc(sz_y(&n)), *save = nanalloc(save_size(&n)), *sc = nanalloc(scratch_size(&n));
                grads g;
                grads_make(&g, &n);
                if (lstm) {
                    lb_lstm_forward(y, NULL, NULL, save, sc, n.x, n.W, n.R, n.bias, n.h0, n.c0, &n.s, NULL);
                    lb_lstm_backward(NULL, g.dW, g.dR, g.dbias, NULL, NULL, sc, n.r, save, n.x, n.W, n.R, n.h0, n.c0,
                                     &n.s, NULL, 0);
                } else {
                    lb_gru_forward(y, NULL, save, sc, n.x, n.W, n.R, n.bias, n.h0, &n.s, NULL);
                    lb_gru_backward(NULL, g.dW, g.dR, g.dbias, NULL, sc, n.r, save, n.x, n.W, n.R, n.h0, &n.s, NULL, 0);
                }
                outs o;
                grads gf;
                outs_make(&o, &n);
                grads_make(&gf, &n);
                forward_backward(&n, &o, &gf, 0);
                CHECK_MSG(same(y, o.y, sz_y(&n)) && same(g.dW, gf.dW, sz_W(&n)) && same(g.dR, gf.dR, sz_R(&n)) &&
                              same(g.dbias, gf.dbias, sz_b(&n)),
                          "%s bitrnn=%d: NULL optional outputs changed the results", cell, bit);
                free(y); free(save); free(sc);
                outs_free(&o);
                grads_free(&g); grads_free(&gf);
            }
            net_free(&n);
        }

    /* the graph sizes buffers for {rows, 1}: that must bound every {B, T} with B*T = rows */
    static const int sh[][3] = {{20, 20, 300}, {64, 100, 512}, {1, 7, 3}, {5, 1, 9}};
    for (int k = 0; k < 4; k++) {
        lb_rnn_shape s = {sh[k][0], sh[k][1], 8, sh[k][2], 0}, r = {sh[k][0] * sh[k][1], 1, 8, sh[k][2], 0};
        CHECK(lb_lstm_save_size(&r) >= lb_lstm_save_size(&s));
        CHECK(lb_lstm_scratch_size(&r) >= lb_lstm_scratch_size(&s));
        CHECK(lb_gru_save_size(&r) >= lb_gru_save_size(&s));
        CHECK(lb_gru_scratch_size(&r) >= lb_gru_scratch_size(&s));
    }
}

/* The cells' own sigmoid and tanh (vectorisable Cephes forms), seen through a GRU with
 * W = R = 0, h0 = 0 and z forced to 0 by its bias: y = n = tanh(Wbh) (sigmoid with bitrnn).
 * Relative error within 4e-7 (a few ulp) of libm in double (above 1e-30: the clamp of
 * e^v to |v| <= 87 stops sigmoid at 1.6e-38); NaN propagates. */
static void test_activations(void) {
    enum { N = 4200 };
    for (int bit = 0; bit <= 1; bit++) {
        net n;
        memset(&n, 0, sizeof n);
        n.s = (lb_rnn_shape){1, 1, 1, N, bit};
        n.x = falloc(1); n.x[0] = 0.0f;
        n.W = falloc(sz_W(&n)); memset(n.W, 0, sizeof(float) * (size_t)sz_W(&n));
        n.R = falloc(sz_R(&n)); memset(n.R, 0, sizeof(float) * (size_t)sz_R(&n));
        n.bias = falloc(sz_b(&n)); memset(n.bias, 0, sizeof(float) * (size_t)sz_b(&n));
        float *v = n.bias + 2 * N; /* Wbh */
        for (int j = 0; j < N; j++) n.bias[j] = -200.0f; /* Wbz: z = 0 */
        for (int j = 0; j < 4000; j++) v[j] = -20.0f + 0.01f * (float)j;
        const float extra[] = {1e-6f, -1e-6f, 1e-20f, 0.0f, 0.624f, 0.626f, -0.625f, 43.0f, -44.0f, 87.5f, -87.5f,
                               100.0f, -100.0f, 1e30f, -1e30f, INFINITY, -INFINITY};
        const int ne = (int)(sizeof extra / sizeof extra[0]);
        for (int j = 0; j < ne; j++) v[4000 + j] = extra[j];
        v[4000 + ne] = NAN;
        outs o;
        outs_make(&o, &n);
        forward(&n, &o, NULL);
        double worst = 0;
        int wj = 0;
        for (int j = 0; j < 4000 + ne; j++) {
            double ref = bit ? 1.0 / (1.0 + exp(-(double)v[j])) : tanh((double)v[j]);
            double e = fabs(o.y[j] - ref) / (fabs(ref) + 1e-30);
            if (!(e <= worst)) { worst = e; wj = j; }
        }
        CHECK_MSG(worst <= 4e-7, "%s(%.9g) = %.9g: relative error %.3g", bit ? "sigmoid" : "tanh", v[wj], o.y[wj],
                  worst);
        CHECK_MSG(isnan(o.y[4000 + ne]), "%s(NaN) = %g, expected NaN", bit ? "sigmoid" : "tanh", o.y[4000 + ne]);
        printf("%s: largest relative error %.3g\n", bit ? "sigmoid" : "tanh", worst);
        outs_free(&o);
        net_free(&n);
    }
    /* a NaN input reaches every later output of its sequence (the clamps must not hide it) */
    for (int lstm = 0; lstm <= 1; lstm++) {
        net n;
        net_make(&n, lstm, 2, 3, 4, 5, 0, 900);
        n.x[1 * 3 * 4 + 2] = NAN; /* sequence 1, step 0 */
        outs o;
        outs_make(&o, &n);
        forward(&n, &o, NULL);
        int ok = 1;
        for (int i = 0; i < 3 * 5; i++) ok &= isnan(o.y[15 + i]) && !isnan(o.y[i]);
        CHECK_MSG(ok, "%s: a NaN input does not give NaN outputs in its sequence only", lstm ? "lstm" : "gru");
        outs_free(&o);
        net_free(&n);
    }
}

/* ---------------------------------------------------------------- embedding */

static void test_embedding(void) {
    enum { V = 5, E = 3, N = 6 };
    const float table[V * E] = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42};
    const int32_t idx[N] = {2, 0, 2, 4, 2, 0};
    float out[N * E];
    lb_embedding_forward(out, idx, table, N, E);
    int ok = 1;
    for (int n = 0; n < N; n++)
        for (int e = 0; e < E; e++) ok &= out[n * E + e] == 10.0f * idx[n] + e;
    CHECK_MSG(ok, "embedding forward: rows are not table[idx]");

    float dout[N * E], dtable[V * E];
    for (int i = 0; i < N * E; i++) dout[i] = 0.5f * (float)(i + 1); /* 0.5, 1, 1.5, ...: sums exact */
    for (int i = 0; i < V * E; i++) dtable[i] = NAN;                  /* overwritten, not added to */
    lb_embedding_backward(dtable, dout, idx, N, V, E);
    /* row 0: n = 1, 5; row 2: n = 0, 2, 4; row 4: n = 3; rows 1, 3: unused */
    const float want[V * E] = {
        dout[3] + dout[15], dout[4] + dout[16], dout[5] + dout[17],
        0, 0, 0,
        dout[0] + dout[6] + dout[12], dout[1] + dout[7] + dout[13], dout[2] + dout[8] + dout[14],
        0, 0, 0,
        dout[9], dout[10], dout[11]};
    CHECK_MSG(memcmp(dtable, want, sizeof want) == 0, "embedding backward: wrong sums (row 0 = %g %g %g)",
              dtable[0], dtable[1], dtable[2]);
    CHECK(want[0] == 2.0f + 8.0f); /* the hand count itself: dout[3] = 2, dout[15] = 8 */

    /* large enough to run on a team: same bits on 1 and 2 threads (columns are split, not rows) */
    const int V2 = 50, E2 = 300, N2 = 400;
    int32_t *ix = malloc(sizeof(int32_t) * N2);
    float *g = falloc((int64_t)N2 * E2), *d1 = falloc((int64_t)V2 * E2), *d2 = falloc((int64_t)V2 * E2);
    uint64_t st = 5;
    for (int i = 0; i < N2; i++) ix[i] = (int32_t)(lbt_splitmix64(&st) % V2);
    fill(g, (int64_t)N2 * E2, 9, -1.0f, 1.0f);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    lb_embedding_backward(d1, g, ix, N2, V2, E2);
    omp_set_num_threads(2);
    lb_embedding_backward(d2, g, ix, N2, V2, E2);
    omp_set_num_threads(nt);
    CHECK_MSG(memcmp(d1, d2, sizeof(float) * (size_t)(V2 * E2)) == 0, "embedding backward depends on thread count");
    float *o2 = falloc((int64_t)N2 * E2);
    lb_embedding_forward(o2, ix, d1, N2, E2);
    ok = 1;
    for (int i = 0; i < N2; i++) ok &= same(o2 + (int64_t)i * E2, d1 + (int64_t)ix[i] * E2, E2);
    CHECK_MSG(ok, "embedding forward (large) rows are not table[idx]");
    free(ix); free(g); free(d1); free(d2); free(o2);
}

/* ---------------------------------------------------------------- golden (PyTorch) */

static lb_st_file gold;
static double gold_worst_abs = 0; /* largest |lowbit - PyTorch|, for the summary line */

/* copy of a float32 tensor of the golden file (the data need not be aligned); NULL with a
 * failed check when absent or of another size */
static float *gold_get(const char *cell, const char *what, int64_t n) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", cell, what);
    const lb_st_tensor *t = lb_st_find(&gold, name);
    CHECK_MSG(t != NULL, "golden file has no tensor '%s'", name);
    if (!t) return NULL;
    int64_t have = (int64_t)(t->end - t->begin) / 4;
    CHECK_MSG(!strcmp(t->dtype, "F32") && have == n, "'%s': %s with %lld elements, expected F32 with %lld", name,
              t->dtype, (long long)have, (long long)n);
    if (strcmp(t->dtype, "F32") || have != n) return NULL;
    float *v = falloc(n);
    memcpy(v, gold.data + t->begin, sizeof(float) * (size_t)n);
    return v;
}

static void gold_compare(const char *cell, const char *what, const float *got, int64_t n) {
    float *ref = gold_get(cell, what, n);
    if (!ref) return;
    double worst = 0;
    int64_t wk = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - ref[i]) / (GOLD_ATOL + GOLD_RTOL * fabs(ref[i]));
        gold_worst_abs = fmax(gold_worst_abs, fabs((double)got[i] - ref[i]));
        if (!(r <= worst)) { worst = r; wk = i; }
    }
    CHECK_MSG(worst <= 1.0, "golden %s.%s[%lld]: lowbit %.8g, PyTorch %.8g", cell, what, (long long)wk, got[wk],
              ref[wk]);
    free(ref);
}

static void test_golden(void) {
    const char *path = LB_SOURCE_DIR "/tests/data/rnn_golden.safetensors";
    CHECK_OK(lb_st_read(path, &gold));
    if (!gold.tensors && !gold.n) return;
    for (int lstm = 0; lstm <= 1; lstm++) {
        const char *cell = lstm ? "lstm" : "gru";
        net n;
        memset(&n, 0, sizeof n);
        n.lstm = lstm;
        n.s = (lb_rnn_shape){2, 3, 4, 5, 0};
        n.x = gold_get(cell, "x", sz_x(&n));
        n.W = gold_get(cell, "W", sz_W(&n));
        n.R = gold_get(cell, "R", sz_R(&n));
        n.bias = gold_get(cell, "bias", sz_b(&n));
        n.h0 = gold_get(cell, "h0", sz_h(&n));
        if (lstm) n.c0 = gold_get(cell, "c0", sz_h(&n));
        n.r = gold_get(cell, "r", sz_y(&n));
        if (n.x && n.W && n.R && n.bias && n.h0 && n.r && (!lstm || n.c0)) {
            outs o;
            grads g;
            outs_make(&o, &n);
            grads_make(&g, &n);
            forward_backward(&n, &o, &g, 0);
            gold_compare(cell, "y", o.y, sz_y(&n));
            gold_compare(cell, "hT", o.hT, sz_h(&n));
            gold_compare(cell, "dx", g.dx, sz_x(&n));
            gold_compare(cell, "dW", g.dW, sz_W(&n));
            gold_compare(cell, "dR", g.dR, sz_R(&n));
            gold_compare(cell, "dbias", g.dbias, sz_b(&n));
            gold_compare(cell, "dh0", g.dh0, sz_h(&n));
            if (lstm) {
                gold_compare(cell, "cT", o.cT, sz_h(&n));
                gold_compare(cell, "dc0", g.dc0, sz_h(&n));
            }
            outs_free(&o);
            grads_free(&g);
        }
        net_free(&n);
    }
    lb_st_free(&gold);
    printf("golden: largest |lowbit - PyTorch| %.3g\n", gold_worst_abs);
}

/* ---------------------------------------------------------------- threads */

/* every output and gradient of one forward + backward, concatenated */
static float *run_all(const net *n, int64_t *len) {
    outs o;
    grads g;
    outs_make(&o, n);
    grads_make(&g, n);
    forward_backward(n, &o, &g, 0);
    const float *part[] = {o.y, o.hT, o.cT, g.dx, g.dW, g.dR, g.dbias, g.dh0, g.dc0};
    const int64_t psz[] = {sz_y(n), sz_h(n), n->lstm ? sz_h(n) : 0, sz_x(n), sz_W(n), sz_R(n), sz_b(n), sz_h(n),
                           n->lstm ? sz_h(n) : 0};
    int64_t tot = 0;
    for (int k = 0; k < 9; k++) tot += psz[k];
    float *all = falloc(tot), *p = all;
    for (int k = 0; k < 9; k++) {
        if (psz[k]) memcpy(p, part[k], sizeof(float) * (size_t)psz[k]);
        p += psz[k];
    }
    outs_free(&o);
    grads_free(&g);
    *len = tot;
    return all;
}

static void test_threads(void) {
    const int nt = omp_get_max_threads();
    for (int lstm = 0; lstm <= 1; lstm++)
        for (int hooked = 0; hooked <= 1; hooked++) {
            /* B*H = 10240: the elementwise passes run on a team, the GEMMs are OpenBLAS-threaded */
            net n;
            net_make(&n, lstm, 64, 4, 48, 160, 0, 500 + (uint64_t)lstm);
            hook_ctx hc = {0, 0, 0, sz_h(&n)};
            lb_rnn_hook sm = {&hc, smooth_fwd, smooth_bwd};
            if (hooked) n.hook = &sm;
            int64_t len;
            omp_set_num_threads(1);
            float *a = run_all(&n, &len);
            omp_set_num_threads(2);
            float *b = run_all(&n, &len), *c = run_all(&n, &len);
            omp_set_num_threads(nt);
            CHECK_MSG(memcmp(b, c, sizeof(float) * (size_t)len) == 0, "%s hook=%d: two runs on 2 threads differ",
                      lstm ? "lstm" : "gru", hooked);
            double mx = 0, d = max_abs_diff(a, b, len);
            for (int64_t i = 0; i < len; i++) mx = fmax(mx, fabs(a[i]));
            CHECK_MSG(d <= 1e-5 * mx, "%s hook=%d: 1 and 2 threads differ by %g (largest value %g)",
                      lstm ? "lstm" : "gru", hooked, d, mx);
            printf("%s hook=%d: 1 vs 2 threads: %s (max difference %.3g)\n", lstm ? "lstm" : "gru", hooked,
                   memcmp(a, b, sizeof(float) * (size_t)len) ? "differ by rounding" : "bit-identical", d);
            free(a); free(b); free(c);
            net_free(&n);
        }
}

int main(void) {
    test_activations();
    test_embedding();
    test_fd();
    test_properties();
    test_golden();
    test_threads();
    return lbt_report("test_rnn");
}
