/*
 * gguf_edit.h — broken variants of a good GGUF file, for the hostile-file
 * tests of the newer architectures: copy a file (every key, every tensor)
 * with a few edits. The copy goes through the project's GGUF writer, so the
 * result is a well-formed file whose only fault is the edit.
 */
#ifndef TST_GGUF_EDIT_H
#define TST_GGUF_EDIT_H

#include <stdint.h>

typedef enum tu_edit_kind {
    TU_DROP_KEY,      /* leave key `name` out                                */
    TU_SET_U32,       /* key `name` := u32 value (added if absent)           */
    TU_DROP_TENSOR,   /* leave tensor `name` out                             */
    TU_SET_NE1,       /* tensor `name` gets ne[1] = value (data cut or zeros) */
} tu_edit_kind;

typedef struct tu_edit {
    tu_edit_kind kind;
    const char *name;
    uint32_t value;
} tu_edit;

/* Copies src to tst_path(dst_name) with the n edits applied; returns the
 * path. REQUIREs success. */
const char *tu_gguf_edit(const char *src, const char *dst_name, const tu_edit *edits, int n);

/* Copies src to tst_path(dst_name) with every tensor that the GGUF file
 * `from` also holds (by name) taken from `from`: its type, shape and bytes
 * (a model whose experts are a companion's, engine/lowprec.h). */
const char *tu_gguf_with_tensors(const char *src, const char *dst_name, const char *from);

/* Opening src with the n edits applied fails with `code` and a message
 * containing `needle` (CHECKs). */
void tu_open_fails(const char *src, const tu_edit *edits, int n, int code, const char *needle);

#endif
