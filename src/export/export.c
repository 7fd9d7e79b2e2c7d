/* export.c - a model, as trained, to a packed .lbm (runtime/lbr.h, docs/format.md).
 *
 * The exporter knows no method. What it writes is read off each quantizer's own hard
 * functions, the ones `lowbit eval` runs, so train equals deploy by construction:
 *
 *   weights      codes from the method's `encode`, values from its hard `forward`; the
 *                values must be a function of (group, code) for one of the groupings the
 *                runtime has (tensor, output row, kernel pixel), and they are written as
 *                integer levels times a scale per group when they are (checked to 1e-6
 *                relative: DoReFa, max-abs, balanced, SYQ, power-of-two, QN's integer
 *                sets), else as a codebook per group (UNIQ's k-quantiles);
 *   activations  the quantizer's code as a function of the layer's pre-activation y is
 *                monotone, so it is exactly a step function: its K - 1 jump points are
 *                found by bisection over the floats, and the runtime's lbr_step_code on
 *                them gives the same code as the method for every float y (the Relu or
 *                Clip before the quantizer is folded into the steps); the value of each
 *                code is the quantizer's hard forward there.
 *
 * Layers: Conv/Gemm absorb a following BatchNormalization (eval form, folded into a
 * per-channel multiply-add exactly as ops/batchnorm.c computes it) and Relu/Clip with
 * its activation quantizer; Add absorbs a following Relu; Flatten is a view (the next
 * Gemm's columns are permuted from NCHW to the runtime's NHWC order); Dropout is the
 * identity. Anything else is refused with the node's name. */
#include "export/lbm_write.h"
#include "graph/graph.h"
#include "quant/quant.h"
#include "lbr.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const lb_qops *ops_of(const lb_quant *q) { return q->role == LB_QW ? q->method->w : q->method->a; }

/* ------------------------------------------------------------------ weights */

typedef struct wform {
    int bits, K;             /* codes in [0, K), K <= 2^bits */
    int group, ngroups;      /* LBR_WG_* */
    int linear;              /* value = scale[g] * level[code], else cb[g * 2^bits + code] */
    int32_t level[256];
    float *table;            /* ngroups (linear scales) or ngroups * 2^bits (codebook) */
    int32_t *codes;          /* n, PyTorch layout */
} wform;

static int64_t group_of(int group, const int64_t *shape, int ndim, int64_t i) {
    const int64_t per_row = ndim == 4 ? shape[1] * shape[2] * shape[3] : shape[1];
    if (group == LBR_WG_TENSOR) return 0;
    if (group == LBR_WG_ROW) return i / per_row;
    return i % (shape[2] * shape[3]); /* pixel: kh * KW + kw */
}

static int same_bits(float a, float b) { return !memcmp(&a, &b, sizeof a); }

/* The hard values as a table over (group, code): the first grouping that explains every
 * element. 0 when none does (a quantizer that is only part quantized, such as INQ before
 * its last stage). */
static int tabulate(wform *f, const lb_quant *q, const float *v) {
    const int KB = 1 << f->bits;
    const int groups[3] = {LBR_WG_TENSOR, LBR_WG_ROW, LBR_WG_PIXEL};
    for (int gi = 0; gi < (q->ndim == 4 ? 3 : 2); gi++) {
        const int g = groups[gi];
        const int64_t G = g == LBR_WG_TENSOR ? 1 : g == LBR_WG_ROW ? q->shape[0] : q->shape[2] * q->shape[3];
        float *cb = calloc((size_t)(G * KB), sizeof(float));
        unsigned char *seen = calloc((size_t)(G * KB), 1);
        if (!cb || !seen) { free(cb); free(seen); return -1; }
        int ok = 1;
        for (int64_t i = 0; i < q->n && ok; i++) {
            int64_t e = group_of(g, q->shape, q->ndim, i) * KB + f->codes[i];
            if (!seen[e]) { seen[e] = 1; cb[e] = v[i]; }
            else ok = same_bits(cb[e], v[i]);
        }
        if (ok) {
            f->group = g;
            f->ngroups = (int)G;
            f->table = cb;
            /* linear form: integer levels shared by the groups, one scale each */
            f->linear = 0;
            int ref = 0, best = -1; /* the group using the most codes fixes the levels */
            for (int64_t k = 0; k < G; k++) {
                int used = 0;
                for (int j = 0; j < KB; j++) used += seen[k * KB + j];
                if (used > best) { best = used; ref = (int)k; }
            }
            float umin = INFINITY;
            for (int j = 0; j < KB; j++)
                if (seen[ref * KB + j] && cb[ref * KB + j] != 0) umin = fminf(umin, fabsf(cb[ref * KB + j]));
            for (int d = 1; d <= 16 && isfinite(umin) && !f->linear; d++) {
                const double u = (double)umin / d;
                int lin = 1;
                memset(f->level, 0, sizeof f->level);
                for (int j = 0; j < KB && lin; j++) {
                    if (!seen[ref * KB + j]) continue;
                    double r = (double)cb[ref * KB + j] / u;
                    if (fabs(r) > 1e6 || fabs(r - rint(r)) > 1e-5) lin = 0;
                    else f->level[j] = (int32_t)rint(r);
                }
                float *sc = lin ? calloc((size_t)G, sizeof(float)) : NULL;
                if (!sc) lin = 0; /* out of memory: the codebook form serves too */
                for (int64_t k = 0; k < G && lin; k++) {
                    /* this group's scale from its code of smallest non-zero level */
                    int jb = -1;
                    for (int j = 0; j < KB; j++)
                        if (seen[k * KB + j] && f->level[j] && (jb < 0 || abs(f->level[j]) < abs(f->level[jb]))) jb = j;
                    sc[k] = jb < 0 ? 0.0f : cb[k * KB + jb] / (float)f->level[jb];
                    for (int j = 0; j < KB && lin; j++) {
                        if (!seen[k * KB + j]) continue;
                        float want = cb[k * KB + j], got = sc[k] * (float)f->level[j];
                        if (fabsf(got - want) > 1e-6f * fabsf(want) || (want == 0) != (got == 0)) lin = 0;
                    }
                }
                if (lin) {
                    f->linear = 1;
                    free(f->table);
                    f->table = sc;
                } else {
                    free(sc);
                }
            }
            free(seen);
            return 1;
        }
        free(cb);
        free(seen);
    }
    return 0;
}

/* The weight form of tensor `t` of node n under quantizer q (wq, or an LSTM/GRU's rq):
 * quantized (codes and table) when q is active and tabulates, else float (*is_float = 1). */
static lb_status weight_form(lb_model *m, const lb_node *n, lb_quant *q, int t, wform *f, int *is_float) {
    memset(f, 0, sizeof *f);
    *is_float = 1;
    if (!q || q->mode == LB_QMODE_FLOAT) return LB_OK;
    const float *x = m->params + m->tensors[t].offset;
    float *v = malloc(sizeof(float) * (size_t)q->n);
    f->codes = malloc(sizeof(int32_t) * (size_t)q->n);
    if (!v || !f->codes) { free(v); return lb_fail(LB_ERR_NOMEM, "out of memory"); }
    ops_of(q)->encode(q, f->codes, x, q->n);
    ops_of(q)->forward(q, v, x, q->n, 0);
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (int64_t i = 0; i < q->n; i++) { lo = LB_MIN(lo, f->codes[i]); hi = LB_MAX(hi, f->codes[i]); }
    /* signed codes (max-abs) are shifted to start at 0; the table absorbs it */
    const int32_t off = lo < 0 ? -lo : 0;
    for (int64_t i = 0; i < q->n; i++) f->codes[i] += off;
    f->bits = q->bits;
    f->K = hi + off + 1;
    int r = f->K <= (1 << f->bits) ? tabulate(f, q, v) : 0;
    free(v);
    if (r < 0) return lb_fail(LB_ERR_NOMEM, "out of memory");
    if (r == 0) {
        fprintf(stderr, "lowbit export: warning: layer '%s': the %s weights are not a function of (group, code); "
                        "exported in float\n", n->name, q->method->name);
        free(f->codes);
        f->codes = NULL;
        return LB_OK;
    }
    *is_float = 0;
    return LB_OK;
}

/* ------------------------------------------------------------------ activations */

/* floats in order as unsigned integers: lb_fkey (lb_internal.h); fval is its inverse */
#define fkey lb_fkey
static float fval(uint32_t k) {
    uint32_t u = k & 0x80000000u ? k & 0x7fffffffu : ~k;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

typedef struct aform {
    int bits;
    float params[257];       /* beta = 1, then 2^bits - 1 thresholds */
    float values[256];
} aform;

/* what the quantizer of node a sees for the pre-activation y: Relu/Clip applied first; an
 * LSTM/GRU's quantizer takes the hidden state itself */
static float act_in(const lb_node *a, float y) {
    if (a->op == LB_OP_CLIP) return lbr_clampf(y, a->lo, a->hi);
    if (a->op == LB_OP_RELU) return y > 0 ? y : 0.0f;
    return y;
}
/* code and value of the quantizer on the pre-activation y */
static int32_t act_code(const lb_quant *q, const lb_node *a, float y) {
    float x = act_in(a, y);
    int32_t c;
    ops_of(q)->encode(q, &c, &x, 1);
    return c;
}
static float act_value(lb_quant *q, const lb_node *a, float y) {
    float x = act_in(a, y), v;
    ops_of(q)->forward(q, &v, &x, 1, 0);
    return v;
}

static lb_status act_form(const lb_node *a, aform *f) {
    lb_quant *q = a->aq;
    const int K = 1 << q->bits;
    f->bits = q->bits;
    f->params[0] = 1.0f;
    const uint32_t kmin = fkey(-FLT_MAX), kmax = fkey(FLT_MAX);
    const int32_t cmin = act_code(q, a, -FLT_MAX), cmax = act_code(q, a, FLT_MAX);
    if (cmin < 0 || cmax >= K || cmin > cmax)
        return lb_fail(LB_ERR_INVALID, "layer '%s': activation codes span [%d, %d], outside [0, %d)", a->name, cmin, cmax, K);
    for (int j = 1; j < K; j++) {
        float t;
        if (cmin >= j) t = -INFINITY;
        else if (cmax < j) t = INFINITY;
        else { /* smallest float with code >= j: code(fval(lo)) < j <= code(fval(hi)) */
            uint32_t lo = kmin, hi = kmax;
            while (hi - lo > 1) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (act_code(q, a, fval(mid)) >= j) hi = mid;
                else lo = mid;
            }
            t = fval(hi);
        }
        f->params[j] = t;
    }
    /* the code must be the step function of these thresholds (monotone): check it at
     * every threshold and just below */
    for (int j = 1; j < K; j++) {
        float t = f->params[j];
        if (!isfinite(t)) continue;
        float below = nextafterf(t, -INFINITY);
        if (act_code(q, a, t) != lbr_step_code(t, f->params + 1, K - 1) ||
            act_code(q, a, below) != lbr_step_code(below, f->params + 1, K - 1))
            return lb_fail(LB_ERR_INVALID, "layer '%s': the %s activation code is not monotone in its input near %g", a->name,
                           q->method->name, (double)t);
    }
    /* values: the hard forward at a point of each code; unreachable codes take their
     * neighbour's value so the table stays non-decreasing */
    for (int j = 0; j < K; j++) {
        float t = j == 0 ? (isfinite(f->params[1]) ? nextafterf(f->params[1], -INFINITY) : (cmin == 0 ? 0.0f : NAN))
                         : f->params[j];
        f->values[j] = isfinite(t) ? act_value(q, a, t) : NAN;
    }
    for (int j = 1; j < K; j++)
        if (isnan(f->values[j])) f->values[j] = f->values[j - 1];
    for (int j = K - 2; j >= 0; j--)
        if (isnan(f->values[j])) f->values[j] = f->values[j + 1];
    for (int j = 1; j < K; j++)
        if (!(f->values[j] >= f->values[j - 1]))
            return lb_fail(LB_ERR_INVALID, "layer '%s': the %s activation values decrease from code %d to %d", a->name,
                           q->method->name, j - 1, j);
    /* evenly spaced from zero (to 1e-6): written as s * j exactly, the form the
     * runtime's integer kernels read */
    const float s = f->values[K - 1] / (float)(K - 1);
    int lin = f->values[0] == 0 && s > 0;
    for (int j = 1; j < K && lin; j++) lin = fabsf(f->values[j] - s * (float)j) <= 1e-6f * fabsf(f->values[j]);
    if (lin)
        for (int j = 0; j < K; j++) f->values[j] = s * (float)j;
    return LB_OK;
}

/* ------------------------------------------------------------------ the walk */

typedef struct exporter {
    lb_model *m;
    lbm_builder b;
    int *src;                /* per node: runtime layer index + 1 holding its output (0: input) */
    int *nuse;               /* consumers per node */
    int *done;
    int *pre_c, *pre_h, *pre_w;  /* per node: shape before any Flatten on the way (NHWC) */
    int nlayers;
    lb_export_info *info;
} exporter;

static lb_status add_f32(exporter *e, const float *p, int64_t n, uint32_t *field) {
    uint32_t idx;
    lb_status s = lbm_add_array(&e->b, LBR_DT_F32, p, (uint64_t)n, &idx);
    if (!s) {
        *field = idx + 1;
        e->info->meta_bytes += 4 * n;
    }
    return s;
}

/* the only consumer of node i, or -1 */
static int sole_consumer(const exporter *e, int i) {
    if (e->nuse[i] != 1) return -1;
    for (int j = i + 1; j < e->m->n_nodes; j++)
        if (e->m->nodes[j].in[0] == i || (e->m->nodes[j].nin > 1 && e->m->nodes[j].in[1] == i)) return j;
    return -1;
}

static int src_of(const exporter *e, int node) { return node < 0 ? 0 : e->src[node]; }

/* a Relu/Clip after node `cur` (its sole consumer): ACT and the output's encoding */
static lb_status absorb_act(exporter *e, int *cur, uint32_t *L) {
    int j = sole_consumer(e, *cur);
    if (j < 0) return LB_OK;
    lb_node *a = &e->m->nodes[j];
    if (a->op != LB_OP_RELU && a->op != LB_OP_CLIP) return LB_OK;
    if (a->aq && a->aq->mode != LB_QMODE_FLOAT) {
        aform f;
        lb_status s = act_form(a, &f);
        const int K = 1 << f.bits;
        if (s || (s = add_f32(e, f.params, K, &L[LBR_L_ENC_PARAMS])) || (s = add_f32(e, f.values, K, &L[LBR_L_OUT_VALUES])))
            return s;
        L[LBR_L_ACT] = LBR_ACT_RELU;
        L[LBR_L_OUT_BITS] = (uint32_t)f.bits;
        L[LBR_L_ENC] = LBR_ENC_STEPS;
    } else if (a->op == LB_OP_RELU) {
        L[LBR_L_ACT] = LBR_ACT_RELU;
    } else {
        return lb_fail(LB_ERR_INVALID, "layer '%s': a Clip without an activation quantizer cannot be exported yet", a->name);
    }
    e->done[j] = 1;
    *cur = j;
    return LB_OK;
}

/* pack codes into one bit stream, code (o, k) at bit (o Kc + k) bits (docs/format.md,
 * W_CODES; o, kh, kw, i order; `col` maps the runtime column to the PyTorch one) */
static lb_status add_codes(exporter *e, const wform *f, int64_t O, int64_t Kc, const int64_t *col, uint32_t *field) {
    const int64_t words = (O * Kc * f->bits + 63) / 64;
    uint64_t *w = calloc((size_t)(words ? words : 1), sizeof(uint64_t));
    if (!w) return lb_fail(LB_ERR_NOMEM, "out of memory");
    for (int64_t o = 0; o < O; o++)
        for (int64_t k = 0; k < Kc; k++) {
            uint64_t c = (uint64_t)f->codes[o * Kc + col[k]];
            int64_t bit = (o * Kc + k) * f->bits;
            w[bit >> 6] |= c << (bit & 63);
            if ((bit & 63) + f->bits > 64) w[(bit >> 6) + 1] |= c >> (64 - (bit & 63));
        }
    uint32_t idx;
    lb_status s = lbm_add_array(&e->b, LBR_DT_U64, w, (uint64_t)words, &idx);
    free(w);
    if (!s) *field = idx + 1;
    return s;
}

/* The weights of node i into the fields of W (rec 0) or of an LSTM/GRU's recurrence W2
 * (rec 1; tensor p0 + 1, quantizer rq). pre: the form weight_form gave (freed here), or
 * NULL to compute it; force_float: float whatever the form. */
static lb_status weight_fields(exporter *e, int i, uint32_t *L, int rec, wform *pre, int force_float);

static lb_status weight_layer(exporter *e, int i, uint32_t *L) { return weight_fields(e, i, L, 0, NULL, 0); }

static lb_status weight_fields(exporter *e, int i, uint32_t *L, int rec, wform *pre, int force_float) {
    lb_model *m = e->m;
    lb_node *n = &m->nodes[i];
    const int t = n->p0 + rec;
    lb_quant *q = rec ? n->rq : n->wq;
    const int F_FLOAT = rec ? LBR_L_W2_FLOAT : LBR_L_W_FLOAT, F_CODES = rec ? LBR_L_W2_CODES : LBR_L_W_CODES;
    const int F_GROUP = rec ? LBR_L_W2_GROUP : LBR_L_W_GROUP, F_LEVELS = rec ? LBR_L_W2_LEVELS : LBR_L_W_LEVELS;
    const int F_SCALE = rec ? LBR_L_W2_SCALE : LBR_L_W_SCALE;
    const lb_tensor_entry *wt = &m->tensors[t];
    const int64_t O = wt->shape[0], Kc = wt->size / O;
    int ic, ih, iw;
    lb_node_in_shape(m, n, 0, &ic, &ih, &iw);
    /* col[k]: the PyTorch column of runtime column k */
    int64_t *col = malloc(sizeof(int64_t) * (size_t)Kc);
    if (!col) {
        if (pre) free(pre->codes), free(pre->table);
        return lb_fail(LB_ERR_NOMEM, "out of memory");
    }
    if (n->op == LB_OP_CONV) {
        const int64_t I = wt->shape[1], KH = wt->shape[2], KW = wt->shape[3];
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                for (int64_t c = 0; c < I; c++) col[(kh * KW + kw) * I + c] = (c * KH + kh) * KW + kw;
        L[LBR_L_KH] = (uint32_t)n->kh; L[LBR_L_KW] = (uint32_t)n->kw;
        L[LBR_L_SH] = (uint32_t)n->sh; L[LBR_L_SW] = (uint32_t)n->sw;
        L[LBR_L_PH] = (uint32_t)n->ph; L[LBR_L_PW] = (uint32_t)n->pw;
        L[LBR_L_GROUP] = (uint32_t)n->group;
    } else if (lb_op_is_rnn(n->op)) { /* a vector per step (or the hidden state): same order */
        for (int64_t k = 0; k < Kc; k++) col[k] = k;
    } else { /* Gemm: its input is NCHW-flattened in training, NHWC in the runtime */
        const int p = n->in[0];
        const int C = p < 0 ? m->in_c : e->pre_c[p], H = p < 0 ? m->in_h : e->pre_h[p], W = p < 0 ? m->in_w : e->pre_w[p];
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                for (int64_t c = 0; c < C; c++) col[(h * W + w) * C + c] = (c * H + h) * W + w;
        L[LBR_L_KH] = L[LBR_L_KW] = 1;
    }
    wform f;
    int is_float = 1;
    lb_status s = LB_OK;
    if (pre) f = *pre, is_float = !f.codes;
    else if (force_float) memset(&f, 0, sizeof f);
    else s = weight_form(m, n, q, t, &f, &is_float);
    is_float |= force_float;
    if (!s && is_float) {
        /* float weights (the node's effective ones: a quantizer still in float mode
         * passes them through) */
        float *w = malloc(sizeof(float) * (size_t)(O * Kc));
        const float *src = m->params + wt->offset;
        if (!w) s = lb_fail(LB_ERR_NOMEM, "out of memory");
        for (int64_t o = 0; o < O && w; o++)
            for (int64_t k = 0; k < Kc; k++) w[o * Kc + k] = src[o * Kc + col[k]];
        uint32_t idx;
        if (!s && !(s = lbm_add_array(&e->b, LBR_DT_F32, w, (uint64_t)(O * Kc), &idx))) L[F_FLOAT] = idx + 1;
        e->info->weight_bits += 32 * O * Kc;
        free(w);
    } else if (!s) {
        L[LBR_L_W_BITS] = (uint32_t)f.bits;
        L[F_GROUP] = (uint32_t)f.group;
        if (!(s = add_codes(e, &f, O, Kc, col, &L[F_CODES]))) {
            e->info->weight_bits += (int64_t)f.bits * O * Kc;
            const int64_t KB = 1 << f.bits;
            if (f.linear) {
                uint32_t idx;
                if (!(s = lbm_add_array(&e->b, LBR_DT_I32, f.level, (uint64_t)KB, &idx))) {
                    L[F_LEVELS] = idx + 1;
                    e->info->meta_bytes += 4 * KB;
                    s = add_f32(e, f.table, f.ngroups, &L[F_SCALE]);
                }
            } else {
                s = add_f32(e, f.table, f.ngroups * KB, &L[F_SCALE]);
            }
        }
    }
    free(f.codes);
    free(f.table);
    free(col);
    return s;
}

static lb_status emit(exporter *e, int i) {
    lb_model *m = e->m;
    lb_node *n = &m->nodes[i];
    uint32_t L[LBR_LAYER_FIELDS] = {0};
    lb_status s = LB_OK;
    int cur = i;
    switch (n->op) {
    case LB_OP_DROPOUT: /* the identity at inference */
    case LB_OP_FLATTEN: /* a view: the Gemm after it reads the shape before it */
        e->src[i] = src_of(e, n->in[0]);
        e->pre_c[i] = n->in[0] < 0 ? m->in_c : e->pre_c[n->in[0]];
        e->pre_h[i] = n->in[0] < 0 ? m->in_h : e->pre_h[n->in[0]];
        e->pre_w[i] = n->in[0] < 0 ? m->in_w : e->pre_w[n->in[0]];
        return LB_OK;
    case LB_OP_CONV:
    case LB_OP_GEMM: {
        L[LBR_L_OP] = n->op == LB_OP_CONV ? LBR_OP_CONV : LBR_OP_GEMM;
        if ((s = weight_layer(e, i, L))) return s;
        const int64_t O = n->c;
        float *mul = malloc(sizeof(float) * (size_t)O), *add = malloc(sizeof(float) * (size_t)O);
        if (!mul || !add) { free(mul); free(add); return lb_fail(LB_ERR_NOMEM, "out of memory"); }
        const float *bias = n->has_bias ? m->params + m->tensors[n->p0 + 1].offset : NULL;
        for (int64_t o = 0; o < O; o++) { mul[o] = 1.0f; add[o] = bias ? bias[o] : 0.0f; }
        int has_mul = 0, bn = sole_consumer(e, i);
        if (bn >= 0 && m->nodes[bn].op == LB_OP_BN) {
            /* ops/batchnorm.c's eval form: y = x * scale + shift */
            const lb_node *b = &m->nodes[bn];
            const lb_tensor_entry *t = &m->tensors[b->p0];
            const float *g = m->params + t[0].offset, *be = m->params + t[1].offset;
            const float *rm = m->params + t[2].offset, *rv = m->params + t[3].offset;
            for (int64_t o = 0; o < O; o++) {
                float sc = g[o] * (1.0f / sqrtf(rv[o] + b->eps)), sh = be[o] - rm[o] * sc;
                add[o] = add[o] * sc + sh; /* (x + bias) * sc + sh; exact without a bias */
                mul[o] = sc;
            }
            has_mul = 1;
            e->done[bn] = 1;
            cur = bn;
        }
        if ((has_mul && (s = add_f32(e, mul, O, &L[LBR_L_POST_MUL]))) ||
            ((has_mul || bias) && (s = add_f32(e, add, O, &L[LBR_L_POST_ADD])))) {
            free(mul); free(add);
            return s;
        }
        free(mul);
        free(add);
        if ((s = absorb_act(e, &cur, L))) return s;
        break;
    }
    case LB_OP_MAXPOOL:
    case LB_OP_AVGPOOL:
        L[LBR_L_OP] = n->op == LB_OP_MAXPOOL ? LBR_OP_MAXPOOL : LBR_OP_AVGPOOL;
        L[LBR_L_KH] = (uint32_t)n->kh; L[LBR_L_KW] = (uint32_t)n->kw;
        L[LBR_L_SH] = (uint32_t)n->sh; L[LBR_L_SW] = (uint32_t)n->sw;
        L[LBR_L_PH] = (uint32_t)n->ph; L[LBR_L_PW] = (uint32_t)n->pw;
        if (n->op == LB_OP_AVGPOOL) L[LBR_L_COUNT_PAD] = (uint32_t)n->count_include_pad;
        break;
    case LB_OP_GAP: L[LBR_L_OP] = LBR_OP_GAP; break;
    case LB_OP_GATHER: {
        /* The embedding table is float in training (as in Bit-RNN). With an activation
         * quantizer after it (Bit-RNN's ReLU and quantizer), a token's output codes are a
         * function of the token alone: the table is stored as those codes, computed by
         * the training quantizer's own encode, at the output's bits (W_BITS = OUT_BITS). */
        L[LBR_L_OP] = LBR_OP_GATHER;
        const lb_tensor_entry *t = &m->tensors[n->p0];
        if ((s = absorb_act(e, &cur, L))) return s;
        if (L[LBR_L_OUT_BITS]) {
            const lb_node *a = &m->nodes[cur]; /* the Relu/Clip holding the quantizer */
            const int64_t V = t->shape[0], D = t->shape[1];
            wform f = {.bits = (int)L[LBR_L_OUT_BITS]};
            int64_t *col = malloc(sizeof(int64_t) * (size_t)D);
            f.codes = malloc(sizeof(int32_t) * (size_t)(V * D));
            if (!col || !f.codes) s = lb_fail(LB_ERR_NOMEM, "out of memory");
            for (int64_t k = 0; !s && k < D; k++) col[k] = k;
            for (int64_t j = 0; !s && j < V * D; j++) f.codes[j] = act_code(a->aq, a, m->params[t->offset + j]);
            if (!s) s = add_codes(e, &f, V, D, col, &L[LBR_L_W_CODES]);
            free(col);
            free(f.codes);
            if (s) return s;
            L[LBR_L_W_BITS] = L[LBR_L_OUT_BITS];
            e->info->weight_bits += (int64_t)f.bits * t->size;
        } else {
            uint32_t idx;
            if ((s = lbm_add_array(&e->b, LBR_DT_F32, m->params + t->offset, (uint64_t)t->size, &idx))) return s;
            L[LBR_L_W_FLOAT] = idx + 1;
            e->info->weight_bits += 32 * t->size;
        }
        break;
    }
    case LB_OP_LSTM:
    case LB_OP_GRU: {
        L[LBR_L_OP] = n->op == LB_OP_LSTM ? LBR_OP_LSTM : LBR_OP_GRU;
        /* the runtime takes W and R in one form, both codes of one width or both float */
        int fw = 1, fr = 1;
        wform w, r;
        if ((s = weight_form(m, n, n->wq, n->p0, &w, &fw))) { free(w.codes); free(w.table); return s; }
        if ((s = weight_form(m, n, n->rq, n->p0 + 1, &r, &fr))) {
            free(w.codes); free(w.table); free(r.codes); free(r.table);
            return s;
        }
        const int both = !fw && !fr && n->wq->bits == n->rq->bits;
        if (!both && (!fw || !fr))
            fprintf(stderr, "lowbit export: warning: layer '%s': the input and recurrent weights do not share one "
                            "quantized form; both exported in float\n", n->name);
        s = weight_fields(e, i, L, 0, &w, !both); /* frees w */
        if (s) { free(r.codes); free(r.table); return s; }
        if ((s = weight_fields(e, i, L, 1, &r, !both))) return s;
        const lb_tensor_entry *b = &m->tensors[n->p0 + 2];
        if ((s = add_f32(e, m->params + b->offset, b->size, &L[LBR_L_POST_ADD]))) return s;
        L[LBR_L_ACT] = n->bitrnn ? LBR_ACT_SIGMOID : LBR_ACT_NONE;
        if (n->aq && n->aq->mode != LB_QMODE_FLOAT) { /* the hidden state's quantizer, on h itself */
            aform af;
            const int K = 1 << n->aq->bits;
            if ((s = act_form(n, &af)) || (s = add_f32(e, af.params, K, &L[LBR_L_ENC_PARAMS])) ||
                (s = add_f32(e, af.values, K, &L[LBR_L_OUT_VALUES])))
                return s;
            L[LBR_L_OUT_BITS] = (uint32_t)af.bits;
            L[LBR_L_ENC] = LBR_ENC_STEPS;
        }
        break;
    }
    case LB_OP_ADD:
        L[LBR_L_OP] = LBR_OP_ADD;
        L[LBR_L_IN1] = (uint32_t)src_of(e, n->in[1]);
        if ((s = absorb_act(e, &cur, L))) return s;
        break;
    default:
        return lb_fail(LB_ERR_INVALID, "layer '%s' (%s): the runtime takes a %s only right after a Conv, Gemm or Add", n->name,
                       lb_op_names[n->op], lb_op_names[n->op]);
    }
    L[LBR_L_IN0] = (uint32_t)src_of(e, n->in[0]);
    L[LBR_L_OUT_C] = (uint32_t)n->c; L[LBR_L_OUT_H] = (uint32_t)n->h; L[LBR_L_OUT_W] = (uint32_t)n->w;
    if ((s = lbm_add_layer(&e->b, L, NULL))) return s;
    e->src[cur] = ++e->nlayers;
    e->pre_c[cur] = n->c; e->pre_h[cur] = n->h; e->pre_w[cur] = n->w;
    return LB_OK;
}

lb_status lb_export_lbm_buffer(lb_model *m, uint8_t **out, size_t *len, lb_export_info *info) {
    lb_export_info dummy;
    if (!info) info = &dummy;
    memset(info, 0, sizeof *info);
    *out = NULL;
    *len = 0;
    exporter e = {.m = m, .info = info};
    lbm_builder_init(&e.b);
    const size_t N = (size_t)m->n_nodes;
    e.src = calloc(N, sizeof(int)); e.nuse = calloc(N, sizeof(int)); e.done = calloc(N, sizeof(int));
    e.pre_c = calloc(N, sizeof(int)); e.pre_h = calloc(N, sizeof(int)); e.pre_w = calloc(N, sizeof(int));
    lb_status s = LB_OK;
    if (!e.src || !e.nuse || !e.done || !e.pre_c || !e.pre_h || !e.pre_w) s = lb_fail(LB_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_nodes && !s; i++)
        for (int k = 0; k < m->nodes[i].nin; k++)
            if (m->nodes[i].in[k] >= 0) e.nuse[m->nodes[i].in[k]]++;
    for (int i = 0; i < m->n_nodes && !s; i++)
        if (!e.done[i]) s = emit(&e, i);
    const lb_node *last = lb_graph_output(m);
    if (!s && e.src[m->n_nodes - 1] != e.nlayers)
        s = lb_fail(LB_ERR_INVALID, "layer '%s': the model's output must be the last layer the runtime computes", last->name);
    if (!s) {
        e.b.in_c = (uint32_t)m->in_c; e.b.in_h = (uint32_t)m->in_h; e.b.in_w = (uint32_t)m->in_w;
        if (m->seq_len) { /* a token model: one id per sample and step, in [0, vocabulary) */
            e.b.in_c = (uint32_t)m->nodes[0].vocab;
            e.b.in_h = e.b.in_w = 1;
        }
        e.b.n_outputs = (uint32_t)last->out_size;
        char err[256];
        size_t a1 = 0, a2 = 0;
        /* the arena the runtime computes, at batch 1 and the growth per sample */
        if (!(s = lbm_build(&e.b, out, len))) {
            if (lbr_plan(*out, *len, 1, NULL, &a1, err, sizeof err) || lbr_plan(*out, *len, 2, NULL, &a2, err, sizeof err) ||
                lbr_plan(*out, *len, 64, NULL, &info->arena_b64, err, sizeof err))
                s = lb_fail(LB_ERR_INVALID, "export: the runtime refuses the model: %s", err);
            free(*out);
            *out = NULL;
        }
        if (!s) {
            e.b.arena_per_sample = a2 > a1 ? a2 - a1 : 0;
            e.b.arena_fixed = a1 - e.b.arena_per_sample;
            info->arena_b1 = a1;
            s = lbm_build(&e.b, out, len);
        }
    }
    if (!s) {
        info->layers = e.nlayers;
        info->file_bytes = (int64_t)*len;
        info->table_bytes = LBR_HEADER_BYTES + (int64_t)LBR_ARRAY_BYTES * e.b.n_arrays + (int64_t)LBR_LAYER_BYTES * e.b.n_layers;
    }
    lbm_builder_free(&e.b);
    free(e.src); free(e.nuse); free(e.done); free(e.pre_c); free(e.pre_h); free(e.pre_w);
    return s;
}

lb_status lb_write_file_atomic(const char *path, const void *buf, size_t len) {
    const void *chunks[1] = {buf};
    return lb_write_atomic(path, 1, chunks, &len);
}

lb_status lb_export_lbm(lb_model *m, const char *path, lb_export_info *info) {
    uint8_t *buf;
    size_t len;
    lb_status s = lb_export_lbm_buffer(m, &buf, &len, info);
    if (s) return s;
    s = lb_write_file_atomic(path, buf, len);
    free(buf);
    return s;
}
