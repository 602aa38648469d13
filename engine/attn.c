/*
 * attn.c — what the attention implementations share (attn_impl.h): the
 * choice of implementation and one query head's attention over cached rows.
 */
#include "engine/attn_impl.h"

#include <stdlib.h>

#include <string.h>

const eng_attn_impl *eng_attn_get(eng_attn_kind kind)
{
    switch (kind) {
    case ENG_ATTN_MHA: return &eng_attn_mha;
    case ENG_ATTN_MLA: return &eng_attn_mla;
    }
    return NULL;
}

/* q . k over n elements in 8 interleaved partial sums (element i into sum
 * i % 8), then combined pairwise: a fixed order, and 8 independent chains
 * instead of one (a single chain of n dependent adds made this loop 40 % of
 * a 512-token prefill), which the compiler also vectorizes. */
static float dot8(const float *restrict q, const float *restrict k, int64_t n)
{
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += q[i + j] * k[i + j];
    for (int j = 0; i < n; i++, j++)
        s[j] += q[i] * k[i];
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

/* out[i] += a * v[i] */
static void axpy(float *restrict out, float a, const float *restrict v, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            out[i + j] += a * v[i + j];
    for (; i < n; i++)
        out[i] += a * v[i];
}

void eng_attend(const float *q, const eng_attn_rows *r, float *scores, float *out)
{
    for (int64_t p = r->p0; p < r->p1; p++)
        scores[p] = dot8(q, r->k + (p % r->cap) * r->k_stride, r->hd_k) * r->scale;
    eng_softmax_sink(scores + r->p0, scores + r->p0, r->p1 - r->p0, r->sink);
    memset(out, 0, (size_t)r->hd_v * sizeof(float));
    for (int64_t p = r->p0; p < r->p1; p++)
        axpy(out, scores[p], r->v + (p % r->cap) * r->v_stride, r->hd_v);
}

float *eng_attn_falloc(int64_t a, int64_t b)
{
    return calloc((size_t)(a * b > 0 ? a * b : 1), sizeof(float));
}

uint64_t eng_model_kv_bytes(const eng_model *m, int64_t n_ctx)
{
    const eng_attn_impl *a = eng_attn_get(m->arch->traits.attn);
    uint64_t floats = 0;
    for (int il = 0; il < m->hp.n_layer; il++) { /* a window layer keeps its window */
        const int64_t w = m->layers[il].n_swa, rows = w && w < n_ctx ? w : n_ctx;
        floats += (uint64_t)a->cache_floats(m, il) * (uint64_t)rows;
    }
    return floats * sizeof(float);
}
