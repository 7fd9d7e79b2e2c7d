/* lbr.c - the packed-model executor (lbr.h): validates a .lbm image's layers, lays the
 * model out in the caller's arena and runs it with the integer kernels of lbr_kernels.h.
 *
 * One function, build(), both plans and loads: with no arena it validates every layer
 * and sums the bytes the layout needs; with one it lays the model out at the same
 * offsets. lbr_load calls it twice (plan, then fill), so nothing is written to the arena
 * before the whole file has been checked, and the arena's use is exactly what was
 * planned. lbr_plan takes the same options, since they change the layout (float_only
 * decodes every weight to float).
 *
 * Arena, each block 64-byte aligned, in this order:
 *   lbr_model, lbr_layer_rt[n_layers]
 *   per CONV/GEMM layer: weights in the path's layout (FLOAT: float rows in blocks of 8
 *     outputs interleaved, [group][block][k][8]; S8U8/SHIFT: O int8 byte rows of
 *     lbr_bytes(Kc); BITSERIAL: with a lanes kernel (AVX2 or AVX-512, not ref_kernels)
 *     each group's weights in the lanes layout of lbr_kernels.h, the group starting at a
 *     block, else P then Q, O bit rows each; XNOR: the same with the xnor lanes layout,
 *     else O bit rows (1: w = +1), then wsum[O]; BUCKET: O x W_BITS bit planes and the
 *     float codebook), then mul[O], add[O]; integer paths with code outputs:
 *     the integer thresholds thr[2^OUT_BITS - 1][O] and their signs tsg[O]
 *   GATHER: its table, floats or (W_CODES) one byte per output code
 *   per layer: decoded ENC_PARAMS, OUT_VALUES (ADD: mul[C], add[C])
 *   the input, NHWC floats, max_batch samples
 *   per layer: its output, max_batch samples (floats, or one byte per code)
 *   scratch shared by all layers: the im2col rows (bytes or floats), the activation bit
 *     planes, the accumulators (int32, or the float sums), the bucket sums.
 * A CONV/GEMM layer runs in blocks of at most LBR_ROWS im2col rows (output pixels of
 * the batch, sample after sample), so the scratch does not grow with the batch.
 *
 * GEMM is run as a convolution: its input sample, C x H x W in NHWC order, is a 1 x 1
 * image of C*H*W channels and the layer a 1 x 1 convolution of it.
 *
 * Array data is little-endian; it is read byte by byte (rd32/rd64), so any host and any
 * alignment of the file buffer work. Everything is read once, at load. */
#include "lbr.h"

#include "kernels/lbr_kernels_impl.h"
#include "lbr_internal.h"
#include "lbr_math.h"
#include "lbr_quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#if LBR_X86
#include <immintrin.h>
#endif

#define LBR_ROWS 256                   /* im2col rows per kernel call */
#define LBR_LIMIT ((uint64_t)1 << 62)  /* bound on every size computed: sums cannot overflow u64 */
#define LBR_MAXDIM ((uint64_t)1 << 28) /* bound on tensor elements, Kc, kernel and pad fields */
#define LBR_KMAX 65536                 /* the kernels' largest K (lbr_kernels.h) */
#define LBR_BLK 8                      /* outputs per block of the float path */

const char *const lbr_path_names[LBR_PATH_COUNT] = {"none", "float", "s8u8", "bitserial", "shift", "bucket", "xnor"};

static const char *const field_names[LBR_L_COUNT] = {
    "OP",       "IN0",     "IN1",      "OUT_C",    "OUT_H",     "OUT_W",    "KH",     "KW",         "SH",
    "SW",       "PH",      "PW",       "GROUP",    "COUNT_PAD", "W_FLOAT",  "W_BITS", "W_CODES",    "W_GROUP",
    "W_LEVELS", "W_SCALE", "POST_MUL", "POST_ADD", "ACT",       "OUT_BITS", "ENC",    "ENC_PARAMS", "OUT_VALUES",
    "W2_FLOAT", "W2_CODES", "W2_GROUP", "W2_LEVELS", "W2_SCALE"};
static const char op_names[10][8] = {"?", "CONV", "GEMM", "MAXPOOL", "AVGPOOL", "GAP", "ADD", "GATHER", "LSTM", "GRU"};

/* ------------------------------------------------------------------ the loaded model */

typedef struct lbr_layer_rt {
    int op, path, act, enc;
    int src0, src1; /* producing layer, -1: the model input */
    /* input and output shapes per sample; GEMM: c = C*H*W, h = w = 1, a 1 x 1 kernel */
    int c, h, w, oc, oh, ow, kh, kw, sh, sw, ph, pw, g, count_pad;
    int cg, og, kc; /* input channels, outputs and Kc per group */
    int in_bits, in1_bits, out_bits, w_bits;
    int identity;                    /* FLOAT path: the im2col rows are the float input */
    int rows;                        /* im2col rows per kernel call */
    int cb_stride;                   /* BUCKET: codebook entries between rows (0: one) */
    const float *in_vals, *in1_vals; /* decode tables of code inputs (NULL: float) */
    const float *out_vals;           /* this layer's codes' values (MAXPOOL: inherited) */
    const void *in0, *in1;           /* input buffers */
    void *out;                       /* output buffer */
    size_t out_per;                  /* output elements per sample */
    float *wf;                       /* FLOAT: packed weights; GATHER: the float table */
    uint8_t *tcodes;                 /* GATHER of codes: [vocabulary][OUT_C] output codes */
    int8_t *wb;                      /* S8U8, SHIFT: byte rows */
    uint64_t *wp, *wq;               /* BITSERIAL: P, Q rows; BUCKET: planes in wp; XNOR: rows in wp */
    uint64_t *wl;                    /* BITSERIAL, XNOR with a lanes kernel: its lanes layout, per group */
    int32_t *wsum;                   /* XNOR: sum of each output's levels (+-1) over Kc, [pixel][O] */
    int pix;                         /* BITSERIAL/XNOR per-pixel scales: KH*KW sums of C/G (0: one sum) */
    float *pscale;                   /* their scales, one per kernel pixel */
    float *cb;                       /* BUCKET: codebook */
    float *mul, *add;                /* per output channel */
    float *encp;                     /* decoded ENC_PARAMS */
    /* integer paths with code outputs: the code is a monotone step function of the integer
     * sum, so it is counted against per-channel integer thresholds (acc_thresholds) */
    int32_t *thr;                    /* [j * O + o], the smallest sgn[o] * acc with code > j */
    int32_t *tsg;                    /* per channel: +1, or -1 where the code falls as acc rises */
    int use_thr;
    struct lbr_layer_rt *sub;        /* LSTM, GRU: the input and the recurrent product (GEMMs of G*H sums) */
    float *cst;                      /* LSTM: the cell state, max_batch x H */
    int gates;                       /* LSTM 4, GRU 3 */
    uint64_t macs;
    const char *variant;
} lbr_layer_rt;

struct lbr_model {
    int n_layers, n_outputs, max_batch;
    int in_c, in_h, in_w;
    float *input; /* NHWC */
    lbr_layer_rt *layers;
    int tokens;       /* a token model: layer 0 is GATHER, the input is m->input as int32 ids */
    int state_batch;  /* streams of the carried recurrent state, 0: none (after a reset) */
    uint8_t *col;     /* im2col rows (bytes or floats) */
    uint64_t *planes; /* activation bit planes */
    void *acc;        /* int32 sums or float sums, rows x O */
    int32_t *bacc;    /* bucket sums, rows x O/G x 2^W_BITS */
    lbr_bitserial_fn bitserial;
    lbr_bitserial_lanes_fn bitserial_lanes; /* NULL: bitserial on P, Q rows */
    lbr_xnor_fn xnor;
    lbr_xnor_lanes_fn xnor_lanes;           /* NULL: xnor on bit rows */
    lbr_s8u8_fn s8u8;
    lbr_shift_fn shift;
    lbr_bucket_fn bucket;
    void (*pack)(const uint8_t *a, size_t ld, int nr, int K, int bits, uint64_t *pl);
    void (*fgemm)(int nr, int og, int kc, const float *x, const float *w, float *y, size_t ldy);
    const char *vname[LBR_K_COUNT];
};

/* ------------------------------------------------------------------ small helpers */


/* "layer L: FIELD: ..." and LBR_ERR_FORMAT */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int lfail(char *err, size_t errlen, uint32_t l, int field, const char *fmt, ...);
static int lfail(char *err, size_t errlen, uint32_t l, int field, const char *fmt, ...) {
    if (err && errlen) {
        int n = snprintf(err, errlen, "layer %" PRIu32 ": %s: ", l, field >= 0 ? field_names[field] : "arena");
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return LBR_ERR_FORMAT;
}

/* Little-endian element reads assembled from bytes: any host byte order, any alignment. */
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static float rdf(const lbr_array *a, uint64_t i) {
    const uint32_t u = rd32((const uint8_t *)a->data + 4 * (size_t)i);
    float v;
    memcpy(&v, &u, sizeof v); /* float and uint32 share the host's byte order */
    return v;
}
static int32_t rdi(const lbr_array *a, uint64_t i) { return (int32_t)rd32((const uint8_t *)a->data + 4 * (size_t)i); }
_Static_assert(sizeof(float) == 4, "lbr.c reads f32 arrays into float");

static uint64_t mul_sat(uint64_t a, uint64_t b) { return a && b > UINT64_MAX / a ? UINT64_MAX : a * b; }
static uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* ------------------------------------------------------------------ validation */

/* What one layer is, from its fields, once checked. */
typedef struct lay {
    uint32_t op, act, enc, out_bits; /* out_bits: the output's code bits (MAXPOOL: its input's) */
    int32_t src[2];
    uint32_t in_bits[2];
    lbr_array in_vals[2]; /* the inputs' OUT_VALUES (data NULL: float) */
    uint64_t c, h, w, oc, oh, ow, kh, kw, sh, sw, ph, pw, g, count_pad;
    uint64_t cg, og, kc;
    uint32_t w_bits, wgroup, ngroups, codebook;
    lbr_array wf, wc, lev, scale, pmul, padd, encp, outv;
    lbr_path path;
    float step_in;
    uint64_t pix;         /* BITSERIAL/XNOR with a scale per kernel pixel: KH*KW sums of C/G each, else 0 */
    /* LSTM, GRU: gates G, and the recurrent weights R (W2_*) in the form of W's */
    uint64_t gates;
    uint32_t wgroup2, ngroups2, codebook2;
    lbr_array wf2, wc2, lev2, scale2;
} lay;

/* The code bits and OUT_VALUES of the tensor that layer ref - 1 produces (ref 0: the
 * model input, float). MAXPOOL passes its input's codes on; AVGPOOL and GAP give floats.
 * Only called for layers already validated, whose IN0 names an earlier layer. */
static void kind_of(const lbr_file *f, uint32_t ref, uint32_t *bits, lbr_array *vals) {
    memset(vals, 0, sizeof *vals);
    *bits = 0;
    while (ref && lbr_layer_field(f, ref - 1, LBR_L_OP) == LBR_OP_MAXPOOL) ref = lbr_layer_field(f, ref - 1, LBR_L_IN0);
    if (!ref) return;
    const uint32_t op = lbr_layer_field(f, ref - 1, LBR_L_OP);
    if (op == LBR_OP_AVGPOOL || op == LBR_OP_GAP) return;
    *bits = lbr_layer_field(f, ref - 1, LBR_L_OUT_BITS);
    if (*bits) lbr_file_array(f, lbr_layer_field(f, ref - 1, LBR_L_OUT_VALUES) - 1, vals);
}

static void shape_of(const lbr_file *f, uint32_t ref, uint64_t *c, uint64_t *h, uint64_t *w) {
    if (!ref) {
        *c = f->in_c, *h = f->in_h, *w = f->in_w;
        return;
    }
    *c = lbr_layer_field(f, ref - 1, LBR_L_OUT_C);
    *h = lbr_layer_field(f, ref - 1, LBR_L_OUT_H);
    *w = lbr_layer_field(f, ref - 1, LBR_L_OUT_W);
}


/* Array `field` of layer l, with the dtype and count it must have. Absent (0): a->data
 * NULL, an error only when required. */
static int get_arr(const lbr_file *f, uint32_t l, int field, uint32_t dtype, uint64_t count, int required, lbr_array *a,
                   char *err, size_t errlen) {
    const uint32_t ref = lbr_layer_field(f, l, field);
    memset(a, 0, sizeof *a);
    if (!ref) return required ? lfail(err, errlen, l, field, "is 0 (absent), but the layer needs this array") : LBR_OK;
    if (lbr_file_array(f, ref - 1, a) != LBR_OK)
        return lfail(err, errlen, l, field, "array %" PRIu32 " does not exist (the file has %" PRIu32 " arrays)",
                     ref - 1, f->n_arrays);
    if (a->dtype != dtype)
        return lfail(err, errlen, l, field, "array %" PRIu32 " is %s, %s expected", ref - 1, lbr_dtype_name(a->dtype),
                     lbr_dtype_name(dtype));
    if (a->count != count)
        return lfail(err, errlen, l, field, "array %" PRIu32 " has %" PRIu64 " elements, %" PRIu64 " expected", ref - 1,
                     a->count, count);
    return LBR_OK;
}

/* Fields each op uses (bit k: field k); every other field must be 0. */
#define B(k) (1u << (k))
static uint32_t used_fields(uint32_t op) {
    const uint32_t base = B(LBR_L_OP) | B(LBR_L_IN0) | B(LBR_L_OUT_C) | B(LBR_L_OUT_H) | B(LBR_L_OUT_W);
    const uint32_t win = B(LBR_L_KH) | B(LBR_L_KW) | B(LBR_L_SH) | B(LBR_L_SW) | B(LBR_L_PH) | B(LBR_L_PW);
    const uint32_t wts =
        B(LBR_L_W_FLOAT) | B(LBR_L_W_BITS) | B(LBR_L_W_CODES) | B(LBR_L_W_GROUP) | B(LBR_L_W_LEVELS) | B(LBR_L_W_SCALE);
    const uint32_t post = B(LBR_L_POST_MUL) | B(LBR_L_POST_ADD) | B(LBR_L_ACT) | B(LBR_L_OUT_BITS) | B(LBR_L_ENC) |
                          B(LBR_L_ENC_PARAMS) | B(LBR_L_OUT_VALUES);
    switch (op) {
    case LBR_OP_CONV: return base | win | B(LBR_L_GROUP) | wts | post;
    case LBR_OP_GEMM: return base | B(LBR_L_KH) | B(LBR_L_KW) | B(LBR_L_GROUP) | wts | post;
    case LBR_OP_MAXPOOL: return base | win;
    case LBR_OP_AVGPOOL: return base | win | B(LBR_L_COUNT_PAD);
    case LBR_OP_GAP: return base;
    case LBR_OP_ADD: return base | B(LBR_L_IN1) | post;
    case LBR_OP_GATHER:
        return base | B(LBR_L_W_FLOAT) | B(LBR_L_W_BITS) | B(LBR_L_W_CODES) |
               (post & ~(B(LBR_L_POST_MUL) | B(LBR_L_POST_ADD)));
    case LBR_OP_LSTM:
    case LBR_OP_GRU:
        return base | wts | B(LBR_L_W2_FLOAT) | B(LBR_L_W2_CODES) | B(LBR_L_W2_GROUP) | B(LBR_L_W2_LEVELS) |
               B(LBR_L_W2_SCALE) | (post & ~B(LBR_L_POST_MUL));
    default: return 0;
    }
}
#undef B

/* A window (CONV, MAXPOOL, AVGPOOL): the kernel, stride and padding fields, the output
 * size they give, and OUT_H/OUT_W against it. */
static int check_window(const lbr_file *f, uint32_t l, lay *L, int pool, char *err, size_t errlen) {
    const int fk[6] = {LBR_L_KH, LBR_L_KW, LBR_L_SH, LBR_L_SW, LBR_L_PH, LBR_L_PW};
    uint64_t v[6];
    for (int i = 0; i < 6; i++) {
        v[i] = lbr_layer_field(f, l, fk[i]);
        if (i < 4 && v[i] == 0) return lfail(err, errlen, l, fk[i], "is 0, must be >= 1");
        if (v[i] > LBR_MAXDIM) return lfail(err, errlen, l, fk[i], "is %" PRIu64 ", exceeds 2^28", v[i]);
    }
    L->kh = v[0], L->kw = v[1], L->sh = v[2], L->sw = v[3], L->ph = v[4], L->pw = v[5];
    if (pool && L->ph >= L->kh)
        return lfail(err, errlen, l, LBR_L_PH, "padding %" PRIu64 " must be less than KH %" PRIu64, L->ph, L->kh);
    if (pool && L->pw >= L->kw)
        return lfail(err, errlen, l, LBR_L_PW, "padding %" PRIu64 " must be less than KW %" PRIu64, L->pw, L->kw);
    const uint64_t ph = L->h + 2 * L->ph, pw = L->w + 2 * L->pw;
    if (L->kh > ph)
        return lfail(err, errlen, l, LBR_L_KH, "kernel %" PRIu64 " is larger than the padded input (%" PRIu64 ")",
                     L->kh, ph);
    if (L->kw > pw)
        return lfail(err, errlen, l, LBR_L_KW, "kernel %" PRIu64 " is larger than the padded input (%" PRIu64 ")",
                     L->kw, pw);
    const uint64_t oh = (ph - L->kh) / L->sh + 1, ow = (pw - L->kw) / L->sw + 1;
    if (L->oh != oh)
        return lfail(err, errlen, l, LBR_L_OUT_H, "is %" PRIu64 ", (H + 2 PH - KH) / SH + 1 = %" PRIu64 " expected",
                     L->oh, oh);
    if (L->ow != ow)
        return lfail(err, errlen, l, LBR_L_OUT_W, "is %" PRIu64 ", (W + 2 PW - KW) / SW + 1 = %" PRIu64 " expected",
                     L->ow, ow);
    return LBR_OK;
}

/* f32 values, non-decreasing from index `from` on; finite, or (thresholds: inf_ok) not NaN
 * from `from` on, where an unreachable code's threshold is +-inf */
static int check_values(const lbr_array *a, uint64_t from, int inf_ok, uint32_t l, int field, char *err,
                        size_t errlen) {
    for (uint64_t i = 0; i < a->count; i++) {
        const float v = rdf(a, i);
        if (isnan(v) || (!isfinite(v) && !(inf_ok && i >= from)))
            return lfail(err, errlen, l, field, "element %" PRIu64 " is %g, must be %s", i, (double)v,
                         inf_ok && i >= from ? "a number" : "finite");
        if (i > from && v < rdf(a, i - 1))
            return lfail(err, errlen, l, field,
                         "element %" PRIu64 " (%g) is below element %" PRIu64 " (%g): values must be non-decreasing", i,
                         (double)v, i - 1, (double)rdf(a, i - 1));
    }
    return LBR_OK;
}

/* The weights of layer l, O rows of kc values (kk: kernel pixels, for LBR_WG_PIXEL), from
 * the fields fld = {FLOAT, CODES, GROUP, LEVELS, SCALE}: float or codes of L->w_bits bits
 * (read from W_BITS when `first`; the recurrent weights W2_* share W's bits and form). */
static int get_weights(const lbr_file *f, uint32_t l, lay *L, const int fld[5], int first, uint64_t O, uint64_t kc,
                       uint64_t kk, lbr_array *wf, lbr_array *wc, lbr_array *lev, lbr_array *scale, uint32_t *wgroup,
                       uint32_t *ngroups, uint32_t *codebook, char *err, size_t errlen) {
    int rc;
#define FLD(k) lbr_layer_field(f, l, (k))
    const uint32_t has_f = FLD(fld[0]), has_c = FLD(fld[1]);
    if (has_f && has_c)
        return lfail(err, errlen, l, fld[0], "both %s and %s are set, exactly one must be", field_names[fld[0]],
                     field_names[fld[1]]);
    if (!has_f && !has_c)
        return lfail(err, errlen, l, fld[1], "no weights: %s and %s are both 0", field_names[fld[0]], field_names[fld[1]]);
    if (!first && (has_f != 0) != (L->w_bits == 0))
        return lfail(err, errlen, l, has_f ? fld[0] : fld[1], "the recurrent weights must take W's form (%s)",
                     L->w_bits ? "codes: W2_CODES" : "float: W2_FLOAT");
    if (has_f) {
        if ((rc = get_arr(f, l, fld[0], LBR_DT_F32, O * kc, 1, wf, err, errlen)) != LBR_OK) return rc;
        const int others[4] = {first ? LBR_L_W_BITS : fld[2], fld[2], fld[3], fld[4]};
        for (int i = 0; i < 4; i++)
            if (FLD(others[i]))
                return lfail(err, errlen, l, others[i], "is %" PRIu32 ", must be 0 with float weights (%s)",
                             FLD(others[i]), field_names[fld[0]]);
        return LBR_OK;
    }
    if (first) {
        L->w_bits = FLD(LBR_L_W_BITS);
        if (L->w_bits < 1 || L->w_bits > 8)
            return lfail(err, errlen, l, LBR_L_W_BITS, "is %" PRIu32 ", must be 1 .. 8", L->w_bits);
    }
    const uint64_t J = (uint64_t)1 << L->w_bits;
    if ((rc = get_arr(f, l, fld[1], LBR_DT_U64, ceil_div(O * kc * L->w_bits, 64), 1, wc, err, errlen)) != LBR_OK)
        return rc;
    *wgroup = FLD(fld[2]);
    if (*wgroup > LBR_WG_PIXEL)
        return lfail(err, errlen, l, fld[2], "is %" PRIu32 ", must be 0 (tensor), 1 (row) or 2 (pixel)", *wgroup);
    *ngroups = *wgroup == LBR_WG_TENSOR ? 1 : *wgroup == LBR_WG_ROW ? (uint32_t)O : (uint32_t)kk;
    if ((rc = get_arr(f, l, fld[3], LBR_DT_I32, J, 0, lev, err, errlen)) != LBR_OK) return rc;
    *codebook = lev->data == NULL;
    return get_arr(f, l, fld[4], LBR_DT_F32, *ngroups * (*codebook ? J : 1), 1, scale, err, errlen);
#undef FLD
}

/* The kernel path of a weighted layer (CONV, GEMM, the two products of an LSTM/GRU) from
 * its weights' form and its input's codes. */
static void choose_path(lay *L, const lbr_options *opt) {
    L->path = LBR_PATH_FLOAT;
    int linear_in = L->in_bits[0] > 0;
    if (linear_in) {
        const float v1 = rdf(&L->in_vals[0], 1);
        linear_in = rdf(&L->in_vals[0], 0) == 0.0f;
        for (uint64_t j = 2; linear_in && j < L->in_vals[0].count; j++)
            linear_in = rdf(&L->in_vals[0], j) == v1 * (float)j;
        L->step_in = v1;
    }
    /* a scale per kernel pixel (SYQ's default for convolutions) cannot fold into one
     * multiplier per output; the popcount paths then sum each pixel on its own */
    const int pixel = L->wgroup == LBR_WG_PIXEL && L->kh * L->kw > 1;
    L->pix = 0;
    if (!(opt && opt->float_only) && L->wc.data && linear_in && L->kc <= LBR_KMAX) {
        const uint64_t J = (uint64_t)1 << L->w_bits;
        if (L->codebook) {
            /* the bucket kernels' work per MAC grows as J x input bits while the float
             * path's does not: measured end to end on fmnist-cnn (UNIQ, AVX-512, batch 1)
             * bucket is 1.8x faster than float at J x bits = 8 (W2/A2, W1/A4), 1.6x at 16
             * (W2/A4), 1.05x at 24 (W3/A3), even at 32 (W3/A4, W2/A8) and 0.6x at 64
             * (W4/A4). The rule does not depend on the CPU, so every option set that
             * promises the same bits (ref_kernels, avx2_only) takes the same paths. */
            const int worth = J * (uint64_t)L->in_bits[0] <= LBR_BUCKET_MAX_WORK || (opt && opt->prefer_bucket);
            if (L->w_bits <= 4 && !pixel && worth) L->path = LBR_PATH_BUCKET;
        } else {
            int tern = 1, bin = 1, pow2 = 1, s8 = 1;
            for (uint64_t j = 0; j < J; j++) {
                const int64_t v = rdi(&L->lev, j), a = v < 0 ? -v : v;
                tern &= a <= 1;
                bin &= a == 1;
                s8 &= a <= 127;
                pow2 &= a == 0 || (a <= 128 && (a & (a - 1)) == 0);
            }
            if (bin && L->in_bits[0] == 1 && !(opt && opt->no_xnor))
                L->path = LBR_PATH_XNOR;
            else if (tern)
                L->path = LBR_PATH_BITSERIAL;
            else if (pixel)
                ; /* float */
            else if (pow2 && opt && opt->prefer_shift)
                L->path = LBR_PATH_SHIFT;
            else if (s8)
                L->path = LBR_PATH_S8U8;
        }
        if (pixel && L->path != LBR_PATH_FLOAT) L->pix = L->kh * L->kw;
    }
}

/* One of the two products of an LSTM/GRU layer L as a GEMM of G*H float sums (no
 * activation, no codes out): which 0, W times the layer's input; 1, R times the previous
 * hidden state, whose codes (when quantized) are the layer's own output codes. */
static void rnn_product(const lay *L, int which, const lbr_options *opt, lay *S) {
    *S = *L;
    S->op = LBR_OP_GEMM;
    S->oc = S->og = L->gates * L->oc;
    S->oh = S->ow = S->h = S->w = 1;
    S->kh = S->kw = S->sh = S->sw = 1, S->ph = S->pw = 0, S->g = 1;
    S->act = LBR_ACT_NONE, S->out_bits = 0, S->enc = LBR_ENC_NONE;
    memset(&S->encp, 0, sizeof S->encp);
    memset(&S->outv, 0, sizeof S->outv);
    memset(&S->pmul, 0, sizeof S->pmul);
    memset(&S->padd, 0, sizeof S->padd); /* the biases are placed by build() */
    if (which) {
        S->c = S->cg = S->kc = L->oc;
        S->wf = L->wf2, S->wc = L->wc2, S->lev = L->lev2, S->scale = L->scale2;
        S->wgroup = L->wgroup2, S->ngroups = L->ngroups2, S->codebook = L->codebook2;
        S->in_bits[0] = L->out_bits;
        S->in_vals[0] = L->outv;
    }
    choose_path(S, opt);
}

/* Validate layer l (every earlier layer valid) and describe it in *L, with the path the
 * options give. */
static int analyze(const lbr_file *f, uint32_t l, const lbr_options *opt, lay *L, char *err, size_t errlen) {
    int rc;
    memset(L, 0, sizeof *L);
#define FLD(k) lbr_layer_field(f, l, (k))
    const uint32_t op = FLD(LBR_L_OP);
    if (op < LBR_OP_CONV || op > LBR_OP_GRU)
        return lfail(err, errlen, l, LBR_L_OP, "unknown op %" PRIu32 " (1 .. 9 are defined)", op);
    L->op = op;
    const uint32_t used = used_fields(op);
    for (int k = 0; k < LBR_L_COUNT; k++)
        if (!(used >> k & 1u) && FLD(k) != 0)
            return lfail(err, errlen, l, k, "is %" PRIu32 ", must be 0 for %s (the field is unused)", FLD(k),
                         op_names[op]);

    /* inputs */
    const int nin = op == LBR_OP_ADD ? 2 : 1;
    for (int i = 0; i < nin; i++) {
        const int fld = i ? LBR_L_IN1 : LBR_L_IN0;
        const uint32_t ref = FLD(fld);
        if (ref > l)
            return lfail(err, errlen, l, fld,
                         "is %" PRIu32 ", must name an earlier layer (1 .. %" PRIu32 ") or be 0 (the model input)", ref,
                         l);
        L->src[i] = (int32_t)ref - 1;
        kind_of(f, ref, &L->in_bits[i], &L->in_vals[i]);
    }
    /* token models: the input is token ids, which only the GATHER of layer 0 reads */
    const int tokens = lbr_layer_field(f, 0, LBR_L_OP) == LBR_OP_GATHER;
    if (op == LBR_OP_GATHER) {
        if (l != 0) return lfail(err, errlen, l, LBR_L_OP, "GATHER (the embedding of token ids) must be layer 0");
        if (FLD(LBR_L_IN0)) return lfail(err, errlen, l, LBR_L_IN0, "is %" PRIu32 ", GATHER reads the model input (0)", FLD(LBR_L_IN0));
        if (f->in_h != 1 || f->in_w != 1)
            return lfail(err, errlen, l, LBR_L_OP, "a token model's input is 1 x 1 x vocabulary, the header has %" PRIu32
                         " x %" PRIu32 " x %" PRIu32, f->in_c, f->in_h, f->in_w);
    } else if (tokens && (FLD(LBR_L_IN0) == 0 || (op == LBR_OP_ADD && FLD(LBR_L_IN1) == 0))) {
        return lfail(err, errlen, l, FLD(LBR_L_IN0) == 0 ? LBR_L_IN0 : LBR_L_IN1,
                     "is 0, but the input of a token model (layer 0 is GATHER) is token ids, which only GATHER reads");
    }
    shape_of(f, FLD(LBR_L_IN0), &L->c, &L->h, &L->w);
    L->oc = FLD(LBR_L_OUT_C), L->oh = FLD(LBR_L_OUT_H), L->ow = FLD(LBR_L_OUT_W);
    if (!L->oc) return lfail(err, errlen, l, LBR_L_OUT_C, "is 0, must be >= 1");
    if (!L->oh) return lfail(err, errlen, l, LBR_L_OUT_H, "is 0, must be >= 1");
    if (!L->ow) return lfail(err, errlen, l, LBR_L_OUT_W, "is 0, must be >= 1");
    if (L->oc * L->oh > LBR_MAXDIM || L->oc * L->oh * L->ow > LBR_MAXDIM)
        return lfail(err, errlen, l, LBR_L_OUT_C,
                     "output %" PRIu64 " x %" PRIu64 " x %" PRIu64 " exceeds 2^28 elements", L->oc, L->oh, L->ow);

    /* shapes */
    switch (op) {
    case LBR_OP_CONV:
        L->g = FLD(LBR_L_GROUP);
        if (!L->g) return lfail(err, errlen, l, LBR_L_GROUP, "is 0, must be >= 1");
        if (L->c % L->g)
            return lfail(err, errlen, l, LBR_L_GROUP, "input channels %" PRIu64 " are not divisible by %" PRIu64, L->c,
                         L->g);
        if (L->oc % L->g)
            return lfail(err, errlen, l, LBR_L_GROUP, "OUT_C %" PRIu64 " is not divisible by %" PRIu64, L->oc, L->g);
        if ((rc = check_window(f, l, L, 0, err, errlen)) != LBR_OK) return rc;
        break;
    case LBR_OP_GATHER:
    case LBR_OP_LSTM:
    case LBR_OP_GRU:
        if (L->oh != 1) return lfail(err, errlen, l, LBR_L_OUT_H, "is %" PRIu64 ", must be 1 for %s", L->oh, op_names[op]);
        if (L->ow != 1) return lfail(err, errlen, l, LBR_L_OUT_W, "is %" PRIu64 ", must be 1 for %s", L->ow, op_names[op]);
        if (op == LBR_OP_GATHER) break;
        /* the input vector of a step: C * H * W values; the weights as a GEMM's */
        L->c = L->c * L->h * L->w, L->h = L->w = 1;
        L->kh = L->kw = L->sh = L->sw = 1, L->ph = L->pw = 0, L->g = 1;
        L->gates = op == LBR_OP_LSTM ? 4 : 3;
        break;
    case LBR_OP_GEMM:
        /* KH = KW = 1 (0 accepted as "unused"), no group */
        if (FLD(LBR_L_KH) > 1)
            return lfail(err, errlen, l, LBR_L_KH, "is %" PRIu32 ", must be 1 (or 0) for GEMM", FLD(LBR_L_KH));
        if (FLD(LBR_L_KW) > 1)
            return lfail(err, errlen, l, LBR_L_KW, "is %" PRIu32 ", must be 1 (or 0) for GEMM", FLD(LBR_L_KW));
        if (FLD(LBR_L_GROUP) > 1)
            return lfail(err, errlen, l, LBR_L_GROUP, "is %" PRIu32 ", must be 1 (or 0) for GEMM", FLD(LBR_L_GROUP));
        if (L->oh != 1) return lfail(err, errlen, l, LBR_L_OUT_H, "is %" PRIu64 ", must be 1 for GEMM", L->oh);
        if (L->ow != 1) return lfail(err, errlen, l, LBR_L_OUT_W, "is %" PRIu64 ", must be 1 for GEMM", L->ow);
        L->c = L->c * L->h * L->w, L->h = L->w = 1; /* <= 2^28: checked for every tensor */
        L->kh = L->kw = L->sh = L->sw = 1, L->ph = L->pw = 0, L->g = 1;
        break;
    case LBR_OP_MAXPOOL:
    case LBR_OP_AVGPOOL:
        if (L->oc != L->c)
            return lfail(err, errlen, l, LBR_L_OUT_C, "is %" PRIu64 ", the input's %" PRIu64 " expected", L->oc, L->c);
        if ((rc = check_window(f, l, L, 1, err, errlen)) != LBR_OK) return rc;
        if (op == LBR_OP_AVGPOOL) {
            L->count_pad = FLD(LBR_L_COUNT_PAD);
            if (L->count_pad > 1)
                return lfail(err, errlen, l, LBR_L_COUNT_PAD, "is %" PRIu64 ", must be 0 or 1", L->count_pad);
        }
        break;
    case LBR_OP_GAP:
        if (L->oc != L->c)
            return lfail(err, errlen, l, LBR_L_OUT_C, "is %" PRIu64 ", the input's %" PRIu64 " expected", L->oc, L->c);
        if (L->oh != 1) return lfail(err, errlen, l, LBR_L_OUT_H, "is %" PRIu64 ", must be 1 for GAP", L->oh);
        if (L->ow != 1) return lfail(err, errlen, l, LBR_L_OUT_W, "is %" PRIu64 ", must be 1 for GAP", L->ow);
        break;
    case LBR_OP_ADD: {
        uint64_t c1, h1, w1;
        shape_of(f, FLD(LBR_L_IN1), &c1, &h1, &w1);
        if (c1 != L->c || h1 != L->h || w1 != L->w)
            return lfail(err, errlen, l, LBR_L_IN1,
                         "input shapes differ: %" PRIu64 " x %" PRIu64 " x %" PRIu64 " and %" PRIu64 " x %" PRIu64
                         " x %" PRIu64,
                         L->c, L->h, L->w, c1, h1, w1);
        if (L->oc != L->c || L->oh != L->h || L->ow != L->w)
            return lfail(err, errlen, l, LBR_L_OUT_C,
                         "output %" PRIu64 " x %" PRIu64 " x %" PRIu64 " differs from the inputs' %" PRIu64
                         " x %" PRIu64 " x %" PRIu64,
                         L->oc, L->oh, L->ow, L->c, L->h, L->w);
        break;
    }
    }
    const int rnn = op == LBR_OP_LSTM || op == LBR_OP_GRU;
    const int weighted = op == LBR_OP_CONV || op == LBR_OP_GEMM || rnn;
    const int post = weighted || op == LBR_OP_ADD || op == LBR_OP_GATHER;

    /* weights */
    if (weighted) {
        L->cg = L->c / L->g, L->og = L->oc / L->g;
        const uint64_t kk = L->kh * L->kw;
        if (kk > LBR_MAXDIM || L->cg * kk > LBR_MAXDIM)
            return lfail(err, errlen, l, LBR_L_KH,
                         "Kc = (C / GROUP) x KH x KW = %" PRIu64 " x %" PRIu64 " exceeds 2^28", L->cg, kk);
        L->kc = L->cg * kk;
        const int wf[5] = {LBR_L_W_FLOAT, LBR_L_W_CODES, LBR_L_W_GROUP, LBR_L_W_LEVELS, LBR_L_W_SCALE};
        const uint64_t O = L->gates ? L->gates * L->oc : L->oc;
        if ((rc = get_weights(f, l, L, wf, 1, O, L->kc, kk, &L->wf, &L->wc, &L->lev, &L->scale, &L->wgroup, &L->ngroups,
                              &L->codebook, err, errlen)) != LBR_OK)
            return rc;
        if (L->gates) {
            const int w2[5] = {LBR_L_W2_FLOAT, LBR_L_W2_CODES, LBR_L_W2_GROUP, LBR_L_W2_LEVELS, LBR_L_W2_SCALE};
            if ((rc = get_weights(f, l, L, w2, 0, O, L->oc, 1, &L->wf2, &L->wc2, &L->lev2, &L->scale2, &L->wgroup2,
                                  &L->ngroups2, &L->codebook2, err, errlen)) != LBR_OK)
                return rc;
        }
    }
    if (op == LBR_OP_GATHER) { /* the float table, or each token's output codes (checked below) */
        const int codes = FLD(LBR_L_W_CODES) != 0;
        if (codes && FLD(LBR_L_W_FLOAT))
            return lfail(err, errlen, l, LBR_L_W_FLOAT, "is %" PRIu32 ", but GATHER has W_CODES: one table, not both",
                         FLD(LBR_L_W_FLOAT));
        if (!codes && FLD(LBR_L_W_BITS))
            return lfail(err, errlen, l, LBR_L_W_BITS, "is %" PRIu32 ", must be 0 for a float GATHER table",
                         FLD(LBR_L_W_BITS));
        L->w_bits = FLD(LBR_L_W_BITS);
        if (codes && (L->w_bits < 1 || L->w_bits > 8))
            return lfail(err, errlen, l, LBR_L_W_BITS, "is %" PRIu32 ", must be 1 .. 8", L->w_bits);
        if (codes && L->w_bits != FLD(LBR_L_OUT_BITS))
            return lfail(err, errlen, l, LBR_L_W_BITS,
                         "is %" PRIu32 ", but a GATHER table of codes holds output codes: OUT_BITS is %" PRIu32,
                         L->w_bits, FLD(LBR_L_OUT_BITS));
        rc = codes ? get_arr(f, l, LBR_L_W_CODES, LBR_DT_U64, ceil_div(L->c * L->oc * L->w_bits, 64), 1, &L->wc, err,
                             errlen)
                   : get_arr(f, l, LBR_L_W_FLOAT, LBR_DT_F32, L->c * L->oc, 1, &L->wf, err, errlen);
        if (rc != LBR_OK) return rc;
    }

    /* post, activation, encode, output values */
    if (post) {
        if ((rc = get_arr(f, l, LBR_L_POST_MUL, LBR_DT_F32, L->oc, 0, &L->pmul, err, errlen)) != LBR_OK) return rc;
        if ((rc = get_arr(f, l, LBR_L_POST_ADD, LBR_DT_F32, rnn ? 2 * L->gates * L->oc : L->oc, 0, &L->padd, err,
                          errlen)) != LBR_OK)
            return rc;
        if (rnn && L->padd.data && (rc = check_values(&L->padd, L->padd.count, 0, l, LBR_L_POST_ADD, err, errlen)) != LBR_OK)
            return rc;
        L->act = FLD(LBR_L_ACT);
        if (rnn && L->act != LBR_ACT_NONE && L->act != LBR_ACT_SIGMOID)
            return lfail(err, errlen, l, LBR_L_ACT, "is %" PRIu32 ", must be 0 (tanh cell) or 2 (sigmoid: Bit-RNN cell)",
                         L->act);
        if (!rnn && L->act > LBR_ACT_RELU)
            return lfail(err, errlen, l, LBR_L_ACT, "is %" PRIu32 ", must be 0 (none) or 1 (relu)", L->act);
        const uint32_t bits = FLD(LBR_L_OUT_BITS);
        L->enc = FLD(LBR_L_ENC);
        if (bits > 8) return lfail(err, errlen, l, LBR_L_OUT_BITS, "is %" PRIu32 ", must be 0 (float) .. 8", bits);
        if (L->enc > LBR_ENC_STEPS) return lfail(err, errlen, l, LBR_L_ENC, "is %" PRIu32 ", must be 0 .. 3", L->enc);
        if (bits && L->enc == LBR_ENC_NONE)
            return lfail(err, errlen, l, LBR_L_ENC, "is 0 (none), but OUT_BITS is %" PRIu32, bits);
        if (!bits && L->enc != LBR_ENC_NONE)
            return lfail(err, errlen, l, LBR_L_ENC, "is %" PRIu32 ", but OUT_BITS is 0 (float output)", L->enc);
        const uint64_t K = (uint64_t)1 << bits;
        switch (L->enc) {
        case LBR_ENC_NONE:
        case LBR_ENC_POT:
            if (FLD(LBR_L_ENC_PARAMS))
                return lfail(err, errlen, l, LBR_L_ENC_PARAMS,
                             "is %" PRIu32 ", must be 0 (no parameters) for ENC %" PRIu32, FLD(LBR_L_ENC_PARAMS),
                             L->enc);
            break;
        case LBR_ENC_UNIFORM:
            if ((rc = get_arr(f, l, LBR_L_ENC_PARAMS, LBR_DT_F32, 1, 1, &L->encp, err, errlen)) != LBR_OK) return rc;
            if (!(rdf(&L->encp, 0) > 0) || !isfinite(rdf(&L->encp, 0)))
                return lfail(err, errlen, l, LBR_L_ENC_PARAMS, "range %g must be finite and > 0",
                             (double)rdf(&L->encp, 0));
            break;
        case LBR_ENC_STEPS:
            if ((rc = get_arr(f, l, LBR_L_ENC_PARAMS, LBR_DT_F32, K, 1, &L->encp, err, errlen)) != LBR_OK) return rc;
            if ((rc = check_values(&L->encp, 1, 1, l, LBR_L_ENC_PARAMS, err, errlen)) != LBR_OK) return rc;
            break;
        }
        if (bits) {
            if ((rc = get_arr(f, l, LBR_L_OUT_VALUES, LBR_DT_F32, K, 1, &L->outv, err, errlen)) != LBR_OK) return rc;
            if ((rc = check_values(&L->outv, 0, 0, l, LBR_L_OUT_VALUES, err, errlen)) != LBR_OK) return rc;
        } else if (FLD(LBR_L_OUT_VALUES)) {
            return lfail(err, errlen, l, LBR_L_OUT_VALUES, "is %" PRIu32 ", must be 0 with a float output (OUT_BITS 0)",
                         FLD(LBR_L_OUT_VALUES));
        }
        L->out_bits = bits;
    } else if (op == LBR_OP_MAXPOOL) {
        L->out_bits = L->in_bits[0];
    }
#undef FLD

    /* the path (an LSTM/GRU's is that of its input product, rnn_product) */
    L->path = LBR_PATH_NONE;
    if (weighted) choose_path(L, opt);
    return LBR_OK;
}

/* ------------------------------------------------------------------ layout */

typedef struct planner {
    uint8_t *base; /* NULL: only count */
    uint64_t off;
    int over; /* a size passed LBR_LIMIT */
} planner;

static void *take(planner *p, uint64_t bytes) {
    const uint64_t at = (p->off + 63) & ~(uint64_t)63;
    if (p->over || bytes > LBR_LIMIT - at) {
        p->over = 1;
        return NULL;
    }
    p->off = at + bytes;
    return p->base ? p->base + at : NULL;
}

/* code k (bits wide) of the bit row starting at `row` (LSB first, crossing words) */
static uint32_t code_at(const uint8_t *row, uint64_t k, uint32_t bits) {
    const uint64_t bit = k * bits, word = bit >> 6;
    const unsigned s = (unsigned)(bit & 63);
    uint64_t v = rd64(row + 8 * word) >> s;
    if (s + bits > 64) v |= rd64(row + 8 * (word + 1)) << (64 - s);
    return (uint32_t)(v & ((1u << bits) - 1));
}

/* byte rows (stride ld) of b-bit codes into bit planes (lbr_kernels.h) */
static void pack_planes(const uint8_t *a, size_t ld, int nr, int K, int bits, uint64_t *pl) {
    const int KW = lbr_words(K);
    for (int m = 0; m < nr; m++) {
        const uint8_t *row = a + (size_t)m * ld; /* ld >= 64 * KW bytes, zero past K */
        for (int wi = 0; wi < KW; wi++) {
            uint64_t w[8] = {0};
            /* 8 codes a step: bit p of each byte gathered into 8 bits by one multiply
             * (the partial products land on distinct bits, so nothing carries) */
            for (int b = 0; b < 8; b++) {
                const uint8_t *q = row + (size_t)wi * 64 + (size_t)b * 8;
                uint64_t x = 0; /* little-endian on any host; one load where the host is */
                for (int i = 0; i < 8; i++) x |= (uint64_t)q[i] << (8 * i);
                for (int p = 0; p < bits; p++)
                    w[p] |= ((((x >> p) & 0x0101010101010101ull) * 0x0102040810204080ull) >> 56) << (8 * b);
            }
            for (int p = 0; p < bits; p++) pl[((size_t)m * bits + p) * KW + wi] = w[p];
        }
    }
}

#if LBR_X86
/* The same planes, 64 codes a step: bit p of every byte is one mask instruction. */
LBR_TARGET_AVX512 static void pack_planes_avx512(const uint8_t *a, size_t ld, int nr, int K, int bits, uint64_t *pl) {
    const int KW = lbr_words(K);
    for (int m = 0; m < nr; m++)
        for (int wi = 0; wi < KW; wi++) {
            const __m512i v = _mm512_loadu_si512((const void *)(a + (size_t)m * ld + (size_t)wi * 64));
            for (int p = 0; p < bits; p++)
                pl[((size_t)m * bits + p) * KW + wi] = (uint64_t)_mm512_test_epi8_mask(v, _mm512_set1_epi8((char)(1 << p)));
        }
}
LBR_TARGET_AVX2 static void pack_planes_avx2(const uint8_t *a, size_t ld, int nr, int K, int bits, uint64_t *pl) {
    const int KW = lbr_words(K);
    for (int m = 0; m < nr; m++)
        for (int wi = 0; wi < KW; wi++) {
            const uint8_t *q = a + (size_t)m * ld + (size_t)wi * 64;
            const __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)q);
            const __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(q + 32));
            for (int p = 0; p < bits; p++) { /* bit p to the sign bit, then movemask */
                const __m128i sh = _mm_cvtsi32_si128(7 - p);
                const uint32_t l = (uint32_t)_mm256_movemask_epi8(_mm256_sll_epi16(lo, sh));
                const uint32_t h = (uint32_t)_mm256_movemask_epi8(_mm256_sll_epi16(hi, sh));
                pl[((size_t)m * bits + p) * KW + wi] = (uint64_t)l | (uint64_t)h << 32;
            }
        }
}
#endif

static void float_gemm_base(int nr, int og, int kc, const float *x, const float *w, float *y, size_t ldy);
#if LBR_X86
static void float_gemm_avx2(int nr, int og, int kc, const float *x, const float *w, float *y, size_t ldy);
#endif

/* The lanes kernel of a family (variants: lbr_bitserial_lanes_variants or
 * lbr_xnor_lanes_variants) the options call for, into *v: the best this CPU runs, its
 * AVX2 one under avx2_only; none (0) under ref_kernels, which runs the family's reference
 * on bit rows, or without AVX2. The weights' layout follows from it, so build() asks
 * when planning as well as when loading. */
static int lanes_kernel(const lbr_options *opt, int (*variants)(const lbr_cpu *, lbr_kvariant *), lbr_kvariant *v) {
    if (opt && opt->ref_kernels) return 0;
    lbr_cpu cpu;
    lbr_cpu_detect(&cpu);
    lbr_kvariant all[4];
    const int n = variants(&cpu, all);
    int pick = n - 1;
    if (opt && opt->avx2_only)
        for (int i = 0; i < n; i++)
            if (!strcmp(all[i].name, "avx2-lanes")) pick = i;
    if (pick < 0) return 0;
    *v = all[pick];
    return 1;
}

static void choose_kernels(lbr_model *m, const lbr_options *opt) {
    lbr_cpu cpu;
    lbr_cpu_detect(&cpu);
    void (*fn[LBR_K_COUNT])(void) = {0};
    for (int fam = 0; fam < LBR_K_COUNT; fam++) {
        lbr_kvariant v[4];
        const int n = lbr_kernel_variants((lbr_kfamily)fam, &cpu, v);
        int pick = n - 1;
        if (opt && opt->ref_kernels)
            for (int i = 0; i < n; i++)
                if (!strcmp(v[i].name, "ref")) pick = i;
        if (opt && opt->avx2_only && !opt->ref_kernels)
            for (int i = 0; i < n; i++)
                if (!strcmp(v[i].name, "avx2")) pick = i;
        if (pick >= 0) fn[fam] = v[pick].fn, m->vname[fam] = v[pick].name;
    }
    /* the references, should a list ever come back empty */
    m->bitserial = fn[LBR_K_BITSERIAL] ? (lbr_bitserial_fn)fn[LBR_K_BITSERIAL] : lbr_bitserial_ref;
    m->s8u8 = fn[LBR_K_S8U8] ? (lbr_s8u8_fn)fn[LBR_K_S8U8] : lbr_s8u8_ref;
    m->shift = fn[LBR_K_SHIFT] ? (lbr_shift_fn)fn[LBR_K_SHIFT] : lbr_shift_ref;
    m->bucket = fn[LBR_K_BUCKET] ? (lbr_bucket_fn)fn[LBR_K_BUCKET] : lbr_bucket_ref;
    m->xnor = fn[LBR_K_XNOR] ? (lbr_xnor_fn)fn[LBR_K_XNOR] : lbr_xnor_ref;
    for (int fam = 0; fam < LBR_K_COUNT; fam++)
        if (!m->vname[fam]) m->vname[fam] = "ref";
    lbr_kvariant lv;
    if (lanes_kernel(opt, lbr_bitserial_lanes_variants, &lv)) {
        m->bitserial_lanes = (lbr_bitserial_lanes_fn)lv.fn;
        m->vname[LBR_K_BITSERIAL] = lv.name;
    }
    if (lanes_kernel(opt, lbr_xnor_lanes_variants, &lv)) {
        m->xnor_lanes = (lbr_xnor_lanes_fn)lv.fn;
        m->vname[LBR_K_XNOR] = lv.name;
    }
    m->pack = pack_planes;
    m->fgemm = float_gemm_base;
#if LBR_X86
    if (!(opt && opt->ref_kernels) && cpu.avx2) m->fgemm = float_gemm_avx2;
    if (!(opt && opt->ref_kernels)) {
        if (cpu.avx512bw && !(opt && opt->avx2_only)) m->pack = pack_planes_avx512;
        else if (cpu.avx2) m->pack = pack_planes_avx2;
    }
#endif
}

/* The weights of a CONV/GEMM layer in its path's layout, and mul/add. */
static void fill_weights(lbr_layer_rt *R, const lay *L) {
    const uint64_t O = L->oc, kc = L->kc, og = L->og, J = (uint64_t)1 << L->w_bits;
    const size_t KB = (size_t)lbr_bytes((int)kc), KW = (size_t)lbr_words((int)kc); /* kc <= 2^28 */
    /* BITSERIAL/XNOR: kk sums of ks weights each (per-pixel scales: one per kernel pixel),
     * weight k in sum k / ks at column k % ks */
    const uint64_t kk = L->pix ? L->pix : 1, ks = L->pix ? L->cg : kc;
    const size_t KWs = (size_t)lbr_words((int)ks);
    int32_t lv[256] = {0};
    if (L->lev.data)
        for (uint64_t j = 0; j < J; j++) lv[j] = rdi(&L->lev, j);
    const uint64_t nb = ceil_div(og, LBR_BLK);
    if (R->path == LBR_PATH_FLOAT) memset(R->wf, 0, (size_t)(L->g * nb * LBR_BLK * kc) * sizeof(float));
    if (R->path == LBR_PATH_S8U8 || R->path == LBR_PATH_SHIFT) memset(R->wb, 0, (size_t)O * KB);
    /* BITSERIAL: the lanes layout, one part per group (padding outputs zero), or P and Q,
     * two separately aligned blocks; XNOR: its lanes layout or the rows of +1 bits */
    const size_t lw = R->path == LBR_PATH_BITSERIAL ? lbr_bitserial_lanes_words((int)og, (int)ks)
                      : R->path == LBR_PATH_XNOR    ? lbr_xnor_lanes_words((int)og, (int)ks)
                                                    : 0;
    if (R->wl) memset(R->wl, 0, (size_t)(L->g * kk) * lw * sizeof(uint64_t));
    if (R->path == LBR_PATH_XNOR && !R->wl) memset(R->wp, 0, (size_t)(O * kk) * KWs * sizeof(uint64_t));
    if (R->path == LBR_PATH_BITSERIAL && !R->wl) {
        memset(R->wp, 0, (size_t)(O * kk) * KWs * sizeof(uint64_t));
        memset(R->wq, 0, (size_t)(O * kk) * KWs * sizeof(uint64_t));
    }
    if (R->path == LBR_PATH_BUCKET) memset(R->wp, 0, (size_t)O * L->w_bits * KW * sizeof(uint64_t));
    if (R->path == LBR_PATH_XNOR) memset(R->wsum, 0, (size_t)(O * kk) * sizeof(int32_t));
    for (uint64_t o = 0; o < O; o++) {
        const uint8_t *codes = L->wc.data; /* one bit stream: code (o, k) is code o Kc + k */
        const uint64_t gi = o / og, oo = o % og;
        for (uint64_t k = 0; k < kc; k++) {
            const uint32_t code = codes ? code_at(codes, o * kc + k, L->w_bits) : 0;
            const uint64_t p = k / ks, c = k % ks; /* BITSERIAL/XNOR: which sum, which column */
            switch (R->path) {
            case LBR_PATH_FLOAT: {
                float v;
                if (!codes) {
                    v = rdf(&L->wf, o * kc + k);
                } else {
                    const uint64_t grp = L->wgroup == LBR_WG_TENSOR ? 0 : L->wgroup == LBR_WG_ROW ? o : k / L->cg;
                    v = L->codebook ? rdf(&L->scale, grp * J + code) : rdf(&L->scale, grp) * (float)lv[code];
                }
                R->wf[(size_t)(((gi * nb + oo / LBR_BLK) * kc + k) * LBR_BLK + oo % LBR_BLK)] = v;
                break;
            }
            case LBR_PATH_S8U8: R->wb[o * KB + k] = (int8_t)lv[code]; break;
            case LBR_PATH_SHIFT: {
                const int32_t v = lv[code], a = v < 0 ? -v : v;
                int s = 0;
                if (a) {
                    s = 1;
                    while ((1 << (s - 1)) < a) s++;
                }
                R->wb[o * KB + k] = (int8_t)(v < 0 ? -s : s);
                break;
            }
            case LBR_PATH_BITSERIAL: {
                if (lv[code] != 1 && lv[code] != -1) break;
                const uint64_t bit = (uint64_t)1 << (c & 63);
                if (R->wl)
                    R->wl[(gi * kk + p) * lw + lbr_bitserial_lanes_index((int)ks, (int)oo, (int)(c >> 6), lv[code] == -1)] |=
                        bit;
                else
                    (lv[code] == 1 ? R->wp : R->wq)[(p * O + o) * KWs + (c >> 6)] |= bit;
                break;
            }
            case LBR_PATH_XNOR: {
                R->wsum[p * O + o] += lv[code];
                if (lv[code] != 1) break;
                const uint64_t bit = (uint64_t)1 << (c & 63);
                if (R->wl)
                    R->wl[(gi * kk + p) * lw + lbr_xnor_lanes_index((int)ks, (int)oo, (int)(c >> 6))] |= bit;
                else
                    R->wp[(p * O + o) * KWs + (c >> 6)] |= bit;
                break;
            }
            case LBR_PATH_BUCKET:
                for (uint32_t b = 0; b < L->w_bits; b++)
                    if (code >> b & 1u) R->wp[(o * L->w_bits + b) * KW + (k >> 6)] |= (uint64_t)1 << (k & 63);
                break;
            default: break;
            }
        }
    }
    for (uint64_t o = 0; o < O; o++) {
        const float pm = L->pmul.data ? rdf(&L->pmul, o) : 1.0f, pa = L->padd.data ? rdf(&L->padd, o) : 0.0f;
        float mul = pm;
        if (R->path == LBR_PATH_BUCKET || L->pix)
            mul = L->step_in * pm; /* the codebook, or the pixels' scales, apply to the sums */
        else if (R->path != LBR_PATH_FLOAT)
            mul = rdf(&L->scale, L->wgroup == LBR_WG_ROW ? o : 0) * L->step_in * pm;
        R->mul[o] = mul;
        R->add[o] = pa;
    }
    if (R->path == LBR_PATH_BUCKET)
        for (uint64_t i = 0; i < L->scale.count; i++) R->cb[i] = rdf(&L->scale, i);
    for (uint64_t p = 0; p < L->pix; p++) R->pscale[p] = rdf(&L->scale, p);
}

static void acc_thresholds(lbr_layer_rt *R, const lay *L);

typedef struct scratch_need { uint64_t col, planes, acc, bacc; } scratch_need;

/* The fields of R that follow from L (shapes, bits, path), for every layer but LSTM/GRU */
static void set_common(lbr_layer_rt *R, const lay *L, const float *in_vals) {
    R->op = (int)L->op, R->path = L->path, R->act = (int)L->act, R->enc = (int)L->enc;
    R->src0 = L->src[0], R->src1 = L->src[1];
    R->c = (int)L->c, R->h = (int)L->h, R->w = (int)L->w, R->oc = (int)L->oc, R->oh = (int)L->oh, R->ow = (int)L->ow;
    R->kh = (int)L->kh, R->kw = (int)L->kw, R->sh = (int)L->sh, R->sw = (int)L->sw, R->ph = (int)L->ph,
    R->pw = (int)L->pw;
    R->g = (int)L->g, R->count_pad = (int)L->count_pad;
    R->cg = (int)L->cg, R->og = (int)L->og, R->kc = (int)L->kc;
    R->in_bits = (int)L->in_bits[0], R->in1_bits = (int)L->in_bits[1], R->out_bits = (int)L->out_bits;
    R->w_bits = (int)L->w_bits;
    R->cb_stride = L->ngroups > 1 ? (1 << L->w_bits) : 0;
    R->in_vals = in_vals;
    R->out_per = (size_t)(L->oc * L->oh * L->ow);
}

enum { LANES_BITSERIAL = 1, LANES_XNOR = 2 }; /* the families that run on their lanes layout */

/* A weighted layer (CONV, GEMM, an LSTM/GRU product): its weights in the path's layout,
 * mul, add and (integer paths with code outputs) the threshold tables, taken from P; the
 * scratch it needs into sn. With R (loading): the fields and the weights filled in; the
 * thresholds are acc_thresholds' once ENC_PARAMS is in place. lanes_mask: LANES_* bits. */
static void place_weighted(planner *P, const lay *L, lbr_layer_rt *R, const lbr_model *m, int lanes_mask, uint64_t B,
                           const float *in_vals, scratch_need *sn) {
    const uint64_t O = L->oc, kc = L->kc, ohw = L->oh * L->ow;
    const uint64_t rows = B * ohw < LBR_ROWS ? B * ohw : LBR_ROWS;
    const uint64_t kw64 = ceil_div(kc, 64), kb = kw64 * 64, J = (uint64_t)1 << L->w_bits;
    /* BITSERIAL/XNOR: kk sums of ks columns (fill_weights) */
    const uint64_t kk = L->pix ? L->pix : 1, ks = L->pix ? L->cg : kc, ksw = ceil_div(ks, 64);
    const int identity = L->path == LBR_PATH_FLOAT && L->in_bits[0] == 0 && L->kh == 1 && L->kw == 1 && L->sh == 1 &&
                         L->sw == 1 && L->ph == 0 && L->pw == 0 && L->g == 1;
    void *wts = NULL, *wts2 = NULL, *cb = NULL, *thr = NULL, *tsg = NULL, *wsum = NULL, *pscale = NULL;
    const int lanes = (L->path == LBR_PATH_BITSERIAL && (lanes_mask & LANES_BITSERIAL)) ||
                      (L->path == LBR_PATH_XNOR && (lanes_mask & LANES_XNOR));
    switch (L->path) {
    case LBR_PATH_FLOAT: wts = take(P, L->g * ceil_div(L->og, LBR_BLK) * LBR_BLK * kc * sizeof(float)); break;
    case LBR_PATH_S8U8:
    case LBR_PATH_SHIFT: wts = take(P, O * kb); break;
    case LBR_PATH_BITSERIAL: /* kc <= LBR_KMAX on this path, og <= 2^28: the sizes fit */
        if (lanes) {
            wts = take(P, L->g * kk * lbr_bitserial_lanes_words((int)L->og, (int)ks) * 8);
        } else {
            wts = take(P, O * kk * ksw * 8);
            wts2 = take(P, O * kk * ksw * 8);
        }
        break;
    case LBR_PATH_XNOR: /* the same bounds */
        wts = take(P, lanes ? L->g * kk * lbr_xnor_lanes_words((int)L->og, (int)ks) * 8 : O * kk * ksw * 8);
        wsum = take(P, O * kk * sizeof(int32_t));
        break;
    case LBR_PATH_BUCKET:
        wts = take(P, O * L->w_bits * kw64 * 8);
        cb = take(P, L->scale.count * sizeof(float));
        break;
    default: break;
    }
    if (L->pix) pscale = take(P, kk * sizeof(float));
    void *mul = take(P, O * sizeof(float)), *add = take(P, O * sizeof(float));
    if (L->out_bits && L->path != LBR_PATH_FLOAT && L->path != LBR_PATH_BUCKET && !L->pix) {
        thr = take(P, O * (((uint64_t)1 << L->out_bits) - 1) * sizeof(int32_t));
        tsg = take(P, O * sizeof(int32_t));
    }
    /* scratch of this layer */
    uint64_t col = 0, acc = rows * O * 4;
    if (L->path == LBR_PATH_FLOAT) {
        col = identity ? 0 : rows * kc * sizeof(float);
    } else {
        col = rows * (L->pix ? ksw * 64 : kb); /* per-pixel sums: one pixel's columns at a time */
        if (L->path == LBR_PATH_BITSERIAL || L->path == LBR_PATH_BUCKET || L->path == LBR_PATH_XNOR) {
            const uint64_t pl = rows * L->in_bits[0] * ksw * 8;
            if (pl > sn->planes) sn->planes = pl;
        }
        if (L->path == LBR_PATH_BUCKET && rows * L->og * J * 4 > sn->bacc) sn->bacc = rows * L->og * J * 4;
        if (L->pix && rows * L->og * 4 > sn->bacc) sn->bacc = rows * L->og * 4; /* one pixel's sums */
    }
    if (col > sn->col) sn->col = col;
    if (acc > sn->acc) sn->acc = acc;
    if (!R || P->over) return;
    set_common(R, L, in_vals);
    R->identity = identity;
    R->rows = (int)rows;
    R->wf = L->path == LBR_PATH_FLOAT ? wts : NULL;
    R->wb = L->path == LBR_PATH_S8U8 || L->path == LBR_PATH_SHIFT ? wts : NULL;
    R->wl = lanes ? wts : NULL;
    R->wp = ((L->path == LBR_PATH_BITSERIAL || L->path == LBR_PATH_XNOR) && !lanes) || L->path == LBR_PATH_BUCKET
                ? wts
                : NULL;
    R->wq = wts2;
    R->wsum = wsum;
    R->pix = (int)L->pix;
    R->pscale = pscale;
    R->cb = cb;
    R->mul = mul, R->add = add;
    R->thr = thr, R->tsg = tsg;
    fill_weights(R, L);
    R->macs = mul_sat(mul_sat(ohw, O), kc);
    switch (L->path) {
    case LBR_PATH_S8U8: R->variant = m->vname[LBR_K_S8U8]; break;
    case LBR_PATH_SHIFT: R->variant = m->vname[LBR_K_SHIFT]; break;
    case LBR_PATH_BITSERIAL: R->variant = m->vname[LBR_K_BITSERIAL]; break;
    case LBR_PATH_BUCKET: R->variant = m->vname[LBR_K_BUCKET]; break;
    case LBR_PATH_XNOR: R->variant = m->vname[LBR_K_XNOR]; break;
    default: R->variant = "scalar"; break;
    }
}

/* Validate every layer and lay the model out: sizes only (base NULL, *need set), or the
 * model itself in base (*out set). */
static int build(const lbr_file *f, int max_batch, const lbr_options *opt, uint8_t *base, uint64_t *need,
                 lbr_model **out, char *err, size_t errlen) {
    int rc;
    const uint32_t n = f->n_layers;
    if (n == 0) return lbr_fail(err, errlen, LBR_ERR_FORMAT, "model: the file has no layers");
    planner P = {base, 0, 0};
    lbr_model *m = take(&P, sizeof(lbr_model));
    lbr_layer_rt *rt = take(&P, (uint64_t)n * sizeof(lbr_layer_rt));
    if (m) {
        memset(m, 0, sizeof *m);
        memset(rt, 0, (size_t)n * sizeof *rt);
        m->n_layers = (int)n;
        m->n_outputs = (int)f->n_outputs;
        m->max_batch = max_batch;
        m->in_c = (int)f->in_c, m->in_h = (int)f->in_h, m->in_w = (int)f->in_w;
        m->layers = rt;
        choose_kernels(m, opt);
    }
    const uint64_t B = (uint64_t)max_batch;
    scratch_need sn = {0, 0, 0, 0};
    lbr_kvariant lanes_v;
    const int lanes = (lanes_kernel(opt, lbr_bitserial_lanes_variants, &lanes_v) ? LANES_BITSERIAL : 0) |
                      (lanes_kernel(opt, lbr_xnor_lanes_variants, &lanes_v) ? LANES_XNOR : 0);
    lay L;
    for (uint32_t l = 0; l < n; l++) {
        if ((rc = analyze(f, l, opt, &L, err, errlen)) != LBR_OK) return rc;
        lbr_layer_rt *R = rt ? rt + l : NULL;
        const uint64_t O = L.oc, ohw = L.oh * L.ow;
        const int rnn = L.op == LBR_OP_LSTM || L.op == LBR_OP_GRU;
        const float *in_vals = R && L.src[0] >= 0 ? rt[L.src[0]].out_vals : NULL;
        if (R) memset(R, 0, sizeof *R);
        if (L.op == LBR_OP_CONV || L.op == LBR_OP_GEMM) {
            place_weighted(&P, &L, R, m, lanes, B, in_vals, &sn);
        } else if (rnn) {
            /* the two products, each a GEMM of G*H float sums into its own buffer, and the
             * LSTM's cell state; the layer's output buffer holds h, the recurrent state */
            lbr_layer_rt *sub = take(&P, 2 * sizeof(lbr_layer_rt));
            lay S;
            for (int k = 0; k < 2; k++) {
                rnn_product(&L, k, opt, &S);
                if (sub) memset(sub + k, 0, sizeof *sub);
                place_weighted(&P, &S, sub ? sub + k : NULL, m, lanes, B, k ? NULL : in_vals, &sn);
                void *gs = take(&P, B * S.oc * sizeof(float));
                if (sub) sub[k].out = gs;
            }
            void *cs = L.op == LBR_OP_LSTM ? take(&P, B * O * sizeof(float)) : NULL;
            if (R) {
                R->sub = sub;
                R->cst = cs;
                R->gates = (int)L.gates;
            }
        } else if (L.op == LBR_OP_GATHER) {
            void *tab = take(&P, L.c * O * (L.wc.data ? 1 : sizeof(float)));
            if (R && L.wc.data) {
                R->tcodes = tab;
                for (uint64_t i = 0; i < L.c * O; i++) R->tcodes[i] = (uint8_t)code_at(L.wc.data, i, L.w_bits);
            } else if (R) {
                R->wf = tab;
                for (uint64_t i = 0; i < L.c * O; i++) R->wf[i] = rdf(&L.wf, i);
            }
        } else if (L.op == LBR_OP_ADD) {
            void *mul = take(&P, O * sizeof(float)), *add = take(&P, O * sizeof(float));
            if (R) {
                R->mul = mul, R->add = add;
                for (uint64_t o = 0; o < O; o++) {
                    R->mul[o] = L.pmul.data ? rdf(&L.pmul, o) : 1.0f;
                    R->add[o] = L.padd.data ? rdf(&L.padd, o) : 0.0f;
                }
            }
        }
        void *encp = L.encp.data ? take(&P, L.encp.count * sizeof(float)) : NULL;
        void *outv = L.outv.data ? take(&P, L.outv.count * sizeof(float)) : NULL;
        if (P.over) return lfail(err, errlen, l, -1, "the model's buffers exceed 2^62 bytes");
        if (!R) continue;

        if (L.op != LBR_OP_CONV && L.op != LBR_OP_GEMM) set_common(R, &L, in_vals); /* place_weighted did theirs */
        if (rnn) R->path = R->sub[1].path; /* reported: the recurrent product's, the serial part */
        R->in1_vals = L.op == LBR_OP_ADD && L.src[1] >= 0 ? rt[L.src[1]].out_vals : NULL;
        R->out_vals = L.op == LBR_OP_MAXPOOL ? R->in_vals : outv;
        R->encp = encp;
        for (uint64_t i = 0; i < L.encp.count; i++) R->encp[i] = rdf(&L.encp, i);
        for (uint64_t i = 0; outv && i < L.outv.count; i++) ((float *)outv)[i] = rdf(&L.outv, i);
        if (L.op == LBR_OP_CONV || L.op == LBR_OP_GEMM) {
            if (R->thr) acc_thresholds(R, &L);
        } else if (rnn) {
            /* biases: ONNX's B = Wb then Rb. The input product adds Wb and, for the gates
             * where the cell adds them together, Rb; a GRU's candidate keeps Rbh on the
             * recurrent product, inside r * (Rh h + Rbh) */
            const uint64_t GH = L.gates * O;
            lbr_layer_rt *sub = R->sub;
            sub[1].in_vals = R->out_vals;
            for (uint64_t o = 0; o < GH; o++) {
                const float wb = L.padd.data ? rdf(&L.padd, o) : 0.0f, rb = L.padd.data ? rdf(&L.padd, GH + o) : 0.0f;
                const int apart = L.op == LBR_OP_GRU && o >= 2 * O;
                sub[0].add[o] = apart ? wb : wb + rb;
                sub[1].add[o] = apart ? rb : 0.0f;
            }
            R->macs = mul_sat(GH, L.c + O);
            R->variant = sub[1].variant;
        } else {
            /* no multiplies: the elements a window or sum reads */
            R->macs = L.op == LBR_OP_GAP      ? L.c * L.h * L.w
                      : L.op == LBR_OP_ADD    ? O * ohw
                      : L.op == LBR_OP_GATHER ? 0
                                              : mul_sat(O * ohw, mul_sat(L.kh, L.kw));
            R->variant = "scalar";
        }
    }

    /* the last layer gives the logits */
    const uint32_t last = n - 1;
    if (L.out_bits)
        return lfail(err, errlen, last, L.op == LBR_OP_MAXPOOL ? LBR_L_IN0 : LBR_L_OUT_BITS,
                     "the last layer outputs %" PRIu32 "-bit codes, the logits must be float", L.out_bits);
    if (L.oc * L.oh * L.ow != f->n_outputs)
        return lfail(err, errlen, last, LBR_L_OUT_C,
                     "the last layer gives %" PRIu64 " x %" PRIu64 " x %" PRIu64
                     " outputs, the header's n_outputs is %" PRIu32,
                     L.oc, L.oh, L.ow, f->n_outputs);

    /* the input, each layer's output, the scratch */
    const int tokens = lbr_layer_field(f, 0, LBR_L_OP) == LBR_OP_GATHER;
    float *input = take(&P, tokens ? B * sizeof(int32_t) : B * f->in_c * f->in_h * f->in_w * sizeof(float));
    for (uint32_t l = 0; l < n; l++) {
        if (!rt) {
            if ((rc = analyze(f, l, opt, &L, err, errlen)) != LBR_OK) return rc;
            take(&P, B * L.oc * L.oh * L.ow * (L.out_bits ? 1 : sizeof(float)));
        } else {
            rt[l].out = take(&P, B * rt[l].out_per * (rt[l].out_bits ? 1 : sizeof(float)));
        }
        if (P.over)
            return lfail(err, errlen, l, -1, "the model's buffers exceed 2^62 bytes at max_batch %d", max_batch);
    }
    uint8_t *col = take(&P, sn.col);
    uint64_t *planes = take(&P, sn.planes);
    void *acc = take(&P, sn.acc);
    int32_t *bacc = take(&P, sn.bacc);
    if (P.over) return lbr_fail(err, errlen, LBR_ERR_FORMAT, "arena: the model's buffers exceed 2^62 bytes");
    if (P.off > SIZE_MAX)
        return lbr_fail(err, errlen, LBR_ERR_FORMAT,
                    "arena: the model needs %" PRIu64 " bytes, more than this host addresses", P.off);
    *need = P.off;
    if (m) {
        m->input = input;
        m->col = col, m->planes = planes, m->acc = acc, m->bacc = bacc;
        for (uint32_t l = 0; l < n; l++) {
            rt[l].in0 = rt[l].src0 >= 0 ? rt[rt[l].src0].out : (const void *)input;
            if (rt[l].op == LBR_OP_ADD) rt[l].in1 = rt[l].src1 >= 0 ? rt[rt[l].src1].out : (const void *)input;
            if (rt[l].sub) {
                rt[l].sub[0].in0 = rt[l].in0;
                rt[l].sub[1].in0 = rt[l].out; /* h of the previous step */
            }
        }
        m->tokens = tokens;
        m->state_batch = 0;
        *out = m;
    }
    return LBR_OK;
}

/* ------------------------------------------------------------------ API: plan, load */

int lbr_plan(const void *buf, size_t len, int max_batch, const lbr_options *opt, size_t *bytes, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (bytes) *bytes = 0;
    if (!buf || !bytes) return lbr_fail(err, errlen, LBR_ERR_ARG, "lbr_plan: buf or bytes is NULL");
    if (max_batch < 1) return lbr_fail(err, errlen, LBR_ERR_ARG, "lbr_plan: max_batch %d, must be >= 1", max_batch);
    lbr_file f;
    int rc = lbr_file_open(&f, buf, len, err, errlen);
    if (rc != LBR_OK) return rc;
    uint64_t need = 0;
    if ((rc = build(&f, max_batch, opt, NULL, &need, NULL, err, errlen)) != LBR_OK) return rc;
    *bytes = (size_t)need;
    return LBR_OK;
}

int lbr_load(lbr_model **out, const void *buf, size_t len, int max_batch, void *arena, size_t arena_len,
             const lbr_options *opt, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (out) *out = NULL;
    if (!out || !buf || !arena) return lbr_fail(err, errlen, LBR_ERR_ARG, "lbr_load: out, buf or arena is NULL");
    if (max_batch < 1) return lbr_fail(err, errlen, LBR_ERR_ARG, "lbr_load: max_batch %d, must be >= 1", max_batch);
    if ((uintptr_t)arena % 64) return lbr_fail(err, errlen, LBR_ERR_ARG, "lbr_load: the arena is not 64-byte aligned");
    lbr_file f;
    int rc = lbr_file_open(&f, buf, len, err, errlen);
    if (rc != LBR_OK) return rc;
    uint64_t need = 0;
    if ((rc = build(&f, max_batch, opt, NULL, &need, NULL, err, errlen)) != LBR_OK) return rc;
    if (need > arena_len)
        return lbr_fail(err, errlen, LBR_ERR_ARG, "arena: %zu bytes given, the model needs %" PRIu64 " (lbr_plan)",
                    arena_len, need);
    lbr_model *m = NULL;
    if ((rc = build(&f, max_batch, opt, arena, &need, &m, err, errlen)) != LBR_OK) return rc;
    *out = m;
    return LBR_OK;
}

/* ------------------------------------------------------------------ running */

static inline uint8_t encode(const lbr_layer_rt *R, float y) {
    const int bits = R->out_bits, kmax = (1 << bits) - 1;
    int32_t c = 0;
    switch (R->enc) {
    case LBR_ENC_UNIFORM: c = y == y ? lbr_act_code(y, 1 << bits, R->encp[0]) : 0; break; /* NaN: code 0 */
    case LBR_ENC_POT: c = y == y ? lbr_act_pot_code(y, bits) : 0; break;
    case LBR_ENC_STEPS: c = lbr_step_code(R->encp[0] * y, R->encp + 1, kmax); break;
    default: break;
    }
    c = c < 0 ? 0 : c;
    return (uint8_t)(c > kmax ? kmax : c);
}

/* activation, then the output's kind, at element i of the layer's output */
static inline void emit(const lbr_layer_rt *R, size_t i, float y) {
    if (R->act == LBR_ACT_RELU) y = y > 0.0f ? y : 0.0f;
    if (R->out_bits)
        ((uint8_t *)R->out)[i] = encode(R, y);
    else
        ((float *)R->out)[i] = y;
}

/* The code of output channel o for the integer sum acc: emit's own float arithmetic. */
static inline uint8_t code_of_acc(const lbr_layer_rt *R, size_t o, int64_t acc) {
    float y = (float)acc * R->mul[o] + R->add[o];
    if (R->act == LBR_ACT_RELU) y = y > 0.0f ? y : 0.0f;
    return encode(R, y);
}

/* Integer thresholds (the deploy issue's "activation quantizers turned into integer
 * thresholds"): with finite mul and add and an increasing encoder, the code is a monotone
 * step function of acc (float rounding is monotone), rising when mul > 0 and falling when
 * mul < 0. So thr[j][o] = the smallest a = tsg[o] * acc with code > j, found by bisection
 * on code_of_acc itself over |acc| <= B (the most a sum can reach), gives
 * code = #{j : a >= thr[j][o]}: the same code as the float arithmetic for every acc,
 * by construction, and counting it vectorises across channels. */
static void acc_thresholds(lbr_layer_rt *R, const lay *L) {
    const size_t O = (size_t)R->oc;
    const int kmax = (1 << R->out_bits) - 1;
    R->use_thr = R->enc != LBR_ENC_STEPS || (R->encp[0] > 0.0f && R->encp[0] <= 3.4e38f);
    for (size_t o = 0; o < O && R->use_thr; o++)
        R->use_thr = R->mul[o] - R->mul[o] == 0.0f && R->add[o] - R->add[o] == 0.0f; /* finite */
    if (!R->use_thr) return;
    int64_t maxlev = 0;
    for (uint64_t j = 0; j < ((uint64_t)1 << L->w_bits); j++) {
        const int64_t v = rdi(&L->lev, j);
        maxlev = v < 0 ? (-v > maxlev ? -v : maxlev) : (v > maxlev ? v : maxlev);
    }
    /* |acc| <= B < 2^31 (lbr_kernels.h: K <= 65536, |level| <= 128, codes <= 255) */
    const int64_t B = (int64_t)R->kc * maxlev * ((1 << R->in_bits) - 1);
    for (size_t o = 0; o < O; o++) {
        const int64_t sg = R->mul[o] < 0.0f ? -1 : 1;
        R->tsg[o] = (int32_t)sg;
        for (int j = 0; j < kmax; j++) {
            int32_t t;
            if (code_of_acc(R, o, sg * -B) > j) t = (int32_t)-B;            /* always */
            else if (code_of_acc(R, o, sg * B) <= j) t = (int32_t)(B + 1);  /* never */
            else { /* code(lo) <= j < code(hi) */
                int64_t lo = -B, hi = B;
                while (hi - lo > 1) {
                    const int64_t mid = lo + (hi - lo) / 2;
                    if (code_of_acc(R, o, sg * mid) > j) hi = mid;
                    else lo = mid;
                }
                t = (int32_t)hi;
            }
            R->thr[(size_t)j * O + o] = t;
        }
    }
}

/* Codes of up to this many thresholds are counted across channels (vectorised, kmax
 * passes); above it each element searches its thresholds (log2 steps). Measured on
 * fmnist-cnn with 8-bit activations (255 thresholds), counting took 60 % of the time. */
enum { COUNT_MAX_STEPS = 15 };

/* One output row (O channels) from integer sums: codes by counting thresholds, or for
 * many steps by a binary search over them: thr[j][o] is non-decreasing in j (the smallest
 * sum with code > j), so the count of thresholds <= a is where the search ends. */
static void emit_row_thr(const lbr_layer_rt *R, const int32_t *restrict acc, uint8_t *restrict dst) {
    enum { CH = 64 };
    const size_t O = (size_t)R->oc;
    const int kmax = (1 << R->out_bits) - 1;
    if (kmax > COUNT_MAX_STEPS) {
        for (size_t o = 0; o < O; o++) {
            const int32_t a = acc[o] * R->tsg[o], *t = R->thr + o;
            /* the thresholds of a uniform quantizer are evenly spaced: guess by interpolation,
             * correct by one step each way, and search only where that does not settle */
            const int64_t t0 = t[0], span = (int64_t)t[(size_t)(kmax - 1) * O] - t0;
            float g = span > 0 ? (float)((int64_t)a - t0) * ((float)(kmax - 1) / (float)span) + 1.0f : 0.0f;
            g = g >= 0.0f ? g : 0.0f;
            int c = (int)(g <= (float)kmax ? g : (float)kmax);
            c -= c > 0 && a < t[(size_t)(c - 1) * O];
            c += c < kmax && a >= t[(size_t)c * O];
            if ((c > 0 && a < t[(size_t)(c - 1) * O]) || (c < kmax && a >= t[(size_t)c * O])) {
                c = 0; /* kmax + 1 is a power of two: steps of half of it down to 1, no branch */
                for (int step = (kmax + 1) >> 1; step > 0; step >>= 1) {
                    const int p = c + step;
                    c = a >= t[(size_t)(p - 1) * O] ? p : c;
                }
            }
            dst[o] = (uint8_t)c;
        }
        return;
    }
    for (size_t o0 = 0; o0 < O; o0 += CH) {
        const size_t n = O - o0 < CH ? O - o0 : CH;
        int32_t a[CH], c[CH];
        for (size_t i = 0; i < n; i++) {
            a[i] = acc[o0 + i] * R->tsg[o0 + i];
            c[i] = 0;
        }
        for (int j = 0; j < kmax; j++) {
            const int32_t *t = R->thr + (size_t)j * O + o0;
            for (size_t i = 0; i < n; i++) c[i] += a[i] >= t[i];
        }
        for (size_t i = 0; i < n; i++) dst[o0 + i] = (uint8_t)c[i];
    }
}

/* One output row from float sums: y = s mul + add, the activation, then codes or floats.
 * Up to COUNT_MAX_STEPS steps are counted rather than searched (the same code: the
 * thresholds are sorted), so the loop vectorises across channels; more are searched. */
static void emit_row_float(const lbr_layer_rt *R, const float *restrict s, size_t at) {
    enum { CH = 64 };
    const size_t O = (size_t)R->oc;
    for (size_t o0 = 0; o0 < O; o0 += CH) {
        const size_t n = O - o0 < CH ? O - o0 : CH;
        float y[CH];
        for (size_t i = 0; i < n; i++) {
            const float v = s[o0 + i] * R->mul[o0 + i] + R->add[o0 + i];
            y[i] = R->act == LBR_ACT_RELU ? (v > 0.0f ? v : 0.0f) : v;
        }
        if (!R->out_bits) {
            memcpy((float *)R->out + at + o0, y, n * sizeof(float));
        } else if (R->enc == LBR_ENC_STEPS && (1 << R->out_bits) - 1 <= COUNT_MAX_STEPS) {
            const int kmax = (1 << R->out_bits) - 1;
            const float beta = R->encp[0];
            int32_t c[CH];
            for (size_t i = 0; i < n; i++) {
                y[i] *= beta;
                c[i] = 0;
            }
            for (int j = 0; j < kmax; j++) {
                const float t = R->encp[1 + j];
                for (size_t i = 0; i < n; i++) c[i] += t <= y[i];
            }
            for (size_t i = 0; i < n; i++) ((uint8_t *)R->out)[at + o0 + i] = (uint8_t)c[i];
        } else if (R->enc == LBR_ENC_STEPS) { /* many steps: as emit_row_thr, guess, correct, else search */
            const int kmax = (1 << R->out_bits) - 1;
            const float beta = R->encp[0], *t = R->encp + 1, t0 = t[0], span = t[kmax - 1] - t0;
            const float dinv = span > 0.0f && span <= 3.4e38f ? (float)(kmax - 1) / span : 0.0f;
            for (size_t i = 0; i < n; i++) {
                const float v = beta * y[i];
                float g = (v - t0) * dinv + 1.0f;
                g = g >= 0.0f ? g : 0.0f; /* NaN: 0 */
                int c = (int)(g <= (float)kmax ? g : (float)kmax);
                c -= c > 0 && !(t[c - 1] <= v);
                c += c < kmax && t[c] <= v;
                if ((c > 0 && !(t[c - 1] <= v)) || (c < kmax && t[c] <= v)) c = lbr_step_code(v, t, kmax);
                ((uint8_t *)R->out)[at + o0 + i] = (uint8_t)c;
            }
        } else {
            for (size_t i = 0; i < n; i++) ((uint8_t *)R->out)[at + o0 + i] = encode(R, y[i]);
        }
    }
}

/* Rows r0 .. r0 + nr - 1 of group g's im2col (row r: sample r / (OH OW), output pixel
 * r % (OH OW); columns in (kh, kw, c) order; padding code 0), the kernel pixels q0 ..
 * q0 + nq - 1 only (all: 0, KH*KW): codes into byte rows of stride ld (zero padded from
 * nq C/G to ld), or values into float rows of stride Kc. */
static void im2col_u8(const lbr_layer_rt *R, int g, size_t r0, int nr, uint8_t *dst, size_t ld, int q0, int nq) {
    const uint8_t *in = R->in0;
    const size_t ohw = (size_t)R->oh * R->ow, cg = (size_t)R->cg, width = (size_t)nq * cg;
    for (int m = 0; m < nr; m++) {
        const size_t r = r0 + (size_t)m, n = r / ohw, p = r % ohw;
        const int64_t oy = (int64_t)(p / (size_t)R->ow), ox = (int64_t)(p % (size_t)R->ow);
        uint8_t *d = dst + (size_t)m * ld;
        for (int q = q0; q < q0 + nq; q++, d += cg) {
            const int64_t iy = oy * R->sh - R->ph + q / R->kw, ix = ox * R->sw - R->pw + q % R->kw;
            if (iy < 0 || iy >= R->h || ix < 0 || ix >= R->w)
                memset(d, 0, cg);
            else
                memcpy(d, in + ((n * (size_t)R->h + (size_t)iy) * (size_t)R->w + (size_t)ix) * (size_t)R->c + g * cg,
                       cg);
        }
        if (ld > width) memset(dst + (size_t)m * ld + width, 0, ld - width);
    }
}

static void im2col_f32(const lbr_layer_rt *R, int g, size_t r0, int nr, float *dst) {
    const size_t ohw = (size_t)R->oh * R->ow, cg = (size_t)R->cg;
    const float *vals = R->in_vals;
    for (int m = 0; m < nr; m++) {
        const size_t r = r0 + (size_t)m, n = r / ohw, p = r % ohw;
        const int64_t oy = (int64_t)(p / (size_t)R->ow), ox = (int64_t)(p % (size_t)R->ow);
        float *d = dst + (size_t)m * R->kc;
        for (int ky = 0; ky < R->kh; ky++) {
            const int64_t iy = oy * R->sh - R->ph + ky;
            for (int kx = 0; kx < R->kw; kx++, d += cg) {
                const int64_t ix = ox * R->sw - R->pw + kx;
                if (iy < 0 || iy >= R->h || ix < 0 || ix >= R->w) {
                    for (size_t i = 0; i < cg; i++) d[i] = 0.0f;
                    continue;
                }
                const size_t at = ((n * (size_t)R->h + (size_t)iy) * (size_t)R->w + (size_t)ix) * (size_t)R->c + g * cg;
                if (vals) {
                    const uint8_t *s = (const uint8_t *)R->in0 + at;
                    for (size_t i = 0; i < cg; i++) d[i] = vals[s[i]];
                } else {
                    memcpy(d, (const float *)R->in0 + at, cg * sizeof(float));
                }
            }
        }
    }
}


/* y[m][o] = sum_k w[o][k] x[m][k] for nr rows and og outputs, each sum in k order in a
 * float, LBR_BLK outputs at a time so that the compiler vectorises across outputs.
 * w: blocks of LBR_BLK outputs, [block][k][LBR_BLK]. */
#if defined(__GNUC__)
#define LBR_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define LBR_ALWAYS_INLINE static inline
#endif
LBR_ALWAYS_INLINE void float_gemm_body(int nr, int og, int kc, const float *restrict x, const float *restrict w,
                                       float *restrict y, size_t ldy) {
    const int nb = (og + LBR_BLK - 1) / LBR_BLK;
    int m = 0;
    for (; m + 4 <= nr; m += 4) {
        const float *x0 = x + (size_t)m * kc, *x1 = x0 + kc, *x2 = x1 + kc, *x3 = x2 + kc;
        for (int b = 0; b < nb; b++) {
            const float *wb = w + (size_t)b * kc * LBR_BLK;
            float a0[LBR_BLK] = {0}, a1[LBR_BLK] = {0}, a2[LBR_BLK] = {0}, a3[LBR_BLK] = {0};
            for (int k = 0; k < kc; k++) {
                const float *wk = wb + (size_t)k * LBR_BLK;
                const float v0 = x0[k], v1 = x1[k], v2 = x2[k], v3 = x3[k];
                for (int j = 0; j < LBR_BLK; j++) {
                    a0[j] += wk[j] * v0;
                    a1[j] += wk[j] * v1;
                    a2[j] += wk[j] * v2;
                    a3[j] += wk[j] * v3;
                }
            }
            const int nj = og - b * LBR_BLK < LBR_BLK ? og - b * LBR_BLK : LBR_BLK;
            float *y0 = y + (size_t)m * ldy + (size_t)b * LBR_BLK;
            for (int j = 0; j < nj; j++) {
                y0[j] = a0[j];
                y0[ldy + j] = a1[j];
                y0[2 * ldy + j] = a2[j];
                y0[3 * ldy + j] = a3[j];
            }
        }
    }
    for (; m < nr; m++) {
        const float *x0 = x + (size_t)m * kc;
        for (int b = 0; b < nb; b++) {
            const float *wb = w + (size_t)b * kc * LBR_BLK;
            float a0[LBR_BLK] = {0};
            for (int k = 0; k < kc; k++) {
                const float v0 = x0[k];
                for (int j = 0; j < LBR_BLK; j++) a0[j] += wb[(size_t)k * LBR_BLK + j] * v0;
            }
            const int nj = og - b * LBR_BLK < LBR_BLK ? og - b * LBR_BLK : LBR_BLK;
            for (int j = 0; j < nj; j++) y[(size_t)m * ldy + (size_t)b * LBR_BLK + j] = a0[j];
        }
    }
}

/* The body compiled for the baseline and for AVX2 (8 outputs a ymm register). Every sum
 * runs over k in order with separate multiplies and adds (no contraction:
 * -ffp-contract=off), so both give the same bits. */
static void float_gemm_base(int nr, int og, int kc, const float *x, const float *w, float *y, size_t ldy) {
    float_gemm_body(nr, og, kc, x, w, y, ldy);
}
#if LBR_X86
/* Written out: left to itself the compiler vectorises the body badly here. 8 rows at a
 * time, each a ymm accumulator of the block's 8 outputs: lane j += w[k][j] * x[k], a
 * multiply then an add, k in order, as the body does. */
LBR_TARGET_AVX2 static void float_gemm_avx2(int nr, int og, int kc, const float *x, const float *w, float *y, size_t ldy) {
    enum { R8 = 8 };
    const int nb = (og + LBR_BLK - 1) / LBR_BLK;
    int m = 0;
    for (; m + R8 <= nr; m += R8) {
        const float *xm = x + (size_t)m * kc;
        for (int b = 0; b < nb; b++) {
            const float *wb = w + (size_t)b * kc * LBR_BLK;
            __m256 a[R8];
            for (int i = 0; i < R8; i++) a[i] = _mm256_setzero_ps();
            for (int k = 0; k < kc; k++) {
                const __m256 wk = _mm256_loadu_ps(wb + (size_t)k * LBR_BLK);
                for (int i = 0; i < R8; i++)
                    a[i] = _mm256_add_ps(a[i], _mm256_mul_ps(wk, _mm256_broadcast_ss(xm + (size_t)i * kc + k)));
            }
            const int nj = og - b * LBR_BLK < LBR_BLK ? og - b * LBR_BLK : LBR_BLK;
            for (int i = 0; i < R8; i++) {
                float t[LBR_BLK];
                _mm256_storeu_ps(t, a[i]);
                memcpy(y + (size_t)(m + i) * ldy + (size_t)b * LBR_BLK, t, (size_t)nj * sizeof(float));
            }
        }
    }
    for (; m < nr; m++) { /* one row: 4 blocks at a time for independent adds */
        const float *xm = x + (size_t)m * kc;
        for (int b0 = 0; b0 < nb; b0 += 4) {
            const int bn = nb - b0 < 4 ? nb - b0 : 4;
            __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int k = 0; k < kc; k++) {
                const __m256 xk = _mm256_broadcast_ss(xm + k);
                for (int i = 0; i < bn; i++)
                    a[i] = _mm256_add_ps(a[i], _mm256_mul_ps(_mm256_loadu_ps(w + ((size_t)(b0 + i) * kc + (size_t)k) * LBR_BLK), xk));
            }
            for (int i = 0; i < bn; i++) {
                const int b = b0 + i, nj = og - b * LBR_BLK < LBR_BLK ? og - b * LBR_BLK : LBR_BLK;
                float t[LBR_BLK];
                _mm256_storeu_ps(t, a[i]);
                memcpy(y + (size_t)m * ldy + (size_t)b * LBR_BLK, t, (size_t)nj * sizeof(float));
            }
        }
    }
}
#endif

/* BITSERIAL/XNOR with a scale per kernel pixel, rows r0 .. r0 + nr - 1 of group g: one
 * integer sum per pixel (Kc = C/G, the kernels as for one sum), combined in float in pixel
 * order, y[m][o] = sum_p pscale[p] acc_p[m][o]. */
static void run_pixels(lbr_model *M, const lbr_layer_rt *R, int g, size_t r0, int nr, float *y) {
    const int cg = R->cg, og = R->og, kk = R->pix, xnor = R->path == LBR_PATH_XNOR;
    const size_t O = (size_t)R->oc, o0 = (size_t)g * og, KBs = (size_t)lbr_bytes(cg), KWs = (size_t)lbr_words(cg);
    const size_t lw = !R->wl ? 0 : xnor ? lbr_xnor_lanes_words(og, cg) : lbr_bitserial_lanes_words(og, cg);
    int32_t *a = M->bacc;
    for (int m = 0; m < nr; m++) memset(y + (size_t)m * O + o0, 0, (size_t)og * sizeof(float));
    for (int p = 0; p < kk; p++) {
        im2col_u8(R, g, r0, nr, M->col, KBs, p, 1);
        M->pack(M->col, KBs, nr, cg, R->in_bits, M->planes);
        const size_t part = (size_t)g * kk + (size_t)p, rows = (size_t)p * O + o0; /* weights of (g, p) */
        if (xnor && R->wl) M->xnor_lanes(nr, og, cg, M->planes, R->wl + part * lw, a, og);
        else if (xnor) M->xnor(nr, og, cg, M->planes, R->wp + rows * KWs, a, og);
        else if (R->wl) M->bitserial_lanes(nr, og, cg, R->in_bits, M->planes, R->wl + part * lw, a, og);
        else M->bitserial(nr, og, cg, R->in_bits, M->planes, R->wp + rows * KWs, R->wq + rows * KWs, a, og);
        const float s = R->pscale[p];
        for (int m = 0; m < nr; m++) {
            float *ym = y + (size_t)m * O + o0;
            const int32_t *am = a + (size_t)m * og;
            if (xnor)
                for (int n = 0; n < og; n++) ym[n] += s * (float)((am[n] + R->wsum[rows + (size_t)n]) / 2);
            else
                for (int n = 0; n < og; n++) ym[n] += s * (float)am[n];
        }
    }
}

static void run_conv(lbr_model *M, const lbr_layer_rt *R, int batch) {
    const size_t total = (size_t)batch * R->oh * R->ow, O = (size_t)R->oc;
    const int kc = R->kc, og = R->og, nb = (og + LBR_BLK - 1) / LBR_BLK;
    const size_t KB = (size_t)lbr_bytes(kc), KW = (size_t)lbr_words(kc);
    const size_t lw = !R->wl                            ? 0 /* a group's lanes weights */
                      : R->path == LBR_PATH_BITSERIAL ? lbr_bitserial_lanes_words(og, kc)
                                                      : lbr_xnor_lanes_words(og, kc);
    const int J = 1 << R->w_bits;
    int32_t *acc = M->acc;
    float *y = M->acc;
    for (size_t r0 = 0; r0 < total; r0 += (size_t)R->rows) {
        const int nr = total - r0 < (size_t)R->rows ? (int)(total - r0) : R->rows;
        for (int g = 0; g < R->g; g++) {
            const size_t o0 = (size_t)g * og;
            if (R->pix) {
                run_pixels(M, R, g, r0, nr, y);
                continue;
            }
            switch (R->path) {
            case LBR_PATH_FLOAT: {
                const float *x = (const float *)R->in0 + r0 * (size_t)kc;
                if (!R->identity) {
                    im2col_f32(R, g, r0, nr, (float *)M->col);
                    x = (const float *)M->col;
                }
                M->fgemm(nr, og, kc, x, R->wf + (size_t)g * nb * LBR_BLK * kc, y + o0, O);
                break;
            }
            case LBR_PATH_S8U8:
                im2col_u8(R, g, r0, nr, M->col, KB, 0, R->kh * R->kw);
                M->s8u8(nr, og, kc, M->col, R->wb + o0 * KB, acc + o0, (int)O);
                break;
            case LBR_PATH_SHIFT:
                im2col_u8(R, g, r0, nr, M->col, KB, 0, R->kh * R->kw);
                M->shift(nr, og, kc, M->col, R->wb + o0 * KB, acc + o0, (int)O);
                break;
            case LBR_PATH_BITSERIAL:
                im2col_u8(R, g, r0, nr, M->col, KB, 0, R->kh * R->kw);
                M->pack(M->col, KB, nr, kc, R->in_bits, M->planes);
                if (R->wl)
                    M->bitserial_lanes(nr, og, kc, R->in_bits, M->planes, R->wl + (size_t)g * lw, acc + o0, (int)O);
                else
                    M->bitserial(nr, og, kc, R->in_bits, M->planes, R->wp + o0 * KW, R->wq + o0 * KW, acc + o0,
                                 (int)O);
                break;
            case LBR_PATH_XNOR: {
                /* codes c in {0, 1} as s = 2c - 1 in {-1, +1}: xnor gives sum w s, and
                 * sum w c = (sum w s + sum w) / 2, exactly (the sum is even). Padding is
                 * code 0, value 0, so it needs no correction of its own. */
                im2col_u8(R, g, r0, nr, M->col, KB, 0, R->kh * R->kw);
                M->pack(M->col, KB, nr, kc, 1, M->planes);
                if (R->wl)
                    M->xnor_lanes(nr, og, kc, M->planes, R->wl + (size_t)g * lw, acc + o0, (int)O);
                else
                    M->xnor(nr, og, kc, M->planes, R->wp + o0 * KW, acc + o0, (int)O);
                for (int m = 0; m < nr; m++) {
                    int32_t *a = acc + (size_t)m * O + o0;
                    for (int n = 0; n < og; n++) a[n] = (a[n] + R->wsum[o0 + (size_t)n]) / 2;
                }
                break;
            }
            case LBR_PATH_BUCKET:
                im2col_u8(R, g, r0, nr, M->col, KB, 0, R->kh * R->kw);
                M->pack(M->col, KB, nr, kc, R->in_bits, M->planes);
                M->bucket(nr, og, kc, R->in_bits, R->w_bits, M->planes, R->wp + o0 * (size_t)R->w_bits * KW, M->bacc);
                for (int m = 0; m < nr; m++)
                    for (int n = 0; n < og; n++) {
                        const size_t o = o0 + (size_t)n;
                        const float *cb = R->cb + o * (size_t)R->cb_stride;
                        const int32_t *c = M->bacc + ((size_t)m * og + (size_t)n) * J;
                        float s = 0.0f;
                        for (int j = 0; j < J; j++) s += cb[j] * (float)c[j];
                        y[(size_t)m * O + o] = s;
                    }
                break;
            default: break;
            }
        }
        const int fl = R->path == LBR_PATH_FLOAT || R->path == LBR_PATH_BUCKET || R->pix;
        for (int m = 0; m < nr; m++) {
            const size_t at = (r0 + (size_t)m) * O;
            if (fl) {
                emit_row_float(R, y + (size_t)m * O, at);
            } else if (R->use_thr) {
                emit_row_thr(R, acc + (size_t)m * O, (uint8_t *)R->out + at);
            } else {
                float *ym = y + (size_t)m * O; /* in place: acc and y share the buffer */
                for (size_t o = 0; o < O; o++) ym[o] = (float)acc[(size_t)m * O + o];
                emit_row_float(R, ym, at);
            }
        }
    }
}

/* value of element i of a layer input: decoded codes or floats */
static inline float value_at(const void *buf, const float *vals, size_t i) {
    return vals ? vals[((const uint8_t *)buf)[i]] : ((const float *)buf)[i];
}

static void run_pool(const lbr_layer_rt *R, int batch) {
    const int C = R->c, codes = R->in_bits > 0;
    for (int n = 0; n < batch; n++)
        for (int oy = 0; oy < R->oh; oy++)
            for (int ox = 0; ox < R->ow; ox++) {
                /* the window clipped to the input (every window holds an input pixel: PH < KH) */
                const int64_t y0 = (int64_t)oy * R->sh - R->ph, x0 = (int64_t)ox * R->sw - R->pw;
                const int64_t ya = y0 < 0 ? 0 : y0, xa = x0 < 0 ? 0 : x0;
                const int64_t yb = y0 + R->kh < R->h ? y0 + R->kh : R->h, xb = x0 + R->kw < R->w ? x0 + R->kw : R->w;
                const size_t o = (((size_t)n * R->oh + (size_t)oy) * R->ow + (size_t)ox) * (size_t)C;
                if (R->op == LBR_OP_MAXPOOL && codes) {
                    /* channel-contiguous: the max runs across channels (vectorised) */
                    uint8_t *restrict dst = (uint8_t *)R->out + o;
                    const uint8_t *in = R->in0;
                    memcpy(dst, in + (((size_t)n * R->h + (size_t)ya) * R->w + (size_t)xa) * (size_t)C, (size_t)C);
                    for (int64_t iy = ya; iy < yb; iy++)
                        for (int64_t ix = xa; ix < xb; ix++) {
                            const uint8_t *restrict src = in + (((size_t)n * R->h + (size_t)iy) * R->w + (size_t)ix) * C;
                            for (int c = 0; c < C; c++) dst[c] = src[c] > dst[c] ? src[c] : dst[c];
                        }
                    continue;
                }
                for (int c = 0; c < C; c++) {
                    const size_t first = (((size_t)n * R->h + (size_t)ya) * R->w + (size_t)xa) * (size_t)C + (size_t)c;
                    if (R->op == LBR_OP_MAXPOOL) {
                        const float *in = R->in0;
                        float best = in[first];
                        for (int64_t iy = ya; iy < yb; iy++)
                            for (int64_t ix = xa; ix < xb; ix++) {
                                const float v = in[(((size_t)n * R->h + (size_t)iy) * R->w + (size_t)ix) * C + c];
                                best = v > best ? v : best;
                            }
                        ((float *)R->out)[o + (size_t)c] = best;
                    } else {
                        float s = 0.0f;
                        for (int64_t iy = ya; iy < yb; iy++)
                            for (int64_t ix = xa; ix < xb; ix++)
                                s += value_at(R->in0, R->in_vals,
                                              (((size_t)n * R->h + (size_t)iy) * R->w + (size_t)ix) * C + c);
                        const float div = R->count_pad ? (float)R->kh * (float)R->kw : (float)((yb - ya) * (xb - xa));
                        ((float *)R->out)[o + (size_t)c] = s / div;
                    }
                }
            }
}

static void run_gap(const lbr_layer_rt *R, int batch) {
    const size_t hw = (size_t)R->h * R->w, C = (size_t)R->c;
    for (int n = 0; n < batch; n++)
        for (size_t c = 0; c < C; c++) {
            float s = 0.0f;
            for (size_t p = 0; p < hw; p++) s += value_at(R->in0, R->in_vals, ((size_t)n * hw + p) * C + c);
            ((float *)R->out)[(size_t)n * C + c] = s / (float)hw;
        }
}

static void run_add(const lbr_layer_rt *R, int batch) {
    const size_t total = (size_t)batch * R->out_per, C = (size_t)R->oc;
    for (size_t i = 0; i < total; i++) {
        const size_t c = i % C;
        const float s = value_at(R->in0, R->in_vals, i) + value_at(R->in1, R->in1_vals, i);
        emit(R, i, s * R->mul[c] + R->add[c]);
    }
}

/* GATHER: the table row of each token: its codes, or its floats through the activation
 * and the output's kind */
static void run_gather(const lbr_model *M, const lbr_layer_rt *R, int batch) {
    const int32_t *tok = (const int32_t *)(const void *)M->input;
    const size_t E = (size_t)R->oc;
    for (size_t b = 0; b < (size_t)batch; b++) {
        if (R->tcodes)
            memcpy((uint8_t *)R->out + b * E, R->tcodes + (size_t)tok[b] * E, E);
        else
            for (size_t e = 0; e < E; e++) emit(R, b * E + e, R->wf[(size_t)tok[b] * E + e]);
    }
}

/* One step of an LSTM/GRU for `batch` streams: the two products (the recurrent one only
 * when there is a previous step: a fresh state is zero, as in training), then the cell,
 * with lbr_math.h's functions and src/ops/rnn.c's formulas. The output buffer is read as
 * h_{t-1} (by the recurrent product, and by the GRU's blend) before it is written as h_t. */
static void run_rnn(lbr_model *M, const lbr_layer_rt *R, int batch, int fresh) {
    const lbr_layer_rt *sx = R->sub, *sh = R->sub + 1;
    const size_t H = (size_t)R->oc, GH = (size_t)R->gates * H;
    const int bit = R->act == LBR_ACT_SIGMOID;
    run_conv(M, sx, batch);
    if (!fresh) run_conv(M, sh, batch);
    for (size_t b = 0; b < (size_t)batch; b++) {
        const float *gx = (const float *)sx->out + b * GH;
        const float *gh = fresh ? sh->add : (const float *)sh->out + b * GH;
        float *c = R->cst ? R->cst + b * H : NULL;
        for (size_t j = 0; j < H; j++) {
            float h;
            if (R->gates == 4) {
                const float i = lbr_sigmoidf(gx[j] + gh[j]), o = lbr_sigmoidf(gx[H + j] + gh[H + j]);
                const float f = lbr_sigmoidf(gx[2 * H + j] + gh[2 * H + j]), g = lbr_cell_act(gx[3 * H + j] + gh[3 * H + j], bit);
                const float cn = fresh ? i * g : f * c[j] + i * g;
                c[j] = cn;
                h = o * lbr_cell_act(cn, bit);
            } else {
                const float z = lbr_sigmoidf(gx[j] + gh[j]), r = lbr_sigmoidf(gx[H + j] + gh[H + j]);
                const float nn = lbr_cell_act(gx[2 * H + j] + r * gh[2 * H + j], bit);
                const float prev = fresh ? 0.0f : value_at(R->out, R->out_vals, b * H + j);
                h = nn + z * (prev - nn);
            }
            if (R->out_bits)
                ((uint8_t *)R->out)[b * H + j] = encode(R, h);
            else
                ((float *)R->out)[b * H + j] = h;
        }
    }
}

static void run_layers(lbr_model *m, int batch, int fresh) {
    for (int l = 0; l < m->n_layers; l++) {
        const lbr_layer_rt *R = m->layers + l;
        switch (R->op) {
        case LBR_OP_CONV:
        case LBR_OP_GEMM: run_conv(m, R, batch); break;
        case LBR_OP_MAXPOOL:
        case LBR_OP_AVGPOOL: run_pool(R, batch); break;
        case LBR_OP_GAP: run_gap(R, batch); break;
        case LBR_OP_ADD: run_add(R, batch); break;
        case LBR_OP_GATHER: run_gather(m, R, batch); break;
        case LBR_OP_LSTM:
        case LBR_OP_GRU: run_rnn(m, R, batch, fresh); break;
        default: break;
        }
    }
}

int lbr_run_tokens(lbr_model *m, const int32_t *tokens, int batch, float *out) {
    if (!m || !tokens || !out || !m->tokens || batch < 1 || batch > m->max_batch) return LBR_ERR_ARG;
    if (m->state_batch && batch != m->state_batch) return LBR_ERR_ARG;
    for (int b = 0; b < batch; b++)
        if (tokens[b] < 0 || tokens[b] >= m->in_c) return LBR_ERR_ARG;
    memcpy(m->input, tokens, sizeof(int32_t) * (size_t)batch);
    run_layers(m, batch, m->state_batch == 0);
    m->state_batch = batch;
    const lbr_layer_rt *last = m->layers + m->n_layers - 1;
    memcpy(out, last->out, (size_t)batch * last->out_per * sizeof(float));
    return LBR_OK;
}

void lbr_reset(lbr_model *m) {
    if (m) m->state_batch = 0;
}

int lbr_is_token_model(const lbr_model *m, int *vocab) {
    if (vocab) *vocab = m && m->tokens ? m->in_c : 0;
    return m && m->tokens;
}

int lbr_run(lbr_model *m, const float *x, int batch, float *out) {
    if (!m || !x || !out || m->tokens || batch < 1 || batch > m->max_batch) return LBR_ERR_ARG;
    /* NCHW -> NHWC */
    const size_t C = (size_t)m->in_c, HW = (size_t)m->in_h * m->in_w;
    for (size_t n = 0; n < (size_t)batch; n++)
        for (size_t c = 0; c < C; c++)
            for (size_t p = 0; p < HW; p++) m->input[(n * HW + p) * C + c] = x[(n * C + c) * HW + p];
    run_layers(m, batch, 1);
    const lbr_layer_rt *last = m->layers + m->n_layers - 1;
    memcpy(out, last->out, (size_t)batch * last->out_per * sizeof(float)); /* out_per == n_outputs */
    return LBR_OK;
}

/* ------------------------------------------------------------------ queries */

int lbr_num_layers(const lbr_model *m) { return m ? m->n_layers : 0; }
int lbr_num_outputs(const lbr_model *m) { return m ? m->n_outputs : 0; }

int lbr_layer(const lbr_model *m, int i, lbr_layer_info *info) {
    if (!m || !info || i < 0 || i >= m->n_layers) return LBR_ERR_ARG;
    const lbr_layer_rt *R = m->layers + i;
    memset(info, 0, sizeof *info);
    info->op = R->op;
    info->path = (lbr_path)R->path;
    info->variant = R->variant;
    info->w_bits = R->w_bits;
    info->in_bits = R->in_bits;
    info->out_bits = R->out_bits;
    info->macs = R->macs;
    return LBR_OK;
}
