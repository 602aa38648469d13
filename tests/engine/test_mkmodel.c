/* test_mkmodel.c — synthetic models: keys, value types, tensor names,
 * types and shapes against the spec's table (written out here, not taken
 * from mkmodel), exact size estimates, determinism, --layers, and the
 * measurable effect of router locality. */
#include "tests/test.h"

#include "engine/formats.h"
#include "engine/gguf.h"
#include "engine/mkmodel.h"

#include <math.h>
#include <stdlib.h>

static const char *const k_tiny[] = {"tiny-mixtral", "tiny-qwen2moe", "tiny-qwen3moe", "tiny-olmoe"};
static const int k_types[] = {ENG_MK_F32, ENG_MK_F16, ENG_MK_BF16, ENG_MK_Q8_0, ENG_MK_Q4_0};

static eng_gguf *write_open(const char *preset, int type, uint64_t seed, uint32_t layers,
                            double loc, const char *file)
{
    eng_mkmodel_opts o = {.preset = preset, .type = type, .seed = seed, .layers = layers,
                          .router_locality = loc};
    eng_err e = {0};
    const char *path = tst_path(file);
    REQUIRE_MSG(eng_mkmodel_write(&o, path, &e) == ENG_OK, "%s: %s", preset, e.msg);
    eng_gguf *g;
    REQUIRE_MSG(eng_gguf_open(&g, path, &e) == ENG_OK, "%s", e.msg);
    return g;
}

static uint32_t get_u32(const eng_gguf *g, const char *fmt, const char *arch)
{
    char key[128];
    snprintf(key, sizeof key, fmt, arch);
    int64_t i = eng_gguf_find_key(g, key);
    REQUIRE_MSG(i >= 0, "key %s missing", key);
    return (uint32_t)eng_gguf_kv_at(g, i)->v.u;
}

/* ---- expected keys (spec section 3 and 5) -------------------------------- */

typedef struct want_kv {
    const char *key; /* %s = arch */
    int type, arr_type;
} want_kv;

static const want_kv k_common_kv[] = {
    {"general.architecture", ENG_GGUF_STRING, 0}, {"general.name", ENG_GGUF_STRING, 0},
    {"general.file_type", ENG_GGUF_U32, 0}, {"%s.block_count", ENG_GGUF_U32, 0},
    {"%s.context_length", ENG_GGUF_U32, 0}, {"%s.embedding_length", ENG_GGUF_U32, 0},
    {"%s.feed_forward_length", ENG_GGUF_U32, 0}, {"%s.attention.head_count", ENG_GGUF_U32, 0},
    {"%s.attention.head_count_kv", ENG_GGUF_U32, 0}, {"%s.rope.freq_base", ENG_GGUF_F32, 0},
    {"%s.attention.layer_norm_rms_epsilon", ENG_GGUF_F32, 0},
    {"%s.expert_count", ENG_GGUF_U32, 0}, {"%s.expert_used_count", ENG_GGUF_U32, 0},
    {"tokenizer.ggml.model", ENG_GGUF_STRING, 0}, {"tokenizer.ggml.pre", ENG_GGUF_STRING, 0},
    {"tokenizer.ggml.tokens", ENG_GGUF_ARRAY, ENG_GGUF_STRING},
    {"tokenizer.ggml.token_type", ENG_GGUF_ARRAY, ENG_GGUF_I32},
    {"tokenizer.ggml.merges", ENG_GGUF_ARRAY, ENG_GGUF_STRING},
    {"tokenizer.ggml.bos_token_id", ENG_GGUF_U32, 0},
    {"tokenizer.ggml.eos_token_id", ENG_GGUF_U32, 0},
    {"tokenizer.ggml.add_bos_token", ENG_GGUF_BOOL, 0},
};

static size_t arch_kvs(const char *arch, int quant, want_kv *out)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof k_common_kv / sizeof k_common_kv[0]; i++)
        out[n++] = k_common_kv[i];
    if (quant)
        out[n++] = (want_kv){"general.quantization_version", ENG_GGUF_U32, 0};
    if (!strcmp(arch, "llama")) {
        out[n++] = (want_kv){"%s.rope.dimension_count", ENG_GGUF_U32, 0};
        out[n++] = (want_kv){"%s.vocab_size", ENG_GGUF_U32, 0};
    }
    if (!strncmp(arch, "qwen", 4))
        out[n++] = (want_kv){"%s.expert_feed_forward_length", ENG_GGUF_U32, 0};
    if (!strcmp(arch, "qwen2moe"))
        out[n++] = (want_kv){"%s.expert_shared_feed_forward_length", ENG_GGUF_U32, 0};
    if (!strcmp(arch, "qwen3moe")) {
        out[n++] = (want_kv){"%s.attention.key_length", ENG_GGUF_U32, 0};
        out[n++] = (want_kv){"%s.attention.value_length", ENG_GGUF_U32, 0};
    }
    return n;
}

/* ---- expected tensors (spec section 3 table) -------------------------------- */

typedef struct want_t {
    char name[64];
    int f32;        /* stays F32 whatever the type */
    int n_dims;
    int64_t ne[3];
} want_t;

static void W(want_t *w, size_t *n, int f32, int nd, int64_t a, int64_t b, int64_t c,
              const char *fmt, int l)
{
    snprintf(w[*n].name, sizeof w[*n].name, fmt, l);
    w[*n].f32 = f32;
    w[*n].n_dims = nd;
    w[*n].ne[0] = a;
    w[*n].ne[1] = b;
    w[*n].ne[2] = c;
    (*n)++;
}

typedef struct dims {
    int64_t n, V, L, H, KV, hd, E, F, S;
} dims;

static size_t arch_tensors(const char *arch, dims d, want_t *w)
{
    size_t k = 0;
    int qwen2 = !strcmp(arch, "qwen2moe"), qwen3 = !strcmp(arch, "qwen3moe"),
        olmoe = !strcmp(arch, "olmoe");
    int64_t q = d.H * d.hd, kv = d.KV * d.hd;
    W(w, &k, 0, 2, d.n, d.V, 1, "token_embd.weight", 0);
    W(w, &k, 1, 1, d.n, 1, 1, "output_norm.weight", 0);
    W(w, &k, 0, 2, d.n, d.V, 1, "output.weight", 0);
    for (int l = 0; l < d.L; l++) {
        W(w, &k, 1, 1, d.n, 1, 1, "blk.%d.attn_norm.weight", l);
        W(w, &k, 0, 2, d.n, q, 1, "blk.%d.attn_q.weight", l);
        W(w, &k, 0, 2, d.n, kv, 1, "blk.%d.attn_k.weight", l);
        W(w, &k, 0, 2, d.n, kv, 1, "blk.%d.attn_v.weight", l);
        W(w, &k, 0, 2, q, d.n, 1, "blk.%d.attn_output.weight", l);
        if (qwen2) {
            W(w, &k, 1, 1, q, 1, 1, "blk.%d.attn_q.bias", l);
            W(w, &k, 1, 1, kv, 1, 1, "blk.%d.attn_k.bias", l);
            W(w, &k, 1, 1, kv, 1, 1, "blk.%d.attn_v.bias", l);
        }
        if (qwen3 || olmoe) {
            int64_t nn = qwen3 ? d.hd : d.n;
            W(w, &k, 1, 1, nn, 1, 1, "blk.%d.attn_q_norm.weight", l);
            W(w, &k, 1, 1, nn, 1, 1, "blk.%d.attn_k_norm.weight", l);
        }
        W(w, &k, 1, 1, d.n, 1, 1, "blk.%d.ffn_norm.weight", l);
        W(w, &k, 1, 2, d.n, d.E, 1, "blk.%d.ffn_gate_inp.weight", l);
        W(w, &k, 0, 3, d.n, d.F, d.E, "blk.%d.ffn_gate_exps.weight", l);
        W(w, &k, 0, 3, d.n, d.F, d.E, "blk.%d.ffn_up_exps.weight", l);
        W(w, &k, 0, 3, d.F, d.n, d.E, "blk.%d.ffn_down_exps.weight", l);
        if (qwen2) {
            W(w, &k, 1, 1, d.n, 1, 1, "blk.%d.ffn_gate_inp_shexp.weight", l);
            W(w, &k, 0, 2, d.n, d.S, 1, "blk.%d.ffn_gate_shexp.weight", l);
            W(w, &k, 0, 2, d.n, d.S, 1, "blk.%d.ffn_up_shexp.weight", l);
            W(w, &k, 0, 2, d.S, d.n, 1, "blk.%d.ffn_down_shexp.weight", l);
        }
    }
    return k;
}

/* Dimensions as the metadata states them (the spec's key meanings). */
static dims file_dims(const eng_gguf *g, const char *a)
{
    dims d;
    d.n = get_u32(g, "%s.embedding_length", a);
    d.L = get_u32(g, "%s.block_count", a);
    d.H = get_u32(g, "%s.attention.head_count", a);
    d.KV = get_u32(g, "%s.attention.head_count_kv", a);
    d.hd = !strcmp(a, "qwen3moe") ? get_u32(g, "%s.attention.key_length", a) : d.n / d.H;
    d.E = get_u32(g, "%s.expert_count", a);
    d.F = !strncmp(a, "qwen", 4) ? get_u32(g, "%s.expert_feed_forward_length", a)
                                 : get_u32(g, "%s.feed_forward_length", a);
    d.S = !strcmp(a, "qwen2moe") ? get_u32(g, "%s.expert_shared_feed_forward_length", a) : 0;
    int64_t ki;
    REQUIRE(eng_gguf_get_arr(g, "tokenizer.ggml.tokens", &ki, NULL) == ENG_OK);
    d.V = (int64_t)eng_gguf_kv_at(g, ki)->arr_len;
    return d;
}

static void check_keys(const eng_gguf *g, const char *arch, int quant)
{
    want_kv want[64];
    size_t nw = arch_kvs(arch, quant, want);
    CHECK_EQ_INT(eng_gguf_kv_count(g), (int64_t)nw);
    for (size_t i = 0; i < nw; i++) {
        char key[128];
        snprintf(key, sizeof key, want[i].key, arch);
        int64_t k = eng_gguf_find_key(g, key);
        CHECK_MSG(k >= 0, "key %s missing", key);
        if (k < 0)
            continue;
        const eng_gguf_kv *kv = eng_gguf_kv_at(g, k);
        CHECK_MSG((int)kv->type == want[i].type, "key %s: type %s", key,
                  eng_gguf_type_name(kv->type));
        if (want[i].type == ENG_GGUF_ARRAY)
            CHECK_MSG((int)kv->arr_type == want[i].arr_type, "key %s: element type %s", key,
                      eng_gguf_type_name(kv->arr_type));
    }
}

static void check_tensors(const eng_gguf *g, const char *arch, int type)
{
    dims d = file_dims(g, arch);
    want_t *w = tst_alloc(4096 * sizeof *w);
    size_t nw = arch_tensors(arch, d, w);
    CHECK_EQ_INT(eng_gguf_tensor_count(g), (int64_t)nw);
    for (size_t i = 0; i < nw; i++) {
        const eng_gguf_tensor *t = eng_gguf_find_tensor(g, w[i].name);
        CHECK_MSG(t != NULL, "%s: tensor %s missing", arch, w[i].name);
        if (!t)
            continue;
        CHECK_MSG(t->type == (w[i].f32 ? ENG_TYPE_F32 : type), "%s: type %s", w[i].name,
                  eng_type_name(t->type));
        CHECK_MSG(t->n_dims == w[i].n_dims && t->ne[0] == w[i].ne[0] && t->ne[1] == w[i].ne[1] &&
                      t->ne[2] == w[i].ne[2],
                  "%s: ne {%lld,%lld,%lld} n_dims %d", w[i].name, (long long)t->ne[0],
                  (long long)t->ne[1], (long long)t->ne[2], t->n_dims);
    }
}

TEST(every_tiny_preset_and_type_matches_the_spec)
{
    static const uint32_t ftype[] = {0, 1, 32, 7, 2};
    static const char *const pre[] = {"default", "qwen2", "qwen2", "olmo"};
    for (int p = 0; p < 4; p++) {
        for (int ti = 0; ti < 5; ti++) {
            eng_gguf *g = write_open(k_tiny[p], k_types[ti], 1, 0, 0.5, "m.gguf");
            const eng_mkmodel_preset *pr = eng_mkmodel_preset_find(k_tiny[p]);
            REQUIRE(pr);
            const char *a = pr->arch;
            eng_gguf_str s;
            REQUIRE(eng_gguf_get_str(g, "general.architecture", &s, NULL) == ENG_OK);
            CHECK(s.len == strlen(a) && !memcmp(s.ptr, a, s.len));
            REQUIRE(eng_gguf_get_str(g, "tokenizer.ggml.pre", &s, NULL) == ENG_OK);
            CHECK(s.len == strlen(pre[p]) && !memcmp(s.ptr, pre[p], s.len));
            check_keys(g, a, k_types[ti] == ENG_MK_Q8_0 || k_types[ti] == ENG_MK_Q4_0);
            check_tensors(g, a, k_types[ti]);
            CHECK_EQ_INT(get_u32(g, "general.file_type", a), ftype[ti]);
            CHECK_EQ_INT(get_u32(g, "%s.block_count", a), pr->n_layer);
            CHECK_EQ_INT(get_u32(g, "%s.expert_count", a), pr->n_expert);
            CHECK_EQ_INT(get_u32(g, "%s.expert_used_count", a), pr->n_expert_used);
            dims d = file_dims(g, a);
            CHECK_EQ_INT(d.V, pr->n_vocab);
            CHECK_EQ_INT(d.hd, pr->head_dim);
            /* the plan's size is the file's size, exactly */
            eng_mkmodel_opts o = {.preset = k_tiny[p], .type = k_types[ti], .seed = 1,
                                  .router_locality = 0.5};
            eng_mkmodel_info info;
            REQUIRE(eng_mkmodel_plan(&o, &info, NULL) == ENG_OK);
            CHECK_EQ_INT(info.file_bytes, eng_gguf_file_size(g));
            CHECK_EQ_INT(info.n_tensors, eng_gguf_tensor_count(g));
            eng_gguf_free(g);
        }
    }
}

TEST(qwen3moe_head_dim_differs_from_embd_over_heads)
{
    const eng_mkmodel_preset *p = eng_mkmodel_preset_find("qwen3-30b-a3b");
    REQUIRE(p);
    CHECK(p->head_dim != p->n_embd / p->n_head);
    p = eng_mkmodel_preset_find("tiny-qwen3moe");
    REQUIRE(p);
    CHECK(p->head_dim != p->n_embd / p->n_head);
}

static char *read_all(const char *file, size_t *len)
{
    char *b = tst_read_file(tst_path(file), len);
    REQUIRE(b);
    return b;
}

TEST(same_seed_same_bytes_other_seed_other_weights)
{
    size_t la, lb, lc;
    eng_gguf_free(write_open("tiny-qwen2moe", ENG_MK_Q4_0, 42, 0, 0.3, "a.gguf"));
    eng_gguf_free(write_open("tiny-qwen2moe", ENG_MK_Q4_0, 42, 0, 0.3, "b.gguf"));
    eng_gguf_free(write_open("tiny-qwen2moe", ENG_MK_Q4_0, 43, 0, 0.3, "c.gguf"));
    char *a = read_all("a.gguf", &la), *b = read_all("b.gguf", &lb), *c = read_all("c.gguf", &lc);
    CHECK(la == lb && !memcmp(a, b, la));
    CHECK(la == lc && memcmp(a, c, la) != 0);
    eng_gguf *ga = write_open("tiny-qwen2moe", ENG_MK_Q4_0, 42, 0, 0.3, "a.gguf");
    eng_gguf *gc = write_open("tiny-qwen2moe", ENG_MK_Q4_0, 43, 0, 0.3, "c.gguf");
    for (int64_t i = 0; i < eng_gguf_tensor_count(ga); i++) {
        const eng_gguf_tensor *x = eng_gguf_tensor_at(ga, i), *y = eng_gguf_tensor_at(gc, i);
        CHECK_EQ_STR(x->name, y->name);
        CHECK_MSG(x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) != 0,
                  "tensor %s is the same under seeds 42 and 43", x->name);
    }
    eng_gguf_free(ga);
    eng_gguf_free(gc);
}

TEST(bytes_do_not_depend_on_thread_count)
{
    static const int threads[] = {1, 3, 8};
    char *first = NULL;
    size_t len0 = 0;
    for (int i = 0; i < 3; i++) {
        eng_mkmodel_opts o = {.preset = "tiny-mixtral", .type = ENG_MK_Q4_0, .seed = 2,
                              .router_locality = 0.7, .threads = threads[i]};
        eng_err e = {0};
        REQUIRE(eng_mkmodel_write(&o, tst_path("t.gguf"), &e) == ENG_OK);
        size_t len;
        char *b = read_all("t.gguf", &len);
        if (!first) {
            first = b;
            len0 = len;
        } else {
            CHECK_MSG(len == len0 && !memcmp(b, first, len), "%d threads differ", threads[i]);
        }
    }
}

/* Every tensor of a file written with mix/format `mk` has the type
 * eng_mkmodel_tensor_type names (F32 for norms, biases, routers), and the
 * plan's size is the file's. */
static void check_mk_tensors(const eng_gguf *g, const char *preset, int mk, int *n_k256)
{
    const eng_mkmodel_preset *pr = eng_mkmodel_preset_find(preset);
    const char *arch = pr->arch;
    dims d = file_dims(g, arch);
    want_t *w = tst_alloc(4096 * sizeof *w);
    size_t nw = arch_tensors(arch, d, w);
    CHECK_EQ_INT(eng_gguf_tensor_count(g), (int64_t)nw);
    for (size_t i = 0; i < nw; i++) {
        const eng_gguf_tensor *t = eng_gguf_find_tensor(g, w[i].name);
        REQUIRE_MSG(t != NULL, "%s: tensor %s missing", arch, w[i].name);
        int want = w[i].f32 ? ENG_TYPE_F32 : eng_mkmodel_tensor_type(mk, w[i].name, w[i].ne[0], pr, false);
        CHECK_MSG(t->type == want, "%s %s: type %s, want %s", preset, w[i].name, eng_type_name(t->type),
                  eng_type_name(want));
        *n_k256 += eng_format_get(t->type)->blck == 256;
    }
}

TEST(every_type_writes_what_tensor_type_says)
{
    static const char *const presets[] = {"tiny-k-mixtral", "tiny-k-qwen2moe", "tiny-qwen3moe"};
    static const int mks[] = {ENG_MK_Q4_K,   ENG_MK_Q3_K,   ENG_MK_Q5_K,     ENG_MK_Q4_1,     ENG_MK_Q5_1,
                              ENG_MK_IQ4_NL, ENG_MK_Q2_K_MIX, ENG_MK_Q3_K_M, ENG_MK_Q4_K_S,   ENG_MK_Q4_K_M,
                              ENG_MK_Q5_K_M, ENG_MK_Q6_K_MIX, ENG_MK_IQ4_XS_MIX, ENG_MK_MXFP4};
    static const uint32_t ftype[] = {14, 11, 16, 3, 9, 25, 10, 12, 14, 15, 17, 18, 30, 38};
    for (size_t p = 0; p < sizeof presets / sizeof presets[0]; p++)
        for (size_t ti = 0; ti < sizeof mks / sizeof mks[0]; ti++) {
            /* every type on a shared-expert file (256 wide) and a 64-wide
             * one (fallbacks); the mixes also on the 8-expert files */
            if (p % 3 == 0 && (mks[ti] < ENG_MK_MIX_BASE || mks[ti] == ENG_MK_IQ4_XS_MIX))
                continue;
            eng_gguf *g = write_open(presets[p], mks[ti], 1, 0, 0.5, "k.gguf");
            const char *a = eng_mkmodel_preset_find(presets[p])->arch;
            int n_k256 = 0;
            check_keys(g, a, 1);
            check_mk_tensors(g, presets[p], mks[ti], &n_k256);
            CHECK_EQ_INT(get_u32(g, "general.file_type", a), ftype[ti]);
            /* the 64-wide tiny presets fall back from every 256-block type;
             * the tiny-k presets keep them */
            bool k256 = mks[ti] != ENG_MK_Q4_1 && mks[ti] != ENG_MK_Q5_1 && mks[ti] != ENG_MK_IQ4_NL &&
                        mks[ti] != ENG_MK_MXFP4;
            if (k256)
                CHECK_MSG(strncmp(presets[p], "tiny-k-", 7) ? n_k256 == 0 : n_k256 > 0, "%s %s: %d 256-block tensors",
                          presets[p], eng_mkmodel_type_name(mks[ti]), n_k256);
            eng_mkmodel_opts o = {.preset = presets[p], .type = mks[ti], .seed = 1, .router_locality = 0.5};
            eng_mkmodel_info info;
            REQUIRE(eng_mkmodel_plan(&o, &info, NULL) == ENG_OK);
            CHECK_EQ_INT(info.file_bytes, eng_gguf_file_size(g));
            eng_gguf_free(g);
        }
}

/* llama.cpp's per-tensor choices (llama-quant.cpp llama_tensor_get_type_impl
 * at 82bb485), worked out by hand from its source for each rule the mixes
 * reach; checked against llama-quantize itself outside the repository
 * (docs/engine.md). hp16: 16 layers, 64 experts, 16 heads / 4 kv heads
 * (n_gqa 4); use_more_bits(i, 16) holds for i in {0, 1, 4, 7, 10, 13, 14,
 * 15}; n/8 = 2, n/16 = 1. hp8: 8 experts (Mixtral's rules), n_gqa 2. */
TEST(mix_rules_per_tensor)
{
    eng_mkmodel_preset hp16 = {.n_layer = 16, .n_expert = 64, .n_head = 16, .n_head_kv = 4};
    eng_mkmodel_preset hp8 = {.n_layer = 4, .n_expert = 8, .n_head = 4, .n_head_kv = 2};
    static const struct { int mk; const char *name; int hp8; int want; } cases[] = {
        /* output: Q6_K in every K/IQ4 mix; token_embd keeps the default */
        {ENG_MK_Q2_K_MIX, "output.weight", 0, ENG_TYPE_Q6_K},
        {ENG_MK_IQ4_XS_MIX, "output.weight", 0, ENG_TYPE_Q6_K},
        {ENG_MK_Q2_K_MIX, "token_embd.weight", 0, ENG_TYPE_Q2_K},
        /* Q2_K: attn_v Q4_K with n_gqa >= 4, else Q3_K; ffn_down Q3_K;
         * attn_output Q3_K, or Q5_K with 8 experts; attn_k Q8_0 with 8 */
        {ENG_MK_Q2_K_MIX, "blk.3.attn_v.weight", 0, ENG_TYPE_Q4_K},
        {ENG_MK_Q2_K_MIX, "blk.3.attn_v.weight", 1, ENG_TYPE_Q8_0},
        {ENG_MK_Q2_K_MIX, "blk.3.ffn_down_exps.weight", 0, ENG_TYPE_Q3_K},
        {ENG_MK_Q2_K_MIX, "blk.3.attn_output.weight", 0, ENG_TYPE_Q3_K},
        {ENG_MK_Q2_K_MIX, "blk.3.attn_output.weight", 1, ENG_TYPE_Q5_K},
        {ENG_MK_Q2_K_MIX, "blk.3.attn_k.weight", 1, ENG_TYPE_Q8_0},
        {ENG_MK_Q2_K_MIX, "blk.3.attn_k.weight", 0, ENG_TYPE_Q2_K},
        {ENG_MK_Q2_K_MIX, "blk.3.ffn_gate_exps.weight", 0, ENG_TYPE_Q2_K},
        /* Q3_K_M: attn_v Q5_K in the first 2 layers, then Q4_K; ffn_down
         * Q5_K below n/16, then Q4_K; attn_output Q4_K */
        {ENG_MK_Q3_K_M, "blk.1.attn_v.weight", 0, ENG_TYPE_Q5_K},
        {ENG_MK_Q3_K_M, "blk.2.attn_v.weight", 0, ENG_TYPE_Q4_K},
        {ENG_MK_Q3_K_M, "blk.0.ffn_down_exps.weight", 0, ENG_TYPE_Q5_K},
        {ENG_MK_Q3_K_M, "blk.1.ffn_down_exps.weight", 0, ENG_TYPE_Q4_K},
        {ENG_MK_Q3_K_M, "blk.5.attn_output.weight", 0, ENG_TYPE_Q4_K},
        {ENG_MK_Q3_K_M, "blk.5.ffn_up_exps.weight", 0, ENG_TYPE_Q3_K},
        /* Q4_K_S: attn_v Q5_K below layer 4; ffn_down Q5_K below n/8 */
        {ENG_MK_Q4_K_S, "blk.3.attn_v.weight", 0, ENG_TYPE_Q5_K},
        {ENG_MK_Q4_K_S, "blk.4.attn_v.weight", 0, ENG_TYPE_Q4_K},
        {ENG_MK_Q4_K_S, "blk.1.ffn_down_shexp.weight", 0, ENG_TYPE_Q5_K},
        {ENG_MK_Q4_K_S, "blk.2.ffn_down_exps.weight", 0, ENG_TYPE_Q4_K},
        {ENG_MK_Q4_K_S, "blk.2.attn_output.weight", 1, ENG_TYPE_Q5_K},
        /* Q4_K_M / Q5_K_M: Q6_K for attn_v and ffn_down where use_more_bits */
        {ENG_MK_Q4_K_M, "blk.4.attn_v.weight", 0, ENG_TYPE_Q6_K},
        {ENG_MK_Q4_K_M, "blk.5.attn_v.weight", 0, ENG_TYPE_Q4_K},
        {ENG_MK_Q4_K_M, "blk.13.ffn_down_exps.weight", 0, ENG_TYPE_Q6_K},
        {ENG_MK_Q4_K_M, "blk.12.ffn_down_exps.weight", 0, ENG_TYPE_Q4_K},
        {ENG_MK_Q4_K_M, "blk.12.attn_q.weight", 0, ENG_TYPE_Q4_K},
        {ENG_MK_Q5_K_M, "blk.14.ffn_down_exps.weight", 0, ENG_TYPE_Q6_K},
        {ENG_MK_Q5_K_M, "blk.6.ffn_down_exps.weight", 0, ENG_TYPE_Q5_K},
        {ENG_MK_Q5_K_M, "blk.7.attn_v.weight", 0, ENG_TYPE_Q6_K},
        {ENG_MK_Q5_K_M, "blk.7.attn_output.weight", 1, ENG_TYPE_Q5_K},
        /* Q6_K: all Q6_K but the 8-expert attn_k/attn_v (Q8_0) */
        {ENG_MK_Q6_K_MIX, "blk.0.attn_v.weight", 0, ENG_TYPE_Q6_K},
        {ENG_MK_Q6_K_MIX, "blk.0.attn_v.weight", 1, ENG_TYPE_Q8_0},
        {ENG_MK_Q6_K_MIX, "blk.0.ffn_down_exps.weight", 0, ENG_TYPE_Q6_K},
        /* IQ4_XS: attn_v Q5_K with n_gqa >= 4; ffn_down Q5_K below n/8
         * (no imatrix); attn_output Q5_K with 8 experts */
        {ENG_MK_IQ4_XS_MIX, "blk.9.attn_v.weight", 0, ENG_TYPE_Q5_K},
        {ENG_MK_IQ4_XS_MIX, "blk.9.attn_v.weight", 1, ENG_TYPE_Q8_0},
        {ENG_MK_IQ4_XS_MIX, "blk.1.ffn_down_exps.weight", 0, ENG_TYPE_Q5_K},
        {ENG_MK_IQ4_XS_MIX, "blk.2.ffn_down_exps.weight", 0, ENG_TYPE_IQ4_XS},
        {ENG_MK_IQ4_XS_MIX, "blk.2.attn_output.weight", 1, ENG_TYPE_Q5_K},
        {ENG_MK_IQ4_XS_MIX, "blk.2.attn_output.weight", 0, ENG_TYPE_IQ4_XS},
        /* mxfp4: experts MXFP4, other matrices BF16 */
        {ENG_MK_MXFP4, "blk.2.ffn_down_exps.weight", 0, ENG_TYPE_MXFP4},
        {ENG_MK_MXFP4, "blk.2.ffn_down_shexp.weight", 0, ENG_TYPE_BF16},
        {ENG_MK_MXFP4, "output.weight", 0, ENG_TYPE_BF16},
        /* formats: the same type everywhere */
        {ENG_MK_Q4_K, "blk.4.attn_v.weight", 1, ENG_TYPE_Q4_K},
        {ENG_MK_IQ4_NL, "output.weight", 0, ENG_TYPE_IQ4_NL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = eng_mkmodel_tensor_type(cases[i].mk, cases[i].name, 2048,
                                          cases[i].hp8 ? &hp8 : &hp16, false);
        CHECK_MSG(got == cases[i].want, "%s %s (%s): %s, want %s", eng_mkmodel_type_name(cases[i].mk),
                  cases[i].name, cases[i].hp8 ? "8 experts" : "16 layers", eng_type_name(got),
                  eng_type_name(cases[i].want));
    }
    /* tied embeddings: token_embd gets the output's Q6_K */
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_Q4_K_M, "token_embd.weight", 2048, &hp16, true), ENG_TYPE_Q6_K);
    /* fallbacks (llama.cpp tensor_type_fallback): Qwen1.5-MoE's 1408 */
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_Q4_K_M, "blk.0.ffn_down_exps.weight", 1408, &hp16, false),
                 ENG_TYPE_Q8_0);
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_Q4_K_M, "blk.0.ffn_up_exps.weight", 1408, &hp16, false),
                 ENG_TYPE_Q5_0);
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_Q5_K, "blk.0.ffn_up_exps.weight", 1408, &hp16, false),
                 ENG_TYPE_Q5_1);
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_Q2_K_MIX, "blk.0.ffn_up_exps.weight", 1408, &hp16, false),
                 ENG_TYPE_Q4_0);
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_IQ4_XS_MIX, "blk.5.ffn_up_exps.weight", 1408, &hp16, false),
                 ENG_TYPE_IQ4_NL);
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_Q4_0, "blk.0.ffn_up_exps.weight", 100, &hp16, false),
                 ENG_TYPE_F16);
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_MXFP4, "blk.0.ffn_up_exps.weight", 100, &hp16, false),
                 ENG_TYPE_BF16);
    int t;
    CHECK_EQ_INT(eng_mkmodel_type_parse("Q4_K_M", &t), ENG_OK);
    CHECK_EQ_INT(t, ENG_MK_Q4_K_M);
    CHECK_EQ_INT(eng_mkmodel_type_parse("q4_k_l", &t), ENG_EINVAL);
    CHECK_EQ_STR(eng_mkmodel_type_name(ENG_MK_Q6_K_MIX), "q6_k");
    CHECK(eng_mkmodel_type_quantized(ENG_MK_Q4_K_M) && eng_mkmodel_type_quantized(ENG_MK_MXFP4) &&
          !eng_mkmodel_type_quantized(ENG_MK_BF16));
    /* the GGUF writer itself refuses a K-quant row that is not whole blocks */
    eng_gguf_writer *w = NULL;
    eng_err e = {0};
    REQUIRE(eng_gguf_writer_open(&w, tst_path("bad.gguf"), &e) == ENG_OK);
    int64_t ne[2] = {1408, 4};
    CHECK_EQ_INT(eng_gguf_writer_add_tensor(w, "blk.0.ffn_down.weight", ENG_TYPE_Q4_K, 2, ne, NULL, &e),
                 ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "tensor 'blk.0.ffn_down.weight': ne0 is not a multiple of q4_K's block size");
    eng_gguf_writer_free(w);
}

/* What the later architectures add to the rules, each checked against
 * llama-quantize outside the repository: llama.cpp counts the layers as
 * block_count (n_layer_all: glm4moe's next-token-prediction layer too), takes
 * n_gqa from the file's head_count_kv (MLA's legacy form writes n_head
 * there, the absorbed form 1), and mxfp4 puts the experts only in MXFP4 (MLA's
 * 3-D attn_k_b is not an expert). */
TEST(mix_rules_later_architectures)
{
    /* 4 layers + 1 MTP layer: use_more_bits(3, 5) is false, (4, 5) true */
    eng_mkmodel_preset glm = {.n_layer = 4, .n_nextn = 1, .n_expert = 16, .n_head = 4, .n_head_kv = 2};
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_Q4_K_M, "blk.3.attn_v.weight", 256, &glm, false), ENG_TYPE_Q4_K);
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_Q4_K_M, "blk.4.attn_v.weight", 256, &glm, false), ENG_TYPE_Q6_K);
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_Q4_K_M, "blk.3.ffn_down_exps.weight", 256, &glm, false),
                 ENG_TYPE_Q4_K);
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_MXFP4, "blk.0.attn_k_b.weight", 128, &glm, false), ENG_TYPE_BF16);
    CHECK_EQ_INT(eng_mkmodel_tensor_type(ENG_MK_MXFP4, "blk.0.ffn_gate_exps.weight", 128, &glm, false),
                 ENG_TYPE_MXFP4);
    /* Q2_K's attn_kv_b: Q4_K with n_gqa >= 4, else Q3_K; tiny-deepseek2-lite's
     * rows of kv_lora_rank fall back to Q5_0 / Q4_0. The legacy file has
     * head_count_kv = head_count: n_gqa 1. */
    eng_mkmodel_opts o = {.preset = "tiny-deepseek2-lite", .type = ENG_MK_Q2_K_MIX, .seed = 1, .mla_legacy = true};
    eng_err e = {0};
    REQUIRE_MSG(eng_mkmodel_write(&o, tst_path("l.gguf"), &e) == ENG_OK, "%s", e.msg);
    eng_gguf *g;
    REQUIRE_MSG(eng_gguf_open(&g, tst_path("l.gguf"), &e) == ENG_OK, "%s", e.msg);
    const eng_gguf_tensor *t = eng_gguf_find_tensor(g, "blk.0.attn_kv_b.weight");
    REQUIRE(t != NULL && t->ne[0] % 256 != 0);
    CHECK_EQ_INT(get_u32(g, "%s.attention.head_count_kv", "deepseek2"), get_u32(g, "%s.attention.head_count", "deepseek2"));
    CHECK_MSG(t->type == ENG_TYPE_Q4_0, "attn_kv_b: %s, want q4_0", eng_type_name(t->type));
    eng_gguf_free(g);
}

TEST(layers_cut_block_count_and_tensors)
{
    eng_gguf *g = write_open("tiny-olmoe", ENG_MK_F16, 1, 2, 0, "m.gguf");
    CHECK_EQ_INT(get_u32(g, "%s.block_count", "olmoe"), 2);
    CHECK(eng_gguf_find_tensor(g, "blk.1.ffn_down_exps.weight") != NULL);
    CHECK(eng_gguf_find_tensor(g, "blk.2.attn_q.weight") == NULL);
    check_tensors(g, "olmoe", ENG_TYPE_F16);
    eng_gguf_free(g);
}

TEST(weights_are_finite_and_scaled)
{
    eng_gguf *g = write_open("tiny-mixtral", ENG_MK_F32, 5, 0, 0, "m.gguf");
    const eng_gguf_tensor *t = eng_gguf_find_tensor(g, "blk.0.attn_q.weight");
    REQUIRE(t);
    const float *x = t->data;
    double s = 0, s2 = 0;
    int64_t n = t->ne[0] * t->ne[1];
    for (int64_t i = 0; i < n; i++) {
        REQUIRE(isfinite(x[i]));
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    CHECK_NEAR(s / (double)n, 0, 0.01);
    CHECK_NEAR(sqrt(s2 / (double)n), 1 / sqrt(64.0), 0.01); /* 1/sqrt(fan_in) */
    t = eng_gguf_find_tensor(g, "blk.3.ffn_norm.weight");
    REQUIRE(t);
    for (int64_t i = 0; i < t->ne[0]; i++)
        CHECK_NEAR(((const float *)t->data)[i], 1, 0.1);
    eng_gguf_free(g);
}

TEST(olmoe_4_layers_q8_0_size_is_estimated)
{
    eng_mkmodel_opts o = {.preset = "olmoe-1b-7b", .type = ENG_MK_Q8_0, .seed = 1, .layers = 4};
    eng_mkmodel_info info;
    eng_err e = {0};
    REQUIRE_MSG(eng_mkmodel_plan(&o, &info, &e) == ENG_OK, "%s", e.msg);
    /* Q8_0: 34 bytes per 32 weights; F32 for norms and the router */
    uint64_t q = 34 / 2, n = 2048, V = 50304, E = 64, F = 1024; /* q: bytes per 16 */
    uint64_t embd = V * n / 16 * q, attn = 4 * n * n / 16 * q;
    uint64_t experts = 3 * E * F * n / 16 * q, f32 = (2 + 2) * n * 4 + n * E * 4;
    uint64_t data = 2 * embd + n * 4 + 4 * (attn + experts + f32);
    CHECK_EQ_INT(info.data_bytes, data);
    CHECK(info.file_bytes > data && info.file_bytes - data < 4u << 20); /* header < 4 MiB */
    CHECK_EQ_INT(info.file_bytes % 32, 0);
    CHECK(info.file_bytes > 2000000000u && info.file_bytes < 2010000000u); /* ~2 GB */
    CHECK_EQ_INT(info.hp.n_layer, 4);
    CHECK_EQ_INT(info.n_tensors, 3 + 4 * 12);
}

TEST(bad_options_are_einval_with_clear_messages)
{
    eng_mkmodel_info info;
    eng_err e = {0};
    eng_mkmodel_opts o = {.preset = "nope", .type = ENG_MK_F32};
    CHECK(eng_mkmodel_plan(&o, &info, &e) == ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "unknown preset 'nope'");
    o.preset = "tiny-olmoe";
    o.arch = "qwen3moe";
    CHECK(eng_mkmodel_plan(&o, &info, &e) == ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "preset 'tiny-olmoe' is a olmoe model, not qwen3moe");
    o.arch = "gpt5";
    CHECK(eng_mkmodel_plan(&o, &info, &e) == ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "unknown architecture 'gpt5'");
    o.preset = "tiny-mixtral";
    o.arch = "mixtral";
    CHECK(eng_mkmodel_plan(&o, &info, &e) == ENG_OK);
    o.layers = 5;
    CHECK(eng_mkmodel_plan(&o, &info, &e) == ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "layers 5");
    o.layers = 0;
    o.type = 14;   /* Q6_K: a ggml type that is no --type of its own (q6_k is a mix) */
    CHECK(eng_mkmodel_plan(&o, &info, &e) == ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "tensor type 14 is not one of formats f32");
    o.type = ENG_MK_F32;
    o.router_locality = 1.5;
    CHECK(eng_mkmodel_plan(&o, &info, &e) == ENG_EINVAL);
    int t;
    CHECK(eng_mkmodel_type_parse("Q8_0", &t) == ENG_OK && t == ENG_MK_Q8_0);
    CHECK(eng_mkmodel_type_parse("q5_k", &t) == ENG_OK && t == ENG_MK_Q5_K);
    CHECK(eng_mkmodel_type_parse("q6_k_m", &t) == ENG_EINVAL);
    CHECK_EQ_STR(eng_mkmodel_arch_parse("mixtral"), "llama");
    CHECK(eng_mkmodel_arch_parse("gpt2") == NULL);
    /* an unwritable path is EIO and leaves nothing behind */
    o.router_locality = 0;
    CHECK(eng_mkmodel_write(&o, tst_path("no/such/dir/m.gguf"), &e) == ENG_EIO);
}

/* ---- router locality ---------------------------------------------------------- */

/* Mean overlap |S_i ∩ S_{i+1}| / k of consecutive tokens' top-k experts at
 * layer `layer`, the router applied to RMSNorm(embedding) * ffn_norm, for
 * runs of 16 consecutive token ids (the same "topic" most of the time). */
static double consecutive_overlap(const eng_gguf *g, int layer)
{
    char name[64];
    const eng_gguf_tensor *emb = eng_gguf_find_tensor(g, "token_embd.weight");
    snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.weight", layer);
    const eng_gguf_tensor *rt = eng_gguf_find_tensor(g, name);
    snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", layer);
    const eng_gguf_tensor *nw = eng_gguf_find_tensor(g, name);
    REQUIRE(emb && rt && nw && emb->type == ENG_TYPE_F32);
    int n = (int)emb->ne[0], V = (int)emb->ne[1], E = (int)rt->ne[1];
    int k = (int)get_u32(g, "%s.expert_used_count", "olmoe");
    unsigned seed = 11;
    int prev[64], cur[64], have_prev = 0;
    double sum = 0;
    int pairs = 0;
    for (int run = 0; run < 40; run++) {
        int start = (int)(rand_r(&seed) % (unsigned)(V - 16));
        for (int v = start; v < start + 16; v++) {
            const float *x = (const float *)emb->data + (size_t)v * n, *w = nw->data;
            double ss = 0;
            for (int j = 0; j < n; j++)
                ss += (double)x[j] * x[j];
            double inv = 1 / sqrt(ss / n + 1e-5);
            double logit[64];
            for (int ex = 0; ex < E; ex++) {
                const float *r = (const float *)rt->data + (size_t)ex * n;
                logit[ex] = 0;
                for (int j = 0; j < n; j++)
                    logit[ex] += r[j] * x[j] * inv * w[j];
            }
            for (int t = 0; t < k; t++) { /* top-k by selection */
                int best = -1;
                for (int ex = 0; ex < E; ex++)
                    if (logit[ex] > -1e300 && (best < 0 || logit[ex] > logit[best]))
                        best = ex;
                cur[t] = best;
                logit[best] = -1e301;
            }
            if (have_prev && v > start) {
                int common = 0;
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++)
                        common += cur[a] == prev[b];
                sum += (double)common / k;
                pairs++;
            }
            memcpy(prev, cur, sizeof cur);
            have_prev = 1;
        }
    }
    return sum / pairs;
}

TEST(router_locality_raises_consecutive_expert_overlap)
{
    static const double xs[] = {0, 0.25, 0.5, 1};
    double ov[4][2];
    for (int i = 0; i < 4; i++) {
        eng_gguf *g = write_open("tiny-olmoe", ENG_MK_F32, 9, 0, xs[i], "m.gguf");
        ov[i][0] = consecutive_overlap(g, 0);
        ov[i][1] = consecutive_overlap(g, 3);
        eng_gguf_free(g);
    }
    for (int l = 0; l < 2; l++) {
        printf("layer %d overlap: X=0 %.3f, X=0.25 %.3f, X=0.5 %.3f, X=1 %.3f\n", l ? 3 : 0,
               ov[0][l], ov[1][l], ov[2][l], ov[3][l]);
        /* random routing: 4 of 16 experts overlap by k/E = 0.25 on average */
        CHECK_MSG(ov[0][l] < 0.4, "X=0 overlap %.3f", ov[0][l]);
        for (int i = 1; i < 4; i++)
            CHECK_MSG(ov[i][l] > ov[i - 1][l] + 0.05, "overlap X=%.2f %.3f vs X=%.2f %.3f",
                      xs[i], ov[i][l], xs[i - 1], ov[i - 1][l]);
        CHECK_MSG(ov[3][l] > 0.85, "X=1 overlap %.3f", ov[3][l]);
    }
}
