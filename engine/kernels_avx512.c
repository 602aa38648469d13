/*
 * kernels_avx512.c — AVX-512 F/BW/VL kernels (Skylake-X, Ice Lake, Zen 4).
 *
 * Same structure as the AVX2 path with 16-float registers: 4 accumulators of
 * 16 for f32/f16/bf16 and masked loads for the tail (no scalar remainder).
 * Q8_0/Q4_0 take two 32-element blocks per 512-bit register; AVX-512 has no
 * vpsignb, so sign(w)*x is a masked negate (x negated where w < 0) and |w|
 * is vpabsb; the scale vector holds d0 in lanes 0-7 and d1 in lanes 8-15.
 * The x quantizer is the AVX2 one (bit-identical on every path anyway).
 */
#include "engine/kernels.h"

#include <immintrin.h>
#include <string.h>

#define T __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

T static float dot_f32(const float *a, const float *x, int64_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j), _mm512_loadu_ps(x + j), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 16), _mm512_loadu_ps(x + j + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 32), _mm512_loadu_ps(x + j + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 48), _mm512_loadu_ps(x + j + 48), s3);
    }
    for (; j + 16 <= n; j += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j), _mm512_loadu_ps(x + j), s0);
    if (j < n) {
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + j), _mm512_maskz_loadu_ps(m, x + j), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

T static inline __m512 load_f16(__mmask16 m, const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

T static inline __m512 load_bf16(__mmask16 m, const uint16_t *p)
{
    __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

#define DOT_HALF(NAME, LOAD)                                                                \
    T static float NAME(const uint16_t *a, const float *x, int64_t n)                       \
    {                                                                                        \
        const __mmask16 all = 0xffff;                                                        \
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                         \
        int64_t j = 0;                                                                       \
        for (; j + 64 <= n; j += 64) {                                                       \
            s0 = _mm512_fmadd_ps(LOAD(all, a + j), _mm512_loadu_ps(x + j), s0);             \
            s1 = _mm512_fmadd_ps(LOAD(all, a + j + 16), _mm512_loadu_ps(x + j + 16), s1);   \
            s2 = _mm512_fmadd_ps(LOAD(all, a + j + 32), _mm512_loadu_ps(x + j + 32), s2);   \
            s3 = _mm512_fmadd_ps(LOAD(all, a + j + 48), _mm512_loadu_ps(x + j + 48), s3);   \
        }                                                                                    \
        for (; j + 16 <= n; j += 16)                                                         \
            s0 = _mm512_fmadd_ps(LOAD(all, a + j), _mm512_loadu_ps(x + j), s0);             \
        if (j < n) {                                                                         \
            __mmask16 m = (__mmask16)((1u << (n - j)) - 1);                                  \
            s1 = _mm512_fmadd_ps(LOAD(m, a + j), _mm512_maskz_loadu_ps(m, x + j), s1);      \
        }                                                                                    \
        return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))); \
    }
DOT_HALF(dot_f16, load_f16)
DOT_HALF(dot_bf16, load_bf16)

T static void matvec_f32(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++)
        y[r] = dot_f32((const float *)((const char *)w + (size_t)r * rb), x->f32, x->n);
}

T static void matvec_f16(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++)
        y[r] = dot_f16((const uint16_t *)((const char *)w + (size_t)r * rb), x->f32, x->n);
}

T static void matvec_bf16(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++)
        y[r] = dot_bf16((const uint16_t *)((const char *)w + (size_t)r * rb), x->f32, x->n);
}

/* 16 x i32 partial sums as floats of two blocks: w, x signed bytes. */
T static inline __m512 pair_dot(__m512i w, __m512i x)
{
    const __m512i ones = _mm512_set1_epi16(1);
    __mmask64 neg = _mm512_movepi8_mask(w);
    __m512i sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
    __m512i p = _mm512_maddubs_epi16(_mm512_abs_epi8(w), sx);
    return _mm512_cvtepi32_ps(_mm512_madd_epi16(p, ones));
}

T static inline __m512i join(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

T static inline __m512 pair_scale(float d0, float d1)
{
    return _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(d0), _mm512_set1_ps(d1));
}

T static inline __m256i unpack_q4(const uint8_t *qs)
{
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m128i lo4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    __m128i lo = _mm_sub_epi8(_mm_and_si128(b, lo4), eight);
    __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), lo4), eight);
    return _mm256_set_m128i(hi, lo);
}

/* Scalar tail for an odd last block: 8 lanes are enough. */
T static inline __m256 block_dot256(__m256i w, __m256i x)
{
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

T static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

T static void matvec_q8_0(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / 32;
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q8_0 *b = (const eng_block_q8_0 *)((const char *)w + (size_t)r * rb);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i + 4 <= nb; i += 4) {
            __m512 p0 = pair_dot(join(_mm256_loadu_si256((const __m256i *)b[i].qs),
                                      _mm256_loadu_si256((const __m256i *)b[i + 1].qs)),
                                 _mm512_load_si512(x->xq + i * 32));
            __m512 p1 = pair_dot(join(_mm256_loadu_si256((const __m256i *)b[i + 2].qs),
                                      _mm256_loadu_si256((const __m256i *)b[i + 3].qs)),
                                 _mm512_loadu_si512(x->xq + i * 32 + 64));
            a0 = _mm512_fmadd_ps(p0, pair_scale(_cvtsh_ss(b[i].d) * x->xd[i],
                                                _cvtsh_ss(b[i + 1].d) * x->xd[i + 1]), a0);
            a1 = _mm512_fmadd_ps(p1, pair_scale(_cvtsh_ss(b[i + 2].d) * x->xd[i + 2],
                                                _cvtsh_ss(b[i + 3].d) * x->xd[i + 3]), a1);
        }
        float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
        __m256 t = _mm256_setzero_ps();
        for (; i < nb; i++)
            t = _mm256_fmadd_ps(block_dot256(_mm256_loadu_si256((const __m256i *)b[i].qs),
                                             _mm256_load_si256((const __m256i *)(x->xq + i * 32))),
                                _mm256_set1_ps(_cvtsh_ss(b[i].d) * x->xd[i]), t);
        y[r] = s + hsum8(t);
    }
}

T static void matvec_q4_0(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / 32;
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q4_0 *b = (const eng_block_q4_0 *)((const char *)w + (size_t)r * rb);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i + 4 <= nb; i += 4) {
            __m512 p0 = pair_dot(join(unpack_q4(b[i].qs), unpack_q4(b[i + 1].qs)),
                                 _mm512_load_si512(x->xq + i * 32));
            __m512 p1 = pair_dot(join(unpack_q4(b[i + 2].qs), unpack_q4(b[i + 3].qs)),
                                 _mm512_loadu_si512(x->xq + i * 32 + 64));
            a0 = _mm512_fmadd_ps(p0, pair_scale(_cvtsh_ss(b[i].d) * x->xd[i],
                                                _cvtsh_ss(b[i + 1].d) * x->xd[i + 1]), a0);
            a1 = _mm512_fmadd_ps(p1, pair_scale(_cvtsh_ss(b[i + 2].d) * x->xd[i + 2],
                                                _cvtsh_ss(b[i + 3].d) * x->xd[i + 3]), a1);
        }
        float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
        __m256 t = _mm256_setzero_ps();
        for (; i < nb; i++)
            t = _mm256_fmadd_ps(block_dot256(unpack_q4(b[i].qs),
                                             _mm256_load_si256((const __m256i *)(x->xq + i * 32))),
                                _mm256_set1_ps(_cvtsh_ss(b[i].d) * x->xd[i]), t);
        y[r] = s + hsum8(t);
    }
}

static void dequant_f32(const void *row, float *dst, int64_t n) { memcpy(dst, row, (size_t)n * 4); }

#define DEQ_HALF(NAME, LOAD)                                                                \
    T static void NAME(const void *row, float *dst, int64_t n)                               \
    {                                                                                        \
        const uint16_t *h = row;                                                             \
        int64_t j = 0;                                                                       \
        for (; j + 16 <= n; j += 16)                                                         \
            _mm512_storeu_ps(dst + j, LOAD(0xffff, h + j));                                  \
        if (j < n) {                                                                         \
            __mmask16 m = (__mmask16)((1u << (n - j)) - 1);                                  \
            _mm512_mask_storeu_ps(dst + j, m, LOAD(m, h + j));                               \
        }                                                                                    \
    }
DEQ_HALF(dequant_f16, load_f16)
DEQ_HALF(dequant_bf16, load_bf16)

T static inline void store_scaled(__m256i q, float d, float *dst)
{
    const __m512 vd = _mm512_set1_ps(d);
    _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q))), vd));
    _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1))), vd));
}

T static void dequant_q8_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q8_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_scaled(_mm256_loadu_si256((const __m256i *)b[i].qs), _cvtsh_ss(b[i].d), dst + i * 32);
}

T static void dequant_q4_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q4_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_scaled(unpack_q4(b[i].qs), _cvtsh_ss(b[i].d), dst + i * 32);
}

const struct eng_kernels eng_kernels_avx512 = {
    .simd = ENG_SIMD_AVX512,
    .quant_q8 = eng_avx2_quant_q8,
    .matvec = {[ENG_TYPE_F32] = matvec_f32, [ENG_TYPE_F16] = matvec_f16,
               [ENG_TYPE_BF16] = matvec_bf16, [ENG_TYPE_Q8_0] = matvec_q8_0,
               [ENG_TYPE_Q4_0] = matvec_q4_0},
    .dequant = {[ENG_TYPE_F32] = dequant_f32, [ENG_TYPE_F16] = dequant_f16,
                [ENG_TYPE_BF16] = dequant_bf16, [ENG_TYPE_Q8_0] = dequant_q8_0,
                [ENG_TYPE_Q4_0] = dequant_q4_0},
};
