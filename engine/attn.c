/*
 * attn.c — what the attention implementations share (attn_impl.h): the
 * choice of implementation and one query head's attention over cached rows.
 */
#include "engine/attn_impl.h"

#include <string.h>

const eng_attn_impl *eng_attn_get(eng_attn_kind kind)
{
    switch (kind) {
    case ENG_ATTN_MHA: return &eng_attn_mha;
    case ENG_ATTN_MLA: return &eng_attn_mla;
    }
    return NULL;
}

void eng_attend(const float *q, const float *k, int64_t k_stride, int64_t hd_k, const float *v,
                int64_t v_stride, int64_t hd_v, int64_t p0, int64_t p1, float scale,
                float *scores, float *out)
{
    for (int64_t p = p0; p < p1; p++) {
        const float *kp = k + p * k_stride;
        float dot = 0;
        for (int64_t i = 0; i < hd_k; i++)
            dot += q[i] * kp[i];
        scores[p] = dot * scale;
    }
    eng_softmax(scores + p0, scores + p0, p1 - p0);
    memset(out, 0, (size_t)hd_v * sizeof(float));
    for (int64_t p = p0; p < p1; p++) {
        const float *vp = v + p * v_stride;
        const float a = scores[p];
        for (int64_t i = 0; i < hd_v; i++)
            out[i] += a * vp[i];
    }
}

uint64_t eng_model_kv_bytes(const eng_model *m, int64_t n_ctx)
{
    const eng_attn_impl *a = eng_attn_get(m->arch->traits.attn);
    uint64_t floats = 0;
    for (int il = 0; il < m->hp.n_layer; il++)
        floats += (uint64_t)a->cache_floats(m, il);
    return floats * (uint64_t)n_ctx * sizeof(float);
}
