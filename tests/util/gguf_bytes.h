/*
 * gguf_bytes.h — test helper: build GGUF files byte by byte, so each test
 * can break exactly one field (tests/engine/test_gguf*.c, tests/cli/test_info.c).
 * Memory comes from tst_alloc (freed at test end).
 */
#ifndef TST_GGUF_BYTES_H
#define TST_GGUF_BYTES_H

#include <stddef.h>
#include <stdint.h>

typedef struct gb {
    uint8_t *p;
    size_t n, cap;
} gb;

void gb_bytes(gb *b, const void *p, size_t n);
void gb_u8(gb *b, uint8_t v);
void gb_u32(gb *b, uint32_t v);
void gb_u64(gb *b, uint64_t v);
void gb_str(gb *b, const char *s);          /* u64 length + bytes */
void gb_zeros(gb *b, size_t n);
void gb_pad(gb *b, size_t align);           /* zeros up to a multiple of align */

/* Header: magic, version, tensor_count, kv_count. */
void gb_header(gb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv);
/* KV "key" of type u32 / string. */
void gb_kv_u32(gb *b, const char *key, uint32_t v);
void gb_kv_str(gb *b, const char *key, const char *v);
/* Tensor info with n_dims dims. */
void gb_info(gb *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type,
             uint64_t offset);

/* A small valid file: 2 KVs (general.architecture = "llama",
 * general.alignment = 32), 2 f32 tensors "a" {8, 2} at 0 and "b" {4} at 64,
 * data after padding. */
void gb_valid_small(gb *b);

#endif
