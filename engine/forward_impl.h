/*
 * forward_impl.h — session internals shared by session.c, forward.c,
 * ffn.c, matmul.c, ops.c and the attention implementations (not a public
 * header).
 *
 * Buffers are allocated once at session open for the largest shapes; the
 * forward pass allocates nothing. Units: floats unless said otherwise; the
 * batch buffers hold n_batch rows. Attention buffers and the KV cache belong
 * to the attention implementation (attn_impl.h).
 */
#ifndef ENG_FORWARD_IMPL_H
#define ENG_FORWARD_IMPL_H

#include "engine/formats.h"
#include "engine/gemm.h"
#include "engine/model_impl.h"
#include "engine/pool.h"
#include "engine/session.h"
#include "engine/store_impl.h"
#include "engine/vecops.h"

struct eng_attn_impl;

/* Fixed work granularity: results never depend on the thread count. */
enum {
    ENG_MV_ROWS = 16,     /* rows per decode matvec task                 */
    ENG_GEMM_ROWS = 16,   /* weight rows per prefill task (sgemm tile or
                             integer kernel, gemm.h)                      */
    ENG_QX_MAX = 64,      /* distinct prepared inputs per pool run       */
    ENG_GEMM_F_MIN_T = 6, /* activation rows from which f32/f16/bf16 take
                             the float kernels of gemm.h (matmul.c)      */
};

/* One y = W x (decode) or Y = X W^T (prefill) over all rows of W. */
typedef struct eng_mm_job {
    int type;
    const void *w;          /* n_out rows of row_bytes                      */
    uint64_t row_bytes;
    int64_t n_in, n_out;
    const eng_xvec *xv;     /* decode: prepared input                       */
    const float *X;         /* prefill: [T][ldx] inputs                     */
    int64_t T, ldx;
    float *Y;               /* decode: [n_out]; prefill: [T][ldy]           */
    int64_t ldy;
} eng_mm_job;

typedef struct eng_dec_buf {     /* decode, one token */
    float *x, *xn, *tmp;         /* [n_embd]                                */
    float *rl;                   /* [E] router logits                       */
    float *rs;                   /* [2E] routing scratch (eng_route_row)    */
    float *g, *u;                /* [(k+1) * F_max] gate / up (then hidden)  */
    float *o;                    /* [(k+1) * n_embd] expert outputs         */
    eng_xvec xv_in;              /* n_max = n_embd: the FFN's input         */
    eng_xvec xv_pg;              /* n_embd: pre-gating input (store hint)   */
    eng_xvec *xv_h;              /* [k+1], n_max = F_max                    */
} eng_dec_buf;

typedef struct eng_bat_buf {     /* prefill, n_batch tokens */
    float *x, *xn, *tmp;         /* [B][n_embd]                             */
    float *rl;                   /* [B][E]                                  */
    int32_t *sel;                /* [B][k] selected experts, router order   */
    float *w;                    /* [B][k] their weights                    */
    int32_t *row_of;             /* [B][k] row in the grouped buffers       */
    int32_t *count, *offset;     /* [E] tokens per expert, first row        */
    float *xg;                   /* [B*k][n_embd] inputs grouped by expert   */
    float *g, *u;                /* [B*k][F_max] (hidden after activation)  */
    float *d;                    /* [B*k][n_embd] outputs                   */
    float *gs, *us, *ds;         /* [B][S]: shared expert, [B][n_embd] out  */
    float *scratch;              /* [n_threads][ENG_GEMM_ROWS * in_max]: f32
                                    tiles for sgemm, or the gemm.h kernels'
                                    packed tiles (ENG_GEMM_SCRATCH_PER_ELEM
                                    * in_max + 64 bytes <= this)             */
    eng_expert_weights *ew;      /* [E] acquired experts, by expert id      */
    int32_t *used;               /* [E] experts the batch routes to, ascending */
    eng_mm_job *jobs;            /* [2E + 2] job list for the grouped experts */
    uint8_t *qx_buf;             /* [qx_cap] the prepared inputs of one prefill
                                    product (matmul.c, gemm.h), 64-aligned   */
    size_t qx_cap;
    eng_qx *qx;                  /* [ENG_QX_MAX] their descriptors          */
    eng_xt *xt;                  /* [ENG_QX_MAX] the same for float weights */
    int *qx_of;                  /* [max_jobs] the descriptor of each job   */
    eng_mm_job *part;            /* [max_jobs] one kind's jobs of a call    */
} eng_bat_buf;

struct eng_session {
    const eng_model *m;
    const eng_hparams *hp;
    const eng_arch_traits *tr;
    const eng_kernels *kern;
    const eng_vecops *vec;       /* ggml's row ops of the same SIMD path     */
    const eng_gemm_kernels *gemm; /* the integer prefill kernels of kern's path */
    eng_pool *pool;
    eng_store *store;
    bool own_store;
    eng_hooks hooks_copy;
    const eng_hooks *hooks;      /* NULL when none: one branch per call site */
    int64_t n_ctx, n_batch, pos;
    int64_t f_max;               /* widest FFN (routed, shared or dense)    */
    int64_t in_max;              /* widest matrix row (ne0) of any weight   */
    const struct eng_attn_impl *attn;
    void *attn_state;            /* the implementation's KV cache and buffers */
    float *rope_cs;              /* [n_batch][n_rot] cos, sin interleaved   */
    float *rope_cs_swa;          /* the same for sliding-window layers; ==
                                    rope_cs unless rope.freq_base_swa differs */
    float *logits;               /* [n_vocab]                               */
    int *mm_first;               /* [max_jobs + 1] task prefix sums         */
    int max_jobs;                /* 2 * max(E, k + 1) + 8                   */
    eng_dec_buf dec;
    eng_bat_buf bat;
    eng_xvec *head_xv;           /* [n_batch] prepared inputs of the head rows
                                    (eval_logits; allocated on its first call) */
    eng_mm_job *head_jobs;       /* [max_jobs] their jobs on one weight block */
    uint8_t *keep;               /* [n_layer_moe][n_expert] expert_keep copy,
                                    NULL when every expert is routable       */
};

#define ENG_REGION_BEGIN(s, r) ENG_HOOK((s)->hooks, region_begin, r)
#define ENG_REGION_END(s, r) ENG_HOOK((s)->hooks, region_end, r)

/* ---- ops.c: the math of spec §4 ---------------------------------------- */

/* y = x / sqrt(mean(x^2) + eps) * w; sum of squares in double (ggml). */
void eng_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
/* cs[2i], cs[2i+1] = cos, sin of pair i < n_rot/2 at position pos, with
 * YaRN where r says so: ggml_rope_cache_init (theta *= theta_scale in f32);
 * fma: as a build of ggml that contracts into FMAs (eng_vecops.fma). */
void eng_rope_table(float *cs, int64_t pos, const eng_rope_params *r, bool fma);
/* Rotates n_heads heads (stride apart) of n_rot values from x + h*stride
 * in place (fma as for eng_rope_table). */
void eng_rope_apply(float *x, int64_t n_heads, int64_t stride, int64_t n_rot, const float *cs,
                    eng_rope_kind kind, bool fma);
/* p = softmax(x) as ggml's soft_max (ops.cpp) computes it with vo's row
 * ops; x and p may be the same row. */
void eng_softmax(const eng_vecops *vo, float *p, const float *x, int64_t n);
/* The same with a sink logit in the denominator only (-INFINITY: none). */
void eng_softmax_sink(const eng_vecops *vo, float *p, const float *x, int64_t n, float sink);
float eng_sigmoid(float x);
/* Routing of one token (llama-graph.cpp build_moe_ffn, spec part 2 §0.2):
 * router logits l[E] -> the k selected experts ids[] in rank order and
 * their weights w[], as hp's router says (gating, selection bias sel_bias
 * [E] or NULL, expert groups, renormalisation, scale). scratch: [2E]. */
void eng_route_row(const eng_vecops *vo, const eng_hparams *hp, const float *l,
                   const float *sel_bias, float *scratch, int32_t *ids, float *w);
/* The same with a mask: keep[E] (NULL: every expert) says which experts
 * the router may choose (a PreMoe subset). Dropped experts are removed
 * before selection: softmax-then-top-k gets -inf logits for them (the
 * softmax runs over the kept experts), top-k-then-softmax excludes them
 * from the top-k, sigmoid gets -inf selection scores (after the selection
 * bias) and, when the mask drops something, no expert-group limit (as the
 * PreMoe code's gate). Needs at least k kept experts. With keep NULL, or
 * a mask that keeps every expert, it is eng_route_row. */
void eng_route_row_masked(const eng_vecops *vo, const eng_hparams *hp, const float *l,
                          const float *sel_bias, const uint8_t *keep, float *scratch,
                          int32_t *ids, float *w);
/* The FFN activation in place: g[i] = act(g[i], u[i]) for i < n (one row:
 * ggml's vector chunks start at g). */
void eng_act_row(const eng_vecops *vo, eng_act act, float *g, const float *u, int64_t n);
/* y[d] = sum_j w[j] * outs[j][d] in rank order (ggml: mul, then view adds). */
void eng_combine_row(float *y, int k, const float *w, const float *const *outs, int64_t d);
/* y[i] += b[i] when the bias tensor exists (f32, n values). */
void eng_add_bias(float *y, eng_tref b, int64_t n);

/* ---- matmul.c: weight matrices, cut into fixed tiles over the pool ------- */

eng_mm_job eng_job_of(eng_tref t);                  /* a whole tensor      */
eng_mm_job eng_job_of_mat(const eng_expert_mat *m); /* one expert's slice  */
eng_mm_job eng_job_dec(eng_mm_job j, const eng_xvec *xv, float *y);
eng_mm_job eng_job_bat(eng_mm_job j, const float *X, int64_t T, int64_t ldx, float *Y,
                       int64_t ldy);
void eng_mm_decode(eng_session *s, const eng_mm_job *jobs, int n_jobs);
void eng_mm_batch(eng_session *s, const eng_mm_job *jobs, int n_jobs);
eng_expert_mat eng_mat_of(eng_tref t);

/* ---- ffn.c ----------------------------------------------------------------- */

/* x += FFN(x) of layer il for the token at s->pos (decode buffers), and of
 * T tokens at s->pos.. (batch buffers); dense or MoE as the layer says. */
int eng_ffn_decode(eng_session *s, int il, int32_t token, bool is_prefill, eng_err *err);
int eng_ffn_batch(eng_session *s, int il, const int32_t *tokens, int64_t T, eng_err *err);

/* ---- forward.c ------------------------------------------------------------ */

/* One token at position s->pos through every layer, then the logits. */
int eng_forward_token(eng_session *s, int32_t token, bool is_prefill, eng_err *err);
/* T <= n_batch tokens at positions s->pos.. ; s->logits: those of the last
 * one. With out != NULL also the logits of tokens first..T-1 into
 * out[(t - first) * n_vocab] (first < T; each by the decode head). */
int eng_forward_batch(eng_session *s, const int32_t *tokens, int64_t T, int64_t first,
                      float *out, eng_err *err);

#endif
