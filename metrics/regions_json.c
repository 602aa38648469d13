/*
 * regions_json.c — the region table as one jansson object (the layout is
 * documented in docs/counters.md, "JSON"). Built only on the public
 * queries; NAN becomes null because JSON has no NaN.
 */
#include "metrics/regions.h"

#include <math.h>
#include <stdlib.h>

static json_t *num(double v)
{
    return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static json_t *events_json(const met_counters *c)
{
    json_t *a = json_array();
    for (size_t i = 0; i < met_counters_requested(c); i++) {
        const met_event_status *s = met_counters_status(c, i);
        double frac = s->active ? met_counters_running_fraction(c, (size_t)s->slot) : NAN;
        json_array_append_new(a, json_pack("{s:s, s:b, s:s, s:s, s:o}", "name", s->name,
                                           "active", s->active, "via", s->via, "reason",
                                           s->reason, "running_fraction",
                                           num(frac < 0 ? NAN : frac)));
    }
    return a;
}

/* The fixed fields and an "events" object of one stats record. */
static json_t *stats_json(const met_counters *c, const met_region_stats *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "calls", json_integer((json_int_t)s->calls));
    for (size_t k = 0; k < MET_S_EVENT0; k++)
        json_object_set_new(o, met_counters_field_name(c, k), json_integer(s->v[k]));
    json_t *ev = json_object();
    for (size_t k = 0; k < met_counters_count(c); k++)
        json_object_set_new(ev, met_counters_event_name(c, k),
                            json_integer(s->v[MET_S_EVENT0 + k]));
    json_object_set_new(o, "events", ev);
    return o;
}

static json_t *region_json(const met_regions *r, eng_region g)
{
    const met_counters *c = met_regions_counters(r);
    met_region_stats s;
    met_region_derived d;
    met_regions_total(r, g, &s);
    met_regions_derived(r, g, &d);
    json_t *o = json_object();
    json_object_set_new(o, "region", json_string(eng_region_name(g)));
    json_t *st = stats_json(c, &s);
    json_object_update(o, st);
    json_decref(st);
    json_object_set_new(o, "flops", json_real(s.flops));
    json_object_set_new(o, "wall_ns_per_token", num(d.wall_ns_per_token));
    json_object_set_new(o, "token_share", num(d.token_share));
    json_object_set_new(o, "ipc", num(d.ipc));
    json_object_set_new(o, "cpu_util", num(d.cpu_util));
    json_object_set_new(o, "task_clock_util", num(d.task_clock_util));
    json_object_set_new(o, "gflops", num(d.gflops));
    json_t *m = json_object();
    for (size_t k = 0; k < met_counters_count(c); k++)
        if (!isnan(d.mpki[k]))
            json_object_set_new(m, met_counters_event_name(c, k), json_real(d.mpki[k]));
    json_object_set_new(o, "mpki", m);
    return o;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* mean, p50, p90, max of the tokens' wall times (nearest-rank). */
static json_t *token_wall_json(const met_regions *r)
{
    size_t n = met_regions_tokens(r);
    int64_t *w = n ? malloc(n * sizeof *w) : NULL;
    if (!w)
        return json_null();
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)(w[i] = met_regions_token_wall_ns(r, i));
    qsort(w, n, sizeof *w, cmp_i64);
    json_t *o = json_pack("{s:f, s:I, s:I, s:I}", "mean", sum / (double)n, "p50",
                          (json_int_t)w[(n - 1) / 2], "p90", (json_int_t)w[(n * 9 + 9) / 10 - 1],
                          "max", (json_int_t)w[n - 1]);
    free(w);
    return o;
}

static json_t *loads_json(const met_regions *r)
{
    met_regions_loads l;
    met_regions_load_stats(r, &l);
    size_t nt = met_regions_tokens(r);
    met_region_stats ld;
    met_regions_total(r, ENG_REGION_EXPERT_LOAD, &ld);
    double region_ns = (double)ld.v[MET_S_WALL_NS];
    return json_pack("{s:I, s:I, s:I, s:o, s:o, s:o, s:I, s:I, s:I, s:I}", "loads",
                     (json_int_t)l.loads, "bytes", (json_int_t)l.bytes, "ns", (json_int_t)l.ns,
                     "bytes_per_token", num(nt ? (double)l.bytes / (double)nt : NAN),
                     "gb_per_s", num(l.ns ? (double)l.bytes / (double)l.ns : NAN),
                     "gb_per_s_load_region",
                     num(l.bytes && region_ns > 0 ? (double)l.bytes / region_ns : NAN), "hits",
                     (json_int_t)l.hits, "misses", (json_int_t)l.misses, "prefetches",
                     (json_int_t)l.prefetches, "evictions", (json_int_t)l.evictions);
}

static json_t *tokens_json(const met_regions *r)
{
    const met_counters *c = met_regions_counters(r);
    json_t *a = json_array();
    for (size_t i = 0; i < met_regions_tokens(r); i++) {
        json_t *regs = json_object();
        for (int g = 0; g < ENG_REGION_COUNT; g++) {
            met_region_stats s;
            if (met_regions_token_stats(r, i, (eng_region)g, &s) == ENG_OK && s.calls)
                json_object_set_new(regs, eng_region_name((eng_region)g), stats_json(c, &s));
        }
        json_array_append_new(a, json_pack("{s:I, s:o}", "wall_ns",
                                           (json_int_t)met_regions_token_wall_ns(r, i),
                                           "regions", regs));
    }
    return a;
}

json_t *met_regions_json(const met_regions *r, int flags)
{
    const met_counters *c = met_regions_counters(r);
    char msg[256], terr[256];
    uint64_t ne = met_regions_errors(r, msg, sizeof msg);
    int te = met_counters_thread_errors(c, terr, sizeof terr);
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "backend", json_string(met_backend_name(met_counters_backend(c))));
    json_object_set_new(o, "backend_note", json_string(met_counters_backend_note(c)));
    json_object_set_new(o, "multiplexed", json_boolean(met_counters_multiplexed(c)));
    json_object_set_new(o, "events", events_json(c));
    json_object_set_new(o, "thread_errors", json_integer(te));
    json_object_set_new(o, "thread_error", json_string(terr));
    json_object_set_new(o, "threads", json_integer(met_regions_threads(r)));
    json_object_set_new(o, "tokens", json_integer((json_int_t)met_regions_tokens(r)));
    json_object_set_new(o, "token_time_ns", json_integer(met_regions_token_time_ns(r)));
    json_object_set_new(o, "token_wall_ns", token_wall_json(r));
    json_object_set_new(o, "nesting_errors", json_integer((json_int_t)ne));
    json_object_set_new(o, "nesting_error", json_string(msg));
    json_object_set_new(o, "callgrind", json_boolean(met_regions_callgrind(r)));
    json_object_set_new(o, "expert_loads", loads_json(r));
    json_t *regs = json_array();
    for (int g = 0; g < ENG_REGION_COUNT; g++) {
        met_region_stats s;
        met_regions_total(r, (eng_region)g, &s);
        if (s.calls)
            json_array_append_new(regs, region_json(r, (eng_region)g));
    }
    json_object_set_new(o, "regions", regs);
    if (flags & MET_REGIONS_JSON_TOKENS)
        json_object_set_new(o, "per_token", tokens_json(r));
    return o;
}
