/* pe_usage.c: per-pair mean norms and per-dimension means (see pe_usage.h). */
#include "pe_usage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int pe_usage_init(pe_usage *u, int n_pairs, int head_dim, pe_err *e)
{
    memset(u, 0, sizeof *u);
    u->n_pairs = n_pairs;
    u->head_dim = head_dim;
    u->norm_sum = pe_alloc(n_pairs > 0 ? (size_t)n_pairs : 1, sizeof(double), 1, e);
    u->dim_sum = pe_alloc((size_t)head_dim, sizeof(double), 1, e);
    u->dim_abs = pe_alloc((size_t)head_dim, sizeof(double), 1, e);
    if (!u->norm_sum || !u->dim_sum || !u->dim_abs) {
        pe_usage_free(u);
        return -1;
    }
    return 0;
}

void pe_usage_free(pe_usage *u)
{
    free(u->norm_sum);
    free(u->dim_sum);
    free(u->dim_abs);
    memset(u, 0, sizeof *u);
}

void pe_usage_add(pe_usage *u, const double *x, size_t T, const pe_geom *g)
{
    const int D = g->head_dim;
    for (size_t m = 0; m < T; m++) {
        const double *v = x + m * (size_t)D;
        for (int i = 0; i < g->n_pairs; i++) {
            int a, b;
            pe_rope_pair_dims(g->pairing, g->rotary_dim, i, &a, &b);
            u->norm_sum[i] += hypot(v[a], v[b]);
        }
        for (int d = 0; d < D; d++) {
            u->dim_sum[d] += v[d];
            u->dim_abs[d] += fabs(v[d]);
        }
    }
    u->tokens += (double)T;
}

int pe_usage_pair_of(const pe_geom *g, int d)
{
    if (d >= g->rotary_dim) return -1;
    return g->pairing == PE_PAIRING_HALF ? d % (g->rotary_dim / 2) : d / 2;
}
