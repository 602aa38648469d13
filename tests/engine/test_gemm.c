/*
 * test_gemm.c — the integer prefill kernels (engine/gemm.h): every SIMD path
 * bit-identical to the scalar reference on odd sizes (rows, activation rows,
 * blocks, row ranges that start inside a tile), the reference against a
 * double-precision product of the same integers, and the product against
 * decode's matvec on the same quantized x.
 *
 * Tolerance of the reference: it sums n/32 block terms dx*(S*i - M*s) with
 * one rounding for the scale product, one or two for the min or the second
 * half, and one per accumulation, so |err| <= (n/32 + 3) * 2^-24 * sum of
 * |terms|, within (n + 2) * 2^-24 * sum_j |w_j x_j| (w_j as a - b: Q4_K's
 * scale and min parts count apart, as in test_kernels.c). Against decode
 * (another order) twice that.
 */
#include "tests/test.h"

#include "engine/gemm.h"
#include "engine/kernels.h"

#include <math.h>
#include <string.h>

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static float rndf(uint64_t *s) { return (float)((rnd(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }

static const int types[] = {ENG_TYPE_Q8_0, ENG_TYPE_Q4_0, ENG_TYPE_Q5_0, ENG_TYPE_Q4_K,
                            ENG_TYPE_Q6_K, ENG_TYPE_MXFP4, ENG_TYPE_Q5_K, ENG_TYPE_IQ4_NL,
                            ENG_TYPE_IQ4_XS, ENG_TYPE_Q3_K, ENG_TYPE_Q2_K, ENG_TYPE_Q4_1,
                            ENG_TYPE_Q5_1};

typedef struct problem {
    int type;
    int64_t n, rows, T, ldy;
    uint8_t *w;
    size_t rb;
    float *x;            /* [T][n] */
    eng_qx qx;
    void *qx_buf, *scratch;
} problem;

/* Random weights: quantized random floats, or (raw) random block bytes
 * with finite random fp16 scales, codes of every value included. */
static void make_weights(problem *p, uint64_t *s, bool raw)
{
    const eng_format *f = eng_format_get(p->type);
    p->rb = eng_type_row_bytes(p->type, p->n);
    p->w = tst_alloc(p->rb * (size_t)p->rows);
    if (raw) {
        for (size_t i = 0; i < p->rb * (size_t)p->rows; i++)
            p->w[i] = (uint8_t)rnd(s);
        for (int64_t b = 0; b < p->rows * (p->n / f->blck); b++) {
            uint8_t *blk = p->w + (size_t)b * f->type_size;
            if (p->type == ENG_TYPE_MXFP4) { /* E8M0 exponent: scales 2^-18 .. 2^17 */
                blk[0] = (uint8_t)(110 + rnd(s) % 36);
                continue;
            }
            /* the fp16 fields: d (and dmin) at the start; Q6_K's, Q3_K's and Q2_K's at the end */
            const int ty = p->type;
            const size_t off = ty == ENG_TYPE_Q6_K ? 208 : ty == ENG_TYPE_Q3_K ? 108
                             : ty == ENG_TYPE_Q2_K ? 80 : 0;
            const int nh = ty == ENG_TYPE_Q4_K || ty == ENG_TYPE_Q5_K || ty == ENG_TYPE_Q2_K ||
                                   ty == ENG_TYPE_Q4_1 || ty == ENG_TYPE_Q5_1
                               ? 2 : 1;
            for (int h = 0; h < nh; h++) {
                uint16_t v = eng_fp32_to_fp16(rndf(s) * 0.01f);
                memcpy(blk + off + 2 * h, &v, 2);
            }
        }
        return;
    }
    float *wf = tst_alloc((size_t)(p->rows * p->n) * 4);
    for (int64_t i = 0; i < p->rows * p->n; i++)
        wf[i] = rndf(s) * (i % 7 == 0 ? 4.0f : 0.5f);
    eng_err err = {0};
    for (int64_t r = 0; r < p->rows; r++)
        REQUIRE(eng_quantize_row(p->type, wf + r * p->n, p->w + (size_t)r * p->rb, p->n, &err) == 0);
}

static void make_problem(problem *p, int type, int64_t n, int64_t rows, int64_t T, uint64_t seed,
                         bool raw, int kc)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)(n * 131 + rows * 7 + T) + 1;
    *p = (problem){.type = type, .n = n, .rows = rows, .T = T, .ldy = rows + 3};
    make_weights(p, &s, raw);
    p->x = tst_alloc((size_t)(T * n) * 4);
    for (int64_t i = 0; i < T * n; i++)
        p->x[i] = (i / 32) % 11 == 5 ? 0.0f : rndf(&s) * (i % 5 == 0 ? 3.0f : 1.0f);
    p->qx_buf = tst_alloc(eng_qx_bytes(T, n) + 64);
    void *aligned = (void *)(((uintptr_t)p->qx_buf + 63) & ~(uintptr_t)63);
    eng_qx_bind(&p->qx, aligned, T, n, kc, eng_type_xform(type));
    for (int64_t t = 0; t < T; t++)
        eng_qx_row(eng_kernels_get(ENG_SIMD_SCALAR), &p->qx, t, p->x + t * n);
    p->scratch = tst_alloc((size_t)ENG_GEMM_SCRATCH_PER_ELEM * (size_t)n + 64);
}

/* Y of path g over rows [0, rows) in two calls split at r_split (tiles
 * that start mid-way), guards in the stride's spare columns. */
static float *run_path(const eng_gemm_kernels *g, const problem *p, int64_t r_split)
{
    float *Y = tst_alloc((size_t)(p->T * p->ldy) * 4);
    for (int64_t i = 0; i < p->T * p->ldy; i++)
        Y[i] = -12345.0f;
    g->gemm[p->type](p->w, p->rb, &p->qx, Y, p->ldy, r_split, p->rows, p->scratch);
    if (r_split)
        g->gemm[p->type](p->w, p->rb, &p->qx, Y, p->ldy, 0, r_split, p->scratch);
    for (int64_t t = 0; t < p->T; t++)
        for (int64_t r = p->rows; r < p->ldy; r++)
            CHECK_MSG(Y[t * p->ldy + r] == -12345.0f, "%s %s: wrote past row %lld",
                      eng_simd_name(g->simd), eng_type_name(p->type), (long long)p->rows);
    return Y;
}

/* Paths against the scalar table, bit for bit, for one problem. */
static void check_paths(int type, int64_t n, int64_t rows, int64_t T, uint64_t seed, bool raw)
{
    for (int path = 1; path < ENG_SIMD_COUNT; path++) {
        if (!eng_simd_available((eng_simd)path))
            continue;
        const eng_gemm_kernels *g = eng_gemm_get((eng_simd)path);
        /* the layout follows the path's chunk; the scalar reads any */
        problem p;
        make_problem(&p, type, n, rows, T, seed, raw, g->kc);
        const int64_t split = rows > 5 ? rows / 3 + 1 : 0;
        float *ys = run_path(&eng_gemm_scalar, &p, 0), *yp = run_path(g, &p, split);
        for (int64_t t = 0; t < T; t++)
            CHECK_MSG(memcmp(ys + t * p.ldy, yp + t * p.ldy, (size_t)rows * 4) == 0,
                      "%s %s n %lld rows %lld T %lld seed %llu%s: row %lld differs from scalar",
                      eng_simd_name(g->simd), eng_type_name(type), (long long)n,
                      (long long)rows, (long long)T, (unsigned long long)seed,
                      raw ? " raw" : "", (long long)t);
    }
}

static int64_t blck(int type) { return eng_format_get(type)->blck; }

TEST(paths_bit_identical_odd_sizes)
{
    static const int64_t rows[] = {1, 5, 8, 9, 15, 16, 17, 31, 40};
    static const int64_t Ts[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 33};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int type = types[ti];
        const int64_t nbs[] = {1, 2, 3, blck(type) == 32 ? 9 : 1};
        for (size_t b = 0; b < 4; b++)
            for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
                for (size_t t = 0; t < sizeof Ts / sizeof Ts[0]; t += 1 + (r % 2))
                    check_paths(type, nbs[b] * blck(type), rows[r], Ts[t], r + t + 1, false);
    }
}

TEST(paths_bit_identical_raw_blocks)
{
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (uint64_t seed = 1; seed <= 4; seed++)
            check_paths(types[ti], 3 * blck(types[ti]), 19, 21, seed, true);
}

/* Dequantized row r as a - b (b: Q4_K's mins), from the engine's scalar
 * dequantizer (itself tested against the spec in test_kernels.c); for Q4_K
 * the parts are split from the scale and min of each sub-block. */
static void row_parts(const problem *p, int64_t r, double *a, double *b)
{
    const uint8_t *row = p->w + (size_t)r * p->rb;
    float *f = tst_alloc((size_t)p->n * 4);
    eng_err err = {0};
    REQUIRE(eng_dequantize_row(p->type, row, f, p->n, &err) == 0);
    for (int64_t j = 0; j < p->n; j++) {
        b[j] = 0;
        if (p->type == ENG_TYPE_Q4_K || p->type == ENG_TYPE_Q5_K) { /* same d, dmin, scales */
            const eng_block_q4_k *blk = (const eng_block_q4_k *)(row + (size_t)(j / 256) *
                                                                   eng_format_get(p->type)->type_size);
            int sc, m;
            eng_q4k_scale_min(blk->scales, (int)(j % 256 / 32), &sc, &m);
            b[j] = (double)eng_fp16_to_fp32(blk->dmin) * m;
        }
        if (p->type == ENG_TYPE_Q4_1 || p->type == ENG_TYPE_Q5_1) { /* x = q*d + m: b = -m */
            const uint8_t *blk = row + (size_t)(j / 32) * eng_format_get(p->type)->type_size;
            uint16_t m;
            memcpy(&m, blk + 2, 2);
            b[j] = -(double)eng_fp16_to_fp32(m);
        }
        if (p->type == ENG_TYPE_Q2_K) {
            const eng_block_q2_k *blk = (const eng_block_q2_k *)row + j / 256;
            b[j] = (double)eng_fp16_to_fp32(blk->dmin) * (blk->scales[j % 256 / 16] >> 4);
        }
        a[j] = (double)f[j] + b[j];
    }
}

/* x's quantized value of row t element j, from the chunked layout. */
static double xval(const eng_qx *x, int64_t t, int64_t j)
{
    const int64_t c = t / x->kc, nc = eng_qx_chunk_rows(x, c), b = j / 32;
    const int64_t i = c * x->kc * (x->n / 32) + b * nc + t % x->kc;
    return (double)x->q[i * 32 + j % 32] * x->d[i];
}

/* Q8_1's s of block b of row t (the q1 form's partner of the min). */
static double xs(const eng_qx *x, int64_t t, int64_t b)
{
    const int64_t c = t / x->kc, nc = eng_qx_chunk_rows(x, c);
    return x->s[c * x->kc * (x->n / 32) + b * nc + t % x->kc];
}

/* Element j of decode's partner form of x (built by eng_matvec). */
static double decode_x(const eng_xvec *xv, int form, int64_t j)
{
    return form == ENG_XF_Q8K ? (double)xv->q8k_qs[j] * xv->q8k_d[j / 256]
                              : (double)xv->q8_qs[j] * xv->q8_d[j / 32];
}

static void check_reference(int type, int64_t n, int64_t rows, int64_t T, uint64_t seed)
{
    problem p;
    make_problem(&p, type, n, rows, T, seed, false, eng_gemm_scalar.kc);
    float *y = run_path(&eng_gemm_scalar, &p, 0);
    double *a = tst_alloc((size_t)n * 8), *b = tst_alloc((size_t)n * 8);
    const bool q1 = type == ENG_TYPE_Q4_1 || type == ENG_TYPE_Q5_1;
    const eng_kernels *k = eng_kernels_get(ENG_SIMD_SCALAR);
    eng_xvec xv;
    eng_err err = {0};
    REQUIRE(eng_xvec_init(&xv, n, &err) == 0);
    float *ydec = tst_alloc((size_t)rows * 4);
    for (int64_t t = 0; t < T; t++) {
        REQUIRE(eng_xvec_prepare(k, &xv, p.x + t * n, n) == 0);
        REQUIRE(eng_matvec(k, type, p.w, &xv, ydec, 0, rows) == 0);
        for (int64_t r = 0; r < rows; r++) {
            row_parts(&p, r, a, b);
            double s = 0, mag = 0;
            for (int64_t j = 0; j < n; j++) {
                const double xj = xval(&p.qx, t, j);
                CHECK(xj == decode_x(&xv, p.qx.form, j)); /* decode's x, bit for bit */
                if (q1) { /* the min meets Q8_1's s (fp16-rounded), once a block */
                    s += a[j] * xj + (j % 32 ? 0 : -b[j] * xs(&p.qx, t, j / 32));
                    mag += fabs(a[j] * xj) + (j % 32 ? 0 : fabs(b[j] * xs(&p.qx, t, j / 32)));
                    continue;
                }
                s += (a[j] - b[j]) * xj;
                mag += (fabs(a[j]) + fabs(b[j])) * fabs(xj);
            }
            const double tol = (double)(n + 2) * 0x1p-24 * mag + 1e-30;
            const float v = y[t * p.ldy + r];
            CHECK_MSG(fabs(v - s) <= tol, "%s n %lld T %lld: Y[%lld][%lld] %.9g ref %.9g tol %.3g",
                      eng_type_name(type), (long long)n, (long long)T, (long long)t,
                      (long long)r, (double)v, s, tol);
            CHECK_MSG(fabs(v - ydec[r]) <= 2 * tol, "%s: Y[%lld][%lld] %.9g decode %.9g",
                      eng_type_name(type), (long long)t, (long long)r, (double)v,
                      (double)ydec[r]);
        }
    }
    eng_xvec_free(&xv);
}

TEST(reference_against_double_and_decode)
{
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int type = types[ti];
        check_reference(type, blck(type), 3, 5, 1);
        check_reference(type, 3 * blck(type), 17, 11, 2);
        check_reference(type, (blck(type) == 32 ? 33 : 2) * blck(type), 9, 20, 3);
    }
}

/* The chunked layout: quantizing rows in any order, on any path, gives the
 * same bytes, and each row's quants and scales are decode's partner form of
 * it (eng_xvec_form), for both forms. */
static void check_qx_rows(int form)
{
    const int64_t n = 512, T = 19;
    uint64_t s = 7;
    float *x = tst_alloc((size_t)(T * n) * 4);
    for (int64_t i = 0; i < T * n; i++)
        x[i] = rndf(&s) * ((i / 32) % 3 == 1 ? 40.0f : 10.0f);
    eng_qx a, b;
    void *ba = tst_alloc(eng_qx_bytes(T, n) + 64), *bb = tst_alloc(eng_qx_bytes(T, n) + 64);
    eng_qx_bind(&a, (void *)(((uintptr_t)ba + 63) & ~(uintptr_t)63), T, n, 8, form);
    eng_qx_bind(&b, (void *)(((uintptr_t)bb + 63) & ~(uintptr_t)63), T, n, 8, form);
    for (int64_t t = 0; t < T; t++) {
        eng_qx_row(eng_kernels_get(ENG_SIMD_SCALAR), &a, t, x + t * n);
        eng_qx_row(eng_kernels_get(eng_simd_best()), &b, T - 1 - t, x + (T - 1 - t) * n);
    }
    CHECK(memcmp(a.q, b.q, (size_t)(T * n)) == 0);
    CHECK(memcmp(a.d, b.d, (size_t)(T * n / 32) * 4) == 0);
    CHECK(memcmp(a.s, b.s, (size_t)(T * n / 32) * 4) == 0);
    eng_xvec xv;
    eng_err err = {0};
    const eng_kernels *k = eng_kernels_get(ENG_SIMD_SCALAR);
    REQUIRE(eng_xvec_init(&xv, n, &err) == 0);
    for (int64_t t = 0; t < T; t++) {
        REQUIRE(eng_xvec_prepare(k, &xv, x + t * n, n) == 0);
        REQUIRE(eng_xvec_form(k, &xv, form) == 0);
        const int8_t *dq = form == ENG_XF_Q8K ? xv.q8k_qs : xv.q8_qs;
        for (int64_t j = 0; j < n; j++)
            CHECK(xval(&a, t, j) == decode_x(&xv, form, j));
        for (int64_t bk = 0; bk < n / 32; bk++) {
            const int64_t c = t / 8, nc = eng_qx_chunk_rows(&a, c);
            const int64_t i = c * 8 * (n / 32) + bk * nc + t % 8;
            int32_t sum = 0, h0 = 0;
            for (int j = 0; j < 32; j++) {
                sum += dq[bk * 32 + j];
                h0 += j < 16 ? dq[bk * 32 + j] : 0;
            }
            CHECK_EQ_INT(a.sn[i], -sum);
            CHECK(a.sf[i] == (float)sum);
            CHECK_EQ_INT(a.hn[2 * i], -h0);
            CHECK_EQ_INT(a.hn[2 * i + 1], -(sum - h0));
            if (form == ENG_XF_Q8)
                CHECK(a.s[i] == xv.q8_s[bk]);
            CHECK_EQ_INT((int16_t)(a.hp[i] & 0xffff), -h0);
            CHECK_EQ_INT((int16_t)((uint32_t)a.hp[i] >> 16), -(sum - h0));
        }
    }
    eng_xvec_free(&xv);
}

TEST(qx_rows_match_decode_quantization)
{
    check_qx_rows(ENG_XF_Q8);
    check_qx_rows(ENG_XF_Q8K);
}

/* ---- float weights ------------------------------------------------------------ */

static const int ftypes[] = {ENG_TYPE_F32, ENG_TYPE_F16, ENG_TYPE_BF16};

typedef struct fproblem {
    int type;
    int64_t n, rows, T, ldy;
    uint8_t *w;
    size_t rb;
    float *x;
    eng_xt xt;
    void *scratch;
} fproblem;

static void make_fproblem(fproblem *p, int type, int64_t n, int64_t rows, int64_t T,
                          uint64_t seed, int kc)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)(n * 131 + rows * 7 + T) + 3;
    *p = (fproblem){.type = type, .n = n, .rows = rows, .T = T, .ldy = rows + 2};
    p->rb = eng_type_row_bytes(type, n);
    p->w = tst_alloc(p->rb * (size_t)rows);
    float *wf = tst_alloc((size_t)(rows * n) * 4);
    for (int64_t i = 0; i < rows * n; i++)
        wf[i] = rndf(&s) * (i % 9 == 0 ? 8.0f : 1.0f);
    eng_err err = {0};
    for (int64_t r = 0; r < rows; r++)
        REQUIRE(eng_quantize_row(type, wf + r * n, p->w + (size_t)r * p->rb, n, &err) == 0);
    p->x = tst_alloc((size_t)(T * n) * 4);
    for (int64_t i = 0; i < T * n; i++)
        p->x[i] = rndf(&s) * (i % 4 == 0 ? 5.0f : 1.0f);
    void *buf = tst_alloc(eng_xt_bytes(T, n, kc) + 64);
    eng_xt_bind(&p->xt, (void *)(((uintptr_t)buf + 63) & ~(uintptr_t)63), T, n, kc,
                eng_type_xform(type));
    for (int64_t t = 0; t < T; t++)
        eng_xt_row(eng_kernels_get(ENG_SIMD_SCALAR), &p->xt, t, p->x + t * n);
    p->scratch = tst_alloc((size_t)ENG_GEMM_SCRATCH_PER_ELEM * (size_t)n + 64);
}

static float *run_fpath(const eng_gemm_kernels *g, const fproblem *p, int64_t r_split)
{
    float *Y = tst_alloc((size_t)(p->T * p->ldy) * 4);
    for (int64_t i = 0; i < p->T * p->ldy; i++)
        Y[i] = -12345.0f;
    g->gemm_f[p->type](p->w, p->rb, &p->xt, Y, p->ldy, r_split, p->rows, p->scratch);
    if (r_split)
        g->gemm_f[p->type](p->w, p->rb, &p->xt, Y, p->ldy, 0, r_split, p->scratch);
    for (int64_t t = 0; t < p->T; t++)
        for (int64_t r = p->rows; r < p->ldy; r++)
            CHECK_MSG(Y[t * p->ldy + r] == -12345.0f, "%s %s: wrote past row %lld",
                      eng_simd_name(g->simd), eng_type_name(p->type), (long long)p->rows);
    return Y;
}

/* x as the float kernels meet it: rounded to f16/bf16 for those weights. */
static double x_as_partner(int type, float x)
{
    return type == ENG_TYPE_F16    ? eng_fp16_to_fp32(eng_fp32_to_fp16(x))
           : type == ENG_TYPE_BF16 ? eng_bf16_to_fp32(eng_fp32_to_bf16(x))
                                   : x;
}

/* Every path bit-identical to the scalar table; the scalar one within
 * (n + 1) * 2^-24 * sum |w x| of the double-precision product with x
 * rounded to the weight's type. */
static void check_float(int type, int64_t n, int64_t rows, int64_t T, uint64_t seed)
{
    fproblem ref;
    make_fproblem(&ref, type, n, rows, T, seed, eng_gemm_scalar.kc_f);
    float *ys = run_fpath(&eng_gemm_scalar, &ref, 0);
    float *wd = tst_alloc((size_t)n * 4);
    eng_err err = {0};
    for (int64_t r = 0; r < rows; r++) {
        REQUIRE(eng_dequantize_row(type, ref.w + (size_t)r * ref.rb, wd, n, &err) == 0);
        for (int64_t t = 0; t < T; t++) {
            double sum = 0, mag = 0;
            for (int64_t k = 0; k < n; k++) {
                const double xk = x_as_partner(type, ref.x[t * n + k]);
                sum += (double)wd[k] * xk;
                mag += fabs((double)wd[k] * xk);
            }
            const double tol = (double)(n + 1) * 0x1p-24 * mag + 1e-30;
            CHECK_MSG(fabs(ys[t * ref.ldy + r] - sum) <= tol, "%s n %lld: Y[%lld][%lld] %.9g ref %.9g",
                      eng_type_name(type), (long long)n, (long long)t, (long long)r,
                      (double)ys[t * ref.ldy + r], sum);
        }
    }
    for (int path = 1; path < ENG_SIMD_COUNT; path++) {
        if (!eng_simd_available((eng_simd)path))
            continue;
        const eng_gemm_kernels *g = eng_gemm_get((eng_simd)path);
        fproblem p;
        make_fproblem(&p, type, n, rows, T, seed, g->kc_f);
        float *yp = run_fpath(g, &p, rows > 5 ? rows / 2 + 1 : 0);
        for (int64_t t = 0; t < T; t++)
            CHECK_MSG(memcmp(ys + t * ref.ldy, yp + t * p.ldy, (size_t)rows * 4) == 0,
                      "%s %s n %lld rows %lld T %lld: row %lld differs from scalar",
                      eng_simd_name(g->simd), eng_type_name(type), (long long)n,
                      (long long)rows, (long long)T, (long long)t);
    }
}

TEST(float_paths_bit_identical_odd_sizes)
{
    static const int64_t ns[] = {1, 7, 16, 17, 100, 513, 1100};
    static const int64_t rows[] = {1, 7, 8, 9, 17};
    static const int64_t Ts[] = {1, 5, 8, 9, 16, 17, 33};
    for (int ti = 0; ti < 3; ti++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
                for (size_t t = (i + r) % 2; t < sizeof Ts / sizeof Ts[0]; t += 2)
                    check_float(ftypes[ti], ns[i], rows[r], Ts[t], i + r + t + 1);
}

/* The transposed layout: element k of row t, zeros past the last row. */
TEST(xt_layout)
{
    const int64_t n = 5, T = 11;
    const int kc = 4;
    float x[T * n];
    for (int64_t i = 0; i < T * n; i++)
        x[i] = (float)(i + 1);
    float *buf = tst_alloc(eng_xt_bytes(T, n, kc) + 64);
    eng_xt xt;
    eng_xt_bind(&xt, (void *)(((uintptr_t)buf + 63) & ~(uintptr_t)63), T, n, kc, ENG_XF_F32);
    for (int64_t t = 0; t < T; t++)
        eng_xt_row(eng_kernels_get(ENG_SIMD_SCALAR), &xt, t, x + t * n);
    for (int64_t c = 0; c < 3; c++)
        for (int64_t k = 0; k < n; k++)
            for (int64_t l = 0; l < kc; l++) {
                const int64_t t = c * kc + l;
                CHECK(xt.x[(c * n + k) * kc + l] == (t < T ? x[t * n + k] : 0.0f));
            }
}

