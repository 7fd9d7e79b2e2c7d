/* Image classification data sets from IDX pairs (Fashion-MNIST and anything shaped
 * like it), held in memory as normalised float32. */
#include "lb_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
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
static lb_status load_pair(const char *img_path, const char *lbl_path, const char *source, lb_dataset **out) {
    void *img = NULL, *lbl = NULL;
    int it, ind, lt, lnd;
    int64_t idims[4], ldims[4];
    lb_dataset *d = NULL;
    lb_status s = lb_idx_read(img_path, &img, &it, &ind, idims);
    if (s != LB_OK) return s;
    if (it != 0x08) {
        s = lb_fail(LB_ERR_FORMAT, "%s: type byte 0x%02x: images must be unsigned bytes (0x08)", img_path, it);
        goto done;
    }
    if (ind != 3 && ind != 4) {
        s = lb_fail(LB_ERR_FORMAT, "%s: dims byte %d: images must have 3 dims (n, h, w) or 4 (n, c, h, w)", img_path, ind);
        goto done;
    }
    int64_t n = idims[0];
    int64_t c = ind == 4 ? idims[1] : 1, h = idims[ind - 2], w = idims[ind - 1];
    /* per-sample sizes are ints in lb_dataset and in the model code */
    if (c > INT_MAX || h > INT_MAX || w > INT_MAX || c * h > INT_MAX / w) {
        s = lb_fail(LB_ERR_FORMAT, "%s: dims: a %lld x %lld x %lld sample is too large", img_path, (long long)c,
                    (long long)h, (long long)w);
        goto done;
    }

    s = lb_idx_read(lbl_path, &lbl, &lt, &lnd, ldims);
    if (s != LB_OK) goto done;
    if (lt != 0x08) {
        s = lb_fail(LB_ERR_FORMAT, "%s: type byte 0x%02x: labels must be unsigned bytes (0x08)", lbl_path, lt);
        goto done;
    }
    if (lnd != 1) {
        s = lb_fail(LB_ERR_FORMAT, "%s: dims byte %d: labels must have 1 dim", lbl_path, lnd);
        goto done;
    }
    if (ldims[0] != n) {
        s = lb_fail(LB_ERR_FORMAT, "%s has %lld labels but %s has %lld images", lbl_path, (long long)ldims[0],
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

    /* A table keeps the conversion exact and identical to torchvision's float32
     * ToTensor()/Normalize() arithmetic: (p / 255 - mean) / std, each step in float. */
    float lut[256];
    for (int p = 0; p < 256; p++) {
        float v = (float)p / 255.0f;
        lut[p] = c == 1 ? (v - GREY_MEAN) / GREY_STD : v;
    }
    const uint8_t *px = img;
    float *x = d->x;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < (int64_t)total; i++) x[i] = lut[px[i]];

    const uint8_t *lb = lbl;
    int maxl = 0;
    for (int64_t i = 0; i < n; i++) {
        d->y[i] = lb[i];
        if (lb[i] > maxl) maxl = lb[i];
    }
    d->num_classes = LB_MAX(maxl + 1, 2);
    *out = d;
    d = NULL;
    s = LB_OK;

done:
    free(img);
    free(lbl);
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
            s = lb_fail(LB_ERR_INVALID, "%s: expected IMAGES,LABELS (two IDX paths separated by one comma)", spec);
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
        s = lb_fail(LB_ERR_INVALID, "%s: a single file is not a data set: give IMAGES,LABELS (two IDX files)", spec);
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
