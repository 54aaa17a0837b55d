/* mkfix_entropy: the qkdump fixtures of peentropy's tests, written into DIR.
 *
 *   mkfix_entropy DIR [REAL_DUMP]
 *
 * Names start with "ent-" so that they cannot collide with the other
 * generators' files.  REAL_DUMP (default testdata/stories260K.h5, found from
 * the repository root where tests/run.sh runs) is copied twice with one
 * change each; without it those two files are not written and the tests
 * that need them skip.  Deterministic: the same bytes on every run. */
#include <errno.h>

#include "fxwrite.h"

/* ---- planted data ---- */

/* The specification's 6 x 4 test-vector matrix. */
static const double TV[6][4] = {{1.0, 0.5, -0.2, 0.0}, {0.9, 0.4, 0.1, 0.3}, {1.2, 0.6, 0.0, -0.1},
                                {0.8, 0.7, -0.3, 0.2}, {1.1, 0.3, 0.2, 0.0}, {1.0, 0.5, 0.1, -0.2}};

static double v_tv(int layer, int tensor, int h, int t, int d)
{
    (void)layer, (void)tensor, (void)h;
    return TV[t][d];
}

/* The cone: the unit vector (1, 0) at every token; the rotation makes it
 * turn by theta per position. */
static double v_cone(int layer, int tensor, int h, int t, int d)
{
    (void)layer, (void)tensor, (void)h, (void)t;
    return d == 0 ? 1.0 : 0.0;
}

/* Another sequence for pooling: fx_value of other keys. */
static double v_other(int layer, int tensor, int h, int t, int d)
{
    return fx_value(layer + 7, tensor, h, t + 1000, d);
}

/* The same vectors in every layer, tensor and head: every score ties. */
static double v_ties(int layer, int tensor, int h, int t, int d)
{
    (void)layer, (void)tensor, (void)h;
    return fx_value(0, 0, 0, t, d);
}

/* Key head 0, token 2 equals the mean over the 5 tokens (rows 0, 1, 3, 4
 * sum to 4 x row 2); queries and key head 1 are ordinary. */
static const double ZR[5][4] = {{0.5, -0.25, 1.0, 0.75}, {0.25, 0.5, -0.5, 0.25}, {0.25, 0.125, 0.25, 0.375},
                                {-0.25, 0.125, 0.5, 0.5}, {0.5, 0.125, 0.0, 0.0}};

static double v_zerorow(int layer, int tensor, int h, int t, int d)
{
    if (tensor == 1 && h == 0) return ZR[t][d];
    return fx_value(layer, tensor, h, t, d);
}

/* ---- helpers ---- */

static void layer_inv_freq(hid_t f, int layer, const double *v, hsize_t n)
{
    char path[64];
    snprintf(path, sizeof path, "layers/%03d/inv_freq", layer);
    dset_write(f, path, H5T_IEEE_F64LE, 1, &n, H5T_NATIVE_DOUBLE, v, 0);
}

/* Copies src to DIR/name byte for byte; returns 0, or -1 when src is missing. */
static int copy_file(const char *src, const char *dir, const char *name)
{
    char path[4096];
    FILE *in = fopen(src, "rb"), *out;
    if (!in) return -1;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!(out = fopen(path, "wb"))) die(path);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) die(path);
    if (ferror(in) || fclose(out) != 0) die(path);
    fclose(in);
    return 0;
}

static hid_t open_rw(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) die(path);
    return f;
}

/* The real dump with one change each: layer 3 without rotary embedding, and
 * every position moved by +1000. */
static void real_copies(const char *dir, const char *real)
{
    if (copy_file(real, dir, "ent-real-rope0.h5") < 0 || copy_file(real, dir, "ent-real-shift.h5") < 0) {
        printf("mkfix_entropy: %s: %s; the real-dump copies are not written\n", real, strerror(errno));
        return;
    }
    hid_t f = open_rw(dir, "ent-real-rope0.h5");
    hid_t g = H5Gopen2(f, "layers/003", H5P_DEFAULT);
    if (g < 0) die("ent-real-rope0.h5: layers/003");
    attr_int(g, "rope", 0);
    H5Gclose(g);
    H5Fclose(f);

    f = open_rw(dir, "ent-real-shift.h5");
    hid_t d = H5Dopen2(f, "tokens/positions", H5P_DEFAULT);
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (n <= 0) die("ent-real-shift.h5: tokens/positions");
    int64_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos || H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, pos) < 0) die("positions");
    for (hssize_t i = 0; i < n; i++) pos[i] += 1000;
    if (H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, pos) < 0) die("positions");
    free(pos);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: mkfix_entropy DIR [REAL_DUMP]\n");
        return 2;
    }
    const char *dir = argv[1];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fx_spec s;

    /* The test vectors: one head, q and k both the 6 x 4 matrix. */
    s = standard();
    s.heads = s.kv = 1;
    s.D = s.R = 4;
    s.T = 6;
    s.n_layers = 1;
    s.layer_ids[0] = 0;
    s.dtype = FX_F64;
    s.value = v_tv;
    good(dir, "ent-tv.h5", &s);
    s.R = 0;
    s.pairing = NULL;
    good(dir, "ent-tv-norope.h5", &s);

    /* The cone: layer 0 turns by 0.01 per position, layer 1 by 1 (R = 2:
     * theta_0 = 1 by default). */
    s = standard();
    s.heads = s.kv = 1;
    s.D = s.R = 2;
    s.T = 64;
    s.train_len = 64;
    s.pairing = "interleaved";
    s.interleaved = 1;
    s.layer_ids[0] = 0;
    s.layer_ids[1] = 1;
    s.dtype = FX_F64;
    s.value = v_cone;
    {
        hid_t f = write_file(dir, "ent-cone.h5", &s);
        double th = 0.01;
        layer_inv_freq(f, 0, &th, 1);
        H5Fclose(f);
    }

    /* Grouped-query attention: 8 query heads on 2 key heads, pass dims. */
    s = standard();
    s.heads = 8;
    s.kv = 2;
    s.T = 48;
    s.layer_ids[1] = 3;
    good(dir, "ent-gqa.h5", &s);
    /* A second sequence of the same model, for pooling. */
    s.T = 30;
    s.pos0 = 5;
    s.write_positions = 1;
    s.value = v_other;
    good(dir, "ent-gqa2.h5", &s);

    /* Ties everywhere. */
    s = standard();
    s.D = s.R = 4;
    s.T = 20;
    s.layer_ids[1] = 1;
    s.value = v_ties;
    good(dir, "ent-ties.h5", &s);

    /* Twins: the same logical data stored half and interleaved. */
    s = standard();
    s.heads = 2;
    s.kv = 1;
    s.D = s.R = 8;
    s.T = 64;
    s.dtype = FX_F64;
    good(dir, "ent-twin-half.h5", &s);
    s.interleaved = 1;
    s.pairing = "interleaved";
    good(dir, "ent-twin-inter.h5", &s);

    /* A key token equal to the mean: --prep uncomp refuses it. */
    s = standard();
    s.heads = 2;
    s.kv = 1;
    s.D = 4;
    s.R = 0;
    s.pairing = NULL;
    s.T = 5;
    s.n_layers = 1;
    s.dtype = FX_F64;
    s.value = v_zerorow;
    good(dir, "ent-zerorow.h5", &s);

    real_copies(dir, argc == 3 ? argv[2] : "testdata/stories260K.h5");
    return 0;
}
