/* Softmax cross-entropy, the loss of every classifier and language model. */
#include "lb_internal.h"
#include "ops/ops.h"
#include "ops/vmath.h"

#include <math.h>
#include <omp.h>

enum { MAX_THREADS = 256 };

/* The exponentials are computed once, vectorised (lb_vexpf, about 2 ulp), into the
 * gradient row, and summed in float: for a 10,000-word vocabulary this was a fifth of a
 * language model's training step with libm's double exp and expf each called per logit. */
double lb_softmax_xent(float *dlogits, int64_t *correct, const float *logits, const int32_t *labels, int B, int N) {
    /* per-thread partial sums added in thread order: deterministic for a thread count */
    double part[MAX_THREADS] = {0};
    int64_t hits[MAX_THREADS] = {0};
    int nt = LB_MIN(omp_get_max_threads(), MAX_THREADS);
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        int64_t lo, hi;
        lb_split_range(B, omp_get_num_threads(), t, &lo, &hi);
        for (int64_t b = lo; b < hi; b++) {
            const float *x = logits + b * N;
            int am = 0;
            for (int n = 1; n < N; n++)
                if (x[n] > x[am]) am = n;
            const float mx = x[am];
            float sum = 0;
            if (dlogits) {
                float *d = dlogits + b * N;
                #pragma omp simd reduction(+ : sum)
                for (int n = 0; n < N; n++) {
                    d[n] = lb_vexpf(x[n] - mx);
                    sum += d[n];
                }
                const float sc = 1.0f / (float)B, f = sc / sum;
                #pragma omp simd
                for (int n = 0; n < N; n++) d[n] *= f;
                d[labels[b]] -= sc;
            } else {
                #pragma omp simd reduction(+ : sum)
                for (int n = 0; n < N; n++) sum += lb_vexpf(x[n] - mx);
            }
            int y = labels[b];
            part[t] += log((double)sum) - (double)(x[y] - mx);
            hits[t] += am == y;
        }
    }
    double total = 0;
    int64_t h = 0;
    for (int t = 0; t < nt; t++) { total += part[t]; h += hits[t]; }
    if (correct) *correct = h;
    return total;
}
