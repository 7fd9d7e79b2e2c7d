/* BatchNormalization over the channel (last) axis of NHWC rows, PyTorch semantics:
 * biased variance to normalise, unbiased variance in the running estimate. A following
 * Relu can be fused (the graph does it when the Relu is the only consumer), which saves
 * a read and a write of the tensor in each direction. */
#include "lb_internal.h"
#include "ops/ops.h"
#include "ops/reduce.h"

#include <math.h>

void lb_batchnorm_forward(float *out, float *mean, float *invstd, const float *in, const float *gamma,
                          const float *beta, float *run_mean, float *run_var, int64_t R, int C, float eps,
                          float momentum, int training, int relu) {
    float scale[C], shift[C];
    if (training) {
        double s1[C], s2[C];
        lb_colsum2(s1, s2, in, in, R, C);
        for (int c = 0; c < C; c++) {
            double mu = s1[c] / (double)R;
            double var = s2[c] / (double)R - mu * mu; /* double sums: no cancellation at these sizes */
            if (var < 0) var = 0;
            mean[c] = (float)mu;
            invstd[c] = (float)(1.0 / sqrt(var + eps));
            double unbiased = R > 1 ? var * (double)R / (double)(R - 1) : var;
            run_mean[c] = (float)((1.0 - momentum) * run_mean[c] + momentum * mu);
            run_var[c] = (float)((1.0 - momentum) * run_var[c] + momentum * unbiased);
            scale[c] = gamma[c] * invstd[c];
            shift[c] = beta[c] - mean[c] * scale[c];
        }
    } else {
        for (int c = 0; c < C; c++) {
            float is = 1.0f / sqrtf(run_var[c] + eps);
            scale[c] = gamma[c] * is;
            shift[c] = beta[c] - run_mean[c] * scale[c];
        }
    }
    const float lo = relu ? 0.0f : -INFINITY;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *x = in + r * C;
        float *y = out + r * C;
        for (int c = 0; c < C; c++) {
            float v = x[c] * scale[c] + shift[c];
            y[c] = v > lo ? v : lo;
        }
    }
}

void lb_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                           const float *out, const float *mean, const float *invstd, const float *gamma, int64_t R,
                           int C, int relu, int acc) {
    double sg[C], sgx[C];
    /* g = dout masked by the Relu; sums of g and g*(x - mean) */
    lb_colsum_ex(sg, sgx, dout, in, mean, relu ? out : NULL, R, C);
    float k[C], mb[C], mg[C];
    for (int c = 0; c < C; c++) {
        double sdx = sgx[c] * invstd[c]; /* sum of g * xhat */
        dbeta[c] = (float)sg[c];
        dgamma[c] = (float)sdx;
        k[c] = gamma[c] * invstd[c];
        mb[c] = (float)(sg[c] / (double)R);
        mg[c] = (float)(sdx / (double)R) * invstd[c]; /* folds xhat's invstd in: applied to (x - mean) */
    }
    if (!din) return;
    /* dx = gamma*invstd * (g - mean(g) - xhat*mean(g*xhat)) */
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *g = dout + r * C, *x = in + r * C, *y = out + r * C;
        float *dx = din + r * C;
        for (int c = 0; c < C; c++) {
            float gc = (!relu || y[c] > 0.0f) ? g[c] : 0.0f;
            float v = k[c] * (gc - mb[c] - (x[c] - mean[c]) * mg[c]);
            dx[c] = acc ? dx[c] + v : v;
        }
    }
}
