/* pe_curve.h: curves over distance: the binning rule (man pedecomp(1), CHOICES)
 * and the U-score (section 5).
 *
 * A curve is given as per-distance sums and pair counts, so that every mean
 * is pair-weighted (sum of sums / sum of counts) and pooling stays exact.
 * Arrays are borrowed.
 */
#ifndef PE_CURVE_H
#define PE_CURVE_H

#include <stddef.h>
#include <stdint.h>

/* Number of bins for n values (distances 0 .. n-1) and a request of B bins:
 * n when B == 0 or n <= B, else B. */
size_t pe_bin_count(size_t n, size_t bins);

/* Bin b of n values cut into nb bins: [*lo, *hi] (inclusive), with
 * lo = floor(b * n / nb), hi = floor((b + 1) * n / nb) - 1. */
void pe_bin_range(size_t n, size_t nb, size_t b, size_t *lo, size_t *hi);

/* Pair-weighted mean of sum[lo..hi] / count[lo..hi]; NaN when no pairs. */
double pe_bin_mean(const double *sum, const double *count, size_t lo, size_t hi);

/* U-score of a curve (section 5) given per-distance sums and counts for
 * distances 0 .. n-1.  Distance 0 is left out; distances 1 .. n-1 are cut
 * into 32 bins (fewer when there are fewer distances).  Needs at least 3
 * bins with pairs, else returns NaN.  *near_gt_far (may be NULL) is set to
 * 1 when near > far (for the label). */
double pe_u_score(const double *sum, const double *count, size_t n, int *near_gt_far);

/* "u-shape" when u >= threshold, else "decay" when near > far, else "rise";
 * "none" when u is NaN. */
const char *pe_u_label(double u, int near_gt_far, double threshold);

#define PE_U_BINS 32
#define PE_U_THRESHOLD 0.1

#endif
