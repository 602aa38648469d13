/*
 * simulate.h — the replay simulator: a routing trace through an eviction
 * policy (engine/policy.h, the same code the engine's expert store runs),
 * an optional oracle prefetcher and a cost model, giving hit rate, bytes
 * moved, stall time and tokens/s. docs/simulate.md is the user's guide;
 * the definitions below are the contract.
 *
 * Replay order: sample by sample; each sample starts with an empty cache
 * (every policy instance is reset). Inside a sample, token by token, layer
 * by layer, router order. One (token, layer) is a *unit*. A sample whose
 * prompt ran batched (met_trace_prompt, recorded by `generate --trace`)
 * replays that prompt as the engine's store saw it, with prompt RECORDED
 * (the default): chunk by chunk, layer by layer, each expert the chunk
 * routes to once in ascending id, compute for every (token, slot) pair;
 * then its other tokens as units. Only SEQUENTIAL look-up without oracle
 * policies or prefetch can: otherwise the prompt replays token by token
 * and the result says why (prompt_note).
 *
 * Scope: GLOBAL is one pool of N = cache_experts slots over every
 * (layer, expert), key = layer * E + expert (the paper's model-wide trace);
 * LAYER is N slots per layer, one policy instance per layer, key = expert.
 *
 * Lookup: TOKEN is the paper's procedure (reference: lrc-metrics.md, steps
 * 1-2): all accesses of a token (GLOBAL: every layer of it; LAYER: the k of
 * one layer) are first looked up against the cache as it stood, then loaded
 * one by one in order; an access that hit in the look-up but was evicted by
 * an earlier access of the same token is loaded again and still counts as a
 * hit (a *reload*, it moves bytes). SEQUENTIAL is the engine's way: each
 * access is looked up and, on a miss, loaded before the next is looked up.
 *
 * Start: WARM counts the first access of a sample to a key that is not
 * resident as a hit moving no bytes when the policy admits the key and the
 * cache still has a free slot (for every policy but static: the first N
 * distinct keys of the sample, the paper's warm start); COLD counts it as a
 * miss.
 *
 * Cost model (times in microseconds; one serial link, one compute stream):
 *   load = link_latency_us + expert_bytes / (link_gbps * 1e3)  [GB/s = 1e9 B/s]
 *   per unit: (a) each access in order: a hit costs nothing (a prefetched
 *   expert still in flight waits for its arrival); a miss or reload starts a
 *   load when the link is free and the unit waits for it (stall); (b) with
 *   prefetch ORACLE, loads of the next unit's experts (the next layer, or
 *   layer 0 of the next token of the sample) that are not resident are
 *   issued on the link, with this unit's experts pinned; with prefetch
 *   PREDICT the same for the experts a predictor (engine/predict.h) names
 *   for the next unit from this unit's experts (and the next unit's layer
 *   at the previous token), exactly as the engine's store asks it; (c) compute:
 *   k * compute_us.
 *   time = compute + stall; tokens_per_s = tokens / time; the link time not
 *   spent stalled (link_busy - stall) is hidden behind compute: overlap_us.
 *   A prefetched expert is useful when its demand access finds it resident,
 *   wasted when it is evicted before that or never demanded.
 *
 * Thread-safety: met_sim_run is re-entrant; results are plain data.
 */
#ifndef MET_SIMULATE_H
#define MET_SIMULATE_H

#include "engine/err.h"
#include "engine/policy.h"
#include "metrics/trace.h"

#include <stdint.h>

typedef enum met_sim_scope { MET_SIM_SCOPE_LAYER = 0, MET_SIM_SCOPE_GLOBAL } met_sim_scope;
typedef enum met_sim_lookup { MET_SIM_LOOKUP_SEQUENTIAL = 0, MET_SIM_LOOKUP_TOKEN } met_sim_lookup;
typedef enum met_sim_start { MET_SIM_START_COLD = 0, MET_SIM_START_WARM } met_sim_start;
typedef enum met_sim_prefetch {
    MET_SIM_PREFETCH_NONE = 0,
    MET_SIM_PREFETCH_ORACLE,
    MET_SIM_PREFETCH_PREDICT,
} met_sim_prefetch;
typedef enum met_sim_prompt { MET_SIM_PROMPT_RECORDED = 0, MET_SIM_PROMPT_TOKENS } met_sim_prompt;

typedef struct met_sim_config {
    const char *policy;          /* built-in name (engine/policy.h registry)  */
    const eng_policy_ops *ops;   /* or any ops table; overrides `policy`      */
    void *ops_user;              /* eng_policy_config.user for `ops`          */
    int64_t cache_experts;       /* N >= 1: per layer (LAYER) or total        */
    met_sim_scope scope;
    met_sim_lookup lookup;
    met_sim_start start;
    met_sim_prefetch prefetch;   /* ORACLE, PREDICT need lookup SEQUENTIAL   */
    const struct eng_predictor *predictor; /* PREDICT: engine/predict.h, of the
                                    trace's shape; all layers replayed      */
    int predict_kind;            /* PREDICT: eng_predict_kind                 */
    int predict_n;               /* PREDICT: experts per unit; 0: top-k       */
    met_sim_prompt prompt;       /* RECORDED: batched prompts as they ran;
                                    TOKENS: every token as a unit             */
    int32_t layer;               /* replay only this layer (the model's number:
                                    trace layer + layer_offset); -1 = all     */
    int lookahead;               /* fsf: L tokens (>= 1)                      */
    uint64_t seed;               /* random; instance i uses seed + i          */
    int64_t lfu_age;             /* lfu aging (0 = none)                      */
    double hobbit_w[4];          /* hobbit weights (engine/policy.h); 0: 1 each */
    const met_trace *profile;    /* static: counts from it; NULL = the replayed trace */
    double expert_bytes;         /* bytes per expert, > 0                     */
    double link_gbps;            /* link bandwidth, GB/s (1e9 bytes/s), > 0   */
    double link_latency_us;      /* per load, >= 0                            */
    double compute_us;           /* per expert access (layer-expert), >= 0    */
    /* Mixed precision, as the engine's store (engine/store_tiered.h): on
     * when lp_bytes > 0 (lookup SEQUENTIAL, start COLD). A demand miss
     * loads a low copy of lp_bytes when the access's gate weight (the
     * trace's; needed) is below lp_threshold, or with lp_last when it
     * ranks last of the top-k, or when lp_always marks the expert; a
     * prefetch when lp_always marks it. A resident low copy serves only
     * such accesses: another drops it (an eviction, lp_upgrades) and
     * misses. A batched prompt's chunk accesses carry no weights: only
     * lp_always applies there, as in the engine. */
    double lp_bytes;             /* bytes of a low copy; 0: off               */
    double lp_threshold;         /* >= 0; 0: no weight rule                   */
    int lp_last;
    const uint8_t *lp_always;    /* [num_layers * num_experts] of the trace,
                                    layer-major; may be NULL                  */
} met_sim_config;

/* Counts for the whole replay or one layer. hits + misses = accesses;
 * warm_hits and reloads are among the hits; uncached are among the misses
 * (served without caching: static). bytes_moved = (misses + reloads +
 * prefetch_issued - lp_loads) * expert_bytes + lp_loads * lp_bytes. */
typedef struct met_sim_counts {
    int64_t accesses, hits, misses;
    int64_t warm_hits;           /* first accesses counted as hits (WARM)     */
    int64_t reloads;             /* TOKEN: hit in look-up, loaded again       */
    int64_t uncached;            /* misses the policy did not admit           */
    int64_t evictions;
    int64_t prefetch_issued, prefetch_useful, prefetch_wasted;
    int64_t prefetch_dropped;    /* no evictable slot (all pinned)            */
    int64_t predicted;           /* PREDICT: experts predicted for units that
                                    ran (counted at the predicted unit)      */
    int64_t predicted_used;      /* ... used by that unit                     */
    int64_t lp_loads;            /* loads of a low copy (demand and prefetch) */
    int64_t lp_served;           /* accesses computed with a low copy         */
    int64_t lp_upgrades;         /* low copy dropped for a high need          */
    double bytes_moved;
    double stall_us;             /* compute waiting for loads                 */
    double hit_rate;             /* hits / accesses (pooled)                  */
    double sample_hit_rate;      /* mean over samples with accesses of the
                                    sample's hits / accesses (the paper's)    */
} met_sim_counts;

typedef struct met_sim_result {
    met_sim_counts total;
    int32_t n_layers;            /* layers replayed                           */
    int32_t first_layer;         /* the model's layer of layers[0] (trace
                                    layer + the trace's layer_offset)         */
    met_sim_counts *layers;      /* [n_layers]                                */
    int64_t n_samples, n_tokens;
    int64_t *sample_hits;        /* [n_samples] hits of each sample (all layers replayed) */
    int64_t *sample_accesses;    /* [n_samples]                               */
    double load_us;              /* one load: latency + bytes / bandwidth     */
    double compute_us;           /* total compute                             */
    double link_busy_us;         /* total link time (demand + prefetch)       */
    double overlap_us;           /* link_busy - stall: loads hidden by compute */
    double time_us;              /* compute + stall                           */
    double tokens_per_s;
    int64_t batched_samples;     /* samples whose prompt replayed in chunks   */
    const char *prompt_note;     /* why a batched prompt replayed token by
                                    token (static text), or NULL              */
} met_sim_result;

/* Fills defaults: lru, N = 1, LAYER, SEQUENTIAL, COLD, no prefetch, all
 * layers, lookahead 1, seed 1, link pcie4x16, expert 12582912 bytes (an
 * OLMoE-1B-7B expert in BF16), compute 50 us. */
void met_sim_config_default(met_sim_config *cfg);

/* Replays t. Errors: ENG_EINVAL for a bad option (names it) or a profile
 * of another shape, ENG_ENOMEM, ENG_ESTATE when a policy misbehaves. */
int met_sim_run(const met_trace *t, const met_sim_config *cfg, met_sim_result **out,
                eng_err *err);
void met_sim_result_free(met_sim_result *r);

/* Link presets: pcie4x16, pcie5x16, nvme, ufs4 (numbers in docs/simulate.md).
 * 0 and the numbers, or ENG_EINVAL for an unknown name. */
int met_sim_link_preset(const char *name, double *gbps, double *latency_us, eng_err *err);
/* Expert-size presets (olmoe-bf16, olmoe-q8_0, qwen3-30b-a3b-q8_0,
 * mixtral-q4_k) -> bytes; 0 or ENG_EINVAL. */
int met_sim_expert_preset(const char *name, double *bytes, eng_err *err);
/* Lists the presets, one "name  description" line each, into buf. */
void met_sim_presets_describe(char *buf, size_t size);

const char *met_sim_scope_name(met_sim_scope s);
const char *met_sim_lookup_name(met_sim_lookup l);
const char *met_sim_start_name(met_sim_start s);
const char *met_sim_prefetch_name(met_sim_prefetch p);
const char *met_sim_prompt_name(met_sim_prompt p);

/* The result as one JSON object (jansson): options, totals, layers; a new
 * reference, NULL when out of memory. */
struct json_t;
struct json_t *met_sim_result_json(const met_sim_result *r, const met_sim_config *cfg);

#endif
