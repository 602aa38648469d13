/* gguf_bytes.c — see gguf_bytes.h. */
#include "tests/util/gguf_bytes.h"
#include "tests/test.h"

void gb_bytes(gb *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *q = tst_alloc(cap);
        if (b->n)
            memcpy(q, b->p, b->n);
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

void gb_u8(gb *b, uint8_t v) { gb_bytes(b, &v, 1); }
void gb_u32(gb *b, uint32_t v) { gb_bytes(b, &v, 4); }
void gb_u64(gb *b, uint64_t v) { gb_bytes(b, &v, 8); }

void gb_str(gb *b, const char *s)
{
    gb_u64(b, strlen(s));
    gb_bytes(b, s, strlen(s));
}

void gb_zeros(gb *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gb_u8(b, 0);
}

void gb_pad(gb *b, size_t align)
{
    while (b->n % align)
        gb_u8(b, 0);
}

void gb_header(gb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    gb_bytes(b, "GGUF", 4);
    gb_u32(b, version);
    gb_u64(b, n_tensors);
    gb_u64(b, n_kv);
}

void gb_kv_u32(gb *b, const char *key, uint32_t v)
{
    gb_str(b, key);
    gb_u32(b, 4);
    gb_u32(b, v);
}

void gb_kv_str(gb *b, const char *key, const char *v)
{
    gb_str(b, key);
    gb_u32(b, 8);
    gb_str(b, v);
}

void gb_info(gb *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type,
             uint64_t offset)
{
    gb_str(b, name);
    gb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        gb_u64(b, (uint64_t)ne[d]);
    gb_u32(b, type);
    gb_u64(b, offset);
}

void gb_valid_small(gb *b)
{
    const int64_t na[2] = {8, 2}, nb[1] = {4};
    gb_header(b, 3, 2, 2);
    gb_kv_str(b, "general.architecture", "llama");
    gb_kv_u32(b, "general.alignment", 32);
    gb_info(b, "a", 2, na, 0, 0);
    gb_info(b, "b", 1, nb, 0, 64);
    gb_pad(b, 32);
    for (int i = 0; i < 16; i++) {
        float f = (float)i;
        gb_bytes(b, &f, 4);
    }
    for (int i = 0; i < 4; i++) {
        float f = -(float)i;
        gb_bytes(b, &f, 4);
    }
}
