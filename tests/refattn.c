/* refattn: checks peanalyze's profile and heads tables against the
 * definitions (man peanalyze(1)), from the full matrix.
 *
 *   refattn FILE.h5 LAYER PROFILE.tsv HEADS.tsv [ROWS]
 *   refattn --loss FILE.h5 LAYER LOSS.tsv
 *
 * PROFILE is `peanalyze -f tsv --bins 0 --digits 17 -l LAYER [-H LIST]
 * [--rows ROWS] FILE`, HEADS the same with `-t heads`.  This program reads
 * FILE with HDF5 directly (not through the petools reader; float16 is
 * converted by HDF5), rotates every query and key at its position itself,
 * materialises each listed head's T x T matrix of logits (softcap applied)
 * and probabilities, and computes every column by its definition, the
 * U-score (over the keys that are not sinks) included.  Defaults of
 * peanalyze are assumed: one sink token, margin 0.05, the verdict unseen
 * mass > 0.05 or exceedance > 0.01, and u-shape at 0.1.
 *
 * Tolerances: probabilities (mean_prob, last_prob, sink, entropy,
 * exceedance, U) 1e-6 absolute; logits and mean_prob_u 1e-6 relative (to
 * max(1, |value|)); the unseen-distance mass, the entropy in nats and the
 * sink ratio 1e-9 (relative to max(1, |value|)); counts and labels exact.
 * Prints the worst errors.
 *
 * --loss: LOSS is `peanalyze -t loss -f tsv --digits 17 -l LAYER FILE` (one
 * file, every head of the layer).  Per token, the mean over the layer's
 * heads of the unseen-distance mass, the entropy in nats, the sink mass and
 * the exceedance (beyond rows; the in-train range of each head) from the
 * full matrix; per bin their means over the tokens with a loss (the file's
 * /tokens/nll, read here); and the calibration rows of the layer: Spearman
 * correlations written here with an O(n^2) ranking, against the excess
 * nll - nll_control.  Tolerance 1e-9 (relative to max(1, |value|)).
 *
 *   refattn --whatif FILE.h5 LAYER WHATIF.tsv [ROWS [L]]
 *
 * WHATIF is `peanalyze -t whatif -f tsv --digits 17 -l LAYER [--rows ROWS]
 * [--pe SPEC]... FILE` (one file; L, when given, is the -L of the run).
 * Every row (head, spec) is recomputed from the definitions of man
 * peanalyze(1), TABLES, whatif: the spec's rotation is built here from man
 * petools-whatif(7) (every step: rope, pi, ntk, dynamic, yarn, llama3,
 * prope, clip, logn and dope:MASK[:parts|all|gauss], whose mask is read
 * with pe_json and whose Gaussian draws are SplitMix64 and Box-Muller
 * written here), q and k are rotated with it here, and each row's logits
 * against every key are formed by plain dot products: kl_in (mean over the
 * in-train rows of KL(p_rope || p_spec)), unseen_mass, entropy_shift (the
 * spec's mean entropy in nats over its beyond rows m >= 1 minus rope's over
 * its in-train rows m >= 1), exceedance (the spec's beyond logits outside
 * rope's in-train band) and the verdict.  Tolerance 1e-9 (relative to
 * max(1, |value|)); the verdict exact.  A spec this program cannot parse is
 * an error (status 2), not skipped. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe_json.h"

static void die(const char *what)
{
    fprintf(stderr, "refattn: %s\n", what);
    exit(2);
}

static double attr_num(hid_t o, const char *name, double def)
{
    double v = def;
    if (H5Aexists(o, name) > 0) {
        hid_t a = H5Aopen(o, name, H5P_DEFAULT);
        if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) die(name);
        H5Aclose(a);
    }
    return v;
}

static void attr_text(hid_t o, const char *name, char *out, size_t len)
{
    out[0] = '\0';
    if (H5Aexists(o, name) <= 0) return;
    hid_t a = H5Aopen(o, name, H5P_DEFAULT), ft = H5Aget_type(a), mt = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(ft) > 0) {
        char *v = NULL;
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        if (H5Aread(a, mt, &v) < 0 || !v) die(name);
        snprintf(out, len, "%s", v);
        H5free_memory(v);
    } else {
        size_t n = H5Tget_size(ft);
        char *v = calloc(n + 1, 1);
        H5Tset_size(mt, n + 1);
        if (H5Aread(a, mt, v) < 0) die(name);
        snprintf(out, len, "%s", v);
        free(v);
    }
    H5Tclose(mt);
    H5Tclose(ft);
    H5Aclose(a);
}

/* The file, as this program needs it. */
static int H, KV, D, R, P, interleaved;
static long T, L;
static double scale, softcap;
static int64_t *pos;
static double *theta, base;
static int layer_rope; /* the layer's rope attribute */
static hid_t file;
static char lname[64];

/* Which query rows of T are evaluated: every row (nrows <= 0 or >= T), the
 * last (1), or nrows evenly spaced ones, the first and the last among them
 * (man peanalyze(1), --rows); a calloc'd mask the caller frees. */
static char *eval_rows(long T, long nrows)
{
    char *eval = calloc((size_t)T, 1);
    if (!eval) die("out of memory");
    if (nrows <= 0 || nrows >= T) {
        memset(eval, 1, (size_t)T);
    } else if (nrows == 1) {
        eval[T - 1] = 1;
    } else {
        for (long i = 0; i < nrows; i++)
            eval[(long)((unsigned long long)i * (unsigned long long)(T - 1) / (unsigned long long)(nrows - 1))] = 1;
    }
    return eval;
}

static void read_file(const char *path, long layer)
{
    char pairing[64];
    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) die("cannot open the file");
    H = (int)attr_num(file, "n_heads", 0);
    KV = (int)attr_num(file, "n_kv_heads", 0);
    D = (int)attr_num(file, "head_dim", 0);
    R = (int)attr_num(file, "rotary_dim", D);
    P = R / 2;
    L = (long)attr_num(file, "train_len", 0);
    scale = attr_num(file, "attn_scale", 1.0 / sqrt((double)D));
    softcap = attr_num(file, "attn_softcap", 0);
    attr_text(file, "rope_pairing", pairing, sizeof pairing);
    interleaved = strcmp(pairing, "interleaved") == 0;
    snprintf(lname, sizeof lname, "layers/%03ld", layer);
    hid_t g = H5Gopen2(file, lname, H5P_DEFAULT);
    if (g < 0) die("no such layer group");
    hid_t d = H5Dopen2(g, "q", H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t dims[3];
    if (d < 0 || H5Sget_simple_extent_dims(sp, dims, NULL) != 3) die("the layer has no q of rank 3");
    T = (long)dims[1];
    H5Sclose(sp);
    H5Dclose(d);
    pos = malloc((size_t)T * sizeof *pos);
    for (long m = 0; m < T; m++) pos[m] = m;
    if (H5Lexists(file, "tokens", H5P_DEFAULT) > 0 && H5Lexists(file, "tokens/positions", H5P_DEFAULT) > 0) {
        hid_t pd = H5Dopen2(file, "tokens/positions", H5P_DEFAULT);
        if (H5Dread(pd, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, pos) < 0) die("positions");
        H5Dclose(pd);
    }
    theta = calloc((size_t)P + 1, sizeof *theta);
    base = attr_num(file, "rope_theta", 10000.0);
    for (int i = 0; i < P; i++) theta[i] = pow(base, -2.0 * i / R);
    const char *freq = NULL;
    char lf[96];
    snprintf(lf, sizeof lf, "%s/inv_freq", lname);
    if (H5Lexists(g, "inv_freq", H5P_DEFAULT) > 0)
        freq = lf;
    else if (H5Lexists(file, "rope", H5P_DEFAULT) > 0 && H5Lexists(file, "rope/inv_freq", H5P_DEFAULT) > 0)
        freq = "rope/inv_freq";
    if (freq) {
        hid_t fd = H5Dopen2(file, freq, H5P_DEFAULT);
        if (H5Dread(fd, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, theta) < 0) die("inv_freq");
        H5Dclose(fd);
    }
    layer_rope = attr_num(g, "rope", 1) != 0;
    if (!layer_rope)
        for (int i = 0; i < P; i++) theta[i] = 0;
    H5Gclose(g);
}

/* One head of q or k as stored (not rotated). */
static double *head_raw(const char *tensor, int h)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", lname, tensor);
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t start[3] = {(hsize_t)h, 0, 0}, count[3] = {1, (hsize_t)T, (hsize_t)D};
    hid_t ms = H5Screate_simple(3, count, NULL);
    double *x = malloc((size_t)T * (size_t)D * sizeof *x);
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
    if (H5Dread(d, H5T_NATIVE_DOUBLE, ms, sp, H5P_DEFAULT, x) < 0) die(path);
    H5Sclose(ms);
    H5Sclose(sp);
    H5Dclose(d);
    return x;
}

/* One head of q or k, rotated at its positions: x[a] + j x[b] times
 * exp(j p theta_i). */
static double *head(const char *tensor, int h)
{
    double *x = head_raw(tensor, h);
    for (long m = 0; m < T; m++) {
        double *v = x + (size_t)m * (size_t)D;
        for (int i = 0; i < P; i++) {
            int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + P;
            double a = (double)pos[m] * theta[i], re = v[ia], im = v[ib];
            v[ia] = re * cos(a) - im * sin(a);
            v[ib] = re * sin(a) + im * cos(a);
        }
    }
    return x;
}

/* ---- the definitions ---- */

typedef struct refhead {
    double *logit, *count, *logit_in, *count_in, *prob, *prob_u, *last, *last_count;
    double *ns_logit, *ns_count, *ns_logit_in, *ns_count_in; /* keys n >= 1 (not the sink) */
    double rows_in, rows_beyond, sink_in, sink_beyond, ent_in, ent_beyond, exceedance;
    double nats_in, nats_beyond, unseen, sink_ratio;
    double u_in, u_all;
    const char *label_in, *label_all;
    int ood;
} refhead;

/* Section 5, written out: distances 1..dmax (dmax: the last with pairs) in
 * 32 bins floor(b n / 32) .. floor((b+1) n / 32) - 1 of n = dmax values;
 * pair-weighted means of the bins with pairs; near, far, trough of the
 * middle; U = clip(min(near - trough, far - trough) / range, 0, 1). */
static double u_score(const double *sum, const double *cnt, long nd, const char **label)
{
    long dmax = nd - 1;
    while (dmax > 0 && cnt[dmax] == 0) dmax--;
    double g[32];
    int ng = 0;
    long n = dmax, nb = n < 32 ? n : 32;
    for (long b = 0; b < nb; b++) {
        long lo = b * n / nb + 1, hi = (b + 1) * n / nb;
        double s = 0, c = 0;
        for (long d = lo; d <= hi; d++) {
            s += sum[d];
            c += cnt[d];
        }
        if (c > 0) g[ng++] = s / c;
    }
    if (ng < 3) {
        *label = "none";
        return NAN;
    }
    double mn = g[0], mx = g[0], trough = INFINITY;
    for (int b = 0; b < ng; b++) {
        mn = fmin(mn, g[b]);
        mx = fmax(mx, g[b]);
        if (b > 0 && b < ng - 1) trough = fmin(trough, g[b]);
    }
    double near = g[0], far = g[ng - 1], u = 0;
    if (mx > mn) u = fmin(1, fmax(0, fmin(near - trough, far - trough) / (mx - mn)));
    *label = u >= 0.1 ? "u-shape" : near > far ? "decay" : "rise";
    return u;
}

static void compute(refhead *r, int h, long nrows)
{
    double *q = head("q", h), *k = head("k", h / (H / KV));
    double *Lm = malloc((size_t)T * (size_t)T * sizeof *Lm), *Pm = malloc((size_t)T * (size_t)T * sizeof *Pm);
    long nd = (long)(pos[T - 1] - pos[0]) + 1;
    double **arr[] = {&r->logit,    &r->count,    &r->logit_in,    &r->count_in,   &r->prob,    &r->prob_u,
                      &r->last,     &r->last_count, &r->ns_logit, &r->ns_count, &r->ns_logit_in, &r->ns_count_in};
    for (int i = 0; i < 12; i++) *arr[i] = calloc((size_t)nd, sizeof(double));
    char *eval = eval_rows(T, nrows);
    double lo = INFINITY, hi = -INFINITY;
    for (long m = 0; m < T; m++) {
        if (!eval[m]) continue;
        double mx = -INFINITY, Z = 0;
        for (long n = 0; n <= m; n++) {
            double dot = 0;
            for (int d = 0; d < D; d++) dot += q[(size_t)m * (size_t)D + (size_t)d] * k[(size_t)n * (size_t)D + (size_t)d];
            double l = scale * dot;
            if (softcap > 0) l = softcap * tanh(l / softcap);
            Lm[(size_t)m * (size_t)T + (size_t)n] = l;
            mx = fmax(mx, l);
        }
        for (long n = 0; n <= m; n++) Z += exp(Lm[(size_t)m * (size_t)T + (size_t)n] - mx);
        for (long n = 0; n <= m; n++)
            Pm[(size_t)m * (size_t)T + (size_t)n] = exp(Lm[(size_t)m * (size_t)T + (size_t)n] - mx) / Z;
        if (L <= 0 || pos[m] < L)
            for (long n = 0; n <= m; n++) {
                lo = fmin(lo, Lm[(size_t)m * (size_t)T + (size_t)n]);
                hi = fmax(hi, Lm[(size_t)m * (size_t)T + (size_t)n]);
            }
    }
    double W = hi - lo, out = 0, pairs_b = 0, ne_in = 0, ne_b = 0;
    for (long m = 0; m < T; m++) {
        if (!eval[m]) continue;
        int in = L <= 0 || pos[m] < L;
        double ent = 0, unseen = 0;
        for (long n = 0; n <= m; n++) {
            long d = (long)(pos[m] - pos[n]);
            double l = Lm[(size_t)m * (size_t)T + (size_t)n], p = Pm[(size_t)m * (size_t)T + (size_t)n];
            r->logit[d] += l;
            r->count[d] += 1;
            if (in) {
                r->logit_in[d] += l;
                r->count_in[d] += 1;
            } else {
                pairs_b += 1;
                if (l < lo - 0.05 * W || l > hi + 0.05 * W) out += 1;
            }
            r->prob[d] += p;
            r->prob_u[d] += (double)(m + 1) * p;
            if (m == T - 1) {
                r->last[d] += p;
                r->last_count[d] += 1;
            }
            if (p > 0) ent -= p * log(p);
            if (n >= 1) {
                r->ns_logit[d] += l;
                r->ns_count[d] += 1;
                if (in) {
                    r->ns_logit_in[d] += l;
                    r->ns_count_in[d] += 1;
                }
                if (L > 0 && pos[m] - pos[n] >= L) unseen += p;
            }
        }
        double sink = Pm[(size_t)m * (size_t)T];
        if (in) {
            r->rows_in++;
            r->sink_in += sink;
        } else {
            r->rows_beyond++;
            r->sink_beyond += sink;
            r->unseen += unseen;
        }
        if (m >= 1) {
            if (in) {
                r->ent_in += ent / log((double)(m + 1));
                r->nats_in += ent;
                ne_in++;
            } else {
                r->ent_beyond += ent / log((double)(m + 1));
                r->nats_beyond += ent;
                ne_b++;
            }
        }
    }
    r->sink_in = r->rows_in ? r->sink_in / r->rows_in : NAN;
    r->sink_beyond = r->rows_beyond ? r->sink_beyond / r->rows_beyond : NAN;
    r->ent_in = ne_in ? r->ent_in / ne_in : NAN;
    r->ent_beyond = ne_b ? r->ent_beyond / ne_b : NAN;
    r->nats_in = ne_in ? r->nats_in / ne_in : NAN;
    r->nats_beyond = ne_b ? r->nats_beyond / ne_b : NAN;
    r->unseen = r->rows_beyond ? r->unseen / r->rows_beyond : NAN;
    r->sink_ratio = r->sink_in > 0 ? r->sink_beyond / r->sink_in : NAN;
    r->exceedance = (lo <= hi && pairs_b > 0) ? out / pairs_b : NAN;
    r->u_in = u_score(r->ns_logit_in, r->ns_count_in, nd, &r->label_in);
    r->u_all = u_score(r->ns_logit, r->ns_count, nd, &r->label_all);
    r->ood = r->unseen > 0.05 || r->exceedance > 0.01;
    free(q);
    free(k);
    free(Lm);
    free(Pm);
    free(eval);
}

static void refhead_free(refhead *r)
{
    double *arr[] = {r->logit, r->count,      r->logit_in, r->count_in, r->prob,        r->prob_u,
                     r->last,  r->last_count, r->ns_logit, r->ns_count, r->ns_logit_in, r->ns_count_in};
    for (int i = 0; i < 12; i++) free(arr[i]);
    memset(r, 0, sizeof *r);
}

/* ---- comparison ---- */

static double worst_logit, worst_prob, worst_stat;
static long bad, checked;

static void cmp(double got, double want, double tol, int rel, double *worst, const char *what, int h, long d)
{
    checked++;
    if (isnan(got) || isnan(want)) {
        if (isnan(got) && isnan(want)) return;
        bad++;
        fprintf(stderr, "refattn: head %d %s %ld: got %.17g, want %.17g\n", h, what, d, got, want);
        return;
    }
    double err = fabs(got - want) / (rel ? fmax(1, fabs(want)) : 1);
    if (err > *worst) *worst = err;
    if (err > tol) {
        bad++;
        if (bad < 10) fprintf(stderr, "refattn: head %d %s %ld: got %.17g, want %.17g\n", h, what, d, got, want);
    }
}

/* Splits a tab-separated line into at most n fields. */
static int fields(char *line, char **f, int n)
{
    int k = 0;
    line[strcspn(line, "\n")] = '\0';
    for (char *p = line; k < n;) {
        f[k++] = p;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = '\0';
        p = t + 1;
    }
    return k;
}

static refhead refs[256];
static int have[256];

static refhead *ref_of(int h, long nrows)
{
    if (h < 0 || h >= H || h >= 256) die("head out of range in a table");
    if (!have[h]) {
        compute(&refs[h], h, nrows);
        have[h] = 1;
    }
    return &refs[h];
}

/* ---- --loss ---- */

static double *read_vector(const char *name)
{
    double *v = malloc((size_t)T * sizeof *v);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0 || H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) die(name);
    H5Dclose(d);
    return v;
}

/* Per token of one head: unseen, nats, sink, exceed (NaN in-train). */
static void head_rows(int h, double *acc, long L0)
{
    double *q = head("q", h), *k = head("k", h / (H / KV));
    double *l = malloc((size_t)T * sizeof *l), lo = INFINITY, hi = -INFINITY;
    for (int pass = 0; pass < 2; pass++)
        for (long m = 0; m < T; m++) {
            int in = pos[m] < L0;
            if (pass == 0 && !in) continue;
            double mx = -INFINITY, Z = 0;
            for (long n = 0; n <= m; n++) {
                double dot = 0;
                for (int d = 0; d < D; d++) dot += q[(size_t)m * (size_t)D + (size_t)d] * k[(size_t)n * (size_t)D + (size_t)d];
                l[n] = scale * dot;
                if (softcap > 0) l[n] = softcap * tanh(l[n] / softcap);
                mx = fmax(mx, l[n]);
            }
            if (pass == 0) {
                for (long n = 0; n <= m; n++) {
                    lo = fmin(lo, l[n]);
                    hi = fmax(hi, l[n]);
                }
                continue;
            }
            for (long n = 0; n <= m; n++) Z += exp(l[n] - mx);
            double unseen = 0, H = 0, out = 0, W = hi - lo;
            for (long n = 0; n <= m; n++) {
                double p = exp(l[n] - mx) / Z;
                if (p > 0) H -= p * log(p);
                if (n >= 1 && pos[m] - pos[n] >= L0) unseen += p;
                if (l[n] < lo - 0.05 * W || l[n] > hi + 0.05 * W) out++;
            }
            acc[0 * T + m] += unseen;
            acc[1 * T + m] += H;
            acc[2 * T + m] += exp(l[0] - mx) / Z;
            acc[3 * T + m] += in || lo > hi ? NAN : out / (double)(m + 1);
        }
    free(q);
    free(k);
    free(l);
}

/* Spearman by its definition: average ranks by counting, O(n^2). */
static double spearman(const double *x, const double *y, long n)
{
    if (n < 3) return NAN;
    double *rx = malloc((size_t)n * sizeof *rx), *ry = malloc((size_t)n * sizeof *ry);
    for (long i = 0; i < n; i++) {
        double lx = 0, ex = 0, ly = 0, ey = 0;
        for (long j = 0; j < n; j++) {
            lx += x[j] < x[i];
            ex += x[j] == x[i];
            ly += y[j] < y[i];
            ey += y[j] == y[i];
        }
        rx[i] = lx + (ex + 1) / 2;
        ry[i] = ly + (ey + 1) / 2;
    }
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (long i = 0; i < n; i++) {
        mx += rx[i] / n;
        my += ry[i] / n;
    }
    for (long i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(rx);
    free(ry);
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

static int loss_main(char **argv)
{
    long layer = atol(argv[3]);
    read_file(argv[2], layer);
    if (L <= 0) die("the file has no train_len");
    double *nll = read_vector("tokens/nll"), *ctl = read_vector("tokens/nll_control");
    double *acc = calloc(4 * (size_t)T, sizeof *acc);
    for (int h = 0; h < H; h++) head_rows(h, acc, L);
    for (long i = 0; i < 4 * T; i++) acc[i] /= H;
    FILE *tf = fopen(argv[4], "r");
    if (!tf) die("cannot open the loss table");
    char line[65536], *f[512], want_col[64];
    int col[4] = {0}, in_calib = 0;
    long bins = 0, calib = 0;
    static const char *const names[4] = {"unseen_mass", "entropy_nats", "sink_mass", "exceedance"};
    double *blo = malloc((size_t)T * sizeof *blo), *bhi = malloc((size_t)T * sizeof *bhi);
    while (fgets(line, sizeof line, tf)) {
        if (strncmp(line, "# section: calibration", 22) == 0) {
            in_calib = 1;
            continue;
        }
        if (line[0] == '#') continue;
        /* Every row starts with pe, the spec of the recorded loss: one
         * file is one spec, so the rest of the row is what is checked. */
        int n = fields(line, f, 512) - 1;
        char **F = f + 1;
        if (n < 1) die("a loss table row without columns");
        if (strcmp(F[0], "bin_lo") == 0) {
            for (int d = 0; d < 4; d++) {
                snprintf(want_col, sizeof want_col, "l%ld_%s", layer, names[d]);
                for (int c = 0; c < n; c++)
                    if (strcmp(F[c], want_col) == 0) col[d] = c;
                if (!col[d]) die("the table has no column for LAYER");
            }
            continue;
        }
        if (strcmp(F[0], "layer") == 0) continue;
        if (!in_calib) {
            long lo = atol(F[0]), hi = atol(F[1]);
            blo[bins] = (double)lo;
            bhi[bins++] = (double)hi;
            for (int d = 0; d < 4; d++) {
                double s = 0, c = 0;
                for (long m = 0; m < T; m++)
                    if (pos[m] >= lo && pos[m] <= hi && !isnan(nll[m]) && !isnan(acc[d * T + m])) {
                        s += acc[d * T + m];
                        c++;
                    }
                cmp(strtod(F[col[d]], NULL), c ? s / c : NAN, 1e-9, 1, &worst_stat, names[d], -1, lo);
            }
            continue;
        }
        if (atol(F[0]) != layer) continue;
        int d = 0;
        while (d < 4 && strcmp(F[1], names[d]) != 0) d++;
        if (d == 4) die("an unknown diagnostic in the calibration");
        /* tokens beyond L with both values, per bin */
        double *xs = malloc((size_t)T * sizeof *xs), *ys = malloc((size_t)T * sizeof *ys);
        double *bx = malloc((size_t)bins * sizeof *bx), *by = malloc((size_t)bins * sizeof *by), wsum = 0, wr = 0;
        long nb = 0, ntok = 0;
        for (long b = 0; b < bins; b++) {
            long n = 0;
            for (long m = 0; m < T; m++) {
                double e = nll[m] - ctl[m], x = acc[d * T + m];
                if (pos[m] < blo[b] || pos[m] > bhi[b] || pos[m] < L || isnan(e) || isnan(x)) continue;
                xs[n] = x;
                ys[n++] = e;
            }
            if (!n) continue;
            double sx = 0, sy = 0;
            for (long i = 0; i < n; i++) {
                sx += xs[i];
                sy += ys[i];
            }
            bx[nb] = sx / n;
            by[nb++] = sy / n;
            ntok += n;
            double r = spearman(xs, ys, n);
            if (!isnan(r)) {
                wr += n * r;
                wsum += n;
            }
        }
        cmp(strtod(F[2], NULL), spearman(bx, by, nb), 1e-9, 1, &worst_stat, "across_bins", d, layer);
        cmp(atof(F[3]), (double)nb, 0, 0, &worst_stat, "n_bins", d, layer);
        cmp(strtod(F[4], NULL), wsum > 0 ? wr / wsum : NAN, 1e-9, 1, &worst_stat, "within_bins", d, layer);
        cmp(atof(F[5]), (double)ntok, 0, 0, &worst_stat, "n_tokens", d, layer);
        calib++;
        free(xs);
        free(ys);
        free(bx);
        free(by);
    }
    fclose(tf);
    printf("%ld bins, %ld calibration rows, %ld values; worst %.2g\n", bins, calib, checked, worst_stat);
    free(nll);
    free(ctl);
    free(acc);
    free(blo);
    free(bhi);
    free(pos);
    free(theta);
    H5Fclose(file);
    if (bad || bins == 0 || calib != 4) {
        fprintf(stderr, "refattn: %ld values differ beyond the tolerance (%ld calibration rows)\n", bad, calib);
        return 1;
    }
    return 0;
}

/* ---- --whatif: the --pe specs against rope ---- */

#define WMAXP 4096
static long cur_layer;

/* The rotation of one query head (and, for its logits, its key) under a
 * spec (man petools-whatif(7)). */
typedef struct wrot {
    double th[WMAXP];
    unsigned char gauss[WMAXP];
    double factor; /* the constant logit factor (yarn) */
    int n_logn;    /* logn steps: max(1, ln(p+1)/ln L) each */
} wrot;

static void wdie(const char *spec, const char *what)
{
    fprintf(stderr, "refattn: spec '%s': %s\n", spec, what);
    exit(2);
}

/* SplitMix64 seeded with 42, output k (from 0), and g(p, i): THE GAUSSIAN
 * DRAWS of man petools-whatif(7). */
static uint64_t sm42(uint64_t k)
{
    uint64_t z = 42 + (k + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void gdraw(int64_t p, int i, double *c, double *s)
{
    uint64_t k = 2 * ((uint64_t)p * (uint64_t)P + (uint64_t)i);
    double u1 = ((double)(sm42(k) >> 11) + 1) / 9007199254740992.0;
    double u2 = (double)(sm42(k + 1) >> 11) / 9007199254740992.0;
    double r = sqrt(-2 * log(u1));
    *c = r * cos(2 * M_PI * u2);
    *s = r * sin(2 * M_PI * u2);
}

static double wnum(const char *spec, const char *f)
{
    char *end;
    double v = strtod(f, &end);
    if (end == f || *end) wdie(spec, "a field is not a number");
    return v;
}

/* theta_i = b'^(-2i/R). */
static void from_base(double b, double *th)
{
    for (int i = 0; i < P; i++) th[i] = pow(b, -2.0 * i / R);
}

/* The pairs (sel) of query head h of this layer that the mask selects. */
static int dope_select(const char *spec, const char *path, int h, int all, unsigned char *sel)
{
    FILE *f = fopen(path, "rb");
    if (!f) wdie(spec, "cannot open the mask");
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    pe_json *doc;
    pe_err e;
    if (pe_json_parse(buf, n, &doc, &e) < 0) wdie(spec, e.msg);
    const pe_json *hs = pe_json_get(doc, "heads");
    int any = 0;
    for (size_t k = 0; hs && k < hs->n; k++) {
        const pe_json *en = &hs->items[k], *ly = pe_json_get(en, "layer"), *qh = pe_json_get(en, "query_heads"),
                      *pr = pe_json_get(en, "pairs");
        if (!ly || !qh || !pr) wdie(spec, "a mask entry without layer, query_heads or pairs");
        int hit = 0;
        for (size_t j = 0; j < qh->n; j++) hit |= (int)qh->items[j].number == h;
        if ((long)ly->number != cur_layer || !hit) continue;
        any = 1;
        for (int i = 0; i < P; i++) sel[i] |= all;
        for (size_t j = 0; j < pr->n; j++) sel[(int)pr->items[j].number] = 1;
    }
    pe_json_free(doc);
    return any;
}

static void wresolve(const char *spec, int h, wrot *w)
{
    char buf[1024], *save = NULL;
    snprintf(buf, sizeof buf, "%s", spec);
    memcpy(w->th, theta, (size_t)P * sizeof *theta);
    memset(w->gauss, 0, sizeof w->gauss);
    w->factor = 1;
    w->n_logn = 0;
    for (char *st = strtok_r(buf, "+", &save); st; st = strtok_r(NULL, "+", &save)) {
        char *f[8];
        int nf = 0;
        if (strncmp(st, "dope:", 5) == 0) {
            char *path = st + 5, *c = strrchr(path, ':');
            int mode = 0; /* parts, all, gauss */
            if (c && (strcmp(c + 1, "parts") == 0 || strcmp(c + 1, "all") == 0 || strcmp(c + 1, "gauss") == 0)) {
                mode = c[1] == 'p' ? 0 : c[1] == 'a' ? 1 : 2;
                *c = 0;
            }
            unsigned char sel[WMAXP] = {0};
            if (!dope_select(spec, path, h, mode == 1, sel)) continue;
            for (int i = 0; i < P; i++)
                if (sel[i]) {
                    w->th[i] = 0;
                    if (mode == 2) w->gauss[i] = 1;
                }
            continue;
        }
        for (char *p = st;;) {
            f[nf++] = p;
            char *c = strchr(p, ':');
            if (!c || nf == 8) break;
            *c = 0;
            p = c + 1;
        }
        const char *k = f[0];
        if (strcmp(k, "rope") == 0 && nf == 1) continue;
        if (strcmp(k, "clip") == 0 && nf == 1) {
            for (int i = 0; i < P; i++)
                if (w->th[i] < 2 * M_PI / (double)L) w->th[i] = 0;
            continue;
        }
        if (strcmp(k, "logn") == 0 && nf == 1) {
            w->n_logn++;
            continue;
        }
        if (strcmp(k, "prope") == 0 && nf == 2) {
            /* floor(P n) of the decimal P: n P rounded at 1e-9 first. */
            int keep = (int)floor(wnum(spec, f[1]) * P + 1e-9);
            unsigned char kept[WMAXP] = {0};
            for (int r = 0; r < keep; r++) { /* the highest left, the lower pair on ties */
                int best = -1;
                for (int i = 0; i < P; i++)
                    if (!kept[i] && (best < 0 || w->th[i] > w->th[best])) best = i;
                kept[best] = 1;
            }
            for (int i = 0; i < P; i++)
                if (!kept[i]) w->th[i] = 0;
            continue;
        }
        /* The scaling steps: a layer without rotary embedding has nothing
         * to scale. */
        int scaling = strcmp(k, "pi") == 0 || strcmp(k, "ntk") == 0 || strcmp(k, "dynamic") == 0 ||
                      strcmp(k, "yarn") == 0 || strcmp(k, "llama3") == 0;
        if (!scaling) wdie(spec, "a step this reference does not know");
        double S = wnum(spec, f[1]);
        if (!layer_rope || P == 0) continue;
        if (strcmp(k, "pi") == 0 && nf == 2) {
            for (int i = 0; i < P; i++) w->th[i] /= S;
        } else if (strcmp(k, "ntk") == 0 && nf == 2) {
            from_base(base * pow(S, (double)R / (R - 2)), w->th);
        } else if (strcmp(k, "dynamic") == 0 && (nf == 2 || nf == 3)) {
            double Tt = nf == 3 ? wnum(spec, f[2]) : (double)(pos[T - 1] + 1);
            from_base(Tt > L ? base * pow(S * Tt / L - (S - 1), (double)R / (R - 2)) : base, w->th);
        } else if (strcmp(k, "yarn") == 0 && (nf == 2 || nf == 4)) {
            double bf = nf == 4 ? wnum(spec, f[2]) : 32, bs = nf == 4 ? wnum(spec, f[3]) : 1;
            /* The pair index at which b^(-2i/R) turns beta times within L. */
            double lo = floor(R * log(L / (bf * 2 * M_PI)) / (2 * log(base)));
            double hi = ceil(R * log(L / (bs * 2 * M_PI)) / (2 * log(base)));
            lo = fmin(fmax(lo, 0), R - 1);
            hi = fmin(fmax(hi, 0), R - 1);
            if (lo == hi) hi += 0.001;
            for (int i = 0; i < P; i++) {
                double r = fmin(1, fmax(0, (i - lo) / (hi - lo))), th = pow(base, -2.0 * i / R);
                w->th[i] = th * (1 - r) + th / S * r;
            }
            if (S > 1) w->factor *= (0.1 * log(S) + 1) * (0.1 * log(S) + 1);
        } else if (strcmp(k, "llama3") == 0 && nf == 5) {
            double lo = wnum(spec, f[2]), hi = wnum(spec, f[3]), old = wnum(spec, f[4]);
            for (int i = 0; i < P; i++) {
                double th = w->th[i], wl = th > 0 ? 2 * M_PI / th : INFINITY;
                if (wl < old / hi) continue;
                if (wl > old / lo) {
                    w->th[i] = th / S;
                } else {
                    double sm = (old / wl - lo) / (hi - lo);
                    w->th[i] = (1 - sm) * th / S + sm * th;
                }
            }
        } else {
            wdie(spec, "a step with the wrong number of fields");
        }
    }
}

/* x (T x D, raw) rotated by w; the query also scaled by the logit factor. */
static void wrotate(double *x, const wrot *w, int query)
{
    for (long m = 0; m < T; m++) {
        double *v = x + (size_t)m * (size_t)D;
        for (int i = 0; i < P; i++) {
            int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + P;
            double c, s;
            if (w->gauss[i]) {
                gdraw(pos[m], i, &c, &s);
            } else {
                c = cos((double)pos[m] * w->th[i]);
                s = sin((double)pos[m] * w->th[i]);
            }
            double re = v[ia], im = v[ib];
            v[ia] = re * c - im * s;
            v[ib] = re * s + im * c;
        }
        if (!query) continue;
        /* log-n scales the whole logit; YaRN's factor (on cos and sin)
         * only the rotary dims 0 .. 2P-1. */
        double fl = 1, g = log((double)pos[m] + 1) / log((double)L);
        for (int k = 0; k < w->n_logn; k++) fl *= g > 1 ? g : 1;
        for (int d = 0; d < D; d++) v[d] *= d < 2 * P ? w->factor * fl : fl;
    }
}

/* Row m's logits of q against k (keys 0..m), softcapped. */
static void row_logits(const double *q, const double *k, long m, double *l)
{
    for (long n = 0; n <= m; n++) {
        double dot = 0;
        for (int d = 0; d < D; d++) dot += q[(size_t)m * (size_t)D + (size_t)d] * k[(size_t)n * (size_t)D + (size_t)d];
        l[n] = scale * dot;
        if (softcap > 0) l[n] = softcap * tanh(l[n] / softcap);
    }
}

/* log-sum-exp of l[0..m]. */
static double lse(const double *l, long m)
{
    double mx = -INFINITY, z = 0;
    for (long n = 0; n <= m; n++) mx = fmax(mx, l[n]);
    for (long n = 0; n <= m; n++) z += exp(l[n] - mx);
    return mx + log(z);
}

typedef struct wrow {
    int head;
    char spec[1024];
    double got[4];
    int got_ood;
} wrow;

/* The rows of one query head, all its specs at once. */
static void whatif_head(int h, wrow *rows, int nr, long nrows)
{
    double *qr = head("q", h), *kr = head("k", h / (H / KV)), *qraw = head_raw("q", h), *kraw = head_raw("k", h / (H / KV));
    double **qs = malloc((size_t)nr * sizeof *qs), **ks = malloc((size_t)nr * sizeof *ks);
    wrot *w = malloc(sizeof *w);
    for (int s = 0; s < nr; s++) {
        wresolve(rows[s].spec, h, w);
        qs[s] = malloc((size_t)T * (size_t)D * sizeof(double));
        ks[s] = malloc((size_t)T * (size_t)D * sizeof(double));
        memcpy(qs[s], qraw, (size_t)T * (size_t)D * sizeof(double));
        memcpy(ks[s], kraw, (size_t)T * (size_t)D * sizeof(double));
        wrotate(qs[s], w, 1);
        wrotate(ks[s], w, 0);
    }
    char *eval = eval_rows(T, nrows);
    double *lr = malloc((size_t)T * sizeof *lr), *ls = malloc((size_t)T * sizeof *ls);
    double *kl = calloc((size_t)nr, sizeof *kl), *un = calloc((size_t)nr, sizeof *un), *nb = calloc((size_t)nr, sizeof *nb);
    double *out = calloc((size_t)nr, sizeof *out);
    double rows_in = 0, rows_b = 0, nats_in = 0, ent_in = 0, ent_b = 0, pairs_b = 0, lo = INFINITY, hi = -INFINITY;
    /* In-train rows: rope's band and entropy, and the divergence. */
    for (long m = 0; m < T; m++) {
        if (!eval[m] || pos[m] >= L) continue;
        row_logits(qr, kr, m, lr);
        double zr = lse(lr, m), H = 0;
        for (long n = 0; n <= m; n++) {
            lo = fmin(lo, lr[n]);
            hi = fmax(hi, lr[n]);
            double p = exp(lr[n] - zr);
            if (p > 0) H -= p * log(p);
        }
        rows_in++;
        if (m >= 1) {
            nats_in += H;
            ent_in++;
        }
        for (int s = 0; s < nr; s++) {
            row_logits(qs[s], ks[s], m, ls);
            double zs = lse(ls, m), d = 0;
            for (long n = 0; n <= m; n++) d += exp(lr[n] - zr) * ((lr[n] - zr) - (ls[n] - zs));
            kl[s] += d;
        }
    }
    /* Beyond rows: each spec's unseen mass, entropy and exceedance. */
    double W = hi - lo;
    for (long m = 0; m < T; m++) {
        if (!eval[m] || pos[m] < L) continue;
        rows_b++;
        ent_b += m >= 1;
        pairs_b += (double)(m + 1);
        for (int s = 0; s < nr; s++) {
            row_logits(qs[s], ks[s], m, ls);
            double zs = lse(ls, m), H = 0, u = 0;
            for (long n = 0; n <= m; n++) {
                double p = exp(ls[n] - zs);
                if (p > 0) H -= p * log(p);
                if (n >= 1 && pos[m] - pos[n] >= L) u += p;
                if (ls[n] < lo - 0.05 * W || ls[n] > hi + 0.05 * W) out[s]++;
            }
            un[s] += u;
            if (m >= 1) nb[s] += H;
        }
    }
    for (int s = 0; s < nr; s++) {
        double want[4];
        want[0] = rows_in > 0 ? kl[s] / rows_in : NAN;
        want[1] = rows_b > 0 ? un[s] / rows_b : NAN;
        want[2] = ent_b > 0 && ent_in > 0 ? nb[s] / ent_b - nats_in / ent_in : NAN;
        want[3] = lo <= hi && pairs_b > 0 ? out[s] / pairs_b : NAN;
        int ood = want[1] > 0.05 || want[3] > 0.01;
        static const char *const names[4] = {"kl_in", "unseen_mass", "entropy_shift", "exceedance"};
        for (int c = 0; c < 4; c++) {
            char what[1200];
            snprintf(what, sizeof what, "%s %s", rows[s].spec, names[c]);
            cmp(rows[s].got[c], want[c], 1e-9, 1, &worst_stat, what, h, 0);
        }
        char what[1200];
        snprintf(what, sizeof what, "%s ood", rows[s].spec);
        cmp(rows[s].got_ood, ood, 0, 0, &worst_stat, what, h, 0);
        free(qs[s]);
        free(ks[s]);
    }
    free(qr);
    free(kr);
    free(qraw);
    free(kraw);
    free(qs);
    free(ks);
    free(w);
    free(eval);
    free(lr);
    free(ls);
    free(kl);
    free(un);
    free(nb);
    free(out);
}

static int whatif_main(int argc, char **argv)
{
    long layer = atol(argv[3]), nrows = argc >= 6 ? atol(argv[5]) : 0;
    read_file(argv[2], layer);
    cur_layer = layer;
    if (argc >= 7) L = atol(argv[6]);
    if (L <= 0) die("the file has no train_len: give L");
    if (P > WMAXP) die("too many pairs");
    FILE *tf = fopen(argv[4], "r");
    if (!tf) die("cannot open the whatif table");
    static char line[8192];
    char *f[16];
    size_t cap = 64, n = 0;
    wrow *rows = malloc(cap * sizeof *rows);
    while (fgets(line, sizeof line, tf)) {
        if (strncmp(line, "# section:", 10) == 0) break; /* the layers and the model */
        if (line[0] == '#' || strncmp(line, "layer\t", 6) == 0) continue;
        if (fields(line, f, 16) != 9) die("a whatif row without 9 columns");
        if (atol(f[0]) != layer) die("the whatif table must be of LAYER");
        if (n == cap) rows = realloc(rows, (cap *= 2) * sizeof *rows);
        wrow *r = &rows[n++];
        r->head = atoi(f[1]);
        if (r->head < 0 || r->head >= H) die("head out of range in the table");
        if (atoi(f[2]) != r->head / (H / KV)) die("kv_head is not head / (n_heads / n_kv_heads)");
        snprintf(r->spec, sizeof r->spec, "%s", f[3]);
        for (int c = 0; c < 4; c++) r->got[c] = strtod(f[4 + c], NULL);
        r->got_ood = atoi(f[8]);
    }
    fclose(tf);
    /* The rows of a head are consecutive, one per spec. */
    long heads = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && rows[j].head == rows[i].head) j++;
        whatif_head(rows[i].head, rows + i, (int)(j - i), nrows);
        heads++;
        i = j;
    }
    printf("%ld heads, %zu rows, %ld values; worst %.2g\n", heads, n, checked, worst_stat);
    free(rows);
    free(pos);
    free(theta);
    H5Fclose(file);
    if (bad || n == 0) {
        fprintf(stderr, "refattn: %ld values differ beyond the tolerance\n", bad);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--loss") == 0) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        return loss_main(argv);
    }
    if (argc >= 5 && argc <= 7 && strcmp(argv[1], "--whatif") == 0) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        return whatif_main(argc, argv);
    }
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: refattn FILE.h5 LAYER PROFILE.tsv HEADS.tsv [ROWS]\n"
                        "       refattn --loss FILE.h5 LAYER LOSS.tsv\n"
                        "       refattn --whatif FILE.h5 LAYER WHATIF.tsv [ROWS [L]]\n");
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    long layer = atol(argv[2]), nrows = argc == 6 ? atol(argv[5]) : 0;
    read_file(argv[1], layer);
    char line[8192], *f[32];
    long prof_rows = 0, head_rows = 0;

    FILE *tp = fopen(argv[3], "r");
    if (!tp) die("cannot open the profile table");
    while (fgets(line, sizeof line, tp)) {
        if (line[0] == '#' || strncmp(line, "layer\t", 6) == 0) continue;
        if (fields(line, f, 32) != 10) die("a profile row without 10 columns");
        int h = atoi(f[1]);
        long dlo = atol(f[3]), dhi = atol(f[4]);
        if (atol(f[0]) != layer || dlo != dhi) die("the profile must be of LAYER, with --bins 0");
        refhead *r = ref_of(h, nrows);
        double n = r->count[dlo];
        cmp(strtod(f[5], NULL), n, 0, 0, &worst_stat, "n_pairs at distance", h, dlo);
        cmp(strtod(f[6], NULL), n ? r->logit[dlo] / n : NAN, 1e-6, 1, &worst_logit, "mean_logit at distance", h, dlo);
        cmp(strtod(f[7], NULL), n ? r->prob[dlo] / n : NAN, 1e-6, 0, &worst_prob, "mean_prob at distance", h, dlo);
        cmp(strtod(f[8], NULL), n ? r->prob_u[dlo] / n : NAN, 1e-6, 1, &worst_prob, "mean_prob_u at distance", h, dlo);
        double lc = r->last_count[dlo];
        cmp(strtod(f[9], NULL), lc ? r->last[dlo] / lc : NAN, 1e-6, 0, &worst_prob, "last_prob at distance", h, dlo);
        prof_rows++;
    }
    fclose(tp);

    FILE *th = fopen(argv[4], "r");
    if (!th) die("cannot open the heads table");
    while (fgets(line, sizeof line, th)) {
        if (line[0] == '#' || strncmp(line, "layer\t", 6) == 0) continue;
        if (fields(line, f, 32) != 19) die("a heads row without 19 columns");
        int h = atoi(f[1]);
        if (atol(f[0]) != layer) die("the heads table must be of LAYER");
        refhead *r = ref_of(h, nrows);
        cmp(strtod(f[3], NULL), r->rows_in, 0, 0, &worst_stat, "rows_in", h, 0);
        cmp(strtod(f[4], NULL), r->rows_beyond, 0, 0, &worst_stat, "rows_beyond", h, 0);
        cmp(strtod(f[5], NULL), r->sink_in, 1e-6, 0, &worst_stat, "sink_in", h, 0);
        cmp(strtod(f[6], NULL), r->sink_beyond, 1e-6, 0, &worst_stat, "sink_beyond", h, 0);
        cmp(strtod(f[7], NULL), r->ent_in, 1e-6, 0, &worst_stat, "entropy_in", h, 0);
        cmp(strtod(f[8], NULL), r->ent_beyond, 1e-6, 0, &worst_stat, "entropy_beyond", h, 0);
        cmp(strtod(f[9], NULL), r->u_in, 1e-6, 0, &worst_stat, "u_in", h, 0);
        cmp(strtod(f[11], NULL), r->u_all, 1e-6, 0, &worst_stat, "u_all", h, 0);
        cmp(strtod(f[13], NULL), r->exceedance, 1e-6, 0, &worst_stat, "exceedance", h, 0);
        cmp(atof(f[14]), r->ood, 0, 0, &worst_stat, "ood", h, 0);
        cmp(strtod(f[15], NULL), r->unseen, 1e-9, 1, &worst_stat, "unseen_mass", h, 0);
        cmp(strtod(f[16], NULL), r->nats_in, 1e-9, 1, &worst_stat, "entropy_nats_in", h, 0);
        cmp(strtod(f[17], NULL), r->nats_beyond, 1e-9, 1, &worst_stat, "entropy_nats_beyond", h, 0);
        cmp(strtod(f[18], NULL), r->sink_ratio, 1e-9, 1, &worst_stat, "sink_ratio", h, 0);
        checked += 2;
        if (strcmp(f[10], r->label_in) != 0 || strcmp(f[12], r->label_all) != 0) {
            bad++;
            fprintf(stderr, "refattn: head %d labels %s/%s, want %s/%s\n", h, f[10], f[12], r->label_in, r->label_all);
        }
        head_rows++;
    }
    fclose(th);
    for (int h = 0; h < 256; h++)
        if (have[h]) refhead_free(&refs[h]);
    free(pos);
    free(theta);
    H5Fclose(file);
    printf("%ld profile rows, %ld heads rows, %ld values; worst: logits %.2g relative, probabilities %.2g, "
           "head statistics %.2g\n",
           prof_rows, head_rows, checked, worst_logit, worst_prob, worst_stat);
    if (bad || prof_rows == 0 || head_rows == 0) {
        fprintf(stderr, "refattn: %ld values differ beyond the tolerance\n", bad);
        return 1;
    }
    return 0;
}
