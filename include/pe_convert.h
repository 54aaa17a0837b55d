/* pe_convert.h: the element types of a stored q/k tensor and their widening
 * to double (see qkdump(5), ELEMENT TYPES).  Internal to the reader modules
 * (pe_dump.c): the tools only ever see doubles.
 *
 * float16 and bfloat16 (IEEE half and the upper half of a float32, both
 * little-endian) and float32 are read as stored and widened here, outside the
 * HDF5 lock; float64 is read as it is, and any other float type is left to
 * HDF5 to convert.  Widening notes NaN and infinite values from the stored
 * bits on the way, so that a clean head costs no second pass.
 * Buffers are the caller's.
 */
#ifndef PE_CONVERT_H
#define PE_CONVERT_H

#include <hdf5.h>
#include <stddef.h>

/* How a dataset's elements are converted to double. */
typedef enum {
    PE_ELEM_HDF5 = 0, /* let HDF5 convert (any other float type) */
    PE_ELEM_F16,      /* IEEE half, little-endian */
    PE_ELEM_BF16,     /* bfloat16, little-endian */
    PE_ELEM_F32,      /* native float */
    PE_ELEM_F64       /* native double */
} pe_elem;

/* Classifies the float type t (an HDF5 datatype of class H5T_FLOAT; called
 * with the HDF5 lock held): sets *itemsize to its bytes per element and
 * writes its name into name[len] ("float16", "bfloat16", "float32",
 * "float64", or "float<bits>"). */
pe_elem pe_convert_classify(hid_t t, size_t *itemsize, char *name, size_t len);

/* Widens n stored values of type elem (PE_ELEM_F16, PE_ELEM_BF16 or
 * PE_ELEM_F32) at raw to doubles at out.  raw may be the tail of out (its
 * last n * itemsize bytes): the values are then widened in place, front to
 * back.  Returns nonzero when some value is NaN or infinite (the caller
 * locates it in out). */
int pe_convert_widen(pe_elem elem, const void *raw, double *out, size_t n);

#endif
