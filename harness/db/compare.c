/*
 * compare.c — loading runs for `compare` and `regress`. See db.h.
 *
 * One query flattens a run into (label, metric, rep, value) rows: the
 * samples, and on request the cache_stats columns and routing_metric
 * values under composed names, sorted by SQLite's BINARY collation (byte
 * order, the same as strcmp), so groups are consecutive and the arrays
 * can be binary-searched with strcmp.
 */
#include "harness/db/db.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char rows_sql[] =
    "WITH e AS (SELECT id, label FROM experiment WHERE run_id = ?1),"
    " cols(c) AS (VALUES ('accesses'), ('hits'), ('misses'), ('evictions'),"
    "  ('prefetch_issued'), ('prefetch_useful'), ('bytes_loaded'),"
    "  ('prefetch_wasted_bytes'), ('stall_ns')),"
    " r(label, metric, eid, rep, value) AS ("
    "  SELECT e.label, s.metric, e.id, s.rep, s.value FROM sample s JOIN e ON e.id = s.experiment_id"
    "  UNION ALL SELECT e.label, 'cache_stats[' || t.layer || '].' || cols.c, e.id, t.rep,"
    "   CASE cols.c WHEN 'accesses' THEN t.accesses WHEN 'hits' THEN t.hits"
    "   WHEN 'misses' THEN t.misses WHEN 'evictions' THEN t.evictions"
    "   WHEN 'prefetch_issued' THEN t.prefetch_issued WHEN 'prefetch_useful' THEN t.prefetch_useful"
    "   WHEN 'bytes_loaded' THEN t.bytes_loaded"
    "   WHEN 'prefetch_wasted_bytes' THEN t.prefetch_wasted_bytes ELSE t.stall_ns END"
    "   FROM cache_stats t JOIN e ON e.id = t.experiment_id, cols WHERE ?2"
    /* basename: strip everything up to the last '/' (traces live in temp dirs) */
    "  UNION ALL SELECT e.label, 'routing[' || coalesce(replace(g.trace, rtrim(g.trace,"
    "   replace(g.trace, '/', '')), ''), '') || ' layer ' || g.layer"
    "   || CASE WHEN g.param IS NULL THEN '' ELSE ' ' || printf('%.15g', g.param) END"
    "   || '].' || g.metric, e.id, g.rep, g.value"
    "   FROM routing_metric g JOIN e ON e.id = g.experiment_id WHERE ?2)"
    " SELECT label, metric, rep, value FROM r WHERE value IS NOT NULL"
    " ORDER BY label, metric, eid, rep";

const char *hx_db_cmp_keep(hx_db_cmp_run *r, const char *s)
{
    if (!s)
        s = "";
    if (r->nstrings % 256 == 0) {
        char **p = realloc(r->strings, (r->nstrings + 256) * sizeof *p);
        if (!p)
            return NULL;
        r->strings = p;
    }
    char *c = strdup(s);
    if (c)
        r->strings[r->nstrings++] = c;
    return c;
}

static int oom(eng_err *err) { return eng_err_set(err, ENG_ENOMEM, "out of memory loading a run"); }

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, eng_err *err)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
        return eng_err_set(err, ENG_EFORMAT, "%s", sqlite3_errmsg(db));
    return ENG_OK;
}

int64_t hx_db_cmp_resolve(sqlite3 *db, const char *path, const char *arg, eng_err *err)
{
    if (!strncmp(arg, "latest:", 7))
        return hx_db_cmp_latest_of_suite(db, path, arg + 7, err);
    int digits = *arg != '\0';
    for (const char *p = arg; *p; p++)
        digits &= isdigit((unsigned char)*p) != 0;
    const char *sql = digits ? "SELECT id FROM run WHERE id = ?1"
                      : !strcmp(arg, "latest")
                          ? "SELECT id FROM run ORDER BY started_at DESC, id DESC LIMIT 1"
                          : "SELECT id FROM run WHERE (length(?1) >= 4 AND uuid LIKE ?1 || '%')"
                            " UNION SELECT id FROM latest_run WHERE suite = ?1";
    sqlite3_stmt *st;
    if (prepare(db, sql, &st, err))
        return 0;
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int64_t id = 0;
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < 2)
        id = sqlite3_column_int64(st, 0), n++;
    sqlite3_finalize(st);
    if (n == 0)
        eng_err_set(err, ENG_EINVAL, "%s: no run '%s'", path, arg);
    else if (n > 1)
        eng_err_set(err, ENG_EINVAL, "%s: '%s' matches more than one run; give more of the"
                                     " UUID or the run id", path, arg);
    return n == 1 ? id : 0;
}

int64_t hx_db_cmp_latest_of_suite(sqlite3 *db, const char *path, const char *suite, eng_err *err)
{
    sqlite3_stmt *st;
    if (prepare(db, "SELECT id FROM run WHERE suite = ?1 ORDER BY started_at DESC, id DESC"
                    " LIMIT 1", &st, err))
        return 0;
    sqlite3_bind_text(st, 1, suite, -1, SQLITE_STATIC);
    int64_t id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (!id)
        eng_err_set(err, ENG_EINVAL, "%s: no run of suite '%s'", path, suite);
    return id;
}

static int load_header(hx_db_cmp_run *r, sqlite3 *db, int64_t id, eng_err *err)
{
    sqlite3_stmt *st;
    int rc = prepare(db, "SELECT uuid, suite, started_at FROM run WHERE id = ?", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = eng_err_set(err, ENG_EINVAL, "no run with id %lld", (long long)id);
    for (int i = 0; !rc && i < 3; i++) {
        const char *s = (const char *)sqlite3_column_text(st, i);
        char *dst = i == 0 ? r->uuid : i == 1 ? r->suite : r->started_at;
        size_t cap = i == 0 ? sizeof r->uuid : i == 1 ? sizeof r->suite : sizeof r->started_at;
        snprintf(dst, cap, "%s", s ? s : "");
    }
    sqlite3_finalize(st);
    r->id = id;
    return rc;
}

static int load_exps(hx_db_cmp_run *r, sqlite3 *db, int64_t id, eng_err *err)
{
    sqlite3_stmt *st;
    int rc = prepare(db, "SELECT label, status, error FROM experiment WHERE run_id = ?"
                         " ORDER BY label, id", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    size_t cap = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        const char *label = (const char *)sqlite3_column_text(st, 0);
        if (r->nexps && !strcmp(r->exps[r->nexps - 1].label, label ? label : ""))
            continue; /* same label twice: the first one stands for both */
        if (r->nexps == cap) {
            hx_db_cmp_exp *p = realloc(r->exps, (cap = cap ? 2 * cap : 64) * sizeof *p);
            if (!p) {
                rc = oom(err);
                break;
            }
            r->exps = p;
        }
        hx_db_cmp_exp *e = &r->exps[r->nexps];
        e->label = hx_db_cmp_keep(r, label);
        e->status = hx_db_cmp_keep(r, (const char *)sqlite3_column_text(st, 1));
        e->error = hx_db_cmp_keep(r, (const char *)sqlite3_column_text(st, 2));
        e->dirs = NULL;
        rc = e->label && e->status && e->error ? ENG_OK : oom(err);
        r->nexps += !rc;
    }
    sqlite3_finalize(st);
    return rc;
}

/* metric_direction rows (schema 2) into each experiment's dirs. */
static int load_dirs(hx_db_cmp_run *r, sqlite3 *db, int64_t id, eng_err *err)
{
    sqlite3_stmt *st;
    int rc = prepare(db, "SELECT e.label, d.pattern, d.direction FROM metric_direction d"
                         " JOIN experiment e ON e.id = d.experiment_id WHERE e.run_id = ?",
                     &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        hx_db_cmp_exp *e = (hx_db_cmp_exp *)hx_db_cmp_find_exp(
            r, (const char *)sqlite3_column_text(st, 0));
        if (!e)
            continue;
        if (!e->dirs && !(e->dirs = json_object()))
            break;
        json_object_set_new(e->dirs, (const char *)sqlite3_column_text(st, 1),
                            json_string((const char *)sqlite3_column_text(st, 2)));
    }
    sqlite3_finalize(st);
    return ENG_OK;
}

/* Appends one row, starting a new group when (label, metric) changes. */
static int add_value(hx_db_cmp_run *r, size_t *cap, const char *label, const char *metric,
                     double v, eng_err *err)
{
    hx_db_cmp_metric *g = r->nm ? &r->m[r->nm - 1] : NULL;
    if (!g || strcmp(g->label, label) || strcmp(g->metric, metric)) {
        if (r->nm == *cap) {
            hx_db_cmp_metric *p = realloc(r->m, (*cap = *cap ? 2 * *cap : 256) * sizeof *p);
            if (!p)
                return oom(err);
            r->m = p;
        }
        g = &r->m[r->nm];
        *g = (hx_db_cmp_metric){0};
        /* labels repeat across metrics: share the experiment's copy */
        const hx_db_cmp_exp *e = hx_db_cmp_find_exp(r, label);
        g->label = e ? e->label : hx_db_cmp_keep(r, label);
        g->metric = hx_db_cmp_keep(r, metric);
        if (!g->label || !g->metric)
            return oom(err);
        r->nm++;
    }
    if ((g->n & (g->n - 1)) == 0) { /* grow at powers of two */
        double *p = realloc(g->v, (g->n ? 2 * g->n : 1) * sizeof *p);
        if (!p)
            return oom(err);
        g->v = p;
    }
    g->v[g->n++] = v;
    return ENG_OK;
}

int hx_db_cmp_load(hx_db_cmp_run *out, sqlite3 *db, int64_t id, int flags, eng_err *err)
{
    hx_db_cmp_run r = {0};
    int rc = load_header(&r, db, id, err);
    if (!rc)
        rc = load_exps(&r, db, id, err);
    if (!rc)
        rc = load_dirs(&r, db, id, err);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = prepare(db, rows_sql, &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, (flags & HX_DB_CMP_ROWS) != 0);
        size_t cap = 0;
        int s;
        while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW)
            rc = add_value(&r, &cap, (const char *)sqlite3_column_text(st, 0),
                           (const char *)sqlite3_column_text(st, 1),
                           sqlite3_column_double(st, 3), err);
        if (!rc && s != SQLITE_DONE)
            rc = eng_err_set(err, ENG_EIO, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    if (rc)
        hx_db_cmp_free(&r);
    else
        *out = r;
    return rc;
}

void hx_db_cmp_free(hx_db_cmp_run *r)
{
    for (size_t i = 0; i < r->nm; i++)
        free(r->m[i].v);
    for (size_t i = 0; i < r->nstrings; i++)
        free(r->strings[i]);
    free(r->m);
    for (size_t i = 0; i < r->nexps; i++)
        json_decref(r->exps[i].dirs);
    free(r->exps);
    free(r->strings);
    *r = (hx_db_cmp_run){0};
}

const hx_db_cmp_exp *hx_db_cmp_find_exp(const hx_db_cmp_run *r, const char *label)
{
    size_t lo = 0, hi = r->nexps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->exps[mid].label, label);
        if (c == 0)
            return &r->exps[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const hx_db_cmp_metric *hx_db_cmp_find(const hx_db_cmp_run *r, const char *label, const char *metric)
{
    size_t lo = 0, hi = r->nm;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->m[mid].label, label);
        if (c == 0)
            c = strcmp(r->m[mid].metric, metric);
        if (c == 0)
            return &r->m[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* 1 when one of the name's words (split at _ . [ ] - and spaces) is in
 * words: "prefetch_useful" holds no unit, "decode_ms_p50" holds "ms". */
static int has_word(const char *s, const char *const *words)
{
    while (*s) {
        size_t n = strcspn(s, "_.[]- ");
        for (const char *const *w = words; n && *w; w++)
            if (strlen(*w) == n && !strncmp(s, *w, n))
                return 1;
        s += n + (s[n] != '\0');
    }
    return 0;
}

int hx_db_cmp_metric_class(const char *metric, int *higher_better)
{
    static const char *const timing[] = {"ms", "ns", "us", "s", "gbps", "wall", "cpu", "stall",
                                         "rss", "time", "latency", "flops", "bandwidth",
                                         "throughput", NULL};
    static const char *const faster[] = {"gbps", "flops", "bandwidth", "throughput", NULL};
    int t = has_word(metric, timing);
    if (higher_better) /* speeds: tok_s, tokens_per_s, GB/s, FLOP/s */
        *higher_better = t && (has_word(metric, faster) || strstr(metric, "tok_s") ||
                               strstr(metric, "per_s"));
    return t ? HX_DB_CMP_TIMING : HX_DB_CMP_COUNT;
}

int hx_db_dir_parse(const char *s)
{
    static const char *const names[] = {"equal", "higher", "lower"};
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

const char *hx_db_dir_name(hx_db_dir d)
{
    return d == HX_DB_DIR_HIGHER ? "higher" : d == HX_DB_DIR_LOWER ? "lower" : "equal";
}

hx_db_dir hx_db_dir_default(const char *metric)
{
    static const char *const better[] = {"hit", "hits", "useful", NULL};
    static const char *const worse[] = {"miss", "misses", "evictions", "bytes", "loaded",
                                        "wasted", NULL};
    int higher = 0;
    if (hx_db_cmp_metric_class(metric, &higher) == HX_DB_CMP_TIMING)
        return higher ? HX_DB_DIR_HIGHER : HX_DB_DIR_LOWER;
    if (has_word(metric, better))
        return HX_DB_DIR_HIGHER;
    return has_word(metric, worse) ? HX_DB_DIR_LOWER : HX_DB_DIR_EQUAL;
}

/* Glob with `*` (any run of characters) as the only special character:
 * metric names hold brackets (cache_stats[0].hits), which fnmatch would
 * read as character sets. */
static int glob_match(const char *p, const char *s)
{
    for (; *p; p++, s++) {
        if (*p == '*') {
            for (const char *t = s;; t++) {
                if (glob_match(p + 1, t))
                    return 1;
                if (!*t)
                    return 0;
            }
        }
        if (*s != *p)
            return 0;
    }
    return *s == '\0';
}

hx_db_dir hx_db_cmp_direction(const hx_db_cmp_run *r, const char *label, const char *metric)
{
    const hx_db_cmp_exp *e = hx_db_cmp_find_exp(r, label);
    const json_t *exact = e && e->dirs ? json_object_get(e->dirs, metric) : NULL;
    if (exact)
        return (hx_db_dir)hx_db_dir_parse(json_string_value(exact));
    const char *pat;
    json_t *v, *best = NULL;
    size_t best_len = 0;
    if (e && e->dirs)
        json_object_foreach(e->dirs, pat, v) {
            if (glob_match(pat, metric) && strlen(pat) >= best_len)
                best = v, best_len = strlen(pat);
        }
    return best ? (hx_db_dir)hx_db_dir_parse(json_string_value(best)) : hx_db_dir_default(metric);
}
