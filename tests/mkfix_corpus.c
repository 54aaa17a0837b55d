/* mkfix_corpus: the bad-input corpus beyond mkfixtures' one-file-per-refusal
 * set, and legal but unusual files (issue 7), for tests/cli-corpus.sh.
 *
 *   mkfix_corpus DIR
 *
 * Refused (status 1 from every tool; cli-corpus.sh pins each message):
 *   bad-cut-10.h5 .. bad-cut-90.h5  corpus-base.h5 cut at 10, 25, 50 and 90%
 *                           of its size (a half-written dump)
 *   bad-cut-super.h5        only its superblock
 *   bad-cut-sig.h5          only the 8-byte HDF5 signature
 *   bad-format-int.h5       format stored as an integer (a string belongs)
 *   bad-model-float.h5      model stored as a float (a string belongs)
 *   bad-dim-float.h5        head_dim stored as a float (an integer belongs)
 *   bad-trainlen-str.h5     train_len stored as a string (an integer belongs)
 *   bad-krot-nan.h5         a rotated-only file (q_rot, k_rot) with one NaN
 *                           in k_rot: layer 0, head 1, token 5, stored dim 3
 *   bad-dir.h5              a directory
 * Legal and unusual (status 0; the expected numbers have closed forms):
 *   odd-t1.h5     T 1: 2 query heads, 1 key head, D = R = 4, train_len 16;
 *                 q_d = (h + 1)(d + 1) / 8, k_d = (4 - d) / 8, so at the one
 *                 distance 0 pair 0 (dims 0, 2) and pair 1 (dims 1, 3) give
 *                 0.5 (h + 1) 10 / 64 each and the total 0.5 (h + 1) 20 / 64.
 *   odd-d2.h5     head_dim 2, rotary_dim 2: one pair (theta 1), T 64, L 16,
 *                 2 heads, 1 key head, q = (1, 0) and k = (2, 0) at every
 *                 token: every logit is sqrt(2) cos(m - n).
 *   odd-kv1.h5    n_kv_heads 1 (4 query heads share it), the standard shape
 *                 otherwise; the key does not depend on the head number, so
 *   odd-kv4.h5    (the same data, with that key stored for 4 key heads) must
 *                 give the same numbers.
 *   odd-freq0.h5  /rope/inv_freq = 1, 0.1, 0: pair 2 does not rotate (class
 *                 nope); every token holds the same vector (constant), so
 *                 pair 2's mean logit is the same at every distance.
 * Everything is deterministic. */
#include <errno.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fxwrite.h"

static void path_of(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static long file_size(const char *dir, const char *name)
{
    char p[4096];
    struct stat st;
    path_of(p, sizeof p, dir, name);
    if (stat(p, &st) != 0) die(p);
    return (long)st.st_size;
}

/* A copy of src cut to its first `bytes` bytes. */
static void cut(const char *dir, const char *src, const char *name, long bytes)
{
    char ps[4096], pd[4096];
    path_of(ps, sizeof ps, dir, src);
    path_of(pd, sizeof pd, dir, name);
    FILE *in = fopen(ps, "rb"), *out = fopen(pd, "wb");
    if (!in || !out) die(pd);
    for (long i = 0; i < bytes; i++) {
        int ch = getc(in);
        if (ch == EOF) die("cut: source shorter than the cut");
        putc(ch, out);
    }
    fclose(in);
    if (fclose(out) != 0) die(pd);
}

/* The size of a file's superblock, as HDF5 reports it. */
static long superblock_size(const char *dir, const char *name)
{
    char p[4096];
    H5F_info2_t info;
    path_of(p, sizeof p, dir, name);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0 || H5Fget_info2(f, &info) < 0) die("superblock size");
    H5Fclose(f);
    return (long)info.super.super_size;
}

/* A standard file with one attribute replaced. */
static void with_attr(const char *dir, const char *name, const char *attr, int kind, double v, const char *s)
{
    fx_spec sp = standard();
    hid_t f = write_file(dir, name, &sp);
    if (kind == 'i') attr_int(f, attr, (long long)v);
    if (kind == 'd') attr_double(f, attr, v);
    if (kind == 's') attr_str(f, attr, s);
    H5Fclose(f);
}

/* One value at a known place: head 1, token 5, stored dim 3. */
static void poison(hid_t f, const char *path, double v)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t start[3] = {1, 5, 3}, count[3] = {1, 1, 1};
    hid_t ms = H5Screate_simple(3, count, NULL);
    if (d < 0 || H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, sp, H5P_DEFAULT, &v) < 0)
        die(path);
    H5Sclose(ms);
    H5Sclose(sp);
    H5Dclose(d);
}

static double t1_value(int layer, int tensor, int h, int t, int d)
{
    (void)layer;
    (void)t;
    return tensor == 0 ? (h + 1) * (d + 1) / 8.0 : (4 - d) / 8.0;
}

static double d2_value(int layer, int tensor, int h, int t, int d)
{
    (void)layer;
    (void)h;
    (void)t;
    return d == 0 ? (tensor == 0 ? 1.0 : 2.0) : 0.0;
}

/* Keys that do not depend on the key head: kv1 and kv4 hold the same data. */
static double shared_key_value(int layer, int tensor, int h, int t, int d)
{
    return fx_value(layer, tensor, tensor == 1 ? 0 : h, t, d);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkfix_corpus DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char p[4096];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fx_spec s;

    /* Truncations of a good file (the same data as mkfixtures' f32.h5). */
    s = standard();
    good(dir, "corpus-base.h5", &s);
    long size = file_size(dir, "corpus-base.h5");
    static const struct {
        const char *name;
        int percent;
    } cuts[] = {{"bad-cut-10.h5", 10}, {"bad-cut-25.h5", 25}, {"bad-cut-50.h5", 50}, {"bad-cut-90.h5", 90}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        cut(dir, "corpus-base.h5", cuts[i].name, size * cuts[i].percent / 100);
    cut(dir, "corpus-base.h5", "bad-cut-super.h5", superblock_size(dir, "corpus-base.h5"));
    cut(dir, "corpus-base.h5", "bad-cut-sig.h5", 8);

    /* Attributes of the wrong kind, both ways. */
    with_attr(dir, "bad-format-int.h5", "format", 'i', 1, NULL);
    with_attr(dir, "bad-model-float.h5", "model", 'd', 0.5, NULL);
    with_attr(dir, "bad-dim-float.h5", "head_dim", 'd', 8.0, NULL);
    with_attr(dir, "bad-trainlen-str.h5", "train_len", 's', 0, "16");

    /* NaN in the rotated key of a file that stores only the rotated pair. */
    s = standard();
    s.plain = 0;
    s.rot = 1;
    s.dtype = FX_F64;
    {
        hid_t f = write_file(dir, "bad-krot-nan.h5", &s);
        poison(f, "layers/000/k_rot", NAN);
        H5Fclose(f);
    }

    /* A directory where a file belongs. */
    path_of(p, sizeof p, dir, "bad-dir.h5");
    if (mkdir(p, 0755) != 0 && errno != EEXIST) die(p);

    /* T = 1. */
    s = standard();
    s.heads = 2;
    s.kv = 1;
    s.D = 4;
    s.R = 4;
    s.T = 1;
    s.dtype = FX_F64;
    s.n_layers = 1;
    s.value = t1_value;
    good(dir, "odd-t1.h5", &s);

    /* head_dim 2: one pair. */
    s = standard();
    s.heads = 2;
    s.kv = 1;
    s.D = 2;
    s.R = 2;
    s.T = 64;
    s.dtype = FX_F64;
    s.n_layers = 1;
    s.value = d2_value;
    good(dir, "odd-d2.h5", &s);

    /* One key head for every query head, and the same keys stored four times. */
    s = standard();
    s.kv = 1;
    s.dtype = FX_F64;
    s.value = shared_key_value;
    good(dir, "odd-kv1.h5", &s);
    s.kv = 4;
    good(dir, "odd-kv4.h5", &s);

    /* A zero frequency: legal, class nope. */
    s = standard();
    s.constant = 1;
    s.dtype = FX_F64;
    {
        hid_t f = write_file(dir, "odd-freq0.h5", &s);
        double v[3] = {1.0, 0.1, 0.0};
        hsize_t n = 3;
        H5Gclose(H5Gcreate2(f, "rope", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        dset_write(f, "rope/inv_freq", H5T_IEEE_F64LE, 1, &n, H5T_NATIVE_DOUBLE, v, 0);
        H5Fclose(f);
    }
    return 0;
}
