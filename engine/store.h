/*
 * store.h — the expert store: the ONE way the forward pass reaches a routed
 * expert's weights.
 *
 * Per layer and token the forward pass does
 *
 *     eng_store_prepare(s, layer, ids, k, pos);      // "these k will be needed"
 *     for each id: eng_store_acquire(s, layer, id, pos, &w[i], err);
 *     ... compute with w[i].mat[ENG_SLICE_GATE], ... (eng_slice_role) ...
 *     for each id: eng_store_release(s, &w[i]);
 *
 * prepare lets a store that keeps experts on a slow tier issue the k loads
 * together (and a prefetcher look ahead); acquire may block until the bytes
 * are in memory: a store that blocks calls the region hooks it was given
 * (eng_store_set_hooks) with ENG_REGION_EXPERT_WAIT around the wait, on the
 * forward pass's thread (nested in EXPERT_FFN), and sets w->waited. An
 * acquired expert stays valid and in place until its release; a store may
 * evict it only after that. Up to eng_store_max_held experts of one layer
 * are held at once (the memory store: all a decode step or a prefill batch
 * uses; the tiered store, engine/store_tiered.h: one, or top-k when it
 * holds every expert and never evicts).
 *
 * An expert's bytes are its slices (gate, up, down, and their biases where
 * the file has them) exactly as stored in the file: expert e of a stacked
 * tensor {ne0, ne1, E} starts at byte e * ne1 * row_bytes of that tensor
 * (eng_expert_locate gives the pointers into the mapping and the absolute
 * file offsets a pread would use). A cache entry is these slices, so a load
 * is pure I/O and a budget counts real bytes.
 *
 * Implementations sit behind one ops table (store_impl.h): the memory
 * store (here: every expert is a pointer into the model's mapping, every
 * acquire a hit, reported as ENG_CACHE_HIT when a cache hook is set) and
 * the tiered store (store_tiered.h: a cache budget, an eviction policy,
 * loads from a slow tier by loader threads, prefetch), behind the same
 * calls.
 *
 * Thread-safety: one thread (the one running the forward pass) calls
 * prepare/acquire/release of a store; a store may run loader threads of its
 * own. Hooks are called on that thread (cache events) or on loader threads
 * (ENG_REGION_EXPERT_LOAD). The model must outlive the store.
 */
#ifndef ENG_STORE_H
#define ENG_STORE_H

#include "engine/err.h"
#include "engine/hooks.h"
#include "engine/model.h"

#include <stdbool.h>
#include <stdint.h>

/* One matrix of one expert, as stored: n_out rows of n_in elements. */
typedef struct eng_expert_mat {
    const void *data;      /* n_out * row_bytes bytes in the stored format  */
    int type;              /* ggml type id (formats.h)                      */
    int64_t n_in;          /* elements per row (ne0)                        */
    int64_t n_out;         /* rows (ne1)                                    */
    uint64_t row_bytes;
    uint64_t file_offset;  /* absolute offset of the slice in the GGUF file */
} eng_expert_mat;

/* The slices of one expert, in this order; an expert has the first
 * n_slices of them (3, or 6 where the file has expert biases). */
typedef enum eng_slice_role {
    ENG_SLICE_GATE = 0,    /* n_in = n_embd, n_out = F                       */
    ENG_SLICE_UP,          /* n_in = n_embd, n_out = F                       */
    ENG_SLICE_DOWN,        /* n_in = F,      n_out = n_embd                  */
    ENG_SLICE_GATE_BIAS,   /* f32, n_in = F, n_out = 1                       */
    ENG_SLICE_UP_BIAS,     /* f32, n_in = F, n_out = 1                       */
    ENG_SLICE_DOWN_BIAS,   /* f32, n_in = n_embd, n_out = 1                  */
    ENG_SLICE_MAX
} eng_slice_role;

typedef struct eng_expert_weights {
    int layer, expert;     /* layer: MoE layer index (0 .. n_layer_moe - 1)  */
    int n_slices;
    eng_expert_mat mat[ENG_SLICE_MAX]; /* [n_slices], by eng_slice_role      */
    uint64_t bytes;        /* all slices' bytes                              */
    bool waited;           /* acquire blocked on a load                      */
    bool miss;             /* set by the store: the access was a miss        */
    bool low;              /* set by the store: the slices are the expert's
                              low-precision copy (engine/lowprec.h)         */
    void *slot;            /* store-private (which cache slot it came from)  */
} eng_expert_weights;

/* Counters every store keeps (the memory store: all hits, no bytes). */
typedef struct eng_store_stats {
    uint64_t acquires;
    uint64_t hits;
    uint64_t misses;
    uint64_t bytes_loaded;  /* bytes moved from a slow tier              */
    uint64_t wait_ns;       /* time acquire blocked                      */
} eng_store_stats;

typedef struct eng_store eng_store;

/* Where expert `expert` of `layer` lives in the model's mapping and file.
 * ENG_EINVAL for a dense model or an index out of range. */
int eng_expert_locate(const eng_model *m, int layer, int expert, eng_expert_weights *out,
                      eng_err *err);

/* The all-in-memory store: pointers into the mapping, nothing copied. */
int eng_store_open_memory(eng_store **out, const eng_model *m, eng_err *err);
void eng_store_free(eng_store *s);

/* Name of the implementation ("memory", ...). */
const char *eng_store_kind(const eng_store *s);
/* The hook table for cache events (copied; NULL clears). */
void eng_store_set_hooks(eng_store *s, const eng_hooks *hooks);

/* Hint: experts ids[0..n) of `layer` will be acquired next, for the token
 * at `pos`. Never fails (a store that cannot start loads now loads them in
 * acquire). */
void eng_store_prepare(eng_store *s, int layer, const int32_t *ids, int n, int64_t pos);
/* The same with the experts' gate weights w[0..n) (router order; may be
 * NULL), for a store that decides per miss from them (mixed precision:
 * store_tiered.h). The forward pass gives them in decode. */
void eng_store_prepare_w(eng_store *s, int layer, const int32_t *ids, const float *w, int n,
                         int64_t pos);
/* Makes expert (layer, expert) readable and fills *out. May block. */
int eng_store_acquire(eng_store *s, int layer, int expert, int64_t pos,
                      eng_expert_weights *out, eng_err *err);
/* Ends the use of an acquired expert; *w is invalid afterwards. */
void eng_store_release(eng_store *s, eng_expert_weights *w);
/* How many experts the caller may hold acquired at once (>= 1; INT_MAX for
 * the memory store). The forward pass acquires, computes and releases the
 * routed experts of a layer in groups of at most this many, in router
 * order; the arithmetic does not depend on the grouping. */
int eng_store_max_held(const eng_store *s);

/* Pre-gating: how many layers ahead the store wants predictions of (0: none;
 * a tiered store with the pregate prefetcher: its pregate_ahead), whether
 * predictions may wrap past the last layer to the first layers of the next
 * token (*wrap; may be NULL), and the hint itself: experts ids[0..n) of
 * `layer` are predicted for the token at pos, with the gate weights w[n]
 * the router gave them (as the forward pass would apply them; w may be
 * NULL). The forward pass computes the predictions in decode only, with
 * buffers of its own, so outputs do not change; at layer l it hints l+1,
 * l+2, ... nearest first, after preparing l, so the store knows which
 * experts the current and the nearer predicted layers still need. The hint
 * returns whether the store wants the next, deeper prediction of this
 * layer's round (false: stop; an adaptive depth, store_tiered.h). */
int eng_store_hint_ahead(const eng_store *s, bool *wrap);
bool eng_store_hint(eng_store *s, int layer, const int32_t *ids, const float *w, int n,
                    int64_t pos);

void eng_store_get_stats(const eng_store *s, eng_store_stats *out);
void eng_store_reset_stats(eng_store *s);

#endif
