/*
 * formats.h — tensor formats (ggml types) and the kernels that compute with
 * them in their stored form.
 *
 * The format table has one entry per ggml type id known to ggml (block size
 * and bytes per block, so the GGUF reader can size every tensor of any
 * published file); `supported` marks the types that have kernels here:
 * F32 (0), F16 (1), Q4_0 (2), Q5_0 (6), Q8_0 (8), Q4_K (12), Q6_K (14),
 * BF16 (30) — what llama.cpp's Q4_K_M files hold.
 *
 * Block layouts are ggml's (ggml-common.h): Q8_0 = {f16 d; i8 qs[32]}
 * (34 bytes, x = qs*d); Q4_0 = {f16 d; u8 qs[16]} (18 bytes, element j<16 is
 * (qs[j]&15)-8, element j+16 is (qs[j]>>4)-8, times d); Q5_0 = {f16 d;
 * u8 qh[4]; u8 qs[16]} (22 bytes, Q4_0's nibbles plus bit j of qh as bit 4,
 * minus 16); Q4_K = {f16 d, dmin; u8 scales[12]; u8 qs[128]} (144 bytes per
 * 256: 8 sub-blocks of 32 with 6-bit scale and min, x = d*sc*q - dmin*m);
 * Q6_K = {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d} (210 bytes per 256,
 * x = d*scales[j/16]*(q-32), q 6 bits). Exact formulas in docs/engine.md.
 * Quantization of Q8_0/Q4_0/Q5_0 is ggml's reference code
 * (quantize_row_q*_0_ref), so our files hold the same bytes llama.cpp would
 * write; Q4_K/Q6_K use simpler quantizers than ggml's weighted search
 * (valid files, error bounds in docs/engine.md).
 *
 * Decode kernels. y[r] = dot(row r of W, x) for r in [r0, r1), computed from
 * the stored bytes (never a dequantized copy of W). x is prepared once into
 * an eng_xvec and reused for any number of rows and matrices of the same
 * width (the gate and up projections of every expert of a layer):
 *   F32, F16, BF16 weights: dot with x in f32 (F16/BF16 widened exactly);
 *   Q8_0, Q4_0, Q5_0 weights: x quantized to Q8_0 blocks (as ggml's
 *     vec_dot_q8_0_q8_0 / vec_dot_q4_0_q8_0 do), the integer block sums are
 *     exact, then y = sum over blocks of d_w * d_x * isum in f32. The x
 *     quantization adds at most d_x/2 = amax_block/254 per element of x.
 *   Q4_K, Q6_K weights: the same Q8_0 form of x (one scale per 32, where
 *     ggml uses one per 256); per x block, exact integer sums times the
 *     weight's scales: Q4_K dx*(d*sc*sum(q*xq) - dmin*m*sum(xq)), Q6_K
 *     d*dx*(sc0*sum0 + sc1*sum1) over its two groups of 16.
 * Paths differ only in float summation order: results of the scalar, AVX2
 * and AVX-512 paths agree within (n+2) * 2^-24 * sum|w_i x_i| (per row; for
 * Q4_K sum(|d*sc*q| + |dmin*m|)*|x_i|, as the two parts are summed apart),
 * the bound the tests check against a double-precision reference.
 *
 * SIMD. eng_kernels_get(level) returns the kernel table of one path
 * (scalar, AVX2+FMA+F16C, AVX-512F/BW/VL/VNNI), NULL when this CPU lacks it.
 * eng_simd_default reads MOEBENCH_SIMD=scalar|avx2|avx512 or picks the best
 * path the CPU has (cpuid). Tables are constant; nothing global is mutable.
 *
 * Thread-safety: every function here is pure with respect to shared state;
 * threads may run kernels on disjoint y ranges with the same W and xvec
 * concurrently. An eng_xvec is written only by eng_xvec_prepare.
 */
#ifndef ENG_FORMATS_H
#define ENG_FORMATS_H

#include "engine/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ggml type ids (ggml.h enum ggml_type). Gaps are removed types. */
typedef enum eng_type {
    ENG_TYPE_F32 = 0,
    ENG_TYPE_F16 = 1,
    ENG_TYPE_Q4_0 = 2,
    ENG_TYPE_Q4_1 = 3,
    ENG_TYPE_Q5_0 = 6,
    ENG_TYPE_Q5_1 = 7,
    ENG_TYPE_Q8_0 = 8,
    ENG_TYPE_Q8_1 = 9,
    ENG_TYPE_Q2_K = 10,
    ENG_TYPE_Q3_K = 11,
    ENG_TYPE_Q4_K = 12,
    ENG_TYPE_Q5_K = 13,
    ENG_TYPE_Q6_K = 14,
    ENG_TYPE_Q8_K = 15,
    ENG_TYPE_IQ2_XXS = 16,
    ENG_TYPE_IQ2_XS = 17,
    ENG_TYPE_IQ3_XXS = 18,
    ENG_TYPE_IQ1_S = 19,
    ENG_TYPE_IQ4_NL = 20,
    ENG_TYPE_IQ3_S = 21,
    ENG_TYPE_IQ2_S = 22,
    ENG_TYPE_IQ4_XS = 23,
    ENG_TYPE_I8 = 24,
    ENG_TYPE_I16 = 25,
    ENG_TYPE_I32 = 26,
    ENG_TYPE_I64 = 27,
    ENG_TYPE_F64 = 28,
    ENG_TYPE_IQ1_M = 29,
    ENG_TYPE_BF16 = 30,
    ENG_TYPE_TQ1_0 = 34,
    ENG_TYPE_TQ2_0 = 35,
    ENG_TYPE_MXFP4 = 39,
    ENG_TYPE_COUNT = 40   /* ids >= this are unknown */
} eng_type;

typedef struct eng_format {
    int type;            /* ggml type id                                 */
    const char *name;    /* ggml's name: "f32", "q8_0", "bf16", "q4_K"   */
    int64_t blck;        /* elements per block (1 for plain floats)      */
    size_t type_size;    /* bytes per block                              */
    bool supported;      /* kernels here: quantize, dequantize, matvec   */
} eng_format;

/* The entry for a ggml type id; NULL for ids ggml does not define. */
const eng_format *eng_format_get(int type);
/* Name of a type id, "?" for unknown ids. */
const char *eng_type_name(int type);
/* Type id for a ggml name ("q8_0", case-insensitive); -1 when unknown. */
int eng_type_from_name(const char *name);
/* Bytes of a row of n elements: n/blck*type_size; 0 when type is unknown,
 * n < 0 or n is not a multiple of the block size. */
uint64_t eng_type_row_bytes(int type, int64_t n);

/* ---- scalar conversions ------------------------------------------------- */

/* IEEE binary16 <-> binary32. to_fp32 is exact (subnormals, inf; a nan stays
 * a nan with its payload, made quiet as F16C does);
 * to_fp16 rounds to nearest even, overflows to inf, keeps nan a nan. */
float eng_fp16_to_fp32(uint16_t h);
uint16_t eng_fp32_to_fp16(float f);
/* bf16 = the high 16 bits of an fp32. to_bf16 rounds to nearest even and
 * turns a nan into a quiet nan, like ggml's GGML_FP32_TO_BF16. */
float eng_bf16_to_fp32(uint16_t h);
uint16_t eng_fp32_to_bf16(float f);

/* ---- whole rows, reference code ----------------------------------------- */

/* n elements (a multiple of the block size) of a supported type.
 * ENG_EUNSUPPORTED for a type without kernels, ENG_EINVAL for a bad n.
 * quantize: f32 -> stored bytes, ggml's reference rounding.
 * dequantize: stored bytes -> f32 (the scalar reference). */
int eng_quantize_row(int type, const float *src, void *dst, int64_t n, eng_err *err);
int eng_dequantize_row(int type, const void *src, float *dst, int64_t n, eng_err *err);

/* ---- SIMD paths --------------------------------------------------------- */

typedef enum eng_simd {
    ENG_SIMD_SCALAR = 0,
    ENG_SIMD_AVX2 = 1,    /* AVX2 + FMA + F16C                 */
    ENG_SIMD_AVX512 = 2,  /* AVX-512 F + BW + VL + VNNI (and the above) */
    ENG_SIMD_COUNT
} eng_simd;

const char *eng_simd_name(eng_simd s);            /* "scalar", "avx2", "avx512" */
/* Parses "scalar" / "avx2" / "avx512"; ENG_EINVAL otherwise. */
int eng_simd_parse(const char *s, eng_simd *out, eng_err *err);
/* Whether this CPU (and OS) can run the path. */
bool eng_simd_available(eng_simd s);
/* The best available path. */
eng_simd eng_simd_best(void);
/* MOEBENCH_SIMD when set (ENG_EINVAL when unknown, ENG_EUNSUPPORTED when the
 * CPU lacks it), else eng_simd_best(). */
int eng_simd_default(eng_simd *out, eng_err *err);

typedef struct eng_kernels eng_kernels;  /* constant table, never freed */
/* Kernel table of one path; NULL when !eng_simd_available(s). */
const eng_kernels *eng_kernels_get(eng_simd s);
eng_simd eng_kernels_simd(const eng_kernels *k);

/* x prepared for the decode kernels. Allocate once for the widest x (n_max),
 * then prepare per token. f32 is borrowed: x must stay unchanged while the
 * xvec is used. The Q8_0 form exists when n % 32 == 0. */
typedef struct eng_xvec {
    int64_t n;           /* elements of x                                  */
    int64_t n_max;       /* capacity given to init                         */
    const float *f32;    /* [n] x itself (borrowed)                        */
    bool has_q8;         /* n % 32 == 0: xd/xq/xs below are filled         */
    float *xd;           /* [n/32] Q8_0 scales, each an fp16 value as f32  */
    int8_t *xq;          /* [n] Q8_0 quants (64-byte aligned)              */
    int16_t *xs;         /* [n/32] sum of each block's quants (Q4_K mins)  */
} eng_xvec;

int eng_xvec_init(eng_xvec *v, int64_t n_max, eng_err *err);
void eng_xvec_free(eng_xvec *v);
/* Points v at x[0..n) and quantizes it (n <= n_max; ENG_EINVAL otherwise).
 * The Q8_0 quantization is bit-identical on every path (ggml's reference
 * rounding: d = amax/127 rounded to fp16, q = roundf(x/d) with 1/d). */
int eng_xvec_prepare(const eng_kernels *k, eng_xvec *v, const float *x, int64_t n);

/* y[r] = dot(row r of W, x) for r in [r0, r1). W holds rows of x->n elements
 * of `type`, row r at (const char *)w + r * eng_type_row_bytes(type, x->n);
 * y is indexed by r (only y[r0..r1) is written). ENG_EUNSUPPORTED for a type
 * without kernels; ENG_EINVAL when x->n is not a multiple of the block size
 * or a quantized type meets an x without its Q8_0 form. */
int eng_matvec(const eng_kernels *k, int type, const void *w, const eng_xvec *x, float *y,
               int64_t r0, int64_t r1);

/* Rows [r0, r1) of W (rows of n elements) as f32 into dst[(r - r0) * n + j]
 * (prefill: tiles for sgemm). Same codes as eng_matvec. */
int eng_dequant_rows(const eng_kernels *k, int type, const void *w, int64_t n, int64_t r0,
                     int64_t r1, float *dst);

#endif
