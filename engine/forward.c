/*
 * forward.c — the forward pass (reference spec §4): one decode step in the
 * stored formats, or a prefill batch with sgemm on dequantized tiles.
 *
 * Every layer: x += Attn(RMSNorm(x) * attn_norm); x += FFN(RMSNorm(x) *
 * ffn_norm); logits = output . (RMSNorm(x) * output_norm). Architecture
 * differences come from s->arch (arch.h), never from the name.
 *
 * Parallel work is a list of matrix jobs cut into tasks of a fixed number
 * of rows (ENG_MV_ROWS, ENG_GEMM_ROWS). Each output element is computed by
 * one task with a fixed summation order, so results do not depend on the
 * number of threads. Attention is one task per head.
 *
 * The routed experts of a layer are reached only through the expert store
 * (store.h): prepare, then acquire, compute and release them in groups of
 * at most eng_store_max_held (all at once with the memory store, one by
 * one with a small tiered cache); outputs do not depend on the grouping.
 */
#include "engine/forward_impl.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define REGION_BEGIN(s, r) ENG_HOOK((s)->hooks, region_begin, r)
#define REGION_END(s, r) ENG_HOOK((s)->hooks, region_end, r)

/* ---- matrix jobs -------------------------------------------------------- */

typedef struct mm_ctx {
    eng_session *s;
    const eng_mm_job *jobs;
    int n_jobs;
    int64_t rows_per_task;
    int *first_task;          /* [n_jobs + 1] prefix sums of tasks per job */
} mm_ctx;

static void mm_locate(const mm_ctx *c, int task, const eng_mm_job **job, int64_t *r0,
                      int64_t *r1)
{
    int lo = 0, hi = c->n_jobs - 1; /* last j with first_task[j] <= task */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (c->first_task[mid] <= task)
            lo = mid;
        else
            hi = mid - 1;
    }
    int j = lo;
    while (j + 1 < c->n_jobs && c->first_task[j + 1] <= task) /* skip empty jobs */
        j++;
    *job = &c->jobs[j];
    *r0 = (int64_t)(task - c->first_task[j]) * c->rows_per_task;
    *r1 = *r0 + c->rows_per_task < (*job)->n_out ? *r0 + c->rows_per_task : (*job)->n_out;
}

static int mm_plan(mm_ctx *c, eng_session *s, const eng_mm_job *jobs, int n_jobs, int64_t rows)
{
    c->s = s;
    c->jobs = jobs;
    c->n_jobs = n_jobs;
    c->rows_per_task = rows;
    c->first_task = s->mm_first;
    c->first_task[0] = 0;
    for (int j = 0; j < n_jobs; j++)
        c->first_task[j + 1] = c->first_task[j] + (int)((jobs[j].n_out + rows - 1) / rows);
    return c->first_task[n_jobs];
}

static void mv_task(void *ctx, int task, int thread)
{
    (void)thread;
    const mm_ctx *c = ctx;
    const eng_mm_job *j;
    int64_t r0, r1;
    mm_locate(c, task, &j, &r0, &r1);
    /* types were checked at model open; the kernels cannot fail here */
    (void)eng_matvec(c->s->kern, j->type, j->w, j->xv, j->Y, r0, r1);
}

void eng_mm_decode(eng_session *s, const eng_mm_job *jobs, int n_jobs)
{
    mm_ctx c;
    int n = mm_plan(&c, s, jobs, n_jobs, ENG_MV_ROWS);
    eng_pool_run(s->pool, mv_task, &c, n);
}

static void gemm_task(void *ctx, int task, int thread)
{
    const mm_ctx *c = ctx;
    const eng_mm_job *j;
    int64_t r0, r1;
    mm_locate(c, task, &j, &r0, &r1);
    if (j->T == 0)
        return;
    const float *B;
    if (j->type == ENG_TYPE_F32) {
        B = (const float *)((const char *)j->w + (uint64_t)r0 * j->row_bytes);
    } else {
        float *tile = c->s->bat.scratch + (int64_t)thread * ENG_GEMM_ROWS * c->s->in_max;
        (void)eng_dequant_rows(c->s->kern, j->type, j->w, j->n_in, r0, r1, tile);
        B = tile;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->T, (int)(r1 - r0),
                (int)j->n_in, 1.0f, j->X, (int)j->ldx, B, (int)j->n_in, 0.0f, j->Y + r0,
                (int)j->ldy);
}

void eng_mm_batch(eng_session *s, const eng_mm_job *jobs, int n_jobs)
{
    mm_ctx c;
    int n = mm_plan(&c, s, jobs, n_jobs, ENG_GEMM_ROWS);
    eng_pool_run(s->pool, gemm_task, &c, n);
}

static eng_mm_job job_t(eng_tref t)
{
    return (eng_mm_job){.type = t->type, .w = t->data, .row_bytes = t->row_bytes,
                        .n_in = t->ne[0], .n_out = t->ne[1]};
}

static eng_mm_job job_m(const eng_expert_mat *m)
{
    return (eng_mm_job){.type = m->type, .w = m->data, .row_bytes = m->row_bytes,
                        .n_in = m->n_in, .n_out = m->n_out};
}

static eng_mm_job dv(eng_mm_job j, const eng_xvec *xv, float *y)
{
    j.xv = xv;
    j.Y = y;
    return j;
}

static eng_mm_job bt(eng_mm_job j, const float *X, int64_t T, int64_t ldx, float *Y,
                     int64_t ldy)
{
    j.X = X;
    j.T = T;
    j.ldx = ldx;
    j.Y = Y;
    j.ldy = ldy;
    return j;
}

static void add_bias(float *y, eng_tref b, int64_t n)
{
    if (!b)
        return;
    const float *bb = b->data;
    for (int64_t i = 0; i < n; i++)
        y[i] += bb[i];
}

/* ---- attention pieces shared by decode and prefill ---------------------- */

/* Biases, QK-norm and RoPE of one token's q and k (in place), then k and v
 * into the cache at pos. */
static void qk_finish(eng_session *s, const eng_layer *l, int il, float *q, float *k,
                      const float *v, int64_t pos, const float *cs)
{
    const eng_hparams *hp = s->hp;
    add_bias(q, l->bq, s->n_q);
    add_bias(k, l->bk, s->n_kv);
    if (s->arch->qk_norm == ENG_QKNORM_HEAD) {
        for (int64_t h = 0; h < hp->n_head; h++)
            eng_rmsnorm(q + h * hp->head_dim, q + h * hp->head_dim, l->q_norm->data,
                        hp->head_dim, hp->eps);
        for (int64_t h = 0; h < hp->n_head_kv; h++)
            eng_rmsnorm(k + h * hp->head_dim, k + h * hp->head_dim, l->k_norm->data,
                        hp->head_dim, hp->eps);
    } else if (s->arch->qk_norm == ENG_QKNORM_FULL) {
        eng_rmsnorm(q, q, l->q_norm->data, s->n_q, hp->eps);
        eng_rmsnorm(k, k, l->k_norm->data, s->n_kv, hp->eps);
    }
    eng_rope_apply(q, hp->n_head, hp->head_dim, hp->n_rot, cs, s->arch->rope);
    eng_rope_apply(k, hp->n_head_kv, hp->head_dim, hp->n_rot, cs, s->arch->rope);
    size_t off = ((size_t)il * (size_t)s->n_ctx + (size_t)pos) * (size_t)s->n_kv;
    memcpy(s->kc + off, k, (size_t)s->n_kv * sizeof(float));
    if (l->bv) {
        float *vd = s->vc + off;
        memcpy(vd, v, (size_t)s->n_kv * sizeof(float));
        add_bias(vd, l->bv, s->n_kv);
    } else {
        memcpy(s->vc + off, v, (size_t)s->n_kv * sizeof(float));
    }
}

/* out[hd] = softmax(q . K[0..=pos] / sqrt(hd)) V for query head h. */
static void attend_head(const eng_session *s, int il, int64_t h, const float *q, int64_t pos,
                        float *scores, float *out)
{
    const eng_hparams *hp = s->hp;
    const int64_t hd = hp->head_dim, kvh = h / (hp->n_head / hp->n_head_kv);
    const float scale = 1.0f / sqrtf((float)hd);
    const float *kbase = s->kc + (size_t)il * (size_t)s->n_ctx * (size_t)s->n_kv + kvh * hd;
    const float *vbase = s->vc + (size_t)il * (size_t)s->n_ctx * (size_t)s->n_kv + kvh * hd;
    for (int64_t p = 0; p <= pos; p++) {
        const float *kp = kbase + p * s->n_kv;
        float dot = 0;
        for (int64_t i = 0; i < hd; i++)
            dot += q[i] * kp[i];
        scores[p] = dot * scale;
    }
    eng_softmax(scores, scores, pos + 1);
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int64_t p = 0; p <= pos; p++) {
        const float *vp = vbase + p * s->n_kv;
        const float a = scores[p];
        for (int64_t i = 0; i < hd; i++)
            out[i] += a * vp[i];
    }
}

/* ---- decode: one token -------------------------------------------------- */

typedef struct dec_att_ctx {
    eng_session *s;
    int il;
} dec_att_ctx;

static void dec_att_task(void *ctx, int h, int thread)
{
    (void)thread;
    dec_att_ctx *c = ctx;
    eng_session *s = c->s;
    const int64_t hd = s->hp->head_dim;
    attend_head(s, c->il, h, s->dec.q + h * hd, s->pos, s->dec_scores + h * s->n_ctx,
                s->dec.att + h * hd);
}

static void dec_attention(eng_session *s, int il)
{
    const eng_layer *l = &s->m->layers[il];
    eng_dec_buf *b = &s->dec;
    eng_rmsnorm(b->xn, b->x, l->attn_norm->data, s->hp->n_embd, s->hp->eps);
    eng_xvec_prepare(s->kern, &b->xv_in, b->xn, s->hp->n_embd);
    eng_mm_job jobs[3] = {dv(job_t(l->wq), &b->xv_in, b->q), dv(job_t(l->wk), &b->xv_in, b->k),
                          dv(job_t(l->wv), &b->xv_in, b->v)};
    eng_mm_decode(s, jobs, 3);
    qk_finish(s, l, il, b->q, b->k, b->v, s->pos, s->rope_cs);
    dec_att_ctx c = {s, il};
    eng_pool_run(s->pool, dec_att_task, &c, (int)s->hp->n_head);
    eng_xvec_prepare(s->kern, &b->xv_in, b->att, s->n_q);
    eng_mm_job jo = dv(job_t(l->wo), &b->xv_in, b->tmp);
    eng_mm_decode(s, &jo, 1);
    add_bias(b->tmp, l->bo, s->hp->n_embd);
    for (int64_t i = 0; i < s->hp->n_embd; i++)
        b->x[i] += b->tmp[i];
}

/* SwiGLU FFN of n matrices sets (routed experts, shared or dense) on the
 * prepared xv_in: set i's output into b->o + (j0 + i) * n_embd. Each output
 * row is one dot product, so the grouping of sets does not change it. */
static void dec_ffn_run(eng_session *s, const eng_expert_mat (*m)[3], int n, int j0)
{
    eng_dec_buf *b = &s->dec;
    const int64_t d = s->hp->n_embd, F = s->f_max;
    eng_mm_job *jobs = s->bat.jobs; /* [2E + 2] >= 2 (k + 1) */
    for (int i = 0; i < n; i++) {
        int j = j0 + i; /* buffer slot of this matrix set */
        jobs[2 * i] = dv(job_m(&m[i][0]), &b->xv_in, b->g + j * F);
        jobs[2 * i + 1] = dv(job_m(&m[i][1]), &b->xv_in, b->u + j * F);
    }
    eng_mm_decode(s, jobs, 2 * n);
    for (int i = 0; i < n; i++) {
        int j = j0 + i;
        eng_swiglu(b->g + j * F, b->u + j * F, m[i][0].n_out);
        eng_xvec_prepare(s->kern, &b->xv_h[j], b->g + j * F, m[i][0].n_out);
        jobs[i] = dv(job_m(&m[i][2]), &b->xv_h[j], b->o + j * d);
    }
    eng_mm_decode(s, jobs, n);
}

static eng_expert_mat mat_of(eng_tref t)
{
    return (eng_expert_mat){.data = t->data, .type = t->type, .n_in = t->ne[0],
                            .n_out = t->ne[1], .row_bytes = t->row_bytes,
                            .file_offset = t->file_offset};
}

static void emit_routing(eng_session *s, int il, int64_t pos, int32_t token, int k,
                         const int32_t *ids, const float *w, bool is_prefill)
{
    if (!s->hooks || !s->hooks->routing)
        return;
    eng_routing_event ev = {.layer = il, .pos = pos, .token = token, .top_k = k,
                            .experts = ids, .weights = w, .is_prefill = is_prefill};
    s->hooks->routing(s->hooks->user, &ev);
}

/* Pre-gating (Pre-gated MoE, HOBBIT, AdapMoE): the routers of layers il+1
 * .. il+N applied to layer il's post-attention hidden state predict those
 * layers' experts; the store may prefetch them while layer il and the next
 * ones compute (N = eng_store_hint_ahead, at most n_layer - 1; with wrap,
 * layers past the last are the first layers of the next token). Nearest
 * first, so the nearest loads queue first. Uses tmp, rl, rp and xv_pg
 * only, which hold nothing live here, so outputs do not change. */
static void dec_pregate(eng_session *s, int il)
{
    const eng_hparams *hp = s->hp;
    bool wrap = false;
    int ahead = eng_store_hint_ahead(s->store, &wrap);
    if (ahead <= 0)
        return;
    if (ahead > hp->n_layer - 1)
        ahead = (int)hp->n_layer - 1;
    eng_dec_buf *b = &s->dec;
    const int k = (int)hp->n_expert_used;
    int32_t ids[64];
    float w[64];
    for (int d = 1; d <= ahead; d++) {
        int nl = il + d;
        int64_t pos = s->pos;
        if (nl >= hp->n_layer) {
            if (!wrap)
                return;
            nl -= (int)hp->n_layer;
            pos++;
        }
        const eng_layer *ln = &s->m->layers[nl];
        eng_rmsnorm(b->tmp, b->x, ln->ffn_norm->data, hp->n_embd, hp->eps);
        eng_xvec_prepare(s->kern, &b->xv_pg, b->tmp, hp->n_embd);
        eng_mm_job j = dv(job_t(ln->router), &b->xv_pg, b->rl);
        eng_mm_decode(s, &j, 1);
        eng_softmax(b->rp, b->rl, hp->n_expert);
        eng_topk(b->rp, hp->n_expert, k, s->arch->norm_topk, ids, w);
        eng_store_hint(s->store, nl, ids, k, pos);
    }
}

/* The FFN's input: ffn norm of the residual stream, quantized once for the
 * router and the experts. Runs inside the first FFN region (router, or
 * expert_ffn of a dense layer), as engine/hooks.h documents. */
static void dec_ffn_input(eng_session *s, const eng_layer *l)
{
    eng_dec_buf *b = &s->dec;
    eng_rmsnorm(b->xn, b->x, l->ffn_norm->data, s->hp->n_embd, s->hp->eps);
    eng_xvec_prepare(s->kern, &b->xv_in, b->xn, s->hp->n_embd);
}

static int dec_moe(eng_session *s, int il, int32_t token, bool is_prefill, eng_err *err)
{
    const eng_layer *l = &s->m->layers[il];
    const eng_hparams *hp = s->hp;
    eng_dec_buf *b = &s->dec;
    const int k = (int)hp->n_expert_used;
    int32_t ids[64];
    float w[64];
    REGION_BEGIN(s, ENG_REGION_ROUTER);
    dec_ffn_input(s, l);
    eng_mm_job jr = dv(job_t(l->router), &b->xv_in, b->rl);
    eng_mm_decode(s, &jr, 1);
    eng_softmax(b->rp, b->rl, hp->n_expert);
    eng_topk(b->rp, hp->n_expert, k, s->arch->norm_topk, ids, w);
    emit_routing(s, il, s->pos, token, k, ids, w, is_prefill);
    /* prepare first: the store then knows what layer il needs before any
     * prediction asks it for a slot (and a sequence start empties the
     * cache before, not after, the first hints) */
    eng_store_prepare(s->store, il, ids, k, s->pos);
    dec_pregate(s, il);
    REGION_END(s, ENG_REGION_ROUTER);

    REGION_BEGIN(s, ENG_REGION_EXPERT_FFN);
    eng_expert_weights ew[64];
    eng_expert_mat mats[64][3];
    const int held = eng_store_max_held(s->store);
    int rc = ENG_OK;
    /* groups of at most `held` experts in router order (a small cache) */
    for (int j0 = 0; j0 < k && !rc; j0 += held) {
        int n = k - j0 < held ? k - j0 : held, got = 0;
        for (; got < n; got++) {
            int j = j0 + got;
            if ((rc = eng_store_acquire(s->store, il, ids[j], s->pos, &ew[j], err)))
                break;
            mats[j][0] = ew[j].gate;
            mats[j][1] = ew[j].up;
            mats[j][2] = ew[j].down;
        }
        if (!rc)
            dec_ffn_run(s, mats + j0, n, j0);
        for (int j = j0; j < j0 + got; j++)
            eng_store_release(s->store, &ew[j]);
    }
    if (!rc) {
        /* y = sum_j w_j * out_j in router order (ggml: mul, then view adds) */
        memset(b->tmp, 0, (size_t)hp->n_embd * sizeof(float));
        for (int j = 0; j < k; j++)
            for (int64_t i = 0; i < hp->n_embd; i++)
                b->tmp[i] += w[j] * b->o[j * hp->n_embd + i];
    }
    REGION_END(s, ENG_REGION_EXPERT_FFN);
    return rc;
}

static void dec_shared(eng_session *s, int il)
{
    const eng_layer *l = &s->m->layers[il];
    eng_dec_buf *b = &s->dec;
    const int64_t d = s->hp->n_embd;
    REGION_BEGIN(s, ENG_REGION_SHARED_EXPERT);
    eng_expert_mat m[1][3] = {{mat_of(l->gate_sh), mat_of(l->up_sh), mat_of(l->down_sh)}};
    dec_ffn_run(s, m, 1, 0);
    const float *wg = l->shexp_gate->data;
    float g = 0;
    for (int64_t i = 0; i < d; i++)
        g += wg[i] * b->xn[i];
    const float sg = eng_sigmoid(g);
    for (int64_t i = 0; i < d; i++)
        b->tmp[i] += sg * b->o[i];
    REGION_END(s, ENG_REGION_SHARED_EXPERT);
}

static int dec_ffn(eng_session *s, int il, int32_t token, bool is_prefill, eng_err *err)
{
    const eng_layer *l = &s->m->layers[il];
    eng_dec_buf *b = &s->dec;
    const int64_t d = s->hp->n_embd;
    if (s->hp->n_expert == 0) {
        REGION_BEGIN(s, ENG_REGION_EXPERT_FFN);
        dec_ffn_input(s, l);
        eng_expert_mat m[1][3] = {{mat_of(l->ffn_gate), mat_of(l->ffn_up), mat_of(l->ffn_down)}};
        dec_ffn_run(s, m, 1, 0);
        memcpy(b->tmp, b->o, (size_t)d * sizeof(float));
        REGION_END(s, ENG_REGION_EXPERT_FFN);
    } else {
        int rc = dec_moe(s, il, token, is_prefill, err);
        if (rc)
            return rc;
        if (s->arch->shared_expert)
            dec_shared(s, il);
    }
    for (int64_t i = 0; i < d; i++)
        b->x[i] += b->tmp[i];
    return ENG_OK;
}

static void embed_row(eng_session *s, int32_t token, float *dst)
{
    eng_tref te = s->m->tok_embd;
    const void *row = (const char *)te->data + (uint64_t)token * te->row_bytes;
    (void)eng_dequant_rows(s->kern, te->type, row, s->hp->n_embd, 0, 1, dst);
}

static void lm_head(eng_session *s, const float *x)
{
    eng_dec_buf *b = &s->dec;
    REGION_BEGIN(s, ENG_REGION_LM_HEAD);
    eng_rmsnorm(b->xn, x, s->m->output_norm->data, s->hp->n_embd, s->hp->eps);
    eng_xvec_prepare(s->kern, &b->xv_in, b->xn, s->hp->n_embd);
    eng_mm_job j = dv(job_t(s->m->output), &b->xv_in, s->logits);
    eng_mm_decode(s, &j, 1);
    REGION_END(s, ENG_REGION_LM_HEAD);
}

int eng_forward_token(eng_session *s, int32_t token, bool is_prefill, eng_err *err)
{
    eng_dec_buf *b = &s->dec;
    REGION_BEGIN(s, ENG_REGION_EMBED);
    embed_row(s, token, b->x);
    eng_rope_table(s->rope_cs, s->pos, s->hp->n_rot, s->hp->rope_base);
    REGION_END(s, ENG_REGION_EMBED);
    for (int il = 0; il < s->hp->n_layer; il++) {
        REGION_BEGIN(s, ENG_REGION_ATTENTION);
        dec_attention(s, il);
        REGION_END(s, ENG_REGION_ATTENTION);
        int rc = dec_ffn(s, il, token, is_prefill, err);
        if (rc)
            return rc;
    }
    lm_head(s, b->x);
    ENG_HOOK(s->hooks, token_done, s->pos);
    s->pos++;
    return ENG_OK;
}

/* ---- prefill: a batch of T tokens --------------------------------------- */

typedef struct bat_att_ctx {
    eng_session *s;
    int il;
    int64_t T;
} bat_att_ctx;

static void bat_att_task(void *ctx, int task, int thread)
{
    bat_att_ctx *c = ctx;
    eng_session *s = c->s;
    const int64_t hd = s->hp->head_dim, h = task / c->T, t = task % c->T;
    float *q = s->bat.q + t * s->n_q + h * hd;
    attend_head(s, c->il, h, q, s->pos + t, s->bat.att_scores + (int64_t)thread * s->n_ctx,
                s->bat.att + t * s->n_q + h * hd);
}

static void bat_attention(eng_session *s, int il, int64_t T)
{
    const eng_layer *l = &s->m->layers[il];
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd;
    for (int64_t t = 0; t < T; t++)
        eng_rmsnorm(b->xn + t * d, b->x + t * d, l->attn_norm->data, d, s->hp->eps);
    eng_mm_job jobs[3] = {bt(job_t(l->wq), b->xn, T, d, b->q, s->n_q),
                          bt(job_t(l->wk), b->xn, T, d, b->k, s->n_kv),
                          bt(job_t(l->wv), b->xn, T, d, b->v, s->n_kv)};
    eng_mm_batch(s, jobs, 3);
    for (int64_t t = 0; t < T; t++)
        qk_finish(s, l, il, b->q + t * s->n_q, b->k + t * s->n_kv, b->v + t * s->n_kv,
                  s->pos + t, s->rope_cs + t * s->hp->n_rot);
    bat_att_ctx c = {s, il, T};
    eng_pool_run(s->pool, bat_att_task, &c, (int)(s->hp->n_head * T));
    eng_mm_job jo = bt(job_t(l->wo), b->att, T, s->n_q, b->tmp, d);
    eng_mm_batch(s, &jo, 1);
    for (int64_t t = 0; t < T; t++) {
        add_bias(b->tmp + t * d, l->bo, d);
        for (int64_t i = 0; i < d; i++)
            b->x[t * d + i] += b->tmp[t * d + i];
    }
}

/* SwiGLU FFN over rows: G/U = X W^T, H = silu(G) * U, Y = H Wd^T. */
static void bat_dense_ffn(eng_session *s, const eng_expert_mat m[3], const float *X,
                          int64_t T, float *g, float *u, float *Y)
{
    const int64_t d = s->hp->n_embd, F = m[0].n_out;
    eng_mm_job jobs[2] = {bt(job_m(&m[0]), X, T, d, g, F), bt(job_m(&m[1]), X, T, d, u, F)};
    eng_mm_batch(s, jobs, 2);
    eng_swiglu(g, u, T * F);
    eng_mm_job jd = bt(job_m(&m[2]), g, T, F, Y, d);
    eng_mm_batch(s, &jd, 1);
}

static void bat_route(eng_session *s, int il, const int32_t *tokens, int64_t T)
{
    const eng_layer *l = &s->m->layers[il];
    const eng_hparams *hp = s->hp;
    eng_bat_buf *b = &s->bat;
    const int k = (int)hp->n_expert_used;
    eng_mm_job jr = bt(job_t(l->router), b->xn, T, hp->n_embd, b->rl, hp->n_expert);
    eng_mm_batch(s, &jr, 1);
    for (int64_t t = 0; t < T; t++) {
        eng_softmax(s->dec.rp, b->rl + t * hp->n_expert, hp->n_expert);
        eng_topk(s->dec.rp, hp->n_expert, k, s->arch->norm_topk, b->sel + t * k, b->w + t * k);
        emit_routing(s, il, s->pos + t, tokens[t], k, b->sel + t * k, b->w + t * k, true);
    }
}

/* Groups the batch's (token, slot) pairs by expert: rows offset[e] ..
 * offset[e] + count[e] of xg hold expert e's inputs, in token order. */
static int bat_group(eng_session *s, int64_t T, int32_t *used)
{
    const eng_hparams *hp = s->hp;
    eng_bat_buf *b = &s->bat;
    const int k = (int)hp->n_expert_used;
    const int64_t d = hp->n_embd;
    memset(b->count, 0, (size_t)hp->n_expert * sizeof *b->count);
    for (int64_t i = 0; i < T * k; i++)
        b->count[b->sel[i]]++;
    int n_used = 0, off = 0;
    for (int e = 0; e < hp->n_expert; e++) {
        b->offset[e] = off;
        off += b->count[e];
        if (b->count[e])
            used[n_used++] = e;
    }
    memset(b->count, 0, (size_t)hp->n_expert * sizeof *b->count);
    for (int64_t i = 0; i < T * k; i++) {
        int e = b->sel[i];
        int row = b->offset[e] + b->count[e]++;
        b->row_of[i] = row;
        memcpy(b->xg + (int64_t)row * d, b->xn + (i / k) * d, (size_t)d * sizeof(float));
    }
    return n_used;
}

static void bat_experts_compute(eng_session *s, const int32_t *used, int n_used)
{
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd, F = s->hp->n_ff_exp, FM = s->f_max;
    eng_mm_job *jobs = b->jobs;
    for (int i = 0; i < n_used; i++) {
        int e = used[i];
        int64_t off = b->offset[e], c = b->count[e];
        jobs[2 * i] = bt(job_m(&b->ew[e].gate), b->xg + off * d, c, d, b->g + off * FM, FM);
        jobs[2 * i + 1] = bt(job_m(&b->ew[e].up), b->xg + off * d, c, d, b->u + off * FM, FM);
    }
    eng_mm_batch(s, jobs, 2 * n_used);
    /* used[] ascends, so its experts' rows are contiguous from offset[used[0]] */
    int64_t r0 = b->offset[used[0]], rows = 0;
    for (int i = 0; i < n_used; i++)
        rows += b->count[used[i]];
    for (int64_t r = r0; r < r0 + rows; r++)
        eng_swiglu(b->g + r * FM, b->u + r * FM, F);
    for (int i = 0; i < n_used; i++) {
        int e = used[i];
        int64_t off = b->offset[e], c = b->count[e];
        jobs[i] = bt(job_m(&b->ew[e].down), b->g + off * FM, c, FM, b->d + off * d, d);
    }
    eng_mm_batch(s, jobs, n_used);
}

/* ffn norm of every token's residual stream, inside the first FFN region
 * (as dec_ffn_input). */
static void bat_ffn_input(eng_session *s, int il, int64_t T)
{
    const eng_layer *l = &s->m->layers[il];
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd;
    for (int64_t t = 0; t < T; t++)
        eng_rmsnorm(b->xn + t * d, b->x + t * d, l->ffn_norm->data, d, s->hp->eps);
}

static int bat_moe(eng_session *s, int il, const int32_t *tokens, int64_t T, eng_err *err)
{
    const eng_hparams *hp = s->hp;
    eng_bat_buf *b = &s->bat;
    const int k = (int)hp->n_expert_used;
    const int64_t d = hp->n_embd;
    REGION_BEGIN(s, ENG_REGION_ROUTER);
    bat_ffn_input(s, il, T);
    bat_route(s, il, tokens, T);
    REGION_END(s, ENG_REGION_ROUTER);

    REGION_BEGIN(s, ENG_REGION_EXPERT_FFN);
    int32_t *used = b->used;
    int n_used = bat_group(s, T, used), rc = ENG_OK;
    const int held = eng_store_max_held(s->store);
    eng_store_prepare(s->store, il, used, n_used, s->pos);
    for (int i0 = 0; i0 < n_used && !rc; i0 += held) {
        int n = n_used - i0 < held ? n_used - i0 : held, got = 0;
        for (; got < n; got++) {
            int e = used[i0 + got];
            if ((rc = eng_store_acquire(s->store, il, e, s->pos, &b->ew[e], err)))
                break;
        }
        if (!rc)
            bat_experts_compute(s, used + i0, n);
        for (int i = i0; i < i0 + got; i++)
            eng_store_release(s->store, &b->ew[used[i]]);
    }
    if (!rc) {
        for (int64_t t = 0; t < T; t++) {
            float *y = b->tmp + t * d;
            memset(y, 0, (size_t)d * sizeof(float));
            for (int j = 0; j < k; j++) {
                const float wj = b->w[t * k + j];
                const float *o = b->d + (int64_t)b->row_of[t * k + j] * d;
                for (int64_t i = 0; i < d; i++)
                    y[i] += wj * o[i];
            }
        }
    }
    REGION_END(s, ENG_REGION_EXPERT_FFN);
    return rc;
}

static void bat_shared(eng_session *s, int il, int64_t T)
{
    const eng_layer *l = &s->m->layers[il];
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd;
    REGION_BEGIN(s, ENG_REGION_SHARED_EXPERT);
    eng_expert_mat m[3] = {mat_of(l->gate_sh), mat_of(l->up_sh), mat_of(l->down_sh)};
    bat_dense_ffn(s, m, b->xn, T, b->gs, b->us, b->ds);
    const float *wg = l->shexp_gate->data;
    for (int64_t t = 0; t < T; t++) {
        float g = 0;
        for (int64_t i = 0; i < d; i++)
            g += wg[i] * b->xn[t * d + i];
        const float sg = eng_sigmoid(g);
        for (int64_t i = 0; i < d; i++)
            b->tmp[t * d + i] += sg * b->ds[t * d + i];
    }
    REGION_END(s, ENG_REGION_SHARED_EXPERT);
}

static int bat_ffn(eng_session *s, int il, const int32_t *tokens, int64_t T, eng_err *err)
{
    const eng_layer *l = &s->m->layers[il];
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd;
    if (s->hp->n_expert == 0) {
        REGION_BEGIN(s, ENG_REGION_EXPERT_FFN);
        bat_ffn_input(s, il, T);
        eng_expert_mat m[3] = {mat_of(l->ffn_gate), mat_of(l->ffn_up), mat_of(l->ffn_down)};
        bat_dense_ffn(s, m, b->xn, T, b->g, b->u, b->tmp);
        REGION_END(s, ENG_REGION_EXPERT_FFN);
    } else {
        int rc = bat_moe(s, il, tokens, T, err);
        if (rc)
            return rc;
        if (s->arch->shared_expert)
            bat_shared(s, il, T);
    }
    for (int64_t i = 0; i < T * d; i++)
        b->x[i] += b->tmp[i];
    return ENG_OK;
}

int eng_forward_batch(eng_session *s, const int32_t *tokens, int64_t T, eng_err *err)
{
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd;
    REGION_BEGIN(s, ENG_REGION_EMBED);
    for (int64_t t = 0; t < T; t++)
        embed_row(s, tokens[t], b->x + t * d);
    REGION_END(s, ENG_REGION_EMBED);
    for (int64_t t = 0; t < T; t++)
        eng_rope_table(s->rope_cs + t * s->hp->n_rot, s->pos + t, s->hp->n_rot,
                       s->hp->rope_base);
    for (int il = 0; il < s->hp->n_layer; il++) {
        REGION_BEGIN(s, ENG_REGION_ATTENTION);
        bat_attention(s, il, T);
        REGION_END(s, ENG_REGION_ATTENTION);
        int rc = bat_ffn(s, il, tokens, T, err);
        if (rc)
            return rc;
    }
    lm_head(s, b->x + (T - 1) * d);
    for (int64_t t = 0; t < T; t++)
        ENG_HOOK(s->hooks, token_done, s->pos + t);
    s->pos += T;
    return ENG_OK;
}
