/* balanced: Balanced quantization (Zhou et al., JCST 2017; METHODS.md section 1).
 * The weights are cut into K = 2^b bins of equal population by recursive percentiles
 * (median, then the median of each half, b levels deep), and bin j gets the uniform
 * level L_j = s (2j - (K-1)) / (K-1): histogram equalisation, then uniform quantization,
 * so inference is still uniform integer arithmetic (runtime/lbr_quant.h, affine levels).
 *   percentile=exact  quantiles by selection (quickselect per level, O(n) per level)
 *   percentile=mean   each median replaced by the mean of its sub-range (the paper's
 *                     cheap approximation; bins are then only roughly equal)
 *   scale=meanabs     s so that mean|Q(W)| = mean|W| (default); one: s = 1; learned: s
 *                     is a trained parameter ("scale"), started at the meanabs value
 *   every=N           recompute the edges every N training steps (default 1)
 * Backward: STE through the bin map; s gets a gradient only when learned. */
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct bal_state {
    int mean_mode, scale_mode, every;
    float *edges;            /* K-1 thresholds: code = #{edges <= w} */
    float *tmp;              /* exact mode: the weights of the buckets holding an edge */
    uint32_t *hist;          /* exact mode: 2^16-bucket histogram of the weights' keys */
    uint8_t *node;           /* mean mode: each weight's node of the partition tree so far */
    float s;                 /* current scale (meanabs/one) */
    int64_t fitted_step;     /* training step the edges were computed at, -1: never */
} bal_state;

enum { SCALE_MEANABS, SCALE_ONE, SCALE_LEARNED };

static lb_status bal_setup(lb_quant *q) {
    int pm = 0, sm = 0;
    double every = 1;
    lb_status s;
    if ((s = lb_qopt_choice(q, "percentile", "exact mean", &pm)) || (s = lb_qopt_choice(q, "scale", "meanabs one learned", &sm)) ||
        (s = lb_qopt_num(q, "every", 1, 1, 1e9, &every)))
        return s;
    bal_state *st = calloc(1, sizeof *st);
    if (!st) return lb_fail(LB_ERR_NOMEM, "out of memory");
    q->state = st;
    st->mean_mode = pm;
    st->scale_mode = sm;
    st->every = (int)every;
    st->fitted_step = -1;
    st->edges = calloc((size_t)(1 << q->bits), sizeof(float));
    if (!pm && q->n >= (int64_t)UINT32_MAX) return lb_fail(LB_ERR_INVALID, "balanced: a tensor of %lld elements is too large for exact percentiles (use percentile=mean)", (long long)q->n);
    st->tmp = pm ? NULL : malloc(sizeof(float) * (size_t)q->n);
    st->hist = pm ? NULL : malloc(sizeof(uint32_t) << 16);
    st->node = pm ? malloc((size_t)q->n) : NULL;
    if (!st->edges || (!pm && (!st->tmp || !st->hist)) || (pm && !st->node)) return lb_fail(LB_ERR_NOMEM, "out of memory");
    if (sm == SCALE_LEARNED) {
        q->nlearn = 1;
        q->learn_name[0] = "scale";
        q->learn_size[0] = 1;
    }
    return LB_OK;
}

static void bal_release(lb_quant *q) {
    bal_state *st = q->state;
    if (st) { free(st->edges); free(st->tmp); free(st->hist); free(st->node); }
    free(st);
    q->state = NULL;
}

/* Hoare-style quickselect: afterwards a[k] holds the k-th smallest, a[0..k) <= a[k] <=
 * a[k+1..n). Median-of-three pivots; deterministic. */
static void select_kth(float *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        int64_t mid = lo + (hi - lo) / 2;
        float x = a[lo], y = a[mid], z = a[hi];
        float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) { float t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return;
    }
}

/* exact: the recursive percentile partition. Splitting range [lo, hi) of the sorted
 * weights (bins [b0, b0 + nb)) at its median into halves of sizes floor and ceil puts
 * every edge at a rank that depends on n alone, so the partition is K-1 order statistics
 * of the whole tensor (populations equal within one). An empty range (n < K) sets no
 * rank (-1): its edge keeps its value. */
static void edge_ranks(int64_t lo, int64_t hi, int b0, int nb, int64_t *rank) {
    if (nb == 1) return;
    int64_t mid = lo + (hi - lo) / 2;
    rank[b0 + nb / 2 - 1] = hi > lo ? mid : -1;
    edge_ranks(lo, mid, b0, nb / 2, rank);
    edge_ranks(mid, hi, b0 + nb / 2, nb / 2, rank);
}

#define fkey lb_fkey /* lb_internal.h: order-preserving float keys */

/* The K-1 order statistics in two passes (radix select): a histogram of the top 16 key
 * bits finds the bucket holding each rank, the elements of those buckets (a small part
 * of the tensor: a bucket spans a factor 1 + 2^-7 of magnitude) are gathered into tmp,
 * and each rank is selected within its bucket. The values are the same as a full
 * recursive quickselect's; the cost is two streaming passes instead of b passes of
 * selection, which made balanced QAT of the 3-million-weight LM decoder twice as slow
 * as uniform. */
static void split_exact(const float *x, int64_t n, int bits, float *edges, float *tmp, uint32_t *hist) {
    enum { NB = 1 << 16 };
    const int K = 1 << bits;
    int64_t rank[255], start[255], len[255];
    int32_t bucket[255], slot[255];
    int nslot = 0;
    edge_ranks(0, n, 0, K, rank);
    memset(hist, 0, sizeof(uint32_t) * NB);
    for (int64_t i = 0; i < n; i++) hist[fkey(x[i]) >> 16]++;
    /* one walk of the cumulative histogram (ranks grow with the edge index): each rank's
     * bucket, its rank within the bucket, and the buckets' runs in tmp */
    int64_t cum = 0, off = 0;
    int b = 0;
    for (int j = 0; j < K - 1; j++) {
        if (rank[j] < 0) continue;
        while (cum + hist[b] <= rank[j]) cum += hist[b++];
        if (!nslot || bucket[nslot - 1] != b) {
            bucket[nslot] = b;
            start[nslot] = off;
            len[nslot] = hist[b];
            off += hist[b];
            nslot++;
        }
        slot[j] = nslot - 1;
        rank[j] -= cum;
    }
    /* hist becomes each needed bucket's write position in tmp, UINT32_MAX elsewhere
     * (tensors hold fewer than 2^32 - 1 elements: checked in bal_setup) */
    for (int i = 0; i < NB; i++) hist[i] = UINT32_MAX;
    for (int s = 0; s < nslot; s++) hist[bucket[s]] = (uint32_t)start[s];
    for (int64_t i = 0; i < n; i++) {
        uint32_t *o = &hist[fkey(x[i]) >> 16];
        if (*o != UINT32_MAX) tmp[(*o)++] = x[i];
    }
    /* selecting again in a bucket reorders it but keeps its elements: later ranks in the
     * same bucket are still right */
    for (int j = 0; j < K - 1; j++) {
        if (rank[j] < 0) continue;
        float *a = tmp + start[slot[j]];
        select_kth(a, len[slot[j]], rank[j]);
        edges[j] = a[rank[j]];
    }
}

/* mean: level by level, each element's node from the edges so far; the next edge of a
 * node is the mean of its elements. One pass a level: node[i] (a byte: at most 2^7 nodes
 * for 8 bits) carries each element's node down from the level before, and the sums go to
 * four interleaved accumulators, added in a fixed order, so that consecutive elements in
 * one node do not wait on each other's additions. */
static void split_mean(const float *x, int64_t n, int bits, float *edges, uint8_t *node) {
    const int K = 1 << bits;
    enum { LANES = 4 };
    double sum[LANES][128];
    int64_t cnt[LANES][128];
    memset(node, 0, (size_t)n);
    for (int level = 0; level < bits; level++) {
        const int nodes = 1 << level, span = K >> level; /* bins per node at this level */
        const int sp = 2 * span;                        /* bins per node at the level before */
        memset(sum, 0, sizeof sum);
        memset(cnt, 0, sizeof cnt);
        for (int64_t i = 0; i < n; i++) {
            int nd = node[i];
            if (level) { /* the node covers bins [nd*sp, nd*sp + sp) at the level before */
                nd = 2 * nd + (x[i] >= edges[nd * sp + sp / 2 - 1]);
                node[i] = (uint8_t)nd;
            }
            sum[i & (LANES - 1)][nd] += x[i];
            cnt[i & (LANES - 1)][nd]++;
        }
        for (int nd = 0; nd < nodes; nd++) {
            for (int l = 1; l < LANES; l++) sum[0][nd] += sum[l][nd], cnt[0][nd] += cnt[l][nd];
        }
        for (int nd = 0; nd < nodes; nd++) {
            const double snd = sum[0][nd];
            const int64_t cn = cnt[0][nd];
            float e = cn ? (float)(snd / (double)cn) : 0.0f;
            /* an empty node keeps the ordering of the edges around it */
            if (!cn) e = nd * span > 0 ? edges[nd * span - 1] : -INFINITY;
            edges[nd * span + span / 2 - 1] = e;
        }
    }
}

/* edges of the bins for the current latent weights */
static void bal_edges(lb_quant *q, const float *x) {
    bal_state *st = q->state;
    if (st->mean_mode) split_mean(x, q->n, q->bits, st->edges, st->node);
    else {
        split_exact(x, q->n, q->bits, st->edges, st->tmp, st->hist);
    }
}

/* codes of every weight under the current edges */
static void bal_codes(const lb_quant *q, int32_t *codes, const float *x) {
    const bal_state *st = q->state;
    const int K = 1 << q->bits;
    if (K <= 16) {
        /* the edges are sorted, so counting those <= x is lbr_step_code's binary search,
         * in a form that vectorises */
        float e[15];
        for (int j = 0; j < K - 1; j++) e[j] = st->edges[j];
        #pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < q->n; i++) {
            int32_t c = 0;
            for (int j = 0; j < K - 1; j++) c += e[j] <= x[i];
            codes[i] = c;
        }
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < q->n; i++) codes[i] = lbr_step_code(x[i], st->edges, K - 1);
}

/* meanabs scale from the codes: s = mean|W| / mean over elements of |2j - (K-1)| / (K-1) */
static void bal_scale_fit(lb_quant *q, const int32_t *codes, const float *x) {
    bal_state *st = q->state;
    const int K = 1 << q->bits;
    if (st->scale_mode == SCALE_ONE) { st->s = 1.0f; return; }
    int64_t hist[256] = {0};
    for (int64_t i = 0; i < q->n; i++) hist[codes[i]]++;
    double lv = 0;
    for (int j = 0; j < K; j++) lv += (double)hist[j] * fabs((double)(2 * j - (K - 1))) / (double)(K - 1);
    double m = lb_q_meanabs(x, q->n);
    st->s = lv > 0 && m > 0 ? (float)(m * (double)q->n / lv) : 1.0f;
}

static void bal_init(lb_quant *q, const float *x, int64_t n) {
    bal_state *st = q->state;
    if (st->scale_mode == SCALE_LEARNED) {
        int32_t *codes = malloc(sizeof(int32_t) * (size_t)n);
        if (codes) {
            bal_edges(q, x);
            bal_codes(q, codes, x);
            bal_scale_fit(q, codes, x);
            free(codes);
        }
        q->learn[0][0] = codes ? st->s : (float)lb_q_meanabs(x, n);
    }
    q->initialized = 1;
}

static void bal_encode(const lb_quant *q, int32_t *codes, const float *x, int64_t n) {
    (void)n;
    bal_edges((lb_quant *)q, x);
    bal_codes(q, codes, x);
}

static void bal_forward(lb_quant *q, float *y, const float *x, int64_t n, int training) {
    bal_state *st = q->state;
    if (q->mode == LB_QMODE_FLOAT) { lb_q_ste(y, x, n, 0); return; }
    /* every=N: in training, new edges only every N steps; evaluation always refits */
    int refit = !training || st->fitted_step < 0 || q->step - st->fitted_step >= st->every || q->step < st->fitted_step;
    if (refit) {
        bal_edges(q, x);
        st->fitted_step = training ? q->step : -1;
    }
    /* codes go through y's storage as int32 (same size), then decode in place */
    int32_t *codes = (int32_t *)(void *)y;
    bal_codes(q, codes, x);
    if (refit) bal_scale_fit(q, codes, x);
    const int K = 1 << q->bits;
    const float s = st->scale_mode == SCALE_LEARNED ? q->learn[0][0] : st->s;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = lbr_affine_value(codes[i], K, s);
}

static void bal_backward(lb_quant *q, float *dx, const float *dy, const float *x, int64_t n, int acc) {
    const bal_state *st = q->state;
    lb_q_ste(dx, dy, n, acc);
    if (st->scale_mode != SCALE_LEARNED) return;
    /* dQ/ds = (2j - (K-1)) / (K-1) for the element's bin j */
    const int K = 1 << q->bits;
    double g = 0;
    for (int64_t i = 0; i < n; i++)
        g += (double)dy[i] * (double)(2 * lbr_step_code(x[i], st->edges, K - 1) - (K - 1)) / (double)(K - 1);
    q->glearn[0][0] = (float)g;
}

static const lb_qops bal_w = {bal_setup, NULL, bal_init, bal_forward, bal_backward, NULL, bal_encode, bal_release};

const lb_qmethod lb_qm_balanced = {"balanced", "equal-population bins by recursive percentiles, then uniform levels",
                                   "percentile scale every", 1, 8, 1, 16, &bal_w, &lb_qops_act_uniform, "sgd lr=0.005"};
