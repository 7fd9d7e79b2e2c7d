/* bytes_impl.h - the byte-row families' SIMD variants (private to runtime/kernels/bytes/).
 * Each has its family's signature and is bit-identical to its *_ref; bytes.c lists those
 * the CPU can run. */
#ifndef LBR_BYTES_IMPL_H
#define LBR_BYTES_IMPL_H

#include "kernels/lbr_kernels.h"
#include "kernels/lbr_kernels_impl.h"

#if LBR_X86
/* The SIMD files write one tile function over loops whose bounds (the tile's rows and
 * columns) are constants after inlining: the loops unroll and their vector arrays become
 * registers, so one body serves the full tile and every edge tile. */
#define LBR_INLINE static inline __attribute__((always_inline))
#if defined(__clang__)
#define LBR_UNROLL _Pragma("clang loop unroll(full)")
#else
#define LBR_UNROLL _Pragma("GCC unroll 16")
#endif
/* An empty asm that takes v in a register: applied to the accumulators between the K loop
 * and the reduction, it stops GCC 12 from copying accumulators between registers and
 * spilling them inside the K loop (8 extra instructions and a spill per iteration of the
 * 4 x 2 AVX2 loop). It emits no instruction. */
#define LBR_PIN(v) __asm__("" : "+v"(v))

/* W rows per block of the outer loop: about 128 KB of W, a multiple of the tile's nr, so
 * that the block stays in L2 while every tile of A rows passes over it (without it, W
 * is read from L3 or memory once per MR rows of A) */
static inline int lbr_bytes_nblock(size_t KB, int nr) {
    const int rows = (int)((size_t)128 * 1024 / KB) / nr * nr;
    return rows > nr ? rows : nr;
}

void lbr_s8u8_avx2(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc);
void lbr_s8u8_avx512(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc);
void lbr_s8u8_avx512vnni(int M, int N, int K, const uint8_t *A, const int8_t *W, int32_t *C, int ldc);
void lbr_shift_avx2(int M, int N, int K, const uint8_t *A, const int8_t *S, int32_t *C, int ldc);
void lbr_shift_avx512(int M, int N, int K, const uint8_t *A, const int8_t *S, int32_t *C, int ldc);
#endif

#endif
