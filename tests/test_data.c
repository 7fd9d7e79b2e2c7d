/* Data loaders: IDX (plain and gzip), .npy, and data sets built from IDX pairs.
 * Files are generated in a temporary directory; every malformed input must be refused
 * with the right status and a message naming the file and the field at fault. */
#include "lowbit.h"
#include "test_util.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[64];
static char made[128][256];
static int nmade;

/* A path inside the temporary directory, remembered for clean-up; the pointer stays
 * valid for the whole run. */
static const char *tpath(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    for (int i = 0; i < nmade; i++)
        if (!strcmp(made[i], p)) return made[i];
    if (nmade == 128) { fprintf(stderr, "test_data: too many temporary files\n"); exit(1); }
    snprintf(made[nmade], 256, "%s", p);
    return made[nmade++];
}

static void write_file(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) { fprintf(stderr, "cannot write %s\n", path); exit(1); }
    fclose(f);
}

/* mode "wb" starts a file, "ab" appends another gzip member */
static void write_gz(const char *path, const void *b, size_t n, const char *mode) {
    gzFile g = gzopen(path, mode);
    if (!g || gzwrite(g, b, (unsigned)n) != (int)n) { fprintf(stderr, "cannot write %s\n", path); exit(1); }
    gzclose(g);
}

static size_t read_all(const char *path, uint8_t *b, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(b, 1, cap, f);
    fclose(f);
    return n;
}

/* IDX image: header for `type` and dims, then `payload` copied verbatim (already
 * big-endian). Returns the length. */
static size_t make_idx(uint8_t *out, int type, int ndim, const uint32_t *dims, const void *payload, size_t plen) {
    out[0] = 0; out[1] = 0; out[2] = (uint8_t)type; out[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        out[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        out[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        out[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        out[7 + 4 * i] = (uint8_t)dims[i];
    }
    if (plen) memcpy(out + 4 + 4 * ndim, payload, plen);
    return 4 + 4 * (size_t)ndim + plen;
}

#define HAS(needle) (strstr(lb_last_error(), (needle)) != NULL)
#define CHECK_ERR(expr, status, ...) do { \
    CHECK_STATUS(expr, status); \
    const char *_needles[] = {__VA_ARGS__}; \
    for (size_t _i = 0; _i < sizeof _needles / sizeof *_needles; _i++) \
        CHECK_MSG(HAS(_needles[_i]), "message \"%s\" lacks \"%s\"", lb_last_error(), _needles[_i]); \
} while (0)

/* ------------------------------------------------------------------ IDX */

static void test_idx_types(void) {
    void *data; int dt, nd; int64_t dims[4];
    uint8_t buf[256];

    /* every element type, converted from big-endian */
    const uint8_t i8[] = {0x80, 0x7f, 0xff};
    uint32_t d1 = 3;
    size_t n = make_idx(buf, 0x09, 1, &d1, i8, 3);
    CHECK_OK(lb_idx_parse(buf, n, "i8.idx", &data, &dt, &nd, dims));
    CHECK(dt == 0x09 && nd == 1 && dims[0] == 3);
    if (data) CHECK(((int8_t *)data)[0] == -128 && ((int8_t *)data)[1] == 127 && ((int8_t *)data)[2] == -1);
    free(data);

    const uint8_t i16[] = {0xff, 0xfe, 0x01, 0x02};
    uint32_t d2 = 2;
    n = make_idx(buf, 0x0B, 1, &d2, i16, 4);
    CHECK_OK(lb_idx_parse(buf, n, "i16.idx", &data, &dt, &nd, dims));
    if (data) CHECK(((int16_t *)data)[0] == -2 && ((int16_t *)data)[1] == 0x0102);
    free(data);

    const uint8_t i32[] = {0x01, 0x02, 0x03, 0x04, 0xff, 0xff, 0xff, 0xfd};
    n = make_idx(buf, 0x0C, 1, &d2, i32, 8);
    CHECK_OK(lb_idx_parse(buf, n, "i32.idx", &data, &dt, &nd, dims));
    if (data) CHECK(((int32_t *)data)[0] == 0x01020304 && ((int32_t *)data)[1] == -3);
    free(data);

    const uint8_t f32[] = {0x3f, 0xc0, 0, 0, 0xc0, 0x20, 0, 0}; /* 1.5, -2.5 */
    n = make_idx(buf, 0x0D, 1, &d2, f32, 8);
    CHECK_OK(lb_idx_parse(buf, n, "f32.idx", &data, &dt, &nd, dims));
    if (data) CHECK(((float *)data)[0] == 1.5f && ((float *)data)[1] == -2.5f);
    free(data);

    const uint8_t f64[] = {0xc0, 0x02, 0, 0, 0, 0, 0, 0}; /* -2.25 */
    uint32_t d11[2] = {1, 1};
    n = make_idx(buf, 0x0E, 2, d11, f64, 8);
    CHECK_OK(lb_idx_parse(buf, n, "f64.idx", &data, &dt, &nd, dims));
    CHECK(dt == 0x0E && nd == 2 && dims[0] == 1 && dims[1] == 1);
    if (data) CHECK(((double *)data)[0] == -2.25);
    free(data);

    /* 4 dims, the most accepted */
    uint32_t d4[4] = {1, 2, 1, 3};
    uint8_t px[6] = {1, 2, 3, 4, 5, 6};
    n = make_idx(buf, 0x08, 4, d4, px, 6);
    CHECK_OK(lb_idx_parse(buf, n, "u8.idx", &data, &dt, &nd, dims));
    CHECK(nd == 4 && dims[0] == 1 && dims[1] == 2 && dims[2] == 1 && dims[3] == 3);
    if (data) CHECK(memcmp(data, px, 6) == 0);
    free(data);
}

static void test_idx_files(void) {
    uint8_t buf[256], px[12];
    for (int i = 0; i < 12; i++) px[i] = (uint8_t)(i * 20);
    uint32_t d3[3] = {3, 2, 2};
    size_t n = make_idx(buf, 0x08, 3, d3, px, 12);
    const char *plain = tpath("a.idx"), *gz = tpath("a.idx.gz"), *multi = tpath("multi.idx.gz");
    write_file(plain, buf, n);
    write_gz(gz, buf, n, "wb");
    write_gz(multi, buf, 10, "wb");
    write_gz(multi, buf + 10, n - 10, "ab");

    const char *paths[3] = {plain, gz, multi};
    for (int k = 0; k < 3; k++) {
        void *data = NULL; int dt, nd; int64_t dims[4];
        CHECK_OK(lb_idx_read(paths[k], &data, &dt, &nd, dims));
        CHECK(dt == 0x08 && nd == 3 && dims[0] == 3 && dims[1] == 2 && dims[2] == 2);
        if (data) CHECK(memcmp(data, px, 12) == 0);
        free(data);
    }
}

static void test_idx_bad(void) {
    void *data; int dt, nd; int64_t dims[4];
    uint8_t buf[512], px[12] = {0};
    uint32_t d3[3] = {3, 2, 2};
    size_t n = make_idx(buf, 0x08, 3, d3, px, 12);

    const char *p = tpath("trunc.idx");
    write_file(p, buf, n - 1);
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_FORMAT, p, "payload: expected 12 bytes, got 11");
    CHECK(data == NULL);

    p = tpath("trunchdr.idx");
    write_file(p, buf, 9);
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_FORMAT, p, "truncated header");

    p = tpath("trail.idx");
    buf[n] = 0;
    write_file(p, buf, n + 1);
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_FORMAT, p, "payload: expected 12 bytes, got 13");

    uint8_t bad[64];
    memcpy(bad, buf, n);
    bad[1] = 8;
    p = tpath("magic.idx");
    write_file(p, bad, n);
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_FORMAT, p, "magic");

    memcpy(bad, buf, n);
    bad[2] = 0x0A;
    CHECK_ERR(lb_idx_parse(bad, n, "type.idx", &data, &dt, &nd, dims), LB_ERR_FORMAT, "type.idx", "type byte");
    bad[2] = 0x08;
    bad[3] = 0;
    CHECK_ERR(lb_idx_parse(bad, n, "nd0.idx", &data, &dt, &nd, dims), LB_ERR_FORMAT, "nd0.idx", "dims byte");
    bad[3] = 5;
    CHECK_ERR(lb_idx_parse(bad, n, "nd5.idx", &data, &dt, &nd, dims), LB_ERR_FORMAT, "nd5.idx", "dims byte");

    uint32_t dz[3] = {3, 0, 2};
    size_t m = make_idx(bad, 0x08, 3, dz, px, 0);
    p = tpath("zero.idx");
    write_file(p, bad, m);
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_FORMAT, p, "dims[1]");

    /* 2^128 elements: the count must not wrap to something small */
    uint32_t dh[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    m = make_idx(bad, 0x0E, 4, dh, px, 8);
    CHECK_ERR(lb_idx_parse(bad, m, "huge.idx", &data, &dt, &nd, dims), LB_ERR_FORMAT, "huge.idx", "overflow");
    /* 2^32 x 2^32 x 2^0: wraps to 0 in 64 bits if unchecked... and 2^16 x 2^16 x 8 bytes */
    uint32_t dw[2] = {65536, 65536};
    m = make_idx(bad, 0x0E, 2, dw, px, 8);
    CHECK_ERR(lb_idx_parse(bad, m, "big.idx", &data, &dt, &nd, dims), LB_ERR_FORMAT, "big.idx", "payload");

    CHECK_ERR(lb_idx_parse(buf, 0, "empty.idx", &data, &dt, &nd, dims), LB_ERR_FORMAT, "empty.idx");

    p = tpath("missing.idx");
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_IO, p);

    /* corrupt gzip: a flipped byte in the deflate data, a cut stream, garbage after it */
    const char *gz = tpath("good.gz");
    uint8_t big[600], pay[588];
    for (int i = 0; i < 588; i++) pay[i] = (uint8_t)(i * 7);
    uint32_t dg[1] = {588};
    size_t bn = make_idx(big, 0x08, 1, dg, pay, 588);
    write_gz(gz, big, bn, "wb");
    uint8_t z[2048];
    size_t zn = read_all(gz, z, sizeof z);
    CHECK(zn > 40 && zn < sizeof z);

    uint8_t zc[2048];
    memcpy(zc, z, zn);
    for (size_t i = 12; i < zn - 8; i += 3) zc[i] ^= 0x55;
    p = tpath("corrupt.gz");
    write_file(p, zc, zn);
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_FORMAT, p, "corrupt gzip");

    memcpy(zc, z, zn);
    zc[zn - 5] ^= 1; /* CRC-32 in the trailer */
    p = tpath("crc.gz");
    write_file(p, zc, zn);
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_FORMAT, p, "corrupt gzip");

    p = tpath("cut.gz");
    write_file(p, z, zn / 2);
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_FORMAT, p, "corrupt gzip", "truncated");

    memcpy(zc, z, zn);
    memcpy(zc + zn, "junk", 4);
    p = tpath("junk.gz");
    write_file(p, zc, zn + 4);
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_FORMAT, p, "trailing");

    /* a well-formed gzip of a malformed IDX still names the file */
    write_gz(tpath("bad.idx.gz"), big, bn - 1, "wb");
    p = tpath("bad.idx.gz");
    CHECK_ERR(lb_idx_read(p, &data, &dt, &nd, dims), LB_ERR_FORMAT, p, "payload: expected 588 bytes, got 587");
}

/* ------------------------------------------------------------------ data sets */

static void write_pair(const char *img, const char *lbl, int gz, uint32_t n, int c, uint32_t h, uint32_t w,
                       const uint8_t *labels, uint32_t nlabels) {
    static uint8_t buf[1 << 14];
    uint8_t px[1 << 13];
    size_t per = (size_t)(c ? c : 1) * h * w;
    for (size_t i = 0; i < n * per; i++) px[i] = (uint8_t)(i * 37 % 256);
    uint32_t dims[4] = {n, (uint32_t)c, h, w}, d3[3] = {n, h, w};
    size_t m = c ? make_idx(buf, 0x08, 4, dims, px, n * per) : make_idx(buf, 0x08, 3, d3, px, n * per);
    if (gz) write_gz(img, buf, m, "wb"); else write_file(img, buf, m);
    m = make_idx(buf, 0x08, 1, &nlabels, labels, nlabels);
    if (gz) write_gz(lbl, buf, m, "wb"); else write_file(lbl, buf, m);
}

static void test_dataset(void) {
    lb_dataset *d = NULL;
    const uint8_t labels[5] = {3, 0, 1, 4, 2};
    char dir[128];
    snprintf(dir, sizeof dir, "%s/set", tmpdir);
    mkdir(dir, 0700);
    /* train gzip'd, test plain: a DIR accepts both spellings */
    write_pair(tpath("set/train-images-idx3-ubyte.gz"), tpath("set/train-labels-idx1-ubyte.gz"), 1, 5, 0, 3, 2,
               labels, 5);
    write_pair(tpath("set/t10k-images-idx3-ubyte"), tpath("set/t10k-labels-idx1-ubyte"), 0, 2, 0, 3, 2, labels, 2);

    CHECK_OK(lb_dataset_load(&d, dir, LB_SPLIT_TRAIN));
    if (d) {
        CHECK(d->n == 5 && d->c == 1 && d->h == 3 && d->w == 2 && d->num_classes == 5);
        CHECK(d->source && strstr(d->source, dir));
        CHECK(((uintptr_t)d->x & 63) == 0);
        for (int i = 0; i < 30; i++) {
            float want = ((float)(i * 37 % 256) / 255.0f - 0.286f) / 0.353f;
            CHECK_CLOSE(d->x[i], want, 1e-6, 0);
        }
        for (int i = 0; i < 5; i++) CHECK(d->y[i] == labels[i]);
        lb_dataset_truncate(d, 3);
        CHECK(d->n == 3 && d->num_classes == 5);
        lb_dataset_truncate(d, 0);
        lb_dataset_truncate(d, 99);
        CHECK(d->n == 3);
        lb_dataset_free(d);
        d = NULL;
    }
    CHECK_OK(lb_dataset_load(&d, dir, LB_SPLIT_TEST));
    if (d) {
        /* labels {3, 0}: max + 1 */
        CHECK(d->n == 2 && d->num_classes == 4);
        lb_dataset_free(d);
        d = NULL;
    }

    /* explicit pair, 4-d colour images: scaled to [0, 1] only */
    const uint8_t zeros[3] = {0, 0, 0};
    const char *img = tpath("rgb-img.idx"), *lbl = tpath("rgb-lbl.idx.gz");
    write_pair(img, lbl, 0, 3, 3, 2, 2, zeros, 3);
    write_gz(lbl, (uint8_t[]){0, 0, 8, 1, 0, 0, 0, 3, 0, 0, 0}, 11, "wb");
    char spec[600];
    snprintf(spec, sizeof spec, "%s,%s", img, lbl);
    CHECK_OK(lb_dataset_load(&d, spec, LB_SPLIT_TEST));
    if (d) {
        CHECK(d->n == 3 && d->c == 3 && d->h == 2 && d->w == 2);
        CHECK(d->num_classes == 2); /* all labels 0: still at least 2 */
        CHECK_CLOSE(d->x[5], (float)(5 * 37 % 256) / 255.0f, 1e-7, 0);
        lb_dataset_free(d);
        d = NULL;
    }

    /* counts disagree: both files named */
    const char *img5 = tpath("set/train-images-idx3-ubyte.gz"), *lbl2 = tpath("set/t10k-labels-idx1-ubyte");
    snprintf(spec, sizeof spec, "%s,%s", img5, lbl2);
    CHECK_ERR(lb_dataset_load(&d, spec, LB_SPLIT_TRAIN), LB_ERR_FORMAT, img5, lbl2);
    CHECK(d == NULL);

    /* labels with 2 dims */
    uint8_t buf[64];
    uint32_t ld[2] = {5, 1};
    const char *lbl2d = tpath("lbl2d.idx");
    write_file(lbl2d, buf, make_idx(buf, 0x08, 2, ld, labels, 5));
    snprintf(spec, sizeof spec, "%s,%s", img5, lbl2d);
    CHECK_ERR(lb_dataset_load(&d, spec, LB_SPLIT_TRAIN), LB_ERR_FORMAT, lbl2d, "dims");

    /* images that are not bytes, images with 2 dims */
    uint32_t id[3] = {5, 1, 1};
    const uint8_t f32[20] = {0};
    const char *imgf = tpath("imgf.idx");
    write_file(imgf, buf, make_idx(buf, 0x0D, 3, id, f32, 20));
    snprintf(spec, sizeof spec, "%s,%s", imgf, tpath("set/train-labels-idx1-ubyte.gz"));
    CHECK_ERR(lb_dataset_load(&d, spec, LB_SPLIT_TRAIN), LB_ERR_FORMAT, imgf, "type byte");
    const char *img2d = tpath("img2d.idx");
    write_file(img2d, buf, make_idx(buf, 0x08, 2, id, f32, 5));
    snprintf(spec, sizeof spec, "%s,%s", img2d, tpath("set/train-labels-idx1-ubyte.gz"));
    CHECK_ERR(lb_dataset_load(&d, spec, LB_SPLIT_TRAIN), LB_ERR_FORMAT, img2d, "dims");

    /* a malformed file inside a pair, a missing one */
    snprintf(spec, sizeof spec, "%s,%s", img5, tpath("trunc.idx"));
    CHECK_ERR(lb_dataset_load(&d, spec, LB_SPLIT_TRAIN), LB_ERR_FORMAT, tpath("trunc.idx"), "payload");
    snprintf(spec, sizeof spec, "%s,%s", tpath("nope.idx"), lbl2);
    CHECK_ERR(lb_dataset_load(&d, spec, LB_SPLIT_TRAIN), LB_ERR_IO, tpath("nope.idx"));
    CHECK_ERR(lb_dataset_load(&d, "a.idx,", LB_SPLIT_TRAIN), LB_ERR_INVALID, "IMAGES,LABELS");

    /* a DIR without the files, a path that is nothing, a single file, a bad split */
    CHECK_ERR(lb_dataset_load(&d, tmpdir, LB_SPLIT_TRAIN), LB_ERR_IO, "train-images-idx3-ubyte");
    CHECK_ERR(lb_dataset_load(&d, tpath("no-such-set"), LB_SPLIT_TRAIN), LB_ERR_IO, "no-such-set");
    CHECK_ERR(lb_dataset_load(&d, img, LB_SPLIT_TRAIN), LB_ERR_INVALID, img);
    CHECK_ERR(lb_dataset_load(&d, dir, (lb_split)7), LB_ERR_INVALID, "split");
    CHECK(d == NULL);
    lb_dataset_free(NULL);
}

static void test_fashion_mnist(void) {
    const char *f = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    lb_dataset *d = NULL;
    if (access(f, R_OK) != 0) {
        printf("test_data: %s absent, checking the install hint only\n", f);
        CHECK_ERR(lb_dataset_load(&d, "fashion-mnist", LB_SPLIT_TEST), LB_ERR_IO, "fashion-mnist: ", f,
                  "dataset-fashion-mnist");
        return;
    }
    CHECK_OK(lb_dataset_load(&d, "fashion-mnist", LB_SPLIT_TEST));
    if (!d) return;
    CHECK(d->n == 10000 && d->c == 1 && d->h == 28 && d->w == 28 && d->num_classes == 10);
    int counts[10] = {0}, bad = 0;
    for (int64_t i = 0; i < d->n; i++) {
        if (d->y[i] < 0 || d->y[i] > 9) bad++;
        else counts[d->y[i]]++;
    }
    CHECK(bad == 0);
    for (int k = 0; k < 10; k++) CHECK(counts[k] == 1000);
    double sum = 0;
    for (int64_t i = 0; i < d->n * 784; i++) sum += d->x[i];
    CHECK_CLOSE(sum / ((double)d->n * 784), 0.0, 0.05, 0);
    lb_dataset_free(d);
}

/* ------------------------------------------------------------------ npy */

/* What numpy 1.24's np.save writes for a (2, 3) float32 array, before the data. */
static size_t numpy_header_2x3_f4(uint8_t *out) {
    static const char dict[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    memcpy(out, "\x93NUMPY\x01\x00\x76\x00", 10);
    memcpy(out + 10, dict, sizeof dict - 1);
    memset(out + 10 + sizeof dict - 1, ' ', 128 - 10 - (sizeof dict - 1));
    out[127] = '\n';
    return 128;
}

static void test_npy_numpy_header(void) {
    uint8_t buf[256];
    size_t h = numpy_header_2x3_f4(buf);
    float v[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    memcpy(buf + h, v, sizeof v);
    lb_npy a;
    CHECK_OK(lb_npy_parse(buf, h + sizeof v, "np.npy", &a));
    CHECK(!strcmp(a.dtype, "f4") && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.size == 6);
    if (a.data) CHECK(memcmp(a.data, v, sizeof v) == 0);
    lb_npy_free(&a);
    CHECK(a.data == NULL);

    /* our writer produces the same bytes as numpy */
    const char *p = tpath("same.npy");
    int64_t shape[2] = {2, 3};
    CHECK_OK(lb_npy_write(p, "f4", 2, shape, v));
    uint8_t w[256];
    size_t wn = read_all(p, w, sizeof w);
    CHECK(wn == h + sizeof v && memcmp(w, buf, wn) == 0);

    /* version 2.0 and 3.0: 4-byte header length; Python 2 longs; double quotes;
     * no trailing comma */
    const char *dicts[] = {"{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
                           "{\"shape\": ( 2 ,3 ),\"descr\":\"<f4\",\"fortran_order\":False}"};
    for (int ver = 2; ver <= 3; ver++) {
        const char *dict = dicts[ver - 2];
        size_t dl = strlen(dict);
        memcpy(buf, "\x93NUMPY", 6);
        buf[6] = (uint8_t)ver; buf[7] = 0;
        buf[8] = (uint8_t)(dl + 1); buf[9] = 0; buf[10] = 0; buf[11] = 0;
        memcpy(buf + 12, dict, dl);
        buf[12 + dl] = '\n';
        memcpy(buf + 13 + dl, v, sizeof v);
        CHECK_OK(lb_npy_parse(buf, 13 + dl + sizeof v, "v2.npy", &a));
        CHECK(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && !strcmp(a.dtype, "f4"));
        if (a.data) CHECK(((float *)a.data)[5] == -7);
        lb_npy_free(&a);
    }
}

static void test_npy_roundtrip(void) {
    static const char *const dts[4] = {"f4", "u1", "i4", "i8"};
    static const size_t es[4] = {4, 1, 4, 8};
    const int64_t shapes[5][8] = {{0}, {5}, {2, 3, 4}, {1, 0, 3}, {1, 2, 1, 1, 1, 1, 1, 2}};
    const int ndims[5] = {0, 1, 3, 3, 8};
    uint8_t src[24 * 8];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(i * 13 + 1);
    for (int t = 0; t < 4; t++) {
        for (int s = 0; s < 5; s++) {
            char name[32];
            snprintf(name, sizeof name, "rt-%s-%d.npy", dts[t], s);
            const char *p = tpath(name);
            CHECK_OK(lb_npy_write(p, dts[t], ndims[s], shapes[s], src));
            int64_t size = 1;
            for (int i = 0; i < ndims[s]; i++) size *= shapes[s][i];
            uint8_t raw[512];
            size_t rn = read_all(p, raw, sizeof raw);
            size_t hl = (size_t)raw[8] | (size_t)raw[9] << 8;
            CHECK((10 + hl) % 64 == 0 && raw[9 + hl] == '\n' && rn == 10 + hl + (size_t)size * es[t]);
            lb_npy a;
            CHECK_OK(lb_npy_read(p, &a));
            CHECK_MSG(!strcmp(a.dtype, dts[t]) && a.ndim == ndims[s] && a.size == size, "%s", p);
            for (int i = 0; i < a.ndim && i < ndims[s]; i++) CHECK(a.shape[i] == shapes[s][i]);
            if (a.data) CHECK(memcmp(a.data, src, (size_t)size * es[t]) == 0);
            lb_npy_free(&a);
        }
    }
    /* numpy's own spellings are accepted by the writer too */
    int64_t three = 3;
    lb_npy a;
    CHECK_OK(lb_npy_write(tpath("u1.npy"), "|u1", 1, &three, src));
    CHECK_OK(lb_npy_read(tpath("u1.npy"), &a));
    CHECK(!strcmp(a.dtype, "u1") && a.size == 3);
    lb_npy_free(&a);

    CHECK_ERR(lb_npy_write(tpath("x.npy"), "f8", 1, &three, src), LB_ERR_INVALID, "x.npy", "f8");
    CHECK_ERR(lb_npy_write(tpath("x.npy"), "f4", 9, &three, src), LB_ERR_INVALID, "x.npy", "ndim");
    int64_t neg = -1;
    CHECK_ERR(lb_npy_write(tpath("x.npy"), "f4", 1, &neg, src), LB_ERR_INVALID, "x.npy", "shape[0]");
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir.npy", tmpdir);
    CHECK_ERR(lb_npy_write(nodir, "f4", 1, &three, src), LB_ERR_WRITE, nodir);
    CHECK(access(tpath("x.npy"), F_OK) != 0);
}

/* A version 1.0 file with `dict` as the header (padded as numpy does) and `dlen` data bytes. */
static size_t make_npy(uint8_t *out, const char *dict, size_t dlen) {
    size_t n = strlen(dict), hl = (10 + n + 1 + 63) / 64 * 64 - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (uint8_t)hl; out[9] = (uint8_t)(hl >> 8);
    memcpy(out + 10, dict, n);
    memset(out + 10 + n, ' ', hl - n - 1);
    out[9 + hl] = '\n';
    memset(out + 10 + hl, 0x3c, dlen);
    return 10 + hl + dlen;
}

static void test_npy_bad(void) {
    uint8_t buf[1024];
    lb_npy a;
    struct { const char *dict; size_t dlen; const char *want; } cases[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, "fortran_order"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48, "descr '<f8'"},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24, "big-endian"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "descr"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 23, "data: expected 24 bytes, got 23"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 25, "data: expected 24 bytes, got 25"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", 24, "header"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", 24, "after the closing"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", 24, "unexpected key 'x'"},
        {"{'descr': '<f4', 'shape': (2, 3), }", 24, "missing key 'fortran_order'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "twice"},
        {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,), }", 8, "fortran_order"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", 8, "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8, "shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,,), }", 8, "shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,2,3,4,5,6,7,8,9), }", 8, "dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 8, "too large"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 8, "overflow"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (4294967296, 4294967295), }", 8, "limit"},
        {"garbage", 0, "header"},
        {"", 0, "header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = make_npy(buf, cases[i].dict, cases[i].dlen);
        CHECK_MSG(lb_npy_parse(buf, n, "bad.npy", &a) == LB_ERR_FORMAT, "case %zu accepted: %s", i, cases[i].dict);
        CHECK_MSG(HAS("bad.npy") && HAS(cases[i].want), "case %zu: \"%s\" lacks \"%s\"", i, lb_last_error(),
                  cases[i].want);
        CHECK(a.data == NULL);
    }

    /* through a file: the path is named */
    size_t n = make_npy(buf, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24);
    const char *p = tpath("fortran.npy");
    write_file(p, buf, n);
    CHECK_ERR(lb_npy_read(p, &a), LB_ERR_FORMAT, p, "fortran_order");
    CHECK_ERR(lb_npy_read(tpath("missing.npy"), &a), LB_ERR_IO, tpath("missing.npy"));

    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    CHECK_OK(lb_npy_parse(buf, n, "ok.npy", &a));
    lb_npy_free(&a);
    uint8_t b2[1024];
    memcpy(b2, buf, n);
    b2[0] = 'x';
    CHECK_ERR(lb_npy_parse(b2, n, "m.npy", &a), LB_ERR_FORMAT, "m.npy", "magic");
    memcpy(b2, buf, n);
    b2[6] = 4;
    CHECK_ERR(lb_npy_parse(b2, n, "v.npy", &a), LB_ERR_FORMAT, "v.npy", "version 4.0");
    memcpy(b2, buf, n);
    b2[9] = 0x10; /* header length 4096+ beyond the file */
    CHECK_ERR(lb_npy_parse(b2, n, "h.npy", &a), LB_ERR_FORMAT, "h.npy", "truncated header");
    CHECK_ERR(lb_npy_parse(buf, 9, "t.npy", &a), LB_ERR_FORMAT, "t.npy", "truncated header");
    memcpy(b2, buf, n);
    b2[20] = 0; /* NUL inside the dict */
    CHECK_ERR(lb_npy_parse(b2, n, "nul.npy", &a), LB_ERR_FORMAT, "nul.npy");
}

/* .npy pairs as data sets (DESIGN.md section 4) */
static void test_npy_dataset(void) {
    char spec[600];
    lb_dataset *d = NULL;
    const uint8_t px[3 * 2 * 2] = {0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    const int64_t lab8[3] = {2, 0, 5};
    const float fx[3 * 4] = {0.5f, -1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    int64_t ish[3] = {3, 2, 2}, lsh[1] = {3}, l2[2] = {3, 1};
    CHECK_OK(lb_npy_write(tpath("img.npy"), "u1", 3, ish, px));
    CHECK_OK(lb_npy_write(tpath("lab.npy"), "i8", 1, lsh, lab8));
    CHECK_OK(lb_npy_write(tpath("fimg.npy"), "f4", 3, ish, fx));
    snprintf(spec, sizeof spec, "%s,%s", tpath("img.npy"), tpath("lab.npy"));
    CHECK_OK(lb_dataset_load(&d, spec, LB_SPLIT_TRAIN));
    if (d) {
        CHECK(d->n == 3 && d->c == 1 && d->h == 2 && d->w == 2 && d->num_classes == 6);
        CHECK(d->y[0] == 2 && d->y[1] == 0 && d->y[2] == 5);
        CHECK_CLOSE(d->x[1], (1.0f - 0.286f) / 0.353f, 1e-6, 1e-6); /* bytes: same scaling as IDX */
        lb_dataset_free(d);
        d = NULL;
    }
    snprintf(spec, sizeof spec, "%s,%s", tpath("fimg.npy"), tpath("lab.npy"));
    CHECK_OK(lb_dataset_load(&d, spec, LB_SPLIT_TEST));
    if (d) {
        CHECK(d->x[0] == 0.5f && d->x[1] == -1.0f && d->x[11] == 11.0f); /* float32: taken as is */
        lb_dataset_free(d);
        d = NULL;
    }
    /* bad pairs */
    const float fl[3] = {1, 2, 3};
    const int32_t neg[3] = {1, -1, 0};
    CHECK_OK(lb_npy_write(tpath("flab.npy"), "f4", 1, lsh, fl));
    CHECK_OK(lb_npy_write(tpath("neg.npy"), "i4", 1, lsh, neg));
    CHECK_OK(lb_npy_write(tpath("lab2d.npy"), "i8", 2, l2, lab8));
    CHECK_OK(lb_npy_write(tpath("lab2.npy"), "i8", 1, (int64_t[]){2}, lab8));
    const char *bad[][2] = {{"flab.npy", "not float32"}, {"neg.npy", "label [1] = -1"},
                            {"lab2d.npy", "labels must have 1 dim"}, {"lab2.npy", "has 2 labels but"}};
    for (int i = 0; i < 4; i++) {
        snprintf(spec, sizeof spec, "%s,%s", tpath("img.npy"), tpath(bad[i][0]));
        CHECK_ERR(lb_dataset_load(&d, spec, LB_SPLIT_TRAIN), LB_ERR_FORMAT, bad[i][0], bad[i][1]);
        CHECK(d == NULL);
    }
    snprintf(spec, sizeof spec, "%s,%s", tpath("lab.npy"), tpath("lab.npy"));
    CHECK_ERR(lb_dataset_load(&d, spec, LB_SPLIT_TRAIN), LB_ERR_FORMAT, "images must be unsigned bytes or float32");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lowbit-test-data-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }

    test_idx_types();
    test_idx_files();
    test_idx_bad();
    test_dataset();
    test_fashion_mnist();
    test_npy_numpy_header();
    test_npy_roundtrip();
    test_npy_bad();
    test_npy_dataset();

    for (int i = nmade - 1; i >= 0; i--) unlink(made[i]);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/set", tmpdir);
    rmdir(sub);
    if (rmdir(tmpdir) != 0) fprintf(stderr, "test_data: could not remove %s\n", tmpdir);
    return lbt_report("test_data");
}
