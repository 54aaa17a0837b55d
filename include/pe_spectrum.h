/* pe_spectrum.h: spectral purity of a component's profile (man
 * pedecomp(1), TABLES, spectrum; FoPE's "spectral damage").
 *
 * RoPE gives pair i the single frequency theta_i, so with stationary content
 * its mean logit against distance is a cosine at theta_i plus a constant.  The
 * power spectrum of that curve over the in-train distances tells how much of
 * it still sits at theta_i.  Pure computation; arrays are borrowed.
 * Safe to call from several threads (FFTW plans come from pe_fft). */
#ifndef PE_SPECTRUM_H
#define PE_SPECTRUM_H

#include <stddef.h>

#include "pe_common.h"

typedef struct pe_purity {
    double peak_freq; /* frequency (cycles per token) of the largest bin but bin 0 */
    double line_freq; /* f_i = min(g, 1 - g), g = (theta / 2 pi) mod 1 */
    double purity;    /* power within 3/Dw of f_i over all power but bin 0 */
    double leakage;   /* 1 - purity */
    double dc;        /* |mean| / (|mean| + rms of the mean-removed curve) */
} pe_purity;

/* N: the smallest power of two >= 4 Dw; the one-sided spectrum has N/2 + 1
 * bins, bin k at k / N cycles per token. */
size_t pe_spectrum_size(size_t Dw);

/* The curve's values at distances 0 .. Dw-1 (Dw >= 1; a NaN anywhere, a
 * distance without pairs, makes every field but line_freq NaN).  peak, purity
 * and leakage are defined only when theta * Dw >= 4 pi (two turns), else NaN.
 * power, when not NULL, receives the N/2 + 1 bins of the one-sided power
 * spectrum |FFT|^2 of the windowed, mean-removed curve. */
int pe_spectrum_purity(const double *curve, size_t Dw, double theta, pe_purity *out, double *power,
                       pe_err *e);

#endif
