/*
 * mkmodel_types.c — mkmodel's --type names and which ggml type each tensor
 * gets under them (see mkmodel.h).
 *
 * Two kinds of names:
 * - a format (f32 ... q5_k): every weight matrix in that format, as
 *   `llama-quantize --pure` writes it;
 * - a mix (q2_k, q3_k_m, q4_k_s, q4_k_m, q5_k_m, q6_k, iq4_xs: the
 *   llama-quantize file types of the same names; mxfp4: the layout
 *   llama.cpp's converter gives gpt-oss): the per-tensor choices of
 *   llama.cpp 82bb485's llama_tensor_get_type_impl (src/llama-quant.cpp),
 *   the rules reachable from these file types and the MoE tensors mkmodel
 *   writes, reproduced in tensor_rule() below.
 * Then, for every kind, llama.cpp's tensor_type_fallback: a row width that
 * is not a multiple of the chosen type's block falls back (IQ4_XS -> IQ4_NL,
 * Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), and to F16
 * if the fallback does not fit either (llama.cpp throws for a 32-block
 * type that does not fit; we write F16 there too).
 *
 * What llama.cpp's rules use and how it maps here: the tensor's category
 * from its name (tensor_get_category); n_expert, n_gqa = n_head /
 * n_head_kv, n_layer = block_count (n_layer_all); the layer of an
 * ffn_down from its name (layer_info, as llama.cpp does for n_expert > 1);
 * the running count of attn_v tensors (i_attention_wv), which equals the
 * layer index because mkmodel writes one attn_v per layer in layer order.
 * Not reproduced (never reached by mkmodel's files): the 70B and Falcon
 * special cases, imatrix-dependent choices (there is no imatrix), the
 * IQ1/IQ2/IQ3/TQ file types, tensor overrides.
 */
#include "engine/formats.h"
#include "engine/mkmodel.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    int type;
    uint32_t ftype;   /* general.file_type (llama_ftype) */
} k_types[] = {
    {"f32", ENG_MK_F32, 0},         {"f16", ENG_MK_F16, 1},         {"bf16", ENG_MK_BF16, 32},
    {"q8_0", ENG_MK_Q8_0, 7},       {"q4_0", ENG_MK_Q4_0, 2},       {"q4_1", ENG_MK_Q4_1, 3},
    {"q5_0", ENG_MK_Q5_0, 8},       {"q5_1", ENG_MK_Q5_1, 9},       {"iq4_nl", ENG_MK_IQ4_NL, 25},
    {"q3_k", ENG_MK_Q3_K, 11},      {"q4_k", ENG_MK_Q4_K, 14},      {"q5_k", ENG_MK_Q5_K, 16},
    {"q2_k", ENG_MK_Q2_K_MIX, 10},  {"q3_k_m", ENG_MK_Q3_K_M, 12},  {"q4_k_s", ENG_MK_Q4_K_S, 14},
    {"q4_k_m", ENG_MK_Q4_K_M, 15},  {"q5_k_m", ENG_MK_Q5_K_M, 17},  {"q6_k", ENG_MK_Q6_K_MIX, 18},
    {"iq4_xs", ENG_MK_IQ4_XS_MIX, 30}, {"mxfp4", ENG_MK_MXFP4, 38},
};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

static int type_index(int type)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (k_types[i].type == type)
            return (int)i;
    return -1;
}

int eng_mkmodel_type_parse(const char *name, int *type)
{
    for (size_t i = 0; name && i < N_TYPES; i++)
        if (!strcasecmp(k_types[i].name, name)) {
            *type = k_types[i].type;
            return ENG_OK;
        }
    return ENG_EINVAL;
}

const char *eng_mkmodel_type_name(int type)
{
    int i = type_index(type);
    return i < 0 ? "?" : k_types[i].name;
}

bool eng_mkmodel_type_valid(int type) { return type_index(type) >= 0; }

uint32_t eng_mkmodel_type_ftype(int type)
{
    int i = type_index(type);
    return i < 0 ? 0 : k_types[i].ftype;
}

static bool is_mix(int type) { return type >= ENG_MK_MIX_BASE; }

bool eng_mkmodel_type_quantized(int type)
{
    const eng_format *f = eng_format_get(type);
    return eng_mkmodel_type_valid(type) && (is_mix(type) || (f && f->blck > 1));
}

/* The ggml type a mix starts every matrix from (llama_ftype_get_default_type). */
static int mix_default(int mk)
{
    switch (mk) {
    case ENG_MK_Q2_K_MIX: return ENG_TYPE_Q2_K;
    case ENG_MK_Q3_K_M: return ENG_TYPE_Q3_K;
    case ENG_MK_Q4_K_S: case ENG_MK_Q4_K_M: return ENG_TYPE_Q4_K;
    case ENG_MK_Q5_K_M: return ENG_TYPE_Q5_K;
    case ENG_MK_Q6_K_MIX: return ENG_TYPE_Q6_K;
    default: return ENG_TYPE_IQ4_XS;
    }
}

enum cat { C_OTHER, C_OUTPUT, C_TOKEN_EMBD, C_ATTN_QKV, C_ATTN_KV_B, C_ATTN_V, C_ATTN_K, C_ATTN_Q,
           C_ATTN_OUTPUT, C_FFN_UP, C_FFN_GATE, C_FFN_DOWN };

/* llama-quant.cpp tensor_get_category: the first match in this order. */
static enum cat category(const char *name)
{
    if (!strcmp(name, "output.weight"))
        return C_OUTPUT;
    if (!strcmp(name, "token_embd.weight"))
        return C_TOKEN_EMBD;
    static const struct { const char *s; enum cat c; } k[] = {
        {"attn_qkv.weight", C_ATTN_QKV}, {"attn_kv_b.weight", C_ATTN_KV_B}, {"attn_v.weight", C_ATTN_V},
        {"attn_k.weight", C_ATTN_K},     {"attn_q.weight", C_ATTN_Q},       {"attn_output.weight", C_ATTN_OUTPUT},
        {"ffn_up", C_FFN_UP},            {"ffn_gate", C_FFN_GATE},          {"ffn_down", C_FFN_DOWN},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strstr(name, k[i].s))
            return k[i].c;
    return C_OTHER;
}

/* use_more_bits of llama_tensor_get_type_impl. */
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int layer_of(const char *name)
{
    int l = 0;
    return sscanf(name, "blk.%d.", &l) == 1 ? l : 0;
}

/* llama_tensor_get_type_impl for the K/IQ4_XS mixes (t = the mix's default
 * type). attn_qkv and attn_kv_b follow attn_v's rules: llama.cpp files them
 * as attn_v-like first, so its later attn_qkv branch is never reached. */
static int tensor_rule(int mk, const char *name, int64_t ne0, const eng_mkmodel_preset *hp)
{
    /* n_layer_all: block_count, glm4moe's next-token-prediction layers too */
    const int t = mix_default(mk), n = (int)(hp->n_layer + hp->n_nextn), il = layer_of(name);
    const bool e8 = hp->n_expert == 8;
    const int gqa = hp->n_head_kv ? (int)(hp->n_head / hp->n_head_kv) : 1;
    const enum cat c = category(name);
    if (c == C_OUTPUT)   /* (a tied token_embd is handled by the caller) */
        return ne0 % eng_format_get(t)->blck ? ENG_TYPE_Q8_0 : ENG_TYPE_Q6_K;
    switch (c) {
    case C_ATTN_V: case C_ATTN_QKV: case C_ATTN_KV_B: {
        int r = t;
        if (mk == ENG_MK_Q2_K_MIX)
            r = gqa >= 4 ? ENG_TYPE_Q4_K : ENG_TYPE_Q3_K;
        else if (mk == ENG_MK_Q3_K_M)
            r = il < 2 ? ENG_TYPE_Q5_K : ENG_TYPE_Q4_K;
        else if (mk == ENG_MK_IQ4_XS_MIX && gqa >= 4)
            r = ENG_TYPE_Q5_K;
        else if ((mk == ENG_MK_Q4_K_M || mk == ENG_MK_Q5_K_M) && more_bits(il, n))
            r = ENG_TYPE_Q6_K;
        else if (mk == ENG_MK_Q4_K_S && il < 4)
            r = ENG_TYPE_Q5_K;
        return e8 ? ENG_TYPE_Q8_0 : r;
    }
    case C_ATTN_K:
        return e8 ? ENG_TYPE_Q8_0 : t;
    case C_FFN_DOWN:
        if (mk == ENG_MK_Q2_K_MIX)
            return ENG_TYPE_Q3_K;
        if (mk == ENG_MK_Q3_K_M)
            return il < n / 16 ? ENG_TYPE_Q5_K : ENG_TYPE_Q4_K;
        if (mk == ENG_MK_Q4_K_M)
            return more_bits(il, n) ? ENG_TYPE_Q6_K : t;
        if (mk == ENG_MK_IQ4_XS_MIX && il < n / 8)
            return ENG_TYPE_Q5_K;
        if (mk == ENG_MK_Q5_K_M && more_bits(il, n))
            return ENG_TYPE_Q6_K;
        if (mk == ENG_MK_Q4_K_S && il < n / 8)
            return ENG_TYPE_Q5_K;
        return t;
    case C_ATTN_OUTPUT:
        if (e8)
            return mk == ENG_MK_Q2_K_MIX || mk == ENG_MK_Q3_K_M || mk == ENG_MK_Q4_K_S ||
                           mk == ENG_MK_Q4_K_M || mk == ENG_MK_IQ4_XS_MIX
                       ? ENG_TYPE_Q5_K : t;
        return mk == ENG_MK_Q2_K_MIX ? ENG_TYPE_Q3_K : mk == ENG_MK_Q3_K_M ? ENG_TYPE_Q4_K : t;
    default:
        return t;
    }
}

/* llama-quant.cpp tensor_type_fallback, then F16 when nothing fits. */
static int fallback(int t, int64_t ne0)
{
    if (ne0 % eng_format_get(t)->blck == 0)
        return t;
    switch (t) {
    case ENG_TYPE_IQ4_XS: t = ENG_TYPE_IQ4_NL; break;
    case ENG_TYPE_Q2_K: case ENG_TYPE_Q3_K: t = ENG_TYPE_Q4_0; break;
    case ENG_TYPE_Q4_K: t = ENG_TYPE_Q5_0; break;
    case ENG_TYPE_Q5_K: t = ENG_TYPE_Q5_1; break;
    case ENG_TYPE_Q6_K: t = ENG_TYPE_Q8_0; break;
    default: break;
    }
    return ne0 % eng_format_get(t)->blck == 0 ? t : ENG_TYPE_F16;
}

int eng_mkmodel_tensor_type(int type, const char *name, int64_t ne0, const eng_mkmodel_preset *hp,
                            bool tied)
{
    /* the converter's gpt-oss layout: experts MXFP4, the rest BF16 (by name,
     * not by ne2 > 1 as llama-quantize's MXFP4_MOE: MLA's attn_k_b/attn_v_b
     * are 3-D too and no converter writes them in MXFP4) */
    if (type == ENG_MK_MXFP4) {
        int t = strstr(name, "_exps.weight") ? ENG_TYPE_MXFP4 : ENG_TYPE_BF16;
        return ne0 % eng_format_get(t)->blck ? ENG_TYPE_BF16 : t;
    }
    if (!is_mix(type))
        return type == ENG_MK_F32 || type == ENG_MK_F16 || type == ENG_MK_BF16 ? type : fallback(type, ne0);
    if (tied && !strcmp(name, "token_embd.weight"))   /* shares the output's treatment */
        name = "output.weight";
    return fallback(tensor_rule(type, name, ne0, hp), ne0);
}
