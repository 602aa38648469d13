/*
 * model_impl.h — the model's insides, for the forward pass and the expert
 * store only (not a public header).
 *
 * Every pointer is a validated eng_gguf_tensor in the file's mapping. Shapes
 * are ggml ne (ne[0] contiguous): a weight with ne = {n_in, n_out} is n_out
 * rows of n_in values, so y[o] = dot(row o, x).
 */
#ifndef ENG_MODEL_IMPL_H
#define ENG_MODEL_IMPL_H

#include "engine/arch.h"
#include "engine/gguf.h"
#include "engine/model.h"

typedef const eng_gguf_tensor *eng_tref;

/* The FFN of a layer, decided at load time (the layer descriptor). */
typedef enum eng_ffn_kind {
    ENG_FFN_DENSE = 0,             /* ffn_gate/up/down                        */
    ENG_FFN_MOE,                   /* router + routed experts (+ shared)      */
} eng_ffn_kind;

typedef struct eng_layer {
    /* descriptor: what the forward pass does in this layer */
    eng_ffn_kind ffn;
    int moe_index;                 /* index among MoE layers (store, traces);
                                      -1 for a dense layer                   */
    int64_t n_swa;                 /* sliding window in positions; 0: full
                                      causal attention                       */
    /* weights */
    eng_tref attn_norm;            /* {n_embd} f32                            */
    eng_tref wq, wk, wv;           /* {n_embd, n_head*hd}, {n_embd, n_kv*hd}  */
    eng_tref bq, bk, bv;           /* {n_q}, {n_kv}, f32 (qkv_bias archs)     */
    eng_tref wo, bo;               /* {n_head*hd, n_embd}; bias optional      */
    eng_tref q_norm, k_norm;       /* {hd} (HEAD) or {n_q}/{n_kv} (FULL)      */
    eng_tref sinks;                /* {n_head} f32: each head's sink logit    */
    /* MLA (deepseek2; hp->mla): H heads, dk = nope + rope, latent R_kv */
    eng_tref wq_a, q_a_norm, wq_b; /* {n_embd, R_q}, {R_q}, {R_q, H*dk}; or wq
                                      {n_embd, H*dk} when R_q = 0           */
    eng_tref wkv_a;                /* {n_embd, R_kv + rope}: latent | k_pe    */
    eng_tref kv_a_norm;            /* {R_kv}                                  */
    eng_tref wk_b;                 /* {nope, R_kv, H}: C [h][c][d] (absorbed) */
    eng_tref wv_b;                 /* {R_kv, dv, H}:   C [h][j][c] (absorbed) */
    eng_tref wkv_b;                /* {R_kv, H*(nope+dv)} (legacy files)      */
    eng_tref ffn_norm;             /* {n_embd} f32                            */
    eng_tref router;               /* {n_embd, E}                             */
    eng_tref exp_probs_b;          /* {E} f32 selection-only bias, or NULL    */
    eng_tref router_b;             /* {E} f32 added to the router logits      */
    eng_tref gate_exps_b, up_exps_b; /* {F, E} f32 expert biases, or NULL      */
    eng_tref down_exps_b;          /* {n_embd, E} f32                         */
    eng_tref gate_exps, up_exps;   /* {n_embd, F, E}: C [e][f][d]             */
    eng_tref down_exps;            /* {F, n_embd, E}: C [e][d][f]             */
    eng_tref shexp_gate;           /* {n_embd} or {n_embd,1}: one logit/token */
    eng_tref gate_sh, up_sh;       /* {n_embd, S}                             */
    eng_tref down_sh;              /* {S, n_embd}                             */
    eng_tref ffn_gate, ffn_up;     /* dense: {n_embd, n_ff}                   */
    eng_tref ffn_down;             /* dense: {n_ff, n_embd}                   */
} eng_layer;

struct eng_model {
    eng_gguf *g;
    const eng_arch *arch;
    eng_hparams hp;
    eng_tref tok_embd;             /* {n_embd, n_vocab}                       */
    eng_tref output_norm;          /* {n_embd} f32                            */
    eng_tref output;               /* {n_embd, n_vocab}; == tok_embd if tied  */
    eng_layer *layers;             /* [n_layer]: the layers that run          */
    int *moe_layer;                /* [n_layer_moe]: model layer of MoE layer i */
};

/* Reads the file's metadata and tensors into m (m->g open): model_load.c.
 * On failure m may hold part of it; eng_model_free releases it. */
int eng_model_load(eng_model *m, eng_err *err);

#endif
