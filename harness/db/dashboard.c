/*
 * dashboard.c — every suite's history as one self-contained HTML page
 * (`moebench report --history`), in the spirit of asv's `publish`: per
 * suite, a chart per followed experiment and metric over the runs with the
 * change points marked (trend.c), each point a link to its run; under the
 * charts, the change points in words; then the runs themselves, each row an
 * anchor (#run-ID) with its commit, host, status and, folded, its
 * experiments' means. No scripts, no external files: the page opens from
 * disk, from a CI artifact, or from a static web server alike.
 */
#include "harness/db/db.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHARTS 60

static void esc(FILE *f, const char *s) { hx_db_svg_escape(f, s ? s : ""); }

static const char style[] =
    "<style>body{font-family:sans-serif;max-width:72em;margin:1em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;"
    "text-align:left;vertical-align:top}.charts{display:flex;flex-wrap:wrap;gap:8px}"
    ".chart{border:1px solid #eee}.chart svg{width:480px;height:300px}"
    ".regressed{color:#800}.improved{color:#070}.changed{color:#a60}"
    "tr:target{background:#ffd}details{margin:0}</style>\n";

/* One series as an inline chart: x = run number in order, links #run-ID. */
static void chart(FILE *f, const json_t *s, const json_t *runs)
{
    const json_t *vals = json_object_get(s, "values"), *cps = json_object_get(s, "change_points");
    size_t n = json_array_size(vals), nc = json_array_size(cps);
    double *x = malloc((n + 1) * sizeof *x), *y = malloc((n + 1) * sizeof *y);
    double *marks = malloc((nc + 1) * sizeof *marks);
    char **links = calloc(n + 1, sizeof *links);
    if (!x || !y || !marks || !links)
        goto out;
    for (size_t i = 0; i < n; i++) {
        x[i] = (double)(i + 1);
        const json_t *v = json_array_get(vals, i);
        y[i] = json_is_number(v) ? json_number_value(v) : NAN;
        if ((links[i] = malloc(32)))
            snprintf(links[i], 32, "#run-%lld", (long long)json_integer_value(json_object_get(
                                                    json_array_get(runs, i), "run_id")));
    }
    for (size_t i = 0; i < nc; i++)
        marks[i] = (double)json_integer_value(json_object_get(json_array_get(cps, i), "index")) +
                   0.5;
    char title[512];
    snprintf(title, sizeof title, "%s: %s", json_string_value(json_object_get(s, "experiment")),
             json_string_value(json_object_get(s, "metric")));
    hx_db_svg_series se = {json_string_value(json_object_get(s, "metric")), x, y, n, NULL, NULL,
                           (const char *const *)links};
    hx_db_svg_chart c = {title, "run, oldest first (dashed red: change points)",
                         json_string_value(json_object_get(s, "metric")), &se, 1, marks, nc};
    fputs("<div class=\"chart\">\n", f);
    hx_db_svg_write(f, &c);
    fputs("</div>\n", f);
out:
    for (size_t i = 0; links && i < n; i++)
        free(links[i]);
    free(links), free(x), free(y), free(marks);
}

static void change_list(FILE *f, const json_t *series)
{
    int any = 0;
    size_t i, k;
    json_t *s, *c;
    json_array_foreach(series, i, s) json_array_foreach(json_object_get(s, "change_points"), k, c) {
        if (!any++)
            fputs("<table><thead><tr><th>verdict</th><th>experiment</th><th>metric</th>"
                  "<th>first run after</th><th>commit</th><th>before</th><th>after</th>"
                  "<th>change</th><th>p</th></tr></thead><tbody>\n", f);
        const char *v = json_string_value(json_object_get(c, "verdict"));
        fprintf(f, "<tr><td class=\"%s\">%s</td><td>", v, v);
        esc(f, json_string_value(json_object_get(s, "experiment")));
        fputs("</td><td>", f);
        esc(f, json_string_value(json_object_get(s, "metric")));
        long long id = (long long)json_integer_value(json_object_get(c, "run_id"));
        fprintf(f, "</td><td><a href=\"#run-%lld\">run %lld</a></td><td>", id, id);
        esc(f, json_string_value(json_object_get(c, "commit")));
        fprintf(f, "</td><td>%.4g</td><td>%.4g</td><td>%+.1f %%</td><td>%.3g</td></tr>\n",
                json_number_value(json_object_get(c, "before")),
                json_number_value(json_object_get(c, "after")),
                json_number_value(json_object_get(c, "change_pct")),
                json_number_value(json_object_get(c, "p")));
    }
    fputs(any ? "</tbody></table>\n" : "<p>No change point in the followed metrics.</p>\n", f);
}

/* The runs of the suite, newest first, each an anchor with its means. */
static int run_table(FILE *f, sqlite3 *db, const char *suite, eng_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT o.id, o.uuid, o.started_at, coalesce(o.commit_hash, ''),"
                               " coalesce(o.hostname, ''), o.status, o.experiments, o.failed,"
                               " (SELECT json_group_array(json_object('label', w.label,"
                               " 'status', w.status, 'means', json(w.means))) FROM"
                               " experiment_wide w WHERE w.run_id = o.id)"
                               " FROM run_overview o WHERE o.suite = ?1"
                               " ORDER BY o.started_at DESC, o.id DESC", -1, &st, NULL) !=
        SQLITE_OK)
        return eng_err_set(err, ENG_EIO, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, suite, -1, SQLITE_STATIC);
    fputs("<table><thead><tr><th>run</th><th>started</th><th>commit</th><th>host</th>"
          "<th>status</th><th>experiments</th></tr></thead><tbody>\n", f);
    while (sqlite3_step(st) == SQLITE_ROW) {
        long long id = sqlite3_column_int64(st, 0);
        fprintf(f, "<tr id=\"run-%lld\"><td>%lld<br><small>", id, id);
        esc(f, (const char *)sqlite3_column_text(st, 1));
        fputs("</small></td><td>", f);
        for (int c = 2; c <= 5; c++) {
            esc(f, (const char *)sqlite3_column_text(st, c));
            fputs("</td><td>", f);
        }
        fprintf(f, "<details><summary>%d (%d failed)</summary><table>",
                sqlite3_column_int(st, 6), sqlite3_column_int(st, 7));
        json_t *exps = json_loads((const char *)sqlite3_column_text(st, 8), 0, NULL);
        size_t i;
        json_t *e;
        json_array_foreach(exps, i, e) {
            fputs("<tr><td>", f);
            esc(f, json_string_value(json_object_get(e, "label")));
            fputs("</td><td>", f);
            esc(f, json_string_value(json_object_get(e, "status")));
            fputs("</td><td>", f);
            const char *k;
            json_t *v;
            int first = 1;
            json_object_foreach(json_object_get(e, "means"), k, v) {
                fprintf(f, "%s", first ? "" : ", ");
                esc(f, k);
                fprintf(f, " %.4g", json_number_value(v));
                first = 0;
            }
            fputs("</td></tr>", f);
        }
        json_decref(exps);
        fputs("</table></details></td></tr>\n", f);
    }
    sqlite3_finalize(st);
    fputs("</tbody></table>\n", f);
    return ENG_OK;
}

static int suite_section(FILE *f, sqlite3 *db, const char *suite, const hx_db_dashboard_opts *o,
                         eng_err *err)
{
    hx_db_trend_opts t = o->trend;
    t.suite = suite;
    json_t *doc = hx_db_trend(db, &t, err);
    if (!doc)
        return err && err->code ? err->code : ENG_ENOMEM;
    const json_t *runs = json_object_get(doc, "runs"), *ser = json_object_get(doc, "series");
    fputs("<h2 id=\"suite-", f);
    esc(f, suite);
    fputs("\">", f);
    esc(f, suite);
    fprintf(f, "</h2>\n<p>%zu runs, oldest first in the charts; %zu series followed (metrics ",
            json_array_size(runs), json_array_size(ser));
    esc(f, t.metric ? t.metric : "all");
    fputs(").</p>\n<h3>Change points</h3>\n", f);
    change_list(f, ser);
    fputs("<h3>Metrics over runs</h3>\n<div class=\"charts\">\n", f);
    size_t i, drawn = 0;
    json_t *s;
    json_array_foreach(ser, i, s) {
        if (drawn == MAX_CHARTS)
            break;
        chart(f, s, runs);
        drawn++;
    }
    fputs("</div>\n", f);
    if (drawn < json_array_size(ser))
        fprintf(f, "<p>The first %d of %zu charts; `--metric` or `--suite` narrow the"
                   " selection.</p>\n", MAX_CHARTS, json_array_size(ser));
    json_decref(doc);
    fputs("<h3>Runs</h3>\n", f);
    return run_table(f, db, suite, err);
}

int hx_db_dashboard_write(FILE *f, sqlite3 *db, const char *path, const hx_db_dashboard_opts *o,
                          eng_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT suite, count(*) FROM run GROUP BY suite ORDER BY suite",
                           -1, &st, NULL) != SQLITE_OK)
        return eng_err_set(err, ENG_EIO, "%s", sqlite3_errmsg(db));
    json_t *suites = json_object();
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        int take = !o->suites;
        for (const char *p = o->suites; p && *p;) { /* comma-separated names */
            size_t n = strcspn(p, ",");
            take |= strlen(name) == n && !strncmp(p, name, n);
            p += n + (p[n] == ',');
        }
        if (take)
            json_object_set_new(suites, name, json_integer(sqlite3_column_int64(st, 1)));
    }
    sqlite3_finalize(st);
    if (!json_object_size(suites)) {
        json_decref(suites);
        return eng_err_set(err, ENG_EINVAL, "%s: no runs%s%s", path,
                           o->suites ? " of suite " : "", o->suites ? o->suites : "");
    }
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
    esc(f, o->title ? o->title : "moebench dashboard");
    fprintf(f, "</title>\n%s</head>\n<body>\n<h1>", style);
    esc(f, o->title ? o->title : "moebench dashboard");
    fputs("</h1>\n<p>From ", f);
    esc(f, path);
    fputs(". Change points: E-divisive means (docs/cli.md, \"trend\"). Suites:", f);
    const char *name;
    json_t *cnt;
    json_object_foreach(suites, name, cnt) {
        fputs(" <a href=\"#suite-", f);
        esc(f, name);
        fputs("\">", f);
        esc(f, name);
        fprintf(f, "</a> (%lld runs)", (long long)json_integer_value(cnt));
    }
    fputs(".</p>\n", f);
    int rc = ENG_OK;
    json_object_foreach(suites, name, cnt) {
        if ((rc = suite_section(f, db, name, o, err)))
            break;
    }
    fputs("</body>\n</html>\n", f);
    json_decref(suites);
    return rc;
}
