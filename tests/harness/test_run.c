/* test_run.c — `moebench run`, `query`, `runs`, `merge`, `export` end to
 * end, as a user runs them: the shipped suites, selection options,
 * failures, the command kind against a fake JSON producer, SIGKILL and
 * SIGINT mid-run, and shard merging. */
#include "tests/test.h"
#include "tests/util/util.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MB tst_moebench()

/* The quick-start suite on the real engine, run in a temp directory (it
 * makes models/ there): one memory run and 4 policies x 3 cache sizes. */
TEST(quickstart_end_to_end)
{
    const char *db = tst_path("q.db");
    char *out, *err, cwd[4096];
    REQUIRE(getcwd(cwd, sizeof cwd));
    int st = tst_sh(&out, &err, "cd %s && %s%s%s run %s/suites/quickstart.lua --db %s --quick",
                    tst_tmpdir(), MB[0] == '/' ? "" : cwd, MB[0] == '/' ? "" : "/", MB, cwd, db);
    REQUIRE_MSG(st == 0, "exit %d: %s", st, err);
    CHECK_CONTAINS(out, "Best online policy per cache size");
    CHECK_CONTAINS(out, "cache  policy  tokens/s  hit rate  stall share");
    CHECK_CONTAINS(out, "13 ok, 0 failed");
    CHECK(access(tst_path("models/tiny-olmoe-loc0.5.gguf"), F_OK) == 0);
    CHECK_EQ_STR(tu_q1(db, "select count(*) from experiment where status = 'ok'"), "13");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from policy_cache where name = 'offload'"), "12");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'hit_rate'"), "36");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'tokens_per_s'"), "39");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from summary where metric = 'stall_share' and n = 3"),
                 "12");
    CHECK_EQ_STR(tu_q1(db, "select status from run"), "ok");
    CHECK_EQ_STR(tu_q1(db, "select json_extract(options, '$.quick') from run"), "1");
    /* hit rates are exact: the three repetitions agree */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from summary where metric = 'hit_rate' and min = max"),
                 "12");
    /* belady bounds lru at every size */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from policy_cache b join policy_cache l using"
                        " (name, cache_size) where b.policy = 'belady' and l.policy = 'lru'"
                        " and b.hit_rate >= l.hit_rate"), "3");
    /* cache_stats: totals + 4 layers, per offloaded experiment and repetition; the
     * layers' hits add up to the totals */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from cache_stats"), "180");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from cache_stats t where layer = -1 and hits ="
                        " (select sum(hits) from cache_stats l where l.experiment_id ="
                        " t.experiment_id and l.rep = t.rep and l.layer >= 0)"), "36");
    /* one decode_ms value per generated token (16) of each run */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from series where metric = 'decode_ms'"), "624");
    char *csv;
    CHECK_EQ_INT(tst_sh(&csv, NULL, "%s query --db %s --csv 'select policy, cache_size"
                        " from policy_cache where name = \"offload\" order by 2, 1 limit 1'",
                        MB, db), 0);
    CHECK_CONTAINS(csv, "policy,cache_size\r\nbelady,8");
}

TEST(ci_suite_is_deterministic)
{
    const char *a = tst_path("a.db"), *b = tst_path("b.db");
    REQUIRE(tst_sh(NULL, NULL, "%s run suites/ci.lua --db %s -q", MB, a) == 0);
    REQUIRE(tst_sh(NULL, NULL, "%s run suites/ci.lua --db %s -q", MB, b) == 0);
    const char *sql = "select group_concat(label || '=' || value, ';') from (select e.label,"
                      " s.value from sample s join experiment e on e.id = s.experiment_id"
                      " where s.metric in ('hit_rate', 'misses', 'cache.bytes_demand')"
                      " order by e.label, s.metric, s.rep)";
    char *ra = tu_q1(a, sql), *rb = tu_q1(b, sql);
    CHECK(strlen(ra) > 100);
    CHECK_EQ_STR(ra, rb);
    CHECK_CONTAINS(ra, "engine cache_size=8 policy=belady=");
    CHECK_EQ_STR(tu_q1(a, "select count(*) from sample where metric = 'cache.bytes_demand'"), "8");
}

TEST(dry_run_filter_shard_and_defines)
{
    char *out;
    REQUIRE(tst_sh(&out, NULL, "%s run suites/quickstart.lua --dry-run --db %s", MB,
                   tst_path("none.db")) == 0);
    CHECK_CONTAINS(out, "13 of 13 experiments selected");
    CHECK_CONTAINS(out, "offload cache_size=8 link=nvme policy=lru");
    CHECK_CONTAINS(out, "kind=command warmup=1 reps=3");
    CHECK_CONTAINS(out, "\"argv\":[\"generate\",");
    CHECK(access(tst_path("none.db"), F_OK) != 0);
    REQUIRE(tst_sh(&out, NULL, "%s run suites/quickstart.lua --dry-run --filter belady", MB) == 0);
    CHECK_CONTAINS(out, "3 of 13 experiments selected");
    REQUIRE(tst_sh(&out, NULL, "%s run suites/quickstart.lua --dry-run --filter "
                   "'offload cache_size=16 *'", MB) == 0);
    CHECK_CONTAINS(out, "4 of 13 experiments selected");
    int total = 0;
    for (int i = 1; i <= 3; i++) {
        REQUIRE(tst_sh(&out, NULL, "%s run suites/quickstart.lua --dry-run --shard %d/3 |"
                       " sed -n 's/.*: \\([0-9]*\\) of 13.*/\\1/p'", MB, i) == 0);
        total += atoi(out);
    }
    CHECK_EQ_INT(total, 13);
    char *a, *b;
    tst_sh(&a, NULL, "%s run suites/quickstart.lua --dry-run --shard 1/2 | grep kind=", MB);
    tst_sh(&b, NULL, "%s run suites/quickstart.lua --dry-run --shard 2/2 | grep kind=", MB);
    const char *lab = "offload cache_size=8 link=nvme policy=lru";
    CHECK(!strstr(a, lab) != !strstr(b, lab)); /* in exactly one shard */
    REQUIRE(tst_sh(&out, NULL, "%s run suites/quickstart.lua --dry-run -D policies=lru,fifo"
                   " -D tokens=100", MB) == 0);
    CHECK_CONTAINS(out, "7 of 7 experiments selected");
    CHECK_CONTAINS(out, "\"-n\",\"100\"");
}

TEST(option_errors_exit_2)
{
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run suites/quickstart.lua -D tokens=many --dry-run", MB), 2);
    CHECK_CONTAINS(err, "quickstart.lua:");
    CHECK_CONTAINS(err, "-D tokens=many is not an integer");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run suites/quickstart.lua -D nosuch=1 --dry-run", MB), 2);
    CHECK_CONTAINS(err, "unknown option -D nosuch");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run suites/quickstart.lua -D novalue --dry-run", MB), 2);
    CHECK_CONTAINS(err, "NAME=VALUE");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run suites/quickstart.lua --shard 3/2 --dry-run", MB), 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run --bogus", MB), 2);
    CHECK_CONTAINS(err, "--bogus");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run", MB), 2);
    CHECK_CONTAINS(err, "no suite file");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run %s", MB, tst_path("missing.lua")), 2);
    CHECK_CONTAINS(err, "missing.lua");
}

TEST(help_suite_lists_options)
{
    char *out;
    REQUIRE(tst_sh(&out, NULL, "%s run suites/quickstart.lua --help-suite", MB) == 0);
    CHECK_CONTAINS(out, "suite quickstart");
    CHECK_CONTAINS(out, "tokens");
    CHECK_CONTAINS(out, "(default 64)");
    CHECK_CONTAINS(out, "policies");
    CHECK_CONTAINS(out, "--quick");
}

TEST(bad_suite_exits_2_with_file_line)
{
    const char *s = tu_write_text("bad.lua", "suite{name='b'}\nexperiment{name='x', reps=0,"
                                           " run=function() end}\n");
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run %s --db %s", MB, s, tst_path("b.db")), 2);
    CHECK_CONTAINS(err, "bad.lua:2:");
    CHECK_CONTAINS(err, "'reps'");
    s = tu_write_text("syn.lua", "suite{name='b'}\nexperiment{name=\n");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run %s --db %s", MB, s, tst_path("b.db")), 2);
    CHECK_CONTAINS(err, "syn.lua:");
}

static const char failing_suite[] =
    "suite{name='f'}\n"
    "experiment{name='one', run=function() return {v=1} end}\n"
    "experiment{name='two', run=function() error('boom') end}\n"
    "experiment{name='three', reps=2, run=function(ctx) return {v=ctx.rep} end}\n";

TEST(a_failed_experiment_is_recorded_and_the_suite_goes_on)
{
    const char *s = tu_write_text("f.lua", failing_suite), *db = tst_path("f.db");
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s run %s --db %s", MB, s, db), 1);
    CHECK_CONTAINS(err, "experiment 'two' failed: ");
    CHECK_CONTAINS(err, "f.lua:3: boom");
    CHECK_CONTAINS(out, "2 ok, 1 failed");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from experiment"), "3");
    CHECK_EQ_STR(tu_q1(db, "select status from experiment where name = 'two'"), "failed");
    CHECK_EQ_STR(tu_q1(db, "select instr(error, 'f.lua:3: boom') > 0 from experiment where name = 'two'"), "1");
    CHECK_EQ_STR(tu_q1(db, "select instr(error, 'stack traceback') > 0 from experiment where name = 'two'"), "1");
    CHECK_EQ_STR(tu_q1(db, "select mean from summary join experiment e on e.id = experiment_id"
                        " where e.name = 'three' and metric = 'v'"), "0.5");
    CHECK_EQ_STR(tu_q1(db, "select status from run"), "failed");
    const char *db2 = tst_path("ff.db");
    CHECK_EQ_INT(tst_sh(NULL, NULL, "%s run %s --db %s --fail-fast", MB, s, db2), 1);
    CHECK_EQ_STR(tu_q1(db2, "select count(*) from experiment"), "2");
}

TEST(overrides_and_interleave)
{
    const char *s = tu_write_text("i.lua",
        "local log = ...\n"
        "suite{name='i', options={log={default=''}}}\n"
        "local o = suite and nil\n"
        "for i = 1, 6 do\n"
        "  experiment{name='e' .. i, run=function(ctx)\n"
        "    local f = io.open(os.getenv('ILOG'), 'a'); f:write(ctx.label, ' ', ctx.rep, '\\n'); f:close()\n"
        "    return {x = i}\n"
        "  end}\n"
        "end\n");
    const char *db = tst_path("i.db");
    char *l1, *l2, *seq;
    REQUIRE(tst_sh(NULL, NULL, "ILOG=%s %s run %s --db %s --interleave --seed 5 --reps 3 -q",
                   tst_path("l1"), MB, s, db) == 0);
    REQUIRE(tst_sh(NULL, NULL, "ILOG=%s %s run %s --db %s --interleave --seed 5 --reps 3 -q",
                   tst_path("l2"), MB, s, db) == 0);
    REQUIRE(tst_sh(NULL, NULL, "ILOG=%s %s run %s --db %s --reps 3 --warmup 1 -q",
                   tst_path("l3"), MB, s, db) == 0);
    l1 = tst_read_file(tst_path("l1"), NULL);
    l2 = tst_read_file(tst_path("l2"), NULL);
    seq = tst_read_file(tst_path("l3"), NULL);
    REQUIRE(l1 && l2 && seq);
    CHECK_EQ_STR(l1, l2);                 /* same seed, same order */
    CHECK(strcmp(l1, seq) != 0);          /* not the declared order */
    CHECK_CONTAINS(seq, "e1 -1\ne1 0\ne1 1\ne1 2\ne2 -1\n"); /* warm-up, then reps */
    char *sorted1, *sorted3;
    tst_sh(&sorted1, NULL, "sort %s", tst_path("l1"));
    tst_sh(&sorted3, NULL, "grep -v -- ' -1$' %s | sort", tst_path("l3"));
    CHECK_EQ_STR(sorted1, sorted3);       /* the same repetitions, another order */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'x'"), "54");
    CHECK_EQ_STR(tu_q1(db, "select json_extract(cli, '$.interleave') from run where id = 1"), "1");
}

/* A fake `moebench metrics/simulate --json`: prints what the recogniser
 * turns into routing_metric and cache_stats rows. */
static const char fake_producer[] =
    "#!/bin/sh\n"
    "case \"$1\" in\n"
    "  fail) echo 'simulate: no such trace' >&2; exit 3 ;;\n"
    "  slow) sleep 5 ;;\n"
    "  junk) echo 'not json' ;;\n"
    "esac\n"
    "cat <<EOF\n"
    "{\"trace\": \"t.moetrace\", \"tokens_per_s\": 50.5, \"hit_rate\": 0.75, \"seed\": $MOEBENCH_SEED,\n"
    " \"metrics\": [{\"metric\": \"srp\", \"layer\": 0, \"seg_len\": 16, \"value\": 0.61, \"ci\": [0.5, 0.7]},\n"
    "             {\"metric\": \"sch\", \"cache_m\": 2, \"value\": 0.42}],\n"
    " \"layers\": [{\"layer\": 0, \"hits\": 30, \"misses\": 10, \"bytes_loaded\": 4096, \"stall_ns\": 99}],\n"
    " \"per_token_ms\": [1.5, 2.5, 3.5]}\n"
    "EOF\n";

TEST(command_kind_stores_json_numbers_and_rows)
{
    const char *prog = tu_write_text("fake.sh", fake_producer);
    REQUIRE(tst_sh(NULL, NULL, "chmod +x %s", prog) == 0);
    char src[2048];
    snprintf(src, sizeof src,
             "suite{name='c'}\n"
             "experiment{name='ok', kind='command', program='%s', argv={'x'}, reps=2}\n"
             "experiment{name='fail', kind='command', program='%s', argv={'fail'}}\n"
             "experiment{name='slow', kind='command', program='%s', argv={'slow'}, timeout=0.3}\n"
             "experiment{name='junk', kind='command', program='%s', argv={'junk'}}\n"
             "experiment{name='self', kind='command', argv={'events', '--presets'}}\n",
             prog, prog, prog, prog);
    const char *s = tu_write_text("c.lua", src), *db = tst_path("c.db");
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run %s --db %s -q", MB, s, db), 1);
    CHECK_CONTAINS(err, "exited with status 3: simulate: no such trace");
    CHECK_CONTAINS(err, "timed out after 0.3 s");
    CHECK_CONTAINS(err, "output is not JSON");
    CHECK_EQ_STR(tu_q1(db, "select group_concat(name || ':' || status, ' ') from experiment"),
                 "ok:ok fail:failed slow:failed junk:failed self:ok");
    CHECK_EQ_STR(tu_q1(db, "select mean from summary where metric = 'tokens_per_s'"), "50.5");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from routing_metric"), "4");
    CHECK_EQ_STR(tu_q1(db, "select layer || '/' || param || '/' || value || '/' || ci_lo || '/' || trace"
                        " from routing_metric where metric = 'srp' and rep = 0"),
                 "0/16.0/0.61/0.5/t.moetrace");
    CHECK_EQ_STR(tu_q1(db, "select layer || '/' || param || '/' || (ci_lo is null) from routing_metric"
                        " where metric = 'sch' and rep = 1"), "-1/2.0/1");
    CHECK_EQ_STR(tu_q1(db, "select accesses || '/' || hits || '/' || bytes_loaded || '/' || stall_ns"
                        " || '/' || (evictions is null) from cache_stats where rep = 0"),
                 "40/30/4096/99/1");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from series where metric = 'per_token_ms'"), "6");
    CHECK_EQ_STR(tu_q1(db, "select count(distinct value) from sample where metric = 'seed'"), "2");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from blob where name = 'output'"), "3");
}

static int64_t count_experiments(const char *db)
{
    sqlite3 *h;
    int64_t n = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        sqlite3_busy_timeout(h, 2000);
        if (sqlite3_prepare_v2(h, "select count(*) from experiment", -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(h);
    return n;
}

/* Starts `moebench run` on a sleeping suite, signals it once `after`
 * experiments are stored; returns its wait status. */
static int run_and_signal(const char *db, int signo, int after)
{
    const char *s = tu_write_text("sleep.lua",
        "suite{name='sleepy'}\n"
        "for i = 1, 40 do\n"
        "  experiment{name='nap' .. i, reps=3, run=function() moebench.sleep(0.03) return {i=i} end}\n"
        "end\n");
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        execl(MB, "moebench", "run", s, "--db", db, "-q", (char *)NULL);
        _exit(127);
    }
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 1000 && count_experiments(db) < after; i++)
        nanosleep(&ts, NULL);
    kill(pid, signo);
    int st;
    waitpid(pid, &st, 0);
    return st;
}

TEST(sigkill_mid_run_keeps_every_finished_experiment)
{
    const char *db = tst_path("k.db");
    int st = run_and_signal(db, SIGKILL, 3);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    char *out;
    REQUIRE(tst_sh(&out, NULL, "sqlite3 %s 'pragma integrity_check'", db) == 0);
    CHECK_EQ_STR(out, "ok\n");
    int64_t n = count_experiments(db);
    CHECK_MSG(n >= 3 && n < 40, "%lld experiments stored", (long long)n);
    /* every stored experiment is whole: all repetitions, their summary */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from experiment e where reps_done != 3 or"
                        " (select count(*) from sample s where s.experiment_id = e.id"
                        "  and metric = 'i') != 3 or"
                        " (select n from summary s where s.experiment_id = e.id"
                        "  and metric = 'wall_ms') != 3"), "0");
    CHECK_EQ_STR(tu_q1(db, "select status from run"), "running");
}

TEST(sigint_stops_cleanly_and_marks_the_run)
{
    const char *db = tst_path("i.db");
    int st = run_and_signal(db, SIGINT, 2);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
    CHECK_EQ_STR(tu_q1(db, "select status from run"), "interrupted");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from experiment where reps_done != 3"), "0");
    CHECK(count_experiments(db) >= 2);
}

TEST(merged_shards_equal_one_run_and_merging_twice_adds_nothing)
{
    const char *full = tst_path("full.db"), *out = tst_path("out.db");
    REQUIRE(tst_sh(NULL, NULL, "%s run suites/ci.lua --db %s -q", MB, full) == 0);
    for (int i = 1; i <= 3; i++)
        REQUIRE(tst_sh(NULL, NULL, "%s run suites/ci.lua --db %s/s%d.db --shard %d/3 -q", MB,
                       tst_tmpdir(), i, i) == 0);
    char *msg;
    REQUIRE(tst_sh(&msg, NULL, "%s merge %s %s/s1.db %s/s2.db %s/s3.db", MB, out, tst_tmpdir(),
                   tst_tmpdir(), tst_tmpdir()) == 0);
    CHECK_CONTAINS(msg, "3 runs added (18 experiments)");
    const char *rows = "select group_concat(x, ';') from (select e.label || ':' || s.metric ||"
                       " ':' || s.rep || ':' || s.value as x from sample s join experiment e"
                       " on e.id = s.experiment_id where s.metric in ('hit_rate', 'misses')"
                       " order by x)";
    char *a = tu_q1(full, rows), *b = tu_q1(out, rows);
    CHECK(strlen(a) > 100);
    CHECK_EQ_STR(a, b);
    char *n1 = tu_q1(out, "select (select count(*) from sample) || '/' || (select count(*) from summary)");
    REQUIRE(tst_sh(&msg, NULL, "%s merge %s %s/s1.db %s/s3.db %s/s2.db", MB, out, tst_tmpdir(),
                   tst_tmpdir(), tst_tmpdir()) == 0);
    CHECK_CONTAINS(msg, "0 runs added (0 experiments), 3 already present");
    CHECK_EQ_STR(tu_q1(out, "select (select count(*) from sample) || '/' || (select count(*) from summary)"), n1);
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s merge %s", MB, out), 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s merge %s %s", MB, out, out), 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s merge %s %s", MB, out, tst_path("nope.db")), 2);
    CHECK_CONTAINS(err, "nope.db");
}

TEST(query_runs_export)
{
    const char *db = tst_path("e.db");
    REQUIRE(tst_sh(NULL, NULL, "%s run suites/ci.lua --db %s -q", MB, db) == 0);
    char *out, *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s query --db %s \"delete from run\"", MB, db), 2);
    CHECK_CONTAINS(err, "read-only");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s query --db %s \"create table x(y)\"", MB, db), 2);
    CHECK_EQ_STR(tu_q1(db, "select count(*) from run"), "1");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s query --db %s \"select nosuch from run\"", MB, db), 2);
    CHECK_CONTAINS(err, "no such column");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s query --db %s", MB, db), 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s query --db %s 'select 1'", MB, tst_path("no.db")), 2);
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s query --db %s --json \"select 1 as a, 'x' as b,"
                        " null as c, 2.5 as d\"", MB, db), 0);
    CHECK_CONTAINS(out, "\"a\": 1");
    CHECK_CONTAINS(out, "\"b\": \"x\"");
    CHECK_CONTAINS(out, "\"c\": null");
    /* options may also follow the SQL, as with every command */
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s query --db %s \"select 'a,b' as v\" --csv", MB, db), 0);
    CHECK_EQ_STR(out, "v\r\n\"a,b\"\r\n");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s query --db %s --csv \"select 'a,\\\"b' as v\"", MB, db), 0);
    CHECK_EQ_STR(out, "v\r\n\"a,\"\"b\"\r\n");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s runs --db %s -n 5", MB, db), 0);
    CHECK_CONTAINS(out, "suite");
    CHECK_CONTAINS(out, " ci ");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s export --db %s latest --json > %s && sqlite3 :memory:"
                        " \"select json_array_length(readfile('%s'), '$.experiments'),"
                        " json_extract(readfile('%s'), '$.run.suite'),"
                        " json_array_length(readfile('%s'), '$.experiments[0].samples')\"",
                        MB, db, tst_path("x.json"), tst_path("x.json"), tst_path("x.json"),
                        tst_path("x.json")), 0);
    CHECK_EQ_STR(out, "18|ci|8\n");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s export --db %s ci --csv | head -1", MB, db), 0);
    CHECK_EQ_STR(out, "run_id,experiment_id,seq,experiment,label,kind,status,params,rep,metric,value\r\n");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s export --db %s 1 --csv | wc -l", MB, db), 0);
    int engine = atoi(tu_q1(db, "select count(*) from sample s join experiment e on"
                             " e.id = s.experiment_id where e.name in ('engine', 'routing')"));
    CHECK(engine >= 8 * 10);
    CHECK_EQ_INT(atoi(out), 1 + 8 * 2 * 4 + 2 + engine);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s export --db %s 99 --json", MB, db), 2);
    CHECK_CONTAINS(err, "no run '99'");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s export --db %s 1", MB, db), 2);
    CHECK_CONTAINS(err, "--json, --csv or --baseline");
}

TEST(progress_only_on_a_terminal)
{
    char *out, *err;
    /* script(1) (bsdutils, essential in Debian) gives the run a pty */
    REQUIRE(tst_sh(&out, NULL, "script -qec '%s run suites/ci.lua --db %s' /dev/null", MB,
                   tst_path("p.db")) == 0);
    CHECK_CONTAINS(out, "[1/18] toycache cache_m=1 policy=lru rep 1/2");
    CHECK_CONTAINS(out, "ETA 0:");
    REQUIRE(tst_sh(&out, &err, "%s run suites/ci.lua --db %s", MB, tst_path("p.db")) == 0);
    CHECK(strstr(err, "ETA") == NULL);
    REQUIRE(tst_sh(&out, NULL, "script -qec '%s run suites/ci.lua -q --db %s' /dev/null", MB,
                   tst_path("p.db")) == 0);
    CHECK(strstr(out, "ETA") == NULL);
}

/* The command kind on the real `moebench metrics` and `moebench simulate`:
 * their JSON lands in routing_metric, cache_stats and the views, with the
 * same numbers the commands print. */
TEST(command_kind_on_metrics_and_simulate)
{
    const char *trace = "tests/metrics/data/sticky-2x8k2.json";
    char src[1024];
    snprintf(src, sizeof src,
             "suite{name='real'}\n"
             "experiment{name='lrc', argv={'metrics', '%s', '--bootstrap', '20',"
             " '--seg-lens', '4', '--threads', '1'}}\n"
             "for _, p in ipairs{'lru', 'belady'} do\n"
             "  experiment{name='sim', params={policy=p, cache_m=2}, reps=2,\n"
             "    argv={'simulate', '%s', '--policy', p, '--cache-experts', '4'}}\n"
             "end\n", trace, trace);
    const char *s = tu_write_text("real.lua", src), *db = tst_path("r.db");
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "%s run %s --db %s -q", MB, s, db) == 0, "%s", err);
    /* metrics: 2 layers x (1 srp + 4 curves x 8 sizes) + model (1 + 4 x 16) */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from routing_metric"), "131");
    CHECK_EQ_STR(tu_q1(db, "select count(distinct metric) from routing_metric"), "5");
    char *want;
    REQUIRE(tst_sh(&want, NULL, "%s metrics %s --json --bootstrap 20 --seg-lens 4 --threads 1"
                   " > %s && sqlite3 :memory: \"select json_extract(readfile('%s'),"
                   " '$.layers[0].srp.4.best_f1') || ' ' || json_extract(readfile('%s'),"
                   " '$.model.lru.hit_rate[7]') || ' ' || json_extract(readfile('%s'),"
                   " '$.model.sch.4.ci_ub[3]')\"", MB, trace, tst_path("m.json"),
                   tst_path("m.json"), tst_path("m.json"), tst_path("m.json")) == 0);
    want[strcspn(want, "\n")] = '\0';
    CHECK_EQ_STR(tu_q1(db, "select (select value from routing_metric where metric = 'srp' and"
                        " layer = 0 and param = 4) || ' ' || (select value from routing_metric"
                        " where metric = 'lru' and layer = -1 and param = 2) || ' ' ||"
                        " (select ci_hi from routing_metric where metric = 'sch/4' and"
                        " layer = -1 and param = 1)"), want);
    CHECK_EQ_STR(tu_q1(db, "select count(*) from routing_metric where trace != 'tests/metrics/data/sticky-2x8k2.json'"), "0");
    /* simulate: totals unprefixed, options skipped, cache rows per layer */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from policy_cache where tokens_per_s > 0 and"
                        " hit_rate > 0 and cache_size = 2"), "2");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric like 'options.%'"), "0");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from cache_stats c join experiment e on"
                        " e.id = c.experiment_id where e.name = 'sim'"), "12");
    REQUIRE(tst_sh(&want, NULL, "%s simulate %s --policy belady --cache-experts 4 --json > %s"
                   " && sqlite3 :memory: \"select json_extract(readfile('%s'),"
                   " '$.totals.hit_rate') || ' ' || json_extract(readfile('%s'),"
                   " '$.layers[1].misses')\"", MB, trace, tst_path("s.json"),
                   tst_path("s.json"), tst_path("s.json")) == 0);
    want[strcspn(want, "\n")] = '\0';
    CHECK_EQ_STR(tu_q1(db, "select (select hit_rate from policy_cache where policy = 'belady')"
                        " || ' ' || (select misses from cache_stats c join experiment e on"
                        " e.id = c.experiment_id where e.label like '%belady%' and layer = 1"
                        " and rep = 0)"), want);
}

/* A failed command names its cause (not moebench's "Try --help" hint) and
 * the command shell-quoted; experiment.error keeps the whole stderr. */
TEST(failed_command_keeps_stderr_and_names_cause)
{
    const char *suite = tu_write_text(
        "f.lua", "suite{name='f'}\n"
                 "experiment{name='bad', kind='command', argv={'generate', '-m', 'no such.gguf',"
                 " '-n', '-5'}}\n"
                 "experiment{name='long', kind='command', program='sh', argv={'-c',"
                 " \"for i in $(seq 1 3000); do echo line $i >&2; done; echo \\\"it's the"
                 " end\\\" >&2; exit 3\"}}\n");
    const char *db = tst_path("f.db");
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s run %s --db %s -q", MB, suite, db), 1);
    CHECK_CONTAINS(err, "experiment 'bad' failed: exited with status 2: moebench generate: -n: -5"
                        " is out of range");
    CHECK_CONTAINS(err, "  command: ");
    CHECK_CONTAINS(err, " generate -m 'no such.gguf' -n -5 --json\n");
    CHECK_CONTAINS(err, "experiment 'long' failed: exited with status 3: it's the end\n");
    CHECK_CONTAINS(err, "  command: sh -c 'for i in $(seq 1 3000); do echo line $i >&2; done;"
                        " echo \"it'\\''s the end\" >&2; exit 3'\n");
    char *e = tu_q1(db, "select error from experiment where name = 'bad'");
    CHECK_CONTAINS(e, "stderr:\nmoebench generate: -n: -5 is out of range");
    CHECK_CONTAINS(e, "Try 'moebench generate --help'.");
    e = tu_q1(db, "select error from experiment where name = 'long'");
    CHECK_CONTAINS(e, "stderr:\nline 1\nline 2\n");
    CHECK_CONTAINS(e, " bytes left out ...]\n");
    CHECK_CONTAINS(e, "line 3000\nit's the end");
    CHECK(strlen(e) < 17000);
    /* the quoted command runs as printed: it fails the same way */
    const char *cmd = strstr(err, "  command: sh -c ") + 11;
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(cmd, "\n"), cmd);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s", line), 3);
    CHECK_CONTAINS(err, "it's the end");
}

/* The "explore it" hint names this binary by its path unless `moebench`
 * on PATH is this binary. */
TEST(explore_hint_runs_as_printed)
{
    const char *suite = tu_write_text("h.lua", "suite{name='h'}\n"
                                               "experiment{name='x', run=function() return {v=1} end}\n");
    char *out;
    REQUIRE(tst_sh(&out, NULL, "PATH=/usr/bin:/bin %s run %s --db %s", tu_mb(), suite,
                   tst_path("h.db")) == 0);
    char *hint = strstr(out, "explore it: ");
    REQUIRE(hint);
    hint += 12;
    CHECK_MSG(hint[0] == '/', "not a path: %s", hint);
    hint[strcspn(hint, "\n")] = '\0';
    char *q;
    CHECK_EQ_INT(tst_sh(&q, NULL, "PATH=/usr/bin:/bin %s", hint), 0);
    CHECK_CONTAINS(q, "x");
    REQUIRE(tst_sh(NULL, NULL, "mkdir -p %s && ln -sf %s %s/moebench", tst_path("bin"), tu_mb(),
                   tst_path("bin")) == 0);
    REQUIRE(tst_sh(&out, NULL, "PATH=%s:/usr/bin:/bin %s run %s --db %s", tst_path("bin"),
                   tu_mb(), suite, tst_path("h.db")) == 0);
    CHECK_CONTAINS(out, "explore it: moebench query --db ");
}

/* --filter matching nothing is an error (exit 2): no empty run is stored
 * to become "latest". */
TEST(filter_matching_nothing_exits_2)
{
    const char *suite = tu_write_text("n.lua", "suite{name='n'}\n"
                                               "experiment{name='x', run=function() return {v=1} end}\n");
    const char *db = tst_path("n.db");
    char *err;
    REQUIRE(tst_sh(NULL, NULL, "%s run %s --db %s -q", MB, suite, db) == 0);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run %s --db %s -q --filter nosuch", MB, suite, db), 2);
    CHECK_CONTAINS(err, "--filter 'nosuch' matches none of the 1 experiments");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from run"), "1");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s run %s --db %s --dry-run --filter nosuch", MB, suite,
                        db), 2);
}

/* The default results table: columns by name, the timings last, the same
 * in every run although a Lua table's pairs() order changes run to run;
 * what does not fit is counted. */
TEST(default_table_columns_are_stable)
{
    const char *suite = tu_write_text(
        "c.lua", "suite{name='c'}\n"
                 "experiment{name='x', run=function() return {zeta=1, alpha=2, mid=3, beta=4,"
                 " gamma=5, omega=6} end}\n");
    char *first = NULL;
    for (int i = 0; i < 4; i++) {
        char *out, db[64];
        snprintf(db, sizeof db, "c%d.db", i);
        REQUIRE(tst_sh(&out, NULL, "%s run %s --db %s", MB, suite, tst_path(db)) == 0);
        CHECK_CONTAINS(out, "(2 more metrics: ");
        char *head = strstr(out, "experiment status");
        REQUIRE(head);
        head[strcspn(head, "\n")] = '\0';
        if (!first)
            first = head;
        CHECK_EQ_STR(head, first);
    }
    CHECK_MSG(strstr(first, "alpha") < strstr(first, "beta") &&
              strstr(first, "beta") < strstr(first, "gamma") &&
              strstr(first, "gamma") < strstr(first, "mid") &&
              strstr(first, "mid") < strstr(first, "wall_ms") &&
              strstr(first, "wall_ms") < strstr(first, "cpu_ms"), "order: %s", first);
}
