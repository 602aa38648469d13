/*
 * ops.c — the element-wise and per-vector math of the forward pass, written
 * to match ggml's CPU code (reference spec §4) so logits compare with
 * llama.cpp on the same file.
 */
#include "engine/forward_impl.h"

#include <math.h>
#include <string.h>

void eng_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0; /* ggml_float: ops.cpp rms_norm_f32 */
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] * scale) * w[i];
}

void eng_rope_table(float *cs, int64_t pos, const eng_rope_params *r, bool fma)
{
    /* ggml_rope_cache_init + rope_yarn (ggml-cpu/ops.cpp): theta = p *
     * theta_scale^i iterated in f32; without YaRN (ext_factor 0,
     * freq_scale 1, attn_factor 1) every product below is exact, so this is
     * plain RoPE bit for bit. With YaRN, an FMA build contracts the blend
     * and the magnitude (seen in its machine code): th = fma(interp, 1 -
     * ramp, extrap * ramp), mscale *= fma(0.1, log(1 / freq_scale), 1). */
    const float theta_scale = powf(r->base, -2.0f / (float)r->n_rot);
    float theta = (float)pos;
    for (int64_t i = 0; i < r->n_rot / 2; i++) {
        const float extrap = theta, interp = r->freq_scale * extrap;
        float th = interp, mscale = r->attn_factor;
        if (r->ext_factor != 0.0f) {
            const float y = ((float)i - r->corr_dims[0]) /
                            fmaxf(0.001f, r->corr_dims[1] - r->corr_dims[0]);
            const float ramp = (1 - fminf(1, fmaxf(0, y))) * r->ext_factor;
            const float em = eng_f32_barrier(extrap * ramp), lg = logf(1.0f / r->freq_scale);
            th = fma ? fmaf(interp, 1 - ramp, em) : eng_f32_barrier(interp * (1 - ramp)) + em;
            mscale *= fma ? fmaf(0.1f, lg, 1.0f) : 1.0f + eng_f32_barrier(0.1f * lg);
        }
        cs[2 * i] = cosf(th) * mscale;
        cs[2 * i + 1] = sinf(th) * mscale;
        theta *= theta_scale;
    }
}

void eng_rope_apply(float *x, int64_t n_heads, int64_t stride, int64_t n_rot, const float *cs,
                    eng_rope_kind kind, bool fma)
{
    /* NORM pairs (2i, 2i+1); NEOX pairs (i, i + n_rot/2): ops.cpp
     * rotate_pairs. An FMA build of ggml contracts it (machine code of
     * both builds: x0*c - x1*s as fma(x0, c, -(x1*s)), x0*s + x1*c as
     * fma(x0, s, x1*c)), except in NORM's vectorized loop the odd pair
     * left after the blocks of 4 and 2 pairs, which it rotates with
     * vaddsubps of rounded products (checked against ggml_rope_ext for
     * n_rot 2..160, in place or not). */
    const int64_t half = n_rot / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * stride;
        for (int64_t i = 0; i < half; i++) {
            int64_t a = kind == ENG_ROPE_NORM ? 2 * i : i;
            int64_t b = kind == ENG_ROPE_NORM ? 2 * i + 1 : i + half;
            const bool fused = fma && !(kind == ENG_ROPE_NORM && half % 2 && i == half - 1);
            const float c = cs[2 * i], sn = cs[2 * i + 1];
            const float x0 = v[a], x1 = v[b];
            const float x1s = eng_f32_barrier(x1 * sn), x1c = eng_f32_barrier(x1 * c);
            v[a] = fused ? fmaf(x0, c, -x1s) : eng_f32_barrier(x0 * c) - x1s;
            v[b] = fused ? fmaf(x0, sn, x1c) : eng_f32_barrier(x0 * sn) + x1c;
        }
    }
}

void eng_softmax_sink(const eng_vecops *vo, float *p, const float *x, int64_t n, float sink)
{
    /* ops.cpp soft_max_f32 after the scale and mask: max, the sink into
     * the max, ggml_vec_soft_max_f32, the sink's share (libm expf; it has
     * no value), then a multiply by 1/sum rounded to f32 */
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    mx = sink > mx ? sink : mx;
    double sum = vo->exp_sum(p, x, n, mx);
    if (sink != -INFINITY)
        sum += (double)expf(sink - mx);
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        p[i] *= inv;
}

void eng_softmax(const eng_vecops *vo, float *p, const float *x, int64_t n)
{
    eng_softmax_sink(vo, p, x, n, -INFINITY);
}

/* Top-k of s[0..n) into ids, descending, the lower id first among ties
 * (ggml sorts with std::sort; ties are unordered there). Selection by
 * repeated scan: k and n are small (k <= n <= 512). */
static void topk_ids(const float *s, int64_t n, int k, int32_t *ids)
{
    for (int j = 0; j < k; j++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++) {
            bool taken = false;
            for (int t = 0; t < j && !taken; t++)
                taken = ids[t] == i;
            if (!taken && (best < 0 || s[i] > s[best]))
                best = i;
        }
        ids[j] = (int32_t)best;
    }
}

/* Group-limited selection (DeepSeek-V3; build_moe_ffn): a group's score is
 * the sum of its two best selection scores; experts outside the
 * n_group_used best groups get -inf. s[E] is modified in place. */
static void mask_groups(float *s, int64_t E, int64_t n_group, int64_t n_used)
{
    const int64_t per = E / n_group;
    float score[ENG_MAX_EXPERT_GROUPS] = {0};
    int32_t best[ENG_MAX_EXPERT_GROUPS], top2[2];
    for (int64_t g = 0; g < n_group; g++) {
        topk_ids(s + g * per, per, 2, top2);
        score[g] = s[g * per + top2[0]] + s[g * per + top2[1]];
    }
    topk_ids(score, n_group, (int)n_used, best);
    for (int64_t g = 0; g < n_group; g++) {
        bool kept = false;
        for (int64_t j = 0; j < n_used && !kept; j++)
            kept = best[j] == g;
        if (!kept)
            for (int64_t e = 0; e < per; e++)
                s[g * per + e] = -INFINITY;
    }
}

void eng_route_row(const eng_vecops *vo, const eng_hparams *hp, const float *l,
                   const float *sel_bias, float *scratch, int32_t *ids, float *w)
{
    eng_route_row_masked(vo, hp, l, sel_bias, NULL, scratch, ids, w);
}

void eng_route_row_masked(const eng_vecops *vo, const eng_hparams *hp, const float *l,
                          const float *sel_bias, const uint8_t *keep, float *scratch,
                          int32_t *ids, float *w)
{
    const int64_t E = hp->n_expert;
    const int k = (int)hp->n_expert_used;
    float *p = scratch, *sel = scratch + E;
    bool drops = false; /* a mask that keeps every expert is no mask */
    for (int64_t e = 0; keep && e < E && !drops; e++)
        drops = !keep[e];
    keep = drops ? keep : NULL;
    switch (hp->gating) {
    case ENG_GATING_SOFTMAX_TOPK:
        if (keep) { /* softmax over the kept experts: the others' logits are -inf */
            for (int64_t e = 0; e < E; e++)
                sel[e] = keep[e] ? l[e] : -INFINITY;
            l = sel;
        }
        eng_softmax(vo, p, l, E);
        break;
    case ENG_GATING_SIGMOID:
        for (int64_t e = 0; e < E; e++)
            p[e] = eng_sigmoid(l[e]);
        break;
    case ENG_GATING_TOPK_SOFTMAX: memcpy(p, l, (size_t)E * sizeof *p); break;
    }
    /* the selection bias and the groups choose; the weights stay p */
    for (int64_t e = 0; e < E; e++)
        sel[e] = keep && !keep[e] ? -INFINITY : sel_bias ? p[e] + sel_bias[e] : p[e];
    if (hp->n_group > 1 && !keep)
        mask_groups(sel, E, hp->n_group, hp->n_group_used);
    topk_ids(sel, E, k, ids);
    for (int j = 0; j < k; j++)
        w[j] = p[ids[j]];
    if (hp->gating == ENG_GATING_TOPK_SOFTMAX)
        eng_softmax(vo, w, w, k);
    if (hp->expert_weights_norm) {
        double sum = 0; /* llama-graph.cpp build_moe_ffn: sum_rows, clamp, div */
        for (int j = 0; j < k; j++)
            sum += w[j];
        float sn = (float)sum;
        if (sn < 6.103515625e-5f)
            sn = 6.103515625e-5f;
        for (int j = 0; j < k; j++)
            w[j] /= sn;
    }
    if (hp->expert_weights_scale != 0.0f && hp->expert_weights_scale != 1.0f)
        for (int j = 0; j < k; j++)
            w[j] *= hp->expert_weights_scale;
}

float eng_sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

void eng_act_row(const eng_vecops *vo, eng_act act, float *g, const float *u, int64_t n)
{
    switch (act) {
    case ENG_ACT_SWIGLU: /* ggml_vec_swiglu_f32: silu(g) * u */
        vo->swiglu(g, u, n);
        break;
    case ENG_ACT_SWIGLU_OAI: /* ops.cpp swiglu_oai_f32, alpha 1.702, limit 7 */
        for (int64_t i = 0; i < n; i++) {
            const float x = fminf(g[i], 7.0f), y = fminf(fmaxf(u[i], -7.0f), 7.0f);
            g[i] = x / (1.0f + expf(1.702f * (-x))) * (y + 1.0f);
        }
        break;
    }
}

void eng_combine_row(float *y, int k, const float *w, const float *const *outs, int64_t d)
{
    memset(y, 0, (size_t)d * sizeof *y);
    for (int j = 0; j < k; j++)
        for (int64_t i = 0; i < d; i++)
            y[i] += w[j] * outs[j][i];
}

void eng_add_bias(float *y, eng_tref b, int64_t n)
{
    if (!b)
        return;
    const float *bb = b->data;
    for (int64_t i = 0; i < n; i++)
        y[i] += bb[i];
}
