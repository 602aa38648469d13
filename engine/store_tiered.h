/*
 * store_tiered.h — the tiered expert store: a fast tier of limited size (a
 * cache of expert slots in RAM) in front of a slow tier (the GGUF file read
 * with pread, or an emulated link paced to a bandwidth and latency), with
 * eviction by an engine/policy.h policy, loader threads and prefetchers
 * (oracle from the input's routing, pregate from the forward pass's hint,
 * predict from a predictor learnt from a profile, engine/predict.h).
 * docs/offloading.md describes the behaviour and every statistic.
 *
 *   eng_tiered_opts o = eng_tiered_defaults();
 *   o.policy = "lru"; o.cache_experts = 16; o.tier = ENG_TIER_FILE;
 *   eng_store *st; eng_store_open_tiered(&st, model, &o, &err);
 *   eng_session_open(&s, model, &(eng_session_opts){.store = st}, &err);
 *   ... eng_generate ...;  eng_tiered_get_stats(st, &stats);
 *
 * Semantics the tests rely on:
 *  - Outputs are bit-identical to the memory store: a slot holds the
 *    expert's gate/up/down slices exactly as stored in the file.
 *  - The store serves one expert at a time (eng_store_max_held() == 1): the
 *    forward pass acquires, computes and releases each routed expert in
 *    router order, so a cache of one slot works, and the policy sees the
 *    same demand sequence as the replay simulator with sequential look-up
 *    and a cold start (one access per token, layer and routed expert).
 *    When the cache holds every expert and the policy admits all of them
 *    (nothing is ever evicted), it serves top-k at once: same accesses in
 *    the same order, one compute dispatch per layer.
 *  - A sequence starts when layer 0 is prepared at position 0: the cache is
 *    emptied and the policies reset (cold start), oracle futures restart.
 *  - A batched prefill prepares each layer once with the experts the batch
 *    uses (ascending ids): one access per expert per batch. Oracle policies
 *    and the oracle prefetcher need one access per token: open the session
 *    with n_batch = 1 for them (the CLI does).
 *
 * Thread-safety: as store.h (one forward thread; loader threads are the
 * store's own). eng_tiered_get_stats may be called between calls.
 */
#ifndef ENG_STORE_TIERED_H
#define ENG_STORE_TIERED_H

#include "engine/policy.h"
#include "engine/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum eng_tier { ENG_TIER_FILE = 0, ENG_TIER_LINK } eng_tier;
/* How the link tier moves an expert: copy (memcpy into the slot, paced:
 * never faster than this machine's memcpy) or map (the slot refers to the
 * expert's bytes in the model's mapping, already in RAM; the load only
 * waits until t0 + latency + bytes / bandwidth: exact for links faster
 * than memcpy, but the copy's memory traffic is not there). */
typedef enum eng_link_mode { ENG_LINK_COPY = 0, ENG_LINK_MAP } eng_link_mode;
typedef enum eng_cache_scope { ENG_SCOPE_GLOBAL = 0, ENG_SCOPE_LAYER } eng_cache_scope;
/* none; oracle: the next layer's experts from the routing plan; predict:
 * the next unit's experts as a predictor learnt from a profile says
 * (predict.h; at each prepare of layer l, for layer l + 1 of the token, or
 * layer 0 of the next token after the last layer); pregate:
 * the forward pass's predictions (eng_store_hint: the routers of layers
 * l+1 .. l+pregate_ahead on layer l's hidden state), per-token evaluation
 * only. A prediction never evicts an expert that the current layer or a
 * nearer prediction of the same layer still needs. */
typedef enum eng_prefetch {
    ENG_PREFETCH_NONE = 0,
    ENG_PREFETCH_ORACLE,
    ENG_PREFETCH_PREGATE,
    ENG_PREFETCH_PREDICT
} eng_prefetch;

struct eng_predictor;

/* An emulated link: bandwidth in GB/s (1e9 bytes/s) and per-copy latency. */
typedef struct eng_link_preset {
    const char *name;
    double gbps;
    double latency_us;
    const char *descr;
} eng_link_preset;

/* pcie4x16, pcie5x16, nvme, ufs4 (numbers in docs/offloading.md); NULL if
 * unknown. */
const eng_link_preset *eng_link_preset_find(const char *name);
size_t eng_link_preset_count(void);
const eng_link_preset *eng_link_preset_at(size_t i);

/* Routing of the input the run will see (for oracle policies and the
 * oracle prefetcher): experts[(t * n_layer + l) * top_k + j], router order,
 * for tokens 0..n_tokens-1 of the sequence. Borrowed for the store's life. */
typedef struct eng_routing_plan {
    const int32_t *experts;
    int64_t n_tokens;
    int n_layer, top_k;
} eng_routing_plan;

typedef struct eng_tiered_opts {
    const char *policy;         /* engine/policy.h name; "lru"               */
    const eng_policy_ops *policy_ops; /* or any ops table (a user's C policy,
                                   the harness's Lua bridge); overrides policy */
    void *policy_user;          /* eng_policy_config.user for policy_ops     */
    eng_cache_scope scope;      /* global pool or N per layer                */
    uint32_t cache_experts;     /* slots (per layer with SCOPE_LAYER); 0: use cache_bytes */
    uint64_t cache_bytes;       /* budget in bytes when cache_experts == 0   */
    eng_tier tier;
    const char *file;           /* file tier: GGUF to read from (NULL: the model's path;
                                   another path must hold the same bytes)   */
    bool no_direct;             /* file tier: do not try O_DIRECT            */
    double link_gbps;           /* link tier: > 0                            */
    double link_latency_us;     /* link tier: >= 0                           */
    eng_link_mode link_mode;    /* link tier: copy (default) or map          */
    eng_prefetch prefetch;
    int pregate_ahead;          /* pregate: layers predicted ahead; 0: 1     */
    bool pregate_wrap;          /* pregate: past the last layer, predict the
                                   next token's first layers                 */
    double pregate_adaptive;    /* pregate: 0 off; else C in (0, 1], HOBBIT's
                                   layer-level adaptive depth: at layer l the
                                   prediction of l+d (d >= 2) is made only
                                   while every nearer one of this round was
                                   confident, max w / sum w >= C over its
                                   predicted gate weights                   */
    const eng_routing_plan *plan; /* needed by oracle policies / prefetch    */
    bool prefetch_correct;      /* ExpertFlow's cache correction: when a
                                   layer is prepared with its real routing,
                                   its prefetches still queued (no loader
                                   started them) that the routing does not
                                   use are cancelled: slot and policy entry
                                   freed, no bytes read                      */
    const struct eng_predictor *predictor; /* predict: borrowed (predict.h)  */
    int predict_kind;           /* predict: eng_predict_kind                 */
    int predict_n;              /* predict: experts per unit; 0: top-k       */
    const uint64_t *profile;    /* static policy: [n_layer * n_expert] access
                                   counts of a profile run, layer-major     */
    uint64_t seed;              /* random policy                             */
    int lookahead;              /* fsf                                       */
    double hobbit_w[4];         /* hobbit: weights (policy.h); all 0: 1 each */
    int n_loaders;              /* loader threads; 0: 1                      */
    bool warm;                  /* fill the cache at each sequence start with
                                   experts in (layer, expert) order, counted as
                                   prefetches; not for oracle policies       */
    /* Mixed precision (HOBBIT, EdgeMoE; docs/policies.md): a companion with
     * every expert in a lower precision (engine/lowprec.h, opened against
     * this model) and when a load takes the low copy instead of the
     * model's. A demand miss loads it when the expert's gate weight (as the
     * forward pass applies it, eng_store_prepare_w) is below lp_threshold,
     * or with lp_last when it ranks last of the top-k, or when lp_always
     * marks it; a prefetch when lp_always marks it or, for a pregate hint
     * (which carries the predicted weights), when the same weight rule
     * holds for the predicted weight and rank (HOBBIT's prefetch of
     * less critical experts in low precision). A batched prefill
     * prepares without weights: there only lp_always applies (evaluate per
     * token for the weight rules). A low copy serves
     * an access that would take the low one; an access that needs the high
     * one drops it and misses (lp_upgrades). The budget in bytes counts
     * each expert at the bytes of the copy held. */
    const struct eng_lowprec *lowprec; /* NULL: every load high precision  */
    double lp_threshold;        /* >= 0; 0: no weight rule                  */
    bool lp_last;
    const uint8_t *lp_always;   /* [n_layer * n_expert] layer-major, 1: always
                                   low (an importance profile); may be NULL */
} eng_tiered_opts;

eng_tiered_opts eng_tiered_defaults(void);

/* Errors: ENG_EINVAL for bad options (unknown policy, a budget below one
 * expert, bad link numbers, an oracle without a plan, a dense model),
 * ENG_EIO when the file cannot be opened or is shorter than the model's
 * expert tensors, ENG_ENOMEM. */
int eng_store_open_tiered(eng_store **out, const eng_model *m, const eng_tiered_opts *o,
                          eng_err *err);

/* Counters of one layer (and, summed, of the store). */
typedef struct eng_tiered_counts {
    uint64_t accesses, hits, misses;
    uint64_t pf_issued;         /* prefetch loads started                    */
    uint64_t pf_useful;         /* prefetched expert later demanded          */
    uint64_t pf_late;           /* ... while its load was still running      */
    uint64_t pf_wasted;         /* prefetched expert evicted unused          */
    uint64_t bytes_demand;      /* bytes read for demand misses              */
    uint64_t bytes_prefetch;    /* bytes read by prefetches (not cancelled)  */
    uint64_t evictions;
    uint64_t stall_ns;          /* forward pass blocked waiting for loads    */
    uint64_t load_ns;           /* loader time spent on loads                */
    uint64_t pf_useful_load_ns; /* loader time of the useful prefetches      */
    uint64_t pf_late_stall_ns;  /* ... and how long the forward pass waited
                                   for them (late ones): 1 - this / that is
                                   the share of a right prediction's load
                                   hidden behind compute                    */
    uint64_t pred_made;         /* predict: experts predicted for units that
                                   then ran (a prediction for a unit of the
                                   layer, counted there)                    */
    uint64_t pred_used;         /* ... of them, used by that unit: accuracy =
                                   pred_used / pred_made                    */
    /* mixed precision (opts.lowprec) */
    uint64_t lp_loads;          /* loads of a low-precision copy             */
    uint64_t lp_bytes;          /* ... their bytes (within bytes_demand and
                                   bytes_prefetch)                           */
    uint64_t lp_served;         /* accesses computed with a low copy         */
    uint64_t lp_upgrades;       /* accesses that needed the high copy of an
                                   expert held low: the low one dropped
                                   (counted in evictions), the access a miss */
    uint64_t pf_low;            /* prefetch loads of a low copy (within
                                   pf_issued and lp_loads)                  */
    uint64_t pf_cancelled;      /* prefetch_correct: prefetches cancelled
                                   before their load began (within pf_issued;
                                   their bytes are not in bytes_prefetch)   */
    uint64_t bytes_cancelled;   /* ... the bytes they would have read         */
    uint64_t pg_skipped;        /* pregate_adaptive: layers not predicted
                                   after a prediction that was not confident,
                                   counted at the layer skipped             */
} eng_tiered_counts;

typedef struct eng_tiered_stats {
    eng_tiered_counts total;
    eng_tiered_counts *layers;  /* [n_layer], owned by the store, valid until the next call */
    int n_layer;
    uint32_t slots;             /* slots in all                              */
    uint64_t slot_bytes;        /* bytes one expert takes                    */
    uint64_t cache_bytes;       /* slots * expert bytes; with a companion and a
                                   budget in bytes: the budget               */
    uint64_t held_bytes;        /* bytes of the experts in the cache now     */
    const char *io_mode;        /* "o_direct", "buffered+fadvise", "link" (copy),
                                   "link-map"                                */
    double link_target_ns;      /* link tier: sum of the paced targets       */
    double link_actual_ns;      /* ... and of the achieved copy times        */
} eng_tiered_stats;

/* Snapshot of the counters (waits for nothing). ENG_EINVAL if s is not a
 * tiered store. */
int eng_tiered_get_stats(eng_store *s, eng_tiered_stats *out, eng_err *err);
void eng_tiered_reset_stats(eng_store *s);

/* Copies n bytes from src to dst paced to the link: returns when at least
 * latency + n / bandwidth has passed since the call (spinning/sleeping to
 * the deadline after each chunk). Exposed for the pacing test. Returns the
 * achieved nanoseconds. */
uint64_t eng_link_copy(void *dst, const void *src, uint64_t n, double gbps,
                       double latency_us);
/* The same over n segments moved as one transfer (one latency): an
 * expert's three slices. */
uint64_t eng_link_copy_segs(void *const *dst, const void *const *src, const uint64_t *len,
                            int n, double gbps, double latency_us);
/* A transfer of n bytes that copies nothing (link mode map): returns at
 * t0 + latency + n / bandwidth, t0 being the call. Returns the achieved
 * nanoseconds. */
uint64_t eng_link_wait(uint64_t n, double gbps, double latency_us);

#endif
