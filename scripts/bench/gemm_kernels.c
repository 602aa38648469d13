/*
 * gemm_kernels.c — one prefill product Y = X W^T of an expert-shaped matrix
 * (n_out x n_in, stored format) with T activation rows, timed three ways on
 * one thread: the kernels of engine/gemm.h on each available path (integer
 * for the block formats, float for f32/f16/bf16), and the former path
 * (16-row tiles dequantized to f32, then OpenBLAS sgemm; for f32 weights
 * sgemm on the weights themselves).
 *
 *   cc -std=gnu11 -O2 -I. -D_GNU_SOURCE scripts/bench/gemm_kernels.c \
 *      build/libmoeengine.a $(pkg-config --libs openblas) -lm -pthread -o gemm_kernels
 *   ./gemm_kernels TYPE N_OUT N_IN T [REPS]     e.g. q8_0 1024 2048 8
 *   HOT=1 ./gemm_kernels ...                    one copy of W, from the caches
 *   TILE=64 ./gemm_kernels ...                  64 rows per sgemm call (default 16)
 *   MIB=4096 ./gemm_kernels ...                 cycle through 4 GiB of copies (default 1024)
 *
 * Prints per way: ms per product, GMAC/s, and the weight bytes read per
 * second. Weights are 1 GiB of copies of one random matrix in 4 KiB pages,
 * cycled, so each product reads its matrix from DRAM through the TLB as
 * prefill does for the experts of a mapped model file.
 */
#include "engine/formats.h"
#include "engine/gemm.h"
#include "engine/kernels.h"
#include "scripts/bench/bench_util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int num_threads);

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s TYPE N_OUT N_IN T [REPS]\n", argv[0]);
        return 2;
    }
    const int type = eng_type_from_name(argv[1]);
    const int64_t nout = atoll(argv[2]), n = atoll(argv[3]), T = atoll(argv[4]);
    const int reps = argc > 5 ? atoi(argv[5]) : 50;
    /* TILE=R: rows per sgemm call of the former path (the engine used 16) */
    const int64_t tile_rows = getenv("TILE") ? atoll(getenv("TILE")) : 16;
    const size_t rb = eng_type_row_bytes(type, n), mb = rb * (size_t)nout;
    if (type < 0 || !rb || nout < 1 || T < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    openblas_set_num_threads(1);
    /* HOT=1: one copy, read from the caches (the kernels' compute alone);
     * else copies filling MIB MiB (1024), more than this VM's L3 reports */
    uint64_t s = 1;
    int copies;
    uint8_t *w = bench_weights(type, nout, n, rb, &s, &copies);
    float *X = malloc((size_t)(T * n) * 4);
    float *Y = malloc((size_t)(T * nout) * 4), *tile = aligned_alloc(64, (size_t)((tile_rows > 16 ? tile_rows : 16) * n) * 4 + 128);
    if (!w)
        return 1;
    for (int64_t i = 0; i < T * n; i++)
        X[i] = bench_rndf(&s);
    const double macs = (double)T * n * nout;
    printf("%s %lld x %lld, T = %lld, %.2f MB per matrix, %d reps\n", argv[1], (long long)nout,
           (long long)n, (long long)T, mb / 1e6, reps);
    for (int p = 0; p < ENG_SIMD_COUNT; p++) {
        if (!eng_simd_available((eng_simd)p))
            continue;
        const eng_gemm_kernels *g = eng_gemm_get((eng_simd)p);
        const eng_kernels *k = eng_kernels_get((eng_simd)p);
        double best = 1e30;
        for (int way = 0; way < 2; way++) {
            const bool fl = eng_gemm_has_f(g, type);
            if (way == 0 && !eng_gemm_has(g, type) && !fl)
                continue;
            void *qb = aligned_alloc(64, eng_qx_bytes(T, n) + eng_xt_bytes(T, n, g->kc_f) + 64);
            eng_qx qx;
            eng_xt xt;
            if (fl)
                eng_xt_bind(&xt, qb, T, n, g->kc_f, eng_type_xform(type));
            else
                eng_qx_bind(&qx, qb, T, n, g->kc, eng_type_xform(type));
            best = 1e30;
            for (int rep = 0; rep < reps; rep++) {
                /* never copy 0: the set-up's memcpy read it last, so it
                 * sits in the L3 and a best-of would time the cache */
                const int cp = copies > 1 ? 1 + rep % (copies - 1) : 0;
                const uint8_t *wm = w + (size_t)cp * mb;
                double t0 = bench_now();
                if (way == 0 && fl) {
                    for (int64_t t = 0; t < T; t++)
                        eng_xt_row(k, &xt, t, X + t * n);
                    for (int64_t r = 0; r < nout; r += 16)
                        g->gemm_f[type](wm, rb, &xt, Y, nout, r, r + 16 < nout ? r + 16 : nout, tile);
                } else if (way == 0) {
                    for (int64_t t = 0; t < T; t++)
                        eng_qx_row(k, &qx, t, X + t * n);
                    for (int64_t r = 0; r < nout; r += 16)
                        g->gemm[type](wm, rb, &qx, Y, nout, r, r + 16 < nout ? r + 16 : nout, tile);
                } else {
                    for (int64_t r = 0; r < nout; r += tile_rows) {
                        int64_t r1 = r + tile_rows < nout ? r + tile_rows : nout;
                        const float *B = (const float *)(wm + r * rb);
                        if (type != ENG_TYPE_F32) {
                            eng_dequant_rows(k, type, wm, n, r, r1, tile);
                            B = tile;
                        }
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)(r1 - r),
                                    (int)n, 1.0f, X, (int)n, B, (int)n, 0.0f, Y + r, (int)nout);
                    }
                }
                double dt = bench_now() - t0;
                if (dt < best)
                    best = dt;
            }
            printf("  %-7s %-22s %8.3f ms  %7.1f GMAC/s  %6.2f GB/s\n", eng_simd_name((eng_simd)p),
                   way ? "dequant + sgemm" : fl ? "float (gemm.h)" : "integer (gemm.h)", best * 1e3,
                   macs / best * 1e-9, mb / best * 1e-9);
            free(qb);
        }
    }
    return 0;
}
