/* lbr_quant.h - the value of each quantization code: the one definition shared by
 * training (src/quant/, whose hard forward is decode(encode(x))) and the packed-model
 * runtime. Header-only, C11, no dependency beyond <math.h>'s rintf/ldexpf, so the
 * runtime stays the bottom floor (DESIGN.md section 1).
 *
 * Conventions: K = 2^bits levels; codes are non-negative integers in [0, K) unless a
 * family says otherwise; rounding is half-to-even (rintf in the default mode). */
#ifndef LBR_QUANT_H
#define LBR_QUANT_H

#include <math.h>
#include <stdint.h>

/* lo <= hi. Two selects rather than one nested one: the same value for every x (NaN passes
 * through), and GCC if-converts and vectorises this form, not the nested one. */
static inline float lbr_clampf(float x, float lo, float hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* Unsigned activation code on [0, c]: round(clip(x, 0, c) * (K-1) / c). With c = 1
 * this is DoReFa's activation quantizer (METHODS.md section 0). The value is
 * code * c / (K-1), computed as c * code / (K-1) everywhere so the float result is the
 * same bit for bit in training and deployment. */
static inline int32_t lbr_act_code(float x, int K, float c) {
    return (int32_t)rintf(lbr_clampf(x, 0.0f, c) * (float)(K - 1) / c);
}
static inline float lbr_act_value(int32_t code, int K, float c) { return c * (float)code / (float)(K - 1); }

/* Power-of-two activation grid (METHODS.md section 5): step 2^-bits on [0, 1), so an
 * activation code times a power-of-two weight is a shift: code = clip(round(x 2^b),
 * 0, 2^b - 1), value = code 2^-b. */
static inline int32_t lbr_act_pot_code(float x, int bits) {
    /* scaling by a power of two is exact: the same as ldexpf, and vectorisable */
    return (int32_t)lbr_clampf(rintf(x * (float)(1 << bits)), 0.0f, (float)((1 << bits) - 1));
}
static inline float lbr_act_pot_value(int32_t code, int bits) { return (float)code * (1.0f / (float)(1 << bits)); }

/* Affine symmetric levels: code j in [0, K) has value s * (2j - (K-1)) / (K-1), i.e.
 * K evenly spaced levels over [-s, s]. DoReFa weights (s = 1) and balanced
 * quantization (s from the weights) use it; a dot product with these levels is affine
 * in the codes: sum L_j a = s/(K-1) * (2 sum j a - (K-1) sum a). */
static inline float lbr_affine_value(int32_t j, int K, float s) {
    return s * (float)(2 * j - (K - 1)) / (float)(K - 1);
}

/* Symmetric integer grid (max-abs uniform): code q in [-(qmax), qmax], value s * q. */
static inline int32_t lbr_sym_code(float x, float inv_s, int32_t qmax) {
    float r = rintf(x * inv_s);
    return (int32_t)lbr_clampf(r, (float)-qmax, (float)qmax);
}
static inline float lbr_sym_value(int32_t q, float s) { return s * (float)q; }

/* Codebook: value = cb[j] (UNIQ's k-quantile levels, Quantization Networks' set
 * Y scaled by alpha). */
static inline float lbr_codebook_value(int32_t j, const float *cb) { return cb[j]; }

/* SYQ: binary codes {0, 1} -> {-a, +a}; ternary codes {0, 1, 2} -> {-a, 0, +a}. */
static inline float lbr_syq_value(int32_t j, int ternary, float a) {
    return ternary ? a * (float)(j - 1) : (j ? a : -a);
}

/* Power of two: code 0 is zero; otherwise bit 0 is the sign and the rest is k >= 1 with
 * value (+-) s * 2^(e_min + k - 1); the runtime turns s * 2^e * a into a shift of a. */
static inline float lbr_pot_value(int32_t code, float s, int e_min) {
    if (code == 0) return 0.0f;
    float v = ldexpf(s, e_min + (code >> 1) - 1);
    return (code & 1) ? -v : v;
}

/* Number of thresholds t[0] < ... < t[n-1] with t[i] <= x: the code of a monotone step
 * quantizer given by its decision thresholds (balanced bins, Quantization Networks'
 * steps at evaluation). A binary search by descending powers of two (the count grows by
 * `step` while t[count + step - 1] <= x), so n up to 255 costs 8 comparisons, and without
 * branches: a data-dependent branch here mispredicted half the time (measured: the
 * runtime's 8-bit activations). NaN compares false everywhere: code 0. */
static inline int32_t lbr_step_code(float x, const float *t, int n) {
    int step = 1, c = 0;
    while (step <= n >> 1) step <<= 1;  /* the largest power of two <= n (n >= 1) */
    for (; n > 0 && step > 0; step >>= 1) {
        const int p = c + step;       /* take t[p - 1] into the count if it is <= x */
        c = p <= n && t[p <= n ? p - 1 : 0] <= x ? p : c;
    }
    return c;
}

#endif
