/*
 * formats.c — the ggml type table, fp16/bf16 conversions, SIMD path
 * selection, the prepared x (partner forms built on first use) and the
 * checked kernel entry points. See formats.h.
 *
 * Design notes:
 * - The type table lists every type ggml defines (ggml.c type_traits, also
 *   gguf-py GGML_QUANT_SIZES), so a GGUF file of any published quantization
 *   opens and sizes correctly; `supported` is true only where every kernel
 *   table has entries (the tests check that).
 * - Quantizers live in formats_quant.c (ggml's reference code).
 * - The partner forms of an xvec: prepare marks them stale; the first
 *   eng_matvec needing one claims it with a compare-and-swap (stale ->
 *   building), builds it and publishes it (-> ready, release); a thread
 *   that finds it building waits (acquire) — a few microseconds for an x of
 *   a few thousand elements. Every path builds the same bits, so which
 *   thread (and table) builds it does not matter.
 * - eng_matvec/eng_dequant_rows check their arguments (cheap, per call, not
 *   per row) and then call the table entry.
 */
#include "engine/formats.h"
#include "engine/kernels.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define F(id, nm, b, sz, sup) [id] = {id, nm, b, sz, sup}
static const eng_format type_table[ENG_TYPE_COUNT] = {
    F(ENG_TYPE_F32, "f32", 1, 4, true),        F(ENG_TYPE_F16, "f16", 1, 2, true),
    F(ENG_TYPE_Q4_0, "q4_0", 32, 18, true),    F(ENG_TYPE_Q4_1, "q4_1", 32, 20, true),
    F(ENG_TYPE_Q5_0, "q5_0", 32, 22, true),   F(ENG_TYPE_Q5_1, "q5_1", 32, 24, true),
    F(ENG_TYPE_Q8_0, "q8_0", 32, 34, true),    F(ENG_TYPE_Q8_1, "q8_1", 32, 36, false),
    F(ENG_TYPE_Q2_K, "q2_K", 256, 84, true),  F(ENG_TYPE_Q3_K, "q3_K", 256, 110, true),
    F(ENG_TYPE_Q4_K, "q4_K", 256, 144, true), F(ENG_TYPE_Q5_K, "q5_K", 256, 176, true),
    F(ENG_TYPE_Q6_K, "q6_K", 256, 210, true), F(ENG_TYPE_Q8_K, "q8_K", 256, 292, false),
    F(ENG_TYPE_IQ2_XXS, "iq2_xxs", 256, 66, false),
    F(ENG_TYPE_IQ2_XS, "iq2_xs", 256, 74, false),
    F(ENG_TYPE_IQ3_XXS, "iq3_xxs", 256, 98, false),
    F(ENG_TYPE_IQ1_S, "iq1_s", 256, 50, false),
    F(ENG_TYPE_IQ4_NL, "iq4_nl", 32, 18, true),
    F(ENG_TYPE_IQ3_S, "iq3_s", 256, 110, false),
    F(ENG_TYPE_IQ2_S, "iq2_s", 256, 82, false),
    F(ENG_TYPE_IQ4_XS, "iq4_xs", 256, 136, true),
    F(ENG_TYPE_I8, "i8", 1, 1, false),         F(ENG_TYPE_I16, "i16", 1, 2, false),
    F(ENG_TYPE_I32, "i32", 1, 4, false),       F(ENG_TYPE_I64, "i64", 1, 8, false),
    F(ENG_TYPE_F64, "f64", 1, 8, false),       F(ENG_TYPE_IQ1_M, "iq1_m", 256, 56, false),
    F(ENG_TYPE_BF16, "bf16", 1, 2, true),      F(ENG_TYPE_TQ1_0, "tq1_0", 256, 54, false),
    F(ENG_TYPE_TQ2_0, "tq2_0", 256, 66, false),
    F(ENG_TYPE_MXFP4, "mxfp4", 32, 17, true),
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

/* ---- rows ---------------------------------------------------------------- */

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

typedef void (*quant_fn)(const float *x, void *y, int64_t n);
static const quant_fn quantizers[ENG_TYPE_COUNT] = {
    [ENG_TYPE_Q4_0] = eng_quant_q4_0,     [ENG_TYPE_Q4_1] = eng_quant_q4_1,
    [ENG_TYPE_Q5_0] = eng_quant_q5_0,     [ENG_TYPE_Q5_1] = eng_quant_q5_1,
    [ENG_TYPE_Q8_0] = eng_quant_q8_0,     [ENG_TYPE_IQ4_NL] = eng_quant_iq4_nl,
    [ENG_TYPE_MXFP4] = eng_quant_mxfp4,   [ENG_TYPE_Q2_K] = eng_quant_q2_k,
    [ENG_TYPE_Q3_K] = eng_quant_q3_k,     [ENG_TYPE_Q4_K] = eng_quant_q4_k,
    [ENG_TYPE_Q5_K] = eng_quant_q5_k,     [ENG_TYPE_Q6_K] = eng_quant_q6_k,
    [ENG_TYPE_IQ4_XS] = eng_quant_iq4_xs,
};

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
    default:
        if (!quantizers[type])
            return eng_err_set(err, ENG_EUNSUPPORTED, "quantize: no quantizer for %s", eng_type_name(type));
        quantizers[type](src, dst, n);
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

bool eng_cpu_has_avx512fp16(void)
{
    __builtin_cpu_init();
    return eng_simd_available(ENG_SIMD_AVX512) && __builtin_cpu_supports("avx512fp16");
}

bool eng_cpu_has_avx512bf16(void)
{
    __builtin_cpu_init();
    return eng_simd_available(ENG_SIMD_AVX512) && __builtin_cpu_supports("avx512bf16");
}

/* AVX-512: the table whose f16/bf16 dots are the ones llama.cpp built
 * with -march=native runs on this CPU. */
const eng_kernels *eng_kernels_get(eng_simd s)
{
    if (s < 0 || s >= ENG_SIMD_COUNT || !eng_simd_available(s))
        return NULL;
    if (s == ENG_SIMD_SCALAR)
        return &eng_kernels_scalar;
    if (s == ENG_SIMD_AVX2)
        return &eng_kernels_avx2;
    bool fp16 = eng_cpu_has_avx512fp16(), bf16 = eng_cpu_has_avx512bf16();
    return fp16 ? (bf16 ? &eng_kernels_avx512_fp16_bf16 : &eng_kernels_avx512_fp16)
                : (bf16 ? &eng_kernels_avx512_bf16 : &eng_kernels_avx512);
}

eng_simd eng_kernels_simd(const eng_kernels *k) { return k->simd; }
const char *eng_kernels_name(const eng_kernels *k) { return k->name; }

/* ---- prepared x --------------------------------------------------------- */

/* ggml type_traits_cpu[type].vec_dot_type (ggml-cpu.c). */
static const signed char xform_of[ENG_TYPE_COUNT] = {
    [ENG_TYPE_F32] = ENG_XF_F32,    [ENG_TYPE_F16] = ENG_XF_F16,   [ENG_TYPE_BF16] = ENG_XF_BF16,
    [ENG_TYPE_Q4_0] = ENG_XF_Q8,    [ENG_TYPE_Q4_1] = ENG_XF_Q8,   [ENG_TYPE_Q5_0] = ENG_XF_Q8,
    [ENG_TYPE_Q5_1] = ENG_XF_Q8,    [ENG_TYPE_Q8_0] = ENG_XF_Q8,   [ENG_TYPE_IQ4_NL] = ENG_XF_Q8,
    [ENG_TYPE_MXFP4] = ENG_XF_Q8,   [ENG_TYPE_Q2_K] = ENG_XF_Q8K,  [ENG_TYPE_Q3_K] = ENG_XF_Q8K,
    [ENG_TYPE_Q4_K] = ENG_XF_Q8K,   [ENG_TYPE_Q5_K] = ENG_XF_Q8K,  [ENG_TYPE_Q6_K] = ENG_XF_Q8K,
    [ENG_TYPE_IQ4_XS] = ENG_XF_Q8K,
};

int eng_type_xform(int type)
{
    const eng_format *f = eng_format_get(type);
    return f && f->supported ? xform_of[type] : -1;
}

int64_t eng_xform_block(int form)
{
    return form == ENG_XF_Q8 ? 32 : form == ENG_XF_Q8K ? ENG_QK_K : 1;
}

enum { XS_STALE = 0, XS_BUILDING = 1, XS_READY = 2 };
struct eng_xvec_sync {
    atomic_int state[ENG_XF_COUNT];
};

static void *alloc64(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

int eng_xvec_init(eng_xvec *v, int64_t n_max, eng_err *err)
{
    memset(v, 0, sizeof *v);
    if (n_max < 0 || n_max > (INT64_C(1) << 40))
        return eng_err_set(err, ENG_EINVAL, "xvec: bad width %lld", (long long)n_max);
    size_t n = (size_t)n_max + 1, nb = n / 32 + 1;
    v->q8_d = alloc64(nb * sizeof(float));
    v->q8_s = alloc64(nb * sizeof(float));
    v->q8_qs = alloc64(n);
    v->q8_ls8 = alloc64((n / 4 + 1) * sizeof(int32_t));
    v->q8k_d = alloc64((n / ENG_QK_K + 1) * sizeof(float));
    v->q8k_qs = alloc64(n);
    v->q8k_bsums = alloc64((n / 16 + 1) * sizeof(int16_t));
    v->f16 = alloc64(n * sizeof(uint16_t));
    v->bf16 = alloc64(n * sizeof(uint16_t));
    v->sync = calloc(1, sizeof *v->sync);
    if (!v->q8_d || !v->q8_s || !v->q8_qs || !v->q8_ls8 || !v->q8k_d || !v->q8k_qs || !v->q8k_bsums ||
        !v->f16 || !v->bf16 || !v->sync) {
        eng_xvec_free(v);
        return eng_err_set(err, ENG_ENOMEM, "xvec: out of memory for %lld elements", (long long)n_max);
    }
    v->n_max = n_max;
    return ENG_OK;
}

void eng_xvec_free(eng_xvec *v)
{
    free(v->q8_d);
    free(v->q8_s);
    free(v->q8_qs);
    free(v->q8_ls8);
    free(v->q8k_d);
    free(v->q8k_qs);
    free(v->q8k_bsums);
    free(v->f16);
    free(v->bf16);
    free(v->sync);
    memset(v, 0, sizeof *v);
}

int eng_xvec_prepare(const eng_kernels *k, eng_xvec *v, const float *x, int64_t n)
{
    (void)k;
    if (n < 0 || n > v->n_max)
        return ENG_EINVAL;
    v->n = n;
    v->f32 = x;
    for (int f = 0; f < ENG_XF_COUNT; f++)
        atomic_store_explicit(&v->sync->state[f], XS_STALE, memory_order_relaxed);
    return ENG_OK;
}

static void xvec_build(const eng_kernels *k, const eng_xvec *v, int form)
{
    switch (form) {
    case ENG_XF_Q8: k->x_q8(v->f32, v->n, v->q8_d, v->q8_s, v->q8_qs, v->q8_ls8); break;
    case ENG_XF_Q8K: k->x_q8k(v->f32, v->n, v->q8k_d, v->q8k_qs, v->q8k_bsums); break;
    case ENG_XF_F16: k->x_f16(v->f32, v->n, v->f16); break;
    case ENG_XF_BF16: k->x_bf16(v->f32, v->n, v->bf16); break;
    default: break;
    }
}

int eng_xvec_form(const eng_kernels *k, const eng_xvec *v, int form)
{
    if (form < 0 || form >= ENG_XF_COUNT || v->n % eng_xform_block(form))
        return ENG_EINVAL;
    if (form == ENG_XF_F32)
        return ENG_OK;
    atomic_int *st = &v->sync->state[form];
    int cur = atomic_load_explicit(st, memory_order_acquire);
    if (cur == XS_READY)
        return ENG_OK;
    if (cur == XS_STALE &&
        atomic_compare_exchange_strong_explicit(st, &cur, XS_BUILDING, memory_order_acquire,
                                                memory_order_acquire)) {
        xvec_build(k, v, form);
        atomic_store_explicit(st, XS_READY, memory_order_release);
        return ENG_OK;
    }
    /* another thread builds it: microseconds; yield now and then in case
     * it was preempted */
    for (unsigned spin = 1; atomic_load_explicit(st, memory_order_acquire) != XS_READY; spin++)
        if (spin % 256 == 0)
            sched_yield();
    return ENG_OK;
}

/* ---- checked entry points ----------------------------------------------- */

static int kernel_args(int type, int64_t n, const void *fn)
{
    const eng_format *f = eng_format_get(type);
    if (!f || !f->supported || !fn)
        return ENG_EUNSUPPORTED;
    if (n < 0 || n % f->blck || n % eng_xform_block(xform_of[type]))
        return ENG_EINVAL;
    return ENG_OK;
}

int eng_matvec(const eng_kernels *k, int type, const void *w, const eng_xvec *x, float *y,
               int64_t r0, int64_t r1)
{
    eng_matvec_fn fn = (type >= 0 && type < ENG_TYPE_COUNT) ? k->matvec[type] : NULL;
    int rc = kernel_args(type, x->n, (const void *)fn);
    if (rc)
        return rc;
    if (r0 < 0 || r1 < r0)
        return ENG_EINVAL;
    if (r1 > r0) {
        rc = eng_xvec_form(k, x, xform_of[type]);
        if (rc)
            return rc;
        fn(w, eng_type_row_bytes(type, x->n), x, y, r0, r1);
    }
    return ENG_OK;
}

int eng_dequant_rows(const eng_kernels *k, int type, const void *w, int64_t n, int64_t r0,
                     int64_t r1, float *dst)
{
    eng_dequant_fn fn = (type >= 0 && type < ENG_TYPE_COUNT) ? k->dequant[type] : NULL;
    const eng_format *f = eng_format_get(type);
    if (!f || !f->supported || !fn)
        return ENG_EUNSUPPORTED;
    if (n < 0 || n % f->blck || r0 < 0 || r1 < r0)
        return ENG_EINVAL;
    size_t rb = eng_type_row_bytes(type, n);
    for (int64_t r = r0; r < r1; r++)
        fn((const char *)w + (size_t)r * rb, dst + (size_t)(r - r0) * (size_t)n, n);
    return ENG_OK;
}
