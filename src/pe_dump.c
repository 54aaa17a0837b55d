/* pe_dump.c: the qkdump v1 reader (see pe_dump.h and man/qkdump.5).
 *
 * Validation happens once, in pe_dump_open, so that the analysis code can
 * trust every field; reading a head is a hyperslab of one head, converted to
 * double outside the HDF5 lock. */
#include "pe_dump.h"
#include "pe_table.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* h5py's lzf filter: registered with HDF5 under this id, but only h5py ships
 * the code, so no C reader can decode it. */
#define PE_FILTER_LZF 32000
/* Attribute strings longer than this are refused rather than allocated. */
#define PE_MAX_STRING (1u << 20)

/* How a dataset's elements are converted to double. */
typedef enum {
    PE_ELEM_HDF5 = 0, /* let HDF5 convert (any other float type) */
    PE_ELEM_F16,      /* IEEE half, little-endian */
    PE_ELEM_BF16,     /* bfloat16, little-endian */
    PE_ELEM_F32,      /* native float */
    PE_ELEM_F64       /* native double */
} pe_elem;

typedef struct pe_dset {
    int present;
    pe_elem elem;
    size_t itemsize; /* bytes per stored element */
    char dtype[32];  /* "float16", "bfloat16", "float32", "float64", "float<bits>" */
} pe_dset;

/* Per layer slot: what the four tensors are made of. */
typedef struct pe_layer_sets {
    pe_dset plain[2]; /* q, k */
    pe_dset rot[2];   /* q_rot, k_rot */
} pe_layer_sets;

struct pe_dump {
    char *path;
    hid_t file;
    pe_meta meta;
    pe_layer_sets *sets; /* meta.n_layers */
};

static pthread_mutex_t pe_h5_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pe_h5_once = PTHREAD_ONCE_INIT;

static void pe_h5_init(void)
{
    /* The library's own error stack printing would break the one-line rule;
     * every failure is reported through pe_err instead. */
    H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* ---- the crash guard ----
 * HDF5 trusts the bytes of a file more than it should: a damaged file can
 * crash the library itself (its fuzzing history is long).  That must not
 * crash a tool.  Every HDF5 call runs under pe_h5_lock, one at a time, with
 * pe_h5_doing naming the file and object; a fatal signal inside it prints one
 * line naming them and ends the tool with status 1.  Signals anywhere else
 * keep their default action, so a bug of ours still shows as a crash. */
static const char *pe_guard_prog;
static char pe_h5_doing[1200];
static volatile sig_atomic_t pe_in_hdf5;
static _Thread_local int pe_has_altstack;
static _Thread_local int pe_h5_quiet; /* this thread's HDF5 error printing is off */

static void put_err(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) break;
        s += w;
        n -= (size_t)w;
    }
}

/* Reading a file's metadata takes milliseconds; a damaged file can send
 * HDF5 into an endless loop instead.  While pe_dump_open reads metadata, an
 * alarm ends the tool after this many seconds (PE_HDF5_TIMEOUT overrides). */
#define PE_METADATA_TIMEOUT 30
static volatile sig_atomic_t pe_in_metadata;

static void crash_handler(int sig)
{
    if (sig == SIGALRM && !pe_in_metadata) return; /* a late alarm: harmless */
    if (!pe_in_hdf5 && sig != SIGALRM) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    put_err(pe_guard_prog);
    put_err(": ");
    put_err(pe_h5_doing);
    put_err(sig == SIGALRM ? ": the HDF5 library did not finish reading the file's metadata in time "
                             "(the file is damaged, or set PE_HDF5_TIMEOUT)\n"
                           : ": the HDF5 library crashed reading this file (it is damaged, or beyond what "
                             "HDF5 can read)\n");
    pe_output_abandon_all(); /* no half-written -o file stays behind */
    _exit(1);
}

/* Seconds allowed for one file's metadata (0: no limit). */
static unsigned metadata_timeout(void)
{
    const char *v = getenv("PE_HDF5_TIMEOUT");
    char *end;
    if (!v || !*v) return PE_METADATA_TIMEOUT;
    unsigned long n = strtoul(v, &end, 10);
    return *end || n > 86400 ? PE_METADATA_TIMEOUT : (unsigned)n;
}

/* Each thread that calls HDF5 needs a signal stack of its own, once, unless
 * it has one already (sanitizers install theirs).  The main thread's is
 * static; a worker's is freed by a key destructor when the thread ends, after
 * the stack is switched off. */
static char pe_main_altstack[1 << 16];
static pthread_t pe_main_thread;
static pthread_key_t pe_altstack_key;
static pthread_once_t pe_altstack_once = PTHREAD_ONCE_INIT;

static void free_altstack(void *p)
{
    stack_t off;
    memset(&off, 0, sizeof off);
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, NULL);
    free(p);
}

static void make_altstack_key(void)
{
    pthread_key_create(&pe_altstack_key, free_altstack);
}

static void install_altstack(void)
{
    stack_t cur, ss;
    pe_has_altstack = 1; /* one try per thread, whatever happens */
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) return;
    memset(&ss, 0, sizeof ss);
    ss.ss_size = sizeof pe_main_altstack;
    if (pthread_equal(pthread_self(), pe_main_thread)) {
        ss.ss_sp = pe_main_altstack;
        sigaltstack(&ss, NULL);
        return;
    }
    pthread_once(&pe_altstack_once, make_altstack_key);
    if (!(ss.ss_sp = malloc(ss.ss_size))) return;
    if (sigaltstack(&ss, NULL) != 0 || pthread_setspecific(pe_altstack_key, ss.ss_sp) != 0) free_altstack(ss.ss_sp);
}

void pe_dump_guard(const char *prog)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_ONSTACK; /* a stack overflow needs another stack */
    sigemptyset(&sa.sa_mask);
    pe_guard_prog = prog;
    pe_main_thread = pthread_self();
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

static void h5_lock_for(const char *file, const char *what)
{
    pthread_once(&pe_h5_once, pe_h5_init);
    pthread_mutex_lock(&pe_h5_lock);
    if (pe_guard_prog && !pe_has_altstack) install_altstack();
    if (!pe_h5_quiet) {
        /* A thread-safe libhdf5 keeps its error printing per thread: a
         * worker's failed read would print HDF5's whole error stack. */
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        pe_h5_quiet = 1;
    }
    snprintf(pe_h5_doing, sizeof pe_h5_doing, "%s%s%s", file ? file : "HDF5", what ? ": " : "", what ? what : "");
    pe_in_hdf5 = 1;
}

static void h5_lock(void)
{
    h5_lock_for(NULL, NULL);
}

static void h5_unlock(void)
{
    pe_in_hdf5 = 0;
    pthread_mutex_unlock(&pe_h5_lock);
}

const char *pe_hdf5_version(void)
{
    static char buf[32];
    unsigned maj = 0, min = 0, rel = 0;
    h5_lock();
    H5get_libversion(&maj, &min, &rel);
    h5_unlock();
    snprintf(buf, sizeof buf, "%u.%u.%u", maj, min, rel);
    return buf;
}

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

int pe_memory_check(double need, double max_memory, const char *what, pe_err *e)
{
    char a[32], b[32];
    need += PE_BASE_MEMORY;
    double limit = max_memory > 0 ? max_memory : pe_available_memory();
    if (limit <= 0 || need <= limit) return 0;
    return pe_fail(e, "%s needs %s, more than the %s %s", what, pe_format_bytes(need, a, sizeof a),
                   pe_format_bytes(limit, b, sizeof b),
                   max_memory > 0 ? "allowed by --max-memory" : "available");
}

/* ---- small HDF5 helpers (called with the lock held) ---- */

static void h5_close_id(hid_t id)
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
static int h5_has(hid_t loc, const char *name, H5I_type_t type)
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
static int attr_int(hid_t obj, const char *where, const char *name, long long *out, pe_err *e)
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
 * int64).  Same returns as attr_int. */
static int attr_double(hid_t obj, const char *where, const char *name, double *out, pe_err *e)
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
 * Same returns as attr_int. */
static int attr_string(hid_t obj, const char *where, const char *name, char **out, pe_err *e)
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
    h5_close_id(sp);
    h5_close_id(mt);
    h5_close_id(ft);
    H5Aclose(a);
    return rc;
}

/* Reads the 1-D dataset `name` (under loc; `path` names it in messages) of
 * n_expect values as double into dout, or (want_int: an integer class) as
 * int64 into iout. */
static int dset_vector(hid_t loc, const char *name, const char *file, const char *path,
                       size_t n_expect, int want_int, double *dout, int64_t *iout, pe_err *e)
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
    h5_close_id(t);
    h5_close_id(sp);
    H5Dclose(d);
    return rc;
}

/* Length of a 1-D dataset, to size the buffer before dset_vector. */
static int dset_length(hid_t loc, const char *name, const char *file, const char *path, size_t *n,
                       pe_err *e)
{
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT), sp;
    hsize_t dims[1];
    if (d < 0) return pe_fail(e, "%s: %s: cannot open the dataset", file, path);
    sp = H5Dget_space(d);
    int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1;
    if (ok) H5Sget_simple_extent_dims(sp, dims, NULL);
    h5_close_id(sp);
    H5Dclose(d);
    if (!ok) return pe_fail(e, "%s: %s: must be one-dimensional", file, path);
    *n = (size_t)dims[0];
    return 0;
}

/* Classifies a float type for fast conversion; fills the dtype name. */
static pe_elem classify_float(hid_t t, size_t *itemsize, char *name, size_t len)
{
    size_t size = H5Tget_size(t);
    size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
    H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize);
    size_t ebias = H5Tget_ebias(t);
    int le = H5Tget_order(t) == H5T_ORDER_LE;
    int off0 = H5Tget_offset(t) == 0;
    *itemsize = size;
    if (size == 2 && le && off0 && spos == 15 && epos == 10 && esize == 5 && mpos == 0 &&
        msize == 10 && ebias == 15) {
        snprintf(name, len, "float16");
        return PE_ELEM_F16;
    }
    if (size == 2 && le && off0 && spos == 15 && epos == 7 && esize == 8 && mpos == 0 &&
        msize == 7 && ebias == 127) {
        snprintf(name, len, "bfloat16");
        return PE_ELEM_BF16;
    }
    if (H5Tequal(t, H5T_NATIVE_FLOAT) > 0) {
        snprintf(name, len, "float32");
        return PE_ELEM_F32;
    }
    if (H5Tequal(t, H5T_NATIVE_DOUBLE) > 0) {
        snprintf(name, len, "float64");
        return PE_ELEM_F64;
    }
    snprintf(name, len, "float%zu", size * 8);
    return PE_ELEM_HDF5;
}

/* Checks a layer's q/k (or q_rot/k_rot) dataset: rank, shape, element kind,
 * filters.  Returns 0 and fills ds, or -1. */
static int check_tensor(hid_t g, const char *file, const char *lname, const char *dname,
                        hsize_t heads, const pe_meta *m, hsize_t *T_seen, pe_dset *ds, pe_err *e)
{
    int rc = -1;
    hid_t d = H5Dopen2(g, dname, H5P_DEFAULT), sp = H5I_INVALID_HID, t = H5I_INVALID_HID;
    hid_t dcpl = H5I_INVALID_HID;
    hsize_t dims[3];
    if (d < 0) return pe_fail(e, "%s: /layers/%s/%s: cannot open the dataset", file, lname, dname);
    sp = H5Dget_space(d);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank != 3) {
        pe_fail(e, "%s: /layers/%s/%s: must have 3 dimensions [heads, T, head_dim], has %d", file,
                lname, dname, rank);
        goto done;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    if (dims[0] != heads || dims[2] != (hsize_t)m->head_dim ||
        (*T_seen && dims[1] != *T_seen)) {
        if (*T_seen)
            pe_fail(e, "%s: /layers/%s/%s: shape [%llu, %llu, %llu], expected [%llu, %llu, %d]", file,
                    lname, dname, (unsigned long long)dims[0], (unsigned long long)dims[1],
                    (unsigned long long)dims[2], (unsigned long long)heads,
                    (unsigned long long)*T_seen, m->head_dim);
        else
            pe_fail(e, "%s: /layers/%s/%s: shape [%llu, %llu, %llu], expected [%llu, T, %d]", file,
                    lname, dname, (unsigned long long)dims[0], (unsigned long long)dims[1],
                    (unsigned long long)dims[2], (unsigned long long)heads, m->head_dim);
        goto done;
    }
    if (dims[1] == 0) {
        pe_fail(e, "%s: /layers/%s/%s: T is 0 (no tokens)", file, lname, dname);
        goto done;
    }
    *T_seen = dims[1];
    t = H5Dget_type(d);
    if (t < 0 || H5Tget_class(t) != H5T_FLOAT) {
        pe_fail(e, "%s: /layers/%s/%s: wrong kind: must hold floating-point values", file, lname,
                dname);
        goto done;
    }
    ds->present = 1;
    ds->elem = classify_float(t, &ds->itemsize, ds->dtype, sizeof ds->dtype);
    dcpl = H5Dget_create_plist(d);
    int nf = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0;
    for (int i = 0; i < nf; i++) {
        unsigned flags = 0, cd[8];
        size_t ncd = 8;
        char fname[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname, NULL);
        if (id == PE_FILTER_LZF) {
            pe_fail(e, "%s: /layers/%s/%s: compressed with h5py's lzf filter, which petools cannot "
                       "read; re-save it with gzip (see qkdump(5))", file, lname, dname);
            goto done;
        }
        if (id < 0 || H5Zfilter_avail(id) <= 0) {
            pe_fail(e, "%s: /layers/%s/%s: uses HDF5 filter %d, which this HDF5 cannot decode",
                    file, lname, dname, (int)id);
            goto done;
        }
    }
    rc = 0;
done:
    h5_close_id(dcpl);
    h5_close_id(t);
    h5_close_id(sp);
    H5Dclose(d);
    return rc;
}

static int check_theta(const double *th, int n, const char *file, const char *path, pe_err *e)
{
    for (int i = 0; i < n; i++) {
        if (!isfinite(th[i])) return pe_fail(e, "%s: %s: value %d is not finite", file, path, i);
        if (th[i] < 0) return pe_fail(e, "%s: %s: value %d is negative (%.9g)", file, path, i, th[i]);
    }
    return 0;
}

/* Collects the names of the links under /layers (H5Literate callback). */
typedef struct name_list {
    char **names;
    size_t n, cap;
    int failed;
} name_list;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    name_list *l = data;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **nn = realloc(l->names, cap * sizeof *nn);
        if (!nn) {
            l->failed = 1;
            return -1;
        }
        l->names = nn;
        l->cap = cap;
    }
    if (!(l->names[l->n] = pe_strdup(name, NULL))) {
        l->failed = 1;
        return -1;
    }
    l->n++;
    return 0;
}

/* Layers are kept in index order; the private tensor facts move with them. */
typedef struct layer_slot {
    pe_layer_info info;
    pe_layer_sets sets;
} layer_slot;

static int cmp_slot(const void *a, const void *b)
{
    const layer_slot *x = a, *y = b;
    return (x->info.index > y->info.index) - (x->info.index < y->info.index);
}

static int sort_layers(pe_layer_info *info, pe_layer_sets *sets, size_t n, pe_err *e)
{
    layer_slot *tmp = pe_alloc(n, sizeof *tmp, 0, e);
    if (!tmp) return -1;
    for (size_t i = 0; i < n; i++) {
        tmp[i].info = info[i];
        tmp[i].sets = sets[i];
    }
    qsort(tmp, n, sizeof *tmp, cmp_slot);
    for (size_t i = 0; i < n; i++) {
        info[i] = tmp[i].info;
        sets[i] = tmp[i].sets;
    }
    free(tmp);
    return 0;
}

/* Reads /layers: every group, its index, rope flag, frequencies and tensors. */
static int read_layers(pe_dump *d, pe_err *e)
{
    pe_meta *m = &d->meta;
    const char *file = d->path;
    name_list names = {0};
    hsize_t T_seen = m->T;
    hid_t lg = H5I_INVALID_HID;
    int rc = -1;

    if (!h5_has(d->file, "layers", H5I_GROUP)) return pe_fail(e, "%s: /layers: missing (no layers)", file);
    lg = H5Gopen2(d->file, "layers", H5P_DEFAULT);
    if (lg < 0) return pe_fail(e, "%s: /layers: cannot open the group", file);
    if (H5Literate(lg, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &names) < 0 || names.failed) {
        pe_fail(e, "%s: /layers: cannot list the group", file);
        goto done;
    }
    m->layers = pe_alloc(names.n ? names.n : 1, sizeof *m->layers, 1, e);
    d->sets = pe_alloc(names.n ? names.n : 1, sizeof *d->sets, 1, e);
    if (!m->layers || !d->sets) goto done;

    for (size_t i = 0; i < names.n; i++) {
        const char *nm = names.names[i];
        char where[128];
        if (!h5_has(lg, nm, H5I_GROUP)) continue; /* unknown objects are ignored */
        pe_layer_info *L = &m->layers[m->n_layers];
        pe_layer_sets *S = &d->sets[m->n_layers];
        snprintf(L->name, sizeof L->name, "%s", nm);
        snprintf(where, sizeof where, "%s: /layers/%s", file, nm);
        hid_t g = H5Gopen2(lg, nm, H5P_DEFAULT);
        if (g < 0) {
            pe_fail(e, "%s: cannot open the group", where);
            goto done;
        }
        long long idx = 0, rope = 1;
        int r = attr_int(g, where, "index", &idx, e);
        if (r == 0) {
            /* No index attribute: the zero-padded name is the number. */
            char *end;
            errno = 0;
            idx = strtoll(nm, &end, 10);
            if (errno || end == nm || *end || idx < 0) {
                pe_fail(e, "%s: index: missing, and the group name is not a layer number", where);
                r = -1;
            }
        } else if (r > 0 && (idx < 0 || idx > 1000000000LL)) {
            pe_fail(e, "%s: index: must be a layer number >= 0 (got %lld)", where, idx);
            r = -1;
        }
        if (r >= 0) r = attr_int(g, where, "rope", &rope, e);
        if (r >= 0 && rope != 0 && rope != 1) {
            pe_fail(e, "%s: rope: must be 0 or 1 (got %lld)", where, rope);
            r = -1;
        }
        L->index = (long)idx;
        L->rope = (int)rope;
        int hq = r >= 0 && h5_has(g, "q", H5I_DATASET), hk = r >= 0 && h5_has(g, "k", H5I_DATASET);
        int hqr = r >= 0 && h5_has(g, "q_rot", H5I_DATASET);
        int hkr = r >= 0 && h5_has(g, "k_rot", H5I_DATASET);
        if (r >= 0 && hq)
            r = check_tensor(g, file, nm, "q", (hsize_t)m->n_heads, m, &T_seen, &S->plain[0], e);
        if (r >= 0 && hk)
            r = check_tensor(g, file, nm, "k", (hsize_t)m->n_kv_heads, m, &T_seen, &S->plain[1], e);
        if (r >= 0 && hqr)
            r = check_tensor(g, file, nm, "q_rot", (hsize_t)m->n_heads, m, &T_seen, &S->rot[0], e);
        if (r >= 0 && hkr)
            r = check_tensor(g, file, nm, "k_rot", (hsize_t)m->n_kv_heads, m, &T_seen, &S->rot[1], e);
        L->has_plain = hq && hk;
        L->has_rot = hqr && hkr;
        if (r >= 0 && !L->has_plain && !L->has_rot) {
            pe_fail(e, "%s: needs q and k, or q_rot and k_rot", where);
            r = -1;
        }
        if (r >= 0 && !(L->theta = pe_alloc(m->n_pairs ? (size_t)m->n_pairs : 1, sizeof(double), 1, e)))
            r = -1;
        if (r >= 0 && h5_has(g, "inv_freq", H5I_DATASET)) {
            char path[160];
            size_t n = 0;
            snprintf(path, sizeof path, "/layers/%s/inv_freq", nm);
            r = dset_length(g, "inv_freq", file, path, &n, e);
            if (r >= 0 && n != (size_t)m->n_pairs) {
                pe_fail(e, "%s: %s: has %zu values, expected rotary_dim/2 = %d", file, path, n,
                        m->n_pairs);
                r = -1;
            }
            if (r >= 0 && n > 0) r = dset_vector(g, "inv_freq", file, path, n, 0, L->theta, NULL, e);
            if (r >= 0) r = check_theta(L->theta, m->n_pairs, file, path, e);
            L->own_theta = 1;
        } else if (r >= 0) {
            memcpy(L->theta, m->theta, (size_t)m->n_pairs * sizeof(double));
        }
        if (r >= 0 && !L->rope) memset(L->theta, 0, (size_t)m->n_pairs * sizeof(double));
        H5Gclose(g);
        if (r < 0) {
            free(L->theta);
            L->theta = NULL;
            goto done;
        }
        m->n_layers++;
    }
    if (m->n_layers == 0) {
        pe_fail(e, "%s: /layers: holds no layer groups (no layers)", file);
        goto done;
    }
    if (sort_layers(m->layers, d->sets, m->n_layers, e) < 0) goto done;
    for (size_t i = 1; i < m->n_layers; i++) {
        if (m->layers[i].index == m->layers[i - 1].index) {
            pe_fail(e, "%s: /layers/%s: index %ld repeats /layers/%s", file, m->layers[i].name,
                    m->layers[i].index, m->layers[i - 1].name);
            goto done;
        }
    }
    m->T = (size_t)T_seen;
    rc = 0;
done:
    for (size_t i = 0; i < names.n; i++) free(names.names[i]);
    free(names.names);
    h5_close_id(lg);
    return rc;
}

static int read_root(pe_dump *d, const pe_open_opts *opts, pe_err *e)
{
    pe_meta *m = &d->meta;
    const char *file = d->path;
    char *s = NULL;
    long long v = 0;
    int r;

    /* format and version first: anything else is not ours to judge. */
    r = attr_string(d->file, file, "format", &s, e);
    if (r < 0) return -1;
    if (r == 0) return pe_fail(e, "%s: format: missing required attribute (not a qkdump file)", file);
    if (strcmp(s, "qkdump") != 0) {
        pe_fail(e, "%s: format: is '%.40s', not 'qkdump'", file, s);
        free(s);
        return -1;
    }
    free(s);
    s = NULL;
    r = attr_int(d->file, file, "format_version", &v, e);
    if (r < 0) return -1;
    if (r == 0) return pe_fail(e, "%s: format_version: missing required attribute", file);
    if (v != 1) return pe_fail(e, "%s: format_version: is %lld; this reader knows version 1", file, v);

    static const char *const req[] = {"n_heads", "n_kv_heads", "head_dim"};
    long long val[3];
    for (int i = 0; i < 3; i++) {
        r = attr_int(d->file, file, req[i], &val[i], e);
        if (r < 0) return -1;
        if (r == 0) return pe_fail(e, "%s: %s: missing required attribute", file, req[i]);
        if (val[i] <= 0) return pe_fail(e, "%s: %s: must be positive (got %lld)", file, req[i], val[i]);
        if (val[i] > 1000000)
            return pe_fail(e, "%s: %s: %lld is beyond what this reader accepts (1000000)", file, req[i], val[i]);
    }
    m->n_heads = (int)val[0];
    m->n_kv_heads = (int)val[1];
    m->head_dim = (int)val[2];
    if (m->n_heads % m->n_kv_heads != 0)
        return pe_fail(e, "%s: n_kv_heads: %d does not divide n_heads %d", file, m->n_kv_heads,
                       m->n_heads);

    v = m->head_dim;
    if ((r = attr_int(d->file, file, "rotary_dim", &v, e)) < 0) return -1;
    if (v < 0 || v > m->head_dim || v % 2 != 0)
        return pe_fail(e, "%s: rotary_dim: must be even and within [0, head_dim %d] (got %lld)", file,
                       m->head_dim, v);
    m->rotary_dim = (int)v;
    m->n_pairs = m->rotary_dim / 2;

    m->rope_theta = 10000.0;
    if (attr_double(d->file, file, "rope_theta", &m->rope_theta, e) < 0) return -1;
    if (!(m->rope_theta > 0)) return pe_fail(e, "%s: rope_theta: must be positive", file);

    r = attr_string(d->file, file, "rope_pairing", &s, e);
    if (r < 0) return -1;
    if (r > 0) {
        pe_pairing p;
        if (pe_pairing_parse(s, &p) != 0) {
            pe_fail(e, "%s: rope_pairing: is '%.40s', must be 'half' or 'interleaved'", file, s);
            free(s);
            return -1;
        }
        m->pairing = p;
        free(s);
        s = NULL;
    } else if (m->rotary_dim > 0 && opts->pairing_override < 0) {
        return pe_fail(e, "%s: rope_pairing: missing (required when rotary_dim > 0; or give --pairing)",
                       file);
    }
    if (opts->pairing_override >= 0) m->pairing = (pe_pairing)opts->pairing_override;

    v = 0;
    if ((r = attr_int(d->file, file, "train_len", &v, e)) < 0) return -1;
    if (v < 0) return pe_fail(e, "%s: train_len: must be >= 0 (got %lld)", file, v);
    m->train_len = (long)v;

    m->attn_scale = 1.0 / sqrt((double)m->head_dim);
    if (attr_double(d->file, file, "attn_scale", &m->attn_scale, e) < 0) return -1;
    m->attn_softcap = 0;
    if (attr_double(d->file, file, "attn_softcap", &m->attn_softcap, e) < 0) return -1;
    if (m->attn_softcap < 0) return pe_fail(e, "%s: attn_softcap: must be >= 0", file);

    if (attr_string(d->file, file, "model", &m->model, e) < 0) return -1;
    if (attr_string(d->file, file, "source_dtype", &m->source_dtype, e) < 0) return -1;
    if (attr_string(d->file, file, "rope_scaling", &m->rope_scaling, e) < 0) return -1;
    if (attr_string(d->file, file, "created_by", &m->created_by, e) < 0) return -1;

    /* Frequencies: /rope/inv_freq, else from the base. */
    m->theta = pe_alloc(m->n_pairs ? (size_t)m->n_pairs : 1, sizeof(double), 1, e);
    if (!m->theta) return -1;
    if (h5_has(d->file, "rope/inv_freq", H5I_DATASET)) {
        size_t n = 0;
        if (dset_length(d->file, "rope/inv_freq", file, "/rope/inv_freq", &n, e) < 0) return -1;
        if (n != (size_t)m->n_pairs)
            return pe_fail(e, "%s: /rope/inv_freq: has %zu values, expected rotary_dim/2 = %d", file, n,
                           m->n_pairs);
        if (n && dset_vector(d->file, "rope/inv_freq", file, "/rope/inv_freq", n, 0, m->theta, NULL, e) < 0)
            return -1;
        if (check_theta(m->theta, m->n_pairs, file, "/rope/inv_freq", e) < 0) return -1;
        m->theta_from_file = 1;
    } else {
        pe_rope_default_theta(m->rope_theta, m->rotary_dim, m->theta);
    }
    return 0;
}

static int read_positions(pe_dump *d, pe_err *e)
{
    pe_meta *m = &d->meta;
    const char *file = d->path;
    m->positions = pe_alloc(m->T, sizeof(int64_t), 0, e);
    if (!m->positions) return -1;
    if (h5_has(d->file, "tokens/positions", H5I_DATASET)) {
        size_t n = 0;
        if (dset_length(d->file, "tokens/positions", file, "/tokens/positions", &n, e) < 0) return -1;
        if (n != m->T)
            return pe_fail(e, "%s: /tokens/positions: has %zu values, expected T = %zu", file, n, m->T);
        if (dset_vector(d->file, "tokens/positions", file, "/tokens/positions", m->T, 1, NULL,
                        m->positions, e) < 0)
            return -1;
    } else {
        for (size_t i = 0; i < m->T; i++) m->positions[i] = (int64_t)i;
    }
    m->contiguous = 1;
    for (size_t i = 1; i < m->T; i++) {
        if (m->positions[i] <= m->positions[i - 1])
            return pe_fail(e, "%s: /tokens/positions: not strictly increasing at token %zu (%lld after %lld)",
                           file, i, (long long)m->positions[i], (long long)m->positions[i - 1]);
        if (m->positions[i] != m->positions[i - 1] + 1) m->contiguous = 0;
    }
    /* Distances index arrays: their span must be a size the machine can hold. */
    double span = (double)m->positions[m->T - 1] - (double)m->positions[0];
    if (span >= 4503599627370496.0) /* 2^52 */
        return pe_fail(e, "%s: /tokens/positions: span %.0f is too large", file, span);
    return 0;
}

/* Reads one recorded loss vector (/tokens/nll or /tokens/nll_control):
 * floats, one per token; NaN means "no loss here" (the last token has no
 * next one), an infinite value is refused. */
static int read_loss(pe_dump *d, const char *name, double **out, pe_err *e)
{
    const pe_meta *m = &d->meta;
    char path[64];
    snprintf(path, sizeof path, "/%s", name);
    if (H5Lexists(d->file, name, H5P_DEFAULT) <= 0) return 0;
    if (!h5_has(d->file, name, H5I_DATASET)) return pe_fail(e, "%s: %s: must be a dataset", d->path, path);
    size_t n = 0;
    if (dset_length(d->file, name, d->path, path, &n, e) < 0) return -1;
    if (n != m->T) return pe_fail(e, "%s: %s: has %zu values, expected T = %zu", d->path, path, n, m->T);
    hid_t ds = H5Dopen2(d->file, name, H5P_DEFAULT), t = ds >= 0 ? H5Dget_type(ds) : H5I_INVALID_HID;
    int is_float = t >= 0 && H5Tget_class(t) == H5T_FLOAT;
    h5_close_id(t);
    h5_close_id(ds);
    if (!is_float) return pe_fail(e, "%s: %s: wrong kind: must be floats (nats)", d->path, path);
    if (!(*out = pe_alloc(m->T, sizeof **out, 0, e))) return -1;
    if (dset_vector(d->file, name, d->path, path, m->T, 0, *out, NULL, e) < 0) return -1;
    for (size_t i = 0; i < m->T; i++)
        if (isinf((*out)[i])) return pe_fail(e, "%s: %s: token %zu: infinite value", d->path, path, i);
    return 1;
}

/* "window:W:S" with W >= 1 and S >= 0, nothing else. */
static int parse_control(const char *s, long *w, long *sinks)
{
    char *end;
    if (strncmp(s, "window:", 7) != 0 || !(s[7] >= '0' && s[7] <= '9')) return -1;
    errno = 0;
    long a = strtol(s + 7, &end, 10);
    if (errno || *end != ':' || a < 1 || !(end[1] >= '0' && end[1] <= '9')) return -1;
    long b = strtol(end + 1, &end, 10);
    if (errno || *end || b < 0) return -1;
    *w = a;
    *sinks = b;
    return 0;
}

/* The ground truth: /tokens/nll with its `pe`, /tokens/nll_control with its
 * `control` (man qkdump(5)). */
static int read_truth(pe_dump *d, pe_err *e)
{
    pe_meta *m = &d->meta;
    int r = read_loss(d, "tokens/nll", &m->nll, e);
    if (r < 0) return -1;
    if (r > 0) {
        hid_t ds = H5Dopen2(d->file, "tokens/nll", H5P_DEFAULT);
        char where[1100];
        snprintf(where, sizeof where, "%s: /tokens/nll", d->path);
        r = ds >= 0 ? attr_string(ds, where, "pe", &m->nll_pe, e) : 0;
        H5Dclose(ds);
        if (r < 0) return -1;
        if (!m->nll_pe && !(m->nll_pe = pe_strdup("rope", e))) return -1;
    }
    if ((r = read_loss(d, "tokens/nll_control", &m->nll_control, e)) <= 0) return r;
    hid_t ds = H5Dopen2(d->file, "tokens/nll_control", H5P_DEFAULT);
    char where[1100], *ctl = NULL;
    snprintf(where, sizeof where, "%s: /tokens/nll_control", d->path);
    r = ds >= 0 ? attr_string(ds, where, "control", &ctl, e) : 0;
    H5Dclose(ds);
    if (r < 0) return -1;
    if (r == 0) return pe_fail(e, "%s: control: missing (the control pass's window:W:S)", where);
    if (parse_control(ctl, &m->control_window, &m->control_sinks) < 0) {
        pe_fail(e, "%s: control: '%.40s' is not window:W:S (W >= 1, S >= 0)", where, ctl);
        free(ctl);
        return -1;
    }
    free(ctl);
    return 0;
}

/* Refuses shapes whose single head does not fit in memory (q and k of one
 * head in double are the least any tool holds). */
static int check_memory(pe_dump *d, const pe_open_opts *opts, pe_err *e)
{
    const pe_meta *m = &d->meta;
    size_t td, bytes;
    char need[32], have[32];
    if (pe_mul_size(m->T, (size_t)m->head_dim, &td) || pe_mul_size(td, 2 * sizeof(double), &bytes))
        return pe_fail(e, "%s: shape: T %zu x head_dim %d overflows", d->path, m->T, m->head_dim);
    double limit = opts->max_memory > 0 ? opts->max_memory : pe_available_memory();
    if (limit > 0 && (double)bytes > limit)
        return pe_fail(e, "%s: shape: one head of T %zu x head_dim %d needs %s, more than the %s %s",
                       d->path, m->T, m->head_dim, pe_format_bytes((double)bytes, need, sizeof need),
                       pe_format_bytes(limit, have, sizeof have),
                       opts->max_memory > 0 ? "allowed by --max-memory" : "available");
    return 0;
}

static void meta_free(pe_meta *m)
{
    free(m->model);
    free(m->source_dtype);
    free(m->rope_scaling);
    free(m->created_by);
    free(m->positions);
    free(m->theta);
    free(m->nll);
    free(m->nll_control);
    free(m->nll_pe);
    for (size_t i = 0; i < m->n_layers; i++) free(m->layers[i].theta);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

void pe_dump_close(pe_dump *d)
{
    if (!d) return;
    if (d->file >= 0) {
        h5_lock_for(d->path, NULL);
        H5Fclose(d->file);
        h5_unlock();
    }
    meta_free(&d->meta);
    free(d->sets);
    free(d->path);
    free(d);
}

/* Validates an opened file (fapl: how to open it; image: an in-memory
 * file, or NULL for the file at path).  The lock is taken here. */
static pe_dump *open_validated(const char *path, const void *image, size_t image_len,
                               const pe_open_opts *opts, pe_err *e)
{
    static const pe_open_opts def = PE_OPEN_OPTS_DEFAULT;
    pe_dump *d;
    if (!opts) opts = &def;
    if (!(d = pe_alloc(1, sizeof *d, 1, e))) return NULL;
    d->file = H5I_INVALID_HID;
    if (!(d->path = pe_strdup(path, e))) goto fail;

    h5_lock_for(path, NULL);
    /* The alarm only where the guard is installed (a tool's main thread). */
    unsigned limit = pe_guard_prog ? metadata_timeout() : 0;
    if (limit) {
        pe_in_metadata = 1;
        alarm(limit);
    }
    int ok = 0;
    hid_t fapl = H5I_INVALID_HID;
    if (image) {
        /* The core driver over a caller's buffer: nothing touches the disk. */
        fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 16, 0) < 0 ||
            H5Pset_file_image(fapl, (void *)image, image_len) < 0) {
            pe_fail(e, "%s: cannot set up an in-memory HDF5 image", path);
            goto unlock;
        }
    }
    if (!image && H5Fis_hdf5(path) <= 0) {
        pe_fail(e, "%s: not an HDF5 file", path);
    } else if ((d->file = H5Fopen(image ? "image" : path, H5F_ACC_RDONLY, image ? fapl : H5P_DEFAULT)) < 0) {
        pe_fail(e, image ? "%s: not an HDF5 file, or truncated or damaged"
                         : "%s: not a readable HDF5 file (truncated or damaged?)", path);
    } else if (read_root(d, opts, e) == 0 && read_layers(d, e) == 0 && check_memory(d, opts, e) == 0 &&
               read_positions(d, e) == 0 && read_truth(d, e) == 0) {
        ok = 1;
    }
unlock:
    h5_close_id(fapl);
    if (limit) {
        alarm(0);
        pe_in_metadata = 0;
    }
    h5_unlock();
    if (!ok) goto fail;
    return d;
fail:
    pe_dump_close(d);
    return NULL;
}

pe_dump *pe_dump_open(const char *path, const pe_open_opts *opts, pe_err *e)
{
    struct stat st;
    /* Plain-file checks first, so that the message says what is wrong. */
    if (stat(path, &st) != 0) {
        pe_fail(e, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        pe_fail(e, "%s: is a directory, not an HDF5 file", path);
        return NULL;
    }
    if (access(path, R_OK) != 0) {
        pe_fail(e, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (st.st_size == 0) {
        pe_fail(e, "%s: not an HDF5 file (empty)", path);
        return NULL;
    }
    return open_validated(path, NULL, 0, opts, e);
}

pe_dump *pe_dump_open_image(const void *image, size_t len, const char *name, const pe_open_opts *opts,
                            pe_err *e)
{
    if (len == 0) {
        pe_fail(e, "%s: not an HDF5 file (empty)", name);
        return NULL;
    }
    return open_validated(name, image, len, opts, e);
}

const pe_meta *pe_dump_meta(const pe_dump *d)
{
    return &d->meta;
}

const char *pe_dump_path(const pe_dump *d)
{
    return d->path;
}

int pe_dump_find_layer(const pe_dump *d, long index)
{
    for (size_t i = 0; i < d->meta.n_layers; i++)
        if (d->meta.layers[i].index == index) return (int)i;
    return -1;
}

/* ---- element conversion ---- */

static double half_to_double(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp((double)man, -24); /* subnormal: man * 2^-24 */
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexp((double)(man | 0x400), exp - 25);
    return sign ? -v : v;
}

/* Half to double through a table built once: exact, and a load per element. */
static double pe_half_table[65536];
static pthread_once_t pe_half_once = PTHREAD_ONCE_INIT;

static void build_half_table(void)
{
    for (unsigned i = 0; i < 65536; i++) pe_half_table[i] = half_to_double((uint16_t)i);
}

/* Widens n stored values to double.  raw may be the tail of out (its last
 * n * itemsize bytes): writing out[i] then overwrites only raw values 0 .. i,
 * because (8 - s) (i - n + 1) <= 0 for i < n.  Each block of raw values is
 * copied out with memcpy before any of its doubles are written, so the order
 * holds whatever the compiler does with the loops. */
#define PE_CONVERT_BLOCK 1024

/* One block of each type: widened, and non-finite values (all exponent
 * bits set) noted in *bad from the stored bits.  Called with the constant
 * PE_CONVERT_BLOCK for whole blocks, which -O2 vectorises once inlined. */
static inline void widen_f32(const uint32_t *in, double *o, size_t n, unsigned *bad)
{
    unsigned b = 0;
    for (size_t i = 0; i < n; i++) {
        float f;
        memcpy(&f, &in[i], sizeof f);
        o[i] = (double)f;
        b |= (in[i] & 0x7f800000u) == 0x7f800000u;
    }
    *bad |= b;
}

static inline void widen_f16(const uint16_t *in, double *o, size_t n, unsigned *bad)
{
    unsigned b = 0;
    for (size_t i = 0; i < n; i++) {
        o[i] = pe_half_table[in[i]];
        b |= (in[i] & 0x7c00u) == 0x7c00u;
    }
    *bad |= b;
}

static inline void widen_bf16(const uint16_t *in, double *o, size_t n, unsigned *bad)
{
    unsigned b = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)in[i] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        o[i] = (double)f;
        b |= (in[i] & 0x7f80u) == 0x7f80u;
    }
    *bad |= b;
}

/* Returns nonzero when some value is NaN or infinite, found on the way: no
 * second pass. */
static int convert(pe_elem elem, const void *raw, double *out, size_t n)
{
    const char *src = raw;
    unsigned bad = 0;
    if (elem == PE_ELEM_F16) pthread_once(&pe_half_once, build_half_table);
    for (size_t i0 = 0; i0 < n; i0 += PE_CONVERT_BLOCK) {
        const size_t nb = n - i0 < PE_CONVERT_BLOCK ? n - i0 : PE_CONVERT_BLOCK;
        const int whole = nb == PE_CONVERT_BLOCK;
        double *o = out + i0;
        if (elem == PE_ELEM_F32) {
            uint32_t tmp[PE_CONVERT_BLOCK];
            memcpy(tmp, src + i0 * sizeof(float), nb * sizeof(float));
            if (whole)
                widen_f32(tmp, o, PE_CONVERT_BLOCK, &bad);
            else
                widen_f32(tmp, o, nb, &bad);
        } else {
            uint16_t tmp[PE_CONVERT_BLOCK];
            memcpy(tmp, src + i0 * sizeof(uint16_t), nb * sizeof(uint16_t));
            if (elem == PE_ELEM_F16 && whole)
                widen_f16(tmp, o, PE_CONVERT_BLOCK, &bad);
            else if (elem == PE_ELEM_F16)
                widen_f16(tmp, o, nb, &bad);
            else if (whole)
                widen_bf16(tmp, o, PE_CONVERT_BLOCK, &bad);
            else
                widen_bf16(tmp, o, nb, &bad);
        }
    }
    return bad != 0;
}

static const pe_dset *find_dset(const pe_dump *d, size_t slot, pe_tensor t, int rotated)
{
    const pe_layer_sets *s = &d->sets[slot];
    return rotated ? &s->rot[t] : &s->plain[t];
}

static const char *dset_name(pe_tensor t, int rotated)
{
    static const char *const names[2][2] = {{"q", "k"}, {"q_rot", "k_rot"}};
    return names[rotated ? 1 : 0][t];
}

int pe_dump_read_stored(pe_dump *d, size_t slot, pe_tensor t, int rotated, int head, double *out,
                        pe_err *e)
{
    const pe_meta *m = &d->meta;
    const pe_layer_info *L;
    const pe_dset *ds;
    const char *name = dset_name(t, rotated);
    int nheads = t == PE_TENSOR_Q ? m->n_heads : m->n_kv_heads;
    size_t n = m->T * (size_t)m->head_dim;
    void *raw = NULL;
    int rc = -1;

    if (slot >= m->n_layers) return pe_fail(e, "%s: no layer slot %zu", d->path, slot);
    L = &m->layers[slot];
    ds = find_dset(d, slot, t, rotated);
    if (!ds->present) return pe_fail(e, "%s: /layers/%s/%s: missing", d->path, L->name, name);
    if (head < 0 || head >= nheads)
        return pe_fail_usage(e, "%s: /layers/%s/%s: no head %d (has %d)", d->path, L->name, name, head,
                             nheads);
    int direct = ds->elem == PE_ELEM_F64 || ds->elem == PE_ELEM_HDF5;
    /* Narrow types are read into the tail of out and widened in place, front
     * to back (see convert): no second buffer to allocate and fault in. */
    if (!direct) raw = (char *)out + n * (sizeof(double) - ds->itemsize);

    char what[160];
    snprintf(what, sizeof what, "/layers/%s/%s head %d", L->name, name, head);
    h5_lock_for(d->path, what);
    hid_t g = H5Gopen2(d->file, "layers", H5P_DEFAULT);
    hid_t lg = g >= 0 ? H5Gopen2(g, L->name, H5P_DEFAULT) : H5I_INVALID_HID;
    /* No chunk cache: a head covers its chunks whole, and HDF5 then reads
     * them straight into out, instead of into a fresh 1 MiB cache entry per
     * chunk that it copies out (a third of a bfloat16 read's time). */
    hid_t dapl = lg >= 0 ? H5Pcreate(H5P_DATASET_ACCESS) : H5I_INVALID_HID;
    if (dapl >= 0) H5Pset_chunk_cache(dapl, 0, 0, H5D_CHUNK_CACHE_W0_DEFAULT); /* advice: the default works too */
    hid_t ds_id = lg >= 0 ? H5Dopen2(lg, name, dapl >= 0 ? dapl : H5P_DEFAULT) : H5I_INVALID_HID;
    hid_t fsp = ds_id >= 0 ? H5Dget_space(ds_id) : H5I_INVALID_HID;
    hid_t ftype = ds_id >= 0 ? H5Dget_type(ds_id) : H5I_INVALID_HID;
    hsize_t start[3] = {(hsize_t)head, 0, 0}, count[3] = {1, m->T, (hsize_t)m->head_dim};
    hid_t msp = H5Screate_simple(3, count, NULL);
    herr_t r = -1;
    if (fsp >= 0 && ftype >= 0 && msp >= 0 &&
        H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) >= 0) {
        /* 2-byte floats are read as stored (memory type = file type, so no
         * conversion) and converted below, outside the lock. */
        hid_t mtype = direct ? H5T_NATIVE_DOUBLE : (ds->elem == PE_ELEM_F32 ? H5T_NATIVE_FLOAT : ftype);
        r = H5Dread(ds_id, mtype, msp, fsp, H5P_DEFAULT, direct ? (void *)out : raw);
    }
    h5_close_id(msp);
    h5_close_id(ftype);
    h5_close_id(fsp);
    h5_close_id(ds_id);
    h5_close_id(dapl);
    h5_close_id(lg);
    h5_close_id(g);
    h5_unlock();
    if (r < 0) {
        pe_fail(e, "%s: /layers/%s/%s: cannot read head %d (damaged or truncated file?)", d->path,
                L->name, name, head);
        goto done;
    }
    /* F64 and HDF5-converted data are read straight into out, and checked
     * here; the narrow types are checked by convert, and located here. */
    if (direct || convert(ds->elem, raw, out, n)) {
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(out[i])) {
                pe_fail(e, "%s: layer %ld: %s head %d token %zu dim %d: value is %s", d->path, L->index,
                        name, head, i / (size_t)m->head_dim, (int)(i % (size_t)m->head_dim),
                        isnan(out[i]) ? "NaN" : "infinite");
                goto done;
            }
        }
    }
    rc = 0;
done:
    return rc;
}

int pe_dump_read_head(pe_dump *d, size_t slot, pe_tensor t, int head, double *out, pe_err *e)
{
    const pe_meta *m = &d->meta;
    if (slot >= m->n_layers) return pe_fail(e, "%s: no layer slot %zu", d->path, slot);
    const pe_layer_info *L = &m->layers[slot];
    if (L->has_plain) return pe_dump_read_stored(d, slot, t, 0, head, out, e);
    if (pe_dump_read_stored(d, slot, t, 1, head, out, e) < 0) return -1;
    pe_geom g = {m->head_dim, m->rotary_dim, m->n_pairs, m->pairing, L->theta};
    pe_rope_rotate(out, m->T, &g, m->positions, -1);
    return 0;
}

const char *pe_dump_dtype(pe_dump *d, size_t slot, pe_tensor t, int rotated)
{
    if (slot >= d->meta.n_layers) return "none";
    const pe_dset *ds = find_dset(d, slot, t, rotated);
    return ds->present ? ds->dtype : "none";
}

/* ---- pooling ---- */

void pe_inputs_close(pe_inputs *in)
{
    for (size_t i = 0; i < in->n; i++) pe_dump_close(in->dumps[i]);
    free(in->dumps);
    free(in->layers);
    free(in->heads);
    memset(in, 0, sizeof *in);
}

static int same_theta(const double *a, const double *b, int n)
{
    for (int i = 0; i < n; i++)
        if (fabs(a[i] - b[i]) > 1e-6 * fmax(fabs(a[i]), fabs(b[i]))) return 0;
    return 1;
}

/* Names the first field in which file b disagrees with file a, or NULL. */
static const char *first_difference(const pe_meta *a, const pe_meta *b, long train_override)
{
    if (a->n_heads != b->n_heads) return "n_heads";
    if (a->n_kv_heads != b->n_kv_heads) return "n_kv_heads";
    if (a->head_dim != b->head_dim) return "head_dim";
    if (a->rotary_dim != b->rotary_dim) return "rotary_dim";
    if (a->rotary_dim > 0 && a->pairing != b->pairing) return "rope_pairing";
    if (!same_theta(a->theta, b->theta, a->n_pairs)) return "the frequencies (/rope/inv_freq or rope_theta)";
    if (a->attn_scale != b->attn_scale) return "attn_scale";
    if (a->attn_softcap != b->attn_softcap) return "attn_softcap";
    if (!train_override && a->train_len && b->train_len && a->train_len != b->train_len)
        return "train_len";
    return NULL;
}

int pe_inputs_open(pe_inputs *in, char *const *paths, size_t n_paths, const pe_open_opts *opts,
                   const long *layers, size_t n_layers, const long *heads, size_t n_heads,
                   long train_len, pe_err *e)
{
    memset(in, 0, sizeof *in);
    if (n_paths == 0) return pe_fail_usage(e, "no input file");
    if (!(in->dumps = pe_alloc(n_paths, sizeof *in->dumps, 1, e))) return -1;
    for (size_t i = 0; i < n_paths; i++) {
        if (!(in->dumps[i] = pe_dump_open(paths[i], opts, e))) goto fail;
        in->n++;
    }
    const pe_meta *m0 = pe_dump_meta(in->dumps[0]);
    in->meta = m0;
    in->train_len = train_len > 0 ? train_len : 0;
    for (size_t i = 0; i < in->n; i++) {
        const pe_meta *mi = pe_dump_meta(in->dumps[i]);
        if (i > 0) {
            const char *f = first_difference(m0, mi, train_len);
            if (f) {
                pe_fail(e, "%s: %s: differs from %s; files pooled together must agree", paths[i], f,
                        paths[0]);
                goto fail;
            }
        }
        if (!in->train_len && mi->train_len) in->train_len = mi->train_len;
    }

    /* Layers: the selection (or all of the first file's), present everywhere. */
    in->n_layers = layers ? n_layers : m0->n_layers;
    if (!(in->layers = pe_alloc(in->n_layers ? in->n_layers : 1, sizeof *in->layers, 0, e))) goto fail;
    for (size_t j = 0; j < in->n_layers; j++) in->layers[j] = layers ? layers[j] : m0->layers[j].index;
    for (size_t j = 0; j < in->n_layers; j++) {
        int s0 = pe_dump_find_layer(in->dumps[0], in->layers[j]);
        for (size_t i = 0; i < in->n; i++) {
            int s = pe_dump_find_layer(in->dumps[i], in->layers[j]);
            if (s < 0) {
                if (layers)
                    pe_fail_usage(e, "--layers: layer %ld is not in %s", in->layers[j], paths[i]);
                else
                    pe_fail(e, "%s: layer %ld of %s is missing; files pooled together need the same layers "
                               "(or select common ones with --layers)", paths[i], in->layers[j], paths[0]);
                goto fail;
            }
            const pe_meta *mi = pe_dump_meta(in->dumps[i]);
            if (i > 0 && (m0->layers[s0].rope != mi->layers[s].rope ||
                          !same_theta(m0->layers[s0].theta, mi->layers[s].theta, m0->n_pairs))) {
                pe_fail(e, "%s: layer %ld: inv_freq: differs from %s; files pooled together must agree",
                        paths[i], in->layers[j], paths[0]);
                goto fail;
            }
        }
    }

    /* Without --layers every file must hold the same layers, so that the
     * outcome does not depend on the order of the files. */
    for (size_t i = 1; !layers && i < in->n; i++) {
        const pe_meta *mi = pe_dump_meta(in->dumps[i]);
        for (size_t s = 0; s < mi->n_layers; s++)
            if (pe_dump_find_layer(in->dumps[0], mi->layers[s].index) < 0) {
                pe_fail(e, "%s: layer %ld of %s is missing; files pooled together need the same layers "
                           "(or select common ones with --layers)", paths[0], mi->layers[s].index, paths[i]);
                goto fail;
            }
    }

    /* Query heads. */
    in->n_heads = heads ? n_heads : (size_t)m0->n_heads;
    if (!(in->heads = pe_alloc(in->n_heads ? in->n_heads : 1, sizeof *in->heads, 0, e))) goto fail;
    for (size_t j = 0; j < in->n_heads; j++) {
        if (heads && (heads[j] < 0 || heads[j] >= m0->n_heads)) {
            pe_fail_usage(e, "--heads: head %ld does not exist (the files have %d query heads)",
                          heads[j], m0->n_heads);
            goto fail;
        }
        in->heads[j] = heads ? (int)heads[j] : (int)j;
    }

    for (size_t i = 0; i < in->n; i++) {
        const pe_meta *mi = pe_dump_meta(in->dumps[i]);
        size_t nd = (size_t)(mi->positions[mi->T - 1] - mi->positions[0]) + 1;
        if (nd > in->n_dist) in->n_dist = nd;
    }
    return 0;
fail:
    pe_inputs_close(in);
    return -1;
}
