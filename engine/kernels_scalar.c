/*
 * kernels_scalar.c — the reference kernels: plain C, exact integer sums per
 * block (or super-block), one f32 accumulator, blocks in order. Every SIMD
 * path is tested against these (and these against a double-precision
 * computation). Built without any target attribute, so the compiler cannot
 * contract a*b+c into an FMA here.
 *
 * The x-form builders are the exception to "plain reference": they give
 * exactly the bits of llama.cpp's x86 build (its AVX quantize_row_q8_0/q8_1
 * rounding, quantize_row_q8_K_ref, F16C/ggml rounding), because every path
 * must hand the same partner form to its dot.
 */
#include "engine/kernels.h"

#include <math.h>
#include <string.h>

/* ---- x-form builders ---------------------------------------------------- */

/* What _mm256_round_ps(v, nearest) + _mm256_cvtps_epi32 + the saturating
 * packs of ggml's x86 quantize_row_q8_0 give: round half to even, clamp to
 * int8; a NaN or |v| >= 2^31 becomes the "integer indefinite" INT_MIN,
 * which the packs saturate to -128. */
static int8_t q8_round(float v)
{
    if (!(v > -2147483648.0f && v < 2147483648.0f))
        return -128;
    float r = rintf(v);   /* the default rounding mode: to nearest even */
    return (int8_t)(r > 127 ? 127 : r < -128 ? -128 : r);
}

/* ggml x86 quantize_row_q8_0 / quantize_row_q8_1: d = amax/127 (stored as
 * fp16), id = 127/amax (not 1/d, as the reference code has), q = x*id
 * rounded half to even; s = fp16(d * sum q) with the unrounded d. */
void eng_scalar_x_q8(const float *x, int64_t n, float *d, float *s, int8_t *qs, int32_t *ls8)
{
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(xb[j]));
        const float db = amax / 127.f;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        d[b] = eng_fp16_to_fp32(eng_fp32_to_fp16(db));
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            qs[b * 32 + j] = q8_round(xb[j] * id);
            sum += qs[b * 32 + j];
        }
        s[b] = eng_fp16_to_fp32(eng_fp32_to_fp16(db * (float)sum));
    }
    for (int64_t k = 0; k < n / 4; k++)
        ls8[k] = 8 * (qs[4 * k] + qs[4 * k + 1] + qs[4 * k + 2] + qs[4 * k + 3]);
}

/* ggml quantize_row_q8_K_ref (what the x86 build runs): max = the signed
 * element of largest magnitude (the first on ties), iscale = -127/max,
 * q = min(127, round-half-even(iscale*x)), d = 1/iscale as f32, bsums =
 * sums of 16. A NaN product gives 0, as ggml's nearest_int does. */
void eng_scalar_x_q8k(const float *x, int64_t n, float *d, int8_t *qs, int16_t *bsums)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++, x += ENG_QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < ENG_QK_K; ++j)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        int8_t *q = qs + b * ENG_QK_K;
        if (!amax) {
            d[b] = 0;
            memset(q, 0, ENG_QK_K);
            memset(bsums + b * 16, 0, 16 * sizeof(int16_t));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < ENG_QK_K; ++j) {
            float v = iscale * x[j];
            int l = v == v ? (int)rintf(v) : 0;
            q[j] = (int8_t)(l < 127 ? l : 127);
        }
        for (int g = 0; g < 16; ++g) {
            int sum = 0;
            for (int l = 0; l < 16; ++l)
                sum += q[16 * g + l];
            bsums[b * 16 + g] = (int16_t)sum;
        }
        d[b] = 1 / iscale;
    }
}

void eng_scalar_x_f16(const float *x, int64_t n, uint16_t *h)
{
    for (int64_t j = 0; j < n; j++)
        h[j] = eng_fp32_to_fp16(x[j]);
}

void eng_scalar_x_bf16(const float *x, int64_t n, uint16_t *h)
{
    for (int64_t j = 0; j < n; j++)
        h[j] = eng_fp32_to_bf16(x[j]);
}

/* ---- float weights ------------------------------------------------------ */

static void matvec_f32(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *row = (const float *)((const char *)w + (size_t)r * rb);
        float s = 0.0f;
        for (int64_t j = 0; j < x->n; j++)
            s += row[j] * x->f32[j];
        y[r] = s;
    }
}

/* f16 x f16 and bf16 x bf16 products are exact in f32. */
static void matvec_f16(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *row = (const uint16_t *)((const char *)w + (size_t)r * rb);
        float s = 0.0f;
        for (int64_t j = 0; j < x->n; j++)
            s += eng_fp16_to_fp32(row[j]) * eng_fp16_to_fp32(x->f16[j]);
        y[r] = s;
    }
}

static void matvec_bf16(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *row = (const uint16_t *)((const char *)w + (size_t)r * rb);
        float s = 0.0f;
        for (int64_t j = 0; j < x->n; j++)
            s += eng_bf16_to_fp32(row[j]) * eng_bf16_to_fp32(x->bf16[j]);
        y[r] = s;
    }
}

/* ---- blocks of 32 against Q8_0 / Q8_1 ------------------------------------
 * Each block's weight codes (centered, or table values) times x's quants
 * summed exactly; then s += isum * (d_w * d_x) (+ m * s_x for the types
 * with a min), as ggml's generic vec_dot_*_q8_0/q8_1. */

/* The 32 integer weight codes of block i of a row, element order. */
typedef void (*codes_fn)(const void *row, int64_t i, int *q);

static void codes_q8_0(const void *row, int64_t i, int *q)
{
    const eng_block_q8_0 *b = (const eng_block_q8_0 *)row + i;
    for (int j = 0; j < 32; j++)
        q[j] = b->qs[j];
}

static void nibbles(const uint8_t *qs, int *q, int off)
{
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 0xf) - off;
        q[j + 16] = (qs[j] >> 4) - off;
    }
}

static void codes_q4_0(const void *row, int64_t i, int *q)
{
    nibbles(((const eng_block_q4_0 *)row)[i].qs, q, 8);
}

static void codes_q4_1(const void *row, int64_t i, int *q)
{
    nibbles(((const eng_block_q4_1 *)row)[i].qs, q, 0);
}

static void fifth_bit(const uint8_t *qh4, int *q, int off)
{
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    for (int j = 0; j < 32; j++)
        q[j] += (int)((qh >> j) & 1) * 16 - off;
}

static void codes_q5_0(const void *row, int64_t i, int *q)
{
    const eng_block_q5_0 *b = (const eng_block_q5_0 *)row + i;
    nibbles(b->qs, q, 0);
    fifth_bit(b->qh, q, 16);
}

static void codes_q5_1(const void *row, int64_t i, int *q)
{
    const eng_block_q5_1 *b = (const eng_block_q5_1 *)row + i;
    nibbles(b->qs, q, 0);
    fifth_bit(b->qh, q, 0);
}

static void table_codes(const uint8_t *qs, const int8_t *kv, int *q)
{
    for (int j = 0; j < 16; j++) {
        q[j] = kv[qs[j] & 0xf];
        q[j + 16] = kv[qs[j] >> 4];
    }
}

static void codes_iq4_nl(const void *row, int64_t i, int *q)
{
    table_codes(((const eng_block_iq4_nl *)row)[i].qs, eng_kvalues_iq4nl, q);
}

static void codes_mxfp4(const void *row, int64_t i, int *q)
{
    table_codes(((const eng_block_mxfp4 *)row)[i].qs, eng_kvalues_mxfp4, q);
}

/* Block i's scale d_w and min m; -0.0 without one (x + -0.0 is x for
 * every x, signed zeros included, so dequant can always add it). */
#define SCALE(T, BLOCK, D, M)                                                                    \
    static float scale_##T(const void *row, int64_t i, float *m)                                  \
    {                                                                                             \
        const BLOCK *b = (const BLOCK *)row + i;                                                  \
        *m = M;                                                                                   \
        return D;                                                                                 \
    }
SCALE(q8_0, eng_block_q8_0, eng_fp16_to_fp32(b->d), -0.0f)
SCALE(q4_0, eng_block_q4_0, eng_fp16_to_fp32(b->d), -0.0f)
SCALE(q5_0, eng_block_q5_0, eng_fp16_to_fp32(b->d), -0.0f)
SCALE(iq4_nl, eng_block_iq4_nl, eng_fp16_to_fp32(b->d), -0.0f)
SCALE(mxfp4, eng_block_mxfp4, eng_e8m0_half(b->e), -0.0f)
SCALE(q4_1, eng_block_q4_1, eng_fp16_to_fp32(b->d), eng_fp16_to_fp32(b->m))
SCALE(q5_1, eng_block_q5_1, eng_fp16_to_fp32(b->d), eng_fp16_to_fp32(b->m))

static inline void matvec_b32(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0,
                              int64_t r1, codes_fn codes, float (*scale)(const void *, int64_t, float *))
{
    int q[32];
    for (int64_t r = r0; r < r1; r++) {
        const void *row = (const char *)w + (size_t)r * rb;
        float s = 0.0f;
        for (int64_t i = 0; i < x->n / 32; i++) {
            codes(row, i, q);
            int32_t isum = 0;
            for (int j = 0; j < 32; j++)
                isum += q[j] * x->q8_qs[i * 32 + j];
            float m;
            const float dw = scale(row, i, &m);
            s += (float)isum * (dw * x->q8_d[i]);
            if (m != 0)
                s += m * x->q8_s[i];
        }
        y[r] = s;
    }
}

#define MV32(T)                                                                                   \
    static void matvec_##T(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0,      \
                           int64_t r1)                                                             \
    {                                                                                              \
        matvec_b32(w, rb, x, y, r0, r1, codes_##T, scale_##T);                                     \
    }
MV32(q8_0)
MV32(q4_0)
MV32(q4_1)
MV32(q5_0)
MV32(q5_1)
MV32(iq4_nl)
MV32(mxfp4)

/* ---- super-blocks of 256 against Q8_K ------------------------------------
 * Per super-block the exact integers isum = sum_g sc_g * sum_{e in g} q_e
 * x_e and (types with mins) msum = sum_g m_g * bsum_g, then
 * s += (x_d * d) * isum and s += (-x_d * dmin) * msum, as ggml does. */

/* Codes q[256] and per-16-group scales sc[16] (mins m[16], 0 without) of
 * super-block i; returns d (and *dmin). */
typedef float (*kcodes_fn)(const void *row, int64_t i, int *q, int *sc, int *m, float *dmin);

static float kcodes_q2_k(const void *row, int64_t i, int *q, int *sc, int *m, float *dmin)
{
    const eng_block_q2_k *b = (const eng_block_q2_k *)row + i;
    for (int e = 0; e < ENG_QK_K; e++)   /* element e: byte 32(e/128) + e%32, bits 2((e/32)%4) */
        q[e] = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
    for (int g = 0; g < 16; g++) {
        sc[g] = b->scales[g] & 0xf;
        m[g] = b->scales[g] >> 4;
    }
    *dmin = eng_fp16_to_fp32(b->dmin);
    return eng_fp16_to_fp32(b->d);
}

static float kcodes_q3_k(const void *row, int64_t i, int *q, int *sc, int *m, float *dmin)
{
    const eng_block_q3_k *b = (const eng_block_q3_k *)row + i;
    int8_t s16[16];
    eng_q3k_unpack_scales(b->scales, s16);
    for (int e = 0; e < ENG_QK_K; e++) {
        int lo = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
        q[e] = lo - ((b->hmask[e % 32] >> (e / 32)) & 1 ? 0 : 4);
    }
    for (int g = 0; g < 16; g++) {
        sc[g] = s16[g];
        m[g] = 0;
    }
    *dmin = 0;
    return eng_fp16_to_fp32(b->d);
}

/* Q4_K / Q5_K: sub-block j (32 wide) is groups 2j, 2j+1 with one scale. */
static void k4_scales(const uint8_t *scales12, int *sc, int *m)
{
    for (int j = 0; j < 8; j++) {
        int s, mm;
        eng_q4k_scale_min(scales12, j, &s, &mm);
        sc[2 * j] = sc[2 * j + 1] = s;
        m[2 * j] = m[2 * j + 1] = mm;
    }
}

static float kcodes_q4_k(const void *row, int64_t i, int *q, int *sc, int *m, float *dmin)
{
    const eng_block_q4_k *b = (const eng_block_q4_k *)row + i;
    for (int e = 0; e < ENG_QK_K; e++)   /* byte 32(e/64) + e%32, nibble (e/32)%2 */
        q[e] = (b->qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0xf;
    k4_scales(b->scales, sc, m);
    *dmin = eng_fp16_to_fp32(b->dmin);
    return eng_fp16_to_fp32(b->d);
}

static float kcodes_q5_k(const void *row, int64_t i, int *q, int *sc, int *m, float *dmin)
{
    const eng_block_q5_k *b = (const eng_block_q5_k *)row + i;
    for (int e = 0; e < ENG_QK_K; e++)   /* 5th bit: qh[e%32] bit e/32 */
        q[e] = ((b->qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0xf) |
               (((b->qh[e % 32] >> (e / 32)) & 1) << 4);
    k4_scales(b->scales, sc, m);
    *dmin = eng_fp16_to_fp32(b->dmin);
    return eng_fp16_to_fp32(b->d);
}

/* Element e (0..255) of a Q6_K block, q - 32 in -32..31: half h = e/128,
 * quarter c = (e/32)%4, l = e%32. */
static inline int q6_at(const eng_block_q6_k *b, int e)
{
    const int h = e / 128, c = (e / 32) % 4, l = e % 32;
    const int lo = (b->ql[64 * h + 32 * (c & 1) + l] >> (4 * (c >> 1))) & 0xf;
    const int hi = (b->qh[32 * h + l] >> (2 * c)) & 3;
    return (lo | hi << 4) - 32;
}

static float kcodes_q6_k(const void *row, int64_t i, int *q, int *sc, int *m, float *dmin)
{
    const eng_block_q6_k *b = (const eng_block_q6_k *)row + i;
    for (int e = 0; e < ENG_QK_K; e++)
        q[e] = q6_at(b, e);
    for (int g = 0; g < 16; g++) {
        sc[g] = b->scales[g];
        m[g] = 0;
    }
    *dmin = 0;
    return eng_fp16_to_fp32(b->d);
}

static float kcodes_iq4_xs(const void *row, int64_t i, int *q, int *sc, int *m, float *dmin)
{
    const eng_block_iq4_xs *b = (const eng_block_iq4_xs *)row + i;
    for (int ib = 0; ib < 8; ib++) {
        table_codes(b->qs + 16 * ib, eng_kvalues_iq4nl, q + 32 * ib);
        sc[2 * ib] = sc[2 * ib + 1] = eng_iq4xs_scale(b, ib);
        m[2 * ib] = m[2 * ib + 1] = 0;
    }
    *dmin = 0;
    return eng_fp16_to_fp32(b->d);
}

static inline void matvec_k(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0,
                            int64_t r1, kcodes_fn codes)
{
    int q[ENG_QK_K], sc[16], m[16];
    for (int64_t r = r0; r < r1; r++) {
        const void *row = (const char *)w + (size_t)r * rb;
        float s = 0.0f;
        for (int64_t i = 0; i < x->n / ENG_QK_K; i++) {
            float dmin;
            const float d = codes(row, i, q, sc, m, &dmin);
            const int8_t *xq = x->q8k_qs + i * ENG_QK_K;
            int32_t isum = 0, msum = 0;
            for (int g = 0; g < 16; g++) {
                int32_t gs = 0;
                for (int l = 0; l < 16; l++)
                    gs += q[16 * g + l] * xq[16 * g + l];
                isum += sc[g] * gs;
                msum += m[g] * x->q8k_bsums[i * 16 + g];
            }
            s += (x->q8k_d[i] * d) * (float)isum;
            if (msum)
                s += (-x->q8k_d[i] * dmin) * (float)msum;
        }
        y[r] = s;
    }
}

#define MVK(T)                                                                                    \
    static void matvec_##T(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0,      \
                           int64_t r1)                                                             \
    {                                                                                              \
        matvec_k(w, rb, x, y, r0, r1, kcodes_##T);                                                 \
    }
MVK(q2_k)
MVK(q3_k)
MVK(q4_k)
MVK(q5_k)
MVK(q6_k)
MVK(iq4_xs)

/* ---- dequantization: ggml's dequantize_row_* ------------------------------
 * Exact in f32 up to one rounding: the scale products (d*sc, d*sc*q,
 * dmin*m) have at most 25 significant bits only for IQ4_XS, where the one
 * product is rounded once; types with a min round once at the subtraction
 * (or addition); so any evaluation order, and an FMA, give these bits. */

void eng_scalar_dequant_f32(const void *row, float *dst, int64_t n) { memcpy(dst, row, (size_t)n * 4); }

static void dequant_f16(const void *row, float *dst, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        dst[j] = eng_fp16_to_fp32(((const uint16_t *)row)[j]);
}

static void dequant_bf16(const void *row, float *dst, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        dst[j] = eng_bf16_to_fp32(((const uint16_t *)row)[j]);
}

static inline void dequant_b32(const void *row, float *dst, int64_t n, codes_fn codes,
                               float (*scale)(const void *, int64_t, float *))
{
    int q[32];
    for (int64_t i = 0; i < n / 32; i++) {
        float m;
        const float d = scale(row, i, &m);
        codes(row, i, q);
        for (int j = 0; j < 32; j++)
            dst[i * 32 + j] = (float)q[j] * d + m;
    }
}

#define DQ32(T)                                                                                   \
    static void dequant_##T(const void *row, float *dst, int64_t n)                                \
    {                                                                                              \
        dequant_b32(row, dst, n, codes_##T, scale_##T);                                            \
    }
DQ32(q8_0)
DQ32(q4_0)
DQ32(q4_1)
DQ32(q5_0)
DQ32(q5_1)
DQ32(iq4_nl)
DQ32(mxfp4)

/* K-quants: y = (d*sc_g)*q - dmin*m_g per element. */
static inline void dequant_k(const void *row, float *dst, int64_t n, kcodes_fn codes)
{
    int q[ENG_QK_K], sc[16], m[16];
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        float dmin;
        const float d = codes(row, i, q, sc, m, &dmin);
        for (int e = 0; e < ENG_QK_K; e++)
            dst[e] = d * (float)sc[e / 16] * (float)q[e] - dmin * (float)m[e / 16];
    }
}

#define DQK(T)                                                                                    \
    static void dequant_##T(const void *row, float *dst, int64_t n) { dequant_k(row, dst, n, kcodes_##T); }
DQK(q2_k)
DQK(q3_k)
DQK(q4_k)
DQK(q5_k)
DQK(q6_k)
DQK(iq4_xs)

#define ALL(pre)                                                                                  \
    [ENG_TYPE_Q8_0] = pre##q8_0, [ENG_TYPE_Q4_0] = pre##q4_0, [ENG_TYPE_Q4_1] = pre##q4_1,       \
    [ENG_TYPE_Q5_0] = pre##q5_0, [ENG_TYPE_Q5_1] = pre##q5_1, [ENG_TYPE_IQ4_NL] = pre##iq4_nl,   \
    [ENG_TYPE_MXFP4] = pre##mxfp4, [ENG_TYPE_Q2_K] = pre##q2_k, [ENG_TYPE_Q3_K] = pre##q3_k,     \
    [ENG_TYPE_Q4_K] = pre##q4_k, [ENG_TYPE_Q5_K] = pre##q5_k, [ENG_TYPE_Q6_K] = pre##q6_k,       \
    [ENG_TYPE_IQ4_XS] = pre##iq4_xs, [ENG_TYPE_F16] = pre##f16, [ENG_TYPE_BF16] = pre##bf16

const struct eng_kernels eng_kernels_scalar = {
    .simd = ENG_SIMD_SCALAR,
    .name = "scalar",
    .x_q8 = eng_scalar_x_q8,
    .x_q8k = eng_scalar_x_q8k,
    .x_f16 = eng_scalar_x_f16,
    .x_bf16 = eng_scalar_x_bf16,
    .matvec = {ALL(matvec_), [ENG_TYPE_F32] = matvec_f32},
    .dequant = {ALL(dequant_), [ENG_TYPE_F32] = eng_scalar_dequant_f32},
};
