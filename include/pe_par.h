/* pe_par.h: run independent tasks (heads) on several threads and hand their
 * results back in task order, so that output never depends on the number of
 * threads.
 *
 * work(i) computes task i into a slot the caller owns; emit(i) runs on the
 * calling thread for i = 0, 1, 2, ... in order, as soon as task i is done,
 * and may print and free the slot.  Workers never run more than 2 * jobs
 * tasks ahead of emit, which bounds the memory held in slots.  Without emit
 * (NULL) the calling thread is worker 0 and jobs - 1 threads are started.
 */
#ifndef PE_PAR_H
#define PE_PAR_H

#include <stddef.h>

#include "pe_common.h"

typedef int (*pe_task_fn)(size_t i, void *ctx, pe_err *e);

/* Returns 0, or -1 with the error of the first failing task in task order
 * (tasks after it are not emitted).  jobs <= 1 runs everything on the calling
 * thread. */
int pe_par_run(size_t n, int jobs, pe_task_fn work, pe_task_fn emit, void *ctx, pe_err *e);

/* Two stages: work(i + 1) runs on one other thread while emit(i) runs on
 * this one, never further ahead, so that writing a result overlaps
 * computing the next (each may use every thread inside).  work never runs
 * twice at once: it may keep its buffers in ctx. */
int pe_par_pipeline(size_t n, pe_task_fn work, pe_task_fn emit, void *ctx, pe_err *e);

/* Inside work(): the calling worker's number, 0 .. jobs - 1 (0 when jobs <= 1),
 * so that a tool can keep one set of buffers per worker and reuse them from
 * task to task instead of allocating (and page-faulting) them anew. */
int pe_par_worker(void);

#endif
