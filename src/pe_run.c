/* pe_run.c: the run engine (see pe_run.h). */
#include "pe_run.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pe_fft.h"
#include "pe_version.h"

/* OpenBLAS's pthreads build starts its own threads when it loads, and they
 * spin on sched_yield for about 2^28 cycles before they sleep: on two cores
 * that takes a core from the pool at the start of every run.  BLAS runs on
 * one thread here, so they are stopped; weak, as other BLAS builds lack it. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

#define N_SLOTS 6

typedef struct worker_bufs {
    double *p[N_SLOTS];
    size_t cap[N_SLOTS];
} worker_bufs;

/* A key head shared by the query heads of its group (one input file). */
typedef struct key_entry {
    size_t lj;
    int kvh, rotate;
    double *k;
    size_t cap;
    int loading, failed;
    int users; /* query tasks still to use it */
    pe_err err;
    struct key_entry *next;
} key_entry;

/* The next task's query head, read while this one is computed (one-head
 * tables, one file, several threads, a head of at most PREFETCH_MAX). */
#define PREFETCH_MAX ((size_t)64 << 20)
typedef struct prefetch {
    pe_pool_job *job;
    size_t task;     /* whose query head it reads */
    int rotate;
    double *buf;     /* made (and its pages faulted in) by the job itself */
    size_t cap, n;
    pe_err err;
    pe_run *r;
} prefetch;

/* A task's key head, read on another thread while the task reads its
 * query head (one-head tables, one file, several threads): the first head
 * of a run, and of each key group, would otherwise read both in turn. */
typedef struct key_ahead {
    pe_pool_job *job;
    size_t task;
    int rotate;
    pe_run *r;
} key_ahead;

struct pe_run_priv {
    worker_bufs *w; /* one per worker of the pool (one-head tables: w[0] only) */
    int n_w;
    prefetch pf;
    key_ahead ka;
    pthread_mutex_t kmu;
    pthread_cond_t kcond;
    key_entry *keys;  /* in use */
    key_entry *spare; /* done with: their buffers are reused */
    unsigned char *res;
    double t0;
    int progress, shown;
    size_t emitted;
    /* The resolved rotations of the specs (pe_run_rotation): per spec,
     * file (when the spec depends on the file's length), selected layer and
     * head (when it depends on the head: query heads, then key heads). */
    pe_rotation *rots;
    size_t n_rots, rot_nf, rot_nh;
    int rot_per_file, rot_per_head;
};

static int key_shared(const pe_run *r);
static void key_ahead_start(pe_run *r, const pe_task *t, int rotate);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the door ---- */

pe_dump *pe_run_dump(const pe_run *r, size_t f)
{
    return r->each ? r->each[f] : r->in.dumps[f];
}

int pe_run_slot(const pe_run *r, size_t f, size_t lj)
{
    return pe_dump_find_layer(pe_run_dump(r, f), r->in.layers[lj]);
}

const double *pe_run_theta(const pe_run *r, size_t lj)
{
    return r->in.meta->layers[pe_run_slot(r, 0, lj)].theta;
}

pe_geom pe_run_geom(const pe_run *r, size_t f, int slot)
{
    const pe_meta *m = pe_dump_meta(pe_run_dump(r, f));
    pe_geom g = {m->head_dim, m->rotary_dim, m->n_pairs, m->pairing, m->layers[slot].theta};
    return g;
}

static int one_head(const pe_run *r)
{
    return (r->def->flags & PE_TABLE_ONE_HEAD) != 0;
}

/* A head buffer, its pages faulted in here: a read would fault them in
 * under the HDF5 lock (pe_dump_read_stored), and the other threads would
 * wait for the lock as long (new pages are slow on a virtual machine). */
static double *head_buffer(size_t n, pe_err *e)
{
    double *x = pe_alloc_big(n ? n : 1, sizeof *x, e);
    if (x) memset(x, 0, (n ? n : 1) * sizeof *x);
    return x;
}

double *pe_run_buffer(pe_run *r, int slot, size_t n, pe_err *e)
{
    /* One head at a time: one set of buffers, whichever thread runs it. */
    worker_bufs *w = &r->priv->w[one_head(r) ? 0 : pe_pool_worker()];
    if (w->cap[slot] < n) {
        free(w->p[slot]);
        w->cap[slot] = 0;
        if (!(w->p[slot] = head_buffer(n, e))) return NULL;
        w->cap[slot] = n;
    }
    return w->p[slot];
}

static size_t rot_index(const pe_run *r, size_t s, const pe_task *t, size_t f)
{
    const struct pe_run_priv *p = r->priv;
    size_t fi = p->rot_per_file ? f : 0, hi = 0;
    if (p->rot_per_head) hi = t->tensor == PE_TENSOR_Q ? (size_t)t->head : (size_t)r->in.meta->n_heads + (size_t)t->head;
    return ((s * p->rot_nf + fi) * r->in.n_layers + t->lj) * p->rot_nh + hi;
}

const pe_rotation *pe_run_rotation(const pe_run *r, size_t s, const pe_task *t, size_t f)
{
    return &r->priv->rots[rot_index(r, s, t, f)];
}

/* Reads into x and rotates (the door itself). */
static int read_into(pe_run *r, const pe_task *t, size_t f, pe_tensor tn, int head, int how, double *x, pe_err *e)
{
    pe_dump *d = pe_run_dump(r, f);
    const pe_meta *m = pe_dump_meta(d);
    int slot = pe_run_slot(r, f, t->lj);
    if (pe_dump_read_head(d, (size_t)slot, tn, head, x, e) < 0) return -1;
    if (how == PE_READ_RAW) return 0;
    pe_geom g = pe_run_geom(r, f, slot);
    if (!r->priv->rots) { /* no spec resolved (--check): the file's own rotation */
        if (how == PE_READ_ROTATED) pe_rope_rotate(x, m->T, &g, m->positions, +1);
        return 0;
    }
    pe_rotation_apply(pe_run_rotation(r, r->file_spec ? r->file_spec[f] : 0, t, f), x, m->T, &g, m->positions,
                      tn == PE_TENSOR_Q, how == PE_READ_ROTATED);
    return 0;
}

static int prefetch_read(size_t i, void *ctx, pe_err *e)
{
    (void)i;
    (void)e;
    prefetch *pf = ctx;
    const pe_task *t = &pf->r->tasks[pf->task];
    if (pf->cap < pf->n) {
        free(pf->buf);
        pf->cap = (pf->buf = head_buffer(pf->n, &pf->err)) ? pf->n : 0;
        if (!pf->buf) return -1;
    }
    return read_into(pf->r, t, 0, PE_TENSOR_Q, t->head, pf->rotate, pf->buf, &pf->err);
}

/* Takes the prefetched head of task t into buffer `slot` when there is
 * one (1), and starts reading the next task's. */
static int prefetch_take(pe_run *r, const pe_task *t, int rotate, int slot, size_t n)
{
    prefetch *pf = &r->priv->pf;
    size_t i = (size_t)(t - r->tasks);
    int got = 0;
    if (pf->job) {
        int ok = pe_pool_finish(r->pool, pf->job, NULL) == 0;
        pf->job = NULL;
        if (ok && pf->task == i && pf->rotate == rotate) { /* swap it in */
            worker_bufs *w = &r->priv->w[0];
            double *b = w->p[slot];
            size_t c = w->cap[slot];
            w->p[slot] = pf->buf;
            w->cap[slot] = pf->cap;
            pf->buf = b;
            pf->cap = c;
            got = 1;
        }
    }
    if (i + 1 < r->n_tasks && r->tasks[i + 1].tensor == PE_TENSOR_Q) {
        pf->task = i + 1;
        pf->rotate = rotate;
        pf->n = n;
        pf->r = r;
        pf->job = pe_pool_start(r->pool, prefetch_read, pf);
    }
    return got;
}

double *pe_run_read(pe_run *r, const pe_task *t, size_t f, pe_tensor tn, int head, int rotate, int slot,
                    pe_err *e)
{
    const pe_meta *m = pe_dump_meta(pe_run_dump(r, f));
    size_t n = m->T * (size_t)m->head_dim;
    /* A failed prefetch is not reported: the task reads its head again.
     * The jobs start before this thread faults in a buffer of its own (new
     * pages are slow here: the other threads fault theirs meanwhile), the
     * key last, so that an idle thread (which takes the newest job) reads
     * it first: this task needs it next. */
    if (one_head(r) && r->n_files == 1 && r->jobs > 1 && tn == PE_TENSOR_Q && t->tensor == PE_TENSOR_Q &&
        head == t->head && n * sizeof(double) <= PREFETCH_MAX) {
        int got = prefetch_take(r, t, rotate, slot, n);
        if (key_shared(r)) key_ahead_start(r, t, rotate);
        if (got) return r->priv->w[0].p[slot];
    }
    double *x = pe_run_buffer(r, slot, n, e);
    if (!x || read_into(r, t, f, tn, head, rotate, x, e) < 0) return NULL;
    return x;
}

static int key_shared(const pe_run *r)
{
    return r->n_files == 1 && !r->priv->rot_per_head && !r->file_spec;
}

/* The key entry of task t's group, read by this thread unless another has
 * it or is reading it (then waits).  NULL only when out of memory; a failed
 * read is the entry's (failed, err).  A lookup does not count as a use. */
static key_entry *key_acquire(pe_run *r, const pe_task *t, size_t f, int rotate, pe_err *e)
{
    struct pe_run_priv *p = r->priv;
    pthread_mutex_lock(&p->kmu);
    key_entry *ke = p->keys;
    while (ke && !(ke->lj == t->lj && ke->kvh == t->kv_head && ke->rotate == rotate)) ke = ke->next;
    if (!ke) {
        if (p->spare) {
            ke = p->spare;
            p->spare = ke->next;
        } else if (!(ke = pe_alloc(1, sizeof *ke, 1, e))) {
            pthread_mutex_unlock(&p->kmu);
            return NULL;
        }
        ke->lj = t->lj;
        ke->kvh = t->kv_head;
        ke->rotate = rotate;
        ke->loading = 1;
        ke->failed = 0;
        ke->users = 0;
        for (size_t i = 0; i < r->n_tasks; i++)
            ke->users += r->tasks[i].lj == t->lj && r->tasks[i].tensor == PE_TENSOR_Q &&
                         r->tasks[i].kv_head == t->kv_head;
        ke->next = p->keys;
        p->keys = ke;
        pthread_mutex_unlock(&p->kmu);
        const pe_meta *m = pe_dump_meta(pe_run_dump(r, f));
        size_t n = m->T * (size_t)m->head_dim;
        int bad = 0;
        if (ke->cap < n) {
            free(ke->k);
            ke->cap = 0;
            if (!(ke->k = head_buffer(n, &ke->err)))
                bad = 1;
            else
                ke->cap = n;
        }
        bad = bad || read_into(r, t, f, PE_TENSOR_K, t->kv_head, rotate, ke->k, &ke->err) < 0;
        pthread_mutex_lock(&p->kmu);
        ke->loading = 0;
        ke->failed = bad;
        pthread_cond_broadcast(&p->kcond);
    }
    while (ke->loading) pthread_cond_wait(&p->kcond, &p->kmu);
    pthread_mutex_unlock(&p->kmu);
    return ke;
}

static int key_ahead_run(size_t i, void *ctx, pe_err *e)
{
    (void)i;
    key_ahead *ka = ctx;
    pe_err ignored; /* out of memory: the task tries again and reports it */
    (void)e;
    (void)key_acquire(ka->r, &ka->r->tasks[ka->task], 0, ka->rotate, &ignored);
    return 0;
}

/* Waits for the key job, if any: it must be done before its task ends. */
static void key_ahead_finish(pe_run *r)
{
    key_ahead *ka = &r->priv->ka;
    if (ka->job) pe_pool_finish(r->pool, ka->job, NULL);
    ka->job = NULL;
}

/* Starts reading task t's key head on another thread, unless it is read. */
static void key_ahead_start(pe_run *r, const pe_task *t, int rotate)
{
    struct pe_run_priv *p = r->priv;
    key_ahead_finish(r);
    pthread_mutex_lock(&p->kmu);
    const key_entry *ke = p->keys;
    while (ke && !(ke->lj == t->lj && ke->kvh == t->kv_head && ke->rotate == rotate)) ke = ke->next;
    pthread_mutex_unlock(&p->kmu);
    if (ke) return;
    p->ka = (key_ahead){NULL, (size_t)(t - r->tasks), rotate, r};
    p->ka.job = pe_pool_start(r->pool, key_ahead_run, &p->ka);
}

const double *pe_run_key(pe_run *r, const pe_task *t, size_t f, int rotate, int slot, pe_err *e)
{
    if (!key_shared(r)) return pe_run_read(r, t, f, PE_TENSOR_K, t->kv_head, rotate, slot, e);
    if (one_head(r)) key_ahead_finish(r); /* only one-head tables start it: their tasks run one at a time */
    key_entry *ke = key_acquire(r, t, f, rotate, e);
    if (!ke) return NULL;
    if (ke->failed) {
        *e = ke->err;
        pe_run_key_done(r, t, f);
        return NULL;
    }
    return ke->k;
}

void pe_run_key_done(pe_run *r, const pe_task *t, size_t f)
{
    (void)f;
    if (!key_shared(r)) return;
    struct pe_run_priv *p = r->priv;
    pthread_mutex_lock(&p->kmu);
    key_entry **pp = &p->keys;
    while (*pp && !((*pp)->lj == t->lj && (*pp)->kvh == t->kv_head)) pp = &(*pp)->next;
    key_entry *ke = *pp;
    if (ke && --ke->users <= 0) {
        *pp = ke->next;
        ke->next = p->spare;
        p->spare = ke;
    }
    pthread_mutex_unlock(&p->kmu);
}

/* ---- small shared pieces ---- */

const char *pe_run_libraries(void)
{
    static char buf[320];
    char blas[64] = "OpenBLAS";
    const char *cfg = openblas_get_config();
    int maj = 0, min = 0, patch = 0;
    /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": the first two words. */
    if (cfg && sscanf(cfg, "%*s %40s", blas + 9) == 1) blas[8] = ' ';
    LAPACKE_ilaver(&maj, &min, &patch);
    snprintf(buf, sizeof buf, "HDF5 %s, FFTW %s, %s (kernels %s), LAPACK %d.%d.%d", pe_hdf5_version(), pe_fft_version(),
             blas, openblas_get_corename(), maj, min, patch);
    return buf;
}

void pe_run_meta_geometry(pe_run *r, const char *softcap_note)
{
    const pe_meta *m = r->in.meta;
    pe_table_meta(r->table, "train_len", "%ld", r->in.train_len);
    pe_table_meta(r->table, "pairing", "%s", m->rotary_dim > 0 ? pe_pairing_name(m->pairing) : "none");
    pe_table_meta(r->table, "attn_scale", "%.17g", m->attn_scale);
    if (softcap_note && m->attn_softcap > 0)
        pe_table_meta(r->table, "attn_softcap", "%.17g%s", m->attn_softcap, softcap_note);
}

void pe_run_row_start(pe_table *t, const pe_task *tk)
{
    pe_table_int(t, tk->layer);
    pe_table_int(t, tk->head);
    pe_table_int(t, tk->tensor == PE_TENSOR_Q ? tk->kv_head : tk->head);
}

int pe_run_last_of_layer(const pe_run *r, const pe_task *t)
{
    size_t i = (size_t)(t - r->tasks);
    return i + 1 == r->n_tasks || r->tasks[i + 1].lj != t->lj;
}

/* ---- the steps ---- */

static int make_tasks(pe_run *r, pe_err *e)
{
    size_t nh = r->in.n_heads, per = 2 * nh;
    if (!(r->tasks = pe_alloc(r->in.n_layers * per + 1, sizeof *r->tasks, 0, e))) return -1;
    for (size_t lj = 0; lj < r->in.n_layers; lj++) {
        long layer = r->in.layers[lj];
        if (r->query_tasks)
            for (size_t h = 0; h < nh; h++) {
                int head = r->in.heads[h];
                r->tasks[r->n_tasks++] = (pe_task){lj, layer, PE_TENSOR_Q, head, head / r->kv_group};
            }
        if (!r->key_tasks) continue;
        int last = -1; /* heads are sorted, so their key heads are too */
        for (size_t h = 0; h < nh; h++) {
            int kv = r->in.heads[h] / r->kv_group;
            if (kv != last) r->tasks[r->n_tasks++] = (pe_task){lj, layer, PE_TENSOR_K, kv, kv};
            last = kv;
        }
    }
    return 0;
}

/* The merge rules of the columns, for pemerge: "name:rule ...". */
static void meta_merge(pe_run *r)
{
    char buf[2048];
    size_t at = 0;
    for (int i = 0; i < r->ncol && at < sizeof buf; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s:%s", i ? " " : "", r->cols[i].name,
                               r->cols[i].merge);
    pe_table_meta(r->table, "merge", "%s", buf);
}

static void progress(pe_run *r, int last)
{
    struct pe_run_priv *p = r->priv;
    if (!p->progress) return;
    if (!last && !p->shown && now() - p->t0 < 1.0) return; /* quick runs stay quiet */
    if (last) {
        if (p->shown) fputs("\r\033[K", stderr);
        return;
    }
    fprintf(stderr, "\r%s: %zu/%zu heads", r->prog, p->emitted, r->n_tasks);
    p->shown = 1;
}

static void *result_of(pe_run *r, size_t i)
{
    return r->priv->res + i * r->result_size;
}

void *pe_run_result(pe_run *r, size_t i)
{
    return result_of(r, i);
}

size_t pe_run_task_index(const pe_run *r, size_t lj, pe_tensor tn, int head)
{
    for (size_t i = 0; i < r->n_tasks; i++)
        if (r->tasks[i].lj == lj && r->tasks[i].tensor == tn && r->tasks[i].head == head) return i;
    return 0;
}

static int engine_work(size_t i, void *ctx, pe_err *e)
{
    pe_run *r = ctx;
    return r->def->work(r, &r->tasks[i], result_of(r, i), e);
}

static int engine_emit(size_t i, void *ctx, pe_err *e)
{
    pe_run *r = ctx;
    const pe_task *t = &r->tasks[i];
    if (r->def->emit && r->def->emit(r, t, result_of(r, i), e) < 0) return -1;
    if (r->def->release) r->def->release(result_of(r, i));
    r->priv->emitted = i + 1;
    progress(r, 0);
    if (r->c.verbose && pe_run_last_of_layer(r, t))
        fprintf(stderr, "%s: layer %ld done at %.3f s\n", r->prog, t->layer, now() - r->priv->t0);
    return 0;
}

static int fail(const pe_run *r, const pe_err *e)
{
    fprintf(stderr, "%s: %s\n", r->prog, e->msg);
    return e->kind == PE_ERRK_USAGE ? PE_EXIT_USAGE : PE_EXIT_DATA;
}

static int open_inputs(pe_run *r, pe_err *e)
{
    pe_open_opts oo = {r->c.pairing, r->c.max_memory};
    if (r->def->flags & PE_TABLE_EACH_FILE) {
        if (!(r->each = pe_alloc(r->n_files ? r->n_files : 1, sizeof *r->each, 1, e))) return -1;
        for (size_t f = 0; f < r->n_files; f++)
            if (!(r->each[f] = pe_dump_open(r->files[f], &oo, e))) return -1;
        return 0;
    }
    if (r->n_files == 0) return 0;
    if (pe_inputs_open(&r->in, r->files, r->n_files, &oo, r->c.layers, r->c.n_layers, r->heads ? r->heads : r->c.heads,
                       r->heads ? r->n_heads : r->c.n_heads, r->c.train_len, e) < 0) {
        size_t n = strlen("--heads:");
        if (r->heads_opt && strncmp(e->msg, "--heads:", n) == 0) { /* name the option that chose the head */
            char msg[sizeof e->msg];
            snprintf(msg, sizeof msg, "%s:%s", r->heads_opt, e->msg + n);
            snprintf(e->msg, sizeof e->msg, "%s", msg);
        }
        return -1;
    }
    r->kv_group = r->in.meta->n_heads / r->in.meta->n_kv_heads;
    for (size_t f = 0; f < r->in.n; f++)
        if (pe_dump_meta(r->in.dumps[f])->T > r->T_max) r->T_max = pe_dump_meta(r->in.dumps[f])->T;
    return 0;
}

/* The specs of the run (man petools-whatif(7)): checked against the inputs,
 * their masks read, and resolved for every file, layer and head the door
 * may be asked for. */
static int setup_specs(pe_run *r, pe_err *e)
{
    struct pe_run_priv *p = r->priv;
    int many = (r->def->flags & PE_TABLE_MANY_PE) != 0, per_file = (r->def->flags & PE_TABLE_FILE_PE) != 0;
    if (r->c.n_pe > 1 && !many)
        return pe_fail_usage(e, "--pe: one spec per run for -t %s (peanalyze -t whatif compares several)",
                             r->def->name);
    if (r->c.n_pe && per_file)
        return pe_fail_usage(e, "--pe: -t %s rotates each file with the spec its loss was recorded with (the pe "
                                "attribute of /tokens/nll)",
                             r->def->name);
    r->n_specs = many ? 1 + r->c.n_pe : 1;
    if (per_file) { /* the distinct specs of the files, in order of first appearance */
        if (!(r->file_spec = pe_alloc(r->in.n + 1, sizeof *r->file_spec, 1, e))) return -1;
        r->n_specs = 0;
    }
    if (!(r->specs = pe_alloc(r->n_specs + r->in.n + 1, sizeof *r->specs, 1, e)) ||
        !(r->spec_names = pe_alloc(r->n_specs + r->in.n + 1, sizeof *r->spec_names, 1, e)))
        return -1;
    for (size_t f = 0; per_file && f < r->in.n; f++) {
        const pe_meta *m = pe_dump_meta(r->in.dumps[f]);
        const char *text = m->nll_pe ? m->nll_pe : "rope";
        size_t s = 0;
        while (s < r->n_specs && strcmp(r->spec_names[s], text) != 0) s++;
        r->file_spec[f] = s;
        if (s < r->n_specs) continue;
        pe_whatif *w;
        if (pe_whatif_parse("pe", text, &w, e) < 0) {
            char msg[sizeof e->msg];
            snprintf(msg, sizeof msg, "%s", e->msg);
            return pe_fail(e, "%s: /tokens/nll: %s", r->files[f], msg);
        }
        r->specs[r->n_specs] = w;
        r->spec_names[r->n_specs++] = w->text;
    }
    if (many && !per_file) { /* rope, the baseline, first; then each other spec once */
        size_t k = 1;
        for (size_t i = 0; i < r->c.n_pe; i++) {
            pe_whatif *w = r->c.pe[i];
            int again = pe_whatif_is_rope(w);
            for (size_t j = 1; j < k && !again; j++) again = strcmp(r->specs[j]->text, w->text) == 0;
            if (!again) r->specs[k++] = w;
        }
        r->n_specs = k;
    }
    for (size_t s = 0; s < r->n_specs; s++) {
        pe_whatif *w = r->specs[s];
        if (!per_file) {
            w = many ? r->specs[s] : (r->c.n_pe ? r->c.pe[0] : NULL);
            r->specs[s] = w;
            r->spec_names[s] = w ? w->text : "rope";
        }
        if (pe_whatif_is_rope(w)) continue;
        if (r->def->flags & PE_TABLE_EACH_FILE)
            return pe_fail_usage(e, "--pe: -t %s reads each file as it is; a what-if does not apply", r->def->name);
        const char *needs = pe_whatif_needs_L(w);
        if (needs && r->n_files && r->in.train_len <= 0)
            return pe_fail_usage(e, "--pe '%s': %s needs the training length: the files have no train_len; give "
                                    "--train-len",
                                 w->text, needs);
        if (pe_whatif_load(w, e) < 0) return -1;
        for (size_t f = 0; f < r->in.n; f++)
            if (pe_whatif_fits(w, pe_dump_meta(r->in.dumps[f]), r->files[f], e) < 0) return -1;
        for (int k = 0; k < w->n; k++) {
            p->rot_per_file |= w->steps[k].dynamic_auto;
            p->rot_per_head |= w->steps[k].kind == PE_STEP_DOPE;
        }
    }
    if (!r->n_files || (r->def->flags & PE_TABLE_EACH_FILE)) return 0;
    /* A file made by a what-if forward pass (pe-dump --pe) that this run
     * rotates otherwise: its q and k are not the model's own. */
    for (size_t f = 0; !per_file && !r->c.quiet && !(r->def->flags & PE_TABLE_NO_FILES) && f < r->in.n; f++) {
        const pe_meta *m = pe_dump_meta(r->in.dumps[f]);
        if (m->nll && m->nll_pe && strcmp(m->nll_pe, "rope") != 0 && strcmp(m->nll_pe, r->spec_names[0]) != 0 && !many)
            fprintf(stderr, "%s: warning: %s: its q and k come from a forward pass with --pe %s, which this run "
                            "rotates with %s\n",
                    r->prog, r->files[f], m->nll_pe, r->spec_names[0]);
    }
    const pe_meta *m0 = r->in.meta;
    p->rot_nf = p->rot_per_file ? r->in.n : 1;
    p->rot_nh = p->rot_per_head ? (size_t)(m0->n_heads + m0->n_kv_heads) : 1;
    p->n_rots = r->n_specs * p->rot_nf * r->in.n_layers * p->rot_nh;
    if (!(p->rots = pe_alloc(p->n_rots, sizeof *p->rots, 1, e))) return -1;
    size_t i = 0;
    for (size_t s = 0; s < r->n_specs; s++)
        for (size_t f = 0; f < p->rot_nf; f++)
            for (size_t lj = 0; lj < r->in.n_layers; lj++)
                for (size_t h = 0; h < p->rot_nh; h++, i++) {
                    const pe_meta *m = pe_dump_meta(r->in.dumps[f]);
                    pe_tensor tn = h < (size_t)m->n_heads ? PE_TENSOR_Q : PE_TENSOR_K;
                    int head = tn == PE_TENSOR_Q ? (int)h : (int)h - m->n_heads;
                    if (pe_rotation_init(&p->rots[i], m->n_pairs, e) < 0) return -1;
                    if (pe_whatif_resolve(r->specs[s], m, pe_run_slot(r, f, lj), tn, head, r->in.train_len,
                                          &p->rots[i], e) < 0) {
                        /* Name the option, the spec and the file. */
                        char msg[sizeof e->msg];
                        snprintf(msg, sizeof msg, "%s", e->msg);
                        snprintf(e->msg, sizeof e->msg, "%s '%.200s': %.600s in %.150s", r->specs[s]->opt,
                                 r->specs[s]->text, msg, r->files[f]);
                        return -1;
                    }
                }
    return 0;
}

/* Both outputs whole before either is renamed into place. */
static int close_outputs(pe_run *r, pe_err *e)
{
    if (r->side.fp && r->side.tmp_path && (fflush(r->side.fp) != 0 || ferror(r->side.fp)))
        return pe_output_close(&r->side, 1, e); /* names the file and the error */
    if (r->out.fp && pe_output_close(&r->out, 1, e) < 0) return -1;
    if (r->side.fp && pe_output_close(&r->side, 1, e) < 0) return -1;
    return 0;
}

static int run(pe_run *r, int argc, char **argv, pe_err *e)
{
    int first;
    switch (pe_cli_parse(argc, argv, &r->tool->cli, &r->c, r->opts, &first)) {
    case PE_CLI_EXIT_OK: return PE_EXIT_OK;
    case PE_CLI_EXIT_USAGE: return PE_EXIT_USAGE;
    default: break;
    }
    r->files = argv + first;
    r->n_files = (size_t)(argc - first);
    r->def = r->tool->table(r->opts);
    r->table_name = r->def->name;
    r->cols = r->def->cols;
    r->ncol = r->def->ncol;
    r->result_size = r->def->result_size;
    r->query_tasks = 1;
    r->key_tasks = (r->def->flags & PE_TABLE_KEY_TASKS) != 0;
    r->jobs = r->c.jobs ? r->c.jobs : pe_cpu_count();
    if (r->tool->check && r->tool->check(r, e) < 0) return fail(r, e);
    if (r->n_files == 0 && !(r->def->flags & PE_TABLE_NO_FILES)) {
        pe_fail_usage(e, "no input file (see %s --help)", r->prog);
        return fail(r, e);
    }
    if (open_inputs(r, e) < 0) return fail(r, e);
    if ((r->def->flags & PE_TABLE_NEEDS_L) && r->n_files && r->in.train_len <= 0) {
        pe_fail_usage(e, "-t %s needs the training length: the files have no train_len; give --train-len",
                      r->def->name);
        return fail(r, e);
    }
    if (r->needs_L_for && r->in.train_len <= 0) {
        pe_fail_usage(e, "%s needs the training length: the files have no train_len; give --train-len", r->needs_L_for);
        return fail(r, e);
    }
    if (setup_specs(r, e) < 0) return fail(r, e);
    if (r->def->prepare && r->def->prepare(r, e) < 0) return fail(r, e);
    if (!(r->def->flags & (PE_TABLE_NO_TASKS | PE_TABLE_EACH_FILE)) && r->n_files && make_tasks(r, e) < 0)
        return fail(r, e);
    if (r->def->memory && r->n_files) {
        char what[64];
        snprintf(what, sizeof what, "this run (T %zu, head_dim %d, -j %d)", r->T_max, r->in.meta->head_dim,
                 r->mem_jobs ? r->mem_jobs : r->jobs);
        if (pe_memory_check(r->def->memory(r), r->c.max_memory, what, e) < 0) return fail(r, e);
    }
    if (!r->no_output && pe_output_open(&r->out, r->c.output, "--output", r->files, r->n_files, e) < 0)
        return fail(r, e);
    if (r->side_path && pe_output_open(&r->side, r->side_path, r->side_opt, r->files, r->n_files, e) < 0)
        return fail(r, e);
    if (!r->no_output && !(r->def->flags & PE_TABLE_RAW)) {
        if (!(r->colnames = pe_alloc((size_t)r->ncol + 1, sizeof *r->colnames, 0, e))) return fail(r, e);
        for (int i = 0; i < r->ncol; i++) r->colnames[i] = r->cols[i].name;
        r->table = pe_table_open(r->out.fp, r->c.format, r->c.digits, r->prog, r->table_name, r->colnames, r->ncol, e);
        if (!r->table) return fail(r, e);
        pe_table_meta(r->table, "version", "%s", PE_VERSION);
        for (size_t f = 0; f < (r->each ? r->n_files : r->in.n); f++) {
            const pe_meta *m = pe_dump_meta(pe_run_dump(r, f));
            pe_table_meta(r->table, "input", "%s (T %zu, positions %lld..%lld, %zu layer%s, model %s)", r->files[f],
                          m->T, (long long)m->positions[0], (long long)m->positions[m->T - 1], m->n_layers,
                          m->n_layers == 1 ? "" : "s", m->model ? m->model : "unknown");
        }
        meta_merge(r);
        if (r->file_spec) {
            pe_table_meta(r->table, "pe", "each file rotated with the spec its loss was recorded with (the pe column)");
        } else if (!(r->def->flags & PE_TABLE_MANY_PE)) {
            pe_table_meta(r->table, "pe", "%s", r->spec_names[0]);
            if (!pe_whatif_is_rope(r->specs[0]) && !(r->def->flags & PE_TABLE_NO_FILES))
                pe_table_meta(r->table, "pe_note", "a what-if: q and k rotated as the spec would, in this layer "
                                                   "only (a layer-local estimate, man petools-whatif(7))");
        }
        if (r->def->meta) r->def->meta(r);
    }
    if (!(r->pool = pe_pool_new(r->jobs, e))) return fail(r, e);
    struct pe_run_priv *p = r->priv;
    if (!(p->w = pe_alloc((size_t)pe_pool_jobs(r->pool), sizeof *p->w, 1, e))) return fail(r, e);
    p->n_w = pe_pool_jobs(r->pool);
    p->progress = !r->c.quiet && isatty(STDERR_FILENO);
    if (r->n_tasks) {
        if (!(p->res = pe_alloc(r->n_tasks, r->result_size ? r->result_size : 1, 1, e))) return fail(r, e);
        int one = (r->def->flags & PE_TABLE_ONE_HEAD) != 0;
        int rc = pe_pool_ordered(r->pool, r->n_tasks, one ? 1 : 0, one ? 2 : 2 * (size_t)r->jobs, engine_work,
                                 engine_emit, r, e);
        progress(r, 1);
        if (rc < 0) return fail(r, e);
    }
    if (r->def->finish && r->def->finish(r, e) < 0) return fail(r, e);
    if (r->table) {
        pe_table_finish(r->table, e);
        r->table = NULL;
    }
    if (close_outputs(r, e) < 0) return fail(r, e);
    if (r->c.verbose)
        fprintf(stderr, "%s: %zu head%s, T up to %zu, -j %d, done in %.3f s\n", r->prog, r->n_tasks,
                r->n_tasks == 1 ? "" : "s", r->T_max, r->jobs, now() - p->t0);
    return r->found ? PE_EXIT_FOUND : PE_EXIT_OK;
}

int pe_run_main(int argc, char **argv, const pe_tool_def *tool, void *opts)
{
    pe_run r;
    struct pe_run_priv priv;
    pe_err e = {0};
    memset(&r, 0, sizeof r);
    memset(&priv, 0, sizeof priv);
    r.tool = tool;
    r.prog = tool->cli.name;
    r.opts = opts;
    r.priv = &priv;
    priv.t0 = now();
    pthread_mutex_init(&priv.kmu, NULL);
    pthread_cond_init(&priv.kcond, NULL);
    /* Threads are the pool's, over heads: the BLAS runs on the calling thread. */
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
    pe_dump_guard(r.prog);

    int status = run(&r, argc, argv, &e);

    if (priv.pf.job) pe_pool_finish(r.pool, priv.pf.job, NULL);
    key_ahead_finish(&r);
    free(priv.pf.buf);
    if (r.table) pe_table_finish(r.table, NULL);
    if (r.out.fp) pe_output_close(&r.out, 0, NULL);
    if (r.side.fp) pe_output_close(&r.side, 0, NULL);
    if (r.def && r.def->release && priv.res)
        for (size_t i = priv.emitted; i < r.n_tasks; i++) r.def->release(priv.res + i * r.result_size);
    if (tool->cleanup) tool->cleanup(&r);
    pe_pool_free(r.pool);
    for (int w = 0; priv.w && w < priv.n_w; w++)
        for (int s = 0; s < N_SLOTS; s++) free(priv.w[w].p[s]);
    free(priv.w);
    for (int pass = 0; pass < 2; pass++)
        for (key_entry *ke = pass ? priv.spare : priv.keys, *next; ke; ke = next) {
            next = ke->next;
            free(ke->k);
            free(ke);
        }
    pthread_cond_destroy(&priv.kcond);
    pthread_mutex_destroy(&priv.kmu);
    free(priv.res);
    for (size_t i = 0; priv.rots && i < priv.n_rots; i++) pe_rotation_free(&priv.rots[i]);
    free(priv.rots);
    if (r.file_spec)
        for (size_t s = 0; s < r.n_specs; s++) pe_whatif_free(r.specs[s]);
    free(r.file_spec);
    free(r.specs);
    free(r.spec_names);
    free(r.tasks);
    free(r.colnames);
    for (size_t f = 0; r.each && f < r.n_files; f++) pe_dump_close(r.each[f]);
    free(r.each);
    if (r.in.n) pe_inputs_close(&r.in);
    pe_common_opts_free(&r.c);
    return pe_close_stdout(r.prog, status);
}
