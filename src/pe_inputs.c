/* pe_inputs.c: several files pooled, and the checks that they agree (see
 * pe_inputs.h). */
#include "pe_inputs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void pe_inputs_close(pe_inputs *in)
{
    for (size_t i = 0; i < in->n; i++) pe_dump_close(in->dumps[i]);
    free(in->dumps);
    free(in->layers);
    free(in->heads);
    memset(in, 0, sizeof *in);
}

static int same_theta(const double *a, const double *b, int n)
{
    for (int i = 0; i < n; i++)
        if (fabs(a[i] - b[i]) > 1e-6 * fmax(fabs(a[i]), fabs(b[i]))) return 0;
    return 1;
}

/* Names the first field in which file b disagrees with file a, or NULL. */
static const char *first_difference(const pe_meta *a, const pe_meta *b, long train_override)
{
    if (a->n_heads != b->n_heads) return "n_heads";
    if (a->n_kv_heads != b->n_kv_heads) return "n_kv_heads";
    if (a->head_dim != b->head_dim) return "head_dim";
    if (a->rotary_dim != b->rotary_dim) return "rotary_dim";
    if (a->rotary_dim > 0 && a->pairing != b->pairing) return "rope_pairing";
    if (!same_theta(a->theta, b->theta, a->n_pairs)) return "the frequencies (/rope/inv_freq or rope_theta)";
    if (a->attn_scale != b->attn_scale) return "attn_scale";
    if (a->attn_softcap != b->attn_softcap) return "attn_softcap";
    if (!train_override && a->train_len && b->train_len && a->train_len != b->train_len)
        return "train_len";
    return NULL;
}

int pe_inputs_open(pe_inputs *in, char *const *paths, size_t n_paths, const pe_open_opts *opts,
                   const long *layers, size_t n_layers, const long *heads, size_t n_heads,
                   long train_len, pe_err *e)
{
    memset(in, 0, sizeof *in);
    if (n_paths == 0) return pe_fail_usage(e, "no input file");
    if (!(in->dumps = pe_alloc(n_paths, sizeof *in->dumps, 1, e))) return -1;
    for (size_t i = 0; i < n_paths; i++) {
        if (!(in->dumps[i] = pe_dump_open(paths[i], opts, e))) goto fail;
        in->n++;
    }
    const pe_meta *m0 = pe_dump_meta(in->dumps[0]);
    in->meta = m0;
    in->train_len = train_len > 0 ? train_len : 0;
    for (size_t i = 0; i < in->n; i++) {
        const pe_meta *mi = pe_dump_meta(in->dumps[i]);
        if (i > 0) {
            const char *f = first_difference(m0, mi, train_len);
            if (f) {
                pe_fail(e, "%s: %s: differs from %s; files pooled together must agree", paths[i], f,
                        paths[0]);
                goto fail;
            }
        }
        if (!in->train_len && mi->train_len) in->train_len = mi->train_len;
    }

    /* Layers: the selection (or all of the first file's), present everywhere. */
    in->n_layers = layers ? n_layers : m0->n_layers;
    if (!(in->layers = pe_alloc(in->n_layers ? in->n_layers : 1, sizeof *in->layers, 0, e))) goto fail;
    for (size_t j = 0; j < in->n_layers; j++) in->layers[j] = layers ? layers[j] : m0->layers[j].index;
    for (size_t j = 0; j < in->n_layers; j++) {
        int s0 = pe_dump_find_layer(in->dumps[0], in->layers[j]);
        for (size_t i = 0; i < in->n; i++) {
            int s = pe_dump_find_layer(in->dumps[i], in->layers[j]);
            if (s < 0) {
                if (layers)
                    pe_fail_usage(e, "--layers: layer %ld is not in %s", in->layers[j], paths[i]);
                else
                    pe_fail(e, "%s: layer %ld of %s is missing; files pooled together need the same layers "
                               "(or select common ones with --layers)", paths[i], in->layers[j], paths[0]);
                goto fail;
            }
            const pe_meta *mi = pe_dump_meta(in->dumps[i]);
            if (i > 0 && (m0->layers[s0].rope != mi->layers[s].rope ||
                          !same_theta(m0->layers[s0].theta, mi->layers[s].theta, m0->n_pairs))) {
                pe_fail(e, "%s: layer %ld: inv_freq: differs from %s; files pooled together must agree",
                        paths[i], in->layers[j], paths[0]);
                goto fail;
            }
        }
    }

    /* Without --layers every file must hold the same layers, so that the
     * outcome does not depend on the order of the files. */
    for (size_t i = 1; !layers && i < in->n; i++) {
        const pe_meta *mi = pe_dump_meta(in->dumps[i]);
        for (size_t s = 0; s < mi->n_layers; s++)
            if (pe_dump_find_layer(in->dumps[0], mi->layers[s].index) < 0) {
                pe_fail(e, "%s: layer %ld of %s is missing; files pooled together need the same layers "
                           "(or select common ones with --layers)", paths[0], mi->layers[s].index, paths[i]);
                goto fail;
            }
    }

    /* Query heads. */
    in->n_heads = heads ? n_heads : (size_t)m0->n_heads;
    if (!(in->heads = pe_alloc(in->n_heads ? in->n_heads : 1, sizeof *in->heads, 0, e))) goto fail;
    for (size_t j = 0; j < in->n_heads; j++) {
        if (heads && (heads[j] < 0 || heads[j] >= m0->n_heads)) {
            pe_fail_usage(e, "--heads: head %ld does not exist (the files have %d query heads)",
                          heads[j], m0->n_heads);
            goto fail;
        }
        in->heads[j] = heads ? (int)heads[j] : (int)j;
    }

    for (size_t i = 0; i < in->n; i++) {
        const pe_meta *mi = pe_dump_meta(in->dumps[i]);
        size_t nd = (size_t)(mi->positions[mi->T - 1] - mi->positions[0]) + 1;
        if (nd > in->n_dist) in->n_dist = nd;
    }
    return 0;
fail:
    pe_inputs_close(in);
    return -1;
}
