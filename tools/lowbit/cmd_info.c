/* lowbit info */
#include "cli.h"

static const char *USAGE = "--model NAME|spec.json [--json]";
static const char *DESC = "Print a model's layers with output shapes, parameter counts and multiply-accumulates per sample.";

int cmd_info(int argc, char **argv) {
    const char *cmd = "info";
    const char *model = NULL;
    int json = 0;
    cli_arg args[] = {
        {"--model", ARG_STR, &model, "NAME|FILE", "zoo model or JSON spec", 0},
        {"--json", ARG_FLAG, &json, NULL, "print one JSON object on stdout", 0},
    };
    int rc = cli_parse(argc, argv, 2, args, 2, cmd, USAGE, DESC);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (!model) return cli_error(cmd, EXIT_USAGE, "--model is required (see 'lowbit info --help')");
    lb_model *m;
    lb_status st = cli_load_model(model, &m);
    if (st) return cli_fail_status(cmd, st);
    int n = lb_model_num_layers(m), ic, ih, iw;
    lb_model_input_shape(m, &ic, &ih, &iw);
    int64_t macs = 0;
    for (int i = 0; i < n; i++) {
        lb_layer_info li;
        lb_model_layer_info(m, i, &li);
        macs += li.macs;
    }
    if (json) {
        printf("{\"name\": \"%s\", \"input\": [%d, %d, %d], \"params\": %lld, \"macs\": %lld, \"layers\": [", lb_model_name(m), ic,
               ih, iw, (long long)lb_model_num_params(m), (long long)macs);
        for (int i = 0; i < n; i++) {
            lb_layer_info li;
            lb_model_layer_info(m, i, &li);
            printf("%s{\"name\": \"%s\", \"op\": \"%s\", \"shape\": [%d, %d, %d], \"params\": %lld, \"macs\": %lld}", i ? ", " : "",
                   li.name, li.op, li.out_c, li.out_h, li.out_w, (long long)li.params, (long long)li.macs);
        }
        printf("]}\n");
    } else {
        if (lb_model_is_lm(m))
            printf("%s: input sequences of %d %s tokens (vocabulary %d); shapes and MACs per token\n", lb_model_name(m),
                   lb_model_seq_len(m), lb_model_text_level(m) ? "character" : "word", lb_model_vocab(m));
        else
            printf("%s: input %dx%dx%d\n", lb_model_name(m), ic, ih, iw);
        printf("%-14s %-20s %-14s %12s %14s\n", "layer", "op", "output", "params", "MACs");
        for (int i = 0; i < n; i++) {
            lb_layer_info li;
            lb_model_layer_info(m, i, &li);
            char shape[48];
            snprintf(shape, sizeof shape, "%dx%dx%d", li.out_c, li.out_h, li.out_w);
            printf("%-14s %-20s %-14s %12lld %14lld\n", li.name, li.op, shape, (long long)li.params, (long long)li.macs);
        }
        printf("%-14s %-20s %-14s %12lld %14lld\n", "total", "", "", (long long)lb_model_num_params(m), (long long)macs);
    }
    lb_model_destroy(m);
    return EXIT_OK;
}
