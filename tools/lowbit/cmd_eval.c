/* lowbit eval */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE = "--ckpt ckpt.safetensors [--model NAME|spec.json] [options]";
static const char *DESC =
    "Evaluate a checkpoint on the test split of a data set: accuracy and mean cross-entropy.\n"
    "Without --model, the model is built from the spec stored in the checkpoint. A language model\n"
    "is evaluated on its corpus (--data kjv by default; --split test|valid|train): perplexity,\n"
    "bits per token (per character at char level) and next-token accuracy, over 10 streams.";

/* The corpus must be tokenized as the model was trained: the same vocabulary. */
static int eval_lm(lb_model *m, const char *ckpt, const char *data, const char *split, int batch, int json) {
    const char *cmd = "eval";
    lb_text *t = NULL;
    lb_status st = cli_load_text(m, data, &t);
    if (st) return cli_fail_status(cmd, st);
    int ret = EXIT_OK;
    char *mine = lb_vocab_to_json(&t->vocab, t->level), *theirs = malloc(64 << 20);
    if (!mine || !theirs) { ret = cli_error(cmd, EXIT_RUNTIME, "out of memory"); goto done; }
    if (!lb_checkpoint_meta(ckpt, "vocab", theirs, 64 << 20) && strcmp(mine, theirs)) {
        ret = cli_error(cmd, EXIT_USAGE, "%s: the vocabulary of %s differs from the one %s was trained with", data, t->source, ckpt);
        goto done;
    }
    int sp = !strcmp(split, "train") ? 0 : !strcmp(split, "valid") ? 1 : 2;
    lb_lm_result r;
    if ((st = lb_eval_lm(m, t, sp, batch, &r))) { ret = cli_fail_status(cmd, st); goto done; }
    fprintf(stderr, "lowbit eval: %s on %s (%s): perplexity %.2f, %.4f bits per %s, accuracy %.2f%% (%lld tokens), %.0f tokens/s\n",
            ckpt, t->source, split, r.perplexity, r.bpc, lb_model_text_level(m) ? "character" : "word", 100 * r.accuracy,
            (long long)r.tokens, (double)r.tokens / (r.seconds > 0 ? r.seconds : 1e-9));
    if (json)
        printf("{\"perplexity\": %.4f, \"bpc\": %.4f, \"loss\": %.4f, \"accuracy\": %.4f, \"tokens\": %lld, \"split\": \"%s\", "
               "\"quant\": \"%s\"}\n", r.perplexity, r.bpc, r.loss, r.accuracy, (long long)r.tokens, split, lb_model_quant(m));
done:
    free(mine);
    free(theirs);
    lb_text_free(t);
    return ret;
}

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    const char *model = NULL, *ckpt = NULL, *data = "fashion-mnist", *quant = NULL, *split = "test";
    int json = 0, batch = 500, threads = 0, quant_all = 0;
    int64_t limit = 0;
    cli_arg args[] = {
        {"--model", ARG_STR, &model, "NAME|FILE", "zoo model or JSON spec (default: the checkpoint's own)", 0},
        {"--ckpt", ARG_STR, &ckpt, "CKPT", "checkpoint (safetensors), required", 0},
        {"--data", ARG_STR, &data, "NAME|DIR|IMG,LBL", "data set (default fashion-mnist)", 0},
        {"--split", ARG_STR, &split, "test|train", "which split (default test; language models also valid)", 0},
        {"--quant", ARG_STR, &quant, "Q", "quantization, e.g. balanced:2/4 (default: as the checkpoint was trained)", 0},
        {"--quant-all", ARG_FLAG, &quant_all, NULL, "quantize the first and last layers too", 0},
        {"--batch", ARG_INT, &batch, "B", "evaluation batch size (default 500; language models: streams, default 10)", 0},
        {"--limit", ARG_I64, &limit, "N", "use the first N samples", 0},
        {"--threads", ARG_INT, &threads, "T", "threads", 0},
        {"--json", ARG_FLAG, &json, NULL, "print one JSON object on stdout", 0},
    };
    int rc = cli_parse(argc, argv, 2, args, (int)(sizeof args / sizeof args[0]), cmd, USAGE, DESC);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (!ckpt) return cli_error(cmd, EXIT_USAGE, "--ckpt is required (see 'lowbit eval --help')");
    if (strcmp(split, "test") && strcmp(split, "train") && strcmp(split, "valid"))
        return cli_error(cmd, EXIT_USAGE, "--split must be test, valid or train");
    if (batch < 1 || batch > 65536) return cli_error(cmd, EXIT_USAGE, "--batch must be in [1, 65536]");
    if (threads < 0) return cli_error(cmd, EXIT_USAGE, "--threads must be positive");
    lb_set_threads(threads);
    lb_model *m = NULL;
    lb_dataset *d = NULL;
    lb_status st;
    lb_eval_result r;
    int ret = EXIT_OK;
    if ((st = cli_model_for_ckpt(model, ckpt, quant, quant_all, &m))) return cli_fail_status(cmd, st);
    if (lb_model_is_lm(m)) {
        int na = (int)(sizeof args / sizeof args[0]);
        ret = eval_lm(m, ckpt, args[cli_find(args, na, "--data")].seen ? data : "kjv", split,
                      args[cli_find(args, na, "--batch")].seen ? batch : 10, json);
        lb_model_destroy(m);
        return ret;
    }
    if (!strcmp(split, "valid")) {
        lb_model_destroy(m);
        return cli_error(cmd, EXIT_USAGE, "--split valid: image data sets have train and test splits only");
    }
    if ((st = lb_dataset_load(&d, data, strcmp(split, "test") ? LB_SPLIT_TRAIN : LB_SPLIT_TEST))) {
        ret = cli_fail_status(cmd, st);
        goto done;
    }
    lb_dataset_truncate(d, limit);
    if ((st = lb_eval(m, d, batch, &r))) { ret = cli_fail_status(cmd, st); goto done; }
    fprintf(stderr, "lowbit eval: %s on %s: accuracy %.2f%% (%lld samples), loss %.4f, %.0f img/s\n", ckpt, d->source,
            100 * r.accuracy, (long long)r.samples, r.loss, (double)r.samples / (r.seconds > 0 ? r.seconds : 1e-9));
    if (json)
        printf("{\"accuracy\": %.4f, \"loss\": %.4f, \"samples\": %lld, \"quant\": \"%s\"}\n", r.accuracy, r.loss,
               (long long)r.samples, lb_model_quant(m));
done:
    lb_dataset_free(d);
    lb_model_destroy(m);
    return ret;
}
