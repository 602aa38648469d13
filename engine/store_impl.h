/*
 * store_impl.h — how an expert store implementation plugs in (not public).
 *
 * A store is the common part below plus an ops table. store.c does the
 * argument checks, statistics of acquires and the cache hook calls that
 * every store shares; an implementation does the rest. To add one: write
 * engine/store_NAME.c with an ops table and an eng_store_open_NAME that
 * calls eng_store_init.
 */
#ifndef ENG_STORE_IMPL_H
#define ENG_STORE_IMPL_H

#include "engine/model_impl.h"
#include "engine/store.h"

typedef struct eng_store_ops {
    const char *kind;
    void (*prepare)(eng_store *s, int layer, const int32_t *ids, int n, int64_t pos);
    /* NULL unless the store wants the gate weights: called by
     * eng_store_prepare_w instead of prepare */
    void (*prepare_w)(eng_store *s, int layer, const int32_t *ids, const float *w, int n,
                      int64_t pos);
    /* Fill *out (eng_expert_locate gives the file layout), set out->waited,
     * out->miss and out->slot; count misses/bytes_loaded/wait_ns in
     * s->stats. The front end counts acquires, hits (!out->miss) and emits
     * ENG_CACHE_HIT; the implementation emits the other cache events. */
    int (*acquire)(eng_store *s, int layer, int expert, int64_t pos, eng_expert_weights *out,
                   eng_err *err);
    void (*release)(eng_store *s, eng_expert_weights *w);
    int max_held;                    /* 0: unlimited; copied to eng_store.max_held */
    /* NULL unless the store wants predictions (eng_store_hint): layers
     * ahead (0: none) and whether they wrap to the next token. */
    int (*hint_ahead)(const eng_store *s, bool *wrap);
    bool (*hint)(eng_store *s, int layer, const int32_t *ids, const float *w, int n,
                 int64_t pos);
    void (*destroy)(eng_store *s);   /* frees impl, not s */
} eng_store_ops;

struct eng_store {
    const eng_store_ops *ops;
    const eng_model *m;
    eng_hooks hooks;
    bool has_cache_hook;
    eng_store_stats stats;
    int max_held;                    /* 0: unlimited; an implementation may
                                        change it after eng_store_init     */
    void *impl;
};

void eng_store_init(eng_store *s, const eng_store_ops *ops, const eng_model *m, void *impl);

#endif
