/*
 * arch.h — what differs between the supported architectures, as data.
 *
 * One table entry per GGUF `general.architecture` value, in two parts kept
 * apart as llama.cpp keeps its tensor names apart from its graph builders:
 *   schema — what a file of the architecture holds: which keys are read and
 *            which tensors are required, optional or absent (model.c reads
 *            it, nothing else);
 *   traits — how the forward pass computes: attention implementation, RoPE
 *            pairing, QK-norm, router, shared expert, activation. Each trait
 *            is applied in exactly one place of the forward pass.
 * Nowhere else in the engine compares an architecture name (STYLE.md habit
 * 7). The values follow the reference spec (docs/engine.md
 * "Architectures"), which cites llama.cpp for each.
 *
 * Thread-safety: the table is constant; share freely.
 */
#ifndef ENG_ARCH_H
#define ENG_ARCH_H

#include <stdbool.h>
#include <stddef.h>

typedef enum eng_rope_kind {
    ENG_ROPE_NORM = 0,  /* rotate (x[2i], x[2i+1])          (llama)          */
    ENG_ROPE_NEOX       /* rotate (x[i], x[i + n_rot/2])    (qwen*, olmoe)   */
} eng_rope_kind;

typedef enum eng_qk_norm {
    ENG_QKNORM_NONE = 0,
    ENG_QKNORM_HEAD,    /* RMSNorm of each head's q/k with a {head_dim} weight (qwen3moe) */
    ENG_QKNORM_FULL     /* RMSNorm of the whole projected q/k with {n_q}/{n_kv} weights (olmoe) */
} eng_qk_norm;

/* The attention implementation (attn.h), which owns its KV-cache layout. */
typedef enum eng_attn_kind {
    ENG_ATTN_MHA = 0,   /* multi-head / grouped-query: K and V rows per KV head */
    ENG_ATTN_MLA,       /* multi-head latent attention (deepseek2)               */
} eng_attn_kind;

/* How router logits become the selected experts and their weights
 * (llama-graph.cpp build_moe_ffn; ops.c eng_route_row applies it). */
typedef enum eng_gating {
    ENG_GATING_SOFTMAX_TOPK = 0, /* p = softmax(l) over all E; top-k of p; w = p     */
    ENG_GATING_TOPK_SOFTMAX,     /* top-k of l; w = softmax over the k selected      */
    ENG_GATING_SIGMOID,          /* p = sigmoid(l); top-k of p (+ selection bias and
                                    expert groups where the file has them); w = p   */
} eng_gating;

/* The shared expert that runs beside the routed ones (never in the store). */
typedef enum eng_shexp_kind {
    ENG_SHEXP_NONE = 0,
    ENG_SHEXP_GATED,    /* scaled by sigmoid(w_gate . x) (qwen2moe)             */
    ENG_SHEXP_PLAIN,    /* added as it is (deepseek2)                           */
} eng_shexp_kind;

/* The activation between the gate/up and down projections of an FFN. */
typedef enum eng_act {
    ENG_ACT_SWIGLU = 0, /* silu(g) * u                                          */
    ENG_ACT_SWIGLU_OAI, /* gpt-oss: g' = min(g, 7), u' = clamp(u, -7, 7),
                           g' sigmoid(1.702 g') (u' + 1)                        */
} eng_act;

/* How a file gives the shared expert's width. */
typedef enum eng_shexp_width {
    ENG_SHW_KEY = 0,    /* expert_shared_feed_forward_length (qwen2moe)         */
    ENG_SHW_COUNT,      /* expert_feed_forward_length * expert_shared_count     */
} eng_shexp_width;

/* Whether a file of the architecture has a tensor (or group of tensors). */
typedef enum eng_presence {
    ENG_NO = 0,                /* never read                                      */
    ENG_MAY,                   /* used when present                               */
    ENG_MUST,                  /* required                                        */
} eng_presence;

typedef struct eng_arch_schema {
    eng_presence qkv_bias;     /* attn_q/k/v.bias                                 */
    eng_presence out_bias;     /* attn_output.bias                                */
    eng_presence qk_norm;      /* attn_q_norm/attn_k_norm (shape: traits.qk_norm) */
    eng_presence router_bias;  /* ffn_gate_inp.bias, added to the router logits   */
    eng_presence exp_probs_b;  /* exp_probs_b.bias, the selection-only bias       */
    eng_presence expert_bias;  /* ffn_{gate,up,down}_exps.bias                    */
    eng_presence sinks;        /* attn_sinks.weight: one logit per head           */
    const char *ffn_norm;      /* the FFN input norm's name: "ffn_norm" or
                                  "post_attention_norm"                          */
    bool output_tied_allowed;  /* no `output` tensor: reuse token_embd            */
    bool dense_allowed;        /* expert_count 0: plain ffn_gate/up/down           */
    bool n_ff_is_expert_width; /* feed_forward_length is the expert FFN width     */
    bool ff_exp_required;      /* expert_feed_forward_length must be present      */
    bool rot_must_equal_hd;    /* rope.dimension_count must equal head_dim        */
    eng_shexp_width shexp_width;
    bool dense_lead;           /* leading_dense_block_count: dense first layers   */
    bool nextn;                /* nextn_predict_layers: MTP layers after the trunk
                                  (in block_count; checked, never run)            */
    bool nextn_optional_rule;  /* all MTP tensors optional when the first MTP
                                  layer has no nextn.eh_proj (deepseek2.cpp:64) */
    bool router_from_file;     /* expert_gating_func, expert_weights_norm/_scale  */
    bool gating_glm47_rule;    /* no gating key: sigmoid for GLM-4.7-Flash's shape
                                  (deepseek2.cpp:23-32), else traits.gating       */
    bool yarn_log_mul;         /* rope.scaling.yarn_log_multiplier (x 0.1)        */
    bool sliding_window;       /* attention.sliding_window (required) and its
                                  layer pattern; rope.freq_base_swa               */
} eng_arch_schema;

typedef struct eng_arch_traits {
    eng_attn_kind attn;
    eng_rope_kind rope;
    eng_qk_norm qk_norm;
    eng_gating gating;         /* the router                                      */
    bool norm_topk;            /* renormalise the selected weights to sum 1       */
    eng_shexp_kind shexp;
    eng_act act;
} eng_arch_traits;

typedef struct eng_arch {
    const char *name;          /* general.architecture                           */
    eng_arch_schema schema;
    eng_arch_traits traits;
} eng_arch;

/* Stable lower-case names, for listings: "mha", "mla"; "softmax",
 * "sigmoid", "topk-softmax". */
const char *eng_attn_kind_name(eng_attn_kind k);
const char *eng_gating_name(eng_gating g);

/* The entry for a GGUF architecture name, or NULL if unsupported. */
const eng_arch *eng_arch_find(const char *name);

/* The supported names, comma-separated, from the table (for messages):
 * written into buf[cap], truncated if it does not fit. */
void eng_arch_names(char *buf, size_t cap);

#endif
