/*
 * gguf.h — GGUF v3 files: a validating reader (mmap) and a streaming writer.
 *
 * Reader. eng_gguf_open maps the file read-only and checks every field
 * before it is used: magic, version (3; 2 is accepted, others rejected),
 * every count and string length against the bytes that remain, KV types
 * (0..12, no nested arrays, no duplicate keys), general.alignment (a u32,
 * power of 2, >= 8), tensor infos (unique names < 64 bytes, n_dims <= 4,
 * ne >= 0, ne0 a multiple of the type's block size, byte counts without
 * overflow, offsets aligned and inside the file). Errors:
 *   ENG_EIO          the file cannot be opened, stat'ed or mapped
 *   ENG_EFORMAT      the bytes are malformed (message names file and field:
 *                    "m.gguf: tensor 'blk.3.ffn_down_exps.weight': offset
 *                    123 not aligned to 32")
 *   ENG_EUNSUPPORTED well formed but not ours: version 1 or > 3, an unknown
 *                    ggml type id
 * A tensor whose type is known to ggml but has no kernels here (Q4_K, ...)
 * opens fine; eng_format_get(type)->supported says whether it can be
 * computed with (formats.h).
 *
 * Lifetime: every pointer the reader hands out (keys, names, string values,
 * array data, tensor data) points into the handle or the mapping and lives
 * until eng_gguf_free. Strings in the file are not NUL-terminated: values
 * come as eng_gguf_str (pointer + length); keys and tensor names are copied
 * and NUL-terminated by the reader (a key or name holding a NUL byte is
 * rejected).
 *
 * Writer. eng_gguf_writer_open, then set KVs and add tensor infos, then
 * eng_gguf_writer_write_header, then the data of each tensor in info order
 * (whole, or streamed in chunks), then eng_gguf_writer_finish. Data goes to
 * "PATH.tmp-PID" and is renamed to PATH only by a successful finish, so a
 * failure never leaves a half file under the final name. Offsets follow
 * llama.cpp's rule: first 0, each next = previous + PAD(nbytes, ALIGN),
 * ALIGN = general.alignment (default 32; set it with
 * eng_gguf_writer_set_u32(w, "general.alignment", 64) before adding
 * tensors). Nothing but the current tensor's bytes is buffered.
 *
 * Thread-safety: a reader handle is immutable after open; any number of
 * threads may call its accessors concurrently. A writer belongs to one
 * thread.
 */
#ifndef ENG_GGUF_H
#define ENG_GGUF_H

#include "engine/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENG_GGUF_MAGIC 0x46554747u  /* "GGUF" read as a little-endian u32 */
#define ENG_GGUF_VERSION 3
#define ENG_GGUF_DEFAULT_ALIGNMENT 32
#define ENG_GGUF_MAX_NAME 64        /* tensor names are < 64 bytes (GGML_MAX_NAME) */
#define ENG_GGUF_MAX_DIMS 4

/* KV value types, numbered as in the file (gguf.h GGUF_TYPE_*). */
typedef enum eng_gguf_type {
    ENG_GGUF_U8 = 0,
    ENG_GGUF_I8 = 1,
    ENG_GGUF_U16 = 2,
    ENG_GGUF_I16 = 3,
    ENG_GGUF_U32 = 4,
    ENG_GGUF_I32 = 5,
    ENG_GGUF_F32 = 6,
    ENG_GGUF_BOOL = 7,
    ENG_GGUF_STRING = 8,
    ENG_GGUF_ARRAY = 9,
    ENG_GGUF_U64 = 10,
    ENG_GGUF_I64 = 11,
    ENG_GGUF_F64 = 12,
    ENG_GGUF_TYPE_COUNT
} eng_gguf_type;

/* "u8", "i32", "f32", "bool", "string", "array", ...; "?" when out of range. */
const char *eng_gguf_type_name(int type);
/* Size in bytes of one value of a fixed-size type; 0 for STRING, ARRAY and
 * unknown types. */
size_t eng_gguf_type_size(int type);

/* A string in the file: `len` bytes at `ptr`, NOT NUL-terminated, may hold
 * any bytes (including NUL). Print with "%.*s" after checking len <= INT_MAX,
 * or copy with eng_gguf_str_copy. */
typedef struct eng_gguf_str {
    const char *ptr;
    uint64_t len;
} eng_gguf_str;

/* Copies s into buf (capacity cap >= 1) NUL-terminated, truncating; returns
 * buf. Safe for printing any value. */
char *eng_gguf_str_copy(eng_gguf_str s, char *buf, size_t cap);
/* malloc'd NUL-terminated copy of s (NULL when out of memory). A value with
 * an embedded NUL reads shorter in C; s.len is the truth. */
char *eng_gguf_str_dup(eng_gguf_str s);

/* One key/value pair as parsed. For scalars the value is decoded into the
 * union member of its type (u for U8/U16/U32/U64, i for I8..I64, f for
 * F32/F64 widened to double, b for BOOL, s for STRING). For ARRAY, arr_type
 * is the element type, arr_len the count and arr_data points at the first
 * element in the mapping: packed little-endian values of arr_type, NOT
 * aligned (use the eng_gguf_kv_arr_* accessors, or memcpy); for arrays of
 * strings arr_data is the first string record (u64 len + bytes). */
typedef struct eng_gguf_kv {
    const char *key;          /* NUL-terminated copy */
    eng_gguf_type type;
    eng_gguf_type arr_type;   /* ARRAY only */
    uint64_t arr_len;         /* ARRAY only */
    const void *arr_data;     /* ARRAY only */
    union {
        uint64_t u;
        int64_t i;
        double f;
        bool b;
        eng_gguf_str s;
    } v;
} eng_gguf_kv;

/* One tensor info, validated. Dims beyond n_dims are 1. Element e of a
 * stacked expert tensor starts at data + e * ne[1] * row_bytes. */
typedef struct eng_gguf_tensor {
    const char *name;        /* NUL-terminated, at most 63 bytes             */
    int type;                /* ggml type id (ENG_TYPE_* in formats.h)       */
    int n_dims;              /* 1..4 (0 is read as a scalar: ne all 1)       */
    int64_t ne[ENG_GGUF_MAX_DIMS]; /* elements per dim, ne[0] contiguous     */
    uint64_t row_bytes;      /* bytes of one ne[0] row: ne0/blck*type_size   */
    uint64_t nbytes;         /* bytes of the whole tensor                    */
    uint64_t offset;         /* as in the file: relative to the data offset  */
    uint64_t file_offset;    /* absolute: data_offset + offset (for pread)   */
    const void *data;        /* into the mapping; aligned to the alignment   */
} eng_gguf_tensor;

typedef struct eng_gguf eng_gguf;

/* Opens and validates PATH (mmap, read-only). On failure *out is NULL and
 * err says why, naming PATH. */
int eng_gguf_open(eng_gguf **out, const char *path, eng_err *err);
/* The same over bytes already in memory (not copied: data must outlive the
 * handle). `name` stands for the path in messages and eng_gguf_path.
 * data may be NULL when size is 0. */
int eng_gguf_open_mem(eng_gguf **out, const void *data, size_t size, const char *name,
                      eng_err *err);
void eng_gguf_free(eng_gguf *g);

const char *eng_gguf_path(const eng_gguf *g);
uint64_t eng_gguf_file_size(const eng_gguf *g);
uint32_t eng_gguf_version(const eng_gguf *g);
uint32_t eng_gguf_alignment(const eng_gguf *g);
/* Absolute offset of the tensor data blob: PAD(end of tensor infos,
 * alignment) when there are tensors, else the end of the infos. */
uint64_t eng_gguf_data_offset(const eng_gguf *g);
/* Base of the mapping (file byte 0); NULL for an empty in-memory image. */
const void *eng_gguf_base(const eng_gguf *g);

/* ---- key/value pairs ---------------------------------------------------- */

int64_t eng_gguf_kv_count(const eng_gguf *g);
/* i in [0, kv_count); NULL otherwise. */
const eng_gguf_kv *eng_gguf_kv_at(const eng_gguf *g, int64_t i);
/* Index of key, or -1 when missing. */
int64_t eng_gguf_find_key(const eng_gguf *g, const char *key);
bool eng_gguf_has(const eng_gguf *g, const char *key);

/* Typed getters by key. ENG_OK with *out set; ENG_EFORMAT when the key is
 * missing ("m.gguf: key 'llama.block_count' is missing") or has a type or
 * value that does not fit ("m.gguf: key 'x': type string, expected an
 * integer"; "...: value -1 out of range for u32"). Integer getters accept any
 * integer type (u8..i64) whose value fits; f32 accepts F32 and F64. The _or
 * variants return ENG_OK with *out = def when the key is missing (a present
 * key of a wrong type is still an error). */
int eng_gguf_get_u32(const eng_gguf *g, const char *key, uint32_t *out, eng_err *err);
int eng_gguf_get_i32(const eng_gguf *g, const char *key, int32_t *out, eng_err *err);
int eng_gguf_get_u64(const eng_gguf *g, const char *key, uint64_t *out, eng_err *err);
int eng_gguf_get_i64(const eng_gguf *g, const char *key, int64_t *out, eng_err *err);
int eng_gguf_get_f32(const eng_gguf *g, const char *key, float *out, eng_err *err);
int eng_gguf_get_bool(const eng_gguf *g, const char *key, bool *out, eng_err *err);
int eng_gguf_get_str(const eng_gguf *g, const char *key, eng_gguf_str *out, eng_err *err);
/* malloc'd NUL-terminated copy of a STRING value (caller frees). */
int eng_gguf_get_strdup(const eng_gguf *g, const char *key, char **out, eng_err *err);
int eng_gguf_get_u32_or(const eng_gguf *g, const char *key, uint32_t def, uint32_t *out,
                        eng_err *err);
int eng_gguf_get_f32_or(const eng_gguf *g, const char *key, float def, float *out,
                        eng_err *err);
int eng_gguf_get_bool_or(const eng_gguf *g, const char *key, bool def, bool *out,
                         eng_err *err);
/* The ARRAY kv named key (ENG_EFORMAT when missing or not an array); *kv_index
 * is for the element accessors below. */
int eng_gguf_get_arr(const eng_gguf *g, const char *key, int64_t *kv_index, eng_err *err);

/* Element j of the array kv i. ENG_EINVAL when i is not an array or j is out
 * of range; ENG_EFORMAT when the element type does not fit (arr_int: any
 * integer type whose value fits in int64, or BOOL as 0/1; arr_f32: F32 or F64; arr_str:
 * STRING). O(1): string arrays are indexed at open. */
int eng_gguf_kv_arr_int(const eng_gguf *g, int64_t i, uint64_t j, int64_t *out, eng_err *err);
int eng_gguf_kv_arr_f32(const eng_gguf *g, int64_t i, uint64_t j, float *out, eng_err *err);
int eng_gguf_kv_arr_str(const eng_gguf *g, int64_t i, uint64_t j, eng_gguf_str *out,
                        eng_err *err);

/* ---- tensors ------------------------------------------------------------ */

int64_t eng_gguf_tensor_count(const eng_gguf *g);
/* i in [0, tensor_count) in file order; NULL otherwise. */
const eng_gguf_tensor *eng_gguf_tensor_at(const eng_gguf *g, int64_t i);
/* NULL when missing (hash lookup). */
const eng_gguf_tensor *eng_gguf_find_tensor(const eng_gguf *g, const char *name);

/* ---- writer ------------------------------------------------------------- */

typedef struct eng_gguf_writer eng_gguf_writer;

/* Creates the temporary file next to PATH. */
int eng_gguf_writer_open(eng_gguf_writer **out, const char *path, eng_err *err);
/* Removes the temporary file unless finish succeeded. */
void eng_gguf_writer_free(eng_gguf_writer *w);

/* KV setters, before write_header. Keys must be unique (ENG_EINVAL on a
 * duplicate) and non-empty. "general.alignment" must be set with set_u32,
 * a power of 2 >= 8, before the first add_tensor. Numeric arrays take
 * `n` host values of `elem_type` (x86-64 is little-endian like the file);
 * string arrays take NUL-terminated strings or, with set_arr_strn, explicit
 * lengths (lens[i] bytes of strs[i], any bytes). n may be 0. */
int eng_gguf_writer_set_u8(eng_gguf_writer *w, const char *key, uint8_t v, eng_err *err);
int eng_gguf_writer_set_i8(eng_gguf_writer *w, const char *key, int8_t v, eng_err *err);
int eng_gguf_writer_set_u16(eng_gguf_writer *w, const char *key, uint16_t v, eng_err *err);
int eng_gguf_writer_set_i16(eng_gguf_writer *w, const char *key, int16_t v, eng_err *err);
int eng_gguf_writer_set_u32(eng_gguf_writer *w, const char *key, uint32_t v, eng_err *err);
int eng_gguf_writer_set_i32(eng_gguf_writer *w, const char *key, int32_t v, eng_err *err);
int eng_gguf_writer_set_u64(eng_gguf_writer *w, const char *key, uint64_t v, eng_err *err);
int eng_gguf_writer_set_i64(eng_gguf_writer *w, const char *key, int64_t v, eng_err *err);
int eng_gguf_writer_set_f32(eng_gguf_writer *w, const char *key, float v, eng_err *err);
int eng_gguf_writer_set_f64(eng_gguf_writer *w, const char *key, double v, eng_err *err);
int eng_gguf_writer_set_bool(eng_gguf_writer *w, const char *key, bool v, eng_err *err);
int eng_gguf_writer_set_str(eng_gguf_writer *w, const char *key, const char *v, eng_err *err);
int eng_gguf_writer_set_strn(eng_gguf_writer *w, const char *key, const char *v, size_t len,
                             eng_err *err);
int eng_gguf_writer_set_arr(eng_gguf_writer *w, const char *key, eng_gguf_type elem_type,
                            const void *data, uint64_t n, eng_err *err);
int eng_gguf_writer_set_arr_str(eng_gguf_writer *w, const char *key, const char *const *strs,
                                uint64_t n, eng_err *err);
int eng_gguf_writer_set_arr_strn(eng_gguf_writer *w, const char *key, const char *const *strs,
                                 const size_t *lens, uint64_t n, eng_err *err);

/* Adds a tensor info (before write_header): name unique, 1..63 bytes; type a
 * ggml type id known to formats.h; n_dims 1..4; ne[0] a multiple of the
 * block size. Returns the tensor's index via *index (may be NULL). */
int eng_gguf_writer_add_tensor(eng_gguf_writer *w, const char *name, int type, int n_dims,
                               const int64_t *ne, int64_t *index, eng_err *err);
/* Bytes tensor i takes in the file, without padding (0 for a bad index). */
uint64_t eng_gguf_writer_tensor_nbytes(const eng_gguf_writer *w, int64_t i);

/* Writes header, KVs, infos and the padding to the data offset. */
int eng_gguf_writer_write_header(eng_gguf_writer *w, eng_err *err);
/* All of tensor `index`'s bytes at once; index must be the next tensor and
 * nbytes its exact size. */
int eng_gguf_writer_write_tensor_data(eng_gguf_writer *w, int64_t index, const void *data,
                                      size_t nbytes, eng_err *err);
/* Streaming alternative: appends n bytes to the tensors in order; a tensor is
 * closed (and padded) when its last byte arrives; a chunk may not run past
 * the last tensor's end. */
int eng_gguf_writer_append(eng_gguf_writer *w, const void *data, size_t n, eng_err *err);
/* Checks every tensor got all its bytes, flushes, closes and renames the
 * temporary file to PATH. */
int eng_gguf_writer_finish(eng_gguf_writer *w, eng_err *err);

#endif
