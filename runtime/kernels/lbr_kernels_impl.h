/* lbr_kernels_impl.h - how the families publish their variants (private).
 * Family F lives in runtime/kernels/<dir>/: F_ref.c (the scalar definition), F_avx2.c,
 * F_avx512.c, compiled with portable flags: SIMD functions carry the LBR_TARGET_*
 * attributes so that the library builds and runs anywhere, and lbr_F_variants lists
 * those the CPU can run (ref first, best last). Every variant is bit-identical to F_ref. */
#ifndef LBR_KERNELS_IMPL_H
#define LBR_KERNELS_IMPL_H

#include "kernels/lbr_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LBR_X86 1
#define LBR_TARGET_AVX2 __attribute__((target("avx2,fma,bmi2,popcnt")))
#define LBR_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,bmi2,popcnt")))
#define LBR_TARGET_AVX512POP __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,bmi2,popcnt")))
#define LBR_TARGET_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,bmi2,popcnt")))
#else
#define LBR_X86 0
#endif

#define LBR_ADD_VARIANT(out, n, nm, f) ((out)[n].name = (nm), (out)[n].fn = (void (*)(void))(f), (n)++)

int lbr_xnor_variants(const lbr_cpu *cpu, lbr_kvariant out[4]);
int lbr_bitserial_variants(const lbr_cpu *cpu, lbr_kvariant out[4]);
int lbr_s8u8_variants(const lbr_cpu *cpu, lbr_kvariant out[4]);
int lbr_shift_variants(const lbr_cpu *cpu, lbr_kvariant out[4]);
int lbr_bucket_variants(const lbr_cpu *cpu, lbr_kvariant out[4]);

#endif
