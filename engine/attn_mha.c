/*
 * attn_mha.c — multi-head / grouped-query attention (reference spec §4):
 *
 *   h = RMSNorm(x) * attn_norm
 *   q, k, v = Wq h (+bq), Wk h (+bk), Wv h (+bv)
 *   q, k: QK-norm (per head or whole vector, where the arch has it), RoPE
 *   o[h] = softmax(kq_scale * q[h] . K[kvh(h)][0..pos]) V[kvh(h)]
 *   x += Wo o (+bo)
 *
 * KV cache: per layer, rows of K (n_head_kv * head_dim floats) and of V
 * (n_head_kv * head_dim_v floats); query head h reads KV head
 * h / (n_head / n_head_kv). A full-attention layer keeps n_ctx rows; a
 * sliding-window layer (gpt-oss: a query at p sees p - n_swa < p' <= p) keeps
 * a ring of n_swa + n_batch - 1 rows, position p in row p % cap: enough for
 * the oldest position any token of a batch still sees after the whole batch
 * is written. Where the layer has sinks (gpt-oss), each head's sink logit
 * joins the softmax's denominator. Decode runs one task per query head,
 * prefill one per (head, token); each head's sums run in position order.
 */
#include "engine/attn_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct mha_state {
    int64_t n_q, n_k, n_v, n_o;  /* per token: q, K row, V row, attention out */
    float **kc, **vc;            /* [n_layer] -> [cap][n_k], [cap][n_v]      */
    int64_t *cap;                /* [n_layer] rows of the layer's cache      */
    float *q, *k, *v, *att;      /* decode: [n_q], [n_k], [n_v], [n_o]      */
    float *scores;               /* decode: [n_head][ns]                    */
    float *bq, *bk, *bv, *batt;  /* prefill: [B][n_q], [B][n_k], [B][n_v], [B][n_o] */
    float *bscores;              /* prefill: [n_threads][ns]                */
    int64_t ns;                  /* eng_attn_row_len(n_ctx)                 */
    eng_xvec xv;                 /* decode: n_max = max(n_embd, n_o)        */
} mha_state;

static int64_t mha_cache_floats(const eng_model *m, int il)
{
    (void)il;
    const eng_hparams *hp = eng_model_hparams(m);
    return hp->n_head_kv * (hp->head_dim + hp->head_dim_v);
}

/* Rows a layer's cache keeps for a context of n_ctx and batches of n_batch. */
static int64_t layer_rows(const eng_layer *l, int64_t n_ctx, int64_t n_batch)
{
    if (!l->n_swa)
        return n_ctx;
    const int64_t ring = l->n_swa + n_batch - 1;
    return ring < n_ctx ? ring : n_ctx;
}

static void mha_close(eng_session *s)
{
    mha_state *st = s->attn_state;
    if (!st)
        return;
    for (int64_t il = 0; st->kc && il < s->hp->n_layer; il++) {
        free(st->kc[il]);
        free(st->vc[il]);
    }
    free(st->kc);
    free(st->vc);
    free(st->cap);
    void *p[] = {st->q, st->k, st->v, st->att, st->scores, st->bq, st->bk, st->bv, st->batt,
                 st->bscores};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
    eng_xvec_free(&st->xv);
    free(st);
    s->attn_state = NULL;
}

static int mha_open(eng_session *s, eng_err *err)
{
    const eng_hparams *hp = s->hp;
    mha_state *st = calloc(1, sizeof *st);
    if (!st)
        return eng_err_set(err, ENG_ENOMEM, "attention: out of memory");
    s->attn_state = st;
    st->n_q = hp->n_head * hp->head_dim;
    st->n_k = hp->n_head_kv * hp->head_dim;
    st->n_v = hp->n_head_kv * hp->head_dim_v;
    st->n_o = hp->n_head * hp->head_dim_v;
    st->ns = eng_attn_row_len(s->n_ctx);
    const int64_t B = s->n_batch, nt = eng_pool_threads(s->pool);
    bool ok = (st->kc = calloc((size_t)hp->n_layer, sizeof *st->kc)) &&
              (st->vc = calloc((size_t)hp->n_layer, sizeof *st->vc)) &&
              (st->cap = calloc((size_t)hp->n_layer, sizeof *st->cap));
    for (int64_t il = 0; ok && il < hp->n_layer; il++) {
        st->cap[il] = layer_rows(&s->m->layers[il], s->n_ctx, s->n_batch);
        ok = (st->kc[il] = eng_attn_falloc(st->cap[il], st->n_k)) &&
             (st->vc[il] = eng_attn_falloc(st->cap[il], st->n_v));
    }
    ok = ok && (st->q = eng_attn_falloc(st->n_q, 1)) && (st->k = eng_attn_falloc(st->n_k, 1)) &&
         (st->v = eng_attn_falloc(st->n_v, 1)) && (st->att = eng_attn_falloc(st->n_o, 1)) &&
         (st->scores = eng_attn_falloc(hp->n_head, st->ns)) && (st->bq = eng_attn_falloc(B, st->n_q)) &&
         (st->bk = eng_attn_falloc(B, st->n_k)) && (st->bv = eng_attn_falloc(B, st->n_v)) &&
         (st->batt = eng_attn_falloc(B, st->n_o)) && (st->bscores = eng_attn_falloc(nt, st->ns)) &&
         eng_xvec_init(&st->xv, hp->n_embd > st->n_o ? hp->n_embd : st->n_o, NULL) == ENG_OK;
    if (!ok) {
        mha_close(s);
        return eng_err_set(err, ENG_ENOMEM, "attention: out of memory for the KV cache "
                           "(%" PRId64 " tokens)", s->n_ctx);
    }
    return ENG_OK;
}

/* Biases, QK-norm and RoPE of one token's q and k (in place), then k and v
 * (+bv) into the cache at pos. */
static void qk_finish(eng_session *s, const eng_layer *l, int il, float *q, float *k, float *v,
                      int64_t pos, const float *cs)
{
    const eng_hparams *hp = s->hp;
    mha_state *st = s->attn_state;
    const int64_t hd = hp->head_dim;
    eng_add_bias(q, l->bq, st->n_q);
    eng_add_bias(k, l->bk, st->n_k);
    eng_add_bias(v, l->bv, st->n_v);
    if (!l->q_norm) {
        /* no QK-norm here (glm4moe's is optional: GLM-4.5-Air has none) */
    } else if (s->tr->qk_norm == ENG_QKNORM_HEAD) {
        for (int64_t h = 0; h < hp->n_head; h++)
            eng_rmsnorm(q + h * hd, q + h * hd, l->q_norm->data, hd, hp->eps);
        for (int64_t h = 0; h < hp->n_head_kv; h++)
            eng_rmsnorm(k + h * hd, k + h * hd, l->k_norm->data, hd, hp->eps);
    } else if (s->tr->qk_norm == ENG_QKNORM_FULL) {
        eng_rmsnorm(q, q, l->q_norm->data, st->n_q, hp->eps);
        eng_rmsnorm(k, k, l->k_norm->data, st->n_k, hp->eps);
    }
    eng_rope_apply(q, hp->n_head, hd, hp->n_rot, cs, s->tr->rope, s->vec->fma);
    eng_rope_apply(k, hp->n_head_kv, hd, hp->n_rot, cs, s->tr->rope, s->vec->fma);
    const int64_t row = pos % st->cap[il];
    memcpy(st->kc[il] + row * st->n_k, k, (size_t)st->n_k * sizeof(float));
    memcpy(st->vc[il] + row * st->n_v, v, (size_t)st->n_v * sizeof(float));
}

/* Query head h of the token at pos (q: its n_q values) -> out (its n_o). */
static void attend_head(const eng_session *s, int il, int64_t h, const float *q, int64_t pos,
                        float *scores, float *out)
{
    const eng_hparams *hp = s->hp;
    const mha_state *st = s->attn_state;
    const eng_layer *l = &s->m->layers[il];
    const int64_t kvh = h / (hp->n_head / hp->n_head_kv);
    const int64_t p0 = l->n_swa && pos + 1 > l->n_swa ? pos + 1 - l->n_swa : 0;
    const eng_attn_rows r = {st->kc[il] + kvh * hp->head_dim, st->vc[il] + kvh * hp->head_dim_v,
                             st->n_k, hp->head_dim, st->n_v, hp->head_dim_v, p0, pos + 1,
                             st->cap[il], hp->kq_scale,
                             l->sinks ? ((const float *)l->sinks->data)[h] : -INFINITY};
    eng_attend(s->vec, q + h * hp->head_dim, &r, scores, out + h * hp->head_dim_v);
}

typedef struct att_ctx {
    eng_session *s;
    int il;
    int64_t T;
} att_ctx;

static void dec_task(void *ctx, int h, int thread)
{
    (void)thread;
    att_ctx *c = ctx;
    mha_state *st = c->s->attn_state;
    attend_head(c->s, c->il, h, st->q, c->s->pos, st->scores + h * st->ns, st->att);
}

static void mha_decode(eng_session *s, int il)
{
    const eng_layer *l = &s->m->layers[il];
    mha_state *st = s->attn_state;
    eng_dec_buf *b = &s->dec;
    const int64_t d = s->hp->n_embd;
    eng_rmsnorm(b->xn, b->x, l->attn_norm->data, d, s->hp->eps);
    eng_xvec_prepare(s->kern, &st->xv, b->xn, d);
    eng_mm_job jobs[3] = {eng_job_dec(eng_job_of(l->wq), &st->xv, st->q),
                          eng_job_dec(eng_job_of(l->wk), &st->xv, st->k),
                          eng_job_dec(eng_job_of(l->wv), &st->xv, st->v)};
    eng_mm_decode(s, jobs, 3);
    qk_finish(s, l, il, st->q, st->k, st->v, s->pos, l->n_swa ? s->rope_cs_swa : s->rope_cs);
    att_ctx c = {s, il, 1};
    eng_pool_run(s->pool, dec_task, &c, (int)s->hp->n_head);
    eng_xvec_prepare(s->kern, &st->xv, st->att, st->n_o);
    eng_mm_job jo = eng_job_dec(eng_job_of(l->wo), &st->xv, b->tmp);
    eng_mm_decode(s, &jo, 1);
    eng_add_bias(b->tmp, l->bo, d);
    for (int64_t i = 0; i < d; i++)
        b->x[i] += b->tmp[i];
}

static void bat_task(void *ctx, int task, int thread)
{
    att_ctx *c = ctx;
    eng_session *s = c->s;
    mha_state *st = s->attn_state;
    const int64_t h = task / c->T, t = task % c->T;
    attend_head(s, c->il, h, st->bq + t * st->n_q, s->pos + t,
                st->bscores + (int64_t)thread * st->ns, st->batt + t * st->n_o);
}

static void mha_batch(eng_session *s, int il, int64_t T)
{
    const eng_layer *l = &s->m->layers[il];
    mha_state *st = s->attn_state;
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd;
    for (int64_t t = 0; t < T; t++)
        eng_rmsnorm(b->xn + t * d, b->x + t * d, l->attn_norm->data, d, s->hp->eps);
    eng_mm_job jobs[3] = {eng_job_bat(eng_job_of(l->wq), b->xn, T, d, st->bq, st->n_q),
                          eng_job_bat(eng_job_of(l->wk), b->xn, T, d, st->bk, st->n_k),
                          eng_job_bat(eng_job_of(l->wv), b->xn, T, d, st->bv, st->n_v)};
    eng_mm_batch(s, jobs, 3);
    for (int64_t t = 0; t < T; t++)
        qk_finish(s, l, il, st->bq + t * st->n_q, st->bk + t * st->n_k, st->bv + t * st->n_v,
                  s->pos + t, (l->n_swa ? s->rope_cs_swa : s->rope_cs) + t * s->hp->n_rot);
    att_ctx c = {s, il, T};
    eng_pool_run(s->pool, bat_task, &c, (int)(s->hp->n_head * T));
    eng_mm_job jo = eng_job_bat(eng_job_of(l->wo), st->batt, T, st->n_o, b->tmp, d);
    eng_mm_batch(s, &jo, 1);
    for (int64_t t = 0; t < T; t++) {
        eng_add_bias(b->tmp + t * d, l->bo, d);
        for (int64_t i = 0; i < d; i++)
            b->x[t * d + i] += b->tmp[t * d + i];
    }
}

/* A window layer's ring has overwritten the positions older than s->pos -
 * cap; the next token at pos sees back to pos - n_swa + 1. */
static int mha_can_rewind(const eng_session *s, int64_t pos, eng_err *err)
{
    const mha_state *st = s->attn_state;
    for (int64_t il = 0; il < s->hp->n_layer; il++) {
        const int64_t w = s->m->layers[il].n_swa, oldest = pos - w + 1;
        if (w && (oldest > 0 ? oldest : 0) < s->pos - st->cap[il])
            return eng_err_set(err, ENG_EUNSUPPORTED,
                               "rewind from %" PRId64 " to %" PRId64 ": the sliding-window "
                               "layers keep the last %" PRId64 " positions only",
                               s->pos, pos, st->cap[il]);
    }
    return ENG_OK;
}

const eng_attn_impl eng_attn_mha = {
    .name = "mha",
    .cache_floats = mha_cache_floats,
    .open = mha_open,
    .close = mha_close,
    .decode = mha_decode,
    .batch = mha_batch,
    .can_rewind = mha_can_rewind,
};
