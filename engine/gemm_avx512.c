/*
 * gemm_avx512.c — integer prefill kernels with AVX-512 VNNI (gemm.h).
 *
 * A task's weight rows are taken 16 at a time (one row per 32-bit lane).
 * Each tile is packed into the thread's scratch: per 32-element block, 8
 * registers whose lane r holds 4 consecutive unsigned codes of row r (a
 * 16 x 8 transpose of dwords), then the rows' scales. The product loop walks
 * the packed blocks once per chunk of up to 16 activation rows, keeping all
 * 8 code registers and one f32 accumulator per activation row in registers:
 * per block and activation row it issues 8 vpdpbusd whose signed operand is
 * 4 activation quants broadcast from memory, so every weight byte loaded is
 * used by every activation row of the chunk, and no lane ever needs a
 * horizontal sum (which is also why the result is the scalar reference's
 * bit for bit).
 *
 * The first chunk packs each block just before using it, so packing's
 * shuffles (port 5) and the products' vpdpbusd (port 0) overlap, and the
 * weight loads of the next blocks are in flight meanwhile; later chunks
 * (more than 16 activation rows) reuse the packed tile. Packing alone costs
 * about as much as the products of four activation rows.
 */
#include "engine/gemm.h"
#include "engine/kernels.h"

#include <immintrin.h>
#include <string.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define AI __attribute__((always_inline)) inline

/* rows per tile; packed bytes per block: codes, S at 512, M/S1 at 576,
 * the int16 pairs of mins (K_PAIR) at 640 */
enum { L = 16, REC = 704 };

typedef enum { K_INT, K_MIN, K_HALVES, K_PAIR, K_Q1 } kind;

/* ---- packing --------------------------------------------------------------- */

/* A[k] = [32 code bytes of row k | of row k + 8] -> rec[64 j + 4 r + i] =
 * byte 4 j + i of row r. */
TGT static AI void transpose_store(__m512i A[8], uint8_t *rec)
{
    __m512i t[8], u[8];
#pragma GCC unroll 16
    for (int k = 0; k < 8; k += 4) {
        t[k] = _mm512_unpacklo_epi32(A[k], A[k + 1]);
        t[k + 1] = _mm512_unpackhi_epi32(A[k], A[k + 1]);
        t[k + 2] = _mm512_unpacklo_epi32(A[k + 2], A[k + 3]);
        t[k + 3] = _mm512_unpackhi_epi32(A[k + 2], A[k + 3]);
        u[k] = _mm512_unpacklo_epi64(t[k], t[k + 2]);
        u[k + 1] = _mm512_unpackhi_epi64(t[k], t[k + 2]);
        u[k + 2] = _mm512_unpacklo_epi64(t[k + 1], t[k + 3]);
        u[k + 3] = _mm512_unpackhi_epi64(t[k + 1], t[k + 3]);
    }
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
#pragma GCC unroll 16
    for (int j = 0; j < 4; j++) {
        _mm512_store_si512((__m512i *)(rec + 64 * j), _mm512_permutex2var_epi64(u[j], lo, u[4 + j]));
        _mm512_store_si512((__m512i *)(rec + 64 * (j + 4)),
                           _mm512_permutex2var_epi64(u[j], hi, u[4 + j]));
    }
}

/* The tile's rows 256 bytes past off: the near future of every row (the
 * hardware prefetcher is slow to pick up 16 short streams). */
TGT static AI void prefetch_rows(const uint8_t *const rows[L], size_t off)
{
#pragma GCC unroll 16
    for (int r = 0; r < L; r++)
        _mm_prefetch((const char *)rows[r] + off + 256, _MM_HINT_T0);
}

TGT static AI __m512i load_pair(const uint8_t *a, const uint8_t *b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* 16 bytes of nibbles of rows a and b -> [a lo | a hi | b lo | b hi]. */
TGT static AI __m512i nibbles_pair(const uint8_t *a, const uint8_t *b)
{
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                        _mm_loadu_si128((const __m128i *)b), 1);
    __m512i z = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3),
                                         _mm512_castsi256_si512(v));
    z = _mm512_mask_srli_epi16(z, 0xFF00FF00u, z, 4);
    return _mm512_and_si512(z, _mm512_set1_epi8(15));
}

static inline float h2f(const void *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return eng_fp16_to_fp32(h);
}

/* Scales of the 16 rows, one per row at rows[r] + off (fp16), into S. */
TGT static AI void store_f16_scales(const uint8_t *const rows[L], size_t off, float *S)
{
    uint16_t h[L];
#pragma GCC unroll 16
    for (int r = 0; r < L; r++)
        memcpy(&h[r], rows[r] + off, 2);
    _mm512_store_ps(S, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h)));
}

/* c[i] lane r = r[r] lane i (a 16 x 16 transpose of floats). */
TGT static AI void transpose16(const __m512 r[16], __m512 c[16])
{
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < 16; g += 4) { /* u[g+e], 128-bit lane L: element 4L+e of rows g..g+3 */
        u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
        u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
        u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
        u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
    }
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++) {
        const __m512 v = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88);
        const __m512 w = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xdd);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88);
        const __m512 w2 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xdd);
        c[e] = _mm512_shuffle_f32x4(v, v2, 0x88);
        c[8 + e] = _mm512_shuffle_f32x4(v, v2, 0xdd);
        c[4 + e] = _mm512_shuffle_f32x4(w, w2, 0x88);
        c[12 + e] = _mm512_shuffle_f32x4(w, w2, 0xdd);
    }
}

/* Record b of the tile (each format's codes as unsigned bytes, its scales
 * S at +512 and M or S1 at +576); the K-quants write, at the first block
 * of a super-block, the scales of its 8 records. */
TGT static AI void blk_q8_0(const uint8_t *const rows[L], int64_t b, uint8_t *rec)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const size_t o = (size_t)b * sizeof(eng_block_q8_0);
    __m512i A[8];
    prefetch_rows(rows, o);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        A[k] = _mm512_xor_si512(load_pair(rows[k] + o + 2, rows[k + 8] + o + 2), flip);
    transpose_store(A, rec);
    store_f16_scales(rows, o, (float *)(rec + 512));
}

/* The nibble formats, bs bytes a block: nibbles at oq, fp16 d at 0; with
 * oh the 5th bits (a u32 at oh), with om an fp16 min at om as M (Q4_1,
 * Q5_1). */
TGT static AI void blk_nib(const uint8_t *const rows[L], int64_t b, uint8_t *rec, size_t bs,
                           size_t oq, size_t oh, size_t om)
{
    const __m512i bit4 = _mm512_set1_epi8(16);
    const size_t o = (size_t)b * bs;
    prefetch_rows(rows, o);
    __m512i A[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        A[k] = nibbles_pair(rows[k] + o + oq, rows[k + 8] + o + oq);
        if (oh) {
            uint32_t h0, h1;
            memcpy(&h0, rows[k] + o + oh, 4);
            memcpy(&h1, rows[k + 8] + o + oh, 4);
            A[k] = _mm512_mask_add_epi8(A[k], (__mmask64)h0 | (__mmask64)h1 << 32, A[k], bit4);
        }
    }
    transpose_store(A, rec);
    store_f16_scales(rows, o, (float *)(rec + 512));
    if (om)
        store_f16_scales(rows, o + om, (float *)(rec + 576));
}

/* Q4_K and Q5_K (layouts: gemm.c's gemm_k45): S = d*sc and M = dmin*m
 * per row and sub-block. */
TGT static AI void blk_k45(bool five, const uint8_t *const rows[L], int64_t b, uint8_t *rec)
{
    const __m512i m4 = _mm512_set1_epi8(15), one = _mm512_set1_epi8(1);
    const size_t sb = five ? sizeof(eng_block_q5_k) : sizeof(eng_block_q4_k), oq = five ? 48 : 16;
    const size_t o = (size_t)(b / 8) * sb, oj = o + oq + 32 * (size_t)(b % 8 / 2);
    const int j = (int)(b % 8);
    if (j % 2 == 0)
        prefetch_rows(rows, o + oq - 16 + 64 * (size_t)(j / 2));
    __m512i A[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        __m512i v = load_pair(rows[k] + oj, rows[k + 8] + oj);
        A[k] = _mm512_and_si512(j & 1 ? _mm512_srli_epi16(v, 4) : v, m4);
        if (five) {
            const __m512i h = load_pair(rows[k] + o + 16, rows[k + 8] + o + 16);
            A[k] = _mm512_or_si512(A[k], _mm512_slli_epi16(
                                             _mm512_and_si512(_mm512_srli_epi16(h, j), one), 4));
        }
    }
    transpose_store(A, rec);
    if (j)
        return;
    __m512 R[16], C[16]; /* row r: d*sc_0..7, dmin*m_0..7 (exact products) */
#pragma GCC unroll 16
    for (int r = 0; r < L; r++) {
        const uint8_t *p = rows[r] + o;
        uint8_t sm[16];
        eng_q4k_unpack_scales(p + 4, sm);
        const __m512 dd = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(h2f(p)),
                                               _mm512_set1_ps(h2f(p + 2)));
        R[r] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                 _mm_loadu_si128((const __m128i *)sm))), dd);
    }
    transpose16(R, C);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        _mm512_store_ps((float *)(rec + i * REC + 512), C[i]);
        _mm512_store_ps((float *)(rec + i * REC + 576), C[8 + i]);
    }
}

/* The halves form's scales, written at the first block of a super-block:
 * row r's 16 signed scales sc[r] times d[r] (exact products) to the 8
 * records' S and S1. */
TGT static AI void store_halves_scales(const int8_t *const sc[L], const float d[L], uint8_t *rec)
{
    __m512 R[16], C[16];
#pragma GCC unroll 16
    for (int r = 0; r < L; r++)
        R[r] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                 _mm_loadu_si128((const __m128i *)sc[r]))),
                             _mm512_set1_ps(d[r]));
    transpose16(R, C);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        _mm512_store_ps((float *)(rec + i * REC + 512), C[2 * i]);
        _mm512_store_ps((float *)(rec + i * REC + 576), C[2 * i + 1]);
    }
}

/* Q6_K: block k of a super-block is quarter c = k % 4 of half h = k / 4;
 * S and S1 = d*scales of its two groups of 16. */
TGT static AI void blk_q6_k(const uint8_t *const rows[L], int64_t b, uint8_t *rec)
{
    const __m512i m4 = _mm512_set1_epi8(15), m3 = _mm512_set1_epi8(3);
    const size_t o = (size_t)(b / 8) * sizeof(eng_block_q6_k);
    const int k8 = (int)(b % 8), h = k8 / 4, c = k8 % 4;
    if (k8 % 2 == 0)
        prefetch_rows(rows, o + 64 * (size_t)(k8 / 2));
    const size_t ol = o + 64 * h + 32 * (c & 1), oh = o + 128 + 32 * h;
    __m512i A[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        __m512i lo = load_pair(rows[k] + ol, rows[k + 8] + ol);
        __m512i hi = load_pair(rows[k] + oh, rows[k + 8] + oh);
        lo = _mm512_and_si512(c >> 1 ? _mm512_srli_epi16(lo, 4) : lo, m4);
        hi = _mm512_and_si512(_mm512_srli_epi16(hi, 2 * c), m3);
        A[k] = _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
    }
    transpose_store(A, rec);
    if (k8)
        return;
    const int8_t *sc[L];
    float d[L];
    for (int r = 0; r < L; r++) {
        const eng_block_q6_k *p = (const eng_block_q6_k *)(rows[r] + o);
        sc[r] = p->scales;
        d[r] = h2f(&p->d);
    }
    store_halves_scales(sc, d, rec);
}

/* Q3_K (gemm.c's block_q3_k): codes 0..7 = 2 bits of qs | hmask's bit << 2. */
TGT static AI void blk_q3_k(const uint8_t *const rows[L], int64_t b, uint8_t *rec)
{
    const __m512i m3 = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
    const size_t o = (size_t)(b / 8) * sizeof(eng_block_q3_k), oq = o + 32 + 32 * (size_t)(b % 8 / 4);
    const int k = (int)(b % 8);
    if (k % 4 == 0)
        prefetch_rows(rows, o + 64 * (size_t)(k / 4));
    __m512i A[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        const __m512i lo = _mm512_srli_epi16(load_pair(rows[j] + oq, rows[j + 8] + oq), 2 * (k % 4));
        const __m512i h = load_pair(rows[j] + o, rows[j + 8] + o); /* hmask */
        const __m512i hb = _mm512_and_si512(_mm512_srli_epi16(h, k), one);
        A[j] = _mm512_or_si512(_mm512_and_si512(lo, m3), _mm512_slli_epi16(hb, 2));
    }
    transpose_store(A, rec);
    if (k)
        return;
    int8_t buf[L][16];
    const int8_t *sc[L];
    float d[L];
    for (int r = 0; r < L; r++) {
        const eng_block_q3_k *p = (const eng_block_q3_k *)(rows[r] + o);
        eng_q3k_unpack_scales(p->scales, buf[r]);
        sc[r] = buf[r];
        d[r] = h2f(&p->d);
    }
    store_halves_scales(sc, d, rec);
}

/* The 32 nibbles at rows[r] + o of each row through the 16-byte table lut
 * (unsigned codes), the record's codes. */
TGT static AI void table_codes(const uint8_t *const rows[L], size_t o, __m512i lut, uint8_t *rec)
{
    prefetch_rows(rows, o);
    __m512i A[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        A[k] = _mm512_shuffle_epi8(lut, nibbles_pair(rows[k] + o, rows[k + 8] + o));
    transpose_store(A, rec);
}

/* MXFP4: nibbles through vpshufb to the doubled E2M1 values + 16. */
TGT static AI void blk_mxfp4(const uint8_t *const rows[L], int64_t b, uint8_t *rec)
{
    const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(
        16, 17, 18, 19, 20, 22, 24, 28, 16, 15, 14, 13, 12, 10, 8, 4));
    const size_t o = (size_t)b * sizeof(eng_block_mxfp4);
    table_codes(rows, o + 1, lut, rec);
    float *S = (float *)(rec + 512);
#pragma GCC unroll 16
    for (int r = 0; r < L; r++)
        S[r] = eng_e8m0_half(rows[r][o]);
}

/* The IQ4_NL codebook + 128 (Q8_0's int form, offset 128). */
TGT static AI __m512i iq4_lut(void)
{
    return _mm512_xor_si512(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)eng_kvalues_iq4nl)),
                            _mm512_set1_epi8((char)0x80));
}

TGT static AI void blk_iq4_nl(const uint8_t *const rows[L], int64_t b, uint8_t *rec)
{
    const size_t o = (size_t)b * sizeof(eng_block_iq4_nl);
    table_codes(rows, o + 2, iq4_lut(), rec);
    store_f16_scales(rows, o, (float *)(rec + 512));
}

/* IQ4_XS: IQ4_NL's codes per sub-block ib = b % 8; at ib = 0 the S =
 * d * (ls - 32) of the super-block's 8 records (gemm.c). */
TGT static AI void blk_iq4_xs(const uint8_t *const rows[L], int64_t b, uint8_t *rec)
{
    const size_t o = (size_t)(b / 8) * sizeof(eng_block_iq4_xs);
    const int ib = (int)(b % 8);
    table_codes(rows, o + 8 + 16 * (size_t)ib, iq4_lut(), rec);
    if (ib)
        return;
    __m512 R[16], C[16]; /* row r: the 8 scales in lanes 0..7 */
#pragma GCC unroll 16
    for (int r = 0; r < L; r++) {
        const eng_block_iq4_xs *p = (const eng_block_iq4_xs *)(rows[r] + o);
        float ls[16] = {0};
        for (int i = 0; i < 8; i++)
            ls[i] = (float)eng_iq4xs_scale(p, i);
        R[r] = _mm512_mul_ps(_mm512_loadu_ps(ls), _mm512_set1_ps(h2f(&p->d)));
    }
    transpose16(R, C);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        _mm512_store_ps((float *)(rec + i * REC + 512), C[i]);
}

/* Q2_K (gemm.c's gemm_q2_k): codes sc*q; S = d, M = dmin and the pair
 * (m_0, m_1) of int16 mins per row. */
TGT static AI __m256i q2k_scales(const uint8_t *sm)
{
    return _mm256_setr_m128i(_mm_set1_epi16(sm[0] & 15), _mm_set1_epi16(sm[1] & 15));
}

TGT static AI void blk_q2_k(const uint8_t *const rows[L], int64_t b, uint8_t *rec)
{
    const __m512i m3 = _mm512_set1_epi8(3);
    const size_t o = (size_t)(b / 8) * sizeof(eng_block_q2_k), oq = o + 16 + 32 * (size_t)(b % 8 / 4);
    const int k = (int)(b % 8);
    if (k % 4 == 0)
        prefetch_rows(rows, o + 64 * (size_t)(k / 4));
    __m512i A[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        const __m512i q = _mm512_and_si512(
            _mm512_srli_epi16(load_pair(rows[j] + oq, rows[j + 8] + oq), 2 * (k % 4)), m3);
        /* bytes q <= 3 times sc <= 15 in 16-bit words: no carry between bytes */
        const __m256i s0 = q2k_scales(rows[j] + o + 2 * k), s1 = q2k_scales(rows[j + 8] + o + 2 * k);
        A[j] = _mm512_mullo_epi16(q, _mm512_inserti64x4(_mm512_castsi256_si512(s0), s1, 1));
    }
    transpose_store(A, rec);
    int32_t *mp = (int32_t *)(rec + 640);
#pragma GCC unroll 16
    for (int r = 0; r < L; r++) {
        const uint8_t *sm = rows[r] + o + 2 * k;
        mp[r] = (sm[0] >> 4) | (sm[1] >> 4) << 16;
    }
    store_f16_scales(rows, o + 80, (float *)(rec + 512));
    store_f16_scales(rows, o + 82, (float *)(rec + 576));
}

typedef enum {
    F_NONE, F_Q8_0, F_Q4_0, F_Q5_0, F_Q4_K, F_Q6_K, F_MXFP4, F_Q5_K, F_IQ4_NL, F_IQ4_XS,
    F_Q3_K, F_Q2_K, F_Q4_1, F_Q5_1, F_N
} fmt;

TGT static AI void pack_blk(fmt f, const uint8_t *const rows[L], int64_t b, uint8_t *rec)
{
    switch (f) {
    case F_Q8_0: blk_q8_0(rows, b, rec); break;
    case F_Q4_0: blk_nib(rows, b, rec, sizeof(eng_block_q4_0), 2, 0, 0); break;
    case F_Q5_0: blk_nib(rows, b, rec, sizeof(eng_block_q5_0), 6, 2, 0); break;
    case F_Q4_1: blk_nib(rows, b, rec, sizeof(eng_block_q4_1), 4, 0, 2); break;
    case F_Q5_1: blk_nib(rows, b, rec, sizeof(eng_block_q5_1), 8, 4, 2); break;
    case F_Q4_K: blk_k45(false, rows, b, rec); break;
    case F_Q5_K: blk_k45(true, rows, b, rec); break;
    case F_Q6_K: blk_q6_k(rows, b, rec); break;
    case F_MXFP4: blk_mxfp4(rows, b, rec); break;
    case F_IQ4_NL: blk_iq4_nl(rows, b, rec); break;
    case F_IQ4_XS: blk_iq4_xs(rows, b, rec); break;
    case F_Q3_K: blk_q3_k(rows, b, rec); break;
    case F_Q2_K: blk_q2_k(rows, b, rec); break;
    default: break;
    }
}

/* ---- products ------------------------------------------------------------- */

/* The chunk's data: quants q + (b*N + t)*32, per-block arrays [b*N + t]. */
typedef struct chunk {
    const int8_t *q;
    const float *d, *sf, *s;
    const int32_t *sn, *hn, *hp;
    const char *pf;       /* the next tile's bytes, pf_step per block (or NULL) */
    size_t pf_step;
} chunk;

TGT static AI __m512i bq(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* 4 dwords j0..j0+3 of a block into s. */
TGT static AI __m512i dot4(__m512i s, const __m512i *w, const int8_t *q)
{
    s = _mm512_dpbusd_epi32(s, w[0], bq(q));
    s = _mm512_dpbusd_epi32(s, w[1], bq(q + 4));
    s = _mm512_dpbusd_epi32(s, w[2], bq(q + 8));
    return _mm512_dpbusd_epi32(s, w[3], bq(q + 12));
}

/* The products of a chunk of N activation rows with the tile's packed
 * blocks; with fm != F_NONE each block is packed first from the rows (the
 * first chunk), so the shuffles of packing and the vpdpbusd of the products,
 * which use different ports, overlap. */
TGT static AI void compute(fmt fm, kind kd, int sh, const uint8_t *const rows[L], uint8_t *rec,
                           int64_t nb, chunk x, float *Y, int64_t ldy, __mmask16 m, const int N)
{
    __m512 acc[16];
#pragma GCC unroll 16
    for (int t = 0; t < N; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, rec += REC) {
        pack_blk(fm, rows, b, rec);
        __m512i w[8];
    #pragma GCC unroll 16
        for (int j = 0; j < 8; j++)
            w[j] = _mm512_load_si512((const __m512i *)(rec + 64 * j));
        const __m512 S = _mm512_load_ps((const float *)(rec + 512));
        const __m512 M = _mm512_load_ps((const float *)(rec + 576));
        const __m512i MP = kd == K_PAIR ? _mm512_load_si512((const __m512i *)(rec + 640))
                                        : _mm512_setzero_si512();
        const int64_t i0 = b * N;
        if (x.pf) /* the next tile streams into L2 while this one computes */
            for (size_t k = 0; k < x.pf_step; k += 64)
                _mm_prefetch(x.pf + (size_t)b * x.pf_step + k, _MM_HINT_T1);
#pragma GCC unroll 16
        for (int t = 0; t < N; t++) {
            const int8_t *q = x.q + (i0 + t) * 32;
            const __m512 dx = _mm512_set1_ps(x.d[i0 + t]);
            __m512 f;
            if (kd == K_HALVES) {
                __m512i s0 = _mm512_slli_epi32(_mm512_set1_epi32(x.hn[2 * (i0 + t)]), sh);
                __m512i s1 = _mm512_slli_epi32(_mm512_set1_epi32(x.hn[2 * (i0 + t) + 1]), sh);
                s0 = dot4(s0, w, q);
                s1 = dot4(s1, w + 4, q + 16);
                f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), M,
                                    _mm512_mul_ps(_mm512_cvtepi32_ps(s0), S));
            } else {
                __m512i s = kd == K_INT
                                ? _mm512_slli_epi32(_mm512_set1_epi32(x.sn[i0 + t]), sh)
                                : _mm512_setzero_si512();
                s = dot4(dot4(s, w, q), w + 4, q + 16);
                f = _mm512_mul_ps(_mm512_cvtepi32_ps(s), S);
                if (kd == K_MIN)
                    f = _mm512_fnmadd_ps(M, _mm512_set1_ps(x.sf[i0 + t]), f);
                if (kd == K_PAIR) /* m_0 hn_0 + m_1 hn_1, exact */
                    f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_madd_epi16(
                                            MP, _mm512_set1_epi32(x.hp[i0 + t]))),
                                        M, f);
            }
            acc[t] = _mm512_fmadd_ps(f, dx, acc[t]);
            if (kd == K_Q1) /* the min times x's s */
                acc[t] = _mm512_fmadd_ps(M, _mm512_set1_ps(x.s[i0 + t]), acc[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < N; t++)
        _mm512_mask_storeu_ps(Y + t * ldy, m, acc[t]);
}

typedef void (*compute_fn)(const uint8_t *const rows[L], uint8_t *rec, int64_t nb, chunk x,
                           float *Y, int64_t ldy, __mmask16 m);

/* Instances for 1..16 activation rows: packing and products (F, with its
 * kind and offset shift) and products alone (KD). */
#define INST(NAME, F, KD, SH, N)                                                             \
    TGT static void NAME##_##N(const uint8_t *const rows[L], uint8_t *rec, int64_t nb,       \
                               chunk x, float *Y, int64_t ldy, __mmask16 m)                  \
    {                                                                                        \
        compute(F, KD, SH, rows, rec, nb, x, Y, ldy, m, N);                                  \
    }
#define INST_ALL(NAME, F, KD, SH)                                                            \
    INST(NAME, F, KD, SH, 1) INST(NAME, F, KD, SH, 2) INST(NAME, F, KD, SH, 3)               \
    INST(NAME, F, KD, SH, 4) INST(NAME, F, KD, SH, 5) INST(NAME, F, KD, SH, 6)               \
    INST(NAME, F, KD, SH, 7) INST(NAME, F, KD, SH, 8) INST(NAME, F, KD, SH, 9)               \
    INST(NAME, F, KD, SH, 10) INST(NAME, F, KD, SH, 11) INST(NAME, F, KD, SH, 12)            \
    INST(NAME, F, KD, SH, 13) INST(NAME, F, KD, SH, 14) INST(NAME, F, KD, SH, 15)            \
    INST(NAME, F, KD, SH, 16)
#define TABLE(NAME)                                                                          \
    {NULL, NAME##_1, NAME##_2, NAME##_3, NAME##_4, NAME##_5, NAME##_6, NAME##_7, NAME##_8,  \
     NAME##_9, NAME##_10, NAME##_11, NAME##_12, NAME##_13, NAME##_14, NAME##_15, NAME##_16}

INST_ALL(p_q8_0, F_Q8_0, K_INT, 7)
INST_ALL(p_q4_0, F_Q4_0, K_INT, 3)
INST_ALL(p_q5_0, F_Q5_0, K_INT, 4)
INST_ALL(p_q4_k, F_Q4_K, K_MIN, 0)
INST_ALL(p_q5_k, F_Q5_K, K_MIN, 0)
INST_ALL(p_q6_k, F_Q6_K, K_HALVES, 5)
INST_ALL(p_mxfp4, F_MXFP4, K_INT, 4)
INST_ALL(p_iq4_nl, F_IQ4_NL, K_INT, 7)
INST_ALL(p_iq4_xs, F_IQ4_XS, K_INT, 7)
INST_ALL(p_q3_k, F_Q3_K, K_HALVES, 2)
INST_ALL(p_q2_k, F_Q2_K, K_PAIR, 0)
INST_ALL(p_q4_1, F_Q4_1, K_Q1, 0)
INST_ALL(p_q5_1, F_Q5_1, K_Q1, 0)
INST_ALL(c_q8_0, F_NONE, K_INT, 7)
INST_ALL(c_q4_0, F_NONE, K_INT, 3)
INST_ALL(c_q5_0, F_NONE, K_INT, 4)
INST_ALL(c_min, F_NONE, K_MIN, 0)
INST_ALL(c_halves, F_NONE, K_HALVES, 5)
INST_ALL(c_halves_q3_k, F_NONE, K_HALVES, 2)
INST_ALL(c_pair, F_NONE, K_PAIR, 0)
INST_ALL(c_q1, F_NONE, K_Q1, 0)

/* [format][rows]: the first chunk packs, the others reuse the packed tile. */
static const compute_fn first[F_N][17] = {
    [F_Q8_0] = TABLE(p_q8_0), [F_Q4_0] = TABLE(p_q4_0), [F_Q5_0] = TABLE(p_q5_0),
    [F_Q4_K] = TABLE(p_q4_k), [F_Q6_K] = TABLE(p_q6_k), [F_MXFP4] = TABLE(p_mxfp4),
    [F_Q5_K] = TABLE(p_q5_k), [F_IQ4_NL] = TABLE(p_iq4_nl),
    [F_IQ4_XS] = TABLE(p_iq4_xs), [F_Q3_K] = TABLE(p_q3_k),
    [F_Q2_K] = TABLE(p_q2_k), [F_Q4_1] = TABLE(p_q4_1), [F_Q5_1] = TABLE(p_q5_1)};
static const compute_fn later[F_N][17] = {
    [F_Q8_0] = TABLE(c_q8_0), [F_Q4_0] = TABLE(c_q4_0), [F_Q5_0] = TABLE(c_q5_0),
    [F_Q4_K] = TABLE(c_min), [F_Q6_K] = TABLE(c_halves),
    [F_MXFP4] = TABLE(c_q5_0), /* the int form with offset 16, as Q5_0 */
    [F_Q5_K] = TABLE(c_min), [F_IQ4_NL] = TABLE(c_q8_0), /* offset 128 */
    [F_IQ4_XS] = TABLE(c_q8_0), [F_Q3_K] = TABLE(c_halves_q3_k),
    [F_Q2_K] = TABLE(c_pair), [F_Q4_1] = TABLE(c_q1), [F_Q5_1] = TABLE(c_q1)};

/* ---- driver ---------------------------------------------------------------- */

TGT static void run(fmt f, const void *w, size_t rb, const eng_qx *x, float *Y, int64_t ldy,
                    int64_t r0, int64_t r1, void *scratch)
{
    uint8_t *rec = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    const int64_t nb = x->n / 32;
    for (int64_t r = r0; r < r1; r += L) {
        const int nr = r1 - r < L ? (int)(r1 - r) : L;
        const uint8_t *rows[L];
        for (int i = 0; i < L; i++) /* rows past the end repeat the last one */
            rows[i] = (const uint8_t *)w + (size_t)(r + (i < nr ? i : nr - 1)) * rb;
        const __mmask16 m = (__mmask16)((1u << nr) - 1);
        /* the next 16 rows: this task's next tile or, most often, the next
         * task's, which the pool tends to give to this thread; prefetching
         * past the matrix is harmless */
        const char *next = (const char *)w + (size_t)(r + L) * rb;
        const size_t step = ((size_t)L * rb / (size_t)nb + 63) & ~(size_t)63;
        for (int64_t c = 0; c * x->kc < x->T; c++) {
            const int64_t base = c * x->kc * nb;
            const chunk ch = {x->q + base * 32, x->d + base, x->sf + base, x->s + base, x->sn + base,
                              x->hn + 2 * base, x->hp + base, c == 0 ? next : NULL, step};
            (c == 0 ? first : later)[f][eng_qx_chunk_rows(x, c)](rows, rec, nb, ch,
                                                                 Y + c * x->kc * ldy + r, ldy, m);
        }
    }
}

#define GEMM(NAME, F)                                                                        \
    TGT static void NAME(const void *w, size_t rb, const eng_qx *x, float *Y, int64_t ldy,   \
                         int64_t r0, int64_t r1, void *scratch)                              \
    {                                                                                        \
        run(F, w, rb, x, Y, ldy, r0, r1, scratch);                                           \
    }

GEMM(gemm_q8_0, F_Q8_0)
GEMM(gemm_q4_0, F_Q4_0)
GEMM(gemm_q5_0, F_Q5_0)
GEMM(gemm_q4_k, F_Q4_K)
GEMM(gemm_q5_k, F_Q5_K)
GEMM(gemm_q6_k, F_Q6_K)
GEMM(gemm_mxfp4, F_MXFP4)
GEMM(gemm_iq4_nl, F_IQ4_NL)
GEMM(gemm_iq4_xs, F_IQ4_XS)
GEMM(gemm_q3_k, F_Q3_K)
GEMM(gemm_q2_k, F_Q2_K)
GEMM(gemm_q4_1, F_Q4_1)
GEMM(gemm_q5_1, F_Q5_1)

/* ---- float weights ---------------------------------------------------------- */

/* weight rows per register block; elements of a row per panel (f16/bf16
 * rows are widened a panel at a time into the thread's scratch, L1) */
enum { FR = 8, FP = 512 };
typedef enum { W_F32, W_F16, W_BF16 } wkind;

/* n f16/bf16 values at s widened exactly to f32 at d. */
TGT static AI void widen(wkind wk, const uint16_t *s, float *d, int64_t n)
{
    int64_t k = 0;
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(d + k, wk == W_F16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + k))) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s + k))), 16)));
    for (; k < n; k++)
        d[k] = wk == W_F16 ? eng_fp16_to_fp32(s[k]) : eng_bf16_to_fp32(s[k]);
}

/* Y rows [0, nr) of the FR weight rows for every chunk of x: tokens in the
 * lanes, each weight broadcast from memory into an fma. */
TGT static AI void float_rows(wkind wk, const char *const rows[FR], int nr, const eng_xt *x,
                              float *Y, int64_t ldy, float *buf)
{
    const int64_t n = x->n, fp = n < FP ? n : FP; /* scratch: FR * fp floats */
    for (int64_t c = 0; c * x->kc < x->T; c++) {
        const float *xt = x->x + c * x->kc * n;
        __m512 acc[FR];
#pragma GCC unroll 8
        for (int r = 0; r < FR; r++)
            acc[r] = _mm512_setzero_ps();
        for (int64_t k0 = 0; k0 < n; k0 += FP) {
            const int64_t kn = n - k0 < FP ? n - k0 : FP;
            const float *wr[FR];
#pragma GCC unroll 8
            for (int r = 0; r < FR; r++) {
                if (wk == W_F32) {
                    wr[r] = (const float *)rows[r] + k0;
                } else {
                    widen(wk, (const uint16_t *)rows[r] + k0, buf + r * fp, kn);
                    wr[r] = buf + r * fp;
                }
            }
#pragma GCC unroll 2
            for (int64_t k = 0; k < kn; k++) {
                if (wk == W_F32 && c == 0 && k % 16 == 0) /* 8 streams: help the prefetcher */
#pragma GCC unroll 8
                    for (int r = 0; r < FR; r++)
                        _mm_prefetch((const char *)(wr[r] + k) + 512, _MM_HINT_T0);
                const __m512 xv = _mm512_load_ps(xt + (k0 + k) * 16);
#pragma GCC unroll 8
                for (int r = 0; r < FR; r++)
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(wr[r][k]), xv, acc[r]);
            }
        }
        float tmp[FR][16] __attribute__((aligned(64)));
#pragma GCC unroll 8
        for (int r = 0; r < FR; r++)
            _mm512_store_ps(tmp[r], acc[r]);
        const int64_t nc = x->T - c * x->kc < x->kc ? x->T - c * x->kc : x->kc;
        for (int64_t t = 0; t < nc; t++)
            for (int r = 0; r < nr; r++)
                Y[(c * x->kc + t) * ldy + r] = tmp[r][t];
    }
}

TGT static AI void run_f(wkind wk, const void *w, size_t rb, const eng_xt *x, float *Y,
                         int64_t ldy, int64_t r0, int64_t r1, void *scratch)
{
    float *buf = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    for (int64_t r = r0; r < r1; r += FR) {
        const int nr = r1 - r < FR ? (int)(r1 - r) : FR;
        const char *rows[FR];
        for (int i = 0; i < FR; i++) /* rows past the end repeat the last one */
            rows[i] = (const char *)w + (size_t)(r + (i < nr ? i : nr - 1)) * rb;
        float_rows(wk, rows, nr, x, Y + r, ldy, buf);
    }
}

#define GEMM_F(NAME, WK)                                                                     \
    TGT static void NAME(const void *w, size_t rb, const eng_xt *x, float *Y, int64_t ldy,   \
                         int64_t r0, int64_t r1, void *scratch)                              \
    {                                                                                        \
        run_f(WK, w, rb, x, Y, ldy, r0, r1, scratch);                                        \
    }
GEMM_F(gemm_f32, W_F32)
GEMM_F(gemm_f16, W_F16)
GEMM_F(gemm_bf16, W_BF16)

const eng_gemm_kernels eng_gemm_avx512 = {
    .simd = ENG_SIMD_AVX512,
    .kc = 16,
    .gemm = {[ENG_TYPE_Q8_0] = gemm_q8_0, [ENG_TYPE_Q4_0] = gemm_q4_0,
             [ENG_TYPE_Q5_0] = gemm_q5_0, [ENG_TYPE_Q4_K] = gemm_q4_k,
             [ENG_TYPE_Q6_K] = gemm_q6_k, [ENG_TYPE_MXFP4] = gemm_mxfp4,
             [ENG_TYPE_Q5_K] = gemm_q5_k, [ENG_TYPE_IQ4_NL] = gemm_iq4_nl,
             [ENG_TYPE_IQ4_XS] = gemm_iq4_xs, [ENG_TYPE_Q3_K] = gemm_q3_k,
             [ENG_TYPE_Q2_K] = gemm_q2_k, [ENG_TYPE_Q4_1] = gemm_q4_1,
             [ENG_TYPE_Q5_1] = gemm_q5_1},
    .kc_f = 16,
    .gemm_f = {[ENG_TYPE_F32] = gemm_f32, [ENG_TYPE_F16] = gemm_f16, [ENG_TYPE_BF16] = gemm_bf16},
};
