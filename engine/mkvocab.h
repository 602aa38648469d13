/*
 * mkvocab.h — internal: the vocabulary mkmodel writes (mkvocab.c). Not part
 * of the engine's public API.
 */
#ifndef ENG_MKVOCAB_H
#define ENG_MKVOCAB_H

#include "engine/err.h"
#include "engine/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct eng_mkvocab {
    size_t n_tokens;     /* = the requested vocabulary size            */
    char **tokens;       /* [n_tokens] byte-level strings              */
    int32_t *types;      /* [n_tokens] ENG_TOKEN_*                     */
    size_t n_merges;
    char **merges;       /* [n_merges] "A B", rank = index             */
    uint32_t bos_id, eos_id;
} eng_mkvocab;

/* Builds the vocabulary for n_vocab tokens (>= 258), merges learned within
 * the pieces of pre-tokenizer `pre`. Deterministic. */
int eng_mkvocab_build(eng_mkvocab *v, size_t n_vocab, eng_pretok pre, eng_err *e);
void eng_mkvocab_free(eng_mkvocab *v);

#endif
