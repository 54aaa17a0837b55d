/* pe_fft.c: the process-wide FFTW plan cache (see pe_fft.h). */
#include "pe_fft.h"

#include <pthread.h>

/* FFTW's planner is not thread-safe while fftw_execute_dft is, so plans are
 * made once per size under a lock and then shared.  Cached plans are never
 * destroyed (another thread may be executing them); when the cache is full a
 * call plans for itself and destroys its plans afterwards, under the lock. */
#define PE_PLAN_CACHE 32

static pthread_mutex_t pe_plan_lock = PTHREAD_MUTEX_INITIALIZER;
static pe_fft_plans pe_plan_cache[PE_PLAN_CACHE];
static int pe_plan_used;

int pe_fft_plans_get(int n, fftw_complex *buf, pe_fft_plans *out, int *owned, pe_err *e)
{
    int rc = 0;
    pthread_mutex_lock(&pe_plan_lock);
    for (int i = 0; i < pe_plan_used; i++) {
        if (pe_plan_cache[i].n == n) {
            *out = pe_plan_cache[i];
            *owned = 0;
            pthread_mutex_unlock(&pe_plan_lock);
            return 0;
        }
    }
    /* FFTW_ESTIMATE: the plan does not depend on timings, so results are
     * reproducible run to run, and the planner leaves buf untouched. */
    out->n = n;
    out->fwd = fftw_plan_dft_1d(n, buf, buf, FFTW_FORWARD, FFTW_ESTIMATE);
    out->bwd = fftw_plan_dft_1d(n, buf, buf, FFTW_BACKWARD, FFTW_ESTIMATE);
    if (!out->fwd || !out->bwd) {
        if (out->fwd) fftw_destroy_plan(out->fwd);
        if (out->bwd) fftw_destroy_plan(out->bwd);
        rc = pe_fail(e, "FFTW could not plan a transform of size %d", n);
    } else if (pe_plan_used < PE_PLAN_CACHE) {
        pe_plan_cache[pe_plan_used++] = *out;
        *owned = 0;
    } else {
        *owned = 1;
    }
    pthread_mutex_unlock(&pe_plan_lock);
    return rc;
}

void pe_fft_plans_release(pe_fft_plans *pl, int owned)
{
    if (!owned) return;
    pthread_mutex_lock(&pe_plan_lock);
    fftw_destroy_plan(pl->fwd);
    fftw_destroy_plan(pl->bwd);
    pthread_mutex_unlock(&pe_plan_lock);
}

/* Smallest 2^a 3^b 5^c >= need (need >= 1): sizes FFTW handles with its
 * fastest codelets. */
uint64_t pe_fft_size(uint64_t need)
{
    uint64_t best = UINT64_MAX;
    for (uint64_t p5 = 1;; p5 *= 5) {
        for (uint64_t p35 = p5;; p35 *= 3) {
            uint64_t v = p35;
            while (v < need) v *= 2;
            if (v < best) best = v;
            if (p35 >= need) break;
        }
        if (p5 >= need) break;
    }
    return best;
}


const char *pe_fft_version(void)
{
    return fftw_version;
}
