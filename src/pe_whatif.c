/* pe_whatif.c: positional what-ifs (see pe_whatif.h; the definitions: man
 * petools-whatif(7)). */
#include "pe_whatif.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double TWO_PI = 6.283185307179586476925286766559;

/* ---- parsing ---- */

void pe_whatif_free(pe_whatif *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->steps[i].mask_path);
        pe_mask_free(w->steps[i].mask);
    }
    free(w->steps);
    free(w->text);
    free((char *)w->opt);
    free(w);
}

/* Whether step s (length n) is `word`, or starts with "word:". */
static int is_word(const char *s, size_t n, const char *word, int with_args)
{
    size_t k = strlen(word);
    if (with_args) return n > k && memcmp(s, word, k) == 0 && s[k] == ':';
    return n == k && memcmp(s, word, k) == 0;
}

/* Does the step change the frequencies (so that a rebuilding step after it
 * would discard the change)? */
static int changes_freqs(const pe_whatif_step *st)
{
    return st->kind == PE_STEP_SCALE || st->kind == PE_STEP_PROPE || st->kind == PE_STEP_CLIP ||
           st->kind == PE_STEP_DOPE;
}

static int rebuilds(const pe_whatif_step *st)
{
    return st->kind == PE_STEP_SCALE &&
           (st->scale.kind == PE_SCALE_NTK || st->scale.kind == PE_SCALE_DYNAMIC || st->scale.kind == PE_SCALE_YARN);
}

static int parse_step(const char *opt, const char *spec, const char *s, size_t n, pe_whatif_step *st, pe_err *e)
{
    char buf[512];
    if (n >= sizeof buf)
        return pe_fail_usage(e, "%s '%.200s': a step is longer than %zu characters", opt, spec, sizeof buf - 1);
    memcpy(buf, s, n);
    buf[n] = 0;
    memset(st, 0, sizeof *st);
    if (n == 0) return pe_fail_usage(e, "%s '%.200s': an empty step (accepted: " PE_WHATIF_FORMS ")", opt, spec);
    if (is_word(s, n, "rope", 0)) {
        st->kind = PE_STEP_ROPE;
    } else if (is_word(s, n, "clip", 0)) {
        st->kind = PE_STEP_CLIP;
    } else if (is_word(s, n, "logn", 0)) {
        st->kind = PE_STEP_LOGN;
    } else if (is_word(s, n, "prope", 1)) {
        const char *a = buf + 6;
        char *end;
        errno = 0;
        double v = *a && !isspace((unsigned char)*a) ? strtod(a, &end) : NAN;
        if (isnan(v) || *end || errno || !(v >= 0 && v <= 1))
            return pe_fail_usage(e, "%s '%.200s': prope:P needs a fraction P from 0 to 1, got '%.200s'", opt, spec,
                                 a);
        st->kind = PE_STEP_PROPE;
        st->fraction = v;
    } else if (is_word(s, n, "dope", 1)) {
        char *a = buf + 5, *colon = strrchr(a, ':');
        st->kind = PE_STEP_DOPE;
        st->mode = PE_DOPE_PARTS;
        if (colon) {
            static const char *const modes[] = {"parts", "all", "gauss"};
            int k = -1;
            for (int i = 0; i < 3; i++)
                if (strcmp(colon + 1, modes[i]) == 0) k = i;
            /* A colon in a file name stays part of it unless a mode follows. */
            if (k >= 0) {
                st->mode = (pe_dope_mode)k;
                *colon = 0;
            }
        }
        if (!*a)
            return pe_fail_usage(e, "%s '%.200s': dope needs the mask file: dope:MASK[:parts|all|gauss]", opt, spec);
        if (!(st->mask_path = pe_strdup(a, e))) return -1;
    } else if (is_word(s, n, "dynamic", 1) && !strchr(buf + 8, ':')) {
        /* dynamic:S: the target length is the file's (resolved later). */
        char tmp[sizeof buf + 8];
        snprintf(tmp, sizeof tmp, "%s:1", buf);
        if (pe_scaling_parse_opt(opt, tmp, &st->scale, e) < 0) {
            /* Only S can be wrong here: the message of "dynamic:S:1",
             * about S, with the step as given (parsing "dynamic:S" itself
             * would say that T is missing, and T is optional here). */
            char who[sizeof buf + 64], msg[sizeof e->msg];
            size_t n = (size_t)snprintf(who, sizeof who, "%s '%.200s'", opt, tmp);
            if (strncmp(e->msg, who, n) == 0) {
                snprintf(msg, sizeof msg, "%s '%.200s'%s", opt, buf, e->msg + n);
                snprintf(e->msg, sizeof e->msg, "%s", msg);
            }
            return -1;
        }
        st->kind = PE_STEP_SCALE;
        st->dynamic_auto = 1;
        st->scale.target_len = 0;
    } else if (is_word(s, n, "pi", 1) || is_word(s, n, "ntk", 1) || is_word(s, n, "dynamic", 1) ||
               is_word(s, n, "yarn", 1) || is_word(s, n, "llama3", 1)) {
        if (pe_scaling_parse_opt(opt, buf, &st->scale, e) < 0) return -1;
        st->kind = PE_STEP_SCALE;
    } else {
        return pe_fail_usage(e, "%s '%.200s': unknown step '%.200s' (accepted: " PE_WHATIF_FORMS ")", opt, spec,
                             buf);
    }
    return 0;
}

int pe_whatif_parse(const char *opt, const char *spec, pe_whatif **out, pe_err *e)
{
    pe_whatif *w = pe_alloc(1, sizeof *w, 1, e);
    if (!w) return -1;
    if (!spec || !*spec) {
        pe_fail_usage(e, "%s: an empty spec (accepted: " PE_WHATIF_FORMS ")", opt);
        goto bad;
    }
    /* A copy: the caller may format each option's name into one buffer
     * (pe_cli_parse does), and the name is needed after parsing, when the
     * spec is resolved against the files. */
    if (!(w->opt = pe_strdup(opt, e))) goto bad;
    if (!(w->text = pe_strdup(spec, e))) goto bad;
    size_t n_steps = 1;
    for (const char *c = spec; *c; c++) n_steps += *c == '+';
    if (!(w->steps = pe_alloc(n_steps, sizeof *w->steps, 1, e))) goto bad;
    int changed = 0;
    for (const char *p = spec;;) {
        const char *plus = strchr(p, '+');
        size_t len = plus ? (size_t)(plus - p) : strlen(p);
        pe_whatif_step *st = &w->steps[w->n];
        if (parse_step(opt, spec, p, len, st, e) < 0) {
            w->n++; /* frees what the step holds */
            goto bad;
        }
        w->n++;
        if (rebuilds(st) && changed) {
            pe_fail_usage(e, "%s '%.200s': '%.*s' rebuilds the frequencies from the base, which would undo the "
                             "steps before it: put it first",
                          opt, spec, (int)(len > 200 ? 200 : len), p);
            goto bad;
        }
        changed |= changes_freqs(st);
        if (!plus) break;
        p = plus + 1;
    }
    *out = w;
    return 0;
bad:
    pe_whatif_free(w);
    return -1;
}

int pe_whatif_is_rope(const pe_whatif *w)
{
    for (int i = 0; w && i < w->n; i++)
        if (w->steps[i].kind != PE_STEP_ROPE) return 0;
    return 1;
}

const char *pe_whatif_needs_L(const pe_whatif *w)
{
    for (int i = 0; w && i < w->n; i++) {
        const pe_whatif_step *st = &w->steps[i];
        if (st->kind == PE_STEP_CLIP) return "clip";
        if (st->kind == PE_STEP_LOGN) return "logn";
        if (st->kind == PE_STEP_SCALE && st->scale.kind == PE_SCALE_YARN) return "yarn";
        if (st->kind == PE_STEP_SCALE && st->scale.kind == PE_SCALE_DYNAMIC) return "dynamic";
    }
    return NULL;
}

int pe_whatif_has(const pe_whatif *w, pe_step_kind k)
{
    for (int i = 0; w && i < w->n; i++)
        if (w->steps[i].kind == k) return 1;
    return 0;
}

int pe_whatif_per_head(const pe_whatif *w)
{
    return pe_whatif_has(w, PE_STEP_DOPE);
}

int pe_whatif_load(pe_whatif *w, pe_err *e)
{
    for (int i = 0; w && i < w->n; i++) {
        pe_whatif_step *st = &w->steps[i];
        if (st->kind == PE_STEP_DOPE && !st->mask && pe_mask_read(st->mask_path, &st->mask, e) < 0) return -1;
    }
    return 0;
}

int pe_whatif_fits(const pe_whatif *w, const pe_meta *m, const char *file, pe_err *e)
{
    for (int i = 0; w && i < w->n; i++) {
        const pe_whatif_step *st = &w->steps[i];
        if (st->kind == PE_STEP_DOPE && pe_mask_fits(st->mask, st->mask_path, m, file, e) < 0) return -1;
    }
    return 0;
}

/* ---- resolving ---- */

int pe_rotation_init(pe_rotation *rot, int n_pairs, pe_err *e)
{
    memset(rot, 0, sizeof *rot);
    size_t n = n_pairs > 0 ? (size_t)n_pairs : 1;
    rot->theta = pe_alloc(n, sizeof *rot->theta, 1, e);
    rot->gauss = rot->theta ? pe_alloc(n, 1, 1, e) : NULL;
    if (!rot->gauss) {
        pe_rotation_free(rot);
        return -1;
    }
    rot->n_pairs = n_pairs;
    rot->factor = 1;
    return 0;
}

void pe_rotation_free(pe_rotation *rot)
{
    free(rot->theta);
    free(rot->gauss);
    memset(rot, 0, sizeof *rot);
}

/* The pairs a dope step acts on for (layer, tensor, head): flags in sel. */
static int dope_pairs(const pe_whatif_step *st, long layer, pe_tensor tn, int head, int P, unsigned char *sel)
{
    int any = 0;
    memset(sel, 0, (size_t)P);
    for (size_t k = 0; k < st->mask->n; k++) {
        const pe_mask_entry *me = &st->mask->heads[k];
        int hit = 0;
        if (me->layer != layer) continue;
        if (tn == PE_TENSOR_Q) {
            for (size_t j = 0; j < me->n_query; j++) hit |= me->query_heads[j] == head;
        } else {
            hit = me->tensor == PE_TENSOR_K && me->kv_head == head;
        }
        if (!hit) continue;
        any = 1;
        if (st->mode == PE_DOPE_ALL) {
            memset(sel, 1, (size_t)P);
        } else {
            for (size_t j = 0; j < me->n_pairs; j++)
                if (me->pairs[j] < P) sel[me->pairs[j]] = 1;
        }
    }
    return any;
}

int pe_whatif_resolve(const pe_whatif *w, const pe_meta *m, int slot, pe_tensor tn, int head, long L,
                      pe_rotation *rot, pe_err *e)
{
    const pe_layer_info *li = &m->layers[slot];
    const int P = m->n_pairs, R = m->rotary_dim;
    unsigned char sel[4096];
    if (P > (int)sizeof sel) return pe_fail(e, "--pe: %d rotary pairs are more than %zu", P, sizeof sel);
    memcpy(rot->theta, li->theta, (size_t)P * sizeof *rot->theta);
    memset(rot->gauss, 0, (size_t)P);
    rot->n_gauss = 0;
    rot->factor = 1;
    rot->logn_len = 0;
    rot->logn_pow = 0;
    for (int s = 0; w && s < w->n; s++) {
        const pe_whatif_step *st = &w->steps[s];
        switch (st->kind) {
        case PE_STEP_ROPE:
            break;
        case PE_STEP_SCALE: {
            /* A layer without rotary embedding has no frequencies to scale,
             * and no cos and sin for YaRN to scale. */
            if (!li->rope || P == 0) break;
            pe_scaling sc = st->scale;
            pe_scale_info info;
            if (st->dynamic_auto) sc.target_len = m->T ? (long)(m->positions[m->T - 1] + 1) : 1;
            if (pe_scaling_apply(&sc, R, m->rope_theta, L, rot->theta, rot->theta, &info, e) < 0) return -1;
            if (sc.kind == PE_SCALE_YARN) rot->factor *= info.attn_factor * info.attn_factor;
            break;
        }
        case PE_STEP_PROPE: {
            /* Keep the floor(P n) highest frequencies (ties: the lower pair);
             * 1e-9 absorbs the rounding of P n (0.29 x 100). */
            int keep = (int)floor(st->fraction * P + 1e-9);
            memset(sel, 0, (size_t)P);
            for (int k = 0; k < keep; k++) {
                int best = -1;
                for (int i = 0; i < P; i++)
                    if (!sel[i] && (best < 0 || rot->theta[i] > rot->theta[best])) best = i;
                sel[best] = 1;
            }
            for (int i = 0; i < P; i++)
                if (!sel[i]) rot->theta[i] = 0;
            break;
        }
        case PE_STEP_CLIP:
            for (int i = 0; i < P; i++)
                if (rot->theta[i] < TWO_PI / (double)L) rot->theta[i] = 0;
            break;
        case PE_STEP_LOGN:
            rot->logn_len = L;
            rot->logn_pow++;
            break;
        case PE_STEP_DOPE:
            if (!st->mask) return pe_fail(e, "--pe: the mask %s was not read", st->mask_path);
            if (!dope_pairs(st, li->index, tn, head, P, sel)) break;
            for (int i = 0; i < P; i++) {
                if (!sel[i]) continue;
                rot->theta[i] = 0;
                if (st->mode == PE_DOPE_GAUSS) rot->gauss[i] = 1;
            }
            break;
        }
    }
    for (int i = 0; i < P; i++) {
        if (rot->gauss[i]) rot->theta[i] = 0;
        rot->n_gauss += rot->gauss[i];
    }
    return 0;
}

int pe_rotation_is_plain(const pe_rotation *rot)
{
    return rot->n_gauss == 0 && rot->factor == 1 && rot->logn_pow == 0;
}

double pe_rotation_logn(const pe_rotation *rot, int64_t p)
{
    double f = 1;
    if (rot->logn_pow > 0 && rot->logn_len > 1) {
        double g = log((double)p + 1.0) / log((double)rot->logn_len);
        if (g > 1)
            for (int k = 0; k < rot->logn_pow; k++) f *= g;
    }
    return f;
}

double pe_rotation_factor(const pe_rotation *rot, int64_t p)
{
    return rot->factor * pe_rotation_logn(rot, p);
}

/* ---- the Gaussian draws ---- */

/* Output k (from 0) of SplitMix64 seeded with `seed`. */
static uint64_t splitmix64_at(uint64_t seed, uint64_t k)
{
    uint64_t z = seed + (k + 1) * UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void pe_whatif_gauss(int64_t p, int i, int n_pairs, double *c, double *s)
{
    uint64_t k = 2 * ((uint64_t)p * (uint64_t)n_pairs + (uint64_t)i);
    double u1 = (double)((splitmix64_at(42, k) >> 11) + 1) * 0x1p-53;
    double u2 = (double)(splitmix64_at(42, k + 1) >> 11) * 0x1p-53;
    double r = sqrt(-2.0 * log(u1));
    *c = r * cos(TWO_PI * u2);
    *s = r * sin(TWO_PI * u2);
}

/* ---- applying ---- */

void pe_rotation_apply(const pe_rotation *rot, double *x, size_t T, const pe_geom *g, const int64_t *pos, int query,
                       int phase)
{
    const int D = g->head_dim;
    if (phase) {
        pe_geom gg = *g;
        gg.theta = rot->theta; /* gauss pairs have theta 0: left as they are */
        pe_rope_rotate(x, T, &gg, pos, +1);
    }
    for (int i = 0; rot->n_gauss && i < g->n_pairs; i++) {
        if (!rot->gauss[i]) continue;
        int a, b;
        pe_rope_pair_dims(g->pairing, g->rotary_dim, i, &a, &b);
        for (size_t m = 0; m < T; m++) {
            double c, s;
            pe_whatif_gauss(pos[m], i, g->n_pairs, &c, &s);
            double *v = x + m * (size_t)D;
            double xa = v[a], xb = v[b];
            v[a] = xa * c - xb * s;
            v[b] = xa * s + xb * c;
        }
    }
    if (!query || (rot->factor == 1 && rot->logn_pow == 0)) return;
    /* YaRN's factor scales cos and sin, so only the rotary dims [0, R)
     * carry it; log-n scales the whole logit. */
    for (size_t m = 0; m < T; m++) {
        double fl = pe_rotation_logn(rot, pos[m]), fr = rot->factor * fl;
        double *v = x + m * (size_t)D;
        if (fr != 1)
            for (int d = 0; d < g->rotary_dim; d++) v[d] *= fr;
        if (fl != 1)
            for (int d = g->rotary_dim; d < D; d++) v[d] *= fl;
    }
}
