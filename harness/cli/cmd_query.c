/*
 * cmd_query.c — `moebench query [--db F] [--csv|--json] SQL`: read-only SQL
 * on the results database.
 *
 * The database is opened with SQLITE_OPEN_READONLY and PRAGMA query_only,
 * and every statement is checked with sqlite3_stmt_readonly before it
 * runs, so a write is refused with a message before anything happens.
 * Rows are buffered to align the table output (columns other than the
 * last are cut at 60 characters); CSV follows RFC 4180.
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "harness/db/db.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench query [--db FILE] [--csv | --json] SQL\n\n"
    "Runs read-only SQL on the results database and prints the rows: an aligned\n"
    "table (default), CSV with a header line, or a JSON array of objects (one\n"
    "array per statement).\n"
    "Statements that would write are refused. Tables and views: docs/database.md;\n"
    "e.g. moebench query \"select * from experiment_wide where run_id =\n"
    "(select max(id) from run)\".\n\n"
    "  --db FILE   database (default results/moebench.db)\n"
    "  --csv       CSV output\n"
    "  --json      JSON output\n"
    "  -h, --help  this text\n";


static int run_sql(sqlite3 *db, const char *sql, int mode)
{
    int rc = HX_CLI_EXIT_OK;
    eng_err err = {0};
    while (!rc && sql && *sql) {
        sqlite3_stmt *st = NULL;
        const char *tail;
        if (sqlite3_prepare_v2(db, sql, -1, &st, &tail) != SQLITE_OK) {
            rc = hx_cli_fail("query", ENG_EINVAL, "%s", sqlite3_errmsg(db));
            break;
        }
        if (st && !sqlite3_stmt_readonly(st))
            rc = hx_cli_fail("query", ENG_EINVAL, "refused: '%.*s' would write; query is "
                         "read-only", (int)(tail - sql), sql);
        else if (st && (rc = hx_db_query_print(stdout, db, st, mode, &err)))
            rc = hx_cli_fail("query", rc, "%s", err.msg);
        sqlite3_finalize(st);
        sql = tail;
    }
    return rc;
}

int hx_cli_cmd_query(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'}, {"csv", no_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *path = "results/moebench.db";
    int mode = HX_DB_OUT_TABLE, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': path = optarg; break;
        case 'c': mode = HX_DB_OUT_CSV; break;
        case 'j': mode = HX_DB_OUT_JSON; break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("query", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return hx_cli_usage_error("query", optind == argc ? "no SQL given"
                                                      : "give the SQL as one argument");
    hx_db *db;
    eng_err err = {0};
    int rc = hx_db_open(&db, path, HX_DB_READONLY, &err);
    if (rc)
        return hx_cli_fail("query", rc, "%s", err.msg);
    rc = run_sql(hx_db_sqlite(db), argv[optind], mode);
    hx_db_close(db);
    return rc;
}
