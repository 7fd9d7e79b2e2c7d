/* lowbit quantize */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE = "--method M --bits K [--opt key=value ...] --in x.npy --out y.npy [--codes codes.npy]";
static const char *DESC =
    "Quantize-dequantize a float32 .npy tensor with a method's weight quantizer in its evaluation\n"
    "(hard) form, as a trained layer would be exported: for analysis and cross-checks against other\n"
    "implementations. Learned scales start from the tensor as in a fine-tune. The tensor's shape is\n"
    "read as PyTorch's (conv O,I,KH,KW; linear O,I), which sets groups such as SYQ's rows and pixels.\n"
    "--opt may be repeated (e.g. --opt percentile=mean). --codes writes the integer codes (int32).";

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize";
    const char *method = NULL, *in = NULL, *out = NULL, *codes_path = NULL, *opt_dummy = NULL;
    int bits = 0;
    /* --opt may repeat: gather them before the table parser sees argv */
    char opts[512] = "";
    char **av = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (!av) return cli_error(cmd, EXIT_RUNTIME, "out of memory");
    int ac = 0;
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && !strcmp(argv[i], "--opt")) {
            if (i + 1 >= argc) { free(av); return cli_error(cmd, EXIT_USAGE, "--opt needs a value key=value"); }
            if (!strchr(argv[i + 1], '=')) {
                free(av);
                return cli_error(cmd, EXIT_USAGE, "--opt '%s': must be key=value (e.g. percentile=mean)", argv[i + 1]);
            }
            size_t l = strlen(opts);
            snprintf(opts + l, sizeof opts - l, ",%s", argv[++i]);
            continue;
        }
        av[ac++] = argv[i];
    }
    av[ac] = NULL;
    cli_arg args[] = {
        {"--method", ARG_STR, &method, "M", "uniform, balanced, uniq, syq, qn or pot", 0},
        {"--bits", ARG_INT, &bits, "K", "weight bits", 0},
        {"--opt", ARG_STR, &opt_dummy, "key=value", "a method option (repeatable)", 0},
        {"--in", ARG_STR, &in, "FILE", "input .npy (float32)", 0},
        {"--out", ARG_STR, &out, "FILE", "output .npy (float32), written atomically", 0},
        {"--codes", ARG_STR, &codes_path, "FILE", "also write the integer codes (.npy int32)", 0},
    };
    int rc = cli_parse(ac, av, 2, args, (int)(sizeof args / sizeof args[0]), cmd, USAGE, DESC);
    free(av);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (!method || !in || !out || !bits)
        return cli_error(cmd, EXIT_USAGE, "--method, --bits, --in and --out are required (see 'lowbit quantize --help')");
    char q[700];
    snprintf(q, sizeof q, "%s:%d/32%s", method, bits, opts);
    lb_npy x;
    lb_status st = lb_npy_read(in, &x);
    if (st) return cli_fail_status(cmd, st);
    int ret = EXIT_OK;
    float *y = NULL;
    int32_t *codes = NULL;
    if (strcmp(x.dtype, "f4")) { ret = cli_error(cmd, EXIT_USAGE, "--in %s: dtype %s, expected float32", in, x.dtype); goto done; }
    if (x.ndim < 1 || x.ndim > 4 || x.size < 1) {
        ret = cli_error(cmd, EXIT_USAGE, "--in %s: expected a non-empty tensor of 1 to 4 dimensions", in);
        goto done;
    }
    y = malloc(sizeof(float) * (size_t)x.size);
    codes = codes_path ? malloc(sizeof(int32_t) * (size_t)x.size) : NULL;
    if (!y || (codes_path && !codes)) { ret = cli_error(cmd, EXIT_RUNTIME, "out of memory"); goto done; }
    if ((st = lb_quantize_array(q, x.data, x.ndim, x.shape, y, codes)) || (st = lb_npy_write(out, "f4", x.ndim, x.shape, y)) ||
        (codes && (st = lb_npy_write(codes_path, "i4", x.ndim, x.shape, codes)))) {
        ret = cli_fail_status(cmd, st);
        goto done;
    }
    fprintf(stderr, "lowbit quantize: %s (%lld values) with %s -> %s%s%s\n", in, (long long)x.size, q, out,
            codes ? ", codes " : "", codes ? codes_path : "");
done:
    free(y);
    free(codes);
    lb_npy_free(&x);
    return ret;
}
