/* pedecomp: split attention logits into their RoPE frequency components and
 * measure each against the training length (man pedecomp(1)).
 *
 * Tables: profile (per-component mean logit against distance), summary (per
 * pair: magnitude share, in-train range, value and angle OOD, U
 * attribution), spectrum (spectral purity of each pair's profile), usage and
 * dims (how much each pair and dimension is used), freqs (the geometry
 * alone, with an optional rope-scaling what-if).  --check validates a whole
 * file and compares stored q_rot/k_rot with the rotation of q/k.  The run
 * itself is pe_run's: heads one at a time, each spread over every thread
 * (groups of pairs), its rows written while the next head is computed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe_check.h"
#include "pe_curve.h"
#include "pe_decomp.h"
#include "pe_freqs.h"
#include "pe_run.h"
#include "pe_series.h"
#include "pe_spare.h"
#include "pe_spectrum.h"
#include "pe_usage.h"

#define PROG "pedecomp"

typedef enum { TABLE_PROFILE = 0, TABLE_SUMMARY, TABLE_SPECTRUM, TABLE_USAGE, TABLE_DIMS, TABLE_FREQS, TABLE_CHECK } table_kind;
static const char *const table_names[] = {"profile", "summary", "spectrum", "usage", "dims", "freqs", NULL};

enum {
    OPT_BINS = PE_OPT_TOOL,
    OPT_METHOD,
    OPT_SCALE,
    OPT_CHECK,
    OPT_HF_TURNS,
    OPT_ACT_TURNS,
    OPT_ROTARY_DIM,
    OPT_ROPE_THETA,
    OPT_SPECTRUM_OF,
    OPT_MIN_PAIRS
};

typedef struct decomp_opts {
    int table;
    long bins;
    int method;
    pe_whatif *scale;  /* --scale, the old name of --pe for -t freqs (until it moves to the run's specs) */
    int scale_moved;   /* it has: messages still name --scale */
    int check;
    pe_class_rule rule;
    long rotary_dim; /* freqs without a file */
    double rope_theta;
    int rope_theta_given;
    long spectrum_of; /* -1, or the pair whose power spectrum -t spectrum writes */
    long min_pairs;   /* summary: value_ood over distances with at least this many pairs */
    int seen_min_pairs;
} decomp_opts;

static const pe_option decomp_options[] = {
    {"table", 't', "NAME", "profile (default), summary, spectrum, usage, dims or freqs"},
    {"bins", OPT_BINS, "B", "profile: distance bins (default 512; 0 = every distance)"},
    {"method", OPT_METHOD, "M", "fft (default) or direct, the O(T^2) sum that checks it"},
    {"scale", OPT_SCALE, "SPEC", "freqs: the old name of --pe (until the next release)"},
    {"spectrum-of", OPT_SPECTRUM_OF, "I", "spectrum: write pair I's whole power spectrum instead"},
    {"min-pairs", OPT_MIN_PAIRS, "N", "summary: value_ood over distances with at least N pairs (default 256)"},
    {"check", OPT_CHECK, NULL, "read every head; compare stored q_rot/k_rot with rotated q/k"},
    {"hf-turns", OPT_HF_TURNS, "X", "class hf when turns within L >= X (default 1)"},
    {"act-turns", OPT_ACT_TURNS, "X", "class act when turns within L >= X (default 0.5)"},
    {"rotary-dim", OPT_ROTARY_DIM, "R", "freqs without an input file: rotary dims R"},
    {"rope-theta", OPT_ROPE_THETA, "B", "freqs without an input file: base (default 10000)"},
    {NULL, 0, NULL, NULL}};

/* The text after the option list of --help. */
static const char epilog[] =
    "Several FILEs are pooled: each mean is a sum over all files divided by\n"
    "the total count.  Classes: hf (>= 1 turn within L), act (0.5 to 1 turn),\n"
    "tlf (less), nope (theta 0).\n";

static int handle_option(int key, const char *arg, void *ctx, pe_err *e)
{
    decomp_opts *o = ctx;
    static const char *const methods[] = {"fft", "direct", NULL};
    switch (key) {
    case 't': return pe_parse_choice("--table", arg, table_names, &o->table, e);
    case OPT_BINS: return pe_parse_long("--bins", arg, 0, 1L << 40, &o->bins, e);
    case OPT_METHOD: return pe_parse_choice("--method", arg, methods, &o->method, e);
    case OPT_SCALE:
        pe_whatif_free(o->scale);
        o->scale = NULL;
        return pe_whatif_parse("--scale", arg, &o->scale, e);
    case OPT_CHECK: o->check = 1; return 0;
    case OPT_HF_TURNS: return pe_parse_double("--hf-turns", arg, 0, 1e300, &o->rule.hf_turns, e);
    case OPT_ACT_TURNS: return pe_parse_double("--act-turns", arg, 0, 1e300, &o->rule.act_turns, e);
    case OPT_ROTARY_DIM: return pe_parse_long("--rotary-dim", arg, 0, 1000000, &o->rotary_dim, e);
    case OPT_SPECTRUM_OF: return pe_parse_long("--spectrum-of", arg, 0, 1000000, &o->spectrum_of, e);
    case OPT_MIN_PAIRS:
        o->seen_min_pairs = 1;
        return pe_parse_long("--min-pairs", arg, 1, 1L << 40, &o->min_pairs, e);
    case OPT_ROPE_THETA:
        o->rope_theta_given = 1;
        return pe_parse_double("--rope-theta", arg, 1e-300, 1e300, &o->rope_theta, e);
    default: return pe_fail_usage(e, "unknown option");
    }
}

/* ---- profile, summary, spectrum: one head's profile ---- */

typedef struct head_result {
    size_t nb;            /* bins */
    double *mean;         /* (P + 2) x nb: pairs, pass, total */
    size_t mean_cap;      /* doubles in mean */
    double *npairs;       /* nb */
    pe_pair_summary *sum; /* P, summary table */
    pe_purity *pur;       /* P, spectrum table */
    double *power;        /* --spectrum-of: the pair's one-sided power spectrum */
    size_t n_power;
    pe_usage use;         /* usage, dims */
} head_result;

typedef struct state {
    pe_profile prof;      /* kept from head to head: its pages are already there */
    pe_spare spare;       /* a written head's mean array, for a later head */
    /* freqs */
    pe_freqs_model fm;
    double *theta_cli;    /* the frequencies without an input file */
    double *scaled;       /* NULL without --scale */
    pe_scale_info info;
} state;

static const decomp_opts *opts_of(const pe_run *r)
{
    return r->opts;
}

static void result_free(void *res)
{
    head_result *h = res;
    free(h->mean);
    free(h->npairs);
    free(h->sum);
    free(h->pur);
    free(h->power);
    pe_usage_free(&h->use);
    memset(h, 0, sizeof *h);
}

/* The frequencies of a head's pairs under the run's spec (the first
 * file's: they differ between files only with dynamic:S). */
static const double *head_theta(const pe_run *r, const pe_task *t)
{
    return pe_run_rotation(r, 0, t, 0)->theta;
}

/* One (layer, head): read it from every file, add into one profile, then
 * keep only what the table prints (binned means, the summary or spectra). */
static int work_head(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    const decomp_opts *o = opts_of(r);
    state *s = r->state;
    head_result *out = res;
    const int P = r->in.meta->n_pairs;
    pe_profile *prof = &s->prof;
    prof->pool = r->pool;
    if (pe_profile_reuse(prof, P, r->in.n_dist, e) < 0) return -1;
    for (size_t f = 0; f < r->in.n; f++) {
        const pe_meta *mf = pe_dump_meta(r->in.dumps[f]);
        int slot = pe_run_slot(r, f, t->lj);
        /* The spec's gauss draws and logit factor go into q and k; its
         * frequencies into the distance phase (man petools-whatif(7)). */
        const double *q = pe_run_read(r, t, f, PE_TENSOR_Q, t->head, PE_READ_PHASE, 0, e);
        const double *k = q ? pe_run_key(r, t, f, PE_READ_PHASE, 1, e) : NULL;
        if (!k) return -1;
        pe_geom g = pe_run_geom(r, f, slot);
        g.theta = pe_run_rotation(r, 0, t, f)->theta;
        pe_head_input hin = {mf->T, q, k, mf->positions, mf->attn_scale, mf->contiguous};
        int added = pe_profile_add(prof, &hin, &g, (pe_method)o->method, e);
        pe_run_key_done(r, t, f);
        if (added < 0) return -1;
    }
    if (o->table == TABLE_SUMMARY) {
        if (!(out->sum = pe_alloc(P ? (size_t)P : 1, sizeof *out->sum, 1, e))) return -1;
        return pe_profile_summary(prof, head_theta(r, t), r->in.train_len, (double)o->min_pairs, out->sum, e);
    }
    if (o->table == TABLE_SPECTRUM) { /* the in-train distances of the unbinned profile */
        size_t Dw = prof->n_dist < (size_t)r->in.train_len ? prof->n_dist : (size_t)r->in.train_len;
        out->n_power = o->spectrum_of >= 0 ? pe_spectrum_size(Dw) / 2 + 1 : 0;
        if (!(out->pur = pe_alloc(P ? (size_t)P : 1, sizeof *out->pur, 1, e))) return -1;
        if (out->n_power && !(out->power = pe_alloc(out->n_power, sizeof *out->power, 0, e))) return -1;
        return pe_profile_purity(prof, head_theta(r, t), r->in.train_len, o->spectrum_of, out->pur, out->power, e);
    }
    size_t nb = pe_bin_count(prof->n_dist, (size_t)o->bins);
    out->nb = nb;
    out->mean = pe_spare_take(&s->spare, ((size_t)P + 2) * nb, &out->mean_cap, e);
    out->npairs = pe_alloc(nb, sizeof(double), 0, e);
    if (!out->mean || !out->npairs) return -1;
    return pe_profile_bin(prof, nb, out->mean, out->npairs, r->pool, e);
}

static void pair_cells(pe_table *t, const pe_run *r, const double *theta, int i)
{
    pe_table_int(t, i);
    pe_table_dbl(t, theta[i]);
    pe_table_str(t, pe_class_name(pe_rope_classify(theta[i], r->in.train_len, &opts_of(r)->rule)));
}

/* The profile of a head: a series per pair, pass and total, of its bins,
 * formatted on every thread (pe_series.h). */
typedef struct profile_rows {
    const pe_run *r;
    const pe_task *t;
    const head_result *h;
    int series[1024 + 2]; /* the profile rows written, in order */
} profile_rows;

static void profile_prefix(pe_table *t, size_t si, void *ctx)
{
    const profile_rows *pr = ctx;
    const int P = pr->r->in.meta->n_pairs, row = pr->series[si];
    pe_run_row_start(t, pr->t);
    if (row < P) {
        pair_cells(t, pr->r, head_theta(pr->r, pr->t), row);
        return;
    }
    const char *name = row == P ? "pass" : "total";
    pe_table_str(t, name);
    pe_table_nan(t);
    pe_table_str(t, name);
}

static void profile_cells(pe_table *t, size_t si, size_t b, void *ctx)
{
    const profile_rows *pr = ctx;
    const size_t nb = pr->h->nb, nd = pr->r->in.n_dist;
    size_t lo = b, hi = b; /* every distance its own bin */
    if (nb != nd) pe_bin_range(nd, nb, b, &lo, &hi);
    pe_table_int(t, (long long)lo);
    pe_table_int(t, (long long)hi);
    pe_table_int(t, (long long)pr->h->npairs[b]);
    pe_table_dbl(t, pr->h->mean[(size_t)pr->series[si] * nb + b]);
}

static int emit_profile(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    const pe_meta *m = r->in.meta;
    head_result *h = res;
    state *s = r->state;
    profile_rows pr = {r, t, h, {0}};
    pe_series ser = {0, h->nb, profile_prefix, profile_cells, &pr};
    for (int row = 0; row < m->n_pairs + 2; row++)
        if (row != m->n_pairs || m->rotary_dim < m->head_dim) pr.series[ser.n_series++] = row;
    int rc = pe_series_write(r->table, r->pool, &ser, e);
    if (rc == 0) pe_spare_give(&s->spare, &h->mean, h->mean_cap); /* for a later head */
    pe_table_break(r->table, 2);
    return rc;
}

static int emit_summary(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    (void)e;
    const double *theta = head_theta(r, t);
    long L = r->in.train_len;
    pe_table *tb = r->table;
    for (int p = 0; p < r->in.meta->n_pairs; p++) {
        const pe_pair_summary *s = &((head_result *)res)->sum[p];
        pe_run_row_start(tb, t);
        pe_table_int(tb, p);
        pe_table_dbl(tb, theta[p]);
        pe_table_dbl(tb, pe_rope_wavelength(theta[p]));
        pe_table_dbl(tb, pe_rope_turns(theta[p], L));
        pe_table_str(tb, pe_class_name(pe_rope_classify(theta[p], L, &opts_of(r)->rule)));
        pe_table_dbl(tb, s->magnitude_share);
        pe_table_dbl(tb, s->lo_in);
        pe_table_dbl(tb, s->hi_in);
        pe_table_dbl(tb, s->value_ood);
        pe_table_dbl(tb, s->angle_ood);
        pe_table_dbl(tb, s->du);
        pe_table_int(tb, (long long)s->ood_distances);
        pe_table_end_row(tb);
    }
    pe_table_break(tb, 2);
    return 0;
}

static int emit_spectrum(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    (void)e;
    const head_result *h = res;
    const double *theta = head_theta(r, t);
    pe_table *tb = r->table;
    long of = opts_of(r)->spectrum_of;
    size_t N = h->n_power ? (h->n_power - 1) * 2 : 0;
    for (size_t k = 0; of >= 0 && k < h->n_power; k++) {
        pe_run_row_start(tb, t);
        pe_table_int(tb, of);
        pe_table_int(tb, (long long)k);
        pe_table_dbl(tb, (double)k / (double)N);
        pe_table_dbl(tb, h->power[k]);
        pe_table_end_row(tb);
    }
    for (int p = 0; of < 0 && p < r->in.meta->n_pairs; p++) {
        const pe_purity *u = &h->pur[p];
        pe_run_row_start(tb, t);
        pair_cells(tb, r, theta, p);
        pe_table_dbl(tb, u->peak_freq);
        pe_table_dbl(tb, u->line_freq);
        pe_table_dbl(tb, u->purity);
        pe_table_dbl(tb, u->leakage);
        pe_table_dbl(tb, u->dc);
        pe_table_end_row(tb);
    }
    pe_table_break(tb, 2);
    return 0;
}

/* ---- usage and dims: the tensor's head from every file, summed ---- */

static int work_usage(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    const pe_meta *m = r->in.meta;
    head_result *out = res;
    if (pe_usage_init(&out->use, m->n_pairs, m->head_dim, e) < 0) return -1;
    for (size_t f = 0; f < r->in.n; f++) {
        const pe_meta *mf = pe_dump_meta(r->in.dumps[f]);
        const double *x = pe_run_read(r, t, f, t->tensor, t->head, 0, 0, e);
        if (!x) return -1;
        pe_geom g = pe_run_geom(r, f, pe_run_slot(r, f, t->lj));
        pe_usage_add(&out->use, x, mf->T, &g);
    }
    return 0;
}

static int emit_usage(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    (void)e;
    const pe_usage *u = &((head_result *)res)->use;
    const double *theta = head_theta(r, t);
    pe_table *tb = r->table;
    double total = 0;
    for (int p = 0; p < u->n_pairs; p++) total += u->norm_sum[p];
    for (int p = 0; p < u->n_pairs; p++) {
        pe_run_row_start(tb, t);
        pe_table_str(tb, t->tensor == PE_TENSOR_Q ? "q" : "k");
        pair_cells(tb, r, theta, p);
        pe_table_dbl(tb, u->norm_sum[p] / u->tokens);
        pe_table_dbl(tb, total > 0 ? u->norm_sum[p] / total : NAN);
        pe_table_end_row(tb);
    }
    pe_table_break(tb, 2);
    return 0;
}

static int emit_dims(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    (void)e;
    const pe_usage *u = &((head_result *)res)->use;
    pe_geom g = pe_run_geom(r, 0, pe_run_slot(r, 0, t->lj));
    pe_table *tb = r->table;
    for (int d = 0; d < u->head_dim; d++) {
        int pair = pe_usage_pair_of(&g, d);
        pe_run_row_start(tb, t);
        pe_table_str(tb, t->tensor == PE_TENSOR_Q ? "q" : "k");
        pe_table_int(tb, d);
        if (pair >= 0)
            pe_table_int(tb, pair);
        else
            pe_table_str(tb, "pass");
        pe_table_dbl(tb, u->dim_sum[d] / u->tokens);
        pe_table_dbl(tb, u->dim_abs[d] / u->tokens);
        pe_table_end_row(tb);
    }
    pe_table_break(tb, 2);
    return 0;
}

/* ---- the comment lines and the memory of the per-head tables ---- */

static int prepare_heads(pe_run *r, pe_err *e)
{
    const decomp_opts *o = opts_of(r);
    state *s = pe_alloc(1, sizeof *s, 1, e);
    if (!s) return -1;
    pe_spare_init(&s->spare);
    r->state = s;
    if (o->spectrum_of >= r->in.meta->n_pairs)
        return pe_fail_usage(e, "--spectrum-of: pair %ld does not exist (the files have %d pairs)", o->spectrum_of,
                             r->in.meta->n_pairs);
    int uses_profile = o->table == TABLE_PROFILE || o->table == TABLE_SUMMARY || o->table == TABLE_SPECTRUM;
    for (size_t f = 0; f < r->in.n; f++)
        if (!pe_dump_meta(r->in.dumps[f])->contiguous && o->method == PE_METHOD_FFT && uses_profile && !r->c.quiet)
            fprintf(stderr, "%s: %s: positions are not contiguous; using the direct O(T^2) sum\n", PROG, r->files[f]);
    return 0;
}

static void meta_heads(pe_run *r)
{
    const decomp_opts *o = opts_of(r);
    const pe_meta *m = r->in.meta;
    int gappy = 0;
    for (size_t f = 0; f < r->in.n; f++) gappy |= !pe_dump_meta(r->in.dumps[f])->contiguous;
    pe_run_meta_geometry(r, NULL);
    size_t Dw = r->in.n_dist < (size_t)r->in.train_len ? r->in.n_dist : (size_t)r->in.train_len;
    if (o->table == TABLE_SUMMARY)
        pe_table_meta(r->table, "min_pairs", "%ld (value_ood over the distances >= L with at least so many pairs)",
                      o->min_pairs);
    if (o->table == TABLE_SPECTRUM)
        pe_table_meta(r->table, "window", "distances 0..%zu (min(Dmax + 1, L) - 1), Hann, %zu-point FFT", Dw - 1,
                      pe_spectrum_size(Dw));
    if (o->table != TABLE_PROFILE) return;
    pe_table_meta(r->table, "bins", "%ld", o->bins);
    pe_table_meta(r->table, "method", "%s", o->method == PE_METHOD_DIRECT ? "direct"
                                            : gappy ? "fft (direct for non-contiguous positions)"
                                                    : "fft");
    if (m->attn_softcap > 0) pe_table_meta(r->table, "note", "mean_logit is before the softcap %.9g", m->attn_softcap);
}

/* One head's q and k in double (and the next q being read), the profile,
 * each thread's gather columns and FFT buffers, the units' shares of the
 * total, and the rows of a head waiting to be written. */
static double memory_need(pe_run *r)
{
    const decomp_opts *o = opts_of(r);
    const pe_meta *m = r->in.meta;
    double T = (double)r->T_max, P = m->n_pairs, D = m->head_dim, nd = (double)r->in.n_dist;
    double need = 2 * T * D * 8;
    if (r->in.n == 1 && r->jobs > 1 && T * D * 8 <= 64.0 * (1 << 20)) need += T * D * 8;
    if (o->table != TABLE_USAGE && o->table != TABLE_DIMS) {
        need += pe_profile_bytes(m->n_pairs, m->rotary_dim < m->head_dim, r->in.n_dist, r->T_max, r->jobs);
        need += (P + 2) * (o->bins ? fmin((double)o->bins, nd) : nd) * 8 * 2; /* a head's rows */
    }
    return need;
}

static void cleanup(pe_run *r)
{
    state *s = r->state;
    decomp_opts *o = r->opts;
    pe_whatif_free(o->scale); /* when a usage error came before the run took it */
    o->scale = NULL;
    if (!s) return;
    pe_profile_free(&s->prof);
    pe_spare_free(&s->spare);
    free(s->theta_cli);
    free(s->scaled);
    free(s);
    r->state = NULL;
}

/* ---- freqs: the geometry, and the what-if computed before anything is
 * written, so that a scaling the rotary dims do not allow is an error, not
 * half a table ---- */

static int prepare_freqs(pe_run *r, pe_err *e)
{
    const decomp_opts *o = opts_of(r);
    const pe_whatif *w = r->specs[0];
    state *s = pe_alloc(1, sizeof *s, 1, e);
    if (!s) return -1;
    pe_spare_init(&s->spare);
    r->state = s;
    pe_freqs_model *fm = &s->fm;
    fm->train_len = r->n_files ? r->in.train_len : r->c.train_len;
    fm->base = r->n_files ? r->in.meta->rope_theta : o->rope_theta;
    if (r->n_files) {
        /* One selected layer: its own frequencies; else the file's. */
        fm->theta = r->c.layers && r->in.n_layers == 1 ? pe_run_theta(r, 0) : r->in.meta->theta;
        fm->rotary_dim = r->in.meta->rotary_dim;
        fm->file = r->in.meta;
        fm->path = r->files[0];
    } else {
        fm->rotary_dim = (int)o->rotary_dim;
        if (!(s->theta_cli = pe_alloc(o->rotary_dim > 1 ? (size_t)o->rotary_dim / 2 : 1, sizeof(double), 0, e)))
            return -1;
        pe_rope_default_theta(o->rope_theta, (int)o->rotary_dim, s->theta_cli);
        fm->theta = s->theta_cli;
    }
    if (pe_whatif_is_rope(w)) {
        r->ncol = 6;
        return 0;
    }
    const char *opt = o->scale_moved ? "--scale" : "--pe";
    if (pe_whatif_per_head(w))
        return pe_fail_usage(e, "%s '%.200s': -t freqs has one row per pair of the model, and dope changes single "
                                "heads: see their frequencies in -t summary --pe",
                             opt, w->text);
    if (!(s->scaled = pe_alloc(fm->rotary_dim > 1 ? (size_t)fm->rotary_dim / 2 : 1, sizeof *s->scaled, 0, e)))
        return -1;
    return pe_freqs_whatif(fm, w, opt, s->scaled, &s->info, e);
}

static int finish_freqs(pe_run *r, pe_err *e)
{
    (void)e;
    const decomp_opts *o = opts_of(r);
    const state *s = r->state;
    const pe_freqs_model *fm = &s->fm;
    pe_table *t = r->table;
    long L = fm->train_len;
    pe_table_meta(t, "rope_theta", "%.17g", fm->base);
    if (s->scaled)
        pe_table_meta(t, "scale", "%s (target length %ld, base %.9g, attention factor %.9g)", r->spec_names[0],
                      s->info.target_len, s->info.base_scaled, s->info.attn_factor);
    pe_table_meta(t, "train_len", "%ld", L);
    pe_table_meta(t, "rotary_dim", "%d", fm->rotary_dim);
    for (int i = 0; i < fm->rotary_dim / 2; i++) {
        double th = fm->theta[i];
        pe_table_int(t, i);
        pe_table_dbl(t, th);
        pe_table_dbl(t, pe_rope_wavelength(th));
        pe_table_dbl(t, pe_rope_turns(th, L));
        pe_table_dbl(t, (double)(L - 1) * th);
        pe_table_str(t, pe_class_name(pe_rope_classify(th, L, &o->rule)));
        if (s->scaled) {
            long Lt = s->info.target_len;
            pe_table_dbl(t, s->scaled[i]);
            pe_table_dbl(t, pe_rope_turns(s->scaled[i], Lt));
            pe_table_str(t, pe_class_name(pe_rope_classify(s->scaled[i], Lt, &o->rule)));
        }
        pe_table_end_row(t);
    }
    return 0;
}

/* ---- --check: each file alone (pe_check.h) ---- */

static int prepare_check(pe_run *r, pe_err *e)
{
    return pe_check_selection(r->each, r->files, r->n_files, &r->c, e);
}

static int finish_check(pe_run *r, pe_err *e)
{
    return pe_check_files(r->table, r->each, r->files, r->n_files, &r->c, &r->found, e);
}

/* ---- the tables ---- */

#define HEAD_COLS {"layer", "block"}, {"head", "block"}, {"kv_head", "key"}
#define PAIR_COLS {"component", "key"}, {"theta", "key"}, {"class", "key"}
#define FIXED(name) {name, "fixed"}
static const pe_column profile_cols[] = {HEAD_COLS,          PAIR_COLS,         {"delta_lo", "lo"},
                                         {"delta_hi", "hi"}, {"n_pairs", "sum"}, {"mean_logit", "mean(n_pairs)"}};
static const pe_column summary_cols[] = {HEAD_COLS,           {"component", "key"},      {"theta", "key"},
                                         {"wavelength", "key"}, {"rho", "key"},            {"class", "key"},
                                         FIXED("magnitude_share"), FIXED("lo_in"),          FIXED("hi_in"),
                                         FIXED("value_ood"),  FIXED("angle_ood"),        FIXED("du"),
                                         FIXED("ood_distances")};
static const pe_column spectrum_cols[] = {HEAD_COLS,         PAIR_COLS,         FIXED("peak_freq"), FIXED("line_freq"),
                                          FIXED("purity"),   FIXED("leakage"),  FIXED("dc")};
static const pe_column power_cols[] = {HEAD_COLS, {"component", "key"}, {"bin", "key"}, {"freq", "key"}, FIXED("power")};
static const pe_column usage_cols[] = {{"layer", "block"}, {"head", "block"}, {"kv_head", "key"},
                                       {"tensor", "block(q,k)"}, PAIR_COLS, {"norm_mean", "mean(tokens)"},
                                       {"share", "share(norm_mean)"}};
static const pe_column dims_cols[] = {{"layer", "block"}, {"head", "block"},        {"kv_head", "key"},
                                      {"tensor", "block(q,k)"}, {"dim", "key"},      {"pair", "key"},
                                      {"mean", "mean(tokens)"}, {"abs_mean", "mean(tokens)"}};
static const pe_column freqs_cols[] = {{"component", "key"},    {"theta", "key"},        {"wavelength", "key"},
                                       {"rho", "key"},          {"max_angle_train", "key"}, {"class", "key"},
                                       {"theta_scaled", "key"}, {"rho_scaled", "key"},   {"class_scaled", "key"}};
static const pe_column check_cols[] = {{"file", "block"},  {"layer", "block"},  {"tensor", "block(q,k)"},
                                       FIXED("dtype"),     FIXED("heads"),      FIXED("max_abs_diff"),
                                       FIXED("rel_diff"),  FIXED("tolerance"), FIXED("status")};
#define COLS(a) a, (int)(sizeof a / sizeof a[0])
#define ONE PE_TABLE_ONE_HEAD
static const pe_table_def tables[] = {
    [TABLE_PROFILE] = {"profile", COLS(profile_cols), ONE, sizeof(head_result), prepare_heads, memory_need,
                       meta_heads, work_head, emit_profile, NULL, result_free},
    [TABLE_SUMMARY] = {"summary", COLS(summary_cols), ONE | PE_TABLE_NEEDS_L, sizeof(head_result), prepare_heads,
                       memory_need, meta_heads, work_head, emit_summary, NULL, result_free},
    [TABLE_SPECTRUM] = {"spectrum", COLS(spectrum_cols), ONE | PE_TABLE_NEEDS_L, sizeof(head_result), prepare_heads,
                        memory_need, meta_heads, work_head, emit_spectrum, NULL, result_free},
    [TABLE_USAGE] = {"usage", COLS(usage_cols), ONE | PE_TABLE_KEY_TASKS, sizeof(head_result), prepare_heads,
                     memory_need, meta_heads, work_usage, emit_usage, NULL, result_free},
    [TABLE_DIMS] = {"dims", COLS(dims_cols), ONE | PE_TABLE_KEY_TASKS, sizeof(head_result), prepare_heads,
                    memory_need, meta_heads, work_usage, emit_dims, NULL, result_free},
    [TABLE_FREQS] = {"freqs", COLS(freqs_cols), PE_TABLE_NEEDS_L | PE_TABLE_NO_TASKS | PE_TABLE_NO_FILES, 0,
                     prepare_freqs, NULL, NULL, NULL, NULL, finish_freqs, NULL},
    [TABLE_CHECK] = {"check", COLS(check_cols), PE_TABLE_EACH_FILE | PE_TABLE_NO_TASKS, 0, prepare_check, NULL, NULL,
                     NULL, NULL, finish_check, NULL},
};
static const pe_table_def power_table = {"power", COLS(power_cols), ONE | PE_TABLE_NEEDS_L, sizeof(head_result),
                                         prepare_heads, memory_need, meta_heads, work_head, emit_spectrum, NULL,
                                         result_free};

static const pe_table_def *table_of(const void *opts)
{
    const decomp_opts *o = opts;
    if (o->check) return &tables[TABLE_CHECK];
    if (o->spectrum_of >= 0) return &power_table;
    return &tables[o->table];
}

/* What the command line alone tells. */
static int check(pe_run *r, pe_err *e)
{
    const decomp_opts *o = r->opts;
    size_t n_files = r->n_files;
    if (o->rule.act_turns > o->rule.hf_turns)
        return pe_fail_usage(e, "--act-turns %g is above --hf-turns %g", o->rule.act_turns, o->rule.hf_turns);
    if (n_files == 0 && !(o->table == TABLE_FREQS && o->rotary_dim >= 0))
        return pe_fail_usage(e, "no input file (see %s --help)", PROG);
    if (n_files > 0 && o->rotary_dim >= 0) return pe_fail_usage(e, "--rotary-dim: only for -t freqs without an input file");
    if (n_files > 0 && o->rope_theta_given) return pe_fail_usage(e, "--rope-theta: only for -t freqs without an input file");
    if (o->rotary_dim >= 0 && o->rotary_dim % 2) return pe_fail_usage(e, "--rotary-dim: must be even (got %ld)", o->rotary_dim);
    if (n_files == 0 && r->c.train_len <= 0) return pe_fail_usage(e, "-t freqs needs the training length: give --train-len");
    if (o->scale && o->table != TABLE_FREQS) return pe_fail_usage(e, "--scale: only for -t freqs (see --pe)");
    if (o->scale && r->c.n_pe) return pe_fail_usage(e, "--scale is the old name of --pe: give one of them");
    if (o->check && (o->table != TABLE_PROFILE || o->scale || r->c.n_pe))
        return pe_fail_usage(e, "--check: writes its own table; leave out -t, --scale and --pe");
    if (o->scale) { /* from here on, the run's spec */
        if (!(r->c.pe = pe_alloc(1, sizeof *r->c.pe, 0, e))) return -1;
        r->c.pe[0] = o->scale;
        r->c.n_pe = 1;
        ((decomp_opts *)r->opts)->scale = NULL;
        ((decomp_opts *)r->opts)->scale_moved = 1;
    }
    if (o->spectrum_of >= 0 && o->table != TABLE_SPECTRUM) return pe_fail_usage(e, "--spectrum-of: only for -t spectrum");
    if (o->seen_min_pairs && o->table != TABLE_SUMMARY) return pe_fail_usage(e, "--min-pairs: only for -t summary");
    return 0;
}

static const pe_tool_def tool = {{PROG, "[OPTION]... FILE...", "Split attention logits of qkdump files into RoPE frequency components.", decomp_options, epilog, pe_run_libraries, "--check found a mismatch", handle_option},
                                  table_of, check, cleanup};

int main(int argc, char **argv)
{
    decomp_opts o = {.table = TABLE_PROFILE, .bins = 512, .method = PE_METHOD_FFT, .rule = PE_CLASS_RULE_DEFAULT,
                     .rotary_dim = -1, .rope_theta = 10000.0, .spectrum_of = -1, .min_pairs = 256};
    return pe_run_main(argc, argv, &tool, &o);
}
