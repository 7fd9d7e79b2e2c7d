/* cli.h - helpers shared by the subcommands. The CLI uses only the public API. */
#ifndef LB_CLI_H
#define LB_CLI_H

#include "lowbit.h"

#include <stdint.h>
#include <stdio.h>

/* Exit statuses (DESIGN.md section 2). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

typedef enum { ARG_FLAG, ARG_INT, ARG_I64, ARG_U64, ARG_FLOAT, ARG_STR } arg_type;

typedef struct cli_arg {
    const char *name;        /* "--epochs" */
    arg_type type;
    void *ptr;               /* int*, int64_t*, uint64_t*, float*, const char**; ARG_FLAG: int* set to 1 */
    const char *meta;        /* value placeholder in --help, e.g. "N" */
    const char *help;
    int seen;                /* set by cli_parse */
} cli_arg;

/* Parse argv[first..argc) against the table. Prints a message naming the flag and
 * returns EXIT_USAGE on error, -1 when --help was printed, 0 on success. */
int cli_parse(int argc, char **argv, int first, cli_arg *args, int nargs, const char *cmd, const char *usage,
              const char *description);
/* index of the flag in the table (it must be there) */
int cli_find(const cli_arg *args, int nargs, const char *name);
void cli_print_help(FILE *f, const char *cmd, const char *usage, const char *description, const cli_arg *args, int nargs);

/* Print "lowbit <cmd>: <message from the library>" and return the exit status for s. */
int cli_fail_status(const char *cmd, lb_status s);
int cli_error(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Zoo name ("fmnist-cnn") or path to a spec -> model. */
lb_status cli_load_model(const char *arg, lb_model **out);
/* A language model's corpus (kjv or a text file) at the model's level and vocabulary. */
lb_status cli_load_text(const lb_model *m, const char *data, lb_text **out);
/* The vocabulary file beside a packed language model: "m.lbm" -> "m.vocab.json" (a path
 * without the .lbm suffix gets ".vocab.json" appended). 0, or -1 when it does not fit cap. */
int cli_vocab_path(const char *lbm, char *buf, size_t cap);
/* The model for a checkpoint: from --model (or the checkpoint's stored spec when NULL),
 * quantized as --quant says or, without it, as the checkpoint was trained, then the
 * checkpoint's tensors loaded. */
lb_status cli_model_for_ckpt(const char *model, const char *ckpt, const char *quant, int quant_all, lb_model **out);

/* Progress display: a bar on a terminal, plain periodic lines otherwise. */
typedef struct cli_progress {
    int tty, quiet;
    double last_plain;
    FILE *metrics;           /* JSON lines, or NULL */
    int epochs;
    volatile int *interrupted; /* set by a SIGINT handler: stop at the next report */
} cli_progress;
int cli_progress_cb(const lb_train_progress *p, void *user);
void cli_format_duration(char *buf, size_t n, double s);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_sample(int argc, char **argv);

#endif
