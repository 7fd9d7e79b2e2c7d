/* bucket.c - the bucket family's variants, ref first, best last. */
#include "kernels/bucket/bucket_impl.h"
#include "kernels/lbr_kernels_impl.h"

int lbr_bucket_variants(const lbr_cpu *cpu, lbr_kvariant out[4]) {
    int n = 0;
    (void)cpu;
    LBR_ADD_VARIANT(out, n, "ref", lbr_bucket_ref);
#if LBR_X86
    if (cpu->avx2) LBR_ADD_VARIANT(out, n, "avx2", lbr_bucket_avx2);
    if (cpu->avx512bw) LBR_ADD_VARIANT(out, n, "avx512", lbr_bucket_avx512);
#endif
    return n;
}
