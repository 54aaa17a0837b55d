/* pe_curve.c: the binning rule (man pedecomp(1), CHOICES) and the U-score
 * (section 5) of curves given as per-distance sums and pair counts. */
#include "pe_curve.h"

#include <math.h>

size_t pe_bin_count(size_t n, size_t bins)
{
    return (bins == 0 || n <= bins) ? n : bins;
}

/* floor(b * n / nb) for b <= nb without forming b * n, which could overflow:
 * b*n/nb = b*q + b*r/nb with n = q*nb + r, and b*r < nb*nb. */
static size_t pe_muldiv_floor(size_t b, size_t n, size_t nb)
{
    size_t q = n / nb, r = n % nb;
    return b * q + (b * r) / nb;
}

void pe_bin_range(size_t n, size_t nb, size_t b, size_t *lo, size_t *hi)
{
    /* nb > n would make empty bins whose hi cannot be written as lo - 1 when
     * lo == 0; pe_bin_count never asks for that, so treat it as no binning.
     * nb == 0 is "no binning" too (bin b is distance b). */
    if (nb == 0 || nb > n) nb = n;
    if (b >= nb) { /* out of range (or n == 0): an empty range, lo > hi */
        *lo = 1;
        *hi = 0;
        return;
    }
    *lo = pe_muldiv_floor(b, n, nb);
    *hi = pe_muldiv_floor(b + 1, n, nb) - 1; /* >= lo since n >= nb */
}

double pe_bin_mean(const double *sum, const double *count, size_t lo, size_t hi)
{
    /* Neumaier-compensated sums: a wide bin adds thousands of terms of
     * either sign, and its mean should not depend on their order's rounding.
     * Counts are exact integers, so they need no compensation. */
    double s = 0, c = 0, n = 0;
    for (size_t d = lo; d <= hi; d++) {
        double x = sum[d], t = s + x;
        c += fabs(s) >= fabs(x) ? (s - t) + x : (x - t) + s;
        s = t;
        n += count[d];
    }
    return n > 0 ? (s + c) / n : NAN;
}

double pe_u_score(const double *sum, const double *count, size_t n, int *near_gt_far)
{
    if (near_gt_far) *near_gt_far = 0;
    if (n < 2) return NAN;
    /* Distance 0 is left out: bins are cut over the n-1 distances 1..n-1. */
    const size_t m = n - 1;
    const size_t nb = pe_bin_count(m, PE_U_BINS);
    double g[PE_U_BINS];
    size_t ng = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t lo, hi, npairs = 0;
        pe_bin_range(m, nb, b, &lo, &hi);
        for (size_t d = lo + 1; d <= hi + 1; d++) npairs += count[d] > 0;
        if (npairs == 0) continue; /* bins without pairs are skipped */
        g[ng++] = pe_bin_mean(sum, count, lo + 1, hi + 1);
    }
    if (ng < 3) return NAN;
    double near = g[0], far = g[ng - 1];
    double mn = g[0], mx = g[0], trough = g[1];
    for (size_t b = 0; b < ng; b++) {
        if (isnan(g[b])) return NAN; /* non-finite data: no honest score */
        if (g[b] < mn) mn = g[b];
        if (g[b] > mx) mx = g[b];
        if (b > 0 && b + 1 < ng && g[b] < trough) trough = g[b];
    }
    if (near_gt_far) *near_gt_far = near > far;
    double range = mx - mn;
    if (range == 0) return 0;
    double u = fmin(near - trough, far - trough) / range;
    if (isnan(u)) return NAN; /* infinite values */
    return u < 0 ? 0 : u > 1 ? 1 : u;
}

const char *pe_u_label(double u, int near_gt_far, double threshold)
{
    if (isnan(u)) return "none";
    if (u >= threshold) return "u-shape";
    return near_gt_far ? "decay" : "rise";
}
