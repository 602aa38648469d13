/*
 * formats_quant.c — f32 rows to stored blocks: ggml's reference quantizers
 * (ggml/src/ggml-quants.c at llama.cpp 82bb485), statement by statement,
 * so the same f32 input gives the bytes llama-quantize writes (without an
 * importance matrix). The functions llama-quantize calls per type:
 *   Q4_0..Q8_0, Q4_1, Q5_1, MXFP4, Q2_K..Q6_K  quantize_row_<type>_ref
 *   IQ4_NL  quantize_iq4_nl (ntry 7; the _ref variant with ntry -1 is only
 *           a fallback inside ggml)
 *   IQ4_XS  quantize_iq4_xs (= quantize_row_iq4_nl_impl on 256, ntry 7)
 *
 * Float semantics: ggml-base is compiled without -march (no FMA
 * contraction) and so is this file (the Makefile adds no -march unless
 * NATIVE=1, and nothing here has a target attribute); every expression
 * keeps ggml's order so each intermediate rounds as it does there.
 * log2f/floorf/sqrtf come from the same libm. Callers guarantee finite
 * input (eng_quantize_row checks it) and n a multiple of the block.
 */
#include "engine/kernels.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f
#define MAXI(a, b) ((a) > (b) ? (a) : (b))
#define MINI(a, b) ((a) < (b) ? (a) : (b))

const int8_t eng_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                      1,    13,   25,  38,  53,  69,  89,  113};
const int8_t eng_kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static uint16_t h16(float f) { return eng_fp32_to_fp16(f); }
static float f32h(uint16_t h) { return eng_fp16_to_fp32(h); }

/* ggml nearest_int: round half to even through the 1.5*2^23 trick
 * (|v| <= 4194303 in every use here). */
static inline int nearest_int(float fval)
{
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- blocks of 32 ------------------------------------------------------ */

void eng_quant_q8_0(const float *x, void *vy, int64_t n)
{
    eng_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = MAXI(amax, fabsf(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = h16(d);
        for (int j = 0; j < 32; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void eng_quant_q4_0(const float *x, void *vy, int64_t n)
{
    eng_block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0.0f, max = 0.0f;  /* the signed value of largest magnitude */
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = h16(d);
        for (int j = 0; j < 16; j++) {
            int xi0 = MINI(15, (int8_t)(x[j] * id + 8.5f));
            int xi1 = MINI(15, (int8_t)(x[j + 16] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

void eng_quant_q4_1(const float *x, void *vy, int64_t n)
{
    eng_block_q4_1 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) {
            if (x[j] < min)
                min = x[j];
            if (x[j] > max)
                max = x[j];
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = h16(d);
        y[i].m = h16(min);
        for (int j = 0; j < 16; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[16 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)MINI(15, (int8_t)(x0 + 0.5f));
            const uint8_t xi1 = (uint8_t)MINI(15, (int8_t)(x1 + 0.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

void eng_quant_q5_0(const float *x, void *vy, int64_t n)
{
    eng_block_q5_0 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = h16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int xi0 = MINI(31, (int8_t)(x[j] * id + 16.5f));
            int xi1 = MINI(31, (int8_t)(x[j + 16] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((xi0 & 0xf) | ((xi1 & 0xf) << 4));
            qh |= (uint32_t)((xi0 & 0x10) >> 4) << j;
            qh |= (uint32_t)((xi1 & 0x10) >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

void eng_quant_q5_1(const float *x, void *vy, int64_t n)
{
    eng_block_q5_1 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) {
            if (x[j] < min)
                min = x[j];
            if (x[j] > max)
                max = x[j];
        }
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = h16(d);
        y[i].m = h16(min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[16 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)(x0 + 0.5f), xi1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << j;
            qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static int best_index_mxfp4(float x, float e)
{
    int best_index = 0;
    float best_err = fabsf(eng_kvalues_mxfp4[0] * e - x);
    for (int i = 1; i < 16; i++) {
        float err = fabsf(eng_kvalues_mxfp4[i] * e - x);
        if (err < best_err) {
            best_index = i;
            best_err = err;
        }
    }
    return best_index;
}

/* e = floor(log2 amax) - 2 + 127, so amax / 2^(e-128) lies in [8, 16):
 * the doubled E2M1 values reach 12; every element takes the nearest of the
 * 16 values (the first on ties). The cast goes through int: for amax below
 * 2^-125 the value is negative, where ggml's direct float-to-uint8 cast is
 * undefined in C and gives the int's low byte on x86 — as here. */
void eng_quant_mxfp4(const float *x, void *vy, int64_t n)
{
    eng_block_mxfp4 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j]))
                amax = fabsf(x[j]);
        const uint8_t e = amax > 0.0f ? (uint8_t)(int)(floorf(log2f(amax)) - 2 + 127) : 0;
        const float d = eng_e8m0_half(e);
        y[i].e = e;
        for (int j = 0; j < 16; j++) {
            const uint8_t x0 = (uint8_t)best_index_mxfp4(x[j], d);
            const uint8_t x1 = (uint8_t)best_index_mxfp4(x[16 + j], d);
            y[i].qs[j] = (uint8_t)(x0 | (x1 << 4));
        }
    }
}

/* ---- IQ4_NL / IQ4_XS: quantize_row_iq4_nl_impl without weights --------- */

static int best_index_int8(int n, const int8_t *val, float x)
{
    if (x <= val[0])
        return 0;
    if (x >= val[n - 1])
        return n - 1;
    int ml = 0, mu = n - 1;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/* One block of 32 (xb, weights w): the best scale of the 2*ntry+1 tried
 * (ggml's search around -max/values[0]); codes into Lb. */
static float iq4_block_scale(const float *xb, const float *w, uint8_t *Lb, int ntry)
{
    const int8_t *values = eng_kvalues_iq4nl;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
        float ax = fabsf(xb[j]);
        if (ax > amax) {
            amax = ax;
            max = xb[j];
        }
    }
    if (amax < GROUP_MAX_EPS)
        return 0;
    float d = ntry > 0 ? -max / values[0] : max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
        float al = id * xb[j];
        int l = best_index_int8(16, values, al);
        Lb[j] = (uint8_t)l;
        float q = values[l];
        sumqx += w[j] * q * xb[j];
        sumq2 += w[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
        id = (itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            float al = id * xb[j];
            int l = best_index_int8(16, values, al);
            float q = values[l];
            sumqx += w[j] * q * xb[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

static void iq4_pack(const uint8_t *L, uint8_t *q4, int sb)
{
    for (int i = 0; i < sb / 32; ++i)
        for (int j = 0; j < 16; ++j)
            q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

void eng_quant_iq4_nl(const float *x, void *vy, int64_t n)
{
    eng_block_iq4_nl *y = vy;
    uint8_t L[32];
    float w[32];
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        for (int j = 0; j < 32; ++j)
            w[j] = x[j] * x[j];
        memset(L, 0, sizeof L);
        const float d = iq4_block_scale(x, w, L, 7);
        y[i].d = h16(d);
        const float id = d ? 1 / d : 0;
        for (int j = 0; j < 32; ++j)
            L[j] = (uint8_t)best_index_int8(16, eng_kvalues_iq4nl, id * x[j]);
        iq4_pack(L, y[i].qs, 32);
    }
}

void eng_quant_iq4_xs(const float *x, void *vy, int64_t n)
{
    eng_block_iq4_xs *y = vy;
    uint8_t L[ENG_QK_K];
    float w[32], scales[8];
    for (int64_t i = 0; i < n / ENG_QK_K; i++, x += ENG_QK_K) {
        float max_scale = 0, amax_scale = 0;
        for (int ib = 0; ib < 8; ++ib) {
            const float *xb = x + 32 * ib;
            for (int j = 0; j < 32; ++j)
                w[j] = xb[j] * xb[j];
            scales[ib] = iq4_block_scale(xb, w, L + 32 * ib, 7);
            if (fabsf(scales[ib]) > amax_scale) {
                amax_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        memset(y[i].scales_l, 0, 4);
        uint16_t sh = 0;
        const float d = -max_scale / 32;
        y[i].d = h16(d);
        const float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < 8; ++ib) {
            int l = MAXI(-32, MINI(31, nearest_int(id * scales[ib])));
            const float dl = d * l, idl = dl ? 1 / dl : 0.f;
            for (int j = 0; j < 32; ++j)
                L[32 * ib + j] = (uint8_t)best_index_int8(16, eng_kvalues_iq4nl, idl * x[32 * ib + j]);
            l += 32;
            y[i].scales_l[ib / 2] |= (uint8_t)((l & 0xf) << (4 * (ib % 2)));
            sh |= (uint16_t)((l >> 4) << (2 * ib));
        }
        y[i].scales_h = sh;
        iq4_pack(L, y[i].qs, ENG_QK_K);
    }
}

/* ---- K-quant helpers (ggml make_qx_quants, make_q3_quants,
 * make_qkx2_quants) ----------------------------------------------------- */

/* make_qx_quants with rmse_type 1 and no weights (the only use: Q6_K). */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = MAXI(-nmax, MINI(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = MAXI(-nmax, MINI(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + MAXI(-nmax, MINI(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* make_q3_quants with do_rmse (Q3_K): L gets l + nmax. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = MAXI(-nmax, MINI(nmax - 1, l));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = MAXI(-nmax, MINI(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed)
            break;
    }
    for (int i = 0; i < n; ++i)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* make_qkx2_quants: scale and min (returned negated in *the_min) of n
 * values over 0..nmax, searching nstep+1 scales around the range. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MAXI(0, MINI(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = MAXI(0, MINI(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Packs 2-bit codes L[256] four per byte (Q2_K, Q3_K): byte l of the
 * 32-byte group j/128 holds elements j + l + 32t in bits 2t. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < ENG_QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
}

/* ---- Q2_K .. Q6_K: quantize_row_q*_K_ref ------------------------------- */

void eng_quant_q2_k(const float *x, void *vy, int64_t n)
{
    eng_block_q2_k *y = vy;
    uint8_t L[ENG_QK_K], Laux[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < n / ENG_QK_K; i++, x += ENG_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l)
                weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; ++j)
                y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = h16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, 16);
            y[i].d = h16(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < 16; ++j)
                y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = h16(max_min / q4scale);
        } else {
            y[i].dmin = h16(0.f);
        }
        for (int j = 0; j < 16; ++j) {
            const float d = f32h(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d)
                continue;
            const float dm = f32h(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (uint8_t)MAXI(0, MINI(3, l));
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

/* Q3_K's 16 6-bit scales l (0..63) into scales[12] (ggml's packing). */
static void pack_q3_k_scales(uint8_t *s, const float *scales, float iscale)
{
    memset(s, 0, 12);
    for (int j = 0; j < 16; ++j) {
        int8_t l = (int8_t)nearest_int(iscale * scales[j]);
        l = (int8_t)(MAXI(-32, MINI(31, l)) + 32);
        if (j < 8)
            s[j] = (uint8_t)(l & 0xF);
        else
            s[j - 8] |= (uint8_t)((l & 0xF) << 4);
        l >>= 4;
        s[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
    }
}

void eng_quant_q3_k(const float *x, void *vy, int64_t n)
{
    eng_block_q3_k *y = vy;
    int8_t L[ENG_QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / ENG_QK_K; i++, x += ENG_QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; ++j) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            float scale = fabsf(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }
        if (max_scale) {
            float iscale = -32.f / max_scale;
            pack_q3_k_scales(y[i].scales, scales, iscale);
            y[i].d = h16(1 / iscale);
        } else {
            memset(y[i].scales, 0, 12);
            y[i].d = h16(0.f);
        }
        int8_t sc16[16];
        eng_q3k_unpack_scales(y[i].scales, sc16);
        for (int j = 0; j < 16; ++j) {
            float d = f32h(y[i].d) * sc16[j];
            if (!d)
                continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(MAXI(-4, MINI(3, l)) + 4);
            }
        }
        /* the high bit of element j goes to hmask[j % 32] bit j / 32 */
        memset(y[i].hmask, 0, 32);
        for (int j = 0; j < ENG_QK_K; ++j)
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1 << (j / 32));
                L[j] = (int8_t)(L[j] - 4);
            }
        pack_2bit((const uint8_t *)L, y[i].qs);
    }
}

/* Packs Q4_K/Q5_K's 6-bit scales ls[8] and mins lm[8] into scales[12]. */
static void pack_k4_scales(uint8_t *s, const uint8_t *ls, const uint8_t *lm)
{
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j - 0] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* The common part of Q4_K and Q5_K: 8 sub-blocks of 32 over 0..nmax with
 * make_qkx2_quants (weights av_x + |x|), the 6-bit scale/min codes, d and
 * dmin, then the codes L[256] recomputed with the stored values. */
static void quant_k4_common(const float *x, int nmax, float rmin, int nstep, uint8_t *scales12,
                            uint16_t *dh, uint16_t *dminh, uint8_t *L)
{
    uint8_t Laux[32], ls[8], lm[8];
    float weights[32], mins[8], scales[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
        ls[j] = (uint8_t)MINI(63, (uint8_t)nearest_int(inv_scale * scales[j]));
        lm[j] = (uint8_t)MINI(63, (uint8_t)nearest_int(inv_min * mins[j]));
    }
    memset(scales12, 0, 12);
    pack_k4_scales(scales12, ls, lm);
    *dh = h16(max_scale / 63.f);
    *dminh = h16(max_min / 63.f);
    for (int j = 0; j < 8; ++j) {
        int sc, m;
        eng_q4k_scale_min(scales12, j, &sc, &m);
        const float d = f32h(*dh) * sc;
        if (!d)
            continue;
        const float dm = f32h(*dminh) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)MAXI(0, MINI(nmax, l));
        }
    }
}

void eng_quant_q4_k(const float *x, void *vy, int64_t n)
{
    eng_block_q4_k *y = vy;
    uint8_t L[ENG_QK_K];
    for (int64_t i = 0; i < n / ENG_QK_K; i++, x += ENG_QK_K) {
        quant_k4_common(x, 15, -1.f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < ENG_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; ++l)
                q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

void eng_quant_q5_k(const float *x, void *vy, int64_t n)
{
    eng_block_q5_k *y = vy;
    uint8_t L[ENG_QK_K];
    for (int64_t i = 0; i < n / ENG_QK_K; i++, x += ENG_QK_K) {
        quant_k4_common(x, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        uint8_t *qh = y[i].qh, *ql = y[i].qs;
        memset(qh, 0, 32);
        uint8_t m1 = 1, m2 = 2;
        for (int n0 = 0; n0 < ENG_QK_K; n0 += 64, ql += 32) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n0 + j], l2 = L[n0 + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

void eng_quant_q6_k(const float *x, void *vy, int64_t n)
{
    eng_block_q6_k *y = vy;
    int8_t L[ENG_QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / ENG_QK_K; i++, x += ENG_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ++ib) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            if (fabsf(scale) > max_abs_scale) {
                max_abs_scale = fabsf(scale);
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            y[i].d = h16(0.f);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = h16(1 / iscale);
        for (int ib = 0; ib < 16; ++ib)
            y[i].scales[ib] = (int8_t)MINI(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < 16; ++j) {
            float d = f32h(y[i].d) * y[i].scales[j];
            if (!d)
                continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(MAXI(-32, MINI(31, l)) + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < ENG_QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
    }
}
