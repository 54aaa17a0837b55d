/* pe_scaling.c: the rope-scaling what-ifs (man pedecomp(1), TABLES, freqs).
 *
 * pe_scaling_parse reads a --scale spec; pe_scaling_apply writes the scaled
 * frequencies theta'_i.  The formulas follow the Hugging Face code
 * (transformers, modeling_rope_utils.py: _compute_dynamic_ntk_parameters,
 * _compute_yarn_parameters, _compute_llama3_parameters), computed in double
 * precision.  Pure functions: no printing, no global state.
 */
#include "pe_rope.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double PE_TWO_PI = 6.283185307179586476925286766559;

#define PE_SCALE_FORMS                                                                      \
    "pi:S, ntk:S, dynamic:S:T, yarn:S, yarn:S:BETA_FAST:BETA_SLOW or "                      \
    "llama3:S:LOW:HIGH:OLDLEN"

/* ---- Parsing ---- */

/* One ':'-separated field of the spec: [p, p + n). */
typedef struct {
    const char *p;
    size_t n;
} pe_field;

#define PE_MAX_FIELDS 6

/* Prints a field in a message (%.*s wants an int). */
static int field_len(const pe_field *f)
{
    return f->n > 200 ? 200 : (int)f->n;
}

/* A finite double filling the whole field.  strtod stops at ':' (no number
 * contains one), so "the end pointer is the field's end" is the whole test. */
static int parse_double(const char *who, const pe_field *f, const char *name, double *out,
                        pe_err *e)
{
    char *end;
    if (f->n == 0) return pe_fail_usage(e, "%s: %s is missing", who, name);
    /* strtod would skip leading white space; a strict parser does not. */
    if (isspace((unsigned char)f->p[0]))
        return pe_fail_usage(e, "%s: %s is not a number", who, name);
    errno = 0;
    double v = strtod(f->p, &end);
    if (end != f->p + f->n)
        return pe_fail_usage(e, "%s: %s is not a number", who, name);
    if (errno == ERANGE)
        return pe_fail_usage(e, "%s: %s '%.*s' is out of range", who, name,
                             field_len(f), f->p);
    if (!isfinite(v)) return pe_fail_usage(e, "%s: %s is not finite", who, name);
    *out = v;
    return 0;
}

/* A positive decimal integer filling the whole field. */
static int parse_posint(const char *who, const pe_field *f, const char *name, long *out,
                        pe_err *e)
{
    char *end;
    if (f->n == 0) return pe_fail_usage(e, "%s: %s is missing", who, name);
    if (isspace((unsigned char)f->p[0]))
        return pe_fail_usage(e, "%s: %s is not an integer", who, name);
    errno = 0;
    long v = strtol(f->p, &end, 10);
    if (end != f->p + f->n)
        return pe_fail_usage(e, "%s: %s is not an integer", who, name);
    if (errno == ERANGE)
        return pe_fail_usage(e, "%s: %s '%.*s' is out of range", who, name,
                             field_len(f), f->p);
    if (v <= 0)
        return pe_fail_usage(e, "%s: %s must be a positive integer, got %ld", who,
                             name, v);
    *out = v;
    return 0;
}

static int field_is(const pe_field *f, const char *word)
{
    return f->n == strlen(word) && memcmp(f->p, word, f->n) == 0;
}

/* Range checks shared by the parser and by pe_scaling_apply (which may get a
 * hand-built struct).  who prefixes the message. */
static int check_params(const pe_scaling *s, const char *who, pe_err *e)
{
    double S = s->factor;
    if (s->kind == PE_SCALE_NONE) return 0;
    if (s->kind == PE_SCALE_PI) {
        if (!isfinite(S) || !(S > 0)) return pe_fail_usage(e, "%s: factor must be > 0, got %g", who, S);
    } else if (!isfinite(S) || !(S >= 1)) {
        return pe_fail_usage(e, "%s: factor must be >= 1, got %g", who, S);
    }
    switch (s->kind) {
    case PE_SCALE_DYNAMIC:
        if (s->target_len <= 0)
            return pe_fail_usage(e, "%s: target length must be a positive integer, got %ld", who,
                                 s->target_len);
        break;
    case PE_SCALE_YARN:
        /* find_correction_dim takes ln(L / (beta * 2 pi)): the betas must be > 0.
         * beta_fast < beta_slow would put the ramp's start after its end (Hugging
         * Face only warns about it); refused here. */
        if (!isfinite(s->beta_fast) || !isfinite(s->beta_slow) || !(s->beta_slow > 0))
            return pe_fail_usage(e, "%s: beta_fast and beta_slow must be finite and > 0, got %g and %g",
                                 who, s->beta_fast, s->beta_slow);
        if (s->beta_fast < s->beta_slow)
            return pe_fail_usage(e, "%s: beta_fast (%g) must be >= beta_slow (%g)", who,
                                 s->beta_fast, s->beta_slow);
        break;
    case PE_SCALE_LLAMA3:
        if (!isfinite(s->low_freq_factor) || !isfinite(s->high_freq_factor) ||
            !(s->low_freq_factor > 0) || !(s->high_freq_factor > s->low_freq_factor))
            return pe_fail_usage(e, "%s: needs HIGH > LOW > 0, got LOW %g and HIGH %g", who,
                                 s->low_freq_factor, s->high_freq_factor);
        if (s->original_len <= 0)
            return pe_fail_usage(e, "%s: original length must be a positive integer, got %ld", who,
                                 s->original_len);
        break;
    default:
        break;
    }
    return 0;
}

int pe_scaling_parse_opt(const char *opt, const char *spec, pe_scaling *out, pe_err *e)
{
    pe_field f[PE_MAX_FIELDS];
    int nf = 0;
    pe_scaling s;
    char who[300];
    /* "OPT 'SPEC'" prefixes every message (a very long spec is cut). */
    snprintf(who, sizeof who, "%s '%.*s'", opt, spec && strlen(spec) > 200 ? 200 : (int)(spec ? strlen(spec) : 0),
             spec ? spec : "");

    if (!spec || !*spec)
        return pe_fail_usage(e, "%s: empty spec (expected " PE_SCALE_FORMS ")",
                             who);
    for (const char *p = spec;;) {
        const char *q = strchr(p, ':');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (nf == PE_MAX_FIELDS)
            return pe_fail_usage(e, "%s: too many fields (expected " PE_SCALE_FORMS ")",
                                 who);
        f[nf].p = p;
        f[nf].n = n;
        nf++;
        if (!q) break;
        p = q + 1;
    }

    memset(&s, 0, sizeof s);
    s.beta_fast = 32;
    s.beta_slow = 1;

    /* Number of fields after the method name: min, max. */
    int lo, hi;
    const char *form;
    if (field_is(&f[0], "pi")) {
        s.kind = PE_SCALE_PI, lo = hi = 1, form = "pi:S";
    } else if (field_is(&f[0], "ntk")) {
        s.kind = PE_SCALE_NTK, lo = hi = 1, form = "ntk:S";
    } else if (field_is(&f[0], "dynamic")) {
        s.kind = PE_SCALE_DYNAMIC, lo = hi = 2, form = "dynamic:S:T";
    } else if (field_is(&f[0], "yarn")) {
        s.kind = PE_SCALE_YARN, lo = 1, hi = 3, form = "yarn:S or yarn:S:BETA_FAST:BETA_SLOW";
    } else if (field_is(&f[0], "llama3")) {
        s.kind = PE_SCALE_LLAMA3, lo = hi = 4, form = "llama3:S:LOW:HIGH:OLDLEN";
    } else {
        return pe_fail_usage(e, "%s: unknown method '%.*s' (expected " PE_SCALE_FORMS ")",
                             who, field_len(&f[0]), f[0].p);
    }

    int nargs = nf - 1;
    if (nargs > hi)
        return pe_fail_usage(e, "%s: too many fields (expected %s)", who, form);
    if (nargs < lo || (s.kind == PE_SCALE_YARN && nargs == 2)) {
        static const char *const yarn_names[] = {"factor", "beta_fast", "beta_slow"};
        static const char *const dyn_names[] = {"factor", "target length T"};
        static const char *const l3_names[] = {"factor", "LOW (low_freq_factor)",
                                               "HIGH (high_freq_factor)", "original length OLDLEN"};
        const char *missing = "factor";
        if (s.kind == PE_SCALE_YARN) missing = yarn_names[nargs];
        if (s.kind == PE_SCALE_DYNAMIC) missing = dyn_names[nargs];
        if (s.kind == PE_SCALE_LLAMA3) missing = l3_names[nargs];
        return pe_fail_usage(e, "%s: %s is missing (expected %s)", who, missing, form);
    }

    if (parse_double(who, &f[1], "factor", &s.factor, e) != 0) return -1;
    switch (s.kind) {
    case PE_SCALE_DYNAMIC:
        if (parse_posint(who, &f[2], "target length T", &s.target_len, e) != 0) return -1;
        break;
    case PE_SCALE_YARN:
        if (nargs == 3) {
            if (parse_double(who, &f[2], "beta_fast", &s.beta_fast, e) != 0) return -1;
            if (parse_double(who, &f[3], "beta_slow", &s.beta_slow, e) != 0) return -1;
        }
        break;
    case PE_SCALE_LLAMA3:
        if (parse_double(who, &f[2], "LOW (low_freq_factor)", &s.low_freq_factor, e) != 0)
            return -1;
        if (parse_double(who, &f[3], "HIGH (high_freq_factor)", &s.high_freq_factor, e) != 0)
            return -1;
        if (parse_posint(who, &f[4], "original length OLDLEN", &s.original_len, e) != 0)
            return -1;
        break;
    default:
        break;
    }

    if (check_params(&s, who, e) != 0) return -1;
    *out = s;
    return 0;
}

int pe_scaling_parse(const char *spec, pe_scaling *out, pe_err *e)
{
    return pe_scaling_parse_opt("--scale", spec, out, e);
}

/* ---- Applying ---- */

static const char *kind_name(pe_scale_kind k)
{
    switch (k) {
    case PE_SCALE_PI: return "pi";
    case PE_SCALE_NTK: return "ntk";
    case PE_SCALE_DYNAMIC: return "dynamic";
    case PE_SCALE_YARN: return "yarn";
    case PE_SCALE_LLAMA3: return "llama3";
    default: return "none";
    }
}

/* round(S * L) as a long, or -1 when it does not fit. */
static int scaled_len(double S, long L, const char *who, long *out, pe_err *e)
{
    double t = floor(S * (double)L + 0.5);
    /* (double)LONG_MAX rounds up to a power of two, so t < it fits. */
    if (!(t < (double)LONG_MAX))
        return pe_fail_usage(e, "%s scaling: target length %g x %ld does not fit", who, S, L);
    *out = (long)t;
    return 0;
}

/* The model's frequencies must be usable: finite and >= 0. */
static int check_theta(const double *theta, int P, const char *who, pe_err *e)
{
    if (!theta) return pe_fail(e, "%s scaling needs the model's frequencies (theta is NULL)", who);
    for (int i = 0; i < P; i++)
        if (!isfinite(theta[i]) || theta[i] < 0)
            return pe_fail(e, "%s scaling: theta[%d] = %g is not a finite frequency >= 0", who, i,
                           theta[i]);
    return 0;
}

static int check_base(double base, const char *who, pe_err *e)
{
    /* Frequencies are rebuilt as base^(-2i/R), and YaRN divides by ln(base). */
    if (!isfinite(base) || !(base > 1))
        return pe_fail(e, "%s scaling rebuilds the frequencies from the base, which must be > 1 "
                          "(got %g)",
                       who, base);
    return 0;
}

/* b * f^(R/(R-2)): the NTK-aware base.  The exponent makes the lowest
 * frequency pair (i = R/2 - 1) exactly theta/f while pair 0 stays at 1. */
static int ntk_base(double base, double f, int R, const char *who, double *out, pe_err *e)
{
    if (R < 4)
        return pe_fail_usage(e, "%s scaling needs rotary dim R >= 4: its exponent R/(R-2) is "
                                "undefined for R = %d",
                             who, R);
    double b = base * pow(f, (double)R / (double)(R - 2));
    if (!isfinite(b)) return pe_fail_usage(e, "%s scaling: the scaled base overflows", who);
    *out = b;
    return 0;
}

static void theta_from_base(double base, int R, double *out)
{
    for (int i = 0; i < R / 2; i++) out[i] = pow(base, -2.0 * i / R);
}

/* find_correction_dim: the pair index i at which theta_i = b^(-2i/R) turns
 * num_rot times within L, i.e. L * theta_i / (2 pi) = num_rot. */
static double yarn_find_dim(double num_rot, int R, double base, long L)
{
    return ((double)R * log((double)L / (num_rot * PE_TWO_PI))) / (2.0 * log(base));
}

int pe_scaling_apply(const pe_scaling *s, int rotary_dim, double base, long train_len,
                     const double *theta, double *theta_out, pe_scale_info *info, pe_err *e)
{
    const int R = rotary_dim;
    pe_scale_info inf;
    const char *who;

    if (!s || !theta_out) return pe_fail(e, "rope scaling: no scaling or no output array");
    who = kind_name(s->kind);
    if (R < 0 || R % 2 != 0)
        return pe_fail(e, "%s scaling: rotary dim %d must be an even number >= 0", who, R);
    if (check_params(s, who, e) != 0) return -1;
    if (R == 0) {
        /* No pair to scale: only the length the scaled model is meant for. */
        memset(&inf, 0, sizeof inf);
        inf.base_scaled = base;
        inf.attn_factor = s->kind == PE_SCALE_YARN && s->factor > 1 ? 0.1 * log(s->factor) + 1 : 1;
        if (s->kind == PE_SCALE_DYNAMIC)
            inf.target_len = s->target_len;
        else if (s->kind == PE_SCALE_LLAMA3)
            scaled_len(s->factor, s->original_len, who, &inf.target_len, NULL);
        else if (train_len > 0)
            scaled_len(s->factor, train_len, who, &inf.target_len, NULL);
        if (info) *info = inf;
        return 0;
    }
    const int P = R / 2;
    const double S = s->factor;

    memset(&inf, 0, sizeof inf);
    inf.base_scaled = base;
    inf.attn_factor = 1;
    inf.target_len = train_len > 0 ? train_len : 0;

    switch (s->kind) {
    case PE_SCALE_NONE:
        if (check_theta(theta, P, who, e) != 0) return -1;
        /* memmove: theta and theta_out may be the same array. */
        memmove(theta_out, theta, (size_t)P * sizeof *theta_out);
        break;

    case PE_SCALE_PI:
        /* The frequencies do not need L; without it the target length is
         * unknown (0). */
        if (check_theta(theta, P, who, e) != 0) return -1;
        if (train_len > 0 && scaled_len(S, train_len, who, &inf.target_len, e) != 0) return -1;
        for (int i = 0; i < P; i++) theta_out[i] = theta[i] / S;
        break;

    case PE_SCALE_NTK:
        if (check_base(base, who, e) != 0) return -1;
        if (ntk_base(base, S, R, who, &inf.base_scaled, e) != 0) return -1;
        if (train_len > 0 && scaled_len(S, train_len, who, &inf.target_len, e) != 0) return -1;
        theta_from_base(inf.base_scaled, R, theta_out);
        break;

    case PE_SCALE_DYNAMIC:
        if (train_len <= 0)
            return pe_fail_usage(e, "dynamic scaling needs the training length L "
                                    "(max_position_embeddings), which is unknown");
        if (check_base(base, who, e) != 0) return -1;
        if (R < 4) /* refused even when T <= L, so that the answer does not depend on T */
            return ntk_base(base, S, R, who, &inf.base_scaled, e);
        if (s->target_len > train_len) {
            /* HF: base * ((factor * seq_len / max_pos) - (factor - 1))^(R/(R-2)),
             * i.e. static NTK with the effective factor S*T/L - (S-1), which
             * is 1 at T = L and grows linearly with T. */
            double eff = S * (double)s->target_len / (double)train_len - (S - 1);
            if (ntk_base(base, eff, R, who, &inf.base_scaled, e) != 0) return -1;
        }
        inf.target_len = s->target_len;
        theta_from_base(inf.base_scaled, R, theta_out);
        break;

    case PE_SCALE_YARN: {
        if (train_len <= 0)
            return pe_fail_usage(e, "yarn scaling needs the training length L "
                                    "(original_max_position_embeddings), which is unknown");
        if (check_base(base, who, e) != 0) return -1;
        if (scaled_len(S, train_len, who, &inf.target_len, e) != 0) return -1;
        /* Pairs turning more than beta_fast times within L are kept
         * (extrapolated), pairs turning fewer than beta_slow times are
         * interpolated (theta/S), with a linear ramp in the pair index in
         * between.  HF floors the low end and ceils the high end (truncate). */
        double lo = floor(yarn_find_dim(s->beta_fast, R, base, train_len));
        double hi = ceil(yarn_find_dim(s->beta_slow, R, base, train_len));
        /* Both ends clamped to [0, R-1] (man pedecomp(1), freqs; pe_rope.h).  HF clamps
         * only low from below and high from above (max(low, 0), min(high,
         * R-1)); the two agree unless L < ~2 pi beta_slow or L > ~2 pi
         * beta_fast * b^((R-1)*2/R), where HF's ramp inverts.  The bound is
         * R-1, as in HF, although the ramp runs over R/2 pair indices. */
        lo = fmin(fmax(lo, 0.0), (double)(R - 1));
        hi = fmin(fmax(hi, 0.0), (double)(R - 1));
        inf.corr_low = lo;
        inf.corr_high = hi;
        if (lo == hi) hi += 0.001; /* HF: avoids a division by zero */
        for (int i = 0; i < P; i++) {
            double ramp = ((double)i - lo) / (hi - lo);
            ramp = fmin(fmax(ramp, 0.0), 1.0);
            double extrap = 1.0 - ramp; /* inv_freq_extrapolation_factor */
            double th_ex = pow(base, -2.0 * i / R);
            double th_in = th_ex / S;
            theta_out[i] = th_in * (1.0 - extrap) + th_ex * extrap;
        }
        /* HF get_mscale: the softmax temperature correction. */
        inf.attn_factor = S <= 1 ? 1.0 : 0.1 * log(S) + 1.0;
        break;
    }

    case PE_SCALE_LLAMA3: {
        if (check_theta(theta, P, who, e) != 0) return -1;
        const double old = (double)s->original_len;
        const double lo_f = s->low_freq_factor, hi_f = s->high_freq_factor;
        const double low_freq_wavelen = old / lo_f;
        const double high_freq_wavelen = old / hi_f;
        if (scaled_len(S, s->original_len, who, &inf.target_len, e) != 0) return -1;
        for (int i = 0; i < P; i++) {
            double th = theta[i];
            /* theta 0 has an infinite wavelength: "divided", as in HF (0/S = 0). */
            double wavelen = th > 0 ? PE_TWO_PI / th : INFINITY;
            if (wavelen < high_freq_wavelen) {
                theta_out[i] = th;
                inf.n_kept++;
            } else if (wavelen > low_freq_wavelen) {
                theta_out[i] = th / S;
                inf.n_divided++;
            } else {
                /* smooth = turns within OLDLEN, mapped from [LOW, HIGH] to [0, 1]. */
                double smooth = (old / wavelen - lo_f) / (hi_f - lo_f);
                theta_out[i] = (1.0 - smooth) * th / S + smooth * th;
                inf.n_smoothed++;
            }
        }
        break;
    }

    default:
        return pe_fail(e, "rope scaling: unknown kind %d", (int)s->kind);
    }

    if (info) *info = inf;
    return 0;
}
