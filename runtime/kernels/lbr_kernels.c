/* lbr_kernels.c - each kernel family's variants, from the family's own list. */
#include "kernels/lbr_kernels.h"
#include "kernels/lbr_kernels_impl.h"

int lbr_kernel_variants(lbr_kfamily family, const lbr_cpu *cpu, lbr_kvariant out[4]) {
    switch (family) {
    case LBR_K_XNOR: return lbr_xnor_variants(cpu, out);
    case LBR_K_BITSERIAL: return lbr_bitserial_variants(cpu, out);
    case LBR_K_S8U8: return lbr_s8u8_variants(cpu, out);
    case LBR_K_SHIFT: return lbr_shift_variants(cpu, out);
    case LBR_K_BUCKET: return lbr_bucket_variants(cpu, out);
    case LBR_K_COUNT: break;
    }
    return 0;
}
