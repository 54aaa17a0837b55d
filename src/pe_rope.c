/* pe_rope.c: pairs, frequencies, classes and rotation (man pedecomp(1),
 * Frequency classes and TABLES, freqs).
 * The scaling what-ifs live in pe_scaling.c. */
#include "pe_rope.h"

#include <math.h>
#include <string.h>

static const double PE_TWO_PI = 6.283185307179586476925286766559;

const char *pe_pairing_name(pe_pairing p)
{
    return p == PE_PAIRING_HALF ? "half" : "interleaved";
}

int pe_pairing_parse(const char *s, pe_pairing *out)
{
    if (strcmp(s, "half") == 0) {
        *out = PE_PAIRING_HALF;
    } else if (strcmp(s, "interleaved") == 0) {
        *out = PE_PAIRING_INTERLEAVED;
    } else {
        return -1;
    }
    return 0;
}

const char *pe_class_name(pe_class c)
{
    static const char *const names[] = {"hf", "act", "tlf", "nope", "unknown"};
    return (unsigned)c <= PE_CLASS_UNKNOWN ? names[c] : "unknown";
}

void pe_rope_pair_dims(pe_pairing p, int rotary_dim, int i, int *a, int *b)
{
    if (p == PE_PAIRING_HALF) {
        *a = i;
        *b = i + rotary_dim / 2;
    } else {
        *a = 2 * i;
        *b = 2 * i + 1;
    }
}

void pe_rope_default_theta(double base, int rotary_dim, double *theta)
{
    /* pow(base, -2i/R) rather than a running product: each value is then
     * correctly rounded on its own, as the models compute it. */
    for (int i = 0; i < rotary_dim / 2; i++) theta[i] = pow(base, -2.0 * i / rotary_dim);
}

double pe_rope_wavelength(double theta)
{
    return theta > 0 ? PE_TWO_PI / theta : NAN;
}

double pe_rope_turns(double theta, long train_len)
{
    return (double)train_len * theta / PE_TWO_PI;
}

pe_class pe_rope_classify(double theta, long train_len, const pe_class_rule *rule)
{
    static const pe_class_rule def = PE_CLASS_RULE_DEFAULT;
    if (!rule) rule = &def;
    if (theta == 0) return PE_CLASS_NOPE;
    if (train_len <= 0) return PE_CLASS_UNKNOWN;
    double rho = pe_rope_turns(theta, train_len);
    if (rho >= rule->hf_turns) return PE_CLASS_HF;
    if (rho >= rule->act_turns) return PE_CLASS_ACT;
    return PE_CLASS_TLF;
}

void pe_rope_rotate(double *x, size_t T, const pe_geom *g, const int64_t *pos, int direction)
{
    const int D = g->head_dim;
    for (int i = 0; i < g->n_pairs; i++) {
        int a, b;
        double th = g->theta[i];
        if (th == 0) continue;
        pe_rope_pair_dims(g->pairing, g->rotary_dim, i, &a, &b);
        for (size_t m = 0; m < T; m++) {
            /* The angle is formed in double from the exact integer position,
             * so rotating back with direction -1 undoes it to rounding. */
            double ang = (double)direction * ((double)pos[m] * th);
            double c = cos(ang), s = sin(ang);
            double *v = x + m * (size_t)D;
            double xa = v[a], xb = v[b];
            v[a] = xa * c - xb * s;
            v[b] = xa * s + xb * c;
        }
    }
}
