/*
 * formats.h — tensor formats (ggml types) and the kernels that compute with
 * them in their stored form.
 *
 * The format table has one entry per ggml type id known to ggml (block size
 * and bytes per block, so the GGUF reader can size every tensor of any
 * published file); `supported` marks the types that have kernels here:
 * F32 (0), F16 (1), BF16 (30), Q4_0 (2), Q4_1 (3), Q5_0 (6), Q5_1 (7),
 * Q8_0 (8), Q2_K (10), Q3_K (11), Q4_K (12), Q5_K (13), Q6_K (14),
 * IQ4_NL (20), IQ4_XS (23), MXFP4 (39) — the formats of published MoE GGUF
 * files. Block layouts are ggml's (ggml-common.h; engine/kernels.h has the
 * structs, docs/engine.md the formulas).
 *
 * Quantization is ggml's reference code (ggml-quants.c quantize_row_*_ref,
 * and quantize_iq4_nl / quantize_iq4_xs without an importance matrix), so
 * an f32 row gives the bytes llama-quantize writes.
 *
 * Decode kernels. y[r] = dot(row r of W, x) for r in [r0, r1), computed from
 * the stored bytes (never a dequantized copy of W), with llama.cpp's CPU
 * numerics: x is first converted to the weight type's dot partner (ggml's
 * vec_dot_type, eng_type_xform): Q8_0 blocks for Q4_0/Q5_0/Q8_0/IQ4_NL/
 * MXFP4, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants and IQ4_XS, f16 for F16,
 * bf16 for BF16, x itself for F32. The conversions are the ones the x86
 * build of llama.cpp runs (its AVX quantize_row_q8_0/q8_1, the reference
 * quantize_row_q8_K), bit-identical on every path. The dot of each AVX2 and
 * AVX-512 kernel is ggml's x86 vec_dot for that type operation for
 * operation: the same integer lane sums, the same float lanes, FMAs and
 * horizontal-sum order, so its result has the bits llama.cpp computes
 * (F16/BF16: as llama.cpp built for that path's instruction set; on an
 * AVX-512 CPU with AVX512-FP16 ggml accumulates the f16 dot in f16, and
 * with AVX512-BF16 it uses vdpbf16ps, so the AVX-512 path does too). The
 * scalar path is the plain reference: exact integer block sums, f32
 * accumulation in order; it agrees with the others within
 * (n + 2) * 2^-24 * sum |w_j x_j| (x the partner form's value), f16
 * accumulation excepted (docs/engine.md derives its bound).
 *
 * SIMD. eng_kernels_get(level) returns the kernel table of one path
 * (scalar, AVX2+FMA+F16C, AVX-512F/BW/VL/VNNI), NULL when this CPU lacks it.
 * eng_simd_default reads MOEBENCH_SIMD=scalar|avx2|avx512 or picks the best
 * path the CPU has (cpuid). Tables are constant; nothing global is mutable.
 *
 * Thread-safety: kernels are pure with respect to shared state; threads may
 * run eng_matvec on disjoint y ranges with the same W and xvec
 * concurrently. The partner forms of an xvec are a cache filled by the
 * first eng_matvec that needs one after eng_xvec_prepare: one thread builds
 * it, the others wait for it (atomics), so the cache is safe to share.
 * eng_xvec_prepare itself must not run concurrently with uses of the xvec.
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
/* The table's name: the path, plus the AVX-512 extensions whose f16/bf16
 * dots it reproduces ("avx512+fp16+bf16"). */
const char *eng_kernels_name(const eng_kernels *k);

/* The partner forms of x (ggml vec_dot_type). */
typedef enum eng_xform {
    ENG_XF_F32 = 0,   /* x itself (F32 weights)                          */
    ENG_XF_Q8 = 1,    /* Q8_0 blocks of 32, with Q8_1's sums (s)         */
    ENG_XF_Q8K = 2,   /* Q8_K blocks of 256                              */
    ENG_XF_F16 = 3,   /* x rounded to f16                                */
    ENG_XF_BF16 = 4,  /* x rounded to bf16                               */
    ENG_XF_COUNT
} eng_xform;

/* The partner form a weight type's matvec reads; -1 for types without
 * kernels. */
int eng_type_xform(int type);
/* Elements per block of a form (1, 32, 256, 1, 1). */
int64_t eng_xform_block(int form);

/* x prepared for the decode kernels. Allocate once for the widest x (n_max),
 * then prepare per input vector. f32 is borrowed: x must stay unchanged
 * while the xvec is used. The arrays below hold the partner forms; a form
 * is valid after eng_xvec_form (or an eng_matvec that needs it) since the
 * last prepare. Layout: structure of arrays (scales apart from quants, the
 * quants 64-byte aligned), the values of ggml's block_q8_0/q8_1/q8_K. */
typedef struct eng_xvec_sync eng_xvec_sync;
typedef struct eng_xvec {
    int64_t n;           /* elements of x                                  */
    int64_t n_max;       /* capacity given to init                         */
    const float *f32;    /* [n] x itself (borrowed)                        */
    float *q8_d;         /* [n/32] Q8_0/Q8_1 scale d (an fp16 value)       */
    float *q8_s;         /* [n/32] Q8_1 s = fp16(d * sum qs) (fp16 value)  */
    int8_t *q8_qs;       /* [n] Q8_0/Q8_1 quants                           */
    int32_t *q8_ls8;     /* [n/4] 8 * (q8_qs[4k] + ... + q8_qs[4k+3]): the
                          * Q4_0/Q5_0 kernels form ggml's lanes of
                          * (code - 8) * q as code * q - 8 * sum q        */
    float *q8k_d;        /* [n/256] Q8_K scale (f32)                       */
    int8_t *q8k_qs;      /* [n] Q8_K quants                                */
    int16_t *q8k_bsums;  /* [n/16] sums of 16 Q8_K quants                  */
    uint16_t *f16;       /* [n] x rounded to f16                           */
    uint16_t *bf16;      /* [n] x rounded to bf16                          */
    eng_xvec_sync *sync; /* which forms are built (atomics)                */
} eng_xvec;

int eng_xvec_init(eng_xvec *v, int64_t n_max, eng_err *err);
void eng_xvec_free(eng_xvec *v);
/* Points v at x[0..n) (n <= n_max; ENG_EINVAL otherwise) and marks every
 * partner form stale; they are built on first use. */
int eng_xvec_prepare(const eng_kernels *k, eng_xvec *v, const float *x, int64_t n);
/* Builds `form` of v with k's builder unless it is valid already
 * (thread-safe). ENG_EINVAL when n is not a multiple of the form's block
 * or form is unknown. */
int eng_xvec_form(const eng_kernels *k, const eng_xvec *v, int form);

/* y[r] = dot(row r of W, x) for r in [r0, r1). W holds rows of x->n elements
 * of `type`, row r at (const char *)w + r * eng_type_row_bytes(type, x->n);
 * y is indexed by r (only y[r0..r1) is written). Builds x's partner form
 * first if needed. ENG_EUNSUPPORTED for a type without kernels; ENG_EINVAL
 * when x->n is not a multiple of the type's block (or of its partner's). */
int eng_matvec(const eng_kernels *k, int type, const void *w, const eng_xvec *x, float *y,
               int64_t r0, int64_t r1);

/* Rows [r0, r1) of W (rows of n elements) as f32 into dst[(r - r0) * n + j]
 * (prefill: tiles for sgemm). Same codes as eng_matvec. */
int eng_dequant_rows(const eng_kernels *k, int type, const void *w, int64_t n, int64_t r0,
                     int64_t r1, float *dst);

#endif
