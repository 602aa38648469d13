/*
 * cmd_run.c — `moebench run SUITE.lua [options]`: loads a Lua suite and
 * runs its experiments into the results database (harness/suite/suite.h).
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "harness/suite/suite.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: moebench run SUITE.lua [options]\n"
    "       moebench run SUITE.lua --slurm [--tasks N] [--sbatch-args \"...\"] [options]\n"
    "       moebench run (--slurm-resume | --slurm-status) DIR [--sbatch-args \"...\"]\n\n"
    "Runs the experiments a Lua suite declares and stores every repetition,\n"
    "the summaries and the environment in an SQLite database (docs/suites.md).\n"
    "SUITE may name a shipped suite (ci, quickstart, ...) when no such file is\n"
    "in the current folder.\n\n"
    "  --db FILE          results database (default results/moebench.db)\n"
    "  -D NAME=VALUE      set a suite option (repeatable; --help-suite lists them)\n"
    "  --help-suite       print the suite's description and options, run nothing\n"
    "  --dry-run          list the selected experiments with their parameters\n"
    "                     (with --slurm: print the scripts and sbatch commands)\n"
    "  --filter PATTERN   only experiments whose label ('name k=v ...') contains\n"
    "                     PATTERN, or matches it as a glob when it has * ? [\n"
    "  --quick            smaller sizes (the suite sees opts.quick = true)\n"
    "  --shard I/N        run only the I-th of N deterministic slices (1 <= I <= N)\n"
    "  --shard auto       I and N from a Slurm array task's SLURM_ARRAY_TASK_ID,\n"
    "                     _MIN, _MAX and _COUNT (one contiguous range of indices)\n"
    "  --prepare          load the suite, which makes the models and traces it makes\n"
    "                     on first use; run nothing, store nothing\n"
    "  --seed N           seed for the interleaving and ctx.seed (default 1)\n"
    "  --interleave       run repetitions in rounds, experiments shuffled per round\n"
    "  --fail-fast        stop at the first failed experiment\n"
    "  --reps N           override every experiment's repetitions\n"
    "  --warmup N         override every experiment's warm-up runs\n"
    "  --timeout SECONDS  limit per repetition of lua and command experiments\n"
    "  -q, --quiet        no progress line\n"
    "  -h, --help         this text\n\n"
    "On a Slurm cluster (docs/suites.md, \"Running on a cluster\"):\n"
    "  --slurm            submit the suite as a job array with sbatch: a prepare job\n"
    "                     (makes the models once), task i runs shard i into its own\n"
    "                     database, then a merge job (afterany) merges the shards\n"
    "                     that ended ok into --db and lists the others\n"
    "  --tasks N          array size (default: one task per selected experiment,\n"
    "                     at most 1000)\n"
    "  --sbatch-args S    more sbatch options for every job, split like a shell\n"
    "                     (\"--partition=cpu --time=2:00:00 --cpus-per-task=8\")\n"
    "  --slurm-dir DIR    job folder: scripts, job.json, shard databases, logs\n"
    "                     (default: the --db path with .db replaced by .slurm)\n"
    "  --slurm-resume DIR resubmit the shards of DIR that are not ok, and a merge\n"
    "  --slurm-status DIR each shard's state, where it ran, whether --db holds it\n\n"
    "Exit status: 0 all experiments ok, 1 an experiment failed or the run was\n"
    "interrupted (--slurm-status: a shard is not ok), 2 bad usage or a bad\n"
    "suite (the message names file:line).\n";

/* What the command line asks for, beyond the run options. */
typedef struct run_cli {
    hx_suite_run_opts o;
    hx_suite_slurm_opts so;
    const char *file;       /* the suite argument                          */
    const char *resume_dir; /* --slurm-resume                              */
    const char *status_dir; /* --slurm-status                              */
    int slurm, help_suite;
    json_t *defs;
} run_cli;

static int parse_define(json_t *defs, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return hx_cli_usage_error("run", "-D %s: expected NAME=VALUE", arg);
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
    json_object_set_new(defs, name, json_string(eq + 1));
    return 0;
}

static int parse_shard(const char *v, hx_suite_run_opts *o)
{
    char extra;
    if (!strcmp(v, "auto")) {
        eng_err err = {0};
        int rc = hx_suite_slurm_shard_auto(&o->shard_i, &o->shard_n, &err);
        return rc ? hx_cli_fail("run", rc, "%s", err.msg) : 0;
    }
    if (sscanf(v, "%d/%d%c", &o->shard_i, &o->shard_n, &extra) != 2 || o->shard_n < 1 ||
        o->shard_i < 1 || o->shard_i > o->shard_n)
        return hx_cli_usage_error("run", "--shard %s: expected I/N with 1 <= I <= N, or auto", v);
    return 0;
}

static int parse_slurm_opt(int c, run_cli *r)
{
    switch (c) {
    case 'L': r->slurm = 1; return 0;
    case 'T': return hx_cli_parse_int("run", "--tasks", optarg, 1, HX_SUITE_SLURM_MAX_TASKS, &r->so.tasks);
    case 'A': r->so.sbatch_args = optarg; return 0;
    case 'R': r->resume_dir = optarg; return 0;
    case 'U': r->status_dir = optarg; return 0;
    case 'Y': r->so.dir = optarg; return 0;
    default: return hx_cli_usage_error("run", "unknown option '%s'", optarg ? optarg : "?");
    }
}

static int parse_opt(int c, run_cli *r)
{
    hx_suite_run_opts *o = &r->o;
    int64_t v;
    switch (c) {
    case 'd': o->db_path = optarg; return 0;
    case 'D': return parse_define(r->defs, optarg);
    case 'H': r->help_suite = 1; return 0;
    case 'n': o->dry_run = 1; return 0;
    case 'f': o->filter = optarg; return 0;
    case 'k': o->quick = 1; return 0;
    case 's': return parse_shard(optarg, o);
    case 'P': o->prepare = 1; return 0;
    case 'S':
        if (hx_cli_parse_i64("run", "--seed", optarg, 0, INT64_MAX, &v))
            return HX_CLI_EXIT_USAGE;
        o->seed = (uint64_t)v;
        return 0;
    case 'i': o->interleave = 1; return 0;
    case 'F': o->fail_fast = 1; return 0;
    case 'r': return hx_cli_parse_int("run", "--reps", optarg, 1, 100000, &o->reps);
    case 'w': return hx_cli_parse_int("run", "--warmup", optarg, 0, 1000, &o->warmup);
    case 't': return hx_cli_parse_double("run", "--timeout", optarg, 0.001, 1e7, &o->timeout_s);
    case 'q': o->quiet = 1; return 0;
    default: return parse_slurm_opt(c, r);
    }
}

/* SUITE as given, or a shipped suite by name (`moebench run ci`) when no
 * such file is here: an installed moebench runs suites from any folder. */
static const char *suite_path(const char *arg, char *buf, size_t cap)
{
    hx_suite_datadir_suite(arg, buf, cap);
    return buf;
}

/* The suite file must exist: one line naming where it was looked for,
 * exit 2 (a wrong name, like any missing input). */
static int suite_missing(const char *arg, const char *file)
{
    if (access(file, R_OK) == 0)
        return 0;
    char dir[4096];
    if (!strchr(arg, '/') && hx_suite_datadir_find(HX_SUITE_DATADIR_SUITES, dir, sizeof dir))
        return hx_cli_fail("run", ENG_EINVAL, "no file '%s' here, nor a suite of that name in %s",
                           arg, dir);
    return hx_cli_input("run", NULL, file);
}

static int run_suite(const char *arg, hx_suite_run_opts *o, int help_suite)
{
    char path[4096];
    const char *file = suite_path(arg, path, sizeof path);
    if (suite_missing(arg, file))
        return HX_CLI_EXIT_USAGE;
    eng_err err = {0};
    if (help_suite) {
        int rc = hx_suite_runner_help_suite(file, o, &err);
        return rc ? hx_cli_fail("run", rc, "%s", err.msg) : HX_CLI_EXIT_OK;
    }
    hx_suite_run_outcome out;
    int rc = hx_suite_runner_run(file, o, &out, &err);
    if (rc)
        return hx_cli_fail("run", rc, "%s", err.msg);
    if (out.interrupted) {
        fprintf(stderr, "moebench run: interrupted; finished experiments are stored\n");
        return HX_CLI_EXIT_FAIL;
    }
    return out.failed ? HX_CLI_EXIT_FAIL : HX_CLI_EXIT_OK;
}

/* Options that make no sense together, named. */
static int check_modes(const run_cli *r)
{
    int dirs = !!r->resume_dir + !!r->status_dir;
    int slurm_only = r->so.tasks || r->so.dir || (r->so.sbatch_args && !r->resume_dir);
    if (dirs > 1 || (dirs && (r->slurm || r->file)))
        return hx_cli_usage_error("run", "--slurm-resume and --slurm-status take a job folder,"
                              " alone (no suite, no --slurm)");
    if (!dirs && !r->file)
        return hx_cli_usage_error("run", "no suite file given");
    if (slurm_only && !r->slurm)
        return hx_cli_usage_error("run", "--tasks, --sbatch-args and --slurm-dir go with --slurm");
    if (r->slurm && (r->o.shard_n || r->o.prepare || r->help_suite))
        return hx_cli_usage_error("run", "--slurm makes its own shards and prepare job: no --shard,"
                              " --prepare or --help-suite");
    if (r->o.prepare && r->o.dry_run)
        return hx_cli_usage_error("run", "--prepare makes models; --dry-run makes nothing: pick one");
    return 0;
}

static int run_slurm(run_cli *r)
{
    eng_err err = {0};
    int rc, bad = 0;
    if (r->status_dir) {
        rc = hx_suite_slurm_status(r->status_dir, &bad, &err);
    } else if (r->resume_dir) {
        r->so.dry_run = r->o.dry_run;
        rc = hx_suite_slurm_resume(r->resume_dir, &r->so, &err);
    } else {
        char path[4096];
        r->so.dry_run = r->o.dry_run;
        rc = hx_suite_slurm_submit(suite_path(r->file, path, sizeof path), &r->o, &r->so, &err);
    }
    if (rc)
        return hx_cli_fail("run", rc, "%s", err.msg);
    return bad ? HX_CLI_EXIT_FAIL : HX_CLI_EXIT_OK;
}

static int parse_args(int argc, char **argv, run_cli *r)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},      {"help-suite", no_argument, 0, 'H'},
        {"dry-run", no_argument, 0, 'n'},       {"filter", required_argument, 0, 'f'},
        {"quick", no_argument, 0, 'k'},         {"shard", required_argument, 0, 's'},
        {"seed", required_argument, 0, 'S'},    {"interleave", no_argument, 0, 'i'},
        {"fail-fast", no_argument, 0, 'F'},     {"reps", required_argument, 0, 'r'},
        {"warmup", required_argument, 0, 'w'},  {"timeout", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"prepare", no_argument, 0, 'P'},       {"slurm", no_argument, 0, 'L'},
        {"tasks", required_argument, 0, 'T'},   {"sbatch-args", required_argument, 0, 'A'},
        {"slurm-dir", required_argument, 0, 'Y'},
        {"slurm-resume", required_argument, 0, 'R'},
        {"slurm-status", required_argument, 0, 'U'},
        {0, 0, 0, 0},
    };
    int rc = 0, c;
    opterr = 0;
    optind = 1;
    while (!rc && optind < argc) {
        c = getopt_long(argc, argv, "+hD:q", longopts, NULL);
        if (c == -1) {
            if (r->file)
                rc = hx_cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
            r->file = argv[optind++];
        } else if (c == 'h') {
            fputs(usage_text, stdout);
            return -1;
        } else if (c == '?' || c == ':') {
            rc = hx_cli_usage_error("run", "unknown option or missing value '%s'", argv[optind - 1]);
        } else {
            rc = parse_opt(c, r);
        }
    }
    return rc ? rc : check_modes(r);
}

int hx_cli_cmd_run(int argc, char **argv)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    run_cli r = {.o = {.db_path = "results/moebench.db", .seed = 1, .reps = -1, .warmup = -1,
                       .self_exe = self, .argc = argc, .argv = argv},
                 .defs = json_object()};
    r.o.defines = r.defs;
    int rc = parse_args(argc, argv, &r);
    if (rc < 0)
        rc = HX_CLI_EXIT_OK; /* --help */
    else if (!rc && (r.slurm || r.resume_dir || r.status_dir))
        rc = run_slurm(&r);
    else if (!rc)
        rc = run_suite(r.file, &r.o, r.help_suite);
    json_decref(r.defs);
    return rc;
}
