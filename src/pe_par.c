/* pe_par.c: tasks on threads, results in task order (see pe_par.h). */
#include "pe_par.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local int pe_worker_id;

int pe_par_worker(void)
{
    return pe_worker_id;
}

/* A worker's start: its number, then the shared state. */
typedef struct worker_arg {
    struct par_state *s;
    int id;
} worker_arg;

typedef struct par_state {
    size_t n;
    size_t window;    /* tasks allowed to run ahead of emission */
    pe_task_fn work;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t next;      /* next task to start */
    size_t emitted;   /* tasks emitted so far */
    int stop;         /* set after a failure */
    unsigned char *done; /* per task: 0 pending, 1 ok, 2 failed */
    pe_err *errs;     /* per task, filled on failure */
} par_state;

static void *worker(void *arg)
{
    worker_arg *wa = arg;
    par_state *s = wa->s;
    int saved = pe_worker_id; /* the caller's, when it works too */
    pe_worker_id = wa->id;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->next < s->n && s->next >= s->emitted + s->window)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop || s->next >= s->n) break;
        size_t i = s->next++;
        pthread_mutex_unlock(&s->mu);
        pe_err e = {0};
        int r = s->work(i, s->ctx, &e);
        pthread_mutex_lock(&s->mu);
        s->done[i] = r == 0 ? 1 : 2;
        if (r != 0) s->errs[i] = e;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    pe_worker_id = saved;
    return NULL;
}

static int run_threads(size_t n, int jobs, size_t window, pe_task_fn work, pe_task_fn emit, void *ctx,
                       pe_err *e);

int pe_par_run(size_t n, int jobs, pe_task_fn work, pe_task_fn emit, void *ctx, pe_err *e)
{
    if (jobs <= 1 || n <= 1) {
        pe_worker_id = 0;
        for (size_t i = 0; i < n; i++) {
            if (work(i, ctx, e) != 0) return -1;
            if (emit && emit(i, ctx, e) != 0) return -1;
        }
        return 0;
    }
    if ((size_t)jobs > n) jobs = (int)n;
    return run_threads(n, jobs, 2 * (size_t)jobs, work, emit, ctx, e);
}

int pe_par_pipeline(size_t n, pe_task_fn work, pe_task_fn emit, void *ctx, pe_err *e)
{
    if (n <= 1) return pe_par_run(n, 1, work, emit, ctx, e);
    return run_threads(n, 1, 2, work, emit, ctx, e); /* i + 1 at work while i is emitted */
}

/* jobs threads run work, at most `window` tasks ahead of emit. */
static int run_threads(size_t n, int jobs, size_t window, pe_task_fn work, pe_task_fn emit, void *ctx,
                       pe_err *e)
{
    par_state s;
    memset(&s, 0, sizeof s);
    s.n = n;
    s.window = window;
    s.work = work;
    s.ctx = ctx;
    s.done = pe_alloc(n, 1, 1, e);
    s.errs = pe_alloc(n, sizeof *s.errs, 1, e);
    pthread_t *th = pe_alloc((size_t)jobs, sizeof *th, 0, e);
    worker_arg *wa = pe_alloc((size_t)jobs, sizeof *wa, 0, e);
    int rc = 0, started = 0;
    if (!s.done || !s.errs || !th || !wa) {
        rc = -1;
        goto out;
    }
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    /* Without emit this thread is worker 0 itself: one thread fewer to
     * start, and the work begins before any new thread is scheduled (on a
     * virtual machine that may wait for the next timer tick). */
    int self = !emit;
    if (self) s.window = n; /* nothing is emitted: no window to wait for */
    for (; started + self < jobs; started++) {
        wa[started] = (worker_arg){&s, started + self};
        if (pthread_create(&th[started], NULL, worker, &wa[started]) != 0) break;
    }
    if (started + self == 0) {
        rc = pe_fail(e, "cannot start a thread");
    } else if (self) {
        worker_arg me = {&s, 0};
        worker(&me);
        for (size_t i = 0; i < n && rc == 0; i++) { /* the first failure in task order */
            pthread_mutex_lock(&s.mu);
            while (!s.done[i] && !s.stop) pthread_cond_wait(&s.cv, &s.mu);
            pthread_mutex_unlock(&s.mu);
            if (s.done[i] == 2) {
                *e = s.errs[i];
                rc = -1;
            }
        }
    } else {
        /* Emit in order on this thread while the workers go on. */
        for (size_t i = 0; i < n; i++) {
            pthread_mutex_lock(&s.mu);
            while (!s.done[i]) pthread_cond_wait(&s.cv, &s.mu);
            int failed = s.done[i] == 2;
            if (failed) {
                *e = s.errs[i];
                s.stop = 1;
                pthread_cond_broadcast(&s.cv);
            }
            pthread_mutex_unlock(&s.mu);
            if (failed) {
                rc = -1;
                break;
            }
            if (emit && emit(i, ctx, e) != 0) {
                pthread_mutex_lock(&s.mu);
                s.stop = 1;
                pthread_cond_broadcast(&s.cv);
                pthread_mutex_unlock(&s.mu);
                rc = -1;
                break;
            }
            pthread_mutex_lock(&s.mu);
            s.emitted = i + 1;
            pthread_cond_broadcast(&s.cv);
            pthread_mutex_unlock(&s.mu);
        }
    }
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
out:
    free(th);
    free(wa);
    free(s.done);
    free(s.errs);
    return rc;
}
