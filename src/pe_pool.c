/* pe_pool.c: the persistent pool of threads (see pe_pool.h).
 *
 * One mutex guards the pool and its open loops; `work` wakes idle threads
 * when an item may have become available, `done` wakes the threads that
 * wait for their loops.  Idle threads take from the newest open loop
 * first: the innermost work of a head finishes before anything new starts.
 * A thread that waits for items of its loop that others run helps with
 * the loops opened after it (the pairs of a head another thread works on):
 * otherwise, with one head at a time, the emitting thread would sit idle
 * whenever the head was not its own. */
#include "pe_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local int pe_worker_id;

int pe_pool_worker(void)
{
    return pe_worker_id;
}

typedef struct pe_loop {
    struct pe_loop *prev, *next; /* the pool's open loops, oldest first */
    size_t n;
    size_t started;  /* items started: item i starts when started == i */
    size_t limit;    /* items at or past it do not start (a failure, an end) */
    int running;     /* items running now */
    int max_run;     /* 0: no limit */
    int ordered;
    size_t emitted;  /* ordered: items emitted */
    size_t ahead;    /* ordered: items start while started < emitted + ahead */
    unsigned char *state; /* ordered: per item 0 not done, 1 ok, 2 failed */
    pe_task_fn fn;
    void *ctx;
    size_t fail_index; /* the first failing item, n when none */
    pe_err fail_err;
} pe_loop;

struct pe_pool {
    int jobs;
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work; /* idle threads */
    pthread_cond_t done; /* threads waiting for their loops */
    pe_loop *first, *last;
    int quit;
};

typedef struct thread_arg {
    pe_pool *p;
    int id;
} thread_arg;

static int available(const pe_loop *l)
{
    if (l->started >= l->n || l->started >= l->limit) return 0;
    if (l->max_run > 0 && l->running >= l->max_run) return 0;
    return !l->ordered || l->started < l->emitted + l->ahead;
}

/* The newest loop opened after l that has an item to start, or NULL (lock
 * held; l is open).  Its items never wait for l's, so running one while
 * waiting for l cannot deadlock. */
static pe_loop *newer_available(const pe_pool *p, const pe_loop *l)
{
    for (pe_loop *x = p->last; x && x != l; x = x->prev)
        if (available(x)) return x;
    return NULL;
}

/* Runs the next item of l; called and returns with the lock held. */
static void run_item(pe_pool *p, pe_loop *l)
{
    size_t i = l->started++;
    l->running++;
    pthread_mutex_unlock(&p->mu);
    pe_err e;
    e.kind = PE_ERRK_DATA;
    e.msg[0] = '\0';
    int r = l->fn(i, l->ctx, &e);
    pthread_mutex_lock(&p->mu);
    l->running--;
    if (r != 0) {
        if (i < l->fail_index) {
            l->fail_index = i;
            l->fail_err = e;
        }
        if (i + 1 < l->limit) l->limit = i + 1;
    }
    if (l->ordered) l->state[i] = r == 0 ? 1 : 2;
    pthread_cond_broadcast(&p->done);
    if (l->max_run > 0) pthread_cond_broadcast(&p->work);
}

static void *thread_main(void *arg)
{
    thread_arg *a = arg;
    pe_pool *p = a->p;
    pe_worker_id = a->id;
    free(a);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        pe_loop *l = NULL;
        for (;;) {
            for (l = p->last; l && !available(l); l = l->prev) {}
            if (l || p->quit) break;
            pthread_cond_wait(&p->work, &p->mu);
        }
        if (!l) break;
        run_item(p, l);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

pe_pool *pe_pool_new(int jobs, pe_err *e)
{
    pe_pool *p = pe_alloc(1, sizeof *p, 1, e);
    if (!p) return NULL;
    p->jobs = jobs < 1 ? 1 : jobs;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    if (p->jobs > 1 && !(p->threads = pe_alloc((size_t)p->jobs - 1, sizeof *p->threads, 0, e))) {
        pe_pool_free(p);
        return NULL;
    }
    /* A thread that cannot start leaves its share to the others: the
     * calling thread always works, so fewer threads are slower, not wrong. */
    while (p->n_threads + 1 < p->jobs) {
        thread_arg *a = malloc(sizeof *a);
        if (!a) break;
        a->p = p;
        a->id = p->n_threads + 1;
        if (pthread_create(&p->threads[p->n_threads], NULL, thread_main, a) != 0) {
            free(a);
            break;
        }
        p->n_threads++;
    }
    p->jobs = p->n_threads + 1;
    return p;
}

void pe_pool_free(pe_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->n_threads; t++) pthread_join(p->threads[t], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int pe_pool_jobs(const pe_pool *p)
{
    return p->jobs;
}

/* Opens l (lock held). */
static void loop_open(pe_pool *p, pe_loop *l)
{
    l->prev = p->last;
    l->next = NULL;
    if (p->last)
        p->last->next = l;
    else
        p->first = l;
    p->last = l;
    pthread_cond_broadcast(&p->work);
    pthread_cond_broadcast(&p->done); /* threads waiting for their loops help too */
}

/* Waits for l's running items and closes it (lock held). */
static void loop_close(pe_pool *p, pe_loop *l)
{
    l->limit = 0;
    while (l->running > 0) pthread_cond_wait(&p->done, &p->mu);
    if (l->prev)
        l->prev->next = l->next;
    else
        p->first = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        p->last = l->prev;
}

static void loop_init(pe_loop *l, size_t n, pe_task_fn fn, void *ctx)
{
    memset(l, 0, sizeof *l);
    l->n = n;
    l->limit = n;
    l->fn = fn;
    l->ctx = ctx;
    l->fail_index = n;
}

int pe_pool_for(pe_pool *p, size_t n, pe_task_fn fn, void *ctx, pe_err *e)
{
    pe_loop l, *x;
    if (n == 0) return 0;
    loop_init(&l, n, fn, ctx);
    pthread_mutex_lock(&p->mu);
    int open = p->n_threads > 0 && n > 1;
    if (open) loop_open(p, &l);
    for (;;) {
        if (available(&l)) {
            run_item(p, &l);
        } else if (l.running == 0) {
            break;
        } else if (open && (x = newer_available(p, &l))) {
            run_item(p, x);
        } else {
            pthread_cond_wait(&p->done, &p->mu);
        }
    }
    if (open) loop_close(p, &l);
    pthread_mutex_unlock(&p->mu);
    if (l.fail_index < n) {
        if (e) *e = l.fail_err;
        return -1;
    }
    return 0;
}

int pe_pool_ordered(pe_pool *p, size_t n, int max_run, size_t ahead, pe_task_fn work, pe_task_fn emit, void *ctx,
                    pe_err *e)
{
    pe_loop l, *x;
    int rc = 0;
    if (n == 0) return 0;
    loop_init(&l, n, work, ctx);
    l.ordered = 1;
    l.max_run = max_run;
    l.ahead = ahead < 1 ? 1 : ahead;
    if (!(l.state = pe_alloc(n, 1, 1, e))) return -1;
    pthread_mutex_lock(&p->mu);
    loop_open(p, &l);
    while (l.emitted < n) {
        size_t i = l.emitted;
        if (l.state[i] == 2) { /* every item before it was emitted: it is the first failure */
            if (e) *e = l.fail_err;
            rc = -1;
            break;
        }
        if (l.state[i] == 1) {
            pthread_mutex_unlock(&p->mu);
            pe_err ee;
            ee.kind = PE_ERRK_DATA;
            ee.msg[0] = '\0';
            int r = emit ? emit(i, ctx, &ee) : 0;
            pthread_mutex_lock(&p->mu);
            if (r != 0) {
                if (e) *e = ee;
                rc = -1;
                break;
            }
            l.emitted++;
            pthread_cond_broadcast(&p->work); /* the window moved */
        } else if (available(&l)) {
            run_item(p, &l);
        } else if ((x = newer_available(p, &l))) {
            run_item(p, x);
        } else {
            pthread_cond_wait(&p->done, &p->mu);
        }
    }
    loop_close(p, &l);
    pthread_mutex_unlock(&p->mu);
    free(l.state);
    return rc;
}

struct pe_pool_job {
    pe_loop l;
};

pe_pool_job *pe_pool_start(pe_pool *p, pe_task_fn fn, void *ctx)
{
    pe_pool_job *j = malloc(sizeof *j);
    if (!j) return NULL;
    loop_init(&j->l, 1, fn, ctx);
    pthread_mutex_lock(&p->mu);
    loop_open(p, &j->l);
    pthread_mutex_unlock(&p->mu);
    return j;
}

int pe_pool_finish(pe_pool *p, pe_pool_job *j, pe_err *e)
{
    pthread_mutex_lock(&p->mu);
    while (j->l.started < 1 || j->l.running > 0) {
        if (available(&j->l))
            run_item(p, &j->l);
        else
            pthread_cond_wait(&p->done, &p->mu);
    }
    loop_close(p, &j->l);
    pthread_mutex_unlock(&p->mu);
    int rc = 0;
    if (j->l.fail_index < 1) {
        if (e) *e = j->l.fail_err;
        rc = -1;
    }
    free(j);
    return rc;
}
