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
_Static_assert(sizeof(eng_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(eng_block_q4_0) == 18, "q4_0 block is 18 bytes");

/* The AVX-512 table reuses the AVX2 x quantizer (x is small and reused). */
void eng_avx2_quant_q8(const float *x, float *xd, int8_t *xq, int64_t n);

/* Shared by the scalar kernels and the SIMD paths' block setup. */
float eng_q8_block_scale(float amax, float *id);

#endif
