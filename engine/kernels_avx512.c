/*
 * kernels_avx512.c — AVX-512 F/BW/VL/VNNI kernels (Ice Lake, Cascade Lake,
 * Sapphire Rapids, Zen 4): what llama.cpp built with -march=native on such
 * a CPU computes.
 *
 * - Block formats: ggml's x86 dot kernels (kernels_x86.h) with vpdpbusd
 *   for the 4-byte dot products where ggml uses it (its
 *   mul_sum_us8_pairs_float under AVX512VNNI+VL); the K-quant kernels are
 *   ggml's AVX2 code, which its AVX-512 build runs unchanged, except Q2_K,
 *   Q3_K, Q4_K and Q6_K: 512-bit kernels below that form ggml's integer
 *   lanes another way (exact) and then do its float operations, so the
 *   bits are the same (test_ggml_parity.c, test_kernels.c check them).
 * - F32: ggml_vec_dot_f32 of an AVX-512 build (GGML_F32_STEP 64: four
 *   16-lane FMA accumulators, (a0+a2)+(a1+a3), _mm512_reduce_add_ps; the
 *   n % 64 leftover as rounded products added in order, the last n % 4 of
 *   them with FMAs: GCC's vectorization of ggml's scalar loop).
 * - F16: without AVX512-FP16 the same shape on widened f16 values, summed
 *   on in double for the leftover; with AVX512-FP16, ggml accumulates in
 *   f16: four 32-lane vfmadd231ph accumulators over steps of 128, reduced
 *   with vaddph and _mm512_reduce_add_ph, the leftover in double. That is a
 *   different, much coarser result (f16 has 11 significant bits), so the
 *   tables differ: eng_kernels_get picks the one matching the CPU.
 * - BF16: with AVX512-BF16 vdpbf16ps over steps of 64 (two accumulators,
 *   each reduced to double), without it ggml's AVX512F branch (two 16-lane
 *   accumulators of exact products over steps of 32).
 * - x forms and dequantizers: the AVX2 ones (bit-identical on every path),
 *   except 512-bit dequantizers for f16, bf16, q8_0 and q4_0 (prefill).
 */
#include "engine/kernels.h"
#include "engine/vecops.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define T __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")))
#define TFP16 __attribute__((target("avx512fp16,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define TBF16 __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define SFX(name) name##_avx512
#define VNNI 1
#define ENG_KERNELS_X86_TEMPLATE
#include "engine/kernels_x86.h"

/* ---- Q6_K with 512-bit registers ---------------------------------------
 * ggml's integer lanes (kernels_x86.h) two chunks at a time: the 64 bytes
 * ql[64h..] hold chunks 4h, 4h+1 in their low nibbles and 4h+2, 4h+3 in
 * their high nibbles, and x's chunks are contiguous the same way, so one
 * zmm holds two chunks. Per chunk, vpmaddubsw (codes 0..63 unsigned, x
 * signed; |pair| <= 16002) and vpmaddwd with the chunk's int16 scales
 * (ggml's get_scale_shuffle, here a vpermw of the 16 scales) give exactly
 * ggml's int32 lanes, which are summed (exact integers, any order) and
 * folded to 8 lanes; then ggml's offset correction, conversion and FMA. */
T static void matvec_q6_k_512(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / ENG_QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(3);
    /* qh bits 2t..2t+1 for chunk quarter t: 0 | 2 (chunks 4h, 4h+1), 4 | 6 */
    const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    const __m512i sh23 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    /* int16 lane l of the chunk pair of half c / 2, low (c even: chunks
     * 4h, 4h+1) or high nibbles (chunks 4h+2, 4h+3): chunk k's lanes
     * 0-7 use scale 2k, lanes 8-15 scale 2k + 1 */
    __m512i sidx[4];
    for (int c = 0; c < 4; c++) {
        int16_t ix[32];
        for (int l = 0; l < 32; l++)
            ix[l] = (int16_t)(8 * (c / 2) + 4 * (c % 2) + (l / 16) * 2 + (l % 16) / 8);
        sidx[c] = _mm512_loadu_si512(ix);
    }
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q6_k *bx = (const eng_block_q6_k *)((const char *)w + (size_t)r * rb);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < nb; ++i) {
            prefetch_ahead(&bx[i], rb, sizeof bx[i]);
            const float d = x->q8k_d[i] * h2f(bx[i].d);
            const int8_t *q8 = x->q8k_qs + i * ENG_QK_K;
            const __m256i scales_16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)bx[i].scales));
            const __m256i q8sums = _mm256_loadu_si256((const __m256i *)(x->q8k_bsums + 16 * i));
            const __m256i q8sclsub = _mm256_slli_epi32(_mm256_madd_epi16(q8sums, scales_16), 5);
            const __m512i sc = _mm512_castsi256_si512(scales_16);
            __m512i sumi = _mm512_setzero_si512();
            for (int h = 0; h < 2; h++) {
                const __m512i ql = _mm512_loadu_si512(bx[i].ql + 64 * h);
                const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(bx[i].qh + 32 * h)));
                const __m512i h01 = _mm512_and_si512(_mm512_srlv_epi16(qh, sh01), m3);
                const __m512i h23 = _mm512_and_si512(_mm512_srlv_epi16(qh, sh23), m3);
                const __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(h01, 4));
                const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                                    _mm512_slli_epi16(h23, 4));
                const __m512i x01 = _mm512_loadu_si512(q8 + 128 * h), x23 = _mm512_loadu_si512(q8 + 128 * h + 64);
                const __m512i s01 = _mm512_permutexvar_epi16(sidx[2 * h], sc);
                const __m512i s23 = _mm512_permutexvar_epi16(sidx[2 * h + 1], sc);
                sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(s01, _mm512_maddubs_epi16(q01, x01)));
                sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(s23, _mm512_maddubs_epi16(q23, x23)));
            }
            __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
            s8 = _mm256_sub_epi32(s8, q8sclsub);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s8), acc);
        }
        y[r] = hsum_float_8(acc);
    }
}

/* Q4_K with 512-bit registers: the 32 bytes qs[32j..] broadcast to both
 * halves, the high half shifted by 4, give sub-blocks 2j (low half) and
 * 2j + 1 (high half), whose x is contiguous; vpmaddubsw + vpmaddwd with
 * the two scales give ggml's int32 lanes (summed exactly, folded to 8);
 * the min term and the FMAs are ggml's. */
T static void matvec_q4_k_512(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / ENG_QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i sh = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(4), 1);
    __m512i sidx[4];   /* int16 lanes 0-15: scale 2j, 16-31: scale 2j + 1 */
    for (int j = 0; j < 4; j++)
        sidx[j] = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * j)), _mm256_set1_epi16((short)(2 * j + 1)), 1);
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q4_k *bx = (const eng_block_q4_k *)((const char *)w + (size_t)r * rb);
        __m256 acc = _mm256_setzero_ps();
        __m128 acc_m = _mm_setzero_ps();
        for (int64_t i = 0; i < nb; ++i) {
            prefetch_ahead(&bx[i], rb, sizeof bx[i]);
            const float d = x->q8k_d[i] * h2f(bx[i].d);
            const float dmin = -x->q8k_d[i] * h2f(bx[i].dmin);
            const __m256i mins_and_scales = k4_mins_and_scales(bx[i].scales);
            const __m128i prod = k4_min_prod(mins_and_scales, x->q8k_bsums + 16 * i);
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
            const __m512i sc = _mm512_castsi256_si512(mins_and_scales);
            const int8_t *q8 = x->q8k_qs + i * ENG_QK_K;
            __m512i sumi = _mm512_setzero_si512();
            for (int j = 0; j < 4; ++j) {
                const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(bx[i].qs + 32 * j)));
                const __m512i q4 = _mm512_and_si512(_mm512_srlv_epi16(q, sh), m4);
                const __m512i p16 = _mm512_maddubs_epi16(q4, _mm512_loadu_si512(q8 + 64 * j));
                sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_permutexvar_epi16(sidx[j], sc), p16));
            }
            const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s8), acc);
        }
        acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
        acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
        y[r] = hsum_float_8(acc) + _mm_cvtss_f32(acc_m);
    }
}

/* ---- Q3_K and Q2_K with 512-bit registers ------------------------------
 * ggml's integer lanes (kernels_x86.h: lane k of a 32-element chunk sums
 * elements 4k..4k+3, times the 16-group scale) with the chunks paired
 * differently: zmm t holds chunk t of the first 128 elements (low half)
 * and chunk t of the second 128 (high half), so the 64 bytes qs[0..63]
 * shifted by 2t give both halves' 2-bit codes at once, x is [x(32t..),
 * x(128+32t..)], and the 16 int16 scales are spread over the pairs with
 * a vpermw. Folding the halves gives ggml's 8 lanes (exact integers in
 * another order), then ggml's FMAs per super-block and hsum_float_8.
 * 4 rows at a time share x and its derived vectors. */

/* kernels_x86.h's helpers, which it #undefs at its end */
#define AI __attribute__((always_inline)) inline
#define UNROLL4 _Pragma("GCC unroll 4")
#define ROW(TYPE, k) ((const TYPE *)((const char *)w + (size_t)(r + (k)) * rb))

/* int16 pair p of zmm t: sub-block 2t + p/8 (low half), 8 + 2t + (p-16)/8 */
static const int16_t k23_sidx[4][32] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9},
    {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13},
    {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15},
};

/* Software prefetch 16 rows (four 4-row groups) ahead, not prefetch_ahead's
 * 4: with 4 rows read side by side, 4 rows ahead streamed from DRAM at
 * 7.6 (Q3_K) and 7.9 GB/s (Q2_K) on the development VM, 16 ahead at 8.1
 * and 8.5, as fast as one row at a time, which is slower from the caches
 * (docs/performance.md). */
T static AI void k23_prefetch(const void *p, size_t rb, size_t len)
{
    for (size_t o = 0; o < len; o += 64)
        _mm_prefetch((const char *)p + 16 * rb + o, _MM_HINT_T0);
}

/* x of super-block i as the four zmm chunk pairs. */
T static AI void k23_x(const int8_t *q8, __m512i xs[4])
{
    UNROLL4 for (int t = 0; t < 4; t++)
        xs[t] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q8 + 32 * t))),
                                   _mm256_loadu_si256((const __m256i *)(q8 + 128 + 32 * t)), 1);
}

/* Q3_K's 16 scales minus 32 (q3k_scales) with vector shifts: the 16
 * bytes before the block's end hold qs[60..63] and scales[0..11], whose
 * 32-bit words are ggml's aux[0..2]. */
T static AI __m128i q3k_scales_v(const eng_block_q3_k *b)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)(b->scales - 4));
    const __m128i lo = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 1)),
                                                    _mm_setr_epi32(0, 0, 4, 4)),
                                     _mm_set1_epi8(0x0f));
    const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(3, 3, 3, 3)),
                                                    _mm_setr_epi32(0, 2, 4, 6)),
                                     _mm_set1_epi8(3));
    return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi32(hi, 4)), _mm_set1_epi8(32));
}

/* Q3_K: u = low bits + 4 where the high bit is set (0..7, unsigned for
 * vpmaddubsw); u*x pair sums minus 4*(x pair sums) (shared by the rows)
 * are ggml's q*x pair sums maddubs(q3l, x) - maddubs(q3h, x), |.| <= 1024. */
T static AI void q3_k_rows(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r, const int R)
{
    const int64_t nb = x->n / ENG_QK_K;
    const __m512i m3 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    __m512i sidx[4], hsel[4];
    UNROLL4 for (int t = 0; t < 4; t++) {
        sidx[t] = _mm512_loadu_si512(k23_sidx[t]);
        /* hmask bit t (low half, j = 0) and 4 + t (high half, j = 1) */
        hsel[t] = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << t)), _mm256_set1_epi8((char)(16 << t)), 1);
    }
    const eng_block_q3_k *b[4];
    __m256 acc[4];
    UNROLL4 for (int k = 0; k < R; k++) {
        b[k] = ROW(eng_block_q3_k, k);
        acc[k] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nb; i++) {
        __m512i xs[4], x4[4];
        k23_x(x->q8k_qs + i * ENG_QK_K, xs);
        UNROLL4 for (int t = 0; t < 4; t++)
            x4[t] = _mm512_maddubs_epi16(four, xs[t]);
        UNROLL4 for (int k = 0; k < R; k++) {
            const eng_block_q3_k *bk = &b[k][i];
            k23_prefetch(bk, rb, sizeof *bk);
            const float d = x->q8k_d[i] * h2f(bk->d);
            const __m512i sc = _mm512_zextsi256_si512(_mm256_cvtepi8_epi16(q3k_scales_v(bk)));
            const __m512i qs = _mm512_loadu_si512(bk->qs);
            const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)bk->hmask));
            __m512i sumi = _mm512_setzero_si512();
            UNROLL4 for (int t = 0; t < 4; t++) {
                const __m512i q3l = _mm512_and_si512(_mm512_srli_epi16(qs, 2 * t), m3);
                const __m512i u = _mm512_mask_add_epi8(q3l, _mm512_test_epi8_mask(hm, hsel[t]), q3l, four);
                const __m512i p16 = _mm512_sub_epi16(_mm512_maddubs_epi16(u, xs[t]), x4[t]);
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_permutexvar_epi16(sidx[t], sc), p16);
            }
            const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s8), acc[k]);
        }
    }
    UNROLL4 for (int k = 0; k < R; k++)
        y[r + k] = hsum_float_8(acc[k]);
}

T static void matvec_q3_k_512(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    ROWS_LOOP(q3_k_rows);
}

/* Q2_K: the scale goes into the weight bytes instead: s * code <= 15 * 3
 * fits an unsigned byte, and a 128-bit lane of a chunk pair is one
 * 16-group, so a vpshufb table per lane ([0, s, 2s, 3s] of the group
 * chosen by 4t) gives s * code, and vpdpbusd with x gives ggml's lane
 * dwords (s times the sum of 4 products) directly. The min term is
 * ggml's (vpmaddwd of the mins with bsums, its FMA before the scales'). */
T static AI void q2_k_rows(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r, const int R)
{
    const int64_t nb = x->n / ENG_QK_K;
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xF);
    /* 128-bit lane L of the table holds the 4-entry groups of sub-blocks
     * (L: 0,2,4,6 | 1,3,5,7 | 8,10,12,14 | 9,11,13,15), group t at bytes 4t.. */
    static const int8_t gidx[64] = {0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6,
                                    1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7,
                                    8, 8, 8, 8, 10, 10, 10, 10, 12, 12, 12, 12, 14, 14, 14, 14,
                                    9, 9, 9, 9, 11, 11, 11, 11, 13, 13, 13, 13, 15, 15, 15, 15};
    const __m512i gi = _mm512_loadu_si512(gidx);
    const __m512i k1 = _mm512_set1_epi32(0x0f000f00), k2 = _mm512_set1_epi32(0x1e1e0000);
    __m512i tsel[4];
    UNROLL4 for (int t = 0; t < 4; t++)
        tsel[t] = _mm512_set1_epi8((char)(4 * t));
    const eng_block_q2_k *b[4];
    __m256 acc[4];
    UNROLL4 for (int k = 0; k < R; k++) {
        b[k] = ROW(eng_block_q2_k, k);
        acc[k] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nb; i++) {
        __m512i xs[4];
        k23_x(x->q8k_qs + i * ENG_QK_K, xs);
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)(x->q8k_bsums + 16 * i));
        UNROLL4 for (int k = 0; k < R; k++) {
            const eng_block_q2_k *bk = &b[k][i];
            k23_prefetch(bk, rb, sizeof *bk);
            const float d = x->q8k_d[i] * h2f(bk->d);
            const float dmin = -x->q8k_d[i] * h2f(bk->dmin);
            const __m128i ms = _mm_loadu_si128((const __m128i *)bk->scales);
            const __m256i mins = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(ms, 4), m4));
            const __m256i prod = _mm256_madd_epi16(mins, bsums);
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc[k]);
            /* s * code for code 0..3: (s & k1-bytes) + (2s & k2-bytes), <= 45 */
            const __m512i s4 = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(ms), gi);
            const __m512i tab = _mm512_add_epi8(_mm512_and_si512(s4, k1), _mm512_and_si512(_mm512_add_epi8(s4, s4), k2));
            const __m512i qs = _mm512_loadu_si512(bk->qs);
            __m512i sumi = _mm512_setzero_si512();
            UNROLL4 for (int t = 0; t < 4; t++) {
                const __m512i ix = _mm512_ternarylogic_epi32(_mm512_srli_epi16(qs, 2 * t), m3, tsel[t], 0xEA);
                sumi = _mm512_dpbusd_epi32(sumi, _mm512_shuffle_epi8(tab, ix), xs[t]);
            }
            const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s8), acc[k]);
        }
    }
    UNROLL4 for (int k = 0; k < R; k++)
        y[r + k] = hsum_float_8(acc[k]);
}

T static void matvec_q2_k_512(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    ROWS_LOOP(q2_k_rows);
}

#undef AI
#undef UNROLL4
#undef ROW

/* The bf16 dots prefetch 1 KiB ahead along the row: from DRAM 11-12 GB/s
 * instead of 10 on the development VM (61-63 instead of 68-70 in cache);
 * for f32/f16 it cost a third in cache and gained nothing measurable. */

/* GGML_F32x16_REDUCE of four accumulators. */
T static inline float reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
}

T static float dot_f32(const float *a, const float *x, int64_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const int64_t np = n & ~(int64_t)63;
    for (int64_t j = 0; j < np; j += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j), _mm512_loadu_ps(x + j), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 16), _mm512_loadu_ps(x + j + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 32), _mm512_loadu_ps(x + j + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 48), _mm512_loadu_ps(x + j + 48), s3);
    }
    float s = reduce4(s0, s1, s2, s3);
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

T static inline __m512 load_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

T static float dot_f16_f32acc(const uint16_t *a, const uint16_t *x, int64_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const int64_t np = n & ~(int64_t)63;
    for (int64_t j = 0; j < np; j += 64) {
        s0 = _mm512_fmadd_ps(load_f16(a + j), load_f16(x + j), s0);
        s1 = _mm512_fmadd_ps(load_f16(a + j + 16), load_f16(x + j + 16), s1);
        s2 = _mm512_fmadd_ps(load_f16(a + j + 32), load_f16(x + j + 32), s2);
        s3 = _mm512_fmadd_ps(load_f16(a + j + 48), load_f16(x + j + 48), s3);
    }
    double s = reduce4(s0, s1, s2, s3);
    for (int64_t j = np; j < n; j++)
        s += (double)(_cvtsh_ss(a[j]) * _cvtsh_ss(x[j]));
    return (float)s;
}

TFP16 static float dot_f16_f16acc(const uint16_t *a, const uint16_t *x, int64_t n)
{
    __m512h s0 = _mm512_setzero_ph(), s1 = s0, s2 = s0, s3 = s0;
    const int64_t np = n & ~(int64_t)127;
    for (int64_t j = 0; j < np; j += 128) {
        s0 = _mm512_fmadd_ph(_mm512_loadu_ph(a + j), _mm512_loadu_ph(x + j), s0);
        s1 = _mm512_fmadd_ph(_mm512_loadu_ph(a + j + 32), _mm512_loadu_ph(x + j + 32), s1);
        s2 = _mm512_fmadd_ph(_mm512_loadu_ph(a + j + 64), _mm512_loadu_ph(x + j + 64), s2);
        s3 = _mm512_fmadd_ph(_mm512_loadu_ph(a + j + 96), _mm512_loadu_ph(x + j + 96), s3);
    }
    double s = (double)_mm512_reduce_add_ph(_mm512_add_ph(_mm512_add_ph(s0, s2), _mm512_add_ph(s1, s3)));
    for (int64_t j = np; j < n; j++)
        s += (double)(_cvtsh_ss(a[j]) * _cvtsh_ss(x[j]));
    return (float)s;
}

T static inline __m512 load_bf16(const uint16_t *p)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

T static float dot_bf16_f32(const uint16_t *a, const uint16_t *x, int64_t n)
{
    __m512 c1 = _mm512_setzero_ps(), c2 = c1;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {   /* exact products: add(mul) == fma */
        _mm_prefetch((const char *)(a + j) + 1024, _MM_HINT_T0);
        c1 = _mm512_add_ps(_mm512_mul_ps(load_bf16(a + j), load_bf16(x + j)), c1);
        c2 = _mm512_add_ps(_mm512_mul_ps(load_bf16(a + j + 16), load_bf16(x + j + 16)), c2);
    }
    double s = 0;
    s += (double)_mm512_reduce_add_ps(c1);
    s += (double)_mm512_reduce_add_ps(c2);
    for (; j < n; j++)
        s += (double)(eng_bf16_to_fp32(a[j]) * eng_bf16_to_fp32(x[j]));
    return (float)s;
}

TBF16 static float dot_bf16_dp(const uint16_t *a, const uint16_t *x, int64_t n)
{
    __m512 c1 = _mm512_setzero_ps(), c2 = c1;
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
        _mm_prefetch((const char *)(a + j) + 1024, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + j) + 1088, _MM_HINT_T0);
        c1 = _mm512_dpbf16_ps(c1, (__m512bh)_mm512_loadu_si512(a + j), (__m512bh)_mm512_loadu_si512(x + j));
        c2 = _mm512_dpbf16_ps(c2, (__m512bh)_mm512_loadu_si512(a + j + 32), (__m512bh)_mm512_loadu_si512(x + j + 32));
    }
    double s = 0;
    s += (double)_mm512_reduce_add_ps(c1);
    s += (double)_mm512_reduce_add_ps(c2);
    for (; j < n; j++)
        s += (double)(eng_bf16_to_fp32(a[j]) * eng_bf16_to_fp32(x[j]));
    return (float)s;
}

#define MATVEC_FLOAT(NAME, ELEM, DOT, XF, TGT)                                                    \
    TGT static void NAME(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0,       \
                         int64_t r1)                                                              \
    {                                                                                             \
        for (int64_t r = r0; r < r1; r++)                                                         \
            y[r] = DOT((const ELEM *)((const char *)w + (size_t)r * rb), x->XF, x->n);            \
    }
MATVEC_FLOAT(matvec_f32, float, dot_f32, f32, T)
MATVEC_FLOAT(matvec_f16, uint16_t, dot_f16_f32acc, f16, T)
MATVEC_FLOAT(matvec_f16_fp16, uint16_t, dot_f16_f16acc, f16, TFP16)
MATVEC_FLOAT(matvec_bf16, uint16_t, dot_bf16_f32, bf16, T)
MATVEC_FLOAT(matvec_bf16_dp, uint16_t, dot_bf16_dp, bf16, TBF16)

/* ---- 512-bit dequantizers (the others are the AVX2 ones) ----------------- */

#define DEQ_HALF(NAME, CVT)                                                                       \
    T static void NAME(const void *row, float *dst, int64_t n)                                    \
    {                                                                                             \
        const uint16_t *h = row;                                                                  \
        int64_t j = 0;                                                                            \
        for (; j + 16 <= n; j += 16)                                                              \
            _mm512_storeu_ps(dst + j, CVT(h + j));                                                \
        if (j < n) {                                                                              \
            uint16_t tmp[16] = {0};                                                               \
            float out[16];                                                                        \
            memcpy(tmp, h + j, (size_t)(n - j) * 2);                                              \
            _mm512_storeu_ps(out, CVT(tmp));                                                      \
            memcpy(dst + j, out, (size_t)(n - j) * 4);                                            \
        }                                                                                         \
    }
DEQ_HALF(dequant_f16, load_f16)
DEQ_HALF(dequant_bf16, load_bf16)

/* 32 signed codes times d (+ -0.0, the scalar dequantizer's identity). */
T static inline void store_scaled(__m256i q, float d, float *dst)
{
    const __m512 vd = _mm512_set1_ps(d), vm = _mm512_set1_ps(-0.0f);
    const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
    const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
    _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_mul_ps(lo, vd), vm));
    _mm512_storeu_ps(dst + 16, _mm512_add_ps(_mm512_mul_ps(hi, vd), vm));
}

T static void dequant_q8_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q8_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_scaled(load_q8_0(&b[i]), h2f(b[i].d), dst + i * 32);
}

T static void dequant_q4_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q4_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++)
        store_scaled(load_q4_0(&b[i]), h2f(b[i].d), dst + i * 32);
}

#define AVX512_TABLE(NAME, STR, F16FN, BF16FN)                                                    \
    const struct eng_kernels NAME = {                                                            \
        .simd = ENG_SIMD_AVX512,                                                                  \
        .name = STR,                                                                              \
        .x_q8 = eng_avx2_x_q8,                                                                    \
        .x_q8k = eng_avx2_x_q8k,                                                                  \
        .x_f16 = eng_avx2_x_f16,                                                                  \
        .x_bf16 = eng_scalar_x_bf16,                                                              \
        .matvec = {[ENG_TYPE_F32] = matvec_f32, [ENG_TYPE_F16] = F16FN, [ENG_TYPE_BF16] = BF16FN,  \
                   [ENG_TYPE_Q8_0] = matvec_q8_0_avx512, [ENG_TYPE_Q4_0] = matvec_q4_0_avx512,     \
                   [ENG_TYPE_Q4_1] = matvec_q4_1_avx512, [ENG_TYPE_Q5_0] = matvec_q5_0_avx512,     \
                   [ENG_TYPE_Q5_1] = matvec_q5_1_avx512, [ENG_TYPE_IQ4_NL] = matvec_iq4_nl_avx512, \
                   [ENG_TYPE_MXFP4] = matvec_mxfp4_avx512, [ENG_TYPE_Q2_K] = matvec_q2_k_512,      \
                   [ENG_TYPE_Q3_K] = matvec_q3_k_512, [ENG_TYPE_Q4_K] = matvec_q4_k_512,        \
                   [ENG_TYPE_Q5_K] = matvec_q5_k_avx512, [ENG_TYPE_Q6_K] = matvec_q6_k_512,     \
                   [ENG_TYPE_IQ4_XS] = matvec_iq4_xs_avx512},                                      \
        .dequant = {[ENG_TYPE_F32] = eng_scalar_dequant_f32, [ENG_TYPE_F16] = dequant_f16,         \
                    [ENG_TYPE_BF16] = dequant_bf16, [ENG_TYPE_Q8_0] = dequant_q8_0,                \
                    [ENG_TYPE_Q4_0] = dequant_q4_0, [ENG_TYPE_Q4_1] = eng_avx2_dequant_q4_1,       \
                    [ENG_TYPE_Q5_0] = eng_avx2_dequant_q5_0, [ENG_TYPE_Q5_1] = eng_avx2_dequant_q5_1, \
                    [ENG_TYPE_IQ4_NL] = eng_avx2_dequant_iq4_nl,                                   \
                    [ENG_TYPE_MXFP4] = eng_avx2_dequant_mxfp4, [ENG_TYPE_Q2_K] = eng_avx2_dequant_q2_k, \
                    [ENG_TYPE_Q3_K] = eng_avx2_dequant_q3_k, [ENG_TYPE_Q4_K] = eng_avx2_dequant_q4_k, \
                    [ENG_TYPE_Q5_K] = eng_avx2_dequant_q5_k, [ENG_TYPE_Q6_K] = eng_avx2_dequant_q6_k, \
                    [ENG_TYPE_IQ4_XS] = eng_avx2_dequant_iq4_xs},                                  \
    };

AVX512_TABLE(eng_kernels_avx512, "avx512", matvec_f16, matvec_bf16)
AVX512_TABLE(eng_kernels_avx512_fp16, "avx512+fp16", matvec_f16_fp16, matvec_bf16)
AVX512_TABLE(eng_kernels_avx512_bf16, "avx512+bf16", matvec_f16, matvec_bf16_dp)
AVX512_TABLE(eng_kernels_avx512_fp16_bf16, "avx512+fp16+bf16", matvec_f16_fp16, matvec_bf16_dp)
