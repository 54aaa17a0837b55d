/* peanalyze: attention patterns against distance in qkdump files, and what
 * changes beyond the training length (man peanalyze(1)).
 *
 * Tables: profile (mean logit, probability and (m+1) p against distance),
 * heads (sink mass, entropy, U-score and logit exceedance in and beyond L,
 * the OOD flag), layers (the damage by depth), heatmap (the probabilities
 * of one head on a window of rows), loss (the model's recorded loss against
 * position, the ground truth).  --fail-on ood|ushape turns a finding into
 * exit status 3 for CI.  The run itself is pe_run's. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe_attn.h"
#include "pe_attn_walk.h"
#include "pe_curve.h"
#include "pe_lab.h"
#include "pe_run.h"
#include "pe_truth.h"

#define PROG "peanalyze"

typedef enum { TABLE_PROFILE = 0, TABLE_HEADS, TABLE_LAYERS, TABLE_HEATMAP, TABLE_LOSS, TABLE_WHATIF } table_kind;
static const char *const table_names[] = {"profile", "heads", "layers", "heatmap", "loss", "whatif", NULL};
/* -t whatif without --pe: the papers' remedies at a factor of 4. */
static const char *const default_whatifs[] = {"pi:4", "ntk:4", "yarn:4", "dynamic:4", "clip", "logn"};

enum {
    OPT_BINS = PE_OPT_TOOL,
    OPT_ROWS,
    OPT_SINK,
    OPT_MARGIN,
    OPT_EXCEED,
    OPT_UNSEEN,
    OPT_ENTROPY,
    OPT_SINK_T,
    OPT_U,
    OPT_FAIL_ON,
    OPT_HEAD,
    OPT_WINDOW,
    OPT_PIXELS,
    OPT_BLOCK
};

enum { FAIL_OOD = 1, FAIL_USHAPE = 2 };

typedef struct analyze_opts {
    int table;
    long bins;
    long rows;        /* 0 = every row */
    long sink_tokens;
    double margin;
    pe_attn_thresholds thr;
    double u_threshold;
    int fail_on;      /* FAIL_* bits */
    long head;        /* heatmap */
    long m0, m1;      /* heatmap window; m1 == 0: the default */
    long pixels;
    long block;       /* 0 = default */
    int seen_rows, seen_head, seen_window, seen_pixels, seen_bins;
} analyze_opts;

static const pe_option analyze_options[] = {
    {"table", 't', "NAME", "profile (default), heads, layers, heatmap, loss or whatif"},
    {"bins", OPT_BINS, "B", "profile: distance bins (default 512; 0 = every distance); loss: position bins (default 16)"},
    {"rows", OPT_ROWS, "N", "evaluate N evenly spaced query rows per file (default all)"},
    {"sink-tokens", OPT_SINK, "S", "sink mass: attention on the first S tokens (default 1)"},
    {"margin", OPT_MARGIN, "X", "exceedance band: in-train logit range +- X times its width (default 0.05)"},
    {"unseen-threshold", OPT_UNSEEN, "X", "ood when the unseen-distance mass beyond L is above X (default 0.05)"},
    {"exceed-threshold", OPT_EXCEED, "X", "ood when the exceedance is above X (default 0.01)"},
    {"entropy-threshold", OPT_ENTROPY, "X", "also ood when |entropy_beyond - entropy_in| > X (default: off)"},
    {"sink-threshold", OPT_SINK_T, "X", "also ood when |sink_beyond - sink_in| > X (default: off)"},
    {"u-threshold", OPT_U, "X", "label u-shape when the U-score >= X (default 0.1)"},
    {"fail-on", OPT_FAIL_ON, "WHAT", "exit 3 when a head is flagged: ood, ushape or ood,ushape"},
    {"head", OPT_HEAD, "H", "heatmap: the query head (default 0)"},
    {"window", OPT_WINDOW, "M0:M1", "heatmap: query rows M0..M1-1 (default the last 256)"},
    {"pixels", OPT_PIXELS, "N", "heatmap: at most N key columns (default 512)"},
    {"block", OPT_BLOCK, "N", "query rows per block (default: a 16 MiB buffer); the output is the same"},
    {NULL, 0, NULL, NULL}};

/* The text after the option list of --help. */
static const char epilog[] =
    "Several FILEs are pooled: each mean is a sum over all files divided by\n"
    "the total count.  Rows with position p < L are in-train, the others beyond.\n"
    "A head is ood when its exceedance, entropy shift or sink shift passes its\n"
    "threshold.\n";

static int parse_fail_on(const char *arg, int *out, pe_err *e)
{
    static const char *const names[] = {"ood", "ushape", NULL};
    char item[64];
    const char *p = arg;
    *out = 0;
    if (!*arg) return pe_fail_usage(e, "--fail-on: empty (one of: ood, ushape)");
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int v;
        if (len >= sizeof item) len = sizeof item - 1;
        memcpy(item, p, len);
        item[len] = '\0';
        if (pe_parse_choice("--fail-on", item, names, &v, e) < 0) return -1;
        *out |= v == 0 ? FAIL_OOD : FAIL_USHAPE;
        if (!comma) return 0;
        p = comma + 1;
    }
}

static int parse_window(const char *arg, long *m0, long *m1, pe_err *e)
{
    const char *colon = strchr(arg, ':');
    char a[64];
    if (!colon || (size_t)(colon - arg) >= sizeof a)
        return pe_fail_usage(e, "--window: '%s' is not M0:M1 (query rows M0 to M1-1)", arg);
    memcpy(a, arg, (size_t)(colon - arg));
    a[colon - arg] = '\0';
    if (pe_parse_long("--window", a, 0, LONG_MAX / 4, m0, e) < 0 ||
        pe_parse_long("--window", colon + 1, 1, LONG_MAX / 4, m1, e) < 0)
        return -1;
    if (*m0 >= *m1) return pe_fail_usage(e, "--window: %s is empty (M0 must be below M1)", arg);
    return 0;
}

static int handle_option(int key, const char *arg, void *ctx, pe_err *e)
{
    analyze_opts *o = ctx;
    switch (key) {
    case 't': return pe_parse_choice("--table", arg, table_names, &o->table, e);
    case OPT_BINS:
        o->seen_bins = 1;
        return pe_parse_long("--bins", arg, 0, 1L << 40, &o->bins, e);
    case OPT_ROWS:
        o->seen_rows = 1;
        return pe_parse_long("--rows", arg, 1, 1L << 40, &o->rows, e);
    case OPT_SINK: return pe_parse_long("--sink-tokens", arg, 0, 1L << 40, &o->sink_tokens, e);
    case OPT_MARGIN: return pe_parse_double("--margin", arg, 0, 1e6, &o->margin, e);
    case OPT_EXCEED: return pe_parse_double("--exceed-threshold", arg, 0, 1, &o->thr.exceed, e);
    case OPT_UNSEEN: return pe_parse_double("--unseen-threshold", arg, 0, 1, &o->thr.unseen, e);
    case OPT_ENTROPY: return pe_parse_double("--entropy-threshold", arg, 0, 1, &o->thr.entropy, e);
    case OPT_SINK_T: return pe_parse_double("--sink-threshold", arg, 0, 1, &o->thr.sink, e);
    case OPT_U: return pe_parse_double("--u-threshold", arg, 0, 1, &o->u_threshold, e);
    case OPT_FAIL_ON: return parse_fail_on(arg, &o->fail_on, e);
    case OPT_HEAD:
        o->seen_head = 1;
        return pe_parse_long("--head", arg, 0, 1000000L, &o->head, e);
    case OPT_WINDOW:
        o->seen_window = 1;
        return parse_window(arg, &o->m0, &o->m1, e);
    case OPT_PIXELS:
        o->seen_pixels = 1;
        return pe_parse_long("--pixels", arg, 1, 1L << 20, &o->pixels, e);
    case OPT_BLOCK: return pe_parse_long("--block", arg, 1, 1L << 24, &o->block, e);
    default: return pe_fail_usage(e, "unknown option");
    }
}


/* ---- per-head tables: profile, heads, layers ---- */

#define PROF_COLS 5 /* n_pairs, mean_logit, mean_prob, mean_prob_u, last_prob */
/* The per-token diagnostics of -t loss, in the order of pe_attn_rows. */
#define N_DIAG 4
static const char *const diag_names[N_DIAG] = {"unseen_mass", "entropy_nats", "sink_mass", "exceedance"};

typedef struct head_result {
    size_t nb;
    double *prof; /* PROF_COLS x nb */
    double *rows; /* loss: N_DIAG x the tokens of every file (pe_attn_rows) */
    pe_attn_stats st;
    int ood;
    pe_attn_acc *acc; /* while the head is worked on */
} head_result;

#define LAYER_MEANS 7

typedef struct state {
    pe_attn_work **work; /* one per thread */
    /* the layers table, filled as heads are emitted: the heads, the flagged
     * ones, and per column of layer_means the sum and count of its values */
    long heads, ood, n[LAYER_MEANS];
    double sum[LAYER_MEANS];
    /* --fail-on */
    size_t n_ood, n_ushape;
    const pe_task *first_ood, *first_ushape;
    size_t done;
    /* loss */
    const char *no_control; /* a file without the control, or NULL */
    size_t *off, total;     /* per file, where its tokens start among all */
    double *layer_sum;      /* N_DIAG x total: the current layer's heads summed */
    double *diag;           /* layers x N_DIAG x total: per token, the mean over the layer's heads */
    pe_column *cols;        /* the table's columns: 6, then N_DIAG per layer */
    char (*names)[48];
    /* whatif */
    pe_attn_work **work2;   /* a second work per thread (the divergence) */
    double *wsum;           /* layers x specs x PE_LAB_SUMS */
} state;

static const analyze_opts *opts_of(const pe_run *r)
{
    return r->opts;
}

static pe_attn_params params_of(const pe_run *r, const pe_meta *m)
{
    const analyze_opts *o = opts_of(r);
    pe_attn_params p = {m->attn_scale, m->attn_softcap, r->in.train_len, (size_t)o->sink_tokens, o->margin,
                        (size_t)o->block};
    return p;
}

static void result_free(void *res)
{
    head_result *h = res;
    free(h->prof);
    free(h->rows);
    memset(h, 0, sizeof *h);
}

static int prepare_heads(pe_run *r, pe_err *e)
{
    state *s = pe_alloc(1, sizeof *s, 1, e);
    if (!s) return -1;
    r->state = s;
    if (!(s->work = pe_alloc((size_t)r->jobs, sizeof *s->work, 1, e))) return -1;
    for (int j = 0; j < r->jobs; j++)
        if (!(s->work[j] = pe_attn_work_new(e))) return -1;
    return 0;
}

/* One file of a head (pe_attn_walk: in-train rows of all files first). */
static int visit_head(pe_run *r, const pe_task *t, size_t f, pe_attn_phase ph, pe_attn_seq *s, void *ctx, pe_err *e)
{
    state *st = r->state;
    head_result *out = ctx;
    pe_attn_rows ro;
    (void)t;
    if (!s) return 0;
    if (out->rows) {
        double *b = out->rows + st->off[f];
        ro = (pe_attn_rows){b, b + st->total, b + 2 * st->total, b + 3 * st->total};
        s->out = &ro;
    }
    pe_attn_params p = params_of(r, pe_dump_meta(r->in.dumps[f]));
    return pe_attn_add(out->acc, s, &p, ph, st->work[pe_pool_worker()], e);
}

/* One (layer, head) over every pooled file. */
static int work_head(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    const analyze_opts *o = opts_of(r);
    state *st = r->state;
    head_result *out = res;
    pe_attn_acc acc;
    int rc = -1;

    if (pe_attn_init(&acc, r->in.n_dist, e) < 0) return -1;
    out->acc = &acc;
    if (o->table == TABLE_LOSS) {
        size_t n = N_DIAG * st->total;
        if (!(out->rows = pe_alloc(n, sizeof *out->rows, 0, e))) goto done;
        for (size_t i = 0; i < n; i++) out->rows[i] = NAN;
    }
    int two = r->in.n > 1 && r->in.train_len > 0;
    if (pe_attn_walk(r, t, PE_READ_ROTATED, o->rows, two, visit_head, out, e) < 0) goto done;
    pe_attn_summary(&acc, &out->st);
    out->ood = pe_attn_ood(&out->st, &o->thr);
    if (o->table == TABLE_PROFILE) {
        size_t nd = acc.n_dist, nb = pe_bin_count(nd, (size_t)o->bins);
        out->nb = nb;
        if (!(out->prof = pe_alloc(PROF_COLS * (nb ? nb : 1), sizeof(double), 0, e))) goto done;
        for (size_t b = 0; b < nb; b++) {
            size_t lo, hi;
            double n = 0;
            pe_bin_range(nd, nb, b, &lo, &hi);
            for (size_t d = lo; d <= hi; d++) n += acc.count[d];
            out->prof[b] = n;
            out->prof[nb + b] = pe_bin_mean(acc.logit, acc.count, lo, hi);
            out->prof[2 * nb + b] = pe_bin_mean(acc.prob, acc.count, lo, hi);
            out->prof[3 * nb + b] = pe_bin_mean(acc.prob_u, acc.count, lo, hi);
            out->prof[4 * nb + b] = pe_bin_mean(acc.last, acc.last_count, lo, hi);
        }
    }
    rc = 0;
done:
    out->acc = NULL;
    pe_attn_free(&acc);
    return rc;
}

/* Counts the flags for --fail-on (every per-head table). */
static void note_flags(pe_run *r, const pe_task *t, const head_result *h)
{
    state *st = r->state;
    if (h->ood && st->n_ood++ == 0) st->first_ood = t;
    if (h->st.u_in >= opts_of(r)->u_threshold && st->n_ushape++ == 0) st->first_ushape = t;
    st->done++;
}

static int emit_profile(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    (void)e;
    head_result *h = res;
    pe_table *tb = r->table;
    note_flags(r, t, h);
    for (size_t b = 0; b < h->nb; b++) {
        size_t lo, hi;
        pe_bin_range(r->in.n_dist, h->nb, b, &lo, &hi);
        pe_run_row_start(tb, t);
        pe_table_int(tb, (long long)lo);
        pe_table_int(tb, (long long)hi);
        pe_table_int(tb, (long long)h->prof[b]);
        for (int c = 1; c < PROF_COLS; c++) pe_table_dbl(tb, h->prof[(size_t)c * h->nb + b]);
        pe_table_end_row(tb);
    }
    pe_table_break(tb, 1);
    pe_table_break(tb, 2);
    return 0;
}

static int emit_heads(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    (void)e;
    const head_result *h = res;
    const pe_attn_stats *s = &h->st;
    double ut = opts_of(r)->u_threshold;
    pe_table *tb = r->table;
    note_flags(r, t, h);
    pe_run_row_start(tb, t);
    pe_table_int(tb, (long long)s->rows_in);
    pe_table_int(tb, (long long)s->rows_beyond);
    pe_table_dbl(tb, s->sink_in);
    pe_table_dbl(tb, s->sink_beyond);
    pe_table_dbl(tb, s->entropy_in);
    pe_table_dbl(tb, s->entropy_beyond);
    pe_table_dbl(tb, s->u_in);
    pe_table_str(tb, pe_u_label(s->u_in, s->near_gt_far_in, ut));
    pe_table_dbl(tb, s->u_all);
    pe_table_str(tb, pe_u_label(s->u_all, s->near_gt_far_all, ut));
    pe_table_dbl(tb, s->exceedance);
    pe_table_int(tb, h->ood);
    pe_table_dbl(tb, s->unseen);
    pe_table_dbl(tb, s->nats_in);
    pe_table_dbl(tb, s->nats_beyond);
    pe_table_dbl(tb, s->sink_ratio);
    pe_table_end_row(tb);
    if (pe_run_last_of_layer(r, t)) pe_table_break(tb, 2);
    return 0;
}

/* The per-head values the layers table averages (NaN left out), in the
 * order of its columns after ood_heads. */
static void layer_values(const pe_attn_stats *s, double *v)
{
    v[0] = fabs(s->entropy_beyond - s->entropy_in);
    v[1] = fabs(s->sink_beyond - s->sink_in);
    v[2] = s->exceedance;
    v[3] = s->unseen;
    v[4] = s->nats_in;
    v[5] = s->nats_beyond;
    v[6] = s->sink_ratio;
}

static int emit_layers(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    (void)e;
    const head_result *h = res;
    state *a = r->state;
    double v[LAYER_MEANS];
    note_flags(r, t, h);
    layer_values(&h->st, v);
    a->heads++;
    a->ood += h->ood;
    for (int i = 0; i < LAYER_MEANS; i++)
        if (!isnan(v[i])) {
            a->sum[i] += v[i];
            a->n[i]++;
        }
    if (!pe_run_last_of_layer(r, t)) return 0;
    pe_table *tb = r->table;
    pe_table_int(tb, t->layer);
    pe_table_int(tb, a->heads);
    pe_table_int(tb, a->ood);
    for (int i = 0; i < LAYER_MEANS; i++) pe_table_dbl(tb, a->n[i] > 0 ? a->sum[i] / (double)a->n[i] : NAN);
    pe_table_end_row(tb);
    a->heads = a->ood = 0;
    memset(a->sum, 0, sizeof a->sum);
    memset(a->n, 0, sizeof a->n);
    return 0;
}

/* --fail-on: the whole table is written, then status 3. */
static int finish_heads(pe_run *r, pe_err *e)
{
    (void)e;
    const analyze_opts *o = opts_of(r);
    const state *st = r->state;
    int found_ood = (o->fail_on & FAIL_OOD) && st->n_ood, found_u = (o->fail_on & FAIL_USHAPE) && st->n_ushape;
    if (!found_ood && !found_u) return 0;
    const pe_task *t = found_ood ? st->first_ood : st->first_ushape;
    if (!r->c.quiet)
        fprintf(stderr, "%s: --fail-on %s: %zu of %zu heads %s (the first: layer %ld head %d)\n", PROG,
                found_ood ? "ood" : "ushape", found_ood ? st->n_ood : st->n_ushape, r->n_tasks,
                found_ood ? "are flagged ood" : "have u_in >= --u-threshold", t->layer, t->head);
    r->found = 1;
    return 0;
}

static void meta_common(pe_run *r)
{
    const analyze_opts *o = opts_of(r);
    pe_run_meta_geometry(r, " (logits are capped before the softmax; mean_logit is after the cap)");
    if (o->rows > 0)
        pe_table_meta(r->table, "rows", "%ld evenly spaced query rows per file (all when T <= %ld)", o->rows, o->rows);
    else
        pe_table_meta(r->table, "rows", "all");
    pe_table_meta(r->table, "sink_tokens", "%ld", o->sink_tokens);
    if (o->table == TABLE_PROFILE) {
        pe_table_meta(r->table, "bins", "%ld", o->bins);
        return;
    }
    /* 15 digits: the options as typed (0.1, not 0.10000000000000001). */
    pe_table_meta(r->table, "margin", "%.15g", o->margin);
    char extra[128] = "";
    if (o->thr.entropy >= 0) snprintf(extra, sizeof extra, ", |entropy shift| > %.15g", o->thr.entropy);
    if (o->thr.sink >= 0)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", |sink shift| > %.15g", o->thr.sink);
    pe_table_meta(r->table, "thresholds", "unseen mass > %.15g, exceedance > %.15g%s, u-shape at U >= %.15g",
                  o->thr.unseen, o->thr.exceed, extra, o->u_threshold);
}

/* What a run holds at its peak.  Per thread: one head's rotated q and k in
 * double, the block of logits, the accumulators per distance; for the
 * profile every head's binned rows; for the heat map its window of pixels. */
static double memory_need(pe_run *r)
{
    const analyze_opts *o = opts_of(r);
    double T = (double)r->T_max, D = r->in.meta->head_dim, nd = (double)r->in.n_dist;
    size_t block = o->block ? (size_t)o->block : pe_attn_default_block(r->T_max);
    double threads = o->table == TABLE_HEATMAP ? 1 : fmin((double)r->jobs, fmax((double)r->n_tasks, 1));
    double need = threads * (2 * T * D * 8 + pe_attn_block_bytes(r->T_max, block) + 10 * nd * 8);
    if (o->table == TABLE_HEATMAP) {
        double m1 = o->m1 > 0 ? (double)o->m1 : T, m0 = o->m1 > 0 ? (double)o->m0 : fmax(T - 256, 0);
        need += (m1 - m0) * fmin(m1, (double)o->pixels) * 8;
    } else if (o->table == TABLE_PROFILE) {
        need += (double)r->n_tasks * PROF_COLS * (o->bins ? fmin((double)o->bins, nd) : nd) * 8;
    } else if (o->table == TABLE_WHATIF) {
        need += threads * (4 * T * D * 8 + pe_attn_block_bytes(r->T_max, block) + 10 * nd * 8 * (double)r->n_specs);
    } else if (o->table == TABLE_LOSS) {
        /* every token's diagnostics: per layer, the layer's running sums,
         * and the rows of the heads in flight */
        const state *s = r->state;
        need += (double)N_DIAG * (double)s->total * 8 * ((double)r->in.n_layers + 1 + 2 * threads);
    }
    r->mem_jobs = (int)threads;
    return need;
}

static void cleanup(pe_run *r)
{
    state *s = r->state;
    if (!s) return;
    for (int j = 0; s->work && j < r->jobs; j++) pe_attn_work_free(s->work[j]);
    free(s->work);
    free(s->off);
    free(s->layer_sum);
    free(s->diag);
    free(s->cols);
    free(s->names);
    for (int j = 0; s->work2 && j < r->jobs; j++) pe_attn_work_free(s->work2[j]);
    free(s->work2);
    free(s->wsum);
    free(s);
    r->state = NULL;
}

/* ---- heatmap ---- */

static int prepare_heatmap(pe_run *r, pe_err *e)
{
    const analyze_opts *o = opts_of(r);
    size_t T = pe_dump_meta(r->in.dumps[0])->T;
    if (o->m1 > 0 && (size_t)o->m1 > T)
        return pe_fail_usage(e, "--window: %ld:%ld is beyond the %zu tokens of %s", o->m0, o->m1, T,
                             pe_dump_path(r->in.dumps[0]));
    if (r->in.n_layers > 1) r->in.n_layers = 1; /* default: the first layer */
    return 0;
}

static int finish_heatmap(pe_run *r, pe_err *e)
{
    const analyze_opts *o = opts_of(r);
    const pe_meta *m = pe_dump_meta(r->in.dumps[0]);
    int head = (int)o->head;
    pe_task t = {0, r->in.layers[0], PE_TENSOR_Q, head, head / r->kv_group};
    size_t T = m->T, m1 = o->m1 > 0 ? (size_t)o->m1 : T, m0 = o->m1 > 0 ? (size_t)o->m0 : T > 256 ? T - 256 : 0;
    size_t ncol = pe_bin_count(m1, (size_t)o->pixels), nr = m1 - m0, cells;
    double *v = NULL, *q, *k;
    int64_t *lo = NULL, *hi = NULL;
    int rc = -1;
    if (pe_mul_size(nr, ncol, &cells) != 0 || !(v = pe_alloc(cells, sizeof *v, 0, e))) {
        if (!e->msg[0]) pe_fail(e, "out of memory: the heat map overflows");
        return -1;
    }
    if (!(lo = pe_alloc(ncol, sizeof *lo, 0, e)) || !(hi = pe_alloc(ncol, sizeof *hi, 0, e))) goto done;
    if (!(q = pe_run_read(r, &t, 0, PE_TENSOR_Q, head, 1, 0, e)) ||
        !(k = pe_run_read(r, &t, 0, PE_TENSOR_K, t.kv_head, 1, 1, e)))
        goto done;
    pe_attn_seq s = {T, m->head_dim, q, k, m->positions, NULL, 0, NULL};
    pe_attn_params p = params_of(r, m);
    if (pe_attn_heatmap(&s, &p, m0, m1, ncol, v, NULL, e) < 0) goto done;
    for (size_t c = 0; c < ncol; c++) {
        size_t a, b;
        pe_bin_range(m1, ncol, c, &a, &b);
        lo[c] = m->positions[a];
        hi[c] = m->positions[b];
    }
    pe_table *tb = r->table;
    pe_table_meta(tb, "train_len", "%ld", r->in.train_len);
    pe_table_meta(tb, "attn_scale", "%.17g", m->attn_scale);
    if (m->attn_softcap > 0) pe_table_meta(tb, "attn_softcap", "%.17g", m->attn_softcap);
    pe_table_meta(tb, "layer", "%ld", t.layer);
    pe_table_meta(tb, "head", "%d", head);
    pe_table_meta(tb, "kv_head", "%d", t.kv_head);
    pe_table_meta(tb, "window", "query tokens %zu..%zu (positions %lld..%lld), keys 0..%zu", m0, m1 - 1,
                  (long long)m->positions[m0], (long long)m->positions[m1 - 1], m1 - 1);
    pe_table_meta(tb, "pixels", "%zu key columns (at most %ld asked)", ncol, o->pixels);
    pe_table_meta(tb, "values", "mean attention probability over the keys of a column; keys after a row count as 0");
    if (r->c.format == PE_FMT_GNUPLOT)
        pe_table_meta(tb, "plot", "plot FILE matrix nonuniform with image  (first line: count, key-column centres; "
                                  "then each row: its position, its values)");
    pe_table_matrix(tb, nr, ncol, m->positions + m0, lo, hi, v);
    rc = 0;
done:
    free(v);
    free(lo);
    free(hi);
    return rc;
}

/* ---- loss: the ground truth, and which diagnostic explains it ---- */

/* Every file must have /tokens/nll; files recorded with different
 * positional specs (the nll's pe attribute) make one block of rows each, in
 * the order of their first file.  The control columns are nan unless every
 * file has the same control.  The columns: LOSS_FIXED, then per selected
 * layer the bin means of its diagnostics. */
#define LOSS_FIXED 7
static int prepare_loss(pe_run *r, pe_err *e)
{
    const pe_inputs *in = &r->in;
    const pe_meta *m0 = pe_dump_meta(in->dumps[0]);
    const char *no_control = NULL;
    for (size_t f = 0; f < in->n; f++) {
        const pe_meta *m = pe_dump_meta(in->dumps[f]);
        const char *path = pe_dump_path(in->dumps[f]);
        if (!m->nll)
            return pe_fail(e, "%s: /tokens/nll: missing: -t loss needs the model's loss (pe-dump writes it)", path);
        if (!m->nll_control) {
            if (!no_control) no_control = path;
        } else if (m0->nll_control &&
                   (m->control_window != m0->control_window || m->control_sinks != m0->control_sinks)) {
            return pe_fail(e, "%s: /tokens/nll_control: control: window:%ld:%ld differs from window:%ld:%ld in %s",
                           path, m->control_window, m->control_sinks, m0->control_window, m0->control_sinks,
                           pe_dump_path(in->dumps[0]));
        }
    }
    if (prepare_heads(r, e) < 0) return -1;
    state *s = r->state;
    s->no_control = no_control;
    size_t nl = in->n_layers, ncol = LOSS_FIXED + N_DIAG * nl;
    if (!(s->off = pe_alloc(in->n + 1, sizeof *s->off, 1, e))) return -1;
    for (size_t f = 0; f < in->n; f++) s->off[f + 1] = s->off[f] + pe_dump_meta(in->dumps[f])->T;
    s->total = s->off[in->n];
    if (!(s->layer_sum = pe_alloc(N_DIAG * s->total, sizeof(double), 1, e)) ||
        !(s->diag = pe_alloc(nl * N_DIAG * s->total, sizeof(double), 0, e)) ||
        !(s->cols = pe_alloc(ncol, sizeof *s->cols, 0, e)) || !(s->names = pe_alloc(ncol, sizeof *s->names, 0, e)))
        return -1;
    for (int c = 0; c < LOSS_FIXED; c++) s->cols[c] = r->def->cols[c];
    for (size_t lj = 0; lj < nl; lj++)
        for (int d = 0; d < N_DIAG; d++) {
            size_t c = LOSS_FIXED + lj * N_DIAG + (size_t)d;
            snprintf(s->names[c], sizeof s->names[c], "l%ld_%s", in->layers[lj], diag_names[d]);
            s->cols[c] = (pe_column){s->names[c], "known(n)"};
        }
    r->cols = s->cols;
    r->ncol = (int)ncol;
    return 0;
}

/* A head's per-token diagnostics into its layer's sums, in head order; the
 * layer's means once its last head is in. */
static int emit_loss(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    (void)e;
    const head_result *h = res;
    state *s = r->state;
    size_t n = N_DIAG * s->total;
    for (size_t i = 0; i < n; i++) s->layer_sum[i] += h->rows[i];
    s->heads++;
    if (!pe_run_last_of_layer(r, t)) return 0;
    double *d = s->diag + t->lj * n;
    for (size_t i = 0; i < n; i++) d[i] = s->layer_sum[i] / (double)s->heads;
    memset(s->layer_sum, 0, n * sizeof *s->layer_sum);
    s->heads = 0;
    return 0;
}

static void meta_loss(pe_run *r)
{
    const state *s = r->state;
    const pe_meta *m0 = r->in.meta;
    pe_table *t = r->table;
    pe_table_meta(t, "train_len", "%ld", r->in.train_len);
    if (s->no_control)
        pe_table_meta(t, "control", "none (%s has no /tokens/nll_control): nll_control, excess and the calibration are nan",
                      s->no_control);
    else
        pe_table_meta(t, "control", "window:%ld:%ld (query m saw key n only when m - n < %ld or n < %ld)",
                      m0->control_window, m0->control_sinks, m0->control_window, m0->control_sinks);
    pe_table_meta(t, "sink_tokens", "%ld", opts_of(r)->sink_tokens);
    pe_table_meta(t, "margin", "%.15g", opts_of(r)->margin);
    pe_table_meta(t, "units", "nats per token: nll = -ln p(next token); excess = nll - nll_control");
    pe_table_meta(t, "diagnostics", "lL_NAME: the bin's mean over its tokens of each token's value averaged over "
                                    "layer L's heads (exceedance: beyond-L rows only)");
}

/* The compare section: every two specs' losses token by token, within L
 * and beyond it.  Specs with different numbers of files compare nothing. */
static int compare_losses(pe_run *r, pe_err *e)
{
    static const char *const cols[] = {"pe_a", "pe_b",    "n_in",   "diff_in",
                                       "se_in", "n_beyond", "diff_beyond", "se_beyond"};
    const pe_inputs *in = &r->in;
    pe_loss_seq *seq = pe_alloc(in->n, sizeof *seq, 0, e);
    size_t *first = pe_alloc(r->n_specs + 1, sizeof *first, 0, e); /* spec g's files: seq[first[g] .. first[g+1]) */
    int rc = -1;
    if (!seq || !first) goto done;
    size_t k = 0;
    for (size_t g = 0; g < r->n_specs; g++) {
        first[g] = k;
        for (size_t f = 0; f < in->n; f++) {
            const pe_meta *m = pe_dump_meta(in->dumps[f]);
            if (r->file_spec[f] == g) seq[k++] = (pe_loss_seq){m->T, m->positions, m->ids, m->nll};
        }
    }
    first[r->n_specs] = k;
    pe_table_section(r->table, "compare", cols, 8);
    for (size_t g = 0; g < r->n_specs; g++)
        for (size_t h = g + 1; h < r->n_specs; h++) {
            size_t ng = first[g + 1] - first[g];
            pe_loss_cmp c = {{0, 0}, {NAN, NAN}, {NAN, NAN}};
            if (ng == first[h + 1] - first[h] &&
                pe_loss_compare(seq + first[g], seq + first[h], ng, in->train_len, &c, e) < 0)
                goto done;
            pe_table_str(r->table, r->spec_names[g]);
            pe_table_str(r->table, r->spec_names[h]);
            for (int k = 0; k < 2; k++) {
                pe_table_int(r->table, (long long)c.n[k]);
                pe_table_dbl(r->table, c.diff[k]);
                pe_table_dbl(r->table, c.se[k]);
            }
            pe_table_end_row(r->table);
        }
    rc = 0;
done:
    free(seq);
    free(first);
    return rc;
}

static int finish_loss(pe_run *r, pe_err *e)
{
    const pe_inputs *in = &r->in;
    state *s = r->state;
    const char *no_control = s->no_control;
    size_t n_pos = 0, nl = in->n_layers, total = s->total;
    for (size_t f = 0; f < in->n; f++) {
        const pe_meta *m = pe_dump_meta(in->dumps[f]);
        if ((size_t)m->positions[m->T - 1] + 1 > n_pos) n_pos = (size_t)m->positions[m->T - 1] + 1;
    }
    pe_loss_acc acc;
    if (pe_loss_init(&acc, n_pos, (size_t)opts_of(r)->bins, e) < 0) return -1;
    size_t nb = acc.nb;
    /* Per bin the means of each layer's diagnostics; the excess of every
     * token. */
    double *excess = pe_alloc(total + 1, sizeof *excess, 0, e);
    pe_calib_seq *cs = pe_alloc(in->n, sizeof *cs, 0, e);
    pe_calib *calib = pe_alloc(r->n_specs * nl * N_DIAG + 1, sizeof *calib, 0, e);
    int rc = -1;
    pe_table *t = r->table;
    if (!excess || !cs || !calib || pe_loss_diag(&acc, nl * N_DIAG, e) < 0) goto done;
    pe_table_meta(t, "bins", "%zu over positions 0..%zu", nb, n_pos - 1);
    for (size_t g = 0; g < r->n_specs; g++) { /* one block per recorded spec */
        pe_loss_clear(&acc);
        for (size_t f = 0; f < in->n; f++) {
            const pe_meta *m = pe_dump_meta(in->dumps[f]);
            if (r->file_spec[f] != g) continue;
            pe_loss_add_diag(&acc, m->positions, m->T, m->nll, no_control ? NULL : m->nll_control,
                             s->diag + s->off[f], total);
            for (size_t k = 0; k < m->T; k++)
                excess[s->off[f] + k] = no_control ? NAN : m->nll[k] - m->nll_control[k];
        }
        for (size_t b = 0; b < nb; b++) {
            size_t lo, hi;
            pe_bin_range(n_pos, nb, b, &lo, &hi);
            pe_table_str(t, r->spec_names[g]);
            pe_table_int(t, (long long)lo);
            pe_table_int(t, (long long)hi);
            pe_table_int(t, (long long)acc.n[b]);
            pe_table_dbl(t, acc.n[b] > 0 ? acc.nll[b] / acc.n[b] : NAN);
            pe_table_dbl(t, acc.n_ctl[b] > 0 ? acc.ctl[b] / acc.n_ctl[b] : NAN);
            pe_table_dbl(t, acc.n_ctl[b] > 0 ? acc.excess[b] / acc.n_ctl[b] : NAN);
            for (size_t c = 0; c < nl * N_DIAG; c++) pe_table_dbl(t, pe_loss_diag_mean(&acc, b, c));
            pe_table_end_row(t);
        }
        if (g + 1 < r->n_specs) pe_table_break(t, 2);
        /* The calibration of the block: per layer and diagnostic, the two
         * rank correlations with the excess over the tokens beyond L. */
        for (size_t lj = 0; lj < nl; lj++)
            for (int d = 0; d < N_DIAG; d++) {
                size_t nc = 0;
                for (size_t f = 0; f < in->n; f++) {
                    const pe_meta *m = pe_dump_meta(in->dumps[f]);
                    if (r->file_spec[f] != g) continue;
                    cs[nc++] = (pe_calib_seq){m->T, m->positions, excess + s->off[f],
                                              s->diag + (lj * N_DIAG + (size_t)d) * total + s->off[f]};
                }
                if (pe_calibrate(cs, nc, n_pos, nb, in->train_len, &calib[(g * nl + lj) * N_DIAG + (size_t)d], e) < 0)
                    goto done;
            }
    }
    static const char *const calib_cols[] = {"pe",     "layer",       "diagnostic",
                                             "across_bins", "n_bins", "within_bins", "n_tokens"};
    pe_table_section(t, "calibration", calib_cols, 7);
    for (size_t g = 0; g < r->n_specs; g++)
        for (size_t lj = 0; lj < nl; lj++)
            for (int d = 0; d < N_DIAG; d++) {
                const pe_calib *c = &calib[(g * nl + lj) * N_DIAG + (size_t)d];
                pe_table_str(t, r->spec_names[g]);
                pe_table_int(t, in->layers[lj]);
                pe_table_str(t, diag_names[d]);
                pe_table_dbl(t, c->across);
                pe_table_int(t, (long long)c->n_bins);
                pe_table_dbl(t, c->within);
                pe_table_int(t, (long long)c->n_tokens);
                pe_table_end_row(t);
            }
    if (r->n_specs > 1 && compare_losses(r, e) < 0) goto done;
    rc = 0;
done:
    pe_loss_free(&acc);
    free(excess);
    free(cs);
    free(calib);
    return rc;
}

/* ---- whatif: the papers' remedies against the model's own rotation ---- */

static int prepare_whatif(pe_run *r, pe_err *e)
{
    if (prepare_heads(r, e) < 0) return -1;
    state *s = r->state;
    if (!(s->work2 = pe_alloc((size_t)r->jobs, sizeof *s->work2, 1, e))) return -1;
    for (int j = 0; j < r->jobs; j++)
        if (!(s->work2[j] = pe_attn_work_new(e))) return -1;
    if (!(s->wsum = pe_alloc(r->in.n_layers * r->n_specs * PE_LAB_SUMS + 1, sizeof *s->wsum, 1, e))) return -1;
    r->result_size = r->n_specs * sizeof(pe_lab_row);
    return 0;
}

static void meta_whatif(pe_run *r)
{
    const analyze_opts *o = opts_of(r);
    char list[1024] = "";
    for (size_t k = 0; k < r->n_specs; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", r->spec_names[k]);
    meta_common(r);
    pe_table_meta(r->table, "pe", "%s (rope: the model's own rotation, the baseline)", list);
    pe_table_meta(r->table, "estimate", "layer-local: the dumped q and k of each layer came from a model whose earlier "
                                        "layers ran with its own rotation; pe-dump --pe SPEC measures the real effect "
                                        "(man petools-whatif(7))");
    pe_table_meta(r->table, "columns", "kl_in: mean over in-train rows of KL(p_rope || p_spec) in nats (what the "
                                       "spec changes within L); entropy_shift: mean entropy (nats) of the beyond-L "
                                       "rows minus rope's in-train mean; exceedance: against rope's in-train logit "
                                       "range");
    (void)o;
}

/* One query head under every spec (pe_lab.h). */
static int work_whatif(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    const analyze_opts *o = opts_of(r);
    const state *st = r->state;
    int wid = pe_pool_worker();
    pe_attn_params p = params_of(r, r->in.meta);
    return pe_lab_head(r, t, &p, o->rows, &o->thr, st->work[wid], st->work2[wid], res, e);
}

static int emit_whatif(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    (void)e;
    const pe_lab_row *h = res;
    state *st = r->state;
    pe_table *tb = r->table;
    for (size_t k = 0; k < r->n_specs; k++) {
        pe_run_row_start(tb, t);
        pe_table_str(tb, r->spec_names[k]);
        pe_table_dbl(tb, h[k].kl_in);
        pe_table_dbl(tb, h[k].unseen);
        pe_table_dbl(tb, h[k].shift);
        pe_table_dbl(tb, h[k].exceed);
        pe_table_int(tb, h[k].ood);
        pe_table_end_row(tb);
        pe_lab_add(st->wsum + (t->lj * r->n_specs + k) * PE_LAB_SUMS, &h[k]);
    }
    pe_table_break(tb, 1);
    return 0;
}

static int finish_whatif(pe_run *r, pe_err *e)
{
    const state *st = r->state;
    return pe_lab_summary(r, r->table, st->wsum, e);
}

/* ---- the tables ---- */

#define HEAD_COLS {"layer", "block"}, {"head", "block"}, {"kv_head", "key"}
#define FIXED(name) {name, "fixed"}
static const pe_column profile_cols[] = {HEAD_COLS,           {"delta_lo", "lo"},
                                         {"delta_hi", "hi"},  {"n_pairs", "sum"},
                                         {"mean_logit", "mean(n_pairs)"}, {"mean_prob", "mean(n_pairs)"},
                                         {"mean_prob_u", "mean(n_pairs)"}, {"last_prob", "last(n_pairs)"}};
static const pe_column heads_cols[] = {HEAD_COLS,           FIXED("rows_in"),    FIXED("rows_beyond"),
                                       FIXED("sink_in"),    FIXED("sink_beyond"), FIXED("entropy_in"),
                                       FIXED("entropy_beyond"), FIXED("u_in"),    FIXED("label_in"),
                                       FIXED("u_all"),      FIXED("label_all"),   FIXED("exceedance"),
                                       FIXED("ood"),        FIXED("unseen_mass"), FIXED("entropy_nats_in"),
                                       FIXED("entropy_nats_beyond"), FIXED("sink_ratio")};
static const pe_column layers_cols[] = {{"layer", "block"},          FIXED("heads"),
                                        FIXED("ood_heads"),          FIXED("mean_entropy_shift"),
                                        FIXED("mean_sink_shift"),    FIXED("mean_exceedance"),
                                        FIXED("mean_unseen_mass"),   FIXED("mean_entropy_nats_in"),
                                        FIXED("mean_entropy_nats_beyond"), FIXED("mean_sink_ratio")};
static const pe_column whatif_cols[] = {HEAD_COLS,          {"pe", "key"},       FIXED("kl_in"),
                                        FIXED("unseen_mass"), FIXED("entropy_shift"), FIXED("exceedance"),
                                        FIXED("ood")};
static const pe_column heatmap_cols[] = {FIXED("row"), FIXED("key_lo"), FIXED("key_hi"), FIXED("prob")};
static const pe_column loss_cols[] = {{"pe", "block"},      {"bin_lo", "lo"},    {"bin_hi", "hi"},           {"n", "sum"},
                                      {"nll", "mean(n)"}, {"nll_control", "mean(n)"}, {"excess", "mean(n)"}};
#define COLS(a) a, (int)(sizeof a / sizeof a[0])
#define PER_HEAD(flags, emit)                                                                                  \
    COLS(flags##_cols), flags##_FLAGS, sizeof(head_result), prepare_heads, memory_need, meta_common, work_head, \
        emit, finish_heads, result_free
#define profile_FLAGS 0
#define heads_FLAGS PE_TABLE_NEEDS_L
#define layers_FLAGS PE_TABLE_NEEDS_L

static const pe_table_def tables[] = {
    [TABLE_PROFILE] = {"profile", PER_HEAD(profile, emit_profile)},
    [TABLE_HEADS] = {"heads", PER_HEAD(heads, emit_heads)},
    [TABLE_LAYERS] = {"layers", PER_HEAD(layers, emit_layers)},
    [TABLE_HEATMAP] = {"heatmap", COLS(heatmap_cols), PE_TABLE_NO_TASKS, 0, prepare_heatmap, memory_need, NULL, NULL,
                       NULL, finish_heatmap, NULL},
    [TABLE_WHATIF] = {"whatif", COLS(whatif_cols), PE_TABLE_NEEDS_L | PE_TABLE_MANY_PE, 0, prepare_whatif,
                      memory_need, meta_whatif, work_whatif, emit_whatif, finish_whatif, NULL},
    [TABLE_LOSS] = {"loss", COLS(loss_cols), PE_TABLE_NEEDS_L | PE_TABLE_FILE_PE, sizeof(head_result), prepare_loss, memory_need, meta_loss,
                    work_head, emit_loss, finish_loss, result_free},
};

static const pe_table_def *table_of(const void *opts)
{
    return &tables[((const analyze_opts *)opts)->table];
}

/* Options that belong to one table, and what the command line alone tells. */
static int check(pe_run *r, pe_err *e)
{
    analyze_opts *o = r->opts;
    const pe_common_opts *c = &r->c;
    if (!o->seen_bins && o->table == TABLE_LOSS) o->bins = 16;
    if (o->table != TABLE_HEATMAP) {
        const char *misplaced = o->seen_head ? "--head" : o->seen_window ? "--window" : o->seen_pixels ? "--pixels" : NULL;
        if (misplaced) return pe_fail_usage(e, "%s: only for -t heatmap", misplaced);
        if (o->table == TABLE_LOSS && (o->seen_rows || o->fail_on))
            return pe_fail_usage(e, "%s: not for -t loss", o->seen_rows ? "--rows" : "--fail-on");
        if (o->table == TABLE_WHATIF && o->fail_on) return pe_fail_usage(e, "--fail-on: not for -t whatif");
        if (o->table == TABLE_WHATIF && c->n_pe == 0) { /* the default comparison */
            size_t n = sizeof default_whatifs / sizeof *default_whatifs;
            if (!(r->c.pe = pe_alloc(n, sizeof *r->c.pe, 0, e))) return -1;
            for (; r->c.n_pe < n; r->c.n_pe++)
                if (pe_whatif_parse("--pe", default_whatifs[r->c.n_pe], &r->c.pe[r->c.n_pe], e) < 0) return -1;
        }
        if (o->fail_on) r->needs_L_for = "--fail-on";
        return 0;
    }
    if (o->seen_rows) return pe_fail_usage(e, "--rows: not for -t heatmap (its rows are --window)");
    if (o->fail_on) return pe_fail_usage(e, "--fail-on: not for -t heatmap");
    if (c->heads) return pe_fail_usage(e, "--heads: not for -t heatmap (use --head)");
    if (c->layers && c->n_layers != 1) return pe_fail_usage(e, "--layers: -t heatmap takes one layer");
    if (r->n_files > 1) return pe_fail_usage(e, "-t heatmap reads one FILE (got %zu)", r->n_files);
    r->heads = &o->head; /* the heat map's head comes from --head */
    r->n_heads = 1;
    r->heads_opt = "--head";
    return 0;
}

static const pe_tool_def tool = {{PROG, "[OPTION]... FILE...", "Attention against distance in qkdump files: U-shape, sinks, and what breaks beyond L.", analyze_options, epilog, pe_run_libraries, "--fail-on found a flagged head", handle_option},
                                  table_of, check, cleanup};

int main(int argc, char **argv)
{
    analyze_opts o = {TABLE_PROFILE, 512, 0, 1, PE_ATTN_MARGIN,
                      {PE_ATTN_UNSEEN_THRESHOLD, PE_ATTN_EXCEED_THRESHOLD, -1, -1},
                      PE_U_THRESHOLD, 0, 0, 0, 0, 512, 0, 0, 0, 0, 0, 0};
    return pe_run_main(argc, argv, &tool, &o);
}
