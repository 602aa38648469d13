/*
 * trend.c — the history of a suite's metrics over its stored runs, with
 * change points (`moebench trend`, the dashboard of `moebench report
 * --history`). See db.h, "trend".
 *
 * Order. Runs are taken in the order the caller gives by commit (the CLI
 * reads `git rev-list --first-parent REF`: a commit's runs come where the
 * commit is in that history, runs of commits not in it are left out and
 * counted), else by start time. Several runs of one commit stay in start
 * order. The order decides what "before" and "after" mean, so runs from
 * several machines or branches should be filtered (--machine, a history
 * database per branch) rather than interleaved: a faster machine would read
 * as a change.
 *
 * Values. A run's value of (experiment label, metric) is the median of its
 * repetitions (hx_db_cmp_load: samples, and cache_stats / routing_metric
 * rows when asked). A run without the metric has null there, and the
 * change-point search runs over the runs that have it.
 *
 * Change points: met_stats_edivisive (metrics/stats.h). For each, the run
 * and commit after the change, the medians of the segments before and after
 * it (up to the neighbouring change points), the change in percent, the
 * p-value and the verdict by the metric's direction.
 */
#include "harness/db/db.h"

#include "metrics/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CP 16

typedef struct trun {
    int64_t id;
    char uuid[40], started_at[40], commit[64], host[128];
    int64_t rank;              /* position of its commit in the given order */
    hx_db_cmp_run data;
} trun;

static int by_rank(const void *a, const void *b)
{
    const trun *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    int c = strcmp(x->started_at, y->started_at);
    return c ? c : (x->id > y->id) - (x->id < y->id);
}

/* The commit's position in order[] (a prefix match: the run stores 12 hex
 * digits and maybe "-dirty"), -1 when absent. */
static int64_t commit_rank(const char *commit, const char *const *order, size_t n)
{
    size_t len = strcspn(commit, "-");
    for (size_t i = 0; len >= 7 && i < n; i++)
        if (!strncmp(order[i], commit, len))
            return (int64_t)i;
    return -1;
}

static int load_runs(sqlite3 *db, const hx_db_trend_opts *o, trun **out, size_t *n,
                     int64_t *skipped, eng_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT r.id, r.uuid, r.started_at, coalesce(b.commit_hash, ''),"
                               " coalesce(m.hostname, '') FROM run r"
                               " LEFT JOIN build b ON b.id = r.build_id"
                               " LEFT JOIN machine m ON m.id = r.machine_id"
                               " WHERE r.suite = ?1 AND r.status IN ('ok', 'failed')"
                               " AND (?2 IS NULL OR m.hostname = ?2)"
                               " ORDER BY r.started_at, r.id", -1, &st, NULL) != SQLITE_OK)
        return eng_err_set(err, ENG_EIO, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, o->suite, -1, SQLITE_STATIC);
    if (o->machine)
        sqlite3_bind_text(st, 2, o->machine, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc = ENG_OK;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        trun t = {.id = sqlite3_column_int64(st, 0)};
        snprintf(t.uuid, sizeof t.uuid, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(t.started_at, sizeof t.started_at, "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(t.commit, sizeof t.commit, "%s", (const char *)sqlite3_column_text(st, 3));
        snprintf(t.host, sizeof t.host, "%s", (const char *)sqlite3_column_text(st, 4));
        t.rank = o->order ? commit_rank(t.commit, o->order, o->norder) : 0;
        if (t.rank < 0) {
            (*skipped)++;
            continue;
        }
        if (*n == cap) {
            trun *p = realloc(*out, (cap = cap ? 2 * cap : 32) * sizeof *p);
            if (!p) {
                rc = eng_err_set(err, ENG_ENOMEM, "out of memory");
                break;
            }
            *out = p;
        }
        (*out)[(*n)++] = t;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; !rc && i < *n; i++)
        rc = hx_db_cmp_load(&(*out)[i].data, db, (*out)[i].id,
                            o->rows ? HX_DB_CMP_ROWS : HX_DB_CMP_SAMPLES, err);
    if (!rc && *n)
        qsort(*out, *n, sizeof **out, by_rank);
    return rc;
}

static int glob1(const char *p, const char *s)
{
    for (; *p; p++, s++) {
        if (*p == '*') {
            for (const char *t = s;; t++) {
                if (glob1(p + 1, t))
                    return 1;
                if (!*t)
                    return 0;
            }
        }
        if (*s != *p)
            return 0;
    }
    return !*s;
}

/* Any of the comma-separated globs of list matches s. */
static int glob(const char *list, const char *s)
{
    char buf[512];
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        snprintf(buf, sizeof buf, "%.*s", (int)n, p);
        if (glob1(buf, s))
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* The median of a segment of the finite values v[lo..hi). */
static double seg_median(const double *v, size_t lo, size_t hi)
{
    double *t = malloc((hi - lo + 1) * sizeof *t);
    if (!t)
        return NAN;
    size_t n = 0;
    for (size_t i = lo; i < hi; i++)
        t[n++] = v[i];
    double m = n ? met_stats_percentile(t, n, 50) : NAN;
    free(t);
    return m;
}

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* One series: values per run, change points over the runs that have it. */
static json_t *series(const trun *runs, size_t nr, const char *label, const char *metric,
                      const hx_db_trend_opts *o, eng_err *err)
{
    double *v = malloc((nr ? nr : 1) * sizeof *v);
    size_t *at = malloc((nr ? nr : 1) * sizeof *at), nv = 0;
    json_t *vals = json_array();
    hx_db_dir dir = HX_DB_DIR_EQUAL;
    for (size_t i = 0; v && at && i < nr; i++) {
        const hx_db_cmp_metric *m = hx_db_cmp_find(&runs[i].data, label, metric);
        double x = m && m->n ? met_stats_percentile(m->v, m->n, 50) : NAN;
        json_array_append_new(vals, num(x));
        if (isfinite(x))
            at[nv] = i, v[nv++] = x, dir = hx_db_cmp_direction(&runs[i].data, label, metric);
    }
    met_cp cp[MAX_CP];
    size_t ncp = 0;
    int rc = !v || !at ? eng_err_set(err, ENG_ENOMEM, "out of memory")
                       : met_stats_edivisive(v, nv, &o->cp, cp, MAX_CP, &ncp, err);
    json_t *cps = json_array();
    for (size_t k = 0; !rc && k < ncp; k++) {
        size_t lo = k ? cp[k - 1].index : 0, hi = k + 1 < ncp ? cp[k + 1].index : nv;
        double before = seg_median(v, lo, cp[k].index), after = seg_median(v, cp[k].index, hi);
        double pct = before != 0 ? 100 * (after / before - 1) : NAN;
        const trun *r = &runs[at[cp[k].index]];
        const char *verdict = dir == HX_DB_DIR_EQUAL ? "changed"
                              : (after > before) == (dir == HX_DB_DIR_HIGHER) ? "improved"
                                                                               : "regressed";
        json_array_append_new(
            cps, json_pack("{s:I, s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:f, s:f, s:s}", "index",
                           (json_int_t)at[cp[k].index], "run_id", (json_int_t)r->id, "uuid",
                           r->uuid, "commit", r->commit, "started_at", r->started_at, "before",
                           num(before), "after", num(after), "change_pct", num(pct), "p",
                           cp[k].p, "confidence", 1 - cp[k].p, "verdict", verdict));
    }
    free(v), free(at);
    if (rc) {
        json_decref(vals), json_decref(cps);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:o}", "experiment", label, "metric", metric,
                     "direction", hx_db_dir_name(dir), "values", vals, "change_points", cps);
}

/* Every (label, metric) of any run that the filters select, once, sorted. */
static json_t *names(const trun *runs, size_t nr, const hx_db_trend_opts *o)
{
    json_t *set = json_object();
    for (size_t i = 0; i < nr; i++)
        for (size_t k = 0; k < runs[i].data.nm; k++) {
            const hx_db_cmp_metric *m = &runs[i].data.m[k];
            if ((o->experiment && !glob(o->experiment, m->label)) ||
                (o->metric && !glob(o->metric, m->metric)))
                continue;
            char key[2048];
            snprintf(key, sizeof key, "%s\x1f%s", m->label, m->metric);
            json_object_set_new(set, key, json_true());
        }
    json_t *list = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(set, k, v) json_array_append_new(list, json_string(k));
    json_decref(set);
    /* sort */
    size_t n = json_array_size(list);
    const char **s = malloc((n ? n : 1) * sizeof *s);
    for (size_t i = 0; s && i < n; i++)
        s[i] = json_string_value(json_array_get(list, i));
    for (size_t i = 1; s && i < n; i++)
        for (size_t j = i; j > 0 && strcmp(s[j - 1], s[j]) > 0; j--) {
            const char *t = s[j];
            s[j] = s[j - 1], s[j - 1] = t;
        }
    json_t *sorted = json_array();
    for (size_t i = 0; s && i < n; i++)
        json_array_append_new(sorted, json_string(s[i]));
    free(s);
    json_decref(list);
    return sorted;
}

json_t *hx_db_trend(sqlite3 *db, const hx_db_trend_opts *o, eng_err *err)
{
    trun *runs = NULL;
    size_t nr = 0;
    int64_t skipped = 0;
    int rc = load_runs(db, o, &runs, &nr, &skipped, err);
    json_t *doc = NULL, *ser = json_array(), *rl = json_array();
    for (size_t i = 0; !rc && i < nr; i++)
        json_array_append_new(rl, json_pack("{s:I, s:s, s:s, s:s, s:s}", "run_id",
                                            (json_int_t)runs[i].id, "uuid", runs[i].uuid,
                                            "commit", runs[i].commit, "started_at",
                                            runs[i].started_at, "host", runs[i].host));
    json_t *keys = rc ? NULL : names(runs, nr, o);
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        const char *key = json_string_value(k), *sep = strchr(key, '\x1f');
        char label[2048];
        snprintf(label, sizeof label, "%.*s", (int)(sep - key), key);
        json_t *s = series(runs, nr, label, sep + 1, o, err);
        if (!s) {
            rc = err && err->code ? err->code : ENG_ENOMEM;
            break;
        }
        json_array_append_new(ser, s);
    }
    json_decref(keys);
    if (!rc) {
        const met_cp_opts *c = &o->cp;
        doc = json_pack("{s:s, s:s, s:I, s:{s:s, s:i, s:i, s:f, s:f, s:I}, s:O, s:O}", "suite",
                        o->suite, "order", o->order ? "commit" : "started_at", "skipped_runs",
                        (json_int_t)skipped, "method", "name", "e-divisive means", "min_size",
                        c->min_size, "permutations", c->permutations, "sig", c->sig, "alpha",
                        c->alpha, "seed", (json_int_t)c->seed, "runs", rl, "series", ser);
    }
    json_decref(rl), json_decref(ser);
    for (size_t r = 0; r < nr; r++)
        hx_db_cmp_free(&runs[r].data);
    free(runs);
    return doc;
}
