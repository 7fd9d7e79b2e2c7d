/* lowbit: command-line entry point. One file per subcommand. */
#include "cli.h"

#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: lowbit <command> [options]\n\n"
            "commands:\n"
            "  train     train a model, float or quantization-aware (--quant METHOD:W/A)\n"
            "  eval      evaluate a checkpoint on a data set\n"
            "  info      print a model's layers, shapes, parameters and MACs\n"
            "  report    per layer: parameters, weight/activation bits, MACs, BOPs, packed bytes\n"
            "  quantize  quantize-dequantize a .npy tensor with any method (and its integer codes)\n"
            "  export    write a trained checkpoint as a packed model (.lbm) for the runtime\n"
            "  run       run a packed model with the runtime: accuracy, latency, agreement with lowbit\n"
            "  bench     time the runtime's integer kernels against sgemm on given shapes\n"
            "  sample    generate text from a language model checkpoint\n\n"
            "'lowbit <command> --help' describes each command; docs/cli.md has the details.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *c = argv[1];
    if (!strcmp(c, "-h") || !strcmp(c, "--help") || !strcmp(c, "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(c, "--version")) {
        printf("lowbit %s\n", lb_version());
        return EXIT_OK;
    }
    if (!strcmp(c, "train")) return cmd_train(argc, argv);
    if (!strcmp(c, "eval")) return cmd_eval(argc, argv);
    if (!strcmp(c, "info")) return cmd_info(argc, argv);
    if (!strcmp(c, "report")) return cmd_report(argc, argv);
    if (!strcmp(c, "quantize")) return cmd_quantize(argc, argv);
    if (!strcmp(c, "export")) return cmd_export(argc, argv);
    if (!strcmp(c, "run")) return cmd_run(argc, argv);
    if (!strcmp(c, "bench")) return cmd_bench(argc, argv);
    if (!strcmp(c, "sample")) return cmd_sample(argc, argv);
    fprintf(stderr, "lowbit: error: unknown command '%s'\n", c);
    usage(stderr);
    return EXIT_USAGE;
}
