/*
 * util.c — shared test helpers. See util.h.
 */
#include "tests/util/util.h"
#include "tests/test.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *tu_root(void)
{
    char *c = tst_alloc(4096);
    REQUIRE(getcwd(c, 4096));
    return c;
}

const char *tu_mb(void)
{
    const char *m = tst_moebench();
    if (m[0] == '/')
        return m;
    size_t n = strlen(tu_root()) + strlen(m) + 2;
    char *p = tst_alloc(n);
    snprintf(p, n, "%s/%s", tu_root(), m);
    return p;
}

const char *tu_write_text(const char *name, const char *text)
{
    const char *p = tst_path(name);
    tst_write_file(p, text, strlen(text));
    return p;
}

json_t *tu_sh_json(const char *fmt, ...)
{
    char cmd[16384], *out, *err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = tst_sh(&out, &err, "%s", cmd);
    REQUIRE_MSG(st == 0, "%s: exit %d: %s", cmd, st, err);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    REQUIRE_MSG(j, "%s: not JSON (%s): %.300s", cmd, je.text, out);
    return j;
}

void tu_sql(const char *db, const char *sql)
{
    sqlite3 *s;
    REQUIRE_MSG(sqlite3_open(db, &s) == SQLITE_OK, "open %s", db);
    char *e = NULL;
    int rc = sqlite3_exec(s, sql, NULL, NULL, &e);
    REQUIRE_MSG(rc == SQLITE_OK, "%s: %s", sql, e ? e : "?");
    sqlite3_close(s);
}

char *tu_q1(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    char *out = tst_alloc(4096);
    snprintf(out, 4096, "(error: cannot open %s)", db);
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(h, 2000);
        if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
            snprintf(out, 4096, "(error: %s)", sqlite3_errmsg(h));
        else if (sqlite3_step(st) != SQLITE_ROW)
            out[0] = '\0';
        else if (sqlite3_column_type(st, 0) == SQLITE_FLOAT)
            snprintf(out, 4096, "%.10g", sqlite3_column_double(st, 0));
        else if (sqlite3_column_text(st, 0)) {
            out = tst_alloc((size_t)sqlite3_column_bytes(st, 0) + 1);
            strcpy(out, (const char *)sqlite3_column_text(st, 0));
        } else {
            out[0] = '\0';
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return out;
}
