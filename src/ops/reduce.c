#include "ops/reduce.h"

#include "lb_internal.h"

#include <omp.h>

enum { CHUNK_MAX = 64 };

/* Chunk width: enough chunks for every thread when C is small, at most CHUNK_MAX so the
 * accumulators stay in registers/L1. */
static int chunk_width(int C) {
    int t = omp_get_max_threads();
    int w = (C + t - 1) / t;
    w = (w + 7) / 8 * 8;
    return w < 8 ? 8 : w > CHUNK_MAX ? CHUNK_MAX : w;
}

/* sums of columns [c0, c1) into s1[0..c1-c0) (and s2) */
static void colsum_chunk(double *s1, double *s2, const float *a, const float *b, int64_t R, int C, int c0,
                         int c1) {
    double acc1[CHUNK_MAX] = {0}, acc2[CHUNK_MAX] = {0};
    int w = c1 - c0;
    for (int64_t r = 0; r < R; r++) {
        const float *ar = a + r * C + c0;
        for (int j = 0; j < w; j++) acc1[j] += ar[j];
        if (s2) {
            const float *br = b + r * C + c0;
            for (int j = 0; j < w; j++) acc2[j] += (double)ar[j] * br[j];
        }
    }
    for (int j = 0; j < w; j++) s1[j] = acc1[j];
    if (s2)
        for (int j = 0; j < w; j++) s2[j] = acc2[j];
}

void lb_colsum2(double *s1, double *s2, const float *a, const float *b, int64_t R, int C) {
    int w = chunk_width(C), nchunks = (C + w - 1) / w;
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < nchunks; k++) {
        int c0 = k * w;
        colsum_chunk(s1 + c0, s2 ? s2 + c0 : NULL, a, b, R, C, c0, LB_MIN(C, c0 + w));
    }
}

void lb_colsum(float *s, const float *a, int64_t R, int C) {
    int w = chunk_width(C), nchunks = (C + w - 1) / w;
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < nchunks; k++) {
        double tmp[CHUNK_MAX];
        int c0 = k * w, c1 = LB_MIN(C, (k + 1) * w);
        colsum_chunk(tmp, NULL, a, NULL, R, C, c0, c1);
        for (int c = c0; c < c1; c++) s[c] = (float)tmp[c - c0];
    }
}
