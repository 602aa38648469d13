/*
 * query.c — printing query results, shared by `moebench query`, `runs`
 * and `export`: an aligned table (columns other than the last cut at 60
 * characters; rows are buffered to align them), CSV (RFC 4180, header
 * line) or a JSON array of objects (numbers stay numbers, NULL null).
 */
#include "harness/db/db.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void print_table(FILE *f, const rows *r)
{
    int *w = calloc((size_t)r->ncols, sizeof *w);
    for (size_t i = 0; i < r->nrows; i++)
        for (int c = 0; c < r->ncols; c++) {
            int len = (int)strlen(r->cell[i * (size_t)r->ncols + (size_t)c]);
            w[c] = len > w[c] ? (len > 60 ? 60 : len) : w[c];
        }
    for (size_t i = 0; i < r->nrows; i++) {
        for (int c = 0; c < r->ncols; c++)
            fprintf(f, "%s%-*.*s", c ? "  " : "", c + 1 < r->ncols ? w[c] : 0,
                   c + 1 < r->ncols ? 60 : INT_MAX, r->cell[i * (size_t)r->ncols + (size_t)c]);
        fputc('\n', f);
    }
    free(w);
}

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void print_csv(FILE *f, const rows *r)
{
    for (size_t i = 0; i < r->nrows; i++) {
        for (int c = 0; c < r->ncols; c++) {
            if (c)
                fputc(',', f);
            csv_field(f, r->cell[i * (size_t)r->ncols + (size_t)c]);
        }
        fputs("\r\n", f);
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

int hx_db_query_print(FILE *f, sqlite3 *db, sqlite3_stmt *st, int mode, eng_err *err)
{
    json_t *out_json = json_array();
    rows r = {.ncols = sqlite3_column_count(st)};
    if (r.ncols && mode != HX_DB_OUT_JSON)
        add_row(&r, st, 1);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (mode == HX_DB_OUT_JSON) {
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
        mode == HX_DB_OUT_CSV ? print_csv(f, &r) : mode == HX_DB_OUT_TABLE ? print_table(f, &r) : (void)0;
    free_rows(&r);
    if (s == SQLITE_DONE && mode == HX_DB_OUT_JSON) {
        json_dumpf(out_json, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', f);
    }
    json_decref(out_json);
    if (s != SQLITE_DONE)
        return eng_err_set(err, ENG_EINVAL, "%s", sqlite3_errmsg(db));
    return ferror(f) ? eng_err_set(err, ENG_EIO, "writing the rows failed") : ENG_OK;
}

