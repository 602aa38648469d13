/* test_slurm.c — `moebench run --slurm`, `--slurm-resume`, `--slurm-status`
 * and `moebench merge --slurm` without a cluster: sbatch, squeue and
 * scancel are small scripts on PATH that record their arguments and hand
 * out job ids, and the generated shard.sh is run by hand, as a task
 * would, with SLURM_ARRAY_TASK_ID set. This checks what moebench writes
 * and asks for; that Slurm runs it as asked is tests/slurm/run.sh
 * (`make test-slurm`, a real single-node cluster). */
#include "tests/test.h"
#include "tests/util/util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#define MB tst_moebench()
/* no Slurm variables from a job the tests themselves might run in */
#define NOSLURM                                                                          \
    "env -u SLURM_JOB_ID -u SLURM_ARRAY_JOB_ID -u SLURM_ARRAY_TASK_ID -u SLURM_ARRAY_TASK_MIN" \
    " -u SLURM_ARRAY_TASK_MAX -u SLURM_ARRAY_TASK_COUNT "

/* Three experiments, a, b, c; b fails while the file named by -D flag
 * exists. */
static const char flaky[] =
    "local opts = suite { name = 'flaky', description = 'three experiments',\n"
    "  options = { flag = { default = '/nonexistent', help = 'b fails while it exists' } } }\n"
    "for _, name in ipairs { 'a', 'b', 'c' } do\n"
    "  experiment { name = name, params = { x = name }, reps = 1, run = function()\n"
    "    local f = io.open(opts.flag)\n"
    "    if f and name == 'b' then f:close(); error('b fails') end\n"
    "    return { letter = name:byte() } end }\n"
    "end\n";

static const char fake_sbatch[] =
    "#!/bin/sh\n"
    "d=$(dirname \"$0\")\n"
    "n=$(cat \"$d/next\" 2>/dev/null || echo 101)\n"
    "[ -e \"$d/fail.$n\" ] && { echo 'sbatch: error: Batch job submission failed' >&2; exit 1; }\n"
    "echo \"sbatch $*\" >> \"$d/calls\"\n"
    "echo $((n + 1)) > \"$d/next\"\n"
    "echo \"$n;cluster\"\n";
static const char fake_scancel[] = "#!/bin/sh\necho \"scancel $*\" >> \"$(dirname \"$0\")/calls\"\n";
static const char fake_squeue[] = "#!/bin/sh\ncat \"$(dirname \"$0\")/queue\" 2>/dev/null; true\n";

/* A folder with the fake commands; returns the PATH to use. */
static const char *fake_slurm(void)
{
    REQUIRE(tst_sh(NULL, NULL, "mkdir -p %s", tst_path("bin")) == 0);
    tst_write_file(tst_path("bin/sbatch"), fake_sbatch, strlen(fake_sbatch));
    tst_write_file(tst_path("bin/scancel"), fake_scancel, strlen(fake_scancel));
    tst_write_file(tst_path("bin/squeue"), fake_squeue, strlen(fake_squeue));
    REQUIRE(tst_sh(NULL, NULL, "chmod +x %s/bin/*", tst_tmpdir()) == 0);
    char *path = tst_alloc(8192);
    snprintf(path, 8192, "%s:%s", tst_path("bin"), getenv("PATH"));
    return path;
}

static const char *suite_file(void)
{
    const char *p = tst_path("flaky.lua");
    tst_write_file(p, flaky, strlen(flaky));
    return p;
}

/* `moebench ARGS` in the test's folder, the fake Slurm first on PATH. */
static int run_mb(char **out, char **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int run_mb(char **out, char **err, const char *fmt, ...)
{
    char args[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tst_sh(out, err, "cd %s && PATH=%s " NOSLURM "%s %s", tst_tmpdir(), fake_slurm(),
                  tu_mb(), args);
}
#define RUN run_mb

static char *calls(void)
{
    char *c = tst_read_file(tst_path("bin/calls"), NULL);
    return c ? c : "";
}

/* Line n (1-based) of s, in a fresh buffer. */
static char *line(const char *s, int n)
{
    for (; n > 1 && s; n--)
        s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL;
    char *out = tst_alloc(4096);
    snprintf(out, 4096, "%.*s", s ? (int)strcspn(s, "\n") : 0, s ? s : "");
    return out;
}

TEST(dry_run_prints_scripts_and_commands_writes_nothing)
{
    const char *suite = suite_file();
    char *out, *err;
    CHECK_EQ_INT(RUN(&out, &err, "run %s --slurm --dry-run --db res/out.db --tasks 2 -D x=1"
                     " --sbatch-args \"-p cpu --comment='a b'\"", suite), 2); /* no option x */
    CHECK_CONTAINS(err, "x");
    REQUIRE(tst_sh(NULL, NULL, "mkdir %s", tst_path("res")) == 0);
    CHECK_EQ_INT(RUN(&out, &err, "run %s --slurm --dry-run --db res/out.db --tasks 2 --quick"
                     " -D flag=/f --sbatch-args \"-p cpu --comment='a b'\"", suite), 0);
    const char *dir = tst_path("res/out.slurm");
    char want[8192];
    snprintf(want, sizeof want, "sbatch --parsable --job-name=moebench-flaky-prepare --chdir=%s"
             " -p cpu '--comment=a b' --output=%s/log/prepare.%%j.out %s/prepare.sh",
             tst_tmpdir(), dir, dir);
    CHECK_EQ_STR(line(out, 3), want);
    snprintf(want, sizeof want, "sbatch --parsable --job-name=moebench-flaky --chdir=%s -p cpu"
             " '--comment=a b' --output=%s/log/shard-%%a.%%A.out --array=1-2"
             " --dependency=afterok:PREPARE_JOB_ID --kill-on-invalid-dep=yes %s/shard.sh",
             tst_tmpdir(), dir, dir);
    CHECK_EQ_STR(line(out, 4), want);
    CHECK_CONTAINS(line(out, 5), "--dependency=afterany:ARRAY_JOB_ID");
    snprintf(want, sizeof want, " run %s --shard \"$i/2\" --db %s/shard-\"$i\".db -D flag=/f"
             " --seed 1 --quick\n", suite, dir);
    CHECK_CONTAINS(out, want);
    snprintf(want, sizeof want, " run %s --prepare -D flag=/f --seed 1 --quick\n", suite);
    CHECK_CONTAINS(out, want);
    snprintf(want, sizeof want, " merge --slurm %s\n", dir);
    CHECK_CONTAINS(out, want);
    CHECK(access(dir, F_OK) != 0);
    CHECK_EQ_STR(calls(), "");
}

TEST(tasks_default_and_cap)
{
    const char *suite = suite_file();
    char *out, *err;
    CHECK_EQ_INT(RUN(&out, &err, "run %s --slurm --dry-run --db o.db", suite), 0);
    CHECK_CONTAINS(out, "--array=1-3 ");  /* one task per experiment */
    CHECK_EQ_INT(RUN(&out, &err, "run %s --slurm --dry-run --db o.db --tasks 9", suite), 0);
    CHECK_CONTAINS(out, "--array=1-3 ");
    CHECK_CONTAINS(err, "--tasks 9 > 3 selected experiments: 3 tasks");
    CHECK_EQ_INT(RUN(&out, &err, "run %s --slurm --dry-run --db o.db --filter b", suite), 0);
    CHECK_CONTAINS(out, "--array=1 ");
    CHECK_CONTAINS(out, "--filter b ");
    CHECK_EQ_INT(RUN(&out, &err, "run %s --slurm --dry-run --db o.db --filter zzz", suite), 2);
    CHECK_CONTAINS(err, "no experiment selected (see --filter)");
}

TEST(bad_combinations_are_usage_errors)
{
    const char *suite = suite_file();
    static const struct { const char *args, *msg; } bad[] = {
        {"--slurm --shard 1/2", "no --shard, --prepare"},
        {"--tasks 3", "go with --slurm"},
        {"--slurm --tasks 0", "--tasks: 0 is out of range"},
        {"--slurm --sbatch-args '--array=1-9'", "'--array=1-9' is set by moebench"},
        {"--slurm --sbatch-args '-o log'", "'-o' is set by moebench"},
        {"--slurm --sbatch-args \"--x='y\"", "unterminated ' quote"},
        {"--slurm --db nofolder/o.db", "--db nofolder/o.db: its folder does not exist"},
        {"--slurm --slurm-dir 'a%%b' --db o.db", "'%' would be a pattern for sbatch"},
        {"--prepare --dry-run", "pick one"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *err;
        CHECK_EQ_INT(RUN(NULL, &err, "run %s %s", suite, bad[k].args), 2);
        CHECK_CONTAINS(err, bad[k].msg);
    }
    char *err;
    CHECK_EQ_INT(RUN(NULL, &err, "run --slurm-status %s --slurm", suite), 2);
    CHECK_CONTAINS(err, "take a job folder, alone");
    CHECK_EQ_INT(RUN(NULL, &err, "run --slurm-status %s", tst_path("nothing")), 1);
    CHECK_CONTAINS(err, "nothing/job.json");
    CHECK_EQ_INT(RUN(NULL, &err, "run %s --shard auto", suite), 2);
    CHECK_CONTAINS(err, "--shard auto: SLURM_ARRAY_TASK_ID is not set");
    CHECK_EQ_STR(calls(), "");
}

/* Runs the generated shard.sh as array task i would. */
static int run_task(const char *dir, int i)
{
    return tst_sh(NULL, NULL, "cd %s && " NOSLURM "SLURM_JOB_ID=%d SLURM_ARRAY_JOB_ID=102"
                  " SLURM_ARRAY_TASK_ID=%d SLURMD_NODENAME=n%d sh %s/shard.sh > %s/task%d.log"
                  " 2>&1", tst_tmpdir(), 200 + i, i, i, dir, tst_tmpdir(), i);
}

TEST(submit_run_merge_resume)
{
    const char *suite = suite_file(), *dir = tst_path("o.slurm"), *db = tst_path("o.db");
    const char *flag = tst_path("flag");
    char *out, *err;
    tst_write_file(flag, "", 0);
    REQUIRE_MSG(RUN(&out, &err, "run %s --slurm --db o.db -D flag=%s --sbatch-args -A=acct",
                    suite, flag) == 0, "%s", err);
    CHECK_CONTAINS(out, "submitted suite flaky, shards 1-3 of 3: prepare job 101, array job"
                        " 102, merge job 103");
    char *c = calls();
    CHECK_CONTAINS(line(c, 1), "--job-name=moebench-flaky-prepare");
    CHECK_CONTAINS(line(c, 1), " -A=acct ");
    CHECK_CONTAINS(line(c, 2), "--array=1-3 --dependency=afterok:101 --kill-on-invalid-dep=yes");
    CHECK_CONTAINS(line(c, 3), "--dependency=afterany:102 ");
    /* a second --slurm into the same folder is refused */
    CHECK_EQ_INT(RUN(NULL, &err, "run %s --slurm --db o.db", suite), 2);
    CHECK_CONTAINS(err, "holds a submission already");

    /* the tasks run: 1 ok, 2 fails (b), 3 never starts */
    CHECK_EQ_INT(run_task(dir, 1), 0);
    CHECK_EQ_INT(run_task(dir, 2), 1);
    CHECK_EQ_INT(RUN(&out, NULL, "merge --slurm %s", dir), 1);
    CHECK_CONTAINS(out, "    1  ok           1 ok   ");
    CHECK_CONTAINS(out, "(job 102_1)");
    CHECK_CONTAINS(out, "    2  failed       0 ok, 1 failed");
    CHECK_CONTAINS(out, "    3  no database");
    CHECK_CONTAINS(out, "log: ");
    CHECK_CONTAINS(out, "/o.slurm/log/shard-3.102.out");
    CHECK_CONTAINS(out, "2 of 3 shards are not ok");
    CHECK_EQ_STR(tu_q1(db, "select group_concat(name) from experiment"), "a");
    CHECK_EQ_STR(tu_q1(db, "select json_extract(cli, '$.slurm.node') || ' ' ||"
                        " json_extract(cli, '$.slurm.job_id') || ' ' ||"
                        " json_extract(cli, '$.shard_i') from run"), "n1 201 1");
    CHECK_EQ_INT(RUN(&out, NULL, "run --slurm-status %s", dir), 1);
    CHECK_CONTAINS(out, "submission 1 (");
    CHECK_CONTAINS(out, "prepare job 101, array job 102, merge job 103");

    /* resume: refused while the array is queued, then only 2 and 3 */
    tst_write_file(tst_path("bin/queue"), "77\n102\n", 7);
    CHECK_EQ_INT(RUN(NULL, &err, "run --slurm-resume %s", dir), 2);
    CHECK_CONTAINS(err, "array job 102 of the last submission is still queued");
    /* a queue longer than moebench reads (1 MiB) must not block squeue */
    REQUIRE(tst_sh(NULL, NULL, "yes 77 | head -c 3000000 > %s", tst_path("bin/queue")) == 0);
    CHECK_EQ_INT(RUN(&out, &err, "run --slurm-resume %s --dry-run", dir), 0);
    tst_write_file(tst_path("bin/queue"), "77\n", 3);
    CHECK_EQ_INT(RUN(&out, &err, "run --slurm-resume %s --dry-run", dir), 0);
    CHECK_CONTAINS(out, "--array=2-3 ");
    CHECK_CONTAINS(out, " -A=acct "); /* the last submission's sbatch options */
    CHECK(access(tst_path("o.slurm/shard-2.db"), F_OK) == 0); /* dry: nothing moved */
    unlink(flag);
    CHECK_EQ_INT(RUN(&out, &err, "run --slurm-resume %s", dir), 0);
    CHECK_CONTAINS(out, "shards 2-3 of 3: prepare job 104, array job 105, merge job 106");
    CHECK_CONTAINS(line(calls(), 5), "--array=2-3 --dependency=afterok:104");
    CHECK(access(tst_path("o.slurm/failed/shard-2.102.db"), F_OK) == 0);
    CHECK(access(tst_path("o.slurm/shard-2.db"), F_OK) != 0);
    CHECK_EQ_INT(run_task(dir, 2), 0);
    CHECK_EQ_INT(run_task(dir, 3), 0);
    /* every shard ok, the merge job (106) never ran: a merge job alone */
    CHECK_EQ_INT(RUN(&out, &err, "run --slurm-resume %s", dir), 0);
    CHECK_CONTAINS(out, "every shard is ok, not every one merged: merge job 107\n");
    CHECK_CONTAINS(line(calls(), 7), "--job-name=moebench-flaky-merge");
    CHECK(!strstr(line(calls(), 7), "--dependency"));
    CHECK_EQ_STR(line(calls(), 8), "");
    CHECK_EQ_INT(RUN(&out, NULL, "merge --slurm %s", dir), 0);
    CHECK_CONTAINS(out, "2 runs added (2 experiments)");
    CHECK_EQ_STR(tu_q1(db, "select group_concat(name) from (select name from experiment order"
                        " by name)"), "a,b,c");
    /* merging again adds nothing; nothing left to resume */
    CHECK_EQ_INT(RUN(&out, NULL, "merge --slurm %s", dir), 0);
    CHECK_CONTAINS(out, "0 runs added");
    CHECK_EQ_INT(RUN(&out, NULL, "run --slurm-resume %s", dir), 0);
    CHECK_CONTAINS(out, "nothing to resubmit");
    CHECK_EQ_INT(RUN(&out, NULL, "run --slurm-status %s", dir), 0);
}

TEST(failed_sbatch_cancels_and_leaves_no_submission)
{
    const char *suite = suite_file();
    char *out, *err;
    fake_slurm();
    tst_write_file(tst_path("bin/fail.102"), "", 0); /* the array's sbatch fails */
    CHECK_EQ_INT(RUN(&out, &err, "run %s --slurm --db o.db", suite), 1);
    CHECK_CONTAINS(err, "sbatch");
    CHECK_CONTAINS(err, "shard.sh failed (exit 1)");
    CHECK_CONTAINS(calls(), "scancel 101\n");
    CHECK(access(tst_path("o.slurm/job.json"), F_OK) != 0);
    unlink(tst_path("bin/fail.102"));
    CHECK_EQ_INT(RUN(&out, &err, "run %s --slurm --db o.db", suite), 0); /* again: fine */
    CHECK_CONTAINS(out, "prepare job 102, array job 103, merge job 104");
    /* no sbatch at all */
    CHECK_EQ_INT(tst_sh(NULL, &err, "cd %s && PATH=/nonexistent %s run %s --slurm --db p.db",
                        tst_tmpdir(), tu_mb(), suite), 1);
    CHECK_CONTAINS(err, "sbatch not found on PATH");
}

TEST(prepare_and_shard_auto)
{
    const char *suite = suite_file();
    char *out, *err;
    CHECK_EQ_INT(RUN(&out, &err, "run %s --prepare --db p.db", suite), 0);
    CHECK_CONTAINS(out, "3 of 3 experiments selected");
    CHECK_CONTAINS(out, "nothing run, nothing stored");
    CHECK(access(tst_path("p.db"), F_OK) != 0);
    CHECK_EQ_INT(tst_sh(&out, &err, "cd %s && " NOSLURM "SLURM_JOB_ID=9 SLURM_ARRAY_TASK_ID=11"
                        " SLURM_ARRAY_TASK_MIN=10 SLURM_ARRAY_TASK_MAX=12"
                        " SLURM_ARRAY_TASK_COUNT=3 %s run %s --shard auto --db a.db",
                        tst_tmpdir(), tu_mb(), suite), 0);
    CHECK_EQ_STR(tu_q1(tst_path("a.db"), "select json_extract(cli, '$.shard_i') || '/' ||"
                 " json_extract(cli, '$.shard_n') || ' ' || json_extract(cli, '$.slurm.job_id')"
                 " || ' ' || (select name from experiment) from run"), "2/3 9 b");
}
