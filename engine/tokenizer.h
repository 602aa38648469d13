/*
 * tokenizer.h — byte-level BPE (GGUF `tokenizer.ggml.model = "gpt2"`), the
 * tokenizer of Qwen, OLMoE and the files `moebench mkmodel` writes, and
 * SentencePiece (`"llama"`, Mixtral: highest-score merges over UTF-8
 * characters with <0xXX> byte fallback; docs/engine.md, "SentencePiece").
 *
 * encode: text -> pre-tokenizer pieces (per `tokenizer.ggml.pre`: qwen2,
 * olmo/gpt2, default; hand-written, see tokenizer.c for the regexes) ->
 * GPT-2 byte-to-unicode mapping -> merges applied lowest rank first (ties:
 * leftmost), as llama.cpp's llm_tokenizer_bpe_session does -> ids. BOS/EOS
 * are added when the metadata says so (add_bos_token / add_eos_token) and
 * the caller asks for special tokens. Control tokens are never produced
 * from text: "<|endoftext|>" in the input is tokenized as plain text.
 *
 * decode: ids -> bytes (byte-level symbols mapped back; control and unused
 * tokens give no bytes). encode then decode returns the input bytes exactly,
 * invalid UTF-8 included (llama.cpp replaces it by U+FFFD; we keep bytes).
 *
 * Unicode: ASCII is classified exactly as the regexes do. For other code
 * points a small built-in table marks whitespace, punctuation, symbols,
 * digits and combining marks; everything else counts as a letter
 * (documented in docs/engine.md, "Tokenizer").
 *
 * Thread-safety: an eng_tokenizer is immutable after open; any number of
 * threads may encode/decode with it at once.
 */
#ifndef ENG_TOKENIZER_H
#define ENG_TOKENIZER_H

#include "engine/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct eng_tokenizer eng_tokenizer;
typedef struct eng_gguf eng_gguf; /* engine/gguf.h */

/* tokenizer.ggml.token_type values (gguf constants.py TokenType). */
enum {
    ENG_TOKEN_NORMAL = 1,
    ENG_TOKEN_UNKNOWN = 2,
    ENG_TOKEN_CONTROL = 3,
    ENG_TOKEN_USER_DEFINED = 4,
    ENG_TOKEN_UNUSED = 5,
    ENG_TOKEN_BYTE = 6,
};

/* Pre-tokenizer kinds (tokenizer.ggml.pre). */
typedef enum eng_pretok {
    ENG_PRETOK_DEFAULT = 0, /* llama.cpp's default cascade of 4 regexes     */
    ENG_PRETOK_GPT2,        /* "gpt2", "olmo": the GPT-2 regex              */
    ENG_PRETOK_QWEN2,       /* "qwen2": the cl100k-like regex, single digits */
} eng_pretok;

/* "default"/NULL, "gpt2", "olmo", "qwen2" -> kind; ENG_EUNSUPPORTED naming
 * the value for any other. */
int eng_pretok_parse(const char *pre, eng_pretok *out, eng_err *e);

/* Splits text into pre-tokenizer pieces: n pieces, piece i is
 * text[off[i] .. off[i+1]) (so *off has n+1 entries, malloc'd, off[0] = 0,
 * off[n] = len). Empty text gives n = 0. Exposed for tests and for the
 * vocabulary builder. */
int eng_pretok_split(eng_pretok kind, const char *text, size_t len, size_t **off, size_t *n,
                     eng_err *e);

/* A vocabulary in memory, as the tokenizer.ggml.* keys hold it. Strings are
 * NUL-terminated unless the *_lens arrays are given. */
typedef struct eng_tokenizer_desc {
    const char *model;              /* "gpt2" (BPE) or "llama" (SentencePiece)  */
    const char *pre;                /* NULL = "default"                        */
    size_t n_tokens;
    const char *const *tokens;      /* [n_tokens], byte-level strings          */
    const size_t *token_lens;       /* [n_tokens] or NULL                      */
    const int32_t *token_types;     /* [n_tokens] ENG_TOKEN_* or NULL (normal) */
    size_t n_merges;
    const char *const *merges;      /* [n_merges] "A B"; rank = index          */
    const size_t *merge_lens;       /* [n_merges] or NULL                      */
    int64_t bos_id, eos_id;         /* -1 = none                               */
    int add_bos, add_eos;           /* tokenizer.ggml.add_bos_token / add_eos  */
    /* SentencePiece ("llama") only: */
    const float *scores;            /* [n_tokens] merge priorities or NULL (0) */
    int64_t unk_id;                 /* unknown token, -1 = none                */
    int add_space_prefix;           /* put a space before the text             */
} eng_tokenizer_desc;

/* Builds a tokenizer from a description (copies everything it needs).
 * model other than "gpt2" or "llama" -> ENG_EUNSUPPORTED; a merge that is
 * not "A B", an out-of-range bos/eos/unk -> ENG_EFORMAT. */
int eng_tokenizer_open(eng_tokenizer **out, const eng_tokenizer_desc *d, eng_err *e);

/* Reads tokenizer.ggml.{model,pre,tokens,token_type,merges,bos_token_id,
 * eos_token_id,add_bos_token,add_eos_token} and, for SentencePiece,
 * {scores,unknown_token_id,add_space_prefix} (llama.cpp's defaults where
 * missing) from an open GGUF. Missing model/tokens (or merges for BPE), a
 * per-token array of another length -> ENG_EFORMAT naming the key; any
 * other model -> ENG_EUNSUPPORTED naming it. */
int eng_tokenizer_open_gguf(eng_tokenizer **out, const eng_gguf *g, eng_err *e);

void eng_tokenizer_free(eng_tokenizer *t);

/* Encodes len bytes of text. With add_special, BOS/EOS are added as the
 * metadata asks. *ids is malloc'd (free() it; may be NULL when *n == 0). */
int eng_tokenizer_encode(const eng_tokenizer *t, const char *text, size_t len, int add_special,
                         int32_t **ids, size_t *n, eng_err *e);

/* Decodes ids to bytes; *text is malloc'd and NUL-terminated (free() it),
 * *len excludes the NUL. An id outside [0, n_vocab) -> ENG_EINVAL. */
int eng_tokenizer_decode(const eng_tokenizer *t, const int32_t *ids, size_t n, char **text,
                         size_t *len, eng_err *e);

/* The bytes token id decodes to (control/unused tokens: none). Writes at
 * most cap bytes to buf (NUL-terminated when there is room) and returns the
 * piece's full length, like snprintf; -1 for an id out of range. */
int eng_tokenizer_piece(const eng_tokenizer *t, int32_t id, char *buf, size_t cap);

/* The vocabulary string of id as stored (byte-level form), and its type;
 * NULL / -1 for an id out of range. */
const char *eng_tokenizer_token_text(const eng_tokenizer *t, int32_t id, size_t *len);
int eng_tokenizer_token_type(const eng_tokenizer *t, int32_t id);

size_t eng_tokenizer_n_vocab(const eng_tokenizer *t);
int32_t eng_tokenizer_bos(const eng_tokenizer *t); /* -1 when none */
int32_t eng_tokenizer_eos(const eng_tokenizer *t); /* -1 when none */
eng_pretok eng_tokenizer_pretok(const eng_tokenizer *t);

#endif
