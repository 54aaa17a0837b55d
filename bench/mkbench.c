/* mkbench: writes a synthetic qkdump file for the benchmarks.
 *
 *   mkbench OUT.h5 T N_HEADS N_KV_HEADS HEAD_DIM DTYPE [LAYERS]
 *
 * DTYPE is float32, bfloat16 or float16 (IEEE half, as h5py writes it).
 * Values are deterministic pseudo-random numbers in [-2, 2) plus a slowly
 * rotating component, chunked (1, Tc, D) with chunks of at most 1 MiB,
 * uncompressed: the benchmarks time the tools, not zlib.  Written one head
 * at a time, so memory stays small. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* float -> IEEE half bits, round to nearest even (subnormals included;
 * the values here are far from the overflow range). */
static uint16_t to_half(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    uint32_t sign = (u >> 16) & 0x8000u, mag = u & 0x7FFFFFFFu;
    if (mag >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds to infinity */
    if (mag < 0x38800000u) {                                   /* half subnormal or zero */
        float a = fabsf(v) * 16777216.0f;                      /* units of 2^-24 */
        return (uint16_t)(sign | (uint32_t)lrintf(a));         /* exact: a < 2^10 */
    }
    uint32_t r = mag + 0x0FFFu + ((mag >> 13) & 1u);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static void attr_int(hid_t loc, const char *name, long long v)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    H5Sclose(sp);
}

static void attr_str(hid_t loc, const char *name, const char *v)
{
    hid_t sp = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, &v);
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: mkbench OUT.h5 T N_HEADS N_KV_HEADS HEAD_DIM float32|bfloat16|float16 [LAYERS]\n");
        return 2;
    }
    long T = atol(argv[2]);
    int H = atoi(argv[3]), KV = atoi(argv[4]), D = atoi(argv[5]), layers = argc > 7 ? atoi(argv[7]) : 1;
    int bf16 = strcmp(argv[6], "bfloat16") == 0, f16 = strcmp(argv[6], "float16") == 0;
    if (!bf16 && !f16 && strcmp(argv[6], "float32") != 0) {
        fprintf(stderr, "mkbench: dtype must be float32, bfloat16 or float16\n");
        return 2;
    }
    if (T <= 0 || H <= 0 || KV <= 0 || H % KV || D <= 0 || D % 2 || layers <= 0) {
        fprintf(stderr, "mkbench: bad shape\n");
        return 2;
    }
    hid_t f = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return 1;
    attr_str(f, "format", "qkdump");
    attr_int(f, "format_version", 1);
    attr_int(f, "n_heads", H);
    attr_int(f, "n_kv_heads", KV);
    attr_int(f, "head_dim", D);
    attr_str(f, "rope_pairing", "half");
    attr_int(f, "train_len", T / 4 > 0 ? T / 4 : 1);
    attr_str(f, "model", "mkbench");
    hid_t ft = H5Tcopy(H5T_IEEE_F32LE);
    if (bf16) {
        H5Tset_fields(ft, 15, 7, 8, 0, 7);
        H5Tset_precision(ft, 16);
        H5Tset_size(ft, 2);
        H5Tset_ebias(ft, 127);
    } else if (f16) {
        H5Tset_fields(ft, 15, 10, 5, 0, 10);
        H5Tset_precision(ft, 16);
        H5Tset_size(ft, 2);
        H5Tset_ebias(ft, 15);
    }
    size_t item = bf16 || f16 ? 2 : 4;
    hsize_t tc = (hsize_t)((1u << 20) / ((size_t)D * item));
    if (tc > (hsize_t)T) tc = (hsize_t)T;
    void *buf = malloc((size_t)T * (size_t)D * item);
    hid_t lg = H5Gcreate2(f, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    for (int l = 0; l < layers; l++) {
        char name[16];
        snprintf(name, sizeof name, "%03d", l);
        hid_t g = H5Gcreate2(lg, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        attr_int(g, "index", l);
        for (int t = 0; t < 2; t++) {
            int nh = t ? KV : H;
            hsize_t dims[3] = {(hsize_t)nh, (hsize_t)T, (hsize_t)D}, chunk[3] = {1, tc, (hsize_t)D};
            hsize_t one[3] = {1, (hsize_t)T, (hsize_t)D};
            hid_t sp = H5Screate_simple(3, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
            H5Pset_chunk(dcpl, 3, chunk);
            hid_t d = H5Dcreate2(g, t ? "k" : "q", ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
            hid_t ms = H5Screate_simple(3, one, NULL);
            for (int h = 0; h < nh; h++) {
                for (long m = 0; m < T; m++)
                    for (int j = 0; j < D; j++) {
                        uint64_t r = mix(((((uint64_t)l * 2 + (uint64_t)t) * 4096 + (uint64_t)h) << 32) ^ ((uint64_t)m * 4096 + (uint64_t)j));
                        float v = (float)((double)(r >> 11) * (4.0 / 9007199254740992.0) - 2.0);
                        v += (float)cos(0.001 * (double)m * (j + 1));
                        if (bf16) {
                            uint32_t u;
                            memcpy(&u, &v, 4);
                            u += 0x7FFF + ((u >> 16) & 1); /* round to nearest even */
                            ((uint16_t *)buf)[(size_t)m * (size_t)D + (size_t)j] = (uint16_t)(u >> 16);
                        } else if (f16) {
                            ((uint16_t *)buf)[(size_t)m * (size_t)D + (size_t)j] = to_half(v);
                        } else {
                            ((float *)buf)[(size_t)m * (size_t)D + (size_t)j] = v;
                        }
                    }
                hsize_t start[3] = {(hsize_t)h, 0, 0};
                H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, one, NULL);
                H5Dwrite(d, ft, ms, sp, H5P_DEFAULT, buf);
            }
            H5Sclose(ms);
            H5Dclose(d);
            H5Pclose(dcpl);
            H5Sclose(sp);
        }
        H5Gclose(g);
    }
    H5Gclose(lg);
    H5Tclose(ft);
    free(buf);
    return H5Fclose(f) < 0;
}
