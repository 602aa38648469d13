/*
 * result_json.c — the JSON a command prints -> an hx_db_result
 * (hx_suite_result_from_json; the rules are in docs/database.md, "How the command
 * kind fills the tables").
 *
 * Generic rules: numbers become samples named by their dotted path, arrays
 * of numbers series, objects with `metric` + `value` routing_metric rows,
 * objects with `hits` + `misses` cache_stats rows. Two shapes of our own
 * commands get more: `moebench simulate --json` (its top-level `totals`
 * are recorded without the prefix, its `options` echo the inputs and are
 * skipped) and `moebench metrics --json` (every SRP value and every point
 * of every hit-rate curve becomes a routing_metric row). `moebench generate
 * --json` has its own mapper (result_generate.c).
 */
#include "harness/suite/suite.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX 4096 /* numeric leaves recorded per output */

typedef struct walk {
    hx_db_result *r;
    eng_err *err;
    const char *trace;   /* top-level "trace", for routing rows */
    int nmetrics;
} walk;

static double num_or(const json_t *o, const char *const *keys, double dflt)
{
    for (; *keys; keys++) {
        const json_t *v = json_object_get(o, *keys);
        if (json_is_number(v))
            return json_number_value(v);
    }
    return dflt;
}

static int layer_of(const json_t *o)
{
    const json_t *l = json_object_get(o, "layer");
    if (json_is_integer(l) && json_integer_value(l) >= -1 && json_integer_value(l) < 1 << 20)
        return (int)json_integer_value(l);
    return -1; /* absent, "all", "model": model-wide */
}

static int routing_row(walk *w, const json_t *o)
{
    static const char *const pk[] = {"param", "seg_len", "segment", "cache_size", "cache_m",
                                     "size", NULL};
    static const char *const lo[] = {"ci_lo", "ci_lb", NULL}, *const hi[] = {"ci_hi", "ci_ub",
                                                                            NULL};
    hx_db_routing_row row = {.layer = layer_of(o)};
    const json_t *tr = json_object_get(o, "trace");
    snprintf(row.trace, sizeof row.trace, "%s",
             json_is_string(tr) ? json_string_value(tr) : w->trace ? w->trace : "");
    snprintf(row.metric, sizeof row.metric, "%s", json_string_value(json_object_get(o, "metric")));
    row.value = json_number_value(json_object_get(o, "value"));
    row.param = num_or(o, pk, NAN);
    row.ci_lo = num_or(o, lo, NAN);
    row.ci_hi = num_or(o, hi, NAN);
    const json_t *ci = json_object_get(o, "ci");
    if (json_is_array(ci) && json_array_size(ci) == 2) {
        row.ci_lo = json_number_value(json_array_get(ci, 0));
        row.ci_hi = json_number_value(json_array_get(ci, 1));
    }
    return hx_db_result_routing(w->r, &row, w->err);
}

static int cache_row(walk *w, const json_t *o)
{
#define K(...) ((const char *const[]){__VA_ARGS__, NULL})
    hx_db_cache_row row = {.layer = layer_of(o)};
    row.hits = (int64_t)num_or(o, K("hits"), -1);
    row.misses = (int64_t)num_or(o, K("misses"), -1);
    row.accesses = (int64_t)num_or(o, K("accesses", "lookups"), (double)(row.hits + row.misses));
    row.evictions = (int64_t)num_or(o, K("evictions"), -1);
    row.prefetch_issued = (int64_t)num_or(o, K("prefetch_issued"), -1);
    row.prefetch_useful = (int64_t)num_or(o, K("prefetch_useful"), -1);
    row.bytes_loaded = (int64_t)num_or(o, K("bytes_loaded", "bytes_moved", "bytes"), -1);
    row.prefetch_wasted_bytes = (int64_t)num_or(o, K("prefetch_wasted_bytes", "wasted_bytes"), -1);
    double stall_us = num_or(o, K("stall_us"), -1);
    row.stall_ns = (int64_t)num_or(o, K("stall_ns"), stall_us < 0 ? -1 : stall_us * 1e3);
#undef K
    return hx_db_result_cache(w->r, &row, w->err);
}

static int is_routing(const json_t *o)
{
    return json_is_string(json_object_get(o, "metric")) &&
           json_is_number(json_object_get(o, "value"));
}

static int is_cache(const json_t *o)
{
    return json_is_number(json_object_get(o, "hits")) &&
           json_is_number(json_object_get(o, "misses"));
}

static int walk_value(walk *w, const char *path, const json_t *v);

static int walk_array(walk *w, const char *path, const json_t *a)
{
    size_t n = json_array_size(a), nnum = 0;
    for (size_t i = 0; i < n; i++)
        nnum += json_is_number(json_array_get(a, i));
    if (n && nnum == n && path[0]) {
        double *buf = malloc(n * sizeof *buf);
        if (!buf)
            return eng_err_set(w->err, ENG_ENOMEM, "out of memory reading '%s'", path);
        for (size_t i = 0; i < n; i++)
            buf[i] = json_number_value(json_array_get(a, i));
        int rc = hx_db_result_series(w->r, path, buf, n, w->err);
        free(buf);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(a, i);
        int rc = 0;
        if (json_is_object(o) && is_routing(o))
            rc = routing_row(w, o);
        else if (json_is_object(o) && is_cache(o))
            rc = cache_row(w, o);
        if (rc)
            return rc;
    }
    return ENG_OK; /* other arrays (event lists, ...) stay in the output blob */
}

static int walk_value(walk *w, const char *path, const json_t *v)
{
    if (json_is_number(v)) {
        if (++w->nmetrics > METRICS_MAX)
            return eng_err_set(w->err, ENG_EFORMAT, "more than %d numbers in the output",
                               METRICS_MAX);
        if (strlen(path) >= HX_DB_NAME_MAX)
            return ENG_OK; /* too deep to be a metric name; kept in the blob */
        return hx_db_result_sample(w->r, path, json_number_value(v), w->err);
    }
    if (json_is_array(v))
        return walk_array(w, path, v);
    if (!json_is_object(v))
        return ENG_OK;
    if (path[0] && is_cache(v)) {
        int rc = cache_row(w, v);
        if (rc)
            return rc;
    }
    const char *key;
    json_t *child;
    json_object_foreach((json_t *)v, key, child) {
        int top = !path[0];
        if (top && !strcmp(key, "options"))
            continue; /* simulate's echo of its inputs: parameters, not results */
        int rc = 0;
        if (top && !strcmp(key, "totals") && json_is_object(child)) {
            if (is_cache(child))
                rc = cache_row(w, child);
            if (!rc)
                rc = walk_value(w, "", child); /* totals.x is recorded as x */
        } else {
            char sub[512];
            snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", key);
            rc = walk_value(w, sub, child);
        }
        if (rc)
            return rc;
    }
    return ENG_OK;
}

/* ---- moebench metrics --json -------------------------------------------- */

/* One hit-rate curve {hit_rate: [..], ci_lb: [..], ci_ub: [..]} over the
 * cache sizes cache_m[i] -> one row per size. */
static int curve_rows(walk *w, int layer, const char *metric, const json_t *cm,
                      const json_t *c)
{
    const json_t *hr = json_object_get(c, "hit_rate");
    const json_t *lo = json_object_get(c, "ci_lb"), *hi = json_object_get(c, "ci_ub");
    for (size_t i = 0; i < json_array_size(hr) && i < json_array_size(cm); i++) {
        hx_db_routing_row row = {.layer = layer, .param = json_number_value(json_array_get(cm, i)),
                              .value = json_number_value(json_array_get(hr, i)),
                              .ci_lo = NAN, .ci_hi = NAN};
        snprintf(row.trace, sizeof row.trace, "%s", w->trace ? w->trace : "");
        snprintf(row.metric, sizeof row.metric, "%s", metric);
        if (json_is_number(json_array_get(lo, i)) && json_is_number(json_array_get(hi, i))) {
            row.ci_lo = json_number_value(json_array_get(lo, i));
            row.ci_hi = json_number_value(json_array_get(hi, i));
        }
        int rc = hx_db_result_routing(w->r, &row, w->err);
        if (rc)
            return rc;
    }
    return ENG_OK;
}

/* One layer's (or the model's) block: srp per segment length, sch per
 * segment length (metric "sch/L"), lru/lfu/belady curves. */
static int lrc_block(walk *w, int layer, const json_t *b)
{
    const json_t *cm = json_object_get(b, "cache_m");
    const char *seg;
    json_t *v;
    int rc = ENG_OK;
    json_object_foreach(json_object_get(b, "srp"), seg, v) {
        hx_db_routing_row row = {.layer = layer, .param = atof(seg), .ci_lo = NAN, .ci_hi = NAN};
        snprintf(row.trace, sizeof row.trace, "%s", w->trace ? w->trace : "");
        snprintf(row.metric, sizeof row.metric, "srp");
        row.value = json_number_value(json_object_get(v, "best_f1"));
        if (json_is_number(json_object_get(v, "ci_lb"))) {
            row.ci_lo = json_number_value(json_object_get(v, "ci_lb"));
            row.ci_hi = json_number_value(json_object_get(v, "ci_ub"));
        }
        if ((rc = hx_db_result_routing(w->r, &row, w->err)))
            return rc;
    }
    json_object_foreach(json_object_get(b, "sch"), seg, v) {
        char m[64];
        snprintf(m, sizeof m, "sch/%.40s", seg);
        if ((rc = curve_rows(w, layer, m, cm, v)))
            return rc;
    }
    static const char *const curves[] = {"lru", "lfu", "belady"};
    for (int i = 0; !rc && i < 3; i++)
        if (json_is_object(json_object_get(b, curves[i])))
            rc = curve_rows(w, layer, curves[i], cm, json_object_get(b, curves[i]));
    return rc;
}

static int is_lrc(const json_t *root)
{
    const json_t *l0 = json_array_get(json_object_get(root, "layers"), 0);
    return json_is_object(l0) && (json_is_object(json_object_get(l0, "srp")) ||
                                  json_is_object(json_object_get(l0, "lru")));
}

static int lrc_rows(walk *w, const json_t *root)
{
    const json_t *layers = json_object_get(root, "layers");
    for (size_t i = 0; i < json_array_size(layers); i++) {
        int rc = lrc_block(w, (int)i, json_array_get(layers, i));
        if (rc)
            return rc;
    }
    const json_t *model = json_object_get(root, "model");
    return json_is_object(model) ? lrc_block(w, -1, model) : ENG_OK;
}

/* "directions": {NAME_OR_PATTERN: "higher" | "lower" | "equal"}: the
 * producer's word on which way its numbers are better. */
static int directions(hx_db_result *r, const json_t *root, eng_err *err)
{
    const json_t *d = json_is_object(root) ? json_object_get(root, "directions") : NULL;
    const char *k;
    json_t *v;
    if (d && !json_is_object(d))
        return eng_err_set(err, ENG_EFORMAT, "'directions' must be an object");
    json_object_foreach((json_t *)d, k, v) {
        int rc = hx_db_result_direction(r, k, json_string_value(v), err);
        if (rc)
            return eng_err_prefix(err, "'directions'");
    }
    return ENG_OK;
}

int hx_suite_result_from_json(hx_db_result *r, const json_t *root, const char *default_trace,
                        eng_err *err)
{
    int drc = directions(r, root, err);
    if (drc)
        return drc;
    if (hx_suite_result_is_generate(root))
        return hx_suite_result_from_generate(r, root, err);
    walk w = {r, err, json_string_value(json_object_get(root, "trace")), 0};
    if (!w.trace)
        w.trace = default_trace;
    int rc = ENG_OK;
    if (json_is_object(root) && is_cache(root))
        rc = cache_row(&w, root);
    if (!rc && json_is_object(root) && is_lrc(root))
        rc = lrc_rows(&w, root);
    return rc ? rc : walk_value(&w, "", root);
}
