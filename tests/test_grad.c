/* Every op's backward against central finite differences of the training loss.
 *
 * Each small graph places the op under test between layers with parameters, so its
 * input gradient is checked through the parameter gradients of the layers before it
 * and its own parameter gradients directly. The loss (mean softmax cross-entropy) is
 * summed in double; the network runs in float32, so the finite difference carries
 * rounding noise of about 1e-7/eps: tolerances are |fd - analytic| <= 6e-4 + 3e-2*|fd|
 * with eps = 2e-3. Relu, Clip and MaxPool have kinks: an element whose perturbation
 * crosses one gives a wrong finite difference, so graphs with kinks may have at most
 * 1% of checked elements outside tolerance (graphs without kinks: none). */
#include "graph/graph.h"
#include "quant/quant.h"
#include "test_util.h"

#include <string.h>

static double mean_loss(lb_model *m, const float *x, const int32_t *y, int B) {
    lb_graph_set_input(m, x, B);
    lb_graph_forward(m, B, 1);
    lb_node *o = lb_graph_output(m);
    return lb_softmax_xent(NULL, NULL, o->out, y, B, o->c) / B;
}

/* Gradients of `spec` on fixed data, as a malloc'd copy of the gradient block. */
static float *grads_of(const char *spec, int B, int64_t *n) {
    lb_model *m;
    if (lb_model_create_from_json(&m, spec, strlen(spec), "grads_of") || lb_graph_reserve(m, B, 1)) return NULL;
    lb_model_init_params(m, 7);
    float *x = malloc(sizeof(float) * (size_t)(B * m->in_size));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)B);
    lb_rng_uniform(x, B * m->in_size, -1.0f, 1.0f, 3, 0);
    for (int b = 0; b < B; b++) y[b] = b % lb_model_num_outputs(m);
    lb_graph_set_input(m, x, B);
    lb_graph_forward(m, B, 1);
    lb_node *o = lb_graph_output(m);
    lb_softmax_xent(o->dout, NULL, o->out, y, B, o->c);
    lb_graph_backward(m, B);
    float *g = malloc(sizeof(float) * (size_t)m->n_params);
    memcpy(g, m->grads, sizeof(float) * (size_t)m->n_params);
    *n = m->n_params;
    free(x); free(y);
    lb_model_destroy(m);
    return g;
}

static void check_graph_eps(const char *label, const char *spec, int B, int kinks, float eps);
static void check_graph(const char *label, const char *spec, int B, int kinks) { check_graph_eps(label, spec, B, kinks, 2e-3f); }

static void check_graph_eps(const char *label, const char *spec, int B, int kinks, float eps) {
    lb_model *m;
    lb_status s = lb_model_create_from_json(&m, spec, strlen(spec), label);
    CHECK_MSG(s == LB_OK, "%s: %s", label, lb_last_error());
    if (s) return;
    lb_model_init_params(m, 7);
    CHECK_OK(lb_graph_reserve(m, B, 1));
    int fused = 0, direct = 0;
    for (int i = 0; i < m->n_nodes; i++) direct += m->nodes[i].direct;
    if (!strcmp(label, "direct_conv")) CHECK_MSG(direct == 3, "%s: expected 3 direct convs, got %d", label, direct);
    for (int i = 0; i < m->n_nodes; i++) fused += m->nodes[i].fused;
    if (strstr(label, "fused")) CHECK_MSG(fused == 2, "%s: expected 2 fused Relu nodes, got %d", label, fused);
    /* BN weights away from 1 and biases away from 0 so their gradients are generic */
    for (int t = 0; t < m->n_tensors; t++)
        if (strstr(m->tensors[t].name, "bn") && m->tensors[t].trainable)
            lb_rng_uniform(m->params + m->tensors[t].offset, m->tensors[t].size, 0.5f, 1.5f, 99, (uint64_t)t);
    CHECK_OK(lb_graph_reserve(m, B, 1));
    int64_t nx = (int64_t)B * m->in_size;
    float *x = malloc(sizeof(float) * (size_t)nx);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)B);
    lb_rng_uniform(x, nx, -1.0f, 1.0f, 3, 0);
    int K = lb_model_num_outputs(m);
    for (int b = 0; b < B; b++) y[b] = (b * 7 + 3) % K;
    m->step = 5; /* fixes the dropout masks for every evaluation below */

    /* analytic gradients */
    lb_graph_set_input(m, x, B);
    lb_graph_forward(m, B, 1);
    lb_node *o = lb_graph_output(m);
    lb_softmax_xent(o->dout, NULL, o->out, y, B, K);
    lb_graph_backward(m, B);
    float *g = malloc(sizeof(float) * (size_t)m->n_params);
    memcpy(g, m->grads, sizeof(float) * (size_t)m->n_params);

    int checked = 0, bad = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        const lb_tensor_entry *te = &m->tensors[t];
        if (!te->trainable) continue;
        int64_t stride = te->size > 40 ? te->size / 40 : 1; /* at most ~40 elements a tensor */
        for (int64_t i = 0; i < te->size; i += stride) {
            float *p = m->params + te->offset + i, keep = *p;
            *p = keep + eps;
            double lp = mean_loss(m, x, y, B);
            *p = keep - eps;
            double lm = mean_loss(m, x, y, B);
            *p = keep;
            double fd = (lp - lm) / (2 * eps), an = g[te->offset + i];
            checked++;
            if (fabs(fd - an) > 6e-4 + 3e-2 * fabs(fd)) {
                bad++;
                if (bad <= 5) fprintf(stderr, "%s: %s[%lld]: analytic %.6g, finite difference %.6g\n", label, te->name, (long long)i, an, fd);
            }
        }
    }
    int allowed = kinks ? checked / 100 : 0;
    CHECK_MSG(bad <= allowed, "%s: %d of %d gradient elements outside tolerance (allowed %d)", label, bad, checked, allowed);
    printf("%s: %d elements checked, %d outside tolerance\n", label, checked, bad);
    free(g); free(x); free(y);
    lb_model_destroy(m);
}

/* Gradient routing through activation quantizers: a Relu with a quantizer read by a Conv
 * and (as its second input) by a residual Add. With every quantizer in FLOAT mode (a pass
 * through) the network is the float one, so its gradients must equal the float model's,
 * bit for bit: each consumer's gradient has to reach the quantizer's output gradient. */
static void check_aq_routing(void) {
    const char *spec = "{\"input\": [4, 6, 6], \"layers\": ["
        "{\"name\": \"c0\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"pad\": 1},"
        "{\"name\": \"r0\", \"op\": \"Relu\"},"
        "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"pad\": 1},"
        "{\"name\": \"add\", \"op\": \"Add\", \"inputs\": [\"c1\", \"r0\"]},"
        "{\"name\": \"r1\", \"op\": \"Relu\"},"
        "{\"name\": \"f\", \"op\": \"Flatten\"},"
        "{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 5}]}";
    const int B = 3;
    int64_t nf = 0;
    float *gf = grads_of(spec, B, &nf);
    lb_model *m;
    CHECK_OK(lb_model_create_from_json(&m, spec, strlen(spec), "aq_routing"));
    CHECK_OK(lb_model_set_quant(m, "uniform:4/4", 1));
    for (int i = 0; i < m->n_quants; i++) m->quants[i]->mode = LB_QMODE_FLOAT;
    CHECK_OK(lb_graph_reserve(m, B, 1));
    lb_model_init_params(m, 7);
    float *x = malloc(sizeof(float) * (size_t)(B * m->in_size));
    int32_t y[3] = {0, 1, 2};
    lb_rng_uniform(x, B * m->in_size, -1.0f, 1.0f, 3, 0);
    for (int step = 0; step < 2; step++) { /* twice: nothing may carry over from a step */
        lb_graph_set_input(m, x, B);
        lb_graph_forward(m, B, 1);
        lb_node *o = lb_graph_output(m);
        lb_softmax_xent(o->dout, NULL, o->out, y, B, o->c);
        lb_graph_backward(m, B);
        int64_t bad = 0;
        for (int64_t i = 0; gf && i < nf && i < m->n_params; i++) bad += m->grads[i] != gf[i];
        CHECK_MSG(gf && bad == 0, "aq routing, step %d: %lld of %lld gradients differ from the float model's", step,
                  (long long)bad, (long long)nf);
    }
    free(x);
    free(gf);
    lb_model_destroy(m);
}

/* Gradients of spec (every weight and activation quantized, uniform:4/4) after one step on
 * fixed data, as a malloc'd copy of the gradient block. */
static float *quant_grads(const char *spec, int B, int64_t *n) {
    lb_model *m;
    if (lb_model_create_from_json(&m, spec, strlen(spec), "quant_grads") || lb_model_set_quant(m, "uniform:4/4", 1) ||
        lb_graph_reserve(m, B, 1))
        return NULL;
    lb_model_init_params(m, 7);
    lb_quant_init_weights(m);
    float *x = malloc(sizeof(float) * (size_t)(B * m->in_size));
    int32_t y[4] = {0, 1, 2, 3};
    lb_rng_uniform(x, B * m->in_size, -1.0f, 1.0f, 3, 0);
    if (lb_quant_needs_calibration(m)) CHECK_OK(lb_quant_calibrate(m, x, B, B));
    CHECK_OK(lb_graph_reserve(m, B, 1));
    lb_graph_set_input(m, x, B);
    lb_graph_forward(m, B, 1);
    lb_node *o = lb_graph_output(m);
    lb_softmax_xent(o->dout, NULL, o->out, y, B, o->c);
    lb_graph_backward(m, B);
    float *g = malloc(sizeof(float) * (size_t)m->n_params);
    memcpy(g, m->grads, sizeof(float) * (size_t)m->n_params);
    *n = m->n_params;
    free(x);
    lb_model_destroy(m);
    return g;
}

/* The same routing with the quantizers on: Add is commutative, so a quantized Relu as its
 * first or as its second input must give the same gradients, bit for bit. */
static void check_aq_routing_quantized(void) {
    static const char *fmt = "{\"input\": [4, 6, 6], \"layers\": ["
        "{\"name\": \"c0\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"pad\": 1},"
        "{\"name\": \"r0\", \"op\": \"Relu\"},"
        "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"pad\": 1},"
        "{\"name\": \"add\", \"op\": \"Add\", \"inputs\": [%s]},"
        "{\"name\": \"r1\", \"op\": \"Relu\"},"
        "{\"name\": \"f\", \"op\": \"Flatten\"},"
        "{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 5}]}";
    char a[1024], b[1024];
    snprintf(a, sizeof a, fmt, "\"c1\", \"r0\"");
    snprintf(b, sizeof b, fmt, "\"r0\", \"c1\"");
    int64_t na = 0, nb = 0;
    float *ga = quant_grads(a, 4, &na), *gb = quant_grads(b, 4, &nb);
    int64_t bad = 0, nonzero = 0;
    for (int64_t i = 0; ga && gb && i < na && na == nb; i++) bad += ga[i] != gb[i], nonzero += ga[i] != 0;
    CHECK_MSG(ga && gb && na == nb && bad == 0 && nonzero > 0,
              "aq routing, quantized: %lld of %lld gradients differ between Add(c1, r0) and Add(r0, c1)", (long long)bad,
              (long long)na);
    free(ga);
    free(gb);
}

int main(void) {
    lb_set_threads(2);
    check_aq_routing();
    check_aq_routing_quantized();
    /* Conv with stride, padding, bias; Conv with groups and a rectangular kernel */
    check_graph("conv_stride_pad_groups",
        "{\"input\": [3, 7, 6], \"layers\": ["
        "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"stride\": 2, \"pad\": 1},"
        "{\"name\": \"c2\", \"op\": \"Conv\", \"out\": 6, \"kernel\": [2, 3], \"group\": 2, \"pad\": [1, 0], \"stride\": [1, 2]},"
        "{\"name\": \"f\", \"op\": \"Flatten\"},"
        "{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 5}]}", 3, 0);
    /* BatchNorm in training mode, 1x1 conv (the direct GEMM path), GlobalAveragePool */
    check_graph("bn_pointwise_gap",
        "{\"input\": [2, 5, 5], \"layers\": ["
        "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 6, \"kernel\": 3, \"pad\": 1, \"bias\": false},"
        "{\"name\": \"bn1\", \"op\": \"BatchNormalization\"},"
        "{\"name\": \"c2\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 1},"
        "{\"name\": \"gap\", \"op\": \"GlobalAveragePool\"},"
        "{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 3}]}", 4, 0);
    /* BatchNorm followed by its only consumer Relu: the fused path. Every c1 weight moves
     * every normalised value, so Relu kinks are crossed often: a smaller step here, and
     * the fused gradients are also compared with the unfused reference path (LOWBIT_REF=1),
     * which the other graphs check by finite differences: |a - b| <= 1e-6 + 1e-5|b|. */
    const char *bnrelu =
        "{\"input\": [3, 6, 6], \"layers\": ["
        "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 5, \"kernel\": 3, \"pad\": 1, \"bias\": false},"
        "{\"name\": \"bn1\", \"op\": \"BatchNormalization\"},"
        "{\"name\": \"r1\", \"op\": \"Relu\"},"
        "{\"name\": \"c2\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"bias\": false},"
        "{\"name\": \"bn2\", \"op\": \"BatchNormalization\"},"
        "{\"name\": \"r2\", \"op\": \"Relu\"},"
        "{\"name\": \"f\", \"op\": \"Flatten\"},"
        "{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 4}]}";
    int64_t n1, n2;
    float *gf = grads_of(bnrelu, 4, &n1);
    setenv("LOWBIT_REF", "1", 1);
    float *gr = grads_of(bnrelu, 4, &n2);
    unsetenv("LOWBIT_REF");
    CHECK(gf && gr && n1 == n2);
    for (int64_t i = 0; gf && gr && n1 == n2 && i < n1; i++) CHECK_CLOSE(gf[i], gr[i], 1e-6, 1e-5);
    free(gf); free(gr);
    check_graph_eps("bn_relu_fused",
        "{\"input\": [3, 6, 6], \"layers\": ["
        "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 5, \"kernel\": 3, \"pad\": 1, \"bias\": false},"
        "{\"name\": \"bn1\", \"op\": \"BatchNormalization\"},"
        "{\"name\": \"r1\", \"op\": \"Relu\"},"
        "{\"name\": \"c2\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"bias\": false},"
        "{\"name\": \"bn2\", \"op\": \"BatchNormalization\"},"
        "{\"name\": \"r2\", \"op\": \"Relu\"},"
        "{\"name\": \"f\", \"op\": \"Flatten\"},"
        "{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 4}]}", 4, 1, 5e-4f);
    /* Relu, MaxPool with overlapping windows and padding */
    check_graph("relu_maxpool",
        "{\"input\": [2, 8, 8], \"layers\": ["
        "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 3, \"kernel\": 3, \"pad\": 1},"
        "{\"name\": \"r1\", \"op\": \"Relu\"},"
        "{\"name\": \"p1\", \"op\": \"MaxPool\", \"kernel\": 3, \"stride\": 2, \"pad\": 1},"
        "{\"name\": \"f\", \"op\": \"Flatten\"},"
        "{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 4}]}", 3, 1);
    /* Residual Add (tensors with two consumers, the graph input as an operand),
     * AveragePool with padding both ways, Dropout */
    check_graph("residual_avgpool_dropout",
        "{\"input\": [4, 6, 6], \"layers\": ["
        "{\"name\": \"c0\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"pad\": 1},"
        "{\"name\": \"a0\", \"op\": \"Add\", \"inputs\": [\"input\", \"c0\"]},"
        "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"pad\": 1},"
        "{\"name\": \"bn1\", \"op\": \"BatchNormalization\"},"
        "{\"name\": \"c2\", \"op\": \"Conv\", \"out\": 4, \"kernel\": 3, \"pad\": 1},"
        "{\"name\": \"add\", \"op\": \"Add\", \"inputs\": [\"bn1\", \"c2\"]},"
        "{\"name\": \"ap\", \"op\": \"AveragePool\", \"kernel\": 3, \"stride\": 2, \"pad\": 1},"
        "{\"name\": \"ap2\", \"op\": \"AveragePool\", \"kernel\": 2, \"stride\": 1, \"pad\": 1, \"count_include_pad\": true},"
        "{\"name\": \"f\", \"op\": \"Flatten\"},"
        "{\"name\": \"d\", \"op\": \"Dropout\", \"p\": 0.3},"
        "{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 5}]}", 3, 1);
    /* Clip between two Gemm layers: each weight moves few clipped values, so kink
     * crossings stay rare */
    check_graph("clip",
        "{\"input\": [6], \"layers\": ["
        "{\"name\": \"fc1\", \"op\": \"Gemm\", \"out\": 8},"
        "{\"name\": \"clip\", \"op\": \"Clip\", \"min\": -0.3, \"max\": 0.4},"
        "{\"name\": \"fc2\", \"op\": \"Gemm\", \"out\": 3}]}", 5, 1);
    /* 16-channel convs take the direct kernels (conv_direct.c), stride 1 and 2 */
    check_graph("direct_conv",
        "{\"input\": [3, 7, 7], \"layers\": ["
        "{\"name\": \"c1\", \"op\": \"Conv\", \"out\": 16, \"kernel\": 3, \"pad\": 1},"
        "{\"name\": \"c2\", \"op\": \"Conv\", \"out\": 16, \"kernel\": 3, \"stride\": 2, \"pad\": 1},"
        "{\"name\": \"c3\", \"op\": \"Conv\", \"out\": 32, \"kernel\": 1, \"bias\": false},"
        "{\"name\": \"f\", \"op\": \"Flatten\"},"
        "{\"name\": \"fc\", \"op\": \"Gemm\", \"out\": 3}]}", 3, 0);
    /* MLP with BatchNorm on vectors */
    check_graph("mlp_bn",
        "{\"input\": [12], \"layers\": ["
        "{\"name\": \"fc1\", \"op\": \"Gemm\", \"out\": 8},"
        "{\"name\": \"bn1\", \"op\": \"BatchNormalization\"},"
        "{\"name\": \"fc2\", \"op\": \"Gemm\", \"out\": 8},"
        "{\"name\": \"add\", \"op\": \"Add\", \"inputs\": [\"fc2\", \"bn1\"]},"
        "{\"name\": \"fc3\", \"op\": \"Gemm\", \"out\": 3}]}", 6, 0);
    return lbt_report("test_grad");
}
