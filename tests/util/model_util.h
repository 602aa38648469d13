/*
 * model_util.h — model files for the tests: the mkmodel presets, and
 * a small hand-built llama (dense or with experts) written with the GGUF
 * writer, with knobs to break it (missing tensor, wrong shape, unknown
 * architecture, missing key).
 */
#ifndef TST_MODEL_UTIL_H
#define TST_MODEL_UTIL_H

#include "engine/model.h"

#include <stdint.h>

/* Writes preset (e.g. "tiny-olmoe") in type ("f32", "q8_0", ...) to
 * tst_path(name) and returns the path; REQUIREs success. */
const char *tu_write_preset(const char *preset, const char *type, const char *name);
/* The same with a seed and router locality of one's own. */
const char *tu_write_model(const char *preset, const char *type, uint64_t seed,
                           double locality, const char *name);

typedef struct tu_llama_opts {
    const char *arch;          /* default "llama"                          */
    int n_expert;              /* 0: dense FFN                             */
    const char *skip;          /* tensor name to leave out                 */
    const char *bad;           /* tensor name whose ne[1] is halved        */
    const char *skip_key;      /* metadata key suffix to leave out         */
    const char *set_key;       /* metadata key suffix to give set_value    */
    uint32_t set_value;
    int type;                  /* ggml type of the matrices (0 f32, 1 f16) */
} tu_llama_opts;

/* n_embd 64, 2 layers, 4 heads / 2 kv heads (hd 16), n_ff 96, vocab 128,
 * k = 2 when n_expert > 0; output.weight present; no tokenizer. */
const char *tu_write_llama(const char *name, const tu_llama_opts *o);

/* Opens path; REQUIREs success. */
eng_model *tu_open(const char *path);

/* A session on m (n_batch 0: the default); REQUIREs success. */
struct eng_session *tu_session(const eng_model *m, int threads, int64_t n_ctx, int64_t n_batch);

/* The logits [n][n_vocab] after each of toks decoded one by one, one
 * thread, in a block from tst_alloc. */
float *tu_decode_all(const char *path, const int32_t *toks, int n);

/* max_i |a_i - b_i| / max(1, max_i |b_i|) over n floats. */
double tu_max_diff(const float *a, const float *b, int64_t n);

#endif
