/* lowbit report */
#include "cli.h"

#include <math.h>
#include <string.h>

static const char *USAGE = "--model NAME|spec.json [--quant Q] [--quant-all] [--ckpt CKPT] [--json]";
static const char *DESC =
    "Per layer with multiply-accumulates (Conv, Gemm): parameters, weight and input-activation bits,\n"
    "MACs, BOPs (UNIQ's formula: m n k^2 (b_a b_w + b_a + b_w + log2 n k^2) per output position, float\n"
    "operands as 32 bits) and packed bytes (codes at their bit width, plus scales or codebooks, float\n"
    "bias), per image; then the totals, with batch norm counted folded (scale and shift per channel).\n"
    "Language models: per time step (token), and per sequence of the spec's T steps; an LSTM/GRU\n"
    "counts its input and recurrent projections; the embedding (Gather) has no MACs, and its table\n"
    "counts at the bits of the activation quantizer after it (each token's codes, as 'lowbit export'\n"
    "stores it), else as floats.\n"
    "With --ckpt and no --quant, the checkpoint's quantization.";

int cmd_report(int argc, char **argv) {
    const char *cmd = "report";
    const char *model = NULL, *quant = NULL, *ckpt = NULL;
    int json = 0, quant_all = 0;
    cli_arg args[] = {
        {"--model", ARG_STR, &model, "NAME|FILE", "zoo model or JSON spec (default with --ckpt: its own)", 0},
        {"--quant", ARG_STR, &quant, "Q", "quantization, e.g. balanced:2/4 (default fp32, or the checkpoint's)", 0},
        {"--quant-all", ARG_FLAG, &quant_all, NULL, "quantize the first and last layers too", 0},
        {"--ckpt", ARG_STR, &ckpt, "CKPT", "take the model and quantization from this checkpoint", 0},
        {"--json", ARG_FLAG, &json, NULL, "print one JSON object on stdout", 0},
    };
    int nargs = (int)(sizeof args / sizeof args[0]);
    int rc = cli_parse(argc, argv, 2, args, nargs, cmd, USAGE, DESC);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (!model && !ckpt) return cli_error(cmd, EXIT_USAGE, "--model or --ckpt is required (see 'lowbit report --help')");
    lb_model *m = NULL;
    lb_status st;
    if (ckpt) st = cli_model_for_ckpt(model, ckpt, quant, quant_all, &m);
    else if (!(st = cli_load_model(model, &m)) && (quant || quant_all)) st = lb_model_set_quant(m, quant, quant_all);
    if (st) {
        lb_model_destroy(m);
        return cli_fail_status(cmd, st);
    }
    lb_layer_cost t = {0};
    int64_t float_bytes = 0, other_bytes = 0;
    int n = lb_model_num_layers(m), rows = 0;
    /* batch norm and other float tensors: folded BN is a scale and a shift per channel */
    for (int i = 0; i < n; i++) {
        lb_layer_info li;
        lb_model_layer_info(m, i, &li);
        if (!strcmp(li.op, "BatchNormalization")) other_bytes += 4 * li.params;
    }
    const int T = lb_model_seq_len(m);
    const char *per = T ? "per time step" : "per image";
    if (json) printf("{\"model\": \"%s\", \"quant\": \"%s\", \"quant_all\": %s, \"layers\": [", lb_model_name(m), lb_model_quant(m),
                     lb_model_quant_all(m) ? "true" : "false");
    else {
        fprintf(stdout, "%s, quantization %s%s (%s)\n", lb_model_name(m), lb_model_quant(m), lb_model_quant_all(m) ? ", all layers" : "",
                per);
        fprintf(stdout, "%-12s %-6s %-9s %4s %4s %10s %12s %14s %10s\n", "layer", "op", "method", "W", "A", "params", "MACs", "BOPs", "bytes");
    }
    for (int i = 0; i < n; i++) {
        lb_layer_cost c;
        if (!lb_model_layer_cost(m, i, &c)) continue;
        t.params += c.params;
        t.macs += c.macs;
        t.bops += c.bops;
        t.bytes += c.bytes;
        float_bytes += 4 * c.params;
        if (json)
            printf("%s{\"name\": \"%s\", \"op\": \"%s\", \"method\": \"%s\", \"wbits\": %d, \"abits\": %d, \"params\": %lld, "
                   "\"macs\": %lld, \"bops\": %.0f, \"bytes\": %lld}", rows ? ", " : "", c.name, c.op, c.method, c.wbits, c.abits,
                   (long long)c.params, (long long)c.macs, c.bops, (long long)c.bytes);
        else
            printf("%-12s %-6s %-9s %4d %4d %10lld %12lld %14.4g %10lld\n", c.name, c.op, c.method, c.wbits, c.abits,
                   (long long)c.params, (long long)c.macs, c.bops, (long long)c.bytes);
        rows++;
    }
    int64_t total = t.bytes + other_bytes, ftotal = float_bytes + other_bytes;
    if (json)
        printf("], \"total\": {\"params\": %lld, \"macs\": %lld, \"bops\": %.0f, \"bytes\": %lld, \"float_bytes\": %lld, "
               "\"compression\": %.3f, \"per\": \"%s\", \"seq_len\": %d, \"macs_per_sequence\": %lld, \"bops_per_sequence\": %.0f}}\n",
               (long long)t.params, (long long)t.macs, t.bops, (long long)total, (long long)ftotal, (double)ftotal / (double)total,
               T ? "token" : "image", T, (long long)t.macs * (T ? T : 1), t.bops * (T ? T : 1));
    else {
        printf("%-12s %-6s %-9s %4s %4s %10lld %12lld %14.4g %10lld\n", "total", "", "", "", "", (long long)t.params,
               (long long)t.macs, t.bops, (long long)total);
        if (other_bytes) printf("batch norm (folded) %lld bytes; ", (long long)other_bytes);
        printf("float model %lld bytes; compression %.2fx; %.3g GBOPs %s\n", (long long)ftotal, (double)ftotal / (double)total,
               t.bops / 1e9, per);
        if (T) printf("per sequence of %d steps: %lld MACs, %.3g GBOPs\n", T, (long long)t.macs * T, t.bops * T / 1e9);
    }
    lb_model_destroy(m);
    return EXIT_OK;
}
