/* graph.h - the model: a DAG of nodes in topological (spec) order. */
#ifndef LB_GRAPH_H
#define LB_GRAPH_H

#include "lb_internal.h"
#include "ops/ops.h"
#include "ops/rnn.h"

typedef enum lb_op {
    LB_OP_CONV, LB_OP_GEMM, LB_OP_BN, LB_OP_RELU, LB_OP_CLIP, LB_OP_MAXPOOL, LB_OP_AVGPOOL,
    LB_OP_GAP, LB_OP_ADD, LB_OP_FLATTEN, LB_OP_DROPOUT, LB_OP_GATHER, LB_OP_LSTM, LB_OP_GRU, LB_OP_COUNT
} lb_op;

static inline int lb_op_is_rnn(lb_op op) { return op == LB_OP_LSTM || op == LB_OP_GRU; }

extern const char *const lb_op_names[LB_OP_COUNT];

/* One named tensor of the model (parameter or buffer), living in m->params. */
typedef struct lb_tensor_entry {
    char *name;              /* "conv1.weight" */
    int ndim;
    int64_t shape[4];
    int64_t size, offset;    /* elements; offset into m->params / m->grads */
    int trainable;
    int decay;               /* weight decay applies (all trainable tensors, as torch.optim does) */
    int frozen;              /* trainable but held still for now (quantizer schedules) */
    int logscale;            /* positive; the optimizer steps ln p, so a step is relative to p */
    int qowner;              /* index in m->quants of the quantizer owning it, or -1 */
} lb_tensor_entry;

struct lb_quant;
struct cJSON;
struct lb_qcfg;

typedef struct lb_node {
    lb_op op;
    char *name;
    int nin;
    int in[2];               /* producer node index, -1 = graph input */
    int c, h, w;             /* per-sample output shape */
    int64_t out_size;        /* c*h*w */
    int64_t macs;
    int p0, np;              /* its tensors: m->tensors[p0 .. p0+np) */
    /* attributes */
    int kh, kw, sh, sw, ph, pw, group, has_bias, count_include_pad;
    float eps, momentum, lo, hi, p;
    /* backward plan */
    int acc[2];              /* accumulate into input i's gradient (another consumer wrote first) */
    int need_din[2];         /* input i needs a gradient (not the graph input) */
    /* fusion: a BatchNormalization whose only consumer is a Relu applies the Relu itself
     * (fuse_relu); that Relu node is `fused`: its out/dout alias the BN's and it runs nothing */
    int fuse_relu, fused;
    int direct;              /* conv: direct kernels (conv_direct.c) rather than im2col + GEMM */
    /* Gather: vocabulary (n->c is the embedding width); LSTM/GRU: hidden units are n->c */
    int vocab;
    int bitrnn;              /* LSTM/GRU: Bit-RNN cell (sigmoid candidate and cell output, rnn.h) */
    /* buffers, sized for m->cap samples */
    float *out, *dout;
    float *save;             /* conv: im2col; bn: batch mean; dropout: mask */
    float *invstd;           /* bn */
    int32_t *argmax;         /* maxpool */
    float *wk, *dwk;         /* conv: weight as O,KH,KW,I/G and its gradient */
    int32_t *ids;            /* Gather: the token ids of the batch */
    float *state_h, *state_c;   /* LSTM/GRU: state carried to the next batch [cap rows, H] */
    float *h0, *c0;          /* LSTM/GRU: the initial state of this batch (kept for backward) */
    /* Quantizer hook: the op reads its weight from `weff` and writes the weight gradient
     * to `dweff`. Without a quantizer they alias the parameter and its gradient; a weight
     * quantizer points them at its own buffers, fills weff (fake-quantized) before the
     * forward and maps dweff back onto the parameter's gradient after the backward. An
     * activation quantizer wraps `out`/`dout` the same way. */
    float *weff, *dweff;
    struct lb_quant *wq;     /* weight quantizer (Conv/Gemm/LSTM/GRU input weights), or NULL */
    /* LSTM/GRU: the recurrent weight (tensor p0+1) has its own quantizer, as the input
     * weight does: reff/dreff alias the parameter without one */
    float *reff, *dreff;
    struct lb_quant *rq;
    struct lb_quant *aq;     /* activation quantizer on this node's output (Relu/Clip), or NULL;
                              * on LSTM/GRU it quantizes the hidden state inside the recurrence */
    float *qout, *dqout;     /* aq: quantized output and its gradient; consumers read these */
    int hook_mode;           /* LSTM/GRU aq as the op's hook: what it does this pass (quantize.c) */
    float *hook_gacc;        /* its learned-parameter gradients summed over time steps */
} lb_node;

struct lb_model {
    char *name, *spec_json, *source;
    char *recipe;            /* the spec's training recipe ("adam lr=1e-3 ..."), or NULL */
    int in_c, in_h, in_w;
    /* Sequence models ("input": {"tokens": T}): a sample is one token (in_size 1, the id
     * as a float), so every op sees rows = batch x time steps, in the order b*T + t;
     * only LSTM/GRU split the rows into sequences of seq_T steps. */
    int seq_len;             /* T of the spec (0: not a sequence model) */
    int seq_T;               /* time steps of the current batch (<= seq_len) */
    int text_level;          /* 0 word, 1 char */
    int carry;               /* LSTM/GRU start from state_h/state_c and leave their final state there */
    int64_t in_size;
    lb_node *nodes;
    int n_nodes;
    lb_tensor_entry *tensors;
    int n_tensors;
    int64_t n_params;        /* elements in the params block (trainable and buffers) */
    float *params, *grads;   /* one block each, tensors at their offsets */
    /* activation buffers: one block, planned by lb_graph_reserve */
    int cap, cap_train;
    void *act_block;
    float *x;                /* input in NHWC */
    float *dcol;             /* shared im2col-conv backward scratch */
    float *rnn_scratch;      /* shared LSTM/GRU scratch */
    float *scratch;          /* shared direct-conv scratch (sized for plan_threads threads) */
    int plan_threads;        /* thread count the buffers were planned for */
    double *prof;            /* when non-NULL: seconds per node, forward [0, n) and backward [n, 2n) */
    /* quantization (src/graph/quantize.c): per-layer configs from the spec, the effective
     * default, and the attached quantizers */
    struct lb_qcfg *qcfg;    /* [0] default, then per-layer overrides named in qcfg_layer */
    char **qcfg_layer;
    int n_qcfg;
    int quant_all;
    char *quant_str;         /* canonical default, as stored in checkpoints */
    struct lb_quant **quants;
    int n_quants;
    int q_observe;           /* calibration: activation quantizers observe and pass through */
    int q_hard;              /* quantizers use their hard (evaluation) form even in training mode */
    uint64_t dropout_key;
    int64_t step;            /* keys dropout masks */
};

/* Size buffers for `batch` samples (training adds gradients and saved tensors). */
lb_status lb_graph_reserve(lb_model *m, int batch, int training);
/* Forward on the first B samples already in m->x. Output in the last node's `out`. */
void lb_graph_forward(lb_model *m, int B, int training);
/* Backward from the last node's `dout`; parameter gradients overwritten. */
void lb_graph_backward(lb_model *m, int B);
/* Copy B samples from NCHW to m->x (NHWC). */
void lb_graph_set_input(lb_model *m, const float *x_nchw, int B);
static inline lb_node *lb_graph_output(lb_model *m) { return &m->nodes[m->n_nodes - 1]; }
/* Per-sample shape of input k of node n: its producer's output, or the graph input. */
static inline void lb_node_in_shape(const lb_model *m, const lb_node *n, int k, int *c, int *h, int *w) {
    if (n->in[k] < 0) { *c = m->in_c; *h = m->in_h; *w = m->in_w; return; }
    const lb_node *p = &m->nodes[n->in[k]];
    *c = p->c; *h = p->h; *w = p->w;
}
int lb_model_find_tensor(const lb_model *m, const char *name);
/* Sequence models: zero every LSTM/GRU carried state (start of an epoch or evaluation). */
void lb_graph_reset_state(lb_model *m);

/* Quantization (quantize.c). The spec's "quant" object: {"default": Q, "<layer>": Q, ...}
 * (NULL: none); layer names are checked. */
lb_status lb_graph_parse_quant(lb_model *m, const struct cJSON *q, const char *src);
void lb_graph_free_quant(lb_model *m);
/* Around the ops: a node's weight quantizer forward/backward and its activation
 * quantizer's (exec.c calls them). */
void lb_graph_wq_forward(lb_model *m, lb_node *n, int training);
void lb_graph_wq_backward(lb_model *m, lb_node *n);
void lb_graph_aq_forward(lb_model *m, lb_node *n, int64_t count, int training);
void lb_graph_aq_backward(lb_model *m, lb_node *n, int64_t count);
/* 1 when n's activation quantizer (not an LSTM/GRU's) passes values through (FLOAT mode:
 * QN's first phase; calibration): its consumers then read n->out and write n->dout
 * themselves, and the two calls above copy nothing. The mode changes only between steps,
 * so a step's forward and backward agree. */
int lb_graph_aq_passes(const lb_model *m, const lb_node *n);
/* The recurrent weight's quantizer (LSTM/GRU), as wq for the input weight. */
void lb_graph_rq_forward(lb_model *m, lb_node *n, int training);
void lb_graph_rq_backward(lb_model *m, lb_node *n);
/* An LSTM/GRU's activation quantizer as the op's per-step hook (observing during
 * calibration, passing through while in float mode). Around the backward, begin zeroes
 * the quantizer's learned-parameter gradients and end leaves there the sum over steps
 * (a method's backward overwrites them on every call). */
lb_rnn_hook *lb_graph_rnn_hook(lb_model *m, lb_node *n, lb_rnn_hook *h, int training);
void lb_graph_rnn_hook_begin(lb_model *m, lb_node *n);
void lb_graph_rnn_hook_end(lb_model *m, lb_node *n);
/* Training-time services: initialise weight quantizers that have no learned values yet
 * (from the latent weights); calibrate activation quantizers that need data (a few
 * forward passes in float, observing); run every quantizer's schedule hook before a
 * step and mirror `frozen` onto the tensors. A schedule hook may clear `initialized` on
 * an activation quantizer to have it calibrated again before that step. */
struct lb_qsched;
void lb_quant_init_weights(lb_model *m);
int lb_quant_needs_calibration(const lb_model *m);
lb_status lb_quant_calibrate(lb_model *m, const float *x_nchw, int64_t n, int batch);
/* The end of a calibration whose forward passes the caller ran with m->q_observe = 1 (the
 * language-model loop, whose batches carry state): observing stops, and the activation
 * quantizers still uninitialised are initialised from what they saw. */
void lb_quant_calibrate_finish(lb_model *m);
void lb_quant_schedule(lb_model *m, const struct lb_qsched *s, uint64_t seed);

#endif
