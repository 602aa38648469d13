/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader (`make fuzz`, then
 * build-fuzz/fuzz_gguf -max_total_time=600 CORPUS/).
 *
 * The input is opened from memory (eng_gguf_open_mem, the same parser as
 * eng_gguf_open). When it opens, every accessor is walked over every KV,
 * array element (the first 64 of each) and tensor, and the tensor bytes are
 * read, so a bounds mistake anywhere shows up under ASan; a supported
 * tensor's first row also goes through dequantization.
 */
#include "engine/formats.h"
#include "engine/gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_kv(const eng_gguf *g, int64_t i, volatile uint64_t *sink)
{
    const eng_gguf_kv *kv = eng_gguf_kv_at(g, i);
    *sink += eng_gguf_find_key(g, kv->key) == i;
    if (kv->type == ENG_GGUF_STRING && kv->v.s.len)
        *sink += (uint8_t)kv->v.s.ptr[kv->v.s.len - 1];
    if (kv->type != ENG_GGUF_ARRAY)
        return;
    for (uint64_t j = 0; j < kv->arr_len && j < 64; j++) {
        eng_gguf_str s;
        int64_t v;
        float f;
        if (eng_gguf_kv_arr_str(g, i, j, &s, NULL) == ENG_OK && s.len)
            *sink += (uint8_t)s.ptr[s.len - 1];
        if (eng_gguf_kv_arr_int(g, i, j, &v, NULL) == ENG_OK)
            *sink += (uint64_t)v;
        if (eng_gguf_kv_arr_f32(g, i, j, &f, NULL) == ENG_OK)
            *sink += (uint64_t)(f == f);
    }
}

static void walk_tensor(const eng_gguf *g, int64_t i, volatile uint64_t *sink)
{
    const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
    *sink += eng_gguf_find_tensor(g, t->name) == t;
    if (t->nbytes) {
        *sink += ((const uint8_t *)t->data)[0];
        *sink += ((const uint8_t *)t->data)[t->nbytes - 1];
    }
    const eng_format *f = eng_format_get(t->type);
    if (f && f->supported && t->nbytes >= t->row_bytes && t->ne[0] > 0 && t->ne[0] <= 4096) {
        float *row = malloc((size_t)t->ne[0] * sizeof *row);
        if (row && eng_dequantize_row(t->type, t->data, row, t->ne[0], NULL) == ENG_OK)
            *sink += (uint64_t)(row[0] == row[0]);
        free(row);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eng_gguf *g;
    eng_err err = {0};
    volatile uint64_t sink = 0;
    if (eng_gguf_open_mem(&g, data, size, "fuzz.gguf", &err) != ENG_OK)
        return 0;
    for (int64_t i = 0; i < eng_gguf_kv_count(g); i++)
        walk_kv(g, i, &sink);
    for (int64_t i = 0; i < eng_gguf_tensor_count(g); i++)
        walk_tensor(g, i, &sink);
    uint32_t u32;
    float f;
    eng_gguf_get_u32(g, "general.alignment", &u32, NULL);
    eng_gguf_get_f32(g, "general.alignment", &f, NULL);
    eng_gguf_free(g);
    return 0;
}
