/*
 * hooks.h — the engine's only window to the outside: a table of callbacks
 * the harness fills (routing decisions, cache events, region begin/end).
 *
 * The engine knows nothing of PAPI, Lua or SQLite. Every call site is
 *
 *     if (h->routing) h->routing(h->user, &ev);
 *
 * so with no hook set the cost is one predictable branch. Callbacks run on
 * the engine's threads: region hooks on the thread that does the work
 * (worker threads of the forward pass, loader threads for ENG_REGION_LOAD),
 * routing and cache hooks on the thread that runs the forward pass. A hook
 * must not call back into the engine.
 *
 * Regions nest only as documented below; counts are *exclusive*: when
 * EXPERT_WAIT happens inside EXPERT_FFN, the FFN's counts do not include the
 * wait's (the counters module pauses the parent while a child runs).
 */
#ifndef ENG_HOOKS_H
#define ENG_HOOKS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum eng_region {
    ENG_REGION_EMBED = 0,    /* token embedding lookup (+ the token's RoPE table) */
    ENG_REGION_ATTENTION,    /* attn norm, QKV, RoPE, attention, output proj */
    ENG_REGION_ROUTER,       /* ffn norm, router logits, softmax, top-k     */
    ENG_REGION_EXPERT_FFN,   /* routed experts' SwiGLU and weighted sum (a dense
                                layer's FFN, ffn norm included)             */
    ENG_REGION_SHARED_EXPERT,/* qwen2moe shared expert and its gate         */
    ENG_REGION_EXPERT_WAIT,  /* forward pass blocked on an expert load (nested in EXPERT_FFN) */
    ENG_REGION_EXPERT_LOAD,  /* slow-tier read/copy, on a loader thread     */
    ENG_REGION_LM_HEAD,      /* output norm and vocabulary projection       */
    ENG_REGION_SAMPLING,     /* logits -> next token                        */
    /* Parts of the attention region, nested in ATTENTION where an
     * attention implementation reports them (multi-head latent attention
     * does; multi-head attention is one region, kept cheap): */
    ENG_REGION_ATTN_PROJ,    /* input norm, q/latent projections, their norms,
                                RoPE, the KV-cache write                    */
    ENG_REGION_ATTN_LATENT,  /* MLA: k_b into the query and v_b out of the
                                latent (absorbed), or the kv_b decompression
                                of K and V (legacy)                         */
    ENG_REGION_ATTN_CORE,    /* scores, softmax, weighted sum over the cache */
    ENG_REGION_COUNT
} eng_region;

/* Stable lower-case names ("embed", "attention", ...), for tables and the
 * database. */
const char *eng_region_name(eng_region r);

/* One routing decision: the experts a token chose at one layer. */
typedef struct eng_routing_event {
    int layer;               /* MoE layer 0 .. n_layer_moe - 1 (dense layers
                                route nothing and are skipped)              */
    int model_layer;         /* the model's layer index of it               */
    int64_t pos;             /* position of the token in the sequence       */
    int64_t token;           /* token id at that position                   */
    int top_k;
    const int32_t *experts;  /* [top_k] expert ids, router order (descending gate) */
    const float *weights;    /* [top_k] gate weights as applied (after any renormalisation) */
    int is_prefill;          /* 1 inside a prompt batch, 0 in decode        */
} eng_routing_event;

typedef enum eng_cache_event_kind {
    ENG_CACHE_HIT = 0,       /* expert found in the fast tier               */
    ENG_CACHE_MISS,          /* expert had to be loaded on demand           */
    ENG_CACHE_EVICT,         /* expert removed from the fast tier           */
    ENG_CACHE_PREFETCH,      /* load issued ahead of demand                 */
    ENG_CACHE_LOAD_DONE      /* a load finished (ns = its duration)         */
} eng_cache_event_kind;

typedef struct eng_cache_event {
    eng_cache_event_kind kind;
    int layer;
    int expert;
    int64_t pos;             /* token position that caused it               */
    uint64_t bytes;          /* bytes moved (loads), else 0                 */
    uint64_t ns;             /* duration where meaningful, else 0           */
    bool low;                /* HIT, MISS, PREFETCH, LOAD_DONE: the expert's
                                low-precision copy (mixed precision)        */
} eng_cache_event;

typedef struct eng_hooks {
    void *user;              /* passed back to every callback               */
    void (*region_begin)(void *user, eng_region r);
    void (*region_end)(void *user, eng_region r);
    void (*routing)(void *user, const eng_routing_event *ev);
    void (*cache)(void *user, const eng_cache_event *ev);
    /* Called once per generated/evaluated token after its forward pass,
     * with the position; lets the harness close per-token accounting. */
    void (*token_done)(void *user, int64_t pos);
} eng_hooks;

#define ENG_HOOK(h, name, ...)                                               \
    do {                                                                     \
        if ((h) && (h)->name)                                                \
            (h)->name((h)->user, __VA_ARGS__);                               \
    } while (0)

#endif
