/* Fuzz target: quantization strings ("balanced:2/4,percentile=mean") through
 * lb_qcfg_parse. A string that parses is made into a weight and an activation
 * quantizer over a small tensor (setup validates option values), which then run init,
 * forward in both forms, backward and encode, so an option that passes validation but
 * breaks a method shows up under ASan/UBSan. */
#include "quant/quant.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char s[256];
    if (size >= sizeof s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    lb_qcfg c;
    if (lb_qcfg_parse(&c, s, "fuzz") != LB_OK) {
        if (!lb_last_error()[0]) abort();
        return 0;
    }
    if (!c.method) return 0;
    const int64_t shape[4] = {4, 3, 3, 3};
    float x[108], y[108], g[108], dx[108];
    int32_t codes[108];
    for (int i = 0; i < 108; i++) { x[i] = (float)((i * 37) % 23 - 11) / 13.0f; g[i] = (float)(i % 5) - 2; }
    for (int role = 0; role < 2; role++) {
        lb_quant *q;
        if (lb_quant_new(&q, &c, role, role == LB_QW ? 4 : 1, role == LB_QW ? shape : &shape[0]) != LB_OK) continue;
        const lb_qops *ops = role == LB_QW ? c.method->w : c.method->a;
        int64_t n = role == LB_QW ? 108 : 4;
        if (ops->observe) ops->observe(q, x, n);
        ops->init(q, x, n);
        lb_qsched sc = {5, 10, 30, 0, 3};
        if (ops->schedule) ops->schedule(q, &sc);
        ops->forward(q, y, x, n, 1);
        ops->backward(q, dx, g, x, n, 0);
        ops->forward(q, y, x, n, 0);
        ops->encode(q, codes, x, n);
        lb_quant_free(q);
    }
    return 0;
}
