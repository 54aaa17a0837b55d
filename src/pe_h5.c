/* pe_h5.c: the HDF5 lock and the small HDF5 helpers of the reader (see
 * pe_h5.h). */
#include "pe_h5.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe_dump.h"
#include "pe_guard.h"

/* Attribute strings longer than this are refused rather than allocated. */
#define PE_MAX_STRING (1u << 20)

static pthread_mutex_t pe_h5_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pe_h5_once = PTHREAD_ONCE_INIT;
static _Thread_local int pe_h5_quiet; /* this thread's HDF5 error printing is off */

static void pe_h5_init(void)
{
    /* The library's own error stack printing would break the one-line rule;
     * every failure is reported through pe_err instead. */
    H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void pe_h5_lock_for(const char *file, const char *what)
{
    pthread_once(&pe_h5_once, pe_h5_init);
    pthread_mutex_lock(&pe_h5_mutex);
    if (!pe_h5_quiet) {
        /* A thread-safe libhdf5 keeps its error printing per thread: a
         * worker's failed read would print HDF5's whole error stack. */
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        pe_h5_quiet = 1;
    }
    pe_guard_enter(file, what);
}

void pe_h5_unlock(void)
{
    pe_guard_leave();
    pthread_mutex_unlock(&pe_h5_mutex);
}

/* Declared in pe_dump.h, for the tools' --version. */
const char *pe_hdf5_version(void)
{
    static char buf[32];
    unsigned maj = 0, min = 0, rel = 0;
    pe_h5_lock_for(NULL, NULL);
    H5get_libversion(&maj, &min, &rel);
    pe_h5_unlock();
    snprintf(buf, sizeof buf, "%u.%u.%u", maj, min, rel);
    return buf;
}

void pe_h5_close(hid_t id)
{
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

/* 1 when loc has a link `name` that resolves to an object of kind `type`. */
int pe_h5_has(hid_t loc, const char *name, H5I_type_t type)
{
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return 0;
    if (H5Oexists_by_name(loc, name, H5P_DEFAULT) <= 0) return 0;
    hid_t o = H5Oopen(loc, name, H5P_DEFAULT);
    if (o < 0) return 0;
    int ok = H5Iget_type(o) == type;
    H5Oclose(o);
    return ok;
}

/* Opens attribute `name` of obj if it exists and holds exactly one value.
 * Returns the attribute (>= 0), 0-sized H5I_INVALID_HID when absent, or -2 for
 * a value that is not a single element. */
static hid_t attr_open_single(hid_t obj, const char *name, int *present)
{
    *present = 0;
    if (H5Aexists(obj, name) <= 0) return H5I_INVALID_HID;
    *present = 1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -2;
    hid_t sp = H5Aget_space(a);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (n != 1) {
        H5Aclose(a);
        return -2;
    }
    return a;
}

/* Reads an integer attribute.  Returns 1 if read, 0 if absent, -1 on error
 * (e filled with "where: name: ..."). */
int pe_h5_attr_int(hid_t obj, const char *where, const char *name, long long *out, pe_err *e)
{
    int present;
    hid_t a = attr_open_single(obj, name, &present);
    if (!present) return 0;
    if (a < 0) return pe_fail(e, "%s: %s: must be a single integer", where, name);
    hid_t t = H5Aget_type(a);
    int ok = t >= 0 && H5Tget_class(t) == H5T_INTEGER;
    if (t >= 0) H5Tclose(t);
    if (!ok) {
        H5Aclose(a);
        return pe_fail(e, "%s: %s: wrong kind: must be an integer", where, name);
    }
    long long v = 0;
    herr_t r = H5Aread(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    if (r < 0) return pe_fail(e, "%s: %s: cannot read the attribute", where, name);
    *out = v;
    return 1;
}

/* Reads a float attribute (integers are accepted too: h5py stores 10000 as
 * int64).  Same returns as pe_h5_attr_int. */
int pe_h5_attr_double(hid_t obj, const char *where, const char *name, double *out, pe_err *e)
{
    int present;
    hid_t a = attr_open_single(obj, name, &present);
    if (!present) return 0;
    if (a < 0) return pe_fail(e, "%s: %s: must be a single number", where, name);
    hid_t t = H5Aget_type(a);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (t >= 0) H5Tclose(t);
    if (c != H5T_FLOAT && c != H5T_INTEGER) {
        H5Aclose(a);
        return pe_fail(e, "%s: %s: wrong kind: must be a number", where, name);
    }
    double v = 0;
    herr_t r = H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    if (r < 0) return pe_fail(e, "%s: %s: cannot read the attribute", where, name);
    if (!isfinite(v)) return pe_fail(e, "%s: %s: must be finite", where, name);
    *out = v;
    return 1;
}

/* Reads a string attribute (fixed or variable length) into a new string.
 * Same returns as pe_h5_attr_int. */
int pe_h5_attr_string(hid_t obj, const char *where, const char *name, char **out, pe_err *e)
{
    int present, rc = -1;
    hid_t a = attr_open_single(obj, name, &present), ft = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    hid_t sp = H5I_INVALID_HID;
    char *s = NULL;
    if (!present) return 0;
    if (a < 0) return pe_fail(e, "%s: %s: must be a single string", where, name);
    ft = H5Aget_type(a);
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
        pe_fail(e, "%s: %s: wrong kind: must be a string", where, name);
        goto done;
    }
    mt = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(ft) > 0) {
        char *vs = NULL;
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        if (H5Aread(a, mt, &vs) < 0 || !vs) {
            pe_fail(e, "%s: %s: cannot read the attribute", where, name);
            goto done;
        }
        size_t n = strnlen(vs, PE_MAX_STRING + 1);
        if (n > PE_MAX_STRING) {
            H5free_memory(vs);
            pe_fail(e, "%s: %s: string longer than %u bytes", where, name, PE_MAX_STRING);
            goto done;
        }
        s = pe_strdup(vs, e);
        H5free_memory(vs);
        if (!s) goto done;
    } else {
        size_t n = H5Tget_size(ft);
        if (n == 0 || n > PE_MAX_STRING) {
            pe_fail(e, "%s: %s: string of unusable size %zu", where, name, n);
            goto done;
        }
        /* One more byte than stored, null-terminated: HDF5 then copies every
         * stored character and adds the terminator. */
        H5Tset_size(mt, n + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        H5Tset_cset(mt, H5Tget_cset(ft));
        if (!(s = pe_alloc(n + 1, 1, 1, e))) goto done;
        if (H5Aread(a, mt, s) < 0) {
            pe_fail(e, "%s: %s: cannot read the attribute", where, name);
            goto done;
        }
        s[n] = '\0';
        /* Space padding (Fortran style) is not part of the value. */
        size_t len = strlen(s);
        while (len > 0 && s[len - 1] == ' ') s[--len] = '\0';
    }
    *out = s;
    s = NULL;
    rc = 1;
done:
    free(s);
    pe_h5_close(sp);
    pe_h5_close(mt);
    pe_h5_close(ft);
    H5Aclose(a);
    return rc;
}

/* Reads the 1-D dataset `name` (under loc; `path` names it in messages) of
 * n_expect values as double into dout, or (want_int: an integer class) as
 * int64 into iout. */
int pe_h5_vector(hid_t loc, const char *name, const char *file, const char *path, size_t n_expect,
                 int want_int, double *dout, int64_t *iout, pe_err *e)
{
    int rc = -1;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT), sp = H5I_INVALID_HID, t = H5I_INVALID_HID;
    hsize_t dims[1];
    if (d < 0) return pe_fail(e, "%s: %s: cannot open the dataset", file, path);
    sp = H5Dget_space(d);
    t = H5Dget_type(d);
    if (sp < 0 || t < 0 || H5Sget_simple_extent_ndims(sp) != 1) {
        pe_fail(e, "%s: %s: must be one-dimensional", file, path);
        goto done;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    if (n_expect && dims[0] != n_expect) {
        pe_fail(e, "%s: %s: has %llu values, expected %zu", file, path,
                (unsigned long long)dims[0], n_expect);
        goto done;
    }
    H5T_class_t c = H5Tget_class(t);
    if (want_int ? c != H5T_INTEGER : (c != H5T_FLOAT && c != H5T_INTEGER)) {
        pe_fail(e, "%s: %s: wrong kind: must be %s", file, path,
                want_int ? "integers" : "numbers");
        goto done;
    }
    if (dims[0] > 0) {
        herr_t r = want_int ? H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, iout)
                            : H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, dout);
        if (r < 0) {
            pe_fail(e, "%s: %s: cannot read the dataset", file, path);
            goto done;
        }
    }
    rc = 0;
done:
    pe_h5_close(t);
    pe_h5_close(sp);
    H5Dclose(d);
    return rc;
}

/* Length of a 1-D dataset, to size the buffer before pe_h5_vector. */
int pe_h5_length(hid_t loc, const char *name, const char *file, const char *path, size_t *n, pe_err *e)
{
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT), sp;
    hsize_t dims[1];
    if (d < 0) return pe_fail(e, "%s: %s: cannot open the dataset", file, path);
    sp = H5Dget_space(d);
    int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1;
    if (ok) H5Sget_simple_extent_dims(sp, dims, NULL);
    pe_h5_close(sp);
    H5Dclose(d);
    if (!ok) return pe_fail(e, "%s: %s: must be one-dimensional", file, path);
    *n = (size_t)dims[0];
    return 0;
}
