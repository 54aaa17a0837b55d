/* pe_guard.h: the crash guard around the HDF5 library.
 *
 * HDF5 trusts the bytes of a file more than it should: a damaged file can
 * crash the library itself, or send it into an endless loop.  That must not
 * crash or hang a tool.  The guard turns both into one line naming the file
 * and the object being read, and exit status 1 (see qkdump(5), WHAT A READER
 * REFUSES).  Signals outside an HDF5 call keep their default action, so a bug
 * of ours still shows as a crash.
 *
 * Ownership: the guard owns the signal handlers of SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGABRT and SIGALRM once installed, the alarm while a file's
 * metadata is read, and one alternate signal stack per thread that calls
 * HDF5 (the main thread's is static; a worker's is freed when it ends).
 */
#ifndef PE_GUARD_H
#define PE_GUARD_H

/* Installs the crash guard: a fatal signal inside the HDF5 library (which a
 * damaged file can cause) prints "prog: FILE: object: the HDF5 library
 * crashed ..." and exits with status 1; and pe_dump_open stops a file whose
 * metadata HDF5 has not read after PE_HDF5_TIMEOUT seconds (default 30; an
 * endless loop on a damaged file) the same way, using SIGALRM.  Called once
 * by each tool's main before any thread starts; without it, signals keep
 * their default action and nothing is timed.  prog is borrowed for the
 * life of the process. */
void pe_dump_guard(const char *prog);

/* ---- internal to the reader modules (pe_h5.c, pe_dump.c) ---- */

/* Called by the HDF5 lock (pe_h5.h) once it is held: the calling thread is
 * about to call HDF5 on `file` (NULL: "HDF5"), object `what` (may be NULL).
 * Gives the thread its alternate signal stack on first use when the guard is
 * installed, and names file and object for the crash message. */
void pe_guard_enter(const char *file, const char *what);
/* Called before the HDF5 lock is released: the HDF5 call is over. */
void pe_guard_leave(void);

/* Starts the metadata alarm (PE_HDF5_TIMEOUT seconds, default 30, 0 = no
 * limit) when the guard is installed; returns the seconds set, 0 for none.
 * Called with the HDF5 lock held. */
unsigned pe_guard_timer_start(void);
/* Stops the alarm that pe_guard_timer_start returned `started` for (0:
 * nothing to stop). */
void pe_guard_timer_stop(unsigned started);

#endif
