/*
 * kernels_avx512.c — AVX-512 F/BW/VL/VNNI kernels (Ice Lake, Cascade Lake,
 * Sapphire Rapids, Zen 4).
 *
 * f32/f16/bf16: the AVX2 structure with 16-float registers, 4 accumulators
 * and masked loads for the tail (no scalar remainder).
 * Q8_0/Q4_0: one 32-element block per 256-bit register (AVX-512VL
 * encoding) with vpdpbusd (VNNI), which replaces AVX2's maddubs + madd
 * pair. Putting two blocks in one 512-bit register was measured slower on
 * Zen 4 (512-bit integer ops are double-pumped there and the 34/18-byte
 * blocks need extra shuffles to fill a zmm), so that variant is gone.
 * The x quantizer is the AVX2 one (bit-identical on every path anyway).
 * Q4_K and Q6_K: 512-bit registers with vpdpbusd on the unsigned codes
 * (two x blocks per instruction, no sign trick); in a micro-benchmark on
 * Zen 4 (1 thread, weights from DRAM) Q4_K 27.3 vs 24.1 GB/s and Q6_K 31.2
 * vs 18.4 GB/s for the AVX2 kernels. Q5_0 and the dequantizers of the new
 * types use the AVX2 functions (no dedicated variant written).
 */
#include "engine/kernels.h"

#include <immintrin.h>
#include <string.h>

#define T __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

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

T static inline __m512 full_f16(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

T static inline __m512 full_bf16(const uint16_t *p)
{
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

#define DOT_HALF(NAME, FULL, LOAD)                                                          \
    T static float NAME(const uint16_t *a, const float *x, int64_t n)                       \
    {                                                                                        \
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                         \
        int64_t j = 0;                                                                       \
        for (; j + 64 <= n; j += 64) {                                                       \
            s0 = _mm512_fmadd_ps(FULL(a + j), _mm512_loadu_ps(x + j), s0);                  \
            s1 = _mm512_fmadd_ps(FULL(a + j + 16), _mm512_loadu_ps(x + j + 16), s1);        \
            s2 = _mm512_fmadd_ps(FULL(a + j + 32), _mm512_loadu_ps(x + j + 32), s2);        \
            s3 = _mm512_fmadd_ps(FULL(a + j + 48), _mm512_loadu_ps(x + j + 48), s3);        \
        }                                                                                    \
        for (; j + 16 <= n; j += 16)                                                         \
            s0 = _mm512_fmadd_ps(FULL(a + j), _mm512_loadu_ps(x + j), s0);                  \
        if (j < n) {                                                                         \
            __mmask16 m = (__mmask16)((1u << (n - j)) - 1);                                  \
            s1 = _mm512_fmadd_ps(LOAD(m, a + j), _mm512_maskz_loadu_ps(m, x + j), s1);      \
        }                                                                                    \
        return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))); \
    }
DOT_HALF(dot_f16, full_f16, load_f16)
DOT_HALF(dot_bf16, full_bf16, load_bf16)

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

T static inline __m256i unpack_q4(const uint8_t *qs)
{
    /* low nibbles are elements 0..15, high nibbles 16..31: the 16 bytes in
     * both halves, the upper half shifted right by 4, mask, minus 8 */
    __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    __m256i v = _mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

T static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 x i32 sums of one block with vpdpbusd: |w| (as u8) times sign(w)*x. */
T static inline __m256 block_dot_vnni(__m256i w, __m256i x)
{
    __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(p);
}

#define MATVEC_VNNI(NAME, BLOCK, LOADW)                                                        \
    T static void NAME(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1) \
    {                                                                                           \
        const int64_t nb = x->n / 32;                                                           \
        for (int64_t r = r0; r < r1; r++) {                                                     \
            const BLOCK *b = (const BLOCK *)((const char *)w + (size_t)r * rb);                 \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                           \
            int64_t i = 0;                                                                      \
            for (; i + 2 <= nb; i += 2) {                                                       \
                __m256 p0 = block_dot_vnni(LOADW(b[i].qs), _mm256_load_si256((const __m256i *)(x->xq + i * 32))); \
                __m256 p1 = block_dot_vnni(LOADW(b[i + 1].qs),                                  \
                                           _mm256_load_si256((const __m256i *)(x->xq + i * 32 + 32))); \
                a0 = _mm256_fmadd_ps(p0, _mm256_set1_ps(_cvtsh_ss(b[i].d) * x->xd[i]), a0);     \
                a1 = _mm256_fmadd_ps(p1, _mm256_set1_ps(_cvtsh_ss(b[i + 1].d) * x->xd[i + 1]), a1); \
            }                                                                                   \
            if (i < nb)                                                                         \
                a0 = _mm256_fmadd_ps(block_dot_vnni(LOADW(b[i].qs),                             \
                                                    _mm256_load_si256((const __m256i *)(x->xq + i * 32))), \
                                     _mm256_set1_ps(_cvtsh_ss(b[i].d) * x->xd[i]), a0);         \
            y[r] = hsum8(_mm256_add_ps(a0, a1));                                                \
        }                                                                                       \
    }

T static inline __m256i load_q8(const int8_t *qs) { return _mm256_loadu_si256((const __m256i *)qs); }
MATVEC_VNNI(matvec_q8_0_vnni, eng_block_q8_0, load_q8)
MATVEC_VNNI(matvec_q4_0_vnni, eng_block_q4_0, unpack_q4)

/* Q4_K with 512-bit registers and VNNI. 64 bytes of qs hold sub-blocks
 * 4k, 4k+2 (low nibbles, bytes 0-31 and 32-63) and 4k+1, 4k+3 (high
 * nibbles); vpdpbusd takes the nibbles as unsigned bytes directly (no sign
 * trick), so one instruction gives the integer sums of two sub-blocks, and
 * one FMA scales them by d*sc_j*dx_j (a permute of the 8 factors). */
T static void matvec_q4_k_512(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nsb = x->n / ENG_QK_K;
    const __m512i lo4 = _mm512_set1_epi8(0x0f);
    const __m512i idx_lo[2] = {_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
                               _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6)};
    const __m512i one = _mm512_set1_epi32(1);
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q4_k *b = (const eng_block_q4_k *)((const char *)w + (size_t)r * rb);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        __m256 am = _mm256_setzero_ps();
        for (int64_t i = 0; i < nsb; i++) {
            uint8_t sm[16];
            eng_q4k_unpack_scales(b[i].scales, sm);
            const __m256 dx = _mm256_loadu_ps(x->xd + i * 8);
            const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)sm)));
            const __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sm + 8))));
            const __m512 f = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b[i].d)), sc), dx));
            const __m256 xs = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(x->xs + i * 8))));
            am = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b[i].dmin)), _mm256_mul_ps(mn, dx)), xs, am);
            const int8_t *xq = x->xq + i * ENG_QK_K;
            for (int k = 0; k < 2; k++) {
                const __m512i q = _mm512_loadu_si512(b[i].qs + 64 * k);
                const __m512i ql = _mm512_and_si512(q, lo4), qh = _mm512_and_si512(_mm512_srli_epi16(q, 4), lo4);
                const int8_t *xk = xq + 128 * k;
                __m512i xl = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256((const __m256i *)xk)),
                                                _mm256_load_si256((const __m256i *)(xk + 64)), 1);
                __m512i xh = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256((const __m256i *)(xk + 32))),
                                                _mm256_load_si256((const __m256i *)(xk + 96)), 1);
                __m512 pl = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ql, xl));
                __m512 ph = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qh, xh));
                a0 = _mm512_fmadd_ps(pl, _mm512_permutexvar_ps(idx_lo[k], f), a0);
                a1 = _mm512_fmadd_ps(ph, _mm512_permutexvar_ps(_mm512_add_epi32(idx_lo[k], one), f), a1);
            }
        }
        __m512 a = _mm512_add_ps(a0, a1);
        __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a),
                                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
        y[r] = hsum8(_mm256_sub_ps(s8, am));
    }
}

/* Q6_K with 512-bit registers: the 64 bytes ql[64h..] hold quarters 0 and
 * 1 of half h in their low nibbles and quarters 2 and 3 in their high
 * nibbles, so one zmm makes two x blocks' worth of 6-bit values (the qh
 * bits shifted per 256-bit half with vpsrlvw). vpdpbusd takes them
 * unsigned (0..63) against x, a second vpdpbusd with 32 subtracts the
 * offset exactly; each int32 lane covers 4 elements of one group of 16, so
 * one FMA with the lane's d*sc_g*dx factor (a permute of the 16 factors of
 * the super-block) finishes two x blocks. */
T static void matvec_q6_k_512(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nsb = x->n / ENG_QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3), c32 = _mm512_set1_epi8(32);
    /* per-16-bit-lane shifts of qh: bits 0-1 | 2-3 and bits 4-5 | 6-7 */
    const __m512i sh_lo = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    const __m512i sh_hi = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q6_k *b = (const eng_block_q6_k *)((const char *)w + (size_t)r * rb);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        for (int64_t i = 0; i < nsb; i++) {
            /* G[g] = d * sc_g * dx_(g/2) for the 16 groups of 16 */
            const __m512 dx = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(x->xd + i * 8)));
            const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b[i].scales)));
            const __m512 G = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b[i].d)), sc), dx);
            const int8_t *xq = x->xq + i * ENG_QK_K;
            for (int h = 0; h < 2; h++) {
                const __m512i ql = _mm512_loadu_si512(b[i].ql + 64 * h);
                const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * h)));
                const __m512i h01 = _mm512_and_si512(_mm512_srlv_epi16(qh, sh_lo), m2);
                const __m512i h23 = _mm512_and_si512(_mm512_srlv_epi16(qh, sh_hi), m2);
                const __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(h01, 4));
                const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                                    _mm512_slli_epi16(h23, 4));
                const __m512i x01 = _mm512_loadu_si512(xq + 128 * h), x23 = _mm512_loadu_si512(xq + 128 * h + 64);
                const __m512i p01 = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q01, x01),
                                                     _mm512_dpbusd_epi32(_mm512_setzero_si512(), c32, x01));
                const __m512i p23 = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q23, x23),
                                                     _mm512_dpbusd_epi32(_mm512_setzero_si512(), c32, x23));
                /* lane l of p01 is group 8h + l/4, of p23 group 8h + 4 + l/4 */
                const __m512i g01 = _mm512_add_epi32(_mm512_srli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2),
                                                     _mm512_set1_epi32(8 * h));
                a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p01), _mm512_permutexvar_ps(g01, G), a0);
                a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p23),
                                     _mm512_permutexvar_ps(_mm512_add_epi32(g01, _mm512_set1_epi32(4)), G), a1);
            }
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
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
               [ENG_TYPE_BF16] = matvec_bf16, [ENG_TYPE_Q8_0] = matvec_q8_0_vnni,
               [ENG_TYPE_Q4_0] = matvec_q4_0_vnni, [ENG_TYPE_Q5_0] = eng_avx2_matvec_q5_0,
               [ENG_TYPE_Q4_K] = matvec_q4_k_512, [ENG_TYPE_Q6_K] = matvec_q6_k_512},
    .dequant = {[ENG_TYPE_F32] = dequant_f32, [ENG_TYPE_F16] = dequant_f16,
                [ENG_TYPE_BF16] = dequant_bf16, [ENG_TYPE_Q8_0] = dequant_q8_0,
                [ENG_TYPE_Q4_0] = dequant_q4_0, [ENG_TYPE_Q5_0] = eng_avx2_dequant_q5_0,
                [ENG_TYPE_Q4_K] = eng_avx2_dequant_q4_k, [ENG_TYPE_Q6_K] = eng_avx2_dequant_q6_k},
};

