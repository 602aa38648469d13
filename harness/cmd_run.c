/*
 * cmd_run.c — `moebench run SUITE.lua [options]`: loads a Lua suite and
 * runs its experiments into the results database (harness/runner.h).
 */
#include "harness/cli.h"
#include "harness/commands.h"
#include "harness/datadir.h"
#include "harness/runner.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: moebench run SUITE.lua [options]\n\n"
    "Runs the experiments a Lua suite declares and stores every repetition,\n"
    "the summaries and the environment in an SQLite database (docs/suites.md).\n"
    "SUITE may name a shipped suite (ci, quickstart, ...) when no such file is\n"
    "in the current folder.\n\n"
    "  --db FILE          results database (default results/moebench.db)\n"
    "  -D NAME=VALUE      set a suite option (repeatable; --help-suite lists them)\n"
    "  --help-suite       print the suite's description and options, run nothing\n"
    "  --dry-run          list the selected experiments with their parameters\n"
    "  --filter PATTERN   only experiments whose label ('name k=v ...') contains\n"
    "                     PATTERN, or matches it as a glob when it has * ? [\n"
    "  --quick            smaller sizes (the suite sees opts.quick = true)\n"
    "  --shard I/N        run only the I-th of N deterministic slices (1 <= I <= N)\n"
    "  --seed N           seed for the interleaving and ctx.seed (default 1)\n"
    "  --interleave       run repetitions in rounds, experiments shuffled per round\n"
    "  --fail-fast        stop at the first failed experiment\n"
    "  --reps N           override every experiment's repetitions\n"
    "  --warmup N         override every experiment's warm-up runs\n"
    "  --timeout SECONDS  limit per repetition of lua and command experiments\n"
    "  -q, --quiet        no progress line\n"
    "  -h, --help         this text\n\n"
    "Exit status: 0 all experiments ok, 1 an experiment failed or the run was\n"
    "interrupted, 2 bad usage or a bad suite (the message names file:line).\n";

static int parse_define(json_t *defs, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return hx_usage_error("run", "-D %s: expected NAME=VALUE", arg);
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
    json_object_set_new(defs, name, json_string(eq + 1));
    return 0;
}

static int parse_shard(const char *v, hx_run_opts *o)
{
    char extra;
    if (sscanf(v, "%d/%d%c", &o->shard_i, &o->shard_n, &extra) != 2 || o->shard_n < 1 ||
        o->shard_i < 1 || o->shard_i > o->shard_n)
        return hx_usage_error("run", "--shard %s: expected I/N with 1 <= I <= N", v);
    return 0;
}

static int parse_opt(int c, hx_run_opts *o, json_t *defs, int *help_suite)
{
    int64_t v;
    switch (c) {
    case 'd': o->db_path = optarg; return 0;
    case 'D': return parse_define(defs, optarg);
    case 'H': *help_suite = 1; return 0;
    case 'n': o->dry_run = 1; return 0;
    case 'f': o->filter = optarg; return 0;
    case 'k': o->quick = 1; return 0;
    case 's': return parse_shard(optarg, o);
    case 'S':
        if (hx_parse_i64("run", "--seed", optarg, 0, INT64_MAX, &v))
            return HX_EXIT_USAGE;
        o->seed = (uint64_t)v;
        return 0;
    case 'i': o->interleave = 1; return 0;
    case 'F': o->fail_fast = 1; return 0;
    case 'r': return hx_parse_int("run", "--reps", optarg, 1, 100000, &o->reps);
    case 'w': return hx_parse_int("run", "--warmup", optarg, 0, 1000, &o->warmup);
    case 't': return hx_parse_double("run", "--timeout", optarg, 0.001, 1e7, &o->timeout_s);
    case 'q': o->quiet = 1; return 0;
    default: return hx_usage_error("run", "unknown option '%s'", optarg ? optarg : "?");
    }
}

/* SUITE as given, or a shipped suite by name (`moebench run ci`) when no
 * such file is here: an installed moebench runs suites from any folder. */
static const char *suite_path(const char *arg, char *buf, size_t cap)
{
    if (hx_datadir_suite(arg, buf, cap) || strchr(arg, '/'))
        return buf;
    char dir[4096];
    if (hx_datadir_find(HX_DATADIR_SUITES, dir, sizeof dir))
        fprintf(stderr, "moebench run: no file '%s' here, nor a suite of that name in %s\n",
                arg, dir);
    return buf;
}

static int run_suite(const char *arg, hx_run_opts *o, int help_suite)
{
    char path[4096];
    const char *file = suite_path(arg, path, sizeof path);
    eng_err err = {0};
    if (help_suite) {
        int rc = hx_runner_help_suite(file, o, &err);
        return rc ? hx_fail("run", rc, "%s", err.msg) : HX_EXIT_OK;
    }
    hx_run_outcome out;
    int rc = hx_runner_run(file, o, &out, &err);
    if (rc)
        return hx_fail("run", rc, "%s", err.msg);
    if (out.interrupted) {
        fprintf(stderr, "moebench run: interrupted; finished experiments are stored\n");
        return HX_EXIT_FAIL;
    }
    return out.failed ? HX_EXIT_FAIL : HX_EXIT_OK;
}

int hx_cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},      {"help-suite", no_argument, 0, 'H'},
        {"dry-run", no_argument, 0, 'n'},       {"filter", required_argument, 0, 'f'},
        {"quick", no_argument, 0, 'k'},         {"shard", required_argument, 0, 's'},
        {"seed", required_argument, 0, 'S'},    {"interleave", no_argument, 0, 'i'},
        {"fail-fast", no_argument, 0, 'F'},     {"reps", required_argument, 0, 'r'},
        {"warmup", required_argument, 0, 'w'},  {"timeout", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    hx_run_opts o = {.db_path = "results/moebench.db", .seed = 1, .reps = -1, .warmup = -1,
                     .self_exe = self, .argc = argc, .argv = argv};
    json_t *defs = json_object();
    const char *file = NULL;
    int help_suite = 0, rc = 0, c;
    opterr = 0;
    optind = 1;
    while (!rc && optind < argc) {
        c = getopt_long(argc, argv, "+hD:q", longopts, NULL);
        if (c == -1) {
            if (file)
                rc = hx_usage_error("run", "unexpected argument '%s'", argv[optind]);
            file = argv[optind++];
        } else if (c == 'h') {
            fputs(usage_text, stdout);
            json_decref(defs);
            return HX_EXIT_OK;
        } else if (c == '?' || c == ':') {
            rc = hx_usage_error("run", "unknown option or missing value '%s'", argv[optind - 1]);
        } else {
            rc = parse_opt(c, &o, defs, &help_suite);
        }
    }
    if (!rc && !file)
        rc = hx_usage_error("run", "no suite file given");
    o.defines = defs;
    if (!rc)
        rc = run_suite(file, &o, help_suite);
    json_decref(defs);
    return rc;
}
