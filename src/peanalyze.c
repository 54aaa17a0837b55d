/* peanalyze: attention patterns against distance in qkdump files, and what
 * changes beyond the training length (analyses.md sections 4 and 5).
 *
 * Tables: profile (mean logit, probability and (m+1) p against distance),
 * heads (sink mass, entropy, U-score and logit exceedance in and beyond L,
 * the OOD flag), layers (the damage by depth), heatmap (the probabilities
 * of one head on a window of rows, for gnuplot's matrix nonuniform).
 * --fail-on ood|ushape turns a finding into exit status 3 for CI. */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pe_attn.h"
#include "pe_cli.h"
#include "pe_curve.h"
#include "pe_dump.h"
#include "pe_numfmt.h"
#include "pe_par.h"
#include "pe_rope.h"
#include "pe_table.h"
#include "pe_truth.h"
#include "pe_version.h"

#define PROG "peanalyze"

typedef enum { TABLE_PROFILE = 0, TABLE_HEADS, TABLE_LAYERS, TABLE_HEATMAP, TABLE_LOSS } table_kind;
static const char *const table_names[] = {"profile", "heads", "layers", "heatmap", "loss", NULL};

enum {
    OPT_BINS = PE_OPT_TOOL,
    OPT_ROWS,
    OPT_SINK,
    OPT_MARGIN,
    OPT_EXCEED,
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
    {"table", 't', "NAME", "profile (default), heads, layers, heatmap or loss"},
    {"bins", OPT_BINS, "B", "profile: distance bins (default 512; 0 = every distance); loss: position bins (default 16)"},
    {"rows", OPT_ROWS, "N", "evaluate N evenly spaced query rows per file (default all)"},
    {"sink-tokens", OPT_SINK, "S", "sink mass: attention on the first S tokens (default 1)"},
    {"margin", OPT_MARGIN, "X", "exceedance band: in-train logit range +- X times its width (default 0.05)"},
    {"exceed-threshold", OPT_EXCEED, "X", "ood when the exceedance is above X (default 0.01)"},
    {"entropy-threshold", OPT_ENTROPY, "X", "ood when |entropy_beyond - entropy_in| > X (default 0.1)"},
    {"sink-threshold", OPT_SINK_T, "X", "ood when |sink_beyond - sink_in| > X (default 0.1)"},
    {"u-threshold", OPT_U, "X", "label u-shape when the U-score >= X (default 0.1)"},
    {"fail-on", OPT_FAIL_ON, "WHAT", "exit 3 when a head is flagged: ood, ushape or ood,ushape"},
    {"head", OPT_HEAD, "H", "heatmap: the query head (default 0)"},
    {"window", OPT_WINDOW, "M0:M1", "heatmap: query rows M0..M1-1 (default the last 256)"},
    {"pixels", OPT_PIXELS, "N", "heatmap: at most N key columns (default 512)"},
    {"block", OPT_BLOCK, "N", "query rows per block (default: a 16 MiB buffer); the output is the same"},
    {NULL, 0, NULL, NULL}};

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

static const char *libraries(void)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "HDF5 %s, %s (kernels %s)", pe_hdf5_version(), openblas_get_config(),
             openblas_get_corename());
    return buf;
}

static const pe_tool tool = {
    .name = PROG,
    .synopsis = "[OPTION]... FILE...",
    .purpose = "Attention against distance in qkdump files: U-shape, sinks, and what breaks beyond L.",
    .options = analyze_options,
    .epilog = "Several FILEs are pooled: each mean is a sum over all files divided by\n"
              "the total count.  Rows with position p < L are in-train, the others beyond.\n"
              "A head is ood when its exceedance, entropy shift or sink shift passes its\n"
              "threshold.\n",
    .libraries = libraries,
    .found = "--fail-on found a flagged head",
    .handle = handle_option};

/* ---- the shared run state ---- */

#define PROF_COLS 5 /* n_pairs, mean_logit, mean_prob, mean_prob_u, last_prob */

typedef struct head_result {
    size_t nb;
    double *prof;     /* PROF_COLS x nb */
    pe_attn_stats st;
    int ood;
} head_result;

typedef struct layer_acc { /* the layers table, filled as heads are emitted */
    long heads, ood;
    double ent_shift, sink_shift, exceed;
    long n_ent, n_sink, n_exceed;
} layer_acc;

typedef struct run {
    const pe_common_opts *c;
    const analyze_opts *o;
    pe_inputs in;
    int kv_group;
    size_t n_tasks;
    head_result *res;
    pe_table *table;
    int progress;
    layer_acc lay;
    size_t n_ood, n_ushape;       /* heads flagged, for --fail-on */
    size_t first_ood, first_ushape; /* task of the first one */
    pe_attn_work **work; /* one per worker thread (pe_par_worker) */
    int n_work;
    /* Rotated key heads shared by the query heads of their group (one
     * input file): read once, freed when the group's last head is done. */
    pthread_mutex_t kmu;
    pthread_cond_t kcond;
    struct kentry *keys; /* a short list: the groups in flight */
} run;

typedef struct kentry {
    size_t lj;
    int kvh;
    double *k;
    int loading, failed;
    int users; /* query heads of the group still to use it */
    pe_err err;
    struct kentry *next;
} kentry;

static void result_free(head_result *r)
{
    free(r->prof);
    memset(r, 0, sizeof *r);
}

static pe_attn_params params_of(const run *R, const pe_meta *m)
{
    pe_attn_params p = {m->attn_scale, m->attn_softcap, R->in.train_len, (size_t)R->o->sink_tokens,
                        R->o->margin, (size_t)R->o->block};
    return p;
}

/* Reads one head of tensor t of layer slot `slot` of d into a new *x and
 * rotates it at the file's positions with the layer's frequencies. */
static int read_rotated(pe_dump *d, size_t slot, pe_tensor t, int head, double **x, pe_err *e)
{
    const pe_meta *m = pe_dump_meta(d);
    free(*x);
    if (!(*x = pe_alloc_big(m->T * (size_t)m->head_dim, sizeof **x, e))) return -1;
    if (pe_dump_read_head(d, slot, t, head, *x, e) < 0) return -1;
    pe_geom g = {m->head_dim, m->rotary_dim, m->n_pairs, m->pairing, m->layers[slot].theta};
    pe_rope_rotate(*x, m->T, &g, m->positions, +1);
    return 0;
}

/* The rotated key head kvh of layer lj (one input file), read by the first
 * query head of its group that asks and shared with the others, which wait
 * for it.  Every successful call is matched by key_release. */
static kentry *key_acquire(run *R, size_t lj, int kvh, pe_err *e)
{
    pthread_mutex_lock(&R->kmu);
    kentry *ke = R->keys;
    while (ke && !(ke->lj == lj && ke->kvh == kvh)) ke = ke->next;
    if (!ke) {
        if (!(ke = pe_alloc(1, sizeof *ke, 1, e))) {
            pthread_mutex_unlock(&R->kmu);
            return NULL;
        }
        ke->lj = lj;
        ke->kvh = kvh;
        ke->loading = 1;
        for (size_t j = 0; j < R->in.n_heads; j++) ke->users += R->in.heads[j] / R->kv_group == kvh;
        ke->next = R->keys;
        R->keys = ke;
        pthread_mutex_unlock(&R->kmu);
        pe_dump *d = R->in.dumps[0];
        int slot = pe_dump_find_layer(d, R->in.layers[lj]);
        int bad = read_rotated(d, (size_t)slot, PE_TENSOR_K, kvh, &ke->k, &ke->err) < 0;
        pthread_mutex_lock(&R->kmu);
        ke->loading = 0;
        ke->failed = bad;
        pthread_cond_broadcast(&R->kcond);
    }
    while (ke->loading) pthread_cond_wait(&R->kcond, &R->kmu);
    if (ke->failed) {
        *e = ke->err;
        ke = NULL;
    }
    pthread_mutex_unlock(&R->kmu);
    return ke;
}

static void key_release(run *R, kentry *ke)
{
    pthread_mutex_lock(&R->kmu);
    if (--ke->users == 0) {
        kentry **pp = &R->keys;
        while (*pp != ke) pp = &(*pp)->next;
        *pp = ke->next;
        free(ke->k);
        free(ke);
    }
    pthread_mutex_unlock(&R->kmu);
}

static void keys_free(run *R)
{
    while (R->keys) {
        kentry *ke = R->keys;
        R->keys = ke->next;
        free(ke->k);
        free(ke);
    }
}

/* One (layer, head): every pooled file, in-train rows of all files before
 * any beyond row (the exceedance needs the whole in-train range); a file
 * is read again for the second phase only when another came between. */
static int work_head(size_t i, void *ctx, pe_err *e)
{
    run *R = ctx;
    size_t lj = i / R->in.n_heads;
    int head = R->in.heads[i % R->in.n_heads];
    int kvh = head / R->kv_group;
    long L = R->in.train_len;
    head_result *out = &R->res[i];
    pe_attn_acc acc;
    double *q = NULL, *k = NULL;
    kentry *ke = NULL; /* one file: k is the shared key head */
    size_t *rows = NULL, loaded = (size_t)-1, n_rows = 0;
    int rc = -1;

    int wid = pe_par_worker();
    pe_attn_work *w = wid >= 0 && wid < R->n_work ? R->work[wid] : NULL;
    if (pe_attn_init(&acc, R->in.n_dist, e) < 0) return -1;
    int two = R->in.n > 1 && L > 0;
    for (int ph = two ? PE_ATTN_IN : PE_ATTN_ALL; ph <= (two ? PE_ATTN_BEYOND : PE_ATTN_ALL); ph++) {
        for (size_t f = 0; f < R->in.n; f++) {
            pe_dump *d = R->in.dumps[f];
            const pe_meta *mf = pe_dump_meta(d);
            int slot = pe_dump_find_layer(d, R->in.layers[lj]);
            size_t first_row = R->o->rows == 1 ? mf->T - 1 : 0;
            if (ph == PE_ATTN_IN && mf->positions[first_row] >= L) continue;
            if (ph == PE_ATTN_BEYOND && mf->positions[mf->T - 1] < L) continue;
            if (loaded != f) {
                if (read_rotated(d, (size_t)slot, PE_TENSOR_Q, head, &q, e) < 0) goto done;
                if (R->in.n == 1) {
                    if (!ke && !(ke = key_acquire(R, lj, kvh, e))) goto done;
                    k = ke->k;
                } else if (read_rotated(d, (size_t)slot, PE_TENSOR_K, kvh, &k, e) < 0) {
                    goto done;
                }
                free(rows);
                rows = NULL;
                if (R->o->rows > 0 && (size_t)R->o->rows < mf->T) {
                    if (!(rows = pe_alloc((size_t)R->o->rows, sizeof *rows, 0, e))) goto done;
                    n_rows = pe_attn_even_rows(mf->T, (size_t)R->o->rows, rows);
                }
                loaded = f;
            }
            pe_attn_seq s = {mf->T, mf->head_dim, q, k, mf->positions, rows, n_rows};
            pe_attn_params p = params_of(R, mf);
            if (pe_attn_add(&acc, &s, &p, (pe_attn_phase)ph, w, e) < 0) {
                char msg[sizeof e->msg];
                snprintf(msg, sizeof msg, "%s", e->msg);
                pe_fail(e, "%s: layer %ld head %d: %s", pe_dump_path(d), R->in.layers[lj], head, msg);
                goto done;
            }
        }
    }

    pe_attn_summary(&acc, &out->st);
    out->ood = pe_attn_ood(&out->st, &R->o->thr);
    if (R->o->table == TABLE_PROFILE) {
        size_t nd = acc.n_dist, nb = pe_bin_count(nd, (size_t)R->o->bins);
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
    free(q);
    if (ke)
        key_release(R, ke);
    else
        free(k);
    free(rows);
    pe_attn_free(&acc);
    if (rc < 0) result_free(out);
    return rc;
}

static void emit_profile(run *R, size_t i)
{
    head_result *r = &R->res[i];
    size_t lj = i / R->in.n_heads;
    int head = R->in.heads[i % R->in.n_heads];
    pe_table *t = R->table;
    size_t nb = r->nb;
    for (size_t b = 0; b < nb; b++) {
        size_t lo, hi;
        pe_bin_range(R->in.n_dist, nb, b, &lo, &hi);
        pe_table_int(t, R->in.layers[lj]);
        pe_table_int(t, head);
        pe_table_int(t, head / R->kv_group);
        pe_table_int(t, (long long)lo);
        pe_table_int(t, (long long)hi);
        pe_table_int(t, (long long)r->prof[b]);
        for (int c = 1; c < PROF_COLS; c++) pe_table_dbl(t, r->prof[(size_t)c * nb + b]);
        pe_table_end_row(t);
    }
    pe_table_break(t, 1);
    pe_table_break(t, 2);
}

static void emit_heads(run *R, size_t i)
{
    const head_result *r = &R->res[i];
    const pe_attn_stats *s = &r->st;
    size_t lj = i / R->in.n_heads;
    int head = R->in.heads[i % R->in.n_heads];
    double ut = R->o->u_threshold;
    pe_table *t = R->table;
    pe_table_int(t, R->in.layers[lj]);
    pe_table_int(t, head);
    pe_table_int(t, head / R->kv_group);
    pe_table_int(t, (long long)s->rows_in);
    pe_table_int(t, (long long)s->rows_beyond);
    pe_table_dbl(t, s->sink_in);
    pe_table_dbl(t, s->sink_beyond);
    pe_table_dbl(t, s->entropy_in);
    pe_table_dbl(t, s->entropy_beyond);
    pe_table_dbl(t, s->u_in);
    pe_table_str(t, pe_u_label(s->u_in, s->near_gt_far_in, ut));
    pe_table_dbl(t, s->u_all);
    pe_table_str(t, pe_u_label(s->u_all, s->near_gt_far_all, ut));
    pe_table_dbl(t, s->exceedance);
    pe_table_int(t, r->ood);
    pe_table_end_row(t);
    if ((i + 1) % R->in.n_heads == 0) pe_table_break(t, 2);
}

static double mean_or_nan(double sum, long n)
{
    return n > 0 ? sum / (double)n : NAN;
}

static void emit_layers(run *R, size_t i)
{
    const pe_attn_stats *s = &R->res[i].st;
    layer_acc *a = &R->lay;
    double es = fabs(s->entropy_beyond - s->entropy_in), ss = fabs(s->sink_beyond - s->sink_in);
    a->heads++;
    a->ood += R->res[i].ood;
    if (!isnan(es)) {
        a->ent_shift += es;
        a->n_ent++;
    }
    if (!isnan(ss)) {
        a->sink_shift += ss;
        a->n_sink++;
    }
    if (!isnan(s->exceedance)) {
        a->exceed += s->exceedance;
        a->n_exceed++;
    }
    if ((i + 1) % R->in.n_heads) return;
    pe_table *t = R->table;
    pe_table_int(t, R->in.layers[i / R->in.n_heads]);
    pe_table_int(t, a->heads);
    pe_table_int(t, a->ood);
    pe_table_dbl(t, mean_or_nan(a->ent_shift, a->n_ent));
    pe_table_dbl(t, mean_or_nan(a->sink_shift, a->n_sink));
    pe_table_dbl(t, mean_or_nan(a->exceed, a->n_exceed));
    pe_table_end_row(t);
    memset(a, 0, sizeof *a);
}

static int emit_head(size_t i, void *ctx, pe_err *e)
{
    (void)e;
    run *R = ctx;
    const head_result *r = &R->res[i];
    if (r->ood && R->n_ood++ == 0) R->first_ood = i;
    if (r->st.u_in >= R->o->u_threshold && R->n_ushape++ == 0) R->first_ushape = i;
    switch (R->o->table) {
    case TABLE_PROFILE: emit_profile(R, i); break;
    case TABLE_HEADS: emit_heads(R, i); break;
    default: emit_layers(R, i); break;
    }
    result_free(&R->res[i]);
    if (R->progress) {
        fprintf(stderr, "\r%s: %zu/%zu heads", PROG, i + 1, R->n_tasks);
        if (i + 1 == R->n_tasks) fputs("\r\033[K", stderr);
    }
    return 0;
}

/* ---- meta lines ---- */

static void write_inputs_meta(pe_table *t, const pe_inputs *in)
{
    for (size_t f = 0; f < in->n; f++) {
        const pe_meta *m = pe_dump_meta(in->dumps[f]);
        pe_table_meta(t, "input", "%s (T %zu, positions %lld..%lld, %zu layers, model %s)",
                      pe_dump_path(in->dumps[f]), m->T, (long long)m->positions[0],
                      (long long)m->positions[m->T - 1], m->n_layers, m->model ? m->model : "unknown");
    }
}

static void write_common_meta(pe_table *t, const run *R)
{
    const pe_meta *m = R->in.meta;
    const analyze_opts *o = R->o;
    pe_table_meta(t, "train_len", "%ld", R->in.train_len);
    pe_table_meta(t, "pairing", "%s", m->rotary_dim > 0 ? pe_pairing_name(m->pairing) : "none");
    pe_table_meta(t, "attn_scale", "%.17g", m->attn_scale);
    if (m->attn_softcap > 0)
        pe_table_meta(t, "attn_softcap", "%.17g (logits are capped before the softmax; mean_logit is after the cap)",
                      m->attn_softcap);
    if (o->rows > 0)
        pe_table_meta(t, "rows", "%ld evenly spaced query rows per file (all when T <= %ld)", o->rows, o->rows);
    else
        pe_table_meta(t, "rows", "all");
    pe_table_meta(t, "sink_tokens", "%ld", o->sink_tokens);
    if (o->table == TABLE_PROFILE) pe_table_meta(t, "bins", "%ld", o->bins);
    if (o->table != TABLE_PROFILE) {
        /* 15 digits: the options as typed (0.1, not 0.10000000000000001). */
        pe_table_meta(t, "margin", "%.15g", o->margin);
        pe_table_meta(t, "thresholds", "exceedance > %.15g, |entropy shift| > %.15g, |sink shift| > %.15g, u-shape at U >= %.15g",
                      o->thr.exceed, o->thr.entropy, o->thr.sink, o->u_threshold);
    }
}

/* ---- heatmap ---- */

static void put_num(FILE *f, double v, int digits, int json)
{
    char buf[PE_NUMFMT_MAX];
    if (json && !isfinite(v)) {
        fputs("null", f);
        return;
    }
    fwrite(buf, 1, pe_fmt_g(buf, v, digits), f);
}

typedef struct meta_line {
    char key[32];
    char val[1100];
} meta_line;

static int run_heatmap(FILE *out, run *R, const pe_common_opts *c, const analyze_opts *o, pe_err *e)
{
    pe_dump *d = R->in.dumps[0];
    const pe_meta *m = pe_dump_meta(d);
    long layer = R->in.layers[0];
    int slot = pe_dump_find_layer(d, layer), head = (int)o->head, kvh = head / R->kv_group;
    size_t T = m->T, m0, m1;
    if (o->m1 > 0) {
        if ((size_t)o->m1 > T)
            return pe_fail_usage(e, "--window: %ld:%ld is beyond the %zu tokens of %s", o->m0, o->m1, T,
                                 pe_dump_path(d));
        m0 = (size_t)o->m0;
        m1 = (size_t)o->m1;
    } else {
        m1 = T;
        m0 = T > 256 ? T - 256 : 0;
    }
    size_t ncol = pe_bin_count(m1, (size_t)o->pixels), nr = m1 - m0, cells;
    double *q = NULL, *k = NULL, *v = NULL;
    int rc = -1;
    if (pe_mul_size(nr, ncol, &cells) != 0 || !(v = pe_alloc(cells, sizeof *v, 0, e))) {
        if (!e->msg[0]) pe_fail(e, "out of memory: the heat map overflows");
        return -1;
    }
    if (read_rotated(d, (size_t)slot, PE_TENSOR_Q, head, &q, e) < 0 ||
        read_rotated(d, (size_t)slot, PE_TENSOR_K, kvh, &k, e) < 0)
        goto done;
    pe_attn_seq s = {T, m->head_dim, q, k, m->positions, NULL, 0};
    pe_attn_params p = params_of(R, m);
    if (pe_attn_heatmap(&s, &p, m0, m1, ncol, v, NULL, e) < 0) goto done;

    /* Comment lines, the same in every format. */
    meta_line meta[16];
    int nm = 0;
#define META(k_, ...) (snprintf(meta[nm].key, sizeof meta[nm].key, "%s", k_), \
                       snprintf(meta[nm].val, sizeof meta[nm].val, __VA_ARGS__), nm++)
    META("version", "%s", PE_VERSION);
    META("input", "%s (T %zu, positions %lld..%lld, %zu layers, model %s)", pe_dump_path(d), T,
         (long long)m->positions[0], (long long)m->positions[T - 1], m->n_layers, m->model ? m->model : "unknown");
    META("train_len", "%ld", R->in.train_len);
    META("attn_scale", "%.17g", m->attn_scale);
    if (m->attn_softcap > 0) META("attn_softcap", "%.17g", m->attn_softcap);
    META("layer", "%ld", layer);
    META("head", "%d", head);
    META("kv_head", "%d", kvh);
    META("window", "query tokens %zu..%zu (positions %lld..%lld), keys 0..%zu", m0, m1 - 1,
         (long long)m->positions[m0], (long long)m->positions[m1 - 1], m1 - 1);
    META("pixels", "%zu key columns (at most %ld asked)", ncol, o->pixels);
    META("values", "mean attention probability over the keys of a column; keys after a row count as 0");
    if (c->format == PE_FMT_GNUPLOT)
        META("plot", "plot FILE matrix nonuniform with image  (first line: count, key-column centres; "
                     "then each row: its position, its values)");
#undef META

    if (c->format == PE_FMT_TSV) {
        static const char *const cols[] = {"row", "key_lo", "key_hi", "prob"};
        pe_table *t = pe_table_open(out, PE_FMT_TSV, c->digits, PROG, "heatmap", cols, 4, e);
        if (!t) goto done;
        for (int i = 0; i < nm; i++) pe_table_meta(t, meta[i].key, "%s", meta[i].val);
        for (size_t r = 0; r < nr; r++) {
            for (size_t col = 0; col < ncol; col++) {
                size_t lo, hi;
                pe_bin_range(m1, ncol, col, &lo, &hi);
                pe_table_int(t, m->positions[m0 + r]);
                pe_table_int(t, m->positions[lo]);
                pe_table_int(t, m->positions[hi]);
                pe_table_dbl(t, v[r * ncol + col]);
                pe_table_end_row(t);
            }
        }
        if (pe_table_finish(t, e) < 0) goto done;
    } else if (c->format == PE_FMT_GNUPLOT) {
        fprintf(out, "# %s table: heatmap\n", PROG);
        for (int i = 0; i < nm; i++) fprintf(out, "# %s: %s\n", meta[i].key, meta[i].val);
        fprintf(out, "%zu", ncol);
        for (size_t col = 0; col < ncol; col++) {
            size_t lo, hi;
            pe_bin_range(m1, ncol, col, &lo, &hi);
            fputc('\t', out);
            put_num(out, 0.5 * ((double)m->positions[lo] + (double)m->positions[hi]), c->digits, 0);
        }
        fputc('\n', out);
        for (size_t r = 0; r < nr; r++) {
            fprintf(out, "%lld", (long long)m->positions[m0 + r]);
            for (size_t col = 0; col < ncol; col++) {
                fputc('\t', out);
                put_num(out, v[r * ncol + col], c->digits, 0);
            }
            fputc('\n', out);
        }
    } else {
        fputs("{\"tool\":\"" PROG "\",\"table\":\"heatmap\",\"meta\":{", out);
        for (int i = 0; i < nm; i++) {
            if (i) fputc(',', out);
            pe_json_string(out, meta[i].key);
            fputc(':', out);
            pe_json_string(out, meta[i].val);
        }
        fputs("},\n\"rows\":[", out);
        for (size_t r = 0; r < nr; r++) fprintf(out, "%s%lld", r ? "," : "", (long long)m->positions[m0 + r]);
        const char *names[] = {"key_lo", "key_hi", "key_centre"};
        for (int w = 0; w < 3; w++) {
            fprintf(out, "],\n\"%s\":[", names[w]);
            for (size_t col = 0; col < ncol; col++) {
                size_t lo, hi;
                pe_bin_range(m1, ncol, col, &lo, &hi);
                if (col) fputc(',', out);
                if (w == 0) fprintf(out, "%lld", (long long)m->positions[lo]);
                if (w == 1) fprintf(out, "%lld", (long long)m->positions[hi]);
                if (w == 2) put_num(out, 0.5 * ((double)m->positions[lo] + (double)m->positions[hi]), c->digits, 1);
            }
        }
        fputs("],\n\"values\":[", out);
        for (size_t r = 0; r < nr; r++) {
            fputs(r ? ",\n[" : "\n[", out);
            for (size_t col = 0; col < ncol; col++) {
                if (col) fputc(',', out);
                put_num(out, v[r * ncol + col], c->digits, 1);
            }
            fputc(']', out);
        }
        fputs("\n]}\n", out);
    }
    rc = 0;
done:
    free(q);
    free(k);
    free(v);
    return rc;
}

/* ---- loss: the ground truth against position ---- */

static const char *const loss_cols[] = {"bin_lo", "bin_hi", "n", "nll", "nll_control", "excess"};

/* The model's recorded loss in position bins, pooled over the files (man
 * peanalyze(1), -t loss).  Every file must have /tokens/nll; the control
 * columns are nan unless every file has /tokens/nll_control, with the same
 * window, and the files must have run with the same positional spec. */
static int run_loss(FILE *out, run *R, const pe_common_opts *c, const analyze_opts *o, pe_err *e)
{
    const pe_inputs *in = &R->in;
    const pe_meta *m0 = pe_dump_meta(in->dumps[0]);
    const char *no_control = NULL;
    size_t n_pos = 0;
    for (size_t f = 0; f < in->n; f++) {
        const pe_meta *m = pe_dump_meta(in->dumps[f]);
        const char *path = pe_dump_path(in->dumps[f]);
        if (!m->nll)
            return pe_fail(e, "%s: /tokens/nll: missing: -t loss needs the model's loss (pe-dump writes it)", path);
        if (strcmp(m->nll_pe, m0->nll_pe) != 0)
            return pe_fail(e, "%s: /tokens/nll: pe: '%s' differs from '%s' in %s", path, m->nll_pe, m0->nll_pe,
                           pe_dump_path(in->dumps[0]));
        if (!m->nll_control) {
            if (!no_control) no_control = path;
        } else if (m0->nll_control &&
                   (m->control_window != m0->control_window || m->control_sinks != m0->control_sinks)) {
            return pe_fail(e, "%s: /tokens/nll_control: control: window:%ld:%ld differs from window:%ld:%ld in %s",
                           path, m->control_window, m->control_sinks, m0->control_window, m0->control_sinks,
                           pe_dump_path(in->dumps[0]));
        }
        if ((size_t)m->positions[m->T - 1] + 1 > n_pos) n_pos = (size_t)m->positions[m->T - 1] + 1;
    }
    if (!no_control && !m0->nll_control) no_control = pe_dump_path(in->dumps[0]);

    pe_loss_acc acc;
    if (pe_loss_init(&acc, n_pos, (size_t)o->bins, e) < 0) return -1;
    for (size_t f = 0; f < in->n; f++) {
        const pe_meta *m = pe_dump_meta(in->dumps[f]);
        pe_loss_add(&acc, m->positions, m->T, m->nll, no_control ? NULL : m->nll_control);
    }
    pe_table *t = pe_table_open(out, c->format, c->digits, PROG, "loss", loss_cols, 6, e);
    if (!t) {
        pe_loss_free(&acc);
        return -1;
    }
    pe_table_meta(t, "version", "%s", PE_VERSION);
    write_inputs_meta(t, in);
    pe_table_meta(t, "train_len", "%ld", in->train_len);
    pe_table_meta(t, "pe", "%s", m0->nll_pe);
    if (no_control)
        pe_table_meta(t, "control", "none (%s has no /tokens/nll_control): nll_control and excess are nan", no_control);
    else
        pe_table_meta(t, "control", "window:%ld:%ld (query m saw key n only when m - n < %ld or n < %ld)",
                      m0->control_window, m0->control_sinks, m0->control_window, m0->control_sinks);
    pe_table_meta(t, "bins", "%zu over positions 0..%zu", acc.nb, n_pos - 1);
    pe_table_meta(t, "units", "nats per token: nll = -ln p(next token); excess = nll - nll_control");
    for (size_t b = 0; b < acc.nb; b++) {
        size_t lo, hi;
        pe_bin_range(n_pos, acc.nb, b, &lo, &hi);
        pe_table_int(t, (long long)lo);
        pe_table_int(t, (long long)hi);
        pe_table_int(t, (long long)acc.n[b]);
        pe_table_dbl(t, acc.n[b] > 0 ? acc.nll[b] / acc.n[b] : NAN);
        pe_table_dbl(t, acc.n_ctl[b] > 0 ? acc.ctl[b] / acc.n_ctl[b] : NAN);
        pe_table_dbl(t, acc.n_ctl[b] > 0 ? acc.excess[b] / acc.n_ctl[b] : NAN);
        pe_table_end_row(t);
    }
    pe_loss_free(&acc);
    return pe_table_finish(t, e);
}

/* ---- main ---- */

/* What a run holds at its peak, refused before anything is allocated when
 * it is more than --max-memory or the available memory.  Per thread: one
 * head's rotated q and k in double, the block of logits, the accumulators
 * per distance; for the heat map its window of pixels. */
static int check_memory_need(const run *R, int jobs, pe_err *e)
{
    double T = 0, D = R->in.meta->head_dim, nd = (double)R->in.n_dist;
    for (size_t f = 0; f < R->in.n; f++) T = fmax(T, (double)pe_dump_meta(R->in.dumps[f])->T);
    size_t block = R->o->block ? (size_t)R->o->block : pe_attn_default_block((size_t)T);
    double threads = R->o->table == TABLE_HEATMAP ? 1 : fmin((double)jobs, fmax((double)R->n_tasks, 1));
    double need = threads * (2 * T * D * 8 + pe_attn_block_bytes((size_t)T, block) + 10 * nd * 8);
    if (R->o->table == TABLE_HEATMAP) {
        double m1 = R->o->m1 > 0 ? (double)R->o->m1 : T, m0 = R->o->m1 > 0 ? (double)R->o->m0 : fmax(T - 256, 0);
        need += (m1 - m0) * fmin(m1, (double)R->o->pixels) * 8;
    } else if (R->o->table == TABLE_PROFILE) {
        need += (double)R->n_tasks * PROF_COLS * (R->o->bins ? fmin((double)R->o->bins, nd) : nd) * 8;
    }
    char what[64];
    snprintf(what, sizeof what, "this run (T %.0f, head_dim %.0f, -j %d)", T, D, (int)threads);
    return pe_memory_check(need, R->c->max_memory, what, e);
}

static int fail(const pe_err *e)
{
    fprintf(stderr, "%s: %s\n", PROG, e->msg);
    return e->kind == PE_ERRK_USAGE ? PE_EXIT_USAGE : PE_EXIT_DATA;
}

static const char *const profile_cols[] = {"layer",   "head",       "kv_head",   "delta_lo",    "delta_hi",
                                           "n_pairs", "mean_logit", "mean_prob", "mean_prob_u", "last_prob"};
static const char *const heads_cols[] = {"layer",    "head",       "kv_head",        "rows_in",
                                         "rows_beyond", "sink_in", "sink_beyond",    "entropy_in",
                                         "entropy_beyond", "u_in", "label_in",       "u_all",
                                         "label_all", "exceedance", "ood"};
static const char *const layers_cols[] = {"layer",      "heads", "ood_heads", "mean_entropy_shift",
                                          "mean_sink_shift", "mean_exceedance"};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    pe_common_opts c;
    analyze_opts o = {TABLE_PROFILE, 512, 0, 1, PE_ATTN_MARGIN,
                      {PE_ATTN_EXCEED_THRESHOLD, PE_ATTN_ENTROPY_THRESHOLD, PE_ATTN_SINK_THRESHOLD},
                      PE_U_THRESHOLD, 0, 0, 0, 0, 512, 0, 0, 0, 0, 0, 0};
    pe_err e = {0};
    pe_output out = {0};
    run R;
    int first, status = PE_EXIT_OK;
    char *const *files;
    size_t n_files;
    double t0 = now();

    memset(&R, 0, sizeof R);
    pthread_mutex_init(&R.kmu, NULL);
    pthread_cond_init(&R.kcond, NULL);
    /* Threads are ours, over heads; OpenBLAS runs each GEMM on the calling
     * thread. */
    openblas_set_num_threads(1);
    pe_dump_guard(PROG);
    switch (pe_cli_parse(argc, argv, &tool, &c, &o, &first)) {
    case PE_CLI_EXIT_OK:
        return pe_close_stdout(PROG, PE_EXIT_OK);
    case PE_CLI_EXIT_USAGE: return PE_EXIT_USAGE;
    default: break;
    }
    files = argv + first;
    n_files = (size_t)(argc - first);

    /* Options that belong to one table. */
    const char *misplaced = NULL;
    if (!o.seen_bins && o.table == TABLE_LOSS) o.bins = 16;
    if (o.table != TABLE_HEATMAP) {
        misplaced = o.seen_head ? "--head" : o.seen_window ? "--window" : o.seen_pixels ? "--pixels" : NULL;
        if (misplaced) pe_fail_usage(&e, "%s: only for -t heatmap", misplaced);
        else if (o.table == TABLE_LOSS && (o.seen_rows || o.fail_on))
            pe_fail_usage(&e, "%s: not for -t loss", o.seen_rows ? "--rows" : "--fail-on");
    } else {
        if (o.seen_rows) pe_fail_usage(&e, "--rows: not for -t heatmap (its rows are --window)");
        else if (o.fail_on) pe_fail_usage(&e, "--fail-on: not for -t heatmap");
        else if (c.heads) pe_fail_usage(&e, "--heads: not for -t heatmap (use --head)");
        else if (c.layers && c.n_layers != 1) pe_fail_usage(&e, "--layers: -t heatmap takes one layer");
        else if (n_files > 1) pe_fail_usage(&e, "-t heatmap reads one FILE (got %zu)", n_files);
    }
    if (e.msg[0]) {
        status = fail(&e);
        goto end;
    }
    if (n_files == 0) {
        fprintf(stderr, "%s: no input file (see %s --help)\n", PROG, PROG);
        status = PE_EXIT_USAGE;
        goto end;
    }

    pe_open_opts oo = {c.pairing, c.max_memory};
    long heat_head = o.head;
    if (pe_inputs_open(&R.in, files, n_files, &oo, c.layers, c.n_layers,
                       o.table == TABLE_HEATMAP ? &heat_head : c.heads,
                       o.table == TABLE_HEATMAP ? 1 : c.n_heads, c.train_len, &e) < 0) {
        if (o.table == TABLE_HEATMAP && strncmp(e.msg, "--heads:", 8) == 0) {
            /* The heat map's head comes from --head. */
            char msg[sizeof e.msg];
            snprintf(msg, sizeof msg, "--head:%s", e.msg + 8);
            snprintf(e.msg, sizeof e.msg, "%s", msg);
        }
        status = fail(&e);
        goto end;
    }
    if (o.table == TABLE_HEATMAP && R.in.n_layers > 1) R.in.n_layers = 1; /* default: the first layer */
    long L = R.in.train_len;
    if ((o.table == TABLE_HEADS || o.table == TABLE_LAYERS) && L <= 0) {
        pe_fail_usage(&e, "-t %s needs the training length: the files have no train_len; give --train-len",
                      table_names[o.table]);
        status = fail(&e);
        goto end;
    }
    if (o.fail_on && L <= 0) {
        pe_fail_usage(&e, "--fail-on needs the training length: the files have no train_len; give --train-len");
        status = fail(&e);
        goto end;
    }
    const pe_meta *m = R.in.meta;
    R.c = &c;
    R.o = &o;
    R.kv_group = m->n_heads / m->n_kv_heads;
    R.n_tasks = R.in.n_layers * R.in.n_heads;
    int jobs = c.jobs ? c.jobs : pe_cpu_count();
    if (check_memory_need(&R, jobs, &e) < 0 || pe_output_open(&out, c.output, "--output", files, n_files, &e) < 0) {
        status = fail(&e);
        goto end;
    }

    if (o.table == TABLE_LOSS) {
        if (run_loss(out.fp, &R, &c, &o, &e) < 0) {
            status = fail(&e);
            goto end;
        }
        goto close;
    }
    if (o.table == TABLE_HEATMAP) {
        if (run_heatmap(out.fp, &R, &c, &o, &e) < 0) {
            status = fail(&e);
            goto end;
        }
        goto close;
    }

    const char *const *cols = o.table == TABLE_PROFILE ? profile_cols : o.table == TABLE_HEADS ? heads_cols : layers_cols;
    int ncol = o.table == TABLE_PROFILE ? 10 : o.table == TABLE_HEADS ? 15 : 6;
    if (!(R.table = pe_table_open(out.fp, c.format, c.digits, PROG, table_names[o.table], cols, ncol, &e))) {
        status = fail(&e);
        goto end;
    }
    pe_table_meta(R.table, "version", "%s", PE_VERSION);
    write_inputs_meta(R.table, &R.in);
    write_common_meta(R.table, &R);

    R.progress = !c.quiet && isatty(STDERR_FILENO);
    if (!(R.res = pe_alloc(R.n_tasks ? R.n_tasks : 1, sizeof *R.res, 1, &e))) {
        status = fail(&e);
        goto end;
    }
    if (!(R.work = pe_alloc((size_t)jobs, sizeof *R.work, 1, &e))) {
        status = fail(&e);
        goto end;
    }
    R.n_work = jobs;
    for (int j = 0; j < jobs; j++) {
        if (!(R.work[j] = pe_attn_work_new(&e))) {
            status = fail(&e);
            goto end;
        }
    }
    if (pe_par_run(R.n_tasks, jobs, work_head, emit_head, &R, &e) < 0) {
        if (R.progress) fputs("\r\033[K", stderr);
        status = fail(&e);
        goto end;
    }
    if (pe_table_finish(R.table, &e) < 0) {
        R.table = NULL;
        status = fail(&e);
        goto end;
    }
    R.table = NULL;
close:
    if (pe_output_close(&out, 1, &e) < 0) {
        status = fail(&e);
        goto end;
    }
    if (c.verbose) {
        size_t T = 0;
        for (size_t f = 0; f < R.in.n; f++)
            if (pe_dump_meta(R.in.dumps[f])->T > T) T = pe_dump_meta(R.in.dumps[f])->T;
        size_t block = o.block ? (size_t)o.block : pe_attn_default_block(T);
        char bytes[32];
        fprintf(stderr, "%s: %zu head%s, T up to %zu, blocks of %zu query rows (%s buffer per thread), %.3f s\n", PROG,
                o.table == TABLE_HEATMAP ? (size_t)1 : R.n_tasks, (o.table == TABLE_HEATMAP || R.n_tasks == 1) ? "" : "s",
                T, block, pe_format_bytes(pe_attn_block_bytes(T, block), bytes, sizeof bytes), now() - t0);
    }
    int found_ood = (o.fail_on & FAIL_OOD) && R.n_ood, found_u = (o.fail_on & FAIL_USHAPE) && R.n_ushape;
    if (found_ood || found_u) {
        size_t i = found_ood ? R.first_ood : R.first_ushape;
        if (!c.quiet)
            fprintf(stderr, "%s: --fail-on %s: %zu of %zu heads %s (the first: layer %ld head %d)\n", PROG,
                    found_ood ? "ood" : "ushape", found_ood ? R.n_ood : R.n_ushape, R.n_tasks,
                    found_ood ? "are flagged ood" : "have u_in >= --u-threshold", R.in.layers[i / R.in.n_heads],
                    R.in.heads[i % R.in.n_heads]);
        status = PE_EXIT_FOUND;
    }
end:
    if (R.table) pe_table_finish(R.table, NULL);
    if (out.fp) pe_output_close(&out, 0, NULL);
    for (size_t i = 0; R.res && i < R.n_tasks; i++) result_free(&R.res[i]);
    free(R.res);
    for (int j = 0; R.work && j < R.n_work; j++) pe_attn_work_free(R.work[j]);
    free(R.work);
    keys_free(&R);
    pthread_cond_destroy(&R.kcond);
    pthread_mutex_destroy(&R.kmu);
    if (R.in.n) pe_inputs_close(&R.in);
    pe_common_opts_free(&c);
    return pe_close_stdout(PROG, status);
}
