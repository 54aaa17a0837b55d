/* pe_entropy.h: DoPE's truncated matrix entropy (man peentropy(1)).
 *
 * Pure computation on in-memory arrays: the stage's rotation of a head's
 * T x D matrix X, the preparation, the Gram matrix G = X^T X (BLAS dsyrk, in
 * double; never a T x T matrix), the eigenvalues of G / trace(G) (LAPACK
 * dsyevd), the scores, the 2 x 2 band view of each RoPE pair, the
 * order-independent mean used to pool files, the ranking of `select` and
 * what each score says about the spectrum.
 * Nothing here reads files, prints or exits.
 *
 * Conventions: as everywhere in petools (pe_common.h), functions that can
 * fail return 0 or -1 and fill a pe_err.  Arrays are borrowed; outputs go
 * into caller-provided arrays.  A pe_rotor is initialised by pe_rotor_init
 * and released with pe_rotor_free.  Everything is reentrant: several threads
 * may work on different heads at once.  The BLAS is called from the calling
 * thread; a tool that runs heads on several threads should keep the BLAS
 * itself single-threaded (openblas_set_num_threads(1)).
 */
#ifndef PE_ENTROPY_H
#define PE_ENTROPY_H

#include <stddef.h>
#include <stdint.h>

#include "pe_common.h"
#include "pe_pool.h"
#include "pe_rope.h"

/* Preparation of X (applied after the stage's rotation). */
typedef enum {
    PE_PREP_PAPER = 0, /* none: the matrix as it is */
    PE_PREP_UNCOMP     /* UNComp: centre each column over tokens, then scale each row to norm 1 */
} pe_prep;

/* Which matrix: the unrotated vectors, the rotated ones, or the ones a
 * dynamic-NTK model would rotate. */
typedef enum { PE_STAGE_PRE = 0, PE_STAGE_POST, PE_STAGE_NTK } pe_stage;

const char *pe_prep_name(pe_prep p);   /* "paper", "uncomp" */
const char *pe_stage_name(pe_stage s); /* "pre", "post", "ntk" */

/* The per-head numbers, in the order of the `heads` table. */
enum {
    PE_ENT_SCORE = 0, /* S_r = -sum_{i<=r} lambda_i ln lambda_i */
    PE_ENT_NORM,      /* S_r / ln D (NaN when D == 1) */
    PE_ENT_RHO,       /* rho_r = exp(-sum_{i<=r} p_i ln p_i), p_i = lambda_i / sum_{j<=r} lambda_j */
    PE_ENT_LAMBDA1,   /* the largest eigenvalue */
    PE_ENT_FULL,      /* S_D */
    PE_ENT_EFF_RANK,  /* exp(S_D) */
    PE_ENT_ENERGY,    /* energy_r = sum_{i<=r} lambda_i: the share of the spectrum in the top r directions */
    PE_ENT_NSCORES
};

/* Per-band numbers of the band view, in the order of the `bands` table. */
enum { PE_BAND_MU1 = 0, PE_BAND_MU2, PE_BAND_ENTROPY, PE_BAND_NVALUES };

/* ---- rotation ---- */

/* The cos/sin table of one stage's rotation for T positions and the pairs of
 * a geometry: the angle of token m and pair i is pos[m] * theta_i, formed
 * exactly as pe_rope_rotate forms it, so that pe_rotor_apply gives the
 * values of pe_rope_rotate(x, T, g, pos, +1) (equal as numbers: a -0 may come
 * out +0) without calling cos and sin for every head. */
typedef struct pe_rotor {
    size_t T;
    const int64_t *pos;   /* borrowed: the positions of the last init */
    pe_geom g;            /* theta points to the rotor's own copy */
    double *theta;        /* n_pairs */
    int *dim_a, *dim_b;   /* n_pairs: the dims of each pair */
    int n_pairs_cap;
    double *cs;           /* per token: n_pairs cosines, then n_pairs sines */
    size_t cs_cap;
    int identity;         /* no pair rotates (R == 0 or every theta_i == 0) */
} pe_rotor;

/* r must be zeroed before its first init.  A rotor initialised before keeps
 * its storage, and its table when g (theta compared by value), pos (the same
 * array) and T are those of the last init: layers that share their
 * frequencies share the work.  g->theta may be freed after the call; pos
 * must live as long as the rotor is used.  The table is filled on the
 * pool's threads (NULL: this one; the same numbers either way).  Returns 0
 * or -1 (out of memory, after which the rotor is empty). */
int pe_rotor_init(pe_rotor *r, const pe_geom *g, const int64_t *pos, size_t T, pe_pool *pool, pe_err *e);
/* Rotates x (T x D, row-major, in place) by +pos[m] * theta_i. */
void pe_rotor_apply(const pe_rotor *r, double *x);
void pe_rotor_free(pe_rotor *r);

/* Rotors shared by the heads of every layer with the same frequencies and
 * positions, on any thread: pe_rotor_cache_get returns the rotor of (g,
 * pos, T), made by the first caller that asks (the others wait for it),
 * which the caller holds until pe_rotor_cache_put; a rotor nobody holds is
 * remade for other frequencies.  NULL with e filled when it cannot be
 * made.  The cache owns its rotors (pe_rotor_cache_free). */
typedef struct pe_rotor_cache pe_rotor_cache;
pe_rotor_cache *pe_rotor_cache_new(pe_err *e);
void pe_rotor_cache_free(pe_rotor_cache *c);
const pe_rotor *pe_rotor_cache_get(pe_rotor_cache *c, const pe_geom *g, const int64_t *pos, size_t T, pe_pool *pool,
                                   pe_err *e);
void pe_rotor_cache_put(pe_rotor_cache *c, const pe_rotor *r);

/* ---- the steps ---- */

/* Applies the preparation to x (T x D, row-major) in place.  uncomp: a row
 * whose norm after centring is at most 1e-12 times the largest row norm
 * before centring (T == 1, or a token equal to the mean) is an error
 * "token M: ..."; *bad_token (may be NULL) is then set to M. */
int pe_entropy_prepare(double *x, size_t T, int D, pe_prep prep, size_t *bad_token, pe_err *e);

/* G = X^T X (D x D, row-major; both triangles filled) with cblas_dsyrk. */
void pe_entropy_gram(const double *x, size_t T, int D, double *G);

/* The eigenvalues of G / trace(G), descending, round-off negatives set to 0,
 * into lambda[D].  work holds D * D doubles (G is not modified).  When the
 * trace is 0 (an all-zero head) every lambda is NaN.  Returns 0, or -1 when
 * LAPACK fails. */
int pe_entropy_spectrum(const double *G, int D, double *lambda, double *work, pe_err *e);

/* Sorts lambda[D] descending and sets negatives to 0 (NaN stays NaN). */
void pe_entropy_sort_clamp(double *lambda, int D);

/* The scores of a spectrum (as above: descending, sum 1) at rank r
 * (r > D means D, r < 1 means 1) into s[PE_ENT_NSCORES]; 0 ln 0 = 0.  NaN
 * when the spectrum is NaN. */
void pe_entropy_scores(const double *lambda, int D, int r, double *s);

/* The band view of a pair from its 2 x 2 Gram [[a, b], [b, c]]:
 * mu = 1/2 +- sqrt(((a - c)/2)^2 + b^2) / (a + c), mu1 >= mu2 >= 0, and the
 * entropy -mu1 ln mu1 - mu2 ln mu2 in [0, ln 2], into v[PE_BAND_NVALUES].
 * NaN when a + c == 0. */
void pe_entropy_band(double a, double b, double c, double *v);

/* ---- one head, one stage ---- */

/* Scratch space for pe_entropy_head, sized for D. */
typedef struct pe_entropy_work {
    int D;
    double *G, *eig, *lambda; /* D*D, D*D, D */
} pe_entropy_work;

int pe_entropy_work_init(pe_entropy_work *w, int D, pe_err *e);
void pe_entropy_work_free(pe_entropy_work *w);

/* Everything of one head at one stage: rotates x (T x g->head_dim, in place)
 * with rot (NULL: no rotation), prepares it, and writes the scores at rank r
 * into scores[PE_ENT_NSCORES] and, when bands is not NULL, the band view of
 * every pair i of g into bands[i * PE_BAND_NVALUES ...].  Errors: those of
 * pe_entropy_prepare and pe_entropy_spectrum. */
int pe_entropy_head(double *x, size_t T, const pe_geom *g, const pe_rotor *rot, pe_prep prep, int r,
                    double *scores, double *bands, pe_entropy_work *w, size_t *bad_token, pe_err *e);

/* ---- pooling and selection ---- */

/* The mean of v[0..n-1], summed in ascending order of value (v is sorted in
 * place), so that the result does not depend on the order of the files the
 * values came from.  NaN when any value is NaN or n == 0. */
double pe_entropy_pool_mean(double *v, size_t n);

/* The pooled numbers of a head over nf files: out[j] = pe_entropy_pool_mean
 * of v[f * stride + j] over the files f, for j < stride (tmp: nf doubles).
 * man peentropy(1), Several files. */
void pe_entropy_pool_files(const double *v, size_t nf, size_t stride, double *tmp, double *out);

/* ---- what the scores say (man peentropy(1), The directions) ---- */

/* The formula name of per-head number k (PE_ENT_*): "S_r", "rho_r", ... */
const char *pe_entropy_score_label(int k);
/* Which way number k runs with the spikiness of the spectrum. */
const char *pe_entropy_score_direction(int k);
/* The sentence `select` states about its ranking by number k (desc:
 * highest first), given the largest lambda_1 of the ranked heads: for S_r
 * and S_r / ln D, whether these heads are ordered by spikiness at all. */
void pe_entropy_select_direction(int k, int desc, double lambda1_max, char *buf, size_t n);

/* A candidate of `select`. */
typedef struct pe_entropy_cand {
    long layer;
    int head;   /* query head, or key head for unbroadcast keys */
    int tensor; /* 0 q, 1 k (a pe_tensor) */
    double score;
} pe_entropy_cand;

/* Ranks the candidates by score (ascending, or descending when desc), ties
 * broken by layer, then head, then tensor (q before k); candidates whose
 * score is NaN are left out.  Writes the indices of at most n_top of them,
 * best first, into order (room for n) and their number into *n_out.
 * Returns 0, or -1 when out of memory. */
int pe_entropy_rank(const pe_entropy_cand *c, size_t n, int desc, size_t n_top, size_t *order,
                    size_t *n_out, pe_err *e);

#endif
