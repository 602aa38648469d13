/*
 * mkvocab.h — internal: the vocabulary mkmodel writes (mkvocab.c). Not part
 * of the engine's public API.
 */
#ifndef ENG_MKVOCAB_H
#define ENG_MKVOCAB_H

#include "engine/err.h"
#include "engine/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct eng_mkvocab {
    bool spm;            /* SentencePiece form (no merges, scores)     */
    size_t n_tokens;     /* = the requested vocabulary size            */
    char **tokens;       /* [n_tokens] byte-level strings (SPM: text)  */
    int32_t *types;      /* [n_tokens] ENG_TOKEN_*                     */
    float *scores;       /* SPM: [n_tokens] merge priorities; else NULL */
    size_t n_merges;
    char **merges;       /* [n_merges] "A B", rank = index             */
    uint32_t bos_id, eos_id, unk_id; /* unk_id: SPM only               */
    /* Set by eng_mkvocab_from_json only (the builders leave them 0):
     * what llama.cpp's converter writes beside the arrays. */
    bool from_json;
    char pre[32];        /* tokenizer.ggml.pre (BPE)                   */
    bool has_bos, has_eos, has_unk, has_pad; /* which *_id are written */
    uint32_t pad_id;
    int8_t add_bos, add_eos; /* add_*_token: 0/1, -1 = not written     */
    bool add_space_prefix;   /* SPM: tokenizer.ggml.add_space_prefix    */
} eng_mkvocab;

/* Builds the vocabulary for n_vocab tokens (>= 258), merges learned within
 * the pieces of pre-tokenizer `pre`. Deterministic. */
int eng_mkvocab_build(eng_mkvocab *v, size_t n_vocab, eng_pretok pre, eng_err *e);
/* The SentencePiece form of the same learned tokens (mkvocab.c). */
int eng_mkvocab_build_spm(eng_mkvocab *v, size_t n_vocab, eng_err *e);
void eng_mkvocab_free(eng_mkvocab *v);

/* The vocabulary of a Hugging Face tokenizer.json (mkvocab_json.c), as
 * llama.cpp's convert_hf_to_gguf.py would write it: byte-level BPE as
 * "gpt2" (pre-tokenizer detected from the file's pre_tokenizer, or `pre`
 * when not NULL), BPE with byte fallback over U+2581 text (Llama 2,
 * Mixtral) as SentencePiece "llama". tokenizer_config.json and config.json
 * next to it are read when present, as the converter does. The files are
 * hostile input: anything malformed, inconsistent or beyond the limits is
 * ENG_EFORMAT (ENG_EUNSUPPORTED for other tokenizer kinds) with a message
 * naming the file and the field; ENG_EIO when it cannot be read. */
int eng_mkvocab_from_json(eng_mkvocab *v, const char *path, const char *pre, eng_err *e);
/* The same from tokenizer.json text in memory (no files beside it); name
 * is used in messages. For tests and the fuzzer. */
int eng_mkvocab_from_json_mem(eng_mkvocab *v, const char *json, size_t len, const char *name,
                              const char *pre, eng_err *e);

#endif
