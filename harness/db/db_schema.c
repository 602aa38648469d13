/*
 * db_schema.c — the schema of the results database as an ordered list of
 * forward migrations. Migration i takes a database from user_version i to
 * i + 1; hx_db_migrate applies the missing ones in one transaction, so a
 * database is always at a version listed here. To change the schema,
 * APPEND a migration (ALTER TABLE ... ADD COLUMN, CREATE TABLE, DROP VIEW +
 * CREATE VIEW) and bump HX_DB_SCHEMA_VERSION; never edit a shipped one.
 * docs/database.md documents every table, column and view.
 */
#include "harness/db/db.h"

#include <stdio.h>

static const char schema_v1[] =
    /* Where a run happened. uuid: hash of the other columns (dedup on merge). */
    "CREATE TABLE machine ("
    " id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,"
    " hostname TEXT, cpu_model TEXT, cores INTEGER, memory_bytes INTEGER,"
    " kernel TEXT, pmu_available INTEGER, papi_version TEXT,"
    " info TEXT NOT NULL DEFAULT '{}');"
    /* What ran: the binary's commit and how it was built. */
    "CREATE TABLE build ("
    " id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,"
    " version TEXT, commit_hash TEXT, dirty INTEGER, compiler TEXT, cflags TEXT,"
    " sqlite_version TEXT, lua_version TEXT, openblas_version TEXT, papi_version TEXT,"
    " jansson_version TEXT, info TEXT NOT NULL DEFAULT '{}');"
    "CREATE TABLE run ("
    " id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,"
    " suite TEXT NOT NULL, file TEXT, started_at TEXT NOT NULL, finished_at TEXT,"
    " status TEXT NOT NULL CHECK (status IN ('running','ok','failed','interrupted')),"
    " options TEXT NOT NULL DEFAULT '{}', cli TEXT NOT NULL DEFAULT '{}',"
    " machine_id INTEGER REFERENCES machine(id), build_id INTEGER REFERENCES build(id));"
    "CREATE INDEX run_suite ON run(suite, started_at);"
    "CREATE TABLE experiment ("
    " id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,"
    " run_id INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL, name TEXT NOT NULL, label TEXT NOT NULL, kind TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('ok','failed')), error TEXT,"
    " params TEXT NOT NULL DEFAULT '{}', args TEXT NOT NULL DEFAULT '{}',"
    " events TEXT NOT NULL DEFAULT '[]', tags TEXT NOT NULL DEFAULT '[]',"
    " warmup INTEGER NOT NULL, reps INTEGER NOT NULL, reps_done INTEGER NOT NULL,"
    " declared_at TEXT, started_at TEXT, finished_at TEXT);"
    "CREATE INDEX experiment_run ON experiment(run_id, seq);"
    "CREATE TABLE experiment_param ("
    " experiment_id INTEGER NOT NULL REFERENCES experiment(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL, value, PRIMARY KEY (experiment_id, key)) WITHOUT ROWID;"
    "CREATE INDEX experiment_param_kv ON experiment_param(key, value);"
    "CREATE TABLE sample ("
    " experiment_id INTEGER NOT NULL REFERENCES experiment(id) ON DELETE CASCADE,"
    " metric TEXT NOT NULL, rep INTEGER NOT NULL, value REAL NOT NULL,"
    " PRIMARY KEY (experiment_id, metric, rep)) WITHOUT ROWID;"
    "CREATE TABLE series ("
    " experiment_id INTEGER NOT NULL REFERENCES experiment(id) ON DELETE CASCADE,"
    " metric TEXT NOT NULL, rep INTEGER NOT NULL, idx INTEGER NOT NULL, value REAL NOT NULL,"
    " PRIMARY KEY (experiment_id, metric, rep, idx)) WITHOUT ROWID;"
    "CREATE TABLE blob ("
    " experiment_id INTEGER NOT NULL REFERENCES experiment(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL, rep INTEGER NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY (experiment_id, name, rep));"
    "CREATE TABLE summary ("
    " experiment_id INTEGER NOT NULL REFERENCES experiment(id) ON DELETE CASCADE,"
    " metric TEXT NOT NULL, n INTEGER NOT NULL, mean REAL, median REAL, min REAL, max REAL,"
    " stddev REAL, p50 REAL, p90 REAL, p99 REAL, ci_lo REAL, ci_hi REAL,"
    " PRIMARY KEY (experiment_id, metric)) WITHOUT ROWID;"
    "CREATE TABLE counter ("
    " experiment_id INTEGER NOT NULL REFERENCES experiment(id) ON DELETE CASCADE,"
    " rep INTEGER NOT NULL, region TEXT NOT NULL, event TEXT NOT NULL, value REAL,"
    " enabled_ns INTEGER, running_ns INTEGER);"
    "CREATE INDEX counter_exp ON counter(experiment_id, region, event);"
    "CREATE TABLE cache_stats ("
    " experiment_id INTEGER NOT NULL REFERENCES experiment(id) ON DELETE CASCADE,"
    " rep INTEGER NOT NULL, layer INTEGER NOT NULL, accesses INTEGER, hits INTEGER,"
    " misses INTEGER, evictions INTEGER, prefetch_issued INTEGER, prefetch_useful INTEGER,"
    " bytes_loaded INTEGER, prefetch_wasted_bytes INTEGER, stall_ns INTEGER);"
    "CREATE INDEX cache_stats_exp ON cache_stats(experiment_id, layer);"
    "CREATE TABLE routing_metric ("
    " experiment_id INTEGER NOT NULL REFERENCES experiment(id) ON DELETE CASCADE,"
    " rep INTEGER NOT NULL, trace TEXT, layer INTEGER NOT NULL, metric TEXT NOT NULL,"
    " param REAL, value REAL NOT NULL, ci_lo REAL, ci_hi REAL);"
    "CREATE INDEX routing_metric_exp ON routing_metric(experiment_id, metric, layer);"
    /* ---- views: the common questions in one line ---- */
    "CREATE VIEW latest_run AS SELECT id, uuid, suite, file, started_at, finished_at, status,"
    " options, cli, machine_id, build_id FROM (SELECT r.*, row_number() OVER"
    " (PARTITION BY suite ORDER BY started_at DESC, id DESC) AS rn FROM run r) WHERE rn = 1;"
    "CREATE VIEW run_overview AS SELECT r.id, r.uuid, r.suite, r.started_at, r.finished_at,"
    " r.status, (SELECT count(*) FROM experiment e WHERE e.run_id = r.id) AS experiments,"
    " (SELECT count(*) FROM experiment e WHERE e.run_id = r.id AND e.status = 'failed')"
    " AS failed, b.commit_hash, m.hostname, m.cpu_model"
    " FROM run r LEFT JOIN build b ON b.id = r.build_id"
    " LEFT JOIN machine m ON m.id = r.machine_id;"
    "CREATE VIEW experiment_summary AS SELECT r.id AS run_id, r.suite, r.started_at,"
    " e.id AS experiment_id, e.name, e.label, e.kind, e.status, e.params, s.metric, s.n,"
    " s.mean, s.median, s.min, s.max, s.stddev, s.p50, s.p90, s.p99, s.ci_lo, s.ci_hi"
    " FROM experiment e JOIN run r ON r.id = e.run_id"
    " JOIN summary s ON s.experiment_id = e.id;"
    "CREATE VIEW experiment_wide AS SELECT r.id AS run_id, r.suite, e.id AS experiment_id,"
    " e.seq, e.name, e.label, e.kind, e.status, e.error, e.params,"
    " (SELECT mean FROM summary s WHERE s.experiment_id = e.id AND s.metric = 'wall_ms')"
    " AS wall_ms,"
    " (SELECT mean FROM summary s WHERE s.experiment_id = e.id AND s.metric = 'tokens_per_s')"
    " AS tokens_per_s,"
    " (SELECT mean FROM summary s WHERE s.experiment_id = e.id AND s.metric = 'hit_rate')"
    " AS hit_rate,"
    " (SELECT json_group_object(metric, mean) FROM summary s WHERE s.experiment_id = e.id)"
    " AS means FROM experiment e JOIN run r ON r.id = e.run_id;"
    "CREATE VIEW policy_cache AS SELECT r.id AS run_id, r.suite, e.id AS experiment_id,"
    " e.name, json_extract(e.params, '$.policy') AS policy,"
    " coalesce(json_extract(e.params, '$.cache_m'), json_extract(e.params, '$.cache_size'),"
    " json_extract(e.params, '$.cache')) AS cache_size,"
    " json_extract(e.params, '$.prefetch') AS prefetch,"
    " t.mean AS tokens_per_s, t.ci_lo AS tokens_per_s_lo, t.ci_hi AS tokens_per_s_hi,"
    " h.mean AS hit_rate, h.ci_lo AS hit_rate_lo, h.ci_hi AS hit_rate_hi"
    " FROM experiment e JOIN run r ON r.id = e.run_id"
    " LEFT JOIN summary t ON t.experiment_id = e.id AND t.metric = 'tokens_per_s'"
    " LEFT JOIN summary h ON h.experiment_id = e.id AND h.metric = 'hit_rate'"
    " WHERE json_extract(e.params, '$.policy') IS NOT NULL;";

/* Version 2: which way each metric is better, as declared by the suite
 * (metrics = {...}) or the command's JSON ("directions"); regress reads it. */
static const char schema_v2[] =
    "CREATE TABLE metric_direction ("
    " experiment_id INTEGER NOT NULL REFERENCES experiment(id) ON DELETE CASCADE,"
    " pattern TEXT NOT NULL,"
    " direction TEXT NOT NULL CHECK (direction IN ('higher','lower','equal')),"
    " PRIMARY KEY (experiment_id, pattern)) WITHOUT ROWID;";

/* migrations[i]: user_version i -> i + 1. */
static const char *const migrations[HX_DB_SCHEMA_VERSION] = {schema_v1, schema_v2};

int hx_db_version(sqlite3 *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

static int count_objects(sqlite3 *db)
{
    sqlite3_stmt *st;
    int n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema", -1, &st, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return n;
}

static int migrate_locked(sqlite3 *db, int target, eng_err *err)
{
    int v = hx_db_version(db);
    if (v < 0)
        return eng_err_set(err, ENG_EFORMAT, "not a database: %s", sqlite3_errmsg(db));
    if (v > HX_DB_SCHEMA_VERSION)
        return eng_err_set(err, ENG_EFORMAT, "schema version %d is newer than this moebench "
                           "knows (%d); use a newer moebench", v, HX_DB_SCHEMA_VERSION);
    if (v == 0 && count_objects(db) != 0)
        return eng_err_set(err, ENG_EFORMAT, "not a moebench database (it has tables but no "
                           "schema version)");
    for (; v < target; v++) {
        int rc = hx_db_exec(db, migrations[v], err);
        if (rc)
            return eng_err_prefix(err, "migration to schema version %d", v + 1);
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if ((rc = hx_db_exec(db, sql, err)))
            return rc;
    }
    return ENG_OK;
}

int hx_db_migrate(sqlite3 *db, int target, eng_err *err)
{
    if (target < 0 || target > HX_DB_SCHEMA_VERSION)
        return eng_err_set(err, ENG_EINVAL, "no schema version %d", target);
    /* IMMEDIATE: two processes opening a fresh file at once serialise here,
     * and the second sees the first's version. */
    int rc = hx_db_exec(db, "BEGIN IMMEDIATE", err);
    if (rc)
        return rc;
    rc = migrate_locked(db, target, err);
    eng_err ignore = {0};
    if (rc) {
        hx_db_exec(db, "ROLLBACK", &ignore);
        return rc;
    }
    return hx_db_exec(db, "COMMIT", err);
}
