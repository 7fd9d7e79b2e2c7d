/* Quantizers on the graph: which layers get which quantizer, their learned tensors in
 * the model's parameter block, and the calls around the ops.
 *
 * Placement (METHODS.md section 0): a weight quantizer on every Conv/Gemm except the
 * first and the last (unless quant_all); an activation quantizer on the output of every
 * Relu/Clip, so every quantized layer's input is quantized, as is the last layer's. The
 * first layer's input is the data itself and stays as given. */
#include "graph/graph.h"
#include "quant/quant.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lb_status lb_graph_parse_quant(lb_model *m, const cJSON *q, const char *src) {
    int n = 1;
    if (q) {
        if (!cJSON_IsObject(q)) return lb_fail(LB_ERR_INVALID, "%s: 'quant' must be an object {\"default\": \"balanced:2/4\", \"<layer>\": ...}", src);
        n += cJSON_GetArraySize(q);
    }
    m->qcfg = calloc((size_t)n, sizeof(lb_qcfg));
    m->qcfg_layer = calloc((size_t)n, sizeof(char *));
    if (!m->qcfg || !m->qcfg_layer) return lb_fail(LB_ERR_NOMEM, "out of memory");
    m->n_qcfg = 1;
    lb_qcfg_parse(&m->qcfg[0], "fp32", "");
    for (const cJSON *kv = q ? q->child : NULL; kv; kv = kv->next) {
        char what[512];
        snprintf(what, sizeof what, "%s: 'quant'.%s", src, kv->string);
        if (!cJSON_IsString(kv)) return lb_fail(LB_ERR_INVALID, "%s must be a string such as \"balanced:2/4\" or \"fp32\"", what);
        int is_default = !strcmp(kv->string, "default");
        if (!is_default) {
            int found = -1;
            for (int i = 0; i < m->n_nodes; i++)
                if (!strcmp(m->nodes[i].name, kv->string)) found = i;
            if (found < 0) return lb_fail(LB_ERR_INVALID, "%s: no layer is named '%s'", what, kv->string);
            lb_op op = m->nodes[found].op;
            if (op != LB_OP_CONV && op != LB_OP_GEMM && op != LB_OP_RELU && op != LB_OP_CLIP && !lb_op_is_rnn(op))
                return lb_fail(LB_ERR_INVALID, "%s: '%s' is a %s; quantizers go on Conv/Gemm/LSTM/GRU weights and Relu/Clip/"
                               "LSTM/GRU outputs", what,
                               kv->string, lb_op_names[op]);
            for (int i = 1; i < m->n_qcfg; i++)
                if (!strcmp(m->qcfg_layer[i], kv->string)) return lb_fail(LB_ERR_INVALID, "%s: given twice", what);
        }
        lb_qcfg *c = is_default ? &m->qcfg[0] : &m->qcfg[m->n_qcfg];
        lb_status s = lb_qcfg_parse(c, kv->valuestring, what);
        if (s) return s;
        if (!is_default) {
            if (!(m->qcfg_layer[m->n_qcfg] = lb_strdup(kv->string))) return lb_fail(LB_ERR_NOMEM, "out of memory");
            m->n_qcfg++;
        }
    }
    return LB_OK;
}

/* Detach every quantizer: free them and drop their tensors (always the last ones). */
static void detach(lb_model *m) {
    for (int i = 0; i < m->n_nodes; i++) {
        lb_node *n = &m->nodes[i];
        if (n->wq) {
            lb_free(n->weff);
            lb_free(n->dweff);
            n->weff = m->params + m->tensors[n->p0].offset;
            n->dweff = m->grads + m->tensors[n->p0].offset;
        }
        if (n->rq) {
            lb_free(n->reff);
            lb_free(n->dreff);
            n->reff = m->params + m->tensors[n->p0 + 1].offset;
            n->dreff = m->grads + m->tensors[n->p0 + 1].offset;
        }
        lb_free(n->hook_gacc);
        n->hook_gacc = NULL;
        n->wq = n->aq = n->rq = NULL;
        n->qout = n->dqout = NULL;
    }
    for (int i = 0; i < m->n_quants; i++) {
        lb_quant *q = m->quants[i];
        for (int k = 0; k < q->nlearn; k++) q->learn[k] = q->glearn[k] = NULL; /* in the model's block */
        q->nlearn = 0;
        lb_quant_free(q);
    }
    free(m->quants);
    m->quants = NULL;
    m->n_quants = 0;
    while (m->n_tensors > 0 && m->tensors[m->n_tensors - 1].qowner >= 0) {
        lb_tensor_entry *t = &m->tensors[--m->n_tensors];
        m->n_params = t->offset;
        free(t->name);
    }
}

void lb_graph_free_quant(lb_model *m) {
    detach(m);
    for (int i = 0; i < m->n_qcfg; i++) free(m->qcfg_layer[i]);
    free(m->qcfg);
    free(m->qcfg_layer);
    free(m->quant_str);
    m->qcfg = NULL;
    m->qcfg_layer = NULL;
    m->quant_str = NULL;
    m->n_qcfg = 0;
}

static const lb_qcfg *cfg_for(const lb_model *m, const char *layer, const lb_qcfg *def) {
    for (int i = 1; i < m->n_qcfg; i++)
        if (!strcmp(m->qcfg_layer[i], layer)) return &m->qcfg[i];
    return def;
}

/* role LB_QW with `recurrent` set: the LSTM/GRU recurrent weight (tensor p0+1, "rq") */
static lb_status add_quant(lb_model *m, lb_node *n, const lb_qcfg *c, int role, int recurrent) {
    lb_quant **qs = realloc(m->quants, sizeof *qs * (size_t)(m->n_quants + 1));
    if (!qs) return lb_fail(LB_ERR_NOMEM, "out of memory");
    m->quants = qs;
    lb_quant *q;
    const lb_tensor_entry *w = &m->tensors[n->p0 + recurrent];
    /* an RNN's hidden-state quantizer sees one step's state per call */
    int64_t shape1 = n->out_size;
    lb_status s = lb_quant_create(&q, c, role, role == LB_QW ? w->ndim : 1, role == LB_QW ? w->shape : &shape1, 0);
    if (s) {
        char pre[300];
        snprintf(pre, sizeof pre, "layer '%s'", n->name);
        lb_error_prefix(pre);
        return s;
    }
    q->name = n->name;
    m->quants[m->n_quants] = q;
    /* its learned tensors, appended to the tensor table */
    for (int k = 0; k < q->nlearn; k++) {
        lb_tensor_entry *t = realloc(m->tensors, sizeof *t * (size_t)(m->n_tensors + 1));
        if (!t) return lb_fail(LB_ERR_NOMEM, "out of memory");
        m->tensors = t;
        t = &m->tensors[m->n_tensors];
        memset(t, 0, sizeof *t);
        size_t len = strlen(n->name) + strlen(q->learn_name[k]) + 8;
        if (!(t->name = malloc(len))) return lb_fail(LB_ERR_NOMEM, "out of memory");
        m->n_tensors++;
        snprintf(t->name, len, "%s.%s.%s", n->name, role == LB_QA ? "aq" : recurrent ? "rq" : "wq", q->learn_name[k]);
        t->ndim = 1;
        t->shape[0] = t->size = q->learn_size[k];
        t->offset = m->n_params;
        t->trainable = !q->learn_fixed[k];
        t->logscale = q->learn_log[k];
        t->decay = 0; /* scales and temperatures are not weights */
        t->qowner = m->n_quants;
        m->n_params += (t->size + 15) / 16 * 16;
    }
    m->n_quants++;
    if (role == LB_QA) n->aq = q;
    else if (recurrent) n->rq = q;
    else n->wq = q;
    return LB_OK;
}

lb_status lb_model_set_quant(lb_model *m, const char *qstr, int quant_all) {
    lb_qcfg def;
    lb_status s = LB_OK;
    if (qstr) {
        if ((s = lb_qcfg_parse(&def, qstr, "--quant"))) return s;
    } else {
        def = m->qcfg[0];
    }
    const int64_t old_params = m->n_params;
    detach(m);
    const int64_t base_params = m->n_params;
    float *oldp = m->params, *oldg = m->grads;
    /* the embedding of a sequence model is its first layer (it keeps float weights: a
     * lookup has no multiplications), so the first LSTM/GRU is quantized by default */
    int first = -1, last = -1, nw = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        lb_op op = m->nodes[i].op;
        if (op == LB_OP_CONV || op == LB_OP_GEMM || op == LB_OP_GATHER || lb_op_is_rnn(op)) first = first < 0 ? i : first;
        if (op == LB_OP_CONV || op == LB_OP_GEMM || lb_op_is_rnn(op)) last = i;
    }
    for (int i = 0; i < m->n_nodes && !s; i++) {
        lb_node *n = &m->nodes[i];
        const lb_qcfg *c = cfg_for(m, n->name, &def);
        int explicit = c != &def, rnn = lb_op_is_rnn(n->op);
        if ((n->op == LB_OP_CONV || n->op == LB_OP_GEMM || rnn) && c->method && c->wbits < 32 &&
            (quant_all || explicit || (i != first && i != last))) {
            s = add_quant(m, n, c, LB_QW, 0);
            if (!s && rnn) s = add_quant(m, n, c, LB_QW, 1);
        }
        /* an LSTM/GRU's hidden state (Bit-RNN quantizes h, METHODS.md section 1) */
        if (!s && (n->op == LB_OP_RELU || n->op == LB_OP_CLIP || rnn) && c->method && c->abits < 32)
            s = add_quant(m, n, c, LB_QA, 0);
    }
    /* the parameter block grows (or shrinks) to hold the learned tensors */
    if (!s && m->n_params != old_params) {
        float *p = lb_calloc((size_t)m->n_params, sizeof(float)), *g = lb_calloc((size_t)m->n_params, sizeof(float));
        if (!p || !g) {
            lb_free(p);
            lb_free(g);
            s = lb_fail(LB_ERR_NOMEM, "out of memory");
        } else {
            memcpy(p, oldp, sizeof(float) * (size_t)base_params);
            lb_free(oldp);
            lb_free(oldg);
            m->params = p;
            m->grads = g;
        }
    }
    for (int i = 0; i < m->n_nodes && !s; i++) {
        lb_node *n = &m->nodes[i];
        if (!n->np) continue;
        if (n->wq) {
            n->weff = lb_alloc(sizeof(float) * (size_t)n->wq->n);
            n->dweff = lb_alloc(sizeof(float) * (size_t)n->wq->n);
            if (!n->weff || !n->dweff) s = lb_fail(LB_ERR_NOMEM, "out of memory");
            n->wq->layer = nw++;
        } else {
            n->weff = m->params + m->tensors[n->p0].offset;
            n->dweff = m->grads + m->tensors[n->p0].offset;
        }
        if (n->rq) {
            n->reff = lb_alloc(sizeof(float) * (size_t)n->rq->n);
            n->dreff = lb_alloc(sizeof(float) * (size_t)n->rq->n);
            if (!n->reff || !n->dreff) s = lb_fail(LB_ERR_NOMEM, "out of memory");
            n->rq->layer = nw++;
        } else if (lb_op_is_rnn(n->op)) {
            n->reff = m->params + m->tensors[n->p0 + 1].offset;
            n->dreff = m->grads + m->tensors[n->p0 + 1].offset;
        }
        if (n->aq && lb_op_is_rnn(n->op)) {
            int64_t g = 0;
            for (int k = 0; k < n->aq->nlearn; k++) g += n->aq->learn_size[k];
            if (g && !(n->hook_gacc = lb_alloc(sizeof(float) * (size_t)g))) s = lb_fail(LB_ERR_NOMEM, "out of memory");
        }
    }
    for (int i = 0; i < m->n_quants; i++) {
        lb_quant *q = m->quants[i];
        if (q->role == LB_QW) q->n_layers = nw;
    }
    for (int k = 0; k < m->n_tensors; k++) {
        lb_tensor_entry *t = &m->tensors[k];
        if (t->qowner < 0) continue;
        lb_quant *q = m->quants[t->qowner];
        int j = 0;
        while (q->learn[j]) j++; /* tensors come in the quantizer's declaration order */
        q->learn[j] = m->params + t->offset;
        q->glearn[j] = m->grads + t->offset;
    }
    if (s) { /* left in float, and saying so */
        detach(m);
        free(m->quant_str);
        m->quant_str = NULL;
        return s;
    }
    /* activation buffers change: plan again on next use */
    lb_free(m->act_block);
    m->act_block = NULL;
    m->cap = m->cap_train = 0;
    m->quant_all = quant_all;
    char buf[512];
    lb_qcfg_format(&def, buf, sizeof buf);
    free(m->quant_str);
    if (!(m->quant_str = lb_strdup(buf))) return lb_fail(LB_ERR_NOMEM, "out of memory");
    m->qcfg[0] = def;
    /* quantizers point at their config: keep them on the stable copy */
    for (int i = 0; i < m->n_quants; i++)
        if (m->quants[i]->cfg == &def) m->quants[i]->cfg = &m->qcfg[0];
    return LB_OK;
}

const char *lb_model_quant(const lb_model *m) { return m->quant_str ? m->quant_str : "fp32"; }
int lb_model_quant_all(const lb_model *m) { return m->quant_all; }

static const lb_qops *ops_of(const lb_quant *q) { return q->role == LB_QW ? q->method->w : q->method->a; }

static float *latent(lb_model *m, lb_node *n) { return m->params + m->tensors[n->p0].offset; }

void lb_graph_wq_forward(lb_model *m, lb_node *n, int training) {
    lb_quant *q = n->wq;
    ops_of(q)->forward(q, n->weff, latent(m, n), q->n, training && !m->q_hard);
}

void lb_graph_wq_backward(lb_model *m, lb_node *n) {
    lb_quant *q = n->wq;
    ops_of(q)->backward(q, m->grads + m->tensors[n->p0].offset, n->dweff, latent(m, n), q->n, 0);
}

void lb_graph_rq_forward(lb_model *m, lb_node *n, int training) {
    lb_quant *q = n->rq;
    ops_of(q)->forward(q, n->reff, m->params + m->tensors[n->p0 + 1].offset, q->n, training && !m->q_hard);
}

void lb_graph_rq_backward(lb_model *m, lb_node *n) {
    lb_quant *q = n->rq;
    const int64_t off = m->tensors[n->p0 + 1].offset;
    ops_of(q)->backward(q, m->grads + off, n->dreff, m->params + off, q->n, 0);
}

/* what an LSTM/GRU's hidden-state quantizer does this pass */
enum { HOOK_TRAIN = 0, HOOK_HARD = 1, HOOK_OBSERVE = 2, HOOK_FLOAT = 3 };

static void hook_forward(void *ctx, float *y, const float *x, int64_t n) {
    lb_node *node = ctx;
    lb_quant *q = node->aq;
    if (node->hook_mode == HOOK_OBSERVE || node->hook_mode == HOOK_FLOAT) {
        if (node->hook_mode == HOOK_OBSERVE && ops_of(q)->observe) ops_of(q)->observe(q, x, n);
        memcpy(y, x, sizeof(float) * (size_t)n);
        return;
    }
    ops_of(q)->forward(q, y, x, n, node->hook_mode == HOOK_TRAIN);
}

static void hook_backward(void *ctx, float *dx, const float *dy, const float *x, int64_t n) {
    lb_node *node = ctx;
    lb_quant *q = node->aq;
    if (node->hook_mode == HOOK_FLOAT) { memcpy(dx, dy, sizeof(float) * (size_t)n); return; }
    ops_of(q)->backward(q, dx, dy, x, n, 0);
    float *g = node->hook_gacc;
    for (int k = 0; k < q->nlearn && g; k++) {
        for (int64_t i = 0; i < q->learn_size[k]; i++) g[i] += q->glearn[k][i];
        g += q->learn_size[k];
    }
}

lb_rnn_hook *lb_graph_rnn_hook(lb_model *m, lb_node *n, lb_rnn_hook *h, int training) {
    n->hook_mode = m->q_observe ? HOOK_OBSERVE : n->aq->mode == LB_QMODE_FLOAT ? HOOK_FLOAT
                 : training && !m->q_hard ? HOOK_TRAIN : HOOK_HARD;
    *h = (lb_rnn_hook){n, hook_forward, hook_backward};
    return h;
}

void lb_graph_rnn_hook_begin(lb_model *m, lb_node *n) {
    (void)m;
    int64_t g = 0;
    for (int k = 0; k < n->aq->nlearn; k++) g += n->aq->learn_size[k];
    if (g) memset(n->hook_gacc, 0, sizeof(float) * (size_t)g);
}

void lb_graph_rnn_hook_end(lb_model *m, lb_node *n) {
    (void)m;
    lb_quant *q = n->aq;
    const float *g = n->hook_gacc;
    for (int k = 0; k < q->nlearn && g; k++) {
        memcpy(q->glearn[k], g, sizeof(float) * (size_t)q->learn_size[k]);
        g += q->learn_size[k];
    }
}

int lb_graph_aq_passes(const lb_model *m, const lb_node *n) {
    return !lb_op_is_rnn(n->op) && (m->q_observe || n->aq->mode == LB_QMODE_FLOAT);
}

void lb_graph_aq_forward(lb_model *m, lb_node *n, int64_t count, int training) {
    lb_quant *q = n->aq;
    if (lb_graph_aq_passes(m, n)) { /* the consumers read n->out itself */
        if (m->q_observe && ops_of(q)->observe) ops_of(q)->observe(q, n->out, count);
        return;
    }
    ops_of(q)->forward(q, n->qout, n->out, count, training && !m->q_hard);
}

void lb_graph_aq_backward(lb_model *m, lb_node *n, int64_t count) {
    lb_quant *q = n->aq;
    if (lb_graph_aq_passes(m, n)) return; /* the consumers wrote n->dout itself */
    ops_of(q)->backward(q, n->dout, n->dqout, n->out, count, 0);
}

/* ------------------------------------------------------------ training-time services */

void lb_quant_init_weights(lb_model *m) {
    for (int i = 0; i < m->n_nodes; i++) {
        lb_node *n = &m->nodes[i];
        if (n->wq && !n->wq->initialized) ops_of(n->wq)->init(n->wq, latent(m, n), n->wq->n);
        if (n->rq && !n->rq->initialized) ops_of(n->rq)->init(n->rq, m->params + m->tensors[n->p0 + 1].offset, n->rq->n);
    }
}

int lb_quant_needs_calibration(const lb_model *m) {
    for (int i = 0; i < m->n_quants; i++)
        if (m->quants[i]->role == LB_QA && !m->quants[i]->initialized) return 1;
    return 0;
}

lb_status lb_quant_calibrate(lb_model *m, const float *x, int64_t n, int batch) {
    lb_status s = lb_graph_reserve(m, batch, 0);
    if (s) return s;
    m->q_observe = 1;
    for (int64_t lo = 0; lo < n; lo += batch) {
        int B = (int)LB_MIN((int64_t)batch, n - lo);
        lb_graph_set_input(m, x + lo * m->in_size, B);
        lb_graph_forward(m, B, 0);
    }
    lb_quant_calibrate_finish(m);
    return LB_OK;
}

void lb_quant_calibrate_finish(lb_model *m) {
    m->q_observe = 0;
    for (int i = 0; i < m->n_quants; i++) {
        lb_quant *q = m->quants[i];
        if (q->role == LB_QA && !q->initialized) ops_of(q)->init(q, NULL, 0);
    }
}

void lb_quant_schedule(lb_model *m, const lb_qsched *sch, uint64_t seed) {
    for (int i = 0; i < m->n_quants; i++) {
        lb_quant *q = m->quants[i];
        q->step = sch->step;
        q->noise_key = lb_rng_key(seed, LB_RNG_QUANT);
        if (ops_of(q)->schedule) ops_of(q)->schedule(q, sch);
    }
    /* a frozen quantizer holds its latent weight and its own learned tensors */
    for (int k = 0; k < m->n_tensors; k++) m->tensors[k].frozen = 0;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].wq) m->tensors[m->nodes[i].p0].frozen = m->nodes[i].wq->frozen;
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].rq) m->tensors[m->nodes[i].p0 + 1].frozen = m->nodes[i].rq->frozen;
    for (int k = 0; k < m->n_tensors; k++)
        if (m->tensors[k].qowner >= 0) m->tensors[k].frozen = m->quants[m->tensors[k].qowner]->frozen;
}
