/* gemmrate: the machine's own single-thread GEMM rates, for `make bench`.
 *
 *   gemmrate [SECONDS] [T]
 *
 * Prints one line per measurement, "NAME GFLOPS" (2 m n k flops per call,
 * the best of 5 timed rounds of at least SECONDS/5 each; default 1 second in
 * all per measurement):
 *   sgemm_tile   32 x 256 x 128 calls walking a T x 128 key matrix (T 8192),
 *                C row-major with a stride of T: the shape and access
 *                pattern of peanalyze's tiles, in single precision;
 *   dgemm_tile   the same in double (what peanalyze calls);
 *   sgemm_square 2048 x 2048 x 2048, single precision;
 *   dgemm_square the same in double.
 * OpenBLAS runs on one thread (openblas_set_num_threads(1)), as in the tools. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double fill(size_t i)
{
    return (double)((i * 2654435761u) % 1000) / 500.0 - 1.0;
}

typedef void (*kernel_fn)(void *ctx);

typedef struct {
    int single, M, N, K;
    size_t T, j0;
    void *a, *b, *c;
} job;

static void run_tile(void *p)
{
    job *w = p;
    /* one tile: 32 query rows against the next 256 keys of the T keys */
    if (w->j0 + (size_t)w->N > w->T) w->j0 = 0;
    if (w->single)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, w->M, w->N, w->K, 0.088f, w->a, w->K,
                    (float *)w->b + w->j0 * (size_t)w->K, w->K, 0.0f, (float *)w->c + w->j0, (int)w->T);
    else
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, w->M, w->N, w->K, 0.088, w->a, w->K,
                    (double *)w->b + w->j0 * (size_t)w->K, w->K, 0.0, (double *)w->c + w->j0, (int)w->T);
    w->j0 += (size_t)w->N;
}

static void run_square(void *p)
{
    job *w = p;
    if (w->single)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, w->M, w->N, w->K, 1.0f, w->a, w->K, w->b, w->N,
                    0.0f, w->c, w->N);
    else
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, w->M, w->N, w->K, 1.0, w->a, w->K, w->b, w->N,
                    0.0, w->c, w->N);
}

static double rate(kernel_fn f, job *w, double seconds)
{
    double flops = 2.0 * w->M * w->N * w->K, best = 0;
    f(w); /* warm up */
    for (int round = 0; round < 5; round++) {
        long calls = 0;
        double t0 = now(), t;
        do {
            f(w);
            calls++;
            t = now() - t0;
        } while (t < seconds / 5);
        double r = flops * (double)calls / t / 1e9;
        if (r > best) best = r;
    }
    return best;
}

static void *alloc(size_t n, int single)
{
    size_t sz = single ? sizeof(float) : sizeof(double);
    void *p = malloc(n * sz);
    if (!p) {
        fprintf(stderr, "gemmrate: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        if (single)
            ((float *)p)[i] = (float)fill(i);
        else
            ((double *)p)[i] = fill(i);
    }
    return p;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    size_t T = argc > 2 ? (size_t)atol(argv[2]) : 8192;
    int S = argc > 3 ? atoi(argv[3]) : 2048;
    if (seconds <= 0 || T < 256 || S < 16) {
        fprintf(stderr, "usage: gemmrate [SECONDS > 0] [T >= 256] [SQUARE >= 16]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    for (int single = 1; single >= 0; single--) {
        job w = {single, 32, 256, 128, T, 0, NULL, NULL, NULL};
        w.a = alloc(32 * 128, single);
        w.b = alloc(T * 128, single);
        w.c = alloc(32 * T, single);
        printf("%s_tile %.2f\n", single ? "sgemm" : "dgemm", rate(run_tile, &w, seconds));
        free(w.a);
        free(w.b);
        free(w.c);
    }
    for (int single = 1; single >= 0; single--) {
        job w = {single, S, S, S, 0, 0, NULL, NULL, NULL};
        w.a = alloc((size_t)S * S, single);
        w.b = alloc((size_t)S * S, single);
        w.c = alloc((size_t)S * S, single);
        printf("%s_square %.2f\n", single ? "sgemm" : "dgemm", rate(run_square, &w, seconds));
        free(w.a);
        free(w.b);
        free(w.c);
    }
    return 0;
}
