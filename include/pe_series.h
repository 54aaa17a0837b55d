/* pe_series.h: a block of series of table rows, formatted on every thread
 * (man pedecomp(1), TABLES, profile).
 *
 * A block is n_series series of len rows, every row of a series starting
 * with the same cells.  pedecomp's profile of one head is (P + 2) series of
 * its bins: up to 8.6 million rows at T 131072 with --bins 0, whose
 * formatting takes longer than their computing.  pe_series_write formats
 * them in pieces of PE_SERIES_PIECE rows on every thread into table forks
 * (pe_table.h), which the calling thread writes in order as they come: the
 * same bytes as one thread writing them, and a few pieces in memory.
 *
 * Ownership: everything is borrowed.
 */
#ifndef PE_SERIES_H
#define PE_SERIES_H

#include <stddef.h>

#include "pe_common.h"
#include "pe_pool.h"
#include "pe_table.h"

#define PE_SERIES_PIECE 8192

/* The callbacks run on any thread, several at once, on different tables:
 * they only write cells to t and read ctx. */
typedef struct pe_series {
    size_t n_series;
    size_t len; /* rows per series */
    /* The cells that start every row of series s (written for its first
     * row, then repeated with pe_table_use_prefix). */
    void (*prefix)(pe_table *t, size_t s, void *ctx);
    /* The rest of row b of series s, before pe_table_end_row. */
    void (*cells)(pe_table *t, size_t s, size_t b, void *ctx);
    void *ctx;
} pe_series;

/* Writes the rows of every series to t, a series break (pe_table_break
 * level 1) after each, formatted on pool's threads.  Returns 0 or -1. */
int pe_series_write(pe_table *t, pe_pool *pool, const pe_series *s, pe_err *e);

#endif
