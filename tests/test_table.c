/* test_table: number formatting against printf itself, and the table formats.
 *
 *   test_table FIXTURE_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pe_numfmt.h"
#include "pe_table.h"
#include "pe_test.h"

/* pe_fmt_g must print what printf("%.*g") prints (nan/-0 aside). */
static long mismatches(double v, int digits, char *got_out, char *want_out)
{
    char got[PE_NUMFMT_MAX], want[64];
    pe_fmt_g(got, v, digits);
    if (!isfinite(v))
        snprintf(want, sizeof want, "nan");
    else
        snprintf(want, sizeof want, "%.*g", digits, v == 0 ? 0.0 : v);
    if (strcmp(got, want) == 0) return 0;
    strcpy(got_out, got);
    strcpy(want_out, want);
    return 1;
}

static double from_bits(unsigned long long b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static void check_many(const char *what, double (*gen)(pe_rng *, int), long n)
{
    pe_rng r = {12345};
    long bad = 0;
    char got[64] = "", want[64] = "";
    double first = 0;
    int first_digits = 0;
    for (long i = 0; i < n; i++) {
        int digits = 1 + (int)(pe_rng_next(&r) % 17);
        double v = gen(&r, digits);
        if (mismatches(v, digits, got, want)) {
            if (!bad) {
                first = v;
                first_digits = digits;
            }
            bad++;
        }
    }
    pe_test_report(bad == 0, what, "%ld of %ld differ; first %.17g at %d digits: got %s, want %s", bad, n,
                   first, first_digits, got, want);
}

/* Any finite bit pattern. */
static double gen_bits(pe_rng *r, int digits)
{
    (void)digits;
    double v;
    do v = from_bits(pe_rng_next(r));
    while (!isfinite(v));
    return v;
}

/* Magnitudes the tables hold: 1e-12 .. 1e12. */
static double gen_table(pe_rng *r, int digits)
{
    (void)digits;
    double e = pe_rng_uniform(r) * 12;
    return pe_rng_uniform(r) * pow(10, e);
}

/* Values that sit on or next to a rounding tie at the requested digits:
 * (n + 0.5) * 10^k, and their neighbours one ulp away. */
static double gen_ties(pe_rng *r, int digits)
{
    long long n = (long long)(pe_rng_next(r) % 1000000000ULL);
    int k = (int)(pe_rng_next(r) % 30) - 15;
    double lead = pow(10, digits - 1);
    double m = fmod((double)n, lead * 9) + lead; /* digits-digit integer */
    double v = (m + 0.5) * pow(10, k);
    switch (pe_rng_next(r) % 3) {
    case 0: return nextafter(v, 0);
    case 1: return nextafter(v, INFINITY);
    default: return v;
    }
}

/* Small dyadic values (k/64, k/2^20): exact, so exact ties appear. */
static double gen_dyadic(pe_rng *r, int digits)
{
    (void)digits;
    long long k = (long long)(pe_rng_next(r) % 2000001ULL) - 1000000;
    return (double)k / (double)(1LL << (pe_rng_next(r) % 21));
}

/* Numbers next to powers of ten (9.999..., 1.000...). */
static double gen_pow10(pe_rng *r, int digits)
{
    (void)digits;
    double p = pow(10, (int)(pe_rng_next(r) % 60) - 30);
    long steps = (long)(pe_rng_next(r) % 64) - 32;
    double v = p;
    for (long i = 0; i < (steps < 0 ? -steps : steps); i++) v = nextafter(v, steps < 0 ? 0 : INFINITY);
    return (pe_rng_next(r) & 1) ? -v : v;
}

static char *slurp(FILE *f)
{
    static char buf[65536];
    size_t n;
    rewind(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    return buf;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char buf[PE_NUMFMT_MAX];

    check_many("%.Ng of random bit patterns equals printf", gen_bits, 400000);
    check_many("%.Ng of table-sized values equals printf", gen_table, 400000);
    check_many("%.Ng next to rounding ties equals printf", gen_ties, 400000);
    check_many("%.Ng of dyadic values (exact ties) equals printf", gen_dyadic, 400000);
    check_many("%.Ng next to powers of ten equals printf", gen_pow10, 200000);
    pe_fmt_g(buf, NAN, 9);
    PE_CHECK_STR(buf, "nan", "NaN prints nan");
    pe_fmt_g(buf, -INFINITY, 9);
    PE_CHECK_STR(buf, "nan", "-inf prints nan, never inf");
    pe_fmt_g(buf, -0.0, 9);
    PE_CHECK_STR(buf, "0", "-0 prints 0");
    pe_fmt_g(buf, 0.5, 1);
    PE_CHECK_STR(buf, "0.5", "0.5 at 1 digit");
    pe_fmt_g(buf, 2.5, 1);
    PE_CHECK_STR(buf, "2", "2.5 at 1 digit rounds to even, as printf");
    pe_fmt_g(buf, 1e-5, 9);
    PE_CHECK_STR(buf, "1e-05", "1e-05");
    pe_fmt_g(buf, 123456789012.0, 9);
    PE_CHECK_STR(buf, "1.23456789e+11", "exponent form");
    pe_fmt_g(buf, 1e300, 9);
    PE_CHECK_STR(buf, "1e+300", "three-digit exponent");

    const long long ints[] = {0, 1, -1, 9, 10, -10, 123456789, 9223372036854775807LL, -9223372036854775807LL - 1};
    int int_bad = 0;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        char want[32];
        pe_fmt_int(buf, ints[i]);
        snprintf(want, sizeof want, "%lld", ints[i]);
        if (strcmp(buf, want) != 0) int_bad++;
    }
    PE_CHECK(int_bad == 0, "integers print as %lld, LLONG_MIN included");
    /* Every count up to 10^5 and random values of every length. */
    pe_rng ir = {777};
    int_bad = 0;
    for (long long i = -1000; i < 100000 + 200000; i++) {
        char want[32];
        long long v = i < 100000 ? i : (long long)(pe_rng_next(&ir) >> (pe_rng_next(&ir) % 64)) * ((i & 1) ? -1 : 1);
        pe_fmt_int(buf, v);
        snprintf(want, sizeof want, "%lld", v);
        if (strcmp(buf, want) != 0) int_bad++;
    }
    PE_CHECK(int_bad == 0, "301000 more integers (every count to 10^5, random lengths) print as %lld");

    /* Table layout in the three formats. */
    static const char *const cols[] = {"a", "b", "c"};
    pe_err e;
    for (int fmt = 0; fmt < 3; fmt++) {
        FILE *f = tmpfile();
        pe_table *t = pe_table_open(f, (pe_format)fmt, 9, "tool", "demo", cols, 3, &e);
        pe_table_meta(t, "version", "1.2");
        pe_table_meta(t, "note", "two\nlines");
        for (int blk = 0; blk < 2; blk++) {
            for (int ser = 0; ser < 2; ser++) {
                pe_table_int(t, blk);
                pe_table_str(t, ser ? "x\"y" : "x");
                pe_table_dbl(t, ser ? NAN : 0.25);
                pe_table_end_row(t);
                pe_table_break(t, 1);
            }
            pe_table_break(t, 2);
        }
        pe_table_finish(t, &e);
        const char *out = slurp(f);
        if (fmt == PE_FMT_GNUPLOT)
            PE_CHECK_STR(out, "# tool table: demo\n# version: 1.2\n# note: two lines\na\tb\tc\n0\tx\t0.25\n\n0\tx\"y\tnan\n\n\n1\tx\t0.25\n\n1\tx\"y\tnan\n",
                         "gnuplot: comments, header, one blank line per series, two per block, none at the end");
        else if (fmt == PE_FMT_TSV)
            PE_CHECK_STR(out, "# tool table: demo\n# version: 1.2\n# note: two lines\na\tb\tc\n0\tx\t0.25\n0\tx\"y\tnan\n1\tx\t0.25\n1\tx\"y\tnan\n",
                         "tsv: no blank lines");
        else
            PE_CHECK_STR(out, "{\"tool\":\"tool\",\"table\":\"demo\",\"meta\":{\"version\":\"1.2\",\"note\":\"two\\nlines\"},"
                              "\"columns\":[\"a\",\"b\",\"c\"],\"rows\":[\n{\"a\":0,\"b\":\"x\",\"c\":0.25},\n"
                              "{\"a\":0,\"b\":\"x\\\"y\",\"c\":null},\n{\"a\":1,\"b\":\"x\",\"c\":0.25},\n"
                              "{\"a\":1,\"b\":\"x\\\"y\",\"c\":null}\n]}\n",
                         "json: one document, strings escaped, null for nan");
        fclose(f);
    }
    /* Forks: the same rows formatted in two forks made before either is
     * joined (as threads do), split after every row, then one row by the
     * parent, give the same bytes;
     * the second fork starts from the state the caller knows (rows before
     * it, the break after the row before it), the later rows of a series
     * reuse its first cell (pe_table_use_prefix). */
    for (int fmt = 0; fmt < 3; fmt++) {
        FILE *ref = tmpfile();
        pe_table *t = pe_table_open(ref, (pe_format)fmt, 9, "tool", "demo", cols, 3, &e);
        for (int r = 0; r < 5; r++) {
            pe_table_int(t, r / 2);
            pe_table_str(t, "s");
            pe_table_dbl(t, r * 0.5);
            pe_table_end_row(t);
            pe_table_break(t, r % 2 ? 2 : 1);
        }
        pe_table_finish(t, &e);
        static char want[65536];
        memcpy(want, slurp(ref), sizeof want);
        fclose(ref);
        int bad = 0;
        for (int k = 0; k <= 4; k++) {
            FILE *f = tmpfile();
            t = pe_table_open(f, (pe_format)fmt, 9, "tool", "demo", cols, 3, &e);
            pe_table_state at[2] = {pe_table_state_of(t), {k > 0, k > 0 ? ((k - 1) % 2 ? 2 : 1) : 0}};
            pe_table *fk[2];
            for (int h = 0; h < 2; h++) {
                fk[h] = pe_table_fork(t, at[h], &e);
                for (int r = h ? k : 0; r < (h ? 4 : k); r++) {
                    if (r % 2 && r != (h ? k : 0)) {
                        pe_table_use_prefix(fk[h]); /* the block number, kept from the row before */
                    } else {
                        pe_table_int(fk[h], r / 2);
                        pe_table_mark_prefix(fk[h]);
                    }
                    pe_table_str(fk[h], "s");
                    pe_table_dbl(fk[h], r * 0.5);
                    pe_table_end_row(fk[h]);
                    pe_table_break(fk[h], r % 2 ? 2 : 1);
                }
            }
            for (int h = 0; h < 2; h++) bad += pe_table_join(t, fk[h], &e) != 0;
            /* The parent goes on after the forks' rows and breaks. */
            pe_table_int(t, 2);
            pe_table_str(t, "s");
            pe_table_dbl(t, 2.0);
            pe_table_end_row(t);
            pe_table_finish(t, &e);
            bad += strcmp(slurp(f), want) != 0;
            fclose(f);
        }
        PE_CHECK(bad == 0, fmt == 0   ? "gnuplot: rows from two forks, split after any row, are the rows written directly"
                           : fmt == 1 ? "tsv: rows from two forks are the rows written directly"
                                      : "json: rows from two forks are the rows written directly");
    }
    {
        FILE *f = tmpfile();
        pe_table *t = pe_table_open(f, PE_FMT_JSON, 9, "tool", "empty", cols, 3, &e);
        pe_table_finish(t, &e);
        PE_CHECK_STR(slurp(f), "{\"tool\":\"tool\",\"table\":\"empty\",\"meta\":{},\"columns\":[\"a\",\"b\",\"c\"],\"rows\":[]}\n",
                     "json: an empty table is still a document");
        fclose(f);
    }

    /* Output files appear whole or not at all. */
    {
        char dir[] = "/tmp/pe_test_tableXXXXXX", path[256];
        if (mkdtemp(dir)) {
            pe_output o;
            snprintf(path, sizeof path, "%s/out.tsv", dir);
            PE_CHECK(pe_output_open(&o, path, "--output", NULL, 0, &e) == 0, "output opens");
            fputs("partial", o.fp);
            PE_CHECK(access(path, F_OK) != 0, "nothing at the target before close");
            pe_output_close(&o, 0, &e);
            PE_CHECK(access(path, F_OK) != 0, "a failed run leaves nothing");
            PE_CHECK(pe_output_open(&o, path, "--output", NULL, 0, &e) == 0, "output opens again");
            fputs("whole\n", o.fp);
            PE_CHECK(pe_output_close(&o, 1, &e) == 0 && access(path, F_OK) == 0, "a finished table is renamed into place");
            char *inputs[1] = {path};
            PE_CHECK(pe_output_open(&o, path, "--output", inputs, 1, &e) < 0 && e.kind == PE_ERRK_USAGE, "an input is never the output");
            unlink(path);
            rmdir(dir);
        }
    }
    return pe_test_done();
}
