/* Language models end to end: sequence graphs (Gather, LSTM/GRU, Gemm over rows = B x T)
 * against finite differences, with and without carried state and with quantizers on
 * the recurrent layer; quantizer placement; lb_train_lm, lb_eval_lm and lb_lm_generate
 * against direct computations; spec and corpus errors.
 *
 * Finite differences: the loss is the mean softmax cross-entropy over the B*T rows,
 * summed in double, of a float32 network, so a central difference carries rounding noise
 * of about 1e-7/eps; with eps = 4e-3 the tolerance is |fd - analytic| <= 1e-4 + 2e-2*|fd|.
 * The graphs are smooth (no Relu, Clip or pooling; QN's training form is a sum of
 * sigmoids), so every element must pass. A carried state is an input of the batch (the
 * truncated BPTT boundary): every loss evaluation restores it first, because each
 * forward overwrites state_h/state_c with its final state.
 *
 * Some checks state behaviour the library did not have when this test was written
 * (each says what it expects): lb_model_forward on a sequence model refusing token ids
 * outside the vocabulary and not cutting sequences at its 256-row chunks; lb_train_lm
 * calibrating again when a quantizer's schedule asks (QN's second phase), as lb_train
 * does; lb_train_lm's per-epoch evaluation working on a short validation split. */
#include "graph/graph.h"
#include "quant/quant.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static lb_model *make(const char *label, const char *spec) {
    lb_model *m = NULL;
    lb_status s = lb_model_create_from_json(&m, spec, strlen(spec), label);
    CHECK_MSG(s == LB_OK, "%s: %s", label, lb_last_error());
    return s ? NULL : m;
}

/* ------------------------------------------------------------------ graph gradients */

enum { MAXN = 16 };

typedef struct lmcase {
    lb_model *m;
    int rows;                  /* B * T */
    float *x;                  /* ids as floats */
    int32_t *y;                /* next-token labels */
    float *st_h[MAXN], *st_c[MAXN]; /* carried state to restore before each forward (carry) */
} lmcase;

static void put_state(lmcase *c) {
    lb_model *m = c->m;
    const int B = c->rows / m->seq_T;
    for (int i = 0; i < m->n_nodes; i++) {
        lb_node *n = &m->nodes[i];
        if (c->st_h[i]) memcpy(n->state_h, c->st_h[i], sizeof(float) * (size_t)B * (size_t)n->c);
        if (c->st_c[i]) memcpy(n->state_c, c->st_c[i], sizeof(float) * (size_t)B * (size_t)n->c);
    }
}

/* mean loss; with `grad`, also the backward (gradients in m->grads) */
static double lm_loss(lmcase *c, int grad) {
    lb_model *m = c->m;
    put_state(c);
    lb_graph_set_input(m, c->x, c->rows);
    lb_graph_forward(m, c->rows, 1);
    lb_node *o = lb_graph_output(m);
    double l = lb_softmax_xent(grad ? o->dout : NULL, NULL, o->out, c->y, c->rows, o->c) / c->rows;
    if (grad) lb_graph_backward(m, c->rows);
    return l;
}

static void fill_ids(float *x, int32_t *y, int n, int V, int K, uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        x[i] = (float)(lbt_splitmix64(&s) % (uint64_t)V);
        if (y) y[i] = (int)(lbt_splitmix64(&s) % (uint64_t)K);
    }
}

/* Every element of every trainable tensor against central differences. Returns the
 * number of elements outside tolerance. */
static int fd_all(const char *label, lmcase *c, float eps) {
    lb_model *m = c->m;
    lm_loss(c, 1);
    float *g = malloc(sizeof(float) * (size_t)m->n_params);
    memcpy(g, m->grads, sizeof(float) * (size_t)m->n_params);
    int checked = 0, bad = 0;
    double worst = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        const lb_tensor_entry *te = &m->tensors[t];
        if (!te->trainable) continue;
        int nonzero = 0;
        for (int64_t i = 0; i < te->size; i++) {
            float *p = m->params + te->offset + i, keep = *p;
            *p = keep + eps;
            double lp = lm_loss(c, 0);
            *p = keep - eps;
            double lm = lm_loss(c, 0);
            *p = keep;
            double fd = (lp - lm) / (2.0 * eps), an = g[te->offset + i];
            double err = fabs(fd - an), tol = 1e-4 + 2e-2 * fabs(fd);
            worst = fmax(worst, err / tol);
            nonzero += an != 0;
            checked++;
            if (err > tol) {
                bad++;
                if (bad <= 6) fprintf(stderr, "%s: %s[%lld]: analytic %.6g, finite difference %.6g\n", label, te->name, (long long)i, an, fd);
            }
        }
        CHECK_MSG(nonzero > 0, "%s: %s has an all-zero gradient", label, te->name);
    }
    CHECK_MSG(bad == 0, "%s: %d of %d gradient elements outside tolerance", label, bad, checked);
    printf("%s: %d elements checked, %d outside tolerance, worst %.2f of the tolerance\n", label, checked, bad, worst);
    free(g);
    return bad;
}

static void free_case(lmcase *c) {
    for (int i = 0; i < MAXN; i++) { free(c->st_h[i]); free(c->st_c[i]); }
    free(c->x);
    free(c->y);
    lb_model_destroy(c->m);
}

/* Build `spec`, fixed data (B sequences of the spec's T steps; ids in [0, V-2) so the last
 * two embedding rows are unused), optionally a carried state from a first batch. */
static int setup_case(lmcase *c, const char *label, const char *spec, int B, int carry) {
    memset(c, 0, sizeof *c);
    if (!(c->m = make(label, spec))) return 1;
    lb_model *m = c->m;
    CHECK(m->n_nodes <= MAXN);
    lb_model_init_params(m, 7);
    const int T = m->seq_len, V = lb_model_vocab(m), K = lb_model_num_outputs(m);
    m->seq_T = T;
    c->rows = B * T;
    c->x = malloc(sizeof(float) * (size_t)c->rows);
    c->y = malloc(sizeof(int32_t) * (size_t)c->rows);
    fill_ids(c->x, c->y, c->rows, V - 2, K, 11);
    CHECK_OK(lb_graph_reserve(m, c->rows, 1));
    m->step = 3;
    if (carry) {
        /* a first batch leaves its final state in state_h/state_c */
        m->carry = 1;
        float *x0 = malloc(sizeof(float) * (size_t)c->rows);
        fill_ids(x0, NULL, c->rows, V, K, 23);
        lb_graph_set_input(m, x0, c->rows);
        lb_graph_forward(m, c->rows, 1);
        free(x0);
        for (int i = 0; i < m->n_nodes; i++) {
            lb_node *n = &m->nodes[i];
            if (!lb_op_is_rnn(n->op)) continue;
            size_t sz = sizeof(float) * (size_t)B * (size_t)n->c;
            c->st_h[i] = malloc(sz);
            memcpy(c->st_h[i], n->state_h, sz);
            double norm = 0;
            for (int k = 0; k < B * n->c; k++) norm += fabs(c->st_h[i][k]);
            CHECK_MSG(norm > 0.01 * B * n->c, "%s: carried h of '%s' is (nearly) zero: %g", label, n->name, norm);
            if (n->state_c) {
                c->st_c[i] = malloc(sz);
                memcpy(c->st_c[i], n->state_c, sz);
            }
        }
    }
    return 0;
}

/* The embedding gradient: exactly zero on rows no id of the batch uses, non-zero on used ones. */
static void check_embedding_rows(const char *label, lmcase *c) {
    lb_model *m = c->m;
    lm_loss(c, 1);
    const lb_node *e = &m->nodes[0];
    CHECK(e->op == LB_OP_GATHER);
    const float *g = m->grads + m->tensors[e->p0].offset;
    int used[64] = {0};
    for (int r = 0; r < c->rows; r++) used[(int)c->x[r]] = 1;
    for (int v = 0; v < e->vocab && v < 64; v++) {
        double a = 0;
        for (int k = 0; k < e->c; k++) a += fabs(g[(int64_t)v * e->c + k]);
        if (used[v]) CHECK_MSG(a > 0, "%s: embedding row %d is used but has a zero gradient", label, v);
        else CHECK_MSG(a == 0, "%s: embedding row %d is unused but has gradient %g", label, v, a);
    }
}

static void grad_case(const char *label, const char *spec, int carry) {
    lmcase c;
    if (setup_case(&c, label, spec, 2, carry)) { free_case(&c); return; }
    check_embedding_rows(label, &c);
    fd_all(label, &c, 4e-3f);
    if (carry) {
        /* the carried state matters: the loss differs from a zero-state start */
        double l1 = lm_loss(&c, 0);
        lb_model *m = c.m;
        m->carry = 0;
        double l0 = lm_loss(&c, 0);
        CHECK_MSG(fabs(l1 - l0) > 1e-6, "%s: the carried state does not change the loss (%g vs %g)", label, l1, l0);
    }
    free_case(&c);
}

#define SPEC1(cell, bit) "{\"name\": \"tiny\", \"input\": {\"tokens\": 4, \"level\": \"word\"}, \"layers\": [" \
    "{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 7, \"dim\": 5}," \
    "{\"name\": \"rnn\", \"op\": \"" cell "\", \"hidden\": 6, \"bitrnn\": " bit "}," \
    "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 7}]}"
#define SPEC2(bit) "{\"name\": \"tiny2\", \"input\": {\"tokens\": 4}, \"layers\": [" \
    "{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 7, \"dim\": 5}," \
    "{\"name\": \"rnn\", \"op\": \"LSTM\", \"hidden\": 6, \"bitrnn\": " bit "}," \
    "{\"name\": \"drop\", \"op\": \"Dropout\", \"p\": 0}," \
    "{\"name\": \"rnn2\", \"op\": \"LSTM\", \"hidden\": 4, \"bitrnn\": " bit "}," \
    "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 7}]}"

static void test_gradients(void) {
    grad_case("lstm", SPEC1("LSTM", "false"), 0);
    grad_case("lstm_bitrnn", SPEC1("LSTM", "true"), 0);
    grad_case("gru", SPEC1("GRU", "false"), 0);
    grad_case("gru_bitrnn", SPEC1("GRU", "true"), 0);
    grad_case("lstm2_dropout", SPEC2("false"), 0);
    grad_case("lstm2_dropout_bitrnn", SPEC2("true"), 0);
    grad_case("lstm_carry", SPEC1("LSTM", "false"), 1);
    grad_case("lstm_bitrnn_carry", SPEC1("LSTM", "true"), 1);
    grad_case("gru_carry", SPEC1("GRU", "false"), 1);
    grad_case("gru_bitrnn_carry", SPEC1("GRU", "true"), 1);
    grad_case("lstm2_carry", SPEC2("false"), 1);
    grad_case("lstm2_bitrnn_carry", SPEC2("true"), 1);
}

/* ------------------------------------------------------------------ quantized LM */

static int has_tensor(const lb_model *m, const char *name) { return lb_model_find_tensor(m, name) >= 0; }

static int count_prefix(const lb_model *m, const char *prefix) {
    int k = 0;
    for (int i = 0; i < m->n_tensors; i++) k += !strncmp(m->tensors[i].name, prefix, strlen(prefix));
    return k;
}

/* QN on a recurrent layer: its W, R and hidden-state quantizers' learned tensors, the
 * hidden-state quantizer's gradients summed over the time steps through the hook, in
 * QN's training (sigmoid) form, against finite differences of the whole graph's loss. */
static void quant_case(const char *label, const char *spec, int carry, float temperature) {
    lmcase c;
    if (setup_case(&c, label, spec, 2, 0)) { free_case(&c); return; }
    lb_model *m = c.m;
    CHECK_OK(lb_model_set_quant(m, "qn:2/2", 0));
    const lb_node *r = &m->nodes[1];
    CHECK(r->wq && r->rq && r->aq && r->hook_gacc);
    static const char *const names[] = {"rnn.wq.alpha", "rnn.wq.beta", "rnn.wq.b", "rnn.rq.alpha", "rnn.rq.beta",
                                        "rnn.rq.b", "rnn.aq.alpha", "rnn.aq.beta", "rnn.aq.b"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECK_MSG(has_tensor(m, names[i]), "%s: no tensor %s", label, names[i]);
    CHECK(!count_prefix(m, "dec.wq.") && !count_prefix(m, "emb.wq."));
    int ia = lb_model_find_tensor(m, "rnn.aq.alpha"), ib = lb_model_find_tensor(m, "rnn.aq.beta");
    int ibb = lb_model_find_tensor(m, "rnn.aq.b");
    if (ia < 0 || ib < 0 || ibb < 0) { free_case(&c); return; }
    CHECK(m->tensors[ia].trainable && m->tensors[ib].trainable && !m->tensors[ibb].trainable);

    /* as lb_train_lm: weight quantizers from the latent weights, activation quantizers
     * calibrated on data (float forward, observing) */
    lb_quant_init_weights(m);
    m->seq_T = m->seq_len;
    CHECK(lb_quant_needs_calibration(m));
    CHECK_OK(lb_quant_calibrate(m, c.x, c.rows, c.rows));
    CHECK(!lb_quant_needs_calibration(m));
    for (int i = 0; i < m->n_quants; i++) CHECK(m->quants[i]->initialized);
    /* one epoch of one: QN's last phase, every quantizer in its training form */
    lb_qsched qs = {0, 1, 1, 0, 1};
    lb_quant_schedule(m, &qs, 0);
    for (int i = 0; i < m->n_quants; i++) {
        CHECK(m->quants[i]->mode == LB_QMODE_QUANT);
        m->quants[i]->temperature = temperature;
    }
    CHECK_OK(lb_graph_reserve(m, c.rows, 1));
    if (carry) {
        m->carry = 1;
        float *x0 = malloc(sizeof(float) * (size_t)c.rows);
        fill_ids(x0, NULL, c.rows, lb_model_vocab(m), 7, 29);
        lb_graph_set_input(m, x0, c.rows);
        lb_graph_forward(m, c.rows, 1);
        free(x0);
        size_t sz = sizeof(float) * (size_t)(c.rows / m->seq_T) * (size_t)r->c;
        c.st_h[1] = malloc(sz);
        memcpy(c.st_h[1], r->state_h, sz);
        if (r->state_c) { c.st_c[1] = malloc(sz); memcpy(c.st_c[1], r->state_c, sz); }
    }
    /* the learned activation parameters have gradients, summed over steps */
    lm_loss(&c, 1);
    const float ga = m->grads[m->tensors[ia].offset], gb = m->grads[m->tensors[ib].offset];
    CHECK_MSG(ga != 0 && gb != 0, "%s: aq gradients alpha %g beta %g", label, ga, gb);
    fd_all(label, &c, 4e-3f);
    /* alpha and beta again, with a step relative to their size and a tighter tolerance
     * (beta is ~10, alpha ~0.1: one absolute step does not suit both) */
    const int iab[2] = {ia, ib};
    const float gab[2] = {ga, gb};
    for (int k = 0; k < 2; k++) {
        float *p = m->params + m->tensors[iab[k]].offset, keep = *p, e = 5e-3f * fabsf(keep);
        *p = keep + e;
        double lp = lm_loss(&c, 0);
        *p = keep - e;
        double lm = lm_loss(&c, 0);
        *p = keep;
        double fd = (lp - lm) / (2.0 * e);
        CHECK_MSG(fabs(fd - gab[k]) <= 1e-6 + 5e-3 * fabs(fd), "%s: %s: analytic %.7g, finite difference %.7g", label,
                  m->tensors[iab[k]].name, gab[k], fd);
    }

    /* the hard (evaluation) form: every hidden state the LSTM/GRU emits is a level alpha*j */
    if (!carry) {
        lb_graph_set_input(m, c.x, c.rows);
        lb_graph_forward(m, c.rows, 0);
        const float alpha = m->params[m->tensors[ia].offset];
        int off = 0, lv[4] = {0};
        for (int i = 0; i < c.rows * r->c; i++) {
            float v = r->qout[i];
            int j = (int)lrintf(v / alpha);
            if (j < 0 || j > 3 || fabsf(v - alpha * (float)j) > 1e-6f * alpha) off++;
            else lv[j]++;
        }
        CHECK_MSG(off == 0, "%s: %d hidden values off the 2-bit levels alpha*{0,1,2,3}", label, off);
        CHECK_MSG(!!lv[0] + !!lv[1] + !!lv[2] + !!lv[3] >= 2, "%s: levels used %d %d %d %d", label, lv[0], lv[1], lv[2], lv[3]);

        /* FLOAT mode (QN's first phase): the hook passes through, no aq gradients */
        r->aq->mode = LB_QMODE_FLOAT;
        lm_loss(&c, 1);
        CHECK(m->grads[m->tensors[ia].offset] == 0 && m->grads[m->tensors[ib].offset] == 0);
        r->aq->mode = LB_QMODE_QUANT;
    }
    free_case(&c);
}

static void test_quantized(void) {
    quant_case("qn_lstm_T5", SPEC1("LSTM", "false"), 0, 5.0f);
    quant_case("qn_lstm_bitrnn_T2", SPEC1("LSTM", "true"), 0, 2.0f);
    quant_case("qn_gru_T5", SPEC1("GRU", "false"), 0, 5.0f);
    quant_case("qn_lstm_carry_T5", SPEC1("LSTM", "false"), 1, 5.0f);
    quant_case("qn_gru_bitrnn_carry_T2", SPEC1("GRU", "true"), 1, 2.0f);
}

/* ------------------------------------------------------------------ placement */

static void test_placement(void) {
    const char *cells[2] = {SPEC1("LSTM", "false"), SPEC1("GRU", "false")};
    for (int k = 0; k < 2; k++) {
        lb_model *m = make("placement", cells[k]);
        if (!m) return;
        CHECK_OK(lb_model_set_quant(m, "qn:2/2", 0));
        CHECK(m->nodes[0].op == LB_OP_GATHER && lb_op_is_rnn(m->nodes[1].op) && m->nodes[2].op == LB_OP_GEMM);
        CHECK(!m->nodes[0].wq && !m->nodes[0].aq && !m->nodes[0].rq);
        CHECK(m->nodes[1].wq && m->nodes[1].rq && m->nodes[1].aq);
        CHECK(!m->nodes[2].wq && !m->nodes[2].aq);
        CHECK(count_prefix(m, "rnn.wq.") == 3 && count_prefix(m, "rnn.rq.") == 3 && count_prefix(m, "rnn.aq.") == 3);
        CHECK(count_prefix(m, "dec.") == 2 && count_prefix(m, "emb.") == 1);
        CHECK(!strcmp(lb_model_quant(m), "qn:2/2") && !lb_model_quant_all(m));
        /* the latent tensors are still there, and the quantizer's shapes are theirs */
        int iw = lb_model_find_tensor(m, "rnn.weight"), ir = lb_model_find_tensor(m, "rnn.recurrence");
        CHECK(iw >= 0 && ir >= 0);
        if (iw >= 0 && ir >= 0) CHECK(m->nodes[1].wq->n == m->tensors[iw].size && m->nodes[1].rq->n == m->tensors[ir].size);

        CHECK_OK(lb_model_set_quant(m, "qn:2/2", 1));
        CHECK(!m->nodes[0].wq && m->nodes[1].wq && m->nodes[1].rq && m->nodes[1].aq && m->nodes[2].wq);
        CHECK(count_prefix(m, "dec.wq.") == 3 && !count_prefix(m, "emb.wq.") && lb_model_quant_all(m));

        /* a method without learned weight tensors: quantizers, no wq/rq tensors */
        CHECK_OK(lb_model_set_quant(m, "uniform:2/2", 0));
        CHECK(m->nodes[1].wq && m->nodes[1].rq && m->nodes[1].aq && !m->nodes[2].wq);
        CHECK(!count_prefix(m, "rnn.wq.") && !count_prefix(m, "rnn.rq."));

        /* fp32: nothing, and the parameter block shrinks back */
        CHECK_OK(lb_model_set_quant(m, "fp32", 0));
        CHECK(!m->nodes[1].wq && !m->nodes[1].rq && !m->nodes[1].aq && !m->n_quants && m->n_tensors == 6);
        lb_model_destroy(m);
    }
    /* two recurrent layers: both quantized; the spec's own "quant" naming the last layer */
    lb_model *m = make("placement2",
        "{\"input\": {\"tokens\": 3}, \"quant\": {\"default\": \"qn:2/2\", \"dec\": \"qn:4/4\"}, \"layers\": ["
        "{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 9, \"dim\": 4},"
        "{\"name\": \"l1\", \"op\": \"GRU\", \"hidden\": 5},"
        "{\"name\": \"l2\", \"op\": \"LSTM\", \"hidden\": 5},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 9}]}");
    if (m) {
        CHECK(!m->nodes[0].wq);
        for (int i = 1; i <= 2; i++) CHECK(m->nodes[i].wq && m->nodes[i].rq && m->nodes[i].aq);
        CHECK(m->nodes[3].wq && m->nodes[3].wq->bits == 4);
        lb_model_destroy(m);
    }
}

/* ------------------------------------------------------------------ corpus, training */

static char *make_corpus(int lines, size_t *len) {
    static const char *const subj[] = {"the cat", "a dog", "the bird"};
    static const char *const verb[] = {"sat", "ran"};
    static const char *const obj[] = {"mat", "rug", "floor", "bed"};
    size_t cap = (size_t)lines * 64 + 1, n = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < lines; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s %s on the %s.\n", subj[i % 3], verb[i % 2], obj[(i / 2) % 4]);
    *len = n;
    return buf;
}

typedef struct progress {
    float first, last;
    int steps, epochs;
    double val_loss;
} progress;

static int on_progress(const lb_train_progress *p, void *u) {
    progress *pr = u;
    CHECK(p->lm == 1);
    if (p->kind == 0) {
        if (!pr->steps) pr->first = p->loss;
        pr->last = p->loss;
        pr->steps++;
        CHECK(isfinite(p->loss) && p->train_acc >= 0 && p->train_acc <= 1);
    } else if (p->kind == 1) {
        pr->epochs++;
        pr->val_loss = p->test_loss;
    }
    return 0;
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb, ca, cb;
    long n = 0;
    while (same) {
        ca = fgetc(fa);
        cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
        n++;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same && n > 1000;
}

#define LMSPEC "{\"name\": \"toy\", \"input\": {\"tokens\": 8, \"level\": \"word\"}, \"layers\": [" \
    "{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 16, \"dim\": 12}," \
    "{\"name\": \"rnn\", \"op\": \"LSTM\", \"hidden\": 16}," \
    "{\"name\": \"drop\", \"op\": \"Dropout\", \"p\": 0.1}," \
    "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 16}]}"

static void train_cfg(lb_train_config *cfg, const char *out) {
    lb_train_config_default(cfg);
    cfg->epochs = 4;
    cfg->batch = 4;
    cfg->lr = 0.02f;
    cfg->opt = LB_OPT_ADAM;
    cfg->weight_decay = 0;
    cfg->sched = LB_SCHED_CONST;
    cfg->grad_clip = 5;
    cfg->seed = 3;
    cfg->threads = 2;
    cfg->out_path = out;
    cfg->eval_every_epoch = 1;
}

/* One stream of tokens as a single sequence from a zero state (no carry, no chunks):
 * sum of the cross-entropy of predicting s[1..n) and the count of argmax hits. */
static double direct_stream(lb_model *m, const int32_t *s, int64_t n, int64_t *hits) {
    const int rows = (int)(n - 1), K = lb_model_num_outputs(m);
    float *x = malloc(sizeof(float) * (size_t)rows);
    for (int i = 0; i < rows; i++) x[i] = (float)s[i];
    lb_graph_reserve(m, rows, 0);
    m->carry = 0;
    m->seq_T = rows;
    lb_graph_set_input(m, x, rows);
    lb_graph_forward(m, rows, 0);
    double l = lb_softmax_xent(NULL, hits, lb_graph_output(m)->out, s + 1, rows, K);
    m->seq_T = m->seq_len;
    free(x);
    return l;
}

static void check_eval(lb_model *m, const lb_text *t, int split, int streams) {
    lb_lm_result r, r2;
    CHECK_OK(lb_eval_lm(m, t, split, streams, &r));
    const int64_t L = t->len[split] / streams;
    CHECK_MSG(r.tokens == streams * (L - 1), "split %d, %d streams: %lld tokens, expected %lld", split, streams,
              (long long)r.tokens, (long long)(streams * (L - 1)));
    CHECK_CLOSE(r.perplexity, exp(r.loss), 0, 1e-12);
    CHECK_CLOSE(r.bpc, r.loss / log(2.0), 0, 1e-12);
    CHECK(m->carry == 0 && m->seq_T == m->seq_len);
    /* PyTorch's batchify: stream b is ids[b*L, (b+1)*L); each stream predicted from a zero
     * state over its L - 1 next tokens, whatever the BPTT chunks */
    double sum = 0;
    int64_t hits = 0;
    for (int b = 0; b < streams; b++) {
        int64_t h;
        sum += direct_stream(m, t->ids[split] + (int64_t)b * L, L, &h);
        hits += h;
    }
    CHECK_CLOSE(r.loss, sum / (double)(streams * (L - 1)), 1e-7, 1e-5);
    CHECK_MSG(llabs((long long)llround(r.accuracy * (double)r.tokens) - (long long)hits) <= 1,
              "split %d: accuracy %g of %lld tokens, direct hits %lld", split, r.accuracy, (long long)r.tokens, (long long)hits);
    /* the state is reset at the start: a second evaluation is bit-identical */
    CHECK_OK(lb_eval_lm(m, t, split, streams, &r2));
    CHECK(r2.loss == r.loss && r2.tokens == r.tokens);
}

/* Greedy generation recomputed: the whole prompt plus what was generated so far as one
 * sequence, the argmax of its last row. */
static void check_generate(lb_model *m, int V) {
    const int np = 11, nout = 12, K = lb_model_num_outputs(m);
    int32_t prompt[11], out[12], out2[12], all[64];
    for (int i = 0; i < np; i++) prompt[i] = (i * 5 + 2) % V;
    CHECK_OK(lb_lm_generate(m, prompt, np, out, nout, 0.0f, 1));
    CHECK(m->carry == 0 && m->seq_T == m->seq_len);
    memcpy(all, prompt, sizeof prompt);
    float *x = malloc(sizeof(float) * 64);
    for (int i = 0; i < nout; i++) {
        const int n = np + i;
        for (int k = 0; k < n; k++) x[k] = (float)all[k];
        lb_graph_reserve(m, n, 0);
        m->carry = 0;
        m->seq_T = n;
        lb_graph_set_input(m, x, n);
        lb_graph_forward(m, n, 0);
        const float *lg = lb_graph_output(m)->out + (int64_t)(n - 1) * K;
        int best = 0;
        for (int k = 1; k < K; k++) best = lg[k] > lg[best] ? k : best;
        CHECK_MSG(out[i] == best, "greedy token %d: generated %d, argmax of the recomputed logits %d", i, out[i], best);
        all[n] = out[i];
    }
    m->seq_T = m->seq_len;
    free(x);
    /* sampling: reproducible by seed, in range, and the seed matters */
    CHECK_OK(lb_lm_generate(m, prompt, np, out, nout, 1.0f, 42));
    CHECK_OK(lb_lm_generate(m, prompt, np, out2, nout, 1.0f, 42));
    CHECK(!memcmp(out, out2, sizeof out));
    for (int i = 0; i < nout; i++) CHECK(out[i] >= 0 && out[i] < V);
    int differ = 0;
    for (uint64_t seed = 43; seed < 46; seed++) {
        CHECK_OK(lb_lm_generate(m, prompt, np, out2, nout, 2.0f, seed));
        differ |= memcmp(out, out2, sizeof out) != 0;
        for (int i = 0; i < nout; i++) CHECK(out2[i] >= 0 && out2[i] < V);
    }
    CHECK(differ);
    /* bad prompts */
    int32_t bad[3] = {1, V, 2};
    CHECK_STATUS(lb_lm_generate(m, bad, 3, out, nout, 0.0f, 1), LB_ERR_INVALID);
    bad[1] = -1;
    CHECK_STATUS(lb_lm_generate(m, bad, 3, out, nout, 0.0f, 1), LB_ERR_INVALID);
    CHECK_STATUS(lb_lm_generate(m, prompt, 0, out, nout, 0.0f, 1), LB_ERR_INVALID);
}

static void test_training(void) {
    char dir[512], p1[600], p2[600], p3[600];
    if (lbt_mkdtemp(dir, sizeof dir, "test_lm")) { CHECK(0); return; }
    snprintf(p1, sizeof p1, "%s/a.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/b.safetensors", dir);
    snprintf(p3, sizeof p3, "%s/q.safetensors", dir);
    size_t len;
    char *text = make_corpus(120, &len);
    lb_text *t = NULL;
    CHECK_OK(lb_text_load_buffer(&t, text, len, "toy.txt", LB_TEXT_WORD, 100));
    free(text);
    if (!t) { rmdir(dir); return; }
    CHECK(t->vocab.n == 14 && t->len[1] >= 40);
    lb_model *m = make("toy", LMSPEC), *m2 = make("toy", LMSPEC);
    if (!m || !m2) goto done;
    lb_train_config cfg;
    train_cfg(&cfg, p1);

    /* validation perplexity at initialisation (lb_train_lm initialises from the seed) */
    lb_lm_result r0, r1;
    lb_model_init_params(m, cfg.seed);
    CHECK_OK(lb_eval_lm(m, t, 1, 10, &r0));
    CHECK(isfinite(r0.perplexity) && r0.perplexity > 5);

    progress pr = {0};
    CHECK_OK(lb_train_lm(m, t, &cfg, on_progress, &pr));
    CHECK(pr.steps >= 4 && pr.epochs == cfg.epochs);
    CHECK_MSG(pr.last < 0.7f * pr.first, "training loss %g -> %g", pr.first, pr.last);
    CHECK(isfinite(pr.val_loss) && pr.val_loss > 0);
    CHECK_OK(lb_eval_lm(m, t, 1, 10, &r1));
    CHECK_MSG(isfinite(r1.perplexity) && r1.perplexity < 0.5 * r0.perplexity, "validation perplexity %g -> %g",
              r0.perplexity, r1.perplexity);
    CHECK_CLOSE(r1.loss, pr.val_loss, 0, 1e-12); /* the last epoch's evaluation is this one */
    printf("lb_train_lm: loss %.3f -> %.3f, validation perplexity %.2f -> %.2f\n", pr.first, pr.last, r0.perplexity,
           r1.perplexity);

    /* same seed and threads: bit-identical checkpoints */
    cfg.out_path = p2;
    progress pr2 = {0};
    CHECK_OK(lb_train_lm(m2, t, &cfg, on_progress, &pr2));
    CHECK_MSG(same_file(p1, p2), "two runs with the same seed and threads wrote different checkpoints");
    CHECK(pr2.last == pr.last);

    /* the vocabulary in the metadata */
    char *vj = lb_vocab_to_json(&t->vocab, t->level);
    char meta[8192];
    CHECK_OK(lb_checkpoint_meta(p1, "vocab", meta, sizeof meta));
    CHECK(vj && !strcmp(meta, vj));
    free(vj);
    /* a checkpoint is self-describing: the same model, the same perplexity */
    lb_model *mc = NULL;
    CHECK_OK(lb_model_create_from_checkpoint(&mc, p1));
    if (mc) {
        lb_lm_result rc;
        CHECK(lb_model_is_lm(mc) && lb_model_seq_len(mc) == 8 && lb_model_vocab(mc) == 16);
        CHECK_OK(lb_eval_lm(mc, t, 1, 10, &rc));
        CHECK_CLOSE(rc.loss, r1.loss, 0, 1e-9);
        lb_model_destroy(mc);
    }

    /* lb_eval_lm against a direct computation, with a partial last BPTT chunk (split 1:
     * 42 tokens, 3 streams of L = 14, chunks of 8 then 5), the training split (5 streams
     * of 151) and one stream of the test split (chunks of 8, then 1) */
    check_eval(m, t, 1, 3);
    check_eval(m, t, 0, 5);
    check_eval(m, t, 2, 1);
    check_generate(m, 16);

    /* a quantized LM trains: calibration (carrying state) and the hook in training */
    lb_model *mq = make("toyq", LMSPEC);
    if (mq) {
        CHECK_OK(lb_model_set_quant(mq, "qn:2/2,phases=1", 0));
        lb_train_config qc;
        train_cfg(&qc, p3);
        qc.epochs = 2;
        progress pq = {0};
        CHECK_OK(lb_train_lm(mq, t, &qc, on_progress, &pq));
        for (int i = 0; i < mq->n_quants; i++) CHECK(mq->quants[i]->initialized);
        lb_lm_result rq;
        CHECK_OK(lb_eval_lm(mq, t, 1, 10, &rq));
        CHECK_MSG(isfinite(rq.perplexity) && rq.perplexity < r0.perplexity, "quantized LM: validation perplexity %g",
                  rq.perplexity);
        CHECK(isfinite(pq.last) && pq.last < pq.first);
        /* the checkpoint holds the hidden-state quantizer: reloaded, the same perplexity */
        lb_model *mr = NULL;
        CHECK_OK(lb_model_create_from_checkpoint(&mr, p3));
        if (mr) {
            lb_lm_result rr;
            CHECK(lb_model_find_tensor(mr, "rnn.aq.alpha") >= 0 && lb_model_find_tensor(mr, "rnn.rq.beta") >= 0);
            CHECK(!strcmp(lb_model_quant(mr), lb_model_quant(mq)));
            CHECK_OK(lb_eval_lm(mr, t, 1, 10, &rr));
            CHECK_CLOSE(rr.loss, rq.loss, 0, 1e-9);
            lb_model_destroy(mr);
        }
        lb_model_destroy(mq);
    }

    /* QN's default three phases: the activation quantizers start in the second (epoch 1 of
     * 3), whose first step asks for a new calibration (the schedule clears `initialized`,
     * as lb_train does for images): lb_train_lm must calibrate them again there */
    lb_model *m3 = make("toyq3", LMSPEC);
    if (m3) {
        CHECK_OK(lb_model_set_quant(m3, "qn:2/2", 0));
        lb_train_config qc;
        train_cfg(&qc, p3);
        qc.epochs = 3;
        qc.eval_every_epoch = 0;
        CHECK_OK(lb_train_lm(m3, t, &qc, NULL, NULL));
        int stale = 0;
        for (int i = 0; i < m3->n_quants; i++) stale += !m3->quants[i]->initialized;
        CHECK_MSG(stale == 0 && !lb_quant_needs_calibration(m3),
                  "qn:2/2 over 3 epochs: %d activation quantizer(s) left uncalibrated after the phase-1 request", stale);
        lb_model_destroy(m3);
    }

    /* stopped after two epochs (max_steps) and resumed: at an epoch boundary the carried
     * state is reset either way, so the run ends bit-identical to the uninterrupted one */
    lb_model *ms = make("toy", LMSPEC);
    if (ms) {
        lb_train_config rc;
        train_cfg(&rc, p2);
        unlink(p2);
        const int64_t spe = (t->len[0] / rc.batch - 1 + 7) / 8;
        rc.max_steps = 2 * spe;
        CHECK_OK(lb_train_lm(ms, t, &rc, NULL, NULL));
        lb_ckpt_state st;
        CHECK_OK(lb_checkpoint_load(ms, p2, &st));
        CHECK(st.step == 2 * spe && st.epoch == 2 && st.seed == rc.seed);
        lb_model_destroy(ms);
        ms = make("toy", LMSPEC);
        rc.max_steps = 0;
        rc.resume = 1;
        if (ms) CHECK_OK(lb_train_lm(ms, t, &rc, NULL, NULL));
        CHECK_MSG(same_file(p1, p2), "a run resumed at an epoch boundary ends with a different checkpoint");
        lb_model_destroy(ms);
    }

    /* corpus errors: a vocabulary larger than the Gather's (or the Gemm's), a char corpus */
    lb_model *small = make("small",
        "{\"input\": {\"tokens\": 8}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"rnn\", \"op\": \"LSTM\", \"hidden\": 4}, {\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 16}]}");
    if (small) {
        cfg.out_path = p3;
        CHECK_STATUS(lb_train_lm(small, t, &cfg, NULL, NULL), LB_ERR_INVALID);
        CHECK(strstr(lb_last_error(), "vocabulary") && strstr(lb_last_error(), "14"));
        lb_lm_result rr;
        CHECK_STATUS(lb_eval_lm(small, t, 1, 10, &rr), LB_ERR_INVALID);
        lb_model_destroy(small);
    }
    lb_model *narrow = make("narrow",
        "{\"input\": {\"tokens\": 8}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 16, \"dim\": 4},"
        "{\"name\": \"rnn\", \"op\": \"GRU\", \"hidden\": 4}, {\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 12}]}");
    if (narrow) {
        CHECK_STATUS(lb_train_lm(narrow, t, &cfg, NULL, NULL), LB_ERR_INVALID);
        CHECK(strstr(lb_last_error(), "vocabulary") != NULL);
        lb_model_destroy(narrow);
    }
    {
        size_t cl;
        char *ct = make_corpus(40, &cl);
        lb_text *tc = NULL;
        CHECK_OK(lb_text_load_buffer(&tc, ct, cl, "toy-char.txt", LB_TEXT_CHAR, 100));
        free(ct);
        if (tc) {
            CHECK_STATUS(lb_train_lm(m, tc, &cfg, NULL, NULL), LB_ERR_INVALID);
            CHECK(strstr(lb_last_error(), "character") != NULL);
            lb_lm_result rr;
            CHECK_STATUS(lb_eval_lm(m, tc, 1, 10, &rr), LB_ERR_INVALID);
            /* the same corpus fits a char-level model */
            lb_model *mch = make("toy-char",
                "{\"input\": {\"tokens\": 8, \"level\": \"char\"}, \"layers\": ["
                "{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 32, \"dim\": 4},"
                "{\"name\": \"rnn\", \"op\": \"GRU\", \"hidden\": 4}, {\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 32}]}");
            if (mch) {
                CHECK(lb_model_text_level(mch) == 1 && tc->vocab.n <= 32);
                CHECK_OK(lb_eval_lm(mch, tc, 1, 4, &rr));
                CHECK(isfinite(rr.loss) && rr.tokens > 0);
                CHECK_STATUS(lb_train_lm(mch, t, &cfg, NULL, NULL), LB_ERR_INVALID); /* a word corpus */
                CHECK(strstr(lb_last_error(), "word") != NULL);
                lb_model_destroy(mch);
            }
            lb_text_free(tc);
        }
    }
    /* A short validation split (40 lines: 2 validation lines of 7 tokens) with the default
     * per-epoch evaluation: training must not fail after its first epoch because the
     * split is shorter than the evaluation's fixed 10 streams */
    {
        size_t sl;
        char *st = make_corpus(40, &sl);
        lb_text *ts = NULL;
        CHECK_OK(lb_text_load_buffer(&ts, st, sl, "short.txt", LB_TEXT_WORD, 100));
        free(st);
        lb_model *mm = make("toy", LMSPEC);
        if (ts && mm) {
            lb_train_config sc;
            train_cfg(&sc, p3);
            sc.epochs = 2;
            progress ps = {0};
            lb_status s = lb_train_lm(mm, ts, &sc, on_progress, &ps);
            CHECK_MSG(s == LB_OK, "lb_train_lm on a 40-line corpus with eval_every_epoch: %s", lb_last_error());
            CHECK_MSG(ps.epochs == 2, "%d epoch-end reports, expected 2", ps.epochs);
            sc.eval_every_epoch = 0;
            CHECK_OK(lb_train_lm(mm, ts, &sc, NULL, NULL));
        }
        lb_model_destroy(mm);
        lb_text_free(ts);
    }
    /* a non-LM model */
    lb_model *img = make("img", "{\"input\": [4], \"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 3}]}");
    if (img) {
        lb_lm_result rr;
        int32_t pr1 = 0, o1;
        CHECK_STATUS(lb_eval_lm(img, t, 1, 10, &rr), LB_ERR_INVALID);
        CHECK_STATUS(lb_train_lm(img, t, &cfg, NULL, NULL), LB_ERR_INVALID);
        CHECK_STATUS(lb_lm_generate(img, &pr1, 1, &o1, 1, 0.0f, 0), LB_ERR_INVALID);
        CHECK(!lb_model_is_lm(img) && lb_model_vocab(img) == 0);
        lb_model_destroy(img);
    }
    /* splits too short for the streams */
    {
        lb_lm_result rr;
        CHECK_STATUS(lb_eval_lm(m, t, 1, 1000, &rr), LB_ERR_INVALID);
        CHECK_STATUS(lb_eval_lm(m, t, 3, 10, &rr), LB_ERR_INVALID);
    }
done:
    lb_model_destroy(m);
    lb_model_destroy(m2);
    lb_text_free(t);
    unlink(p1);
    unlink(p2);
    unlink(p3);
    rmdir(dir);
}

/* ------------------------------------------------------------------ lb_model_forward */

/* The public forward on a sequence model: n tokens are n rows. Token ids out of range
 * must be refused (the Gather reads table row id), and the rows must be cut into
 * sequences consistently: whole sequences of T from a zero state, or an error. */
static void test_model_forward(void) {
    lb_model *m = make("fwd",
        "{\"input\": {\"tokens\": 6}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 7, \"dim\": 5},"
        "{\"name\": \"rnn\", \"op\": \"LSTM\", \"hidden\": 6}, {\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 7}]}");
    if (!m) return;
    const int T = 6, K = 7, nseq = 50, n = nseq * T; /* 300 rows: lb_model_forward works in chunks of 256 */
    float *x = malloc(sizeof(float) * (size_t)n), *lg = malloc(sizeof(float) * (size_t)n * K);
    fill_ids(x, NULL, n, 7, K, 5);
    /* reference: every sequence alone, through the graph */
    float *ref = malloc(sizeof(float) * (size_t)n * K);
    lb_graph_reserve(m, T, 0);
    for (int s = 0; s < nseq; s++) {
        m->seq_T = T;
        lb_graph_set_input(m, x + s * T, T);
        lb_graph_forward(m, T, 0);
        memcpy(ref + (int64_t)s * T * K, lb_graph_output(m)->out, sizeof(float) * (size_t)T * K);
    }
    /* one sequence at a time through the API */
    CHECK_OK(lb_model_forward(m, x, T, 0, lg));
    double worst = 0;
    for (int i = 0; i < T * K; i++) worst = fmax(worst, fabs(lg[i] - ref[i]));
    CHECK_MSG(worst < 1e-5, "lb_model_forward of one sequence differs from the graph by %g", worst);
    /* many: the chunks must not cut sequences */
    lb_status s = lb_model_forward(m, x, n, 0, lg);
    if (s == LB_OK) {
        worst = 0;
        for (int i = 0; i < n * K; i++) worst = fmax(worst, fabs(lg[i] - ref[i]));
        CHECK_MSG(worst < 1e-5, "lb_model_forward of %d sequences (%d tokens) differs from one at a time by %g", nseq, n, worst);
    } else {
        CHECK_MSG(s == LB_ERR_INVALID, "lb_model_forward: %s", lb_last_error());
    }
    /* a token id equal to the vocabulary size */
    x[2] = 7.0f;
    CHECK_STATUS(lb_model_forward(m, x, T, 0, lg), LB_ERR_INVALID);
    free(x);
    free(lg);
    free(ref);
    lb_model_destroy(m);
}

/* ------------------------------------------------------------------ spec errors */

static void expect_spec_error(const char *label, const char *spec, const char *needle1, const char *needle2) {
    lb_model *m = NULL;
    lb_status s = lb_model_create_from_json(&m, spec, strlen(spec), label);
    CHECK_MSG(s == LB_ERR_INVALID && !m, "%s: status %d", label, (int)s);
    const char *e = lb_last_error();
    CHECK_MSG(strstr(e, label) != NULL, "%s: message does not name the source: %s", label, e);
    if (needle1) CHECK_MSG(strstr(e, needle1) != NULL, "%s: message lacks '%s': %s", label, needle1, e);
    if (needle2) CHECK_MSG(strstr(e, needle2) != NULL, "%s: message lacks '%s': %s", label, needle2, e);
    lb_model_destroy(m);
}

static void test_spec_errors(void) {
    expect_spec_error("gather_image",
        "{\"input\": [1, 28, 28], \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "'emb'", "tokens");
    expect_spec_error("lstm_flat",
        "{\"input\": [8], \"layers\": [{\"name\": \"lstmx\", \"op\": \"LSTM\", \"hidden\": 4},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 3}]}", "'lstmx'", "sequence");
    expect_spec_error("gru_flat",
        "{\"input\": [8], \"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 4},"
        "{\"name\": \"grux\", \"op\": \"GRU\", \"hidden\": 4}, {\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 3}]}",
        "'grux'", "sequence");
    expect_spec_error("conv_tokens",
        "{\"input\": {\"tokens\": 4}, \"layers\": [{\"name\": \"convx\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 1},"
        "{\"name\": \"f\", \"op\": \"Flatten\"}, {\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 3}]}", "'convx'", "Gather");
    expect_spec_error("gemm_tokens",
        "{\"input\": {\"tokens\": 4}, \"layers\": [{\"name\": \"fcx\", \"op\": \"Gemm\", \"out\": 4}]}", "'fcx'", "Gather");
    expect_spec_error("lstm_reads_input",
        "{\"input\": {\"tokens\": 4}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"lstmy\", \"op\": \"LSTM\", \"hidden\": 4, \"inputs\": [\"input\"]},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "'lstmy'", NULL);
    expect_spec_error("gather_twice",
        "{\"input\": {\"tokens\": 4}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"emb2\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "'emb2'", NULL);
    expect_spec_error("tokens_zero",
        "{\"input\": {\"tokens\": 0}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "tokens", NULL);
    expect_spec_error("tokens_frac",
        "{\"input\": {\"tokens\": 2.5}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "tokens", NULL);
    expect_spec_error("tokens_missing",
        "{\"input\": {\"level\": \"word\"}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "tokens", NULL);
    expect_spec_error("input_key",
        "{\"input\": {\"tokens\": 4, \"lvl\": \"word\"}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "lvl", NULL);
    expect_spec_error("input_level",
        "{\"input\": {\"tokens\": 4, \"level\": \"byte\"}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "level", NULL);
    expect_spec_error("gru_hidden",
        "{\"input\": {\"tokens\": 4}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"gruz\", \"op\": \"GRU\"}, {\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "'gruz'", "hidden");
    expect_spec_error("lstm_bitrnn_type",
        "{\"input\": {\"tokens\": 4}, \"layers\": [{\"name\": \"emb\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"lstmb\", \"op\": \"LSTM\", \"hidden\": 4, \"bitrnn\": 1}, {\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}",
        "'lstmb'", "bitrnn");
    expect_spec_error("gather_dim",
        "{\"input\": {\"tokens\": 4}, \"layers\": [{\"name\": \"embd\", \"op\": \"Gather\", \"vocab\": 10},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "'embd'", "dim");
    expect_spec_error("gather_key",
        "{\"input\": {\"tokens\": 4}, \"layers\": [{\"name\": \"embk\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4, \"hidden\": 3},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "'embk'", "hidden");
    expect_spec_error("quant_gather",
        "{\"input\": {\"tokens\": 4}, \"quant\": {\"embq\": \"qn:2/2\"}, \"layers\": ["
        "{\"name\": \"embq\", \"op\": \"Gather\", \"vocab\": 10, \"dim\": 4},"
        "{\"name\": \"dec\", \"op\": \"Gemm\", \"out\": 10}]}", "embq", "Gather");
    /* the zoo's specs build */
    static const char *const zoo[] = {"kjv-word-lstm", "kjv-word-gru", "kjv-char-lstm"};
    for (int i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/models/%s.json", LB_SOURCE_DIR, zoo[i]);
        lb_model *m = NULL;
        CHECK_OK(lb_model_create(&m, path));
        if (m) CHECK(lb_model_is_lm(m) && lb_model_seq_len(m) > 0 && lb_model_vocab(m) >= 2);
        lb_model_destroy(m);
    }
}

int main(void) {
    lb_set_threads(2);
    test_spec_errors();
    test_placement();
    test_gradients();
    test_quantized();
    test_model_forward();
    test_training();
    return lbt_report("test_lm");
}
