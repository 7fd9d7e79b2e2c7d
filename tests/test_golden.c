/* Golden test: lowbit against PyTorch on a tiny network (DESIGN.md section 6).
 *
 * tests/data/golden_tiny.safetensors holds what PyTorch 1.13 computed for the network in
 * tests/data/golden_tiny.json (bench/golden_dump.py made it): initial tensors, a batch,
 * logits, loss, every parameter gradient, BN running statistics and the parameters after
 * one and after two SGD steps (lr 0.1, momentum 0.9, weight decay 5e-4). This test loads
 * the same initial tensors into lowbit, runs the same steps and compares each stage, so a
 * mismatch names the stage (and, through the gradient names, the op) where it starts.
 *
 * Tolerances, |lowbit - torch| <= atol + rtol*|torch| per element:
 *   - end to end (logits, loss, gradients, running stats, parameters after each step):
 *     atol 1e-5, rtol 1e-4. The script measures float32 PyTorch against float64 on this
 *     network: at most 1.4e-7 absolute for every stored tensor, which is the size of the
 *     rounding differences another summation order (lowbit's NHWC im2col GEMMs, double
 *     accumulators in BN and the loss) may legitimately give. The bound is ~100x that and
 *     still far below the effect of a real bug (e.g. a biased running variance moves
 *     bn1.running_var by ~4e-4, a wrong stride or group layout moves logits by ~1e-1).
 *   - the optimizer alone (PyTorch's parameters and gradients loaded, then one lowbit step):
 *     atol 1e-7, rtol 1e-6, a few float32 ulps at these magnitudes (|p| < 1.5). One step
 *     moves a parameter by only lr*(g + wd*p), so the end-to-end bound above could not
 *     see a missing weight decay term (lr*wd*|p| ~ 1e-5); this one can. */
#include "train/train.h"
#include "test_util.h"

#include <string.h>

#ifndef LB_SOURCE_DIR
#define LB_SOURCE_DIR "."
#endif

#define E2E_ATOL 1e-5
#define E2E_RTOL 1e-4
#define OPT_ATOL 1e-7
#define OPT_RTOL 1e-6

static lb_st_file dump;

/* A float32 tensor of the dump, copied (the data section need not be 4-byte aligned in
 * general) into a malloc'd buffer; NULL, with a failed check, if absent or the wrong size. */
static float *ref_f32(const char *name, int64_t n) {
    const lb_st_tensor *t = lb_st_find(&dump, name);
    CHECK_MSG(t != NULL, "golden dump has no tensor '%s'", name);
    if (!t) return NULL;
    int64_t have = (int64_t)(t->end - t->begin) / 4;
    CHECK_MSG(!strcmp(t->dtype, "F32") && have == n, "'%s': dtype %s with %lld elements, expected F32 with %lld",
              name, t->dtype, (long long)have, (long long)n);
    if (strcmp(t->dtype, "F32") || have != n) return NULL;
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (v) memcpy(v, dump.data + t->begin, sizeof(float) * (size_t)n);
    return v;
}

/* Copy dump tensor `name` into dst[0..n); returns 0 on failure (already reported). */
static int load(const char *name, float *dst, int64_t n) {
    float *v = ref_f32(name, n);
    if (!v) return 0;
    memcpy(dst, v, sizeof(float) * (size_t)n);
    free(v);
    return 1;
}

/* Compare got[0..n) with dump tensor `name`; prints the worst deviation either way, so the
 * log shows how much headroom each stage has. */
static void compare(const char *name, const float *got, int64_t n, double atol, double rtol) {
    float *ref = ref_f32(name, n);
    if (!ref) return;
    double worst = 0, maxref = 0;
    int64_t bad = 0, wi = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= atol + rtol * fabs((double)ref[i]))) bad++;
        if (!(d <= worst)) { worst = d; wi = i; }
        if (fabs((double)ref[i]) > maxref) maxref = fabs((double)ref[i]);
    }
    printf("  %-28s max |diff| %.3g at [%lld] (max |torch| %.4g)%s\n", name, worst, (long long)wi, maxref,
           bad ? "  <-- MISMATCH" : "");
    CHECK_MSG(bad == 0, "%s: %lld of %lld elements outside %g + %g*|torch|; worst [%lld]: lowbit %.9g, torch %.9g",
              name, (long long)bad, (long long)n, atol, rtol, (long long)wi, (double)got[wi], (double)ref[wi]);
    free(ref);
}

/* Every model tensor (prefix "after1." etc.) or, with grads, every trainable gradient. */
static void compare_tensors(lb_model *m, const char *prefix, int grads, int trainable_only, double atol, double rtol) {
    char name[256];
    for (int k = 0; k < m->n_tensors; k++) {
        const lb_tensor_entry *t = &m->tensors[k];
        if ((grads || trainable_only) && !t->trainable) continue;
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        compare(name, (grads ? m->grads : m->params) + t->offset, t->size, atol, rtol);
    }
}

/* Forward in training mode, loss, backward; compares logits, loss and gradients with the
 * dump entries suffixed by `sfx` ("" for the first pass, "2" for the second). */
static void forward_backward(lb_model *m, const float *x, const int32_t *y, int B, const char *sfx) {
    char name[64];
    lb_graph_set_input(m, x, B);
    lb_graph_forward(m, B, 1);
    lb_node *o = lb_graph_output(m);
    snprintf(name, sizeof name, "logits%s", sfx);
    compare(name, o->out, (int64_t)B * o->c, E2E_ATOL, E2E_RTOL);
    /* lb_softmax_xent returns the summed loss and writes the gradient of the mean */
    float loss = (float)(lb_softmax_xent(o->dout, NULL, o->out, y, B, o->c) / B);
    snprintf(name, sizeof name, "loss%s", sfx);
    compare(name, &loss, 1, E2E_ATOL, E2E_RTOL);
    lb_graph_backward(m, B);
    snprintf(name, sizeof name, "grad%s.", sfx);
    compare_tensors(m, name, 1, 1, E2E_ATOL, E2E_RTOL);
}

int main(void) {
    lb_set_threads(2);
    const char *spec = LB_SOURCE_DIR "/tests/data/golden_tiny.json";
    const char *path = LB_SOURCE_DIR "/tests/data/golden_tiny.safetensors";
    lb_model *m = NULL;
    CHECK_OK(lb_model_create(&m, spec));
    CHECK_OK(lb_st_read(path, &dump));
    if (!m || !dump.buf) {
        lb_model_destroy(m);
        return lbt_report("test_golden");
    }

    /* the batch */
    const lb_st_tensor *xt = lb_st_find(&dump, "input"), *yt = lb_st_find(&dump, "labels");
    CHECK(xt && xt->ndim == 4 && xt->shape[1] == m->in_c && xt->shape[2] == m->in_h && xt->shape[3] == m->in_w);
    CHECK(yt && !strcmp(yt->dtype, "I32") && yt->ndim == 1 && xt && yt->shape[0] == xt->shape[0]);
    if (!xt || !yt || lbt_failures) {
        lb_st_free(&dump);
        lb_model_destroy(m);
        return lbt_report("test_golden");
    }
    const int B = (int)xt->shape[0];
    float *x = ref_f32("input", (int64_t)B * m->in_size);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)B);
    memcpy(y, dump.data + yt->begin, sizeof(int32_t) * (size_t)B);
    for (int b = 0; b < B; b++) CHECK_MSG(y[b] >= 0 && y[b] < lb_model_num_outputs(m), "labels[%d] = %d", b, y[b]);

    /* initial tensors, same names and PyTorch layouts on both sides */
    for (int k = 0; k < m->n_tensors; k++) {
        const lb_tensor_entry *t = &m->tensors[k];
        const lb_st_tensor *st = lb_st_find(&dump, t->name);
        int same = st && st->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = st->shape[d] == t->shape[d];
        CHECK_MSG(same, "%s: missing from the dump or of another shape", t->name);
        if (same) load(t->name, m->params + t->offset, t->size);
    }
    if (!x || lbt_failures) goto done;

    CHECK_OK(lb_graph_reserve(m, B, 1));
    lb_train_config cfg;
    lb_train_config_default(&cfg);
    cfg.opt = LB_OPT_SGD;
    cfg.momentum = 0.9f;
    cfg.nesterov = 0;
    cfg.weight_decay = 5e-4f;
    const float lr = 0.1f;
    lb_optim opt;
    CHECK_OK(lb_optim_init(&opt, m, &cfg));

    /* end to end: two training steps chained, lowbit's own results feeding the next stage */
    printf("step 1 (atol %g, rtol %g):\n", E2E_ATOL, E2E_RTOL);
    forward_backward(m, x, y, B, "");
    lb_optim_step(&opt, m, lr, 1);
    /* parameters after the step; running statistics after the forward (the step keeps them) */
    compare_tensors(m, "after1.", 0, 0, E2E_ATOL, E2E_RTOL);
    printf("step 2:\n");
    forward_backward(m, x, y, B, "2");
    lb_optim_step(&opt, m, lr, 2);
    compare_tensors(m, "after2.", 0, 0, E2E_ATOL, E2E_RTOL);
    lb_optim_free(&opt);

    /* the optimizer alone, from PyTorch's exact parameters and gradients */
    printf("SGD alone (atol %g, rtol %g):\n", OPT_ATOL, OPT_RTOL);
    CHECK_OK(lb_optim_init(&opt, m, &cfg));
    char name[256];
    for (int step = 1; step <= 2; step++) {
        for (int k = 0; k < m->n_tensors; k++) {
            const lb_tensor_entry *t = &m->tensors[k];
            if (!t->trainable) continue;
            snprintf(name, sizeof name, step == 1 ? "%s" : "after1.%s", t->name);
            load(name, m->params + t->offset, t->size);
            snprintf(name, sizeof name, step == 1 ? "grad.%s" : "grad2.%s", t->name);
            load(name, m->grads + t->offset, t->size);
        }
        lb_optim_step(&opt, m, lr, step);
        compare_tensors(m, step == 1 ? "after1." : "after2.", 0, 1, OPT_ATOL, OPT_RTOL);
    }
    lb_optim_free(&opt);

done:
    free(x);
    free(y);
    lb_st_free(&dump);
    lb_model_destroy(m);
    return lbt_report("test_golden");
}
