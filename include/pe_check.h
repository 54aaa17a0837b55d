/* pe_check.h: a whole qkdump file checked (man pedecomp(1), TABLES, check):
 * every selected head of every selected layer read, so that damage anywhere
 * shows, and where a file stores both q/k and q_rot/k_rot, the rotation of
 * q/k compared with the stored rotated vectors (a wrong rope_pairing shows
 * at once).
 *
 * Ownership: everything is borrowed.
 */
#ifndef PE_CHECK_H
#define PE_CHECK_H

#include "pe_cli.h"
#include "pe_common.h"
#include "pe_dump.h"
#include "pe_table.h"

/* Writes one row per selected layer and tensor of d to t (columns file,
 * layer, tensor, dtype, heads, max_abs_diff, rel_diff, tolerance, status).
 * layers/heads: NULL selects all (with heads, the key heads they use are
 * checked too).  A difference above the tolerance of the stored and source
 * types sets *mismatch.  Returns 0, or -1 when a head cannot be read. */
int pe_check_file(pe_table *t, pe_dump *d, const char *path, const long *layers, size_t n_layers, const long *heads,
                  size_t n_heads, int *mismatch, pe_err *e);

/* Before anything is written: a layer (c->layers) or query head (c->heads)
 * selected but missing from one of the n files d (named paths) is a usage
 * error.  Returns 0 or -1. */
int pe_check_selection(pe_dump *const *d, char *const *paths, size_t n, const pe_common_opts *c, pe_err *e);

/* pe_check_file for each of the n files in turn, with c's layers and heads. */
int pe_check_files(pe_table *t, pe_dump *const *d, char *const *paths, size_t n, const pe_common_opts *c,
                   int *mismatch, pe_err *e);

#endif
