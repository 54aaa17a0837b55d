/* pe_truth.c: the model's loss against position (see pe_truth.h; the
 * definitions: man peanalyze(1), -t loss). */
#include "pe_truth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pe_curve.h"

int pe_loss_init(pe_loss_acc *a, size_t n_pos, size_t bins, pe_err *e)
{
    memset(a, 0, sizeof *a);
    a->n_pos = n_pos;
    a->nb = pe_bin_count(n_pos, bins);
    size_t nb = a->nb ? a->nb : 1;
    double **arr[] = {&a->n, &a->nll, &a->n_ctl, &a->ctl, &a->excess};
    for (size_t i = 0; i < sizeof arr / sizeof *arr; i++) {
        if (!(*arr[i] = pe_alloc(nb, sizeof(double), 1, e))) {
            pe_loss_free(a);
            return -1;
        }
    }
    return 0;
}

void pe_loss_free(pe_loss_acc *a)
{
    free(a->n);
    free(a->nll);
    free(a->n_ctl);
    free(a->ctl);
    free(a->excess);
    memset(a, 0, sizeof *a);
}

void pe_loss_add(pe_loss_acc *a, const int64_t *pos, size_t T, const double *nll, const double *nll_control)
{
    size_t b = 0, lo, hi;
    if (!a->nb) return;
    pe_bin_range(a->n_pos, a->nb, 0, &lo, &hi);
    for (size_t m = 0; m < T; m++) {
        /* Positions increase: walk the bins along with them. */
        while ((uint64_t)pos[m] > hi && b + 1 < a->nb) pe_bin_range(a->n_pos, a->nb, ++b, &lo, &hi);
        if (isnan(nll[m])) continue;
        a->n[b] += 1;
        a->nll[b] += nll[m];
        if (nll_control && !isnan(nll_control[m])) {
            a->n_ctl[b] += 1;
            a->ctl[b] += nll_control[m];
            a->excess[b] += nll[m] - nll_control[m];
        }
    }
}
