/* refattn: checks peanalyze's profile and heads tables against the
 * definitions (man peanalyze(1)), from the full matrix.
 *
 *   refattn FILE.h5 LAYER PROFILE.tsv HEADS.tsv [ROWS]
 *
 * PROFILE is `peanalyze -f tsv --bins 0 --digits 17 -l LAYER [-H LIST]
 * [--rows ROWS] FILE`, HEADS the same with `-t heads`.  This program reads
 * FILE with HDF5 directly (not through the petools reader; float16 is
 * converted by HDF5), rotates every query and key at its position itself,
 * materialises each listed head's T x T matrix of logits (softcap applied)
 * and probabilities, and computes every column by its definition, the
 * U-score included.  Defaults of peanalyze are assumed: one sink token,
 * margin 0.05, thresholds 0.01, 0.1, 0.1 and u-shape at 0.1.
 *
 * Tolerances: probabilities (mean_prob, last_prob, sink, entropy,
 * exceedance, U) 1e-6 absolute; logits and mean_prob_u 1e-6 relative (to
 * max(1, |value|)); counts and labels exact.  Prints the worst errors. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static double *theta;
static hid_t file;
static char lname[64];

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
    double base = attr_num(file, "rope_theta", 10000.0);
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
    if (attr_num(g, "rope", 1) == 0)
        for (int i = 0; i < P; i++) theta[i] = 0;
    H5Gclose(g);
}

/* One head of q or k, rotated at its positions: x[a] + j x[b] times
 * exp(j p theta_i). */
static double *head(const char *tensor, int h)
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
    double rows_in, rows_beyond, sink_in, sink_beyond, ent_in, ent_beyond, exceedance;
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
    double **arr[] = {&r->logit, &r->count, &r->logit_in, &r->count_in, &r->prob, &r->prob_u, &r->last, &r->last_count};
    for (int i = 0; i < 8; i++) *arr[i] = calloc((size_t)nd, sizeof(double));
    char *eval = calloc((size_t)T, 1);
    if (nrows <= 0 || nrows >= T) {
        memset(eval, 1, (size_t)T);
    } else if (nrows == 1) {
        eval[T - 1] = 1;
    } else {
        for (long i = 0; i < nrows; i++) eval[(long)((unsigned long long)i * (unsigned long long)(T - 1) / (unsigned long long)(nrows - 1))] = 1;
    }
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
        double ent = 0;
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
        }
        double sink = Pm[(size_t)m * (size_t)T];
        if (in) {
            r->rows_in++;
            r->sink_in += sink;
        } else {
            r->rows_beyond++;
            r->sink_beyond += sink;
        }
        if (m >= 1) {
            if (in) {
                r->ent_in += ent / log((double)(m + 1));
                ne_in++;
            } else {
                r->ent_beyond += ent / log((double)(m + 1));
                ne_b++;
            }
        }
    }
    r->sink_in = r->rows_in ? r->sink_in / r->rows_in : NAN;
    r->sink_beyond = r->rows_beyond ? r->sink_beyond / r->rows_beyond : NAN;
    r->ent_in = ne_in ? r->ent_in / ne_in : NAN;
    r->ent_beyond = ne_b ? r->ent_beyond / ne_b : NAN;
    r->exceedance = (lo <= hi && pairs_b > 0) ? out / pairs_b : NAN;
    r->u_in = u_score(r->logit_in, r->count_in, nd, &r->label_in);
    r->u_all = u_score(r->logit, r->count, nd, &r->label_all);
    r->ood = r->exceedance > 0.01 || fabs(r->ent_beyond - r->ent_in) > 0.1 || fabs(r->sink_beyond - r->sink_in) > 0.1;
    free(q);
    free(k);
    free(Lm);
    free(Pm);
    free(eval);
}

static void refhead_free(refhead *r)
{
    double *arr[] = {r->logit, r->count, r->logit_in, r->count_in, r->prob, r->prob_u, r->last, r->last_count};
    for (int i = 0; i < 8; i++) free(arr[i]);
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

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: refattn FILE.h5 LAYER PROFILE.tsv HEADS.tsv [ROWS]\n");
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
        if (fields(line, f, 32) != 15) die("a heads row without 15 columns");
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
