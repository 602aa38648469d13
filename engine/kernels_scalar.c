/*
 * kernels_scalar.c — the reference kernels: plain C, one accumulator,
 * elements in order. Every SIMD path is tested against these (and these
 * against a double-precision computation). Built without any target
 * attribute, so the compiler cannot contract a*b+c into an FMA here.
 */
#include "engine/kernels.h"

#include <math.h>
#include <string.h>

static void quant_q8(const float *x, float *xd, int8_t *xq, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0.0f, id;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(xb[j]));
        xd[b] = eng_q8_block_scale(amax, &id);
        for (int j = 0; j < 32; j++) {
            float r = roundf(xb[j] * id);
            if (r != r)        /* nan in x: keep the cast defined */
                r = 0;
            xq[b * 32 + j] = (int8_t)(r > 127 ? 127 : r < -128 ? -128 : r);
        }
    }
}

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

static void matvec_f16(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *row = (const uint16_t *)((const char *)w + (size_t)r * rb);
        float s = 0.0f;
        for (int64_t j = 0; j < x->n; j++)
            s += eng_fp16_to_fp32(row[j]) * x->f32[j];
        y[r] = s;
    }
}

static void matvec_bf16(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *row = (const uint16_t *)((const char *)w + (size_t)r * rb);
        float s = 0.0f;
        for (int64_t j = 0; j < x->n; j++)
            s += eng_bf16_to_fp32(row[j]) * x->f32[j];
        y[r] = s;
    }
}

/* ggml ggml_vec_dot_q8_0_q8_0 generic: sumf += sumi * (d_w * d_x). */
static void matvec_q8_0(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q8_0 *b = (const eng_block_q8_0 *)((const char *)w + (size_t)r * rb);
        float s = 0.0f;
        for (int64_t i = 0; i < x->n / 32; i++) {
            int32_t isum = 0;
            for (int j = 0; j < 32; j++)
                isum += b[i].qs[j] * x->xq[i * 32 + j];
            s += (float)isum * (eng_fp16_to_fp32(b[i].d) * x->xd[i]);
        }
        y[r] = s;
    }
}

/* ggml ggml_vec_dot_q4_0_q8_0 generic. */
static void matvec_q4_0(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q4_0 *b = (const eng_block_q4_0 *)((const char *)w + (size_t)r * rb);
        float s = 0.0f;
        for (int64_t i = 0; i < x->n / 32; i++) {
            const int8_t *xq = x->xq + i * 32;
            int32_t isum = 0;
            for (int j = 0; j < 16; j++)
                isum += ((b[i].qs[j] & 0xf) - 8) * xq[j] + ((b[i].qs[j] >> 4) - 8) * xq[j + 16];
            s += (float)isum * (eng_fp16_to_fp32(b[i].d) * x->xd[i]);
        }
        y[r] = s;
    }
}

/* ggml ggml_vec_dot_q5_0_q8_0 generic: q5 = low nibble | bit j of qh << 4. */
static inline int q5_at(const eng_block_q5_0 *b, uint32_t qh, int j)
{
    const int hi = (int)((qh >> j) & 1) << 4;
    return j < 16 ? ((b->qs[j] & 0xf) | hi) - 16 : ((b->qs[j - 16] >> 4) | hi) - 16;
}

static void matvec_q5_0(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q5_0 *b = (const eng_block_q5_0 *)((const char *)w + (size_t)r * rb);
        float s = 0.0f;
        for (int64_t i = 0; i < x->n / 32; i++) {
            uint32_t qh;
            memcpy(&qh, b[i].qh, 4);
            int32_t isum = 0;
            for (int j = 0; j < 32; j++)
                isum += q5_at(&b[i], qh, j) * x->xq[i * 32 + j];
            s += (float)isum * (eng_fp16_to_fp32(b[i].d) * x->xd[i]);
        }
        y[r] = s;
    }
}

/* Q4_K against the Q8_0 form of x. Sub-block j of super-block i is x block
 * 8i+j (both 32 wide), so its contribution is
 *   dx * (d*sc_j * sum(q*xq) - dmin*m_j * sum(xq))
 * with both integer sums exact (ggml vec_dot_q4_K_q8_K, whose x scale is
 * per 256 instead of per 32); sum(xq) is precomputed in the xvec. */
static void matvec_q4_k(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q4_k *b = (const eng_block_q4_k *)((const char *)w + (size_t)r * rb);
        float s = 0.0f;
        for (int64_t i = 0; i < x->n / ENG_QK_K; i++) {
            const float d = eng_fp16_to_fp32(b[i].d), dmin = eng_fp16_to_fp32(b[i].dmin);
            for (int j = 0; j < 8; j++) {
                int sc, m;
                eng_q4k_scale_min(b[i].scales, j, &sc, &m);
                const uint8_t *q = b[i].qs + 32 * (j / 2);
                const int8_t *xq = x->xq + i * ENG_QK_K + j * 32;
                const int sh = 4 * (j & 1);
                int32_t isum = 0;
                for (int l = 0; l < 32; l++)
                    isum += ((q[l] >> sh) & 0xf) * xq[l];
                const float dx = x->xd[i * 8 + j];
                s += (d * (float)sc * dx) * (float)isum;
                s -= (dmin * (float)m * dx) * (float)x->xs[i * 8 + j];
            }
        }
        y[r] = s;
    }
}

/* Element e (0..255) of a Q6_K block, q - 32 in -32..31: half h = e/128,
 * quarter c = (e/32)%4, l = e%32 (reference spec: ql[l] / ql[l+32], low
 * nibble for c < 2, qh[l] bits 2c..2c+1). Its scale is scales[e/16]. */
static inline int q6_at(const eng_block_q6_k *b, int e)
{
    const int h = e / 128, c = (e / 32) % 4, l = e % 32;
    const int lo = (b->ql[64 * h + 32 * (c & 1) + l] >> (4 * (c >> 1))) & 0xf;
    const int hi = (b->qh[32 * h + l] >> (2 * c)) & 3;
    return (lo | hi << 4) - 32;
}

/* Q6_K against the Q8_0 form of x: per 32-block k, the two 16-element
 * groups' integer sums times their int8 scales stay an exact integer
 * (|isum| <= 2 * 128 * 16 * 32 * 127 < 2^24), then d * dx_k * isum. */
static void matvec_q6_k(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const eng_block_q6_k *b = (const eng_block_q6_k *)((const char *)w + (size_t)r * rb);
        float s = 0.0f;
        for (int64_t i = 0; i < x->n / ENG_QK_K; i++) {
            const float d = eng_fp16_to_fp32(b[i].d);
            for (int k = 0; k < 8; k++) {
                const int8_t *xq = x->xq + i * ENG_QK_K + k * 32;
                int32_t s0 = 0, s1 = 0;
                for (int l = 0; l < 16; l++) {
                    s0 += q6_at(&b[i], 32 * k + l) * xq[l];
                    s1 += q6_at(&b[i], 32 * k + 16 + l) * xq[16 + l];
                }
                int32_t isum = b[i].scales[2 * k] * s0 + b[i].scales[2 * k + 1] * s1;
                s += (d * x->xd[i * 8 + k]) * (float)isum;
            }
        }
        y[r] = s;
    }
}

static void dequant_f32(const void *row, float *dst, int64_t n) { memcpy(dst, row, (size_t)n * 4); }

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

/* ggml dequantize_row_q8_0 */
static void dequant_q8_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q8_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++) {
        const float d = eng_fp16_to_fp32(b[i].d);
        for (int j = 0; j < 32; j++)
            dst[i * 32 + j] = b[i].qs[j] * d;
    }
}

/* ggml dequantize_row_q4_0 */
static void dequant_q4_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q4_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++) {
        const float d = eng_fp16_to_fp32(b[i].d);
        for (int j = 0; j < 16; j++) {
            dst[i * 32 + j] = ((b[i].qs[j] & 0xf) - 8) * d;
            dst[i * 32 + j + 16] = ((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* ggml dequantize_row_q5_0 */
static void dequant_q5_0(const void *row, float *dst, int64_t n)
{
    const eng_block_q5_0 *b = row;
    for (int64_t i = 0; i < n / 32; i++) {
        const float d = eng_fp16_to_fp32(b[i].d);
        uint32_t qh;
        memcpy(&qh, b[i].qh, 4);
        for (int j = 0; j < 32; j++)
            dst[i * 32 + j] = (float)q5_at(&b[i], qh, j) * d;
    }
}

/* ggml dequantize_row_q4_K. d*sc, dmin*m and (d*sc)*q are exact in f32
 * (11 + 6 + 4 significant bits), so the one rounding is the subtraction:
 * any evaluation order or an FMA gives these bits. */
static void dequant_q4_k(const void *row, float *dst, int64_t n)
{
    const eng_block_q4_k *b = row;
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        const float d = eng_fp16_to_fp32(b[i].d), dmin = eng_fp16_to_fp32(b[i].dmin);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            eng_q4k_scale_min(b[i].scales, j, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = b[i].qs + 32 * (j / 2);
            for (int l = 0; l < 32; l++)
                dst[32 * j + l] = d1 * (float)((q[l] >> (4 * (j & 1))) & 0xf) - m1;
        }
    }
}

/* ggml dequantize_row_q6_K; d*sc*q is exact in f32 (11 + 12 bits). */
static void dequant_q6_k(const void *row, float *dst, int64_t n)
{
    const eng_block_q6_k *b = row;
    for (int64_t i = 0; i < n / ENG_QK_K; i++, dst += ENG_QK_K) {
        const float d = eng_fp16_to_fp32(b[i].d);
        for (int e = 0; e < ENG_QK_K; e++)
            dst[e] = d * (float)b[i].scales[e / 16] * (float)q6_at(&b[i], e);
    }
}

const struct eng_kernels eng_kernels_scalar = {
    .simd = ENG_SIMD_SCALAR,
    .quant_q8 = quant_q8,
    .matvec = {[ENG_TYPE_F32] = matvec_f32, [ENG_TYPE_F16] = matvec_f16,
               [ENG_TYPE_BF16] = matvec_bf16, [ENG_TYPE_Q8_0] = matvec_q8_0,
               [ENG_TYPE_Q4_0] = matvec_q4_0, [ENG_TYPE_Q5_0] = matvec_q5_0,
               [ENG_TYPE_Q4_K] = matvec_q4_k, [ENG_TYPE_Q6_K] = matvec_q6_k},
    .dequant = {[ENG_TYPE_F32] = dequant_f32, [ENG_TYPE_F16] = dequant_f16,
                [ENG_TYPE_BF16] = dequant_bf16, [ENG_TYPE_Q8_0] = dequant_q8_0,
                [ENG_TYPE_Q4_0] = dequant_q4_0, [ENG_TYPE_Q5_0] = dequant_q5_0,
                [ENG_TYPE_Q4_K] = dequant_q4_k, [ENG_TYPE_Q6_K] = dequant_q6_k},
};
