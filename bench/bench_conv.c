/* bench_conv: direct convolution kernels (ops/conv_direct.c) vs the im2col + sgemm path
 * (ops/conv.c) on the fmnist-cnn conv layers.
 *   bench_conv [batch] [threads] [reps]
 * Prints the minimum over reps (the machine is shared, so the minimum is the figure least
 * disturbed by others) in ms and GFLOP/s (2*B*OH*OW*OC*KH*KW*C per pass). The im2col
 * backward computes weights and data together: its data time is (weights + data) minus
 * a weights-only call. Run with OPENBLAS_CORETYPE=SkylakeX (DESIGN.md section 5). */
#include "lb_internal.h"
#include "ops/conv_direct.h"
#include "ops/ops.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

static lb_conv_shape mk(int B, int H, int C, int OC) {
    lb_conv_shape s = {.B = B, .H = H, .W = H, .C = C, .OH = H, .OW = H, .OC = OC, .KH = 3, .KW = 3, .SH = 1,
                       .SW = 1, .PH = 1, .PW = 1, .G = 1};
    return s;
}

int main(int argc, char **argv) {
    int B = argc > 1 ? atoi(argv[1]) : 128, threads = argc > 2 ? atoi(argv[2]) : 2, reps = argc > 3 ? atoi(argv[3]) : 15;
    lb_set_threads(threads);
    const char *names[] = {"conv1", "conv2", "conv3", "conv4"};
    lb_conv_shape shapes[] = {mk(B, 28, 1, 32), mk(B, 28, 32, 32), mk(B, 14, 32, 64), mk(B, 14, 64, 64)};
    printf("batch %d, %d threads, min of %d runs (ms, GFLOP/s)\n", B, threads, reps);
    printf("%-6s %-8s %16s %16s %16s\n", "layer", "path", "forward", "bwd-data", "bwd-weights");
    for (int l = 0; l < 4; l++) {
        const lb_conv_shape *s = &shapes[l];
        const int64_t nin = (int64_t)B * s->H * s->W * s->C, nout = (int64_t)B * s->OH * s->OW * s->OC;
        const int64_t nw = (int64_t)s->OC * s->KH * s->KW * s->C, ncol = lb_conv2d_col_size(s);
        float *in = lb_alloc(4 * (size_t)nin), *din = lb_alloc(4 * (size_t)nin), *out = lb_alloc(4 * (size_t)nout);
        float *dout = lb_alloc(4 * (size_t)nout), *wk = lb_alloc(4 * (size_t)nw), *dwk = lb_alloc(4 * (size_t)nw);
        float *col = lb_alloc(4 * (size_t)ncol), *dcol = lb_alloc(4 * (size_t)ncol);
        float *scr = lb_alloc(4 * (size_t)lb_conv2d_direct_scratch_size(s));
        lb_rng_uniform(in, nin, -1, 1, 1, 1);
        lb_rng_uniform(dout, nout, -1, 1, 1, 2);
        lb_rng_uniform(wk, nw, -1, 1, 1, 3);
        double t[2][4];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++) t[i][j] = 1e30;
        for (int r = 0; r < reps + 1; r++) { /* run 0 warms up */
            double a = omp_get_wtime();
            lb_conv2d_forward(out, col, in, wk, NULL, s);
            double b = omp_get_wtime();
            lb_conv2d_backward(NULL, dwk, NULL, dcol, dout, col, in, wk, s, 0);
            double c = omp_get_wtime();
            lb_conv2d_backward(din, dwk, NULL, dcol, dout, col, in, wk, s, 0);
            double d = omp_get_wtime();
            lb_conv2d_direct_forward(out, in, wk, NULL, s, scr);
            double e = omp_get_wtime();
            lb_conv2d_direct_backward_data(din, dout, wk, s, 0, scr);
            double f = omp_get_wtime();
            lb_conv2d_direct_backward_weights(dwk, NULL, dout, in, s, scr);
            double g = omp_get_wtime();
            if (r == 0) continue;
            double v[2][4] = {{b - a, (d - c) - (c - b), c - b, d - c}, {e - d, f - e, g - f, g - e}};
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++) t[i][j] = v[i][j] < t[i][j] ? v[i][j] : t[i][j];
        }
        const double gf = 2e-9 * (double)nout * s->KH * s->KW * s->C;
        for (int i = 0; i < 2; i++)
            printf("%-6s %-8s %7.2f %7.0f  %7.2f %7.0f  %7.2f %7.0f   bwd total %.2f ms\n", names[l],
                   i ? "direct" : "im2col", 1e3 * t[i][0], gf / t[i][0], 1e3 * t[i][1], gf / t[i][1], 1e3 * t[i][2],
                   gf / t[i][2], 1e3 * t[i][3]);
        lb_free(in); lb_free(din); lb_free(out); lb_free(dout); lb_free(wk); lb_free(dwk);
        lb_free(col); lb_free(dcol); lb_free(scr);
    }
    return 0;
}
