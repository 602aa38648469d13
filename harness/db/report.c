/*
 * report.c — one run as a readable document (`moebench report`): its
 * header (suite, times, machine, build), a table of experiments with their
 * main metrics, and when the run has them a policy x cache-size section
 * (policy_cache view), a speed-vs-quality section (perplexity experiments
 * that name a policy) and a routing-consistency section (routing_metric,
 * model-wide rows), each with SVG line charts (report_svg.c).
 *
 * One writer serves both formats: a `doc` holds the format and the
 * stream, and every piece of text from the database goes through esc()
 * (Markdown: backslash before the characters that would change a table
 * or start markup; HTML: entities). Numbers we format ourselves are
 * written as they are. Markdown charts are files beside the document
 * (BASE-NAME.svg), linked by their base name; HTML embeds them inline.
 */
#include "harness/db/db.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct doc {
    FILE *f;
    int html;
    sqlite3 *db;
    int64_t run;
    char base[1024];     /* OUT without .md: chart files are BASE-NAME.svg; "" on stdout */
    int skipped_charts;  /* Markdown on stdout: charts left out          */
    int io_error;        /* a chart file could not be written            */
    eng_err *err;        /* the first failure                            */
} doc;

/* The code of the failure already recorded on d->err, or out of memory
 * (the only failure that records nothing: the series tables' growth). */
static int d_fail(doc *d)
{
    return d->err->code ? d->err->code : eng_err_set(d->err, ENG_ENOMEM, "report: out of memory");
}

static void esc(doc *d, const char *s)
{
    if (d->html) {
        hx_db_svg_escape(d->f, s);
        return;
    }
    for (; s && *s; s++) {
        if (*s == '\n' || *s == '\r' || *s == '\t')
            fputc(' ', d->f);
        else if (strchr("\\|*_`[]<>#!&", *s))
            fprintf(d->f, "\\%c", *s);
        else
            fputc(*s, d->f);
    }
}

static void heading(doc *d, int level, const char *text)
{
    if (d->html) {
        fprintf(d->f, "<h%d>", level);
        esc(d, text);
        fprintf(d->f, "</h%d>\n", level);
    } else {
        fprintf(d->f, "\n%.*s ", level, "######");
        esc(d, text);
        fputs("\n\n", d->f);
    }
}

static void para(doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void para(doc *d, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fputs(d->html ? "<p>" : "", d->f);
    esc(d, buf);
    fputs(d->html ? "</p>\n" : "\n\n", d->f);
}

/* ---- tables: cells are text (escaped) ---- */

static void tbl_head(doc *d, const char *const *cols, int n)
{
    fputs(d->html ? "<table>\n<thead><tr>" : "|", d->f);
    for (int i = 0; i < n; i++) {
        fputs(d->html ? "<th>" : " ", d->f);
        esc(d, cols[i]);
        fputs(d->html ? "</th>" : " |", d->f);
    }
    if (d->html) {
        fputs("</tr></thead>\n<tbody>\n", d->f);
        return;
    }
    fputs("\n|", d->f);
    for (int i = 0; i < n; i++)
        fputs(" --- |", d->f);
    fputc('\n', d->f);
}

static void tbl_row(doc *d, char *const *cells, int n)
{
    fputs(d->html ? "<tr>" : "|", d->f);
    for (int i = 0; i < n; i++) {
        fputs(d->html ? "<td>" : " ", d->f);
        esc(d, cells[i] ? cells[i] : "");
        fputs(d->html ? "</td>" : " |", d->f);
    }
    fputs(d->html ? "</tr>\n" : "\n", d->f);
}

static void tbl_end(doc *d) { fputs(d->html ? "</tbody>\n</table>\n" : "\n", d->f); }

/* ---- charts ---- */

static void chart(doc *d, const char *name, const hx_db_svg_chart *c)
{
    if (d->html) {
        fputs("<div class=\"chart\">\n", d->f);
        hx_db_svg_write(d->f, c);
        fputs("</div>\n", d->f);
        return;
    }
    if (!d->base[0]) {
        d->skipped_charts++;
        return;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s-%s.svg", d->base, name);
    FILE *f = fopen(path, "w");
    if (f)
        hx_db_svg_write(f, c);
    if (!f || fclose(f) != 0) {
        if (!d->io_error)
            eng_err_set(d->err, ENG_EIO, "cannot write %s: %s", path, strerror(errno));
        d->io_error = 1;
        return;
    }
    const char *slash = strrchr(path, '/'), *file = slash ? slash + 1 : path;
    int angle = strpbrk(file, " ()") != NULL; /* CommonMark: <...> keeps them in the link */
    fputs("![", d->f);
    esc(d, c->title);
    fprintf(d->f, "](%s%s%s)\n\n", angle ? "<" : "", file, angle ? ">" : "");
}

/* ---- queries ---- */

static sqlite3_stmt *query(doc *d, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) {
        eng_err_set(d->err, ENG_EIO, "%s", sqlite3_errmsg(d->db));
        return NULL;
    }
    sqlite3_bind_int64(st, 1, d->run);
    return st;
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static const char header_sql[] =
    "SELECT r.suite, r.uuid, r.status, r.started_at, coalesce(r.finished_at, '-'), r.file,"
    " m.hostname, m.cpu_model, m.cores, CASE m.pmu_available WHEN 1 THEN 'yes' WHEN 0 THEN"
    " 'no' END, b.version, b.commit_hash, CASE b.dirty WHEN 1 THEN 'yes' WHEN 0 THEN 'no' END,"
    " (SELECT count(*) FROM experiment e WHERE e.run_id = r.id),"
    " (SELECT count(*) FROM experiment e WHERE e.run_id = r.id AND e.status <> 'ok')"
    " FROM run r LEFT JOIN machine m ON m.id = r.machine_id"
    " LEFT JOIN build b ON b.id = r.build_id WHERE r.id = ?1";

static const char *const header_fields[] = {
    "suite", "run UUID", "status", "started", "finished", "file", "host", "CPU", "cores",
    "PMU counters", "moebench version", "commit", "uncommitted changes", "experiments",
    "failed experiments",
};
#define NHEADER (int)(sizeof header_fields / sizeof header_fields[0])

static int header(doc *d, const char *title)
{
    sqlite3_stmt *st = query(d, header_sql);
    if (!st || sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return st ? eng_err_set(d->err, ENG_EINVAL, "no run %lld", (long long)d->run) : d_fail(d);
    }
    char t[512];
    snprintf(t, sizeof t, "moebench report: %s", col(st, 0));
    if (d->html) {
        fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>",
              d->f);
        esc(d, title ? title : t);
        fputs("</title>\n<style>body{font-family:sans-serif;max-width:60em;margin:1em auto}"
              "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;"
              "padding:2px 6px;text-align:left}</style>\n</head>\n<body>\n", d->f);
    }
    heading(d, 1, title ? title : t);
    static const char *const cols[] = {"field", "value"};
    tbl_head(d, cols, 2);
    for (int i = 0; i < NHEADER; i++) {
        char *cells[2] = {(char *)header_fields[i], (char *)col(st, i)};
        tbl_row(d, cells, 2);
    }
    tbl_end(d);
    sqlite3_finalize(st);
    return ENG_OK;
}

/* Every number of the report in one format: 4 significant digits, and
 * "± half-width" (2 digits) when the 95 % interval is known. */
static void fmt_value(char *buf, size_t cap, double v, double lo, double hi)
{
    if (!isfinite(v))
        snprintf(buf, cap, "-");
    else if (isfinite(lo) && isfinite(hi))
        snprintf(buf, cap, "%.4g ± %.2g", v, (hi - lo) / 2);
    else
        snprintf(buf, cap, "%.4g", v);
}

static double col_num(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* The mean at column i with its interval (i + 1, i + 2) when n (i - 1) > 1. */
static void fmt_mean(char *buf, size_t cap, sqlite3_stmt *st, int i)
{
    int n = sqlite3_column_int(st, i - 1);
    fmt_value(buf, cap, col_num(st, i), n > 1 ? col_num(st, i + 1) : NAN,
              n > 1 ? col_num(st, i + 2) : NAN);
}

static const char *const main_metrics[] = {"tokens_per_s", "hit_rate", "wall_ms"};

/* Columns: label, status, reps_done, then (n, mean, ci_lo, ci_hi) per main metric. */
static const char experiments_sql[] =
    "SELECT e.label, e.status, e.reps_done,"
    " t.n, t.mean, t.ci_lo, t.ci_hi, h.n, h.mean, h.ci_lo, h.ci_hi, w.n, w.mean, w.ci_lo, w.ci_hi"
    " FROM experiment e"
    " LEFT JOIN summary t ON t.experiment_id = e.id AND t.metric = 'tokens_per_s'"
    " LEFT JOIN summary h ON h.experiment_id = e.id AND h.metric = 'hit_rate'"
    " LEFT JOIN summary w ON w.experiment_id = e.id AND w.metric = 'wall_ms'"
    " WHERE e.run_id = ?1 ORDER BY e.seq, e.id";

static const char present_sql[] =
    "SELECT s.metric FROM summary s JOIN experiment e ON e.id = s.experiment_id"
    " WHERE e.run_id = ?1 AND s.metric IN ('tokens_per_s', 'hit_rate', 'wall_ms')"
    " GROUP BY s.metric";

static int experiments(doc *d)
{
    sqlite3_stmt *st = query(d, present_sql);
    if (!st)
        return d_fail(d);
    int present[3] = {0}, nm = 0;
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int k = 0; k < 3; k++)
            present[k] |= !strcmp(col(st, 0), main_metrics[k]);
    sqlite3_finalize(st);
    const char *cols[6] = {"experiment", "status", "reps"};
    for (int k = 0; k < 3; k++)
        if (present[k])
            cols[3 + nm++] = main_metrics[k];
    heading(d, 2, "Experiments");
    para(d, "Means over the repetitions; ± is the half-width of the 95 %% confidence interval"
            " (Student's t), shown when there are 2 or more repetitions.");
    if (!(st = query(d, experiments_sql)))
        return d_fail(d);
    tbl_head(d, cols, 3 + nm);
    char buf[6][64];
    while (sqlite3_step(st) == SQLITE_ROW) {
        char *cells[6] = {(char *)col(st, 0), (char *)col(st, 1), buf[0]};
        snprintf(buf[0], sizeof buf[0], "%d", sqlite3_column_int(st, 2));
        for (int k = 0, j = 3; k < 3; k++)
            if (present[k]) {
                fmt_mean(buf[j], sizeof buf[j], st, 4 + 4 * k);
                cells[j] = buf[j], j++;
            }
        tbl_row(d, cells, 3 + nm);
    }
    tbl_end(d);
    sqlite3_finalize(st);
    return ENG_OK;
}

static int failures(doc *d)
{
    sqlite3_stmt *st = query(d, "SELECT label, coalesce(error, '') FROM experiment"
                                " WHERE run_id = ?1 AND status <> 'ok' ORDER BY seq, id");
    if (!st)
        return d_fail(d);
    static const char *const cols[] = {"experiment", "error"};
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n++ == 0) {
            heading(d, 2, "Failures");
            tbl_head(d, cols, 2);
        }
        char *cells[2] = {(char *)col(st, 0), (char *)col(st, 1)};
        tbl_row(d, cells, 2);
    }
    if (n)
        tbl_end(d);
    sqlite3_finalize(st);
    return ENG_OK;
}

/* ---- series tables: (series name, x, y1, y2) rows grouped into lines ---- */

typedef struct line {
    char *name;
    double *x, *y[2]; /* y[0], y[1]: two measures over one x (NAN: absent) */
    double *lo[2], *hi[2]; /* their 95 % interval (NAN: none)            */
    size_t n;
} line;

typedef struct lines {
    line *l;
    size_t n;
    double *xs; /* distinct x values, sorted */
    size_t nx;
} lines;

static void lines_free(lines *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        free(ls->l[i].name), free(ls->l[i].x);
        for (int k = 0; k < 2; k++)
            free(ls->l[i].y[k]), free(ls->l[i].lo[k]), free(ls->l[i].hi[k]);
    }
    free(ls->l), free(ls->xs);
    *ls = (lines){0};
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The line called name, appended when new; NULL when out of memory. */
static line *line_of(lines *ls, const char *name)
{
    for (size_t i = 0; i < ls->n; i++)
        if (!strcmp(ls->l[i].name, name))
            return &ls->l[i];
    char *copy = strdup(name);
    line *p = copy ? realloc(ls->l, (ls->n + 1) * sizeof *p) : NULL;
    if (!p) {
        free(copy);
        return NULL;
    }
    ls->l = p;
    p[ls->n] = (line){.name = copy};
    return &p[ls->n++];
}

/* Keeps ls->xs the sorted set of every x seen. */
static int xs_add(lines *ls, double x)
{
    for (size_t k = 0; k < ls->nx; k++)
        if (ls->xs[k] == x)
            return 0;
    double *xs = realloc(ls->xs, (ls->nx + 1) * sizeof *xs);
    if (!xs)
        return -1;
    ls->xs = xs;
    ls->xs[ls->nx++] = x;
    qsort(ls->xs, ls->nx, sizeof *ls->xs, dbl_cmp);
    return 0;
}

static int grow(double **p, size_t n)
{
    double *q = realloc(*p, n * sizeof *q);
    if (q)
        *p = q;
    return q ? 0 : -1;
}

/* Adds point x with y[k] and its interval lo[k]..hi[k] (k = 0, 1; NAN:
 * absent) to the line called name; a second point at the same x of one
 * line is dropped (returns 1); -1 when out of memory. */
static int lines_add(lines *ls, const char *name, double x, const double y[2],
                     const double lo[2], const double hi[2])
{
    line *l = line_of(ls, name);
    if (!l)
        return -1;
    for (size_t i = 0; i < l->n; i++)
        if (l->x[i] == x)
            return 1;
    size_t n = l->n + 1;
    int bad = grow(&l->x, n);
    for (int k = 0; k < 2; k++)
        bad |= grow(&l->y[k], n) | grow(&l->lo[k], n) | grow(&l->hi[k], n);
    if (bad)
        return -1;
    l->x[l->n] = x;
    for (int k = 0; k < 2; k++)
        l->y[k][l->n] = y[k], l->lo[k][l->n] = lo[k], l->hi[k][l->n] = hi[k];
    l->n++;
    return xs_add(ls, x);
}

/* A line's points in x order (the chart draws them in array order). */
static void line_sort(line *l)
{
    for (size_t i = 1; i < l->n; i++)
        for (size_t j = i; j > 0 && l->x[j - 1] > l->x[j]; j--) {
            double t = l->x[j];
            l->x[j] = l->x[j - 1], l->x[j - 1] = t;
            for (int k = 0; k < 2; k++) {
                double *v[3] = {l->y[k], l->lo[k], l->hi[k]};
                for (int m = 0; m < 3; m++)
                    t = v[m][j], v[m][j] = v[m][j - 1], v[m][j - 1] = t;
            }
        }
}

/* Table: one row per line, one column per distinct x, cells y[which]. */
static void pivot(doc *d, const lines *ls, const char *corner, int which)
{
    size_t nc = ls->nx + 1;
    const char **cols = calloc(nc, sizeof *cols);
    char **cells = calloc(nc, sizeof *cells), *buf = calloc(nc, 64);
    if (!cols || !cells || !buf)
        goto out;
    cols[0] = corner;
    for (size_t j = 0; j < ls->nx; j++) {
        snprintf(buf + 64 * (j + 1), 64, "%.6g", ls->xs[j]);
        cols[j + 1] = buf + 64 * (j + 1);
    }
    tbl_head(d, cols, (int)nc);
    for (size_t i = 0; i < ls->n; i++) {
        const line *l = &ls->l[i];
        cells[0] = l->name;
        for (size_t j = 0; j < ls->nx; j++) {
            char *c = buf + 64 * (j + 1);
            snprintf(c, 64, "-");
            for (size_t p = 0; p < l->n; p++)
                if (l->x[p] == ls->xs[j] && isfinite(l->y[which][p]))
                    fmt_value(c, 64, l->y[which][p], l->lo[which][p], l->hi[which][p]);
            cells[j + 1] = c;
        }
        tbl_row(d, cells, (int)nc);
    }
    tbl_end(d);
out:
    free(cols), free(cells), free(buf);
}

static void line_chart(doc *d, const lines *ls, int which, const char *name, const char *title,
                       const char *xlabel, const char *ylabel)
{
    hx_db_svg_series *s = calloc(ls->n ? ls->n : 1, sizeof *s);
    if (!s)
        return;
    for (size_t i = 0; i < ls->n; i++)
        s[i] = (hx_db_svg_series){ls->l[i].name, ls->l[i].x, ls->l[i].y[which], ls->l[i].n,
                                  ls->l[i].lo[which], ls->l[i].hi[which], NULL};
    hx_db_svg_chart c = {title, xlabel, ylabel, s, ls->n, NULL, 0};
    chart(d, name, &c);
    free(s);
}

static int any_finite(const lines *ls, int which)
{
    for (size_t i = 0; i < ls->n; i++)
        for (size_t p = 0; p < ls->l[i].n; p++)
            if (isfinite(ls->l[i].y[which][p]))
                return 1;
    return 0;
}

/* ---- policy x cache size ---- */

/* A line's name: the experiment's `technique` parameter when it has one
 * (suites/techniques.lua: a lossy technique runs LRU without a prefetcher,
 * and would otherwise share the plain LRU line), else its policy and
 * prefetcher. Needs policy_cache as p. */
#define LINE_NAME_SQL                                                                      \
    "coalesce(CAST((SELECT json_extract(x.params, '$.technique') FROM experiment x"         \
    " WHERE x.id = p.experiment_id) AS TEXT), CAST(p.policy AS TEXT) || CASE WHEN"          \
    " p.prefetch IS NULL THEN '' ELSE ' prefetch=' || CAST(p.prefetch AS TEXT) END)"

static const char policy_sql[] =
    "SELECT " LINE_NAME_SQL ", cache_size, hit_rate, tokens_per_s,"
    " hit_rate_lo, tokens_per_s_lo, hit_rate_hi, tokens_per_s_hi"
    " FROM policy_cache p WHERE run_id = ?1 AND typeof(cache_size) IN ('integer', 'real')"
    " ORDER BY experiment_id";

static int policies(doc *d)
{
    sqlite3_stmt *st = query(d, policy_sql);
    if (!st)
        return d_fail(d);
    lines ls = {0};
    int dup = 0, rc = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        double y[2] = {col_num(st, 2), col_num(st, 3)}, lo[2] = {col_num(st, 4), col_num(st, 5)};
        double hi[2] = {col_num(st, 6), col_num(st, 7)};
        int r = lines_add(&ls, col(st, 0), sqlite3_column_double(st, 1), y, lo, hi);
        dup += r == 1, rc = r < 0;
    }
    sqlite3_finalize(st);
    if (!rc && ls.n) {
        for (size_t i = 0; i < ls.n; i++)
            line_sort(&ls.l[i]);
        heading(d, 2, "Policies by cache size");
        if (dup)
            para(d, "%d experiments repeat a policy and cache size of an earlier one (other"
                    " parameters differ); only the first of each is shown.", dup);
        for (int w = 0; w < 2; w++) {
            if (!any_finite(&ls, w))
                continue;
            heading(d, 3, w ? "Tokens/s (mean ± half-width of the 95 % CI)"
                            : "Hit rate (fraction of expert look-ups; mean ± half-width of the"
                              " 95 % CI)");
            pivot(d, &ls, "policy / cache size (expert slots)", w);
            line_chart(d, &ls, w, w ? "tokens-per-s" : "hit-rate",
                       w ? "Tokens/s vs cache size" : "Hit rate vs cache size",
                       "cache size (expert slots, as the experiment's cache_size)",
                       w ? "decode tokens/s" : "hit rate (fraction)");
        }
    }
    lines_free(&ls);
    return rc ? d_fail(d) : ENG_OK;
}

/* ---- speed and quality per policy (perplexity experiments) ---- */

/* Columns: line name, cache size, tokens/s, stall share, ppl, kl_mean, top1. */
static const char quality_sql[] =
    "SELECT " LINE_NAME_SQL ", p.cache_size, p.tokens_per_s,"
    " s.mean, q.mean, k.mean, t.mean FROM policy_cache p"
    " LEFT JOIN summary s ON s.experiment_id = p.experiment_id AND s.metric = 'stall_share'"
    " LEFT JOIN summary q ON q.experiment_id = p.experiment_id AND q.metric = 'ppl'"
    " LEFT JOIN summary k ON k.experiment_id = p.experiment_id AND k.metric = 'kl_mean'"
    " LEFT JOIN summary t ON t.experiment_id = p.experiment_id AND t.metric = 'top1'"
    " WHERE p.run_id = ?1 AND q.mean IS NOT NULL ORDER BY p.experiment_id";

static void fmt_cell(char *buf, size_t cap, double v)
{
    snprintf(buf, cap, isfinite(v) ? "%.6g" : "-", v);
}

/* A table of every perplexity experiment that names a policy, and a chart
 * of KL (or perplexity, without a base) against tokens/s: one line per
 * policy through its cache sizes. */
static int quality(doc *d)
{
    sqlite3_stmt *st = query(d, quality_sql);
    if (!st)
        return d_fail(d);
    static const char *const cols[] = {"policy", "cache size", "tokens/s", "stall share",
                                       "perplexity", "KL mean", "top-1 agreement"};
    lines ls = {0};
    int n = 0, rc = 0, kl = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        if (n++ == 0) {
            heading(d, 2, "Speed and quality by policy");
            para(d, "Perplexity experiments (moebench perplexity): tokens/s of their evaluation,"
                    " the share of it spent waiting for experts (stall share, with"
                    " offloading), perplexity, and against a base run the mean KL divergence and the share"
                    " of positions whose most likely token agrees (docs/quality.md).");
            tbl_head(d, cols, 7);
        }
        char buf[6][64], *cells[7] = {(char *)col(st, 0)};
        for (int i = 0; i < 6; i++) {
            fmt_cell(buf[i], sizeof buf[i], col_num(st, i + 1));
            cells[i + 1] = buf[i];
        }
        tbl_row(d, cells, 7);
        kl |= isfinite(col_num(st, 5));
        double x = col_num(st, 2);
        if (isfinite(x))
            rc = lines_add(&ls, col(st, 0), x, (double[2]){col_num(st, 5), col_num(st, 4)},
                           (double[2]){NAN, NAN}, (double[2]){NAN, NAN}) < 0;
    }
    sqlite3_finalize(st);
    if (n)
        tbl_end(d);
    if (!rc && ls.n) {
        for (size_t i = 0; i < ls.n; i++)
            line_sort(&ls.l[i]);
        line_chart(d, &ls, kl ? 0 : 1, "quality", kl ? "KL divergence vs tokens/s"
                                                     : "Perplexity vs tokens/s",
                   "tokens/s", kl ? "KL mean" : "perplexity");
    }
    lines_free(&ls);
    return rc ? d_fail(d) : ENG_OK;
}

/* ---- routing consistency (routing_metric, layer -1) ---- */

static const char *basename_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static const char srp_sql[] =
    "SELECT e.label, coalesce(g.trace, ''), g.param, avg(g.value), avg(g.ci_lo), avg(g.ci_hi),"
    " count(*) FROM routing_metric g JOIN experiment e ON e.id = g.experiment_id"
    " WHERE e.run_id = ?1 AND g.layer = -1 AND g.metric = 'srp'"
    " GROUP BY e.id, g.trace, g.param ORDER BY e.seq, e.id, g.trace, g.param";

static int srp_table(doc *d)
{
    sqlite3_stmt *st = query(d, srp_sql);
    if (!st)
        return d_fail(d);
    static const char *const cols[] = {"experiment", "trace", "segment length", "best F1",
                                       "95 % CI", "reps"};
    int n = 0, zero_width = 0;
    char b[4][64];
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n++ == 0) {
            heading(d, 3, "SRP: best F1 per segment length (model-wide)");
            tbl_head(d, cols, 6);
        }
        snprintf(b[0], 64, sqlite3_column_type(st, 2) == SQLITE_NULL ? "-" : "%.4g",
                 sqlite3_column_double(st, 2));
        fmt_value(b[1], 64, sqlite3_column_double(st, 3), NAN, NAN);
        double lo = col_num(st, 4), hi = col_num(st, 5);
        if (!isfinite(lo) || !isfinite(hi))
            snprintf(b[2], 64, "-");
        else
            snprintf(b[2], 64, "%.4g – %.4g%s", lo, hi, lo == hi ? " (*)" : "");
        zero_width += isfinite(lo) && lo == hi;
        snprintf(b[3], 64, "%d", sqlite3_column_int(st, 6));
        char *cells[6] = {(char *)col(st, 0), (char *)basename_of(col(st, 1)), b[0], b[1],
                          b[2], b[3]};
        tbl_row(d, cells, 6);
    }
    if (n)
        tbl_end(d);
    if (zero_width)
        para(d, "(*) An interval of zero width is not certainty: the bootstrap resamples whole"
                " samples (prompts) of the trace, and a trace of one sample, as `--quick`"
                " suites and single-prompt engine traces give, has no spread to resample."
                " More samples (or `moebench metrics --bootstrap B` on a longer trace) give a"
                " real interval.");
    sqlite3_finalize(st);
    return ENG_OK;
}

#define MAX_CURVE_CHARTS 16

static const char curves_sql[] =
    "SELECT e.id, e.label, coalesce(g.trace, ''), g.metric, g.param, avg(g.value)"
    " FROM routing_metric g JOIN experiment e ON e.id = g.experiment_id"
    " WHERE e.run_id = ?1 AND g.layer = -1 AND g.metric <> 'srp' AND g.param IS NOT NULL"
    " GROUP BY e.id, g.trace, g.metric, g.param ORDER BY e.seq, e.id, g.trace, g.metric, g.param";

static void curve_chart(doc *d, lines *ls, int k, const char *title)
{
    char name[32];
    snprintf(name, sizeof name, "routing-%d", k);
    line_chart(d, ls, 0, name, title, "cache size m (slots per layer / top-k)",
               "hit rate (fraction)");
    lines_free(ls);
}

/* One chart per (experiment, trace), one line per metric (lru, belady, sch/L, ...). */
static int curves(doc *d)
{
    sqlite3_stmt *st = query(d, curves_sql);
    if (!st)
        return d_fail(d);
    lines ls = {0};
    int64_t cur = -1;
    char key[1024] = "", title[1024] = "";
    int k = 0, rc = 0, more = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        char nkey[1024];
        snprintf(nkey, sizeof nkey, "%s", col(st, 2));
        if (sqlite3_column_int64(st, 0) != cur || strcmp(nkey, key)) {
            if (ls.n)
                curve_chart(d, &ls, k++, title);
            if (k == 0 && cur == -1)
                heading(d, 3, "Hit-rate curves (model-wide)");
            if (k >= MAX_CURVE_CHARTS) {
                more = 1;
                break;
            }
            cur = sqlite3_column_int64(st, 0);
            snprintf(key, sizeof key, "%s", nkey);
            snprintf(title, sizeof title, "%s%s%s", col(st, 1), *nkey ? ": " : "",
                     basename_of(nkey));
        }
        double y[2] = {sqlite3_column_double(st, 5), NAN}, none[2] = {NAN, NAN};
        rc = lines_add(&ls, col(st, 3), sqlite3_column_double(st, 4), y, none, none) < 0;
    }
    if (!rc && ls.n)
        curve_chart(d, &ls, k++, title);
    lines_free(&ls);
    sqlite3_finalize(st);
    if (more)
        para(d, "Only the first %d curve charts are drawn.", MAX_CURVE_CHARTS);
    return rc ? d_fail(d) : ENG_OK;
}

static int routing(doc *d)
{
    sqlite3_stmt *st = query(d, "SELECT 1 FROM routing_metric g JOIN experiment e"
                                " ON e.id = g.experiment_id WHERE e.run_id = ?1 LIMIT 1");
    if (!st)
        return d_fail(d);
    int has = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!has)
        return ENG_OK;
    heading(d, 2, "Routing consistency");
    int rc = srp_table(d);
    return rc ? rc : curves(d);
}

int hx_db_report_write(FILE *f, sqlite3 *db, int64_t run, const hx_db_report_opts *o,
                       eng_err *err)
{
    eng_err local = {0};
    doc dd = {.f = f, .html = o->html, .db = db, .run = run, .err = err ? err : &local}, *d = &dd;
    const char *title = o->title;
    eng_err_clear(d->err);
    snprintf(d->base, sizeof d->base, "%s", !o->html && o->chart_base ? o->chart_base : "");
    int rc = header(d, title);
    if (!rc)
        rc = experiments(d);
    if (!rc)
        rc = failures(d);
    if (!rc)
        rc = policies(d);
    if (!rc)
        rc = quality(d);
    if (!rc)
        rc = routing(d);
    if (d->skipped_charts)
        para(d, "%d chart(s) left out: Markdown on stdout has no place for the SVG files;"
                " write with -o OUT.md (charts beside it) or -o OUT.html (inline).",
             d->skipped_charts);
    if (d->html)
        fputs("</body>\n</html>\n", d->f);
    return rc ? rc : d->io_error ? d->err->code : ENG_OK;
}

