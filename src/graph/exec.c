/* Graph execution: buffer planning, forward and backward over the nodes in order. */
#include "graph/graph.h"
#include "ops/conv_direct.h"
#include "ops/rnn.h"

#include <omp.h>
#include <string.h>

static lb_conv_shape conv_shape(const lb_model *m, const lb_node *n, int B) {
    int ic, ih, iw;
    lb_node_in_shape(m, n, 0, &ic, &ih, &iw);
    return (lb_conv_shape){B, ih, iw, ic, n->h, n->w, n->c, n->kh, n->kw, n->sh, n->sw, n->ph, n->pw, n->group};
}

static lb_pool_shape pool_shape(const lb_model *m, const lb_node *n, int B) {
    int ic, ih, iw;
    lb_node_in_shape(m, n, 0, &ic, &ih, &iw);
    return (lb_pool_shape){B, ih, iw, n->c, n->h, n->w, n->kh, n->kw,
                           n->sh, n->sw, n->ph, n->pw, n->count_include_pad};
}

/* rows = sequences x time steps (the order b*T + t) */
static lb_rnn_shape rnn_shape(const lb_model *m, const lb_node *n, int rows) {
    int ic, ih, iw;
    lb_node_in_shape(m, n, 0, &ic, &ih, &iw);
    return (lb_rnn_shape){rows / m->seq_T, m->seq_T, ic, n->c, n->bitrnn};
}

/* Two passes: the first (base == NULL) only adds up sizes, the second carves. */
static size_t plan(lb_model *m, char *base, int B, int training) {
    size_t off = 0;
#define CARVE(ptr, type, count) do {                            \
        size_t _n = (size_t)(count) * sizeof(type);                 \
        if (base) (ptr) = (type *)(void *)(base + off);             \
        off += (_n + LB_ALIGN - 1) / LB_ALIGN * LB_ALIGN;           \
    } while (0)
    CARVE(m->x, float, (int64_t)B * m->in_size);
    int64_t dcol = 0, scratch = 0, rnn_scratch = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        lb_node *n = &m->nodes[i];
        int64_t sz = (int64_t)B * n->out_size;
        n->dout = NULL; n->save = NULL; n->invstd = NULL; n->argmax = NULL; n->dwk = NULL; n->wk = NULL;
        n->ids = NULL; n->state_h = n->state_c = n->h0 = n->c0 = NULL;
        if (n->fused) { /* aliases its BN: the BN's node comes first, its pointers are set */
            if (base) { n->out = m->nodes[n->in[0]].out; n->dout = m->nodes[n->in[0]].dout; }
            if (n->aq) {
                CARVE(n->qout, float, sz);
                n->dqout = NULL;
                if (training) CARVE(n->dqout, float, sz);
            }
            continue;
        }
        CARVE(n->out, float, sz);
        if (training) CARVE(n->dout, float, sz);
        if (n->aq) {
            CARVE(n->qout, float, sz);
            n->dqout = NULL;
            if (training) CARVE(n->dqout, float, sz);
        }
        switch (n->op) {
        case LB_OP_CONV: {
            lb_conv_shape s = conv_shape(m, n, B);
            n->direct = lb_conv2d_direct_supported(&s);
            int64_t col = n->direct ? 0 : lb_conv2d_col_size(&s);
            if (n->direct) scratch = LB_MAX(scratch, lb_conv2d_direct_scratch_size(&s));
            CARVE(n->save, float, col);
            CARVE(n->wk, float, m->tensors[n->p0].size);
            if (training) {
                CARVE(n->dwk, float, m->tensors[n->p0].size);
                dcol = LB_MAX(dcol, col);
            }
            break;
        }
        case LB_OP_BN:
            if (training) { CARVE(n->save, float, n->c); CARVE(n->invstd, float, n->c); }
            break;
        case LB_OP_MAXPOOL: CARVE(n->argmax, int32_t, sz); break;
        case LB_OP_DROPOUT: if (training) CARVE(n->save, float, sz); break;
        case LB_OP_GATHER: CARVE(n->ids, int32_t, B); break;
        case LB_OP_LSTM:
        case LB_OP_GRU: {
            /* sized for B sequences of one step: the most any split of B rows needs */
            int ic, ih, iw;
            lb_node_in_shape(m, n, 0, &ic, &ih, &iw);
            lb_rnn_shape s = {B, 1, ic, n->c, n->bitrnn};
            int lstm = n->op == LB_OP_LSTM;
            if (training) CARVE(n->save, float, lstm ? lb_lstm_save_size(&s) : lb_gru_save_size(&s));
            rnn_scratch = LB_MAX(rnn_scratch, lstm ? lb_lstm_scratch_size(&s) : lb_gru_scratch_size(&s));
            CARVE(n->state_h, float, (int64_t)B * n->c);
            CARVE(n->h0, float, (int64_t)B * n->c);
            if (lstm) { CARVE(n->state_c, float, (int64_t)B * n->c); CARVE(n->c0, float, (int64_t)B * n->c); }
            break;
        }
        default: break;
        }
    }
    m->dcol = NULL;
    if (training) CARVE(m->dcol, float, dcol);
    CARVE(m->scratch, float, scratch);
    CARVE(m->rnn_scratch, float, rnn_scratch);
#undef CARVE
    return off;
}

lb_status lb_graph_reserve(lb_model *m, int batch, int training) {
    if (batch < 1) return lb_fail(LB_ERR_INVALID, "batch size must be positive");
    /* the direct-conv scratch has a slice per thread: re-plan when the count changes */
    int threads = lb_get_threads();
    if (m->act_block && batch <= m->cap && (!training || m->cap_train) && threads == m->plan_threads) return LB_OK;
    /* keep training buffers once planned, so alternating train/eval does not re-plan */
    training = training || m->cap_train;
    batch = LB_MAX(batch, m->cap);
    size_t need = plan(m, NULL, batch, training);
    lb_free(m->act_block);
    m->act_block = lb_alloc(need);
    if (!m->act_block) {
        m->cap = m->cap_train = 0;
        return lb_fail(LB_ERR_NOMEM, "cannot allocate %.1f MB of activations for batch %d", need / 1e6, batch);
    }
    plan(m, m->act_block, batch, training);
    lb_graph_reset_state(m);
    m->cap = batch;
    m->cap_train = training;
    m->plan_threads = threads;
    return LB_OK;
}

void lb_graph_reset_state(lb_model *m) {
    for (int i = 0; i < m->n_nodes; i++) {
        lb_node *n = &m->nodes[i];
        if (n->state_h) memset(n->state_h, 0, sizeof(float) * (size_t)m->cap * (size_t)n->c);
        if (n->state_c) memset(n->state_c, 0, sizeof(float) * (size_t)m->cap * (size_t)n->c);
    }
}

void lb_graph_set_input(lb_model *m, const float *x, int B) {
    if (m->in_h * m->in_w == 1 || m->in_c == 1) memcpy(m->x, x, sizeof(float) * (size_t)B * m->in_size);
    else lb_nchw_to_nhwc(m->x, x, B, m->in_h, m->in_w, m->in_c, 0);
}

/* A producer with an activation quantizer is read through its quantized output, unless
 * the quantizer passes values through (lb_graph_aq_passes): then its consumers read out
 * and write dout themselves. */
static int aq_passes(const lb_model *m, const lb_node *p) { return p->aq && lb_graph_aq_passes(m, p); }
static float *in_ptr(lb_model *m, const lb_node *n, int k) {
    if (n->in[k] < 0) return m->x;
    const lb_node *p = &m->nodes[n->in[k]];
    return p->aq && !aq_passes(m, p) ? p->qout : p->out;
}
static float *din_ptr(lb_model *m, const lb_node *n, int k) {
    if (!n->need_din[k]) return NULL;
    const lb_node *p = &m->nodes[n->in[k]];
    return p->aq && !aq_passes(m, p) ? p->dqout : p->dout;
}
/* elements per sample of input 0 */
static int in_elems(const lb_model *m, const lb_node *n) {
    int c, h, w;
    lb_node_in_shape(m, n, 0, &c, &h, &w);
    return c * h * w;
}
static float *bias_of(lb_model *m, const lb_node *n) { return n->has_bias ? m->params + m->tensors[n->p0 + 1].offset : NULL; }

void lb_graph_forward(lb_model *m, int B, int training) {
    for (int i = 0; i < m->n_nodes; i++) {
        lb_node *n = &m->nodes[i];
        double t0 = m->prof ? omp_get_wtime() : 0;
        const float *x = in_ptr(m, n, 0);
        int64_t sz = (int64_t)B * n->out_size;
        if (n->wq) lb_graph_wq_forward(m, n, training);
        if (n->rq) lb_graph_rq_forward(m, n, training);
        switch (n->op) {
        case LB_OP_CONV: {
            lb_conv_shape s = conv_shape(m, n, B);
            lb_conv2d_weight_pack(n->wk, n->weff, &s);
            if (n->direct) lb_conv2d_direct_forward(n->out, x, n->wk, bias_of(m, n), &s, m->scratch);
            else lb_conv2d_forward(n->out, n->save, x, n->wk, bias_of(m, n), &s);
            break;
        }
        case LB_OP_GEMM: {
            lb_linear_forward(n->out, x, n->weff, bias_of(m, n), B, in_elems(m, n), n->c);
            break;
        }
        case LB_OP_BN: {
            float *p = m->params;
            const lb_tensor_entry *t = &m->tensors[n->p0];
            lb_batchnorm_forward(n->out, n->save, n->invstd, x, p + t[0].offset, p + t[1].offset, p + t[2].offset,
                                 p + t[3].offset, sz / n->c, n->c, n->eps, n->momentum, training, n->fuse_relu);
            break;
        }
        case LB_OP_RELU: if (!n->fused) lb_relu_forward(n->out, x, sz); break;
        case LB_OP_CLIP: lb_clip_forward(n->out, x, sz, n->lo, n->hi); break;
        case LB_OP_MAXPOOL: { lb_pool_shape s = pool_shape(m, n, B); lb_maxpool_forward(n->out, n->argmax, x, &s); break; }
        case LB_OP_AVGPOOL: { lb_pool_shape s = pool_shape(m, n, B); lb_avgpool_forward(n->out, x, &s); break; }
        case LB_OP_GAP: {
            int c, h, w;
            lb_node_in_shape(m, n, 0, &c, &h, &w);
            lb_gap_forward(n->out, x, B, h * w, c);
            break;
        }
        case LB_OP_ADD: lb_add_forward(n->out, x, in_ptr(m, n, 1), sz); break;
        case LB_OP_FLATTEN: { /* NHWC -> PyTorch's NCHW flatten order */
            int c, h, w;
            lb_node_in_shape(m, n, 0, &c, &h, &w);
            lb_nhwc_to_nchw(n->out, x, B, h, w, c);
            break;
        }
        case LB_OP_DROPOUT:
            if (training && n->p > 0)
                lb_dropout_forward(n->out, n->save, x, sz, n->p, m->dropout_key, ((uint64_t)m->step << 16) | (uint64_t)i);
            else
                memcpy(n->out, x, sizeof(float) * (size_t)sz);
            break;
        case LB_OP_GATHER: {
            const float *w = m->params + m->tensors[n->p0].offset;
            for (int r = 0; r < B; r++) n->ids[r] = (int32_t)x[r]; /* callers check the range (lb_model_forward, train_lm.c) */
            lb_embedding_forward(n->out, n->ids, w, B, n->c);
            break;
        }
        case LB_OP_LSTM:
        case LB_OP_GRU: {
            lb_rnn_shape rs = rnn_shape(m, n, B);
            size_t st = sizeof(float) * (size_t)rs.B * (size_t)rs.H;
            int lstm = n->op == LB_OP_LSTM;
            if (m->carry) {
                memcpy(n->h0, n->state_h, st);
                if (lstm) memcpy(n->c0, n->state_c, st);
            }
            lb_rnn_hook hook, *hp = n->aq ? lb_graph_rnn_hook(m, n, &hook, training) : NULL;
            float *y = n->aq ? n->qout : n->out, *save = training ? n->save : NULL;
            const float *bias = m->params + m->tensors[n->p0 + 2].offset;
            if (lstm)
                lb_lstm_forward(y, m->carry ? n->state_h : NULL, m->carry ? n->state_c : NULL, save, m->rnn_scratch, x,
                                n->weff, n->reff, bias, m->carry ? n->h0 : NULL, m->carry ? n->c0 : NULL, &rs, hp);
            else
                lb_gru_forward(y, m->carry ? n->state_h : NULL, save, m->rnn_scratch, x, n->weff, n->reff, bias,
                               m->carry ? n->h0 : NULL, &rs, hp);
            break;
        }
        case LB_OP_COUNT: break;
        }
        /* an LSTM/GRU applies its quantizer inside the recurrence */
        if (n->aq && !lb_op_is_rnn(n->op)) lb_graph_aq_forward(m, n, sz, training);
        if (m->prof) m->prof[i] += omp_get_wtime() - t0;
    }
}

void lb_graph_backward(lb_model *m, int B) {
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        lb_node *n = &m->nodes[i];
        const float *x = in_ptr(m, n, 0);
        float *dx = din_ptr(m, n, 0);
        int acc = n->acc[0];
        double t0 = m->prof ? omp_get_wtime() : 0;
        int64_t sz = (int64_t)B * n->out_size;
        if (n->aq && !lb_op_is_rnn(n->op)) lb_graph_aq_backward(m, n, sz);
        switch (n->op) {
        case LB_OP_CONV: {
            lb_conv_shape s = conv_shape(m, n, B);
            float *db = n->has_bias ? m->grads + m->tensors[n->p0 + 1].offset : NULL;
            if (n->direct) {
                lb_conv2d_direct_backward_weights(n->dwk, db, n->dout, x, &s, m->scratch);
                if (dx) lb_conv2d_direct_backward_data(dx, n->dout, n->wk, &s, acc, m->scratch);
            } else {
                lb_conv2d_backward(dx, n->dwk, db, m->dcol, n->dout, n->save, x, n->wk, &s, acc);
            }
            lb_conv2d_weight_unpack(n->dweff, n->dwk, &s);
            break;
        }
        case LB_OP_GEMM: {
            float *db = n->has_bias ? m->grads + m->tensors[n->p0 + 1].offset : NULL;
            lb_linear_backward(dx, n->dweff, db, n->dout, x, n->weff, B, in_elems(m, n), n->c, acc);
            break;
        }
        case LB_OP_BN: {
            const lb_tensor_entry *t = &m->tensors[n->p0];
            lb_batchnorm_backward(dx, m->grads + t[0].offset, m->grads + t[1].offset, n->dout, x, n->out, n->save,
                                  n->invstd, m->params + t[0].offset, sz / n->c, n->c, n->fuse_relu, acc);
            break;
        }
        case LB_OP_RELU: if (dx && !n->fused) lb_relu_backward(dx, n->dout, n->out, sz, acc); break;
        case LB_OP_CLIP: if (dx) lb_clip_backward(dx, n->dout, x, sz, n->lo, n->hi, acc); break;
        case LB_OP_MAXPOOL:
            if (dx) { lb_pool_shape s = pool_shape(m, n, B); lb_maxpool_backward(dx, n->dout, n->argmax, &s, acc); }
            break;
        case LB_OP_AVGPOOL:
            if (dx) { lb_pool_shape s = pool_shape(m, n, B); lb_avgpool_backward(dx, n->dout, &s, acc); }
            break;
        case LB_OP_GAP:
            if (dx) {
                int c, h, w;
                lb_node_in_shape(m, n, 0, &c, &h, &w);
                lb_gap_backward(dx, n->dout, B, h * w, c, acc);
            }
            break;
        case LB_OP_ADD:
            if (dx) lb_pass_backward(dx, n->dout, sz, acc);
            /* through din_ptr, as every input: a producer with an activation quantizer takes
             * its gradient on the quantized output (dqout), which its quantizer's backward
             * turns into dout */
            if (n->need_din[1]) lb_pass_backward(din_ptr(m, n, 1), n->dout, sz, n->acc[1]);
            break;
        case LB_OP_FLATTEN:
            if (dx) {
                int c, h, w;
                lb_node_in_shape(m, n, 0, &c, &h, &w);
                lb_nchw_to_nhwc(dx, n->dout, B, h, w, c, acc);
            }
            break;
        case LB_OP_DROPOUT:
            if (!dx) break;
            if (n->p > 0) lb_mul_backward(dx, n->dout, n->save, sz, acc);
            else lb_pass_backward(dx, n->dout, sz, acc);
            break;
        case LB_OP_GATHER:
            lb_embedding_backward(n->dweff, n->dout, n->ids, B, n->vocab, n->c);
            break;
        case LB_OP_LSTM:
        case LB_OP_GRU: {
            lb_rnn_shape rs = rnn_shape(m, n, B);
            lb_rnn_hook hook, *hp = n->aq ? lb_graph_rnn_hook(m, n, &hook, 1) : NULL;
            const float *dy = n->aq ? n->dqout : n->dout;
            float *db = m->grads + m->tensors[n->p0 + 2].offset;
            if (hp) lb_graph_rnn_hook_begin(m, n);
            if (n->op == LB_OP_LSTM)
                lb_lstm_backward(dx, n->dweff, n->dreff, db, NULL, NULL, m->rnn_scratch, dy, n->save, x, n->weff, n->reff,
                                 m->carry ? n->h0 : NULL, m->carry ? n->c0 : NULL, &rs, hp, acc);
            else
                lb_gru_backward(dx, n->dweff, n->dreff, db, NULL, m->rnn_scratch, dy, n->save, x, n->weff, n->reff,
                                m->carry ? n->h0 : NULL, &rs, hp, acc);
            if (hp) lb_graph_rnn_hook_end(m, n);
            break;
        }
        case LB_OP_COUNT: break;
        }
        if (n->wq) lb_graph_wq_backward(m, n);
        if (n->rq) lb_graph_rq_backward(m, n);
        if (m->prof) m->prof[m->n_nodes + i] += omp_get_wtime() - t0;
    }
}

lb_status lb_model_forward(lb_model *m, const float *x, int n, int training, float *logits) {
    if (n < 1) return lb_fail(LB_ERR_INVALID, "lb_model_forward: n must be positive");
    int unit = 1; /* a sequence model runs whole sequences of T tokens, each from a zero state */
    if (m->seq_len) {
        const int V = lb_model_vocab(m);
        unit = m->seq_len;
        if (n % unit)
            return lb_fail(LB_ERR_INVALID, "lb_model_forward: model '%s' reads sequences of %d tokens; n = %d is not a multiple",
                           m->name, unit, n);
        for (int i = 0; i < n; i++)
            if (!(x[i] >= 0 && x[i] < (float)V && x[i] == (float)(int)x[i]))
                return lb_fail(LB_ERR_INVALID, "lb_model_forward: token %d is %g, not an id in [0, %d)", i, (double)x[i], V);
        m->seq_T = m->seq_len;
        m->carry = 0;
    }
    int chunk = LB_MAX(m->cap, LB_MIN(n, 256));
    chunk = LB_MAX(chunk / unit, 1) * unit;
    lb_status s = lb_graph_reserve(m, chunk, training);
    if (s) return s;
    chunk = m->cap / unit * unit;
    int K = lb_model_num_outputs(m);
    for (int off = 0; off < n; off += chunk) {
        int B = LB_MIN(chunk, n - off);
        lb_graph_set_input(m, x + (int64_t)off * m->in_size, B);
        lb_graph_forward(m, B, training);
        memcpy(logits + (int64_t)off * K, lb_graph_output(m)->out, sizeof(float) * (size_t)B * K);
    }
    return LB_OK;
}
