/* pe_numfmt.c: printf-exact number formatting without printf's cost.
 *
 * For "%.Pg" the value is scaled by a power of ten to a P-digit number,
 * rounded to an integer, and laid out with the %g rules.  Three paths, each
 * handing on what it cannot decide with certainty:
 * - double (P <= 15, the tables' 9 digits): one rounding in the scaling;
 *   near a half, fma recovers that rounding's error exactly;
 * - long double (P up to 17): one rounding, with a margin around the half;
 * - snprintf: exact ties (printf rounds them to even), huge and tiny
 *   exponents, whatever is left.
 * So the output is always printf's own (tests/test_table compares them). */
#include "pe_numfmt.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

/* Powers of ten that long double holds exactly (5^k < 2^LDBL_MANT_DIG):
 * 10^27 with the x87 format, 10^22 where long double is double. */
#define PE_POW10_MAX 27
static long double pe_pow10[PE_POW10_MAX + 1];
static int pe_pow10_limit;
static pthread_once_t pe_pow10_once = PTHREAD_ONCE_INIT;

static void pow10_init(void)
{
    long double p5 = 1, p10 = 1, two_m = ldexpl(1.0L, LDBL_MANT_DIG);
    for (int k = 0; k <= PE_POW10_MAX && p5 < two_m; k++) {
        pe_pow10[k] = p10;
        pe_pow10_limit = k;
        p5 *= 5;
        p10 *= 10;
    }
}

/* After pthread_once(&pe_pow10_once, pow10_init). */
static long double pow10_exact(int k, int *ok)
{
    *ok = k >= 0 && k <= pe_pow10_limit;
    return *ok ? pe_pow10[k] : 0;
}

static size_t fallback(char *buf, double v, int digits)
{
    int n = snprintf(buf, PE_NUMFMT_MAX, "%.*g", digits, v);
    return n > 0 ? (size_t)n : 0;
}

/* The digit writers are small and called a few times per number, on every
 * row of a table: calls would cost as much as their work. */
#if defined(__GNUC__)
#define PE_INLINE inline __attribute__((always_inline))
#else
#define PE_INLINE inline
#endif

static const char pe_digit_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Writes the 8 decimal digits of x < 10^8 at p: its halves and their
 * pairs are independent, so the divisions do not wait on each other. */
static PE_INLINE void put8(char *p, uint32_t x)
{
    uint32_t hi = x / 10000, lo = x % 10000;
    memcpy(p, pe_digit_pairs + 2 * (hi / 100), 2);
    memcpy(p + 2, pe_digit_pairs + 2 * (hi % 100), 2);
    memcpy(p + 4, pe_digit_pairs + 2 * (lo / 100), 2);
    memcpy(p + 6, pe_digit_pairs + 2 * (lo % 100), 2);
}

/* Writes the `count` low decimal digits of v, leading zeros kept, at p. */
static PE_INLINE void put_digits(char *p, unsigned long long v, int count)
{
    while (count >= 8) { /* eight at a time from the end */
        unsigned long long q = v / 100000000;
        count -= 8;
        put8(p + count, (uint32_t)(v - q * 100000000));
        v = q;
    }
    uint32_t u = (uint32_t)v; /* < 10^7 now */
    char *q = p + count;
    while (q - p >= 2) {
        uint32_t r = u % 100;
        u /= 100;
        q -= 2;
        memcpy(q, pe_digit_pairs + 2 * r, 2);
    }
    if (q > p) *--q = (char)('0' + u % 10);
}

static const unsigned long long pe_pow10_u[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL,
    1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
    1000000000000000000ULL, 10000000000000000000ULL};

/* Decimal digits of u (1 for 0): the bit length times log10 2 is the count
 * or one less, and one comparison tells which. */
static PE_INLINE int digit_count(unsigned long long u)
{
    u |= 1;
#if defined(__GNUC__)
    int bits = 64 - __builtin_clzll(u);
#else
    int bits = 0;
    for (unsigned long long x = u; x; x >>= 1) bits++;
#endif
    int t = bits * 1233 >> 12; /* 1233 / 4096 ~ log10 2 */
    return t + (u >= pe_pow10_u[t]);
}

size_t pe_fmt_int(char *buf, long long v)
{
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    size_t len = v < 0;
    int nd = digit_count(u);
    if (v < 0) buf[0] = '-';
    put_digits(buf + len, u, nd);
    len += (size_t)nd;
    buf[len] = '\0';
    return len;
}

/* 10^e in double for e in [-24, 39]: exact for 0 <= e <= 22 (5^22 < 2^53),
 * rounded elsewhere (used there for comparisons only). */
#define PE_P10_LO (-24)
#define PE_P10_HI 39
static const double pe_pow10_dbl[PE_P10_HI - PE_P10_LO + 1] = {
    1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17,
    1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9,
    1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1,
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23,
    1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31,
    1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39,
};

/* The exact 10^k, 0 <= k <= 22. */
#define POW10_EXACT(k) pe_pow10_dbl[(k) - PE_P10_LO]

/* The decimal exponent of a > 0, estimated from the binary one (within one
 * of the truth: the callers correct it), without log10. */
static PE_INLINE int e10_estimate(double a)
{
    /* a = f 2^e2, 1 <= f < 2, read from the bits (no libm call); a
     * subnormal a comes out far too small, and its caller gives up. */
    uint64_t bits;
    memcpy(&bits, &a, sizeof bits);
    int e2 = (int)(bits >> 52 & 0x7ff) - 1023;
    /* floor(e2 log10 2), with log10 2 ~ 315653 / 2^20: the decimal exponent
     * or one less; one comparison (no branch) tells which, but for values
     * next to a power of ten, which the callers correct. */
    long x = (long)e2 * 315653;
    int e = (int)(x >= 0 ? x >> 20 : -((-x + (1L << 20) - 1) >> 20));
    if (e + 1 >= PE_P10_LO && e + 1 <= PE_P10_HI) e += a >= pe_pow10_dbl[e + 1 - PE_P10_LO];
    return e;
}

/* The fast path, P <= 15 digits: a scaled by an exact power of ten in
 * double, s = a 10^k with one rounding, |a 10^k - s| <= s 2^-53.  The
 * P-digit integer N = round(a 10^k) follows from s unless its fraction is
 * within that bound of one half; then fma recovers the rounding error
 * exactly (a 10^k = s + err; for k < 0, a = s 10^-k + r) and decides.  An
 * exact tie (printf rounds those to even) or s landing on 10^(P-1) from
 * below returns -1. */
static int scale_exact(double a, int P, unsigned long long *N, int *e10_out)
{
    if (P > 15) return -1;
    const double lo = POW10_EXACT(P - 1), hi = POW10_EXACT(P);
    int e10 = e10_estimate(a), k = 0;
    double s = 0;
    for (int tries = 0;; tries++) {
        if (tries == 3) return -1;
        k = P - 1 - e10;
        if (k > 22 || k < -22) return -1;
        s = k >= 0 ? a * POW10_EXACT(k) : a / POW10_EXACT(-k);
        if (s >= hi)
            e10++;
        else if (s < lo)
            e10--;
        else
            break;
    }
    if (!(s < hi)) return -1; /* inf */
    unsigned long long n = (unsigned long long)s; /* s < 10^15 < 2^53: exact floor */
    double half = s - (double)n - 0.5;            /* exact */
    if (fabs(half) <= s * 0x1p-52 || s == lo) {
        /* Rare: the error decides.  Rounding half + err keeps the sign
         * of the exact sum, and gives 0 only for an exact 0 (a tie) or
         * when err/p rounded onto -half: both go to the slow path. */
        double err;
        if (k >= 0) {
            err = fma(a, POW10_EXACT(k), -s);
        } else {
            double p = POW10_EXACT(-k);
            err = fma(-s, p, a) / p; /* the remainder is exact; over p, its sign kept */
        }
        if (s == lo && err < 0) return -1; /* just under 10^(P-1): the slow path carries */
        half += err;
        if (half == 0) return -1;
    }
    n += half > 0;
    if (n >= pe_pow10_u[P]) { /* 9.99..95 rounded up to 10.0..0 */
        n /= 10;
        e10++;
    }
    *N = n;
    *e10_out = e10;
    return 0;
}

/* The general path, any P up to 17: one rounding in long double, and the
 * cases within its error bound of a tie go to snprintf (-1). */
static int scale_long_double(double a, int P, unsigned long long *N, int *e10_out)
{
    pthread_once(&pe_pow10_once, pow10_init);
    int ok, e10 = e10_estimate(a);
    long double s = 0, lo = 0, hi = 0;
    for (int tries = 0; tries < 3; tries++) {
        int k = P - 1 - e10;
        long double p = pow10_exact(k >= 0 ? k : -k, &ok);
        if (!ok) return -1;
        s = k >= 0 ? (long double)a * p : (long double)a / p;
        lo = pow10_exact(P - 1, &ok);
        hi = lo * 10;
        if (s >= hi) {
            e10++;
        } else if (s < lo) {
            e10--;
        } else {
            break;
        }
    }
    if (s < lo || s >= hi) return -1;
    /* One rounding in the scaling: |error| <= s * LDBL_EPSILON / 2.  Keep a
     * wide margin around the half-way point. */
    /* s < 10^17 < 2^64: the conversion truncates, which is floor here. */
    unsigned long long n = (unsigned long long)s;
    long double frac = s - (long double)n;
    long double margin = 4 * s * LDBL_EPSILON;
    if (fabsl(frac - 0.5L) <= margin) return -1;
    n += frac > 0.5L ? 1 : 0;
    if ((long double)n >= hi) { /* 9.99..95 rounded up to 10.0..0 */
        n /= 10;
        e10++;
    }
    *N = n;
    *e10_out = e10;
    return 0;
}

/* Trailing zero digits of N >= 1, counted from N, not from the text just
 * written: reading that back would wait for the stores. */
static int trailing_zeros(unsigned long long N)
{
    int tz = 0;
    while (N % 10 == 0) {
        N /= 10;
        tz++;
    }
    return tz;
}

/* The length of a number whose `nf` decimals start at f0, after a '.', when
 * its last `tz` digits are zeros: %g drops them, and the '.' with them when
 * no decimal is left. */
static size_t trimmed_end(size_t f0, int nf, int tz)
{
    int keep = nf - (tz < nf ? tz : nf);
    return keep ? f0 + (size_t)keep : f0 - 1;
}

size_t pe_fmt_g(char *buf, double v, int digits)
{
    if (!isfinite(v)) {
        memcpy(buf, "nan", 4);
        return 3;
    }
    if (v == 0) {
        memcpy(buf, "0", 2);
        return 1;
    }
    if (digits < 1) digits = 1;
    if (digits > 17) digits = 17;
    int P = digits, e10;
    double a = fabs(v);
    unsigned long long N;
    if (scale_exact(a, P, &N, &e10) < 0 && scale_long_double(a, P, &N, &e10) < 0)
        return fallback(buf, v, digits);
    /* Digits go straight to their place: gathering them in a scratch array
     * and copying it out stalls on the store just made. */
    size_t len = 0;
    int tz = trailing_zeros(N);
    if (v < 0) buf[len++] = '-';
    if (e10 < -4 || e10 >= P) {
        /* d.ddd: the digits one place on, then the first moved before '.' */
        put_digits(buf + len + 1, N, P);
        buf[len] = buf[len + 1];
        buf[len + 1] = '.';
        len = trimmed_end(len + 2, P - 1, tz);
        buf[len++] = 'e';
        buf[len++] = e10 < 0 ? '-' : '+';
        int x = e10 < 0 ? -e10 : e10;
        if (x >= 100) buf[len++] = (char)('0' + x / 100);
        buf[len++] = (char)('0' + x / 10 % 10);
        buf[len++] = (char)('0' + x % 10);
    } else if (e10 >= 0) {
        /* e10 + 1 integer digits, '.', P - 1 - e10 decimals moved one on */
        size_t ni = (size_t)e10 + 1, end = len + (size_t)P + 1;
        put_digits(buf + len, N, P);
        for (size_t j = end - 1; j > len + ni; j--) buf[j] = buf[j - 1];
        buf[len + ni] = '.';
        len = trimmed_end(len + ni + 1, P - (int)ni, tz);
    } else {
        /* 0.000ddd: -e10 - 1 zeros after the point, at most 3 (e10 >= -4):
         * four are written, whatever the count, and the digits go over the
         * rest (no branch on a count that changes from row to row) */
        size_t z = (size_t)(-e10 - 1), f0 = len + 2;
        memcpy(buf + len, "0.0000", 6);
        put_digits(buf + f0 + z, N, P);
        len = trimmed_end(f0, (int)z + P, tz);
    }
    buf[len] = '\0';
    return len;
}
