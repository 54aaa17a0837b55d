/* test_attn.c: the attention engine (pe_attn) against a full-matrix
 * reference written here: every T x T logit by a plain dot-product loop,
 * each row's softmax materialised, every statistic of man peanalyze(1)
 * computed by its definition.  Random data on small T, with several block
 * sizes, softcap on and off, --rows subsampling, non-contiguous positions,
 * pooling, S = 1 and 3, L inside and beyond T; and byte-identical
 * accumulators for every block size (the fixed GEMM tiling). */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe_attn.h"
#include "pe_curve.h"
#include "pe_test.h"

typedef struct seq {
    size_t T;
    int D;
    double *q, *k;
    int64_t *pos;
} seq;

static seq make_seq(size_t T, int D, int64_t pos0, int gappy, double amp, unsigned long long seed)
{
    seq s = {T, D, malloc(T * (size_t)D * sizeof(double)), malloc(T * (size_t)D * sizeof(double)),
             malloc(T * sizeof(int64_t))};
    pe_rng r = {seed};
    for (size_t i = 0; i < T * (size_t)D; i++) {
        s.q[i] = amp * pe_rng_uniform(&r);
        s.k[i] = amp * pe_rng_uniform(&r);
    }
    int64_t p = pos0;
    for (size_t m = 0; m < T; m++) {
        s.pos[m] = p;
        p += gappy ? 1 + (int64_t)(pe_rng_next(&r) % 3) : 1;
    }
    return s;
}

static void free_seq(seq *s)
{
    free(s->q);
    free(s->k);
    free(s->pos);
}

/* The --rows rule, written out here: m_i = floor(i (T-1) / (N-1)). */
static size_t ref_rows(size_t T, size_t N, size_t *rows)
{
    if (N == 0 || N >= T) {
        for (size_t m = 0; m < T; m++) rows[m] = m;
        return T;
    }
    if (N == 1) {
        rows[0] = T - 1;
        return 1;
    }
    for (size_t i = 0; i < N; i++) rows[i] = (size_t)((unsigned long long)i * (T - 1) / (N - 1));
    return N;
}

/* ---- the reference: everything from the full matrix ---- */

typedef struct ref {
    size_t nd;
    double *logit, *abslogit, *count, *logit_in, *abslogit_in, *count_in, *prob, *prob_u, *last, *last_count;
    double rows_in, rows_beyond, sink_in, sink_beyond, ent_rows_in, ent_rows_beyond, ent_in, ent_beyond;
    double lo, hi, pairs_beyond, exceed;
    double *ns_logit, *ns_count, *ns_logit_in, *ns_count_in; /* pairs whose key is not a sink */
    double nats_in, nats_beyond, unseen_beyond;
    /* per row of the first sequence: unseen mass, entropy (nats), sink mass, exceedance */
    double *row_unseen, *row_nats, *row_sink, *row_exceed;
} ref;

static double *zeros(size_t n)
{
    return calloc(n ? n : 1, sizeof(double));
}

static void ref_free(ref *r)
{
    free(r->logit);
    free(r->abslogit);
    free(r->count);
    free(r->logit_in);
    free(r->abslogit_in);
    free(r->count_in);
    free(r->prob);
    free(r->prob_u);
    free(r->last);
    free(r->last_count);
    free(r->ns_logit);
    free(r->ns_count);
    free(r->ns_logit_in);
    free(r->ns_count_in);
    free(r->row_unseen);
    free(r->row_nats);
    free(r->row_sink);
    free(r->row_exceed);
}

/* The full T x T matrix of a sequence: capped logits (NaN above the
 * diagonal) and probabilities. */
static void full_matrix(const seq *s, double scale, double cap, double *L, double *P)
{
    size_t T = s->T;
    for (size_t m = 0; m < T; m++) {
        double mx = -INFINITY, Z = 0;
        for (size_t n = 0; n < T; n++) {
            if (n > m) {
                L[m * T + n] = NAN;
                continue;
            }
            double dot = 0;
            for (int d = 0; d < s->D; d++) dot += s->q[m * (size_t)s->D + (size_t)d] * s->k[n * (size_t)s->D + (size_t)d];
            double l = scale * dot;
            if (cap > 0) l = cap * tanh(l / cap);
            L[m * T + n] = l;
            if (l > mx) mx = l;
        }
        for (size_t n = 0; n <= m; n++) Z += exp(L[m * T + n] - mx);
        for (size_t n = 0; n < T; n++) P[m * T + n] = n <= m ? exp(L[m * T + n] - mx) / Z : 0;
    }
}

static void ref_compute(ref *r, const seq *seqs, size_t nseq, size_t nd, const pe_attn_params *p, size_t nrows)
{
    memset(r, 0, sizeof *r);
    r->nd = nd;
    r->logit = zeros(nd);
    r->abslogit = zeros(nd);
    r->count = zeros(nd);
    r->logit_in = zeros(nd);
    r->abslogit_in = zeros(nd);
    r->count_in = zeros(nd);
    r->prob = zeros(nd);
    r->prob_u = zeros(nd);
    r->last = zeros(nd);
    r->last_count = zeros(nd);
    r->ns_logit = zeros(nd);
    r->ns_count = zeros(nd);
    r->ns_logit_in = zeros(nd);
    r->ns_count_in = zeros(nd);
    r->row_unseen = zeros(seqs[0].T);
    r->row_nats = zeros(seqs[0].T);
    r->row_sink = zeros(seqs[0].T);
    r->row_exceed = zeros(seqs[0].T);
    for (size_t m = 0; m < seqs[0].T; m++) r->row_unseen[m] = r->row_nats[m] = r->row_sink[m] = r->row_exceed[m] = -1;
    r->lo = INFINITY;
    r->hi = -INFINITY;
    long L = p->train_len;
    double **Lm = calloc(nseq, sizeof *Lm), **Pm = calloc(nseq, sizeof *Pm);
    size_t **rows = calloc(nseq, sizeof *rows), *nr = calloc(nseq, sizeof *nr);
    for (size_t f = 0; f < nseq; f++) {
        size_t T = seqs[f].T;
        Lm[f] = malloc(T * T * sizeof(double));
        Pm[f] = malloc(T * T * sizeof(double));
        rows[f] = malloc(T * sizeof(size_t));
        nr[f] = ref_rows(T, nrows, rows[f]);
        full_matrix(&seqs[f], p->scale, p->softcap, Lm[f], Pm[f]);
    }
    /* The in-train range first, over every sequence. */
    for (size_t f = 0; f < nseq; f++) {
        size_t T = seqs[f].T;
        for (size_t i = 0; i < nr[f]; i++) {
            size_t m = rows[f][i];
            if (L > 0 && seqs[f].pos[m] >= L) continue;
            for (size_t n = 0; n <= m; n++) {
                r->lo = fmin(r->lo, Lm[f][m * T + n]);
                r->hi = fmax(r->hi, Lm[f][m * T + n]);
            }
        }
    }
    double W = r->hi - r->lo, blo = r->lo - p->margin * W, bhi = r->hi + p->margin * W;
    for (size_t f = 0; f < nseq; f++) {
        const seq *s = &seqs[f];
        size_t T = s->T;
        for (size_t i = 0; i < nr[f]; i++) {
            size_t m = rows[f][i];
            int in = L <= 0 || s->pos[m] < L;
            double sink = 0, H = 0, unseen = 0, out = 0;
            for (size_t n = 0; n <= m; n++) {
                size_t d = (size_t)(s->pos[m] - s->pos[n]);
                double l = Lm[f][m * T + n], pr = Pm[f][m * T + n];
                r->logit[d] += l;
                r->abslogit[d] += fabs(l);
                r->count[d] += 1;
                if (in) {
                    r->logit_in[d] += l;
                    r->abslogit_in[d] += fabs(l);
                    r->count_in[d] += 1;
                } else {
                    r->pairs_beyond += 1;
                    if (r->lo <= r->hi && (l < blo || l > bhi)) r->exceed += 1;
                }
                r->prob[d] += pr;
                r->prob_u[d] += (double)(m + 1) * pr;
                if (m == T - 1) {
                    r->last[d] += pr;
                    r->last_count[d] += 1;
                }
                if (n < p->sink_tokens) sink += pr;
                if (pr > 0) H -= pr * log(pr);
                if (n >= p->sink_tokens) { /* the U-score's pairs */
                    r->ns_logit[d] += l;
                    r->ns_count[d] += 1;
                    if (in) {
                        r->ns_logit_in[d] += l;
                        r->ns_count_in[d] += 1;
                    }
                }
                if (L > 0 && s->pos[m] - s->pos[n] >= L && n >= p->sink_tokens) unseen += pr;
                if (!in && (l < blo || l > bhi)) out += 1;
            }
            if (in) {
                r->rows_in += 1;
                r->sink_in += sink;
            } else {
                r->rows_beyond += 1;
                r->sink_beyond += sink;
                r->unseen_beyond += unseen;
            }
            if (m >= 1) {
                if (in) {
                    r->ent_rows_in += 1;
                    r->ent_in += H / log((double)(m + 1));
                    r->nats_in += H;
                } else {
                    r->ent_rows_beyond += 1;
                    r->ent_beyond += H / log((double)(m + 1));
                    r->nats_beyond += H;
                }
            }
            if (f == 0) {
                r->row_unseen[m] = unseen;
                r->row_nats[m] = H;
                r->row_sink[m] = sink;
                r->row_exceed[m] = in || r->lo > r->hi ? NAN : out / (double)(m + 1);
            }
        }
    }
    for (size_t f = 0; f < nseq; f++) {
        free(Lm[f]);
        free(Pm[f]);
        free(rows[f]);
    }
    free(Lm);
    free(Pm);
    free(rows);
    free(nr);
}

/* ---- the engine, the way peanalyze drives it ---- */

/* One work shared by every run that asks for it: it grows and shrinks its
 * use from case to case, which must change nothing. */
static pe_attn_work *shared_work;

/* The engine's per-row diagnostics of the first sequence, from the last run. */
static double *eng_unseen, *eng_nats, *eng_sink, *eng_exceed;

static int run_engine(pe_attn_acc *a, const seq *seqs, size_t nseq, size_t nd, const pe_attn_params *p,
                      size_t nrows, int force_phases)
{
    pe_attn_work *w = p->block == 7 ? shared_work : NULL;
    pe_err e = {0};
    if (pe_attn_init(a, nd, &e) < 0) return -1;
    size_t **rows = calloc(nseq, sizeof *rows), *nr = calloc(nseq, sizeof *nr);
    for (size_t f = 0; f < nseq; f++) {
        rows[f] = malloc(seqs[f].T * sizeof(size_t));
        nr[f] = pe_attn_even_rows(seqs[f].T, nrows ? nrows : seqs[f].T, rows[f]);
    }
    int two = (nseq > 1 || force_phases) && p->train_len > 0, rc = 0;
    free(eng_unseen);
    free(eng_nats);
    free(eng_sink);
    free(eng_exceed);
    eng_unseen = malloc(seqs[0].T * sizeof(double));
    eng_nats = malloc(seqs[0].T * sizeof(double));
    eng_sink = malloc(seqs[0].T * sizeof(double));
    eng_exceed = malloc(seqs[0].T * sizeof(double));
    for (size_t m = 0; m < seqs[0].T; m++) eng_unseen[m] = eng_nats[m] = eng_sink[m] = eng_exceed[m] = -1;
    pe_attn_rows out = {eng_unseen, eng_nats, eng_sink, eng_exceed};
    for (int ph = two ? 1 : 0; ph <= (two ? 2 : 0) && rc == 0; ph++) {
        for (size_t f = 0; f < nseq && rc == 0; f++) {
            pe_attn_seq s = {seqs[f].T, seqs[f].D, seqs[f].q, seqs[f].k, seqs[f].pos,
                             nrows ? rows[f] : NULL, nr[f], f == 0 ? &out : NULL};
            rc = pe_attn_add(a, &s, p, (pe_attn_phase)ph, w, &e);
        }
    }
    if (rc < 0) printf("# engine error: %s\n", e.msg);
    for (size_t f = 0; f < nseq; f++) free(rows[f]);
    free(rows);
    free(nr);
    return rc;
}

/* Worst errors of an engine run against the reference; rows_T: the rows of
 * the first sequence, whose per-row diagnostics are compared too. */
static size_t rows_T;
static void compare(const char *name, const pe_attn_acc *a, const ref *r)
{
    char what[256];
    size_t nd = r->nd;
    int counts_ok = 1;
    double wl = 0, wp = 0, wpu = 0, wlast = 0;
    for (size_t d = 0; d < nd; d++) {
        counts_ok &= a->count[d] == r->count[d] && a->count_in[d] == r->count_in[d] &&
                     a->last_count[d] == r->last_count[d];
        wl = fmax(wl, fabs(a->logit[d] - r->logit[d]) / fmax(1, r->abslogit[d]));
        wl = fmax(wl, fabs(a->logit_in[d] - r->logit_in[d]) / fmax(1, r->abslogit_in[d]));
        wp = fmax(wp, fabs(a->prob[d] - r->prob[d]));
        wpu = fmax(wpu, fabs(a->prob_u[d] - r->prob_u[d]) / fmax(1, fabs(r->prob_u[d])));
        wlast = fmax(wlast, fabs(a->last[d] - r->last[d]));
    }
    snprintf(what, sizeof what, "%s: pair counts per distance (all, in-train, last row) exact", name);
    PE_CHECK(counts_ok, what);
    snprintf(what, sizeof what, "%s: logit sums per distance (all and in-train) to 1e-12 relative", name);
    pe_test_report(wl <= 1e-12, what, "worst %.3g", wl);
    snprintf(what, sizeof what, "%s: probability sums per distance to 1e-12", name);
    pe_test_report(wp <= 1e-12 && wlast <= 1e-12, what, "worst P %.3g, last %.3g", wp, wlast);
    snprintf(what, sizeof what, "%s: (m+1) p sums per distance to 1e-12 relative", name);
    pe_test_report(wpu <= 1e-12, what, "worst %.3g", wpu);
    snprintf(what, sizeof what, "%s: row counts, beyond pairs and exceeding pairs exact", name);
    pe_test_report(a->rows_in == r->rows_in && a->rows_beyond == r->rows_beyond &&
                       a->ent_rows_in == r->ent_rows_in && a->ent_rows_beyond == r->ent_rows_beyond &&
                       a->pairs_beyond == r->pairs_beyond && a->exceed == r->exceed,
                   what, "rows %g/%g (want %g/%g), pairs beyond %g (%g), exceed %g (%g)", a->rows_in, a->rows_beyond,
                   r->rows_in, r->rows_beyond, a->pairs_beyond, r->pairs_beyond, a->exceed, r->exceed);
    double ws = fmax(fabs(a->sink_in - r->sink_in), fabs(a->sink_beyond - r->sink_beyond));
    double we = fmax(fabs(a->ent_in - r->ent_in), fabs(a->ent_beyond - r->ent_beyond));
    snprintf(what, sizeof what, "%s: sums of sink mass and normalised entropy to 1e-12 per row", name);
    pe_test_report(ws <= 1e-12 * fmax(1, a->rows_in + a->rows_beyond) &&
                       we <= 1e-12 * fmax(1, a->rows_in + a->rows_beyond),
                   what, "worst sink %.3g, entropy %.3g", ws, we);
    int range_ok = (r->lo > r->hi) ? (a->lo > a->hi)
                                   : pe_test_close_enough(a->lo, r->lo, 1e-12, 1) &&
                                         pe_test_close_enough(a->hi, r->hi, 1e-12, 1);
    snprintf(what, sizeof what, "%s: in-train logit range to 1e-12 relative", name);
    pe_test_report(range_ok, what, "got [%.17g, %.17g], want [%.17g, %.17g]", a->lo, a->hi, r->lo, r->hi);

    /* The head summary from the engine's accumulators against the
     * reference's own means. */
    pe_attn_stats st;
    pe_attn_summary(a, &st);
    double want_sink_in = r->rows_in ? r->sink_in / r->rows_in : NAN;
    double want_sink_b = r->rows_beyond ? r->sink_beyond / r->rows_beyond : NAN;
    double want_ent_in = r->ent_rows_in ? r->ent_in / r->ent_rows_in : NAN;
    double want_ent_b = r->ent_rows_beyond ? r->ent_beyond / r->ent_rows_beyond : NAN;
    double want_exc = (r->lo <= r->hi && r->pairs_beyond > 0) ? r->exceed / r->pairs_beyond : NAN;
    /* U over the pairs whose key is not a sink (the reference sums them on
     * their own), up to the largest distance that has such a pair. */
    size_t nin = nd, nall = nd;
    while (nin > 0 && r->ns_count_in[nin - 1] == 0) nin--;
    while (nall > 0 && r->ns_count[nall - 1] == 0) nall--;
    double want_uin = pe_u_score(r->ns_logit_in, r->ns_count_in, nin, NULL);
    double want_uall = pe_u_score(r->ns_logit, r->ns_count, nall, NULL);
    double want_nin = r->ent_rows_in ? r->nats_in / r->ent_rows_in : NAN;
    double want_nb = r->ent_rows_beyond ? r->nats_beyond / r->ent_rows_beyond : NAN;
    double want_unseen = r->rows_beyond ? r->unseen_beyond / r->rows_beyond : NAN;
    double want_ratio = want_sink_in > 0 ? want_sink_b / want_sink_in : NAN;
    snprintf(what, sizeof what, "%s: summary: unseen-distance mass, entropy in nats and sink ratio to 1e-12", name);
    pe_test_report(pe_test_close_enough(st.unseen, want_unseen, 1e-12, 0) &&
                       pe_test_close_enough(st.nats_in, want_nin, 1e-12, 0) &&
                       pe_test_close_enough(st.nats_beyond, want_nb, 1e-12, 0) &&
                       pe_test_close_enough(st.sink_ratio, want_ratio, 1e-12, 0),
                   what, "unseen %.17g (%.17g) nats %.17g/%.17g (%.17g/%.17g) ratio %.17g (%.17g)", st.unseen, want_unseen,
                   st.nats_in, st.nats_beyond, want_nin, want_nb, st.sink_ratio, want_ratio);
    int rows_ok = 1;
    for (size_t m = 0; eng_unseen && m < rows_T; m++) {
        int same = pe_test_close_enough(eng_unseen[m], r->row_unseen[m], 1e-12, 0) &&
                   pe_test_close_enough(eng_nats[m], r->row_nats[m], 1e-12, 0) &&
                   pe_test_close_enough(eng_sink[m], r->row_sink[m], 1e-12, 0) &&
                   (isnan(r->row_exceed[m]) ? isnan(eng_exceed[m]) || r->row_unseen[m] == -1
                                            : pe_test_close_enough(eng_exceed[m], r->row_exceed[m], 1e-15, 0));
        if (!same && rows_ok) printf("# row %zu: unseen %.17g (%.17g) nats %.17g (%.17g) sink %.17g (%.17g) exceed %.17g (%.17g)\n", m,
                                     eng_unseen[m], r->row_unseen[m], eng_nats[m], r->row_nats[m], eng_sink[m],
                                     r->row_sink[m], eng_exceed[m], r->row_exceed[m]);
        rows_ok &= same;
    }
    snprintf(what, sizeof what, "%s: per-row unseen mass, entropy (nats), sink mass and exceedance equal the reference's", name);
    PE_CHECK(rows_ok, what);
    snprintf(what, sizeof what, "%s: summary: sink, entropy, exceedance means and U-scores", name);
    pe_test_report(pe_test_close_enough(st.sink_in, want_sink_in, 1e-12, 0) &&
                       pe_test_close_enough(st.sink_beyond, want_sink_b, 1e-12, 0) &&
                       pe_test_close_enough(st.entropy_in, want_ent_in, 1e-12, 0) &&
                       pe_test_close_enough(st.entropy_beyond, want_ent_b, 1e-12, 0) &&
                       pe_test_close_enough(st.exceedance, want_exc, 1e-15, 0) &&
                       pe_test_close_enough(st.u_in, want_uin, 1e-9, 0) &&
                       pe_test_close_enough(st.u_all, want_uall, 1e-9, 0),
                   what, "sink %.17g/%.17g (%.17g/%.17g) entropy %.17g/%.17g (%.17g/%.17g) exc %.17g (%.17g) u %.17g/%.17g (%.17g/%.17g)",
                   st.sink_in, st.sink_beyond, want_sink_in, want_sink_b, st.entropy_in, st.entropy_beyond, want_ent_in,
                   want_ent_b, st.exceedance, want_exc, st.u_in, st.u_all, want_uin, want_uall);
}

/* Byte equality of two accumulators. */
static int same_bytes(const pe_attn_acc *a, const pe_attn_acc *b)
{
    size_t n = a->n_dist * sizeof(double);
    if (a->n_dist != b->n_dist) return 0;
    if (memcmp(a->logit, b->logit, n) || memcmp(a->count, b->count, n) || memcmp(a->logit_in, b->logit_in, n) ||
        memcmp(a->count_in, b->count_in, n) || memcmp(a->prob, b->prob, n) || memcmp(a->prob_u, b->prob_u, n) ||
        memcmp(a->last, b->last, n) || memcmp(a->last_count, b->last_count, n))
        return 0;
    double sa[] = {a->rows_in, a->rows_beyond, a->sink_in, a->sink_beyond, a->ent_rows_in, a->ent_rows_beyond,
                   a->ent_in, a->ent_beyond, a->lo, a->hi, a->pairs_beyond, a->exceed};
    double sb[] = {b->rows_in, b->rows_beyond, b->sink_in, b->sink_beyond, b->ent_rows_in, b->ent_rows_beyond,
                   b->ent_in, b->ent_beyond, b->lo, b->hi, b->pairs_beyond, b->exceed};
    return memcmp(sa, sb, sizeof sa) == 0;
}

typedef struct tcase {
    const char *name;
    size_t T1, T2;    /* T2 > 0: pool a second sequence */
    int D;
    int64_t pos0;
    int gappy;
    double amp, cap;
    long L;
    size_t S, rows;
} tcase;

static void run_case(const tcase *c)
{
    seq seqs[2];
    size_t nseq = c->T2 ? 2 : 1;
    seqs[0] = make_seq(c->T1, c->D, c->pos0, c->gappy, c->amp, 1000 + c->T1 * 7 + (size_t)c->D);
    if (nseq == 2) seqs[1] = make_seq(c->T2, c->D, c->pos0 + 3, !c->gappy, c->amp, 2000 + c->T2);
    size_t nd = 0;
    for (size_t f = 0; f < nseq; f++) {
        size_t d = (size_t)(seqs[f].pos[seqs[f].T - 1] - seqs[f].pos[0]) + 1;
        if (d > nd) nd = d;
    }
    pe_attn_params p = {1.0 / sqrt((double)c->D), c->cap, c->L, c->S, PE_ATTN_MARGIN, 0};
    ref r;
    ref_compute(&r, seqs, nseq, nd, &p, c->rows);

    static const size_t blocks[] = {1, 7, 64, 33, 0};
    pe_attn_acc first;
    char what[256];
    int have_first = 0;
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        pe_attn_acc a;
        p.block = blocks[b];
        if (run_engine(&a, seqs, nseq, nd, &p, c->rows, 0) < 0) {
            snprintf(what, sizeof what, "%s: block %zu: the engine runs", c->name, blocks[b]);
            PE_CHECK(0, what);
            continue;
        }
        if (b == 0) {
            rows_T = seqs[0].T;
            compare(c->name, &a, &r);
            first = a;
            have_first = 1;
            continue;
        }
        snprintf(what, sizeof what, "%s: block %zu%s: accumulators byte-identical to block 1", c->name, blocks[b],
                 blocks[b] == 7 ? " (a work kept from call to call)" : "");
        PE_CHECK(have_first && same_bytes(&a, &first), what);
        pe_attn_free(&a);
    }
    /* A single sequence in two phases (IN then BEYOND) equals one ALL call. */
    if (nseq == 1 && c->L > 0 && have_first) {
        pe_attn_acc a;
        p.block = 5;
        if (run_engine(&a, seqs, nseq, nd, &p, c->rows, 1) == 0) {
            snprintf(what, sizeof what, "%s: IN then BEYOND equals ALL, byte for byte", c->name);
            PE_CHECK(same_bytes(&a, &first), what);
            pe_attn_free(&a);
        }
    }
    if (have_first) pe_attn_free(&first);
    ref_free(&r);
    for (size_t f = 0; f < nseq; f++) free_seq(&seqs[f]);
}

/* ---- heat map ---- */

static void test_heatmap(size_t T, int D, double cap, size_t m0, size_t m1, size_t pixels)
{
    seq s = make_seq(T, D, 0, 0, 2.0, 77 + T);
    double scale = 1.0 / sqrt((double)D);
    double *Lm = malloc(T * T * sizeof(double)), *Pm = malloc(T * T * sizeof(double));
    full_matrix(&s, scale, cap, Lm, Pm);
    size_t nc = pe_bin_count(m1, pixels), nr = m1 - m0;
    double *want = calloc(nr * nc, sizeof(double)), *got = calloc(nr * nc, sizeof(double)),
           *got2 = calloc(nr * nc, sizeof(double));
    for (size_t m = m0; m < m1; m++) {
        for (size_t c = 0; c < nc; c++) {
            size_t lo, hi;
            pe_bin_range(m1, nc, c, &lo, &hi);
            double sum = 0;
            for (size_t n = lo; n <= hi; n++) sum += Pm[m * T + n]; /* 0 above the diagonal */
            want[(m - m0) * nc + c] = sum / (double)(hi - lo + 1);
        }
    }
    pe_attn_params p = {scale, cap, 0, 1, PE_ATTN_MARGIN, 3};
    pe_attn_seq as = {T, D, s.q, s.k, s.pos, NULL, 0, NULL};
    pe_err e = {0};
    char what[200];
    int r1 = pe_attn_heatmap(&as, &p, m0, m1, nc, got, NULL, &e);
    p.block = 0;
    int r2 = pe_attn_heatmap(&as, &p, m0, m1, nc, got2, shared_work, &e);
    double worst = 0, rowsum = 0;
    for (size_t i = 0; i < nr * nc; i++) worst = fmax(worst, fabs(got[i] - want[i]));
    /* The last row's cells, weighted by their widths, add up to 1. */
    for (size_t c = 0; c < nc; c++) {
        size_t lo, hi;
        pe_bin_range(m1, nc, c, &lo, &hi);
        rowsum += got[(nr - 1) * nc + c] * (double)(hi - lo + 1);
    }
    snprintf(what, sizeof what, "heatmap T %zu window %zu:%zu, %zu columns%s: cells equal the binned full matrix to 1e-12",
             T, m0, m1, nc, cap > 0 ? ", softcap" : "");
    pe_test_report(r1 == 0 && worst <= 1e-12, what, "status %d, worst %.3g (%s)", r1, worst, e.msg);
    snprintf(what, sizeof what, "heatmap T %zu window %zu:%zu: the last row's mass is 1", T, m0, m1);
    PE_CHECK_NEAR(rowsum, 1.0, 1e-12, what);
    snprintf(what, sizeof what, "heatmap T %zu window %zu:%zu: block 3 and the default block give the same bytes", T, m0, m1);
    PE_CHECK(r2 == 0 && memcmp(got, got2, nr * nc * sizeof(double)) == 0, what);
    free(Lm);
    free(Pm);
    free(want);
    free(got);
    free(got2);
    free_seq(&s);
}

/* ---- closed forms ---- */

/* q = 0: every logit 0, attention uniform: P_u = 1, normalised entropy 1,
 * sink mass min(S, m+1) / (m+1), exceedance 0. */
static void test_uniform(void)
{
    size_t T = 40;
    int D = 4;
    seq s = make_seq(T, D, 0, 0, 1.0, 5);
    memset(s.q, 0, T * (size_t)D * sizeof(double));
    pe_attn_params p = {0.5, 0, 20, 3, PE_ATTN_MARGIN, 0};
    pe_attn_acc a;
    pe_attn_stats st;
    run_engine(&a, &s, 1, T, &p, 0, 0);
    pe_attn_summary(&a, &st);
    double worst = 0;
    for (size_t d = 0; d < T; d++) worst = fmax(worst, fabs(a.prob_u[d] / a.count[d] - 1));
    PE_CHECK_NEAR(worst, 0, 1e-14, "uniform attention: mean (m+1) p is 1 at every distance");
    double want_in = 0, want_b = 0;
    for (size_t m = 0; m < 20; m++) want_in += (m + 1 < 3 ? 1.0 : 3.0 / (double)(m + 1)) / 20;
    for (size_t m = 20; m < 40; m++) want_b += 3.0 / (double)(m + 1) / 20;
    PE_CHECK_NEAR(st.sink_in, want_in, 1e-14, "uniform attention: sink mass in-train = mean of min(3, m+1)/(m+1)");
    PE_CHECK_NEAR(st.sink_beyond, want_b, 1e-14, "uniform attention: sink mass beyond = mean of 3/(m+1)");
    PE_CHECK_NEAR(st.entropy_in, 1, 1e-14, "uniform attention: normalised entropy 1 (in-train)");
    PE_CHECK_NEAR(st.entropy_beyond, 1, 1e-14, "uniform attention: normalised entropy 1 (beyond)");
    PE_CHECK_NEAR(st.exceedance, 0, 0, "uniform attention: no logit leaves the in-train range");
    PE_CHECK(st.u_in == 0 && st.u_all == 0, "flat mean logit: U-score 0");
    PE_CHECK_INT(st.rows_in, 20, "rows_in = 20 rows below L");
    PE_CHECK_INT(st.rows_beyond, 20, "rows_beyond = 20");
    pe_attn_free(&a);
    free_seq(&s);
}

static void test_rows_rule(void)
{
    size_t rows[16], want1[] = {0, 3, 6, 9};
    PE_CHECK(pe_attn_even_rows(10, 4, rows) == 4 && memcmp(rows, want1, sizeof want1) == 0,
             "--rows 4 of T 10: rows 0 3 6 9");
    PE_CHECK(pe_attn_even_rows(10, 1, rows) == 1 && rows[0] == 9, "--rows 1: the last row");
    PE_CHECK(pe_attn_even_rows(5, 9, rows) == 5 && rows[0] == 0 && rows[4] == 4, "--rows N >= T: every row");
    size_t want2[] = {0, 511, 1023, 1535, 2047};
    PE_CHECK(pe_attn_even_rows(2048, 5, rows) == 5 && memcmp(rows, want2, sizeof want2) == 0,
             "--rows 5 of T 2048: 0 511 1023 1535 2047 (floor)");
    PE_CHECK(pe_attn_even_rows(7, 2, rows) == 2 && rows[0] == 0 && rows[1] == 6, "--rows 2: first and last");
}

static void test_ood_rule(void)
{
    pe_attn_thresholds t = {0.05, 0.01, -1, -1};
    pe_attn_stats s;
    memset(&s, 0, sizeof s);
    s.entropy_in = 0.5;
    s.entropy_beyond = 0.8;
    s.sink_in = 0.3;
    s.sink_beyond = 0.01;
    s.exceedance = 0.01;
    s.unseen = 0.05;
    PE_CHECK(!pe_attn_ood(&s, &t), "ood: unseen mass 0.05 and exceedance 0.01 are not flagged (strict >), "
                                   "entropy and sink shifts are not part of the default rule");
    s.unseen = 0.0501;
    PE_CHECK(pe_attn_ood(&s, &t), "ood: an unseen-distance mass above 0.05 flags");
    s.unseen = 0;
    s.exceedance = 0.0101;
    PE_CHECK(pe_attn_ood(&s, &t), "ood: exceedance above 0.01 flags");
    s.exceedance = 0;
    t.entropy = 0.1;
    PE_CHECK(pe_attn_ood(&s, &t), "ood: with --entropy-threshold 0.1, an entropy shift of 0.3 flags");
    t.entropy = -1;
    t.sink = 0.1;
    PE_CHECK(pe_attn_ood(&s, &t), "ood: with --sink-threshold 0.1, a sink drop of 0.29 flags");
    t.sink = 0.3;
    PE_CHECK(!pe_attn_ood(&s, &t), "ood: with --sink-threshold 0.3 it does not");
    s.sink_beyond = NAN;
    s.entropy_beyond = NAN;
    s.exceedance = NAN;
    s.unseen = NAN;
    t.entropy = t.sink = 0;
    PE_CHECK(!pe_attn_ood(&s, &t), "ood: no beyond rows (NaN) is never flagged");
}

static void test_errors(void)
{
    seq s = make_seq(10, 4, 0, 0, 1.0, 3);
    pe_attn_params p = {0.5, 0, 0, 1, PE_ATTN_MARGIN, 0};
    pe_attn_acc a;
    pe_err e = {0};
    size_t bad_rows[] = {3, 3};
    pe_attn_init(&a, 5, &e);
    pe_attn_seq as = {10, 4, s.q, s.k, s.pos, NULL, 0, NULL};
    PE_CHECK(pe_attn_add(&a, &as, &p, PE_ATTN_ALL, NULL, &e) < 0 && strstr(e.msg, "distance 9"),
             "a distance beyond the accumulators is an error, not a write past them");
    pe_attn_free(&a);
    pe_attn_init(&a, 10, &e);
    as.rows = bad_rows;
    as.n_rows = 2;
    PE_CHECK(pe_attn_add(&a, &as, &p, PE_ATTN_ALL, NULL, &e) < 0, "rows that do not increase are refused");
    double out[4];
    as.rows = NULL;
    PE_CHECK(pe_attn_heatmap(&as, &p, 5, 11, 2, out, NULL, &e) < 0, "a heat map window past T is refused");
    pe_attn_free(&a);
    free_seq(&s);
}

int main(void)
{
    openblas_set_num_threads(1);
    pe_err e = {0};
    shared_work = pe_attn_work_new(&e);
    static const tcase cases[] = {
        /* name                                   T1   T2  D    pos0 gap amp  cap  L    S  rows */
        {"T 1",                                   1,   0,  8,   0,   0,  2.0, 0,   1,   1, 0},
        {"T 2, L 1",                              2,   0,  8,   0,   0,  2.0, 0,   1,   1, 0},
        {"T 7, L unknown",                        7,   0,  16,  0,   0,  2.0, 0,   0,   1, 0},
        {"T 50, L 20, S 3",                       50,  0,  16,  0,   0,  3.0, 0,   20,  3, 0},
        {"T 50, softcap 2.5",                     50,  0,  16,  0,   0,  4.0, 2.5, 20,  1, 0},
        {"T 130 D 128, L 64",                     130, 0,  128, 0,   0,  2.0, 0,   64,  1, 0},
        {"T 130 D 128, L beyond T",               130, 0,  128, 0,   0,  2.0, 0,   500, 1, 0},
        {"T 130, --rows 9",                       130, 0,  64,  0,   0,  2.0, 0,   64,  1, 9},
        {"T 130, --rows 1",                       130, 0,  64,  0,   0,  2.0, 0,   64,  1, 1},
        {"T 130, gappy positions from 5",         130, 0,  32,  5,   1,  2.0, 0,   100, 3, 0},
        {"T 300 D 40, two key tiles",             300, 0,  40,  0,   0,  2.0, 0,   200, 1, 0},
        {"pooled T 50 + T 130, L 40",             50,  130, 16, 0,   0,  3.0, 0,   40,  1, 0},
        {"pooled, softcap 1.5, S 3, --rows 17",   50,  130, 16, 2,   1,  3.0, 1.5, 40,  3, 17},
        {"pooled, L unknown",                     50,  130, 16, 0,   0,  3.0, 0,   0,   1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    test_heatmap(50, 16, 0, 20, 50, 7);
    test_heatmap(130, 128, 0, 0, 130, 512);
    test_heatmap(300, 24, 2.0, 250, 300, 64);
    test_uniform();
    test_rows_rule();
    test_ood_rule();
    test_errors();
    pe_attn_work_free(shared_work);
    free(eng_unseen);
    free(eng_nats);
    free(eng_sink);
    free(eng_exceed);
    return pe_test_done();
}
