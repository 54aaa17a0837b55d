/* pedecomp: split attention logits into their RoPE frequency components and
 * measure each against the training length (analyses.md sections 1-3).
 *
 * Tables: profile (per-component mean logit against distance), summary (per
 * pair: magnitude share, in-train range, value and angle OOD, U attribution),
 * freqs (the geometry alone, with an optional rope-scaling what-if).
 * --check validates a whole file and compares stored q_rot/k_rot with the
 * rotation of q/k. */
#include <errno.h>
#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pe_cli.h"
#include "pe_curve.h"
#include "pe_decomp.h"
#include "pe_dump.h"
#include "pe_par.h"
#include "pe_rope.h"
#include "pe_table.h"
#include "pe_version.h"

#define PROG "pedecomp"

typedef enum { TABLE_PROFILE = 0, TABLE_SUMMARY, TABLE_FREQS } table_kind;
static const char *const table_names[] = {"profile", "summary", "freqs", NULL};

enum {
    OPT_BINS = PE_OPT_TOOL,
    OPT_METHOD,
    OPT_SCALE,
    OPT_CHECK,
    OPT_HF_TURNS,
    OPT_ACT_TURNS,
    OPT_ROTARY_DIM,
    OPT_ROPE_THETA
};

typedef struct decomp_opts {
    int table;
    long bins;
    int method;
    const char *scale_spec;
    pe_scaling scale;
    int check;
    pe_class_rule rule;
    long rotary_dim; /* freqs without a file */
    double rope_theta;
} decomp_opts;

static const pe_option decomp_options[] = {
    {"table", 't', "NAME", "profile (default), summary or freqs"},
    {"bins", OPT_BINS, "B", "profile: distance bins (default 512; 0 = every distance)"},
    {"method", OPT_METHOD, "M", "fft (default) or direct, the O(T^2) sum that checks it"},
    {"scale", OPT_SCALE, "SPEC", "freqs: scaling what-if: pi:S, ntk:S, dynamic:S:T, yarn:S, llama3:S:LO:HI:OL"},
    {"check", OPT_CHECK, NULL, "read every head; compare stored q_rot/k_rot with rotated q/k"},
    {"hf-turns", OPT_HF_TURNS, "X", "class hf when turns within L >= X (default 1)"},
    {"act-turns", OPT_ACT_TURNS, "X", "class act when turns within L >= X (default 0.5)"},
    {"rotary-dim", OPT_ROTARY_DIM, "R", "freqs without an input file: rotary dims R"},
    {"rope-theta", OPT_ROPE_THETA, "B", "freqs without an input file: base (default 10000)"},
    {NULL, 0, NULL, NULL}};

static int handle_option(int key, const char *arg, void *ctx, pe_err *e)
{
    decomp_opts *o = ctx;
    static const char *const methods[] = {"fft", "direct", NULL};
    switch (key) {
    case 't': return pe_parse_choice("--table", arg, table_names, &o->table, e);
    case OPT_BINS: return pe_parse_long("--bins", arg, 0, 1L << 40, &o->bins, e);
    case OPT_METHOD: return pe_parse_choice("--method", arg, methods, &o->method, e);
    case OPT_SCALE:
        o->scale_spec = arg;
        if (pe_scaling_parse(arg, &o->scale, e) < 0) {
            e->kind = PE_ERRK_USAGE;
            return -1;
        }
        return 0;
    case OPT_CHECK: o->check = 1; return 0;
    case OPT_HF_TURNS: return pe_parse_double("--hf-turns", arg, 0, 1e300, &o->rule.hf_turns, e);
    case OPT_ACT_TURNS: return pe_parse_double("--act-turns", arg, 0, 1e300, &o->rule.act_turns, e);
    case OPT_ROTARY_DIM: return pe_parse_long("--rotary-dim", arg, 0, 1000000, &o->rotary_dim, e);
    case OPT_ROPE_THETA: return pe_parse_double("--rope-theta", arg, 1e-300, 1e300, &o->rope_theta, e);
    default: return pe_fail_usage(e, "unknown option");
    }
}

static const char *libraries(void)
{
    static char buf[160];
    snprintf(buf, sizeof buf, "HDF5 %s, FFTW %s", pe_hdf5_version(), fftw_version);
    return buf;
}

static const pe_tool tool = {
    .name = PROG,
    .synopsis = "[OPTION]... FILE...",
    .purpose = "Split attention logits of qkdump files into RoPE frequency components.",
    .options = decomp_options,
    .epilog = "Several FILEs are pooled: each mean is a sum over all files divided by\n"
              "the total count.  Classes: hf (>= 1 turn within L), act (0.5 to 1 turn),\n"
              "tlf (less), nope (theta 0).\n",
    .libraries = libraries,
    .handle = handle_option};

/* ---- the shared run state ---- */

typedef struct head_result {
    size_t nb;           /* bins */
    double *mean;        /* (P + 2) x nb: pairs, pass, total */
    double *npairs;      /* nb */
    pe_pair_summary *sum;/* P, summary table */
    int done;
} head_result;

typedef struct run {
    const pe_common_opts *c;
    const decomp_opts *o;
    pe_inputs in;
    int kv_group;        /* query heads per key head */
    size_t n_tasks;
    head_result *res;
    pe_table *table;
    int *warned;         /* per file: non-contiguous positions warned */
    int progress;
} run;

static void result_free(head_result *r)
{
    free(r->mean);
    free(r->npairs);
    free(r->sum);
    memset(r, 0, sizeof *r);
}

static const double *layer_theta(const run *R, size_t layer_j)
{
    int slot = pe_dump_find_layer(R->in.dumps[0], R->in.layers[layer_j]);
    return R->in.meta->layers[slot].theta;
}

/* One (layer, head): read it from every file, add into one profile, then
 * keep only what the table prints (binned means, or the summary). */
static int work_head(size_t i, void *ctx, pe_err *e)
{
    run *R = ctx;
    const pe_meta *m = R->in.meta;
    size_t lj = i / R->in.n_heads;
    int head = R->in.heads[i % R->in.n_heads];
    int kvh = head / R->kv_group;
    const int P = m->n_pairs;
    pe_profile prof = {0};
    double *q = NULL, *k = NULL;
    head_result *out = &R->res[i];
    int rc = -1;

    if (pe_profile_init(&prof, P, R->in.n_dist, e) < 0) return -1;
    for (size_t f = 0; f < R->in.n; f++) {
        pe_dump *d = R->in.dumps[f];
        const pe_meta *mf = pe_dump_meta(d);
        int slot = pe_dump_find_layer(d, R->in.layers[lj]);
        size_t td = mf->T * (size_t)mf->head_dim;
        free(q);
        free(k);
        q = pe_alloc(td, sizeof *q, 0, e);
        k = pe_alloc(td, sizeof *k, 0, e);
        if (!q || !k) goto done;
        if (pe_dump_read_head(d, (size_t)slot, PE_TENSOR_Q, head, q, e) < 0 ||
            pe_dump_read_head(d, (size_t)slot, PE_TENSOR_K, kvh, k, e) < 0)
            goto done;
        pe_geom g = {mf->head_dim, mf->rotary_dim, P, mf->pairing, mf->layers[slot].theta};
        pe_head_input hin = {mf->T, q, k, mf->positions, mf->attn_scale, mf->contiguous};
        if (pe_profile_add(&prof, &hin, &g, (pe_method)R->o->method, e) < 0) goto done;
    }

    if (R->o->table == TABLE_SUMMARY) {
        if (!(out->sum = pe_alloc(P ? (size_t)P : 1, sizeof *out->sum, 1, e))) goto done;
        if (pe_profile_summary(&prof, layer_theta(R, lj), R->in.train_len, out->sum, e) < 0) goto done;
    } else {
        size_t nd = prof.n_dist, nb = pe_bin_count(nd, (size_t)R->o->bins);
        size_t rows = (size_t)P + 2;
        out->nb = nb;
        out->mean = pe_alloc(rows * nb, sizeof(double), 0, e);
        out->npairs = pe_alloc(nb, sizeof(double), 0, e);
        if (!out->mean || !out->npairs) goto done;
        for (size_t b = 0; b < nb; b++) {
            size_t lo, hi;
            pe_bin_range(nd, nb, b, &lo, &hi);
            double n = 0;
            for (size_t d = lo; d <= hi; d++) n += prof.count[d];
            out->npairs[b] = n;
            for (size_t r = 0; r < rows; r++)
                out->mean[r * nb + b] = pe_bin_mean(prof.sum + r * nd, prof.count, lo, hi);
        }
    }
    rc = 0;
done:
    free(q);
    free(k);
    pe_profile_free(&prof);
    if (rc < 0) result_free(out);
    return rc;
}

static void emit_profile(run *R, size_t i)
{
    const pe_meta *m = R->in.meta;
    head_result *r = &R->res[i];
    size_t lj = i / R->in.n_heads;
    int head = R->in.heads[i % R->in.n_heads];
    const double *theta = layer_theta(R, lj);
    const int P = m->n_pairs;
    int has_pass = m->rotary_dim < m->head_dim;
    pe_table *t = R->table;

    for (int row = 0; row < P + 2; row++) {
        if (row == P && !has_pass) continue;
        for (size_t b = 0; b < r->nb; b++) {
            size_t lo, hi;
            pe_bin_range(R->in.n_dist, r->nb, b, &lo, &hi);
            pe_table_int(t, R->in.layers[lj]);
            pe_table_int(t, head);
            pe_table_int(t, head / R->kv_group);
            if (row < P) {
                pe_table_int(t, row);
                pe_table_dbl(t, theta[row]);
                pe_table_str(t, pe_class_name(pe_rope_classify(theta[row], R->in.train_len, &R->o->rule)));
            } else {
                const char *name = row == P ? "pass" : "total";
                pe_table_str(t, name);
                pe_table_nan(t);
                pe_table_str(t, name);
            }
            pe_table_int(t, (long long)lo);
            pe_table_int(t, (long long)hi);
            pe_table_int(t, (long long)r->npairs[b]);
            pe_table_dbl(t, r->mean[(size_t)row * r->nb + b]);
            pe_table_end_row(t);
        }
        pe_table_break(t, 1);
    }
    pe_table_break(t, 2);
}

static void emit_summary(run *R, size_t i)
{
    const pe_meta *m = R->in.meta;
    head_result *r = &R->res[i];
    size_t lj = i / R->in.n_heads;
    int head = R->in.heads[i % R->in.n_heads];
    const double *theta = layer_theta(R, lj);
    long L = R->in.train_len;
    pe_table *t = R->table;

    for (int p = 0; p < m->n_pairs; p++) {
        const pe_pair_summary *s = &r->sum[p];
        pe_table_int(t, R->in.layers[lj]);
        pe_table_int(t, head);
        pe_table_int(t, head / R->kv_group);
        pe_table_int(t, p);
        pe_table_dbl(t, theta[p]);
        pe_table_dbl(t, pe_rope_wavelength(theta[p]));
        pe_table_dbl(t, pe_rope_turns(theta[p], L));
        pe_table_str(t, pe_class_name(pe_rope_classify(theta[p], L, &R->o->rule)));
        pe_table_dbl(t, s->magnitude_share);
        pe_table_dbl(t, s->lo_in);
        pe_table_dbl(t, s->hi_in);
        pe_table_dbl(t, s->value_ood);
        pe_table_dbl(t, s->angle_ood);
        pe_table_dbl(t, s->du);
        pe_table_end_row(t);
    }
    pe_table_break(t, 2);
}

static int emit_head(size_t i, void *ctx, pe_err *e)
{
    (void)e;
    run *R = ctx;
    if (R->o->table == TABLE_SUMMARY)
        emit_summary(R, i);
    else
        emit_profile(R, i);
    result_free(&R->res[i]);
    if (R->progress) {
        fprintf(stderr, "\r%s: %zu/%zu heads", PROG, i + 1, R->n_tasks);
        if (i + 1 == R->n_tasks) fputs("\r\033[K", stderr);
    }
    return 0;
}

/* ---- freqs ---- */

static void write_inputs_meta(pe_table *t, const pe_inputs *in)
{
    for (size_t f = 0; f < in->n; f++) {
        const pe_meta *m = pe_dump_meta(in->dumps[f]);
        pe_table_meta(t, "input", "%s (T %zu, positions %lld..%lld, %zu layers, model %s)",
                      pe_dump_path(in->dumps[f]), m->T, (long long)m->positions[0],
                      (long long)m->positions[m->T - 1], m->n_layers, m->model ? m->model : "unknown");
    }
}

static int freqs_table(pe_table *t, const double *theta, int R_dim, double base, long L,
                       const decomp_opts *o, pe_err *e)
{
    int P = R_dim / 2, rc = -1;
    double *scaled = NULL;
    pe_scale_info info = {0};
    if (o->scale_spec) {
        if (!(scaled = pe_alloc(P ? (size_t)P : 1, sizeof *scaled, 0, e))) return -1;
        if (pe_scaling_apply(&o->scale, R_dim, base, L, theta, scaled, &info, e) < 0) goto done;
        pe_table_meta(t, "scale", "%s (target length %ld, base %.9g, attention factor %.9g)",
                      o->scale_spec, info.target_len, info.base_scaled, info.attn_factor);
    }
    pe_table_meta(t, "train_len", "%ld", L);
    pe_table_meta(t, "rotary_dim", "%d", R_dim);
    for (int i = 0; i < P; i++) {
        pe_table_int(t, i);
        pe_table_dbl(t, theta[i]);
        pe_table_dbl(t, pe_rope_wavelength(theta[i]));
        pe_table_dbl(t, pe_rope_turns(theta[i], L));
        pe_table_dbl(t, (double)(L - 1) * theta[i]);
        pe_table_str(t, pe_class_name(pe_rope_classify(theta[i], L, &o->rule)));
        if (scaled) {
            pe_table_dbl(t, scaled[i]);
            pe_table_dbl(t, pe_rope_turns(scaled[i], info.target_len));
            pe_table_str(t, pe_class_name(pe_rope_classify(scaled[i], info.target_len, &o->rule)));
        }
        pe_table_end_row(t);
    }
    rc = 0;
done:
    free(scaled);
    return rc;
}

/* ---- --check ---- */

static double dtype_eps(const char *name)
{
    if (!name) return 0;
    if (strcmp(name, "float16") == 0) return 0x1p-10;
    if (strcmp(name, "bfloat16") == 0) return 0x1p-7;
    if (strcmp(name, "float32") == 0) return 0x1p-23;
    if (strcmp(name, "float64") == 0) return 0x1p-52;
    return 0;
}

/* Reads every head of every layer of every file (so that damage anywhere
 * shows), and where q/k and q_rot/k_rot are both stored, compares the
 * rotation of q/k with them.  Sets *mismatch when a difference exceeds the
 * tolerance of the stored and source types. */
static int check_files(pe_table *t, pe_inputs *in, int *mismatch, pe_err *e)
{
    for (size_t f = 0; f < in->n; f++) {
        pe_dump *d = in->dumps[f];
        const pe_meta *m = pe_dump_meta(d);
        size_t td = m->T * (size_t)m->head_dim;
        double *x = pe_alloc(td, sizeof *x, 0, e), *y = pe_alloc(td, sizeof *y, 0, e);
        if (!x || !y) {
            free(x);
            free(y);
            return -1;
        }
        for (size_t s = 0; s < m->n_layers; s++) {
            const pe_layer_info *L = &m->layers[s];
            pe_geom g = {m->head_dim, m->rotary_dim, m->n_pairs, m->pairing, L->theta};
            for (int tn = 0; tn < 2; tn++) {
                int nh = tn == 0 ? m->n_heads : m->n_kv_heads;
                double maxdiff = 0, maxabs = 0;
                for (int h = 0; h < nh; h++) {
                    if (L->has_plain && pe_dump_read_stored(d, s, (pe_tensor)tn, 0, h, x, e) < 0) goto fail;
                    if (L->has_rot && pe_dump_read_stored(d, s, (pe_tensor)tn, 1, h, y, e) < 0) goto fail;
                    if (!(L->has_plain && L->has_rot)) continue;
                    pe_rope_rotate(x, m->T, &g, m->positions, +1);
                    for (size_t j = 0; j < td; j++) {
                        maxdiff = fmax(maxdiff, fabs(x[j] - y[j]));
                        maxabs = fmax(maxabs, fabs(y[j]));
                    }
                }
                const char *dt_plain = pe_dump_dtype(d, s, (pe_tensor)tn, 0);
                const char *dt_rot = pe_dump_dtype(d, s, (pe_tensor)tn, 1);
                pe_table_str(t, pe_dump_path(d));
                pe_table_int(t, L->index);
                pe_table_str(t, tn == 0 ? "q" : "k");
                pe_table_str(t, L->has_plain ? dt_plain : dt_rot);
                pe_table_int(t, nh);
                if (L->has_plain && L->has_rot) {
                    double eps = fmax(fmax(dtype_eps(dt_plain), dtype_eps(dt_rot)), dtype_eps(m->source_dtype));
                    double tol = 8 * fmax(eps, 0x1p-52);
                    double rel = maxabs > 0 ? maxdiff / maxabs : (maxdiff > 0 ? INFINITY : 0);
                    int ok = rel <= tol;
                    if (!ok) *mismatch = 1;
                    pe_table_dbl(t, maxdiff);
                    pe_table_dbl(t, rel);
                    pe_table_dbl(t, tol);
                    pe_table_str(t, ok ? "ok" : "mismatch");
                } else {
                    pe_table_nan(t);
                    pe_table_nan(t);
                    pe_table_nan(t);
                    pe_table_str(t, "read");
                }
                pe_table_end_row(t);
            }
        }
        free(x);
        free(y);
        continue;
    fail:
        free(x);
        free(y);
        return -1;
    }
    return 0;
}

/* ---- main ---- */

static int fail(const pe_err *e)
{
    fprintf(stderr, "%s: %s\n", PROG, e->msg);
    return e->kind == PE_ERRK_USAGE ? PE_EXIT_USAGE : PE_EXIT_DATA;
}

static const char *const profile_cols[] = {"layer", "head", "kv_head", "component", "theta", "class",
                                           "delta_lo", "delta_hi", "n_pairs", "mean_logit"};
static const char *const summary_cols[] = {"layer", "head", "kv_head", "component", "theta",
                                           "wavelength", "rho", "class", "magnitude_share", "lo_in",
                                           "hi_in", "value_ood", "angle_ood", "du"};
static const char *const freqs_cols[] = {"component", "theta", "wavelength", "rho", "max_angle_train",
                                         "class", "theta_scaled", "rho_scaled", "class_scaled"};
static const char *const check_cols[] = {"file", "layer", "tensor", "dtype", "heads",
                                         "max_abs_diff", "rel_diff", "tolerance", "status"};

int main(int argc, char **argv)
{
    pe_common_opts c;
    decomp_opts o = {TABLE_PROFILE, 512, PE_METHOD_FFT, NULL, {0}, 0, PE_CLASS_RULE_DEFAULT, -1, 10000.0};
    pe_err e = {0};
    pe_output out = {0};
    run R;
    int first, status = PE_EXIT_OK, mismatch = 0;
    char *const *files;
    size_t n_files;

    memset(&R, 0, sizeof R);
    switch (pe_cli_parse(argc, argv, &tool, &c, &o, &first)) {
    case PE_CLI_EXIT_OK:
        if (fclose(stdout) == 0) return PE_EXIT_OK;
        fprintf(stderr, "%s: standard output: write error: %s\n", PROG, strerror(errno));
        return PE_EXIT_DATA;
    case PE_CLI_EXIT_USAGE: return PE_EXIT_USAGE;
    default: break;
    }
    files = argv + first;
    n_files = (size_t)(argc - first);
    if (o.rule.act_turns > o.rule.hf_turns) {
        pe_fail_usage(&e, "--act-turns %g is above --hf-turns %g", o.rule.act_turns, o.rule.hf_turns);
        status = fail(&e);
        goto end;
    }
    if (n_files == 0 && !(o.table == TABLE_FREQS && o.rotary_dim >= 0)) {
        fprintf(stderr, "%s: no input file (see %s --help)\n", PROG, PROG);
        status = PE_EXIT_USAGE;
        goto end;
    }
    if (o.rotary_dim >= 0 && n_files > 0) {
        pe_fail_usage(&e, "--rotary-dim: only for -t freqs without an input file");
        status = fail(&e);
        goto end;
    }
    if (o.scale_spec && o.table != TABLE_FREQS) {
        pe_fail_usage(&e, "--scale: only for -t freqs");
        status = fail(&e);
        goto end;
    }

    pe_open_opts oo = {c.pairing, c.max_memory};
    if (n_files > 0 &&
        pe_inputs_open(&R.in, files, n_files, &oo, c.layers, c.n_layers, c.heads, c.n_heads,
                       c.train_len, &e) < 0) {
        status = fail(&e);
        goto end;
    }
    if (pe_output_open(&out, c.output, files, n_files, &e) < 0) {
        status = fail(&e);
        goto end;
    }

    const char *tname = o.check ? "check" : table_names[o.table];
    const char *const *cols = o.check ? check_cols
                              : o.table == TABLE_PROFILE ? profile_cols
                              : o.table == TABLE_SUMMARY ? summary_cols
                                                         : freqs_cols;
    int ncol = o.check ? 9 : o.table == TABLE_PROFILE ? 10 : o.table == TABLE_SUMMARY ? 14 : (o.scale_spec ? 9 : 6);
    if (!(R.table = pe_table_open(out.fp, c.format, c.digits, PROG, tname, cols, ncol, &e))) {
        status = fail(&e);
        goto end;
    }
    pe_table_meta(R.table, "version", "%s", PE_VERSION);

    if (n_files == 0) { /* freqs from the command line alone */
        long L = c.train_len;
        double *theta = pe_alloc(o.rotary_dim > 1 ? (size_t)o.rotary_dim / 2 : 1, sizeof *theta, 0, &e);
        if (!theta) {
            status = fail(&e);
            goto end;
        }
        if (o.rotary_dim % 2) {
            pe_fail_usage(&e, "--rotary-dim: must be even (got %ld)", o.rotary_dim);
        } else if (L <= 0) {
            pe_fail_usage(&e, "-t freqs needs the training length: give --train-len");
        } else {
            pe_rope_default_theta(o.rope_theta, (int)o.rotary_dim, theta);
            pe_table_meta(R.table, "rope_theta", "%.17g", o.rope_theta);
            e.msg[0] = '\0';
            freqs_table(R.table, theta, (int)o.rotary_dim, o.rope_theta, L, &o, &e);
        }
        free(theta);
        if (e.msg[0]) {
            status = fail(&e);
            goto end;
        }
        goto finish;
    }

    write_inputs_meta(R.table, &R.in);
    if (o.check) {
        if (check_files(R.table, &R.in, &mismatch, &e) < 0) {
            status = fail(&e);
            goto end;
        }
        goto finish;
    }

    const pe_meta *m = R.in.meta;
    long L = R.in.train_len;
    if (o.table != TABLE_PROFILE && L <= 0) {
        pe_fail_usage(&e, "-t %s needs the training length: the files have no train_len; give --train-len",
                      table_names[o.table]);
        status = fail(&e);
        goto end;
    }
    if (o.table == TABLE_FREQS) {
        const double *theta = m->theta;
        if (c.layers && R.in.n_layers == 1) theta = layer_theta(&R, 0);
        if (freqs_table(R.table, theta, m->rotary_dim, m->rope_theta, L, &o, &e) < 0) {
            status = fail(&e);
            goto end;
        }
        goto finish;
    }

    pe_table_meta(R.table, "train_len", "%ld", L);
    pe_table_meta(R.table, "pairing", "%s", pe_pairing_name(m->pairing));
    pe_table_meta(R.table, "attn_scale", "%.17g", m->attn_scale);
    if (o.table == TABLE_PROFILE) {
        pe_table_meta(R.table, "bins", "%ld", o.bins);
        pe_table_meta(R.table, "method", "%s", o.method == PE_METHOD_FFT ? "fft" : "direct");
        if (m->attn_softcap > 0)
            pe_table_meta(R.table, "note", "mean_logit is before the softcap %.9g", m->attn_softcap);
    }
    for (size_t f = 0; f < R.in.n; f++) {
        if (!pe_dump_meta(R.in.dumps[f])->contiguous && o.method == PE_METHOD_FFT && !c.quiet)
            fprintf(stderr, "%s: %s: positions are not contiguous; using the direct O(T^2) sum\n", PROG,
                    pe_dump_path(R.in.dumps[f]));
    }

    R.c = &c;
    R.o = &o;
    R.kv_group = m->n_heads / m->n_kv_heads;
    R.n_tasks = R.in.n_layers * R.in.n_heads;
    R.progress = !c.quiet && isatty(STDERR_FILENO);
    if (!(R.res = pe_alloc(R.n_tasks ? R.n_tasks : 1, sizeof *R.res, 1, &e))) {
        status = fail(&e);
        goto end;
    }
    if (pe_par_run(R.n_tasks, c.jobs ? c.jobs : pe_cpu_count(), work_head, emit_head, &R, &e) < 0) {
        if (R.progress) fputs("\r\033[K", stderr);
        status = fail(&e);
        goto end;
    }

finish:
    if (pe_table_finish(R.table, &e) < 0) {
        R.table = NULL;
        status = fail(&e);
        goto end;
    }
    R.table = NULL;
    if (pe_output_close(&out, 1, &e) < 0) {
        status = fail(&e);
        goto end;
    }
    if (mismatch) status = PE_EXIT_FOUND;
end:
    if (R.table) pe_table_finish(R.table, NULL);
    if (out.fp) pe_output_close(&out, 0, NULL);
    for (size_t i = 0; R.res && i < R.n_tasks; i++) result_free(&R.res[i]);
    free(R.res);
    if (R.in.n) pe_inputs_close(&R.in);
    pe_common_opts_free(&c);
    /* A full disk on stdout is a failure even when every line was accepted
     * by the buffer. */
    if (fclose(stdout) != 0 && status == PE_EXIT_OK) {
        fprintf(stderr, "%s: standard output: write error: %s\n", PROG, strerror(errno));
        status = PE_EXIT_DATA;
    }
    return status;
}
