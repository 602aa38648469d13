/* test_regress.c — `moebench regress` and `moebench compare` end to end:
 * databases made by `moebench run` (a tiny inline suite, and suites/ci.lua),
 * then edited with SQLite so that every value is known: timings fixed per
 * repetition, one deterministic value changed, a timing made 50 % worse.
 * The expected p-values are the exact Mann-Whitney ones worked by hand
 * (4 vs 4 fully separated: 2 / C(8,4) = 0.0286). */
#include "tests/test.h"
#include "tests/util/util.h"

#include <sqlite3.h>
#include <stdlib.h>

#define MB tst_moebench()

static const char tiny_suite[] =
    "suite{name='tiny'}\n"
    "for _, m in ipairs{1, 2} do\n"
    "  experiment{name='toy', params={m=m}, reps=4,\n"
    "             run=function() return {hits=10*m, hit_rate=0.25*m, tok_s=100} end}\n"
    "end\n";

/* The tiny suite run into NAME, its timings then fixed: wall_ms and cpu_ms
 * 10.0, 10.1, 10.2, 10.3 and tok_s 100..103 over the 4 repetitions. */
static const char *tiny_db(const char *name)
{
    const char *suite = tst_path("tiny.lua"), *db = tst_path(name);
    tst_write_file(suite, tiny_suite, strlen(tiny_suite));
    REQUIRE(tst_sh(NULL, NULL, "%s run %s --db %s -q", MB, suite, db) == 0);
    tu_sql(db, "update sample set value = 10 + rep * 0.1 where metric in ('wall_ms', 'cpu_ms');"
            "update sample set value = 100 + rep where metric = 'tok_s'");
    return db;
}

#define EXP(label) "(select id from experiment where label = '" label "')"

static int regress(char **out, const char *db, const char *base, const char *extra)
{
    char *err;
    int st = tst_sh(out, &err, "%s regress --db %s --baseline %s %s", MB, db, base, extra);
    if (st != 0 && st != 1)
        tst_fail(__FILE__, __LINE__, "exit %d: %s", st, err);
    return st;
}

TEST(same_values_pass)
{
    const char *a = tiny_db("a.db"), *b = tiny_db("b.db");
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, "--all"), 0);
    CHECK_CONTAINS(out, "no regression");
    CHECK_CONTAINS(out, "2 baseline experiments: 0 regressed, 0 changed, 0 improved, 2 ok;"
                        " 4 deterministic metrics checked exactly,"
                        " 6 timings (0 by the tolerance only");
    CHECK_CONTAINS(out, "\nok         toy m=1\n");
    CHECK_CONTAINS(out, "  ok         wall_ms: median 10.15 -> 10.15 (+0.0 %, lower is better;"
                        " Mann-Whitney p = 1, n 4/4)");
    CHECK_CONTAINS(out, "  ok         hits: 10, equal to the baseline");
    /* without --all the ok experiments are left out */
    CHECK_EQ_INT(regress(&out, b, a, ""), 0);
    CHECK(!strstr(out, "toy m=1"));
    CHECK_CONTAINS(out, "(--all lists every check)");
}

/* A deterministic metric that moved: by its direction (hits: higher is
 * better) an improvement passes and a loss fails; --fail-on-change fails
 * on both. */
TEST(deterministic_change_by_direction)
{
    const char *a = tiny_db("a.db"), *b = tiny_db("b.db");
    tu_sql(b, "update sample set value = 19 where metric = 'hits' and rep = 2"
           " and experiment_id = " EXP("toy m=2"));
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, ""), 1);
    CHECK_CONTAINS(out, "\nREGRESSED  toy m=2\n  REGRESSED  hits: 20 -> 19 (-5 %; repetition 2;"
                        " deterministic, higher is better)\n");
    CHECK_CONTAINS(out, "1 regression\n");
    CHECK(!strstr(out, "toy m=1"));
    tu_sql(b, "update sample set value = 21 where metric = 'hits' and value = 19");
    CHECK_EQ_INT(regress(&out, b, a, ""), 0);
    CHECK_CONTAINS(out, "IMPROVED   hits: 20 -> 21 (+5 %;");
    CHECK_CONTAINS(out, "no regression\n");
    CHECK_EQ_INT(regress(&out, b, a, "--fail-on-change"), 1);
    CHECK_CONTAINS(out, "1 improved: fails under --fail-on-change");
    /* 1e-9 relative is equal; 1e-6 is not */
    tu_sql(b, "update sample set value = 20 * (1 + 1e-12) where metric = 'hits' and value = 21");
    CHECK_EQ_INT(regress(&out, b, a, "--fail-on-change"), 0);
    tu_sql(b, "update sample set value = 0.5 * (1 - 1e-6) where metric = 'hit_rate' and rep = 0"
           " and experiment_id = " EXP("toy m=2"));
    CHECK_EQ_INT(regress(&out, b, a, "--json"), 1);
    CHECK_CONTAINS(out, "\"check\": \"exact\"");
    CHECK_CONTAINS(out, "\"metric\": \"hit_rate\"");
    CHECK_CONTAINS(out, "\"verdict\": \"regressed\"");
    CHECK_CONTAINS(out, "\"failed\": true");
}

/* A suite declares directions: tok_s equal (exact), hits lower is better;
 * a metric without a rule keeps the default (hit_rate higher). */
TEST(declared_directions)
{
    static const char src[] =
        "suite{name='tiny', metrics={hits='lower', ['tok*']='equal'}}\n"
        "experiment{name='toy', params={m=1}, reps=2, metrics={other='higher'},\n"
        "  run=function() return {hits=10, hit_rate=0.25, tok_s=100, other=1} end}\n";
    const char *suite = tu_write_text("d.lua", src), *a = tst_path("a.db"), *b = tst_path("b.db");
    REQUIRE(tst_sh(NULL, NULL, "%s run %s --db %s -q && %s run %s --db %s -q", MB, suite, a, MB,
                   suite, b) == 0);
    CHECK_EQ_STR(tu_q1(b, "select group_concat(pattern || '=' || direction, ' ') from (select *"
                          " from metric_direction order by pattern)"),
                 "hits=lower other=higher tok*=equal");
    tu_sql(b, "update sample set value = 9 where metric = 'hits';"
              "update sample set value = 101 where metric = 'tok_s';"
              "update sample set value = 2 where metric = 'other'");
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, "--exact-only"), 1);
    CHECK_CONTAINS(out, "\nCHANGED    toy m=1\n");
    CHECK_CONTAINS(out, "IMPROVED   hits: 10 -> 9 (-10 %; repetition 0; deterministic, lower is"
                        " better)");
    CHECK_CONTAINS(out, "CHANGED    tok_s: 100 -> 101 (+1 %; repetition 0; deterministic, must"
                        " be equal)");
    CHECK_CONTAINS(out, "IMPROVED   other: 1 -> 2");
    CHECK_CONTAINS(out, "no regression, but 1 changed\n");
}

/* A command's JSON declares its own directions; the suite's win. */
TEST(directions_from_command_output)
{
    static const char src[] =
        "suite{name='cmd'}\n"
        "experiment{name='c', kind='command', program='sh', metrics={y='higher'},\n"
        "  argv={'-c', 'echo \\'{\"x\": 1, \"y\": 1, \"directions\": {\"x\": \"lower\",'\n"
        "               .. ' \"y\": \"lower\"}}\\''}}\n";
    const char *suite = tu_write_text("c.lua", src), *a = tst_path("a.db"), *b = tst_path("b.db");
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "%s run %s --db %s -q && %s run %s --db %s -q", MB, suite, a,
                       MB, suite, b) == 0, "%s", err);
    CHECK_EQ_STR(tu_q1(b, "select group_concat(pattern || '=' || direction, ' ') from (select *"
                          " from metric_direction order by pattern)"),
                 "x=lower y=higher");
    tu_sql(b, "update sample set value = 2 where metric in ('x', 'y')");
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, "--exact-only"), 1);
    CHECK_CONTAINS(out, "REGRESSED  x: 1 -> 2");
    CHECK_CONTAINS(out, "IMPROVED   y: 1 -> 2");
}

TEST(timing_worse_fails_with_rank_test)
{
    const char *a = tiny_db("a.db"), *b = tiny_db("b.db");
    tu_sql(b, "update sample set value = value * 1.5 where metric = 'wall_ms'"
           " and experiment_id = " EXP("toy m=1"));
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, ""), 1);
    CHECK_CONTAINS(out, "REGRESSED  wall_ms: median 10.15 -> 15.225 (+50.0 %,"
                        " lower is better; Mann-Whitney p = 0.0286, n 4/4)");
    CHECK_CONTAINS(out, "1 regression\n");
    CHECK_EQ_INT(regress(&out, b, a, "--tolerance 60"), 0);
    CHECK_EQ_INT(regress(&out, b, a, "--exact-only"), 0);
    CHECK_CONTAINS(out, "checks: experiments and deterministic metrics (exactly); timings not"
                        " checked (--exact-only)");
    CHECK(!strstr(out, "tolerance"));
    /* tok_s is a speed: half is a regression, 1.5 times an improvement */
    tu_sql(b, "update sample set value = value * 1.5 where metric = 'tok_s';"
           "update sample set value = 10 + rep * 0.1 where metric = 'wall_ms'");
    CHECK_EQ_INT(regress(&out, b, a, ""), 0);
    CHECK_CONTAINS(out, "IMPROVED   tok_s: median 101.5 -> 152.25 (+50.0 %, higher is better;");
    tu_sql(b, "update sample set value = value / 3 where metric = 'tok_s'"
           " and experiment_id = " EXP("toy m=2"));
    CHECK_EQ_INT(regress(&out, b, a, ""), 1);
    CHECK_CONTAINS(out, "REGRESSED  tok_s: median 101.5 -> 50.75 (-50.0 %,"
                        " higher is better; Mann-Whitney p = 0.0286");
}

/* 29 % slower medians, but overlapping repetitions: p = 24/70, no regression. */
TEST(timing_worse_but_not_significant)
{
    const char *a = tiny_db("a.db"), *b = tiny_db("b.db");
    tu_sql(a, "update sample set value = case rep when 0 then 10 when 1 then 11 when 2 then 30"
           " else 31 end where metric = 'wall_ms'");
    tu_sql(b, "update sample set value = case rep when 0 then 12 when 1 then 13 when 2 then 40"
           " else 41 end where metric = 'wall_ms'");
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, "-v"), 0);
    CHECK_CONTAINS(out, "ok         wall_ms: median 20.5 -> 26.5 (+29.3 %,"
                        " lower is better; Mann-Whitney p = 0.343, n 4/4)");
}

/* 2 repetitions a side: the rank test cannot reach 0.05 (its smallest p is
 * 1/3), so the tolerance on the medians decides, and the output says so. */
TEST(too_few_reps_tolerance_only)
{
    const char *a = tiny_db("a.db"), *b = tiny_db("b.db");
    tu_sql(a, "delete from sample where rep >= 2");
    tu_sql(b, "delete from sample where rep >= 2;"
           "update sample set value = value * 1.2 where metric = 'cpu_ms'"
           " and experiment_id = " EXP("toy m=2"));
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, ""), 1);
    CHECK_CONTAINS(out, "REGRESSED  cpu_ms: median 10.05 -> 12.06 (+20.0 %,"
                        " lower is better; n 2/2: too few repetitions for the rank test to"
                        " reach p < 0.05, tolerance only)");
    CHECK_CONTAINS(out, "6 timings (6 by the tolerance only: too few repetitions");
    CHECK_EQ_INT(regress(&out, b, a, "--tolerance 25"), 0);
}

TEST(missing_experiment_fails_new_is_fine)
{
    const char *a = tiny_db("a.db"), *b = tiny_db("b.db");
    tu_sql(b, "update experiment set label = 'toy m=3' where label = 'toy m=2'");
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, ""), 1);
    CHECK_CONTAINS(out, "REGRESSED  toy m=2\n  REGRESSED  in the baseline, not in the run");
    CHECK_CONTAINS(out, "new        toy m=3 (not in the baseline; fine)");
    CHECK_CONTAINS(out, "1 regression\n");
    tu_sql(b, "update experiment set label = 'toy m=2' where label = 'toy m=3';"
           "update experiment set status = 'failed', error = 'boom' where label = 'toy m=1'");
    CHECK_EQ_INT(regress(&out, b, a, ""), 1);
    CHECK_CONTAINS(out, "REGRESSED  failed in the run, ok in the baseline: boom");
    tu_sql(b, "update experiment set status = 'ok' where label = 'toy m=1';"
           "delete from sample where metric = 'hits' and experiment_id = " EXP("toy m=1"));
    CHECK_EQ_INT(regress(&out, b, a, ""), 1);
    CHECK_CONTAINS(out, "REGRESSED  hits: in the baseline, not in the run");
}

/* A pull-request comment: a verdict heading, counts, a table of what
 * moved; text from the database is escaped. */
TEST(markdown_format)
{
    const char *a = tiny_db("a.db"), *b = tiny_db("b.db");
    tu_sql(b, "update sample set value = 19 where metric = 'hits' and experiment_id = "
           EXP("toy m=2") "; update experiment set label = 'toy|m=2' where label = 'toy m=2';"
           "update experiment set label = 'toy m=2' where label = 'toy|m=2'");
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, "--format markdown --exact-only"), 1);
    CHECK_CONTAINS(out, "### moebench regress: regression\n");
    CHECK_CONTAINS(out, "| regressed | 1 |\n");
    CHECK_CONTAINS(out, "| REGRESSED | toy m=2 | hits | 20 | 19 | -5 % |\n");
    CHECK_CONTAINS(out, "timings not checked (--exact-only)");
    tu_sql(a, "update experiment set label = 'x|<y>' where label = 'toy m=1'");
    tu_sql(b, "update experiment set label = 'x|<y>' where label = 'toy m=1';"
              "update sample set value = 5 where metric = 'hits' and experiment_id = "
              "(select id from experiment where label = 'x|<y>')");
    CHECK_EQ_INT(regress(&out, b, a, "--format md --exact-only"), 1);
    CHECK_CONTAINS(out, "| REGRESSED | x\\|\\<y\\> | hits | 10 | 5 | -50 % |\n");
}

TEST(bad_input_exits_2)
{
    const char *a = tiny_db("a.db");
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s regress --db %s --baseline %s", MB, a,
                        tst_path("none.db")), 2);
    CHECK_CONTAINS(err, "none.db");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s regress --db %s --baseline %s --run 42", MB, a, a), 2);
    CHECK_CONTAINS(err, "a.db: no run '42'");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s regress --db %s --baseline %s --baseline-run nosuch",
                        MB, a, a), 2);
    CHECK_CONTAINS(err, "no run 'nosuch'");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s regress --db %s", MB, a), 2);
    CHECK_CONTAINS(err, "--baseline FILE is required");
    /* a run against itself proves nothing: refused, also through a copy */
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s regress --db %s --baseline %s", MB, a, a), 2);
    CHECK_CONTAINS(err, "are the same run");
    REQUIRE(tst_sh(NULL, NULL, "cp %s %s", a, tst_path("copy.db")) == 0);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s regress --db %s --baseline %s", MB, tst_path("copy.db"),
                        a), 2);
    CHECK_CONTAINS(err, "are the same run");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s regress --db %s --baseline %s --tolerance x", MB, a, a),
                 2);
    const char *o = tst_path("other.lua"), *odb = tst_path("o.db");
    tst_write_file(o, "suite{name='tiny'}\nexperiment{name='x', run=function() end}\n", 59);
    REQUIRE(tst_sh(NULL, NULL, "%s run %s --db %s -q", MB, o, odb) == 0);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s regress --db %s --baseline %s", MB, odb, a), 2);
    CHECK_CONTAINS(err, "no experiment in common");
}

/* routing_metric rows are compared by (trace file name, layer, param,
 * metric): the trace's directory may differ between the two runs. */
TEST(routing_rows_exact)
{
    const char *a = tiny_db("a.db"), *b = tiny_db("b.db");
    tu_sql(a, "insert into routing_metric (experiment_id, rep, trace, layer, metric, param, value)"
           " values (" EXP("toy m=1") ", 0, '/tmp/x/t.moetrace', -1, 'srp', 4, 0.625)");
    tu_sql(b, "insert into routing_metric (experiment_id, rep, trace, layer, metric, param, value)"
           " values (" EXP("toy m=1") ", 0, '/elsewhere/t.moetrace', -1, 'srp', 4, 0.625)");
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, ""), 0);
    CHECK_CONTAINS(out, "5 deterministic metrics checked exactly");
    tu_sql(b, "update routing_metric set value = 0.5");
    CHECK_EQ_INT(regress(&out, b, a, ""), 1);
    CHECK_CONTAINS(out, "CHANGED    routing[t.moetrace layer -1 4].srp: 0.625 -> 0.5 (-20 %;"
                        " repetition 0; deterministic, must be equal)");
}

/* The CI suite twice: its deterministic metrics (hit rates, counts,
 * bytes, cache_stats rows) agree exactly; one cache_stats value changed
 * is a regression that names the row. */
TEST(ci_suite_twice)
{
    const char *a = tst_path("ci-a.db"), *b = tst_path("ci-b.db");
    REQUIRE(tst_sh(NULL, NULL, "%s run suites/ci.lua --db %s -q", MB, a) == 0);
    REQUIRE(tst_sh(NULL, NULL, "%s run suites/ci.lua --db %s -q", MB, b) == 0);
    char *out;
    CHECK_EQ_INT(regress(&out, b, a, "--exact-only"), 0);
    CHECK_CONTAINS(out, "no regression");
    tu_sql(b, "update cache_stats set hits = hits - 1 where layer = 0 and experiment_id ="
           EXP("engine cache_size=8 policy=lfu"));
    CHECK_EQ_INT(regress(&out, b, a, "--exact-only"), 1);
    CHECK_CONTAINS(out, "REGRESSED  engine cache_size=8 policy=lfu\n");
    CHECK_CONTAINS(out, "  REGRESSED  cache_stats[0].hits: ");
    CHECK_CONTAINS(out, "1 regression\n");
}

/* compare on known samples: A = {1, 2, 3}, B = {4, 5, 6} -> ratio 2.5,
 * exact p = 2 / C(6,3) = 0.1; the bootstrap interval holds 2.5. */
TEST(compare_known_samples)
{
    const char *a = tiny_db("a.db"), *b = tiny_db("b.db");
    tu_sql(a, "delete from sample where rep = 3; update sample set value = rep + 1"
           " where metric = 'wall_ms'");
    tu_sql(b, "delete from sample where rep = 3; update sample set value = rep + 4"
           " where metric = 'wall_ms';"
           "update experiment set label = 'toy m=9' where label = 'toy m=2'");
    char *out, *err;
    REQUIRE(tst_sh(&out, &err, "%s compare --db %s --baseline-db %s latest:tiny 1 --csv"
                   " --metric wall_ms | grep '^toy m=1,'", MB, b, a) == 0);
    int na, nb;
    double ma, mb, r, lo, hi, u, p;
    REQUIRE(sscanf(out, "toy m=1,wall_ms,%d,%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &na, &nb, &ma,
                   &mb, &r, &lo, &hi, &u, &p) == 9);
    CHECK_EQ_INT(na, 3);
    CHECK_EQ_INT(nb, 3);
    CHECK_NEAR(ma, 2, 1e-12);
    CHECK_NEAR(mb, 5, 1e-12);
    CHECK_NEAR(r, 2.5, 1e-12);
    CHECK(lo < 2.5 && hi > 2.5 && lo >= 4.0 / 3 && hi <= 6.0);
    CHECK_NEAR(u, 0, 0); /* U of A: no A value beats a B value */
    CHECK_NEAR(p, 0.1, 1e-12);
    REQUIRE(tst_sh(&out, &err, "%s compare --db %s --baseline-db %s 1 latest", MB, b, a) == 0);
    CHECK_CONTAINS(out, "toy m=1     wall_ms");
    CHECK_CONTAINS(out, "only in A: toy m=2");
    CHECK_CONTAINS(out, "only in B: toy m=9");
    REQUIRE(tst_sh(&out, &err, "%s compare --db %s --baseline-db %s 1 latest --json", MB, b,
                   a) == 0);
    CHECK_CONTAINS(out, "\"only_in_a\": [\n  \"toy m=2\"");
    CHECK_CONTAINS(out, "\"p\": 0.1");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s compare --db %s 1 7", MB, a), 2);
    CHECK_CONTAINS(err, "no run '7'");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s compare --db %s 1 1 --metric nosuch", MB, a), 2);
    CHECK_CONTAINS(err, "share no experiment and metric among those given with --metric");
}

/* A committed baseline (export --baseline): sorted, deterministic metrics
 * only, read back by regress; a changed value in it is a failure that
 * names the metric; a file that is not a baseline is bad input. */
TEST(baseline_file_round_trip)
{
    const char *a = tiny_db("a.db"), *b = tiny_db("b.db"), *f = tst_path("base.json");
    REQUIRE(tst_sh(NULL, NULL, "%s export --db %s latest --baseline > %s", MB, a, f) == 0);
    char *text = tst_read_file(f, NULL);
    REQUIRE(text);
    CHECK_CONTAINS(text, "\"moebench_baseline\": 1");
    CHECK_CONTAINS(text, "\"toy m=2\": {\n   \"metrics\": {\n    \"hit_rate\": 0.5,\n"
                         "    \"hits\": 20\n   },\n   \"status\": \"ok\"");
    CHECK(!strstr(text, "wall_ms"));
    CHECK(!strstr(text, "tok_s")); /* a speed: a timing, not exact */
    char *out, *err;
    CHECK_EQ_INT(regress(&out, b, f, "--exact-only --fail-on-change"), 0);
    CHECK_CONTAINS(out, "4 deterministic metrics checked exactly");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s regress --db %s --baseline %s", MB, a, f), 2);
    CHECK_CONTAINS(err, "are the same run");
    REQUIRE(tst_sh(NULL, NULL, "sed -i 's/\"hits\": 20$/\"hits\": 21/' %s", f) == 0);
    CHECK_EQ_INT(regress(&out, b, f, "--exact-only --fail-on-change"), 1);
    CHECK_CONTAINS(out, "REGRESSED  hits: 21 -> 20");
    tst_write_file(f, "{\"x\": 1}", 8);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s regress --db %s --baseline %s", MB, b, f), 2);
    CHECK_CONTAINS(err, "not a moebench baseline");
}
