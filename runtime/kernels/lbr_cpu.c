/* lbr_cpu.c - what the CPU offers, for the kernels' start-up dispatch. */
#include "kernels/lbr_kernels.h"

#include <string.h>

void lbr_cpu_detect(lbr_cpu *c) {
    memset(c, 0, sizeof *c);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    c->avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
    c->avx512bw = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    c->avx512vpopcntdq = c->avx512bw && __builtin_cpu_supports("avx512vpopcntdq");
    c->avx512vnni = c->avx512bw && __builtin_cpu_supports("avx512vnni");
#endif
}
