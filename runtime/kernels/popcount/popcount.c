/* popcount.c - the xnor and bitserial variants this CPU can run, ref first, best last,
 * and the xnor and bitserial kernels on their lanes layouts (no ref of their own:
 * lbr_xnor_ref on the rows, lbr_bitserial_ref on the P and Q rows, the layout is packed
 * from is their definition).
 * The avx512 variants are built on VPOPCNTQ (Ice Lake and later, Zen 4), so a CPU with
 * AVX-512BW but without it (Skylake-X, Cascade Lake) runs the avx2 ones. */
#include "kernels/popcount/popcount_impl.h"

int lbr_xnor_variants(const lbr_cpu *cpu, lbr_kvariant out[4]) {
    int n = 0;
    LBR_ADD_VARIANT(out, n, "ref", lbr_xnor_ref);
#if LBR_X86
    if (cpu->avx2) LBR_ADD_VARIANT(out, n, "avx2", lbr_xnor_avx2);
    if (cpu->avx512vpopcntdq) LBR_ADD_VARIANT(out, n, "avx512", lbr_xnor_avx512);
#endif
    return n;
}

int lbr_bitserial_variants(const lbr_cpu *cpu, lbr_kvariant out[4]) {
    int n = 0;
    LBR_ADD_VARIANT(out, n, "ref", lbr_bitserial_ref);
#if LBR_X86
    if (cpu->avx2) LBR_ADD_VARIANT(out, n, "avx2", lbr_bitserial_avx2);
    if (cpu->avx512vpopcntdq) LBR_ADD_VARIANT(out, n, "avx512", lbr_bitserial_avx512);
#endif
    return n;
}

int lbr_bitserial_lanes_variants(const lbr_cpu *cpu, lbr_kvariant out[4]) {
    int n = 0;
#if LBR_X86
    if (cpu->avx2) LBR_ADD_VARIANT(out, n, "avx2-lanes", lbr_bitserial_lanes_avx2);
    if (cpu->avx512vpopcntdq) LBR_ADD_VARIANT(out, n, "avx512-lanes", lbr_bitserial_lanes_avx512);
#else
    (void)cpu;
    (void)out;
#endif
    return n;
}

int lbr_xnor_lanes_variants(const lbr_cpu *cpu, lbr_kvariant out[4]) {
    int n = 0;
#if LBR_X86
    if (cpu->avx2) LBR_ADD_VARIANT(out, n, "avx2-lanes", lbr_xnor_lanes_avx2);
    if (cpu->avx512bw && cpu->avx512vpopcntdq) LBR_ADD_VARIANT(out, n, "avx512-lanes", lbr_xnor_lanes_avx512);
#else
    (void)cpu;
    (void)out;
#endif
    return n;
}
