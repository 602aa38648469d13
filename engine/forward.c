/*
 * forward.c — the forward pass (reference spec §4): every layer runs
 *
 *     x += Attn(RMSNorm(x) * attn_norm)      the architecture's attention
 *     x += FFN(RMSNorm(x) * ffn_norm)        dense or MoE, as the layer says
 *
 * then logits = output . (RMSNorm(x) * output_norm). One decode step runs
 * the kernels on the stored formats; a prefill batch multiplies each matrix
 * with all its activation rows at once (matmul.c, gemm.h). The attention is the architecture's implementation
 * (attn_impl.h), the FFN ffn.c; architecture differences come from s->tr
 * (arch.h) and the layer descriptors, never from the name.
 */
#include "engine/attn_impl.h"

static void embed_row(eng_session *s, int32_t token, float *dst)
{
    eng_tref te = s->m->tok_embd;
    const void *row = (const char *)te->data + (uint64_t)token * te->row_bytes;
    int rc = eng_dequant_rows(s->kern, te->type, row, s->hp->n_embd, 0, 1, dst);
    ENG_ASSERT(rc == ENG_OK); /* the type was checked at model open */
}

static void lm_head(eng_session *s, const float *x)
{
    eng_dec_buf *b = &s->dec;
    ENG_REGION_BEGIN(s, ENG_REGION_LM_HEAD);
    eng_rmsnorm(b->xn, x, s->m->output_norm->data, s->hp->n_embd, s->hp->eps);
    eng_xvec_prepare(s->kern, &b->xv_in, b->xn, s->hp->n_embd);
    eng_mm_job j = eng_job_dec(eng_job_of(s->m->output), &b->xv_in, s->logits);
    eng_mm_decode(s, &j, 1);
    ENG_REGION_END(s, ENG_REGION_LM_HEAD);
}

int eng_forward_token(eng_session *s, int32_t token, bool is_prefill, eng_err *err)
{
    eng_dec_buf *b = &s->dec;
    ENG_REGION_BEGIN(s, ENG_REGION_EMBED);
    embed_row(s, token, b->x);
    eng_rope_table(s->rope_cs, s->pos, &s->hp->rope);
    if (s->rope_cs_swa != s->rope_cs)
        eng_rope_table(s->rope_cs_swa, s->pos, &s->hp->rope_swa);
    ENG_REGION_END(s, ENG_REGION_EMBED);
    for (int il = 0; il < s->hp->n_layer; il++) {
        ENG_REGION_BEGIN(s, ENG_REGION_ATTENTION);
        s->attn->decode(s, il);
        ENG_REGION_END(s, ENG_REGION_ATTENTION);
        int rc = eng_ffn_decode(s, il, token, is_prefill, err);
        if (rc)
            return rc;
    }
    lm_head(s, b->x);
    ENG_HOOK(s->hooks, token_done, s->pos);
    s->pos++;
    return ENG_OK;
}

int eng_forward_batch(eng_session *s, const int32_t *tokens, int64_t T, eng_err *err)
{
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd;
    ENG_REGION_BEGIN(s, ENG_REGION_EMBED);
    for (int64_t t = 0; t < T; t++)
        embed_row(s, tokens[t], b->x + t * d);
    ENG_REGION_END(s, ENG_REGION_EMBED);
    for (int64_t t = 0; t < T; t++) {
        eng_rope_table(s->rope_cs + t * s->hp->n_rot, s->pos + t, &s->hp->rope);
        if (s->rope_cs_swa != s->rope_cs)
            eng_rope_table(s->rope_cs_swa + t * s->hp->n_rot, s->pos + t, &s->hp->rope_swa);
    }
    for (int il = 0; il < s->hp->n_layer; il++) {
        ENG_REGION_BEGIN(s, ENG_REGION_ATTENTION);
        s->attn->batch(s, il, T);
        ENG_REGION_END(s, ENG_REGION_ATTENTION);
        int rc = eng_ffn_batch(s, il, tokens, T, err);
        if (rc)
            return rc;
    }
    lm_head(s, b->x + (T - 1) * d);
    for (int64_t t = 0; t < T; t++)
        ENG_HOOK(s->hooks, token_done, s->pos + t);
    s->pos += T;
    return ENG_OK;
}
