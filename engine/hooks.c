/* hooks.c — region names. See hooks.h. */
#include "engine/hooks.h"

const char *eng_region_name(eng_region r)
{
    static const char *const names[ENG_REGION_COUNT] = {
        [ENG_REGION_EMBED] = "embed",
        [ENG_REGION_ATTENTION] = "attention",
        [ENG_REGION_ROUTER] = "router",
        [ENG_REGION_EXPERT_FFN] = "expert_ffn",
        [ENG_REGION_SHARED_EXPERT] = "shared_expert",
        [ENG_REGION_EXPERT_WAIT] = "expert_wait",
        [ENG_REGION_EXPERT_LOAD] = "expert_load",
        [ENG_REGION_LM_HEAD] = "lm_head",
        [ENG_REGION_SAMPLING] = "sampling",
        [ENG_REGION_ATTN_PROJ] = "attn_proj",
        [ENG_REGION_ATTN_LATENT] = "attn_latent",
        [ENG_REGION_ATTN_CORE] = "attn_core",
    };
    return (r >= 0 && r < ENG_REGION_COUNT) ? names[r] : "unknown";
}
