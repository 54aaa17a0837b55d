/* pe_spare.c: a large buffer kept for the next head (see pe_spare.h). */
#include "pe_spare.h"

#include <stdlib.h>

void pe_spare_init(pe_spare *s)
{
    pthread_mutex_init(&s->mu, NULL);
    s->buf = NULL;
    s->cap = 0;
}

void pe_spare_free(pe_spare *s)
{
    free(s->buf);
    s->buf = NULL;
    pthread_mutex_destroy(&s->mu);
}

double *pe_spare_take(pe_spare *s, size_t n, size_t *cap, pe_err *e)
{
    double *m = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->buf && s->cap >= n) {
        m = s->buf;
        *cap = s->cap;
        s->buf = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (!m && (m = pe_alloc_big(n, sizeof *m, e))) *cap = n;
    return m;
}

void pe_spare_give(pe_spare *s, double **buf, size_t cap)
{
    pthread_mutex_lock(&s->mu);
    if (!s->buf || s->cap < cap) {
        free(s->buf);
        s->buf = *buf;
        s->cap = cap;
        *buf = NULL;
    }
    pthread_mutex_unlock(&s->mu);
}
