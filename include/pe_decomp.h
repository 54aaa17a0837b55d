/* pe_decomp.h: the per-component decomposition of the attention logit
 * (man pedecomp(1), The decomposition; TABLES, profile and summary).
 *
 * For one head, c_i(m,n) = s * Re(zq_{m,i} conj(zk_{n,i}) exp(j (p_m - p_n) theta_i))
 * is the contribution of RoPE pair i to the logit of query m and key n.
 * A pe_profile accumulates, per distance delta = p_m - p_n over the causal
 * pairs n <= m, the sum of c_i for every pair, of the pass-through dims and
 * of the whole logit, and the number of pairs, so that several files pool
 * exactly (sum of sums / sum of counts).
 *
 * Pure computation: no files, no printing.  Arrays are borrowed; a
 * pe_profile owns its arrays, and the working buffers of pe_profile_add,
 * which it keeps so that the next head reuses them; all are released with
 * pe_profile_free.  pe_profile_add is safe to call from several threads on
 * different profiles.  The sums are the same bits for any number of
 * threads.
 */
#ifndef PE_DECOMP_H
#define PE_DECOMP_H

#include <stddef.h>
#include <stdint.h>

#include "pe_common.h"
#include "pe_pool.h"
#include "pe_rope.h"
#include "pe_spectrum.h"

typedef enum {
    PE_METHOD_FFT = 0, /* cross-correlations with FFTW, O(T log T) per pair */
    PE_METHOD_DIRECT   /* the O(T^2) sum, kept to check the fast path */
} pe_method;

/* Rows of sum: 0 .. P-1 the pairs, P the pass-through dims, P+1 the total. */
typedef struct pe_profile {
    int n_pairs;     /* P */
    size_t n_dist;   /* distances 0 .. n_dist-1 */
    double *sum;     /* (P + 2) x n_dist, row-major */
    double *count;   /* n_dist: causal pairs at each distance (exact integers) */
    double *mag;     /* P: sum over causal pairs of |zq_m,i| |zk_n,i| (section 3) */
    void *scratch;   /* working buffers kept for the next pe_profile_add */
    pe_pool *pool;   /* threads pe_profile_add may use (over groups of pairs); NULL: this one */
} pe_profile;

#define PE_ROW_PASS(p) ((p)->n_pairs)
#define PE_ROW_TOTAL(p) ((p)->n_pairs + 1)

/* Zeroed accumulators for P pairs and distances 0 .. n_dist-1. */
int pe_profile_init(pe_profile *p, int n_pairs, size_t n_dist, pe_err *e);
void pe_profile_free(pe_profile *p);
/* Zeroes the sums and counts, keeping every buffer for the next head. */
void pe_profile_clear(pe_profile *p);
/* Zeroed for a head of n_pairs pairs over n_dist distances: p's arrays and
 * working buffers are kept when it has that shape (their pages are already
 * there), else it is made anew (pe_profile_init; p zeroed the first time).
 * Returns 0 or -1. */
int pe_profile_reuse(pe_profile *p, int n_pairs, size_t n_dist, pe_err *e);

/* One head of one sequence: query and key vectors BEFORE the rotary
 * embedding, row-major T x D each, positions strictly increasing. */
typedef struct pe_head_input {
    size_t T;
    const double *q;
    const double *k;
    const int64_t *pos;
    double scale;   /* attn_scale */
    int contiguous; /* pos[m] == pos[0] + m for all m */
} pe_head_input;

/* Adds the head's sums into p.  The FFT method needs contiguous positions and
 * silently uses the direct sum otherwise (man pedecomp(1), CHOICES).  Distances
 * at or beyond p->n_dist are an error.  Returns 0 or -1. */
int pe_profile_add(pe_profile *p, const pe_head_input *in, const pe_geom *g, pe_method method,
                   pe_err *e);

/* Bytes at the peak of a profile of n_pairs pairs (and the pass-through
 * dims when pass) over n_dist distances, while pe_profile_add sums heads of
 * T tokens on `threads` threads: the sums and counts, the totals of each
 * unit of 8 pairs, each thread's gather columns and FFT buffers (man
 * pedecomp(1), --max-memory). */
double pe_profile_bytes(int n_pairs, int pass, size_t n_dist, size_t T, int threads);

/* Largest distance the head can produce: pos[T-1] - pos[0]. */
size_t pe_head_max_distance(size_t T, const int64_t *pos);

/* Section 3 per pair, computed from a pooled, unbinned profile. */
typedef struct pe_pair_summary {
    double magnitude_share; /* M_i */
    double lo_in, hi_in;    /* min, max of C_i(delta) over delta < L with pairs */
    double value_ood;       /* E_i over the distances with at least min_pairs pairs */
    size_t ood_distances;   /* how many distances >= L it was taken over */
    double angle_ood;       /* fraction of delta in [L, Dmax] outside the trained arc */
    double du;              /* U(F) - U(F - C_i) on delta < L */
} pe_pair_summary;

/* Fills out[P].  train_len L > 0.  theta: the P frequencies.  min_pairs:
 * the value OOD counts only distances with at least that many pairs. */
int pe_profile_summary(const pe_profile *p, const double *theta, long train_len, double min_pairs,
                       pe_pair_summary *out, pe_err *e);

/* The angle OOD of one pair (data-free): the fraction of integer delta in
 * [L, dmax] whose angle delta*theta mod 2*pi lies outside [0, min(2*pi,
 * (L-1)*theta)]; 0 when dmax < L. */
double pe_angle_ood(double theta, long train_len, size_t dmax);

/* The value OOD of one curve (man pedecomp(1), summary): E = max over
 * delta >= L with at least min_pairs pairs of dist(C(delta), [lo, hi]) / W,
 * W = max(hi - lo, 1e-12 * max(1, |hi|)); 0 when no distance with pairs
 * reaches L, NaN when some do but none has min_pairs pairs (the largest
 * distances have a pair or two, whose key is the first token: a maximum
 * over them measures noise and the sink).  lo and hi as in
 * pe_pair_summary; *n_used (may be NULL) counts the distances taken. */
double pe_value_ood(const double *sum, const double *count, size_t n_dist, long train_len, double min_pairs,
                    double *lo, double *hi, size_t *n_used);

/* ---- what the per-head tables keep of a pooled profile (man pedecomp(1),
 * TABLES, profile and spectrum) ---- */

/* The profile table: the P + 2 rows of p cut into nb bins (nb from
 * pe_bin_count, the rule of pe_bin_range): mean[(P + 2) x nb], row-major,
 * the pair-weighted mean of each row in each bin (NaN without pairs), and
 * npairs[nb] the pairs in each bin.  The rows are spread over pool (NULL:
 * this thread); a full profile is as much work as a head's FFTs.  0 or -1. */
int pe_profile_bin(const pe_profile *p, size_t nb, double *mean, double *npairs, pe_pool *pool, pe_err *e);

/* The spectrum table: each pair's mean curve over the in-train distances
 * 0 .. Dw-1, Dw = min(n_dist, L), through pe_spectrum_purity into pur[P]
 * (theta: the P frequencies).  only >= 0: that pair alone, with its power
 * spectrum into power[pe_spectrum_size(Dw) / 2 + 1].  Returns 0 or -1. */
int pe_profile_purity(const pe_profile *p, const double *theta, long train_len, long only, pe_purity *pur,
                      double *power, pe_err *e);

#endif
