/*
 * tokenizer_int.h — internals shared by the tokenizer (tokenizer.c,
 * pretok.c) and the vocabulary builder of mkmodel (mkvocab.c). Not part of
 * the engine's public API.
 */
#ifndef ENG_TOKENIZER_INT_H
#define ENG_TOKENIZER_INT_H

#include "engine/err.h"

#include <stddef.h>
#include <stdint.h>

/* Character classes the pre-tokenizer regexes distinguish. */
enum { TK_LETTER = 0, TK_NUMBER, TK_SPACE, TK_PUNCT, TK_SYMBOL, TK_OTHER };

/* Marks an invalid UTF-8 byte (outside the code point range). */
#define TK_INVALID_CP 0xFFFFFFFFu

/* Class of a code point (ASCII exact; others from a built-in table,
 * default letter). */
int tk_class(uint32_t cp);

/* Decodes one UTF-8 character of s[0..n) (n >= 1); *blen = bytes used.
 * Invalid or truncated: one byte, TK_INVALID_CP. */
uint32_t tk_utf8_next(const unsigned char *s, size_t n, size_t *blen);

/* GPT-2 bytes_to_unicode: the code point byte b is written as in vocab
 * strings (printable Latin-1 bytes stand for themselves, the other 68 map
 * to U+0100..U+0143 in byte order). */
uint32_t tk_byte_to_cp(uint8_t b);
/* Inverse: byte for a code point of the mapping, -1 for others. */
int tk_cp_to_byte(uint32_t cp);

/* Appends the byte-level (vocab) form of raw bytes to out (capacity must be
 * >= 2*n + 1; NUL-terminated); returns its length. */
size_t tk_bytes_to_vocab(const unsigned char *raw, size_t n, char *out);

#endif
