/*
 * vecops.c — the scalar table of vecops.h (ggml's portable C, what
 * llama.cpp computes when built without SIMD) and the choice of table.
 * The AVX2 and AVX-512 tables are in vecops_avx2.c and vecops_avx512.c.
 */
#include "engine/vecops.h"

#include <math.h>

/* ggml_vec_dot_f32 without GGML_SIMD: products rounded to f32, summed in
 * ggml_float (double). */
static float dot_scalar(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)(a[i] * b[i]);
    return (float)s;
}

static double exp_sum_scalar(float *y, const float *x, int64_t n, float max)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        const float v = expf(x[i] - max);
        s += (double)v;
        y[i] = v;
    }
    return s;
}

/* ggml_silu_f32(x) * u */
static void swiglu_scalar(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* Each output element a dot_scalar over the cells, 256 elements at a time. */
static void wsum_scalar(float *out, int64_t n, const float *w, const float *v, int64_t stride,
                        int64_t cap, int64_t p0, int64_t p1)
{
    for (int64_t i0 = 0; i0 < n; i0 += 256) {
        const int64_t nb = n - i0 < 256 ? n - i0 : 256;
        double acc[256] = {0};
        for (int64_t p = p0; p < p1; p++) {
            const float *row = v + (p % cap) * stride + i0, wp = w[p];
            for (int64_t i = 0; i < nb; i++)
                acc[i] += (double)(row[i] * wp);
        }
        for (int64_t i = 0; i < nb; i++)
            out[i0 + i] = (float)acc[i];
    }
}

const eng_vecops eng_vecops_scalar = {
    .simd = ENG_SIMD_SCALAR,
    .name = "scalar",
    .fma = false,
    .dot = dot_scalar,
    .exp_sum = exp_sum_scalar,
    .swiglu = swiglu_scalar,
    .wsum = wsum_scalar,
};

const eng_vecops *eng_vecops_get(eng_simd s)
{
    if (!eng_simd_available(s))
        return NULL;
    switch (s) {
    case ENG_SIMD_SCALAR: return &eng_vecops_scalar;
    case ENG_SIMD_AVX2: return &eng_vecops_avx2;
    case ENG_SIMD_AVX512: return &eng_vecops_avx512;
    default: return NULL;
    }
}
