/*
 * ffn.c — the feed-forward half of a layer: x += FFN(RMSNorm(x) * ffn_norm),
 * where FFN is the layer's dense FFN or its mixture of experts (router,
 * routed experts through the expert store, shared expert).
 *
 * Decode (one token) and prefill (T tokens) differ only in how the matrices
 * are multiplied (matvec on the stored format vs products of each weight
 * tile with all the rows that meet it, tokens grouped by expert, gemm.h);
 * routing, the activation, the shared
 * expert and the weighted sum are the row-wise helpers of ops.c, called by
 * both, so every architecture trait is applied in one place.
 *
 * The routed experts of a layer are reached only through the expert store
 * (store.h), which numbers MoE layers among themselves (eng_layer.
 * moe_index): prepare, then acquire, compute and release them in groups of
 * at most eng_store_max_held (all at once with the memory store, one by one
 * with a small tiered cache); outputs do not depend on the grouping.
 */
#include "engine/forward_impl.h"

#include <math.h>
#include <string.h>

/* ---- shared pieces -------------------------------------------------------- */

static void emit_routing(eng_session *s, const eng_layer *l, int il, int64_t pos,
                         int32_t token, const int32_t *ids, const float *w, bool is_prefill)
{
    if (!s->hooks || !s->hooks->routing)
        return;
    eng_routing_event ev = {.layer = l->moe_index, .model_layer = il, .pos = pos,
                            .token = token, .top_k = (int)s->hp->n_expert_used,
                            .experts = ids, .weights = w, .is_prefill = is_prefill};
    s->hooks->routing(s->hooks->user, &ev);
}

static const float *sel_bias(const eng_layer *l)
{
    return l->exp_probs_b ? l->exp_probs_b->data : NULL;
}

/* Routing of one token at MoE layer l: the one place where a session's
 * expert subset (eng_session_opts.expert_keep) restricts the router. */
static void route(const eng_session *s, const eng_layer *l, const float *logits, float *scratch,
                  int32_t *ids, float *w)
{
    const uint8_t *keep = s->keep ? s->keep + (size_t)l->moe_index * s->hp->n_expert : NULL;
    eng_route_row_masked(s->vec, s->hp, logits, sel_bias(l), keep, scratch, ids, w);
}

/* y += the shared expert's output sh for the token whose FFN input is xn. */
static void shared_combine_row(const eng_session *s, const eng_layer *l, const float *xn,
                               const float *sh, float *y)
{
    const int64_t d = s->hp->n_embd;
    if (s->tr->shexp == ENG_SHEXP_GATED) {
        /* qwen2moe.cpp: the gate's logit is a mul_mat of an f32 row
         * (ggml_vec_dot_f32), its "sigmoid" silu(z) / z (where z = 0
         * gives llama.cpp a NaN, this gives the limit 1/2) */
        const float z = s->vec->dot(l->shexp_gate->data, xn, d);
        const float g = z != 0.0f ? z / (1.0f + expf(-z)) / z : 0.5f;
        for (int64_t i = 0; i < d; i++)
            y[i] += g * sh[i];
    } else {
        for (int64_t i = 0; i < d; i++)
            y[i] += sh[i];
    }
}

/* ---- decode: one token ---------------------------------------------------- */

/* One FFN's matrices: gate, up, down, and where a file has them the
 * experts' biases (eng_slice_role order), n of them. */
typedef struct ffn_mats {
    eng_expert_mat mat[ENG_SLICE_MAX];
    int n;
} ffn_mats;

static ffn_mats mats_of(eng_tref gate, eng_tref up, eng_tref down)
{
    return (ffn_mats){.mat = {eng_mat_of(gate), eng_mat_of(up), eng_mat_of(down)}, .n = 3};
}

/* y[i] += bias slice (f32) when the FFN has one (build_moe_ffn: ggml_add_id). */
static void add_slice(float *y, const ffn_mats *m, eng_slice_role r, int64_t n)
{
    if (m->n > (int)r) {
        const float *b = m->mat[r].data;
        for (int64_t i = 0; i < n; i++)
            y[i] += b[i];
    }
}

/* FFNs of n matrix sets (routed experts, shared or dense) on the prepared
 * xv_in: set i's output into b->o + (j0 + i) * n_embd. Each output row is
 * one dot product, so the grouping of sets does not change it. */
static void dec_ffn_run(eng_session *s, const ffn_mats *m, int n, int j0)
{
    eng_dec_buf *b = &s->dec;
    const int64_t d = s->hp->n_embd, F = s->f_max;
    eng_mm_job *jobs = s->bat.jobs; /* [2E + 2] >= 2 (k + 1) */
    for (int i = 0; i < n; i++) {
        int j = j0 + i; /* buffer slot of this matrix set */
        jobs[2 * i] = eng_job_dec(eng_job_of_mat(&m[i].mat[0]), &b->xv_in, b->g + j * F);
        jobs[2 * i + 1] = eng_job_dec(eng_job_of_mat(&m[i].mat[1]), &b->xv_in, b->u + j * F);
    }
    eng_mm_decode(s, jobs, 2 * n);
    for (int i = 0; i < n; i++) {
        int j = j0 + i;
        const int64_t f = m[i].mat[0].n_out;
        add_slice(b->g + j * F, &m[i], ENG_SLICE_GATE_BIAS, f);
        add_slice(b->u + j * F, &m[i], ENG_SLICE_UP_BIAS, f);
        eng_act_row(s->vec, s->tr->act, b->g + j * F, b->u + j * F, f);
        eng_xvec_prepare(s->kern, &b->xv_h[j], b->g + j * F, f);
        jobs[i] = eng_job_dec(eng_job_of_mat(&m[i].mat[2]), &b->xv_h[j], b->o + j * d);
    }
    eng_mm_decode(s, jobs, n);
    for (int i = 0; i < n; i++)
        add_slice(b->o + (j0 + i) * d, &m[i], ENG_SLICE_DOWN_BIAS, d);
}

/* Pre-gating (Pre-gated MoE, HOBBIT, AdapMoE): the routers of MoE layers
 * j+1 .. j+N applied to MoE layer j's post-attention hidden state predict
 * those layers' experts; the store may prefetch them while layer j and the
 * next ones compute (N = eng_store_hint_ahead, at most n_layer_moe - 1;
 * with wrap, layers past the last are the first of the next token).
 * Nearest first, so the nearest loads queue first. Uses tmp, rl, rs and
 * xv_pg only, which hold nothing live here, so outputs do not change. */
static void dec_pregate(eng_session *s, int j)
{
    const eng_hparams *hp = s->hp;
    bool wrap = false;
    int ahead = eng_store_hint_ahead(s->store, &wrap);
    if (ahead <= 0)
        return;
    const int L = (int)hp->n_layer_moe;
    if (ahead > L - 1)
        ahead = L - 1;
    eng_dec_buf *b = &s->dec;
    int32_t ids[ENG_MAX_EXPERT_USED];
    float w[ENG_MAX_EXPERT_USED];
    for (int dl = 1; dl <= ahead; dl++) {
        int nj = j + dl;
        int64_t pos = s->pos;
        if (nj >= L) {
            if (!wrap)
                return;
            nj -= L;
            pos++;
        }
        const eng_layer *ln = &s->m->layers[s->m->moe_layer[nj]];
        eng_rmsnorm(b->tmp, b->x, ln->ffn_norm->data, hp->n_embd, hp->eps);
        eng_xvec_prepare(s->kern, &b->xv_pg, b->tmp, hp->n_embd);
        eng_mm_job jr = eng_job_dec(eng_job_of(ln->router), &b->xv_pg, b->rl);
        eng_mm_decode(s, &jr, 1);
        eng_add_bias(b->rl, ln->router_b, hp->n_expert);
        route(s, ln, b->rl, b->rs, ids, w);
        if (!eng_store_hint(s->store, nj, ids, w, (int)hp->n_expert_used, pos))
            return; /* the store wants no deeper prediction (adaptive depth) */
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

static int dec_experts(eng_session *s, const eng_layer *l, const int32_t *ids, const float *w,
                       eng_err *err)
{
    eng_dec_buf *b = &s->dec;
    const int k = (int)s->hp->n_expert_used, j_moe = l->moe_index;
    eng_expert_weights ew[ENG_MAX_EXPERT_USED];
    ffn_mats mats[ENG_MAX_EXPERT_USED];
    const int held = eng_store_max_held(s->store);
    int rc = ENG_OK;
    /* groups of at most `held` experts in router order (a small cache) */
    for (int j0 = 0; j0 < k && !rc; j0 += held) {
        int n = k - j0 < held ? k - j0 : held, got = 0;
        for (; got < n; got++) {
            int j = j0 + got;
            if ((rc = eng_store_acquire(s->store, j_moe, ids[j], s->pos, &ew[j], err)))
                break;
            memcpy(mats[j].mat, ew[j].mat, sizeof mats[j].mat);
            mats[j].n = ew[j].n_slices;
        }
        if (!rc)
            dec_ffn_run(s, mats + j0, n, j0);
        for (int j = j0; j < j0 + got; j++)
            eng_store_release(s->store, &ew[j]);
    }
    if (rc)
        return rc;
    const float *outs[ENG_MAX_EXPERT_USED];
    for (int j = 0; j < k; j++)
        outs[j] = b->o + j * s->hp->n_embd;
    eng_combine_row(b->tmp, k, w, outs, s->hp->n_embd);
    return ENG_OK;
}

static int dec_moe(eng_session *s, int il, int32_t token, bool is_prefill, eng_err *err)
{
    const eng_layer *l = &s->m->layers[il];
    eng_dec_buf *b = &s->dec;
    const int k = (int)s->hp->n_expert_used;
    int32_t ids[ENG_MAX_EXPERT_USED];
    float w[ENG_MAX_EXPERT_USED];
    ENG_REGION_BEGIN(s, ENG_REGION_ROUTER);
    dec_ffn_input(s, l);
    eng_mm_job jr = eng_job_dec(eng_job_of(l->router), &b->xv_in, b->rl);
    eng_mm_decode(s, &jr, 1);
    eng_add_bias(b->rl, l->router_b, s->hp->n_expert);
    route(s, l, b->rl, b->rs, ids, w);
    emit_routing(s, l, il, s->pos, token, ids, w, is_prefill);
    /* prepare first: the store then knows what layer il needs before any
     * prediction asks it for a slot (and a sequence start empties the
     * cache before, not after, the first hints) */
    eng_store_prepare_w(s->store, l->moe_index, ids, w, k, s->pos);
    dec_pregate(s, l->moe_index);
    ENG_REGION_END(s, ENG_REGION_ROUTER);

    ENG_REGION_BEGIN(s, ENG_REGION_EXPERT_FFN);
    int rc = dec_experts(s, l, ids, w, err);
    ENG_REGION_END(s, ENG_REGION_EXPERT_FFN);
    if (rc || s->tr->shexp == ENG_SHEXP_NONE)
        return rc;

    ENG_REGION_BEGIN(s, ENG_REGION_SHARED_EXPERT);
    const ffn_mats m = mats_of(l->gate_sh, l->up_sh, l->down_sh);
    dec_ffn_run(s, &m, 1, 0);
    shared_combine_row(s, l, b->xn, b->o, b->tmp);
    ENG_REGION_END(s, ENG_REGION_SHARED_EXPERT);
    return ENG_OK;
}

int eng_ffn_decode(eng_session *s, int il, int32_t token, bool is_prefill, eng_err *err)
{
    const eng_layer *l = &s->m->layers[il];
    eng_dec_buf *b = &s->dec;
    const int64_t d = s->hp->n_embd;
    if (l->ffn == ENG_FFN_DENSE) {
        ENG_REGION_BEGIN(s, ENG_REGION_EXPERT_FFN);
        dec_ffn_input(s, l);
        const ffn_mats m = mats_of(l->ffn_gate, l->ffn_up, l->ffn_down);
        dec_ffn_run(s, &m, 1, 0);
        memcpy(b->tmp, b->o, (size_t)d * sizeof(float));
        ENG_REGION_END(s, ENG_REGION_EXPERT_FFN);
    } else {
        int rc = dec_moe(s, il, token, is_prefill, err);
        if (rc)
            return rc;
    }
    for (int64_t i = 0; i < d; i++)
        b->x[i] += b->tmp[i];
    return ENG_OK;
}

/* ---- prefill: a batch of T tokens ----------------------------------------- */

/* FFN over rows: G/U = X W^T, H = act(G, U), Y = H Wd^T. */
static void bat_dense_ffn(eng_session *s, const eng_expert_mat m[3], const float *X,
                          int64_t T, float *g, float *u, float *Y)
{
    const int64_t d = s->hp->n_embd, F = m[0].n_out;
    eng_mm_job jobs[2] = {eng_job_bat(eng_job_of_mat(&m[0]), X, T, d, g, F),
                          eng_job_bat(eng_job_of_mat(&m[1]), X, T, d, u, F)};
    eng_mm_batch(s, jobs, 2);
    for (int64_t t = 0; t < T; t++)
        eng_act_row(s->vec, s->tr->act, g + t * F, u + t * F, F);
    eng_mm_job jd = eng_job_bat(eng_job_of_mat(&m[2]), g, T, F, Y, d);
    eng_mm_batch(s, &jd, 1);
}

static void bat_route(eng_session *s, int il, const int32_t *tokens, int64_t T)
{
    const eng_layer *l = &s->m->layers[il];
    const eng_hparams *hp = s->hp;
    eng_bat_buf *b = &s->bat;
    const int k = (int)hp->n_expert_used;
    eng_mm_job jr = eng_job_bat(eng_job_of(l->router), b->xn, T, hp->n_embd, b->rl,
                                hp->n_expert);
    eng_mm_batch(s, &jr, 1);
    for (int64_t t = 0; t < T; t++) {
        eng_add_bias(b->rl + t * hp->n_expert, l->router_b, hp->n_expert);
        route(s, l, b->rl + t * hp->n_expert, s->dec.rs, b->sel + t * k, b->w + t * k);
        emit_routing(s, l, il, s->pos + t, tokens[t], b->sel + t * k, b->w + t * k, true);
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
        jobs[2 * i] = eng_job_bat(eng_job_of_mat(&b->ew[e].mat[ENG_SLICE_GATE]), b->xg + off * d, c, d,
                                  b->g + off * FM, FM);
        jobs[2 * i + 1] = eng_job_bat(eng_job_of_mat(&b->ew[e].mat[ENG_SLICE_UP]), b->xg + off * d, c, d,
                                      b->u + off * FM, FM);
    }
    eng_mm_batch(s, jobs, 2 * n_used);
    /* used[] ascends, so its experts' rows are contiguous from offset[used[0]] */
    int64_t r0 = b->offset[used[0]], rows = 0;
    for (int i = 0; i < n_used; i++)
        rows += b->count[used[i]];
    for (int i = 0; i < n_used; i++) { /* each expert's rows: its biases */
        const eng_expert_weights *ew = &b->ew[used[i]];
        if (ew->n_slices <= ENG_SLICE_DOWN_BIAS)
            break;
        const float *bg = ew->mat[ENG_SLICE_GATE_BIAS].data, *bu = ew->mat[ENG_SLICE_UP_BIAS].data;
        for (int64_t r = b->offset[used[i]]; r < b->offset[used[i]] + b->count[used[i]]; r++)
            for (int64_t f = 0; f < F; f++) {
                b->g[r * FM + f] += bg[f];
                b->u[r * FM + f] += bu[f];
            }
    }
    for (int64_t r = r0; r < r0 + rows; r++)
        eng_act_row(s->vec, s->tr->act, b->g + r * FM, b->u + r * FM, F);
    for (int i = 0; i < n_used; i++) {
        int e = used[i];
        int64_t off = b->offset[e], c = b->count[e];
        jobs[i] = eng_job_bat(eng_job_of_mat(&b->ew[e].mat[ENG_SLICE_DOWN]), b->g + off * FM, c, FM,
                              b->d + off * d, d);
    }
    eng_mm_batch(s, jobs, n_used);
    for (int i = 0; i < n_used && b->ew[used[i]].n_slices > ENG_SLICE_DOWN_BIAS; i++) {
        const float *bd = b->ew[used[i]].mat[ENG_SLICE_DOWN_BIAS].data;
        for (int64_t r = b->offset[used[i]]; r < b->offset[used[i]] + b->count[used[i]]; r++)
            for (int64_t j = 0; j < d; j++)
                b->d[r * d + j] += bd[j];
    }
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

static int bat_experts(eng_session *s, const eng_layer *l, int64_t T, eng_err *err)
{
    eng_bat_buf *b = &s->bat;
    const int k = (int)s->hp->n_expert_used;
    const int64_t d = s->hp->n_embd;
    int32_t *used = b->used;
    int n_used = bat_group(s, T, used), rc = ENG_OK;
    const int held = eng_store_max_held(s->store);
    eng_store_prepare(s->store, l->moe_index, used, n_used, s->pos);
    for (int i0 = 0; i0 < n_used && !rc; i0 += held) {
        int n = n_used - i0 < held ? n_used - i0 : held, got = 0;
        for (; got < n; got++) {
            int e = used[i0 + got];
            if ((rc = eng_store_acquire(s->store, l->moe_index, e, s->pos, &b->ew[e], err)))
                break;
        }
        if (!rc)
            bat_experts_compute(s, used + i0, n);
        for (int i = i0; i < i0 + got; i++)
            eng_store_release(s->store, &b->ew[used[i]]);
    }
    if (rc)
        return rc;
    const float *outs[ENG_MAX_EXPERT_USED];
    for (int64_t t = 0; t < T; t++) {
        for (int j = 0; j < k; j++)
            outs[j] = b->d + (int64_t)b->row_of[t * k + j] * d;
        eng_combine_row(b->tmp + t * d, k, b->w + t * k, outs, d);
    }
    return ENG_OK;
}

static int bat_moe(eng_session *s, int il, const int32_t *tokens, int64_t T, eng_err *err)
{
    const eng_layer *l = &s->m->layers[il];
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd;
    ENG_REGION_BEGIN(s, ENG_REGION_ROUTER);
    bat_ffn_input(s, il, T);
    bat_route(s, il, tokens, T);
    ENG_REGION_END(s, ENG_REGION_ROUTER);

    ENG_REGION_BEGIN(s, ENG_REGION_EXPERT_FFN);
    int rc = bat_experts(s, l, T, err);
    ENG_REGION_END(s, ENG_REGION_EXPERT_FFN);
    if (rc || s->tr->shexp == ENG_SHEXP_NONE)
        return rc;

    ENG_REGION_BEGIN(s, ENG_REGION_SHARED_EXPERT);
    eng_expert_mat m[3] = {eng_mat_of(l->gate_sh), eng_mat_of(l->up_sh), eng_mat_of(l->down_sh)};
    bat_dense_ffn(s, m, b->xn, T, b->gs, b->us, b->ds);
    for (int64_t t = 0; t < T; t++)
        shared_combine_row(s, l, b->xn + t * d, b->ds + t * d, b->tmp + t * d);
    ENG_REGION_END(s, ENG_REGION_SHARED_EXPERT);
    return ENG_OK;
}

int eng_ffn_batch(eng_session *s, int il, const int32_t *tokens, int64_t T, eng_err *err)
{
    const eng_layer *l = &s->m->layers[il];
    eng_bat_buf *b = &s->bat;
    const int64_t d = s->hp->n_embd;
    if (l->ffn == ENG_FFN_DENSE) {
        ENG_REGION_BEGIN(s, ENG_REGION_EXPERT_FFN);
        bat_ffn_input(s, il, T);
        eng_expert_mat m[3] = {eng_mat_of(l->ffn_gate), eng_mat_of(l->ffn_up),
                               eng_mat_of(l->ffn_down)};
        bat_dense_ffn(s, m, b->xn, T, b->g, b->u, b->tmp);
        ENG_REGION_END(s, ENG_REGION_EXPERT_FFN);
    } else {
        int rc = bat_moe(s, il, tokens, T, err);
        if (rc)
            return rc;
    }
    for (int64_t i = 0; i < T * d; i++)
        b->x[i] += b->tmp[i];
    return ENG_OK;
}
