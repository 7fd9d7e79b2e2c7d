/* lowbit run */
#include "cli.h"
#include "lbr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *USAGE = "MODEL.lbm [--data NAME|DIR|TEXT] [--batch B] [--kernels best|ref|float] [--check CKPT] [--json]";
static const char *DESC =
    "Run a packed model (from 'lowbit export') with the runtime on the test split of a data set:\n"
    "accuracy, throughput at --batch (default 64) over the whole split, and latency at batch 1 over\n"
    "the first --latency-samples images. Single-threaded. --check CKPT also runs the checkpoint the\n"
    "model came from in lowbit itself (as 'lowbit eval' does) and reports on how many images the two\n"
    "predict the same class and how far apart their logits are: train equals deploy.\n"
    "A language model (from a kjv-* checkpoint) runs on its corpus (--data kjv by default), tokenized\n"
    "with the vocabulary exported beside it (MODEL.vocab.json, or --vocab): perplexity over --batch\n"
    "streams (default 10, as 'lowbit eval'), one token per stream and call with the state carried,\n"
    "tokens/s, and the latency of one token of one stream; --check compares with 'lowbit eval'.";

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* the whole file in a 64-byte aligned buffer (the runtime's arrays are then aligned) */
static int read_model(const char *cmd, const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return cli_error(cmd, EXIT_RUNTIME, "%s: cannot open", path);
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return cli_error(cmd, EXIT_RUNTIME, "%s: cannot read (not a regular file?)", path);
    }
    *buf = aligned_alloc(64, ((size_t)n + 64) / 64 * 64);
    if (!*buf) {
        fclose(f);
        return cli_error(cmd, EXIT_RUNTIME, "%s: out of memory for %ld bytes", path, n);
    }
    size_t got = fread(*buf, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) return cli_error(cmd, EXIT_RUNTIME, "%s: read %zu of %ld bytes", path, got, n);
    *len = (size_t)n;
    return EXIT_OK;
}

/* A token model on a text corpus, as lb_eval_lm evaluates it: the split cut into `batch`
 * streams of L tokens, each stepped from a zero state with its state carried to the end,
 * each prediction scored against the next token. */
static int run_lm(const char *path, lbr_model *rm, const char *data, const char *vocab_arg, const char *split, int batch,
                  int lat_n, const char *kernels, const char *check, int json) {
    const char *cmd = "run";
    char vpath[4096];
    if (!vocab_arg && cli_vocab_path(path, vpath, sizeof vpath)) return cli_error(cmd, EXIT_USAGE, "%s: path too long", path);
    const char *vp = vocab_arg ? vocab_arg : vpath;
    uint8_t *vbuf = NULL;
    size_t vlen = 0;
    lb_vocab v = {0};
    lb_text_level level;
    lb_text *t = NULL;
    lb_model *m = NULL;
    float *out = NULL;
    char *mine = NULL;
    int ret, V = 0;
    lbr_is_token_model(rm, &V);
    if ((ret = read_model(cmd, vp, &vbuf, &vlen))) {
        fprintf(stderr, "lowbit run: %s is a language model: its vocabulary comes from %s ('lowbit export' writes it) or --vocab\n",
                path, vp);
        return ret;
    }
    vbuf[vlen] = 0; /* the buffer has room: read_model rounds up past the end */
    lb_status st;
    if ((st = lb_vocab_from_json(&v, &level, (const char *)vbuf, vp))) { ret = cli_fail_status(cmd, st); goto done; }
    if (v.n > V) { /* a model may embed more ids than its corpus has tokens, never fewer */
        ret = cli_error(cmd, EXIT_USAGE, "%s has %d tokens, %s embeds only %d", vp, v.n, path, V);
        goto done;
    }
    if ((st = lb_text_load(&t, data, level, level == LB_TEXT_CHAR ? V : V - 2))) { ret = cli_fail_status(cmd, st); goto done; }
    if (!(mine = lb_vocab_to_json(&t->vocab, t->level)) || strcmp(mine, (const char *)vbuf)) {
        ret = mine ? cli_error(cmd, EXIT_USAGE, "%s: the vocabulary of %s differs from %s", data, t->source, vp)
                   : cli_error(cmd, EXIT_RUNTIME, "out of memory");
        goto done;
    }
    const int sp = !strcmp(split, "train") ? 0 : !strcmp(split, "valid") ? 1 : 2;
    const int64_t L = t->len[sp] / batch;
    if (L < 2) {
        ret = cli_error(cmd, EXIT_USAGE, "%s: the %s split has %lld tokens, too few for %d streams", t->source, split,
                        (long long)t->len[sp], batch);
        goto done;
    }
    const int32_t *ids = t->ids[sp];
    out = malloc(sizeof(float) * (size_t)batch * (size_t)V);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)batch);
    if (!out || !tok) { free(tok); ret = cli_error(cmd, EXIT_RUNTIME, "out of memory"); goto done; }
    double loss = 0, t_batch = 0; /* the runtime's time only, not the scoring's */
    int64_t hits = 0, n = 0;
    lbr_reset(rm);
    for (int64_t i = 0; i + 1 < L; i++) {
        for (int b = 0; b < batch; b++) tok[b] = ids[(int64_t)b * L + i];
        const double t0 = now();
        const int rc = lbr_run_tokens(rm, tok, batch, out);
        t_batch += now() - t0;
        if (rc != LBR_OK) { free(tok); ret = cli_error(cmd, EXIT_RUNTIME, "lbr_run_tokens failed"); goto done; }
        for (int b = 0; b < batch; b++) {
            const float *o = out + (size_t)b * V;
            const int32_t y = ids[(int64_t)b * L + i + 1];
            /* log-softmax in double: the loss of the float logits */
            double mx = o[0], z = 0;
            for (int k = 1; k < V; k++) mx = o[k] > mx ? o[k] : mx;
            for (int k = 0; k < V; k++) z += exp((double)o[k] - mx);
            loss += log(z) + mx - (double)o[y];
            hits += argmax(o, V) == y;
            n++;
        }
    }
    free(tok);
    /* latency: one stream, one token a call */
    const int64_t nl = lat_n < L - 1 ? lat_n : L - 1;
    lbr_reset(rm);
    double t0 = now();
    for (int64_t i = 0; i < nl; i++) lbr_run_tokens(rm, ids + i, 1, out);
    const double t_one = now() - t0;
    lbr_reset(rm);
    const double ce = loss / (double)n, ppl = exp(ce), bpc = ce / log(2.0), acc = (double)hits / (double)n;
    const double tps = t_batch > 0 ? (double)n / t_batch : 0, tps1 = t_one > 0 ? (double)nl / t_one : 0;
    lb_lm_result r = {0};
    if (check) {
        if ((st = cli_model_for_ckpt(NULL, check, NULL, 0, &m)) || (st = lb_eval_lm(m, t, sp, batch, &r))) {
            ret = cli_fail_status(cmd, st);
            goto done;
        }
    }
    if (json) {
        printf("{\"perplexity\": %.4f, \"bpc\": %.4f, \"loss\": %.6f, \"accuracy\": %.4f, \"tokens\": %lld, \"split\": \"%s\", "
               "\"batch\": %d, \"tok_s_batch\": %.1f, \"tok_s_b1\": %.1f, \"latency_ms_b1\": %.4f, \"kernels\": \"%s\"",
               ppl, bpc, ce, acc, (long long)n, split, batch, tps, tps1, nl ? 1e3 * t_one / (double)nl : 0.0, kernels);
        if (check) printf(", \"check_perplexity\": %.4f, \"check_accuracy\": %.4f", r.perplexity, r.accuracy);
        printf("}\n");
    }
    fprintf(stderr, "lowbit run: %s on %s (%s): perplexity %.2f, %.4f bits per %s, accuracy %.2f%% (%lld tokens); "
                    "%.0f tokens/s over %d streams; one stream: %.3f ms per token\n",
            path, t->source, split, ppl, bpc, level == LB_TEXT_CHAR ? "character" : "word", 100 * acc, (long long)n, tps, batch,
            nl ? 1e3 * t_one / (double)nl : 0.0);
    if (check)
        fprintf(stderr, "lowbit run: against %s ('lowbit eval'): perplexity %.4f vs %.4f (%+.4f%%), accuracy %.2f%% vs %.2f%%\n",
                check, ppl, r.perplexity, 100 * (ppl / r.perplexity - 1), 100 * acc, 100 * r.accuracy);
done:
    lb_model_destroy(m);
    lb_text_free(t);
    lb_vocab_free(&v);
    free(mine);
    free(out);
    free(vbuf);
    return ret;
}

int cmd_run(int argc, char **argv) {
    const char *cmd = "run";
    const char *data = "fashion-mnist", *kernels = "best", *check = NULL, *vocab = NULL, *split = "test";
    int json = 0, batch = 64, prefer_shift = 0, prefer_bucket = 0, no_xnor = 0, lat_n = 1000, threads = 0;
    int64_t limit = 0;
    cli_arg args[] = {
        {"--data", ARG_STR, &data, "NAME|DIR|IMG,LBL", "data set (default fashion-mnist), test split", 0},
        {"--batch", ARG_INT, &batch, "B", "batch for the accuracy pass and throughput (default 64)", 0},
        {"--limit", ARG_I64, &limit, "N", "use the first N samples", 0},
        {"--latency-samples", ARG_INT, &lat_n, "N", "images timed one at a time (default 1000; 0: none)", 0},
        {"--kernels", ARG_STR, &kernels, "best|ref|float", "best: the fastest variants this CPU runs; ref: scalar references "
                                                           "(bit-identical); float: every layer on decoded float values", 0},
        {"--prefer-shift", ARG_FLAG, &prefer_shift, NULL, "power-of-two weights on the shift kernels rather than int8", 0},
        {"--prefer-bucket", ARG_FLAG, &prefer_bucket, NULL, "codebook weights (UNIQ) on the bucket kernels even where the float path "
         "is faster (2^w_bits x input bits > 24)", 0},
        {"--no-xnor", ARG_FLAG, &no_xnor, NULL, "binary weights with 1-bit inputs on the bit-serial kernels rather than "
                                                 "xnor (same results; for comparison)", 0},
        {"--check", ARG_STR, &check, "CKPT", "compare predictions and logits with lowbit's own forward of CKPT", 0},
        {"--threads", ARG_INT, &threads, "T", "threads for --check's lowbit forward (the runtime uses one)", 0},
        {"--vocab", ARG_STR, &vocab, "FILE", "language models: the vocabulary (default MODEL.vocab.json)", 0},
        {"--split", ARG_STR, &split, "test|valid|train", "language models: which split (default test)", 0},
        {"--json", ARG_FLAG, &json, NULL, "print one JSON object on stdout", 0},
    };
    if (argc < 3 || argv[2][0] == '-') {
        if (argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
            cli_print_help(stdout, cmd, USAGE, DESC, args, (int)(sizeof args / sizeof args[0]));
            return EXIT_OK;
        }
        return cli_error(cmd, EXIT_USAGE, "the packed model (MODEL.lbm) comes first (see 'lowbit run --help')");
    }
    const char *path = argv[2];
    int rc = cli_parse(argc, argv, 3, args, (int)(sizeof args / sizeof args[0]), cmd, USAGE, DESC);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (batch < 1 || batch > 65536) return cli_error(cmd, EXIT_USAGE, "--batch must be in [1, 65536]");
    if (lat_n < 0) return cli_error(cmd, EXIT_USAGE, "--latency-samples must be >= 0");
    if (threads < 0) return cli_error(cmd, EXIT_USAGE, "--threads must be positive");
    lb_set_threads(threads);
    lbr_options opt = {0};
    if (!strcmp(kernels, "ref")) opt.ref_kernels = 1;
    else if (!strcmp(kernels, "float")) opt.float_only = 1;
    else if (strcmp(kernels, "best")) return cli_error(cmd, EXIT_USAGE, "--kernels must be best, ref or float, not '%s'", kernels);
    opt.prefer_shift = prefer_shift;
    opt.prefer_bucket = prefer_bucket;
    opt.no_xnor = no_xnor;

    uint8_t *buf = NULL;
    size_t len = 0;
    void *arena = NULL;
    float *out = NULL, *ref = NULL;
    lb_dataset *d = NULL;
    lb_model *m = NULL;
    int ret = EXIT_OK;
    char err[256];
    size_t need = 0;
    lbr_model *rm = NULL;
    lbr_file hdr;
    lb_status st;
    if ((ret = read_model(cmd, path, &buf, &len))) goto done;
    const int na = (int)(sizeof args / sizeof args[0]);
    /* a token model (layer 0 is GATHER) steps 10 streams by default, as 'lowbit eval' */
    if (lbr_file_open(&hdr, buf, len, err, sizeof err) != LBR_OK) {
        ret = cli_error(cmd, EXIT_RUNTIME, "%s: %s", path, err);
        goto done;
    }
    if (hdr.n_layers && lbr_layer_field(&hdr, 0, LBR_L_OP) == LBR_OP_GATHER && !args[cli_find(args, na, "--batch")].seen)
        batch = 10;
    if (lbr_plan(buf, len, batch, &opt, &need, err, sizeof err) != LBR_OK) {
        ret = cli_error(cmd, EXIT_RUNTIME, "%s: %s", path, err);
        goto done;
    }
    if (!(arena = aligned_alloc(64, (need + 63) / 64 * 64))) { ret = cli_error(cmd, EXIT_RUNTIME, "out of memory"); goto done; }
    if (lbr_load(&rm, buf, len, batch, arena, need, &opt, err, sizeof err) != LBR_OK) {
        ret = cli_error(cmd, EXIT_RUNTIME, "%s: %s", path, err);
        goto done;
    }
    if (lbr_is_token_model(rm, NULL)) {
        if (strcmp(split, "test") && strcmp(split, "valid") && strcmp(split, "train")) {
            ret = cli_error(cmd, EXIT_USAGE, "--split must be test, valid or train");
            goto done;
        }
        ret = run_lm(path, rm, args[cli_find(args, na, "--data")].seen ? data : "kjv", vocab, split, batch, lat_n, kernels, check, json);
        goto done;
    }
    if ((st = lb_dataset_load(&d, data, LB_SPLIT_TEST))) { ret = cli_fail_status(cmd, st); goto done; }
    lb_dataset_truncate(d, limit);
    if ((uint32_t)d->c != hdr.in_c || (uint32_t)d->h != hdr.in_h || (uint32_t)d->w != hdr.in_w) {
        ret = cli_error(cmd, EXIT_USAGE, "%s takes %ux%ux%u inputs but %s has %dx%dx%d", path, hdr.in_c, hdr.in_h, hdr.in_w,
                        d->source, d->c, d->h, d->w);
        goto done;
    }
    const int K = lbr_num_outputs(rm);
    const int64_t per = (int64_t)d->c * d->h * d->w;
    out = malloc(sizeof(float) * (size_t)d->n * (size_t)K);
    if (check) ref = malloc(sizeof(float) * (size_t)d->n * (size_t)K);
    if (!out || (check && !ref)) { ret = cli_error(cmd, EXIT_RUNTIME, "out of memory"); goto done; }
    double t0 = now();
    for (int64_t lo = 0; lo < d->n; lo += batch) {
        int B = (int)(d->n - lo < batch ? d->n - lo : batch);
        if (lbr_run(rm, d->x + lo * per, B, out + lo * K) != LBR_OK) { ret = cli_error(cmd, EXIT_RUNTIME, "lbr_run failed"); goto done; }
    }
    double t_batch = now() - t0;
    int64_t correct = 0;
    for (int64_t i = 0; i < d->n; i++) correct += argmax(out + i * K, K) == d->y[i];
    const int nl = (int)(lat_n < d->n ? lat_n : d->n);
    float *one = malloc(sizeof(float) * (size_t)K);
    if (!one) { ret = cli_error(cmd, EXIT_RUNTIME, "out of memory"); goto done; }
    t0 = now();
    for (int i = 0; i < nl; i++) lbr_run(rm, d->x + (int64_t)i * per, 1, one);
    double t_one = now() - t0;
    free(one);
    /* train equals deploy: lowbit's own forward of the checkpoint on the same images */
    int64_t agree = 0;
    double maxdiff = 0, maxabs = 0;
    if (check) {
        if ((st = cli_model_for_ckpt(NULL, check, NULL, 0, &m))) { ret = cli_fail_status(cmd, st); goto done; }
        if (lb_model_num_outputs(m) != K) {
            ret = cli_error(cmd, EXIT_USAGE, "%s has %d outputs, %s has %d", check, lb_model_num_outputs(m), path, K);
            goto done;
        }
        for (int64_t lo = 0; lo < d->n; lo += 500) {
            int B = (int)(d->n - lo < 500 ? d->n - lo : 500);
            if ((st = lb_model_forward(m, d->x + lo * per, B, 0, ref + lo * K))) { ret = cli_fail_status(cmd, st); goto done; }
        }
        for (int64_t i = 0; i < d->n; i++) {
            agree += argmax(out + i * K, K) == argmax(ref + i * K, K);
            for (int k = 0; k < K; k++) {
                maxdiff = fmax(maxdiff, fabs((double)out[i * K + k] - ref[i * K + k]));
                maxabs = fmax(maxabs, fabs((double)ref[i * K + k]));
            }
        }
    }
    const double acc = d->n ? (double)correct / (double)d->n : 0;
    const double ips_b = t_batch > 0 ? (double)d->n / t_batch : 0, ips_1 = t_one > 0 ? nl / t_one : 0;
    if (json) {
        printf("{\"accuracy\": %.4f, \"samples\": %lld, \"batch\": %d, \"img_s_batch\": %.1f, \"img_s_b1\": %.1f, "
               "\"latency_ms_b1\": %.4f, \"kernels\": \"%s\"", acc, (long long)d->n, batch, ips_b, ips_1,
               nl ? 1e3 * t_one / nl : 0.0, kernels);
        if (check)
            printf(", \"agree\": %.6f, \"max_logit_diff\": %.6g, \"max_abs_logit\": %.6g", (double)agree / (double)d->n, maxdiff,
                   maxabs);
        printf("}\n");
    }
    fprintf(stderr, "lowbit run: %s on %s: accuracy %.2f%% (%lld samples); %.0f img/s at batch %d; batch 1: %.3f ms (%.0f img/s)\n",
            path, d->source, 100 * acc, (long long)d->n, ips_b, batch, nl ? 1e3 * t_one / nl : 0.0, ips_1);
    if (check)
        fprintf(stderr, "lowbit run: against %s: same prediction on %.3f%% of images (%lld differ); logits differ by at most %.3g "
                        "(largest |logit| %.3g)\n", check, 100.0 * (double)agree / (double)d->n, (long long)(d->n - agree), maxdiff,
                maxabs);
done:
    lb_model_destroy(m);
    lb_dataset_free(d);
    free(out);
    free(ref);
    free(arena);
    free(buf);
    return ret;
}
