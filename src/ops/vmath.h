/* vmath.h - float math that GCC vectorises (libm's expf is a scalar call it does not
 * vectorise without -ffast-math), shared by the LSTM/GRU cells and the softmax. */
#ifndef LB_VMATH_H
#define LB_VMATH_H

#include "lbr_math.h"

#include <stdint.h>

/* exp(v), about 2 ulp, NaN kept (runtime/lbr_math.h: the one definition, shared with the
 * packed-model runtime so that its recurrent cells compute what training computed). */
static inline __attribute__((always_inline)) float lb_vexpf(float v) { return lbr_expf(v); }

#endif /* LB_VMATH_H */
