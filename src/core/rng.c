/* Philox-4x32-10 (Salmon et al., SC'11): a counter-based generator, so any random
 * number is addressed by (key, counter) and parallel loops draw the same values
 * whatever the thread count. */
#include "lb_internal.h"

static inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

void lb_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
    uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = mulhilo(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

uint64_t lb_rng_key(uint64_t seed, uint64_t purpose) {
    /* splitmix64 finaliser over (seed, purpose): distinct purposes get unrelated keys */
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + purpose * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void lb_rng_uniform(float *out, int64_t n, float lo, float hi, uint64_t key, uint64_t stream) {
    float span = hi - lo;
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < (n + 3) / 4; b++) {
        uint32_t r[4];
        lb_philox4x32(key, stream, (uint64_t)b, r);
        for (int j = 0; j < 4 && b * 4 + j < n; j++) out[b * 4 + j] = lo + span * lb_u32_to_unit(r[j]);
    }
}

void lb_rng_permutation(int64_t *perm, int64_t n, uint64_t key, uint64_t stream) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t r[4];
        lb_philox4x32(key, stream, (uint64_t)i, r);
        /* 64-bit draw reduced by multiply-shift: bias below 2^-32 for any n here */
        uint64_t x = ((uint64_t)r[0] << 32) | r[1];
        int64_t j = (int64_t)(((unsigned __int128)x * (uint64_t)(i + 1)) >> 64);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
