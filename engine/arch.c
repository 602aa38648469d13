/*
 * arch.c — the architecture table (see arch.h).
 *
 * Sources, reference spec §3-4 (llama.cpp 82bb485): rope type from
 * llama_model_rope_type; norm_w from the build_moe_ffn call sites
 * (models/llama.cpp:210 true, qwen2moe.cpp:139 false, qwen3moe.cpp:144 true,
 * olmoe.cpp:144 false); optional `output` from each load_arch_tensors.
 * deepseek2: the router's defaults apply when the file has no
 * expert_gating_func / expert_weights_norm (deepseek2.cpp:20-32).
 */
#include "engine/arch.h"

#include <stdio.h>
#include <string.h>

static const eng_arch arch_table[] = {
    {
        .name = "llama",
        .schema = {.out_bias = ENG_MAY, .ffn_norm = "ffn_norm", .output_tied_allowed = true,
                   .dense_allowed = true, .n_ff_is_expert_width = true,
                   .rot_must_equal_hd = true},
        .traits = {.attn = ENG_ATTN_MHA, .rope = ENG_ROPE_NORM, .qk_norm = ENG_QKNORM_NONE,
                   .gating = ENG_GATING_SOFTMAX_TOPK, .norm_topk = true,
                   .shexp = ENG_SHEXP_NONE, .act = ENG_ACT_SWIGLU},
    },
    {
        .name = "qwen2moe",
        .schema = {.qkv_bias = ENG_MUST, .ffn_norm = "ffn_norm"},
        .traits = {.attn = ENG_ATTN_MHA, .rope = ENG_ROPE_NEOX, .qk_norm = ENG_QKNORM_NONE,
                   .gating = ENG_GATING_SOFTMAX_TOPK, .norm_topk = false,
                   .shexp = ENG_SHEXP_GATED, .act = ENG_ACT_SWIGLU},
    },
    {
        .name = "qwen3moe",
        .schema = {.qk_norm = ENG_MUST, .ffn_norm = "ffn_norm", .output_tied_allowed = true},
        .traits = {.attn = ENG_ATTN_MHA, .rope = ENG_ROPE_NEOX, .qk_norm = ENG_QKNORM_HEAD,
                   .gating = ENG_GATING_SOFTMAX_TOPK, .norm_topk = true,
                   .shexp = ENG_SHEXP_NONE, .act = ENG_ACT_SWIGLU},
    },
    {
        .name = "olmoe",
        .schema = {.qk_norm = ENG_MUST, .ffn_norm = "ffn_norm", .n_ff_is_expert_width = true},
        .traits = {.attn = ENG_ATTN_MHA, .rope = ENG_ROPE_NEOX, .qk_norm = ENG_QKNORM_FULL,
                   .gating = ENG_GATING_SOFTMAX_TOPK, .norm_topk = false,
                   .shexp = ENG_SHEXP_NONE, .act = ENG_ACT_SWIGLU},
    },
    {
        /* DeepSeek-V2/V2-Lite/V3/R1, Kimi-K2 (spec part 2 §1; models/deepseek2.cpp) */
        .name = "deepseek2",
        .schema = {.exp_probs_b = ENG_MAY, .ffn_norm = "ffn_norm", .output_tied_allowed = true,
                   .ff_exp_required = true, .shexp_width = ENG_SHW_COUNT, .dense_lead = true,
                   .nextn = true, .nextn_optional_rule = true, .router_from_file = true,
                   .gating_glm47_rule = true, .yarn_log_mul = true},
        .traits = {.attn = ENG_ATTN_MLA, .rope = ENG_ROPE_NORM, .qk_norm = ENG_QKNORM_NONE,
                   .gating = ENG_GATING_SOFTMAX_TOPK, .norm_topk = false,
                   .shexp = ENG_SHEXP_PLAIN, .act = ENG_ACT_SWIGLU},
    },
    {
        /* gpt-oss-20b/120b (spec part 2 §2; models/openai-moe.cpp) */
        .name = "gpt-oss",
        .schema = {.qkv_bias = ENG_MAY, .out_bias = ENG_MUST, .router_bias = ENG_MUST,
                   .expert_bias = ENG_MUST, .sinks = ENG_MUST, .ffn_norm = "post_attention_norm",
                   .ff_exp_required = true, .rot_must_equal_hd = true, .sliding_window = true},
        .traits = {.attn = ENG_ATTN_MHA, .rope = ENG_ROPE_NEOX, .qk_norm = ENG_QKNORM_NONE,
                   .gating = ENG_GATING_TOPK_SOFTMAX, .norm_topk = false,
                   .shexp = ENG_SHEXP_NONE, .act = ENG_ACT_SWIGLU_OAI},
    },
    {
        /* GLM-4.5, 4.5-Air, 4.6 (spec part 2 §3; models/glm4-moe.cpp) */
        .name = "glm4moe",
        .schema = {.qkv_bias = ENG_MAY, .qk_norm = ENG_MAY, .exp_probs_b = ENG_MUST,
                   .ffn_norm = "post_attention_norm", .output_tied_allowed = true,
                   .ff_exp_required = true, .shexp_width = ENG_SHW_COUNT, .dense_lead = true,
                   .nextn = true, .router_from_file = true},
        .traits = {.attn = ENG_ATTN_MHA, .rope = ENG_ROPE_NEOX, .qk_norm = ENG_QKNORM_HEAD,
                   .gating = ENG_GATING_SIGMOID, .norm_topk = false,
                   .shexp = ENG_SHEXP_PLAIN, .act = ENG_ACT_SWIGLU},
    },
};

enum { N_ARCH = sizeof arch_table / sizeof arch_table[0] };

const eng_arch *eng_arch_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < N_ARCH; i++)
        if (strcmp(arch_table[i].name, name) == 0)
            return &arch_table[i];
    return NULL;
}

const char *eng_attn_kind_name(eng_attn_kind k)
{
    switch (k) {
    case ENG_ATTN_MHA: return "mha";
    case ENG_ATTN_MLA: return "mla";
    }
    return "?";
}

const char *eng_gating_name(eng_gating g)
{
    switch (g) {
    case ENG_GATING_SOFTMAX_TOPK: return "softmax";
    case ENG_GATING_TOPK_SOFTMAX: return "topk-softmax";
    case ENG_GATING_SIGMOID: return "sigmoid";
    }
    return "?";
}

void eng_arch_names(char *buf, size_t cap)
{
    size_t o = 0;
    if (cap)
        buf[0] = '\0';
    for (size_t i = 0; i < N_ARCH && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", arch_table[i].name);
}
