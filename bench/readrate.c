/* readrate: how fast the library reads a dump, for `make bench`.
 *
 *   readrate FILE [ROUNDS]
 *
 * Reads every query and key head of every layer of FILE with
 * pe_dump_read_head (HDF5 hyperslab read, widening to double, the finite
 * check: what each tool does per head), ROUNDS times (default 3), on one
 * thread, and prints
 *
 *   dtype DTYPE input_bytes N seconds S1 S2 ... best_gbps G median_gbps M
 *
 * where N is the stored size of everything read (T x head_dim x itemsize per
 * head) and the rates are N / seconds in 10^9 bytes per second.  Run it on a
 * file that is in the page cache (the driver reads it once first): it then
 * measures the reader and the conversion, not the disk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pe_dump.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: readrate FILE [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (rounds < 1 || rounds > 100) rounds = 3;
    pe_err e;
    pe_open_opts o = PE_OPEN_OPTS_DEFAULT;
    pe_dump *d = pe_dump_open(argv[1], &o, &e);
    if (!d) {
        fprintf(stderr, "readrate: %s\n", e.msg);
        return 1;
    }
    const pe_meta *m = pe_dump_meta(d);
    size_t n = m->T * (size_t)m->head_dim;
    double *buf = malloc(n * sizeof *buf);
    if (!buf) {
        fprintf(stderr, "readrate: out of memory\n");
        return 1;
    }
    const char *dtype = pe_dump_dtype(d, 0, PE_TENSOR_Q, !m->layers[0].has_plain);
    size_t item = strcmp(dtype, "float64") == 0 ? 8 : strcmp(dtype, "float32") == 0 ? 4 : 2;
    double bytes = 0, secs[100];
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        bytes = 0;
        for (size_t s = 0; s < m->n_layers; s++)
            for (int t = 0; t < 2; t++) {
                int nh = t ? m->n_kv_heads : m->n_heads;
                for (int h = 0; h < nh; h++) {
                    if (pe_dump_read_head(d, s, (pe_tensor)t, h, buf, &e) < 0) {
                        fprintf(stderr, "readrate: %s\n", e.msg);
                        return 1;
                    }
                    bytes += (double)n * (double)item;
                }
            }
        secs[r] = now() - t0;
    }
    printf("dtype %s input_bytes %.0f seconds", dtype, bytes);
    for (int r = 0; r < rounds; r++) printf(" %.4f", secs[r]);
    qsort(secs, (size_t)rounds, sizeof secs[0], cmp_double);
    printf(" best_gbps %.3f median_gbps %.3f\n", bytes / secs[0] / 1e9, bytes / secs[rounds / 2] / 1e9);
    free(buf);
    pe_dump_close(d);
    return 0;
}
