/* test_dump: the qkdump reader against the values the fixtures were written
 * with (fixtures.h), for every dtype, layout and default.
 *
 *   test_dump FIXTURE_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "pe_dump.h"
#include "pe_test.h"

static const char *dir;

static pe_dump *open_fx(const char *name, pe_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return pe_dump_open(path, NULL, e);
}

/* Largest |read - fixture value| over every head of both tensors of a layer;
 * the reader returns the half layout's logical values in the stored layout,
 * so interleaved files are mapped back dim by dim. */
static double layer_error(pe_dump *d, size_t slot, int interleaved, int R)
{
    const pe_meta *m = pe_dump_meta(d);
    double *x = malloc(m->T * (size_t)m->head_dim * sizeof *x), worst = 0;
    pe_err e;
    for (int t = 0; t < 2; t++) {
        int nh = t == 0 ? m->n_heads : m->n_kv_heads;
        for (int h = 0; h < nh; h++) {
            if (pe_dump_read_head(d, slot, (pe_tensor)t, h, x, &e) < 0) {
                free(x);
                return INFINITY;
            }
            for (size_t tok = 0; tok < m->T; tok++)
                for (int dd = 0; dd < m->head_dim; dd++) {
                    int stored = interleaved ? fx_interleaved_dim(dd, R) : dd;
                    double want = fx_value((int)m->layers[slot].index, t, h, (int)tok, dd);
                    double got = x[tok * (size_t)m->head_dim + (size_t)stored];
                    worst = fmax(worst, fabs(got - want));
                }
        }
    }
    free(x);
    return worst;
}

static void check_values(const char *name, int interleaved, double tol)
{
    pe_err e = {0};
    pe_dump *d = open_fx(name, &e);
    char what[256];
    snprintf(what, sizeof what, "%s opens", name);
    pe_test_report(d != NULL, what, "%s", e.msg);
    if (!d) return;
    const pe_meta *m = pe_dump_meta(d);
    for (size_t s = 0; s < m->n_layers; s++) {
        snprintf(what, sizeof what, "%s layer %ld: every value as written (tol %g)", name, m->layers[s].index, tol);
        double err = layer_error(d, s, interleaved, FX_R);
        pe_test_report(err <= tol, what, "largest difference %.3g", err);
    }
    pe_dump_close(d);
}

int main(int argc, char **argv)
{
    pe_err e = {0};
    dir = argc > 1 ? argv[1] : "build/fixtures";

    /* Exact in every dtype: the values are k/64 with |k| <= 128. */
    check_values("f32.h5", 0, 0);
    check_values("f64.h5", 0, 0);
    check_values("f16.h5", 0, 0);
    check_values("bf16.h5", 0, 0);
    check_values("deflate.h5", 0, 0);
    check_values("interleaved.h5", 1, 0);
    check_values("offset.h5", 0, 0);
    /* Rotated back in double: exact up to rounding of the rotation. */
    check_values("rotated.h5", 0, 1e-14);

    /* Metadata and defaults. */
    pe_dump *d = open_fx("f32.h5", &e);
    if (d) {
        const pe_meta *m = pe_dump_meta(d);
        PE_CHECK_INT(m->n_heads, FX_HEADS, "n_heads");
        PE_CHECK_INT(m->n_kv_heads, FX_KV, "n_kv_heads");
        PE_CHECK_INT(m->head_dim, FX_D, "head_dim");
        PE_CHECK_INT(m->rotary_dim, FX_R, "rotary_dim");
        PE_CHECK_INT(m->n_pairs, FX_R / 2, "n_pairs");
        PE_CHECK_INT(m->T, FX_T, "T from the datasets");
        PE_CHECK_INT(m->train_len, FX_L, "train_len");
        PE_CHECK(m->pairing == PE_PAIRING_HALF, "pairing half");
        PE_CHECK_REL(m->attn_scale, 1.0 / sqrt(8.0), 0, "attn_scale defaults to 1/sqrt(head_dim)");
        PE_CHECK_NEAR(m->attn_softcap, 0, 0, "no softcap by default");
        PE_CHECK_REL(m->rope_theta, 10000, 0, "rope_theta defaults to 10000");
        PE_CHECK_REL(m->theta[1], pow(10000.0, -2.0 / 6), 1e-15, "theta_1 = b^(-2/R)");
        PE_CHECK(!m->theta_from_file, "no /rope/inv_freq");
        PE_CHECK(m->contiguous && m->positions[0] == 0 && m->positions[FX_T - 1] == FX_T - 1,
                 "positions default to 0..T-1");
        PE_CHECK_INT(m->n_layers, 2, "two layers");
        PE_CHECK(m->layers[0].index == 0 && m->layers[1].index == 2, "layers by index");
        PE_CHECK_INT(pe_dump_find_layer(d, 2), 1, "find layer 2");
        PE_CHECK_INT(pe_dump_find_layer(d, 1), -1, "layer 1 is absent");
        PE_CHECK_STR(m->model, "petools fixture", "model string");
        PE_CHECK_STR(pe_dump_dtype(d, 0, PE_TENSOR_Q, 0), "float32", "dtype float32");
        PE_CHECK_STR(pe_dump_dtype(d, 0, PE_TENSOR_Q, 1), "none", "no q_rot");
        double x[FX_T * FX_D];
        PE_CHECK(pe_dump_read_head(d, 0, PE_TENSOR_K, FX_KV, x, &e) < 0 && e.kind == PE_ERRK_USAGE,
                 "a key head out of range is a usage error");
        pe_dump_close(d);
    }
    const char *dtypes[][2] = {{"f16.h5", "float16"}, {"bf16.h5", "bfloat16"}, {"f64.h5", "float64"}};
    for (int i = 0; i < 3; i++) {
        if (!(d = open_fx(dtypes[i][0], &e))) continue;
        char what[64];
        snprintf(what, sizeof what, "dtype of %s", dtypes[i][0]);
        PE_CHECK_STR(pe_dump_dtype(d, 0, PE_TENSOR_K, 0), dtypes[i][1], what);
        pe_dump_close(d);
    }
    if ((d = open_fx("minimal.h5", &e))) {
        const pe_meta *m = pe_dump_meta(d);
        PE_CHECK_INT(m->rotary_dim, FX_D, "minimal: rotary_dim defaults to head_dim");
        PE_CHECK_INT(m->train_len, 0, "minimal: train_len unknown");
        pe_dump_close(d);
    }
    if ((d = open_fx("offset.h5", &e))) {
        const pe_meta *m = pe_dump_meta(d);
        PE_CHECK(m->contiguous && m->positions[0] == 100, "offset: contiguous from 100");
        pe_dump_close(d);
    }
    if ((d = open_fx("gappy.h5", &e))) {
        const pe_meta *m = pe_dump_meta(d);
        PE_CHECK(!m->contiguous && m->positions[3] == 4, "gappy: not contiguous, p_3 = 4");
        pe_dump_close(d);
    }
    if ((d = open_fx("invfreq.h5", &e))) {
        const pe_meta *m = pe_dump_meta(d);
        PE_CHECK(m->theta_from_file && m->theta[2] == pow(10000.0, -4.0 / 6), "inv_freq read from the file");
        pe_dump_close(d);
    }
    if ((d = open_fx("layerfreq.h5", &e))) {
        const pe_meta *m = pe_dump_meta(d);
        PE_CHECK(m->layers[0].rope == 0 && m->layers[0].theta[0] == 0 && m->layers[0].theta[2] == 0,
                 "rope = 0: every frequency of the layer is 0");
        PE_CHECK(m->layers[1].own_theta && m->layers[1].theta[0] == 0.5 && m->layers[1].theta[2] == 0,
                 "per-layer inv_freq overrides the file's");
        pe_dump_close(d);
    }
    if ((d = open_fx("norope.h5", &e))) {
        PE_CHECK_INT(pe_dump_meta(d)->n_pairs, 0, "rotary_dim 0: no pairs, no pairing needed");
        pe_dump_close(d);
    }
    d = open_fx("rotated.h5", &e);
    if (d) {
        PE_CHECK(!pe_dump_meta(d)->layers[0].has_plain && pe_dump_meta(d)->layers[0].has_rot,
                 "rotated-only file");
        pe_dump_close(d);
    }

    /* --pairing overrides the file. */
    {
        char path[4096];
        pe_open_opts oo = {PE_PAIRING_INTERLEAVED, 0};
        snprintf(path, sizeof path, "%s/bad-no-pairing.h5", dir);
        d = pe_dump_open(path, &oo, &e);
        PE_CHECK(d && pe_dump_meta(d)->pairing == PE_PAIRING_INTERLEAVED, "--pairing stands in for a missing rope_pairing");
        pe_dump_close(d);
    }

    /* Pooling. */
    {
        char a[4096], b[4096], c[4096];
        snprintf(a, sizeof a, "%s/f32.h5", dir);
        snprintf(b, sizeof b, "%s/short.h5", dir);
        snprintf(c, sizeof c, "%s/otherbase.h5", dir);
        char *two[2] = {a, b}, *mixed[2] = {a, c};
        pe_inputs in;
        PE_CHECK(pe_inputs_open(&in, two, 2, NULL, NULL, 0, NULL, 0, 0, &e) == 0, "two files that agree pool");
        if (in.n) {
            PE_CHECK_INT(in.n_dist, FX_T, "n_dist is the longest file's");
            PE_CHECK_INT(in.n_layers, 2, "all layers selected");
            PE_CHECK_INT(in.n_heads, FX_HEADS, "all heads selected");
            pe_inputs_close(&in);
        }
        PE_CHECK(pe_inputs_open(&in, mixed, 2, NULL, NULL, 0, NULL, 0, 0, &e) < 0 && strstr(e.msg, "frequencies"),
                 "files with other frequencies are refused");
        long layers[1] = {2}, heads[2] = {1, 3};
        PE_CHECK(pe_inputs_open(&in, two, 2, NULL, layers, 1, heads, 2, 99, &e) == 0 && in.n_layers == 1 &&
                     in.layers[0] == 2 && in.n_heads == 2 && in.heads[1] == 3 && in.train_len == 99,
                 "selection and --train-len");
        if (in.n) pe_inputs_close(&in);
        long nolayer[1] = {1};
        PE_CHECK(pe_inputs_open(&in, two, 2, NULL, nolayer, 1, NULL, 0, 0, &e) < 0 && e.kind == PE_ERRK_USAGE,
                 "a missing layer is a usage error");
    }
    PE_CHECK(pe_available_memory() > 0, "available memory is known");
    return pe_test_done();
}
