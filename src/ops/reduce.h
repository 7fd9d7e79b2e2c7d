/* reduce.h - column reductions shared by the ops. */
#ifndef LB_REDUCE_H
#define LB_REDUCE_H
#include <stdint.h>

/* For each column c of row-major a[R, C]: s1[c] = sum_r a[r,c], and when s2 is non-NULL
 * s2[c] = sum_r a[r,c] * b[r,c] (b == a gives the sum of squares). Each column is summed
 * in row order in double by one thread, so the result does not depend on the thread
 * count; columns are dealt to threads in chunks. */
void lb_colsum2(double *s1, double *s2, const float *a, const float *b, int64_t R, int C);
/* s[c] = sum_r a[r,c] rounded to float (bias gradients). */
void lb_colsum(float *s, const float *a, int64_t R, int C);

#endif
