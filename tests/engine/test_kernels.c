/* test_kernels.c — every kernel of every SIMD path against a double-precision
 * reference computed here from the stored bytes, on odd sizes and several
 * seeds; paths against each other; the prepared x (Q8_0) bit-identical on
 * every path and equal to ggml's reference quantization.
 *
 * Tolerance: each path sums n products in f32 in some order (one chain or
 * several accumulators, FMA or not), so its error is at most
 *   gamma_n * sum|w_j x_j| <= (n + 2) * 2^-24 * sum|w_j x_j|
 * (Higham, Accuracy and Stability, eq. 3.5; the +2 covers the scale
 * product d_w * d_x and the conversion of an integer block sum for Q8_0 and
 * Q4_0, where the terms are d_w d_x w_q x_q). The reference is exact to
 * double precision, far inside that bound.
 */
#include "tests/test.h"

#include "engine/formats.h"
#include "engine/kernels.h"

#include <math.h>

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static float rndf(uint64_t *s) { return (float)((rnd(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }

static const int types[] = {ENG_TYPE_F32, ENG_TYPE_F16, ENG_TYPE_BF16, ENG_TYPE_Q8_0, ENG_TYPE_Q4_0};

static bool quantized(int t) { return t == ENG_TYPE_Q8_0 || t == ENG_TYPE_Q4_0; }

/* Reference y[r] and the magnitude sum|terms| for the tolerance. */
static void reference(int type, const void *w, int64_t rows, const eng_xvec *x, double *y, double *mag)
{
    int64_t n = x->n;
    size_t rb = eng_type_row_bytes(type, n);
    float *row = tst_alloc((size_t)n * 4);
    eng_err err = {0};
    for (int64_t r = 0; r < rows; r++) {
        REQUIRE(eng_dequantize_row(type, (const char *)w + r * rb, row, n, &err) == ENG_OK);
        double s = 0, m = 0;
        for (int64_t j = 0; j < n; j++) {
            /* quantized weights meet the Q8_0 form of x: x_j = xq_j * xd_b */
            double xv = quantized(type) ? (double)x->xq[j] * x->xd[j / 32] : x->f32[j];
            s += (double)row[j] * xv;
            m += fabs((double)row[j] * xv);
        }
        y[r] = s;
        mag[r] = m;
    }
}

static void check_type_size(int type, int64_t rows, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)n * 31 + (uint64_t)type + 1;
    float *wf = tst_alloc((size_t)(rows * n) * 4), *x = tst_alloc((size_t)n * 4);
    for (int64_t i = 0; i < rows * n; i++)
        wf[i] = rndf(&s) * (i % 7 == 0 ? 4.0f : 0.5f);
    for (int64_t j = 0; j < n; j++)
        x[j] = rndf(&s) * (j % 5 == 0 ? 3.0f : 1.0f);
    size_t rb = eng_type_row_bytes(type, n);
    uint8_t *w = tst_alloc(rb * (size_t)rows + 1);
    eng_err err = {0};
    for (int64_t r = 0; r < rows; r++)
        REQUIRE(eng_quantize_row(type, wf + r * n, w + r * rb, n, &err) == ENG_OK);

    eng_xvec xv[ENG_SIMD_COUNT];
    double *yref = tst_alloc((size_t)rows * 8), *mag = tst_alloc((size_t)rows * 8);
    for (int p = 0; p < ENG_SIMD_COUNT; p++) {
        const eng_kernels *k = eng_kernels_get((eng_simd)p);
        if (!k)
            continue;
        REQUIRE(eng_xvec_init(&xv[p], n + 64, &err) == ENG_OK);
        REQUIRE(eng_xvec_prepare(k, &xv[p], x, n) == ENG_OK);
        if (p == 0)
            reference(type, w, rows, &xv[0], yref, mag);
        else if (xv[p].has_q8) {   /* bit-identical x quantization */
            CHECK(memcmp(xv[p].xq, xv[0].xq, (size_t)n) == 0);
            CHECK(memcmp(xv[p].xd, xv[0].xd, (size_t)(n / 32) * 4) == 0);
        }
        /* y outside [r0, r1) stays untouched */
        float *y = tst_alloc((size_t)(rows + 2) * 4);
        for (int64_t r = 0; r < rows + 2; r++)
            y[r] = -12345.0f;
        int64_t r0 = rows > 2 ? 1 : 0;
        REQUIRE(eng_matvec(k, type, w, &xv[p], y + 1, r0, rows) == ENG_OK);
        if (r0)
            REQUIRE(eng_matvec(k, type, w, &xv[p], y + 1, 0, r0) == ENG_OK);
        CHECK(y[0] == -12345.0f && y[rows + 1] == -12345.0f);
        for (int64_t r = 0; r < rows; r++) {
            double tol = (double)(n + 2) * 0x1p-24 * mag[r] + 1e-30;
            CHECK_MSG(fabs(y[r + 1] - yref[r]) <= tol, "%s %s rows %lld n %lld seed %llu: y[%lld] %.9g ref %.9g tol %.3g",
                      eng_simd_name((eng_simd)p), eng_type_name(type), (long long)rows, (long long)n,
                      (unsigned long long)seed, (long long)r, (double)y[r + 1], yref[r], tol);
        }
        /* dequantization is exact arithmetic: bit-identical to the scalar one */
        float *d = tst_alloc((size_t)(rows * n) * 4), *dref = tst_alloc((size_t)(rows * n) * 4);
        REQUIRE(eng_dequant_rows(k, type, w, n, 0, rows, d) == ENG_OK);
        REQUIRE(eng_dequant_rows(eng_kernels_get(ENG_SIMD_SCALAR), type, w, n, 0, rows, dref) == ENG_OK);
        CHECK_MSG(memcmp(d, dref, (size_t)(rows * n) * 4) == 0, "%s dequant %s n %lld differs",
                  eng_simd_name((eng_simd)p), eng_type_name(type), (long long)n);
        if (rows > 2) {   /* a row range lands at dst[0] */
            REQUIRE(eng_dequant_rows(k, type, w, n, 1, 2, d) == ENG_OK);
            CHECK(memcmp(d, dref + n, (size_t)n * 4) == 0);
        }
    }
    for (int p = 0; p < ENG_SIMD_COUNT; p++)
        if (eng_kernels_get((eng_simd)p))
            eng_xvec_free(&xv[p]);
}

TEST(matvec_float_formats_odd_sizes)
{
    static const int64_t ns[] = {1, 7, 15, 16, 17, 31, 33, 63, 65, 100, 129, 257, 1000, 2051};
    static const int64_t rows[] = {1, 3, 7, 13};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t r = 0; r < 4; r++)
                for (uint64_t seed = 1; seed <= 3; seed++)
                    check_type_size(types[t], rows[r], ns[i], seed);
}

TEST(matvec_block_formats_odd_block_counts)
{
    static const int64_t blocks[] = {1, 2, 3, 4, 5, 7, 9, 33, 65, 130};
    static const int64_t rows[] = {1, 3, 7, 13};
    for (int t = 3; t < 5; t++)
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
            for (size_t r = 0; r < 4; r++)
                for (uint64_t seed = 1; seed <= 3; seed++)
                    check_type_size(types[t], rows[r], blocks[i] * 32, seed);
}

TEST(prepared_x_equals_ggml_reference_quantization)
{
    uint64_t s = 77;
    const int64_t n = 32 * 37;
    float *x = tst_alloc((size_t)n * 4);
    for (int64_t j = 0; j < n; j++)
        x[j] = rndf(&s) * (j % 32 == 3 ? 100.0f : 1.0f);
    x[40] = 0.5f * 127 / 127;   /* ties to away-from-zero matter: exercise them */
    for (int j = 64; j < 96; j++)
        x[j] = (float)(j - 80) + 0.5f;   /* amax 15.5: many x*id land on .5 boundaries */
    eng_block_q8_0 *ref = tst_alloc((size_t)(n / 32) * sizeof *ref);
    eng_err err = {0};
    REQUIRE(eng_quantize_row(ENG_TYPE_Q8_0, x, ref, n, &err) == ENG_OK);
    for (int p = 0; p < ENG_SIMD_COUNT; p++) {
        const eng_kernels *k = eng_kernels_get((eng_simd)p);
        if (!k)
            continue;
        eng_xvec v;
        REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
        REQUIRE(eng_xvec_prepare(k, &v, x, n) == ENG_OK);
        CHECK(v.has_q8 && v.n == n && v.f32 == x);
        for (int64_t b = 0; b < n / 32; b++) {
            CHECK_MSG(v.xd[b] == eng_fp16_to_fp32(ref[b].d), "%s block %lld scale", eng_simd_name((eng_simd)p), (long long)b);
            CHECK_MSG(memcmp(v.xq + b * 32, ref[b].qs, 32) == 0, "%s block %lld quants",
                      eng_simd_name((eng_simd)p), (long long)b);
        }
        CHECK_EQ_INT(eng_xvec_prepare(k, &v, x, n + 1), ENG_EINVAL);   /* beyond n_max */
        REQUIRE(eng_xvec_prepare(k, &v, x, 33) == ENG_OK);
        CHECK(!v.has_q8);
        float y;
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_Q8_0, ref, &v, &y, 0, 1), ENG_EINVAL);  /* 33 % 32 */
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_Q4_K, ref, &v, &y, 0, 1), ENG_EUNSUPPORTED);
        CHECK_EQ_INT(eng_matvec(k, 99, ref, &v, &y, 0, 1), ENG_EUNSUPPORTED);
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_F32, x, &v, &y, 1, 0), ENG_EINVAL);
        eng_xvec_free(&v);
    }
}

TEST(matvec_extreme_quant_codes)
{
    /* Q8_0 weights of -128 (not produced by quantization, legal in a file)
     * and 127 against x of +-127: the maddubs paths must stay exact. */
    const int64_t n = 32 * 6;
    eng_block_q8_0 w[6];
    float *x = tst_alloc((size_t)n * 4);
    for (int b = 0; b < 6; b++) {
        w[b].d = eng_fp32_to_fp16(1.0f);
        for (int j = 0; j < 32; j++)
            w[b].qs[j] = (int8_t)(j % 2 ? -128 : 127);
    }
    for (int64_t j = 0; j < n; j++)
        x[j] = j % 3 ? 1.0f : -1.0f;
    eng_err err = {0};
    float ys[ENG_SIMD_COUNT];
    for (int p = 0; p < ENG_SIMD_COUNT; p++) {
        const eng_kernels *k = eng_kernels_get((eng_simd)p);
        if (!k)
            continue;
        eng_xvec v;
        REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
        REQUIRE(eng_xvec_prepare(k, &v, x, n) == ENG_OK);
        REQUIRE(eng_matvec(k, ENG_TYPE_Q8_0, w, &v, &ys[p], 0, 1) == ENG_OK);
        double ref = 0;
        for (int64_t j = 0; j < n; j++)
            ref += (double)w[j / 32].qs[j % 32] * v.xq[j] * v.xd[j / 32];
        CHECK_MSG(ys[p] == (float)ref, "%s: %.9g vs %.9g", eng_simd_name((eng_simd)p), (double)ys[p], ref);
        eng_xvec_free(&v);
    }
}
