/* mkfixtures: writes the shared qkdump test fixtures into a folder.
 *
 *   mkfixtures DIR
 *
 * Good fixtures hold the same logical data (fixtures.h) in every dtype,
 * pairing, storage and position layout, so that the tools must print the
 * same numbers for all of them.  Bad fixtures start from a good file and
 * break exactly one thing each, one per refusal of the qkdump spec.
 * Everything is deterministic: the same bytes on every run. */
#include "fxwrite.h"

/* ---- bad files: a standard file with one thing broken ---- */

typedef void (*breaker)(hid_t f);

static void bad(const char *dir, const char *name, breaker b)
{
    fx_spec s = standard();
    hid_t f = write_file(dir, name, &s);
    b(f);
    H5Fclose(f);
}

static void b_no_format(hid_t f) { H5Adelete(f, "format"); }
static void b_format(hid_t f) { attr_str(f, "format", "npz"); }
static void b_version(hid_t f) { attr_int(f, "format_version", 2); }
static void b_no_heads(hid_t f) { H5Adelete(f, "n_heads"); }
static void b_no_kv(hid_t f) { H5Adelete(f, "n_kv_heads"); }
static void b_no_dim(hid_t f) { H5Adelete(f, "head_dim"); }
static void b_heads_str(hid_t f) { attr_str(f, "n_heads", "four"); }
static void b_theta_str(hid_t f) { attr_str(f, "rope_theta", "10000"); }
static void b_pairing_int(hid_t f) { attr_int(f, "rope_pairing", 1); }
static void b_heads_zero(hid_t f) { attr_int(f, "n_heads", 0); }
static void b_kv_neg(hid_t f) { attr_int(f, "n_kv_heads", -2); }
static void b_dim_zero(hid_t f) { attr_int(f, "head_dim", 0); }
static void b_kv_divide(hid_t f) { attr_int(f, "n_kv_heads", 3); }
static void b_rotary_odd(hid_t f) { attr_int(f, "rotary_dim", 5); }
static void b_rotary_neg(hid_t f) { attr_int(f, "rotary_dim", -2); }
static void b_rotary_big(hid_t f) { attr_int(f, "rotary_dim", 10); }
static void b_pairing(hid_t f) { attr_str(f, "rope_pairing", "zigzag"); }
static void b_no_pairing(hid_t f) { H5Adelete(f, "rope_pairing"); }
static void b_no_layers(hid_t f) { H5Ldelete(f, "layers", H5P_DEFAULT); }
static void b_empty_layers(hid_t f)
{
    H5Ldelete(f, "layers", H5P_DEFAULT);
    H5Gclose(H5Gcreate2(f, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
}
static void b_no_k(hid_t f) { H5Ldelete(f, "layers/000/k", H5P_DEFAULT); }
static void b_q_rank(hid_t f)
{
    hsize_t dims[2] = {FX_HEADS, FX_T * FX_D};
    dset_write(f, "layers/000/q", H5T_IEEE_F32LE, 2, dims, H5T_NATIVE_DOUBLE, NULL, 0);
}
static void b_q_shape(hid_t f)
{
    hsize_t dims[3] = {FX_HEADS, FX_T, FX_D + 2};
    dset_write(f, "layers/000/q", H5T_IEEE_F32LE, 3, dims, H5T_NATIVE_DOUBLE, NULL, 0);
}
static void b_k_heads(hid_t f)
{
    hsize_t dims[3] = {FX_HEADS, FX_T, FX_D};
    dset_write(f, "layers/000/k", H5T_IEEE_F32LE, 3, dims, H5T_NATIVE_DOUBLE, NULL, 0);
}
static void b_q_int(hid_t f)
{
    hsize_t dims[3] = {FX_HEADS, FX_T, FX_D};
    dset_write(f, "layers/000/q", H5T_STD_I32LE, 3, dims, H5T_NATIVE_DOUBLE, NULL, 0);
}
static void b_T_mismatch(hid_t f)
{
    hsize_t dq[3] = {FX_HEADS, FX_T - 1, FX_D}, dk[3] = {FX_KV, FX_T - 1, FX_D};
    dset_write(f, "layers/002/q", H5T_IEEE_F32LE, 3, dq, H5T_NATIVE_DOUBLE, NULL, 0);
    dset_write(f, "layers/002/k", H5T_IEEE_F32LE, 3, dk, H5T_NATIVE_DOUBLE, NULL, 0);
}
static void b_T_zero(hid_t f)
{
    hsize_t dq[3] = {FX_HEADS, 0, FX_D}, dk[3] = {FX_KV, 0, FX_D};
    for (int l = 0; l < 2; l++) {
        char q[32], k[32];
        snprintf(q, sizeof q, "layers/%03d/q", 2 * l);
        snprintf(k, sizeof k, "layers/%03d/k", 2 * l);
        dset_write(f, q, H5T_IEEE_F32LE, 3, dq, H5T_NATIVE_DOUBLE, NULL, 0);
        dset_write(f, k, H5T_IEEE_F32LE, 3, dk, H5T_NATIVE_DOUBLE, NULL, 0);
    }
    H5Ldelete(f, "tokens/positions", H5P_DEFAULT);
}
static void b_positions_order(hid_t f)
{
    int64_t pos[FX_T];
    for (int m = 0; m < FX_T; m++) pos[m] = m;
    pos[20] = 19; /* repeats */
    hsize_t n = FX_T;
    dset_write(f, "tokens/positions", H5T_STD_I64LE, 1, &n, H5T_NATIVE_INT64, pos, 0);
}
static void b_positions_len(hid_t f)
{
    int64_t pos[FX_T - 1];
    for (int m = 0; m < FX_T - 1; m++) pos[m] = m;
    hsize_t n = FX_T - 1;
    dset_write(f, "tokens/positions", H5T_STD_I64LE, 1, &n, H5T_NATIVE_INT64, pos, 0);
}
static void b_ids_len(hid_t f)
{
    write_ids(f, FX_T - 1, 0);
}
static void b_ids_float(hid_t f)
{
    double v[FX_T] = {0};
    hsize_t n = FX_T;
    if (H5Lexists(f, "tokens", H5P_DEFAULT) <= 0) H5Gclose(H5Gcreate2(f, "tokens", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    dset_write(f, "tokens/ids", H5T_IEEE_F64LE, 1, &n, H5T_NATIVE_DOUBLE, v, 0);
}
static void b_positions_float(hid_t f)
{
    double pos[FX_T];
    for (int m = 0; m < FX_T; m++) pos[m] = m;
    hsize_t n = FX_T;
    dset_write(f, "tokens/positions", H5T_IEEE_F64LE, 1, &n, H5T_NATIVE_DOUBLE, pos, 0);
}
static void inv_freq(hid_t f, const char *path, const double *v, hsize_t n)
{
    if (H5Lexists(f, "rope", H5P_DEFAULT) <= 0)
        H5Gclose(H5Gcreate2(f, "rope", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    dset_write(f, path, H5T_IEEE_F64LE, 1, &n, H5T_NATIVE_DOUBLE, v, 0);
}
static void b_freq_len(hid_t f)
{
    double v[2] = {1, 0.1};
    inv_freq(f, "rope/inv_freq", v, 2);
}
static void b_freq_neg(hid_t f)
{
    double v[3] = {1, -0.1, 0.01};
    inv_freq(f, "rope/inv_freq", v, 3);
}
static void b_freq_nan(hid_t f)
{
    double v[3] = {1, NAN, 0.01};
    inv_freq(f, "rope/inv_freq", v, 3);
}
static void b_layer_freq_inf(hid_t f)
{
    double v[3] = {1, INFINITY, 0.01};
    inv_freq(f, "layers/002/inv_freq", v, 3);
}
static void b_huge(hid_t f)
{
    /* 2^40 elements claimed; chunked, so HDF5 stores nothing. */
    hsize_t dq[3] = {FX_HEADS, 1ULL << 35, FX_D}, dk[3] = {FX_KV, 1ULL << 35, FX_D};
    hsize_t chunk[3] = {1, 1024, FX_D};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    for (int l = 0; l < 2; l++) {
        char q[32], k[32];
        snprintf(q, sizeof q, "layers/%03d/q", 2 * l);
        snprintf(k, sizeof k, "layers/%03d/k", 2 * l);
        H5Ldelete(f, q, H5P_DEFAULT);
        H5Ldelete(f, k, H5P_DEFAULT);
        hid_t sq = H5Screate_simple(3, dq, NULL), sk = H5Screate_simple(3, dk, NULL);
        H5Dclose(H5Dcreate2(f, q, H5T_IEEE_F32LE, sq, H5P_DEFAULT, dcpl, H5P_DEFAULT));
        H5Dclose(H5Dcreate2(f, k, H5T_IEEE_F32LE, sk, H5P_DEFAULT, dcpl, H5P_DEFAULT));
        H5Sclose(sq);
        H5Sclose(sk);
    }
    H5Ldelete(f, "tokens/positions", H5P_DEFAULT);
    H5Pclose(dcpl);
}
/* One non-finite value at a known place: layer 0, head 1, token 5, dim 3. */
static void poison(hid_t f, const char *path, double v)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t start[3] = {1, 5, 3}, count[3] = {1, 1, 1};
    hid_t ms = H5Screate_simple(3, count, NULL);
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
    if (H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, sp, H5P_DEFAULT, &v) < 0) die(path);
    H5Sclose(ms);
    H5Sclose(sp);
    H5Dclose(d);
}
static void b_q_nan(hid_t f) { poison(f, "layers/000/q", NAN); }
static void b_k_inf(hid_t f) { poison(f, "layers/000/k", INFINITY); }
static void b_lzf(hid_t f)
{
    /* h5py's lzf filter id, recorded as optional so that HDF5 writes the
     * data unfiltered: the reader must still refuse it by its id. */
    hsize_t dims[3] = {FX_HEADS, FX_T, FX_D}, chunk[3] = {1, 8, FX_D};
    hid_t sp = H5Screate_simple(3, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    H5Pset_filter(dcpl, 32000, H5Z_FLAG_OPTIONAL, 0, NULL);
    H5Ldelete(f, "layers/000/q", H5P_DEFAULT);
    hid_t d = H5Dcreate2(f, "layers/000/q", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) die("lzf dataset");
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
}
static void b_dup_index(hid_t f)
{
    hid_t g = H5Gopen2(f, "layers/002", H5P_DEFAULT);
    attr_int(g, "index", 0);
    H5Gclose(g);
}
static void b_version_str(hid_t f) { attr_str(f, "format_version", "1"); }
/* The recorded loss, broken one way each. */
static void b_nll_len(hid_t f)
{
    double v[FX_T - 1] = {0};
    hsize_t n = FX_T - 1;
    write_truth(f, FX_T, NULL, "window:16:1");
    dset_write(f, "tokens/nll", H5T_IEEE_F32LE, 1, &n, H5T_NATIVE_DOUBLE, v, 0);
}
static void b_nll_int(hid_t f)
{
    int v[FX_T] = {0};
    hsize_t n = FX_T;
    write_truth(f, FX_T, NULL, NULL);
    dset_write(f, "tokens/nll", H5T_STD_I32LE, 1, &n, H5T_NATIVE_INT, v, 0);
}
static void b_nll_inf(hid_t f)
{
    double v[FX_T];
    hsize_t n = FX_T;
    for (int m = 0; m < FX_T; m++) v[m] = m == 7 ? INFINITY : 1.0;
    write_truth(f, FX_T, NULL, NULL);
    dset_write(f, "tokens/nll", H5T_IEEE_F32LE, 1, &n, H5T_NATIVE_DOUBLE, v, 0);
}
static void b_control_attr(hid_t f) { write_truth(f, FX_T, NULL, "window:16"); }
static void b_control_len(hid_t f)
{
    double v[FX_T + 1] = {0};
    hsize_t n = FX_T + 1;
    write_truth(f, FX_T, NULL, "window:16:1");
    dset_write(f, "tokens/nll_control", H5T_IEEE_F32LE, 1, &n, H5T_NATIVE_DOUBLE, v, 0);
}
static void b_control_noattr(hid_t f)
{
    write_truth(f, FX_T, NULL, "window:16:1");
    hid_t d = H5Dopen2(f, "tokens/nll_control", H5P_DEFAULT);
    H5Adelete(d, "control");
    H5Dclose(d);
}

/* spectral.h5: pairs 0-2 hold constant query and key (a pure cosine
 * profile); pair 3's query and key content rotate at 2 theta_3, which plants
 * a line at 3 theta_3 with a tenth of the main line's amplitude. */
static double spectral_value(int layer, int tensor, int h, int t, int d)
{
    (void)layer;
    (void)h;
    int i = d % 4, im = d >= 4;
    if (i < 3) return im ? 0.0 : 1.0;
    double a = 2.0 * pow(10.0, -6.0 / 8.0) * t, amp = tensor == 0 ? 0.5 : 0.2;
    return im ? amp * sin(a) : 1.0 + amp * cos(a);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (!fp) die(path);
    fputs(text, fp);
    fclose(fp);
}

/* A copy of src cut to `bytes`. */
static void truncated(const char *dir, const char *src, const char *name, long bytes)
{
    char ps[4096], pd[4096];
    snprintf(ps, sizeof ps, "%s/%s", dir, src);
    snprintf(pd, sizeof pd, "%s/%s", dir, name);
    FILE *in = fopen(ps, "rb"), *out = fopen(pd, "wb");
    if (!in || !out) die(pd);
    for (long i = 0; i < bytes; i++) {
        int ch = getc(in);
        if (ch == EOF) break;
        putc(ch, out);
    }
    fclose(in);
    fclose(out);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkfixtures DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fx_spec s;

    /* The same data in every dtype and layout. */
    s = standard();
    good(dir, "f32.h5", &s);
    s.dtype = FX_F64;
    good(dir, "f64.h5", &s);
    s.dtype = FX_F16;
    good(dir, "f16.h5", &s);
    s.dtype = FX_BF16;
    good(dir, "bf16.h5", &s);
    s = standard();
    s.deflate = 1;
    good(dir, "deflate.h5", &s);
    s = standard();
    s.interleaved = 1;
    s.pairing = "interleaved";
    good(dir, "interleaved.h5", &s);
    s = standard();
    s.plain = 0;
    s.rot = 1;
    s.dtype = FX_F64;
    good(dir, "rotated.h5", &s);
    s = standard();
    s.rot = 1;
    s.dtype = FX_F64;
    good(dir, "both.h5", &s);
    s = standard();
    s.rot = 1;
    s.dtype = FX_F64;
    s.rot_pairing = "interleaved"; /* stored rotated with the other layout */
    good(dir, "wrongpair.h5", &s);
    s = standard();
    s.pos0 = 100;
    s.write_positions = 1;
    good(dir, "offset.h5", &s);
    s = standard();
    s.gappy = 1;
    s.write_positions = 1;
    good(dir, "gappy.h5", &s);
    s = standard();
    s.write_inv_freq = 1;
    good(dir, "invfreq.h5", &s);
    s = standard();
    s.constant = 1;
    good(dir, "const.h5", &s);
    s = standard();
    s.write_rotary_dim = 0; /* R = D = 8 */
    s.R = FX_D;
    s.train_len = -1;
    good(dir, "minimal.h5", &s);
    s = standard();
    s.T = 24; /* a second sequence, for pooling */
    good(dir, "short.h5", &s);
    s = standard();
    s.T = 1;
    good(dir, "t1.h5", &s);
    s = standard();
    s.R = 0;
    s.pairing = NULL;
    good(dir, "norope.h5", &s);
    s = standard();
    s.heads = 8;
    s.kv = 8;
    s.D = 128;
    s.R = 128;
    s.T = 2048;
    s.train_len = 512;
    s.n_layers = 1;
    good(dir, "big.h5", &s);

    s = standard();
    s.heads = 1;
    s.kv = 1;
    s.D = 8;
    s.R = 8;
    s.T = 1024;
    s.train_len = 256;
    s.base = 10.0; /* theta = 1, 0.56, 0.32, 0.18: two turns within 256 for all */
    s.dtype = FX_F64;
    s.n_layers = 1;
    s.value = spectral_value;
    good(dir, "spectral.h5", &s);

    /* Fixed-length strings instead of h5py's variable-length ones. */
    {
        s = standard();
        hid_t f = write_file(dir, "fixedstr.h5", &s);
        attr_fixed_str(f, "format", "qkdump");
        attr_fixed_str(f, "rope_pairing", "half");
        H5Fclose(f);
    }
    /* Per-layer frequencies, and a layer without rotary embedding. */
    {
        s = standard();
        hid_t f = write_file(dir, "layerfreq.h5", &s);
        double v[3] = {0.5, 0.25, 0};
        inv_freq(f, "layers/002/inv_freq", v, 3);
        hid_t g = H5Gopen2(f, "layers/000", H5P_DEFAULT);
        attr_int(g, "rope", 0);
        H5Gclose(g);
        H5Fclose(f);
    }
    /* The same data with one layer more: pools with f32.h5 only by --layers. */
    s = standard();
    s.n_layers = 3;
    s.layer_ids[0] = 0;
    s.layer_ids[1] = 1;
    s.layer_ids[2] = 2;
    good(dir, "threelayers.h5", &s);

    /* The recorded loss (fixtures.h: fx_nll, fx_nll_control): with the
     * control, without it, and a second sequence with the control. */
    {
        s = standard();
        hid_t f = write_file(dir, "truth.h5", &s);
        write_truth(f, FX_T, NULL, "window:16:1");
        write_ids(f, FX_T, 0);
        H5Fclose(f);
        /* Another spec's loss over the same tokens, and over other tokens. */
        f = write_file(dir, "truth-pi.h5", &s);
        write_truth_shifted(f, FX_T, "pi:4", "window:16:1");
        write_ids(f, FX_T, 0);
        H5Fclose(f);
        f = write_file(dir, "truth-pi-otherids.h5", &s);
        write_truth_shifted(f, FX_T, "pi:4", "window:16:1");
        write_ids(f, FX_T, 1);
        H5Fclose(f);
        f = write_file(dir, "truth-nocontrol.h5", &s);
        write_truth(f, FX_T, "rope", NULL);
        H5Fclose(f);
        s.T = 24;
        f = write_file(dir, "truth-short.h5", &s);
        write_truth(f, 24, NULL, "window:16:1");
        H5Fclose(f);
        f = write_file(dir, "truth-otherwindow.h5", &s);
        write_truth(f, 24, NULL, "window:8:1");
        H5Fclose(f);
        f = write_file(dir, "truth-otherpe.h5", &s);
        write_truth(f, 24, "pi:4", "window:16:1");
        H5Fclose(f);
    }

    /* Something that disagrees with f32.h5 when pooled. */
    s = standard();
    s.base = 500000.0;
    good(dir, "otherbase.h5", &s);

    static const struct {
        const char *name;
        breaker b;
    } bads[] = {
        {"bad-no-format.h5", b_no_format},       {"bad-format.h5", b_format},
        {"bad-version.h5", b_version},           {"bad-version-str.h5", b_version_str},
        {"bad-no-heads.h5", b_no_heads},         {"bad-no-kv.h5", b_no_kv},
        {"bad-no-dim.h5", b_no_dim},             {"bad-heads-str.h5", b_heads_str},
        {"bad-theta-str.h5", b_theta_str},       {"bad-pairing-int.h5", b_pairing_int},
        {"bad-heads-zero.h5", b_heads_zero},     {"bad-kv-neg.h5", b_kv_neg},
        {"bad-dim-zero.h5", b_dim_zero},         {"bad-kv-divide.h5", b_kv_divide},
        {"bad-rotary-odd.h5", b_rotary_odd},     {"bad-rotary-neg.h5", b_rotary_neg},
        {"bad-rotary-big.h5", b_rotary_big},     {"bad-pairing.h5", b_pairing},
        {"bad-no-pairing.h5", b_no_pairing},     {"bad-no-layers.h5", b_no_layers},
        {"bad-empty-layers.h5", b_empty_layers}, {"bad-no-k.h5", b_no_k},
        {"bad-q-rank.h5", b_q_rank},             {"bad-q-shape.h5", b_q_shape},
        {"bad-k-heads.h5", b_k_heads},           {"bad-q-int.h5", b_q_int},
        {"bad-T-mismatch.h5", b_T_mismatch},     {"bad-T-zero.h5", b_T_zero},
        {"bad-positions-order.h5", b_positions_order},
        {"bad-positions-len.h5", b_positions_len},
        {"bad-positions-float.h5", b_positions_float},
        {"bad-ids-len.h5", b_ids_len},           {"bad-ids-float.h5", b_ids_float},
        {"bad-freq-len.h5", b_freq_len},         {"bad-freq-neg.h5", b_freq_neg},
        {"bad-freq-nan.h5", b_freq_nan},         {"bad-layer-freq-inf.h5", b_layer_freq_inf},
        {"bad-huge.h5", b_huge},                 {"bad-q-nan.h5", b_q_nan},
        {"bad-k-inf.h5", b_k_inf},               {"bad-lzf.h5", b_lzf},
        {"bad-dup-index.h5", b_dup_index},
        {"bad-nll-len.h5", b_nll_len},           {"bad-nll-int.h5", b_nll_int},
        {"bad-nll-inf.h5", b_nll_inf},           {"bad-control-attr.h5", b_control_attr},
        {"bad-control-len.h5", b_control_len},   {"bad-control-noattr.h5", b_control_noattr},
    };
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) bad(dir, bads[i].name, bads[i].b);

    write_text(dir, "bad-text.h5", "layer\thead\n0\t1\n");
    write_text(dir, "bad-empty.h5", "");
    truncated(dir, "f32.h5", "bad-truncated.h5", 3000);
    return 0;
}
