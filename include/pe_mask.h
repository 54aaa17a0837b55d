/* pe_mask.h: DoPE masks (man peentropy(1), MASK FILE): the heads DoPE would
 * denoise and, for DoPE-by-parts, their pairs with theta <= 2 pi / L.
 * peentropy --mask writes one; --pe dope:MASK (man petools-whatif(7)) reads
 * it back.  The heads are chosen and listed here too (pe_mask_rank,
 * pe_mask_rows: the select table).
 *
 * Ownership: pe_mask_read returns a pe_mask the caller frees with
 * pe_mask_free; everything passed in is borrowed.
 */
#ifndef PE_MASK_H
#define PE_MASK_H

#include <stdio.h>

#include "pe_common.h"
#include "pe_dump.h"
#include "pe_table.h"

/* A selected head. */
typedef struct pe_mask_head {
    long layer;
    int tensor;          /* a pe_tensor */
    int head, kv_head;   /* head: the query head, or the key head of unbroadcast keys */
    double score;
    const double *theta; /* the layer's n_pairs frequencies */
} pe_mask_head;

/* How the heads were chosen, as the mask records it. */
typedef struct pe_mask_selection {
    const char *score, *order, *stage, *prep, *tensor;
    long top;
    int r, broadcast;
    long ntk_len;      /* 0: no ntk stage (null in the file) */
    double ntk_factor;
} pe_mask_selection;

/* The selection of `select` (man peentropy(1), TABLES, select): ranks the
 * heads by score as pe_entropy_rank does (ascending, or descending when
 * desc; ties by layer, head, tensor; NaN scores left out) and keeps at most
 * n_top, best first, in heads[0 .. *n_out).  Returns 0, or -1 when out of
 * memory (heads unchanged). */
int pe_mask_rank(pe_mask_head *heads, size_t n, int desc, size_t n_top, size_t *n_out, pe_err *e);

/* The rows of the select table for heads[0 .. n) in rank order: rank,
 * layer, head, kv_head, tensor, score. */
void pe_mask_rows(pe_table *t, const pe_mask_head *heads, size_t n);

/* Writes the mask document to f: created_by, the inputs (sorted by name),
 * the model's shape from m, the training length L, the selection and the
 * heads in rank order.  Returns 0, or -1 when out of memory. */
int pe_mask_write(FILE *f, const char *created_by, char *const *inputs, size_t n_inputs, const pe_meta *m, long L,
                  const pe_mask_selection *sel, const pe_mask_head *heads, size_t n_heads, int kv_group, pe_err *e);

/* A mask read back: what --pe dope: needs of it. */
typedef struct pe_mask_entry {
    long layer;
    int tensor;            /* a pe_tensor */
    int head, kv_head;
    int *query_heads;      /* the query heads whose attention it concerns */
    size_t n_query;
    int *pairs;            /* the pairs DoPE-by-parts acts on */
    size_t n_pairs;
} pe_mask_entry;

typedef struct pe_mask {
    int n_heads, n_kv_heads, head_dim, rotary_dim;
    int pairing;           /* a pe_pairing, or -1 (null: rotary_dim 0) */
    pe_mask_entry *heads;
    size_t n;
} pe_mask;

/* Reads and checks a mask document (format, version, every field's type and
 * range).  Errors name the file and the field (data errors).  Returns 0 or
 * -1. */
int pe_mask_read(const char *path, pe_mask **out, pe_err *e);
void pe_mask_free(pe_mask *mk);

/* Whether the mask fits a dump of shape m (file names it in the message):
 * the same n_heads, n_kv_heads, head_dim, rotary_dim and pairing, every
 * layer present, every head and pair in range.  Returns 0 or -1. */
int pe_mask_fits(const pe_mask *mk, const char *mask_path, const pe_meta *m, const char *file, pe_err *e);

#endif
