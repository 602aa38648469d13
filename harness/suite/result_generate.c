/*
 * result_generate.c — `moebench generate --json` -> an hx_db_result, for the
 * command kind (called by hx_suite_result_from_json when the output has
 * generate's shape: a "summary" object and a "model" object with "arch").
 *
 * What becomes what (docs/database.md, "How the command kind fills the
 * tables"):
 *   samples   every number of "summary" under its own name (decode_tok_s,
 *             prefill_tok_s, decode_ms = total decode time, peak_rss_mib,
 *             ...), tokens_per_s (= decode_tok_s); with offloading
 *             hit_rate, stall_share (decode stall / decode time) and every
 *             number of "cache" as cache.<key>; with --events
 *             regions.tokens, regions.token_time_ns, regions.nesting_errors,
 *             and per region regions.<region>.token_share and
 *             regions.<region>.wall_ns_per_token;
 *             with --trace trace.routing_events
 *   series    decode_ms (one value per generated token, ms)
 *   cache_stats  the "cache" totals (layer -1) and cache.layers[i] (layer i);
 *             bytes_loaded = demand + prefetch bytes, stall_ns from
 *             stall_ms, prefetch_wasted_bytes = wasted prefetches x the
 *             expert size
 *   counter   one row per region and field of "regions": calls, wall_ns,
 *             user_ns, sys_ns, the rusage counts, and every event
 *   skipped   model (parameters), prompt_tokens, tokens, text, logits,
 *             store (the memory store's figures say nothing about caching);
 *             all of it stays in the "output" blob
 *
 * Design notes: a dedicated mapper, not the generic walk, because the
 * generic rules would read "store" and regions' "expert_loads" as more
 * cache rows (both have hits and misses) and record token ids as series.
 */
#include "harness/suite/suite.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hx_suite_result_is_generate(const json_t *root)
{
    return json_is_object(json_object_get(root, "summary")) &&
           json_is_string(json_object_get(json_object_get(root, "model"), "arch"));
}

static double num(const json_t *o, const char *key, double dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* Every finite number of object o as a sample prefix + key. */
static int numbers(hx_db_result *r, const char *prefix, const json_t *o, eng_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            continue;
        char name[HX_DB_NAME_MAX];
        if ((size_t)snprintf(name, sizeof name, "%s%s", prefix, key) >= sizeof name)
            continue;
        int rc = hx_db_result_sample(r, name, json_number_value(v), err);
        if (rc)
            return rc;
    }
    return ENG_OK;
}

static int cache_row(hx_db_result *r, int layer, const json_t *c, double expert_bytes,
                     eng_err *err)
{
    hx_db_cache_row row = {.layer = layer};
    row.accesses = (int64_t)num(c, "accesses", -1);
    row.hits = (int64_t)num(c, "hits", -1);
    row.misses = (int64_t)num(c, "misses", -1);
    row.evictions = (int64_t)num(c, "evictions", -1);
    row.prefetch_issued = (int64_t)num(c, "prefetch_issued", -1);
    row.prefetch_useful = (int64_t)num(c, "prefetch_useful", -1);
    double bd = num(c, "bytes_demand", -1), bp = num(c, "bytes_prefetch", 0);
    row.bytes_loaded = bd < 0 ? -1 : (int64_t)(bd + bp);
    double wasted = num(c, "prefetch_wasted", -1);
    row.prefetch_wasted_bytes =
        wasted < 0 || expert_bytes < 0 ? -1 : (int64_t)(wasted * expert_bytes);
    double stall = num(c, "stall_ms", -1);
    row.stall_ns = stall < 0 ? -1 : (int64_t)llround(stall * 1e6);
    return hx_db_result_cache(r, &row, err);
}

int hx_suite_result_cache(hx_db_result *r, const json_t *root, double time_ms, eng_err *err)
{
    const json_t *c = json_object_get(root, "cache");
    if (!json_is_object(c))
        return ENG_OK;
    double eb = num(c, "expert_bytes", -1);
    int rc = cache_row(r, -1, c, eb, err);
    const json_t *layers = json_object_get(c, "layers");
    for (size_t i = 0; !rc && i < json_array_size(layers); i++)
        rc = cache_row(r, (int)i, json_array_get(layers, i), eb, err);
    if (!rc)
        rc = numbers(r, "cache.", c, err);
    if (!rc && json_is_number(json_object_get(c, "hit_rate")))
        rc = hx_db_result_sample(r, "hit_rate", num(c, "hit_rate", 0), err);
    double dstall = num(c, "decode_stall_ms", -1);
    if (!rc && time_ms > 0 && dstall >= 0)
        rc = hx_db_result_sample(r, "stall_share", dstall / time_ms, err);
    return rc;
}

static int counter(hx_db_result *r, const char *region, const char *event, double v, eng_err *err)
{
    hx_db_counter_row row = {.value = v, .enabled_ns = -1, .running_ns = -1};
    snprintf(row.region, sizeof row.region, "%s", region);
    snprintf(row.event, sizeof row.event, "%s", event);
    return hx_db_result_counter(r, &row, err);
}

/* regions.regions[]: {region, calls, wall_ns, ..., events: {name: v}}. */
static int region_rows(hx_db_result *r, const json_t *root, eng_err *err)
{
    const json_t *g = json_object_get(root, "regions");
    if (!json_is_object(g))
        return ENG_OK;
    static const char *const fixed[] = {"calls", "wall_ns", "user_ns", "sys_ns", "minflt",
                                        "majflt", "nvcsw", "nivcsw"};
    const json_t *row;
    size_t i;
    json_array_foreach(json_object_get(g, "regions"), i, row) {
        const char *region = json_string_value(json_object_get(row, "region"));
        if (!region)
            continue;
        int rc = ENG_OK;
        for (size_t k = 0; !rc && k < sizeof fixed / sizeof *fixed; k++)
            if (json_is_number(json_object_get(row, fixed[k])))
                rc = counter(r, region, fixed[k], num(row, fixed[k], 0), err);
        static const char *const per[] = {"token_share", "wall_ns_per_token"};
        for (size_t k = 0; !rc && k < 2; k++) {
            char name[HX_DB_NAME_MAX];
            snprintf(name, sizeof name, "regions.%.40s.%s", region, per[k]);
            double v = num(row, per[k], NAN);
            if (isfinite(v))
                rc = hx_db_result_sample(r, name, v, err);
        }
        const char *ev;
        json_t *v;
        json_object_foreach(json_object_get(row, "events"), ev, v) {
            if (!rc && json_is_number(v))
                rc = counter(r, region, ev, json_number_value(v), err);
        }
        if (rc)
            return rc;
    }
    static const char *const keys[] = {"tokens", "token_time_ns", "nesting_errors"};
    for (size_t k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "regions.%s", keys[k]);
        if (json_is_number(json_object_get(g, keys[k]))) {
            int rc = hx_db_result_sample(r, name, num(g, keys[k], 0), err);
            if (rc)
                return rc;
        }
    }
    return ENG_OK;
}

/* Which way the names this mapping records are better (regress). */
static const char *const gen_dirs[][2] = {
    {"tokens_per_s", "higher"}, {"*tok_s", "higher"}, {"hit_rate", "higher"},
    {"stall_share", "lower"},   {"*_ms", "lower"},    {"peak_rss*", "lower"},
    {"generated_tokens", "equal"}, {"tokens_fnv1a", "equal"},
};

/* The generated token ids in one exact number: FNV-1a (32 bits) over the
 * ids as little-endian 32-bit words, so a regression check sees a changed
 * token without storing the sequence; NaN when there are none. */
static double tokens_fnv1a(const json_t *tokens)
{
    if (!json_array_size(tokens))
        return NAN;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < json_array_size(tokens); i++) {
        uint32_t id = (uint32_t)json_integer_value(json_array_get(tokens, i));
        for (int b = 0; b < 4; b++)
            h = (h ^ ((id >> (8 * b)) & 0xff)) * 16777619u;
    }
    return (double)h;
}

int hx_suite_result_from_generate(hx_db_result *r, const json_t *root, eng_err *err)
{
    const json_t *sum = json_object_get(root, "summary");
    int rc = numbers(r, "", sum, err);
    for (size_t i = 0; !rc && i < sizeof gen_dirs / sizeof *gen_dirs; i++)
        rc = hx_db_result_direction(r, gen_dirs[i][0], gen_dirs[i][1], err);
    double fp = tokens_fnv1a(json_object_get(root, "tokens"));
    if (!rc && !isnan(fp))
        rc = hx_db_result_sample(r, "tokens_fnv1a", fp, err);
    if (!rc && json_is_number(json_object_get(sum, "decode_tok_s")))
        rc = hx_db_result_sample(r, "tokens_per_s", num(sum, "decode_tok_s", 0), err);
    const json_t *d = json_object_get(root, "decode_ms");
    size_t n = json_array_size(d);
    if (!rc && n) {
        double *buf = malloc(n * sizeof *buf);
        if (!buf)
            return eng_err_set(err, ENG_ENOMEM, "out of memory reading 'decode_ms'");
        for (size_t i = 0; i < n; i++)
            buf[i] = json_number_value(json_array_get(d, i));
        rc = hx_db_result_series(r, "decode_ms", buf, n, err);
        free(buf);
    }
    if (!rc)
        rc = hx_suite_result_cache(r, root, num(sum, "decode_ms", 0), err);
    if (!rc)
        rc = region_rows(r, root, err);
    const json_t *tr = json_object_get(root, "trace");
    if (!rc && json_is_object(tr) && json_is_number(json_object_get(tr, "routing_events")))
        rc = hx_db_result_sample(r, "trace.routing_events", num(tr, "routing_events", 0), err);
    return rc;
}
