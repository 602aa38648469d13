/*
 * harness/db/ — the SQLite results store (docs/database.md) and what reads
 * it: what one repetition produced (result.c), storing and merging
 * (db*.c), run resolution and per-metric values for compare/regress
 * (compare.c), printing query results (query.c) and the SVG charts of
 * reports (report_svg.c). Prefix hx_db_. Nothing here knows Lua or the
 * command line.
 */
#ifndef HX_DB_H
#define HX_DB_H

#include "engine/err.h"
#include "metrics/stats.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- result ---------------- */
/*
 * What one repetition of an experiment produced: named samples,
 * per-token series, JSON blobs, and the rows the engine-side kinds will
 * fill (PAPI counters per region, cache statistics per layer, routing
 * metrics). An executor (harness/suite/suite.h) fills one hx_db_result per
 * repetition; the runner adds wall/CPU time, summarises the samples over
 * repetitions and hands everything to the store (harness/db/db.h), which
 * writes the tables of the same names.
 *
 * Ownership: the result owns copies of every string and array passed in;
 * hx_db_result_blob takes over the JSON reference. hx_db_result_clear frees all.
 * Thread-safety: one result belongs to one thread.
 */

#define HX_DB_NAME_MAX 128 /* longest metric / event / region / blob name */

typedef struct hx_db_sample {
    char *metric;           /* "wall_ms", "tokens_per_s", "hit_rate", ...   */
    double value;           /* finite                                        */
} hx_db_sample;

typedef struct hx_db_series {
    char *metric;           /* "token_ms", ...                               */
    double *v;              /* [n], index = token position (or step)         */
    size_t n;
} hx_db_series;

typedef struct hx_db_blob {
    char *name;
    json_t *value;          /* owned reference                               */
} hx_db_blob;

typedef struct hx_db_counter_row {
    char region[HX_DB_NAME_MAX];   /* eng_region_name(), or "total"            */
    char event[HX_DB_NAME_MAX];    /* PAPI/libpfm4 name: "perf::TASK-CLOCK"    */
    double value;               /* NaN when the event could not be counted  */
    int64_t enabled_ns, running_ns; /* multiplexing: scale = enabled/running */
} hx_db_counter_row;

/* Cache statistics of one layer (layer = -1: the whole model). Counts are
 * expert look-ups; bytes are real bytes moved from the slow tier; -1 in a
 * field means "not reported". */
typedef struct hx_db_cache_row {
    int layer;
    int64_t accesses, hits, misses, evictions;
    int64_t prefetch_issued, prefetch_useful;
    int64_t bytes_loaded, prefetch_wasted_bytes;
    int64_t stall_ns;           /* time the forward pass waited for loads   */
} hx_db_cache_row;

/* One routing metric value (SRP, SCH, a hit-rate curve point ...).
 * param is the segment length (SRP/SCH) or cache size (curves); NaN when
 * the metric has none. ci_lo/ci_hi NaN when no interval was computed. */
typedef struct hx_db_routing_row {
    char trace[256];            /* trace file or label, "" when unknown     */
    int layer;                  /* -1: model-wide                           */
    char metric[HX_DB_NAME_MAX];   /* "srp", "sch", "lru_hit_rate", ...        */
    double param, value, ci_lo, ci_hi;
} hx_db_routing_row;

typedef struct hx_db_result {
    hx_db_sample *samples;   size_t nsamples, capsamples;
    hx_db_series *series;    size_t nseries, capseries;
    hx_db_blob *blobs;       size_t nblobs, capblobs;
    hx_db_counter_row *counters; size_t ncounters, capcounters;
    hx_db_cache_row *cache;  size_t ncache, capcache;
    hx_db_routing_row *routing; size_t nrouting, caprouting;
    json_t *directions;   /* declared by the producer: metric name or pattern
                             -> "higher" | "lower" | "equal"; NULL: none    */
} hx_db_result;

/* Records a sample; a metric already recorded in this result is replaced.
 * ENG_EINVAL for a bad name (empty, too long, control characters) or a
 * non-finite value. */
int hx_db_result_sample(hx_db_result *r, const char *metric, double value, eng_err *err);
int hx_db_result_series(hx_db_result *r, const char *metric, const double *v, size_t n,
                     eng_err *err);
/* Takes the reference to value (also on error). */
int hx_db_result_blob(hx_db_result *r, const char *name, json_t *value, eng_err *err);
int hx_db_result_counter(hx_db_result *r, const hx_db_counter_row *row, eng_err *err);
int hx_db_result_cache(hx_db_result *r, const hx_db_cache_row *row, eng_err *err);
int hx_db_result_routing(hx_db_result *r, const hx_db_routing_row *row, eng_err *err);

/* Declares which way metric (a name or a pattern with `*`) is better:
 * "higher", "lower" or "equal" (must be equal). ENG_EINVAL otherwise. */
int hx_db_result_direction(hx_db_result *r, const char *metric, const char *dir, eng_err *err);

/* Value of a sample, or NaN when absent. */
double hx_db_result_get(const hx_db_result *r, const char *metric);

void hx_db_result_clear(hx_db_result *r);

/* Metric/event names: 1..HX_DB_NAME_MAX-1 printable characters. */
int hx_db_name_valid(const char *name);

/* ---- db ---------------- */
/*
 * The SQLite results store (docs/database.md).
 *
 * One database file holds any number of runs. The schema is versioned with
 * PRAGMA user_version; hx_db_open applies the ordered list of forward
 * migrations (db_schema.c) in one transaction, so an older database is
 * upgraded in place and a newer one is refused. Writers use WAL and a busy
 * timeout, so two suites can write to one file at once; each experiment is
 * stored in ONE transaction (hx_db_experiment_store), so a crash or Ctrl-C
 * loses at most the experiment in flight.
 *
 * Identity: machines and builds are keyed by a hash of their contents,
 * runs and experiments by random UUIDs, so `moebench merge` can combine
 * shard databases and merging the same file twice adds nothing.
 *
 * Thread-safety: an hx_db belongs to one thread.
 */

#define HX_DB_SCHEMA_VERSION 2

typedef struct hx_db hx_db;

enum {
    HX_DB_READONLY = 1, /* SQLITE_OPEN_READONLY + query_only; no migration */
    HX_DB_CREATE = 2,   /* create the file when missing                   */
};

/* Opens (and, unless read-only, migrates) a database. ENG_EIO when the
 * file cannot be opened, ENG_EFORMAT when it is not a moebench database or
 * its schema is newer than this binary knows. */
int hx_db_open(hx_db **out, const char *path, int flags, eng_err *err);
void hx_db_close(hx_db *db);
sqlite3 *hx_db_sqlite(hx_db *db);

/* Migrates to `target` (0..HX_DB_SCHEMA_VERSION); for tests that build
 * fixtures of earlier versions. hx_db_open migrates to the latest. */
int hx_db_migrate(sqlite3 *db, int target, eng_err *err);
/* PRAGMA user_version. */
int hx_db_version(sqlite3 *db);

/* A random RFC 4122 version-4 UUID (from getrandom). */
void hx_db_uuid_new(char out[37]);

/* The environment of a run (harness/suite/env.c fills machine and build). */
typedef struct hx_db_run_info {
    char uuid[37];
    const char *suite, *file;
    json_t *options;       /* resolved suite options                      */
    json_t *cli;           /* the command line, shard, seed, flags        */
    json_t *machine;       /* object: cpu_model, cores, memory_bytes, ... */
    json_t *build;         /* object: commit, dirty, compiler, cflags ... */
} hx_db_run_info;

/* Inserts machine and build (deduplicated by content) and the run with
 * status 'running'; commits. */
int hx_db_run_begin(hx_db *db, const hx_db_run_info *ri, int64_t *run_id, eng_err *err);
/* Sets finished_at and status ('ok', 'failed', 'interrupted'). */
int hx_db_run_finish(hx_db *db, int64_t run_id, const char *status, eng_err *err);

/* What the store records of one declared experiment (the suite's own
 * description, harness/suite/suite.h, is copied into this by the runner,
 * so the store does not depend on the suite). Borrowed pointers. */
typedef struct hx_db_experiment {
    int seq;                /* declaration order, 0-based                    */
    const char *name, *label, *kind, *file_line;
    const json_t *params;   /* object                                        */
    const json_t *args;     /* object                                        */
    const json_t *events;   /* array of strings                              */
    const json_t *tags;     /* array of strings                              */
    int warmup, reps;
    char uuid[37];
    const json_t *directions; /* declared by the suite: pattern -> direction,
                                 over what the repetitions declare; or NULL */
} hx_db_experiment;

/* Stores one experiment in one transaction: the experiment row, its
 * parameters, every repetition's samples, series, blobs, counters, cache
 * and routing rows, and the summary of each metric over the repetitions.
 * status: "ok" or "failed" (error = the message). reps[0..nreps). */
int hx_db_experiment_store(hx_db *db, int64_t run_id, const hx_db_experiment *e,
                           const char *status, const char *error, const hx_db_result *reps,
                           int nreps, double started, double finished, eng_err *err);

typedef struct hx_db_merge_stats {
    int64_t runs_added, runs_skipped, experiments_added;
} hx_db_merge_stats;

/* Copies every run of the database at src_path that dst does not hold yet
 * (by UUID) with all its rows; one transaction per source file. */
int hx_db_merge(hx_db *dst, const char *src_path, hx_db_merge_stats *st, eng_err *err);

/* Helpers shared by the commands: exec with message, prepare or fail. */
int hx_db_exec(sqlite3 *db, const char *sql, eng_err *err);

/* ---- compare ---------------- */
/*
 * What `moebench compare` and `moebench regress` share: run
 * resolution and the values of one run, grouped by experiment label and
 * metric, each group holding the repetitions' values in order.
 *
 * Experiments of two runs are matched by label (name plus k=v of each
 * parameter), so the same suite run twice, on two commits or two
 * machines, lines up. Two experiments of one run with the same label pool
 * their values (rare: a suite that declares one experiment twice).
 *
 * Thread-safety: a hx_db_cmp_run belongs to one thread.
 */

typedef struct hx_db_cmp_metric {
    const char *label, *metric; /* experiment label; metric name        */
    double *v;                  /* values by repetition, v[0..n)         */
    size_t n;
} hx_db_cmp_metric;

typedef struct hx_db_cmp_exp {
    const char *label, *status, *error; /* status "ok" or "failed"      */
    json_t *dirs;        /* declared directions: pattern -> "higher" |
                            "lower" | "equal" (metric_direction), or NULL */
} hx_db_cmp_exp;

typedef struct hx_db_cmp_run {
    int64_t id;
    char uuid[40], suite[256], started_at[40];
    hx_db_cmp_exp *exps;     /* sorted by label (strcmp)                 */
    size_t nexps;
    hx_db_cmp_metric *m;     /* sorted by (label, metric) (strcmp)       */
    size_t nm;
    char **strings;       /* owned copies of the labels and names     */
    size_t nstrings;
} hx_db_cmp_run;

/* What hx_db_cmp_load reads besides the `sample` table. */
enum {
    HX_DB_CMP_SAMPLES = 0,
    /* cache_stats rows as metrics `cache_stats[LAYER].COLUMN` and
     * routing_metric rows as `routing[TRACE-BASENAME layer L P].METRIC` */
    HX_DB_CMP_ROWS = 1,
};

/* RUN argument -> run id: a run id, a UUID or a prefix of at least 4
 * characters, `latest`, `latest:SUITE` or a suite name (its latest run).
 * 0 with ENG_EINVAL on err naming the file when none or ambiguous. */
int64_t hx_db_cmp_resolve(sqlite3 *db, const char *path, const char *arg, eng_err *err);

/* The latest run of `suite` in db; 0 with a message when it has none. */
int64_t hx_db_cmp_latest_of_suite(sqlite3 *db, const char *path, const char *suite, eng_err *err);

/* Loads run `id`: its header, experiments and values (flags above). */
int hx_db_cmp_load(hx_db_cmp_run *out, sqlite3 *db, int64_t id, int flags, eng_err *err);
void hx_db_cmp_free(hx_db_cmp_run *r);

/* A copy of s owned by r (freed by hx_db_cmp_free); NULL when out of memory. */
const char *hx_db_cmp_keep(hx_db_cmp_run *r, const char *s);

/* Binary searches; NULL when absent. */
const hx_db_cmp_exp *hx_db_cmp_find_exp(const hx_db_cmp_run *r, const char *label);
const hx_db_cmp_metric *hx_db_cmp_find(const hx_db_cmp_run *r, const char *label, const char *metric);

/* How regress judges a metric, from its name (docs/cli.md, "regress"):
 * HX_DB_CMP_TIMING when one of its words (split at _ . [ ] - and spaces) is
 * a time unit or names a time, speed or resource use: ms, ns, us, s,
 * gbps, wall, cpu, stall, rss, time, latency, flops, bandwidth,
 * throughput (so decode_ms_p50, tokens_per_s, stall_share, peak_rss_mib,
 * cache_stats[-1].stall_ns; not prefetch_useful). *higher_better is 1 for
 * speeds (tok_s, per_s, gbps, flops, bandwidth, throughput), else 0.
 * Every other metric is HX_DB_CMP_COUNT: a count, rate or byte total that a
 * deterministic suite reproduces exactly. */
enum { HX_DB_CMP_COUNT, HX_DB_CMP_TIMING };
int hx_db_cmp_metric_class(const char *metric, int *higher_better);

/* Which way a metric is better. Declared by whoever produces it (a suite's
 * `metrics = {...}`, a command's JSON "directions"; stored per experiment
 * in metric_direction), else by name (hx_db_dir_default). */
typedef enum hx_db_dir {
    HX_DB_DIR_EQUAL,   /* must be equal: a change is neither better nor worse */
    HX_DB_DIR_HIGHER,  /* higher is better                                  */
    HX_DB_DIR_LOWER,   /* lower is better                                   */
} hx_db_dir;
/* "higher" / "lower" / "equal"; -1 for anything else. */
int hx_db_dir_parse(const char *s);
const char *hx_db_dir_name(hx_db_dir d);
/* The default by name: timings as hx_db_cmp_metric_class (speeds higher,
 * times lower); a name with the word hit, hits or useful higher; miss,
 * misses, evictions, bytes, loaded or wasted lower; anything else (token
 * ids, SRP/SCH, accesses, counts of work) equal. */
hx_db_dir hx_db_dir_default(const char *metric);
/* The direction of metric in run r's experiment label: the declared
 * pattern (`*` matches any characters, nothing else is special, so
 * `cache_stats[*].hits` works; an exact name first, then the longest
 * matching pattern) that matches, else the default. */
hx_db_dir hx_db_cmp_direction(const hx_db_cmp_run *r, const char *label, const char *metric);

/* ---- baseline ---------------- */
/* A committed baseline (docs/ci.md): a run's deterministic metrics as JSON,
 * {"moebench_baseline": 1, "suite", "run_uuid", "commit", "experiments":
 * {LABEL: {"status", "metrics": {NAME: value}}}}, keys sorted when dumped
 * with JSON_SORT_KEYS. Deterministic = not a timing (or declared equal) and
 * the same in every repetition. */
json_t *hx_db_baseline_make(const hx_db_cmp_run *r, const char *commit);
/* Whether the file at path looks like a baseline (JSON) rather than a
 * database: its first non-blank byte is '{'. */
int hx_db_baseline_is(const char *path);
/* Reads a baseline as a run (id 0, one value per metric, started_at
 * "commit C"). ENG_EFORMAT naming the file and the field when malformed. */
int hx_db_baseline_load(hx_db_cmp_run *out, const char *path, eng_err *err);

/* ---- trend ---------------- */
/* A suite's metrics over its stored runs with change points (trend.c). */
typedef struct hx_db_trend_opts {
    const char *suite;          /* required                                  */
    const char *metric;         /* globs on metric names (`*`), separated by
                                   commas; NULL: all                         */
    const char *experiment;     /* the same on experiment labels              */
    const char *machine;        /* only runs of this hostname, NULL: all      */
    const char *const *order;   /* commits, oldest first (full hashes); NULL:
                                   runs in start order                       */
    size_t norder;
    int rows;                   /* also cache_stats / routing_metric rows     */
    met_cp_opts cp;             /* the change-point search                    */
} hx_db_trend_opts;

/* {suite, order, skipped_runs, method {name, min_size, permutations, sig,
 * alpha, seed}, runs [{run_id, uuid, commit, started_at, host}], series
 * [{experiment, metric, direction, values [per run, null: absent],
 * change_points [{index, run_id, uuid, commit, started_at, before, after,
 * change_pct, p, confidence, verdict}]}]} (docs/cli.md, "trend"); NULL
 * with err on failure. */
json_t *hx_db_trend(sqlite3 *db, const hx_db_trend_opts *o, eng_err *err);

/* ---- dashboard ---------------- */
/* Every suite's history as one self-contained HTML page (dashboard.c). */
typedef struct hx_db_dashboard_opts {
    const char *suites;         /* comma-separated suite names; NULL: all     */
    const char *title;          /* NULL: "moebench dashboard"                 */
    hx_db_trend_opts trend;     /* metric globs, machine, order, change points;
                                   its suite is set per section              */
} hx_db_dashboard_opts;
/* Writes the page to f; path names the database in the text. ENG_EINVAL
 * when no run matches. */
int hx_db_dashboard_write(FILE *f, sqlite3 *db, const char *path, const hx_db_dashboard_opts *o,
                          eng_err *err);

/* ---- regress ---------------- */
/* One run checked against a baseline run (regress.c has the rules). */
typedef enum hx_db_verdict {
    HX_DB_OK, HX_DB_IMPROVED, HX_DB_CHANGED, HX_DB_REGRESSED, /* worse ones later */
} hx_db_verdict;
const char *hx_db_verdict_name(hx_db_verdict v); /* "ok", "improved", ... */

typedef struct hx_db_regress_opts {
    double tolerance_pct;   /* allowed change of a timing's median (10)     */
    int exact_only;         /* timings not checked                          */
    int fail_on_change;     /* an improvement fails too ("failed": true)    */
} hx_db_regress_opts;

/* The verdicts as a JSON document (docs/cli.md, "regress --json"): run,
 * baseline, tolerance_pct (null under exact_only), "failed" (a regression
 * or change, or with fail_on_change an improvement), counts, experiments
 * [{experiment, verdict, metrics: [{metric, check, verdict, direction,
 * baseline, value, change_pct, ..., message}]}], new_experiments. */
json_t *hx_db_regress(const hx_db_cmp_run *base, const char *base_path, const hx_db_cmp_run *run,
                      const char *run_path, const hx_db_regress_opts *o);

/* ---- query ---------------- */
/*
 * Printing query results, shared by `moebench query`, `runs`
 * and `export`: an aligned table, CSV (RFC 4180, header line) or a JSON
 * array of objects (numbers stay numbers, NULL becomes null).
 */

enum { HX_DB_OUT_TABLE, HX_DB_OUT_CSV, HX_DB_OUT_JSON };

/* Steps st to the end and prints its rows on f in mode (HX_DB_OUT_*).
 * ENG_EINVAL with SQLite's message when a step fails (nothing printed),
 * ENG_EIO when f reports a write error. */
int hx_db_query_print(FILE *f, sqlite3 *db, sqlite3_stmt *st, int mode, eng_err *err);

/* ---- report ---------------- */
/* One run as a Markdown or HTML document (docs/cli.md, `moebench report`):
 * header, experiments with the means and 95 % CIs of the main metrics,
 * failures, policy x cache-size tables and charts, routing consistency. */
typedef struct hx_db_report_opts {
    int html;               /* 1: an HTML page, charts inline; 0: Markdown   */
    const char *title;      /* NULL: "moebench report: SUITE"               */
    const char *chart_base; /* Markdown: charts go to CHART_BASE-NAME.svg and
                               are linked by file name; NULL or "": left out,
                               with a note saying so                        */
} hx_db_report_opts;

/* Writes run `run` of db to f. ENG_EINVAL when there is no such run,
 * ENG_EIO when a query or a chart file fails (the rest is still written
 * when a chart fails), with the message in err. f's own errors are the
 * caller's to check. */
int hx_db_report_write(FILE *f, sqlite3 *db, int64_t run, const hx_db_report_opts *o,
                       eng_err *err);

/* ---- report_svg ---------------- */
/*
 * A small SVG line-chart writer for `moebench report`:
 * axes with "nice" ticks (1, 2, 5 x 10^k), axis labels, a title and a
 * legend; one <polyline> per series plus a <circle> per point (so a
 * series of one point still shows). No dependencies; the output is a
 * standalone <svg> element that works inline in HTML and as a file.
 *
 * Points whose x or y is not finite are skipped. The y axis always
 * includes 0 (rates and speeds read wrongly against a cut-off axis) and
 * every error bar.
 *
 * Thread-safety: none needed; the writer keeps no state.
 */

typedef struct hx_db_svg_series {
    const char *name;       /* legend text                       */
    const double *x, *y;    /* n points, drawn in the given order */
    size_t n;
    const double *lo, *hi;  /* NULL, or [n] an interval per point drawn as
                               an error bar (NaN: none for that point)     */
    const char *const *links; /* NULL, or [n] a link per point (NULL: none):
                               the point becomes <a href=...> with a title */
} hx_db_svg_series;

typedef struct hx_db_svg_chart {
    const char *title, *xlabel, *ylabel;
    const hx_db_svg_series *series;
    size_t nseries;
    const double *marks;    /* [nmarks] x of vertical marker lines (change
                               points), drawn dashed red; NULL: none         */
    size_t nmarks;
} hx_db_svg_chart;

/* Writes c as one <svg> element (640 x 400 user units) to f. */
void hx_db_svg_write(FILE *f, const hx_db_svg_chart *c);

/* Writes s with & < > " ' escaped: valid in XML text, attributes and HTML. */
void hx_db_svg_escape(FILE *f, const char *s);

/* Tick step for [lo, hi] with about `want` ticks: 1, 2 or 5 x 10^k. */
double hx_db_svg_tick_step(double lo, double hi, int want);

#endif
