/* The quantizer table, quantization-string parsing, standalone quantizers and the
 * pieces several methods share (clipped uniform activations, STE, normal CDF). */
#include "quant/quant.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const lb_qmethod lb_qm_uniform, lb_qm_balanced, lb_qm_uniq, lb_qm_syq, lb_qm_qn, lb_qm_pot;
const lb_qmethod *const lb_qmethods[] = {&lb_qm_uniform, &lb_qm_balanced, &lb_qm_uniq, &lb_qm_syq, &lb_qm_qn, &lb_qm_pot, NULL};

const lb_qmethod *lb_qmethod_find(const char *name) {
    for (int i = 0; lb_qmethods[i]; i++)
        if (!strcmp(lb_qmethods[i]->name, name)) return lb_qmethods[i];
    return NULL;
}

static void method_list(char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; lb_qmethods[i]; i++) {
        const lb_qmethod *m = lb_qmethods[i];
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "\n  %-9s W %d-%d bits, A %d-%d or 32; options: %s; %s", m->name, m->wbits_lo, m->wbits_hi,
                 m->abits_lo, m->abits_hi, m->opts[0] ? m->opts : "none", m->help);
    }
}

/* "4" -> 4, "32"/"f"/"fp32" -> 32 */
static int parse_bits(const char *s, size_t len) {
    if ((len == 1 && s[0] == 'f') || (len == 4 && !strncmp(s, "fp32", 4))) return 32;
    if (len < 1 || len > 2) return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

lb_status lb_qcfg_parse(lb_qcfg *c, const char *s, const char *what) {
    memset(c, 0, sizeof *c);
    c->wbits = c->abits = 32;
    char methods[2048];
    if (!s || !s[0]) return lb_fail(LB_ERR_INVALID, "%s: empty quantization string (e.g. balanced:2/4, or fp32)", what);
    if (!strcmp(s, "fp32") || !strcmp(s, "float")) return LB_OK;
    const char *colon = strchr(s, ':');
    size_t mlen = colon ? (size_t)(colon - s) : strlen(s);
    char name[32];
    if (mlen >= sizeof name) mlen = sizeof name - 1;
    memcpy(name, s, mlen);
    name[mlen] = 0;
    const lb_qmethod *m = lb_qmethod_find(name);
    if (!m) {
        method_list(methods, sizeof methods);
        return lb_fail(LB_ERR_INVALID, "%s '%s': unknown method '%s'; use fp32 or METHOD:W/A[,key=value...] with one of:%s", what,
                       s, name, methods);
    }
    if (!colon) return lb_fail(LB_ERR_INVALID, "%s '%s': give the bit widths, e.g. %s:%d/4", what, s, name, m->wbits_lo == 1 ? 2 : m->wbits_lo);
    c->method = m;
    const char *bw = colon + 1, *comma = strchr(bw, ',');
    size_t blen = comma ? (size_t)(comma - bw) : strlen(bw);
    const char *slash = memchr(bw, '/', blen);
    c->wbits = parse_bits(bw, slash ? (size_t)(slash - bw) : blen);
    c->abits = slash ? parse_bits(slash + 1, blen - (size_t)(slash + 1 - bw)) : 32;
    if (c->wbits < 0 || c->abits < 0)
        return lb_fail(LB_ERR_INVALID, "%s '%s': bit widths must be W/A with integers (A may be 32 for float activations)", what, s);
    if ((c->wbits < m->wbits_lo || c->wbits > m->wbits_hi) && c->wbits != 32)
        return lb_fail(LB_ERR_INVALID, "%s '%s': %s takes %d to %d weight bits (or 32 for float weights), not %d%s", what, s, m->name,
                       m->wbits_lo, m->wbits_hi, c->wbits,
                       !strcmp(m->name, "syq") ? " (1 = binary, 2 = ternary)" : "");
    if ((c->abits < m->abits_lo || c->abits > m->abits_hi) && c->abits != 32)
        return lb_fail(LB_ERR_INVALID, "%s '%s': %s takes %d to %d activation bits (or 32 for float), not %d", what, s, m->name,
                       m->abits_lo, m->abits_hi, c->abits);
    for (const char *p = comma; p && *p;) {
        p++; /* past ',' */
        const char *end = strchr(p, ','), *eq = strchr(p, '=');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!eq || eq >= p + len || eq == p)
            return lb_fail(LB_ERR_INVALID, "%s '%s': option '%.*s' must be key=value (options of %s: %s)", what, s, (int)len, p, m->name,
                           m->opts[0] ? m->opts : "none");
        size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
        if (c->nopt == LB_Q_MAXOPT || klen >= sizeof c->key[0] || vlen >= sizeof c->val[0] || vlen == 0)
            return lb_fail(LB_ERR_INVALID, "%s '%s': option '%.*s' is too long, empty, or one too many", what, s, (int)len, p);
        memcpy(c->key[c->nopt], p, klen);
        c->key[c->nopt][klen] = 0;
        memcpy(c->val[c->nopt], eq + 1, vlen);
        c->val[c->nopt][vlen] = 0;
        /* accepted key? (whole words of m->opts) */
        int ok = 0;
        for (const char *o = m->opts; (o = strstr(o, c->key[c->nopt])); o += klen)
            if ((o == m->opts || o[-1] == ' ') && (o[klen] == ' ' || o[klen] == 0)) { ok = 1; break; }
        if (!ok)
            return lb_fail(LB_ERR_INVALID, "%s '%s': %s has no option '%s' (options: %s)", what, s, m->name, c->key[c->nopt],
                           m->opts[0] ? m->opts : "none");
        for (int i = 0; i < c->nopt; i++)
            if (!strcmp(c->key[i], c->key[c->nopt])) return lb_fail(LB_ERR_INVALID, "%s '%s': option '%s' is given twice", what, s, c->key[i]);
        c->nopt++;
        p = end;
    }
    return LB_OK;
}

void lb_qcfg_format(const lb_qcfg *c, char *buf, size_t n) {
    if (!c->method) { snprintf(buf, n, "fp32"); return; }
    size_t l = (size_t)snprintf(buf, n, "%s:%d/%d", c->method->name, c->wbits, c->abits);
    for (int i = 0; i < c->nopt && l < n; i++) l += (size_t)snprintf(buf + l, n - l, ",%s=%s", c->key[i], c->val[i]);
}

const char *lb_qopt(const lb_qcfg *c, const char *key, const char *def) {
    for (int i = 0; c && i < c->nopt; i++)
        if (!strcmp(c->key[i], key)) return c->val[i];
    return def;
}

lb_status lb_qopt_num(const lb_quant *q, const char *key, double def, double lo, double hi, double *out) {
    const char *v = lb_qopt(q->cfg, key, NULL);
    if (!v) { *out = def; return LB_OK; }
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi))
        return lb_fail(LB_ERR_INVALID, "%s option %s=%s: must be a number in [%g, %g]", q->method->name, key, v, lo, hi);
    *out = x;
    return LB_OK;
}

lb_status lb_qopt_choice(const lb_quant *q, const char *key, const char *choices, int *out) {
    const char *v = lb_qopt(q->cfg, key, NULL);
    *out = 0;
    if (!v) return LB_OK;
    size_t n = strlen(v);
    int i = 0;
    for (const char *p = choices; *p; i++) {
        const char *e = strchr(p, ' ');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !strncmp(p, v, n)) { *out = i; return LB_OK; }
        p += l + (e != NULL);
    }
    return lb_fail(LB_ERR_INVALID, "%s option %s=%s: must be one of: %s", q->method->name, key, v, choices);
}

lb_status lb_quant_new(lb_quant **out, const lb_qcfg *c, int role, int ndim, const int64_t *shape) {
    return lb_quant_create(out, c, role, ndim, shape, 1);
}

lb_status lb_quant_create(lb_quant **out, const lb_qcfg *c, int role, int ndim, const int64_t *shape, int own_storage) {
    *out = NULL;
    if (!c->method) return lb_fail(LB_ERR_INVALID, "lb_quant_new: fp32 has no quantizer");
    lb_quant *q = calloc(1, sizeof *q);
    if (!q) return lb_fail(LB_ERR_NOMEM, "out of memory");
    q->method = c->method;
    q->cfg = c;
    q->role = role;
    q->bits = role == LB_QW ? c->wbits : c->abits;
    q->ndim = ndim;
    q->n = 1;
    for (int i = 0; i < ndim; i++) { q->shape[i] = shape[i]; q->n *= shape[i]; }
    q->name = "tensor";
    q->n_layers = 1;
    q->temperature = 1;
    const lb_qops *ops = role == LB_QW ? c->method->w : c->method->a;
    lb_status s = ops->setup(q);
    for (int i = 0; !s && own_storage && i < q->nlearn; i++) {
        q->learn[i] = lb_calloc((size_t)q->learn_size[i], sizeof(float));
        q->glearn[i] = lb_calloc((size_t)q->learn_size[i], sizeof(float));
        if (!q->learn[i] || !q->glearn[i]) s = lb_fail(LB_ERR_NOMEM, "out of memory");
    }
    if (s) { lb_quant_free(q); return s; }
    *out = q;
    return LB_OK;
}

void lb_quant_free(lb_quant *q) {
    if (!q) return;
    const lb_qops *ops = q->role == LB_QW ? q->method->w : q->method->a;
    if (ops->release) ops->release(q);
    for (int i = 0; i < q->nlearn; i++) { lb_free(q->learn[i]); lb_free(q->glearn[i]); }
    free(q);
}

/* ------------------------------------------------------------------ shared pieces */

void lb_q_ste_clip(float *dx, const float *dy, const float *x, int64_t n, float lo, float hi, int acc) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = (x[i] >= lo && x[i] <= hi) ? dy[i] : 0.0f;
        dx[i] = acc ? dx[i] + g : g;
    }
}

void lb_q_ste(float *dx, const float *dy, int64_t n, int acc) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] = acc ? dx[i] + dy[i] : dy[i];
}

int lb_q_cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

float lb_q_maxabs(const float *x, int64_t n) {
    float m = 0;
    /* a plain comparison rather than fmaxf (a libm call in this loop) */
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        m = a > m ? a : m;
    }
    return m;
}

double lb_q_meanabs(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)x[i]);
    return n ? s / (double)n : 0;
}

double lb_q_phi(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

double lb_q_phi_inv(double p) {
    /* Acklam's algorithm; one Halley step against erfc brings it to double precision */
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00};
    if (p <= 0) return -INFINITY;
    if (p >= 1) return INFINITY;
    double x, q, r;
    if (p < 0.02425) {
        q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p <= 1 - 0.02425) {
        q = p - 0.5;
        r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    } else {
        q = sqrt(-2 * log(1 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    double e = lb_q_phi(x) - p, u = e * 2.5066282746310002 /* sqrt(2 pi) */ * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

/* ------------------------------------------------ clipped uniform activations (section 0) */

static lb_status act_setup(lb_quant *q) {
    if (q->bits < 1 || q->bits > 16) return lb_fail(LB_ERR_INVALID, "%s: activation bits must be in [1, 16]", q->name);
    return LB_OK;
}

static void act_init(lb_quant *q, const float *x, int64_t n) { (void)x; (void)n; q->initialized = 1; }

static void act_forward(lb_quant *q, float *y, const float *x, int64_t n, int training) {
    (void)training;
    const int K = 1 << q->bits;
    /* computed, not looked up in a table of the K values: a gather is slower than the
     * vector division here (measured) */
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = lbr_act_value(lbr_act_code(x[i], K, 1.0f), K, 1.0f);
}

static void act_backward(lb_quant *q, float *dx, const float *dy, const float *x, int64_t n, int acc) {
    (void)q;
    lb_q_ste_clip(dx, dy, x, n, 0.0f, 1.0f, acc);
}

static void act_encode(const lb_quant *q, int32_t *codes, const float *x, int64_t n) {
    const int K = 1 << q->bits;
    for (int64_t i = 0; i < n; i++) codes[i] = lbr_act_code(x[i], K, 1.0f);
}

const lb_qops lb_qops_act_uniform = {act_setup, NULL, act_init, act_forward, act_backward, NULL, act_encode, NULL};
