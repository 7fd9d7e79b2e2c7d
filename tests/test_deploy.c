/* Train equals deploy, on small random networks: for every method and bit width, the
 * packed model (src/export/export.c) run by the runtime (runtime/lbr.c) predicts what
 * lowbit's own forward predicts, with logits within a small tolerance; integer kernels
 * give bit-identical logits to their scalar references; the runtime takes the integer
 * path each weight form is meant for. The full Fashion-MNIST check of trained models is
 * bench/deploy_check.sh (docs/results.md). */
#include "graph/graph.h"
#include "lbr.h"
#include "quant/quant.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* conv-bn-relu, conv-bn-relu, maxpool, strided grouped conv-bn-relu, flatten, gemm-relu,
 * dropout, gemm: every fusion the exporter makes, with odd sizes */
static const char *SPEC =
    "{\"name\": \"tiny\", \"input\": [3, 11, 11], \"layers\": ["
    "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 8, \"kernel\": 3, \"pad\": 1, \"bias\": false},"
    "{\"name\": \"b1\", \"op\": \"BatchNormalization\"}, {\"name\": \"r1\", \"op\": \"Relu\"},"
    "{\"name\": \"c2\", \"op\": \"Conv\", \"out\": 12, \"kernel\": 3, \"pad\": 1, \"bias\": false},"
    "{\"name\": \"b2\", \"op\": \"BatchNormalization\"}, {\"name\": \"r2\", \"op\": \"Relu\"},"
    "{\"name\": \"p1\", \"op\": \"MaxPool\", \"kernel\": 2},"
    "{\"name\": \"c3\", \"op\": \"Conv\", \"out\": 10, \"kernel\": 3, \"pad\": 1, \"stride\": 2, \"group\": 2, \"bias\": true},"
    "{\"name\": \"b3\", \"op\": \"BatchNormalization\"}, {\"name\": \"r3\", \"op\": \"Relu\"},"
    "{\"name\": \"f\", \"op\": \"Flatten\"},"
    "{\"name\": \"g1\", \"op\": \"Gemm\", \"out\": 37}, {\"name\": \"r4\", \"op\": \"Relu\"},"
    "{\"name\": \"d\", \"op\": \"Dropout\", \"p\": 0.3},"
    "{\"name\": \"g2\", \"op\": \"Gemm\", \"out\": 7}]}";

enum { N = 300 };

typedef struct cfg {
    const char *quant;
    lbr_path path;           /* what the quantized middle layers c2, c3, g1 must run on */
    lbr_path gemm_path;      /* g1's, when it differs (0: the same) */
} cfg;

static const cfg CFGS[] = {
    {"fp32", LBR_PATH_FLOAT, LBR_PATH_NONE},
    {"uniform:4/4", LBR_PATH_S8U8, LBR_PATH_NONE},
    {"uniform:2/2", LBR_PATH_S8U8, LBR_PATH_NONE},
    {"uniform:8/8", LBR_PATH_FLOAT, LBR_PATH_NONE},          /* DoReFa 8-bit levels reach 255: no int8 */
    {"uniform:4/4,mode=maxabs,per=channel", LBR_PATH_S8U8, LBR_PATH_NONE},
    {"balanced:2/2", LBR_PATH_S8U8, LBR_PATH_NONE},
    {"balanced:4/4,percentile=mean", LBR_PATH_S8U8, LBR_PATH_NONE},
    {"uniq:4/4", LBR_PATH_FLOAT, LBR_PATH_NONE},  /* J x bits = 64: float, bucket only with prefer_bucket */
    {"uniq:2/2", LBR_PATH_BUCKET, LBR_PATH_NONE},
    {"syq:1/1,group=layer", LBR_PATH_XNOR, LBR_PATH_NONE}, /* binary weights, 1-bit codes */
    {"syq:1/1,group=row", LBR_PATH_XNOR, LBR_PATH_NONE},
    {"syq:1/1", LBR_PATH_XNOR, LBR_PATH_NONE}, /* conv: a sum per kernel pixel (pixel scales) */
    {"syq:1/4", LBR_PATH_BITSERIAL, LBR_PATH_NONE},
    {"syq:1/4,group=layer", LBR_PATH_BITSERIAL, LBR_PATH_NONE},
    {"syq:2/4,group=layer", LBR_PATH_BITSERIAL, LBR_PATH_NONE},
    {"syq:2/2", LBR_PATH_BITSERIAL, LBR_PATH_NONE}, /* conv: pixel scales (per kh, kw); linear: per layer */
    {"syq:2/2,group=row", LBR_PATH_BITSERIAL, LBR_PATH_NONE}, /* conv rows are kernel rows; linear: per output */
    {"qn:2/2", LBR_PATH_BITSERIAL, LBR_PATH_NONE},
    {"qn:4/4", LBR_PATH_S8U8, LBR_PATH_NONE},
    {"pot:4/4", LBR_PATH_S8U8, LBR_PATH_NONE},
    {"pot:3/2", LBR_PATH_S8U8, LBR_PATH_NONE},
};

static float frand(uint64_t *s) { return (float)((lbt_splitmix64(s) >> 40) * (1.0 / 16777216.0)); }

static void randomize(lb_model *m, uint64_t seed) {
    lb_model_init_params(m, seed);
    uint64_t s = seed * 7919 + 1;
    for (int k = 0; k < m->n_tensors; k++) {
        lb_tensor_entry *t = &m->tensors[k];
        float *p = m->params + t->offset;
        const char *nm = t->name;
        size_t L = strlen(nm);
        /* batch norm statistics and affine parameters away from their defaults */
        if (L > 12 && !strcmp(nm + L - 12, "running_mean"))
            for (int64_t i = 0; i < t->size; i++) p[i] = 0.3f * (frand(&s) - 0.5f);
        else if (L > 11 && !strcmp(nm + L - 11, "running_var"))
            for (int64_t i = 0; i < t->size; i++) p[i] = 0.5f + frand(&s);
        else if (nm[0] == 'b' && L > 5 && !strcmp(nm + L - 5, ".bias"))
            for (int64_t i = 0; i < t->size; i++) p[i] = 0.2f * (frand(&s) - 0.3f);
    }
}

static int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static int run_lbm(const uint8_t *buf, size_t len, const lbr_options *opt, const float *x, int n, float *out, lbr_path *paths) {
    char err[256];
    size_t need;
    if (lbr_plan(buf, len, 64, opt, &need, err, sizeof err) != LBR_OK) { fprintf(stderr, "plan: %s\n", err); return 1; }
    void *arena = aligned_alloc(64, (need + 63) / 64 * 64);
    if (arena) memset(arena, 0xA5, (need + 63) / 64 * 64); /* the runtime must not read what it did not write */
    lbr_model *rm;
    if (!arena || lbr_load(&rm, buf, len, 64, arena, need, opt, err, sizeof err) != LBR_OK) {
        fprintf(stderr, "load: %s\n", err);
        free(arena);
        return 1;
    }
    const int K = lbr_num_outputs(rm);
    for (int lo = 0; lo < n; lo += 64) {
        int B = n - lo < 64 ? n - lo : 64;
        if (lbr_run(rm, x + (size_t)lo * 3 * 11 * 11, B, out + (size_t)lo * K) != LBR_OK) { free(arena); return 1; }
    }
    for (int i = 0; paths && i < lbr_num_layers(rm) && i < 16; i++) {
        lbr_layer_info li;
        lbr_layer(rm, i, &li);
        paths[i] = li.path;
    }
    free(arena);
    return 0;
}

static void check_cfg(const cfg *c, const float *x) {
    lb_model *m;
    CHECK_OK(lb_model_create_from_json(&m, SPEC, strlen(SPEC), "tiny"));
    CHECK_OK(lb_model_set_quant(m, c->quant, 0));
    randomize(m, 11);
    lb_quant_init_weights(m);
    if (lb_quant_needs_calibration(m)) CHECK_OK(lb_quant_calibrate(m, x, 128, 64));
    float *ref = malloc(sizeof(float) * N * 7), *out = malloc(sizeof(float) * N * 7), *out2 = malloc(sizeof(float) * N * 7);
    CHECK_OK(lb_model_forward(m, x, N, 0, ref));
    uint8_t *buf = NULL;
    size_t len = 0;
    lb_export_info info;
    CHECK_OK(lb_export_lbm_buffer(m, &buf, &len, &info));
    lbr_path paths[16] = {0};
    lbr_options best = {0}, refk = {.ref_kernels = 1}, flt = {.float_only = 1}, avx2 = {.avx2_only = 1},
                nox = {.no_xnor = 1}, buck = {.prefer_bucket = 1};
    if (!buf || run_lbm(buf, len, &best, x, N, out, paths)) {
        CHECK_MSG(0, "%s: export or runtime failed", c->quant);
        goto done;
    }
    /* layers: c1 (float), c2, p1, c3, g1, g2 (float) */
    CHECK_MSG(info.layers == 6, "%s: %d layers", c->quant, info.layers);
    CHECK_MSG(paths[0] == LBR_PATH_FLOAT && paths[5] == LBR_PATH_FLOAT, "%s: first/last paths %d %d", c->quant, paths[0], paths[5]);
    const lbr_path gp = c->gemm_path ? c->gemm_path : c->path;
    CHECK_MSG(paths[1] == c->path && paths[3] == c->path && paths[4] == gp, "%s: paths %s %s %s, expected %s %s", c->quant,
              lbr_path_names[paths[1]], lbr_path_names[paths[3]], lbr_path_names[paths[4]], lbr_path_names[c->path],
              lbr_path_names[gp]);
    int agree = 0, close = 0;
    double scale = 0, maxd = 0;
    for (int i = 0; i < N * 7; i++) scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < N; i++) {
        agree += argmax(out + i * 7, 7) == argmax(ref + i * 7, 7);
        double d = 0;
        for (int k = 0; k < 7; k++) d = fmax(d, fabs((double)out[i * 7 + k] - ref[i * 7 + k]));
        close += d <= 1e-4 * scale;
        maxd = fmax(maxd, d);
    }
    /* a code can flip where a pre-activation sits within rounding of a threshold (the
     * sums are added in another order); on these sizes that is rare */
    CHECK_MSG(agree >= N - 1, "%s: %d of %d predictions agree", c->quant, agree, N);
    CHECK_MSG(close >= N * 97 / 100, "%s: %d of %d samples' logits within 1e-4 of %g (max diff %g)", c->quant, close, N, scale, maxd);
    /* integer kernels: the SIMD variants give the references' bits */
    CHECK(!run_lbm(buf, len, &refk, x, N, out2, NULL));
    CHECK_MSG(!memcmp(out, out2, sizeof(float) * N * 7), "%s: best and ref kernels differ", c->quant);
    CHECK(!run_lbm(buf, len, &avx2, x, N, out2, NULL));
    CHECK_MSG(!memcmp(out, out2, sizeof(float) * N * 7), "%s: best and AVX2 kernels differ", c->quant);
    CHECK(!run_lbm(buf, len, &nox, x, N, out2, NULL)); /* xnor layers on bitserial */
    CHECK_MSG(!memcmp(out, out2, sizeof(float) * N * 7), "%s: xnor and bitserial differ", c->quant);
    if (!strncmp(c->quant, "uniq:", 5)) { /* every codebook layer on the bucket kernels: the same predictions */
        lbr_path bp[16] = {0};
        CHECK(!run_lbm(buf, len, &buck, x, N, out2, bp));
        CHECK_MSG(bp[1] == LBR_PATH_BUCKET && bp[3] == LBR_PATH_BUCKET && bp[4] == LBR_PATH_BUCKET,
                  "%s: prefer_bucket paths %s %s %s", c->quant, lbr_path_names[bp[1]], lbr_path_names[bp[3]],
                  lbr_path_names[bp[4]]);
        agree = 0;
        for (int i = 0; i < N; i++) agree += argmax(out2 + i * 7, 7) == argmax(ref + i * 7, 7);
        CHECK_MSG(agree >= N - 1, "%s: bucket path: %d of %d predictions agree", c->quant, agree, N);
    }
    /* every layer in float on the decoded values: the same predictions */
    CHECK(!run_lbm(buf, len, &flt, x, N, out2, NULL));
    agree = close = 0;
    for (int i = 0; i < N; i++) {
        agree += argmax(out2 + i * 7, 7) == argmax(ref + i * 7, 7);
        double d = 0;
        for (int k = 0; k < 7; k++) d = fmax(d, fabs((double)out2[i * 7 + k] - ref[i * 7 + k]));
        close += d <= 1e-4 * scale;
    }
    CHECK_MSG(agree >= N - 1, "%s: float path: %d of %d predictions agree", c->quant, agree, N);
    CHECK_MSG(close >= N * 97 / 100, "%s: float path: %d of %d samples' logits within 1e-4 of %g", c->quant, close, N, scale);
    /* the file is the codes at their width plus what the header says is beside them */
    CHECK(info.file_bytes == (int64_t)len && (double)len >= info.weight_bits / 8.0 + (double)info.meta_bytes);
    printf("%-36s %6zu bytes (weights %.0f + meta %lld), agree %d/%d, paths %s\n", c->quant, len, info.weight_bits / 8.0,
           (long long)info.meta_bytes, agree, N, lbr_path_names[paths[1]]);
done:
    free(buf);
    free(ref);
    free(out);
    free(out2);
    lb_model_destroy(m);
}

/* ------------------------------------------------------------------ language models */

/* Token models: an embedding (ReLU and its quantizer after it, Bit-RNN's form), an LSTM
 * (Bit-RNN cell) or a GRU (tanh cell), dropout, the decoder; every layer quantized
 * (--quant-all). The runtime steps the streams one token a call, carrying the state, and
 * must give the logits lb_model_forward gives for the same sequences from a zero state. */
static const char *LM_SPECS[] = {
    "{\"name\": \"tlstm\", \"input\": {\"tokens\": 6, \"level\": \"word\"}, \"layers\": ["
    "{\"name\": \"e\", \"op\": \"Gather\", \"vocab\": 23, \"dim\": 9}, {\"name\": \"er\", \"op\": \"Relu\"},"
    "{\"name\": \"l\", \"op\": \"LSTM\", \"hidden\": 13, \"bitrnn\": true},"
    "{\"name\": \"d\", \"op\": \"Dropout\", \"p\": 0.5}, {\"name\": \"o\", \"op\": \"Gemm\", \"out\": 23}]}",
    "{\"name\": \"tgru\", \"input\": {\"tokens\": 6, \"level\": \"word\"}, \"layers\": ["
    "{\"name\": \"e\", \"op\": \"Gather\", \"vocab\": 23, \"dim\": 9},"
    "{\"name\": \"g\", \"op\": \"GRU\", \"hidden\": 11},"
    "{\"name\": \"o\", \"op\": \"Gemm\", \"out\": 23}]}",
    /* two stacked LSTMs: the second reads the first's hidden-state codes */
    "{\"name\": \"t2lstm\", \"input\": {\"tokens\": 6, \"level\": \"word\"}, \"layers\": ["
    "{\"name\": \"e\", \"op\": \"Gather\", \"vocab\": 23, \"dim\": 9}, {\"name\": \"er\", \"op\": \"Relu\"},"
    "{\"name\": \"l1\", \"op\": \"LSTM\", \"hidden\": 10, \"bitrnn\": true},"
    "{\"name\": \"l2\", \"op\": \"LSTM\", \"hidden\": 7, \"bitrnn\": true},"
    "{\"name\": \"o\", \"op\": \"Gemm\", \"out\": 23}]}",
};
static const char *LM_QUANT[] = {"fp32", "uniform:2/2", "uniform:4/4", "balanced:3/3", "syq:2/4,group=layer", "qn:2/2",
                                 "uniq:4/4", "pot:4/4", "syq:1/1,group=layer"};

static void check_lm(const char *spec, const char *quant) {
    enum { V = 23, T = 6, S = 40, NT = S * T };
    lb_model *m;
    CHECK_OK(lb_model_create_from_json(&m, spec, strlen(spec), "lm"));
    CHECK_OK(lb_model_set_quant(m, quant, 1));
    lb_model_init_params(m, 3);
    /* biases away from zero, so the recurrent bias placement is tested */
    uint64_t sd = 99;
    for (int k = 0; k < m->n_tensors; k++) {
        lb_tensor_entry *t = &m->tensors[k];
        size_t L = strlen(t->name);
        if (L > 5 && !strcmp(t->name + L - 5, ".bias"))
            for (int64_t i = 0; i < t->size; i++) m->params[t->offset + i] = 0.6f * (frand(&sd) - 0.5f);
    }
    lb_quant_init_weights(m);
    float *x = malloc(sizeof(float) * NT), *ref = malloc(sizeof(float) * NT * V), *out = malloc(sizeof(float) * S * V);
    for (int i = 0; i < NT; i++) x[i] = (float)(lbt_splitmix64(&sd) % V);
    if (lb_quant_needs_calibration(m)) CHECK_OK(lb_quant_calibrate(m, x, NT, 60));
    CHECK_OK(lb_model_forward(m, x, NT, 0, ref));
    uint8_t *buf = NULL;
    size_t len = 0;
    lb_export_info info;
    lb_status st = lb_export_lbm_buffer(m, &buf, &len, &info);
    CHECK_MSG(st == LB_OK, "%s %s: export: %s", m->name, quant, lb_last_error());
    char err[256];
    size_t need = 0;
    void *arena = NULL;
    lbr_model *rm = NULL;
    if (!buf || lbr_plan(buf, len, S, NULL, &need, err, sizeof err) != LBR_OK || !(arena = aligned_alloc(64, (need + 63) / 64 * 64)) ||
        (memset(arena, 0xA5, (need + 63) / 64 * 64), lbr_load(&rm, buf, len, S, arena, need, NULL, err, sizeof err)) != LBR_OK) {
        CHECK_MSG(0, "%s %s: runtime: %s", m->name, quant, err);
        goto done;
    }
    int vocab = 0;
    CHECK(lbr_is_token_model(rm, &vocab) && vocab == V && lbr_num_outputs(rm) == V);
    float dummy[V];
    CHECK(lbr_run(rm, x, 1, dummy) == LBR_ERR_ARG); /* token models take lbr_run_tokens */
    double scale = 0, maxd = 0;
    for (int i = 0; i < NT * V; i++) scale = fmax(scale, fabs(ref[i]));
    int close = 0, agree = 0;
    for (int pass = 0; pass < 2; pass++) { /* twice: lbr_reset starts every stream afresh */
        lbr_reset(rm);
        for (int t = 0; t < T; t++) {
            int32_t tok[S];
            for (int b = 0; b < S; b++) tok[b] = (int32_t)x[b * T + t];
            CHECK(lbr_run_tokens(rm, tok, S, out) == LBR_OK);
            if (t == 0) {
                CHECK(lbr_run_tokens(rm, tok, S - 1, dummy) == LBR_ERR_ARG); /* another batch mid-stream */
                int32_t bad = V;
                CHECK(lbr_run_tokens(rm, &bad, 1, dummy) == LBR_ERR_ARG);
            }
            for (int b = 0; b < S && pass == 1; b++) {
                const float *r = ref + (size_t)(b * T + t) * V, *o = out + (size_t)b * V;
                double d = 0;
                for (int k = 0; k < V; k++) d = fmax(d, fabs((double)o[k] - r[k]));
                close += d <= 1e-4 * scale;
                agree += argmax(o, V) == argmax(r, V);
                maxd = fmax(maxd, d);
            }
        }
    }
    /* a hidden-state code can flip where h sits within rounding of a step (the gate sums
     * are added in another order), and the flip then runs on through the sequence */
    CHECK_MSG(agree >= NT * 98 / 100, "%s %s: %d of %d next-token predictions agree", m->name, quant, agree, NT);
    CHECK_MSG(close >= NT * 95 / 100, "%s %s: %d of %d steps' logits within 1e-4 of %g (max diff %g)", m->name, quant, close,
              NT, scale, maxd);
    /* the scalar reference kernels give the same bits, step after step */
    {
        const lbr_options refk = {.ref_kernels = 1};
        size_t need2 = 0;
        void *arena2 = NULL;
        lbr_model *r2 = NULL;
        float *out2 = malloc(sizeof(float) * S * V);
        int same = 1;
        if (out2 && lbr_plan(buf, len, S, &refk, &need2, err, sizeof err) == LBR_OK &&
            (arena2 = aligned_alloc(64, (need2 + 63) / 64 * 64)) &&
            lbr_load(&r2, buf, len, S, arena2, need2, &refk, err, sizeof err) == LBR_OK) {
            lbr_reset(rm);
            for (int t = 0; t < T; t++) {
                int32_t tok[S];
                for (int b = 0; b < S; b++) tok[b] = (int32_t)x[b * T + t];
                same &= lbr_run_tokens(rm, tok, S, out) == LBR_OK && lbr_run_tokens(r2, tok, S, out2) == LBR_OK &&
                        !memcmp(out, out2, sizeof(float) * S * V);
            }
        } else {
            same = 0;
        }
        CHECK_MSG(same, "%s %s: best and reference kernels differ (or the reference did not load: %s)", m->name, quant, err);
        free(arena2);
        free(out2);
    }
    lbr_layer_info li[4];
    for (int i = 0; i < 4 && i < lbr_num_layers(rm); i++) lbr_layer(rm, i, &li[i]);
    const int nl = lbr_num_layers(rm);
    CHECK(nl == m->n_nodes - (strstr(spec, "Relu") ? 1 : 0) - (strstr(spec, "Dropout") ? 1 : 0));
    CHECK(li[0].op == LBR_OP_GATHER && (li[1].op == LBR_OP_LSTM || li[1].op == LBR_OP_GRU));
    /* with a quantizer after the embedding, its table is stored as each token's output codes */
    const int emb_codes = strstr(spec, "\"er\"") && strcmp(quant, "fp32");
    CHECK_MSG(emb_codes ? li[0].w_bits == li[0].out_bits && li[0].out_bits > 0 : li[0].w_bits == 0,
              "%s %s: embedding table of %d-bit entries, %d-bit outputs", m->name, quant, li[0].w_bits, li[0].out_bits);
    printf("%-6s %-22s %6zu bytes, agree %d/%d, close %d, rnn path %s (%s), decoder %s\n", m->name, quant, len, agree, NT,
           close, lbr_path_names[li[1].path], li[1].variant, lbr_path_names[li[nl - 1 < 3 ? nl - 1 : 3].path]);
done:
    free(arena);
    free(buf);
    free(x);
    free(ref);
    free(out);
    lb_model_destroy(m);
}

/* A token model's embedding table of codes: both tables, or codes of another width than
 * the output's, are refused with the layer and field named. */
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void check_gather_refusals(void) {
    lb_model *m;
    CHECK_OK(lb_model_create_from_json(&m, LM_SPECS[0], strlen(LM_SPECS[0]), "lm"));
    CHECK_OK(lb_model_set_quant(m, "uniform:2/2", 1));
    lb_model_init_params(m, 3);
    lb_quant_init_weights(m);
    uint8_t *buf = NULL;
    size_t len = 0;
    lb_export_info info;
    CHECK_OK(lb_export_lbm_buffer(m, &buf, &len, &info));
    lb_model_destroy(m);
    if (!buf) return;
    const size_t layer0 = 64 + 32 * (size_t)get32(buf + LBR_H_N_ARRAYS);
    const uint32_t codes = get32(buf + layer0 + 4 * LBR_L_W_CODES), bits = get32(buf + layer0 + 4 * LBR_L_W_BITS);
    CHECK_MSG(codes && bits == 2 && !get32(buf + layer0 + 4 * LBR_L_W_FLOAT), "table: codes %u, %u bits", codes, bits);
    const struct { int field; uint32_t value; const char *want; } bad[] = {
        {LBR_L_W_FLOAT, codes, "layer 0: W_FLOAT: "},
        {LBR_L_W_BITS, 3, "layer 0: W_BITS: is 3, but a GATHER table of codes holds output codes"},
        {LBR_L_W_BITS, 9, "layer 0: W_BITS: is 9, must be 1 .. 8"},
        {LBR_L_W_CODES, 0, "layer 0: W_BITS: is 2, must be 0 for a float GATHER table"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *w = malloc(len);
        memcpy(w, buf, len);
        put32(w + layer0 + 4 * (size_t)bad[i].field, bad[i].value);
        const size_t tables_end = 64 + 32 * (size_t)get32(w + LBR_H_N_ARRAYS) + 128 * (size_t)get32(w + LBR_H_N_LAYERS);
        put32(w + LBR_H_TABLES_CRC, lbr_crc32(w + 64, tables_end - 64, 0));
        put32(w + LBR_H_HEADER_CRC, lbr_crc32(w, LBR_H_HEADER_CRC, 0));
        char err[256] = "";
        size_t need = 0;
        const int rc = lbr_plan(w, len, 4, NULL, &need, err, sizeof err);
        CHECK_MSG(rc != LBR_OK && strstr(err, bad[i].want), "gather refusal %zu: rc %d, \"%s\", \"%s\" expected", i, rc,
                  err, bad[i].want);
        free(w);
    }
    free(buf);
}

int main(void) {
    lb_set_threads(1);
    float *x = malloc(sizeof(float) * N * 3 * 11 * 11);
    uint64_t s = 5;
    for (int i = 0; i < N * 3 * 11 * 11; i++) x[i] = 2.0f * frand(&s) - 0.7f;
    for (size_t i = 0; i < sizeof CFGS / sizeof CFGS[0]; i++) check_cfg(&CFGS[i], x);
    free(x);
    for (size_t i = 0; i < sizeof LM_SPECS / sizeof LM_SPECS[0]; i++)
        for (size_t j = 0; j < sizeof LM_QUANT / sizeof LM_QUANT[0]; j++) check_lm(LM_SPECS[i], LM_QUANT[j]);
    check_gather_refusals();
    return lbt_report("test_deploy");
}
