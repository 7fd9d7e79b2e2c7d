/* Direct convolution kernels (ops/conv_direct.c) against the im2col + GEMM path of
 * conv.c and against their scalar references, over many shapes: C in {1,3,16,32,64},
 * OC in {16,32,64}, kernel 1/3/5, stride 1/2, pad 0/1/2, H and W in 1..29, batch 1..5,
 * backward-data with acc 0 and 1, with and without bias.
 *
 * Float sums run in different orders (and fused vs unfused multiply-add), so results
 * agree to rounding: |got - want| <= 1e-4 * max|want| over the tensor (+1e-6). Also:
 * every kernel run twice gives bit-identical results, forward and backward-data do not
 * depend on the thread count, and no kernel writes past its scratch. */
#include "lb_internal.h"
#include "ops/conv_direct.h"
#include "ops/ops.h"
#include "test_util.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>

#define GUARD 256
static const uint32_t CANARY = 0x7fc0dead; /* a NaN pattern no kernel writes */

static float *alloc_f(int64_t n) { return lb_alloc(sizeof(float) * (size_t)(n > 0 ? n : 1)); }

/* scratch with a canary region after it */
static float *alloc_scratch(int64_t n) {
    float *p = alloc_f(n + GUARD);
    for (int i = 0; i < GUARD; i++) memcpy(p + n + i, &CANARY, 4);
    return p;
}
static int guard_ok(const float *p, int64_t n) {
    for (int i = 0; i < GUARD; i++)
        if (memcmp(p + n + i, &CANARY, 4)) return 0;
    return 1;
}

static double max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}
/* max |got - want| relative to max |want|; NaN if any element is not finite */
static double rel_err(const float *got, const float *want, int64_t n) {
    double e = 0, m = max_abs(want, n);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return NAN;
        e = fmax(e, fabs((double)got[i] - want[i]));
    }
    return e / (m + 1e-2);
}

#define TOL 1e-4
#define CHECK_REL(got, want, n, what)                                                                      \
    do {                                                                                                   \
        double _e = rel_err(got, want, n);                                                                 \
        CHECK_MSG(_e <= TOL, "%s: B%d %dx%dx%d -> %dx%dx%d k%dx%d s%d p%d acc%d: relative error %.3g", what, \
                  s.B, s.H, s.W, s.C, s.OH, s.OW, s.OC, s.KH, s.KW, s.SH, s.PH, acc, _e);                      \
    } while (0)

static uint64_t rng_state = 12345;
static int rnd(int n) { /* 0..n-1 */
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int)((rng_state >> 33) % (uint64_t)n);
}

static int shapes_run = 0;

static void check_shape(int B, int H, int W, int C, int OC, int K, int S, int P, int acc, int with_bias) {
    lb_conv_shape s = {.B = B, .H = H, .W = W, .C = C, .OC = OC, .KH = K, .KW = K, .SH = S, .SW = S,
                       .PH = P, .PW = P, .G = 1};
    if (H + 2 * P < K || W + 2 * P < K) return;
    s.OH = (H + 2 * P - K) / S + 1;
    s.OW = (W + 2 * P - K) / S + 1;
    CHECK(lb_conv2d_direct_supported(&s));
    shapes_run++;
    const int64_t nin = (int64_t)B * H * W * C, nout = (int64_t)B * s.OH * s.OW * OC, nw = (int64_t)OC * K * K * C;
    const int64_t ncol = LB_MAX(lb_conv2d_col_size(&s), nin), nscr = lb_conv2d_direct_scratch_size(&s);
    float *in = alloc_f(nin), *wk = alloc_f(nw), *bias = alloc_f(OC), *dout = alloc_f(nout), *din0 = alloc_f(nin);
    float *col = alloc_f(ncol), *dcol = alloc_f(ncol), *scr = alloc_scratch(nscr);
    float *o_ref = alloc_f(nout), *o_im = alloc_f(nout), *o_d = alloc_f(nout), *o_d2 = alloc_f(nout);
    float *di_ref = alloc_f(nin), *di_im = alloc_f(nin), *di_d = alloc_f(nin), *di_d2 = alloc_f(nin);
    float *dw_ref = alloc_f(nw), *dw_im = alloc_f(nw), *dw_d = alloc_f(nw), *dw_d2 = alloc_f(nw);
    float *db_ref = alloc_f(OC), *db_im = alloc_f(OC), *db_d = alloc_f(OC);
    uint64_t key = (uint64_t)shapes_run;
    lb_rng_uniform(in, nin, -1, 1, key, 1);
    lb_rng_uniform(wk, nw, -1, 1, key, 2);
    lb_rng_uniform(bias, OC, -1, 1, key, 3);
    lb_rng_uniform(dout, nout, -1, 1, key, 4);
    lb_rng_uniform(din0, nin, -1, 1, key, 5);
    const float *b = with_bias ? bias : NULL;

    /* forward */
    lb_conv2d_forward(o_im, col, in, wk, b, &s);
    lb_conv2d_direct_forward_ref(o_ref, in, wk, b, &s);
    lb_conv2d_direct_forward(o_d, in, wk, b, &s, scr);
    lb_conv2d_direct_forward(o_d2, in, wk, b, &s, scr);
    CHECK_REL(o_d, o_im, nout, "forward vs im2col");
    CHECK_REL(o_d, o_ref, nout, "forward vs reference");
    CHECK_REL(o_ref, o_im, nout, "forward reference vs im2col");
    CHECK_MSG(!memcmp(o_d, o_d2, sizeof(float) * nout), "forward not deterministic");

    /* backward: im2col path (dwk, dbias and din at once) */
    memcpy(di_im, din0, sizeof(float) * nin);
    lb_conv2d_backward(di_im, dw_im, db_im, dcol, dout, col, in, wk, &s, acc);
    memcpy(di_ref, din0, sizeof(float) * nin);
    lb_conv2d_direct_backward_data_ref(di_ref, dout, wk, &s, acc);
    memcpy(di_d, din0, sizeof(float) * nin);
    lb_conv2d_direct_backward_data(di_d, dout, wk, &s, acc, scr);
    memcpy(di_d2, din0, sizeof(float) * nin);
    lb_conv2d_direct_backward_data(di_d2, dout, wk, &s, acc, scr);
    CHECK_REL(di_d, di_im, nin, "backward-data vs im2col");
    CHECK_REL(di_d, di_ref, nin, "backward-data vs reference");
    CHECK_REL(di_ref, di_im, nin, "backward-data reference vs im2col");
    CHECK_MSG(!memcmp(di_d, di_d2, sizeof(float) * nin), "backward-data not deterministic");

    lb_conv2d_direct_backward_weights_ref(dw_ref, db_ref, dout, in, &s);
    lb_conv2d_direct_backward_weights(dw_d, with_bias ? db_d : NULL, dout, in, &s, scr);
    lb_conv2d_direct_backward_weights(dw_d2, NULL, dout, in, &s, scr);
    CHECK_REL(dw_d, dw_im, nw, "backward-weights vs im2col");
    CHECK_REL(dw_d, dw_ref, nw, "backward-weights vs reference");
    CHECK_REL(dw_ref, dw_im, nw, "backward-weights reference vs im2col");
    if (with_bias) CHECK_REL(db_d, db_im, OC, "bias gradient vs im2col");
    CHECK_REL(db_ref, db_im, OC, "bias gradient reference vs im2col");
    CHECK_MSG(!memcmp(dw_d, dw_d2, sizeof(float) * nw), "backward-weights not deterministic");

    /* forward and backward-data compute each element in one thread: same bits with 1 thread */
    if (shapes_run % 7 == 0) {
        lb_set_threads(1);
        lb_conv2d_direct_forward(o_d2, in, wk, b, &s, scr);
        memcpy(di_d2, din0, sizeof(float) * nin);
        lb_conv2d_direct_backward_data(di_d2, dout, wk, &s, acc, scr);
        lb_set_threads(2);
        CHECK_MSG(!memcmp(o_d, o_d2, sizeof(float) * nout), "forward depends on the thread count");
        CHECK_MSG(!memcmp(di_d, di_d2, sizeof(float) * nin), "backward-data depends on the thread count");
    }
    CHECK_MSG(guard_ok(scr, nscr), "scratch overrun (%lld floats)", (long long)nscr);

    float *all[] = {in, wk, bias, dout, din0, col, dcol, scr, o_ref, o_im, o_d, o_d2, di_ref, di_im, di_d, di_d2,
                    dw_ref, dw_im, dw_d, dw_d2, db_ref, db_im, db_d};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) lb_free(all[i]);
}

int main(void) {
    lb_set_threads(2);
    const int Cs[] = {1, 3, 16, 32, 64}, OCs[] = {16, 32, 64}, Ks[] = {1, 3, 5};
    for (int ci = 0; ci < 5; ci++)
        for (int oi = 0; oi < 3; oi++)
            for (int ki = 0; ki < 3; ki++)
                for (int S = 1; S <= 2; S++)
                    for (int P = 0; P <= 2; P++) {
                        /* one random size, plus an odd small one */
                        int H = 1 + rnd(29), W = 1 + rnd(29), B = 1 + rnd(5);
                        check_shape(B, H, W, Cs[ci], OCs[oi], Ks[ki], S, P, rnd(2), rnd(2));
                        check_shape(1 + rnd(3), 1 + 2 * rnd(4), 1 + 2 * rnd(4), Cs[ci], OCs[oi], Ks[ki], S, P, rnd(2),
                                    rnd(2));
                    }
    /* the fmnist-cnn layers at a small batch, rectangular and 7x7 kernels */
    check_shape(3, 28, 28, 1, 32, 3, 1, 1, 0, 0);
    check_shape(3, 28, 28, 32, 32, 3, 1, 1, 1, 0);
    check_shape(3, 14, 14, 32, 64, 3, 1, 1, 0, 1);
    check_shape(3, 14, 14, 64, 64, 3, 1, 1, 1, 1);
    check_shape(2, 29, 23, 3, 64, 7, 2, 3, 0, 1);
    check_shape(2, 9, 12, 16, 48, 7, 1, 2, 1, 0);
    lb_conv_shape bad = {.B = 1, .H = 8, .W = 8, .C = 4, .OH = 8, .OW = 8, .OC = 24, .KH = 3, .KW = 3, .SH = 1,
                         .SW = 1, .PH = 1, .PW = 1, .G = 1};
    CHECK(!lb_conv2d_direct_supported(&bad)); /* OC not a multiple of 16 */
    bad.OC = 32;
    bad.G = 2;
    CHECK(!lb_conv2d_direct_supported(&bad));
    bad.G = 1;
    bad.SH = 3;
    CHECK(!lb_conv2d_direct_supported(&bad));
    printf("%d shapes\n", shapes_run);
    return lbt_report("test_conv_direct");
}
