/*
 * db.c — opening, run/experiment storage and merging. See db.h; the
 * schema and its migrations are in db_schema.c.
 *
 * Transactions: hx_db_run_begin and hx_db_run_finish are one transaction
 * each; hx_db_experiment_store is one BEGIN IMMEDIATE ... COMMIT holding
 * every row of one experiment, so a reader (or a crash) sees an experiment
 * whole or not at all. IMMEDIATE takes the write lock up front, so two
 * writers wait on the busy timeout instead of deadlocking on a lock
 * upgrade. Row contents come from JSON objects where that is shorter:
 * SQLite's json_extract/json_each pick the fields apart in SQL.
 */
#include "harness/db/db.h"

#include "metrics/stats.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 60000

struct hx_db {
    sqlite3 *db;
    char path[512];
};

int hx_db_exec(sqlite3 *db, const char *sql, eng_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return ENG_OK;
    int code = sqlite3_errcode(db);
    int rc = eng_err_set(err, code == SQLITE_NOTADB || code == SQLITE_CORRUPT ? ENG_EFORMAT
                                                                              : ENG_EIO,
                         "%s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return rc;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, eng_err *err)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK)
        return ENG_OK;
    return eng_err_set(err, ENG_EIO, "%s", sqlite3_errmsg(db));
}

/* Steps a statement that returns no rows, then resets it for reuse. */
static int step_done(sqlite3 *db, sqlite3_stmt *st, eng_err *err)
{
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (r == SQLITE_DONE || r == SQLITE_ROW)
        return ENG_OK;
    return eng_err_set(err, ENG_EIO, "%s", sqlite3_errmsg(db));
}

void hx_db_uuid_new(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* no entropy source: time and pid still make collisions unlikely */
        uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        for (int i = 0; i < 16; i++)
            b[i] = (unsigned char)(t >> (8 * (i % 8))) ^ (unsigned char)(i * 131 + clock());
    }
    b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
    b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

/* results/moebench.db in a fresh checkout: create the one missing level. */
static void make_parent(const char *path)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = '\0';
    if (access(dir, F_OK) != 0)
        mkdir(dir, 0777);
}

int hx_db_open(hx_db **out, const char *path, int flags, eng_err *err)
{
    *out = NULL;
    int ro = flags & HX_DB_READONLY;
    if ((ro || !(flags & HX_DB_CREATE)) && access(path, F_OK) != 0)
        return eng_err_set(err, ENG_EINVAL, "%s: no such database (%s)", path, strerror(errno));
    if (!ro && (flags & HX_DB_CREATE))
        make_parent(path);
    hx_db *h = calloc(1, sizeof *h);
    if (!h)
        return eng_err_set(err, ENG_ENOMEM, "%s: out of memory", path);
    snprintf(h->path, sizeof h->path, "%s", path);
    int oflags = SQLITE_OPEN_URI | (ro ? SQLITE_OPEN_READONLY
                                       : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = ENG_OK;
    if (sqlite3_open_v2(path, &h->db, oflags, NULL) != SQLITE_OK) {
        rc = eng_err_set(err, ENG_EIO, "%s: %s", path, sqlite3_errmsg(h->db));
        goto fail;
    }
    sqlite3_busy_timeout(h->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(h->db, 0);
    if (ro) {
        rc = hx_db_exec(h->db, "PRAGMA query_only = 1", err);
        int v = rc ? -1 : hx_db_version(h->db);
        if (!rc && v > HX_DB_SCHEMA_VERSION)
            rc = eng_err_set(err, ENG_EFORMAT, "schema version %d is newer than this moebench "
                             "knows (%d)", v, HX_DB_SCHEMA_VERSION);
        else if (!rc && v <= 0 && hx_db_exec(h->db, "SELECT count(*) FROM sqlite_schema", err))
            rc = eng_err_set(err, ENG_EFORMAT, "not a moebench database: %s",
                             sqlite3_errmsg(h->db));
        else if (!rc && v <= 0)
            rc = eng_err_set(err, ENG_EFORMAT, "not a moebench database (no schema)");
    } else {
        rc = hx_db_exec(h->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                               "PRAGMA foreign_keys = ON", err);
        if (!rc)
            rc = hx_db_migrate(h->db, HX_DB_SCHEMA_VERSION, err);
    }
    if (rc)
        goto fail;
    *out = h;
    return ENG_OK;
fail:
    eng_err_prefix(err, "%s", path);
    sqlite3_close(h->db);
    free(h);
    return rc;
}

void hx_db_close(hx_db *db)
{
    if (!db)
        return;
    sqlite3_close(db->db);
    free(db);
}

sqlite3 *hx_db_sqlite(hx_db *db)
{
    return db->db;
}

/* 128-bit content hash (two FNV-1a lanes) of canonical JSON, as hex. */
static void content_id(const json_t *o, char out[33])
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    uint64_t a = 1469598103934665603ull, b = 0x84222325cbf29ce4ull;
    for (const char *p = s ? s : ""; *p; p++) {
        a = (a ^ (unsigned char)*p) * 1099511628211ull;
        b = (b ^ (unsigned char)*p) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
    }
    free(s);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

static int bind_json(sqlite3_stmt *st, int i, const json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
    if (!s)
        return sqlite3_bind_text(st, i, "{}", -1, SQLITE_STATIC);
    return sqlite3_bind_text(st, i, s, -1, free);
}

static int insert_by_content(sqlite3 *db, const char *sql, const char *table, const json_t *o,
                             int64_t *id, eng_err *err)
{
    char uuid[33];
    content_id(o, uuid);
    sqlite3_stmt *st;
    int rc = prep(db, sql, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, uuid, -1, SQLITE_TRANSIENT);
    bind_json(st, 2, o);
    rc = step_done(db, st, err);
    sqlite3_finalize(st);
    char q[128];
    snprintf(q, sizeof q, "SELECT id FROM %s WHERE uuid = ?", table);
    if (rc || (rc = prep(db, q, &st, err)))
        return rc;
    sqlite3_bind_text(st, 1, uuid, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st) == SQLITE_ROW ? ENG_OK
                                        : eng_err_set(err, ENG_EIO, "%s row vanished", table);
    *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

static const char machine_sql[] =
    "INSERT OR IGNORE INTO machine (uuid, hostname, cpu_model, cores, memory_bytes, kernel,"
    " pmu_available, papi_version, info) SELECT ?1, j->>'$.hostname', j->>'$.cpu_model',"
    " j->>'$.cores', j->>'$.memory_bytes', j->>'$.kernel', j->>'$.pmu_available',"
    " j->>'$.papi_version', j FROM (SELECT json(?2) AS j)";
static const char build_sql[] =
    "INSERT OR IGNORE INTO build (uuid, version, commit_hash, dirty, compiler, cflags,"
    " sqlite_version, lua_version, openblas_version, papi_version, jansson_version, info)"
    " SELECT ?1, j->>'$.version', j->>'$.commit', j->>'$.dirty', j->>'$.compiler',"
    " j->>'$.cflags', j->>'$.sqlite', j->>'$.lua', j->>'$.openblas', j->>'$.papi',"
    " j->>'$.jansson', j FROM (SELECT json(?2) AS j)";

int hx_db_run_begin(hx_db *h, const hx_db_run_info *ri, int64_t *run_id, eng_err *err)
{
    sqlite3 *db = h->db;
    int64_t mid = 0, bid = 0;
    int rc = hx_db_exec(db, "BEGIN IMMEDIATE", err);
    if (rc)
        return rc;
    rc = insert_by_content(db, machine_sql, "machine", ri->machine, &mid, err);
    if (!rc)
        rc = insert_by_content(db, build_sql, "build", ri->build, &bid, err);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = prep(db, "INSERT INTO run (uuid, suite, file, started_at, status, options, cli,"
                      " machine_id, build_id) VALUES (?, ?, ?,"
                      " strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'running', ?, ?, ?, ?)",
                  &st, err);
    if (!rc) {
        sqlite3_bind_text(st, 1, ri->uuid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, ri->suite, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, ri->file, -1, SQLITE_TRANSIENT);
        bind_json(st, 4, ri->options);
        bind_json(st, 5, ri->cli);
        sqlite3_bind_int64(st, 6, mid);
        sqlite3_bind_int64(st, 7, bid);
        rc = step_done(db, st, err);
        *run_id = sqlite3_last_insert_rowid(db);
    }
    sqlite3_finalize(st);
    eng_err ignore = {0};
    if (rc) {
        hx_db_exec(db, "ROLLBACK", &ignore);
        return eng_err_prefix(err, "%s: storing the run", h->path);
    }
    return hx_db_exec(db, "COMMIT", err);
}

int hx_db_run_finish(hx_db *h, int64_t run_id, const char *status, eng_err *err)
{
    sqlite3_stmt *st;
    int rc = prep(h->db, "UPDATE run SET status = ?, finished_at ="
                         " strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, run_id);
    rc = step_done(h->db, st, err);
    sqlite3_finalize(st);
    return rc;
}
