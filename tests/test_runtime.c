/* The packed-model executor (runtime/lbr.c) against a plain reference written here: small
 * random networks are described in host form, written with the .lbm builder, loaded and
 * run, and compared with a direct double-precision NCHW forward of the same description
 * that uses lbr_quant.h's encoders.
 *
 * Exactness: most networks use dyadic numbers only (inputs k/8, weights k/4, scales,
 * POST_MUL and code steps powers of two, POST_ADD multiples of 1/8 of a step). Every sum
 * is then exact in float whatever its order, so the runtime's y equals the reference's y
 * bit for bit and every code must match exactly: each code layer is checked on its own by
 * a model that ends with it followed by an identity 1x1 convolution (float weights), which
 * outputs the codes' values. Logits are compared within 1e-4 of the largest |logit| (the
 * tolerance covers the networks with average pooling or random real weights, where float
 * and double sums differ).
 *
 * Also: every path is chosen for the layer built for it; ref_kernels and the best kernels
 * give bit-identical logits, and float_only the same ones where sums are exact; a batch
 * gives what its samples give one by one; corrupted layer fields (through the builder, so
 * CRCs are right) are refused by lbr_plan and lbr_load with "layer N: FIELD" in the
 * message; argument errors; lbr_run writes nothing past the planned arena.
 *
 * `test_runtime --write-corpus DIR` writes valid models (DIR/valid_model_*) as seeds for
 * tests/fuzz/fuzz_lbm.c, which then reach lbr_load and lbr_run. */
#include "export/lbm_write.h"
#include "kernels/lbr_kernels.h"
#include "lbr.h"
#include "lbr_quant.h"
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x5DEECE66Dull;
static int rnd(int n) { return (int)(lbt_splitmix64(&rng) % (uint64_t)n); }
static int rrange(int lo, int hi) { return lo + rnd(hi - lo + 1); }
static double runif(void) { return (double)(lbt_splitmix64(&rng) >> 11) * (1.0 / 9007199254740992.0); }

/* ------------------------------------------------------------------ network description */

enum { MAXL = 12 };
enum { WK_FLOAT, WK_LINEAR, WK_CODEBOOK };
enum { LV_TERN, LV_ODD, LV_POW2 };

typedef struct tl {
    int op, in0, in1;        /* file references: producing layer + 1, 0 = model input */
    int c, h, w, oc, oh, ow; /* input 0 and output shapes */
    int kh, kw, sh, sw, ph, pw, group, count_pad;
    int kc;      /* weights per output row (GEMM: C*H*W) */
    int gemm_k1; /* GEMM: write KH = KW = GROUP = 1 (else 0) */
    int wkind, w_bits, w_group;
    float *wf;       /* WK_FLOAT: O x kc */
    uint32_t *codes; /* O x kc */
    int32_t levels[256];
    float *scale;
    int nscale;
    float *pmul, *padd; /* NULL: absent */
    int act, out_bits, enc;
    float encp[256];
    int nencp;
    float outv[256];
    lbr_path path, path_shift; /* expected: default options, prefer_shift */
} tl;

typedef struct tnet {
    int in_c, in_h, in_w, n;
    tl L[MAXL];
} tnet;

static void net_free(tnet *t) {
    for (int i = 0; i < t->n; i++) {
        free(t->L[i].wf);
        free(t->L[i].codes);
        free(t->L[i].scale);
        free(t->L[i].pmul);
        free(t->L[i].padd);
    }
    memset(t, 0, sizeof *t);
}

static void t_shape(const tnet *t, int ref, int *c, int *h, int *w) {
    if (!ref)
        *c = t->in_c, *h = t->in_h, *w = t->in_w;
    else
        *c = t->L[ref - 1].oc, *h = t->L[ref - 1].oh, *w = t->L[ref - 1].ow;
}

/* code bits of tensor ref (0: float) and its values */
static int t_bits(const tnet *t, int ref, const float **vals) {
    while (ref && t->L[ref - 1].op == LBR_OP_MAXPOOL) ref = t->L[ref - 1].in0;
    *vals = NULL;
    if (!ref || t->L[ref - 1].op == LBR_OP_AVGPOOL || t->L[ref - 1].op == LBR_OP_GAP || !t->L[ref - 1].out_bits)
        return 0;
    *vals = t->L[ref - 1].outv;
    return t->L[ref - 1].out_bits;
}

static tl *add_layer(tnet *t, int op, int in0) {
    tl *L = &t->L[t->n++];
    memset(L, 0, sizeof *L);
    L->op = op;
    L->in0 = in0;
    t_shape(t, in0, &L->c, &L->h, &L->w);
    L->path = L->path_shift = LBR_PATH_NONE;
    return L;
}

static int out_size(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

static tl *add_conv(tnet *t, int in0, int oc, int k, int s, int p, int group) {
    tl *L = add_layer(t, LBR_OP_CONV, in0);
    if (k > L->h + 2 * p) k = L->h + 2 * p;
    if (k > L->w + 2 * p) k = L->w + 2 * p;
    L->kh = L->kw = k, L->sh = L->sw = s, L->ph = L->pw = p, L->group = group;
    L->oc = oc, L->oh = out_size(L->h, k, s, p), L->ow = out_size(L->w, k, s, p);
    L->kc = L->c / group * k * k;
    return L;
}

static tl *add_gemm(tnet *t, int in0, int oc) {
    tl *L = add_layer(t, LBR_OP_GEMM, in0);
    L->oc = oc, L->oh = L->ow = 1;
    L->kh = L->kw = L->sh = L->sw = L->group = 1;
    L->kc = L->c * L->h * L->w;
    L->gemm_k1 = rnd(2);
    return L;
}

static tl *add_pool(tnet *t, int op, int in0, int k, int s, int p) {
    tl *L = add_layer(t, op, in0);
    if (k > L->h + 2 * p) k = L->h + 2 * p;
    if (k > L->w + 2 * p) k = L->w + 2 * p;
    if (p >= k) p = k - 1;
    L->kh = L->kw = k, L->sh = L->sw = s, L->ph = L->pw = p;
    L->oc = L->c, L->oh = out_size(L->h, k, s, p), L->ow = out_size(L->w, k, s, p);
    if (op == LBR_OP_AVGPOOL) L->count_pad = rnd(2);
    return L;
}

/* weight value of (o, k): what the file says, in double */
static double wval(const tl *L, int o, int k) {
    if (L->wkind == WK_FLOAT) return L->wf[(size_t)o * L->kc + k];
    const uint32_t code = L->codes[(size_t)o * L->kc + k];
    const int cg = L->op == LBR_OP_GEMM ? L->kc : L->c / L->group;
    const int g = L->w_group == LBR_WG_TENSOR ? 0 : L->w_group == LBR_WG_ROW ? o : k / cg;
    if (L->wkind == WK_LINEAR) return (double)L->scale[g] * L->levels[code];
    return L->scale[(size_t)g * (1u << L->w_bits) + code];
}

/* Weights: float (exact: k/4; else uniform in [-1, 1]), linear codes with `lv` levels and
 * power-of-two scales, or a codebook of dyadic entries. */
static void set_weights(tl *L, int kind, int bits, int wgroup, int lv, int exact) {
    const size_t n = (size_t)L->oc * L->kc;
    const int J = 1 << bits;
    L->wkind = kind, L->w_bits = kind == WK_FLOAT ? 0 : bits, L->w_group = wgroup;
    if (kind == WK_FLOAT) {
        L->wf = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) L->wf[i] = exact ? (float)rrange(-4, 4) / 4.0f : (float)(2 * runif() - 1);
        return;
    }
    L->codes = malloc(n * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) L->codes[i] = (uint32_t)rnd(J);
    const int ng = wgroup == LBR_WG_TENSOR ? 1 : wgroup == LBR_WG_ROW ? L->oc : L->kh * L->kw;
    if (kind == WK_LINEAR) {
        static const int32_t pow2[16] = {0, 1, -1, 2, -2, 4, -4, 8, -8, 16, -16, 32, -32, 64, -64, 128};
        for (int j = 0; j < J; j++)
            L->levels[j] = lv == LV_TERN  ? (bits == 1 ? 2 * j - 1 : rrange(-1, 1))
                           : lv == LV_ODD ? 2 * j - (J - 1)
                                          : pow2[j];
        L->nscale = ng;
        L->scale = malloc((size_t)ng * sizeof(float));
        for (int g = 0; g < ng; g++) L->scale[g] = ldexpf(1.0f, -rnd(4));
    } else {
        L->nscale = ng * J;
        L->scale = malloc((size_t)L->nscale * sizeof(float));
        for (int i = 0; i < L->nscale; i++) L->scale[i] = (float)rrange(-8, 8) / 4.0f;
    }
}

enum { ENC_NONLIN = 8, ENC_SQUARE = 9 }; /* STEPS with non-linear values 0, s, 2s, 4s, ... or s j^2 */

/* POST_*, ACT and the encode: out bits `bits` (0: float) with ENC `enc` and code step
 * `step`. POST_MUL is a power of two chosen so that the sums span about the code range. */
static void set_post(const tnet *t, tl *L, int act, int bits, int enc, float step, int post) {
    const int K = 1 << bits;
    L->act = act, L->out_bits = bits, L->enc = enc == ENC_NONLIN || enc == ENC_SQUARE ? LBR_ENC_STEPS : enc;
    if (enc == LBR_ENC_POT) step = 1.0f / (float)K;
    for (int j = 0; j < K && bits; j++)
        L->outv[j] = enc == LBR_ENC_UNIFORM ? lbr_act_value(j, K, step * (float)(K - 1))
                     : enc == LBR_ENC_POT   ? lbr_act_pot_value(j, bits)
                     : enc == ENC_NONLIN    ? (j ? step * ldexpf(1.0f, j - 1) : 0.0f)
                     : enc == ENC_SQUARE    ? step * (float)(j * j)
                                            : step * (float)j;
    if (enc == LBR_ENC_UNIFORM) L->encp[0] = step * (float)(K - 1), L->nencp = 1;
    if (enc == LBR_ENC_STEPS || enc == ENC_NONLIN || enc == ENC_SQUARE) {
        L->encp[0] = 1.0f, L->nencp = K;
        for (int j = 1; j < K; j++) L->encp[j] = 0.5f * (L->outv[j - 1] + L->outv[j]); /* midpoints */
    }
    if (!post) return;
    /* typical |sum|: sqrt(kc) x weight rms x input magnitude */
    double w2 = 0, amag = 1.0;
    const float *vals;
    int ib = L->op == LBR_OP_ADD ? 0 : t_bits(t, L->in0, &vals);
    if (ib) amag = 0.5 * vals[(1 << ib) - 1];
    double est = 1.0;
    if (L->op != LBR_OP_ADD) {
        for (int o = 0; o < L->oc; o++)
            for (int k = 0; k < L->kc; k++) w2 += wval(L, o, k) * wval(L, o, k);
        est = sqrt(w2 / L->oc) * amag;
    }
    if (!(est > 0)) est = 1.0;
    const double target = bits ? step * (K - 1) : 2.0;
    const int e = (int)lround(log2(target / est));
    L->pmul = malloc((size_t)L->oc * sizeof(float));
    L->padd = malloc((size_t)L->oc * sizeof(float));
    for (int o = 0; o < L->oc; o++) {
        L->pmul[o] = ldexpf(1.0f, e - rnd(2));
        L->padd[o] = (float)rrange(-2, 2) * (float)(target / 8);
        if (bits) L->padd[o] = (float)rrange(-2, 2) * step / 8;
    }
}

/* ------------------------------------------------------------------ writing the file */

enum { SPARE_I32 = -1, SPARE_F32_3 = -2, SPARE_DECREASING = -3, SPARE_C = -4, SPARE_MISSING = -5 };
typedef struct patch {
    int layer, field;
    int64_t value; /* >= 0: the value; < 0: SPARE_* (an array added for the purpose) */
} patch;

static uint32_t add_f32(lbm_builder *b, const float *v, size_t n) {
    uint32_t idx = 0;
    CHECK_OK(lbm_add_array(b, LBR_DT_F32, v, n, &idx));
    return idx + 1;
}

/* layers 0 .. upto; tail: then an identity 1x1 convolution (float weights) of layer upto's
 * output, which gives its values as floats */
static uint8_t *serialize(const tnet *t, int upto, int tail, const patch *pt, int npt, size_t *len) {
    lbm_builder b;
    lbm_builder_init(&b);
    b.in_c = (uint32_t)t->in_c, b.in_h = (uint32_t)t->in_h, b.in_w = (uint32_t)t->in_w;
    const tl *last = &t->L[upto];
    b.n_outputs = (uint32_t)(last->oc * last->oh * last->ow);
    uint32_t rows[MAXL + 1][LBR_LAYER_FIELDS];
    memset(rows, 0, sizeof rows);
    for (int l = 0; l <= upto; l++) {
        const tl *L = &t->L[l];
        uint32_t *f = rows[l];
        f[LBR_L_OP] = (uint32_t)L->op, f[LBR_L_IN0] = (uint32_t)L->in0, f[LBR_L_IN1] = (uint32_t)L->in1;
        f[LBR_L_OUT_C] = (uint32_t)L->oc, f[LBR_L_OUT_H] = (uint32_t)L->oh, f[LBR_L_OUT_W] = (uint32_t)L->ow;
        if (L->op == LBR_OP_CONV || L->op == LBR_OP_MAXPOOL || L->op == LBR_OP_AVGPOOL) {
            f[LBR_L_KH] = (uint32_t)L->kh, f[LBR_L_KW] = (uint32_t)L->kw, f[LBR_L_SH] = (uint32_t)L->sh;
            f[LBR_L_SW] = (uint32_t)L->sw, f[LBR_L_PH] = (uint32_t)L->ph, f[LBR_L_PW] = (uint32_t)L->pw;
        }
        if (L->op == LBR_OP_CONV) f[LBR_L_GROUP] = (uint32_t)L->group;
        if (L->op == LBR_OP_GEMM && L->gemm_k1) f[LBR_L_KH] = f[LBR_L_KW] = f[LBR_L_GROUP] = 1;
        if (L->op == LBR_OP_AVGPOOL) f[LBR_L_COUNT_PAD] = (uint32_t)L->count_pad;
        if (L->op == LBR_OP_CONV || L->op == LBR_OP_GEMM) {
            const size_t n = (size_t)L->oc * L->kc;
            if (L->wkind == WK_FLOAT) {
                f[LBR_L_W_FLOAT] = add_f32(&b, L->wf, n);
            } else {
                /* one bit stream: code (o, k) at bit (o Kc + k) W_BITS */
                const size_t nw = (n * (size_t)L->w_bits + 63) / 64;
                uint64_t *words = calloc(nw, sizeof(uint64_t));
                for (size_t i = 0; i < n; i++) {
                    const uint64_t code = L->codes[i], bit = (uint64_t)i * L->w_bits;
                    words[bit / 64] |= code << (bit % 64);
                    if (bit % 64 + (uint64_t)L->w_bits > 64) words[bit / 64 + 1] |= code >> (64 - bit % 64);
                }
                uint32_t idx = 0;
                CHECK_OK(lbm_add_array(&b, LBR_DT_U64, words, (uint64_t)nw, &idx));
                free(words);
                f[LBR_L_W_CODES] = idx + 1;
                f[LBR_L_W_BITS] = (uint32_t)L->w_bits;
                f[LBR_L_W_GROUP] = (uint32_t)L->w_group;
                if (L->wkind == WK_LINEAR) {
                    CHECK_OK(lbm_add_array(&b, LBR_DT_I32, L->levels, (uint64_t)1 << L->w_bits, &idx));
                    f[LBR_L_W_LEVELS] = idx + 1;
                }
                f[LBR_L_W_SCALE] = add_f32(&b, L->scale, (size_t)L->nscale);
            }
        }
        if (L->pmul) f[LBR_L_POST_MUL] = add_f32(&b, L->pmul, (size_t)L->oc);
        if (L->padd) f[LBR_L_POST_ADD] = add_f32(&b, L->padd, (size_t)L->oc);
        f[LBR_L_ACT] = (uint32_t)L->act, f[LBR_L_OUT_BITS] = (uint32_t)L->out_bits, f[LBR_L_ENC] = (uint32_t)L->enc;
        if (L->nencp) f[LBR_L_ENC_PARAMS] = add_f32(&b, L->encp, (size_t)L->nencp);
        if (L->out_bits) f[LBR_L_OUT_VALUES] = add_f32(&b, L->outv, (size_t)1 << L->out_bits);
    }
    int n = upto + 1;
    if (tail) {
        const int C = last->oc;
        float *eye = calloc((size_t)C * C, sizeof(float));
        for (int i = 0; i < C; i++) eye[(size_t)i * C + i] = 1.0f;
        uint32_t *f = rows[n++];
        f[LBR_L_OP] = LBR_OP_CONV, f[LBR_L_IN0] = (uint32_t)upto + 1;
        f[LBR_L_OUT_C] = (uint32_t)C, f[LBR_L_OUT_H] = (uint32_t)last->oh, f[LBR_L_OUT_W] = (uint32_t)last->ow;
        f[LBR_L_KH] = f[LBR_L_KW] = f[LBR_L_SH] = f[LBR_L_SW] = f[LBR_L_GROUP] = 1;
        f[LBR_L_W_FLOAT] = add_f32(&b, eye, (size_t)C * C);
        free(eye);
    }
    /* spare arrays for the corruption tests */
    uint32_t spare[4];
    const int32_t si[4] = {1, 2, 3, 4};
    const float s3[3] = {1, 2, 3}, dec[4] = {0, 2, 1, 3}, c1 = 3.0f;
    CHECK_OK(lbm_add_array(&b, LBR_DT_I32, si, 4, &spare[0]));
    spare[1] = add_f32(&b, s3, 3) - 1;
    spare[2] = add_f32(&b, dec, 4) - 1;
    spare[3] = add_f32(&b, &c1, 1) - 1;
    for (int i = 0; i < npt; i++) {
        const int64_t v = pt[i].value;
        rows[pt[i].layer][pt[i].field] = v >= 0 ? (uint32_t)v : v == SPARE_MISSING ? b.n_arrays + 5 : spare[-v - 1] + 1;
    }
    for (int l = 0; l < n; l++) CHECK_OK(lbm_add_layer(&b, rows[l], NULL));
    uint8_t *buf = NULL;
    *len = 0;
    CHECK_OK(lbm_build(&b, &buf, len));
    lbm_builder_free(&b);
    return buf;
}

/* ------------------------------------------------------------------ the reference */

typedef struct rtensor {
    double *v; /* NCHW values */
    int *code; /* NCHW codes, or NULL */
} rtensor;

static int encode_ref(const tl *L, double yd) {
    const float y = (float)yd;
    const int K = 1 << L->out_bits;
    switch (L->enc) {
    case LBR_ENC_UNIFORM: return lbr_act_code(y, K, L->encp[0]);
    case LBR_ENC_POT: return lbr_act_pot_code(y, L->out_bits);
    default: return lbr_step_code(L->encp[0] * y, L->encp + 1, K - 1);
    }
}

/* y -> post, act, encode; stores value (and code) at i */
static void finish_ref(const tl *L, rtensor *out, size_t i, int o, double s) {
    double y = s * (L->pmul ? L->pmul[o] : 1.0) + (L->padd ? L->padd[o] : 0.0);
    if (L->act) y = y > 0 ? y : 0;
    if (L->out_bits) {
        const int c = encode_ref(L, y);
        out->code[i] = c;
        out->v[i] = L->outv[c];
    } else {
        out->v[i] = y;
    }
}

/* layers 0 .. upto on x (batch x NCHW floats) into T[0 .. upto] */
static void ref_forward(const tnet *t, int upto, const float *x, int batch, rtensor *T) {
    const size_t nin = (size_t)t->in_c * t->in_h * t->in_w;
    double *xin = malloc((size_t)batch * nin * sizeof(double));
    for (size_t i = 0; i < (size_t)batch * nin; i++) xin[i] = x[i];
    for (int l = 0; l <= upto; l++) {
        const tl *L = &t->L[l];
        const size_t per = (size_t)L->oc * L->oh * L->ow;
        rtensor *o = &T[l];
        o->v = malloc((size_t)batch * per * sizeof(double));
        const float *vals;
        const int codes_out = L->out_bits || (L->op == LBR_OP_MAXPOOL && t_bits(t, L->in0, &vals));
        o->code = codes_out ? malloc((size_t)batch * per * sizeof(int)) : NULL;
        const double *in = L->in0 ? T[L->in0 - 1].v : xin;
        const int *incode = L->in0 ? T[L->in0 - 1].code : NULL;
        const int C = L->c, H = L->h, W = L->w;
        for (int n = 0; n < batch; n++) {
            const double *xi = in + (size_t)n * C * H * W;
            switch (L->op) {
            case LBR_OP_CONV: {
                const int cg = C / L->group, og = L->oc / L->group;
                for (int oc = 0; oc < L->oc; oc++)
                    for (int oy = 0; oy < L->oh; oy++)
                        for (int ox = 0; ox < L->ow; ox++) {
                            double s = 0;
                            const int g = oc / og;
                            for (int ky = 0; ky < L->kh; ky++)
                                for (int kx = 0; kx < L->kw; kx++)
                                    for (int i = 0; i < cg; i++) {
                                        const int iy = oy * L->sh - L->ph + ky, ix = ox * L->sw - L->pw + kx;
                                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                        s += wval(L, oc, (ky * L->kw + kx) * cg + i) *
                                             xi[((size_t)(g * cg + i) * H + iy) * W + ix];
                                    }
                            finish_ref(L, o, (size_t)n * per + ((size_t)oc * L->oh + oy) * L->ow + ox, oc, s);
                        }
                break;
            }
            case LBR_OP_GEMM:
                /* the weight row is in the NHWC order of the input */
                for (int oc = 0; oc < L->oc; oc++) {
                    double s = 0;
                    for (int c = 0; c < C; c++)
                        for (int y = 0; y < H; y++)
                            for (int xx = 0; xx < W; xx++)
                                s += wval(L, oc, (y * W + xx) * C + c) * xi[((size_t)c * H + y) * W + xx];
                    finish_ref(L, o, (size_t)n * per + oc, oc, s);
                }
                break;
            case LBR_OP_MAXPOOL:
            case LBR_OP_AVGPOOL:
                for (int c = 0; c < C; c++)
                    for (int oy = 0; oy < L->oh; oy++)
                        for (int ox = 0; ox < L->ow; ox++) {
                            double best = -INFINITY, sum = 0;
                            int bestc = -1, cnt = 0;
                            for (int ky = 0; ky < L->kh; ky++)
                                for (int kx = 0; kx < L->kw; kx++) {
                                    const int iy = oy * L->sh - L->ph + ky, ix = ox * L->sw - L->pw + kx;
                                    if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                    const size_t at = (size_t)n * C * H * W + ((size_t)c * H + iy) * W + ix;
                                    if (in[at] > best) best = in[at];
                                    if (incode && incode[at] > bestc) bestc = incode[at];
                                    sum += in[at];
                                    cnt++;
                                }
                            const size_t i = (size_t)n * per + ((size_t)c * L->oh + oy) * L->ow + ox;
                            if (L->op == LBR_OP_MAXPOOL) {
                                o->v[i] = best;
                                if (o->code) o->code[i] = bestc;
                            } else {
                                o->v[i] = sum / (L->count_pad ? L->kh * L->kw : cnt);
                            }
                        }
                break;
            case LBR_OP_GAP:
                for (int c = 0; c < C; c++) {
                    double s = 0;
                    for (int p = 0; p < H * W; p++) s += xi[(size_t)c * H * W + p];
                    o->v[(size_t)n * per + c] = s / (H * W);
                }
                break;
            case LBR_OP_ADD: {
                const double *x1 = (L->in1 ? T[L->in1 - 1].v : xin) + (size_t)n * per;
                for (size_t i = 0; i < per; i++)
                    finish_ref(L, o, (size_t)n * per + i, (int)(i / ((size_t)H * W)), xi[i] + x1[i]);
                break;
            }
            }
        }
    }
    free(xin);
}

static void ref_free(rtensor *T, int n) {
    for (int i = 0; i < n; i++) {
        free(T[i].v);
        free(T[i].code);
    }
}

/* ------------------------------------------------------------------ running */

/* plan, load (arena with a guard tail, filled with a pattern), run; 0 on success */
static int run_model(const uint8_t *buf, size_t len, int max_batch, const lbr_options *opt, const float *x, int batch,
                     float *out, lbr_path *paths, const char **variants) {
    char err[256];
    size_t need = 0;
    if (lbr_plan(buf, len, max_batch, opt, &need, err, sizeof err) != LBR_OK) {
        fprintf(stderr, "lbr_plan: %s\n", err);
        return 1;
    }
    const size_t guard = 256, total = (need + guard + 63) / 64 * 64;
    uint8_t *arena = aligned_alloc(64, total);
    memset(arena, 0xA5, total);
    lbr_model *m = NULL;
    int rc = lbr_load(&m, buf, len, max_batch, arena, need, opt, err, sizeof err);
    if (rc != LBR_OK) {
        fprintf(stderr, "lbr_load: %s\n", err);
        free(arena);
        return 1;
    }
    rc = lbr_run(m, x, batch, out);
    CHECK(rc == LBR_OK);
    for (int i = 0; paths && i < lbr_num_layers(m); i++) {
        lbr_layer_info info;
        CHECK(lbr_layer(m, i, &info) == LBR_OK);
        paths[i] = info.path;
        if (variants) variants[i] = info.variant;
    }
    size_t bad = 0;
    for (size_t i = need; i < total; i++) bad += arena[i] != 0xA5;
    CHECK_MSG(bad == 0, "%zu bytes written past the planned arena (%zu bytes)", bad, need);
    free(arena);
    return rc != LBR_OK;
}

static float *make_input(const tnet *t, int batch, int exact) {
    const size_t n = (size_t)batch * t->in_c * t->in_h * t->in_w;
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = exact ? (float)rrange(-8, 8) / 8.0f : (float)(2 * runif() - 1);
    return x;
}

/* logits of layer upto (NHWC per sample) against the reference (NCHW), within tol of the
 * largest |value|; exact: also bit for bit */
static void compare(const char *ctx, const tl *L, const rtensor *R, const float *out, int batch, double tol,
                    int exact) {
    const size_t hw = (size_t)L->oh * L->ow, per = hw * L->oc;
    double scale = 0;
    for (size_t i = 0; i < batch * per; i++) scale = fmax(scale, fabs(R->v[i]));
    size_t bad = 0, inexact = 0;
    double worst = 0;
    for (int n = 0; n < batch; n++)
        for (int c = 0; c < L->oc; c++)
            for (size_t p = 0; p < hw; p++) {
                const double want = R->v[(size_t)n * per + (size_t)c * hw + p];
                const float got = out[(size_t)n * per + p * L->oc + c];
                const double d = fabs(got - want);
                worst = fmax(worst, d);
                bad += !(d <= tol * scale + 1e-30);
                inexact += got != (float)want;
            }
    CHECK_MSG(bad == 0, "%s: %zu of %zu outputs off by more than %g x %g (worst %g)", ctx, bad, batch * per, tol, scale,
              worst);
    if (exact)
        CHECK_MSG(inexact == 0, "%s: %zu of %zu outputs differ from the exact reference", ctx, inexact, batch * per);
}

enum { NOPT = 7 };
static const lbr_options OPTS[NOPT] = {{0},
                                       {.ref_kernels = 1},
                                       {.float_only = 1},
                                       {.prefer_shift = 1},
                                       {.avx2_only = 1},
                                       {.no_xnor = 1},
                                       {.prefer_bucket = 1}};
static const char *const OPT_NAMES[NOPT] = {"best",      "ref_kernels", "float_only",   "prefer_shift",
                                            "avx2_only", "no_xnor",     "prefer_bucket"};

/* The path layer l must run on under option set k: the layer's own expectation, float
 * under float_only, binary levels with 1-bit inputs on xnor unless no_xnor, and codebooks
 * on bucket only up to LBR_BUCKET_MAX_WORK (J x input bits) unless prefer_bucket. */
static lbr_path expected_path(const tnet *t, int l, int k) {
    const tl *L = &t->L[l];
    if (k == 2) return L->path ? LBR_PATH_FLOAT : LBR_PATH_NONE;
    const lbr_path p = k == 3 ? L->path_shift : L->path;
    const float *vals;
    if (p == LBR_PATH_BUCKET && k != 6 && (1 << L->w_bits) * t_bits(t, L->in0, &vals) > LBR_BUCKET_MAX_WORK)
        return LBR_PATH_FLOAT;
    if (p == LBR_PATH_BITSERIAL && k != 5 && L->w_bits == 1 && L->levels[0] * L->levels[1] == -1 &&
        t_bits(t, L->in0, &vals) == 1)
        return LBR_PATH_XNOR;
    return p;
}

/* The whole network, under every option set: paths as expected, logits against the
 * reference, the kernel variants bit-identical, float_only identical where exact, a
 * batch equal to its samples run alone. */
static void check_net(const char *name, const tnet *t, int max_batch, int exact) {
    const int last = t->n - 1, batch = max_batch;
    const tl *L = &t->L[last];
    const size_t per = (size_t)L->oc * L->oh * L->ow;
    float *x = make_input(t, batch, exact);
    rtensor T[MAXL] = {{0}};
    ref_forward(t, last, x, batch, T);
    size_t len;
    uint8_t *buf = serialize(t, last, 0, NULL, 0, &len);
    float *out[NOPT];
    lbr_cpu cpu;
    lbr_cpu_detect(&cpu);
    for (int k = 0; k < NOPT; k++) {
        char ctx[128];
        snprintf(ctx, sizeof ctx, "%s, %s", name, OPT_NAMES[k]);
        out[k] = calloc(batch * per, sizeof(float));
        lbr_path paths[MAXL];
        const char *variants[MAXL];
        if (run_model(buf, len, max_batch, &OPTS[k], x, batch, out[k], paths, variants)) {
            CHECK_MSG(0, "%s: not run", ctx);
            continue;
        }
        for (int l = 0; l <= last; l++) {
            const lbr_path want = expected_path(t, l, k);
            CHECK_MSG(paths[l] == want, "%s: layer %d runs on %s, %s expected", ctx, l, lbr_path_names[paths[l]],
                      lbr_path_names[want]);
            const int integer = paths[l] > LBR_PATH_FLOAT;
            if (k == 1 && integer)
                CHECK_MSG(!strcmp(variants[l], "ref"), "%s: layer %d variant %s", ctx, l, variants[l]);
            if (!integer) CHECK_MSG(!strcmp(variants[l], "scalar"), "%s: layer %d variant %s", ctx, l, variants[l]);
            /* bitserial and xnor run their lanes kernels wherever AVX2 does, except under ref_kernels */
            if ((paths[l] == LBR_PATH_BITSERIAL || paths[l] == LBR_PATH_XNOR) && k != 1 && cpu.avx2) {
                const char *lanes = k == 4 || !cpu.avx512vpopcntdq ? "avx2-lanes" : "avx512-lanes";
                CHECK_MSG(!strcmp(variants[l], lanes), "%s: layer %d variant %s, %s expected", ctx, l, variants[l],
                          lanes);
            }
        }
        compare(ctx, L, &T[last], out[k], batch, 1e-4, exact);
    }
    CHECK_MSG(!memcmp(out[0], out[1], batch * per * sizeof(float)), "%s: ref kernels differ from the best", name);
    CHECK_MSG(!memcmp(out[0], out[4], batch * per * sizeof(float)), "%s: AVX2 kernels differ from the best", name);
    CHECK_MSG(!memcmp(out[0], out[5], batch * per * sizeof(float)), "%s: bitserial differs from xnor", name);
    if (exact) {
        CHECK_MSG(!memcmp(out[0], out[2], batch * per * sizeof(float)), "%s: float_only differs", name);
        CHECK_MSG(!memcmp(out[0], out[3], batch * per * sizeof(float)), "%s: prefer_shift differs", name);
        CHECK_MSG(!memcmp(out[0], out[6], batch * per * sizeof(float)), "%s: prefer_bucket differs", name);
    }
    /* each sample alone, at max_batch and at max_batch 1 */
    const size_t nin = (size_t)t->in_c * t->in_h * t->in_w;
    float *one = calloc(per, sizeof(float));
    for (int n = 0; n < batch; n++) {
        if (!run_model(buf, len, n & 1 ? 1 : max_batch, NULL, x + n * nin, 1, one, NULL, NULL))
            CHECK_MSG(!memcmp(one, out[0] + n * per, per * sizeof(float)), "%s: sample %d alone differs", name, n);
    }
    free(one);
    for (int k = 0; k < NOPT; k++) free(out[k]);
    free(buf);
    free(x);
    ref_free(T, last + 1);
}

/* Every code layer of an exact network on its own: the model up to it plus an identity
 * tail, whose outputs are the codes' values; they must equal the reference exactly under
 * every option set. */
static void check_codes(const char *name, const tnet *t, int max_batch) {
    float *x = make_input(t, max_batch, 1);
    rtensor T[MAXL] = {{0}};
    ref_forward(t, t->n - 1, x, max_batch, T);
    for (int l = 0; l < t->n; l++) {
        const float *vals;
        const tl *L = &t->L[l];
        if (!L->out_bits && !(L->op == LBR_OP_MAXPOOL && t_bits(t, L->in0, &vals))) continue;
        size_t len;
        uint8_t *buf = serialize(t, l, 1, NULL, 0, &len);
        const size_t per = (size_t)L->oc * L->oh * L->ow;
        float *out = calloc(max_batch * per, sizeof(float));
        for (int k = 0; k < NOPT; k++) {
            char ctx[128];
            snprintf(ctx, sizeof ctx, "%s, codes of layer %d, options %d", name, l, k);
            if (run_model(buf, len, max_batch, &OPTS[k], x, max_batch, out, NULL, NULL)) {
                CHECK_MSG(0, "%s: not run", ctx);
                continue;
            }
            compare(ctx, L, &T[l], out, max_batch, 0, 1);
        }
        free(out);
        free(buf);
    }
    free(x);
    ref_free(T, t->n);
}

/* ------------------------------------------------------------------ the networks */

static int pick(const int *v, int n) { return v[rnd(n)]; }

/* conv (float) -> conv (ternary, bitserial) -> maxpool -> grouped conv (odd levels,
 * s8u8) -> gemm (codebook, bucket; steps) -> gemm (powers of two; pot) -> gemm (float) */
static void make_chain(tnet *t) {
    memset(t, 0, sizeof *t);
    t->in_c = rrange(1, 4), t->in_h = t->in_w = rrange(5, 9);
    static const int abits[] = {1, 2, 2, 3, 4, 8};
    tl *L = add_conv(t, 0, rrange(1, 13), 3, rrange(1, 2), rnd(2), 1);
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    set_post(t, L, 1, 2, LBR_ENC_UNIFORM, 1.0f, rnd(4) != 0);
    L->path = L->path_shift = LBR_PATH_FLOAT;

    L = add_conv(t, 1, 2 * rrange(1, 6), 3, 1, rnd(2), 1);
    set_weights(L, WK_LINEAR, rrange(1, 2), LBR_WG_ROW, LV_TERN, 1);
    set_post(t, L, 1, pick(abits, 6), LBR_ENC_UNIFORM, rnd(2) ? 1.0f : 0.5f, 1);
    L->path = L->path_shift = LBR_PATH_BITSERIAL;

    L = add_pool(t, LBR_OP_MAXPOOL, 2, rrange(2, 3), rrange(1, 2), rnd(2));

    L = add_conv(t, 3, 2 * rrange(1, 6), 3, rrange(1, 2), 1, 2);
    set_weights(L, WK_LINEAR, rrange(2, 7), LBR_WG_TENSOR, LV_ODD, 1);
    set_post(t, L, 1, pick(abits, 6), LBR_ENC_UNIFORM, 1.0f, 1);
    L->path = L->path_shift = LBR_PATH_S8U8;

    L = add_gemm(t, 4, rrange(1, 13));
    set_weights(L, WK_CODEBOOK, rrange(1, 4), LBR_WG_ROW, 0, 1);
    static const int sbits[] = {3, 5, 8}; /* 5, 8: more steps than are counted (emit_row_float) */
    set_post(t, L, 1, pick(sbits, 3), LBR_ENC_STEPS, 0.5f, 1);
    L->path = L->path_shift = LBR_PATH_BUCKET;

    L = add_gemm(t, 5, rrange(1, 13));
    set_weights(L, WK_LINEAR, 3, rnd(2) ? LBR_WG_ROW : LBR_WG_TENSOR, LV_POW2, 1);
    set_post(t, L, 1, 3, LBR_ENC_POT, 0, 1);
    L->path = LBR_PATH_S8U8, L->path_shift = LBR_PATH_SHIFT;

    L = add_gemm(t, 6, rrange(1, 10));
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    set_post(t, L, 0, 0, 0, 0, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;
}

/* conv (float) -> grouped ternary conv -> grouped ternary conv (scales per layer or per
 * kernel pixel) -> gemm (float): the
 * bitserial lanes kernels take each group's outputs in blocks of 8 from a block boundary,
 * so group sizes of 1 to 17 outputs cover partial, whole and several blocks per group */
static void make_tern_groups(tnet *t) {
    memset(t, 0, sizeof *t);
    t->in_c = rrange(1, 4), t->in_h = t->in_w = rrange(5, 9);
    static const int abits[] = {1, 2, 2, 3, 4, 8};
    const int g = rrange(2, 3);
    tl *L = add_conv(t, 0, g * rrange(1, 4), 3, 1, 1, 1);
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    set_post(t, L, 1, pick(abits, 6), LBR_ENC_UNIFORM, 1.0f, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;

    L = add_conv(t, 1, g * rrange(1, 13), 3, 1, rnd(2), g);
    set_weights(L, WK_LINEAR, rrange(1, 2), LBR_WG_ROW, LV_TERN, 1);
    set_post(t, L, 1, pick(abits, 6), LBR_ENC_UNIFORM, rnd(2) ? 1.0f : 0.5f, 1);
    L->path = L->path_shift = LBR_PATH_BITSERIAL;

    L = add_conv(t, 2, g * rrange(7, 17), 3, 1, 1, g);
    set_weights(L, WK_LINEAR, 2, rnd(2) ? LBR_WG_TENSOR : LBR_WG_PIXEL, LV_TERN, 1); /* pixel: a sum per kernel pixel */
    set_post(t, L, 1, pick(abits, 6), LBR_ENC_UNIFORM, 1.0f, 1);
    L->path = L->path_shift = LBR_PATH_BITSERIAL;

    L = add_gemm(t, 3, rrange(1, 10));
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    set_post(t, L, 0, 0, 0, 0, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;
}

/* conv (float, 1-bit codes) -> binary conv (padding, groups) -> maxpool -> binary conv
 * (stride 2) -> binary gemm -> gemm (float), scales per layer, row or kernel pixel: levels {-1, +1} with 1-bit inputs run xnor,
 * whose zero padding is code 0; Kc from under a word to several words, group sizes of 1
 * to 17 outputs (partial, whole and several lanes blocks) */
static void make_binary(tnet *t) {
    memset(t, 0, sizeof *t);
    t->in_c = rrange(1, 4), t->in_h = t->in_w = rrange(5, 9);
    const int g = rrange(1, 3);
    tl *L = add_conv(t, 0, g * rrange(1, 6), 3, 1, 1, 1);
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    set_post(t, L, 1, 1, LBR_ENC_UNIFORM, rnd(2) ? 1.0f : 0.5f, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;

    L = add_conv(t, 1, g * rrange(1, 17), 3, 1, rnd(2), g);
    set_weights(L, WK_LINEAR, 1, pick((const int[]){LBR_WG_ROW, LBR_WG_TENSOR, LBR_WG_PIXEL}, 3), LV_TERN, 1);
    set_post(t, L, rnd(2), 1, LBR_ENC_UNIFORM, 1.0f, 1);
    L->path = L->path_shift = LBR_PATH_BITSERIAL;

    add_pool(t, LBR_OP_MAXPOOL, 2, 2, 1, 0);

    L = add_conv(t, 3, rrange(1, 20), 3, 2, 1, 1);
    set_weights(L, WK_LINEAR, 1, rnd(2) ? LBR_WG_ROW : LBR_WG_PIXEL, LV_TERN, 1);
    set_post(t, L, 1, 1, LBR_ENC_UNIFORM, 0.5f, rnd(2));
    L->path = L->path_shift = LBR_PATH_BITSERIAL;

    L = add_gemm(t, 4, rrange(1, 13));
    set_weights(L, WK_LINEAR, 1, LBR_WG_TENSOR, LV_TERN, 1);
    set_post(t, L, 1, rrange(1, 2), LBR_ENC_UNIFORM, 1.0f, 1);
    L->path = L->path_shift = LBR_PATH_BITSERIAL;

    L = add_gemm(t, 5, rrange(1, 10));
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    set_post(t, L, 0, 0, 0, 0, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;
}

/* conv -> conv (s8u8, same shape) -> add -> avgpool of codes -> conv (float in) ->
 * maxpool (float, same shape) -> add (floats) -> gap -> gemm */
static void make_pools(tnet *t) {
    memset(t, 0, sizeof *t);
    t->in_c = rrange(1, 4), t->in_h = t->in_w = rrange(5, 9);
    tl *L = add_conv(t, 0, rrange(2, 8), 3, 1, 1, 1);
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    set_post(t, L, 1, 2, LBR_ENC_UNIFORM, 1.0f, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;

    L = add_conv(t, 1, t->L[0].oc, 3, 1, 1, 1);
    set_weights(L, WK_LINEAR, 3, LBR_WG_ROW, LV_ODD, 1);
    set_post(t, L, 1, 2, LBR_ENC_UNIFORM, 1.0f, 1);
    L->path = L->path_shift = LBR_PATH_S8U8;

    L = add_layer(t, LBR_OP_ADD, 1);
    L->in1 = 2, L->oc = L->c, L->oh = L->h, L->ow = L->w;
    set_post(t, L, 1, 3, LBR_ENC_UNIFORM, 0.5f, 1);

    add_pool(t, LBR_OP_AVGPOOL, 3, 3, 2, 1);

    L = add_conv(t, 4, rrange(1, 13), 3, 1, 1, 1);
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    set_post(t, L, rnd(2), 0, 0, 0, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;

    add_pool(t, LBR_OP_MAXPOOL, 5, 3, 1, 1);

    L = add_layer(t, LBR_OP_ADD, 5);
    L->in1 = 6, L->oc = L->c, L->oh = L->h, L->ow = L->w;

    add_layer(t, LBR_OP_GAP, 7)->oc = t->L[6].oc;
    t->L[7].oh = t->L[7].ow = 1;

    L = add_gemm(t, 8, rrange(1, 10));
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    set_post(t, L, 0, 0, 0, 0, rnd(2));
    L->path = L->path_shift = LBR_PATH_FLOAT;
}

/* code layers that must still take the float path: non-linear input values, pixel
 * groups, a 5-bit codebook, levels beyond int8 */
static void make_float_forms(tnet *t) {
    memset(t, 0, sizeof *t);
    t->in_c = rrange(1, 4), t->in_h = t->in_w = rrange(5, 9);
    tl *L = add_conv(t, 0, rrange(1, 13), 3, 1, rnd(2), 1);
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    if (rnd(2)) set_post(t, L, 1, 3, ENC_NONLIN, 0.25f, 1);
    else set_post(t, L, 1, 5, ENC_SQUARE, 0.25f, 1); /* uneven steps: emit_row_float's search */
    L->path = L->path_shift = LBR_PATH_FLOAT;

    L = add_conv(t, 1, rrange(1, 13), 3, 1, 1, 1); /* ternary, but the input is not linear */
    set_weights(L, WK_LINEAR, 2, LBR_WG_ROW, LV_TERN, 1);
    set_post(t, L, 1, 2, LBR_ENC_UNIFORM, 1.0f, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;

    L = add_conv(t, 2, rrange(1, 13), 3, rrange(1, 2), 1, 1); /* pixel scales */
    set_weights(L, WK_LINEAR, 3, LBR_WG_PIXEL, LV_ODD, 1);
    set_post(t, L, 1, 2, LBR_ENC_UNIFORM, 1.0f, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;

    L = add_conv(t, 3, rrange(1, 13), 1, 1, rnd(2), 1); /* 5-bit codebook; padding 1: windows of padding only */
    set_weights(L, WK_CODEBOOK, 5, LBR_WG_TENSOR, 0, 1);
    set_post(t, L, 1, 2, LBR_ENC_POT, 0, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;

    L = add_gemm(t, 4, rrange(1, 10)); /* 8-bit odd levels reach 255 */
    set_weights(L, WK_LINEAR, 8, LBR_WG_TENSOR, LV_ODD, 1);
    set_post(t, L, 0, 0, 0, 0, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;
}

/* a GEMM over side x side codes: at Kc = 65536 (side 256) the kernels take it, above it
 * the float path does */
static void make_wide(tnet *t, int side) {
    memset(t, 0, sizeof *t);
    t->in_c = 1, t->in_h = t->in_w = side;
    tl *L = add_conv(t, 0, 1, 1, 1, 0, 1);
    set_weights(L, WK_FLOAT, 0, 0, 0, 1);
    set_post(t, L, 1, 2, LBR_ENC_UNIFORM, 1.0f, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;
    L = add_gemm(t, 1, 2);
    set_weights(L, WK_LINEAR, 1, LBR_WG_ROW, LV_TERN, 1);
    set_post(t, L, 0, 0, 0, 0, 1);
    L->path = L->path_shift = side * side <= 65536 ? LBR_PATH_BITSERIAL : LBR_PATH_FLOAT;
}

/* float only, random real weights and inputs: the float path within tolerance */
static void make_real(tnet *t) {
    memset(t, 0, sizeof *t);
    t->in_c = rrange(1, 4), t->in_h = t->in_w = rrange(5, 9);
    tl *L = add_conv(t, 0, 2 * rrange(1, 6), 3, rrange(1, 2), rnd(2), 1);
    set_weights(L, WK_FLOAT, 0, 0, 0, 0);
    set_post(t, L, 1, 0, 0, 0, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;
    L = add_conv(t, 1, 2 * rrange(1, 6), 3, 1, 1, 2);
    set_weights(L, WK_FLOAT, 0, 0, 0, 0);
    set_post(t, L, 0, 0, 0, 0, 0);
    L->path = L->path_shift = LBR_PATH_FLOAT;
    add_pool(t, LBR_OP_AVGPOOL, 2, 2, 2, 0);
    L = add_gemm(t, 3, rrange(1, 10));
    set_weights(L, WK_FLOAT, 0, 0, 0, 0);
    set_post(t, L, 0, 0, 0, 0, 1);
    L->path = L->path_shift = LBR_PATH_FLOAT;
}

/* ------------------------------------------------------------------ refusals */

static void expect_refused(const tnet *t, const patch *p, int np, int layer, const char *field) {
    size_t len;
    uint8_t *buf = serialize(t, t->n - 1, 0, p, np, &len);
    char want[64], err[256] = "";
    snprintf(want, sizeof want, "layer %d: %s:", layer, field);
    size_t need = 12345;
    int rc = lbr_plan(buf, len, 4, NULL, &need, err, sizeof err);
    CHECK_MSG(rc != LBR_OK && strstr(err, want), "lbr_plan: rc %d, message \"%s\", \"%s\" expected", rc, err, want);
    CHECK(need == 0);
    static _Alignas(64) uint8_t arena[1 << 20];
    lbr_model *m = (lbr_model *)1;
    err[0] = 0;
    rc = lbr_load(&m, buf, len, 4, arena, sizeof arena, NULL, err, sizeof err);
    CHECK_MSG(rc != LBR_OK && strstr(err, want) && m == NULL, "lbr_load: rc %d, message \"%s\", \"%s\" expected", rc,
              err, want);
    free(buf);
}

static void test_refusals(void) {
    tnet t;
    make_chain(&t);
    const int last = t.n - 1;
    size_t len;
    uint8_t *buf = serialize(&t, last, 0, NULL, 0, &len);
    char err[256];
    size_t need = 0;
    CHECK(lbr_plan(buf, len, 4, NULL, &need, err, sizeof err) == LBR_OK);
    free(buf);
    struct {
        patch p[4];
        int np, layer;
        const char *field;
    } cases[] = {
        {{{2, LBR_L_OP, 10}}, 1, 2, "OP"},
        {{{3, LBR_L_OP, 0}}, 1, 3, "OP"},
        {{{1, LBR_L_IN0, 3}}, 1, 1, "IN0"},
        {{{1, LBR_L_IN0, 2}}, 1, 1, "IN0"}, /* itself */
        {{{1, LBR_L_IN1, 1}}, 1, 1, "IN1"}, /* only ADD reads IN1 */
        {{{0, LBR_L_OUT_H, (int64_t)t.L[0].oh + 1}}, 1, 0, "OUT_H"},
        {{{0, LBR_L_OUT_W, (int64_t)t.L[0].ow + 1}}, 1, 0, "OUT_W"},
        {{{2, LBR_L_OUT_C, (int64_t)t.L[2].oc + 1}}, 1, 2, "OUT_C"},
        {{{4, LBR_L_OUT_H, 2}}, 1, 4, "OUT_H"}, /* gemm */
        {{{1, LBR_L_W_BITS, 0}}, 1, 1, "W_BITS"},
        {{{1, LBR_L_W_BITS, 9}}, 1, 1, "W_BITS"},
        {{{1, LBR_L_W_SCALE, SPARE_MISSING}}, 1, 1, "W_SCALE"},
        {{{1, LBR_L_W_SCALE, SPARE_I32}}, 1, 1, "W_SCALE"},   /* wrong dtype */
        {{{1, LBR_L_W_SCALE, SPARE_F32_3}}, 1, 1, "W_SCALE"}, /* wrong count */
        {{{1, LBR_L_W_SCALE, 0}}, 1, 1, "W_SCALE"},           /* absent */
        {{{1, LBR_L_W_LEVELS, SPARE_F32_3}}, 1, 1, "W_LEVELS"},
        {{{1, LBR_L_W_CODES, SPARE_I32}}, 1, 1, "W_CODES"},
        {{{1, LBR_L_W_GROUP, 3}}, 1, 1, "W_GROUP"},
        {{{1, LBR_L_W_FLOAT, SPARE_F32_3}}, 1, 1, "W_FLOAT"}, /* both forms */
        {{{0, LBR_L_W_FLOAT, 0}}, 1, 0, "W_CODES"},           /* no weights */
        {{{0, LBR_L_W_FLOAT, SPARE_F32_3}}, 1, 0, "W_FLOAT"}, /* wrong count */
        {{{0, LBR_L_W_BITS, 2}}, 1, 0, "W_BITS"},             /* with float weights */
        {{{3, LBR_L_GROUP, 0}}, 1, 3, "GROUP"},
        {{{3, LBR_L_GROUP, 7}}, 1, 3, "GROUP"},
        {{{0, LBR_L_SH, 0}}, 1, 0, "SH"},
        {{{0, LBR_L_KH, 40}}, 1, 0, "KH"},
        {{{2, LBR_L_PH, 5}}, 1, 2, "PH"},             /* pool padding >= kernel */
        {{{2, LBR_L_OUT_BITS, 2}}, 1, 2, "OUT_BITS"}, /* on a maxpool */
        {{{2, LBR_L_ACT, 1}}, 1, 2, "ACT"},
        {{{2, LBR_L_W_FLOAT, SPARE_F32_3}}, 1, 2, "W_FLOAT"},
        {{{0, LBR_L_POST_MUL, SPARE_I32}}, 1, 0, "POST_MUL"},
        {{{0, LBR_L_ACT, 2}}, 1, 0, "ACT"},
        {{{0, LBR_L_OUT_BITS, 9}}, 1, 0, "OUT_BITS"},
        {{{0, LBR_L_ENC, 0}}, 1, 0, "ENC"}, /* codes with no encoder */
        {{{0, LBR_L_ENC, 4}}, 1, 0, "ENC"},
        {{{0, LBR_L_ENC, LBR_ENC_POT}}, 1, 0, "ENC_PARAMS"}, /* POT takes none */
        {{{0, LBR_L_ENC_PARAMS, 0}}, 1, 0, "ENC_PARAMS"},
        {{{0, LBR_L_OUT_VALUES, SPARE_DECREASING}}, 1, 0, "OUT_VALUES"},
        {{{0, LBR_L_OUT_VALUES, SPARE_F32_3}}, 1, 0, "OUT_VALUES"},
        {{{last, LBR_L_ENC, LBR_ENC_UNIFORM}}, 1, last, "ENC"}, /* encoder on a float output */
        {{{last, LBR_L_OUT_BITS, 2},
          {last, LBR_L_ENC, LBR_ENC_UNIFORM},
          {last, LBR_L_ENC_PARAMS, SPARE_C},
          {last, LBR_L_OUT_VALUES, SPARE_DECREASING}},
         4,
         last,
         "OUT_VALUES"},
        {{{last, LBR_L_OUT_C, (int64_t)t.L[last].oc + 1}}, 1, last, "W_FLOAT"}, /* weights no longer fit */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_refused(&t, cases[i].p, cases[i].np, cases[i].layer, cases[i].field);

    /* the last layer must give float logits: codes (with valid values) are refused */
    {
        tnet u;
        memset(&u, 0, sizeof u);
        u.in_c = 2, u.in_h = u.in_w = 5;
        tl *L = add_conv(&u, 0, 3, 3, 1, 1, 1);
        set_weights(L, WK_FLOAT, 0, 0, 0, 1);
        set_post(&u, L, 1, 2, LBR_ENC_UNIFORM, 1.0f, 1);
        expect_refused(&u, NULL, 0, 0, "OUT_BITS");
        add_pool(&u, LBR_OP_MAXPOOL, 1, 2, 2, 0); /* a maxpool passes codes on */
        expect_refused(&u, NULL, 0, 1, "IN0");
        add_pool(&u, LBR_OP_AVGPOOL, 2, 1, 1, 0); /* an avgpool gives floats: accepted, if n_outputs agrees */
        size_t l2;
        uint8_t *b2 = serialize(&u, u.n - 1, 0, NULL, 0, &l2);
        CHECK(lbr_plan(b2, l2, 1, NULL, &need, err, sizeof err) == LBR_OK);
        free(b2);
        /* ADD of two different shapes */
        tl *A = add_layer(&u, LBR_OP_ADD, 1);
        A->in1 = 2, A->oc = A->c, A->oh = A->h, A->ow = A->w;
        expect_refused(&u, NULL, 0, 3, "IN1");
        net_free(&u);
    }
    net_free(&t);
}

static void test_args(void) {
    tnet t;
    make_chain(&t);
    size_t len, need = 0;
    uint8_t *buf = serialize(&t, t.n - 1, 0, NULL, 0, &len);
    char err[256];
    CHECK(lbr_plan(buf, len, 3, NULL, &need, err, sizeof err) == LBR_OK && need > 0);
    CHECK(lbr_plan(buf, len, 0, NULL, &need, err, sizeof err) == LBR_ERR_ARG);
    CHECK(lbr_plan(NULL, len, 3, NULL, &need, err, sizeof err) == LBR_ERR_ARG);
    CHECK(lbr_plan(buf, len, 3, NULL, NULL, err, sizeof err) == LBR_ERR_ARG);
    CHECK(lbr_plan(buf, len - 1, 3, NULL, &need, err, sizeof err) != LBR_OK); /* the container's own check */
    CHECK(lbr_plan(buf, len, 3, NULL, &need, err, sizeof err) == LBR_OK);
    uint8_t *arena = aligned_alloc(64, (need + 64 + 63) / 64 * 64);
    lbr_model *m = NULL;
    err[0] = 0;
    /* lbr_plan's figure is the largest over the options; far below it fails */
    CHECK(lbr_load(&m, buf, len, 3, arena, 1024, NULL, err, sizeof err) == LBR_ERR_ARG && m == NULL &&
          strstr(err, "arena"));
    CHECK(lbr_load(&m, buf, len, 3, arena + 1, need, NULL, err, sizeof err) != LBR_OK); /* not aligned */
    CHECK(lbr_load(&m, buf, len, 0, arena, need, NULL, err, sizeof err) == LBR_ERR_ARG);
    CHECK(lbr_load(NULL, buf, len, 3, arena, need, NULL, err, sizeof err) == LBR_ERR_ARG);
    CHECK(lbr_load(&m, buf, len, 3, arena, need, NULL, NULL, 0) == LBR_OK && m);
    const size_t nin = (size_t)t.in_c * t.in_h * t.in_w;
    float *x = calloc(4 * nin, sizeof(float)), *out = calloc(4 * 16, sizeof(float));
    CHECK(lbr_run(m, x, 0, out) == LBR_ERR_ARG);
    CHECK(lbr_run(m, x, 4, out) == LBR_ERR_ARG);
    CHECK(lbr_run(m, NULL, 1, out) == LBR_ERR_ARG);
    CHECK(lbr_run(m, x, 1, NULL) == LBR_ERR_ARG);
    CHECK(lbr_run(NULL, x, 1, out) == LBR_ERR_ARG);
    CHECK(lbr_run(m, x, 3, out) == LBR_OK);
    /* NaN and infinities go through (codes 0 for NaN, the ends of the range for inf) */
    for (size_t i = 0; i < 3 * nin; i++) x[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : -INFINITY;
    CHECK(lbr_run(m, x, 3, out) == LBR_OK);
    CHECK(lbr_num_layers(m) == t.n);
    CHECK(lbr_num_outputs(m) == t.L[t.n - 1].oc);
    lbr_layer_info info;
    CHECK(lbr_layer(m, -1, &info) == LBR_ERR_ARG);
    CHECK(lbr_layer(m, t.n, &info) == LBR_ERR_ARG);
    CHECK(lbr_layer(m, 0, NULL) == LBR_ERR_ARG);
    CHECK(lbr_layer(m, 1, &info) == LBR_OK && info.op == LBR_OP_CONV && info.w_bits == t.L[1].w_bits &&
          info.in_bits == 2 && info.out_bits == t.L[1].out_bits &&
          info.macs == (uint64_t)t.L[1].oh * t.L[1].ow * t.L[1].oc * t.L[1].kc);
    CHECK(lbr_layer(m, 2, &info) == LBR_OK && info.op == LBR_OP_MAXPOOL && info.path == LBR_PATH_NONE &&
          info.out_bits == t.L[1].out_bits);
    CHECK(!strcmp(lbr_path_names[LBR_PATH_NONE], "none") && !strcmp(lbr_path_names[LBR_PATH_BUCKET], "bucket"));
    free(x);
    free(out);
    free(arena);
    free(buf);
    net_free(&t);
}

static int write_corpus(const char *dir) {
    int rc = 0;
    for (int s = 0; s < 4; s++) {
        tnet t;
        if (s == 0)
            make_chain(&t);
        else if (s == 1)
            make_pools(&t);
        else if (s == 2)
            make_float_forms(&t);
        else
            make_real(&t);
        size_t len;
        uint8_t *buf = serialize(&t, t.n - 1, 0, NULL, 0, &len);
        char path[4096];
        snprintf(path, sizeof path, "%s/valid_model_%d", dir, s);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len) rc = 1;
        if (f && fclose(f)) rc = 1;
        free(buf);
        net_free(&t);
    }
    if (rc) fprintf(stderr, "test_runtime: cannot write the corpus into %s\n", dir);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-corpus")) return write_corpus(argv[2]);
    for (int s = 0; s < 8; s++) {
        tnet t;
        char name[64];
        snprintf(name, sizeof name, "chain %d", s);
        make_chain(&t);
        check_net(name, &t, 1 + s % 5, 1);
        check_codes(name, &t, 1 + (s + 2) % 5);
        net_free(&t);

        snprintf(name, sizeof name, "ternary groups %d", s);
        make_tern_groups(&t);
        check_net(name, &t, 1 + s % 4, 1);
        check_codes(name, &t, 1 + (s + 1) % 3);
        net_free(&t);

        snprintf(name, sizeof name, "binary %d", s);
        make_binary(&t);
        check_net(name, &t, 1 + s % 5, 1);
        check_codes(name, &t, 1 + (s + 3) % 4);
        net_free(&t);

        snprintf(name, sizeof name, "pools %d", s);
        make_pools(&t);
        check_net(name, &t, 1 + s % 4, 0);
        check_codes(name, &t, 2);
        net_free(&t);

        snprintf(name, sizeof name, "float forms %d", s);
        make_float_forms(&t);
        check_net(name, &t, 1 + s % 3, 1);
        check_codes(name, &t, 2);
        net_free(&t);

        snprintf(name, sizeof name, "real %d", s);
        make_real(&t);
        check_net(name, &t, 1 + s % 4, 0);
        net_free(&t);
    }
    for (int side = 255; side <= 257; side++) {
        tnet t;
        char name[64];
        snprintf(name, sizeof name, "wide %d", side);
        make_wide(&t, side);
        check_net(name, &t, 2, 1);
        net_free(&t);
    }
    test_refusals();
    test_args();
    return lbt_report("test_runtime");
}
