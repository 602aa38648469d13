/*
 * formats.c — the ggml type table, fp16/bf16 conversions, reference
 * quantization, SIMD path selection and the checked kernel entry points.
 * See formats.h.
 *
 * Design notes:
 * - The type table lists every type ggml defines (ggml.c type_traits, also
 *   gguf-py GGML_QUANT_SIZES), so a GGUF file of any published quantization
 *   opens and sizes correctly; `supported` is true only where the three
 *   kernel tables have entries.
 * - Quantizers of Q8_0, Q4_0 and Q5_0 follow ggml-quants.c
 *   quantize_row_q{8,4,5}_0_ref statement by statement, so the same f32
 *   input gives the same bytes as llama.cpp. The K-quant quantizers are
 *   simpler than ggml's (no weighted search for the sub-block scales, see
 *   quantize_q4_k / quantize_q6_k): valid files, a little more error.
 * - eng_matvec/eng_dequant_rows check their arguments (cheap, per call, not
 *   per row) and then call the table entry.
 */
#include "engine/formats.h"
#include "engine/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define F(id, nm, b, sz, sup) [id] = {id, nm, b, sz, sup}
static const eng_format type_table[ENG_TYPE_COUNT] = {
    F(ENG_TYPE_F32, "f32", 1, 4, true),        F(ENG_TYPE_F16, "f16", 1, 2, true),
    F(ENG_TYPE_Q4_0, "q4_0", 32, 18, true),    F(ENG_TYPE_Q4_1, "q4_1", 32, 20, false),
    F(ENG_TYPE_Q5_0, "q5_0", 32, 22, true),   F(ENG_TYPE_Q5_1, "q5_1", 32, 24, false),
    F(ENG_TYPE_Q8_0, "q8_0", 32, 34, true),    F(ENG_TYPE_Q8_1, "q8_1", 32, 36, false),
    F(ENG_TYPE_Q2_K, "q2_K", 256, 84, false),  F(ENG_TYPE_Q3_K, "q3_K", 256, 110, false),
    F(ENG_TYPE_Q4_K, "q4_K", 256, 144, true), F(ENG_TYPE_Q5_K, "q5_K", 256, 176, false),
    F(ENG_TYPE_Q6_K, "q6_K", 256, 210, true), F(ENG_TYPE_Q8_K, "q8_K", 256, 292, false),
    F(ENG_TYPE_IQ2_XXS, "iq2_xxs", 256, 66, false),
    F(ENG_TYPE_IQ2_XS, "iq2_xs", 256, 74, false),
    F(ENG_TYPE_IQ3_XXS, "iq3_xxs", 256, 98, false),
    F(ENG_TYPE_IQ1_S, "iq1_s", 256, 50, false),
    F(ENG_TYPE_IQ4_NL, "iq4_nl", 32, 18, false),
    F(ENG_TYPE_IQ3_S, "iq3_s", 256, 110, false),
    F(ENG_TYPE_IQ2_S, "iq2_s", 256, 82, false),
    F(ENG_TYPE_IQ4_XS, "iq4_xs", 256, 136, false),
    F(ENG_TYPE_I8, "i8", 1, 1, false),         F(ENG_TYPE_I16, "i16", 1, 2, false),
    F(ENG_TYPE_I32, "i32", 1, 4, false),       F(ENG_TYPE_I64, "i64", 1, 8, false),
    F(ENG_TYPE_F64, "f64", 1, 8, false),       F(ENG_TYPE_IQ1_M, "iq1_m", 256, 56, false),
    F(ENG_TYPE_BF16, "bf16", 1, 2, true),      F(ENG_TYPE_TQ1_0, "tq1_0", 256, 54, false),
    F(ENG_TYPE_TQ2_0, "tq2_0", 256, 66, false),
    F(ENG_TYPE_MXFP4, "mxfp4", 32, 17, false),
};
#undef F

const eng_format *eng_format_get(int type)
{
    if (type < 0 || type >= ENG_TYPE_COUNT || !type_table[type].name)
        return NULL;
    return &type_table[type];
}

const char *eng_type_name(int type)
{
    const eng_format *f = eng_format_get(type);
    return f ? f->name : "?";
}

int eng_type_from_name(const char *name)
{
    for (int t = 0; t < ENG_TYPE_COUNT; t++)
        if (type_table[t].name && strcasecmp(type_table[t].name, name) == 0)
            return t;
    return -1;
}

uint64_t eng_type_row_bytes(int type, int64_t n)
{
    const eng_format *f = eng_format_get(type);
    if (!f || n < 0 || n % f->blck != 0)
        return 0;
    uint64_t blocks = (uint64_t)(n / f->blck);
    if (blocks > UINT64_MAX / f->type_size)
        return 0;
    return blocks * f->type_size;
}

/* ---- fp16 / bf16 -------------------------------------------------------- */

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float eng_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f)                      /* inf; nan: payload kept, made quiet like F16C */
        return u2f(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0));
    if (exp == 0) {
        if (mant == 0)
            return u2f(sign);
        /* subnormal: mant * 2^-24, exact in f32 */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t eng_fp32_to_fp16(float f)
{
    uint32_t x = f2u(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)                 /* nan: quiet, top payload bits kept */
        return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff);
    if (ax >= 0x47800000u)                /* >= 65536 (or inf): inf */
        return sign | 0x7c00;
    uint32_t e = ax >> 23, mant = (ax & 0x7fffffu) | 0x800000u;
    if (e < 113) {                        /* below 2^-14: fp16 subnormal or 0 */
        if (e < 102)
            return sign;                  /* < 2^-25: rounds to 0 */
        uint32_t shift = 126 - e;         /* 14..24 */
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return sign | (uint16_t)h;
    }
    uint32_t h = ((e - 112) << 10) | ((ax & 0x7fffffu) >> 13), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;                              /* a carry into the exponent is right, up to inf */
    return sign | (uint16_t)h;
}

float eng_bf16_to_fp32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t eng_fp32_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)  /* nan: force quiet (ggml-impl.h) */
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

/* ---- reference quantization --------------------------------------------- */

float eng_q8_block_scale(float amax, float *id)
{
    const float d = amax / ((1 << 7) - 1);
    *id = d ? 1.0f / d : 0.0f;
    return eng_fp16_to_fp32(eng_fp32_to_fp16(d));
}

static void quantize_q8_0(const float *x, eng_block_q8_0 *y, int64_t n)
{
    for (int64_t i = 0; i < n / ENG_QK8_0; i++, x += ENG_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < ENG_QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = eng_fp32_to_fp16(d);
        for (int j = 0; j < ENG_QK8_0; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void quantize_q4_0(const float *x, eng_block_q4_0 *y, int64_t n)
{
    for (int64_t i = 0; i < n / ENG_QK4_0; i++, x += ENG_QK4_0) {
        float amax = 0.0f, max = 0.0f;  /* the signed value of largest magnitude */
        for (int j = 0; j < ENG_QK4_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = eng_fp32_to_fp16(d);
        for (int j = 0; j < ENG_QK4_0 / 2; j++) {
            int xi0 = (int8_t)(x[j] * id + 8.5f), xi1 = (int8_t)(x[j + 16] * id + 8.5f);
            xi0 = xi0 < 15 ? xi0 : 15;
            xi1 = xi1 < 15 ? xi1 : 15;
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

/* ggml quantize_row_q5_0_ref: Q4_0's scheme with 5 bits (max / -16). */
static void quantize_q5_0(const float *x, eng_block_q5_0 *y, int64_t n)
{
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = eng_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int xi0 = (int8_t)(x[j] * id + 16.5f), xi1 = (int8_t)(x[j + 16] * id + 16.5f);
            xi0 = xi0 < 31 ? xi0 : 31;
            xi1 = xi1 < 31 ? xi1 : 31;
            y[i].qs[j] = (uint8_t)((xi0 & 0xf) | ((xi1 & 0xf) << 4));
            qh |= (uint32_t)((xi0 & 0x10) >> 4) << j;
            qh |= (uint32_t)((xi1 & 0x10) >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Packs Q4_K's 6-bit scales ls[8] and mins lm[8] (ggml quantize_row_q4_K_ref). */
static void pack_q4_k_scales(uint8_t *s, const int *ls, const int *lm)
{
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = (uint8_t)ls[j];
            s[j + 4] = (uint8_t)lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Q4_K. Each sub-block of 32 spans [lo, hi] = [min(0, min x), max x] in 15
 * steps: scale (hi-lo)/15, min -lo (ggml keeps the min <= 0 too). The 8
 * scales and mins become 6-bit multiples of d = max scale / 63 and
 * dmin = max min / 63, and q = round((x + dmin*m) / (d*sc)) in 0..15 uses
 * the stored (rounded) values. This is the starting point of llama.cpp's
 * make_qkx2_quants without its weighted search for a better scale/min
 * pair; error per element <= (1/2 + 8.5/63) * max scale + 0.53 * dmin. */
static void quantize_q4_k(const float *x, eng_block_q4_k *y, int64_t n)
{
    for (int64_t i = 0; i < n / ENG_QK_K; i++, x += ENG_QK_K) {
        float scale[8], mins[8], max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; j++) {
            float lo = 0.0f, hi = x[32 * j];
            for (int l = 0; l < 32; l++) {
                lo = fminf(lo, x[32 * j + l]);
                hi = fmaxf(hi, x[32 * j + l]);
            }
            scale[j] = (hi - lo) / 15;
            mins[j] = -lo;
            max_scale = fmaxf(max_scale, scale[j]);
            max_min = fmaxf(max_min, mins[j]);
        }
        const float is = max_scale > 0 ? 63 / max_scale : 0.0f, im = max_min > 0 ? 63 / max_min : 0.0f;
        int ls[8], lm[8];
        for (int j = 0; j < 8; j++) {
            ls[j] = clampi((int)roundf(is * scale[j]), 0, 63);
            lm[j] = clampi((int)roundf(im * mins[j]), 0, 63);
        }
        pack_q4_k_scales(y[i].scales, ls, lm);
        y[i].d = eng_fp32_to_fp16(max_scale / 63);
        y[i].dmin = eng_fp32_to_fp16(max_min / 63);
        const float d = eng_fp16_to_fp32(y[i].d), dmin = eng_fp16_to_fp32(y[i].dmin);
        memset(y[i].qs, 0, sizeof y[i].qs);
        for (int j = 0; j < 8; j++) {
            const float d1 = d * (float)ls[j], m1 = dmin * (float)lm[j];
            for (int l = 0; l < 32; l++) {
                int q = d1 > 0 ? clampi((int)roundf((x[32 * j + l] + m1) / d1), 0, 15) : 0;
                y[i].qs[32 * (j / 2) + l] |= (uint8_t)(q << (4 * (j & 1)));
            }
        }
    }
}

/* Q6_K codes L[256] (0..63) into ql/qh (ggml quantize_row_q6_K_ref). */
static void pack_q6_k(eng_block_q6_k *y, const uint8_t *L)
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *q = L + 128 * h + l;
            y->ql[64 * h + l] = (uint8_t)((q[0] & 0xf) | ((q[64] & 0xf) << 4));
            y->ql[64 * h + l + 32] = (uint8_t)((q[32] & 0xf) | ((q[96] & 0xf) << 4));
            y->qh[32 * h + l] = (uint8_t)((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) |
                                          ((q[96] >> 4) << 6));
        }
}

/* Q6_K. Each group of 16 gets scale max / -32 (max = its signed element of
 * largest magnitude, as Q4_0 does; ggml make_qx_quants' first guess, without
 * its weighted search); the 16 scales become int8 multiples of
 * d = -max_scale / 128 (max_scale the signed scale of largest magnitude, as
 * quantize_row_q6_K_ref), then q = round(x / (d*sc)) in -32..31 with the
 * stored values. Error per element <= |group scale| + 0.28 * |max_scale|
 * (tests/engine/test_formats.c derives both bounds). */
static void quantize_q6_k(const float *x, eng_block_q6_k *y, int64_t n)
{
    for (int64_t i = 0; i < n / ENG_QK_K; i++, x += ENG_QK_K) {
        float scale[16], max_scale = 0.0f;
        for (int g = 0; g < 16; g++) {
            float amax = 0.0f, max = 0.0f;
            for (int l = 0; l < 16; l++)
                if (amax < fabsf(x[16 * g + l])) {
                    amax = fabsf(x[16 * g + l]);
                    max = x[16 * g + l];
                }
            scale[g] = max / -32;
            if (fabsf(scale[g]) > fabsf(max_scale))
                max_scale = scale[g];
        }
        memset(y + i, 0, sizeof *y);
        if (max_scale == 0.0f)
            continue;                  /* all zero: d = 0 */
        const float iscale = -128 / max_scale;
        y[i].d = eng_fp32_to_fp16(1 / iscale);
        const float d = eng_fp16_to_fp32(y[i].d);
        uint8_t L[ENG_QK_K];
        for (int g = 0; g < 16; g++) {
            y[i].scales[g] = (int8_t)clampi((int)roundf(iscale * scale[g]), -128, 127);
            const float d1 = d * (float)y[i].scales[g];
            for (int l = 0; l < 16; l++) {
                int q = d1 != 0 ? clampi((int)roundf(x[16 * g + l] / d1), -32, 31) : 0;
                L[16 * g + l] = (uint8_t)(q + 32);
            }
        }
        pack_q6_k(y + i, L);
    }
}

static int check_row(int type, int64_t n, const char *what, eng_err *err)
{
    const eng_format *f = eng_format_get(type);
    if (!f)
        return eng_err_set(err, ENG_EUNSUPPORTED, "%s: unknown type id %d", what, type);
    if (!f->supported)
        return eng_err_set(err, ENG_EUNSUPPORTED, "%s: type %s has no kernels", what, f->name);
    if (n < 0 || n % f->blck)
        return eng_err_set(err, ENG_EINVAL, "%s: %lld elements is not a multiple of %s's block of %lld",
                           what, (long long)n, f->name, (long long)f->blck);
    return ENG_OK;
}

int eng_quantize_row(int type, const float *src, void *dst, int64_t n, eng_err *err)
{
    int rc = check_row(type, n, "quantize", err);
    if (rc)
        return rc;
    for (int64_t j = 0; j < n; j++)   /* ggml's casts of nan/inf are undefined */
        if (!isfinite(src[j]))
            return eng_err_set(err, ENG_EINVAL, "quantize: element %lld is not finite", (long long)j);
    switch (type) {
    case ENG_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case ENG_TYPE_F16:
        for (int64_t j = 0; j < n; j++) ((uint16_t *)dst)[j] = eng_fp32_to_fp16(src[j]);
        break;
    case ENG_TYPE_BF16:
        for (int64_t j = 0; j < n; j++) ((uint16_t *)dst)[j] = eng_fp32_to_bf16(src[j]);
        break;
    case ENG_TYPE_Q8_0: quantize_q8_0(src, dst, n); break;
    case ENG_TYPE_Q4_0: quantize_q4_0(src, dst, n); break;
    case ENG_TYPE_Q5_0: quantize_q5_0(src, dst, n); break;
    case ENG_TYPE_Q4_K: quantize_q4_k(src, dst, n); break;
    case ENG_TYPE_Q6_K: quantize_q6_k(src, dst, n); break;
    default: return eng_err_set(err, ENG_EUNSUPPORTED, "quantize: no quantizer for %s", eng_type_name(type));
    }
    return ENG_OK;
}

int eng_dequantize_row(int type, const void *src, float *dst, int64_t n, eng_err *err)
{
    int rc = check_row(type, n, "dequantize", err);
    if (rc)
        return rc;
    eng_kernels_scalar.dequant[type](src, dst, n);
    return ENG_OK;
}

/* ---- SIMD selection ----------------------------------------------------- */

static const char *const simd_names[ENG_SIMD_COUNT] = {"scalar", "avx2", "avx512"};

const char *eng_simd_name(eng_simd s)
{
    return (s >= 0 && s < ENG_SIMD_COUNT) ? simd_names[s] : "?";
}

int eng_simd_parse(const char *s, eng_simd *out, eng_err *err)
{
    for (int i = 0; i < ENG_SIMD_COUNT; i++)
        if (s && strcmp(s, simd_names[i]) == 0) {
            *out = (eng_simd)i;
            return ENG_OK;
        }
    return eng_err_set(err, ENG_EINVAL, "unknown SIMD path '%s' (expected scalar, avx2 or avx512)",
                       s ? s : "");
}

bool eng_simd_available(eng_simd s)
{
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    switch (s) {
    case ENG_SIMD_SCALAR: return true;
    case ENG_SIMD_AVX2: return avx2;
    case ENG_SIMD_AVX512:
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    default: return false;
    }
}

eng_simd eng_simd_best(void)
{
    for (int s = ENG_SIMD_COUNT - 1; s > 0; s--)
        if (eng_simd_available((eng_simd)s))
            return (eng_simd)s;
    return ENG_SIMD_SCALAR;
}

int eng_simd_default(eng_simd *out, eng_err *err)
{
    const char *env = getenv("MOEBENCH_SIMD");
    if (!env || !*env) {
        *out = eng_simd_best();
        return ENG_OK;
    }
    eng_simd s;
    int rc = eng_simd_parse(env, &s, err);
    if (rc)
        return eng_err_prefix(err, "MOEBENCH_SIMD");
    if (!eng_simd_available(s))
        return eng_err_set(err, ENG_EUNSUPPORTED, "MOEBENCH_SIMD=%s: this CPU lacks %s", env, env);
    *out = s;
    return ENG_OK;
}

const eng_kernels *eng_kernels_get(eng_simd s)
{
    static const eng_kernels *const tables[ENG_SIMD_COUNT] = {
        &eng_kernels_scalar, &eng_kernels_avx2, &eng_kernels_avx512};
    if (s < 0 || s >= ENG_SIMD_COUNT || !eng_simd_available(s))
        return NULL;
    return tables[s];
}

eng_simd eng_kernels_simd(const eng_kernels *k) { return k->simd; }

/* ---- prepared x --------------------------------------------------------- */

int eng_xvec_init(eng_xvec *v, int64_t n_max, eng_err *err)
{
    memset(v, 0, sizeof *v);
    if (n_max < 0 || n_max > (INT64_C(1) << 40))
        return eng_err_set(err, ENG_EINVAL, "xvec: bad width %lld", (long long)n_max);
    size_t nq = ((size_t)n_max + 63) & ~(size_t)63;
    v->xq = aligned_alloc(64, nq ? nq : 64);
    v->xd = malloc(((size_t)n_max / 32 + 1) * sizeof(float));
    v->xs = malloc(((size_t)n_max / 32 + 1) * sizeof(int16_t));
    if (!v->xq || !v->xd || !v->xs) {
        eng_xvec_free(v);
        return eng_err_set(err, ENG_ENOMEM, "xvec: out of memory for %lld elements", (long long)n_max);
    }
    v->n_max = n_max;
    return ENG_OK;
}

void eng_xvec_free(eng_xvec *v)
{
    free(v->xq);
    free(v->xd);
    free(v->xs);
    memset(v, 0, sizeof *v);
}

int eng_xvec_prepare(const eng_kernels *k, eng_xvec *v, const float *x, int64_t n)
{
    if (n < 0 || n > v->n_max)
        return ENG_EINVAL;
    v->n = n;
    v->f32 = x;
    v->has_q8 = n % 32 == 0;
    if (!v->has_q8)
        return ENG_OK;
    k->quant_q8(x, v->xd, v->xq, n);
    for (int64_t b = 0; b < n / 32; b++) {   /* |sum| <= 32 * 127: int16 */
        int s = 0;
        for (int j = 0; j < 32; j++)
            s += v->xq[b * 32 + j];
        v->xs[b] = (int16_t)s;
    }
    return ENG_OK;
}

/* ---- checked entry points ----------------------------------------------- */

static int kernel_args(int type, int64_t n, const void *fn, bool needs_q8, bool has_q8)
{
    const eng_format *f = eng_format_get(type);
    if (!f || !f->supported || !fn)
        return ENG_EUNSUPPORTED;
    if (n < 0 || n % f->blck || (needs_q8 && !has_q8))
        return ENG_EINVAL;
    return ENG_OK;
}

int eng_matvec(const eng_kernels *k, int type, const void *w, const eng_xvec *x, float *y,
               int64_t r0, int64_t r1)
{
    const eng_format *f = eng_format_get(type);
    bool q = f && f->blck > 1;   /* block types compute against x's Q8_0 form */
    eng_matvec_fn fn = (type >= 0 && type < ENG_TYPE_COUNT) ? k->matvec[type] : NULL;
    int rc = kernel_args(type, x->n, (const void *)fn, q, x->has_q8);
    if (rc)
        return rc;
    if (r0 < 0 || r1 < r0)
        return ENG_EINVAL;
    if (r1 > r0)
        fn(w, eng_type_row_bytes(type, x->n), x, y, r0, r1);
    return ENG_OK;
}

int eng_dequant_rows(const eng_kernels *k, int type, const void *w, int64_t n, int64_t r0,
                     int64_t r1, float *dst)
{
    eng_dequant_fn fn = (type >= 0 && type < ENG_TYPE_COUNT) ? k->dequant[type] : NULL;
    int rc = kernel_args(type, n, (const void *)fn, false, false);
    if (rc)
        return rc;
    if (r0 < 0 || r1 < r0)
        return ENG_EINVAL;
    size_t rb = eng_type_row_bytes(type, n);
    for (int64_t r = r0; r < r1; r++)
        fn((const char *)w + (size_t)r * rb, dst + (size_t)(r - r0) * (size_t)n, n);
    return ENG_OK;
}
