/* peentropy: DoPE's truncated matrix entropy of every head's queries and keys
 * (man peentropy(1)): per-head scores, the 2 x 2 band view of each RoPE
 * pair, the heads DoPE would denoise and the mask an inference engine can
 * apply.
 *
 * One task per (layer, tensor, head): a key head is scored once, whatever
 * the number of query heads that use it.  Each file is scored on its own
 * and the per-file numbers are averaged with an order-independent sum.  The
 * run itself is pe_run's and a head's work pe_entplan's; a layer's rows are
 * written when its last head is done, the selection when every head is. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pe_entplan.h"
#include "pe_entropy.h"
#include "pe_mask.h"
#include "pe_run.h"
#include "pe_version.h"

#define PROG "peentropy"

typedef enum { TABLE_HEADS = 0, TABLE_BANDS, TABLE_SELECT } table_kind;
static const char *const table_names[] = {"heads", "bands", "select", NULL};
enum { TENSOR_Q = 0, TENSOR_K, TENSOR_BOTH };
static const char *const tensor_names[] = {"q", "k", "both", NULL};
static const char *const stage_names[] = {"pre", "post", "ntk", "all", NULL};
static const char *const prep_names[] = {"paper", "uncomp", NULL};
static const char *const order_names[] = {"asc", "desc", NULL};
/* --score names and the per-head number each picks. */
static const char *const score_names[] = {"s", "norm", "rho", "full", "lambda1", "energy", NULL};
static const int score_index[] = {PE_ENT_SCORE, PE_ENT_NORM, PE_ENT_RHO, PE_ENT_FULL, PE_ENT_LAMBDA1, PE_ENT_ENERGY};

enum {
    OPT_TENSOR = PE_OPT_TOOL,
    OPT_STAGE,
    OPT_PREP,
    OPT_NTK_LEN,
    OPT_NTK_FACTOR,
    OPT_BROADCAST,
    OPT_ORDER,
    OPT_SCORE,
    OPT_MASK
};

typedef struct ent_opts {
    int table, tensor, stage, prep;
    long rank;
    long ntk_len;      /* 0 = not given */
    double ntk_factor; /* 1 */
    int broadcast;
    long top;
    int order, score;
    const char *mask;
    int set_top, set_order, set_score, set_factor;
} ent_opts;

static const pe_option ent_options[] = {
    {"table", 't', "NAME", "heads (default), bands or select"},
    {"tensor", OPT_TENSOR, "T", "q, k or both (default)"},
    {"stage", OPT_STAGE, "S", "pre (unrotated), post (rotated; default), ntk or all"},
    {"prep", OPT_PREP, "P", "paper (default: none) or uncomp (centre columns, rows to norm 1)"},
    {"rank", 'r', "R", "truncation rank r of the score (default 16, clamped to head_dim)"},
    {"ntk-len", OPT_NTK_LEN, "N", "stage ntk: rotate with dynamic NTK's frequencies at length N"},
    {"ntk-factor", OPT_NTK_FACTOR, "S", "stage ntk: dynamic NTK factor S >= 1 (default 1)"},
    {"broadcast", OPT_BROADCAST, NULL, "key rows per query head (default: one per key head)"},
    {"top", 'n', "N", "select: how many heads (default 8)"},
    {"order", OPT_ORDER, "O", "select: asc (lowest score first; default) or desc"},
    {"score", OPT_SCORE, "V", "select: s (S_r; default), norm, rho, full, lambda1 or energy (energy_r)"},
    {"mask", OPT_MASK, "FILE", "select: also write the DoPE mask (JSON) to FILE (-: stdout, not the table)"},
    {NULL, 0, NULL, NULL}};

/* The text after the option list of --help. */
static const char epilog[] =
    "Scores: S_r = -sum_{i<=r} lambda_i ln lambda_i over the eigenvalues of\n"
    "X^T X / trace (the default score; low = spiky spectrum), S_r / ln D, rho_r,\n"
    "lambda_1, S_D and exp(S_D).  Several FILEs: each head's numbers are the\n"
    "mean over the files of the per-file numbers (one sequence per file).\n";

static int handle_option(int key, const char *arg, void *ctx, pe_err *e)
{
    ent_opts *o = ctx;
    switch (key) {
    case 't': return pe_parse_choice("--table", arg, table_names, &o->table, e);
    case OPT_TENSOR: return pe_parse_choice("--tensor", arg, tensor_names, &o->tensor, e);
    case OPT_STAGE: return pe_parse_choice("--stage", arg, stage_names, &o->stage, e);
    case OPT_PREP: return pe_parse_choice("--prep", arg, prep_names, &o->prep, e);
    case 'r': return pe_parse_long("--rank", arg, 1, 1000000, &o->rank, e);
    case OPT_NTK_LEN: return pe_parse_long("--ntk-len", arg, 1, 1L << 40, &o->ntk_len, e);
    case OPT_NTK_FACTOR:
        o->set_factor = 1;
        return pe_parse_double("--ntk-factor", arg, 1, 1e6, &o->ntk_factor, e);
    case OPT_BROADCAST: o->broadcast = 1; return 0;
    case 'n':
        o->set_top = 1;
        return pe_parse_long("--top", arg, 1, 1000000000L, &o->top, e);
    case OPT_ORDER:
        o->set_order = 1;
        return pe_parse_choice("--order", arg, order_names, &o->order, e);
    case OPT_SCORE:
        o->set_score = 1;
        return pe_parse_choice("--score", arg, score_names, &o->score, e);
    case OPT_MASK:
        if (!*arg) return pe_fail_usage(e, "--mask: empty file name");
        o->mask = arg;
        return 0;
    default: return pe_fail_usage(e, "unknown option");
    }
}

/* ---- the run ---- */

typedef struct state {
    long L;
    pe_entplan plan; /* the stages and the layout of a task's numbers */
} state;

static const ent_opts *opts_of(const pe_run *r)
{
    return r->opts;
}

/* The numbers of task i at stage si. */
static double *result(pe_run *r, size_t i, int si)
{
    const state *s = r->state;
    return (double *)pe_run_result(r, i) + (size_t)si * s->plan.per_stage;
}

static int prepare(pe_run *r, pe_err *e)
{
    const ent_opts *o = opts_of(r);
    const pe_meta *m = r->in.meta;
    state *s = pe_alloc(1, sizeof *s, 1, e);
    if (!s) return -1;
    r->state = s;
    s->L = r->in.train_len;
    if (pe_entplan_init(&s->plan, o->stage, o->ntk_len != 0, (pe_prep)o->prep, o->rank, m->head_dim, m->n_pairs,
                        o->table == TABLE_BANDS, r->jobs, e) < 0)
        return -1;
    if (o->table == TABLE_SELECT && score_index[o->score] == PE_ENT_RHO && s->plan.r == 1)
        return pe_fail_usage(e, "--score rho with r 1: rho_1 is 1 for every head, nothing to rank; give -r 2 or more");
    r->result_size = (size_t)s->plan.n_stages * s->plan.per_stage * sizeof(double);
    r->query_tasks = o->tensor != TENSOR_K;
    r->key_tasks = o->tensor != TENSOR_Q;
    if (o->mask && s->L <= 0)
        return pe_fail_usage(e, "--mask needs the training length (its pairs have theta <= 2 pi / L): the files have "
                                "no train_len; give --train-len");
    if (!o->ntk_len) return 0;
    if (s->L <= 0)
        return pe_fail_usage(e, "--stage %s needs the training length (dynamic NTK scales from it): the files have no "
                                "train_len; give --train-len",
                             stage_names[o->stage]);
    return pe_entplan_ntk(&s->plan, r->in.dumps, r->in.n, s->L, o->ntk_len, o->ntk_factor, e);
}

/* Per thread: one head's tensor in double (twice with more than one stage),
 * the Gram matrix with the eigensolver's workspace; every result until the
 * end; per file, the rotation tables of the rotated stages (post, ntk). */
static double memory_need(pe_run *r)
{
    const state *s = r->state;
    double T = (double)r->T_max, D = s->plan.D;
    int threads = r->jobs < (int)r->n_tasks ? r->jobs : (int)r->n_tasks;
    if (threads < 1) threads = 1;
    r->mem_jobs = threads;
    double need = threads * (T * D * 8 * (s->plan.n_stages > 1 ? 2 : 1) + 6 * D * D * 8);
    need += (double)r->n_tasks * (double)r->result_size;
    need += (double)r->in.n * 2 * T * r->in.meta->rotary_dim * 8;
    return need;
}

/* One (layer, tensor, head): every file, every stage, then the mean over
 * files of each number. */
static int work_task(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    state *s = r->state;
    const size_t nf = r->in.n;
    const size_t per_file = (size_t)s->plan.n_stages * s->plan.per_stage;
    double *pf = pe_run_buffer(r, 2, nf * per_file, e), *tmp = pe_run_buffer(r, 3, nf, e);
    if (!pf || !tmp) return -1;
    for (size_t f = 0; f < nf; f++) {
        pe_dump *d = r->in.dumps[f];
        const pe_meta *mf = pe_dump_meta(d);
        int slot = pe_run_slot(r, f, t->lj);
        pe_geom g = pe_run_geom(r, f, slot);
        char who[sizeof e->msg];
        double *x = pe_run_read(r, t, f, t->tensor, t->head, 0, 0, e), *y = NULL;
        if (!x || (s->plan.n_stages > 1 && !(y = pe_run_buffer(r, 1, mf->T * (size_t)mf->head_dim, e)))) return -1;
        snprintf(who, sizeof who, "%s: layer %ld: %s head %d", pe_dump_path(d), t->layer,
                 t->tensor == PE_TENSOR_Q ? "q" : "k", t->head);
        if (pe_entplan_head(&s->plan, pe_pool_worker(), f, x, y, mf->T, &g, mf->positions, pe_run_rotation(r, 0, t, f),
                            t->tensor == PE_TENSOR_Q, mf->layers[slot].rope, r->pool, pf + f * per_file, who, e) < 0)
            return -1;
    }
    pe_entropy_pool_files(pf, nf, per_file, tmp, res);
    return 0;
}

/* ---- output ---- */

static void meta(pe_run *r)
{
    const ent_opts *o = opts_of(r);
    const state *s = r->state;
    const pe_meta *m = r->in.meta;
    pe_table *t = r->table;
    char stages[32];
    pe_entplan_stage_list(&s->plan, stages, sizeof stages);
    pe_table_meta(t, "train_len", "%ld", s->L);
    pe_table_meta(t, "pairing", "%s", m->rotary_dim > 0 ? pe_pairing_name(m->pairing) : "none");
    pe_table_meta(t, "tensor", "%s", tensor_names[o->tensor]);
    pe_table_meta(t, "broadcast", "%s", o->broadcast ? "yes" : "no");
    pe_table_meta(t, "stage", "%s", stages);
    pe_table_meta(t, "prep", "%s", prep_names[o->prep]);
    if (o->rank > s->plan.D)
        pe_table_meta(t, "rank", "%d (asked %ld, clamped to head_dim)", s->plan.r, o->rank);
    else
        pe_table_meta(t, "rank", "%d", s->plan.r);
    if (s->plan.ntk_theta) {
        pe_table_meta(t, "ntk_len", "%ld", o->ntk_len);
        pe_table_meta(t, "ntk_factor", "%.17g", o->ntk_factor);
        pe_table_meta(t, "ntk_base", "%.17g", s->plan.ntk_base);
    }
    pe_table_meta(t, "pooling", "each number is the mean over %zu file%s of the per-file numbers", r->in.n,
                  r->in.n == 1 ? "" : "s");
    if (o->table == TABLE_HEADS)
        pe_table_meta(t, "directions", "score (S_r) and score_norm: %s; rho: %s; lambda1: %s; full, eff_rank: %s; "
                                       "energy_r: %s", pe_entropy_score_direction(PE_ENT_SCORE),
                      pe_entropy_score_direction(PE_ENT_RHO), pe_entropy_score_direction(PE_ENT_LAMBDA1),
                      pe_entropy_score_direction(PE_ENT_FULL), pe_entropy_score_direction(PE_ENT_ENERGY));
    if (o->table == TABLE_SELECT) {
        pe_table_meta(t, "score", "%s (%s)", score_names[o->score], pe_entropy_score_label(score_index[o->score]));
        pe_table_meta(t, "order", "%s", order_names[o->order]);
        pe_table_meta(t, "top", "%ld", o->top);
    }
}

/* The rows of a tensor in layer lj, in table order: (head, kv_head, task). */
typedef struct row_ref {
    int head, kv_head;
    size_t task;
} row_ref;

static size_t tensor_rows(const pe_run *r, size_t lj, pe_tensor tn, row_ref *rows)
{
    size_t n = 0;
    for (size_t j = 0; j < r->in.n_heads; j++) {
        int h = r->in.heads[j], kv = h / r->kv_group;
        if (tn == PE_TENSOR_Q)
            rows[n++] = (row_ref){h, kv, pe_run_task_index(r, lj, PE_TENSOR_Q, h)};
        else if (opts_of(r)->broadcast)
            rows[n++] = (row_ref){h, kv, pe_run_task_index(r, lj, PE_TENSOR_K, kv)};
        else if (j == 0 || kv != r->in.heads[j - 1] / r->kv_group)
            rows[n++] = (row_ref){kv, kv, pe_run_task_index(r, lj, PE_TENSOR_K, kv)};
    }
    return n;
}

static int tensor_selected(const pe_run *r, int tn)
{
    return opts_of(r)->tensor == TENSOR_BOTH || opts_of(r)->tensor == tn;
}

/* heads and bands: a layer's rows once its last task is done. */
static int emit_layer(pe_run *r, const pe_task *t, void *res, pe_err *e)
{
    (void)res;
    const state *s = r->state;
    pe_table *tb = r->table;
    if (!pe_run_last_of_layer(r, t)) return 0;
    row_ref *rows = pe_alloc(r->in.n_heads + 1, sizeof *rows, 0, e);
    if (!rows) return -1;
    int rope = r->in.meta->layers[pe_run_slot(r, 0, t->lj)].rope;
    for (int tn = 0; tn < 2; tn++) {
        if (!tensor_selected(r, tn)) continue;
        size_t n = tensor_rows(r, t->lj, (pe_tensor)tn, rows);
        for (int si = 0; si < s->plan.n_stages; si++) {
            for (size_t j = 0; j < n; j++) {
                pe_stage stage = s->plan.stages[si];
                /* The band view's frequencies: those the stage turned with. */
                const double *theta = stage == PE_STAGE_NTK && rope ? s->plan.ntk_theta[0]
                                      : stage == PE_STAGE_POST
                                          ? pe_run_rotation(r, 0, &r->tasks[rows[j].task], 0)->theta
                                          : pe_run_theta(r, t->lj);
                pe_entplan_rows(&s->plan, tb, si, t->layer, rows[j].head, rows[j].kv_head, tn, theta, s->L,
                                result(r, rows[j].task, si));
            }
            if (!s->plan.bands) pe_table_break(tb, 1);
        }
    }
    if (!s->plan.bands) pe_table_break(tb, 2);
    free(rows);
    return 0;
}

/* select: every head ranked once all are done, then the mask. */
static int finish_select(pe_run *r, pe_err *e)
{
    const ent_opts *o = opts_of(r);
    const state *s = r->state;
    pe_mask_head *mh = pe_alloc(r->in.n_layers * 2 * (r->in.n_heads ? r->in.n_heads : 1), sizeof *mh, 0, e);
    row_ref *rows = pe_alloc(r->in.n_heads + 1, sizeof *rows, 0, e);
    size_t n = 0, n_sel = 0;
    double l1max = 0;
    int rc = -1;
    if (!mh || !rows) goto done;
    for (size_t lj = 0; lj < r->in.n_layers; lj++)
        for (int tn = 0; tn < 2; tn++) {
            size_t nr = tensor_selected(r, tn) ? tensor_rows(r, lj, (pe_tensor)tn, rows) : 0;
            for (size_t j = 0; j < nr; j++, n++) {
                const double *v = result(r, rows[j].task, 0);
                mh[n] = (pe_mask_head){r->in.layers[lj], tn, rows[j].head, rows[j].kv_head, v[score_index[o->score]],
                                       pe_run_theta(r, lj)};
                l1max = fmax(l1max, v[PE_ENT_LAMBDA1]);
            }
        }
    if (pe_mask_rank(mh, n, o->order == 1, (size_t)o->top, &n_sel, e) < 0) goto done;
    if (r->table) {
        char direction[512];
        pe_entropy_select_direction(score_index[o->score], o->order == 1, l1max, direction, sizeof direction);
        pe_table_meta(r->table, "direction", "%s", direction);
        pe_mask_rows(r->table, mh, n_sel);
    }
    if (o->mask) {
        pe_mask_selection ms = {score_names[o->score], order_names[o->order], pe_stage_name(s->plan.stages[0]),
                                prep_names[o->prep], tensor_names[o->tensor], o->top, s->plan.r, o->broadcast,
                                s->plan.stages[0] == PE_STAGE_NTK ? o->ntk_len : 0, o->ntk_factor};
        if (pe_mask_write(r->side.fp, PROG " (petools) " PE_VERSION, r->files, r->in.n, r->in.meta, s->L, &ms, mh,
                          n_sel, r->kv_group, e) < 0)
            goto done;
    }
    rc = 0;
done:
    free(mh);
    free(rows);
    return rc;
}

static void cleanup(pe_run *r)
{
    state *s = r->state;
    if (!s) return;
    pe_entplan_free(&s->plan);
    free(s);
    r->state = NULL;
}

/* ---- the tables ---- */

#define HEAD_COLS {"layer", "block"}, {"head", "block"}, {"kv_head", "key"}, {"tensor", "block(q,k)"}, \
                  {"stage", "block(pre,post,ntk)"}
static const pe_column heads_cols[] = {HEAD_COLS,         {"prep", "key"},         {"r", "key"},
                                       {"score", "mean(files)"}, {"score_norm", "mean(files)"}, {"rho", "mean(files)"},
                                       {"lambda1", "mean(files)"}, {"full", "mean(files)"}, {"eff_rank", "mean(files)"},
                                       {"energy_r", "mean(files)"}};
static const pe_column bands_cols[] = {HEAD_COLS,            {"band", "key"},          {"theta", "key"},
                                       {"class", "key"},     {"mu1", "mean(files)"},   {"mu2", "mean(files)"},
                                       {"entropy", "mean(files)"}};
static const pe_column select_cols[] = {{"rank", "rank(score)"}, {"layer", "key"}, {"head", "key"},
                                        {"kv_head", "key"},      {"tensor", "key"}, {"score", "key"}};
#define COLS(a) a, (int)(sizeof a / sizeof a[0])
static const pe_table_def tables[] = {
    [TABLE_HEADS] = {"heads", COLS(heads_cols), PE_TABLE_KEY_TASKS, 0, prepare, memory_need, meta, work_task,
                     emit_layer, NULL, NULL},
    [TABLE_BANDS] = {"bands", COLS(bands_cols), PE_TABLE_KEY_TASKS, 0, prepare, memory_need, meta, work_task,
                     emit_layer, NULL, NULL},
    [TABLE_SELECT] = {"select", COLS(select_cols), PE_TABLE_KEY_TASKS, 0, prepare, memory_need, meta, work_task,
                      NULL, finish_select, NULL},
};

static const pe_table_def *table_of(const void *opts)
{
    return &tables[((const ent_opts *)opts)->table];
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* What the command line alone tells. */
static int check(pe_run *r, pe_err *e)
{
    ent_opts *o = r->opts;
    const pe_common_opts *c = &r->c;
    if (r->n_files == 0) return pe_fail_usage(e, "no input file (see %s --help)", PROG);
    if (o->table != TABLE_SELECT) {
        const char *only = o->set_top ? "--top" : o->set_order ? "--order" : o->set_score ? "--score" : o->mask ? "--mask" : NULL;
        if (only) return pe_fail_usage(e, "%s: only for -t select", only);
    }
    if (o->table == TABLE_SELECT && o->stage == PE_STAGE_ALL)
        return pe_fail_usage(e, "-t select ranks the heads of one stage: give --stage pre, post or ntk, not all");
    if (o->stage == PE_STAGE_NTK && o->ntk_len == 0)
        return pe_fail_usage(e, "--stage ntk needs the target length: give --ntk-len N");
    if (o->ntk_len && o->stage != PE_STAGE_NTK && o->stage != PE_STAGE_ALL)
        return pe_fail_usage(e, "--ntk-len: only with --stage ntk or all");
    if (o->set_factor && !o->ntk_len) return pe_fail_usage(e, "--ntk-factor: only with --ntk-len");
    for (size_t i = 0; o->ntk_len && i < c->n_pe; i++)
        if (!pe_whatif_is_rope(c->pe[i]))
            return pe_fail_usage(e, "--pe with the ntk stage: ntk is itself a what-if; give --stage post --pe "
                                    "dynamic:S:T instead");
    int mask_stdout = o->mask && strcmp(o->mask, "-") == 0;
    if (mask_stdout && c->output && strcmp(c->output, "-") == 0)
        return pe_fail_usage(e, "--mask -: the table already goes to standard output (-o -); give one of them a file");
    if (o->mask && c->output && !mask_stdout && (strcmp(o->mask, c->output) == 0 || same_file(o->mask, c->output)))
        return pe_fail_usage(e, "--mask: '%s' is also the --output file", o->mask);
    /* --mask - takes standard output alone: the table only with -o FILE. */
    r->no_output = mask_stdout && !c->output;
    r->side_path = o->mask;
    r->side_opt = "--mask";
    return 0;
}

static const pe_tool_def tool = {{PROG, "[OPTION]... FILE...", "DoPE's truncated matrix entropy of the query and key heads of qkdump files.", ent_options, epilog, pe_run_libraries, NULL, handle_option},
                                  table_of, check, cleanup};

int main(int argc, char **argv)
{
    ent_opts o = {TABLE_HEADS, TENSOR_BOTH, PE_STAGE_POST, PE_PREP_PAPER, 16, 0, 1.0, 0, 8, 0, 0, NULL, 0, 0, 0, 0};
    return pe_run_main(argc, argv, &tool, &o);
}
