#include "ops/reduce.h"

#include "lb_internal.h"

#include <omp.h>

/* Columns go in chunks of 16 (one AVX-512 vector of floats); rows in blocks of 64 whose
 * float partial sums are added to double accumulators, so long columns keep double
 * accuracy while the inner loop stays in float vectors. */
enum { W = 16, ROWS = 64 };

static inline __attribute__((always_inline)) void chunk(double *s1, double *s2, const float *a, const float *b, const float *sub, const float *mask,
                         int64_t R, int C, int c0, int n, int want2, int masked) {
    double d1[W] = {0}, d2[W] = {0};
    float sb[W] = {0};
    for (int j = 0; j < n; j++) sb[j] = sub ? sub[c0 + j] : 0.0f;
    for (int64_t r0 = 0; r0 < R; r0 += ROWS) {
        float f1[W] = {0}, f2[W] = {0};
        int64_t r1 = r0 + ROWS < R ? r0 + ROWS : R;
        for (int64_t r = r0; r < r1; r++) {
            const float *ar = a + r * C + c0;
            if (n == W) {
                for (int j = 0; j < W; j++) {
                    float g = masked ? (mask[r * C + c0 + j] > 0.0f ? ar[j] : 0.0f) : ar[j];
                    f1[j] += g;
                    if (want2) f2[j] += g * (b[r * C + c0 + j] - sb[j]);
                }
            } else {
                for (int j = 0; j < n; j++) {
                    float g = masked ? (mask[r * C + c0 + j] > 0.0f ? ar[j] : 0.0f) : ar[j];
                    f1[j] += g;
                    if (want2) f2[j] += g * (b[r * C + c0 + j] - sb[j]);
                }
            }
        }
        for (int j = 0; j < W; j++) { d1[j] += f1[j]; d2[j] += f2[j]; }
    }
    for (int j = 0; j < n; j++) {
        s1[j] = d1[j];
        if (want2) s2[j] = d2[j];
    }
}

void lb_colsum_ex(double *s1, double *s2, const float *a, const float *b, const float *sub, const float *mask,
                  int64_t R, int C) {
    int nchunks = (C + W - 1) / W;
    /* columns only, never rows: a row split would make the sums depend on the thread count */
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < nchunks; k++) {
        int c0 = k * W, n = C - c0 < W ? C - c0 : W;
        double *o2 = s2 ? s2 + c0 : NULL;
        if (mask) {
            if (s2) chunk(s1 + c0, o2, a, b, sub, mask, R, C, c0, n, 1, 1);
            else chunk(s1 + c0, o2, a, b, sub, mask, R, C, c0, n, 0, 1);
        } else {
            if (s2) chunk(s1 + c0, o2, a, b, sub, NULL, R, C, c0, n, 1, 0);
            else chunk(s1 + c0, o2, a, b, sub, NULL, R, C, c0, n, 0, 0);
        }
    }
}

void lb_colsum(float *s, const float *a, int64_t R, int C) {
    int nchunks = (C + W - 1) / W;
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < nchunks; k++) {
        double tmp[W];
        int c0 = k * W, n = C - c0 < W ? C - c0 : W;
        chunk(tmp, NULL, a, NULL, NULL, NULL, R, C, c0, n, 0, 0);
        for (int j = 0; j < n; j++) s[c0 + j] = (float)tmp[j];
    }
}
