/* reduce.h - column reductions shared by the ops. */
#ifndef LB_REDUCE_H
#define LB_REDUCE_H
#include <stdint.h>

/* For each column c of row-major a[R, C], with g = a masked to 0 where mask[r,c] <= 0
 * (mask NULL: no masking):
 *   s1[c] = sum_r g[r,c]
 *   s2[c] = sum_r g[r,c] * (b[r,c] - sub[c])   (when s2 is non-NULL; sub NULL means 0)
 * b == a, sub == NULL, mask == NULL gives sums of squares. Each column is summed in row
 * order by one thread (float partials over fixed blocks of rows, added in double), so
 * the result does not depend on the thread count. */
void lb_colsum_ex(double *s1, double *s2, const float *a, const float *b, const float *sub, const float *mask,
                  int64_t R, int C);
static inline void lb_colsum2(double *s1, double *s2, const float *a, const float *b, int64_t R, int C) {
    lb_colsum_ex(s1, s2, a, b, 0, 0, R, C);
}
/* s[c] = sum_r a[r,c] rounded to float (bias gradients). */
void lb_colsum(float *s, const float *a, int64_t R, int C);

#endif
