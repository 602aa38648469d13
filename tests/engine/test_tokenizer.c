/* test_tokenizer.c — byte-level BPE: pre-tokenizer splits on known
 * examples (worked out by hand from the regexes), round trips, the heap
 * merge loop against a brute-force reference, GGUF metadata, errors. */
#include "tests/test.h"

#include "engine/gguf.h"
#include "engine/mkmodel.h"
#include "engine/mkvocab.h"
#include "engine/tokenizer.h"

#include <stdlib.h>

/* Joins pieces with '|' for easy comparison. */
static char *split_str(eng_pretok kind, const char *text)
{
    size_t *off, n, nl;
    char *norm;
    eng_err e = {0};
    REQUIRE(eng_pretok_split(kind, text, strlen(text), &norm, &nl, &off, &n, &e) == ENG_OK);
    char *s = tst_alloc(2 * nl + 2);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            s[k++] = '|';
        memcpy(s + k, norm + off[i], off[i + 1] - off[i]);
        k += off[i + 1] - off[i];
    }
    s[k] = 0;
    free(off);
    free(norm);
    return s;
}

/* The text as llama.cpp's BPE sees it (invalid UTF-8 as U+FFFD). */
static char *normalized(const char *text, size_t len, size_t *nlen)
{
    size_t *off, n;
    char *norm;
    eng_err e = {0};
    REQUIRE(eng_pretok_split(ENG_PRETOK_GPT2, text, len, &norm, nlen, &off, &n, &e) == ENG_OK);
    free(off);
    return norm;
}

TEST(pretok_gpt2_known_splits)
{
    CHECK_EQ_STR(split_str(ENG_PRETOK_GPT2, "Hello world's 123  test\n\nok!!"),
                 "Hello| world|'s| 123| | test|\n|\n|ok|!!");
    CHECK_EQ_STR(split_str(ENG_PRETOK_GPT2, "I'M a\tb  "), "I|'|M| a|\t|b|  ");
    CHECK_EQ_STR(split_str(ENG_PRETOK_GPT2, "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 x"),
                 "na\xc3\xafve| caf\xc3\xa9| \xe2\x80\x94| x");
    CHECK_EQ_STR(split_str(ENG_PRETOK_GPT2, "we'll they've 3.14"), "we|'ll| they|'ve| 3|.|14");
}

TEST(pretok_qwen2_known_splits)
{
    CHECK_EQ_STR(split_str(ENG_PRETOK_QWEN2, "Hello world's 123  test\n\nok!!"),
                 "Hello| world|'s| |1|2|3| | test|\n\n|ok|!!");
    CHECK_EQ_STR(split_str(ENG_PRETOK_QWEN2, "I'M a\tb"), "I|'M| a|\tb");
    CHECK_EQ_STR(split_str(ENG_PRETOK_QWEN2, "x.\n\ny ( z"), "x|.\n\n|y| (| z");
    CHECK_EQ_STR(split_str(ENG_PRETOK_QWEN2, "  \n  a"), "  \n| | a");
    CHECK_EQ_STR(split_str(ENG_PRETOK_QWEN2, "\xe6\x97\xa5\xe6\x9c\xac 42"),
                 "\xe6\x97\xa5\xe6\x9c\xac| |4|2");
}

TEST(pretok_default_known_splits)
{
    CHECK_EQ_STR(split_str(ENG_PRETOK_DEFAULT, "Hello, world! 12345 $x"),
                 "Hello|,| world|!| |123|45| |$|x");
    CHECK_EQ_STR(split_str(ENG_PRETOK_DEFAULT, "a`b"), "a|`|b");
}

TEST(pretok_empty_and_names)
{
    size_t *off = (size_t *)1, n = 7, nl = 3;
    char *norm;
    eng_err e = {0};
    CHECK(eng_pretok_split(ENG_PRETOK_QWEN2, "", 0, &norm, &nl, &off, &n, &e) == ENG_OK);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(nl, 0);
    CHECK(off == NULL);
    CHECK_EQ_STR(norm, "");
    free(norm);
    static const struct {
        const char *name;
        eng_pretok kind;
    } names[] = {
        {"olmo", ENG_PRETOK_GPT2},           {"gpt-2", ENG_PRETOK_GPT2},
        {"gpt2", ENG_PRETOK_GPT2},           {"qwen2", ENG_PRETOK_QWEN2},
        {"llama-bpe", ENG_PRETOK_LLAMA3},    {"llama3", ENG_PRETOK_LLAMA3},
        {"deepseek-llm", ENG_PRETOK_DEEPSEEK_LLM}, {"deepseek-v3", ENG_PRETOK_DEEPSEEK3},
        {"gpt-4o", ENG_PRETOK_GPT4O},        {"glm4", ENG_PRETOK_GLM4},
        {"chatglm-bpe", ENG_PRETOK_GLM4},    {"kimi-k2", ENG_PRETOK_KIMI_K2},
        {"default", ENG_PRETOK_DEFAULT},     {"", ENG_PRETOK_DEFAULT},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        eng_pretok k = (eng_pretok)99;
        CHECK_MSG(eng_pretok_parse(names[i].name, &k, &e) == ENG_OK && k == names[i].kind,
                  "'%s' -> %d", names[i].name, (int)k);
        eng_pretok back;
        CHECK(eng_pretok_parse(eng_pretok_name(k), &back, &e) == ENG_OK && back == k);
    }
    eng_pretok k;
    CHECK(eng_pretok_parse(NULL, &k, &e) == ENG_OK && k == ENG_PRETOK_DEFAULT);
    CHECK(eng_pretok_parse("llama", &k, &e) == ENG_EUNSUPPORTED); /* no prefix matches */
    CHECK(eng_pretok_parse("deepseek-coder", &k, &e) == ENG_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "'deepseek-coder' is not supported");
    CHECK_CONTAINS(e.msg, "kimi-k2");
}

/* ---- an independent GPT-2 byte map and brute-force BPE ------------------ */

static int ref_printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }

/* raw bytes of a byte-level string (every char must be in the map) */
static size_t ref_unmap(const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = (unsigned char)s[i], cp = c;
        if (c >= 0x80) {
            cp = ((c & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
            i += 2;
        } else {
            i++;
        }
        int b = -1;
        if (cp < 256 && ref_printable((int)cp)) {
            b = (int)cp;
        } else {
            int idx = (int)cp - 256;
            for (int x = 0; x < 256 && b < 0; x++)
                if (!ref_printable(x) && idx-- == 0)
                    b = x;
        }
        out[k++] = (char)b;
    }
    return k;
}

typedef struct refvocab {
    char **tok; size_t *tlen; size_t nt;
    char **ml, **mr; size_t *mll, *mrl; size_t nm;
} refvocab;

static void ref_build(refvocab *r, const eng_mkvocab *v)
{
    r->nt = v->n_tokens;
    r->tok = tst_alloc(r->nt * sizeof *r->tok);
    r->tlen = tst_alloc(r->nt * sizeof *r->tlen);
    for (size_t i = 0; i < r->nt; i++) {
        r->tok[i] = tst_alloc(strlen(v->tokens[i]) + 1);
        r->tlen[i] = v->types[i] == ENG_TOKEN_NORMAL
                         ? ref_unmap(v->tokens[i], strlen(v->tokens[i]), r->tok[i]) : (size_t)-1;
    }
    r->nm = v->n_merges;
    r->ml = tst_alloc(r->nm * sizeof *r->ml);
    r->mr = tst_alloc(r->nm * sizeof *r->mr);
    r->mll = tst_alloc(r->nm * sizeof *r->mll);
    r->mrl = tst_alloc(r->nm * sizeof *r->mrl);
    for (size_t k = 0; k < r->nm; k++) {
        const char *m = v->merges[k], *sp = strchr(m + 1, ' ');
        r->ml[k] = tst_alloc(strlen(m));
        r->mr[k] = tst_alloc(strlen(m));
        r->mll[k] = ref_unmap(m, (size_t)(sp - m), r->ml[k]);
        r->mrl[k] = ref_unmap(sp + 1, strlen(sp + 1), r->mr[k]);
    }
}

static long ref_rank(const refvocab *r, const char *a, size_t na, const char *b, size_t nb)
{
    for (size_t k = 0; k < r->nm; k++)
        if (r->mll[k] == na && r->mrl[k] == nb && !memcmp(r->ml[k], a, na) &&
            !memcmp(r->mr[k], b, nb))
            return (long)k;
    return -1;
}

/* Brute force: merge the lowest-ranked (then leftmost) pair until none. */
static size_t ref_encode(const refvocab *r, eng_pretok kind, const char *text, size_t len,
                         int32_t *out)
{
    size_t *off, npc, nout = 0, nl;
    char *norm;
    eng_err e = {0};
    REQUIRE(eng_pretok_split(kind, text, len, &norm, &nl, &off, &npc, &e) == ENG_OK);
    text = norm;
    size_t *st = tst_alloc((nl + 1) * sizeof *st), *ln = tst_alloc((nl + 1) * sizeof *ln);
    for (size_t p = 0; p < npc; p++) {
        const char *w = text + off[p];
        size_t ns = off[p + 1] - off[p];
        for (size_t i = 0; i < ns; i++) {
            st[i] = i;
            ln[i] = 1;
        }
        for (;;) {
            long best = -1;
            size_t at = 0;
            for (size_t i = 0; i + 1 < ns; i++) {
                long rk = ref_rank(r, w + st[i], ln[i], w + st[i + 1], ln[i + 1]);
                if (rk >= 0 && (best < 0 || rk < best)) {
                    best = rk;
                    at = i;
                }
            }
            if (best < 0)
                break;
            ln[at] += ln[at + 1];
            memmove(st + at + 1, st + at + 2, (ns - at - 2) * sizeof *st);
            memmove(ln + at + 1, ln + at + 2, (ns - at - 2) * sizeof *ln);
            ns--;
        }
        for (size_t i = 0; i < ns; i++) {
            long id = -1;
            for (size_t t = 0; t < r->nt && id < 0; t++)
                if (r->tlen[t] == ln[i] && !memcmp(r->tok[t], w + st[i], ln[i]))
                    id = (long)t;
            REQUIRE(id >= 0);
            out[nout++] = (int32_t)id;
        }
    }
    free(off);
    free(norm);
    return nout;
}

static eng_tokenizer *open_vocab(const eng_mkvocab *v, const char *pre, int add_bos)
{
    eng_tokenizer_desc d = {
        .model = "gpt2", .pre = pre, .n_tokens = v->n_tokens,
        .tokens = (const char *const *)v->tokens, .token_types = v->types,
        .n_merges = v->n_merges, .merges = (const char *const *)v->merges,
        .bos_id = v->bos_id, .eos_id = v->eos_id, .add_bos = add_bos,
    };
    eng_tokenizer *t = NULL;
    eng_err e = {0};
    REQUIRE_MSG(eng_tokenizer_open(&t, &d, &e) == ENG_OK, "%s", e.msg);
    return t;
}

/* Every pre-type: the synthetic vocabulary is learnt within its pieces. */
static const char *const k_pres[] = {"qwen2", "olmo", "default", "llama-bpe", "glm4",
                                     "deepseek-llm", "deepseek-v3", "gpt-4o", "kimi-k2"};
#define N_PRES ((int)(sizeof k_pres / sizeof k_pres[0]))

static const char *const k_frag[] = {
    "the", " the", "e", "th", "in", "er", " ", "  ", "\n", "\t", "1", "23", "'s", "'ll", "!",
    ".", ",", "$", "\xc3\xbc", "\xe6\x97\xa5", "\xe2\x80\x94", "xyz", "Q", "experts", " cache",
    "\xff", "\xc3", "model", "ing", " a", "\r\n", "The", "HTTP", "e\xcc\x81", "\xe3\x83\x86",
};

static size_t random_text(unsigned *seed, char *buf, size_t cap)
{
    size_t k = 0, nf = sizeof k_frag / sizeof k_frag[0];
    int parts = (int)(rand_r(seed) % 24);
    for (int i = 0; i < parts; i++) {
        const char *f = k_frag[rand_r(seed) % nf];
        size_t l = strlen(f);
        if (k + l >= cap)
            break;
        memcpy(buf + k, f, l);
        k += l;
    }
    buf[k] = 0;
    return k;
}

TEST(bpe_matches_brute_force_on_random_strings)
{
    for (int p = 0; p < N_PRES; p++) {
        eng_mkvocab v;
        eng_err e = {0};
        eng_pretok kind;
        REQUIRE(eng_pretok_parse(k_pres[p], &kind, &e) == ENG_OK);
        REQUIRE(eng_mkvocab_build(&v, 800, kind, &e) == ENG_OK);
        CHECK(v.n_merges > 100);
        refvocab r;
        ref_build(&r, &v);
        /* llama-bpe takes whole-piece tokens before merging: the reference
         * merges only, so it is checked with glm4's identical split */
        eng_tokenizer *t = open_vocab(&v, kind == ENG_PRETOK_LLAMA3 ? "glm4" : k_pres[p], 0);
        unsigned seed = 7 + (unsigned)p;
        for (int it = 0; it < 150; it++) {
            char text[512];
            int32_t want[512];
            size_t len = random_text(&seed, text, sizeof text);
            size_t nw = ref_encode(&r, kind, text, len, want);
            int32_t *ids;
            size_t n;
            REQUIRE(eng_tokenizer_encode(t, text, len, 0, &ids, &n, &e) == ENG_OK);
            CHECK_MSG(n == nw && (n == 0 || !memcmp(ids, want, n * sizeof *ids)),
                      "pre %s: text '%s': %zu ids vs %zu from the reference", k_pres[p], text, n,
                      nw);
            free(ids);
        }
        eng_tokenizer_free(t);
        eng_mkvocab_free(&v);
    }
}

/* decode(encode(text)) gives the text back, as llama.cpp reads it: invalid
 * UTF-8 bytes as U+FFFD. */
static void check_roundtrip(const eng_tokenizer *t, const char *text, size_t len)
{
    int32_t *ids;
    size_t n, dl, nl;
    char *back, *norm = normalized(text, len, &nl);
    eng_err e = {0};
    REQUIRE(eng_tokenizer_encode(t, text, len, 0, &ids, &n, &e) == ENG_OK);
    REQUIRE(eng_tokenizer_decode(t, ids, n, &back, &dl, &e) == ENG_OK);
    CHECK_MSG(dl == nl && !memcmp(back, norm, nl), "round trip of '%.*s' gave '%s'", (int)len,
              text, back);
    CHECK(len == 0 || n > 0);
    CHECK(n <= nl);
    free(ids);
    free(back);
    free(norm);
}

TEST(roundtrip_varied_text)
{
    static const char *const texts[] = {
        "", "a", "The model reads a prompt, one token at a time.",
        "   leading and trailing spaces   ", "tabs\tand\nnewlines\r\n\r\n\n", "digits 0123456789 3.14159",
        "punctuation!?;:...---(([[{{}}]]))<<>>", "don't won't I'M WE'LL",
        "UTF-8: caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 \xe2\x80\x94 \xd0\xbf",
        "invalid \xff\xfe \xc3 \xe6\x97 bytes", "<|endoftext|> is text here",
    };
    for (int p = 0; p < N_PRES; p++) {
        eng_mkvocab v;
        eng_err e = {0};
        eng_pretok kind;
        REQUIRE(eng_pretok_parse(k_pres[p], &kind, &e) == ENG_OK);
        REQUIRE(eng_mkvocab_build(&v, 2000, kind, &e) == ENG_OK);
        eng_tokenizer *t = open_vocab(&v, k_pres[p], 0);
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
            check_roundtrip(t, texts[i], strlen(texts[i]));
        unsigned seed = 99;
        for (int it = 0; it < 200; it++) { /* random bytes, NUL included */
            char buf[64];
            size_t len = rand_r(&seed) % sizeof buf;
            for (size_t j = 0; j < len; j++)
                buf[j] = (char)rand_r(&seed);
            check_roundtrip(t, buf, len);
        }
        eng_tokenizer_free(t);
        eng_mkvocab_free(&v);
    }
}

TEST(control_tokens_not_from_text_and_bos)
{
    eng_mkvocab v;
    eng_err e = {0};
    REQUIRE(eng_mkvocab_build(&v, 600, ENG_PRETOK_QWEN2, &e) == ENG_OK);
    eng_tokenizer *t = open_vocab(&v, "qwen2", 1);
    const char *s = "<|endoftext|><|startoftext|>[PAD590]";
    int32_t *ids;
    size_t n;
    REQUIRE(eng_tokenizer_encode(t, s, strlen(s), 1, &ids, &n, &e) == ENG_OK);
    REQUIRE(n > 2);
    CHECK_EQ_INT(ids[0], (int32_t)v.bos_id);
    for (size_t i = 1; i < n; i++) {
        CHECK(ids[i] != (int32_t)v.bos_id && ids[i] != (int32_t)v.eos_id);
        CHECK_EQ_INT(eng_tokenizer_token_type(t, ids[i]), ENG_TOKEN_NORMAL);
    }
    free(ids);
    REQUIRE(eng_tokenizer_encode(t, "hi", 2, 0, &ids, &n, &e) == ENG_OK);
    CHECK(n >= 1 && ids[0] != (int32_t)v.bos_id);
    free(ids);
    /* control tokens decode to nothing; pieces of normal tokens are bytes */
    int32_t seq[3] = {(int32_t)v.bos_id, 'h', (int32_t)v.eos_id};
    char *out, piece[8];
    size_t len;
    REQUIRE(eng_tokenizer_decode(t, seq, 3, &out, &len, &e) == ENG_OK);
    CHECK_EQ_STR(out, "h");
    free(out);
    CHECK_EQ_INT(eng_tokenizer_piece(t, (int32_t)v.eos_id, piece, sizeof piece), 0);
    CHECK_EQ_INT(eng_tokenizer_piece(t, ' ', piece, sizeof piece), 1);
    CHECK_EQ_STR(piece, " ");
    CHECK_EQ_STR(eng_tokenizer_token_text(t, ' ', NULL), "\xc4\xa0"); /* "Ġ" */
    CHECK_EQ_INT(eng_tokenizer_piece(t, 100000, piece, sizeof piece), -1);
    int32_t bad = 600;
    CHECK(eng_tokenizer_decode(t, &bad, 1, &out, &len, &e) == ENG_EINVAL);
    CHECK_CONTAINS(e.msg, "out of range");
    CHECK_EQ_INT(eng_tokenizer_bos(t), (int32_t)v.bos_id);
    CHECK_EQ_INT(eng_tokenizer_eos(t), (int32_t)v.eos_id);
    CHECK_EQ_INT(eng_tokenizer_n_vocab(t), 600);
    eng_tokenizer_free(t);
    eng_mkvocab_free(&v);
}

TEST(unsupported_model_and_bad_merges)
{
    const char *toks[] = {"a", "b", "ab"}, *merges[] = {"a b"}, *bad[] = {"ab"};
    eng_tokenizer_desc d = {.model = "rwkv", .n_tokens = 3, .tokens = toks, .n_merges = 1,
                            .merges = merges, .bos_id = -1, .eos_id = -1};
    eng_tokenizer *t = NULL;
    eng_err e = {0};
    CHECK(eng_tokenizer_open(&t, &d, &e) == ENG_EUNSUPPORTED);
    CHECK_CONTAINS(e.msg, "'rwkv' is not supported");
    CHECK(t == NULL);
    d.model = "gpt2";
    d.merges = bad;
    CHECK(eng_tokenizer_open(&t, &d, &e) == ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "merges[0]");
    d.merges = merges;
    d.bos_id = 3;
    CHECK(eng_tokenizer_open(&t, &d, &e) == ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "bos_token_id");
    d.bos_id = -1;
    d.pre = "nonsense";
    CHECK(eng_tokenizer_open(&t, &d, &e) == ENG_EUNSUPPORTED);
    d.pre = "gpt2";
    REQUIRE(eng_tokenizer_open(&t, &d, &e) == ENG_OK);
    int32_t *ids;
    size_t n;
    REQUIRE(eng_tokenizer_encode(t, "abba", 4, 1, &ids, &n, &e) == ENG_OK);
    REQUIRE(n == 3); /* ab, b, a */
    CHECK(ids[0] == 2 && ids[1] == 1 && ids[2] == 0);
    free(ids);
    eng_tokenizer_free(t);
}

TEST(open_gguf_written_by_mkmodel)
{
    static const char *const presets[] = {"tiny-mixtral", "tiny-qwen3moe", "tiny-olmoe"};
    static const eng_pretok kinds[] = {ENG_PRETOK_DEFAULT, ENG_PRETOK_QWEN2, ENG_PRETOK_GPT2};
    for (int i = 0; i < 3; i++) {
        eng_mkmodel_opts o = {.preset = presets[i], .type = ENG_MK_Q8_0, .seed = 3};
        eng_err e = {0};
        const char *path = tst_path("m.gguf");
        REQUIRE_MSG(eng_mkmodel_write(&o, path, &e) == ENG_OK, "%s", e.msg);
        eng_gguf *g;
        REQUIRE_MSG(eng_gguf_open(&g, path, &e) == ENG_OK, "%s", e.msg);
        eng_tokenizer *t;
        REQUIRE_MSG(eng_tokenizer_open_gguf(&t, g, &e) == ENG_OK, "%s", e.msg);
        CHECK_EQ_INT(eng_tokenizer_pretok(t), kinds[i]);
        CHECK_EQ_INT(eng_tokenizer_n_vocab(t), 512);
        const char *s = "The experts of the model. 42!";
        int32_t *ids;
        size_t n;
        REQUIRE(eng_tokenizer_encode(t, s, strlen(s), 1, &ids, &n, &e) == ENG_OK);
        CHECK_EQ_INT(ids[0] == eng_tokenizer_bos(t), i == 0); /* add_bos for llama only */
        CHECK(n < strlen(s));                                   /* merges apply */
        check_roundtrip(t, s, strlen(s));
        free(ids);
        eng_tokenizer_free(t);
        eng_gguf_free(g);
    }
}

/* A GGUF holding only tokenizer keys; `breakage` selects one defect. */
static int open_broken(int breakage, eng_err *e)
{
    const char *path = tst_path("tok.gguf");
    const char *toks[] = {"a", "b", "ab", "<|endoftext|>"}, *merges[] = {"a b"}, *bad[] = {"ab"};
    int32_t types[] = {1, 1, 1, 3}, ints[] = {1, 2, 3, 4};
    eng_gguf_writer *w;
    REQUIRE(eng_gguf_writer_open(&w, path, NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_str(w, "tokenizer.ggml.pre", breakage == 1 ? "klingon" : "qwen2",
                                    NULL) == ENG_OK);
    if (breakage == 2)
        REQUIRE(eng_gguf_writer_set_arr(w, "tokenizer.ggml.tokens", ENG_GGUF_I32, ints, 4, NULL) ==
                ENG_OK);
    else
        REQUIRE(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4, NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", ENG_GGUF_I32, types,
                                    breakage == 3 ? 3 : 4, NULL) == ENG_OK);
    if (breakage != 4)
        REQUIRE(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
                                            breakage == 5 ? bad : merges, 1, NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", breakage == 6 ? 4 : 3,
                                    NULL) == ENG_OK);
    if (breakage == 7)
        REQUIRE(eng_gguf_writer_set_str(w, "tokenizer.ggml.bos_token_id", "1", NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_write_header(w, NULL) == ENG_OK);
    REQUIRE(eng_gguf_writer_finish(w, NULL) == ENG_OK);
    eng_gguf_writer_free(w);
    eng_gguf *g;
    REQUIRE(eng_gguf_open(&g, path, NULL) == ENG_OK);
    eng_tokenizer *t = NULL;
    int rc = eng_tokenizer_open_gguf(&t, g, e);
    if (rc == ENG_OK) {
        int32_t *ids;
        size_t n;
        CHECK(eng_tokenizer_encode(t, "abab", 4, 1, &ids, &n, e) == ENG_OK && n == 2 &&
              ids[0] == 2 && ids[1] == 2);
        CHECK_EQ_INT(eng_tokenizer_eos(t), 3);
        CHECK_EQ_INT(eng_tokenizer_bos(t), -1);
        free(ids);
    } else {
        CHECK(t == NULL);
    }
    eng_tokenizer_free(t);
    eng_gguf_free(g);
    return rc;
}

TEST(open_gguf_hostile_metadata)
{
    static const struct {
        int rc;
        const char *msg;
    } want[] = {
        {ENG_OK, ""},
        {ENG_EUNSUPPORTED, "'klingon'"},
        {ENG_EFORMAT, "tokenizer.ggml.tokens"},
        {ENG_EFORMAT, "token_type has 3 entries"},
        {ENG_EFORMAT, "tokenizer.ggml.merges"},
        {ENG_EFORMAT, "merges[0]"},
        {ENG_EFORMAT, "eos_token_id 4 out of range"},
        {ENG_EFORMAT, "bos_token_id"},
    };
    for (int b = 0; b < (int)(sizeof want / sizeof want[0]); b++) {
        eng_err e = {0};
        int rc = open_broken(b, &e);
        CHECK_MSG(rc == want[b].rc, "breakage %d: rc %d (%s)", b, rc, e.msg);
        CHECK_CONTAINS(e.msg, want[b].msg);
        if (rc)
            CHECK_CONTAINS(e.msg, "tok.gguf");
    }
}
