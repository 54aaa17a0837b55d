/* pe_lab.c: the what-if lab (see pe_lab.h; man peanalyze(1), TABLES,
 * whatif). */
#include "pe_lab.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pe_attn_walk.h"

typedef struct lab {
    const pe_attn_params *p;
    pe_attn_acc *acc; /* per spec */
    double *kl;       /* per spec: the KL sum and its rows */
    pe_attn_work *wa, *wb;
} lab;

/* Rotates the raw head (q, k: T x D) into qo, ko with spec s. */
static void rotate_as(const pe_run *r, size_t s, const pe_task *t, size_t f, const pe_attn_seq *raw, double *qo,
                      double *ko)
{
    size_t n = raw->T * (size_t)raw->D;
    pe_geom g = pe_run_geom(r, f, pe_run_slot(r, f, t->lj));
    const pe_rotation *rot = pe_run_rotation(r, s, t, f);
    memcpy(qo, raw->q, n * sizeof *qo);
    memcpy(ko, raw->k, n * sizeof *ko);
    pe_rotation_apply(rot, qo, raw->T, &g, raw->pos, 1, 1);
    pe_rotation_apply(rot, ko, raw->T, &g, raw->pos, 0, 1);
}

/* One file in one phase under every spec; before the beyond rows, rope's
 * in-train range becomes every spec's band. */
static int visit(pe_run *r, const pe_task *t, size_t f, pe_attn_phase ph, pe_attn_seq *raw, void *ctx, pe_err *e)
{
    lab *lb = ctx;
    const size_t ns = r->n_specs;
    if (!raw) {
        for (size_t j = 1; ph == PE_ATTN_BEYOND && j < ns; j++) {
            lb->acc[j].lo = lb->acc[0].lo;
            lb->acc[j].hi = lb->acc[0].hi;
        }
        return 0;
    }
    const pe_meta *m = pe_dump_meta(r->in.dumps[f]);
    size_t n = raw->T * (size_t)raw->D;
    double *qr = pe_run_buffer(r, 2, n, e), *kr = pe_run_buffer(r, 3, n, e);
    double *qs = pe_run_buffer(r, 4, n, e), *ks = pe_run_buffer(r, 5, n, e);
    if (!qr || !kr || !qs || !ks) return -1;
    pe_attn_params p = *lb->p;
    p.scale = m->attn_scale;
    p.softcap = m->attn_softcap;
    rotate_as(r, 0, t, f, raw, qr, kr);
    pe_attn_seq base = *raw;
    base.q = qr;
    base.k = kr;
    for (size_t s = 0; s < ns; s++) {
        pe_attn_seq sq = base;
        if (s) {
            rotate_as(r, s, t, f, raw, qs, ks);
            sq.q = qs;
            sq.k = ks;
        }
        if (pe_attn_add(&lb->acc[s], &sq, &p, ph, lb->wa, e) < 0) return -1;
        if (s && ph == PE_ATTN_IN &&
            pe_attn_kl(&base, &sq, &p, PE_ATTN_IN, &lb->kl[2 * s], &lb->kl[2 * s + 1], lb->wa, lb->wb, e) < 0)
            return -1;
    }
    return 0;
}

int pe_lab_head(pe_run *r, const pe_task *t, const pe_attn_params *p, long rows, const pe_attn_thresholds *thr,
                pe_attn_work *wa, pe_attn_work *wb, pe_lab_row *out, pe_err *e)
{
    const size_t ns = r->n_specs;
    lab lb = {p, pe_alloc(ns, sizeof *lb.acc, 1, e), pe_alloc(2 * ns, sizeof *lb.kl, 1, e), wa, wb};
    size_t ready = 0;
    int rc = -1;
    if (!lb.acc || !lb.kl) goto done;
    for (; ready < ns; ready++)
        if (pe_attn_init(&lb.acc[ready], r->in.n_dist, e) < 0) goto done;
    if (pe_attn_walk(r, t, PE_READ_RAW, rows, 1, visit, &lb, e) < 0) goto done;
    pe_attn_stats rope;
    pe_attn_summary(&lb.acc[0], &rope);
    for (size_t j = 0; j < ns; j++) {
        pe_attn_stats sj;
        const double *kl = lb.kl + 2 * j;
        pe_attn_summary(&lb.acc[j], &sj);
        out[j].kl_in = j == 0 ? (rope.rows_in > 0 ? 0 : NAN) : kl[1] > 0 ? kl[0] / kl[1] : NAN;
        out[j].unseen = sj.unseen;
        out[j].shift = sj.nats_beyond - rope.nats_in;
        out[j].exceed = sj.exceedance;
        out[j].ood = pe_attn_ood(&sj, thr);
    }
    rc = 0;
done:
    for (size_t j = 0; j < ready; j++) pe_attn_free(&lb.acc[j]);
    free(lb.acc);
    free(lb.kl);
    return rc;
}

static void add_mean(double *sum, double v, int slot)
{
    if (isnan(v)) return;
    sum[2 + 2 * slot] += v;
    sum[3 + 2 * slot] += 1;
}

void pe_lab_add(double *sum, const pe_lab_row *row)
{
    sum[0] += 1;
    sum[1] += row->ood;
    add_mean(sum, row->kl_in, 0);
    add_mean(sum, row->unseen, 1);
    add_mean(sum, row->shift, 2);
    add_mean(sum, row->exceed, 3);
}

/* The rank of value v among vals[0..n) (1 = lowest; ties share the lower
 * rank; nan last). */
static long rank_of(const double *vals, size_t n, double v)
{
    long rk = 1;
    if (isnan(v)) return (long)n;
    for (size_t i = 0; i < n; i++) rk += !isnan(vals[i]) && vals[i] < v;
    return rk;
}

static void write_means(pe_table *tb, const double *sum)
{
    pe_table_int(tb, (long long)sum[0]);
    pe_table_int(tb, (long long)sum[1]);
    for (int c = 0; c < 4; c++) pe_table_dbl(tb, sum[3 + 2 * c] > 0 ? sum[2 + 2 * c] / sum[3 + 2 * c] : NAN);
}

int pe_lab_summary(const pe_run *r, pe_table *tb, const double *sums, pe_err *e)
{
    const size_t ns = r->n_specs, nl = r->in.n_layers;
    static const char *const layer_cols[] = {"layer",       "pe",          "heads",
                                             "ood_heads",   "mean_kl_in",  "mean_unseen_mass",
                                             "mean_entropy_shift", "mean_exceedance"};
    static const char *const model_cols[] = {"pe",          "heads",        "ood_heads",
                                             "mean_kl_in",  "mean_unseen_mass", "mean_entropy_shift",
                                             "mean_exceedance", "rank_kl_in",   "rank_unseen_mass"};
    double *model = pe_alloc(ns * (PE_LAB_SUMS + 2) + 1, sizeof *model, 1, e);
    if (!model) return -1;
    double *kl = model + ns * PE_LAB_SUMS, *un = kl + ns;
    pe_table_section(tb, "layers", layer_cols, 8);
    for (size_t lj = 0; lj < nl; lj++) {
        for (size_t k = 0; k < ns; k++) {
            const double *sum = sums + (lj * ns + k) * PE_LAB_SUMS;
            pe_table_int(tb, r->in.layers[lj]);
            pe_table_str(tb, r->spec_names[k]);
            write_means(tb, sum);
            pe_table_end_row(tb);
            for (int c = 0; c < PE_LAB_SUMS; c++) model[k * PE_LAB_SUMS + (size_t)c] += sum[c];
        }
        pe_table_break(tb, 1);
    }
    /* The whole model: the mean over every head (layers weighted by their
     * heads), and each spec's rank by distortion within L and by unseen mass
     * beyond it. */
    for (size_t k = 0; k < ns; k++) {
        const double *m = model + k * PE_LAB_SUMS;
        kl[k] = m[3] > 0 ? m[2] / m[3] : NAN;
        un[k] = m[5] > 0 ? m[4] / m[5] : NAN;
    }
    pe_table_section(tb, "model", model_cols, 9);
    for (size_t k = 0; k < ns; k++) {
        pe_table_str(tb, r->spec_names[k]);
        write_means(tb, model + k * PE_LAB_SUMS);
        pe_table_int(tb, rank_of(kl, ns, kl[k]));
        pe_table_int(tb, rank_of(un, ns, un[k]));
        pe_table_end_row(tb);
    }
    free(model);
    return 0;
}
