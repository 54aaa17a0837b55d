/* pe_numfmt.c: printf-exact number formatting without printf's cost.
 *
 * For "%.Pg" the value is scaled by an exact power of ten in long double,
 * rounded to a P-digit integer, and laid out with the %g rules.  The scaled
 * value carries one rounding error; when its fraction lies within that error
 * of one half, the rounding direction is uncertain and snprintf decides, so
 * the output is always printf's own. */
#include "pe_numfmt.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
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

static const char pe_digit_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

size_t pe_fmt_int(char *buf, long long v)
{
    /* Two digits per division, written from the end of tmp. */
    const char *pairs = pe_digit_pairs;
    char tmp[24];
    size_t n = sizeof tmp, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        tmp[--n] = pairs[2 * r + 1];
        tmp[--n] = pairs[2 * r];
    }
    if (u >= 10) {
        tmp[--n] = pairs[2 * u + 1];
        tmp[--n] = pairs[2 * u];
    } else {
        tmp[--n] = (char)('0' + u);
    }
    if (v < 0) buf[len++] = '-';
    memcpy(buf + len, tmp + n, sizeof tmp - n);
    len += sizeof tmp - n;
    buf[len] = '\0';
    return len;
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
    pthread_once(&pe_pow10_once, pow10_init);
    int P = digits, ok;
    double a = fabs(v);
    /* The decimal exponent estimated from the binary one (within one of
     * the truth: corrected below), without log10. */
    int e10, e2;
    frexp(a, &e2); /* a = f 2^e2, 0.5 <= f < 1 */
    e10 = (int)floor((e2 - 1) * 0.30102999566398120);
    long double s = 0, lo = 0, hi = 0;
    for (int tries = 0; tries < 3; tries++) {
        int k = P - 1 - e10;
        long double p = pow10_exact(k >= 0 ? k : -k, &ok);
        if (!ok) return fallback(buf, v, digits);
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
    if (s < lo || s >= hi) return fallback(buf, v, digits);
    /* One rounding in the scaling: |error| <= s * LDBL_EPSILON / 2.  Keep a
     * wide margin around the half-way point. */
    /* s < 10^17 < 2^64: the conversion truncates, which is floor here. */
    unsigned long long N = (unsigned long long)s;
    long double frac = s - (long double)N;
    long double margin = 4 * s * LDBL_EPSILON;
    if (fabsl(frac - 0.5L) <= margin) return fallback(buf, v, digits);
    N += frac > 0.5L ? 1 : 0;
    if ((long double)N >= hi) { /* 9.99..95 rounded up to 10.0..0 */
        N /= 10;
        e10++;
    }
    char d[20];
    int i = P;
    while (i >= 2) { /* two digits per division */
        unsigned r = (unsigned)(N % 100);
        N /= 100;
        d[--i] = pe_digit_pairs[2 * r + 1];
        d[--i] = pe_digit_pairs[2 * r];
    }
    if (i) d[0] = (char)('0' + N % 10);
    int nd = P; /* significant digits left after dropping trailing zeros */
    size_t len = 0;
    if (v < 0) buf[len++] = '-';
    if (e10 < -4 || e10 >= P) {
        while (nd > 1 && d[nd - 1] == '0') nd--;
        buf[len++] = d[0];
        if (nd > 1) {
            buf[len++] = '.';
            memcpy(buf + len, d + 1, (size_t)(nd - 1));
            len += (size_t)(nd - 1);
        }
        buf[len++] = 'e';
        buf[len++] = e10 < 0 ? '-' : '+';
        int x = e10 < 0 ? -e10 : e10;
        if (x >= 100) buf[len++] = (char)('0' + x / 100);
        buf[len++] = (char)('0' + x / 10 % 10);
        buf[len++] = (char)('0' + x % 10);
    } else if (e10 >= 0) {
        /* e10 + 1 integer digits, then P - 1 - e10 decimals */
        int ni = e10 + 1;
        while (nd > ni && d[nd - 1] == '0') nd--;
        memcpy(buf + len, d, (size_t)ni);
        len += (size_t)ni;
        if (nd > ni) {
            buf[len++] = '.';
            memcpy(buf + len, d + ni, (size_t)(nd - ni));
            len += (size_t)(nd - ni);
        }
    } else {
        /* 0.000ddd: -e10 - 1 zeros after the point */
        while (nd > 1 && d[nd - 1] == '0') nd--;
        buf[len++] = '0';
        buf[len++] = '.';
        for (int z = 0; z < -e10 - 1; z++) buf[len++] = '0';
        memcpy(buf + len, d, (size_t)nd);
        len += (size_t)nd;
    }
    buf[len] = '\0';
    return len;
}
