/* test_par: pe_par runs every task once, emits in task order, numbers its
 * workers 0 .. jobs - 1, and reports the first failure in task order; with
 * and without emit (without, the calling thread is a worker too). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "pe_par.h"
#include "pe_test.h"

#define N_TASKS 200

typedef struct job {
    pthread_mutex_t mu;
    int runs[N_TASKS];      /* times each task ran */
    int worker[N_TASKS];    /* pe_par_worker() inside it */
    int emitted[N_TASKS];   /* emission order */
    int n_emitted;
    int fail_at[2];         /* tasks that fail (-1: none) */
    int slow;               /* spin in work so that tasks overlap */
} job;

static int work(size_t i, void *ctx, pe_err *e)
{
    job *j = ctx;
    volatile double x = 0;
    for (int k = 0; k < j->slow; k++) x += k;
    pthread_mutex_lock(&j->mu);
    j->runs[i]++;
    j->worker[i] = pe_par_worker();
    pthread_mutex_unlock(&j->mu);
    if ((int)i == j->fail_at[0] || (int)i == j->fail_at[1]) return pe_fail(e, "task %zu failed", i);
    return 0;
}

static int emit(size_t i, void *ctx, pe_err *e)
{
    (void)e;
    job *j = ctx;
    j->emitted[j->n_emitted++] = (int)i;
    return 0;
}

static void reset(job *j, int fail0, int fail1)
{
    memset(j->runs, 0, sizeof j->runs);
    memset(j->worker, -1, sizeof j->worker);
    j->n_emitted = 0;
    j->fail_at[0] = fail0;
    j->fail_at[1] = fail1;
    j->slow = 20000;
}

int main(void)
{
    job j;
    pe_err e;
    char what[160];
    pthread_mutex_init(&j.mu, NULL);
    for (int jobs = 1; jobs <= 3; jobs++) {
        for (int with_emit = 0; with_emit <= 1; with_emit++) {
            const char *how = with_emit ? "with emit" : "without emit";
            reset(&j, -1, -1);
            int rc = pe_par_run(N_TASKS, jobs, work, with_emit ? emit : NULL, &j, &e);
            int once = 1, in_order = 1, ids_ok = 1;
            for (int i = 0; i < N_TASKS; i++) {
                once &= j.runs[i] == 1;
                ids_ok &= j.worker[i] >= 0 && j.worker[i] < jobs;
            }
            for (int i = 0; i < j.n_emitted; i++) in_order &= j.emitted[i] == i;
            snprintf(what, sizeof what, "-j %d %s: succeeds", jobs, how);
            PE_CHECK_INT(rc, 0, what);
            snprintf(what, sizeof what, "-j %d %s: every task runs once", jobs, how);
            PE_CHECK(once, what);
            snprintf(what, sizeof what, "-j %d %s: workers are numbered 0 .. jobs - 1", jobs, how);
            PE_CHECK(ids_ok, what);
            snprintf(what, sizeof what, "-j %d %s: every task emitted, in order", jobs, how);
            PE_CHECK(in_order && j.n_emitted == (with_emit ? N_TASKS : 0), what);

            /* Two failures: the one reported is the first in task order,
             * and nothing from it on is emitted. */
            reset(&j, 150, 90);
            rc = pe_par_run(N_TASKS, jobs, work, with_emit ? emit : NULL, &j, &e);
            snprintf(what, sizeof what, "-j %d %s: a failure is reported", jobs, how);
            PE_CHECK_INT(rc, -1, what);
            snprintf(what, sizeof what, "-j %d %s: the first failure in task order", jobs, how);
            PE_CHECK_STR(e.msg, "task 90 failed", what);
            snprintf(what, sizeof what, "-j %d %s: tasks before it emitted, none after", jobs, how);
            PE_CHECK_INT(j.n_emitted, with_emit ? 90 : 0, what);
        }
    }
    /* The pipeline: work i + 1 beside emit i, emitted in order. */
    reset(&j, -1, -1);
    int rc = pe_par_pipeline(N_TASKS, work, emit, &j, &e);
    int in_order = j.n_emitted == N_TASKS;
    for (int i = 0; i < j.n_emitted; i++) in_order &= j.emitted[i] == i;
    PE_CHECK_INT(rc, 0, "pipeline: succeeds");
    PE_CHECK(in_order, "pipeline: every task emitted, in order");
    pthread_mutex_destroy(&j.mu);
    return pe_test_done();
}
