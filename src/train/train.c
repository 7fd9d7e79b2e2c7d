/* The training loop and evaluation. */
#include "train/train.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void lb_train_config_default(lb_train_config *c) {
    *c = (lb_train_config){0};
    c->epochs = 10;
    c->batch = 128;
    c->lr = 0.05f;
    c->opt = LB_OPT_SGD;
    c->momentum = 0.9f;
    c->weight_decay = 5e-4f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->sched = LB_SCHED_COSINE;
    c->step_gamma = 0.1f;
    c->step_every = 30;
    c->crop_pad = 2;
    c->eval_every_epoch = 1;
    c->eval_batch = 500;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char *opt_name(lb_optimizer o) { return o == LB_OPT_SGD ? "sgd" : o == LB_OPT_ADAM ? "adam" : "adamw"; }
static const char *sched_name(lb_schedule s) { return s == LB_SCHED_CONST ? "const" : s == LB_SCHED_COSINE ? "cosine" : "step"; }

static void config_json(char *buf, size_t n, const lb_train_config *c) {
    snprintf(buf, n,
             "{\"epochs\": %d, \"batch\": %d, \"lr\": %g, \"opt\": \"%s\", \"momentum\": %g, \"nesterov\": %s, "
             "\"weight_decay\": %g, \"beta1\": %g, \"beta2\": %g, \"eps\": %g, \"sched\": \"%s\", \"warmup_epochs\": %g, "
             "\"step_gamma\": %g, \"step_every\": %g, \"grad_clip\": %g, \"augment\": \"%s\", \"crop_pad\": %d, \"threads\": %d}",
             c->epochs, c->batch, c->lr, opt_name(c->opt), c->momentum, c->nesterov ? "true" : "false", c->weight_decay,
             c->beta1, c->beta2, c->eps, sched_name(c->sched), c->warmup_epochs, c->step_gamma, c->step_every, c->grad_clip,
             c->augment == LB_AUG_CROP ? "crop" : "none", c->crop_pad, lb_get_threads());
}

/* The data set fits the model: sample shape and label range. */
static lb_status check_data(const lb_model *m, const lb_dataset *d) {
    int ic, ih, iw;
    lb_model_input_shape(m, &ic, &ih, &iw);
    if (d->c != ic || d->h != ih || d->w != iw)
        return lb_fail(LB_ERR_INVALID, "%s: samples are %dx%dx%d but model '%s' takes %dx%dx%d", d->source, d->c, d->h, d->w,
                       m->name, ic, ih, iw);
    if (d->num_classes > lb_model_num_outputs(m))
        return lb_fail(LB_ERR_INVALID, "%s: labels go up to %d but model '%s' has %d outputs", d->source, d->num_classes - 1,
                       m->name, lb_model_num_outputs(m));
    return LB_OK;
}

static lb_status check_config(const lb_model *m, const lb_dataset *d, const lb_train_config *c) {
    lb_status s = check_data(m, d);
    if (s) return s;
    if (c->epochs < 1 || c->epochs > 100000) return lb_fail(LB_ERR_INVALID, "--epochs must be in [1, 100000]");
    if (c->batch < 1 || c->batch > 65536) return lb_fail(LB_ERR_INVALID, "--batch must be in [1, 65536]");
    if (!(c->lr > 0) || !isfinite(c->lr)) return lb_fail(LB_ERR_INVALID, "--lr must be a positive number");
    if (!(c->weight_decay >= 0)) return lb_fail(LB_ERR_INVALID, "--wd must be non-negative");
    if (!(c->momentum >= 0 && c->momentum < 1)) return lb_fail(LB_ERR_INVALID, "--momentum must be in [0, 1)");
    if (!c->out_path || !c->out_path[0]) return lb_fail(LB_ERR_INVALID, "--out is required");
    if (d->n < 1) return lb_fail(LB_ERR_INVALID, "%s: the training set is empty", d->source);
    return LB_OK;
}

/* Gather a batch in sample order perm[lo..lo+B), optionally random-cropped: pad by
 * `pad` with the data's background value, crop back at an offset drawn per sample from
 * (seed, step, index). */
static void gather(float *dst, const lb_dataset *d, const int64_t *perm, int64_t lo, int B, const lb_train_config *c,
                   uint64_t aug_key, int64_t step, float bg) {
    const int64_t sz = (int64_t)d->c * d->h * d->w;
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *src = d->x + perm[lo + b] * sz;
        float *o = dst + (int64_t)b * sz;
        if (c->augment != LB_AUG_CROP) { memcpy(o, src, sizeof(float) * (size_t)sz); continue; }
        uint32_t r[4];
        lb_philox4x32(aug_key, (uint64_t)step, (uint64_t)b, r);
        int span = 2 * c->crop_pad + 1;
        int dy = (int)(r[0] % (uint32_t)span) - c->crop_pad, dx = (int)(r[1] % (uint32_t)span) - c->crop_pad;
        for (int ch = 0; ch < d->c; ch++)
            for (int y = 0; y < d->h; y++)
                for (int x = 0; x < d->w; x++) {
                    int sy = y + dy, sx = x + dx;
                    o[((int64_t)ch * d->h + y) * d->w + x] =
                        (sy < 0 || sy >= d->h || sx < 0 || sx >= d->w) ? bg : src[((int64_t)ch * d->h + sy) * d->w + sx];
                }
    }
}

lb_status lb_train_step(lb_model *m, lb_optim *o, const lb_train_config *c, const int32_t *labels, int rows, int64_t step,
                        int64_t total, int64_t spe, double *loss, int64_t *hits, float *lr) {
    lb_graph_forward(m, rows, 1);
    lb_node *out = lb_graph_output(m);
    *loss = lb_softmax_xent(out->dout, hits, out->out, labels, rows, lb_model_num_outputs(m));
    if (!isfinite(*loss))
        return lb_fail(LB_ERR_RUNTIME, "loss became %g at step %lld (epoch %lld); try a lower --lr", *loss, (long long)step,
                       (long long)(step / spe));
    lb_graph_backward(m, rows);
    lb_grads_to_log(m);
    if (c->grad_clip > 0) lb_clip_grad_norm(m, c->grad_clip);
    *lr = lb_schedule_lr(c, step, total, spe);
    lb_optim_step(o, m, *lr, step + 1);
    return LB_OK;
}

lb_status lb_eval(lb_model *m, const lb_dataset *d, int batch, lb_eval_result *r) {
    *r = (lb_eval_result){0};
    lb_status s = check_data(m, d);
    if (s) return s;
    if (batch < 1) batch = 256;
    /* reuse the training buffers' batch size when they exist, rather than re-planning */
    if (m->cap_train) batch = m->cap;
    if ((s = lb_graph_reserve(m, batch, 0))) return s;
    double t0 = now_s(), loss = 0;
    int64_t hits = 0;
    const int K = lb_model_num_outputs(m);
    for (int64_t lo = 0; lo < d->n; lo += batch) {
        int B = (int)LB_MIN((int64_t)batch, d->n - lo);
        lb_graph_set_input(m, d->x + lo * m->in_size, B);
        lb_graph_forward(m, B, 0);
        int64_t h;
        loss += lb_softmax_xent(NULL, &h, lb_graph_output(m)->out, d->y + lo, B, K);
        hits += h;
    }
    r->samples = d->n;
    r->accuracy = d->n ? (double)hits / (double)d->n : 0;
    r->loss = d->n ? loss / (double)d->n : 0;
    r->seconds = now_s() - t0;
    return LB_OK;
}

/* Batch-norm statistics for the hard-quantized weights (METHODS.md section 2): running
 * statistics gathered while training under noise do not match the deployed weights.
 * Reset them and take the cumulative average over `batches` training batches in data
 * order (PyTorch's momentum=None), quantizers in their hard form, nothing trained. */
static void bn_reestimate(lb_model *m, const lb_dataset *d, float *xb, int batch, int batches) {
    float *mom = malloc(sizeof(float) * (size_t)m->n_nodes);
    if (!mom) return;
    for (int i = 0; i < m->n_nodes; i++) {
        lb_node *n = &m->nodes[i];
        mom[i] = n->momentum;
        if (n->op != LB_OP_BN) continue;
        const lb_tensor_entry *t = &m->tensors[n->p0];
        for (int64_t c = 0; c < n->c; c++) { m->params[t[2].offset + c] = 0; m->params[t[3].offset + c] = 1; }
    }
    m->q_hard = 1;
    for (int k = 0; k < batches && (int64_t)k * batch < d->n; k++) {
        int B = (int)LB_MIN((int64_t)batch, d->n - (int64_t)k * batch);
        for (int i = 0; i < m->n_nodes; i++)
            if (m->nodes[i].op == LB_OP_BN) m->nodes[i].momentum = 1.0f / (float)(k + 1);
        memcpy(xb, d->x + (int64_t)k * batch * m->in_size, sizeof(float) * (size_t)B * (size_t)m->in_size);
        lb_graph_set_input(m, xb, B);
        lb_graph_forward(m, B, 1);
    }
    m->q_hard = 0;
    for (int i = 0; i < m->n_nodes; i++) m->nodes[i].momentum = mom[i];
    free(mom);
}

/* Activation quantizers that need data (fresh, or asked again by a schedule) see the
 * first four batches of the training set, in evaluation mode: the same batches every
 * time, so a resumed run calibrates as the uninterrupted one did. */
static lb_status calibrate_if_needed(lb_model *m, const lb_dataset *train, const lb_train_config *cfg) {
    if (!lb_quant_needs_calibration(m)) return LB_OK;
    return lb_quant_calibrate(m, train->x, LB_MIN(train->n, (int64_t)4 * cfg->batch), cfg->batch);
}

lb_status lb_train(lb_model *m, const lb_dataset *train, const lb_dataset *test, const lb_train_config *cfg,
                   lb_progress_fn cb, void *user) {
    lb_status s = check_config(m, train, cfg);
    if (s) return s;
    if (test && (s = check_data(m, test))) return s;
    lb_set_threads(cfg->threads);
    const int64_t spe = (train->n + cfg->batch - 1) / cfg->batch, total = spe * cfg->epochs;
    lb_optim opt;
    if ((s = lb_optim_init(&opt, m, cfg))) return s;
    int64_t step = 0;
    if (cfg->init_path && (s = lb_ckpt_read(m, NULL, NULL, cfg->init_path))) goto out;
    if (cfg->resume) {
        lb_ckpt_meta meta;
        if ((s = lb_ckpt_read(m, &opt, &meta, cfg->out_path))) goto out;
        if (meta.batch != cfg->batch || meta.steps_per_epoch != spe || meta.seed != cfg->seed) {
            s = lb_fail(LB_ERR_INVALID, "%s: cannot resume: it was trained with batch %lld, %lld steps per epoch, seed %llu; "
                        "this run has batch %d, %lld, seed %llu", cfg->out_path, (long long)meta.batch,
                        (long long)meta.steps_per_epoch, (unsigned long long)meta.seed, cfg->batch, (long long)spe,
                        (unsigned long long)cfg->seed);
            goto out;
        }
        step = meta.step;
    } else if (!cfg->init_path) {
        lb_model_init_params(m, cfg->seed);
    }
    m->dropout_key = lb_rng_key(cfg->seed, LB_RNG_DROPOUT);
    /* quantizers without learned values (fresh, or --init from a float checkpoint) start
     * from the weights; activation quantizers that need data see the first batches */
    lb_quant_init_weights(m);
    if ((s = calibrate_if_needed(m, train, cfg))) goto out;
    if ((s = lb_graph_reserve(m, cfg->batch, 1))) goto out;
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)train->n);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)cfg->batch);
    if (!perm || !labels) {
        free(perm); free(labels);
        s = lb_fail(LB_ERR_NOMEM, "out of memory");
        goto out;
    }
    float bg = 0; /* background for crop padding: the smallest (normalised black) value */
    if (cfg->augment == LB_AUG_CROP) {
        bg = train->x[0];
        for (int64_t i = 0; i < train->n * m->in_size; i++) bg = train->x[i] < bg ? train->x[i] : bg;
    }
    char cj[1024];
    config_json(cj, sizeof cj, cfg);
    const uint64_t shuffle_key = lb_rng_key(cfg->seed, LB_RNG_SHUFFLE), aug_key = lb_rng_key(cfg->seed, LB_RNG_AUGMENT);
    const int report_every = 10;
    float *xb = lb_alloc(sizeof(float) * (size_t)cfg->batch * (size_t)m->in_size);
    double t_start = now_s(), t_win = t_start, loss_win = 0;
    int64_t hits_win = 0, n_win = 0;
    int stop = 0;
    if (!xb) { s = lb_fail(LB_ERR_NOMEM, "out of memory"); stop = 1; }
    int64_t max_step = cfg->max_steps > 0 ? LB_MIN(total, cfg->max_steps) : total;
    while (!stop && step < max_step) {
        int epoch = (int)(step / spe);
        lb_rng_permutation(perm, train->n, shuffle_key, (uint64_t)epoch);
        for (int64_t k = step % spe; k < spe && step < max_step && !stop; k++) {
            int64_t lo = k * cfg->batch;
            int B = (int)LB_MIN((int64_t)cfg->batch, train->n - lo);
            gather(xb, train, perm, lo, B, cfg, aug_key, step, bg);
            for (int b = 0; b < B; b++) labels[b] = train->y[perm[lo + b]];
            m->step = step;
            if (m->n_quants) {
                lb_qsched qs = {step, spe, total, epoch, cfg->epochs};
                lb_quant_schedule(m, &qs, cfg->seed);
                /* a schedule may ask for a new calibration (QN when its activations
                 * start); calibrating leaves the buffers sized for evaluation */
                if (lb_quant_needs_calibration(m) &&
                    ((s = calibrate_if_needed(m, train, cfg)) || (s = lb_graph_reserve(m, cfg->batch, 1)))) {
                    stop = 1;
                    break;
                }
            }
            lb_graph_set_input(m, xb, B);
            int64_t h;
            double l;
            float lr;
            if ((s = lb_train_step(m, &opt, cfg, labels, B, step, total, spe, &l, &h, &lr))) { stop = 1; break; }
            step++;
            loss_win += l; hits_win += h; n_win += B;
            int end_epoch = step % spe == 0;
            if (cb && (step % report_every == 0 || end_epoch || step == max_step)) {
                double t = now_s();
                lb_train_progress p = {0, (int)((step - 1) / spe), step, spe, max_step, (float)(loss_win / (double)n_win),
                                       (float)hits_win / (float)n_win, lr, (double)n_win / LB_MAX(t - t_win, 1e-9), -1, -1,
                                       t - t_start, -1, 0};
                if (cb(&p, user)) stop = 1;
                t_win = t; loss_win = 0; hits_win = 0; n_win = 0;
            }
            if (step == total && cfg->bn_reestimate > 0 && !stop) {
                lb_train_progress p = {2, (int)((step - 1) / spe), step, spe, max_step, 0, 0, lr, 0, -1, -1, 0, -1, 0};
                lb_eval_result r;
                if (test && cfg->eval_every_epoch) {
                    if ((s = lb_eval(m, test, cfg->batch, &r))) { stop = 1; break; }
                    p.test_acc_before = r.accuracy;
                }
                bn_reestimate(m, train, xb, cfg->batch, cfg->bn_reestimate);
                if (test && cfg->eval_every_epoch) {
                    if ((s = lb_eval(m, test, cfg->batch, &r))) { stop = 1; break; }
                    p.test_acc = r.accuracy;
                    p.test_loss = r.loss;
                }
                p.elapsed_s = now_s() - t_start;
                if (cb && cb(&p, user)) stop = 1;
            }
            if (end_epoch || step == max_step || stop) {
                lb_ckpt_meta meta = {step, cfg->batch, spe, (int)(step / spe), cfg->seed, cj, NULL};
                if ((s = lb_ckpt_write(m, &opt, &meta, cfg->out_path))) { stop = 1; break; }
                if (end_epoch && cb) {
                    lb_train_progress p = {1, (int)((step - 1) / spe), step, spe, max_step, 0, 0, lr, 0, -1, -1, now_s() - t_start, -1, 0};
                    if (test && cfg->eval_every_epoch) {
                        lb_eval_result r;
                        if ((s = lb_eval(m, test, cfg->batch, &r))) { stop = 1; break; }
                        p.test_acc = r.accuracy;
                        p.test_loss = r.loss;
                    }
                    if (cb(&p, user)) stop = 1;
                    t_win = now_s();
                }
            }
        }
    }
    lb_free(xb);
    free(perm);
    free(labels);
out:
    lb_optim_free(&opt);
    return s;
}
