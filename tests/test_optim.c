/* Optimizers, schedules and gradient clipping against values computed by hand from
 * torch.optim's update rules (in double here). Float32 updates are compared with
 * |a - b| <= 1e-6 + 1e-5|b|: Adam's update passes through about ten float32 operations
 * (moments, bias corrections, sqrt, division), each rounding by up to 6e-8 relative, and
 * a step moves a parameter by up to lr = 0.1, so 1e-5 relative is the float32 bound, while
 * a wrong rule (missing bias correction, decay applied twice) is off by 1e-3 or more. */
#include "graph/graph.h"
#include "test_util.h"
#include "train/train.h"

#include <string.h>

static const char *SPEC = "{\"input\": [2], \"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 2, \"bias\": false}]}";

/* two steps of `kind` from p0 with gradients g, compared with the formula; logd: the
 * tensor is a log-domain scale (positive p0), stepped as ln p with gradient p * g */
static void check_step(lb_optimizer kind, int nesterov, float wd, int logd) {
    lb_model *m;
    CHECK_OK(lb_model_create_from_json(&m, SPEC, strlen(SPEC), "spec"));
    lb_train_config c;
    lb_train_config_default(&c);
    c.opt = kind;
    c.nesterov = nesterov;
    c.weight_decay = wd;
    lb_optim o;
    CHECK_OK(lb_optim_init(&o, m, &c));
    m->tensors[0].logscale = logd;
    const double p0[4] = {1.0, logd ? 2.0 : -2.0, 0.5, 0.25}, g[2][4] = {{0.5, 0.1, -0.3, 0.0}, {0.2, -0.4, 0.1, 1.0}};
    double p[4], buf[4] = {0}, m1[4] = {0}, m2[4] = {0};
    float *pp = m->params + m->tensors[0].offset, *gg = m->grads + m->tensors[0].offset;
    for (int i = 0; i < 4; i++) { p[i] = p0[i]; pp[i] = (float)p0[i]; }
    const double lr = 0.1, mom = 0.9, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int t = 1; t <= 2; t++) {
        for (int i = 0; i < 4; i++) gg[i] = (float)g[t - 1][i];
        lb_grads_to_log(m);
        lb_optim_step(&o, m, (float)lr, t);
        for (int i = 0; i < 4; i++) {
            double gi = g[t - 1][i];
            if (logd) { gi *= p[i]; p[i] = log(p[i]); }   /* the same rule on ln p */
            if (kind == LB_OPT_SGD) {
                gi += wd * p[i];
                buf[i] = t == 1 ? gi : mom * buf[i] + gi;
                p[i] -= lr * (nesterov ? gi + mom * buf[i] : buf[i]);
            } else {
                if (kind == LB_OPT_ADAMW) p[i] *= 1 - lr * wd;
                else gi += wd * p[i];
                m1[i] = b1 * m1[i] + (1 - b1) * gi;
                m2[i] = b2 * m2[i] + (1 - b2) * gi * gi;
                double mh = m1[i] / (1 - pow(b1, t)), vh = m2[i] / (1 - pow(b2, t));
                p[i] -= lr * mh / (sqrt(vh) + eps);
            }
            if (logd) p[i] = exp(p[i]);
            CHECK_CLOSE(pp[i], p[i], 1e-6, 1e-5);
        }
    }
    lb_optim_free(&o);
    lb_model_destroy(m);
}

int main(void) {
    for (int logd = 0; logd <= 1; logd++) {
        check_step(LB_OPT_SGD, 0, 0.0f, logd);
        check_step(LB_OPT_SGD, 0, 5e-4f, logd);
        check_step(LB_OPT_SGD, 1, 5e-4f, logd);
        check_step(LB_OPT_ADAM, 0, 0.0f, logd);
        check_step(LB_OPT_ADAM, 0, 1e-2f, logd);
        check_step(LB_OPT_ADAMW, 0, 1e-2f, logd);
    }

    /* schedules: 10 steps per epoch, 100 in total */
    lb_train_config c;
    lb_train_config_default(&c);
    c.lr = 0.1f;
    CHECK_CLOSE(lb_schedule_lr(&c, 0, 100, 10), 0.1, 1e-9, 1e-6);
    CHECK_CLOSE(lb_schedule_lr(&c, 50, 100, 10), 0.05, 1e-9, 1e-6);            /* half way down the cosine */
    CHECK_CLOSE(lb_schedule_lr(&c, 25, 100, 10), 0.05 * (1 + cos(3.14159265358979323846 / 4)), 1e-9, 1e-6);
    c.warmup_epochs = 2; /* 20 warm-up steps, linear from lr/20, then cosine over 80 */
    CHECK_CLOSE(lb_schedule_lr(&c, 0, 100, 10), 0.1 / 20, 1e-9, 1e-6);
    CHECK_CLOSE(lb_schedule_lr(&c, 19, 100, 10), 0.1, 1e-9, 1e-6);
    CHECK_CLOSE(lb_schedule_lr(&c, 60, 100, 10), 0.05, 1e-9, 1e-6);
    c.warmup_epochs = 0;
    c.sched = LB_SCHED_STEP;
    c.step_every = 3;
    c.step_gamma = 0.5f;
    CHECK_CLOSE(lb_schedule_lr(&c, 29, 100, 10), 0.1, 1e-9, 1e-6);
    CHECK_CLOSE(lb_schedule_lr(&c, 30, 100, 10), 0.05, 1e-9, 1e-6);
    CHECK_CLOSE(lb_schedule_lr(&c, 65, 100, 10), 0.025, 1e-9, 1e-6);
    c.sched = LB_SCHED_CONST;
    CHECK_CLOSE(lb_schedule_lr(&c, 99, 100, 10), 0.1, 1e-9, 1e-6);

    /* global-norm clipping: gradients [3, 4] (norm 5) clipped to norm 1 */
    lb_model *m;
    CHECK_OK(lb_model_create_from_json(&m, SPEC, strlen(SPEC), "spec"));
    float *g = m->grads + m->tensors[0].offset;
    g[0] = 3; g[1] = 4; g[2] = 0; g[3] = 0;
    CHECK_CLOSE(lb_clip_grad_norm(m, 1.0f), 5.0, 1e-9, 1e-9);
    CHECK_CLOSE(g[0], 0.6, 1e-6, 1e-6);
    CHECK_CLOSE(g[1], 0.8, 1e-6, 1e-6);
    CHECK_CLOSE(lb_clip_grad_norm(m, 10.0f), 1.0, 1e-6, 1e-6); /* below the bound: unchanged */
    CHECK_CLOSE(g[1], 0.8, 1e-6, 1e-6);

    /* lb_model_forward (public) agrees with the graph run directly, across chunking */
    float x[3 * 2] = {1, 2, -1, 0.5f, 3, -2}, logits[6];
    CHECK_OK(lb_model_forward(m, x, 3, 0, logits));
    const float *w = m->params + m->tensors[0].offset;
    for (int b = 0; b < 3; b++)
        for (int o = 0; o < 2; o++) CHECK_CLOSE(logits[b * 2 + o], w[o * 2] * x[b * 2] + w[o * 2 + 1] * x[b * 2 + 1], 1e-6, 1e-6);
    CHECK_STATUS(lb_model_forward(m, x, 0, 0, logits), LB_ERR_INVALID);
    lb_model_destroy(m);
    return lbt_report("test_optim");
}
