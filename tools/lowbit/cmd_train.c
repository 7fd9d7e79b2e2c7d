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
    "atomically at the end of every epoch; --resume continues it bit-identically.";

static int pick(const char *cmd, const char *flag, const char *v, const char *const *names, int n, int *out) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) { *out = i; return 0; }
    char list[128] = "";
    for (int i = 0; i < n; i++) { strcat(list, i ? ", " : ""); strcat(list, names[i]); }
    return cli_error(cmd, EXIT_USAGE, "%s '%s' is not one of: %s", flag, v, list);
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
        {"--model", ARG_STR, &model, "NAME|FILE", "zoo model (fmnist-cnn, fmnist-mlp, fmnist-resnet) or JSON spec", 0},
        {"--data", ARG_STR, &data, "NAME|DIR|IMG,LBL", "data set: fashion-mnist (default), a directory of IDX files, or an IDX pair", 0},
        {"--quant", ARG_STR, &quant, "Q", "quantization-aware training, METHOD:W/A[,key=value] (e.g. balanced:2/4, "
         "syq:2/4, qn:3/3, uniq:4/8, pot:4/4, uniform:2/2); docs/methods.md lists options", 0},
        {"--quant-all", ARG_FLAG, &quant_all, NULL, "quantize the first and last layers too", 0},
        {"--bnfix", ARG_INT, &c.bn_reestimate, "N", "re-estimate batch-norm statistics over N batches at the end "
         "(default: the method's recipe; UNIQ 200)", 0},
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
    static const char *const opts[] = {"sgd", "adam", "adamw"}, *const scheds[] = {"const", "cosine", "step"},
                             *const augs[] = {"none", "crop"};
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
    /* the method's own recipe (METHODS.md) for whatever the command line leaves open */
    const char *recipe = quant ? lb_quant_recipe(quant) : NULL;
    if (recipe) {
        const cli_arg *a_opt = &args[cli_find(args, nargs, "--opt")], *a_lr = &args[cli_find(args, nargs, "--lr")],
                      *a_wd = &args[cli_find(args, nargs, "--wd")], *a_clip = &args[cli_find(args, nargs, "--clip")],
                      *a_bn = &args[cli_find(args, nargs, "--bnfix")], *a_ep = &args[cli_find(args, nargs, "--epochs")];
        char buf[256];
        snprintf(buf, sizeof buf, "%s", recipe);
        for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
            char *eq = strchr(tok, '=');
            if (!eq) {
                if (!a_opt->seen) pick(cmd, "--opt", tok, opts, 3, &o);
                continue;
            }
            *eq = 0;
            double v = atof(eq + 1);
            if (!strcmp(tok, "lr") && !a_lr->seen) c.lr = (float)v;
            else if (!strcmp(tok, "wd") && !a_wd->seen) c.weight_decay = (float)v;
            else if (!strcmp(tok, "clip") && !a_clip->seen) c.grad_clip = (float)v;
            else if (!strcmp(tok, "bnfix") && !a_bn->seen) c.bn_reestimate = (int)v;
        }
        /* a fine-tune from float is short: 5 epochs unless told */
        if (c.init_path && !a_ep->seen) c.epochs = 5;
        if (!quiet)
            fprintf(stderr, "lowbit train: %s recipe: %s, lr %g, wd %g%s, %d epochs%s (flags given override it)\n", quant, opts[o],
                    c.lr, c.weight_decay, c.grad_clip > 0 ? ", gradient-norm clip" : "", c.epochs,
                    c.bn_reestimate > 0 ? ", batch-norm re-estimation at the end" : "");
    }
    if (c.bn_reestimate < 0) return cli_error(cmd, EXIT_USAGE, "--bnfix must be non-negative");
    c.opt = (lb_optimizer)o;
    c.sched = (lb_schedule)s;
    c.augment = (lb_augment)a;
    c.eval_every_epoch = !no_eval;
    if (c.threads < 0) return cli_error(cmd, EXIT_USAGE, "--threads must be positive");
    if (!dir_writable(c.out_path)) return cli_error(cmd, EXIT_USAGE, "--out %s: the directory is not writable or does not exist", c.out_path);
    if (c.resume && access(c.out_path, R_OK) != 0)
        return cli_error(cmd, EXIT_USAGE, "--resume: %s does not exist yet", c.out_path);
    lb_set_threads(c.threads);

    lb_model *m = NULL;
    lb_dataset *train = NULL, *test = NULL;
    FILE *mf = NULL;
    lb_status st;
    int ret = EXIT_OK;
    if ((st = cli_load_model(model, &m)) || (st = lb_dataset_load(&train, data, LB_SPLIT_TRAIN)) ||
        (!no_eval && (st = lb_dataset_load(&test, data, LB_SPLIT_TEST)))) {
        ret = cli_fail_status(cmd, st);
        goto done;
    }
    if (quant && (st = lb_model_set_quant(m, quant, quant_all))) {
        ret = cli_fail_status(cmd, st);
        goto done;
    }
    lb_dataset_truncate(train, limit_train);
    if (test) lb_dataset_truncate(test, limit_test);
    if (metrics && !(mf = fopen(metrics, "a"))) {
        ret = cli_error(cmd, EXIT_USAGE, "--metrics %s: cannot open for appending", metrics);
        goto done;
    }
    if (!quiet)
        fprintf(stderr, "lowbit train: %s (%lld parameters, %s%s) on %s (%lld samples), %d epochs, batch %d, %s lr %g (%s), "
                "wd %g, seed %llu, %d threads\n", lb_model_name(m), (long long)lb_model_num_params(m), lb_model_quant(m),
                lb_model_quant_all(m) ? ", all layers" : "", train->source,
                (long long)train->n, c.epochs, c.batch, opts[o], c.lr, scheds[s], c.weight_decay,
                (unsigned long long)c.seed, lb_get_threads());
    cli_progress prog = {isatty(2), quiet, -1e9, mf, c.epochs, (volatile int *)&interrupted};
    signal(SIGINT, on_sigint);
    st = lb_train(m, train, test, &c, cli_progress_cb, &prog);
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
    if (json) {
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
    lb_model_destroy(m);
    return ret;
}
