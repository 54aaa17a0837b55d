/* pe_dump.h: reading qkdump v1 files (spec: man/qkdump.5).
 *
 * pe_dump_open validates everything that can be checked without reading the
 * q/k data (attributes, shapes, positions, frequencies, filters, memory),
 * reads the small vectors (positions, frequencies, the recorded loss) and
 * keeps the file open; pe_dump_read_head then reads one head at a time with a
 * hyperslab, converts to double, un-rotates rotated-only layers and refuses
 * NaN or infinite values.  A pe_inputs (pe_inputs.h) pools several files
 * that agree.
 *
 * Ownership: pe_dump_open returns a pe_dump the caller closes with
 * pe_dump_close; the pe_meta inside it is owned by the pe_dump.  Buffers
 * passed to the read functions are borrowed.
 * Threads: HDF5 is built without thread safety, so every HDF5 call of the
 * reader takes one process-wide lock (pe_h5.h); conversion (pe_convert.h)
 * and un-rotation run outside it, so several threads may call
 * pe_dump_read_head at once.  The crash guard (pe_guard.h) turns a crash or
 * a hang inside HDF5 into a one-line error.
 */
#ifndef PE_DUMP_H
#define PE_DUMP_H

#include <stddef.h>
#include <stdint.h>

#include "pe_common.h"
#include "pe_rope.h"

typedef enum { PE_TENSOR_Q = 0, PE_TENSOR_K = 1 } pe_tensor;

typedef struct pe_layer_info {
    long index;      /* the group's `index` attribute (authoritative) */
    char name[64];   /* group name under /layers */
    int rope;        /* attribute `rope`: 0 = the layer applies no rotary */
    int has_plain;   /* q and k present */
    int has_rot;     /* q_rot and k_rot present */
    double *theta;   /* n_pairs effective frequencies: per-layer inv_freq,
                        else the file's, all 0 when rope == 0 */
    int own_theta;   /* 1 when /layers/NNN/inv_freq overrides */
} pe_layer_info;

typedef struct pe_meta {
    int n_heads, n_kv_heads, head_dim, rotary_dim, n_pairs;
    pe_pairing pairing;
    double rope_theta;   /* base b */
    long train_len;      /* 0 = unknown */
    double attn_scale;
    double attn_softcap; /* 0 = none */
    char *model, *source_dtype, *rope_scaling, *created_by; /* NULL when absent */
    size_t T;
    int64_t *positions;  /* T values */
    int64_t *ids;        /* T token ids (/tokens/ids), NULL when absent: -t loss pairs files by them */
    int contiguous;      /* positions[m] == positions[0] + m */
    double *theta;       /* n_pairs: /rope/inv_freq, else from rope_theta */
    int theta_from_file; /* 1 when /rope/inv_freq was present */
    size_t n_layers;
    pe_layer_info *layers; /* sorted by index */
    /* Ground truth (man qkdump(5), /tokens/nll): the model's own next-token
     * loss from its forward pass, NULL when the file has none.  nll[m] =
     * -ln p(token m+1 | tokens 0..m); NaN where there is none (the last
     * token).  nll_control is the same from the control pass, in which query
     * m saw key n only when m - n < control_window or n < control_sinks. */
    double *nll, *nll_control;
    long control_window, control_sinks; /* 0, 0 without nll_control */
    char *nll_pe;        /* the nll's `pe` attribute: the what-if it ran with ("rope") */
} pe_meta;

typedef struct pe_dump pe_dump;

/* How to open: overrides from the command line. */
typedef struct pe_open_opts {
    int pairing_override;   /* -1 none, else a pe_pairing */
    double max_memory;      /* bytes one head may need; 0 = the machine's available memory */
} pe_open_opts;

#define PE_OPEN_OPTS_DEFAULT {-1, 0.0}

/* Opens and validates path.  Returns NULL with e filled ("FILE: field: what"). */
pe_dump *pe_dump_open(const char *path, const pe_open_opts *opts, pe_err *e);
/* The same for a whole HDF5 file held in memory (image, len bytes, borrowed
 * and unchanged; it must outlive the pe_dump); name stands for the file in
 * messages.  Used by the fuzzer. */
pe_dump *pe_dump_open_image(const void *image, size_t len, const char *name, const pe_open_opts *opts,
                            pe_err *e);
void pe_dump_close(pe_dump *d);

const pe_meta *pe_dump_meta(const pe_dump *d);
const char *pe_dump_path(const pe_dump *d);

/* Slot of the layer whose index attribute is `index`, or -1. */
int pe_dump_find_layer(const pe_dump *d, long index);
int pe_meta_find_layer(const pe_meta *m, long index);

/* Reads head `head` (a query head for Q, a key head for K) of layer slot
 * `slot` as unrotated vectors into out (T x D doubles, row-major).  Uses q/k
 * when present, else rotates q_rot/k_rot back.  NaN/Inf is an error naming
 * layer, tensor, head and token. */
int pe_dump_read_head(pe_dump *d, size_t slot, pe_tensor t, int head, double *out, pe_err *e);

/* Reads the stored dataset itself (rotated != 0: q_rot/k_rot) without any
 * rotation; the dataset must exist. */
int pe_dump_read_stored(pe_dump *d, size_t slot, pe_tensor t, int rotated, int head, double *out,
                        pe_err *e);

/* Name of the stored element type of a layer's tensor ("float16",
 * "bfloat16", "float32", "float64", or "float<bits>"), for --check. */
const char *pe_dump_dtype(pe_dump *d, size_t slot, pe_tensor t, int rotated);

/* The linked HDF5 version as "1.10.8" (pe_h5.c). */
const char *pe_hdf5_version(void);

/* The rest of the reader's public side, declared in the headers of the
 * modules that own it, included here so that the tools need only this one:
 * pe_dump_guard (pe_guard.h), pe_memory_check and pe_available_memory
 * (pe_memory.h), pe_inputs_open and pe_inputs_close (pe_inputs.h). */
#include "pe_guard.h"
#include "pe_inputs.h"
#include "pe_memory.h"

#endif
