/* test_trend.c — `moebench trend` on a synthetic history: 24 runs of a
 * tiny suite whose metric v steps from about 10.5 to 13.5 at the 15th run
 * (the noise comes from the run's seed), so the one change point of v must
 * name run 15 as the first run after it; then the same history reordered by
 * commit (git first-parent order of a scratch repository, start times
 * scrambled), where only commit order puts the step in one place. */
#include "tests/test.h"
#include "tests/util/util.h"

#include <jansson.h>
#include <stdlib.h>

static const char hist_suite[] =
    "local opts = suite{name='hist', options={level={default=10, help='base value'}}}\n"
    "experiment{name='toy', params={m=1}, reps=3, metrics={v='lower'},\n"
    "  run=function(ctx) local s = opts.seed * 7919 + ctx.rep\n"
    "    return {v = tonumber(opts.level) + ((s * 2654435761) % 1000) / 1000, hits = 5} end}\n";

static const char *history(void)
{
    const char *suite = tu_write_text("h.lua", hist_suite), *db = tst_path("h.db");
    for (int i = 1; i <= 24; i++)
        REQUIRE(tst_sh(NULL, NULL, "%s run %s -q --db %s -D level=%d --seed %d", tu_mb(), suite,
                       db, i >= 15 ? 13 : 10, i) == 0);
    return db;
}

TEST(planted_step_is_found)
{
    const char *db = history();
    json_t *doc = tu_sh_json("%s trend --db %s --metric v --json", tu_mb(), db);
    CHECK_EQ_INT(json_array_size(json_object_get(doc, "runs")), 24);
    json_t *s = json_array_get(json_object_get(doc, "series"), 0);
    REQUIRE(s);
    CHECK_EQ_STR(json_string_value(json_object_get(s, "metric")), "v");
    CHECK_EQ_STR(json_string_value(json_object_get(s, "direction")), "lower");
    json_t *cps = json_object_get(s, "change_points");
    REQUIRE_MSG(json_array_size(cps) == 1, "%zu change points", json_array_size(cps));
    json_t *c = json_array_get(cps, 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(c, "index")), 14);
    CHECK_EQ_INT(json_integer_value(json_object_get(c, "run_id")), 15);
    CHECK(json_real_value(json_object_get(c, "p")) < 0.05);
    CHECK_EQ_STR(json_string_value(json_object_get(c, "verdict")), "regressed");
    double before = json_real_value(json_object_get(c, "before"));
    double after = json_real_value(json_object_get(c, "after"));
    CHECK(before > 10 && before < 11 && after > 13 && after < 14);
    json_decref(doc);
    /* hits never moves: no change point, listed only with --all */
    char *out;
    REQUIRE(tst_sh(&out, NULL, "%s trend --db %s --metric 'v,hit*' --svg %s", tu_mb(), db,
                   tst_path("svg")) == 0);
    CHECK_CONTAINS(out, "toy m=1  v: 24 runs, 1 change point\n  REGRESSED  at run 15 (commit ");
    CHECK(!strstr(out, "hits:"));
    CHECK_CONTAINS(out, "2 series, 1 with change points");
    char *svg = tst_read_file(tst_path("svg/000-toy_m=1-v.svg"), NULL);
    REQUIRE(svg);
    CHECK_CONTAINS(svg, "class=\"mark\"");
    REQUIRE(tst_sh(&out, NULL, "%s trend --db %s --metric 'hits' --all", tu_mb(), db) == 0);
    CHECK_CONTAINS(out, "toy m=1  hits: 24 runs, 0 change points");
}

/* Commit order from git: four runs per commit, started in an order that
 * mixes the commits; the step is at commit 4 of 6 in first-parent order.
 * Runs 1-5 are commit 1, 6-10 commit 2, 11-14 commit 3, 15-18 commit 4,
 * 19-22 commit 5, 23-24 commit 6. */
TEST(commit_order_from_git)
{
    const char *db = history(), *repo = tst_path("repo");
    char *hashes;
    REQUIRE(tst_sh(&hashes, NULL, "mkdir -p %s && cd %s && git init -q && for i in 1 2 3 4 5 6;"
                   " do git -c user.name=t -c user.email=t@t commit -q --allow-empty -m c$i;"
                   " done && git rev-list --reverse HEAD | cut -c1-12 | tr '\\n' ' '", repo,
                   repo) == 0);
    char h[6][16];
    REQUIRE(sscanf(hashes, "%15s %15s %15s %15s %15s %15s", h[0], h[1], h[2], h[3], h[4], h[5]) ==
            6);
    /* runs 1..12 (level 10) -> commits 1..3, runs 15..24 -> commits 4..6 (+13, 14 -> 3);
     * start times reversed within the database so time order is wrong */
    char sql[2048];
    snprintf(sql, sizeof sql,
             "insert into build (uuid, commit_hash) select 'b' || i, c from (select 1 as i,"
             " '%s' as c union all select 2, '%s' union all select 3, '%s' union all"
             " select 4, '%s' union all select 5, '%s' union all select 6, '%s');"
             "update run set build_id = (select id from build where uuid = 'b' ||"
             " min(6, case when run.id <= 14 then (run.id + 4) / 5"
             " else 4 + (run.id - 15) / 4 end)),"
             " started_at = printf('2026-01-01T00:00:%%02dZ', 60 - id);"
             "insert into run (uuid, suite, started_at, status, build_id) values ('x', 'hist',"
             " '2026-01-01T00:00:00Z', 'ok', (select id from build where uuid = 'b1'));"
             "update build set commit_hash = 'ffffffffffff' where uuid = 'b1' and 0",
             h[0], h[1], h[2], h[3], h[4], h[5]);
    tu_sql(db, sql);
    /* a run of a commit that is not in the history is left out and counted */
    tu_sql(db, "insert into build (uuid, commit_hash) values ('other', 'abcdefabcdef');"
               "update run set build_id = (select id from build where uuid = 'other')"
               " where uuid = 'x'");
    json_t *doc = tu_sh_json("cd %s && %s trend --db %s --metric v --order git --json", repo,
                             tu_mb(), db);
    CHECK_EQ_INT(json_integer_value(json_object_get(doc, "skipped_runs")), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(doc, "order")), "commit");
    json_t *cps = json_object_get(json_array_get(json_object_get(doc, "series"), 0),
                                  "change_points");
    REQUIRE_MSG(json_array_size(cps) == 1, "%zu change points", json_array_size(cps));
    json_t *c = json_array_get(cps, 0);
    /* commit 4's runs in start order: 18, 17, 16, 15 */
    CHECK_EQ_INT(json_integer_value(json_object_get(c, "run_id")), 18);
    CHECK(!strncmp(json_string_value(json_object_get(c, "commit")), h[3], 12));
    CHECK_EQ_STR(json_string_value(json_object_get(c, "verdict")), "regressed");
    json_decref(doc);
    /* in start-time order (reversed) the step is an improvement of the same size */
    doc = tu_sh_json("%s trend --db %s --metric v --json", tu_mb(), db);
    c = json_array_get(json_object_get(json_array_get(json_object_get(doc, "series"), 0),
                                       "change_points"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(c, "verdict")), "improved");
    json_decref(doc);
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "cd /tmp && %s trend --db %s --order git:nosuchref", tu_mb(),
                        db), 2);
    CHECK_CONTAINS(err, "git rev-list --first-parent nosuchref");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s trend --db %s --suite nosuch", tu_mb(), db), 2);
    CHECK_CONTAINS(err, "no runs of suite 'nosuch'");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s trend --db %s --order sideways", tu_mb(), db), 2);
}
