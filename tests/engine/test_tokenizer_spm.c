/* test_tokenizer_spm.c — SentencePiece (tokenizer.ggml.model "llama"):
 * a hand-worked example, the heap merge loop against a brute-force
 * reference that works on the U+2581-escaped text itself, byte fallback,
 * round trips, GGUF metadata (defaults, scores) and errors. */
#include "tests/test.h"

#include "engine/gguf.h"
#include "engine/mkmodel.h"
#include "engine/tokenizer.h"

#include <stdlib.h>

#define SP "\xe2\x96\x81" /* U+2581, SentencePiece's space */

/* A vocabulary: <unk> <s> </s>, the 256 byte tokens, then `extra`. */
typedef struct spm_vocab {
    const char *tok[400];
    int32_t type[400];
    float score[400];
    size_t n;
    char bytes[256][8];
} spm_vocab;

static void vocab_base(spm_vocab *v)
{
    v->n = 0;
    const char *spec[3] = {"<unk>", "<s>", "</s>"};
    int32_t spec_type[3] = {ENG_TOKEN_UNKNOWN, ENG_TOKEN_CONTROL, ENG_TOKEN_CONTROL};
    for (int i = 0; i < 3; i++) {
        v->tok[v->n] = spec[i];
        v->type[v->n] = spec_type[i];
        v->score[v->n++] = 0;
    }
    for (int b = 0; b < 256; b++) {
        snprintf(v->bytes[b], sizeof v->bytes[b], "<0x%02X>", b);
        v->tok[v->n] = v->bytes[b];
        v->type[v->n] = ENG_TOKEN_BYTE;
        v->score[v->n++] = 0;
    }
}

static void vocab_add(spm_vocab *v, const char *tok, float score)
{
    REQUIRE(v->n < 400);
    v->tok[v->n] = tok;
    v->type[v->n] = ENG_TOKEN_NORMAL;
    v->score[v->n++] = score;
}

static eng_tokenizer *vocab_open(const spm_vocab *v, int add_space_prefix)
{
    eng_tokenizer_desc d = {
        .model = "llama", .n_tokens = v->n, .tokens = v->tok, .token_types = v->type,
        .scores = v->score, .unk_id = 0, .bos_id = 1, .eos_id = 2, .add_bos = 1,
        .add_space_prefix = add_space_prefix,
    };
    eng_tokenizer *t = NULL;
    eng_err e = {0};
    REQUIRE_MSG(eng_tokenizer_open(&t, &d, &e) == ENG_OK, "%s", e.msg);
    return t;
}

static size_t encode(const eng_tokenizer *t, const char *text, int add_special, int32_t *out)
{
    int32_t *ids;
    size_t n;
    eng_err e = {0};
    REQUIRE(eng_tokenizer_encode(t, text, strlen(text), add_special, &ids, &n, &e) == ENG_OK);
    if (n)
        memcpy(out, ids, n * sizeof *ids);
    free(ids);
    return n;
}

TEST(spm_hand_worked_example)
{
    spm_vocab v;
    vocab_base(&v); /* ids 0..258 */
    vocab_add(&v, SP, -1);            /* 259 */
    vocab_add(&v, "h", -2);           /* 260 */
    vocab_add(&v, "e", -2);           /* 261 */
    vocab_add(&v, "l", -2);           /* 262 */
    vocab_add(&v, "o", -2);           /* 263 */
    vocab_add(&v, "ll", -3);          /* 264 */
    vocab_add(&v, SP "h", -4);        /* 265 */
    vocab_add(&v, SP "he", -5);       /* 266 */
    vocab_add(&v, "llo", -6);         /* 267 */
    vocab_add(&v, SP "hello", -7);    /* 268 */
    vocab_add(&v, "lo", -1);          /* 269: beats "ll" wherever both apply */
    eng_tokenizer *t = vocab_open(&v, 1);
    int32_t ids[64];
    /* " hello": best pairs in order: "lo" (-1) takes the last l with o;
     * then " h" (-4), " he" (-5); "l"+"lo" = "llo" (-6); " he"+"llo" =
     * " hello" (-7): one token. */
    size_t n = encode(t, "hello", 0, ids);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ids[0], 268);
    /* with BOS */
    n = encode(t, "hello", 1, ids);
    CHECK(n == 2 && ids[0] == 1 && ids[1] == 268);
    /* "hell": " he" then "ll" (-3): " he" + "ll" is no token: two tokens */
    n = encode(t, "hell", 0, ids);
    CHECK(n == 2 && ids[0] == 266 && ids[1] == 264);
    /* "hex": x is no token: byte fallback <0x78> = 3 + 0x78 */
    n = encode(t, "hex", 0, ids);
    CHECK(n == 2 && ids[0] == 266 && ids[1] == 3 + 0x78);
    /* two-byte character without a token: two byte tokens */
    n = encode(t, "h\xc3\xa9", 0, ids);
    CHECK(n == 3 && ids[0] == 265 && ids[1] == 3 + 0xc3 && ids[2] == 3 + 0xa9);
    /* control tokens never come from text */
    n = encode(t, "<s>", 0, ids);
    for (size_t i = 0; i < n; i++)
        CHECK(ids[i] != 1);
    eng_tokenizer_free(t);
    /* without the space prefix the text starts with "h", not " h" */
    t = vocab_open(&v, 0);
    n = encode(t, "hello", 0, ids);
    CHECK(n == 3 && ids[0] == 260 && ids[1] == 261 && ids[2] == 267);
    eng_tokenizer_free(t);
}

/* ---- brute-force reference ----------------------------------------------
 * Works on the escaped text (spaces as U+2581) and the vocabulary strings
 * directly: O(n^2) scans for the best pair, as the algorithm is defined. */

static int ref_find(const spm_vocab *v, const char *s, size_t n, int normal_only)
{
    for (size_t i = 0; i < v->n; i++) {
        if (normal_only && v->type[i] != ENG_TOKEN_NORMAL && v->type[i] != ENG_TOKEN_UNKNOWN)
            continue;
        if (strlen(v->tok[i]) == n && !memcmp(v->tok[i], s, n))
            return (int)i;
    }
    return -1;
}

static size_t ref_char_len(unsigned char b)
{
    return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF8 ? 4 : 1;
}

static size_t ref_encode(const spm_vocab *v, const char *text, int32_t *out)
{
    char esc[2048];
    size_t n = 0;
    if (*text) {
        memcpy(esc, SP, 3);
        n = 3;
    }
    for (const char *p = text; *p; p++) {
        if (*p == ' ') {
            memcpy(esc + n, SP, 3);
            n += 3;
        } else {
            esc[n++] = *p;
        }
    }
    size_t start[1024], len[1024], ns = 0;
    for (size_t i = 0; i < n; ns++) {
        size_t cl = ref_char_len((unsigned char)esc[i]);
        cl = cl < n - i ? cl : n - i;
        start[ns] = i;
        len[ns] = cl;
        i += cl;
    }
    for (;;) {
        int best = -1;
        float best_score = 0;
        for (size_t i = 0; i + 1 < ns; i++) {
            int id = ref_find(v, esc + start[i], len[i] + len[i + 1], 1);
            if (id >= 0 && (best < 0 || v->score[id] > best_score)) {
                best = (int)i;
                best_score = v->score[id];
            }
        }
        if (best < 0)
            break;
        len[best] += len[best + 1];
        memmove(start + best + 1, start + best + 2, (ns - best - 2) * sizeof *start);
        memmove(len + best + 1, len + best + 2, (ns - best - 2) * sizeof *len);
        ns--;
    }
    size_t k = 0;
    for (size_t i = 0; i < ns; i++) {
        int id = ref_find(v, esc + start[i], len[i], 1);
        if (id >= 0) {
            out[k++] = id;
            continue;
        }
        for (size_t j = 0; j < len[i]; j++)
            out[k++] = 3 + (unsigned char)esc[start[i] + j];
    }
    return k;
}

static const char *const k_units[] = {"a", "b", "c", " ", "\xc3\xa9", "\xe4\xb8\xad", "d"};
enum { N_UNITS = sizeof k_units / sizeof k_units[0] };

/* A random string of 1..len units, escaped as vocabulary text (" " as U+2581). */
static char *random_piece(unsigned *seed, int len)
{
    char *s = tst_alloc(8 * (size_t)len + 1);
    size_t k = 0;
    for (int i = 0; i < len; i++) {
        const char *u = k_units[rand_r(seed) % N_UNITS];
        if (*u == ' ') {
            memcpy(s + k, SP, 3);
            k += 3;
        } else {
            memcpy(s + k, u, strlen(u));
            k += strlen(u);
        }
    }
    s[k] = 0;
    return s;
}

TEST(spm_matches_brute_force_on_random_vocabularies_and_texts)
{
    for (unsigned vseed = 1; vseed <= 12; vseed++) {
        spm_vocab v;
        vocab_base(&v);
        unsigned seed = vseed;
        /* single units except 'd' (always byte fallback), then random
         * multi-unit pieces; scores with ties (multiples of 0.5) */
        for (int u = 0; u < N_UNITS - 1; u++)
            vocab_add(&v, *k_units[u] == ' ' ? SP : k_units[u],
                      -(float)(rand_r(&seed) % 8) * 0.5f);
        while (v.n < 259 + 80) {
            char *p = random_piece(&seed, 2 + (int)(rand_r(&seed) % 4));
            if (ref_find(&v, p, strlen(p), 0) < 0)
                vocab_add(&v, p, -(float)(rand_r(&seed) % 20) * 0.5f);
        }
        eng_tokenizer *t = vocab_open(&v, 1);
        for (int it = 0; it < 60; it++) {
            char text[256];
            size_t k = 0;
            int units = (int)(rand_r(&seed) % 30);
            for (int i = 0; i < units; i++) {
                const char *u = k_units[rand_r(&seed) % N_UNITS];
                memcpy(text + k, u, strlen(u));
                k += strlen(u);
            }
            text[k] = 0;
            int32_t want[1024], got[1024];
            size_t nw = ref_encode(&v, text, want);
            size_t n = encode(t, text, 0, got);
            CHECK_MSG(n == nw && (n == 0 || !memcmp(got, want, n * sizeof *got)),
                      "vocab %u text '%s': %zu ids vs %zu from the reference", vseed, text, n,
                      nw);
        }
        eng_tokenizer_free(t);
    }
}

TEST(spm_round_trip_with_byte_fallback_and_invalid_utf8)
{
    spm_vocab v;
    vocab_base(&v);
    vocab_add(&v, SP "the", -1);
    vocab_add(&v, "th", -2);
    vocab_add(&v, "e", -3);
    vocab_add(&v, SP, -4);
    eng_tokenizer *t = vocab_open(&v, 1);
    static const char *const texts[] = {
        "the the", "  two  spaces ", "\xff\xfe broken \xc3", "tab\tand\nnewline",
        "\xe4\xb8\xad\xe6\x96\x87", "", "x",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        int32_t *ids;
        size_t n, dl;
        char *back;
        eng_err e = {0};
        size_t len = strlen(texts[i]);
        REQUIRE(eng_tokenizer_encode(t, texts[i], len, 0, &ids, &n, &e) == ENG_OK);
        REQUIRE(eng_tokenizer_decode(t, ids, n, &back, &dl, &e) == ENG_OK);
        /* decoding gives the text with the space the encoder put before it */
        if (len == 0) {
            CHECK_EQ_INT(dl, 0);
        } else {
            CHECK_MSG(dl == len + 1 && back[0] == ' ' && !memcmp(back + 1, texts[i], len),
                      "round trip of '%s' gave '%s'", texts[i], back);
        }
        free(ids);
        free(back);
    }
    /* the pieces: U+2581 decodes to a space, a byte token to its byte */
    char buf[16];
    CHECK_EQ_INT(eng_tokenizer_piece(t, 259, buf, sizeof buf), 4);
    CHECK_EQ_STR(buf, " the");
    CHECK_EQ_INT(eng_tokenizer_piece(t, 3 + 'A', buf, sizeof buf), 1);
    CHECK_EQ_STR(buf, "A");
    size_t tl;
    CHECK_EQ_STR(eng_tokenizer_token_text(t, 259, &tl), SP "the");
    eng_tokenizer_free(t);
}

/* Writes an SPM vocabulary to a GGUF with only tokenizer keys. */
static const char *write_gguf(const spm_vocab *v, int with_specials, int bad_scores)
{
    const char *path = tst_path("spm.gguf");
    eng_gguf_writer *w;
    eng_err e = {0};
    REQUIRE(eng_gguf_writer_open(&w, path, &e) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", &e) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v->tok, v->n, &e) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", ENG_GGUF_I32, v->type, v->n,
                                    &e) == ENG_OK);
    REQUIRE(eng_gguf_writer_set_arr(w, "tokenizer.ggml.scores", ENG_GGUF_F32, v->score,
                                    bad_scores ? v->n - 1 : v->n, &e) == ENG_OK);
    if (with_specials) {
        REQUIRE(eng_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2, &e) == ENG_OK);
        REQUIRE(eng_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 1, &e) == ENG_OK);
        REQUIRE(eng_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false, &e) == ENG_OK);
        REQUIRE(eng_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", false, &e) ==
                ENG_OK);
    }
    REQUIRE(eng_gguf_writer_write_header(w, &e) == ENG_OK);
    REQUIRE(eng_gguf_writer_finish(w, &e) == ENG_OK);
    eng_gguf_writer_free(w);
    return path;
}

static int open_gguf(const char *path, eng_tokenizer **t, eng_err *e)
{
    eng_gguf *g;
    REQUIRE(eng_gguf_open(&g, path, e) == ENG_OK);
    int rc = eng_tokenizer_open_gguf(t, g, e);
    eng_gguf_free(g);
    return rc;
}

TEST(spm_from_gguf_defaults_scores_and_errors)
{
    spm_vocab v;
    vocab_base(&v);
    vocab_add(&v, SP "ab", -1); /* 259 */
    vocab_add(&v, SP "a", -2);  /* 260 */
    vocab_add(&v, "b", -3);     /* 261 */
    vocab_add(&v, "a", -0.5f);  /* 262 */
    eng_tokenizer *t = NULL;
    eng_err e = {0};
    /* llama.cpp's defaults: unk 0, bos 1, eos 2, BOS added, space prefix */
    REQUIRE_MSG(open_gguf(write_gguf(&v, 0, 0), &t, &e) == ENG_OK, "%s", e.msg);
    CHECK_EQ_INT(eng_tokenizer_bos(t), 1);
    CHECK_EQ_INT(eng_tokenizer_eos(t), 2);
    int32_t ids[16];
    size_t n = encode(t, "ab", 1, ids);
    CHECK(n == 2 && ids[0] == 1 && ids[1] == 259); /* scores read: " ab" wins */
    eng_tokenizer_free(t);
    /* explicit keys win over the defaults */
    REQUIRE_MSG(open_gguf(write_gguf(&v, 1, 0), &t, &e) == ENG_OK, "%s", e.msg);
    CHECK_EQ_INT(eng_tokenizer_bos(t), 2);
    n = encode(t, "ab", 1, ids); /* no BOS, no space: "a" "b" */
    CHECK(n == 2 && ids[0] == 262 && ids[1] == 261);
    eng_tokenizer_free(t);
    /* a scores array of the wrong length is an error naming the key */
    t = (eng_tokenizer *)1;
    CHECK_EQ_INT(open_gguf(write_gguf(&v, 0, 1), &t, &e), ENG_EFORMAT);
    CHECK_CONTAINS(e.msg, "tokenizer.ggml.scores");
    CHECK_CONTAINS(e.msg, "spm.gguf");
    CHECK(t == NULL);
}

TEST(spm_vocabulary_written_by_mkmodel)
{
    /* `mkmodel --vocab spm`: a Mixtral-like SentencePiece vocabulary that
     * loads, merges, adds BOS and round-trips (checked once against
     * llama.cpp's tokenizer on 16 texts: identical ids; docs/engine.md). */
    eng_mkmodel_opts o = {.preset = "tiny-mixtral", .type = ENG_MK_F32, .seed = 3,
                          .vocab = ENG_MK_VOCAB_SPM};
    eng_err e = {0};
    const char *path = tst_path("spm-model.gguf");
    REQUIRE_MSG(eng_mkmodel_write(&o, path, &e) == ENG_OK, "%s", e.msg);
    eng_gguf *g;
    REQUIRE_MSG(eng_gguf_open(&g, path, &e) == ENG_OK, "%s", e.msg);
    eng_tokenizer *t;
    REQUIRE_MSG(eng_tokenizer_open_gguf(&t, g, &e) == ENG_OK, "%s", e.msg);
    CHECK_EQ_INT(eng_tokenizer_n_vocab(t), 512);
    CHECK_EQ_INT(eng_tokenizer_bos(t), 1);
    CHECK_EQ_INT(eng_tokenizer_token_type(t, 3 + 0x41), ENG_TOKEN_BYTE);
    const char *s = "The experts of the model read a prompt. Caf\xc3\xa9 42!";
    int32_t *ids;
    size_t n, dl;
    char *back;
    REQUIRE(eng_tokenizer_encode(t, s, strlen(s), 1, &ids, &n, &e) == ENG_OK);
    CHECK(n > 1 && ids[0] == 1);
    /* the learnt pieces apply: fewer tokens (BOS aside) than the 51
     * characters plus the prefixed space */
    CHECK(n - 1 < 52 - 10);
    REQUIRE(eng_tokenizer_decode(t, ids, n, &back, &dl, &e) == ENG_OK);
    CHECK(dl == strlen(s) + 1 && back[0] == ' ' && !strcmp(back + 1, s));
    free(ids);
    free(back);
    eng_tokenizer_free(t);
    eng_gguf_free(g);
}
