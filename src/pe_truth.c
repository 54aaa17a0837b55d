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

void pe_loss_clear(pe_loss_acc *a)
{
    size_t nb = a->nb ? a->nb : 1;
    double *arr[] = {a->n, a->nll, a->n_ctl, a->ctl, a->excess};
    for (size_t i = 0; i < sizeof arr / sizeof *arr; i++) memset(arr[i], 0, nb * sizeof(double));
    if (a->n_diag) {
        memset(a->dsum, 0, nb * a->n_diag * sizeof(double));
        memset(a->dcnt, 0, nb * a->n_diag * sizeof(double));
    }
}

void pe_loss_free(pe_loss_acc *a)
{
    free(a->n);
    free(a->nll);
    free(a->n_ctl);
    free(a->ctl);
    free(a->excess);
    free(a->dsum);
    free(a->dcnt);
    memset(a, 0, sizeof *a);
}

void pe_loss_add(pe_loss_acc *a, const int64_t *pos, size_t T, const double *nll, const double *nll_control)
{
    pe_loss_add_diag(a, pos, T, nll, nll_control, NULL, 0);
}

int pe_loss_diag(pe_loss_acc *a, size_t n_diag, pe_err *e)
{
    size_t n = (a->nb ? a->nb : 1) * n_diag + 1;
    free(a->dsum);
    free(a->dcnt);
    a->dcnt = NULL;
    a->n_diag = 0;
    if (!(a->dsum = pe_alloc(n, sizeof(double), 1, e)) || !(a->dcnt = pe_alloc(n, sizeof(double), 1, e))) return -1;
    a->n_diag = n_diag;
    return 0;
}

void pe_loss_add_diag(pe_loss_acc *a, const int64_t *pos, size_t T, const double *nll, const double *nll_control,
                      const double *diag, size_t stride)
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
        for (size_t c = 0; diag && c < a->n_diag; c++) {
            double v = diag[c * stride + m];
            if (isnan(v)) continue;
            a->dsum[b * a->n_diag + c] += v;
            a->dcnt[b * a->n_diag + c] += 1;
        }
    }
}

double pe_loss_diag_mean(const pe_loss_acc *a, size_t b, size_t c)
{
    size_t i = b * a->n_diag + c;
    return a->dcnt[i] > 0 ? a->dsum[i] / a->dcnt[i] : NAN;
}

/* ---- comparing two losses ---- */

void pe_batch_mean(const double *x, size_t n, double *mean, double *se)
{
    *mean = *se = NAN;
    if (n == 0) return;
    size_t b = 1;
    while ((b + 1) * (b + 1) <= n) b++; /* floor(sqrt(n)), exactly */
    double total = 0;
    for (size_t i = 0; i < n; i++) total += x[i];
    *mean = total / (double)n;
    size_t nbatch = (n + b - 1) / b;
    if (nbatch < 2) return;
    double ss = 0;
    for (size_t a = 0; a < n; a += b) {
        size_t c = n - a < b ? n - a : b;
        double s = 0;
        for (size_t i = a; i < a + c; i++) s += x[i];
        double r = s - *mean * (double)c;
        ss += r * r;
    }
    *se = sqrt((double)nbatch / (double)(nbatch - 1) * ss) / (double)n;
}

static int same_tokens(const pe_loss_seq *a, const pe_loss_seq *b)
{
    return a->T == b->T && memcmp(a->pos, b->pos, a->T * sizeof *a->pos) == 0 &&
           (!a->ids || !b->ids || memcmp(a->ids, b->ids, a->T * sizeof *a->ids) == 0);
}

int pe_loss_compare(const pe_loss_seq *a, const pe_loss_seq *b, size_t n, long L, pe_loss_cmp *out, pe_err *e)
{
    size_t total = 0;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (!same_tokens(&a[i], &b[i])) { /* not the same tokens: nothing to compare */
            n = total = 0;
            break;
        }
        total += a[i].T;
    }
    double *d[2] = {pe_alloc(total + 1, sizeof(double), 0, e), pe_alloc(total + 1, sizeof(double), 0, e)};
    int rc = -1;
    if (!d[0] || !d[1]) goto done;
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < a[i].T; m++) {
            double x = b[i].nll[m] - a[i].nll[m];
            int beyond = a[i].pos[m] >= L;
            if (!isnan(x)) d[beyond][out->n[beyond]++] = x;
        }
    for (int k = 0; k < 2; k++) pe_batch_mean(d[k], out->n[k], &out->diff[k], &out->se[k]);
    rc = 0;
done:
    free(d[0]);
    free(d[1]);
    return rc;
}

/* ---- calibration ---- */

typedef struct ranked {
    double v;
    size_t i;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    double x = ((const ranked *)a)->v, y = ((const ranked *)b)->v;
    if (x < y) return -1;
    if (x > y) return 1;
    size_t i = ((const ranked *)a)->i, j = ((const ranked *)b)->i;
    return (i > j) - (i < j);
}

/* Ranks 1..n of v into r, ties sharing their average rank. */
static void ranks(const double *v, size_t n, ranked *tmp, double *r)
{
    for (size_t i = 0; i < n; i++) tmp[i] = (ranked){v[i], i};
    qsort(tmp, n, sizeof *tmp, cmp_ranked);
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && tmp[b].v == tmp[a].v) b++;
        double avg = 0.5 * (double)(a + 1 + b); /* ranks a+1 .. b */
        for (size_t k = a; k < b; k++) r[tmp[k].i] = avg;
        a = b;
    }
}

double pe_spearman(const double *x, const double *y, size_t n, int *ok)
{
    if (ok) *ok = 1;
    if (n < 3) return NAN;
    ranked *tmp = malloc(n * sizeof *tmp);
    double *rx = malloc(n * sizeof *rx), *ry = malloc(n * sizeof *ry), rho = NAN;
    if (!tmp || !rx || !ry) {
        if (ok) *ok = -1;
    } else {
        ranks(x, n, tmp, rx);
        ranks(y, n, tmp, ry);
        double mean = 0.5 * (double)(n + 1), sxy = 0, sxx = 0, syy = 0;
        for (size_t i = 0; i < n; i++) {
            double a = rx[i] - mean, b = ry[i] - mean;
            sxy += a * b;
            sxx += a * a;
            syy += b * b;
        }
        if (sxx > 0 && syy > 0) rho = sxy / sqrt(sxx * syy);
    }
    free(tmp);
    free(rx);
    free(ry);
    return rho;
}

/* The bin of position p (the rule of pe_bin_range): the largest b with
 * floor(b n / nb) <= p. */
static size_t bin_of(size_t p, size_t n, size_t nb)
{
    size_t b = (size_t)((long double)p * (long double)nb / (long double)n);
    if (b >= nb) b = nb - 1;
    while (b > 0) {
        size_t lo, hi;
        pe_bin_range(n, nb, b, &lo, &hi);
        if (lo <= p) break;
        b--;
    }
    while (b + 1 < nb) {
        size_t lo, hi;
        pe_bin_range(n, nb, b + 1, &lo, &hi);
        if (lo > p) break;
        b++;
    }
    return b;
}

int pe_calibrate(const pe_calib_seq *seqs, size_t n_seqs, size_t n_pos, size_t nb, long L, pe_calib *out, pe_err *e)
{
    size_t total = 0;
    int rc = -1, ok = 1;
    out->across = out->within = NAN;
    out->n_bins = out->n_tokens = 0;
    for (size_t f = 0; f < n_seqs; f++) total += seqs[f].T;
    /* The tokens that count, bin by bin (counting sort by bin). */
    size_t *count = pe_alloc(nb + 1, sizeof *count, 1, e), *at = pe_alloc(nb + 1, sizeof *at, 1, e);
    double *xs = pe_alloc(total ? total : 1, sizeof *xs, 0, e), *ys = pe_alloc(total ? total : 1, sizeof *ys, 0, e);
    double *bx = pe_alloc(nb ? nb : 1, sizeof *bx, 0, e), *by = pe_alloc(nb ? nb : 1, sizeof *by, 0, e);
    if (!count || !at || !xs || !ys || !bx || !by) goto done;
#define USABLE(s, m) ((s)->pos[m] >= (int64_t)L && !isnan((s)->excess[m]) && !isnan((s)->diag[m]))
    for (size_t f = 0; f < n_seqs; f++)
        for (size_t m = 0; m < seqs[f].T; m++)
            if (USABLE(&seqs[f], m)) count[bin_of((size_t)seqs[f].pos[m], n_pos, nb) + 1]++;
    for (size_t b = 0; b < nb; b++) at[b + 1] = at[b] + count[b + 1];
    size_t *fill = count; /* reused: the next free slot of each bin */
    for (size_t b = 0; b < nb; b++) fill[b] = at[b];
    for (size_t f = 0; f < n_seqs; f++)
        for (size_t m = 0; m < seqs[f].T; m++)
            if (USABLE(&seqs[f], m)) {
                size_t b = bin_of((size_t)seqs[f].pos[m], n_pos, nb), k = fill[b]++;
                xs[k] = seqs[f].diag[m];
                ys[k] = seqs[f].excess[m];
            }
#undef USABLE
    double wsum = 0, wrho = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t n = at[b + 1] - at[b];
        if (n == 0) continue;
        double sx = 0, sy = 0;
        for (size_t k = at[b]; k < at[b + 1]; k++) {
            sx += xs[k];
            sy += ys[k];
        }
        bx[out->n_bins] = sx / (double)n;
        by[out->n_bins] = sy / (double)n;
        out->n_bins++;
        out->n_tokens += n;
        double rho = pe_spearman(xs + at[b], ys + at[b], n, &ok);
        if (ok < 0) break;
        if (!isnan(rho)) {
            wrho += (double)n * rho;
            wsum += (double)n;
        }
    }
    if (ok < 0) {
        pe_fail(e, "out of memory (the calibration's ranks)");
        goto done;
    }
    out->within = wsum > 0 ? wrho / wsum : NAN;
    out->across = pe_spearman(bx, by, out->n_bins, &ok);
    if (ok < 0) {
        pe_fail(e, "out of memory (the calibration's ranks)");
        goto done;
    }
    rc = 0;
done:
    free(count);
    free(at);
    free(xs);
    free(ys);
    free(bx);
    free(by);
    return rc;
}
