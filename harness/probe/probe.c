/*
 * probe.c — trace capture and per-region counters for `moebench
 * generate` (see probe.h).
 *
 * Design notes. The engine has one hook table; the trace writer, the region
 * counters and the offloading options each want some of its callbacks, so
 * the probe installs forwarders that call each user in turn (the inner
 * table first, so the store's stall bookkeeping sees a token before the
 * region table closes it). The trace writer only writes .moetrace; for
 * another extension (.json, .csv, a safetensors directory) the writer fills
 * a temporary .moetrace next to the target, which is then loaded and saved
 * in the target's format (met_trace_save) and removed.
 *
 * token_done is held back until the sampling region that follows it ends
 * (or the next token_done, or the end of the run), because the engine
 * signals it before sampling; without this, each decode token's record
 * would carry the previous token's sampling.
 */
#include "harness/probe/probe.h"

#include "harness/cli/cli.h"
#include "metrics/counters.h"
#include "metrics/regions.h"
#include "metrics/trace.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char hx_probe_usage[] =
    "Measuring (docs/metrics.md, docs/counters.md):\n"
    "  --trace FILE       record the routing of prompt and generated tokens (every\n"
    "                     layer: expert ids in router order, gate weights, token ids);\n"
    "                     format by extension: .moetrace (default), .json, .csv\n"
    "  --trace-label TEXT label of the recorded sample (dataset, prompt name)\n"
    "  --events LIST      per-region counters of the decode tokens, comma-separated\n"
    "                     event names (moebench events lists them)\n"
    "  --events-preset P  the same from a preset: default, cache, branch, software\n"
    "  --multiplex        let more events than counters share them (estimates)\n";

void hx_probe_init(hx_probe *p)
{
    memset(p, 0, sizeof *p);
    p->pending = -1;
}

int hx_probe_parse(hx_probe *p, int code, const char *arg)
{
    switch (code) {
    case HX_PROBE_TRACE: p->trace = arg; return 0;
    case HX_PROBE_LABEL: p->label = arg; return 0;
    case HX_PROBE_EVENTS: p->events = arg; return 0;
    case HX_PROBE_PRESET: p->preset = arg; return 0;
    case HX_PROBE_MULTIPLEX: p->multiplex = true; return 0;
    default: return hx_cli_usage_error("generate", "internal: unknown probe option %d", code);
    }
}

int hx_probe_check(const hx_probe *p)
{
    if (p->label && !p->trace)
        return hx_cli_usage_error("generate", "--trace-label needs --trace FILE");
    if (p->events && p->preset)
        return hx_cli_usage_error("generate", "give one of --events and --events-preset");
    if (p->multiplex && !p->events && !p->preset)
        return hx_cli_usage_error("generate", "--multiplex needs --events or --events-preset");
    if (p->trace && !*p->trace)
        return hx_cli_usage_error("generate", "--trace: empty file name");
    return 0;
}

bool hx_probe_regions_on(const hx_probe *p) { return p->regions != NULL; }

/* ---- forwarders --------------------------------------------------------- */

static void flush_token(hx_probe *p)
{
    if (p->pending < 0)
        return;
    int64_t pos = p->pending;
    p->pending = -1;
    met_regions_token_done(p->regions, pos);
    if (pos + 1 == p->n_prompt) /* the table covers decode only */
        met_regions_reset(p->regions);
}

static void fw_begin(void *user, eng_region r)
{
    hx_probe *p = user;
    ENG_HOOK(p->inner, region_begin, r);
    if (p->regions)
        met_regions_begin(p->regions, r);
}

static void fw_end(void *user, eng_region r)
{
    hx_probe *p = user;
    ENG_HOOK(p->inner, region_end, r);
    if (!p->regions)
        return;
    met_regions_end(p->regions, r);
    if (r == ENG_REGION_SAMPLING)
        flush_token(p);
}

static void fw_routing(void *user, const eng_routing_event *ev)
{
    hx_probe *p = user;
    ENG_HOOK(p->inner, routing, ev);
    p->routing_events++;
    if (p->writer)
        met_trace_writer_hook(p->writer, ev);
}

static void fw_cache(void *user, const eng_cache_event *ev)
{
    hx_probe *p = user;
    ENG_HOOK(p->inner, cache, ev);
    if (p->regions)
        met_regions_cache_event(p->regions, ev);
}

static void fw_token_done(void *user, int64_t pos)
{
    hx_probe *p = user;
    ENG_HOOK(p->inner, token_done, pos);
    if (!p->regions)
        return;
    flush_token(p);
    p->pending = pos;
}

/* ---- open / finish ------------------------------------------------------ */

met_trace_info hx_probe_trace_shape(const eng_model *m)
{
    const eng_hparams *hp = eng_model_hparams(m);
    return (met_trace_info){.num_layers = (int32_t)hp->n_layer_moe,
                            .num_experts = (int32_t)hp->n_expert,
                            .top_k = (int32_t)hp->n_expert_used,
                            .flags = MET_TRACE_WEIGHTS | MET_TRACE_TOKENS,
                            .layer_offset = (int32_t)hp->n_layer_dense};
}

static int open_writer(hx_probe *p, const eng_model *m)
{
    met_trace_info info = hx_probe_trace_shape(m);
    const char *path = p->trace;
    if (met_trace_format_guess(p->trace) != MET_FMT_MOETRACE) {
        size_t n = strlen(p->trace) + 32;
        if (!(p->tmp_path = malloc(n)))
            return hx_cli_fail("generate", ENG_ENOMEM, "out of memory");
        snprintf(p->tmp_path, n, "%s.%ld.tmp.moetrace", p->trace, (long)getpid());
        path = p->tmp_path;
    }
    eng_err err = {0};
    met_trace_writer *w;
    int rc = met_trace_writer_open(&w, path, &info, &err);
    if (!rc)
        rc = met_trace_writer_begin_sample(w, p->label, &err);
    else
        w = NULL;
    p->writer = w;
    return rc ? hx_cli_fail("generate", rc, "--trace %s: %s", p->trace, err.msg) : 0;
}

static int open_regions(hx_probe *p)
{
    eng_err err = {0};
    met_counters_opts co = {.multiplex = p->multiplex};
    met_counters *c = NULL;
    int rc = p->events ? met_counters_open_list(&c, p->events, &co, &err)
                       : met_counters_open_preset(&c, p->preset, &co, &err);
    if (rc)
        return hx_cli_fail("generate", rc, "%s %s: %s", p->events ? "--events" : "--events-preset",
                       p->events ? p->events : p->preset, err.msg);
    p->counters = c;
    met_regions_opts ro;
    met_regions_opts_default(&ro);
    ro.abort_on_misuse = 0; /* a user's run reports nesting errors, never aborts */
    met_regions *r = NULL;
    if ((rc = met_regions_open(&r, c, &ro, &err)))
        return hx_cli_fail("generate", rc, "%s", err.msg);
    p->regions = r;
    return 0;
}

int hx_probe_open(hx_probe *p, const eng_model *m, int64_t n_prompt, int64_t *n_batch,
                  const eng_hooks *inner, const eng_hooks **hooks)
{
    *hooks = inner;
    p->inner = inner;
    p->n_prompt = n_prompt;
    int rc;
    (void)n_batch; /* recording changes nothing the engine computes */
    if (p->trace && (rc = open_writer(p, m)))
        return rc;
    if ((p->events || p->preset) && (rc = open_regions(p)))
        return rc;
    if (!p->trace && !p->regions)
        return 0;
    /* Every callback forwards to inner; the region ones exist only with
     * regions, so without them the engine's region branches stay cheap. */
    p->hooks = (eng_hooks){.user = p, .routing = fw_routing};
    if (p->regions) {
        p->hooks.region_begin = fw_begin;
        p->hooks.region_end = fw_end;
        p->hooks.cache = fw_cache;
        p->hooks.token_done = fw_token_done;
    } else if (inner) {
        p->hooks.region_begin = inner->region_begin ? fw_begin : NULL;
        p->hooks.region_end = inner->region_end ? fw_end : NULL;
        p->hooks.cache = inner->cache ? fw_cache : NULL;
        p->hooks.token_done = inner->token_done ? fw_token_done : NULL;
    }
    *hooks = &p->hooks;
    return 0;
}

/* Loads the temporary .moetrace and saves it as --trace asks. */
static int convert_trace(hx_probe *p, eng_err *err)
{
    met_trace *t = NULL;
    int rc = met_trace_load(&t, p->tmp_path, MET_FMT_MOETRACE, err);
    if (!rc)
        rc = met_trace_save(t, p->trace, MET_FMT_AUTO, err);
    met_trace_free(t);
    return rc;
}

int hx_probe_set_prompt(hx_probe *p, int64_t n_prompt, int64_t n_batch)
{
    if (!p->writer)
        return 0;
    eng_err err = {0};
    met_trace_prompt pr = {n_prompt, n_prompt ? n_batch : 0};
    int rc = met_trace_writer_set_prompt(p->writer, pr, &err);
    return rc ? hx_cli_fail("generate", rc, "--trace %s: %s", p->trace, err.msg) : 0;
}

int hx_probe_finish(hx_probe *p)
{
    if (p->regions)
        flush_token(p);
    if (!p->writer)
        return 0;
    eng_err err = {0};
    int rc = met_trace_writer_close(p->writer, &err);
    p->writer = NULL;
    if (!rc && p->tmp_path)
        rc = convert_trace(p, &err);
    if (p->tmp_path)
        unlink(p->tmp_path);
    return rc ? hx_cli_fail("generate", rc, "--trace %s: %s", p->trace, err.msg) : 0;
}

/* ---- report ------------------------------------------------------------- */

void hx_probe_json(const hx_probe *p, json_t *root)
{
    if (p->regions) {
        json_t *o = met_regions_json(p->regions, 0);
        if (o)
            json_object_set_new(root, "regions", o);
    }
    if (p->trace)
        json_object_set_new(root, "trace",
                            json_pack("{s:s, s:s, s:I}", "path", p->trace, "label",
                                      p->label ? p->label : "", "routing_events",
                                      (json_int_t)p->routing_events));
}

void hx_probe_print(const hx_probe *p, FILE *f)
{
    if (p->trace)
        fprintf(f, "trace: %lld routing events -> %s\n", (long long)p->routing_events,
                p->trace);
    if (p->regions) {
        fprintf(f, "regions (decode tokens):\n");
        met_regions_print(p->regions, f);
    }
}

void hx_probe_free(hx_probe *p)
{
    met_regions_free(p->regions);
    met_counters_free(p->counters);
    if (p->writer) {
        eng_err err;
        (void)met_trace_writer_close(p->writer, &err);
        if (p->tmp_path)
            unlink(p->tmp_path);
    }
    free(p->tmp_path);
    memset(p, 0, sizeof *p);
    p->pending = -1;
}
