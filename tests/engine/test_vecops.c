/*
 * test_vecops.c — the engine's row ops outside the weight matrices
 * (engine/vecops*.c, ops.c, attn.c) against a plain-C copy of what
 * llama.cpp 82bb485's CPU backend computes (ggml-cpu vec.h, vec.cpp,
 * ops.cpp soft_max_f32 and rotate_pairs), bit for bit, on every SIMD path
 * this CPU runs.
 *
 * The copy is written from ggml's source and the machine code of its
 * AVX2 and AVX-512 builds, independently of the engine's intrinsics: one
 * lane at a time, fmaf where ggml has an FMA (an _mm*_fmadd_ps, or a
 * product the compiler contracted), a separately rounded product where it
 * does not, ldexpf for vscalefps, integer arithmetic on the bits where the
 * AVX2 ggml_v_expf builds 2^n, and ggml's horizontal-sum trees. So a scalar
 * port with fmaf reproduces each build, and an engine table that summed in
 * another order, used libm's expf where ggml uses its own, or forgot an
 * FMA fails here although it is within any numerical bound.
 *
 * Inputs: random rows of every length 1..300 (so each leftover loop runs)
 * mixing small values, exponents that overflow and underflow ggml_v_expf
 * (|x - max| > 88, > 126 and > 192 take its other branches), -inf (masked
 * cells), ties of the maximum, zero, and a sink above every score.
 */
#include "engine/attn_impl.h"
#include "engine/vecops.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the plain copy of ggml ---------------------------------------------- */

typedef struct ggml_build {
    const char *name;
    eng_simd simd;
    int epr;      /* floats per vector register: 1 (no SIMD), 8 or 16 */
} ggml_build;

/* A product rounded to f32 even where the compiler could fuse it. */
static float rnd(float x)
{
    volatile float v = x;
    return v;
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ggml_v_expf of one lane: the AVX-512 variant (vec.h:1172) ends with
 * vscalefps j * 2^n, the AVX2 one (vec.h:1215) builds 2^n in the exponent
 * bits and splits |n| > 126 into two factors. */
static float v_expf(float x, int epr)
{
    const float r = 0x1.8p23f, z = fmaf(x, 0x1.715476p+0f, r), n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float u = rnd(b * b);
    const float p = fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f));
    if (epr == 16) {
        const float j = fmaf(p, u, fmaf(0x1.ffffecp-1f, b, 1.0f));
        if (fabsf(n) > 192)
            return n <= 0 ? 0.0f : INFINITY;
        return ldexpf(j, (int)n);
    }
    const float j = fmaf(p, u, rnd(0x1.ffffecp-1f * b));
    const uint32_t e = bits(z) << 23;
    const float k = from_bits(e + bits(1.0f));
    if (!(fabsf(n) > 126))
        return fmaf(j, k, k);
    const uint32_t g = n <= 0 ? 0x82000000u : 0;
    const float s1 = from_bits(g + 0x7f000000u), s2 = from_bits(e - g);
    if (fabsf(n) > 192)
        return rnd(s1 * s1);
    return rnd(fmaf(s2, j, s2) * s1);
}

/* _mm512_reduce_add_ps (GCC: halves, quarters, (q0+q2)+(q1+q3)) and the
 * AVX2 build's two reductions: GGML_F32x8_REDUCE's lo+hi then two hadds,
 * soft_max's lo+hi then movehl and movehdup. */
static float hsum(const float *v, int epr, bool softmax)
{
    float t[16];
    memcpy(t, v, (size_t)epr * 4);
    if (epr == 16) {
        for (int i = 0; i < 8; i++)
            t[i] = t[i + 8] + t[i];
        for (int i = 0; i < 4; i++)
            t[i] = t[i + 4] + t[i];
        return (t[0] + t[2]) + (t[1] + t[3]);
    }
    for (int i = 0; i < 4; i++)
        t[i] = t[i + 4] + t[i];
    return softmax ? (t[0] + t[2]) + (t[1] + t[3]) : (t[0] + t[1]) + (t[2] + t[3]);
}

/* ggml_vec_dot_f32: four accumulators of epr lanes over steps of 4 * epr,
 * (a0+a2)+(a1+a3), the tree; the leftover as GCC -O3 vectorized
 * `sumf += x[i]*y[i]` in both builds (rounded products added one by one,
 * the last n % 4 with FMAs). Without SIMD: double. */
static float ggml_dot(const float *x, const float *y, int64_t n, int epr)
{
    if (epr == 1) {
        double s = 0;
        for (int64_t i = 0; i < n; i++)
            s += (double)rnd(x[i] * y[i]);
        return (float)s;
    }
    const int64_t step = 4 * epr, np = n / step * step;
    float acc[4][16] = {{0}};
    for (int64_t i = 0; i < np; i++)
        acc[i % step / epr][i % epr] = fmaf(x[i], y[i], acc[i % step / epr][i % epr]);
    float t[16];
    for (int l = 0; l < epr; l++)
        t[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    float s = hsum(t, epr, false);
    const int64_t nf = n - (n - np) % 4;
    for (int64_t i = np; i < n; i++)
        s = i < nf ? s + rnd(x[i] * y[i]) : fmaf(x[i], y[i], s);
    return s;
}

/* ggml_vec_soft_max_f32: chunks of epr through v_expf, each chunk's sum
 * into a double; the rest with libm expf. */
static double ggml_exp_sum(float *y, const float *x, int64_t n, float max, int epr)
{
    int64_t i = 0;
    double sum = 0;
    for (; epr > 1 && i + epr <= n; i += epr) {
        for (int l = 0; l < epr; l++)
            y[i + l] = v_expf(x[i + l] - max, epr);
        sum += (double)hsum(y + i, epr, true);
    }
    for (; i < n; i++) {
        y[i] = expf(x[i] - max);
        sum += (double)y[i];
    }
    return sum;
}

/* ops.cpp soft_max_f32 on a row already scaled and masked, with a sink. */
static void ggml_soft_max(float *p, const float *x, int64_t n, float sink, int epr)
{
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        max = max > x[i] ? max : x[i];
    max = max > sink ? max : sink;
    double sum = ggml_exp_sum(p, x, n, max, epr);
    if (sink != -INFINITY)
        sum += (double)expf(sink - max);
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        p[i] *= inv;
}

/* ggml_vec_swiglu_f32 in place: ggml_v_silu (x / (1 + v_expf(-x))) in
 * chunks, ggml_silu_f32 for the rest. */
static void ggml_swiglu(float *g, const float *u, int64_t n, int epr)
{
    const int64_t nv = epr > 1 ? n / epr * epr : 0;
    for (int64_t i = 0; i < n; i++) {
        const float e = i < nv ? v_expf(0.0f - g[i], epr) : expf(-g[i]);
        g[i] = rnd(g[i] / (1.0f + e)) * u[i];
    }
}

/* ---- inputs -------------------------------------------------------------- */

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static float unif(uint64_t *s) { return (float)((rng(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }

/* A score-like value: mostly moderate, sometimes far out (v_expf's other
 * branches), -inf, zero, or a copy of an earlier value (ties). */
static float score(uint64_t *s, const float *prev, int64_t i)
{
    const uint64_t k = rng(s) % 16;
    if (k == 0)
        return -INFINITY;
    if (k == 1)
        return unif(s) * 250.0f;
    if (k == 2 && i > 0)
        return prev[rng(s) % (uint64_t)i];
    if (k == 3)
        return 0.0f;
    return unif(s) * 12.0f;
}

/* The tables this CPU runs, with the ggml build each reproduces. */
static int builds(ggml_build *out, const eng_vecops **vo)
{
    static const ggml_build all[] = {{"scalar", ENG_SIMD_SCALAR, 1},
                                     {"avx2", ENG_SIMD_AVX2, 8},
                                     {"avx512", ENG_SIMD_AVX512, 16}};
    int n = 0;
    for (int i = 0; i < 3; i++)
        if ((vo[n] = eng_vecops_get(all[i].simd)))
            out[n++] = all[i];
    return n;
}

static bool same(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * 4) == 0; }

/* ---- the checks ---------------------------------------------------------- */

TEST(dot_bit_identical_to_ggml_vec_dot_f32)
{
    ggml_build b[3];
    const eng_vecops *vo[3];
    const int nb = builds(b, vo);
    uint64_t s = 11;
    float *x = tst_alloc(4096 * 4), *y = tst_alloc(4096 * 4);
    for (int k = 0; k < nb; k++)
        for (int64_t n = 0; n <= 300; n++)
            for (int rep = 0; rep < 3; rep++) {
                const int64_t m = rep == 2 ? n * 13 + 7 : n;   /* and some long rows */
                for (int64_t i = 0; i < m; i++) {
                    x[i] = unif(&s) * (i % 9 ? 1.0f : 64.0f);
                    y[i] = unif(&s);
                }
                const float want = ggml_dot(x, y, m, b[k].epr), got = vo[k]->dot(x, y, m);
                CHECK_MSG(memcmp(&got, &want, 4) == 0, "%s dot n %lld: %a, ggml %a", b[k].name,
                          (long long)m, (double)got, (double)want);
            }
}

TEST(exp_sum_and_softmax_bit_identical_to_ggml)
{
    ggml_build b[3];
    const eng_vecops *vo[3];
    const int nb = builds(b, vo);
    uint64_t s = 12;
    float *x = tst_alloc(512 * 4), *p = tst_alloc(512 * 4), *q = tst_alloc(512 * 4);
    int64_t checked = 0;
    for (int k = 0; k < nb; k++)
        for (int64_t n = 1; n <= 300; n++)
            for (int rep = 0; rep < 4; rep++) {
                for (int64_t i = 0; i < n; i++)
                    x[i] = score(&s, x, i);
                x[rng(&s) % (uint64_t)n] = unif(&s);   /* one finite score at least */
                float max = -INFINITY;
                for (int64_t i = 0; i < n; i++)
                    max = max > x[i] ? max : x[i];
                const double want = ggml_exp_sum(p, x, n, max, b[k].epr);
                const double got = vo[k]->exp_sum(q, x, n, max);
                CHECK_MSG(same(p, q, n) && memcmp(&got, &want, 8) == 0,
                          "%s exp_sum n %lld rep %d: sum %a, ggml %a", b[k].name, (long long)n,
                          rep, got, want);
                /* softmax with a sink: none, below, or above every score */
                const float sink = rep == 0 ? -INFINITY : rep == 1 ? max - 3.0f : max + 40.0f;
                ggml_soft_max(p, x, n, sink, b[k].epr);
                eng_softmax_sink(vo[k], q, x, n, sink);
                CHECK_MSG(same(p, q, n), "%s softmax n %lld sink %g", b[k].name, (long long)n,
                          (double)sink);
                checked++;
            }
    printf("%lld rows\n", (long long)checked);
}

TEST(swiglu_bit_identical_to_ggml)
{
    ggml_build b[3];
    const eng_vecops *vo[3];
    const int nb = builds(b, vo);
    uint64_t s = 13;
    float *g = tst_alloc(512 * 4), *h = tst_alloc(512 * 4), *u = tst_alloc(512 * 4);
    for (int k = 0; k < nb; k++)
        for (int64_t n = 1; n <= 300; n++) {
            for (int64_t i = 0; i < n; i++) {
                const uint64_t c = rng(&s) % 8;   /* -x beyond v_expf's 88, 126, 192 */
                g[i] = c == 0 ? unif(&s) * 300.0f : c == 1 ? 0.0f : unif(&s) * 8.0f;
                u[i] = unif(&s) * 4.0f;
            }
            memcpy(h, g, (size_t)n * 4);
            ggml_swiglu(g, u, n, b[k].epr);
            eng_act_row(vo[k], ENG_ACT_SWIGLU, h, u, n);
            CHECK_MSG(same(g, h, n), "%s swiglu n %lld", b[k].name, (long long)n);
        }
}

/* The value sum: for each output element, ggml's dot over a padded row of
 * cells (weights 0 outside [p0, p1)), V stored in a ring of cap rows. */
TEST(value_sum_bit_identical_to_ggml_kqv)
{
    ggml_build b[3];
    const eng_vecops *vo[3];
    const int nb = builds(b, vo);
    uint64_t s = 14;
    enum { NKV = 256, HD = 70 };
    float *w = tst_alloc(NKV * 4), *v = tst_alloc(NKV * HD * 4), *col = tst_alloc(NKV * 4);
    float want[HD], got[HD];
    for (int k = 0; k < nb; k++)
        for (int rep = 0; rep < 300; rep++) {
            const int64_t hd = 1 + (int64_t)(rng(&s) % HD), p1 = 1 + (int64_t)(rng(&s) % NKV);
            const int64_t p0 = rep % 3 ? 0 : (int64_t)(rng(&s) % (uint64_t)p1);
            const int64_t cap = rep % 4 == 1 ? p1 - p0 + (int64_t)(rng(&s) % 5) : NKV;
            memset(w, 0, NKV * 4);
            for (int64_t p = p0; p < p1; p++)
                w[p] = (float)((rng(&s) >> 11) * 0x1p-53);
            for (int64_t i = 0; i < cap * hd; i++)
                v[i] = unif(&s) * 3.0f;
            for (int64_t i = 0; i < hd; i++) {
                for (int64_t p = 0; p < NKV; p++)   /* V^T's row i over every cell */
                    col[p] = p >= p0 && p < p1 ? v[(p % cap) * hd + i] : 0.0f;
                want[i] = ggml_dot(col, w, NKV, b[k].epr);
            }
            vo[k]->wsum(got, hd, w, v, hd, cap, p0, p1);
            CHECK_MSG(same(want, got, hd), "%s wsum hd %lld cells [%lld, %lld) cap %lld", b[k].name,
                      (long long)hd, (long long)p0, (long long)p1, (long long)cap);
        }
}

/* One query row through eng_attend against ggml's graph of it: kq =
 * mul_mat(K, q), soft_max_ext (scale, -inf mask over 256 cells, sink),
 * kqv = mul_mat(V^T, P). */
TEST(attention_row_bit_identical_to_ggml)
{
    ggml_build b[3];
    const eng_vecops *vo[3];
    const int nb = builds(b, vo);
    uint64_t s = 15;
    enum { NKV = 256, HK = 48, HV = 40 };
    float *K = tst_alloc(NKV * HK * 4), *V = tst_alloc(NKV * HV * 4), *kq = tst_alloc(NKV * 4);
    float *col = tst_alloc(NKV * 4), *scores = tst_alloc(eng_attn_row_len(NKV) * 4);
    float q[HK], want[HV], got[HV];
    for (int k = 0; k < nb; k++)
        for (int rep = 0; rep < 200; rep++) {
            const int64_t p1 = 1 + (int64_t)(rng(&s) % NKV), p0 = rep % 2 ? 0 : (int64_t)(rng(&s) % (uint64_t)p1);
            const float scale = 0.125f, sink = rep % 3 ? -INFINITY : unif(&s) * 4.0f;
            for (int64_t i = 0; i < NKV * HK; i++)
                K[i] = unif(&s);
            for (int64_t i = 0; i < NKV * HV; i++)
                V[i] = unif(&s);
            for (int i = 0; i < HK; i++)
                q[i] = unif(&s) * (rep % 5 ? 4.0f : 90.0f);
            for (int64_t p = 0; p < NKV; p++) {
                kq[p] = ggml_dot(K + p * HK, q, HK, b[k].epr);
                kq[p] = p >= p0 && p < p1 ? kq[p] * scale : -INFINITY;
            }
            ggml_soft_max(kq, kq, NKV, sink, b[k].epr);
            for (int i = 0; i < HV; i++) {
                for (int64_t p = 0; p < NKV; p++)
                    col[p] = V[p * HV + i];
                want[i] = ggml_dot(col, kq, NKV, b[k].epr);
            }
            const eng_attn_rows r = {K, V, HK, HK, HV, HV, p0, p1, NKV, scale, sink};
            eng_attend(vo[k], q, &r, scores, got);
            CHECK_MSG(same(want, got, HV), "%s attention cells [%lld, %lld) sink %g", b[k].name,
                      (long long)p0, (long long)p1, (double)sink);
        }
}

/* rotate_pairs as the builds compute it: with FMA, x0*c - x1*s as
 * fma(x0, c, -(x1*s)) and x0*s + x1*c as fma(x0, s, x1*c); NORM's odd last
 * pair (the vectorized loop's scalar tail) and the build without FMA
 * unfused. */
TEST(rope_bit_identical_to_ggml_rotate_pairs)
{
    uint64_t s = 16;
    float x[3 * 72], y[3 * 72], cs[72];
    for (int fma = 0; fma < 2; fma++)
        for (int kind = 0; kind < 2; kind++)
            for (int64_t n_rot = 2; n_rot <= 64; n_rot += 2) {
                const eng_rope_params rp = {.n_rot = n_rot, .base = 10000.0f, .freq_scale = 0.25f,
                                            .ext_factor = 1.0f, .attn_factor = 1.1f,
                                            .corr_dims = {2.0f, 9.0f}};
                eng_rope_table(cs, 1000 + n_rot, &rp, fma);
                for (int i = 0; i < 3 * 72; i++)
                    x[i] = y[i] = unif(&s) * 5.0f;
                const eng_rope_kind rk = kind ? ENG_ROPE_NEOX : ENG_ROPE_NORM;
                eng_rope_apply(y, 3, 72, n_rot, cs, rk, fma);
                for (int h = 0; h < 3; h++)
                    for (int64_t i = 0; i < n_rot / 2; i++) {
                        float *v = x + h * 72;
                        const int64_t a = kind ? i : 2 * i, bb = kind ? i + n_rot / 2 : 2 * i + 1;
                        const float c = cs[2 * i], sn = cs[2 * i + 1], x0 = v[a], x1 = v[bb];
                        const bool fused = fma && !(!kind && (n_rot / 2) % 2 && i == n_rot / 2 - 1);
                        v[a] = fused ? fmaf(x0, c, -rnd(x1 * sn)) : rnd(x0 * c) - rnd(x1 * sn);
                        v[bb] = fused ? fmaf(x0, sn, rnd(x1 * c)) : rnd(x0 * sn) + rnd(x1 * c);
                    }
                CHECK_MSG(same(x, y, 3 * 72), "%s rope n_rot %lld fma %d", kind ? "neox" : "norm",
                          (long long)n_rot, fma);
            }
}

/* The YaRN table: an FMA build fuses theta's blend and the magnitude. */
TEST(yarn_table_as_ggml_rope_cache_init)
{
    const eng_rope_params rp = {.n_rot = 64, .base = 150000.0f, .freq_scale = 1.0f / 32,
                                .ext_factor = 1.0f, .attn_factor = 1.3465736f,
                                .corr_dims = {8.0f, 20.0f}};
    float cs[64];
    bool differ = false;
    for (int fma = 0; fma < 2; fma++)
        for (int64_t pos = 0; pos < 3000; pos += 37) {
            eng_rope_table(cs, pos, &rp, fma);
            float theta = (float)pos;
            const float ts = powf(rp.base, -2.0f / 64);
            for (int i = 0; i < 32; i++) {
                const float interp = rp.freq_scale * theta;
                const float y = ((float)i - rp.corr_dims[0]) / fmaxf(0.001f, rp.corr_dims[1] - rp.corr_dims[0]);
                const float ramp = (1 - fminf(1, fmaxf(0, y))) * rp.ext_factor;
                const float lg = logf(1.0f / rp.freq_scale);
                const float th = fma ? fmaf(interp, 1 - ramp, rnd(theta * ramp))
                                     : rnd(interp * (1 - ramp)) + rnd(theta * ramp);
                const float ms = rp.attn_factor * (fma ? fmaf(0.1f, lg, 1.0f) : 1.0f + rnd(0.1f * lg));
                CHECK_MSG(cs[2 * i] == cosf(th) * ms && cs[2 * i + 1] == sinf(th) * ms,
                          "fma %d pos %lld pair %d", fma, (long long)pos, i);
                differ |= fma && th != rnd(interp * (1 - ramp)) + rnd(theta * ramp);
                theta *= ts;
            }
        }
    CHECK_MSG(differ, "the fused blend never differed: the check would not see a missing FMA");
}
