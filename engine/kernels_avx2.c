/*
 * kernels_avx2.c — AVX2 + FMA + F16C kernels (Haswell and later, Zen):
 * what llama.cpp built for an AVX2 machine computes.
 *
 * - Block formats: ggml's x86 dot kernels (kernels_x86.h, with
 *   vpmaddubsw + vpmaddwd).
 * - F32: ggml_vec_dot_f32 of an AVX build (GGML_F32_STEP 32: four 8-lane
 *   FMA accumulators, reduced (a0+a2)+(a1+a3), then lo+hi and two hadds),
 *   the n % 32 leftover as rounded products added in order, the last n % 4
 *   with FMAs (GCC's vectorization of ggml's scalar loop); F16 the same with f16 loads
 *   and the f16 x, summed on in double (ggml_float) for the leftover; BF16
 *   as ggml_vec_dot_bf16's AVX2 branch (4 x 8 lanes of products of exact
 *   bf16 values, (c1+c3)+(c2+c4), then double).
 * - x forms: ggml's AVX quantize_row_q8_0/q8_1 (id = 127/amax, vroundps to
 *   nearest even), quantize_row_q8_K_ref vectorized (same float ops; the
 *   rounding trick replaced by vroundps, which gives the same integers),
 *   vcvtps2ph.
 * - Dequantizers: the scalar values, 8 or 32 at a time (exact arithmetic,
 *   see kernels_scalar.c).
 */
#include "engine/kernels.h"
#include "engine/vecops.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define T __attribute__((target("avx2,fma,f16c")))
#define SFX(name) name##_avx2
#define VNNI 0
#define ENG_KERNELS_X86_TEMPLATE
#include "engine/kernels_x86.h"

/* ---- x forms ------------------------------------------------------------- */

/* One block of 32: amax with vmaxps, the scales, q = round(x * id). */
T void eng_avx2_x_q8(const float *x, int64_t n, float *d, float *s, int8_t *qs, int32_t *ls8)
{
    const __m256 signBit = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        __m256 v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_loadu_ps(x + 8 * k);
        __m256 maxAbs = _mm256_andnot_ps(signBit, v[0]);
        for (int k = 1; k < 4; k++)
            maxAbs = _mm256_max_ps(maxAbs, _mm256_andnot_ps(signBit, v[k]));
        __m128 max4 = _mm_max_ps(_mm256_extractf128_ps(maxAbs, 1), _mm256_castps256_ps128(maxAbs));
        max4 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
        max4 = _mm_max_ss(max4, _mm_movehdup_ps(max4));
        const float maxScalar = _mm_cvtss_f32(max4);
        const float db = maxScalar / 127.f;
        d[b] = _cvtsh_ss(_cvtss_sh(db, 0));
        const __m256 mul = _mm256_set1_ps(maxScalar != 0.0f ? 127.f / maxScalar : 0.0f);
        __m256i i[4];
        for (int k = 0; k < 4; k++)
            i[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_ROUND_NEAREST));
        const int sum = hsum_i32_8(_mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3])));
        s[b] = _cvtsh_ss(_cvtss_sh(db * (float)sum, 0));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(qs + 32 * b), p);
        const __m256i ls = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(8), p), _mm256_set1_epi16(1));
        _mm256_storeu_si256((__m256i *)(ls8 + 8 * b), ls);
    }
}

/* quantize_row_q8_K_ref: max = the first element of largest magnitude. */
T static float q8k_max(const float *x)
{
    const __m256 signBit = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < ENG_QK_K; j += 8)
        m = _mm256_max_ps(m, _mm256_andnot_ps(signBit, _mm256_loadu_ps(x + j)));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    for (int j = 0; j < ENG_QK_K; j++)
        if (fabsf(x[j]) == amax)
            return x[j];
    return 0.0f;   /* no element reached amax: a NaN took part */
}

T void eng_avx2_x_q8k(const float *x, int64_t n, float *d, int8_t *qs, int16_t *bsums)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++, x += ENG_QK_K) {
        const float max = q8k_max(x);
        int8_t *q = qs + b * ENG_QK_K;
        if (max == 0.0f) {
            eng_scalar_x_q8k(x, ENG_QK_K, d + b, q, bsums + 16 * b);   /* zeros (or NaNs) */
            continue;
        }
        const float iscale = -127.f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        for (int g = 0; g < 16; g++) {
            __m256i v[2];
            for (int h = 0; h < 2; h++) {
                const __m256 p = _mm256_mul_ps(vs, _mm256_loadu_ps(x + 16 * g + 8 * h));
                const __m256 nan = _mm256_cmp_ps(p, p, _CMP_UNORD_Q);   /* nearest_int(NaN) = 0 */
                const __m256 r =
                    _mm256_andnot_ps(nan, _mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                v[h] = _mm256_min_epi32(_mm256_cvtps_epi32(r), _mm256_set1_epi32(127));
            }
            bsums[16 * b + g] = (int16_t)hsum_i32_8(_mm256_add_epi32(v[0], v[1]));
            __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(v[0]), _mm256_extracti128_si256(v[0], 1));
            __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(v[1]), _mm256_extracti128_si256(v[1], 1));
            _mm_storeu_si128((__m128i *)(q + 16 * g), _mm_packs_epi16(p16, q16));
        }
        d[b] = 1 / iscale;
    }
}

T void eng_avx2_x_f16(const float *x, int64_t n, uint16_t *h)
{
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm_storeu_si128((__m128i *)(h + j), _mm256_cvtps_ph(_mm256_loadu_ps(x + j), _MM_FROUND_TO_NEAREST_INT));
    for (; j < n; j++)
        h[j] = eng_fp32_to_fp16(x[j]);
}

/* ---- float weights ------------------------------------------------------ */

/* GGML_F32x8_REDUCE: a0+a2, a1+a3, then their sum, lo+hi, hadd, hadd. */
T static inline float reduce_f32x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    const __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

T static float dot_f32(const float *a, const float *x, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const int64_t np = n & ~(int64_t)31;
    for (int64_t j = 0; j < np; j += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(x + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(x + j + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 16), _mm256_loadu_ps(x + j + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 24), _mm256_loadu_ps(x + j + 24), s3);
    }
    float s = reduce_f32x8(s0, s1, s2, s3);
    /* the leftover loop as GCC vectorized it in ggml's build: rounded
     * products added one by one, except the last n % 4 (FMAs) */
    const int64_t nf = n - (n - np) % 4;
    int64_t j = np;
    for (; j < nf; j++)
        s += eng_f32_barrier(a[j] * x[j]);
    for (; j < n; j++)
        s = fmaf(a[j], x[j], s);
    return s;
}

T static inline __m256 load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

T static float dot_f16(const uint16_t *a, const uint16_t *x, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const int64_t np = n & ~(int64_t)31;
    for (int64_t j = 0; j < np; j += 32) {
        s0 = _mm256_fmadd_ps(load_f16(a + j), load_f16(x + j), s0);
        s1 = _mm256_fmadd_ps(load_f16(a + j + 8), load_f16(x + j + 8), s1);
        s2 = _mm256_fmadd_ps(load_f16(a + j + 16), load_f16(x + j + 16), s2);
        s3 = _mm256_fmadd_ps(load_f16(a + j + 24), load_f16(x + j + 24), s3);
    }
    double s = reduce_f32x8(s0, s1, s2, s3);
    for (int64_t j = np; j < n; j++)
        s += (double)(_cvtsh_ss(a[j]) * _cvtsh_ss(x[j]));
    return (float)s;
}

T static inline __m256 load_bf16(const uint16_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

T static float dot_bf16(const uint16_t *a, const uint16_t *x, int64_t n)
{
    __m256 c1 = _mm256_setzero_ps(), c2 = c1, c3 = c1, c4 = c1;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {   /* products of bf16 values are exact: add(mul) == fma */
        c1 = _mm256_add_ps(_mm256_mul_ps(load_bf16(a + j), load_bf16(x + j)), c1);
        c2 = _mm256_add_ps(_mm256_mul_ps(load_bf16(a + j + 8), load_bf16(x + j + 8)), c2);
        c3 = _mm256_add_ps(_mm256_mul_ps(load_bf16(a + j + 16), load_bf16(x + j + 16)), c3);
        c4 = _mm256_add_ps(_mm256_mul_ps(load_bf16(a + j + 24), load_bf16(x + j + 24)), c4);
    }
    c1 = _mm256_add_ps(_mm256_add_ps(c1, c3), _mm256_add_ps(c2, c4));
    __m128 g = _mm_add_ps(_mm256_extractf128_ps(c1, 1), _mm256_castps256_ps128(c1));
    g = _mm_add_ps(g, _mm_movehl_ps(g, g));
    g = _mm_add_ss(g, _mm_movehdup_ps(g));
    double s = _mm_cvtss_f32(g);
    for (; j < n; j++)
        s += (double)(eng_bf16_to_fp32(a[j]) * eng_bf16_to_fp32(x[j]));
    return (float)s;
}

T static void matvec_f32(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++)
        y[r] = dot_f32((const float *)((const char *)w + (size_t)r * rb), x->f32, x->n);
}

T static void matvec_f16(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++)
        y[r] = dot_f16((const uint16_t *)((const char *)w + (size_t)r * rb), x->f16, x->n);
}

T static void matvec_bf16(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++)
        y[r] = dot_bf16((const uint16_t *)((const char *)w + (size_t)r * rb), x->bf16, x->n);
}

/* ---- dequantization ------------------------------------------------------ */

T void eng_avx2_dequant_f16(const void *row, float *dst, int64_t n)
{
    const uint16_t *h = row;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dst + j, load_f16(h + j));
    for (; j < n; j++)
        dst[j] = eng_fp16_to_fp32(h[j]);
}

T void eng_avx2_dequant_bf16(const void *row, float *dst, int64_t n)
{
    const uint16_t *h = row;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dst + j, load_bf16(h + j));
    for (; j < n; j++)
        dst[j] = eng_bf16_to_fp32(h[j]);
}

/* 32 signed bytes (codes) as q * f + m into dst[32]; q * f is exact for
 * every format here except IQ4_XS, whose single product rounds once as the
 * scalar one does; m = -0.0 leaves the product as it is. */
T static inline void store_qfm(__m256i q, float f, float m, float *dst)
{
    const __m256 vf = _mm256_set1_ps(f), vm = _mm256_set1_ps(m);
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; k++) {
        const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part[k])), vf);
        _mm256_storeu_ps(dst + 8 * k, _mm256_add_ps(v, vm));
    }
}

/* 32 codes whose first 16 use f0, m0 and last 16 f1, m1. */
T static inline void store_qfm2(__m256i q, float f0, float m0, float f1, float m1, float *dst)
{
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; k++) {
        const __m256 q32 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part[k]));
        const __m256 v = _mm256_mul_ps(q32, _mm256_set1_ps(k < 2 ? f0 : f1));
        _mm256_storeu_ps(dst + 8 * k, _mm256_add_ps(v, _mm256_set1_ps(k < 2 ? m0 : m1)));
    }
}

T void eng_avx2_dequant_q8_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q8_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_qfm(load_q8_0(&b[i]), h2f(b[i].d), -0.0f, dst + 32 * i);
}

T void eng_avx2_dequant_q4_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q4_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_qfm(load_q4_0(&b[i]), h2f(b[i].d), -0.0f, dst + 32 * i);
}

T void eng_avx2_dequant_q4_1(const void *row, float *dst, int64_t n)
{
    const eng_block_q4_1 *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_qfm(bytes_from_nibbles_32(b[i].qs), h2f(b[i].d), h2f(b[i].m), dst + 32 * i);
}

T void eng_avx2_dequant_q5_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q5_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_qfm(load_q5_0(&b[i]), h2f(b[i].d), -0.0f, dst + 32 * i);
}

T void eng_avx2_dequant_q5_1(const void *row, float *dst, int64_t n)
{
    const eng_block_q5_1 *b = row;
    for (int64_t i = 0; i < n / 32; i++) {
        const __m256i hi = _mm256_and_si256(bytes_from_bits_32(b[i].qh), _mm256_set1_epi8(0x10));
        store_qfm(_mm256_or_si256(bytes_from_nibbles_32(b[i].qs), hi), h2f(b[i].d), h2f(b[i].m), dst + 32 * i);
    }
}

T static inline __m256i table_codes(const uint8_t *qs, const int8_t *table)
{
    const __m128i values = _mm_loadu_si128((const __m128i *)table), m4 = _mm_set1_epi8(0x0f);
    const __m128i bits = _mm_loadu_si128((const __m128i *)qs);
    const __m128i lo = _mm_shuffle_epi8(values, _mm_and_si128(bits, m4));
    const __m128i hi = _mm_shuffle_epi8(values, _mm_and_si128(_mm_srli_epi16(bits, 4), m4));
    return _mm256_set_m128i(hi, lo);
}

T void eng_avx2_dequant_iq4_nl(const void *row, float *dst, int64_t n)
{
    const eng_block_iq4_nl *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_qfm(table_codes(b[i].qs, eng_kvalues_iq4nl), h2f(b[i].d), -0.0f, dst + 32 * i);
}

T void eng_avx2_dequant_mxfp4(const void *row, float *dst, int64_t n)
{
    const eng_block_mxfp4 *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_qfm(table_codes(b[i].qs, eng_kvalues_mxfp4), eng_e8m0_half(b[i].e), -0.0f, dst + 32 * i);
}

/* Q2_K / Q3_K: 2-bit codes of chunk t (32 elements) of half h. */
T static inline __m256i q2_codes(const uint8_t *qs, int h, int t)
{
    const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
    return _mm256_and_si256(_mm256_srli_epi16(bits, 2 * t), _mm256_set1_epi8(3));
}

T void eng_avx2_dequant_q2_k(const void *row, float *dst, int64_t n)
{
    const eng_block_q2_k *b = row;
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        for (int c = 0; c < 8; c++) {   /* 32-element chunk c = 4h + t, groups 2c, 2c+1 */
            const uint8_t s0 = b[i].scales[2 * c], s1 = b[i].scales[2 * c + 1];
            store_qfm2(q2_codes(b[i].qs, c / 4, c % 4), d * (s0 & 0xf), -(dmin * (s0 >> 4)),
                       d * (s1 & 0xf), -(dmin * (s1 >> 4)), dst + 32 * c);
        }
    }
}

T void eng_avx2_dequant_q3_k(const void *row, float *dst, int64_t n)
{
    const eng_block_q3_k *b = row;
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        int8_t sc[16];
        eng_q3k_unpack_scales(b[i].scales, sc);
        const float d = h2f(b[i].d);
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)b[i].hmask);
        for (int c = 0; c < 8; c++) {
            /* minus 4 where bit c of hmask is clear */
            const __m256i bit = _mm256_set1_epi8((char)(1 << c));
            const __m256i clear = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, bit), _mm256_setzero_si256());
            const __m256i q = _mm256_sub_epi8(q2_codes(b[i].qs, c / 4, c % 4),
                                              _mm256_and_si256(clear, _mm256_set1_epi8(4)));
            store_qfm2(q, d * sc[2 * c], -0.0f, d * sc[2 * c + 1], -0.0f, dst + 32 * c);
        }
    }
}

/* Q4_K / Q5_K: 32 codes of sub-block j with scale and min. */
T void eng_avx2_dequant_q4_k(const void *row, float *dst, int64_t n)
{
    const eng_block_q4_k *b = row;
    const __m256i lo4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        uint8_t sm[16];
        eng_q4k_unpack_scales(b[i].scales, sm);
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        for (int c = 0; c < 4; c++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * c));
            store_qfm(_mm256_and_si256(q, lo4), d * sm[2 * c], -(dmin * sm[8 + 2 * c]), dst + 64 * c);
            store_qfm(_mm256_and_si256(_mm256_srli_epi16(q, 4), lo4), d * sm[2 * c + 1], -(dmin * sm[9 + 2 * c]),
                      dst + 64 * c + 32);
        }
    }
}

T void eng_avx2_dequant_q5_k(const void *row, float *dst, int64_t n)
{
    const eng_block_q5_k *b = row;
    const __m256i lo4 = _mm256_set1_epi8(0x0f), b16 = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        uint8_t sm[16];
        eng_q4k_unpack_scales(b[i].scales, sm);
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)b[i].qh);
        for (int j = 0; j < 8; j++) {   /* sub-block j: nibble j % 2 of chunk j / 2, bit j of qh */
            const __m256i q = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * (j / 2)));
            const __m256i lo = _mm256_and_si256(j % 2 ? _mm256_srli_epi16(q, 4) : q, lo4);
            const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, _mm256_set1_epi8((char)(1 << j))),
                                                  _mm256_set1_epi8((char)(1 << j)));
            store_qfm(_mm256_or_si256(lo, _mm256_and_si256(set, b16)), d * sm[j], -(dmin * sm[8 + j]), dst + 32 * j);
        }
    }
}

T void eng_avx2_dequant_q6_k(const void *row, float *dst, int64_t n)
{
    const eng_block_q6_k *b = row;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        const float d = h2f(b[i].d);
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b[i].ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b[i].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * h));
            for (int c = 0; c < 4; c++) {
                __m256i l = c & 1 ? ql1 : ql0;
                l = c >> 1 ? _mm256_and_si256(_mm256_srli_epi16(l, 4), m4) : _mm256_and_si256(l, m4);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), m2);
                const __m256i q = _mm256_sub_epi8(_mm256_or_si256(l, _mm256_slli_epi16(hb, 4)), _mm256_set1_epi8(32));
                const int k = 4 * h + c;
                store_qfm2(q, d * b[i].scales[2 * k], -0.0f, d * b[i].scales[2 * k + 1], -0.0f, dst + 32 * k);
            }
        }
    }
}

/* IQ4_XS: the product (d * (ls - 32)) * value has up to 25 bits and rounds
 * once, exactly as the scalar d * sc * q. */
T void eng_avx2_dequant_iq4_xs(const void *row, float *dst, int64_t n)
{
    const eng_block_iq4_xs *b = row;
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        const float d = h2f(b[i].d);
        for (int ib = 0; ib < 8; ib++)
            store_qfm(table_codes(b[i].qs + 16 * ib, eng_kvalues_iq4nl), d * eng_iq4xs_scale(&b[i], ib), -0.0f,
                      dst + 32 * ib);
    }
}

#define BLOCK_KERNELS(sfx)                                                                        \
    [ENG_TYPE_Q8_0] = matvec_q8_0##sfx, [ENG_TYPE_Q4_0] = matvec_q4_0##sfx,                       \
    [ENG_TYPE_Q4_1] = matvec_q4_1##sfx, [ENG_TYPE_Q5_0] = matvec_q5_0##sfx,                       \
    [ENG_TYPE_Q5_1] = matvec_q5_1##sfx, [ENG_TYPE_IQ4_NL] = matvec_iq4_nl##sfx,                   \
    [ENG_TYPE_MXFP4] = matvec_mxfp4##sfx

const struct eng_kernels eng_kernels_avx2 = {
    .simd = ENG_SIMD_AVX2,
    .name = "avx2",
    .x_q8 = eng_avx2_x_q8,
    .x_q8k = eng_avx2_x_q8k,
    .x_f16 = eng_avx2_x_f16,
    .x_bf16 = eng_scalar_x_bf16,
    .matvec = {[ENG_TYPE_F32] = matvec_f32, [ENG_TYPE_F16] = matvec_f16, [ENG_TYPE_BF16] = matvec_bf16,
               BLOCK_KERNELS(_avx2), [ENG_TYPE_Q2_K] = matvec_q2_k_avx2, [ENG_TYPE_Q3_K] = matvec_q3_k_avx2,
               [ENG_TYPE_Q4_K] = matvec_q4_k_avx2, [ENG_TYPE_Q5_K] = matvec_q5_k_avx2,
               [ENG_TYPE_Q6_K] = matvec_q6_k_avx2, [ENG_TYPE_IQ4_XS] = matvec_iq4_xs_avx2},
    .dequant = {[ENG_TYPE_F32] = eng_scalar_dequant_f32, [ENG_TYPE_F16] = eng_avx2_dequant_f16,
                [ENG_TYPE_BF16] = eng_avx2_dequant_bf16, [ENG_TYPE_Q8_0] = eng_avx2_dequant_q8_0,
                [ENG_TYPE_Q4_0] = eng_avx2_dequant_q4_0, [ENG_TYPE_Q4_1] = eng_avx2_dequant_q4_1,
                [ENG_TYPE_Q5_0] = eng_avx2_dequant_q5_0, [ENG_TYPE_Q5_1] = eng_avx2_dequant_q5_1,
                [ENG_TYPE_IQ4_NL] = eng_avx2_dequant_iq4_nl, [ENG_TYPE_MXFP4] = eng_avx2_dequant_mxfp4,
                [ENG_TYPE_Q2_K] = eng_avx2_dequant_q2_k, [ENG_TYPE_Q3_K] = eng_avx2_dequant_q3_k,
                [ENG_TYPE_Q4_K] = eng_avx2_dequant_q4_k, [ENG_TYPE_Q5_K] = eng_avx2_dequant_q5_k,
                [ENG_TYPE_Q6_K] = eng_avx2_dequant_q6_k, [ENG_TYPE_IQ4_XS] = eng_avx2_dequant_iq4_xs},
};
