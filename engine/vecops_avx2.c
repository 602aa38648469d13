/*
 * vecops_avx2.c — vecops.h as llama.cpp built for AVX2 + FMA computes it:
 * GGML_F32_STEP 32 (four 8-lane accumulators), GGML_F32x8_REDUCE, the AVX2
 * ggml_v_expf / ggml_v_silu (vec.h), the AVX2 branches of
 * ggml_vec_soft_max_f32 and ggml_vec_swiglu_f32. Only called after
 * eng_simd_available(ENG_SIMD_AVX2).
 */
#include "engine/vecops.h"

#include <immintrin.h>
#include <math.h>

#define T __attribute__((target("avx2,fma,f16c")))

/* GGML_F32x8_REDUCE: (a0+a2)+(a1+a3), lo+hi, then two hadds. */
T static inline float reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    const __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

T static float dot_avx2(const float *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const int64_t np = n & ~(int64_t)31;
    for (int64_t j = 0; j < np; j += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 16), _mm256_loadu_ps(b + j + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 24), _mm256_loadu_ps(b + j + 24), s3);
    }
    float s = reduce4(s0, s1, s2, s3);
    /* the leftover as GCC vectorized ggml's `sumf += x[i]*y[i]` */
    const int64_t nf = n - (n - np) % 4;
    int64_t j = np;
    for (; j < nf; j++)
        s += eng_f32_barrier(a[j] * b[j]);
    for (; j < n; j++)
        s = fmaf(a[j], b[j], s);
    return s;
}

/* ggml_v_expf, AVX2 (vec.h), verbatim. */
T static inline __m256 v_expf(__m256 x)
{
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))));
    const __m256i c = _mm256_castps_si256(
        _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), n), _mm256_set1_ps(126), _CMP_GT_OQ));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    if (!_mm256_movemask_ps(_mm256_castsi256_ps(c)))
        return _mm256_fmadd_ps(j, k, k);
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256i d = _mm256_castps_si256(
        _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), n), _mm256_set1_ps(192), _CMP_GT_OQ));
    return _mm256_or_ps(
        _mm256_and_ps(_mm256_castsi256_ps(d), _mm256_mul_ps(s1, s1)),
        _mm256_andnot_ps(_mm256_castsi256_ps(d),
                         _mm256_or_ps(_mm256_and_ps(_mm256_castsi256_ps(c), _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                                      _mm256_andnot_ps(_mm256_castsi256_ps(c), _mm256_fmadd_ps(k, j, k)))));
}

/* ggml_v_silu, AVX2: x / (1 + v_expf(-x)). */
T static inline __m256 v_silu(__m256 x)
{
    const __m256 neg_x = _mm256_sub_ps(_mm256_setzero_ps(), x);
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1), v_expf(neg_x)));
}

T static double exp_sum_avx2(float *y, const float *x, int64_t n, float max)
{
    int64_t i = 0;
    double sum = 0;
    for (; i + 7 < n; i += 8) {
        const __m256 val = v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(max)));
        _mm256_storeu_ps(y + i, val);
        __m128 val2 = _mm_add_ps(_mm256_extractf128_ps(val, 1), _mm256_castps256_ps128(val));
        val2 = _mm_add_ps(val2, _mm_movehl_ps(val2, val2));
        val2 = _mm_add_ss(val2, _mm_movehdup_ps(val2));
        sum += (double)_mm_cvtss_f32(val2);
    }
    for (; i < n; ++i) {
        const float val = expf(x[i] - max);
        sum += (double)val;
        y[i] = val;
    }
    return sum;
}

T static void swiglu_avx2(float *g, const float *u, int64_t n)
{
    int64_t i = 0;
    for (; i + 7 < n; i += 8)
        _mm256_storeu_ps(g + i, _mm256_mul_ps(v_silu(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
    for (; i < n; ++i)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* GGML_F32x8_REDUCE of the 32 cell lanes acc[0..32) of 8 output elements,
 * element-wise: (a0+a2)+(a1+a3) lane by lane, lo + hi, then two hadds. */
T static inline __m256 reduce_cells(const __m256 *acc)
{
    __m256 t[8];
    for (int l = 0; l < 8; l++)
        t[l] = _mm256_add_ps(_mm256_add_ps(acc[l], acc[16 + l]), _mm256_add_ps(acc[8 + l], acc[24 + l]));
    for (int l = 0; l < 4; l++)
        t[l] = _mm256_add_ps(t[l], t[l + 4]);
    return _mm256_add_ps(_mm256_add_ps(t[0], t[1]), _mm256_add_ps(t[2], t[3]));
}

/* Sixteen output elements (a cache line of each V row) at a time, as two
 * halves of 8: acc[h][c % 32] is the lane cell c lands in (accumulator
 * c / 8 % 4, lane c % 8) for half h's 8 elements side by side; then
 * reduce_cells. */
T static void wsum_avx2(float *out, int64_t n, const float *w, const float *v, int64_t stride,
                        int64_t cap, int64_t p0, int64_t p1)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t i0 = 0; i0 < n; i0 += 16) {
        const int64_t nb = n - i0 < 16 ? n - i0 : 16;
        const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nb), iota);
        const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nb - 8), iota);
        __m256 acc[2][32];
        for (int k = 0; k < 32; k++)
            acc[0][k] = acc[1][k] = _mm256_setzero_ps();
        for (int64_t p = p0, row = p0 % cap; p < p1; p++, row = row + 1 == cap ? 0 : row + 1) {
            const float *vr = v + row * stride + i0;
            const __m256 wp = _mm256_set1_ps(w[p]);
            acc[0][p & 31] = _mm256_fmadd_ps(_mm256_maskload_ps(vr, m0), wp, acc[0][p & 31]);
            acc[1][p & 31] = _mm256_fmadd_ps(_mm256_maskload_ps(vr + 8, m1), wp, acc[1][p & 31]);
        }
        _mm256_maskstore_ps(out + i0, m0, reduce_cells(acc[0]));
        if (nb > 8)
            _mm256_maskstore_ps(out + i0 + 8, m1, reduce_cells(acc[1]));
    }
}

const eng_vecops eng_vecops_avx2 = {
    .simd = ENG_SIMD_AVX2,
    .name = "avx2",
    .fma = true,
    .dot = dot_avx2,
    .exp_sum = exp_sum_avx2,
    .swiglu = swiglu_avx2,
    .wsum = wsum_avx2,
};
