/* pe_memory.c: the memory budget (see pe_memory.h). */
#include "pe_memory.h"

#include <stdio.h>
#include <unistd.h>

double pe_available_memory(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = 0;
    if (f) {
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
        }
        fclose(f);
    }
    if (kb > 0) return kb * 1024.0;
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0.0;
}

/* What the program and its libraries hold before any data (measured: about
 * 15 MB resident for a one-token file). */
#define PE_BASE_MEMORY (16.0 * 1024 * 1024)

int pe_memory_fits(double need, double max_memory, const char *what, pe_err *e)
{
    char a[32], b[32];
    double limit = max_memory > 0 ? max_memory : pe_available_memory();
    if (limit <= 0 || need <= limit) return 0;
    return pe_fail(e, "%s needs %s, more than the %s %s", what, pe_format_bytes(need, a, sizeof a),
                   pe_format_bytes(limit, b, sizeof b),
                   max_memory > 0 ? "allowed by --max-memory" : "available");
}

int pe_memory_check(double need, double max_memory, const char *what, pe_err *e)
{
    return pe_memory_fits(need + PE_BASE_MEMORY, max_memory, what, e);
}
