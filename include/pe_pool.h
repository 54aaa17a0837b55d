/* pe_pool.h: the one pool of threads of a run (-j N in every tool).
 *
 * A pe_pool starts its jobs - 1 threads once, for the whole run; the thread
 * that calls into it is a worker too, so -j 1 starts no thread at all.
 * Work comes as loops of n items, fn(0) .. fn(n - 1).  Several loops may be
 * open at once, and a loop may be opened from inside an item of another
 * (a head computed on one thread spreads its frequency pairs over all of
 * them): idle threads take items from the newest open loop that has one
 * to start (the innermost: a head's pairs before the next head).  A thread that
 * waits for its own loop runs that loop's items itself and only ever waits
 * for items another thread has started, so nesting cannot deadlock.
 *
 * Results never depend on the number of threads: an item computes into a
 * slot of its own, and the ordered form hands results back in item order.
 * A thread keeps its number (pe_pool_worker) for the whole run, so that a
 * table can keep one set of buffers per thread and reuse their pages from
 * head to head instead of faulting in new ones.
 *
 * Errors: an item that fails stops the items after it from starting; the
 * error returned is that of the first failing item in index order, the
 * same for any number of threads.  A pool that could not start all its
 * threads works with those it has (at least the calling thread).
 *
 * Ownership: pe_pool_new returns a pool freed by pe_pool_free (which joins
 * the threads); no loop may be open then.  ctx is borrowed.
 */
#ifndef PE_POOL_H
#define PE_POOL_H

#include <stddef.h>

#include "pe_common.h"

typedef int (*pe_task_fn)(size_t i, void *ctx, pe_err *e);

typedef struct pe_pool pe_pool;

/* A pool of `jobs` workers: the caller and jobs - 1 threads (jobs < 1
 * counts as 1).  NULL with e filled when out of memory. */
pe_pool *pe_pool_new(int jobs, pe_err *e);
void pe_pool_free(pe_pool *p);

/* The number of workers (threads that could be started, plus the caller). */
int pe_pool_jobs(const pe_pool *p);

/* fn(i) for every i < n, on the pool's threads and this one; returns when
 * every started item is done: 0, or -1 with the first failure's error. */
int pe_pool_for(pe_pool *p, size_t n, pe_task_fn fn, void *ctx, pe_err *e);

/* work(i) for every i < n on the pool's threads and this one, and emit(i)
 * on this thread for i = 0, 1, ... in order, each as soon as work(i) is
 * done.  At most max_run work items run at once (0: no limit), and an item
 * starts only while it is fewer than `ahead` items past the last emitted
 * one (at least 1), which bounds the results held.  This thread runs work
 * items while no emit is due.  A failing work(i) or emit(i) ends the loop
 * (items after it are not emitted) once the running items are done. */
int pe_pool_ordered(pe_pool *p, size_t n, int max_run, size_t ahead, pe_task_fn work, pe_task_fn emit, void *ctx,
                    pe_err *e);

/* One item started now and finished later: pe_pool_start opens it for
 * an idle thread (NULL when out of memory: then run fn yourself);
 * pe_pool_finish runs it on this thread if nobody has started it, else
 * waits for it, and returns its status.  Every started job must be
 * finished. */
typedef struct pe_pool_job pe_pool_job;
pe_pool_job *pe_pool_start(pe_pool *p, pe_task_fn fn, void *ctx);
int pe_pool_finish(pe_pool *p, pe_pool_job *j, pe_err *e);

/* Inside an item: the worker number of the calling thread, 0 .. jobs - 1
 * (0 for the thread that made the pool, and outside any pool). */
int pe_pool_worker(void);

#endif
