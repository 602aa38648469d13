/* test_formats.c — the type table, fp16/bf16 conversions (all 65536 halves,
 * rounding cases, against the F16C instructions where the CPU has them),
 * the quantizers: llama.cpp's bytes (hashes recorded from ggml), and
 * quantize -> dequantize error bounds.
 *
 * Error bounds. Every quantizer picks, for each element, the code whose
 * value is nearest to x among the codes its block can hold (after choosing
 * the block's scales by ggml's search), except that it computes that
 * nearest code with the unrounded scale while the block stores it as fp16
 * (relative rounding 2^-11). So, with V_c the value of code c under the
 * block's stored scales and y the stored element:
 *   |x - y| <= min_c |x - V_c| + slack,
 *   slack = 2 * |c|max * 2^-11 * |d| (+ 2 * 2^-11 * |min| with a min),
 * |c|max the largest code magnitude times the sub-scale (127 for Q8_0,
 * 8 / 16 for Q4_0 / Q5_0, 15 / 31 for Q4_1 / Q5_1, 127 * |l| for the
 * IQ4 tables; K-quants and MXFP4 choose their codes from the stored scale
 * itself: slack = rounding of the division only, 2^-20 of the values).
 * The test builds V_c by writing code c into every element of a copy of the
 * block and decoding it with the spec decoder (spec_formats.c); elements
 * beyond the codes' range are held to the nearest end the same way.
 * f16: |x - f16(x)| <= 2^-11 |x| in the normal range; bf16: <= 2^-8 |x|.
 */
#include "tests/test.h"

#include "engine/formats.h"
#include "engine/kernels.h"
#include "tests/engine/spec_formats.h"

#include <immintrin.h>
#include <math.h>

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* xorshift: deterministic test data without global state. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static float rndf(uint64_t *s) { return (float)((rnd(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }
static uint16_t rd16le(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

TEST(type_table)
{
    CHECK_EQ_STR(eng_type_name(ENG_TYPE_Q8_0), "q8_0");
    CHECK_EQ_INT(eng_format_get(ENG_TYPE_Q8_0)->type_size, 34);
    CHECK_EQ_INT(eng_format_get(ENG_TYPE_Q4_0)->type_size, 18);
    CHECK_EQ_INT(eng_format_get(ENG_TYPE_Q4_K)->type_size, 144);
    CHECK_EQ_INT(eng_format_get(ENG_TYPE_Q6_K)->type_size, 210);
    CHECK_EQ_INT(eng_format_get(ENG_TYPE_Q6_K)->blck, 256);
    CHECK_EQ_INT(eng_format_get(ENG_TYPE_BF16)->type_size, 2);
    CHECK(eng_format_get(4) == NULL && eng_format_get(31) == NULL && eng_format_get(40) == NULL);
    CHECK(eng_format_get(-1) == NULL);
    CHECK_EQ_STR(eng_type_name(5), "?");
    CHECK_EQ_INT(eng_type_from_name("Q4_K"), ENG_TYPE_Q4_K);
    CHECK_EQ_INT(eng_type_from_name("bf16"), ENG_TYPE_BF16);
    CHECK_EQ_INT(eng_type_from_name("q9"), -1);
    CHECK_EQ_INT(eng_type_row_bytes(ENG_TYPE_Q8_0, 4096), 128 * 34);
    CHECK_EQ_INT(eng_type_row_bytes(ENG_TYPE_Q8_0, 33), 0);
    CHECK_EQ_INT(eng_type_row_bytes(ENG_TYPE_F16, 7), 14);
    int supported = 0;
    for (int t = 0; t < ENG_TYPE_COUNT; t++) {
        const eng_format *f = eng_format_get(t);
        if (!f)
            continue;
        CHECK_EQ_INT(f->type, t);
        CHECK(f->blck >= 1 && f->type_size >= 1);
        if (!f->supported)
            continue;
        supported++;
        /* every table has every kernel of a supported type, and the x forms */
        static const eng_kernels *const tabs[] = {&eng_kernels_scalar, &eng_kernels_avx2, &eng_kernels_avx512,
                                                  &eng_kernels_avx512_fp16, &eng_kernels_avx512_bf16,
                                                  &eng_kernels_avx512_fp16_bf16};
        for (size_t s = 0; s < sizeof tabs / sizeof tabs[0]; s++) {
            CHECK_MSG(tabs[s]->matvec[t] && tabs[s]->dequant[t], "%s lacks kernels for %s", tabs[s]->name, f->name);
            CHECK(tabs[s]->x_q8 && tabs[s]->x_q8k && tabs[s]->x_f16 && tabs[s]->x_bf16);
        }
        CHECK(eng_type_xform(t) >= 0);
    }
    CHECK_EQ_INT(supported, 16);
    CHECK(eng_format_get(ENG_TYPE_Q4_K)->supported && eng_format_get(ENG_TYPE_Q6_K)->supported &&
          eng_format_get(ENG_TYPE_Q5_K)->supported && eng_format_get(ENG_TYPE_MXFP4)->supported &&
          !eng_format_get(ENG_TYPE_IQ2_XXS)->supported);
    CHECK_EQ_INT(eng_type_row_bytes(ENG_TYPE_Q4_K, 2048), 8 * 144);
    CHECK_EQ_INT(eng_type_row_bytes(ENG_TYPE_Q6_K, 1408), 0);   /* not a multiple of 256 */
    CHECK_EQ_INT(eng_type_row_bytes(ENG_TYPE_Q5_0, 1408), 44 * 22);
}

TEST(fp16_all_65536_values_round_trip)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = eng_fp16_to_fp32((uint16_t)h);
        uint16_t back = eng_fp32_to_fp16(f);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan) {
            CHECK_MSG(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff), "nan 0x%04x", h);
            CHECK_EQ_INT(back, h | 0x200);   /* quieted, payload kept */
        } else {
            CHECK_MSG(back == h, "0x%04x -> %a -> 0x%04x", h, (double)f, back);
        }
    }
    /* exact values from the definition */
    CHECK(eng_fp16_to_fp32(0x3c00) == 1.0f);
    CHECK(eng_fp16_to_fp32(0xc000) == -2.0f);
    CHECK(eng_fp16_to_fp32(0x7bff) == 65504.0f);
    CHECK(eng_fp16_to_fp32(0x0001) == 0x1p-24f);      /* smallest subnormal */
    CHECK(eng_fp16_to_fp32(0x03ff) == 0x3ffp-24f);    /* largest subnormal */
    CHECK(eng_fp16_to_fp32(0x0400) == 0x1p-14f);
    CHECK(isinf(eng_fp16_to_fp32(0xfc00)) && eng_fp16_to_fp32(0xfc00) < 0);
    CHECK(f2u(eng_fp16_to_fp32(0x8000)) == 0x80000000u);
}

TEST(fp16_rounding_cases)
{
    CHECK_EQ_INT(eng_fp32_to_fp16(65504.0f), 0x7bff);
    CHECK_EQ_INT(eng_fp32_to_fp16(65519.996f), 0x7bff);  /* just below the midpoint to inf */
    CHECK_EQ_INT(eng_fp32_to_fp16(65520.0f), 0x7c00);    /* tie, 0x7bff is odd: up to inf */
    CHECK_EQ_INT(eng_fp32_to_fp16(1e10f), 0x7c00);
    CHECK_EQ_INT(eng_fp32_to_fp16(-INFINITY), 0xfc00);
    CHECK_EQ_INT(eng_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);              /* tie to even (down) */
    CHECK_EQ_INT(eng_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);          /* tie to even (up) */
    CHECK_EQ_INT(eng_fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);   /* above the tie */
    CHECK_EQ_INT(eng_fp32_to_fp16(0x1p-25f), 0x0000);                     /* tie with 0: even */
    CHECK_EQ_INT(eng_fp32_to_fp16(0x1.000002p-25f), 0x0001);
    CHECK_EQ_INT(eng_fp32_to_fp16(0x3p-25f), 0x0002);                     /* 1.5 ulp: tie to even 2 */
    CHECK_EQ_INT(eng_fp32_to_fp16(0x1.ffcp-15f), 0x0400);                 /* rounds up into normal */
    CHECK_EQ_INT(eng_fp32_to_fp16(-0x1p-30f), 0x8000);
    CHECK_EQ_INT(eng_fp32_to_fp16(1e-30f), 0x0000);
    uint16_t n = eng_fp32_to_fp16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff));
}

__attribute__((target("f16c"))) static uint16_t hw_to_fp16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static float hw_to_fp32(uint16_t h) { return _cvtsh_ss(h); }

TEST(fp16_matches_f16c_instructions)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) {
        printf("no F16C: skipped\n");
        return;
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float a = eng_fp16_to_fp32((uint16_t)h), b = hw_to_fp32((uint16_t)h);
        CHECK_MSG(f2u(a) == f2u(b), "0x%04x: %08x vs %08x", h, f2u(a), f2u(b));
    }
    /* random bit patterns over the whole f32 range, then around fp16's range */
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)rnd(&s);
        if (i & 1)   /* exponent in [100, 145]: subnormal, normal, overflow */
            u = (u & 0x807fffffu) | ((100u + (u >> 8) % 46) << 23);
        float f = u2f(u);
        uint16_t a = eng_fp32_to_fp16(f), b = hw_to_fp16(f);
        if (isnan(f))
            CHECK((a & 0x7c00) == 0x7c00 && (a & 0x3ff));
        else
            CHECK_MSG(a == b, "%a (0x%08x): 0x%04x vs 0x%04x", (double)f, u, a, b);
    }
}

TEST(bf16_rounding)
{
    CHECK_EQ_INT(eng_fp32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(eng_fp32_to_bf16(u2f(0x3f808000)), 0x3f80);   /* tie, even stays */
    CHECK_EQ_INT(eng_fp32_to_bf16(u2f(0x3f818000)), 0x3f82);   /* tie, odd goes up */
    CHECK_EQ_INT(eng_fp32_to_bf16(u2f(0x3f808001)), 0x3f81);
    CHECK_EQ_INT(eng_fp32_to_bf16(u2f(0x7f7fffff)), 0x7f80);   /* max float rounds to inf */
    CHECK_EQ_INT(eng_fp32_to_bf16(u2f(0x7f800001)), 0x7fc0);   /* signalling nan made quiet */
    CHECK(eng_bf16_to_fp32(0xc040) == -3.0f);
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f))
            continue;   /* nan */
        CHECK_EQ_INT(eng_fp32_to_bf16(eng_bf16_to_fp32((uint16_t)h)), h);
    }
}

static float *random_row(uint64_t *s, int64_t n, float scale)
{
    float *x = tst_alloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = rndf(s) * scale;
    return x;
}

/* Writes code c into every element of the block(s) of `type` at p (the
 * scales stay): 8-bit codes for Q8_0, 4-bit (nibbles) for Q4_0, Q4_1, IQ4, MXFP4,
 * 5-bit (nibble + high bit), 2-bit, 3-bit (2 bits + hmask), 6-bit. */
static void fill_codes(int type, uint8_t *p, int c)
{
    const int n4 = (c & 15) | (c & 15) << 4, h1 = (c >> 4) & 1;
    switch (type) {
    case ENG_TYPE_Q8_0: memset(p + 2, c, 32); break;
    case ENG_TYPE_Q4_0: case ENG_TYPE_IQ4_NL: memset(p + 2, n4, 16); break;
    case ENG_TYPE_Q4_1: memset(p + 4, n4, 16); break;
    case ENG_TYPE_MXFP4: memset(p + 1, n4, 16); break;
    case ENG_TYPE_Q5_0: memset(p + 6, n4, 16); memset(p + 2, h1 ? 0xff : 0, 4); break;
    case ENG_TYPE_Q5_1: memset(p + 8, n4, 16); memset(p + 4, h1 ? 0xff : 0, 4); break;
    case ENG_TYPE_Q2_K: memset(p + 16, (c & 3) * 0x55, 64); break;
    case ENG_TYPE_Q3_K: memset(p + 32, (c & 3) * 0x55, 64); memset(p, c & 4 ? 0xff : 0, 32); break;
    case ENG_TYPE_Q4_K: memset(p + 16, n4, 128); break;
    case ENG_TYPE_Q5_K: memset(p + 48, n4, 128); memset(p + 16, h1 ? 0xff : 0, 32); break;
    case ENG_TYPE_Q6_K: memset(p, n4, 128); memset(p + 128, ((c >> 4) & 3) * 0x55, 64); break;
    case ENG_TYPE_IQ4_XS: memset(p + 8, n4, 128); break;
    }
}

static int code_count(int type)
{
    switch (type) {
    case ENG_TYPE_Q8_0: return 256;
    case ENG_TYPE_Q5_0: case ENG_TYPE_Q5_1: case ENG_TYPE_Q5_K: return 32;
    case ENG_TYPE_Q2_K: return 4;
    case ENG_TYPE_Q3_K: return 8;
    case ENG_TYPE_Q6_K: return 64;
    default: return 16;
    }
}

/* The slack of the header for a block at blk (vmax = the largest |V_c|
 * of its elements). A stored fp16 scale is within 2^-11 of the scale the
 * codes were computed with, or 2^-25 absolute where it is subnormal; that
 * moves a code's value by |code| times as much, on both sides. */
static double slack(int type, const uint8_t *blk, double vmax)
{
    const double u = 0x1p-11, t = 0x1p-25;
    switch (type) {
    case ENG_TYPE_Q8_0: return 2 * (u * vmax + 127 * t);
    case ENG_TYPE_Q4_0: return 2 * (u * vmax + 8 * t);
    case ENG_TYPE_Q5_0: return 2 * (u * vmax + 16 * t);
    case ENG_TYPE_Q4_1: case ENG_TYPE_Q5_1: {
        const double d = fabs(spec_half(rd16le(blk))), m = fabs(spec_half(rd16le(blk + 2)));
        const int cmax = type == ENG_TYPE_Q4_1 ? 15 : 31;
        return 2 * (u * (cmax * d + m) + (cmax + 1) * t);
    }
    case ENG_TYPE_IQ4_NL: return 2 * (u * vmax + 127 * t);
    case ENG_TYPE_IQ4_XS: return 2 * (u * vmax + 127 * 32 * t);
    default: return 0x1p-20 * vmax;
    }
}

/* The nearest-code property of the header, block by block, for a row of n
 * (2 * 256 elements here) quantized from x. Returns the worst |x - y| over
 * the largest |x| of its block (a figure to print). */
static double check_nearest_codes(int type, const float *x, int64_t n)
{
    const eng_format *f = eng_format_get(type);
    const size_t rb = eng_type_row_bytes(type, n);
    uint8_t *q = tst_alloc(rb), *tmp = tst_alloc(f->type_size);
    eng_err err = {0};
    REQUIRE(eng_quantize_row(type, x, q, n, &err) == ENG_OK);
    const int64_t B = f->blck;
    double *a = tst_alloc((size_t)B * 8), *b = tst_alloc((size_t)B * 8), *best = tst_alloc((size_t)B * 8);
    double *ya = tst_alloc((size_t)B * 8), *yb = tst_alloc((size_t)B * 8), worst = 0;
    for (int64_t blk = 0; blk < n / B; blk++) {
        const uint8_t *p = q + blk * f->type_size;
        const float *xb = x + blk * B;
        spec_row(type, p, B, ya, yb);
        double vmax = 0, amax = 0;
        for (int64_t j = 0; j < B; j++)
            best[j] = INFINITY;
        for (int c = 0; c < code_count(type); c++) {
            memcpy(tmp, p, f->type_size);
            fill_codes(type, tmp, c);
            spec_row(type, tmp, B, a, b);
            for (int64_t j = 0; j < B; j++) {
                best[j] = fmin(best[j], fabs(xb[j] - (a[j] - b[j])));
                vmax = fmax(vmax, fabs(a[j] - b[j]));
            }
        }
        for (int64_t j = 0; j < B; j++)
            amax = fmax(amax, fabs(xb[j]));
        const double sl = slack(type, p, vmax);
        for (int64_t j = 0; j < B; j++) {
            const double e = fabs(xb[j] - (ya[j] - yb[j]));
            worst = amax > 0 ? fmax(worst, e / amax) : worst;
            CHECK_MSG(e <= best[j] + sl, "%s block %lld elem %lld: x %g stored %g, nearest code off by %g, slack %g",
                      eng_type_name(type), (long long)blk, (long long)j, (double)xb[j], ya[j] - yb[j], best[j], sl);
        }
    }
    return worst;
}

TEST(quantize_picks_nearest_codes)
{
    static const int types[] = {ENG_TYPE_Q8_0, ENG_TYPE_Q4_0, ENG_TYPE_Q4_1, ENG_TYPE_Q5_0, ENG_TYPE_Q5_1,
                                ENG_TYPE_IQ4_NL, ENG_TYPE_MXFP4, ENG_TYPE_Q2_K, ENG_TYPE_Q3_K,
                                ENG_TYPE_Q4_K, ENG_TYPE_Q5_K, ENG_TYPE_Q6_K, ENG_TYPE_IQ4_XS};
    uint64_t s = 1234567;
    const int64_t n = 512;
    double worst[13] = {0};
    for (int rep = 0; rep < 12; rep++) {
        float scale = powf(10.0f, (float)(rep % 5) - 2.0f);   /* 0.01 .. 100 */
        float *x = random_row(&s, n, scale);
        if (rep % 3 == 1)   /* all of one sign: the mins of Q4_1/K-quants */
            for (int64_t i = 0; i < n; i++)
                x[i] = fabsf(x[i]) + scale * 0.1f;
        if (rep % 4 == 2)   /* a block of zeros and an outlier */
            for (int64_t i = 0; i < 64; i++)
                x[i] = i == 40 ? 50 * scale : 0.0f;
        for (int t = 0; t < 13; t++)
            worst[t] = fmax(worst[t], check_nearest_codes(types[t], x, n));
    }
    for (int t = 0; t < 13; t++)
        printf("%-7s worst |x - y| / block amax: %.4f\n", eng_type_name(types[t]), worst[t]);
}

TEST(float_formats_round_within_bounds)
{
    uint64_t s = 77;
    const int64_t n = 32 * 64;
    for (int rep = 0; rep < 10; rep++) {
        float *x = random_row(&s, n, powf(10.0f, (float)(rep % 5) - 2.0f)), *y = tst_alloc((size_t)n * 4);
        uint16_t *q = tst_alloc((size_t)n * 2);
        eng_err err = {0};
        for (int t = 0; t < 2; t++) {
            int type = t ? ENG_TYPE_BF16 : ENG_TYPE_F16;
            double rel = t ? 0x1p-8 : 0x1p-11;
            REQUIRE(eng_quantize_row(type, x, q, n, &err) == ENG_OK);
            REQUIRE(eng_dequantize_row(type, q, y, n, &err) == ENG_OK);
            for (int64_t i = 0; i < n; i++)
                if (fabsf(x[i]) >= 0x1p-14f)   /* f16 normal range */
                    CHECK_MSG(fabs((double)x[i] - y[i]) <= rel * fabs((double)x[i]), "%s %g vs %g",
                              eng_type_name(type), (double)x[i], (double)y[i]);
        }
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The bytes llama.cpp 82bb485 writes: FNV-1a of ggml_quantize_chunk's
 * output for this input (4 rows of 1024; rows of growing scale, outliers,
 * blocks of zeros), recorded outside the repository with a program linked
 * against libggml-base (docs/engine.md, "Checking against llama.cpp"). */
TEST(quantizers_write_llama_cpp_bytes)
{
    static const struct { int type; uint64_t h; } golden[] = {
        {ENG_TYPE_Q4_0, 0x4929bb6fd5329939ull},   {ENG_TYPE_Q4_1, 0x44b497857c40b04aull},
        {ENG_TYPE_Q5_0, 0xb6f0fc893c19c68dull},   {ENG_TYPE_Q5_1, 0xb5cd74ef785f2bdcull},
        {ENG_TYPE_Q8_0, 0xa5fe353bb826b34dull},   {ENG_TYPE_IQ4_NL, 0x348a00873427a1c6ull},
        {ENG_TYPE_MXFP4, 0x19227f18791836e6ull},  {ENG_TYPE_Q2_K, 0x43d9e49092bf9c24ull},
        {ENG_TYPE_Q3_K, 0x4cab5b1f84bdc191ull},   {ENG_TYPE_Q4_K, 0xe4445e7f9ca2babeull},
        {ENG_TYPE_Q5_K, 0x759c7856a06f9f36ull},   {ENG_TYPE_Q6_K, 0x8dddc386616a4ac8ull},
        {ENG_TYPE_IQ4_XS, 0x74d801c17515cd0eull},
    };
    const int64_t rows = 4, n = 1024;
    uint64_t s = 20260101;
    float *x = tst_alloc((size_t)(rows * n) * 4);
    for (int64_t i = 0; i < rows * n; i++)
        x[i] = (i / 256) % 5 == 3 ? 0.0f : rndf(&s) * (i % 7 ? 0.5f : 3.0f) * (float)(1 + (i / n) * 7);
    for (size_t t = 0; t < sizeof golden / sizeof golden[0]; t++) {
        const size_t rb = eng_type_row_bytes(golden[t].type, n);
        uint8_t *q = tst_alloc(rb * (size_t)rows);
        eng_err err = {0};
        for (int64_t r = 0; r < rows; r++)
            REQUIRE(eng_quantize_row(golden[t].type, x + r * n, q + r * rb, n, &err) == ENG_OK);
        CHECK_MSG(fnv1a(q, rb * (size_t)rows) == golden[t].h, "%s: hash %016llx, llama.cpp %016llx",
                  eng_type_name(golden[t].type), (unsigned long long)fnv1a(q, rb * (size_t)rows),
                  (unsigned long long)golden[t].h);
    }
}

TEST(quantize_known_answers)
{
    /* Q8_0: amax 127*k gives d = k exactly (k a power of 2), q = x/k. */
    float x[64];
    for (int j = 0; j < 64; j++)
        x[j] = (float)((j * 37) % 255 - 127) * 0.25f;
    eng_block_q8_0 q8[2];
    eng_err err = {0};
    REQUIRE(eng_quantize_row(ENG_TYPE_Q8_0, x, q8, 64, &err) == ENG_OK);
    CHECK_EQ_INT(q8[0].d, eng_fp32_to_fp16(0.25f));
    for (int j = 0; j < 32; j++)
        CHECK_EQ_INT(q8[0].qs[j], (j * 37) % 255 - 127);   /* x[0] = -127 * 0.25 sets amax */
    /* all zeros: d = 0, q = 0 */
    float z[32] = {0};
    REQUIRE(eng_quantize_row(ENG_TYPE_Q8_0, z, q8, 32, &err) == ENG_OK);
    CHECK_EQ_INT(q8[0].d, 0);
    /* Q4_0: the largest magnitude -8 makes d = 1, integers in [-8, 7] exact. */
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j % 16 - 8);
    eng_block_q4_0 q4;
    REQUIRE(eng_quantize_row(ENG_TYPE_Q4_0, x, &q4, 32, &err) == ENG_OK);
    CHECK_EQ_INT(q4.d, 0x3c00);
    for (int j = 0; j < 16; j++) {
        CHECK_EQ_INT(q4.qs[j] & 0xf, j % 16);
        CHECK_EQ_INT(q4.qs[j] >> 4, (j + 16) % 16);
    }
    /* positive largest magnitude: d negative, +max maps to code 0 */
    x[0] = 16.0f;
    REQUIRE(eng_quantize_row(ENG_TYPE_Q4_0, x, &q4, 32, &err) == ENG_OK);
    CHECK(eng_fp16_to_fp32(q4.d) == -2.0f);
    CHECK_EQ_INT(q4.qs[0] & 0xf, 0);
    x[0] = NAN;
    CHECK_EQ_INT(eng_quantize_row(ENG_TYPE_Q4_0, x, &q4, 32, &err), ENG_EINVAL);
    CHECK_EQ_INT(eng_quantize_row(ENG_TYPE_IQ2_XXS, x, &q4, 32, &err), ENG_EUNSUPPORTED);
    CHECK_CONTAINS(err.msg, "iq2_xxs has no kernels");
    CHECK_EQ_INT(eng_quantize_row(ENG_TYPE_Q4_K, x, &q4, 32, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "not a multiple of q4_K's block of 256");
    CHECK_EQ_INT(eng_quantize_row(ENG_TYPE_Q8_0, z, q8, 31, &err), ENG_EINVAL);
}

TEST(simd_selection_and_env)
{
    eng_simd s;
    eng_err err = {0};
    CHECK(eng_simd_available(ENG_SIMD_SCALAR));
    CHECK(eng_kernels_get(ENG_SIMD_SCALAR) != NULL);
    CHECK(eng_kernels_simd(eng_kernels_get(ENG_SIMD_SCALAR)) == ENG_SIMD_SCALAR);
    CHECK_EQ_INT(eng_simd_parse("avx512", &s, &err), ENG_OK);
    CHECK_EQ_INT(s, ENG_SIMD_AVX512);
    CHECK_EQ_INT(eng_simd_parse("sse", &s, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown SIMD path 'sse'");
    unsetenv("MOEBENCH_SIMD");
    CHECK_EQ_INT(eng_simd_default(&s, &err), ENG_OK);
    CHECK_EQ_INT(s, eng_simd_best());
    setenv("MOEBENCH_SIMD", "scalar", 1);
    CHECK_EQ_INT(eng_simd_default(&s, &err), ENG_OK);
    CHECK_EQ_INT(s, ENG_SIMD_SCALAR);
    setenv("MOEBENCH_SIMD", "neon", 1);
    CHECK_EQ_INT(eng_simd_default(&s, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "MOEBENCH_SIMD");
    for (int i = 0; i < ENG_SIMD_COUNT; i++)
        CHECK((eng_kernels_get((eng_simd)i) != NULL) == eng_simd_available((eng_simd)i));
    printf("best path here: %s\n", eng_simd_name(eng_simd_best()));
}
