/*
 * harness/probe/ — what the engine commands attach to a run: the
 * measuring options of `generate` (routing trace, region counters; the one
 * hook table that forwards the engine's callbacks, probe.c), the
 * offloading options (tiered store, policies, prefetch; offload_opts.c),
 * eviction policies written in Lua (lua_policy.c) and the real-engine mode
 * of `bench-counters` (bench_counters_engine.c). Prefix hx_probe_.
 */
#ifndef HX_PROBE_H
#define HX_PROBE_H

#include "engine/err.h"
#include "engine/hooks.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/store_tiered.h"
#include "metrics/counters.h"
#include "metrics/trace.h"

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- probe ---------------- */
/*
 * The measuring options of `moebench generate`: --trace FILE
 * (capture the run's routing), --trace-label TEXT, --events LIST /
 * --events-preset NAME [--multiplex] (per-region counters), and the one
 * hook table that forwards the engine's callbacks to every user: the trace
 * writer, the region counters and the offloading options' own hooks
 * (harness/probe/probe.h), so they can all be on at once.
 *
 * cmd_generate.c appends HX_PROBE_LONGOPTS to its option table, hands codes
 * HX_PROBE_BASE.. to hx_probe_parse, calls hx_probe_open after
 * hx_probe_offload_open (which wraps the hooks that call returned),
 * hx_probe_finish after the run, hx_probe_json / hx_probe_print for the
 * report, and hx_probe_free after the session and the offloading store
 * are freed (the store's loader threads may still call hooks until it shuts
 * down); the probe frees the regions, then the counters.
 *
 * Region table: covers DECODE only. The table is reset when the prompt's
 * last token is closed (after the first sampling), so prefill's batched
 * regions do not swamp the per-token figures. Token records are closed
 * after the sampling that follows a forward pass (the engine signals
 * token_done before sampling; the probe holds the signal until the
 * sampling region ends), so a token's record covers its forward pass and
 * the sampling of the next token, as `decode_ms` does.
 *
 * Thread-safety: one probe per command run; its hooks run on the engine's
 * threads as engine/hooks.h says (the forwarders add no state of their own
 * except the pending-token slot, touched only by the thread that runs the
 * forward pass).
 */

enum {
    HX_PROBE_BASE = 1100,
    HX_PROBE_TRACE = HX_PROBE_BASE, HX_PROBE_LABEL, HX_PROBE_EVENTS, HX_PROBE_PRESET,
    HX_PROBE_MULTIPLEX,
};

#define HX_PROBE_LONGOPTS                                                            \
    {"trace", required_argument, 0, HX_PROBE_TRACE},                                 \
    {"trace-label", required_argument, 0, HX_PROBE_LABEL},                           \
    {"events", required_argument, 0, HX_PROBE_EVENTS},                               \
    {"events-preset", required_argument, 0, HX_PROBE_PRESET},                        \
    {"multiplex", no_argument, 0, HX_PROBE_MULTIPLEX}

/* Lines for the usage text. */
extern const char hx_probe_usage[];

typedef struct hx_probe {
    const char *trace, *label;   /* --trace FILE, --trace-label TEXT          */
    const char *events, *preset; /* --events LIST, --events-preset NAME       */
    bool multiplex;
    int64_t n_prompt;            /* prompt tokens (decode starts after them)  */
    void *writer;                /* met_trace_writer                          */
    char *tmp_path;              /* writer's file when --trace is not .moetrace */
    void *counters;              /* met_counters                              */
    void *regions;               /* met_regions                               */
    const eng_hooks *inner;      /* the offloading options' hooks, or NULL    */
    eng_hooks hooks;             /* the forwarders (user = this probe)        */
    int64_t pending;             /* token_done held until sampling ends; -1 none */
    int64_t routing_events;      /* routing callbacks seen                    */
} hx_probe;

void hx_probe_init(hx_probe *p);
/* One option; returns 0 or the exit code of a usage error (printed). */
int hx_probe_parse(hx_probe *p, int code, const char *arg);
/* Checks combinations after parsing; 0 or a usage exit code. */
int hx_probe_check(const hx_probe *p);
/* True when regions are being measured. */
bool hx_probe_regions_on(const hx_probe *p);
/* Opens the writer / counters / regions the options ask for and makes
 * *hooks the forwarding table when anything needs hooks (else leaves
 * *hooks = inner). Recording changes nothing the engine computes: a
 * batched prompt is recorded per token in position order, and
 * hx_probe_set_prompt notes the batching (a --trace-in replay, which runs
 * the prompt token by token, then knows the trace is not its own kind).
 * Unknown event or preset: exit 2 naming it. Returns 0 or an exit code
 * (error printed). */
int hx_probe_open(hx_probe *p, const eng_model *m, int64_t n_prompt, int64_t *n_batch,
                  const eng_hooks *inner, const eng_hooks **hooks);
/* Records in --trace how the prompt runs (n_prompt tokens in batches of
 * n_batch); no-op without it. 0 or an exit code. */
int hx_probe_set_prompt(hx_probe *p, int64_t n_prompt, int64_t n_batch);
/* The shape of a routing trace of m (--trace, --trace-out): its MoE layers
 * from the first (layer_offset = the dense leading layers), its experts and
 * top-k, with gate weights and token ids. */
met_trace_info hx_probe_trace_shape(const eng_model *m);
/* After the run: closes the last token record and the trace (converted to
 * the format of --trace's extension). 0 or an exit code. */
int hx_probe_finish(hx_probe *p);
/* Adds "regions" (the region table) and "trace" ({path, label, events}) to
 * root when on. */
void hx_probe_json(const hx_probe *p, json_t *root);
/* The region table and the trace line on f when on. */
void hx_probe_print(const hx_probe *p, FILE *f);
/* Frees regions, then counters, then an unfinished writer. Call after the
 * session and the store are freed. */
void hx_probe_free(hx_probe *p);

/* ---- offload_opts ---------------- */
/*
 * The expert-offloading options of `moebench generate`
 * (--policy, --cache-experts/--cache-mb, --tier, --link, --prefetch,
 * --trace-in/--trace-out, ...): parsing, opening the tiered store
 * (engine/store_tiered.h) and reporting its statistics (text and JSON).
 * docs/offloading.md and docs/cli.md describe the options.
 *
 * cmd_generate.c appends HX_PROBE_OFFLOAD_LONGOPTS to its option table, hands
 * every code >= HX_PROBE_OFF_BASE to hx_probe_offload_parse, calls hx_probe_offload_open
 * before opening the session, hx_probe_offload_report afterwards, and
 * hx_probe_offload_free at the end.
 *
 * Thread-safety: one context per command run.
 */

enum {
    HX_PROBE_OFF_BASE = 1000,
    HX_PROBE_OFF_POLICY = HX_PROBE_OFF_BASE, HX_PROBE_OFF_CACHE_EXPERTS, HX_PROBE_OFF_CACHE_MB, HX_PROBE_OFF_SCOPE,
    HX_PROBE_OFF_TIER, HX_PROBE_OFF_LINK, HX_PROBE_OFF_LINK_GBPS, HX_PROBE_OFF_LINK_LAT, HX_PROBE_OFF_PREFETCH,
    HX_PROBE_OFF_TRACE_IN, HX_PROBE_OFF_TRACE_OUT, HX_PROBE_OFF_LOOKAHEAD, HX_PROBE_OFF_NO_DIRECT, HX_PROBE_OFF_LOADERS,
    HX_PROBE_OFF_FILE, HX_PROBE_OFF_WARM, HX_PROBE_OFF_PROFILE, HX_PROBE_OFF_PREGATE_AHEAD, HX_PROBE_OFF_PREGATE_WRAP,
    HX_PROBE_OFF_LINK_COPY, HX_PROBE_OFF_PREDICT_KIND, HX_PROBE_OFF_PREDICT_N,
    HX_PROBE_OFF_EXPERT_SUBSET,
    HX_PROBE_OFF_LOW_PRECISION, HX_PROBE_OFF_LP_RULE, HX_PROBE_OFF_HOBBIT_WEIGHTS,
    HX_PROBE_OFF_PREGATE_ADAPTIVE, HX_PROBE_OFF_PREFETCH_CORRECT,
};

#define HX_PROBE_OFFLOAD_LONGOPTS                                                          \
    {"policy", required_argument, 0, HX_PROBE_OFF_POLICY},                                 \
    {"cache-experts", required_argument, 0, HX_PROBE_OFF_CACHE_EXPERTS},                   \
    {"cache-mb", required_argument, 0, HX_PROBE_OFF_CACHE_MB},                             \
    {"cache-scope", required_argument, 0, HX_PROBE_OFF_SCOPE},                             \
    {"tier", required_argument, 0, HX_PROBE_OFF_TIER},                                     \
    {"link", required_argument, 0, HX_PROBE_OFF_LINK},                                     \
    {"link-gbps", required_argument, 0, HX_PROBE_OFF_LINK_GBPS},                           \
    {"link-latency-us", required_argument, 0, HX_PROBE_OFF_LINK_LAT},                      \
    {"prefetch", required_argument, 0, HX_PROBE_OFF_PREFETCH},                             \
    {"trace-in", required_argument, 0, HX_PROBE_OFF_TRACE_IN},                             \
    {"trace-out", required_argument, 0, HX_PROBE_OFF_TRACE_OUT},                           \
    {"lookahead", required_argument, 0, HX_PROBE_OFF_LOOKAHEAD},                           \
    {"no-direct", no_argument, 0, HX_PROBE_OFF_NO_DIRECT},                                 \
    {"loaders", required_argument, 0, HX_PROBE_OFF_LOADERS},                               \
    {"expert-file", required_argument, 0, HX_PROBE_OFF_FILE},                             \
    {"cache-warm", no_argument, 0, HX_PROBE_OFF_WARM},                                     \
    {"profile", required_argument, 0, HX_PROBE_OFF_PROFILE},                               \
    {"pregate-ahead", required_argument, 0, HX_PROBE_OFF_PREGATE_AHEAD},                   \
    {"pregate-wrap", no_argument, 0, HX_PROBE_OFF_PREGATE_WRAP},                           \
    {"link-copy", required_argument, 0, HX_PROBE_OFF_LINK_COPY},                           \
    {"predict-kind", required_argument, 0, HX_PROBE_OFF_PREDICT_KIND},                     \
    {"predict-n", required_argument, 0, HX_PROBE_OFF_PREDICT_N},                           \
    {"expert-subset", required_argument, 0, HX_PROBE_OFF_EXPERT_SUBSET},                   \
    {"low-precision", required_argument, 0, HX_PROBE_OFF_LOW_PRECISION},                   \
    {"lp-rule", required_argument, 0, HX_PROBE_OFF_LP_RULE},                               \
    {"hobbit-weights", required_argument, 0, HX_PROBE_OFF_HOBBIT_WEIGHTS},                 \
    {"pregate-adaptive", required_argument, 0, HX_PROBE_OFF_PREGATE_ADAPTIVE},             \
    {"prefetch-correct", no_argument, 0, HX_PROBE_OFF_PREFETCH_CORRECT}

/* Lines for the usage text. */
extern const char hx_probe_offload_usage[];

/* A mixed-precision rule (--lp-rule; docs/policies.md, "Mixed precision"). */
typedef struct hx_probe_lp_rule {
    double threshold;            /* hobbit:T: T; 0 none                    */
    bool last;                   /* hobbit:last                            */
    bool all;                    /* all                                    */
    double edgemoe;              /* edgemoe:Q: Q; -1 none                  */
} hx_probe_lp_rule;
/* Parses RULE (hobbit:T, hobbit:last, hobbit:T,last, all, edgemoe:Q);
 * 0 or a usage exit code (printed, naming cmd). */
int hx_probe_lp_rule_parse(const char *cmd, const char *arg, hx_probe_lp_rule *out);
/* Experts always low for the rule (all, edgemoe) into out[L * E]:
 * edgemoe from counts[L * E] (a profile); false when the rule has none. */
bool hx_probe_lp_rule_map(const hx_probe_lp_rule *r, const uint64_t *counts, int L, int E,
                          uint8_t *out);

/* --hobbit-weights R,F,H,D (the hobbit policy's weights of recency,
 * frequency, high-precision share and layer nearness; docs/policies.md):
 * four numbers >= 0, not all 0, into w[4]; 0 or a usage exit code. */
int hx_probe_hobbit_weights_parse(const char *cmd, const char *arg, double w[4]);

typedef struct hx_probe_offload {
    const char *cmd;             /* command named in messages: "generate"
                                    (init); perplexity sets its own      */
    eng_tiered_opts o;
    bool cache_set;              /* --cache-experts or --cache-mb given: offloading on */
    bool link_set;
    bool pregate_set;            /* --pregate-ahead or --pregate-wrap given */
    bool hobbit_w_set;           /* --hobbit-weights given                  */
    const char *trace_in, *trace_out;
    int32_t *plan_ids;           /* [tokens][L][k] from --trace-in          */
    eng_routing_plan plan;
    void *writer;                /* met_trace_writer for --trace-out        */
    eng_hooks hooks;             /* routing -> writer                       */
    eng_store *store;            /* the tiered store, NULL when off         */
    int64_t n_prompt;            /* prompt tokens: stalls before/after them  */
    uint64_t prompt_stall_ns;    /* stall when the prompt's last token finished */
    uint64_t prompt_load_ns;     /* loader time by then (loads finished)    */
    uint64_t prompt_hits, prompt_accesses; /* ... and the counts by then    */
    bool prompt_done;
    struct hx_probe_lua_policy *lua;   /* --policy lua:FILE, NULL otherwise       */
    const char *profile_path;    /* --profile TRACE for the static policy   */
    uint64_t *profile;           /* [L * E] its access counts               */
    const char *predictor_path;  /* --prefetch predict:FILE                 */
    bool predict_set;            /* --predict-kind or --predict-n given     */
    struct eng_predictor *predictor; /* loaded from predictor_path          */
    const char *subset_path;     /* --expert-subset FILE (PreMoe)           */
    uint8_t *keep;               /* [L * E] its mask, NULL without one      */
    int kept_min, kept_max;      /* experts kept per layer (min, max)       */
    const char *lp_path;         /* --low-precision FILE (a companion)      */
    const char *lp_rule;         /* --lp-rule RULE as given                 */
    hx_probe_lp_rule lp_r;       /* ... parsed                              */
    struct eng_lowprec *lp;      /* the companion, opened with the store    */
    uint8_t *lp_always;          /* [L * E] for eng_tiered_opts.lp_always   */
} hx_probe_offload;

void hx_probe_offload_init(hx_probe_offload *x);
/* Whether the model should be opened with eng_model_opts.private_dense:
 * offloading with the file tier (only the store's pread then reads the
 * file after open, so a shrinking file is ENG_EIO, not SIGBUS). */
bool hx_probe_offload_private_dense(const hx_probe_offload *x);
/* One option; returns 0 or the exit code of a usage error (printed). */
int hx_probe_offload_parse(hx_probe_offload *x, int code, const char *arg);
/* Checks combinations after parsing; 0 or a usage exit code. */
int hx_probe_offload_check(hx_probe_offload *x);
/* Opens what the options ask for: the store (*store, NULL when no cache
 * option was given) and the hooks (*hooks: the trace writer's routing and
 * a token_done that splits stall time into prompt and decode; NULL when
 * neither is needed).
 * Forces *n_batch = 1 with --trace-in (per-token accesses; says so on
 * stderr). seed: the random policy's. Returns 0 or an exit code (error
 * printed). */
int hx_probe_offload_open(hx_probe_offload *x, const eng_model *m, uint64_t seed, int64_t n_prompt,
                    int64_t *n_batch, eng_store **store, const eng_hooks **hooks);
/* The --expert-subset mask for eng_session_opts.expert_keep ([L * E], 1 =
 * routable), loaded by hx_probe_offload_open; NULL without the option. */
const uint8_t *hx_probe_offload_keep(const hx_probe_offload *x);
/* Records in --trace-out how the prompt runs (n_prompt tokens in batches
 * of n_batch, the session's); no-op without it. 0 or an exit code. */
int hx_probe_offload_set_prompt(hx_probe_offload *x, int64_t n_prompt, int64_t n_batch);
/* Finishes --trace-out; 0 or an exit code. */
int hx_probe_offload_finish(hx_probe_offload *x);
/* Adds "cache" (with "layers") and top-level "accesses", "hits", "misses"
 * to root; decode_ms [n] for the latency percentiles. No-op when off. */
void hx_probe_offload_json(const hx_probe_offload *x, json_t *root, const double *decode_ms, int64_t n);
/* Human-readable statistics to f (stall share of prefill_ms + the decode
 * times). No-op when off. */
void hx_probe_offload_print(const hx_probe_offload *x, FILE *f, const double *decode_ms, int64_t n,
                      double prefill_ms);
void hx_probe_offload_free(hx_probe_offload *x);

/* ---- lua_policy ---------------- */
/*
 * Eviction policies written in Lua (`--policy lua:FILE.lua`),
 * registered through the engine's own policy interface (engine/policy.h).
 *
 * The engine stays free of Lua: this bridge is an eng_policy_ops table whose
 * callbacks call into a Lua state. Every policy instance (one per layer with
 * a per-layer cache) gets its own lua_State, so instances share nothing.
 *
 * The file returns a factory: function(cfg) -> methods, where cfg is
 * {capacity = N, n_keys = K, seed = S} and, when the caller set the
 * context (generate and simulate do), n_layers, n_experts, top_k, scope
 * ("global" | "layer"), first_layer, layer (per-layer scope: this
 * instance's layer) and helpers cfg.layer_of(key), cfg.expert_of(key),
 * cfg.token_of(pos), cfg.layer_at(pos). methods is a table of plain
 * functions (closures; not called with self):
 *   victim(candidates) -> key   required: one of the candidates (the resident,
 *                               unpinned keys, in no particular order)
 *   access(key, pos, hit)       optional: every demand access, first
 *   insert(key, pos)            optional: key became resident
 *   evict(key)                  optional: key left the cache
 *   admit(key) -> boolean       optional: false = serve without caching
 *   reset()                     optional: a new sequence starts, cache empty
 * docs/policies.md ("Policies in Lua") has an example and the overhead.
 *
 * A Lua error in a callback becomes the instance's sticky error, naming
 * the callback (engine/policy.h, "Errors"): the run stops with it. print()
 * writes to stderr, so `--json` output stays clean.
 *
 * Thread-safety: a loaded policy may be opened by several handles; each
 * handle (instance) belongs to one thread.
 */

typedef struct hx_probe_lua_policy hx_probe_lua_policy;

/* Loads and checks FILE (it must compile, return a factory, and the factory
 * must return a table with a victim function for a small test config).
 * Errors: ENG_EIO (unreadable), ENG_EINVAL (Lua error, wrong shape), with
 * the file name and Lua's message. */
int hx_probe_lua_policy_load(hx_probe_lua_policy **out, const char *path, eng_err *err);
void hx_probe_lua_policy_free(hx_probe_lua_policy *lp);

/* The ops table and the user pointer to pass as eng_policy_config.user
 * (eng_policy_open_ops). Valid until hx_probe_lua_policy_free. */
const eng_policy_ops *hx_probe_lua_policy_ops(const hx_probe_lua_policy *lp);
void *hx_probe_lua_policy_user(hx_probe_lua_policy *lp);

/* The shape the policy's instances serve; instances are created layer by
 * layer (first_layer, first_layer + 1, ...) with a per-layer scope. */
typedef struct hx_probe_lua_ctx {
    int n_layers;        /* MoE layers the cache covers                    */
    int n_experts;       /* experts per layer                              */
    int top_k;           /* experts per token and layer                    */
    int per_layer;       /* 1: one instance per layer (scope layer)        */
    int first_layer;     /* the first layer's number (simulate --layer L)  */
} hx_probe_lua_ctx;
/* Sets the context for the instances created from now on. */
void hx_probe_lua_policy_context(hx_probe_lua_policy *lp, const hx_probe_lua_ctx *ctx);

/* "lua:PATH" -> PATH, anything else -> NULL. */
const char *hx_probe_lua_policy_path(const char *policy_arg);

/* ---- bench_counters_engine ---------------- */
/*
 * The real-engine mode of `moebench
 * bench-counters` (--model FILE): each decode step timed twice on
 * identical work, region counters on and off (see the .c file).
 */

typedef struct hx_probe_bce_opts {
    const char *model;       /* GGUF file                                   */
    int64_t steps;           /* decode steps, each timed on and off          */
    int64_t prompt;          /* prompt tokens evaluated first (not timed)    */
    int threads;             /* engine threads; 1 makes CPU time meaningful  */
    bool prefault;           /* map the whole file first                     */
    bool progress;           /* a progress line on stderr                    */
    bool no_coalesce;        /* read at every boundary (met_regions_opts)    */
} hx_probe_bce_opts;

typedef struct hx_probe_bce_result {
    double cpu_ratio, cpu_lo, cpu_hi;    /* median on/off thread-CPU ratio, 95 % CI */
    double wall_ratio, wall_lo, wall_hi; /* the same for wall time                 */
    double cpu_ms_off, cpu_ms_on;        /* median token thread CPU time, ms       */
    double pairs_per_token;              /* region begin/end pairs per hooked token */
    double readings_per_token;           /* full counter readings per hooked token  */
    int64_t mismatches;                  /* steps whose on/off logits differed (0)  */
    int32_t *prompt;                     /* [n_prompt] the prompt used (malloc'd)   */
    int64_t n_prompt;
    int32_t *generated;                  /* [n_generated] greedy tokens (malloc'd)  */
    int64_t n_generated;
} hx_probe_bce_result;

/* Opens the model, evaluates the prompt, then decodes `pairs` greedy
 * tokens, each twice at the same position (rewinding in between), once
 * with the region hooks of counter set c and once without, and fills r.
 * Free r with hx_probe_bce_result_free (also after an error). */
int hx_probe_bce_run(const hx_probe_bce_opts *o, met_counters *c, hx_probe_bce_result *r, eng_err *err);
void hx_probe_bce_result_free(hx_probe_bce_result *r);

#endif
