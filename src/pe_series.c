/* pe_series.c: a block of series of rows, formatted on every thread (see
 * pe_series.h). */
#include "pe_series.h"

#include <stdlib.h>

typedef struct series_job {
    pe_table *t;
    const pe_series *s;
    pe_table_state at; /* the table before the first piece */
    pe_table **forks;  /* per piece, until written */
} series_job;

static int format_piece(size_t k, void *ctx, pe_err *e)
{
    series_job *j = ctx;
    const pe_series *s = j->s;
    const size_t nb = s->len, first = k * PE_SERIES_PIECE, n = s->n_series * nb;
    const size_t last = first + PE_SERIES_PIECE < n ? first + PE_SERIES_PIECE : n;
    /* A piece after the first continues rows already written, with the
     * series break waiting when it starts a series. */
    pe_table_state at = k == 0 ? j->at : (pe_table_state){1, first % nb == 0};
    pe_table *t = pe_table_fork(j->t, at, e);
    if (!t) return -1;
    size_t si = first / nb, b = first % nb; /* the series and row of row x */
    for (size_t x = first; x < last; x++, b++) {
        if (b == nb) {
            b = 0;
            si++;
        }
        if (b == 0 && x != first) pe_table_break(t, 1);
        if (b != 0 && x != first) {
            pe_table_use_prefix(t);
        } else {
            s->prefix(t, si, s->ctx);
            pe_table_mark_prefix(t);
        }
        s->cells(t, si, b, s->ctx);
        pe_table_end_row(t);
    }
    if (last % nb == 0) pe_table_break(t, 1);
    j->forks[k] = t;
    return 0;
}

static int write_piece(size_t k, void *ctx, pe_err *e)
{
    series_job *j = ctx;
    pe_table *t = j->forks[k];
    j->forks[k] = NULL;
    return pe_table_join(j->t, t, e);
}

int pe_series_write(pe_table *t, pe_pool *pool, const pe_series *s, pe_err *e)
{
    const size_t n = s->n_series * s->len, pieces = (n + PE_SERIES_PIECE - 1) / PE_SERIES_PIECE;
    const size_t ahead = 2 * (size_t)pe_pool_jobs(pool);
    series_job j = {t, s, pe_table_state_of(t), NULL};
    int rc = -1;
    if ((j.forks = pe_alloc(pieces ? pieces : 1, sizeof *j.forks, 1, e)) &&
        pe_pool_ordered(pool, pieces, 0, ahead, format_piece, write_piece, &j, e) == 0)
        rc = 0;
    for (size_t k = 0; j.forks && k < pieces; k++) pe_table_fork_free(j.forks[k]);
    free(j.forks);
    return rc;
}
