/* pe_attn.c: blocked causal softmax statistics of one head (see pe_attn.h
 * and man peanalyze(1), What is measured). */
#include "pe_attn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pe_curve.h"

#define TM PE_ATTN_TILE_M
#define TN PE_ATTN_TILE_N

int pe_attn_init(pe_attn_acc *a, size_t n_dist, pe_err *e)
{
    memset(a, 0, sizeof *a);
    size_t n = n_dist ? n_dist : 1;
    double **arrays[] = {&a->logit, &a->count, &a->logit_in, &a->count_in,
                         &a->prob,  &a->prob_u, &a->last,    &a->last_count,
                         &a->sink_logit, &a->sink_count, &a->sink_logit_in, &a->sink_count_in};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        if (!(*arrays[i] = pe_alloc(n, sizeof(double), 1, e))) {
            pe_attn_free(a);
            return -1;
        }
    }
    a->n_dist = n_dist;
    a->lo = INFINITY;
    a->hi = -INFINITY;
    return 0;
}

void pe_attn_free(pe_attn_acc *a)
{
    free(a->logit);
    free(a->count);
    free(a->logit_in);
    free(a->count_in);
    free(a->prob);
    free(a->prob_u);
    free(a->last);
    free(a->last_count);
    free(a->sink_logit);
    free(a->sink_count);
    free(a->sink_logit_in);
    free(a->sink_count_in);
    memset(a, 0, sizeof *a);
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

size_t pe_attn_default_block(size_t T)
{
    size_t row_bytes = round_up(T ? T : 1, TN) * sizeof(double);
    size_t b = PE_ATTN_BLOCK_BYTES / row_bytes;
    b = b / TM * TM;
    if (b > round_up(T ? T : 1, TM)) b = round_up(T ? T : 1, TM); /* a short sequence needs no more */
    return b < TM ? TM : b;
}

double pe_attn_block_bytes(size_t T, size_t block)
{
    return (double)round_up(block ? block : 1, TM) * (double)round_up(T ? T : 1, TN) * sizeof(double);
}

/* floor(i * a / b) for i <= b, without forming i * a when it could overflow. */
static size_t muldiv_floor(size_t i, size_t a, size_t b)
{
    size_t q = a / b, r = a % b;
    if (r == 0 || i <= SIZE_MAX / r) return i * q + (i * r) / b;
    /* i * r overflows: only for more than 2^32 rows (a row list of 32 GiB);
     * long double is then close enough. */
    return i * q + (size_t)((long double)i * (long double)r / (long double)b);
}

size_t pe_attn_even_rows(size_t T, size_t n, size_t *rows)
{
    if (T == 0 || n == 0) return 0;
    if (n >= T) {
        for (size_t m = 0; m < T; m++) rows[m] = m;
        return T;
    }
    if (n == 1) {
        rows[0] = T - 1;
        return 1;
    }
    for (size_t i = 0; i < n; i++) rows[i] = muldiv_floor(i, T - 1, n - 1);
    return n;
}

/* ---- the blocked logits ---- */

struct pe_attn_work {
    double *buf;     /* the block's logits */
    size_t buf_n;
    double *atile;   /* TM x D query rows, zero-padded */
    size_t atile_n;
    double *btile;   /* TN x D: the last, partial key tile, zero-padded */
    size_t btile_n;
    size_t *rowidx;  /* the block's rows */
    size_t rowidx_n;
};

pe_attn_work *pe_attn_work_new(pe_err *e)
{
    return pe_alloc(1, sizeof(pe_attn_work), 1, e);
}

static void work_release(pe_attn_work *w)
{
    free(w->buf);
    free(w->atile);
    free(w->btile);
    free(w->rowidx);
    memset(w, 0, sizeof *w);
}

void pe_attn_work_free(pe_attn_work *w)
{
    if (!w) return;
    work_release(w);
    free(w);
}

/* Makes *p hold at least n elements of size bytes (contents not kept). */
static int grow(void **p, size_t *cap, size_t n, size_t size, pe_err *e)
{
    if (n <= *cap && *p) return 0;
    void *q = pe_alloc(n, size, 0, e);
    if (!q) return -1;
    free(*p);
    *p = q;
    *cap = n;
    return 0;
}

typedef struct pe_blk {
    const pe_attn_seq *s;
    double scale;
    size_t Tpad;       /* keys rounded up to TN: the row stride of buf */
    size_t cap;        /* rows of buf, a multiple of TM */
    pe_attn_work own;  /* the buffers when the caller gave no work */
    pe_attn_work *w;
    double *buf, *atile, *btile;
    size_t *rowidx;
} pe_blk;

static void blk_free(pe_blk *b)
{
    work_release(&b->own);
    memset(b, 0, sizeof *b);
}

static int blk_init(pe_blk *b, const pe_attn_seq *s, double scale, size_t block, pe_attn_work *w, pe_err *e)
{
    memset(b, 0, sizeof *b);
    size_t D = (size_t)s->D, buf_n;
    b->s = s;
    b->scale = scale;
    b->w = w ? w : &b->own;
    b->Tpad = round_up(s->T, TN);
    b->cap = round_up(block, TM);
    if (b->Tpad > 2147483647u || D > 2147483647u)
        return pe_fail(e, "attention: T %zu or D %zu is beyond what the BLAS interface takes", s->T, D);
    if (pe_mul_size(b->cap, b->Tpad, &buf_n) != 0) return pe_fail(e, "out of memory: the block buffer overflows");
    w = b->w;
    if (grow((void **)&w->buf, &w->buf_n, buf_n, sizeof(double), e) < 0 ||
        grow((void **)&w->atile, &w->atile_n, (size_t)TM * D, sizeof(double), e) < 0 ||
        grow((void **)&w->btile, &w->btile_n, (size_t)TN * D, sizeof(double), e) < 0 ||
        grow((void **)&w->rowidx, &w->rowidx_n, block, sizeof(size_t), e) < 0) {
        blk_free(b);
        return -1;
    }
    b->buf = w->buf;
    b->atile = w->atile;
    b->btile = w->btile;
    b->rowidx = w->rowidx;
    size_t j0 = s->T / TN * TN;
    memset(b->btile, 0, (size_t)TN * D * sizeof(double));
    if (j0 < s->T) memcpy(b->btile, s->k + j0 * D, (s->T - j0) * D * sizeof(double));
    return 0;
}

/* Logits of the rows rowidx[0 .. nr-1] into buf (row i at buf + i * Tpad),
 * against keys 0 .. rowidx[i] at least.  Every dgemm call has the same
 * shape TM x TN x D, so a logit's bits do not depend on where its row and
 * key fall in the tiles: nor, then, on the block size. */
static void blk_logits(pe_blk *b, size_t nr)
{
    const pe_attn_seq *s = b->s;
    const size_t D = (size_t)s->D, T = s->T;
    for (size_t t = 0; t < nr; t += TM) {
        size_t rows = nr - t < TM ? nr - t : TM;
        for (size_t i = 0; i < rows; i++) memcpy(b->atile + i * D, s->q + b->rowidx[t + i] * D, D * sizeof(double));
        if (rows < TM) memset(b->atile + rows * D, 0, (TM - rows) * D * sizeof(double));
        size_t maxrow = b->rowidx[t + rows - 1];
        for (size_t j0 = 0; j0 <= maxrow; j0 += TN) {
            const double *kt = j0 + TN <= T ? s->k + j0 * D : b->btile;
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TM, TN, (int)D, b->scale, b->atile, (int)D, kt,
                        (int)D, 0.0, b->buf + t * b->Tpad + j0, (int)b->Tpad);
        }
    }
}

static size_t row_at(const pe_attn_seq *s, size_t i)
{
    return s->rows ? s->rows[i] : i;
}

static int check_seq(const pe_attn_seq *s, pe_err *e)
{
    if (s->T == 0 || s->D <= 0) return pe_fail(e, "attention: empty head (T %zu, D %d)", s->T, s->D);
    if (s->rows) {
        for (size_t i = 0; i < s->n_rows; i++) {
            if (s->rows[i] >= s->T || (i && s->rows[i] <= s->rows[i - 1]))
                return pe_fail(e, "attention: evaluated rows must increase and stay below T %zu", s->T);
        }
    }
    return 0;
}

/* ---- accumulation ---- */

/* One row m whose logits (keys 0..m) are in l; l is overwritten with the
 * exponentials.  contig: positions are p_0 + n, so the distance of key n is
 * m - n and the pair counts are added by the caller (add_counts). */
static void add_row(pe_attn_acc *a, const pe_attn_seq *s, const pe_attn_params *p, size_t m, double *restrict l,
                    int in_train, int contig)
{
    const int64_t *restrict pos = s->pos;
    const int64_t pm = pos[m];
    const size_t nk = m + 1;
    const double cap = p->softcap;
    double *restrict lg = a->logit, *restrict cnt = a->count, *restrict lgi = a->logit_in,
                     *restrict cnti = a->count_in, *restrict pr = a->prob, *restrict pru = a->prob_u;

    /* Pass 1: softcap, max, logit sums, range or exceedance. */
    double row_exceed = NAN;
    if (cap > 0)
        for (size_t n = 0; n < nk; n++) l[n] = cap * tanh(l[n] / cap);
    double mx = -INFINITY;
    if (in_train) {
        double lo = a->lo, hi = a->hi;
        if (contig) {
            for (size_t j = 0; j < nk; j++) { /* distance j, key m - j */
                double x = l[m - j];
                lg[j] += x;
                lgi[j] += x;
                mx = x > mx ? x : mx;
                lo = x < lo ? x : lo;
                hi = x > hi ? x : hi;
            }
        } else {
            for (size_t n = 0; n < nk; n++) {
                double x = l[n];
                size_t d = (size_t)(pm - pos[n]);
                lg[d] += x;
                cnt[d] += 1;
                lgi[d] += x;
                cnti[d] += 1;
                mx = x > mx ? x : mx;
                lo = x < lo ? x : lo;
                hi = x > hi ? x : hi;
            }
        }
        a->lo = lo;
        a->hi = hi;
    } else {
        size_t out = 0;
        int band = a->lo <= a->hi;
        double w = a->hi - a->lo;
        double blo = a->lo - p->margin * w, bhi = a->hi + p->margin * w;
        if (contig) {
            for (size_t j = 0; j < nk; j++) {
                double x = l[m - j];
                lg[j] += x;
                mx = x > mx ? x : mx;
                out += (x < blo) | (x > bhi);
            }
        } else {
            for (size_t n = 0; n < nk; n++) {
                double x = l[n];
                size_t d = (size_t)(pm - pos[n]);
                lg[d] += x;
                cnt[d] += 1;
                mx = x > mx ? x : mx;
                out += (x < blo) | (x > bhi);
            }
        }
        a->pairs_beyond += (double)nk;
        if (band) a->exceed += (double)out;
        row_exceed = band ? (double)out / (double)nk : NAN;
    }
    /* The pairs whose key is a sink token, which the U-score leaves out. */
    size_t ns = p->sink_tokens < nk ? p->sink_tokens : nk;
    for (size_t n = 0; n < ns; n++) {
        size_t d = (size_t)(pm - pos[n]);
        a->sink_logit[d] += l[n];
        a->sink_count[d] += 1;
        if (in_train) {
            a->sink_logit_in[d] += l[n];
            a->sink_count_in[d] += 1;
        }
    }

    /* Pass 2: exponentials, their sum Z and sum e (l - max) for the entropy. */
    double Z = 0, S1 = 0;
    for (size_t n = 0; n < nk; n++) {
        double t = l[n] - mx;
        double ex = exp(t);
        l[n] = ex;
        Z += ex;
        S1 += ex * t;
    }

    /* Pass 3: probabilities. */
    const double inv = 1.0 / Z, w = (double)nk;
    if (contig) {
        for (size_t j = 0; j < nk; j++) {
            double q = l[m - j] * inv;
            pr[j] += q;
            pru[j] += w * q;
        }
    } else {
        for (size_t n = 0; n < nk; n++) {
            double q = l[n] * inv;
            size_t d = (size_t)(pm - pos[n]);
            pr[d] += q;
            pru[d] += w * q;
        }
    }
    if (m + 1 == s->T) {
        for (size_t n = 0; n < nk; n++) {
            size_t d = (size_t)(pm - pos[n]);
            a->last[d] += l[n] * inv;
            a->last_count[d] += 1;
        }
    }
    double es = 0;
    for (size_t n = 0; n < ns; n++) es += l[n];
    double sink = es * inv;
    /* Unseen-distance mass: the keys n >= S with p_m - p_n >= L, which are
     * n <= nl (positions increase). */
    double unseen = 0;
    if (p->train_len > 0 && pm - pos[0] >= (int64_t)p->train_len) {
        size_t lo = 0, hi = nk; /* the first key whose distance is below L */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (pm - pos[mid] >= (int64_t)p->train_len)
                lo = mid + 1;
            else
                hi = mid;
        }
        double eu = 0;
        for (size_t n = ns; n < lo; n++) eu += l[n];
        unseen = eu * inv;
    }
    /* -sum p ln p = ln Z - sum p (l - max). */
    double nats = log(Z) - S1 * inv;
    if (in_train) {
        a->rows_in += 1;
        a->sink_in += sink;
    } else {
        a->rows_beyond += 1;
        a->sink_beyond += sink;
        a->unseen_beyond += unseen;
    }
    if (m >= 1) {
        double h = nats / log((double)nk);
        if (in_train) {
            a->ent_rows_in += 1;
            a->ent_in += h;
            a->nats_in += nats;
        } else {
            a->ent_rows_beyond += 1;
            a->ent_beyond += h;
            a->nats_beyond += nats;
        }
    }
    if (s->out) {
        s->out->unseen[m] = unseen;
        s->out->entropy[m] = nats;
        s->out->sink[m] = sink;
        s->out->exceed[m] = row_exceed;
    }
}

/* Contiguous positions: row m has one pair at each distance 0..m, so the
 * counts of the rows rows[0..n-1] (increasing) are, at distance d, the number
 * of those rows with m >= d.  Exact integers, whatever the order. */
static void add_counts(double *count, const size_t *rows, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        double c = (double)(n - i); /* rows i..n-1 reach distance rows[i] */
        for (; d <= rows[i]; d++) count[d] += c;
    }
}

static int is_contiguous(const int64_t *pos, size_t T)
{
    for (size_t n = 1; n < T; n++)
        if (pos[n] != pos[0] + (int64_t)n) return 0;
    return 1;
}

/* The evaluated rows [*begin, *end) of a phase: in-train rows are a prefix,
 * since positions increase. */
static void phase_range(const pe_attn_seq *s, long L, pe_attn_phase ph, size_t *begin, size_t *end)
{
    size_t n = s->rows ? s->n_rows : s->T, lo = 0, hi = n;
    if (L > 0) { /* first evaluated row with p_m >= L */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->pos[row_at(s, mid)] < (int64_t)L)
                lo = mid + 1;
            else
                hi = mid;
        }
    } else {
        lo = n;
    }
    *begin = ph == PE_ATTN_BEYOND ? lo : 0;
    *end = ph == PE_ATTN_IN ? lo : n;
}

static size_t block_rows(const pe_attn_params *p, size_t T, size_t need)
{
    size_t b = p->block ? p->block : pe_attn_default_block(T);
    return b < need ? b : (need ? need : 1);
}

int pe_attn_add(pe_attn_acc *a, const pe_attn_seq *s, const pe_attn_params *p, pe_attn_phase phase,
                pe_attn_work *w, pe_err *e)
{
    size_t begin, end;
    if (check_seq(s, e) < 0) return -1;
    phase_range(s, p->train_len, phase, &begin, &end);
    if (begin >= end) return 0;
    if ((uint64_t)(s->pos[row_at(s, end - 1)] - s->pos[0]) >= a->n_dist)
        return pe_fail(e, "attention: distance %lld is beyond the %zu distances accumulated",
                       (long long)(s->pos[row_at(s, end - 1)] - s->pos[0]), a->n_dist);
    size_t B = block_rows(p, s->T, end - begin);
    pe_blk b;
    if (blk_init(&b, s, p->scale, B, w, e) < 0) return -1;
    int contig = is_contiguous(s->pos, s->T);
    size_t n_in = 0; /* in-train rows among [begin, end) */
    for (size_t i0 = begin; i0 < end; i0 += B) {
        size_t nr = end - i0 < B ? end - i0 : B;
        for (size_t i = 0; i < nr; i++) b.rowidx[i] = row_at(s, i0 + i);
        blk_logits(&b, nr);
        for (size_t i = 0; i < nr; i++) {
            size_t m = b.rowidx[i];
            int in_train = p->train_len <= 0 || s->pos[m] < (int64_t)p->train_len;
            n_in += in_train;
            add_row(a, s, p, m, b.buf + i * b.Tpad, in_train, contig);
        }
    }
    blk_free(&b);
    if (contig) {
        const size_t *rows = s->rows ? s->rows + begin : NULL;
        size_t n = end - begin, *tmp = NULL;
        if (!rows) { /* every row: rows begin..end-1 */
            if (!(tmp = pe_alloc(n, sizeof *tmp, 0, e))) return -1;
            for (size_t i = 0; i < n; i++) tmp[i] = begin + i;
            rows = tmp;
        }
        add_counts(a->count, rows, n);
        add_counts(a->count_in, rows, n_in); /* the in-train rows come first */
        free(tmp);
    }
    return 0;
}

/* ---- two versions of a head: the divergence of their attention ---- */

/* One row m of logits la, lb (keys 0..m): KL(p_a || p_b) in nats, with
 * p = softmax of the (capped) logits.  sum_n p_a (la - lb) - lse_a + lse_b,
 * where lse = max + ln sum exp(l - max); 0 exactly when la == lb. */
static double row_kl(double *restrict la, double *restrict lb, size_t nk, double cap)
{
    if (cap > 0)
        for (size_t n = 0; n < nk; n++) {
            la[n] = cap * tanh(la[n] / cap);
            lb[n] = cap * tanh(lb[n] / cap);
        }
    double ma = -INFINITY, mb = -INFINITY;
    for (size_t n = 0; n < nk; n++) {
        ma = la[n] > ma ? la[n] : ma;
        mb = lb[n] > mb ? lb[n] : mb;
    }
    double za = 0, zb = 0, sd = 0;
    for (size_t n = 0; n < nk; n++) {
        double ea = exp(la[n] - ma);
        za += ea;
        zb += exp(lb[n] - mb);
        sd += ea * (la[n] - lb[n]);
    }
    return sd / za - (ma + log(za)) + (mb + log(zb));
}

int pe_attn_kl(const pe_attn_seq *a, const pe_attn_seq *b, const pe_attn_params *p, pe_attn_phase phase,
               double *sum, double *rows, pe_attn_work *wa, pe_attn_work *wb, pe_err *e)
{
    size_t begin, end;
    if (check_seq(a, e) < 0 || check_seq(b, e) < 0) return -1;
    if (a->T != b->T || a->D != b->D || a->rows != b->rows || a->n_rows != b->n_rows)
        return pe_fail(e, "attention: the two versions of a head differ in shape");
    phase_range(a, p->train_len, phase, &begin, &end);
    if (begin >= end) return 0;
    size_t B = block_rows(p, a->T, end - begin);
    pe_blk ba, bb;
    if (blk_init(&ba, a, p->scale, B, wa, e) < 0) return -1;
    if (blk_init(&bb, b, p->scale, B, wb, e) < 0) {
        blk_free(&ba);
        return -1;
    }
    for (size_t i0 = begin; i0 < end; i0 += B) {
        size_t nr = end - i0 < B ? end - i0 : B;
        for (size_t i = 0; i < nr; i++) ba.rowidx[i] = bb.rowidx[i] = row_at(a, i0 + i);
        blk_logits(&ba, nr);
        blk_logits(&bb, nr);
        for (size_t i = 0; i < nr; i++) {
            size_t m = ba.rowidx[i];
            *sum += row_kl(ba.buf + i * ba.Tpad, bb.buf + i * bb.Tpad, m + 1, p->softcap);
            *rows += 1;
        }
    }
    blk_free(&ba);
    blk_free(&bb);
    return 0;
}

/* ---- summary ---- */

static size_t last_with_pairs(const double *count, size_t n)
{
    while (n > 0 && count[n - 1] == 0) n--;
    return n; /* distances with pairs are < n */
}

/* The U-score of the mean logit over the pairs whose key is not a sink. */
static double u_without_sinks(const double *lg, const double *cnt, const double *slg, const double *scnt, size_t n,
                              int *near_gt_far)
{
    double *sum = malloc((n ? n : 1) * sizeof *sum), *c = malloc((n ? n : 1) * sizeof *c);
    double u = NAN;
    if (sum && c) {
        for (size_t d = 0; d < n; d++) {
            sum[d] = lg[d] - slg[d];
            c[d] = cnt[d] - scnt[d];
        }
        /* The curve ends at the largest distance with a pair left. */
        u = pe_u_score(sum, c, last_with_pairs(c, n), near_gt_far);
    }
    free(sum);
    free(c);
    return u;
}

void pe_attn_summary(const pe_attn_acc *a, pe_attn_stats *s)
{
    memset(s, 0, sizeof *s);
    s->rows_in = a->rows_in;
    s->rows_beyond = a->rows_beyond;
    s->sink_in = a->rows_in > 0 ? a->sink_in / a->rows_in : NAN;
    s->sink_beyond = a->rows_beyond > 0 ? a->sink_beyond / a->rows_beyond : NAN;
    s->entropy_in = a->ent_rows_in > 0 ? a->ent_in / a->ent_rows_in : NAN;
    s->entropy_beyond = a->ent_rows_beyond > 0 ? a->ent_beyond / a->ent_rows_beyond : NAN;
    size_t n_in = last_with_pairs(a->count_in, a->n_dist), n_all = last_with_pairs(a->count, a->n_dist);
    s->dmax_in = n_in ? n_in - 1 : 0;
    s->dmax_all = n_all ? n_all - 1 : 0;
    s->nats_in = a->ent_rows_in > 0 ? a->nats_in / a->ent_rows_in : NAN;
    s->nats_beyond = a->ent_rows_beyond > 0 ? a->nats_beyond / a->ent_rows_beyond : NAN;
    s->unseen = a->rows_beyond > 0 ? a->unseen_beyond / a->rows_beyond : NAN;
    s->sink_ratio = s->sink_in > 0 ? s->sink_beyond / s->sink_in : NAN;
    s->u_in = u_without_sinks(a->logit_in, a->count_in, a->sink_logit_in, a->sink_count_in, n_in, &s->near_gt_far_in);
    s->u_all = u_without_sinks(a->logit, a->count, a->sink_logit, a->sink_count, n_all, &s->near_gt_far_all);
    int have_in = a->lo <= a->hi;
    s->lo_in = have_in ? a->lo : NAN;
    s->hi_in = have_in ? a->hi : NAN;
    s->exceedance = have_in && a->pairs_beyond > 0 ? a->exceed / a->pairs_beyond : NAN;
}

int pe_attn_ood(const pe_attn_stats *s, const pe_attn_thresholds *t)
{
    /* Comparisons with NaN are false: an undefined term flags nothing. */
    return s->unseen > t->unseen || s->exceedance > t->exceed ||
           (t->entropy >= 0 && fabs(s->entropy_beyond - s->entropy_in) > t->entropy) ||
           (t->sink >= 0 && fabs(s->sink_beyond - s->sink_in) > t->sink);
}

/* ---- heat map ---- */

int pe_attn_heatmap(const pe_attn_seq *s, const pe_attn_params *p, size_t m0, size_t m1, size_t ncol,
                    double *out, pe_attn_work *w, pe_err *e)
{
    if (s->T == 0 || s->D <= 0) return pe_fail(e, "attention: empty head (T %zu, D %d)", s->T, s->D);
    if (m0 >= m1 || m1 > s->T) return pe_fail(e, "attention: window %zu:%zu is not within T %zu", m0, m1, s->T);
    if (ncol == 0 || ncol > m1) return pe_fail(e, "attention: %zu key columns for %zu keys", ncol, m1);
    size_t *clo = pe_alloc(ncol, sizeof *clo, 0, e), *chi = pe_alloc(ncol, sizeof *chi, 0, e);
    if (!clo || !chi) {
        free(clo);
        free(chi);
        return -1;
    }
    for (size_t c = 0; c < ncol; c++) pe_bin_range(m1, ncol, c, &clo[c], &chi[c]);
    size_t B = block_rows(p, s->T, m1 - m0);
    pe_blk b;
    if (blk_init(&b, s, p->scale, B, w, e) < 0) {
        free(clo);
        free(chi);
        return -1;
    }
    const double cap = p->softcap;
    for (size_t r0 = m0; r0 < m1; r0 += B) {
        size_t nr = m1 - r0 < B ? m1 - r0 : B;
        for (size_t i = 0; i < nr; i++) b.rowidx[i] = r0 + i;
        blk_logits(&b, nr);
        for (size_t i = 0; i < nr; i++) {
            size_t m = r0 + i, nk = m + 1;
            double *l = b.buf + i * b.Tpad, mx = -INFINITY, Z = 0;
            if (cap > 0)
                for (size_t n = 0; n < nk; n++) l[n] = cap * tanh(l[n] / cap);
            for (size_t n = 0; n < nk; n++) mx = l[n] > mx ? l[n] : mx;
            for (size_t n = 0; n < nk; n++) {
                l[n] = exp(l[n] - mx);
                Z += l[n];
            }
            double inv = 1.0 / Z, *o = out + (m - m0) * ncol;
            for (size_t c = 0; c < ncol; c++) {
                double sum = 0;
                size_t hi = chi[c] < m ? chi[c] : m;
                for (size_t n = clo[c]; n <= hi && clo[c] <= m; n++) sum += l[n];
                o[c] = sum * inv / (double)(chi[c] - clo[c] + 1);
            }
        }
    }
    blk_free(&b);
    free(clo);
    free(chi);
    return 0;
}
