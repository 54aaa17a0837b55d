/* pe_lab.h: the what-if lab of peanalyze -t whatif (man peanalyze(1),
 * TABLES, whatif; the specs: man petools-whatif(7)): one query head under
 * the model's own rotation and under every --pe spec of the run, compared,
 * and the per-layer and whole-model summaries with each spec's rank.
 *
 * The numbers are layer-local estimates: the dumped q and k of a layer came
 * from a model whose earlier layers ran with its own rotation.
 *
 * Everything is borrowed; the caller owns the rows and the sums.
 */
#ifndef PE_LAB_H
#define PE_LAB_H

#include "pe_attn.h"
#include "pe_run.h"

/* One (head, spec). */
typedef struct pe_lab_row {
    double kl_in;  /* mean over in-train rows of KL(p_rope || p_spec), nats */
    double unseen; /* mean unseen-distance mass of the beyond rows */
    double shift;  /* mean entropy (nats) of the beyond rows minus rope's in-train one */
    double exceed; /* share of the beyond rows' logits outside rope's in-train band */
    int ood;       /* the verdict of -t heads on these numbers */
} pe_lab_row;

/* Task t under every spec of the run (r->specs[0] is rope): out holds
 * r->n_specs rows.  p: the attention parameters but for the scale and the
 * softcap, which come from each file.  rows: --rows (0 = all).  wa and wb
 * are this thread's two works.  Returns 0 or -1. */
int pe_lab_head(pe_run *r, const pe_task *t, const pe_attn_params *p, long rows, const pe_attn_thresholds *thr,
                pe_attn_work *wa, pe_attn_work *wb, pe_lab_row *out, pe_err *e);

/* Per layer and spec: heads, ood heads, then the sum and count of each of
 * the four means. */
#define PE_LAB_SUMS 10

/* Adds a head's row to its (layer, spec) sums. */
void pe_lab_add(double *sum, const pe_lab_row *row);

/* The sections "layers" (per layer and spec, from sums: n_layers x n_specs
 * x PE_LAB_SUMS) and "model" (every head, each spec ranked by kl_in and by
 * unseen mass, 1 = lowest).  Returns 0 or -1. */
int pe_lab_summary(const pe_run *r, pe_table *tb, const double *sums, pe_err *e);

#endif
