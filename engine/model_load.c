/*
 * model_load.c — a GGUF file's metadata and tensors -> eng_model (see
 * model.h): the architecture's schema (arch.h) applied to one file.
 *
 * Order: architecture (unknown -> ENG_EUNSUPPORTED naming it and the list),
 * hyper-parameters with the reference spec's defaults (§3), the layer
 * descriptors (which layers run, dense or MoE FFN), then every tensor the
 * architecture needs, each checked for presence, type (computable here;
 * norms and biases f32) and exact shape. A shape error names the tensor,
 * its shape and the one expected.
 */
#include "engine/formats.h"
#include "engine/model_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DIM = 1 << 20, MAX_LAYERS = 4096, MAX_EXPERTS = 512 };

typedef struct loader {
    eng_model *m;
    eng_err *err;
    char key[160];
    char ffn_norm_name[40]; /* "<schema.ffn_norm>.weight"                       */
    bool mtp;            /* checking a next-token-prediction layer: shapes only */
    bool mtp_optional;   /* ... whose tensors the file may leave out            */
} loader;

static const char *kname(loader *L, const char *suffix)
{
    snprintf(L->key, sizeof L->key, "%s.%s", L->m->hp.arch, suffix);
    return L->key;
}

/* A u32 key that may also be an array with one value per layer (llama.cpp
 * accepts both); per-layer values must all be equal here. */
static int get_dim(loader *L, const char *suffix, int64_t def, bool required, int64_t *out)
{
    const eng_gguf *g = L->m->g;
    const char *key = kname(L, suffix);
    int64_t i = eng_gguf_find_key(g, key);
    if (i < 0) {
        if (required)
            return eng_err_set(L->err, ENG_EFORMAT, "key '%s' is missing", key);
        *out = def;
        return ENG_OK;
    }
    const eng_gguf_kv *kv = eng_gguf_kv_at(g, i);
    if (kv->type == ENG_GGUF_ARRAY) {
        if (kv->arr_len == 0)
            return eng_err_set(L->err, ENG_EFORMAT, "key '%s': empty array", key);
        int64_t v0 = 0, v = 0;
        for (uint64_t j = 0; j < kv->arr_len; j++) {
            int rc = eng_gguf_kv_arr_int(g, i, j, &v, L->err);
            if (rc)
                return rc;
            if (j == 0)
                v0 = v;
            else if (v != v0)
                return eng_err_set(L->err, ENG_EUNSUPPORTED,
                                   "key '%s': per-layer values differ (%" PRId64 " vs %" PRId64
                                   "); not supported", key, v0, v);
        }
        *out = v0;
    } else {
        uint32_t v;
        int rc = eng_gguf_get_u32(g, key, &v, L->err);
        if (rc)
            return rc;
        *out = v;
    }
    if (*out < 0 || *out > MAX_DIM)
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s': value %" PRId64 " out of range 0..%d",
                           key, *out, MAX_DIM);
    return ENG_OK;
}

static int need_positive(loader *L, const char *suffix, int64_t v)
{
    if (v <= 0)
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s.%s': must be > 0, is %" PRId64,
                           L->m->hp.arch, suffix, v);
    return ENG_OK;
}

static int read_arch(loader *L)
{
    char *name = NULL;
    int rc = eng_gguf_get_strdup(L->m->g, "general.architecture", &name, L->err);
    if (rc)
        return rc;
    L->m->arch = eng_arch_find(name);
    snprintf(L->m->hp.arch, sizeof L->m->hp.arch, "%s", name);
    if (!L->m->arch) {
        char names[256];
        eng_arch_names(names, sizeof names);
        rc = eng_err_set(L->err, ENG_EUNSUPPORTED,
                         "architecture '%.64s' is not supported (supported: %s)", name, names);
    }
    free(name);
    return rc;
}

/* ggml_rope_yarn_corr_dim: the rotated dim whose wavelength spans n_ctx_orig
 * / n_rot_beta turns (ggml.c; float arithmetic kept as ggml writes it). */
static float yarn_corr_dim(int n_dims, int n_ctx_orig, float beta, float base)
{
    return n_dims * logf(n_ctx_orig / (beta * 2 * (float)M_PI)) / (2 * logf(base));
}

/* ggml_rope_yarn_corr_dims with beta_fast 32, beta_slow 1 (no arch of ours
 * reads other values from the file: spec part 2 §0.3). */
static void yarn_corr(eng_rope_params *r)
{
    float lo = floorf(yarn_corr_dim((int)r->n_rot, (int)r->n_ctx_orig, 32.0f, r->base));
    float hi = ceilf(yarn_corr_dim((int)r->n_rot, (int)r->n_ctx_orig, 1.0f, r->base));
    r->corr_dims[0] = lo > 0 ? lo : 0;
    r->corr_dims[1] = hi < (float)(r->n_rot - 1) ? hi : (float)(r->n_rot - 1);
}

/* 1 + 0.1 * m * ln(s) for s > 1 (llama-context.cpp get_mscale). */
static float yarn_mscale(float s, float m)
{
    return s <= 1.0f ? 1.0f : (0.1f * m * logf(s) + 1.0f);
}

/* RoPE scaling (rope.scaling.*), read for every architecture as llama.cpp
 * does (llama-model.cpp load_hparams; llama-context.cpp:181-231 for the
 * magnitude). log_mul is deepseek2's rope.scaling.yarn_log_multiplier / 0.1
 * (0 elsewhere). */
static int read_rope_scaling(loader *L, float log_mul)
{
    eng_hparams *hp = &L->m->hp;
    eng_rope_params *r = &hp->rope;
    char *type = NULL;
    int rc = ENG_OK;
    float factor = 0, attn = 1;
    uint32_t n_orig;
    if (eng_gguf_find_key(L->m->g, kname(L, "rope.scaling.type")) >= 0 &&
        (rc = eng_gguf_get_strdup(L->m->g, L->key, &type, L->err)))
        return rc;
    const char *t = type ? type : "linear";
    bool none = !strcmp(t, "none"), yarn = !strcmp(t, "yarn");
    if (!none && !yarn && strcmp(t, "linear"))
        rc = eng_err_set(L->err, ENG_EUNSUPPORTED, "key '%s': '%.32s' is not supported "
                         "(none, linear, yarn)", kname(L, "rope.scaling.type"), t);
    free(type);
    if (rc || (rc = eng_gguf_get_f32_or(L->m->g, kname(L, "rope.scaling.factor"), 0, &factor,
                                        L->err)) ||
        (rc = eng_gguf_get_f32_or(L->m->g, kname(L, "rope.scaling.attn_factor"), 1, &attn,
                                  L->err)) ||
        (rc = eng_gguf_get_u32_or(L->m->g, kname(L, "rope.scaling.original_context_length"),
                                  (uint32_t)hp->n_ctx_train, &n_orig, L->err)))
        return rc;
    if (!(factor >= 0 && factor < 1e6) || !(attn > 0 && attn < 1e6) || n_orig == 0)
        return eng_err_set(L->err, ENG_EFORMAT, "rope.scaling: factor %g, attn_factor %g, "
                           "original_context_length %u out of range", factor, attn, n_orig);
    r->n_rot = hp->n_rot;
    r->base = hp->rope_base;
    r->freq_scale = none || factor == 0.0f ? 1.0f : 1.0f / factor;
    r->ext_factor = yarn ? 1.0f : 0.0f;
    float A = 1.0f;
    if (r->ext_factor != 0.0f) {
        const float f = 1.0f / r->freq_scale;
        if (log_mul != 0.0f) {
            /* llama.cpp assumes HF mscale == mscale_all_dim, except deepseek2 */
            const float ms = log_mul != 1.0f ? log_mul : 1.0f;
            A = yarn_mscale(f, ms) / yarn_mscale(f, log_mul);
        } else {
            A = yarn_mscale(f, 1.0f);
        }
        A *= 1.0f / (1.0f + 0.1f * logf(f)); /* ggml multiplies it back in rope */
    }
    r->attn_factor = A * attn;
    r->n_ctx_orig = n_orig;
    yarn_corr(r);
    return ENG_OK;
}

static int read_attention_hparams(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    int rc;
    if ((rc = get_dim(L, "attention.head_count", 0, true, &hp->n_head)) ||
        (rc = need_positive(L, "attention.head_count", hp->n_head)) ||
        (rc = get_dim(L, "attention.head_count_kv", hp->n_head, false, &hp->n_head_kv)) ||
        (rc = need_positive(L, "attention.head_count_kv", hp->n_head_kv)))
        return rc;
    if (hp->n_head % hp->n_head_kv)
        return eng_err_set(L->err, ENG_EFORMAT,
                           "head_count %" PRId64 " is not a multiple of head_count_kv %" PRId64,
                           hp->n_head, hp->n_head_kv);
    if ((rc = get_dim(L, "attention.key_length", hp->n_embd / hp->n_head, false, &hp->head_dim)) ||
        (rc = need_positive(L, "attention.key_length", hp->head_dim)) ||
        (rc = get_dim(L, "attention.value_length", hp->head_dim, false, &hp->head_dim_v)) ||
        (rc = need_positive(L, "attention.value_length", hp->head_dim_v)))
        return rc;
    if ((rc = get_dim(L, "rope.dimension_count", hp->head_dim, false, &hp->n_rot)))
        return rc;
    if (hp->n_rot % 2 || hp->n_rot > hp->head_dim || hp->n_rot <= 0 ||
        (L->m->arch->schema.rot_must_equal_hd && hp->n_rot != hp->head_dim))
        return eng_err_set(L->err, ENG_EFORMAT,
                           "key '%s': %" PRId64 " is not valid for head_dim %" PRId64,
                           kname(L, "rope.dimension_count"), hp->n_rot, hp->head_dim);
    if ((rc = eng_gguf_get_f32(L->m->g, kname(L, "attention.layer_norm_rms_epsilon"), &hp->eps,
                               L->err)))
        return rc;
    if (!(hp->eps > 0 && hp->eps < 1))
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s': %g out of range (0, 1)", L->key,
                           hp->eps);
    if ((rc = eng_gguf_get_f32_or(L->m->g, kname(L, "rope.freq_base"), 10000.0f,
                                  &hp->rope_base, L->err)))
        return rc;
    if (!(hp->rope_base > 0))
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s': %g must be > 0", L->key,
                           hp->rope_base);
    hp->kq_scale = 1.0f / sqrtf((float)hp->head_dim);
    float log_mul = 0.0f;
    if (L->m->arch->schema.yarn_log_mul &&
        eng_gguf_find_key(L->m->g, kname(L, "rope.scaling.yarn_log_multiplier")) >= 0) {
        rc = eng_gguf_get_f32(L->m->g, L->key, &log_mul, L->err);
        if (rc)
            return rc;
        log_mul /= 0.1f; /* the converter stores 0.1 * mscale_all_dim (deepseek2.cpp:34) */
        if (!(log_mul >= 0 && log_mul < 1e3))
            return eng_err_set(L->err, ENG_EFORMAT, "key '%s': %g out of range", L->key,
                               log_mul * 0.1f);
    }
    hp->rope.yarn_log_mul = log_mul;
    rc = read_rope_scaling(L, log_mul);
    hp->rope_swa = hp->rope;
    return rc;
}

/* Sliding-window attention (gpt-oss; openai-moe.cpp:6-15): the window, the
 * layer pattern (an array value is ignored, as llama.cpp's get_key_or_arr
 * does for this key) and the window layers' RoPE base. */
static int read_sliding_window(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    int rc;
    if ((rc = get_dim(L, "attention.sliding_window", 0, true, &hp->n_swa)) ||
        (rc = need_positive(L, "attention.sliding_window", hp->n_swa)))
        return rc;
    hp->swa_pattern = 2;
    int64_t i = eng_gguf_find_key(L->m->g, kname(L, "attention.sliding_window_pattern"));
    if (i >= 0 && eng_gguf_kv_at(L->m->g, i)->type != ENG_GGUF_ARRAY &&
        ((rc = get_dim(L, "attention.sliding_window_pattern", 2, false, &hp->swa_pattern)) ||
         (rc = need_positive(L, "attention.sliding_window_pattern", hp->swa_pattern))))
        return rc;
    if ((rc = eng_gguf_get_f32_or(L->m->g, kname(L, "rope.freq_base_swa"), hp->rope.base,
                                  &hp->rope_swa.base, L->err)))
        return rc;
    if (!(hp->rope_swa.base > 0))
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s': %g must be > 0", L->key,
                           hp->rope_swa.base);
    yarn_corr(&hp->rope_swa);
    return ENG_OK;
}

/* Expert counts and FFN widths, with the fallbacks of spec §3. */
static int read_ffn_hparams(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    const eng_arch *a = L->m->arch;
    int rc;
    if ((rc = get_dim(L, "expert_count", 0, !a->schema.dense_allowed, &hp->n_expert)) ||
        (rc = get_dim(L, "expert_used_count", 0, hp->n_expert > 0, &hp->n_expert_used)) ||
        (rc = get_dim(L, "feed_forward_length", 0, false, &hp->n_ff)))
        return rc;
    if (hp->n_expert == 0) {
        if (!a->schema.dense_allowed)
            return eng_err_set(L->err, ENG_EFORMAT, "key '%s': must be > 0 for %s",
                               kname(L, "expert_count"), hp->arch);
        hp->n_expert_used = 0;
        return need_positive(L, "feed_forward_length", hp->n_ff);
    }
    if (hp->n_expert > MAX_EXPERTS || hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert)
        return eng_err_set(L->err, ENG_EFORMAT,
                           "expert_used_count %" PRId64 " / expert_count %" PRId64
                           ": need 1 <= used <= count <= %d",
                           hp->n_expert_used, hp->n_expert, MAX_EXPERTS);
    if (a->schema.n_ff_is_expert_width) {
        hp->n_ff_exp = hp->n_ff;
        if ((rc = need_positive(L, "feed_forward_length", hp->n_ff)))
            return rc;
    } else {
        if ((rc = get_dim(L, "expert_feed_forward_length", hp->n_ff / hp->n_expert_used,
                          a->schema.ff_exp_required, &hp->n_ff_exp)) ||
            (rc = need_positive(L, "expert_feed_forward_length", hp->n_ff_exp)))
            return rc;
    }
    if (a->traits.shexp == ENG_SHEXP_NONE)
        return ENG_OK;
    if (a->schema.shexp_width == ENG_SHW_COUNT) {
        /* deepseek2: F * expert_shared_count (expert_shared_feed_forward_length
         * is not read, deepseek2.cpp:19) */
        int64_t n_sh;
        if ((rc = get_dim(L, "expert_shared_count", 0, true, &n_sh)) ||
            (rc = need_positive(L, "expert_shared_count", n_sh)))
            return rc;
        hp->n_ff_shexp = hp->n_ff_exp * n_sh;
        return ENG_OK;
    }
    if ((rc = get_dim(L, "expert_shared_feed_forward_length", hp->n_ff, false,
                      &hp->n_ff_shexp)) ||
        (rc = need_positive(L, "expert_shared_feed_forward_length", hp->n_ff_shexp)))
        return rc;
    return ENG_OK;
}

static int read_mla(loader *L);

/* The vocabulary size llama.cpp's deepseek2 heuristics look at: the
 * {arch}.vocab_size key, else the length of tokenizer.ggml.tokens. */
static int64_t file_vocab(loader *L)
{
    int64_t n = 0;
    if (get_dim(L, "vocab_size", 0, false, &n) == ENG_OK && n > 0)
        return n;
    int64_t i = eng_gguf_find_key(L->m->g, "tokenizer.ggml.tokens");
    const eng_gguf_kv *kv = i >= 0 ? eng_gguf_kv_at(L->m->g, i) : NULL;
    return kv && kv->type == ENG_GGUF_ARRAY ? (int64_t)kv->arr_len : 0;
}

/* expert_gating_func (deepseek2.cpp:22-32): 1 softmax, 2 sigmoid; absent or
 * 0 means softmax, except GLM-4.7-Flash's shape (sigmoid). */
static int read_gating(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    uint32_t f;
    int rc = eng_gguf_get_u32_or(L->m->g, kname(L, "expert_gating_func"), 0, &f, L->err);
    if (rc)
        return rc;
    if (f == 0 && L->m->arch->schema.gating_glm47_rule)
        f = (hp->n_layer_file == 47 || hp->n_layer_file == 48) && file_vocab(L) == 154880 ? 2
                                                                                         : 1;
    if (f == 0) { /* the architecture's default */
        hp->gating = L->m->arch->traits.gating;
        return ENG_OK;
    }
    if (f == 1)
        hp->gating = ENG_GATING_SOFTMAX_TOPK;
    else if (f == 2)
        hp->gating = ENG_GATING_SIGMOID;
    else
        return eng_err_set(L->err, ENG_EUNSUPPORTED,
                           "key '%s': gating function %u is not supported (1 softmax, "
                           "2 sigmoid)", L->key, f);
    return ENG_OK;
}

/* Expert groups (expert_group_count / _used_count, read for every
 * architecture), checked as llama-model.cpp:1119-1132 does. */
static int read_groups(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    int rc;
    if ((rc = get_dim(L, "expert_group_count", 0, false, &hp->n_group)) ||
        (rc = get_dim(L, "expert_group_used_count", 0, false, &hp->n_group_used)))
        return rc;
    if (hp->n_group <= 1)
        return ENG_OK;
    if (hp->n_group >= hp->n_expert || hp->n_expert % hp->n_group ||
        hp->n_expert / hp->n_group < 2 || hp->n_group > ENG_MAX_EXPERT_GROUPS)
        return eng_err_set(L->err, ENG_EFORMAT,
                           "key '%s': %" PRId64 " groups do not divide expert_count %" PRId64
                           " into groups of at least 2 (at most %d groups)",
                           kname(L, "expert_group_count"), hp->n_group, hp->n_expert,
                           ENG_MAX_EXPERT_GROUPS);
    if (hp->n_group_used < 1 || hp->n_group_used >= hp->n_group)
        return eng_err_set(L->err, ENG_EFORMAT,
                           "key '%s': %" PRId64 ", need 1 <= used < expert_group_count %" PRId64,
                           kname(L, "expert_group_used_count"), hp->n_group_used, hp->n_group);
    return ENG_OK;
}

/* The router as this file computes it: the architecture's defaults, or
 * the file's keys where the architecture reads them. */
static int read_router(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    hp->gating = L->m->arch->traits.gating;
    hp->expert_weights_norm = L->m->arch->traits.norm_topk;
    hp->expert_weights_scale = 0.0f;
    hp->n_group = hp->n_group_used = 0;
    if (hp->n_expert == 0)
        return ENG_OK;
    int rc;
    if (L->m->arch->schema.router_from_file &&
        ((rc = read_gating(L)) ||
         (rc = eng_gguf_get_bool_or(L->m->g, kname(L, "expert_weights_norm"), false,
                                    &hp->expert_weights_norm, L->err)) ||
         (rc = eng_gguf_get_f32_or(L->m->g, kname(L, "expert_weights_scale"), 0.0f,
                                   &hp->expert_weights_scale, L->err))))
        return rc;
    if (!(hp->expert_weights_scale >= 0 && hp->expert_weights_scale < 1e6))
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s': %g out of range",
                           kname(L, "expert_weights_scale"), hp->expert_weights_scale);
    return read_groups(L);
}

/* Which layers run and which FFN each has: the trunk is block_count minus
 * the next-token-prediction layers; its first leading_dense_block_count
 * layers (all of them without experts) have a dense FFN. */
static int read_layers(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    const eng_arch_schema *a = &L->m->arch->schema;
    int64_t nextn = 0, dense = 0;
    int rc;
    if ((a->nextn && (rc = get_dim(L, "nextn_predict_layers", 0, false, &nextn))) ||
        (a->dense_lead && (rc = get_dim(L, "leading_dense_block_count", 0, false, &dense))))
        return rc;
    if (nextn >= hp->n_layer_file)
        return eng_err_set(L->err, ENG_EFORMAT,
                           "key '%s': %" PRId64 " must be below block_count %" PRId64,
                           kname(L, "nextn_predict_layers"), nextn, hp->n_layer_file);
    hp->n_layer = hp->n_layer_file - nextn;
    if (dense > hp->n_layer)
        return eng_err_set(L->err, ENG_EFORMAT,
                           "key '%s': %" PRId64 " dense layers, the model runs %" PRId64,
                           kname(L, "leading_dense_block_count"), dense, hp->n_layer);
    hp->n_layer_dense = hp->n_expert == 0 ? hp->n_layer : dense;
    hp->n_layer_moe = hp->n_layer - hp->n_layer_dense;
    if (hp->n_layer_dense > 0 && (rc = need_positive(L, "feed_forward_length", hp->n_ff)))
        return rc;
    return ENG_OK;
}

static int read_hparams(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    int rc;
    if ((rc = get_dim(L, "block_count", 0, true, &hp->n_layer_file)) ||
        (rc = need_positive(L, "block_count", hp->n_layer_file)) ||
        (rc = get_dim(L, "context_length", 0, true, &hp->n_ctx_train)) ||
        (rc = need_positive(L, "context_length", hp->n_ctx_train)) ||
        (rc = get_dim(L, "embedding_length", 0, true, &hp->n_embd)) ||
        (rc = need_positive(L, "embedding_length", hp->n_embd)))
        return rc;
    if (hp->n_layer_file > MAX_LAYERS)
        return eng_err_set(L->err, ENG_EFORMAT, "key '%s': %" PRId64 " layers, at most %d",
                           kname(L, "block_count"), hp->n_layer_file, MAX_LAYERS);
    if ((rc = read_attention_hparams(L)) || (rc = read_ffn_hparams(L)) ||
        (rc = read_router(L)) || (rc = read_layers(L)))
        return rc;
    if (L->m->arch->schema.sliding_window && (rc = read_sliding_window(L)))
        return rc;
    return L->m->arch->traits.attn == ENG_ATTN_MLA ? read_mla(L) : ENG_OK;
}

static void fmt_shape(char *buf, size_t cap, const int64_t *ne, int n)
{
    size_t o = (size_t)snprintf(buf, cap, "{");
    for (int i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? "," : "", ne[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "}");
}

/* Finds `name`, checks its shape is exactly ne[0..n) (trailing dims 1) and
 * its type computable (f32 only when f32_only). *out = NULL and ENG_OK for a
 * missing optional tensor. */
static int tensor(loader *L, eng_tref *out, const char *name, bool required, bool f32_only,
                  int n, const int64_t *ne)
{
    const eng_gguf_tensor *t = eng_gguf_find_tensor(L->m->g, name);
    *out = t;
    if (!t)
        return required && !L->mtp_optional
                   ? eng_err_set(L->err, ENG_EFORMAT, "tensor '%s' is missing", name)
                   : ENG_OK;
    int64_t want[ENG_GGUF_MAX_DIMS] = {1, 1, 1, 1};
    memcpy(want, ne, (size_t)n * sizeof *ne);
    if (memcmp(want, t->ne, sizeof want) != 0) {
        char got_s[96], want_s[96];
        int nd = t->n_dims > n ? t->n_dims : n;
        fmt_shape(got_s, sizeof got_s, t->ne, nd);
        fmt_shape(want_s, sizeof want_s, want, nd);
        return eng_err_set(L->err, ENG_EFORMAT, "tensor '%s': shape %s, expected %s", name,
                           got_s, want_s);
    }
    if (L->mtp) /* never run: any type llama.cpp would load is fine */
        return ENG_OK;
    if (f32_only && t->type != ENG_TYPE_F32)
        return eng_err_set(L->err, ENG_EUNSUPPORTED, "tensor '%s': type %s, expected f32", name,
                           eng_type_name(t->type));
    const eng_format *f = eng_format_get(t->type);
    if (!f || !f->supported)
        return eng_err_set(L->err, ENG_EUNSUPPORTED,
                           "tensor '%s': type %s has no kernels in this engine", name,
                           eng_type_name(t->type));
    return ENG_OK;
}

#define DIMS(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

static int layer_tensor(loader *L, eng_tref *out, int il, const char *what, bool req, bool f32,
                        int n, const int64_t *ne)
{
    char name[ENG_GGUF_MAX_NAME + 32];
    snprintf(name, sizeof name, "blk.%d.%s", il, what);
    return tensor(L, out, name, req, f32, n, ne);
}

static int load_attention(loader *L, int il, eng_layer *l)
{
    const eng_hparams *hp = &L->m->hp;
    const eng_arch_schema *a = &L->m->arch->schema;
    const eng_qk_norm qkn = L->m->arch->traits.qk_norm;
    int64_t d = hp->n_embd, nq = hp->n_head * hp->head_dim, nk = hp->n_head_kv * hp->head_dim;
    int64_t nv = hp->n_head_kv * hp->head_dim_v, no = hp->n_head * hp->head_dim_v;
    int rc;
    const bool qkv = !L->mtp; /* optional in a skipped layer (create_tensor_qkv) */
    char fused[64];
    snprintf(fused, sizeof fused, "blk.%d.attn_qkv.weight", il);
    if (eng_gguf_find_tensor(L->m->g, fused))
        return eng_err_set(L->err, ENG_EUNSUPPORTED, "tensor '%s': a fused q/k/v projection "
                           "is not supported yet; convert with separate attn_q/k/v", fused);
    if ((rc = layer_tensor(L, &l->attn_norm, il, "attn_norm.weight", true, true, DIMS(d))) ||
        (rc = layer_tensor(L, &l->wq, il, "attn_q.weight", qkv, false, DIMS(d, nq))) ||
        (rc = layer_tensor(L, &l->wk, il, "attn_k.weight", qkv, false, DIMS(d, nk))) ||
        (rc = layer_tensor(L, &l->wv, il, "attn_v.weight", qkv, false, DIMS(d, nv))) ||
        (rc = layer_tensor(L, &l->wo, il, "attn_output.weight", true, false, DIMS(no, d))))
        return rc;
    const bool qb = a->qkv_bias == ENG_MUST;
    if (a->qkv_bias &&
        ((rc = layer_tensor(L, &l->bq, il, "attn_q.bias", qb, true, DIMS(nq))) ||
         (rc = layer_tensor(L, &l->bk, il, "attn_k.bias", qb, true, DIMS(nk))) ||
         (rc = layer_tensor(L, &l->bv, il, "attn_v.bias", qb, true, DIMS(nv)))))
        return rc;
    if (a->out_bias && (rc = layer_tensor(L, &l->bo, il, "attn_output.bias",
                                          a->out_bias == ENG_MUST, true, DIMS(d))))
        return rc;
    if (a->sinks && (rc = layer_tensor(L, &l->sinks, il, "attn_sinks.weight",
                                       a->sinks == ENG_MUST, true, DIMS(hp->n_head))))
        return rc;
    if (a->qk_norm) {
        const bool head = qkn == ENG_QKNORM_HEAD, req = a->qk_norm == ENG_MUST;
        if ((rc = layer_tensor(L, &l->q_norm, il, "attn_q_norm.weight", req, true,
                               DIMS(head ? hp->head_dim : nq))) ||
            (rc = layer_tensor(L, &l->k_norm, il, "attn_k_norm.weight", req, true,
                               DIMS(head ? hp->head_dim : nk))))
            return rc;
        if (!l->q_norm != !l->k_norm)
            return eng_err_set(L->err, ENG_EFORMAT, "layer %d: attn_q_norm and attn_k_norm "
                               "come together (the file has one of them)", il);
    }
    return ENG_OK;
}

/* deepseek2.cpp:100-127: the q path (with or without q-LoRA), the latent
 * with its RoPE part, and either the split k_b/v_b (absorbed) or kv_b. */
static int load_attention_mla(loader *L, int il, eng_layer *l)
{
    const eng_hparams *hp = &L->m->hp;
    const eng_mla_params *a = &hp->mla;
    const int64_t d = hp->n_embd, H = hp->n_head, Rq = a->q_lora_rank, Rkv = a->kv_lora_rank;
    int rc;
    if ((rc = layer_tensor(L, &l->attn_norm, il, "attn_norm.weight", true, true, DIMS(d))))
        return rc;
    if (Rq > 0 &&
        ((rc = layer_tensor(L, &l->wq_a, il, "attn_q_a.weight", true, false, DIMS(d, Rq))) ||
         (rc = layer_tensor(L, &l->q_a_norm, il, "attn_q_a_norm.weight", true, true,
                            DIMS(Rq))) ||
         (rc = layer_tensor(L, &l->wq_b, il, "attn_q_b.weight", true, false,
                            DIMS(Rq, H * a->dk)))))
        return rc;
    if (Rq == 0 &&
        (rc = layer_tensor(L, &l->wq, il, "attn_q.weight", true, false, DIMS(d, H * a->dk))))
        return rc;
    if ((rc = layer_tensor(L, &l->wkv_a, il, "attn_kv_a_mqa.weight", true, false,
                           DIMS(d, Rkv + hp->n_rot))) ||
        (rc = layer_tensor(L, &l->kv_a_norm, il, "attn_kv_a_norm.weight", true, true,
                           DIMS(Rkv))) ||
        (rc = layer_tensor(L, &l->wo, il, "attn_output.weight", true, false,
                           DIMS(H * a->dv, d))))
        return rc;
    if (a->absorbed)
        return (rc = layer_tensor(L, &l->wk_b, il, "attn_k_b.weight", true, false,
                                  DIMS(a->nope, Rkv, H))) ||
                       (rc = layer_tensor(L, &l->wv_b, il, "attn_v_b.weight", true, false,
                                          DIMS(Rkv, a->dv, H)))
                   ? rc
                   : ENG_OK;
    return layer_tensor(L, &l->wkv_b, il, "attn_kv_b.weight", true, false,
                        DIMS(Rkv, H * (a->nope + a->dv)));
}

static int load_dense_ffn(loader *L, int il, eng_layer *l)
{
    const int64_t d = L->m->hp.n_embd, ff = L->m->hp.n_ff;
    int rc;
    if ((rc = need_positive(L, "feed_forward_length", ff)) ||
        (rc = layer_tensor(L, &l->ffn_gate, il, "ffn_gate.weight", true, false, DIMS(d, ff))) ||
        (rc = layer_tensor(L, &l->ffn_up, il, "ffn_up.weight", true, false, DIMS(d, ff))) ||
        (rc = layer_tensor(L, &l->ffn_down, il, "ffn_down.weight", true, false, DIMS(ff, d))))
        return rc;
    return ENG_OK;
}

static int load_shared_expert(loader *L, int il, eng_layer *l)
{
    const int64_t d = L->m->hp.n_embd, S = L->m->hp.n_ff_shexp;
    int rc;
    if (L->m->arch->traits.shexp == ENG_SHEXP_GATED &&
        (rc = layer_tensor(L, &l->shexp_gate, il, "ffn_gate_inp_shexp.weight", true, true,
                           DIMS(d))))
        return rc;
    if ((rc = layer_tensor(L, &l->gate_sh, il, "ffn_gate_shexp.weight", true, false,
                           DIMS(d, S))) ||
        (rc = layer_tensor(L, &l->up_sh, il, "ffn_up_shexp.weight", true, false, DIMS(d, S))) ||
        (rc = layer_tensor(L, &l->down_sh, il, "ffn_down_shexp.weight", true, false,
                           DIMS(S, d))))
        return rc;
    return ENG_OK;
}

static int load_moe_ffn(loader *L, int il, eng_layer *l)
{
    const eng_hparams *hp = &L->m->hp;
    int64_t d = hp->n_embd, E = hp->n_expert, F = hp->n_ff_exp;
    int rc;
    char legacy[64];
    snprintf(legacy, sizeof legacy, "blk.%d.ffn_gate.0.weight", il);
    if (eng_gguf_find_tensor(L->m->g, legacy) &&
        !eng_gguf_find_tensor(L->m->g, "blk.0.ffn_gate_exps.weight"))
        return eng_err_set(L->err, ENG_EUNSUPPORTED,
                           "tensor '%s': per-expert tensors of old Mixtral files are not "
                           "supported; re-convert with a current llama.cpp (stacked *_exps)",
                           legacy);
    snprintf(legacy, sizeof legacy, "blk.%d.ffn_gate_up_exps.weight", il);
    if (eng_gguf_find_tensor(L->m->g, legacy))
        return eng_err_set(L->err, ENG_EUNSUPPORTED,
                           "tensor '%s': fused gate/up experts are not supported yet; convert "
                           "without fusing (separate ffn_gate_exps and ffn_up_exps)", legacy);
    const eng_arch_schema *a = &L->m->arch->schema;
    if ((a->exp_probs_b && (rc = layer_tensor(L, &l->exp_probs_b, il, "exp_probs_b.bias",
                                              a->exp_probs_b == ENG_MUST, true, DIMS(E)))) ||
        (a->router_bias && (rc = layer_tensor(L, &l->router_b, il, "ffn_gate_inp.bias",
                                              a->router_bias == ENG_MUST, true, DIMS(E)))))
        return rc;
    if ((rc = layer_tensor(L, &l->router, il, "ffn_gate_inp.weight", true, false, DIMS(d, E))) ||
        (rc = layer_tensor(L, &l->gate_exps, il, "ffn_gate_exps.weight", true, false,
                           DIMS(d, F, E))) ||
        (rc = layer_tensor(L, &l->up_exps, il, "ffn_up_exps.weight", true, false,
                           DIMS(d, F, E))) ||
        (rc = layer_tensor(L, &l->down_exps, il, "ffn_down_exps.weight", true, false,
                           DIMS(F, d, E))))
        return rc;
    const bool eb = a->expert_bias == ENG_MUST;
    if (a->expert_bias &&
        ((rc = layer_tensor(L, &l->gate_exps_b, il, "ffn_gate_exps.bias", eb, true, DIMS(F, E))) ||
         (rc = layer_tensor(L, &l->up_exps_b, il, "ffn_up_exps.bias", eb, true, DIMS(F, E))) ||
         (rc = layer_tensor(L, &l->down_exps_b, il, "ffn_down_exps.bias", eb, true, DIMS(d, E)))))
        return rc;
    if (!l->gate_exps_b != !l->up_exps_b || !l->gate_exps_b != !l->down_exps_b)
        return eng_err_set(L->err, ENG_EFORMAT, "layer %d: the expert biases (ffn_gate/up/"
                           "down_exps.bias) come together (the file has only some)", il);
    if (L->m->arch->traits.shexp != ENG_SHEXP_NONE)
        return load_shared_expert(L, il, l);
    return ENG_OK;
}

static int load_layer(loader *L, int il, eng_layer *l)
{
    int rc;
    if ((rc = L->m->arch->traits.attn == ENG_ATTN_MLA ? load_attention_mla(L, il, l)
                                                       : load_attention(L, il, l)) ||
        (rc = layer_tensor(L, &l->ffn_norm, il, L->ffn_norm_name, true, true,
                           DIMS(L->m->hp.n_embd))))
        return rc;
    return l->ffn == ENG_FFN_MOE ? load_moe_ffn(L, il, l) : load_dense_ffn(L, il, l);
}

/* The layer descriptors: dense FFN in the leading n_layer_dense layers,
 * MoE after them, numbered among themselves. */
static int describe_layers(loader *L)
{
    eng_model *m = L->m;
    const eng_hparams *hp = &m->hp;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    m->moe_layer = calloc((size_t)(hp->n_layer_moe ? hp->n_layer_moe : 1), sizeof *m->moe_layer);
    if (!m->layers || !m->moe_layer)
        return eng_err_set(L->err, ENG_ENOMEM, "out of memory for %" PRId64 " layers",
                           hp->n_layer);
    for (int il = 0; il < hp->n_layer; il++) {
        eng_layer *l = &m->layers[il];
        l->ffn = il < hp->n_layer_dense ? ENG_FFN_DENSE : ENG_FFN_MOE;
        /* llama-hparams.cpp set_swa_pattern: il % pattern < pattern - 1 */
        if (hp->n_swa > 0 && il % hp->swa_pattern < hp->swa_pattern - 1)
            l->n_swa = hp->n_swa;
        l->moe_index = l->ffn == ENG_FFN_MOE ? il - (int)hp->n_layer_dense : -1;
        if (l->moe_index >= 0)
            m->moe_layer[l->moe_index] = il;
    }
    return ENG_OK;
}

/* The next-token-prediction layers after the trunk (deepseek2.cpp:56-72,
 * 157-164): checked like a MoE layer plus their nextn.* tensors, never run,
 * nothing kept. When the first one has no nextn.eh_proj, the file may leave
 * all of them out (a trunk-only conversion). */
static int check_mtp_layers(loader *L)
{
    const eng_hparams *hp = &L->m->hp;
    const int64_t d = hp->n_embd, V = hp->n_vocab;
    char probe[64];
    snprintf(probe, sizeof probe, "blk.%" PRId64 ".nextn.eh_proj.weight", hp->n_layer);
    L->mtp = true;
    L->mtp_optional = L->m->arch->schema.nextn_optional_rule &&
                      !eng_gguf_find_tensor(L->m->g, probe);
    int rc = ENG_OK;
    for (int il = (int)hp->n_layer; !rc && il < hp->n_layer_file; il++) {
        eng_layer l = {.ffn = ENG_FFN_MOE};
        eng_tref t;
        if ((rc = load_layer(L, il, &l)) ||
            (rc = layer_tensor(L, &t, il, "nextn.eh_proj.weight", true, false, DIMS(2 * d, d))) ||
            (rc = layer_tensor(L, &t, il, "nextn.enorm.weight", true, false, DIMS(d))) ||
            (rc = layer_tensor(L, &t, il, "nextn.hnorm.weight", true, false, DIMS(d))) ||
            (rc = layer_tensor(L, &t, il, "nextn.embed_tokens.weight", false, false, DIMS(d, V))) ||
            (rc = layer_tensor(L, &t, il, "nextn.shared_head_head.weight", false, false,
                               DIMS(d, V))) ||
            (rc = layer_tensor(L, &t, il, "nextn.shared_head_norm.weight", false, false,
                               DIMS(d))))
            break;
    }
    L->mtp = L->mtp_optional = false;
    return rc;
}

static int load_tensors(loader *L)
{
    eng_model *m = L->m;
    eng_hparams *hp = &m->hp;
    int rc;
    const eng_gguf_tensor *te = eng_gguf_find_tensor(m->g, "token_embd.weight");
    if (!te)
        return eng_err_set(L->err, ENG_EFORMAT, "tensor 'token_embd.weight' is missing");
    hp->n_vocab = te->ne[1];
    if (hp->n_vocab <= 0 || hp->n_vocab > INT32_MAX)
        return eng_err_set(L->err, ENG_EFORMAT, "tensor 'token_embd.weight': %" PRId64
                           " rows is not a valid vocabulary size", hp->n_vocab);
    if ((rc = tensor(L, &m->tok_embd, "token_embd.weight", true, false,
                     DIMS(hp->n_embd, hp->n_vocab))) ||
        (rc = tensor(L, &m->output_norm, "output_norm.weight", true, true, DIMS(hp->n_embd))) ||
        (rc = tensor(L, &m->output, "output.weight", !m->arch->schema.output_tied_allowed, false,
                     DIMS(hp->n_embd, hp->n_vocab))))
        return rc;
    hp->output_tied = m->output == NULL;
    if (hp->output_tied)
        m->output = m->tok_embd;
    if ((rc = describe_layers(L)))
        return rc;
    for (int il = 0; il < hp->n_layer; il++)
        if ((rc = load_layer(L, il, &m->layers[il])))
            return rc;
    return check_mtp_layers(L);
}

int eng_model_load(eng_model *m, eng_err *err)
{
    loader L = {.m = m, .err = err};
    int rc;
    if ((rc = read_arch(&L)))
        return rc;
    snprintf(L.ffn_norm_name, sizeof L.ffn_norm_name, "%s.weight", m->arch->schema.ffn_norm);
    if ((rc = read_hparams(&L)) || (rc = load_tensors(&L)))
        return rc;
    return ENG_OK;
}

/* MLA's dimensions (deepseek2.cpp:3-44, 76-82; spec part 2 §1.1, §1.5) and
 * its attention scale (deepseek2.cpp:438-448: YaRN's magnitude folded into
 * kq_scale, computed from dk = nope + rope, not from the cache row). */
static int read_mla(loader *L)
{
    eng_hparams *hp = &L->m->hp;
    eng_mla_params *a = &hp->mla;
    int64_t kmla, vmla;
    int rc;
    /* the "lite" shapes (V2-Lite and kin) have no q-LoRA: the key is not read */
    const bool lite = hp->n_layer_file == 26 || hp->n_layer_file == 27 ||
                      (hp->n_layer_file == 48 && file_vocab(L) == 128256);
    if ((rc = get_dim(L, "attention.kv_lora_rank", 0, true, &a->kv_lora_rank)) ||
        (rc = need_positive(L, "attention.kv_lora_rank", a->kv_lora_rank)) ||
        (!lite && (rc = get_dim(L, "attention.q_lora_rank", 0, true, &a->q_lora_rank))) ||
        (rc = get_dim(L, "attention.key_length_mla", 0, false, &kmla)) ||
        (rc = get_dim(L, "attention.value_length_mla", 0, false, &vmla)))
        return rc;
    if ((kmla == 0) != (vmla == 0))
        return eng_err_set(L->err, ENG_EFORMAT, "keys '%s.attention.key_length_mla' and "
                           "'value_length_mla' must be given together (%" PRId64 ", %" PRId64 ")",
                           hp->arch, kmla, vmla);
    a->absorbed = kmla != 0;
    a->dk = a->absorbed ? kmla : hp->head_dim;
    a->dv = a->absorbed ? vmla : hp->head_dim_v;
    a->nope = a->dk - hp->n_rot;
    if (a->nope < 1)
        return eng_err_set(L->err, ENG_EFORMAT,
                           "key '%s': %" PRId64 " rotated dims leave no non-rotated part of the "
                           "%" PRId64 "-wide key", kname(L, "rope.dimension_count"), hp->n_rot,
                           a->dk);
    if (a->absorbed && (hp->n_head_kv != 1 || hp->head_dim != a->kv_lora_rank + hp->n_rot))
        return eng_err_set(L->err, ENG_EFORMAT,
                           "MLA file: head_count_kv %" PRId64 " and key_length %" PRId64
                           " must be 1 and kv_lora_rank + rope.dimension_count = %" PRId64
                           " (the cache row)",
                           hp->n_head_kv, hp->head_dim, a->kv_lora_rank + hp->n_rot);
    if (!a->absorbed && hp->n_head_kv != hp->n_head)
        return eng_err_set(L->err, ENG_EFORMAT,
                           "key '%s': %" PRId64 ", must equal head_count %" PRId64
                           " in a file with attn_kv_b (no key_length_mla)",
                           kname(L, "attention.head_count_kv"), hp->n_head_kv, hp->n_head);
    const float fs = hp->rope.freq_scale;
    const float a_org = hp->rope.attn_factor * (1.0f + 0.1f * logf(1.0f / fs));
    const float ms = a_org * (1.0f + 0.1f * hp->rope.yarn_log_mul * logf(1.0f / fs));
    hp->kq_scale = 1.0f * ms * ms / sqrtf((float)a->dk);
    return ENG_OK;
}
