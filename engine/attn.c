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

void eng_attend(const eng_gemm_kernels *g, const float *q, const eng_attn_rows *r,
                float *scores, float *out)
{
    for (int64_t p = r->p0; p < r->p1; p++)
        scores[p] = g->dot(q, r->k + (p % r->cap) * r->k_stride, r->hd_k) * r->scale;
    eng_softmax_sink(scores + r->p0, scores + r->p0, r->p1 - r->p0, r->sink);
    memset(out, 0, (size_t)r->hd_v * sizeof(float));
    for (int64_t p = r->p0; p < r->p1; p++)
        g->axpy(out, scores[p], r->v + (p % r->cap) * r->v_stride, r->hd_v);
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
