/* vmath.h - float math that GCC vectorises (libm's expf is a scalar call it does not
 * vectorise without -ffast-math), shared by the LSTM/GRU cells and the softmax. */
#ifndef LB_VMATH_H
#define LB_VMATH_H

#include <stdint.h>

/* exp(v), v clamped to [-87, 87] so 2^n stays a normal float: Cody-Waite reduction
 * v = n ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial; about 2 ulp. Adding 1.5*2^23
 * rounds v/ln2 to the integer n and leaves n in the low mantissa bits, from which 2^n is
 * built in unsigned arithmetic: no float-to-int conversion, which would be undefined for
 * NaN. The clamps are written so that NaN fails both comparisons and stays NaN: a diverged
 * network must show NaN, not saturated gates. (Ternaries, not fminf/fmaxf, whose NaN rules
 * keep GCC from vectorising without -ffast-math.) */
static inline __attribute__((always_inline)) float lb_vexpf(float v) {
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
    union { uint32_t u; float f; } scale = {.f = t};
    scale.u = (scale.u - 0x4B400000u + 127u) << 23; /* 2^n */
    return (p * r * r + r + 1.0f) * scale.f;
}

#endif /* LB_VMATH_H */
