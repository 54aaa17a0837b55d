/* pe_rope.h: the geometry of the rotary embedding (man pedecomp(1),
 * Frequency classes).
 *
 * Pure functions on small arrays: which dims form pair i, the frequencies
 * theta_i, wavelength, turns within the training length, HoPE's frequency
 * classes, rotating vectors by position, and the rope-scaling what-ifs.
 * Nothing here reads files or prints.  Arrays are borrowed; outputs are
 * written into caller-provided arrays.
 */
#ifndef PE_ROPE_H
#define PE_ROPE_H

#include <stddef.h>
#include <stdint.h>

#include "pe_common.h"

/* Layout of the stored vectors (qkdump attribute rope_pairing). */
typedef enum {
    PE_PAIRING_HALF = 0,       /* pair i = dims (i, i + R/2): HF rotate_half */
    PE_PAIRING_INTERLEAVED = 1 /* pair i = dims (2i, 2i + 1): Meta, llama2.c */
} pe_pairing;

/* HoPE's bands.  PE_CLASS_UNKNOWN: theta > 0 but the training length is
 * unknown (L == 0), so the band cannot be told. */
typedef enum {
    PE_CLASS_HF = 0, /* rho >= hf_turns (default 1): a full turn inside L */
    PE_CLASS_ACT,    /* act_turns <= rho < hf_turns: the "activated" band */
    PE_CLASS_TLF,    /* 0 < rho < act_turns: top low frequency */
    PE_CLASS_NOPE,   /* theta == 0 */
    PE_CLASS_UNKNOWN
} pe_class;

/* Thresholds of the classes, in turns within L (rho). */
typedef struct pe_class_rule {
    double hf_turns;  /* default 1.0 */
    double act_turns; /* default 0.5 */
} pe_class_rule;

#define PE_CLASS_RULE_DEFAULT {1.0, 0.5}

/* The rotary layout of one head, enough to rotate vectors or walk pairs.
 * theta is borrowed (n_pairs values); n_pairs == rotary_dim / 2. */
typedef struct pe_geom {
    int head_dim;   /* D */
    int rotary_dim; /* R, even, 0 <= R <= D */
    int n_pairs;    /* P = R / 2 */
    pe_pairing pairing;
    const double *theta;
} pe_geom;

const char *pe_pairing_name(pe_pairing p);
/* Parses "half" / "interleaved"; returns 0 or -1. */
int pe_pairing_parse(const char *s, pe_pairing *out);

const char *pe_class_name(pe_class c);

/* The dims (*a, *b) of pair i (0 <= i < R/2). */
void pe_rope_pair_dims(pe_pairing p, int rotary_dim, int i, int *a, int *b);

/* theta_i = base^(-2i/R) for i = 0 .. R/2 - 1, written into theta[R/2]. */
void pe_rope_default_theta(double base, int rotary_dim, double *theta);

/* 2*pi/theta; NaN when theta == 0 (an infinite wavelength prints as nan). */
double pe_rope_wavelength(double theta);

/* rho = L * theta / (2*pi): turns of pair i within the training length. */
double pe_rope_turns(double theta, long train_len);

/* The class of a pair; train_len == 0 means unknown.  rule may be NULL
 * (defaults). */
pe_class pe_rope_classify(double theta, long train_len, const pe_class_rule *rule);

/* Rotates the rotary dims of T token vectors (row-major T x D, in place) by
 * direction * pos[m] * theta_i: direction +1 applies RoPE, -1 undoes it.
 * Pair (x_a, x_b) is treated as the complex number x_a + j x_b and multiplied
 * by exp(j * direction * pos[m] * theta_i).  Pass-through dims are untouched. */
void pe_rope_rotate(double *x, size_t T, const pe_geom *g, const int64_t *pos, int direction);

/* ---- Scaling what-if (man pedecomp(1), TABLES, freqs) ---- */

typedef enum {
    PE_SCALE_NONE = 0,
    PE_SCALE_PI,      /* "pi:S":               theta / S */
    PE_SCALE_NTK,     /* "ntk:S":              base' = b * S^(R/(R-2)) */
    PE_SCALE_DYNAMIC, /* "dynamic:S:T":        base' = b * ((S*T/L) - (S-1))^(R/(R-2)) when T > L */
    PE_SCALE_YARN,    /* "yarn:S[:BF:BS]":     HF YaRN, beta_fast BF (32), beta_slow BS (1) */
    PE_SCALE_LLAMA3   /* "llama3:S:LO:HI:OL":  Llama 3.1 factor, low/high freq factor, original length */
} pe_scale_kind;

typedef struct pe_scaling {
    pe_scale_kind kind;
    double factor;           /* S, > 0 (>= 1 for ntk/dynamic/yarn/llama3) */
    long target_len;         /* dynamic: T */
    double beta_fast;        /* yarn, default 32 */
    double beta_slow;        /* yarn, default 1 */
    double low_freq_factor;  /* llama3 */
    double high_freq_factor; /* llama3 */
    long original_len;       /* llama3: original context length */
} pe_scaling;

/* What a scaling did, for the record and for the tests. */
typedef struct pe_scale_info {
    double base_scaled; /* ntk/dynamic: base'; otherwise the base itself */
    double attn_factor; /* yarn: 0.1 * ln(S) + 1 (1 when S <= 1); otherwise 1 */
    double corr_low;    /* yarn: floored correction dim, clamped to [0, R-1] */
    double corr_high;   /* yarn: ceiled correction dim, clamped to [0, R-1] */
    int n_kept;         /* llama3: pairs left unchanged (wavelength < original/high) */
    int n_smoothed;     /* llama3: pairs blended */
    int n_divided;      /* llama3: pairs divided by the factor */
    long target_len;    /* the length the scaled model is meant for: S*L, or T for dynamic */
} pe_scale_info;

/* Parses a --scale spec ("yarn:4", "ntk:4", "dynamic:4:16384", "pi:4",
 * "llama3:8:1:4:8192").  Returns 0, or -1 with e naming what is wrong. */
int pe_scaling_parse(const char *spec, pe_scaling *out, pe_err *e);
/* The same, with the option opt naming it in messages ("--pe"). */
int pe_scaling_parse_opt(const char *opt, const char *spec, pe_scaling *out, pe_err *e);

/* Writes the scaled frequencies of R/2 pairs into theta_out.  theta is the
 * model's frequencies (used by pi and llama3); base and rotary_dim are used
 * by ntk, dynamic and yarn, which rebuild the frequencies from the base.
 * train_len L (> 0) is the original context length (yarn, dynamic; llama3
 * uses its own original_len).  info may be NULL.  Returns 0 or -1. */
int pe_scaling_apply(const pe_scaling *s, int rotary_dim, double base, long train_len,
                     const double *theta, double *theta_out, pe_scale_info *info, pe_err *e);

#endif
