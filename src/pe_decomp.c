/* pe_decomp.c: the per-component decomposition of the attention logit and its
 * per-pair summary (analyses.md sections 2 and 3).
 *
 * For every component (a RoPE pair, or the pass-through dims) the head's sums
 * over causal pairs at each distance are Re(r(delta) exp(j delta theta)), with
 * r(delta) = sum_m zq_m conj(zk_{m-delta}) the cross-correlation of the
 * unrotated complex sequences: the rotation only depends on the distance, so
 * it can be applied after summing.  The pass dims are pseudo-pairs with
 * theta 0, so one mechanism serves both.
 */
#include "pe_decomp.h"

#include <fftw3.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pe_curve.h"
#include "pe_fft.h"

static const double PE_TWO_PI = 6.283185307179586476925286766559;

/* ---- profile ---- */

int pe_profile_init(pe_profile *p, int n_pairs, size_t n_dist, pe_err *e)
{
    size_t rows;
    memset(p, 0, sizeof *p);
    if (n_pairs < 0) return pe_fail(e, "profile: negative number of pairs (%d)", n_pairs);
    if (n_dist == 0) return pe_fail(e, "profile: no distances (n_dist is 0)");
    if (pe_mul_size((size_t)n_pairs + 2, n_dist, &rows) != 0)
        return pe_fail(e, "out of memory: %d pairs x %zu distances overflows", n_pairs, n_dist);
    p->sum = pe_alloc(rows, sizeof *p->sum, 1, e);
    p->count = p->sum ? pe_alloc(n_dist, sizeof *p->count, 1, e) : NULL;
    p->mag = p->count ? pe_alloc((size_t)n_pairs, sizeof *p->mag, 1, e) : NULL;
    if (!p->mag) {
        pe_profile_free(p);
        return -1;
    }
    p->n_pairs = n_pairs;
    p->n_dist = n_dist;
    return 0;
}

/* ---- scratch kept between calls ----
 * A head's working buffers are large (T doubles per column, 2T-point FFTs);
 * fresh ones every call would cost a page fault per 4 KiB touched, which is
 * most of the run on a virtual machine and serialises threads in the kernel.
 * A profile therefore keeps them for its next call. */

enum { SC_COL, SC_MAG, SC_FFT_A, SC_FFT_B, SC_FFT_S, SC_TOT, SC_DIRECT, SC_OFF, SC_DBUF, SC_SLOTS };

typedef struct pe_scratch {
    void *p[SC_SLOTS];
    size_t bytes[SC_SLOTS];
} pe_scratch;

static int is_fftw_slot(int slot)
{
    return slot == SC_FFT_A || slot == SC_FFT_B || slot == SC_FFT_S;
}

/* A buffer of at least n * size bytes in the profile's slot, zeroed when
 * asked; NULL with e filled when memory runs out. */
static void *scratch(pe_profile *p, int slot, size_t n, size_t size, int zero, pe_err *e)
{
    size_t bytes;
    char buf[32];
    if (pe_mul_size(n ? n : 1, size, &bytes) != 0) {
        pe_fail(e, "out of memory: %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    if (!p->scratch && !(p->scratch = pe_alloc(1, sizeof(pe_scratch), 1, e))) return NULL;
    pe_scratch *s = p->scratch;
    if (s->bytes[slot] < bytes) {
        if (is_fftw_slot(slot))
            fftw_free(s->p[slot]);
        else
            free(s->p[slot]);
        s->p[slot] = is_fftw_slot(slot) ? fftw_malloc(bytes) : malloc(bytes);
        s->bytes[slot] = s->p[slot] ? bytes : 0;
        if (!s->p[slot]) {
            pe_fail(e, "out of memory (needs %s)", pe_format_bytes((double)bytes, buf, sizeof buf));
            return NULL;
        }
    }
    if (zero) memset(s->p[slot], 0, bytes);
    return s->p[slot];
}

void pe_profile_free(pe_profile *p)
{
    if (!p) return;
    free(p->sum);
    free(p->count);
    free(p->mag);
    pe_scratch *s = p->scratch;
    for (int i = 0; s && i < SC_SLOTS; i++) {
        if (is_fftw_slot(i))
            fftw_free(s->p[i]);
        else
            free(s->p[i]);
    }
    free(s);
    memset(p, 0, sizeof *p);
}

void pe_profile_clear(pe_profile *p)
{
    size_t rows = ((size_t)p->n_pairs + 2) * p->n_dist;
    memset(p->sum, 0, rows * sizeof *p->sum);
    memset(p->count, 0, p->n_dist * sizeof *p->count);
    memset(p->mag, 0, (size_t)p->n_pairs * sizeof *p->mag);
}

size_t pe_head_max_distance(size_t T, const int64_t *pos)
{
    if (T < 2 || !pos || pos[T - 1] <= pos[0]) return 0;
    /* Unsigned difference: exact even when it does not fit in int64_t. */
    return (size_t)((uint64_t)pos[T - 1] - (uint64_t)pos[0]);
}

/* ---- shared pieces ---- */

/* Components gathered per pass over the tokens.  In row-major q and k one
 * pair's values sit a whole row apart, so reading one pair per pass would
 * fetch every cache line once per pair; a block of neighbouring pairs uses
 * each line it fetches. */
#define PE_BLOCK 8

typedef struct {
    const pe_head_input *in;
    const pe_geom *g;
    size_t T;
    int D, R, P;
    int n_pseudo;  /* pass-through pseudo-pairs: ceil((D - R) / 2) */
    int nc;        /* components: P pairs, then the pseudo-pairs */
    int reverse_k; /* gather keys in reverse token order (direct method) */
    size_t ld;     /* column stride of col (>= T) */
    double *col;   /* PE_BLOCK x 4 columns of ld: re q, im q, re k, im k */
    double *mag;   /* P: the head's magnitude sums, added to p on success */
} pe_head;

/* The dims of component c: a RoPE pair (c < P) or pass pseudo-pair c - P,
 * whose imaginary dim is -1 when it is the last, lone pass dim. */
static void pe_component_dims(const pe_head *h, int c, int *a, int *b)
{
    if (c < h->P) {
        pe_rope_pair_dims(h->g->pairing, h->R, c, a, b);
    } else {
        *a = h->R + 2 * (c - h->P);
        *b = *a + 1 < h->D ? *a + 1 : -1;
    }
}

static inline double *pe_col(const pe_head *h, int g, int j)
{
    return h->col + ((size_t)g * 4 + (size_t)j) * h->ld;
}

/* Neumaier's compensated sum: the magnitude sums add T^2/2 positive products
 * and should not drift with T. */
static inline void pe_kahan_add(double *s, double *c, double x)
{
    double t = *s + x;
    *c += fabs(*s) >= fabs(x) ? (*s - t) + x : (x - t) + *s;
    *s = t;
}

/* Gathers components c0 .. c0+nb-1 into h->col in one pass over the tokens,
 * and takes the pairs' magnitude sums on the way: sum over n <= m of
 * |zq_m| |zk_n| = sum_m |zq_m| * (prefix sum of |zk| up to m), O(T) and
 * independent of the positions (causality is by token index). */
static void pe_gather(pe_head *h, int c0, int nb)
{
    const size_t T = h->T, D = (size_t)h->D;
    const double *q = h->in->q, *k = h->in->k;
    int da[PE_BLOCK], db[PE_BLOCK];
    double ks[PE_BLOCK] = {0}, kc[PE_BLOCK] = {0}, ms[PE_BLOCK] = {0}, mc[PE_BLOCK] = {0};
    double *col[PE_BLOCK][4];
    for (int g = 0; g < nb; g++) {
        pe_component_dims(h, c0 + g, &da[g], &db[g]);
        for (int j = 0; j < 4; j++) col[g][j] = pe_col(h, g, j);
    }
    for (size_t m = 0; m < T; m++) {
        const double *qm = q + m * D, *km = k + m * D;
        const size_t mk = h->reverse_k ? T - 1 - m : m;
        for (int g = 0; g < nb; g++) {
            double qx = qm[da[g]], kx = km[da[g]];
            double qy = db[g] < 0 ? 0.0 : qm[db[g]], ky = db[g] < 0 ? 0.0 : km[db[g]];
            col[g][0][m] = qx;
            col[g][1][m] = qy;
            col[g][2][mk] = kx;
            col[g][3][mk] = ky;
            if (c0 + g < h->P) {
                /* sqrt(x^2 + y^2) rather than hypot: activations are far
                 * from the overflow range, and it is several times faster. */
                pe_kahan_add(&ks[g], &kc[g], sqrt(kx * kx + ky * ky));
                pe_kahan_add(&ms[g], &mc[g], sqrt(qx * qx + qy * qy) * (ks[g] + kc[g]));
            }
        }
    }
    for (int g = 0; g < nb && c0 + g < h->P; g++) h->mag[c0 + g] = ms[g] + mc[g];
}

/* Adds f * Re(r(d) exp(j d theta)) into row `row` of p and into the head's
 * total tot, for d < nd where cnt (when given) is non-zero.  r(d) is
 * (re[d*stride], im[d*stride]). */
static void pe_apply_phase(pe_profile *p, int row, const double *re, const double *im,
                           size_t stride, size_t nd, const double *cnt, double theta, double f,
                           double *tot)
{
    double *dst = p->sum + (size_t)row * p->n_dist;
    for (size_t d = 0; d < nd; d++) {
        if (cnt && cnt[d] == 0) continue;
        double x = re[d * stride], y = im[d * stride], v;
        if (theta == 0) {
            v = f * x;
        } else {
            /* The angle from the exact integer distance, each value on its
             * own: no recurrence whose error grows with d. */
            double a = (double)d * theta;
            v = f * (x * cos(a) - y * sin(a));
        }
        dst[d] += v;
        tot[d] += v;
    }
}

/* What every method adds once its components are done: the head's total row
 * (the sum of its component rows in component order: pairs, then pass), the
 * magnitude sums and the pair counts (cnt NULL: contiguous, T - d). */
static void pe_finish(pe_profile *p, const pe_head *h, const double *tot, size_t nd,
                      const double *cnt)
{
    double *dst = p->sum + (size_t)PE_ROW_TOTAL(p) * p->n_dist;
    for (size_t d = 0; d < nd; d++) {
        dst[d] += tot[d];
        p->count[d] += cnt ? cnt[d] : (double)(h->T - d);
    }
    for (int i = 0; i < h->P; i++) p->mag[i] += h->mag[i];
}

/* ---- FFT method (contiguous positions) ---- */

static int pe_add_fft(pe_profile *p, pe_head *h, pe_err *e)
{
    const size_t T = h->T;
    /* Zero-padding to N >= 2T-1 keeps the negative lags (down to -(T-1))
     * from wrapping onto lags 0..T-1. */
    if (T > (size_t)INT_MAX / 2 + 1) return pe_fail(e, "sequence of %zu tokens too long for the FFT", T);
    uint64_t n64 = pe_fft_size(2 * (uint64_t)T - 1);
    if (n64 > (uint64_t)INT_MAX) return pe_fail(e, "sequence of %zu tokens too long for the FFT", T);
    const size_t N = (size_t)n64;
    const double f = h->in->scale / (double)N; /* FFTW's inverse is unnormalised */

    int rc = -1, owned = 0, have_plans = 0;
    pe_fft_plans pl;
    /* Separate fftw_malloc blocks: a sub-array of one block would lose the
     * alignment the plans were made for when N is odd. */
    fftw_complex *A = scratch(p, SC_FFT_A, N, sizeof *A, 0, e);
    fftw_complex *B = A ? scratch(p, SC_FFT_B, N, sizeof *B, 0, e) : NULL;
    fftw_complex *S = B && h->n_pseudo ? scratch(p, SC_FFT_S, N, sizeof *S, 0, e) : NULL;
    double *tot = B && (S || !h->n_pseudo) ? scratch(p, SC_TOT, T, sizeof *tot, 1, e) : NULL;
    if (!tot) goto out;
    if (pe_fft_plans_get((int)N, A, &pl, &owned, e) != 0) goto out;
    have_plans = 1;
    /* Nothing below fails: p is changed only once the head is certain to be
     * added whole. */

    if (S) memset(S, 0, N * sizeof *S);
    h->reverse_k = 0;
    for (int c0 = 0; c0 < h->nc; c0 += PE_BLOCK) {
        const int nb = h->nc - c0 < PE_BLOCK ? h->nc - c0 : PE_BLOCK;
        pe_gather(h, c0, nb);
        for (int g = 0; g < nb; g++) {
            const int c = c0 + g;
            const double *qre = pe_col(h, g, 0), *qim = pe_col(h, g, 1);
            const double *kre = pe_col(h, g, 2), *kim = pe_col(h, g, 3);
            for (size_t m = 0; m < T; m++) {
                A[m][0] = qre[m];
                A[m][1] = qim[m];
                B[m][0] = kre[m];
                B[m][1] = kim[m];
            }
            memset(A + T, 0, (N - T) * sizeof *A);
            memset(B + T, 0, (N - T) * sizeof *B);
            fftw_execute_dft(pl.fwd, A, A);
            fftw_execute_dft(pl.fwd, B, B);
            /* X conj(Y): the spectrum of the cross-correlation.  The pass
             * pseudo-pairs sum theirs so that one inverse transform serves
             * them all. */
            if (c < h->P) {
                for (size_t j = 0; j < N; j++) {
                    double ar = A[j][0], ai = A[j][1], br = B[j][0], bi = B[j][1];
                    A[j][0] = ar * br + ai * bi;
                    A[j][1] = ai * br - ar * bi;
                }
                fftw_execute_dft(pl.bwd, A, A);
                pe_apply_phase(p, c, &A[0][0], &A[0][1], 2, T, NULL, h->g->theta[c], f, tot);
            } else {
                for (size_t j = 0; j < N; j++) {
                    double ar = A[j][0], ai = A[j][1], br = B[j][0], bi = B[j][1];
                    S[j][0] += ar * br + ai * bi;
                    S[j][1] += ai * br - ar * bi;
                }
            }
        }
    }
    if (S) {
        fftw_execute_dft(pl.bwd, S, S);
        pe_apply_phase(p, PE_ROW_PASS(p), &S[0][0], &S[0][1], 2, T, NULL, 0.0, f, tot);
    }
    pe_finish(p, h, tot, T, NULL);
    rc = 0;
out:
    if (have_plans) pe_fft_plans_release(&pl, owned);
    return rc;
}

/* ---- direct method ---- */

/* Contiguous positions: for each m, acc[d] += zq_m conj(zk_{m-d}) over
 * d = 0..m.  Keys are gathered reversed so that the inner loop reads memory
 * forward; it is an axpy over d with no reduction (vectorised by GCC at -O3;
 * -O2's very-cheap cost model leaves it scalar), and each acc[d] sums over m
 * in increasing order, a fixed order. */
static int pe_add_direct_contig(pe_profile *p, pe_head *h, pe_err *e)
{
    const size_t T = h->T;
    double *buf = scratch(p, SC_DIRECT, T, 3 * sizeof *buf, 0, e);
    if (!buf) return -1;
    double *acr = buf, *aci = buf + T, *tot = buf + 2 * T;
    memset(tot, 0, T * sizeof *tot);

    h->reverse_k = 1;
    for (int c0 = 0; c0 < h->nc; c0 += PE_BLOCK) {
        const int nb = h->nc - c0 < PE_BLOCK ? h->nc - c0 : PE_BLOCK;
        pe_gather(h, c0, nb);
        for (int g = 0; g < nb; g++) {
            const int c = c0 + g;
            /* All pass pseudo-pairs share one accumulator (theta 0). */
            if (c <= h->P) {
                memset(acr, 0, T * sizeof *acr);
                memset(aci, 0, T * sizeof *aci);
            }
            const double *qre = pe_col(h, g, 0), *qim = pe_col(h, g, 1);
            const double *kre = pe_col(h, g, 2), *kim = pe_col(h, g, 3);
            for (size_t m = 0; m < T; m++) {
                const double qr = qre[m], qi = qim[m];
                const double *restrict kr = kre + (T - 1 - m), *restrict ki = kim + (T - 1 - m);
                double *restrict ar = acr, *restrict ai = aci;
                for (size_t d = 0; d <= m; d++) {
                    ar[d] += qr * kr[d] + qi * ki[d];
                    ai[d] += qi * kr[d] - qr * ki[d];
                }
            }
            if (c < h->P)
                pe_apply_phase(p, c, acr, aci, 1, T, NULL, h->g->theta[c], h->in->scale, tot);
            else if (c == h->nc - 1)
                pe_apply_phase(p, PE_ROW_PASS(p), acr, aci, 1, T, NULL, 0.0, h->in->scale, tot);
        }
    }
    pe_finish(p, h, tot, T, NULL);
    return 0;
}

/* Any increasing positions: the distance pos[m] - pos[n] indexes the sums;
 * the phase is applied per distance afterwards, only where pairs exist.
 * Memory O(T + nd), nd = the largest distance + 1 (checked < n_dist). */
static int pe_add_direct_scatter(pe_profile *p, pe_head *h, size_t nd, pe_err *e)
{
    const size_t T = h->T;
    const int64_t *pos = h->in->pos;
    size_t *off = scratch(p, SC_OFF, T, sizeof *off, 0, e);
    double *dbuf = off ? scratch(p, SC_DBUF, nd, 4 * sizeof *dbuf, 1, e) : NULL;
    if (!dbuf) return -1;
    double *cnt = dbuf, *acr = dbuf + nd, *aci = dbuf + 2 * nd, *tot = dbuf + 3 * nd;
    for (size_t m = 0; m < T; m++) off[m] = (size_t)((uint64_t)pos[m] - (uint64_t)pos[0]);
    for (size_t m = 0; m < T; m++)
        for (size_t n = 0; n <= m; n++) cnt[off[m] - off[n]] += 1;

    h->reverse_k = 0;
    for (int c0 = 0; c0 < h->nc; c0 += PE_BLOCK) {
        const int nb = h->nc - c0 < PE_BLOCK ? h->nc - c0 : PE_BLOCK;
        pe_gather(h, c0, nb);
        for (int g = 0; g < nb; g++) {
            const int c = c0 + g;
            if (c <= h->P) {
                memset(acr, 0, nd * sizeof *acr);
                memset(aci, 0, nd * sizeof *aci);
            }
            const double *qre = pe_col(h, g, 0), *qim = pe_col(h, g, 1);
            const double *kre = pe_col(h, g, 2), *kim = pe_col(h, g, 3);
            for (size_t m = 0; m < T; m++) {
                const double qr = qre[m], qi = qim[m];
                for (size_t n = 0; n <= m; n++) {
                    size_t d = off[m] - off[n];
                    acr[d] += qr * kre[n] + qi * kim[n];
                    aci[d] += qi * kre[n] - qr * kim[n];
                }
            }
            if (c < h->P)
                pe_apply_phase(p, c, acr, aci, 1, nd, cnt, h->g->theta[c], h->in->scale, tot);
            else if (c == h->nc - 1)
                pe_apply_phase(p, PE_ROW_PASS(p), acr, aci, 1, nd, cnt, 0.0, h->in->scale, tot);
        }
    }
    pe_finish(p, h, tot, nd, cnt);
    return 0;
}

/* ---- pe_profile_add ---- */

int pe_profile_add(pe_profile *p, const pe_head_input *in, const pe_geom *g, pe_method method,
                   pe_err *e)
{
    if (!p || !p->sum || !p->count || !p->mag) return pe_fail(e, "profile not initialised");
    if (!in || !g) return pe_fail(e, "decomposition: missing head input or geometry");
    const int D = g->head_dim, R = g->rotary_dim;
    if (D <= 0 || R < 0 || R > D || R % 2 != 0 || g->n_pairs != R / 2)
        return pe_fail(e, "decomposition: bad rotary layout (head_dim %d, rotary_dim %d, %d pairs)",
                       D, R, g->n_pairs);
    if (g->n_pairs != p->n_pairs)
        return pe_fail(e, "decomposition: head has %d pairs, profile %d", g->n_pairs, p->n_pairs);
    if (method != PE_METHOD_FFT && method != PE_METHOD_DIRECT)
        return pe_fail(e, "decomposition: unknown method %d", (int)method);
    const size_t T = in->T;
    if (T == 0) return 0;
    if (!in->q || !in->k || !in->pos || (g->n_pairs > 0 && !g->theta))
        return pe_fail(e, "decomposition: missing query, key, position or frequency array");
    if (!isfinite(in->scale)) return pe_fail(e, "decomposition: scale %g is not finite", in->scale);
    for (int i = 0; i < g->n_pairs; i++)
        if (!isfinite(g->theta[i]))
            return pe_fail(e, "decomposition: theta of pair %d is not finite", i);

    /* Positions: strictly increasing (so the distance of a causal pair is
     * never negative) and every distance inside the profile, checked before
     * anything is written so that a failed call leaves p as it was. */
    int contiguous = 1;
    for (size_t m = 1; m < T; m++) {
        if (in->pos[m] <= in->pos[m - 1])
            return pe_fail(e, "positions not strictly increasing at token %zu (%lld after %lld)", m,
                           (long long)in->pos[m], (long long)in->pos[m - 1]);
        if (in->pos[m] != in->pos[m - 1] + 1) contiguous = 0;
    }
    if (in->contiguous && !contiguous)
        return pe_fail(e, "positions are flagged contiguous but are not (%lld .. %lld for %zu tokens)",
                       (long long)in->pos[0], (long long)in->pos[T - 1], T);
    size_t maxd = pe_head_max_distance(T, in->pos);
    if (maxd >= p->n_dist)
        return pe_fail(e, "distance %zu at or beyond the profile's %zu distances", maxd, p->n_dist);

    /* A non-finite value would spread through a whole FFT row; name it. */
    size_t nval;
    if (pe_mul_size(T, (size_t)D, &nval) != 0) return pe_fail(e, "decomposition: T x D overflows");
    for (size_t j = 0; j < nval; j++) {
        if (!isfinite(in->q[j]))
            return pe_fail(e, "query of token %zu, dim %zu is not finite", j / (size_t)D, j % (size_t)D);
        if (!isfinite(in->k[j]))
            return pe_fail(e, "key of token %zu, dim %zu is not finite", j / (size_t)D, j % (size_t)D);
    }

    pe_head h = {in, g, T, D, R, g->n_pairs, (D - R + 1) / 2, 0, 0, 0, NULL, NULL};
    h.nc = h.P + h.n_pseudo;
    /* Columns a power-of-two apart would all map to the same cache sets and
     * evict each other while pe_gather writes them side by side; a stride
     * of a whole number of cache lines plus one line spreads them. */
    if (T > SIZE_MAX / 2) return pe_fail(e, "decomposition: %zu tokens overflow", T);
    h.ld = (T + 7) / 8 * 8 + 8;
    h.col = scratch(p, SC_COL, h.ld, 4 * PE_BLOCK * sizeof *h.col, 0, e);
    h.mag = h.col ? scratch(p, SC_MAG, (size_t)h.P, sizeof *h.mag, 1, e) : NULL;
    int rc = -1;
    if (h.mag) {
        if (!contiguous)
            rc = pe_add_direct_scatter(p, &h, maxd + 1, e);
        else if (method == PE_METHOD_FFT)
            rc = pe_add_fft(p, &h, e);
        else
            rc = pe_add_direct_contig(p, &h, e);
    }
    return rc;
}

/* ---- section 3 summary ---- */

double pe_angle_ood(double theta, long train_len, size_t dmax)
{
    if (train_len <= 0 || !isfinite(theta) || theta < 0) return NAN;
    const size_t L = (size_t)train_len;
    if (dmax < L || theta == 0) return 0; /* theta 0: every angle is 0, on the arc */
    const double arc = (double)(train_len - 1) * theta;
    /* The arc is closed.  delta*theta and the arc are rounded products and
     * fmod works with the rounded 2*pi, so an angle within a few ulps of an
     * end counts as on it: exact multiples (theta = pi/4) then give the
     * textbook answer instead of a coin toss. */
    if (arc * (1 + 4 * DBL_EPSILON) >= PE_TWO_PI) return 0;
    size_t outside = 0, n = dmax - L + 1;
    for (size_t i = 0; i < n; i++) {
        double x = (double)(L + i) * theta;
        double tol = 4 * DBL_EPSILON * x;
        double r = fmod(x, PE_TWO_PI);
        if (r > arc + tol && r < PE_TWO_PI - tol) outside++;
    }
    return (double)outside / (double)n;
}

double pe_value_ood(const double *sum, const double *count, size_t n_dist, long train_len,
                    double *lo, double *hi)
{
    const size_t L = train_len > 0 ? (size_t)train_len : 0;
    const size_t nin = L < n_dist ? L : n_dist;
    double mn = NAN, mx = NAN;
    int have_in = 0, have_beyond = 0;
    for (size_t d = 0; d < nin; d++) {
        if (!(count[d] > 0)) continue;
        double c = sum[d] / count[d];
        if (!have_in || c < mn) mn = c;
        if (!have_in || c > mx) mx = c;
        have_in = 1;
    }
    if (lo) *lo = mn;
    if (hi) *hi = mx;
    double worst = 0;
    for (size_t d = nin; d < n_dist; d++) {
        if (!(count[d] > 0)) continue;
        double c = sum[d] / count[d];
        if (isnan(c)) return NAN;
        double x = c < mn ? mn - c : c > mx ? c - mx : 0;
        if (x > worst) worst = x;
        have_beyond = 1;
    }
    if (!have_beyond) return 0;
    if (!have_in) return NAN; /* nothing seen in training to compare with */
    /* The floor keeps a flat in-train curve (W = 0) from dividing by 0. */
    double w = fmax(mx - mn, 1e-12 * fmax(1.0, fabs(mx)));
    return worst / w;
}

int pe_profile_summary(const pe_profile *p, const double *theta, long train_len,
                       pe_pair_summary *out, pe_err *e)
{
    if (!p || !p->sum || !p->count || !p->mag) return pe_fail(e, "profile not initialised");
    if (train_len <= 0) return pe_fail(e, "summary: training length %ld must be > 0", train_len);
    const int P = p->n_pairs;
    if (P > 0 && (!theta || !out)) return pe_fail(e, "summary: missing frequencies or output");
    const size_t nd = p->n_dist;
    const size_t nin = (size_t)train_len < nd ? (size_t)train_len : nd;
    const double *F = p->sum + (size_t)PE_ROW_TOTAL(p) * nd;
    double *diff = pe_alloc(nin, sizeof *diff, 0, e);
    if (!diff) return -1;

    double ms = 0, mc = 0;
    for (int i = 0; i < P; i++) pe_kahan_add(&ms, &mc, p->mag[i]);
    const double magtot = ms + mc;
    const double uF = pe_u_score(F, p->count, nin, NULL);
    for (int i = 0; i < P; i++) {
        const double *C = p->sum + (size_t)i * nd;
        pe_pair_summary *o = &out[i];
        o->magnitude_share = magtot > 0 ? p->mag[i] / magtot : NAN;
        o->value_ood = pe_value_ood(C, p->count, nd, train_len, &o->lo_in, &o->hi_in);
        o->angle_ood = pe_angle_ood(theta[i], train_len, nd - 1);
        for (size_t d = 0; d < nin; d++) diff[d] = F[d] - C[d];
        o->du = uF - pe_u_score(diff, p->count, nin, NULL);
    }
    free(diff);
    return 0;
}
