/*
 * cmd_runs.c — `moebench runs [--db F] [-n N]`: the most recent runs, one
 * line each (from the run_overview view).
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "harness/db/db.h"

#include <getopt.h>
#include <stdio.h>

static const char usage_text[] =
    "usage: moebench runs [--db FILE] [-n N] [--csv | --json]\n\n"
    "Lists the most recent runs of the results database, newest first: id, uuid,\n"
    "suite, start and end times, status, experiments (failed), commit, host.\n\n"
    "  --db FILE   database (default results/moebench.db)\n"
    "  -n N        how many runs (default 20)\n"
    "  --csv       CSV output\n"
    "  --json      JSON output\n"
    "  -h, --help  this text\n";

int hx_cli_cmd_runs(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'}, {"csv", no_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *path = "results/moebench.db";
    int mode = HX_DB_OUT_TABLE, n = 20, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+hn:", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': path = optarg; break;
        case 'c': mode = HX_DB_OUT_CSV; break;
        case 'j': mode = HX_DB_OUT_JSON; break;
        case 'n':
            if (hx_cli_parse_int("runs", "-n", optarg, 1, 1000000, &n))
                return HX_CLI_EXIT_USAGE;
            break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("runs", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hx_cli_usage_error("runs", "unexpected argument '%s'", argv[optind]);
    hx_db *db;
    eng_err err = {0};
    int rc = hx_db_open(&db, path, HX_DB_READONLY, &err);
    if (rc)
        return hx_cli_fail("runs", rc, "%s", err.msg);
    sqlite3_stmt *st;
    sqlite3 *s = hx_db_sqlite(db);
    if (sqlite3_prepare_v2(s, "SELECT id, uuid, suite, started_at, finished_at, status,"
                              " experiments, failed, commit_hash AS \"commit\", hostname"
                              " FROM run_overview ORDER BY started_at DESC, id DESC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = hx_cli_fail("runs", ENG_EFORMAT, "%s: %s", path, sqlite3_errmsg(s));
    } else {
        sqlite3_bind_int(st, 1, n);
        if ((rc = hx_db_query_print(stdout, s, st, mode, &err)))
            rc = hx_cli_fail("runs", rc, "%s", err.msg);
    }
    sqlite3_finalize(st);
    hx_db_close(db);
    return rc;
}
