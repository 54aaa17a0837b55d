/* test_entropy.c: DoPE's truncated matrix entropy (man peentropy(1)).
 *
 *   test_entropy DIR                  the unit tests (DIR: the fixtures; unused)
 *   test_entropy --ref TABLE FILE...  checks a peentropy table against the
 *                                     definition, reading FILE... itself
 *
 * Every expected number is independent of the code under test: the test
 * vectors of the specification, closed forms, or a reference written here from the
 * definitions: the Gram matrix by loops, the eigenvalues by a cyclic Jacobi
 * method (no LAPACK), the rotation as a complex product (cexp), and, for
 * --ref, the qkdump file read with HDF5 directly (not through pe_dump), so
 * that a table of the tool is checked end to end.
 */
#include <complex.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe_entplan.h"
#include "pe_entropy.h"
#include "pe_mask.h"
#include "pe_rope.h"
#include "pe_test.h"

static const double TWO_PI = 6.283185307179586476925286766559;

/* ================================================================ reference */

/* G = X^T X by loops. */
static void ref_gram(const double *x, long T, int D, double *G)
{
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (long m = 0; m < T; m++) s += x[m * D + i] * x[m * D + j];
            G[i * D + j] = s;
        }
}

/* Eigenvalues of the symmetric n x n matrix A (destroyed) by cyclic Jacobi
 * rotations, into w, sorted descending. */
static void ref_jacobi(double *A, int n, double *w)
{
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, all = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                all += A[i * n + j] * A[i * n + j];
                if (i != j) off += A[i * n + j] * A[i * n + j];
            }
        if (off <= 1e-34 * all || off == 0) break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = A[p * n + q];
                if (apq == 0) continue;
                double tau = (A[q * n + q] - A[p * n + p]) / (2 * apq);
                double t = (tau >= 0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1 + tau * tau));
                double c = 1 / sqrt(1 + t * t), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = A[k * n + p], akq = A[k * n + q];
                    A[k * n + p] = c * akp - s * akq;
                    A[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = A[p * n + k], aqk = A[q * n + k];
                    A[p * n + k] = c * apk - s * aqk;
                    A[q * n + k] = s * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < n; i++) w[i] = A[i * n + i];
    for (int i = 0; i < n; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && w[j] > w[j - 1]; j--) {
            double t = w[j];
            w[j] = w[j - 1];
            w[j - 1] = t;
        }
}

/* lambda (descending) of X^T X / trace, by the reference; negatives to 0. */
static void ref_spectrum(const double *x, long T, int D, double *lambda)
{
    double *G = malloc((size_t)D * D * sizeof *G), tr = 0;
    ref_gram(x, T, D, G);
    for (int i = 0; i < D; i++) tr += G[i * D + i];
    for (int k = 0; k < D * D; k++) G[k] /= tr;
    ref_jacobi(G, D, lambda);
    for (int i = 0; i < D; i++)
        if (lambda[i] < 0) lambda[i] = 0;
    free(G);
}

/* The scores from the definitions, in the order of PE_ENT_*. */
static void ref_scores(const double *l, int D, int r, double *s)
{
    if (r > D) r = D;
    double sr = 0, sd = 0, sum = 0, hp = 0;
    for (int i = 0; i < D; i++) {
        double h = l[i] > 0 ? -l[i] * log(l[i]) : 0;
        sd += h;
        if (i < r) sr += h, sum += l[i];
    }
    for (int i = 0; i < r; i++) {
        double p = l[i] / sum;
        if (p > 0) hp -= p * log(p);
    }
    s[0] = sr;
    s[1] = sr / log(D);
    s[2] = exp(hp);
    s[3] = l[0];
    s[4] = sd;
    s[5] = exp(sd);
    s[6] = 0;
    for (int i = 0; i < r; i++) s[6] += l[i];
}

/* Rotates pair (a_i, b_i) of every token by pos * theta_i as a complex
 * product; dims of pair i for `interleaved` or `half`. */
static void ref_rotate(double *x, long T, int D, int R, int interleaved, const double *theta, const int64_t *pos)
{
    int P = R / 2;
    for (long m = 0; m < T; m++)
        for (int i = 0; i < P; i++) {
            int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + P;
            double complex z = (x[m * D + a] + I * x[m * D + b]) * cexp(I * ((double)pos[m] * theta[i]));
            x[m * D + a] = creal(z);
            x[m * D + b] = cimag(z);
        }
}

static void ref_uncomp(double *x, long T, int D)
{
    for (int d = 0; d < D; d++) {
        double mu = 0;
        for (long m = 0; m < T; m++) mu += x[m * D + d];
        mu /= T;
        for (long m = 0; m < T; m++) x[m * D + d] -= mu;
    }
    for (long m = 0; m < T; m++) {
        double n = 0;
        for (int d = 0; d < D; d++) n += x[m * D + d] * x[m * D + d];
        n = sqrt(n);
        for (int d = 0; d < D; d++) x[m * D + d] /= n;
    }
}

/* The 2 x 2 eigenvalues of [[a, b], [b, c]] / (a + c) from the quadratic
 * formula (a different route from the tool's), and their entropy. */
static void ref_band(double a, double b, double c, double *v)
{
    double tr = a + c, det = a * c - b * b;
    double disc = sqrt(fmax(tr * tr - 4 * det, 0));
    double l1 = (tr + disc) / 2, l2 = det / l1; /* l1 l2 = det, stable for the small one */
    v[0] = l1 / tr;
    v[1] = fmax(l2 / tr, 0);
    v[2] = -(v[0] > 0 ? v[0] * log(v[0]) : 0) - (v[1] > 0 ? v[1] * log(v[1]) : 0);
}

/* ================================================================ the library on one head */

/* Scores (and bands, when bands != NULL) of x through pe_entropy_head;
 * x is copied first.  theta NULL = stage pre. */
static int lib_head(const double *x0, size_t T, int D, int R, pe_pairing pairing, const double *theta,
                    const int64_t *pos, pe_prep prep, int r, double *scores, double *bands, pe_err *e)
{
    double *x = malloc(T * (size_t)D * sizeof *x);
    double zero[64] = {0};
    pe_geom g = {D, R, R / 2, pairing, theta ? theta : zero};
    pe_rotor rot;
    pe_entropy_work w;
    memset(&rot, 0, sizeof rot);
    memcpy(x, x0, T * (size_t)D * sizeof *x);
    pe_entropy_work_init(&w, D, e);
    int rc = 0;
    if (theta && pe_rotor_init(&rot, &g, pos, T, NULL, e) < 0) rc = -1;
    if (rc == 0) rc = pe_entropy_head(x, T, &g, theta ? &rot : NULL, prep, r, scores, bands, &w, NULL, e);
    pe_rotor_free(&rot);
    pe_entropy_work_free(&w);
    free(x);
    return rc;
}

/* The same through the reference; bands of the pairs of (R, interleaved). */
static void ref_head(const double *x0, long T, int D, int R, int interleaved, const double *theta, const int64_t *pos,
                     pe_prep prep, int r, double *scores, double *bands)
{
    double *x = malloc((size_t)T * D * sizeof *x), *l = malloc((size_t)D * sizeof *l);
    double *G = malloc((size_t)D * D * sizeof *G);
    memcpy(x, x0, (size_t)T * D * sizeof *x);
    if (theta) ref_rotate(x, T, D, R, interleaved, theta, pos);
    if (prep == PE_PREP_UNCOMP) ref_uncomp(x, T, D);
    ref_spectrum(x, T, D, l);
    ref_scores(l, D, r, scores);
    if (bands) {
        ref_gram(x, T, D, G);
        for (int i = 0; i < R / 2; i++) {
            int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + R / 2;
            ref_band(G[a * D + a], G[a * D + b], G[b * D + b], bands + 3 * i);
        }
    }
    free(x);
    free(l);
    free(G);
}

static double max_diff(const double *a, const double *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (isnan(a[i]) != isnan(b[i])) d = INFINITY;
        if (d > m) m = d;
    }
    return m;
}

/* ================================================================ unit tests */

static const double TV[6][4] = {{1.0, 0.5, -0.2, 0.0}, {0.9, 0.4, 0.1, 0.3}, {1.2, 0.6, 0.0, -0.1},
                                {0.8, 0.7, -0.3, 0.2}, {1.1, 0.3, 0.2, 0.0}, {1.0, 0.5, 0.1, -0.2}};

static void test_vectors(void)
{
    /* The specification's test vectors: lambda, S_1, S_2, S_4, rho_2, rho_4. */
    static const double want[2][9] = {
        {0.939298071, 0.039434901, 0.018491581, 0.002775447, 0.058821114, 0.186318252, 0.276446693, 1.183966636,
         1.318436669},
        {0.488909463, 0.368690703, 0.075056413, 0.067343422, 0.349852833, 0.717731381, 1.093780297, 1.980381434,
         2.985538990}};
    const char *names[9] = {"lambda_1", "lambda_2", "lambda_3", "lambda_4", "S_1", "S_2", "S_4", "rho_2", "rho_4"};
    for (int p = 0; p < 2; p++) {
        pe_err e = {0};
        double x[24], G[16], work[16], l[4], s1[PE_ENT_NSCORES], s2[PE_ENT_NSCORES], s4[PE_ENT_NSCORES];
        memcpy(x, TV, sizeof x);
        int ok = pe_entropy_prepare(x, 6, 4, (pe_prep)p, NULL, &e) == 0;
        pe_entropy_gram(x, 6, 4, G);
        ok = ok && pe_entropy_spectrum(G, 4, l, work, &e) == 0;
        PE_CHECK(ok, p ? "test vectors, uncomp: computed" : "test vectors, paper: computed");
        pe_entropy_scores(l, 4, 1, s1);
        pe_entropy_scores(l, 4, 2, s2);
        pe_entropy_scores(l, 4, 4, s4);
        double got[9] = {l[0], l[1], l[2], l[3], s1[PE_ENT_SCORE], s2[PE_ENT_SCORE], s4[PE_ENT_SCORE], s2[PE_ENT_RHO],
                         s4[PE_ENT_RHO]};
        for (int k = 0; k < 9; k++) {
            char what[96];
            snprintf(what, sizeof what, "test vector %s: %s to 1e-9", p ? "uncomp" : "paper", names[k]);
            PE_CHECK_NEAR(got[k], want[p][k], 1e-9, what);
        }
        /* The other columns of the table follow from the spectrum. */
        PE_CHECK_NEAR(s4[PE_ENT_FULL], want[p][6], 1e-9, p ? "uncomp: full = S_4" : "paper: full = S_4");
        PE_CHECK_NEAR(s4[PE_ENT_EFF_RANK], want[p][8], 1e-9, p ? "uncomp: eff_rank = exp(S_4) = rho_4" : "paper: eff_rank = exp(S_4) = rho_4");
        PE_CHECK_NEAR(s2[PE_ENT_NORM], want[p][5] / log(4.0), 1e-9, p ? "uncomp: score_norm = S_2 / ln 4" : "paper: score_norm = S_2 / ln 4");
        PE_CHECK_NEAR(s1[PE_ENT_LAMBDA1], want[p][0], 1e-9, p ? "uncomp: lambda1" : "paper: lambda1");
        PE_CHECK_NEAR(s1[PE_ENT_RHO], 1.0, 1e-15, p ? "uncomp: rho_1 = 1" : "paper: rho_1 = 1");
        PE_CHECK_NEAR(s1[PE_ENT_ENERGY], want[p][0], 1e-9, p ? "uncomp: energy_1 = lambda_1" : "paper: energy_1 = lambda_1");
        PE_CHECK_NEAR(s2[PE_ENT_ENERGY], want[p][0] + want[p][1], 1e-9,
                      p ? "uncomp: energy_2 = lambda_1 + lambda_2" : "paper: energy_2 = lambda_1 + lambda_2");
        PE_CHECK_NEAR(s4[PE_ENT_ENERGY], 1.0, 1e-12, p ? "uncomp: energy_4 = 1 (the whole spectrum)" : "paper: energy_4 = 1");

        /* The reference of this file reproduces them too (so that --ref can be trusted). */
        double rs[PE_ENT_NSCORES], rl[4], y[24];
        memcpy(y, TV, sizeof y);
        if (p) ref_uncomp(y, 6, 4);
        ref_spectrum(y, 6, 4, rl);
        ref_scores(rl, 4, 2, rs);
        PE_CHECK(fabs(rl[0] - want[p][0]) < 1e-9 && fabs(rl[3] - want[p][3]) < 1e-9 && fabs(rs[0] - want[p][5]) < 1e-9 &&
                     fabs(rs[2] - want[p][7]) < 1e-9,
                 p ? "the Jacobi reference reproduces the uncomp vectors" : "the Jacobi reference reproduces the paper vectors");

        /* Through pe_entropy_head (stage pre, no pairs). */
        double hs[PE_ENT_NSCORES];
        ok = lib_head(&TV[0][0], 6, 4, 0, PE_PAIRING_HALF, NULL, NULL, (pe_prep)p, 2, hs, NULL, &e) == 0;
        PE_CHECK(ok && fabs(hs[PE_ENT_SCORE] - want[p][5]) < 1e-9 && fabs(hs[PE_ENT_RHO] - want[p][7]) < 1e-9,
                 p ? "pe_entropy_head: uncomp S_2 and rho_2" : "pe_entropy_head: paper S_2 and rho_2");
    }
}

/* A unit key (1, 0) at positions 0..63, rotated by j * theta: the cone. */
static void test_cone(void)
{
    static const struct {
        double theta, mu1, mu2, h;
    } c[] = {{0.01, 0.966566715, 0.033433285, 0.146481159}, {1.0, NAN, NAN, 0.693001248}};
    int64_t pos[64];
    double x[128];
    for (int j = 0; j < 64; j++) {
        pos[j] = j;
        x[2 * j] = 1;
        x[2 * j + 1] = 0;
    }
    for (int k = 0; k < 2; k++) {
        pe_err e = {0};
        double s[PE_ENT_NSCORES], b[PE_BAND_NVALUES], pre[PE_ENT_NSCORES], preb[PE_BAND_NVALUES];
        char what[96];
        int ok = lib_head(x, 64, 2, 2, PE_PAIRING_INTERLEAVED, &c[k].theta, pos, PE_PREP_PAPER, 2, s, b, &e) == 0;
        ok = ok && lib_head(x, 64, 2, 2, PE_PAIRING_INTERLEAVED, NULL, pos, PE_PREP_PAPER, 2, pre, preb, &e) == 0;
        snprintf(what, sizeof what, "cone theta %g: computed", c[k].theta);
        PE_CHECK(ok, what);
        if (!isnan(c[k].mu1)) {
            snprintf(what, sizeof what, "cone theta %g: band mu1 to 1e-9", c[k].theta);
            PE_CHECK_NEAR(b[PE_BAND_MU1], c[k].mu1, 1e-9, what);
            snprintf(what, sizeof what, "cone theta %g: band mu2 to 1e-9", c[k].theta);
            PE_CHECK_NEAR(b[PE_BAND_MU2], c[k].mu2, 1e-9, what);
            snprintf(what, sizeof what, "cone theta %g: head lambda1 = band mu1", c[k].theta);
            PE_CHECK_NEAR(s[PE_ENT_LAMBDA1], c[k].mu1, 1e-9, what);
        }
        snprintf(what, sizeof what, "cone theta %g: band entropy to 1e-9", c[k].theta);
        PE_CHECK_NEAR(b[PE_BAND_ENTROPY], c[k].h, 1e-9, what);
        snprintf(what, sizeof what, "cone theta %g: head S_2 = band entropy (D = 2)", c[k].theta);
        PE_CHECK_NEAR(s[PE_ENT_SCORE], c[k].h, 1e-9, what);
        snprintf(what, sizeof what, "cone theta %g: unrotated (stage pre) is rank one: entropy 0", c[k].theta);
        PE_CHECK(preb[PE_BAND_ENTROPY] == 0 && pre[PE_ENT_SCORE] == 0 && pre[PE_ENT_LAMBDA1] == 1, what);
    }
}

static void test_band_formula(void)
{
    pe_rng rng = {42};
    double worst = 0, worst_h = 0;
    int in_range = 1;
    for (int t = 0; t < 2000; t++) {
        /* The Gram of two random columns, some nearly parallel. */
        double a = 0, b = 0, c = 0, mix = (t % 4) ? 1.0 : 1e-4;
        for (int m = 0; m < 8; m++) {
            double u = pe_rng_uniform(&rng), v = 0.7 * u + mix * pe_rng_uniform(&rng);
            a += u * u, b += u * v, c += v * v;
        }
        double got[3], want[3];
        pe_entropy_band(a, b, c, got);
        ref_band(a, b, c, want);
        worst = fmax(worst, fmax(fabs(got[0] - want[0]), fabs(got[1] - want[1])));
        worst_h = fmax(worst_h, fabs(got[2] - want[2]));
        in_range &= got[2] >= 0 && got[2] <= log(2.0) + 1e-15 && got[0] >= got[1] && got[1] >= 0;
    }
    pe_test_report(worst < 1e-12, "band mu1, mu2 equal the 2x2 closed form to 1e-12 (2000 random pairs)",
                   "largest difference %.3g", worst);
    pe_test_report(worst_h < 1e-10, "band entropy equals the closed form's to 1e-10", "largest difference %.3g",
                   worst_h);
    PE_CHECK(in_range, "band: mu1 >= mu2 >= 0 and entropy in [0, ln 2]");
    double v[3];
    pe_entropy_band(2, 0, 2, v);
    PE_CHECK(v[0] == 0.5 && v[1] == 0.5 && fabs(v[2] - log(2.0)) < 1e-15, "band: isotropic pair -> (1/2, 1/2), ln 2");
    pe_entropy_band(1, 2, 4, v); /* columns u and 2u: rank one */
    PE_CHECK(fabs(v[0] - 1) < 1e-15 && v[1] < 1e-15 && v[2] < 1e-13, "band: parallel columns -> (1, 0), entropy 0");
    pe_entropy_band(0, 0, 0, v);
    PE_CHECK(isnan(v[0]) && isnan(v[1]) && isnan(v[2]), "band: an all-zero pair is nan");
}

/* Random logical data of T tokens, D dims, R rotary, in the half layout;
 * and the same stored interleaved. */
static void make_data(pe_rng *rng, long T, int D, int R, double *half, double *inter)
{
    int P = R / 2;
    for (long m = 0; m < T; m++)
        for (int d = 0; d < D; d++) {
            /* A massive dim and a slow drift, as real keys have. */
            double v = pe_rng_uniform(rng) + (d == 1 ? 3.0 : 0.0) + (d == P + 1 ? 0.01 * (double)m : 0.0);
            half[m * D + d] = v;
            int di = d >= R ? d : d < P ? 2 * d : 2 * (d - P) + 1;
            if (inter) inter[m * D + di] = v;
        }
}

static void test_pairing_and_reference(void)
{
    enum { T = 57, D = 10, R = 8, P = 4 };
    pe_rng rng = {7};
    double half[T * D], inter[T * D], theta[P];
    int64_t pos[T];
    for (int i = 0; i < P; i++) theta[i] = pow(10000.0, -2.0 * i / R);
    for (int m = 0; m < T; m++) pos[m] = 3 + m + m / 4; /* with gaps */
    make_data(&rng, T, D, R, half, inter);
    for (int p = 0; p < 2; p++)
        for (int st = 0; st < 2; st++) {
            pe_err e = {0};
            const double *th = st ? theta : NULL;
            double sh[PE_ENT_NSCORES], si[PE_ENT_NSCORES], bh[P * 3], bi[P * 3], rs[PE_ENT_NSCORES], rb[P * 3], rsi[PE_ENT_NSCORES], rbi[P * 3];
            char what[128];
            const char *tag = p ? "uncomp" : "paper", *stage = st ? "post" : "pre";
            int ok = lib_head(half, T, D, R, PE_PAIRING_HALF, th, pos, (pe_prep)p, 5, sh, bh, &e) == 0 &&
                     lib_head(inter, T, D, R, PE_PAIRING_INTERLEAVED, th, pos, (pe_prep)p, 5, si, bi, &e) == 0;
            snprintf(what, sizeof what, "%s %s: half and interleaved twins give the same scores (1e-12)", stage, tag);
            pe_test_report(ok && max_diff(sh, si, PE_ENT_NSCORES) < 1e-12, what, "differ by %.3g",
                           max_diff(sh, si, PE_ENT_NSCORES));
            snprintf(what, sizeof what, "%s %s: ... and the same band view (1e-12)", stage, tag);
            pe_test_report(ok && max_diff(bh, bi, P * 3) < 1e-12, what, "differ by %.3g", max_diff(bh, bi, P * 3));
            ref_head(half, T, D, R, 0, th, pos, (pe_prep)p, 5, rs, rb);
            ref_head(inter, T, D, R, 1, th, pos, (pe_prep)p, 5, rsi, rbi);
            snprintf(what, sizeof what, "%s %s: scores equal the loop + Jacobi reference (1e-10)", stage, tag);
            pe_test_report(max_diff(sh, rs, PE_ENT_NSCORES) < 1e-10 && max_diff(si, rsi, PE_ENT_NSCORES) < 1e-10, what,
                           "differ by %.3g / %.3g", max_diff(sh, rs, PE_ENT_NSCORES), max_diff(si, rsi, PE_ENT_NSCORES));
            snprintf(what, sizeof what, "%s %s: bands equal the reference's (1e-10)", stage, tag);
            pe_test_report(max_diff(bh, rb, P * 3) < 1e-10 && max_diff(bi, rbi, P * 3) < 1e-10, what, "differ by %.3g",
                           max_diff(bh, rb, P * 3));
            if (st) {
                double pre[PE_ENT_NSCORES];
                lib_head(half, T, D, R, PE_PAIRING_HALF, NULL, pos, (pe_prep)p, 5, pre, NULL, &e);
                snprintf(what, sizeof what, "post %s: the rotation changes the scores of this data", tag);
                PE_CHECK(max_diff(pre, sh, PE_ENT_NSCORES) > 1e-6, what);
            }
        }
}

static void test_rotation_cannot_matter(void)
{
    enum { T = 40, D = 8, R = 6, P = 3 };
    pe_rng rng = {11};
    double x[T * D], zero[P] = {0, 0, 0}, theta[P] = {1.0, 0.1, 0.01}, mixed[P] = {0.5, 0.0, 0.02};
    int64_t pos[T], shifted[T];
    for (int m = 0; m < T; m++) pos[m] = m, shifted[m] = m + 1000;
    make_data(&rng, T, D, R, x, NULL);
    for (int p = 0; p < 2; p++) {
        pe_err e = {0};
        double pre[PE_ENT_NSCORES], post[PE_ENT_NSCORES], bpre[P * 3], bpost[P * 3];
        const char *tag = p ? "uncomp" : "paper";
        char what[128];
        lib_head(x, T, D, R, PE_PAIRING_HALF, NULL, pos, (pe_prep)p, 4, pre, bpre, &e);
        lib_head(x, T, D, R, PE_PAIRING_HALF, zero, pos, (pe_prep)p, 4, post, bpost, &e);
        snprintf(what, sizeof what, "%s: every theta 0 (a layer with rope 0): post == pre exactly", tag);
        PE_CHECK(memcmp(pre, post, sizeof pre) == 0 && memcmp(bpre, bpost, sizeof bpre) == 0, what);
        lib_head(x, T, D, 0, PE_PAIRING_HALF, theta, pos, (pe_prep)p, 4, post, NULL, &e);
        lib_head(x, T, D, 0, PE_PAIRING_HALF, NULL, pos, (pe_prep)p, 4, pre, NULL, &e);
        snprintf(what, sizeof what, "%s: rotary_dim 0: post == pre exactly", tag);
        PE_CHECK(memcmp(pre, post, sizeof pre) == 0, what);

        /* A pair with theta 0 keeps its band exactly; the others change. */
        lib_head(x, T, D, R, PE_PAIRING_HALF, NULL, pos, (pe_prep)p, 4, pre, bpre, &e);
        lib_head(x, T, D, R, PE_PAIRING_HALF, mixed, pos, (pe_prep)p, 4, post, bpost, &e);
        if (p == 0) {
            PE_CHECK(memcmp(bpre + 3, bpost + 3, 3 * sizeof *bpre) == 0, "paper: the band of a theta-0 pair: post == pre exactly");
            PE_CHECK(fabs(bpre[2] - bpost[2]) > 1e-6, "paper: the band of a rotated pair changes");
        }

        /* RoPE is relative: shifting every position by 1000 turns each pair by
         * a fixed angle, an orthogonal similarity of the Gram matrix. */
        double a[PE_ENT_NSCORES], b[PE_ENT_NSCORES], ba[P * 3], bb[P * 3];
        lib_head(x, T, D, R, PE_PAIRING_HALF, theta, pos, (pe_prep)p, 4, a, ba, &e);
        lib_head(x, T, D, R, PE_PAIRING_HALF, theta, shifted, (pe_prep)p, 4, b, bb, &e);
        snprintf(what, sizeof what, "%s: post scores and bands do not change when every position moves by 1000", tag);
        pe_test_report(max_diff(a, b, PE_ENT_NSCORES) < 1e-11 && max_diff(ba, bb, P * 3) < 1e-11, what,
                       "differ by %.3g, %.3g", max_diff(a, b, PE_ENT_NSCORES), max_diff(ba, bb, P * 3));
    }
    /* One token: X^T X is rank one whatever the rotation. */
    pe_err e = {0};
    double pre[PE_ENT_NSCORES], post[PE_ENT_NSCORES];
    int64_t p7[1] = {7};
    lib_head(x, 1, D, R, PE_PAIRING_HALF, NULL, p7, PE_PREP_PAPER, 4, pre, NULL, &e);
    lib_head(x, 1, D, R, PE_PAIRING_HALF, theta, p7, PE_PREP_PAPER, 4, post, NULL, &e);
    PE_CHECK(fabs(pre[PE_ENT_LAMBDA1] - 1) < 1e-14 && fabs(post[PE_ENT_LAMBDA1] - 1) < 1e-14 &&
                 fabs(pre[PE_ENT_FULL]) < 1e-13 && fabs(post[PE_ENT_FULL]) < 1e-13,
             "T = 1: lambda1 = 1 and entropy 0, pre and post");
}

static void test_rotor(void)
{
    enum { T = 33, D = 12, R = 10, P = 5 };
    pe_rng rng = {5};
    double x[T * D], y[T * D], theta[P] = {1.0, 0.0, 0.031, 2.5e-5, 0.0};
    int64_t pos[T];
    for (int m = 0; m < T; m++) pos[m] = 5000 + 7 * m;
    pe_err pe = {0};
    pe_pool *pool = pe_pool_new(2, &pe);
    for (int p = 0; p < 2; p++) {
        pe_err e = {0};
        pe_rotor r;
        pe_geom g = {D, R, P, (pe_pairing)p, theta};
        memset(&r, 0, sizeof r);
        for (int k = 0; k < T * D; k++) x[k] = y[k] = pe_rng_uniform(&rng);
        pe_rotor_init(&r, &g, pos, T, pool, &e);
        pe_rotor_apply(&r, x);
        pe_rope_rotate(y, T, &g, pos, +1);
        int same = 1;
        for (int k = 0; k < T * D; k++) same &= x[k] == y[k];
        PE_CHECK(same, p ? "rotor: interleaved equals pe_rope_rotate exactly" : "rotor: half equals pe_rope_rotate exactly");
        /* Reused for another theta: the table is rebuilt. */
        double theta2[P] = {0.5, 0.25, 0, 0, 0.125};
        g.theta = theta2;
        for (int k = 0; k < T * D; k++) x[k] = y[k];
        pe_rotor_init(&r, &g, pos, T, pool, &e);
        pe_rotor_apply(&r, x);
        pe_rope_rotate(y, T, &g, pos, +1);
        same = 1;
        for (int k = 0; k < T * D; k++) same &= x[k] == y[k];
        PE_CHECK(same, p ? "rotor: re-initialised with other theta, still pe_rope_rotate's"
                         : "rotor (half): re-initialised with other theta, still pe_rope_rotate's");
        pe_rotor_free(&r);
    }
    /* The cache: the same frequencies (another array, equal values) give the
     * same rotor; other frequencies while it is held give another; once
     * given back it is remade for new frequencies, and stays exact. */
    pe_rotor_cache *c = pe_rotor_cache_new(&pe);
    double th1[P] = {1.0, 0.0, 0.031, 2.5e-5, 0.0}, th2[P] = {0.5, 0.25, 0, 0, 0.125};
    pe_geom g1 = {D, R, P, PE_PAIRING_HALF, th1}, g2 = {D, R, P, PE_PAIRING_HALF, th2}, g1b = g1;
    g1b.theta = theta;
    const pe_rotor *a = pe_rotor_cache_get(c, &g1, pos, T, pool, &pe);
    const pe_rotor *b = pe_rotor_cache_get(c, &g1b, pos, T, pool, &pe);
    const pe_rotor *d = pe_rotor_cache_get(c, &g2, pos, T, pool, &pe);
    PE_CHECK(a && a == b && d && d != a, "rotor cache: equal frequencies share a rotor, others get their own");
    pe_rotor_cache_put(c, a);
    pe_rotor_cache_put(c, b);
    double th3[P] = {0.75, 0.5, 0.25, 0.125, 0.0625};
    pe_geom g3 = {D, R, P, PE_PAIRING_HALF, th3};
    const pe_rotor *f = pe_rotor_cache_get(c, &g3, pos, T, pool, &pe);
    for (int k = 0; k < T * D; k++) x[k] = y[k] = pe_rng_uniform(&rng);
    if (f) pe_rotor_apply(f, x);
    pe_rope_rotate(y, T, &g3, pos, +1);
    int same = f == a;
    for (int k = 0; k < T * D; k++) same &= x[k] == y[k];
    PE_CHECK(same, "rotor cache: a rotor given back is remade for new frequencies, exactly pe_rope_rotate's");
    pe_rotor_cache_put(c, d);
    pe_rotor_cache_put(c, f);
    pe_rotor_cache_free(c);
    pe_pool_free(pool);
}

static void test_uncomp_errors(void)
{
    pe_err e = {0};
    double x[24];
    size_t bad = 99;
    memcpy(x, TV, sizeof x);
    /* Row 3 := the mean of the others makes it the mean of all six. */
    for (int d = 0; d < 4; d++) {
        double s = 0;
        for (int m = 0; m < 6; m++)
            if (m != 3) s += TV[m][d];
        x[3 * 4 + d] = s / 5;
    }
    int rc = pe_entropy_prepare(x, 6, 4, PE_PREP_UNCOMP, &bad, &e);
    PE_CHECK(rc == -1 && bad == 3 && strncmp(e.msg, "token 3: ", 9) == 0 && e.kind == PE_ERRK_DATA,
             "uncomp: a token equal to the mean is an error naming token 3");
    memcpy(x, TV, sizeof x);
    rc = pe_entropy_prepare(x, 1, 4, PE_PREP_UNCOMP, &bad, &e);
    PE_CHECK(rc == -1 && bad == 0 && strncmp(e.msg, "token 0: ", 9) == 0, "uncomp: T = 1 is an error (token 0)");
    for (int k = 0; k < 24; k++) x[k] = 0.25 * (k % 4);
    rc = pe_entropy_prepare(x, 6, 4, PE_PREP_UNCOMP, &bad, &e);
    PE_CHECK(rc == -1 && bad == 0, "uncomp: every token the same is an error");
    memcpy(x, TV, sizeof x);
    rc = pe_entropy_prepare(x, 6, 4, PE_PREP_PAPER, &bad, &e);
    PE_CHECK(rc == 0 && memcmp(x, TV, sizeof x) == 0, "paper leaves the matrix as it is");
}

static void test_clamp_and_edges(void)
{
    double l[4] = {-1e-17, 0.3, 0.7, -2e-18}, s[PE_ENT_NSCORES];
    pe_entropy_sort_clamp(l, 4);
    PE_CHECK(l[0] == 0.7 && l[1] == 0.3 && l[2] == 0 && l[3] == 0 && !signbit(l[2]) && !signbit(l[3]),
             "round-off negatives are clamped to 0 and sorted last");
    pe_entropy_scores(l, 4, 4, s);
    PE_CHECK_NEAR(s[PE_ENT_SCORE], -0.7 * log(0.7) - 0.3 * log(0.3), 1e-15, "0 ln 0 = 0 in S_4");
    PE_CHECK(isfinite(s[PE_ENT_RHO]) && isfinite(s[PE_ENT_EFF_RANK]), "rho and exp(S_D) finite with zero eigenvalues");
    pe_entropy_scores(l, 4, 100, s);
    PE_CHECK_NEAR(s[PE_ENT_SCORE], s[PE_ENT_FULL], 0, "r > D is r = D");
    pe_entropy_scores(l, 4, 0, s);
    PE_CHECK_NEAR(s[PE_ENT_SCORE], -0.7 * log(0.7), 1e-15, "r < 1 is r = 1");

    /* A rank-deficient Gram (a column repeated, a zero column). */
    pe_err e = {0};
    double x[6 * 5], G[25], w[25], lam[5];
    for (int m = 0; m < 6; m++) {
        for (int d = 0; d < 4; d++) x[m * 5 + d] = TV[m][d];
        x[m * 5 + 3] = x[m * 5 + 0];
        x[m * 5 + 4] = 0;
    }
    pe_entropy_gram(x, 6, 5, G);
    int ok = pe_entropy_spectrum(G, 5, lam, w, &e) == 0, nonneg = 1;
    double sum = 0;
    for (int i = 0; i < 5; i++) nonneg &= lam[i] >= 0 && !signbit(lam[i]), sum += lam[i];
    pe_entropy_scores(lam, 5, 5, s);
    PE_CHECK(ok && nonneg && fabs(sum - 1) < 1e-14 && lam[3] < 1e-15 && lam[4] < 1e-15 && isfinite(s[PE_ENT_FULL]),
             "a singular Gram: eigenvalues >= 0, two of them 0, scores finite");

    /* An all-zero head has no spectrum. */
    double z[12] = {0}, zs[PE_ENT_NSCORES], zb[3];
    ok = lib_head(z, 3, 4, 2, PE_PAIRING_HALF, NULL, NULL, PE_PREP_PAPER, 2, zs, zb, &e) == 0;
    PE_CHECK(ok && isnan(zs[PE_ENT_SCORE]) && isnan(zs[PE_ENT_EFF_RANK]) && isnan(zb[2]), "an all-zero head: nan scores");
    /* D = 1: S_r / ln D is nan. */
    double one[3] = {1, 2, 3};
    ok = lib_head(one, 3, 1, 0, PE_PAIRING_HALF, NULL, NULL, PE_PREP_PAPER, 1, zs, NULL, &e) == 0;
    PE_CHECK(ok && zs[PE_ENT_SCORE] == 0 && isnan(zs[PE_ENT_NORM]) && zs[PE_ENT_LAMBDA1] == 1, "D = 1: S = 0, norm nan");
}

static void test_gram_and_spectrum(void)
{
    enum { T = 1000, D = 37 };
    pe_rng rng = {3};
    static double x[T * D], G[D * D], Gr[D * D], w[D * D], l[D], lr[D];
    for (int k = 0; k < T * D; k++) x[k] = pe_rng_uniform(&rng) + (k % D == 2 ? 2.0 : 0.0);
    pe_entropy_gram(x, T, D, G);
    ref_gram(x, T, D, Gr);
    double worst = 0;
    for (int k = 0; k < D * D; k++) worst = fmax(worst, fabs(G[k] - Gr[k]) / fmax(1, fabs(Gr[k])));
    pe_test_report(worst < 1e-12, "dsyrk Gram (both triangles) equals the loops (T 1000, D 37)", "differs by %.3g", worst);
    pe_err e = {0};
    pe_entropy_spectrum(G, D, l, w, &e);
    double tr = 0;
    for (int i = 0; i < D; i++) tr += Gr[i * D + i];
    for (int k = 0; k < D * D; k++) Gr[k] /= tr;
    ref_jacobi(Gr, D, lr);
    pe_test_report(max_diff(l, lr, D) < 1e-13, "dsyevd eigenvalues equal the Jacobi reference (D 37)", "differ by %.3g",
                   max_diff(l, lr, D));
    int desc = 1;
    for (int i = 1; i < D; i++) desc &= l[i] <= l[i - 1];
    PE_CHECK(desc, "eigenvalues come sorted descending");
}

static void test_pool_and_rank(void)
{
    double v[4] = {1e16, 1, -1e16, 3}, w[4] = {3, -1e16, 1, 1e16}, u[4] = {1, 3, 1e16, -1e16};
    double a = pe_entropy_pool_mean(v, 4), b = pe_entropy_pool_mean(w, 4), c = pe_entropy_pool_mean(u, 4);
    PE_CHECK(memcmp(&a, &b, sizeof a) == 0 && memcmp(&a, &c, sizeof a) == 0,
             "pool mean: the same bits whatever the order of the files");
    double f[3] = {0.1, 0.2, 0.3}, g[3] = {0.3, 0.1, 0.2};
    a = pe_entropy_pool_mean(f, 3);
    b = pe_entropy_pool_mean(g, 3);
    PE_CHECK(a == b && fabs(a - 0.2) < 1e-16, "pool mean of three files");
    double n[2] = {1, NAN};
    PE_CHECK(isnan(pe_entropy_pool_mean(n, 2)), "pool mean: a nan file makes a nan mean");

    pe_entropy_cand cand[] = {{1, 0, 0, 0.5}, {0, 3, 0, 0.5}, {0, 3, 1, 0.5}, {0, 1, 1, 0.2},
                              {2, 0, 0, NAN}, {0, 0, 0, 0.9}, {0, 2, 0, 0.5}};
    size_t order[7], k = 0;
    pe_err e = {0};
    pe_entropy_rank(cand, 7, 0, 100, order, &k, &e);
    size_t want_asc[6] = {3, 6, 1, 2, 0, 5};
    PE_CHECK(k == 6 && memcmp(order, want_asc, sizeof want_asc) == 0,
             "rank asc: ties by layer, head, then q before k; nan left out");
    pe_entropy_rank(cand, 7, 1, 3, order, &k, &e);
    size_t want_desc[3] = {5, 6, 1};
    PE_CHECK(k == 3 && memcmp(order, want_desc, sizeof want_desc) == 0, "rank desc, top 3: ties still by layer, head");
}

/* The pooled numbers of a head over three files, by hand: the mean of each
 * column, a nan file making its column nan. */
static void test_pool_files(void)
{
    const double v[3 * 2] = {1, 10, 3, 30, 2, NAN};
    double tmp[3], out[2];
    pe_entropy_pool_files(v, 3, 2, tmp, out);
    PE_CHECK(out[0] == 2 && isnan(out[1]), "pool files: (1 + 3 + 2) / 3 = 2; a nan in a column makes it nan");
}

/* select's ranking of mask heads: the order worked out by hand from the
 * rule (score, then layer, head, q before k; nan out), each head moving
 * whole (its kv_head tags it). */
static void test_mask_rank(void)
{
    static const double th[1] = {0.5};
    const double sc[7] = {0.5, 0.5, 0.5, 0.2, NAN, 0.9, 0.5};
    const long layer[7] = {1, 0, 0, 0, 2, 0, 0};
    const int head[7] = {0, 3, 3, 1, 0, 0, 2}, tensor[7] = {0, 0, 1, 1, 0, 0, 0};
    pe_mask_head h[7];
    pe_err e = {0};
    size_t k = 0;
    for (int i = 0; i < 7; i++) h[i] = (pe_mask_head){layer[i], tensor[i], head[i], 100 + i, sc[i], th};
    int ok = pe_mask_rank(h, 7, 0, 100, &k, &e) == 0 && k == 6;
    const int want_asc[6] = {3, 6, 1, 2, 0, 5};
    for (size_t i = 0; ok && i < k; i++) ok = h[i].kv_head == 100 + want_asc[i] && h[i].theta == th;
    PE_CHECK(ok, "mask rank asc: 0.2 first, the 0.5 ties by layer, head, q before k, 0.9 last; nan left out");
    for (int i = 0; i < 7; i++) h[i] = (pe_mask_head){layer[i], tensor[i], head[i], 100 + i, sc[i], th};
    ok = pe_mask_rank(h, 7, 1, 3, &k, &e) == 0 && k == 3;
    const int want_desc[3] = {5, 6, 1};
    for (size_t i = 0; ok && i < k; i++) ok = h[i].kv_head == 100 + want_desc[i] && h[i].score == sc[want_desc[i]];
    PE_CHECK(ok, "mask rank desc, top 3: 0.9, then the 0.5 ties by layer and head");
    ok = pe_mask_rank(h, 0, 0, 8, &k, &e) == 0 && k == 0;
    PE_CHECK(ok, "mask rank: no head, none selected");
}

/* What select says of its order (man peentropy(1), The directions): S_r is
 * spikier when higher only while every lambda_i < 1/e. */
static void test_select_direction(void)
{
    char buf[512];
    pe_entropy_select_direction(PE_ENT_SCORE, 0, 0.2, buf, sizeof buf);
    PE_CHECK(strncmp(buf, "S_r, lowest first: not monotone", 31) == 0 && strstr(buf, "asc picks the flattest heads"),
             "direction: S_r ascending with lambda_1 0.2 < 1/e picks the flattest heads");
    pe_entropy_select_direction(PE_ENT_NORM, 1, 0.2, buf, sizeof buf);
    PE_CHECK(strncmp(buf, "S_r / ln D, highest first: ", 27) == 0 && strstr(buf, "desc picks the spikiest heads"),
             "direction: S_r / ln D descending with lambda_1 0.2 picks the spikiest heads");
    pe_entropy_select_direction(PE_ENT_SCORE, 0, 1 / M_E, buf, sizeof buf);
    PE_CHECK(strstr(buf, "some lambda_1 >= 1/e: S_r does not order these heads by spikiness") != NULL,
             "direction: at lambda_1 = 1/e, S_r no longer orders by spikiness");
    pe_entropy_select_direction(PE_ENT_ENERGY, 1, 0.2, buf, sizeof buf);
    PE_CHECK(strcmp(buf, "energy_r, highest first: high = spiky (the top r directions hold most of the spectrum)") == 0,
             "direction: energy_r has one direction, whatever lambda_1");
    PE_CHECK(strcmp(pe_entropy_score_label(PE_ENT_LAMBDA1), "lambda_1") == 0 &&
                 strcmp(pe_entropy_score_label(PE_ENT_FULL), "S_D") == 0 &&
                 strcmp(pe_entropy_score_direction(PE_ENT_RHO), "low = the top r eigenvalues are uneven (one dominates "
                                                                 "them)") == 0,
             "score labels and directions by PE_ENT_* index");
}

/* pe_entplan: --stage all without ntk is pre then post; every stage of one
 * head equals the loop + Jacobi reference, with the rank clamped to D. */
static void test_plan(void)
{
    enum { T = 29, D = 6, R = 4, P = 2, N = PE_ENT_NSCORES + P * PE_BAND_NVALUES };
    pe_rng rng = {13};
    double x0[T * D], x[T * D], y[T * D], theta[P] = {0.7, 0.05}, out[2 * N], want[N];
    int64_t pos[T];
    pe_err e = {0};
    pe_entplan p;
    pe_rotation spec;
    char list[32];
    for (int m = 0; m < T; m++) pos[m] = 2 * m + 1;
    make_data(&rng, T, D, R, x0, NULL);
    memcpy(x, x0, sizeof x);
    memset(&p, 0, sizeof p);
    int ok = pe_entplan_init(&p, PE_STAGE_ALL, 0, PE_PREP_PAPER, 50, D, P, 1, 1, &e) == 0;
    pe_entplan_stage_list(&p, list, sizeof list);
    PE_CHECK(ok && p.n_stages == 2 && strcmp(list, "pre post") == 0 && p.r == D && p.per_stage == N,
             "plan: stage all is pre post; rank 50 clamped to D; 7 scores and 2 x 3 band values per stage");
    ok = ok && pe_rotation_init(&spec, P, &e) == 0;
    if (ok) memcpy(spec.theta, theta, sizeof theta);
    pe_geom g = {D, R, P, PE_PAIRING_HALF, theta};
    ok = ok && pe_entplan_head(&p, 0, 0, x, y, T, &g, pos, &spec, 1, 1, NULL, out, "test", &e) == 0;
    ref_head(x0, T, D, R, 0, NULL, pos, PE_PREP_PAPER, D, want, want + PE_ENT_NSCORES);
    pe_test_report(ok && max_diff(out, want, N) < 1e-10, "plan head: the pre stage equals the reference (1e-10)",
                   "differ by %.3g", max_diff(out, want, N));
    ref_head(x0, T, D, R, 0, theta, pos, PE_PREP_PAPER, D, want, want + PE_ENT_NSCORES);
    pe_test_report(ok && max_diff(out + N, want, N) < 1e-10,
                   "plan head: the post stage equals the reference rotated by the spec's theta (1e-10)",
                   "differ by %.3g", max_diff(out + N, want, N));
    PE_CHECK(ok && max_diff(out, out + N, PE_ENT_NSCORES) > 1e-6, "plan head: the rotation changes this head's scores");
    if (ok) pe_rotation_free(&spec);
    pe_entplan_free(&p);
}

/* ================================================================ --ref */

typedef struct ref_file {
    hid_t f;
    int H, KV, D, R, P, interleaved;
    double base;
    long T;
    int64_t *pos;
    double *theta;
} ref_file;

static void die(const char *a, const char *b)
{
    fprintf(stderr, "test_entropy --ref: %s%s\n", a, b ? b : "");
    exit(2);
}

static long long attr_int(hid_t loc, const char *name, long long def, int required)
{
    long long v = def;
    if (H5Aexists(loc, name) <= 0) {
        if (required) die("missing attribute ", name);
        return v;
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_LLONG, &v) < 0) die("cannot read ", name);
    H5Aclose(a);
    return v;
}

static double attr_dbl(hid_t loc, const char *name, double def)
{
    double v = def;
    if (H5Aexists(loc, name) <= 0) return v;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) die("cannot read ", name);
    H5Aclose(a);
    return v;
}

static void attr_str(hid_t loc, const char *name, char *out, size_t len)
{
    out[0] = '\0';
    if (H5Aexists(loc, name) <= 0) return;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), ft = H5Aget_type(a), t = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(ft) > 0) {
        char *vs = NULL;
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5Tget_cset(ft));
        if (H5Aread(a, t, &vs) >= 0 && vs) {
            snprintf(out, len, "%s", vs);
            H5free_memory(vs);
        }
    } else {
        char buf[256] = "";
        H5Tset_size(t, sizeof buf - 1);
        H5Tset_strpad(t, H5T_STR_NULLTERM);
        if (H5Aread(a, t, buf) >= 0) {
            size_t n = strlen(buf) < len ? strlen(buf) : len - 1;
            memcpy(out, buf, n);
            out[n] = '\0';
        }
    }
    H5Tclose(t);
    H5Tclose(ft);
    H5Aclose(a);
}

static void ref_open(ref_file *r, const char *path)
{
    char pairing[32];
    memset(r, 0, sizeof *r);
    if ((r->f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) die("cannot open ", path);
    r->H = (int)attr_int(r->f, "n_heads", 0, 1);
    r->KV = (int)attr_int(r->f, "n_kv_heads", 0, 1);
    r->D = (int)attr_int(r->f, "head_dim", 0, 1);
    r->R = (int)attr_int(r->f, "rotary_dim", r->D, 0);
    r->P = r->R / 2;
    r->base = attr_dbl(r->f, "rope_theta", 10000.0);
    attr_str(r->f, "rope_pairing", pairing, sizeof pairing);
    r->interleaved = strcmp(pairing, "interleaved") == 0;
    /* T from any layer's q: the first group of /layers. */
    hid_t lg = H5Gopen2(r->f, "layers", H5P_DEFAULT);
    char name[64];
    if (lg < 0 || H5Lget_name_by_idx(lg, ".", H5_INDEX_NAME, H5_ITER_INC, 0, name, sizeof name, H5P_DEFAULT) < 0)
        die("no layers in ", path);
    char q[96];
    snprintf(q, sizeof q, "%s/q", name);
    hid_t d = H5Dopen2(lg, q, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t dims[3];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    r->T = (long)dims[1];
    H5Sclose(sp);
    H5Dclose(d);
    H5Gclose(lg);
    r->pos = malloc((size_t)r->T * sizeof *r->pos);
    for (long m = 0; m < r->T; m++) r->pos[m] = m;
    if (H5Lexists(r->f, "tokens", H5P_DEFAULT) > 0 && H5Lexists(r->f, "tokens/positions", H5P_DEFAULT) > 0) {
        hid_t p = H5Dopen2(r->f, "tokens/positions", H5P_DEFAULT);
        if (H5Dread(p, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->pos) < 0) die("positions of ", path);
        H5Dclose(p);
    }
    r->theta = calloc((size_t)r->P + 1, sizeof *r->theta);
    for (int i = 0; i < r->P; i++) r->theta[i] = pow(r->base, -2.0 * i / r->R);
    if (H5Lexists(r->f, "rope", H5P_DEFAULT) > 0 && H5Lexists(r->f, "rope/inv_freq", H5P_DEFAULT) > 0) {
        hid_t p = H5Dopen2(r->f, "rope/inv_freq", H5P_DEFAULT);
        H5Dread(p, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->theta);
        H5Dclose(p);
    }
}

/* The layer's theta (its own inv_freq, else the file's; 0 when rope is 0)
 * into th; returns the rope attribute. */
static int ref_layer_theta(const ref_file *r, long layer, double *th)
{
    char g[32], p[48];
    snprintf(g, sizeof g, "layers/%03ld", layer);
    hid_t gl = H5Gopen2(r->f, g, H5P_DEFAULT);
    if (gl < 0) die("no group ", g);
    int rope = (int)attr_int(gl, "rope", 1, 0);
    memcpy(th, r->theta, (size_t)r->P * sizeof *th);
    snprintf(p, sizeof p, "%s/inv_freq", g);
    if (H5Lexists(r->f, p, H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(r->f, p, H5P_DEFAULT);
        H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, th);
        H5Dclose(d);
    }
    if (!rope)
        for (int i = 0; i < r->P; i++) th[i] = 0;
    H5Gclose(gl);
    return rope;
}

static double *ref_read(const ref_file *r, long layer, int tensor, int head)
{
    char path[48];
    snprintf(path, sizeof path, "layers/%03ld/%s", layer, tensor ? "k" : "q");
    hid_t d = H5Dopen2(r->f, path, H5P_DEFAULT);
    if (d < 0) die("no dataset ", path);
    hid_t sp = H5Dget_space(d);
    hsize_t start[3] = {(hsize_t)head, 0, 0}, count[3] = {1, (hsize_t)r->T, (hsize_t)r->D};
    hid_t ms = H5Screate_simple(3, count, NULL);
    double *x = malloc((size_t)r->T * r->D * sizeof *x);
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
    if (H5Dread(d, H5T_NATIVE_DOUBLE, ms, sp, H5P_DEFAULT, x) < 0) die("cannot read ", path);
    H5Sclose(ms);
    H5Sclose(sp);
    H5Dclose(d);
    return x;
}

static int split(char *line, char **f, int max)
{
    int n = 0;
    char *s = line;
    line[strcspn(line, "\n")] = '\0';
    while (n < max) {
        f[n++] = s;
        char *t = strchr(s, '\t');
        if (!t) break;
        *t = '\0';
        s = t + 1;
    }
    return n;
}

static const char *ref_class(double th, long L)
{
    if (th == 0) return "nope";
    if (L <= 0) return "unknown";
    double rho = (double)L * th / TWO_PI;
    return rho >= 1 ? "hf" : rho >= 0.5 ? "act" : "tlf";
}

static int ref_main(int argc, char **argv)
{
    FILE *tab = fopen(argv[2], "r");
    if (!tab) die("cannot open ", argv[2]);
    int nf = argc - 3;
    ref_file *files = calloc((size_t)nf, sizeof *files);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int i = 0; i < nf; i++) ref_open(&files[i], argv[3 + i]);
    long L = 0, ntk_len = 0;
    double ntk_factor = 1;
    int kind = -1; /* 0 heads, 1 bands */
    char line[4096], *f[16], prep_meta[32] = "paper";
    long rows = 0, bad = 0;
    double worst = 0;
    /* The comment lines first: they hold the settings. */
    while (fgets(line, sizeof line, tab)) {
        if (sscanf(line, "# train_len: %ld", &L) == 1) continue;
        if (sscanf(line, "# ntk_len: %ld", &ntk_len) == 1) continue;
        if (sscanf(line, "# ntk_factor: %lf", &ntk_factor) == 1) continue;
        if (sscanf(line, "# prep: %31s", prep_meta) == 1) continue;
    }
    rewind(tab);
    while (fgets(line, sizeof line, tab)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (kind < 0) {
            static const char heads_hdr[] = "layer\thead\tkv_head\ttensor\tstage\tprep\tr\tscore\t";
            static const char bands_hdr[] = "layer\thead\tkv_head\ttensor\tstage\tband\ttheta\tclass\t";
            kind = strncmp(line, heads_hdr, strlen(heads_hdr)) == 0   ? 0
                   : strncmp(line, bands_hdr, strlen(bands_hdr)) == 0 ? 1
                                                                        : -2;
            if (kind == -2) die("not a heads or bands table: ", argv[2]);
            continue;
        }
        int n = split(line, f, 16);
        if (n != (kind == 0 ? 14 : 11)) die("a row with the wrong number of columns in ", argv[2]);
        long layer = atol(f[0]);
        int head = atoi(f[1]), kv = atoi(f[2]), tensor = strcmp(f[3], "k") == 0;
        const char *stage = f[4];
        int r = kind == 0 ? atoi(f[6]) : 0;
        /* The bands table has no prep column: it is in the comment lines. */
        pe_prep prep = strcmp(kind == 0 ? f[5] : prep_meta, "uncomp") == 0 ? PE_PREP_UNCOMP : PE_PREP_PAPER;
        double want[PE_ENT_NSCORES] = {0}, wantb[3] = {0}, th_stage = 0;
        int band = kind == 1 ? atoi(f[5]) : -1;
        for (int i = 0; i < nf; i++) {
            const ref_file *rf = &files[i];
            double th[64], s[7], *bands = calloc((size_t)rf->P * 3 + 1, sizeof *bands);
            int rope = ref_layer_theta(rf, layer, th);
            if (strcmp(stage, "ntk") == 0 && rope) {
                double b = rf->base;
                if (ntk_len > L) b = rf->base * pow(ntk_factor * ntk_len / (double)L - (ntk_factor - 1), rf->R / (rf->R - 2.0));
                for (int k = 0; k < rf->P; k++) th[k] = pow(b, -2.0 * k / rf->R);
            }
            if (i == 0 && band >= 0) th_stage = th[band];
            double *x = ref_read(rf, layer, tensor, tensor ? kv : head);
            ref_head(x, rf->T, rf->D, rf->R, rf->interleaved, strcmp(stage, "pre") == 0 ? NULL : th, rf->pos, prep,
                     r ? r : rf->D, s, bands);
            for (int k = 0; k < PE_ENT_NSCORES; k++) want[k] += s[k] / nf;
            if (band >= 0)
                for (int k = 0; k < 3; k++) wantb[k] += bands[band * 3 + k] / nf;
            free(x);
            free(bands);
        }
        rows++;
        int row_bad = 0;
        const double *w = kind == 0 ? want : wantb;
        int first = kind == 0 ? 7 : 8, count = kind == 0 ? 7 : 3;
        for (int k = 0; k < count; k++) {
            double got = strtod(f[first + k], NULL), d = fabs(got - w[k]) / fmax(1, fabs(w[k]));
            if (!(d <= 1e-9)) row_bad = 1;
            if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
        }
        if (kind == 1) {
            double got = strtod(f[6], NULL);
            if (!(fabs(got - th_stage) <= 1e-12 * fmax(1e-300, fabs(th_stage))) && !(got == 0 && th_stage == 0)) row_bad = 1;
            if (strcmp(f[7], ref_class(th_stage, L)) != 0) row_bad = 1;
        }
        if (row_bad && bad++ < 5) {
            printf("row %ld (layer %ld head %d %s %s%s%s) differs:", rows, layer, head, f[3], stage,
                   kind ? " band " : "", kind ? f[5] : "");
            for (int k = 0; k < count; k++) printf(" %s/%.12g", f[first + k], w[k]);
            printf("\n");
        }
    }
    fclose(tab);
    for (int i = 0; i < nf; i++) {
        H5Fclose(files[i].f);
        free(files[i].pos);
        free(files[i].theta);
    }
    free(files);
    printf("%ld rows checked against the reference, %ld differ, largest relative difference %.3g\n", rows, bad, worst);
    return rows > 0 && bad == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--ref") == 0) return ref_main(argc, argv);
    if (argc != 2) {
        fprintf(stderr, "usage: test_entropy DIR | test_entropy --ref TABLE FILE...\n");
        return 2;
    }
    test_vectors();
    test_cone();
    test_band_formula();
    test_pairing_and_reference();
    test_rotation_cannot_matter();
    test_rotor();
    test_uncomp_errors();
    test_clamp_and_edges();
    test_gram_and_spectrum();
    test_pool_and_rank();
    test_pool_files();
    test_mask_rank();
    test_select_direction();
    test_plan();
    return pe_test_done();
}
