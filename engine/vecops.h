/*
 * vecops.h — ggml's f32 row operations as one build of llama.cpp computes
 * them (not a public header): the parts of the forward pass outside the
 * weight matrices whose rounding decides whether logits match llama.cpp
 * bit for bit.
 *
 * llama.cpp 82bb485's CPU backend (ggml-cpu vec.cpp, vec.h,
 * simd-mappings.h) computes these differently per instruction set, and
 * its build (-O3 -march=native, gnu++17, so the compiler contracts a*b + c
 * into FMAs) adds its own twists; each table below reproduces one build:
 *
 *   scalar  ggml without SIMD: dots summed in double, libm expf, no FMA.
 *   avx2    ggml built for AVX2 + FMA (GGML_F32_STEP 32: four 8-lane
 *           accumulators; the AVX2 ggml_v_expf; soft_max in chunks of 8).
 *   avx512  ggml built for AVX-512 F + DQ (four 16-lane accumulators; the
 *           AVX-512 ggml_v_expf, which ends with vscalefps where the AVX2
 *           one builds the power of two by integer adds; chunks of 16).
 *
 * What each one computes, read from the source and checked against the
 * machine code of the native (AVX-512) and an AVX2 build of libggml-cpu:
 *
 *   dot      ggml_vec_dot_f32: the STEP-wide body in lanes with FMAs,
 *            reduced (a0+a2)+(a1+a3) then the horizontal tree; the n % STEP
 *            leftover is a loop GCC vectorized: its elements are added one
 *            by one to the f32 sum as rounded products (a*b, then +), except
 *            the last n % 4, which are FMAs.
 *   exp_sum  ggml_vec_soft_max_f32: y = exp(x - max) in chunks of the
 *            vector width (ggml_v_expf), each chunk's horizontal sum added
 *            to a double; the rest with libm expf one by one.
 *   swiglu   ggml_vec_swiglu_f32: silu(g) * u, ggml_v_silu (x / (1 +
 *            v_expf(-x))) in chunks, libm expf for the rest.
 *   wsum     the value sum of attention, ggml's kqv = mul_mat(V^T, P): for
 *            each output element a ggml_vec_dot_f32 over the KV cells, so
 *            cell c lands in lane c % STEP and the lanes are reduced as in
 *            dot. Cell c holds position c (one sequence, positions
 *            written in order, which is how llama.cpp fills its cache for
 *            the runs compared here), and llama.cpp pads the cells it
 *            looks at to a multiple of 256 with masked (zero-weight) ones,
 *            so no leftover loop runs.
 *
 * Softmax and attention rows are aligned the same way: callers hand
 * exp_sum whole 64-cell groups starting at a multiple of 64 (masked cells
 * -inf), so its chunks are ggml's.
 */
#ifndef ENG_VECOPS_H
#define ENG_VECOPS_H

#include "engine/formats.h"

#include <stdint.h>

/* Cells are grouped by this many (a multiple of every table's lane count
 * times its accumulators): score rows are padded to it. */
#define ENG_VEC_ALIGN 64

typedef struct eng_vecops {
    eng_simd simd;
    const char *name;
    /* Whether the build contracts a*b + c into FMAs (RoPE, YaRN). */
    bool fma;
    /* ggml_vec_dot_f32(n, a, b). */
    float (*dot)(const float *a, const float *b, int64_t n);
    /* y[i] = exp(x[i] - max) for i < n (y may be x); returns their sum
     * (ggml_float) as ggml_vec_soft_max_f32 does. */
    double (*exp_sum)(float *y, const float *x, int64_t n, float max);
    /* g[i] = silu(g[i]) * u[i] for i < n (ggml_vec_swiglu_f32). */
    void (*swiglu)(float *g, const float *u, int64_t n);
    /* out[i] for i < n: the sum over cells p in [p0, p1) of w[p] * V_p[i],
     * V_p = v + (p % cap) * stride, as ggml_vec_dot_f32 over cells 0.. of
     * a row with zero weights outside [p0, p1). */
    void (*wsum)(float *out, int64_t n, const float *w, const float *v, int64_t stride,
                 int64_t cap, int64_t p0, int64_t p1);
} eng_vecops;

extern const eng_vecops eng_vecops_scalar;
extern const eng_vecops eng_vecops_avx2;
extern const eng_vecops eng_vecops_avx512;

/* The table of a SIMD path (the one the kernels of that path pair with);
 * NULL when this CPU cannot run it. */
const eng_vecops *eng_vecops_get(eng_simd s);

/* x rounded to f32 where the compiler can no longer fuse it into an FMA
 * (GCC contracts a*b + c across statements under -std=gnu11 whenever the
 * target has FMA): for the places ggml's build rounds a product. */
static inline float eng_f32_barrier(float x)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__("" : "+x"(x));
#else
    volatile float v = x;
    x = v;
#endif
    return x;
}

#endif
