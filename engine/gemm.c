/*
 * gemm.c — the prepared activation rows of a prefill product (eng_qx
 * quantized, eng_xt transposed) and the scalar reference of gemm.h's
 * kernels: integer products and float products.
 *
 * The reference reads the stored blocks directly (no packing), forms each
 * block's integers and scales from the format's definition and applies
 * gemm.h's roundings with fmaf, one (row, token) at a time. The SIMD paths
 * (gemm_avx2.c, gemm_avx512.c) repack weight tiles and must reproduce these
 * bits exactly; the tests compare them with memcmp. Built without target
 * attributes: fmaf is the correctly rounded libm call, never contracted.
 */
#include "engine/gemm.h"
#include "engine/kernels.h"

#include <math.h>
#include <string.h>

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t eng_qx_bytes(int64_t T, int64_t n)
{
    const size_t e = (size_t)T * (size_t)n, nb = e / 32;
    return round64(e) + 5 * round64(nb * 4) + round64(nb * 8);
}

void eng_qx_bind(eng_qx *x, void *buf, int64_t T, int64_t n, int kc, int form)
{
    const size_t e = (size_t)T * (size_t)n, nb = e / 32;
    char *p = buf;
    x->form = form;
    x->n = n;
    x->T = T;
    x->kc = kc;
    x->q = (int8_t *)p;
    p += round64(e);
    x->d = (float *)p;
    p += round64(nb * 4);
    x->sf = (float *)p;
    p += round64(nb * 4);
    x->sn = (int32_t *)p;
    p += round64(nb * 4);
    x->hn = (int32_t *)p;
    p += round64(nb * 8);
    x->hp = (int32_t *)p;
    p += round64(nb * 4);
    x->s = (float *)p;
}

/* Index of (row t, block b) in the per-block arrays (gemm.h layout). */
static inline int64_t qx_at(const eng_qx *x, int64_t t, int64_t b)
{
    const int64_t c = t / x->kc, nc = eng_qx_chunk_rows(x, c);
    return c * x->kc * (x->n / 32) + b * nc + t % x->kc;
}

/* Block b of row t: its quants are in place; the sums the kernels need. */
static void qx_sums(const eng_qx *x, int64_t i)
{
    const int8_t *q = x->q + i * 32;
    int32_t h0 = 0, h1 = 0;
    for (int j = 0; j < 16; j++) {
        h0 += q[j];
        h1 += q[16 + j];
    }
    x->sf[i] = (float)(h0 + h1);
    x->sn[i] = -(h0 + h1);
    x->hn[2 * i] = -h0;
    x->hn[2 * i + 1] = -h1;
    x->hp[i] = (int32_t)((uint32_t)(uint16_t)-h0 | (uint32_t)(uint16_t)-h1 << 16);
}

/* Q8_0 blocks are quantized one at a time (ggml's quantize_row_q8_0 treats
 * each block alone, so this is decode's x bit for bit); a Q8_K super-block
 * of 256 is quantized whole and its one f32 scale given to its 8 blocks. */
void eng_qx_row(const eng_kernels *k, const eng_qx *x, int64_t t, const float *src)
{
    if (x->form == ENG_XF_Q8K) {
        int8_t qs[256];
        int16_t bsums[16];
        float d;
        for (int64_t sb = 0; sb < x->n / 256; sb++) {
            k->x_q8k(src + sb * 256, 256, &d, qs, bsums);
            for (int b = 0; b < 8; b++) {
                const int64_t i = qx_at(x, t, sb * 8 + b);
                memcpy(x->q + i * 32, qs + b * 32, 32);
                x->d[i] = d;
                x->s[i] = 0.0f; /* no Q8_K partner reads it */
                qx_sums(x, i);
            }
        }
        return;
    }
    for (int64_t b = 0; b < x->n / 32; b++) {
        const int64_t i = qx_at(x, t, b);
        int32_t ls8[8];
        k->x_q8(src + b * 32, 32, &x->d[i], &x->s[i], x->q + i * 32, ls8);
        qx_sums(x, i);
    }
}

size_t eng_xt_bytes(int64_t T, int64_t n, int kc)
{
    const size_t chunks = (size_t)((T + kc - 1) / kc);
    return round64(chunks * (size_t)kc * (size_t)n * sizeof(float));
}

void eng_xt_bind(eng_xt *x, void *buf, int64_t T, int64_t n, int kc, int form)
{
    *x = (eng_xt){.form = form, .n = n, .T = T, .kc = kc, .x = buf};
    /* the lanes past the last row of a short last chunk: zeros, not garbage */
    const int64_t c = T / kc;
    if (T % kc)
        memset(x->x + c * kc * n, 0, (size_t)(kc * n) * sizeof(float));
}

/* F16/BF16 weights meet x rounded to their type, as decode's (and ggml's)
 * vec_dot does; widened back exactly, each product is then exact in f32. */
void eng_xt_row(const eng_kernels *k, const eng_xt *x, int64_t t, const float *src)
{
    float *dst = x->x + (t / x->kc) * x->kc * x->n + t % x->kc;
    if (x->form == ENG_XF_F32) {
        for (int64_t i = 0; i < x->n; i++)
            dst[i * x->kc] = src[i];
        return;
    }
    uint16_t h[256];
    for (int64_t i0 = 0; i0 < x->n; i0 += 256) {
        const int64_t m = x->n - i0 < 256 ? x->n - i0 : 256;
        if (x->form == ENG_XF_F16) {
            k->x_f16(src + i0, m, h);
            for (int64_t i = 0; i < m; i++)
                dst[(i0 + i) * x->kc] = eng_fp16_to_fp32(h[i]);
        } else {
            k->x_bf16(src + i0, m, h);
            for (int64_t i = 0; i < m; i++)
                dst[(i0 + i) * x->kc] = eng_bf16_to_fp32(h[i]);
        }
    }
}

/* ---- scalar reference ------------------------------------------------------ */

/* The fp16 value at p (any alignment). */
static inline float h2f(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return eng_fp16_to_fp32(h);
}

/* One block's contribution in the int form (gemm.h). */
static inline float int_step(float acc, int32_t i, float S, float dx)
{
    return fmaf((float)i * S, dx, acc);
}

/* In the min form. */
static inline float min_step(float acc, int32_t i, float S, float M, float sf, float dx)
{
    return fmaf(fmaf(-M, sf, (float)i * S), dx, acc);
}

/* In the halves form. */
static inline float halves_step(float acc, int32_t i0, int32_t i1, float S0, float S1, float dx)
{
    return fmaf(fmaf((float)i1, S1, (float)i0 * S0), dx, acc);
}

/* Codes u[32] of block b of a row, its offset and scale (int form). */
typedef int (*int_block_fn)(const void *row, int64_t b, uint8_t u[32], float *S);

static int block_q8_0(const void *row, int64_t b, uint8_t u[32], float *S)
{
    const eng_block_q8_0 *p = (const eng_block_q8_0 *)row + b;
    for (int j = 0; j < 32; j++)
        u[j] = (uint8_t)(p->qs[j] + 128);
    *S = eng_fp16_to_fp32(p->d);
    return 128;
}

/* The 32 nibbles of qs as codes (element j low, j + 16 high). */
static void nibble_u(const uint8_t *qs, uint8_t u[32])
{
    for (int j = 0; j < 16; j++) {
        u[j] = qs[j] & 15;
        u[j + 16] = qs[j] >> 4;
    }
}

/* Bit j of the little-endian u32 at qh4 as bit 4 of code j. */
static void fifth_u(const uint8_t *qh4, uint8_t u[32])
{
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    for (int j = 0; j < 32; j++)
        u[j] |= (uint8_t)(((qh >> j) & 1) << 4);
}

static int block_q4_0(const void *row, int64_t b, uint8_t u[32], float *S)
{
    const eng_block_q4_0 *p = (const eng_block_q4_0 *)row + b;
    nibble_u(p->qs, u);
    *S = eng_fp16_to_fp32(p->d);
    return 8;
}

static int block_q5_0(const void *row, int64_t b, uint8_t u[32], float *S)
{
    const eng_block_q5_0 *p = (const eng_block_q5_0 *)row + b;
    nibble_u(p->qs, u);
    fifth_u(p->qh, u);
    *S = eng_fp16_to_fp32(p->d);
    return 16;
}

/* Q4_1 and Q5_1: codes without offset (their min m is added apart). */
static int block_q4_1(const void *row, int64_t b, uint8_t u[32], float *S)
{
    const eng_block_q4_1 *p = (const eng_block_q4_1 *)row + b;
    nibble_u(p->qs, u);
    *S = eng_fp16_to_fp32(p->d);
    return 0;
}

static int block_q5_1(const void *row, int64_t b, uint8_t u[32], float *S)
{
    const eng_block_q5_1 *p = (const eng_block_q5_1 *)row + b;
    nibble_u(p->qs, u);
    fifth_u(p->qh, u);
    *S = eng_fp16_to_fp32(p->d);
    return 0;
}

/* A 16-entry codebook's values at the 32 nibbles of qs, plus add. */
static void table_u(const uint8_t *qs, const int8_t *kv, int add, uint8_t u[32])
{
    for (int j = 0; j < 16; j++) {
        u[j] = (uint8_t)(kv[qs[j] & 15] + add);
        u[j + 16] = (uint8_t)(kv[qs[j] >> 4] + add);
    }
}

/* MXFP4: the doubled E2M1 values (-12..12) + 16; S = 2^(e-128), ggml's
 * E8M0_TO_FP32_HALF, which goes with the doubled values. */
static int block_mxfp4(const void *row, int64_t b, uint8_t u[32], float *S)
{
    const eng_block_mxfp4 *p = (const eng_block_mxfp4 *)row + b;
    table_u(p->qs, eng_kvalues_mxfp4, 16, u);
    *S = eng_e8m0_half(p->e);
    return 16;
}

/* IQ4_NL: the codebook values (-127..113) + 128, as Q8_0's codes. */
static int block_iq4_nl(const void *row, int64_t b, uint8_t u[32], float *S)
{
    const eng_block_iq4_nl *p = (const eng_block_iq4_nl *)row + b;
    table_u(p->qs, eng_kvalues_iq4nl, 128, u);
    *S = eng_fp16_to_fp32(p->d);
    return 128;
}

/* IQ4_XS: block b is sub-block ib = b % 8 of super-block b / 8, IQ4_NL's
 * codes with S = d * (ls - 32) (exact: 11 by 6 bits). */
static int block_iq4_xs(const void *row, int64_t b, uint8_t u[32], float *S)
{
    const eng_block_iq4_xs *p = (const eng_block_iq4_xs *)row + b / 8;
    const int ib = (int)(b % 8);
    table_u(p->qs + 16 * ib, eng_kvalues_iq4nl, 128, u);
    *S = eng_fp16_to_fp32(p->d) * (float)eng_iq4xs_scale(p, ib);
    return 128;
}

/* The int form; with q1 (the block's size, Q4_1/Q5_1) also the min of
 * the q1 form: its fp16 m at byte 2 of the block times x's s. */
static void gemm_int(int_block_fn blk, size_t q1, const void *w, size_t rb, const eng_qx *x,
                     float *Y, int64_t ldy, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const void *row = (const char *)w + (size_t)r * rb;
        for (int64_t t = 0; t < x->T; t++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < x->n / 32; b++) {
                uint8_t u[32];
                float S;
                const int off = blk(row, b, u, &S);
                const int64_t i = qx_at(x, t, b);
                const int8_t *q = x->q + i * 32;
                int32_t isum = 0;
                for (int j = 0; j < 32; j++)
                    isum += u[j] * q[j];
                acc = int_step(acc, isum + off * x->sn[i], S, x->d[i]);
                if (q1)
                    acc = fmaf(h2f((const uint8_t *)row + (size_t)b * q1 + 2), x->s[i], acc);
            }
            Y[t * ldy + r] = acc;
        }
    }
}

/* The int-form formats' products: gemm_int with the format's block reader
 * (and Q1: the block size of a q1-form format, else 0). */
#define GEMM_INT(NAME, BLOCK, Q1)                                                            \
    static void NAME(const void *w, size_t rb, const eng_qx *x, float *Y, int64_t ldy,       \
                     int64_t r0, int64_t r1, void *scratch)                                  \
    {                                                                                        \
        (void)scratch;                                                                       \
        gemm_int(BLOCK, Q1, w, rb, x, Y, ldy, r0, r1);                                       \
    }
GEMM_INT(gemm_q8_0, block_q8_0, 0)
GEMM_INT(gemm_q4_0, block_q4_0, 0)
GEMM_INT(gemm_q5_0, block_q5_0, 0)
GEMM_INT(gemm_mxfp4, block_mxfp4, 0)
GEMM_INT(gemm_iq4_nl, block_iq4_nl, 0)
GEMM_INT(gemm_iq4_xs, block_iq4_xs, 0)
GEMM_INT(gemm_q4_1, block_q4_1, sizeof(eng_block_q4_1))
GEMM_INT(gemm_q5_1, block_q5_1, sizeof(eng_block_q5_1))

/* Q4_K and Q5_K (the same d, dmin, scales at bytes 0, 2, 4; Q5_K's qh at
 * 16 and qs at 48): x block b is sub-block j = b % 8 of super-block b / 8;
 * its codes are the low (j even) or high nibbles of qs[32 * (j / 2) ..],
 * with Q5_K's bit j of qh[l] on top as bit 4. */
static void gemm_k45(bool five, const void *w, size_t rb, const eng_qx *x, float *Y,
                     int64_t ldy, int64_t r0, int64_t r1)
{
    const size_t sb = five ? sizeof(eng_block_q5_k) : sizeof(eng_block_q4_k);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * rb;
        for (int64_t t = 0; t < x->T; t++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < x->n / 32; b++) {
                const uint8_t *p = row + (size_t)(b / 8) * sb;
                const int j = (int)(b % 8);
                int sc, m;
                eng_q4k_scale_min(p + 4, j, &sc, &m);
                const float S = h2f(p) * (float)sc, M = h2f(p + 2) * (float)m;
                const uint8_t *qs = p + (five ? 48 : 16) + 32 * (j / 2), *qh = p + 16;
                const int64_t i = qx_at(x, t, b);
                const int8_t *q = x->q + i * 32;
                int32_t isum = 0;
                for (int l = 0; l < 32; l++) {
                    const int hi = five ? ((qh[l] >> j) & 1) << 4 : 0;
                    isum += (((qs[l] >> (4 * (j & 1))) & 15) | hi) * q[l];
                }
                acc = min_step(acc, isum, S, M, x->sf[i], x->d[i]);
            }
            Y[t * ldy + r] = acc;
        }
    }
}

static void gemm_q4_k(const void *w, size_t rb, const eng_qx *x, float *Y, int64_t ldy,
                      int64_t r0, int64_t r1, void *scratch)
{
    (void)scratch;
    gemm_k45(false, w, rb, x, Y, ldy, r0, r1);
}

static void gemm_q5_k(const void *w, size_t rb, const eng_qx *x, float *Y, int64_t ldy,
                      int64_t r0, int64_t r1, void *scratch)
{
    (void)scratch;
    gemm_k45(true, w, rb, x, Y, ldy, r0, r1);
}

/* Q2_K: block k = b % 8 of super-block b / 8 has codes q = bits
 * 2(k%4)..+1 of qs[32(k/4) + l] and groups 2k, 2k+1 with scale sc (low
 * nibble) and min m (high nibble) of scales[2k], scales[2k+1]. Its scales
 * go into the codes, u = sc*q <= 45, and its mins into an exact integer
 * with the half sums, so (as decode does per super-block) one float
 * product each for d and dmin:
 *   i = sum u xq, mi = m_0 hn_0 + m_1 hn_1 (minus the min sum)
 *   acc = fma(fma(float(mi), dmin, float(i) * d), dx, acc)             */
static void gemm_q2_k(const void *w, size_t rb, const eng_qx *x, float *Y, int64_t ldy,
                      int64_t r0, int64_t r1, void *scratch)
{
    (void)scratch;
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q2_k *row = (const eng_block_q2_k *)((const char *)w + (size_t)r * rb);
        for (int64_t t = 0; t < x->T; t++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < x->n / 32; b++) {
                const eng_block_q2_k *p = row + b / 8;
                const int k = (int)(b % 8);
                const uint8_t *qs = p->qs + 32 * (k / 4), *sm = p->scales + 2 * k;
                const int64_t i = qx_at(x, t, b);
                const int8_t *q = x->q + i * 32;
                int32_t isum = 0;
                for (int l = 0; l < 32; l++)
                    isum += (sm[l / 16] & 15) * ((qs[l] >> (2 * (k % 4))) & 3) * q[l];
                const int32_t mi = (sm[0] >> 4) * x->hn[2 * i] + (sm[1] >> 4) * x->hn[2 * i + 1];
                acc = fmaf(fmaf((float)mi, eng_fp16_to_fp32(p->dmin),
                                (float)isum * eng_fp16_to_fp32(p->d)), x->d[i], acc);
            }
            Y[t * ldy + r] = acc;
        }
    }
}

/* Codes u[32] of block b of a row and the scales of its two halves
 * (halves form). */
typedef void (*halves_block_fn)(const void *row, int64_t b, uint8_t u[32], float S[2]);

/* Q6_K: x block b is quarter c = b % 4 of half h = (b % 8) / 4 of
 * super-block b / 8: codes (ql[64h + 32(c&1) + l] >> 4(c>>1)) & 15 with
 * bits 2c..2c+1 of qh[32h + l] on top; scales[2(b%8)] and the next. */
static void block_q6_k(const void *row, int64_t b, uint8_t u[32], float S[2])
{
    const eng_block_q6_k *p = (const eng_block_q6_k *)row + b / 8;
    const int k = (int)(b % 8), h = k / 4, c = k % 4;
    const uint8_t *ql = p->ql + 64 * h + 32 * (c & 1), *qh = p->qh + 32 * h;
    for (int l = 0; l < 32; l++)
        u[l] = (uint8_t)(((ql[l] >> (4 * (c >> 1))) & 15) | ((qh[l] >> (2 * c)) & 3) << 4);
    const float d = eng_fp16_to_fp32(p->d);
    S[0] = d * (float)p->scales[2 * k];
    S[1] = d * (float)p->scales[2 * k + 1];
}

/* Q3_K: x block k = b % 8 of super-block b / 8: codes u = the 2 bits
 * 2(k%4).. of qs[32(k/4) + l] | bit k of hmask[l] << 2 (value u - 4);
 * the unbiased 6-bit scales 2k and 2k+1. */
static void block_q3_k(const void *row, int64_t b, uint8_t u[32], float S[2])
{
    const eng_block_q3_k *p = (const eng_block_q3_k *)row + b / 8;
    const int k = (int)(b % 8);
    const uint8_t *qs = p->qs + 32 * (k / 4);
    for (int l = 0; l < 32; l++)
        u[l] = (uint8_t)(((qs[l] >> (2 * (k % 4))) & 3) | ((p->hmask[l] >> k) & 1) << 2);
    int8_t sc[16];
    eng_q3k_unpack_scales(p->scales, sc);
    const float d = eng_fp16_to_fp32(p->d);
    S[0] = d * (float)sc[2 * k];
    S[1] = d * (float)sc[2 * k + 1];
}

static void gemm_halves(halves_block_fn blk, int off, const void *w, size_t rb, const eng_qx *x,
                        float *Y, int64_t ldy, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const void *row = (const char *)w + (size_t)r * rb;
        for (int64_t t = 0; t < x->T; t++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < x->n / 32; b++) {
                uint8_t u[32];
                float S[2];
                blk(row, b, u, S);
                const int64_t i = qx_at(x, t, b);
                const int8_t *q = x->q + i * 32;
                int32_t is[2] = {off * x->hn[2 * i], off * x->hn[2 * i + 1]};
                for (int l = 0; l < 32; l++)
                    is[l / 16] += u[l] * q[l];
                acc = halves_step(acc, is[0], is[1], S[0], S[1], x->d[i]);
            }
            Y[t * ldy + r] = acc;
        }
    }
}

#define GEMM_HALVES(NAME, BLOCK, OFF)                                                        \
    static void NAME(const void *w, size_t rb, const eng_qx *x, float *Y, int64_t ldy,       \
                     int64_t r0, int64_t r1, void *scratch)                                  \
    {                                                                                        \
        (void)scratch;                                                                       \
        gemm_halves(BLOCK, OFF, w, rb, x, Y, ldy, r0, r1);                                   \
    }
GEMM_HALVES(gemm_q6_k, block_q6_k, 32)
GEMM_HALVES(gemm_q3_k, block_q3_k, 4)

/* Float weights: fma in ascending k (gemm.h). */
typedef float (*widen_fn)(const void *row, int64_t k);
static float at_f32(const void *row, int64_t k) { return ((const float *)row)[k]; }
static float at_f16(const void *row, int64_t k) { return eng_fp16_to_fp32(((const uint16_t *)row)[k]); }
static float at_bf16(const void *row, int64_t k) { return eng_bf16_to_fp32(((const uint16_t *)row)[k]); }

static void gemm_float(widen_fn at, const void *w, size_t rb, const eng_xt *x, float *Y,
                       int64_t ldy, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const void *row = (const char *)w + (size_t)r * rb;
        for (int64_t t = 0; t < x->T; t++) {
            const float *xt = x->x + (t / x->kc) * x->kc * x->n + t % x->kc;
            float acc = 0.0f;
            for (int64_t k = 0; k < x->n; k++)
                acc = fmaf(at(row, k), xt[k * x->kc], acc);
            Y[t * ldy + r] = acc;
        }
    }
}

#define GEMM_F(NAME, AT)                                                                     \
    static void NAME(const void *w, size_t rb, const eng_xt *x, float *Y, int64_t ldy,       \
                     int64_t r0, int64_t r1, void *scratch)                                  \
    {                                                                                        \
        (void)scratch;                                                                       \
        gemm_float(AT, w, rb, x, Y, ldy, r0, r1);                                            \
    }
GEMM_F(gemm_f32, at_f32)
GEMM_F(gemm_f16, at_f16)
GEMM_F(gemm_bf16, at_bf16)

const eng_gemm_kernels eng_gemm_scalar = {
    .simd = ENG_SIMD_SCALAR,
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

const eng_gemm_kernels *eng_gemm_get(eng_simd s)
{
    switch (s) {
    case ENG_SIMD_AVX512: return &eng_gemm_avx512;
    case ENG_SIMD_AVX2: return &eng_gemm_avx2;
    default: return &eng_gemm_scalar;
    }
}

bool eng_gemm_has(const eng_gemm_kernels *g, int type)
{
    return type >= 0 && type < ENG_TYPE_COUNT && g->gemm[type] != NULL;
}

bool eng_gemm_has_f(const eng_gemm_kernels *g, int type)
{
    return type >= 0 && type < ENG_TYPE_COUNT && g->gemm_f[type] != NULL;
}
