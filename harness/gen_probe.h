/*
 * gen_probe.h — the measuring options of `moebench generate`: --trace FILE
 * (capture the run's routing), --trace-label TEXT, --events LIST /
 * --events-preset NAME [--multiplex] (per-region counters), and the one
 * hook table that forwards the engine's callbacks to every user: the trace
 * writer, the region counters and the offloading options' own hooks
 * (harness/offload_opts.h), so they can all be on at once.
 *
 * cmd_generate.c appends HX_PROBE_LONGOPTS to its option table, hands codes
 * HX_PROBE_BASE.. to hx_probe_parse, calls hx_probe_open after
 * hx_offload_open (which wraps the hooks that call returned),
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
#ifndef HX_GEN_PROBE_H
#define HX_GEN_PROBE_H

#include "engine/hooks.h"
#include "engine/model.h"

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

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

#endif
