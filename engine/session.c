/*
 * session.c — session lifetime, buffers, eval/decode and generation (see
 * session.h). The math is in forward.c and ops.c.
 *
 * Invariant: 0 <= pos <= n_ctx; positions [0, pos) of the KV cache hold the
 * evaluated tokens. After a failed eval/decode the cache may hold part of a
 * token: call eng_session_reset before using the session again.
 */
#include "engine/attn_impl.h"

#include <cblas.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

enum { MAX_CTX = 1 << 20, MAX_BATCH = 4096 };

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* calloc of a*b*c floats (or other elements) with overflow checks. */
static void *alloc3(size_t elem, int64_t a, int64_t b, int64_t c)
{
    size_t n;
    if (a < 0 || b < 0 || c < 0 || __builtin_mul_overflow((size_t)a, (size_t)b, &n) ||
        __builtin_mul_overflow(n, (size_t)c, &n) || __builtin_mul_overflow(n, elem, &n))
        return NULL;
    return calloc(n ? n : 1, 1);
}

#define FALLOC(p, a, b, c) (((p) = alloc3(sizeof *(p), (a), (b), (c))) != NULL)

static bool alloc_decode(eng_session *s)
{
    const eng_hparams *hp = s->hp;
    eng_dec_buf *b = &s->dec;
    int64_t d = hp->n_embd, k1 = hp->n_expert_used + 1, E = max64(hp->n_expert, 1);
    if (!FALLOC(b->x, d, 1, 1) || !FALLOC(b->xn, d, 1, 1) || !FALLOC(b->tmp, d, 1, 1) ||
        !FALLOC(b->rl, E, 1, 1) || !FALLOC(b->rs, 2, E, 1) || !FALLOC(b->g, k1, s->f_max, 1) ||
        !FALLOC(b->u, k1, s->f_max, 1) || !FALLOC(b->o, k1, d, 1) || !FALLOC(b->xv_h, k1, 1, 1))
        return false;
    if (eng_xvec_init(&b->xv_in, d, NULL) || eng_xvec_init(&b->xv_pg, d, NULL))
        return false;
    for (int64_t j = 0; j < k1; j++)
        if (eng_xvec_init(&b->xv_h[j], s->f_max, NULL))
            return false;
    return true;
}

static bool alloc_batch(eng_session *s)
{
    const eng_hparams *hp = s->hp;
    eng_bat_buf *b = &s->bat;
    int64_t B = s->n_batch, d = hp->n_embd, k = max64(hp->n_expert_used, 1);
    int64_t E = max64(hp->n_expert, 1), nt = eng_pool_threads(s->pool);
    int64_t S = max64(hp->n_ff_shexp, 1);
    return FALLOC(b->x, B, d, 1) && FALLOC(b->xn, B, d, 1) && FALLOC(b->tmp, B, d, 1) &&
           FALLOC(b->rl, B, E, 1) && FALLOC(b->sel, B, k, 1) && FALLOC(b->w, B, k, 1) &&
           FALLOC(b->row_of, B, k, 1) && FALLOC(b->count, E, 1, 1) &&
           FALLOC(b->offset, E, 1, 1) && FALLOC(b->used, E, 1, 1) &&
           FALLOC(b->xg, B, k, d) && FALLOC(b->g, B, k, s->f_max) &&
           FALLOC(b->u, B, k, s->f_max) && FALLOC(b->d, B, k, d) && FALLOC(b->gs, B, S, 1) &&
           FALLOC(b->us, B, S, 1) && FALLOC(b->ds, B, d, 1) &&
           FALLOC(b->scratch, nt, ENG_GEMM_ROWS, s->in_max) && FALLOC(b->ew, E, 1, 1) &&
           FALLOC(b->jobs, 2 * E + 2, 1, 1);
}

/* The prefill kernels' prepared inputs (gemm.h): any one job (B rows of
 * the widest matrix), and every expert's gate/up or down inputs of a full
 * batch at once (B * k rows, each expert's rows a chunk apart at most);
 * matmul.c splits a call that needs more. The transposed f32 form is the
 * larger. */
static bool alloc_prep(eng_session *s)
{
    const eng_hparams *hp = s->hp;
    eng_bat_buf *b = &s->bat;
    const int64_t B = s->n_batch, k = max64(hp->n_expert_used, 1), E = max64(hp->n_expert, 1);
    const int kc = s->gemm->kc_f > s->gemm->kc ? s->gemm->kc_f : s->gemm->kc;
    const int64_t w = max64(hp->n_embd, hp->n_ff_exp);
    const size_t one = eng_xt_bytes(B, s->in_max, kc) + eng_qx_bytes(B, s->in_max);
    const size_t experts = eng_xt_bytes(B * k + E * kc, w, kc) + eng_qx_bytes(B * k, w);
    b->qx_cap = one > experts ? one : experts;
    if (posix_memalign((void **)&b->qx_buf, 64, b->qx_cap))
        b->qx_buf = NULL;
    return b->qx_buf && FALLOC(b->qx, ENG_QX_MAX, 1, 1) && FALLOC(b->xt, ENG_QX_MAX, 1, 1) &&
           FALLOC(b->qx_of, s->max_jobs, 1, 1) && FALLOC(b->part, s->max_jobs, 1, 1);
}

static bool alloc_session(eng_session *s)
{
    const eng_hparams *hp = s->hp;
    /* the expert groups of a layer, or one job per head (MLA's k_b, v_b) */
    s->max_jobs = (int)(2 * max64(max64(hp->n_expert, hp->n_expert_used + 1), hp->n_head) + 8);
    const bool own_swa = hp->n_swa && hp->rope_swa.base != hp->rope.base;
    if (!FALLOC(s->rope_cs, s->n_batch, hp->n_rot, 1) ||
        (own_swa && !FALLOC(s->rope_cs_swa, s->n_batch, hp->n_rot, 1)))
        return false;
    if (!own_swa)
        s->rope_cs_swa = s->rope_cs;
    return FALLOC(s->logits, hp->n_vocab, 1, 1) &&
           FALLOC(s->mm_first, s->max_jobs + 1, 1, 1) && alloc_decode(s) && alloc_batch(s) &&
           alloc_prep(s);
}

/* The widest row (ne0) of any weight matrix: prefill dequantizes tiles of
 * ENG_GEMM_ROWS such rows, or packs them for the gemm.h kernels. */
_Static_assert(ENG_GEMM_SCRATCH_PER_ELEM * 32 + 64 <= ENG_GEMM_ROWS * 32 * sizeof(float),
               "a thread's scratch holds gemm.h's packed tile for rows of >= 32");
static int64_t widest_row(const eng_model *m)
{
    const struct eng_gguf *g = eng_model_gguf(m);
    int64_t w = 1;
    for (int64_t i = 0; i < eng_gguf_tensor_count(g); i++) {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
        if (t->n_dims >= 2)
            w = max64(w, t->ne[0]);
    }
    return w;
}

static int check_opts(const eng_hparams *hp, const eng_session_opts *o, eng_err *err)
{
    if (o->n_ctx < 0 || o->n_ctx > MAX_CTX)
        return eng_err_set(err, ENG_EINVAL, "context size %" PRId64 " out of range 1..%d",
                           o->n_ctx, MAX_CTX);
    if (o->n_batch < 0 || o->n_batch > MAX_BATCH)
        return eng_err_set(err, ENG_EINVAL, "batch size %" PRId64 " out of range 1..%d",
                           o->n_batch, MAX_BATCH);
    if (hp->n_expert_used > ENG_MAX_EXPERT_USED)
        return eng_err_set(err, ENG_EUNSUPPORTED,
                           "expert_used_count %" PRId64 ": at most %d supported",
                           hp->n_expert_used, ENG_MAX_EXPERT_USED);
    if (o->expert_keep && hp->n_expert == 0)
        return eng_err_set(err, ENG_EINVAL, "expert subset: the model has no experts");
    for (int64_t l = 0; o->expert_keep && l < hp->n_layer_moe; l++) {
        int64_t n = 0;
        for (int64_t e = 0; e < hp->n_expert; e++)
            n += o->expert_keep[l * hp->n_expert + e] != 0;
        if (n < hp->n_expert_used)
            return eng_err_set(err, ENG_EINVAL,
                               "expert subset: MoE layer %" PRId64 " keeps %" PRId64
                               " experts, fewer than the %" PRId64 " a token uses",
                               l, n, hp->n_expert_used);
    }
    return ENG_OK;
}

/* A private copy of the mask, as 0/1. */
static bool copy_keep(eng_session *s, const uint8_t *keep)
{
    if (!keep)
        return true;
    const size_t n = (size_t)s->hp->n_layer_moe * (size_t)s->hp->n_expert;
    if (!(s->keep = malloc(n)))
        return false;
    for (size_t i = 0; i < n; i++)
        s->keep[i] = keep[i] != 0;
    return true;
}

int eng_session_open(eng_session **out, const eng_model *m, const eng_session_opts *opts,
                     eng_err *err)
{
    *out = NULL;
    eng_session_opts o = opts ? *opts : (eng_session_opts){0};
    const eng_hparams *hp = eng_model_hparams(m);
    int rc = check_opts(hp, &o, err);
    if (rc)
        return rc;
    eng_session *s = calloc(1, sizeof *s);
    if (!s)
        return eng_err_set(err, ENG_ENOMEM, "session: out of memory");
    s->m = m;
    s->hp = hp;
    s->tr = &m->arch->traits;
    s->attn = eng_attn_get(s->tr->attn);
    s->n_ctx = o.n_ctx ? o.n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    s->n_batch = o.n_batch ? o.n_batch : 128;
    s->f_max = max64(max64(hp->n_ff_exp, hp->n_ff_shexp), hp->n_layer_dense ? hp->n_ff : 0);
    s->in_max = max64(widest_row(m), 32); /* >= 32: room for gemm.h's scratch */
    eng_simd simd;
    if ((rc = eng_simd_default(&simd, err)) || (rc = eng_pool_open(&s->pool, o.n_threads, err)))
        goto fail;
    s->kern = eng_kernels_get(simd);
    s->vec = eng_vecops_get(simd);
    s->gemm = eng_gemm_get(simd);
    openblas_set_num_threads(1);
    if (o.store) {
        s->store = o.store;
    } else {
        if ((rc = eng_store_open_memory(&s->store, m, err)))
            goto fail;
        s->own_store = true;
    }
    if (!alloc_session(s) || !copy_keep(s, o.expert_keep)) {
        rc = eng_err_set(err, ENG_ENOMEM, "session: out of memory for buffers (context %" PRId64
                         ", batch %" PRId64 ")", s->n_ctx, s->n_batch);
        goto fail;
    }
    if ((rc = s->attn->open(s, err)))
        goto fail;
    eng_session_set_hooks(s, o.hooks);
    *out = s;
    return ENG_OK;
fail:
    eng_session_free(s);
    return rc;
}

static void free_head(eng_session *s)
{
    for (int64_t t = 0; s->head_xv && t < s->n_batch; t++)
        eng_xvec_free(&s->head_xv[t]);
    free(s->head_xv);
    free(s->head_jobs);
    s->head_xv = NULL;
    s->head_jobs = NULL;
}

/* The buffers of the blocked head (forward.c lm_head_rows), on the first
 * eval_logits: sessions that never ask for rows do not pay for them. */
static bool alloc_head(eng_session *s)
{
    s->head_xv = calloc((size_t)s->n_batch, sizeof *s->head_xv);
    s->head_jobs = calloc((size_t)s->max_jobs, sizeof *s->head_jobs);
    bool ok = s->head_xv && s->head_jobs;
    for (int64_t t = 0; ok && t < s->n_batch; t++)
        ok = eng_xvec_init(&s->head_xv[t], s->hp->n_embd, NULL) == ENG_OK;
    if (!ok)
        free_head(s);
    return ok;
}

static void free_bufs(eng_session *s)
{
    eng_dec_buf *d = &s->dec;
    eng_bat_buf *b = &s->bat;
    void *ptrs[] = {d->x, d->xn, d->tmp, d->rl, d->rs, d->g, d->u, d->o, b->x, b->xn, b->tmp,
                    b->rl, b->sel, b->w, b->row_of, b->count, b->offset, b->used, b->xg, b->g,
                    b->u, b->d, b->gs, b->us, b->ds, b->scratch, b->ew, b->jobs, b->qx_buf,
                    b->qx, b->xt, b->qx_of, b->part, s->rope_cs,
                    s->logits, s->mm_first,
                    s->rope_cs_swa != s->rope_cs ? s->rope_cs_swa : NULL};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        free(ptrs[i]);
    free_head(s);
    eng_xvec_free(&d->xv_in);
    eng_xvec_free(&d->xv_pg);
    if (d->xv_h)
        for (int64_t j = 0; j <= s->hp->n_expert_used; j++)
            eng_xvec_free(&d->xv_h[j]);
    free(d->xv_h);
}

void eng_session_free(eng_session *s)
{
    if (!s)
        return;
    if (s->attn)
        s->attn->close(s);
    free_bufs(s);
    if (s->own_store)
        eng_store_free(s->store);
    eng_pool_free(s->pool);
    free(s->keep);
    free(s);
}

void eng_session_set_hooks(eng_session *s, const eng_hooks *hooks)
{
    memset(&s->hooks_copy, 0, sizeof s->hooks_copy);
    if (hooks)
        s->hooks_copy = *hooks;
    s->hooks = hooks ? &s->hooks_copy : NULL;
    eng_store_set_hooks(s->store, hooks);
}

const float *eng_session_logits(const eng_session *s) { return s->logits; }
int64_t eng_session_pos(const eng_session *s) { return s->pos; }
int64_t eng_session_n_ctx(const eng_session *s) { return s->n_ctx; }
int64_t eng_session_n_batch(const eng_session *s) { return s->n_batch; }
int eng_session_threads(const eng_session *s) { return eng_pool_threads(s->pool); }
eng_store *eng_session_store(eng_session *s) { return s->store; }

void eng_session_reset(eng_session *s)
{
    s->pos = 0;
    memset(s->logits, 0, (size_t)s->hp->n_vocab * sizeof(float));
}

int eng_session_rewind(eng_session *s, int64_t pos, eng_err *err)
{
    if (pos < 0 || pos > s->pos)
        return eng_err_set(err, ENG_EINVAL,
                           "rewind to position %" PRId64 ": the KV cache holds %" PRId64
                           " tokens",
                           pos, s->pos);
    /* Positions [pos, old pos) are simply overwritten by the next
     * evaluation: attention reads only [0, pos + n). */
    int rc = s->attn->can_rewind ? s->attn->can_rewind(s, pos, err) : ENG_OK;
    if (rc)
        return rc;
    s->pos = pos;
    return ENG_OK;
}

static int check_tokens(const eng_session *s, const int32_t *tokens, int64_t n, eng_err *err)
{
    if (n < 1)
        return eng_err_set(err, ENG_EINVAL, "no tokens to evaluate");
    if (n > s->n_ctx - s->pos)
        return eng_err_set(err, ENG_ESTATE,
                           "%" PRId64 " tokens at position %" PRId64
                           " overflow the context of %" PRId64 " tokens",
                           n, s->pos, s->n_ctx);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->hp->n_vocab)
            return eng_err_set(err, ENG_EINVAL,
                               "token %" PRId64 ": id %d out of range 0..%" PRId64, i,
                               tokens[i], s->hp->n_vocab - 1);
    return ENG_OK;
}

/* Chunks of n_batch; with out, the logits of tokens first.. as
 * eng_session_eval_logits says (a chunk of one token runs the decode path,
 * whose logits are already the decode head's). */
static int eval_chunks(eng_session *s, const int32_t *tokens, int64_t n, int64_t first,
                       float *out, eng_err *err)
{
    const int64_t nv = s->hp->n_vocab;
    int rc = check_tokens(s, tokens, n, err);
    for (int64_t i = 0; !rc && i < n; i += s->n_batch) {
        int64_t T = n - i < s->n_batch ? n - i : s->n_batch;
        int64_t f = first > i ? first - i : 0; /* first row wanted in this chunk */
        float *o = out && f < T ? out + (i + f - first) * nv : NULL;
        if (T > 1) {
            rc = eng_forward_batch(s, tokens + i, T, f, o, err);
        } else if (!(rc = eng_forward_token(s, tokens[i], true, err)) && o) {
            memcpy(o, s->logits, (size_t)nv * sizeof *o);
        }
    }
    return rc;
}

int eng_session_eval(eng_session *s, const int32_t *tokens, int64_t n, eng_err *err)
{
    return eval_chunks(s, tokens, n, 0, NULL, err);
}

int eng_session_eval_logits(eng_session *s, const int32_t *tokens, int64_t n, int64_t first,
                            float *out, eng_err *err)
{
    if (!out || first < 0 || first >= n)
        return eng_err_set(err, ENG_EINVAL,
                           "logits from token %" PRId64 " of %" PRId64 ": need 0 <= first < n"
                           " and an output buffer",
                           first, n);
    if (!s->head_xv && !alloc_head(s))
        return eng_err_set(err, ENG_ENOMEM, "session: out of memory for %" PRId64 " logits rows",
                           s->n_batch);
    return eval_chunks(s, tokens, n, first, out, err);
}

int eng_session_decode(eng_session *s, int32_t token, eng_err *err)
{
    int rc = check_tokens(s, &token, 1, err);
    return rc ? rc : eng_forward_token(s, token, false, err);
}

/* ---- generation --------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int32_t sample(eng_session *s, eng_sampler *sp)
{
    ENG_HOOK(s->hooks, region_begin, ENG_REGION_SAMPLING);
    int32_t t = eng_sampler_sample(sp, s->logits);
    ENG_HOOK(s->hooks, region_end, ENG_REGION_SAMPLING);
    return t;
}

static int generate_loop(eng_session *s, eng_sampler *sp, const eng_generate_opts *o,
                         eng_generate_result *res, double t0, double c0, eng_err *err)
{
    int32_t tok = sample(s, sp);
    res->prefill_ms = now_ms() - t0;
    double c1 = cpu_ms();
    res->prefill_cpu_ms = c1 - c0;
    for (int64_t i = 0; i < o->n_predict; i++) {
        res->tokens[i] = tok;
        res->n_tokens = i + 1;
        bool stop = tok == o->eos || (o->on_token && o->on_token(o->user, tok));
        double t = now_ms();
        int rc = eng_session_decode(s, tok, err);
        if (rc)
            return rc;
        if (i + 1 < o->n_predict && !stop)
            tok = sample(s, sp);
        res->decode_ms[i] = now_ms() - t;
        res->decode_cpu_ms = cpu_ms() - c1;
        if (stop)
            break;
    }
    return ENG_OK;
}

int eng_generate(eng_session *s, const int32_t *prompt, int64_t n_prompt,
                 const eng_generate_opts *o, eng_generate_result *res, eng_err *err)
{
    memset(res, 0, sizeof *res);
    if (o->n_predict < 0 || n_prompt < 1 || o->n_predict > s->n_ctx - n_prompt)
        return eng_err_set(err, ENG_EINVAL,
                           "prompt of %" PRId64 " tokens + %" PRId64
                           " to generate: need 1 prompt token and at most %" PRId64
                           " tokens in all",
                           n_prompt, o->n_predict, s->n_ctx);
    res->tokens = calloc((size_t)o->n_predict + 1, sizeof *res->tokens);
    res->decode_ms = calloc((size_t)o->n_predict + 1, sizeof *res->decode_ms);
    eng_sampler *sp = NULL;
    int rc = (!res->tokens || !res->decode_ms)
                 ? eng_err_set(err, ENG_ENOMEM, "generate: out of memory")
                 : eng_sampler_open(&sp, &o->sampler, s->hp->n_vocab, err);
    if (rc)
        return rc;
    eng_session_reset(s);
    double t0 = now_ms(), c0 = cpu_ms();
    rc = eng_session_eval(s, prompt, n_prompt, err);
    if (!rc && o->n_predict > 0) {
        rc = generate_loop(s, sp, o, res, t0, c0, err);
    } else if (!rc) {
        res->prefill_ms = now_ms() - t0;
        res->prefill_cpu_ms = cpu_ms() - c0;
    }
    eng_sampler_free(sp);
    return rc;
}

void eng_generate_result_free(eng_generate_result *res)
{
    free(res->tokens);
    free(res->decode_ms);
    memset(res, 0, sizeof *res);
}
