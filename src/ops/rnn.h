/* rnn.h - embedding (ONNX Gather), LSTM and GRU (ONNX semantics, one direction) over a
 * sequence, forward and backward. Layout: x [B,T,I], y [B,T,H] row-major (batch major,
 * the graph's NHWC with H=T, W=1).
 *
 * Contracts shared by every function here: the caller owns every buffer (nothing is
 * allocated inside, so these run in a training step that must not allocate); nothing can
 * fail, so shapes are the caller's to check (B, T, I, H >= 1); outputs must not alias inputs.
 * `save` must be left untouched between a forward and the backward that reads it.
 * Gradients follow ops.h: parameter and initial-state gradients are overwritten, dx is
 * written or, with acc != 0, added to (another consumer wrote it first).
 *
 * Buffer sizes grow only with B*T (and B, which is <= B*T): the sizes for the shape
 * {B*T sequences, 1 step} bound those of any {B, T} with the same rows, so a graph can
 * size its buffers once for its row count whatever sequence length it later runs.
 *
 * Threads: GEMMs are OpenBLAS's; the elementwise passes split work into fixed pieces and
 * reductions (bias gradients) run in a fixed order, so results never depend on timing and
 * are bit-identical for a given thread count (across thread counts they may differ by
 * rounding, as OpenBLAS splits GEMMs by the thread count).
 *
 * The shape's field I meets <complex.h>'s macro I (OpenBLAS's cblas.h includes it): a file
 * that includes both writes `#undef I` after them, as rnn.c does. */
#ifndef LB_OPS_RNN_H
#define LB_OPS_RNN_H

#include <stdint.h>

typedef struct lb_rnn_shape {
    int B, T, I, H;      /* batch, time steps, input features, hidden units */
    int bitrnn;          /* Bit-RNN cell (He et al. 2016): LSTM uses sigmoid in place of tanh on the
                            candidate g and on the cell output (h = o * sigmoid(c)), so h is in [0,1];
                            GRU uses sigmoid in place of tanh on the candidate n */
} lb_rnn_shape;

/* Optional quantizer applied to the hidden state of every step, inside the recurrence:
 * hq_t = Q(h_t) is both the output y[:,t,:] and the state fed to step t+1. NULL: identity.
 * It is called once per step, in step order (forward) or reverse step order (backward),
 * so a quantizer that learns from statistics sees every step. */
typedef struct lb_rnn_hook {
    void *ctx;
    /* y = Q(x), n = B*H values of one step (x is h_t laid out [B,H] contiguous) */
    void (*forward)(void *ctx, float *y, const float *x, int64_t n);
    /* dx = dQ/dx * dy (overwrite); the hook may accumulate its own parameter gradients across calls */
    void (*backward)(void *ctx, float *dx, const float *dy, const float *x, int64_t n);
} lb_rnn_hook;

/* ---------------------------------------------------------------- embedding */

/* Embedding: out[n,E] = table[idx[n], :]; idx values are checked by the caller (in [0,V)). */
void lb_embedding_forward(float *out, const int32_t *idx, const float *table, int64_t n, int E);
/* dtable[V,E] overwritten: zero, then rows added in index order (deterministic for any thread count:
 * threads split the E columns, never the n rows, so a repeated index always sums in the same order) */
void lb_embedding_backward(float *dtable, const float *dout, const int32_t *idx, int64_t n, int V, int E);

/* ---------------------------------------------------------------- LSTM */

/* LSTM, ONNX gate order i, o, f, c: W [4H,I], R [4H,H], bias [8H] = Wb then Rb (may be NULL).
 *   i = σ(Wi x + Ri h + b), o = σ(..), f = σ(..), g = tanh(..) (σ when bitrnn)
 *   c_t = f*c_{t-1} + i*g,  h_t = o * tanh(c_t) (σ(c_t) when bitrnn),  hq_t = hook(h_t)
 * h0, c0 [B,H] may be NULL (zeros); hT, cT [B,H] may be NULL (final hq and c, for carrying
 * state across batches). `save` (training; lb_lstm_save_size floats) keeps what backward
 * needs; may be NULL in evaluation. `scratch` has lb_lstm_scratch_size floats.
 * The input projection of all B*T rows is one GEMM; each step adds one GEMM of the
 * previous state (B rows) and an elementwise pass, which is the whole serial part. */
int64_t lb_lstm_save_size(const lb_rnn_shape *s);
int64_t lb_lstm_scratch_size(const lb_rnn_shape *s);
void lb_lstm_forward(float *y, float *hT, float *cT, float *save, float *scratch, const float *x,
                     const float *W, const float *R, const float *bias, const float *h0, const float *c0,
                     const lb_rnn_shape *s, const lb_rnn_hook *hq);
/* dW, dR, dbias overwritten (dbias may be NULL when bias is); dx [B,T,I] written, or added to
 * when acc != 0, may be NULL; dh0, dc0 may be NULL (gradients w.r.t. the initial state,
 * overwritten). dy [B,T,H] is the gradient of the outputs; no gradient flows in from hT/cT
 * (truncated BPTT detaches the carried state). Same arguments as the forward that filled save.
 * Per step only the gate derivatives and one GEMM for the state gradient run; the weight,
 * input and bias gradients are single reductions over all B*T rows after the loop. With a
 * hook, the gradient w.r.t. hq_t (output plus recurrence) goes through hq->backward, with the
 * pre-quantization h_t the forward saved, before the cell's derivative. */
void lb_lstm_backward(float *dx, float *dW, float *dR, float *dbias, float *dh0, float *dc0, float *scratch,
                      const float *dy, const float *save, const float *x, const float *W, const float *R,
                      const float *h0, const float *c0, const lb_rnn_shape *s, const lb_rnn_hook *hq, int acc);

/* ---------------------------------------------------------------- GRU */

/* GRU, ONNX gate order z, r, h, linear_before_reset = 1 (PyTorch's nn.GRU semantics):
 *   z = σ(Wz x + Rz h + Wbz + Rbz), r = σ(...),
 *   n = tanh(Wh x + Wbh + r * (Rh h + Rbh)) (σ when bitrnn),  h_t = (1-z)*n + z*h_{t-1}
 * W [3H,I], R [3H,H], bias [6H]. No cell state. h_{t-1} is the quantized hq_{t-1} (h0 at
 * t = 0). Buffers and arguments as for the LSTM. */
int64_t lb_gru_save_size(const lb_rnn_shape *s);
int64_t lb_gru_scratch_size(const lb_rnn_shape *s);
void lb_gru_forward(float *y, float *hT, float *save, float *scratch, const float *x, const float *W,
                    const float *R, const float *bias, const float *h0, const lb_rnn_shape *s,
                    const lb_rnn_hook *hq);
void lb_gru_backward(float *dx, float *dW, float *dR, float *dbias, float *dh0, float *scratch,
                     const float *dy, const float *save, const float *x, const float *W, const float *R,
                     const float *h0, const lb_rnn_shape *s, const lb_rnn_hook *hq, int acc);

#endif /* LB_OPS_RNN_H */
