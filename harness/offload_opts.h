/*
 * offload_opts.h — the expert-offloading options of `moebench generate`
 * (--policy, --cache-experts/--cache-mb, --tier, --link, --prefetch,
 * --trace-in/--trace-out, ...): parsing, opening the tiered store
 * (engine/store_tiered.h) and reporting its statistics (text and JSON).
 * docs/offloading.md and docs/cli.md describe the options.
 *
 * cmd_generate.c appends HX_OFFLOAD_LONGOPTS to its option table, hands
 * every code >= HX_OFF_BASE to hx_offload_parse, calls hx_offload_open
 * before opening the session, hx_offload_report afterwards, and
 * hx_offload_free at the end.
 *
 * Thread-safety: one context per command run.
 */
#ifndef HX_OFFLOAD_OPTS_H
#define HX_OFFLOAD_OPTS_H

#include "engine/hooks.h"
#include "engine/model.h"
#include "engine/store_tiered.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum {
    HX_OFF_BASE = 1000,
    HX_OFF_POLICY = HX_OFF_BASE, HX_OFF_CACHE_EXPERTS, HX_OFF_CACHE_MB, HX_OFF_SCOPE,
    HX_OFF_TIER, HX_OFF_LINK, HX_OFF_LINK_GBPS, HX_OFF_LINK_LAT, HX_OFF_PREFETCH,
    HX_OFF_TRACE_IN, HX_OFF_TRACE_OUT, HX_OFF_LOOKAHEAD, HX_OFF_NO_DIRECT, HX_OFF_LOADERS,
    HX_OFF_FILE, HX_OFF_WARM, HX_OFF_PROFILE, HX_OFF_PREGATE_AHEAD, HX_OFF_PREGATE_WRAP,
    HX_OFF_LINK_COPY,
};

#define HX_OFFLOAD_LONGOPTS                                                          \
    {"policy", required_argument, 0, HX_OFF_POLICY},                                 \
    {"cache-experts", required_argument, 0, HX_OFF_CACHE_EXPERTS},                   \
    {"cache-mb", required_argument, 0, HX_OFF_CACHE_MB},                             \
    {"cache-scope", required_argument, 0, HX_OFF_SCOPE},                             \
    {"tier", required_argument, 0, HX_OFF_TIER},                                     \
    {"link", required_argument, 0, HX_OFF_LINK},                                     \
    {"link-gbps", required_argument, 0, HX_OFF_LINK_GBPS},                           \
    {"link-latency-us", required_argument, 0, HX_OFF_LINK_LAT},                      \
    {"prefetch", required_argument, 0, HX_OFF_PREFETCH},                             \
    {"trace-in", required_argument, 0, HX_OFF_TRACE_IN},                             \
    {"trace-out", required_argument, 0, HX_OFF_TRACE_OUT},                           \
    {"lookahead", required_argument, 0, HX_OFF_LOOKAHEAD},                           \
    {"no-direct", no_argument, 0, HX_OFF_NO_DIRECT},                                 \
    {"loaders", required_argument, 0, HX_OFF_LOADERS},                               \
    {"expert-file", required_argument, 0, HX_OFF_FILE},                             \
    {"cache-warm", no_argument, 0, HX_OFF_WARM},                                     \
    {"profile", required_argument, 0, HX_OFF_PROFILE},                               \
    {"pregate-ahead", required_argument, 0, HX_OFF_PREGATE_AHEAD},                   \
    {"pregate-wrap", no_argument, 0, HX_OFF_PREGATE_WRAP},                           \
    {"link-copy", required_argument, 0, HX_OFF_LINK_COPY}

/* Lines for the usage text. */
extern const char hx_offload_usage[];

typedef struct hx_offload {
    eng_tiered_opts o;
    bool cache_set;              /* --cache-experts or --cache-mb given: offloading on */
    bool link_set;
    bool pregate_set;            /* --pregate-ahead or --pregate-wrap given */
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
    struct hx_lua_policy *lua;   /* --policy lua:FILE, NULL otherwise       */
    const char *profile_path;    /* --profile TRACE for the static policy   */
    uint64_t *profile;           /* [L * E] its access counts               */
} hx_offload;

void hx_offload_init(hx_offload *x);
/* Whether the model should be opened with eng_model_opts.private_dense:
 * offloading with the file tier (only the store's pread then reads the
 * file after open, so a shrinking file is ENG_EIO, not SIGBUS). */
bool hx_offload_private_dense(const hx_offload *x);
/* One option; returns 0 or the exit code of a usage error (printed). */
int hx_offload_parse(hx_offload *x, int code, const char *arg);
/* Checks combinations after parsing; 0 or a usage exit code. */
int hx_offload_check(hx_offload *x);
/* Opens what the options ask for: the store (*store, NULL when no cache
 * option was given) and the hooks (*hooks: the trace writer's routing and
 * a token_done that splits stall time into prompt and decode; NULL when
 * neither is needed).
 * Forces *n_batch = 1 with --trace-in (per-token accesses; says so on
 * stderr). seed: the random policy's. Returns 0 or an exit code (error
 * printed). */
int hx_offload_open(hx_offload *x, const eng_model *m, uint64_t seed, int64_t n_prompt,
                    int64_t *n_batch, eng_store **store, const eng_hooks **hooks);
/* Records in --trace-out how the prompt runs (n_prompt tokens in batches
 * of n_batch, the session's); no-op without it. 0 or an exit code. */
int hx_offload_set_prompt(hx_offload *x, int64_t n_prompt, int64_t n_batch);
/* Finishes --trace-out; 0 or an exit code. */
int hx_offload_finish(hx_offload *x);
/* Adds "cache" (with "layers") and top-level "accesses", "hits", "misses"
 * to root; decode_ms [n] for the latency percentiles. No-op when off. */
void hx_offload_json(const hx_offload *x, json_t *root, const double *decode_ms, int64_t n);
/* Human-readable statistics to f (stall share of prefill_ms + the decode
 * times). No-op when off. */
void hx_offload_print(const hx_offload *x, FILE *f, const double *decode_ms, int64_t n,
                      double prefill_ms);
void hx_offload_free(hx_offload *x);

#endif
