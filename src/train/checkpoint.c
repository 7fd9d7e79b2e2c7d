/* Checkpoints as safetensors: tensors by "layer.param" name (PyTorch layout, so numpy
 * and PyTorch read them directly), optimizer state under "opt.", and the spec and
 * training position in __metadata__ (string values, as the format requires). */
#include "train/train.h"
#include "quant/quant.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_META = 14 };

lb_status lb_ckpt_write(const lb_model *m, const lb_optim *o, const lb_ckpt_meta *meta, const char *path) {
    int nopt = o ? (o->m2 ? 2 : 1) : 0, ntr = 0;
    for (int i = 0; i < m->n_tensors; i++) ntr += m->tensors[i].trainable;
    size_t total = (size_t)m->n_tensors + (size_t)(nopt * ntr);
    lb_st_entry *e = calloc(total, sizeof *e);
    char **names = calloc(total, sizeof *names);
    lb_status s = LB_OK;
    if (!e || !names) { s = lb_fail(LB_ERR_NOMEM, "%s: out of memory", path); goto done; }
    int k = 0;
    for (int i = 0; i < m->n_tensors; i++, k++) {
        const lb_tensor_entry *t = &m->tensors[i];
        e[k] = (lb_st_entry){t->name, "F32", t->ndim, {0}, m->params + t->offset};
        memcpy(e[k].shape, t->shape, sizeof t->shape);
    }
    for (int j = 0; j < nopt; j++)
        for (int i = 0; i < m->n_tensors; i++) {
            const lb_tensor_entry *t = &m->tensors[i];
            if (!t->trainable) continue;
            size_t len = strlen(t->name) + 16;
            if (!(names[k] = malloc(len))) { s = lb_fail(LB_ERR_NOMEM, "%s: out of memory", path); goto done; }
            snprintf(names[k], len, "opt.%s.m%d", t->name, j + 1);
            e[k] = (lb_st_entry){names[k], "F32", t->ndim, {0}, (j ? o->m2 : o->m1) + t->offset};
            memcpy(e[k].shape, t->shape, sizeof t->shape);
            k++;
        }
    char num[6][32];
    const char *keys[MAX_META], *vals[MAX_META];
    int nm = 0;
    keys[nm] = "format"; vals[nm++] = "lowbit-checkpoint-1";
    keys[nm] = "lowbit_version"; vals[nm++] = lb_version();
    keys[nm] = "spec"; vals[nm++] = m->spec_json;
    keys[nm] = "quant"; vals[nm++] = lb_model_quant(m);
    keys[nm] = "quant_all"; vals[nm++] = m->quant_all ? "1" : "0";
    if (meta) {
        snprintf(num[0], 32, "%d", meta->epoch);
        snprintf(num[1], 32, "%" PRId64, meta->step);
        snprintf(num[2], 32, "%" PRIu64, meta->seed);
        snprintf(num[3], 32, "%" PRId64, meta->batch);
        snprintf(num[4], 32, "%" PRId64, meta->steps_per_epoch);
        keys[nm] = "epoch"; vals[nm++] = num[0];
        keys[nm] = "step"; vals[nm++] = num[1];
        keys[nm] = "seed"; vals[nm++] = num[2];
        keys[nm] = "batch"; vals[nm++] = num[3];
        keys[nm] = "steps_per_epoch"; vals[nm++] = num[4];
        /* the generator is counter-based: (seed, step) is the whole RNG state */
        keys[nm] = "rng"; vals[nm++] = "philox4x32-10; keys from (seed, purpose), counters from (epoch|step, index)";
        if (meta->config_json) { keys[nm] = "train_config"; vals[nm++] = meta->config_json; }
        if (meta->vocab_json) { keys[nm] = "vocab"; vals[nm++] = meta->vocab_json; }
    }
    s = lb_st_write(path, e, (int)total, keys, vals, nm);
done:
    if (names)
        for (size_t i = 0; i < total; i++) free(names[i]);
    free(names);
    free(e);
    return s;
}

static lb_status copy_f32(const lb_st_file *f, const char *path, const char *name, const lb_tensor_entry *t, float *dst) {
    const lb_st_tensor *st = lb_st_find(f, name);
    if (!st) return lb_fail(LB_ERR_FORMAT, "%s: tensor '%s' is missing (is this checkpoint for this model?)", path, name);
    if (strcmp(st->dtype, "F32")) return lb_fail(LB_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32", path, name, st->dtype);
    int same = st->ndim == t->ndim;
    for (int i = 0; same && i < t->ndim; i++) same = st->shape[i] == t->shape[i];
    if (!same) {
        char a[96] = "", b[96] = "";
        for (int i = 0; i < t->ndim; i++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%" PRId64, i ? "," : "", t->shape[i]);
        for (int i = 0; i < st->ndim && i < 8; i++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%" PRId64, i ? "," : "", st->shape[i]);
        return lb_fail(LB_ERR_FORMAT, "%s: tensor '%s' has shape [%s], the model expects [%s]", path, name, b, a);
    }
    memcpy(dst, f->data + st->begin, sizeof(float) * (size_t)t->size);
    return LB_OK;
}

/* optional key: absent or malformed leaves *out unchanged, and sets no error */
static void meta_int_opt(const lb_st_file *f, const char *key, int64_t *out) {
    const char *v = lb_st_meta(f, key);
    char *end;
    if (!v) return;
    long long x = strtoll(v, &end, 10);
    if (end != v && !*end && x >= 0) *out = x;
}

static lb_status meta_int(const lb_st_file *f, const char *path, const char *key, int64_t *out) {
    const char *v = lb_st_meta(f, key);
    char *end;
    if (!v) return lb_fail(LB_ERR_FORMAT, "%s: __metadata__ has no '%s' (not a lowbit training checkpoint?)", path, key);
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || x < 0) return lb_fail(LB_ERR_FORMAT, "%s: __metadata__ '%s' = '%s' is not a non-negative integer", path, key, v);
    *out = x;
    return LB_OK;
}

/* lb_ckpt_read on an already-parsed file (borrowed) */
static lb_status read_parsed(lb_model *m, lb_optim *o, lb_ckpt_meta *meta, const lb_st_file *f, const char *path) {
    lb_status s = LB_OK;
    /* read everything into scratch first so a bad file leaves the model untouched */
    float *p = lb_alloc(sizeof(float) * (size_t)m->n_params), *m1 = NULL, *m2 = NULL;
    if (!p) { s = lb_fail(LB_ERR_NOMEM, "%s: out of memory", path); goto done; }
    memcpy(p, m->params, sizeof(float) * (size_t)m->n_params);
    /* a quantizer's tensors may be missing from a float checkpoint (--init, the papers'
     * fine-tuning from float): that quantizer is initialised from the weights instead */
    int *missing = calloc((size_t)m->n_quants + 1, sizeof(int));
    if (!missing) { s = lb_fail(LB_ERR_NOMEM, "%s: out of memory", path); goto done; }
    for (int i = 0; i < m->n_tensors && !s; i++) {
        const lb_tensor_entry *t = &m->tensors[i];
        if (t->qowner >= 0 && !o && !lb_st_find(f, t->name)) { missing[t->qowner] = 1; continue; }
        s = copy_f32(f, path, t->name, t, p + t->offset);
    }
    if (!s)
        for (int i = 0; i < m->n_quants; i++)
            if (m->quants[i]->nlearn) m->quants[i]->initialized = !missing[i];
    free(missing);
    if (!s && o) {
        m1 = lb_calloc((size_t)m->n_params, sizeof(float));
        m2 = o->m2 ? lb_calloc((size_t)m->n_params, sizeof(float)) : NULL;
        if (!m1 || (o->m2 && !m2)) s = lb_fail(LB_ERR_NOMEM, "%s: out of memory", path);
        for (int j = 0; j < (o->m2 ? 2 : 1) && !s; j++)
            for (int i = 0; i < m->n_tensors && !s; i++) {
                const lb_tensor_entry *t = &m->tensors[i];
                if (!t->trainable) continue;
                char name[512];
                snprintf(name, sizeof name, "opt.%s.m%d", t->name, j + 1);
                s = copy_f32(f, path, name, t, (j ? m2 : m1) + t->offset);
            }
    }
    if (!s && meta) {
        int64_t ep = 0, seed = 0;
        *meta = (lb_ckpt_meta){0};
        if (o) {
            if ((s = meta_int(f, path, "step", &meta->step)) || (s = meta_int(f, path, "epoch", &ep)) ||
                (s = meta_int(f, path, "seed", &seed)) || (s = meta_int(f, path, "batch", &meta->batch)) ||
                (s = meta_int(f, path, "steps_per_epoch", &meta->steps_per_epoch)))
                goto done;
        } else {
            /* weights only (--init, eval): a file from another tool may have no metadata */
            meta_int_opt(f, "step", &meta->step);
            meta_int_opt(f, "epoch", &ep);
            meta_int_opt(f, "seed", &seed);
        }
        meta->epoch = (int)ep;
        meta->seed = (uint64_t)seed;
    }
    if (!s) {
        memcpy(m->params, p, sizeof(float) * (size_t)m->n_params);
        if (o) {
            memcpy(o->m1, m1, sizeof(float) * (size_t)m->n_params);
            if (o->m2) memcpy(o->m2, m2, sizeof(float) * (size_t)m->n_params);
        }
    }
done:
    lb_free(p);
    lb_free(m1);
    lb_free(m2);
    return s;
}

lb_status lb_ckpt_read(lb_model *m, lb_optim *o, lb_ckpt_meta *meta, const char *path) {
    lb_st_file f;
    lb_status s = lb_st_read(path, &f);
    if (s) return s;
    s = read_parsed(m, o, meta, &f, path);
    lb_st_free(&f);
    return s;
}

lb_status lb_model_create_from_checkpoint(lb_model **out, const char *path) {
    *out = NULL;
    lb_st_file f;
    lb_status s = lb_st_read(path, &f);
    if (s) return s;
    const char *spec = lb_st_meta(&f, "spec");
    char src[1024];
    snprintf(src, sizeof src, "%s: __metadata__ 'spec'", path);
    if (!spec) s = lb_fail(LB_ERR_FORMAT, "%s: no model spec in __metadata__ (not written by lowbit?); give the model explicitly", path);
    else s = lb_model_create_from_json(out, spec, strlen(spec), src);
    const char *quant = lb_st_meta(&f, "quant"), *all = lb_st_meta(&f, "quant_all");
    if (!s && quant && (s = lb_model_set_quant(*out, quant, all && !strcmp(all, "1")))) {
        lb_model_destroy(*out);
        *out = NULL;
        char pre[1100];
        snprintf(pre, sizeof pre, "%s: __metadata__ 'quant'", path);
        lb_error_prefix(pre);
    }
    if (!s && (s = read_parsed(*out, NULL, NULL, &f, path))) {
        lb_model_destroy(*out);
        *out = NULL;
    }
    lb_st_free(&f);
    return s;
}

lb_status lb_checkpoint_save(const lb_model *m, const char *path) { return lb_ckpt_write(m, NULL, NULL, path); }

lb_status lb_checkpoint_load(lb_model *m, const char *path, lb_ckpt_state *state) {
    lb_ckpt_meta meta;
    lb_status s = lb_ckpt_read(m, NULL, &meta, path);
    if (!s && state) *state = (lb_ckpt_state){meta.step, meta.epoch, meta.seed};
    return s;
}

lb_status lb_checkpoint_meta(const char *path, const char *key, char *buf, size_t n) {
    lb_st_file f;
    lb_status s = lb_st_read(path, &f);
    if (s) return s;
    const char *v = lb_st_meta(&f, key);
    if (!v) s = lb_fail(LB_ERR_FORMAT, "%s: __metadata__ has no '%s'", path, key);
    else if (strlen(v) >= n) s = lb_fail(LB_ERR_FORMAT, "%s: __metadata__ '%s' is too long", path, key);
    else strcpy(buf, v);
    lb_st_free(&f);
    return s;
}
