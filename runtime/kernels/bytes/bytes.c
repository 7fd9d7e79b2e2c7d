/* bytes.c - the byte-row families' variants this CPU runs, ref first, best last. */
#include "kernels/bytes/bytes_impl.h"

int lbr_s8u8_variants(const lbr_cpu *cpu, lbr_kvariant out[4]) {
    int n = 0;
    LBR_ADD_VARIANT(out, n, "ref", lbr_s8u8_ref);
#if LBR_X86
    if (cpu->avx2) LBR_ADD_VARIANT(out, n, "avx2", lbr_s8u8_avx2);
    if (cpu->avx512bw) LBR_ADD_VARIANT(out, n, "avx512", lbr_s8u8_avx512);
    if (cpu->avx512vnni) LBR_ADD_VARIANT(out, n, "avx512vnni", lbr_s8u8_avx512vnni);
#endif
    return n;
}

int lbr_shift_variants(const lbr_cpu *cpu, lbr_kvariant out[4]) {
    int n = 0;
    LBR_ADD_VARIANT(out, n, "ref", lbr_shift_ref);
#if LBR_X86
    if (cpu->avx2) LBR_ADD_VARIANT(out, n, "avx2", lbr_shift_avx2);
    if (cpu->avx512bw) LBR_ADD_VARIANT(out, n, "avx512", lbr_shift_avx512);
#endif
    return n;
}
