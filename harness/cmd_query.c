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
#include "harness/cli.h"
#include "harness/commands.h"
#include "harness/db.h"
#include "harness/query.h"

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


typedef struct rows {
    char **cell;        /* [nrows][ncols], row 0 = column names */
    int ncols;
    size_t nrows, cap;
} rows;

static char *cell_text(sqlite3_stmt *st, int c)
{
    if (sqlite3_column_type(st, c) == SQLITE_NULL)
        return strdup("");
    if (sqlite3_column_type(st, c) == SQLITE_FLOAT) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.10g", sqlite3_column_double(st, c));
        return strdup(buf);
    }
    const unsigned char *t = sqlite3_column_text(st, c);
    return strdup(t ? (const char *)t : "");
}

static int add_row(rows *r, sqlite3_stmt *st, int header)
{
    if (r->nrows == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        char **p = realloc(r->cell, r->cap * (size_t)r->ncols * sizeof *p);
        if (!p)
            return -1;
        r->cell = p;
    }
    for (int c = 0; c < r->ncols; c++)
        r->cell[r->nrows * (size_t)r->ncols + (size_t)c] =
            header ? strdup(sqlite3_column_name(st, c)) : cell_text(st, c);
    r->nrows++;
    return 0;
}

static void print_table(const rows *r)
{
    int *w = calloc((size_t)r->ncols, sizeof *w);
    for (size_t i = 0; i < r->nrows; i++)
        for (int c = 0; c < r->ncols; c++) {
            int len = (int)strlen(r->cell[i * (size_t)r->ncols + (size_t)c]);
            w[c] = len > w[c] ? (len > 60 ? 60 : len) : w[c];
        }
    for (size_t i = 0; i < r->nrows; i++) {
        for (int c = 0; c < r->ncols; c++)
            printf("%s%-*.*s", c ? "  " : "", c + 1 < r->ncols ? w[c] : 0,
                   c + 1 < r->ncols ? 60 : INT_MAX, r->cell[i * (size_t)r->ncols + (size_t)c]);
        printf("\n");
    }
    free(w);
}

static void csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void print_csv(const rows *r)
{
    for (size_t i = 0; i < r->nrows; i++) {
        for (int c = 0; c < r->ncols; c++) {
            if (c)
                putchar(',');
            csv_field(r->cell[i * (size_t)r->ncols + (size_t)c]);
        }
        printf("\r\n");
    }
}

static json_t *json_cell(sqlite3_stmt *st, int c)
{
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, c));
    case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, c));
    case SQLITE_NULL: return json_null();
    default: return json_string((const char *)sqlite3_column_text(st, c));
    }
}

static void free_rows(rows *r)
{
    for (size_t i = 0; i < r->nrows * (size_t)r->ncols; i++)
        free(r->cell[i]);
    free(r->cell);
    memset(r, 0, sizeof *r);
}

int hx_query_print(const char *cmd, sqlite3 *db, sqlite3_stmt *st, int mode)
{
    json_t *out_json = json_array();
    rows r = {.ncols = sqlite3_column_count(st)};
    if (r.ncols && mode != HX_OUT_JSON)
        add_row(&r, st, 1);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (mode == HX_OUT_JSON) {
            json_t *o = json_object();
            for (int c = 0; c < r.ncols; c++)
                json_object_set_new(o, sqlite3_column_name(st, c), json_cell(st, c));
            json_array_append_new(out_json, o);
        } else if (add_row(&r, st, 0)) {
            s = SQLITE_NOMEM;
            break;
        }
    }
    if (s == SQLITE_DONE && r.ncols)
        mode == HX_OUT_CSV ? print_csv(&r) : mode == HX_OUT_TABLE ? print_table(&r) : (void)0;
    free_rows(&r);
    if (s == SQLITE_DONE && mode == HX_OUT_JSON) {
        json_dumpf(out_json, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        putchar('\n');
    }
    json_decref(out_json);
    if (s != SQLITE_DONE)
        return hx_fail(cmd, ENG_EINVAL, "%s", sqlite3_errmsg(db));
    return HX_EXIT_OK;
}

static int run_sql(sqlite3 *db, const char *sql, int mode)
{
    int rc = HX_EXIT_OK;
    while (!rc && sql && *sql) {
        sqlite3_stmt *st = NULL;
        const char *tail;
        if (sqlite3_prepare_v2(db, sql, -1, &st, &tail) != SQLITE_OK) {
            rc = hx_fail("query", ENG_EINVAL, "%s", sqlite3_errmsg(db));
            break;
        }
        if (st && !sqlite3_stmt_readonly(st))
            rc = hx_fail("query", ENG_EINVAL, "refused: '%.*s' would write; query is "
                         "read-only", (int)(tail - sql), sql);
        else if (st)
            rc = hx_query_print("query", db, st, mode);
        sqlite3_finalize(st);
        sql = tail;
    }
    return rc;
}

int hx_cmd_query(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'}, {"csv", no_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *path = "results/moebench.db";
    int mode = HX_OUT_TABLE, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': path = optarg; break;
        case 'c': mode = HX_OUT_CSV; break;
        case 'j': mode = HX_OUT_JSON; break;
        case 'h': fputs(usage_text, stdout); return HX_EXIT_OK;
        default: return hx_usage_error("query", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return hx_usage_error("query", optind == argc ? "no SQL given"
                                                      : "give the SQL as one argument");
    hx_db *db;
    eng_err err = {0};
    int rc = hx_db_open(&db, path, HX_DB_READONLY, &err);
    if (rc)
        return hx_fail("query", rc, "%s", err.msg);
    rc = run_sql(hx_db_sqlite(db), argv[optind], mode);
    hx_db_close(db);
    return rc;
}
