/*
 * query.h — printing query results, shared by `moebench query`, `runs`
 * and `export`: an aligned table, CSV (RFC 4180, header line) or a JSON
 * array of objects (numbers stay numbers, NULL becomes null).
 */
#ifndef HX_QUERY_H
#define HX_QUERY_H

#include <sqlite3.h>

enum { HX_OUT_TABLE, HX_OUT_CSV, HX_OUT_JSON };

/* Steps st to the end and prints its rows on stdout; on an SQLite error
 * prints "moebench CMD: message" and returns the exit code (2). */
int hx_query_print(const char *cmd, sqlite3 *db, sqlite3_stmt *st, int mode);

#endif
