/* Image classification data sets from IDX pairs (Fashion-MNIST and anything shaped
 * like it), held in memory as normalised float32. */
#include "lb_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#define FMNIST_NAME "fashion-mnist"
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define FMNIST_HINT "install the Debian package dataset-fashion-mnist, or run scripts/install-deps.sh"

/* Fashion-MNIST's training-set pixel mean and standard deviation after scaling to
 * [0, 1] (0.2860, 0.3530), as in DESIGN.md section 4 and the PyTorch reference
 * recipe, so that results compare with torchvision's Normalize((0.286,), (0.353,)).
 * Other 1-channel IDX data gets the same constants: per-set statistics would make a
 * checkpoint's expected input depend on which file it was trained from. */
#define GREY_MEAN 0.286f
#define GREY_STD 0.353f

static const char *const split_name[2] = {"train", "test"};
static const char *const file_prefix[2] = {"train", "t10k"};

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Rewrite the current message as "<prefix>: <message><suffix>" (the buffer cannot be
 * passed to lb_fail while it is being written). */
static lb_status refail(lb_status s, const char *prefix, const char *suffix) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", lb_last_error());
    return lb_fail(s, "%s: %s%s", prefix, msg, suffix);
}

static char *path_join(const char *dir, const char *name, const char *ext) {
    size_t n = strlen(dir) + strlen(name) + strlen(ext) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", name, ext);
    return p;
}

/* DIR/NAME.gz if it exists, else DIR/NAME. */
static lb_status find_in_dir(const char *dir, const char *name, char **out) {
    *out = NULL;
    char *gz = path_join(dir, name, ".gz"), *plain = path_join(dir, name, "");
    if (!gz || !plain) {
        free(gz);
        free(plain);
        return lb_fail(LB_ERR_NOMEM, "%s: out of memory", dir);
    }
    if (exists(gz)) {
        *out = gz;
        free(plain);
        return LB_OK;
    }
    if (exists(plain)) {
        *out = plain;
        free(gz);
        return LB_OK;
    }
    lb_status s = lb_fail(LB_ERR_IO, "%s: cannot open: neither %s nor %s exists", dir, gz, plain);
    free(gz);
    free(plain);
    return s;
}

/* Read both files and build the data set; messages name the file at fault. */
static int is_npy(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && !strcmp(path + n - 4, ".npy");
}

/* One file of a pair, IDX or .npy, as raw elements: images are u8 (dtype 'u') or
 * float32 ('f'), labels u8, i32 or i64. `what` names the role in messages. */
typedef struct raw_array {
    void *data;
    char kind;               /* 'u' u8, 'f' f32, 'i' i32, 'l' i64 */
    int ndim;
    int64_t dims[4];
    int npy;                 /* data is owned by an lb_npy (lb_npy_free) rather than free() */
    lb_npy arr;
} raw_array;

static lb_status read_raw(const char *path, raw_array *r) {
    memset(r, 0, sizeof *r);
    if (is_npy(path)) {
        lb_status s = lb_npy_read(path, &r->arr);
        if (s != LB_OK) return s;
        r->npy = 1;
        r->data = r->arr.data;
        r->kind = !strcmp(r->arr.dtype, "u1") ? 'u' : !strcmp(r->arr.dtype, "f4") ? 'f' : !strcmp(r->arr.dtype, "i4") ? 'i' : 'l';
        if (r->arr.ndim > 4) return lb_fail(LB_ERR_FORMAT, "%s: shape has %d dims, at most 4 are allowed", path, r->arr.ndim);
        r->ndim = r->arr.ndim;
        for (int i = 0; i < r->ndim; i++) r->dims[i] = r->arr.shape[i];
        return LB_OK;
    }
    int t;
    lb_status s = lb_idx_read(path, &r->data, &t, &r->ndim, r->dims);
    if (s != LB_OK) return s;
    if (t != 0x08) return lb_fail(LB_ERR_FORMAT, "%s: type byte 0x%02x: must be unsigned bytes (0x08)", path, t);
    r->kind = 'u';
    return LB_OK;
}

static void free_raw(raw_array *r) {
    if (r->npy) lb_npy_free(&r->arr);
    else free(r->data);
    memset(r, 0, sizeof *r);
}

enum { MAX_LABEL = 1 << 20 };

/* Images: IDX unsigned bytes, or .npy u1 / f4, shaped [n, h, w] or [n, c, h, w]. Bytes
 * are scaled by 1/255 (and normalised when there is one channel); float32 .npy images
 * are taken as already normalised. Labels: IDX bytes or .npy u1 / i4 / i8, shaped [n],
 * values in [0, 2^20). */
static lb_status load_pair(const char *img_path, const char *lbl_path, const char *source, lb_dataset **out) {
    raw_array im, lb;
    lb_dataset *d = NULL;
    memset(&lb, 0, sizeof lb);
    lb_status s = read_raw(img_path, &im);
    if (s != LB_OK) goto done;
    if (im.kind != 'u' && im.kind != 'f') {
        s = lb_fail(LB_ERR_FORMAT, "%s: images must be unsigned bytes or float32", img_path);
        goto done;
    }
    if (im.ndim != 3 && im.ndim != 4) {
        s = lb_fail(LB_ERR_FORMAT, "%s: %d dims: images must have 3 dims (n, h, w) or 4 (n, c, h, w)", img_path, im.ndim);
        goto done;
    }
    int64_t n = im.dims[0];
    int64_t c = im.ndim == 4 ? im.dims[1] : 1, h = im.dims[im.ndim - 2], w = im.dims[im.ndim - 1];
    /* per-sample sizes are ints in lb_dataset and in the model code */
    if (n < 1 || c < 1 || h < 1 || w < 1 || c > INT_MAX || h > INT_MAX || w > INT_MAX || c * h > INT_MAX / w) {
        s = lb_fail(LB_ERR_FORMAT, "%s: dims: %lld samples of %lld x %lld x %lld is not a usable data set", img_path,
                    (long long)n, (long long)c, (long long)h, (long long)w);
        goto done;
    }

    if ((s = read_raw(lbl_path, &lb)) != LB_OK) goto done;
    if (lb.kind == 'f') {
        s = lb_fail(LB_ERR_FORMAT, "%s: labels must be integers (u1, i4 or i8), not float32", lbl_path);
        goto done;
    }
    if (lb.ndim != 1) {
        s = lb_fail(LB_ERR_FORMAT, "%s: %d dims: labels must have 1 dim", lbl_path, lb.ndim);
        goto done;
    }
    if (lb.dims[0] != n) {
        s = lb_fail(LB_ERR_FORMAT, "%s has %lld labels but %s has %lld images", lbl_path, (long long)lb.dims[0],
                    img_path, (long long)n);
        goto done;
    }

    size_t per = (size_t)(c * h * w), total, xbytes;
    if (!lb_mul_ok((size_t)n, per, &total) || !lb_mul_ok(total, sizeof(float), &xbytes)) {
        s = lb_fail(LB_ERR_FORMAT, "%s: dims: data set too large", img_path);
        goto done;
    }
    d = calloc(1, sizeof *d);
    if (!d || !(d->x = lb_alloc(xbytes)) || !(d->y = lb_alloc((size_t)n * sizeof(int32_t))) ||
        !(d->source = lb_strdup(source))) {
        s = lb_fail(LB_ERR_NOMEM, "%s: cannot allocate %zu bytes for the images", img_path, xbytes);
        goto done;
    }
    d->n = n;
    d->c = (int)c;
    d->h = (int)h;
    d->w = (int)w;

    int64_t maxl = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = lb.kind == 'u' ? ((const uint8_t *)lb.data)[i]
                  : lb.kind == 'i' ? ((const int32_t *)lb.data)[i] : ((const int64_t *)lb.data)[i];
        if (v < 0 || v >= MAX_LABEL) {
            s = lb_fail(LB_ERR_FORMAT, "%s: label [%lld] = %lld is outside [0, %d)", lbl_path, (long long)i, (long long)v, MAX_LABEL);
            goto done;
        }
        d->y[i] = (int32_t)v;
        maxl = v > maxl ? v : maxl;
    }
    d->num_classes = (int)LB_MAX(maxl + 1, 2);

    float *x = d->x;
    if (im.kind == 'f') {
        const float *src = im.data;
        for (size_t i = 0; i < total; i++)
            if (!isfinite(src[i])) {
                s = lb_fail(LB_ERR_FORMAT, "%s: element %zu is not finite", img_path, i);
                goto done;
            }
        memcpy(x, src, xbytes);
    } else {
        /* A table keeps the conversion exact and identical to torchvision's float32
         * ToTensor()/Normalize() arithmetic: (p / 255 - mean) / std, each step in float. */
        float lut[256];
        for (int p = 0; p < 256; p++) {
            float v = (float)p / 255.0f;
            lut[p] = c == 1 ? (v - GREY_MEAN) / GREY_STD : v;
        }
        const uint8_t *px = im.data;
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < (int64_t)total; i++) x[i] = lut[px[i]];
    }
    *out = d;
    d = NULL;
    s = LB_OK;

done:
    free_raw(&im);
    free_raw(&lb);
    lb_dataset_free(d);
    return s;
}

lb_status lb_dataset_load(lb_dataset **out, const char *spec, lb_split split) {
    if (!out) return lb_fail(LB_ERR_INVALID, "lb_dataset_load: NULL out");
    *out = NULL;
    if (!spec || !spec[0]) return lb_fail(LB_ERR_INVALID, "data: empty data set name");
    if (split != LB_SPLIT_TRAIN && split != LB_SPLIT_TEST)
        return lb_fail(LB_ERR_INVALID, "%s: split %d: expected train (0) or test (1)", spec, (int)split);

    char src[1100];
    char *img = NULL, *lbl = NULL;
    lb_status s;
    char img_name[64], lbl_name[64];
    snprintf(img_name, sizeof img_name, "%s-images-idx3-ubyte", file_prefix[split]);
    snprintf(lbl_name, sizeof lbl_name, "%s-labels-idx1-ubyte", file_prefix[split]);

    /* The name wins over a same-named directory in the working directory, so that
     * "fashion-mnist" means the same thing wherever the CLI runs; "./fashion-mnist"
     * still selects the local directory. */
    if (!strcmp(spec, FMNIST_NAME)) {
        img = path_join(FMNIST_DIR, img_name, ".gz");
        lbl = path_join(FMNIST_DIR, lbl_name, ".gz");
        if (!img || !lbl) {
            s = lb_fail(LB_ERR_NOMEM, "%s: out of memory", spec);
            goto done;
        }
        snprintf(src, sizeof src, "%s (%s)", FMNIST_NAME, split_name[split]);
        s = load_pair(img, lbl, src, out);
        if (s == LB_ERR_IO) s = refail(s, FMNIST_NAME, " (" FMNIST_HINT ")");
        else if (s != LB_OK) s = refail(s, FMNIST_NAME, "");
        goto done;
    }
    if (is_dir(spec)) {
        if ((s = find_in_dir(spec, img_name, &img)) != LB_OK) goto done;
        if ((s = find_in_dir(spec, lbl_name, &lbl)) != LB_OK) goto done;
        snprintf(src, sizeof src, "%s (%s)", spec, split_name[split]);
        s = load_pair(img, lbl, src, out);
        goto done;
    }
    const char *comma = strchr(spec, ',');
    if (comma) {
        size_t n1 = (size_t)(comma - spec);
        if (n1 == 0 || !comma[1] || strchr(comma + 1, ',')) {
            s = lb_fail(LB_ERR_INVALID, "%s: expected IMAGES,LABELS (two IDX or .npy paths separated by one comma)", spec);
            goto done;
        }
        img = malloc(n1 + 1);
        lbl = lb_strdup(comma + 1);
        if (!img || !lbl) {
            s = lb_fail(LB_ERR_NOMEM, "%s: out of memory", spec);
            goto done;
        }
        memcpy(img, spec, n1);
        img[n1] = 0;
        snprintf(src, sizeof src, "%s", spec);
        s = load_pair(img, lbl, src, out);
        goto done;
    }
    if (exists(spec))
        s = lb_fail(LB_ERR_INVALID, "%s: a single file is not a data set: give IMAGES,LABELS (two IDX or .npy files)", spec);
    else
        s = lb_fail(LB_ERR_IO, "%s: no such data set or directory (expected \"" FMNIST_NAME "\", a directory "
                    "with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz], or IMAGES,LABELS)", spec);

done:
    free(img);
    free(lbl);
    return s;
}

void lb_dataset_truncate(lb_dataset *d, int64_t n) {
    /* The arrays keep their size: truncation is for quick runs, and reallocating the
     * aligned block would cost a copy for nothing. num_classes stays as loaded so a
     * model sized from the full set still matches. */
    if (!d || n <= 0 || n >= d->n) return;
    d->n = n;
}

void lb_dataset_free(lb_dataset *d) {
    if (!d) return;
    lb_free(d->x);
    lb_free(d->y);
    free(d->source);
    free(d);
}
