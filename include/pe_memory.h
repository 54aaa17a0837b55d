/* pe_memory.h: the memory budget: a run is refused before anything is
 * allocated when it would need more than the machine has available, or more
 * than --max-memory allows (the tools' man pages, --max-memory; for one head
 * of a file, qkdump(5), WHAT A READER REFUSES, Size).
 *
 * Nothing is allocated here and nothing is kept; pe_err is the caller's.
 */
#ifndef PE_MEMORY_H
#define PE_MEMORY_H

#include "pe_common.h"

/* Refuses, before anything is allocated, a run that needs `need` bytes (plus
 * 16 MiB for the program and its libraries) when that is more than
 * max_memory (when > 0) or the available memory: fills e with "WHAT needs N,
 * more than the M allowed by --max-memory" (or "available") and returns -1;
 * else 0.  Nothing is refused when the available memory is unknown. */
int pe_memory_check(double need, double max_memory, const char *what, pe_err *e);

/* The same test for exactly `need` bytes, nothing added: the reader's check
 * that one head fits. */
int pe_memory_fits(double need, double max_memory, const char *what, pe_err *e);

/* The machine's available memory in bytes (MemAvailable), or 0 if unknown. */
double pe_available_memory(void);

#endif
