/* pe_common.h: what every petools module shares: exit statuses, the error
 * buffer, checked allocation.
 *
 * Conventions for the whole library (read once, assumed everywhere):
 * - Library functions never print and never exit.  They return 0 on success
 *   and -1 on failure, after writing one line (no trailing newline, no
 *   program name) into a caller-provided pe_err.  Only a tool's main prints
 *   "prog: message" and chooses the exit status.
 * - Ownership: whatever a function returns through a pointer it allocated is
 *   owned by the caller and released with the matching _free/_close function
 *   (or free() where the header says so).  Pointer arguments are borrowed.
 * - Every number is computed in double precision, whatever the stored type.
 */
#ifndef PE_COMMON_H
#define PE_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Exit statuses of every tool (documented in each man page). */
enum {
    PE_EXIT_OK = 0,    /* success */
    PE_EXIT_DATA = 1,  /* bad input data, I/O or runtime error */
    PE_EXIT_USAGE = 2, /* bad command line */
    PE_EXIT_FOUND = 3  /* a gating option (--fail-on, --check) found its condition */
};

/* Error kinds, so that a main can map a library failure to an exit status. */
typedef enum {
    PE_ERRK_DATA = 0, /* the input is wrong or unreadable: exit 1 */
    PE_ERRK_USAGE     /* the request is wrong (e.g. a layer not in the file): exit 2 */
} pe_errkind;

typedef struct pe_err {
    pe_errkind kind;
    char msg[1024];
} pe_err;

/* Formats the message into e (when e is not NULL) and returns -1, so that
 * "return pe_fail(e, ...)" is the whole error path of a simple function. */
int pe_fail(pe_err *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Same, with kind PE_ERRK_USAGE. */
int pe_fail_usage(pe_err *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Allocates n * size bytes (zeroed when zero != 0); on overflow or exhaustion
 * fills e with the amount asked for and returns NULL.  Free with free(). */
void *pe_alloc(size_t n, size_t size, int zero, pe_err *e);

/* Like pe_alloc (not zeroed), for a large array read in strides (a head's
 * tokens x dims): aligned to 2 MiB and, where the kernel offers it,
 * backed by huge pages, so that walking its rows does not miss the TLB at
 * every page.  Free with free(). */
void *pe_alloc_big(size_t n, size_t size, pe_err *e);

/* Multiplies with overflow detection: returns 0 and sets *out, or -1. */
int pe_mul_size(size_t a, size_t b, size_t *out);

/* Human-readable byte count ("1.5 GiB") into buf; returns buf. */
const char *pe_format_bytes(double bytes, char *buf, size_t len);

/* Duplicates a string (NULL stays NULL); NULL with e filled on exhaustion. */
char *pe_strdup(const char *s, pe_err *e);

#endif
