/* pe_inputs.h: several qkdump files pooled as one input (see qkdump(5),
 * WHAT A READER REFUSES, Several files).
 *
 * Files pooled together must describe the same model the same way: the same
 * heads, dimensions, pairing, attention scale and frequencies, and the same
 * layers; pe_inputs_open refuses them otherwise, naming the first field that
 * differs.  It also turns the --layers and --heads selections into lists
 * every file holds.
 *
 * Ownership: a pe_inputs owns its pe_dumps and its lists; pe_inputs_close
 * releases them.  paths, layers and heads are borrowed for the call.
 */
#ifndef PE_INPUTS_H
#define PE_INPUTS_H

#include <stddef.h>

#include "pe_common.h"
#include "pe_dump.h"

typedef struct pe_inputs {
    size_t n;
    pe_dump **dumps;
    const pe_meta *meta; /* the first file's; the others agree (see below) */
    long train_len;      /* --train-len, else the files' (0 = unknown) */
    size_t n_layers;     /* selected layers, by index */
    long *layers;
    size_t n_heads;      /* selected query heads */
    int *heads;
    size_t n_dist;       /* max over files of (pos[T-1] - pos[0]) + 1 */
} pe_inputs;

/* Opens every file and checks that they agree on n_heads, n_kv_heads,
 * head_dim, rotary_dim, rope_pairing, attn_scale, attn_softcap, train_len and
 * the frequencies of every selected layer (relative 1e-6); names the first
 * field that differs.  layers/heads: NULL selects all (the first file's
 * layers; every query head); a selected layer missing from a file or a head
 * out of range is a usage error (e->kind == PE_ERRK_USAGE).  train_len > 0
 * overrides the files. */
int pe_inputs_open(pe_inputs *in, char *const *paths, size_t n_paths, const pe_open_opts *opts,
                   const long *layers, size_t n_layers, const long *heads, size_t n_heads,
                   long train_len, pe_err *e);
void pe_inputs_close(pe_inputs *in);

#endif
