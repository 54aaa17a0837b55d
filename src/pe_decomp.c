/* pe_decomp.c: the per-component decomposition of the attention logit and its
 * per-pair summary (man pedecomp(1), The decomposition; TABLES, summary).
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
#include "pe_pool.h"

static const double PE_TWO_PI = 6.283185307179586476925286766559;

/* ---- profile ---- */

/* The arrays, sum not zeroed yet (pe_profile_clear does it). */
static int profile_alloc(pe_profile *p, int n_pairs, size_t n_dist, pe_err *e)
{
    size_t rows;
    memset(p, 0, sizeof *p);
    if (n_pairs < 0) return pe_fail(e, "profile: negative number of pairs (%d)", n_pairs);
    if (n_dist == 0) return pe_fail(e, "profile: no distances (n_dist is 0)");
    if (pe_mul_size((size_t)n_pairs + 2, n_dist, &rows) != 0)
        return pe_fail(e, "out of memory: %d pairs x %zu distances overflows", n_pairs, n_dist);
    /* Huge pages, zeroed by writing: calloc'd pages would first be read by
     * the sums (mapping the shared zero page), and every first write would
     * then fault again and flush the other threads' TLBs. */
    p->sum = pe_alloc_big(rows, sizeof *p->sum, e);
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

int pe_profile_init(pe_profile *p, int n_pairs, size_t n_dist, pe_err *e)
{
    if (profile_alloc(p, n_pairs, n_dist, e) < 0) return -1;
    pe_profile_clear(p);
    return 0;
}

/* ---- scratch kept between calls ----
 * A head's working buffers are large (T doubles per column, 2T-point FFTs);
 * fresh ones every call would cost a page fault per 4 KiB touched, which is
 * most of the run on a virtual machine and serialises threads in the kernel.
 * A profile therefore keeps them, one set per thread, for its next call. */

enum { SC_COL, SC_FFT_A, SC_FFT_B, SC_FFT_S, SC_ACC, SC_SLOTS }; /* per thread */
enum { SH_MAG, SH_UNIT, SH_OFF, SH_CNT, SH_SLOTS };               /* shared */

#define PE_MAX_SLOTS 5 /* >= SC_SLOTS and SH_SLOTS */

typedef struct pe_slots {
    void *p[PE_MAX_SLOTS];
    size_t bytes[PE_MAX_SLOTS];
} pe_slots;

typedef struct pe_scratch {
    pe_slots shared;
    pe_slots *thread; /* n_thread sets */
    int n_thread;
} pe_scratch;

static int is_fftw_slot(int shared, int slot)
{
    return !shared && (slot == SC_FFT_A || slot == SC_FFT_B || slot == SC_FFT_S);
}

static void slots_free(pe_slots *s, int shared)
{
    for (int i = 0; i < (shared ? SH_SLOTS : SC_SLOTS); i++) {
        if (is_fftw_slot(shared, i))
            fftw_free(s->p[i]);
        else
            free(s->p[i]);
    }
}

/* A buffer of at least n * size bytes in a slot: of thread `t`'s set, or the
 * shared set when t < 0; zeroed when asked.  NULL with e filled when memory
 * runs out. */
static void *scratch(pe_profile *p, int t, int slot, size_t n, size_t size, int zero, pe_err *e)
{
    size_t bytes;
    char buf[32];
    if (pe_mul_size(n ? n : 1, size, &bytes) != 0) {
        pe_fail(e, "out of memory: %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    if (!p->scratch && !(p->scratch = pe_alloc(1, sizeof(pe_scratch), 1, e))) return NULL;
    pe_scratch *sc = p->scratch;
    if (t >= sc->n_thread) {
        pe_slots *nt = realloc(sc->thread, (size_t)(t + 1) * sizeof *nt);
        if (!nt) {
            pe_fail(e, "out of memory (thread buffers)");
            return NULL;
        }
        memset(nt + sc->n_thread, 0, (size_t)(t + 1 - sc->n_thread) * sizeof *nt);
        sc->thread = nt;
        sc->n_thread = t + 1;
    }
    pe_slots *s = t < 0 ? &sc->shared : &sc->thread[t];
    int fftw = is_fftw_slot(t < 0, slot);
    if (s->bytes[slot] < bytes) {
        if (fftw)
            fftw_free(s->p[slot]);
        else
            free(s->p[slot]);
        s->p[slot] = fftw ? fftw_malloc(bytes) : malloc(bytes);
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
    pe_scratch *sc = p->scratch;
    if (sc) {
        slots_free(&sc->shared, 1);
        for (int t = 0; t < sc->n_thread; t++) slots_free(&sc->thread[t], 0);
        free(sc->thread);
        free(sc);
    }
    memset(p, 0, sizeof *p);
}

/* Zeroing runs over the pool in pieces of this many doubles: the first
 * head's 17 MB (T 32768) are new pages, slow to fault in on one thread. */
#define PE_CLEAR_PIECE ((size_t)1 << 17)

static int clear_piece(size_t i, void *ctx, pe_err *e)
{
    (void)e;
    pe_profile *p = ctx;
    size_t rows = ((size_t)p->n_pairs + 2) * p->n_dist, a = i * PE_CLEAR_PIECE;
    size_t n = rows - a < PE_CLEAR_PIECE ? rows - a : PE_CLEAR_PIECE;
    memset(p->sum + a, 0, n * sizeof *p->sum);
    return 0;
}

void pe_profile_clear(pe_profile *p)
{
    size_t rows = ((size_t)p->n_pairs + 2) * p->n_dist;
    pe_err ignored;
    if (!p->pool || pe_pool_for(p->pool, (rows + PE_CLEAR_PIECE - 1) / PE_CLEAR_PIECE, clear_piece, p, &ignored) < 0)
        memset(p->sum, 0, rows * sizeof *p->sum); /* the pieces cannot fail: cheap to be sure */
    memset(p->count, 0, p->n_dist * sizeof *p->count);
    memset(p->mag, 0, (size_t)p->n_pairs * sizeof *p->mag);
}

int pe_profile_reuse(pe_profile *p, int n_pairs, size_t n_dist, pe_err *e)
{
    pe_pool *pool = p->pool;
    if (p->sum && (p->n_pairs != n_pairs || p->n_dist != n_dist)) pe_profile_free(p);
    if (!p->sum && profile_alloc(p, n_pairs, n_dist, e) < 0) return -1;
    p->pool = pool;
    pe_profile_clear(p);
    return 0;
}

double pe_profile_bytes(int n_pairs, int pass, size_t n_dist, size_t T, int threads)
{
    double P = n_pairs, nd = (double)n_dist, Td = (double)T;
    double units = ceil(P / 8) + (pass != 0);
    double N = 2 * Td * 1.25; /* the FFT size, at most 2^a 3^b 5^c above 2T */
    double need = (P + 3) * nd * 8;                            /* profile sums, counts */
    need += units * nd * 8;                                    /* units' totals */
    need += threads * ((Td + 16) * 4 * 8 * 8 + 3 * N * 16);    /* gather, FFT */
    return need;
}

size_t pe_head_max_distance(size_t T, const int64_t *pos)
{
    if (T < 2 || !pos || pos[T - 1] <= pos[0]) return 0;
    /* Unsigned difference: exact even when it does not fit in int64_t. */
    return (size_t)((uint64_t)pos[T - 1] - (uint64_t)pos[0]);
}

/* ---- units of work ----
 * A head's components are cut into units that one thread computes whole:
 * up to PE_BLOCK consecutive pairs each, and one last unit with every pass
 * pseudo-pair (their correlations add up before a single transform).  The
 * units do not depend on the number of threads, and each unit keeps its share
 * of the head's total logit in a row of its own, added in unit order at the
 * end: the sums are the same bits for any number of threads. */

/* Components gathered per pass over the tokens.  In row-major q and k one
 * pair's values sit a whole row apart, so reading one pair per pass would
 * fetch every cache line once per pair; a block of neighbouring pairs uses
 * each line it fetches. */
#define PE_BLOCK 8

typedef enum { PE_RUN_FFT, PE_RUN_CONTIG, PE_RUN_SCATTER } pe_run;

typedef struct {
    pe_profile *p;
    const pe_head_input *in;
    const pe_geom *g;
    pe_run run;
    size_t T;
    int D, R, P;
    int n_pseudo;        /* pass-through pseudo-pairs: ceil((D - R) / 2) */
    int nc;              /* components: P pairs, then the pseudo-pairs */
    int n_pair_units;    /* ceil(P / PE_BLOCK) */
    int n_units;         /* plus one when there are pass dims */
    size_t nd;           /* distances this head spans */
    size_t ld;           /* column stride of a thread's col (>= T) */
    double *mag;         /* P: the head's magnitude sums */
    double *unit_tot;    /* n_units x nd: each unit's share of the total */
    const size_t *off;   /* scatter: pos[m] - pos[0] */
    const double *cnt;   /* scatter: pairs at each distance */
    size_t N;            /* FFT: transform size */
    pe_fft_plans pl;
    double f;            /* the factor on every correlation */
} pe_head;

/* What one thread works in. */
typedef struct {
    double *col;           /* PE_BLOCK x 4 columns of ld: re q, im q, re k, im k */
    fftw_complex *A, *B, *S;
    double *acr, *aci;     /* direct: the correlation at each distance */
} pe_wbuf;

/* The components of unit u: [*c0, *c1). */
static void unit_range(const pe_head *h, int u, int *c0, int *c1)
{
    if (u < h->n_pair_units) {
        *c0 = u * PE_BLOCK;
        *c1 = *c0 + PE_BLOCK < h->P ? *c0 + PE_BLOCK : h->P;
    } else {
        *c0 = h->P;
        *c1 = h->nc;
    }
}

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

/* The direct loop's group size (doubles); columns carry this many zeros
 * past T (ld >= T + 8). */
#define PE_DIRECT_GROUP 4

static inline double *pe_col(const pe_head *h, double *col, int g, int j)
{
    return col + ((size_t)g * 4 + (size_t)j) * h->ld;
}

/* Neumaier's compensated sum: the magnitude sums add T^2/2 positive products
 * and should not drift with T. */
static inline void pe_kahan_add(double *s, double *c, double x)
{
    double t = *s + x;
    *c += fabs(*s) >= fabs(x) ? (*s - t) + x : (x - t) + *s;
    *s = t;
}

#define PE_PREFETCH 8

/* Gathers components c0 .. c0+nb-1 into col in one pass over the tokens
 * (keys in reverse token order when reverse_k), and takes the pairs'
 * magnitude sums on the way: sum over n <= m of |zq_m| |zk_n| = sum_m
 * |zq_m| * (prefix sum of |zk| up to m), O(T) and independent of the
 * positions (causality is by token index). */
static void pe_gather(pe_head *h, double *colbuf, int c0, int nb, int reverse_k)
{
    const size_t T = h->T, D = (size_t)h->D;
    const double *q = h->in->q, *k = h->in->k;
    int da[PE_BLOCK], db[PE_BLOCK];
    double ks[PE_BLOCK] = {0}, kc[PE_BLOCK] = {0}, ms[PE_BLOCK] = {0}, mc[PE_BLOCK] = {0};
    double *col[PE_BLOCK][4];
    for (int g = 0; g < nb; g++) {
        pe_component_dims(h, c0 + g, &da[g], &db[g]);
        for (int j = 0; j < 4; j++) col[g][j] = pe_col(h, colbuf, g, j);
    }
    /* The rows are D doubles apart and only a few of each are read: no
     * hardware prefetcher follows that, so the lines of the group's first
     * and last dims are asked for PE_PREFETCH rows ahead. */
    const int dlo = da[0], dhi = db[nb - 1] >= 0 ? db[nb - 1] : da[nb - 1];
    for (size_t m = 0; m < T; m++) {
        const double *qm = q + m * D, *km = k + m * D;
        const size_t mk = reverse_k ? T - 1 - m : m;
#if defined(__GNUC__)
        if (m + PE_PREFETCH < T) {
            const double *qp = qm + PE_PREFETCH * D, *kp = km + PE_PREFETCH * D;
            __builtin_prefetch(qp + dlo);
            __builtin_prefetch(qp + dhi);
            __builtin_prefetch(kp + dlo);
            __builtin_prefetch(kp + dhi);
        }
#endif
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
    /* Zeros past the last token: the direct loop reads up to T + 2. */
    for (int g = 0; g < nb; g++)
        for (int j = 0; j < 4; j++) memset(col[g][j] + T, 0, PE_DIRECT_GROUP * sizeof(double));
}

#define PE_PHASE_STEP 64

/* Adds f * Re(r(d) exp(j d theta)) into row `row` of the profile and into
 * the unit's share of the total, for d < nd where cnt (when given) is
 * non-zero.  r(d) is (re[d*stride], im[d*stride]). */
static void pe_apply_phase(const pe_head *h, int row, const double *re, const double *im,
                           size_t stride, double theta, double *tot)
{
    double *dst = h->p->sum + (size_t)row * h->p->n_dist;
    const double *cnt = h->cnt;
    if (theta == 0) {
        for (size_t d = 0; d < h->nd; d++) {
            if (cnt && cnt[d] == 0) continue;
            double v = h->f * re[d * stride];
            dst[d] += v;
            tot[d] += v;
        }
        return;
    }
    /* exp(j d theta) for d = d0 + i, by the angle-addition formula from
     * cos/sin of d0 theta and of i theta (i < PE_PHASE_STEP), all computed
     * from exact integer multiples: every value is within a few ulp, no
     * recurrence error grows with d, and the trigonometric calls drop from
     * two per distance to two per PE_PHASE_STEP distances. */
    double ci[PE_PHASE_STEP], si[PE_PHASE_STEP];
    const size_t nstep = h->nd < PE_PHASE_STEP ? h->nd : PE_PHASE_STEP;
    for (size_t i = 0; i < nstep; i++) {
        ci[i] = cos((double)i * theta);
        si[i] = sin((double)i * theta);
    }
    for (size_t d0 = 0; d0 < h->nd; d0 += PE_PHASE_STEP) {
        const double cb = cos((double)d0 * theta), sb = sin((double)d0 * theta);
        const size_t n = h->nd - d0 < PE_PHASE_STEP ? h->nd - d0 : PE_PHASE_STEP;
        for (size_t i = 0; i < n; i++) {
            const size_t d = d0 + i;
            if (cnt && cnt[d] == 0) continue;
            const double c = cb * ci[i] - sb * si[i], sn = sb * ci[i] + cb * si[i];
            const double v = h->f * (re[d * stride] * c - im[d * stride] * sn);
            dst[d] += v;
            tot[d] += v;
        }
    }
}

/* FFT: r(d) = IFFT(FFT(zq) conj(FFT(zk)))[d] for d = 0..T-1, zero-padded to
 * N >= 2T-1 so that negative lags (down to -(T-1)) do not wrap onto them. */
static void unit_fft(pe_head *h, int u, pe_wbuf *w)
{
    const size_t T = h->T, N = h->N;
    fftw_complex *A = w->A, *B = w->B, *S = w->S;
    double *tot = h->unit_tot + (size_t)u * h->nd;
    int c_begin, c_end;
    unit_range(h, u, &c_begin, &c_end);
    const int pass = c_begin >= h->P;
    if (pass) memset(S, 0, N * sizeof *S);
    for (int c0 = c_begin; c0 < c_end; c0 += PE_BLOCK) {
        const int nb = c_end - c0 < PE_BLOCK ? c_end - c0 : PE_BLOCK;
        pe_gather(h, w->col, c0, nb, 0);
        for (int g = 0; g < nb; g++) {
            const int c = c0 + g;
            const double *qre = pe_col(h, w->col, g, 0), *qim = pe_col(h, w->col, g, 1);
            const double *kre = pe_col(h, w->col, g, 2), *kim = pe_col(h, w->col, g, 3);
            for (size_t m = 0; m < T; m++) {
                A[m][0] = qre[m];
                A[m][1] = qim[m];
                B[m][0] = kre[m];
                B[m][1] = kim[m];
            }
            memset(A + T, 0, (N - T) * sizeof *A);
            memset(B + T, 0, (N - T) * sizeof *B);
            fftw_execute_dft(h->pl.fwd, A, A);
            fftw_execute_dft(h->pl.fwd, B, B);
            /* X conj(Y): the spectrum of the cross-correlation.  The pass
             * pseudo-pairs sum theirs so that one inverse transform serves
             * them all. */
            if (!pass) {
                for (size_t j = 0; j < N; j++) {
                    double ar = A[j][0], ai = A[j][1], br = B[j][0], bi = B[j][1];
                    A[j][0] = ar * br + ai * bi;
                    A[j][1] = ai * br - ar * bi;
                }
                fftw_execute_dft(h->pl.bwd, A, A);
                pe_apply_phase(h, c, &A[0][0], &A[0][1], 2, h->g->theta[c], tot);
            } else {
                for (size_t j = 0; j < N; j++) {
                    double ar = A[j][0], ai = A[j][1], br = B[j][0], bi = B[j][1];
                    S[j][0] += ar * br + ai * bi;
                    S[j][1] += ai * br - ar * bi;
                }
            }
        }
    }
    if (pass) {
        fftw_execute_dft(h->pl.bwd, S, S);
        pe_apply_phase(h, PE_ROW_PASS(h->p), &S[0][0], &S[0][1], 2, 0.0, tot);
    }
}

/* acc[d] += zq conj(zk[d]) for d < n, n a multiple of PE_DIRECT_GROUP. */
static void pe_direct_row(double *restrict ar, double *restrict ai, const double *restrict kr,
                          const double *restrict ki, double qr, double qi, size_t n)
{
    for (size_t d = 0; d < n; d++) {
        ar[d] += qr * kr[d] + qi * ki[d];
        ai[d] += qi * kr[d] - qr * ki[d];
    }
}

/* Direct, contiguous positions: for each m, acc[d] += zq_m conj(zk_{m-d})
 * over d = 0..m.  Keys are gathered reversed so that the inner loop reads
 * memory forward; it is an axpy over d with no reduction, in groups of
 * PE_DIRECT_GROUP so that GCC vectorises it at -O2 too (whose very-cheap
 * cost model refuses loops that need a remainder), and each acc[d] sums over
 * m in increasing order, a fixed order.
 * Direct, any increasing positions: the distance pos[m] - pos[n] indexes the
 * sums; the phase is applied per distance afterwards, only where pairs are. */
static void unit_direct(pe_head *h, int u, pe_wbuf *w)
{
    const size_t T = h->T, nd = h->nd;
    const int scatter = h->run == PE_RUN_SCATTER;
    double *acr = w->acr, *aci = w->aci;
    double *tot = h->unit_tot + (size_t)u * nd;
    int c_begin, c_end;
    unit_range(h, u, &c_begin, &c_end);
    const int pass = c_begin >= h->P;
    for (int c0 = c_begin; c0 < c_end; c0 += PE_BLOCK) {
        const int nb = c_end - c0 < PE_BLOCK ? c_end - c0 : PE_BLOCK;
        pe_gather(h, w->col, c0, nb, !scatter);
        for (int g = 0; g < nb; g++) {
            const int c = c0 + g;
            /* All pass pseudo-pairs share one accumulator (theta 0). */
            if (!pass || c == h->P) {
                memset(acr, 0, (nd + PE_DIRECT_GROUP) * sizeof *acr);
                memset(aci, 0, (nd + PE_DIRECT_GROUP) * sizeof *aci);
            }
            const double *qre = pe_col(h, w->col, g, 0), *qim = pe_col(h, w->col, g, 1);
            const double *kre = pe_col(h, w->col, g, 2), *kim = pe_col(h, w->col, g, 3);
            for (size_t m = 0; m < T; m++) {
                const double qr = qre[m], qi = qim[m];
                if (scatter) {
                    for (size_t n = 0; n <= m; n++) {
                        size_t d = h->off[m] - h->off[n];
                        acr[d] += qr * kre[n] + qi * kim[n];
                        aci[d] += qi * kre[n] - qr * kim[n];
                    }
                } else {
                    /* d rounded up to whole groups: the keys past the
                     * last are zeros (pe_gather), so d > m adds only zeros;
                     * a count known to be even is what -O2 vectorises. */
                    pe_direct_row(acr, aci, kre + (T - 1 - m), kim + (T - 1 - m), qr, qi,
                                  (m + PE_DIRECT_GROUP) & ~(size_t)(PE_DIRECT_GROUP - 1));
                }
            }
            if (!pass) pe_apply_phase(h, c, acr, aci, 1, h->g->theta[c], tot);
        }
    }
    if (pass) pe_apply_phase(h, PE_ROW_PASS(h->p), acr, aci, 1, 0.0, tot);
}

static int unit_task(size_t u, void *ctx, pe_err *e)
{
    (void)e;
    pe_head *h = ctx;
    pe_scratch *sc = h->p->scratch;
    pe_slots *s = &sc->thread[pe_pool_worker()];
    pe_wbuf w = {s->p[SC_COL], s->p[SC_FFT_A], s->p[SC_FFT_B], s->p[SC_FFT_S], NULL, NULL};
    if (h->run != PE_RUN_FFT) {
        w.acr = s->p[SC_ACC];
        w.aci = w.acr + h->nd + PE_DIRECT_GROUP;
    }
    if (h->run == PE_RUN_FFT)
        unit_fft(h, (int)u, &w);
    else
        unit_direct(h, (int)u, &w);
    return 0;
}

/* Every buffer the units need, allocated before any unit runs, so that a
 * failure leaves the profile as it was. */
static int prepare(pe_head *h, int threads, pe_err *e)
{
    pe_profile *p = h->p;
    if (!(h->mag = scratch(p, -1, SH_MAG, (size_t)h->P, sizeof *h->mag, 1, e))) return -1;
    if (!(h->unit_tot = scratch(p, -1, SH_UNIT, (size_t)h->n_units, h->nd * sizeof(double), 1, e))) return -1;
    for (int t = 0; t < threads; t++) {
        if (!scratch(p, t, SC_COL, h->ld, 4 * PE_BLOCK * sizeof(double), 0, e)) return -1;
        if (h->run == PE_RUN_FFT) {
            if (!scratch(p, t, SC_FFT_A, h->N, sizeof(fftw_complex), 0, e) ||
                !scratch(p, t, SC_FFT_B, h->N, sizeof(fftw_complex), 0, e) ||
                (h->n_pseudo && !scratch(p, t, SC_FFT_S, h->N, sizeof(fftw_complex), 0, e)))
                return -1;
        } else if (!scratch(p, t, SC_ACC, h->nd + PE_DIRECT_GROUP, 2 * sizeof(double), 0, e)) {
            return -1;
        }
    }
    if (h->run == PE_RUN_SCATTER) {
        size_t *off = scratch(p, -1, SH_OFF, h->T, sizeof *off, 0, e);
        double *cnt = off ? scratch(p, -1, SH_CNT, h->nd, sizeof *cnt, 1, e) : NULL;
        if (!cnt) return -1;
        const int64_t *pos = h->in->pos;
        for (size_t m = 0; m < h->T; m++) off[m] = (size_t)((uint64_t)pos[m] - (uint64_t)pos[0]);
        for (size_t m = 0; m < h->T; m++)
            for (size_t n = 0; n <= m; n++) cnt[off[m] - off[n]] += 1;
        h->off = off;
        h->cnt = cnt;
    }
    return 0;
}

/* ---- pe_profile_add ---- */

/* Whether some value is NaN or infinite (all exponent bits set): one pass
 * without a branch per value; the caller locates it only then. */
static int any_nonfinite(const double *x, size_t n)
{
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (u & 0x7ff0000000000000u) == 0x7ff0000000000000u;
    }
    return bad != 0;
}

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
    const int nonfinite = any_nonfinite(in->q, nval) || any_nonfinite(in->k, nval);
    for (size_t j = 0; nonfinite && j < nval; j++) {
        if (!isfinite(in->q[j]))
            return pe_fail(e, "query of token %zu, dim %zu is not finite", j / (size_t)D, j % (size_t)D);
        if (!isfinite(in->k[j]))
            return pe_fail(e, "key of token %zu, dim %zu is not finite", j / (size_t)D, j % (size_t)D);
    }
    if (T > SIZE_MAX / 2) return pe_fail(e, "decomposition: %zu tokens overflow", T);

    pe_head h;
    memset(&h, 0, sizeof h);
    h.p = p;
    h.in = in;
    h.g = g;
    h.T = T;
    h.D = D;
    h.R = R;
    h.P = g->n_pairs;
    h.n_pseudo = (D - R + 1) / 2;
    h.nc = h.P + h.n_pseudo;
    h.n_pair_units = (h.P + PE_BLOCK - 1) / PE_BLOCK;
    h.n_units = h.n_pair_units + (h.n_pseudo > 0);
    h.run = !contiguous ? PE_RUN_SCATTER : method == PE_METHOD_FFT ? PE_RUN_FFT : PE_RUN_CONTIG;
    h.nd = contiguous ? T : maxd + 1;
    h.f = in->scale;
    /* Columns a power-of-two apart would all map to the same cache sets and
     * evict each other while pe_gather writes them side by side; a stride
     * of a whole number of cache lines plus one line spreads them. */
    h.ld = (T + 7) / 8 * 8 + 8;
    if (h.run == PE_RUN_FFT) {
        if (T > (size_t)INT_MAX / 2 + 1) return pe_fail(e, "sequence of %zu tokens too long for the FFT", T);
        uint64_t n64 = pe_fft_size(2 * (uint64_t)T - 1);
        if (n64 > (uint64_t)INT_MAX) return pe_fail(e, "sequence of %zu tokens too long for the FFT", T);
        h.N = (size_t)n64;
        h.f = in->scale / (double)h.N; /* FFTW's inverse is unnormalised */
    }
    /* Buffers for every thread that may take a unit: a thread keeps its
     * number for the whole run, whichever units it takes. */
    int threads = p->pool ? pe_pool_jobs(p->pool) : 1;
    if (prepare(&h, threads, e) < 0) return -1;
    int owned = 0;
    if (h.run == PE_RUN_FFT) {
        fftw_complex *buf = ((pe_scratch *)p->scratch)->thread[0].p[SC_FFT_A];
        if (pe_fft_plans_get((int)h.N, buf, &h.pl, &owned, e) != 0) return -1;
    }
    /* Nothing below fails: the profile changes only once the head is
     * certain to be added whole. */
    pe_err ignored;
    if (p->pool)
        pe_pool_for(p->pool, (size_t)h.n_units, unit_task, &h, &ignored);
    else
        for (int u = 0; u < h.n_units; u++) unit_task((size_t)u, &h, &ignored);
    if (h.run == PE_RUN_FFT) pe_fft_plans_release(&h.pl, owned);

    /* The head's total: the units' shares in unit order (pairs, then pass). */
    double *dst = p->sum + (size_t)PE_ROW_TOTAL(p) * p->n_dist;
    for (size_t d = 0; d < h.nd; d++) {
        double t = 0;
        for (int u = 0; u < h.n_units; u++) t += h.unit_tot[(size_t)u * h.nd + d];
        dst[d] += t;
        p->count[d] += h.cnt ? h.cnt[d] : (double)(T - d);
    }
    for (int i = 0; i < h.P; i++) p->mag[i] += h.mag[i];
    return 0;
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

double pe_value_ood(const double *sum, const double *count, size_t n_dist, long train_len, double min_pairs,
                    double *lo, double *hi, size_t *n_used)
{
    size_t used = 0;
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
    if (n_used) *n_used = 0;
    for (size_t d = nin; d < n_dist; d++) {
        if (!(count[d] > 0)) continue;
        have_beyond = 1;
        if (count[d] < min_pairs) continue;
        double c = sum[d] / count[d];
        if (isnan(c)) return NAN;
        double x = c < mn ? mn - c : c > mx ? c - mx : 0;
        if (x > worst) worst = x;
        used++;
    }
    if (n_used) *n_used = used;
    if (!have_beyond) return 0;
    if (!have_in || used == 0) return NAN; /* nothing to compare with, or nothing to compare */
    /* The floor keeps a flat in-train curve (W = 0) from dividing by 0. */
    double w = fmax(mx - mn, 1e-12 * fmax(1.0, fabs(mx)));
    return worst / w;
}

int pe_profile_summary(const pe_profile *p, const double *theta, long train_len, double min_pairs,
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
        o->value_ood = pe_value_ood(C, p->count, nd, train_len, min_pairs, &o->lo_in, &o->hi_in, &o->ood_distances);
        o->angle_ood = pe_angle_ood(theta[i], train_len, nd - 1);
        for (size_t d = 0; d < nin; d++) diff[d] = F[d] - C[d];
        o->du = uF - pe_u_score(diff, p->count, nin, NULL);
    }
    free(diff);
    return 0;
}

/* ---- binning and spectra of a pooled profile ---- */

/* Binning a profile's rows, BIN_ROWS rows per item, on every thread. */
#define BIN_ROWS 8
typedef struct bin_job {
    const pe_profile *prof;
    double *mean;
    size_t nb;
} bin_job;

static int bin_rows(size_t t, void *ctx, pe_err *e)
{
    (void)e;
    const bin_job *bj = ctx;
    const size_t nd = bj->prof->n_dist, nb = bj->nb, rows = (size_t)bj->prof->n_pairs + 2;
    const double *count = bj->prof->count;
    for (size_t r = t * BIN_ROWS; r < rows && r < (t + 1) * BIN_ROWS; r++) {
        const double *sum = bj->prof->sum + r * nd;
        double *mean = bj->mean + r * nb;
        if (nb == nd) { /* one distance per bin: pe_bin_mean's value, without its loop */
            for (size_t d = 0; d < nd; d++) mean[d] = count[d] > 0 ? sum[d] / count[d] : NAN;
            continue;
        }
        for (size_t b = 0; b < nb; b++) {
            size_t lo, hi;
            pe_bin_range(nd, nb, b, &lo, &hi);
            mean[b] = pe_bin_mean(sum, count, lo, hi);
        }
    }
    return 0;
}

int pe_profile_bin(const pe_profile *p, size_t nb, double *mean, double *npairs, pe_pool *pool, pe_err *e)
{
    const size_t nd = p->n_dist, rows = (size_t)p->n_pairs + 2;
    for (size_t b = 0; b < nb; b++) {
        size_t lo, hi;
        pe_bin_range(nd, nb, b, &lo, &hi);
        double n = 0;
        for (size_t d = lo; d <= hi; d++) n += p->count[d];
        npairs[b] = n;
    }
    bin_job bj = {p, mean, nb};
    if (!pool) {
        for (size_t t = 0; t * BIN_ROWS < rows; t++) bin_rows(t, &bj, e);
        return 0;
    }
    return pe_pool_for(pool, (rows + BIN_ROWS - 1) / BIN_ROWS, bin_rows, &bj, e);
}

int pe_profile_purity(const pe_profile *p, const double *theta, long train_len, long only, pe_purity *pur,
                      double *power, pe_err *e)
{
    size_t Dw = p->n_dist < (size_t)train_len ? p->n_dist : (size_t)train_len;
    double *curve = pe_alloc(Dw, sizeof *curve, 0, e);
    int rc = -1;
    if (!curve) return -1;
    for (int i = 0; i < p->n_pairs; i++) {
        if (only >= 0 && i != only) continue;
        for (size_t d = 0; d < Dw; d++)
            curve[d] = p->count[d] > 0 ? p->sum[(size_t)i * p->n_dist + d] / p->count[d] : NAN;
        if (pe_spectrum_purity(curve, Dw, theta[i], &pur[i], i == only ? power : NULL, e) < 0) goto done;
    }
    rc = 0;
done:
    free(curve);
    return rc;
}
