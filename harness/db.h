/*
 * db.h — the SQLite results store (docs/database.md).
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
#ifndef HX_DB_H
#define HX_DB_H

#include "engine/err.h"
#include "harness/kind.h"
#include "harness/result.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#define HX_DB_SCHEMA_VERSION 1

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
void hx_uuid_new(char out[37]);

/* The environment of a run (harness/env.c fills machine and build). */
typedef struct hx_run_info {
    char uuid[37];
    const char *suite, *file;
    json_t *options;       /* resolved suite options                      */
    json_t *cli;           /* the command line, shard, seed, flags        */
    json_t *machine;       /* object: cpu_model, cores, memory_bytes, ... */
    json_t *build;         /* object: commit, dirty, compiler, cflags ... */
} hx_run_info;

/* Inserts machine and build (deduplicated by content) and the run with
 * status 'running'; commits. */
int hx_db_run_begin(hx_db *db, const hx_run_info *ri, int64_t *run_id, eng_err *err);
/* Sets finished_at and status ('ok', 'failed', 'interrupted'). */
int hx_db_run_finish(hx_db *db, int64_t run_id, const char *status, eng_err *err);

/* Stores one experiment in one transaction: the experiment row, its
 * parameters, every repetition's samples, series, blobs, counters, cache
 * and routing rows, and the summary of each metric over the repetitions.
 * status: "ok" or "failed" (error = the message). reps[0..nreps). */
int hx_db_experiment_store(hx_db *db, int64_t run_id, const hx_experiment *e,
                           const char *status, const char *error, const hx_result *reps,
                           int nreps, double started, double finished, eng_err *err);

typedef struct hx_merge_stats {
    int64_t runs_added, runs_skipped, experiments_added;
} hx_merge_stats;

/* Copies every run of the database at src_path that dst does not hold yet
 * (by UUID) with all its rows; one transaction per source file. */
int hx_db_merge(hx_db *dst, const char *src_path, hx_merge_stats *st, eng_err *err);

/* Helpers shared by the commands: exec with message, prepare or fail. */
int hx_db_exec(sqlite3 *db, const char *sql, eng_err *err);

#endif
