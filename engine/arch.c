/*
 * arch.c — the architecture table (see arch.h).
 *
 * Sources, reference spec §3-4 (llama.cpp 82bb485): rope type from
 * llama_model_rope_type; norm_w from the build_moe_ffn call sites
 * (models/llama.cpp:210 true, qwen2moe.cpp:139 false, qwen3moe.cpp:144 true,
 * olmoe.cpp:144 false); optional `output` from each load_arch_tensors.
 */
#include "engine/arch.h"

#include <string.h>

static const eng_arch arch_table[] = {
    {
        .name = "llama", .rope = ENG_ROPE_NORM, .qk_norm = ENG_QKNORM_NONE,
        .norm_topk = true, .attn_out_bias_allowed = true, .output_tied_allowed = true,
        .dense_allowed = true, .n_ff_is_expert_width = true, .rot_must_equal_hd = true,
    },
    {
        .name = "qwen2moe", .rope = ENG_ROPE_NEOX, .qk_norm = ENG_QKNORM_NONE,
        .norm_topk = false, .shared_expert = true, .qkv_bias = true,
    },
    {
        .name = "qwen3moe", .rope = ENG_ROPE_NEOX, .qk_norm = ENG_QKNORM_HEAD,
        .norm_topk = true, .output_tied_allowed = true,
    },
    {
        .name = "olmoe", .rope = ENG_ROPE_NEOX, .qk_norm = ENG_QKNORM_FULL,
        .norm_topk = false, .n_ff_is_expert_width = true,
    },
};

const eng_arch *eng_arch_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (strcmp(arch_table[i].name, name) == 0)
            return &arch_table[i];
    return NULL;
}

const char *eng_arch_names(void)
{
    return "llama, qwen2moe, qwen3moe, olmoe";
}
