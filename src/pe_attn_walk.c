/* pe_attn_walk.c: a query head over the pooled files (see pe_attn_walk.h). */
#include "pe_attn_walk.h"

#include <stdio.h>
#include <stdlib.h>

/* Reads file f's query head and key head, and its evaluated rows. */
static int load(pe_run *r, const pe_task *t, size_t f, int how, long n, pe_attn_seq *s, size_t **rows, pe_err *e)
{
    const pe_meta *m = pe_dump_meta(r->in.dumps[f]);
    free(*rows);
    *rows = NULL;
    *s = (pe_attn_seq){m->T, m->head_dim, NULL, NULL, m->positions, NULL, 0, NULL};
    if (!(s->q = pe_run_read(r, t, f, PE_TENSOR_Q, t->head, how, 0, e))) return -1;
    if (!(s->k = pe_run_key(r, t, f, how, 1, e))) return -1;
    if (n > 0 && (size_t)n < m->T) {
        if (!(*rows = pe_alloc((size_t)n, sizeof **rows, 0, e))) return 1;
        s->rows = *rows;
        s->n_rows = pe_attn_even_rows(m->T, (size_t)n, *rows);
    }
    return 0;
}

int pe_attn_walk(pe_run *r, const pe_task *t, int how, long rows, int two_phases, pe_attn_visit visit, void *ctx,
                 pe_err *e)
{
    long L = r->in.train_len;
    size_t *sel = NULL, loaded = (size_t)-1;
    pe_attn_seq s = {0};
    int rc = -1, have_key = 0;
    int first = two_phases ? PE_ATTN_IN : PE_ATTN_ALL, last = two_phases ? PE_ATTN_BEYOND : PE_ATTN_ALL;
    for (int ph = first; ph <= last; ph++) {
        if (visit(r, t, 0, (pe_attn_phase)ph, NULL, ctx, e) < 0) goto done;
        for (size_t f = 0; f < r->in.n; f++) {
            const pe_meta *m = pe_dump_meta(r->in.dumps[f]);
            size_t first_row = rows == 1 ? m->T - 1 : 0;
            if (ph == PE_ATTN_IN && m->positions[first_row] >= L) continue;
            if (ph == PE_ATTN_BEYOND && m->positions[m->T - 1] < L) continue;
            if (loaded != f) {
                if (have_key) pe_run_key_done(r, t, loaded);
                loaded = f;
                int st = load(r, t, f, how, rows, &s, &sel, e);
                have_key = st != -1; /* 1: the key is held, the rows failed */
                if (st) goto done;
            }
            pe_attn_seq v = s;
            if (visit(r, t, f, (pe_attn_phase)ph, &v, ctx, e) < 0) {
                char msg[sizeof e->msg];
                snprintf(msg, sizeof msg, "%s", e->msg);
                pe_fail(e, "%s: layer %ld head %d: %s", pe_dump_path(r->in.dumps[f]), t->layer, t->head, msg);
                goto done;
            }
        }
    }
    rc = 0;
done:
    if (have_key) pe_run_key_done(r, t, loaded);
    free(sel);
    return rc;
}
