/* Allocation by lifetime: once a model's buffers are planned, a training step (forward,
 * loss, backward, optimizer) and an inference pass allocate nothing. The test interposes
 * glibc's allocator entry points, records the caller of every call made while a step
 * runs, and requires none from lowbit or OpenMP. OpenBLAS 0.3.21's threaded sgemm
 * allocates a small job array per call (driver/level3/level3_thread.c); those are
 * counted and printed, not failed, since they are outside lowbit. Skipped under
 * AddressSanitizer, which owns malloc. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>

#include "graph/graph.h"
#include "test_util.h"
#include "train/train.h"

#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
int main(void) {
    printf("test_noalloc: skipped under AddressSanitizer (it replaces malloc)\n");
    return 0;
}
#else
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

enum { MAX_REC = 4096 };
static volatile int counting;
static void *callers[MAX_REC];
static volatile long allocs;

/* record the caller; classified after the steps (dladdr is not for inside malloc) */
#define RECORD() do { if (counting) { long _i = __atomic_fetch_add(&allocs, 1, __ATOMIC_RELAXED); \
    if (_i < MAX_REC) callers[_i] = __builtin_return_address(0); } } while (0)
void *malloc(size_t n) { RECORD(); return __libc_malloc(n); }
void *calloc(size_t n, size_t s) { RECORD(); return __libc_calloc(n, s); }
void *realloc(void *p, size_t n) { RECORD(); return __libc_realloc(p, n); }
void *aligned_alloc(size_t a, size_t n) { RECORD(); return __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n) {
    RECORD();
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12; /* ENOMEM */
}
void free(void *p) { __libc_free(p); }

static void check_model(const char *path, int B) {
    lb_model *m;
    CHECK_OK(lb_model_create(&m, path));
    if (!m) return;
    lb_train_config c;
    lb_train_config_default(&c);
    lb_optim o;
    CHECK_OK(lb_optim_init(&o, m, &c));
    CHECK_OK(lb_graph_reserve(m, B, 1));
    float *x = malloc(sizeof(float) * (size_t)(B * m->in_size));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)B);
    lb_rng_uniform(x, B * m->in_size, -1, 1, 1, 0);
    for (int b = 0; b < B; b++) y[b] = b % 10;
    for (int s = 0; s < 5; s++) {
        counting = s >= 2; /* two warm-up steps: libraries may set up on first use */
        lb_graph_set_input(m, x, B);
        lb_graph_forward(m, B, 1);
        lb_node *out = lb_graph_output(m);
        lb_softmax_xent(out->dout, NULL, out->out, y, B, out->c);
        lb_graph_backward(m, B);
        lb_clip_grad_norm(m, 5.0f);
        lb_optim_step(&o, m, 0.01f, s + 1);
        lb_graph_forward(m, B, 0);
        counting = 0;
    }
    long ours = 0, blas = 0;
    for (long i = 0; i < allocs && i < MAX_REC; i++) {
        Dl_info di;
        if (dladdr(callers[i], &di) && di.dli_fname && strstr(di.dli_fname, "libopenblas")) blas++;
        else ours++;
    }
    CHECK_MSG(allocs <= MAX_REC, "%s: too many allocations to classify (%ld)", path, allocs);
    CHECK_MSG(ours == 0, "%s: %ld allocations by lowbit or OpenMP during 3 training steps", path, ours);
    printf("%s: 3 steps after warm-up: %ld allocations by lowbit/OpenMP, %ld inside OpenBLAS\n", path, ours, blas);
    allocs = 0;
    free(x);
    free(y);
    lb_optim_free(&o);
    lb_model_destroy(m);
}

int main(void) {
    lb_set_threads(2);
    check_model(LB_SOURCE_DIR "/models/fmnist-cnn.json", 16);
    check_model(LB_SOURCE_DIR "/models/fmnist-resnet.json", 8);
    check_model(LB_SOURCE_DIR "/models/fmnist-mlp.json", 32);
    check_model(LB_SOURCE_DIR "/tests/data/golden_tiny.json", 4); /* im2col path (groups) */
    return lbt_report("test_noalloc");
}
#endif
