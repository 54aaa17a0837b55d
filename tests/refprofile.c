/* refprofile: checks a pedecomp profile table against the definition.
 *
 *   refprofile FILE.h5 TABLE.tsv
 *
 * TABLE is `pedecomp -f tsv --bins 0 --digits 17` output for FILE.  This
 * program reads FILE with HDF5 directly (not through the petools reader),
 * rotates every query and key at its position, and sums the pair dot
 * products over every causal pair: the O(T^2) definition of man pedecomp(1)
 * section 2.  Every row must match to 1e-9 of the component's largest |C|.
 * Reads n_heads, n_kv_heads, head_dim, rotary_dim, rope_pairing, attn_scale
 * (default 1/sqrt(D)), rope_theta (default 1e4), /rope/inv_freq and
 * /tokens/positions when present; needs contiguous positions, layer 000
 * stored as q/k, and R == D (no pass dims), as the fixtures and the real
 * dump have. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long attr(hid_t f, const char *name)
{
    long long v = 0;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_LLONG, &v) < 0) {
        fprintf(stderr, "refprofile: attribute %s\n", name);
        exit(2);
    }
    H5Aclose(a);
    return v;
}

static int interleaved;
static double *theta_tab;

static double attr_f(hid_t f, const char *name, double def)
{
    double v = def;
    if (H5Aexists(f, name) > 0) {
        hid_t a = H5Aopen(f, name, H5P_DEFAULT);
        H5Aread(a, H5T_NATIVE_DOUBLE, &v);
        H5Aclose(a);
    }
    return v;
}

/* One head of a tensor as double, rotated in place at positions 0..T-1
 * (distances are all that matter), pairs laid out as the file says. */
static double *head(hid_t f, const char *path, int h, long T, int D, int R)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t start[3] = {(hsize_t)h, 0, 0}, count[3] = {1, (hsize_t)T, (hsize_t)D};
    hid_t ms = H5Screate_simple(3, count, NULL);
    double *x = malloc((size_t)T * (size_t)D * sizeof *x);
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
    if (!x || H5Dread(d, H5T_NATIVE_DOUBLE, ms, sp, H5P_DEFAULT, x) < 0) {
        fprintf(stderr, "refprofile: cannot read %s head %d\n", path, h);
        exit(2);
    }
    H5Sclose(ms);
    H5Sclose(sp);
    H5Dclose(d);
    int P = R / 2;
    for (long m = 0; m < T; m++) {
        for (int i = 0; i < P; i++) {
            double a = (double)m * theta_tab[i];
            double *v = x + (size_t)m * (size_t)D;
            int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + P;
            double re = v[ia], im = v[ib];
            v[ia] = re * cos(a) - im * sin(a);
            v[ib] = re * sin(a) + im * cos(a);
        }
    }
    return x;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: refprofile FILE.h5 TABLE.tsv\n");
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 2;
    int H = (int)attr(f, "n_heads"), KV = (int)attr(f, "n_kv_heads"), D = (int)attr(f, "head_dim");
    int R = (int)attr(f, "rotary_dim"), P = R / 2;
    hid_t d = H5Dopen2(f, "layers/000/q", H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t dims[3];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    long T = (long)dims[1];
    double s = attr_f(f, "attn_scale", 1.0 / sqrt((double)D));
    {
        char pairing[32] = "";
        hid_t a = H5Aopen(f, "rope_pairing", H5P_DEFAULT), t = H5Tcopy(H5T_C_S1);
        char *vs = NULL;
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8); /* as h5py writes it */
        if (a >= 0 && H5Aread(a, t, &vs) >= 0 && vs) {
            snprintf(pairing, sizeof pairing, "%s", vs);
            H5free_memory(vs);
        }
        H5Tclose(t);
        if (a >= 0) H5Aclose(a);
        interleaved = strcmp(pairing, "interleaved") == 0;
        if (!interleaved && strcmp(pairing, "half") != 0) {
            fprintf(stderr, "refprofile: cannot read rope_pairing\n");
            return 2;
        }
        theta_tab = calloc((size_t)P + 1, sizeof *theta_tab);
        double base = attr_f(f, "rope_theta", 10000.0);
        for (int i = 0; i < P; i++) theta_tab[i] = pow(base, -2.0 * i / R);
        if (H5Lexists(f, "rope", H5P_DEFAULT) > 0 && H5Lexists(f, "rope/inv_freq", H5P_DEFAULT) > 0) {
            hid_t dd = H5Dopen2(f, "rope/inv_freq", H5P_DEFAULT);
            H5Dread(dd, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, theta_tab);
            H5Dclose(dd);
        }
        if (R != D) {
            fprintf(stderr, "refprofile: needs rotary_dim == head_dim\n");
            return 2;
        }
    }
    int rows_out = P + 1; /* pairs, then the total (no pass dims here) */

    /* ref[h][c][delta]: the mean of component c at distance delta. */
    double **ref = calloc((size_t)H, sizeof *ref), **refmax = calloc((size_t)H, sizeof *refmax);
    FILE *tab = fopen(argv[2], "r");
    char line[4096];
    long checked = 0;
    double worst = 0;
    int bad = 0;
    if (!tab) return 2;
    while (fgets(line, sizeof line, tab)) {
        if (line[0] == '#' || strncmp(line, "layer", 5) == 0) continue;
        int layer, h, kv;
        char comp[32], cls[32], theta[64];
        long lo, hi, n;
        double mean;
        if (sscanf(line, "%d %d %d %31s %63s %31s %ld %ld %ld %lf", &layer, &h, &kv, comp, theta, cls,
                   &lo, &hi, &n, &mean) != 10 || layer != 0 || h < 0 || h >= H || lo != hi) {
            fprintf(stderr, "refprofile: unexpected row: %s", line);
            return 1;
        }
        if (!ref[h]) {
            /* First row of this head: compute its whole reference. */
            double *q = head(f, "layers/000/q", h, T, D, R);
            double *k = head(f, "layers/000/k", h / (H / KV), T, D, R);
            double *acc = calloc((size_t)rows_out * (size_t)T, sizeof *acc);
            for (long m = 0; m < T; m++) {
                const double *qm = q + (size_t)m * (size_t)D;
                for (long j = 0; j <= m; j++) {
                    const double *kj = k + (size_t)j * (size_t)D;
                    double tot = 0;
                    for (int i = 0; i < P; i++) {
                        int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + P;
                        double c = qm[ia] * kj[ia] + qm[ib] * kj[ib];
                        acc[(size_t)i * (size_t)T + (size_t)(m - j)] += c;
                    }
                    for (int dd = 0; dd < D; dd++) tot += qm[dd] * kj[dd];
                    acc[(size_t)P * (size_t)T + (size_t)(m - j)] += tot;
                }
            }
            for (int c = 0; c < rows_out; c++)
                for (long dl = 0; dl < T; dl++) acc[(size_t)c * (size_t)T + (size_t)dl] *= s / (double)(T - dl);
            ref[h] = acc;
            refmax[h] = calloc((size_t)rows_out, sizeof(double));
            for (int cc = 0; cc < rows_out; cc++)
                for (long dl = 0; dl < T; dl++)
                    refmax[h][cc] = fmax(refmax[h][cc], fabs(acc[(size_t)cc * (size_t)T + (size_t)dl]));
            free(q);
            free(k);
        }
        int c = strcmp(comp, "total") == 0 ? P : atoi(comp);
        if (c < 0 || c > P || n != T - lo) {
            fprintf(stderr, "refprofile: bad component or count: %s", line);
            return 1;
        }
        double big = refmax[h][c];
        double want = ref[h][(size_t)c * (size_t)T + (size_t)lo];
        double err = fabs(mean - want) / (big > 0 ? big : 1);
        if (err > worst) worst = err;
        if (err > 1e-9) bad++;
        checked++;
    }
    fclose(tab);
    H5Fclose(f);
    for (int h = 0; h < H; h++) {
        free(ref[h]);
        free(refmax[h]);
    }
    free(ref);
    free(refmax);
    free(theta_tab);
    printf("%ld rows, worst error %.3g of the largest |C|\n", checked, worst);
    if (checked == 0 || bad) {
        fprintf(stderr, "refprofile: %d rows differ by more than 1e-9\n", bad);
        return 1;
    }
    return 0;
}
