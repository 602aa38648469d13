/*
 * db_store.c — one experiment into the database, in one transaction, and
 * the merge of shard databases. See db.h.
 *
 * Statements are prepared once per call (an experiment has a handful of
 * tables and at most thousands of rows; preparing is not the cost).
 * NaN is stored as NULL (SQLite has no NaN). The summary of a metric is
 * over the repetitions that recorded it.
 */
#include "harness/db/db.h"

#include "metrics/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct stmts {
    sqlite3_stmt *sample, *series, *blob, *counter, *cache, *routing, *summary;
} stmts;

static const char *const stmt_sql[] = {
    "INSERT INTO sample (experiment_id, metric, rep, value) VALUES (?, ?, ?, ?)",
    "INSERT INTO series (experiment_id, metric, rep, idx, value) VALUES (?, ?, ?, ?, ?)",
    "INSERT INTO blob (experiment_id, name, rep, value) VALUES (?, ?, ?, ?)",
    "INSERT INTO counter (experiment_id, rep, region, event, value, enabled_ns, running_ns)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
    "INSERT INTO cache_stats (experiment_id, rep, layer, accesses, hits, misses, evictions,"
    " prefetch_issued, prefetch_useful, bytes_loaded, prefetch_wasted_bytes, stall_ns)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "INSERT INTO routing_metric (experiment_id, rep, trace, layer, metric, param, value,"
    " ci_lo, ci_hi) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "INSERT INTO summary (experiment_id, metric, n, mean, median, min, max, stddev, p50, p90,"
    " p99, ci_lo, ci_hi) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
};

static int fail(sqlite3 *db, eng_err *err)
{
    return eng_err_set(err, ENG_EIO, "%s", sqlite3_errmsg(db));
}

static int step(sqlite3 *db, sqlite3_stmt *st, eng_err *err)
{
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    return r == SQLITE_DONE ? ENG_OK : fail(db, err);
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isnan(v))
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_double(st, i, v);
}

static void bind_count(sqlite3_stmt *st, int i, int64_t v)
{
    if (v < 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

static int store_rep(sqlite3 *db, stmts *s, int64_t eid, int rep, const hx_db_result *r,
                     eng_err *err)
{
    int rc = ENG_OK;
    for (size_t i = 0; !rc && i < r->nsamples; i++) {
        sqlite3_bind_int64(s->sample, 1, eid);
        sqlite3_bind_text(s->sample, 2, r->samples[i].metric, -1, SQLITE_STATIC);
        sqlite3_bind_int(s->sample, 3, rep);
        sqlite3_bind_double(s->sample, 4, r->samples[i].value);
        rc = step(db, s->sample, err);
    }
    for (size_t i = 0; !rc && i < r->nseries; i++)
        for (size_t j = 0; !rc && j < r->series[i].n; j++) {
            sqlite3_bind_int64(s->series, 1, eid);
            sqlite3_bind_text(s->series, 2, r->series[i].metric, -1, SQLITE_STATIC);
            sqlite3_bind_int(s->series, 3, rep);
            sqlite3_bind_int64(s->series, 4, (int64_t)j);
            sqlite3_bind_double(s->series, 5, r->series[i].v[j]);
            rc = step(db, s->series, err);
        }
    for (size_t i = 0; !rc && i < r->nblobs; i++) {
        char *js = json_dumps(r->blobs[i].value, JSON_COMPACT | JSON_ENCODE_ANY);
        sqlite3_bind_int64(s->blob, 1, eid);
        sqlite3_bind_text(s->blob, 2, r->blobs[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_int(s->blob, 3, rep);
        sqlite3_bind_text(s->blob, 4, js ? js : "null", -1, SQLITE_TRANSIENT);
        free(js);
        rc = step(db, s->blob, err);
    }
    for (size_t i = 0; !rc && i < r->ncounters; i++) {
        const hx_db_counter_row *c = &r->counters[i];
        sqlite3_bind_int64(s->counter, 1, eid);
        sqlite3_bind_int(s->counter, 2, rep);
        sqlite3_bind_text(s->counter, 3, c->region, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->counter, 4, c->event, -1, SQLITE_STATIC);
        bind_real(s->counter, 5, c->value);
        bind_count(s->counter, 6, c->enabled_ns);
        bind_count(s->counter, 7, c->running_ns);
        rc = step(db, s->counter, err);
    }
    for (size_t i = 0; !rc && i < r->ncache; i++) {
        const hx_db_cache_row *c = &r->cache[i];
        const int64_t v[] = {c->accesses, c->hits, c->misses, c->evictions, c->prefetch_issued,
                             c->prefetch_useful, c->bytes_loaded, c->prefetch_wasted_bytes,
                             c->stall_ns};
        sqlite3_bind_int64(s->cache, 1, eid);
        sqlite3_bind_int(s->cache, 2, rep);
        sqlite3_bind_int(s->cache, 3, c->layer);
        for (int k = 0; k < 9; k++)
            bind_count(s->cache, 4 + k, v[k]);
        rc = step(db, s->cache, err);
    }
    for (size_t i = 0; !rc && i < r->nrouting; i++) {
        const hx_db_routing_row *m = &r->routing[i];
        sqlite3_bind_int64(s->routing, 1, eid);
        sqlite3_bind_int(s->routing, 2, rep);
        sqlite3_bind_text(s->routing, 3, m->trace, -1, SQLITE_STATIC);
        sqlite3_bind_int(s->routing, 4, m->layer);
        sqlite3_bind_text(s->routing, 5, m->metric, -1, SQLITE_STATIC);
        bind_real(s->routing, 6, m->param);
        bind_real(s->routing, 7, m->value);
        bind_real(s->routing, 8, m->ci_lo);
        bind_real(s->routing, 9, m->ci_hi);
        rc = step(db, s->routing, err);
    }
    return rc;
}

/* Summaries: for each distinct metric (first-seen order), its values
 * across repetitions. */
static int store_summaries(sqlite3 *db, stmts *s, int64_t eid, const hx_db_result *reps,
                           int nreps, eng_err *err)
{
    double *vals = malloc((size_t)(nreps > 0 ? nreps : 1) * sizeof *vals);
    if (!vals)
        return eng_err_set(err, ENG_ENOMEM, "out of memory summarising");
    int rc = ENG_OK;
    for (int r = 0; !rc && r < nreps; r++)
        for (size_t i = 0; !rc && i < reps[r].nsamples; i++) {
            const char *m = reps[r].samples[i].metric;
            int seen = 0;
            for (int q = 0; q < r && !seen; q++)
                seen = !isnan(hx_db_result_get(&reps[q], m));
            if (seen)
                continue;
            size_t n = 0;
            for (int q = r; q < nreps; q++) {
                double v = hx_db_result_get(&reps[q], m);
                if (!isnan(v))
                    vals[n++] = v;
            }
            met_summary sm;
            if ((rc = met_stats_summarize(vals, n, &sm, err)))
                break;
            const double col[] = {sm.mean, sm.median, sm.min, sm.max, sm.stddev, sm.p50,
                                  sm.p90, sm.p99, sm.ci_lo, sm.ci_hi};
            sqlite3_bind_int64(s->summary, 1, eid);
            sqlite3_bind_text(s->summary, 2, m, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s->summary, 3, (int64_t)n);
            for (int k = 0; k < 10; k++)
                bind_real(s->summary, 4 + k, col[k]);
            rc = step(db, s->summary, err);
        }
    free(vals);
    return rc;
}

static int insert_experiment(sqlite3 *db, int64_t run_id, const hx_db_experiment *e,
                             const char *status, const char *error, int nreps, double t0,
                             double t1, int64_t *eid, eng_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
            "INSERT INTO experiment (uuid, run_id, seq, name, label, kind, status, error,"
            " params, args, events, tags, warmup, reps, reps_done, declared_at, started_at,"
            " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, json(?), json(?), json(?), json(?),"
            " ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', ?, 'unixepoch'),"
            " strftime('%Y-%m-%dT%H:%M:%fZ', ?, 'unixepoch'))", -1, &st, NULL) != SQLITE_OK)
        return fail(db, err);
    const json_t *js[] = {e->params, e->args, e->events, e->tags};
    sqlite3_bind_text(st, 1, e->uuid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, run_id);
    sqlite3_bind_int(st, 3, e->seq);
    sqlite3_bind_text(st, 4, e->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, e->label, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, e->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, status, -1, SQLITE_STATIC);
    if (error)
        sqlite3_bind_text(st, 8, error, -1, SQLITE_STATIC);
    for (int k = 0; k < 4; k++) {
        char *s = js[k] ? json_dumps(js[k], JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        sqlite3_bind_text(st, 9 + k, s ? s : (k < 2 ? "{}" : "[]"), -1, SQLITE_TRANSIENT);
        free(s);
    }
    sqlite3_bind_int(st, 13, e->warmup);
    sqlite3_bind_int(st, 14, e->reps);
    sqlite3_bind_int(st, 15, nreps);
    sqlite3_bind_text(st, 16, e->file_line, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 17, t0);
    sqlite3_bind_double(st, 18, t1);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE)
        return fail(db, err);
    *eid = sqlite3_last_insert_rowid(db);
    /* experiment_param: one row per top-level parameter, from the JSON */
    if (sqlite3_prepare_v2(db, "INSERT INTO experiment_param (experiment_id, key, value)"
                               " SELECT ?, key, value FROM experiment, json_each(params)"
                               " WHERE experiment.id = ?1", -1, &st, NULL) != SQLITE_OK)
        return fail(db, err);
    sqlite3_bind_int64(st, 1, *eid);
    r = sqlite3_step(st);
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? ENG_OK : fail(db, err);
}

/* The repetitions' declared directions, then the suite's over them. */
static int store_directions(sqlite3 *db, int64_t eid, const hx_db_experiment *e,
                            const hx_db_result *reps, int nreps, eng_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO metric_direction (experiment_id,"
                               " pattern, direction) VALUES (?, ?, ?)", -1, &st, NULL) !=
        SQLITE_OK)
        return fail(db, err);
    int rc = ENG_OK;
    for (int r = 0; !rc && r <= nreps; r++) {
        const json_t *d = r < nreps ? reps[r].directions : e->directions;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)d, k, v) {
            sqlite3_bind_int64(st, 1, eid);
            sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, json_string_value(v), -1, SQLITE_STATIC);
            if ((rc = step(db, st, err)))
                break;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int hx_db_experiment_store(hx_db *h, int64_t run_id, const hx_db_experiment *e,
                           const char *status, const char *error, const hx_db_result *reps,
                           int nreps, double started, double finished, eng_err *err)
{
    sqlite3 *db = hx_db_sqlite(h);
    stmts s = {0};
    sqlite3_stmt **sv = &s.sample;
    int rc = hx_db_exec(db, "BEGIN IMMEDIATE", err);
    if (rc)
        return eng_err_prefix(err, "storing experiment '%s'", e->label);
    for (int k = 0; !rc && k < 7; k++)
        if (sqlite3_prepare_v2(db, stmt_sql[k], -1, &sv[k], NULL) != SQLITE_OK)
            rc = fail(db, err);
    int64_t eid = 0;
    if (!rc)
        rc = insert_experiment(db, run_id, e, status, error, nreps, started, finished, &eid,
                               err);
    for (int r = 0; !rc && r < nreps; r++)
        rc = store_rep(db, &s, eid, r, &reps[r], err);
    if (!rc)
        rc = store_summaries(db, &s, eid, reps, nreps, err);
    if (!rc)
        rc = store_directions(db, eid, e, reps, nreps, err);
    for (int k = 0; k < 7; k++)
        sqlite3_finalize(sv[k]);
    eng_err ignore = {0};
    if (rc) {
        hx_db_exec(db, "ROLLBACK", &ignore);
        return eng_err_prefix(err, "storing experiment '%s'", e->label);
    }
    return hx_db_exec(db, "COMMIT", err);
}

/* ---- merge --------------------------------------------------------------- */

/* Child tables of experiment and their columns after experiment_id. */
static const struct { const char *table, *cols; } children[] = {
    {"experiment_param", "key, value"},
    {"sample", "metric, rep, value"},
    {"series", "metric, rep, idx, value"},
    {"blob", "name, rep, value"},
    {"summary", "metric, n, mean, median, min, max, stddev, p50, p90, p99, ci_lo, ci_hi"},
    {"counter", "rep, region, event, value, enabled_ns, running_ns"},
    {"cache_stats", "rep, layer, accesses, hits, misses, evictions, prefetch_issued,"
                    " prefetch_useful, bytes_loaded, prefetch_wasted_bytes, stall_ns"},
    {"routing_metric", "rep, trace, layer, metric, param, value, ci_lo, ci_hi"},
    {"metric_direction", "pattern, direction"},
};

static const char merge_head[] =
    "INSERT OR IGNORE INTO main.machine (uuid, hostname, cpu_model, cores, memory_bytes,"
    " kernel, pmu_available, papi_version, info) SELECT uuid, hostname, cpu_model, cores,"
    " memory_bytes, kernel, pmu_available, papi_version, info FROM src.machine;"
    "INSERT OR IGNORE INTO main.build (uuid, version, commit_hash, dirty, compiler, cflags,"
    " sqlite_version, lua_version, openblas_version, papi_version, jansson_version, info)"
    " SELECT uuid, version, commit_hash, dirty, compiler, cflags, sqlite_version, lua_version,"
    " openblas_version, papi_version, jansson_version, info FROM src.build;"
    "CREATE TEMP TABLE merge_run AS SELECT id AS src_id FROM src.run"
    " WHERE uuid NOT IN (SELECT uuid FROM main.run);"
    "INSERT INTO main.run (uuid, suite, file, started_at, finished_at, status, options, cli,"
    " machine_id, build_id) SELECT r.uuid, r.suite, r.file, r.started_at, r.finished_at,"
    " r.status, r.options, r.cli,"
    " (SELECT m.id FROM main.machine m JOIN src.machine s ON s.uuid = m.uuid"
    "  WHERE s.id = r.machine_id),"
    " (SELECT b.id FROM main.build b JOIN src.build s ON s.uuid = b.uuid"
    "  WHERE s.id = r.build_id)"
    " FROM src.run r WHERE r.id IN (SELECT src_id FROM temp.merge_run) ORDER BY r.id;"
    "INSERT INTO main.experiment (uuid, run_id, seq, name, label, kind, status, error, params,"
    " args, events, tags, warmup, reps, reps_done, declared_at, started_at, finished_at)"
    " SELECT e.uuid, (SELECT id FROM main.run WHERE uuid = sr.uuid), e.seq, e.name, e.label,"
    " e.kind, e.status, e.error, e.params, e.args, e.events, e.tags, e.warmup, e.reps,"
    " e.reps_done, e.declared_at, e.started_at, e.finished_at"
    " FROM src.experiment e JOIN src.run sr ON sr.id = e.run_id"
    " WHERE e.run_id IN (SELECT src_id FROM temp.merge_run)"
    " AND e.uuid NOT IN (SELECT uuid FROM main.experiment) ORDER BY e.id;"
    "CREATE TEMP TABLE merge_exp AS SELECT se.id AS src_id, me.id AS dst_id"
    " FROM src.experiment se JOIN main.experiment me ON me.uuid = se.uuid"
    " WHERE se.run_id IN (SELECT src_id FROM temp.merge_run);";

static int count(sqlite3 *db, const char *sql, int64_t *n)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    *n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return 0;
}

static int merge_body(sqlite3 *db, hx_db_merge_stats *ms, eng_err *err)
{
    int rc = hx_db_exec(db, merge_head, err);
    int64_t n_src = 0, n_new = 0, n_exp = 0;
    if (!rc && (count(db, "SELECT count(*) FROM src.run", &n_src) ||
                count(db, "SELECT count(*) FROM temp.merge_run", &n_new) ||
                count(db, "SELECT count(*) FROM temp.merge_exp", &n_exp)))
        rc = fail(db, err);
    for (size_t i = 0; !rc && i < sizeof children / sizeof *children; i++) {
        char sql[1024];
        snprintf(sql, sizeof sql, "INSERT INTO main.%s (experiment_id, %s) SELECT m.dst_id, %s"
                 " FROM src.%s t JOIN temp.merge_exp m ON m.src_id = t.experiment_id",
                 children[i].table, children[i].cols, children[i].cols, children[i].table);
        rc = hx_db_exec(db, sql, err);
    }
    ms->runs_added += n_new;
    ms->runs_skipped += n_src - n_new;
    ms->experiments_added += n_exp;
    return rc;
}

int hx_db_merge(hx_db *h, const char *src_path, hx_db_merge_stats *ms, eng_err *err)
{
    sqlite3 *db = hx_db_sqlite(h);
    /* Migrate the source first (forward only, harmless), so columns match. */
    hx_db *src = NULL;
    int rc = hx_db_open(&src, src_path, 0, err);
    if (rc)
        return rc;
    hx_db_close(src);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "ATTACH ? AS src", -1, &st, NULL) != SQLITE_OK)
        return fail(db, err);
    sqlite3_bind_text(st, 1, src_path, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        fail(db, err);
        return eng_err_prefix(err, "attaching %s", src_path);
    }
    eng_err ignore = {0};
    rc = hx_db_exec(db, "BEGIN IMMEDIATE", err);
    if (!rc)
        rc = merge_body(db, ms, err);
    if (!rc)
        rc = hx_db_exec(db, "COMMIT", err);
    else
        hx_db_exec(db, "ROLLBACK", &ignore);
    hx_db_exec(db, "DROP TABLE IF EXISTS temp.merge_run; DROP TABLE IF EXISTS temp.merge_exp;"
                   "DETACH src", &ignore);
    if (rc)
        eng_err_prefix(err, "merging %s", src_path);
    return rc;
}
