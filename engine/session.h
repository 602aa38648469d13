/*
 * session.h — running a model: a session holds the model (borrowed), the KV
 * cache, an expert store, the thread pool and the hooks; it evaluates
 * prompts (prefill), decodes single tokens and exposes the logits.
 *
 *   eng_session *s;
 *   eng_session_open(&s, model, &(eng_session_opts){.n_threads = 2}, &err);
 *   eng_session_eval(s, prompt, n_prompt, &err);        // prefill, pos += n
 *   int32_t t = eng_argmax(eng_session_logits(s), n_vocab);
 *   eng_session_decode(s, t, &err);                     // one step, pos += 1
 *
 * Numerics. Prefill runs OpenBLAS sgemm on weight tiles dequantized to f32;
 * decode runs the format kernels on the stored bytes (formats.h; q8_0/q4_0
 * weights meet a Q8_0-quantized activation). Both follow the reference spec
 * §4 (llama.cpp's math). Work is cut into tiles of a fixed size and every
 * sum lies inside one tile, so the logits are bit-identical for any thread
 * count, and for any store (the memory store or a tiered one).
 *
 * Thread-safety: a session belongs to one thread at a time; several
 * sessions may share a model. OpenBLAS is set to 1 thread at open
 * (openblas_set_num_threads, process-wide) because the session's own pool
 * does the parallel part.
 */
#ifndef ENG_SESSION_H
#define ENG_SESSION_H

#include "engine/err.h"
#include "engine/hooks.h"
#include "engine/model.h"
#include "engine/sample.h"
#include "engine/store.h"

#include <stdint.h>

typedef struct eng_session eng_session;

typedef struct eng_session_opts {
    int n_threads;            /* 0: all online CPUs                            */
    int64_t n_ctx;            /* KV cache capacity, tokens; 0: min(n_ctx_train, 4096) */
    int64_t n_batch;          /* prefill chunk, tokens; 0: 128                  */
    const eng_hooks *hooks;   /* copied; NULL: none                             */
    eng_store *store;         /* borrowed; NULL: a memory store owned by the session */
    const uint8_t *expert_keep; /* [n_layer_moe * n_expert] (copied): 1 = the
                                 router may choose the expert; NULL: all. A
                                 task-adaptive subset (PreMoe): each router
                                 chooses among its kept experts only
                                 (eng_route_row_masked, ops.c); a layer must
                                 keep at least n_expert_used. Lossy.       */
} eng_session_opts;

/* opts may be NULL (all defaults). */
int eng_session_open(eng_session **out, const eng_model *m, const eng_session_opts *opts,
                     eng_err *err);
void eng_session_free(eng_session *s);

/* Evaluates tokens[0..n) at positions pos..pos+n-1 (a prompt: routing events
 * carry is_prefill = 1), in chunks of n_batch; afterwards the logits are
 * those of the last token. ENG_EINVAL for a token id out of range or n < 1;
 * ENG_ESTATE when the KV cache would overflow (nothing is evaluated then). */
int eng_session_eval(eng_session *s, const int32_t *tokens, int64_t n, eng_err *err);
/* eng_session_eval that also keeps the logits of every token from index
 * `first` on: out[(i - first) * n_vocab + v] for i in [first, n) are the
 * logits after tokens[i] (its prediction of token i + 1); out holds
 * (n - first) * n_vocab floats. Each row runs the decode head (RMSNorm,
 * the activation prepared as decode prepares it, the format's matvec
 * kernel), so it equals token-by-token decode at that position within the
 * prefill-vs-decode difference of the hidden state (bit-identical with
 * n_batch = 1), and is bit-identical for any thread count. The head costs
 * one matvec over the output matrix per row: evaluate in pieces to bound
 * the buffer (eng_session_eval for the rows not wanted). ENG_EINVAL when
 * first is not in [0, n) or out is NULL; ENG_ENOMEM when the first call
 * cannot allocate the head's n_batch prepared inputs; other errors as
 * eng_session_eval. */
int eng_session_eval_logits(eng_session *s, const int32_t *tokens, int64_t n, int64_t first,
                            float *out, eng_err *err);
/* One decode step for `token` at position pos (is_prefill = 0). */
int eng_session_decode(eng_session *s, int32_t token, eng_err *err);

/* Logits [n_vocab] of the last evaluated token (zeros before any). Valid
 * until the next eval/decode/reset. */
const float *eng_session_logits(const eng_session *s);
int64_t eng_session_pos(const eng_session *s);      /* tokens in the KV cache */
int64_t eng_session_n_ctx(const eng_session *s);
int64_t eng_session_n_batch(const eng_session *s);  /* prefill chunk, tokens */
int eng_session_threads(const eng_session *s);
eng_store *eng_session_store(eng_session *s);
/* Replaces the hook table (copied; NULL: none); also the store's. */
void eng_session_set_hooks(eng_session *s, const eng_hooks *hooks);
/* Empties the KV cache (pos = 0); weights and buffers stay. */
void eng_session_reset(eng_session *s);
/* Forgets the tokens at positions [pos, eng_session_pos): the next
 * eval/decode continues at pos, and gives exactly what it gave the first
 * time there (the same kernels on the same cache rows). The logits stay
 * those of the last evaluated token until then. Used to time the same
 * decode step twice (bench-counters --model). ENG_EINVAL when pos is
 * negative or beyond eng_session_pos. */
int eng_session_rewind(eng_session *s, int64_t pos, eng_err *err);

/* ---- generation ----------------------------------------------------------- */

typedef struct eng_generate_opts {
    int64_t n_predict;        /* tokens to generate (0: evaluate the prompt only) */
    eng_sampler_opts sampler;
    int32_t eos;              /* stop after generating this id; -1: never stop */
    /* Called after each generated token; non-zero stops generation. */
    int (*on_token)(void *user, int32_t token);
    void *user;
} eng_generate_opts;

typedef struct eng_generate_result {
    int32_t *tokens;          /* [n_tokens] generated ids (malloc'd)             */
    double *decode_ms;        /* [n_tokens] see below (malloc'd)                 */
    int64_t n_tokens;
    double prefill_ms;        /* prompt evaluation + sampling of tokens[0]       */
    double prefill_cpu_ms;    /* process CPU time (all threads) of the same      */
    double decode_cpu_ms;     /* process CPU time of all decode steps            */
} eng_generate_result;

/* Resets the session, evaluates the prompt, then samples n_predict tokens.
 * Token i is sampled from the logits of the previous position; decode_ms[i]
 * is the time of feeding tokens[i] through the model plus sampling
 * tokens[i+1] (llama-bench counts the same way: n forwards for n tokens), so
 * decode tok/s = n_tokens / sum(decode_ms). Afterwards the session's logits
 * are those after the last generated token. Free the result with
 * eng_generate_result_free (also after an error: it holds what was made). */
int eng_generate(eng_session *s, const int32_t *prompt, int64_t n_prompt,
                 const eng_generate_opts *opts, eng_generate_result *res, eng_err *err);
void eng_generate_result_free(eng_generate_result *res);

#endif
