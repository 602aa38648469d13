/*
 * mkmodel.h — the synthetic model writer behind `moebench mkmodel`.
 *
 * Writes a GGUF v3 file that llama.cpp (and our engine) loads as a Mixtral
 * (`llama`), `qwen2moe`, `qwen3moe`, `olmoe` or `deepseek2` model: metadata keys, value
 * types and tensor names/shapes exactly as llama.cpp's converter writes
 * them (reference: gguf-moe.md sections 3, 5, 6), seeded random weights and
 * a byte-level BPE vocabulary (engine/tokenizer.h reads it back).
 *
 * Presets fix the hyper-parameters: a `tiny-*` preset per architecture (a
 * few MB, for tests) and shape-faithful presets with the real models'
 * dimensions (mixtral-8x7b, qwen1.5-moe-a2.7b, qwen3-30b-a3b, olmoe-1b-7b,
 * deepseek-v2-lite, deepseek-v3, kimi-k2), whose depth `layers` can cut.
 * Each preset belongs to one architecture.
 *
 * Determinism: the same options give a byte-identical file (weights come
 * from a counter-based generator keyed by seed, tensor and element index).
 * The file is streamed tensor by tensor into "PATH.tmp.<pid>" and renamed
 * onto PATH only when complete, so PATH never holds a partial file.
 *
 * Thread-safety: every function is reentrant; the preset table is constant.
 */
#ifndef ENG_MKMODEL_H
#define ENG_MKMODEL_H

#include "engine/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tensor types mkmodel writes (--type; engine/mkmodel_types.c). A format
 * (values = its ggml type id) puts every weight matrix in that format, as
 * `llama-quantize --pure`; a mix (values >= ENG_MK_MIX_BASE) applies
 * llama.cpp's per-tensor choices of the llama-quantize file type of that
 * name (llama-quant.cpp llama_tensor_get_type_impl), and mxfp4 is the
 * layout llama.cpp's converter gives gpt-oss (experts MXFP4, the other
 * matrices BF16). Norms, biases, ffn_gate_inp and ffn_gate_inp_shexp stay
 * F32 for every type, as llama.cpp does; rows that do not fit a type's
 * block fall back as llama.cpp's tensor_type_fallback does (see
 * eng_mkmodel_tensor_type). */
enum {
    ENG_MK_F32 = 0,
    ENG_MK_F16 = 1,
    ENG_MK_Q4_0 = 2,
    ENG_MK_Q4_1 = 3,
    ENG_MK_Q5_0 = 6,
    ENG_MK_Q5_1 = 7,
    ENG_MK_Q8_0 = 8,
    ENG_MK_Q3_K = 11,
    ENG_MK_Q4_K = 12,
    ENG_MK_Q5_K = 13,
    ENG_MK_IQ4_NL = 20,
    ENG_MK_BF16 = 30,
    ENG_MK_MIX_BASE = 1000,             /* + the llama_ftype number         */
    ENG_MK_Q2_K_MIX = 1010,             /* "q2_k"   (LLAMA_FTYPE_MOSTLY_Q2_K) */
    ENG_MK_Q3_K_M = 1012,
    ENG_MK_Q4_K_S = 1014,
    ENG_MK_Q4_K_M = 1015,
    ENG_MK_Q5_K_M = 1017,
    ENG_MK_Q6_K_MIX = 1018,             /* "q6_k"                           */
    ENG_MK_IQ4_XS_MIX = 1030,           /* "iq4_xs"                         */
    ENG_MK_MXFP4 = 1038,                /* "mxfp4" (the converter's layout) */
};
#define ENG_MKMODEL_TYPES                                                                          \
    "formats f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q3_k, q4_k, q5_k; "            \
    "mixes q2_k, q3_k_m, q4_k_s, q4_k_m, q5_k_m, q6_k, iq4_xs, mxfp4"

/* Hyper-parameters of one preset. All counts are as written in the file. */
typedef struct eng_mkmodel_preset {
    const char *name;        /* "tiny-olmoe", "olmoe-1b-7b", ...                  */
    const char *arch;        /* general.architecture: llama, qwen2moe, qwen3moe, olmoe */
    const char *descr;       /* one line for --list                                */
    const char *tok_pre;     /* tokenizer.ggml.pre: any eng_pretok_parse accepts
                              * (default, olmo, qwen2, llama-bpe, deepseek-llm,
                              * deepseek-v3, gpt-4o, glm4, kimi-k2, ...)           */
    uint32_t n_vocab;        /* token_embd ne1, len(tokenizer.ggml.tokens)         */
    uint32_t n_ctx;          /* {arch}.context_length                              */
    uint32_t n_embd;         /* {arch}.embedding_length                            */
    uint32_t n_layer;        /* {arch}.block_count (before any layers override)    */
    uint32_t n_head, n_head_kv;
    uint32_t head_dim;       /* written as key_length/value_length for qwen3moe only */
    uint32_t n_expert, n_expert_used;
    uint32_t n_ff_exp;       /* expert FFN width F                                  */
    uint32_t n_ff_shexp;     /* shared expert width S (qwen2moe), else 0            */
    uint32_t n_ff_dense;     /* {arch}.feed_forward_length for qwen (informational), else 0 */
    float rms_eps;           /* {arch}.attention.layer_norm_rms_epsilon             */
    float rope_base;         /* {arch}.rope.freq_base                               */
    /* deepseek2 (0 elsewhere); n_ff_shexp = n_shared * n_ff_exp there, and
     * n_ff_dense is the dense layers' feed_forward_length */
    uint32_t n_layer_dense;  /* leading_dense_block_count (at most layers - 1)      */
    uint32_t n_shared;       /* expert_shared_count                                 */
    uint32_t q_lora_rank;    /* 0: no q-LoRA (attn_q, the V2-Lite form)             */
    uint32_t kv_lora_rank;
    uint32_t qk_nope, qk_rope, v_head_dim;
    uint32_t gating;         /* expert_gating_func: 1 softmax, 2 sigmoid            */
    bool exp_probs_b;        /* selection bias exp_probs_b.bias per MoE layer       */
    bool weights_norm;       /* expert_weights_norm                                 */
    float weights_scale;     /* expert_weights_scale (0: not written)               */
    uint32_t n_group, n_group_used; /* expert_group_count / _used_count (0: not written) */
    float yarn_factor;       /* rope.scaling (YaRN) factor; 0: no rope.scaling keys */
    uint32_t yarn_orig_ctx;  /* rope.scaling.original_context_length               */
    float yarn_log_mul;      /* mscale_all_dim (written x 0.1, as the converter does;
                              * 0: no yarn_log_multiplier key, as gpt-oss)          */
    uint32_t n_rot;          /* rope.dimension_count where written (glm4moe's partial
                              * rotary); 0 = head_dim                              */
    uint32_t n_swa;          /* attention.sliding_window (gpt-oss); 0: not written */
    uint32_t n_nextn;        /* nextn_predict_layers (glm4moe's MTP layers, never run),
                              * written after the n_layer layers                   */
    bool qk_norm;            /* glm4moe: attn_q_norm/attn_k_norm (GLM-4.5; not Air) */
} eng_mkmodel_preset;

/* Number of presets, and preset i (0 <= i < count) in --list order. */
size_t eng_mkmodel_preset_count(void);
const eng_mkmodel_preset *eng_mkmodel_preset_at(size_t i);
/* Preset by name; NULL if unknown. */
const eng_mkmodel_preset *eng_mkmodel_preset_find(const char *name);

/* Parses an architecture name as the CLI accepts it ("mixtral" and "llama"
 * are the same) into general.architecture; NULL if unknown. */
const char *eng_mkmodel_arch_parse(const char *name);
/* The architecture names --arch accepts, ", "-separated, for messages. */
void eng_mkmodel_arch_names(char *buf, size_t cap);

/* One of ENG_MKMODEL_TYPES (case-insensitive) -> ENG_MK_*; ENG_EINVAL if
 * not one of them. eng_mkmodel_type_name is the inverse ("?" for others). */
int eng_mkmodel_type_parse(const char *name, int *type);
const char *eng_mkmodel_type_name(int type);
/* Whether type is one of the ENG_MK_* values. */
bool eng_mkmodel_type_valid(int type);
/* The llama_ftype written as general.file_type (a format without a file
 * type of its own gets the nearest one: q3_k Q3_K_S, q5_k Q5_K_S). */
uint32_t eng_mkmodel_type_ftype(int type);
/* Whether a file of this ENG_MK_* type holds quantized (block) tensors. */
bool eng_mkmodel_type_quantized(int type);
/* The ggml type of the weight matrix `name` (rows of ne0) under ENG_MK_*
 * type `type` in a model of hyper-parameters hp as the file states them
 * (block_count = n_layer + n_nextn, head_count_kv = n_head_kv); tied: the
 * file has no output.weight (then token_embd gets the output's treatment,
 * as in llama.cpp). Rows that do not fit fall back as llama.cpp's
 * tensor_type_fallback: IQ4_XS -> IQ4_NL, Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0,
 * Q5_K -> Q5_1, Q6_K -> Q8_0, then F16. */
int eng_mkmodel_tensor_type(int type, const char *name, int64_t ne0, const eng_mkmodel_preset *hp,
                            bool tied);

/* Progress: called after each tensor with bytes of tensor data written so
 * far and the total. */
typedef void (*eng_mkmodel_progress_fn)(void *user, uint64_t done, uint64_t total);

typedef struct eng_mkmodel_opts {
    const char *preset;          /* preset name (required)                          */
    const char *arch;            /* NULL/"" = the preset's; else must agree with it  */
    int type;                    /* ENG_MK_*                                         */
    uint64_t seed;               /* weights depend on it (the vocabulary does not)   */
    uint32_t layers;             /* 0 = the preset's n_layer; else 1..preset's      */
    double router_locality;      /* 0..1, see docs/engine.md "Synthetic models"     */
    eng_mkmodel_progress_fn progress; /* optional                                   */
    void *progress_user;
    int threads;                 /* generator threads: 0 = online CPUs (at most 8);
                                  * the bytes written do not depend on it          */
    int vocab;                   /* ENG_MK_VOCAB_BPE (default) or _SPM               */
    bool mla_legacy;             /* deepseek2: write attn_kv_b (the legacy form) instead
                                  * of attn_k_b/attn_v_b; the same weights either way */
    const char *vocab_from;      /* a Hugging Face tokenizer.json: its vocabulary
                                  * (and n_vocab) instead of the learnt one
                                  * (mkvocab.h eng_mkvocab_from_json); NULL = none */
    const char *vocab_pre;       /* with vocab_from: tokenizer.ggml.pre to write
                                  * instead of the detected one; NULL = detect      */
} eng_mkmodel_opts;

/* The vocabulary's kind: byte-level BPE ("gpt2", every preset's default) or
 * SentencePiece ("llama", what real Mixtral files have). */
enum { ENG_MK_VOCAB_BPE = 0, ENG_MK_VOCAB_SPM = 1 };

/* What a set of options will produce. */
typedef struct eng_mkmodel_info {
    eng_mkmodel_preset hp;       /* the preset with n_layer after the override      */
    uint64_t file_bytes;         /* exact size of the file eng_mkmodel_write writes */
    uint64_t data_bytes;         /* tensor data (padded) part of it                 */
    uint64_t n_params;           /* elements in all tensors                         */
    uint32_t n_tensors;
    uint32_t n_merges;           /* BPE merges in the vocabulary                    */
} eng_mkmodel_info;

/* Validates the options (unknown preset/arch/type, arch mismatch, layers out
 * of range, locality outside [0,1] -> ENG_EINVAL with a message naming the
 * option) and computes what the file will be, without writing anything. */
int eng_mkmodel_plan(const eng_mkmodel_opts *o, eng_mkmodel_info *info, eng_err *e);

/* Writes the model to path (atomically, see above); the file's size is
 * eng_mkmodel_plan's file_bytes. Errors: ENG_EINVAL for bad options,
 * ENG_EIO naming the path, ENG_ENOMEM. */
int eng_mkmodel_write(const eng_mkmodel_opts *o, const char *path, eng_err *e);

#endif
