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

const struct eng_kernels eng_kernels_scalar = {
    .simd = ENG_SIMD_SCALAR,
    .quant_q8 = quant_q8,
    .matvec = {[ENG_TYPE_F32] = matvec_f32, [ENG_TYPE_F16] = matvec_f16,
               [ENG_TYPE_BF16] = matvec_bf16, [ENG_TYPE_Q8_0] = matvec_q8_0,
               [ENG_TYPE_Q4_0] = matvec_q4_0},
    .dequant = {[ENG_TYPE_F32] = dequant_f32, [ENG_TYPE_F16] = dequant_f16,
                [ENG_TYPE_BF16] = dequant_bf16, [ENG_TYPE_Q8_0] = dequant_q8_0,
                [ENG_TYPE_Q4_0] = dequant_q4_0},
};
