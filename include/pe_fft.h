/* pe_fft.h: FFTW plans shared by every module that transforms (the profile,
 * the spectra), made safely from several threads.
 *
 * FFTW's planner is not thread-safe while fftw_execute_dft is: plans are made
 * once per size under one process-wide lock, with FFTW_ESTIMATE only (so the
 * plan, and every result, does not depend on timings), and then shared.
 * Buffers given to the plans must come from fftw_malloc so that their
 * alignment matches.  Plans from pe_fft_plans_get are released with
 * pe_fft_plans_release. */
#ifndef PE_FFT_H
#define PE_FFT_H

#include <fftw3.h>
#include <stdint.h>

#include "pe_common.h"

typedef struct pe_fft_plans {
    int n;
    fftw_plan fwd, bwd; /* complex, in place */
} pe_fft_plans;

/* Plans for complex in-place transforms of size n, made on buf (an
 * fftw_malloc'd array of n values, left untouched).  *owned says whether
 * the caller's release destroys them (when the cache is full). */
int pe_fft_plans_get(int n, fftw_complex *buf, pe_fft_plans *out, int *owned, pe_err *e);
void pe_fft_plans_release(pe_fft_plans *pl, int owned);

/* Smallest 2^a 3^b 5^c >= need (need >= 1): the sizes FFTW is fastest at. */
uint64_t pe_fft_size(uint64_t need);

/* The linked FFTW, e.g. "fftw-3.3.10-sse2-avx". */
const char *pe_fft_version(void);

#endif
