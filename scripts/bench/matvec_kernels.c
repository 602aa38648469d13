/*
 * matvec_kernels.c — decode's product y = W x (n_out x n_in, stored
 * format) on one thread with the matvec kernel of two SIMD tables (default
 * avx2 and avx512), interleaved A-B-A-B-A in one run so that drift of a
 * shared machine falls on both, and each pass's outputs compared bit for
 * bit with the first one's.
 *
 *   cc -std=gnu11 -O2 -I. -D_GNU_SOURCE scripts/bench/matvec_kernels.c \
 *      build/libmoeengine.a $(pkg-config --libs openblas) -lm -pthread -o matvec_kernels
 *   ./matvec_kernels TYPE N_OUT N_IN [REPS]      e.g. q3_k 1024 2048
 *   HOT=1 ./matvec_kernels ...                   one copy of W, from the caches
 *   MIB=32 ./matvec_kernels ...                  32 MiB of copies (default 1024)
 *   A=scalar B=avx2 ./matvec_kernels ...         other tables (scalar, avx2, avx512)
 *
 * Weights are ~1 GiB of copies of one random matrix in 4 KiB pages, cycled,
 * so each product streams its matrix from DRAM as decode does for a mapped
 * model file. Prints per pass the weight bytes read per second (REPS
 * products, default 400), then B's median over A's.
 */
#include "engine/formats.h"
#include "engine/kernels.h"
#include "scripts/bench/bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int simd_by_name(const char *name)
{
    for (int p = 0; p < ENG_SIMD_COUNT; p++)
        if (!strcmp(eng_simd_name((eng_simd)p), name))
            return eng_simd_available((eng_simd)p) ? p : -1;
    return -1;
}

static int cmp_d(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4 || !strcmp(argv[1], "--help")) {
        fprintf(argc < 4 ? stderr : stdout, "usage: %s TYPE N_OUT N_IN [REPS]  (env HOT=1, A=, B=)\n", argv[0]);
        return argc < 4 ? 2 : 0;
    }
    const int type = eng_type_from_name(argv[1]);
    const int64_t nout = atoll(argv[2]), n = atoll(argv[3]);
    const int reps = argc > 4 ? atoi(argv[4]) : 400;
    const char *an = getenv("A") ? getenv("A") : "avx2", *bn = getenv("B") ? getenv("B") : "avx512";
    const int pa = simd_by_name(an), pb = simd_by_name(bn);
    const size_t rb = type < 0 ? 0 : eng_type_row_bytes(type, n), mb = rb * (size_t)nout;
    if (type < 0 || !rb || nout < 1 || reps < 1 || pa < 0 || pb < 0) {
        fprintf(stderr, "bad arguments (type %s, sizes, REPS, or table A=%s B=%s not available)\n", argv[1], an, bn);
        return 2;
    }
    /* MIB=N: N MiB of copies (default 1024: DRAM; 32: the last-level cache) */
    uint64_t s = 1;
    int copies;
    uint8_t *w = bench_weights(type, nout, n, rb, &s, &copies);
    if (!w)
        return 1;
    float *row = malloc((size_t)n * 4), *y = malloc((size_t)nout * 4), *y0 = malloc((size_t)nout * 4);
    eng_err err = {0};
    for (int64_t j = 0; j < n; j++)
        row[j] = bench_rndf(&s);
    printf("%s %lld x %lld, %.2f MB per matrix, %d copies (%s), %d products per pass\n", argv[1], (long long)nout,
           (long long)n, mb / 1e6, copies, copies > 1 ? "cycled copies" : "hot (one copy)", reps);
    const int order[5] = {pa, pb, pa, pb, pa};
    double gbs[2][3];
    int cnt[2] = {0, 0};
    for (int pass = 0; pass < 5; pass++) {
        const eng_kernels *k = eng_kernels_get((eng_simd)order[pass]);
        eng_xvec xv;
        if (eng_xvec_init(&xv, n, &err) || eng_xvec_prepare(k, &xv, row, n) || eng_matvec(k, type, w, &xv, y, 0, nout))
            return 1;
        const double t0 = bench_now();
        for (int rep = 0; rep < reps; rep++)
            eng_matvec(k, type, w + (size_t)(rep % copies) * mb, &xv, y, 0, nout);
        const double dt = bench_now() - t0;
        const int ab = pass % 2;
        gbs[ab][cnt[ab]++] = mb * (double)reps / dt * 1e-9;
        if (pass == 0)
            memcpy(y0, y, (size_t)nout * 4);
        printf("  pass %d %-7s %7.2f GB/s  %s\n", pass + 1, eng_kernels_name(k), gbs[ab][cnt[ab] - 1],
               memcmp(y, y0, (size_t)nout * 4) ? "OUTPUT DIFFERS from pass 1" : "same bits as pass 1");
        eng_xvec_free(&xv);
    }
    qsort(gbs[0], 3, sizeof(double), cmp_d);
    qsort(gbs[1], 2, sizeof(double), cmp_d);
    const double mb_ = (gbs[1][0] + gbs[1][1]) / 2;
    printf("  %s median %.2f GB/s, %s mean %.2f GB/s: ratio %.2fx (range %.2f-%.2f)\n", an, gbs[0][1], bn, mb_,
           mb_ / gbs[0][1], gbs[1][0] / gbs[0][2], gbs[1][1] / gbs[0][0]);
    return 0;
}
