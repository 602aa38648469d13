/*
 * kernels_x86.h — internal template: the block-format dot kernels of
 * ggml's x86 build (ggml-cpu/arch/x86/quants.c, the __AVX2__ branches,
 * which an AVX-512 build runs too), reproduced operation for operation so
 * the results have llama.cpp's bits. Included by kernels_avx2.c and
 * kernels_avx512.c, which define first:
 *   T            the target attribute of every function here
 *   SFX(name)    the suffixed function name (name##_avx2, name##_avx512)
 *   VNNI         1 to form 4-byte dot products with vpdpbusd (what ggml's
 *                mul_sum_us8_pairs_float does under AVX512VNNI+VL),
 *                0 for vpmaddubsw + vpmaddwd; the integers are the same
 *                (no int16 pair sum saturates: |x| <= 127 always, weight
 *                codes |q| <= 128)
 *
 * What "the same bits" takes (tests/engine/test_ggml_parity.c checks it
 * against a plain-C reproduction):
 * - the same integer lanes: lane k (0..7) of every 32-byte chunk holds the
 *   sum over bytes 4k..4k+3, already times the weight's sub-block scale for
 *   the K-quants, summed over the super-block as ggml does (for Q6_K the
 *   offset correction is spread over lanes by 16-groups, not by bytes);
 * - the same float lanes: one 8-lane accumulator per row updated with an
 *   FMA per block (two for IQ4_NL/MXFP4, even and odd blocks), the same
 *   scale products (d_w * d_x in ggml's operand order), the same scalar
 *   FMAs where ggml's compiler contracted `s += a * b` (Q4_1/Q5_1/Q5_K
 *   mins, the IQ4_NL/MXFP4 odd block), and hsum_float_8's order
 *   ((l0+h0)+(l2+h2)) + ((l1+h1)+(l3+h3));
 * - ILP comes from doing 4 rows at once (4 independent chains, each in
 *   ggml's order), not from splitting one row's sum.
 *
 * Register pressure: 4 rows x (1 or 2 accumulators) + x + temporaries fit
 * in 16 ymm registers.
 */
#ifndef ENG_KERNELS_X86_TEMPLATE
#error "kernels_x86.h is a template: include it from kernels_avx2.c / kernels_avx512.c"
#endif

#include <immintrin.h>

#define AI __attribute__((always_inline)) inline
/* the 4-row loops must unroll so that the accumulators live in registers */
#define UNROLL4 _Pragma("GCC unroll 4")

/* ---- ggml's helpers ------------------------------------------------------ */

T static AI float hsum_float_8(const __m256 x)
{
    __m128 res = _mm256_extractf128_ps(x, 1);
    res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    return _mm_cvtss_f32(res);
}

T static AI int hsum_i32_8(const __m256i a)
{
    const __m128i sum128 = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extractf128_si256(a, 1));
    const __m128i hi64 = _mm_unpackhi_epi64(sum128, sum128);
    const __m128i sum64 = _mm_add_epi32(hi64, sum128);
    const __m128i hi32 = _mm_shuffle_epi32(sum64, _MM_SHUFFLE(2, 3, 0, 1));
    return _mm_cvtsi128_si32(_mm_add_epi32(sum64, hi32));
}

/* 32 bits -> 32 bytes, 0xff where the bit is set. */
T static AI __m256i bytes_from_bits_32(const uint8_t *x)
{
    uint32_t x32;
    memcpy(&x32, x, sizeof x32);
    const __m256i shuf_mask = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                0x0101010101010101, 0x0000000000000000);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x32), shuf_mask);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15), then high. */
T static AI __m256i bytes_from_nibbles_32(const uint8_t *rsi)
{
    const __m128i tmp = _mm_loadu_si128((const __m128i *)rsi);
    const __m256i bytes = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
    return _mm256_and_si256(_mm256_set1_epi8(0xF), bytes);
}

/* 4-byte dot products of unsigned ax and signed sy. */
T static AI __m256i mul_sum_us8_pairs(const __m256i ax, const __m256i sy)
{
#if VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
#else
    return _mm256_madd_epi16(_mm256_set1_epi16(1), _mm256_maddubs_epi16(ax, sy));
#endif
}

T static AI __m256 mul_sum_us8_pairs_float(const __m256i ax, const __m256i sy)
{
    return _mm256_cvtepi32_ps(mul_sum_us8_pairs(ax, sy));
}

/* 4-byte dot products of signed x and y (the sign trick). */
T static AI __m256 mul_sum_i8_pairs_float(const __m256i x, const __m256i y)
{
    return mul_sum_us8_pairs_float(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

T static AI float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* Software prefetch of the block at p + 4 rows (one per cache line it
 * spans). The hardware prefetcher alone leaves these kernels well below
 * what they reach from cache when the rows come from DRAM (Q4_K 6.3 vs
 * 9.7 GB/s, Q4_0 4.0 vs 7.8 on the development VM); 4 rows ahead is the
 * next row group of the 4-row kernels. A prefetch never faults, so the
 * rows past the matrix's end are harmless. */
T static AI void prefetch_ahead(const void *p, size_t rb, size_t len)
{
    for (size_t o = 0; o < len; o += 64)
        _mm_prefetch((const char *)p + 4 * rb + o, _MM_HINT_T0);
}

/* ---- blocks of 32 against Q8_0 / Q8_1 (4 rows at a time) -----------------
 * ROWS_32 runs body(k, i) for rows r..r+R-1 (k < R) and blocks i < nb:
 * R = 4 in the main loop, R = 1 for the remaining rows. */

#define ROWS_LOOP(FN, ...)                                                                        \
    do {                                                                                          \
        int64_t r_ = r0;                                                                          \
        for (; r_ + 4 <= r1; r_ += 4)                                                             \
            FN(w, rb, x, y, r_, 4, ##__VA_ARGS__);                                                \
        for (; r_ < r1; r_++)                                                                     \
            FN(w, rb, x, y, r_, 1, ##__VA_ARGS__);                                                \
    } while (0)

#define ROW(TYPE, k) ((const TYPE *)((const char *)w + (size_t)(r + (k)) * rb))

/* Q8_0, Q4_0, Q5_0: signed codes, acc = fmadd(d_w * d_x, q, acc). LANES
 * gives the 8 integer lanes of block i: the sign trick for Q8_0; for
 * Q4_0/Q5_0 the unsigned codes' dot minus 8 (16) * sum of x per lane,
 * the same integers without the two sign operations. */
#define DEF_SIGNED32(NAME, TYPE, LANES)                                                           \
    T static AI void NAME##_rows(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r, \
                                 const int R)                                                     \
    {                                                                                             \
        const int64_t nb = x->n / 32;                                                             \
        const TYPE *b[4];                                                                         \
        __m256 acc[4];                                                                            \
        UNROLL4 for (int k = 0; k < R; k++) {                                                             \
            b[k] = ROW(TYPE, k);                                                                  \
            acc[k] = _mm256_setzero_ps();                                                         \
        }                                                                                         \
        for (int64_t i = 0; i < nb; i++) {                                                        \
            const __m256i qy = _mm256_load_si256((const __m256i *)(x->q8_qs + 32 * i));          \
            const float dy = x->q8_d[i];                                                          \
            const __m256i ls8 = _mm256_load_si256((const __m256i *)(x->q8_ls8 + 8 * i));          \
            if (i % 2 == 0)                                                                       \
                UNROLL4 for (int k = 0; k < R; k++)                                               \
                    prefetch_ahead(&b[k][i], rb, 1);                                              \
            UNROLL4 for (int k = 0; k < R; k++) {                                                         \
                const __m256 d = _mm256_set1_ps(h2f(b[k][i].d) * dy);                             \
                const __m256 q = _mm256_cvtepi32_ps(LANES(&b[k][i], qy, ls8));                     \
                acc[k] = _mm256_fmadd_ps(d, q, acc[k]);                                           \
            }                                                                                     \
        }                                                                                         \
        UNROLL4 for (int k = 0; k < R; k++)                                                               \
            y[r + k] = hsum_float_8(acc[k]);                                                      \
    }                                                                                             \
    T static void SFX(NAME)(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0,    \
                            int64_t r1)                                                           \
    {                                                                                             \
        ROWS_LOOP(NAME##_rows);                                                                   \
    }

T static AI __m256i load_q8_0(const eng_block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }
T static AI __m256i load_q4_0(const eng_block_q4_0 *b)
{
    return _mm256_sub_epi8(bytes_from_nibbles_32(b->qs), _mm256_set1_epi8(8));
}
/* nibble | 0xF0 where the 5th bit is clear: q5 - 16 as a signed byte */
T static AI __m256i load_q5_0(const eng_block_q5_0 *b)
{
    const __m256i hi = _mm256_andnot_si256(bytes_from_bits_32(b->qh), _mm256_set1_epi8((char)0xF0));
    return _mm256_or_si256(bytes_from_nibbles_32(b->qs), hi);
}

T static AI __m256i lanes_q8_0(const eng_block_q8_0 *b, __m256i qy, __m256i ls8)
{
    (void)ls8;
    const __m256i qx = load_q8_0(b);
    return mul_sum_us8_pairs(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
}
T static AI __m256i lanes_q4_0(const eng_block_q4_0 *b, __m256i qy, __m256i ls8)
{
    return _mm256_sub_epi32(mul_sum_us8_pairs(bytes_from_nibbles_32(b->qs), qy), ls8);
}
T static AI __m256i lanes_q5_0(const eng_block_q5_0 *b, __m256i qy, __m256i ls8)
{
    const __m256i hi = _mm256_and_si256(bytes_from_bits_32(b->qh), _mm256_set1_epi8(0x10));
    const __m256i q5 = _mm256_or_si256(bytes_from_nibbles_32(b->qs), hi);   /* 0..31 */
    return _mm256_sub_epi32(mul_sum_us8_pairs(q5, qy), _mm256_slli_epi32(ls8, 1));
}

DEF_SIGNED32(matvec_q8_0, eng_block_q8_0, lanes_q8_0)
DEF_SIGNED32(matvec_q4_0, eng_block_q4_0, lanes_q4_0)
DEF_SIGNED32(matvec_q5_0, eng_block_q5_0, lanes_q5_0)

/* Q4_1 (ggml vec_dot_q4_1_q8_1): acc = fmadd(d_w * d_x, q, acc) with
 * unsigned codes; summs = fma(m, s_x, summs) per block; hsum + summs. */
T static AI void q4_1_rows(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r, const int R)
{
    const int64_t nb = x->n / 32;
    const eng_block_q4_1 *b[4];
    __m256 acc[4];
    float summs[4];
    UNROLL4 for (int k = 0; k < R; k++) {
        b[k] = ROW(eng_block_q4_1, k);
        acc[k] = _mm256_setzero_ps();
        summs[k] = 0;
    }
    for (int64_t i = 0; i < nb; i++) {
        const __m256i qy = _mm256_load_si256((const __m256i *)(x->q8_qs + 32 * i));
        const __m256 d1v = _mm256_set1_ps(x->q8_d[i]);
        if (i % 2 == 0)
            UNROLL4 for (int k = 0; k < R; k++)
                prefetch_ahead(&b[k][i], rb, 1);
        UNROLL4 for (int k = 0; k < R; k++) {
            summs[k] = fmaf(h2f(b[k][i].m), x->q8_s[i], summs[k]);
            const __m256 d0d1 = _mm256_mul_ps(_mm256_set1_ps(h2f(b[k][i].d)), d1v);
            const __m256 xy = mul_sum_us8_pairs_float(bytes_from_nibbles_32(b[k][i].qs), qy);
            acc[k] = _mm256_fmadd_ps(d0d1, xy, acc[k]);
        }
    }
    UNROLL4 for (int k = 0; k < R; k++)
        y[r + k] = hsum_float_8(acc[k]) + summs[k];
}

T static void SFX(matvec_q4_1)(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    ROWS_LOOP(q4_1_rows);
}

/* Q5_1 (ggml vec_dot_q5_1_q8_1): acc = fmadd(q, d_w * d_x, acc). */
T static AI void q5_1_rows(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r, const int R)
{
    const int64_t nb = x->n / 32;
    const eng_block_q5_1 *b[4];
    __m256 acc[4];
    float summs[4];
    UNROLL4 for (int k = 0; k < R; k++) {
        b[k] = ROW(eng_block_q5_1, k);
        acc[k] = _mm256_setzero_ps();
        summs[k] = 0;
    }
    for (int64_t i = 0; i < nb; i++) {
        const __m256i qy = _mm256_load_si256((const __m256i *)(x->q8_qs + 32 * i));
        const __m256 dy = _mm256_set1_ps(x->q8_d[i]);
        if (i % 2 == 0)
            UNROLL4 for (int k = 0; k < R; k++)
                prefetch_ahead(&b[k][i], rb, 1);
        UNROLL4 for (int k = 0; k < R; k++) {
            summs[k] = fmaf(h2f(b[k][i].m), x->q8_s[i], summs[k]);
            const __m256i hi = _mm256_and_si256(bytes_from_bits_32(b[k][i].qh), _mm256_set1_epi8(0x10));
            const __m256i qx = _mm256_or_si256(bytes_from_nibbles_32(b[k][i].qs), hi);
            const __m256 q = mul_sum_us8_pairs_float(qx, qy);
            acc[k] = _mm256_fmadd_ps(q, _mm256_mul_ps(_mm256_set1_ps(h2f(b[k][i].d)), dy), acc[k]);
        }
    }
    UNROLL4 for (int k = 0; k < R; k++)
        y[r + k] = hsum_float_8(acc[k]) + summs[k];
}

T static void SFX(matvec_q5_1)(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    ROWS_LOOP(q5_1_rows);
}

/* IQ4_NL and MXFP4 (ggml vec_dot_iq4_nl_q8_0 / vec_dot_mxfp4_q8_0): table
 * codes via pshufb, two accumulators (even and odd block of each pair),
 * hsum of their sum, then an odd last block in scalar:
 * s = fma(d, isum, s). DSCALE(b) is the weight block's scale. */
#define DEF_TABLE32(NAME, TYPE, TABLE, DSCALE)                                                    \
    T static AI __m256i NAME##_codes(const TYPE *b, __m128i values)                               \
    {                                                                                             \
        const __m128i bits = _mm_loadu_si128((const __m128i *)b->qs), m4 = _mm_set1_epi8(0x0f);   \
        const __m128i lo = _mm_shuffle_epi8(values, _mm_and_si128(bits, m4));                     \
        const __m128i hi = _mm_shuffle_epi8(values, _mm_and_si128(_mm_srli_epi16(bits, 4), m4));  \
        return _mm256_insertf128_si256(_mm256_castsi128_si256(lo), hi, 1);                        \
    }                                                                                             \
    T static AI void NAME##_rows(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r, \
                                 const int R)                                                     \
    {                                                                                             \
        const int64_t nb = x->n / 32;                                                             \
        const __m128i values = _mm_loadu_si128((const __m128i *)TABLE);                          \
        const TYPE *b[4];                                                                         \
        __m256 a1[4], a2[4];                                                                      \
        UNROLL4 for (int k = 0; k < R; k++) {                                                             \
            b[k] = ROW(TYPE, k);                                                                  \
            a1[k] = a2[k] = _mm256_setzero_ps();                                                  \
        }                                                                                         \
        int64_t i = 0;                                                                            \
        for (; i + 1 < nb; i += 2) {                                                              \
            const __m256i y1 = _mm256_load_si256((const __m256i *)(x->q8_qs + 32 * i));           \
            const __m256i y2 = _mm256_load_si256((const __m256i *)(x->q8_qs + 32 * i + 32));      \
            UNROLL4 for (int k = 0; k < R; k++) {                                                 \
                prefetch_ahead(&b[k][i], rb, 1);                                                  \
                const __m256 p1 = mul_sum_i8_pairs_float(NAME##_codes(&b[k][i], values), y1);     \
                const __m256 p2 = mul_sum_i8_pairs_float(NAME##_codes(&b[k][i + 1], values), y2); \
                a1[k] = _mm256_fmadd_ps(_mm256_set1_ps(x->q8_d[i] * DSCALE(&b[k][i])), p1, a1[k]); \
                a2[k] = _mm256_fmadd_ps(_mm256_set1_ps(x->q8_d[i + 1] * DSCALE(&b[k][i + 1])), p2, \
                                        a2[k]);                                                   \
            }                                                                                     \
        }                                                                                         \
        UNROLL4 for (int k = 0; k < R; k++) {                                                             \
            float s = hsum_float_8(_mm256_add_ps(a1[k], a2[k]));                                  \
            if (i < nb) {                                                                         \
                const TYPE *bl = &b[k][i];                                                        \
                int isum = 0;                                                                     \
                for (int j = 0; j < 16; j++)                                                      \
                    isum += x->q8_qs[32 * i + j] * TABLE[bl->qs[j] & 0xf] +                       \
                            x->q8_qs[32 * i + 16 + j] * TABLE[bl->qs[j] >> 4];                    \
                s = fmaf(x->q8_d[i] * DSCALE(bl), (float)isum, s);                                \
            }                                                                                     \
            y[r + k] = s;                                                                         \
        }                                                                                         \
    }                                                                                             \
    T static void SFX(NAME)(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0,    \
                            int64_t r1)                                                           \
    {                                                                                             \
        ROWS_LOOP(NAME##_rows);                                                                   \
    }

#define IQ4NL_D(b) h2f((b)->d)
#define MXFP4_D(b) eng_e8m0_half((b)->e)
DEF_TABLE32(matvec_iq4_nl, eng_block_iq4_nl, eng_kvalues_iq4nl, IQ4NL_D)
DEF_TABLE32(matvec_mxfp4, eng_block_mxfp4, eng_kvalues_mxfp4, MXFP4_D)

/* ---- K-quants against Q8_K (one row at a time) ---------------------------
 * Per super-block: integer lane sums (exact), then one FMA per float lane
 * with d = x_d * d_w (and the min term with dmin = -x_d * dmin_w). */

#define KROW(TYPE) const TYPE *bx = (const TYPE *)((const char *)w + (size_t)r * rb)

/* ggml's scale shuffles (get_scale_shuffle_q3k / _k4 / get_scale_shuffle). */
T static AI __m256i scale_shuffle_q3k(int i)
{
    /* bytes 2i, 2i+1 in the low lane, 2i+2, 2i+3 in the high lane */
    const __m128i lo = _mm_set1_epi16((short)((4 * i) | ((4 * i + 1) << 8)));
    const __m128i hi = _mm_set1_epi16((short)((4 * i + 2) | ((4 * i + 3) << 8)));
    return _mm256_insertf128_si256(_mm256_castsi128_si256(lo), hi, 1);
}
T static AI __m256i scale_shuffle_k4(int i)
{
    return _mm256_set1_epi16((short)((2 * i) | ((2 * i + 1) << 8)));
}
T static AI __m128i scale_shuffle(int i)
{
    return _mm_set_epi64x(0x0101010101010101LL * (2 * i + 1), 0x0101010101010101LL * (2 * i));
}

T static __attribute__((unused)) void SFX(matvec_q2_k)(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / ENG_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xF);
    for (int64_t r = r0; r < r1; r++) {
        KROW(eng_block_q2_k);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < nb; ++i) {
            prefetch_ahead(&bx[i], rb, sizeof bx[i]);
            const float d = x->q8k_d[i] * h2f(bx[i].d);
            const float dmin = -x->q8k_d[i] * h2f(bx[i].dmin);
            const uint8_t *q2 = bx[i].qs;
            const int8_t *q8 = x->q8k_qs + i * ENG_QK_K;
            const __m128i mins_and_scales = _mm_loadu_si128((const __m128i *)bx[i].scales);
            const __m128i scales8 = _mm_and_si128(mins_and_scales, m4);
            const __m128i mins8 = _mm_and_si128(_mm_srli_epi16(mins_and_scales, 4), m4);
            const __m256i mins = _mm256_cvtepi8_epi16(mins8);
            const __m256i bsums = _mm256_loadu_si256((const __m256i *)(x->q8k_bsums + 16 * i));
            const __m256i prod = _mm256_madd_epi16(mins, bsums);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);
            const __m256i all_scales = _mm256_cvtepi8_epi16(scales8);
            const __m128i l_scales = _mm256_extracti128_si256(all_scales, 0);
            const __m128i h_scales = _mm256_extracti128_si256(all_scales, 1);
            const __m256i scales[2] = {_mm256_set_m128i(l_scales, l_scales), _mm256_set_m128i(h_scales, h_scales)};
            __m256i sumi = _mm256_setzero_si256();
            for (int j = 0; j < 2; ++j) {
                const __m256i q2bits = _mm256_loadu_si256((const __m256i *)q2);
                q2 += 32;
                __m256i p[4];
                for (int t = 0; t < 4; t++) {
                    const __m256i q8t = _mm256_load_si256((const __m256i *)(q8 + 32 * t));
                    const __m256i q2t = _mm256_and_si256(_mm256_srli_epi16(q2bits, 2 * t), m3);
                    p[t] = _mm256_madd_epi16(_mm256_shuffle_epi8(scales[j], scale_shuffle_q3k(t)),
                                             _mm256_maddubs_epi16(q2t, q8t));
                }
                q8 += 128;
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]),
                                                               _mm256_add_epi32(p[2], p[3])));
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        y[r] = hsum_float_8(acc);
    }
}

/* Q3_K's 16 scales (6-bit, minus 32) as ggml's vec_dot_q3_K builds them. */
T static AI __m128i q3k_scales(const uint8_t *s)
{
    uint32_t aux[3];
    memcpy(aux, s, 12);
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    __m128i sc = _mm_set_epi32((int)(((aux[1] >> 4) & kmask2) | (((aux[2] >> 6) & kmask1) << 4)),
                               (int)(((aux[0] >> 4) & kmask2) | (((aux[2] >> 4) & kmask1) << 4)),
                               (int)((aux[1] & kmask2) | (((aux[2] >> 2) & kmask1) << 4)),
                               (int)((aux[0] & kmask2) | (((aux[2] >> 0) & kmask1) << 4)));
    return _mm_sub_epi8(sc, _mm_set1_epi8(32));
}

T static __attribute__((unused)) void SFX(matvec_q3_k)(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / ENG_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3), mone = _mm256_set1_epi8(1);
    for (int64_t r = r0; r < r1; r++) {
        KROW(eng_block_q3_k);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < nb; ++i) {
            prefetch_ahead(&bx[i], rb, sizeof bx[i]);
            const float d = x->q8k_d[i] * h2f(bx[i].d);
            const uint8_t *q3 = bx[i].qs;
            const int8_t *q8 = x->q8k_qs + i * ENG_QK_K;
            const __m256i all_scales = _mm256_cvtepi8_epi16(q3k_scales(bx[i].scales));
            const __m128i l_scales = _mm256_extracti128_si256(all_scales, 0);
            const __m128i h_scales = _mm256_extracti128_si256(all_scales, 1);
            const __m256i scales[2] = {_mm256_set_m128i(l_scales, l_scales), _mm256_set_m128i(h_scales, h_scales)};
            const __m256i hbits = _mm256_loadu_si256((const __m256i *)bx[i].hmask);
            __m256i sumi = _mm256_setzero_si256();
            int bit = 0;
            for (int j = 0; j < 2; ++j) {
                const __m256i q3bits = _mm256_loadu_si256((const __m256i *)q3);
                q3 += 32;
                __m256i p[4];
                for (int t = 0; t < 4; t++, bit++) {
                    const __m256i q3l = _mm256_and_si256(_mm256_srli_epi16(q3bits, 2 * t), m3);
                    /* 4 where the high bit is clear, else 0 */
                    const __m256i q3h = _mm256_slli_epi16(
                        _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, bit)), bit), 2);
                    const __m256i q8t = _mm256_load_si256((const __m256i *)(q8 + 32 * t));
                    const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q3l, q8t),
                                                         _mm256_maddubs_epi16(q3h, q8t));
                    p[t] = _mm256_madd_epi16(_mm256_shuffle_epi8(scales[j], scale_shuffle_q3k(t)), p16);
                }
                q8 += 128;
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]),
                                                               _mm256_add_epi32(p[2], p[3])));
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        y[r] = hsum_float_8(acc);
    }
}

/* Q4_K/Q5_K scales and mins as 16 int16 (scales 0..7, mins 8..15). */
T static AI __m256i k4_mins_and_scales(const uint8_t *s)
{
    uint8_t sm[16];
    eng_q4k_unpack_scales(s, sm);
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)sm));
}

/* The 8 sums of 32 x values (pairs of bsums) times the 8 mins: 4 int32. */
T static AI __m128i k4_min_prod(__m256i mins_and_scales, const int16_t *bsums)
{
    const __m256i q8sums = _mm256_loadu_si256((const __m256i *)bsums);
    const __m128i q8s = _mm_hadd_epi16(_mm256_extracti128_si256(q8sums, 0), _mm256_extracti128_si256(q8sums, 1));
    return _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
}

/* (the AVX-512 tables have their own Q4_K kernel) */
T static __attribute__((unused)) void SFX(matvec_q4_k)(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / ENG_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    for (int64_t r = r0; r < r1; r++) {
        KROW(eng_block_q4_k);
        __m256 acc = _mm256_setzero_ps();
        __m128 acc_m = _mm_setzero_ps();
        for (int64_t i = 0; i < nb; ++i) {
            prefetch_ahead(&bx[i], rb, sizeof bx[i]);
            const float d = x->q8k_d[i] * h2f(bx[i].d);
            const float dmin = -x->q8k_d[i] * h2f(bx[i].dmin);
            const __m256i mins_and_scales = k4_mins_and_scales(bx[i].scales);
            const __m128i prod = k4_min_prod(mins_and_scales, x->q8k_bsums + 16 * i);
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
            const __m128i sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            const __m256i scales = _mm256_set_m128i(sc128, sc128);
            const uint8_t *q4 = bx[i].qs;
            const int8_t *q8 = x->q8k_qs + i * ENG_QK_K;
            __m256i sumi = _mm256_setzero_si256();
            for (int j = 0; j < 4; ++j) {
                const __m256i scale_l = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j + 0));
                const __m256i scale_h = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j + 1));
                const __m256i q4bits = _mm256_loadu_si256((const __m256i *)q4);
                q4 += 32;
                const __m256i q4l = _mm256_and_si256(q4bits, m4);
                const __m256i q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
                const __m256i q8l = _mm256_load_si256((const __m256i *)q8);
                const __m256i q8h = _mm256_load_si256((const __m256i *)(q8 + 32));
                q8 += 64;
                const __m256i p16l = _mm256_madd_epi16(scale_l, _mm256_maddubs_epi16(q4l, q8l));
                const __m256i p16h = _mm256_madd_epi16(scale_h, _mm256_maddubs_epi16(q4h, q8h));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16l, p16h));
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
        acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
        y[r] = hsum_float_8(acc) + _mm_cvtss_f32(acc_m);
    }
}

T static void SFX(matvec_q5_k)(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / ENG_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0xF), mone = _mm256_set1_epi8(1);
    for (int64_t r = r0; r < r1; r++) {
        KROW(eng_block_q5_k);
        __m256 acc = _mm256_setzero_ps();
        float summs = 0.f;
        for (int64_t i = 0; i < nb; ++i) {
            prefetch_ahead(&bx[i], rb, sizeof bx[i]);
            const float d = x->q8k_d[i] * h2f(bx[i].d);
            const float dmin = -x->q8k_d[i] * h2f(bx[i].dmin);
            const __m256i mins_and_scales = k4_mins_and_scales(bx[i].scales);
            const __m128i prod = k4_min_prod(mins_and_scales, x->q8k_bsums + 16 * i);
            const __m128i hsum = _mm_hadd_epi32(_mm_hadd_epi32(prod, _mm_setzero_si128()), _mm_setzero_si128());
            summs = fmaf(dmin, (float)_mm_extract_epi32(hsum, 0), summs);
            const __m128i sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            const __m256i scales = _mm256_set_m128i(sc128, sc128);
            const __m256i hbits = _mm256_loadu_si256((const __m256i *)bx[i].qh);
            __m256i hmask = mone;
            const uint8_t *q5 = bx[i].qs;
            const int8_t *q8 = x->q8k_qs + i * ENG_QK_K;
            __m256i sumi = _mm256_setzero_si256();
            int bit = 0;
            for (int j = 0; j < 4; ++j) {
                const __m256i scale_0 = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j + 0));
                const __m256i scale_1 = _mm256_shuffle_epi8(scales, scale_shuffle_k4(2 * j + 1));
                const __m256i q5bits = _mm256_loadu_si256((const __m256i *)q5);
                q5 += 32;
                const __m256i q5l_0 = _mm256_and_si256(q5bits, m4);
                const __m256i q5h_0 = _mm256_slli_epi16(_mm256_srli_epi16(_mm256_and_si256(hbits, hmask), bit++), 4);
                hmask = _mm256_slli_epi16(hmask, 1);
                const __m256i q5l_1 = _mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4);
                const __m256i q5h_1 = _mm256_slli_epi16(_mm256_srli_epi16(_mm256_and_si256(hbits, hmask), bit++), 4);
                hmask = _mm256_slli_epi16(hmask, 1);
                const __m256i q8_0 = _mm256_load_si256((const __m256i *)q8);
                const __m256i q8_1 = _mm256_load_si256((const __m256i *)(q8 + 32));
                q8 += 64;
                const __m256i q5_0 = _mm256_add_epi8(q5l_0, q5h_0), q5_1 = _mm256_add_epi8(q5l_1, q5h_1);
                const __m256i p16_0 = _mm256_madd_epi16(scale_0, _mm256_maddubs_epi16(q5_0, q8_0));
                const __m256i p16_1 = _mm256_madd_epi16(scale_1, _mm256_maddubs_epi16(q5_1, q8_1));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_1));
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        y[r] = hsum_float_8(acc) + summs;
    }
}

/* (the AVX-512 tables have their own Q6_K kernel) */
T static __attribute__((unused)) void SFX(matvec_q6_k)(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / ENG_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3), m15 = _mm256_set1_epi8(15);
    for (int64_t r = r0; r < r1; r++) {
        KROW(eng_block_q6_k);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < nb; ++i) {
            prefetch_ahead(&bx[i], rb, sizeof bx[i]);
            const float d = x->q8k_d[i] * h2f(bx[i].d);
            const uint8_t *q4 = bx[i].ql, *qh = bx[i].qh;
            const int8_t *q8 = x->q8k_qs + i * ENG_QK_K;
            const __m256i q8sums = _mm256_loadu_si256((const __m256i *)(x->q8k_bsums + 16 * i));
            const __m128i scales = _mm_loadu_si128((const __m128i *)bx[i].scales);
            const __m256i scales_16 = _mm256_cvtepi8_epi16(scales);
            const __m256i q8sclsub = _mm256_slli_epi32(_mm256_madd_epi16(q8sums, scales_16), 5);
            __m256i sumi = _mm256_setzero_si256();
            int is = 0;
            for (int j = 0; j < 2; ++j) {
                const __m256i q4bits1 = _mm256_loadu_si256((const __m256i *)q4);
                const __m256i q4bits2 = _mm256_loadu_si256((const __m256i *)(q4 + 32));
                const __m256i q4bitsH = _mm256_loadu_si256((const __m256i *)qh);
                q4 += 64;
                qh += 32;
                const __m256i q4h_0 = _mm256_slli_epi16(_mm256_and_si256(q4bitsH, m3), 4);
                const __m256i q4h_1 = _mm256_slli_epi16(_mm256_and_si256(q4bitsH, _mm256_set1_epi8(12)), 2);
                const __m256i q4h_2 = _mm256_and_si256(q4bitsH, _mm256_set1_epi8(48));
                const __m256i q4h_3 = _mm256_srli_epi16(_mm256_and_si256(q4bitsH, _mm256_set1_epi8(-64)), 2);
                __m256i q[4];
                q[0] = _mm256_or_si256(_mm256_and_si256(q4bits1, m15), q4h_0);
                q[1] = _mm256_or_si256(_mm256_and_si256(q4bits2, m15), q4h_1);
                q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m15), q4h_2);
                q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m15), q4h_3);
                __m256i p[4];
                for (int t = 0; t < 4; t++) {
                    const __m256i q8t = _mm256_load_si256((const __m256i *)(q8 + 32 * t));
                    const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, scale_shuffle(is + t)));
                    p[t] = _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q[t], q8t));
                }
                q8 += 128;
                is += 4;
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[0], p[1]));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[2], p[3]));
            }
            sumi = _mm256_sub_epi32(sumi, q8sclsub);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        y[r] = hsum_float_8(acc);
    }
}

/* 16 bytes of nibbles -> the 32 table values (low nibbles first). */
T static AI __m256i iq4_codes(__m128i bits, __m128i values, __m128i m4b)
{
    return _mm256_set_m128i(_mm_shuffle_epi8(values, _mm_and_si128(_mm_srli_epi16(bits, 4), m4b)),
                            _mm_shuffle_epi8(values, _mm_and_si128(bits, m4b)));
}

T static void SFX(matvec_iq4_xs)(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = x->n / ENG_QK_K;
    const __m128i values128 = _mm_loadu_si128((const __m128i *)eng_kvalues_iq4nl);
    const __m128i m4b = _mm_set1_epi8(0x0f);
    for (int64_t r = r0; r < r1; r++) {
        KROW(eng_block_iq4_xs);
        __m256 accum = _mm256_setzero_ps();
        for (int64_t ibl = 0; ibl < nb; ++ibl) {
            prefetch_ahead(&bx[ibl], rb, sizeof bx[ibl]);
            const uint8_t *qs = bx[ibl].qs;
            const int8_t *q8 = x->q8k_qs + ibl * ENG_QK_K;
            uint16_t sh = bx[ibl].scales_h;
            __m256i sumi1 = _mm256_setzero_si256(), sumi2 = _mm256_setzero_si256();
            for (int ib = 0; ib < 8; ib += 2) {
                const __m128i q4bits_1 = _mm_loadu_si128((const __m128i *)qs);
                const __m128i q4bits_2 = _mm_loadu_si128((const __m128i *)(qs + 16));
                qs += 32;
                const __m256i q8b_1 = _mm256_load_si256((const __m256i *)q8);
                const __m256i q8b_2 = _mm256_load_si256((const __m256i *)(q8 + 32));
                q8 += 64;
                const __m256i q4b_1 = iq4_codes(q4bits_1, values128, m4b);
                const __m256i q4b_2 = iq4_codes(q4bits_2, values128, m4b);
                const __m256i p16_1 = _mm256_maddubs_epi16(_mm256_sign_epi8(q4b_1, q4b_1),
                                                           _mm256_sign_epi8(q8b_1, q4b_1));
                const __m256i p16_2 = _mm256_maddubs_epi16(_mm256_sign_epi8(q4b_2, q4b_2),
                                                           _mm256_sign_epi8(q8b_2, q4b_2));
                const int16_t ls1 = (int16_t)(((bx[ibl].scales_l[ib / 2] & 0xf) | ((sh << 4) & 0x30)) - 32);
                const int16_t ls2 = (int16_t)(((bx[ibl].scales_l[ib / 2] >> 4) | ((sh << 2) & 0x30)) - 32);
                sh >>= 4;
                sumi1 = _mm256_add_epi32(_mm256_madd_epi16(p16_1, _mm256_set1_epi16(ls1)), sumi1);
                sumi2 = _mm256_add_epi32(_mm256_madd_epi16(p16_2, _mm256_set1_epi16(ls2)), sumi2);
            }
            accum = _mm256_fmadd_ps(_mm256_set1_ps(h2f(bx[ibl].d) * x->q8k_d[ibl]),
                                    _mm256_cvtepi32_ps(_mm256_add_epi32(sumi1, sumi2)), accum);
        }
        y[r] = hsum_float_8(accum);
    }
}

#undef AI
#undef UNROLL4
#undef ROW
#undef KROW
