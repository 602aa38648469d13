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
} eng_mkvocab;

/* Builds the vocabulary for n_vocab tokens (>= 258), merges learned within
 * the pieces of pre-tokenizer `pre`. Deterministic. */
int eng_mkvocab_build(eng_mkvocab *v, size_t n_vocab, eng_pretok pre, eng_err *e);
/* The SentencePiece form of the same learned tokens (mkvocab.c). */
int eng_mkvocab_build_spm(eng_mkvocab *v, size_t n_vocab, eng_err *e);
void eng_mkvocab_free(eng_mkvocab *v);

#endif
