/* test_db.c — the SQLite store (harness/db*.c): schema, migrations from
 * every earlier version, refusal of foreign/newer files, one experiment
 * per transaction, concurrent writers, merge, and the JSON-to-rows
 * recognition of the command kind. */
#include "tests/test.h"

#include "harness/db/db.h"
#include "harness/suite/suite.h"
#include "metrics/stats.h"

#include <math.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int64_t scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
        return -999;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static double scalar_d(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    double v = NAN;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NAN;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

static hx_db *open_db(const char *name)
{
    hx_db *db;
    eng_err err = {0};
    REQUIRE_MSG(hx_db_open(&db, tst_path(name), HX_DB_CREATE, &err) == ENG_OK, "%s", err.msg);
    return db;
}

static int64_t begin_run(hx_db *db, const char *suite)
{
    hx_db_run_info ri = {.suite = suite, .file = "x.lua", .options = json_object(),
                      .cli = json_object(),
                      .machine = json_pack("{s:s, s:i}", "hostname", "h", "cores", 2),
                      .build = json_pack("{s:s}", "commit", "abc")};
    hx_db_uuid_new(ri.uuid);
    int64_t id = 0;
    eng_err err = {0};
    int rc = hx_db_run_begin(db, &ri, &id, &err);
    json_decref(ri.options), json_decref(ri.cli), json_decref(ri.machine), json_decref(ri.build);
    REQUIRE_MSG(rc == ENG_OK, "%s", err.msg);
    return id;
}

/* A lua-kind experiment description with params {policy, cache_m}. */
static hx_db_experiment make_exp(int seq, const char *policy, int cache_m)
{
    hx_db_experiment e = {.seq = seq, .name = "exp", .kind = "lua", .warmup = 1,
                       .reps = 3, .file_line = "t.lua:1"};
    e.params = json_pack("{s:s, s:i}", "policy", policy, "cache_m", cache_m);
    e.args = json_object();
    e.events = json_pack("[s]", "perf::TASK-CLOCK");
    e.tags = json_array();
    e.label = "exp";
    hx_db_uuid_new(e.uuid);
    return e;
}

static void free_exp(hx_db_experiment *e)
{
    json_decref((json_t *)e->params), json_decref((json_t *)e->args);
    json_decref((json_t *)e->events), json_decref((json_t *)e->tags);
}

/* Three repetitions with every kind of row; tokens_per_s = base + rep. */
static void make_reps(hx_db_result r[3], double base)
{
    eng_err err = {0};
    for (int i = 0; i < 3; i++) {
        memset(&r[i], 0, sizeof r[i]);
        hx_db_result_sample(&r[i], "tokens_per_s", base + i, &err);
        hx_db_result_sample(&r[i], "hit_rate", 0.5, &err);
        double s[4] = {1, 2, 3, 4.5};
        hx_db_result_series(&r[i], "token_ms", s, 4, &err);
        hx_db_result_blob(&r[i], "note", json_pack("{s:i}", "rep", i), &err);
        hx_db_counter_row c = {"expert_ffn", "perf::TASK-CLOCK", 1000 + i, 10, 10};
        hx_db_result_counter(&r[i], &c, &err);
        hx_db_cache_row cr = {.layer = 0, .accesses = 10, .hits = 7, .misses = 3, .evictions = 1,
                           .prefetch_issued = -1, .prefetch_useful = -1, .bytes_loaded = 300,
                           .prefetch_wasted_bytes = -1, .stall_ns = 5};
        hx_db_result_cache(&r[i], &cr, &err);
        hx_db_routing_row rr = {"t.moetrace", -1, "srp", 16, 0.75, NAN, NAN};
        hx_db_result_routing(&r[i], &rr, &err);
    }
}

static void store(hx_db *db, int64_t run, hx_db_experiment *e, double base)
{
    hx_db_result r[3];
    make_reps(r, base);
    eng_err err = {0};
    int rc = hx_db_experiment_store(db, run, e, "ok", NULL, r, 3, 1e9, 1e9 + 1, &err);
    for (int i = 0; i < 3; i++)
        hx_db_result_clear(&r[i]);
    REQUIRE_MSG(rc == ENG_OK, "%s", err.msg);
}

TEST(schema_is_created_with_version_and_wal)
{
    hx_db *h = open_db("a.db");
    sqlite3 *db = hx_db_sqlite(h);
    CHECK_EQ_INT(hx_db_version(db), HX_DB_SCHEMA_VERSION);
    static const char *const objs[] = {
        "machine", "build", "run", "experiment", "experiment_param", "sample", "series",
        "blob", "summary", "counter", "cache_stats", "routing_metric", "latest_run",
        "run_overview", "experiment_summary", "experiment_wide", "policy_cache"};
    for (size_t i = 0; i < sizeof objs / sizeof *objs; i++) {
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_schema WHERE name = '%s'",
                 objs[i]);
        CHECK_MSG(scalar(db, sql) == 1, "missing %s", objs[i]);
    }
    sqlite3_stmt *st;
    REQUIRE(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    hx_db_close(h);
}

/* Fixture at version v (0 = empty file), with a run row when v >= 1. */
static void fixture(const char *path, int v)
{
    sqlite3 *db;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    eng_err err = {0};
    REQUIRE_MSG(hx_db_migrate(db, v, &err) == ENG_OK, "%s", err.msg);
    if (v >= 1)
        REQUIRE(hx_db_exec(db, "INSERT INTO run (uuid, suite, started_at, status)"
                               " VALUES ('u-1', 'old', '2026-01-01T00:00:00Z', 'ok')",
                           &err) == ENG_OK);
    CHECK_EQ_INT(hx_db_version(db), v);
    sqlite3_close(db);
}

TEST(migrates_from_every_earlier_version)
{
    for (int v = 0; v <= HX_DB_SCHEMA_VERSION; v++) {
        char name[32];
        snprintf(name, sizeof name, "v%d.db", v);
        fixture(tst_path(name), v);
        hx_db *h = open_db(name);
        sqlite3 *db = hx_db_sqlite(h);
        CHECK_EQ_INT(hx_db_version(db), HX_DB_SCHEMA_VERSION);
        CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM run WHERE suite = 'old'"), v >= 1);
        CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM experiment_wide"), 0);
        /* the migrated database takes new runs */
        int64_t run = begin_run(h, "new");
        hx_db_experiment e = make_exp(0, "lru", 2);
        store(h, run, &e, 10);
        free_exp(&e);
        sqlite3_stmt *st;
        REQUIRE(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK);
        REQUIRE(sqlite3_step(st) == SQLITE_ROW);
        CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "ok");
        sqlite3_finalize(st);
        hx_db_close(h);
    }
}

TEST(refuses_newer_foreign_and_broken_files)
{
    sqlite3 *db;
    REQUIRE(sqlite3_open(tst_path("new.db"), &db) == SQLITE_OK);
    eng_err err = {0};
    hx_db_exec(db, "PRAGMA user_version = 99", &err);
    sqlite3_close(db);
    hx_db *h;
    CHECK_EQ_INT(hx_db_open(&h, tst_path("new.db"), 0, &err), ENG_EFORMAT);
    CHECK_CONTAINS(err.msg, "new.db");
    CHECK_CONTAINS(err.msg, "newer");
    CHECK_EQ_INT(hx_db_open(&h, tst_path("new.db"), HX_DB_READONLY, &err), ENG_EFORMAT);

    REQUIRE(sqlite3_open(tst_path("other.db"), &db) == SQLITE_OK);
    hx_db_exec(db, "CREATE TABLE t(x)", &err);
    sqlite3_close(db);
    CHECK_EQ_INT(hx_db_open(&h, tst_path("other.db"), 0, &err), ENG_EFORMAT);
    CHECK_CONTAINS(err.msg, "not a moebench database");

    tst_write_file(tst_path("junk.db"), "this is not sqlite at all, not even close......", 48);
    CHECK_EQ_INT(hx_db_open(&h, tst_path("junk.db"), 0, &err), ENG_EFORMAT);
    CHECK_CONTAINS(err.msg, "junk.db");
    CHECK_EQ_INT(hx_db_open(&h, tst_path("absent.db"), HX_DB_READONLY, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "no such database");
}

TEST(experiment_rows_and_summary)
{
    hx_db *h = open_db("s.db");
    sqlite3 *db = hx_db_sqlite(h);
    int64_t run = begin_run(h, "s");
    hx_db_experiment e = make_exp(0, "lru", 2);
    store(h, run, &e, 100);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM sample"), 6);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM series"), 12);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM blob"), 3);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM counter"), 3);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM cache_stats WHERE prefetch_issued IS NULL"
                            " AND hits = 7"), 3);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM routing_metric WHERE ci_lo IS NULL"
                            " AND param = 16 AND value = 0.75"), 3);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM experiment_param"), 2);
    CHECK_EQ_INT(scalar(db, "SELECT value FROM experiment_param WHERE key = 'cache_m'"), 2);
    CHECK_EQ_INT(scalar(db, "SELECT reps_done FROM experiment"), 3);
    /* summary equals metrics/stats on the same values */
    double v[3] = {100, 101, 102};
    met_summary s;
    eng_err err = {0};
    REQUIRE(met_stats_summarize(v, 3, &s, &err) == ENG_OK);
    CHECK_NEAR(scalar_d(db, "SELECT mean FROM summary WHERE metric = 'tokens_per_s'"), s.mean, 1e-12);
    CHECK_NEAR(scalar_d(db, "SELECT ci_hi FROM summary WHERE metric = 'tokens_per_s'"), s.ci_hi, 1e-9);
    CHECK_NEAR(scalar_d(db, "SELECT p90 FROM summary WHERE metric = 'tokens_per_s'"), s.p90, 1e-12);
    /* views */
    CHECK_NEAR(scalar_d(db, "SELECT tokens_per_s FROM policy_cache WHERE policy = 'lru'"
                            " AND cache_size = 2"), 101, 1e-12);
    CHECK_NEAR(scalar_d(db, "SELECT hit_rate FROM experiment_wide"), 0.5, 0);
    CHECK_NEAR(scalar_d(db, "SELECT json_extract(means, '$.tokens_per_s') FROM experiment_wide"),
               101, 1e-12);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM experiment_summary"), 2);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM latest_run"), 1);
    free_exp(&e);
    hx_db_close(h);
}

TEST(store_is_one_transaction)
{
    hx_db *h = open_db("t.db");
    sqlite3 *db = hx_db_sqlite(h);
    int64_t run = begin_run(h, "s");
    hx_db_experiment e = make_exp(0, "lru", 2);
    store(h, run, &e, 1);
    /* A failure late in the transaction: the experiment row and the first
     * repetitions are in, then a duplicate (metric, rep) key fails. */
    hx_db_experiment e2 = make_exp(1, "lfu", 2);
    hx_db_result r[3];
    make_reps(r, 5);
    /* two samples with one name cannot come from hx_db_result_sample; forge it */
    free(r[2].samples[1].metric);
    r[2].samples[1].metric = strdup("tokens_per_s");
    eng_err err = {0};
    CHECK(hx_db_experiment_store(h, run, &e2, "ok", NULL, r, 3, 0, 0, &err) != ENG_OK);
    CHECK_CONTAINS(err.msg, "storing experiment");
    for (int i = 0; i < 3; i++)
        hx_db_result_clear(&r[i]);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM experiment"), 1);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM sample"), 6);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM series"), 12);
    /* and the handle is usable afterwards */
    hx_db_experiment e3 = make_exp(2, "fifo", 2);
    store(h, run, &e3, 1);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM experiment"), 2);
    free_exp(&e), free_exp(&e2), free_exp(&e3);
    hx_db_close(h);
}

TEST(two_processes_write_at_once)
{
    const char *path = tst_path("c.db");
    hx_db *h = open_db("c.db"); /* create first: both children then migrate nothing */
    hx_db_close(h);
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            hx_db *d;
            eng_err err = {0};
            if (hx_db_open(&d, path, HX_DB_CREATE, &err))
                _exit(3);
            int64_t run = begin_run(d, p ? "b" : "a");
            for (int i = 0; i < 25; i++) {
                hx_db_experiment e = make_exp(i, p ? "lfu" : "lru", i);
                store(d, run, &e, i);
                free_exp(&e);
            }
            hx_db_close(d);
            _exit(0);
        }
    }
    for (int p = 0; p < 2; p++) {
        int st;
        waitpid(pids[p], &st, 0);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %d failed (%d)", p, st);
    }
    h = open_db("c.db");
    sqlite3 *db = hx_db_sqlite(h);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM run"), 2);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM experiment"), 50);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM sample"), 300);
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM machine"), 1); /* same content, one row */
    hx_db_close(h);
}

TEST(merge_adds_new_runs_once)
{
    hx_db *a = open_db("a.db"), *b = open_db("b.db");
    int64_t ra = begin_run(a, "s"), rb = begin_run(b, "s");
    for (int i = 0; i < 3; i++) {
        hx_db_experiment e = make_exp(i, "lru", i);
        store(a, ra, &e, i);
        free_exp(&e);
        e = make_exp(i, "lfu", i);
        store(b, rb, &e, 10 + i);
        free_exp(&e);
    }
    hx_db_close(a), hx_db_close(b);
    hx_db *c = open_db("c.db");
    hx_db_merge_stats ms = {0};
    eng_err err = {0};
    REQUIRE_MSG(hx_db_merge(c, tst_path("a.db"), &ms, &err) == ENG_OK, "%s", err.msg);
    REQUIRE_MSG(hx_db_merge(c, tst_path("b.db"), &ms, &err) == ENG_OK, "%s", err.msg);
    CHECK_EQ_INT(ms.runs_added, 2);
    CHECK_EQ_INT(ms.experiments_added, 6);
    sqlite3 *db = hx_db_sqlite(c);
    static const char *const tables[] = {"experiment", "experiment_param", "sample", "series",
                                         "blob", "summary", "counter", "cache_stats",
                                         "routing_metric"};
    int64_t n1[9];
    for (int t = 0; t < 9; t++) {
        char sql[100];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[t]);
        n1[t] = scalar(db, sql);
        CHECK_MSG(n1[t] > 0, "%s is empty after merge", tables[t]);
    }
    CHECK_EQ_INT(n1[2], 36);
    /* samples kept their experiment: lfu means are 10 + seq + 1 */
    CHECK_NEAR(scalar_d(db, "SELECT tokens_per_s FROM policy_cache WHERE policy = 'lfu'"
                            " AND cache_size = 2"), 13, 1e-12);
    hx_db_merge_stats again = {0};
    REQUIRE(hx_db_merge(c, tst_path("a.db"), &again, &err) == ENG_OK);
    REQUIRE(hx_db_merge(c, tst_path("b.db"), &again, &err) == ENG_OK);
    CHECK_EQ_INT(again.runs_added, 0);
    CHECK_EQ_INT(again.runs_skipped, 2);
    for (int t = 0; t < 9; t++) {
        char sql[100];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[t]);
        CHECK_MSG(scalar(db, sql) == n1[t], "%s grew on the second merge", tables[t]);
    }
    CHECK_EQ_INT(scalar(db, "SELECT count(*) FROM machine"), 1);
    CHECK_EQ_INT(hx_db_merge(c, tst_path("nope.db"), &again, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "nope.db");
    hx_db_close(c);
}

TEST(json_output_becomes_samples_series_and_rows)
{
    const char *txt =
        "{\"trace\": \"x.moetrace\", \"tokens_per_s\": 12.5, \"stall\": {\"ns\": 40},"
        " \"curve\": [0.1, 0.2, 0.3], \"name\": \"ignored\", \"ok\": true,"
        " \"metrics\": [{\"metric\": \"srp\", \"layer\": 3, \"seg_len\": 16, \"value\": 0.7,"
        "               \"ci\": [0.6, 0.8]},"
        "              {\"metric\": \"sch\", \"cache_m\": 2, \"value\": 0.5, \"ci_lo\": 0.4}],"
        " \"layers\": [{\"layer\": 0, \"hits\": 9, \"misses\": 1, \"bytes_loaded\": 100}],"
        " \"total\": {\"hits\": 90, \"misses\": 10, \"stall_ns\": 7}}";
    json_error_t je;
    json_t *root = json_loads(txt, 0, &je);
    REQUIRE(root);
    hx_db_result r = {0};
    eng_err err = {0};
    REQUIRE_MSG(hx_suite_result_from_json(&r, root, NULL, &err) == ENG_OK, "%s", err.msg);
    CHECK_NEAR(hx_db_result_get(&r, "tokens_per_s"), 12.5, 0);
    CHECK_NEAR(hx_db_result_get(&r, "stall.ns"), 40, 0);
    CHECK_NEAR(hx_db_result_get(&r, "total.hits"), 90, 0);
    CHECK(isnan(hx_db_result_get(&r, "ok")));
    REQUIRE(r.nseries == 1);
    CHECK_EQ_STR(r.series[0].metric, "curve");
    REQUIRE(r.nrouting == 2);
    CHECK_EQ_STR(r.routing[0].metric, "srp");
    CHECK_EQ_INT(r.routing[0].layer, 3);
    CHECK_NEAR(r.routing[0].param, 16, 0);
    CHECK_NEAR(r.routing[0].ci_hi, 0.8, 0);
    CHECK_EQ_STR(r.routing[0].trace, "x.moetrace");
    CHECK_EQ_INT(r.routing[1].layer, -1);
    CHECK_NEAR(r.routing[1].param, 2, 0);
    CHECK(isnan(r.routing[1].ci_hi));
    REQUIRE(r.ncache == 2);
    CHECK_EQ_INT(r.cache[0].layer, 0);
    CHECK_EQ_INT(r.cache[0].accesses, 10);
    CHECK_EQ_INT(r.cache[0].bytes_loaded, 100);
    CHECK_EQ_INT(r.cache[1].layer, -1);
    CHECK_EQ_INT(r.cache[1].stall_ns, 7);
    CHECK_EQ_INT(r.cache[1].evictions, -1);
    hx_db_result_clear(&r);
    json_decref(root);
}

TEST(result_rejects_bad_names_and_values)
{
    hx_db_result r = {0};
    eng_err err = {0};
    CHECK_EQ_INT(hx_db_result_sample(&r, "", 1, &err), ENG_EINVAL);
    CHECK_EQ_INT(hx_db_result_sample(&r, "a\nb", 1, &err), ENG_EINVAL);
    CHECK_EQ_INT(hx_db_result_sample(&r, "x", INFINITY, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "'x'");
    CHECK_EQ_INT(hx_db_result_sample(&r, "x", 1, &err), ENG_OK);
    CHECK_EQ_INT(hx_db_result_sample(&r, "x", 2, &err), ENG_OK); /* replaced */
    CHECK_EQ_INT(r.nsamples, 1);
    CHECK_NEAR(hx_db_result_get(&r, "x"), 2, 0);
    double nan = NAN;
    CHECK_EQ_INT(hx_db_result_series(&r, "s", &nan, 1, &err), ENG_EINVAL);
    hx_db_cache_row c = {.layer = -2};
    CHECK_EQ_INT(hx_db_result_cache(&r, &c, &err), ENG_EINVAL);
    hx_db_routing_row rr = {.layer = 0};
    CHECK_EQ_INT(hx_db_result_routing(&r, &rr, &err), ENG_EINVAL);
    hx_db_result_clear(&r);
}

TEST(environment_is_described)
{
    json_t *m = hx_suite_env_machine(), *b = hx_suite_env_build();
    REQUIRE(m && b);
    CHECK(json_integer_value(json_object_get(m, "cores")) >= 1);
    CHECK(json_integer_value(json_object_get(m, "memory_bytes")) > 0);
    CHECK(json_is_boolean(json_object_get(m, "pmu_available")));
    CHECK_CONTAINS(json_string_value(json_object_get(b, "sqlite")), "3.");
    CHECK_CONTAINS(json_string_value(json_object_get(b, "lua")), "Lua 5.4");
    CHECK_CONTAINS(json_string_value(json_object_get(b, "openblas")), "OpenBLAS");
    json_decref(m), json_decref(b);
}
