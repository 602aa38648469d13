/*
 * result.h — what one repetition of an experiment produced: named samples,
 * per-token series, JSON blobs, and the rows the engine-side kinds will
 * fill (PAPI counters per region, cache statistics per layer, routing
 * metrics). An executor (harness/kind.h) fills one hx_result per
 * repetition; the runner adds wall/CPU time, summarises the samples over
 * repetitions and hands everything to the store (harness/db.h), which
 * writes the tables of the same names.
 *
 * Ownership: the result owns copies of every string and array passed in;
 * hx_result_blob takes over the JSON reference. hx_result_clear frees all.
 * Thread-safety: one result belongs to one thread.
 */
#ifndef HX_RESULT_H
#define HX_RESULT_H

#include "engine/err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define HX_NAME_MAX 128 /* longest metric / event / region / blob name */

typedef struct hx_sample {
    char *metric;           /* "wall_ms", "tokens_per_s", "hit_rate", ...   */
    double value;           /* finite                                        */
} hx_sample;

typedef struct hx_series {
    char *metric;           /* "token_ms", ...                               */
    double *v;              /* [n], index = token position (or step)         */
    size_t n;
} hx_series;

typedef struct hx_blob {
    char *name;
    json_t *value;          /* owned reference                               */
} hx_blob;

typedef struct hx_counter_row {
    char region[HX_NAME_MAX];   /* eng_region_name(), or "total"            */
    char event[HX_NAME_MAX];    /* PAPI/libpfm4 name: "perf::TASK-CLOCK"    */
    double value;               /* NaN when the event could not be counted  */
    int64_t enabled_ns, running_ns; /* multiplexing: scale = enabled/running */
} hx_counter_row;

/* Cache statistics of one layer (layer = -1: the whole model). Counts are
 * expert look-ups; bytes are real bytes moved from the slow tier; -1 in a
 * field means "not reported". */
typedef struct hx_cache_row {
    int layer;
    int64_t accesses, hits, misses, evictions;
    int64_t prefetch_issued, prefetch_useful;
    int64_t bytes_loaded, prefetch_wasted_bytes;
    int64_t stall_ns;           /* time the forward pass waited for loads   */
} hx_cache_row;

/* One routing metric value (SRP, SCH, a hit-rate curve point ...).
 * param is the segment length (SRP/SCH) or cache size (curves); NaN when
 * the metric has none. ci_lo/ci_hi NaN when no interval was computed. */
typedef struct hx_routing_row {
    char trace[256];            /* trace file or label, "" when unknown     */
    int layer;                  /* -1: model-wide                           */
    char metric[HX_NAME_MAX];   /* "srp", "sch", "lru_hit_rate", ...        */
    double param, value, ci_lo, ci_hi;
} hx_routing_row;

typedef struct hx_result {
    hx_sample *samples;   size_t nsamples, capsamples;
    hx_series *series;    size_t nseries, capseries;
    hx_blob *blobs;       size_t nblobs, capblobs;
    hx_counter_row *counters; size_t ncounters, capcounters;
    hx_cache_row *cache;  size_t ncache, capcache;
    hx_routing_row *routing; size_t nrouting, caprouting;
} hx_result;

/* Records a sample; a metric already recorded in this result is replaced.
 * ENG_EINVAL for a bad name (empty, too long, control characters) or a
 * non-finite value. */
int hx_result_sample(hx_result *r, const char *metric, double value, eng_err *err);
int hx_result_series(hx_result *r, const char *metric, const double *v, size_t n,
                     eng_err *err);
/* Takes the reference to value (also on error). */
int hx_result_blob(hx_result *r, const char *name, json_t *value, eng_err *err);
int hx_result_counter(hx_result *r, const hx_counter_row *row, eng_err *err);
int hx_result_cache(hx_result *r, const hx_cache_row *row, eng_err *err);
int hx_result_routing(hx_result *r, const hx_routing_row *row, eng_err *err);

/* Value of a sample, or NaN when absent. */
double hx_result_get(const hx_result *r, const char *metric);

void hx_result_clear(hx_result *r);

/* Metric/event names: 1..HX_NAME_MAX-1 printable characters. */
int hx_name_valid(const char *name);

#endif
