/* pe_attn_walk.h: one query head of a run over every pooled file, in the
 * order the attention tables need (man peanalyze(1), Pooling several
 * files, and CHOICES).
 *
 * The in-train rows of every file come before any beyond row, because the
 * exceedance band of a head is its whole in-train logit range; a file with
 * no row of a phase is skipped in that phase, and read again for the second
 * phase only when another file came between.  The key head of the task is
 * taken through the run's door (pe_run_key) and released once per read.
 *
 * Everything is borrowed from the run; the sequence handed to the visitor
 * lives until it returns.
 */
#ifndef PE_ATTN_WALK_H
#define PE_ATTN_WALK_H

#include "pe_attn.h"
#include "pe_run.h"

/* Called for file f in phase ph with s ready for pe_attn_add (q and k read
 * as asked, the file's positions, its evaluated rows, out NULL: the visitor
 * may set it), and once with s NULL at the start of each phase.  0 or -1. */
typedef int (*pe_attn_visit)(pe_run *r, const pe_task *t, size_t f, pe_attn_phase ph, pe_attn_seq *s, void *ctx,
                             pe_err *e);

/* Walks task t's files: with two_phases 0 one PE_ATTN_ALL visit per file,
 * else PE_ATTN_IN then PE_ATTN_BEYOND.  how: PE_READ_RAW or
 * PE_READ_ROTATED.  rows > 0: that many evenly spaced query rows per file
 * (pe_attn_even_rows; all when T <= rows; rows == 1 also decides a file's
 * phase by its last row).  A visitor's error is prefixed with
 * "FILE: layer L head H: ".  Returns 0 or -1. */
int pe_attn_walk(pe_run *r, const pe_task *t, int how, long rows, int two_phases, pe_attn_visit visit, void *ctx,
                 pe_err *e);

#endif
