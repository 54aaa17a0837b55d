/* fxwrite.h: writing qkdump fixtures from C, for the fixture generators
 * (tests/mkfix*.c).  Header-only: each generator is one program.
 *
 * fx_spec describes a file; write_file writes the standard layout with the
 * deterministic data of fixtures.h (or a caller's data function) and returns
 * the open file so that a generator can add or break something before
 * closing it. */
#ifndef PE_FXWRITE_H
#define PE_FXWRITE_H

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"

typedef enum { FX_F32 = 0, FX_F64, FX_F16, FX_BF16 } fx_dtype;

typedef struct fx_spec {
    int heads, kv, D, R;
    long T;
    long train_len;        /* < 0: attribute absent */
    const char *pairing;   /* NULL: attribute absent */
    int interleaved;       /* store in the interleaved layout */
    fx_dtype dtype;
    int deflate;           /* chunked + shuffle + deflate */
    int plain, rot;        /* store q/k, q_rot/k_rot */
    int64_t pos0;
    int gappy;             /* positions with gaps: p_m = pos0 + m + m/3 */
    int write_positions;
    int write_inv_freq;
    int write_rotary_dim;
    double base;
    int n_layers;
    int layer_ids[4];
    int constant;          /* every token the same vector */
    const char *rot_pairing; /* rotate q_rot/k_rot with this layout (default: the stored one) */
    /* Value of half-layout dim d of token t, head h, tensor (0 q, 1 k) of a
     * layer; NULL = fx_value.  Lets a generator plant a pattern. */
    double (*value)(int layer, int tensor, int h, int t, int d);
} fx_spec;

static inline fx_spec standard(void)
{
    fx_spec s = {FX_HEADS, FX_KV, FX_D, FX_R, FX_T, FX_L, "half", 0, FX_F32, 0, 1, 0, 0, 0, 1, 0, 1,
                 10000.0, 2, {0, 2, 0, 0}, 0, NULL, NULL};
    return s;
}

static inline void die(const char *what)
{
    fprintf(stderr, "mkfixtures: %s\n", what);
    exit(1);
}

static inline hid_t file_type(fx_dtype t)
{
    hid_t ft;
    switch (t) {
    case FX_F64: return H5Tcopy(H5T_IEEE_F64LE);
    case FX_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case FX_F16:
        /* IEEE half as h5py writes it. */
        ft = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(ft, 15, 10, 5, 0, 10);
        H5Tset_precision(ft, 16);
        H5Tset_size(ft, 2);
        H5Tset_ebias(ft, 15);
        return ft;
    case FX_BF16:
        /* bfloat16 as the qkdump spec describes it. */
        ft = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(ft, 15, 7, 8, 0, 7);
        H5Tset_precision(ft, 16);
        H5Tset_size(ft, 2);
        H5Tset_ebias(ft, 127);
        return ft;
    }
    return -1;
}

static inline void attr_int(hid_t loc, const char *name, long long v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t a = H5Acreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_LLONG, &v) < 0) die(name);
    H5Aclose(a);
    H5Sclose(sp);
}

static inline void attr_double(hid_t loc, const char *name, double v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t a = H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &v) < 0) die(name);
    H5Aclose(a);
    H5Sclose(sp);
}

/* Variable-length UTF-8, the way h5py writes str attributes. */
static inline void attr_str(hid_t loc, const char *name, const char *v)
{
    hid_t sp = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, &v) < 0) die(name);
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
}

/* Fixed-length string, the other form the spec allows. */
static inline void attr_fixed_str(hid_t loc, const char *name, const char *v)
{
    hid_t sp = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v));
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, v) < 0) die(name);
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
}

static inline void dset_write(hid_t loc, const char *name, hid_t ftype, int rank, const hsize_t *dims,
                       hid_t mtype, const void *data, int deflate)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (deflate && rank == 3) {
        hsize_t chunk[3] = {1, dims[1] < 16 ? dims[1] : 16, dims[2]};
        H5Pset_chunk(dcpl, 3, chunk);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 6);
    }
    if (H5Lexists(loc, name, H5P_DEFAULT) > 0) H5Ldelete(loc, name, H5P_DEFAULT);
    hid_t d = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) die(name);
    if (data && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) die(name);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
}

/* /tokens/nll (pe attribute `pe` when not NULL) and, when `control` is not
 * NULL, /tokens/nll_control with that control attribute: fx_nll and
 * fx_nll_control of fixtures.h, float32. */
static inline void write_truth(hid_t f, long T, const char *pe, const char *control)
{
    double *v = malloc((size_t)T * sizeof *v);
    hsize_t n = (hsize_t)T;
    if (!v) die("out of memory");
    if (H5Lexists(f, "tokens", H5P_DEFAULT) <= 0) H5Gclose(H5Gcreate2(f, "tokens", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    for (long m = 0; m < T; m++) v[m] = fx_nll(m, T);
    dset_write(f, "tokens/nll", H5T_IEEE_F32LE, 1, &n, H5T_NATIVE_DOUBLE, v, 0);
    if (pe) {
        hid_t d = H5Dopen2(f, "tokens/nll", H5P_DEFAULT);
        attr_str(d, "pe", pe);
        H5Dclose(d);
    }
    if (control) {
        for (long m = 0; m < T; m++) v[m] = fx_nll_control(m, T);
        dset_write(f, "tokens/nll_control", H5T_IEEE_F32LE, 1, &n, H5T_NATIVE_DOUBLE, v, 0);
        hid_t d = H5Dopen2(f, "tokens/nll_control", H5P_DEFAULT);
        attr_str(d, "control", control);
        H5Dclose(d);
    }
    free(v);
}

/* A second spec's loss over the same tokens: fx_nll + fx_nll_shift, the
 * control as write_truth's. */
static inline void write_truth_shifted(hid_t f, long T, const char *pe, const char *control)
{
    write_truth(f, T, pe, control);
    double *v = malloc((size_t)T * sizeof *v);
    if (!v) die("out of memory");
    for (long m = 0; m < T; m++) v[m] = fx_nll(m, T) + fx_nll_shift(m);
    hid_t d = H5Dopen2(f, "tokens/nll", H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) die("cannot rewrite tokens/nll");
    H5Dclose(d);
    free(v);
}

/* /tokens/ids: (7 m + salt) mod 50; files of the same salt hold the same tokens. */
static inline void write_ids(hid_t f, long T, int salt)
{
    int64_t *v = malloc((size_t)T * sizeof *v);
    hsize_t n = (hsize_t)T;
    if (!v) die("out of memory");
    if (H5Lexists(f, "tokens", H5P_DEFAULT) <= 0) H5Gclose(H5Gcreate2(f, "tokens", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    for (long m = 0; m < T; m++) v[m] = (7 * m + salt) % 50;
    dset_write(f, "tokens/ids", H5T_STD_I64LE, 1, &n, H5T_NATIVE_INT64, v, 0);
    free(v);
}

static inline int64_t position(const fx_spec *s, long m)
{
    return s->pos0 + m + (s->gappy ? m / 3 : 0);
}

static inline double theta_of(const fx_spec *s, int i)
{
    return pow(s->base, -2.0 * i / s->R);
}

/* One tensor of one layer: [heads, T, D] in the stored layout, rotated when
 * `rotated` (with the layout named by rot_pairing, to make a wrong-pairing
 * file on purpose). */
static inline double *tensor_data(const fx_spec *s, int layer, int tensor, int rotated)
{
    int nh = tensor == 0 ? s->heads : s->kv, P = s->R / 2;
    size_t n = (size_t)nh * (size_t)s->T * (size_t)s->D;
    double *x = malloc(n * sizeof *x), *v = malloc((size_t)s->D * sizeof *v);
    if (!x || !v) die("out of memory");
    int rot_inter = s->rot_pairing ? strcmp(s->rot_pairing, "interleaved") == 0 : s->interleaved;
    for (int h = 0; h < nh; h++) {
        for (long t = 0; t < s->T; t++) {
            for (int d = 0; d < s->D; d++)
                v[d] = (s->value ? s->value : fx_value)(layer, tensor, h, s->constant ? 0 : (int)t, d);
            if (rotated) {
                /* Rotate pair i of the half layout by position * theta_i,
                 * written out here rather than borrowed from the library. */
                for (int i = 0; i < P; i++) {
                    double a = (double)position(s, t) * theta_of(s, i);
                    double re = v[i], im = v[i + P];
                    v[i] = re * cos(a) - im * sin(a);
                    v[i + P] = re * sin(a) + im * cos(a);
                }
            }
            double *row = x + ((size_t)h * (size_t)s->T + (size_t)t) * (size_t)s->D;
            for (int d = 0; d < s->D; d++) {
                int inter = rotated ? rot_inter : s->interleaved;
                row[inter ? fx_interleaved_dim(d, s->R) : d] = v[d];
            }
        }
    }
    free(v);
    return x;
}

static inline hid_t write_file(const char *dir, const char *name, const fx_spec *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) die(path);
    attr_str(f, "format", "qkdump");
    attr_int(f, "format_version", 1);
    attr_int(f, "n_heads", s->heads);
    attr_int(f, "n_kv_heads", s->kv);
    attr_int(f, "head_dim", s->D);
    if (s->write_rotary_dim) attr_int(f, "rotary_dim", s->R);
    if (s->base != 10000.0) attr_double(f, "rope_theta", s->base);
    if (s->pairing) attr_str(f, "rope_pairing", s->pairing);
    if (s->train_len >= 0) attr_int(f, "train_len", s->train_len);
    attr_str(f, "model", "petools fixture");
    attr_str(f, "created_by", "mkfixtures");

    hid_t g = H5Gcreate2(f, "tokens", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (s->write_positions) {
        int64_t *pos = malloc((size_t)(s->T ? s->T : 1) * sizeof *pos);
        for (long m = 0; m < s->T; m++) pos[m] = position(s, m);
        hsize_t n = (hsize_t)s->T;
        dset_write(g, "positions", H5T_STD_I64LE, 1, &n, H5T_NATIVE_INT64, pos, 0);
        free(pos);
    }
    H5Gclose(g);
    if (s->write_inv_freq) {
        int P = s->R / 2;
        double th[512];
        for (int i = 0; i < P; i++) th[i] = theta_of(s, i);
        g = H5Gcreate2(f, "rope", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t n = (hsize_t)P;
        dset_write(g, "inv_freq", H5T_IEEE_F64LE, 1, &n, H5T_NATIVE_DOUBLE, th, 0);
        H5Gclose(g);
    }

    hid_t lg = H5Gcreate2(f, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ft = file_type(s->dtype);
    for (int l = 0; l < s->n_layers; l++) {
        char lname[16];
        snprintf(lname, sizeof lname, "%03d", s->layer_ids[l]);
        hid_t gl = H5Gcreate2(lg, lname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        attr_int(gl, "index", s->layer_ids[l]);
        for (int rot = 0; rot < 2; rot++) {
            if (!(rot ? s->rot : s->plain)) continue;
            for (int tn = 0; tn < 2; tn++) {
                double *x = tensor_data(s, s->layer_ids[l], tn, rot);
                hsize_t dims[3] = {(hsize_t)(tn ? s->kv : s->heads), (hsize_t)s->T, (hsize_t)s->D};
                const char *dn = rot ? (tn ? "k_rot" : "q_rot") : (tn ? "k" : "q");
                dset_write(gl, dn, ft, 3, dims, H5T_NATIVE_DOUBLE, x, s->deflate);
                free(x);
            }
        }
        H5Gclose(gl);
    }
    H5Tclose(ft);
    H5Gclose(lg);
    return f; /* the caller may break it further, then closes it */
}

static inline void good(const char *dir, const char *name, const fx_spec *s)
{
    H5Fclose(write_file(dir, name, s));
}

#endif
