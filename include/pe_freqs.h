/* pe_freqs.h: the rope-scaling what-if of pedecomp's freqs table (man
 * pedecomp(1), TABLES, freqs): the frequencies a --pe spec gives a model,
 * computed from its frequencies alone, with or without an input file, and
 * before any row is written, so that a scaling the rotary dims do not allow
 * is an error rather than half a table.
 *
 * Ownership: everything is borrowed; results go into the caller's arrays.
 */
#ifndef PE_FREQS_H
#define PE_FREQS_H

#include "pe_common.h"
#include "pe_dump.h"
#include "pe_rope.h"
#include "pe_whatif.h"

/* The model the freqs table describes. */
typedef struct pe_freqs_model {
    const double *theta; /* rotary_dim / 2 frequencies */
    int rotary_dim;
    double base;         /* rope_theta */
    long train_len;      /* L > 0 */
    const pe_meta *file; /* the input file (its T and positions), NULL without one */
    const char *path;    /* its name, for messages */
} pe_freqs_model;

/* Resolves w (not per head: pe_whatif_per_head) on a one-layer model of
 * these frequencies: writes them into scaled[rotary_dim / 2], and into *info
 * what the spec's last scaling step did ({base, 1, 0, ..., L} when it has
 * none).  dynamic:S takes the length of the file; without one it needs
 * dynamic:S:T (a usage error).  Messages start "OPT 'SPEC': " and name the
 * file the rotary layout came from.  Returns 0 or -1. */
int pe_freqs_whatif(const pe_freqs_model *fm, const pe_whatif *w, const char *opt, double *scaled,
                    pe_scale_info *info, pe_err *e);

#endif
