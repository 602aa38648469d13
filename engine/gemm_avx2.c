/*
 * gemm_avx2.c — integer prefill kernels with AVX2 (gemm.h), for CPUs
 * without AVX-512 VNNI (Zen 1-3, Haswell..Comet Lake).
 *
 * The structure of gemm_avx512.c with 8 weight rows per tile (one per
 * 32-bit lane of a ymm register) and vpmaddubsw + vpmaddwd in place of
 * vpdpbusd. vpmaddubsw saturates its 16-bit pair sums, so:
 *   Q8_0, IQ4_NL and IQ4_XS (codes up to 241 as unsigned) keep the signed codes and
 *     use the sign trick of ggml's x86 dots
 *     (|w| times x with w's sign, |w x| <= 127 * 128, a pair < 2^15), one
 *     vpmaddwd per 4 bytes; its integer is sum w*x directly, which equals
 *     the reference's sum (w+128)*x - 128*sum x;
 *   the other formats have unsigned codes below 64, so two vpmaddubsw
 *     results (4 products, |sum| <= 4 * 63 * 127 < 2^15) are added in 16
 *     bits before one vpmaddwd.
 * With 16 registers the codes are reloaded from the packed tile (L1) for
 * each activation row instead of being held; a chunk is 8 activation rows,
 * each with its f32 accumulator in a register.
 */
#include "engine/gemm.h"
#include "engine/kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define TGT __attribute__((target("avx2,fma,f16c")))
#define AI __attribute__((always_inline)) inline

/* rows per tile; packed bytes per block: codes, S, M/S1, signed codes
 * (K_SIGNED) or the int16 pairs of mins (K_PAIR) */
enum { L = 8, REC = 576, OFF_S = 256, OFF_M = 288, OFF_SIGNED = 320, OFF_MP = 320 };

typedef enum { K_SIGNED, K_INT, K_MIN, K_HALVES, K_PAIR, K_Q1 } kind;

/* ---- packing --------------------------------------------------------------- */

/* R[r] = 32 code bytes of row r -> rec[32 j + 4 r + i] = byte 4 j + i of row r. */
TGT static AI void transpose_store(const __m256i R[8], uint8_t *rec)
{
    __m256i t[8], u[8];
#pragma GCC unroll 16
    for (int k = 0; k < 8; k += 4) {
        t[k] = _mm256_unpacklo_epi32(R[k], R[k + 1]);
        t[k + 1] = _mm256_unpackhi_epi32(R[k], R[k + 1]);
        t[k + 2] = _mm256_unpacklo_epi32(R[k + 2], R[k + 3]);
        t[k + 3] = _mm256_unpackhi_epi32(R[k + 2], R[k + 3]);
        u[k] = _mm256_unpacklo_epi64(t[k], t[k + 2]);
        u[k + 1] = _mm256_unpackhi_epi64(t[k], t[k + 2]);
        u[k + 2] = _mm256_unpacklo_epi64(t[k + 1], t[k + 3]);
        u[k + 3] = _mm256_unpackhi_epi64(t[k + 1], t[k + 3]);
    }
#pragma GCC unroll 16
    for (int j = 0; j < 4; j++) {
        _mm256_store_si256((__m256i *)(rec + 32 * j), _mm256_permute2x128_si256(u[j], u[4 + j], 0x20));
        _mm256_store_si256((__m256i *)(rec + 32 * (j + 4)),
                           _mm256_permute2x128_si256(u[j], u[4 + j], 0x31));
    }
}

/* The tile's rows 256 bytes past off (see gemm_avx512.c). */
TGT static AI void prefetch_rows(const uint8_t *const rows[L], size_t off)
{
#pragma GCC unroll 16
    for (int r = 0; r < L; r++)
        _mm_prefetch((const char *)rows[r] + off + 256, _MM_HINT_T0);
}

TGT static AI __m256i load32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* 16 bytes of nibbles -> [lo nibbles | hi nibbles]. */
TGT static AI __m256i nibbles(const uint8_t *p)
{
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    v = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/* 0xFF in byte j where bit j of the 32-bit little-endian word at p is set
 * (ggml's bytes_from_bits_32). */
TGT static AI __m256i bytes_from_bits(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

static inline float h2f(const void *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return eng_fp16_to_fp32(h);
}

TGT static AI void store_f16_scales(const uint8_t *const rows[L], size_t off, float *S)
{
    uint16_t h[L];
#pragma GCC unroll 16
    for (int r = 0; r < L; r++)
        memcpy(&h[r], rows[r] + off, 2);
    _mm256_store_ps(S, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
}

/* c[i] lane r = r[r] lane i (an 8 x 8 transpose of floats). */
TGT static AI void transpose8(const __m256 r[8], __m256 c[8])
{
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 2
    for (int g = 0; g < 8; g += 4) { /* u[g+e], 128-bit lane L: element 4L+e of rows g..g+3 */
        u[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xee);
        u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++) {
        c[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
        c[4 + e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
    }
}

/* Row r's 16 scale values (lo[r]: the first 8, hi[r]: the next) into the
 * 8 records' S and M lanes: S of record i is value i and M value 8 + i
 * (Q4_K's scales and mins), or, interleaved, values 2i and 2i + 1 (Q6_K's
 * two halves). */
TGT static AI void store_scales(const __m256 lo[8], const __m256 hi[8], uint8_t *rec,
                                bool interleaved)
{
    __m256 c[16];
    transpose8(lo, c);
    transpose8(hi, c + 8);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        _mm256_store_ps((float *)(rec + i * REC + OFF_S), c[interleaved ? 2 * i : i]);
        _mm256_store_ps((float *)(rec + i * REC + OFF_M), c[interleaved ? 2 * i + 1 : 8 + i]);
    }
}

/* The sign trick's codes (K_SIGNED): |w| as the codes, w at OFF_SIGNED. */
TGT static AI void store_signed(const __m256i R[8], uint8_t *rec)
{
    __m256i A[8];
#pragma GCC unroll 16
    for (int r = 0; r < 8; r++)
        A[r] = _mm256_abs_epi8(R[r]);
    transpose_store(A, rec);
    transpose_store(R, rec + OFF_SIGNED);
}

TGT static void pack_q8_0(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    for (int64_t b = 0; b < nb; b++, rec += REC) {
        const size_t o = (size_t)b * sizeof(eng_block_q8_0);
        prefetch_rows(rows, o);
        __m256i R[8];
#pragma GCC unroll 16
        for (int r = 0; r < 8; r++)
            R[r] = load32(rows[r] + o + 2);
        store_signed(R, rec);
        store_f16_scales(rows, o, (float *)(rec + OFF_S));
    }
}

/* IQ4_NL: the codebook values (-127..113, up to 241 as unsigned codes,
 * too big for vpmaddubsw's 16-bit pair sums) take Q8_0's sign trick. */
TGT static AI void iq4_codes(const uint8_t *const rows[L], size_t o, uint8_t *rec)
{
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)eng_kvalues_iq4nl));
    __m256i R[8];
#pragma GCC unroll 16
    for (int r = 0; r < 8; r++)
        R[r] = _mm256_shuffle_epi8(lut, nibbles(rows[r] + o));
    store_signed(R, rec);
}

TGT static void pack_iq4_nl(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    for (int64_t b = 0; b < nb; b++, rec += REC) {
        const size_t o = (size_t)b * sizeof(eng_block_iq4_nl);
        prefetch_rows(rows, o);
        iq4_codes(rows, o + 2, rec);
        store_f16_scales(rows, o, (float *)(rec + OFF_S));
    }
}

/* The nibble formats, bs bytes a block: nibbles at oq, fp16 d at 0; with
 * oh the 5th bits (a u32 at oh), with om an fp16 min at om as M (Q4_1,
 * Q5_1). */
TGT static AI void pack_nib(const uint8_t *const rows[L], int64_t nb, uint8_t *rec, size_t bs,
                            size_t oq, size_t oh, size_t om)
{
    const __m256i bit4 = _mm256_set1_epi8(16);
    for (int64_t b = 0; b < nb; b++, rec += REC) {
        const size_t o = (size_t)b * bs;
        prefetch_rows(rows, o);
        __m256i R[8];
#pragma GCC unroll 16
        for (int r = 0; r < 8; r++) {
            R[r] = nibbles(rows[r] + o + oq);
            if (oh)
                R[r] = _mm256_or_si256(R[r], _mm256_and_si256(bytes_from_bits(rows[r] + o + oh), bit4));
        }
        transpose_store(R, rec);
        store_f16_scales(rows, o, (float *)(rec + OFF_S));
        if (om)
            store_f16_scales(rows, o + om, (float *)(rec + OFF_M));
    }
}

#define PACK_NIB(NAME, BLOCK, OQ, OH, OM)                                                    \
    TGT static void NAME(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)             \
    {                                                                                        \
        pack_nib(rows, nb, rec, sizeof(BLOCK), OQ, OH, OM);                                  \
    }
PACK_NIB(pack_q4_0, eng_block_q4_0, 2, 0, 0)
PACK_NIB(pack_q5_0, eng_block_q5_0, 6, 2, 0)
PACK_NIB(pack_q4_1, eng_block_q4_1, 4, 0, 2)
PACK_NIB(pack_q5_1, eng_block_q5_1, 8, 4, 2)

/* MXFP4: nibbles through vpshufb to the doubled E2M1 values + 16 (below
 * 64, as the int kind's 16-bit sums need). */
TGT static void pack_mxfp4(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_setr_epi8(
        16, 17, 18, 19, 20, 22, 24, 28, 16, 15, 14, 13, 12, 10, 8, 4));
    for (int64_t b = 0; b < nb; b++, rec += REC) {
        const size_t o = (size_t)b * sizeof(eng_block_mxfp4);
        prefetch_rows(rows, o);
        __m256i R[8];
#pragma GCC unroll 16
        for (int r = 0; r < 8; r++)
            R[r] = _mm256_shuffle_epi8(lut, nibbles(rows[r] + o + 1));
        transpose_store(R, rec);
        float *S = (float *)(rec + OFF_S);
#pragma GCC unroll 8
        for (int r = 0; r < L; r++)
            S[r] = eng_e8m0_half(rows[r][o]);
    }
}

/* Q4_K and Q5_K (gemm.c's gemm_k45 for the layouts): codes, then per
 * super-block the S and M of its 8 records. */
TGT static AI void pack_k45(bool five, const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
    const size_t sb = five ? sizeof(eng_block_q5_k) : sizeof(eng_block_q4_k), oq = five ? 48 : 16;
    for (int64_t s = 0; s < nb / 8; s++) {
        const size_t o = (size_t)s * sb;
        for (int j = 0; j < 8; j++, rec += REC) {
            if (j % 2 == 0)
                prefetch_rows(rows, o + oq - 16 + 64 * (size_t)(j / 2));
            __m256i R[8];
#pragma GCC unroll 16
            for (int r = 0; r < 8; r++) {
                __m256i v = load32(rows[r] + o + oq + 32 * (j / 2));
                R[r] = _mm256_and_si256(j & 1 ? _mm256_srli_epi16(v, 4) : v, m4);
                if (five) {
                    const __m256i h = load32(rows[r] + o + 16); /* qh */
                    R[r] = _mm256_or_si256(R[r], _mm256_slli_epi16(
                                                     _mm256_and_si256(_mm256_srli_epi16(h, j), one), 4));
                }
            }
            transpose_store(R, rec);
        }
        __m256 lo[8], hi[8]; /* row r: d*sc_0..7 and dmin*m_0..7 (exact products) */
#pragma GCC unroll 8
        for (int r = 0; r < L; r++) {
            const uint8_t *p = rows[r] + o;
            uint8_t sm[16];
            eng_q4k_unpack_scales(p + 4, sm);
            const __m128i v = _mm_loadu_si128((const __m128i *)sm);
            lo[r] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)),
                                  _mm256_set1_ps(h2f(p)));
            hi[r] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8))),
                                  _mm256_set1_ps(h2f(p + 2)));
        }
        store_scales(lo, hi, rec - 8 * REC, false);
    }
}

TGT static void pack_q4_k(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    pack_k45(false, rows, nb, rec);
}

TGT static void pack_q5_k(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    pack_k45(true, rows, nb, rec);
}

/* The halves form's scales: row r's 16 signed scales sc[r] times d[r]
 * (exact products) to the 8 records' S and S1. */
TGT static AI void store_halves_scales(const int8_t *const sc[L], const float d[L], uint8_t *rec)
{
    __m256 lo[8], hi[8];
#pragma GCC unroll 8
    for (int r = 0; r < L; r++) {
        const __m128i v = _mm_loadu_si128((const __m128i *)sc[r]);
        const __m256 dr = _mm256_set1_ps(d[r]);
        lo[r] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), dr);
        hi[r] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8))), dr);
    }
    store_scales(lo, hi, rec, true);
}

TGT static void pack_q6_k(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    const __m256i m4 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3);
    for (int64_t s = 0; s < nb / 8; s++) {
        const size_t o = (size_t)s * sizeof(eng_block_q6_k);
        for (int k8 = 0; k8 < 8; k8++, rec += REC) {
            if (k8 % 2 == 0)
                prefetch_rows(rows, o + 64 * (size_t)(k8 / 2));
            const int h = k8 / 4, c = k8 % 4;
            const size_t ol = o + 64 * h + 32 * (c & 1), oh = o + 128 + 32 * h;
            __m256i R[8];
#pragma GCC unroll 16
            for (int r = 0; r < 8; r++) {
                __m256i lo = load32(rows[r] + ol), hi = load32(rows[r] + oh);
                lo = _mm256_and_si256(c >> 1 ? _mm256_srli_epi16(lo, 4) : lo, m4);
                hi = _mm256_and_si256(_mm256_srli_epi16(hi, 2 * c), m3);
                R[r] = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
            }
            transpose_store(R, rec);
        }
        const int8_t *sc[L];
        float d[L];
        for (int r = 0; r < L; r++) {
            const eng_block_q6_k *p = (const eng_block_q6_k *)(rows[r] + o);
            sc[r] = p->scales;
            d[r] = h2f(&p->d);
        }
        store_halves_scales(sc, d, rec - 8 * REC);
    }
}

/* Q3_K (gemm.c's block_q3_k): codes 0..7 = 2 bits of qs | hmask's bit << 2. */
TGT static void pack_q3_k(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int64_t s = 0; s < nb / 8; s++) {
        const size_t o = (size_t)s * sizeof(eng_block_q3_k);
        for (int k = 0; k < 8; k++, rec += REC) {
            if (k % 4 == 0)
                prefetch_rows(rows, o + 64 * (size_t)(k / 4));
            __m256i R[8];
#pragma GCC unroll 16
            for (int r = 0; r < 8; r++) {
                const __m256i qs = load32(rows[r] + o + 32 + 32 * (k / 4)), h = load32(rows[r] + o);
                const __m256i lo = _mm256_srli_epi16(qs, 2 * (k % 4));
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(h, k), one);
                R[r] = _mm256_or_si256(_mm256_and_si256(lo, m3), _mm256_slli_epi16(hb, 2));
            }
            transpose_store(R, rec);
        }
        int8_t buf[L][16];
        const int8_t *sc[L];
        float d[L];
        for (int r = 0; r < L; r++) {
            const eng_block_q3_k *p = (const eng_block_q3_k *)(rows[r] + o);
            eng_q3k_unpack_scales(p->scales, buf[r]);
            sc[r] = buf[r];
            d[r] = h2f(&p->d);
        }
        store_halves_scales(sc, d, rec - 8 * REC);
    }
}

/* Q2_K (gemm.c's gemm_q2_k): codes sc*q; S = d, M = dmin and the pair
 * (m_0, m_1) of int16 mins per record. */
TGT static void pack_q2_k(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int64_t s = 0; s < nb / 8; s++) {
        const size_t o = (size_t)s * sizeof(eng_block_q2_k);
        for (int k = 0; k < 8; k++, rec += REC) {
            if (k % 4 == 0)
                prefetch_rows(rows, o + 64 * (size_t)(k / 4));
            __m256i R[8];
            int32_t *mp = (int32_t *)(rec + OFF_MP);
#pragma GCC unroll 16
            for (int r = 0; r < 8; r++) {
                const uint8_t *sm = rows[r] + o + 2 * k;
                const __m256i q = _mm256_and_si256(
                    _mm256_srli_epi16(load32(rows[r] + o + 16 + 32 * (k / 4)), 2 * (k % 4)), m3);
                /* bytes q <= 3 times sc <= 15 in 16-bit words: no carry between bytes */
                R[r] = _mm256_mullo_epi16(q, _mm256_setr_m128i(_mm_set1_epi16(sm[0] & 15),
                                                               _mm_set1_epi16(sm[1] & 15)));
                mp[r] = (sm[0] >> 4) | (sm[1] >> 4) << 16;
            }
            transpose_store(R, rec);
            store_f16_scales(rows, o + 80, (float *)(rec + OFF_S));
            store_f16_scales(rows, o + 82, (float *)(rec + OFF_M));
        }
    }
}

/* IQ4_XS: IQ4_NL's codes per sub-block, S = d * (ls - 32) (gemm.c). */
TGT static void pack_iq4_xs(const uint8_t *const rows[L], int64_t nb, uint8_t *rec)
{
    for (int64_t s = 0; s < nb / 8; s++) {
        const size_t o = (size_t)s * sizeof(eng_block_iq4_xs);
        for (int ib = 0; ib < 8; ib++, rec += REC) {
            if (ib % 4 == 0)
                prefetch_rows(rows, o + 16 * (size_t)ib);
            iq4_codes(rows, o + 8 + 16 * (size_t)ib, rec);
        }
        __m256 S[8];
#pragma GCC unroll 8
        for (int r = 0; r < L; r++) {
            const eng_block_iq4_xs *p = (const eng_block_iq4_xs *)(rows[r] + o);
            float ls[8];
            for (int ib = 0; ib < 8; ib++)
                ls[ib] = (float)eng_iq4xs_scale(p, ib);
            S[r] = _mm256_mul_ps(_mm256_loadu_ps(ls), _mm256_set1_ps(h2f(&p->d)));
        }
        store_scales(S, S, rec - 8 * REC, false); /* M (copies of S) unused */
    }
}

/* ---- products ------------------------------------------------------------- */

typedef struct chunk {
    const int8_t *q;
    const float *d, *sf, *s;
    const int32_t *sn, *hn, *hp;
    const char *pf;       /* the next tile's bytes, pf_step per block (or NULL) */
    size_t pf_step;
} chunk;

TGT static AI __m256i bq(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

TGT static AI __m256i ld(const uint8_t *rec, int j)
{
    return _mm256_load_si256((const __m256i *)(rec + 32 * j));
}

/* s + the products of dwords j0, j0+1 (codes below 64). */
TGT static AI __m256i dot2(__m256i s, const uint8_t *rec, int j0, const int8_t *q)
{
    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(ld(rec, j0), bq(q + 4 * j0)),
                                       _mm256_maddubs_epi16(ld(rec, j0 + 1), bq(q + 4 * j0 + 4)));
    return _mm256_add_epi32(s, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* s + the products of signed dword j (Q8_0). */
TGT static AI __m256i dot_signed(__m256i s, const uint8_t *rec, int j, const int8_t *q)
{
    const __m256i xs = _mm256_sign_epi8(bq(q + 4 * j), ld(rec + OFF_SIGNED, j));
    const __m256i p = _mm256_maddubs_epi16(ld(rec, j), xs);
    return _mm256_add_epi32(s, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

TGT static AI void compute(kind kd, int sh, const uint8_t *rec, int64_t nb, chunk x, float *Y,
                         int64_t ldy, int nr, const int N)
{
    __m256 acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < N; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, rec += REC) {
        const __m256 S = _mm256_load_ps((const float *)(rec + OFF_S));
        const __m256 M = _mm256_load_ps((const float *)(rec + OFF_M));
        const int64_t i0 = b * N;
        if (x.pf) /* the next tile streams into L2 while this one computes */
            for (size_t k = 0; k < x.pf_step; k += 64)
                _mm_prefetch(x.pf + (size_t)b * x.pf_step + k, _MM_HINT_T1);
#pragma GCC unroll 8
        for (int t = 0; t < N; t++) {
            const int8_t *q = x.q + (i0 + t) * 32;
            __m256 f;
            if (kd == K_HALVES) {
                __m256i s0 = _mm256_slli_epi32(_mm256_set1_epi32(x.hn[2 * (i0 + t)]), sh);
                __m256i s1 = _mm256_slli_epi32(_mm256_set1_epi32(x.hn[2 * (i0 + t) + 1]), sh);
                s0 = dot2(dot2(s0, rec, 0, q), rec, 2, q);
                s1 = dot2(dot2(s1, rec, 4, q), rec, 6, q);
                f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), M,
                                    _mm256_mul_ps(_mm256_cvtepi32_ps(s0), S));
            } else if (kd == K_SIGNED) {
                __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 16
                for (int j = 0; j < 8; j++)
                    s = dot_signed(s, rec, j, q);
                f = _mm256_mul_ps(_mm256_cvtepi32_ps(s), S);
            } else {
                __m256i s = kd == K_INT
                                ? _mm256_slli_epi32(_mm256_set1_epi32(x.sn[i0 + t]), sh)
                                : _mm256_setzero_si256();
#pragma GCC unroll 16
                for (int j = 0; j < 8; j += 2)
                    s = dot2(s, rec, j, q);
                f = _mm256_mul_ps(_mm256_cvtepi32_ps(s), S);
                if (kd == K_MIN)
                    f = _mm256_fnmadd_ps(M, _mm256_set1_ps(x.sf[i0 + t]), f);
                if (kd == K_PAIR) /* m_0 hn_0 + m_1 hn_1, exact */
                    f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(
                                            ld(rec + OFF_MP, 0), _mm256_set1_epi32(x.hp[i0 + t]))),
                                        M, f);
            }
            acc[t] = _mm256_fmadd_ps(f, _mm256_set1_ps(x.d[i0 + t]), acc[t]);
            if (kd == K_Q1) /* the min times x's s */
                acc[t] = _mm256_fmadd_ps(M, _mm256_set1_ps(x.s[i0 + t]), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < N; t++) {
        if (nr == L) {
            _mm256_storeu_ps(Y + t * ldy, acc[t]);
        } else {
            float tmp[L];
            _mm256_storeu_ps(tmp, acc[t]);
            memcpy(Y + t * ldy, tmp, (size_t)nr * sizeof(float));
        }
    }
}

typedef void (*compute_fn)(int sh, const uint8_t *rec, int64_t nb, chunk x, float *Y,
                           int64_t ldy, int nr);

#define INST(KD, N)                                                                          \
    TGT static void c_##KD##_##N(int sh, const uint8_t *rec, int64_t nb, chunk x, float *Y,    \
                               int64_t ldy, int nr)                                          \
    {                                                                                        \
        compute(KD, sh, rec, nb, x, Y, ldy, nr, N);                                          \
    }
#define INST_ALL(KD)                                                                         \
    INST(KD, 1) INST(KD, 2) INST(KD, 3) INST(KD, 4) INST(KD, 5) INST(KD, 6) INST(KD, 7)     \
    INST(KD, 8)
#define TABLE(KD)                                                                            \
    {NULL, c_##KD##_1, c_##KD##_2, c_##KD##_3, c_##KD##_4, c_##KD##_5, c_##KD##_6,          \
     c_##KD##_7, c_##KD##_8}

INST_ALL(K_SIGNED)
INST_ALL(K_INT)
INST_ALL(K_MIN)
INST_ALL(K_HALVES)
INST_ALL(K_PAIR)
INST_ALL(K_Q1)

static const compute_fn computers[6][9] = {TABLE(K_SIGNED), TABLE(K_INT), TABLE(K_MIN),
                                           TABLE(K_HALVES), TABLE(K_PAIR), TABLE(K_Q1)};

/* ---- driver ---------------------------------------------------------------- */

typedef void (*pack_fn)(const uint8_t *const rows[L], int64_t nb, uint8_t *rec);

TGT static void run(pack_fn pack, kind kd, int sh, const void *w, size_t rb, const eng_qx *x,
                  float *Y, int64_t ldy, int64_t r0, int64_t r1, void *scratch)
{
    uint8_t *rec = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    const int64_t nb = x->n / 32;
    for (int64_t r = r0; r < r1; r += L) {
        const int nr = r1 - r < L ? (int)(r1 - r) : L;
        const uint8_t *rows[L];
        for (int i = 0; i < L; i++) /* rows past the end repeat the last one */
            rows[i] = (const uint8_t *)w + (size_t)(r + (i < nr ? i : nr - 1)) * rb;
        pack(rows, nb, rec);
        const char *next = (const char *)w + (size_t)(r + L) * rb; /* as gemm_avx512.c */
        const size_t step = ((size_t)L * rb / (size_t)nb + 63) & ~(size_t)63;
        for (int64_t c = 0; c * x->kc < x->T; c++) {
            const int64_t base = c * x->kc * nb;
            const chunk ch = {x->q + base * 32, x->d + base, x->sf + base, x->s + base, x->sn + base,
                              x->hn + 2 * base, x->hp + base, c == 0 ? next : NULL, step};
            computers[kd][eng_qx_chunk_rows(x, c)](sh, rec, nb, ch, Y + c * x->kc * ldy + r,
                                                     ldy, nr);
        }
    }
}

#define GEMM(NAME, PACK, KD, SH)                                                             \
    TGT static void NAME(const void *w, size_t rb, const eng_qx *x, float *Y, int64_t ldy,     \
                       int64_t r0, int64_t r1, void *scratch)                                \
    {                                                                                        \
        run(PACK, KD, SH, w, rb, x, Y, ldy, r0, r1, scratch);                                \
    }

GEMM(gemm_q8_0, pack_q8_0, K_SIGNED, 0)
GEMM(gemm_q4_0, pack_q4_0, K_INT, 3)
GEMM(gemm_q5_0, pack_q5_0, K_INT, 4)
GEMM(gemm_q4_k, pack_q4_k, K_MIN, 0)
GEMM(gemm_q5_k, pack_q5_k, K_MIN, 0)
GEMM(gemm_q6_k, pack_q6_k, K_HALVES, 5)
GEMM(gemm_q3_k, pack_q3_k, K_HALVES, 2)
GEMM(gemm_q2_k, pack_q2_k, K_PAIR, 0)
GEMM(gemm_q4_1, pack_q4_1, K_Q1, 0)
GEMM(gemm_q5_1, pack_q5_1, K_Q1, 0)
GEMM(gemm_mxfp4, pack_mxfp4, K_INT, 4)
GEMM(gemm_iq4_nl, pack_iq4_nl, K_SIGNED, 0)
GEMM(gemm_iq4_xs, pack_iq4_xs, K_SIGNED, 0)

/* ---- float weights ---------------------------------------------------------- */

/* weight rows per register block; elements of a row per panel (f16/bf16
 * rows are widened a panel at a time into the thread's scratch, L1) */
enum { FR = 8, FP = 512 };
typedef enum { W_F32, W_F16, W_BF16 } wkind;

/* n f16/bf16 values at s widened exactly to f32 at d. */
TGT static AI void widen(wkind wk, const uint16_t *s, float *d, int64_t n)
{
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(d + k, wk == W_F16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + k))) : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + k))), 16)));
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
        __m256 acc[FR];
#pragma GCC unroll 8
        for (int r = 0; r < FR; r++)
            acc[r] = _mm256_setzero_ps();
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
                const __m256 xv = _mm256_load_ps(xt + (k0 + k) * 8);
#pragma GCC unroll 8
                for (int r = 0; r < FR; r++)
                    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(wr[r][k]), xv, acc[r]);
            }
        }
        float tmp[FR][8] __attribute__((aligned(64)));
#pragma GCC unroll 8
        for (int r = 0; r < FR; r++)
            _mm256_store_ps(tmp[r], acc[r]);
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

const eng_gemm_kernels eng_gemm_avx2 = {
    .simd = ENG_SIMD_AVX2,
    .kc = 8,
    .gemm = {[ENG_TYPE_Q8_0] = gemm_q8_0, [ENG_TYPE_Q4_0] = gemm_q4_0,
             [ENG_TYPE_Q5_0] = gemm_q5_0, [ENG_TYPE_Q4_K] = gemm_q4_k,
             [ENG_TYPE_Q6_K] = gemm_q6_k, [ENG_TYPE_MXFP4] = gemm_mxfp4,
             [ENG_TYPE_Q5_K] = gemm_q5_k, [ENG_TYPE_IQ4_NL] = gemm_iq4_nl,
             [ENG_TYPE_IQ4_XS] = gemm_iq4_xs, [ENG_TYPE_Q3_K] = gemm_q3_k,
             [ENG_TYPE_Q2_K] = gemm_q2_k, [ENG_TYPE_Q4_1] = gemm_q4_1,
             [ENG_TYPE_Q5_1] = gemm_q5_1},
    .kc_f = 8,
    .gemm_f = {[ENG_TYPE_F32] = gemm_f32, [ENG_TYPE_F16] = gemm_f16, [ENG_TYPE_BF16] = gemm_bf16},
};
