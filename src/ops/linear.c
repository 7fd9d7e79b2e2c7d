/* Gemm (torch.nn.Linear): out = in @ W^T + b, W in PyTorch's [out, in] layout. */
#include "lb_internal.h"
#include "ops/ops.h"
#include "ops/reduce.h"

#include <cblas.h>
#include <string.h>

void lb_linear_forward(float *out, const float *in, const float *w, const float *bias, int B, int K, int N) {
    if (bias)
        for (int b = 0; b < B; b++) memcpy(out + (int64_t)b * N, bias, sizeof(float) * N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, N, K, 1.0f, in, K, w, K, bias ? 1.0f : 0.0f, out, N);
}

void lb_linear_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                        const float *w, int B, int K, int N, int acc) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, B, 1.0f, dout, N, in, K, 0.0f, dw, K);
    if (dbias) lb_colsum(dbias, dout, B, N);
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, K, N, 1.0f, dout, N, w, K, acc ? 1.0f : 0.0f, din, K);
}
