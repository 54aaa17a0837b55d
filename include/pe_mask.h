/* pe_mask.h: DoPE masks (man peentropy(1), MASK FILE): the heads DoPE would
 * denoise and, for DoPE-by-parts, their pairs with theta <= 2 pi / L.
 * peentropy --mask writes one.
 *
 * Ownership: everything passed in is borrowed.
 */
#ifndef PE_MASK_H
#define PE_MASK_H

#include <stdio.h>

#include "pe_common.h"
#include "pe_dump.h"

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

/* Writes the mask document to f: created_by, the inputs (sorted by name),
 * the model's shape from m, the training length L, the selection and the
 * heads in rank order.  Returns 0, or -1 when out of memory. */
int pe_mask_write(FILE *f, const char *created_by, char *const *inputs, size_t n_inputs, const pe_meta *m, long L,
                  const pe_mask_selection *sel, const pe_mask_head *heads, size_t n_heads, int kv_group, pe_err *e);

#endif
