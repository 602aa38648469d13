/*
 * attn.c — what the attention implementations share (attn_impl.h): the
 * choice of implementation and one query head's attention over cached rows.
 */
#include "engine/attn_impl.h"

#include <math.h>
#include <stdlib.h>

const eng_attn_impl *eng_attn_get(eng_attn_kind kind)
{
    switch (kind) {
    case ENG_ATTN_MHA: return &eng_attn_mha;
    case ENG_ATTN_MLA: return &eng_attn_mla;
    }
    return NULL;
}

/* llama.cpp's attention without flash attention (llama-graph.cpp
 * build_attn_mha) on an f32 cache, one query row: kq = mul_mat(K, q) (a
 * ggml_vec_dot_f32 per cell), soft_max_ext (scale, then the -inf mask of
 * cells outside the window and past the end, the sink) over cells grouped
 * from cell 0, kqv = mul_mat(V^T, P). */
void eng_attend(const eng_vecops *vo, const float *q, const eng_attn_rows *r, float *scores,
                float *out)
{
    const int64_t c0 = r->p0 / ENG_VEC_ALIGN * ENG_VEC_ALIGN, c1 = eng_attn_row_len(r->p1);
    for (int64_t p = c0; p < r->p0; p++)
        scores[p] = -INFINITY;
    for (int64_t p = r->p0, row = r->p0 % r->cap; p < r->p1; p++, row = row + 1 == r->cap ? 0 : row + 1)
        scores[p] = vo->dot(r->k + row * r->k_stride, q, r->hd_k) * r->scale;
    for (int64_t p = r->p1; p < c1; p++)
        scores[p] = -INFINITY;
    eng_softmax_sink(vo, scores + c0, scores + c0, c1 - c0, r->sink);
    vo->wsum(out, r->hd_v, scores, r->v, r->v_stride, r->cap, r->p0, r->p1);
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
