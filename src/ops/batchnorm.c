/* BatchNormalization over the channel (last) axis of NHWC rows, PyTorch semantics:
 * biased variance to normalise, unbiased variance in the running estimate. */
#include "lb_internal.h"
#include "ops/ops.h"
#include "ops/reduce.h"

#include <math.h>

void lb_batchnorm_forward(float *out, float *xhat, float *invstd, const float *in, const float *gamma,
                          const float *beta, float *run_mean, float *run_var, int64_t R, int C, float eps,
                          float momentum, int training) {
    if (training) {
        double s1[C], s2[C];
        float mu[C];
        lb_colsum2(s1, s2, in, in, R, C);
        for (int c = 0; c < C; c++) {
            double mean = s1[c] / (double)R;
            double var = s2[c] / (double)R - mean * mean; /* in double: no cancellation issue at these sizes */
            if (var < 0) var = 0;
            invstd[c] = (float)(1.0 / sqrt(var + eps));
            double unbiased = R > 1 ? var * (double)R / (double)(R - 1) : var;
            run_mean[c] = (float)((1.0 - momentum) * run_mean[c] + momentum * mean);
            run_var[c] = (float)((1.0 - momentum) * run_var[c] + momentum * unbiased);
            mu[c] = (float)mean;
        }
        #pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < R; r++) {
            const float *x = in + r * C;
            float *xh = xhat + r * C, *y = out + r * C;
            for (int c = 0; c < C; c++) {
                xh[c] = (x[c] - mu[c]) * invstd[c];
                y[c] = gamma[c] * xh[c] + beta[c];
            }
        }
        return;
    }
    float scale[C], shift[C];
    for (int c = 0; c < C; c++) {
        float is = 1.0f / sqrtf(run_var[c] + eps);
        scale[c] = gamma[c] * is;
        shift[c] = beta[c] - run_mean[c] * scale[c];
    }
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *x = in + r * C;
        float *y = out + r * C;
        for (int c = 0; c < C; c++) y[c] = x[c] * scale[c] + shift[c];
    }
}

void lb_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *xhat,
                           const float *invstd, const float *gamma, int64_t R, int C, int acc) {
    double sd[C], sdx[C];
    lb_colsum2(sd, sdx, dout, xhat, R, C);
    float k[C], mb[C], mg[C];
    for (int c = 0; c < C; c++) {
        dbeta[c] = (float)sd[c];
        dgamma[c] = (float)sdx[c];
        k[c] = gamma[c] * invstd[c];
        mb[c] = (float)(sd[c] / (double)R);
        mg[c] = (float)(sdx[c] / (double)R);
    }
    if (!din) return;
    /* dx = gamma*invstd * (dy - mean(dy) - xhat*mean(dy*xhat)) */
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *dy = dout + r * C, *xh = xhat + r * C;
        float *dx = din + r * C;
        if (acc)
            for (int c = 0; c < C; c++) dx[c] += k[c] * (dy[c] - mb[c] - xh[c] * mg[c]);
        else
            for (int c = 0; c < C; c++) dx[c] = k[c] * (dy[c] - mb[c] - xh[c] * mg[c]);
    }
}
