/* lbr.h - the packed-model runtime: loads a .lbm image (lbr_file.h) and runs it with
 * the integer kernels of lbr_kernels.h. C11, no dependencies, no allocation: the caller
 * gives one arena and the runtime lives in it.
 *
 * Usage:
 *   size_t need;
 *   if (lbr_plan(buf, len, 64, NULL, &need, err, sizeof err) != LBR_OK) ...   (64: most samples per call)
 *   void *arena = aligned_alloc(64, need);                                 (the caller's memory)
 *   lbr_model *m;
 *   if (lbr_load(&m, buf, len, 64, arena, need, NULL, err, sizeof err) != LBR_OK) ...
 *   lbr_run(m, x, batch, logits);     x: batch x in_c x in_h x in_w floats (NCHW), logits: batch x n_outputs
 *
 * Ownership: `buf` (the file image) and `arena` stay the caller's; both must outlive the
 * model and stay unmodified. The model points into both; there is nothing to free.
 * lbr_run writes only into the arena and `out`.
 *
 * Errors: every function returns LBR_OK or an LBR_ERR_* code (lbr_file.h) and, where it
 * takes `err`, writes a message naming the part at fault ("layer 3: W_SCALE: ...").
 * A file that lbr_file_open accepts may still be refused by lbr_plan/lbr_load (a shape
 * that does not chain, an array of the wrong size or dtype, an unknown op); any input
 * gives an error, never a crash or a read outside the buffers (tests/fuzz/fuzz_lbm.c).
 *
 * Threads: a loaded model may not be run from two threads at once (its buffers are in
 * the arena); two models in two arenas may. The runtime itself is single-threaded.
 *
 * Layer records (LBR_LAYER_FIELDS u32 each, docs/format.md). Array references are the
 * array's table index + 1, and 0 means "absent". Tensors between layers are NHWC, one
 * sample after another; a layer's output is either float or unsigned codes (one byte
 * each) of OUT_BITS bits whose values are OUT_VALUES[code] (non-decreasing, with
 * OUT_VALUES[0] = 0 where an integer kernel reads them).
 *
 *   OP          LBR_OP_*
 *   IN0, IN1    producing layer index + 1, 0 = the model input; IN1 only for ADD (else 0)
 *   OUT_C/H/W   output shape per sample
 *   KH..PW      kernel, stride, padding (CONV, MAXPOOL, AVGPOOL); GROUP (CONV, >= 1);
 *               COUNT_PAD (AVGPOOL: padding counts in the divisor)
 *   Weights (CONV, GEMM): O = OUT_C rows of Kc = (I / GROUP) * KH * KW values in (kh, kw, i)
 *               order; GEMM: Kc = the input's C * H * W in its NHWC order, KH = KW = 1.
 *     W_FLOAT   f32 [O * Kc]: float weights, or
 *     W_BITS    1..8, W_CODES u64: O rows, each ceil(Kc * W_BITS / 64) words, code k at
 *               bits [k * W_BITS, (k + 1) * W_BITS) of the row (LSB first, crossing words)
 *     W_GROUP   which scale/codebook applies to weight (o, kh, kw, i): LBR_WG_TENSOR (one),
 *               LBR_WG_ROW (per o), LBR_WG_PIXEL (per kh * KW + kw)
 *     W_LEVELS  i32 [2^W_BITS]: linear form, value = W_SCALE[g] * W_LEVELS[code]
 *               (absent: codebook form, value = W_SCALE[g * 2^W_BITS + code])
 *     W_SCALE   f32 [groups] (linear) or [groups * 2^W_BITS] (codebook)
 *   POST_MUL, POST_ADD  f32 [OUT_C]: y = sum * POST_MUL[o] + POST_ADD[o] (bias and folded
 *               batch norm; absent: 1 and 0). CONV, GEMM, ADD (ADD: y = a + b first).
 *   ACT         LBR_ACT_NONE or LBR_ACT_RELU, after POST_*
 *   OUT_BITS    0: float output; 1..8: codes made by ENC from the activated float
 *   ENC         LBR_ENC_UNIFORM (ENC_PARAMS [c]: lbr_act_code(y, 2^bits, c)),
 *               LBR_ENC_POT (no params: lbr_act_pot_code(y, bits)),
 *               LBR_ENC_STEPS (ENC_PARAMS [beta, t_0 .. t_{K-2}]: lbr_step_code(beta * y, t, K - 1))
 *   OUT_VALUES  f32 [2^OUT_BITS]
 * Pools keep their input's kind: MAXPOOL of codes gives codes with the same values (the
 * values are non-decreasing); AVGPOOL and GAP give floats. Fields a layer does not use
 * are 0. The last layer's output (float, n_outputs = C * H * W values) is the logits.
 *
 * Token models (language models): layer 0 is a GATHER, the only layer that reads the
 * model input, which is then one token id per sample (in [0, IN_C): IN_C is the
 * vocabulary, IN_H = IN_W = 1), run one time step per call by lbr_run_tokens.
 *   GATHER      W_FLOAT f32 [IN_C * OUT_C], the embedding table (row = token); OUT_H = OUT_W = 1;
 *               ACT, OUT_BITS, ENC, ENC_PARAMS, OUT_VALUES as above
 *   LSTM, GRU   one direction, ONNX semantics (LSTM gates i, o, f, c; GRU z, r, h with
 *               linear_before_reset = 1, PyTorch's), G = 4 (LSTM) or 3 (GRU) gates of
 *               H = OUT_C units; OUT_H = OUT_W = 1. The input (C * H * W = I values) is
 *               multiplied by W (W_* fields, G*H rows of I values, as a GEMM's), the
 *               previous hidden state by R (W2_FLOAT, or W2_CODES of W_BITS bits with
 *               W2_GROUP, W2_LEVELS, W2_SCALE: G*H rows of H values, quantized exactly when
 *               W is); POST_ADD f32 [2 * G * H] is ONNX's B (Wb then Rb, absent: 0).
 *               ACT is the cell's squashing function: LBR_ACT_NONE tanh, LBR_ACT_SIGMOID
 *               the Bit-RNN cell (sigmoid, h in [0, 1]). OUT_BITS/ENC/ENC_PARAMS/OUT_VALUES
 *               quantize h itself (no activation first), and the quantized h is both the
 *               output and the state the next step multiplies by R. Formulas: src/ops/rnn.h;
 *               their exp, sigmoid and tanh: lbr_math.h (the same bits as training). */
#ifndef LBR_H
#define LBR_H

#include "lbr_file.h"

#include <stddef.h>
#include <stdint.h>

enum { LBR_OP_CONV = 1, LBR_OP_GEMM = 2, LBR_OP_MAXPOOL = 3, LBR_OP_AVGPOOL = 4, LBR_OP_GAP = 5, LBR_OP_ADD = 6,
       LBR_OP_GATHER = 7, LBR_OP_LSTM = 8, LBR_OP_GRU = 9 };
enum { LBR_WG_TENSOR = 0, LBR_WG_ROW = 1, LBR_WG_PIXEL = 2 };
enum { LBR_ACT_NONE = 0, LBR_ACT_RELU = 1, LBR_ACT_SIGMOID = 2 /* LSTM, GRU: the Bit-RNN cell */ };
enum { LBR_ENC_NONE = 0, LBR_ENC_UNIFORM = 1, LBR_ENC_POT = 2, LBR_ENC_STEPS = 3 };

/* Layer record fields (indices into the LBR_LAYER_FIELDS u32). */
enum {
    LBR_L_OP = 0, LBR_L_IN0, LBR_L_IN1, LBR_L_OUT_C, LBR_L_OUT_H, LBR_L_OUT_W,
    LBR_L_KH, LBR_L_KW, LBR_L_SH, LBR_L_SW, LBR_L_PH, LBR_L_PW, LBR_L_GROUP, LBR_L_COUNT_PAD,
    LBR_L_W_FLOAT, LBR_L_W_BITS, LBR_L_W_CODES, LBR_L_W_GROUP, LBR_L_W_LEVELS, LBR_L_W_SCALE,
    LBR_L_POST_MUL, LBR_L_POST_ADD, LBR_L_ACT, LBR_L_OUT_BITS, LBR_L_ENC, LBR_L_ENC_PARAMS,
    LBR_L_OUT_VALUES, LBR_L_W2_FLOAT, LBR_L_W2_CODES, LBR_L_W2_GROUP, LBR_L_W2_LEVELS, LBR_L_W2_SCALE,
    LBR_L_COUNT   /* == LBR_LAYER_RESERVED (no field is reserved now) */
};

/* How a layer's sum is computed, chosen at load from the weights' and input's form. */
typedef enum {
    LBR_PATH_NONE = 0,      /* no weights (pools, add) */
    LBR_PATH_FLOAT,         /* float weights or float input: decoded values, float dot products */
    LBR_PATH_S8U8,          /* integer levels |l| <= 127 x codes */
    LBR_PATH_BITSERIAL,     /* levels in {-1, 0, +1} x codes as bit planes */
    LBR_PATH_SHIFT,         /* levels 0 or +-2^e, e <= 7, x codes (only when asked: lbr_options.prefer_shift) */
    LBR_PATH_BUCKET,        /* codebook weights of <= 4 bits x codes as bit planes (see LBR_BUCKET_MAX_WORK) */
    LBR_PATH_XNOR,          /* levels in {-1, +1} (1 bit) x 1-bit codes: xnor-popcount (unless lbr_options.no_xnor) */
    LBR_PATH_COUNT
} lbr_path;
extern const char *const lbr_path_names[LBR_PATH_COUNT];   /* "none", "float", "s8u8", ... */

/* Codebook layers run on the bucket kernels up to this much work per MAC (2^w_bits x
 * input bits; beyond it the float path is as fast or faster, lbr.c says where measured). */
#define LBR_BUCKET_MAX_WORK 24

/* Load options; NULL means all zero (the best kernels this CPU runs). */
typedef struct lbr_options {
    int ref_kernels;     /* 1: every integer kernel's scalar reference (bit-identical results) */
    int float_only;      /* 1: every layer on LBR_PATH_FLOAT: the values training computes with */
    int prefer_shift;    /* 1: power-of-two levels take LBR_PATH_SHIFT rather than S8U8 */
    int avx2_only;       /* 1: AVX2 variants even where AVX-512 runs (tests, benchmarks; same bits) */
    int no_xnor;         /* 1: binary weights with 1-bit inputs take BITSERIAL rather than XNOR (same bits) */
    int prefer_bucket;   /* 1: codebook weights of <= 4 bits take BUCKET whatever their cost; by default
                          * only where 2^w_bits x input bits <= LBR_BUCKET_MAX_WORK, else FLOAT */
} lbr_options;

typedef struct lbr_model lbr_model;

/* Arena bytes a model needs to run up to max_batch (>= 1) samples per call with the
 * options opt (NULL: defaults; the layout depends on them: float_only decodes every
 * weight to float; and on the CPU: ternary and binary weights take the lanes layouts
 * of the bitserial and xnor kernels where AVX2 runs, unless ref_kernels), into *bytes. Validates the file
 * as lbr_load does. */
int lbr_plan(const void *buf, size_t len, int max_batch, const lbr_options *opt, size_t *bytes, char *err, size_t errlen);

/* Validate buf and lay the model out in arena (64-byte aligned, at least lbr_plan's
 * bytes): weights are expanded once into each chosen kernel's layout. */
int lbr_load(lbr_model **out, const void *buf, size_t len, int max_batch, void *arena, size_t arena_len,
             const lbr_options *opt, char *err, size_t errlen);

/* Run batch (1 .. max_batch) samples. LBR_ERR_ARG for a NULL pointer, batch out of range,
 * or a token model (lbr_run_tokens). */
int lbr_run(lbr_model *m, const float *x, int batch, float *out);

/* Token models: one time step of `batch` (1 .. max_batch) independent streams: token
 * tokens[b] of stream b in, its logits at out[b * n_outputs ..] out. The recurrent state
 * (each LSTM's h and c, each GRU's h) is carried in the arena from call to call, per
 * stream, until lbr_reset; every call between two resets must use the same batch.
 * LBR_ERR_ARG for a NULL pointer, a token outside [0, vocabulary), a batch out of range
 * or different from the previous call's, or a model that is not a token model. */
int lbr_run_tokens(lbr_model *m, const int32_t *tokens, int batch, float *out);
/* Zero the recurrent state of every stream (lbr_load leaves it zero). */
void lbr_reset(lbr_model *m);
/* 1 for a token model (layer 0 is a GATHER), else 0; *vocab (may be NULL) its IN_C. */
int lbr_is_token_model(const lbr_model *m, int *vocab);

/* What was loaded: shape and the path and kernel variant each layer runs. */
typedef struct lbr_layer_info {
    int op;                      /* LBR_OP_* */
    lbr_path path;
    const char *variant;         /* kernel variant name ("avx512vnni", "avx512-lanes", "ref", "scalar" for float) */
    int w_bits, in_bits, out_bits;   /* 0: float */
    uint64_t macs;               /* per sample */
} lbr_layer_info;
int lbr_num_layers(const lbr_model *m);
int lbr_num_outputs(const lbr_model *m);
int lbr_layer(const lbr_model *m, int i, lbr_layer_info *info);

#endif
