/* Argument parsing, model lookup, error reporting and progress display. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_print_help(FILE *f, const char *cmd, const char *usage, const char *description, const cli_arg *args, int nargs) {
    fprintf(f, "usage: lowbit %s %s\n\n%s\n\noptions:\n", cmd, usage, description);
    for (int i = 0; i < nargs; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", args[i].name, args[i].meta ? " " : "", args[i].meta ? args[i].meta : "");
        fprintf(f, "  %-24s %s\n", left, args[i].help);
    }
    fprintf(f, "  %-24s %s\n", "-h, --help", "show this help");
}

int cli_error(const char *cmd, int code, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "lowbit %s: error: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_fail_status(const char *cmd, lb_status s) {
    return cli_error(cmd, lb_status_is_input_error(s) ? EXIT_USAGE : EXIT_RUNTIME, "%s", lb_last_error());
}

static int parse_value(const char *cmd, cli_arg *a, const char *v) {
    char *end;
    errno = 0;
    switch (a->type) {
    case ARG_STR: *(const char **)a->ptr = v; return 0;
    case ARG_FLAG: return 0;
    case ARG_FLOAT: {
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x)) break;
        *(float *)a->ptr = (float)x;
        return 0;
    }
    case ARG_INT:
    case ARG_I64: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno) break;
        if (a->type == ARG_INT) {
            if (x < -2147483647LL || x > 2147483647LL) break;
            *(int *)a->ptr = (int)x;
        } else {
            *(int64_t *)a->ptr = x;
        }
        return 0;
    }
    case ARG_U64: {
        if (v[0] == '-') break;
        unsigned long long x = strtoull(v, &end, 10);
        if (end == v || *end || errno) break;
        *(uint64_t *)a->ptr = x;
        return 0;
    }
    }
    return cli_error(cmd, EXIT_USAGE, "%s: '%s' is not a valid %s", a->name, v,
                     a->type == ARG_FLOAT ? "number" : a->type == ARG_U64 ? "non-negative integer" : "integer");
}

int cli_parse(int argc, char **argv, int first, cli_arg *args, int nargs, const char *cmd, const char *usage,
              const char *description) {
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            cli_print_help(stdout, cmd, usage, description, args, nargs);
            return -1;
        }
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        cli_arg *a = NULL;
        for (int k = 0; k < nargs; k++)
            if (strlen(args[k].name) == len && !strncmp(args[k].name, arg, len)) a = &args[k];
        if (!a)
            return cli_error(cmd, EXIT_USAGE, "unknown %s '%s' (see 'lowbit %s --help')",
                             arg[0] == '-' ? "option" : "argument", arg, cmd);
        if (a->seen) return cli_error(cmd, EXIT_USAGE, "%s given twice", a->name);
        a->seen = 1;
        if (a->type == ARG_FLAG) {
            if (eq) return cli_error(cmd, EXIT_USAGE, "%s takes no value", a->name);
            *(int *)a->ptr = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return cli_error(cmd, EXIT_USAGE, "%s needs a value (%s)", a->name, a->meta ? a->meta : "");
        int rc = parse_value(cmd, a, v);
        if (rc) return rc;
    }
    return 0;
}

int cli_find(const cli_arg *args, int nargs, const char *name) {
    for (int i = 0; i < nargs; i++)
        if (!strcmp(args[i].name, name)) return i;
    abort(); /* a programming error: the table lacks the flag */
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

lb_status cli_load_model(const char *arg, lb_model **out) {
    int is_path = strchr(arg, '/') || strstr(arg, ".json") || file_exists(arg);
    if (is_path) return lb_model_create(out, arg);
    /* zoo name: $LOWBIT_MODELS, the source tree's models/, then the installed copy */
    const char *dirs[3] = {getenv("LOWBIT_MODELS"), LB_MODELS_DIR, LB_MODELS_INSTALL_DIR};
    char path[4096];
    for (int i = 0; i < 3; i++) {
        if (!dirs[i]) continue;
        snprintf(path, sizeof path, "%s/%s.json", dirs[i], arg);
        if (file_exists(path)) return lb_model_create(out, path);
    }
    *out = NULL;
    lb_status s = lb_model_create(out, arg); /* sets the message, naming the argument */
    if (s == LB_ERR_IO) {
        fprintf(stderr, "lowbit: '%s' is neither a spec file nor a zoo model (zoo: fmnist-cnn, fmnist-mlp, fmnist-resnet, kjv-word-lstm, kjv-word-gru, kjv-char-lstm)\n", arg);
        return LB_ERR_INVALID;
    }
    return s;
}

lb_status cli_load_text(const lb_model *m, const char *data, lb_text **out) {
    /* word level: the vocabulary the model embeds, less <unk> and <eos> */
    int level = lb_model_text_level(m), V = lb_model_vocab(m);
    return lb_text_load(out, data, level ? LB_TEXT_CHAR : LB_TEXT_WORD, level ? V : V - 2);
}

int cli_vocab_path(const char *lbm, char *buf, size_t cap) {
    size_t n = strlen(lbm);
    if (n >= 4 && !strcmp(lbm + n - 4, ".lbm")) n -= 4;
    int w = snprintf(buf, cap, "%.*s.vocab.json", (int)n, lbm);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

lb_status cli_model_for_ckpt(const char *model, const char *ckpt, const char *quant, int quant_all, lb_model **out) {
    lb_status s;
    *out = NULL;
    if (!model) {
        if ((s = lb_model_create_from_checkpoint(out, ckpt))) return s;
        if (!quant && !quant_all) return LB_OK;
        /* another quantization than the checkpoint's own: attach it, then load again */
        if ((s = lb_model_set_quant(*out, quant ? quant : lb_model_quant(*out), quant_all)) ||
            (s = lb_checkpoint_load(*out, ckpt, NULL))) {
            lb_model_destroy(*out);
            *out = NULL;
        }
        return s;
    }
    char stored[1024] = "fp32", all[8] = "0";
    if ((s = cli_load_model(model, out))) return s;
    if (!quant) {
        /* a file without lowbit metadata is a float checkpoint */
        if (lb_checkpoint_meta(ckpt, "quant", stored, sizeof stored)) strcpy(stored, "fp32");
        if (!quant_all && lb_checkpoint_meta(ckpt, "quant_all", all, sizeof all)) strcpy(all, "0");
    }
    if ((s = lb_model_set_quant(*out, quant ? quant : stored, quant_all || !strcmp(all, "1"))) ||
        (s = lb_checkpoint_load(*out, ckpt, NULL))) {
        lb_model_destroy(*out);
        *out = NULL;
    }
    return s;
}

void cli_format_duration(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

int cli_progress_cb(const lb_train_progress *p, void *user) {
    cli_progress *cp = user;
    if (cp->interrupted && *cp->interrupted) return 1;
    if (cp->metrics && p->lm) {
        if (p->kind == 0)
            fprintf(cp->metrics, "{\"epoch\": %d, \"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"train_acc\": %.4f, "
                    "\"tokens_per_s\": %.1f}\n", p->epoch + 1, (long long)p->step, p->loss, p->lr, p->train_acc, p->img_per_s);
        else if (p->test_loss >= 0)
            fprintf(cp->metrics, "{\"epoch\": %d, \"step\": %lld, \"valid_loss\": %.6f, \"valid_perplexity\": %.4f, "
                    "\"valid_acc\": %.4f, \"elapsed_s\": %.1f}\n", p->epoch + 1, (long long)p->step, p->test_loss,
                    exp(p->test_loss), p->test_acc, p->elapsed_s);
        fflush(cp->metrics);
    } else if (cp->metrics) {
        if (p->kind == 0)
            fprintf(cp->metrics, "{\"epoch\": %d, \"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"train_acc\": %.4f, "
                    "\"test_acc\": null, \"img_per_s\": %.1f}\n", p->epoch + 1, (long long)p->step, p->loss, p->lr,
                    p->train_acc, p->img_per_s);
        else if (p->kind == 2 && p->test_acc >= 0)
            fprintf(cp->metrics, "{\"epoch\": %d, \"step\": %lld, \"bn_reestimated\": true, \"test_acc_before\": %.4f, "
                    "\"test_acc\": %.4f, \"test_loss\": %.6f}\n", p->epoch + 1, (long long)p->step, p->test_acc_before,
                    p->test_acc, p->test_loss);
        else if (p->test_acc >= 0)
            fprintf(cp->metrics, "{\"epoch\": %d, \"step\": %lld, \"loss\": null, \"lr\": %.6g, \"train_acc\": null, "
                    "\"test_acc\": %.4f, \"test_loss\": %.6f, \"img_per_s\": null, \"elapsed_s\": %.1f}\n", p->epoch + 1,
                    (long long)p->step, p->lr, p->test_acc, p->test_loss, p->elapsed_s);
        fflush(cp->metrics);
    }
    if (cp->quiet) return 0;
    char eta[32], el[32];
    double rate = p->step > 0 ? p->elapsed_s / (double)p->step : 0;
    cli_format_duration(eta, sizeof eta, rate * (double)(p->total_steps - p->step));
    cli_format_duration(el, sizeof el, p->elapsed_s);
    if (p->kind == 2) {
        if (cp->tty) fputs("\r\033[K", stderr);
        if (p->test_acc >= 0)
            fprintf(stderr, "batch-norm statistics re-estimated with the hard-quantized weights: test accuracy %.2f%% -> %.2f%%\n",
                    100 * p->test_acc_before, 100 * p->test_acc);
        else
            fprintf(stderr, "batch-norm statistics re-estimated with the hard-quantized weights\n");
        return 0;
    }
    if (p->kind == 1) {
        if (cp->tty) fputs("\r\033[K", stderr);
        if (p->lm && p->test_loss >= 0)
            fprintf(stderr, "epoch %d/%d done in %s: validation perplexity %.2f (%.3f bits per token), loss %.4f\n", p->epoch + 1,
                    cp->epochs, el, exp(p->test_loss), p->test_loss / log(2.0), p->test_loss);
        else if (p->test_acc >= 0)
            fprintf(stderr, "epoch %d/%d done in %s: test accuracy %.2f%%, test loss %.4f\n", p->epoch + 1, cp->epochs, el,
                    100 * p->test_acc, p->test_loss);
        else
            fprintf(stderr, "epoch %d/%d done in %s\n", p->epoch + 1, cp->epochs, el);
        return 0;
    }
    int64_t in_epoch = p->step - (int64_t)p->epoch * p->steps_per_epoch;
    double frac = (double)in_epoch / (double)p->steps_per_epoch;
    if (cp->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %3.0f%% loss %.4f acc %.3f lr %.4g %.0f %s ETA %s", p->epoch + 1,
                cp->epochs, bar, 100 * frac, p->loss, p->train_acc, p->lr, p->img_per_s, p->lm ? "tokens/s" : "img/s", eta);
        fflush(stderr);
    } else if (p->elapsed_s - cp->last_plain >= 10 || p->step == p->total_steps) {
        cp->last_plain = p->elapsed_s;
        fprintf(stderr, "epoch %d/%d step %lld/%lld loss %.4f acc %.3f lr %.4g %.0f %s elapsed %s ETA %s\n", p->epoch + 1,
                cp->epochs, (long long)p->step, (long long)p->total_steps, p->loss, p->train_acc, p->lr, p->img_per_s,
                p->lm ? "tokens/s" : "img/s", el, eta);
    }
    return 0;
}
