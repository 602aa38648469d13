/*
 * attn_impl.h — attention as a per-architecture implementation (not a
 * public header).
 *
 * An implementation owns the KV cache's layout and its own buffers (the
 * session keeps them in s->attn_state) and computes, for one layer, the
 * whole attention block: x += Attn(RMSNorm(x) * attn_norm). The session
 * holds the residual stream (s->dec.x, s->bat.x), the RoPE table of the
 * positions being evaluated (s->rope_cs) and the matrix-job helpers
 * (forward_impl.h). Architectures pick one by eng_arch_traits.attn:
 *
 *   mha  (attn_mha.c) multi-head / grouped-query attention: per token and
 *        layer a K row of n_head_kv * head_dim and a V row of
 *        n_head_kv * head_dim_v values.
 *   mla  (attn_mla.c) multi-head latent attention (deepseek2): per token and
 *        layer the normed latent and the roped k_pe (kv_lora_rank + n_rot
 *        values, shared by all heads) in files with attn_k_b/attn_v_b;
 *        per-head K and V rows in legacy files (attn_kv_b).
 *
 * Results never depend on the thread count: each output element is one
 * task's sum in a fixed order.
 */
#ifndef ENG_ATTN_IMPL_H
#define ENG_ATTN_IMPL_H

#include "engine/forward_impl.h"

typedef struct eng_attn_impl {
    const char *name;
    /* Floats of KV cache one token takes in layer il of m. */
    int64_t (*cache_floats)(const eng_model *m, int il);
    /* Allocates s->attn_state for s->n_ctx positions and s->n_batch rows. */
    int (*open)(eng_session *s, eng_err *err);
    void (*close)(eng_session *s);
    /* x += attention of layer il for the token at s->pos (s->dec.x); its
     * K/V go into the cache at s->pos. */
    void (*decode)(eng_session *s, int il);
    /* The same for T tokens at positions s->pos .. s->pos + T - 1 (s->bat.x). */
    void (*batch)(eng_session *s, int il, int64_t T);
} eng_attn_impl;

extern const eng_attn_impl eng_attn_mha;
extern const eng_attn_impl eng_attn_mla;

/* The implementation of an attention kind. */
const eng_attn_impl *eng_attn_get(eng_attn_kind kind);

/* out[hd_v] = softmax(scale * q . K[p] for p in [p0, p1)) V: one query head
 * against cached rows. K row p at k + p * k_stride (hd_k values), V row p at
 * v + p * v_stride (hd_v values); scores[p1] is scratch. Scores and the
 * weighted sum are accumulated in a fixed order. */
void eng_attend(const float *q, const float *k, int64_t k_stride, int64_t hd_k, const float *v,
                int64_t v_stride, int64_t hd_v, int64_t p0, int64_t p1, float scale,
                float *scores, float *out);

#endif
