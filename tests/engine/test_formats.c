/* test_formats.c — the type table, fp16/bf16 conversions (all 65536 halves,
 * rounding cases, against the F16C instructions where the CPU has them),
 * and quantize -> dequantize error bounds.
 *
 * Error bounds (derived in docs/engine.md "Tensor formats and kernels"):
 *   f16:  |x - f16(x)| <= 2^-11 |x| for |x| in the normal range
 *   bf16: |x - bf16(x)| <= 2^-8 |x|
 *   Q8_0: d = amax/127, q = round(x/d) in [-127, 127], stored d16 = fp16(d):
 *         |x - q*d16| <= d/2 + 127*|d - d16| + rounding of x*id
 *                     <= d * (1/2 + 127 * 2^-11 + 2^-16)
 *   Q4_0: d = max/-8 (max = the signed element of largest magnitude),
 *         q = min(15, trunc(x/d + 8.5)) - 8 in [-8, 7]: |x - q*d| <= |d|/2
 *         except for elements clamped at q = 7 (x/d in [7.5, 8]) where it
 *         is <= |d|; with the fp16 scale: <= |d| * (1 + 8 * 2^-11 + 2^-16).
 *   Q5_0: the same with 5 bits, d = max/-16: <= |d| * (1 + 16 * 2^-11 + 2^-16).
 *   Q4_K: per sub-block of 32, scale_j = (max x - min(0, min x))/15 and
 *         min_j = -min(0, min x); D = max scale_j, M = max min_j. The 6-bit
 *         scale/min codes are off by <= 0.5 step (step D/63, M/63) plus the
 *         fp16 rounding of D/63, M/63 (63 * 2^-11 steps): with
 *         e_s = 0.53 D/63, e_m = 0.53 M/63 an element is off by at most
 *         max(d_eff/2, 15 e_s + e_m, e_m) <= D/2 + 8.5 D/63 + e_m.
 *   Q6_K: per group of 16, scale_g = max/-32, S = the largest |scale_g|;
 *         the int8 scale code is off by <= 0.5 step of S/128, or 1 step
 *         where a scale of the opposite sign to S's is clamped at 127, plus
 *         the fp16 rounding (128 * 2^-11 steps): e = 1.07 S/128, and an
 *         element is off by at most |scale_g| + 33 e <= |scale_g| + 0.28 S.
 */
#include "tests/test.h"

#include "engine/formats.h"
#include "engine/kernels.h"

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
        /* every SIMD table has every kernel of a supported type */
        for (int s = 0; s < ENG_SIMD_COUNT; s++) {
            const eng_kernels *k = s == 0 ? &eng_kernels_scalar : s == 1 ? &eng_kernels_avx2 : &eng_kernels_avx512;
            CHECK_MSG(k->matvec[t] && k->dequant[t], "%s lacks kernels for %s", eng_simd_name(s), f->name);
        }
    }
    CHECK_EQ_INT(supported, 8);
    CHECK(eng_format_get(ENG_TYPE_Q4_K)->supported && eng_format_get(ENG_TYPE_Q6_K)->supported &&
          eng_format_get(ENG_TYPE_Q5_0)->supported && !eng_format_get(ENG_TYPE_Q5_K)->supported);
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

/* Q4_K and Q6_K quantize -> dequantize within the bounds derived above;
 * rep shifts x for half the repetitions so that Q4_K's mins (x >= 0 or
 * mixed signs) are exercised both ways. */
static void check_k_quant_error(const float *x0, int64_t n, int rep)
{
    float *x = tst_alloc((size_t)n * 4), *y = tst_alloc((size_t)n * 4);
    uint8_t *q = tst_alloc((size_t)n * 4);
    eng_err err = {0};
    for (int64_t i = 0; i < n; i++)
        x[i] = x0[i] + (rep & 1 ? fabsf(x0[0]) : 0.0f);
    REQUIRE(eng_quantize_row(ENG_TYPE_Q4_K, x, q, n, &err) == ENG_OK);
    REQUIRE(eng_dequantize_row(ENG_TYPE_Q4_K, q, y, n, &err) == ENG_OK);
    double worst = 0;
    for (int64_t b = 0; b < n / 256; b++) {
        double D = 0, M = 0;
        for (int j = 0; j < 8; j++) {
            float lo = 0, hi = x[b * 256 + 32 * j];
            for (int l = 0; l < 32; l++) {
                lo = fminf(lo, x[b * 256 + 32 * j + l]);
                hi = fmaxf(hi, x[b * 256 + 32 * j + l]);
            }
            D = fmax(D, (hi - lo) / 15.0);
            M = fmax(M, -lo);
        }
        double bound = D / 2 + 8.5 * D / 63 + 0.53 * M / 63 + 1e-6 * (D + M);
        for (int e = 0; e < 256; e++) {
            double err_e = fabs((double)x[b * 256 + e] - y[b * 256 + e]);
            worst = fmax(worst, err_e / D);
            CHECK_MSG(err_e <= bound, "q4_K block %lld elem %d: %g vs %g (bound %g)", (long long)b,
                      e, (double)x[b * 256 + e], (double)y[b * 256 + e], bound);
        }
    }
    REQUIRE(eng_quantize_row(ENG_TYPE_Q6_K, x, q, n, &err) == ENG_OK);
    REQUIRE(eng_dequantize_row(ENG_TYPE_Q6_K, q, y, n, &err) == ENG_OK);
    for (int64_t b = 0; b < n / 256; b++) {
        double S = 0, sg[16];
        for (int g = 0; g < 16; g++) {
            float amax = 0;
            for (int l = 0; l < 16; l++)
                amax = fmaxf(amax, fabsf(x[b * 256 + 16 * g + l]));
            sg[g] = amax / 32.0;
            S = fmax(S, sg[g]);
        }
        for (int e = 0; e < 256; e++) {
            double bound = sg[e / 16] + 0.28 * S + 1e-6 * S;
            CHECK_MSG(fabs((double)x[b * 256 + e] - y[b * 256 + e]) <= bound,
                      "q6_K block %lld elem %d: %g vs %g (bound %g)", (long long)b, e,
                      (double)x[b * 256 + e], (double)y[b * 256 + e], bound);
        }
    }
    if (rep == 0)
        printf("q4_K worst error / max sub-block scale: %.3f\n", worst);
}

TEST(quantize_error_within_bounds)
{
    uint64_t s = 1234567;
    const int64_t n = 32 * 64;
    for (int rep = 0; rep < 20; rep++) {
        float scale = powf(10.0f, (float)(rep % 5) - 2.0f);   /* 0.01 .. 100 */
        float *x = random_row(&s, n, scale), *y = tst_alloc((size_t)n * 4);
        uint8_t *q = tst_alloc((size_t)n * 4);  /* room for any of the formats */
        eng_err err = {0};
        REQUIRE(eng_quantize_row(ENG_TYPE_Q8_0, x, q, n, &err) == ENG_OK);
        REQUIRE(eng_dequantize_row(ENG_TYPE_Q8_0, q, y, n, &err) == ENG_OK);
        for (int64_t b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            double d = amax / 127.0, bound = d * (0.5 + 127 * 0x1p-11 + 0x1p-16);
            for (int j = 0; j < 32; j++)
                CHECK_MSG(fabs((double)x[b * 32 + j] - y[b * 32 + j]) <= bound,
                          "q8_0 block %lld elem %d: %g vs %g (bound %g)", (long long)b, j,
                          (double)x[b * 32 + j], (double)y[b * 32 + j], bound);
        }
        REQUIRE(eng_quantize_row(ENG_TYPE_Q4_0, x, q, n, &err) == ENG_OK);
        REQUIRE(eng_dequantize_row(ENG_TYPE_Q4_0, q, y, n, &err) == ENG_OK);
        for (int64_t b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            double d = amax / 8.0, bound = d * (1 + 8 * 0x1p-11 + 0x1p-16);
            for (int j = 0; j < 32; j++)
                CHECK_MSG(fabs((double)x[b * 32 + j] - y[b * 32 + j]) <= bound,
                          "q4_0 block %lld elem %d: %g vs %g (bound %g)", (long long)b, j,
                          (double)x[b * 32 + j], (double)y[b * 32 + j], bound);
        }
        REQUIRE(eng_quantize_row(ENG_TYPE_Q5_0, x, q, n, &err) == ENG_OK);
        REQUIRE(eng_dequantize_row(ENG_TYPE_Q5_0, q, y, n, &err) == ENG_OK);
        for (int64_t b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            double d = amax / 16.0, bound = d * (1 + 16 * 0x1p-11 + 0x1p-16);
            for (int j = 0; j < 32; j++)
                CHECK_MSG(fabs((double)x[b * 32 + j] - y[b * 32 + j]) <= bound,
                          "q5_0 block %lld elem %d: %g vs %g (bound %g)", (long long)b, j,
                          (double)x[b * 32 + j], (double)y[b * 32 + j], bound);
        }
        check_k_quant_error(x, n, rep);
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
    CHECK_EQ_INT(eng_quantize_row(ENG_TYPE_Q5_1, x, &q4, 32, &err), ENG_EUNSUPPORTED);
    CHECK_CONTAINS(err.msg, "q5_1 has no kernels");
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
