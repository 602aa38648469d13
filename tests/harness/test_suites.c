/* test_suites.c — the shipped suites (suites/NAME.lua) with --quick --dry-run
 * (each lists its experiments and makes no model), and the command kind on
 * `moebench generate --json`: samples, the decode_ms series, cache_stats
 * rows that equal the run's own JSON, and counter rows per region. Suites
 * run in the test's temp directory (they make models/ there). */
#include "tests/test.h"
#include "tests/util/model_util.h"
#include "tests/util/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST(every_suite_dry_runs_quick)
{
    static const struct { const char *suite; int n; } s[] = {
        {"quickstart", 13}, {"policies", 18}, {"prefetch", 6},
        {"consistency", 11}, {"counters", 2},  {"ci", 18}, {"techniques", 52},
    };
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
        char *out, *err, want[64];
        int rc = tst_sh(&out, &err, "cd %s && %s run %s/suites/%s.lua --quick --dry-run",
                        tst_tmpdir(), tu_mb(), tu_root(), s[i].suite);
        CHECK_MSG(rc == 0, "%s: exit %d: %s", s[i].suite, rc, err);
        snprintf(want, sizeof want, "%d of %d experiments selected", s[i].n, s[i].n);
        CHECK_MSG(strstr(out, want), "%s: no '%s' in: %.300s", s[i].suite, want, out);
        CHECK_MSG(strstr(out, "kind=command"), "%s: no command experiment", s[i].suite);
    }
    CHECK_MSG(access(tst_path("models"), F_OK) != 0, "a dry run made models/");
}

static const char suite_src[] =
    "local models = require 'models'\n"
    "local opts = suite { name = 'gen' }\n"
    "local m = models.ensure { preset = 'tiny-olmoe', locality = 0.5 }\n"
    "experiment { name = 'g', reps = 2, argv = { 'generate', '-m', m, '--tokens', '1,2,3',\n"
    "  '-n', '8', '--ignore-eos', '--threads', '1', '--cache-experts', '12',\n"
    "  '--link', 'pcie5x16', '--events', '' } }\n";

TEST(command_kind_reads_generate_json)
{
    const char *db = tst_path("g.db"), *suite = tst_path("gen.lua");
    tst_write_file(suite, suite_src, strlen(suite_src));
    char *out, *err;
    int rc = tst_sh(&out, &err, "cd %s && MOEBENCH_LUA_PATH=%s/scripts/lua %s run %s --db %s -q",
                    tst_tmpdir(), tu_root(), tu_mb(), suite, db);
    REQUIRE_MSG(rc == 0, "exit %d: %s", rc, err);
    /* the same run's JSON, for the exact figures */
    rc = tst_sh(&out, &err, "cd %s && %s generate -m models/tiny-olmoe-loc0.5.gguf --tokens 1,2,3"
                " -n 8 --ignore-eos --threads 1 --cache-experts 12 --link pcie5x16 --json |"
                " sed 's/.*\"cache\":{\"accesses\":\\([0-9]*\\),\"hits\":\\([0-9]*\\).*/\\1 \\2/'",
                tst_tmpdir(), tu_mb());
    REQUIRE(rc == 0);
    int acc = 0, hits = 0;
    REQUIRE(sscanf(out, "%d %d", &acc, &hits) == 2);
    char want[64];
    snprintf(want, sizeof want, "%d", acc);
    CHECK_EQ_STR(tu_q1(db, "select accesses from cache_stats where layer = -1 and rep = 0"), want);
    snprintf(want, sizeof want, "%d", hits);
    CHECK_EQ_STR(tu_q1(db, "select hits from cache_stats where layer = -1 and rep = 1"), want);
    CHECK_EQ_STR(tu_q1(db, "select count(*) from cache_stats where layer >= 0"), "8");
    CHECK_EQ_STR(tu_q1(db, "select count(distinct metric) from sample where metric in"
                        " ('tokens_per_s', 'decode_tok_s', 'hit_rate', 'stall_share',"
                        " 'regions.tokens', 'regions.expert_ffn.token_share')"), "6");
    CHECK_EQ_STR(tu_q1(db, "select value from sample where metric = 'regions.tokens' and rep = 0"),
                 "8");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from series where metric = 'decode_ms'"), "16");
    /* counter rows: every decode token embeds once; expert_wait only offloaded */
    CHECK_EQ_STR(tu_q1(db, "select value from counter where region = 'embed' and event = 'calls'"
                        " and rep = 0"), "8");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from counter where region = 'expert_ffn' and"
                        " event = 'wall_ns' and value > 0"), "2");
    CHECK_EQ_STR(tu_q1(db, "select count(distinct region) > 4 from counter"), "1");
}

TEST(consistency_quick_records_srp)
{
    const char *db = tst_path("c.db");
    char *out, *err;
    int rc = tst_sh(&out, &err, "cd %s && %s run %s/suites/consistency.lua --quick --db %s -q",
                    tst_tmpdir(), tu_mb(), tu_root(), db);
    REQUIRE_MSG(rc == 0, "exit %d: %s", rc, err);
    /* model-wide SRP for each trace (7 presets, 4 synthetic) and segment length (4, 16) */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from routing_metric where metric = 'srp' and"
                        " layer = -1"), "22");
    /* more stickiness, more local: SRP at 4 grows from 0 to 0.9 */
    CHECK_EQ_STR(tu_q1(db, "select (select value from routing_metric r join experiment e on"
                        " e.id = r.experiment_id where e.label = 'synth stickiness=0.9' and"
                        " metric = 'srp' and layer = -1 and param = 4) > (select value from"
                        " routing_metric r join experiment e on e.id = r.experiment_id where"
                        " e.label = 'synth stickiness=0' and metric = 'srp' and layer = -1 and"
                        " param = 4)"), "1");
}

/* techniques.lua --quick: 13 techniques x 4 cache sizes (16..64 slots,
 * 1x..4x tiny-olmoe's 16 active experts), each a perplexity run against
 * the exact run: the lossless ones have KL 0 and top-1 agreement 1, the
 * lossy ones that change every token's experts (a PreMoe subset, every load
 * in low precision) have KL > 0, and every run records speed and quality. */
TEST(techniques_quick_records_speed_and_quality)
{
    const char *db = tst_path("t.db"), *md = tst_path("t.md");
    char *out, *err;
    int rc = tst_sh(&out, &err, "cd %s && %s run %s/suites/techniques.lua --quick --reps 1"
                    " --db %s -q", tst_tmpdir(), tu_mb(), tu_root(), db);
    REQUIRE_MSG(rc == 0, "exit %d: %s", rc, err);
    CHECK_EQ_STR(tu_q1(db, "select count(*) from experiment where status = 'ok'"), "52");
    CHECK_EQ_STR(tu_q1(db, "select group_concat(c, ',') from (select distinct"
                        " json_extract(params, '$.cache_size') as c from experiment order by c)"),
                 "16,32,48,64");
    /* every run: tokens/s, stall share, perplexity, KL and top-1 */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from (select experiment_id from summary where metric"
                        " in ('tokens_per_s', 'stall_share', 'ppl', 'kl_mean', 'top1')"
                        " group by experiment_id having count(*) = 5)"), "52");
    static const char lossless[] =
        "json_extract(e.params, '$.technique') in"
        " ('lru', 'lfu', 'belady', 'hobbit-cache', 'pregate', 'oracle', 'predict',"
        " 'predict-correct')";
    char q[512];
    snprintf(q, sizeof q, "select count(*) from summary s join experiment e on e.id ="
             " s.experiment_id where %s and ((s.metric = 'kl_mean' and s.max = 0) or"
             " (s.metric = 'top1' and s.min = 1))", lossless);
    CHECK_EQ_STR(tu_q1(db, q), "64");
    snprintf(q, sizeof q, "select count(*) from experiment e where %s and"
             " json_extract(e.params, '$.lossy') = 0", lossless);
    CHECK_EQ_STR(tu_q1(db, q), "32");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from summary s join experiment e on e.id ="
                        " s.experiment_id where json_extract(e.params, '$.technique') in"
                        " ('premoe', 'lp-all') and s.metric = 'kl_mean' and s.min > 0"), "8");
    /* the lossy ones change the perplexity, the lossless ones all have one */
    CHECK_EQ_STR(tu_q1(db, "select count(distinct s.mean) from summary s join experiment e on"
                        " e.id = s.experiment_id where s.metric = 'ppl' and"
                        " json_extract(e.params, '$.lossy') = 0"), "1");
    /* the techniques did what they are named for */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from summary s join experiment e on e.id ="
                        " s.experiment_id where json_extract(e.params, '$.technique') in"
                        " ('predict', 'predict-correct') and s.metric = 'cache.predicted'"
                        " and s.mean > 0"), "8");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from summary s join experiment e on e.id ="
                        " s.experiment_id where json_extract(e.params, '$.technique') in"
                        " ('pregate', 'oracle', 'hobbit-full') and"
                        " s.metric = 'cache.prefetch_issued' and s.mean > 0"), "12");
    /* the correction's and HOBBIT's own figures are recorded */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from summary s join experiment e on e.id ="
                        " s.experiment_id where json_extract(e.params, '$.technique') ="
                        " 'predict-correct' and s.metric = 'cache.prefetch_cancelled'"), "4");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from summary s join experiment e on e.id ="
                        " s.experiment_id where json_extract(e.params, '$.technique') ="
                        " 'hobbit-full' and s.metric in ('cache.prefetch_low',"
                        " 'cache.pregate_skipped', 'cache.lp_loads') and s.mean > 0"), "12");
    CHECK_EQ_STR(tu_q1(db, "select group_concat(distinct json_extract(params, '$.policy')) from"
                        " experiment where json_extract(params, '$.technique') like 'hobbit-%'"),
                 "hobbit");
    REQUIRE(tst_sh(NULL, &err, "%s report --db %s -o %s", tu_mb(), db, md) == 0);
    char *text = tst_read_file(md, NULL);
    REQUIRE(text);
    CHECK_CONTAINS(text, "| policy | cache size | tokens/s | stall share | perplexity |");
    CHECK_CONTAINS(text, "| premoe | 16 | ");
    CHECK_CONTAINS(text, "| lp-all | 64 | ");
}

/* opts.dry_run tells a suite not to make files; the name is reserved. */
TEST(dry_run_is_visible_and_reserved)
{
    const char *ok = tst_path("ok.lua"), *bad = tst_path("bad.lua");
    const char *src = "local o = suite { name = 'd' }\n"
                      "print('dry_run=' .. tostring(o.dry_run))\n"
                      "experiment { name = 'x', run = function() end }\n";
    tst_write_file(ok, src, strlen(src));
    const char *bsrc = "suite { name = 'd', options = { dry_run = 1 } }\n";
    tst_write_file(bad, bsrc, strlen(bsrc));
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s run %s --dry-run", tu_mb(), ok), 0);
    CHECK_CONTAINS(out, "dry_run=true");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s run %s --db %s -q", tu_mb(), ok, tst_path("d.db")), 0);
    CHECK_CONTAINS(out, "dry_run=false");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s run %s --dry-run", tu_mb(), bad), 2);
    CHECK_CONTAINS(err, "reserved (--dry-run)");
}

/* events = {...} counts: a generate experiment gets them as --events and
 * the counter table holds them per region; where no command counts events
 * the field is an error at declaration, not a value stored and ignored. */
TEST(experiment_events_reach_the_command)
{
    const char *model = tu_write_model("tiny-olmoe", "q8_0", 3, 0.5, "m.gguf");
    char src[1024];
    snprintf(src, sizeof src,
             "suite{name='ev'}\n"
             "experiment{name='g', kind='command', events={'perf::TASK-CLOCK'},\n"
             "  argv={'generate', '-m', '%s', '--tokens', '1,2,3', '-n', '4', '--threads', '1'}}\n",
             model);
    const char *suite = tu_write_text("ev.lua", src), *db = tst_path("ev.db");
    char *err;
    int rc = tst_sh(NULL, &err, "%s run %s --db %s -q", tu_mb(), suite, db);
    REQUIRE_MSG(rc == 0, "exit %d: %s", rc, err);
    CHECK_EQ_STR(tu_q1(db, "select count(*) > 0 from counter where event = 'perf::TASK-CLOCK'"
                           " and region = 'embed' and value > 0"), "1");
    CHECK_EQ_STR(tu_q1(db, "select events from experiment"), "[\"perf::TASK-CLOCK\"]");
    static const struct { const char *exp, *msg; } bad[] = {
        {"experiment{name='l', events={'perf::TASK-CLOCK'}, run=function() end}",
         "a lua experiment records what run() returns and counts no events"},
        {"experiment{name='s', kind='command', events='x', argv={'simulate', 't'}}",
         "this experiment runs moebench simulate, which counts no events"},
        {"experiment{name='p', kind='command', events='x', program='true'}",
         "runs the program true, which counts no events"},
        {"experiment{name='d', kind='command', events='x', argv={'generate', '--events', 'y'}}",
         "field 'events' and argv's --events both name events"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(src, sizeof src, "suite{name='b'}\n%s\n", bad[i].exp);
        suite = tu_write_text("bad.lua", src);
        CHECK_EQ_INT(tst_sh(NULL, &err, "%s run %s --dry-run", tu_mb(), suite), 2);
        CHECK_CONTAINS(err, bad[i].msg);
    }
}
