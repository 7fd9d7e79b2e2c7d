/* Model construction from a JSON spec: parsing, validation, shape inference,
 * parameter tables and initialisation.
 *
 * Spec (see the files in models/ and docs/cli.md):
 *   {"name": "...", "input": [C, H, W], "layers": [
 *      {"name": "conv1", "op": "Conv", "out": 32, "kernel": 3, "pad": 1, "bias": false},
 *      {"name": "add1", "op": "Add", "inputs": ["relu1", "bn3"]}, ...]}
 * A layer reads the previous layer unless "inputs" names earlier layers ("input" is the
 * graph input). Unknown keys are errors, so typos do not pass silently. */
#include "graph/graph.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const lb_op_names[LB_OP_COUNT] = {
    [LB_OP_CONV] = "Conv", [LB_OP_GEMM] = "Gemm", [LB_OP_BN] = "BatchNormalization", [LB_OP_RELU] = "Relu",
    [LB_OP_CLIP] = "Clip", [LB_OP_MAXPOOL] = "MaxPool", [LB_OP_AVGPOOL] = "AveragePool",
    [LB_OP_GAP] = "GlobalAveragePool", [LB_OP_ADD] = "Add", [LB_OP_FLATTEN] = "Flatten",
    [LB_OP_DROPOUT] = "Dropout", [LB_OP_GATHER] = "Gather", [LB_OP_LSTM] = "LSTM", [LB_OP_GRU] = "GRU",
};

/* keys each op accepts besides name, op, inputs */
static const char *const op_keys[LB_OP_COUNT] = {
    [LB_OP_CONV] = "out kernel stride pad group bias", [LB_OP_GEMM] = "out bias",
    [LB_OP_BN] = "eps momentum", [LB_OP_RELU] = "", [LB_OP_CLIP] = "min max",
    [LB_OP_MAXPOOL] = "kernel stride pad", [LB_OP_AVGPOOL] = "kernel stride pad count_include_pad",
    [LB_OP_GAP] = "", [LB_OP_ADD] = "", [LB_OP_FLATTEN] = "", [LB_OP_DROPOUT] = "p",
    [LB_OP_GATHER] = "vocab dim", [LB_OP_LSTM] = "hidden bitrnn", [LB_OP_GRU] = "hidden bitrnn",
};

enum { MAX_LAYERS = 4096, MAX_DIM = 1 << 16 };

typedef struct parse_ctx {
    const char *src;
    int li;                  /* layer index */
    const char *lname;
} parse_ctx;

#define FAIL(ctx, ...) fail_at(ctx, __VA_ARGS__)
__attribute__((format(printf, 2, 3))) static lb_status fail_at(const parse_ctx *c, const char *fmt, ...) {
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->li >= 0)
        return lb_fail(LB_ERR_INVALID, "%s: layers[%d] ('%s'): %s", c->src, c->li, c->lname ? c->lname : "?", msg);
    return lb_fail(LB_ERR_INVALID, "%s: %s", c->src, msg);
}

static int has_word(const char *list, const char *w) {
    size_t n = strlen(w);
    if (n == 0) return 0; /* strstr finds "" everywhere: the loop below would never advance */
    for (const char *p = list; (p = strstr(p, w)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

/* integer attribute in [lo, hi]; absent -> def */
static lb_status get_int(const parse_ctx *c, const cJSON *l, const char *key, int def, int lo, int hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, key);
    if (!v) { *out = def; return LB_OK; }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return FAIL(c, "'%s' must be an integer", key);
    if (v->valuedouble < lo || v->valuedouble > hi) return FAIL(c, "'%s' = %g is out of range [%d, %d]", key, v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return LB_OK;
}

/* int or [a, b] pair (kernel, stride, pad) */
static lb_status get_pair(const parse_ctx *c, const cJSON *l, const char *key, int def, int lo, int hi, int *a, int *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, key);
    if (!v) { *a = *b = def; return LB_OK; }
    if (cJSON_IsArray(v)) {
        if (cJSON_GetArraySize(v) != 2) return FAIL(c, "'%s' must be an integer or a pair [h, w]", key);
        int vals[2];
        for (int i = 0; i < 2; i++) {
            const cJSON *e = cJSON_GetArrayItem(v, i);
            if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < lo || e->valuedouble > hi)
                return FAIL(c, "'%s'[%d] must be an integer in [%d, %d]", key, i, lo, hi);
            vals[i] = (int)e->valuedouble;
        }
        *a = vals[0]; *b = vals[1];
        return LB_OK;
    }
    lb_status s = get_int(c, l, key, def, lo, hi, a);
    *b = *a;
    return s;
}

static lb_status get_float(const parse_ctx *c, const cJSON *l, const char *key, float def, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, key);
    if (!v) { *out = def; return LB_OK; }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return FAIL(c, "'%s' must be a number", key);
    *out = (float)v->valuedouble;
    return LB_OK;
}

static lb_status get_bool(const parse_ctx *c, const cJSON *l, const char *key, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, key);
    if (!v) { *out = def; return LB_OK; }
    if (!cJSON_IsBool(v)) return FAIL(c, "'%s' must be true or false", key);
    *out = cJSON_IsTrue(v);
    return LB_OK;
}

static lb_status add_tensor(lb_model *m, lb_node *n, const char *suffix, int ndim, const int64_t *shape, int trainable) {
    lb_tensor_entry *t = realloc(m->tensors, sizeof *t * (size_t)(m->n_tensors + 1));
    if (!t) return lb_fail(LB_ERR_NOMEM, "out of memory");
    m->tensors = t;
    t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    size_t len = strlen(n->name) + strlen(suffix) + 2;
    t->name = malloc(len);
    if (!t->name) return lb_fail(LB_ERR_NOMEM, "out of memory");
    snprintf(t->name, len, "%s.%s", n->name, suffix);
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < ndim; i++) { t->shape[i] = shape[i]; t->size *= shape[i]; }
    t->offset = m->n_params;
    t->trainable = trainable;
    t->decay = trainable;
    t->qowner = -1;
    m->n_params += (t->size + 15) / 16 * 16; /* 64-byte aligned tensors */
    if (n->np == 0) n->p0 = m->n_tensors;
    n->np++;
    m->n_tensors++;
    return LB_OK;
}

static int conv_out(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* Shape inference and parameters for one node whose inputs are resolved. */
static lb_status infer(lb_model *m, lb_node *n, const parse_ctx *c, const cJSON *l) {
    int ic, ih, iw;
    lb_node_in_shape(m, n, 0, &ic, &ih, &iw);
    const char *src_name = n->in[0] < 0 ? "input" : m->nodes[n->in[0]].name;
    lb_status s = LB_OK;
    n->c = ic; n->h = ih; n->w = iw;
    switch (n->op) {
    case LB_OP_CONV: {
        int oc = -1;
        if ((s = get_int(c, l, "out", -1, 1, MAX_DIM, &oc)) || (s = get_pair(c, l, "kernel", -1, 1, 64, &n->kh, &n->kw)) ||
            (s = get_pair(c, l, "stride", 1, 1, 64, &n->sh, &n->sw)) || (s = get_pair(c, l, "pad", 0, 0, 64, &n->ph, &n->pw)) ||
            (s = get_int(c, l, "group", 1, 1, MAX_DIM, &n->group)) || (s = get_bool(c, l, "bias", 1, &n->has_bias)))
            return s;
        if (oc < 0) return FAIL(c, "Conv needs 'out' (output channels)");
        if (n->kh < 0) return FAIL(c, "Conv needs 'kernel'");
        if (ic % n->group || oc % n->group)
            return FAIL(c, "group = %d must divide input channels (%d) and 'out' (%d)", n->group, ic, oc);
        if (n->kh > ih + 2 * n->ph || n->kw > iw + 2 * n->pw)
            return FAIL(c, "kernel %dx%d is larger than the padded input %dx%d from '%s'", n->kh, n->kw,
                        ih + 2 * n->ph, iw + 2 * n->pw, src_name);
        n->c = oc; n->h = conv_out(ih, n->kh, n->sh, n->ph); n->w = conv_out(iw, n->kw, n->sw, n->pw);
        int64_t ws[4] = {oc, ic / n->group, n->kh, n->kw}, bs[1] = {oc};
        if ((s = add_tensor(m, n, "weight", 4, ws, 1))) return s;
        if (n->has_bias && (s = add_tensor(m, n, "bias", 1, bs, 1))) return s;
        n->macs = (int64_t)n->h * n->w * oc * (ic / n->group) * n->kh * n->kw;
        break;
    }
    case LB_OP_GEMM: {
        int oc = -1;
        if ((s = get_int(c, l, "out", -1, 1, 1 << 24, &oc)) || (s = get_bool(c, l, "bias", 1, &n->has_bias))) return s;
        if (oc < 0) return FAIL(c, "Gemm needs 'out' (output features)");
        if (ih != 1 || iw != 1)
            return FAIL(c, "Gemm needs a flat input but '%s' gives %dx%dx%d; add a Flatten layer before it", src_name, ic, ih, iw);
        n->c = oc;
        int64_t ws[2] = {oc, ic}, bs[1] = {oc};
        if ((s = add_tensor(m, n, "weight", 2, ws, 1))) return s;
        if (n->has_bias && (s = add_tensor(m, n, "bias", 1, bs, 1))) return s;
        n->macs = (int64_t)oc * ic;
        break;
    }
    case LB_OP_BN: {
        if ((s = get_float(c, l, "eps", 1e-5f, &n->eps)) || (s = get_float(c, l, "momentum", 0.1f, &n->momentum))) return s;
        if (!(n->eps > 0)) return FAIL(c, "'eps' must be positive");
        if (!(n->momentum >= 0 && n->momentum <= 1)) return FAIL(c, "'momentum' must be in [0, 1]");
        int64_t cs[1] = {ic};
        if ((s = add_tensor(m, n, "weight", 1, cs, 1)) || (s = add_tensor(m, n, "bias", 1, cs, 1)) ||
            (s = add_tensor(m, n, "running_mean", 1, cs, 0)) || (s = add_tensor(m, n, "running_var", 1, cs, 0)))
            return s;
        break;
    }
    case LB_OP_CLIP:
        if ((s = get_float(c, l, "min", 0.0f, &n->lo)) || (s = get_float(c, l, "max", 1.0f, &n->hi))) return s;
        if (!(n->lo < n->hi)) return FAIL(c, "Clip needs min < max (got %g, %g)", n->lo, n->hi);
        break;
    case LB_OP_MAXPOOL:
    case LB_OP_AVGPOOL:
        if ((s = get_pair(c, l, "kernel", -1, 1, 64, &n->kh, &n->kw))) return s;
        if (n->kh < 0) return FAIL(c, "%s needs 'kernel'", lb_op_names[n->op]);
        if ((s = get_pair(c, l, "stride", n->kh, 1, 64, &n->sh, &n->sw)) || (s = get_pair(c, l, "pad", 0, 0, 64, &n->ph, &n->pw)))
            return s;
        if (!cJSON_GetObjectItemCaseSensitive(l, "stride")) { n->sh = n->kh; n->sw = n->kw; }
        if ((s = get_bool(c, l, "count_include_pad", 0, &n->count_include_pad))) return s;
        if (n->ph * 2 > n->kh || n->pw * 2 > n->kw) return FAIL(c, "pad must be at most half the kernel");
        if (n->kh > ih + 2 * n->ph || n->kw > iw + 2 * n->pw)
            return FAIL(c, "kernel %dx%d is larger than the padded input %dx%d from '%s'", n->kh, n->kw,
                        ih + 2 * n->ph, iw + 2 * n->pw, src_name);
        n->h = conv_out(ih, n->kh, n->sh, n->ph); n->w = conv_out(iw, n->kw, n->sw, n->pw);
        break;
    case LB_OP_GAP: n->h = n->w = 1; break;
    case LB_OP_FLATTEN: n->c = ic * ih * iw; n->h = n->w = 1; break;
    case LB_OP_DROPOUT:
        if ((s = get_float(c, l, "p", 0.5f, &n->p))) return s;
        if (!(n->p >= 0 && n->p < 1)) return FAIL(c, "Dropout 'p' must be in [0, 1)");
        break;
    case LB_OP_ADD: {
        int bc, bh, bw;
        lb_node_in_shape(m, n, 1, &bc, &bh, &bw);
        if (bc != ic || bh != ih || bw != iw)
            return FAIL(c, "Add inputs differ in shape: '%s' gives %dx%dx%d, '%s' gives %dx%dx%d", src_name, ic, ih, iw,
                        n->in[1] < 0 ? "input" : m->nodes[n->in[1]].name, bc, bh, bw);
        break;
    }
    case LB_OP_GATHER: {
        if (!m->seq_len || n->in[0] >= 0)
            return FAIL(c, "Gather (embedding) reads the token ids of a sequence model: \"input\": {\"tokens\": T}, and "
                        "must take the graph input");
        int e = -1;
        if ((s = get_int(c, l, "vocab", -1, 2, 1 << 24, &n->vocab)) || (s = get_int(c, l, "dim", -1, 1, MAX_DIM, &e))) return s;
        if (n->vocab < 0 || e < 0) return FAIL(c, "Gather needs 'vocab' (token ids) and 'dim' (embedding width)");
        n->c = e;
        int64_t ws[2] = {n->vocab, e};
        if ((s = add_tensor(m, n, "weight", 2, ws, 1))) return s;
        n->macs = 0; /* a lookup */
        break;
    }
    case LB_OP_LSTM:
    case LB_OP_GRU: {
        int hid = -1, g = n->op == LB_OP_LSTM ? 4 : 3;
        if ((s = get_int(c, l, "hidden", -1, 1, MAX_DIM, &hid)) || (s = get_bool(c, l, "bitrnn", 0, &n->bitrnn))) return s;
        if (hid < 0) return FAIL(c, "%s needs 'hidden' (units)", lb_op_names[n->op]);
        if (!m->seq_len) return FAIL(c, "%s needs a sequence model: \"input\": {\"tokens\": T}", lb_op_names[n->op]);
        if (ih != 1 || iw != 1) return FAIL(c, "%s needs a vector per time step but '%s' gives %dx%dx%d", lb_op_names[n->op],
                                            src_name, ic, ih, iw);
        n->c = hid;
        int64_t ws[2] = {(int64_t)g * hid, ic}, rs[2] = {(int64_t)g * hid, hid}, bs[1] = {(int64_t)2 * g * hid};
        /* ONNX's W, R and B (Wb then Rb), one direction */
        if ((s = add_tensor(m, n, "weight", 2, ws, 1)) || (s = add_tensor(m, n, "recurrence", 2, rs, 1)) ||
            (s = add_tensor(m, n, "bias", 1, bs, 1)))
            return s;
        n->has_bias = 1;
        n->macs = (int64_t)g * hid * (ic + hid); /* per time step */
        break;
    }
    case LB_OP_RELU: case LB_OP_COUNT: break;
    }
    if (m->seq_len && n->in[0] < 0 && n->op != LB_OP_GATHER)
        return FAIL(c, "the input of a sequence model is token ids: only a Gather (embedding) can read it");
    n->out_size = (int64_t)n->c * n->h * n->w;
    return LB_OK;
}

static lb_status parse_layer(lb_model *m, int li, const cJSON *l, const char *src) {
    parse_ctx c = {src, li, NULL};
    lb_node *n = &m->nodes[li];
    n->in[0] = n->in[1] = -1;
    if (!cJSON_IsObject(l)) return FAIL(&c, "must be an object");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(l, "name"), *op = cJSON_GetObjectItemCaseSensitive(l, "op");
    if (!cJSON_IsString(name) || !name->valuestring[0]) return FAIL(&c, "needs a non-empty string 'name'");
    c.lname = name->valuestring;
    if (strlen(name->valuestring) > 200 || strpbrk(name->valuestring, ". \"\\"))
        return FAIL(&c, "name must be at most 200 characters without '.', spaces, quotes or backslashes");
    if (!strcmp(name->valuestring, "input") || !strcmp(name->valuestring, "opt"))
        return FAIL(&c, "the name '%s' is reserved", name->valuestring);
    for (int j = 0; j < li; j++)
        if (!strcmp(m->nodes[j].name, name->valuestring)) return FAIL(&c, "duplicate layer name (also layers[%d])", j);
    if (!(n->name = lb_strdup(name->valuestring))) return lb_fail(LB_ERR_NOMEM, "out of memory");
    if (!cJSON_IsString(op)) return FAIL(&c, "needs a string 'op'");
    int k;
    for (k = 0; k < LB_OP_COUNT; k++)
        if (!strcmp(op->valuestring, lb_op_names[k])) break;
    if (k == LB_OP_COUNT) {
        char known[400] = "";
        for (int j = 0; j < LB_OP_COUNT; j++) { strcat(known, j ? ", " : ""); strcat(known, lb_op_names[j]); }
        return FAIL(&c, "unknown op '%s' (known: %s)", op->valuestring, known);
    }
    n->op = (lb_op)k;
    for (const cJSON *kv = l->child; kv; kv = kv->next)
        if (strcmp(kv->string, "name") && strcmp(kv->string, "op") && strcmp(kv->string, "inputs") && !has_word(op_keys[k], kv->string))
            return FAIL(&c, "unknown key '%s' for %s (accepted: name, op, inputs%s%s)", kv->string, lb_op_names[k],
                        op_keys[k][0] ? ", " : "", op_keys[k]);
    n->nin = n->op == LB_OP_ADD ? 2 : 1;
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(l, "inputs");
    if (!ins) {
        if (n->nin == 2) return FAIL(&c, "Add needs 'inputs': [a, b]");
        n->in[0] = li - 1;
    } else {
        if (!cJSON_IsArray(ins) || cJSON_GetArraySize(ins) != n->nin)
            return FAIL(&c, "'inputs' must be an array of %d layer name%s", n->nin, n->nin > 1 ? "s" : "");
        for (int i = 0; i < n->nin; i++) {
            const cJSON *e = cJSON_GetArrayItem(ins, i);
            if (!cJSON_IsString(e)) return FAIL(&c, "'inputs'[%d] must be a layer name", i);
            int j = -1;
            if (strcmp(e->valuestring, "input")) {
                for (j = 0; j < li; j++)
                    if (!strcmp(m->nodes[j].name, e->valuestring)) break;
                if (j == li)
                    return FAIL(&c, "'inputs'[%d] = '%s' is not an earlier layer (layers must be listed in order)", i, e->valuestring);
            }
            n->in[i] = j;
        }
    }
    return infer(m, n, &c, l);
}

/* Reverse pass over the nodes: the first consumer met (the last in forward order)
 * overwrites a tensor's gradient, later ones accumulate. */
static lb_status plan_backward(lb_model *m, const char *src) {
    int *written = calloc((size_t)m->n_nodes, sizeof(int));
    if (!written) return lb_fail(LB_ERR_NOMEM, "out of memory");
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        lb_node *n = &m->nodes[i];
        if (i < m->n_nodes - 1 && !written[i]) {
            free(written);
            return lb_fail(LB_ERR_INVALID, "%s: layer '%s' is not used by any later layer (the last layer is the output)", src, n->name);
        }
        for (int k = 0; k < n->nin; k++) {
            int p = n->in[k];
            n->need_din[k] = p >= 0;
            if (p < 0) continue;
            n->acc[k] = written[p];
            written[p] = 1;
        }
    }
    free(written);
    /* BN -> Relu fusion where the Relu is the BN's only consumer; LOWBIT_REF=1 keeps
     * every op separate (the reference path the fused one is tested against) */
    const char *ref = getenv("LOWBIT_REF");
    for (int i = 0; i + 1 < m->n_nodes && !(ref && ref[0] == '1'); i++) {
        lb_node *n = &m->nodes[i];
        if (n->op != LB_OP_BN) continue;
        int consumers = 0, relu = -1;
        for (int j = i + 1; j < m->n_nodes; j++)
            for (int k = 0; k < m->nodes[j].nin; k++)
                if (m->nodes[j].in[k] == i) { consumers++; relu = m->nodes[j].op == LB_OP_RELU ? j : -1; }
        if (consumers == 1 && relu >= 0) { n->fuse_relu = 1; m->nodes[relu].fused = 1; }
    }
    return LB_OK;
}

static lb_status build(lb_model *m, const cJSON *root, const char *src) {
    parse_ctx c = {src, -1, NULL};
    if (!cJSON_IsObject(root)) return FAIL(&c, "the spec must be a JSON object");
    for (const cJSON *kv = root->child; kv; kv = kv->next)
        if (!has_word("name description input layers quant recipe", kv->string))
            return FAIL(&c, "unknown top-level key '%s' (accepted: name, description, input, layers, quant, recipe)", kv->string);
    const cJSON *recipe = cJSON_GetObjectItemCaseSensitive(root, "recipe");
    if (recipe && (!cJSON_IsString(recipe) || strlen(recipe->valuestring) > 200))
        return FAIL(&c, "'recipe' must be a string such as \"adam lr=1e-3 batch=20 clip=10\" (at most 200 characters)");
    if (recipe && !(m->recipe = lb_strdup(recipe->valuestring))) return lb_fail(LB_ERR_NOMEM, "out of memory");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (name && !cJSON_IsString(name)) return FAIL(&c, "'name' must be a string");
    if (!(m->name = lb_strdup(name ? name->valuestring : "model"))) return lb_fail(LB_ERR_NOMEM, "out of memory");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    int dims[3] = {1, 1, 1}, nd = cJSON_GetArraySize(in);
    if (cJSON_IsObject(in)) { /* {"tokens": T, "level": "word"|"char"}: a sequence model */
        nd = 0;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(in, "tokens"), *lv = cJSON_GetObjectItemCaseSensitive(in, "level");
        for (const cJSON *kv = in->child; kv; kv = kv->next)
            if (!has_word("tokens level", kv->string))
                return FAIL(&c, "unknown key 'input'.%s (accepted: tokens, level)", kv->string);
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 1 || t->valuedouble > 100000)
            return FAIL(&c, "'input'.tokens (time steps per sequence) must be an integer in [1, 100000]");
        if (lv && (!cJSON_IsString(lv) || (strcmp(lv->valuestring, "word") && strcmp(lv->valuestring, "char"))))
            return FAIL(&c, "'input'.level must be \"word\" or \"char\"");
        m->seq_len = m->seq_T = (int)t->valuedouble;
        m->text_level = lv && !strcmp(lv->valuestring, "char");
    } else if (!cJSON_IsArray(in) || (nd != 1 && nd != 3)) {
        return FAIL(&c, "'input' must be [C, H, W], [features] or {\"tokens\": T, \"level\": \"word\"}");
    }
    for (int i = 0; i < nd; i++) {
        const cJSON *e = cJSON_GetArrayItem(in, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 1 || e->valuedouble > MAX_DIM)
            return FAIL(&c, "'input'[%d] must be an integer in [1, %d]", i, MAX_DIM);
        dims[i] = (int)e->valuedouble;
    }
    m->in_c = dims[0]; m->in_h = dims[1]; m->in_w = dims[2];
    m->in_size = (int64_t)m->in_c * m->in_h * m->in_w;
    if (m->in_size > (1 << 26)) return FAIL(&c, "'input' is too large");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) < 1) return FAIL(&c, "'layers' must be a non-empty array");
    int nl = cJSON_GetArraySize(layers);
    if (nl > MAX_LAYERS) return FAIL(&c, "too many layers (%d, limit %d)", nl, MAX_LAYERS);
    m->nodes = calloc((size_t)nl, sizeof(lb_node));
    if (!m->nodes) return lb_fail(LB_ERR_NOMEM, "out of memory");
    int li = 0;
    for (const cJSON *l = layers->child; l; l = l->next, li++) {
        m->n_nodes = li + 1;
        lb_status s = parse_layer(m, li, l, src);
        if (s) return s;
        const lb_node *n = &m->nodes[li];
        if (n->h < 1 || n->w < 1) {
            c.li = li; c.lname = n->name;
            return FAIL(&c, "output would be empty (%dx%d)", n->h, n->w);
        }
        if (n->out_size > (1 << 26) || m->n_params > ((int64_t)1 << 31)) {
            c.li = li; c.lname = n->name;
            return FAIL(&c, "layer is too large");
        }
    }
    const lb_node *out = &m->nodes[m->n_nodes - 1];
    if (out->h != 1 || out->w != 1 || out->c < 2)
        return lb_fail(LB_ERR_INVALID, "%s: the last layer ('%s') must output a vector of at least 2 classes, got %dx%dx%d",
                       src, out->name, out->c, out->h, out->w);
    lb_status s = plan_backward(m, src);
    if (s) return s;
    return lb_graph_parse_quant(m, cJSON_GetObjectItemCaseSensitive(root, "quant"), src);
}

lb_status lb_model_create_from_json(lb_model **out, const char *json, size_t len, const char *source) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        long off = e && e >= json && e <= json + len ? (long)(e - json) : -1;
        int line = 1;
        for (long i = 0; i < off; i++) line += json[i] == '\n';
        return lb_fail(LB_ERR_FORMAT, "%s: invalid JSON near line %d (byte %ld)", source, line, off);
    }
    lb_model *m = calloc(1, sizeof *m);
    if (!m) { cJSON_Delete(root); return lb_fail(LB_ERR_NOMEM, "out of memory"); }
    lb_status s = build(m, root, source);
    cJSON_Delete(root);
    if (!s && (!(m->spec_json = malloc(len + 1)) || !(m->source = lb_strdup(source))))
        s = lb_fail(LB_ERR_NOMEM, "out of memory");
    if (!s) {
        memcpy(m->spec_json, json, len);
        m->spec_json[len] = 0;
        m->params = lb_calloc((size_t)m->n_params, sizeof(float));
        m->grads = lb_calloc((size_t)m->n_params, sizeof(float));
        if (!m->params || !m->grads) s = lb_fail(LB_ERR_NOMEM, "%s: cannot allocate %lld parameters", source, (long long)m->n_params);
    }
    if (s) { lb_model_destroy(m); return s; }
    for (int i = 0; i < m->n_nodes; i++) {
        lb_node *n = &m->nodes[i];
        if (n->np) { n->weff = m->params + m->tensors[n->p0].offset; n->dweff = m->grads + m->tensors[n->p0].offset; }
    }
    lb_model_init_params(m, 0);
    if ((s = lb_model_set_quant(m, NULL, 0))) { lb_model_destroy(m); return s; }
    *out = m;
    return LB_OK;
}

lb_status lb_model_create(lb_model **out, const char *path) {
    uint8_t *buf;
    size_t len;
    *out = NULL;
    lb_status s = lb_read_file(path, 16 << 20, &buf, &len);
    if (s) return s;
    s = lb_model_create_from_json(out, (const char *)buf, len, path);
    free(buf);
    return s;
}

void lb_model_destroy(lb_model *m) {
    if (!m) return;
    lb_graph_free_quant(m);
    for (int i = 0; i < m->n_nodes; i++) free(m->nodes[i].name);
    for (int i = 0; i < m->n_tensors; i++) free(m->tensors[i].name);
    free(m->nodes);
    free(m->tensors);
    free(m->name);
    free(m->spec_json);
    free(m->source);
    free(m->recipe);
    lb_free(m->params);
    lb_free(m->grads);
    lb_free(m->act_block);
    free(m);
}

/* PyTorch's defaults: Conv/Linear weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
 * (kaiming_uniform with a = sqrt(5)); BN weight 1, bias 0, running mean 0, var 1. */
void lb_model_init_params(lb_model *m, uint64_t seed) {
    uint64_t key = lb_rng_key(seed, LB_RNG_INIT);
    for (int ni = 0; ni < m->n_nodes; ni++) {
        lb_node *n = &m->nodes[ni];
        for (int k = 0; k < n->np; k++) {
            lb_tensor_entry *t = &m->tensors[n->p0 + k];
            float *d = m->params + t->offset;
            if (n->op == LB_OP_BN) {
                float v = (k == 0 || k == 3) ? 1.0f : 0.0f;
                for (int64_t i = 0; i < t->size; i++) d[i] = v;
                continue;
            }
            const lb_tensor_entry *w = &m->tensors[n->p0];
            int64_t fan_in = w->size / w->shape[0];
            float bound = 1.0f / sqrtf((float)fan_in);
            /* an embedding as PyTorch's word_language_model example initialises it; LSTM
             * and GRU as nn.LSTM/nn.GRU: every tensor U(-1/sqrt(H), 1/sqrt(H)) */
            if (n->op == LB_OP_GATHER) bound = 0.1f;
            if (lb_op_is_rnn(n->op)) bound = 1.0f / sqrtf((float)n->c);
            lb_rng_uniform(d, t->size, -bound, bound, key, (uint64_t)(n->p0 + k));
        }
    }
    m->dropout_key = lb_rng_key(seed, LB_RNG_DROPOUT);
}

int lb_model_find_tensor(const lb_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return i;
    return -1;
}

void lb_model_input_shape(const lb_model *m, int *c, int *h, int *w) { *c = m->in_c; *h = m->in_h; *w = m->in_w; }
int lb_model_num_outputs(const lb_model *m) { return m->nodes[m->n_nodes - 1].c; }
const char *lb_model_name(const lb_model *m) { return m->name; }
const char *lb_model_spec_json(const lb_model *m) { return m->spec_json; }
int lb_model_num_layers(const lb_model *m) { return m->n_nodes; }

void lb_model_layer_info(const lb_model *m, int i, lb_layer_info *info) {
    const lb_node *n = &m->nodes[i];
    info->name = n->name;
    info->op = lb_op_names[n->op];
    info->out_c = n->c; info->out_h = n->h; info->out_w = n->w;
    info->params = 0;
    for (int k = 0; k < n->np; k++)
        if (m->tensors[n->p0 + k].trainable) info->params += m->tensors[n->p0 + k].size;
    info->macs = n->macs;
}

int64_t lb_model_num_params(const lb_model *m) {
    int64_t s = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].trainable) s += m->tensors[i].size;
    return s;
}

int lb_model_num_tensors(const lb_model *m) { return m->n_tensors; }

void lb_model_tensor(const lb_model *m, int i, lb_param_info *info) {
    const lb_tensor_entry *t = &m->tensors[i];
    info->name = t->name;
    info->data = m->params + t->offset;
    info->ndim = t->ndim;
    for (int k = 0; k < 4; k++) info->shape[k] = k < t->ndim ? t->shape[k] : 1;
    info->size = t->size;
    info->trainable = t->trainable;
}
