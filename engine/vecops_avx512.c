/*
 * vecops_avx512.c — vecops.h as llama.cpp built for AVX-512 (F, DQ)
 * computes it: GGML_F32_STEP 64 (four 16-lane accumulators),
 * GGML_F32x16_REDUCE, the AVX-512 ggml_v_expf / ggml_v_silu (vec.h), the
 * AVX-512 branches of ggml_vec_soft_max_f32 and ggml_vec_swiglu_f32.
 * Only called after eng_simd_available(ENG_SIMD_AVX512).
 */
#include "engine/vecops.h"

#include <immintrin.h>
#include <math.h>

#define T __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")))

/* _mm512_reduce_add_ps as GCC 12 expands it (avx512fintrin.h,
 * __MM512_REDUCE_OP), written out so that any compiler sums in this tree:
 * halves, quarters, then (q0 + q2) + (q1 + q3). */
T static inline float hsum16(__m512 a)
{
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    const __m256 t3 = _mm256_add_ps(hi, _mm512_castps512_ps256(a));
    const __m128 t6 = _mm_add_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));
    const __m128 t8 = _mm_add_ps(t6, _mm_shuffle_ps(t6, t6, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_cvtss_f32(_mm_add_ss(t8, _mm_shuffle_ps(t8, t8, 1)));
}

/* GGML_F32x16_REDUCE of ggml_vec_dot_f32's four accumulators. */
T static inline float reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
    return hsum16(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
}

T static float dot_avx512(const float *a, const float *b, int64_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const int64_t np = n & ~(int64_t)63;
    for (int64_t j = 0; j < np; j += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j), _mm512_loadu_ps(b + j), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 16), _mm512_loadu_ps(b + j + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 32), _mm512_loadu_ps(b + j + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 48), _mm512_loadu_ps(b + j + 48), s3);
    }
    float s = reduce4(s0, s1, s2, s3);
    /* the leftover as GCC vectorized ggml's `sumf += x[i]*y[i]`: rounded
     * products in blocks of 8 and 4, FMAs for the last n % 4 */
    const int64_t nf = n - (n - np) % 4;
    int64_t j = np;
    for (; j < nf; j++)
        s += eng_f32_barrier(a[j] * b[j]);
    for (; j < n; j++)
        s = fmaf(a[j], b[j], s);
    return s;
}

/* ggml_v_expf, AVX-512 (vec.h), verbatim. */
T static inline __m512 v_expf(__m512 x)
{
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0F)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (_mm512_kortestz(d, d))
        return res;
    const __m512 zero = _mm512_setzero_ps();
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ), _mm512_set1_ps(INFINITY), zero);
    return _mm512_mask_blend_ps(d, res, alt);
}

/* ggml_v_silu, AVX-512: x / (1 + v_expf(-x)). */
T static inline __m512 v_silu(__m512 x)
{
    const __m512 neg_x = _mm512_sub_ps(_mm512_setzero_ps(), x);
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1), v_expf(neg_x)));
}

T static double exp_sum_avx512(float *y, const float *x, int64_t n, float max)
{
    int64_t i = 0;
    double sum = 0;
    for (; i + 15 < n; i += 16) {
        const __m512 val = v_expf(_mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(max)));
        _mm512_storeu_ps(y + i, val);
        sum += (double)hsum16(val);
    }
    for (; i < n; ++i) {
        const float val = expf(x[i] - max);
        sum += (double)val;
        y[i] = val;
    }
    return sum;
}

T static void swiglu_avx512(float *g, const float *u, int64_t n)
{
    int64_t i = 0;
    for (; i + 15 < n; i += 16)
        _mm512_storeu_ps(g + i, _mm512_mul_ps(v_silu(_mm512_loadu_ps(g + i)), _mm512_loadu_ps(u + i)));
    for (; i < n; ++i)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* GGML_F32x16_REDUCE of the 64 cell lanes acc[0..64) of 16 output
 * elements, lane by lane, then hsum16's tree across the lanes, all
 * element-wise. */
T static inline __m512 reduce_cells(const __m512 *acc)
{
    __m512 t[16];
    for (int l = 0; l < 16; l++)
        t[l] = _mm512_add_ps(_mm512_add_ps(acc[l], acc[32 + l]), _mm512_add_ps(acc[16 + l], acc[48 + l]));
    for (int l = 0; l < 8; l++)
        t[l] = _mm512_add_ps(t[l + 8], t[l]);
    for (int l = 0; l < 4; l++)
        t[l] = _mm512_add_ps(t[l + 4], t[l]);
    return _mm512_add_ps(_mm512_add_ps(t[0], t[2]), _mm512_add_ps(t[1], t[3]));
}

static inline __mmask16 first_n(int64_t n) /* lanes 0 .. n-1 of 16 */
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* Thirty-two output elements (two cache lines of each V row) at a time, as
 * two halves of 16: acc[h][c % 64] is the lane cell c lands in
 * (accumulator c / 16 % 4, lane c % 16 of ggml's dot) for half h's 16
 * elements side by side; then reduce_cells. */
T static void wsum_avx512(float *out, int64_t n, const float *w, const float *v, int64_t stride,
                          int64_t cap, int64_t p0, int64_t p1)
{
    for (int64_t i0 = 0; i0 < n; i0 += 32) {
        const __mmask16 m0 = first_n(n - i0), m1 = first_n(n - i0 - 16);
        __m512 acc[2][64];
        for (int k = 0; k < 64; k++)
            acc[0][k] = acc[1][k] = _mm512_setzero_ps();
        for (int64_t p = p0, row = p0 % cap; p < p1; p++, row = row + 1 == cap ? 0 : row + 1) {
            const float *vr = v + row * stride + i0;
            const __m512 wp = _mm512_set1_ps(w[p]);
            acc[0][p & 63] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, vr), wp, acc[0][p & 63]);
            acc[1][p & 63] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, vr + 16), wp, acc[1][p & 63]);
        }
        _mm512_mask_storeu_ps(out + i0, m0, reduce_cells(acc[0]));
        if (m1)
            _mm512_mask_storeu_ps(out + i0 + 16, m1, reduce_cells(acc[1]));
    }
}

const eng_vecops eng_vecops_avx512 = {
    .simd = ENG_SIMD_AVX512,
    .name = "avx512",
    .fma = true,
    .dot = dot_avx512,
    .exp_sum = exp_sum_avx512,
    .swiglu = swiglu_avx512,
    .wsum = wsum_avx512,
};
