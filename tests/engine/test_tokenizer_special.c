/* test_tokenizer_special.c — special tokens written in a prompt (llama.cpp's
 * tokenizer_st_partition), llama.cpp's load-time token fixes, its defaults
 * for missing metadata, and llama-bpe's whole-word tokens. */
#include "tests/test.h"

#include "engine/gguf.h"
#include "engine/mkvocab.h"
#include "engine/tokenizer.h"

#include <stdlib.h>

enum { N_EXTRA = 9 };
static const char *const k_extra[N_EXTRA] = {
    "<|im_start|>", "<|im_end|>", "<think>", "<s>", "<s>x", "<|start|>", "<|end|>", "<|return|>",
    "<|call|>",
};
static const int32_t k_extra_type[N_EXTRA] = {
    ENG_TOKEN_CONTROL, ENG_TOKEN_NORMAL, ENG_TOKEN_USER_DEFINED, ENG_TOKEN_CONTROL,
    ENG_TOKEN_CONTROL, ENG_TOKEN_CONTROL, ENG_TOKEN_CONTROL, ENG_TOKEN_CONTROL, ENG_TOKEN_CONTROL,
};

typedef struct special_vocab {
    eng_mkvocab v;
    eng_tokenizer *t;
    int32_t id[N_EXTRA]; /* ids of k_extra */
} special_vocab;

/* mkmodel's qwen2 vocabulary with k_extra in place of its last padding
 * tokens. */
static void open_special(special_vocab *sv, int add_bos)
{
    eng_err e = {0};
    REQUIRE(eng_mkvocab_build(&sv->v, 1200, ENG_PRETOK_QWEN2, &e) == ENG_OK);
    const char **toks = tst_alloc(sv->v.n_tokens * sizeof *toks);
    int32_t *types = tst_alloc(sv->v.n_tokens * sizeof *types);
    for (size_t i = 0; i < sv->v.n_tokens; i++) {
        toks[i] = sv->v.tokens[i];
        types[i] = sv->v.types[i];
    }
    for (int k = 0; k < N_EXTRA; k++) {
        size_t i = sv->v.n_tokens - N_EXTRA + (size_t)k;
        REQUIRE(types[i] == ENG_TOKEN_UNUSED);
        toks[i] = k_extra[k];
        types[i] = k_extra_type[k];
        sv->id[k] = (int32_t)i;
    }
    eng_tokenizer_desc d = {
        .model = "gpt2", .pre = "qwen2", .n_tokens = sv->v.n_tokens, .tokens = toks,
        .token_types = types, .n_merges = sv->v.n_merges,
        .merges = (const char *const *)sv->v.merges, .bos_id = sv->v.bos_id,
        .eos_id = sv->v.eos_id, .add_bos = add_bos,
    };
    REQUIRE_MSG(eng_tokenizer_open(&sv->t, &d, &e) == ENG_OK, "%s", e.msg);
}

static void close_special(special_vocab *sv)
{
    eng_tokenizer_free(sv->t);
    eng_mkvocab_free(&sv->v);
}

static size_t enc(const eng_tokenizer *t, const char *s, int flags, int32_t *out, size_t cap)
{
    int32_t *ids;
    size_t n;
    eng_err e = {0};
    REQUIRE_MSG(eng_tokenizer_encode(t, s, strlen(s), flags, &ids, &n, &e) == ENG_OK, "%s", e.msg);
    REQUIRE(n <= cap);
    if (n)
        memcpy(out, ids, n * sizeof *ids);
    free(ids);
    return n;
}

TEST(special_tokens_in_text_with_and_without_parse_special)
{
    special_vocab sv;
    open_special(&sv, 0);
    int32_t a[64], b[64], c[64];
    /* parsed: the special ids, the text between them as plain text */
    size_t na = enc(sv.t, "<|im_start|>user\nhi<|im_end|>", ENG_TOK_PARSE_SPECIAL, a, 64);
    size_t nb = enc(sv.t, "user\nhi", 0, b, 64);
    REQUIRE(na == nb + 2);
    CHECK_EQ_INT(a[0], sv.id[0]);
    CHECK_EQ_INT(a[na - 1], sv.id[1]); /* "<|im_end|>" is typed normal: made control */
    CHECK(!memcmp(a + 1, b, nb * sizeof *b));
    /* not parsed: control tokens are text (no special id comes out)... */
    na = enc(sv.t, "<|im_start|>user<|im_end|>", 0, a, 64);
    for (size_t i = 0; i < na; i++)
        CHECK(a[i] != sv.id[0] && a[i] != sv.id[1]);
    /* ...but user-defined ones still are tokens (llama.cpp, as HF) */
    na = enc(sv.t, "a<think>b", 0, a, 64);
    nb = enc(sv.t, "a", 0, b, 64);
    size_t nc = enc(sv.t, "b", 0, c, 64);
    REQUIRE(na == nb + 1 + nc);
    CHECK_EQ_INT(a[nb], sv.id[2]);
    /* longest text first: "<s>x" before "<s>" */
    na = enc(sv.t, "<s>x<s>", ENG_TOK_PARSE_SPECIAL, a, 64);
    REQUIRE(na == 2);
    CHECK(a[0] == sv.id[4] && a[1] == sv.id[3]);
    /* adjacent and repeated */
    na = enc(sv.t, "<s><s><s>", ENG_TOK_PARSE_SPECIAL, a, 64);
    CHECK(na == 3 && a[0] == sv.id[3] && a[2] == sv.id[3]);
    close_special(&sv);
}

TEST(load_fixes_as_llama_cpp_makes_them)
{
    special_vocab sv;
    open_special(&sv, 0);
    const eng_tokenizer *t = sv.t;
    /* end-of-generation text: control whatever its type */
    CHECK_EQ_INT(eng_tokenizer_token_type(t, sv.id[1]), ENG_TOKEN_NORMAL);
    CHECK(eng_tokenizer_token_attr(t, sv.id[1]) & ENG_TOKATTR_CONTROL);
    /* gpt-oss: <|start|> user-defined; <|end|> too beside <|return|>, <|call|> */
    CHECK_EQ_INT(eng_tokenizer_token_attr(t, sv.id[5]), ENG_TOKATTR_USER_DEFINED);
    CHECK_EQ_INT(eng_tokenizer_token_attr(t, sv.id[6]), ENG_TOKATTR_USER_DEFINED);
    CHECK(eng_tokenizer_token_attr(t, sv.id[7]) & ENG_TOKATTR_CONTROL);
    /* so <|start|> is cut out even without parse_special, and decodes */
    int32_t a[16];
    size_t na = enc(t, "<|start|>", 0, a, 16);
    CHECK(na == 1 && a[0] == sv.id[5]);
    int32_t seq[3] = {sv.id[0], sv.id[5], sv.id[2]};
    char *out;
    size_t len;
    eng_err e = {0};
    REQUIRE(eng_tokenizer_decode(t, seq, 3, &out, &len, &e) == ENG_OK);
    CHECK_EQ_STR(out, "<|start|><think>"); /* control silent, user-defined as text */
    free(out);
    close_special(&sv);
}

TEST(bos_asked_but_missing_is_an_error)
{
    const char *toks[] = {"a", "b"};
    eng_tokenizer_desc d = {.model = "gpt2", .n_tokens = 2, .tokens = toks, .bos_id = -1,
                            .eos_id = -1, .add_bos = 1};
    eng_tokenizer *t;
    eng_err e = {0};
    REQUIRE(eng_tokenizer_open(&t, &d, &e) == ENG_OK);
    int32_t *ids = NULL;
    size_t n;
    CHECK(eng_tokenizer_encode(t, "ab", 2, ENG_TOK_ADD_SPECIAL, &ids, &n, &e) == ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "BOS");
    CHECK(eng_tokenizer_encode(t, "ab", 2, 0, &ids, &n, &e) == ENG_OK && n == 2);
    free(ids);
    eng_tokenizer_free(t);
}

/* llama-bpe (ignore_merges): a piece that is a token is taken whole, even
 * when the merges would not build it. */
TEST(llama_bpe_takes_whole_word_tokens)
{
    const char *toks[] = {"a", "b", "c", "ab", "abc"}, *merges[] = {"a b"};
    eng_tokenizer_desc d = {.model = "gpt2", .pre = "qwen2", .n_tokens = 5, .tokens = toks,
                            .n_merges = 1, .merges = merges, .bos_id = -1, .eos_id = -1};
    eng_tokenizer *t;
    eng_err e = {0};
    int32_t a[8];
    REQUIRE(eng_tokenizer_open(&t, &d, &e) == ENG_OK);
    size_t n = enc(t, "abc", 0, a, 8);
    CHECK(n == 2 && a[0] == 3 && a[1] == 2);
    eng_tokenizer_free(t);
    d.pre = "llama-bpe";
    REQUIRE(eng_tokenizer_open(&t, &d, &e) == ENG_OK);
    n = enc(t, "abc", 0, a, 8);
    CHECK(n == 1 && a[0] == 4);
    eng_tokenizer_free(t);
}

/* A GGUF with tokenizer keys only: pre, and bos / add_bos when given. */
static eng_tokenizer *gguf_tok(const char *pre, int64_t bos, int add_bos, size_t ntok)
{
    const char *path = tst_path("tok.gguf");
    const char **toks = tst_alloc(ntok * sizeof *toks), *merges[] = {"a b"};
    char (*names)[16] = tst_alloc(ntok * sizeof *names);
    for (size_t i = 0; i < ntok; i++) {
        if (i < 2)
            snprintf(names[i], sizeof names[i], "%c", (char)('a' + i));
        else
            snprintf(names[i], sizeof names[i], "t%zu", i);
        toks[i] = names[i];
    }
    eng_gguf_writer *w;
    REQUIRE(eng_gguf_writer_open(&w, path, NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, ntok, NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1, NULL) == ENG_OK);
    if (bos >= 0)
        REQUIRE(eng_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos, NULL) ==
                ENG_OK);
    if (add_bos >= 0)
        REQUIRE(eng_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos, NULL) ==
                ENG_OK);
    REQUIRE(eng_gguf_writer_write_header(w, NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_finish(w, NULL) == ENG_OK);
    eng_gguf_writer_free(w);
    eng_gguf *g;
    eng_tokenizer *t;
    eng_err e = {0};
    REQUIRE(eng_gguf_open(&g, path, NULL) == ENG_OK);
    REQUIRE_MSG(eng_tokenizer_open_gguf(&t, g, &e) == ENG_OK, "%s", e.msg);
    eng_gguf_free(g);
    return t;
}

TEST(gguf_defaults_of_llama_cpp)
{
    eng_tokenizer *t = gguf_tok("llama-bpe", 5, -1, 20); /* llama-bpe adds BOS */
    CHECK_EQ_INT(eng_tokenizer_add_bos(t), 1);
    int32_t a[8];
    size_t n = enc(t, "ab", ENG_TOK_ADD_SPECIAL, a, 8);
    CHECK(n == 3 && a[0] == 5 && a[1] == 0 && a[2] == 1); /* "ab" is no token: bytes */
    eng_tokenizer_free(t);
    t = gguf_tok("llama-bpe", 5, 0, 20); /* unless the file says not to */
    CHECK_EQ_INT(eng_tokenizer_add_bos(t), 0);
    eng_tokenizer_free(t);
    t = gguf_tok("qwen2", -1, -1, 20); /* BPE without ids: bos = eos = 11 */
    CHECK(eng_tokenizer_bos(t) == 11 && eng_tokenizer_eos(t) == 11 && !eng_tokenizer_add_bos(t));
    eng_tokenizer_free(t);
    t = gguf_tok("qwen2", -1, -1, 11); /* ...dropped beyond the vocabulary */
    CHECK(eng_tokenizer_bos(t) == -1 && eng_tokenizer_eos(t) == -1);
    eng_tokenizer_free(t);
    t = gguf_tok("glm4", -1, -1, 20); /* glm4: no default BOS */
    CHECK(eng_tokenizer_bos(t) == -1 && eng_tokenizer_eos(t) == 11);
    eng_tokenizer_free(t);
    t = gguf_tok("deepseek-v3", 0, 1, 20);
    CHECK_EQ_INT(eng_tokenizer_pretok(t), ENG_PRETOK_DEEPSEEK3);
    eng_tokenizer_free(t);
}

/* SentencePiece: a stretch of text after a special token gets the space
 * prefix again, as llama.cpp does (is_prev_special). */
TEST(spm_special_tokens_and_space_prefix)
{
    eng_mkvocab v;
    eng_err e = {0};
    REQUIRE(eng_mkvocab_build_spm(&v, 1000, &e) == ENG_OK);
    eng_tokenizer_desc d = {
        .model = "llama", .n_tokens = v.n_tokens, .tokens = (const char *const *)v.tokens,
        .token_types = v.types, .scores = v.scores, .unk_id = v.unk_id, .bos_id = v.bos_id,
        .eos_id = v.eos_id, .add_bos = 1, .add_space_prefix = 1,
    };
    eng_tokenizer *t;
    REQUIRE(eng_tokenizer_open(&t, &d, &e) == ENG_OK);
    int32_t a[64], b[64];
    size_t nb = enc(t, "the model", 0, b, 64);
    size_t na = enc(t, "<s>the model</s>the model", ENG_TOK_ADD_SPECIAL | ENG_TOK_PARSE_SPECIAL,
                    a, 64);
    REQUIRE(na == 1 + 1 + nb + 1 + nb);
    CHECK(a[0] == 1 && a[1] == 1 && a[2 + nb] == 2);
    CHECK(!memcmp(a + 2, b, nb * sizeof *b) && !memcmp(a + 3 + nb, b, nb * sizeof *b));
    eng_tokenizer_free(t);
    eng_mkvocab_free(&v);
}
