/*
 * bench_counters_engine.h — the real-engine mode of `moebench
 * bench-counters` (--model FILE): each decode step timed twice on
 * identical work, region counters on and off (see the .c file).
 */
#ifndef HX_BENCH_COUNTERS_ENGINE_H
#define HX_BENCH_COUNTERS_ENGINE_H

#include "engine/err.h"
#include "metrics/counters.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct hx_bce_opts {
    const char *model;       /* GGUF file                                   */
    int64_t steps;           /* decode steps, each timed on and off          */
    int64_t prompt;          /* prompt tokens evaluated first (not timed)    */
    int threads;             /* engine threads; 1 makes CPU time meaningful  */
    bool prefault;           /* map the whole file first                     */
    bool progress;           /* a progress line on stderr                    */
    bool no_coalesce;        /* read at every boundary (met_regions_opts)    */
} hx_bce_opts;

typedef struct hx_bce_result {
    double cpu_ratio, cpu_lo, cpu_hi;    /* median on/off thread-CPU ratio, 95 % CI */
    double wall_ratio, wall_lo, wall_hi; /* the same for wall time                 */
    double cpu_ms_off, cpu_ms_on;        /* median token thread CPU time, ms       */
    double pairs_per_token;              /* region begin/end pairs per hooked token */
    double readings_per_token;           /* full counter readings per hooked token  */
    int64_t mismatches;                  /* steps whose on/off logits differed (0)  */
    int32_t *prompt;                     /* [n_prompt] the prompt used (malloc'd)   */
    int64_t n_prompt;
    int32_t *generated;                  /* [n_generated] greedy tokens (malloc'd)  */
    int64_t n_generated;
} hx_bce_result;

/* Opens the model, evaluates the prompt, then decodes `pairs` greedy
 * tokens, each twice at the same position (rewinding in between), once
 * with the region hooks of counter set c and once without, and fills r.
 * Free r with hx_bce_result_free (also after an error). */
int hx_bce_run(const hx_bce_opts *o, met_counters *c, hx_bce_result *r, eng_err *err);
void hx_bce_result_free(hx_bce_result *r);

#endif
