/*
 * ops.c — the element-wise and per-vector math of the forward pass, written
 * to match ggml's CPU code (reference spec §4) so logits compare with
 * llama.cpp on the same file.
 */
#include "engine/forward_impl.h"

#include <math.h>

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

void eng_rope_table(float *cs, int64_t pos, int64_t n_rot, float base)
{
    /* ggml_rope_cache_init: theta = p * theta_scale^i, iterated in f32 */
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int64_t i = 0; i < n_rot / 2; i++) {
        cs[2 * i] = cosf(theta);
        cs[2 * i + 1] = sinf(theta);
        theta *= theta_scale;
    }
}

void eng_rope_apply(float *x, int64_t n_heads, int64_t hd, int64_t n_rot, const float *cs,
                    eng_rope_kind kind)
{
    /* NORM pairs (2i, 2i+1); NEOX pairs (i, i + n_rot/2): ops.cpp rope_f32 */
    const int64_t half = n_rot / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * hd;
        for (int64_t i = 0; i < half; i++) {
            int64_t a = kind == ENG_ROPE_NORM ? 2 * i : i;
            int64_t b = kind == ENG_ROPE_NORM ? 2 * i + 1 : i + half;
            const float c = cs[2 * i], sn = cs[2 * i + 1];
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * sn;
            v[b] = x0 * sn + x1 * c;
        }
    }
}

void eng_softmax(float *p, const float *x, int64_t n)
{
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        p[i] = expf(x[i] - mx);
        sum += p[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        p[i] *= inv;
}

void eng_topk(const float *p, int64_t n, int k, bool norm, int32_t *ids, float *w)
{
    /* selection by repeated scan: k and n are small (k <= n <= 512) */
    for (int j = 0; j < k; j++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++) {
            bool taken = false;
            for (int t = 0; t < j && !taken; t++)
                taken = ids[t] == i;
            if (!taken && (best < 0 || p[i] > p[best]))
                best = i;
        }
        ids[j] = (int32_t)best;
        w[j] = p[best];
    }
    if (!norm)
        return;
    double sum = 0; /* llama-graph.cpp build_moe_ffn: sum_rows, clamp, div */
    for (int j = 0; j < k; j++)
        sum += w[j];
    float s = (float)sum;
    if (s < 6.103515625e-5f)
        s = 6.103515625e-5f;
    for (int j = 0; j < k; j++)
        w[j] /= s;
}

float eng_sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

void eng_swiglu(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
