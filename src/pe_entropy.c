/* pe_entropy.c: DoPE's truncated matrix entropy (see pe_entropy.h and
 * man peentropy(1)). */
#include "pe_entropy.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pe_prep_name(pe_prep p)
{
    return p == PE_PREP_UNCOMP ? "uncomp" : "paper";
}

const char *pe_stage_name(pe_stage s)
{
    static const char *const names[] = {"pre", "post", "ntk"};
    return (unsigned)s <= PE_STAGE_NTK ? names[s] : "unknown";
}

/* ---- rotation ---- */

/* 1 when r already holds the table of (g, pos, T). */
static int rotor_same(const pe_rotor *r, const pe_geom *g, const int64_t *pos, size_t T)
{
    if (!r->theta || r->pos != pos || r->T != T || r->g.head_dim != g->head_dim ||
        r->g.rotary_dim != g->rotary_dim || r->g.n_pairs != g->n_pairs || r->g.pairing != g->pairing)
        return 0;
    for (int i = 0; i < g->n_pairs; i++)
        if (r->theta[i] != g->theta[i]) return 0;
    return 1;
}

/* Rows [k ROTOR_ROWS, (k + 1) ROTOR_ROWS) of the table: one task of the
 * fill, which is 2 T P cosines and sines in T P 16 bytes of new memory. */
#define ROTOR_ROWS 1024

static int rotor_fill(size_t k, void *ctx, pe_err *e)
{
    (void)e;
    pe_rotor *r = ctx;
    const int P = r->g.n_pairs;
    for (size_t m = k * ROTOR_ROWS; m < r->T && m < (k + 1) * ROTOR_ROWS; m++) {
        /* Row m: the P cosines, then the P sines. */
        double *c = r->cs + m * 2 * (size_t)P, *s = c + P;
        for (int i = 0; i < P; i++) {
            /* The angle exactly as pe_rope_rotate forms it with direction +1:
             * (double)1 * ((double)pos * theta) is (double)pos * theta.  A
             * pair with theta 0 gets (1, 0), which leaves it as it is. */
            double ang = (double)r->pos[m] * r->theta[i];
            c[i] = r->theta[i] != 0 ? cos(ang) : 1.0;
            s[i] = r->theta[i] != 0 ? sin(ang) : 0.0;
        }
    }
    return 0;
}

int pe_rotor_init(pe_rotor *r, const pe_geom *g, const int64_t *pos, size_t T, pe_pool *pool, pe_err *e)
{
    const int P = g->n_pairs;
    size_t n;
    if (rotor_same(r, g, pos, T)) return 0;
    if (r->n_pairs_cap < P) {
        double *th = realloc(r->theta, (size_t)P * sizeof *th);
        if (th) r->theta = th;
        int *da = th ? realloc(r->dim_a, (size_t)P * sizeof *da) : NULL;
        if (da) r->dim_a = da;
        int *db = da ? realloc(r->dim_b, (size_t)P * sizeof *db) : NULL;
        if (db) r->dim_b = db;
        if (!db) {
            pe_rotor_free(r);
            return pe_fail(e, "out of memory (a rotation of %d pairs)", P);
        }
        r->n_pairs_cap = P;
    }
    if (!r->theta && !(r->theta = pe_alloc(1, sizeof *r->theta, 0, e))) return -1;
    r->T = T;
    r->pos = pos;
    r->g = *g;
    r->g.theta = r->theta;
    r->identity = 1;
    for (int i = 0; i < P; i++) {
        r->theta[i] = g->theta[i];
        pe_rope_pair_dims(g->pairing, g->rotary_dim, i, &r->dim_a[i], &r->dim_b[i]);
        if (g->theta[i] != 0) r->identity = 0;
    }
    if (r->identity) return 0;
    if (pe_mul_size(T, 2 * (size_t)P, &n) != 0) {
        pe_rotor_free(r);
        return pe_fail(e, "out of memory: a rotation table of %zu tokens x %d pairs overflows", T, P);
    }
    if (r->cs_cap < n) {
        /* The table is kept from layer to layer: fresh pages are costly. */
        free(r->cs);
        r->cs_cap = 0;
        if (!(r->cs = pe_alloc(n, sizeof *r->cs, 0, e))) {
            pe_rotor_free(r);
            return -1;
        }
        r->cs_cap = n;
    }
    size_t n_fill = (T + ROTOR_ROWS - 1) / ROTOR_ROWS;
    if (pool) return pe_pool_for(pool, n_fill, rotor_fill, r, e);
    for (size_t k = 0; k < n_fill; k++) rotor_fill(k, r, e);
    return 0;
}

/* ---- rotors shared by the heads of every layer ---- */

typedef struct rotor_entry {
    pe_rotor rot;
    int users, building, failed;
    pe_err err;
    /* the key: the geometry asked for (theta copied), pos, T */
    pe_geom g;
    double *theta;
    int theta_cap;
    const int64_t *pos;
    size_t T;
} rotor_entry;

struct pe_rotor_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rotor_entry **e; /* each allocated alone: a rotor in use never moves */
    int n, cap;
};

pe_rotor_cache *pe_rotor_cache_new(pe_err *e)
{
    pe_rotor_cache *c = pe_alloc(1, sizeof *c, 1, e);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return c;
}

void pe_rotor_cache_free(pe_rotor_cache *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        pe_rotor_free(&c->e[i]->rot);
        free(c->e[i]->theta);
        free(c->e[i]);
    }
    free(c->e);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int entry_is(const rotor_entry *x, const pe_geom *g, const int64_t *pos, size_t T)
{
    if (x->failed || x->pos != pos || x->T != T || x->g.head_dim != g->head_dim ||
        x->g.rotary_dim != g->rotary_dim || x->g.n_pairs != g->n_pairs || x->g.pairing != g->pairing)
        return 0;
    for (int i = 0; i < g->n_pairs; i++)
        if (x->theta[i] != g->theta[i]) return 0;
    return 1;
}

const pe_rotor *pe_rotor_cache_get(pe_rotor_cache *c, const pe_geom *g, const int64_t *pos, size_t T, pe_pool *pool,
                                   pe_err *e)
{
    pthread_mutex_lock(&c->mu);
    rotor_entry *x = NULL;
    for (int i = 0; i < c->n && !x; i++)
        if (entry_is(c->e[i], g, pos, T)) x = c->e[i];
    if (x) {
        x->users++;
        while (x->building) pthread_cond_wait(&c->cv, &c->mu);
    } else {
        /* A rotor nobody holds is remade with the new frequencies (its
         * storage is kept); else one more. */
        for (int i = 0; i < c->n && !x; i++)
            if (c->e[i]->users == 0) x = c->e[i];
        if (!x) {
            if (c->n == c->cap) {
                int cap = c->cap ? 2 * c->cap : 4;
                rotor_entry **ne = realloc(c->e, (size_t)cap * sizeof *ne);
                if (!ne) {
                    pthread_mutex_unlock(&c->mu);
                    pe_fail(e, "out of memory (a rotation table)");
                    return NULL;
                }
                c->e = ne;
                c->cap = cap;
            }
            if (!(x = pe_alloc(1, sizeof *x, 1, e))) {
                pthread_mutex_unlock(&c->mu);
                return NULL;
            }
            c->e[c->n++] = x;
        }
        if (!x->theta || x->theta_cap < g->n_pairs) {
            double *th = realloc(x->theta, (size_t)(g->n_pairs ? g->n_pairs : 1) * sizeof *th);
            if (!th) {
                pthread_mutex_unlock(&c->mu);
                pe_fail(e, "out of memory (a rotation table)");
                return NULL;
            }
            x->theta = th;
            x->theta_cap = g->n_pairs;
        }
        if (g->n_pairs) memcpy(x->theta, g->theta, (size_t)g->n_pairs * sizeof *x->theta);
        x->g = *g;
        x->g.theta = x->theta;
        x->pos = pos;
        x->T = T;
        x->users = 1;
        x->building = 1;
        x->failed = 0;
        pthread_mutex_unlock(&c->mu);
        int bad = pe_rotor_init(&x->rot, g, pos, T, pool, &x->err) < 0;
        pthread_mutex_lock(&c->mu);
        x->building = 0;
        x->failed = bad;
        pthread_cond_broadcast(&c->cv);
    }
    const pe_rotor *r = &x->rot;
    if (x->failed) {
        *e = x->err;
        x->users--;
        r = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

void pe_rotor_cache_put(pe_rotor_cache *c, const pe_rotor *r)
{
    if (!r) return;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++)
        if (&c->e[i]->rot == r) c->e[i]->users--;
    pthread_mutex_unlock(&c->mu);
}

void pe_rotor_apply(const pe_rotor *r, double *x)
{
    const int P = r->g.n_pairs, D = r->g.head_dim;
    if (r->identity) return;
    for (size_t m = 0; m < r->T; m++) {
        const double *c = r->cs + m * 2 * (size_t)P, *s = c + P;
        double *v = x + m * (size_t)D;
        if (r->g.pairing == PE_PAIRING_HALF) {
            /* Pair i = dims (i, i + P): runs the compiler can vectorise. */
            double *va = v, *vb = v + P;
            for (int i = 0; i < P; i++) {
                double xa = va[i], xb = vb[i];
                va[i] = xa * c[i] - xb * s[i];
                vb[i] = xa * s[i] + xb * c[i];
            }
        } else {
            for (int i = 0; i < P; i++) {
                double xa = v[2 * i], xb = v[2 * i + 1];
                v[2 * i] = xa * c[i] - xb * s[i];
                v[2 * i + 1] = xa * s[i] + xb * c[i];
            }
        }
    }
}

void pe_rotor_free(pe_rotor *r)
{
    free(r->theta);
    free(r->dim_a);
    free(r->dim_b);
    free(r->cs);
    memset(r, 0, sizeof *r);
}

/* ---- the steps ---- */

int pe_entropy_prepare(double *x, size_t T, int D, pe_prep prep, size_t *bad_token, pe_err *e)
{
    if (prep == PE_PREP_PAPER) return 0;
    double *mean = pe_alloc(D > 0 ? (size_t)D : 1, sizeof *mean, 1, e);
    if (!mean) return -1;
    double maxnorm = 0;
    for (size_t m = 0; m < T; m++) {
        const double *v = x + m * (size_t)D;
        double s = 0;
        for (int d = 0; d < D; d++) {
            mean[d] += v[d];
            s += v[d] * v[d];
        }
        if (s > maxnorm) maxnorm = s;
    }
    maxnorm = sqrt(maxnorm);
    for (int d = 0; d < D; d++) mean[d] /= (double)T;
    for (size_t m = 0; m < T; m++) {
        double *v = x + m * (size_t)D;
        double s = 0;
        for (int d = 0; d < D; d++) {
            v[d] -= mean[d];
            s += v[d] * v[d];
        }
        double norm = sqrt(s);
        if (!(norm > 1e-12 * maxnorm)) {
            free(mean);
            if (bad_token) *bad_token = m;
            return pe_fail(e, "token %zu: the vector equals the mean over tokens (norm %.3g after centring), "
                              "so --prep uncomp cannot scale it to norm 1",
                           m, norm);
        }
        for (int d = 0; d < D; d++) v[d] /= norm;
    }
    free(mean);
    return 0;
}

void pe_entropy_gram(const double *x, size_t T, int D, double *G)
{
    /* dsyrk takes the number of rows as an int: long sequences go in chunks,
     * added with beta = 1. */
    const size_t chunk = (size_t)1 << 30;
    size_t done = 0;
    memset(G, 0, (size_t)D * (size_t)D * sizeof *G);
    while (done < T) {
        size_t n = T - done < chunk ? T - done : chunk;
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D, (int)n, 1.0, x + done * (size_t)D, D,
                    done ? 1.0 : 0.0, G, D);
        done += n;
    }
    for (int i = 0; i < D; i++)
        for (int j = 0; j < i; j++) G[(size_t)i * D + j] = G[(size_t)j * D + i];
}

static int cmp_desc(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

void pe_entropy_sort_clamp(double *lambda, int D)
{
    for (int i = 0; i < D; i++)
        if (lambda[i] < 0) lambda[i] = 0;
    qsort(lambda, (size_t)D, sizeof *lambda, cmp_desc);
}

int pe_entropy_spectrum(const double *G, int D, double *lambda, double *work, pe_err *e)
{
    double tr = 0;
    for (int i = 0; i < D; i++) tr += G[(size_t)i * D + i];
    if (!(tr > 0) || !isfinite(tr)) {
        for (int i = 0; i < D; i++) lambda[i] = NAN;
        return 0;
    }
    for (size_t k = 0; k < (size_t)D * (size_t)D; k++) work[k] = G[k] / tr;
    /* Row-major upper triangle == column-major lower triangle. */
    lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'N', 'L', D, work, D, lambda);
    if (info != 0)
        return pe_fail(e, "LAPACK dsyevd failed (info %d) on a %d x %d Gram matrix", (int)info, D, D);
    pe_entropy_sort_clamp(lambda, D);
    return 0;
}

static double xlogx(double p)
{
    return p > 0 ? p * log(p) : 0.0;
}

void pe_entropy_scores(const double *lambda, int D, int r, double *s)
{
    if (r > D) r = D;
    if (r < 1) r = 1;
    for (int k = 0; k < PE_ENT_NSCORES; k++) s[k] = NAN;
    if (D < 1 || isnan(lambda[0])) return;
    double sr = 0, sd = 0, sum = 0;
    for (int i = 0; i < D; i++) {
        double h = -xlogx(lambda[i]);
        if (i < r) {
            sr += h;
            sum += lambda[i];
        }
        sd += h;
    }
    double hp = NAN;
    if (sum > 0) {
        hp = 0;
        for (int i = 0; i < r; i++) hp -= xlogx(lambda[i] / sum);
    }
    s[PE_ENT_SCORE] = sr;
    s[PE_ENT_NORM] = D > 1 ? sr / log((double)D) : NAN;
    s[PE_ENT_RHO] = exp(hp);
    s[PE_ENT_LAMBDA1] = lambda[0];
    s[PE_ENT_FULL] = sd;
    s[PE_ENT_EFF_RANK] = exp(sd);
    s[PE_ENT_ENERGY] = sum;
}

void pe_entropy_band(double a, double b, double c, double *v)
{
    double tr = a + c;
    if (!(tr > 0) || !isfinite(tr)) {
        v[PE_BAND_MU1] = v[PE_BAND_MU2] = v[PE_BAND_ENTROPY] = NAN;
        return;
    }
    double d = hypot((a - c) / 2, b) / tr;
    double mu1 = 0.5 + d, mu2 = 0.5 - d;
    /* ac >= b^2 for a Gram matrix, so d <= 1/2; round-off may cross it. */
    if (mu2 < 0) mu2 = 0;
    if (mu1 > 1) mu1 = 1;
    v[PE_BAND_MU1] = mu1;
    v[PE_BAND_MU2] = mu2;
    v[PE_BAND_ENTROPY] = -xlogx(mu1) - xlogx(mu2);
}

/* ---- one head ---- */

int pe_entropy_work_init(pe_entropy_work *w, int D, pe_err *e)
{
    size_t dd = (size_t)D * (size_t)D;
    memset(w, 0, sizeof *w);
    w->D = D;
    w->G = pe_alloc(dd ? dd : 1, sizeof(double), 0, e);
    w->eig = pe_alloc(dd ? dd : 1, sizeof(double), 0, e);
    w->lambda = pe_alloc(D > 0 ? (size_t)D : 1, sizeof(double), 0, e);
    if (!w->G || !w->eig || !w->lambda) {
        pe_entropy_work_free(w);
        return -1;
    }
    return 0;
}

void pe_entropy_work_free(pe_entropy_work *w)
{
    free(w->G);
    free(w->eig);
    free(w->lambda);
    memset(w, 0, sizeof *w);
}

int pe_entropy_head(double *x, size_t T, const pe_geom *g, const pe_rotor *rot, pe_prep prep, int r,
                    double *scores, double *bands, pe_entropy_work *w, size_t *bad_token, pe_err *e)
{
    const int D = g->head_dim;
    if (w->D != D) return pe_fail(e, "entropy work space is for dim %d, not %d", w->D, D);
    if (rot) pe_rotor_apply(rot, x);
    if (pe_entropy_prepare(x, T, D, prep, bad_token, e) < 0) return -1;
    pe_entropy_gram(x, T, D, w->G);
    if (pe_entropy_spectrum(w->G, D, w->lambda, w->eig, e) < 0) return -1;
    pe_entropy_scores(w->lambda, D, r, scores);
    if (bands) {
        for (int i = 0; i < g->n_pairs; i++) {
            int a, b;
            pe_rope_pair_dims(g->pairing, g->rotary_dim, i, &a, &b);
            int lo = a < b ? a : b, hi = a < b ? b : a;
            pe_entropy_band(w->G[(size_t)a * D + a], w->G[(size_t)lo * D + hi], w->G[(size_t)b * D + b],
                            bands + (size_t)i * PE_BAND_NVALUES);
        }
    }
    return 0;
}

/* ---- pooling and selection ---- */

static int cmp_asc(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

double pe_entropy_pool_mean(double *v, size_t n)
{
    if (n == 0) return NAN;
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i])) return NAN;
    qsort(v, n, sizeof *v, cmp_asc);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    return s / (double)n;
}

void pe_entropy_pool_files(const double *v, size_t nf, size_t stride, double *tmp, double *out)
{
    for (size_t j = 0; j < stride; j++) {
        for (size_t f = 0; f < nf; f++) tmp[f] = v[f * stride + j];
        out[j] = pe_entropy_pool_mean(tmp, nf);
    }
}

static const char *const score_label[PE_ENT_NSCORES] = {"S_r",      "S_r / ln D", "rho_r",   "lambda_1",
                                                         "S_D",      "exp(S_D)",   "energy_r"};
static const char *const score_direction[PE_ENT_NSCORES] = {
    [PE_ENT_SCORE] = "not monotone in spikiness: -x ln x rises for x < 1/e, so while every lambda_i < 1/e a more "
                     "concentrated head has a HIGHER S_r",
    [PE_ENT_NORM] = "S_r / ln D: as S_r, not monotone in spikiness",
    [PE_ENT_RHO] = "low = the top r eigenvalues are uneven (one dominates them)",
    [PE_ENT_LAMBDA1] = "high = spiky (one direction dominates)",
    [PE_ENT_FULL] = "low = a few directions hold the spectrum (spiky)",
    [PE_ENT_EFF_RANK] = "low = a few directions hold the spectrum (spiky)",
    [PE_ENT_ENERGY] = "high = spiky (the top r directions hold most of the spectrum)"};

const char *pe_entropy_score_label(int k)
{
    return k >= 0 && k < PE_ENT_NSCORES ? score_label[k] : "?";
}

const char *pe_entropy_score_direction(int k)
{
    return k >= 0 && k < PE_ENT_NSCORES ? score_direction[k] : "?";
}

void pe_entropy_select_direction(int k, int desc, double lambda1_max, char *buf, size_t n)
{
    /* S_r's direction depends on the spectra: below 1/e, higher is spikier. */
    const char *tail = "";
    int entropy = k == PE_ENT_SCORE || k == PE_ENT_NORM;
    if (entropy && lambda1_max < 1 / M_E)
        tail = desc ? "; here every lambda_i < 1/e, so a higher S_r is a spikier spectrum: desc picks the spikiest "
                      "heads"
                    : "; here every lambda_i < 1/e, so a lower S_r is a flatter spectrum: asc picks the flattest "
                      "heads, not the spikiest (use --score energy or lambda1 --order desc)";
    else if (entropy)
        tail = "; here some lambda_1 >= 1/e: S_r does not order these heads by spikiness";
    snprintf(buf, n, "%s, %s first: %s%s", pe_entropy_score_label(k), desc ? "highest" : "lowest",
             pe_entropy_score_direction(k), tail);
}

typedef struct rank_item {
    pe_entropy_cand c;
    size_t idx;
    int desc;
} rank_item;

static int cmp_rank(const void *pa, const void *pb)
{
    const rank_item *a = pa, *b = pb;
    if (a->c.score != b->c.score) {
        int lt = a->c.score < b->c.score;
        return a->desc ? (lt ? 1 : -1) : (lt ? -1 : 1);
    }
    if (a->c.layer != b->c.layer) return a->c.layer < b->c.layer ? -1 : 1;
    if (a->c.head != b->c.head) return a->c.head < b->c.head ? -1 : 1;
    if (a->c.tensor != b->c.tensor) return a->c.tensor < b->c.tensor ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

int pe_entropy_rank(const pe_entropy_cand *c, size_t n, int desc, size_t n_top, size_t *order,
                    size_t *n_out, pe_err *e)
{
    rank_item *items = pe_alloc(n ? n : 1, sizeof *items, 0, e);
    size_t k = 0;
    if (!items) return -1;
    for (size_t i = 0; i < n; i++) {
        if (isnan(c[i].score)) continue;
        items[k].c = c[i];
        items[k].idx = i;
        items[k].desc = desc;
        k++;
    }
    qsort(items, k, sizeof *items, cmp_rank);
    if (n_top < k) k = n_top;
    for (size_t i = 0; i < k; i++) order[i] = items[i].idx;
    free(items);
    *n_out = k;
    return 0;
}
