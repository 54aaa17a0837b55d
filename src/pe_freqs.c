/* pe_freqs.c: the freqs table's rope-scaling what-if (see pe_freqs.h). */
#include "pe_freqs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pe_freqs_whatif(const pe_freqs_model *fm, const pe_whatif *w, const char *opt, double *scaled,
                    pe_scale_info *info, pe_err *e)
{
    const int P = fm->rotary_dim / 2;
    const long L = fm->train_len;
    int64_t last = 0;
    pe_layer_info li = {0};
    pe_meta m = {0};
    li.rope = 1;
    li.theta = (double *)fm->theta;
    m.n_pairs = P;
    m.rotary_dim = fm->rotary_dim;
    m.rope_theta = fm->base;
    m.n_layers = 1;
    m.layers = &li;
    if (fm->file) {
        m.T = fm->file->T;
        m.positions = fm->file->positions;
    } else {
        m.T = 1; /* positions are not known without a file: dynamic:S needs its T */
        m.positions = &last;
        for (int k = 0; k < w->n; k++)
            if (w->steps[k].dynamic_auto)
                return pe_fail_usage(e, "%s '%.200s': dynamic:S takes the length of the file; without one, give "
                                        "dynamic:S:T",
                                     opt, w->text);
    }
    pe_rotation rot;
    if (pe_rotation_init(&rot, P, e) < 0) return -1;
    int rc = pe_whatif_resolve(w, &m, 0, PE_TENSOR_Q, 0, L, &rot, e);
    if (rc == 0) memcpy(scaled, rot.theta, (size_t)P * sizeof *scaled);
    pe_rotation_free(&rot);
    /* What the last scaling step did, for the "# scale:" line. */
    *info = (pe_scale_info){fm->base, 1, 0, 0, 0, 0, 0, L};
    for (int k = 0; rc == 0 && k < w->n; k++) {
        pe_scaling sc = w->steps[k].scale;
        if (w->steps[k].kind != PE_STEP_SCALE) continue;
        if (w->steps[k].dynamic_auto) sc.target_len = (long)(m.positions[m.T - 1] + 1);
        double *tmp = pe_alloc(P > 0 ? (size_t)P : 1, sizeof *tmp, 0, e);
        rc = tmp ? pe_scaling_apply(&sc, fm->rotary_dim, fm->base, L, fm->theta, tmp, info, e) : -1;
        free(tmp);
    }
    if (rc < 0) {
        /* Name the option and where the rotary layout came from. */
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s '%.100s': %.700s%s%.200s", opt, w->text, e->msg, fm->file ? " in " : "",
                 fm->file ? fm->path : "");
        snprintf(e->msg, sizeof e->msg, "%s", msg);
        return -1;
    }
    return 0;
}
