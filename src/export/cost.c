/* BOPs and size accounting (`lowbit report`), the recipe lookup, and standalone
 * quantize-dequantize of an array (`lowbit quantize`). */
#include "graph/graph.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Bits of the activation a layer reads: follow value-preserving ops (max pooling,
 * flatten, dropout) back to a quantized activation; anything else is float. */
static int input_bits(const lb_model *m, const lb_node *n) {
    int p = n->in[0];
    while (p >= 0) {
        const lb_node *q = &m->nodes[p];
        if (q->aq) return q->aq->bits;
        if (q->op != LB_OP_MAXPOOL && q->op != LB_OP_FLATTEN && q->op != LB_OP_DROPOUT) break;
        /* an LSTM/GRU quantizes its own hidden state (rnn_cost) */
        p = q->in[0];
    }
    return 32;
}

/* Bytes a quantizer stores beside its codes for inference (float32 each): the scale,
 * codebook or exponent the runtime needs. Training-only state (INQ's mask) is not
 * counted. */
static int64_t meta_bytes(const lb_quant *q) {
    const char *mn = q->method->name;
    const int K = 1 << q->bits;
    if (!strcmp(mn, "uniform")) {
        const char *mode = lb_qopt(q->cfg, "mode", "dorefa"), *per = lb_qopt(q->cfg, "per", "tensor");
        if (strcmp(mode, "maxabs")) return 0; /* DoReFa levels are fixed in [-1, 1] */
        return 4 * (strcmp(per, "channel") ? 1 : q->shape[0]);
    }
    if (!strcmp(mn, "balanced")) return 4;    /* s */
    if (!strcmp(mn, "uniq")) return 4 * K;    /* k-quantile codebook */
    if (!strcmp(mn, "syq")) { /* one alpha per group */
        const char *g = lb_qopt(q->cfg, "group", q->ndim == 4 ? "pixel" : "layer");
        int64_t G = !strcmp(g, "layer") ? 1 : q->ndim == 4 ? (!strcmp(g, "row") ? q->shape[2] : q->shape[2] * q->shape[3])
                                                         : (!strcmp(g, "row") ? q->shape[0] : 1);
        return 4 * G;
    }
    if (!strcmp(mn, "qn")) return 4;          /* alpha; the set Y is fixed by the bit width */
    if (!strcmp(mn, "pot")) return 1;         /* e_min (int8) */
    return 0;
}

/* An LSTM/GRU per time step: the input projection (G*H x I, reading the input's
 * bits) and the recurrent one (G*H x H, reading its own hidden state: its activation
 * quantizer's bits, as Bit-RNN quantizes h), each counted with UNIQ's formula; the
 * elementwise gate arithmetic is not a multiply-accumulate and is left out, as the
 * papers do. Bytes: both weight matrices at their bits and the float biases. */
static int rnn_cost(const lb_model *m, const lb_node *n, lb_layer_cost *c) {
    const lb_tensor_entry *w = &m->tensors[n->p0], *r = &m->tensors[n->p0 + 1], *b = &m->tensors[n->p0 + 2];
    c->name = n->name;
    c->op = lb_op_names[n->op];
    c->method = n->wq ? n->wq->method->name : "fp32";
    c->wbits = n->wq ? n->wq->bits : 32;
    c->abits = input_bits(m, n);
    int hbits = n->aq ? n->aq->bits : 32;
    c->params = w->size + r->size + b->size;
    c->macs = n->macs;
    double bw = c->wbits;
    c->bops = (double)w->size * ((double)c->abits * bw + c->abits + bw + log2((double)w->shape[1])) +
              (double)r->size * ((double)hbits * bw + hbits + bw + log2((double)r->shape[1]));
    c->bytes = n->wq ? (w->size * c->wbits + 7) / 8 + meta_bytes(n->wq) : 4 * w->size;
    c->bytes += n->rq ? (r->size * c->wbits + 7) / 8 + meta_bytes(n->rq) : 4 * r->size;
    c->bytes += 4 * b->size;
    return 1;
}

/* An embedding table (Gather): no MACs; stored as `lowbit export` writes it: with a Relu or
 * Clip holding an activation quantizer as its only consumer, each token's output codes at
 * that quantizer's bits (the table is float in training, as in Bit-RNN, but only its codes
 * reach the network), else float. */
static int gather_cost(const lb_model *m, int i, lb_layer_cost *c) {
    const lb_node *n = &m->nodes[i];
    const lb_tensor_entry *w = &m->tensors[n->p0];
    int consumers = 0, a = -1;
    for (int j = i + 1; j < m->n_nodes; j++)
        for (int k = 0; k < m->nodes[j].nin; k++)
            if (m->nodes[j].in[k] == i) consumers++, a = j;
    const lb_node *q = consumers == 1 ? &m->nodes[a] : NULL;
    const int codes = q && (q->op == LB_OP_RELU || q->op == LB_OP_CLIP) && q->aq && q->aq->mode != LB_QMODE_FLOAT;
    c->name = n->name;
    c->op = lb_op_names[n->op];
    c->method = codes ? q->aq->method->name : "fp32";
    c->wbits = codes ? q->aq->bits : 32;
    c->abits = 0; /* token ids */
    c->params = w->size;
    c->bytes = (w->size * c->wbits + 7) / 8;
    return 1;
}

int lb_model_layer_cost(const lb_model *m, int i, lb_layer_cost *c) {
    const lb_node *n = &m->nodes[i];
    if (lb_op_is_rnn(n->op)) { memset(c, 0, sizeof *c); return rnn_cost(m, n, c); }
    if (n->op == LB_OP_GATHER) { memset(c, 0, sizeof *c); return gather_cost(m, i, c); }
    if (n->op != LB_OP_CONV && n->op != LB_OP_GEMM) return 0;
    const lb_tensor_entry *w = &m->tensors[n->p0];
    memset(c, 0, sizeof *c);
    c->name = n->name;
    c->op = lb_op_names[n->op];
    c->method = n->wq ? n->wq->method->name : "fp32";
    c->wbits = n->wq ? n->wq->bits : 32;
    c->abits = input_bits(m, n);
    int64_t nb = n->has_bias ? m->tensors[n->p0 + 1].size : 0;
    c->params = w->size + nb;
    c->macs = n->macs;
    /* per output position: m n k^2 (b_a b_w + b_a + b_w + log2(n k^2)), n = fan-in per group */
    double fan = (double)(w->size / w->shape[0]), outs = (double)n->macs / ((double)w->size);
    double ba = c->abits, bw = c->wbits;
    c->bops = (double)w->size * (ba * bw + ba + bw + log2(fan)) * outs;
    c->bytes = n->wq ? (w->size * c->wbits + 7) / 8 + meta_bytes(n->wq) : 4 * w->size;
    c->bytes += 4 * nb;
    return 1;
}

const char *lb_quant_recipe(const char *q) {
    lb_qcfg c;
    if (!q || lb_qcfg_parse(&c, q, "--quant") || !c.method) return NULL;
    return c.method->recipe;
}

lb_status lb_quantize_array(const char *qs, const float *x, int ndim, const int64_t *shape, float *y, int32_t *codes) {
    lb_qcfg c;
    lb_status s = lb_qcfg_parse(&c, qs, "--method");
    if (s) return s;
    if (!c.method) { /* fp32: identity */
        int64_t n = 1;
        for (int i = 0; i < ndim; i++) n *= shape[i];
        memmove(y, x, sizeof(float) * (size_t)n);
        return LB_OK;
    }
    lb_quant *q;
    if ((s = lb_quant_new(&q, &c, LB_QW, ndim, shape))) return s;
    float *tmp = lb_alloc(sizeof(float) * (size_t)q->n);
    if (!tmp) { lb_quant_free(q); return lb_fail(LB_ERR_NOMEM, "out of memory"); }
    memcpy(tmp, x, sizeof(float) * (size_t)q->n);
    q->method->w->init(q, tmp, q->n);
    if (codes) q->method->w->encode(q, codes, tmp, q->n);
    q->method->w->forward(q, y, tmp, q->n, 0);
    lb_free(tmp);
    lb_quant_free(q);
    return LB_OK;
}
