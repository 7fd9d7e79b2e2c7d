/* Conv (ONNX Conv / torch.nn.Conv2d) on NHWC activations: im2col + CBLAS sgemm.
 * NHWC makes each im2col row a sequence of contiguous C-channel runs (memcpy), and the
 * GEMM's M dimension B*OH*OW large, which is where OpenBLAS is efficient. */
#include "lb_internal.h"
#include "ops/ops.h"
#include "ops/reduce.h"

#include <cblas.h>
#include <string.h>

static int is_pointwise(const lb_conv_shape *s) {
    return s->KH == 1 && s->KW == 1 && s->SH == 1 && s->SW == 1 && s->PH == 0 && s->PW == 0 && s->G == 1;
}

int64_t lb_conv2d_col_size(const lb_conv_shape *s) {
    if (is_pointwise(s)) return 0;
    return (int64_t)s->B * s->OH * s->OW * s->KH * s->KW * s->C;
}

/* OIHW <-> O,KH,KW,I/G: one permutation, copied in either direction */
static void weight_permute(float *dst, const float *src, const lb_conv_shape *s, int to_ohwi) {
    int cg = s->C / s->G;
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < s->OC; o++)
        for (int c = 0; c < cg; c++)
            for (int kh = 0; kh < s->KH; kh++)
                for (int kw = 0; kw < s->KW; kw++) {
                    int64_t ohwi = (((int64_t)o * s->KH + kh) * s->KW + kw) * cg + c;
                    int64_t oihw = (((int64_t)o * cg + c) * s->KH + kh) * s->KW + kw;
                    if (to_ohwi) dst[ohwi] = src[oihw];
                    else dst[oihw] = src[ohwi];
                }
}

void lb_conv2d_weight_pack(float *wk, const float *w, const lb_conv_shape *s) { weight_permute(wk, w, s, 1); }
void lb_conv2d_weight_unpack(float *dw, const float *dwk, const lb_conv_shape *s) { weight_permute(dw, dwk, s, 0); }

/* col for group g: rows B*OH*OW, columns KH*KW*Cg, groups stored one after another */
static void im2col(float *col, const float *in, const lb_conv_shape *s) {
    const int cg = s->C / s->G, kg = s->KH * s->KW * cg;
    const int64_t rows = (int64_t)s->B * s->OH * s->OW;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int ow = (int)(r % s->OW), oh = (int)(r / s->OW % s->OH);
        int64_t b = r / ((int64_t)s->OW * s->OH);
        for (int g = 0; g < s->G; g++) {
            float *dst = col + (int64_t)g * rows * kg + r * kg;
            for (int kh = 0; kh < s->KH; kh++) {
                int ih = oh * s->SH - s->PH + kh;
                for (int kw = 0; kw < s->KW; kw++, dst += cg) {
                    int iw = ow * s->SW - s->PW + kw;
                    if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W)
                        memset(dst, 0, sizeof(float) * cg);
                    else
                        memcpy(dst, in + ((b * s->H + ih) * s->W + iw) * s->C + g * cg, sizeof(float) * cg);
                }
            }
        }
    }
}

/* Scatter-add of col rows back to the input. One image per iteration: an image's rows
 * only touch that image, so the sum order is fixed whatever the thread count. */
static void col2im(float *din, const float *dcol, const lb_conv_shape *s, int acc) {
    const int cg = s->C / s->G, kg = s->KH * s->KW * cg;
    const int64_t rows = (int64_t)s->B * s->OH * s->OW, img = (int64_t)s->H * s->W * s->C;
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < s->B; b++) {
        float *di = din + b * img;
        if (!acc) memset(di, 0, sizeof(float) * img);
        for (int oh = 0; oh < s->OH; oh++)
            for (int ow = 0; ow < s->OW; ow++) {
                int64_t r = ((int64_t)b * s->OH + oh) * s->OW + ow;
                for (int g = 0; g < s->G; g++) {
                    const float *src = dcol + (int64_t)g * rows * kg + r * kg;
                    for (int kh = 0; kh < s->KH; kh++) {
                        int ih = oh * s->SH - s->PH + kh;
                        for (int kw = 0; kw < s->KW; kw++, src += cg) {
                            int iw = ow * s->SW - s->PW + kw;
                            if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                            float *d = di + ((int64_t)ih * s->W + iw) * s->C + g * cg;
                            for (int c = 0; c < cg; c++) d[c] += src[c];
                        }
                    }
                }
            }
    }
}

void lb_conv2d_forward(float *out, float *col, const float *in, const float *wk, const float *bias,
                       const lb_conv_shape *s) {
    const int cg = s->C / s->G, og = s->OC / s->G, kg = s->KH * s->KW * cg;
    const int64_t rows = (int64_t)s->B * s->OH * s->OW;
    const float *a = in;
    if (!is_pointwise(s)) {
        im2col(col, in, s);
        a = col;
    }
    if (bias) {
        #pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) memcpy(out + r * s->OC, bias, sizeof(float) * s->OC);
    }
    for (int g = 0; g < s->G; g++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, og, kg, 1.0f, a + (int64_t)g * rows * kg,
                    kg, wk + (int64_t)g * og * kg, kg, bias ? 1.0f : 0.0f, out + g * og, s->OC);
}

void lb_conv2d_backward(float *din, float *dwk, float *dbias, float *dcol, const float *dout,
                        const float *col, const float *in, const float *wk, const lb_conv_shape *s, int acc) {
    const int cg = s->C / s->G, og = s->OC / s->G, kg = s->KH * s->KW * cg;
    const int64_t rows = (int64_t)s->B * s->OH * s->OW;
    const int pw = is_pointwise(s);
    const float *a = pw ? in : col;
    if (dbias) lb_colsum(dbias, dout, rows, s->OC);
    for (int g = 0; g < s->G; g++)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, og, kg, (int)rows, 1.0f, dout + g * og, s->OC,
                    a + (int64_t)g * rows * kg, kg, 0.0f, dwk + (int64_t)g * og * kg, kg);
    if (!din) return;
    if (pw) { /* the input is the col matrix: GEMM straight into din */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, kg, og, 1.0f, dout, s->OC, wk, kg,
                    acc ? 1.0f : 0.0f, din, kg);
        return;
    }
    for (int g = 0; g < s->G; g++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, kg, og, 1.0f, dout + g * og, s->OC,
                    wk + (int64_t)g * og * kg, kg, 0.0f, dcol + (int64_t)g * rows * kg, kg);
    col2im(din, dcol, s, acc);
}
