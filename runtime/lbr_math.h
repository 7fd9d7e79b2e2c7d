/* lbr_math.h - the float functions of the recurrent cells, defined once for training
 * (src/ops/rnn.c, and lb_vexpf of src/ops/vmath.h) and the runtime (lbr.c's LSTM and GRU),
 * so the packed model computes its gates with the same bits as `lowbit eval`. C11, no
 * libm: libm's expf and tanhf are scalar calls that GCC does not vectorise without
 * -ffast-math, and their results differ between C libraries.
 *
 * Both sides compile with -ffp-contract=off, so a formula here gives one result whatever
 * loop it is inlined into (scalar or vectorised). */
#ifndef LBR_MATH_H
#define LBR_MATH_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define LBR_AI inline __attribute__((always_inline))
#else
#define LBR_AI inline
#endif

/* exp(v), v clamped to [-87, 87] so 2^n stays a normal float: Cody-Waite reduction
 * v = n ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial; about 2 ulp. Adding 1.5*2^23
 * rounds v/ln2 to the integer n and leaves n in the low mantissa bits, from which 2^n is
 * built in unsigned arithmetic: no float-to-int conversion, which would be undefined for
 * NaN. The clamps are written so that NaN fails both comparisons and stays NaN: a diverged
 * network must show NaN, not saturated gates. (Ternaries, not fminf/fmaxf, whose NaN rules
 * keep GCC from vectorising without -ffast-math.) */
static LBR_AI float lbr_expf(float v) {
    v = v < -87.0f ? -87.0f : v;
    v = v > 87.0f ? 87.0f : v;
    const float t = v * 1.44269504f + 12582912.0f;
    const float n = t - 12582912.0f;
    float r = (v - n * 0.693359375f) + n * 2.12194440e-4f; /* ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    uint32_t u;
    memcpy(&u, &t, 4);
    u = (u - 0x4B400000u + 127u) << 23; /* 2^n */
    float scale;
    memcpy(&scale, &u, 4);
    return (p * r * r + r + 1.0f) * scale;
}

/* 1/(1+e^-x): no cancellation for either sign, and the clamp in lbr_expf keeps e^-x finite */
static LBR_AI float lbr_sigmoidf(float x) { return 1.0f / (1.0f + lbr_expf(-x)); }

/* Cephes tanhf: an odd polynomial below 0.625 (where 1 - 2/(e^2x+1) would lose relative
 * precision to cancellation), the exponential form above; both are computed and one
 * selected, so a loop over it stays branch-free. */
static LBR_AI float lbr_tanhf(float x) {
    float a = x < 0.0f ? -x : x;
    float big = 1.0f - 2.0f / (lbr_expf(a + a) + 1.0f);
    float s = a * a;
    float p = -5.70498872745e-3f;
    p = p * s + 2.06390887954e-2f;
    p = p * s - 5.37397155531e-2f;
    p = p * s + 1.33314422036e-1f;
    p = p * s - 3.33332819422e-1f;
    float small = p * s * a + a;
    float t = a < 0.625f ? small : big;
    return x < 0.0f ? -t : t;
}

/* The candidate's and the cell output's squashing function: tanh, or the sigmoid of a
 * Bit-RNN cell (bit != 0), whose hidden state then lies in [0, 1]. */
static LBR_AI float lbr_cell_act(float x, int bit) { return bit ? lbr_sigmoidf(x) : lbr_tanhf(x); }

#endif
