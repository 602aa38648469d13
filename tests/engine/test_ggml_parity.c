/* test_ggml_parity.c — the AVX2 and AVX-512 matvec kernels against a
 * plain-C reproduction of what llama.cpp 82bb485's CPU backend computes
 * (ggml-cpu/arch/x86/quants.c, vec.cpp, simd-mappings.h), bit for bit.
 *
 * The reproduction is written from ggml's source, independently of the
 * kernels: it decodes the weight codes from the block bytes element by
 * element, forms ggml's integer lanes (lane k of a 32-element chunk = the
 * sum over its elements 4k..4k+3, times the sub-block scale), keeps float
 * lanes exactly where ggml keeps them (an __m256 accumulator is 8 floats
 * here, updated with fmaf where ggml uses an FMA and with separate
 * rounding where it does not), sums them in ggml's reduction trees, and
 * uses double only where ggml does (ggml_float in the f16/bf16 dots).
 * So a kernel that accumulated in double, split a sum differently, or
 * rounded a scale product in another order fails here even when it is
 * within the numerical bounds test_kernels.c checks.
 *
 * The x forms are reproduced too: ggml's x86 quantize_row_q8_0/q8_1
 * (id = 127/amax, round half to even) and quantize_row_q8_K_ref (with its
 * 1.5*2^23 rounding trick), f16/bf16 rounding.
 *
 * F16/BF16: the AVX2 table reproduces ggml built for AVX2; the AVX-512
 * tables reproduce ggml built for AVX-512 with and without AVX512-FP16
 * (f16 accumulation, emulated here with a correctly rounded f16 FMA) and
 * AVX512-BF16 (vdpbf16ps: per lane acc += odd product, then += even
 * product, each rounded to f32); each table is checked where the CPU can
 * run it.
 */
#include "tests/test.h"

#include "engine/formats.h"
#include "engine/kernels.h"

#include <math.h>

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static float rndf(uint64_t *s) { return (float)((rnd(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }

static float h2f(uint16_t h) { return eng_fp16_to_fp32(h); }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* ---- ggml's reduction trees -------------------------------------------- */

/* hsum_float_8, _mm512_reduce_add_ps, _mm512_reduce_add_ph (in f32 here;
 * see tree_sum_f16): pairs (k, k + n/2) until one is left. */
static float tree_sum(float *v, int n)
{
    for (; n > 1; n /= 2)
        for (int k = 0; k < n / 2; k++)
            v[k] = v[k] + v[k + n / 2];
    return v[0];
}

/* ---- the x forms --------------------------------------------------------- */

typedef struct xform {
    float d8[1024], s8[1024];   /* Q8_0/Q8_1 per 32 */
    int8_t q8[32768];
    float dk[128];              /* Q8_K per 256 */
    int8_t qk[32768];
    int16_t bsums[2048];
    uint16_t h[32768], b[32768];
} xform;

/* ggml's nearest_int (quantize_row_q8_K_ref). */
static int nearest_int(float fval)
{
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static void make_xform(const float *x, int64_t n, xform *f)
{
    for (int64_t b = 0; b < n / 32; b++) {   /* x86 quantize_row_q8_0 / q8_1 */
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fabsf(x[32 * b + j]) > amax ? fabsf(x[32 * b + j]) : amax;
        const float d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0;
        f->d8[b] = h2f(eng_fp32_to_fp16(d));
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            f->q8[32 * b + j] = (int8_t)nearbyintf(x[32 * b + j] * id);
            sum += f->q8[32 * b + j];
        }
        f->s8[b] = h2f(eng_fp32_to_fp16(d * (float)sum));
    }
    for (int64_t b = 0; b < n / 256; b++) {   /* quantize_row_q8_K_ref */
        const float *xb = x + 256 * b;
        float max = 0, amax = 0;
        for (int j = 0; j < 256; j++)
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        const float iscale = -127.f / max;
        for (int j = 0; j < 256; j++) {
            int v = nearest_int(iscale * xb[j]);
            f->qk[256 * b + j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += f->qk[256 * b + 16 * g + l];
            f->bsums[16 * b + g] = (int16_t)s;
        }
        f->dk[b] = 1 / iscale;
    }
    for (int64_t j = 0; j < n; j++) {
        f->h[j] = eng_fp32_to_fp16(x[j]);
        f->b[j] = eng_fp32_to_bf16(x[j]);
    }
}

/* ---- weight codes from the bytes (ggml-common.h layouts) ----------------- */

static const int kv_iq4[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
static const int kv_fp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* Block of 32 at p: codes c[32] as the signed (or, with a min, unsigned)
 * bytes ggml's kernel feeds to its dot, and the block's scale and min. */
static void codes32(int type, const uint8_t *p, int *c, float *d, float *m)
{
    *m = 0;
    uint32_t qh = 0;
    switch (type) {
    case ENG_TYPE_Q8_0:
        *d = h2f(rd16(p));
        for (int j = 0; j < 32; j++)
            c[j] = (int8_t)p[2 + j];
        return;
    case ENG_TYPE_Q4_0:
    case ENG_TYPE_IQ4_NL:
        *d = h2f(rd16(p));
        for (int j = 0; j < 16; j++) {
            int lo = p[2 + j] & 15, hi = p[2 + j] >> 4;
            c[j] = type == ENG_TYPE_Q4_0 ? lo - 8 : kv_iq4[lo];
            c[j + 16] = type == ENG_TYPE_Q4_0 ? hi - 8 : kv_iq4[hi];
        }
        return;
    case ENG_TYPE_MXFP4: {
        uint32_t bits = p[0] < 2 ? 0x00200000u << p[0] : (uint32_t)(p[0] - 1) << 23;
        memcpy(d, &bits, 4);
        for (int j = 0; j < 16; j++) {
            c[j] = kv_fp4[p[1 + j] & 15];
            c[j + 16] = kv_fp4[p[1 + j] >> 4];
        }
        return;
    }
    case ENG_TYPE_Q4_1:
        *d = h2f(rd16(p));
        *m = h2f(rd16(p + 2));
        for (int j = 0; j < 16; j++) {
            c[j] = p[4 + j] & 15;
            c[j + 16] = p[4 + j] >> 4;
        }
        return;
    case ENG_TYPE_Q5_0:
    case ENG_TYPE_Q5_1: {
        const int off = type == ENG_TYPE_Q5_1 ? 2 : 0;
        *d = h2f(rd16(p));
        if (off)
            *m = h2f(rd16(p + 2));
        qh = (uint32_t)p[2 + off] | (uint32_t)p[3 + off] << 8 | (uint32_t)p[4 + off] << 16 |
             (uint32_t)p[5 + off] << 24;
        for (int j = 0; j < 16; j++) {
            c[j] = (p[6 + off + j] & 15) | (int)((qh >> j) & 1) << 4;
            c[j + 16] = (p[6 + off + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            if (type == ENG_TYPE_Q5_0) {
                c[j] -= 16;
                c[j + 16] -= 16;
            }
        }
        return;
    }
    }
}

/* Super-block of 256 at p: codes c[256] (unsigned for Q6_K, as ggml feeds
 * them before subtracting 32 through the bsums), the scale of each element
 * sc[256], d, and the mins of Q2_K (per 16) / Q4_K, Q5_K (per 32). */
typedef struct ksb {
    int c[256], sc[256], mins[16];
    float d, dmin;
} ksb;

static void k4_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    *sc = j < 4 ? s[j] & 63 : (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
}

static void codes256(int type, const uint8_t *p, ksb *k)
{
    memset(k, 0, sizeof *k);
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, t = (e / 32) % 4, l = e % 32, g = e / 16, j = e / 32;
        switch (type) {
        case ENG_TYPE_Q2_K:   /* scales@0, qs@16, d@80, dmin@82 */
            k->c[e] = (p[16 + 32 * h + l] >> (2 * t)) & 3;
            k->sc[e] = p[g] & 15;
            k->mins[g] = p[g] >> 4;
            k->d = h2f(rd16(p + 80));
            k->dmin = h2f(rd16(p + 82));
            break;
        case ENG_TYPE_Q3_K: { /* hmask@0, qs@32, scales@96, d@108 */
            const uint8_t *b = p + 96;
            int s6 = g < 8 ? b[g % 8] & 15 : b[g % 8] >> 4;
            s6 |= ((b[8 + g % 4] >> (2 * (g / 4))) & 3) << 4;
            k->c[e] = ((p[32 + 32 * h + l] >> (2 * t)) & 3) - ((p[l] >> j) & 1 ? 0 : 4);
            k->sc[e] = s6 - 32;
            k->d = h2f(rd16(p + 108));
            break;
        }
        case ENG_TYPE_Q4_K:   /* d@0, dmin@2, scales@4, qs@16 */
        case ENG_TYPE_Q5_K: { /* d@0, dmin@2, scales@4, qh@16, qs@48 */
            int sc, m;
            k4_scale_min(p + 4, j, &sc, &m);
            const uint8_t *qs = p + (type == ENG_TYPE_Q4_K ? 16 : 48);
            k->c[e] = (qs[32 * (e / 64) + l] >> (4 * (j % 2))) & 15;
            if (type == ENG_TYPE_Q5_K)
                k->c[e] |= ((p[16 + l] >> j) & 1) << 4;
            k->sc[e] = sc;
            k->mins[j] = m;
            k->d = h2f(rd16(p));
            k->dmin = h2f(rd16(p + 2));
            break;
        }
        case ENG_TYPE_Q6_K: { /* ql@0, qh@128, scales@192, d@208 */
            const int lo = (p[64 * h + 32 * (t & 1) + l] >> (4 * (t >> 1))) & 15;
            k->c[e] = lo | ((p[128 + 32 * h + l] >> (2 * t)) & 3) << 4;
            k->sc[e] = (int8_t)p[192 + g];
            k->d = h2f(rd16(p + 208));
            break;
        }
        case ENG_TYPE_IQ4_XS: { /* d@0, scales_h@2, scales_l@4, qs@8 */
            const int ls = ((p[4 + j / 2] >> (4 * (j % 2))) & 15) | ((rd16(p + 2) >> (2 * j)) & 3) << 4;
            const uint8_t q = p[8 + 16 * j + l % 16];
            k->c[e] = kv_iq4[l < 16 ? q & 15 : q >> 4];
            k->sc[e] = ls - 32;
            k->d = h2f(rd16(p));
            break;
        }
        }
    }
}

/* ---- the dots, as ggml computes them ------------------------------------ */

static float ggml_dot_b32(int type, const uint8_t *row, const xform *x, int64_t n)
{
    const int64_t nb = n / 32;
    const size_t bs = eng_format_get(type)->type_size;
    /* IQ4_NL/MXFP4: two accumulators (even, odd block of each pair); an
     * odd last block is added in scalar code */
    const bool two = type == ENG_TYPE_IQ4_NL || type == ENG_TYPE_MXFP4;
    const int64_t nmain = two ? nb / 2 * 2 : nb;
    float acc[2][8] = {{0}}, summs = 0;
    for (int64_t ib = 0; ib < nmain; ib++) {
        int c[32];
        float d, m;
        codes32(type, row + ib * bs, c, &d, &m);
        float *a = acc[two ? ib % 2 : 0];
        const float dd = d * x->d8[ib];   /* d_w * d_x: the two orders ggml writes agree */
        for (int k = 0; k < 8; k++) {
            int s = 0;
            for (int b = 4 * k; b < 4 * k + 4; b++)
                s += c[b] * x->q8[32 * ib + b];
            a[k] = fmaf(dd, (float)s, a[k]);
        }
        if (type == ENG_TYPE_Q4_1 || type == ENG_TYPE_Q5_1)
            summs = fmaf(m, x->s8[ib], summs);   /* summs += m * s, contracted */
    }
    if (!two)
        return tree_sum(acc[0], 8) + summs;
    float v[8];
    for (int k = 0; k < 8; k++)
        v[k] = acc[0][k] + acc[1][k];
    float s = tree_sum(v, 8);
    if (nmain < nb) {   /* sumf += d * (sumi1 + sumi2), contracted to an FMA */
        int c[32];
        float d, m;
        codes32(type, row + nmain * bs, c, &d, &m);
        int isum = 0;
        for (int j = 0; j < 32; j++)
            isum += c[j] * x->q8[32 * nmain + j];
        s = fmaf(x->d8[nmain] * d, (float)isum, s);
    }
    return s;
}

static float ggml_dot_k(int type, const uint8_t *row, const xform *x, int64_t n)
{
    const size_t bs = eng_format_get(type)->type_size;
    float acc[8] = {0}, acc_m[4] = {0}, summs = 0;
    ksb k;
    for (int64_t i = 0; i < n / 256; i++) {
        codes256(type, row + i * bs, &k);
        const int8_t *q8 = x->qk + 256 * i;
        const int16_t *bs16 = x->bsums + 16 * i;
        int lane[8] = {0};
        for (int e = 0; e < 256; e++)
            lane[(e % 32) / 4] += k.sc[e] * k.c[e] * q8[e];
        const float d = type == ENG_TYPE_IQ4_XS ? k.d * x->dk[i] : x->dk[i] * k.d;
        const float dmin = -x->dk[i] * k.dmin;
        if (type == ENG_TYPE_Q6_K)   /* the +32 offset through the bsums, by pairs of groups */
            for (int l = 0; l < 8; l++)
                lane[l] -= 32 * (bs16[2 * l] * k.sc[32 * l] + bs16[2 * l + 1] * k.sc[32 * l + 16]);
        if (type == ENG_TYPE_Q2_K)   /* mins first: lane l has groups 2l, 2l+1 */
            for (int l = 0; l < 8; l++)
                acc[l] = fmaf(dmin, (float)(k.mins[2 * l] * bs16[2 * l] + k.mins[2 * l + 1] * bs16[2 * l + 1]), acc[l]);
        if (type == ENG_TYPE_Q4_K)   /* 4 lanes: sub-blocks 2l, 2l+1 */
            for (int l = 0; l < 4; l++)
                acc_m[l] = fmaf(dmin, (float)(k.mins[2 * l] * (bs16[4 * l] + bs16[4 * l + 1]) +
                                              k.mins[2 * l + 1] * (bs16[4 * l + 2] + bs16[4 * l + 3])), acc_m[l]);
        if (type == ENG_TYPE_Q5_K) {
            int msum = 0;
            for (int j = 0; j < 8; j++)
                msum += k.mins[j] * (bs16[2 * j] + bs16[2 * j + 1]);
            summs = fmaf(dmin, (float)msum, summs);
        }
        for (int l = 0; l < 8; l++)
            acc[l] = fmaf(d, (float)lane[l], acc[l]);
    }
    float s = tree_sum(acc, 8);
    if (type == ENG_TYPE_Q4_K)
        s += (acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]);
    if (type == ENG_TYPE_Q5_K)
        s += summs;
    return s;
}

/* GGML_F32x8_REDUCE (AVX build): (a0+a2)+(a1+a3), lo+hi, then two hadds. */
static float reduce_avx(float a[4][8])
{
    float s[8], t[4];
    for (int k = 0; k < 8; k++)
        s[k] = (a[0][k] + a[2][k]) + (a[1][k] + a[3][k]);
    for (int k = 0; k < 4; k++)
        t[k] = s[k] + s[k + 4];
    return (t[0] + t[1]) + (t[2] + t[3]);
}

/* GGML_F32x16_REDUCE: (a0+a2)+(a1+a3), then _mm512_reduce_add_ps. */
static float reduce_avx512(float a[4][16])
{
    float s[16];
    for (int k = 0; k < 16; k++)
        s[k] = (a[0][k] + a[2][k]) + (a[1][k] + a[3][k]);
    return tree_sum(s, 16);
}

/* f32 (or widened f16) dots of ggml's AVX and AVX-512 builds. */
static float ggml_dot_f32x(const float *w, const float *x, int64_t n, bool avx512, bool dbl_tail)
{
    const int ep = avx512 ? 16 : 8, step = 4 * ep;
    const int64_t np = n / step * step;
    float a8[4][8] = {{0}}, a16[4][16] = {{0}};
    for (int64_t j = 0; j < np; j++) {
        const int r = (int)((j % step) / ep), l = (int)(j % ep);
        if (avx512)
            a16[r][l] = fmaf(w[j], x[j], a16[r][l]);
        else
            a8[r][l] = fmaf(w[j], x[j], a8[r][l]);
    }
    const float red = avx512 ? reduce_avx512(a16) : reduce_avx(a8);
    if (dbl_tail) {   /* ggml_float sumf: the leftover products added in double */
        double s = red;
        for (int64_t j = np; j < n; j++)
            s += (double)(w[j] * x[j]);
        return (float)s;
    }
    /* ggml's `sumf += x[i]*y[i]` leftover, as GCC -O3 vectorized it in
     * both builds (seen in their machine code): blocks of 8, then 4, of
     * rounded products added one by one; the last n % 4 with vfmadd231ss */
    float s = red;
    const int64_t nf = n - (n - np) % 4;
    for (int64_t j = np; j < n; j++) {
        if (j < nf) {
            volatile float p = w[j] * x[j];
            s = s + p;
        } else {
            s = fmaf(w[j], x[j], s);
        }
    }
    return s;
}

/* Correctly rounded double -> f16 bits (round to nearest even). */
static uint16_t d2h(double v)
{
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    v = fabs(v);
    if (v >= 65520.0)
        return sign | 0x7c00;
    int e;
    (void)frexp(v, &e);                       /* v = m * 2^e, m in [0.5, 1) */
    int sh = e - 11 < -24 ? -24 : e - 11;    /* the f16 quantum at this magnitude */
    double q = nearbyint(ldexp(v, -sh));      /* an integer count of quanta, RNE */
    return sign | eng_fp32_to_fp16((float)ldexp(q, sh));   /* exact in f32 */
}

/* a*b + c rounded once to f16 (vfmadd231ph): a*b is exact in double; the
 * sum is made round-to-odd before the final rounding, so no double
 * rounding can occur. */
static uint16_t fma_h(uint16_t a, uint16_t b, uint16_t c)
{
    const double p = (double)h2f(a) * h2f(b), cc = h2f(c);
    double s = p + cc;
    const double bb = s - p, err = (p - (s - bb)) + (cc - bb);   /* TwoSum */
    if (err != 0) {
        uint64_t u;
        memcpy(&u, &s, 8);
        if (!(u & 1))
            s = nextafter(s, err > 0 ? INFINITY : -INFINITY);
    }
    return d2h(s);
}

static uint16_t add_h(uint16_t a, uint16_t b) { return d2h((double)h2f(a) + h2f(b)); }

/* ggml_vec_dot_f16 with AVX512-FP16: four 32-lane f16 accumulators. */
static float ggml_dot_f16_fp16acc(const uint16_t *w, const uint16_t *x, int64_t n)
{
    const int64_t np = n / 128 * 128;
    uint16_t a[4][32] = {{0}};
    for (int64_t j = 0; j < np; j++)
        a[(j % 128) / 32][j % 32] = fma_h(w[j], x[j], a[(j % 128) / 32][j % 32]);
    uint16_t v[32];
    for (int k = 0; k < 32; k++)
        v[k] = add_h(add_h(a[0][k], a[2][k]), add_h(a[1][k], a[3][k]));
    for (int m = 32; m > 1; m /= 2)
        for (int k = 0; k < m / 2; k++)
            v[k] = add_h(v[k], v[k + m / 2]);
    double s = h2f(v[0]);
    for (int64_t j = np; j < n; j++)
        s += (double)(h2f(w[j]) * h2f(x[j]));
    return (float)s;
}

/* ggml_vec_dot_bf16: AVX2 (4 x 8 lanes over 32), AVX512F (2 x 16 over
 * 32), AVX512-BF16 (2 x 16 lanes over 64, vdpbf16ps: odd product first). */
static float ggml_dot_bf16(const uint16_t *w, const uint16_t *x, int64_t n, int variant)
{
    float a[4][16] = {{0}};
    int64_t j = 0;
    double s = 0;
    if (variant == 2) {
        for (; j + 64 <= n; j += 64)
            for (int c = 0; c < 2; c++)
                for (int l = 0; l < 16; l++) {
                    const int64_t e = j + 32 * c + 2 * l;
                    a[c][l] = a[c][l] + eng_bf16_to_fp32(w[e + 1]) * eng_bf16_to_fp32(x[e + 1]);
                    a[c][l] = a[c][l] + eng_bf16_to_fp32(w[e]) * eng_bf16_to_fp32(x[e]);
                }
    } else {
        const int ep = variant ? 16 : 8;
        for (; j + 32 <= n; j += 32)
            for (int e = 0; e < 32; e++)
                a[e / ep][e % ep] = a[e / ep][e % ep] + eng_bf16_to_fp32(w[j + e]) * eng_bf16_to_fp32(x[j + e]);
    }
    if (variant == 0) {
        float v[8];
        for (int k = 0; k < 8; k++)
            v[k] = (a[0][k] + a[2][k]) + (a[1][k] + a[3][k]);
        s = tree_sum(v, 8);
    } else {
        s += tree_sum(a[0], 16);
        s += tree_sum(a[1], 16);
    }
    for (; j < n; j++)
        s += (double)(eng_bf16_to_fp32(w[j]) * eng_bf16_to_fp32(x[j]));
    return (float)s;
}

/* The whole of llama.cpp's y = W x for one row under a table's build. */
static float ggml_dot(const eng_kernels *k, int type, const uint8_t *row, const float *xf,
                      const xform *x, int64_t n)
{
    const bool avx512 = eng_kernels_simd(k) == ENG_SIMD_AVX512;
    const char *name = eng_kernels_name(k);
    switch (type) {
    case ENG_TYPE_F32: return ggml_dot_f32x((const float *)row, xf, n, avx512, false);
    case ENG_TYPE_F16: {
        if (strstr(name, "fp16"))
            return ggml_dot_f16_fp16acc((const uint16_t *)row, x->h, n);
        float *wf = tst_alloc((size_t)n * 4), *xh = tst_alloc((size_t)n * 4);
        for (int64_t j = 0; j < n; j++) {
            wf[j] = h2f(((const uint16_t *)row)[j]);
            xh[j] = h2f(x->h[j]);
        }
        return ggml_dot_f32x(wf, xh, n, avx512, true);
    }
    case ENG_TYPE_BF16:
        return ggml_dot_bf16((const uint16_t *)row, x->b, n, !avx512 ? 0 : strstr(name, "bf16") ? 2 : 1);
    default:
        return eng_format_get(type)->blck == 32 ? ggml_dot_b32(type, row, x, n) : ggml_dot_k(type, row, x, n);
    }
}

/* ---- the checks ---------------------------------------------------------- */

static const int k_types[] = {ENG_TYPE_F32,  ENG_TYPE_F16,  ENG_TYPE_BF16,  ENG_TYPE_Q8_0,
                              ENG_TYPE_Q4_0, ENG_TYPE_Q4_1, ENG_TYPE_Q5_0,  ENG_TYPE_Q5_1,
                              ENG_TYPE_IQ4_NL, ENG_TYPE_MXFP4, ENG_TYPE_Q2_K, ENG_TYPE_Q3_K,
                              ENG_TYPE_Q4_K, ENG_TYPE_Q5_K, ENG_TYPE_Q6_K, ENG_TYPE_IQ4_XS};
enum { NTYPES = sizeof k_types / sizeof k_types[0] };

/* Every SIMD table this CPU can run (the AVX-512 ones per extension). */
static int simd_tables(const eng_kernels **out)
{
    int n = 0;
    if (eng_simd_available(ENG_SIMD_AVX2))
        out[n++] = &eng_kernels_avx2;
    if (eng_simd_available(ENG_SIMD_AVX512)) {
        out[n++] = &eng_kernels_avx512;
        if (eng_cpu_has_avx512fp16())
            out[n++] = &eng_kernels_avx512_fp16;
        if (eng_cpu_has_avx512bf16())
            out[n++] = &eng_kernels_avx512_bf16;
        if (eng_cpu_has_avx512fp16() && eng_cpu_has_avx512bf16())
            out[n++] = &eng_kernels_avx512_fp16_bf16;
    }
    return n;
}

static int64_t check_parity(int type, int64_t n, int rows, uint64_t seed, float wscale)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)(n * 131 + type);
    float *wf = tst_alloc((size_t)(rows * n) * 4), *x = tst_alloc((size_t)n * 4);
    for (int64_t i = 0; i < rows * n; i++)
        wf[i] = rndf(&s) * (i % 7 ? 0.5f : 3.0f) * wscale;
    for (int64_t j = 0; j < n; j++)
        x[j] = rndf(&s) * (j % 5 ? 1.0f : 4.0f) / wscale;
    const size_t rb = eng_type_row_bytes(type, n);
    uint8_t *w = tst_alloc(rb * (size_t)rows);
    eng_err err = {0};
    for (int r = 0; r < rows; r++)
        REQUIRE(eng_quantize_row(type, wf + r * n, w + r * rb, n, &err) == ENG_OK);
    xform *xf = tst_alloc(sizeof *xf);
    make_xform(x, n, xf);
    const eng_kernels *tabs[5];
    const int nt = simd_tables(tabs);
    float *y = tst_alloc((size_t)rows * 4);
    int64_t checked = 0;
    for (int t = 0; t < nt; t++) {
        eng_xvec v;
        REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
        REQUIRE(eng_xvec_prepare(tabs[t], &v, x, n) == ENG_OK);
        REQUIRE(eng_matvec(tabs[t], type, w, &v, y, 0, rows) == ENG_OK);
        for (int r = 0; r < rows; r++, checked++) {
            const float g = ggml_dot(tabs[t], type, w + r * rb, x, xf, n);
            CHECK_MSG(memcmp(&g, &y[r], 4) == 0, "%s %s n %lld seed %llu row %d: kernel %a, ggml %a",
                      eng_kernels_name(tabs[t]), eng_type_name(type), (long long)n,
                      (unsigned long long)seed, r, (double)y[r], (double)g);
        }
        eng_xvec_free(&v);
    }
    return checked;
}

TEST(x_forms_are_ggml_x86_quantizations)
{
    uint64_t s = 5;
    const int64_t n = 256 * 5;
    float *x = tst_alloc((size_t)n * 4);
    for (int64_t j = 0; j < n; j++)
        x[j] = rndf(&s) * (j % 32 == 3 ? 100.0f : 1.0f);
    for (int j = 64; j < 96; j++)
        x[j] = (float)(j - 80) + 0.5f;   /* amax 15.5: many x * 127/amax land on .5 */
    for (int j = 256; j < 512; j++)
        x[j] = (float)((j % 9) - 4) * 0.25f;   /* ties of |x| for Q8_K's max: the first wins */
    x[300] = -1.0f;
    x[301] = 1.0f;
    x[96] = 127.0f;   /* amax 127: d = 1 and id = 1 both ways; 2.5, 4.5 are ties */
    x[97] = 2.5f;
    x[98] = 4.5f;
    xform *f = tst_alloc(sizeof *f);
    make_xform(x, n, f);
    eng_err err = {0};
    for (int p = 0; p < ENG_SIMD_COUNT; p++) {
        const eng_kernels *k = eng_kernels_get((eng_simd)p);
        if (!k)
            continue;
        eng_xvec v;
        REQUIRE(eng_xvec_init(&v, n, &err) == ENG_OK);
        REQUIRE(eng_xvec_prepare(k, &v, x, n) == ENG_OK);
        for (int form = ENG_XF_Q8; form < ENG_XF_COUNT; form++)
            REQUIRE(eng_xvec_form(k, &v, form) == ENG_OK);
        CHECK_MSG(memcmp(v.q8_d, f->d8, (size_t)(n / 32) * 4) == 0, "%s q8 d", eng_simd_name((eng_simd)p));
        CHECK_MSG(memcmp(v.q8_s, f->s8, (size_t)(n / 32) * 4) == 0, "%s q8_1 s", eng_simd_name((eng_simd)p));
        CHECK_MSG(memcmp(v.q8_qs, f->q8, (size_t)n) == 0, "%s q8 qs", eng_simd_name((eng_simd)p));
        for (int64_t l = 0; l < n / 4; l++)   /* the lane sums the Q4_0/Q5_0 kernels use */
            CHECK_MSG(v.q8_ls8[l] == 8 * (f->q8[4 * l] + f->q8[4 * l + 1] + f->q8[4 * l + 2] + f->q8[4 * l + 3]),
                      "%s q8 ls8[%lld]", eng_simd_name((eng_simd)p), (long long)l);
        CHECK_MSG(memcmp(v.q8k_d, f->dk, (size_t)(n / 256) * 4) == 0, "%s q8_K d", eng_simd_name((eng_simd)p));
        CHECK_MSG(memcmp(v.q8k_qs, f->qk, (size_t)n) == 0, "%s q8_K qs", eng_simd_name((eng_simd)p));
        CHECK_MSG(memcmp(v.q8k_bsums, f->bsums, (size_t)(n / 16) * 2) == 0, "%s q8_K bsums", eng_simd_name((eng_simd)p));
        CHECK_MSG(memcmp(v.f16, f->h, (size_t)n * 2) == 0, "%s f16", eng_simd_name((eng_simd)p));
        CHECK_MSG(memcmp(v.bf16, f->b, (size_t)n * 2) == 0, "%s bf16", eng_simd_name((eng_simd)p));
        eng_xvec_free(&v);
    }
    /* the x86 rounding differs from the reference one (roundf(x/d) with
     * id = 1/d, ties away from zero) for some x: this input has such an x */
    eng_block_q8_0 ref[40];
    REQUIRE(eng_quantize_row(ENG_TYPE_Q8_0, x, ref, n, &err) == ENG_OK);
    int diff = 0;
    for (int64_t j = 0; j < n; j++)
        diff += ref[j / 32].qs[j % 32] != f->q8[j];
    CHECK(diff > 0);
    printf("x86 vs reference Q8_0 rounding: %d of %lld quants differ\n", diff, (long long)n);
}

TEST(matvec_bit_identical_to_ggml_every_type)
{
    const eng_kernels *tabs[5];
    if (!simd_tables(tabs)) {
        printf("no SIMD path on this CPU: nothing to compare\n");
        return;
    }
    static const int64_t n32[] = {32, 64, 96, 160, 224, 288, 512, 1056, 2080, 4128};
    static const int64_t n256[] = {256, 512, 768, 1280, 2048, 4352};
    static const int64_t nf[] = {1, 7, 31, 33, 63, 64, 65, 127, 128, 129, 255, 1000, 2051, 4100};
    int64_t total = 0;
    for (int t = 0; t < NTYPES; t++) {
        const int type = k_types[t];
        const int64_t blck = eng_format_get(type)->blck;
        const int64_t *ns = blck == 1 ? nf : blck == 32 ? n32 : n256;
        const int nn = blck == 1 ? 14 : blck == 32 ? 10 : 6;
        for (int i = 0; i < nn; i++)
            for (uint64_t seed = 1; seed <= 3; seed++)
                total += check_parity(type, ns[i], 6, seed, seed == 2 ? 1e-2f : seed == 3 ? 8.0f : 1.0f);
    }
    printf("%lld rows compared bit for bit\n", (long long)total);
}
