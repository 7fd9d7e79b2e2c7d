/* MaxPool, AveragePool, GlobalAveragePool on NHWC. Backward scatters one image per
 * iteration so overlapping windows are summed in a fixed order. */
#include "lb_internal.h"
#include "ops/ops.h"

#include <float.h>
#include <string.h>

void lb_maxpool_forward(float *out, int32_t *argmax, const float *in, const lb_pool_shape *s) {
    const int C = s->C;
    #pragma omp parallel for schedule(static)
    for (int64_t bo = 0; bo < (int64_t)s->B * s->OH; bo++) {
        int b = (int)(bo / s->OH), oh = (int)(bo % s->OH);
        const float *img = in + (int64_t)b * s->H * s->W * C;
        for (int ow = 0; ow < s->OW; ow++) {
            float *o = out + ((bo * s->OW) + ow) * C;
            int32_t *am = argmax + ((bo * s->OW) + ow) * C;
            for (int c = 0; c < C; c++) { o[c] = -FLT_MAX; am[c] = -1; }
            for (int kh = 0; kh < s->KH; kh++) {
                int ih = oh * s->SH - s->PH + kh;
                if (ih < 0 || ih >= s->H) continue;
                for (int kw = 0; kw < s->KW; kw++) {
                    int iw = ow * s->SW - s->PW + kw;
                    if (iw < 0 || iw >= s->W) continue;
                    const float *x = img + ((int64_t)ih * s->W + iw) * C;
                    const int32_t idx = ih * s->W + iw;
                    for (int c = 0; c < C; c++) { /* branch-free so it vectorises */
                        int gt = x[c] > o[c];
                        o[c] = gt ? x[c] : o[c];
                        am[c] = gt ? idx : am[c];
                    }
                }
            }
        }
    }
}

void lb_maxpool_backward(float *din, const float *dout, const int32_t *argmax, const lb_pool_shape *s, int acc) {
    const int C = s->C;
    const int64_t img = (int64_t)s->H * s->W * C, oimg = (int64_t)s->OH * s->OW * C;
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < s->B; b++) {
        float *d = din + b * img;
        if (!acc) memset(d, 0, sizeof(float) * img);
        const float *g = dout + b * oimg;
        const int32_t *am = argmax + b * oimg;
        for (int64_t i = 0; i < oimg; i++)
            if (am[i] >= 0) d[(int64_t)am[i] * C + i % C] += g[i];
    }
}

static int window_count(const lb_pool_shape *s, int oh, int ow) {
    if (s->count_include_pad) return s->KH * s->KW;
    int h0 = LB_MAX(oh * s->SH - s->PH, 0), h1 = LB_MIN(oh * s->SH - s->PH + s->KH, s->H);
    int w0 = LB_MAX(ow * s->SW - s->PW, 0), w1 = LB_MIN(ow * s->SW - s->PW + s->KW, s->W);
    return LB_MAX((h1 - h0) * (w1 - w0), 1);
}

void lb_avgpool_forward(float *out, const float *in, const lb_pool_shape *s) {
    const int C = s->C;
    #pragma omp parallel for schedule(static)
    for (int64_t bo = 0; bo < (int64_t)s->B * s->OH; bo++) {
        int b = (int)(bo / s->OH), oh = (int)(bo % s->OH);
        const float *img = in + (int64_t)b * s->H * s->W * C;
        for (int ow = 0; ow < s->OW; ow++) {
            float *o = out + ((bo * s->OW) + ow) * C;
            for (int c = 0; c < C; c++) o[c] = 0;
            for (int kh = 0; kh < s->KH; kh++) {
                int ih = oh * s->SH - s->PH + kh;
                if (ih < 0 || ih >= s->H) continue;
                for (int kw = 0; kw < s->KW; kw++) {
                    int iw = ow * s->SW - s->PW + kw;
                    if (iw < 0 || iw >= s->W) continue;
                    const float *x = img + ((int64_t)ih * s->W + iw) * C;
                    for (int c = 0; c < C; c++) o[c] += x[c];
                }
            }
            float inv = 1.0f / (float)window_count(s, oh, ow);
            for (int c = 0; c < C; c++) o[c] *= inv;
        }
    }
}

void lb_avgpool_backward(float *din, const float *dout, const lb_pool_shape *s, int acc) {
    const int C = s->C;
    const int64_t img = (int64_t)s->H * s->W * C;
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < s->B; b++) {
        float *d = din + b * img;
        if (!acc) memset(d, 0, sizeof(float) * img);
        for (int oh = 0; oh < s->OH; oh++)
            for (int ow = 0; ow < s->OW; ow++) {
                const float *g = dout + (((int64_t)b * s->OH + oh) * s->OW + ow) * C;
                float inv = 1.0f / (float)window_count(s, oh, ow);
                for (int kh = 0; kh < s->KH; kh++) {
                    int ih = oh * s->SH - s->PH + kh;
                    if (ih < 0 || ih >= s->H) continue;
                    for (int kw = 0; kw < s->KW; kw++) {
                        int iw = ow * s->SW - s->PW + kw;
                        if (iw < 0 || iw >= s->W) continue;
                        float *x = d + ((int64_t)ih * s->W + iw) * C;
                        for (int c = 0; c < C; c++) x[c] += g[c] * inv;
                    }
                }
            }
    }
}

void lb_gap_forward(float *out, const float *in, int B, int HW, int C) {
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *o = out + (int64_t)b * C;
        for (int c = 0; c < C; c++) o[c] = 0;
        for (int p = 0; p < HW; p++) {
            const float *x = in + ((int64_t)b * HW + p) * C;
            for (int c = 0; c < C; c++) o[c] += x[c];
        }
        for (int c = 0; c < C; c++) o[c] /= (float)HW;
    }
}

void lb_gap_backward(float *din, const float *dout, int B, int HW, int C, int acc) {
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < HW; p++) {
            float *d = din + ((int64_t)b * HW + p) * C;
            const float *g = dout + (int64_t)b * C;
            for (int c = 0; c < C; c++) d[c] = (acc ? d[c] : 0.0f) + g[c] / (float)HW;
        }
}
