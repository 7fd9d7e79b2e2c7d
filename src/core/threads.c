/* Thread count for OpenMP loops and OpenBLAS. */
#include "lb_internal.h"

#include <cblas.h>
#include <omp.h>

void lb_set_threads(int n) {
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int lb_get_threads(void) { return omp_get_max_threads(); }
