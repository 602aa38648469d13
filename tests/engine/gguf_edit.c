/*
 * gguf_edit.c — see gguf_edit.h.
 */
#include "tests/engine/gguf_edit.h"

#include "engine/gguf.h"
#include "engine/model.h"
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>

static const tu_edit *find_edit(const tu_edit *e, int n, tu_edit_kind kind, const char *name)
{
    for (int i = 0; i < n; i++)
        if (e[i].kind == kind && !strcmp(e[i].name, name))
            return &e[i];
    return NULL;
}

static int copy_kv(const eng_gguf *g, int64_t i, eng_gguf_writer *w, eng_err *err)
{
    const eng_gguf_kv *kv = eng_gguf_kv_at(g, i);
    switch (kv->type) {
    case ENG_GGUF_U8: return eng_gguf_writer_set_u8(w, kv->key, (uint8_t)kv->v.u, err);
    case ENG_GGUF_I8: return eng_gguf_writer_set_i8(w, kv->key, (int8_t)kv->v.i, err);
    case ENG_GGUF_U16: return eng_gguf_writer_set_u16(w, kv->key, (uint16_t)kv->v.u, err);
    case ENG_GGUF_I16: return eng_gguf_writer_set_i16(w, kv->key, (int16_t)kv->v.i, err);
    case ENG_GGUF_U32: return eng_gguf_writer_set_u32(w, kv->key, (uint32_t)kv->v.u, err);
    case ENG_GGUF_I32: return eng_gguf_writer_set_i32(w, kv->key, (int32_t)kv->v.i, err);
    case ENG_GGUF_U64: return eng_gguf_writer_set_u64(w, kv->key, kv->v.u, err);
    case ENG_GGUF_I64: return eng_gguf_writer_set_i64(w, kv->key, kv->v.i, err);
    case ENG_GGUF_F32: return eng_gguf_writer_set_f32(w, kv->key, (float)kv->v.f, err);
    case ENG_GGUF_F64: return eng_gguf_writer_set_f64(w, kv->key, kv->v.f, err);
    case ENG_GGUF_BOOL: return eng_gguf_writer_set_bool(w, kv->key, kv->v.b, err);
    case ENG_GGUF_STRING:
        return eng_gguf_writer_set_strn(w, kv->key, kv->v.s.ptr, (size_t)kv->v.s.len, err);
    default: break;
    }
    if (kv->arr_type != ENG_GGUF_STRING)
        return eng_gguf_writer_set_arr(w, kv->key, kv->arr_type, kv->arr_data, kv->arr_len, err);
    const char **strs = calloc(kv->arr_len + 1, sizeof *strs);
    size_t *lens = calloc(kv->arr_len + 1, sizeof *lens);
    REQUIRE(strs && lens);
    for (uint64_t j = 0; j < kv->arr_len; j++) {
        eng_gguf_str s;
        REQUIRE(eng_gguf_kv_arr_str(g, i, j, &s, err) == 0);
        strs[j] = s.ptr;
        lens[j] = (size_t)s.len;
    }
    int rc = eng_gguf_writer_set_arr_strn(w, kv->key, strs, lens, kv->arr_len, err);
    free(strs);
    free(lens);
    return rc;
}

static void copy_keys(const eng_gguf *g, eng_gguf_writer *w, const tu_edit *ed, int n)
{
    eng_err e = {0};
    for (int64_t i = 0; i < eng_gguf_kv_count(g); i++) {
        const char *key = eng_gguf_kv_at(g, i)->key;
        const tu_edit *set = find_edit(ed, n, TU_SET_U32, key);
        if (find_edit(ed, n, TU_DROP_KEY, key))
            continue;
        REQUIRE_MSG((set ? eng_gguf_writer_set_u32(w, key, set->value, &e)
                         : copy_kv(g, i, w, &e)) == 0, "%s", e.msg);
    }
    for (int i = 0; i < n; i++)
        if (ed[i].kind == TU_SET_U32 && eng_gguf_find_key(g, ed[i].name) < 0)
            REQUIRE_MSG(eng_gguf_writer_set_u32(w, ed[i].name, ed[i].value, &e) == 0, "%s",
                        e.msg);
}

/* tu_gguf_edit, and tensors taken from `from_path` where it has them. */
static const char *edit_copy(const char *src, const char *dst_name, const tu_edit *ed, int n,
                             const char *from_path)
{
    eng_gguf *g = NULL, *from = NULL;
    eng_gguf_writer *w = NULL;
    eng_err e = {0};
    const char *dst = tst_path(dst_name);
    REQUIRE_MSG(eng_gguf_open(&g, src, &e) == 0, "%s", e.msg);
    if (from_path)
        REQUIRE_MSG(eng_gguf_open(&from, from_path, &e) == 0, "%s", e.msg);
    REQUIRE_MSG(eng_gguf_writer_open(&w, dst, &e) == 0, "%s", e.msg);
    copy_keys(g, w, ed, n);
    int64_t nt = eng_gguf_tensor_count(g);
    int64_t *ne1 = calloc((size_t)nt + 1, sizeof *ne1);
    REQUIRE(ne1);
    for (int64_t i = 0; i < nt; i++) {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
        const tu_edit *shape = find_edit(ed, n, TU_SET_NE1, t->name);
        ne1[i] = -1;
        if (find_edit(ed, n, TU_DROP_TENSOR, t->name))
            continue;
        if (from && eng_gguf_find_tensor(from, t->name))
            t = eng_gguf_find_tensor(from, t->name);
        int64_t ne[4] = {t->ne[0], shape ? shape->value : t->ne[1], t->ne[2], t->ne[3]};
        ne1[i] = ne[1];
        REQUIRE_MSG(eng_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims < 2 && shape ? 2
                                               : t->n_dims, ne, NULL, &e) == 0, "%s", e.msg);
    }
    REQUIRE_MSG(eng_gguf_writer_write_header(w, &e) == 0, "%s", e.msg);
    for (int64_t i = 0; i < nt; i++) {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
        if (ne1[i] < 0)
            continue;
        if (from && eng_gguf_find_tensor(from, t->name))
            t = eng_gguf_find_tensor(from, t->name);
        /* rows of the new shape: as many of the old ones as fit, then zeros */
        uint64_t want = t->row_bytes * (uint64_t)ne1[i] * (uint64_t)t->ne[2] * t->ne[3];
        unsigned char *buf = calloc(want + 1, 1);
        REQUIRE(buf);
        memcpy(buf, t->data, want < t->nbytes ? want : t->nbytes);
        REQUIRE_MSG(eng_gguf_writer_append(w, buf, want, &e) == 0, "%s", e.msg);
        free(buf);
    }
    REQUIRE_MSG(eng_gguf_writer_finish(w, &e) == 0, "%s", e.msg);
    eng_gguf_writer_free(w);
    eng_gguf_free(g);
    eng_gguf_free(from);
    free(ne1);
    return dst;
}

const char *tu_gguf_edit(const char *src, const char *dst_name, const tu_edit *ed, int n)
{
    return edit_copy(src, dst_name, ed, n, NULL);
}

const char *tu_gguf_with_tensors(const char *src, const char *dst_name, const char *from)
{
    return edit_copy(src, dst_name, NULL, 0, from);
}

void tu_open_fails(const char *src, const tu_edit *edits, int n, int code, const char *needle)
{
    const char *path = tu_gguf_edit(src, "bad.gguf", edits, n);
    eng_model *m = NULL;
    eng_err e = {0};
    int rc = eng_model_open(&m, path, NULL, &e);
    CHECK_MSG(rc == code, "%s: code %d, expected %d (%s)", needle, rc, code, e.msg);
    CHECK_CONTAINS(e.msg, needle);
    eng_model_free(m);
}
