/* pe_entplan.c: what a peentropy run computes for each head (see
 * pe_entplan.h; man peentropy(1), The matrix and its entropy). */
#include "pe_entplan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe_rope.h"

int pe_entplan_init(pe_entplan *p, int stage, int with_ntk, pe_prep prep, long rank, int D, int P, int bands,
                    int threads, pe_err *e)
{
    p->D = D;
    p->P = P;
    if (stage == PE_STAGE_ALL) {
        p->stages[p->n_stages++] = PE_STAGE_PRE;
        p->stages[p->n_stages++] = PE_STAGE_POST;
        if (with_ntk) p->stages[p->n_stages++] = PE_STAGE_NTK;
    } else {
        p->stages[p->n_stages++] = (pe_stage)stage;
    }
    p->prep = prep;
    p->r = rank > D ? D : (int)rank;
    p->bands = bands;
    p->per_stage = PE_ENT_NSCORES + (bands ? (size_t)P * PE_BAND_NVALUES : 0);
    if (!(p->w = pe_alloc((size_t)threads, sizeof *p->w, 1, e))) return -1;
    p->threads = threads;
    return (p->rotors = pe_rotor_cache_new(e)) ? 0 : -1;
}

int pe_entplan_ntk(pe_entplan *p, pe_dump *const *dumps, size_t n, long L, long len, double factor, pe_err *e)
{
    pe_scaling sc = {0};
    sc.kind = PE_SCALE_DYNAMIC;
    sc.factor = factor;
    sc.target_len = len;
    if (!(p->ntk_theta = pe_alloc(n, sizeof *p->ntk_theta, 1, e))) return -1;
    p->n_files = n;
    for (size_t f = 0; f < n; f++) {
        const pe_meta *mf = pe_dump_meta(dumps[f]);
        pe_scale_info info;
        if (!(p->ntk_theta[f] = pe_alloc(mf->n_pairs ? (size_t)mf->n_pairs : 1, sizeof(double), 1, e))) return -1;
        info.base_scaled = mf->rope_theta;
        if (mf->rotary_dim > 0 &&
            pe_scaling_apply(&sc, mf->rotary_dim, mf->rope_theta, L, mf->theta, p->ntk_theta[f], &info, e) < 0) {
            char msg[sizeof e->msg];
            snprintf(msg, sizeof msg, "%s", e->msg);
            pe_errkind kind = e->kind;
            pe_fail(e, "%s: --stage ntk: %s", pe_dump_path(dumps[f]), msg);
            e->kind = kind;
            return -1;
        }
        if (f == 0) p->ntk_base = info.base_scaled;
    }
    return 0;
}

void pe_entplan_stage_list(const pe_entplan *p, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int si = 0; si < p->n_stages && len < n; si++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", si ? " " : "", pe_stage_name(p->stages[si]));
}

int pe_entplan_head(pe_entplan *p, int wid, size_t f, double *x, double *y, size_t T, const pe_geom *g,
                    const int64_t *pos, const pe_rotation *spec, int query, int rope, pe_pool *pool, double *out,
                    const char *who, pe_err *e)
{
    size_t td = T * (size_t)g->head_dim;
    pe_entropy_work *w = &p->w[wid];
    if (!w->G && pe_entropy_work_init(w, p->D, e) < 0) return -1;
    for (int si = 0; si < p->n_stages; si++) {
        /* The last stage may consume the read vectors; the others work on a copy. */
        double *buf = si == p->n_stages - 1 ? x : y;
        if (buf != x) memcpy(buf, x, td * sizeof *buf);
        const pe_rotor *rot = NULL;
        if (p->stages[si] == PE_STAGE_POST && !pe_rotation_is_plain(spec)) {
            /* Gauss draws or a logit factor (man petools-whatif(7)). */
            pe_rotation_apply(spec, buf, T, g, pos, query, 1);
        } else if (p->stages[si] != PE_STAGE_PRE) {
            pe_geom gr = *g;
            /* The post stage turns with the spec's frequencies (the layer's
             * own by default); a layer without rotary embedding stays
             * unrotated (its theta are 0). */
            gr.theta = spec->theta;
            if (p->stages[si] == PE_STAGE_NTK && rope) gr.theta = p->ntk_theta[f];
            if (!(rot = pe_rotor_cache_get(p->rotors, &gr, pos, T, pool, e))) return -1;
        }
        double *o = out + (size_t)si * p->per_stage;
        int rc = pe_entropy_head(buf, T, g, rot, p->prep, p->r, o, p->bands ? o + PE_ENT_NSCORES : NULL, w, NULL, e);
        pe_rotor_cache_put(p->rotors, rot);
        if (rc < 0) {
            char msg[sizeof e->msg];
            snprintf(msg, sizeof msg, "%s", e->msg);
            return pe_fail(e, "%s: stage %s: %s", who, pe_stage_name(p->stages[si]), msg);
        }
    }
    return 0;
}

/* The first columns of a row: layer, head, kv_head, tensor, stage. */
static void row_start(pe_table *tb, long layer, int head, int kv_head, int tensor, pe_stage stage)
{
    pe_table_int(tb, layer);
    pe_table_int(tb, head);
    pe_table_int(tb, kv_head);
    pe_table_str(tb, tensor == PE_TENSOR_Q ? "q" : "k");
    pe_table_str(tb, pe_stage_name(stage));
}

void pe_entplan_rows(const pe_entplan *p, pe_table *tb, int si, long layer, int head, int kv_head, int tensor,
                     const double *theta, long L, const double *v)
{
    if (!p->bands) {
        row_start(tb, layer, head, kv_head, tensor, p->stages[si]);
        pe_table_str(tb, pe_prep_name(p->prep));
        pe_table_int(tb, p->r);
        for (int k = 0; k < PE_ENT_NSCORES; k++) pe_table_dbl(tb, v[k]);
        pe_table_end_row(tb);
        return;
    }
    for (int i = 0; i < p->P; i++) {
        row_start(tb, layer, head, kv_head, tensor, p->stages[si]);
        pe_table_int(tb, i);
        pe_table_dbl(tb, theta[i]);
        pe_table_str(tb, pe_class_name(pe_rope_classify(theta[i], L, NULL)));
        for (int k = 0; k < PE_BAND_NVALUES; k++) pe_table_dbl(tb, v[PE_ENT_NSCORES + (size_t)i * PE_BAND_NVALUES + k]);
        pe_table_end_row(tb);
    }
    pe_table_break(tb, 2);
}

void pe_entplan_free(pe_entplan *p)
{
    for (int j = 0; p->w && j < p->threads; j++) pe_entropy_work_free(&p->w[j]);
    free(p->w);
    p->w = NULL;
    for (size_t f = 0; p->ntk_theta && f < p->n_files; f++) free(p->ntk_theta[f]);
    free(p->ntk_theta);
    pe_rotor_cache_free(p->rotors);
    p->ntk_theta = NULL;
    p->rotors = NULL;
}
