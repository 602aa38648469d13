/*
 * forward_impl.h — session internals shared by session.c, forward.c and
 * ops.c (not a public header).
 *
 * Buffers are allocated once at session open for the largest shapes; the
 * forward pass allocates nothing. Units: floats unless said otherwise; the
 * batch buffers hold n_batch rows.
 */
#ifndef ENG_FORWARD_IMPL_H
#define ENG_FORWARD_IMPL_H

#include "engine/formats.h"
#include "engine/model_impl.h"
#include "engine/pool.h"
#include "engine/session.h"
#include "engine/store_impl.h"

/* Fixed work granularity: results never depend on the thread count. */
enum {
    ENG_MV_ROWS = 16,     /* rows per decode matvec task                 */
    ENG_GEMM_ROWS = 16,   /* weight rows per prefill sgemm tile          */
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
    float *q, *att;              /* [n_q]                                   */
    float *k, *v;                /* [n_kv]                                  */
    float *rl, *rp;              /* [E] router logits, probabilities        */
    float *g, *u;                /* [(k+1) * F_max] gate / up (then hidden)  */
    float *o;                    /* [(k+1) * n_embd] expert outputs         */
    eng_xvec xv_in;              /* n_max = max(n_embd, n_q)                */
    eng_xvec xv_pg;              /* n_embd: pre-gating input (store hint)   */
    eng_xvec *xv_h;              /* [k+1], n_max = F_max                    */
} eng_dec_buf;

typedef struct eng_bat_buf {     /* prefill, n_batch tokens */
    float *x, *xn, *tmp;         /* [B][n_embd]                             */
    float *q, *att;              /* [B][n_q]                                */
    float *k, *v;                /* [B][n_kv]                               */
    float *rl;                   /* [B][E]                                  */
    int32_t *sel;                /* [B][k] selected experts, router order   */
    float *w;                    /* [B][k] their weights                    */
    int32_t *row_of;             /* [B][k] row in the grouped buffers       */
    int32_t *count, *offset;     /* [E] tokens per expert, first row        */
    float *xg;                   /* [B*k][n_embd] inputs grouped by expert   */
    float *g, *u;                /* [B*k][F_max] (hidden after SwiGLU)      */
    float *d;                    /* [B*k][n_embd] outputs                   */
    float *gs, *us, *ds;         /* [B][S]: shared expert, [B][n_embd] out  */
    float *sg;                   /* [B] shared gate                         */
    float *scratch;              /* [n_threads][ENG_GEMM_ROWS * in_max] tiles */
    float *att_scores;           /* [n_threads][n_ctx]                      */
    eng_expert_weights *ew;      /* [E] acquired experts, by expert id      */
    int32_t *used;               /* [E] experts the batch routes to, ascending */
    eng_mm_job *jobs;            /* [2E] job list for the grouped experts   */
} eng_bat_buf;

struct eng_session {
    const eng_model *m;
    const eng_hparams *hp;
    const eng_arch *arch;
    const eng_kernels *kern;
    eng_pool *pool;
    eng_store *store;
    bool own_store;
    eng_hooks hooks_copy;
    const eng_hooks *hooks;      /* NULL when none: one branch per call site */
    int64_t n_ctx, n_batch, pos;
    int64_t n_q, n_kv, f_max, in_max;
    float *kc, *vc;              /* [n_layer][n_ctx][n_kv] KV cache         */
    float *rope_cs;              /* [n_batch][n_rot] cos, sin interleaved   */
    float *logits;               /* [n_vocab]                               */
    float *dec_scores;           /* [n_head][n_ctx] decode attention        */
    int *mm_first;               /* [max_jobs + 1] task prefix sums         */
    int max_jobs;                /* 2 * max(E, k + 1) + 8                   */
    eng_dec_buf dec;
    eng_bat_buf bat;
};

/* ---- ops.c: the math of spec §4 ---------------------------------------- */

/* y = x / sqrt(mean(x^2) + eps) * w; sum of squares in double (ggml). */
void eng_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
/* cs[2i], cs[2i+1] = cos, sin of pos * base^(-2i/n_rot), i < n_rot/2,
 * computed as ggml does (theta *= theta_scale in f32). */
void eng_rope_table(float *cs, int64_t pos, int64_t n_rot, float base);
/* Rotates n_heads heads of hd values in place (dims >= n_rot unchanged). */
void eng_rope_apply(float *x, int64_t n_heads, int64_t hd, int64_t n_rot, const float *cs,
                    eng_rope_kind kind);
/* p = softmax(x), max subtracted, sum in double. */
void eng_softmax(float *p, const float *x, int64_t n);
/* Top-k of p[0..n) (descending, lower id first among ties) into ids/w;
 * renormalises w when norm (floor 6.1035e-5, llama-graph.cpp). */
void eng_topk(const float *p, int64_t n, int k, bool norm, int32_t *ids, float *w);
/* g[i] = silu(g[i]) * u[i]. */
void eng_swiglu(float *g, const float *u, int64_t n);
float eng_sigmoid(float x);

/* ---- forward.c ----------------------------------------------------------- */

void eng_mm_decode(eng_session *s, const eng_mm_job *jobs, int n_jobs);
void eng_mm_batch(eng_session *s, const eng_mm_job *jobs, int n_jobs);
/* One token at position s->pos through every layer; logits when want_logits. */
int eng_forward_token(eng_session *s, int32_t token, bool is_prefill, eng_err *err);
/* T <= n_batch tokens at positions s->pos.. ; logits of the last one. */
int eng_forward_batch(eng_session *s, const int32_t *tokens, int64_t T, eng_err *err);

#endif
