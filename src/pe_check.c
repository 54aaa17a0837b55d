/* pe_check.c: a whole qkdump file checked (see pe_check.h). */
#include "pe_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The unit roundoff of a stored or source type (0 when unknown). */
static double dtype_eps(const char *name)
{
    if (!name) return 0;
    if (strcmp(name, "float16") == 0) return 0x1p-10;
    if (strcmp(name, "bfloat16") == 0) return 0x1p-7;
    if (strcmp(name, "float32") == 0) return 0x1p-23;
    if (strcmp(name, "float64") == 0) return 0x1p-52;
    return 0;
}

static int selected(const long *list, size_t n, long v)
{
    for (size_t j = 0; j < n; j++)
        if (list[j] == v) return 1;
    return !list;
}

int pe_check_file(pe_table *t, pe_dump *d, const char *path, const long *layers, size_t n_layers, const long *heads,
                  size_t n_heads, int *mismatch, pe_err *e)
{
    const pe_meta *m = pe_dump_meta(d);
    size_t td = m->T * (size_t)m->head_dim;
    int group = m->n_heads / m->n_kv_heads, rc = -1;
    double *x = pe_alloc(td, sizeof *x, 0, e), *y = x ? pe_alloc(td, sizeof *y, 0, e) : NULL;
    if (!y) goto done;
    for (size_t s = 0; s < m->n_layers; s++) {
        const pe_layer_info *L = &m->layers[s];
        pe_geom g = {m->head_dim, m->rotary_dim, m->n_pairs, m->pairing, L->theta};
        if (!selected(layers, n_layers, L->index)) continue;
        for (int tn = 0; tn < 2; tn++) {
            int nh = tn == 0 ? m->n_heads : m->n_kv_heads, nread = 0;
            double maxdiff = 0, maxabs = 0;
            for (int h = 0; h < nh; h++) {
                /* With heads: those query heads and the key heads they use. */
                int use = !heads;
                for (size_t j = 0; heads && j < n_heads; j++) use |= tn == 0 ? heads[j] == h : heads[j] / group == h;
                if (!use) continue;
                nread++;
                if (L->has_plain && pe_dump_read_stored(d, s, (pe_tensor)tn, 0, h, x, e) < 0) goto done;
                if (L->has_rot && pe_dump_read_stored(d, s, (pe_tensor)tn, 1, h, y, e) < 0) goto done;
                if (!(L->has_plain && L->has_rot)) continue;
                pe_rope_rotate(x, m->T, &g, m->positions, +1);
                for (size_t j = 0; j < td; j++) {
                    maxdiff = fmax(maxdiff, fabs(x[j] - y[j]));
                    maxabs = fmax(maxabs, fabs(y[j]));
                }
            }
            const char *dt_plain = pe_dump_dtype(d, s, (pe_tensor)tn, 0);
            const char *dt_rot = pe_dump_dtype(d, s, (pe_tensor)tn, 1);
            pe_table_str(t, path);
            pe_table_int(t, L->index);
            pe_table_str(t, tn == 0 ? "q" : "k");
            pe_table_str(t, L->has_plain ? dt_plain : dt_rot);
            pe_table_int(t, nread);
            if (L->has_plain && L->has_rot) {
                double eps = fmax(fmax(dtype_eps(dt_plain), dtype_eps(dt_rot)), dtype_eps(m->source_dtype));
                double tol = 8 * fmax(eps, 0x1p-52);
                /* An all-zero stored tensor with a nonzero rotation is a
                 * mismatch of unbounded relative size: rel_diff 1. */
                double rel = maxabs > 0 ? maxdiff / maxabs : (maxdiff > 0 ? 1 : 0);
                if (rel > tol) *mismatch = 1;
                pe_table_dbl(t, maxdiff);
                pe_table_dbl(t, rel);
                pe_table_dbl(t, tol);
                pe_table_str(t, rel <= tol ? "ok" : "mismatch");
            } else {
                pe_table_nan(t);
                pe_table_nan(t);
                pe_table_nan(t);
                pe_table_str(t, "read");
            }
            pe_table_end_row(t);
        }
    }
    rc = 0;
done:
    free(x);
    free(y);
    return rc;
}

int pe_check_selection(pe_dump *const *d, char *const *paths, size_t n, const pe_common_opts *c, pe_err *e)
{
    for (size_t f = 0; f < n; f++) {
        for (size_t j = 0; c->layers && j < c->n_layers; j++)
            if (pe_dump_find_layer(d[f], c->layers[j]) < 0)
                return pe_fail_usage(e, "--layers: layer %ld is not in %s", c->layers[j], paths[f]);
        for (size_t j = 0; c->heads && j < c->n_heads; j++)
            if (c->heads[j] >= pe_dump_meta(d[f])->n_heads)
                return pe_fail_usage(e, "--heads: head %ld does not exist (%s has %d query heads)", c->heads[j],
                                     paths[f], pe_dump_meta(d[f])->n_heads);
    }
    return 0;
}

int pe_check_files(pe_table *t, pe_dump *const *d, char *const *paths, size_t n, const pe_common_opts *c,
                   int *mismatch, pe_err *e)
{
    for (size_t f = 0; f < n; f++)
        if (pe_check_file(t, d[f], paths[f], c->layers, c->n_layers, c->heads, c->n_heads, mismatch, e) < 0)
            return -1;
    return 0;
}
