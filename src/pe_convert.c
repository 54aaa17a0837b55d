/* pe_convert.c: element types and their widening to double (see
 * pe_convert.h and qkdump(5), ELEMENT TYPES). */
#include "pe_convert.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Classifies a float type for fast conversion; fills the dtype name. */
pe_elem pe_convert_classify(hid_t t, size_t *itemsize, char *name, size_t len)
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

/* Nonzero when some value is NaN or infinite, found on the way: no second
 * pass. */
int pe_convert_widen(pe_elem elem, const void *raw, double *out, size_t n)
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
