/* lowbit eval */
#include "cli.h"

#include <string.h>

static const char *USAGE = "--ckpt ckpt.safetensors [--model NAME|spec.json] [options]";
static const char *DESC =
    "Evaluate a checkpoint on the test split of a data set: accuracy and mean cross-entropy.\n"
    "Without --model, the model is built from the spec stored in the checkpoint.";

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    const char *model = NULL, *ckpt = NULL, *data = "fashion-mnist", *quant = NULL, *split = "test";
    int json = 0, batch = 500, threads = 0, quant_all = 0;
    int64_t limit = 0;
    cli_arg args[] = {
        {"--model", ARG_STR, &model, "NAME|FILE", "zoo model or JSON spec (default: the checkpoint's own)", 0},
        {"--ckpt", ARG_STR, &ckpt, "CKPT", "checkpoint (safetensors), required", 0},
        {"--data", ARG_STR, &data, "NAME|DIR|IMG,LBL", "data set (default fashion-mnist)", 0},
        {"--split", ARG_STR, &split, "test|train", "which split (default test)", 0},
        {"--quant", ARG_STR, &quant, "Q", "quantization, e.g. balanced:2/4 (default: as the checkpoint was trained)", 0},
        {"--quant-all", ARG_FLAG, &quant_all, NULL, "quantize the first and last layers too", 0},
        {"--batch", ARG_INT, &batch, "B", "evaluation batch size (default 500)", 0},
        {"--limit", ARG_I64, &limit, "N", "use the first N samples", 0},
        {"--threads", ARG_INT, &threads, "T", "threads", 0},
        {"--json", ARG_FLAG, &json, NULL, "print one JSON object on stdout", 0},
    };
    int rc = cli_parse(argc, argv, 2, args, (int)(sizeof args / sizeof args[0]), cmd, USAGE, DESC);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (!ckpt) return cli_error(cmd, EXIT_USAGE, "--ckpt is required (see 'lowbit eval --help')");
    if (strcmp(split, "test") && strcmp(split, "train")) return cli_error(cmd, EXIT_USAGE, "--split must be test or train");
    if (batch < 1 || batch > 65536) return cli_error(cmd, EXIT_USAGE, "--batch must be in [1, 65536]");
    if (threads < 0) return cli_error(cmd, EXIT_USAGE, "--threads must be positive");
    lb_set_threads(threads);
    lb_model *m = NULL;
    lb_dataset *d = NULL;
    lb_status st;
    lb_eval_result r;
    int ret = EXIT_OK;
    if ((st = cli_model_for_ckpt(model, ckpt, quant, quant_all, &m)) ||
        (st = lb_dataset_load(&d, data, strcmp(split, "test") ? LB_SPLIT_TRAIN : LB_SPLIT_TEST))) {
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
