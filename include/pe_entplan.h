/* pe_entplan.h: what a peentropy run computes for each head, and where the
 * numbers go (man peentropy(1), The matrix and its entropy; Several files;
 * TABLES, heads and bands).
 *
 * A plan names the stages (pre, post, ntk), the preparation, the rank and
 * whether the band view is kept.  For each head of each file it takes the
 * vectors through every stage's rotation and pe_entropy_head; per stage the
 * numbers are PE_ENT_NSCORES scores, then, with the band view, n_pairs times
 * PE_BAND_NVALUES (the layout of a task's result).  The ntk stage turns with
 * each file's dynamic-NTK frequencies, which the plan computes and keeps.
 * The plan also writes a head's rows of the heads and bands tables.
 *
 * Ownership: the plan owns its rotor cache, its frequencies and a scratch
 * space per thread (pe_entplan_free); everything passed in is borrowed.
 * pe_entplan_head may run on several threads at once, each with its own
 * thread number.
 */
#ifndef PE_ENTPLAN_H
#define PE_ENTPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "pe_common.h"
#include "pe_dump.h"
#include "pe_entropy.h"
#include "pe_pool.h"
#include "pe_table.h"
#include "pe_whatif.h"

/* For pe_entplan_init: every stage (pre, post, and ntk with with_ntk). */
enum { PE_STAGE_ALL = 3 };

typedef struct pe_entplan {
    int D, P;           /* head_dim and the number of pairs */
    int n_stages;
    pe_stage stages[3];
    pe_prep prep;
    int r;              /* the truncation rank, clamped to head_dim */
    int bands;          /* keep the band view */
    size_t per_stage;   /* numbers per stage of a head */
    double **ntk_theta; /* per file: the dynamic-NTK frequencies (NULL: none) */
    size_t n_files;
    double ntk_base;    /* the first file's scaled base, for the record */
    pe_rotor_cache *rotors;
    pe_entropy_work *w; /* per thread, made at its first head */
    int threads;
} pe_entplan;

/* stage: a pe_stage, or PE_STAGE_ALL; rank >= 1 (clamped to D); P the
 * number of pairs; threads the number of threads that run heads.  p must be
 * zeroed.  Returns 0, or -1 when out of memory. */
int pe_entplan_init(pe_entplan *p, int stage, int with_ntk, pe_prep prep, long rank, int D, int P, int bands,
                    int threads, pe_err *e);

/* The ntk stage's frequencies of each of the n dumps: dynamic NTK with
 * factor S at length len from training length L (> 0), rebuilt from the
 * file's rope_theta and rotary_dim.  Errors name the file: "PATH: --stage
 * ntk: ...", of the kind pe_scaling_apply gave.  Returns 0 or -1. */
int pe_entplan_ntk(pe_entplan *p, pe_dump *const *dumps, size_t n, long L, long len, double factor, pe_err *e);

/* The stages' names separated by spaces ("pre post ntk") into buf. */
void pe_entplan_stage_list(const pe_entplan *p, char *buf, size_t n);

/* Every stage of one head of file f, on thread wid (0 .. threads - 1):
 * x (T x g->head_dim, the vectors as read; the last stage consumes them),
 * y scratch of the same size (used with more than one stage), spec the
 * rotation of the post stage (its frequencies; gauss pairs or a logit
 * factor rotate here, not by a rotor of frequencies, man
 * petools-whatif(7)).  A layer without rotary embedding (rope 0) keeps the
 * spec's frequencies at the ntk stage too.  Stage si's numbers go to
 * out + si * per_stage.  Errors: "WHO: stage S: " and those of
 * pe_entropy_head; those of the rotor cache and out of memory as they
 * are. */
int pe_entplan_head(pe_entplan *p, int wid, size_t f, double *x, double *y, size_t T, const pe_geom *g,
                    const int64_t *pos, const pe_rotation *spec, int query, int rope, pe_pool *pool, double *out,
                    const char *who, pe_err *e);

/* The rows of one head at stage si (man peentropy(1), TABLES): layer,
 * head, kv_head, tensor (a pe_tensor) and stage, then in the heads table
 * the preparation, r and the scores; in the bands table one row per pair
 * with its frequency theta[i], its class against the training length L and
 * its band view, then a break.  v: the head's numbers at that stage. */
void pe_entplan_rows(const pe_entplan *p, pe_table *tb, int si, long layer, int head, int kv_head, int tensor,
                     const double *theta, long L, const double *v);

void pe_entplan_free(pe_entplan *p);

#endif
