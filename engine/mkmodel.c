/*
 * mkmodel.c — synthetic MoE models in GGUF (see mkmodel.h).
 *
 * A model is planned first: the list of key/values and the list of tensors
 * (name, type, shape, how to generate it). The plan gives the exact file
 * size without writing (eng_mkmodel_plan) and drives the writer, which
 * streams tensor data in chunks of whole rows: memory use is a few MB for
 * any preset.
 *
 * Weights. Element i of a tensor is
 *     mean + std * N(key, i) + topic_coef * u_{topic(row)}[i mod ne0]
 * where N is a normal variate from a counter-based generator (splitmix64 of
 * key + i, Irwin-Hall sum of four 16-bit uniforms: mean 0, variance 1,
 * bounded by 3.46), key = splitmix64(seed) mixed with a hash of the tensor
 * name. Scales keep activations finite through any depth: projections
 * std 1/sqrt(fan_in), the two projections that write into the residual
 * stream (attn_output, ffn_down*) also divided by sqrt(2 * n_layer), norms
 * 1 + 0.02 N, biases 0.02 N, embeddings rms 1.
 *
 * Router locality X (docs/engine.md, "Synthetic models (mkmodel)"): T =
 * max(1, E / k) topics, each a random unit direction u_t in R^n_embd.
 * Token v belongs to topic floor(v * T / n_vocab) (contiguous id blocks).
 * In layer l a seeded permutation of the experts gives topic t the experts
 * perm_l[t*k .. t*k+k-1]. Then, with a = 0.75 X:
 *     token_embd[v]   = sqrt(1-a) g + sqrt(a) sqrt(n_embd) u_{topic(v)}
 *     ffn_gate_inp[e] = g / sqrt(n_embd) + 8 X / sqrt(n_embd) u_{topic(e)}
 *     output[v]       = g / sqrt(n_embd) + 4 X / sqrt(n_embd) u_{topic(v)}
 * (g a fresh N(0,1) vector each time; experts of no topic get only g).
 * For an RMS-normalised hidden state carrying its token's embedding, the
 * logit of each expert of the token's topic rises by about 8 X sqrt(a)
 * (6.9 at X = 1), so tokens of one topic route to the same experts; X = 0
 * gives plain random weights.
 */
#include "engine/mkmodel.h"
#include "engine/formats.h"
#include "engine/gguf.h"
#include "engine/mkvocab.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_THREADS 8 /* generator threads at most */

/* ---- presets --------------------------------------------------------------- */

/* The presets of the first architectures, positionally: name, arch, descr,
 * tok_pre, n_vocab, n_ctx, n_embd, n_layer, n_head, n_head_kv, head_dim,
 * n_expert, n_expert_used, n_ff_exp, n_ff_shexp, n_ff_dense, rms_eps,
 * rope_base. */
#define P(nm, ar, de, pre, V, C, D, L, H, HKV, HD, E, K, F, S, FF, EPS, BASE)                \
    {.name = nm, .arch = ar, .descr = de, .tok_pre = pre, .n_vocab = V, .n_ctx = C,           \
     .n_embd = D, .n_layer = L, .n_head = H, .n_head_kv = HKV, .head_dim = HD, .n_expert = E, \
     .n_expert_used = K, .n_ff_exp = F, .n_ff_shexp = S, .n_ff_dense = FF, .rms_eps = EPS,   \
     .rope_base = BASE}

static const eng_mkmodel_preset k_presets[] = {
    P("tiny-mixtral", "llama", "Mixtral-like, 8 experts top-2, for tests", "default",
     512, 2048, 64, 4, 4, 2, 16, 8, 2, 128, 0, 0, 1e-5f, 1e6f),
    P("tiny-qwen2moe", "qwen2moe", "Qwen2-MoE-like with a shared expert, for tests", "qwen2",
     512, 2048, 64, 4, 4, 4, 16, 8, 4, 32, 128, 128, 1e-6f, 1e6f),
    P("tiny-qwen3moe", "qwen3moe", "Qwen3-MoE-like, head_dim 32 != 64/4, for tests", "qwen2",
     512, 2048, 64, 4, 4, 2, 32, 16, 4, 32, 0, 128, 1e-6f, 1e6f),
    P("tiny-olmoe", "olmoe", "OLMoE-like, 16 experts top-4, for tests", "olmo",
     512, 2048, 64, 4, 4, 4, 16, 16, 4, 32, 0, 0, 1e-5f, 1e4f),
    P("mixtral-8x7b", "llama", "Mixtral-8x7B dimensions (46.7B params at 32 layers)", "default",
     32000, 32768, 4096, 32, 32, 8, 128, 8, 2, 14336, 0, 0, 1e-5f, 1e6f),
    P("qwen1.5-moe-a2.7b", "qwen2moe", "Qwen1.5-MoE-A2.7B dimensions (60 experts + shared)",
     "qwen2", 151936, 8192, 2048, 24, 16, 16, 128, 60, 4, 1408, 5632, 5632, 1e-6f, 1e6f),
    P("qwen3-30b-a3b", "qwen3moe", "Qwen3-30B-A3B dimensions (128 experts top-8)", "qwen2",
     151936, 40960, 2048, 48, 32, 4, 128, 128, 8, 768, 0, 6144, 1e-6f, 1e6f),
    P("olmoe-1b-7b", "olmoe", "OLMoE-1B-7B dimensions (64 experts top-8)", "olmo",
     50304, 4096, 2048, 16, 16, 16, 128, 64, 8, 1024, 0, 0, 1e-5f, 1e4f),
    /* every matrix width a multiple of 256, so K-quant types apply without
     * falling back; for the K-quant tests */
    P("tiny-k-mixtral", "llama", "tiny-mixtral with widths of 256 (K-quants), for tests",
     "default", 512, 2048, 256, 2, 4, 2, 64, 8, 2, 256, 0, 0, 1e-5f, 1e6f),
    P("tiny-k-qwen2moe", "qwen2moe", "tiny-qwen2moe with widths of 256 (K-quants), for tests",
     "qwen2", 512, 2048, 256, 2, 4, 4, 64, 8, 4, 256, 256, 256, 1e-6f, 1e6f),
    P("tiny-k-qwen3moe", "qwen3moe", "tiny-qwen3moe with widths of 256 (K-quants), for tests",
     "qwen2", 512, 2048, 256, 2, 8, 2, 64, 16, 4, 256, 0, 256, 1e-6f, 1e6f),
    P("tiny-k-olmoe", "olmoe", "tiny-olmoe with widths of 256 (K-quants), for tests", "olmo",
     512, 2048, 256, 2, 4, 4, 64, 16, 4, 256, 0, 0, 1e-5f, 1e4f),
    /* deepseek2. Dimensions from the models' published configurations
     * (docs/engine.md "Presets" says which source each value is checked
     * against); head_dim is dk = nope + rope, shown by --list only. */
    {.name = "tiny-deepseek2", .arch = "deepseek2", .tok_pre = "deepseek-v3",
     .descr = "DeepSeek-V3-like: q-LoRA, sigmoid + bias + groups, 1 dense layer, for tests",
     .n_vocab = 512, .n_ctx = 2048, .n_embd = 64, .n_layer = 4, .n_head = 4, .n_head_kv = 1,
     .head_dim = 48, .n_expert = 8, .n_expert_used = 2, .n_ff_exp = 32, .n_ff_shexp = 32,
     .n_ff_dense = 96, .rms_eps = 1e-6f, .rope_base = 10000.0f, .n_layer_dense = 1,
     .n_shared = 1, .q_lora_rank = 32, .kv_lora_rank = 32, .qk_nope = 32, .qk_rope = 16,
     .v_head_dim = 32, .gating = 2, .exp_probs_b = true, .weights_norm = true,
     .weights_scale = 2.5f, .n_group = 4, .n_group_used = 2, .yarn_factor = 4.0f,
     .yarn_orig_ctx = 512, .yarn_log_mul = 1.0f},
    {.name = "tiny-deepseek2-lite", .arch = "deepseek2", .tok_pre = "deepseek-llm",
     .descr = "DeepSeek-V2-Lite-like: no q-LoRA, softmax, 2 shared experts, for tests",
     .n_vocab = 512, .n_ctx = 2048, .n_embd = 64, .n_layer = 4, .n_head = 4, .n_head_kv = 1,
     .head_dim = 48, .n_expert = 16, .n_expert_used = 3, .n_ff_exp = 32, .n_ff_shexp = 64,
     .n_ff_dense = 96, .rms_eps = 1e-6f, .rope_base = 10000.0f, .n_layer_dense = 1,
     .n_shared = 2, .q_lora_rank = 0, .kv_lora_rank = 32, .qk_nope = 32, .qk_rope = 16,
     .v_head_dim = 32, .gating = 1, .weights_scale = 1.0f, .n_group = 1, .n_group_used = 1,
     .yarn_factor = 4.0f, .yarn_orig_ctx = 512, .yarn_log_mul = 0.707f},
    {.name = "deepseek-v2-lite", .arch = "deepseek2", .tok_pre = "deepseek-llm",
     .descr = "DeepSeek-V2-Lite dimensions (64 experts top-6 + 2 shared, MLA)",
     .n_vocab = 102400, .n_ctx = 163840, .n_embd = 2048, .n_layer = 27, .n_head = 16,
     .n_head_kv = 1, .head_dim = 192, .n_expert = 64, .n_expert_used = 6, .n_ff_exp = 1408,
     .n_ff_shexp = 2816, .n_ff_dense = 10944, .rms_eps = 1e-6f, .rope_base = 10000.0f,
     .n_layer_dense = 1, .n_shared = 2, .q_lora_rank = 0, .kv_lora_rank = 512, .qk_nope = 128,
     .qk_rope = 64, .v_head_dim = 128, .gating = 1, .weights_scale = 1.0f, .n_group = 1,
     .n_group_used = 1, .yarn_factor = 40.0f, .yarn_orig_ctx = 4096, .yarn_log_mul = 0.707f},
    {.name = "deepseek-v3", .arch = "deepseek2", .tok_pre = "deepseek-v3",
     .descr = "DeepSeek-V3/R1 dimensions (256 experts top-8 + 1 shared, groups 8/4, MLA)",
     .n_vocab = 129280, .n_ctx = 163840, .n_embd = 7168, .n_layer = 61, .n_head = 128,
     .n_head_kv = 1, .head_dim = 192, .n_expert = 256, .n_expert_used = 8, .n_ff_exp = 2048,
     .n_ff_shexp = 2048, .n_ff_dense = 18432, .rms_eps = 1e-6f, .rope_base = 10000.0f,
     .n_layer_dense = 3, .n_shared = 1, .q_lora_rank = 1536, .kv_lora_rank = 512,
     .qk_nope = 128, .qk_rope = 64, .v_head_dim = 128, .gating = 2, .exp_probs_b = true,
     .weights_norm = true, .weights_scale = 2.5f, .n_group = 8, .n_group_used = 4,
     .yarn_factor = 40.0f, .yarn_orig_ctx = 4096, .yarn_log_mul = 1.0f},
    {.name = "kimi-k2", .arch = "deepseek2", .tok_pre = "kimi-k2",
     .descr = "Kimi-K2 dimensions (384 experts top-8 + 1 shared, 64 heads, MLA)",
     .n_vocab = 163840, .n_ctx = 131072, .n_embd = 7168, .n_layer = 61, .n_head = 64,
     .n_head_kv = 1, .head_dim = 192, .n_expert = 384, .n_expert_used = 8, .n_ff_exp = 2048,
     .n_ff_shexp = 2048, .n_ff_dense = 18432, .rms_eps = 1e-6f, .rope_base = 50000.0f,
     .n_layer_dense = 1, .n_shared = 1, .q_lora_rank = 1536, .kv_lora_rank = 512,
     .qk_nope = 128, .qk_rope = 64, .v_head_dim = 128, .gating = 2, .exp_probs_b = true,
     .weights_norm = true, .weights_scale = 2.827f, .n_group = 1, .n_group_used = 1,
     .yarn_factor = 32.0f, .yarn_orig_ctx = 4096, .yarn_log_mul = 1.0f},
    /* gpt-oss: every layer's q/k/v/output biased, attention sinks, even
     * layers under a sliding window, router and expert biases, SwiGLU-OAI */
    {.name = "tiny-gpt-oss", .arch = "gpt-oss", .tok_pre = "gpt-4o",
     .descr = "gpt-oss-like: sinks, sliding window 8 on even layers, biases, for tests",
     .n_vocab = 512, .n_ctx = 2048, .n_embd = 64, .n_layer = 4, .n_head = 4, .n_head_kv = 2,
     .head_dim = 32, .n_expert = 8, .n_expert_used = 2, .n_ff_exp = 64, .rms_eps = 1e-5f,
     .rope_base = 150000.0f, .n_swa = 8, .yarn_factor = 4.0f, .yarn_orig_ctx = 512},
    {.name = "gpt-oss-20b", .arch = "gpt-oss", .tok_pre = "gpt-4o",
     .descr = "gpt-oss-20b dimensions (32 experts top-4, sliding window 128)",
     .n_vocab = 201088, .n_ctx = 131072, .n_embd = 2880, .n_layer = 24, .n_head = 64,
     .n_head_kv = 8, .head_dim = 64, .n_expert = 32, .n_expert_used = 4, .n_ff_exp = 2880,
     .rms_eps = 1e-5f, .rope_base = 150000.0f, .n_swa = 128, .yarn_factor = 32.0f,
     .yarn_orig_ctx = 4096},
    {.name = "gpt-oss-120b", .arch = "gpt-oss", .tok_pre = "gpt-4o",
     .descr = "gpt-oss-120b dimensions (128 experts top-4, sliding window 128)",
     .n_vocab = 201088, .n_ctx = 131072, .n_embd = 2880, .n_layer = 36, .n_head = 64,
     .n_head_kv = 8, .head_dim = 64, .n_expert = 128, .n_expert_used = 4, .n_ff_exp = 2880,
     .rms_eps = 1e-5f, .rope_base = 150000.0f, .n_swa = 128, .yarn_factor = 32.0f,
     .yarn_orig_ctx = 4096},
    /* glm4moe: partial rotary, q/k/v biases, sigmoid routing with a
     * selection bias, a shared expert, dense lead layers, one MTP layer
     * written after the layers that run (block_count = n_layer + 1) */
    {.name = "tiny-glm4moe", .arch = "glm4moe", .tok_pre = "glm4",
     .descr = "GLM-4.5-like: qk-norm, partial rotary, 1 dense + 1 MTP layer, for tests",
     .n_vocab = 512, .n_ctx = 2048, .n_embd = 64, .n_layer = 4, .n_head = 4, .n_head_kv = 2,
     .head_dim = 32, .n_rot = 16, .n_expert = 16, .n_expert_used = 4, .n_ff_exp = 32,
     .n_ff_shexp = 32, .n_ff_dense = 96, .rms_eps = 1e-5f, .rope_base = 1000000.0f,
     .n_layer_dense = 1, .n_shared = 1, .gating = 2, .exp_probs_b = true,
     .weights_norm = true, .weights_scale = 2.5f, .n_nextn = 1, .qk_norm = true},
    {.name = "glm-4.5-air", .arch = "glm4moe", .tok_pre = "glm4",
     .descr = "GLM-4.5-Air dimensions (128 experts top-8 + 1 shared, +1 MTP layer)",
     .n_vocab = 151552, .n_ctx = 131072, .n_embd = 4096, .n_layer = 46, .n_head = 96,
     .n_head_kv = 8, .head_dim = 128, .n_rot = 64, .n_expert = 128, .n_expert_used = 8,
     .n_ff_exp = 1408, .n_ff_shexp = 1408, .n_ff_dense = 10944, .rms_eps = 1e-5f,
     .rope_base = 1000000.0f, .n_layer_dense = 1, .n_shared = 1, .gating = 2,
     .exp_probs_b = true, .weights_norm = true, .weights_scale = 1.0f, .n_nextn = 1},
    {.name = "glm-4.5", .arch = "glm4moe", .tok_pre = "glm4",
     .descr = "GLM-4.5 dimensions (160 experts top-8 + 1 shared, qk-norm, +1 MTP layer)",
     .n_vocab = 151552, .n_ctx = 131072, .n_embd = 5120, .n_layer = 92, .n_head = 96,
     .n_head_kv = 8, .head_dim = 128, .n_rot = 64, .n_expert = 160, .n_expert_used = 8,
     .n_ff_exp = 1536, .n_ff_shexp = 1536, .n_ff_dense = 12288, .rms_eps = 1e-5f,
     .rope_base = 1000000.0f, .n_layer_dense = 3, .n_shared = 1, .gating = 2,
     .exp_probs_b = true, .weights_norm = true, .weights_scale = 2.5f, .n_nextn = 1,
     .qk_norm = true},
};
#define N_PRESETS (sizeof k_presets / sizeof k_presets[0])

size_t eng_mkmodel_preset_count(void) { return N_PRESETS; }

const eng_mkmodel_preset *eng_mkmodel_preset_at(size_t i)
{
    return i < N_PRESETS ? &k_presets[i] : NULL;
}

const eng_mkmodel_preset *eng_mkmodel_preset_find(const char *name)
{
    for (size_t i = 0; name && i < N_PRESETS; i++)
        if (!strcmp(k_presets[i].name, name))
            return &k_presets[i];
    return NULL;
}

/* ---- architectures ------------------------------------------------------------ */

/* What a file of each architecture holds beyond the common keys and tensors,
 * as llama.cpp's converter writes it (spec part 1 §3-6, part 2 §1-3). One
 * row per architecture; the presets give the sizes. */
typedef enum { MK_QKN_NONE, MK_QKN_HEAD, MK_QKN_FULL } mk_qk_norm;

typedef struct mk_arch {
    const char *arch;            /* general.architecture                          */
    const char *alias;           /* also accepted by --arch (NULL: none)          */
    bool mla;                    /* deepseek2's attention (plan_attention_mla)    */
    bool qkv_bias, out_bias;     /* attn_{q,k,v}.bias; attn_output.bias           */
    mk_qk_norm qk_norm;          /* per head {hd} or whole vector; HEAD is optional
                                  * per preset where qk_norm_optional             */
    bool qk_norm_optional;
    bool sinks;                  /* attn_sinks.weight {H} (gpt-oss)               */
    const char *ffn_norm;        /* the FFN's input norm                          */
    bool router_bias, expert_bias; /* ffn_gate_inp.bias; ffn_*_exps.bias          */
    bool shexp_gate;             /* qwen2moe's sigmoid gate on the shared expert  */
    bool key_length;             /* writes attention.key_length/value_length      */
    bool rope_dims;              /* writes rope.dimension_count (n_rot)           */
    bool ff_dense;               /* feed_forward_length is the dense FFN's width  */
    bool ff_exp_key;             /* writes expert_feed_forward_length             */
    bool shexp_width_key;        /* writes expert_shared_feed_forward_length      */
    bool shared_count_key;       /* writes expert_shared_count and the routing keys */
    bool vocab_size_key, add_bos;
} mk_arch;

static const mk_arch k_archs[] = {
    {.arch = "llama", .alias = "mixtral", .ffn_norm = "ffn_norm", .rope_dims = true,
     .vocab_size_key = true, .add_bos = true},
    {.arch = "qwen2moe", .qkv_bias = true, .ffn_norm = "ffn_norm", .shexp_gate = true,
     .ff_dense = true, .ff_exp_key = true, .shexp_width_key = true},
    {.arch = "qwen3moe", .qk_norm = MK_QKN_HEAD, .ffn_norm = "ffn_norm", .key_length = true,
     .ff_dense = true, .ff_exp_key = true, .shexp_width_key = true},
    {.arch = "olmoe", .qk_norm = MK_QKN_FULL, .ffn_norm = "ffn_norm"},
    {.arch = "deepseek2", .mla = true, .ffn_norm = "ffn_norm", .ff_dense = true,
     .ff_exp_key = true, .shared_count_key = true},
    {.arch = "gpt-oss", .qkv_bias = true, .out_bias = true, .sinks = true,
     .ffn_norm = "post_attention_norm", .router_bias = true, .expert_bias = true,
     .key_length = true, .ff_exp_key = true},
    {.arch = "glm4moe", .qkv_bias = true, .qk_norm = MK_QKN_HEAD,
     .qk_norm_optional = true, .ffn_norm = "post_attention_norm", .key_length = true,
     .rope_dims = true, .ff_dense = true, .ff_exp_key = true, .shared_count_key = true},
};
#define N_ARCHS (sizeof k_archs / sizeof k_archs[0])

static const mk_arch *arch_find(const char *arch)
{
    for (size_t i = 0; arch && i < N_ARCHS; i++)
        if (!strcmp(k_archs[i].arch, arch))
            return &k_archs[i];
    return NULL;
}

const char *eng_mkmodel_arch_parse(const char *name)
{
    for (size_t i = 0; name && i < N_ARCHS; i++)
        if (!strcmp(name, k_archs[i].arch) || (k_archs[i].alias && !strcmp(name, k_archs[i].alias)))
            return k_archs[i].arch;
    return NULL;
}

void eng_mkmodel_arch_names(char *buf, size_t cap)
{
    size_t o = 0;
    if (cap)
        buf[0] = '\0';
    for (size_t i = 0; i < N_ARCHS && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s%s%s%s", i ? ", " : "",
                              k_archs[i].alias ? k_archs[i].alias : "",
                              k_archs[i].alias ? " (= " : "", k_archs[i].arch,
                              k_archs[i].alias ? ")" : "");
}

/* ---- the plan ---------------------------------------------------------------- */

enum { KV_U32, KV_F32, KV_BOOL, KV_STR, KV_ARR_STR, KV_ARR_I32, KV_ARR_F32 };

typedef struct mk_kv {
    char key[96];
    int kind;
    uint32_t u;
    float f;
    const char *s;             /* KV_STR (static or owned by the plan) */
    size_t n;                  /* arrays: elements                     */
    char *const *strs;         /* KV_ARR_STR (the vocabulary's)        */
    const int32_t *i32;        /* KV_ARR_I32 (the vocabulary's)        */
    const float *f32;          /* KV_ARR_F32 (the vocabulary's)        */
} mk_kv;

/* GEN_KB / GEN_VB: MLA's attn_k_b / attn_v_b, whose elements are those of
 * the layer's attn_kv_b (the legacy form) rearranged as llama.cpp's
 * converter splits it (deepseek.py:429-445): the absorbed and the legacy
 * files of one seed hold the same weights. */
enum { GEN_NORMAL, GEN_EMBED, GEN_ROUTER, GEN_OUTPUT, GEN_KB, GEN_VB };

typedef struct mk_tensor {
    char name[64];
    int type, n_dims;
    int64_t ne[4];
    int gen, layer;          /* GEN_*; layer for GEN_ROUTER              */
    float mean, std, topic_coef;
} mk_tensor;

typedef struct mk_plan {
    eng_mkmodel_preset hp;
    const mk_arch *a;          /* hp.arch's row */
    int type;
    uint64_t seed;
    double locality;
    eng_mkvocab vocab;
    mk_kv kv[64];              /* the most any architecture writes is ~45 */
    size_t nkv;
    mk_tensor *t;
    size_t nt, capt;
    bool oom;                  /* a tensor could not be added */
    int threads;               /* generator threads, 1..MAX_THREADS */
    bool mla_legacy;           /* deepseek2: attn_kv_b instead of k_b/v_b */
} mk_plan;

static mk_kv *kv_add(mk_plan *p, int kind, const char *fmt, const char *arch)
{
    ENG_ASSERT(p->nkv < sizeof p->kv / sizeof p->kv[0]);
    mk_kv *kv = &p->kv[p->nkv++];
    memset(kv, 0, sizeof *kv);
    snprintf(kv->key, sizeof kv->key, fmt, arch);
    kv->kind = kind;
    return kv;
}

static void kv_u32(mk_plan *p, const char *fmt, uint32_t v)
{
    kv_add(p, KV_U32, fmt, p->hp.arch)->u = v;
}

static void kv_f32(mk_plan *p, const char *fmt, float v)
{
    kv_add(p, KV_F32, fmt, p->hp.arch)->f = v;
}

static void kv_str(mk_plan *p, const char *key, const char *v)
{
    kv_add(p, KV_STR, "%s", key)->s = v;
}

static void kv_bool(mk_plan *p, const char *fmt, bool v)
{
    kv_add(p, KV_BOOL, fmt, p->hp.arch)->u = v;
}

/* The routing keys deepseek2 and glm4moe share (deepseek.py:321-381,
 * glm.py:109-151): gating function, weights norm and scale, groups. */
static void plan_routing_kvs(mk_plan *p)
{
    const eng_mkmodel_preset *h = &p->hp;
    kv_u32(p, "%s.expert_gating_func", h->gating);
    if (h->weights_scale != 0.0f)
        kv_f32(p, "%s.expert_weights_scale", h->weights_scale);
    if (h->weights_norm)
        kv_bool(p, "%s.expert_weights_norm", true);
    if (h->n_group) {
        kv_u32(p, "%s.expert_group_count", h->n_group);
        kv_u32(p, "%s.expert_group_used_count", h->n_group_used);
    }
}

/* MLA's keys (deepseek.py:321-381; spec part 2 §1.1, §5). */
static void plan_mla_kvs(mk_plan *p)
{
    const eng_mkmodel_preset *h = &p->hp;
    const uint32_t dk = h->qk_nope + h->qk_rope;
    kv_u32(p, "%s.attention.q_lora_rank", h->q_lora_rank); /* 0 written: a cut "lite"
                                                              model needs the key */
    kv_u32(p, "%s.attention.kv_lora_rank", h->kv_lora_rank);
    kv_u32(p, "%s.rope.dimension_count", h->qk_rope);
    if (p->mla_legacy) {
        kv_u32(p, "%s.attention.key_length", dk);
        kv_u32(p, "%s.attention.value_length", h->v_head_dim);
    } else {
        kv_u32(p, "%s.attention.key_length", h->kv_lora_rank + h->qk_rope);
        kv_u32(p, "%s.attention.value_length", h->kv_lora_rank);
        kv_u32(p, "%s.attention.key_length_mla", dk);
        kv_u32(p, "%s.attention.value_length_mla", h->v_head_dim);
    }
}

/* rope.scaling as YaRN; the log multiplier only where the model has one
 * (deepseek2's mscale_all_dim, written x 0.1 as the converter does). */
static void plan_yarn_kvs(mk_plan *p)
{
    const eng_mkmodel_preset *h = &p->hp;
    kv_add(p, KV_STR, "%s.rope.scaling.type", h->arch)->s = "yarn";
    kv_f32(p, "%s.rope.scaling.factor", h->yarn_factor);
    kv_u32(p, "%s.rope.scaling.original_context_length", h->yarn_orig_ctx);
    if (h->yarn_log_mul != 0.0f)
        kv_f32(p, "%s.rope.scaling.yarn_log_multiplier", 0.1f * h->yarn_log_mul);
}

/* Keys as llama.cpp's converter writes them for each architecture. */
static void plan_kvs(mk_plan *p)
{
    const eng_mkmodel_preset *h = &p->hp;
    const mk_arch *a = p->a;
    kv_str(p, "general.architecture", h->arch);
    kv_str(p, "general.name", h->name);
    kv_u32(p, "general.file_type", eng_mkmodel_type_ftype(p->type));
    if (eng_mkmodel_type_quantized(p->type))
        kv_u32(p, "general.quantization_version", 2);
    kv_u32(p, "%s.block_count", h->n_layer + h->n_nextn);
    kv_u32(p, "%s.context_length", h->n_ctx);
    kv_u32(p, "%s.embedding_length", h->n_embd);
    kv_u32(p, "%s.feed_forward_length", a->ff_dense ? h->n_ff_dense : h->n_ff_exp);
    kv_u32(p, "%s.attention.head_count", h->n_head);
    kv_u32(p, "%s.attention.head_count_kv", p->mla_legacy ? h->n_head : h->n_head_kv);
    if (a->key_length) {
        kv_u32(p, "%s.attention.key_length", h->head_dim);
        kv_u32(p, "%s.attention.value_length", h->head_dim);
    }
    kv_f32(p, "%s.rope.freq_base", h->rope_base);
    if (a->rope_dims)
        kv_u32(p, "%s.rope.dimension_count", h->n_rot ? h->n_rot : h->head_dim);
    kv_f32(p, "%s.attention.layer_norm_rms_epsilon", h->rms_eps);
    kv_u32(p, "%s.expert_count", h->n_expert);
    kv_u32(p, "%s.expert_used_count", h->n_expert_used);
    if (a->ff_exp_key && !a->shared_count_key)
        kv_u32(p, "%s.expert_feed_forward_length", h->n_ff_exp);
    if (h->n_ff_shexp && a->shexp_width_key)
        kv_u32(p, "%s.expert_shared_feed_forward_length", h->n_ff_shexp);
    if (a->vocab_size_key)
        kv_u32(p, "%s.vocab_size", h->n_vocab);
    if (h->n_swa)
        kv_u32(p, "%s.attention.sliding_window", h->n_swa);
    if (a->shared_count_key) {
        kv_u32(p, "%s.leading_dense_block_count", h->n_layer_dense);
        kv_u32(p, "%s.expert_feed_forward_length", h->n_ff_exp);
        kv_u32(p, "%s.expert_shared_count", h->n_shared);
        if (a->mla)
            plan_mla_kvs(p);
        plan_routing_kvs(p);
    }
    if (h->n_nextn)
        kv_u32(p, "%s.nextn_predict_layers", h->n_nextn);
    if (h->yarn_factor > 0)
        plan_yarn_kvs(p);
}

/* An array of the vocabulary's (strings, int32 or float32 by kind). */
static void kv_arr(mk_plan *p, int kind, const char *key, size_t n, const void *v)
{
    mk_kv *kv = kv_add(p, kind, "%s", key);
    kv->n = n;
    if (kind == KV_ARR_STR)
        kv->strs = v;
    else if (kind == KV_ARR_I32)
        kv->i32 = v;
    else
        kv->f32 = v;
}

static void kv_key_u32(mk_plan *p, const char *key, uint32_t v)
{
    kv_add(p, KV_U32, "%s", key)->u = v;
}

static void kv_key_bool(mk_plan *p, const char *key, bool v)
{
    kv_add(p, KV_BOOL, "%s", key)->u = v;
}

/* SentencePiece, as Mixtral's files have it: scores instead of merges, an
 * unknown token, BOS added (llama.cpp's defaults spelt out). */
static void plan_spm_kvs(mk_plan *p)
{
    const eng_mkvocab *v = &p->vocab;
    kv_str(p, "tokenizer.ggml.model", "llama");
    kv_arr(p, KV_ARR_STR, "tokenizer.ggml.tokens", v->n_tokens, v->tokens);
    kv_arr(p, KV_ARR_F32, "tokenizer.ggml.scores", v->n_tokens, v->scores);
    kv_arr(p, KV_ARR_I32, "tokenizer.ggml.token_type", v->n_tokens, v->types);
    kv_key_u32(p, "tokenizer.ggml.bos_token_id", v->bos_id);
    kv_key_u32(p, "tokenizer.ggml.eos_token_id", v->eos_id);
    kv_key_u32(p, "tokenizer.ggml.unknown_token_id", v->unk_id);
    kv_key_bool(p, "tokenizer.ggml.add_bos_token", true);
    kv_key_bool(p, "tokenizer.ggml.add_eos_token", false);
}

/* Special ids and flags of a tokenizer.json vocabulary: only those the
 * converter would write (llama.cpp's defaults cover the rest). */
static void plan_json_specials(mk_plan *p)
{
    const eng_mkvocab *v = &p->vocab;
    if (v->has_bos)
        kv_key_u32(p, "tokenizer.ggml.bos_token_id", v->bos_id);
    if (v->has_eos)
        kv_key_u32(p, "tokenizer.ggml.eos_token_id", v->eos_id);
    if (v->has_unk)
        kv_key_u32(p, "tokenizer.ggml.unknown_token_id", v->unk_id);
    if (v->has_pad)
        kv_key_u32(p, "tokenizer.ggml.padding_token_id", v->pad_id);
    if (v->add_bos >= 0)
        kv_key_bool(p, "tokenizer.ggml.add_bos_token", v->add_bos);
    if (v->add_eos >= 0)
        kv_key_bool(p, "tokenizer.ggml.add_eos_token", v->add_eos);
}

/* A vocabulary from a tokenizer.json (mkvocab_json.c), keys as the
 * converter writes them. */
static void plan_json_kvs(mk_plan *p)
{
    const eng_mkvocab *v = &p->vocab;
    kv_str(p, "tokenizer.ggml.model", v->spm ? "llama" : "gpt2");
    kv_str(p, "tokenizer.ggml.pre", v->spm ? "default" : v->pre);
    kv_arr(p, KV_ARR_STR, "tokenizer.ggml.tokens", v->n_tokens, v->tokens);
    if (v->spm)
        kv_arr(p, KV_ARR_F32, "tokenizer.ggml.scores", v->n_tokens, v->scores);
    kv_arr(p, KV_ARR_I32, "tokenizer.ggml.token_type", v->n_tokens, v->types);
    if (!v->spm && v->n_merges)
        kv_arr(p, KV_ARR_STR, "tokenizer.ggml.merges", v->n_merges, v->merges);
    plan_json_specials(p);
    if (v->spm)
        kv_key_bool(p, "tokenizer.ggml.add_space_prefix", v->add_space_prefix);
}

static void plan_tokenizer_kvs(mk_plan *p)
{
    const eng_mkvocab *v = &p->vocab;
    if (v->from_json) {
        plan_json_kvs(p);
        return;
    }
    if (v->spm) {
        plan_spm_kvs(p);
        return;
    }
    kv_str(p, "tokenizer.ggml.model", "gpt2");
    kv_str(p, "tokenizer.ggml.pre", p->hp.tok_pre);
    kv_arr(p, KV_ARR_STR, "tokenizer.ggml.tokens", v->n_tokens, v->tokens);
    kv_arr(p, KV_ARR_I32, "tokenizer.ggml.token_type", v->n_tokens, v->types);
    kv_arr(p, KV_ARR_STR, "tokenizer.ggml.merges", v->n_merges, v->merges);
    kv_key_u32(p, "tokenizer.ggml.bos_token_id", v->bos_id);
    kv_key_u32(p, "tokenizer.ggml.eos_token_id", v->eos_id);
    /* Mixtral's tokenizer adds BOS; Qwen's and OLMoE's do not */
    kv_key_bool(p, "tokenizer.ggml.add_bos_token", p->a->add_bos);
}

static mk_tensor *tensor_add(mk_plan *p, const char *name, int type, int n_dims, int64_t ne0,
                             int64_t ne1, int64_t ne2)
{
    if (p->nt == p->capt) {
        size_t nc = p->capt ? p->capt * 2 : 64;
        mk_tensor *nt = realloc(p->t, nc * sizeof *nt);
        if (!nt) {
            p->oom = true;
            return NULL;
        }
        p->t = nt;
        p->capt = nc;
    }
    mk_tensor *t = &p->t[p->nt++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->ne[3] = 1;
    t->gen = GEN_NORMAL;
    return t;
}

/* Adds a tensor; NULL only when out of memory (checked once at the end). */
static mk_tensor *T(mk_plan *p, const char *fmt, int layer, int type, int n_dims, int64_t ne0,
                    int64_t ne1, int64_t ne2, float mean, float std)
{
    char name[64];
    snprintf(name, sizeof name, fmt, layer);
    mk_tensor *t = tensor_add(p, name, type, n_dims, ne0, ne1, ne2);
    if (t) {
        t->mean = mean;
        t->std = std;
        t->layer = layer;
    }
    return t;
}

#define F32 ENG_MK_F32
#define NORM_STD 0.02f

/* A weight matrix: its type is decided from its name once every tensor is
 * planned (assign_types, eng_mkmodel_tensor_type); `more` (llama.cpp gives
 * it more bits in the mixes) and ne0 only say so at the call site. */
#define MK_MATRIX (-1)
static int MT(const mk_plan *p, bool more, int64_t ne0)
{
    (void)p, (void)more, (void)ne0;
    return MK_MATRIX;
}

static void assign_types(mk_plan *p)
{
    bool tied = true;
    for (size_t i = 0; i < p->nt; i++)
        tied &= strcmp(p->t[i].name, "output.weight") != 0;
    eng_mkmodel_preset hp = p->hp; /* head_count_kv as written (plan_kvs) */
    if (p->mla_legacy)
        hp.n_head_kv = hp.n_head;
    for (size_t i = 0; i < p->nt; i++)
        if (p->t[i].type == MK_MATRIX)
            p->t[i].type = eng_mkmodel_tensor_type(p->type, p->t[i].name, p->t[i].ne[0], &hp, tied);
}

/* A bias of layer l: ne0 elements, for each of ne1 experts (1: a vector). */
static void B(mk_plan *p, const char *fmt, int l, int64_t ne0, int64_t ne1)
{
    T(p, fmt, l, F32, ne1 > 1 ? 2 : 1, ne0, ne1, 1, 0, NORM_STD);
}

static void plan_attention(mk_plan *p, int l, float out_scale)
{
    const eng_mkmodel_preset *h = &p->hp;
    const mk_arch *a = p->a;
    int64_t n = h->n_embd, q = (int64_t)h->n_head * h->head_dim,
            kv = (int64_t)h->n_head_kv * h->head_dim;
    float in_std = 1.0f / sqrtf((float)n);
    T(p, "blk.%d.attn_norm.weight", l, F32, 1, n, 1, 1, 1, NORM_STD);
    T(p, "blk.%d.attn_q.weight", l, MT(p, false, n), 2, n, q, 1, 0, in_std);
    if (a->qkv_bias)
        B(p, "blk.%d.attn_q.bias", l, q, 1);
    T(p, "blk.%d.attn_k.weight", l, MT(p, false, n), 2, n, kv, 1, 0, in_std);
    if (a->qkv_bias)
        B(p, "blk.%d.attn_k.bias", l, kv, 1);
    T(p, "blk.%d.attn_v.weight", l, MT(p, true, n), 2, n, kv, 1, 0, in_std);
    if (a->qkv_bias)
        B(p, "blk.%d.attn_v.bias", l, kv, 1);
    T(p, "blk.%d.attn_output.weight", l, MT(p, false, q), 2, q, n, 1, 0,
      out_scale / sqrtf((float)q));
    if (a->out_bias)
        B(p, "blk.%d.attn_output.bias", l, n, 1);
    if (a->sinks) /* one logit per head; N(0, 1) so that it matters */
        T(p, "blk.%d.attn_sinks.weight", l, F32, 1, h->n_head, 1, 1, 0, 1.0f);
    bool qk_norm = a->qk_norm != MK_QKN_NONE && (!a->qk_norm_optional || h->qk_norm);
    if (qk_norm && a->qk_norm == MK_QKN_HEAD) { /* per-head QK-norm {hd} */
        T(p, "blk.%d.attn_q_norm.weight", l, F32, 1, h->head_dim, 1, 1, 1, NORM_STD);
        T(p, "blk.%d.attn_k_norm.weight", l, F32, 1, h->head_dim, 1, 1, 1, NORM_STD);
    } else if (qk_norm) { /* whole-vector QK-norm {n_embd} */
        T(p, "blk.%d.attn_q_norm.weight", l, F32, 1, q, 1, 1, 1, NORM_STD);
        T(p, "blk.%d.attn_k_norm.weight", l, F32, 1, kv, 1, 1, 1, NORM_STD);
    }
}

/* MLA's attention tensors (deepseek2.cpp:100-127); attn_k_b/attn_v_b are
 * attn_kv_b's weights rearranged (GEN_KB/GEN_VB), so the two forms of a
 * seed compute the same function. */
static void plan_attention_mla(mk_plan *p, int l, float out_scale)
{
    const eng_mkmodel_preset *h = &p->hp;
    const int64_t n = h->n_embd, H = h->n_head, Rq = h->q_lora_rank, Rkv = h->kv_lora_rank;
    const int64_t nope = h->qk_nope, dk = nope + h->qk_rope, dv = h->v_head_dim;
    const float in_std = 1.0f / sqrtf((float)n), kv_std = 1.0f / sqrtf((float)Rkv);
    T(p, "blk.%d.attn_norm.weight", l, F32, 1, n, 1, 1, 1, NORM_STD);
    if (Rq) {
        T(p, "blk.%d.attn_q_a_norm.weight", l, F32, 1, Rq, 1, 1, 1, NORM_STD);
        T(p, "blk.%d.attn_q_a.weight", l, MT(p, false, n), 2, n, Rq, 1, 0, in_std);
        T(p, "blk.%d.attn_q_b.weight", l, MT(p, false, Rq), 2, Rq, H * dk, 1, 0,
          1.0f / sqrtf((float)Rq));
    } else {
        T(p, "blk.%d.attn_q.weight", l, MT(p, false, n), 2, n, H * dk, 1, 0, in_std);
    }
    T(p, "blk.%d.attn_kv_a_mqa.weight", l, MT(p, false, n), 2, n, Rkv + h->qk_rope, 1, 0,
      in_std);
    T(p, "blk.%d.attn_kv_a_norm.weight", l, F32, 1, Rkv, 1, 1, 1, NORM_STD);
    if (p->mla_legacy) {
        T(p, "blk.%d.attn_kv_b.weight", l, MT(p, false, Rkv), 2, Rkv, H * (nope + dv), 1, 0,
          kv_std);
    } else {
        mk_tensor *kb = T(p, "blk.%d.attn_k_b.weight", l, MT(p, false, nope), 3, nope, Rkv, H,
                          0, kv_std);
        mk_tensor *vb = T(p, "blk.%d.attn_v_b.weight", l, MT(p, true, Rkv), 3, Rkv, dv, H, 0,
                          kv_std);
        if (kb)
            kb->gen = GEN_KB;
        if (vb)
            vb->gen = GEN_VB;
    }
    T(p, "blk.%d.attn_output.weight", l, MT(p, false, H * dv), 2, H * dv, n, 1, 0,
      out_scale / sqrtf((float)(H * dv)));
}

/* The FFN's input norm, by the architecture's name for it. */
static void plan_ffn_norm(mk_plan *p, int l)
{
    char fmt[64];
    snprintf(fmt, sizeof fmt, "blk.%%d.%s.weight", p->a->ffn_norm);
    T(p, fmt, l, F32, 1, p->hp.n_embd, 1, 1, 1, NORM_STD);
}

/* A dense layer's FFN (the leading layers of deepseek2 and glm4moe). */
static void plan_dense_ffn(mk_plan *p, int l, float out_scale)
{
    const eng_mkmodel_preset *h = &p->hp;
    const int64_t n = h->n_embd, ff = h->n_ff_dense;
    const float in_std = 1.0f / sqrtf((float)n);
    plan_ffn_norm(p, l);
    T(p, "blk.%d.ffn_gate.weight", l, MT(p, false, n), 2, n, ff, 1, 0, in_std);
    T(p, "blk.%d.ffn_up.weight", l, MT(p, false, n), 2, n, ff, 1, 0, in_std);
    T(p, "blk.%d.ffn_down.weight", l, MT(p, true, ff), 2, ff, n, 1, 0,
      out_scale / sqrtf((float)ff));
}

static void plan_ffn(mk_plan *p, int l, float out_scale)
{
    const eng_mkmodel_preset *h = &p->hp;
    const mk_arch *a = p->a;
    int64_t n = h->n_embd, F = h->n_ff_exp, E = h->n_expert, S = h->n_ff_shexp;
    int ty = MT(p, false, n);
    float in_std = 1.0f / sqrtf((float)n);
    plan_ffn_norm(p, l);
    mk_tensor *r = T(p, "blk.%d.ffn_gate_inp.weight", l, F32, 2, n, E, 1, 0, in_std);
    if (r) {
        r->gen = GEN_ROUTER;
        r->topic_coef = (float)(8.0 * p->locality) * in_std;
    }
    if (a->router_bias)
        B(p, "blk.%d.ffn_gate_inp.bias", l, E, 1);
    T(p, "blk.%d.ffn_gate_exps.weight", l, ty, 3, n, F, E, 0, in_std);
    T(p, "blk.%d.ffn_up_exps.weight", l, ty, 3, n, F, E, 0, in_std);
    T(p, "blk.%d.ffn_down_exps.weight", l, MT(p, true, F), 3, F, n, E, 0,
      out_scale / sqrtf((float)F));
    if (a->expert_bias) {
        B(p, "blk.%d.ffn_gate_exps.bias", l, F, E);
        B(p, "blk.%d.ffn_up_exps.bias", l, F, E);
        B(p, "blk.%d.ffn_down_exps.bias", l, n, E);
    }
    if (h->exp_probs_b)
        T(p, "blk.%d.exp_probs_b.bias", l, F32, 1, E, 1, 1, 0, NORM_STD);
    if (S) {
        if (a->shexp_gate) /* qwen2moe's sigmoid gate; deepseek2's and glm4moe's are ungated */
            T(p, "blk.%d.ffn_gate_inp_shexp.weight", l, F32, 1, n, 1, 1, 0, in_std);
        T(p, "blk.%d.ffn_gate_shexp.weight", l, ty, 2, n, S, 1, 0, in_std);
        T(p, "blk.%d.ffn_up_shexp.weight", l, ty, 2, n, S, 1, 0, in_std);
        T(p, "blk.%d.ffn_down_shexp.weight", l, MT(p, true, S), 2, S, n, 1, 0,
          out_scale / sqrtf((float)S));
    }
}

/* A multi-token-prediction layer (glm4moe's nextn, glm4-moe.cpp:54-59,
 * 116-124): a whole MoE layer plus the nextn projection and norms. The
 * engine, like llama.cpp, checks and skips it. */
static void plan_mtp_layer(mk_plan *p, int l, float out_scale)
{
    const int64_t n = p->hp.n_embd;
    plan_attention(p, l, out_scale);
    plan_ffn(p, l, out_scale);
    T(p, "blk.%d.nextn.eh_proj.weight", l, MT(p, false, 2 * n), 2, 2 * n, n, 1, 0,
      1.0f / sqrtf((float)(2 * n)));
    T(p, "blk.%d.nextn.enorm.weight", l, F32, 1, n, 1, 1, 1, NORM_STD);
    T(p, "blk.%d.nextn.hnorm.weight", l, F32, 1, n, 1, 1, 1, NORM_STD);
}

static int plan_tensors(mk_plan *p)
{
    const eng_mkmodel_preset *h = &p->hp;
    int64_t n = h->n_embd, V = h->n_vocab;
    float inv = 1.0f / sqrtf((float)n), a = (float)(0.75 * p->locality);
    /* residual writers scaled so L layers add O(1) variance in total */
    float out_scale = 1.0f / sqrtf(2.0f * (float)h->n_layer);
    mk_tensor *t = T(p, "token_embd.weight", 0, MT(p, false, n), 2, n, V, 1, 0, sqrtf(1 - a));
    if (t) {
        t->gen = GEN_EMBED;
        t->topic_coef = sqrtf(a) * sqrtf((float)n);
    }
    for (int l = 0; l < (int)h->n_layer; l++) {
        if (p->a->mla)
            plan_attention_mla(p, l, out_scale);
        else
            plan_attention(p, l, out_scale);
        if (l < (int)h->n_layer_dense)
            plan_dense_ffn(p, l, out_scale);
        else
            plan_ffn(p, l, out_scale);
    }
    for (int l = (int)h->n_layer; l < (int)(h->n_layer + h->n_nextn); l++)
        plan_mtp_layer(p, l, out_scale);
    T(p, "output_norm.weight", 0, F32, 1, n, 1, 1, 1, NORM_STD);
    t = T(p, "output.weight", 0, MT(p, true, n), 2, n, V, 1, 0, inv);
    if (t) {
        t->gen = GEN_OUTPUT;
        t->topic_coef = (float)(4.0 * p->locality) * inv;
    }
    return p->oom ? ENG_ENOMEM : ENG_OK;
}

/* ---- options and sizes --------------------------------------------------------- */

static int resolve(const eng_mkmodel_opts *o, eng_mkmodel_preset *hp, eng_err *e)
{
    const eng_mkmodel_preset *pr = o->preset ? eng_mkmodel_preset_find(o->preset) : NULL;
    if (!pr)
        return eng_err_set(e, ENG_EINVAL, "unknown preset '%s' (see --list)",
                           o->preset ? o->preset : "");
    if (o->arch && *o->arch) {
        const char *a = eng_mkmodel_arch_parse(o->arch);
        if (!a) {
            char names[256];
            eng_mkmodel_arch_names(names, sizeof names);
            return eng_err_set(e, ENG_EINVAL, "unknown architecture '%s' (%s)", o->arch, names);
        }
        if (strcmp(a, pr->arch))
            return eng_err_set(e, ENG_EINVAL,
                               "preset '%s' is a %s model, not %s (leave --arch out, or pick a "
                               "%s preset)", pr->name, pr->arch, o->arch, o->arch);
    }
    if (!eng_mkmodel_type_valid(o->type))
        return eng_err_set(e, ENG_EINVAL, "tensor type %d is not one of %s", o->type,
                           ENG_MKMODEL_TYPES);
    if (o->layers > pr->n_layer)
        return eng_err_set(e, ENG_EINVAL, "layers %u: preset '%s' has %u layers", o->layers,
                           pr->name, pr->n_layer);
    if (!(o->router_locality >= 0 && o->router_locality <= 1))
        return eng_err_set(e, ENG_EINVAL, "router locality %g is outside [0, 1]",
                           o->router_locality);
    if (o->mla_legacy && strcmp(pr->arch, "deepseek2"))
        return eng_err_set(e, ENG_EINVAL, "the legacy MLA form is for deepseek2 presets, not "
                           "'%s' (%s)", pr->name, pr->arch);
    *hp = *pr;
    if (o->layers)
        hp->n_layer = o->layers;
    /* a cut model keeps at least one MoE layer */
    if (hp->n_layer_dense >= hp->n_layer)
        hp->n_layer_dense = hp->n_layer - 1;
    return ENG_OK;
}

static void plan_free(mk_plan *p)
{
    eng_mkvocab_free(&p->vocab);
    free(p->t);
    memset(p, 0, sizeof *p);
}

static int plan_build(const eng_mkmodel_opts *o, mk_plan *p, eng_err *e)
{
    memset(p, 0, sizeof *p);
    int rc = resolve(o, &p->hp, e);
    if (rc)
        return rc;
    p->a = arch_find(p->hp.arch);
    ENG_ASSERT(p->a); /* every preset's architecture has a row */
    p->type = o->type;
    p->seed = o->seed;
    p->mla_legacy = o->mla_legacy;
    p->locality = o->router_locality;
    long ncpu = o->threads > 0 ? o->threads : sysconf(_SC_NPROCESSORS_ONLN);
    p->threads = ncpu < 1 ? 1 : ncpu > MAX_THREADS ? MAX_THREADS : (int)ncpu;
    eng_pretok pre;
    rc = eng_pretok_parse(p->hp.tok_pre, &pre, e);
    if (!rc && o->vocab_pre && !o->vocab_from)
        rc = eng_err_set(e, ENG_EINVAL, "vocab_pre '%s' needs vocab_from", o->vocab_pre);
    if (!rc && o->vocab_from) { /* n_vocab follows the tokenizer */
        rc = eng_mkvocab_from_json(&p->vocab, o->vocab_from, o->vocab_pre, e);
        p->hp.n_vocab = rc ? p->hp.n_vocab : (uint32_t)p->vocab.n_tokens;
    } else if (!rc) {
        rc = o->vocab == ENG_MK_VOCAB_SPM ? eng_mkvocab_build_spm(&p->vocab, p->hp.n_vocab, e)
                                          : eng_mkvocab_build(&p->vocab, p->hp.n_vocab, pre, e);
    }
    if (!rc) {
        plan_kvs(p);
        plan_tokenizer_kvs(p);
        if (plan_tensors(p))
            rc = eng_err_set(e, ENG_ENOMEM, "mkmodel: out of memory");
        else
            assign_types(p);
    }
    if (rc)
        plan_free(p);
    return rc;
}

static uint64_t pad32(uint64_t x) { return (x + 31) & ~(uint64_t)31; }

static uint64_t tensor_nbytes(const mk_tensor *t)
{
    return eng_type_row_bytes(t->type, t->ne[0]) * (uint64_t)t->ne[1] * (uint64_t)t->ne[2];
}

/* Bytes of one KV as GGUF v3 lays it out. */
static uint64_t kv_bytes(const mk_kv *kv)
{
    uint64_t b = 8 + strlen(kv->key) + 4;
    switch (kv->kind) {
    case KV_U32: case KV_F32: return b + 4;
    case KV_BOOL: return b + 1;
    case KV_STR: return b + 8 + strlen(kv->s);
    case KV_ARR_I32: case KV_ARR_F32: return b + 4 + 8 + 4 * (uint64_t)kv->n;
    default:
        b += 4 + 8;
        for (size_t i = 0; i < kv->n; i++)
            b += 8 + strlen(kv->strs[i]);
        return b;
    }
}

static void plan_info(const mk_plan *p, eng_mkmodel_info *info)
{
    memset(info, 0, sizeof *info);
    info->hp = p->hp;
    uint64_t head = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < p->nkv; i++)
        head += kv_bytes(&p->kv[i]);
    for (size_t i = 0; i < p->nt; i++) {
        const mk_tensor *t = &p->t[i];
        head += 8 + strlen(t->name) + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
        info->data_bytes += pad32(tensor_nbytes(t));
        info->n_params += (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2];
    }
    info->file_bytes = pad32(head) + info->data_bytes;
    info->n_tensors = (uint32_t)p->nt;
    info->n_merges = (uint32_t)p->vocab.n_merges;
}

int eng_mkmodel_plan(const eng_mkmodel_opts *o, eng_mkmodel_info *info, eng_err *e)
{
    mk_plan p;
    int rc = plan_build(o, &p, e);
    if (rc)
        return rc;
    plan_info(&p, info);
    plan_free(&p);
    return ENG_OK;
}

/* ---- weight generation ------------------------------------------------------------ */

static uint64_t mix64(uint64_t z) /* splitmix64 finaliser */
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* N(0,1)-like variate number i of stream key: Irwin-Hall of four 16-bit
 * uniforms (sum variance (65536^2-1)/3, std 37837.23). */
static inline float normal_at(uint64_t key, uint64_t i)
{
    uint64_t z = mix64(key + (i + 1) * 0x9E3779B97F4A7C15ull);
    uint32_t s = (uint32_t)(z & 0xFFFF) + (uint32_t)((z >> 16) & 0xFFFF) +
                 (uint32_t)((z >> 32) & 0xFFFF) + (uint32_t)(z >> 48);
    return ((float)s - 131070.0f) * (1.0f / 37837.23f);
}

static uint64_t name_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *c = name; *c; c++)
        h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
    return mix64(mix64(seed) ^ h);
}

/* Topic structure of router locality (see the top of this file). */
typedef struct topics {
    uint32_t T;          /* number of topics                          */
    float *u;            /* [T][n_embd] unit directions               */
    int16_t *owner;      /* [block][n_expert] topic of expert, -1     */
} topics;

static int topics_init(topics *tp, const mk_plan *p)
{
    const eng_mkmodel_preset *h = &p->hp;
    uint32_t n = h->n_embd, E = h->n_expert, k = h->n_expert_used;
    tp->T = E / k > 0 ? E / k : 1;
    tp->u = malloc((size_t)tp->T * n * sizeof *tp->u);
    const uint32_t n_blocks = h->n_layer + h->n_nextn; /* MTP layers have routers too */
    tp->owner = malloc((size_t)n_blocks * E * sizeof *tp->owner);
    int *perm = malloc(E * sizeof *perm);
    if (!tp->u || !tp->owner || !perm) {
        free(perm);
        return ENG_ENOMEM;
    }
    for (uint32_t t = 0; t < tp->T; t++) {
        uint64_t key = name_key(p->seed, "topic") + t;
        double ss = 0;
        float *u = tp->u + (size_t)t * n;
        for (uint32_t j = 0; j < n; j++) {
            u[j] = normal_at(mix64(key), j);
            ss += (double)u[j] * u[j];
        }
        for (uint32_t j = 0; j < n; j++)
            u[j] = (float)(u[j] / sqrt(ss));
    }
    for (uint32_t l = 0; l < n_blocks; l++) {
        uint64_t key = name_key(p->seed, "experts") + l;
        for (uint32_t i = 0; i < E; i++)
            perm[i] = (int)i;
        for (uint32_t i = E - 1; i > 0; i--) { /* Fisher-Yates */
            uint32_t j = (uint32_t)(mix64(mix64(key) + i) % (i + 1));
            int tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        for (uint32_t i = 0; i < E; i++)
            tp->owner[(size_t)l * E + perm[i]] = i / k < tp->T ? (int16_t)(i / k) : (int16_t)-1;
    }
    free(perm);
    return ENG_OK;
}

static int row_topic(const mk_plan *p, const topics *tp, const mk_tensor *t, uint64_t row)
{
    if (t->gen == GEN_EMBED || t->gen == GEN_OUTPUT)
        return (int)(row * tp->T / p->hp.n_vocab);
    if (t->gen == GEN_ROUTER)
        return tp->owner[(size_t)t->layer * p->hp.n_expert + row];
    return -1;
}

/* Element (row r, column j) of attn_k_b {nope, R_kv, H} or attn_v_b
 * {R_kv, dv, H} as its index in the layer's attn_kv_b {R_kv, H*(nope+dv)}:
 * kb[h][c][d] = kv_b[h(nope+dv) + d][c], vb[h][i][c] = kv_b[h(nope+dv) +
 * nope + i][c]. */
static uint64_t kv_b_index(const mk_plan *p, const mk_tensor *t, uint64_t r, uint64_t j)
{
    const uint64_t nope = p->hp.qk_nope, dv = p->hp.v_head_dim, R = p->hp.kv_lora_rank;
    const uint64_t per = (uint64_t)t->ne[1], h = r / per, i = r % per;
    return t->gen == GEN_KB ? (h * (nope + dv) + j) * R + i
                            : (h * (nope + dv) + nope + i) * R + j;
}

/* Rows [r0, r0+nr) of tensor t as f32 into buf. */
static void gen_rows(const mk_plan *p, const topics *tp, const mk_tensor *t, uint64_t key,
                     uint64_t r0, uint64_t nr, float *buf)
{
    int64_t n0 = t->ne[0];
    if (t->gen == GEN_KB || t->gen == GEN_VB) {
        char src[64];
        snprintf(src, sizeof src, "blk.%d.attn_kv_b.weight", t->layer);
        const uint64_t skey = name_key(p->seed, src);
        for (uint64_t r = r0; r < r0 + nr; r++)
            for (int64_t j = 0; j < n0; j++)
                buf[(r - r0) * n0 + j] =
                    t->mean + t->std * normal_at(skey, kv_b_index(p, t, r, (uint64_t)j));
        return;
    }
    for (uint64_t r = r0; r < r0 + nr; r++) {
        float *y = buf + (r - r0) * n0;
        int topic = t->topic_coef != 0 ? row_topic(p, tp, t, r) : -1;
        for (int64_t j = 0; j < n0; j++)
            y[j] = t->mean + t->std * normal_at(key, r * (uint64_t)n0 + (uint64_t)j);
        if (topic >= 0) {
            const float *u = tp->u + (size_t)topic * p->hp.n_embd;
            for (int64_t j = 0; j < n0; j++)
                y[j] += t->topic_coef * u[j];
        }
    }
}

#define CHUNK_ELEMS (1u << 20)

/* One thread's share of a chunk: rows [r0, r0+nr) generated into buf and
 * converted into out (the chunk's row order is kept, so the bytes do not
 * depend on the number of threads). */
typedef struct gen_job {
    const mk_plan *p;
    const topics *tp;
    const mk_tensor *t;
    uint64_t key, r0, nr;
    float *buf;
    char *out;
    int rc;
    eng_err err;
} gen_job;

static void *gen_job_run(void *arg)
{
    gen_job *j = arg;
    gen_rows(j->p, j->tp, j->t, j->key, j->r0, j->nr, j->buf);
    if (j->t->type != ENG_MK_F32)
        j->rc = eng_quantize_row(j->t->type, j->buf, j->out, (int64_t)(j->nr * j->t->ne[0]),
                                 &j->err);
    else
        memcpy(j->out, j->buf, j->nr * j->t->ne[0] * sizeof(float));
    return NULL;
}

/* Rows [r, r+nr) of t into out, split over the plan's threads. */
static int gen_chunk(const mk_plan *p, const topics *tp, const mk_tensor *t, uint64_t key,
                     uint64_t r, uint64_t nr, float *buf, char *out, eng_err *e)
{
    gen_job jobs[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    uint64_t nth = (uint64_t)p->threads < nr ? (uint64_t)p->threads : nr;
    uint64_t row_bytes = eng_type_row_bytes(t->type, t->ne[0]), at = 0;
    for (uint64_t i = 0; i < nth; i++) {
        uint64_t cnt = nr / nth + (i < nr % nth);
        jobs[i] = (gen_job){p, tp, t, key, r + at, cnt, buf + at * t->ne[0],
                            out + at * row_bytes, ENG_OK, {0}};
        at += cnt;
    }
    uint64_t started = 0;
    for (uint64_t i = 1; i < nth; i++, started++)
        if (pthread_create(&th[i], NULL, gen_job_run, &jobs[i]))
            break;
    for (uint64_t i = started + 1; i < nth; i++) /* threads refused: do it here */
        gen_job_run(&jobs[i]);
    gen_job_run(&jobs[0]);
    for (uint64_t i = 1; i <= started; i++)
        pthread_join(th[i], NULL);
    for (uint64_t i = 0; i < nth; i++)
        if (jobs[i].rc) {
            if (e)
                *e = jobs[i].err;
            return eng_err_prefix(e, "tensor '%s'", t->name), jobs[i].rc;
        }
    return ENG_OK;
}

/* Generates tensor t and appends its bytes to the writer. */
static int write_tensor(const mk_plan *p, const topics *tp, const mk_tensor *t,
                        eng_gguf_writer *w, float *buf, void *qbuf, eng_err *e)
{
    uint64_t key = name_key(p->seed, t->name);
    uint64_t rows = (uint64_t)t->ne[1] * (uint64_t)t->ne[2];
    uint64_t per = CHUNK_ELEMS / (uint64_t)t->ne[0] ? CHUNK_ELEMS / (uint64_t)t->ne[0] : 1;
    uint64_t row_bytes = eng_type_row_bytes(t->type, t->ne[0]);
    for (uint64_t r = 0; r < rows; r += per) {
        uint64_t nr = rows - r < per ? rows - r : per;
        int rc = gen_chunk(p, tp, t, key, r, nr, buf, qbuf, e);
        if (!rc)
            rc = eng_gguf_writer_append(w, qbuf, nr * row_bytes, e);
        if (rc)
            return rc;
    }
    return ENG_OK;
}

static int write_kv(eng_gguf_writer *w, const mk_kv *kv, eng_err *e)
{
    switch (kv->kind) {
    case KV_U32: return eng_gguf_writer_set_u32(w, kv->key, kv->u, e);
    case KV_F32: return eng_gguf_writer_set_f32(w, kv->key, kv->f, e);
    case KV_BOOL: return eng_gguf_writer_set_bool(w, kv->key, kv->u != 0, e);
    case KV_STR: return eng_gguf_writer_set_str(w, kv->key, kv->s, e);
    case KV_ARR_I32: return eng_gguf_writer_set_arr(w, kv->key, ENG_GGUF_I32, kv->i32, kv->n, e);
    case KV_ARR_F32: return eng_gguf_writer_set_arr(w, kv->key, ENG_GGUF_F32, kv->f32, kv->n, e);
    default:
        return eng_gguf_writer_set_arr_str(w, kv->key, (const char *const *)kv->strs, kv->n, e);
    }
}

/* Header, then every tensor's data; the writer renames on finish. */
static int write_plan(const mk_plan *p, const eng_mkmodel_opts *o, eng_gguf_writer *w,
                      eng_err *e)
{
    int rc = ENG_OK;
    for (size_t i = 0; !rc && i < p->nkv; i++)
        rc = write_kv(w, &p->kv[i], e);
    for (size_t i = 0; !rc && i < p->nt; i++)
        rc = eng_gguf_writer_add_tensor(w, p->t[i].name, p->t[i].type, p->t[i].n_dims,
                                        p->t[i].ne, NULL, e);
    if (!rc)
        rc = eng_gguf_writer_write_header(w, e);
    if (rc)
        return rc;
    topics tp = {0};
    size_t cap = CHUNK_ELEMS + p->hp.n_ff_exp + p->hp.n_embd + p->hp.n_ff_shexp;
    float *buf = malloc(cap * sizeof *buf);
    void *qbuf = malloc(cap * sizeof(float));
    if (!buf || !qbuf || topics_init(&tp, p))
        rc = eng_err_set(e, ENG_ENOMEM, "mkmodel: out of memory");
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < p->nt; i++)
        total += tensor_nbytes(&p->t[i]);
    for (size_t i = 0; !rc && i < p->nt; i++) {
        rc = write_tensor(p, &tp, &p->t[i], w, buf, qbuf, e);
        done += tensor_nbytes(&p->t[i]);
        if (!rc && o->progress)
            o->progress(o->progress_user, done, total);
    }
    free(buf);
    free(qbuf);
    free(tp.u);
    free(tp.owner);
    return rc ? rc : eng_gguf_writer_finish(w, e);
}

int eng_mkmodel_write(const eng_mkmodel_opts *o, const char *path, eng_err *e)
{
    mk_plan p;
    int rc = plan_build(o, &p, e);
    if (rc)
        return rc;
    eng_gguf_writer *w = NULL;
    rc = eng_gguf_writer_open(&w, path, e);
    if (!rc)
        rc = write_plan(&p, o, w, e);
    eng_gguf_writer_free(w);
    plan_free(&p);
    return rc;
}
