/* mkfix_attn: writes the qkdump fixtures of peanalyze's tests into a folder.
 *
 *   mkfix_attn DIR
 *
 * attn.h5 plants attention patterns whose labels, sink masses and
 * exceedances are known in advance (T 128, trained at L 64, attn_scale 1,
 * float64, frequencies set by /rope/inv_freq = 1, 2 pi / 63, 0.024; D 8 with
 * R 6, so dims 6 and 7 pass through).  Every query and key is constant
 * over tokens, so a logit depends on the distance alone and each head's
 * mean logit IS the planted curve:
 *   layer 0 head 0  u-shape: q = k = 1 in pair 1 (theta 2 pi / 63):
 *                   logit cos(2 pi delta / 63), one full period inside L,
 *                   so beyond L the logits repeat: exceedance 0, not ood.
 *   layer 0 head 1  decay: q = k = 2 in pair 2 (theta 0.024): logit
 *                   4 cos(0.024 delta), falling over every distance, and
 *                   beyond L below the in-train range: distances >= 65 leave
 *                   the band, exceedance 2016 / 6176; ood.
 *   layer 0 head 2  sink: q = 1 in pass dim 6, k = 5 there at token 0 only:
 *                   logit 5 on key 0, 0 elsewhere; p(m, 0) = e^5 / (e^5 + m),
 *                   the mean logit 5 / (T - delta) rises; the sink mass falls
 *                   from 0.83 in-train to 0.61 beyond: ood by the sink shift.
 *   layer 1 head 0  u-shape as layer 0 head 0; head 1: the same at half the
 *                   amplitude (q = k = 1/sqrt 2); head 2 rise: q = 2, k = -2 in
 *                   pair 2, logit -4 cos(0.024 delta), which leaves the
 *                   in-train range upwards like head 1 of layer 0 downwards.
 * Every planted head of attn.h5 puts attention on distances beyond L (the
 * periodic ones repeat there, the sink head spreads the rest evenly, the
 * decay and rise heads leave the in-train logit range), so each is ood.
 * attn-local.h5 is the opposite, heads that attend only within L: T 128,
 * L 64, head_dim 136 of which dims 8..135 pass through, attn_scale 1; head
 * 0 has q_m = k_m = sqrt(20) e_(8+m), so a query meets only its own key
 * (logit 20, all others 0): self attention; head 1 (its own key head) has
 * k_n = sqrt(20) e_(8+(n+1) mod 128): the previous token.  The logits are 0
 * and 20 in and beyond L, and the keys at distance >= 64 get e^-20 of the
 * attention each: neither head is ood.
 * attn-softcap.h5 is the standard random data of fixtures.h with
 * attn_softcap 1.5 (and float64), attn-gappy.h5 the same data at positions
 * with gaps and train_len 30, attn-nolen.h5 the same data without train_len. */
#include "fxwrite.h"

#define AT_T 128
#define AT_L 64
#define TWO_PI 6.283185307179586476925286766559

static double planted(int layer, int tensor, int h, int t, int d)
{
    if (layer == 0 && h == 0) return d == 1 ? 1.0 : 0.0;
    if (layer == 0 && h == 1) return d == 2 ? 2.0 : 0.0;
    if (layer == 0 && h == 2) {
        if (d != 6) return 0.0;
        return tensor == 0 ? 1.0 : (t == 0 ? 5.0 : 0.0);
    }
    if (layer == 1 && h == 0) return d == 1 ? 1.0 : 0.0;
    if (layer == 1 && h == 1) return d == 1 ? sqrt(0.5) : 0.0;
    if (layer == 1 && h == 2) return d == 2 ? (tensor == 0 ? 2.0 : -2.0) : 0.0;
    return 0.0;
}

static void set_freqs(hid_t f, const double *theta, hsize_t n)
{
    if (H5Lexists(f, "rope", H5P_DEFAULT) <= 0)
        H5Gclose(H5Gcreate2(f, "rope", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    dset_write(f, "rope/inv_freq", H5T_IEEE_F64LE, 1, &n, H5T_NATIVE_DOUBLE, theta, 0);
}

#define LOCAL_T 128
static double local(int layer, int tensor, int h, int t, int d)
{
    (void)layer;
    int want = 8 + (tensor == 1 && h == 1 ? (t + 1) % LOCAL_T : t);
    return d == want ? sqrt(20.0) : 0.0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkfix_attn DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fx_spec s;

    s = standard();
    s.heads = 3;
    s.kv = 3;
    s.T = AT_T;
    s.train_len = AT_L;
    s.dtype = FX_F64;
    s.layer_ids[0] = 0;
    s.layer_ids[1] = 1;
    s.value = planted;
    {
        hid_t f = write_file(dir, "attn.h5", &s);
        double theta[3] = {1.0, TWO_PI / 63.0, 0.024};
        set_freqs(f, theta, 3);
        attr_double(f, "attn_scale", 1.0);
        attr_str(f, "model", "petools planted attention fixture");
        H5Fclose(f);
    }

    s = standard();
    s.heads = 2;
    s.kv = 2;
    s.D = 8 + LOCAL_T;
    s.R = 8;
    s.T = LOCAL_T;
    s.train_len = AT_L;
    s.dtype = FX_F64;
    s.n_layers = 1;
    s.value = local;
    {
        hid_t f = write_file(dir, "attn-local.h5", &s);
        attr_double(f, "attn_scale", 1.0);
        attr_str(f, "model", "petools local attention fixture");
        H5Fclose(f);
    }

    s = standard();
    s.dtype = FX_F64;
    {
        hid_t f = write_file(dir, "attn-softcap.h5", &s);
        attr_double(f, "attn_softcap", 1.5);
        H5Fclose(f);
    }
    s = standard();
    s.dtype = FX_F64;
    s.gappy = 1;
    s.write_positions = 1;
    s.train_len = 30;
    good(dir, "attn-gappy.h5", &s);
    s = standard();
    s.train_len = -1;
    good(dir, "attn-nolen.h5", &s);
    return 0;
}
