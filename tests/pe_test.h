/* pe_test.h: the smallest test harness that does the job.
 *
 * Every check prints one line, "ok - what" or "not ok - what: details", which
 * tests/run.sh counts; a test program returns pe_test_done() as its status.
 * Header-only so that each test file is one self-contained program.
 */
#ifndef PE_TEST_H
#define PE_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int pe_test_failures;

static void pe_test_report(int ok, const char *what, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4), unused))
#endif
    ;
static void pe_test_report(int ok, const char *what, const char *fmt, ...)
{
    if (ok) {
        printf("ok - %s\n", what);
    } else {
        va_list ap;
        pe_test_failures++;
        printf("not ok - %s: ", what);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    fflush(stdout);
}

/* A boolean check. */
#define PE_CHECK(cond, what) pe_test_report((cond) != 0, (what), "%s is false", #cond)

/* |got - want| <= tol * max(1, |want|) when rel, else <= tol; NaN == NaN. */
static inline int pe_test_close_enough(double got, double want, double tol, int rel)
{
    if (isnan(got) || isnan(want)) return isnan(got) && isnan(want);
    double scale = rel ? fmax(1.0, fabs(want)) : 1.0;
    return fabs(got - want) <= tol * scale;
}

#define PE_CHECK_NEAR(got, want, tol, what)                                                  \
    do {                                                                                     \
        double pe_g_ = (got), pe_w_ = (want);                                                \
        pe_test_report(pe_test_close_enough(pe_g_, pe_w_, (tol), 0), (what),                 \
                       "got %.17g, want %.17g (tol %g)", pe_g_, pe_w_, (double)(tol));       \
    } while (0)

#define PE_CHECK_REL(got, want, tol, what)                                                   \
    do {                                                                                     \
        double pe_g_ = (got), pe_w_ = (want);                                                \
        pe_test_report(pe_test_close_enough(pe_g_, pe_w_, (tol), 1), (what),                 \
                       "got %.17g, want %.17g (rel tol %g)", pe_g_, pe_w_, (double)(tol));   \
    } while (0)

#define PE_CHECK_INT(got, want, what)                                                        \
    do {                                                                                     \
        long long pe_g_ = (long long)(got), pe_w_ = (long long)(want);                       \
        pe_test_report(pe_g_ == pe_w_, (what), "got %lld, want %lld", pe_g_, pe_w_);         \
    } while (0)

#define PE_CHECK_STR(got, want, what)                                                        \
    do {                                                                                     \
        const char *pe_g_ = (got), *pe_w_ = (want);                                          \
        pe_test_report(pe_g_ && pe_w_ && strcmp(pe_g_, pe_w_) == 0, (what),                  \
                       "got '%s', want '%s'", pe_g_ ? pe_g_ : "(null)", pe_w_);              \
    } while (0)

static inline int pe_test_done(void)
{
    return pe_test_failures ? 1 : 0;
}

/* Deterministic pseudo-random numbers (splitmix64), the same on every machine. */
typedef struct { unsigned long long s; } pe_rng;

static inline unsigned long long pe_rng_next(pe_rng *r)
{
    unsigned long long z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline double pe_rng_uniform(pe_rng *r)
{
    return (double)(pe_rng_next(r) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

#endif
