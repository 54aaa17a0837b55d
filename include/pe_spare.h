/* pe_spare.h: one large buffer handed back from the rows just written to
 * the next head's work (man pedecomp(1), OPTIONS, --jobs: a head's rows are
 * written while the next head is computed).
 *
 * A head's profile means are 17 MB at --bins 0 and T 32768: new pages cost
 * more than the binning that fills them, so the buffer of a written head is
 * kept for a later one.  Work and emit run at once, on different threads,
 * hence the lock.
 *
 * Ownership: the spare owns the buffer it keeps (pe_spare_free); a taken
 * buffer is the caller's, freed with free() unless given back.
 */
#ifndef PE_SPARE_H
#define PE_SPARE_H

#include <pthread.h>
#include <stddef.h>

#include "pe_common.h"

typedef struct pe_spare {
    pthread_mutex_t mu;
    double *buf; /* NULL, or cap doubles */
    size_t cap;
} pe_spare;

void pe_spare_init(pe_spare *s);
void pe_spare_free(pe_spare *s);

/* At least n doubles: the spare when it is that big, else a new array
 * (pe_alloc_big, not zeroed); *cap receives its size.  NULL with e filled. */
double *pe_spare_take(pe_spare *s, size_t n, size_t *cap, pe_err *e);

/* Offers *buf (cap doubles) back: kept, and *buf set to NULL, when there is
 * no spare or a smaller one (then freed); else *buf stays the caller's. */
void pe_spare_give(pe_spare *s, double **buf, size_t cap);

#endif
