/*
 * gemm.h — internal: prefill's products Y = X W^T (engine/gemm*.c): integer
 * dot products for the block formats and float kernels for f32/f16/bf16; a
 * scalar reference and AVX2 / AVX-512 tables, all giving the same bits.
 *
 * Numbers. A prefill product multiplies T activation rows X (f32) with the
 * n_out weight rows of W (n_in elements each, stored format). X is first
 * quantized row by row to the weight type's partner form, exactly as decode
 * prepares its x (eng_xvec_prepare, ggml's vec_dot_type: Q8_0 blocks of 32
 * for Q8_0/Q4_0/Q5_0/MXFP4/IQ4_NL and, with Q8_1's s = fp16(d * sum of
 * the block's quants), Q4_1/Q5_1; Q8_K super-blocks of 256 for
 * Q2_K/Q3_K/Q4_K/Q5_K/Q6_K/IQ4_XS, whose one f32 scale then serves each
 * of its 8 blocks of 32), so a prefill product and a decode matvec see
 * the same integers: every block format has integer kernels on every
 * path. For every 32-element block b of a row the weight gives unsigned
 * codes u_j and float scales, and
 *
 *   int form (Q8_0: u = q+128, off 128; Q4_0: u = nibble, off 8; Q5_0: off
 *   16; MXFP4: u = doubled E2M1 value + 16, off 16, S = 2^(e-128);
 *   IQ4_NL: u = codebook value (-127..113) + 128, off 128; IQ4_XS: the
 *   same u per sub-block, S = d * (ls - 32)):
 *          i_b = sum_j u_j xq_j - off * sum_j xq_j          (exact int32)
 *          acc = fma(float(i_b) * S_b, dx_b, acc)           S_b = d
 *   min form (Q4_K: u = q; Q5_K: u = q5, qh's bit on top; S = d*sc, M = dmin*m):
 *          f = fma(-M_b, float(sum xq), float(sum u xq) * S_b)
 *          acc = fma(f, dx_b, acc)
 *   halves form (Q6_K: u = q6, off 32; Q3_K: u = 2 bits | hmask's bit << 2,
 *   off 4; S = d*sc per 16 elements, sc signed):
 *          i_h = sum_{16} u xq - off * sum_{16} xq          (h = 0, 1)
 *          acc = fma(fma(float(i_1), S_1, float(i_0) * S_0), dx_b, acc)
 *   q1 form (Q4_1: u = nibble; Q5_1: u = q5; S = d, M = m, the min):
 *          acc = fma(float(sum u xq) * S_b, dx_b, acc)
 *          acc = fma(M_b, s_b, acc)                  (as ggml's, and decode's,
 *                                                     m * s of Q8_1)
 *   pair form (Q2_K: a 4-bit scale sc and min m per 16 elements; the
 *   scales go into the codes, u = sc*q <= 45, the mins into an exact
 *   integer with the half sums, as decode's msum; S = d, M = dmin):
 *          i_b = sum_j u_j xq_j,  mi_b = -(m_0 sum_{16} xq + m_1 sum_{16} xq)
 *          acc = fma(fma(float(mi_b), M_b, float(i_b) * S_b), dx_b, acc)
 *
 * with acc starting at 0 and blocks in ascending order. Every path
 * (scalar reference, AVX2, AVX-512 VNNI) performs exactly these roundings
 * in this order for every (row, token) pair (the SIMD paths put 8 or 16
 * weight rows in the lanes of a register, so no lane ever sums across
 * another), hence all paths give bit-identical Y; the tests hold this. Decode (ggml's
 * vec_dot per SIMD path, kernels_*.c) adds the same exact integers in
 * another float order, so a prefill product equals decode's to a few ulps,
 * not bit for bit.
 * Against exact arithmetic on the same integers the error of one output is
 * at most about (n_in/32 + 3) * 2^-24 * sum_b |dx_b S_b i_b| (the
 * min, q1 and pair forms' second terms counted in the sum too).
 *
 * Layout of the quantized activations (eng_qx). Rows are cut into chunks
 * of kc rows (the path's register blocking; the last chunk may be
 * shorter); inside a chunk of nc rows, block b of row t of the chunk is at
 * q + c*kc*n + (b*nc + t)*32 (quants) and index c*kc*nb + b*nc + t of the
 * per-block arrays (nb = n/32 blocks per row), so a kernel that walks the
 * blocks of a chunk reads its tokens' data at constant offsets.
 *
 * Float weights (F32, F16, BF16). Y[t][r] = sum_k w[r][k] x[t][k], one
 * fma per element in ascending k from 0 (f16/bf16 widened exactly first;
 * x rounded to f16/bf16 first for those, as decode rounds it),
 * on every path, so again all paths agree bit for bit. The activation rows
 * are transposed once per product (eng_xt: chunk c, element k, row t of
 * the chunk at x + (c*n + k)*kc + t, kc lanes even in a short last chunk),
 * and the kernels put tokens in the lanes of a register and broadcast each
 * weight from memory: the weights stream once per chunk, as stored.
 *
 * Threading: the kernels are pure; eng_gemm_fn writes Y[t][r] for r in
 * [r0, r1) only, with the calling thread's scratch.
 */
#ifndef ENG_GEMM_H
#define ENG_GEMM_H

#include "engine/formats.h"

enum {
    ENG_GEMM_SCRATCH_PER_ELEM = 32, /* packed or widened weight bytes per
                                       element of a row                   */
};

/* T activation rows of n elements in the Q8_0 partner form (layout above). */
typedef struct eng_qx {
    int form;             /* ENG_XF_Q8 or ENG_XF_Q8K (formats.h)            */
    int64_t n, T;
    int kc;               /* rows per chunk                                  */
    int8_t *q;            /* [T*n] quants                                    */
    float *d;             /* [T*n/32] block scales (fp16 values)             */
    float *sf;            /* [T*n/32] block sums of the quants, as float     */
    int32_t *sn;          /* [T*n/32] minus the block sums                   */
    int32_t *hn;          /* [T*n/16] minus the half-block sums, two per block */
    int32_t *hp;          /* [T*n/32] the same two as int16s, the first low   */
    float *s;             /* [T*n/32] Q8_1's d * block sum, fp16-rounded (Q8) */
} eng_qx;

/* T activation rows of n floats, transposed per chunk (layout above). */
typedef struct eng_xt {
    int form;             /* ENG_XF_F32, ENG_XF_F16 or ENG_XF_BF16           */
    int64_t n, T;
    int kc;
    float *x;             /* [ceil(T/kc)][n][kc]                              */
} eng_xt;

/* Y[t*ldy + r] = sum over blocks as above, for t < x->T and r in [r0, r1);
 * W: rows of x->n elements, row_bytes apart. scratch: at least
 * ENG_GEMM_SCRATCH_PER_ELEM * x->n + 64 bytes, the calling thread's own. */
typedef void (*eng_gemm_fn)(const void *w, size_t row_bytes, const eng_qx *x, float *Y,
                            int64_t ldy, int64_t r0, int64_t r1, void *scratch);

/* The same for float weights; scratch: ENG_GEMM_SCRATCH_PER_ELEM * x->n +
 * 64 bytes (f16/bf16 rows widened to f32 there). */
typedef void (*eng_gemm_f_fn)(const void *w, size_t row_bytes, const eng_xt *x, float *Y,
                              int64_t ldy, int64_t r0, int64_t r1, void *scratch);

typedef struct eng_gemm_kernels {
    eng_simd simd;
    int kc;                               /* activation rows per chunk     */
    eng_gemm_fn gemm[ENG_TYPE_COUNT];     /* NULL: no integer kernel       */
    int kc_f;                             /* ... for the float kernels     */
    eng_gemm_f_fn gemm_f[ENG_TYPE_COUNT]; /* F32, F16, BF16                */
} eng_gemm_kernels;

extern const eng_gemm_kernels eng_gemm_scalar;
extern const eng_gemm_kernels eng_gemm_avx2;
extern const eng_gemm_kernels eng_gemm_avx512;

/* The table of path s (the caller checked eng_simd_available). */
const eng_gemm_kernels *eng_gemm_get(eng_simd s);
/* Whether weights of this type take the integer path; the float path. */
bool eng_gemm_has(const eng_gemm_kernels *g, int type);
bool eng_gemm_has_f(const eng_gemm_kernels *g, int type);

/* Quantizes row t of x (src: its n floats) into its place in x with the
 * decode quantizer of k; rows are independent, any thread may do any row. */
void eng_qx_row(const eng_kernels *k, const eng_qx *x, int64_t t, const float *src);
/* Bytes eng_qx_bind needs for T rows of n: quants, then the block arrays. */
size_t eng_qx_bytes(int64_t T, int64_t n);
/* Points x's arrays into buf (64-byte aligned, eng_qx_bytes(T, n) long);
 * form: the weight type's partner form (eng_type_xform), ENG_XF_Q8 or
 * ENG_XF_Q8K (then n % 256 == 0). */
void eng_qx_bind(eng_qx *x, void *buf, int64_t T, int64_t n, int kc, int form);

/* Bytes of T transposed rows of n; binds x into buf (64-byte aligned);
 * row t of the activations (n floats at src) into its place. */
size_t eng_xt_bytes(int64_t T, int64_t n, int kc);
void eng_xt_bind(eng_xt *x, void *buf, int64_t T, int64_t n, int kc, int form);
/* Rounded to x's form first with k's converters (F16/BF16: decode's x). */
void eng_xt_row(const eng_kernels *k, const eng_xt *x, int64_t t, const float *src);

/* Rows in chunk c of x. */
static inline int64_t eng_qx_chunk_rows(const eng_qx *x, int64_t c)
{
    const int64_t r = x->T - c * x->kc;
    return r < x->kc ? r : x->kc;
}

#endif
