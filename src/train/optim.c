/* SGD (momentum, Nesterov, L2 weight decay), Adam and AdamW with torch.optim's update
 * rules, so lowbit and PyTorch runs of one recipe are comparable step by step. */
#include "train/train.h"

#include <float.h>
#include <math.h>
#include <omp.h>

lb_status lb_optim_init(lb_optim *o, const lb_model *m, const lb_train_config *c) {
    *o = (lb_optim){c->opt, c->momentum, c->weight_decay, c->beta1, c->beta2, c->eps, c->nesterov, NULL, NULL, m->n_params};
    o->m1 = lb_calloc((size_t)m->n_params, sizeof(float));
    if (c->opt != LB_OPT_SGD) o->m2 = lb_calloc((size_t)m->n_params, sizeof(float));
    if (!o->m1 || (c->opt != LB_OPT_SGD && !o->m2)) {
        lb_optim_free(o);
        return lb_fail(LB_ERR_NOMEM, "cannot allocate optimizer state");
    }
    return LB_OK;
}

void lb_optim_free(lb_optim *o) {
    lb_free(o->m1);
    lb_free(o->m2);
    o->m1 = o->m2 = NULL;
}

void lb_optim_step(lb_optim *o, lb_model *m, float lr, int64_t t) {
    const float mom = o->momentum, b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    const float bc1 = 1.0f - powf(b1, (float)t), bc2 = 1.0f - powf(b2, (float)t);
    for (int k = 0; k < m->n_tensors; k++) {
        const lb_tensor_entry *te = &m->tensors[k];
        if (!te->trainable || te->frozen) continue;
        float *p = m->params + te->offset, *g = m->grads + te->offset;
        float *m1 = o->m1 + te->offset, *m2 = o->m2 ? o->m2 + te->offset : NULL;
        const float wd = te->decay ? o->weight_decay : 0.0f;
        const int64_t n = te->size;
        /* a log-domain tensor is stepped as ln p (its gradient already is d/d ln p: see
         * lb_grads_to_log); its optimizer state lives in that domain */
        if (te->logscale) for (int64_t i = 0; i < n; i++) p[i] = logf(fmaxf(p[i], FLT_MIN));
        switch (o->kind) {
        case LB_OPT_SGD:
            #pragma omp parallel for simd schedule(static)
            for (int64_t i = 0; i < n; i++) {
                float gi = g[i] + wd * p[i];
                m1[i] = mom * m1[i] + gi;
                p[i] -= lr * (o->nesterov ? gi + mom * m1[i] : m1[i]);
            }
            break;
        case LB_OPT_ADAM:
        case LB_OPT_ADAMW: {
            const int decoupled = o->kind == LB_OPT_ADAMW;
            const float step = lr / bc1, sq = 1.0f / sqrtf(bc2);
            #pragma omp parallel for simd schedule(static)
            for (int64_t i = 0; i < n; i++) {
                float gi = decoupled ? g[i] : g[i] + wd * p[i];
                if (decoupled) p[i] *= 1.0f - lr * wd;
                m1[i] = b1 * m1[i] + (1.0f - b1) * gi;
                m2[i] = b2 * m2[i] + (1.0f - b2) * gi * gi;
                p[i] -= step * m1[i] / (sqrtf(m2[i]) * sq + eps);
            }
            break;
        }
        }
        if (te->logscale) for (int64_t i = 0; i < n; i++) p[i] = expf(p[i]);
    }
}

void lb_grads_to_log(lb_model *m) {
    for (int k = 0; k < m->n_tensors; k++) {
        const lb_tensor_entry *te = &m->tensors[k];
        if (!te->logscale || !te->trainable || te->frozen) continue;
        const float *p = m->params + te->offset;
        float *g = m->grads + te->offset;
        for (int64_t i = 0; i < te->size; i++) g[i] *= fmaxf(p[i], FLT_MIN);
    }
}

float lb_schedule_lr(const lb_train_config *c, int64_t step, int64_t total, int64_t spe) {
    int64_t warm = (int64_t)(c->warmup_epochs * (float)spe);
    if (step < warm) return c->lr * (float)(step + 1) / (float)warm;
    switch (c->sched) {
    case LB_SCHED_CONST: return c->lr;
    case LB_SCHED_COSINE: {
        double t = (double)(step - warm) / (double)LB_MAX(total - warm, 1);
        return (float)(0.5 * c->lr * (1.0 + cos(3.14159265358979323846 * t)));
    }
    case LB_SCHED_STEP: {
        int64_t every = LB_MAX((int64_t)(c->step_every * (float)spe), 1);
        return c->lr * powf(c->step_gamma, (float)(step / every));
    }
    }
    return c->lr;
}

double lb_clip_grad_norm(lb_model *m, float max_norm) {
    /* per-thread partial sums over fixed ranges, added in thread order: deterministic for
     * a thread count (a language model's 7M gradients made the serial sum 3 % of a step) */
    enum { MAXT = 256 };
    double part[MAXT] = {0};
    const int nt = LB_MIN(omp_get_max_threads(), MAXT);
    #pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), nth = omp_get_num_threads();
        double acc = 0;
        for (int k = 0; k < m->n_tensors; k++) {
            const lb_tensor_entry *te = &m->tensors[k];
            if (!te->trainable || te->frozen) continue;
            const float *g = m->grads + te->offset;
            int64_t lo, hi;
            lb_split_range(te->size, nth, t, &lo, &hi);
            for (int64_t i = lo; i < hi; i++) acc += (double)g[i] * g[i];
        }
        part[t] = acc;
    }
    double ss = 0;
    for (int t = 0; t < nt; t++) ss += part[t];
    double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float sc = (float)(max_norm / (norm + 1e-6));
        for (int k = 0; k < m->n_tensors; k++) {
            const lb_tensor_entry *te = &m->tensors[k];
            if (!te->trainable || te->frozen) continue;
            float *g = m->grads + te->offset;
            #pragma omp parallel for simd schedule(static)
            for (int64_t i = 0; i < te->size; i++) g[i] *= sc;
        }
    }
    return norm;
}
