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
 *
 * Q5_0, Q4_K and Q6_K are dequantized here by an implementation of the
 * spec's formulas (docs/engine.md "Tensor formats"), independent of
 * engine/: element j is a_j - b_j (b_j = dmin*m for Q4_K, else 0) and the
 * magnitude in the bound is sum (|a_j| + |b_j|) |x_j|, because the kernels
 * sum the scale part and the min part of Q4_K separately.
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

static const int types[] = {ENG_TYPE_F32,  ENG_TYPE_F16,  ENG_TYPE_BF16, ENG_TYPE_Q8_0,
                            ENG_TYPE_Q4_0, ENG_TYPE_Q5_0, ENG_TYPE_Q4_K, ENG_TYPE_Q6_K};

static bool quantized(int t) { return eng_format_get(t)->blck > 1; }
static bool spec_type(int t) { return t == ENG_TYPE_Q5_0 || t == ENG_TYPE_Q4_K || t == ENG_TYPE_Q6_K; }

/* ---- the spec's dequantization, in double, from the bytes ---------------- */

static double half(const uint8_t *p) { return eng_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }

/* Q5_0 (22 bytes): f16 d, u32 qh (LE), u8 qs[16]; element j < 16 is
 * ((qs[j] & 15) | bit j of qh << 4) - 16, element j + 16 uses the high
 * nibble and bit j + 16. */
static void spec_q5_0(const uint8_t *p, double *a)
{
    double d = half(p);
    uint32_t qh = (uint32_t)p[2] | (uint32_t)p[3] << 8 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 24;
    for (int j = 0; j < 16; j++) {
        int hi0 = (int)((qh >> j) & 1), hi1 = (int)((qh >> (j + 16)) & 1);
        a[j] = (((p[6 + j] & 15) | hi0 << 4) - 16) * d;
        a[j + 16] = (((p[6 + j] >> 4) | hi1 << 4) - 16) * d;
    }
}

/* Q4_K (144 bytes): f16 d, f16 dmin, u8 scales[12], u8 qs[128]. */
static void spec_q4_k(const uint8_t *p, double *a, double *b)
{
    double d = half(p), dmin = half(p + 2);
    const uint8_t *s = p + 4, *qs = p + 16;
    for (int c = 0; c < 4; c++)
        for (int h = 0; h < 2; h++) {
            int j = 2 * c + h, sc, m;
            if (j < 4) {
                sc = s[j] & 63;
                m = s[j + 4] & 63;
            } else {
                sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
                m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
            }
            for (int l = 0; l < 32; l++) {
                int q = h ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0xF;
                a[64 * c + 32 * h + l] = d * sc * q;
                b[64 * c + 32 * h + l] = dmin * m;
            }
        }
}

/* Q6_K (210 bytes): u8 ql[128], u8 qh[64], i8 scales[16], f16 d. */
static void spec_q6_k(const uint8_t *p, double *y)
{
    const uint8_t *ql = p, *qh = p + 128;
    const int8_t *sc = (const int8_t *)(p + 192);
    double d = half(p + 208);
    for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128)
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is + 0] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
}

/* A row of n elements of a spec type as a - b (b = 0 except Q4_K mins). */
static void spec_row(int type, const uint8_t *p, int64_t n, double *a, double *b)
{
    const eng_format *f = eng_format_get(type);
    for (int64_t i = 0; i < n / f->blck; i++, p += f->type_size) {
        double *ai = a + i * f->blck, *bi = b + i * f->blck;
        for (int64_t j = 0; j < f->blck; j++)
            bi[j] = 0;
        if (type == ENG_TYPE_Q5_0)
            spec_q5_0(p, ai);
        else if (type == ENG_TYPE_Q4_K)
            spec_q4_k(p, ai, bi);
        else
            spec_q6_k(p, ai);
    }
}

/* Row r of W as the parts a - b, by the spec (new types) or the engine's
 * scalar dequantizer (the older types, tested that way before). */
static void ref_row(int type, const void *w, int64_t n, int64_t r, double *a, double *b)
{
    const uint8_t *p = (const uint8_t *)w + (size_t)r * eng_type_row_bytes(type, n);
    if (spec_type(type)) {
        spec_row(type, p, n, a, b);
        return;
    }
    float *row = tst_alloc((size_t)n * 4);
    eng_err err = {0};
    REQUIRE(eng_dequantize_row(type, p, row, n, &err) == ENG_OK);
    for (int64_t j = 0; j < n; j++) {
        a[j] = row[j];
        b[j] = 0;
    }
}

/* Reference y[r] and the magnitude sum|terms| for the tolerance. */
static void reference(int type, const void *w, int64_t rows, const eng_xvec *x, double *y, double *mag)
{
    int64_t n = x->n;
    double *a = tst_alloc((size_t)n * 8), *b = tst_alloc((size_t)n * 8);
    for (int64_t r = 0; r < rows; r++) {
        ref_row(type, w, n, r, a, b);
        double s = 0, m = 0;
        for (int64_t j = 0; j < n; j++) {
            /* quantized weights meet the Q8_0 form of x: x_j = xq_j * xd_b */
            double xv = quantized(type) ? (double)x->xq[j] * x->xd[j / 32] : x->f32[j];
            s += (a[j] - b[j]) * xv;
            m += (fabs(a[j]) + fabs(b[j])) * fabs(xv);
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
        if (spec_type(type)) {   /* exact arithmetic: the spec's value rounded once */
            double *a = tst_alloc((size_t)n * 8), *b = tst_alloc((size_t)n * 8);
            for (int64_t r = 0; r < rows; r++) {
                ref_row(type, w, n, r, a, b);
                for (int64_t j = 0; j < n; j++)
                    CHECK_MSG(d[r * n + j] == (float)(a[j] - b[j]), "%s dequant %s [%lld][%lld]: %a vs %a",
                              eng_simd_name((eng_simd)p), eng_type_name(type), (long long)r,
                              (long long)j, (double)d[r * n + j], a[j] - b[j]);
            }
        }
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
    for (int t = 3; t < 6; t++)
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
            for (size_t r = 0; r < 4; r++)
                for (uint64_t seed = 1; seed <= 3; seed++)
                    check_type_size(types[t], rows[r], blocks[i] * 32, seed);
}

TEST(matvec_k_quants_super_block_counts)
{
    static const int64_t blocks[] = {1, 2, 3, 5, 8, 11};
    static const int64_t rows[] = {1, 3, 7};
    for (int t = 6; t < 8; t++)
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
            for (size_t r = 0; r < 3; r++)
                for (uint64_t seed = 1; seed <= 3; seed++)
                    check_type_size(types[t], rows[r], blocks[i] * 256, seed);
}

/* Blocks of random bytes (any byte is a valid code; only the fp16 scales
 * are kept finite and small): every code, sign and 6-bit scale/min value
 * occurs, including Q6_K's scale -128 and q = -32, which the quantizers do
 * not produce. Matvec of every path against the spec reference, dequant of
 * every path bit-exact against the spec. */
static void random_bytes_check(int type, int64_t rows, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 7919 + (uint64_t)type;
    const eng_format *f = eng_format_get(type);
    size_t rb = eng_type_row_bytes(type, n);
    uint8_t *w = tst_alloc(rb * (size_t)rows);
    for (size_t i = 0; i < rb * (size_t)rows; i++)
        w[i] = (uint8_t)rnd(&s);
    /* fp16 fields -> random finite values of magnitude <= 2^-4 */
    static const int off_q5[] = {0}, off_q4k[] = {0, 2}, off_q6k[] = {208};
    const int *off = type == ENG_TYPE_Q5_0 ? off_q5 : type == ENG_TYPE_Q4_K ? off_q4k : off_q6k;
    int noff = type == ENG_TYPE_Q4_K ? 2 : 1;
    for (int64_t b = 0; b < (int64_t)(rb * (size_t)rows / f->type_size); b++)
        for (int k = 0; k < noff; k++) {
            uint16_t h = (uint16_t)(rnd(&s) & 0x83ff) | (uint16_t)((rnd(&s) % 12) << 10);
            memcpy(w + b * f->type_size + off[k], &h, 2);
        }
    float *x = tst_alloc((size_t)n * 4);
    for (int64_t j = 0; j < n; j++)
        x[j] = rndf(&s);
    double *yref = tst_alloc((size_t)rows * 8), *mag = tst_alloc((size_t)rows * 8);
    double *a = tst_alloc((size_t)n * 8), *bb = tst_alloc((size_t)n * 8);
    float *y = tst_alloc((size_t)rows * 4), *d = tst_alloc((size_t)n * 4);
    eng_err err = {0};
    for (int p = 0; p < ENG_SIMD_COUNT; p++) {
        const eng_kernels *k = eng_kernels_get((eng_simd)p);
        if (!k)
            continue;
        eng_xvec v;
        REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
        REQUIRE(eng_xvec_prepare(k, &v, x, n) == ENG_OK);
        reference(type, w, rows, &v, yref, mag);
        REQUIRE(eng_matvec(k, type, w, &v, y, 0, rows) == ENG_OK);
        for (int64_t r = 0; r < rows; r++) {
            double tol = (double)(n + 2) * 0x1p-24 * mag[r] + 1e-30;
            CHECK_MSG(fabs(y[r] - yref[r]) <= tol, "%s %s random bytes row %lld: %.9g vs %.9g (tol %.3g)",
                      eng_simd_name((eng_simd)p), eng_type_name(type), (long long)r, (double)y[r],
                      yref[r], tol);
            REQUIRE(eng_dequant_rows(k, type, w, n, r, r + 1, d) == ENG_OK);
            spec_row(type, w + (size_t)r * rb, n, a, bb);
            for (int64_t j = 0; j < n; j++)
                CHECK_MSG(d[j] == (float)(a[j] - bb[j]), "%s %s random bytes dequant [%lld]: %a vs %a",
                          eng_simd_name((eng_simd)p), eng_type_name(type), (long long)j, (double)d[j],
                          a[j] - bb[j]);
        }
        eng_xvec_free(&v);
    }
}

TEST(new_types_random_block_bytes)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        random_bytes_check(ENG_TYPE_Q5_0, 5, 32 * 9, seed);
        random_bytes_check(ENG_TYPE_Q4_K, 5, 256 * 3, seed);
        random_bytes_check(ENG_TYPE_Q6_K, 5, 256 * 3, seed);
    }
}

/* One hand-made block of each new type with known bytes decodes to values
 * worked out from the spec formula by hand (docs/engine.md). */
TEST(known_block_bytes_decode_to_known_values)
{
    eng_err err = {0};
    float y[256];
    /* Q5_0: d = 0.5 (0x3800), qs[j] = j | (15 - j) << 4, qh = bit 1 and
     * bit 17: element 1 = ((1 | 16) - 16) * 0.5 = 0.5, element 17 =
     * ((14 | 16) - 16) * 0.5 = 7, element 0 = (0 - 16) * 0.5 = -8,
     * element 16 = (15 - 16) * 0.5 = -0.5. */
    uint8_t q5[22] = {0x00, 0x38, 0x02, 0x00, 0x02, 0x00};
    for (int j = 0; j < 16; j++)
        q5[6 + j] = (uint8_t)(j | (15 - j) << 4);
    REQUIRE(eng_dequantize_row(ENG_TYPE_Q5_0, q5, y, 32, &err) == ENG_OK);
    CHECK(y[0] == -8.0f && y[1] == 0.5f && y[16] == -0.5f && y[17] == 7.0f && y[2] == -7.0f);
    /* Q4_K: d = 1 (0x3c00), dmin = 0.25 (0x3400). scales: sub-block 0
     * sc = 2, m = 4 (bytes 0 and 4); sub-block 5: sc = (s[9] & 15) |
     * (s[1] >> 6) << 4 = 3 | 1 << 4 = 19, m = (s[9] >> 4) | (s[5] >> 6) << 4
     * = 2 | 2 << 4 = 34, with s[1] = 0x40, s[5] = 0x80, s[9] = 0x23.
     * qs[0] = 0x5a: element 0 = 1*2*10 - 0.25*4 = 19; element 32 (sub-block
     * 1: sc = s[1] & 63 = 0, m = s[5] & 63 = 0) = 0. qs[64 + 3] = 0x70:
     * element 128 + 32 + 3 (sub-block 5, high nibble 7) = 19*7 - 0.25*34 =
     * 124.5. */
    uint8_t q4[144] = {0x00, 0x3c, 0x00, 0x34};
    q4[4 + 0] = 2;
    q4[4 + 4] = 4;
    q4[4 + 1] = 0x40;
    q4[4 + 5] = 0x80;
    q4[4 + 9] = 0x23;
    q4[16 + 0] = 0x5a;
    q4[16 + 64 + 3] = 0x70;
    REQUIRE(eng_dequantize_row(ENG_TYPE_Q4_K, q4, y, 256, &err) == ENG_OK);
    CHECK_MSG(y[0] == 19.0f && y[32] == 0.0f && y[163] == 124.5f && y[1] == -1.0f,
              "%g %g %g %g", (double)y[0], (double)y[32], (double)y[163], (double)y[1]);
    /* Q6_K: d = 2 (0x4000), scales[0] = -3, scales[13] = 5. ql[0] = 0x21,
     * qh[0] = 0x0e: element 0 = q1 = (1 | (2 & 3) << 4) - 32 = 1 ->
     * 2*-3*1 = -6; element 64 = q3 = (2 | (0 & 3) << 4) - 32 = -30, scale
     * scales[4] = 0 -> 0. Half 1: ql[64 + 32 + 5] = 0x90, qh[32 + 5] = 0xc0:
     * element 128 + 96 + 5 = 229, q4 = (9 | 3 << 4) - 32 = 25, scale
     * index 8 + is + 6 with is = 5/16 = 0: scales[14] = 7 -> 2*7*25 = 350. */
    uint8_t q6[210] = {0};
    q6[0] = 0x21;
    q6[128] = 0x0e;
    q6[64 + 32 + 5] = 0x90;
    q6[128 + 32 + 5] = 0xc0;
    q6[192 + 0] = (uint8_t)-3;
    q6[192 + 14] = 7;
    q6[208] = 0x00;
    q6[209] = 0x40;
    REQUIRE(eng_dequantize_row(ENG_TYPE_Q6_K, q6, y, 256, &err) == ENG_OK);
    CHECK_MSG(y[0] == -6.0f && y[64] == 0.0f && y[229] == 350.0f, "%g %g %g", (double)y[0],
              (double)y[64], (double)y[229]);
    /* every path decodes the same three blocks to the same bits */
    for (int p = 1; p < ENG_SIMD_COUNT; p++) {
        const eng_kernels *k = eng_kernels_get((eng_simd)p);
        if (!k)
            continue;
        float z[256];
        REQUIRE(eng_dequant_rows(k, ENG_TYPE_Q6_K, q6, 256, 0, 1, z) == ENG_OK);
        REQUIRE(eng_dequantize_row(ENG_TYPE_Q6_K, q6, y, 256, &err) == ENG_OK);
        CHECK(memcmp(z, y, sizeof z) == 0);
        REQUIRE(eng_dequant_rows(k, ENG_TYPE_Q4_K, q4, 256, 0, 1, z) == ENG_OK);
        REQUIRE(eng_dequantize_row(ENG_TYPE_Q4_K, q4, y, 256, &err) == ENG_OK);
        CHECK(memcmp(z, y, sizeof z) == 0);
    }
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
        for (int64_t b = 0; b < n / 32; b++) {   /* the block sums Q4_K's min term uses */
            int sum = 0;
            for (int j = 0; j < 32; j++)
                sum += ref[b].qs[j];
            CHECK_EQ_INT(v.xs[b], sum);
        }
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
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_Q4_K, ref, &v, &y, 0, 1), ENG_EINVAL);   /* 33 % 256 */
        CHECK_EQ_INT(eng_matvec(k, ENG_TYPE_Q5_1, ref, &v, &y, 0, 1), ENG_EUNSUPPORTED);
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
