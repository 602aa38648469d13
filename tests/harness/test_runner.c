/* test_runner.c — the runner's contract with kinds (harness/suite/suite.h): a
 * kind's per-run context is initialised once, handed to every repetition
 * and released after the run; warm-ups are run but not stored; a failing
 * init fails the experiments that need it. Uses a test kind plugged into
 * a loaded suite, the way the engine kind will plug in. */
#include "tests/test.h"

#include "harness/suite/suite.h"

#include <sqlite3.h>
#include <stdlib.h>

/* Test-only bookkeeping (one test per process: the runner forks). */
static struct {
    int inits, finis, runs, warmups, fail_init;
    void *seen;
    int same;
} probe;

static int probe_init(void **kctx, eng_err *err)
{
    probe.inits++;
    if (probe.fail_init)
        return eng_err_set(err, ENG_EIO, "model.gguf: cannot open");
    *kctx = malloc(16);
    return ENG_OK;
}

static void probe_fini(void *kctx)
{
    probe.finis++;
    free(kctx);
}

static int probe_run(const hx_suite_exec *x, hx_db_result *out, eng_err *err)
{
    probe.runs++;
    probe.warmups += x->is_warmup;
    if (!probe.seen)
        probe.seen = x->kctx;
    probe.same &= x->kctx == probe.seen && x->kctx != NULL;
    hx_db_cache_row c = {.layer = -1, .accesses = 4, .hits = 3, .misses = 1, .evictions = -1,
                      .prefetch_issued = -1, .prefetch_useful = -1, .bytes_loaded = 64,
                      .prefetch_wasted_bytes = -1, .stall_ns = -1};
    int rc = hx_db_result_cache(out, &c, err);
    return rc ? rc : hx_db_result_sample(out, "tokens_per_s", 10.0 + x->rep, err);
}

static const hx_suite_kind probe_kind = {"probe", "test kind", NULL, NULL, probe_run, probe_init,
                                   probe_fini};

static hx_suite *load_three(void)
{
    const char *src = "suite{name='k'}\n"
                      "for i = 1, 3 do experiment{name='e' .. i, params={policy='lru', cache_m=i},"
                      " reps=2, warmup=1, run=function() end} end\n";
    tst_write_file(tst_path("k.lua"), src, strlen(src));
    static hx_suite_config cfg = {.seed = 1, .self_exe = "build/moebench"};
    hx_suite *s;
    eng_err err = {0};
    REQUIRE_MSG(hx_suite_load(&s, tst_path("k.lua"), &cfg, &err) == ENG_OK, "%s", err.msg);
    for (size_t i = 0; i < s->nexps; i++)
        s->exps[i].kind = &probe_kind;
    return s;
}

static int64_t scalar(const char *db, const char *sql)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_open(db, &h) == SQLITE_OK &&
        sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return v;
}

static int run(hx_suite *s, const char *db, hx_suite_run_outcome *out, eng_err *err)
{
    hx_suite_run_opts o = {.db_path = db, .seed = 1, .reps = -1, .warmup = -1, .quiet = 1,
                     .self_exe = "build/moebench"};
    return hx_suite_runner_run_suite(s, tst_path("k.lua"), &o, out, err);
}

TEST(kind_context_is_shared_and_released)
{
    hx_suite *s = load_three();
    probe.same = 1;
    const char *db = tst_path("k.db");
    hx_suite_run_outcome out;
    eng_err err = {0};
    REQUIRE_MSG(run(s, db, &out, &err) == ENG_OK, "%s", err.msg);
    CHECK_EQ_INT(out.ok, 3);
    CHECK_EQ_INT(probe.inits, 1);
    CHECK_EQ_INT(probe.finis, 1);
    CHECK_EQ_INT(probe.runs, 9);
    CHECK_EQ_INT(probe.warmups, 3);
    CHECK(probe.same);
    CHECK_EQ_INT(scalar(db, "select count(*) from sample where metric = 'tokens_per_s'"), 6);
    CHECK_EQ_INT(scalar(db, "select count(*) from cache_stats where hits = 3"), 6);
    CHECK_EQ_INT(scalar(db, "select count(*) from policy_cache where tokens_per_s = 10.5"), 3);
    CHECK_EQ_INT(scalar(db, "select count(*) from experiment where kind = 'probe'"), 3);
    hx_suite_free(s);
}

TEST(failed_init_fails_the_experiments_and_is_retried)
{
    hx_suite *s = load_three();
    probe.fail_init = 1;
    const char *db = tst_path("f.db");
    hx_suite_run_outcome out;
    eng_err err = {0};
    REQUIRE_MSG(run(s, db, &out, &err) == ENG_OK, "%s", err.msg);
    CHECK_EQ_INT(out.failed, 3);
    CHECK_EQ_INT(probe.inits, 3);
    CHECK_EQ_INT(probe.runs, 0);
    CHECK_EQ_INT(probe.finis, 0);
    CHECK_EQ_INT(scalar(db, "select count(*) from experiment where error like"
                            " 'initialising kind ''probe'': model.gguf: cannot open%'"), 3);
    hx_suite_free(s);
}

TEST(shards_partition_the_experiments)
{
    for (int n = 1; n <= 5; n++)
        for (int k = 0; k < 23; k++) {
            int owners = 0;
            for (int i = 1; i <= n; i++)
                owners += hx_suite_runner_in_shard(k, i, n);
            CHECK_MSG(owners == 1, "experiment %d in %d of %d shards", k, owners, n);
        }
    CHECK(hx_suite_runner_in_shard(7, 1, 0)); /* no sharding: everything */
}
