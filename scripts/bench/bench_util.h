/*
 * bench_util.h — what the kernel micro-benchmarks (gemm_kernels.c,
 * matvec_kernels.c) share: a monotonic clock, a seeded random float and the
 * weights they stream: one random matrix quantized to the type under test,
 * copied to fill MIB MiB (default 1024, more than the caches) of 4 KiB
 * pages, as the page cache maps a model file; HOT=1 keeps one copy (the
 * kernels' compute alone, from the caches). Header only: each benchmark is
 * one `cc` line against build/libmoeengine.a.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include "engine/formats.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Uniform in [-1, 1) from xorshift64 state *s. */
static inline float bench_rndf(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((*s >> 11) * 0x1p-53 * 2.0 - 1.0);
}

/* nout random rows of n elements (row_bytes rb) in `type`, drawn from *s,
 * repeated *copies times (set from HOT and MIB) in one mapping of
 * *copies * nout * rb bytes. NULL after a message on stderr on failure. */
static inline uint8_t *bench_weights(int type, int64_t nout, int64_t n, size_t rb, uint64_t *s,
                                     int *copies)
{
    const size_t mb = (size_t)nout * rb;
    const size_t mib = getenv("MIB") ? (size_t)atoll(getenv("MIB")) : 1024;
    *copies = getenv("HOT") ? 1 : (int)((mib << 20) / mb + 1);
    uint8_t *w = mmap(NULL, mb * *copies, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    float *row = malloc((size_t)n * sizeof(float));
    if (w == MAP_FAILED || !row) {
        fprintf(stderr, "bench: cannot allocate %zu MiB of weights\n", (mb * *copies) >> 20);
        free(row);
        return NULL;
    }
    madvise(w, mb * *copies, MADV_NOHUGEPAGE);
    eng_err err = {0};
    for (int64_t r = 0; r < nout; r++) {
        for (int64_t j = 0; j < n; j++)
            row[j] = bench_rndf(s);
        if (eng_quantize_row(type, row, w + r * rb, n, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            free(row);
            return NULL;
        }
    }
    free(row);
    for (int c = 1; c < *copies; c++)
        memcpy(w + (size_t)c * mb, w, mb);
    return w;
}

#endif
