/* pe_common.c: the error buffer and checked allocation (see pe_common.h). */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE (glibc) */
#include "pe_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int pe_vfail(pe_err *e, pe_errkind kind, const char *fmt, va_list ap)
{
    if (e) {
        e->kind = kind;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return -1;
}

int pe_fail(pe_err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pe_vfail(e, PE_ERRK_DATA, fmt, ap);
    va_end(ap);
    return -1;
}

int pe_fail_usage(pe_err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pe_vfail(e, PE_ERRK_USAGE, fmt, ap);
    va_end(ap);
    return -1;
}

int pe_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

const char *pe_format_bytes(double bytes, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 6) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

void *pe_alloc(size_t n, size_t size, int zero, pe_err *e)
{
    size_t bytes;
    char buf[32];
    if (pe_mul_size(n, size, &bytes) != 0) {
        pe_fail(e, "out of memory: %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    if (bytes == 0) bytes = 1;
    void *p = zero ? calloc(1, bytes) : malloc(bytes);
    if (!p) pe_fail(e, "out of memory (needs %s)", pe_format_bytes((double)bytes, buf, sizeof buf));
    return p;
}

void *pe_alloc_big(size_t n, size_t size, pe_err *e)
{
    const size_t huge = (size_t)2 << 20;
    size_t bytes;
    char buf[32];
    if (pe_mul_size(n, size, &bytes) != 0 || bytes > SIZE_MAX - huge) {
        pe_fail(e, "out of memory: %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    if (bytes < 2 * huge) return pe_alloc(n, size, 0, e);
    void *p = NULL;
    if (posix_memalign(&p, huge, (bytes + huge - 1) / huge * huge) != 0) {
        pe_fail(e, "out of memory (needs %s)", pe_format_bytes((double)bytes, buf, sizeof buf));
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    madvise(p, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
    return p;
}

char *pe_strdup(const char *s, pe_err *e)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = pe_alloc(n, 1, 0, e);
    if (d) memcpy(d, s, n);
    return d;
}
