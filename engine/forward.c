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

#include <string.h>

static void embed_row(eng_session *s, int32_t token, float *dst)
{
    eng_tref te = s->m->tok_embd;
    const void *row = (const char *)te->data + (uint64_t)token * te->row_bytes;
    int rc = eng_dequant_rows(s->kern, te->type, row, s->hp->n_embd, 0, 1, dst);
    ENG_ASSERT(rc == ENG_OK); /* the type was checked at model open */
}

/* logits[n_vocab] of hidden row x: the decode kernel for every row, batch
 * or not, so a prefill row's head is the one token-by-token decode runs. */
static void lm_head(eng_session *s, const float *x, float *logits)
{
    eng_dec_buf *b = &s->dec;
    ENG_REGION_BEGIN(s, ENG_REGION_LM_HEAD);
    eng_rmsnorm(b->xn, x, s->m->output_norm->data, s->hp->n_embd, s->hp->eps);
    eng_xvec_prepare(s->kern, &b->xv_in, b->xn, s->hp->n_embd);
    eng_mm_job j = eng_job_dec(eng_job_of(s->m->output), &b->xv_in, logits);
    eng_mm_decode(s, &j, 1);
    ENG_REGION_END(s, ENG_REGION_LM_HEAD);
}

/* The head of batch rows first..T-1 (hidden states X [T][n_embd]) into
 * out[(t - first) * n_vocab]: for each row exactly lm_head's computation
 * (RMSNorm, the input prepared the same way, the format's matvec on the
 * same 16-row tiles of the output matrix, so bit for bit the same), but one
 * block of about 256 KiB of the matrix at a time for every row, so a block is
 * read from memory once per batch rather than once per row. */
static void lm_head_rows(eng_session *s, const float *X, int64_t first, int64_t T, float *out)
{
    const int64_t d = s->hp->n_embd, nv = s->hp->n_vocab, n = T - first;
    float *xn = s->bat.xn; /* [T][d], free after the last layer */
    ENG_REGION_BEGIN(s, ENG_REGION_LM_HEAD);
    for (int64_t t = 0; t < n; t++) {
        eng_rmsnorm(xn + t * d, X + (first + t) * d, s->m->output_norm->data, d, s->hp->eps);
        eng_xvec_prepare(s->kern, &s->head_xv[t], xn + t * d, d);
    }
    const eng_mm_job w = eng_job_of(s->m->output);
    int64_t R = (int64_t)((256u << 10) / w.row_bytes) / ENG_MV_ROWS * ENG_MV_ROWS;
    R = R < ENG_MV_ROWS ? ENG_MV_ROWS : R; /* a multiple of the tile: the same tiles */
    for (int64_t r0 = 0; r0 < nv; r0 += R) {
        eng_mm_job blk = w;
        blk.w = (const char *)w.w + (uint64_t)r0 * w.row_bytes;
        blk.n_out = nv - r0 < R ? nv - r0 : R;
        for (int64_t t0 = 0; t0 < n; t0 += s->max_jobs) {
            int nj = (int)(n - t0 < s->max_jobs ? n - t0 : s->max_jobs);
            for (int j = 0; j < nj; j++)
                s->head_jobs[j] = eng_job_dec(blk, &s->head_xv[t0 + j], out + (t0 + j) * nv + r0);
            eng_mm_decode(s, s->head_jobs, nj);
        }
    }
    ENG_REGION_END(s, ENG_REGION_LM_HEAD);
}

int eng_forward_token(eng_session *s, int32_t token, bool is_prefill, eng_err *err)
{
    eng_dec_buf *b = &s->dec;
    ENG_REGION_BEGIN(s, ENG_REGION_EMBED);
    embed_row(s, token, b->x);
    eng_rope_table(s->rope_cs, s->pos, &s->hp->rope, s->vec->fma);
    if (s->rope_cs_swa != s->rope_cs)
        eng_rope_table(s->rope_cs_swa, s->pos, &s->hp->rope_swa, s->vec->fma);
    ENG_REGION_END(s, ENG_REGION_EMBED);
    for (int il = 0; il < s->hp->n_layer; il++) {
        ENG_REGION_BEGIN(s, ENG_REGION_ATTENTION);
        s->attn->decode(s, il);
        ENG_REGION_END(s, ENG_REGION_ATTENTION);
        int rc = eng_ffn_decode(s, il, token, is_prefill, err);
        if (rc)
            return rc;
    }
    lm_head(s, b->x, s->logits);
    ENG_HOOK(s->hooks, token_done, s->pos);
    s->pos++;
    return ENG_OK;
}

int eng_forward_batch(eng_session *s, const int32_t *tokens, int64_t T, int64_t first,
                      float *out, eng_err *err)
{
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd;
    ENG_REGION_BEGIN(s, ENG_REGION_EMBED);
    for (int64_t t = 0; t < T; t++)
        embed_row(s, tokens[t], b->x + t * d);
    ENG_REGION_END(s, ENG_REGION_EMBED);
    for (int64_t t = 0; t < T; t++) {
        eng_rope_table(s->rope_cs + t * s->hp->n_rot, s->pos + t, &s->hp->rope, s->vec->fma);
        if (s->rope_cs_swa != s->rope_cs)
            eng_rope_table(s->rope_cs_swa + t * s->hp->n_rot, s->pos + t, &s->hp->rope_swa,
                           s->vec->fma);
    }
    for (int il = 0; il < s->hp->n_layer; il++) {
        ENG_REGION_BEGIN(s, ENG_REGION_ATTENTION);
        s->attn->batch(s, il, T);
        ENG_REGION_END(s, ENG_REGION_ATTENTION);
        int rc = eng_ffn_batch(s, il, tokens, T, err);
        if (rc)
            return rc;
    }
    const int64_t nv = s->hp->n_vocab;
    if (out && first < T)
        lm_head_rows(s, b->x, first, T, out);
    if (out && first < T)
        memcpy(s->logits, out + (T - 1 - first) * nv, (size_t)nv * sizeof *s->logits);
    else
        lm_head(s, b->x + (T - 1) * d, s->logits);
    for (int64_t t = 0; t < T; t++)
        ENG_HOOK(s->hooks, token_done, s->pos + t);
    s->pos += T;
    return ENG_OK;
}
