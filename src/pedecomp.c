/* pedecomp: split attention logits into their RoPE frequency components and
 * measure each against the training length (analyses.md sections 1-3, 7).
 *
 * Tables (the table_defs array below is the list): profile (per-component
 * mean logit against distance), summary (per pair: magnitude share, in-train
 * range, value and angle OOD, U attribution), spectrum (spectral purity of
 * each pair's profile), usage and dims (how much each pair and dimension is
 * used), freqs (the geometry alone, with an optional rope-scaling what-if).
 * --check validates a whole file and compares stored q_rot/k_rot with the
 * rotation of q/k. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pe_cli.h"
#include "pe_curve.h"
#include "pe_decomp.h"
#include "pe_dump.h"
#include "pe_fft.h"
#include "pe_par.h"
#include "pe_rope.h"
#include "pe_spectrum.h"
#include "pe_table.h"
#include "pe_usage.h"
#include "pe_version.h"

#define PROG "pedecomp"

typedef enum { TABLE_PROFILE = 0, TABLE_SUMMARY, TABLE_SPECTRUM, TABLE_USAGE, TABLE_DIMS, TABLE_FREQS } table_kind;
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
    OPT_SPECTRUM_OF
};

typedef struct decomp_opts {
    int table;
    long bins;
    int method;
    const char *scale_spec;
    pe_scaling scale;
    int check;
    pe_class_rule rule;
    long rotary_dim; /* freqs without a file */
    double rope_theta;
    int rope_theta_given;
    long spectrum_of; /* -1, or the pair whose power spectrum -t spectrum writes */
} decomp_opts;

static const pe_option decomp_options[] = {
    {"table", 't', "NAME", "profile (default), summary, spectrum, usage, dims or freqs"},
    {"bins", OPT_BINS, "B", "profile: distance bins (default 512; 0 = every distance)"},
    {"method", OPT_METHOD, "M", "fft (default) or direct, the O(T^2) sum that checks it"},
    {"scale", OPT_SCALE, "SPEC", "freqs: what-if pi:S, ntk:S, dynamic:S:T, yarn:S[:BF:BS], llama3:S:LO:HI:OL"},
    {"spectrum-of", OPT_SPECTRUM_OF, "I", "spectrum: write pair I's whole power spectrum instead"},
    {"check", OPT_CHECK, NULL, "read every head; compare stored q_rot/k_rot with rotated q/k"},
    {"hf-turns", OPT_HF_TURNS, "X", "class hf when turns within L >= X (default 1)"},
    {"act-turns", OPT_ACT_TURNS, "X", "class act when turns within L >= X (default 0.5)"},
    {"rotary-dim", OPT_ROTARY_DIM, "R", "freqs without an input file: rotary dims R"},
    {"rope-theta", OPT_ROPE_THETA, "B", "freqs without an input file: base (default 10000)"},
    {NULL, 0, NULL, NULL}};

static int handle_option(int key, const char *arg, void *ctx, pe_err *e)
{
    decomp_opts *o = ctx;
    static const char *const methods[] = {"fft", "direct", NULL};
    switch (key) {
    case 't': return pe_parse_choice("--table", arg, table_names, &o->table, e);
    case OPT_BINS: return pe_parse_long("--bins", arg, 0, 1L << 40, &o->bins, e);
    case OPT_METHOD: return pe_parse_choice("--method", arg, methods, &o->method, e);
    case OPT_SCALE:
        o->scale_spec = arg;
        if (pe_scaling_parse(arg, &o->scale, e) < 0) {
            e->kind = PE_ERRK_USAGE;
            return -1;
        }
        return 0;
    case OPT_CHECK: o->check = 1; return 0;
    case OPT_HF_TURNS: return pe_parse_double("--hf-turns", arg, 0, 1e300, &o->rule.hf_turns, e);
    case OPT_ACT_TURNS: return pe_parse_double("--act-turns", arg, 0, 1e300, &o->rule.act_turns, e);
    case OPT_ROTARY_DIM: return pe_parse_long("--rotary-dim", arg, 0, 1000000, &o->rotary_dim, e);
    case OPT_SPECTRUM_OF: return pe_parse_long("--spectrum-of", arg, 0, 1000000, &o->spectrum_of, e);
    case OPT_ROPE_THETA:
        o->rope_theta_given = 1;
        return pe_parse_double("--rope-theta", arg, 1e-300, 1e300, &o->rope_theta, e);
    default: return pe_fail_usage(e, "unknown option");
    }
}

static const char *libraries(void)
{
    static char buf[160];
    snprintf(buf, sizeof buf, "HDF5 %s, FFTW %s", pe_hdf5_version(), pe_fft_version());
    return buf;
}

static const pe_tool tool = {
    .name = PROG,
    .synopsis = "[OPTION]... FILE...",
    .purpose = "Split attention logits of qkdump files into RoPE frequency components.",
    .options = decomp_options,
    .epilog = "Several FILEs are pooled: each mean is a sum over all files divided by\n"
              "the total count.  Classes: hf (>= 1 turn within L), act (0.5 to 1 turn),\n"
              "tlf (less), nope (theta 0).\n",
    .libraries = libraries,
    .found = "--check found a mismatch",
    .handle = handle_option};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the shared run state ---- */

/* One unit of work: a layer and a query head (profile-based tables), or a
 * layer, a tensor and a head of it (usage, dims: keys per key head). */
typedef struct task {
    size_t lj;      /* index into pe_inputs.layers */
    pe_tensor tensor;
    int head;       /* query head for Q, key head for K */
} task;

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

/* What is kept from head to head: the head buffers and the profile with its
 * working memory, so that each head reuses pages already touched instead of
 * faulting in new ones. */
/* The next task's query head, read on its own thread while this head is
 * computed (one file; only when a head's q fits in PREFETCH_MAX bytes, the
 * slack the memory budget leaves). */
#define PREFETCH_MAX ((size_t)64 << 20)
typedef struct prefetch {
    pthread_t th;
    int running;
    size_t task;  /* the task whose q is in qn when ok */
    int ok;
    pe_dump *d;
    size_t slot;
    int head;
    double *qn;
    pe_err err;
} prefetch;

typedef struct worker_mem {
    double *q, *k;
    size_t cap;      /* doubles in q and in k */
    pe_profile prof; /* initialised when prof.sum != NULL */
    long k_layer;    /* single file: the layer and key head k holds, */
    int k_head;      /* so that a key head's query heads read it once */
    prefetch pf;     /* pf.qn: cap doubles when prefetching */
} worker_mem;

typedef struct run {
    const pe_common_opts *c;
    const decomp_opts *o;
    pe_inputs in;
    int kv_group;         /* query heads per key head */
    size_t n_tasks;
    task *tasks;
    head_result *res;
    worker_mem wm;        /* heads run one at a time, each on every thread */
    int jobs;
    pe_table *table;
    int progress;         /* a progress line on a terminal */
    int verbose;          /* -v: a line per finished layer */
    int emit_failed;      /* writing a head's rows failed: emit_err says why */
    pe_err emit_err;
    double t0;
    /* A written head's mean array, kept for a later head (17 MB at
     * --bins 0 and T 32768: new pages cost more than the binning) */
    pthread_mutex_t spare_mu;
    double *spare_mean;
    size_t spare_cap;
} run;

/* A mean array of n doubles for a head: the spare when it is big enough. */
static double *mean_take(run *R, size_t n, size_t *cap, pe_err *e)
{
    double *m = NULL;
    pthread_mutex_lock(&R->spare_mu);
    if (R->spare_mean && R->spare_cap >= n) {
        m = R->spare_mean;
        *cap = R->spare_cap;
        R->spare_mean = NULL;
    }
    pthread_mutex_unlock(&R->spare_mu);
    if (!m && (m = pe_alloc_big(n, sizeof *m, e))) *cap = n;
    return m;
}

/* Gives a written head's mean array back (work and emit run at once, hence
 * the lock; they hold two arrays at most, so one spare is enough). */
static void mean_give(run *R, head_result *r)
{
    pthread_mutex_lock(&R->spare_mu);
    if (!R->spare_mean || R->spare_cap < r->mean_cap) {
        free(R->spare_mean);
        R->spare_mean = r->mean;
        R->spare_cap = r->mean_cap;
        r->mean = NULL;
    }
    pthread_mutex_unlock(&R->spare_mu);
}

static void result_free(head_result *r)
{
    free(r->mean);
    free(r->npairs);
    free(r->sum);
    free(r->pur);
    free(r->power);
    pe_usage_free(&r->use);
    memset(r, 0, sizeof *r);
}

/* The worker's q and k buffers (and the prefetch buffer when use_qn),
 * grown to n doubles each. */
static int worker_buffers(worker_mem *w, size_t n, int use_qn, pe_err *e)
{
    if (w->cap >= n && (!use_qn || w->pf.qn)) return 0;
    w->k_head = -1;
    w->pf.ok = 0;
    free(w->q);
    free(w->k);
    free(w->pf.qn);
    w->q = pe_alloc_big(n, sizeof *w->q, e);
    w->k = w->q ? pe_alloc_big(n, sizeof *w->k, e) : NULL;
    w->pf.qn = w->k && use_qn ? pe_alloc_big(n, sizeof *w->pf.qn, e) : NULL;
    if (!w->k || (use_qn && !w->pf.qn)) {
        free(w->q);
        free(w->k);
        w->q = w->k = NULL;
        w->cap = 0;
        return -1;
    }
    w->cap = n;
    return 0;
}

static void *prefetch_main(void *arg)
{
    prefetch *pf = arg;
    pf->ok = pe_dump_read_head(pf->d, pf->slot, PE_TENSOR_Q, pf->head, pf->qn, &pf->err) == 0;
    return NULL;
}

/* Starts reading task j's query head into w->pf.qn (one file). */
static void prefetch_start(run *R, worker_mem *w, size_t j)
{
    const task *tn = &R->tasks[j];
    prefetch *pf = &w->pf;
    pf->ok = 0;
    pf->task = j;
    pf->d = R->in.dumps[0];
    pf->slot = (size_t)pe_dump_find_layer(pf->d, R->in.layers[tn->lj]);
    pf->head = tn->head;
    /* Without a thread the next task simply reads its head itself. */
    pf->running = pthread_create(&pf->th, NULL, prefetch_main, pf) == 0;
}

static void prefetch_wait(worker_mem *w)
{
    if (w->pf.running) pthread_join(w->pf.th, NULL);
    w->pf.running = 0;
}

/* The worker's profile, zeroed, for P pairs and n_dist distances. */
static pe_profile *worker_profile(worker_mem *w, int P, size_t n_dist, int jobs, pe_err *e)
{
    if (w->prof.sum && (w->prof.n_pairs != P || w->prof.n_dist != n_dist)) pe_profile_free(&w->prof);
    if (!w->prof.sum && pe_profile_init(&w->prof, P, n_dist, e) < 0) return NULL;
    pe_profile_clear(&w->prof);
    w->prof.jobs = jobs;
    return &w->prof;
}

static const double *layer_theta(const run *R, size_t layer_j)
{
    int slot = pe_dump_find_layer(R->in.dumps[0], R->in.layers[layer_j]);
    return R->in.meta->layers[slot].theta;
}

static pe_geom layer_geom(const pe_meta *m, int slot)
{
    pe_geom g = {m->head_dim, m->rotary_dim, m->n_pairs, m->pairing, m->layers[slot].theta};
    return g;
}

/* Usage and dims: the tensor's head from every file, summed. */
static int work_usage(run *R, const task *tk, head_result *out, pe_err *e)
{
    const pe_meta *m = R->in.meta;
    worker_mem *w = &R->wm;
    if (pe_usage_init(&out->use, m->n_pairs, m->head_dim, e) < 0) return -1;
    for (size_t f = 0; f < R->in.n; f++) {
        pe_dump *d = R->in.dumps[f];
        const pe_meta *mf = pe_dump_meta(d);
        int slot = pe_dump_find_layer(d, R->in.layers[tk->lj]);
        if (worker_buffers(w, mf->T * (size_t)mf->head_dim, 0, e) < 0) return -1;
        if (pe_dump_read_head(d, (size_t)slot, tk->tensor, tk->head, w->q, e) < 0) return -1;
        pe_geom g = layer_geom(mf, slot);
        pe_usage_add(&out->use, w->q, mf->T, &g);
    }
    return 0;
}

/* The spectrum table from the unbinned profile: each pair's mean curve over
 * the in-train distances [0, min(Dmax + 1, L)). */
static int work_spectrum(run *R, const pe_profile *prof, const double *theta, head_result *out, pe_err *e)
{
    const int P = prof->n_pairs;
    size_t Dw = prof->n_dist < (size_t)R->in.train_len ? prof->n_dist : (size_t)R->in.train_len;
    double *curve = pe_alloc(Dw, sizeof *curve, 0, e);
    int rc = -1;
    if (!curve) return -1;
    if (!(out->pur = pe_alloc(P ? (size_t)P : 1, sizeof *out->pur, 1, e))) goto done;
    if (R->o->spectrum_of >= 0) {
        out->n_power = pe_spectrum_size(Dw) / 2 + 1;
        if (!(out->power = pe_alloc(out->n_power, sizeof *out->power, 0, e))) goto done;
    }
    for (int i = 0; i < P; i++) {
        int want_power = i == R->o->spectrum_of;
        if (R->o->spectrum_of >= 0 && !want_power) continue;
        for (size_t d = 0; d < Dw; d++)
            curve[d] = prof->count[d] > 0 ? prof->sum[(size_t)i * prof->n_dist + d] / prof->count[d] : NAN;
        if (pe_spectrum_purity(curve, Dw, theta[i], &out->pur[i], want_power ? out->power : NULL, e) < 0)
            goto done;
    }
    rc = 0;
done:
    free(curve);
    return rc;
}

/* One (layer, head): read it from every file, add into one profile, then
 * keep only what the table prints (binned means, the summary or spectra). */
/* Binning a head's profile rows, BIN_ROWS rows per task. */
#define BIN_ROWS 8
typedef struct bin_job {
    const pe_profile *prof;
    head_result *out;
    size_t nb;
} bin_job;

static int bin_rows(size_t t, void *ctx, pe_err *e)
{
    (void)e;
    const bin_job *bj = ctx;
    const size_t nd = bj->prof->n_dist, nb = bj->nb, rows = (size_t)bj->prof->n_pairs + 2;
    const double *count = bj->prof->count;
    for (size_t r = t * BIN_ROWS; r < rows && r < (t + 1) * BIN_ROWS; r++) {
        const double *sum = bj->prof->sum + r * nd;
        double *mean = bj->out->mean + r * nb;
        if (nb == nd) { /* one distance per bin: pe_bin_mean's value, without its loop */
            for (size_t d = 0; d < nd; d++) mean[d] = count[d] > 0 ? sum[d] / count[d] : NAN;
            continue;
        }
        for (size_t b = 0; b < nb; b++) {
            size_t lo, hi;
            pe_bin_range(nd, nb, b, &lo, &hi);
            mean[b] = pe_bin_mean(sum, count, lo, hi);
        }
    }
    return 0;
}

static int work_head(size_t i, void *ctx, pe_err *e)
{
    run *R = ctx;
    const task *tk = &R->tasks[i];
    const pe_meta *m = R->in.meta;
    const int P = m->n_pairs;
    worker_mem *w = &R->wm;
    pe_profile *prof;
    head_result *out = &R->res[i];
    int rc = -1;

    if (R->o->table == TABLE_USAGE || R->o->table == TABLE_DIMS) {
        rc = work_usage(R, tk, out, e);
        if (rc < 0) result_free(out);
        return rc;
    }
    if (!(prof = worker_profile(w, P, R->in.n_dist, R->jobs, e))) return -1;
    for (size_t f = 0; f < R->in.n; f++) {
        pe_dump *d = R->in.dumps[f];
        const pe_meta *mf = pe_dump_meta(d);
        int slot = pe_dump_find_layer(d, R->in.layers[tk->lj]);
        int kvh = tk->head / R->kv_group;
        size_t td = mf->T * (size_t)mf->head_dim;
        int use_qn = R->in.n == 1 && R->jobs > 1 && td * sizeof(double) <= PREFETCH_MAX;
        if (worker_buffers(w, td, use_qn, e) < 0) goto done;
        if (use_qn && w->pf.ok && w->pf.task == i) { /* read while the last head was computed */
            double *t = w->q;
            w->q = w->pf.qn;
            w->pf.qn = t;
            w->pf.ok = 0;
        } else if (pe_dump_read_head(d, (size_t)slot, PE_TENSOR_Q, tk->head, w->q, e) < 0) {
            goto done;
        }
        /* Heads come in order, so the query heads of one key head are
         * neighbours: with one file, its key head is read once for them. */
        int have_k = R->in.n == 1 && w->k_layer == R->in.layers[tk->lj] && w->k_head == kvh;
        w->k_head = -1;
        if (!have_k && pe_dump_read_head(d, (size_t)slot, PE_TENSOR_K, kvh, w->k, e) < 0) goto done;
        w->k_layer = R->in.layers[tk->lj];
        w->k_head = kvh;
        pe_geom g = layer_geom(mf, slot);
        pe_head_input hin = {mf->T, w->q, w->k, mf->positions, mf->attn_scale, mf->contiguous};
        if (use_qn && i + 1 < R->n_tasks) prefetch_start(R, w, i + 1);
        int added = pe_profile_add(prof, &hin, &g, (pe_method)R->o->method, e);
        prefetch_wait(w); /* a failed read is reported by its own task, reading again */
        if (added < 0) goto done;
    }

    if (R->o->table == TABLE_SUMMARY) {
        if (!(out->sum = pe_alloc(P ? (size_t)P : 1, sizeof *out->sum, 1, e))) goto done;
        if (pe_profile_summary(prof, layer_theta(R, tk->lj), R->in.train_len, out->sum, e) < 0) goto done;
    } else if (R->o->table == TABLE_SPECTRUM) {
        if (work_spectrum(R, prof, layer_theta(R, tk->lj), out, e) < 0) goto done;
    } else {
        size_t nd = prof->n_dist, nb = pe_bin_count(nd, (size_t)R->o->bins);
        size_t rows = (size_t)P + 2;
        out->nb = nb;
        out->mean = mean_take(R, rows * nb, &out->mean_cap, e);
        out->npairs = pe_alloc(nb, sizeof(double), 0, e);
        if (!out->mean || !out->npairs) goto done;
        for (size_t b = 0; b < nb; b++) {
            size_t lo, hi;
            pe_bin_range(nd, nb, b, &lo, &hi);
            double n = 0;
            for (size_t d = lo; d <= hi; d++) n += prof->count[d];
            out->npairs[b] = n;
        }
        /* Rows are binned on every thread: a full profile is P + 2 rows of
         * T distances, as much work as a unit's FFTs. */
        bin_job bj = {prof, out, nb};
        pe_err ignored;
        pe_par_run((rows + BIN_ROWS - 1) / BIN_ROWS, R->jobs, bin_rows, NULL, &bj, &ignored);
    }
    rc = 0;
done:
    if (rc < 0) result_free(out);
    return rc;
}

/* The first columns of every per-head row. */
static void row_start_to(pe_table *t, const run *R, const task *tk)
{
    pe_table_int(t, R->in.layers[tk->lj]);
    pe_table_int(t, tk->head);
    pe_table_int(t, tk->tensor == PE_TENSOR_Q ? tk->head / R->kv_group : tk->head);
}

static void row_start(run *R, const task *tk)
{
    row_start_to(R->table, R, tk);
}

static void pair_cells_to(pe_table *t, const run *R, const double *theta, int i)
{
    pe_table_int(t, i);
    pe_table_dbl(t, theta[i]);
    pe_table_str(t, pe_class_name(pe_rope_classify(theta[i], R->in.train_len, &R->o->rule)));
}

static void pair_cells(run *R, const double *theta, int i)
{
    pair_cells_to(R->table, R, theta, i);
}

/* The profile of a head is (P + 2) series of nb rows: up to 8.6 million
 * rows at T 131072 with --bins 0, whose formatting takes longer than their
 * computing.  They are formatted in pieces of PROFILE_PIECE rows on every
 * thread into table forks, which this thread writes in order as they come:
 * the same bytes as one thread writing them, and a few pieces in memory. */
#define PROFILE_PIECE 8192

typedef struct profile_job {
    run *R;
    size_t i;            /* the task */
    int *series;         /* the profile rows written, in order */
    int ns;
    pe_table_state at;   /* the table before the first piece */
    pe_table **forks;    /* per piece, until written */
    pe_err err;
} profile_job;

static int format_piece(size_t k, void *ctx, pe_err *e)
{
    profile_job *pj = ctx;
    run *R = pj->R;
    const task *tk = &R->tasks[pj->i];
    const head_result *r = &R->res[pj->i];
    const double *theta = layer_theta(R, tk->lj);
    const int P = R->in.meta->n_pairs;
    const size_t nb = r->nb, first = k * PROFILE_PIECE, n = (size_t)pj->ns * nb;
    const size_t last = first + PROFILE_PIECE < n ? first + PROFILE_PIECE : n;
    /* A piece after the first continues rows already written, with the
     * series break waiting when it starts a series. */
    pe_table_state at = k == 0 ? pj->at : (pe_table_state){1, first % nb == 0};
    pe_table *t = pe_table_fork(R->table, at, e);
    if (!t) return -1;
    size_t si = first / nb, b = first % nb; /* the series and bin of row x */
    for (size_t x = first; x < last; x++, b++) {
        if (b == nb) {
            b = 0;
            si++;
        }
        const int row = pj->series[si];
        size_t lo, hi;
        if (b == 0 && x != first) pe_table_break(t, 1);
        if (nb == R->in.n_dist) /* every distance its own bin */
            lo = hi = b;
        else
            pe_bin_range(R->in.n_dist, nb, b, &lo, &hi);
        if (b != 0 && x != first) {
            pe_table_use_prefix(t); /* the series' first six cells */
        } else {
            row_start_to(t, R, tk);
            if (row < P) {
                pair_cells_to(t, R, theta, row);
            } else {
                const char *name = row == P ? "pass" : "total";
                pe_table_str(t, name);
                pe_table_nan(t);
                pe_table_str(t, name);
            }
            pe_table_mark_prefix(t);
        }
        pe_table_int(t, (long long)lo);
        pe_table_int(t, (long long)hi);
        pe_table_int(t, (long long)r->npairs[b]);
        pe_table_dbl(t, r->mean[(size_t)row * nb + b]);
        pe_table_end_row(t);
    }
    if (last % nb == 0) pe_table_break(t, 1);
    pj->forks[k] = t;
    return 0;
}

static int write_piece(size_t k, void *ctx, pe_err *e)
{
    profile_job *pj = ctx;
    pe_table *t = pj->forks[k];
    pj->forks[k] = NULL;
    return pe_table_join(pj->R->table, t, e);
}

static void emit_profile(run *R, size_t i)
{
    const pe_meta *m = R->in.meta;
    const int P = m->n_pairs;
    profile_job *pj = calloc(1, sizeof *pj);
    if (!pj) {
        R->emit_failed = 1;
        pe_fail(&R->emit_err, "out of memory while writing the table");
        return;
    }
    pj->R = R;
    pj->i = i;
    if (!(pj->series = pe_alloc((size_t)P + 2, sizeof *pj->series, 0, &R->emit_err))) {
        R->emit_failed = 1;
        free(pj);
        return;
    }
    for (int row = 0; row < P + 2; row++)
        if (row != P || m->rotary_dim < m->head_dim) pj->series[pj->ns++] = row;
    size_t n = (size_t)pj->ns * R->res[i].nb, pieces = (n + PROFILE_PIECE - 1) / PROFILE_PIECE;
    pj->at = pe_table_state_of(R->table);
    if (!(pj->forks = pe_alloc(pieces ? pieces : 1, sizeof *pj->forks, 1, &R->emit_err)) ||
        pe_par_run(pieces, R->jobs, format_piece, write_piece, pj, &R->emit_err) < 0)
        R->emit_failed = 1;
    for (size_t k = 0; pj->forks && k < pieces; k++) pe_table_fork_free(pj->forks[k]);
    free(pj->forks);
    free(pj->series);
    free(pj);
}

static void emit_summary(run *R, size_t i)
{
    const task *tk = &R->tasks[i];
    const double *theta = layer_theta(R, tk->lj);
    long L = R->in.train_len;
    pe_table *t = R->table;

    for (int p = 0; p < R->in.meta->n_pairs; p++) {
        const pe_pair_summary *s = &R->res[i].sum[p];
        row_start(R, tk);
        pe_table_int(t, p);
        pe_table_dbl(t, theta[p]);
        pe_table_dbl(t, pe_rope_wavelength(theta[p]));
        pe_table_dbl(t, pe_rope_turns(theta[p], L));
        pe_table_str(t, pe_class_name(pe_rope_classify(theta[p], L, &R->o->rule)));
        pe_table_dbl(t, s->magnitude_share);
        pe_table_dbl(t, s->lo_in);
        pe_table_dbl(t, s->hi_in);
        pe_table_dbl(t, s->value_ood);
        pe_table_dbl(t, s->angle_ood);
        pe_table_dbl(t, s->du);
        pe_table_end_row(t);
    }
}

static void emit_spectrum(run *R, size_t i)
{
    const task *tk = &R->tasks[i];
    const head_result *r = &R->res[i];
    const double *theta = layer_theta(R, tk->lj);
    pe_table *t = R->table;

    if (R->o->spectrum_of >= 0) {
        size_t N = (r->n_power - 1) * 2;
        for (size_t k = 0; k < r->n_power; k++) {
            row_start(R, tk);
            pe_table_int(t, R->o->spectrum_of);
            pe_table_int(t, (long long)k);
            pe_table_dbl(t, (double)k / (double)N);
            pe_table_dbl(t, r->power[k]);
            pe_table_end_row(t);
        }
        return;
    }
    for (int p = 0; p < R->in.meta->n_pairs; p++) {
        const pe_purity *u = &r->pur[p];
        row_start(R, tk);
        pair_cells(R, theta, p);
        pe_table_dbl(t, u->peak_freq);
        pe_table_dbl(t, u->line_freq);
        pe_table_dbl(t, u->purity);
        pe_table_dbl(t, u->leakage);
        pe_table_dbl(t, u->dc);
        pe_table_end_row(t);
    }
}

static void emit_usage(run *R, size_t i)
{
    const task *tk = &R->tasks[i];
    const pe_usage *u = &R->res[i].use;
    const double *theta = layer_theta(R, tk->lj);
    double total = 0;
    for (int p = 0; p < u->n_pairs; p++) total += u->norm_sum[p];
    for (int p = 0; p < u->n_pairs; p++) {
        row_start(R, tk);
        pe_table_str(R->table, tk->tensor == PE_TENSOR_Q ? "q" : "k");
        pair_cells(R, theta, p);
        pe_table_dbl(R->table, u->norm_sum[p] / u->tokens);
        pe_table_dbl(R->table, total > 0 ? u->norm_sum[p] / total : NAN);
        pe_table_end_row(R->table);
    }
}

static void emit_dims(run *R, size_t i)
{
    const task *tk = &R->tasks[i];
    const pe_usage *u = &R->res[i].use;
    pe_geom g = layer_geom(R->in.meta, pe_dump_find_layer(R->in.dumps[0], R->in.layers[tk->lj]));
    for (int d = 0; d < u->head_dim; d++) {
        int pair = pe_usage_pair_of(&g, d);
        row_start(R, tk);
        pe_table_str(R->table, tk->tensor == PE_TENSOR_Q ? "q" : "k");
        pe_table_int(R->table, d);
        if (pair >= 0)
            pe_table_int(R->table, pair);
        else
            pe_table_str(R->table, "pass");
        pe_table_dbl(R->table, u->dim_sum[d] / u->tokens);
        pe_table_dbl(R->table, u->dim_abs[d] / u->tokens);
        pe_table_end_row(R->table);
    }
}

/* The tables: their columns and how a task's rows are written. */
static const char *const profile_cols[] = {"layer", "head", "kv_head", "component", "theta", "class",
                                           "delta_lo", "delta_hi", "n_pairs", "mean_logit"};
static const char *const summary_cols[] = {"layer", "head", "kv_head", "component", "theta",
                                           "wavelength", "rho", "class", "magnitude_share", "lo_in",
                                           "hi_in", "value_ood", "angle_ood", "du"};
static const char *const spectrum_cols[] = {"layer", "head", "kv_head", "component", "theta", "class",
                                            "peak_freq", "line_freq", "purity", "leakage", "dc"};
static const char *const power_cols[] = {"layer", "head", "kv_head", "component", "bin", "freq", "power"};
static const char *const usage_cols[] = {"layer", "head", "kv_head", "tensor", "component",
                                         "theta", "class", "norm_mean", "share"};
static const char *const dims_cols[] = {"layer", "head", "kv_head", "tensor", "dim", "pair", "mean", "abs_mean"};
static const char *const freqs_cols[] = {"component", "theta", "wavelength", "rho", "max_angle_train",
                                         "class", "theta_scaled", "rho_scaled", "class_scaled"};
static const char *const check_cols[] = {"file", "layer", "tensor", "dtype", "heads",
                                         "max_abs_diff", "rel_diff", "tolerance", "status"};

typedef struct table_def {
    const char *const *cols;
    int ncol;
    int needs_L;  /* refuses to run without a training length */
    int key_tasks;/* rows for key heads too */
    void (*emit)(run *R, size_t i);
} table_def;

#define COLS(a) a, (int)(sizeof a / sizeof a[0])
static const table_def table_defs[] = {
    [TABLE_PROFILE] = {COLS(profile_cols), 0, 0, emit_profile},
    [TABLE_SUMMARY] = {COLS(summary_cols), 1, 0, emit_summary},
    [TABLE_SPECTRUM] = {COLS(spectrum_cols), 1, 0, emit_spectrum},
    [TABLE_USAGE] = {COLS(usage_cols), 0, 1, emit_usage},
    [TABLE_DIMS] = {COLS(dims_cols), 0, 1, emit_dims},
    [TABLE_FREQS] = {COLS(freqs_cols), 1, 0, NULL},
};

static int emit_head(size_t i, void *ctx, pe_err *e)
{
    run *R = ctx;
    table_defs[R->o->table].emit(R, i);
    if (R->emit_failed) {
        *e = R->emit_err;
        return -1;
    }
    pe_table_break(R->table, 2);
    if (R->res[i].mean) mean_give(R, &R->res[i]);
    result_free(&R->res[i]);
    if (R->progress) {
        fprintf(stderr, "\r%s: %zu/%zu heads", PROG, i + 1, R->n_tasks);
        if (i + 1 == R->n_tasks) fputs("\r\033[K", stderr);
    }
    if (R->verbose && (i + 1 == R->n_tasks || R->tasks[i + 1].lj != R->tasks[i].lj))
        fprintf(stderr, "%s: layer %ld done at %.3f s\n", PROG, R->in.layers[R->tasks[i].lj], now() - R->t0);
    return 0;
}

/* What a run holds at its peak, refused before anything is allocated when
 * it is more than --max-memory or the available memory: one head's q and k
 * in double, the profile, each thread's gather columns and FFT buffers, the
 * units' shares of the total, and the tables' rows waiting to be written. */
static int check_memory_need(run *R, pe_err *e)
{
    const pe_meta *m = R->in.meta;
    double T = 0, P = m->n_pairs, D = m->head_dim, nd = (double)R->in.n_dist;
    for (size_t f = 0; f < R->in.n; f++) T = fmax(T, (double)pe_dump_meta(R->in.dumps[f])->T);
    double need = 2 * T * D * 8; /* q and k */
    if (R->in.n == 1 && R->jobs > 1 && T * D * 8 <= (double)PREFETCH_MAX) need += T * D * 8; /* the next q */
    if (R->o->table != TABLE_USAGE && R->o->table != TABLE_DIMS) {
        double units = ceil(P / 8) + (m->rotary_dim < m->head_dim);
        double threads = fmin((double)R->jobs, fmax(units, 1));
        double N = 2 * T * 1.25; /* the FFT size, at most 2^a 3^b 5^c above 2T */
        need += (P + 3) * nd * 8;                           /* profile sums, counts */
        need += units * nd * 8;                             /* units' totals */
        need += threads * ((T + 16) * 4 * 8 * 8 + 3 * N * 16); /* gather, FFT */
        need += (P + 2) * (R->o->bins ? fmin((double)R->o->bins, nd) : nd) * 8 * 2; /* a head's rows */
    }
    char what[64];
    snprintf(what, sizeof what, "this run (T %.0f, head_dim %.0f, -j %d)", T, D, R->jobs);
    return pe_memory_check(need, R->c->max_memory, what, e);
}

/* The task list: per layer, the selected query heads, then (usage, dims) the
 * key heads they use. */
static int make_tasks(run *R, pe_err *e)
{
    size_t nh = R->in.n_heads, per = nh + (table_defs[R->o->table].key_tasks ? nh : 0);
    if (!(R->tasks = pe_alloc(R->in.n_layers * per + 1, sizeof *R->tasks, 0, e))) return -1;
    R->n_tasks = 0;
    for (size_t lj = 0; lj < R->in.n_layers; lj++) {
        for (size_t h = 0; h < nh; h++) R->tasks[R->n_tasks++] = (task){lj, PE_TENSOR_Q, R->in.heads[h]};
        if (!table_defs[R->o->table].key_tasks) continue;
        int last = -1; /* heads are sorted, so their key heads are too */
        for (size_t h = 0; h < nh; h++) {
            int kv = R->in.heads[h] / R->kv_group;
            if (kv != last) R->tasks[R->n_tasks++] = (task){lj, PE_TENSOR_K, kv};
            last = kv;
        }
    }
    return 0;
}

/* ---- freqs ---- */

static void write_inputs_meta(pe_table *t, char *const *paths, pe_dump *const *dumps, size_t n)
{
    for (size_t f = 0; f < n; f++) {
        const pe_meta *m = pe_dump_meta(dumps[f]);
        pe_table_meta(t, "input", "%s (T %zu, positions %lld..%lld, %zu layer%s, model %s)", paths[f], m->T,
                      (long long)m->positions[0], (long long)m->positions[m->T - 1], m->n_layers,
                      m->n_layers == 1 ? "" : "s", m->model ? m->model : "unknown");
    }
}

/* The geometry table, its what-if computed before anything is written so
 * that a scaling the rotary dims do not allow is an error, not half a table. */
typedef struct freqs_plan {
    const double *theta;
    int rotary_dim;
    long L;
    double *scaled; /* NULL without --scale */
    pe_scale_info info;
} freqs_plan;

static int freqs_prepare(freqs_plan *fp, const double *theta, int R_dim, double base, long L,
                         const decomp_opts *o, const char *file, pe_err *e)
{
    memset(fp, 0, sizeof *fp);
    fp->theta = theta;
    fp->rotary_dim = R_dim;
    fp->L = L;
    if (!o->scale_spec) return 0;
    if (!(fp->scaled = pe_alloc(R_dim > 1 ? (size_t)R_dim / 2 : 1, sizeof *fp->scaled, 0, e))) return -1;
    if (pe_scaling_apply(&o->scale, R_dim, base, L, theta, fp->scaled, &fp->info, e) < 0) {
        /* Name the option and where the rotary layout came from. */
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "--scale '%.100s': %.700s%s%.200s", o->scale_spec, e->msg, file ? " in " : "",
                 file ? file : "");
        snprintf(e->msg, sizeof e->msg, "%s", msg);
        free(fp->scaled);
        fp->scaled = NULL;
        return -1;
    }
    return 0;
}

static void freqs_write(pe_table *t, const freqs_plan *fp, const decomp_opts *o)
{
    if (fp->scaled)
        pe_table_meta(t, "scale", "%s (target length %ld, base %.9g, attention factor %.9g)", o->scale_spec,
                      fp->info.target_len, fp->info.base_scaled, fp->info.attn_factor);
    pe_table_meta(t, "train_len", "%ld", fp->L);
    pe_table_meta(t, "rotary_dim", "%d", fp->rotary_dim);
    for (int i = 0; i < fp->rotary_dim / 2; i++) {
        double th = fp->theta[i];
        pe_table_int(t, i);
        pe_table_dbl(t, th);
        pe_table_dbl(t, pe_rope_wavelength(th));
        pe_table_dbl(t, pe_rope_turns(th, fp->L));
        pe_table_dbl(t, (double)(fp->L - 1) * th);
        pe_table_str(t, pe_class_name(pe_rope_classify(th, fp->L, &o->rule)));
        if (fp->scaled) {
            long Lt = fp->info.target_len;
            pe_table_dbl(t, fp->scaled[i]);
            pe_table_dbl(t, pe_rope_turns(fp->scaled[i], Lt));
            pe_table_str(t, pe_class_name(pe_rope_classify(fp->scaled[i], Lt, &o->rule)));
        }
        pe_table_end_row(t);
    }
}

/* ---- --check ---- */

static double dtype_eps(const char *name)
{
    if (!name) return 0;
    if (strcmp(name, "float16") == 0) return 0x1p-10;
    if (strcmp(name, "bfloat16") == 0) return 0x1p-7;
    if (strcmp(name, "float32") == 0) return 0x1p-23;
    if (strcmp(name, "float64") == 0) return 0x1p-52;
    return 0;
}

/* One file, checked on its own (no pooling): reads every selected head of
 * every selected layer, so that damage anywhere shows, and where q/k and
 * q_rot/k_rot are both stored compares the rotation of q/k with them.  Sets
 * *mismatch when a difference exceeds the tolerance of the stored and source
 * types. */
static int check_file(pe_table *t, pe_dump *d, const char *path, const pe_common_opts *c, int *mismatch,
                      pe_err *e)
{
    const pe_meta *m = pe_dump_meta(d);
    size_t td = m->T * (size_t)m->head_dim;
    int group = m->n_heads / m->n_kv_heads, rc = -1;
    double *x = pe_alloc(td, sizeof *x, 0, e), *y = pe_alloc(td, sizeof *y, 0, e);
    if (!x || !y) goto done;
    for (size_t s = 0; s < m->n_layers; s++) {
        const pe_layer_info *L = &m->layers[s];
        pe_geom g = {m->head_dim, m->rotary_dim, m->n_pairs, m->pairing, L->theta};
        int wanted = !c->layers;
        for (size_t j = 0; c->layers && j < c->n_layers; j++) wanted |= c->layers[j] == L->index;
        if (!wanted) continue;
        for (int tn = 0; tn < 2; tn++) {
            int nh = tn == 0 ? m->n_heads : m->n_kv_heads, nread = 0;
            double maxdiff = 0, maxabs = 0;
            for (int h = 0; h < nh; h++) {
                /* With --heads: those query heads and the key heads they use. */
                int use = !c->heads;
                for (size_t j = 0; c->heads && j < c->n_heads; j++)
                    use |= tn == 0 ? c->heads[j] == h : c->heads[j] / group == h;
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
                int ok = rel <= tol;
                if (!ok) *mismatch = 1;
                pe_table_dbl(t, maxdiff);
                pe_table_dbl(t, rel);
                pe_table_dbl(t, tol);
                pe_table_str(t, ok ? "ok" : "mismatch");
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

/* ---- main ---- */

static int fail(const pe_err *e)
{
    fprintf(stderr, "%s: %s\n", PROG, e->msg);
    return e->kind == PE_ERRK_USAGE ? PE_EXIT_USAGE : PE_EXIT_DATA;
}

/* Checks what the command line alone can tell; returns 0 or -1 (usage). */
static int check_options(const decomp_opts *o, size_t n_files, long train_len, pe_err *e)
{
    if (o->rule.act_turns > o->rule.hf_turns)
        return pe_fail_usage(e, "--act-turns %g is above --hf-turns %g", o->rule.act_turns, o->rule.hf_turns);
    if (n_files == 0 && !(o->table == TABLE_FREQS && o->rotary_dim >= 0))
        return pe_fail_usage(e, "no input file (see %s --help)", PROG);
    if (n_files > 0 && o->rotary_dim >= 0) return pe_fail_usage(e, "--rotary-dim: only for -t freqs without an input file");
    if (n_files > 0 && o->rope_theta_given) return pe_fail_usage(e, "--rope-theta: only for -t freqs without an input file");
    if (o->rotary_dim >= 0 && o->rotary_dim % 2) return pe_fail_usage(e, "--rotary-dim: must be even (got %ld)", o->rotary_dim);
    if (n_files == 0 && train_len <= 0) return pe_fail_usage(e, "-t freqs needs the training length: give --train-len");
    if (o->scale_spec && o->table != TABLE_FREQS) return pe_fail_usage(e, "--scale: only for -t freqs");
    if (o->check && (o->table != TABLE_PROFILE || o->scale_spec))
        return pe_fail_usage(e, "--check: writes its own table; leave out -t and --scale");
    if (o->spectrum_of >= 0 && o->table != TABLE_SPECTRUM) return pe_fail_usage(e, "--spectrum-of: only for -t spectrum");
    return 0;
}

int main(int argc, char **argv)
{
    pe_common_opts c;
    decomp_opts o = {TABLE_PROFILE, 512, PE_METHOD_FFT, NULL, {0}, 0, PE_CLASS_RULE_DEFAULT, -1, 10000.0, 0, -1};
    pe_err e = {0};
    pe_output out = {0};
    run R;
    int first, status = PE_EXIT_OK, mismatch = 0;
    char *const *files;
    size_t n_files;
    double *theta_cli = NULL;
    pe_dump **checked = NULL;
    freqs_plan fp = {0};
    double t0 = now();

    memset(&R, 0, sizeof R);
    pthread_mutex_init(&R.spare_mu, NULL);
    pe_dump_guard(PROG);
    switch (pe_cli_parse(argc, argv, &tool, &c, &o, &first)) {
    case PE_CLI_EXIT_OK:
        return pe_close_stdout(PROG, PE_EXIT_OK);
    case PE_CLI_EXIT_USAGE: return PE_EXIT_USAGE;
    default: break;
    }
    files = argv + first;
    n_files = (size_t)(argc - first);
    pe_open_opts oo = {c.pairing, c.max_memory};
    if (check_options(&o, n_files, c.train_len, &e) < 0) goto failed;

    /* Open and validate everything before the first byte of output. */
    if (o.check) {
        /* --check judges each file on its own: nothing is pooled. */
        if (!(checked = pe_alloc(n_files, sizeof *checked, 1, &e))) goto failed;
        for (size_t f = 0; f < n_files; f++) {
            if (!(checked[f] = pe_dump_open(files[f], &oo, &e))) goto failed;
            for (size_t j = 0; c.layers && j < c.n_layers; j++)
                if (pe_dump_find_layer(checked[f], c.layers[j]) < 0) {
                    pe_fail_usage(&e, "--layers: layer %ld is not in %s", c.layers[j], files[f]);
                    goto failed;
                }
            for (size_t j = 0; c.heads && j < c.n_heads; j++)
                if (c.heads[j] >= pe_dump_meta(checked[f])->n_heads) {
                    pe_fail_usage(&e, "--heads: head %ld does not exist (%s has %d query heads)", c.heads[j],
                                  files[f], pe_dump_meta(checked[f])->n_heads);
                    goto failed;
                }
        }
    } else if (n_files == 0) {
        /* freqs from the command line alone */
        if (!(theta_cli = pe_alloc(o.rotary_dim > 1 ? (size_t)o.rotary_dim / 2 : 1, sizeof *theta_cli, 0, &e)))
            goto failed;
        pe_rope_default_theta(o.rope_theta, (int)o.rotary_dim, theta_cli);
        if (freqs_prepare(&fp, theta_cli, (int)o.rotary_dim, o.rope_theta, c.train_len, &o, NULL, &e) < 0)
            goto failed;
    } else {
        if (pe_inputs_open(&R.in, files, n_files, &oo, c.layers, c.n_layers, c.heads, c.n_heads, c.train_len,
                           &e) < 0)
            goto failed;
        const pe_meta *m = R.in.meta;
        if (o.spectrum_of >= m->n_pairs) {
            pe_fail_usage(&e, "--spectrum-of: pair %ld does not exist (the files have %d pairs)", o.spectrum_of,
                          m->n_pairs);
            goto failed;
        }
        if (table_defs[o.table].needs_L && R.in.train_len <= 0) {
            pe_fail_usage(&e, "-t %s needs the training length: the files have no train_len; give --train-len",
                          table_names[o.table]);
            goto failed;
        }
        if (o.table == TABLE_FREQS) {
            /* One selected layer: its own frequencies; else the file's. */
            const double *theta = c.layers && R.in.n_layers == 1 ? layer_theta(&R, 0) : m->theta;
            if (freqs_prepare(&fp, theta, m->rotary_dim, m->rope_theta, R.in.train_len, &o, files[0], &e) < 0)
                goto failed;
        }
    }
    if (pe_output_open(&out, c.output, "--output", files, n_files, &e) < 0) goto failed;

    const char *tname = o.check ? "check" : o.spectrum_of >= 0 ? "power" : table_names[o.table];
    const char *const *cols = o.check ? check_cols : o.spectrum_of >= 0 ? power_cols : table_defs[o.table].cols;
    int ncol = o.check ? 9 : o.spectrum_of >= 0 ? 7 : table_defs[o.table].ncol;
    if (o.table == TABLE_FREQS && !o.scale_spec) ncol = 6;
    if (!(R.table = pe_table_open(out.fp, c.format, c.digits, PROG, tname, cols, ncol, &e))) goto failed;
    pe_table_meta(R.table, "version", "%s", PE_VERSION);

    if (o.check) {
        write_inputs_meta(R.table, files, checked, n_files);
        for (size_t f = 0; f < n_files; f++)
            if (check_file(R.table, checked[f], files[f], &c, &mismatch, &e) < 0) goto failed;
        goto finish;
    }
    if (n_files == 0) {
        pe_table_meta(R.table, "rope_theta", "%.17g", o.rope_theta);
        freqs_write(R.table, &fp, &o);
        goto finish;
    }
    write_inputs_meta(R.table, files, R.in.dumps, R.in.n);
    if (o.table == TABLE_FREQS) {
        pe_table_meta(R.table, "rope_theta", "%.17g", R.in.meta->rope_theta);
        freqs_write(R.table, &fp, &o);
        goto finish;
    }

    const pe_meta *m = R.in.meta;
    int gappy = 0;
    for (size_t f = 0; f < R.in.n; f++) gappy |= !pe_dump_meta(R.in.dumps[f])->contiguous;
    pe_table_meta(R.table, "train_len", "%ld", R.in.train_len);
    pe_table_meta(R.table, "pairing", "%s", m->rotary_dim > 0 ? pe_pairing_name(m->pairing) : "none");
    pe_table_meta(R.table, "attn_scale", "%.17g", m->attn_scale);
    if (o.table == TABLE_SPECTRUM)
        pe_table_meta(R.table, "window", "distances 0..%zu (min(Dmax + 1, L) - 1), Hann, %zu-point FFT",
                      (R.in.n_dist < (size_t)R.in.train_len ? R.in.n_dist : (size_t)R.in.train_len) - 1,
                      pe_spectrum_size(R.in.n_dist < (size_t)R.in.train_len ? R.in.n_dist : (size_t)R.in.train_len));
    if (o.table == TABLE_PROFILE) {
        pe_table_meta(R.table, "bins", "%ld", o.bins);
        pe_table_meta(R.table, "method", "%s", o.method == PE_METHOD_DIRECT ? "direct"
                                               : gappy ? "fft (direct for non-contiguous positions)"
                                                       : "fft");
        if (m->attn_softcap > 0)
            pe_table_meta(R.table, "note", "mean_logit is before the softcap %.9g", m->attn_softcap);
    }
    int uses_profile = o.table == TABLE_PROFILE || o.table == TABLE_SUMMARY || o.table == TABLE_SPECTRUM;
    for (size_t f = 0; f < R.in.n; f++)
        if (!pe_dump_meta(R.in.dumps[f])->contiguous && o.method == PE_METHOD_FFT && uses_profile && !c.quiet)
            fprintf(stderr, "%s: %s: positions are not contiguous; using the direct O(T^2) sum\n", PROG,
                    files[f]);

    R.c = &c;
    R.o = &o;
    R.kv_group = m->n_heads / m->n_kv_heads;
    if (make_tasks(&R, &e) < 0) goto failed;
    R.progress = !c.quiet && isatty(STDERR_FILENO);
    R.verbose = c.verbose;
    R.t0 = t0;
    R.jobs = c.jobs ? c.jobs : pe_cpu_count();
    R.wm.k_head = -1;
    if (check_memory_need(&R, &e) < 0) goto failed;
    if (!(R.res = pe_alloc(R.n_tasks ? R.n_tasks : 1, sizeof *R.res, 1, &e))) goto failed;
    /* Heads one after another, each on every thread (over its groups of
     * pairs): one head's q and k in memory, whatever -j.  With threads, a
     * head's rows are written while the next head is computed. */
    if ((R.jobs > 1 ? pe_par_pipeline(R.n_tasks, work_head, emit_head, &R, &e)
                    : pe_par_run(R.n_tasks, 1, work_head, emit_head, &R, &e)) < 0) {
        if (R.progress) fputs("\r\033[K", stderr);
        goto failed;
    }

finish:
    pe_table_finish(R.table, &e);
    R.table = NULL;
    if (pe_output_close(&out, 1, &e) < 0) goto failed;
    if (c.verbose)
        fprintf(stderr, "%s: done in %.3f s\n", PROG, now() - t0);
    if (mismatch) status = PE_EXIT_FOUND;
    goto end;
failed:
    status = fail(&e);
end:
    if (R.table) pe_table_finish(R.table, NULL);
    if (out.fp) pe_output_close(&out, 0, NULL);
    for (size_t i = 0; R.res && i < R.n_tasks; i++) result_free(&R.res[i]);
    free(R.res);
    free(R.spare_mean);
    pthread_mutex_destroy(&R.spare_mu);
    free(R.tasks);
    free(R.wm.q);
    free(R.wm.k);
    free(R.wm.pf.qn);
    pe_profile_free(&R.wm.prof);
    if (R.in.n) pe_inputs_close(&R.in);
    for (size_t f = 0; checked && f < n_files; f++) pe_dump_close(checked[f]);
    free(checked);
    free(theta_cli);
    free(fp.scaled);
    pe_common_opts_free(&c);
    /* A full disk on stdout is a failure even when every line was accepted
     * by the buffer. */
    return pe_close_stdout(PROG, status);
}
