/* test_decomp.c: the per-component decomposition (man pedecomp(1), The decomposition) and
 * its summary (section 3).  Every number is checked against a computation
 * written here from the definitions: rotate q and k explicitly at their
 * positions and take dot products over all causal pairs (O(T^2)), or a closed
 * form, or a hand-worked value. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe_decomp.h"
#include "pe_test.h"

static const double PI = 3.141592653589793238462643383279;

/* ---- the reference ---- */

typedef struct {
    int P;
    size_t nd;
    double *sum; /* (P + 2) x nd */
    double *count;
    double *mag;
} ref_t;

static void ref_init(ref_t *r, int P, size_t nd)
{
    r->P = P;
    r->nd = nd;
    r->sum = calloc((size_t)(P + 2) * nd, sizeof *r->sum);
    r->count = calloc(nd, sizeof *r->count);
    r->mag = calloc((size_t)P + 1, sizeof *r->mag);
    if (!r->sum || !r->count || !r->mag) {
        fprintf(stderr, "test_decomp: out of memory\n");
        exit(2);
    }
}

static void ref_free(ref_t *r)
{
    free(r->sum);
    free(r->count);
    free(r->mag);
}

/* The pair layout as man qkdump(5) states it. */
static void ref_dims(int half, int R, int i, int *a, int *b)
{
    if (half) {
        *a = i;
        *b = i + R / 2;
    } else {
        *a = 2 * i;
        *b = 2 * i + 1;
    }
}

/* Adds one head: rotated vectors, then per-pair, pass and full dot products
 * over every causal pair n <= m. */
static void ref_add(ref_t *r, size_t T, int D, int R, int half, const double *theta,
                    const double *q, const double *k, const int64_t *pos, double s)
{
    const int P = R / 2;
    double *qr = malloc(T * (size_t)D * sizeof *qr), *kr = malloc(T * (size_t)D * sizeof *kr);
    long double *mag = calloc((size_t)P + 1, sizeof *mag);
    if (!qr || !kr || !mag) exit(2);
    memcpy(qr, q, T * (size_t)D * sizeof *qr);
    memcpy(kr, k, T * (size_t)D * sizeof *kr);
    for (size_t m = 0; m < T; m++) {
        for (int i = 0; i < P; i++) {
            int a, b;
            ref_dims(half, R, i, &a, &b);
            double ang = (double)pos[m] * theta[i], c = cos(ang), sn = sin(ang);
            double *x = qr + m * D, *y = kr + m * D;
            double xa = x[a], xb = x[b], ya = y[a], yb = y[b];
            x[a] = xa * c - xb * sn;
            x[b] = xa * sn + xb * c;
            y[a] = ya * c - yb * sn;
            y[b] = ya * sn + yb * c;
        }
    }
    for (size_t m = 0; m < T; m++) {
        for (size_t n = 0; n <= m; n++) {
            size_t d = (size_t)(pos[m] - pos[n]);
            const double *x = qr + m * D, *y = kr + n * D;
            r->count[d] += 1;
            for (int i = 0; i < P; i++) {
                int a, b;
                ref_dims(half, R, i, &a, &b);
                r->sum[(size_t)i * r->nd + d] += s * (x[a] * y[a] + x[b] * y[b]);
                mag[i] += (long double)hypot(q[m * D + a], q[m * D + b]) *
                          hypot(k[n * D + a], k[n * D + b]);
            }
            double pass = 0, full = 0;
            for (int j = R; j < D; j++) pass += x[j] * y[j];
            for (int j = 0; j < D; j++) full += x[j] * y[j];
            r->sum[(size_t)P * r->nd + d] += s * pass;
            r->sum[(size_t)(P + 1) * r->nd + d] += s * full;
        }
    }
    for (int i = 0; i < P; i++) r->mag[i] += (double)mag[i];
    free(qr);
    free(kr);
    free(mag);
}

/* ---- comparing ---- */

/* Worst |got - want| / max|want| over the rows' means, and whether the
 * counts agree exactly and distances without pairs stayed 0. */
static void compare(const pe_profile *p, const ref_t *r, const char *tag)
{
    char what[256];
    int counts_ok = p->n_dist == r->nd, empty_ok = 1;
    for (size_t d = 0; counts_ok && d < r->nd; d++) counts_ok = p->count[d] == r->count[d];
    snprintf(what, sizeof what, "%s: pair counts per distance exact", tag);
    PE_CHECK(counts_ok, what);
    if (!counts_ok) return;

    double worst = 0;
    int worst_row = -1;
    for (int row = 0; row < r->P + 2; row++) {
        const double *g = p->sum + (size_t)row * r->nd, *w = r->sum + (size_t)row * r->nd;
        double mx = 0, err = 0;
        for (size_t d = 0; d < r->nd; d++) {
            if (r->count[d] == 0) {
                empty_ok &= g[d] == 0;
                continue;
            }
            mx = fmax(mx, fabs(w[d] / r->count[d]));
            err = fmax(err, fabs(g[d] / r->count[d] - w[d] / r->count[d]));
        }
        double rel = mx > 0 ? err / mx : (err > 0 ? INFINITY : 0);
        if (rel > worst || worst_row < 0) worst = rel, worst_row = row;
    }
    snprintf(what, sizeof what, "%s: every component and distance within 1e-9 of max|C|", tag);
    pe_test_report(worst <= 1e-9, what, "worst relative error %.3g in row %d", worst, worst_row);
    snprintf(what, sizeof what, "%s: distances without pairs untouched", tag);
    PE_CHECK(empty_ok, what);

    /* Identity: the code's components add up to the reference full logit. */
    const double *F = r->sum + (size_t)(r->P + 1) * r->nd;
    double mx = 0, err = 0;
    for (size_t d = 0; d < r->nd; d++) {
        if (r->count[d] == 0) continue;
        double s = 0;
        for (int row = 0; row <= r->P; row++) s += p->sum[(size_t)row * r->nd + d];
        mx = fmax(mx, fabs(F[d] / r->count[d]));
        err = fmax(err, fabs(s / r->count[d] - F[d] / r->count[d]));
    }
    snprintf(what, sizeof what, "%s: sum_i C_i + C_pass == reference full logit", tag);
    pe_test_report(err <= 1e-9 * mx, what, "error %.3g, max|F| %.3g", err, mx);

    double merr = 0;
    for (int i = 0; i < r->P; i++)
        merr = fmax(merr, fabs(p->mag[i] - r->mag[i]) / fmax(r->mag[i], 1e-300));
    snprintf(what, sizeof what, "%s: magnitude sums equal the direct definition", tag);
    pe_test_report(merr <= 1e-12, what, "worst relative error %.3g", merr);
}

/* ---- data ---- */

static void random_head(pe_rng *rng, size_t T, int D, double *q, double *k)
{
    for (size_t j = 0; j < T * (size_t)D; j++) {
        q[j] = pe_rng_uniform(rng);
        k[j] = pe_rng_uniform(rng);
    }
    /* A bias dimension, as real keys have: low-frequency pairs then carry a
     * large near-constant part. */
    for (size_t m = 0; m < T; m++) {
        q[m * D + D / 2] += 2.0;
        k[m * D + 1] += 3.0;
    }
}

static void thetas(int R, double *theta, int with_zero)
{
    for (int i = 0; i < R / 2; i++) theta[i] = pow(10000.0, -2.0 * i / R);
    if (with_zero && R / 2 > 1) theta[R / 2 - 1] = 0; /* a NoPE pair */
}

static const char *mname(pe_method m)
{
    return m == PE_METHOD_FFT ? "fft" : "direct";
}

/* ---- tests ---- */

/* Constant query and key vectors: C_i(delta) = s |zq||zk| cos(delta theta_i +
 * arg zq - arg zk) exactly, at every distance. */
static void test_closed_form(pe_method method)
{
    const size_t T = 257;
    const int D = 12, R = 8, P = 4;
    const double s = 0.125;
    double theta[4] = {1.0, 0.3, 0.01, 0.0};
    double qv[12], kv[12];
    pe_rng rng = {42};
    for (int j = 0; j < D; j++) qv[j] = pe_rng_uniform(&rng), kv[j] = pe_rng_uniform(&rng);
    double *q = malloc(T * D * sizeof *q), *k = malloc(T * D * sizeof *k);
    int64_t *pos = malloc(T * sizeof *pos);
    for (size_t m = 0; m < T; m++) {
        memcpy(q + m * D, qv, sizeof qv);
        memcpy(k + m * D, kv, sizeof kv);
        pos[m] = (int64_t)m + 7;
    }
    pe_geom g = {D, R, P, PE_PAIRING_HALF, theta};
    pe_head_input in = {T, q, k, pos, s, 1};
    pe_profile p;
    pe_err e;
    int rc = pe_profile_init(&p, P, T, &e);
    if (rc == 0) rc = pe_profile_add(&p, &in, &g, method, &e);
    char what[160];
    snprintf(what, sizeof what, "%s closed form: add succeeds", mname(method));
    pe_test_report(rc == 0, what, "%s", e.msg);
    if (rc != 0) return;

    double worst = 0, pass = 0, wtot = 0;
    for (int j = R; j < D; j++) pass += s * qv[j] * kv[j];
    for (size_t d = 0; d < T; d++) {
        double tot = 0, amp_tot = fabs(pass);
        for (int i = 0; i < P; i++) {
            double amp = s * hypot(qv[i], qv[i + P]) * hypot(kv[i], kv[i + P]);
            double want = amp * cos((double)d * theta[i] + atan2(qv[i + P], qv[i]) -
                                    atan2(kv[i + P], kv[i]));
            double got = p.sum[(size_t)i * T + d] / p.count[d];
            worst = fmax(worst, fabs(got - want) / amp);
            tot += want;
            amp_tot += amp;
        }
        worst = fmax(worst, fabs(p.sum[(size_t)P * T + d] / p.count[d] - pass) / fabs(pass));
        tot += pass;
        wtot = fmax(wtot, fabs(p.sum[(size_t)(P + 1) * T + d] / p.count[d] - tot) / amp_tot);
    }
    snprintf(what, sizeof what, "%s closed form: C_i = s|zq||zk|cos(delta theta + arg zq - arg zk) to 1e-12",
             mname(method));
    pe_test_report(worst <= 1e-12, what, "worst relative error %.3g", worst);
    snprintf(what, sizeof what, "%s closed form: total to 1e-12", mname(method));
    pe_test_report(wtot <= 1e-12, what, "worst relative error %.3g", wtot);
    pe_profile_free(&p);
    free(q);
    free(k);
    free(pos);
}

/* Random data against the reference, for every size, layout and method. */
static void test_random(void)
{
    const size_t Ts[] = {1, 2, 7, 64, 300};
    const int Rs[] = {8, 10, 0};
    const int D = 10;
    pe_rng rng = {12345};
    for (size_t it = 0; it < sizeof Ts / sizeof *Ts; it++) {
        size_t T = Ts[it];
        double *q = malloc(T * D * sizeof *q), *k = malloc(T * D * sizeof *k);
        int64_t *pos = malloc(T * sizeof *pos);
        for (size_t m = 0; m < T; m++) pos[m] = 100 + (int64_t)m;
        for (size_t ir = 0; ir < sizeof Rs / sizeof *Rs; ir++) {
            int R = Rs[ir], P = R / 2;
            double theta[8];
            thetas(R, theta, R == 10);
            random_head(&rng, T, D, q, k);
            for (int half = 0; half <= 1; half++) {
                ref_t ref;
                size_t nd = T + 3; /* a few distances no head reaches */
                ref_init(&ref, P, nd);
                ref_add(&ref, T, D, R, half, theta, q, k, pos, 0.3);
                for (int mi = 0; mi < 2; mi++) {
                    pe_method method = mi ? PE_METHOD_DIRECT : PE_METHOD_FFT;
                    pe_geom g = {D, R, P, half ? PE_PAIRING_HALF : PE_PAIRING_INTERLEAVED,
                                 P ? theta : NULL};
                    pe_head_input in = {T, q, k, pos, 0.3, 1};
                    pe_profile p;
                    pe_err e;
                    char tag[128];
                    snprintf(tag, sizeof tag, "%s T=%zu D=%d R=%d %s p0=100", mname(method), T, D, R,
                             half ? "half" : "interleaved");
                    int rc = pe_profile_init(&p, P, nd, &e);
                    if (rc == 0) rc = pe_profile_add(&p, &in, &g, method, &e);
                    char what[200];
                    snprintf(what, sizeof what, "%s: add succeeds", tag);
                    pe_test_report(rc == 0, what, "%s", e.msg);
                    if (rc == 0) compare(&p, &ref, tag);
                    pe_profile_free(&p);
                }
                ref_free(&ref);
            }
        }
        free(q);
        free(k);
        free(pos);
    }
}

/* Non-contiguous positions fall back to the direct sum, whatever the method. */
static void test_noncontiguous(void)
{
    const int D = 10, R = 8, P = 4;
    const size_t T = 40;
    double theta[4];
    thetas(R, theta, 0);
    int64_t pos[40];
    pe_rng rng = {777};
    int64_t x = 0;
    static const int64_t first[] = {0, 2, 3, 7};
    for (size_t m = 0; m < T; m++) {
        pos[m] = m < 4 ? first[m] : (x += 1 + (int64_t)(pe_rng_next(&rng) % 4));
        if (m == 3) x = 7;
    }
    double *q = malloc(T * D * sizeof *q), *k = malloc(T * D * sizeof *k);
    random_head(&rng, T, D, q, k);
    size_t nd = (size_t)(pos[T - 1] - pos[0]) + 1;
    PE_CHECK_INT(pe_head_max_distance(T, pos), nd - 1, "max distance = pos[T-1] - pos[0]");
    for (int mi = 0; mi < 2; mi++) {
        pe_method method = mi ? PE_METHOD_DIRECT : PE_METHOD_FFT;
        for (int half = 0; half <= 1; half++) {
            ref_t ref;
            ref_init(&ref, P, nd);
            ref_add(&ref, T, D, R, half, theta, q, k, pos, 1.0 / 3.0);
            pe_geom g = {D, R, P, half ? PE_PAIRING_HALF : PE_PAIRING_INTERLEAVED, theta};
            pe_head_input in = {T, q, k, pos, 1.0 / 3.0, 0};
            pe_profile p;
            pe_err e;
            char tag[128], what[200];
            snprintf(tag, sizeof tag, "%s positions 0,2,3,7,... %s", mname(method),
                     half ? "half" : "interleaved");
            int rc = pe_profile_init(&p, P, nd, &e);
            if (rc == 0) rc = pe_profile_add(&p, &in, &g, method, &e);
            snprintf(what, sizeof what, "%s: add succeeds", tag);
            pe_test_report(rc == 0, what, "%s", e.msg);
            if (rc == 0) compare(&p, &ref, tag);
            pe_profile_free(&p);
            ref_free(&ref);
        }
    }
    free(q);
    free(k);
}

/* Two heads of different T (and offsets) pooled into one profile. */
static void test_pooling(void)
{
    const int D = 12, R = 10, P = 5;
    double theta[5];
    thetas(R, theta, 0);
    const size_t T1 = 64, T2 = 37;
    pe_rng rng = {99};
    double *q1 = malloc(T1 * D * sizeof *q1), *k1 = malloc(T1 * D * sizeof *k1);
    double *q2 = malloc(T2 * D * sizeof *q2), *k2 = malloc(T2 * D * sizeof *k2);
    int64_t pos1[64], pos2[37];
    for (size_t m = 0; m < T1; m++) pos1[m] = (int64_t)m;
    for (size_t m = 0; m < T2; m++) pos2[m] = 1000 + (int64_t)m;
    random_head(&rng, T1, D, q1, k1);
    random_head(&rng, T2, D, q2, k2);
    for (int mi = 0; mi < 2; mi++) {
        pe_method method = mi ? PE_METHOD_DIRECT : PE_METHOD_FFT;
        ref_t ref;
        ref_init(&ref, P, 80);
        ref_add(&ref, T1, D, R, 0, theta, q1, k1, pos1, 0.5);
        ref_add(&ref, T2, D, R, 0, theta, q2, k2, pos2, 0.25);
        pe_geom g = {D, R, P, PE_PAIRING_INTERLEAVED, theta};
        pe_head_input in1 = {T1, q1, k1, pos1, 0.5, 1}, in2 = {T2, q2, k2, pos2, 0.25, 1};
        pe_profile p;
        pe_err e;
        char tag[128], what[200];
        snprintf(tag, sizeof tag, "%s pooled heads T=64 and T=37", mname(method));
        int rc = pe_profile_init(&p, P, 80, &e);
        if (rc == 0) rc = pe_profile_add(&p, &in1, &g, method, &e);
        if (rc == 0) rc = pe_profile_add(&p, &in2, &g, method, &e);
        snprintf(what, sizeof what, "%s: both adds succeed", tag);
        pe_test_report(rc == 0, what, "%s", e.msg);
        if (rc == 0) compare(&p, &ref, tag);
        pe_profile_free(&p);
        ref_free(&ref);
    }
    free(q1);
    free(k1);
    free(q2);
    free(k2);
}

static void test_errors(void)
{
    const int D = 4, R = 4, P = 2;
    double theta[2] = {1.0, 0.1};
    double q[4 * 7], k[4 * 7];
    pe_rng rng = {5};
    for (int j = 0; j < 28; j++) q[j] = pe_rng_uniform(&rng), k[j] = pe_rng_uniform(&rng);
    int64_t pos[7] = {0, 1, 2, 3, 4, 5, 6};
    pe_geom g = {D, R, P, PE_PAIRING_HALF, theta};
    pe_profile p;
    pe_err e = {0, ""};
    if (pe_profile_init(&p, P, 5, &e) != 0) {
        PE_CHECK(0, "init for error tests");
        return;
    }
    for (int mi = 0; mi < 2; mi++) {
        pe_method method = mi ? PE_METHOD_DIRECT : PE_METHOD_FFT;
        char what[160];
        pe_head_input in = {7, q, k, pos, 1.0, 1};
        e.msg[0] = 0;
        int rc = pe_profile_add(&p, &in, &g, method, &e);
        snprintf(what, sizeof what, "%s: distance 6 with n_dist 5 is an error", mname(method));
        pe_test_report(rc == -1 && e.msg[0], what, "rc %d, msg '%s'", rc, e.msg);
        int64_t gap[3] = {0, 2, 5};
        pe_head_input in2 = {3, q, k, gap, 1.0, 0};
        rc = pe_profile_add(&p, &in2, &g, method, &e);
        snprintf(what, sizeof what, "%s: non-contiguous distance 5 with n_dist 5 is an error",
                 mname(method));
        PE_CHECK(rc == -1, what);
    }
    int untouched = 1;
    for (size_t j = 0; j < (size_t)(P + 2) * 5; j++) untouched &= p.sum[j] == 0;
    for (size_t d = 0; d < 5; d++) untouched &= p.count[d] == 0;
    for (int i = 0; i < P; i++) untouched &= p.mag[i] == 0;
    PE_CHECK(untouched, "a failed add leaves the profile unchanged");

    int64_t down[3] = {0, 2, 1};
    pe_head_input in3 = {3, q, k, down, 1.0, 0};
    PE_CHECK(pe_profile_add(&p, &in3, &g, PE_METHOD_FFT, &e) == -1, "decreasing positions: error");
    int64_t gap[3] = {0, 1, 3};
    pe_head_input in4 = {3, q, k, gap, 1.0, 1};
    PE_CHECK(pe_profile_add(&p, &in4, &g, PE_METHOD_FFT, &e) == -1,
             "positions flagged contiguous but with a gap: error");
    pe_geom g3 = {D, R, 3, PE_PAIRING_HALF, theta};
    pe_head_input in5 = {3, q, k, pos, 1.0, 1};
    PE_CHECK(pe_profile_add(&p, &in5, &g3, PE_METHOD_FFT, &e) == -1, "pair count mismatch: error");
    double qn[12];
    memcpy(qn, q, sizeof qn);
    qn[5] = NAN;
    pe_head_input in6 = {3, qn, k, pos, 1.0, 1};
    PE_CHECK(pe_profile_add(&p, &in6, &g, PE_METHOD_FFT, &e) == -1, "NaN in the query: error");
    pe_head_input in7 = {0, q, k, pos, 1.0, 1};
    PE_CHECK(pe_profile_add(&p, &in7, &g, PE_METHOD_FFT, &e) == 0, "T = 0 adds nothing");
    pe_profile_free(&p);
    PE_CHECK(p.sum == NULL && p.count == NULL && p.mag == NULL, "free clears the profile");
    pe_profile_free(&p); /* twice is harmless */
    PE_CHECK(pe_profile_init(&p, 2, 0, &e) == -1, "init with no distances: error");
    pe_profile_free(&p);
}

static void test_angle_ood(void)
{
    /* theta = pi/4, L = 4: trained arc [0, 3pi/4].  delta 4..11 give angles
     * pi, 5pi/4, 3pi/2, 7pi/4 (outside), 0, pi/4, pi/2, 3pi/4 (inside, the
     * last on the closed end): 4 of 8. */
    PE_CHECK_NEAR(pe_angle_ood(PI / 4, 4, 11), 0.5, 0, "theta pi/4, L 4, delta 4..11: 4 of 8 outside");
    PE_CHECK_NEAR(pe_angle_ood(PI / 4, 4, 7), 1.0, 0, "theta pi/4, L 4, delta 4..7: all outside");
    PE_CHECK_NEAR(pe_angle_ood(PI / 4, 4, 8), 0.8, 0, "theta pi/4, L 4, delta 4..8: 4 of 5 (2pi is 0)");
    /* theta = pi/2, L = 2: arc [0, pi/2]; delta 2..9: pi, 3pi/2 out, 0, pi/2 in, ... */
    PE_CHECK_NEAR(pe_angle_ood(PI / 2, 2, 9), 0.5, 0, "theta pi/2, L 2, delta 2..9: 4 of 8");
    /* theta = 1 rad, L = 3: arc [0, 2]; delta 3..10 -> 3,4,5,6 out; 7-2pi=0.72,
     * 8-2pi=1.72 in; 9-2pi=2.72, 10-2pi=3.72 out: 6 of 8. */
    PE_CHECK_NEAR(pe_angle_ood(1.0, 3, 10), 0.75, 0, "theta 1, L 3, delta 3..10: 6 of 8");
    PE_CHECK_NEAR(pe_angle_ood(1.0, 8, 100), 0.0, 0, "(L-1) theta >= 2pi: whole circle trained");
    PE_CHECK_NEAR(pe_angle_ood(0.0, 4, 100), 0.0, 0, "theta 0: arc [0,0], every angle 0: none");
    PE_CHECK_NEAR(pe_angle_ood(0.5, 10, 9), 0.0, 0, "dmax < L: 0");
    /* A slow pair: theta = 2pi/100, L = 10: arc [0, 9 turns/100]; delta 10..99
     * are at 10/100 .. 99/100 of a turn: all outside; delta 100..109 at
     * 0 .. 9/100: inside.  90 of 100. */
    PE_CHECK_NEAR(pe_angle_ood(2 * PI / 100, 10, 109), 0.9, 0, "theta 2pi/100, L 10, delta 10..109: 90 of 100");
}

static void test_value_ood(void)
{
    /* L 3: C in-train = 1, 3, 2 (lo 1, hi 3, W 2); beyond: 4 (1 above), 0.5
     * (0.5 below), 2.5 (inside) -> E = 1/2.  Counts vary: the means count. */
    double cnt[6] = {6, 5, 4, 3, 2, 1};
    double c[6] = {1, 3, 2, 4, 0.5, 2.5}, s[6];
    for (int d = 0; d < 6; d++) s[d] = c[d] * cnt[d];
    double lo = 0, hi = 0;
    PE_CHECK_NEAR(pe_value_ood(s, cnt, 6, 3, 1, &lo, &hi, NULL), 0.5, 1e-15, "value OOD: E = 1/2");
    PE_CHECK_NEAR(lo, 1.0, 1e-15, "value OOD: lo = 1");
    PE_CHECK_NEAR(hi, 3.0, 1e-15, "value OOD: hi = 3");
    /* No distance with pairs reaches L. */
    double cnt2[6] = {6, 5, 4, 0, 0, 0};
    PE_CHECK_NEAR(pe_value_ood(s, cnt2, 6, 3, 1, &lo, &hi, NULL), 0.0, 0, "value OOD: no pairs beyond L -> 0");
    PE_CHECK_NEAR(pe_value_ood(s, cnt, 6, 6, 1, &lo, &hi, NULL), 0.0, 0, "value OOD: L = n_dist -> 0");
    PE_CHECK_NEAR(hi, 4.0, 1e-15, "value OOD: L = n_dist, hi over all");
    /* A distance with no pairs inside L is not part of the range. */
    double cnt3[6] = {6, 0, 4, 3, 2, 1};
    PE_CHECK_NEAR(pe_value_ood(s, cnt3, 6, 3, 1, &lo, &hi, NULL), 2.0, 1e-15, "value OOD: empty distance skipped");
    PE_CHECK_NEAR(hi, 2.0, 0, "value OOD: hi without the empty distance");
    /* W floor: flat in-train curve at 5, beyond 5 + 1e-10: W = 5e-12 -> E ~ 20. */
    double sf[4] = {5, 5, 5, 5 + 1e-10}, cf[4] = {1, 1, 1, 1};
    PE_CHECK_REL(pe_value_ood(sf, cf, 4, 3, 1, &lo, &hi, NULL), (sf[3] - 5) / 5e-12, 1e-12,
                 "value OOD: W floored at 1e-12 |hi|");
    /* |hi| < 1: the floor is 1e-12 itself. */
    double sg[4] = {0.25, 0.25, 0.25, 0.25 - 1e-13};
    PE_CHECK_REL(pe_value_ood(sg, cf, 4, 3, 1, &lo, &hi, NULL), (0.25 - sg[3]) / 1e-12, 1e-12,
                 "value OOD: W floored at 1e-12 when |hi| < 1");
    double cz[4] = {0, 0, 0, 1};
    PE_CHECK(isnan(pe_value_ood(sg, cz, 4, 3, 1, &lo, &hi, NULL)) && isnan(lo) && isnan(hi),
             "value OOD: no pairs in training -> lo, hi, E NaN");
    /* At least min_pairs pairs: with 3, distance 3 (3 pairs, value 4) sets E =
     * 1/2 over one distance; with 2, distance 4 (0.5, 2 pairs) joins: E still
     * 1/2 (it is 0.5 below lo, 1/4 of W), over 2 distances; with 4 none
     * beyond L has enough: NaN, 0 distances. */
    size_t used = 99;
    PE_CHECK(pe_value_ood(s, cnt, 6, 3, 3, &lo, &hi, &used) == 0.5 && used == 1,
             "value OOD: --min-pairs 3: one distance, E = 1/2");
    PE_CHECK(pe_value_ood(s, cnt, 6, 3, 2, &lo, &hi, &used) == 0.5 && used == 2,
             "value OOD: --min-pairs 2: two distances");
    double c4[6] = {1, 3, 2, 2.5, 0.5, 4}; /* the far, rare distance is the one outside */
    double s4[6];
    for (int d = 0; d < 6; d++) s4[d] = c4[d] * cnt[d];
    PE_CHECK(pe_value_ood(s4, cnt, 6, 3, 1, &lo, &hi, &used) == 0.5 && used == 3 &&
                 pe_value_ood(s4, cnt, 6, 3, 3, &lo, &hi, &used) == 0 && used == 1,
             "value OOD: a value set by a distance of 1 pair is gone with --min-pairs 3");
    PE_CHECK(isnan(pe_value_ood(s, cnt, 6, 3, 4, &lo, &hi, &used)) && used == 0,
             "value OOD: no distance beyond L with --min-pairs pairs -> NaN, 0 used");
}

/* A profile filled by hand: every field of the summary worked out below. */
static void test_summary(void)
{
    pe_profile p;
    pe_err e;
    if (pe_profile_init(&p, 2, 8, &e) != 0) {
        PE_CHECK(0, "summary: init");
        return;
    }
    const size_t nd = 8;
    /* L = 5: in-train distances 0..4, U over 1..4 (4 one-distance bins).
     * C0 = 0,2,0,1,2 | 3,-1,1   C1 = 0,1,0,0,0 | .5,.5,.5   pass 0
     * F  = 0,3,0,1,2:  near 3, far 2, trough 0, R 3 -> U(F) = 2/3
     * F - C0 = C1:     near 1, far 0, trough 0, R 1 -> 0      -> dU0 = 2/3
     * F - C1 = C0:     near 2, far 2, trough 0, R 2 -> 1      -> dU1 = -1/3
     * C0: lo 0 hi 2, beyond 3 and -1 are 1 outside -> E 1/2; C1: lo 0 hi 1, E 0.
     * theta0 = pi/2: (L-1) theta = 2pi -> angle OOD 0.
     * theta1 = pi/8: arc [0, pi/2]; delta 5..7 at 5pi/8..7pi/8 -> all out, 1. */
    double C0[8] = {0, 2, 0, 1, 2, 3, -1, 1}, C1[8] = {0, 1, 0, 0, 0, .5, .5, .5};
    double cnt[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    for (size_t d = 0; d < nd; d++) {
        p.count[d] = cnt[d];
        p.sum[0 * nd + d] = C0[d] * cnt[d];
        p.sum[1 * nd + d] = C1[d] * cnt[d];
        p.sum[2 * nd + d] = 0;
        p.sum[3 * nd + d] = (C0[d] + C1[d]) * cnt[d];
    }
    p.mag[0] = 1, p.mag[1] = 3;
    double theta[2] = {PI / 2, PI / 8};
    pe_pair_summary out[2];
    int rc = pe_profile_summary(&p, theta, 5, 1, out, &e);
    PE_CHECK(rc == 0, "summary: succeeds");
    PE_CHECK_NEAR(out[0].magnitude_share, 0.25, 1e-15, "summary: M0 = 1/4");
    PE_CHECK_NEAR(out[1].magnitude_share, 0.75, 1e-15, "summary: M1 = 3/4");
    PE_CHECK_NEAR(out[0].lo_in, 0, 0, "summary: lo0 = 0");
    PE_CHECK_NEAR(out[0].hi_in, 2, 1e-15, "summary: hi0 = 2");
    PE_CHECK_NEAR(out[1].hi_in, 1, 1e-15, "summary: hi1 = 1");
    PE_CHECK_NEAR(out[0].value_ood, 0.5, 1e-15, "summary: E0 = 1/2");
    PE_CHECK_NEAR(out[1].value_ood, 0.0, 0, "summary: E1 = 0");
    PE_CHECK_NEAR(out[0].angle_ood, 0.0, 0, "summary: angle OOD 0 for a full trained turn");
    PE_CHECK_NEAR(out[1].angle_ood, 1.0, 0, "summary: angle OOD 1 for theta pi/8");
    PE_CHECK_NEAR(out[0].du, 2.0 / 3.0, 1e-15, "summary: dU0 = 2/3");
    PE_CHECK_NEAR(out[1].du, -1.0 / 3.0, 1e-15, "summary: dU1 = -1/3");
    p.mag[0] = p.mag[1] = 0;
    pe_profile_summary(&p, theta, 5, 1, out, &e);
    PE_CHECK(isnan(out[0].magnitude_share), "summary: no magnitude at all -> M NaN");
    PE_CHECK(pe_profile_summary(&p, theta, 0, 1, out, &e) == -1, "summary: L 0 is an error");
    pe_profile_free(&p);
}

/* The same heads on several threads at once (several FFT sizes, so plans are
 * made concurrently) give bit-identical sums to one thread. */
typedef struct {
    size_t T;
    const double *q, *k;
    const int64_t *pos;
    pe_profile p;
    int rc;
} job_t;

static const pe_geom *job_geom;

static void *job_run(void *arg)
{
    job_t *j = arg;
    pe_err e;
    pe_head_input in = {j->T, j->q, j->k, j->pos, 0.5, 1};
    j->rc = pe_profile_init(&j->p, job_geom->n_pairs, j->T, &e);
    for (int rep = 0; j->rc == 0 && rep < 3; rep++)
        j->rc = pe_profile_add(&j->p, &in, job_geom, PE_METHOD_FFT, &e);
    return NULL;
}

static void test_threads(void)
{
    enum { NJ = 6 };
    const int D = 16, R = 12;
    double theta[6];
    thetas(R, theta, 0);
    pe_geom g = {D, R, R / 2, PE_PAIRING_HALF, theta};
    job_geom = &g;
    static const size_t Ts[NJ] = {1001, 999, 1500, 77, 1001, 3000};
    job_t jobs[NJ], solo[NJ];
    int64_t *pos = malloc(3000 * sizeof *pos);
    double *q = malloc(3000 * D * sizeof *q), *k = malloc(3000 * D * sizeof *k);
    pe_rng rng = {2024};
    random_head(&rng, 3000, D, q, k);
    for (size_t m = 0; m < 3000; m++) pos[m] = (int64_t)m;
    for (int i = 0; i < NJ; i++) {
        jobs[i] = (job_t){Ts[i], q, k, pos, {0}, 0};
        solo[i] = jobs[i];
    }
    pthread_t th[NJ];
    int started[NJ];
    for (int i = 0; i < NJ; i++) started[i] = pthread_create(&th[i], NULL, job_run, &jobs[i]) == 0;
    for (int i = 0; i < NJ; i++)
        if (started[i]) pthread_join(th[i], NULL);
        else job_run(&jobs[i]);
    int same = 1;
    for (int i = 0; i < NJ; i++) {
        job_run(&solo[i]);
        same &= jobs[i].rc == 0 && solo[i].rc == 0;
        if (!same) break;
        same &= memcmp(jobs[i].p.sum, solo[i].p.sum, (size_t)(R / 2 + 2) * Ts[i] * sizeof(double)) == 0;
        same &= memcmp(jobs[i].p.mag, solo[i].p.mag, (size_t)(R / 2) * sizeof(double)) == 0;
    }
    PE_CHECK(same, "6 threads at once: sums bit-identical to one thread");
    for (int i = 0; i < NJ; i++) {
        pe_profile_free(&jobs[i].p);
        pe_profile_free(&solo[i].p);
    }
    free(pos);
    free(q);
    free(k);
}

/* Threads over groups of pairs change no bit of the sums: several units of
 * pairs and a pass unit, every method, jobs 1 .. 5. */
static void test_jobs(void)
{
    enum { T = 150, D = 44, R = 34 }; /* 17 pairs: 3 pair units, and 5 pass pseudo-pairs */
    pe_rng rng = {2024};
    double *q = malloc(sizeof(double) * T * D), *k = malloc(sizeof(double) * T * D), theta[R / 2];
    int64_t pos[T], gappy[T];
    for (size_t m = 0; m < T; m++) {
        pos[m] = (int64_t)m + 7;
        gappy[m] = (int64_t)(m + m / 4);
    }
    for (int i = 0; i < R / 2; i++) theta[i] = pow(10000.0, -2.0 * i / R);
    random_head(&rng, T, D, q, k);
    pe_geom g = {D, R, R / 2, PE_PAIRING_INTERLEAVED, theta};
    for (int run = 0; run < 3; run++) {
        const int64_t *ps = run == 2 ? gappy : pos;
        pe_head_input in = {T, q, k, ps, 0.3, run != 2};
        pe_method method = run == 0 ? PE_METHOD_FFT : PE_METHOD_DIRECT;
        size_t nd = (size_t)(ps[T - 1] - ps[0]) + 1;
        pe_profile ref, p;
        pe_err e;
        pe_profile_init(&ref, R / 2, nd, &e);
        pe_profile_add(&ref, &in, &g, method, &e);
        int same = 1;
        for (int jobs = 2; jobs <= 5; jobs++) {
            pe_profile_init(&p, R / 2, nd, &e);
            pe_pool *pool = pe_pool_new(jobs, &e);
            p.pool = pool;
            pe_profile_add(&p, &in, &g, method, &e);
            pe_profile_add(&p, &in, &g, method, &e); /* again, on the kept buffers */
            pe_profile_clear(&p);
            pe_profile_add(&p, &in, &g, method, &e);
            same &= memcmp(p.sum, ref.sum, sizeof(double) * (R / 2 + 2) * nd) == 0 &&
                    memcmp(p.count, ref.count, sizeof(double) * nd) == 0 &&
                    memcmp(p.mag, ref.mag, sizeof(double) * (R / 2)) == 0;
            pe_profile_free(&p);
            pe_pool_free(pool);
        }
        const char *what[] = {"FFT: jobs 2..5 give the bits of jobs 1", "direct: jobs 2..5 give the bits of jobs 1",
                              "non-contiguous: jobs 2..5 give the bits of jobs 1"};
        PE_CHECK(same, what[run]);
        pe_profile_free(&ref);
    }
    free(q);
    free(k);
}

/* pe_profile_bin: rows whose per-distance mean is a constant (row r: r + 1)
 * keep it in every bin with pairs; npairs are the counts summed by hand. */
static void test_bin(void)
{
    enum { P = 2, ND = 10 };
    pe_profile p;
    pe_err e;
    double mean[(P + 2) * ND], mean_pool[(P + 2) * ND], npairs[ND];
    PE_CHECK(pe_profile_init(&p, P, ND, &e) == 0, "bin: profile init");
    for (size_t d = 0; d < ND; d++) p.count[d] = d == 7 || d == 8 ? 0 : (double)d + 1;
    for (int r = 0; r < P + 2; r++)
        for (size_t d = 0; d < ND; d++) p.sum[(size_t)r * ND + d] = p.count[d] * (r + 1);
    /* Three bins: [0, 2], [3, 5], [6, 9]; pairs 1+2+3, 4+5+6, 7+10. */
    PE_CHECK(pe_profile_bin(&p, 3, mean, npairs, NULL, &e) == 0, "bin 10 distances into 3");
    PE_CHECK(npairs[0] == 6 && npairs[1] == 15 && npairs[2] == 17, "bin: pairs per bin 6, 15, 17");
    int ok = 1;
    for (int r = 0; r < P + 2; r++)
        for (int b = 0; b < 3; b++) ok &= fabs(mean[r * 3 + b] - (r + 1)) <= 1e-15 * (r + 1);
    PE_CHECK(ok, "bin: every row keeps its constant mean r + 1 in every bin");
    /* One distance per bin: distances without pairs are NaN. */
    PE_CHECK(pe_profile_bin(&p, ND, mean, npairs, NULL, &e) == 0, "bin 10 distances into 10");
    PE_CHECK(isnan(mean[7]) && isnan(mean[3 * ND + 8]) && npairs[7] == 0, "bin: a distance without pairs is nan");
    PE_CHECK(mean[3 * ND + 9] == 4 && npairs[9] == 10, "bin: one distance per bin, total row 4, 10 pairs");
    /* The same bits on three threads. */
    pe_pool *pool = pe_pool_new(3, &e);
    PE_CHECK(pool && pe_profile_bin(&p, ND, mean_pool, npairs, pool, &e) == 0, "bin on a pool of 3");
    PE_CHECK(memcmp(mean, mean_pool, sizeof mean) == 0, "bin: the same bits on 3 threads as on this one");
    pe_pool_free(pool);
    pe_profile_free(&p);
}

/* pe_profile_purity: a pair whose mean curve is cos(theta d) on the
 * in-train distances is pure, whatever lies beyond L; with `only` the
 * other pairs are left alone and the power peaks at theta / (2 pi). */
static void test_purity(void)
{
    enum { P = 2, ND = 64 };
    const long L = 48;
    const double theta[P] = {2 * PI * 0.125, 2 * PI * 0.25};
    pe_profile p;
    pe_purity pur[P];
    pe_err e;
    double power[256 / 2 + 1];
    PE_CHECK(pe_spectrum_size(48) == 256, "purity: a 256-point spectrum for 48 distances");
    PE_CHECK(pe_profile_init(&p, P, ND, &e) == 0, "purity: profile init");
    for (size_t d = 0; d < ND; d++) {
        p.count[d] = 2;
        for (int i = 0; i < P; i++) p.sum[(size_t)i * ND + d] = d < (size_t)L ? 2 * cos(theta[i] * d) : 1e6;
    }
    PE_CHECK(pe_profile_purity(&p, theta, L, -1, pur, NULL, &e) == 0, "purity of every pair");
    for (int i = 0; i < P; i++) {
        char what[80];
        snprintf(what, sizeof what, "purity: pair %d peaks at theta / 2 pi = %g", i, theta[i] / (2 * PI));
        PE_CHECK_NEAR(pur[i].peak_freq, theta[i] / (2 * PI), 1e-12, what);
        snprintf(what, sizeof what, "purity: pair %d is pure (distances >= L left out)", i);
        PE_CHECK(pur[i].purity > 0.9 && fabs(pur[i].leakage - (1 - pur[i].purity)) < 1e-15, what);
    }
    pur[0].purity = -1;
    PE_CHECK(pe_profile_purity(&p, theta, L, 1, pur, power, &e) == 0, "purity of pair 1 alone, with its power");
    PE_CHECK(pur[0].purity == -1, "purity with only 1: pair 0 untouched");
    size_t kmax = 1;
    for (size_t k = 1; k <= 128; k++)
        if (power[k] > power[kmax]) kmax = k;
    PE_CHECK_INT(kmax, 64, "purity: pair 1's power peaks at bin 64 = 0.25 * 256");
    pe_profile_free(&p);
}

/* pe_profile_reuse: the same shape keeps the arrays, zeroed; another
 * shape gets arrays of its own size. */
static void test_reuse(void)
{
    pe_profile p = {0};
    pe_err e;
    PE_CHECK(pe_profile_reuse(&p, 3, 20, &e) == 0 && p.n_pairs == 3 && p.n_dist == 20, "reuse: first use inits");
    double *sum = p.sum;
    p.sum[5 * 20 - 1] = 7;
    p.count[19] = 2;
    p.mag[2] = 1;
    PE_CHECK(pe_profile_reuse(&p, 3, 20, &e) == 0 && p.sum == sum, "reuse: the same shape keeps the arrays");
    PE_CHECK(p.sum[5 * 20 - 1] == 0 && p.count[19] == 0 && p.mag[2] == 0, "reuse: sums, counts, magnitudes zeroed");
    PE_CHECK(pe_profile_reuse(&p, 4, 30, &e) == 0 && p.n_pairs == 4 && p.n_dist == 30, "reuse: a new shape");
    p.sum[6 * 30 - 1] = 1; /* the last cell of the new shape exists (valgrind, asan) */
    PE_CHECK(pe_profile_reuse(&p, 1, 0, &e) == -1, "reuse: no distances is an error");
    pe_profile_free(&p);
}

/* pe_profile_bytes, worked by hand: 16 pairs and the pass dims over 100
 * distances, T 50, 2 threads: sums and counts 19 x 100 x 8 = 15200, three
 * units' totals 3 x 100 x 8 = 2400, per thread gather (50 + 16) x 256 =
 * 16896 and FFT 3 x 125 x 16 = 6000: 15200 + 2400 + 2 x 22896 = 63392. */
static void test_bytes(void)
{
    PE_CHECK_NEAR(pe_profile_bytes(16, 1, 100, 50, 2), 63392, 0, "profile bytes: 16 pairs + pass, T 50, 2 threads");
    PE_CHECK_NEAR(pe_profile_bytes(17, 0, 100, 50, 1), 20 * 800 + 3 * 800 + 22896, 0,
                  "profile bytes: 17 pairs (3 units), no pass, 1 thread");
}

int main(void)
{
    test_jobs();
    test_closed_form(PE_METHOD_FFT);
    test_closed_form(PE_METHOD_DIRECT);
    test_random();
    test_noncontiguous();
    test_pooling();
    test_errors();
    test_angle_ood();
    test_value_ood();
    test_summary();
    test_threads();
    test_bin();
    test_purity();
    test_bytes();
    test_reuse();
    return pe_test_done();
}
