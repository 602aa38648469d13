/*
 * cmd_bench_sys.c — `moebench bench-sys`: the two machine limits the
 * engine's speed is judged against in docs/performance.md.
 *
 *   memory read bandwidth: T threads each sum a disjoint part of a buffer
 *     much larger than the caches (AVX2 loads when the CPU has them), best
 *     of several passes;
 *   sgemm FLOP/s: OpenBLAS cblas_sgemm on square f32 matrices with
 *     OpenBLAS set to T threads, best of several runs, 2*M*N*K per call.
 */
#include "engine/formats.h"
#include "engine/pool.h"
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"

#include <cblas.h>
#include <getopt.h>
#include <immintrin.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

static const char usage_text[] =
    "usage: moebench bench-sys [--threads T] [--mib N] [--gemm N] [--json]\n\n"
    "Measures this machine's memory read bandwidth (all T threads) and OpenBLAS\n"
    "sgemm FLOP/s (N x N x N, OpenBLAS on T threads): the limits decode and\n"
    "prefill speed are compared with (docs/performance.md).\n\n"
    "  --threads T   threads (default: all online CPUs)\n"
    "  --mib N       buffer size for the bandwidth test (default 1024)\n"
    "  --gemm N      sgemm size (default 1024)\n"
    "  --json        one JSON object\n"
    "  -h, --help    this text\n";

typedef struct bw_ctx {
    const uint64_t *buf;
    size_t n_words;
    int n_tasks;
    uint64_t sink[64];
} bw_ctx;

__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(p + i + 4)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(p + i + 8)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(p + i + 12)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    uint64_t r[4];
    _mm256_storeu_si256((__m256i *)r, a);
    for (; i < n; i++)
        r[0] ^= p[i];
    return r[0] ^ r[1] ^ r[2] ^ r[3];
}

static uint64_t sum_scalar(const uint64_t *p, size_t n)
{
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a ^= p[i];
        b ^= p[i + 1];
        c ^= p[i + 2];
        d ^= p[i + 3];
    }
    for (; i < n; i++)
        a ^= p[i];
    return a ^ b ^ c ^ d;
}

static void bw_task(void *ctx, int task, int thread)
{
    bw_ctx *c = ctx;
    size_t per = (c->n_words / (size_t)c->n_tasks) & ~(size_t)15;
    const uint64_t *p = c->buf + per * (size_t)task;
    size_t n = task == c->n_tasks - 1 ? c->n_words - per * (size_t)task : per;
    c->sink[thread & 63] ^= eng_simd_available(ENG_SIMD_AVX2) ? sum_avx2(p, n) : sum_scalar(p, n);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int measure_bw(int threads, int64_t mib, double *gbs, eng_err *err)
{
    size_t bytes = (size_t)mib << 20;
    uint64_t *buf = aligned_alloc(64, bytes);
    if (!buf)
        return eng_err_set(err, ENG_ENOMEM, "bandwidth buffer of %lld MiB", (long long)mib);
    eng_pool *pool;
    int rc = eng_pool_open(&pool, threads, err);
    if (rc) {
        free(buf);
        return rc;
    }
    for (size_t i = 0; i < bytes / 8; i++)
        buf[i] = i * 0x9e3779b97f4a7c15ull;
    bw_ctx c = {.buf = buf, .n_words = bytes / 8, .n_tasks = eng_pool_threads(pool)};
    double best = 1e30;
    for (int rep = 0; rep < 6; rep++) {
        double t = now_s();
        eng_pool_run(pool, bw_task, &c, c.n_tasks);
        t = now_s() - t;
        best = t < best ? t : best;
    }
    *gbs = (double)bytes / best / 1e9;
    eng_pool_free(pool);
    free(buf);
    return ENG_OK;
}

static int measure_sgemm(int threads, int n, double *gflops, eng_err *err)
{
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b);
    float *c = malloc((size_t)n * n * sizeof *c);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return eng_err_set(err, ENG_ENOMEM, "sgemm matrices of %d x %d", n, n);
    }
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 13) * 0.01f;
        b[i] = (float)(i % 7) * 0.02f;
    }
    openblas_set_num_threads(threads);
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        t = now_s() - t;
        best = t < best ? t : best;
    }
    openblas_set_num_threads(1);
    *gflops = 2.0 * n * (double)n * n / best / 1e9;
    free(a), free(b), free(c);
    return ENG_OK;
}

int hx_cli_cmd_bench_sys(int argc, char **argv)
{
    static const struct option lo[] = {
        {"threads", required_argument, 0, 't'}, {"mib", required_argument, 0, 'm'},
        {"gemm", required_argument, 0, 'g'},    {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    int threads = 0, json = 0, gemm = 1024, c, rc = 0;
    int64_t mib = 1024;
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
        switch (c) {
        case 't': rc = hx_cli_parse_int("bench-sys", "--threads", optarg, 1, 1024, &threads); break;
        case 'm': rc = hx_cli_parse_i64("bench-sys", "--mib", optarg, 1, 1 << 16, &mib); break;
        case 'g': rc = hx_cli_parse_int("bench-sys", "--gemm", optarg, 16, 8192, &gemm); break;
        case 'j': json = 1; break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("bench-sys", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (rc)
        return rc;
    if (optind < argc)
        return hx_cli_usage_error("bench-sys", "unexpected argument '%s'", argv[optind]);
    if (!threads)
        threads = eng_cpu_count();
    eng_err err = {0};
    double gbs = 0, gflops = 0;
    if ((rc = measure_bw(threads, mib, &gbs, &err)) ||
        (rc = measure_sgemm(threads, gemm, &gflops, &err)))
        return hx_cli_fail("bench-sys", rc, "%s", err.msg);
    if (json)
        printf("{\"threads\": %d, \"mem_read_gbs\": %.3f, \"sgemm_gflops\": %.2f, "
               "\"sgemm_n\": %d, \"buffer_mib\": %lld}\n",
               threads, gbs, gflops, gemm, (long long)mib);
    else
        printf("threads %d: memory read %.2f GB/s (%lld MiB buffer), sgemm %.1f GFLOP/s "
               "(%d^3)\n",
               threads, gbs, (long long)mib, gflops, gemm);
    return HX_CLI_EXIT_OK;
}
