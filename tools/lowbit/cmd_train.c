/* lowbit train */
#include "cli.h"

#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *USAGE = "--model NAME|spec.json --out ckpt.safetensors [options]";
static const char *DESC =
    "Train a model on a data set with the DESIGN.md recipe by default (SGD momentum 0.9, lr 0.05\n"
    "cosine per step, weight decay 5e-4, batch 128, 10 epochs). A checkpoint is written\n"
    "atomically at the end of every epoch; --resume continues it bit-identically.\n"
    "Language models (kjv-word-lstm, kjv-word-gru, kjv-char-lstm) train on a text corpus (--data kjv\n"
    "by default) with their spec's recipe (Adam, gradient-norm clip, truncated BPTT) and report\n"
    "validation perplexity after each epoch.";

static int pick(const char *cmd, const char *flag, const char *v, const char *const *names, int n, int *out) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) { *out = i; return 0; }
    char list[128] = "";
    for (int i = 0; i < n; i++) { strcat(list, i ? ", " : ""); strcat(list, names[i]); }
    return cli_error(cmd, EXIT_USAGE, "%s '%s' is not one of: %s", flag, v, list);
}

static const char *const opts[] = {"sgd", "adam", "adamw"}, *const scheds[] = {"const", "cosine", "step"},
                         *const augs[] = {"none", "crop"};

/* A recipe string, "adam lr=1e-3 wd=0 clip=10 batch=20 epochs=6 sched=const bnfix=200":
 * sets what the command line did not. */
static int apply_recipe(const char *cmd, char *buf, const cli_arg *args, int nargs, lb_train_config *c, int *o, int *s) {
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            if (!args[cli_find(args, nargs, "--opt")].seen && pick(cmd, "recipe optimizer", tok, opts, 3, o)) return 1;
            continue;
        }
        *eq = 0;
        const char *v = eq + 1;
        char flag[32];
        snprintf(flag, sizeof flag, "--%s", !strcmp(tok, "clip") ? "clip" : tok);
        static const char *const keys = " lr wd clip bnfix batch epochs sched ";
        char pat[40];
        snprintf(pat, sizeof pat, " %s ", tok);
        if (!strstr(keys, pat)) return cli_error(cmd, EXIT_USAGE, "recipe: unknown key '%s' (known:%s)", tok, keys);
        if (args[cli_find(args, nargs, flag)].seen) continue;
        double x = atof(v);
        if (!strcmp(tok, "lr")) c->lr = (float)x;
        else if (!strcmp(tok, "wd")) c->weight_decay = (float)x;
        else if (!strcmp(tok, "clip")) c->grad_clip = (float)x;
        else if (!strcmp(tok, "bnfix")) c->bn_reestimate = (int)x;
        else if (!strcmp(tok, "batch")) c->batch = (int)x;
        else if (!strcmp(tok, "epochs")) c->epochs = (int)x;
        else if (pick(cmd, "recipe sched", v, scheds, 3, s)) return 1;
    }
    return 0;
}

/* Ctrl-C: training stops at its next progress report (at most 10 steps away) and writes
 * the checkpoint, so the run can go on with --resume. A second Ctrl-C kills as usual. */
static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    interrupted = 1;
    signal(sig, SIG_DFL);
}

static int dir_writable(const char *path) {
    char *copy = strdup(path);
    if (!copy) return 0;
    int ok = access(dirname(copy), W_OK) == 0;
    free(copy);
    return ok;
}

int cmd_train(int argc, char **argv) {
    const char *cmd = "train";
    lb_train_config c;
    lb_train_config_default(&c);
    const char *model = NULL, *data = "fashion-mnist", *quant = NULL, *metrics = NULL, *opt = "sgd", *sched = "cosine",
               *augment = "none";
    int json = 0, quiet = 0, no_eval = 0, quant_all = 0;
    int64_t limit_train = 0, limit_test = 0;
    cli_arg args[] = {
        {"--model", ARG_STR, &model, "NAME|FILE", "zoo model (fmnist-cnn, fmnist-mlp, fmnist-resnet, kjv-word-lstm, kjv-word-gru, kjv-char-lstm) or JSON spec", 0},
        {"--data", ARG_STR, &data, "NAME|DIR|IMG,LBL", "data set: fashion-mnist (default), a directory of IDX files, or an IDX pair; for language models "
         "kjv (default) or a plain-text file", 0},
        {"--quant", ARG_STR, &quant, "Q", "quantization-aware training, METHOD:W/A[,key=value] (e.g. balanced:2/4, "
         "syq:2/4, qn:3/3, uniq:4/8, pot:4/4, uniform:2/2); docs/methods.md lists options", 0},
        {"--quant-all", ARG_FLAG, &quant_all, NULL, "quantize the first and last layers too", 0},
        {"--bnfix", ARG_INT, &c.bn_reestimate, "N", "re-estimate batch-norm statistics over N batches at the end "
         "(default: the method's recipe; UNIQ and QN 200)", 0},
        {"--init", ARG_STR, &c.init_path, "CKPT", "start from the weights of this checkpoint", 0},
        {"--out", ARG_STR, &c.out_path, "CKPT", "checkpoint to write (safetensors), required", 0},
        {"--resume", ARG_FLAG, &c.resume, NULL, "continue training from --out (weights, optimizer, position)", 0},
        {"--epochs", ARG_INT, &c.epochs, "N", "epochs (default 10)", 0},
        {"--batch", ARG_INT, &c.batch, "B", "batch size (default 128)", 0},
        {"--lr", ARG_FLOAT, &c.lr, "X", "peak learning rate (default 0.05)", 0},
        {"--opt", ARG_STR, &opt, "sgd|adam|adamw", "optimizer (default sgd)", 0},
        {"--momentum", ARG_FLOAT, &c.momentum, "X", "SGD momentum (default 0.9)", 0},
        {"--nesterov", ARG_FLAG, &c.nesterov, NULL, "Nesterov momentum", 0},
        {"--wd", ARG_FLOAT, &c.weight_decay, "X", "weight decay (default 5e-4)", 0},
        {"--sched", ARG_STR, &sched, "cosine|step|const", "learning-rate schedule, per step (default cosine)", 0},
        {"--warmup", ARG_FLOAT, &c.warmup_epochs, "EPOCHS", "linear warm-up length (default 0)", 0},
        {"--step-every", ARG_FLOAT, &c.step_every, "EPOCHS", "step schedule: epochs between decays (default 30)", 0},
        {"--step-gamma", ARG_FLOAT, &c.step_gamma, "X", "step schedule: decay factor (default 0.1)", 0},
        {"--clip", ARG_FLOAT, &c.grad_clip, "X", "clip the global gradient norm (default off)", 0},
        {"--augment", ARG_STR, &augment, "none|crop", "random-crop augmentation (pad 2) (default none)", 0},
        {"--seed", ARG_U64, &c.seed, "S", "seed of initialisation, shuffling, dropout (default 0)", 0},
        {"--threads", ARG_INT, &c.threads, "T", "threads (default: OpenMP's, usually all cores)", 0},
        {"--metrics", ARG_STR, &metrics, "FILE", "append one JSON object per logged step and epoch", 0},
        {"--limit-train", ARG_I64, &limit_train, "N", "use the first N training samples", 0},
        {"--limit-test", ARG_I64, &limit_test, "N", "use the first N test samples", 0},
        {"--max-steps", ARG_I64, &c.max_steps, "N", "stop after N steps in total", 0},
        {"--no-eval", ARG_FLAG, &no_eval, NULL, "skip the test-set evaluation after each epoch", 0},
        {"--json", ARG_FLAG, &json, NULL, "print the final test result as one JSON object on stdout", 0},
        {"--quiet", ARG_FLAG, &quiet, NULL, "no progress output", 0},
    };
    int nargs = (int)(sizeof args / sizeof args[0]);
    int rc = cli_parse(argc, argv, 2, args, nargs, cmd, USAGE, DESC);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (!model) return cli_error(cmd, EXIT_USAGE, "--model is required (see 'lowbit train --help')");
    if (!c.out_path) return cli_error(cmd, EXIT_USAGE, "--out is required (see 'lowbit train --help')");
    int o = 0, s = 0, a = 0;
    if (pick(cmd, "--opt", opt, opts, 3, &o) || pick(cmd, "--sched", sched, scheds, 3, &s) ||
        pick(cmd, "--augment", augment, augs, 2, &a))
        return EXIT_USAGE;
    /* --resume continues the checkpoint's own quantization; another one is an error */
    char stored_q[1024] = "", stored_all[8] = "0";
    if (c.resume && !lb_checkpoint_meta(c.out_path, "quant", stored_q, sizeof stored_q)) {
        lb_checkpoint_meta(c.out_path, "quant_all", stored_all, sizeof stored_all);
        if (!quant) {
            quant = stored_q;
            quant_all = !strcmp(stored_all, "1");
        } else if (strcmp(quant, stored_q) || quant_all != !strcmp(stored_all, "1")) {
            return cli_error(cmd, EXIT_USAGE, "--resume: %s was trained with --quant %s%s; resume it with the same quantization",
                             c.out_path, stored_q, !strcmp(stored_all, "1") ? " --quant-all" : "");
        }
    }
    /* the model must be known before its recipe: load it first */
    lb_model *m = NULL;
    lb_dataset *train = NULL, *test = NULL;
    lb_text *text = NULL;
    FILE *mf = NULL;
    lb_status st;
    int ret = EXIT_OK, lm = 0;
    if ((st = cli_load_model(model, &m))) return cli_fail_status(cmd, st);
    lm = lb_model_is_lm(m);
    /* whatever the command line leaves open comes from the method's own recipe
     * (METHODS.md), or for a language model from the spec's (the RNN recipe: it is the
     * one the Balanced paper's authors give for LSTMs, whatever the method) */
    const char *recipe = lm ? lb_model_recipe(m) : quant ? lb_quant_recipe(quant) : NULL;
    if (recipe) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", recipe);
        if (apply_recipe(cmd, buf, args, nargs, &c, &o, &s)) { lb_model_destroy(m); return EXIT_USAGE; }
        /* a fine-tune from float is short: 5 epochs unless told */
        if (!lm && c.init_path && !args[cli_find(args, nargs, "--epochs")].seen) c.epochs = 5;
        if (!quiet)
            fprintf(stderr, "lowbit train: %s recipe: %s, lr %g, wd %g%s, batch %d, %d epochs%s (flags given override it)\n",
                    lm ? lb_model_name(m) : quant, opts[o], c.lr, c.weight_decay, c.grad_clip > 0 ? ", gradient-norm clip" : "",
                    c.batch, c.epochs, c.bn_reestimate > 0 ? ", batch-norm re-estimation at the end" : "");
    }
    if (lm && !args[cli_find(args, nargs, "--data")].seen) data = "kjv";
    if (c.bn_reestimate < 0) { ret = cli_error(cmd, EXIT_USAGE, "--bnfix must be non-negative"); goto done; }
    c.opt = (lb_optimizer)o;
    c.sched = (lb_schedule)s;
    c.augment = (lb_augment)a;
    c.eval_every_epoch = !no_eval;
    if (c.threads < 0) { ret = cli_error(cmd, EXIT_USAGE, "--threads must be positive"); goto done; }
    if (!dir_writable(c.out_path)) {
        ret = cli_error(cmd, EXIT_USAGE, "--out %s: the directory is not writable or does not exist", c.out_path);
        goto done;
    }
    if (c.resume && access(c.out_path, R_OK) != 0) {
        ret = cli_error(cmd, EXIT_USAGE, "--resume: %s does not exist yet", c.out_path);
        goto done;
    }
    lb_set_threads(c.threads);
    if (lm) st = cli_load_text(m, data, &text);
    else if (!(st = lb_dataset_load(&train, data, LB_SPLIT_TRAIN)) && !no_eval) st = lb_dataset_load(&test, data, LB_SPLIT_TEST);
    if (st) {
        ret = cli_fail_status(cmd, st);
        goto done;
    }
    if (quant && (st = lb_model_set_quant(m, quant, quant_all))) {
        ret = cli_fail_status(cmd, st);
        goto done;
    }
    if (train) lb_dataset_truncate(train, limit_train);
    if (test) lb_dataset_truncate(test, limit_test);
    if (metrics && !(mf = fopen(metrics, "a"))) {
        ret = cli_error(cmd, EXIT_USAGE, "--metrics %s: cannot open for appending", metrics);
        goto done;
    }
    if (!quiet)
        fprintf(stderr, "lowbit train: %s (%lld parameters, %s%s) on %s (%lld %s), %d epochs, batch %d, %s lr %g (%s), "
                "wd %g, seed %llu, %d threads\n", lb_model_name(m), (long long)lb_model_num_params(m), lb_model_quant(m),
                lb_model_quant_all(m) ? ", all layers" : "", lm ? text->source : train->source,
                lm ? (long long)text->len[0] : (long long)train->n, lm ? "tokens" : "samples", c.epochs, c.batch,
                opts[o], c.lr, scheds[s], c.weight_decay, (unsigned long long)c.seed, lb_get_threads());
    cli_progress prog = {isatty(2), quiet, -1e9, mf, c.epochs, (volatile int *)&interrupted};
    signal(SIGINT, on_sigint);
    st = lm ? lb_train_lm(m, text, &c, cli_progress_cb, &prog) : lb_train(m, train, test, &c, cli_progress_cb, &prog);
    signal(SIGINT, SIG_DFL);
    if (st) {
        if (prog.tty && !quiet) fputc('\n', stderr);
        ret = cli_fail_status(cmd, st);
        goto done;
    }
    if (interrupted) {
        if (prog.tty && !quiet) fputc('\n', stderr);
        fprintf(stderr, "lowbit train: interrupted; wrote %s, continue with the same command and --resume\n", c.out_path);
        ret = 130; /* 128 + SIGINT, as shells report it */
        goto done;
    }
    if (json && lm) {
        lb_lm_result r = {0};
        if ((st = lb_eval_lm(m, text, 2, text->len[2] / 2 < 10 ? (int)(text->len[2] / 2) : 10, &r))) { ret = cli_fail_status(cmd, st); goto done; }
        printf("{\"perplexity\": %.4f, \"bpc\": %.4f, \"loss\": %.4f, \"accuracy\": %.4f, \"tokens\": %lld, "
               "\"split\": \"test\", \"checkpoint\": \"%s\", \"quant\": \"%s\"}\n", r.perplexity, r.bpc, r.loss, r.accuracy,
               (long long)r.tokens, c.out_path, lb_model_quant(m));
    } else if (json) {
        lb_eval_result r = {0};
        if (test && (st = lb_eval(m, test, 500, &r))) { ret = cli_fail_status(cmd, st); goto done; }
        printf("{\"accuracy\": %.4f, \"loss\": %.4f, \"samples\": %lld, \"checkpoint\": \"%s\", \"quant\": \"%s\"}\n",
               r.accuracy, r.loss, (long long)r.samples, c.out_path, lb_model_quant(m));
    }
    if (!quiet) fprintf(stderr, "lowbit train: wrote %s\n", c.out_path);
done:
    if (mf) fclose(mf);
    lb_dataset_free(train);
    lb_dataset_free(test);
    lb_text_free(text);
    lb_model_destroy(m);
    return ret;
}
