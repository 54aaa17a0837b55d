/* pe_spectrum.c: spectral purity of a profile curve (see pe_spectrum.h). */
#include "pe_spectrum.h"

#include <math.h>
#include <string.h>

#include "pe_fft.h"

static const double PE_PI = 3.14159265358979323846264338327950288;

size_t pe_spectrum_size(size_t Dw)
{
    size_t n = 1;
    while (n < 4 * Dw) n *= 2;
    return n;
}

int pe_spectrum_purity(const double *curve, size_t Dw, double theta, pe_purity *out, double *power,
                       pe_err *e)
{
    const double two_pi = 2 * PE_PI;
    double g = fmod(theta / two_pi, 1.0);
    out->line_freq = fmin(g, 1 - g);
    out->peak_freq = out->purity = out->leakage = out->dc = NAN;
    size_t N = pe_spectrum_size(Dw), nb = N / 2 + 1;
    if (power)
        for (size_t k = 0; k < nb; k++) power[k] = NAN;
    if (Dw == 0) return 0;

    double mean = 0, ss = 0;
    for (size_t n = 0; n < Dw; n++) {
        if (!isfinite(curve[n])) return 0; /* a distance without pairs */
        mean += curve[n];
    }
    mean /= (double)Dw;
    for (size_t n = 0; n < Dw; n++) ss += (curve[n] - mean) * (curve[n] - mean);
    double rms = sqrt(ss / (double)Dw);
    out->dc = fabs(mean) + rms > 0 ? fabs(mean) / (fabs(mean) + rms) : NAN;

    int defined = theta * (double)Dw >= 4 * PE_PI;
    if (!defined && !power) return 0;
    if (N > (size_t)1 << 30) return pe_fail(e, "spectrum: window of %zu distances is too long", Dw);

    fftw_complex *buf = fftw_malloc(N * sizeof *buf);
    pe_fft_plans pl;
    int owned = 0;
    if (!buf) return pe_fail(e, "out of memory (spectrum of %zu points)", N);
    if (pe_fft_plans_get((int)N, buf, &pl, &owned, e) < 0) {
        fftw_free(buf);
        return -1;
    }
    /* Mean removed, Hann window w_n = 1/2 - 1/2 cos(2 pi n / (Dw - 1)),
     * zero-padded to N.  A single point has no window: w_0 = 1. */
    for (size_t n = 0; n < N; n++) {
        double w = Dw > 1 ? 0.5 - 0.5 * cos(two_pi * (double)n / (double)(Dw - 1)) : 1.0;
        buf[n][0] = n < Dw ? w * (curve[n] - mean) : 0.0;
        buf[n][1] = 0.0;
    }
    fftw_execute_dft(pl.fwd, buf, buf);
    pe_fft_plans_release(&pl, owned);

    double total = 0, line = 0, best = -1;
    size_t kbest = 0;
    double band = 3.0 / (double)Dw;
    for (size_t k = 0; k < nb; k++) {
        double p = buf[k][0] * buf[k][0] + buf[k][1] * buf[k][1];
        if (power) power[k] = p;
        if (k == 0) continue;
        double f = (double)k / (double)N;
        total += p;
        if (fabs(f - out->line_freq) <= band) line += p;
        if (p > best) {
            best = p;
            kbest = k;
        }
    }
    fftw_free(buf);
    if (defined) {
        out->peak_freq = (double)kbest / (double)N;
        out->purity = total > 0 ? line / total : NAN;
        out->leakage = total > 0 ? 1 - out->purity : NAN;
    }
    return 0;
}
