/*
 * fuzz_tokenizer.c — libFuzzer target for the tokenizers (`make fuzz`,
 * then build-fuzz/fuzz_tokenizer -max_total_time=300).
 *
 * The first input byte picks the tokenizer — byte-level BPE with one of the
 * nine pre-types (default, gpt-2, qwen2, llama-bpe, glm4, deepseek-llm,
 * deepseek-v3, gpt-4o, kimi-k2) or SentencePiece — and whether special
 * tokens written in the text are parsed; the rest is text. The
 * vocabularies are mkmodel's (built once), with a user-defined token added
 * so that partitioning runs either way. Checks: pre-tokenizer pieces tile
 * the normalized text in order, every id is in range, and decoding gives
 * the text back: BPE as llama.cpp reads it (invalid UTF-8 as U+FFFD;
 * pretok.c), SentencePiece byte for byte after the space it puts first
 * (a written U+2581 reads as a space; a cut-out user-defined token gets a
 * space after it, as in llama.cpp, so texts holding one are not checked).
 * With parsing on, control tokens decode to nothing: only the ids are
 * checked.
 */
#include "engine/mkvocab.h"
#include "engine/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const k_pre[] = {"default", "gpt-2", "qwen2", "llama-bpe", "glm4",
                                    "deepseek-llm", "deepseek-v3", "gpt-4o", "kimi-k2"};
#define N_PRE (sizeof k_pre / sizeof k_pre[0])
#define USER_TOKEN "<tool>"

static eng_tokenizer *g_tok[N_PRE + 1]; /* built on first use, kept for the run */

/* The vocabulary's last (padding) token becomes a user-defined one. */
static eng_tokenizer *open_vocab(eng_mkvocab *v, const char *model, const char *pre)
{
    free(v->tokens[v->n_tokens - 1]);
    v->tokens[v->n_tokens - 1] = strdup(USER_TOKEN);
    v->types[v->n_tokens - 1] = ENG_TOKEN_USER_DEFINED;
    eng_tokenizer_desc d = {
        .model = model, .pre = pre, .n_tokens = v->n_tokens,
        .tokens = (const char *const *)v->tokens, .token_types = v->types, .scores = v->scores,
        .n_merges = v->n_merges, .merges = (const char *const *)v->merges, .unk_id = v->unk_id,
        .bos_id = v->bos_id, .eos_id = v->eos_id, .add_bos = 1, .add_space_prefix = 1,
    };
    eng_tokenizer *t;
    if (!v->tokens[v->n_tokens - 1] || eng_tokenizer_open(&t, &d, NULL))
        abort();
    eng_mkvocab_free(v);
    return t;
}

static eng_tokenizer *tokenizer_for(size_t k)
{
    if (g_tok[k])
        return g_tok[k];
    eng_mkvocab v;
    eng_pretok kind;
    if (k == N_PRE) {
        if (eng_mkvocab_build_spm(&v, 4096, NULL))
            abort();
        return g_tok[k] = open_vocab(&v, "llama", NULL);
    }
    if (eng_pretok_parse(k_pre[k], &kind, NULL) || eng_mkvocab_build(&v, 4096, kind, NULL))
        abort();
    return g_tok[k] = open_vocab(&v, "gpt2", k_pre[k]);
}

/* The pieces of every BPE pre-type tile the normalized text; that text is
 * returned (malloc'd). */
static char *check_split(size_t k, const char *text, size_t len, size_t *nlen)
{
    eng_pretok kind;
    size_t *off, n;
    char *norm;
    if (eng_pretok_parse(k_pre[k], &kind, NULL) ||
        eng_pretok_split(kind, text, len, &norm, nlen, &off, &n, NULL))
        abort();
    for (size_t i = 0; i < n; i++)
        if (off[i] >= off[i + 1])
            abort();
    if (n ? off[0] != 0 || off[n] != *nlen : *nlen != 0)
        abort();
    if (*nlen > 3 * len) /* U+FFFD for a byte at most; overlong forms shrink */
        abort();
    free(off);
    return norm;
}

/* SentencePiece's expected decoding: a space, then the text with each
 * U+2581 as a space. */
static char *spm_expected(const char *text, size_t len, size_t *n)
{
    char *s = malloc(len + 2);
    size_t k = 0;
    if (!s)
        abort();
    if (len)
        s[k++] = ' ';
    for (size_t i = 0; i < len; i++) {
        if (i + 2 < len && !memcmp(text + i, "\xe2\x96\x81", 3)) {
            s[k++] = ' ';
            i += 2;
        } else {
            s[k++] = text[i];
        }
    }
    *n = k;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t k = (data[0] & 0x7F) % (N_PRE + 1);
    int parse = data[0] >> 7;
    const char *text = (const char *)data + 1;
    size_t len = size - 1, wlen = 0;
    char *want = k < N_PRE ? check_split(k, text, len, &wlen) : spm_expected(text, len, &wlen);
    eng_tokenizer *t = tokenizer_for(k);
    int32_t *ids;
    size_t nids, dl;
    char *back;
    if (eng_tokenizer_encode(t, text, len, parse ? ENG_TOK_PARSE_SPECIAL : 0, &ids, &nids, NULL))
        abort();
    for (size_t i = 0; i < nids; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= eng_tokenizer_n_vocab(t))
            abort();
    if (eng_tokenizer_decode(t, ids, nids, &back, &dl, NULL))
        abort();
    /* SentencePiece puts a space after a cut-out token: no plain round trip */
    int user = k == N_PRE && memmem(text, len, USER_TOKEN, strlen(USER_TOKEN));
    if (!parse && !user && (dl != wlen || memcmp(back, want, wlen)))
        abort();
    free(ids);
    free(back);
    free(want);
    return 0;
}
