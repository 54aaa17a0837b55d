/* test_truth.c: the ground truth's arithmetic (pe_truth): the loss binned by
 * position, Spearman's rank correlation (values worked out by hand), and the
 * calibration's two correlations on sequences built so that their answers
 * are known. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe_test.h"
#include "pe_truth.h"

static void test_spearman(void)
{
    double a[5] = {1, 2, 3, 4, 5}, b[5] = {10, 20, 30, 40, 50}, c[5] = {5, 4, 3, 2, 1};
    PE_CHECK_NEAR(pe_spearman(a, b, 5, NULL), 1.0, 1e-15, "spearman: a monotone increasing pair: 1");
    PE_CHECK_NEAR(pe_spearman(a, c, 5, NULL), -1.0, 1e-15, "spearman: reversed: -1");
    /* Ties share their average rank: x ranks 1 2.5 2.5 4, y 1 3 2 4;
     * sum dx dy = 4.5, sum dx^2 = 4.5, sum dy^2 = 5: 4.5 / sqrt(22.5). */
    double x[4] = {1, 2, 2, 3}, y[4] = {1, 3, 2, 4};
    PE_CHECK_NEAR(pe_spearman(x, y, 4, NULL), 4.5 / sqrt(22.5), 1e-15, "spearman: ties get the average rank");
    /* Ranks, not values: a monotone transform changes nothing. */
    double e[5] = {exp(1), exp(2), exp(3), exp(5), exp(4)}, f[5] = {1, 2, 3, 5, 4};
    PE_CHECK_NEAR(pe_spearman(e, a, 5, NULL), pe_spearman(f, a, 5, NULL), 1e-15, "spearman: only the order counts");
    /* rho of ranks 1..5 against 1 2 3 5 4: 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - 12 / 120. */
    PE_CHECK_NEAR(pe_spearman(f, a, 5, NULL), 0.9, 1e-15, "spearman: one swap of 5: 0.9 (the d^2 formula)");
    double k[4] = {2, 2, 2, 2};
    PE_CHECK(isnan(pe_spearman(k, y, 4, NULL)), "spearman: a constant side: NaN");
    PE_CHECK(isnan(pe_spearman(a, b, 2, NULL)), "spearman: fewer than 3 pairs: NaN");
}

/* Two sequences at positions 0 .. T-1 (T 12 and 8), L 4, 3 bins over 0..11
 * ([0,3], [4,7], [8,11]).  The excess of token m is the diagnostic's rank
 * order within each bin reversed in the second sequence: built so that the
 * answers are known. */
static void test_calibrate(void)
{
    enum { T1 = 12, T2 = 8 };
    int64_t p1[T1], p2[T2];
    double x1[T1], e1[T1], x2[T2], e2[T2];
    for (int m = 0; m < T1; m++) {
        p1[m] = m;
        x1[m] = m;          /* the diagnostic grows with position */
        e1[m] = 10.0 * m;   /* and so does the excess: within and across, 1 */
    }
    for (int m = 0; m < T2; m++) {
        p2[m] = m;
        x2[m] = m;
        e2[m] = 10.0 * m;
    }
    e1[T1 - 1] = NAN; /* no loss for the last token */
    pe_calib_seq s[2] = {{T1, p1, e1, x1}, {T2, p2, e2, x2}};
    pe_calib c;
    pe_err err = {0};
    int rc = pe_calibrate(s, 2, 12, 3, 4, &c, &err);
    /* Beyond L: bin [4,7] holds m 4..7 of both (8 tokens), bin [8,11] m 8..10
     * of the first (3 tokens): 11 tokens, 2 bins (across: NaN, fewer than 3). */
    PE_CHECK(rc == 0 && c.n_tokens == 11 && c.n_bins == 2 && isnan(c.across),
             "calibrate: 11 beyond-L tokens in 2 bins; across bins NaN with fewer than 3");
    PE_CHECK_NEAR(c.within, 1.0, 1e-15, "calibrate: within every bin the excess rises with the diagnostic: 1");
    /* Within the bins, make the diagnostic run against the excess while both
     * still rise from bin to bin: within -1, across (3 bins) +1. */
    enum { T3 = 16 };
    int64_t p3[T3];
    double x3[T3], e3[T3];
    for (int m = 0; m < T3; m++) {
        p3[m] = m;
        int b = m / 4;
        x3[m] = 10.0 * b + (3 - m % 4); /* falls inside each bin of 4 */
        e3[m] = 10.0 * b + m % 4;       /* rises */
    }
    pe_calib_seq s3 = {T3, p3, e3, x3};
    rc = pe_calibrate(&s3, 1, 16, 4, 4, &c, &err);
    PE_CHECK(rc == 0 && c.n_bins == 3 && c.n_tokens == 12, "calibrate: 3 bins of 4 beyond L = 4");
    PE_CHECK_NEAR(c.across, 1.0, 1e-15, "calibrate: across the bins both grow: +1 (what position alone gives)");
    PE_CHECK_NEAR(c.within, -1.0, 1e-15, "calibrate: within the bins they run opposite: -1");
    /* Ties within a bin: a constant diagnostic in one bin leaves it out. */
    for (int m = 8; m < 12; m++) x3[m] = 5;
    rc = pe_calibrate(&s3, 1, 16, 4, 4, &c, &err);
    PE_CHECK(rc == 0 && c.n_tokens == 12, "calibrate: a constant bin still counts its tokens");
    PE_CHECK_NEAR(c.within, -1.0, 1e-15, "calibrate: ... but its undefined correlation is left out of the mean");
}

static void test_loss_bins(void)
{
    pe_loss_acc a;
    pe_err e = {0};
    int64_t pos[6] = {0, 1, 2, 3, 4, 5};
    double nll[6] = {1, 2, 3, 4, 5, NAN}, ctl[6] = {1, 2, 1, 1, NAN, NAN};
    PE_CHECK(pe_loss_init(&a, 6, 2, &e) == 0 && a.nb == 2, "loss: 2 bins over 6 positions");
    pe_loss_add(&a, pos, 6, nll, ctl);
    PE_CHECK(a.n[0] == 3 && a.nll[0] == 6 && a.n_ctl[0] == 3 && a.ctl[0] == 4 && a.excess[0] == 2,
             "loss: bin [0,2]: 3 tokens, nll 1+2+3, control 1+2+1, excess 2");
    PE_CHECK(a.n[1] == 2 && a.nll[1] == 9 && a.n_ctl[1] == 1 && a.ctl[1] == 1 && a.excess[1] == 3,
             "loss: bin [3,5]: the last token has no loss; a token without a control counts for nll only");
    /* Two diagnostics of the same tokens, stride 6: the second unknown at
     * positions 1 and 3; the last token (no loss) never counts. */
    double diag[12] = {1, 2, 4, 8, 16, 32, 10, NAN, 30, NAN, 50, 60};
    PE_CHECK(pe_loss_diag(&a, 2, &e) == 0, "loss: two diagnostics");
    pe_loss_clear(&a);
    pe_loss_add_diag(&a, pos, 6, nll, ctl, diag, 6);
    PE_CHECK(a.n[0] == 3 && a.nll[0] == 6 && a.n_ctl[1] == 1 && a.excess[1] == 3,
             "loss diag: the loss sums are those of pe_loss_add");
    PE_CHECK_NEAR(pe_loss_diag_mean(&a, 0, 0), 7.0 / 3, 1e-15, "loss diag: bin [0,2] mean of 1, 2, 4");
    PE_CHECK_NEAR(pe_loss_diag_mean(&a, 1, 0), 12.0, 1e-15, "loss diag: bin [3,5] mean of 8, 16 (32 has no loss)");
    PE_CHECK_NEAR(pe_loss_diag_mean(&a, 0, 1), 20.0, 1e-15, "loss diag: unknown values left out: mean of 10, 30");
    PE_CHECK_NEAR(pe_loss_diag_mean(&a, 1, 1), 50.0, 1e-15, "loss diag: bin [3,5]: only 50 counts");
    pe_loss_clear(&a);
    PE_CHECK(isnan(pe_loss_diag_mean(&a, 0, 0)) && a.n[0] == 0, "loss diag: cleared with the loss sums");
    pe_loss_free(&a);
}

/* pe_batch_mean against values worked by hand (the header's formula). */
static void test_batch_mean(void)
{
    double x[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, m, se;
    /* n 9: batches of 3, sums 6 15 24, mean 5: se^2 = 3/2 (81 + 0 + 81) / 81 = 3. */
    pe_batch_mean(x, 9, &m, &se);
    PE_CHECK_NEAR(m, 5.0, 1e-15, "batch mean: n 9: the mean");
    PE_CHECK_NEAR(se, sqrt(3.0), 1e-15, "batch mean: n 9: se = sqrt(3) (batches of 3)");
    /* n 10: batches 1-3, 4-6, 7-9, 10 (floor(sqrt(10)) = 3), mean 5.5:
     * residuals -10.5 -1.5 7.5 4.5, se^2 = 4/3 x 189 / 100 = 2.52. */
    pe_batch_mean(x, 10, &m, &se);
    PE_CHECK_NEAR(m, 5.5, 1e-15, "batch mean: n 10: the mean");
    PE_CHECK_NEAR(se, sqrt(2.52), 1e-15, "batch mean: n 10: a short last batch weighs by its count");
    /* Equal values: no spread. */
    double c[16] = {0};
    for (int i = 0; i < 16; i++) c[i] = 0.25;
    pe_batch_mean(c, 16, &m, &se);
    PE_CHECK(m == 0.25 && se == 0.0, "batch mean: constant values: se 0");
    pe_batch_mean(x, 3, &m, &se); /* floor(sqrt(3)) = 1: three batches of one value */
    PE_CHECK_NEAR(se, sqrt(3.0 / 2.0 * 2.0) / 3.0, 1e-15, "batch mean: n 3: batches of 1 (se of the mean of 1 2 3)");
    pe_batch_mean(x, 1, &m, &se);
    PE_CHECK(m == 1.0 && isnan(se), "batch mean: one value: se nan");
    pe_batch_mean(x, 0, &m, &se);
    PE_CHECK(isnan(m) && isnan(se), "batch mean: no value: mean and se nan");
}

/* pe_loss_compare: tokens split at L, NaN losses left out, other tokens refused. */
static void test_loss_compare(void)
{
    int64_t pos[6] = {0, 1, 2, 3, 4, 5}, ids[6] = {9, 8, 7, 6, 5, 4}, ids2[6] = {9, 8, 7, 6, 5, 3};
    double a[6] = {1, 1, 1, 1, 1, NAN}, b[6] = {1.5, 2, 1, 3, 1, NAN};
    pe_loss_seq sa = {6, pos, ids, a}, sb = {6, pos, ids, b}, sc = {6, pos, ids2, b}, sd = {6, pos, NULL, b};
    pe_loss_cmp c;
    pe_err e = {0};
    PE_CHECK(pe_loss_compare(&sa, &sb, 1, 3, &c, &e) == 0, "loss compare: runs");
    /* Within L 3: differences 0.5 1 0 (batches of 1): mean 0.5, se = sd / sqrt(3) = 0.5 / sqrt(3). */
    PE_CHECK(c.n[0] == 3 && c.n[1] == 2, "loss compare: 3 tokens within L, 2 beyond (the NaN one left out)");
    PE_CHECK_NEAR(c.diff[0], 0.5, 1e-15, "loss compare: mean difference within L");
    PE_CHECK_NEAR(c.se[0], 0.5 / sqrt(3.0), 1e-15, "loss compare: its standard error");
    PE_CHECK_NEAR(c.diff[1], 1.0, 1e-15, "loss compare: mean difference beyond L (2 and 0)");
    PE_CHECK(pe_loss_compare(&sa, &sc, 1, 3, &c, &e) == 0 && c.n[0] == 0 && c.n[1] == 0 && isnan(c.diff[0]) &&
                 isnan(c.se[1]),
             "loss compare: other token ids: nothing compared, nan");
    PE_CHECK(pe_loss_compare(&sa, &sd, 1, 3, &c, &e) == 0 && c.n[0] == 3,
             "loss compare: ids missing on one side: positions decide");
}

int main(void)
{
    test_spearman();
    test_calibrate();
    test_loss_bins();
    test_batch_mean();
    test_loss_compare();
    return pe_test_done();
}
