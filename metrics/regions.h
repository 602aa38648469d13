/*
 * regions.h — per-region accounting behind the engine's hook table
 * (engine/hooks.h): calls, wall time, rusage and every counter of a
 * met_counters set, per region, summed over threads, per token and in
 * total; derived metrics (IPC, misses per 1000 instructions, CPU use,
 * FLOP/s, expert-load bytes and bandwidth); the region table as text and as
 * a jansson object. docs/counters.md explains how to read the table.
 *
 * Nested regions are EXCLUSIVE: a parent's counts do not include its
 * children's. On a child's begin the thread's counters are read and the
 * delta since the last reading is charged to the parent; on the child's end
 * the delta is charged to the child and the parent resumes. So the regions
 * of one thread partition its time: summed, they equal the thread's time
 * inside any region. Each thread has its own region stack; the totals are
 * summed over threads (a region run on four workers at once reports four
 * threads' worth of time, so shares of token time can exceed 100 %).
 *
 * Nesting errors (an end without a begin, an end that does not match the
 * innermost open region, an unknown region id, a stack deeper than 32) are
 * counted and the first one's message kept (met_regions_errors); with
 * opts.abort_on_misuse (the default in builds without NDEBUG) they also
 * fail an assert, so an engine that mis-nests is caught in debug builds.
 * A mismatched end that names an open outer region closes it and every
 * region inside it.
 *
 * Tokens: token_done closes a token: its wall time is the time since the
 * previous token_done (the first token starts at the first region begin
 * after open or reset) and its per-region figures are the totals' growth
 * since then (all threads).
 *
 * Callgrind mode: when the process runs under valgrind (RUNNING_ON_VALGRIND,
 * or opts.callgrind = 1) every region boundary calls
 * CALLGRIND_DUMP_STATS_AT("moebench:<region>") naming the region whose
 * interval just ended ("moebench:outside" for time outside any region), so
 * summing each dump's instruction count by label gives exact, repeatable
 * exclusive instruction counts per region (scripts/callgrind-regions.sh).
 *
 * Thread-safety: begin/end/token_done/cache_event/add_flops may be called
 * from any threads concurrently (each thread keeps its own stack and
 * totals, written only by itself). The queries (total, token, print, json)
 * may run at any time; figures of regions still running on other threads
 * are those of their last boundary. open/free/reset: one thread, engine
 * idle.
 */
#ifndef MET_REGIONS_H
#define MET_REGIONS_H

#include "engine/err.h"
#include "engine/hooks.h"
#include "metrics/counters.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

typedef struct met_regions met_regions;

typedef struct met_regions_opts {
    int abort_on_misuse;     /* -1 (default): assert in builds without NDEBUG; 0 count only; 1 abort */
    int callgrind;           /* -1 (default): on when running under valgrind; 0 off; 1 on */
    int coalesce;            /* -1 (default) or 1: a top-level region that begins within
                                5 us of the previous one's end reuses that reading (the
                                gap is charged to it); 0: every boundary reads. Never
                                under callgrind. */
} met_regions_opts;

/* Fills *o with the defaults (-1, -1, -1). */
void met_regions_opts_default(met_regions_opts *o);

/* counters: the event set to read at each boundary, borrowed (must outlive
 * the regions object); NULL: wall time and rusage only (an empty set is
 * made and owned). opts may be NULL (defaults). */
int met_regions_open(met_regions **out, met_counters *counters, const met_regions_opts *opts,
                     eng_err *err);
void met_regions_free(met_regions *r);
/* Zeroes every total and forgets the tokens (e.g. after warm-up). */
void met_regions_reset(met_regions *r);

/* Points h's region_begin, region_end, token_done and cache callbacks at r
 * (h->user = r); leaves h->routing alone. A caller that chains its own cache
 * hook calls met_regions_cache_event from it instead. */
void met_regions_hooks(met_regions *r, eng_hooks *h);

void met_regions_begin(met_regions *r, eng_region reg);
void met_regions_end(met_regions *r, eng_region reg);
void met_regions_token_done(met_regions *r, int64_t pos);
/* Counts loads (ENG_CACHE_LOAD_DONE: bytes, ns), hits, misses, prefetches
 * and evictions for the expert-load figures. */
void met_regions_cache_event(met_regions *r, const eng_cache_event *ev);
/* Adds FLOPs known to have been done in region reg (the caller computes
 * them from shapes: 2*m*n*k per matrix product). */
void met_regions_add_flops(met_regions *r, eng_region reg, double flops);

/* Exclusive figures of one region; v[] has the fields of met_sample
 * (MET_S_WALL_NS ...; events from MET_S_EVENT0, see met_counters_fields). */
typedef struct met_region_stats {
    uint64_t calls;          /* begins                                     */
    int64_t v[MET_SAMPLE_MAX];
    double flops;            /* from met_regions_add_flops (totals only)   */
} met_region_stats;

/* Totals of region reg summed over threads. ENG_EINVAL for a bad id. */
int met_regions_total(const met_regions *r, eng_region reg, met_region_stats *out);

/* Tokens closed so far, and one token's wall time (ns; -1 out of range)
 * and per-region figures (ENG_EINVAL out of range). */
size_t met_regions_tokens(const met_regions *r);
int64_t met_regions_token_wall_ns(const met_regions *r, size_t token);
int met_regions_token_stats(const met_regions *r, size_t token, eng_region reg,
                            met_region_stats *out);
/* Sum of all tokens' wall time, ns. */
int64_t met_regions_token_time_ns(const met_regions *r);

/* Nesting errors so far; msg (optional) gets the first one's message. */
uint64_t met_regions_errors(const met_regions *r, char *msg, size_t cap);
/* Per-thread records made so far: threads that have entered a region, less
 * those that reused the record of a thread that had exited. */
int met_regions_threads(const met_regions *r);
/* Full counter readings taken so far over all threads (since open or the
 * last reset): 2 per begin/end pair without coalescing, about one per
 * region plus one per run of back-to-back regions with it. */
uint64_t met_regions_readings(const met_regions *r);
/* Whether boundaries dump callgrind statistics (see above). */
int met_regions_callgrind(const met_regions *r);
/* The counters read at each boundary. */
const met_counters *met_regions_counters(const met_regions *r);

/* Expert-store figures from cache events. */
typedef struct met_regions_loads {
    uint64_t loads, bytes, ns;   /* ENG_CACHE_LOAD_DONE: count, bytes, summed durations */
    uint64_t hits, misses, prefetches, evictions;
} met_regions_loads;
void met_regions_load_stats(const met_regions *r, met_regions_loads *out);

/* Derived metrics of one region's totals; NAN where an input is missing. */
typedef struct met_region_derived {
    double ipc;                  /* instructions / cycles (PAPI_TOT_INS/PAPI_TOT_CYC or perf::INSTRUCTIONS/CYCLES) */
    double cpu_util;             /* (user + sys) / wall                            */
    double task_clock_util;      /* perf::TASK-CLOCK / wall                        */
    double gflops;               /* added FLOPs / exclusive wall ns (per thread-second) */
    double wall_ns_per_token;    /* wall / tokens                                  */
    double token_share;          /* wall / summed token time                       */
    double mpki[MET_COUNTERS_MAX]; /* per event slot: misses per 1000 instructions
                                      (miss events only: names with MISS, PAPI_*CM,
                                      PAPI_BR_MSP, PAPI_TLB_*)                     */
} met_region_derived;
int met_regions_derived(const met_regions *r, eng_region reg, met_region_derived *out);

/* The region table (docs/counters.md "Reading the region table"). */
void met_regions_print(const met_regions *r, FILE *f);
/* The same as one JSON object (new reference; NULL when out of memory).
 * flags: MET_REGIONS_JSON_TOKENS adds per-token arrays. */
enum { MET_REGIONS_JSON_TOKENS = 1 };
json_t *met_regions_json(const met_regions *r, int flags);

#endif
