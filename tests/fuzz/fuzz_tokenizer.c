/*
 * fuzz_tokenizer.c — libFuzzer target for the tokenizers (`make fuzz`,
 * then build-fuzz/fuzz_tokenizer -max_total_time=300).
 *
 * The first input byte picks the tokenizer: byte-level BPE with the qwen2,
 * gpt2/olmo or default pre-tokenizer, or SentencePiece; the rest is text.
 * The vocabularies are mkmodel's (built once). Checks: pre-tokenizer pieces
 * tile the text in order, every id is in range, and decode(encode(text)) ==
 * text byte for byte (invalid UTF-8 included; SentencePiece's decoding
 * starts with the space it put before the text).
 */
#include "engine/mkvocab.h"
#include "engine/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static eng_tokenizer *g_tok[4]; /* built on first use, kept for the run */

static eng_tokenizer *spm_tokenizer(void)
{
    eng_mkvocab v;
    if (eng_mkvocab_build_spm(&v, 4096, NULL))
        abort();
    eng_tokenizer_desc d = {
        .model = "llama", .n_tokens = v.n_tokens, .tokens = (const char *const *)v.tokens,
        .token_types = v.types, .scores = v.scores, .unk_id = v.unk_id, .bos_id = v.bos_id,
        .eos_id = v.eos_id, .add_bos = 1, .add_space_prefix = 1,
    };
    eng_tokenizer *t;
    if (eng_tokenizer_open(&t, &d, NULL))
        abort();
    eng_mkvocab_free(&v);
    return t;
}

static eng_tokenizer *tokenizer_for(int k)
{
    static const char *const pre[] = {"qwen2", "olmo", "default"};
    static const eng_pretok kind[] = {ENG_PRETOK_QWEN2, ENG_PRETOK_GPT2, ENG_PRETOK_DEFAULT};
    if (g_tok[k])
        return g_tok[k];
    if (k == 3)
        return g_tok[k] = spm_tokenizer();
    eng_mkvocab v;
    if (eng_mkvocab_build(&v, 4096, kind[k], NULL))
        abort();
    eng_tokenizer_desc d = {
        .model = "gpt2", .pre = pre[k], .n_tokens = v.n_tokens,
        .tokens = (const char *const *)v.tokens, .token_types = v.types,
        .n_merges = v.n_merges, .merges = (const char *const *)v.merges,
        .bos_id = v.bos_id, .eos_id = v.eos_id, .add_bos = 1,
    };
    if (eng_tokenizer_open(&g_tok[k], &d, NULL))
        abort();
    eng_mkvocab_free(&v);
    return g_tok[k];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int k = data[0] % 4;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    size_t *off, n, nl;
    char *norm;
    if (k < 3) {
        if (eng_pretok_split((eng_pretok)(k == 0 ? ENG_PRETOK_QWEN2
                                                 : k == 1 ? ENG_PRETOK_GPT2 : ENG_PRETOK_DEFAULT),
                             text, len, &norm, &nl, &off, &n, NULL))
            abort();
        for (size_t i = 0; i < n; i++)
            if (off[i] >= off[i + 1])
                abort();
        if (n && (off[0] != 0 || off[n] != len))
            abort();
        free(off);
    }
    eng_tokenizer *t = tokenizer_for(k);
    int32_t *ids;
    size_t nids, dl;
    char *back;
    if (eng_tokenizer_encode(t, text, len, 0, &ids, &nids, NULL))
        abort();
    for (size_t i = 0; i < nids; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= eng_tokenizer_n_vocab(t))
            abort();
    if (eng_tokenizer_decode(t, ids, nids, &back, &dl, NULL))
        abort();
    size_t pre = k == 3 && len > 0; /* SentencePiece's prefixed space */
    if (dl != len + pre || (pre && back[0] != ' ') || memcmp(back + pre, text, len))
        abort();
    free(ids);
    free(back);
    return 0;
}
