/* fixtures.h: the deterministic data of the test fixtures, shared by the
 * generator (mkfixtures.c) and the tests that check what the reader returns.
 *
 * Values are k/64 with |k| <= 128: exact in bfloat16, float16, float32 and
 * float64, so that every dtype fixture holds the same numbers and the tools
 * must print the same tables for all of them. */
#ifndef PE_FIXTURES_H
#define PE_FIXTURES_H

#include <math.h>
#include <stdint.h>

/* The standard fixture shape. */
#define FX_HEADS 4
#define FX_KV 2
#define FX_D 8
#define FX_R 6
#define FX_T 40
#define FX_L 16

static inline uint64_t fx_hash(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Value of dim d (in the `half` layout) of token t, head h, tensor (0 q,
 * 1 k) of layer `layer`. */
static inline double fx_value(int layer, int tensor, int h, int t, int d)
{
    uint64_t key = ((((uint64_t)layer * 2 + (uint64_t)tensor) * 64 + (uint64_t)h) * 100000 + (uint64_t)t) * 512 + (uint64_t)d;
    return (double)((int)(fx_hash(key) % 257) - 128) / 64.0;
}

/* The recorded loss of the truth fixtures (tokens at positions 0 .. T-1,
 * L = FX_L): nll = 1 + (m mod 5) / 4 and the control nll lower by
 * (m - L + 1) / 32 from position L on (0 before it), so that the excess of
 * a bin is the mean of (m - L + 1) / 32 over its beyond-L tokens.  The last
 * token has no next one: NaN. */
static inline double fx_nll(long m, long T)
{
    return m == T - 1 ? NAN : 1.0 + (double)(m % 5) / 4.0;
}
static inline double fx_nll_control(long m, long T)
{
    return fx_nll(m, T) - (m >= FX_L ? (double)(m - FX_L + 1) / 32.0 : 0.0);
}

/* truth-pi*.h5 record a second spec's loss over truth.h5's tokens: higher
 * by (m mod 3) / 8 (exact in float32), so -t loss's compare section has a
 * known difference to find. */
static inline double fx_nll_shift(long m)
{
    return (double)(m % 3) / 8.0;
}

/* The dim of the interleaved layout that holds half-layout dim d. */
static inline int fx_interleaved_dim(int d, int R)
{
    int P = R / 2;
    if (d >= R) return d;
    return d < P ? 2 * d : 2 * (d - P) + 1;
}

#endif
