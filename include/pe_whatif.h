/* pe_whatif.h: positional what-ifs, the --pe SPEC (man petools-whatif(7)):
 * the papers' remedies as changes to the rotation of q and k.
 *
 * A spec is parsed once (pe_whatif_parse: usage errors), its masks read
 * once (pe_whatif_load: data errors), then resolved into a pe_rotation per
 * layer and head (pe_whatif_resolve): the frequencies theta_i, the pairs
 * whose rotation Gaussian draws replace, and the logit factor of the query.
 * pe_rotation_apply rotates a head's vectors with it; the run engine
 * (pe_run.h) does so in its door, so that every table sees the spec.
 *
 * Ownership: a pe_whatif owns its steps and masks (pe_whatif_free); a
 * pe_rotation its arrays (pe_rotation_free).  Everything else is borrowed.
 */
#ifndef PE_WHATIF_H
#define PE_WHATIF_H

#include <stddef.h>
#include <stdint.h>

#include "pe_common.h"
#include "pe_dump.h"
#include "pe_mask.h"
#include "pe_rope.h"

#define PE_WHATIF_FORMS                                                                                       \
    "rope, pi:S, ntk:S, dynamic:S[:T], yarn:S[:BETA_FAST:BETA_SLOW], llama3:S:LOW:HIGH:OLDLEN, prope:P, clip, " \
    "logn, dope:MASK[:parts|all|gauss], joined with +"

typedef enum {
    PE_STEP_ROPE = 0,
    PE_STEP_SCALE, /* pi, ntk, dynamic, yarn, llama3 (pe_scaling) */
    PE_STEP_PROPE,
    PE_STEP_CLIP,
    PE_STEP_LOGN,
    PE_STEP_DOPE
} pe_step_kind;

typedef enum { PE_DOPE_PARTS = 0, PE_DOPE_ALL, PE_DOPE_GAUSS } pe_dope_mode;

typedef struct pe_whatif_step {
    pe_step_kind kind;
    pe_scaling scale;  /* SCALE */
    int dynamic_auto;  /* dynamic:S without T: T = the file's last position + 1 */
    double fraction;   /* PROPE: P */
    char *mask_path;   /* DOPE */
    pe_dope_mode mode; /* DOPE */
    pe_mask *mask;     /* DOPE, after pe_whatif_load */
} pe_whatif_step;

typedef struct pe_whatif {
    char *text; /* the spec as given */
    const char *opt; /* the option that gave it ("--pe"), for messages (owned: a copy) */
    pe_whatif_step *steps;
    int n;
} pe_whatif;

/* Parses SPEC; opt names the option in messages ("--pe").  Usage errors
 * list the accepted forms.  Returns 0 or -1. */
int pe_whatif_parse(const char *opt, const char *spec, pe_whatif **out, pe_err *e);
void pe_whatif_free(pe_whatif *w);

/* 1 when every step is rope: the dump's own rotation. */
int pe_whatif_is_rope(const pe_whatif *w);
/* The first step that needs the training length L ("clip"), or NULL. */
const char *pe_whatif_needs_L(const pe_whatif *w);
/* 1 when the rotation depends on the head (dope). */
int pe_whatif_per_head(const pe_whatif *w);
/* 1 when some step has the form f (pe_step_kind). */
int pe_whatif_has(const pe_whatif *w, pe_step_kind k);

/* Reads the masks of the dope steps.  Returns 0 or -1 (data error). */
int pe_whatif_load(pe_whatif *w, pe_err *e);
/* Whether the masks fit the dump of shape m (named `file`).  0 or -1. */
int pe_whatif_fits(const pe_whatif *w, const pe_meta *m, const char *file, pe_err *e);

/* The rotation of one head in one layer under a spec. */
typedef struct pe_rotation {
    int n_pairs;
    double *theta;        /* n_pairs frequencies (0 on gauss pairs) */
    unsigned char *gauss; /* n_pairs: 1 where g(p, i) replaces exp(j p theta_i) */
    int n_gauss;
    double factor;        /* constant logit factor of the query's rotary dims (yarn) */
    long logn_len;        /* > 0: the query at position p also gets max(1, ln(p+1) / ln L)^logn_pow */
    int logn_pow;
} pe_rotation;

int pe_rotation_init(pe_rotation *rot, int n_pairs, pe_err *e);
void pe_rotation_free(pe_rotation *rot);

/* Resolves w for layer slot `slot` of m, tensor tn (Q: the query head
 * `head` and, for its logits, its key; K: the key head `head` alone) with
 * the training length L (0: unknown).  Returns 0 or -1. */
int pe_whatif_resolve(const pe_whatif *w, const pe_meta *m, int slot, pe_tensor tn, int head, long L,
                      pe_rotation *rot, pe_err *e);

/* 1 when rot is the identity apart from frequencies (no gauss pair, factor
 * 1, no logn): plain RoPE with rot->theta. */
int pe_rotation_is_plain(const pe_rotation *rot);

/* The logit factor of the query at position p on the rotary dims (yarn's
 * constant times log-n's), and log-n's alone (every dim: the pass-through
 * dims get only this one). */
double pe_rotation_factor(const pe_rotation *rot, int64_t p);
double pe_rotation_logn(const pe_rotation *rot, int64_t p);

/* g(p, i) of a model with n_pairs pairs (man petools-whatif(7), THE
 * GAUSSIAN DRAWS). */
void pe_whatif_gauss(int64_t p, int i, int n_pairs, double *c, double *s);

/* Rotates T vectors x (T x D, row-major) at positions pos with rot:
 * frequency pairs by exp(j p theta_i) (skipped when !phase: the caller
 * applies the distance phase itself, as pedecomp does), gauss pairs by
 * g(p, i), and, when query, the rotary dims by pe_rotation_factor and the
 * pass-through dims by pe_rotation_logn at p.  g holds the layout (its
 * theta is ignored). */
void pe_rotation_apply(const pe_rotation *rot, double *x, size_t T, const pe_geom *g, const int64_t *pos, int query,
                       int phase);

#endif
