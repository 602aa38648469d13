/*
 * arch.h — what differs between the supported architectures, as data.
 *
 * One table entry per GGUF `general.architecture` value. The forward pass
 * and the loader read these flags; nowhere else in the engine compares an
 * architecture name (STYLE.md habit 7). The values follow the reference
 * spec (docs/engine.md "Architectures"), which cites llama.cpp for each.
 *
 * Thread-safety: the table is constant; share freely.
 */
#ifndef ENG_ARCH_H
#define ENG_ARCH_H

#include <stdbool.h>

typedef enum eng_rope_kind {
    ENG_ROPE_NORM = 0,  /* rotate (x[2i], x[2i+1])          (llama)          */
    ENG_ROPE_NEOX       /* rotate (x[i], x[i + n_rot/2])    (qwen*, olmoe)   */
} eng_rope_kind;

typedef enum eng_qk_norm {
    ENG_QKNORM_NONE = 0,
    ENG_QKNORM_HEAD,    /* RMSNorm of each head's q/k with a {head_dim} weight (qwen3moe) */
    ENG_QKNORM_FULL     /* RMSNorm of the whole projected q/k with {n_q}/{n_kv} weights (olmoe) */
} eng_qk_norm;

typedef struct eng_arch {
    const char *name;          /* general.architecture                           */
    eng_rope_kind rope;
    eng_qk_norm qk_norm;
    bool norm_topk;            /* renormalise the top-k router weights           */
    bool shared_expert;        /* sigmoid-gated shared expert (qwen2moe)          */
    bool qkv_bias;             /* attn_q/k/v have a .bias (required)              */
    bool attn_out_bias_allowed;/* attn_output.bias may be present                 */
    bool output_tied_allowed;  /* no `output` tensor: reuse token_embd            */
    bool dense_allowed;        /* expert_count 0: plain ffn_gate/up/down           */
    bool n_ff_is_expert_width; /* feed_forward_length is the expert FFN width     */
    bool rot_must_equal_hd;    /* rope.dimension_count must equal head_dim        */
} eng_arch;

/* The entry for a GGUF architecture name, or NULL if unsupported. */
const eng_arch *eng_arch_find(const char *name);

/* Comma-separated list of supported names, for error messages. */
const char *eng_arch_names(void);

#endif
