/* bench_step: time training steps of a model on random data, per node.
 *   bench_step [spec.json] [batch] [steps] [threads]
 * Prints img/s and, per node, forward and backward milliseconds per step. Uses the
 * library's internals (graph.h), so it lives beside the library, not in the CLI. */
#include "graph/graph.h"
#include "train/train.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *spec = argc > 1 ? argv[1] : LB_SOURCE_DIR "/models/fmnist-cnn.json";
    int B = argc > 2 ? atoi(argv[2]) : 128, steps = argc > 3 ? atoi(argv[3]) : 20, threads = argc > 4 ? atoi(argv[4]) : 2;
    lb_set_threads(threads);
    lb_model *m;
    if (lb_model_create(&m, spec) || lb_graph_reserve(m, B, 1)) { fprintf(stderr, "%s\n", lb_last_error()); return 1; }
    lb_train_config c;
    lb_train_config_default(&c);
    lb_optim o;
    if (lb_optim_init(&o, m, &c)) return 1;
    float *x = malloc(sizeof(float) * (size_t)B * m->in_size);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)B);
    lb_rng_uniform(x, (int64_t)B * m->in_size, -1, 1, 1, 0);
    for (int b = 0; b < B; b++) y[b] = b % lb_model_num_outputs(m);
    double *prof = calloc(2 * (size_t)m->n_nodes, sizeof(double)), t_opt = 0, t_loss = 0, t0 = 0;
    for (int s = -3; s < steps; s++) { /* 3 warm-up steps */
        if (s == 0) { m->prof = prof; t0 = omp_get_wtime(); }
        lb_graph_set_input(m, x, B);
        lb_graph_forward(m, B, 1);
        double a = omp_get_wtime();
        lb_node *out = lb_graph_output(m);
        lb_softmax_xent(out->dout, NULL, out->out, y, B, out->c);
        double b = omp_get_wtime();
        lb_graph_backward(m, B);
        double c2 = omp_get_wtime();
        lb_optim_step(&o, m, 0.01f, s + 4);
        if (s >= 0) { t_loss += b - a; t_opt += omp_get_wtime() - c2; }
    }
    double total = omp_get_wtime() - t0;
    printf("%s: batch %d, %d threads: %.1f ms/step, %.0f img/s\n", m->name, B, threads, 1e3 * total / steps, B * steps / total);
    printf("%-12s %10s %10s\n", "node", "fwd ms", "bwd ms");
    for (int i = 0; i < m->n_nodes; i++)
        printf("%-12s %10.2f %10.2f\n", m->nodes[i].name, 1e3 * prof[i] / steps, 1e3 * prof[m->n_nodes + i] / steps);
    printf("%-12s %10.2f %10.2f\n", "loss/optim", 1e3 * t_loss / steps, 1e3 * t_opt / steps);
    lb_optim_free(&o);
    lb_model_destroy(m);
    free(x); free(y); free(prof);
    return 0;
}
