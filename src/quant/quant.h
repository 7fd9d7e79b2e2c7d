/* quant.h - the quantizer table (DESIGN.md section 1, ggml type-traits style).
 *
 * A method is one file in src/quant/ and one row of lb_qmethods[] (quant.c). It gives
 * a weight quantizer and an activation quantizer, each a table of functions over plain
 * float arrays, so a method is tested without building a model:
 *
 *   setup     validate bits and options; declare learned tensors; allocate state
 *   init      learned parameters and statistics from the float tensor (weights) or
 *             from what `observe` saw over a few calibration batches (activations)
 *   forward   fake quantization y = Q(x); `training` selects the relaxed form the method
 *             trains with (UNIQ noise, QN sigmoids) where it has one
 *   backward  dx from dy (the method's straight-through rule) and the learned
 *             parameters' gradients (overwritten, one call per step)
 *   schedule  called before every training step (temperature, noise stages, freezing)
 *   encode    integer codes of the hard quantizer; decode is runtime/lbr_quant.h, and
 *             the hard forward is decode(encode(x)): train equals deploy
 *
 * The graph calls these around the ops (graph/exec.c): a weight quantizer fills the
 * node's `weff` before its op runs and maps `dweff` onto the latent weight's gradient
 * after; an activation quantizer sits on the output of a Relu/Clip node. */
#ifndef LB_QUANT_H
#define LB_QUANT_H

#include "lb_internal.h"
#include "../../runtime/lbr_quant.h"

enum { LB_QW = 0, LB_QA = 1 };              /* role */
enum { LB_Q_MAXOPT = 8, LB_Q_MAXLEARN = 4 };
enum { LB_QMODE_QUANT = 0, LB_QMODE_FLOAT = 1, LB_QMODE_HARD = 2 };

struct lb_qmethod;

/* One parsed quantization string: "METHOD:W/A[,key=value...]" or "fp32". */
typedef struct lb_qcfg {
    const struct lb_qmethod *method; /* NULL: full precision */
    int wbits, abits;                /* 32: float */
    int nopt;
    char key[LB_Q_MAXOPT][24], val[LB_Q_MAXOPT][40];
} lb_qcfg;

/* Parse `s`; errors name `what` (e.g. "--quant" or "spec.json: 'quant'.conv2") and list
 * the valid methods, options and bit widths. */
lb_status lb_qcfg_parse(lb_qcfg *c, const char *s, const char *what);
/* Canonical text of a config (round-trips through lb_qcfg_parse). */
void lb_qcfg_format(const lb_qcfg *c, char *buf, size_t n);

/* Schedule position, given to every quantizer before each training step. */
typedef struct lb_qsched {
    int64_t step, steps_per_epoch, total_steps;
    int epoch, epochs;               /* 0-based epoch of this step; epochs in the run */
} lb_qsched;

/* One quantizer attached to one weight tensor or one activation. */
typedef struct lb_quant {
    const struct lb_qmethod *method;
    const lb_qcfg *cfg;
    int role, bits;
    /* weights: PyTorch layout (conv O,I,KH,KW; linear O,I); activations: ndim 1 */
    int ndim;
    int64_t shape[4], n;
    int layer, n_layers;             /* index among quantized weight layers, count (UNIQ stages) */
    const char *name;                /* owner layer's name, for messages */
    /* learned parameters: setup fills names and sizes, the owner points data/grad at storage */
    int nlearn;
    const char *learn_name[LB_Q_MAXLEARN];
    int64_t learn_size[LB_Q_MAXLEARN];
    int learn_fixed[LB_Q_MAXLEARN];  /* saved in checkpoints but not trained (QN's frozen b_i) */
    int learn_log[LB_Q_MAXLEARN];    /* positive scales the optimizer steps in the log domain (QN's alpha, beta) */
    float *learn[LB_Q_MAXLEARN], *glearn[LB_Q_MAXLEARN];
    /* schedule-driven state, read by the framework */
    int mode;                        /* LB_QMODE_*: FLOAT passes through (not yet quantized) */
    int frozen;                      /* latent tensor is not updated by the optimizer */
    int initialized;                 /* learned parameters hold values (init ran or a checkpoint loaded them) */
    float temperature;               /* qn */
    uint64_t noise_key;              /* uniq: counter-based noise (seed, LB_RNG_QUANT) */
    int64_t step;                    /* current training step (noise counter) */
    void *state;                     /* private to the method */
} lb_quant;

typedef struct lb_qops {
    lb_status (*setup)(lb_quant *q);
    void (*observe)(lb_quant *q, const float *x, int64_t n);     /* optional (activations) */
    void (*init)(lb_quant *q, const float *x, int64_t n);
    void (*forward)(lb_quant *q, float *y, const float *x, int64_t n, int training);
    void (*backward)(lb_quant *q, float *dx, const float *dy, const float *x, int64_t n, int acc);
    void (*schedule)(lb_quant *q, const lb_qsched *s);           /* optional */
    void (*encode)(const lb_quant *q, int32_t *codes, const float *x, int64_t n);
    void (*release)(lb_quant *q);                                 /* optional */
} lb_qops;

typedef struct lb_qmethod {
    const char *name;
    const char *help;                /* one line for --help and error messages */
    const char *opts;                /* accepted option keys, space-separated */
    int wbits_lo, wbits_hi, abits_lo, abits_hi;
    const lb_qops *w, *a;
    /* the method's own fine-tuning recipe (METHODS.md), used when the user gives none */
    const char *recipe;              /* e.g. "adam lr=1e-4" ; parsed by the CLI */
} lb_qmethod;

extern const lb_qmethod *const lb_qmethods[];  /* NULL-terminated */
const lb_qmethod *lb_qmethod_find(const char *name);

/* Option lookup for methods: absent -> def. The _num forms fail with a message naming
 * the option when the value is not a number in [lo, hi]. */
const char *lb_qopt(const lb_qcfg *c, const char *key, const char *def);
lb_status lb_qopt_num(const lb_quant *q, const char *key, double def, double lo, double hi, double *out);
/* value must be one of the space-separated words in `choices`; returns its index */
lb_status lb_qopt_choice(const lb_quant *q, const char *key, const char *choices, int *out);

/* Create a standalone quantizer over an array (tests, `lowbit quantize`): learned
 * tensors get their own storage. Free with lb_quant_free. */
lb_status lb_quant_new(lb_quant **out, const lb_qcfg *c, int role, int ndim, const int64_t *shape);
/* The same; with own_storage = 0 the learned tensors' data/grad pointers are left NULL
 * for the owner (the model's parameter block) to set. */
lb_status lb_quant_create(lb_quant **out, const lb_qcfg *c, int role, int ndim, const int64_t *shape, int own_storage);
void lb_quant_free(lb_quant *q);

/* Shared pieces the methods build on. */
extern const lb_qops lb_qops_act_uniform;  /* METHODS.md section 0: clip to [0, c], round */
/* dx (=, or += when acc) = dy where lo <= x <= hi, else 0 */
void lb_q_ste_clip(float *dx, const float *dy, const float *x, int64_t n, float lo, float hi, int acc);
/* dx (=, or += when acc) = dy */
void lb_q_ste(float *dx, const float *dy, int64_t n, int acc);
/* qsort comparator for floats, ascending */
int lb_q_cmp_float(const void *a, const void *b);
/* max |x| and mean |x| */
float lb_q_maxabs(const float *x, int64_t n);
double lb_q_meanabs(const float *x, int64_t n);
/* standard normal CDF and its inverse (Acklam's rational approximation refined by one
 * Halley step: |error| < 1e-9 in double) */
double lb_q_phi(double x);
double lb_q_phi_inv(double p);

#endif
