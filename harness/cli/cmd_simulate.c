/*
 * cmd_simulate.c — `moebench simulate`: replays a routing trace through an
 * eviction policy (the engine's own policy code) and a cost model, and
 * prints hit rate, bytes moved, stall time and tokens/s (metrics/simulate.h;
 * docs/simulate.md). Every option is checked here before the trace is read;
 * option errors exit 2, an unreadable trace 1, a malformed one 2.
 */
#include "engine/predict.h"
#include "harness/cli/cli.h"
#include "harness/probe/probe.h"
#include "harness/cli/cli_impl.h"
#include "metrics/simulate.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench simulate TRACE --policy P --cache-experts N [options]\n\n"
    "Replays a routing trace (.moetrace, .json, .csv, or a moe-lrc safetensors\n"
    "directory) through an eviction policy and a cost model; prints hit rate,\n"
    "misses, bytes moved, stall time and tokens/s. Each sample starts with an\n"
    "empty cache.\n\n"
    "Cache:\n"
    "  --policy P            lru, lfu, fifo, random, static, belady, fsf, hobbit, or\n"
    "                        lua:FILE.lua (a policy written in Lua; docs/policies.md)\n"
    "                        (--list-policies describes them)\n"
    "  --cache-experts N     slots: in total (scope global) or per layer (layer);\n"
    "                        at most what holds every expert (an error above)\n"
    "  --cache-scope S       global (default, as in generate): one pool of N over\n"
    "                        every (layer, expert); layer: N slots per layer, one\n"
    "                        policy each (the paper's cache size)\n"
    "  --lookup L            sequential (default): look up and load expert by\n"
    "                        expert, as the engine does; token: look up a whole\n"
    "                        token first, then load (the paper's procedure)\n"
    "  --start S             cold (default): first uses miss; warm: the first N\n"
    "                        distinct experts of a sample are hits (the paper's)\n"
    "  --paper               same as --lookup token --start warm\n"
    "  --prefetch P          none (default); oracle: load the next layer's experts\n"
    "                        during compute; predict:FILE: load the experts a\n"
    "                        predictor (`moebench trace predictor`) names for the\n"
    "                        next layer (both need --lookup sequential)\n"
    "  --predict-kind K      predict: transition (default) | history | frequency\n"
    "  --predict-n N         predict: experts predicted per layer (default top-k)\n"
    "  --prompt P            recorded (default): a prompt the engine ran in batches\n"
    "                        (as the trace records) replays chunk by chunk, each\n"
    "                        expert of a chunk's layer once, as the engine's store\n"
    "                        saw it; tokens: every token on its own\n"
    "  --lookahead L         fsf: window of L tokens (default 1)\n"
    "  --seed N              random: seed (default 1)\n"
    "  --lfu-age N           lfu: halve all counts every N accesses (default 0: off)\n"
    "  --hobbit-weights R,F,H,D  hobbit: weights of recency, frequency, high-precision\n"
    "                        share and layer nearness (default 1,1,1,1)\n"
    "  --profile TRACE       static: pin the most used experts of this trace\n"
    "                        (default: the replayed trace itself)\n"
    "  --layer L             replay layer L only\n"
    "  --format F            trace format: auto (default), moetrace, json, csv,\n"
    "                        safetensors\n\n"
    "Cost model (each miss is one load on a serial link; see docs/simulate.md):\n"
    "  --expert-bytes B      bytes per expert: a number (suffix K, M, G = KiB, MiB,\n"
    "                        GiB) or a preset below (default olmoe-bf16)\n"
    "  --link NAME           bandwidth and latency preset (default pcie4x16)\n"
    "  --link-gbps G         link bandwidth in GB/s (1e9 bytes/s), overrides --link\n"
    "  --link-latency-us U   latency per load in microseconds, overrides --link\n"
    "  --compute-us C        compute per expert access in microseconds (default 50)\n\n"
    "Mixed precision (as generate --low-precision; docs/policies.md):\n"
    "  --lp-bytes B          bytes of an expert's low-precision copy (as --expert-bytes)\n"
    "  --lp-rule R           hobbit:T, hobbit:last, hobbit:T,last (from the trace's gate\n"
    "                        weights), edgemoe:Q (least used in --profile, default the\n"
    "                        trace), all; needs --lookup sequential --start cold\n\n"
    "Output:\n"
    "  --json                one JSON object: options, totals, layers, directions\n"
    "  --list-policies       the policies with one line each, then exit\n"
    "  -h, --help            this text\n\n"
    "Presets:\n";

typedef struct sim_opts {
    met_sim_config cfg;
    const char *trace, *profile, *format, *link;
    double gbps, latency;       /* < 0: from the link preset */
    int json, have_policy, have_cache;
    int hobbit_w_set;                 /* --hobbit-weights given */
    hx_probe_lua_policy *lua;         /* --policy lua:FILE */
    const char *predictor_path;       /* --prefetch predict:FILE */
    int predict_set;                  /* --predict-kind or --predict-n given */
    eng_predictor *predictor;
    const char *lp_rule;              /* --lp-rule as given */
    hx_probe_lp_rule lp;
    uint8_t *lp_always;               /* [layers * experts] of the trace */
} sim_opts;

static int parse_enum(const char *opt, const char *val, const char *a, const char *b, int *out)
{
    if (strcmp(val, a) == 0)
        *out = 0;
    else if (strcmp(val, b) == 0)
        *out = 1;
    else
        return hx_cli_usage_error("simulate", "%s: '%s' is not %s or %s", opt, val, a, b);
    return 0;
}

/* A byte count with an optional binary suffix, or an expert preset. */
static int parse_bytes(const char *opt, const char *val, double *out)
{
    eng_err err = {0};
    char *end;
    double v = strtod(val, &end);
    if (end == val)
        return met_sim_expert_preset(val, out, &err)
                   ? hx_cli_usage_error("simulate", "%s: %s", opt, err.msg)
                   : 0;
    double mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1048576.0, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1073741824.0, end++;
    if (*end != '\0' || !(v > 0) || v * mul > 1e15)
        return hx_cli_usage_error("simulate", "%s: '%s' is not a byte count in "
                              "(0, 1e15] or a preset", opt, val);
    *out = v * mul;
    return 0;
}

static void list_policies(void)
{
    for (size_t i = 0; i < eng_policy_builtin_count(); i++) {
        const eng_policy_ops *o = eng_policy_builtin(i);
        printf("%-8s %s\n", o->name, o->summary);
    }
}

/* --policy lua:FILE: the harness's bridge, through the same interface. */
static int load_lua_policy(sim_opts *o, const char *path)
{
    eng_err err = {0};
    hx_probe_lua_policy_free(o->lua);
    o->lua = NULL;
    int rc = hx_probe_lua_policy_load(&o->lua, path, &err);
    if (rc)
        return hx_cli_fail("simulate", rc == ENG_EIO ? ENG_EINVAL : rc, "--policy: %s", err.msg);
    o->cfg.ops = hx_probe_lua_policy_ops(o->lua);
    o->cfg.ops_user = hx_probe_lua_policy_user(o->lua);
    return 0;
}

static int set_value(sim_opts *o, int c, const char *val)
{
    met_sim_config *g = &o->cfg;
    int v = 0, rc = 0;
    int64_t n = 0;
    switch (c) {
    case 'p': g->policy = val; o->have_policy = 1;
        if (hx_probe_lua_policy_path(val))
            return load_lua_policy(o, hx_probe_lua_policy_path(val));
        g->ops = NULL;
        if (!eng_policy_find(val))
            return hx_cli_usage_error("simulate", "--policy: unknown policy '%s' (lru, lfu, fifo, "
                                  "random, static, belady, fsf, hobbit)", val);
        return 0;
    case 'c': o->have_cache = 1;
        return hx_cli_parse_i64("simulate", "--cache-experts", val, 1, INT32_MAX, &g->cache_experts);
    case 'S': rc = parse_enum("--cache-scope", val, "layer", "global", &v); g->scope = v; return rc;
    case 'L': rc = parse_enum("--lookup", val, "sequential", "token", &v); g->lookup = v; return rc;
    case 's': rc = parse_enum("--start", val, "cold", "warm", &v); g->start = v; return rc;
    case 'P':
        if (!strncmp(val, "predict:", 8) && val[8]) {
            g->prefetch = MET_SIM_PREFETCH_PREDICT;
            o->predictor_path = val + 8;
            return 0;
        }
        if (strcmp(val, "none") && strcmp(val, "oracle"))
            return hx_cli_usage_error("simulate", "--prefetch: '%s' is not none, oracle or "
                                      "predict:FILE", val);
        g->prefetch = strcmp(val, "oracle") ? MET_SIM_PREFETCH_NONE : MET_SIM_PREFETCH_ORACLE;
        return 0;
    case 'K':
        o->predict_set = 1;
        if ((g->predict_kind = eng_predict_kind_parse(val)) < 0)
            return hx_cli_usage_error("simulate", "--predict-kind: '%s' is not transition, "
                                      "history or frequency", val);
        return 0;
    case 'N':
        o->predict_set = 1;
        return hx_cli_parse_int("simulate", "--predict-n", val, 1, ENG_PREDICT_MAX_EXPERTS,
                                &g->predict_n);
    case 'B': rc = parse_enum("--prompt", val, "recorded", "tokens", &v); g->prompt = v; return rc;
    case 'a': return hx_cli_parse_int("simulate", "--lookahead", val, 1, 1 << 30, &g->lookahead);
    case 'r': rc = hx_cli_parse_i64("simulate", "--seed", val, 0, INT64_MAX, &n);
        g->seed = (uint64_t)n; return rc;
    case 'A': return hx_cli_parse_i64("simulate", "--lfu-age", val, 0, INT64_MAX, &g->lfu_age);
    case 'H': o->hobbit_w_set = 1;
        return hx_probe_hobbit_weights_parse("simulate", val, g->hobbit_w);
    case 'l': return hx_cli_parse_int("simulate", "--layer", val, 0, MET_TRACE_MAX_LAYERS - 1,
                                  &g->layer);
    case 'b': return parse_bytes("--expert-bytes", val, &g->expert_bytes);
    case 'y': return parse_bytes("--lp-bytes", val, &g->lp_bytes);
    case 'Y': o->lp_rule = val;
        if ((rc = hx_probe_lp_rule_parse("simulate", val, &o->lp)))
            return rc;
        g->lp_threshold = o->lp.threshold;
        g->lp_last = o->lp.last;
        return 0;
    case 'g': return hx_cli_parse_double("simulate", "--link-gbps", val, 1e-9, 1e6, &o->gbps);
    case 'u': return hx_cli_parse_double("simulate", "--link-latency-us", val, 0, 1e9, &o->latency);
    case 'C': return hx_cli_parse_double("simulate", "--compute-us", val, 0, 1e9, &g->compute_us);
    case 'F': o->format = val;
        if (met_trace_format_parse(val) < 0)
            return hx_cli_usage_error("simulate", "--format: unknown format '%s'", val);
        return 0;
    case 'R': o->profile = val; return 0;
    case 'k': o->link = val; return 0;
    }
    return hx_cli_usage_error("simulate", "internal: option %c", c);
}

static int parse_args(sim_opts *o, int argc, char **argv, int *done)
{
    static const struct option longopts[] = {
        {"policy", required_argument, 0, 'p'},        {"cache-experts", required_argument, 0, 'c'},
        {"cache-scope", required_argument, 0, 'S'},   {"lookup", required_argument, 0, 'L'},
        {"start", required_argument, 0, 's'},         {"prefetch", required_argument, 0, 'P'},
        {"lookahead", required_argument, 0, 'a'},     {"seed", required_argument, 0, 'r'},
        {"lfu-age", required_argument, 0, 'A'},       {"layer", required_argument, 0, 'l'},
        {"expert-bytes", required_argument, 0, 'b'},  {"link", required_argument, 0, 'k'},
        {"link-gbps", required_argument, 0, 'g'},     {"link-latency-us", required_argument, 0, 'u'},
        {"compute-us", required_argument, 0, 'C'},    {"format", required_argument, 0, 'F'},
        {"profile", required_argument, 0, 'R'},       {"paper", no_argument, 0, 'W'},
        {"json", no_argument, 0, 'j'},                {"list-policies", no_argument, 0, 'T'},
        {"prompt", required_argument, 0, 'B'},        {"predict-kind", required_argument, 0, 'K'},
        {"predict-n", required_argument, 0, 'N'},
        {"lp-bytes", required_argument, 0, 'y'},      {"lp-rule", required_argument, 0, 'Y'},
        {"hobbit-weights", required_argument, 0, 'H'},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0},
    };
    int c, rc;
    opterr = 0;
    *done = 0;
    for (;;) {
        c = getopt_long(argc, argv, "+h", longopts, NULL);
        if (c == -1) {   /* a non-option: the trace (options may follow it) */
            if (optind >= argc)
                break;
            if (o->trace)
                return hx_cli_usage_error("simulate", "unexpected argument '%s'", argv[optind]);
            o->trace = argv[optind++];
            continue;
        }
        if (c == 'h' || c == 'T') {
            if (c == 'h') {
                char presets[2048];
                met_sim_presets_describe(presets, sizeof presets);
                fputs(usage_text, stdout);
                fputs(presets, stdout);
            } else
                list_policies();
            *done = 1;
            return HX_CLI_EXIT_OK;
        }
        if (c == 'j')
            o->json = 1;
        else if (c == 'W')
            o->cfg.lookup = MET_SIM_LOOKUP_TOKEN, o->cfg.start = MET_SIM_START_WARM;
        else if (c == '?' || c == ':')
            return hx_cli_usage_error("simulate", "unknown option or missing value: '%s'",
                                  argv[optind - 1]);
        else if ((rc = set_value(o, c, optarg)))
            return rc;
    }
    if (!o->trace)
        return hx_cli_usage_error("simulate", "no trace file given");
    if (!o->have_policy || !o->have_cache)
        return hx_cli_usage_error("simulate", "--policy and --cache-experts are required");
    if (o->hobbit_w_set && (o->cfg.ops || strcmp(o->cfg.policy, "hobbit")))
        return hx_cli_usage_error("simulate", "--hobbit-weights goes with --policy hobbit");
    if (o->predict_set && o->cfg.prefetch != MET_SIM_PREFETCH_PREDICT)
        return hx_cli_usage_error("simulate", "--predict-kind/--predict-n go with --prefetch "
                                  "predict:FILE");
    if (!o->lp_rule != !(o->cfg.lp_bytes > 0))
        return hx_cli_usage_error("simulate", "--lp-bytes B and --lp-rule RULE go together");
    if (o->lp_rule && (o->cfg.lookup != MET_SIM_LOOKUP_SEQUENTIAL ||
                       o->cfg.start != MET_SIM_START_COLD))
        return hx_cli_usage_error("simulate", "--lp-rule replays as the engine runs: with "
                                  "--lookup sequential --start cold (not --paper)");
    return HX_CLI_EXIT_OK;
}

static int apply_link(sim_opts *o)
{
    eng_err err = {0};
    if (o->link && met_sim_link_preset(o->link, &o->cfg.link_gbps, &o->cfg.link_latency_us,
                                       &err))
        return hx_cli_usage_error("simulate", "--link: %s", err.msg);
    if (o->gbps >= 0)
        o->cfg.link_gbps = o->gbps;
    if (o->latency >= 0)
        o->cfg.link_latency_us = o->latency;
    if (o->cfg.prefetch != MET_SIM_PREFETCH_NONE && o->cfg.lookup == MET_SIM_LOOKUP_TOKEN)
        return hx_cli_usage_error("simulate", "--prefetch %s needs --lookup sequential",
                                  met_sim_prefetch_name(o->cfg.prefetch));
    if (o->cfg.prefetch == MET_SIM_PREFETCH_PREDICT && o->cfg.layer >= 0)
        return hx_cli_usage_error("simulate", "--prefetch predict predicts across layers: "
                                  "replay every layer (no --layer)");
    return HX_CLI_EXIT_OK;
}

static void print_text(const sim_opts *o, const met_trace *t, const met_sim_result *r)
{
    const met_sim_config *g = &o->cfg;
    const met_sim_counts *c = &r->total;
    printf("trace       %s: %d layers x %d experts, top-%d, %lld samples, %lld tokens\n",
           o->trace, t->info.num_layers, t->info.num_experts, t->info.top_k,
           (long long)t->info.num_samples, (long long)t->info.num_tokens);
    printf("cache       %s, %lld experts %s, lookup %s, start %s, prefetch %s",
           g->policy, (long long)g->cache_experts,
           g->scope == MET_SIM_SCOPE_GLOBAL ? "in one global pool" : "per layer",
           met_sim_lookup_name(g->lookup), met_sim_start_name(g->start),
           met_sim_prefetch_name(g->prefetch));
    if (strcmp(g->policy, "fsf") == 0)
        printf(", lookahead %d", g->lookahead);
    if (g->layer >= 0)
        printf(", layer %d only", g->layer);
    if (r->batched_samples)
        printf("\nprompt      %lld sample(s) replay their prompt in the engine's batches",
               (long long)r->batched_samples);
    if (r->prompt_note)
        printf("\nprompt      batched prompts replay token by token: %s", r->prompt_note);
    printf("\ncost        expert %.0f B, link %g GB/s + %g us = %.3f us per load, "
           "compute %g us per expert\n\n", g->expert_bytes, g->link_gbps, g->link_latency_us,
           r->load_us, g->compute_us);
    printf("accesses    %lld\n", (long long)c->accesses);
    printf("hits        %lld  (hit rate %.6f; mean over samples %.6f)\n", (long long)c->hits,
           c->hit_rate, c->sample_hit_rate);
    printf("            warm %lld, reloads %lld\n", (long long)c->warm_hits,
           (long long)c->reloads);
    printf("misses      %lld  (uncached %lld), evictions %lld\n", (long long)c->misses,
           (long long)c->uncached, (long long)c->evictions);
    printf("prefetch    issued %lld, useful %lld, wasted %lld, dropped %lld\n",
           (long long)c->prefetch_issued, (long long)c->prefetch_useful,
           (long long)c->prefetch_wasted, (long long)c->prefetch_dropped);
    if (g->prefetch == MET_SIM_PREFETCH_PREDICT)
        printf("predict     %s: %lld experts predicted, %lld used (accuracy %.6f)\n",
               eng_predict_kind_name(g->predict_kind), (long long)c->predicted,
               (long long)c->predicted_used,
               c->predicted ? (double)c->predicted_used / (double)c->predicted : 0.0);
    printf("bytes moved %.0f\n", c->bytes_moved);
    if (g->lp_bytes > 0)
        printf("low prec.   %s, %.0f B a copy: %lld loads, %lld accesses computed low, "
               "%lld upgrades\n", o->lp_rule, g->lp_bytes, (long long)c->lp_loads,
               (long long)c->lp_served, (long long)c->lp_upgrades);
    printf("time        %.1f us = compute %.1f + stall %.1f; link busy %.1f, hidden %.1f\n",
           r->time_us, r->compute_us, c->stall_us, r->link_busy_us, r->overlap_us);
    printf("tokens/s    %.3f\n\n", r->tokens_per_s);
    printf("%-6s %12s %12s %10s %10s %12s %14s\n", "LAYER", "ACCESSES", "HITS", "HIT_RATE",
           "SAMPLE_HR", "MISSES", "STALL_US");
    for (int32_t i = 0; i < r->n_layers; i++) {
        const met_sim_counts *l = &r->layers[i];
        printf("%-6d %12lld %12lld %10.6f %10.6f %12lld %14.1f\n", r->first_layer + i,
               (long long)l->accesses, (long long)l->hits, l->hit_rate, l->sample_hit_rate,
               (long long)l->misses, l->stall_us);
    }
}

static int load_trace(const char *path, const char *format, met_trace **t)
{
    eng_err err = {0};
    int fmt = format ? met_trace_format_parse(format) : MET_FMT_AUTO;
    int rc = hx_cli_input("simulate", NULL, path);
    if (rc)
        return rc;
    rc = met_trace_load(t, path, (met_trace_format)fmt, &err);
    if (rc)
        return hx_cli_fail("simulate", rc, "%s", err.msg);
    return HX_CLI_EXIT_OK;
}

/* The rule's always-low experts (all, edgemoe: from the profile or the
 * replayed trace's counts). */
static int lp_map(sim_opts *o, const met_trace *t, const met_trace *prof)
{
    const met_trace *p = prof ? prof : t;
    const size_t L = (size_t)t->info.num_layers, E = (size_t)t->info.num_experts;
    const size_t k = (size_t)p->info.top_k;
    if (o->lp.edgemoe >= 0 && ((size_t)p->info.num_layers != L || (size_t)p->info.num_experts != E))
        return hx_cli_usage_error("simulate", "--profile: %d layers x %d experts, the trace "
                                  "%zu x %zu", p->info.num_layers, p->info.num_experts, L, E);
    uint64_t *counts = calloc(L * E, sizeof *counts);
    o->lp_always = malloc(L * E);
    if (!counts || !o->lp_always) {
        free(counts);
        return hx_cli_fail("simulate", ENG_ENOMEM, "out of memory");
    }
    for (int64_t tok = 0; o->lp.edgemoe >= 0 && tok < p->info.num_tokens; tok++)
        for (size_t l = 0; l < L; l++)
            for (size_t j = 0; j < k; j++)
                counts[l * E + p->ids[((size_t)tok * L + l) * k + j]]++;
    if (hx_probe_lp_rule_map(&o->lp, counts, (int)L, (int)E, o->lp_always))
        o->cfg.lp_always = o->lp_always;
    free(counts);
    return 0;
}

static int simulate(sim_opts *o)
{
    met_trace *t = NULL, *prof = NULL;
    met_sim_result *r = NULL;
    eng_err err = {0};
    int rc = load_trace(o->trace, o->format, &t);
    if (!rc) { /* more slots than experts would be a cache that never evicts, silently */
        int64_t layers = o->cfg.layer >= 0 ? 1 : t->info.num_layers;
        int64_t cap = (int64_t)t->info.num_experts *
                      (o->cfg.scope == MET_SIM_SCOPE_GLOBAL ? layers : 1);
        if (o->cfg.cache_experts > cap)
            rc = hx_cli_usage_error("simulate", "--cache-experts %lld: %s %lld slots hold every"
                                    " expert of %s (%lld layers x %d experts, scope %s); give"
                                    " at most %lld", (long long)o->cfg.cache_experts,
                                    o->cfg.scope == MET_SIM_SCOPE_GLOBAL ? "in all" : "per layer",
                                    (long long)cap, o->trace, (long long)layers,
                                    (int)t->info.num_experts, met_sim_scope_name(o->cfg.scope),
                                    (long long)cap);
    }
    if (!rc && o->profile && !(rc = load_trace(o->profile, o->format, &prof)))
        o->cfg.profile = prof;
    if (!rc && o->predictor_path && !(rc = hx_cli_input("simulate", "--prefetch predict:",
                                                          o->predictor_path))) {
        if ((rc = eng_predictor_load(&o->predictor, o->predictor_path, &err)))
            rc = hx_cli_fail("simulate", rc, "--prefetch predict: %s", err.msg);
        o->cfg.predictor = o->predictor;
    }
    if (!rc && o->lp_rule)
        rc = lp_map(o, t, prof);
    if (!rc && o->lua)
        hx_probe_lua_policy_context(o->lua, &(hx_probe_lua_ctx){
            .n_layers = o->cfg.layer >= 0 ? 1 : (int)t->info.num_layers,
            .n_experts = (int)t->info.num_experts, .top_k = (int)t->info.top_k,
            .per_layer = o->cfg.scope == MET_SIM_SCOPE_LAYER,
            .first_layer = o->cfg.layer >= 0 ? (int)o->cfg.layer : 0});
    if (!rc) {
        int erc = met_sim_run(t, &o->cfg, &r, &err);
        if (erc)
            rc = hx_cli_fail("simulate", erc, "%s: %s", o->trace, err.msg);
    }
    if (!rc && o->json) {
        json_t *j = met_sim_result_json(r, &o->cfg);
        if (!j) {
            met_sim_result_free(r);
            met_trace_free(t);
            met_trace_free(prof);
            return hx_cli_fail("simulate", ENG_ENOMEM, "out of memory for the JSON output");
        }
        json_object_set_new(json_object_get(j, "options"), "trace", json_string(o->trace));
        /* which way each number is better, for `regress` (docs/cli.md) */
        json_object_set_new(j, "directions",
                            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
                                      "*hit_rate", "higher", "*hits", "higher", "*misses",
                                      "lower", "*reloads", "lower", "*evictions", "lower",
                                      "*bytes_moved", "lower", "*stall_us", "lower",
                                      "*tokens_per_s", "higher"));
        json_dumpf(j, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(j);
    } else if (!rc)
        print_text(o, t, r);
    met_sim_result_free(r);
    met_trace_free(t);
    met_trace_free(prof);
    return rc;
}

int hx_cli_cmd_simulate(int argc, char **argv)
{
    sim_opts o = {.gbps = -1, .latency = -1};
    met_sim_config_default(&o.cfg);
    o.cfg.scope = MET_SIM_SCOPE_GLOBAL; /* the engine's default: N means the same in generate */
    int done, rc = parse_args(&o, argc, argv, &done);
    if (!rc && !done)
        rc = apply_link(&o);
    if (!rc && !done)
        rc = simulate(&o);
    hx_probe_lua_policy_free(o.lua);
    eng_predictor_free(o.predictor);
    free(o.lp_always);
    return rc;
}
