/* ops.h - forward and backward of every op, as plain functions (llm.c style).
 *
 * Layout: activations are NHWC ("rows" of C channels), so a conv is one GEMM over
 * B*OH*OW rows and batch norm reduces over rows. A vector is the case H = W = 1.
 * Parameters keep PyTorch's layout (Conv OIHW, Gemm [out, in]) so checkpoints are
 * readable by PyTorch; conv reorders its weight to O,KH,KW,I/G once per step.
 *
 * Backward conventions: `acc` non-zero means add into the input gradient (the tensor
 * has another consumer that wrote first), zero means overwrite; a NULL input-gradient
 * pointer means it is not needed (graph input). Parameter gradients are overwritten:
 * each parameter has exactly one user.
 *
 * Threads: OpenMP static schedules; reductions are summed per thread-range then in a
 * fixed order, so results depend on the thread count but never on timing.
 */
#ifndef LB_OPS_H
#define LB_OPS_H

#include <stdint.h>

/* ---------------------------------------------------------------- conv2d */

typedef struct lb_conv_shape {
    int B, H, W, C;          /* input */
    int OH, OW, OC;          /* output */
    int KH, KW, SH, SW, PH, PW, G;
} lb_conv_shape;

/* Elements of the im2col matrix (B*OH*OW rows, KH*KW*C columns); 0 for 1x1 convs
 * that read the input directly. */
int64_t lb_conv2d_col_size(const lb_conv_shape *s);
/* OIHW -> O,KH,KW,I/G (wk) and back for the gradient. */
void lb_conv2d_weight_pack(float *wk, const float *w_oihw, const lb_conv_shape *s);
void lb_conv2d_weight_unpack(float *dw_oihw, const float *dwk, const lb_conv_shape *s);
/* out[B,OH,OW,OC] = conv(in[B,H,W,C], wk) + bias; `col` receives im2col(in) (kept for
 * backward). bias may be NULL. */
void lb_conv2d_forward(float *out, float *col, const float *in, const float *wk, const float *bias,
                       const lb_conv_shape *s);
/* dwk, dbias (may be NULL) overwritten; din (may be NULL) written or accumulated;
 * dcol is scratch of lb_conv2d_col_size elements (or B*H*W*C for 1x1). */
void lb_conv2d_backward(float *din, float *dwk, float *dbias, float *dcol, const float *dout,
                        const float *col, const float *in, const float *wk, const lb_conv_shape *s, int acc);

/* ---------------------------------------------------------------- linear (Gemm) */

/* out[B,N] = in[B,K] @ w[N,K]^T + bias[N] */
void lb_linear_forward(float *out, const float *in, const float *w, const float *bias, int B, int K, int N);
void lb_linear_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                        const float *w, int B, int K, int N, int acc);

/* ---------------------------------------------------------------- batch norm */

/* Training: normalise each of C channels over R rows with batch statistics, save the
 * batch mean[C] and invstd[C] for backward (xhat is recomputed there rather than stored:
 * one less write of the whole tensor), and update running statistics (unbiased variance,
 * momentum as PyTorch). Evaluation: use running statistics (mean, invstd may be NULL).
 * relu != 0 fuses a following Relu: out = max(0, bn(x)). */
void lb_batchnorm_forward(float *out, float *mean, float *invstd, const float *in, const float *gamma,
                          const float *beta, float *run_mean, float *run_var, int64_t R, int C, float eps,
                          float momentum, int training, int relu);
/* `out` is the forward output (read only when relu != 0, for the Relu mask). */
void lb_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                           const float *out, const float *mean, const float *invstd, const float *gamma, int64_t R,
                           int C, int relu, int acc);

/* ---------------------------------------------------------------- elementwise */

void lb_relu_forward(float *out, const float *in, int64_t n);
/* uses the forward output: d/dx relu = [out > 0] */
void lb_relu_backward(float *din, const float *dout, const float *out, int64_t n, int acc);
void lb_clip_forward(float *out, const float *in, int64_t n, float lo, float hi);
/* gradient passes where lo <= x <= hi (torch.clamp's rule) */
void lb_clip_backward(float *din, const float *dout, const float *in, int64_t n, float lo, float hi, int acc);
void lb_add_forward(float *out, const float *a, const float *b, int64_t n);
/* din = dout (or += dout) */
void lb_pass_backward(float *din, const float *dout, int64_t n, int acc);
/* Inverted dropout: mask[i] = 0 or 1/(1-p) from (key, stream, i). */
void lb_dropout_forward(float *out, float *mask, const float *in, int64_t n, float p, uint64_t key,
                        uint64_t stream);
void lb_mul_backward(float *din, const float *dout, const float *mask, int64_t n, int acc);

/* ---------------------------------------------------------------- pooling */

typedef struct lb_pool_shape {
    int B, H, W, C, OH, OW, KH, KW, SH, SW, PH, PW;
    int count_include_pad;   /* AveragePool: divide by KH*KW (1) or by the in-bounds count (0, ONNX default) */
} lb_pool_shape;

/* argmax[B,OH,OW,C] stores the flat input index (h*W+w) of each maximum. */
void lb_maxpool_forward(float *out, int32_t *argmax, const float *in, const lb_pool_shape *s);
void lb_maxpool_backward(float *din, const float *dout, const int32_t *argmax, const lb_pool_shape *s, int acc);
void lb_avgpool_forward(float *out, const float *in, const lb_pool_shape *s);
void lb_avgpool_backward(float *din, const float *dout, const lb_pool_shape *s, int acc);
/* out[B,C] = mean over H*W of in[B,H,W,C] */
void lb_gap_forward(float *out, const float *in, int B, int HW, int C);
void lb_gap_backward(float *din, const float *dout, int B, int HW, int C, int acc);

/* ---------------------------------------------------------------- layout */

/* NHWC -> NCHW per sample: what PyTorch's flatten sees, so Gemm weights after a
 * Flatten are interchangeable with PyTorch's. */
void lb_nhwc_to_nchw(float *out, const float *in, int B, int H, int W, int C);
/* inverse; acc adds into out */
void lb_nchw_to_nhwc(float *out, const float *in, int B, int H, int W, int C, int acc);

/* ---------------------------------------------------------------- loss */

/* Mean softmax cross-entropy over B rows of N logits; writes dlogits = (softmax -
 * onehot)/B when dlogits is non-NULL and counts correct argmax predictions. Returns the
 * summed (not mean) loss in double. */
double lb_softmax_xent(float *dlogits, int64_t *correct, const float *logits, const int32_t *labels, int B, int N);

#endif /* LB_OPS_H */
