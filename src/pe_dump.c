/* pe_dump.c: the qkdump v1 reader (see pe_dump.h and qkdump(5)): opening and
 * validating a file, its metadata, positions and recorded loss, and reading
 * heads.  HDF5 itself is reached through pe_h5.h, element types through
 * pe_convert.h.
 *
 * Validation happens once, in pe_dump_open, so that the analysis code can
 * trust every field; reading a head is a hyperslab of one head, converted to
 * double outside the HDF5 lock. */
#include "pe_dump.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pe_convert.h"
#include "pe_guard.h"
#include "pe_h5.h"
#include "pe_memory.h"

/* h5py's lzf filter: registered with HDF5 under this id, but only h5py ships
 * the code, so no C reader can decode it. */
#define PE_FILTER_LZF 32000

/* What one stored tensor of a layer is made of. */
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

/* ---- validation (run by open_validated, with the HDF5 lock held) ---- */

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
    ds->elem = pe_convert_classify(t, &ds->itemsize, ds->dtype, sizeof ds->dtype);
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
    pe_h5_close(dcpl);
    pe_h5_close(t);
    pe_h5_close(sp);
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

    if (!pe_h5_has(d->file, "layers", H5I_GROUP)) return pe_fail(e, "%s: /layers: missing (no layers)", file);
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
        if (!pe_h5_has(lg, nm, H5I_GROUP)) continue; /* unknown objects are ignored */
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
        int r = pe_h5_attr_int(g, where, "index", &idx, e);
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
        if (r >= 0) r = pe_h5_attr_int(g, where, "rope", &rope, e);
        if (r >= 0 && rope != 0 && rope != 1) {
            pe_fail(e, "%s: rope: must be 0 or 1 (got %lld)", where, rope);
            r = -1;
        }
        L->index = (long)idx;
        L->rope = (int)rope;
        int hq = r >= 0 && pe_h5_has(g, "q", H5I_DATASET), hk = r >= 0 && pe_h5_has(g, "k", H5I_DATASET);
        int hqr = r >= 0 && pe_h5_has(g, "q_rot", H5I_DATASET);
        int hkr = r >= 0 && pe_h5_has(g, "k_rot", H5I_DATASET);
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
        if (r >= 0 && pe_h5_has(g, "inv_freq", H5I_DATASET)) {
            char path[160];
            size_t n = 0;
            snprintf(path, sizeof path, "/layers/%s/inv_freq", nm);
            r = pe_h5_length(g, "inv_freq", file, path, &n, e);
            if (r >= 0 && n != (size_t)m->n_pairs) {
                pe_fail(e, "%s: %s: has %zu values, expected rotary_dim/2 = %d", file, path, n,
                        m->n_pairs);
                r = -1;
            }
            if (r >= 0 && n > 0) r = pe_h5_vector(g, "inv_freq", file, path, n, 0, L->theta, NULL, e);
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
    pe_h5_close(lg);
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
    r = pe_h5_attr_string(d->file, file, "format", &s, e);
    if (r < 0) return -1;
    if (r == 0) return pe_fail(e, "%s: format: missing required attribute (not a qkdump file)", file);
    if (strcmp(s, "qkdump") != 0) {
        pe_fail(e, "%s: format: is '%.40s', not 'qkdump'", file, s);
        free(s);
        return -1;
    }
    free(s);
    s = NULL;
    r = pe_h5_attr_int(d->file, file, "format_version", &v, e);
    if (r < 0) return -1;
    if (r == 0) return pe_fail(e, "%s: format_version: missing required attribute", file);
    if (v != 1) return pe_fail(e, "%s: format_version: is %lld; this reader knows version 1", file, v);

    static const char *const req[] = {"n_heads", "n_kv_heads", "head_dim"};
    long long val[3];
    for (int i = 0; i < 3; i++) {
        r = pe_h5_attr_int(d->file, file, req[i], &val[i], e);
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
    if ((r = pe_h5_attr_int(d->file, file, "rotary_dim", &v, e)) < 0) return -1;
    if (v < 0 || v > m->head_dim || v % 2 != 0)
        return pe_fail(e, "%s: rotary_dim: must be even and within [0, head_dim %d] (got %lld)", file,
                       m->head_dim, v);
    m->rotary_dim = (int)v;
    m->n_pairs = m->rotary_dim / 2;

    m->rope_theta = 10000.0;
    if (pe_h5_attr_double(d->file, file, "rope_theta", &m->rope_theta, e) < 0) return -1;
    if (!(m->rope_theta > 0)) return pe_fail(e, "%s: rope_theta: must be positive", file);

    r = pe_h5_attr_string(d->file, file, "rope_pairing", &s, e);
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
    if ((r = pe_h5_attr_int(d->file, file, "train_len", &v, e)) < 0) return -1;
    if (v < 0) return pe_fail(e, "%s: train_len: must be >= 0 (got %lld)", file, v);
    m->train_len = (long)v;

    m->attn_scale = 1.0 / sqrt((double)m->head_dim);
    if (pe_h5_attr_double(d->file, file, "attn_scale", &m->attn_scale, e) < 0) return -1;
    m->attn_softcap = 0;
    if (pe_h5_attr_double(d->file, file, "attn_softcap", &m->attn_softcap, e) < 0) return -1;
    if (m->attn_softcap < 0) return pe_fail(e, "%s: attn_softcap: must be >= 0", file);

    if (pe_h5_attr_string(d->file, file, "model", &m->model, e) < 0) return -1;
    if (pe_h5_attr_string(d->file, file, "source_dtype", &m->source_dtype, e) < 0) return -1;
    if (pe_h5_attr_string(d->file, file, "rope_scaling", &m->rope_scaling, e) < 0) return -1;
    if (pe_h5_attr_string(d->file, file, "created_by", &m->created_by, e) < 0) return -1;

    /* Frequencies: /rope/inv_freq, else from the base. */
    m->theta = pe_alloc(m->n_pairs ? (size_t)m->n_pairs : 1, sizeof(double), 1, e);
    if (!m->theta) return -1;
    if (pe_h5_has(d->file, "rope/inv_freq", H5I_DATASET)) {
        size_t n = 0;
        if (pe_h5_length(d->file, "rope/inv_freq", file, "/rope/inv_freq", &n, e) < 0) return -1;
        if (n != (size_t)m->n_pairs)
            return pe_fail(e, "%s: /rope/inv_freq: has %zu values, expected rotary_dim/2 = %d", file, n,
                           m->n_pairs);
        if (n && pe_h5_vector(d->file, "rope/inv_freq", file, "/rope/inv_freq", n, 0, m->theta, NULL, e) < 0)
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
    if (pe_h5_has(d->file, "tokens/positions", H5I_DATASET)) {
        size_t n = 0;
        if (pe_h5_length(d->file, "tokens/positions", file, "/tokens/positions", &n, e) < 0) return -1;
        if (n != m->T)
            return pe_fail(e, "%s: /tokens/positions: has %zu values, expected T = %zu", file, n, m->T);
        if (pe_h5_vector(d->file, "tokens/positions", file, "/tokens/positions", m->T, 1, NULL,
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
    /* The token ids are optional: they only tell whether two files hold the
     * same tokens (peanalyze -t loss compares losses token by token). */
    if (pe_h5_has(d->file, "tokens/ids", H5I_DATASET)) {
        size_t n = 0;
        if (pe_h5_length(d->file, "tokens/ids", file, "/tokens/ids", &n, e) < 0) return -1;
        if (n != m->T) return pe_fail(e, "%s: /tokens/ids: has %zu values, expected T = %zu", file, n, m->T);
        if (!(m->ids = pe_alloc(m->T, sizeof *m->ids, 0, e)) ||
            pe_h5_vector(d->file, "tokens/ids", file, "/tokens/ids", m->T, 1, NULL, m->ids, e) < 0)
            return -1;
    }
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
    if (!pe_h5_has(d->file, name, H5I_DATASET)) return pe_fail(e, "%s: %s: must be a dataset", d->path, path);
    size_t n = 0;
    if (pe_h5_length(d->file, name, d->path, path, &n, e) < 0) return -1;
    if (n != m->T) return pe_fail(e, "%s: %s: has %zu values, expected T = %zu", d->path, path, n, m->T);
    hid_t ds = H5Dopen2(d->file, name, H5P_DEFAULT), t = ds >= 0 ? H5Dget_type(ds) : H5I_INVALID_HID;
    int is_float = t >= 0 && H5Tget_class(t) == H5T_FLOAT;
    pe_h5_close(t);
    pe_h5_close(ds);
    if (!is_float) return pe_fail(e, "%s: %s: wrong kind: must be floats (nats)", d->path, path);
    if (!(*out = pe_alloc(m->T, sizeof **out, 0, e))) return -1;
    if (pe_h5_vector(d->file, name, d->path, path, m->T, 0, *out, NULL, e) < 0) return -1;
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
        r = ds >= 0 ? pe_h5_attr_string(ds, where, "pe", &m->nll_pe, e) : 0;
        if (ds >= 0) H5Dclose(ds);
        if (r < 0) return -1;
        if (!m->nll_pe && !(m->nll_pe = pe_strdup("rope", e))) return -1;
    }
    if ((r = read_loss(d, "tokens/nll_control", &m->nll_control, e)) <= 0) return r;
    hid_t ds = H5Dopen2(d->file, "tokens/nll_control", H5P_DEFAULT);
    char where[1100], *ctl = NULL;
    snprintf(where, sizeof where, "%s: /tokens/nll_control", d->path);
    r = ds >= 0 ? pe_h5_attr_string(ds, where, "control", &ctl, e) : 0;
    if (ds >= 0) H5Dclose(ds);
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
    char what[sizeof e->msg];
    if (pe_mul_size(m->T, (size_t)m->head_dim, &td) || pe_mul_size(td, 2 * sizeof(double), &bytes))
        return pe_fail(e, "%s: shape: T %zu x head_dim %d overflows", d->path, m->T, m->head_dim);
    snprintf(what, sizeof what, "%s: shape: one head of T %zu x head_dim %d", d->path, m->T, m->head_dim);
    return pe_memory_fits((double)bytes, opts->max_memory, what, e);
}

/* ---- opening and closing ---- */

static void meta_free(pe_meta *m)
{
    free(m->model);
    free(m->source_dtype);
    free(m->rope_scaling);
    free(m->created_by);
    free(m->positions);
    free(m->ids);
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
        pe_h5_lock_for(d->path, NULL);
        H5Fclose(d->file);
        pe_h5_unlock();
    }
    meta_free(&d->meta);
    free(d->sets);
    free(d->path);
    free(d);
}

/* Opens and validates a file (image: an in-memory file of image_len bytes,
 * or NULL for the file at path).  The lock is taken here. */
static pe_dump *open_validated(const char *path, const void *image, size_t image_len,
                               const pe_open_opts *opts, pe_err *e)
{
    static const pe_open_opts def = PE_OPEN_OPTS_DEFAULT;
    pe_dump *d;
    if (!opts) opts = &def;
    if (!(d = pe_alloc(1, sizeof *d, 1, e))) return NULL;
    d->file = H5I_INVALID_HID;
    if (!(d->path = pe_strdup(path, e))) goto fail;

    pe_h5_lock_for(path, NULL);
    unsigned timer = pe_guard_timer_start(); /* an endless loop on a damaged file */
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
    pe_h5_close(fapl);
    pe_guard_timer_stop(timer);
    pe_h5_unlock();
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
    return pe_meta_find_layer(&d->meta, index);
}

int pe_meta_find_layer(const pe_meta *m, long index)
{
    for (size_t i = 0; i < m->n_layers; i++)
        if (m->layers[i].index == index) return (int)i;
    return -1;
}

/* ---- reading heads ---- */

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
     * to back (see pe_convert_widen): no second buffer to allocate and fault in. */
    if (!direct) raw = (char *)out + n * (sizeof(double) - ds->itemsize);

    char what[160];
    snprintf(what, sizeof what, "/layers/%s/%s head %d", L->name, name, head);
    pe_h5_lock_for(d->path, what);
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
    pe_h5_close(msp);
    pe_h5_close(ftype);
    pe_h5_close(fsp);
    pe_h5_close(ds_id);
    pe_h5_close(dapl);
    pe_h5_close(lg);
    pe_h5_close(g);
    pe_h5_unlock();
    if (r < 0) {
        pe_fail(e, "%s: /layers/%s/%s: cannot read head %d (damaged or truncated file?)", d->path,
                L->name, name, head);
        goto done;
    }
    /* F64 and HDF5-converted data are read straight into out, and checked
     * here; the narrow types are checked by pe_convert_widen, and located here. */
    if (direct || pe_convert_widen(ds->elem, raw, out, n)) {
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
