/* pe_numfmt.h: numbers as text, fast and exactly as printf would write them.
 *
 * Tables print millions of numbers; printf's general conversion is the slow
 * part of writing them.  These functions give byte-for-byte the output of
 * printf("%.*g") and printf("%lld") in the C locale, computed by a short
 * scaled-integer path that hands the rare cases it cannot decide with
 * certainty (a rounding tie within its error bound, huge or tiny exponents)
 * to snprintf.  Buffers are the caller's. */
#ifndef PE_NUMFMT_H
#define PE_NUMFMT_H

#include <stddef.h>

/* Writes v as "%.*g" with `digits` (1..17) significant digits, except that
 * NaN and infinities are written "nan" and -0 is written "0".  buf holds at
 * least PE_NUMFMT_MAX bytes; returns the length (no terminator counted). */
size_t pe_fmt_g(char *buf, double v, int digits);

/* Writes v as "%lld"; returns the length. */
size_t pe_fmt_int(char *buf, long long v);

#define PE_NUMFMT_MAX 40

#endif
