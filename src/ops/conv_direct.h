/* conv_direct.h - direct (no im2col) NHWC convolution: forward, backward-data and
 * backward-weights kernels register-blocked over output pixels x output channels, with
 * AVX-512 intrinsics where the compiler targets it and a portable C fallback.
 *
 * Layouts: activations NHWC; wk / dwk are O,KH,KW,I (lb_conv2d_weight_pack), group 1.
 *
 * Scratch: every kernel takes `scratch`, lb_conv2d_direct_scratch_size(s) floats (one
 * size for all three passes, so one buffer can serve them in turn). The size includes a
 * slice per thread for omp_get_max_threads() threads as it is when the size is asked, and
 * the kernels run with omp_get_max_threads() threads: size the scratch after
 * lb_set_threads(), and again if the thread count grows. No alignment is required.
 *
 * Determinism: forward and backward-data compute each output element in one thread in a
 * fixed order (results do not depend on the thread count). Backward-weights sums a
 * partial per thread over a static range of rows, then the partials in thread order:
 * results depend on the thread count only, never on timing.
 *
 * LOWBIT_REF=1 in the environment (read once) routes the three entry points to the
 * scalar reference definitions (*_ref), which take no scratch. */
#ifndef LB_CONV_DIRECT_H
#define LB_CONV_DIRECT_H

#include "ops/ops.h"

#include <stdint.h>

/* Non-zero if the direct kernels handle this shape: G = 1, OC a positive multiple of 16,
 * 1 <= KH, KW <= 7, strides 1 or 2, padding >= 0, OH/OW consistent with the rest. */
int lb_conv2d_direct_supported(const lb_conv_shape *s);
/* Floats of scratch the three kernels need (the largest of the three). */
int64_t lb_conv2d_direct_scratch_size(const lb_conv_shape *s);

/* out[B,OH,OW,OC] = conv(in[B,H,W,C], wk) + bias (bias may be NULL). */
void lb_conv2d_direct_forward(float *out, const float *in, const float *wk, const float *bias,
                              const lb_conv_shape *s, float *scratch);
/* din[B,H,W,C] (written, or added to when acc != 0) = transposed conv of dout with wk. */
void lb_conv2d_direct_backward_data(float *din, const float *dout, const float *wk, const lb_conv_shape *s,
                                    int acc, float *scratch);
/* dwk (overwritten, O,KH,KW,I) = sum over batch and positions of dout (x) input patches;
 * dbias (may be NULL, overwritten) = column sums of dout[B*OH*OW, OC]. */
void lb_conv2d_direct_backward_weights(float *dwk, float *dbias, const float *dout, const float *in,
                                       const lb_conv_shape *s, float *scratch);

/* Scalar references: the definitions (plain loops, float accumulation in a fixed order). */
void lb_conv2d_direct_forward_ref(float *out, const float *in, const float *wk, const float *bias,
                                  const lb_conv_shape *s);
void lb_conv2d_direct_backward_data_ref(float *din, const float *dout, const float *wk, const lb_conv_shape *s,
                                        int acc);
void lb_conv2d_direct_backward_weights_ref(float *dwk, float *dbias, const float *dout, const float *in,
                                           const lb_conv_shape *s);

/* Non-zero when LOWBIT_REF=1 (read once) forces the reference paths. */
int lb_conv2d_direct_use_ref(void);

#endif /* LB_CONV_DIRECT_H */
