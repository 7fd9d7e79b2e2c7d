/*
 * lowbit.h - public API of lowbit, quantization-aware training for 1-8 bit networks.
 *
 * Overview
 *   A model is a DAG of ONNX-like ops (Conv, Gemm, BatchNormalization, Relu, ...) built
 *   from a JSON spec. The library trains it on a data set with explicit forward and
 *   backward passes (no autograd), saves safetensors checkpoints and evaluates them.
 *   Quantizers attach to a layer's weight and to a layer's output (see lb_quant_* in
 *   later releases); this release trains float models.
 *
 * Errors
 *   Every function that can fail returns an lb_status. On failure lb_last_error()
 *   returns a message (thread-local, valid until the next failing call on the same
 *   thread) that names the file, field or flag at fault. The library never exits,
 *   aborts or prints on bad input; printing is the caller's business.
 *
 * Ownership
 *   Objects returned through an `out` pointer belong to the caller and are released
 *   with the matching _destroy/_free function. Pointers passed in are borrowed for the
 *   duration of the call unless the function's comment says otherwise.
 *
 * Threads
 *   lb_set_threads() sets the OpenMP and OpenBLAS thread count. Results are
 *   bit-identical for the same seed and thread count.
 *
 * Example: train fmnist-cnn for one epoch and evaluate it
 *
 *   lb_model *m; lb_dataset *train, *test;
 *   if (lb_model_create(&m, "models/fmnist-cnn.json") != LB_OK ||
 *       lb_dataset_load(&train, "fashion-mnist", LB_SPLIT_TRAIN) != LB_OK ||
 *       lb_dataset_load(&test, "fashion-mnist", LB_SPLIT_TEST) != LB_OK) {
 *       fprintf(stderr, "%s\n", lb_last_error()); return 1;
 *   }
 *   lb_train_config cfg; lb_train_config_default(&cfg);
 *   cfg.epochs = 1; cfg.out_path = "cnn.safetensors";
 *   if (lb_train(m, train, test, &cfg, NULL, NULL) != LB_OK) { ... }
 *   lb_eval_result r;
 *   lb_eval(m, test, 256, &r);
 *   printf("accuracy %.4f\n", r.accuracy);
 *   lb_dataset_free(train); lb_dataset_free(test); lb_model_destroy(m);
 */
#ifndef LOWBIT_H
#define LOWBIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

typedef enum lb_status {
    LB_OK = 0,
    LB_ERR_INVALID = 1,  /* bad argument, flag, spec or configuration */
    LB_ERR_IO = 2,       /* an input file could not be opened or read */
    LB_ERR_FORMAT = 3,   /* an input file is malformed (bad magic, size, JSON, ...) */
    LB_ERR_NOMEM = 4,    /* allocation failed */
    LB_ERR_WRITE = 5,    /* an output file could not be written */
    LB_ERR_RUNTIME = 6,  /* numerical failure during training (e.g. loss became NaN) */
} lb_status;

/* Message of the last failure on this thread; never NULL. */
const char *lb_last_error(void);
/* Short name of a status ("invalid", "io", ...). */
const char *lb_status_name(lb_status s);
/* True for statuses caused by the caller's input (exit status 2 in the CLI). */
int lb_status_is_input_error(lb_status s);

const char *lb_version(void);

/* Threads used by OpenMP loops and OpenBLAS; n <= 0 keeps the current setting. */
void lb_set_threads(int n);
int lb_get_threads(void);

/* ---------------------------------------------------------------- models */

typedef struct lb_model lb_model;

/* Build a model from a JSON spec file. `path` is a file path; the CLI resolves zoo
 * names to paths. The model's parameters are initialised from seed 0 (Kaiming-uniform
 * as PyTorch's defaults); call lb_model_init_params to re-seed. */
lb_status lb_model_create(lb_model **out, const char *path);
/* Same from a JSON string; `source` names it in error messages. */
lb_status lb_model_create_from_json(lb_model **out, const char *json, size_t len, const char *source);
void lb_model_destroy(lb_model *m);

/* Re-initialise every parameter (and running statistic) from `seed`. */
void lb_model_init_params(lb_model *m, uint64_t seed);

/* Per-sample input shape (channels, height, width) and number of outputs. */
void lb_model_input_shape(const lb_model *m, int *c, int *h, int *w);
int lb_model_num_outputs(const lb_model *m);
const char *lb_model_name(const lb_model *m);
/* The JSON spec the model was built from (owned by the model). */
const char *lb_model_spec_json(const lb_model *m);

typedef struct lb_layer_info {
    const char *name;        /* layer name from the spec (owned by the model) */
    const char *op;          /* ONNX op name ("Conv", "Gemm", ...) */
    int out_c, out_h, out_w; /* per-sample output shape; h = w = 1 for vectors */
    int64_t params;          /* trainable parameters */
    int64_t macs;            /* multiply-accumulates per sample in the forward pass */
} lb_layer_info;

int lb_model_num_layers(const lb_model *m);
void lb_model_layer_info(const lb_model *m, int i, lb_layer_info *info);
int64_t lb_model_num_params(const lb_model *m);

/* Parameter tensors, in a fixed order (the checkpoint order). Names are "layer.param"
 * (conv1.weight, bn1.running_mean, ...). Data is float32, PyTorch layout (Conv weight
 * OIHW, Gemm weight [out, in]). Pointers stay valid until the model is destroyed.
 * `trainable` is 0 for buffers such as running statistics. */
typedef struct lb_param_info {
    const char *name;
    float *data;
    int ndim;
    int64_t shape[4];
    int64_t size;
    int trainable;
} lb_param_info;
int lb_model_num_tensors(const lb_model *m);
void lb_model_tensor(const lb_model *m, int i, lb_param_info *info);

/* Forward pass on `n` samples, x in NCHW float32 (n*c*h*w values). Writes n*outputs
 * logits to `logits`. `training` selects batch statistics and dropout. Runs in
 * internally-owned buffers sized for the largest n seen (grown, never per call).
 * A language model takes n token ids as floats, n a multiple of T, read as n / T
 * sequences of T tokens each started from a zero state; LB_ERR_INVALID for an id outside
 * [0, vocab) or n not a multiple of T. */
lb_status lb_model_forward(lb_model *m, const float *x, int n, int training, float *logits);

/* ---------------------------------------------------------------- quantization */

/* Make the model quantization-aware. `q` is "METHOD:W/A[,key=value...]" (methods
 * uniform, balanced, uniq, syq, qn, pot; docs/methods.md) or "fp32"; NULL re-applies the
 * spec's own "quant" default. Weight quantizers go on every Conv/Gemm except the first
 * and the last (unless quant_all, or the spec's "quant" names the layer), activation
 * quantizers on every Relu/Clip output. Replaces quantizers attached before; learned
 * quantizer tensors ("conv2.wq.alpha") join the model's tensors, so pointers from
 * lb_model_tensor are invalidated. LB_ERR_INVALID with a message listing the methods,
 * options and bit widths for a bad string. */
lb_status lb_model_set_quant(lb_model *m, const char *q, int quant_all);
/* The model's default quantization string in canonical form ("fp32" when none); owned
 * by the model, valid until the next lb_model_set_quant. */
const char *lb_model_quant(const lb_model *m);
int lb_model_quant_all(const lb_model *m);
/* The method's own fine-tuning recipe from METHODS.md for a quantization string, as
 * "OPT lr=X [wd=X] [clip=X] [bnfix=N]" (e.g. SYQ: "adam lr=0.0001 wd=0"); NULL for fp32
 * or an unknown method. Static storage. */
const char *lb_quant_recipe(const char *q);

/* Per-layer cost for `lowbit report`: for layers with MACs (Conv, Gemm). BOPs follow
 * UNIQ (METHODS.md section 0): m n k^2 (b_a b_w + b_a + b_w + log2(n k^2)) per output
 * position, float operands counted as 32 bits. Bytes: weights packed at their bit width
 * plus the quantizer's scales/codebook (float32 each), float layers at 4 bytes. */
typedef struct lb_layer_cost {
    const char *name, *op;
    const char *method;      /* "fp32" or the weight quantizer's method */
    int64_t params;          /* weight and bias elements */
    int wbits, abits;        /* weight bits; bits of the layer's input activation (32: float; 0: token ids) */
    int64_t macs;            /* per image */
    double bops;             /* per image */
    int64_t bytes;           /* packed size: codes + scales/codebook + float bias */
} lb_layer_cost;
/* Returns 1 and fills `c` when layer i has MACs or is an embedding (Gather: no MACs, its
 * table's bytes as `lowbit export` stores it), else 0. */
int lb_model_layer_cost(const lb_model *m, int i, lb_layer_cost *c);

/* Quantize-dequantize one array with a method's weight quantizer (hard, evaluation
 * form): `q` as for lb_model_set_quant, shape as the tensor's (PyTorch layout: groups
 * such as SYQ's rows and pixels follow it). y (n values) may alias x; codes (n values)
 * may be NULL. Learned parameters are initialised from x as for a fine-tune. */
lb_status lb_quantize_array(const char *q, const float *x, int ndim, const int64_t *shape, float *y, int32_t *codes);

/* ---------------------------------------------------------------- deployment */

/* What lb_export_lbm wrote. */
typedef struct lb_export_info {
    int layers;              /* runtime layers (Conv/Gemm with their batch norm and activation are one) */
    int64_t file_bytes;
    int64_t weight_bits;     /* sum over weights and embedding tables of bits x count (32 for float) */
    int64_t meta_bytes;      /* scales, codebooks, levels, folded batch norm, biases, thresholds, code values */
    int64_t table_bytes;     /* the header and the array and layer tables; the rest is alignment padding */
    size_t arena_b1, arena_b64;  /* runtime arena bytes at batch 1 and 64 (lbr_plan) */
} lb_export_info;

/* Write the model, in the hard (evaluation) form of its quantizers, as a packed .lbm
 * file for the runtime (runtime/lbr.h, docs/format.md), atomically. The quantizers must
 * hold values (trained, or loaded from a checkpoint). LB_ERR_INVALID names the layer
 * the runtime cannot take; `info` may be NULL. */
lb_status lb_export_lbm(lb_model *m, const char *path, lb_export_info *info);
/* The same into memory: *buf (malloc'd, 64-byte aligned, the caller frees) of *len bytes. */
lb_status lb_export_lbm_buffer(lb_model *m, uint8_t **buf, size_t *len, lb_export_info *info);
/* Write len bytes to path atomically (a temporary beside it, fsync, rename): on failure
 * nothing is left and an existing file is unchanged. */
lb_status lb_write_file_atomic(const char *path, const void *buf, size_t len);

/* ---------------------------------------------------------------- data */

typedef enum lb_split { LB_SPLIT_TRAIN = 0, LB_SPLIT_TEST = 1 } lb_split;

/* An image classification data set held in memory, normalised float32. */
typedef struct lb_dataset {
    int64_t n;           /* samples */
    int c, h, w;         /* per-sample shape */
    int num_classes;     /* max label + 1, at least 2 */
    float *x;            /* n*c*h*w values, NCHW (owned) */
    int32_t *y;          /* n labels in [0, num_classes) (owned) */
    char *source;        /* where it came from, for messages (owned) */
} lb_dataset;

/* Load a data set split. `spec` is one of
 *   "fashion-mnist"          the Debian package's files (/usr/share/datasets/fashion-mnist)
 *   DIR                      a directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 *   IMAGES,LABELS            an explicit pair, each IDX or .npy (used whatever the split):
 *                            images unsigned bytes [n,h,w] or [n,c,h,w], or float32 .npy
 *                            taken as already normalised; labels u8 (or .npy i4/i8)
 * An unknown split is LB_ERR_INVALID; a missing file LB_ERR_IO; a malformed one LB_ERR_FORMAT.
 * Images are scaled by 1/255; Fashion-MNIST (and any 1-channel IDX data) is then
 * normalised with mean 0.286 and std 0.353 (DESIGN.md section 4). */
lb_status lb_dataset_load(lb_dataset **out, const char *spec, lb_split split);
/* Keep the first n samples (n <= 0 or n >= size: no change). num_classes keeps its
 * loaded value, so a subset still matches its model. */
void lb_dataset_truncate(lb_dataset *d, int64_t n);
/* Frees x, y, source and d itself; NULL is allowed. */
void lb_dataset_free(lb_dataset *d);

/* Raw IDX file reading (gzip or plain), big-endian per the IDX spec. On success
 * *data (owned by the caller, free()) holds the elements of type `*dtype` (0x08 u8,
 * 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64) converted to host order, and
 * dims[0..*ndim) the shape (ndim <= 4). */
lb_status lb_idx_read(const char *path, void **data, int *dtype, int *ndim, int64_t dims[4]);
/* The same from a memory buffer (already decompressed); used by the fuzz target. */
lb_status lb_idx_parse(const uint8_t *buf, size_t len, const char *source, void **data, int *dtype,
                       int *ndim, int64_t dims[4]);

/* .npy arrays: versions 1.0-3.0 read, 1.0 written (numpy's own byte layout);
 * little-endian, C order. dtype is one of "f4", "u1", "i4", "i8" (numpy spellings such
 * as "<f4" and "|u1" are accepted by lb_npy_write). Whole files are read into memory. */
typedef struct lb_npy {
    char dtype[3];
    int ndim;
    int64_t shape[8];
    int64_t size;        /* number of elements */
    void *data;          /* owned; released by lb_npy_free */
} lb_npy;
lb_status lb_npy_read(const char *path, lb_npy *out);
lb_status lb_npy_parse(const uint8_t *buf, size_t len, const char *source, lb_npy *out);
/* Write atomically (temporary file, then rename). */
lb_status lb_npy_write(const char *path, const char *dtype, int ndim, const int64_t *shape, const void *data);
void lb_npy_free(lb_npy *a);

/* ---------------------------------------------------------------- training */

typedef enum lb_optimizer { LB_OPT_SGD = 0, LB_OPT_ADAM = 1, LB_OPT_ADAMW = 2 } lb_optimizer;
typedef enum lb_schedule { LB_SCHED_CONST = 0, LB_SCHED_COSINE = 1, LB_SCHED_STEP = 2 } lb_schedule;
typedef enum lb_augment { LB_AUG_NONE = 0, LB_AUG_CROP = 1 } lb_augment;

typedef struct lb_train_config {
    int epochs;              /* default 10 */
    int batch;               /* default 128 */
    float lr;                /* peak learning rate, default 0.05 */
    lb_optimizer opt;        /* default SGD */
    float momentum;          /* SGD momentum, default 0.9 */
    int nesterov;            /* default 0 */
    float weight_decay;      /* default 5e-4 (L2 for SGD/Adam, decoupled for AdamW) */
    float beta1, beta2, eps; /* Adam, defaults 0.9, 0.999, 1e-8 */
    lb_schedule sched;       /* default cosine, per step */
    float warmup_epochs;     /* linear warm-up from 0, default 0 */
    float step_gamma;        /* LB_SCHED_STEP: factor at each milestone, default 0.1 */
    float step_every;        /* LB_SCHED_STEP: epochs between milestones, default 30 */
    float grad_clip;         /* global gradient-norm clip, 0 = off */
    lb_augment augment;      /* default none */
    int crop_pad;            /* random-crop padding, default 2 */
    uint64_t seed;           /* default 0 */
    int threads;             /* <= 0: keep current */
    const char *out_path;    /* checkpoint path (required); written at each epoch end */
    const char *init_path;   /* load parameters from this checkpoint first (optional) */
    int resume;              /* continue from out_path's state: weights, optimizer, step */
    int64_t max_steps;       /* stop after this many steps in total (0: no limit) */
    int eval_every_epoch;    /* evaluate on the test set after each epoch, default 1 */
    int eval_batch;          /* default 500 */
    int bn_reestimate;       /* at the end, re-estimate batch-norm statistics with the hard
                              * quantized weights over this many training batches (UNIQ), 0: off */
} lb_train_config;

void lb_train_config_default(lb_train_config *c);

/* Progress reported to the caller's callback. */
typedef struct lb_train_progress {
    int kind;                /* 0: training step, 1: end of epoch (test metrics valid),
                              * 2: batch-norm statistics re-estimated (test_acc before/after) */
    int epoch;               /* 0-based epoch of the step */
    int64_t step;            /* steps done in total */
    int64_t steps_per_epoch;
    int64_t total_steps;
    float loss;              /* mean training loss since the last report */
    float train_acc;         /* training accuracy since the last report */
    float lr;
    double img_per_s;        /* training throughput since the last report */
    double test_acc, test_loss; /* kind 1 with evaluation, else -1; kind 2: after re-estimation */
    double elapsed_s;
    double test_acc_before;  /* kind 2 (batch-norm statistics re-estimated): accuracy before */
    int lm;                  /* language model: loss and accuracy are per token, img_per_s is
                              * tokens/s, test_* are the validation split's (perplexity exp(test_loss)) */
} lb_train_progress;
/* Called every few steps and at each epoch end; return non-zero to stop early
 * (the checkpoint is still written). */
typedef int (*lb_progress_fn)(const lb_train_progress *p, void *user);

lb_status lb_train(lb_model *m, const lb_dataset *train, const lb_dataset *test,
                   const lb_train_config *cfg, lb_progress_fn cb, void *user);

/* ---------------------------------------------------------------- evaluation */

typedef struct lb_eval_result {
    double accuracy;
    double loss;             /* mean softmax cross-entropy */
    int64_t samples;
    double seconds;
} lb_eval_result;

lb_status lb_eval(lb_model *m, const lb_dataset *d, int batch, lb_eval_result *r);

/* ---------------------------------------------------------------- language models */

/* Text corpora for language models (src/data/text.c): a plain-text file, or the KJV
 * Bible ("kjv"), read line by line, split 90/5/5 by line order, tokenized at word or
 * character level.
 *
 * Lines
 *   A line ends with "\n", "\r\n" (the "\r" is dropped) or the end of the file; a final
 *   line without "\n" still counts. Empty lines count too. With L lines, the first
 *   floor(L*90/100) are the training split, the next floor(L*5/100) validation and the
 *   rest test, so at least 20 lines are needed for every split to have one.
 *   The whole file must be UTF-8 without NUL bytes (at both levels); files above
 *   1 GiB (LB_TEXT_MAX_BYTES) are refused.
 *
 * Word level (PTB-like)
 *   ASCII letters are lowercased; a word is a maximal run of [a-z0-9'] and every other
 *   byte (spaces, punctuation, non-ASCII) separates words and is dropped. Each line ends
 *   with <eos>. Vocabulary, from the training split only: <unk> = 0, <eos> = 1, then the
 *   words by count descending, ties by byte order ascending, at most max_vocab of them.
 *   Other words map to <unk>. KJV with max_vocab 10000: 10,002 ids.
 *
 * Character level
 *   Each Unicode code point of a line is a symbol, then "\n" ends the line. Vocabulary:
 *   <unk> = 0, then the code points seen in the training split in ascending order (the
 *   token string is the code point's UTF-8 encoding; "\n" is always there). <unk> is
 *   always present, whether or not validation/test have unseen symbols. KJV: 64 ids
 *   (63 symbols, "\n" included, plus <unk>).
 *
 * KJV ("kjv"): the file $LOWBIT_DATA/kjv.txt, default data/kjv.txt relative to the
 *   working directory, written by scripts/install-deps.sh (31,102 verses one per line,
 *   references stripped): 27,991 / 1,555 / 1,556 lines. */
typedef enum lb_text_level { LB_TEXT_WORD = 0, LB_TEXT_CHAR = 1 } lb_text_level;
enum { LB_TEXT_TRAIN = 0, LB_TEXT_VALID = 1, LB_TEXT_TEST = 2 };
enum { LB_TEXT_UNK = 0, LB_TEXT_EOS = 1 }; /* ids of <unk> (both levels) and <eos> (word level) */

typedef struct lb_vocab {
    int n;              /* ids 0..n-1 */
    char **tok;         /* id -> token, NUL-terminated UTF-8 (owned) */
    /* private: open-addressing index token -> id (slot holds id or -1) */
    int32_t *slot_;
    uint32_t mask_;     /* capacity - 1, capacity a power of two >= 2n */
} lb_vocab;

typedef struct lb_text {
    lb_text_level level;
    lb_vocab vocab;
    int32_t *ids[3];    /* token streams of the three splits (owned), values in [0, vocab.n) */
    int64_t len[3];     /* tokens per split */
    int64_t lines[3];   /* lines per split (= <eos> / "\n" tokens in the split) */
    char *source;       /* path, for messages (owned) */
} lb_text;

/* spec: "kjv" (the file $LOWBIT_DATA/kjv.txt, default data/kjv.txt relative to the working
 * directory; when missing the error says to run scripts/install-deps.sh; "./kjv" names a
 * file called kjv) or a path to a plain-text file. max_vocab: word level cap (>= 1; checked
 * but otherwise ignored at char level). *out is NULL on failure.
 * Errors, each message naming the file (and the line, 1-based, and byte offset, 0-based,
 * where relevant):
 *   LB_ERR_INVALID  max_vocab < 1, NULL or empty spec, unknown level
 *   LB_ERR_IO       missing or unreadable file (for kjv: run scripts/install-deps.sh)
 *   LB_ERR_FORMAT   empty file, binary file (a NUL byte), invalid UTF-8 (overlong, truncated
 *                   or stray continuation byte, surrogate, above U+10FFFF), fewer than 20
 *                   lines, a training split without words (word vocabulary of size 0), a file
 *                   above LB_TEXT_MAX_BYTES
 *   LB_ERR_NOMEM */
lb_status lb_text_load(lb_text **out, const char *spec, lb_text_level level, int max_vocab);
/* The same from a buffer (tests, fuzzing; need not be NUL-terminated); `source` names it
 * in messages and becomes t->source. */
lb_status lb_text_load_buffer(lb_text **out, const char *buf, size_t len, const char *source,
                              lb_text_level level, int max_vocab);
void lb_text_free(lb_text *t);

/* Token id of a token string (exact match: "the", "<eos>", "\n", "<unk>"), or -1. */
int32_t lb_vocab_find(const lb_vocab *v, const char *tok);

/* The vocabulary as JSON, {"level":"word"|"char","tokens":["<unk>","<eos>","the",...]}
 * (tokens in id order), for a checkpoint's metadata. Returns a malloc'd NUL-terminated
 * string (free()), or NULL (out of memory; message set). */
char *lb_vocab_to_json(const lb_vocab *v, lb_text_level level);
/* Parse that JSON into *v (initialised here; release with lb_vocab_free) and *level.
 * Validates that the tokens are ones the loader could have made: word level "<unk>",
 * "<eos>", then at least one non-empty [a-z0-9'] word; char level "<unk>" then at least one
 * token that is a single code point (not U+0000), strictly ascending; no duplicates.
 * LB_ERR_FORMAT with a message naming `source` (and the token index) otherwise; *v is then
 * left empty (n = 0) and needs no free. */
lb_status lb_vocab_from_json(lb_vocab *v, lb_text_level *level, const char *json, const char *source);
/* Frees what v owns and zeroes it (safe on a zeroed vocab). */
void lb_vocab_free(lb_vocab *v);

/* Tokenize a prompt with an existing vocabulary (for text generation), by the rules above:
 * unknown words / symbols map to <unk>; each "\n" (or "\r\n") in s gives <eos> at word
 * level and the "\n" symbol at char level; nothing is appended at the end. *ids is malloc'd
 * (free(); non-NULL even when *n = 0). LB_ERR_INVALID for invalid UTF-8 in s (message
 * "prompt: byte offset ..."), LB_ERR_NOMEM. */
lb_status lb_text_encode(const lb_vocab *v, lb_text_level level, const char *s, int32_t **ids, int64_t *n);

/* Write the text of token `id` at buf: word level " word" (a space, then the word; <unk>
 * gives " <unk>") and "\n" for <eos>; char level the code point's UTF-8 bytes, and U+FFFD
 * (the replacement character, 3 bytes) for <unk>. Writes at most cap - 1 bytes, cut back to
 * a whole code point when it does not fit, then a NUL (when cap > 0). Returns the bytes
 * written, NUL excluded (0 for an id out of range), so a caller appends with
 * `p += lb_text_decode(v, level, id, p, (size_t)(end - p));`. */
size_t lb_text_decode(const lb_vocab *v, lb_text_level level, int32_t id, char *buf, size_t cap);


/* A sequence model's spec has "input": {"tokens": T, "level": "word"|"char"}: a sample
 * is a token, Gather embeds it, LSTM/GRU run over sequences of T steps, and the last
 * Gemm predicts the next token. */

int lb_model_is_lm(const lb_model *m);
int lb_model_seq_len(const lb_model *m);      /* T, the BPTT length */
int lb_model_text_level(const lb_model *m);   /* 0 word, 1 char */
int lb_model_vocab(const lb_model *m);        /* the Gather's vocabulary (0 when none) */
/* The spec's own training recipe ("adam lr=1e-3 batch=20 clip=10 ..."), or NULL. */
const char *lb_model_recipe(const lb_model *m);

typedef struct lb_lm_result {
    double loss;             /* mean cross-entropy per token, nats */
    double perplexity;       /* exp(loss) */
    double bpc;              /* loss / ln 2: bits per token (per character at char level) */
    double accuracy;         /* next-token accuracy */
    int64_t tokens;
    double seconds;
} lb_lm_result;

/* Truncated BPTT over the training split (t->ids[0]), validation perplexity after each
 * epoch. The vocabulary is saved in the checkpoint's metadata ("vocab"). */
lb_status lb_train_lm(lb_model *m, const lb_text *t, const lb_train_config *cfg, lb_progress_fn cb, void *user);
/* Perplexity of split 0 (train), 1 (validation) or 2 (test), `batch` streams (PyTorch's
 * example evaluates with 10). */
lb_status lb_eval_lm(lb_model *m, const lb_text *t, int split, int batch, lb_lm_result *r);
/* Feed the prompt, then sample n_out tokens into out (temperature 0: the most likely
 * token) with a generator keyed by seed. */
lb_status lb_lm_generate(lb_model *m, const int32_t *prompt, int64_t n_prompt, int32_t *out, int64_t n_out,
                         float temperature, uint64_t seed);

/* ---------------------------------------------------------------- checkpoints */

/* Training state saved beside the parameters (in __metadata__). */
typedef struct lb_ckpt_state {
    int64_t step;            /* optimizer steps done */
    int epoch;               /* completed epochs */
    uint64_t seed;
} lb_ckpt_state;

/* Save the model's tensors (and nothing else) to a safetensors file, atomically. */
lb_status lb_checkpoint_save(const lb_model *m, const char *path);
/* Build the model from the spec stored in a lowbit checkpoint's metadata and load its
 * weights: a checkpoint is self-describing. */
lb_status lb_model_create_from_checkpoint(lb_model **out, const char *path);
/* Load parameters by name; every model tensor must be present with the same shape.
 * Extra tensors (optimizer state) are ignored. `state` may be NULL. */
lb_status lb_checkpoint_load(lb_model *m, const char *path, lb_ckpt_state *state);
/* One string of a checkpoint's __metadata__ ("quant", "spec", "epoch", ...) into buf.
 * LB_ERR_FORMAT when absent or longer than n - 1. */
lb_status lb_checkpoint_meta(const char *path, const char *key, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* LOWBIT_H */
