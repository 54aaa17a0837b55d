/* pe_attn.h: attention patterns against distance (man peanalyze(1),
 * What is measured): the causal softmax of every evaluated query row of a head, reduced
 * to per-distance sums (logits, probabilities, the last row) and per-row
 * statistics (sink mass, normalised entropy, logit exceedance beyond the
 * training length), without ever holding the T x T matrix.
 *
 * Pure computation on in-memory arrays: no files, no printing.  The query
 * and key vectors given here are ROTATED (pe_rope_rotate with +1), T x D
 * doubles, row-major.
 *
 * How a head is computed: the evaluated query rows are taken in blocks; the
 * logits of a block against keys [0, its last row] come from cblas_dgemm
 * (double, the scale passed as alpha: logit = s * (q . k) as the GEMM
 * rounds it), called only on tiles of one fixed shape (PE_ATTN_TILE_M rows x
 * PE_ATTN_TILE_N keys, zero-padded), because OpenBLAS's edge kernels round
 * differently from its full tiles and the bits of a logit would otherwise
 * depend on the block size.  Then each row, in increasing order, takes one
 * pass for the softcap and the max (and the logit sums), one for the
 * exponentials and their sums, one to add the probabilities.  Every sum is
 * a double added in a fixed order (the rows' order), so the accumulators
 * are byte-identical for any block size.  Memory: the block buffer,
 * ceil(block / TILE_M) * TILE_M x ceil(T / TILE_N) * TILE_N doubles, and
 * 8 arrays of n_dist doubles.
 *
 * In-train rows (p_m < L) must all be added before any beyond row
 * (p_m >= L) of any pooled sequence, since the exceedance of a beyond row's
 * logits is measured against the range of every in-train row: add the IN
 * phase of every sequence, then the BEYOND phase (a single sequence may be
 * added in one ALL call, whose rows come in that order anyway).
 *
 * Ownership: a pe_attn_acc owns its arrays (pe_attn_init / pe_attn_free), a
 * pe_attn_work its buffers (pe_attn_work_new / pe_attn_work_free);
 * everything else is borrowed.  Functions on different accumulators may run
 * on different threads at once (the caller limits OpenBLAS to one thread:
 * openblas_set_num_threads(1)).
 */
#ifndef PE_ATTN_H
#define PE_ATTN_H

#include <stddef.h>
#include <stdint.h>

#include "pe_common.h"

/* The fixed GEMM tile: query rows x keys.  Multiples of every OpenBLAS
 * micro-kernel's unroll, so that no edge kernel ever runs. */
#define PE_ATTN_TILE_M 32
#define PE_ATTN_TILE_N 256
/* The default block buffer size aimed at (bytes). */
#define PE_ATTN_BLOCK_BYTES (16u << 20)

/* Defaults of the thresholds (man peanalyze(1), OPTIONS). */
#define PE_ATTN_MARGIN 0.05
#define PE_ATTN_EXCEED_THRESHOLD 0.01
#define PE_ATTN_UNSEEN_THRESHOLD 0.05

typedef struct pe_attn_params {
    double scale;       /* attn_scale s */
    double softcap;     /* > 0: logits become cap * tanh(logit / cap); 0 = none */
    long train_len;     /* L; <= 0 = unknown: every row counts as in-train */
    size_t sink_tokens; /* S: a row's sink mass is its probability on keys n < S */
    double margin;      /* exceedance band: [lo - margin W, hi + margin W] */
    size_t block;       /* query rows per block; 0 = pe_attn_default_block(T) */
} pe_attn_params;

/* Per-row diagnostics of one sequence (the calibration of peanalyze -t
 * loss): arrays of T doubles the caller owns, written at the evaluated rows
 * only.  unseen: attention on keys at distance >= L that are not sinks
 * (n >= S); entropy: -sum p ln p in nats; sink: attention on keys n < S;
 * exceed: the share of the row's logits outside the in-train band (beyond
 * rows only; NaN in-train or while no in-train range is known). */
typedef struct pe_attn_rows {
    double *unseen, *entropy, *sink, *exceed;
} pe_attn_rows;

/* One head of one sequence. */
typedef struct pe_attn_seq {
    size_t T;
    int D;
    const double *q;    /* T x D, rotated */
    const double *k;    /* T x D, rotated (the query head's key head) */
    const int64_t *pos; /* T positions, strictly increasing */
    const size_t *rows; /* evaluated query rows (token indices), strictly
                           increasing, < T; NULL = every row */
    size_t n_rows;      /* ignored when rows is NULL */
    pe_attn_rows *out;  /* per-row diagnostics, or NULL */
} pe_attn_seq;

typedef enum {
    PE_ATTN_ALL = 0, /* every evaluated row, in order */
    PE_ATTN_IN,      /* only rows with p_m < L */
    PE_ATTN_BEYOND   /* only rows with p_m >= L (nothing when L is unknown) */
} pe_attn_phase;

/* Sums pooled over sequences.  Per distance delta = p_m - p_n (n <= m):
 * all evaluated rows, and the in-train rows alone. */
typedef struct pe_attn_acc {
    size_t n_dist;      /* distances 0 .. n_dist - 1 */
    double *logit;      /* sum of (capped) logits, every evaluated row */
    double *count;      /* pairs, every evaluated row */
    double *logit_in;   /* the same over in-train rows */
    double *count_in;
    double *prob;       /* sum of p(m, n) */
    double *prob_u;     /* sum of (m + 1) p(m, n): 1 = uniform attention */
    double *last;       /* sum over sequences of p(T-1, n) of their last row,
                           when that row is evaluated */
    double *last_count; /* how many sequences gave last[delta] */
    /* The same sums over the pairs whose key is a sink token (n < S), so
     * that the U-score can leave them out (man peanalyze(1), CHOICES). */
    double *sink_logit, *sink_count, *sink_logit_in, *sink_count_in;
    /* Per row, split at L. */
    double rows_in, rows_beyond;
    double sink_in, sink_beyond;         /* sums of sink mass */
    double ent_rows_in, ent_rows_beyond; /* rows with m >= 1 */
    double ent_in, ent_beyond;           /* sums of normalised entropy */
    double nats_in, nats_beyond;         /* sums of entropy in nats (rows m >= 1) */
    double unseen_beyond;                /* sum of unseen-distance mass, beyond rows */
    double lo, hi;       /* min, max logit over in-train rows' pairs (+inf, -inf: none yet) */
    double pairs_beyond; /* pairs of beyond rows */
    double exceed;       /* of them, outside the band (counted only when lo <= hi) */
    /* lo and hi may be set between the IN and the BEYOND phase, to measure
     * the exceedance against another in-train range (a what-if against the
     * model's own, peanalyze -t whatif). */
} pe_attn_acc;

/* Zeroed accumulators for distances 0 .. n_dist - 1. */
int pe_attn_init(pe_attn_acc *a, size_t n_dist, pe_err *e);
void pe_attn_free(pe_attn_acc *a);

/* The default block: as many rows as fit PE_ATTN_BLOCK_BYTES with T keys,
 * rounded down to a multiple of PE_ATTN_TILE_M (at least one tile), and no
 * more rows than T has (rounded up to a tile). */
size_t pe_attn_default_block(size_t T);
/* Bytes of the block buffer for T keys and `block` rows. */
double pe_attn_block_bytes(size_t T, size_t block);

/* The --rows rule: n evenly spaced rows of T, m_i = floor(i (T-1) / (n-1)),
 * i = 0 .. n-1 (n == 1: the last row).  Writes min(n, T) rows into rows
 * (all rows when n >= T) and returns how many. */
size_t pe_attn_even_rows(size_t T, size_t n, size_t *rows);

/* Working buffers (the block of logits, the GEMM tiles), kept from call to
 * call so that a thread reuses them from head to head (see pe_pool_worker)
 * instead of allocating and page-faulting them anew; they grow to the
 * largest call.  One work per thread.  Where a function takes a work, NULL
 * means: allocate for this call alone. */
typedef struct pe_attn_work pe_attn_work;
pe_attn_work *pe_attn_work_new(pe_err *e);
void pe_attn_work_free(pe_attn_work *w);

/* Adds the rows of `phase` of one sequence.  A distance >= a->n_dist is an
 * error.  w may be NULL.  Returns 0 or -1. */
int pe_attn_add(pe_attn_acc *a, const pe_attn_seq *s, const pe_attn_params *p, pe_attn_phase phase,
                pe_attn_work *w, pe_err *e);

/* KL(p_a || p_b) in nats between the attention of two versions of a head
 * (the same tokens and rows, other q and k: a what-if against the model's
 * own rotation), added over the rows of `phase` into *sum, with the count
 * of rows into *rows.  wa and wb must be two different works (or NULL).
 * Returns 0 or -1. */
int pe_attn_kl(const pe_attn_seq *a, const pe_attn_seq *b, const pe_attn_params *p, pe_attn_phase phase,
               double *sum, double *rows, pe_attn_work *wa, pe_attn_work *wb, pe_err *e);

/* What the tables print of one head. */
typedef struct pe_attn_stats {
    double rows_in, rows_beyond;
    double sink_in, sink_beyond;       /* means over rows; NaN without rows */
    double entropy_in, entropy_beyond; /* normalised; means over rows m >= 1; NaN without */
    double nats_in, nats_beyond;       /* the same in nats */
    double unseen;                     /* mean unseen-distance mass of the beyond rows */
    double sink_ratio;                 /* sink_beyond / sink_in (NaN when sink_in is 0) */
    double u_in, u_all;                /* U-scores of the mean logit over non-sink keys (NaN: < 3 bins) */
    int near_gt_far_in, near_gt_far_all;
    size_t dmax_in, dmax_all;          /* largest distance with pairs (0 when none) */
    double lo_in, hi_in;               /* NaN without in-train rows */
    double exceedance;                 /* NaN without beyond or in-train rows */
} pe_attn_stats;

void pe_attn_summary(const pe_attn_acc *a, pe_attn_stats *s);

typedef struct pe_attn_thresholds {
    double unseen;  /* default 0.05 */
    double exceed;  /* default 0.01 */
    double entropy; /* < 0: off (the default) */
    double sink;    /* < 0: off (the default) */
} pe_attn_thresholds;

/* The verdict (man peanalyze(1), What is measured): 1 when, over the beyond
 * rows, unseen > unseen or exceedance > exceed; and, when those thresholds
 * are on, |entropy_beyond - entropy_in| > entropy or |sink_beyond -
 * sink_in| > sink.  A NaN term flags nothing, so a head without beyond rows
 * is never flagged. */
int pe_attn_ood(const pe_attn_stats *s, const pe_attn_thresholds *t);

/* The heat map of one head: the probabilities of query rows m0 .. m1-1
 * (token indices, 0 <= m0 < m1 <= T) over keys 0 .. m1-1 cut into ncol
 * columns by the binning rule (pe_bin_range(m1, ncol, c)); a cell is the
 * mean of p over its keys, keys after the row counting as 0.  out holds
 * (m1 - m0) x ncol doubles, row-major; ncol = pe_bin_count(m1, pixels).
 * s->rows is ignored.  w may be NULL.  Returns 0 or -1. */
int pe_attn_heatmap(const pe_attn_seq *s, const pe_attn_params *p, size_t m0, size_t m1, size_t ncol,
                    double *out, pe_attn_work *w, pe_err *e);

#endif
