/* test_kernels.c — every kernel of every SIMD table against a
 * double-precision reference computed here from the stored bytes (the
 * spec decoder, spec_formats.c) and the partner form of x, on odd sizes
 * and several seeds; dequantization bit-exact against the spec; blocks of
 * random bytes (every code); hand-made blocks with values worked out by
 * hand; argument errors; the lazily built x forms under concurrent use.
 * Bit-exact agreement with llama.cpp is test_ggml_parity.c's job.
 *
 * Tolerance: a kernel sums the n products w_j x~_j (x~ the partner form's
 * value of x_j) in f32 with exact integer sums per block, in some order of
 * lanes and FMAs, so its error is at most
 *   gamma_n * sum |terms| <= (n + 2) * 2^-24 * sum |terms|
 * (Higham, Accuracy and Stability, eq. 3.5; +2 for the scale product and
 * the conversion of a block's integer sum). With a min part (y = a - b),
 * the kernels sum both parts apart: |terms| = (|a_j| + |b_j|) |x~_j|, and
 * for Q4_1/Q5_1 the min meets x through Q8_1's stored s (an fp16 value)
 * per block, as in ggml, so the reference uses s too.
 * The AVX-512 f16 dot with AVX512-FP16 accumulates in f16 (unit roundoff
 * u = 2^-11): each of its 128 lanes sums n/128 products, then 7 more
 * additions reduce the lanes, so its error is at most
 *   ((n/128 + 7) * u + (n + 2) * 2^-24) * sum |terms| (* 1.01 for the
 * second-order terms).
 */
#include "tests/test.h"

#include "engine/formats.h"
#include "engine/kernels.h"
#include "tests/engine/spec_formats.h"

#include <math.h>
#include <stddef.h>
#include <pthread.h>

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static float rndf(uint64_t *s) { return (float)((rnd(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }

static const int k_types[] = {ENG_TYPE_F32,  ENG_TYPE_F16,  ENG_TYPE_BF16,  ENG_TYPE_Q8_0,
                              ENG_TYPE_Q4_0, ENG_TYPE_Q4_1, ENG_TYPE_Q5_0,  ENG_TYPE_Q5_1,
                              ENG_TYPE_IQ4_NL, ENG_TYPE_MXFP4, ENG_TYPE_Q2_K, ENG_TYPE_Q3_K,
                              ENG_TYPE_Q4_K, ENG_TYPE_Q5_K, ENG_TYPE_Q6_K, ENG_TYPE_IQ4_XS};
enum { NTYPES = sizeof k_types / sizeof k_types[0] };

/* Every table this CPU runs: scalar, AVX2, the AVX-512 variants. */
static int all_tables(const eng_kernels **out)
{
    int n = 0;
    out[n++] = &eng_kernels_scalar;
    if (eng_simd_available(ENG_SIMD_AVX2))
        out[n++] = &eng_kernels_avx2;
    if (eng_simd_available(ENG_SIMD_AVX512)) {
        out[n++] = &eng_kernels_avx512;
        if (eng_cpu_has_avx512fp16())
            out[n++] = &eng_kernels_avx512_fp16;
        if (eng_cpu_has_avx512bf16())
            out[n++] = &eng_kernels_avx512_bf16;
        if (eng_cpu_has_avx512fp16() && eng_cpu_has_avx512bf16())
            out[n++] = &eng_kernels_avx512_fp16_bf16;
    }
    return n;
}

/* x_j as the kernels of `type` see it: the partner form's value. */
static double xval(int type, const eng_xvec *x, int64_t j)
{
    switch (eng_type_xform(type)) {
    case ENG_XF_Q8: return (double)x->q8_qs[j] * x->q8_d[j / 32];
    case ENG_XF_Q8K: return (double)x->q8k_qs[j] * x->q8k_d[j / 256];
    case ENG_XF_F16: return eng_fp16_to_fp32(x->f16[j]);
    case ENG_XF_BF16: return eng_bf16_to_fp32(x->bf16[j]);
    default: return x->f32[j];
    }
}

/* Reference y[r] and sum|terms| (see the header) from the spec decoder. */
static void reference(int type, const uint8_t *w, int64_t rows, const eng_xvec *x, double *y, double *mag)
{
    const int64_t n = x->n;
    const size_t rb = eng_type_row_bytes(type, n);
    double *a = tst_alloc((size_t)n * 8), *b = tst_alloc((size_t)n * 8);
    const bool q8_1 = type == ENG_TYPE_Q4_1 || type == ENG_TYPE_Q5_1;
    for (int64_t r = 0; r < rows; r++) {
        spec_row(type, w + (size_t)r * rb, n, a, b);
        double s = 0, m = 0;
        for (int64_t j = 0; j < n; j++) {
            const double xv = xval(type, x, j);
            s += a[j] * xv;
            m += fabs(a[j] * xv);
            if (!q8_1) {
                s -= b[j] * xv;
                m += fabs(b[j] * xv);
            } else if (j % 32 == 0) {   /* min * s, s = fp16(d * sum q) per block */
                s -= b[j] * x->q8_s[j / 32];
                m += fabs(b[j] * x->q8_s[j / 32]);
            }
        }
        y[r] = s;
        mag[r] = m;
    }
}

static double tolerance(const eng_kernels *k, int type, int64_t n, double mag)
{
    double t = (double)(n + 2) * 0x1p-24;
    if (type == ENG_TYPE_F16 && strstr(eng_kernels_name(k), "fp16"))
        t = 1.01 * (t + (double)(n / 128 + 7) * 0x1p-11);
    return t * mag + 1e-30;
}

static float *random_weights(uint64_t *s, int64_t count)
{
    float *w = tst_alloc((size_t)count * 4);
    for (int64_t i = 0; i < count; i++)
        w[i] = rndf(s) * (i % 7 == 0 ? 4.0f : 0.5f);
    return w;
}

static void check_type_size(int type, int64_t rows, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)n * 31 + (uint64_t)type + 1;
    float *wf = random_weights(&s, rows * n), *x = tst_alloc((size_t)n * 4);
    for (int64_t j = 0; j < n; j++)
        x[j] = rndf(&s) * (j % 5 == 0 ? 3.0f : 1.0f);
    const size_t rb = eng_type_row_bytes(type, n);
    uint8_t *w = tst_alloc(rb * (size_t)rows + 1);
    eng_err err = {0};
    for (int64_t r = 0; r < rows; r++)
        REQUIRE(eng_quantize_row(type, wf + r * n, w + r * rb, n, &err) == ENG_OK);
    const eng_kernels *tabs[6];
    const int nt = all_tables(tabs);
    double *yref = tst_alloc((size_t)rows * 8), *mag = tst_alloc((size_t)rows * 8);
    double *a = tst_alloc((size_t)n * 8), *b = tst_alloc((size_t)n * 8);
    float *y = tst_alloc((size_t)(rows + 2) * 4), *d = tst_alloc((size_t)(rows * n) * 4);
    for (int p = 0; p < nt; p++) {
        eng_xvec xv;
        REQUIRE(eng_xvec_init(&xv, n + 64, &err) == ENG_OK);
        REQUIRE(eng_xvec_prepare(tabs[p], &xv, x, n) == ENG_OK);
        for (int64_t r = 0; r < rows + 2; r++)
            y[r] = -12345.0f;
        int64_t r0 = rows > 2 ? 1 : 0;   /* two calls: a row range in the middle too */
        REQUIRE(eng_matvec(tabs[p], type, w, &xv, y + 1, r0, rows) == ENG_OK);
        if (r0)
            REQUIRE(eng_matvec(tabs[p], type, w, &xv, y + 1, 0, r0) == ENG_OK);
        CHECK(y[0] == -12345.0f && y[rows + 1] == -12345.0f);   /* nothing outside [r0, r1) */
        reference(type, w, rows, &xv, yref, mag);
        for (int64_t r = 0; r < rows; r++) {
            const double tol = tolerance(tabs[p], type, n, mag[r]);
            CHECK_MSG(fabs(y[r + 1] - yref[r]) <= tol,
                      "%s %s rows %lld n %lld seed %llu: y[%lld] %.9g ref %.9g tol %.3g",
                      eng_kernels_name(tabs[p]), eng_type_name(type), (long long)rows, (long long)n,
                      (unsigned long long)seed, (long long)r, (double)y[r + 1], yref[r], tol);
        }
        /* dequantization: the spec's value rounded once, on every path */
        REQUIRE(eng_dequant_rows(tabs[p], type, w, n, 0, rows, d) == ENG_OK);
        for (int64_t r = 0; r < rows; r++) {
            spec_row(type, w + (size_t)r * rb, n, a, b);
            for (int64_t j = 0; j < n; j++) {
                const float want = (float)(a[j] - b[j]);
                CHECK_MSG(memcmp(&d[r * n + j], &want, 4) == 0, "%s dequant %s [%lld][%lld]: %a vs %a",
                          eng_kernels_name(tabs[p]), eng_type_name(type), (long long)r, (long long)j,
                          (double)d[r * n + j], (double)want);
            }
        }
        if (rows > 2) {   /* a row range lands at dst[0] */
            float *d1 = tst_alloc((size_t)n * 4);
            REQUIRE(eng_dequant_rows(tabs[p], type, w, n, 1, 2, d1) == ENG_OK);
            CHECK(memcmp(d1, d + n, (size_t)n * 4) == 0);
        }
        eng_xvec_free(&xv);
    }
}

TEST(matvec_float_formats_odd_sizes)
{
    static const int64_t ns[] = {1, 7, 15, 16, 17, 31, 33, 63, 65, 100, 127, 129, 257, 1000, 2051};
    static const int64_t rows[] = {1, 3, 7, 13};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t r = 0; r < 4; r++)
                for (uint64_t seed = 1; seed <= 2; seed++)
                    check_type_size(k_types[t], rows[r], ns[i], seed);
}

TEST(matvec_blocks_of_32_odd_block_counts)
{
    static const int64_t blocks[] = {1, 2, 3, 4, 5, 7, 9, 33, 65, 130};
    static const int64_t rows[] = {1, 3, 5, 13};   /* 4-row groups and remainders */
    for (int t = 3; t < 10; t++)
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
            for (size_t r = 0; r < 4; r++)
                for (uint64_t seed = 1; seed <= 2; seed++)
                    check_type_size(k_types[t], rows[r], blocks[i] * 32, seed);
}

TEST(matvec_super_blocks_of_256)
{
    static const int64_t blocks[] = {1, 2, 3, 5, 8, 11};
    static const int64_t rows[] = {1, 3, 7};
    for (int t = 10; t < NTYPES; t++)
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
            for (size_t r = 0; r < 3; r++)
                for (uint64_t seed = 1; seed <= 2; seed++)
                    check_type_size(k_types[t], rows[r], blocks[i] * 256, seed);
}

/* Blocks of random bytes (any byte is a valid code; only the scales are
 * kept finite and small): every code, sign and scale value occurs,
 * including ones the quantizers never write (Q6_K scale -128, Q8_0 -128).
 * Matvec of every table against the reference, dequant bit-exact. */
static void random_bytes_check(int type, int64_t rows, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 7919 + (uint64_t)type;
    const eng_format *f = eng_format_get(type);
    const size_t rb = eng_type_row_bytes(type, n), nblk = rb * (size_t)rows / f->type_size;
    uint8_t *w = tst_alloc(rb * (size_t)rows);
    for (size_t i = 0; i < rb * (size_t)rows; i++)
        w[i] = (uint8_t)rnd(&s);
    int nf;
    bool e8m0;
    const int *off = spec_half_fields(type, &nf, &e8m0);
    for (size_t blk = 0; blk < nblk; blk++) {
        uint8_t *p = w + blk * f->type_size;
        for (int k = 0; k < nf; k++) {   /* magnitude <= 2^-4, any sign, subnormals too */
            uint16_t h = (uint16_t)((rnd(&s) & 0x83ff) | ((rnd(&s) % 12) << 10));
            memcpy(p + off[k], &h, 2);
        }
        if (e8m0)
            p[0] = (uint8_t)(118 + rnd(&s) % 12);   /* 2^-10 .. 2^1 */
    }
    float *x = tst_alloc((size_t)n * 4);
    for (int64_t j = 0; j < n; j++)
        x[j] = rndf(&s);
    double *yref = tst_alloc((size_t)rows * 8), *mag = tst_alloc((size_t)rows * 8);
    double *a = tst_alloc((size_t)n * 8), *b = tst_alloc((size_t)n * 8);
    float *y = tst_alloc((size_t)rows * 4), *d = tst_alloc((size_t)n * 4);
    eng_err err = {0};
    const eng_kernels *tabs[6];
    const int nt = all_tables(tabs);
    for (int p = 0; p < nt; p++) {
        eng_xvec v;
        REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
        REQUIRE(eng_xvec_prepare(tabs[p], &v, x, n) == ENG_OK);
        REQUIRE(eng_matvec(tabs[p], type, w, &v, y, 0, rows) == ENG_OK);
        reference(type, w, rows, &v, yref, mag);
        for (int64_t r = 0; r < rows; r++) {
            const double tol = tolerance(tabs[p], type, n, mag[r]);
            CHECK_MSG(fabs(y[r] - yref[r]) <= tol, "%s %s random bytes row %lld: %.9g vs %.9g (tol %.3g)",
                      eng_kernels_name(tabs[p]), eng_type_name(type), (long long)r, (double)y[r], yref[r], tol);
            REQUIRE(eng_dequant_rows(tabs[p], type, w, n, r, r + 1, d) == ENG_OK);
            spec_row(type, w + (size_t)r * rb, n, a, b);
            for (int64_t j = 0; j < n; j++) {
                const float want = (float)(a[j] - b[j]);
                CHECK_MSG(memcmp(&d[j], &want, 4) == 0, "%s %s random bytes dequant [%lld]: %a vs %a",
                          eng_kernels_name(tabs[p]), eng_type_name(type), (long long)j, (double)d[j], (double)want);
            }
        }
        eng_xvec_free(&v);
    }
}

TEST(random_block_bytes_every_format)
{
    for (uint64_t seed = 1; seed <= 3; seed++)
        for (int t = 3; t < NTYPES; t++) {
            const int64_t blck = eng_format_get(k_types[t])->blck;
            random_bytes_check(k_types[t], 5, blck == 32 ? 32 * 9 : 256 * 3, seed);
        }
}

/* One hand-made block per format, values worked out by hand from the spec
 * formulas (docs/engine.md), and every table decoding it to those bits. */
static void decode_all(int type, const void *blk, int64_t n, float *y)
{
    eng_err err = {0};
    REQUIRE(eng_dequantize_row(type, blk, y, n, &err) == ENG_OK);
    const eng_kernels *tabs[6];
    const int nt = all_tables(tabs);
    float z[256];
    for (int p = 1; p < nt; p++) {
        REQUIRE(eng_dequant_rows(tabs[p], type, blk, n, 0, 1, z) == ENG_OK);
        CHECK_MSG(memcmp(z, y, (size_t)n * 4) == 0, "%s %s", eng_kernels_name(tabs[p]), eng_type_name(type));
    }
}

TEST(known_blocks_of_32_decode_to_known_values)
{
    float y[32];
    /* Q5_0: d = 0.5 (0x3800), qs[j] = j | (15 - j) << 4, qh = bits 1 and 17:
     * element 1 = ((1 | 16) - 16) * 0.5 = 0.5, element 17 = ((14 | 16) -
     * 16) * 0.5 = 7, element 0 = (0 - 16) * 0.5 = -8, 16: (15 - 16) * 0.5. */
    uint8_t q5[22] = {0x00, 0x38, 0x02, 0x00, 0x02, 0x00};
    for (int j = 0; j < 16; j++)
        q5[6 + j] = (uint8_t)(j | (15 - j) << 4);
    decode_all(ENG_TYPE_Q5_0, q5, 32, y);
    CHECK(y[0] == -8.0f && y[1] == 0.5f && y[16] == -0.5f && y[17] == 7.0f && y[2] == -7.0f);
    /* Q4_1: d = 2 (0x4000), m = -1 (0xbc00); qs[3] = 0x5a: element 3 =
     * 10 * 2 - 1 = 19, element 19 = 5 * 2 - 1 = 9; element 0 = -1. */
    uint8_t q41[20] = {0x00, 0x40, 0x00, 0xbc};
    q41[4 + 3] = 0x5a;
    decode_all(ENG_TYPE_Q4_1, q41, 32, y);
    CHECK(y[3] == 19.0f && y[19] == 9.0f && y[0] == -1.0f);
    /* Q5_1: d = 0.5, m = 3 (0x4200), qh = bit 2 and bit 20, qs[2] = 0x31,
     * qs[4] = 0x0f: element 2 = (1 | 16) * 0.5 + 3 = 11.5, element 18 =
     * 3 * 0.5 + 3 = 4.5, element 20 = (0 | 16) * 0.5 + 3 = 11,
     * element 4 = 15 * 0.5 + 3 = 10.5. */
    uint8_t q51[24] = {0x00, 0x38, 0x00, 0x42, 0x04, 0x00, 0x10, 0x00};
    q51[8 + 2] = 0x31;
    q51[8 + 4] = 0x0f;
    decode_all(ENG_TYPE_Q5_1, q51, 32, y);
    CHECK_MSG(y[2] == 11.5f && y[18] == 4.5f && y[20] == 11.0f && y[4] == 10.5f, "%g %g %g %g",
              (double)y[2], (double)y[18], (double)y[20], (double)y[4]);
    /* IQ4_NL: d = 0.25 (0x3400), qs[0] = 0xf0: element 0 = code 0 = -127
     * * 0.25 = -31.75, element 16 = code 15 = 113 * 0.25 = 28.25;
     * qs[1] = 0x88: elements 1 and 17 = 1 * 0.25. */
    uint8_t iq[18] = {0x00, 0x34, 0xf0, 0x88};
    decode_all(ENG_TYPE_IQ4_NL, iq, 32, y);
    CHECK(y[0] == -31.75f && y[16] == 28.25f && y[1] == 0.25f && y[17] == 0.25f);
    /* MXFP4: e = 130 (2^2), qs[0] = 0x7f: element 0 = code 15 = -12 * 4 =
     * -48 (E2M1 -6 times the OCP scale 2^3), element 16 = code 7 = 12 * 4
     * = 48; qs[1] = 0x92: element 1 = 2 * 4 = 8, 17 = code 9 = -1 * 4. */
    uint8_t mx[17] = {130, 0x7f, 0x92};
    decode_all(ENG_TYPE_MXFP4, mx, 32, y);
    CHECK(y[0] == -48.0f && y[16] == 48.0f && y[1] == 8.0f && y[17] == -4.0f && y[2] == 0.0f);
    /* e = 0: 2^-128, a subnormal, still exact: code 1 -> 2^-128 */
    mx[0] = 0;
    mx[3] = 0x01;
    decode_all(ENG_TYPE_MXFP4, mx, 32, y);
    CHECK(y[2] == 0x1p-128f);
}

TEST(known_k_blocks_decode_to_known_values)
{
    float y[256];
    /* Q4_K: d = 1 (0x3c00), dmin = 0.25 (0x3400). Sub-block 0: sc = 2,
     * m = 4 (bytes 0 and 4); sub-block 5: sc = (s[9] & 15) | (s[1] >> 6)
     * << 4 = 3 | 1 << 4 = 19, m = (s[9] >> 4) | (s[5] >> 6) << 4 = 2 | 2
     * << 4 = 34, with s[1] = 0x40, s[5] = 0x80, s[9] = 0x23. qs[0] = 0x5a:
     * element 0 = 1*2*10 - 0.25*4 = 19; element 32 (sub-block 1: sc = 0,
     * m = 0) = 0; qs[64 + 3] = 0x70: element 163 (sub-block 5, high nibble
     * 7) = 19*7 - 0.25*34 = 124.5. */
    uint8_t q4[144] = {0x00, 0x3c, 0x00, 0x34};
    q4[4 + 0] = 2;
    q4[4 + 4] = 4;
    q4[4 + 1] = 0x40;
    q4[4 + 5] = 0x80;
    q4[4 + 9] = 0x23;
    q4[16 + 0] = 0x5a;
    q4[16 + 64 + 3] = 0x70;
    decode_all(ENG_TYPE_Q4_K, q4, 256, y);
    CHECK_MSG(y[0] == 19.0f && y[32] == 0.0f && y[163] == 124.5f && y[1] == -1.0f, "%g %g %g %g",
              (double)y[0], (double)y[32], (double)y[163], (double)y[1]);
    /* Q5_K: the same scales and qs at offset 48, qh[3] = 0x20 (bit 5):
     * element 163 gets +16: 19*23 - 8.5 = 428.5; element 3 (sub-block 0,
     * qh bit 0 clear, nibble 0) = 0 - 1 = -1. */
    uint8_t q5[176] = {0x00, 0x3c, 0x00, 0x34};
    memcpy(q5 + 4, q4 + 4, 12);
    q5[16 + 3] = 0x20;
    q5[48 + 0] = 0x5a;
    q5[48 + 64 + 3] = 0x70;
    decode_all(ENG_TYPE_Q5_K, q5, 256, y);
    CHECK_MSG(y[0] == 19.0f && y[163] == 428.5f && y[3] == -1.0f, "%g %g %g", (double)y[0], (double)y[163],
              (double)y[3]);
    /* Q6_K: d = 2 (0x4000), scales[0] = -3, scales[14] = 7. ql[0] = 0x21,
     * qh[0] = 0x0e: element 0 = q1 = (1 | (2 & 3) << 4) - 32 = 1 -> 2*-3*1
     * = -6; element 64 = q3 = (2 | (0 & 3) << 4) - 32 = -30, scales[4] = 0
     * -> 0. Half 1: ql[64 + 32 + 5] = 0x90, qh[32 + 5] = 0xc0: element 229,
     * q4 = (9 | 3 << 4) - 32 = 25, scales[14] = 7 -> 2*7*25 = 350. */
    uint8_t q6[210] = {0};
    q6[0] = 0x21;
    q6[128] = 0x0e;
    q6[64 + 32 + 5] = 0x90;
    q6[128 + 32 + 5] = 0xc0;
    q6[192 + 0] = (uint8_t)-3;
    q6[192 + 14] = 7;
    q6[209] = 0x40;
    decode_all(ENG_TYPE_Q6_K, q6, 256, y);
    CHECK_MSG(y[0] == -6.0f && y[64] == 0.0f && y[229] == 350.0f, "%g %g %g", (double)y[0], (double)y[64],
              (double)y[229]);
    /* Q2_K: d = 0.5, dmin = 1; scales[0] = 0x23 (sc 3, m 2), scales[9] =
     * 0x14 (sc 4, m 1). qs[0] = 0xe4 (codes 0, 1, 2, 3 in bits 0-1, 2-3,
     * 4-5, 6-7): element 0 = 0.5*3*0 - 2 = -2; element 32 (group 2,
     * scale 0) = 0*... - 0 = 0. qs[32 + 17] = 0x0c: element 128 + 32 + 17
     * = 177 (group 11) code 3 ... scales[11] = 0 -> 0; element 128 + 16 + 1
     * = 145 (group 9) uses qs[32 + 17] bits 0-1 = 0: 0 - 1*1 = -1. */
    uint8_t q2[84] = {0};
    q2[0] = 0x23;
    q2[9] = 0x14;
    q2[16 + 0] = 0xe4;
    q2[16 + 32 + 17] = 0x0c;
    q2[80] = 0x00, q2[81] = 0x38;   /* d = 0.5 */
    q2[82] = 0x00, q2[83] = 0x3c;   /* dmin = 1 */
    decode_all(ENG_TYPE_Q2_K, q2, 256, y);
    CHECK_MSG(y[0] == -2.0f && y[32] == 0.0f && y[145] == -1.0f && y[177] == 0.0f, "%g %g %g %g",
              (double)y[0], (double)y[32], (double)y[145], (double)y[177]);
    /* element 64 (group 4, scales[4] = 0): 0; set scales[4] = 0x05: sc 5,
     * m 0, code of element 64 = qs[0] bits 4-5 = 2: 0.5*5*2 = 5 */
    q2[4] = 0x05;
    decode_all(ENG_TYPE_Q2_K, q2, 256, y);
    CHECK(y[64] == 5.0f);
    /* Q3_K: d = 1; scale of group 0: (s[0] & 15) | (s[8] & 3) << 4 = 5 |
     * 2 << 4 = 37 -> 37 - 32 = 5; of group 9 (row 2 of the spec, k = 1):
     * (s[1] >> 4) | ((s[9] >> 4) & 3) << 4 = 3 | 3 << 4 = 51 -> 19.
     * Element 0: qs[32] bits 0-1 = 3, hmask[0] bit 0 set -> 3 * 5 = 15;
     * element 1: code 0, hmask bit clear -> (0 - 4) * 5 = -20; element 145
     * (half 1, quarter 0, l = 17, group 9): qs[64 + 17] bits 0-1 = 2,
     * hmask[17] bit 4 clear -> (2 - 4) * 19 = -38. */
    uint8_t q3[110] = {0};
    q3[0] = 0x01;
    q3[32 + 0] = 0x03;
    q3[32 + 32 + 17] = 0x02;
    q3[96 + 0] = 0x05;
    q3[96 + 8] = 0x02;
    q3[96 + 1] = 0x30;
    q3[96 + 9] = 0x30;
    q3[108] = 0x00, q3[109] = 0x3c;
    decode_all(ENG_TYPE_Q3_K, q3, 256, y);
    CHECK_MSG(y[0] == 15.0f && y[1] == -20.0f && y[145] == -38.0f, "%g %g %g", (double)y[0], (double)y[1],
              (double)y[145]);
    /* IQ4_XS: d = 0.5; sub-block 1: ls = (scales_l[0] >> 4) | ((scales_h
     * >> 2) & 3) << 4 = 0xa | 2 << 4 = 42 -> 10; qs[16] = 0x0f: element 32
     * = 0.5 * 10 * 113 = 565, element 48 = 0.5 * 10 * -127 = -635.
     * Sub-block 0: ls = 0 -> -32: element 0 (code 0 of qs[0] = 0) = 0.5 *
     * -32 * -127 = 2032. */
    uint8_t x4[136] = {0x00, 0x38, 0x08, 0x00, 0xa0};
    x4[8 + 16] = 0x0f;
    decode_all(ENG_TYPE_IQ4_XS, x4, 256, y);
    CHECK_MSG(y[32] == 565.0f && y[48] == -635.0f && y[0] == 2032.0f, "%g %g %g", (double)y[32], (double)y[48],
              (double)y[0]);
}

TEST(scale_unpacking_helpers_agree)
{
    uint64_t s = 99;
    for (int rep = 0; rep < 2000; rep++) {
        uint8_t b[12], sm[16];
        for (int i = 0; i < 12; i++)
            b[i] = (uint8_t)rnd(&s);
        eng_q4k_unpack_scales(b, sm);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            eng_q4k_scale_min(b, j, &sc, &m);
            CHECK(sm[j] == sc && sm[8 + j] == m);
        }
        int8_t s3[16];
        eng_q3k_unpack_scales(b, s3);
        for (int g = 0; g < 16; g++) {   /* the spec's four rows */
            const int k = g % 4, w = g / 4;
            int S = w == 0 ? (b[k] & 15) | ((b[8 + k] & 3) << 4)
                  : w == 1 ? (b[4 + k] & 15) | (((b[8 + k] >> 2) & 3) << 4)
                  : w == 2 ? (b[k] >> 4) | (((b[8 + k] >> 4) & 3) << 4)
                           : (b[4 + k] >> 4) | (((b[8 + k] >> 6) & 3) << 4);
            CHECK(s3[g] == S - 32);
        }
    }
}

TEST(argument_errors)
{
    eng_err err = {0};
    const int64_t n = 256;
    float *x = tst_alloc((size_t)n * 4), y[4];
    uint8_t *w = tst_alloc(4096);
    for (int p = 0; p < ENG_SIMD_COUNT; p++) {
        const eng_kernels *k = eng_kernels_get((eng_simd)p);
        if (!k)
            continue;
        eng_xvec v;
        REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
        CHECK_EQ_INT(eng_xvec_prepare(k, &v, x, n + 1), ENG_EINVAL);   /* beyond n_max */
        REQUIRE(eng_xvec_prepare(k, &v, x, 96) == ENG_OK);
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_Q8_0, w, &v, y, 0, 1), ENG_OK);
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_Q4_K, w, &v, y, 0, 1), ENG_EINVAL);   /* 96 % 256 */
        CHECK_EQ_INT(eng_xvec_form(k, &v, ENG_XF_Q8K), ENG_EINVAL);
        CHECK_EQ_INT(eng_xvec_form(k, &v, ENG_XF_COUNT), ENG_EINVAL);
        REQUIRE(eng_xvec_prepare(k, &v, x, 33) == ENG_OK);
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_Q8_0, w, &v, y, 0, 1), ENG_EINVAL);   /* 33 % 32 */
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_F16, w, &v, y, 0, 1), ENG_OK);
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_IQ2_XXS, w, &v, y, 0, 1), ENG_EUNSUPPORTED);
        CHECK_EQ_INT(eng_matvec(k, 99, w, &v, y, 0, 1), ENG_EUNSUPPORTED);
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_F32, x, &v, y, 1, 0), ENG_EINVAL);
        CHECK_EQ_INT(eng_dequant_rows(k, ENG_TYPE_IQ2_XXS, w, 256, 0, 1, x), ENG_EUNSUPPORTED);
        CHECK_EQ_INT(eng_dequant_rows(k, ENG_TYPE_Q2_K, w, 255, 0, 1, x), ENG_EINVAL);
        eng_xvec_free(&v);
    }
    CHECK_EQ_INT(eng_type_xform(ENG_TYPE_Q4_1), ENG_XF_Q8);
    CHECK_EQ_INT(eng_type_xform(ENG_TYPE_IQ4_XS), ENG_XF_Q8K);
    CHECK_EQ_INT(eng_type_xform(ENG_TYPE_BF16), ENG_XF_BF16);
    CHECK_EQ_INT(eng_type_xform(ENG_TYPE_IQ2_XXS), -1);
}

TEST(matvec_extreme_quant_codes)
{
    /* Q8_0 weights of -128 (not written by the quantizer, legal in a file)
     * and 127 against x of +-127: the sign-trick and VNNI paths stay exact */
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
    const eng_kernels *tabs[6];
    const int nt = all_tables(tabs);
    for (int p = 0; p < nt; p++) {
        eng_xvec v;
        float y;
        REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
        REQUIRE(eng_xvec_prepare(tabs[p], &v, x, n) == ENG_OK);
        REQUIRE(eng_matvec(tabs[p], ENG_TYPE_Q8_0, w, &v, &y, 0, 1) == ENG_OK);
        double ref = 0;
        for (int64_t j = 0; j < n; j++)
            ref += (double)w[j / 32].qs[j % 32] * v.q8_qs[j] * v.q8_d[j / 32];
        CHECK_MSG(y == (float)ref, "%s: %.9g vs %.9g", eng_kernels_name(tabs[p]), (double)y, ref);
        eng_xvec_free(&v);
    }
}

/* ---- the 512-bit Q2_K / Q3_K kernels (kernels_avx512.c) -----------------
 * They form ggml's integer lanes in another grouping (exact integers) and
 * then do the AVX2 kernel's float operations, so they must give its bits:
 * compared with memcmp on random block bytes with extreme scales (fp16 d
 * from the smallest subnormal to +-65504, blocks of all-maximum and
 * all-minimum 4-/6-bit scales), row ranges that start and end inside the
 * 4-row groups, and x with full-range quants (+-127). */

static void k23_blocks(int type, uint8_t *w, size_t nblk, uint64_t *s)
{
    const size_t tsz = eng_format_get(type)->type_size;
    const bool q2 = type == ENG_TYPE_Q2_K;
    const size_t so = q2 ? offsetof(eng_block_q2_k, scales) : offsetof(eng_block_q3_k, scales);
    const size_t sn = q2 ? 16 : 12;
    static const uint16_t halfs[] = {0x7bff, 0xfbff, 0x0001, 0x8001, 0x3c00, 0x0400};
    int nf;
    bool e8m0;
    const int *off = spec_half_fields(type, &nf, &e8m0);
    for (size_t blk = 0; blk < nblk; blk++) {
        uint8_t *p = w + blk * tsz;
        for (size_t i = 0; i < tsz; i++)
            p[i] = (uint8_t)rnd(s);
        const int mode = (int)(blk % 4);   /* random, all scales max, all min, random */
        if (mode == 1 || mode == 2)
            memset(p + so, mode == 1 ? 0xff : 0x00, sn);
        for (int k = 0; k < nf; k++) {
            uint16_t h = blk % 3 ? (uint16_t)((rnd(s) & 0x83ff) | ((rnd(s) % 14) << 10))
                                 : halfs[rnd(s) % (sizeof halfs / sizeof halfs[0])];
            memcpy(p + off[k], &h, 2);
        }
    }
}

static void k23_against_avx2(int type, int64_t n, bool full_range_x, uint64_t seed)
{
    enum { ROWS = 11 };
    static const int64_t ranges[][2] = {{0, ROWS}, {1, 6}, {3, 4}, {2, 9}, {5, ROWS}, {7, 8}, {0, 3}};
    uint64_t s = seed * 104729 + (uint64_t)type;
    const size_t rb = eng_type_row_bytes(type, n);
    uint8_t *w = tst_alloc(rb * ROWS);
    k23_blocks(type, w, rb * ROWS / eng_format_get(type)->type_size, &s);
    float *x = tst_alloc((size_t)n * 4), want[ROWS], y[ROWS];
    for (int64_t j = 0; j < n; j++)
        x[j] = full_range_x ? (j % 3 ? 1.0f : -1.0f) : rndf(&s) * (j % 5 ? 1.0f : 100.0f);
    eng_err err = {0};
    eng_xvec v;
    REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
    REQUIRE(eng_xvec_prepare(&eng_kernels_avx2, &v, x, n) == ENG_OK);
    REQUIRE(eng_matvec(&eng_kernels_avx2, type, w, &v, want, 0, ROWS) == ENG_OK);
    eng_xvec_free(&v);
    const eng_kernels *tabs[6];
    const int nt = all_tables(tabs);
    for (int p = 0; p < nt; p++) {
        if (eng_kernels_simd(tabs[p]) != ENG_SIMD_AVX512)
            continue;
        REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
        REQUIRE(eng_xvec_prepare(tabs[p], &v, x, n) == ENG_OK);
        for (size_t g = 0; g < sizeof ranges / sizeof ranges[0]; g++) {
            const int64_t r0 = ranges[g][0], r1 = ranges[g][1];
            for (int r = 0; r < ROWS; r++)
                y[r] = -12345.0f;
            REQUIRE(eng_matvec(tabs[p], type, w, &v, y, r0, r1) == ENG_OK);
            for (int64_t r = 0; r < ROWS; r++)
                CHECK_MSG(r >= r0 && r < r1 ? memcmp(&y[r], &want[r], 4) == 0 : y[r] == -12345.0f,
                          "%s %s n %lld rows [%lld, %lld) row %lld: %a, avx2 %a", eng_kernels_name(tabs[p]),
                          eng_type_name(type), (long long)n, (long long)r0, (long long)r1, (long long)r,
                          (double)y[r], (double)want[r]);
        }
        eng_xvec_free(&v);
    }
}

TEST(q2_k_q3_k_avx512_bit_identical_to_avx2)
{
    if (!eng_simd_available(ENG_SIMD_AVX512)) {
        printf("no AVX-512 on this CPU: nothing to compare\n");
        return;
    }
    static const int64_t ns[] = {256, 768, 2304};
    for (int q3 = 0; q3 < 2; q3++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (uint64_t seed = 1; seed <= 4; seed++)
                k23_against_avx2(q3 ? ENG_TYPE_Q3_K : ENG_TYPE_Q2_K, ns[i], seed % 2 == 0, seed);
}

/* Where every sum is exact in f32 the order of the lanes cannot matter:
 * integer x (so x's Q8_K scale is +-1 and its quants are x), weight
 * scales 2^-3, n = 512 (|y| / 2^-3 < 2^23, each super-block's integer
 * sum < 2^24). Then scalar, AVX2 and AVX-512 all give the exact value,
 * bit for bit. */
TEST(q2_k_q3_k_exact_sums_every_table)
{
    enum { ROWS = 7, N = 512 };
    for (int q3 = 0; q3 < 2; q3++) {
        const int type = q3 ? ENG_TYPE_Q3_K : ENG_TYPE_Q2_K;
        uint64_t s = 4242 + (uint64_t)type;
        const size_t rb = eng_type_row_bytes(type, N), tsz = eng_format_get(type)->type_size;
        uint8_t *w = tst_alloc(rb * ROWS);
        int nf;
        bool e8m0;
        const int *off = spec_half_fields(type, &nf, &e8m0);
        for (size_t i = 0; i < rb * ROWS; i++)
            w[i] = (uint8_t)rnd(&s);
        for (size_t blk = 0; blk < rb * ROWS / tsz; blk++)
            for (int k = 0; k < nf; k++)
                memcpy(w + blk * tsz + off[k], &(uint16_t){0x3000}, 2);   /* 2^-3 */
        float x[N], y[ROWS];
        for (int j = 0; j < N; j++)
            x[j] = j % 256 == 0 ? 127.0f : (float)((int)(rnd(&s) % 255) - 127);
        eng_err err = {0};
        const eng_kernels *tabs[6];
        const int nt = all_tables(tabs);
        double ref[ROWS], mag[ROWS];
        for (int p = 0; p < nt; p++) {
            eng_xvec v;
            REQUIRE(eng_xvec_init(&v, N, &err) == ENG_OK);
            REQUIRE(eng_xvec_prepare(tabs[p], &v, x, N) == ENG_OK);
            REQUIRE(eng_matvec(tabs[p], type, w, &v, y, 0, ROWS) == ENG_OK);
            CHECK(fabsf(v.q8k_d[0]) == 1.0f && fabsf(v.q8k_d[1]) == 1.0f);
            reference(type, w, ROWS, &v, ref, mag);
            for (int r = 0; r < ROWS; r++) {
                const float want = (float)ref[r];
                CHECK((double)want == ref[r]);   /* the premise: exact in f32 */
                CHECK_MSG(memcmp(&y[r], &want, 4) == 0, "%s %s row %d: %a vs exact %a", eng_kernels_name(tabs[p]),
                          eng_type_name(type), r, (double)y[r], (double)want);
            }
            eng_xvec_free(&v);
        }
    }
}

/* ---- the lazily built partner forms under concurrent use ----------------- */

typedef struct mv_job {
    const eng_kernels *k;
    const eng_xvec *v;
    const uint8_t *w[4];
    int types[4];
    float *y[4];
    int64_t r0, r1;
    pthread_barrier_t *bar;
} mv_job;

static void *mv_thread(void *p)
{
    mv_job *j = p;
    pthread_barrier_wait(j->bar);   /* all threads meet the stale forms at once */
    for (int t = 0; t < 4; t++)
        if (eng_matvec(j->k, j->types[t], j->w[t], j->v, j->y[t], j->r0, j->r1) != ENG_OK)
            return p;
    return NULL;
}

TEST(concurrent_first_use_of_x_forms)
{
    enum { NTH = 4, ROWS = 64 };
    const int64_t n = 512;
    static const int types[4] = {ENG_TYPE_Q4_K, ENG_TYPE_Q8_0, ENG_TYPE_F16, ENG_TYPE_Q4_1};
    uint64_t s = 4242;
    eng_err err = {0};
    uint8_t *w[4];
    for (int t = 0; t < 4; t++) {
        const size_t rb = eng_type_row_bytes(types[t], n);
        w[t] = tst_alloc(rb * ROWS);
        float *wf = random_weights(&s, ROWS * n);
        for (int r = 0; r < ROWS; r++)
            REQUIRE(eng_quantize_row(types[t], wf + r * n, w[t] + r * rb, n, &err) == ENG_OK);
    }
    const eng_kernels *k = eng_kernels_get(eng_simd_best());
    float *x = tst_alloc((size_t)n * 4), *want[4], *got[4];
    for (int t = 0; t < 4; t++) {
        want[t] = tst_alloc(ROWS * 4);
        got[t] = tst_alloc(ROWS * 4);
    }
    eng_xvec v;
    REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
    for (int rep = 0; rep < 200; rep++) {
        for (int64_t j = 0; j < n; j++)
            x[j] = rndf(&s);
        REQUIRE(eng_xvec_prepare(k, &v, x, n) == ENG_OK);
        for (int t = 0; t < 4; t++)
            REQUIRE(eng_matvec(k, types[t], w[t], &v, want[t], 0, ROWS) == ENG_OK);
        REQUIRE(eng_xvec_prepare(k, &v, x, n) == ENG_OK);   /* stale again */
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, NTH);
        pthread_t th[NTH];
        mv_job jobs[NTH];
        for (int i = 0; i < NTH; i++) {
            jobs[i] = (mv_job){.k = k, .v = &v, .r0 = i * ROWS / NTH, .r1 = (i + 1) * ROWS / NTH, .bar = &bar};
            for (int t = 0; t < 4; t++) {   /* each thread starts with another form */
                const int tt = (t + i) % 4;
                jobs[i].types[t] = types[tt];
                jobs[i].w[t] = w[tt];
                jobs[i].y[t] = got[tt];
            }
            REQUIRE(pthread_create(&th[i], NULL, mv_thread, &jobs[i]) == 0);
        }
        for (int i = 0; i < NTH; i++) {
            void *ret;
            pthread_join(th[i], &ret);
            CHECK(ret == NULL);
        }
        pthread_barrier_destroy(&bar);
        for (int t = 0; t < 4; t++)
            CHECK_MSG(memcmp(want[t], got[t], ROWS * 4) == 0, "rep %d %s", rep, eng_type_name(types[t]));
    }
    eng_xvec_free(&v);
}
