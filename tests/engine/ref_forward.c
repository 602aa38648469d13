/*
 * ref_forward.c — naive reference forward (see ref_forward.h). Follows the
 * reference spec §4 literally: RMSNorm, RoPE angle pos*base^(-2i/n_rot),
 * softmax over all experts, top-k (lower id first on ties), renormalisation
 * for llama and qwen3moe, sigmoid-gated shared expert for qwen2moe.
 *
 * deepseek2 (spec part 2 §1) is computed the plain way, from the file's
 * keys (never from the engine's hparams): MLA decompresses each head's K
 * and V from the latent (K[h] = [k_b[h]^T kv | k_pe], V[h] = v_b[h] kv, or
 * the rows of attn_kv_b), then ordinary attention; YaRN as HF writes it
 * (frequency blend over the correction range, softmax scale
 * (1 + 0.1 L ln f)^2 / sqrt(dk)); the router from expert_gating_func, the
 * selection bias, groups (sum of each group's two best), norm and scale.
 *
 * gpt-oss and glm4moe (spec part 2 §2-3) read their keys too: NEOX RoPE
 * over the first n_rot dims with the same YaRN (gpt-oss: magnitude
 * 1 + 0.1 ln f on cos and sin, so Q.K scaled by its square), biases after
 * the projections, per-head QK-norm where the file has it, even layers of
 * gpt-oss seeing only the last n_swa positions, the sink as one more logit
 * of the softmax with no value; gpt-oss's router takes the softmax of the
 * k best biased logits, its experts add their biases and use SwiGLU-OAI
 * (gate clamped above at 7, up to [-7, 7], x sigmoid(1.702 x) (up + 1));
 * glm4moe routes as deepseek2 (sigmoid, selection bias, norm, scale) and
 * always adds its ungated shared expert.
 */
#include "tests/engine/ref_forward.h"

#include "engine/formats.h"
#include "engine/gguf.h"
#include "tests/engine/spec_formats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ref {
    const eng_model *m;
    const eng_hparams *hp;
    const eng_gguf *g;
    bool act_q8;          /* quantize matvec inputs in the layers */
    bool act_prefill;     /* ... only for the types prefill multiplies in
                           * integers (REF_ACT_PREFILL) */
    double *min_tie;      /* closest approach of a quantized activation to a
                           * rounding tie (x.5), in quantization steps */
    bool head_q8;         /* ... and in the output head */
    bool rope_neox, qk_head, qk_full, norm_topk, shexp;
    int32_t *route_out;   /* optional [T][L][k] */
    int64_t T;
    /* deepseek2, read from the file's keys */
    bool ds;
    int64_t n_layer, n_dense, n_shared, Rq, Rkv, dk, dv, n_rot;
    bool absorbed, sigmoid, w_norm;
    double w_scale, kq_scale, base, yarn_f, yarn_lo, yarn_hi;
    int64_t n_group, n_group_used;
    /* gpt-oss (oss) and glm4moe, read from the file's keys */
    bool gx, oss;
    int64_t n_swa;        /* gpt-oss: window of the even layers */
} ref;

/* Row r of tensor t (n = ne0 values) as its scale part a and min part b
 * (value a - b), decoded by the test oracle from the spec (spec_formats.c). */
static void row_parts(const eng_gguf_tensor *t, int64_t r, double *a, double *b)
{
    if (!spec_known(t->type)) {
        fprintf(stderr, "ref: type %d\n", t->type);
        abort();
    }
    spec_row(t->type, (const uint8_t *)t->data + (uint64_t)r * t->row_bytes, t->ne[0], a, b);
}

/* Row r of tensor t as doubles. */
static void row(const eng_gguf_tensor *t, int64_t r, double *out)
{
    double *b = malloc((size_t)t->ne[0] * sizeof *b);
    row_parts(t, r, out, b);
    for (int64_t i = 0; i < t->ne[0]; i++)
        out[i] -= b[i];
    free(b);
}

/* float -> fp16 -> double, round to nearest even (for the Q8_0 scale). */
static double to_half(float f)
{
    if (f == 0)
        return 0;
    int e;
    (void)frexp(f, &e);                    /* f = m * 2^e, 0.5 <= |m| < 1 */
    int sh = e - 11 < -24 ? -24 : e - 11;  /* 11 significant bits, subnormals */
    return nearbyint(ldexp(f, -sh)) * ldexp(1, sh);
}

static double to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + (0x7fffu + ((u >> 16) & 1))) & 0xffff0000u;   /* round to nearest even */
    memcpy(&f, &u, 4);
    return f;
}

/* x as the engine's decode kernel for weights of `type` sees it: the
 * weight type's partner form (llama.cpp's vec_dot_type), computed here
 * from the spec (gguf-moe-2.md §4.3) from x rounded to f32:
 *   Q8_0/Q8_1 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4): per 32,
 *     d = amax/127 stored as fp16, q = round-half-even(x * 127/amax), the
 *     x86 rounding; Q8_1 also s = fp16(d * sum q) (into s8[n/32]);
 *   Q8_K (the K-quants, IQ4_XS): per 256, max = the first element of
 *     largest magnitude, q = min(127, round-half-even(x * -127/max)),
 *     d = 1 / (-127/max) as f32;
 *   f16 / bf16 weights: x rounded to f16 / bf16; F32: x. */
/* How far v is from a rounding tie (x.5), relative to |v|: an
 * implementation whose v differs by a relative e rounds it the other way
 * only when this is below e. */
static double tie_distance(float v) { return v == 0 ? INFINITY : fabs(fabs(v - floorf(v)) - 0.5) / fabsf(v); }

/* tie_distance of f rounded to `bits` significant bits (f16: 11, not
 * below the subnormal step 2^-24; bf16: 8): f in units of the step. */
static double float_tie(float f, int bits)
{
    if (f == 0)
        return INFINITY;
    int e;
    (void)frexpf(f, &e);
    int sh = bits == 11 && e - 11 < -24 ? -24 : e - bits;
    return tie_distance(ldexpf(f, -sh));
}

static void partner_image(int type, const double *x, double *xi, double *s8, int64_t n, double *min_tie)
{
    if (type == 1 || type == 30 || type == 0) {
        for (int64_t i = 0; i < n; i++) {
            xi[i] = type == 1 ? to_half((float)x[i]) : type == 30 ? to_bf16((float)x[i]) : x[i];
            if (type != 0)
                *min_tie = fmin(*min_tie, float_tie((float)x[i], type == 1 ? 11 : 8));
        }
        return;
    }
    const bool k = type == 10 || type == 11 || type == 12 || type == 13 || type == 14 || type == 23;
    const int64_t B = k ? 256 : 32;
    for (int64_t b = 0; b < n / B; b++) {
        const double *xb = x + B * b;
        float amax = 0, max = 0;
        for (int j = 0; j < B; j++)
            if (fabsf((float)xb[j]) > amax) {
                amax = fabsf((float)xb[j]);
                max = (float)xb[j];
            }
        if (k) {
            const float iscale = amax ? -127.f / max : 0;
            const double d = amax ? 1 / iscale : 0;
            for (int j = 0; j < B; j++) {
                float q = nearbyintf(iscale * (float)xb[j]);
                *min_tie = fmin(*min_tie, tie_distance(iscale * (float)xb[j]));
                xi[B * b + j] = (q < 127 ? q : 127) * d;
            }
            continue;
        }
        const float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
        const double dh = to_half(d);
        int sum = 0;
        for (int j = 0; j < B; j++) {
            const float q = nearbyintf((float)xb[j] * id);
            *min_tie = fmin(*min_tie, tie_distance((float)xb[j] * id));
            sum += (int)q;
            xi[B * b + j] = q * dh;
        }
        s8[b] = to_half(d * (float)sum);
    }
}

static const eng_gguf_tensor *T_(const ref *R, const char *fmt, int il)
{
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    return eng_gguf_find_tensor(R->g, name);
}

/* The types whose partner form the engine's prefill meets (engine/gemm.h):
 * every block format in integers, F16 and BF16 rounded; all but F32
 * (ggml id 0), whose x stays f32. */
static bool prefill_int_type(int type)
{
    return type != 0;
}

/* y[r] = sum_i W[slice + r][i] x[i] for r < n_out rows starting at row0;
 * with act_q8 (or act_prefill for the types prefill_int_type names),
 * against x's partner form (partner_image), and for Q4_1 /
 * Q5_1 the min of each block meets Q8_1's s instead of the sum of x. */
static void matvec(const ref *R, const eng_gguf_tensor *t, int64_t row0, int64_t n_out,
                   const double *x, double *y)
{
    const int64_t n = t->ne[0];
    double *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    double *xi = malloc((size_t)n * sizeof *xi), *s8 = malloc((size_t)(n / 32 + 1) * sizeof *s8);
    const bool partner = R->act_q8 || (R->act_prefill && prefill_int_type(t->type));
    if (partner)
        partner_image(t->type, x, xi, s8, n, R->min_tie);
    else
        memcpy(xi, x, (size_t)n * sizeof *xi);
    const bool q8_1 = partner && (t->type == 3 || t->type == 7);
    for (int64_t r = 0; r < n_out; r++) {
        row_parts(t, row0 + r, a, b);
        double s = 0;
        for (int64_t i = 0; i < n; i++) {
            s += a[i] * xi[i];
            if (!q8_1)
                s -= b[i] * xi[i];
            else if (i % 32 == 0)
                s -= b[i] * s8[i / 32];
        }
        y[r] = s;
    }
    free(a);
    free(b);
    free(xi);
    free(s8);
}

static void rmsnorm(double *y, const double *x, const eng_gguf_tensor *w, int64_t n, double eps)
{
    double ss = 0, *wv = malloc((size_t)n * sizeof *wv);
    row(w, 0, wv);
    for (int64_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double sc = 1.0 / sqrt(ss / (double)n + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * sc * wv[i];
    free(wv);
}

static void rope(const ref *R, double *v, int64_t pos)
{
    const int64_t nr = R->hp->n_rot;
    for (int64_t i = 0; i < nr / 2; i++) {
        double th = (double)pos * pow(R->hp->rope_base, -2.0 * (double)i / (double)nr);
        int64_t a = R->rope_neox ? i : 2 * i, b = R->rope_neox ? i + nr / 2 : 2 * i + 1;
        double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(th) - x1 * sin(th);
        v[b] = x0 * sin(th) + x1 * cos(th);
    }
}

static void add_bias(const ref *R, const char *fmt, int il, double *y)
{
    const eng_gguf_tensor *b = T_(R, fmt, il);
    if (!b)
        return;
    double *bv = malloc((size_t)b->ne[0] * sizeof *bv);
    row(b, 0, bv);
    for (int64_t i = 0; i < b->ne[0]; i++)
        y[i] += bv[i];
    free(bv);
}

static void yarn_rope(const ref *R, double *v, int64_t pos, bool neox);

/* RoPE of one head (gpt-oss and glm4moe: from the file's keys). */
static void head_rope(const ref *R, double *v, int64_t pos)
{
    if (R->gx)
        yarn_rope(R, v, pos, true);
    else
        rope(R, v, pos);
}

/* x[T][d] += attention of layer il. */
static void attention(const ref *R, int il, double *x, int64_t T)
{
    const eng_hparams *hp = R->hp;
    const int64_t d = hp->n_embd, hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
    const int64_t nq = nh * hd, nk = nkv * hd;
    double *xn = malloc((size_t)d * sizeof *xn), *Q = calloc((size_t)(T * nq), sizeof *Q);
    double *K = calloc((size_t)(T * nk), sizeof *K), *V = calloc((size_t)(T * nk), sizeof *V);
    double *att = calloc((size_t)nq, sizeof *att), *o = malloc((size_t)d * sizeof *o);
    double *sc = malloc((size_t)T * sizeof *sc), *w = malloc((size_t)(nq > nk ? nq : nk) * sizeof *w);
    for (int64_t t = 0; t < T; t++) {
        double *q = Q + t * nq, *k = K + t * nk, *v = V + t * nk;
        rmsnorm(xn, x + t * d, T_(R, "blk.%d.attn_norm.weight", il), d, hp->eps);
        matvec(R, T_(R, "blk.%d.attn_q.weight", il), 0, nq, xn, q);
        matvec(R, T_(R, "blk.%d.attn_k.weight", il), 0, nk, xn, k);
        matvec(R, T_(R, "blk.%d.attn_v.weight", il), 0, nk, xn, v);
        add_bias(R, "blk.%d.attn_q.bias", il, q);
        add_bias(R, "blk.%d.attn_k.bias", il, k);
        add_bias(R, "blk.%d.attn_v.bias", il, v);
        if (R->qk_full) { /* olmoe: whole vectors */
            rmsnorm(q, q, T_(R, "blk.%d.attn_q_norm.weight", il), nq, hp->eps);
            rmsnorm(k, k, T_(R, "blk.%d.attn_k_norm.weight", il), nk, hp->eps);
        }
        for (int64_t h = 0; h < nh; h++) {
            if (R->qk_head)
                rmsnorm(q + h * hd, q + h * hd, T_(R, "blk.%d.attn_q_norm.weight", il), hd, hp->eps);
            head_rope(R, q + h * hd, t);
        }
        for (int64_t h = 0; h < nkv; h++) {
            if (R->qk_head)
                rmsnorm(k + h * hd, k + h * hd, T_(R, "blk.%d.attn_k_norm.weight", il), hd, hp->eps);
            head_rope(R, k + h * hd, t);
        }
    }
    /* gpt-oss: the even layers see the last n_swa positions; one sink
     * logit per head joins the softmax */
    const bool window = R->oss && il % 2 == 0;
    const eng_gguf_tensor *sink_t = T_(R, "blk.%d.attn_sinks.weight", il);
    double *sinks = calloc((size_t)nh, sizeof *sinks);
    if (sink_t)
        row(sink_t, 0, sinks);
    const double scale = R->gx ? R->kq_scale : 1 / sqrt((double)hd);
    for (int64_t t = 0; t < T; t++) {
        const int64_t p0 = window && t >= R->n_swa ? t - R->n_swa + 1 : 0;
        for (int64_t h = 0; h < nh; h++) {
            int64_t kh = h / (nh / nkv);
            double mx = sink_t ? sinks[h] : -INFINITY, sum = 0;
            for (int64_t p = p0; p <= t; p++) {
                double s = 0;
                for (int64_t i = 0; i < hd; i++)
                    s += Q[t * nq + h * hd + i] * K[p * nk + kh * hd + i];
                sc[p] = s * scale;
                mx = sc[p] > mx ? sc[p] : mx;
            }
            for (int64_t p = p0; p <= t; p++)
                sum += (sc[p] = exp(sc[p] - mx));
            if (sink_t)
                sum += exp(sinks[h] - mx);
            for (int64_t i = 0; i < hd; i++) {
                double a = 0;
                for (int64_t p = p0; p <= t; p++)
                    a += sc[p] / sum * V[p * nk + kh * hd + i];
                att[h * hd + i] = a;
            }
        }
        matvec(R, T_(R, "blk.%d.attn_output.weight", il), 0, d, att, o);
        add_bias(R, "blk.%d.attn_output.bias", il, o);
        for (int64_t i = 0; i < d; i++)
            x[t * d + i] += o[i];
    }
    free(xn), free(Q), free(K), free(V), free(att), free(o), free(sc), free(w), free(sinks);
}

/* y += scale * down(silu(gate x) * up x); gate/up/down rows start at the
 * expert's slice (stacked tensors) or 0. */
static void swiglu_ffn(const ref *R, const eng_gguf_tensor *g, const eng_gguf_tensor *u,
                       const eng_gguf_tensor *dn, int64_t e, const double *x, double scale,
                       double *y)
{
    const int64_t F = g->ne[1], d = dn->ne[1];
    double *a = malloc((size_t)F * sizeof *a), *b = malloc((size_t)F * sizeof *b);
    double *o = malloc((size_t)d * sizeof *o);
    matvec(R, g, e * F, F, x, a);
    matvec(R, u, e * F, F, x, b);
    for (int64_t i = 0; i < F; i++)
        a[i] = a[i] / (1 + exp(-a[i])) * b[i];
    matvec(R, dn, e * d, d, a, o);
    for (int64_t i = 0; i < d; i++)
        y[i] += scale * o[i];
    free(a), free(b), free(o);
}

/* The k best of s[0..n) (lower id first among equals) into ids. */
static void ds_topk(const double *s, int64_t n, int k, int32_t *ids)
{
    for (int j = 0; j < k; j++) {
        int64_t best = -1;
        for (int64_t e = 0; e < n; e++) {
            bool used = false;
            for (int i = 0; i < j; i++)
                used |= ids[i] == e;
            if (!used && (best < 0 || s[e] > s[best]))
                best = e;
        }
        ids[j] = (int32_t)best;
    }
}

static void moe(const ref *R, int il, int64_t t, const double *xn, double *y)
{
    const eng_hparams *hp = R->hp;
    const int64_t E = hp->n_expert;
    const int k = (int)hp->n_expert_used;
    double *p = malloc((size_t)E * sizeof *p), mx = -INFINITY, sum = 0;
    matvec(R, T_(R, "blk.%d.ffn_gate_inp.weight", il), 0, E, xn, p);
    for (int64_t e = 0; e < E; e++)
        mx = p[e] > mx ? p[e] : mx;
    for (int64_t e = 0; e < E; e++)
        sum += (p[e] = exp(p[e] - mx));
    for (int64_t e = 0; e < E; e++)
        p[e] /= sum;
    int32_t ids[64];
    double w[64], wsum = 0;
    ds_topk(p, E, k, ids);
    for (int j = 0; j < k; j++)
        wsum += (w[j] = p[ids[j]]);
    if (R->route_out)
        memcpy(R->route_out + (t * hp->n_layer + il) * k, ids, (size_t)k * sizeof *ids);
    for (int j = 0; j < k; j++) {
        double wj = R->norm_topk ? w[j] / (wsum > 6.103515625e-5 ? wsum : 6.103515625e-5) : w[j];
        swiglu_ffn(R, T_(R, "blk.%d.ffn_gate_exps.weight", il), T_(R, "blk.%d.ffn_up_exps.weight", il),
                   T_(R, "blk.%d.ffn_down_exps.weight", il), ids[j], xn, wj, y);
    }
    if (R->shexp) {
        double gl;
        matvec(R, T_(R, "blk.%d.ffn_gate_inp_shexp.weight", il), 0, 1, xn, &gl);
        swiglu_ffn(R, T_(R, "blk.%d.ffn_gate_shexp.weight", il), T_(R, "blk.%d.ffn_up_shexp.weight", il),
                   T_(R, "blk.%d.ffn_down_shexp.weight", il), 0, xn, 1 / (1 + exp(-gl)), y);
    }
    free(p);
}

static void ds_moe(const ref *R, int il, int64_t t, const double *xn, double *y);
static void oss_moe(const ref *R, int il, int64_t t, const double *xn, double *y);

static void ffn(const ref *R, int il, double *x, int64_t T)
{
    const int64_t d = R->hp->n_embd;
    const bool lead = (R->ds || R->gx) && il < R->n_dense; /* a dense leading layer */
    double *xn = malloc((size_t)d * sizeof *xn), *y = malloc((size_t)d * sizeof *y);
    for (int64_t t = 0; t < T; t++) {
        rmsnorm(xn, x + t * d,
                T_(R, R->gx ? "blk.%d.post_attention_norm.weight" : "blk.%d.ffn_norm.weight", il),
                d, R->hp->eps);
        memset(y, 0, (size_t)d * sizeof *y);
        if (R->oss)
            oss_moe(R, il, t, xn, y);
        else if ((R->ds || R->gx) && !lead)
            ds_moe(R, il, t, xn, y);
        else if (R->hp->n_expert == 0 || lead)
            swiglu_ffn(R, T_(R, "blk.%d.ffn_gate.weight", il), T_(R, "blk.%d.ffn_up.weight", il),
                       T_(R, "blk.%d.ffn_down.weight", il), 0, xn, 1.0, y);
        else
            moe(R, il, t, xn, y);
        for (int64_t i = 0; i < d; i++)
            x[t * d + i] += y[i];
    }
    free(xn), free(y);
}

/* ---- deepseek2 ---------------------------------------------------------- */

/* The architecture's key {arch}.suffix as a number; def if absent. */
static double ds_key(const ref *R, const char *suffix, double def)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", R->hp->arch, suffix);
    int64_t i = eng_gguf_find_key(R->g, k);
    if (i < 0)
        return def;
    uint32_t u;
    float f;
    bool b;
    if (eng_gguf_get_u32(R->g, k, &u, NULL) == 0)
        return u;
    if (eng_gguf_get_f32(R->g, k, &f, NULL) == 0)
        return f;
    if (eng_gguf_get_bool(R->g, k, &b, NULL) == 0)
        return b;
    return def;
}

static void read_yarn(ref *R, double L, int64_t dk);

/* The hyper-parameters, from the keys (spec part 2 §1.1), and YaRN as HF
 * computes it (DeepseekV2YarnRotaryEmbedding, yarn_get_mscale). */
static void ds_read(ref *R)
{
    R->n_layer = (int64_t)ds_key(R, "block_count", 0) - (int64_t)ds_key(R, "nextn_predict_layers", 0);
    R->n_dense = (int64_t)ds_key(R, "leading_dense_block_count", 0);
    R->n_shared = (int64_t)ds_key(R, "expert_shared_count", 0);
    R->Rq = (int64_t)ds_key(R, "attention.q_lora_rank", 0);
    R->Rkv = (int64_t)ds_key(R, "attention.kv_lora_rank", 0);
    R->absorbed = ds_key(R, "attention.key_length_mla", 0) != 0;
    R->dk = (int64_t)ds_key(R, R->absorbed ? "attention.key_length_mla" : "attention.key_length", 0);
    R->dv = (int64_t)ds_key(R, R->absorbed ? "attention.value_length_mla" : "attention.value_length", 0);
    R->n_rot = (int64_t)ds_key(R, "rope.dimension_count", 0);
    R->base = ds_key(R, "rope.freq_base", 10000);
    R->sigmoid = ds_key(R, "expert_gating_func", 1) == 2;
    R->w_norm = ds_key(R, "expert_weights_norm", 0) != 0;
    R->w_scale = ds_key(R, "expert_weights_scale", 0);
    R->n_group = (int64_t)ds_key(R, "expert_group_count", 0);
    R->n_group_used = (int64_t)ds_key(R, "expert_group_used_count", 0);
    read_yarn(R, ds_key(R, "rope.scaling.yarn_log_multiplier", 0) / 0.1, R->dk);
}

/* YaRN from rope.scaling.*: the frequency blend's range and the softmax
 * scale (1 + 0.1 L ln f)^2 / sqrt(dk), L the log multiplier (1 where the
 * model has none: gpt-oss's cos/sin magnitude). */
static void read_yarn(ref *R, double L, int64_t dk)
{
    char key[96];
    snprintf(key, sizeof key, "%s.rope.scaling.type", R->hp->arch);
    eng_gguf_str type = {0};
    bool yarn = eng_gguf_get_str(R->g, key, &type, NULL) == 0 && type.len == 4 &&
                !memcmp(type.ptr, "yarn", 4);
    R->yarn_f = yarn ? ds_key(R, "rope.scaling.factor", 1) : 1;
    const double orig = ds_key(R, "rope.scaling.original_context_length",
                               ds_key(R, "context_length", 0));
    const double ms = R->yarn_f > 1 ? 1 + 0.1 * L * log(R->yarn_f) : 1;
    R->kq_scale = ms * ms / sqrt((double)dk);
    const double nr = (double)R->n_rot, lb = 2 * log(R->base);
    R->yarn_lo = fmax(0, floor(nr * log(orig / (32 * 2 * M_PI)) / lb));
    R->yarn_hi = fmin(nr - 1, ceil(nr * log(orig / (1 * 2 * M_PI)) / lb));
}

/* RoPE on the first n_rot dims, pairs (i, i + n_rot/2) when neox, else
 * (2i, 2i+1); YaRN: inverse frequencies blend from interpolated (1/f) to
 * extrapolated across the correction range. */
static void yarn_rope(const ref *R, double *v, int64_t pos, bool neox)
{
    for (int64_t i = 0; i < R->n_rot / 2; i++) {
        const double ex = (double)pos * pow(R->base, -2.0 * (double)i / (double)R->n_rot);
        double th = ex;
        if (R->yarn_f > 1) {
            double y = ((double)i - R->yarn_lo) / fmax(0.001, R->yarn_hi - R->yarn_lo);
            double keep = 1 - fmin(1, fmax(0, y)); /* 1: extrapolate (high frequencies) */
            th = ex / R->yarn_f * (1 - keep) + ex * keep;
        }
        const int64_t a = neox ? i : 2 * i, b = neox ? i + R->n_rot / 2 : 2 * i + 1;
        const double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(th) - x1 * sin(th);
        v[b] = x0 * sin(th) + x1 * cos(th);
    }
}

static void ds_rope(const ref *R, double *v, int64_t pos)
{
    yarn_rope(R, v, pos, false);
}

/* K (nope part) and V of every head from the latent kv of one token
 * (legacy form: kv_b holds per head [k_nope | v] rows). */
static void ds_decompress(const ref *R, int il, const double *kv, double *k, double *v)
{
    const int64_t H = R->hp->n_head, nope = R->dk - R->n_rot, per = nope + R->dv;
    double *kvb = malloc((size_t)(H * per) * sizeof *kvb);
    matvec(R, T_(R, "blk.%d.attn_kv_b.weight", il), 0, H * per, kv, kvb);
    for (int64_t h = 0; h < H; h++) {
        memcpy(k + h * R->dk, kvb + h * per, (size_t)nope * sizeof *k);
        memcpy(v + h * R->dv, kvb + h * per + nope, (size_t)R->dv * sizeof *v);
    }
    free(kvb);
}

/* Position t's attention output o[H * dv] in the absorbed form, computed
 * as the file's form is meant to be (and as the engine and llama.cpp do):
 * per head q_abs = k_b[h] q_nope (k_b {nope, Rkv, H}: row h*Rkv + c),
 * scores q_abs . kv_p + q_pe . k_pe_p against the latent rows C[p] = [kv |
 * k_pe], then o[h] = v_b[h] (sum_p P_p kv_p) (v_b {Rkv, dv, H}). Equal in
 * exact arithmetic to decompressing K and V, but the two matvecs' inputs
 * are what decode converts to k_b's and v_b's partner forms (matvec). */
static void ds_attend_absorbed(const ref *R, int il, const double *q, const double *C, int64_t t,
                               double *o)
{
    const int64_t H = R->hp->n_head, dk = R->dk, nope = dk - R->n_rot, Rkv = R->Rkv;
    const int64_t row = Rkv + R->n_rot;
    const eng_gguf_tensor *kb = T_(R, "blk.%d.attn_k_b.weight", il);
    const eng_gguf_tensor *vb = T_(R, "blk.%d.attn_v_b.weight", il);
    double *qa = malloc((size_t)Rkv * sizeof *qa), *lat = malloc((size_t)Rkv * sizeof *lat);
    double *sc = malloc((size_t)(t + 1) * sizeof *sc);
    for (int64_t h = 0; h < H; h++) {
        matvec(R, kb, h * Rkv, Rkv, q + h * dk, qa);
        double mx = -INFINITY, sum = 0;
        for (int64_t p = 0; p <= t; p++) {
            double s = 0;
            for (int64_t c = 0; c < Rkv; c++)
                s += qa[c] * C[p * row + c];
            for (int64_t i = 0; i < R->n_rot; i++)
                s += q[h * dk + nope + i] * C[p * row + Rkv + i];
            sc[p] = s * R->kq_scale;
            mx = sc[p] > mx ? sc[p] : mx;
        }
        for (int64_t p = 0; p <= t; p++)
            sum += (sc[p] = exp(sc[p] - mx));
        for (int64_t c = 0; c < Rkv; c++) {
            double a = 0;
            for (int64_t p = 0; p <= t; p++)
                a += sc[p] / sum * C[p * row + c];
            lat[c] = a;
        }
        matvec(R, vb, h * R->dv, R->dv, lat, o + h * R->dv);
    }
    free(qa), free(lat), free(sc);
}

/* x[T][d] += MLA of layer il: the legacy form per head decompressed, the
 * absorbed one over the latent rows (ds_attend_absorbed). */
static void ds_attention(const ref *R, int il, double *x, int64_t T)
{
    const eng_hparams *hp = R->hp;
    const int64_t d = hp->n_embd, H = hp->n_head, dk = R->dk, dv = R->dv;
    const int64_t nope = dk - R->n_rot, Rkv = R->Rkv, nq = H * dk;
    double *xn = malloc((size_t)d * sizeof *xn), *qa = malloc((size_t)(R->Rq + 1) * sizeof *qa);
    double *c = malloc((size_t)(Rkv + R->n_rot) * sizeof *c);
    double *Q = malloc((size_t)(T * nq) * sizeof *Q), *K = malloc((size_t)(T * nq) * sizeof *K);
    double *V = malloc((size_t)(T * H * dv) * sizeof *V), *o = malloc((size_t)(H * dv) * sizeof *o);
    double *y = malloc((size_t)d * sizeof *y), *sc = malloc((size_t)T * sizeof *sc);
    double *C = malloc((size_t)(T * (Rkv + R->n_rot)) * sizeof *C); /* absorbed: latent rows */
    for (int64_t t = 0; t < T; t++) {
        double *q = Q + t * nq;
        rmsnorm(xn, x + t * d, T_(R, "blk.%d.attn_norm.weight", il), d, hp->eps);
        if (R->Rq) {
            matvec(R, T_(R, "blk.%d.attn_q_a.weight", il), 0, R->Rq, xn, qa);
            rmsnorm(qa, qa, T_(R, "blk.%d.attn_q_a_norm.weight", il), R->Rq, hp->eps);
            matvec(R, T_(R, "blk.%d.attn_q_b.weight", il), 0, nq, qa, q);
        } else {
            matvec(R, T_(R, "blk.%d.attn_q.weight", il), 0, nq, xn, q);
        }
        matvec(R, T_(R, "blk.%d.attn_kv_a_mqa.weight", il), 0, Rkv + R->n_rot, xn, c);
        rmsnorm(c, c, T_(R, "blk.%d.attn_kv_a_norm.weight", il), Rkv, hp->eps);
        ds_rope(R, c + Rkv, t);
        if (R->absorbed)
            memcpy(C + t * (Rkv + R->n_rot), c, (size_t)(Rkv + R->n_rot) * sizeof *C);
        else
            ds_decompress(R, il, c, K + t * nq, V + t * H * dv);
        for (int64_t h = 0; h < H; h++) {
            ds_rope(R, q + h * dk + nope, t);
            memcpy(K + t * nq + h * dk + nope, c + Rkv, (size_t)R->n_rot * sizeof *K);
        }
    }
    for (int64_t t = 0; t < T; t++) {
        if (R->absorbed)
            ds_attend_absorbed(R, il, Q + t * nq, C, t, o);
        for (int64_t h = 0; h < H && !R->absorbed; h++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t p = 0; p <= t; p++) {
                double s = 0;
                for (int64_t i = 0; i < dk; i++)
                    s += Q[t * nq + h * dk + i] * K[p * nq + h * dk + i];
                sc[p] = s * R->kq_scale;
                mx = sc[p] > mx ? sc[p] : mx;
            }
            for (int64_t p = 0; p <= t; p++)
                sum += (sc[p] = exp(sc[p] - mx));
            for (int64_t i = 0; i < dv; i++) {
                double a = 0;
                for (int64_t p = 0; p <= t; p++)
                    a += sc[p] / sum * V[p * H * dv + h * dv + i];
                o[h * dv + i] = a;
            }
        }
        matvec(R, T_(R, "blk.%d.attn_output.weight", il), 0, d, o, y);
        for (int64_t i = 0; i < d; i++)
            x[t * d + i] += y[i];
    }
    free(xn), free(qa), free(c), free(Q), free(K), free(V), free(o), free(y), free(sc), free(C);
}

static void ds_moe(const ref *R, int il, int64_t t, const double *xn, double *y)
{
    const eng_hparams *hp = R->hp;
    const int64_t E = hp->n_expert;
    const int k = (int)hp->n_expert_used;
    double *p = malloc((size_t)E * sizeof *p), *sel = malloc((size_t)E * sizeof *sel);
    double *b = malloc((size_t)E * sizeof *b), mx = -INFINITY, sum = 0;
    matvec(R, T_(R, "blk.%d.ffn_gate_inp.weight", il), 0, E, xn, p);
    if (R->sigmoid) {
        for (int64_t e = 0; e < E; e++)
            p[e] = 1 / (1 + exp(-p[e]));
    } else {
        for (int64_t e = 0; e < E; e++)
            mx = p[e] > mx ? p[e] : mx;
        for (int64_t e = 0; e < E; e++)
            sum += (p[e] = exp(p[e] - mx));
        for (int64_t e = 0; e < E; e++)
            p[e] /= sum;
    }
    const eng_gguf_tensor *bias = T_(R, "blk.%d.exp_probs_b.bias", il);
    if (bias)
        row(bias, 0, b);
    for (int64_t e = 0; e < E; e++)
        sel[e] = p[e] + (bias ? b[e] : 0);
    if (R->n_group > 1) { /* keep the groups with the best sum of their two best */
        const int64_t per = E / R->n_group;
        double gs[64];
        int32_t top2[2], keep[64];
        for (int64_t g = 0; g < R->n_group; g++) {
            ds_topk(sel + g * per, per, 2, top2);
            gs[g] = sel[g * per + top2[0]] + sel[g * per + top2[1]];
        }
        ds_topk(gs, R->n_group, (int)R->n_group_used, keep);
        for (int64_t g = 0; g < R->n_group; g++) {
            bool kept = false;
            for (int64_t j = 0; j < R->n_group_used; j++)
                kept |= keep[j] == g;
            for (int64_t e = 0; !kept && e < per; e++)
                sel[g * per + e] = -INFINITY;
        }
    }
    int32_t ids[64];
    double w[64], wsum = 0;
    ds_topk(sel, E, k, ids);
    for (int j = 0; j < k; j++)
        wsum += (w[j] = p[ids[j]]);
    if (R->route_out)
        memcpy(R->route_out + (t * (R->n_layer - R->n_dense) + il - R->n_dense) * k, ids,
               (size_t)k * sizeof *ids);
    for (int j = 0; j < k; j++) {
        double wj = R->w_norm ? w[j] / fmax(wsum, 6.103515625e-5) : w[j];
        if (R->w_scale != 0 && R->w_scale != 1)
            wj *= R->w_scale;
        swiglu_ffn(R, T_(R, "blk.%d.ffn_gate_exps.weight", il), T_(R, "blk.%d.ffn_up_exps.weight", il),
                   T_(R, "blk.%d.ffn_down_exps.weight", il), ids[j], xn, wj, y);
    }
    swiglu_ffn(R, T_(R, "blk.%d.ffn_gate_shexp.weight", il), T_(R, "blk.%d.ffn_up_shexp.weight", il),
               T_(R, "blk.%d.ffn_down_shexp.weight", il), 0, xn, 1.0, y);
    free(p), free(sel), free(b);
}

/* ---- gpt-oss and glm4moe ---------------------------------------------------- */

/* Their hyper-parameters from the keys (spec part 2 §2.1, §3.1). */
static void gx_read(ref *R)
{
    R->n_layer = (int64_t)ds_key(R, "block_count", 0) - (int64_t)ds_key(R, "nextn_predict_layers", 0);
    R->n_dense = (int64_t)ds_key(R, "leading_dense_block_count", 0);
    const int64_t hd = (int64_t)ds_key(R, "attention.key_length", 0);
    R->n_rot = (int64_t)ds_key(R, "rope.dimension_count", (double)hd);
    R->base = ds_key(R, "rope.freq_base", 10000);
    R->n_swa = (int64_t)ds_key(R, "attention.sliding_window", 0);
    R->sigmoid = !R->oss; /* glm4moe's default and the converter's 2 */
    R->w_norm = ds_key(R, "expert_weights_norm", 0) != 0;
    R->w_scale = ds_key(R, "expert_weights_scale", 0);
    R->n_group = (int64_t)ds_key(R, "expert_group_count", 0);
    R->n_group_used = (int64_t)ds_key(R, "expert_group_used_count", 0);
    R->qk_head = T_(R, "blk.%d.attn_q_norm.weight", 0) != NULL;
    read_yarn(R, 1, hd);
}

/* Row e of a bias {n, E} added to y[0..n). */
static void add_bias_row(const eng_gguf_tensor *b, int64_t e, double *y)
{
    double *v = malloc((size_t)b->ne[0] * sizeof *v);
    row(b, e, v);
    for (int64_t i = 0; i < b->ne[0]; i++)
        y[i] += v[i];
    free(v);
}

/* y += w * (down_e(swiglu_oai(gate_e x + bg_e, up_e x + bu_e)) + bd_e). */
static void oss_expert(const ref *R, int il, int64_t e, const double *x, double w, double *y)
{
    const eng_gguf_tensor *g = T_(R, "blk.%d.ffn_gate_exps.weight", il);
    const eng_gguf_tensor *dn = T_(R, "blk.%d.ffn_down_exps.weight", il);
    const int64_t F = g->ne[1], d = dn->ne[1];
    double *a = malloc((size_t)F * sizeof *a), *b = malloc((size_t)F * sizeof *b);
    double *o = malloc((size_t)d * sizeof *o);
    matvec(R, g, e * F, F, x, a);
    matvec(R, T_(R, "blk.%d.ffn_up_exps.weight", il), e * F, F, x, b);
    add_bias_row(T_(R, "blk.%d.ffn_gate_exps.bias", il), e, a);
    add_bias_row(T_(R, "blk.%d.ffn_up_exps.bias", il), e, b);
    for (int64_t i = 0; i < F; i++) {
        const double gi = fmin(a[i], 7.0), ui = fmax(-7.0, fmin(b[i], 7.0));
        a[i] = gi / (1 + exp(-1.702 * gi)) * (ui + 1);
    }
    matvec(R, dn, e * d, d, a, o);
    add_bias_row(T_(R, "blk.%d.ffn_down_exps.bias", il), e, o);
    for (int64_t i = 0; i < d; i++)
        y[i] += w * o[i];
    free(a), free(b), free(o);
}

/* gpt-oss's router: the k best biased logits, softmax over those k. */
static void oss_moe(const ref *R, int il, int64_t t, const double *xn, double *y)
{
    const int64_t E = R->hp->n_expert;
    const int k = (int)R->hp->n_expert_used;
    double *l = malloc((size_t)E * sizeof *l), w[64], sum = 0;
    int32_t ids[64];
    matvec(R, T_(R, "blk.%d.ffn_gate_inp.weight", il), 0, E, xn, l);
    add_bias_row(T_(R, "blk.%d.ffn_gate_inp.bias", il), 0, l);
    ds_topk(l, E, k, ids);
    for (int j = 0; j < k; j++)
        sum += (w[j] = exp(l[ids[j]] - l[ids[0]]));
    if (R->route_out)
        memcpy(R->route_out + (t * R->n_layer + il) * k, ids, (size_t)k * sizeof *ids);
    for (int j = 0; j < k; j++)
        oss_expert(R, il, ids[j], xn, w[j] / sum, y);
    free(l);
}

static int run(ref *R, const int32_t *tokens, int64_t T, double **out)
{
    const eng_hparams *hp = R->hp;
    const char *a = hp->arch;
    R->rope_neox = strcmp(a, "llama") != 0;
    R->qk_head = strcmp(a, "qwen3moe") == 0;
    R->qk_full = strcmp(a, "olmoe") == 0;
    R->norm_topk = !strcmp(a, "llama") || !strcmp(a, "qwen3moe");
    R->shexp = strcmp(a, "qwen2moe") == 0;
    R->g = eng_model_gguf(R->m);
    R->ds = strcmp(a, "deepseek2") == 0;
    R->n_layer = hp->n_layer;
    R->oss = strcmp(a, "gpt-oss") == 0;
    R->gx = R->oss || strcmp(a, "glm4moe") == 0;
    if (R->ds)
        ds_read(R);
    if (R->gx)
        gx_read(R);
    const int64_t d = hp->n_embd;
    double *x = malloc((size_t)(T * d) * sizeof *x), *xn = malloc((size_t)d * sizeof *xn);
    const eng_gguf_tensor *emb = eng_gguf_find_tensor(R->g, "token_embd.weight");
    for (int64_t t = 0; t < T; t++)
        row(emb, tokens[t], x + t * d);
    for (int il = 0; il < R->n_layer; il++) {
        if (R->ds)
            ds_attention(R, il, x, T);
        else
            attention(R, il, x, T);
        ffn(R, il, x, T);
    }
    rmsnorm(xn, x + (T - 1) * d, eng_gguf_find_tensor(R->g, "output_norm.weight"), d, hp->eps);
    const eng_gguf_tensor *outw = eng_gguf_find_tensor(R->g, "output.weight");
    *out = malloc((size_t)hp->n_vocab * sizeof **out);
    R->act_q8 = R->head_q8;
    R->act_prefill = false;
    matvec(R, outw ? outw : emb, 0, hp->n_vocab, xn, *out);
    free(x), free(xn);
    return 0;
}

int ref_forward_tie(const eng_model *m, const int32_t *tokens, int64_t n, int act, double **out,
                    double *min_tie)
{
    double tie = INFINITY;
    ref R = {.m = m, .hp = eng_model_hparams(m), .act_q8 = act == REF_ACT_Q8,
             .act_prefill = act == REF_ACT_PREFILL, .T = n, .head_q8 = act != REF_ACT_EXACT,
             .min_tie = &tie};
    int rc = run(&R, tokens, n, out);
    if (min_tie)
        *min_tie = tie;
    return rc;
}

int ref_forward(const eng_model *m, const int32_t *tokens, int64_t n, int act, double **out)
{
    return ref_forward_tie(m, tokens, n, act, out, NULL);
}

int ref_routing(const eng_model *m, const int32_t *tokens, int64_t n, int32_t *ids)
{
    double tie = INFINITY;
    ref R = {.m = m, .hp = eng_model_hparams(m), .route_out = ids, .T = n, .min_tie = &tie};
    double *lg;
    int rc = run(&R, tokens, n, &lg);
    free(lg);
    return rc;
}

double ref_rel_err(const float *a, const double *b, int64_t n)
{
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        md = e > md ? e : md;
        mb = fabs(b[i]) > mb ? fabs(b[i]) : mb;
    }
    return mb > 0 ? md / mb : md;
}

double ref_bound(const char *type, bool decode, double min_tie)
{
    const double b = type[0] == 'q' || type[0] == 'i' || type[0] == 'm' ? 1e-3 : 1e-4;
    eng_simd simd;
    eng_err e = {0};
    if (decode && !strcmp(type, "f16") && eng_simd_default(&simd, &e) == ENG_OK &&
        strstr(eng_kernels_name(eng_kernels_get(simd)), "fp16"))
        return 1e-2;
    /* an activation (in quantization steps) closer to a rounding tie than
     * 4e-7 of its value: the engine, whose activations differ from the
     * reference's by ~1e-7 relative, may round it to the other level */
    return min_tie < 4e-7 ? fmax(b, 2e-2) : b;
}
