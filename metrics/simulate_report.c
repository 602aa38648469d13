/*
 * simulate_report.c — the simulator's defaults, presets, names and JSON
 * form (see simulate.h). The preset numbers are round, documented
 * assumptions (docs/simulate.md), not measurements of this machine.
 */
#include "metrics/simulate.h"

#include <jansson.h>

#include <stdio.h>
#include <string.h>

typedef struct link_preset {
    const char *name;
    double gbps, latency_us;
    const char *what;
} link_preset;

static const link_preset links[] = {
    {"pcie4x16", 25.0, 10.0, "PCIe 4.0 x16 host-to-device copy: 25 GB/s, 10 us"},
    {"pcie5x16", 50.0, 10.0, "PCIe 5.0 x16 host-to-device copy: 50 GB/s, 10 us"},
    {"nvme", 7.0, 80.0, "PCIe 4.0 NVMe SSD read: 7 GB/s, 80 us"},
    {"ufs4", 4.2, 100.0, "UFS 4.0 phone storage read: 4.2 GB/s, 100 us"},
};

typedef struct expert_preset {
    const char *name;
    double bytes;
    const char *what;
} expert_preset;

/* gate + up + down of one expert, in the file's format */
static const expert_preset experts[] = {
    {"olmoe-bf16", 12582912, "OLMoE-1B-7B expert, BF16: 3 x 2048 x 1024 x 2 bytes"},
    {"olmoe-q8_0", 6684672, "OLMoE-1B-7B expert, Q8_0: 3 x 2048 x 1024 / 32 x 34 bytes"},
    {"qwen3-30b-a3b-q8_0", 5013504, "Qwen3-30B-A3B expert, Q8_0: 3 x 2048 x 768 / 32 x 34"},
    {"mixtral-q4_k", 99090432, "Mixtral-8x7B expert, Q4_K: 3 x 4096 x 14336 / 256 x 144"},
};

void met_sim_config_default(met_sim_config *c)
{
    *c = (met_sim_config){
        .policy = "lru", .cache_experts = 1, .scope = MET_SIM_SCOPE_LAYER,
        .lookup = MET_SIM_LOOKUP_SEQUENTIAL, .start = MET_SIM_START_COLD,
        .prefetch = MET_SIM_PREFETCH_NONE, .layer = -1, .lookahead = 1, .seed = 1,
        .expert_bytes = experts[0].bytes, .link_gbps = links[0].gbps,
        .link_latency_us = links[0].latency_us, .compute_us = 50.0,
    };
}

int met_sim_link_preset(const char *name, double *gbps, double *latency_us, eng_err *err)
{
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
        if (strcmp(links[i].name, name) == 0) {
            *gbps = links[i].gbps;
            *latency_us = links[i].latency_us;
            return ENG_OK;
        }
    return eng_err_set(err, ENG_EINVAL, "unknown link '%s' (pcie4x16, pcie5x16, nvme, ufs4)",
                       name);
}

int met_sim_expert_preset(const char *name, double *bytes, eng_err *err)
{
    for (size_t i = 0; i < sizeof experts / sizeof experts[0]; i++)
        if (strcmp(experts[i].name, name) == 0) {
            *bytes = experts[i].bytes;
            return ENG_OK;
        }
    return eng_err_set(err, ENG_EINVAL,
                       "unknown expert size '%s' (olmoe-bf16, olmoe-q8_0, "
                       "qwen3-30b-a3b-q8_0, mixtral-q4_k, or a number of bytes)", name);
}

void met_sim_presets_describe(char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof links / sizeof links[0] && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "  --link %-18s %s\n", links[i].name,
                              links[i].what);
    for (size_t i = 0; i < sizeof experts / sizeof experts[0] && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "  --expert-bytes %-10s %s\n",
                              experts[i].name, experts[i].what);
}

const char *met_sim_scope_name(met_sim_scope s)
{
    return s == MET_SIM_SCOPE_GLOBAL ? "global" : "layer";
}

const char *met_sim_lookup_name(met_sim_lookup l)
{
    return l == MET_SIM_LOOKUP_TOKEN ? "token" : "sequential";
}

const char *met_sim_start_name(met_sim_start s)
{
    return s == MET_SIM_START_WARM ? "warm" : "cold";
}

const char *met_sim_prefetch_name(met_sim_prefetch p)
{
    return p == MET_SIM_PREFETCH_ORACLE    ? "oracle"
           : p == MET_SIM_PREFETCH_PREDICT ? "predict"
                                           : "none";
}

const char *met_sim_prompt_name(met_sim_prompt p)
{
    return p == MET_SIM_PROMPT_TOKENS ? "tokens" : "recorded";
}

static json_t *counts_json(const met_sim_counts *c)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:I, "
                     "s:I}",
                     "accesses", (json_int_t)c->accesses, "hits", (json_int_t)c->hits,
                     "misses", (json_int_t)c->misses, "hit_rate", c->hit_rate,
                     "sample_hit_rate", c->sample_hit_rate, "warm_hits",
                     (json_int_t)c->warm_hits, "reloads", (json_int_t)c->reloads, "uncached",
                     (json_int_t)c->uncached, "evictions", (json_int_t)c->evictions,
                     "bytes_moved", c->bytes_moved, "stall_us", c->stall_us,
                     "prefetch_issued", (json_int_t)c->prefetch_issued, "prefetch_useful",
                     (json_int_t)c->prefetch_useful, "prefetch_wasted",
                     (json_int_t)c->prefetch_wasted, "prefetch_dropped",
                     (json_int_t)c->prefetch_dropped);
    json_object_set_new(o, "predicted", json_integer(c->predicted));
    json_object_set_new(o, "predicted_used", json_integer(c->predicted_used));
    json_object_set_new(o, "prediction_accuracy",
                        json_real(c->predicted ? (double)c->predicted_used / (double)c->predicted
                                               : 0.0));
    return o;
}

static json_t *options_json(const met_sim_config *c)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:f, s:f, s:f, s:f}",
                     "policy", c->ops ? c->ops->name : c->policy, "cache_experts",
                     (json_int_t)c->cache_experts, "cache_scope", met_sim_scope_name(c->scope),
                     "lookup", met_sim_lookup_name(c->lookup), "start",
                     met_sim_start_name(c->start), "prefetch",
                     met_sim_prefetch_name(c->prefetch), "layer", c->layer, "lookahead",
                     c->lookahead, "seed", (json_int_t)c->seed, "lfu_age",
                     (json_int_t)c->lfu_age, "expert_bytes", c->expert_bytes, "link_gbps",
                     c->link_gbps, "link_latency_us", c->link_latency_us, "compute_us",
                     c->compute_us);
}

/* The mixed-precision counters, with lp_bytes > 0. */
static json_t *lp_counts(json_t *o, const met_sim_counts *c, const met_sim_config *cfg)
{
    if (cfg->lp_bytes > 0) {
        json_object_set_new(o, "lp_loads", json_integer(c->lp_loads));
        json_object_set_new(o, "lp_served", json_integer(c->lp_served));
        json_object_set_new(o, "lp_upgrades", json_integer(c->lp_upgrades));
    }
    return o;
}

json_t *met_sim_result_json(const met_sim_result *r, const met_sim_config *cfg)
{
    json_t *totals = lp_counts(counts_json(&r->total), &r->total, cfg);
    json_object_set_new(totals, "samples", json_integer(r->n_samples));
    json_object_set_new(totals, "tokens", json_integer(r->n_tokens));
    json_object_set_new(totals, "load_us", json_real(r->load_us));
    json_object_set_new(totals, "compute_us", json_real(r->compute_us));
    json_object_set_new(totals, "link_busy_us", json_real(r->link_busy_us));
    json_object_set_new(totals, "overlap_us", json_real(r->overlap_us));
    json_object_set_new(totals, "time_us", json_real(r->time_us));
    json_object_set_new(totals, "tokens_per_s", json_real(r->tokens_per_s));
    json_object_set_new(totals, "batched_samples", json_integer(r->batched_samples));
    json_object_set_new(totals, "prompt_note",
                        r->prompt_note ? json_string(r->prompt_note) : json_null());
    json_t *layers = json_array();
    for (int32_t i = 0; i < r->n_layers; i++) {
        json_t *l = lp_counts(counts_json(&r->layers[i]), &r->layers[i], cfg);
        json_object_set_new(l, "layer", json_integer(r->first_layer + i));
        json_array_append_new(layers, l);
    }
    json_t *options = options_json(cfg);
    if (cfg->prefetch == MET_SIM_PREFETCH_PREDICT) {
        static const char *const kinds[] = {"transition", "history", "frequency"};
        json_object_set_new(options, "predict_kind",
                            json_string(kinds[cfg->predict_kind >= 0 && cfg->predict_kind < 3
                                                  ? cfg->predict_kind : 0]));
        json_object_set_new(options, "predict_n", json_integer(cfg->predict_n));
    }
    json_object_set_new(options, "prompt", json_string(met_sim_prompt_name(cfg->prompt)));
    if (cfg->lp_bytes > 0) {
        json_object_set_new(options, "lp_bytes", json_real(cfg->lp_bytes));
        json_object_set_new(options, "lp_threshold", json_real(cfg->lp_threshold));
        json_object_set_new(options, "lp_last", json_boolean(cfg->lp_last));
        json_object_set_new(options, "lp_always", json_boolean(cfg->lp_always != NULL));
    }
    return json_pack("{s:o, s:o, s:o}", "options", options, "totals", totals, "layers",
                     layers);
}
