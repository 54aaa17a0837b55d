/* test_spectrum: spectral purity (man pedecomp(1), TABLES, spectrum) on curves whose
 * spectrum is known: a pure cosine, a cosine with a planted third harmonic,
 * constants, and curves too short to judge. */
#include <math.h>
#include <stdlib.h>

#include "pe_spectrum.h"
#include "pe_test.h"

static const double PI = 3.14159265358979323846;

static void cosine(double *c, size_t n, double amp, double theta, double phase, double amp3, double offset)
{
    for (size_t d = 0; d < n; d++)
        c[d] = offset + amp * cos((double)d * theta + phase) + amp3 * cos(3.0 * (double)d * theta + 0.3);
}

int main(void)
{
    enum { DW = 512 };
    double c[DW];
    pe_purity p;
    pe_err e;
    char what[160];

    /* Constant query and key vectors give C(delta) = s |zq||zk| cos(delta
     * theta + phase): purity 1 (to 1e-3) for every pair with two turns. */
    const double thetas[] = {0.025, 0.05, 0.1, 0.3, 1.0, 2.0, 3.0, 3.1, 4.0, 6.0, 7.5};
    double worst = 0;
    int peaks_ok = 1;
    for (size_t i = 0; i < sizeof thetas / sizeof thetas[0]; i++) {
        cosine(c, DW, 0.7, thetas[i], 0.4 * (double)i, 0, 0.2);
        pe_spectrum_purity(c, DW, thetas[i], &p, NULL, &e);
        worst = fmax(worst, 1 - p.purity);
        /* the peak sits on the line, within one bin of the padded spectrum */
        if (fabs(p.peak_freq - p.line_freq) > 1.0 / (double)pe_spectrum_size(DW)) peaks_ok = 0;
    }
    pe_test_report(worst <= 1e-3, "a pure cosine has purity 1 (to 1e-3) at every theta", "worst 1 - purity %.3g", worst);
    PE_CHECK(peaks_ok, "the peak frequency is the line's");

    /* A second cosine at 3 theta with a tenth of the amplitude: leakage
     * between 0.008 and 0.012 (a hundredth of the power). */
    const double thetas3[] = {0.05, 0.1, 0.2, 0.5, 0.8};
    for (size_t i = 0; i < sizeof thetas3 / sizeof thetas3[0]; i++) {
        cosine(c, DW, 1.0, thetas3[i], 0.1, 0.1, 0.0);
        pe_spectrum_purity(c, DW, thetas3[i], &p, NULL, &e);
        snprintf(what, sizeof what, "a planted third harmonic (theta %g) leaks 0.008..0.012", thetas3[i]);
        pe_test_report(p.leakage >= 0.008 && p.leakage <= 0.012, what, "leakage %.6f", p.leakage);
    }

    /* The line: f = min(g, 1 - g), g = theta / 2 pi mod 1 (aliasing above pi). */
    pe_spectrum_purity(c, DW, 0.5, &p, NULL, &e);
    PE_CHECK_NEAR(p.line_freq, 0.5 / (2 * PI), 1e-15, "line frequency theta / 2 pi");
    pe_spectrum_purity(c, DW, 2 * PI - 0.5, &p, NULL, &e);
    PE_CHECK_NEAR(p.line_freq, 0.5 / (2 * PI), 1e-12, "theta above pi aliases to 2 pi - theta");
    pe_spectrum_purity(c, DW, 2 * PI + 0.5, &p, NULL, &e);
    PE_CHECK_NEAR(p.line_freq, 0.5 / (2 * PI), 1e-12, "theta above 2 pi wraps");

    /* Fewer than two turns inside the window: peak, purity, leakage nan. */
    cosine(c, DW, 1.0, 0.02, 0, 0, 0);
    pe_spectrum_purity(c, DW, 0.02, &p, NULL, &e);
    PE_CHECK(isnan(p.purity) && isnan(p.leakage) && isnan(p.peak_freq) && !isnan(p.dc),
             "under two turns: purity undefined, dc still defined");
    pe_spectrum_purity(c, DW, 4 * PI / DW, &p, NULL, &e);
    PE_CHECK(!isnan(p.purity), "exactly two turns is defined");

    /* dc: a constant is all bias; whole periods of a cosine have none. */
    cosine(c, DW, 0, 1.0, 0, 0, -2.5);
    pe_spectrum_purity(c, DW, 1.0, &p, NULL, &e);
    PE_CHECK_NEAR(p.dc, 1.0, 1e-15, "a constant curve has dc 1");
    cosine(c, DW, 1.0, 2 * PI / 64, 0, 0, 0); /* 8 whole periods */
    pe_spectrum_purity(c, DW, 2 * PI / 64, &p, NULL, &e);
    PE_CHECK_NEAR(p.dc, 0.0, 1e-12, "whole periods of a cosine have dc 0");
    cosine(c, DW, 1.0, 2 * PI / 64, 0, 0, 1.0);
    pe_spectrum_purity(c, DW, 2 * PI / 64, &p, NULL, &e);
    /* mean 1, rms of the cosine 1/sqrt(2): dc = 1 / (1 + 0.7071...) */
    PE_CHECK_NEAR(p.dc, 1.0 / (1.0 + sqrt(0.5)), 1e-12, "dc = |mean| / (|mean| + rms)");

    /* A distance without pairs: nothing but the line is defined. */
    cosine(c, DW, 1.0, 0.5, 0, 0, 0);
    c[100] = NAN;
    pe_spectrum_purity(c, DW, 0.5, &p, NULL, &e);
    PE_CHECK(isnan(p.purity) && isnan(p.dc) && isnan(p.peak_freq) && !isnan(p.line_freq),
             "a gap in the curve leaves only line_freq");

    /* The power spectrum: N/2+1 bins, Parseval's theorem on the windowed curve. */
    {
        size_t N = pe_spectrum_size(DW), nb = N / 2 + 1;
        double *pw = malloc(nb * sizeof *pw), sum_t = 0, sum_f = 0, mean = 0;
        cosine(c, DW, 1.0, 0.3, 0.2, 0.05, 0.7);
        pe_spectrum_purity(c, DW, 0.3, &p, pw, &e);
        for (size_t n = 0; n < DW; n++) mean += c[n] / DW;
        for (size_t n = 0; n < DW; n++) {
            double w = 0.5 - 0.5 * cos(2 * PI * (double)n / (DW - 1)), x = w * (c[n] - mean);
            sum_t += x * x;
        }
        /* one-sided: every bin but 0 and N/2 stands for two */
        for (size_t k = 0; k < nb; k++) sum_f += (k == 0 || k == N / 2 ? 1 : 2) * pw[k];
        PE_CHECK_INT(N, 2048, "N is the smallest power of two >= 4 Dw");
        PE_CHECK_REL(sum_f / (double)N, sum_t, 1e-12, "Parseval: the spectrum holds the windowed curve's energy");
        free(pw);
    }
    PE_CHECK_INT(pe_spectrum_size(1), 4, "N for one point");
    PE_CHECK_INT(pe_spectrum_size(513), 4096, "N rounds up to a power of two");
    return pe_test_done();
}
