/*
 * compare.h — what `moebench compare` and `moebench regress` share: run
 * resolution and the values of one run, grouped by experiment label and
 * metric, each group holding the repetitions' values in order.
 *
 * Experiments of two runs are matched by label (name plus k=v of each
 * parameter), so the same suite run twice, on two commits or two
 * machines, lines up. Two experiments of one run with the same label pool
 * their values (rare: a suite that declares one experiment twice).
 *
 * Thread-safety: a hx_cmp_run belongs to one thread.
 */
#ifndef HX_COMPARE_H
#define HX_COMPARE_H

#include "engine/err.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hx_cmp_metric {
    const char *label, *metric; /* experiment label; metric name        */
    double *v;                  /* values by repetition, v[0..n)         */
    size_t n;
} hx_cmp_metric;

typedef struct hx_cmp_exp {
    const char *label, *status, *error; /* status "ok" or "failed"      */
} hx_cmp_exp;

typedef struct hx_cmp_run {
    int64_t id;
    char uuid[40], suite[256], started_at[40];
    hx_cmp_exp *exps;     /* sorted by label (strcmp)                 */
    size_t nexps;
    hx_cmp_metric *m;     /* sorted by (label, metric) (strcmp)       */
    size_t nm;
    char **strings;       /* owned copies of the labels and names     */
    size_t nstrings;
} hx_cmp_run;

/* What hx_cmp_load reads besides the `sample` table. */
enum {
    HX_CMP_SAMPLES = 0,
    /* cache_stats rows as metrics `cache_stats[LAYER].COLUMN` and
     * routing_metric rows as `routing[TRACE-BASENAME layer L P].METRIC` */
    HX_CMP_ROWS = 1,
};

/* RUN argument -> run id: a run id, a UUID or a prefix of at least 4
 * characters, `latest`, `latest:SUITE` or a suite name (its latest run).
 * 0 with ENG_EINVAL on err naming the file when none or ambiguous. */
int64_t hx_cmp_resolve(sqlite3 *db, const char *path, const char *arg, eng_err *err);

/* The latest run of `suite` in db; 0 with a message when it has none. */
int64_t hx_cmp_latest_of_suite(sqlite3 *db, const char *path, const char *suite, eng_err *err);

/* Loads run `id`: its header, experiments and values (flags above). */
int hx_cmp_load(hx_cmp_run *out, sqlite3 *db, int64_t id, int flags, eng_err *err);
void hx_cmp_free(hx_cmp_run *r);

/* Binary searches; NULL when absent. */
const hx_cmp_exp *hx_cmp_find_exp(const hx_cmp_run *r, const char *label);
const hx_cmp_metric *hx_cmp_find(const hx_cmp_run *r, const char *label, const char *metric);

/* How regress judges a metric, from its name (docs/cli.md, "regress"):
 * HX_CMP_TIMING when one of its words (split at _ . [ ] - and spaces) is
 * a time unit or names a time, speed or resource use: ms, ns, us, s,
 * gbps, wall, cpu, stall, rss, time, latency, flops, bandwidth,
 * throughput (so decode_ms_p50, tokens_per_s, stall_share, peak_rss_mib,
 * cache_stats[-1].stall_ns; not prefetch_useful). *higher_better is 1 for
 * speeds (tok_s, per_s, gbps, flops, bandwidth, throughput), else 0.
 * Every other metric is HX_CMP_COUNT: a count, rate or byte total that a
 * deterministic suite reproduces exactly. */
enum { HX_CMP_COUNT, HX_CMP_TIMING };
int hx_cmp_metric_class(const char *metric, int *higher_better);

#endif
