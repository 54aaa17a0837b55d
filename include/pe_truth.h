/* pe_truth.h: the ground truth a verdict is checked against: the model's own
 * next-token loss (man qkdump(5), /tokens/nll), and the loss of the control
 * pass that hides only the distances beyond the training length
 * (/tokens/nll_control), against position (man peanalyze(1), -t loss).
 *
 * Position bins follow the binning rule of the distance curves (pe_curve.h):
 * positions 0 .. n_pos-1 cut into nb bins, bin b = [floor(b n_pos / nb),
 * floor((b+1) n_pos / nb) - 1].  Sums are kept per bin, so that files pool
 * exactly by adding (a mean is a sum of sums over a sum of counts).
 *
 * Pure computation on borrowed arrays; a pe_loss_acc owns its sums
 * (pe_loss_init / pe_loss_free).
 */
#ifndef PE_TRUTH_H
#define PE_TRUTH_H

#include <stddef.h>
#include <stdint.h>

#include "pe_common.h"

typedef struct pe_loss_acc {
    size_t n_pos;  /* positions 0 .. n_pos - 1 */
    size_t nb;     /* bins: pe_bin_count(n_pos, bins asked) */
    double *n;     /* per bin: tokens with a loss */
    double *nll;   /* their sum of nll */
    double *n_ctl; /* tokens with a loss and a control loss */
    double *ctl;   /* their sum of nll_control */
    double *excess;/* their sum of nll - nll_control */
    size_t n_diag; /* diagnostics binned along (pe_loss_diag) */
    double *dsum;  /* nb x n_diag: per bin the sum of each over the tokens with a loss */
    double *dcnt;  /* and the count of those where it is known */
} pe_loss_acc;

int pe_loss_init(pe_loss_acc *a, size_t n_pos, size_t bins, pe_err *e);
void pe_loss_free(pe_loss_acc *a);
/* Zeroes the sums (the bins stay). */
void pe_loss_clear(pe_loss_acc *a);

/* Adds one sequence: T tokens at positions pos (strictly increasing, below
 * a->n_pos), their nll and (may be NULL) nll_control.  A token whose nll is
 * NaN (the last one: no next token) is left out; so is its control. */
void pe_loss_add(pe_loss_acc *a, const int64_t *pos, size_t T, const double *nll, const double *nll_control);

/* Bins n_diag per-token diagnostics along with the loss (peanalyze -t
 * loss: each layer's unseen mass, entropy, ...): zeroed sums, freed by
 * pe_loss_free.  Returns 0 or -1. */
int pe_loss_diag(pe_loss_acc *a, size_t n_diag, pe_err *e);

/* pe_loss_add, and the sequence's diagnostics along (diag may be NULL):
 * diag[c * stride + m] is diagnostic c of token m; a token counts where its
 * nll and the value are both known. */
void pe_loss_add_diag(pe_loss_acc *a, const int64_t *pos, size_t T, const double *nll, const double *nll_control,
                      const double *diag, size_t stride);

/* Bin b's mean of diagnostic c (NaN where no token has it). */
double pe_loss_diag_mean(const pe_loss_acc *a, size_t b, size_t c);

/* ---- comparing two losses over the same tokens ---- */

/* The mean of x[0..n-1] and its batch-means standard error (man
 * peanalyze(1), -t loss, section compare): the values, in order, cut into
 * batches of floor(sqrt(n)) consecutive values (the last may be shorter), so
 * that neighbouring tokens, whose losses move together, share a batch.
 * With B batches of sums s_j over c_j values and m = sum s_j / n,
 * se^2 = B / (B - 1) sum_j (s_j - m c_j)^2 / n^2 (the standard error of a
 * ratio estimator; with equal batches, var(batch means) / B).  *mean is NaN
 * when n is 0, *se when B < 2. */
void pe_batch_mean(const double *x, size_t n, double *mean, double *se);

/* One sequence's recorded loss, for pe_loss_compare (ids may be NULL). */
typedef struct pe_loss_seq {
    size_t T;
    const int64_t *pos, *ids;
    const double *nll;
} pe_loss_seq;

/* Within L ([0]) and beyond it ([1]): the tokens with both losses, the mean
 * of nll_b - nll_a and its batch-means standard error (pe_batch_mean). */
typedef struct pe_loss_cmp {
    size_t n[2];
    double diff[2], se[2];
} pe_loss_cmp;

/* Two specs' losses token by token (man peanalyze(1), -t loss, section
 * compare): a[i] against b[i], i < n.  Sequences that are not the same
 * tokens (T, positions, and ids where both have them) compare nothing: n 0
 * and NaN.  Returns 0, or -1 with e filled when out of memory. */
int pe_loss_compare(const pe_loss_seq *a, const pe_loss_seq *b, size_t n, long L, pe_loss_cmp *out, pe_err *e);

/* ---- calibration: does a diagnostic explain the excess loss? ---- */

/* Spearman's rank correlation of x and y (n pairs), ties given their
 * average rank: the Pearson correlation of the ranks.  NaN when n < 3 or
 * when either side is constant.  NULL with e filled when out of memory is
 * reported as -1 in *ok (may be NULL). */
double pe_spearman(const double *x, const double *y, size_t n, int *ok);

/* One sequence's tokens for pe_calibrate: positions, the excess loss
 * nll - nll_control and a diagnostic, NaN where either is unknown. */
typedef struct pe_calib_seq {
    size_t T;
    const int64_t *pos;
    const double *excess;
    const double *diag;
} pe_calib_seq;

typedef struct pe_calib {
    double across;   /* Spearman over the bins beyond L of the bins' means */
    size_t n_bins;   /* bins with beyond-L tokens */
    double within;   /* token-level Spearman within each bin beyond L, the
                        bins' values averaged weighted by their tokens */
    size_t n_tokens; /* beyond-L tokens with both values */
} pe_calib;

/* The two rank correlations of the calibration (man peanalyze(1), -t loss):
 * over the tokens at positions >= L of every sequence, binned by position
 * like pe_loss_add (nb bins of positions 0 .. n_pos-1).  across: the
 * Spearman correlation, over the bins that hold such tokens, of the bins'
 * mean diagnostic and mean excess (NaN with fewer than 3 bins): anything
 * that grows with position passes it.  within: in each bin, the Spearman
 * correlation of the tokens' diagnostic and their own excess; the bins'
 * values averaged, weighted by their token counts (bins whose correlation is
 * undefined left out; NaN when none is defined): only this one separates
 * "explains the loss" from "grows with position".  Returns 0 or -1. */
int pe_calibrate(const pe_calib_seq *seqs, size_t n_seqs, size_t n_pos, size_t nb, long L, pe_calib *out, pe_err *e);

#endif
