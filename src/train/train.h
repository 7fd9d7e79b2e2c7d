/* train.h - optimizer state and checkpoint internals. */
#ifndef LB_TRAIN_H
#define LB_TRAIN_H

#include "graph/graph.h"

/* Optimizer state: buffers laid out like m->params (same offsets). SGD uses m1 as the
 * momentum buffer; Adam uses m1, m2 as first and second moments. */
typedef struct lb_optim {
    lb_optimizer kind;
    float momentum, weight_decay, beta1, beta2, eps;
    int nesterov;
    float *m1, *m2;
    int64_t n;
} lb_optim;

lb_status lb_optim_init(lb_optim *o, const lb_model *m, const lb_train_config *c);
void lb_optim_free(lb_optim *o);
/* One update of every trainable tensor; `t` is the 1-based step (Adam's bias correction). */
void lb_optim_step(lb_optim *o, lb_model *m, float lr, int64_t t);
/* Learning rate at 0-based `step` of `total` (steps_per_epoch for the step schedule). */
float lb_schedule_lr(const lb_train_config *c, int64_t step, int64_t total, int64_t steps_per_epoch);
/* Turn the gradients of log-domain tensors (lb_tensor_entry.logscale) into gradients
 * with respect to their logarithm, p * dL/dp, which is what lb_optim_step steps; call it
 * after the backward pass and before lb_clip_grad_norm, so that the clip sees them too. */
void lb_grads_to_log(lb_model *m);
/* Scale gradients so their global L2 norm is at most max_norm; returns the norm before. */
double lb_clip_grad_norm(lb_model *m, float max_norm);

/* One training step on the `rows` samples already in the graph's input: forward, mean
 * softmax cross-entropy against labels, backward, log-domain gradients, gradient-norm
 * clip, learning rate of 0-based `step` and the optimizer update (step + 1 for Adam's
 * bias correction). *loss is the summed loss; LB_ERR_RUNTIME when it is not finite. */
lb_status lb_train_step(lb_model *m, lb_optim *o, const lb_train_config *c, const int32_t *labels, int rows, int64_t step,
                        int64_t total, int64_t spe, double *loss, int64_t *hits, float *lr);

/* Checkpoint with training state: model tensors, optimizer buffers under "opt.<name>.m1"
 * (and ".m2"), and metadata (spec, epoch, step, seed, configuration). */
typedef struct lb_ckpt_meta {
    int64_t step, batch, steps_per_epoch;
    int epoch;
    uint64_t seed;
    const char *config_json;     /* the training configuration, for the record */
    const char *vocab_json;      /* language models: the vocabulary (lb_vocab_to_json), or NULL */
} lb_ckpt_meta;
lb_status lb_ckpt_write(const lb_model *m, const lb_optim *o, const lb_ckpt_meta *meta, const char *path);
/* Load tensors; when `o` is non-NULL also the optimizer state (must be present). Reads
 * step/epoch/seed/batch/steps_per_epoch into meta when non-NULL. */
lb_status lb_ckpt_read(lb_model *m, lb_optim *o, lb_ckpt_meta *meta, const char *path);

#endif
