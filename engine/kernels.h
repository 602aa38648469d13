/*
 * kernels.h — internal: the kernel tables behind formats.h.
 *
 * One constant table per SIMD path (kernels_scalar.c, kernels_avx2.c,
 * kernels_avx512.c). A NULL entry means the path has no kernel for that
 * type; formats.c only exposes a path's table when every supported type
 * has its kernels (checked by the tests). Functions in the AVX2/AVX-512
 * files carry __attribute__((target(...))) and must only be called after
 * eng_simd_available() said yes.
 *
 * Shapes: `w` is row 0 of a matrix of rows of x->n elements, `row_bytes`
 * apart; kernels write y[r] for r in [r0, r1). Dequant kernels convert one
 * row of n elements (n a multiple of the block size).
 */
#ifndef ENG_KERNELS_H
#define ENG_KERNELS_H

#include "engine/formats.h"

#include <string.h>

typedef void (*eng_matvec_fn)(const void *w, size_t row_bytes, const eng_xvec *x, float *y,
                              int64_t r0, int64_t r1);
typedef void (*eng_dequant_fn)(const void *row, float *dst, int64_t n);
/* x[n] (n % 32 == 0) -> Q8_0 scales xd[n/32] (fp16-rounded, as f32) and
 * quants xq[n]; ggml's quantize_row_q8_0_ref rounding, identical on every
 * path for finite x. */
typedef void (*eng_quant_q8_fn)(const float *x, float *xd, int8_t *xq, int64_t n);

struct eng_kernels {
    eng_simd simd;
    eng_quant_q8_fn quant_q8;
    eng_matvec_fn matvec[ENG_TYPE_COUNT];
    eng_dequant_fn dequant[ENG_TYPE_COUNT];
};

extern const struct eng_kernels eng_kernels_scalar;
extern const struct eng_kernels eng_kernels_avx2;
extern const struct eng_kernels eng_kernels_avx512;

/* Block structs, ggml-common.h layout (packed: d is at offset 0). */
#define ENG_QK8_0 32
#define ENG_QK4_0 32
typedef struct eng_block_q8_0 {
    uint16_t d;      /* fp16 scale */
    int8_t qs[32];
} eng_block_q8_0;
typedef struct eng_block_q4_0 {
    uint16_t d;      /* fp16 scale */
    uint8_t qs[16];  /* element j: low nibble, element j+16: high nibble, minus 8 */
} eng_block_q4_0;
typedef struct eng_block_q5_0 {
    uint16_t d;      /* fp16 scale */
    uint8_t qh[4];   /* bit j (little-endian u32): 5th bit of element j */
    uint8_t qs[16];  /* low 4 bits as in Q4_0; value = (q5 - 16) * d */
} eng_block_q5_0;

/* K-quants: super-blocks of 256 elements (ggml-common.h block_q4_K,
 * block_q6_K). Q4_K: 8 sub-blocks of 32, each with a 6-bit scale and min
 * packed into scales[12] (eng_q4k_scale_min); element = d*sc*q - dmin*m,
 * q in 0..15; qs[32c + l] holds element 64c + l (low nibble) and 64c + 32 + l
 * (high nibble). Q6_K: 16 groups of 16 with int8 scales; element =
 * d*sc*(q - 32), q 6 bits = 4 in ql and 2 in qh (see dequant_q6_k). */
#define ENG_QK_K 256
typedef struct eng_block_q4_k {
    uint16_t d;          /* fp16 super-block scale of the scales */
    uint16_t dmin;       /* fp16 super-block scale of the mins   */
    uint8_t scales[12];  /* 8 x (6-bit scale, 6-bit min)          */
    uint8_t qs[128];
} eng_block_q4_k;
typedef struct eng_block_q6_k {
    uint8_t ql[128];     /* low 4 bits          */
    uint8_t qh[64];      /* high 2 bits         */
    int8_t scales[16];   /* one per 16 elements */
    uint16_t d;          /* fp16 super-block scale */
} eng_block_q6_k;
_Static_assert(sizeof(eng_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(eng_block_q4_0) == 18, "q4_0 block is 18 bytes");
_Static_assert(sizeof(eng_block_q5_0) == 22, "q5_0 block is 22 bytes");
_Static_assert(sizeof(eng_block_q4_k) == 144, "q4_K block is 144 bytes");
_Static_assert(sizeof(eng_block_q6_k) == 210, "q6_K block is 210 bytes");

/* Q4_K sub-block j (0..7): its 6-bit scale and min (ggml get_scale_min_k4). */
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

/* Q4_K's 8 scales (out[0..7]) and 8 mins (out[8..15]) from scales[12] at
 * once, the mask arithmetic of ggml's vec_dot_q4_K (the same values as
 * eng_q4k_scale_min for every j; the SIMD kernels use it, the tests compare
 * them with the scalar ones on random bytes). */
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

/* The AVX-512 table reuses the AVX2 x quantizer (x is small and reused)
 * and the AVX2 kernels of the K-quants and Q5_0 (see kernels_avx512.c). */
void eng_avx2_quant_q8(const float *x, float *xd, int8_t *xq, int64_t n);
void eng_avx2_matvec_q5_0(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1);
void eng_avx2_matvec_q4_k(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1);
void eng_avx2_matvec_q6_k(const void *w, size_t rb, const eng_xvec *x, float *y, int64_t r0, int64_t r1);
void eng_avx2_dequant_q5_0(const void *row, float *dst, int64_t n);
void eng_avx2_dequant_q4_k(const void *row, float *dst, int64_t n);
void eng_avx2_dequant_q6_k(const void *row, float *dst, int64_t n);

/* Shared by the scalar kernels and the SIMD paths' block setup. */
float eng_q8_block_scale(float amax, float *id);

#endif
