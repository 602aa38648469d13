/*
 * kernels_avx2.c — AVX2 + FMA + F16C kernels (Haswell and later, Zen).
 *
 * Decode is memory-bound: each W byte is read once, so the loops keep
 * several independent accumulators (4 x 8 floats for f32/f16/bf16, two
 * blocks in flight for Q8_0/Q4_0) to keep enough loads outstanding, and the
 * x vector stays in L1/L2. The quantized dots use the sign trick of ggml's
 * AVX2 path: |w| (unsigned) times sign(w)*x (signed) with maddubs, which is
 * exact here because |w| <= 128 and |x| <= 127 keep each pair sum within
 * int16. Q8_0 quantization of x computes exactly what the scalar path does
 * (x*id, then roundf as trunc + (|frac| >= 0.5)), so xq/xd are identical.
 */
#include "engine/kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define T __attribute__((target("avx2,fma,f16c")))

T static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

T void eng_avx2_quant_q8(const float *x, float *xd, int8_t *xq, int64_t n)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_ps(m, _mm256_and_ps(v[k], absmask));
        }
        float amax = 0.0f, tmp[8];
        _mm256_storeu_ps(tmp, m);
        for (int k = 0; k < 8; k++)
            amax = fmaxf(amax, tmp[k]);
        float id;
        xd[b] = eng_q8_block_scale(amax, &id);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 p = _mm256_mul_ps(v[k], vid);
            __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m256 frac = _mm256_and_ps(_mm256_sub_ps(p, t), absmask);
            __m256 up = _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ),
                                      _mm256_or_ps(one, _mm256_andnot_ps(absmask, p)));
            q[k] = _mm256_cvttps_epi32(_mm256_add_ps(t, up));
        }
        /* 32 x i32 -> 32 x i8; packs work per 128-bit lane, the permute
         * puts the elements back in order. */
        __m256i s01 = _mm256_packs_epi32(q[0], q[1]), s23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i s = _mm256_packs_epi16(s01, s23);
        s = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(xq + b * 32), s);
    }
}

T static float dot_f32(const float *a, const float *x, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(x + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(x + j + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 16), _mm256_loadu_ps(x + j + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 24), _mm256_loadu_ps(x + j + 24), s3);
    }
    for (; j + 8 <= n; j += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(x + j), s0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; j < n; j++)
        s += a[j] * x[j];
    return s;
}

T static inline __m256 load_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

T static inline __m256 load_bf16(const uint16_t *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

#define DOT_HALF(NAME, LOAD, CVT)                                                          \
    T static float NAME(const uint16_t *a, const float *x, int64_t n)                      \
    {                                                                                       \
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                        \
        int64_t j = 0;                                                                      \
        for (; j + 32 <= n; j += 32) {                                                      \
            s0 = _mm256_fmadd_ps(LOAD(a + j), _mm256_loadu_ps(x + j), s0);                 \
            s1 = _mm256_fmadd_ps(LOAD(a + j + 8), _mm256_loadu_ps(x + j + 8), s1);         \
            s2 = _mm256_fmadd_ps(LOAD(a + j + 16), _mm256_loadu_ps(x + j + 16), s2);       \
            s3 = _mm256_fmadd_ps(LOAD(a + j + 24), _mm256_loadu_ps(x + j + 24), s3);       \
        }                                                                                   \
        for (; j + 8 <= n; j += 8)                                                          \
            s0 = _mm256_fmadd_ps(LOAD(a + j), _mm256_loadu_ps(x + j), s0);                 \
        float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));      \
        for (; j < n; j++)                                                                  \
            s += CVT(a[j]) * x[j];                                                          \
        return s;                                                                           \
    }
DOT_HALF(dot_f16, load_f16, eng_fp16_to_fp32)
DOT_HALF(dot_bf16, load_bf16, eng_bf16_to_fp32)

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

/* 8 x i32 partial sums of w[32] . x[32] (w, x signed bytes, |x| <= 127). */
T static inline __m256 block_dot(__m256i w, __m256i x)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
}

T static inline __m256i unpack_q4(const uint8_t *qs)
{
    /* low nibbles are elements 0..15, high nibbles 16..31: the 16 bytes in
     * both halves, the upper half shifted right by 4, mask, minus 8 */
    __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    __m256i v = _mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

T static void matvec_q8_0(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / 32;
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q8_0 *b = (const eng_block_q8_0 *)((const char *)w + (size_t)r * rb);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i + 2 <= nb; i += 2) {
            __m256 p0 = block_dot(_mm256_loadu_si256((const __m256i *)b[i].qs),
                                  _mm256_load_si256((const __m256i *)(x->xq + i * 32)));
            __m256 p1 = block_dot(_mm256_loadu_si256((const __m256i *)b[i + 1].qs),
                                  _mm256_load_si256((const __m256i *)(x->xq + i * 32 + 32)));
            a0 = _mm256_fmadd_ps(p0, _mm256_set1_ps(_cvtsh_ss(b[i].d) * x->xd[i]), a0);
            a1 = _mm256_fmadd_ps(p1, _mm256_set1_ps(_cvtsh_ss(b[i + 1].d) * x->xd[i + 1]), a1);
        }
        for (; i < nb; i++) {
            __m256 p0 = block_dot(_mm256_loadu_si256((const __m256i *)b[i].qs),
                                  _mm256_load_si256((const __m256i *)(x->xq + i * 32)));
            a0 = _mm256_fmadd_ps(p0, _mm256_set1_ps(_cvtsh_ss(b[i].d) * x->xd[i]), a0);
        }
        y[r] = hsum8(_mm256_add_ps(a0, a1));
    }
}

T static void matvec_q4_0(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / 32;
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q4_0 *b = (const eng_block_q4_0 *)((const char *)w + (size_t)r * rb);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i + 2 <= nb; i += 2) {
            __m256 p0 = block_dot(unpack_q4(b[i].qs), _mm256_load_si256((const __m256i *)(x->xq + i * 32)));
            __m256 p1 = block_dot(unpack_q4(b[i + 1].qs),
                                  _mm256_load_si256((const __m256i *)(x->xq + i * 32 + 32)));
            a0 = _mm256_fmadd_ps(p0, _mm256_set1_ps(_cvtsh_ss(b[i].d) * x->xd[i]), a0);
            a1 = _mm256_fmadd_ps(p1, _mm256_set1_ps(_cvtsh_ss(b[i + 1].d) * x->xd[i + 1]), a1);
        }
        for (; i < nb; i++) {
            __m256 p0 = block_dot(unpack_q4(b[i].qs), _mm256_load_si256((const __m256i *)(x->xq + i * 32)));
            a0 = _mm256_fmadd_ps(p0, _mm256_set1_ps(_cvtsh_ss(b[i].d) * x->xd[i]), a0);
        }
        y[r] = hsum8(_mm256_add_ps(a0, a1));
    }
}

static void dequant_f32(const void *row, float *dst, int64_t n) { memcpy(dst, row, (size_t)n * 4); }

T static void dequant_f16(const void *row, float *dst, int64_t n)
{
    const uint16_t *h = row;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dst + j, load_f16(h + j));
    for (; j < n; j++)
        dst[j] = eng_fp16_to_fp32(h[j]);
}

T static void dequant_bf16(const void *row, float *dst, int64_t n)
{
    const uint16_t *h = row;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dst + j, load_bf16(h + j));
    for (; j < n; j++)
        dst[j] = eng_bf16_to_fp32(h[j]);
}

/* 32 signed bytes times d into dst[32]. */
T static inline void store_scaled(__m256i q, float d, float *dst)
{
    const __m256 vd = _mm256_set1_ps(d);
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), vd));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), vd));
    _mm256_storeu_ps(dst + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), vd));
    _mm256_storeu_ps(dst + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), vd));
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

/* ---- Q5_0, Q4_K, Q6_K ---------------------------------------------------- */

/* 32 bits -> 32 bytes, 0xff where the bit is set (ggml bytes_from_bits_32). */
T static inline __m256i bits_to_bytes(const uint8_t *p)
{
    uint32_t x32;
    memcpy(&x32, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x32), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* The 32 values of a Q5_0 block, -16..15. */
T static inline __m256i unpack_q5(const eng_block_q5_0 *b)
{
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b->qs));
    v = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                         _mm256_set1_epi8(0x0f));
    v = _mm256_or_si256(v, _mm256_and_si256(bits_to_bytes(b->qh), _mm256_set1_epi8(0x10)));
    return _mm256_sub_epi8(v, _mm256_set1_epi8(16));
}

T void eng_avx2_matvec_q5_0(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / 32;
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q5_0 *b = (const eng_block_q5_0 *)((const char *)w + (size_t)r * rb);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i + 2 <= nb; i += 2) {
            __m256 p0 = block_dot(unpack_q5(&b[i]), _mm256_load_si256((const __m256i *)(x->xq + i * 32)));
            __m256 p1 = block_dot(unpack_q5(&b[i + 1]),
                                  _mm256_load_si256((const __m256i *)(x->xq + i * 32 + 32)));
            a0 = _mm256_fmadd_ps(p0, _mm256_set1_ps(_cvtsh_ss(b[i].d) * x->xd[i]), a0);
            a1 = _mm256_fmadd_ps(p1, _mm256_set1_ps(_cvtsh_ss(b[i + 1].d) * x->xd[i + 1]), a1);
        }
        for (; i < nb; i++) {
            __m256 p0 = block_dot(unpack_q5(&b[i]), _mm256_load_si256((const __m256i *)(x->xq + i * 32)));
            a0 = _mm256_fmadd_ps(p0, _mm256_set1_ps(_cvtsh_ss(b[i].d) * x->xd[i]), a0);
        }
        y[r] = hsum8(_mm256_add_ps(a0, a1));
    }
}

T static inline __m256 u8x8_ps(const uint8_t *p)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* 8 x i32 partial sums of u[32] . x[32] (u in 0..63 unsigned, x signed). */
T static inline __m256 udot(__m256i u, __m256i x)
{
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1)));
}

/* Per super-block: f[j] = d*sc_j*dx_j for the 8 sub-blocks (one vector,
 * spilled to broadcast from memory) and the min term dmin * sum_j
 * m_j*dx_j*xs_j as one 8-lane FMA. */
T void eng_avx2_matvec_q4_k(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nsb = x->n / ENG_QK_K;
    const __m256i lo4 = _mm256_set1_epi8(0x0f);
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q4_k *b = (const eng_block_q4_k *)((const char *)w + (size_t)r * rb);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, am = a0;
        for (int64_t i = 0; i < nsb; i++) {
            uint8_t sm[16];
            eng_q4k_unpack_scales(b[i].scales, sm);
            const __m256 dx = _mm256_loadu_ps(x->xd + i * 8);
            float f[8];
            _mm256_storeu_ps(f, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b[i].d)), u8x8_ps(sm)), dx));
            const __m256 xs = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(x->xs + i * 8))));
            am = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b[i].dmin)), _mm256_mul_ps(u8x8_ps(sm + 8), dx)),
                                 xs, am);
            const int8_t *xq = x->xq + i * ENG_QK_K;
            for (int c = 0; c < 4; c++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * c));
                __m256i lo = _mm256_and_si256(q, lo4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4);
                a0 = _mm256_fmadd_ps(udot(lo, _mm256_load_si256((const __m256i *)(xq + 64 * c))),
                                     _mm256_set1_ps(f[2 * c]), a0);
                a1 = _mm256_fmadd_ps(udot(hi, _mm256_load_si256((const __m256i *)(xq + 64 * c + 32))),
                                     _mm256_set1_ps(f[2 * c + 1]), a1);
            }
        }
        y[r] = hsum8(_mm256_sub_ps(_mm256_add_ps(a0, a1), am));
    }
}

/* Quarter c (0..3) of half h of a Q6_K block: 32 values q - 32, -32..31
 * (ql0/ql1 = ql + 64h and + 32, qh = qh + 32h, all 32 bytes). */
T static inline __m256i q6_quarter(__m256i ql0, __m256i ql1, __m256i qh, int c)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    __m256i l = c & 1 ? ql1 : ql0;
    l = c >> 1 ? _mm256_and_si256(_mm256_srli_epi16(l, 4), m4) : _mm256_and_si256(l, m4);
    __m256i h = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), m2);
    return _mm256_sub_epi8(_mm256_or_si256(l, _mm256_slli_epi16(h, 4)), _mm256_set1_epi8(32));
}

/* One 32-block of Q6_K: 8 x i32 sums, each lane within one 16-group,
 * already multiplied by that group's int8 scale (exact: |.| < 2^22).
 * sc16 holds the two scales as int16, 8 lanes each. */
T static inline __m256 q6_block_dot(__m256i q, __m256i x, __m256i sc16)
{
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, sc16));
}

/* Scales 2k and 2k+1 of the 16 (bytes) as int16 x 8 each (ggml's
 * get_scale_shuffle pattern). */
T static inline __m256i q6_scales(__m128i s, int k)
{
    const __m128i sh = _mm_add_epi8(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                    _mm_set1_epi8((char)(2 * k)));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s, sh));
}

T void eng_avx2_matvec_q6_k(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nsb = x->n / ENG_QK_K;
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q6_k *b = (const eng_block_q6_k *)((const char *)w + (size_t)r * rb);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t i = 0; i < nsb; i++) {
            float f[8];   /* d * dx for the 8 blocks of 32 */
            _mm256_storeu_ps(f, _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b[i].d)), _mm256_loadu_ps(x->xd + i * 8)));
            const __m128i sc = _mm_loadu_si128((const __m128i *)b[i].scales);
            for (int h = 0; h < 2; h++) {
                const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b[i].ql + 64 * h));
                const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b[i].ql + 64 * h + 32));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * h));
                for (int c = 0; c < 4; c += 2) {
                    const int k = 4 * h + c;   /* 32-block within the super-block */
                    const int8_t *xq = x->xq + i * ENG_QK_K + 32 * k;
                    __m256 p0 = q6_block_dot(q6_quarter(ql0, ql1, qh, c),
                                             _mm256_load_si256((const __m256i *)xq), q6_scales(sc, k));
                    __m256 p1 = q6_block_dot(q6_quarter(ql0, ql1, qh, c + 1),
                                             _mm256_load_si256((const __m256i *)(xq + 32)), q6_scales(sc, k + 1));
                    a0 = _mm256_fmadd_ps(p0, _mm256_set1_ps(f[k]), a0);
                    a1 = _mm256_fmadd_ps(p1, _mm256_set1_ps(f[k + 1]), a1);
                }
            }
        }
        y[r] = hsum8(_mm256_add_ps(a0, a1));
    }
}

T void eng_avx2_dequant_q5_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q5_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_scaled(unpack_q5(&b[i]), _cvtsh_ss(b[i].d), dst + i * 32);
}

/* 32 unsigned nibbles (bytes) as f*q - m into dst[32]: f*q is exact, so
 * the FMA rounds once, as the scalar d1*q - m1 does. */
T static inline void store_fms(__m256i q, float f, float m, float *dst)
{
    const __m256 vf = _mm256_set1_ps(f), vm = _mm256_set1_ps(m);
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; k++)
        _mm256_storeu_ps(dst + 8 * k,
                         _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(part[k])), vf, vm));
}

T void eng_avx2_dequant_q4_k(const void *row, float *dst, int64_t n)
{
    const eng_block_q4_k *b = row;
    const __m256i lo4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        uint8_t sm[16];
        eng_q4k_unpack_scales(b[i].scales, sm);
        const float d = _cvtsh_ss(b[i].d), dmin = _cvtsh_ss(b[i].dmin);
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * c));
            store_fms(_mm256_and_si256(q, lo4), d * sm[2 * c], dmin * sm[8 + 2 * c], dst + 64 * c);
            store_fms(_mm256_and_si256(_mm256_srli_epi16(q, 4), lo4), d * sm[2 * c + 1],
                      dmin * sm[9 + 2 * c], dst + 64 * c + 32);
        }
    }
}

/* 32 signed bytes, the first 16 times f0 and the last 16 times f1. */
T static inline void store_scaled2(__m256i q, float f0, float f1, float *dst)
{
    const __m256 v0 = _mm256_set1_ps(f0), v1 = _mm256_set1_ps(f1);
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), v0));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), v0));
    _mm256_storeu_ps(dst + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), v1));
    _mm256_storeu_ps(dst + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), v1));
}

T void eng_avx2_dequant_q6_k(const void *row, float *dst, int64_t n)
{
    const eng_block_q6_k *b = row;
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        const float d = _cvtsh_ss(b[i].d);
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b[i].ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b[i].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * h));
            for (int c = 0; c < 4; c++) {
                const int k = 4 * h + c;
                store_scaled2(q6_quarter(ql0, ql1, qh, c), d * b[i].scales[2 * k],
                              d * b[i].scales[2 * k + 1], dst + 32 * k);
            }
        }
    }
}

const struct eng_kernels eng_kernels_avx2 = {
    .simd = ENG_SIMD_AVX2,
    .quant_q8 = eng_avx2_quant_q8,
    .matvec = {[ENG_TYPE_F32] = matvec_f32, [ENG_TYPE_F16] = matvec_f16,
               [ENG_TYPE_BF16] = matvec_bf16, [ENG_TYPE_Q8_0] = matvec_q8_0,
               [ENG_TYPE_Q4_0] = matvec_q4_0, [ENG_TYPE_Q5_0] = eng_avx2_matvec_q5_0,
               [ENG_TYPE_Q4_K] = eng_avx2_matvec_q4_k, [ENG_TYPE_Q6_K] = eng_avx2_matvec_q6_k},
    .dequant = {[ENG_TYPE_F32] = dequant_f32, [ENG_TYPE_F16] = dequant_f16,
                [ENG_TYPE_BF16] = dequant_bf16, [ENG_TYPE_Q8_0] = dequant_q8_0,
                [ENG_TYPE_Q4_0] = dequant_q4_0, [ENG_TYPE_Q5_0] = eng_avx2_dequant_q5_0,
                [ENG_TYPE_Q4_K] = eng_avx2_dequant_q4_k, [ENG_TYPE_Q6_K] = eng_avx2_dequant_q6_k},
};
