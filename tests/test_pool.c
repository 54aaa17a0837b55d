/* test_pool: the persistent pool runs every item once, on threads numbered
 * 0 .. jobs - 1; emits in item order; respects max_run and `ahead`; reports
 * the first failure in item order, the same for any number of threads;
 * nests loops inside items without deadlock; and finishes started jobs. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pe_pool.h"
#include "pe_test.h"

#define N_TASKS 200

typedef struct job {
    pthread_mutex_t mu;
    pe_pool *pool;
    int runs[N_TASKS];    /* times each item ran */
    int worker[N_TASKS];  /* pe_pool_worker() inside it */
    int emitted[N_TASKS]; /* emission order */
    int n_emitted;
    int fail_at[2];       /* items that fail (-1: none) */
    int fail_emit;        /* emit(i) fails at this item (-1: never) */
    int slow;             /* spin in work so that items overlap */
    int running, max_running;
    int ahead_seen;       /* the largest i - n_emitted when item i starts */
    int nested;           /* each item opens a loop of 7 inner items */
    int inner_runs;
} job;

static void spin(int n)
{
    volatile double x = 0;
    for (int k = 0; k < n; k++) x += k;
}

static int inner(size_t i, void *ctx, pe_err *e)
{
    (void)i;
    (void)e;
    job *j = ctx;
    spin(j->slow / 4);
    pthread_mutex_lock(&j->mu);
    j->inner_runs++;
    pthread_mutex_unlock(&j->mu);
    return 0;
}

static int work(size_t i, void *ctx, pe_err *e)
{
    job *j = ctx;
    pthread_mutex_lock(&j->mu);
    j->runs[i]++;
    j->worker[i] = pe_pool_worker();
    if (++j->running > j->max_running) j->max_running = j->running;
    if ((int)i - j->n_emitted > j->ahead_seen) j->ahead_seen = (int)i - j->n_emitted;
    pthread_mutex_unlock(&j->mu);
    spin(j->slow);
    int rc = 0;
    if (j->nested) rc = pe_pool_for(j->pool, 7, inner, j, e);
    pthread_mutex_lock(&j->mu);
    j->running--;
    pthread_mutex_unlock(&j->mu);
    if ((int)i == j->fail_at[0] || (int)i == j->fail_at[1]) return pe_fail(e, "task %zu failed", i);
    return rc;
}

static int emit(size_t i, void *ctx, pe_err *e)
{
    job *j = ctx;
    if ((int)i == j->fail_emit) return pe_fail(e, "emit %zu failed", i);
    pthread_mutex_lock(&j->mu);
    j->emitted[j->n_emitted++] = (int)i;
    pthread_mutex_unlock(&j->mu);
    return 0;
}

static void reset(job *j, int fail0, int fail1)
{
    memset(j->runs, 0, sizeof j->runs);
    memset(j->worker, -1, sizeof j->worker);
    j->n_emitted = 0;
    j->fail_at[0] = fail0;
    j->fail_at[1] = fail1;
    j->fail_emit = -1;
    j->slow = 20000;
    j->running = j->max_running = j->ahead_seen = 0;
    j->nested = 0;
    j->inner_runs = 0;
}

static int all_once(const job *j, int jobs)
{
    int ok = 1;
    for (int i = 0; i < N_TASKS; i++) ok &= j->runs[i] == 1 && j->worker[i] >= 0 && j->worker[i] < jobs;
    return ok;
}

static int in_order(const job *j)
{
    int ok = 1;
    for (int i = 0; i < j->n_emitted; i++) ok &= j->emitted[i] == i;
    return ok;
}

static int finish_me(size_t i, void *ctx, pe_err *e)
{
    (void)i;
    int *flag = ctx;
    *flag = 1;
    return *flag == 1 ? 0 : pe_fail(e, "never");
}

static int fail_me(size_t i, void *ctx, pe_err *e)
{
    (void)i;
    (void)ctx;
    return pe_fail(e, "the job failed");
}

/* Every worker must help with a head's inner loop, whoever runs the head:
 * an inner item waits (up to 10 s) until every worker has run one of its
 * loop's items.  emit(i) waits until head i + 1 has started, so that the
 * emitting thread is not the one that runs it: without help from a thread
 * waiting in its own loop (the emitting thread of an ordered loop with
 * max_run 1), the wait times out. */
typedef struct together {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pe_pool *pool;
    unsigned seen;  /* the workers that ran an item of the current inner loop */
    int timed_out;
    size_t started; /* heads started */
    size_t n;
} together;

/* Waits for a change of g under its lock, up to 10 s from `until`. */
static void together_wait(together *g, const struct timespec *until)
{
    if (pthread_cond_timedwait(&g->cv, &g->mu, until) != 0) g->timed_out = 1;
}

static int together_inner(size_t i, void *ctx, pe_err *e)
{
    (void)i;
    (void)e;
    together *g = ctx;
    unsigned all = (1u << pe_pool_jobs(g->pool)) - 1;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&g->mu);
    g->seen |= 1u << pe_pool_worker();
    pthread_cond_broadcast(&g->cv);
    while (g->seen != all && !g->timed_out) together_wait(g, &until);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static int together_emit(size_t i, void *ctx, pe_err *e)
{
    (void)e;
    together *g = ctx;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&g->mu);
    while (i + 1 < g->n && g->started <= i + 1 && !g->timed_out) together_wait(g, &until);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static int together_head(size_t i, void *ctx, pe_err *e)
{
    (void)i;
    together *g = ctx;
    pthread_mutex_lock(&g->mu);
    g->seen = 0;
    g->started++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return pe_pool_for(g->pool, 8, together_inner, g, e);
}

int main(void)
{
    job j;
    pe_err e;
    char what[200];
    pthread_mutex_init(&j.mu, NULL);
    for (int jobs = 1; jobs <= 3; jobs++) {
        pe_pool *p = j.pool = pe_pool_new(jobs, &e);
        snprintf(what, sizeof what, "-j %d: the pool has %d workers", jobs, jobs);
        PE_CHECK(p && pe_pool_jobs(p) == jobs, what);
        if (!p) continue;

        reset(&j, -1, -1);
        int rc = pe_pool_for(p, N_TASKS, work, &j, &e);
        snprintf(what, sizeof what, "-j %d for: succeeds, every item once, on workers 0 .. jobs - 1", jobs);
        PE_CHECK(rc == 0 && all_once(&j, jobs), what);
        reset(&j, 150, 90);
        rc = pe_pool_for(p, N_TASKS, work, &j, &e);
        snprintf(what, sizeof what, "-j %d for: two failures, the first in item order is reported", jobs);
        PE_CHECK(rc == -1 && strcmp(e.msg, "task 90 failed") == 0, what);
        int before = 1;
        for (int i = 0; i < 90; i++) before &= j.runs[i] == 1;
        snprintf(what, sizeof what, "-j %d for: every item before the first failure ran", jobs);
        PE_CHECK(before, what);

        for (int max_run = 0; max_run <= 1; max_run++) {
            size_t ahead = max_run ? 2 : 2 * (size_t)jobs;
            reset(&j, -1, -1);
            rc = pe_pool_ordered(p, N_TASKS, max_run, ahead, work, emit, &j, &e);
            snprintf(what, sizeof what, "-j %d ordered (max_run %d, ahead %zu): every item once, emitted in order", jobs,
                     max_run, ahead);
            PE_CHECK(rc == 0 && all_once(&j, jobs) && j.n_emitted == N_TASKS && in_order(&j), what);
            snprintf(what, sizeof what, "-j %d ordered (max_run %d, ahead %zu): at most %d running, at most %zu ahead",
                     jobs, max_run, ahead, max_run ? 1 : jobs, ahead);
            pe_test_report(j.max_running <= (max_run ? 1 : jobs) && j.ahead_seen < (int)ahead, what,
                           "%d running at once, %d ahead", j.max_running, j.ahead_seen);
            reset(&j, 150, 90);
            rc = pe_pool_ordered(p, N_TASKS, max_run, ahead, work, emit, &j, &e);
            snprintf(what, sizeof what, "-j %d ordered (max_run %d): the first failure, items before it emitted, none after",
                     jobs, max_run);
            PE_CHECK(rc == -1 && strcmp(e.msg, "task 90 failed") == 0 && j.n_emitted == 90 && in_order(&j), what);
        }
        reset(&j, -1, -1);
        j.fail_emit = 33;
        rc = pe_pool_ordered(p, N_TASKS, 0, 4, work, emit, &j, &e);
        snprintf(what, sizeof what, "-j %d ordered: a failing emit ends the loop with its error", jobs);
        PE_CHECK(rc == -1 && strcmp(e.msg, "emit 33 failed") == 0 && j.n_emitted == 33, what);

        /* Loops inside items, one level down, from both forms. */
        reset(&j, -1, -1);
        j.nested = 1;
        rc = pe_pool_ordered(p, 40, 1, 2, work, emit, &j, &e);
        snprintf(what, sizeof what, "-j %d nested: a loop in each ordered item (max_run 1) runs whole", jobs);
        PE_CHECK(rc == 0 && j.inner_runs == 40 * 7 && j.n_emitted == 40, what);
        reset(&j, -1, -1);
        j.nested = 1;
        rc = pe_pool_for(p, 40, work, &j, &e);
        snprintf(what, sizeof what, "-j %d nested: a loop in each item of a loop runs whole", jobs);
        PE_CHECK(rc == 0 && j.inner_runs == 40 * 7, what);

        if (jobs > 1) {
            together g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, p, 0, 0, 0, 12};
            rc = pe_pool_ordered(p, g.n, 1, 2, together_head, together_emit, &g, &e);
            snprintf(what, sizeof what, "-j %d nested: every worker helps each head's inner loop, whoever runs the head",
                     jobs);
            PE_CHECK(rc == 0 && !g.timed_out, what);
            pthread_cond_destroy(&g.cv);
            pthread_mutex_destroy(&g.mu);
        }

        /* Jobs started now, finished later. */
        int flag = 0;
        pe_pool_job *pj = pe_pool_start(p, finish_me, &flag);
        rc = pe_pool_finish(p, pj, &e);
        snprintf(what, sizeof what, "-j %d job: started and finished, it ran", jobs);
        PE_CHECK(pj && rc == 0 && flag == 1, what);
        pj = pe_pool_start(p, fail_me, NULL);
        rc = pe_pool_finish(p, pj, &e);
        snprintf(what, sizeof what, "-j %d job: its failure is returned", jobs);
        PE_CHECK(rc == -1 && strcmp(e.msg, "the job failed") == 0, what);
        pe_pool_free(p);
    }
    PE_CHECK(pe_pool_worker() == 0, "outside a pool: worker 0");
    pthread_mutex_destroy(&j.mu);
    return pe_test_done();
}
