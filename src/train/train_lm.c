/* Language models: training with truncated back-propagation through time, evaluation
 * (perplexity, bits per character) and text generation.
 *
 * Batching is PyTorch's word_language_model example's: a split's token stream is cut
 * into B contiguous streams of L = len / B tokens (the remainder is dropped); a step
 * takes the next T tokens of every stream (fewer at the end) and predicts each next
 * token. The LSTM/GRU state is carried from one step to the next and reset at the start
 * of an epoch and of an evaluation; gradients stop at the step boundary. */
#include "train/train.h"
#include "data/text.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int lb_model_is_lm(const lb_model *m) { return m->seq_len > 0; }
int lb_model_seq_len(const lb_model *m) { return m->seq_len; }
int lb_model_text_level(const lb_model *m) { return m->text_level; }
const char *lb_model_recipe(const lb_model *m) { return m->recipe; }

int lb_model_vocab(const lb_model *m) {
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].op == LB_OP_GATHER) return m->nodes[i].vocab;
    return 0;
}

/* The corpus fits the model: a sequence model whose embedding and output cover the
 * vocabulary, at the model's level. */
static lb_status check_text(const lb_model *m, const lb_text *t) {
    if (!m->seq_len)
        return lb_fail(LB_ERR_INVALID, "%s: model '%s' is not a language model (its input is not {\"tokens\": T})", t->source, m->name);
    if ((int)t->level != m->text_level)
        return lb_fail(LB_ERR_INVALID, "%s: model '%s' reads %s tokens but the corpus was tokenized by %s", t->source, m->name,
                       m->text_level ? "character" : "word", t->level ? "character" : "word");
    int V = lb_model_vocab(m), K = lb_model_num_outputs(m);
    if (t->vocab.n > V || t->vocab.n > K)
        return lb_fail(LB_ERR_INVALID, "%s: the vocabulary has %d tokens but model '%s' embeds %d and predicts %d; set the Gather's "
                       "'vocab' and the last Gemm's 'out' to %d", t->source, t->vocab.n, m->name, V, K, t->vocab.n);
    return LB_OK;
}

/* Step k of a split cut into B streams of L tokens, T steps at a time: inputs and
 * next-token labels in row order b*Tc + t; returns Tc (0 past the end). */
static int lm_batch(float *x, int32_t *y, const int32_t *s, int64_t L, int B, int T, int64_t k) {
    int64_t i = k * T;
    if (i >= L - 1) return 0;
    int Tc = (int)LB_MIN((int64_t)T, L - 1 - i);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tc; t++) {
            x[b * Tc + t] = (float)s[(int64_t)b * L + i + t];
            if (y) y[b * Tc + t] = s[(int64_t)b * L + i + t + 1];
        }
    return Tc;
}

static int64_t lm_steps(int64_t len, int B, int T) {
    int64_t L = len / B;
    return L < 2 ? 0 : (L - 1 + T - 1) / T;
}

lb_status lb_eval_lm(lb_model *m, const lb_text *t, int split, int batch, lb_lm_result *r) {
    *r = (lb_lm_result){0};
    lb_status s = check_text(m, t);
    if (s) return s;
    if (split < 0 || split > 2) return lb_fail(LB_ERR_INVALID, "lb_eval_lm: split must be 0, 1 or 2");
    if (batch < 1) batch = 10;
    const int T = m->seq_len, K = lb_model_num_outputs(m);
    const int64_t L = t->len[split] / batch, steps = lm_steps(t->len[split], batch, T);
    if (!steps)
        return lb_fail(LB_ERR_INVALID, "%s: the %s split has %lld tokens, too few for %d streams", t->source,
                       split == 0 ? "training" : split == 1 ? "validation" : "test", (long long)t->len[split], batch);
    if ((s = lb_graph_reserve(m, batch * T, 0))) return s;
    float *x = malloc(sizeof(float) * (size_t)batch * T);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch * T);
    if (!x || !y) { free(x); free(y); return lb_fail(LB_ERR_NOMEM, "out of memory"); }
    double t0 = now_s(), loss = 0;
    int64_t hits = 0, n = 0;
    lb_graph_reset_state(m);
    m->carry = 1;
    for (int64_t k = 0; k < steps; k++) {
        int Tc = lm_batch(x, y, t->ids[split], L, batch, T, k);
        int rows = batch * Tc;
        m->seq_T = Tc;
        lb_graph_set_input(m, x, rows);
        lb_graph_forward(m, rows, 0);
        int64_t h;
        loss += lb_softmax_xent(NULL, &h, lb_graph_output(m)->out, y, rows, K);
        hits += h;
        n += rows;
    }
    m->carry = 0;
    m->seq_T = T;
    free(x);
    free(y);
    r->tokens = n;
    r->loss = loss / (double)n;
    r->perplexity = exp(r->loss);
    r->bpc = r->loss / log(2.0);
    r->accuracy = (double)hits / (double)n;
    r->seconds = now_s() - t0;
    return LB_OK;
}

/* Activation quantizers that need data (fresh, or asked again by a schedule: QN when
 * its activations start) see the first four steps of the first epoch, carrying state,
 * in evaluation mode; the same steps every time, so a resumed run calibrates as the
 * uninterrupted one did. Leaves the state zero and the buffers planned for training. */
static lb_status calibrate(lb_model *m, const lb_text *t, float *x, int64_t L, int B, int T) {
    if (!lb_quant_needs_calibration(m)) return LB_OK;
    lb_status s = lb_graph_reserve(m, B * T, 0);
    if (s) return s;
    lb_graph_reset_state(m);
    m->carry = 1;
    m->q_observe = 1;
    for (int64_t k = 0; k < LB_MIN(lm_steps(t->len[0], B, T), 4); k++) {
        int Tc = lm_batch(x, NULL, t->ids[0], L, B, T, k);
        m->seq_T = Tc;
        lb_graph_set_input(m, x, B * Tc);
        lb_graph_forward(m, B * Tc, 0);
    }
    lb_quant_calibrate_finish(m);
    lb_graph_reset_state(m);
    return lb_graph_reserve(m, B * T, 1);
}

/* The carried LSTM/GRU states of the planned rows: into a new buffer (restore == NULL;
 * returns it, malloc'd) or back from `restore` (returns it). */
static float *state_copy(lb_model *m, float *restore) {
    size_t n = 0;
    for (int i = 0; i < m->n_nodes; i++)
        n += (size_t)m->cap * (size_t)m->nodes[i].c * ((m->nodes[i].state_h != NULL) + (m->nodes[i].state_c != NULL));
    float *buf = restore ? restore : malloc(sizeof(float) * (n ? n : 1)), *p = buf;
    if (!buf) return NULL;
    for (int i = 0; i < m->n_nodes; i++) {
        float *st[2] = {m->nodes[i].state_h, m->nodes[i].state_c};
        size_t k = (size_t)m->cap * (size_t)m->nodes[i].c;
        for (int j = 0; j < 2; j++) {
            if (!st[j]) continue;
            if (restore) memcpy(st[j], p, sizeof(float) * k);
            else memcpy(p, st[j], sizeof(float) * k);
            p += k;
        }
    }
    return buf;
}

/* Validation after an epoch: PyTorch's example's 10 streams, fewer for a short split. */
static int valid_streams(const lb_text *t) { return (int)LB_MIN((int64_t)10, t->len[1] / 2); }

lb_status lb_train_lm(lb_model *m, const lb_text *t, const lb_train_config *cfg, lb_progress_fn cb, void *user) {
    lb_status s = check_text(m, t);
    if (s) return s;
    if (cfg->epochs < 1 || cfg->epochs > 100000) return lb_fail(LB_ERR_INVALID, "--epochs must be in [1, 100000]");
    if (cfg->batch < 1 || cfg->batch > 65536) return lb_fail(LB_ERR_INVALID, "--batch must be in [1, 65536]");
    if (!(cfg->lr > 0) || !isfinite(cfg->lr)) return lb_fail(LB_ERR_INVALID, "--lr must be a positive number");
    if (!cfg->out_path || !cfg->out_path[0]) return lb_fail(LB_ERR_INVALID, "--out is required");
    lb_set_threads(cfg->threads);
    const int B = cfg->batch, T = m->seq_len;
    const int64_t L = t->len[0] / B, spe = lm_steps(t->len[0], B, T), total = spe * cfg->epochs;
    if (!spe)
        return lb_fail(LB_ERR_INVALID, "%s: the training split has %lld tokens, too few for batch %d", t->source,
                       (long long)t->len[0], B);
    char *vocab = lb_vocab_to_json(&t->vocab, t->level);
    if (!vocab) return lb_fail(LB_ERR_NOMEM, "out of memory");
    lb_optim opt;
    if ((s = lb_optim_init(&opt, m, cfg))) { free(vocab); return s; }
    int64_t step = 0;
    if (cfg->init_path && (s = lb_ckpt_read(m, NULL, NULL, cfg->init_path))) goto out;
    if (cfg->resume) {
        lb_ckpt_meta meta;
        if ((s = lb_ckpt_read(m, &opt, &meta, cfg->out_path))) goto out;
        if (meta.batch != B || meta.steps_per_epoch != spe || meta.seed != cfg->seed) {
            s = lb_fail(LB_ERR_INVALID, "%s: cannot resume: it was trained with batch %lld, %lld steps per epoch, seed %llu; "
                        "this run has batch %d, %lld, seed %llu", cfg->out_path, (long long)meta.batch,
                        (long long)meta.steps_per_epoch, (unsigned long long)meta.seed, B, (long long)spe,
                        (unsigned long long)cfg->seed);
            goto out;
        }
        step = meta.step;
    } else if (!cfg->init_path) {
        lb_model_init_params(m, cfg->seed);
    }
    m->dropout_key = lb_rng_key(cfg->seed, LB_RNG_DROPOUT);
    float *x = malloc(sizeof(float) * (size_t)B * T);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)B * T);
    if (!x || !y) { free(x); free(y); s = lb_fail(LB_ERR_NOMEM, "out of memory"); goto out; }
    lb_quant_init_weights(m);
    if ((s = calibrate(m, t, x, L, B, T))) goto free_xy;
    if ((s = lb_graph_reserve(m, B * T, 1))) goto free_xy;
    {
        char cj[1024];
        snprintf(cj, sizeof cj,
                 "{\"epochs\": %d, \"batch\": %d, \"bptt\": %d, \"lr\": %g, \"opt\": \"%s\", \"weight_decay\": %g, "
                 "\"grad_clip\": %g, \"threads\": %d}", cfg->epochs, B, T, cfg->lr,
                 cfg->opt == LB_OPT_SGD ? "sgd" : cfg->opt == LB_OPT_ADAM ? "adam" : "adamw", cfg->weight_decay,
                 cfg->grad_clip, lb_get_threads());
        const int report_every = 20;
        double t_start = now_s(), t_win = t_start, loss_win = 0;
        int64_t hits_win = 0, n_win = 0;
        int stop = 0;
        const int64_t max_step = cfg->max_steps > 0 ? LB_MIN(total, cfg->max_steps) : total;
        m->carry = 1;
        /* a resumed run starts its epoch's streams from a zero state, where the
         * uninterrupted run had carried one: resuming mid-epoch is close, not identical */
        lb_graph_reset_state(m);
        while (!stop && step < max_step) {
            int epoch = (int)(step / spe);
            if (step % spe == 0) lb_graph_reset_state(m);
            for (int64_t k = step % spe; k < spe && step < max_step && !stop; k++) {
                int Tc = lm_batch(x, y, t->ids[0], L, B, T, k);
                int rows = B * Tc;
                m->step = step;
                m->seq_T = Tc;
                if (m->n_quants) {
                    lb_qsched qs = {step, spe, total, epoch, cfg->epochs};
                    lb_quant_schedule(m, &qs, cfg->seed);
                    if (lb_quant_needs_calibration(m)) {
                        /* calibration runs its own streams: keep this step's carried state */
                        float *st = state_copy(m, NULL);
                        if (!st) s = lb_fail(LB_ERR_NOMEM, "out of memory");
                        else if (!(s = calibrate(m, t, x, L, B, T))) state_copy(m, st);
                        free(st);
                        if (s) { stop = 1; break; }
                        m->carry = 1;
                        lm_batch(x, y, t->ids[0], L, B, T, k);
                        m->seq_T = Tc;
                    }
                }
                lb_graph_set_input(m, x, rows);
                int64_t h;
                double l;
                float lr;
                if ((s = lb_train_step(m, &opt, cfg, y, rows, step, total, spe, &l, &h, &lr))) { stop = 1; break; }
                step++;
                loss_win += l; hits_win += h; n_win += rows;
                int end_epoch = step % spe == 0;
                if (cb && (step % report_every == 0 || end_epoch || step == max_step)) {
                    double tn = now_s();
                    lb_train_progress p = {0, (int)((step - 1) / spe), step, spe, max_step, (float)(loss_win / (double)n_win),
                                           (float)hits_win / (float)n_win, lr, (double)n_win / LB_MAX(tn - t_win, 1e-9), -1, -1,
                                           tn - t_start, -1, 1};
                    if (cb(&p, user)) stop = 1;
                    t_win = tn; loss_win = 0; hits_win = 0; n_win = 0;
                }
                if (end_epoch || step == max_step || stop) {
                    lb_ckpt_meta meta = {step, B, spe, (int)(step / spe), cfg->seed, cj, vocab};
                    if ((s = lb_ckpt_write(m, &opt, &meta, cfg->out_path))) { stop = 1; break; }
                    if (end_epoch && cb) {
                        lb_train_progress p = {1, (int)((step - 1) / spe), step, spe, max_step, 0, 0, lr, 0, -1, -1,
                                               now_s() - t_start, -1, 1};
                        if (cfg->eval_every_epoch && valid_streams(t) >= 1 && lm_steps(t->len[1], valid_streams(t), T)) {
                            lb_lm_result r;
                            if ((s = lb_eval_lm(m, t, 1, valid_streams(t), &r))) { stop = 1; break; }
                            p.test_acc = r.accuracy;
                            p.test_loss = r.loss;
                            m->carry = 1;
                        }
                        if (cb(&p, user)) stop = 1;
                        t_win = now_s();
                    }
                }
            }
        }
        m->carry = 0;
        m->seq_T = T;
    }
free_xy:
    free(x);
    free(y);
out:
    lb_optim_free(&opt);
    free(vocab);
    return s;
}

/* Sample from softmax(logits / temperature) with one uniform draw; temperature 0 is
 * argmax. */
static int32_t sample_token(const float *logits, int K, float temperature, float u) {
    int best = 0;
    for (int k = 1; k < K; k++) best = logits[k] > logits[best] ? k : best;
    if (!(temperature > 0)) return best;
    double z = 0;
    for (int k = 0; k < K; k++) z += exp((double)(logits[k] - logits[best]) / temperature);
    double c = 0, target = (double)u * z;
    for (int k = 0; k < K; k++) {
        c += exp((double)(logits[k] - logits[best]) / temperature);
        if (c > target) return k;
    }
    return best;
}

lb_status lb_lm_generate(lb_model *m, const int32_t *prompt, int64_t n_prompt, int32_t *out, int64_t n_out,
                         float temperature, uint64_t seed) {
    if (!m->seq_len) return lb_fail(LB_ERR_INVALID, "model '%s' is not a language model", m->name);
    if (n_prompt < 1) return lb_fail(LB_ERR_INVALID, "the prompt must have at least one token");
    const int V = lb_model_vocab(m), K = lb_model_num_outputs(m);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V) return lb_fail(LB_ERR_INVALID, "prompt token %lld is %d, outside [0, %d)", (long long)i, prompt[i], V);
    lb_status s = lb_graph_reserve(m, m->seq_len, 0);
    if (s) return s;
    const uint64_t key = lb_rng_key(seed, LB_RNG_SAMPLE);
    lb_graph_reset_state(m);
    m->carry = 1;
    /* the prompt in chunks of up to T steps (one sequence), then one token at a time */
    float *x = malloc(sizeof(float) * (size_t)m->seq_len);
    if (!x) { m->carry = 0; return lb_fail(LB_ERR_NOMEM, "out of memory"); }
    int64_t done = 0;
    int last_T = 1;
    while (done < n_prompt) {
        int Tc = (int)LB_MIN((int64_t)m->seq_len, n_prompt - done);
        for (int t = 0; t < Tc; t++) x[t] = (float)prompt[done + t];
        m->seq_T = Tc;
        lb_graph_set_input(m, x, Tc);
        lb_graph_forward(m, Tc, 0);
        done += Tc;
        last_T = Tc;
    }
    const float *logits = lb_graph_output(m)->out + (int64_t)(last_T - 1) * K;
    for (int64_t i = 0; i < n_out; i++) {
        uint32_t r[4];
        lb_philox4x32(key, 0, (uint64_t)i, r);
        out[i] = sample_token(logits, V < K ? V : K, temperature, lb_u32_to_unit(r[0]));
        x[0] = (float)out[i];
        m->seq_T = 1;
        lb_graph_set_input(m, x, 1);
        lb_graph_forward(m, 1, 0);
        logits = lb_graph_output(m)->out;
    }
    free(x);
    m->carry = 0;
    m->seq_T = m->seq_len;
    return LB_OK;
}
