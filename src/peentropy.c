/* peentropy: DoPE's truncated matrix entropy of every head's queries and keys
 * (analyses.md section 6): per-head scores, the 2 x 2 band view of each RoPE
 * pair, the heads DoPE would denoise and the mask an inference engine can
 * apply.
 *
 * The work is one task per (layer, tensor, head): a key head is read once per
 * layer and scored once, whatever the number of query heads that use it.  The
 * tasks of a layer run on threads (pe_par) with the BLAS kept single-threaded;
 * each file is scored on its own and the per-file numbers are averaged with
 * an order-independent sum, then every table is written at the end. */
#include <cblas.h>
#include <errno.h>
#include <lapacke.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__GLIBC__)
#endif

#include "pe_cli.h"
#include "pe_dump.h"
#include "pe_entropy.h"
#include "pe_numfmt.h"
#include "pe_par.h"
#include "pe_rope.h"
#include "pe_table.h"
#include "pe_version.h"

#define PROG "peentropy"

static const double TWO_PI = 6.283185307179586476925286766559;

typedef enum { TABLE_HEADS = 0, TABLE_BANDS, TABLE_SELECT } table_kind;
static const char *const table_names[] = {"heads", "bands", "select", NULL};
enum { TENSOR_Q = 0, TENSOR_K, TENSOR_BOTH };
static const char *const tensor_names[] = {"q", "k", "both", NULL};
enum { STAGE_ALL = 3 };
static const char *const stage_names[] = {"pre", "post", "ntk", "all", NULL};
static const char *const prep_names[] = {"paper", "uncomp", NULL};
static const char *const order_names[] = {"asc", "desc", NULL};
/* --score names and the per-head number each picks. */
static const char *const score_names[] = {"s", "norm", "rho", "full", "lambda1", NULL};
static const int score_index[] = {PE_ENT_SCORE, PE_ENT_NORM, PE_ENT_RHO, PE_ENT_FULL, PE_ENT_LAMBDA1};
static const char *const score_desc[] = {"S_r", "S_r / ln D", "rho_r", "S_D", "lambda_1"};

enum {
    OPT_TENSOR = PE_OPT_TOOL,
    OPT_STAGE,
    OPT_PREP,
    OPT_NTK_LEN,
    OPT_NTK_FACTOR,
    OPT_BROADCAST,
    OPT_ORDER,
    OPT_SCORE,
    OPT_MASK
};

typedef struct ent_opts {
    int table, tensor, stage, prep;
    long rank;
    long ntk_len;      /* 0 = not given */
    double ntk_factor; /* 1 */
    int broadcast;
    long top;
    int order, score;
    const char *mask;
    int set_top, set_order, set_score, set_factor;
} ent_opts;

static const pe_option ent_options[] = {
    {"table", 't', "NAME", "heads (default), bands or select"},
    {"tensor", OPT_TENSOR, "T", "q, k or both (default)"},
    {"stage", OPT_STAGE, "S", "pre (unrotated), post (rotated; default), ntk or all"},
    {"prep", OPT_PREP, "P", "paper (default: none) or uncomp (centre columns, rows to norm 1)"},
    {"rank", 'r', "R", "truncation rank r of the score (default 16, clamped to head_dim)"},
    {"ntk-len", OPT_NTK_LEN, "N", "stage ntk: rotate with dynamic NTK's frequencies at length N"},
    {"ntk-factor", OPT_NTK_FACTOR, "S", "stage ntk: dynamic NTK factor S >= 1 (default 1)"},
    {"broadcast", OPT_BROADCAST, NULL, "key rows per query head (default: one per key head)"},
    {"top", 'n', "N", "select: how many heads (default 8)"},
    {"order", OPT_ORDER, "O", "select: asc (lowest score first; default) or desc"},
    {"score", OPT_SCORE, "V", "select: s (S_r; default), norm, rho, full or lambda1"},
    {"mask", OPT_MASK, "FILE", "select: also write the DoPE mask (JSON) to FILE (-: stdout, not the table)"},
    {NULL, 0, NULL, NULL}};

static int handle_option(int key, const char *arg, void *ctx, pe_err *e)
{
    ent_opts *o = ctx;
    switch (key) {
    case 't': return pe_parse_choice("--table", arg, table_names, &o->table, e);
    case OPT_TENSOR: return pe_parse_choice("--tensor", arg, tensor_names, &o->tensor, e);
    case OPT_STAGE: return pe_parse_choice("--stage", arg, stage_names, &o->stage, e);
    case OPT_PREP: return pe_parse_choice("--prep", arg, prep_names, &o->prep, e);
    case 'r': return pe_parse_long("--rank", arg, 1, 1000000, &o->rank, e);
    case OPT_NTK_LEN: return pe_parse_long("--ntk-len", arg, 1, 1L << 40, &o->ntk_len, e);
    case OPT_NTK_FACTOR:
        o->set_factor = 1;
        return pe_parse_double("--ntk-factor", arg, 1, 1e6, &o->ntk_factor, e);
    case OPT_BROADCAST: o->broadcast = 1; return 0;
    case 'n':
        o->set_top = 1;
        return pe_parse_long("--top", arg, 1, 1000000000L, &o->top, e);
    case OPT_ORDER:
        o->set_order = 1;
        return pe_parse_choice("--order", arg, order_names, &o->order, e);
    case OPT_SCORE:
        o->set_score = 1;
        return pe_parse_choice("--score", arg, score_names, &o->score, e);
    case OPT_MASK:
        if (!*arg) return pe_fail_usage(e, "--mask: empty file name");
        o->mask = arg;
        return 0;
    default: return pe_fail_usage(e, "unknown option");
    }
}

static const char *libraries(void)
{
    static char buf[200];
    char blas[64] = "OpenBLAS";
    const char *cfg = openblas_get_config();
    int maj = 0, min = 0, patch = 0;
    /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": the first two words. */
    if (cfg && sscanf(cfg, "%*s %40s", blas + 9) == 1) blas[8] = ' ';
    LAPACKE_ilaver(&maj, &min, &patch);
    snprintf(buf, sizeof buf, "HDF5 %s, %s, LAPACK %d.%d.%d", pe_hdf5_version(), blas, maj, min, patch);
    return buf;
}

static const pe_tool tool = {
    .name = PROG,
    .synopsis = "[OPTION]... FILE...",
    .purpose = "DoPE's truncated matrix entropy of the query and key heads of qkdump files.",
    .options = ent_options,
    .epilog = "Scores: S_r = -sum_{i<=r} lambda_i ln lambda_i over the eigenvalues of\n"
              "X^T X / trace (the default score; low = spiky spectrum), S_r / ln D, rho_r,\n"
              "lambda_1, S_D and exp(S_D).  Several FILEs: each head's numbers are the\n"
              "mean over the files of the per-file numbers (one sequence per file).\n",
    .libraries = libraries,
    .handle = handle_option};

/* ---- the run ---- */

typedef struct task {
    pe_tensor tensor;
    int head; /* query head for q, key head for k */
} task;

/* Scratch of one running task, reused from task to task. */
typedef struct scratch {
    int busy;
    double *x, *y;     /* T_max x D */
    double *pf;        /* n_files x n_stages x per_res */
    double *tmp;       /* n_files */
    pe_entropy_work w;
} scratch;

/* Per file, for the layer being computed. */
typedef struct file_layer {
    int slot;
    pe_rotor post, ntk;
} file_layer;

typedef struct run {
    const pe_common_opts *c;
    const ent_opts *o;
    pe_inputs in;
    int D, P, kv_group, r_used;
    long L;
    int n_stages;
    pe_stage stages[3];
    int bands;           /* keep the band view */
    size_t per_res;      /* numbers per (task, stage) */
    double **ntk_theta;  /* per file: the dynamic-NTK frequencies */
    double ntk_base;     /* the first file's scaled base, for the record */
    /* tasks: the same for every layer */
    task *tasks;
    size_t n_tasks, n_qtasks;
    int *kv_task;        /* key head -> task index, -1 when not scored */
    /* results: [layer][task][stage][per_res] */
    double *res;
    /* the layer being computed */
    size_t lj;
    file_layer *fl;
    size_t T_max;
    /* scratch pool, one per thread */
    scratch *pool;
    int n_pool;
    pthread_mutex_t pool_mu;
    int progress;
    size_t done, total;
} run;

static double *result(const run *R, size_t lj, size_t ti, int si)
{
    return R->res + ((lj * R->n_tasks + ti) * (size_t)R->n_stages + (size_t)si) * R->per_res;
}

static const double *layer_theta(const run *R, size_t lj)
{
    int slot = pe_dump_find_layer(R->in.dumps[0], R->in.layers[lj]);
    return R->in.meta->layers[slot].theta;
}

static int layer_rope(const run *R, size_t lj)
{
    int slot = pe_dump_find_layer(R->in.dumps[0], R->in.layers[lj]);
    return R->in.meta->layers[slot].rope;
}

static void scratch_free(scratch *s)
{
    free(s->x);
    free(s->y);
    free(s->pf);
    free(s->tmp);
    pe_entropy_work_free(&s->w);
    memset(s, 0, sizeof *s);
}

/* What a run holds at its peak, refused before the heads are read when it is
 * more than --max-memory or the available memory.  Per thread: one head's
 * tensor in double (twice with more than one stage), the Gram matrix with
 * the eigensolver's workspace; every result row until the table is written;
 * each file's rotation tables. */
static int check_memory_need(const run *R, size_t n_res, pe_err *e)
{
    double T = (double)R->T_max, D = R->D;
    double need = R->n_pool * (T * D * 8 * (R->n_stages > 1 ? 2 : 1) + 6 * D * D * 8);
    need += (double)n_res * sizeof *R->res;
    /* per file, a table of cosines and sines for each rotated stage (post, ntk) */
    need += (double)R->in.n * 2 * T * R->in.meta->rotary_dim * 8;
    char what[64];
    snprintf(what, sizeof what, "this run (T %.0f, head_dim %.0f, -j %d)", T, D, R->n_pool);
    return pe_memory_check(need, R->c->max_memory, what, e);
}

static scratch *scratch_take(run *R, pe_err *e)
{
    scratch *s = NULL;
    pthread_mutex_lock(&R->pool_mu);
    for (int i = 0; i < R->n_pool && !s; i++)
        if (!R->pool[i].busy) s = &R->pool[i];
    if (s) s->busy = 1;
    pthread_mutex_unlock(&R->pool_mu);
    if (!s) {
        pe_fail(e, "internal error: no free scratch space");
        return NULL;
    }
    if (!s->x) {
        size_t td = R->T_max * (size_t)R->D, nf = R->in.n;
        s->x = pe_alloc(td, sizeof *s->x, 0, e);
        s->y = R->n_stages > 1 ? pe_alloc(td, sizeof *s->y, 0, e) : NULL;
        s->pf = pe_alloc(nf * (size_t)R->n_stages * R->per_res, sizeof *s->pf, 0, e);
        s->tmp = pe_alloc(nf, sizeof *s->tmp, 0, e);
        if (!s->x || (R->n_stages > 1 && !s->y) || !s->pf || !s->tmp ||
            pe_entropy_work_init(&s->w, R->D, e) < 0) {
            scratch_free(s); /* busy is cleared too */
            return NULL;
        }
        s->busy = 1;
    }
    return s;
}

static void scratch_give(run *R, scratch *s)
{
    pthread_mutex_lock(&R->pool_mu);
    s->busy = 0;
    pthread_mutex_unlock(&R->pool_mu);
}

/* One (layer, tensor, head): every file, every stage, then the mean over
 * files of each number. */
static int work_task(size_t i, void *ctx, pe_err *e)
{
    run *R = ctx;
    const task *t = &R->tasks[i];
    const size_t nf = R->in.n;
    const long layer = R->in.layers[R->lj];
    scratch *s = scratch_take(R, e);
    int rc = -1;
    if (!s) return -1;

    for (size_t f = 0; f < nf; f++) {
        pe_dump *d = R->in.dumps[f];
        const pe_meta *mf = pe_dump_meta(d);
        const file_layer *fl = &R->fl[f];
        pe_geom g = {mf->head_dim, mf->rotary_dim, mf->n_pairs, mf->pairing, mf->layers[fl->slot].theta};
        size_t td = mf->T * (size_t)mf->head_dim;
        if (pe_dump_read_head(d, (size_t)fl->slot, t->tensor, t->head, s->x, e) < 0) goto done;
        for (int si = 0; si < R->n_stages; si++) {
            /* The last stage may consume the read vectors; the others work on a copy. */
            double *buf = si == R->n_stages - 1 ? s->x : s->y;
            if (buf != s->x) memcpy(buf, s->x, td * sizeof *buf);
            const pe_rotor *rot = R->stages[si] == PE_STAGE_PRE    ? NULL
                                  : R->stages[si] == PE_STAGE_POST ? &fl->post
                                                                   : &fl->ntk;
            double *out = s->pf + (f * (size_t)R->n_stages + (size_t)si) * R->per_res;
            if (pe_entropy_head(buf, mf->T, &g, rot, (pe_prep)R->o->prep, R->r_used, out,
                                R->bands ? out + PE_ENT_NSCORES : NULL, &s->w, NULL, e) < 0) {
                char msg[sizeof e->msg];
                snprintf(msg, sizeof msg, "%s", e->msg);
                pe_fail(e, "%s: layer %ld: %s head %d: stage %s: %s", pe_dump_path(d), layer,
                        t->tensor == PE_TENSOR_Q ? "q" : "k", t->head, pe_stage_name(R->stages[si]), msg);
                goto done;
            }
        }
    }
    for (int si = 0; si < R->n_stages; si++) {
        double *res = result(R, R->lj, i, si);
        for (size_t k = 0; k < R->per_res; k++) {
            for (size_t f = 0; f < nf; f++) s->tmp[f] = s->pf[(f * (size_t)R->n_stages + (size_t)si) * R->per_res + k];
            res[k] = pe_entropy_pool_mean(s->tmp, nf);
        }
    }
    rc = 0;
done:
    scratch_give(R, s);
    return rc;
}

static int emit_task(size_t i, void *ctx, pe_err *e)
{
    (void)i;
    (void)e;
    run *R = ctx;
    R->done++;
    if (R->progress) {
        fprintf(stderr, "\r%s: %zu/%zu heads", PROG, R->done, R->total);
        if (R->done == R->total) fputs("\r\033[K", stderr);
    }
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void layer_free(run *R)
{
    for (size_t f = 0; R->fl && f < R->in.n; f++) {
        pe_rotor_free(&R->fl[f].post);
        pe_rotor_free(&R->fl[f].ntk);
    }
}

/* Computes every task of layer lj into R->res. */
static int compute_layer(run *R, size_t lj, int jobs, pe_err *e)
{
    int want_post = 0, want_ntk = 0;
    for (int si = 0; si < R->n_stages; si++) {
        want_post |= R->stages[si] == PE_STAGE_POST;
        want_ntk |= R->stages[si] == PE_STAGE_NTK;
    }
    R->lj = lj;
    for (size_t f = 0; f < R->in.n; f++) {
        pe_dump *d = R->in.dumps[f];
        const pe_meta *mf = pe_dump_meta(d);
        file_layer *fl = &R->fl[f];
        fl->slot = pe_dump_find_layer(d, R->in.layers[lj]);
        const pe_layer_info *li = &mf->layers[fl->slot];
        pe_geom g = {mf->head_dim, mf->rotary_dim, mf->n_pairs, mf->pairing, li->theta};
        if (want_post && pe_rotor_init(&fl->post, &g, mf->positions, mf->T, jobs, e) < 0) return -1;
        if (want_ntk) {
            /* A layer without rotary embedding stays unrotated (its theta are 0). */
            if (li->rope) g.theta = R->ntk_theta[f];
            if (pe_rotor_init(&fl->ntk, &g, mf->positions, mf->T, jobs, e) < 0) return -1;
        }
    }
    /* The rotors stay for the next layer, which often has the same frequencies. */
    return pe_par_run(R->n_tasks, jobs, work_task, emit_task, R, e);
}

/* ---- output ---- */

static void write_inputs_meta(pe_table *t, const pe_inputs *in)
{
    for (size_t f = 0; f < in->n; f++) {
        const pe_meta *m = pe_dump_meta(in->dumps[f]);
        pe_table_meta(t, "input", "%s (T %zu, positions %lld..%lld, %zu layers, model %s)",
                      pe_dump_path(in->dumps[f]), m->T, (long long)m->positions[0],
                      (long long)m->positions[m->T - 1], m->n_layers, m->model ? m->model : "unknown");
    }
}

static void write_settings_meta(pe_table *t, const run *R)
{
    const ent_opts *o = R->o;
    const pe_meta *m = R->in.meta;
    char stages[32] = "";
    for (int si = 0; si < R->n_stages; si++) {
        if (si) strcat(stages, " ");
        strcat(stages, pe_stage_name(R->stages[si]));
    }
    pe_table_meta(t, "train_len", "%ld", R->L);
    pe_table_meta(t, "pairing", "%s", m->rotary_dim > 0 ? pe_pairing_name(m->pairing) : "none");
    pe_table_meta(t, "tensor", "%s", tensor_names[o->tensor]);
    pe_table_meta(t, "broadcast", "%s", o->broadcast ? "yes" : "no");
    pe_table_meta(t, "stage", "%s", stages);
    pe_table_meta(t, "prep", "%s", prep_names[o->prep]);
    if (o->rank > R->D)
        pe_table_meta(t, "rank", "%d (asked %ld, clamped to head_dim)", R->r_used, o->rank);
    else
        pe_table_meta(t, "rank", "%d", R->r_used);
    if (R->ntk_theta) {
        pe_table_meta(t, "ntk_len", "%ld", o->ntk_len);
        pe_table_meta(t, "ntk_factor", "%.17g", o->ntk_factor);
        pe_table_meta(t, "ntk_base", "%.17g", R->ntk_base);
    }
    pe_table_meta(t, "pooling", "each number is the mean over %zu file%s of the per-file numbers", R->in.n,
                  R->in.n == 1 ? "" : "s");
}

/* The rows of a tensor in a layer: (head, kv_head, task) in table order. */
typedef struct row_ref {
    int head, kv_head;
    size_t task;
} row_ref;

/* Fills rows for tensor tn; returns the count (room: n_heads). */
static size_t tensor_rows(const run *R, pe_tensor tn, row_ref *rows)
{
    size_t n = 0;
    if (tn == PE_TENSOR_Q) {
        for (size_t j = 0; j < R->in.n_heads; j++) {
            int h = R->in.heads[j];
            rows[n++] = (row_ref){h, h / R->kv_group, j};
        }
    } else if (R->o->broadcast) {
        for (size_t j = 0; j < R->in.n_heads; j++) {
            int h = R->in.heads[j], kv = h / R->kv_group;
            rows[n++] = (row_ref){h, kv, (size_t)R->kv_task[kv]};
        }
    } else {
        for (size_t ti = R->n_qtasks; ti < R->n_tasks; ti++) {
            int kv = R->tasks[ti].head;
            rows[n++] = (row_ref){kv, kv, ti};
        }
    }
    return n;
}

static int tensor_selected(const run *R, pe_tensor tn)
{
    return R->o->tensor == TENSOR_BOTH || R->o->tensor == (int)tn;
}

static const char *tensor_name(pe_tensor tn)
{
    return tn == PE_TENSOR_Q ? "q" : "k";
}

static double stage_theta(const run *R, size_t lj, int si, int i)
{
    if (R->stages[si] == PE_STAGE_NTK && layer_rope(R, lj)) return R->ntk_theta[0][i];
    return layer_theta(R, lj)[i];
}

static void emit_heads(pe_table *t, const run *R, row_ref *rows)
{
    for (size_t lj = 0; lj < R->in.n_layers; lj++) {
        for (int tn = 0; tn < 2; tn++) {
            if (!tensor_selected(R, (pe_tensor)tn)) continue;
            size_t n = tensor_rows(R, (pe_tensor)tn, rows);
            for (int si = 0; si < R->n_stages; si++) {
                for (size_t j = 0; j < n; j++) {
                    const double *v = result(R, lj, rows[j].task, si);
                    pe_table_int(t, R->in.layers[lj]);
                    pe_table_int(t, rows[j].head);
                    pe_table_int(t, rows[j].kv_head);
                    pe_table_str(t, tensor_name((pe_tensor)tn));
                    pe_table_str(t, pe_stage_name(R->stages[si]));
                    pe_table_str(t, prep_names[R->o->prep]);
                    pe_table_int(t, R->r_used);
                    for (int k = 0; k < PE_ENT_NSCORES; k++) pe_table_dbl(t, v[k]);
                    pe_table_end_row(t);
                }
                pe_table_break(t, 1);
            }
        }
        pe_table_break(t, 2);
    }
}

static void emit_bands(pe_table *t, const run *R, row_ref *rows)
{
    for (size_t lj = 0; lj < R->in.n_layers; lj++) {
        for (int tn = 0; tn < 2; tn++) {
            if (!tensor_selected(R, (pe_tensor)tn)) continue;
            size_t n = tensor_rows(R, (pe_tensor)tn, rows);
            for (int si = 0; si < R->n_stages; si++) {
                for (size_t j = 0; j < n; j++) {
                    const double *v = result(R, lj, rows[j].task, si) + PE_ENT_NSCORES;
                    for (int i = 0; i < R->P; i++) {
                        double th = stage_theta(R, lj, si, i);
                        pe_table_int(t, R->in.layers[lj]);
                        pe_table_int(t, rows[j].head);
                        pe_table_int(t, rows[j].kv_head);
                        pe_table_str(t, tensor_name((pe_tensor)tn));
                        pe_table_str(t, pe_stage_name(R->stages[si]));
                        pe_table_int(t, i);
                        pe_table_dbl(t, th);
                        pe_table_str(t, pe_class_name(pe_rope_classify(th, R->L, NULL)));
                        for (int k = 0; k < PE_BAND_NVALUES; k++) pe_table_dbl(t, v[(size_t)i * PE_BAND_NVALUES + k]);
                        pe_table_end_row(t);
                    }
                    pe_table_break(t, 2);
                }
            }
        }
    }
}

/* ---- select and the mask ---- */

typedef struct selection {
    pe_entropy_cand *cand;
    int *kv_head;     /* per candidate */
    size_t *lj;       /* per candidate: the layer slot in R->in.layers */
    size_t n;
    size_t *order;
    size_t n_sel;
} selection;

static void selection_free(selection *s)
{
    free(s->cand);
    free(s->kv_head);
    free(s->lj);
    free(s->order);
    memset(s, 0, sizeof *s);
}

static int make_selection(const run *R, row_ref *rows, selection *s, pe_err *e)
{
    size_t cap = R->in.n_layers * 2 * (R->in.n_heads ? R->in.n_heads : 1);
    int idx = score_index[R->o->score];
    memset(s, 0, sizeof *s);
    s->cand = pe_alloc(cap, sizeof *s->cand, 0, e);
    s->kv_head = pe_alloc(cap, sizeof *s->kv_head, 0, e);
    s->lj = pe_alloc(cap, sizeof *s->lj, 0, e);
    s->order = pe_alloc(cap, sizeof *s->order, 0, e);
    if (!s->cand || !s->kv_head || !s->lj || !s->order) {
        selection_free(s);
        return -1;
    }
    for (size_t lj = 0; lj < R->in.n_layers; lj++) {
        for (int tn = 0; tn < 2; tn++) {
            if (!tensor_selected(R, (pe_tensor)tn)) continue;
            size_t n = tensor_rows(R, (pe_tensor)tn, rows);
            for (size_t j = 0; j < n; j++) {
                pe_entropy_cand *c = &s->cand[s->n];
                c->layer = R->in.layers[lj];
                c->head = rows[j].head;
                c->tensor = tn;
                c->score = result(R, lj, rows[j].task, 0)[idx];
                s->kv_head[s->n] = rows[j].kv_head;
                s->lj[s->n] = lj;
                s->n++;
            }
        }
    }
    if (pe_entropy_rank(s->cand, s->n, R->o->order == 1, (size_t)R->o->top, s->order, &s->n_sel, e) < 0) {
        selection_free(s);
        return -1;
    }
    return 0;
}

static void emit_select(pe_table *t, const selection *s)
{
    for (size_t k = 0; k < s->n_sel; k++) {
        const pe_entropy_cand *c = &s->cand[s->order[k]];
        pe_table_int(t, (long long)k + 1);
        pe_table_int(t, c->layer);
        pe_table_int(t, c->head);
        pe_table_int(t, s->kv_head[s->order[k]]);
        pe_table_str(t, tensor_name((pe_tensor)c->tensor));
        pe_table_dbl(t, c->score);
        pe_table_end_row(t);
    }
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p == '\r')
            fputs("\\r", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    char buf[PE_NUMFMT_MAX];
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    fwrite(buf, 1, pe_fmt_g(buf, v, 17), f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The mask of the selected heads (schema in man peentropy, MASK FILE). */
static int write_mask(FILE *f, const run *R, const selection *s, char *const *files, pe_err *e)
{
    const pe_meta *m = R->in.meta;
    const ent_opts *o = R->o;
    const double thr = TWO_PI / (double)R->L;
    char **sorted = pe_alloc(R->in.n, sizeof *sorted, 0, e);
    if (!sorted) return -1;
    for (size_t i = 0; i < R->in.n; i++) sorted[i] = files[i];
    qsort(sorted, R->in.n, sizeof *sorted, cmp_str);

    fputs("{\"format\": \"petools-dope-mask\",\n \"format_version\": 1,\n \"created_by\": ", f);
    json_str(f, PROG " (petools) " PE_VERSION);
    fputs(",\n \"inputs\": [", f);
    for (size_t i = 0; i < R->in.n; i++) {
        if (i) fputs(", ", f);
        json_str(f, sorted[i]);
    }
    free(sorted);
    fputs("],\n \"model\": ", f);
    if (m->model)
        json_str(f, m->model);
    else
        fputs("null", f);
    fprintf(f, ",\n \"n_heads\": %d, \"n_kv_heads\": %d, \"head_dim\": %d, \"rotary_dim\": %d,\n", m->n_heads,
            m->n_kv_heads, m->head_dim, m->rotary_dim);
    fputs(" \"rope_pairing\": ", f);
    if (m->rotary_dim > 0)
        json_str(f, pe_pairing_name(m->pairing));
    else
        fputs("null", f);
    fprintf(f, ", \"train_len\": %ld,\n \"threshold\": ", R->L);
    json_num(f, thr);
    fprintf(f, ",\n \"selection\": {\"score\": \"%s\", \"order\": \"%s\", \"top\": %ld, \"r\": %d, "
               "\"stage\": \"%s\", \"prep\": \"%s\", \"tensor\": \"%s\", \"broadcast\": %s, ",
            score_names[o->score], order_names[o->order], o->top, R->r_used, pe_stage_name(R->stages[0]),
            prep_names[o->prep], tensor_names[o->tensor], o->broadcast ? "true" : "false");
    if (R->stages[0] == PE_STAGE_NTK) {
        fprintf(f, "\"ntk_len\": %ld, \"ntk_factor\": ", o->ntk_len);
        json_num(f, o->ntk_factor);
    } else {
        fputs("\"ntk_len\": null, \"ntk_factor\": null", f);
    }
    fputs("},\n \"heads\": [", f);
    for (size_t k = 0; k < s->n_sel; k++) {
        size_t ci = s->order[k];
        const pe_entropy_cand *c = &s->cand[ci];
        const double *theta = layer_theta(R, s->lj[ci]);
        int kv = s->kv_head[ci];
        fprintf(f, "%s\n  {\"rank\": %zu, \"layer\": %ld, \"tensor\": \"%s\", \"head\": %d, \"kv_head\": %d, "
                   "\"query_heads\": [",
                k ? "," : "", k + 1, c->layer, tensor_name((pe_tensor)c->tensor), c->head, kv);
        if (c->tensor == PE_TENSOR_Q || o->broadcast) {
            fprintf(f, "%d", c->head);
        } else {
            for (int h = kv * R->kv_group; h < (kv + 1) * R->kv_group; h++)
                fprintf(f, "%s%d", h > kv * R->kv_group ? ", " : "", h);
        }
        fputs("], \"score\": ", f);
        json_num(f, c->score);
        int first = 1;
        fputs(",\n   \"pairs\": [", f);
        for (int i = 0; i < R->P; i++)
            if (theta[i] <= thr) {
                fprintf(f, "%s%d", first ? "" : ", ", i);
                first = 0;
            }
        first = 1;
        fputs("], \"dims\": [", f);
        for (int i = 0; i < R->P; i++)
            if (theta[i] <= thr) {
                int a, b;
                pe_rope_pair_dims(m->pairing, m->rotary_dim, i, &a, &b);
                fprintf(f, "%s[%d, %d]", first ? "" : ", ", a, b);
                first = 0;
            }
        first = 1;
        fputs("], \"theta\": [", f);
        for (int i = 0; i < R->P; i++)
            if (theta[i] <= thr) {
                if (!first) fputs(", ", f);
                json_num(f, theta[i]);
                first = 0;
            }
        fputs("]}", f);
    }
    fputs(s->n_sel ? "\n ]}\n" : "]}\n", f);
    return 0;
}

/* ---- main ---- */

static int fail(const pe_err *e)
{
    fprintf(stderr, "%s: %s\n", PROG, e->msg);
    return e->kind == PE_ERRK_USAGE ? PE_EXIT_USAGE : PE_EXIT_DATA;
}

static int usage_error(const char *fmt, const char *a)
{
    fprintf(stderr, "%s: ", PROG);
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    return PE_EXIT_USAGE;
}

static const char *const heads_cols[] = {"layer", "head", "kv_head", "tensor", "stage", "prep", "r",
                                         "score", "score_norm", "rho", "lambda1", "full", "eff_rank"};
static const char *const bands_cols[] = {"layer", "head", "kv_head", "tensor", "stage", "band",
                                         "theta", "class", "mu1", "mu2", "entropy"};
static const char *const select_cols[] = {"rank", "layer", "head", "kv_head", "tensor", "score"};

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int main(int argc, char **argv)
{
    pe_common_opts c;
    ent_opts o = {TABLE_HEADS, TENSOR_BOTH, PE_STAGE_POST, PE_PREP_PAPER, 16, 0, 1.0, 0, 8, 0, 0, NULL,
                  0, 0, 0, 0};
    pe_err e = {0};
    pe_output out = {0}, mout = {0};
    run R;
    selection sel = {0};
    pe_table *table = NULL;
    row_ref *rows = NULL;
    int first, status = PE_EXIT_OK;
    char *const *files;
    size_t n_files;
    double t_start = now();

    memset(&R, 0, sizeof R);
    pthread_mutex_init(&R.pool_mu, NULL);
    pe_dump_guard(PROG);
    switch (pe_cli_parse(argc, argv, &tool, &c, &o, &first)) {
    case PE_CLI_EXIT_OK:
        return pe_close_stdout(PROG, PE_EXIT_OK);
    case PE_CLI_EXIT_USAGE: return PE_EXIT_USAGE;
    default: break;
    }
    files = argv + first;
    n_files = (size_t)(argc - first);

    /* Checks of the command line alone. */
    if (n_files == 0) {
        fprintf(stderr, "%s: no input file (see %s --help)\n", PROG, PROG);
        status = PE_EXIT_USAGE;
        goto end;
    }
    if (o.table != TABLE_SELECT) {
        const char *only = o.set_top ? "--top" : o.set_order ? "--order" : o.set_score ? "--score" : o.mask ? "--mask" : NULL;
        if (only) {
            status = usage_error("%s: only for -t select", only);
            goto end;
        }
    }
    if (o.table == TABLE_SELECT && o.stage == STAGE_ALL) {
        status = usage_error("%s", "-t select ranks the heads of one stage: give --stage pre, post or ntk, not all");
        goto end;
    }
    if (o.stage == PE_STAGE_NTK && o.ntk_len == 0) {
        status = usage_error("%s", "--stage ntk needs the target length: give --ntk-len N");
        goto end;
    }
    if (o.ntk_len && o.stage != PE_STAGE_NTK && o.stage != STAGE_ALL) {
        status = usage_error("%s", "--ntk-len: only with --stage ntk or all");
        goto end;
    }
    if (o.set_factor && !o.ntk_len) {
        status = usage_error("%s", "--ntk-factor: only with --ntk-len");
        goto end;
    }
    if (o.mask && strcmp(o.mask, "-") == 0 && c.output && strcmp(c.output, "-") == 0) {
        status = usage_error("%s", "--mask -: the table already goes to standard output (-o -); give one of them a file");
        goto end;
    }
    if (o.mask && c.output && strcmp(o.mask, "-") != 0 &&
        (strcmp(o.mask, c.output) == 0 || same_file(o.mask, c.output))) {
        status = usage_error("--mask: '%s' is also the --output file", o.mask);
        goto end;
    }

    pe_open_opts oo = {c.pairing, c.max_memory};
    if (pe_inputs_open(&R.in, files, n_files, &oo, c.layers, c.n_layers, c.heads, c.n_heads, c.train_len, &e) < 0) {
        status = fail(&e);
        goto end;
    }
    const pe_meta *m = R.in.meta;
    R.c = &c;
    R.o = &o;
    R.D = m->head_dim;
    R.P = m->n_pairs;
    R.kv_group = m->n_heads / m->n_kv_heads;
    R.L = R.in.train_len;
    R.r_used = o.rank > R.D ? R.D : (int)o.rank;
    if (o.stage == STAGE_ALL) {
        R.stages[R.n_stages++] = PE_STAGE_PRE;
        R.stages[R.n_stages++] = PE_STAGE_POST;
        if (o.ntk_len) R.stages[R.n_stages++] = PE_STAGE_NTK;
    } else {
        R.stages[R.n_stages++] = (pe_stage)o.stage;
    }
    R.bands = o.table == TABLE_BANDS;
    R.per_res = PE_ENT_NSCORES + (R.bands ? (size_t)R.P * PE_BAND_NVALUES : 0);

    if (o.mask && R.L <= 0) {
        pe_fail_usage(&e, "--mask needs the training length (its pairs have theta <= 2 pi / L): the files have no "
                          "train_len; give --train-len");
        status = fail(&e);
        goto end;
    }
    if (o.ntk_len) {
        if (R.L <= 0) {
            pe_fail_usage(&e, "--stage %s needs the training length (dynamic NTK scales from it): the files have no "
                              "train_len; give --train-len",
                          stage_names[o.stage]);
            status = fail(&e);
            goto end;
        }
        pe_scaling sc = {0};
        sc.kind = PE_SCALE_DYNAMIC;
        sc.factor = o.ntk_factor;
        sc.target_len = o.ntk_len;
        if (!(R.ntk_theta = pe_alloc(R.in.n, sizeof *R.ntk_theta, 1, &e))) {
            status = fail(&e);
            goto end;
        }
        for (size_t f = 0; f < R.in.n; f++) {
            const pe_meta *mf = pe_dump_meta(R.in.dumps[f]);
            pe_scale_info info;
            if (!(R.ntk_theta[f] = pe_alloc(mf->n_pairs ? (size_t)mf->n_pairs : 1, sizeof(double), 1, &e))) {
                status = fail(&e);
                goto end;
            }
            info.base_scaled = mf->rope_theta;
            if (mf->rotary_dim > 0 &&
                pe_scaling_apply(&sc, mf->rotary_dim, mf->rope_theta, R.L, mf->theta, R.ntk_theta[f], &info, &e) < 0) {
                char msg[sizeof e.msg];
                pe_errkind kind = e.kind;
                snprintf(msg, sizeof msg, "%s", e.msg);
                pe_fail(&e, "%s: --stage ntk: %s", pe_dump_path(R.in.dumps[f]), msg);
                e.kind = kind;
                status = fail(&e);
                goto end;
            }
            if (f == 0) R.ntk_base = info.base_scaled;
        }
    }

    /* Outputs: the table (unless --mask - takes standard output alone) and the mask. */
    int want_table = !(o.mask && strcmp(o.mask, "-") == 0 && !c.output);
    if (want_table && pe_output_open(&out, c.output, "--output", files, n_files, &e) < 0) {
        status = fail(&e);
        goto end;
    }
    if (o.mask && pe_output_open(&mout, o.mask, "--mask", files, n_files, &e) < 0) {
        status = fail(&e);
        goto end;
    }

    /* The tasks of a layer: the selected query heads, then the key heads they use. */
    R.kv_task = pe_alloc((size_t)m->n_kv_heads, sizeof *R.kv_task, 0, &e);
    R.tasks = pe_alloc(R.in.n_heads + (size_t)m->n_kv_heads + 1, sizeof *R.tasks, 0, &e);
    rows = pe_alloc(R.in.n_heads + (size_t)m->n_kv_heads + 1, sizeof *rows, 0, &e);
    if (!R.kv_task || !R.tasks || !rows) {
        status = fail(&e);
        goto end;
    }
    for (int k = 0; k < m->n_kv_heads; k++) R.kv_task[k] = -1;
    if (o.tensor != TENSOR_K)
        for (size_t j = 0; j < R.in.n_heads; j++) R.tasks[R.n_tasks++] = (task){PE_TENSOR_Q, R.in.heads[j]};
    R.n_qtasks = R.n_tasks;
    if (o.tensor != TENSOR_Q)
        for (size_t j = 0; j < R.in.n_heads; j++) {
            int kv = R.in.heads[j] / R.kv_group;
            if (R.kv_task[kv] >= 0) continue;
            R.kv_task[kv] = (int)R.n_tasks;
            R.tasks[R.n_tasks++] = (task){PE_TENSOR_K, kv};
        }
    size_t n_res;
    if (pe_mul_size(R.in.n_layers * R.n_tasks * (size_t)R.n_stages, R.per_res, &n_res) != 0 ||
        !(R.res = pe_alloc(n_res ? n_res : 1, sizeof *R.res, 0, &e))) {
        if (!e.msg[0]) pe_fail(&e, "out of memory");
        status = fail(&e);
        goto end;
    }
    for (size_t f = 0; f < R.in.n; f++) {
        size_t T = pe_dump_meta(R.in.dumps[f])->T;
        if (T > R.T_max) R.T_max = T;
    }
    int jobs = c.jobs ? c.jobs : pe_cpu_count();
    R.n_pool = jobs < (int)R.n_tasks ? jobs : (int)R.n_tasks;
    if (R.n_pool < 1) R.n_pool = 1;
    if (check_memory_need(&R, n_res, &e) < 0) {
        status = fail(&e);
        goto end;
    }
    if (!(R.pool = pe_alloc((size_t)R.n_pool, sizeof *R.pool, 1, &e)) ||
        !(R.fl = pe_alloc(R.in.n, sizeof *R.fl, 1, &e))) {
        status = fail(&e);
        goto end;
    }

    /* Compute.  Threads go over heads; the BLAS stays on the calling thread. */
    openblas_set_num_threads(1);
    R.progress = !c.quiet && isatty(STDERR_FILENO);
    R.total = R.in.n_layers * R.n_tasks;
    for (size_t lj = 0; lj < R.in.n_layers; lj++) {
        double t0 = now();
        if (compute_layer(&R, lj, jobs, &e) < 0) {
            if (R.progress) fputs("\r\033[K", stderr);
            status = fail(&e);
            goto end;
        }
        if (c.verbose)
            fprintf(stderr, "%s: layer %ld: %zu heads x %zu file%s x %d stage%s in %.3f s\n", PROG, R.in.layers[lj],
                    R.n_tasks, R.in.n, R.in.n == 1 ? "" : "s", R.n_stages, R.n_stages == 1 ? "" : "s", now() - t0);
    }

    if (o.table == TABLE_SELECT && make_selection(&R, rows, &sel, &e) < 0) {
        status = fail(&e);
        goto end;
    }

    /* Write. */
    if (want_table) {
        const char *const *cols = o.table == TABLE_HEADS ? heads_cols : o.table == TABLE_BANDS ? bands_cols : select_cols;
        int ncol = o.table == TABLE_HEADS ? 13 : o.table == TABLE_BANDS ? 11 : 6;
        if (!(table = pe_table_open(out.fp, c.format, c.digits, PROG, table_names[o.table], cols, ncol, &e))) {
            status = fail(&e);
            goto end;
        }
        pe_table_meta(table, "version", "%s", PE_VERSION);
        write_inputs_meta(table, &R.in);
        write_settings_meta(table, &R);
        if (o.table == TABLE_SELECT) {
            pe_table_meta(table, "score", "%s (%s)", score_names[o.score], score_desc[o.score]);
            pe_table_meta(table, "order", "%s", order_names[o.order]);
            pe_table_meta(table, "top", "%ld", o.top);
            emit_select(table, &sel);
        } else if (o.table == TABLE_HEADS) {
            emit_heads(table, &R, rows);
        } else {
            emit_bands(table, &R, rows);
        }
        if (pe_table_finish(table, &e) < 0) {
            table = NULL;
            status = fail(&e);
            goto end;
        }
        table = NULL;
    }
    if (o.mask && write_mask(mout.fp, &R, &sel, files, &e) < 0) {
        status = fail(&e);
        goto end;
    }
    /* Both outputs complete before either is renamed into place (a mask on
     * standard output has nothing to rename: pe_output_close checks it). */
    if (mout.fp && mout.tmp_path && (fflush(mout.fp) != 0 || ferror(mout.fp))) {
        pe_output_close(&mout, 1, &e); /* names the file and the error */
        status = fail(&e);
        goto end;
    }
    if (want_table && pe_output_close(&out, 1, &e) < 0) {
        status = fail(&e);
        goto end;
    }
    if (mout.fp && pe_output_close(&mout, 1, &e) < 0) {
        status = fail(&e);
        goto end;
    }
    if (c.verbose) fprintf(stderr, "%s: done in %.3f s\n", PROG, now() - t_start);

end:
    if (table) pe_table_finish(table, NULL);
    if (out.fp) pe_output_close(&out, 0, NULL);
    if (mout.fp) pe_output_close(&mout, 0, NULL);
    selection_free(&sel);
    free(rows);
    layer_free(&R);
    free(R.fl);
    for (int i = 0; R.pool && i < R.n_pool; i++) scratch_free(&R.pool[i]);
    free(R.pool);
    free(R.res);
    free(R.tasks);
    free(R.kv_task);
    for (size_t f = 0; R.ntk_theta && f < R.in.n; f++) free(R.ntk_theta[f]);
    free(R.ntk_theta);
    if (R.in.n) pe_inputs_close(&R.in);
    pthread_mutex_destroy(&R.pool_mu);
    pe_common_opts_free(&c);
    return pe_close_stdout(PROG, status);
}
