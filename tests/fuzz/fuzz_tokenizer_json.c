/*
 * fuzz_tokenizer_json.c — libFuzzer target for the tokenizer.json reader of
 * `mkmodel --vocab-from` (`make fuzz`, then
 * build-fuzz/fuzz_tokenizer_json -max_total_time=300 -max_len=4096 CORPUS/,
 * CORPUS/ holding a copy of tests/fuzz/corpus_tokjson/ as seeds).
 *
 * The input is the file. When it reads, the vocabulary must be consistent
 * (every token a non-empty string, types in range, merges "A B", special
 * ids inside the vocabulary) and open as a tokenizer, which then encodes a
 * fixed text and the input itself with ids in range. Leaks and memory
 * errors are caught by ASan.
 */
#include "engine/mkvocab.h"
#include "engine/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void encode_check(const eng_tokenizer *t, const char *s, size_t n)
{
    int32_t *ids;
    size_t nids;
    if (eng_tokenizer_encode(t, s, n, ENG_TOK_PARSE_SPECIAL, &ids, &nids, NULL))
        abort();
    for (size_t i = 0; i < nids; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= eng_tokenizer_n_vocab(t))
            abort();
    free(ids);
}

static void check_vocab(const eng_mkvocab *v)
{
    if (v->n_tokens == 0 || !v->tokens || !v->types || (v->spm && !v->scores))
        abort();
    for (size_t i = 0; i < v->n_tokens; i++)
        if (!v->tokens[i] || !v->tokens[i][0] || v->types[i] < 1 || v->types[i] > 6)
            abort();
    for (size_t k = 0; k < v->n_merges; k++) {
        const char *sp = strchr(v->merges[k] + 1, ' ');
        if (!v->merges[k][0] || !sp || !sp[1])
            abort();
    }
    if ((v->has_bos && v->bos_id >= v->n_tokens) || (v->has_eos && v->eos_id >= v->n_tokens) ||
        (v->has_unk && v->unk_id >= v->n_tokens) || (v->has_pad && v->pad_id >= v->n_tokens))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eng_mkvocab v;
    eng_err e;
    if (eng_mkvocab_from_json_mem(&v, (const char *)data, size, "fuzz.json", NULL, &e)) {
        if (!e.msg[0] || v.tokens)
            abort(); /* an error says why and leaves nothing behind */
        return 0;
    }
    check_vocab(&v);
    eng_tokenizer_desc d = {
        .model = v.spm ? "llama" : "gpt2", .pre = v.spm ? NULL : v.pre,
        .n_tokens = v.n_tokens, .tokens = (const char *const *)v.tokens,
        .token_types = v.types, .scores = v.scores, .n_merges = v.n_merges,
        .merges = (const char *const *)v.merges, .unk_id = v.has_unk ? (int64_t)v.unk_id : -1,
        .bos_id = v.has_bos ? (int64_t)v.bos_id : -1, .eos_id = v.has_eos ? (int64_t)v.eos_id : -1,
        .add_space_prefix = v.add_space_prefix,
    };
    eng_tokenizer *t;
    if (eng_tokenizer_open(&t, &d, &e))
        abort(); /* what the reader accepts, the tokenizer opens */
    static const char text[] = "Hello, world! 123 <|im_start|>\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80";
    encode_check(t, text, sizeof text - 1);
    encode_check(t, (const char *)data, size < 256 ? size : 256);
    eng_tokenizer_free(t);
    eng_mkvocab_free(&v);
    return 0;
}
