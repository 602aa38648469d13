/*
 * ref_forward.c — naive reference forward (see ref_forward.h). Follows the
 * reference spec §4 literally: RMSNorm, RoPE angle pos*base^(-2i/n_rot),
 * softmax over all experts, top-k (lower id first on ties), renormalisation
 * for llama and qwen3moe, sigmoid-gated shared expert for qwen2moe.
 */
#include "tests/engine/ref_forward.h"

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
    double *min_tie;      /* closest approach of a quantized activation to a
                           * rounding tie (x.5), in quantization steps */
    bool head_q8;         /* ... and in the output head */
    bool rope_neox, qk_head, qk_full, norm_topk, shexp;
    int32_t *route_out;   /* optional [T][L][k] */
    int64_t T;
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

static void partner_image(int type, const double *x, double *xi, double *s8, int64_t n, double *min_tie)
{
    if (type == 1 || type == 30 || type == 0) {
        for (int64_t i = 0; i < n; i++)
            xi[i] = type == 1 ? to_half((float)x[i]) : type == 30 ? to_bf16((float)x[i]) : x[i];
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

/* y[r] = sum_i W[slice + r][i] x[i] for r < n_out rows starting at row0;
 * with act_q8, against x's partner form (partner_image), and for Q4_1 /
 * Q5_1 the min of each block meets Q8_1's s instead of the sum of x. */
static void matvec(const ref *R, const eng_gguf_tensor *t, int64_t row0, int64_t n_out,
                   const double *x, double *y)
{
    const int64_t n = t->ne[0];
    double *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    double *xi = malloc((size_t)n * sizeof *xi), *s8 = malloc((size_t)(n / 32 + 1) * sizeof *s8);
    if (R->act_q8)
        partner_image(t->type, x, xi, s8, n, R->min_tie);
    else
        memcpy(xi, x, (size_t)n * sizeof *xi);
    const bool q8_1 = R->act_q8 && (t->type == 3 || t->type == 7);
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
            rope(R, q + h * hd, t);
        }
        for (int64_t h = 0; h < nkv; h++) {
            if (R->qk_head)
                rmsnorm(k + h * hd, k + h * hd, T_(R, "blk.%d.attn_k_norm.weight", il), hd, hp->eps);
            rope(R, k + h * hd, t);
        }
    }
    for (int64_t t = 0; t < T; t++) {
        for (int64_t h = 0; h < nh; h++) {
            int64_t kh = h / (nh / nkv);
            double mx = -INFINITY, sum = 0;
            for (int64_t p = 0; p <= t; p++) {
                double s = 0;
                for (int64_t i = 0; i < hd; i++)
                    s += Q[t * nq + h * hd + i] * K[p * nk + kh * hd + i];
                sc[p] = s / sqrt((double)hd);
                mx = sc[p] > mx ? sc[p] : mx;
            }
            for (int64_t p = 0; p <= t; p++)
                sum += (sc[p] = exp(sc[p] - mx));
            for (int64_t i = 0; i < hd; i++) {
                double a = 0;
                for (int64_t p = 0; p <= t; p++)
                    a += sc[p] / sum * V[p * nk + kh * hd + i];
                att[h * hd + i] = a;
            }
        }
        matvec(R, T_(R, "blk.%d.attn_output.weight", il), 0, d, att, o);
        add_bias(R, "blk.%d.attn_output.bias", il, o);
        for (int64_t i = 0; i < d; i++)
            x[t * d + i] += o[i];
    }
    free(xn), free(Q), free(K), free(V), free(att), free(o), free(sc), free(w);
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
    for (int j = 0; j < k; j++) { /* descending, lower id first among equals */
        int64_t best = -1;
        for (int64_t e = 0; e < E; e++) {
            bool used = false;
            for (int i = 0; i < j; i++)
                used |= ids[i] == e;
            if (!used && (best < 0 || p[e] > p[best]))
                best = e;
        }
        ids[j] = (int32_t)best;
        wsum += (w[j] = p[best]);
    }
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

static void ffn(const ref *R, int il, double *x, int64_t T)
{
    const int64_t d = R->hp->n_embd;
    double *xn = malloc((size_t)d * sizeof *xn), *y = malloc((size_t)d * sizeof *y);
    for (int64_t t = 0; t < T; t++) {
        rmsnorm(xn, x + t * d, T_(R, "blk.%d.ffn_norm.weight", il), d, R->hp->eps);
        memset(y, 0, (size_t)d * sizeof *y);
        if (R->hp->n_expert == 0)
            swiglu_ffn(R, T_(R, "blk.%d.ffn_gate.weight", il), T_(R, "blk.%d.ffn_up.weight", il),
                       T_(R, "blk.%d.ffn_down.weight", il), 0, xn, 1.0, y);
        else
            moe(R, il, t, xn, y);
        for (int64_t i = 0; i < d; i++)
            x[t * d + i] += y[i];
    }
    free(xn), free(y);
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
    const int64_t d = hp->n_embd;
    double *x = malloc((size_t)(T * d) * sizeof *x), *xn = malloc((size_t)d * sizeof *xn);
    const eng_gguf_tensor *emb = eng_gguf_find_tensor(R->g, "token_embd.weight");
    for (int64_t t = 0; t < T; t++)
        row(emb, tokens[t], x + t * d);
    for (int il = 0; il < hp->n_layer; il++) {
        attention(R, il, x, T);
        ffn(R, il, x, T);
    }
    rmsnorm(xn, x + (T - 1) * d, eng_gguf_find_tensor(R->g, "output_norm.weight"), d, hp->eps);
    const eng_gguf_tensor *outw = eng_gguf_find_tensor(R->g, "output.weight");
    *out = malloc((size_t)hp->n_vocab * sizeof **out);
    R->act_q8 = R->head_q8;
    matvec(R, outw ? outw : emb, 0, hp->n_vocab, xn, *out);
    free(x), free(xn);
    return 0;
}

int ref_forward_tie(const eng_model *m, const int32_t *tokens, int64_t n, int act, double **out,
                    double *min_tie)
{
    double tie = INFINITY;
    ref R = {.m = m, .hp = eng_model_hparams(m), .act_q8 = act == REF_ACT_Q8, .T = n,
             .head_q8 = act != REF_ACT_EXACT, .min_tie = &tie};
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
