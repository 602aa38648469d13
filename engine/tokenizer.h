/*
 * tokenizer.h — the tokenizers of GGUF files, as llama.cpp 82bb485 runs
 * them: byte-level BPE (`tokenizer.ggml.model = "gpt2"`: Qwen, OLMoE,
 * DeepSeek, gpt-oss, GLM, Kimi-K2, Llama 3, the files `moebench mkmodel`
 * writes) and SentencePiece (`"llama"`, Mixtral and Llama 2: highest-score
 * merges over UTF-8 characters with <0xXX> byte fallback; docs/engine.md,
 * "SentencePiece").
 *
 * encode: special tokens written in the text are cut out first (llama.cpp's
 * tokenizer_st_partition: control, user-defined and unknown tokens, longest
 * text first; with ENG_TOK_PARSE_SPECIAL off only user-defined tokens, as
 * llama.cpp's parse_special = false). Each stretch of text between them is
 * then split by the pre-tokenizer of `tokenizer.ggml.pre` (pretok.c: the
 * same regexes and hand-written splitters, on the same Unicode tables) and
 * merged: BPE lowest merge rank first (ties: leftmost), as llama.cpp's
 * llm_tokenizer_bpe_session; SentencePiece highest score first. BOS/EOS are
 * added when the metadata says so and the caller asks (ENG_TOK_ADD_SPECIAL).
 *
 * Text that is not valid UTF-8: BPE sees it as llama.cpp does (invalid
 * bytes become U+FFFD, overlong forms their code point; pretok.c), so the
 * ids match llama.cpp's and decoding gives that normalized text back.
 * SentencePiece works on the bytes (byte fallback) and gives them back.
 *
 * decode: ids -> bytes (byte-level symbols mapped back; control and unused
 * tokens give no bytes).
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

/* Pre-tokenizer kinds (tokenizer.ggml.pre; llama-vocab.cpp names). */
typedef enum eng_pretok {
    ENG_PRETOK_DEFAULT = 0, /* "default": llama.cpp's cascade of 4 regexes     */
    ENG_PRETOK_GPT2,        /* "gpt-2", "olmo" (and moebench's "gpt2")       */
    ENG_PRETOK_QWEN2,       /* "qwen2": single digits                         */
    ENG_PRETOK_LLAMA3,      /* "llama-bpe" (Llama 3): 1-3 digits; whole-word
                             * tokens skip the merges; BOS added by default    */
    ENG_PRETOK_DEEPSEEK_LLM,/* "deepseek-llm" (DeepSeek LLM, V2)              */
    ENG_PRETOK_DEEPSEEK3,   /* "deepseek-v3" (V3, R1)                         */
    ENG_PRETOK_GPT4O,       /* "gpt-4o" (o200k: gpt-oss, Llama 4)             */
    ENG_PRETOK_GLM4,        /* "glm4" (GLM-4.5): llama-bpe's split, no
                             * default BOS                                     */
    ENG_PRETOK_KIMI_K2,     /* "kimi-k2": Han runs apart; merges optional     */
} eng_pretok;

#define ENG_PRETOK_NAMES                                                        \
    "default, gpt-2, olmo, qwen2, llama-bpe, deepseek-llm, deepseek-v3, gpt-4o, glm4, kimi-k2"

/* A tokenizer.ggml.pre value -> kind (NULL or "" = default; aliases
 * llama.cpp gives the same kind: gpt2, llama3, llama-v3, chatglm-bpe,
 * deepseek-r1-qwen, llama4); ENG_EUNSUPPORTED naming the value for any
 * other. */
int eng_pretok_parse(const char *pre, eng_pretok *out, eng_err *e);
/* The name mkmodel writes for a kind ("gpt-2", "llama-bpe", ...). */
const char *eng_pretok_name(eng_pretok kind);

/* Splits text into pre-tokenizer pieces as llama.cpp does. The pieces are
 * of the text as llama.cpp decodes it (see above): *norm gets that text
 * (malloc'd, NUL-terminated, *norm_len bytes; equal to the input when it is
 * valid UTF-8), piece i is norm[off[i] .. off[i+1]) (*off has n+1 entries,
 * malloc'd, off[0] = 0, off[n] = *norm_len). Empty text gives n = 0 and
 * *off = NULL. Exposed for tests and for the vocabulary builder. */
int eng_pretok_split(eng_pretok kind, const char *text, size_t len, char **norm,
                     size_t *norm_len, size_t **off, size_t *n, eng_err *e);

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
 * eos_token_id,add_bos_token,add_eos_token,fim_*_token_id} and, for
 * SentencePiece, {scores,unknown_token_id,add_space_prefix} from an open
 * GGUF, with llama.cpp's defaults where a key is missing: SentencePiece unk
 * 0, bos 1, eos 2, BOS added; BPE bos = eos = 11 (none for glm4; either
 * dropped when beyond the vocabulary), BOS added for llama-bpe only.
 * Missing model/tokens (or merges for BPE but kimi-k2), a per-token array
 * of another length -> ENG_EFORMAT naming the key; any other model or pre
 * -> ENG_EUNSUPPORTED naming it. */
int eng_tokenizer_open_gguf(eng_tokenizer **out, const eng_gguf *g, eng_err *e);

void eng_tokenizer_free(eng_tokenizer *t);

/* Flags of eng_tokenizer_encode. */
enum {
    ENG_TOK_ADD_SPECIAL = 1,   /* BOS/EOS as the metadata asks (add_bos_token) */
    ENG_TOK_PARSE_SPECIAL = 2, /* control/unknown tokens written in the text are
                                * those tokens (llama.cpp parse_special);
                                * user-defined ones always are              */
};

/* Encodes len bytes of text with ENG_TOK_* flags. *ids is malloc'd (free()
 * it; may be NULL when *n == 0). ENG_EFORMAT when BOS/EOS must be added
 * and the vocabulary has none. */
int eng_tokenizer_encode(const eng_tokenizer *t, const char *text, size_t len, int flags,
                         int32_t **ids, size_t *n, eng_err *e);

/* Decodes ids to bytes; *text is malloc'd and NUL-terminated (free() it),
 * *len excludes the NUL. An id outside [0, n_vocab) -> ENG_EINVAL. */
int eng_tokenizer_decode(const eng_tokenizer *t, const int32_t *ids, size_t n, char **text,
                         size_t *len, eng_err *e);

/* The bytes token id decodes to (control, unknown, unused: none). Writes at
 * most cap bytes to buf (NUL-terminated when there is room) and returns the
 * piece's full length, like snprintf; -1 for an id out of range. */
int eng_tokenizer_piece(const eng_tokenizer *t, int32_t id, char *buf, size_t cap);

/* The vocabulary string of id as stored (byte-level form), and its type;
 * NULL / -1 for an id out of range. */
const char *eng_tokenizer_token_text(const eng_tokenizer *t, int32_t id, size_t *len);
int eng_tokenizer_token_type(const eng_tokenizer *t, int32_t id);

/* How llama.cpp treats a token (llama_token_attr bits) after the fixes it
 * makes when it loads a vocabulary: end-of-generation and fill-in-middle
 * texts ("<|im_end|>", "<|fim_prefix|>", ...) become control tokens,
 * gpt-oss's "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>" (and
 * "<|end|>" next to "<|return|>" and "<|call|>") user-defined. 0 for an id
 * out of range or an undefined type. */
enum {
    ENG_TOKATTR_UNKNOWN = 1,
    ENG_TOKATTR_UNUSED = 2,
    ENG_TOKATTR_NORMAL = 4,
    ENG_TOKATTR_CONTROL = 8,
    ENG_TOKATTR_USER_DEFINED = 16,
    ENG_TOKATTR_BYTE = 32,
};
int eng_tokenizer_token_attr(const eng_tokenizer *t, int32_t id);

size_t eng_tokenizer_n_vocab(const eng_tokenizer *t);
int32_t eng_tokenizer_bos(const eng_tokenizer *t); /* -1 when none */
int32_t eng_tokenizer_eos(const eng_tokenizer *t); /* -1 when none */
eng_pretok eng_tokenizer_pretok(const eng_tokenizer *t);
int eng_tokenizer_add_bos(const eng_tokenizer *t); /* BOS added with ENG_TOK_ADD_SPECIAL */
int eng_tokenizer_is_spm(const eng_tokenizer *t);  /* SentencePiece ("llama")   */

#endif
