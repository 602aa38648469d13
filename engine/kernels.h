/*
 * kernels.h — internal: the kernel tables behind formats.h, the block
 * layouts, and the reference quantizers.
 *
 * One constant table per SIMD path (kernels_scalar.c, kernels_avx2*.c,
 * kernels_avx512*.c; AVX-512 has one table per combination of the
 * AVX512-FP16 and AVX512-BF16 extensions, because ggml's f16/bf16 dots
 * differ with them). A NULL entry means the path has no kernel for that
 * type; formats.c only exposes a path's table when every supported type has
 * its kernels (checked by the tests). Functions in the AVX2/AVX-512 files
 * carry __attribute__((target(...))) and must only be called after
 * eng_simd_available() (or eng_cpu_has_*) said yes.
 *
 * Shapes: `w` is row 0 of a matrix of rows of x->n elements, `row_bytes`
 * apart; matvec kernels write y[r] for r in [r0, r1) and read the partner
 * form of x that eng_type_xform(type) names (formats.c builds it before
 * the call). Dequant kernels convert one row of n elements (n a multiple
 * of the block size).
 *
 * The x-form builders must give the same bits on every path (the tests
 * compare them): they are ggml's x86 quantize_row_q8_0/q8_1 (id = 127/amax,
 * round half to even), quantize_row_q8_K_ref, and RNE conversions.
 */
#ifndef ENG_KERNELS_H
#define ENG_KERNELS_H

#include "engine/formats.h"

#include <string.h>

typedef void (*eng_matvec_fn)(const void *w, size_t row_bytes, const eng_xvec *x, float *y,
                              int64_t r0, int64_t r1);
typedef void (*eng_dequant_fn)(const void *row, float *dst, int64_t n);
/* x[n] (n % 32 == 0) -> Q8_0/Q8_1 form: d[n/32] (fp16 values as f32),
 * s[n/32] (Q8_1's fp16(d_unrounded * sum q) as f32), qs[n], and
 * ls8[n/4] = 8 * the sum of each 4 consecutive quants. */
typedef void (*eng_xq8_fn)(const float *x, int64_t n, float *d, float *s, int8_t *qs, int32_t *ls8);
/* x[n] (n % 256 == 0) -> Q8_K form: d[n/256], qs[n], bsums[n/16]. */
typedef void (*eng_xq8k_fn)(const float *x, int64_t n, float *d, int8_t *qs, int16_t *bsums);
/* x[n] -> f16 or bf16 bits, round to nearest even. */
typedef void (*eng_xhalf_fn)(const float *x, int64_t n, uint16_t *h);

struct eng_kernels {
    eng_simd simd;
    const char *name;        /* "scalar", "avx2", "avx512", "avx512+fp16+bf16", ... */
    eng_xq8_fn x_q8;
    eng_xq8k_fn x_q8k;
    eng_xhalf_fn x_f16, x_bf16;
    eng_matvec_fn matvec[ENG_TYPE_COUNT];
    eng_dequant_fn dequant[ENG_TYPE_COUNT];
};

extern const struct eng_kernels eng_kernels_scalar;
extern const struct eng_kernels eng_kernels_avx2;
/* AVX-512 tables: plain (ggml's AVX512F f16/bf16 dots), with the FP16
 * extension (f16 dot accumulated in f16), with BF16 (vdpbf16ps), both. */
extern const struct eng_kernels eng_kernels_avx512;
extern const struct eng_kernels eng_kernels_avx512_fp16;
extern const struct eng_kernels eng_kernels_avx512_bf16;
extern const struct eng_kernels eng_kernels_avx512_fp16_bf16;
/* CPU extensions beyond eng_simd_available's (cpuid, cached by the CPU). */
bool eng_cpu_has_avx512fp16(void);
bool eng_cpu_has_avx512bf16(void);

/* ---- block layouts (ggml-common.h; packed: no padding in any of them) ---- */

#define ENG_QK_K 256
typedef struct eng_block_q8_0 {
    uint16_t d;      /* fp16 scale */
    int8_t qs[32];
} eng_block_q8_0;
typedef struct eng_block_q4_0 {
    uint16_t d;      /* fp16 scale */
    uint8_t qs[16];  /* element j: low nibble, element j+16: high nibble, minus 8 */
} eng_block_q4_0;
typedef struct eng_block_q4_1 {
    uint16_t d, m;   /* fp16 scale and min: x = q*d + m, q in 0..15 */
    uint8_t qs[16];  /* nibbles as in Q4_0 */
} eng_block_q4_1;
typedef struct eng_block_q5_0 {
    uint16_t d;      /* fp16 scale */
    uint8_t qh[4];   /* bit j (little-endian u32): 5th bit of element j */
    uint8_t qs[16];  /* low 4 bits as in Q4_0; value = (q5 - 16) * d */
} eng_block_q5_0;
typedef struct eng_block_q5_1 {
    uint16_t d, m;   /* x = q5*d + m, q5 in 0..31 */
    uint8_t qh[4];
    uint8_t qs[16];
} eng_block_q5_1;
typedef struct eng_block_iq4_nl {
    uint16_t d;      /* fp16 scale: x = d * eng_kvalues_iq4nl[nibble] */
    uint8_t qs[16];  /* nibbles as in Q4_0 */
} eng_block_iq4_nl;
typedef struct eng_block_mxfp4 {
    uint8_t e;       /* E8M0 shared exponent: x = eng_kvalues_mxfp4[nibble] * 2^(e-128) */
    uint8_t qs[16];  /* nibbles as in Q4_0 */
} eng_block_mxfp4;

/* K-quants: super-blocks of 256. */
typedef struct eng_block_q2_k {
    uint8_t scales[16];  /* group g of 16: scale (low nibble), min (high nibble) */
    uint8_t qs[64];      /* 2-bit codes, four per byte (see dequant_q2_k) */
    uint16_t d, dmin;    /* fp16 super-block scales */
} eng_block_q2_k;
typedef struct eng_block_q3_k {
    uint8_t hmask[32];   /* high bit of each code (bit set: code >= 0) */
    uint8_t qs[64];      /* low 2 bits */
    uint8_t scales[12];  /* 16 x 6-bit scales, biased by 32 */
    uint16_t d;
} eng_block_q3_k;
typedef struct eng_block_q4_k {
    uint16_t d;          /* fp16 super-block scale of the scales */
    uint16_t dmin;       /* fp16 super-block scale of the mins   */
    uint8_t scales[12];  /* 8 x (6-bit scale, 6-bit min)          */
    uint8_t qs[128];
} eng_block_q4_k;
typedef struct eng_block_q5_k {
    uint16_t d, dmin;
    uint8_t scales[12];  /* as Q4_K */
    uint8_t qh[32];      /* 5th bits */
    uint8_t qs[128];     /* low 4 bits as Q4_K */
} eng_block_q5_k;
typedef struct eng_block_q6_k {
    uint8_t ql[128];     /* low 4 bits          */
    uint8_t qh[64];      /* high 2 bits         */
    int8_t scales[16];   /* one per 16 elements */
    uint16_t d;          /* fp16 super-block scale */
} eng_block_q6_k;
typedef struct eng_block_iq4_xs {
    uint16_t d;
    uint16_t scales_h;   /* 2 high bits of each of the 8 6-bit scales */
    uint8_t scales_l[4]; /* 4 low bits of each scale */
    uint8_t qs[128];     /* nibbles per 32-block as in IQ4_NL */
} eng_block_iq4_xs;
_Static_assert(sizeof(eng_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(eng_block_q4_0) == 18, "q4_0 block is 18 bytes");
_Static_assert(sizeof(eng_block_q4_1) == 20, "q4_1 block is 20 bytes");
_Static_assert(sizeof(eng_block_q5_0) == 22, "q5_0 block is 22 bytes");
_Static_assert(sizeof(eng_block_q5_1) == 24, "q5_1 block is 24 bytes");
_Static_assert(sizeof(eng_block_iq4_nl) == 18, "iq4_nl block is 18 bytes");
_Static_assert(sizeof(eng_block_mxfp4) == 17, "mxfp4 block is 17 bytes");
_Static_assert(sizeof(eng_block_q2_k) == 84, "q2_K block is 84 bytes");
_Static_assert(sizeof(eng_block_q3_k) == 110, "q3_K block is 110 bytes");
_Static_assert(sizeof(eng_block_q4_k) == 144, "q4_K block is 144 bytes");
_Static_assert(sizeof(eng_block_q5_k) == 176, "q5_K block is 176 bytes");
_Static_assert(sizeof(eng_block_q6_k) == 210, "q6_K block is 210 bytes");
_Static_assert(sizeof(eng_block_iq4_xs) == 136, "iq4_xs block is 136 bytes");

/* IQ4_NL/IQ4_XS code values and MXFP4's E2M1 values doubled (ggml-common.h
 * kvalues_iq4nl, kvalues_mxfp4). */
extern const int8_t eng_kvalues_iq4nl[16];
extern const int8_t eng_kvalues_mxfp4[16];

/* 2^(e-128) as f32 (ggml_e8m0_to_fp32_half): subnormal for e < 2, and
 * e = 255 gives 2^127, not a NaN. */
static inline float eng_e8m0_half(uint8_t e)
{
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Q4_K/Q5_K sub-block j (0..7): its 6-bit scale and min (ggml
 * get_scale_min_k4). */
static inline void eng_q4k_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q4_K/Q5_K's 8 scales (out[0..7]) and 8 mins (out[8..15]) from
 * scales[12] at once, the mask arithmetic of ggml's vec_dot_q4_K (the same
 * values as eng_q4k_scale_min for every j; the tests compare them). */
static inline void eng_q4k_unpack_scales(const uint8_t *s, uint8_t out[16])
{
    uint32_t u[4];
    memcpy(u, s, 12);
    const uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
    u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
    const uint32_t m03 = u[1] & k1;
    u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
    u[2] = m03;
    u[0] &= k1;
    memcpy(out, u, 16);
}

/* Q3_K's 16 scales, unbiased (-32..31), from scales[12] (ggml's aux
 * shuffle in dequantize_row_q3_K / vec_dot_q3_K). */
static inline void eng_q3k_unpack_scales(const uint8_t *s, int8_t out[16])
{
    uint32_t a[3], u[4];
    memcpy(a, s, 12);
    const uint32_t k1 = 0x03030303, k2 = 0x0f0f0f0f;
    u[0] = (a[0] & k2) | (((a[2] >> 0) & k1) << 4);
    u[1] = (a[1] & k2) | (((a[2] >> 2) & k1) << 4);
    u[2] = ((a[0] >> 4) & k2) | (((a[2] >> 4) & k1) << 4);
    u[3] = ((a[1] >> 4) & k2) | (((a[2] >> 6) & k1) << 4);
    memcpy(out, u, 16);
    for (int j = 0; j < 16; j++)
        out[j] = (int8_t)(out[j] - 32);
}

/* IQ4_XS sub-block ib (0..7): its 6-bit scale minus 32. */
static inline int eng_iq4xs_scale(const eng_block_iq4_xs *b, int ib)
{
    return (((b->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((b->scales_h >> 2 * ib) & 3) << 4)) - 32;
}

/* ---- reference quantizers (formats_quant.c): ggml-quants.c's, f32 rows
 * of n (a multiple of the block) to blocks; the caller checked n and that
 * every element is finite. ---- */
void eng_quant_q4_0(const float *x, void *y, int64_t n);
void eng_quant_q4_1(const float *x, void *y, int64_t n);
void eng_quant_q5_0(const float *x, void *y, int64_t n);
void eng_quant_q5_1(const float *x, void *y, int64_t n);
void eng_quant_q8_0(const float *x, void *y, int64_t n);
void eng_quant_iq4_nl(const float *x, void *y, int64_t n);
void eng_quant_mxfp4(const float *x, void *y, int64_t n);
void eng_quant_q2_k(const float *x, void *y, int64_t n);
void eng_quant_q3_k(const float *x, void *y, int64_t n);
void eng_quant_q4_k(const float *x, void *y, int64_t n);
void eng_quant_q5_k(const float *x, void *y, int64_t n);
void eng_quant_q6_k(const float *x, void *y, int64_t n);
void eng_quant_iq4_xs(const float *x, void *y, int64_t n);

/* x-form builders of the scalar path (the SIMD paths may reuse them). */
void eng_scalar_x_q8(const float *x, int64_t n, float *d, float *s, int8_t *qs, int32_t *ls8);
void eng_scalar_x_q8k(const float *x, int64_t n, float *d, int8_t *qs, int16_t *bsums);
void eng_scalar_x_f16(const float *x, int64_t n, uint16_t *h);
void eng_scalar_x_bf16(const float *x, int64_t n, uint16_t *h);

/* AVX2 functions the AVX-512 tables reuse (kernels_avx2*.c). */
#define ENG_DQ(name) void name(const void *row, float *dst, int64_t n)
void eng_avx2_x_q8(const float *x, int64_t n, float *d, float *s, int8_t *qs, int32_t *ls8);
void eng_avx2_x_q8k(const float *x, int64_t n, float *d, int8_t *qs, int16_t *bsums);
void eng_avx2_x_f16(const float *x, int64_t n, uint16_t *h);
ENG_DQ(eng_avx2_dequant_f16);
ENG_DQ(eng_avx2_dequant_bf16);
ENG_DQ(eng_avx2_dequant_q8_0);
ENG_DQ(eng_avx2_dequant_q4_0);
ENG_DQ(eng_avx2_dequant_q4_1);
ENG_DQ(eng_avx2_dequant_q5_0);
ENG_DQ(eng_avx2_dequant_q5_1);
ENG_DQ(eng_avx2_dequant_iq4_nl);
ENG_DQ(eng_avx2_dequant_mxfp4);
ENG_DQ(eng_avx2_dequant_q2_k);
ENG_DQ(eng_avx2_dequant_q3_k);
ENG_DQ(eng_avx2_dequant_q4_k);
ENG_DQ(eng_avx2_dequant_q5_k);
ENG_DQ(eng_avx2_dequant_q6_k);
ENG_DQ(eng_avx2_dequant_iq4_xs);
ENG_DQ(eng_scalar_dequant_f32);

#endif
