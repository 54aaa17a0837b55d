/* pe_usage.h: how much each frequency pair is used (man pedecomp(1), usage,
 * Barbero et al. "Round and Round We Go", Figures 3-4; FoPE Figure 7).
 *
 * Per head and tensor: the mean norm of each pair over tokens (the rotation
 * does not change it, so unrotated vectors serve), and the mean of each
 * dimension, signed and absolute.  Sums and token counts, so that several
 * files pool exactly.  A pe_usage owns its arrays (pe_usage_free). */
#ifndef PE_USAGE_H
#define PE_USAGE_H

#include <stddef.h>

#include "pe_common.h"
#include "pe_rope.h"

typedef struct pe_usage {
    int n_pairs, head_dim;
    double tokens;    /* tokens added so far */
    double *norm_sum; /* n_pairs: sum over tokens of |z_m,i| */
    double *dim_sum;  /* head_dim: sum of x_m[d] */
    double *dim_abs;  /* head_dim: sum of |x_m[d]| */
} pe_usage;

int pe_usage_init(pe_usage *u, int n_pairs, int head_dim, pe_err *e);
void pe_usage_free(pe_usage *u);

/* Adds T token vectors (row-major T x D) laid out as g says. */
void pe_usage_add(pe_usage *u, const double *x, size_t T, const pe_geom *g);

/* The pair that dim d belongs to, or -1 for a pass-through dim. */
int pe_usage_pair_of(const pe_geom *g, int d);

#endif
