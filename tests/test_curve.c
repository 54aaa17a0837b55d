/* test_curve.c: the binning rule (man pedecomp(1), CHOICES) and the U-score
 * (section 5) on cases whose answers are worked out by hand below. */
#include <math.h>
#include <stdio.h>

#include "pe_curve.h"
#include "pe_test.h"

#define NMAX 128

static double S[NMAX], C[NMAX];

/* A curve with one pair per distance: sum = f, count = 1. */
static void ones(size_t n)
{
    for (size_t d = 0; d < NMAX; d++) {
        S[d] = 0;
        C[d] = d < n ? 1 : 0;
    }
}

static void check_range(size_t n, size_t nb, size_t b, size_t lo, size_t hi, const char *what)
{
    size_t glo = 99, ghi = 99;
    pe_bin_range(n, nb, b, &glo, &ghi);
    pe_test_report(glo == lo && ghi == hi, what, "got [%zu, %zu], want [%zu, %zu]", glo, ghi, lo, hi);
}

static void test_binning(void)
{
    PE_CHECK_INT(pe_bin_count(10, 0), 10, "bins 0 means none: 10 distances, 10 bins");
    PE_CHECK_INT(pe_bin_count(5, 8), 5, "n <= B: no binning (5 distances, B 8)");
    PE_CHECK_INT(pe_bin_count(8, 8), 8, "n == B: no binning");
    PE_CHECK_INT(pe_bin_count(10, 3), 3, "n > B: B bins");

    check_range(10, 3, 0, 0, 2, "n=10 B=3: bin 0 = [0,2]");
    check_range(10, 3, 1, 3, 5, "n=10 B=3: bin 1 = [3,5]");
    check_range(10, 3, 2, 6, 9, "n=10 B=3: bin 2 = [6,9]");
    /* n = 40, B = 32: floor(1.25 b) -> widths 1,1,1,2,1,1,1,2,...; bin 3 = [3,4]. */
    check_range(40, 32, 3, 3, 4, "n=40 B=32: bin 3 = [3,4]");
    check_range(40, 32, 31, 38, 39, "n=40 B=32: bin 31 = [38,39]");
    check_range(5, 5, 4, 4, 4, "n == B: bin b = [b,b]");
    /* Bins tile 0..n-1 without gaps for an awkward n. */
    {
        size_t n = 1000003, nb = 7, next = 0;
        int ok = 1;
        for (size_t b = 0; b < nb; b++) {
            size_t lo, hi;
            pe_bin_range(n, nb, b, &lo, &hi);
            ok &= lo == next && hi >= lo;
            next = hi + 1;
        }
        pe_test_report(ok && next == n, "n=1000003 B=7: bins tile 0..n-1", "ended at %zu", next);
    }

    /* Pair-weighted mean: (10 + 9) / (5 + 1) = 19/6, not the mean of the means (2 + 9)/2. */
    double s[] = {10, 9, 0, 7}, c[] = {5, 1, 0, 0};
    PE_CHECK_NEAR(pe_bin_mean(s, c, 0, 1), 19.0 / 6.0, 1e-15, "bin mean is sum of sums / sum of counts");
    PE_CHECK_NEAR(pe_bin_mean(s, c, 1, 2), 9.0, 1e-15, "a distance without pairs adds nothing");
    PE_CHECK(isnan(pe_bin_mean(s, c, 2, 3)), "bin without pairs: NaN");
    PE_CHECK_NEAR(pe_bin_mean(s, c, 1, 1), 9.0, 0, "one-distance bin");
}

static void test_u(void)
{
    int ngf = -1;
    double u;

    /* V shape, n = 33: distances 1..32 are 32 one-distance bins, f = |d - 16|.
     * near 15, far 16, trough 0, R 16 -> U = 15/16. */
    ones(33);
    for (size_t d = 1; d < 33; d++) S[d] = fabs((double)d - 16);
    S[0] = -100; /* distance 0 is left out: it must not count as the trough or the range */
    u = pe_u_score(S, C, 33, &ngf);
    PE_CHECK_NEAR(u, 15.0 / 16.0, 1e-15, "V shape: U = 15/16");
    PE_CHECK_INT(ngf, 0, "V shape: near < far");
    PE_CHECK_STR(pe_u_label(u, ngf, PE_U_THRESHOLD), "u-shape", "V shape: label u-shape");

    /* Monotone decay f = 1/d: trough (1/31) is above far (1/32) -> min < 0 -> U 0. */
    ones(33);
    for (size_t d = 1; d < 33; d++) S[d] = 1.0 / (double)d;
    u = pe_u_score(S, C, 33, &ngf);
    PE_CHECK_NEAR(u, 0.0, 0, "monotone decay: U = 0");
    PE_CHECK_INT(ngf, 1, "monotone decay: near > far");
    PE_CHECK_STR(pe_u_label(u, ngf, PE_U_THRESHOLD), "decay", "monotone decay: label decay");

    /* Rise f = d. */
    ones(33);
    for (size_t d = 1; d < 33; d++) S[d] = (double)d;
    u = pe_u_score(S, C, 33, &ngf);
    PE_CHECK_NEAR(u, 0.0, 0, "rise: U = 0");
    PE_CHECK_STR(pe_u_label(u, ngf, PE_U_THRESHOLD), "rise", "rise: label rise");

    /* Constant: R == 0 -> U = 0. */
    ones(20);
    for (size_t d = 0; d < 20; d++) S[d] = 2.5;
    u = pe_u_score(S, C, 20, &ngf);
    PE_CHECK_NEAR(u, 0.0, 0, "constant: U = 0");
    PE_CHECK_INT(ngf, 0, "constant: near not > far");

    /* Fewer than 3 distances (after leaving out 0): NaN. */
    ones(3);
    S[1] = 1, S[2] = 0;
    PE_CHECK(isnan(pe_u_score(S, C, 3, &ngf)), "2 distances: NaN");
    PE_CHECK(isnan(pe_u_score(S, C, 1, NULL)), "only distance 0: NaN");
    PE_CHECK(isnan(pe_u_score(S, C, 0, NULL)), "empty curve: NaN");
    PE_CHECK_STR(pe_u_label(NAN, 0, PE_U_THRESHOLD), "none", "NaN: label none");
    /* 3 distances 1..3 -> 3 bins: 2, 0, 1 -> min(2, 1)/2 = 0.5. */
    ones(4);
    S[1] = 2, S[2] = 0, S[3] = 1;
    PE_CHECK_NEAR(pe_u_score(S, C, 4, NULL), 0.5, 1e-15, "3 distances: U = 0.5");

    /* Empty bins skipped: V shape with the ends and the bottom without pairs.
     * Bins with pairs: d = 2..31 minus 16; near f(2) = 14, far f(31) = 15,
     * trough f(15) = f(17) = 1, R = 15 - 1 -> U = 13/14. */
    ones(33);
    for (size_t d = 1; d < 33; d++) S[d] = fabs((double)d - 16);
    C[1] = C[32] = C[16] = 0;
    S[1] = S[32] = S[16] = 0;
    PE_CHECK_NEAR(pe_u_score(S, C, 33, NULL), 13.0 / 14.0, 1e-15, "empty bins skipped");
    /* Only 2 bins with pairs among 32: NaN. */
    ones(33);
    for (size_t d = 1; d < 33; d++) C[d] = (d == 5 || d == 9) ? 1 : 0;
    PE_CHECK(isnan(pe_u_score(S, C, 33, NULL)), "2 bins with pairs out of 32: NaN");

    /* Binning with pair weights: n = 41 -> distances 1..40 in 32 bins with the
     * floor rule (width 1, 1, 1, 2, ...); bin 3 = distances 4 and 5.
     * f: 8 at d 1, 6 at d 39 and 40 (bin 31 = [39,40]), 0 elsewhere, except
     * d 5 with sum 40, count 1, and d 4 with count 3, sum 0: g_3 = 40/4 = 10.
     * near 8, far 6, trough 0, R 10 -> U = 0.6.  (Unweighted: g_3 = 20, U 0.3;
     * d 5 in a bin of its own: U 0.15.) */
    ones(41);
    S[1] = 8, S[39] = 6, S[40] = 6, S[5] = 40, C[4] = 3;
    u = pe_u_score(S, C, 41, &ngf);
    PE_CHECK_NEAR(u, 0.6, 1e-15, "32 bins over 40 distances, pair-weighted: U = 0.6");
    PE_CHECK_INT(ngf, 1, "binned: near 8 > far 6");

    /* Clip at 1 cannot be exceeded; a bottom at the far end gives 0. */
    ones(33);
    for (size_t d = 1; d < 33; d++) S[d] = (d == 1 || d == 32) ? 1 : 0;
    PE_CHECK_NEAR(pe_u_score(S, C, 33, NULL), 1.0, 0, "flat bottom between two equal ends: U = 1");

    PE_CHECK_STR(pe_u_label(0.1, 1, 0.1), "u-shape", "label: U == threshold is u-shape");
    PE_CHECK_STR(pe_u_label(0.09, 1, 0.1), "decay", "label: below threshold, near > far");
    PE_CHECK_STR(pe_u_label(0.09, 0, 0.1), "rise", "label: below threshold, near <= far");
}

int main(void)
{
    test_binning();
    test_u();
    return pe_test_done();
}
