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
} pe_loss_acc;

int pe_loss_init(pe_loss_acc *a, size_t n_pos, size_t bins, pe_err *e);
void pe_loss_free(pe_loss_acc *a);

/* Adds one sequence: T tokens at positions pos (strictly increasing, below
 * a->n_pos), their nll and (may be NULL) nll_control.  A token whose nll is
 * NaN (the last one: no next token) is left out; so is its control. */
void pe_loss_add(pe_loss_acc *a, const int64_t *pos, size_t T, const double *nll, const double *nll_control);

#endif
