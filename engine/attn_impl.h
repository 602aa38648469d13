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
    /* Whether the cache still holds what a rewind to pos needs (NULL: it
     * always does): ENG_OK, or ENG_EUNSUPPORTED with a message. */
    int (*can_rewind)(const eng_session *s, int64_t pos, eng_err *err);
} eng_attn_impl;

extern const eng_attn_impl eng_attn_mha;
extern const eng_attn_impl eng_attn_mla;

/* The implementation of an attention kind. */
const eng_attn_impl *eng_attn_get(eng_attn_kind kind);

/* A zeroed float buffer of a * b elements (at least one): the caches and
 * scratch rows of an implementation; NULL when out of memory. */
float *eng_attn_falloc(int64_t a, int64_t b);

/* The cached rows one query head attends to: positions [p0, p1), position
 * p in row p % cap of K (k_stride floats apart, hd_k of them) and of V
 * (v_stride apart, hd_v), so a sliding window's cache is a ring of cap rows
 * (cap >= p1 for a full cache). sink: a logit with no value in the softmax's
 * denominator (gpt-oss), -INFINITY for none. */
typedef struct eng_attn_rows {
    const float *k, *v;
    int64_t k_stride, hd_k, v_stride, hd_v;
    int64_t p0, p1, cap;
    float scale, sink;
} eng_attn_rows;

/* Length of a row of scores for positions below p1: whole groups of
 * ENG_VEC_ALIGN cells (vecops.h). */
static inline int64_t eng_attn_row_len(int64_t p1)
{
    return (p1 + ENG_VEC_ALIGN - 1) / ENG_VEC_ALIGN * ENG_VEC_ALIGN;
}

/* out[hd_v] = softmax(scale * q . K[p], sink) V over the rows, computed as
 * llama.cpp's CPU backend does with vo's row ops (ggml soft_max with sinks:
 * ops.cpp:5540-5552); scores[eng_attn_row_len(p1)] is scratch, indexed by
 * position. */
void eng_attend(const eng_vecops *vo, const float *q, const eng_attn_rows *r, float *scores,
                float *out);

#endif
