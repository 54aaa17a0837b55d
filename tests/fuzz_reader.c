/* fuzz_reader: libFuzzer target for the qkdump reader (make fuzz).
 *
 * Each input is taken as a whole HDF5 file held in memory.  The reader must
 * validate it and read every head of every layer without crashing or reading
 * past a buffer, whatever the bytes; a refusal is a normal outcome.  Shapes
 * are limited to 64 MiB per head so that the fuzzer explores, not allocates. */
#include <stdint.h>
#include <stdlib.h>

#include "pe_dump.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pe_err e;
    pe_open_opts o = {-1, 64.0 * 1024 * 1024};
    pe_dump *d = pe_dump_open_image(data, size, "fuzz.h5", &o, &e);
    if (!d) return 0;
    const pe_meta *m = pe_dump_meta(d);
    double *x = malloc(m->T * (size_t)m->head_dim * sizeof *x);
    for (size_t s = 0; x && s < m->n_layers; s++) {
        for (int t = 0; t < 2; t++) {
            int nh = t == 0 ? m->n_heads : m->n_kv_heads;
            for (int h = 0; h < nh && h < 4; h++)
                if (pe_dump_read_head(d, s, (pe_tensor)t, h, x, &e) < 0) break;
        }
    }
    free(x);
    pe_dump_close(d);
    return 0;
}
