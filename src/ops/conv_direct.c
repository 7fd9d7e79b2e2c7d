/* Direct NHWC convolution (see conv_direct.h): no im2col matrix, register-blocked
 * micro-kernels.
 *
 * Forward (and backward-data, which is the same kernel on re-laid-out weights): a block
 * of P output pixels of one row x NV vectors of VL output channels stays in registers
 * (P*NV accumulators); for every tap row and every j = kw*Cin + c of it, NV weight
 * vectors are loaded (weights re-laid out once per call as [KH][KW][Cin][Nout], output
 * channels innermost) and each pixel's input value is broadcast into NV FMAs. Input rows
 * are first copied into a per-thread buffer with the width padding as zeros (so the inner
 * loop has no bounds checks: j is contiguous over kw and c in NHWC) for a chunk of output
 * rows; height padding is handled by skipping taps. AVX-512 blocking: NV=2 x P<=14 (28
 * accumulators + 2 weights + 1 broadcast = 31 of 32 zmm), NV=4 x P<=6 (24 + 4 + 1; P=7
 * spills a zmm in the inner loop with GCC 12), NV=3 x P<=9, NV=1 x P<=16. Per j step a
 * block issues NV + P loads for NV*P FMAs, within the two load ports.
 *
 * Backward-data: stride 1 is a stride-1 conv of dout (padded by KH-1-PH) with the
 * flipped, transposed weights. Stride S is split into S*S phases (din rows/columns with
 * the same residue mod S): din[S*q+r] = sum_t dout[q+t] * w[r+P-S*t], a stride-1
 * correlation over the taps of that residue, so the same kernel runs on every phase with
 * din's pixel stride S*C for the stores. C need not be a multiple of VL (masked stores).
 *
 * Backward-weights: JB consecutive j (= kw*C + c) x NV output-channel vectors of dwk stay
 * in registers while the kernel runs over a group of output rows: per pixel NV dout
 * vectors are loaded and JB input values broadcast. Each thread accumulates its own
 * partial dwk (laid out [KH][KW][C][OC]) over a static range of rows; partials are then
 * summed in thread order.
 *
 * Parallelism: OpenMP, static split of B*OH (forward, backward-weights) or B*H
 * (backward-data) rows into one contiguous range per thread.
 *
 * Measured (bench/bench_conv, fmnist-cnn layers, batch 128, 2 threads, this 2-core
 * AVX-512 machine, minimum of 60 runs; fp32 peak 446 GFLOP/s), ms and GFLOP/s for
 * forward / backward-data / backward-weights, direct vs im2col + OpenBLAS (SkylakeX):
 *   conv2 32->32 28x28: 5.1 / 4.8 / 5.4 ms (360 / 387 / 342) vs 28.2 / 20.6 / 15.8
 *   conv4 64->64 14x14: 4.6 / 4.5 / 4.6 ms (403 / 414 / 405) vs 13.7 / 12.3 / 9.4
 *   conv3 32->64 14x14: 2.4 / 2.1 / 2.2 ms (392 / 432 / 421) vs  5.8 /  6.2 / 4.6
 *   conv1  1->32 28x28: 0.42 / -  / 0.40 ms (138 / - / 145)  vs  2.7 /  -  / 3.0
 * Typical (not minimum) runs are 5-10% slower; with other jobs on the machine, 2-3x.
 * The AVX2 tier (-march=x86-64-v3) reaches 210-225 GFLOP/s on conv2-4; the generic
 * 4-float tier about 60. */
#include "ops/conv_direct.h"

#include "lb_internal.h"
#include "ops/reduce.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#define LB_INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

/* Output rows per forward / backward-data chunk: input rows are copied once per chunk,
 * so halo rows are copied (KH-1)/RC extra times; 8 keeps the buffer in L1/L2 (4, 8 and
 * 16 measured equal within noise on the fmnist-cnn layers). */
#ifndef CHUNK_ROWS
#define CHUNK_ROWS 8
#endif
/* Backward-weights: output pixels per row group, so that loading and storing the
 * JB*NV accumulators (once per group) is amortised over >= 64 pixels of FMAs. */
#ifndef BWW_GROUP_PIX
#define BWW_GROUP_PIX 64
#endif
#define SMAX 2 /* largest supported stride */

/* ------------------------------------------------------------------ vectors */

#if defined(__AVX512F__)
#define VL 16 /* floats per vector */
typedef __m512 vf;
typedef __mmask16 vmask;
LB_INLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
LB_INLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
LB_INLINE vf vf_loadm(const float *p, vmask m) { return _mm512_maskz_loadu_ps(m, p); }
LB_INLINE vf vf_bcast(const float *p) { return _mm512_set1_ps(*p); }
LB_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
LB_INLINE void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
LB_INLINE void vf_storem(float *p, vmask m, vf v) { _mm512_mask_storeu_ps(p, m, v); }
LB_INLINE vmask vf_mask(int n) { return (vmask)(n >= 16 ? 0xFFFFu : (1u << n) - 1u); }
#elif defined(__AVX2__) && defined(__FMA__)
/* AVX2: 8-float vectors, 16 registers (blocking tables below). */
#define VL 8
typedef __m256 vf;
typedef int vmask; /* number of valid lanes */
LB_INLINE __m256i vf_lanes(vmask m) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
LB_INLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
LB_INLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
LB_INLINE vf vf_loadm(const float *p, vmask m) { return _mm256_maskload_ps(p, vf_lanes(m)); }
LB_INLINE vf vf_bcast(const float *p) { return _mm256_broadcast_ss(p); }
LB_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
LB_INLINE void vf_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
LB_INLINE void vf_storem(float *p, vmask m, vf v) { _mm256_maskstore_ps(p, vf_lanes(m), v); }
LB_INLINE vmask vf_mask(int n) { return n >= VL ? VL : n; }
#else
/* Portable fallback: the same kernels on GCC/Clang generic 4-float vectors (SSE or
 * NEON registers; multiply and add stay separate under the library's -ffp-contract=off). Macros rather than functions: passing these
 * vectors by value draws ABI notes from GCC. Mask = number of valid lanes. */
#define VL 4
typedef float vf __attribute__((vector_size(16)));
typedef float vfu __attribute__((vector_size(16), aligned(4), may_alias)); /* unaligned access */
typedef int vmask;
#define vf_zero() ((vf){0})
#define vf_load(p) ((vf)*(const vfu *)(p))
#define vf_loadm(p, m) vf_loadm_(p, m)
#define vf_bcast(p) ((vf){0} + *(p))
#define vf_fma(a, b, c) ((a) * (b) + (c))
#define vf_store(p, v) (*(vfu *)(p) = (v))
#define vf_storem(p, m, v) do { vf v_ = (v); for (int i_ = 0; i_ < (m); i_++) (p)[i_] = v_[i_]; } while (0)
#define vf_mask(n) ((n) >= VL ? VL : (n))
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-warning-option"
#endif
#pragma GCC diagnostic ignored "-Wpsabi" /* vf_loadm_ returns a vector; always inlined */
LB_INLINE vf vf_loadm_(const float *p, vmask m) {
    vf r = {0};
    for (int i = 0; i < m; i++) r[i] = p[i];
    return r;
}
#endif

/* ------------------------------------------------------------------ helpers */

static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int ceil_div(int a, int b) { return -floor_div(-a, b); }
static int64_t round16(int64_t n) { return (n + 15) & ~(int64_t)15; }

int lb_conv2d_direct_use_ref(void) {
    static atomic_int mode = -1;
    int m = atomic_load_explicit(&mode, memory_order_relaxed);
    if (m < 0) {
        const char *e = getenv("LOWBIT_REF");
        m = e && e[0] && strcmp(e, "0") != 0;
        atomic_store_explicit(&mode, m, memory_order_relaxed);
    }
    return m;
}

int lb_conv2d_direct_supported(const lb_conv_shape *s) {
    if (s->G != 1 || s->B < 1 || s->C < 1 || s->OC < 16 || s->OC % 16) return 0;
    if (s->KH < 1 || s->KH > 7 || s->KW < 1 || s->KW > 7) return 0;
    if (s->SH < 1 || s->SH > SMAX || s->SW < 1 || s->SW > SMAX || s->PH < 0 || s->PW < 0) return 0;
    if (s->H < 1 || s->W < 1 || s->H + 2 * s->PH < s->KH || s->W + 2 * s->PW < s->KW) return 0;
    return s->OH == (s->H + 2 * s->PH - s->KH) / s->SH + 1 && s->OW == (s->W + 2 * s->PW - s->KW) / s->SW + 1;
}

/* Copy rows [r_lo, r_hi) of an NHWC image (width wsrc, n channels) into buf, rows of wb
 * columns: buffer column x holds source column x - off, zeros outside the source. */
static void fill_rows(float *buf, const float *img, int r_lo, int r_hi, int wsrc, int n, int off, int wb) {
    const int xa = LB_MAX(0, off), xb = LB_MIN(wb, wsrc + off);
    for (int r = r_lo; r < r_hi; r++) {
        float *d = buf + (int64_t)(r - r_lo) * wb * n;
        const float *src = img + (int64_t)r * wsrc * n;
        if (xb <= xa) { memset(d, 0, sizeof(float) * (size_t)wb * n); continue; }
        if (xa > 0) memset(d, 0, sizeof(float) * (size_t)xa * n);
        memcpy(d + (int64_t)xa * n, src + (int64_t)(xa - off) * n, sizeof(float) * (size_t)(xb - xa) * n);
        if (xb < wb) memset(d + (int64_t)xb * n, 0, sizeof(float) * (size_t)(wb - xb) * n);
    }
}

/* Split n items into ceil(n / max) blocks of balanced size; block i is [*lo, *lo + *len). */
static int nblocks(int n, int max) { return (n + max - 1) / max; }
static void block_range(int n, int nb, int i, int *lo, int *len) {
    int q = n / nb, r = n % nb;
    *lo = i * q + LB_MIN(i, r);
    *len = q + (i < r);
}

/* ------------------------------------------------------------------ forward kernel */

/* Largest pixel block per NV (see the header comment for the register budget). */
#define FWD_PMAX 16
#if defined(__AVX512F__)
static const int fwd_pmax[5] = {0, 16, 14, 9, 6};
#else /* AVX2 or generic, 16 registers: NV=2 x P=6 is 12 accumulators + 2 weights + 1 broadcast */
static const int fwd_pmax[5] = {0, 12, 6, 4, 2};
#endif
/* Output-channel vectors per block. For OC=64, NV=4 x P<=6 and NV=2 x P<=14 measured
 * equal within noise (+-5%) on conv3/conv4; 4 issues fewer loads per FMA. */
#ifndef FWD_NV_PREF
#if defined(__AVX512F__)
#define FWD_NV_PREF 4
#else
#define FWD_NV_PREF 2
#endif
#endif
static const int fwd_nv_pref = FWD_NV_PREF;

typedef struct fargs {
    const float *x;     /* input buffer at the block's first pixel, first tap row */
    int64_t xps, xts;   /* floats between pixels / between tap rows */
    const float *w;     /* weights [tap][j][wjs] at the first tap and output channel */
    int64_t wjs;
    int ntap, J;
    float *out;         /* output at the block's first pixel and channel */
    int64_t ops;        /* floats between output pixels */
    const float *init;  /* accumulators start from init[p*ips + ...]; NULL: zero */
    int64_t ips;
    int nlast;          /* valid lanes of the last vector (1..VL) */
} fargs;

LB_INLINE void fwd_core(const fargs *a, const int NV, const int P) {
    vf acc[FWD_PMAX][4];
    const vmask ml = vf_mask(a->nlast);
    if (a->init) {
        UNROLL for (int p = 0; p < P; p++)
            UNROLL for (int v = 0; v < NV; v++) {
                const float *q = a->init + p * a->ips + VL * v;
                acc[p][v] = v == NV - 1 && a->nlast < VL ? vf_loadm(q, ml) : vf_load(q);
            }
    } else {
        UNROLL for (int p = 0; p < P; p++)
            UNROLL for (int v = 0; v < NV; v++) acc[p][v] = vf_zero();
    }
    /* Prefetch the output block for writing while the FMAs run: the stores at the end
     * otherwise wait for the lines (read-for-ownership) from memory. Measured on conv1
     * (1->32, 28x28, write-bound): 0.59 -> 0.46 ms; conv2 forward about 5% faster. */
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int v = 0; v < NV; v++) __builtin_prefetch(a->out + p * a->ops + VL * v, 1, 3);
    const float *xt = a->x, *w = a->w;
    const int64_t xps = a->xps, wjs = a->wjs;
    const int J = a->J;
    for (int t = 0; t < a->ntap; t++, xt += a->xts) {
        for (int j = 0; j < J; j++, w += wjs) {
            vf wv[4];
            UNROLL for (int v = 0; v < NV; v++) wv[v] = vf_load(w + VL * v);
            UNROLL for (int p = 0; p < P; p++) {
                vf xb = vf_bcast(xt + p * xps + j);
                UNROLL for (int v = 0; v < NV; v++) acc[p][v] = vf_fma(xb, wv[v], acc[p][v]);
            }
        }
    }
    UNROLL for (int p = 0; p < P; p++)
        UNROLL for (int v = 0; v < NV; v++) {
            float *q = a->out + p * a->ops + VL * v;
            /* masked only when needed: AVX2 masked stores measured 16x slower here */
            if (v == NV - 1 && a->nlast < VL) vf_storem(q, ml, acc[p][v]);
            else vf_store(q, acc[p][v]);
        }
}

typedef void (*fwd_fn)(const fargs *);
#define SEQ6(M, N) M(N, 1) M(N, 2) M(N, 3) M(N, 4) M(N, 5) M(N, 6)
#define SEQ8(M, N) SEQ6(M, N) M(N, 7) M(N, 8)
#define SEQ9(M, N) SEQ8(M, N) M(N, 9)
#define SEQ12(M, N) SEQ9(M, N) M(N, 10) M(N, 11) M(N, 12)
#define SEQ14(M, N) SEQ12(M, N) M(N, 13) M(N, 14)
#define SEQ16(M, N) SEQ14(M, N) M(N, 15) M(N, 16)

#define FWD_DEF(NV, P) static void fwd_##NV##_##P(const fargs *a) { fwd_core(a, NV, P); }
#define FWD_ENT(NV, P) [P] = fwd_##NV##_##P,
SEQ16(FWD_DEF, 1)
SEQ14(FWD_DEF, 2)
SEQ9(FWD_DEF, 3)
SEQ6(FWD_DEF, 4)
static const fwd_fn fwd_tab[5][FWD_PMAX + 1] = {
    [1] = {SEQ16(FWD_ENT, 1)}, [2] = {SEQ14(FWD_ENT, 2)}, [3] = {SEQ9(FWD_ENT, 3)}, [4] = {SEQ6(FWD_ENT, 4)}};

/* Run the kernel over npix pixels x nout channels (output vectors blocked by
 * fwd_nv_pref, pixels in balanced blocks). `a` holds the block-independent fields and
 * the pointers of pixel 0 / channel 0; the input advances by xps per pixel. */
static void fwd_row(const fargs *a0, int npix, int nout) {
    const int nvec = (nout + VL - 1) / VL;
    for (int v0 = 0; v0 < nvec;) {
        const int nv = LB_MIN(fwd_nv_pref, nvec - v0), nb = nblocks(npix, fwd_pmax[nv]);
        const int last = v0 + nv == nvec;
        for (int i = 0; i < nb; i++) {
            int p0, np;
            block_range(npix, nb, i, &p0, &np);
            fargs a = *a0;
            a.x += p0 * a.xps;
            a.w += VL * v0;
            a.out += p0 * a.ops + VL * v0;
            if (a.init) a.init += p0 * a.ips + VL * v0;
            a.nlast = last ? nout - VL * (nvec - 1) : VL;
            fwd_tab[nv][np](&a);
        }
        v0 += nv;
    }
}

/* ------------------------------------------------------------------ backward-weights kernel */

/* Largest j block per NV: JB*NV accumulators + NV dout vectors + 1 broadcast registers.
 * NV=4 (OC=64) and NV=2 measured equal within noise on conv4. */
#define BWW_JBMAX 16
#if defined(__AVX512F__)
static const int bww_jbmax[5] = {0, 16, 12, 8, 6};
#else
static const int bww_jbmax[5] = {0, 12, 6, 4, 2};
#endif
#ifndef BWW_NV_PREF
#if defined(__AVX512F__)
#define BWW_NV_PREF 4
#else
#define BWW_NV_PREF 2
#endif
#endif
static const int bww_nv_pref = BWW_NV_PREF;

typedef struct wargs {
    float *pw;          /* partial dwk [j][pws] at (tap, j0, oc0) */
    int64_t pws;
    const float *x;     /* input buffer at (first row, first pixel, j0) */
    int64_t xrs, xps;   /* floats between rows / pixels */
    const float *d;     /* dout at (first row, first pixel, oc0) */
    int64_t drs, dps;
    int nrows, npix;
} wargs;

LB_INLINE void bww_core(const wargs *a, const int NV, const int JB) {
    vf acc[BWW_JBMAX][4];
    UNROLL for (int i = 0; i < JB; i++)
        UNROLL for (int v = 0; v < NV; v++) acc[i][v] = vf_load(a->pw + i * a->pws + VL * v);
    const int64_t xps = a->xps, dps = a->dps;
    for (int r = 0; r < a->nrows; r++) {
        const float *xr = a->x + r * a->xrs, *dr = a->d + r * a->drs;
        for (int p = 0; p < a->npix; p++, xr += xps, dr += dps) {
            vf dv[4];
            UNROLL for (int v = 0; v < NV; v++) dv[v] = vf_load(dr + VL * v);
            UNROLL for (int i = 0; i < JB; i++) {
                vf xb = vf_bcast(xr + i);
                UNROLL for (int v = 0; v < NV; v++) acc[i][v] = vf_fma(xb, dv[v], acc[i][v]);
            }
        }
    }
    UNROLL for (int i = 0; i < JB; i++)
        UNROLL for (int v = 0; v < NV; v++) vf_store(a->pw + i * a->pws + VL * v, acc[i][v]);
}

typedef void (*bww_fn)(const wargs *);
#define BWW_DEF(NV, JB) static void bww_##NV##_##JB(const wargs *a) { bww_core(a, NV, JB); }
#define BWW_ENT(NV, JB) [JB] = bww_##NV##_##JB,
SEQ16(BWW_DEF, 1)
SEQ12(BWW_DEF, 2)
SEQ8(BWW_DEF, 3)
SEQ6(BWW_DEF, 4)
static const bww_fn bww_tab[5][BWW_JBMAX + 1] = {
    [1] = {SEQ16(BWW_ENT, 1)}, [2] = {SEQ12(BWW_ENT, 2)}, [3] = {SEQ8(BWW_ENT, 3)}, [4] = {SEQ6(BWW_ENT, 4)}};

/* ------------------------------------------------------------------ geometry and scratch */

static int chunk_rows(int n) { return LB_MIN(CHUNK_ROWS, n); }
/* forward / backward-weights input buffer width: columns ow*SW + kw */
static int in_buf_w(const lb_conv_shape *s) { return (s->OW - 1) * s->SW + s->KW; }
static int bww_rows_per_group(const lb_conv_shape *s) {
    return LB_MIN(s->OH, LB_MAX(1, (BWW_GROUP_PIX + s->OW - 1) / s->OW));
}
static int64_t fwd_buf_size(const lb_conv_shape *s) {
    return round16((int64_t)((chunk_rows(s->OH) - 1) * s->SH + s->KH) * in_buf_w(s) * s->C);
}
static int64_t bww_buf_size(const lb_conv_shape *s) {
    return round16((int64_t)((bww_rows_per_group(s) - 1) * s->SH + s->KH) * in_buf_w(s) * s->C);
}

/* Backward-data phases: din row ih = SH*q + rh takes dout rows q + t, t in
 * [tmin[rh], tmin[rh] + nt[rh]), with kh = rh + PH - SH*t; columns likewise with u. */
typedef struct bd_geom {
    int tmin[SMAX], nt[SMAX];
    int umin[SMAX], nu[SMAX], np[SMAX];
    int64_t woff[SMAX][SMAX]; /* phase weights [t][u][OC][Cpad] */
    int cpad, U0, wb, rows;   /* buffer column x holds dout column x + U0 */
} bd_geom;

static void bd_geometry(const lb_conv_shape *s, bd_geom *g) {
    memset(g, 0, sizeof *g);
    g->cpad = (int)round16(s->C);
    int tlo = 0, thi = 0, have_t = 0;
    for (int rh = 0; rh < s->SH; rh++) {
        int t0 = ceil_div(rh + s->PH - s->KH + 1, s->SH), t1 = floor_div(rh + s->PH, s->SH);
        g->tmin[rh] = t0;
        g->nt[rh] = LB_MAX(0, t1 - t0 + 1);
        if (g->nt[rh] > 0 && rh < s->H) {
            tlo = have_t ? LB_MIN(tlo, t0) : t0;
            thi = have_t ? LB_MAX(thi, t1) : t1;
            have_t = 1;
        }
    }
    int xlo = 0, xhi = 1, have_u = 0;
    for (int rw = 0; rw < s->SW; rw++) {
        int u0 = ceil_div(rw + s->PW - s->KW + 1, s->SW), u1 = floor_div(rw + s->PW, s->SW);
        g->umin[rw] = u0;
        g->nu[rw] = LB_MAX(0, u1 - u0 + 1);
        g->np[rw] = rw < s->W ? (s->W - rw + s->SW - 1) / s->SW : 0;
        if (g->nu[rw] > 0 && g->np[rw] > 0) {
            int end = g->np[rw] + u1; /* one past the last dout column read */
            xlo = have_u ? LB_MIN(xlo, u0) : u0;
            xhi = have_u ? LB_MAX(xhi, end) : end;
            have_u = 1;
        }
    }
    g->U0 = have_u ? xlo : 0;
    g->wb = have_u ? xhi - xlo : 1;
    g->rows = (chunk_rows(s->H) - 1) / s->SH + 2 + (have_t ? thi - tlo : 0);
    int64_t off = 0;
    for (int rh = 0; rh < s->SH; rh++)
        for (int rw = 0; rw < s->SW; rw++) {
            g->woff[rh][rw] = off;
            off += (int64_t)g->nt[rh] * g->nu[rw] * s->OC * g->cpad;
        }
}

static int64_t fwd_scratch(const lb_conv_shape *s, int nth) {
    return round16((int64_t)s->KH * s->KW * s->C * s->OC) + nth * fwd_buf_size(s);
}
static int64_t bwd_scratch(const lb_conv_shape *s, int nth) {
    bd_geom g;
    bd_geometry(s, &g);
    return round16((int64_t)s->KH * s->KW * s->OC * g.cpad) + nth * round16((int64_t)g.rows * g.wb * s->OC);
}
static int64_t bww_slot(const lb_conv_shape *s) {
    return round16((int64_t)s->KH * s->KW * s->C * s->OC) + bww_buf_size(s);
}

int64_t lb_conv2d_direct_scratch_size(const lb_conv_shape *s) {
    const int nth = omp_get_max_threads();
    int64_t n = fwd_scratch(s, nth);
    n = LB_MAX(n, bwd_scratch(s, nth));
    return LB_MAX(n, nth * bww_slot(s));
}

/* ------------------------------------------------------------------ forward */

void lb_conv2d_direct_forward(float *out, const float *in, const float *wk, const float *bias,
                              const lb_conv_shape *s, float *scratch) {
    if (lb_conv2d_direct_use_ref()) { lb_conv2d_direct_forward_ref(out, in, wk, bias, s); return; }
    const int H = s->H, W = s->W, C = s->C, OH = s->OH, OW = s->OW, OC = s->OC;
    const int KH = s->KH, KW = s->KW, SH = s->SH, SW = s->SW, PH = s->PH, PW = s->PW;
    const int J = KW * C, wp = in_buf_w(s), rc = chunk_rows(OH);
    const int64_t nw = (int64_t)KH * J, bufn = fwd_buf_size(s);
    float *wt = scratch; /* [KH][KW][C][OC] */
    #pragma omp parallel num_threads(omp_get_max_threads())
    {
        #pragma omp for schedule(static)
        for (int64_t e = 0; e < nw; e++) /* e = (kh*KW + kw)*C + c */
            for (int o = 0; o < OC; o++) wt[e * OC + o] = wk[o * nw + e];
        const int tid = omp_get_thread_num();
        float *buf = scratch + round16(nw * OC) + tid * bufn;
        int64_t r0, r1;
        lb_split_range((int64_t)s->B * OH, omp_get_num_threads(), tid, &r0, &r1);
        fargs a0 = {.xps = (int64_t)SW * C, .xts = (int64_t)wp * C, .wjs = OC, .J = J, .ops = OC, .init = bias,
                    .ips = 0, .nlast = VL};
        for (int64_t r = r0; r < r1;) {
            const int b = (int)(r / OH), oh0 = (int)(r % OH);
            const int oh1 = (int)LB_MIN((int64_t)LB_MIN(OH, oh0 + rc), oh0 + (r1 - r));
            const int ih_lo = LB_MAX(0, oh0 * SH - PH), ih_hi = LB_MIN(H, (oh1 - 1) * SH - PH + KH);
            fill_rows(buf, in + (int64_t)b * H * W * C, ih_lo, ih_hi, W, C, PW, wp);
            for (int oh = oh0; oh < oh1; oh++) {
                const int t0 = LB_MAX(0, PH - oh * SH), t1 = LB_MIN(KH, H + PH - oh * SH);
                float *orow = out + ((int64_t)b * OH + oh) * OW * OC;
                if (t1 <= t0) { /* every tap in the padding */
                    for (int ow = 0; ow < OW; ow++) {
                        if (bias) memcpy(orow + (int64_t)ow * OC, bias, sizeof(float) * OC);
                        else memset(orow + (int64_t)ow * OC, 0, sizeof(float) * OC);
                    }
                    continue;
                }
                fargs a = a0;
                a.x = buf + (int64_t)(oh * SH - PH + t0 - ih_lo) * wp * C;
                a.w = wt + (int64_t)t0 * J * OC;
                a.ntap = t1 - t0;
                a.out = orow;
                fwd_row(&a, OW, OC);
            }
            r += oh1 - oh0;
        }
    }
}

/* ------------------------------------------------------------------ backward-data */

void lb_conv2d_direct_backward_data(float *din, const float *dout, const float *wk, const lb_conv_shape *s,
                                    int acc, float *scratch) {
    if (lb_conv2d_direct_use_ref()) { lb_conv2d_direct_backward_data_ref(din, dout, wk, s, acc); return; }
    const int H = s->H, W = s->W, C = s->C, OH = s->OH, OW = s->OW, OC = s->OC;
    const int KH = s->KH, KW = s->KW, SH = s->SH, SW = s->SW, PH = s->PH, PW = s->PW;
    bd_geom g;
    bd_geometry(s, &g);
    const int cpad = g.cpad, rc = chunk_rows(H);
    const int64_t nwt = round16((int64_t)KH * KW * OC * cpad), bufn = round16((int64_t)g.rows * g.wb * OC);
    float *wt = scratch;
    #pragma omp parallel num_threads(omp_get_max_threads())
    {
        /* phase weights: wt[woff + ((ti*nu + ui)*OC + o)*cpad + c] = wk[o][kh][kw][c] */
        #pragma omp for schedule(static)
        for (int kh = 0; kh < KH; kh++) {
            const int rh = ((kh - PH) % SH + SH) % SH, t = (rh + PH - kh) / SH, ti = t - g.tmin[rh];
            for (int kw = 0; kw < KW; kw++) {
                const int rw = ((kw - PW) % SW + SW) % SW, u = (rw + PW - kw) / SW, ui = u - g.umin[rw];
                float *d = wt + g.woff[rh][rw] + ((int64_t)ti * g.nu[rw] + ui) * OC * cpad;
                for (int o = 0; o < OC; o++) {
                    const float *src = wk + (((int64_t)o * KH + kh) * KW + kw) * C;
                    memcpy(d + (int64_t)o * cpad, src, sizeof(float) * C);
                    memset(d + (int64_t)o * cpad + C, 0, sizeof(float) * (cpad - C));
                }
            }
        }
        const int tid = omp_get_thread_num();
        float *buf = scratch + nwt + tid * bufn;
        int64_t r0, r1;
        lb_split_range((int64_t)s->B * H, omp_get_num_threads(), tid, &r0, &r1);
        for (int64_t r = r0; r < r1;) {
            const int b = (int)(r / H), ih0 = (int)(r % H);
            const int ih1 = (int)LB_MIN((int64_t)LB_MIN(H, ih0 + rc), ih0 + (r1 - r));
            int oh_lo = OH, oh_hi = 0; /* dout rows this chunk reads */
            for (int ih = ih0; ih < ih1; ih++) {
                const int rh = ih % SH, q = ih / SH;
                if (!g.nt[rh]) continue;
                oh_lo = LB_MIN(oh_lo, LB_MAX(0, q + g.tmin[rh]));
                oh_hi = LB_MAX(oh_hi, LB_MIN(OH, q + g.tmin[rh] + g.nt[rh]));
            }
            if (oh_hi > oh_lo) fill_rows(buf, dout + (int64_t)b * OH * OW * OC, oh_lo, oh_hi, OW, OC, -g.U0, g.wb);
            for (int ih = ih0; ih < ih1; ih++) {
                const int rh = ih % SH, q = ih / SH;
                const int tA = LB_MAX(g.tmin[rh], -q), tB = LB_MIN(g.tmin[rh] + g.nt[rh], OH - q);
                for (int rw = 0; rw < SW; rw++) {
                    const int np = g.np[rw];
                    float *orow = din + (((int64_t)b * H + ih) * W + rw) * C;
                    if (!np) continue;
                    if (tB <= tA || !g.nu[rw]) { /* no tap reaches these pixels */
                        if (!acc)
                            for (int p = 0; p < np; p++) memset(orow + (int64_t)p * SW * C, 0, sizeof(float) * C);
                        continue;
                    }
                    const int J = g.nu[rw] * OC;
                    fargs a = {.x = buf + ((int64_t)(q + tA - oh_lo) * g.wb + (g.umin[rw] - g.U0)) * OC,
                               .xps = OC, .xts = (int64_t)g.wb * OC,
                               .w = wt + g.woff[rh][rw] + (int64_t)(tA - g.tmin[rh]) * J * cpad, .wjs = cpad,
                               .ntap = tB - tA, .J = J, .out = orow, .ops = (int64_t)SW * C,
                               .init = acc ? orow : NULL, .ips = (int64_t)SW * C};
                    fwd_row(&a, np, C);
                }
            }
            r += ih1 - ih0;
        }
    }
}

/* ------------------------------------------------------------------ backward-weights */

void lb_conv2d_direct_backward_weights(float *dwk, float *dbias, const float *dout, const float *in,
                                       const lb_conv_shape *s, float *scratch) {
    if (lb_conv2d_direct_use_ref()) { lb_conv2d_direct_backward_weights_ref(dwk, dbias, dout, in, s); return; }
    const int H = s->H, W = s->W, C = s->C, OH = s->OH, OW = s->OW, OC = s->OC;
    const int KH = s->KH, KW = s->KW, SH = s->SH, SW = s->SW, PH = s->PH, PW = s->PW;
    const int J = KW * C, wp = in_buf_w(s), rg = bww_rows_per_group(s);
    const int64_t E = (int64_t)KH * J, slot = bww_slot(s), partn = round16(E * OC);
    if (dbias) lb_colsum(dbias, dout, (int64_t)s->B * OH * OW, OC);
    #pragma omp parallel num_threads(omp_get_max_threads())
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        float *part = scratch + tid * slot, *buf = part + partn; /* part: [KH][KW][C][OC] */
        memset(part, 0, sizeof(float) * (size_t)(E * OC));
        int64_t r0, r1;
        lb_split_range((int64_t)s->B * OH, nth, tid, &r0, &r1);
        for (int64_t r = r0; r < r1;) {
            const int b = (int)(r / OH), oh0 = (int)(r % OH);
            const int oh1 = (int)LB_MIN((int64_t)LB_MIN(OH, oh0 + rg), oh0 + (r1 - r)), R = oh1 - oh0;
            const int ih_lo = LB_MAX(0, oh0 * SH - PH), ih_hi = LB_MIN(H, (oh1 - 1) * SH - PH + KH);
            fill_rows(buf, in + (int64_t)b * H * W * C, ih_lo, ih_hi, W, C, PW, wp);
            for (int t = 0; t < KH; t++) {
                /* rows whose input row oh*SH - PH + t lies inside the image */
                const int rA = LB_MAX(0, ceil_div(PH - t, SH) - oh0), rB = LB_MIN(R, ceil_div(H + PH - t, SH) - oh0);
                if (rB <= rA) continue;
                const float *x0 = buf + (int64_t)((oh0 + rA) * SH - PH + t - ih_lo) * wp * C;
                const float *d0 = dout + ((int64_t)b * OH + oh0 + rA) * OW * OC;
                for (int v0 = 0; v0 < OC / VL;) {
                    const int nv = LB_MIN(bww_nv_pref, OC / VL - v0), nb = nblocks(J, bww_jbmax[nv]);
                    for (int i = 0; i < nb; i++) {
                        int j0, jb;
                        block_range(J, nb, i, &j0, &jb);
                        wargs a = {.pw = part + ((int64_t)t * J + j0) * OC + VL * v0, .pws = OC,
                                   .x = x0 + j0, .xrs = (int64_t)SH * wp * C, .xps = (int64_t)SW * C,
                                   .d = d0 + VL * v0, .drs = (int64_t)OW * OC, .dps = OC,
                                   .nrows = rB - rA, .npix = OW};
                        bww_tab[nv][jb](&a);
                    }
                    v0 += nv;
                }
            }
            r += R;
        }
        #pragma omp barrier
        /* dwk[o][e] = sum of the partials in thread order */
        #pragma omp for schedule(static)
        for (int64_t e = 0; e < E; e++)
            for (int o = 0; o < OC; o++) {
                float sum = scratch[e * OC + o];
                for (int k = 1; k < nth; k++) sum += scratch[k * slot + e * OC + o];
                dwk[o * E + e] = sum;
            }
    }
}

/* ------------------------------------------------------------------ references */

void lb_conv2d_direct_forward_ref(float *out, const float *in, const float *wk, const float *bias,
                                  const lb_conv_shape *s) {
    const int H = s->H, W = s->W, C = s->C, OH = s->OH, OW = s->OW, OC = s->OC, KH = s->KH, KW = s->KW;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < (int64_t)s->B * OH; r++) {
        const int64_t b = r / OH;
        const int oh = (int)(r % OH);
        for (int ow = 0; ow < OW; ow++)
            for (int o = 0; o < OC; o++) {
                float sum = bias ? bias[o] : 0.0f;
                for (int kh = 0; kh < KH; kh++) {
                    const int ih = oh * s->SH - s->PH + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int kw = 0; kw < KW; kw++) {
                        const int iw = ow * s->SW - s->PW + kw;
                        if (iw < 0 || iw >= W) continue;
                        const float *x = in + ((b * H + ih) * W + iw) * C, *w = wk + (((int64_t)o * KH + kh) * KW + kw) * C;
                        for (int c = 0; c < C; c++) sum += x[c] * w[c];
                    }
                }
                out[(r * OW + ow) * OC + o] = sum;
            }
    }
}

void lb_conv2d_direct_backward_data_ref(float *din, const float *dout, const float *wk, const lb_conv_shape *s,
                                        int acc) {
    const int H = s->H, W = s->W, C = s->C, OH = s->OH, OW = s->OW, OC = s->OC, KH = s->KH, KW = s->KW;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < (int64_t)s->B * H; r++) {
        const int64_t b = r / H;
        const int ih = (int)(r % H);
        for (int iw = 0; iw < W; iw++)
            for (int c = 0; c < C; c++) {
                float sum = 0.0f;
                for (int kh = 0; kh < KH; kh++) {
                    const int th = ih + s->PH - kh, oh = th / s->SH;
                    if (th < 0 || th % s->SH || oh >= OH) continue;
                    for (int kw = 0; kw < KW; kw++) {
                        const int tw = iw + s->PW - kw, ow = tw / s->SW;
                        if (tw < 0 || tw % s->SW || ow >= OW) continue;
                        const float *d = dout + ((b * OH + oh) * OW + ow) * OC;
                        for (int o = 0; o < OC; o++) sum += d[o] * wk[(((int64_t)o * KH + kh) * KW + kw) * C + c];
                    }
                }
                float *p = din + (r * W + iw) * C + c;
                *p = acc ? *p + sum : sum;
            }
    }
}

void lb_conv2d_direct_backward_weights_ref(float *dwk, float *dbias, const float *dout, const float *in,
                                           const lb_conv_shape *s) {
    const int H = s->H, W = s->W, C = s->C, OH = s->OH, OW = s->OW, OC = s->OC, KH = s->KH, KW = s->KW;
    const int64_t E = (int64_t)KH * KW * C;
    /* one output channel per iteration: each element is summed over positions in order */
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
        float *dw = dwk + o * E;
        for (int64_t e = 0; e < E; e++) dw[e] = 0.0f;
        double db = 0.0;
        for (int64_t b = 0; b < s->B; b++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    const float d = dout[((b * OH + oh) * OW + ow) * OC + o];
                    db += d;
                    for (int kh = 0; kh < KH; kh++) {
                        const int ih = oh * s->SH - s->PH + kh;
                        if (ih < 0 || ih >= H) continue;
                        for (int kw = 0; kw < KW; kw++) {
                            const int iw = ow * s->SW - s->PW + kw;
                            if (iw < 0 || iw >= W) continue;
                            const float *x = in + ((b * H + ih) * W + iw) * C;
                            float *g = dw + ((int64_t)kh * KW + kw) * C;
                            for (int c = 0; c < C; c++) g[c] += d * x[c];
                        }
                    }
                }
        if (dbias) dbias[o] = (float)db;
    }
}
