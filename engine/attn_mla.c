/*
 * attn_mla.c — multi-head latent attention (deepseek2; reference spec
 * part 2 §1.3, llama.cpp models/deepseek2.cpp:470-643), for one layer:
 *
 *   h    = RMSNorm(x) * attn_norm
 *   q    = R_q > 0 ? W_q_b RMSNorm(W_q_a h) : W_q h        H heads of dk
 *   q_nope[h], q_pe[h] = q[h][0:nope], q[h][nope:dk]
 *   c    = W_kv_a h;  kv = c[0:R_kv];  k_pe = c[R_kv:]     one k_pe for all heads
 *   RoPE (NORM pairs, YaRN as the file says) on q_pe and k_pe
 *   kv   = RMSNorm(kv) * kv_a_norm                          k_pe is not normed
 *
 * then one of the two forms a file can carry:
 *
 *   absorbed (attn_k_b, attn_v_b; the cache holds [kv | k_pe] per token,
 *   R_kv + rope floats, not per head — multi-query attention over the latent):
 *     Q[h] = [k_b[h] q_nope[h] | q_pe[h]]                   R_kv + rope
 *     P    = softmax(kq_scale * Q[h] . cache[t])
 *     o[h] = v_b[h] (sum_t P[t] cache[t][0:R_kv])           dv
 *   legacy (attn_kv_b; the cache holds per-head K (dk) and V (dv)):
 *     kvb  = W_kv_b kv;  K[h] = [kvb[h][0:nope] | k_pe];  V[h] = kvb[h][nope:]
 *     o[h] = softmax(kq_scale * [q_nope|q_pe][h] . K[h]) V[h]
 *
 *   x += W_o concat_h o[h]
 *
 * Both forms are the same function (q_nope . (k_b kv) = (k_b^T q_nope) . kv
 * and P (v_b kv) = v_b (P kv)); the tests check the absorbed one against a
 * reference that decompresses K and V per head. Per-head products with
 * k_b/v_b are matrix jobs of their own (one per head), so a quantized k_b
 * meets a quantized q_nope as llama.cpp's batched mul_mat does.
 */
#include "engine/attn_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct mla_state {
    int64_t H, dk, dv, nope, rope, Rq, Rkv, row; /* row: R_kv + rope         */
    bool absorbed;
    float **kc, **vc;          /* [n_layer] caches: absorbed [n_ctx][row] in kc;
                                  legacy [n_ctx][H*dk], [n_ctx][H*dv]        */
    /* decode: one token */
    float *qa, *q, *kva;       /* [R_q], [H*dk], [row]                       */
    float *qabs, *olat, *o;    /* [H*row], [H*R_kv], [H*dv]                  */
    float *kvb;                /* [H*(nope+dv)] (legacy)                     */
    float *scores;             /* [H][ns]                                    */
    int64_t ns;                /* eng_attn_row_len(n_ctx)                    */
    eng_xvec xv, *xv_h;        /* xv: n_max = widest input; xv_h: [H]        */
    /* prefill: B rows of each */
    float *bqa, *bq, *bkva, *bqabs, *bolat, *bo, *bkvb, *bscores;
    eng_mm_job *jobs;          /* [H]                                        */
} mla_state;

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int64_t mla_cache_floats(const eng_model *m, int il)
{
    (void)il;
    const eng_hparams *hp = eng_model_hparams(m);
    const eng_mla_params *a = &hp->mla;
    return a->absorbed ? a->kv_lora_rank + hp->n_rot : hp->n_head * (a->dk + a->dv);
}

static void mla_close(eng_session *s)
{
    mla_state *st = s->attn_state;
    if (!st)
        return;
    for (int64_t il = 0; st->kc && il < s->hp->n_layer; il++) {
        free(st->kc[il]);
        if (st->vc)
            free(st->vc[il]);
    }
    free(st->kc);
    free(st->vc);
    void *p[] = {st->qa,    st->q,   st->kva,   st->qabs,  st->olat, st->o,
                 st->kvb,   st->scores, st->bqa, st->bq,    st->bkva, st->bqabs,
                 st->bolat, st->bo,  st->bkvb,  st->bscores, st->jobs};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
    eng_xvec_free(&st->xv);
    for (int64_t h = 0; st->xv_h && h < st->H; h++)
        eng_xvec_free(&st->xv_h[h]);
    free(st->xv_h);
    free(st);
    s->attn_state = NULL;
}

static bool alloc_caches(eng_session *s, mla_state *st)
{
    const int64_t L = s->hp->n_layer;
    if (!(st->kc = calloc((size_t)L, sizeof *st->kc)) ||
        (!st->absorbed && !(st->vc = calloc((size_t)L, sizeof *st->vc))))
        return false;
    for (int64_t il = 0; il < L; il++) {
        if (st->absorbed ? !(st->kc[il] = eng_attn_falloc(s->n_ctx, st->row))
                         : !(st->kc[il] = eng_attn_falloc(s->n_ctx, st->H * st->dk)) ||
                               !(st->vc[il] = eng_attn_falloc(s->n_ctx, st->H * st->dv)))
            return false;
    }
    return true;
}

static bool alloc_buffers(eng_session *s, mla_state *st)
{
    const int64_t H = st->H, B = s->n_batch, nt = eng_pool_threads(s->pool);
    const int64_t nkvb = H * (st->nope + st->dv);
    const int64_t in = max64(max64(s->hp->n_embd, st->Rq), max64(st->Rkv, H * st->dv));
    if (!(st->qa = eng_attn_falloc(st->Rq, 1)) || !(st->q = eng_attn_falloc(H, st->dk)) ||
        !(st->kva = eng_attn_falloc(st->row, 1)) || !(st->qabs = eng_attn_falloc(H, st->row)) ||
        !(st->olat = eng_attn_falloc(H, st->Rkv)) || !(st->o = eng_attn_falloc(H, st->dv)) ||
        !(st->kvb = eng_attn_falloc(nkvb, 1)) || !(st->scores = eng_attn_falloc(H, st->ns)) ||
        !(st->bqa = eng_attn_falloc(B, st->Rq)) || !(st->bq = eng_attn_falloc(B, H * st->dk)) ||
        !(st->bkva = eng_attn_falloc(B, st->row)) || !(st->bqabs = eng_attn_falloc(B, H * st->row)) ||
        !(st->bolat = eng_attn_falloc(B, H * st->Rkv)) || !(st->bo = eng_attn_falloc(B, H * st->dv)) ||
        !(st->bkvb = eng_attn_falloc(B, nkvb)) || !(st->bscores = eng_attn_falloc(nt, st->ns)) ||
        !(st->jobs = calloc((size_t)H, sizeof *st->jobs)) ||
        !(st->xv_h = calloc((size_t)H, sizeof *st->xv_h)) || eng_xvec_init(&st->xv, in, NULL))
        return false;
    for (int64_t h = 0; h < H; h++)
        if (eng_xvec_init(&st->xv_h[h], max64(st->nope, st->Rkv), NULL))
            return false;
    return true;
}

static int mla_open(eng_session *s, eng_err *err)
{
    const eng_hparams *hp = s->hp;
    const eng_mla_params *a = &hp->mla;
    mla_state *st = calloc(1, sizeof *st);
    if (!st)
        return eng_err_set(err, ENG_ENOMEM, "attention: out of memory");
    s->attn_state = st;
    *st = (mla_state){.H = hp->n_head, .dk = a->dk, .dv = a->dv, .nope = a->nope,
                      .rope = hp->n_rot, .Rq = a->q_lora_rank, .Rkv = a->kv_lora_rank,
                      .row = a->kv_lora_rank + hp->n_rot, .absorbed = a->absorbed,
                      .ns = eng_attn_row_len(s->n_ctx)};
    if (!alloc_caches(s, st) || !alloc_buffers(s, st)) {
        mla_close(s);
        return eng_err_set(err, ENG_ENOMEM, "attention: out of memory for the MLA cache "
                           "(%" PRId64 " tokens)", s->n_ctx);
    }
    return ENG_OK;
}

/* ---- pieces both passes use, one token at a time ---------------------------- */

/* After the projections: RoPE on q_pe and k_pe, the latent's norm, and the
 * token's cache rows at pos (absorbed: [kv | k_pe]; legacy: K and V from
 * kvb, which the caller fills after this). kva is [kv | k_pe] of the token. */
static void rope_and_norm(eng_session *s, const eng_layer *l, float *q, float *kva,
                          const float *cs)
{
    const mla_state *st = s->attn_state;
    eng_rope_apply(q + st->nope, st->H, st->dk, st->rope, cs, ENG_ROPE_NORM, s->vec->fma);
    eng_rope_apply(kva + st->Rkv, 1, st->rope, st->rope, cs, ENG_ROPE_NORM, s->vec->fma);
    eng_rmsnorm(kva, kva, l->kv_a_norm->data, st->Rkv, s->hp->eps);
}

/* Legacy: the token's per-head K and V rows from kvb and k_pe. */
static void legacy_rows(const mla_state *st, const float *kvb, const float *k_pe, float *k,
                        float *v)
{
    for (int64_t h = 0; h < st->H; h++) {
        const float *src = kvb + h * (st->nope + st->dv);
        memcpy(k + h * st->dk, src, (size_t)st->nope * sizeof(float));
        memcpy(k + h * st->dk + st->nope, k_pe, (size_t)st->rope * sizeof(float));
        memcpy(v + h * st->dv, src + st->nope, (size_t)st->dv * sizeof(float));
    }
}

/* Head h of the token at pos: absorbed -> olat[h] (R_kv), legacy -> o[h] (dv). */
static void attend_head(const eng_session *s, int il, int64_t h, const float *qabs,
                        const float *q, int64_t pos, float *scores, float *olat, float *o)
{
    const mla_state *st = s->attn_state;
    const float scale = s->hp->kq_scale;
    if (st->absorbed) { /* V is the latent part of the cached K rows */
        const float *c = st->kc[il];
        const eng_attn_rows r = {c, c, st->row, st->row, st->row, st->Rkv, 0, pos + 1,
                                 s->n_ctx, scale, -INFINITY};
        eng_attend(s->vec, qabs + h * st->row, &r, scores, olat + h * st->Rkv);
    } else {
        const eng_attn_rows r = {st->kc[il] + h * st->dk, st->vc[il] + h * st->dv,
                                 st->H * st->dk, st->dk, st->H * st->dv, st->dv, 0, pos + 1,
                                 s->n_ctx, scale, -INFINITY};
        eng_attend(s->vec, q + h * st->dk, &r, scores, o + h * st->dv);
    }
}

/* One head's slice of k_b {nope, R_kv, H} or v_b {R_kv, dv, H} as a job. */
static eng_mm_job head_job(eng_tref t, int64_t h)
{
    eng_mm_job j = eng_job_of(t);
    j.w = (const char *)t->data + (uint64_t)h * (uint64_t)t->ne[1] * t->row_bytes;
    return j;
}

/* ---- decode ----------------------------------------------------------------- */

typedef struct att_ctx {
    eng_session *s;
    int il;
    int64_t T;
} att_ctx;

static void dec_task(void *ctx, int h, int thread)
{
    (void)thread;
    att_ctx *c = ctx;
    mla_state *st = c->s->attn_state;
    attend_head(c->s, c->il, h, st->qabs, st->q, c->s->pos, st->scores + h * st->ns,
                st->olat, st->o);
}

/* q and [kv | k_pe] of the token, from its normed input. */
static void dec_project(eng_session *s, const eng_layer *l)
{
    mla_state *st = s->attn_state;
    eng_xvec_prepare(s->kern, &st->xv, s->dec.xn, s->hp->n_embd);
    eng_mm_job jobs[2] = {
        eng_job_dec(eng_job_of(st->Rq ? l->wq_a : l->wq), &st->xv, st->Rq ? st->qa : st->q),
        eng_job_dec(eng_job_of(l->wkv_a), &st->xv, st->kva)};
    eng_mm_decode(s, jobs, 2);
    if (st->Rq) {
        eng_rmsnorm(st->qa, st->qa, l->q_a_norm->data, st->Rq, s->hp->eps);
        eng_xvec_prepare(s->kern, &st->xv, st->qa, st->Rq);
        eng_mm_job jq = eng_job_dec(eng_job_of(l->wq_b), &st->xv, st->q);
        eng_mm_decode(s, &jq, 1);
    }
}

/* Absorbed: Q[h] = [k_b[h] q_nope[h] | q_pe[h]]; the cache row is [kv | k_pe]. */
static void dec_absorb(eng_session *s, const eng_layer *l, int il)
{
    mla_state *st = s->attn_state;
    memcpy(st->kc[il] + s->pos * st->row, st->kva, (size_t)st->row * sizeof(float));
    for (int64_t h = 0; h < st->H; h++) {
        eng_xvec_prepare(s->kern, &st->xv_h[h], st->q + h * st->dk, st->nope);
        st->jobs[h] = eng_job_dec(head_job(l->wk_b, h), &st->xv_h[h], st->qabs + h * st->row);
        memcpy(st->qabs + h * st->row + st->Rkv, st->q + h * st->dk + st->nope,
               (size_t)st->rope * sizeof(float));
    }
    eng_mm_decode(s, st->jobs, (int)st->H);
}

static void dec_decompress(eng_session *s, const eng_layer *l, int il)
{
    mla_state *st = s->attn_state;
    eng_xvec_prepare(s->kern, &st->xv, st->kva, st->Rkv);
    eng_mm_job j = eng_job_dec(eng_job_of(l->wkv_b), &st->xv, st->kvb);
    eng_mm_decode(s, &j, 1);
    legacy_rows(st, st->kvb, st->kva + st->Rkv, st->kc[il] + s->pos * st->H * st->dk,
                st->vc[il] + s->pos * st->H * st->dv);
}

static void mla_decode(eng_session *s, int il)
{
    const eng_layer *l = &s->m->layers[il];
    mla_state *st = s->attn_state;
    eng_dec_buf *b = &s->dec;
    const int64_t d = s->hp->n_embd;
    ENG_REGION_BEGIN(s, ENG_REGION_ATTN_PROJ);
    eng_rmsnorm(b->xn, b->x, l->attn_norm->data, d, s->hp->eps);
    dec_project(s, l);
    rope_and_norm(s, l, st->q, st->kva, s->rope_cs);
    ENG_REGION_END(s, ENG_REGION_ATTN_PROJ);
    ENG_REGION_BEGIN(s, ENG_REGION_ATTN_LATENT);
    if (st->absorbed)
        dec_absorb(s, l, il);
    else
        dec_decompress(s, l, il);
    ENG_REGION_END(s, ENG_REGION_ATTN_LATENT);
    ENG_REGION_BEGIN(s, ENG_REGION_ATTN_CORE);
    att_ctx c = {s, il, 1};
    eng_pool_run(s->pool, dec_task, &c, (int)st->H);
    ENG_REGION_END(s, ENG_REGION_ATTN_CORE);
    if (st->absorbed) { /* o[h] = v_b[h] olat[h] */
        ENG_REGION_BEGIN(s, ENG_REGION_ATTN_LATENT);
        for (int64_t h = 0; h < st->H; h++) {
            eng_xvec_prepare(s->kern, &st->xv_h[h], st->olat + h * st->Rkv, st->Rkv);
            st->jobs[h] = eng_job_dec(head_job(l->wv_b, h), &st->xv_h[h], st->o + h * st->dv);
        }
        eng_mm_decode(s, st->jobs, (int)st->H);
        ENG_REGION_END(s, ENG_REGION_ATTN_LATENT);
    }
    eng_xvec_prepare(s->kern, &st->xv, st->o, st->H * st->dv);
    eng_mm_job jo = eng_job_dec(eng_job_of(l->wo), &st->xv, b->tmp);
    eng_mm_decode(s, &jo, 1);
    for (int64_t i = 0; i < d; i++)
        b->x[i] += b->tmp[i];
}

/* ---- prefill ---------------------------------------------------------------- */

static void bat_task(void *ctx, int task, int thread)
{
    att_ctx *c = ctx;
    eng_session *s = c->s;
    mla_state *st = s->attn_state;
    const int64_t h = task / c->T, t = task % c->T;
    attend_head(s, c->il, h, st->bqabs + t * st->H * st->row, st->bq + t * st->H * st->dk,
                s->pos + t, st->bscores + (int64_t)thread * st->ns,
                st->bolat + t * st->H * st->Rkv, st->bo + t * st->H * st->dv);
}

static void bat_project(eng_session *s, const eng_layer *l, int64_t T)
{
    mla_state *st = s->attn_state;
    const int64_t d = s->hp->n_embd, nq = st->H * st->dk;
    const float *X = s->bat.xn;
    eng_mm_job jobs[2] = {
        st->Rq ? eng_job_bat(eng_job_of(l->wq_a), X, T, d, st->bqa, st->Rq)
               : eng_job_bat(eng_job_of(l->wq), X, T, d, st->bq, nq),
        eng_job_bat(eng_job_of(l->wkv_a), X, T, d, st->bkva, st->row)};
    eng_mm_batch(s, jobs, 2);
    if (st->Rq) {
        for (int64_t t = 0; t < T; t++)
            eng_rmsnorm(st->bqa + t * st->Rq, st->bqa + t * st->Rq, l->q_a_norm->data, st->Rq,
                        s->hp->eps);
        eng_mm_job jq = eng_job_bat(eng_job_of(l->wq_b), st->bqa, T, st->Rq, st->bq, nq);
        eng_mm_batch(s, &jq, 1);
    }
}

/* Per head, all tokens at once: Qabs[t][h] = [k_b[h] q_nope[t][h] | q_pe[t][h]]. */
static void bat_absorb(eng_session *s, const eng_layer *l, int il, int64_t T)
{
    mla_state *st = s->attn_state;
    const int64_t nq = st->H * st->dk, nqa = st->H * st->row;
    for (int64_t t = 0; t < T; t++) {
        memcpy(st->kc[il] + (s->pos + t) * st->row, st->bkva + t * st->row,
               (size_t)st->row * sizeof(float));
        for (int64_t h = 0; h < st->H; h++)
            memcpy(st->bqabs + t * nqa + h * st->row + st->Rkv,
                   st->bq + t * nq + h * st->dk + st->nope, (size_t)st->rope * sizeof(float));
    }
    for (int64_t h = 0; h < st->H; h++)
        st->jobs[h] = eng_job_bat(head_job(l->wk_b, h), st->bq + h * st->dk, T, nq,
                                  st->bqabs + h * st->row, nqa);
    eng_mm_batch(s, st->jobs, (int)st->H);
}

static void bat_decompress(eng_session *s, const eng_layer *l, int il, int64_t T)
{
    mla_state *st = s->attn_state;
    const int64_t nkvb = st->H * (st->nope + st->dv);
    eng_mm_job j = eng_job_bat(eng_job_of(l->wkv_b), st->bkva, T, st->row, st->bkvb, nkvb);
    eng_mm_batch(s, &j, 1);
    for (int64_t t = 0; t < T; t++)
        legacy_rows(st, st->bkvb + t * nkvb, st->bkva + t * st->row + st->Rkv,
                    st->kc[il] + (s->pos + t) * st->H * st->dk,
                    st->vc[il] + (s->pos + t) * st->H * st->dv);
}

static void mla_batch(eng_session *s, int il, int64_t T)
{
    const eng_layer *l = &s->m->layers[il];
    mla_state *st = s->attn_state;
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd, no = st->H * st->dv;
    ENG_REGION_BEGIN(s, ENG_REGION_ATTN_PROJ);
    for (int64_t t = 0; t < T; t++)
        eng_rmsnorm(b->xn + t * d, b->x + t * d, l->attn_norm->data, d, s->hp->eps);
    bat_project(s, l, T);
    for (int64_t t = 0; t < T; t++)
        rope_and_norm(s, l, st->bq + t * st->H * st->dk, st->bkva + t * st->row,
                      s->rope_cs + t * st->rope);
    ENG_REGION_END(s, ENG_REGION_ATTN_PROJ);
    ENG_REGION_BEGIN(s, ENG_REGION_ATTN_LATENT);
    if (st->absorbed)
        bat_absorb(s, l, il, T);
    else
        bat_decompress(s, l, il, T);
    ENG_REGION_END(s, ENG_REGION_ATTN_LATENT);
    ENG_REGION_BEGIN(s, ENG_REGION_ATTN_CORE);
    att_ctx c = {s, il, T};
    eng_pool_run(s->pool, bat_task, &c, (int)(st->H * T));
    ENG_REGION_END(s, ENG_REGION_ATTN_CORE);
    if (st->absorbed) {
        ENG_REGION_BEGIN(s, ENG_REGION_ATTN_LATENT);
        for (int64_t h = 0; h < st->H; h++)
            st->jobs[h] = eng_job_bat(head_job(l->wv_b, h), st->bolat + h * st->Rkv, T,
                                      st->H * st->Rkv, st->bo + h * st->dv, no);
        eng_mm_batch(s, st->jobs, (int)st->H);
        ENG_REGION_END(s, ENG_REGION_ATTN_LATENT);
    }
    eng_mm_job jo = eng_job_bat(eng_job_of(l->wo), st->bo, T, no, b->tmp, d);
    eng_mm_batch(s, &jo, 1);
    for (int64_t i = 0; i < T * d; i++)
        b->x[i] += b->tmp[i];
}

const eng_attn_impl eng_attn_mla = {
    .name = "mla",
    .cache_floats = mla_cache_floats,
    .open = mla_open,
    .close = mla_close,
    .decode = mla_decode,
    .batch = mla_batch,
};
