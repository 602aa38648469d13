/*
 * cmd_merge.c — `moebench merge OUT IN...`: combines results databases
 * (shards of one suite, runs from several machines) into OUT. Runs are
 * identified by UUID, so a run OUT already holds is skipped: merging the
 * same file twice adds nothing. See hx_db_merge. `--slurm DIR` is the
 * merge job of a Slurm submission (harness/suite/suite.h).
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "harness/db/db.h"
#include "harness/suite/suite.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench merge OUT IN...\n"
    "       moebench merge --slurm DIR\n\n"
    "Copies every run of each IN database that OUT does not hold yet (by run\n"
    "UUID) into OUT, with all its experiments, samples, series, summaries,\n"
    "counters, cache statistics and routing metrics; OUT is created when\n"
    "missing. One transaction per IN file. Merging twice adds nothing.\n\n"
    "  --slurm DIR  the merge job of `moebench run --slurm`: merges each shard of\n"
    "               job folder DIR that ended ok into the database its job.json\n"
    "               names, prints every shard's state and where it ran; exit 1\n"
    "               when a shard is not ok (moebench run --slurm-resume DIR)\n"
    "  -h, --help   this text\n";

static int merge_slurm(const char *dir)
{
    eng_err err = {0};
    int bad = 0;
    int rc = hx_suite_slurm_merge(dir, &bad, &err);
    if (rc)
        return hx_cli_fail("merge", rc, "%s", err.msg);
    return bad ? HX_CLI_EXIT_FAIL : HX_CLI_EXIT_OK;
}

int hx_cli_cmd_merge(int argc, char **argv)
{
    static const struct option longopts[] = {{"help", no_argument, 0, 'h'},
                                             {"slurm", required_argument, 0, 'L'},
                                             {0, 0, 0, 0}};
    const char *slurm_dir = NULL;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return HX_CLI_EXIT_OK;
        }
        if (c != 'L')
            return hx_cli_usage_error("merge", "unknown option or missing value '%s'",
                                  argv[optind - 1]);
        slurm_dir = optarg;
    }
    if (slurm_dir && optind < argc)
        return hx_cli_usage_error("merge", "--slurm DIR takes no other argument");
    if (slurm_dir)
        return merge_slurm(slurm_dir);
    if (argc - optind < 2)
        return hx_cli_usage_error("merge", "give OUT and at least one IN database");
    const char *out = argv[optind];
    for (int i = optind + 1; i < argc; i++)
        if (!strcmp(argv[i], out))
            return hx_cli_usage_error("merge", "'%s' is both OUT and IN", out);
    for (int i = optind + 1; i < argc; i++)
        if (hx_cli_input("merge", NULL, argv[i]))
            return HX_CLI_EXIT_USAGE;
    hx_db *db;
    eng_err err = {0};
    int rc = hx_db_open(&db, out, HX_DB_CREATE, &err);
    if (rc)
        return hx_cli_fail("merge", rc, "%s", err.msg);
    hx_db_merge_stats st = {0};
    for (int i = optind + 1; !rc && i < argc; i++)
        rc = hx_db_merge(db, argv[i], &st, &err);
    hx_db_close(db);
    if (rc)
        return hx_cli_fail("merge", rc, "%s", err.msg);
    printf("merged into %s: %lld runs added (%lld experiments), %lld already present\n", out,
           (long long)st.runs_added, (long long)st.experiments_added,
           (long long)st.runs_skipped);
    return HX_CLI_EXIT_OK;
}
