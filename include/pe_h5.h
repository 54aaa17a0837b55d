/* pe_h5.h: the HDF5 library as the reader uses it: one process-wide lock
 * and small helpers.  Internal to the reader modules (pe_dump.c): the tools
 * read files through pe_dump.h and never call HDF5.  pe_h5.c also defines
 * pe_hdf5_version, which pe_dump.h declares for the tools.
 *
 * Threads: HDF5 is built without thread safety, so every HDF5 call in the
 * reader is made between pe_h5_lock_for and pe_h5_unlock, one thread at a
 * time; the crash guard (pe_guard.h) names the file and object held.  The
 * helpers below are called with the lock held.
 * Errors: the helpers fill e with "WHERE: NAME: what" (attributes) or
 * "FILE: PATH: what" (datasets), the messages of qkdump(5), WHAT A READER
 * REFUSES; HDF5's own error stack is never printed.
 * Ownership: identifiers passed in are borrowed; a string an attribute
 * reader returns is the caller's (free()).
 */
#ifndef PE_H5_H
#define PE_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "pe_common.h"

/* Takes the HDF5 lock, for HDF5 calls on `file` (NULL: "HDF5"), object
 * `what` (may be NULL): the names a crash message gives.  Initialises the
 * library on first use and turns its error printing off for this thread. */
void pe_h5_lock_for(const char *file, const char *what);
void pe_h5_unlock(void);

/* Closes an identifier of any kind; a negative one is ignored. */
void pe_h5_close(hid_t id);

/* 1 when loc has a link `name` that resolves to an object of kind `type`. */
int pe_h5_has(hid_t loc, const char *name, H5I_type_t type);

/* Attribute `name` of obj, which must hold exactly one value; `where` opens
 * the messages.  Each returns 1 if read, 0 if absent, -1 on error.
 * pe_h5_attr_double accepts integers too (h5py stores 10000 as int64) and
 * refuses non-finite values; pe_h5_attr_string reads fixed or variable
 * length strings (at most 1 MiB) into a new string, without the space
 * padding of fixed ones. */
int pe_h5_attr_int(hid_t obj, const char *where, const char *name, long long *out, pe_err *e);
int pe_h5_attr_double(hid_t obj, const char *where, const char *name, double *out, pe_err *e);
int pe_h5_attr_string(hid_t obj, const char *where, const char *name, char **out, pe_err *e);

/* Reads the 1-D dataset `name` (under loc; `path` names it in messages) of
 * n_expect values (0: any) as double into dout, or (want_int: an integer
 * class) as int64 into iout.  0 or -1. */
int pe_h5_vector(hid_t loc, const char *name, const char *file, const char *path, size_t n_expect,
                 int want_int, double *dout, int64_t *iout, pe_err *e);

/* Length of a 1-D dataset, to size the buffer before pe_h5_vector.  0 or -1. */
int pe_h5_length(hid_t loc, const char *name, const char *file, const char *path, size_t *n, pe_err *e);

#endif
