/* Relu, Clip, Add, Dropout and the gradient pass-throughs. */
#include "lb_internal.h"
#include "ops/ops.h"
#include "lbr_quant.h" /* lbr_clampf */

void lb_relu_forward(float *out, const float *in, int64_t n) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void lb_relu_backward(float *din, const float *dout, const float *out, int64_t n, int acc) {
    if (acc) {
        #pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) din[i] += out[i] > 0.0f ? dout[i] : 0.0f;
    } else {
        #pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
    }
}

void lb_clip_forward(float *out, const float *in, int64_t n, float lo, float hi) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = lbr_clampf(in[i], lo, hi);
}

void lb_clip_backward(float *din, const float *dout, const float *in, int64_t n, float lo, float hi, int acc) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = (in[i] >= lo && in[i] <= hi) ? dout[i] : 0.0f;
        din[i] = acc ? din[i] + g : g;
    }
}

void lb_add_forward(float *out, const float *a, const float *b, int64_t n) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void lb_pass_backward(float *din, const float *dout, int64_t n, int acc) {
    if (acc) {
        #pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) din[i] += dout[i];
    } else {
        #pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) din[i] = dout[i];
    }
}

void lb_dropout_forward(float *out, float *mask, const float *in, int64_t n, float p, uint64_t key,
                        uint64_t stream) {
    const float keep = 1.0f / (1.0f - p);
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < (n + 3) / 4; b++) {
        uint32_t r[4];
        lb_philox4x32(key, stream, (uint64_t)b, r);
        for (int j = 0; j < 4 && b * 4 + j < n; j++) {
            int64_t i = b * 4 + j;
            mask[i] = lb_u32_to_unit(r[j]) < p ? 0.0f : keep;
            out[i] = in[i] * mask[i];
        }
    }
}

void lb_mul_backward(float *din, const float *dout, const float *mask, int64_t n, int acc) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) din[i] = (acc ? din[i] : 0.0f) + dout[i] * mask[i];
}

void lb_nhwc_to_nchw(float *out, const float *in, int B, int H, int W, int C) {
    const int64_t hw = (int64_t)H * W;
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int64_t p = 0; p < hw; p++)
            for (int c = 0; c < C; c++) out[((int64_t)b * C + c) * hw + p] = in[((int64_t)b * hw + p) * C + c];
}

void lb_nchw_to_nhwc(float *out, const float *in, int B, int H, int W, int C, int acc) {
    const int64_t hw = (int64_t)H * W;
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int64_t p = 0; p < hw; p++)
            for (int c = 0; c < C; c++) {
                float v = in[((int64_t)b * C + c) * hw + p];
                float *o = &out[((int64_t)b * hw + p) * C + c];
                *o = acc ? *o + v : v;
            }
}
