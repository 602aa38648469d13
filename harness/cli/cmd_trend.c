/*
 * cmd_trend.c — `moebench trend`: every stored run of a suite in commit
 * order, per experiment and metric, with change points (harness/db/trend.c;
 * the method: metrics/changepoint.c). Text, JSON, and an SVG chart per
 * series with the change points marked.
 *
 * Commit order comes from git (`--order git[:REF]`: the first-parent
 * history of REF, oldest first) when the runs' commits are in it; the
 * default is the runs' start times, which is commit order for a history
 * database that one CI job appends to.
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "harness/db/db.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage_text[] =
    "usage: moebench trend [--db FILE] [--suite S] [--metric GLOB] [--experiment GLOB]\n"
    "                      [--order time|git[:REF]] [--machine HOST] [--rows]\n"
    "                      [--min-size N] [--permutations R] [--sig P] [--seed S]\n"
    "                      [--all] [--json] [--svg DIR]\n\n"
    "The history of a suite: every stored run in order, the median of each\n"
    "experiment's repetitions per metric, and the change points of each series by\n"
    "E-divisive means (Matteson & James 2014, as MongoDB's CI and Apache Otava use):\n"
    "for each change the first run and commit after it, the medians before and\n"
    "after, the change in percent, a permutation-test p-value (confidence 1 - p),\n"
    "and IMPROVED / REGRESSED / CHANGED by the metric's direction.\n\n"
    "  --db FILE          database (default results/moebench.db)\n"
    "  --suite S          the suite (default: the suite of the latest run)\n"
    "  --metric GLOBS     metrics to follow: globs ('*' matches anything) separated\n"
    "                     by commas, e.g. 'hit_rate,cache.*' (default all)\n"
    "  --experiment GLOBS experiment labels to follow, the same way (default all)\n"
    "  --order O          time (default): runs by start time; git[:REF]: by the\n"
    "                     first-parent history of REF (default HEAD) of the git\n"
    "                     repository here; runs of other commits are left out\n"
    "  --machine HOST     only runs on this host (timings of two machines differ)\n"
    "  --rows             also cache_stats and routing_metric rows as metrics\n"
    "  --min-size N       runs at least on each side of a change (default 3)\n"
    "  --permutations R   permutations of the significance test (default 199)\n"
    "  --sig P            accept a change when p < P (default 0.05)\n"
    "  --seed S           seed of the permutations (default 1): same input, same output\n"
    "  --all              also list series without change points\n"
    "  --json             the whole history as JSON (runs, values, change points)\n"
    "  --svg DIR          one SVG chart per listed series into DIR (created)\n"
    "  -h, --help         this text\n\n"
    "Exit 0 (change points are findings, not failures), 2 bad usage, a missing\n"
    "database or a suite with no runs.\n";

typedef struct opts {
    const char *db, *order, *svg;
    hx_db_trend_opts t;
    int all, json;
} opts;

static void print_cp(const json_t *c)
{
    const char *v = json_string_value(json_object_get(c, "verdict"));
    double p = json_real_value(json_object_get(c, "p"));
    printf("  %-9s  at run %lld (commit %s, %s): %.4g -> %.4g (%+.1f %%), p = %.3g"
           " (confidence %.1f %%)\n",
           !strcmp(v, "improved") ? "IMPROVED" : !strcmp(v, "regressed") ? "REGRESSED" : "CHANGED",
           (long long)json_integer_value(json_object_get(c, "run_id")),
           *json_string_value(json_object_get(c, "commit"))
               ? json_string_value(json_object_get(c, "commit")) : "?",
           json_string_value(json_object_get(c, "started_at")),
           json_number_value(json_object_get(c, "before")),
           json_number_value(json_object_get(c, "after")),
           json_number_value(json_object_get(c, "change_pct")), p, 100 * (1 - p));
}

/* DIR/NNN-label-metric.svg with the characters a file name should not have
 * replaced by '_'. */
static int write_svg(const char *dir, size_t k, const json_t *s, const json_t *runs)
{
    char name[160], path[4400];
    snprintf(name, sizeof name, "%s-%s", json_string_value(json_object_get(s, "experiment")),
             json_string_value(json_object_get(s, "metric")));
    for (char *c = name; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-=", *c))
            *c = '_';
    snprintf(path, sizeof path, "%s/%03zu-%s.svg", dir, k, name);
    const json_t *vals = json_object_get(s, "values"), *cps = json_object_get(s, "change_points");
    size_t n = json_array_size(vals), nc = json_array_size(cps);
    double *x = malloc((n + 1) * sizeof *x), *y = malloc((n + 1) * sizeof *y);
    double *marks = malloc((nc + 1) * sizeof *marks);
    FILE *f = x && y && marks ? fopen(path, "w") : NULL;
    if (f) {
        for (size_t i = 0; i < n; i++) {
            x[i] = (double)(i + 1);
            const json_t *v = json_array_get(vals, i);
            y[i] = json_is_number(v) ? json_number_value(v) : NAN;
        }
        for (size_t i = 0; i < nc; i++) /* between the last run before and the first after */
            marks[i] = (double)json_integer_value(json_object_get(json_array_get(cps, i),
                                                                  "index")) + 0.5;
        char title[512];
        snprintf(title, sizeof title, "%s: %s", json_string_value(json_object_get(s, "experiment")),
                 json_string_value(json_object_get(s, "metric")));
        hx_db_svg_series se = {json_string_value(json_object_get(s, "metric")), x, y, n,
                               NULL, NULL, NULL};
        hx_db_svg_chart c = {title, "run (in order; dashed: change points)",
                             json_string_value(json_object_get(s, "metric")), &se, 1, marks, nc};
        hx_db_svg_write(f, &c);
    }
    (void)runs;
    int bad = !f || fclose(f) != 0;
    if (bad)
        fprintf(stderr, "moebench trend: cannot write %s: %s\n", path, strerror(errno));
    free(x), free(y), free(marks);
    return bad;
}

static int print_text(const opts *o, const json_t *doc)
{
    const json_t *runs = json_object_get(doc, "runs"), *ser = json_object_get(doc, "series");
    const json_t *m = json_object_get(doc, "method");
    printf("trend of suite '%s' in %s: %zu runs in %s order", o->t.suite, o->db,
           json_array_size(runs), o->t.order ? "commit" : "start-time");
    if (o->t.order)
        printf(" (first-parent history of %s; %lld runs of other commits left out)",
               o->order + 3 + (o->order[3] == ':'),
               (long long)json_integer_value(json_object_get(doc, "skipped_runs")));
    printf("\nchange points: E-divisive means, at least %lld runs a side, %lld permutations,"
           " p < %g\n", (long long)json_integer_value(json_object_get(m, "min_size")),
           (long long)json_integer_value(json_object_get(m, "permutations")),
           json_real_value(json_object_get(m, "sig")));
    size_t i, with = 0, written = 0;
    json_t *s;
    int bad = 0;
    json_array_foreach(ser, i, s) {
        const json_t *cps = json_object_get(s, "change_points");
        size_t nv = 0;
        for (size_t k = 0; k < json_array_size(json_object_get(s, "values")); k++)
            nv += json_is_number(json_array_get(json_object_get(s, "values"), k));
        with += json_array_size(cps) > 0;
        if (!json_array_size(cps) && !o->all)
            continue;
        printf("\n%s  %s: %zu runs, %zu change point%s\n",
               json_string_value(json_object_get(s, "experiment")),
               json_string_value(json_object_get(s, "metric")), nv, json_array_size(cps),
               json_array_size(cps) == 1 ? "" : "s");
        size_t k;
        json_t *c;
        json_array_foreach(cps, k, c) print_cp(c);
        if (o->svg)
            bad |= write_svg(o->svg, written++, s, runs);
    }
    printf("\n%zu series, %zu with change points%s\n", json_array_size(ser), with,
           o->all ? "" : " (--all lists the others)");
    return bad ? HX_CLI_EXIT_FAIL : HX_CLI_EXIT_OK;
}

/* The latest run's suite when --suite is not given. */
static int default_suite(sqlite3 *db, char *buf, size_t cap)
{
    sqlite3_stmt *st;
    int ok = 0;
    if (sqlite3_prepare_v2(db, "SELECT suite FROM run ORDER BY started_at DESC, id DESC LIMIT 1",
                           -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            ok = snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0)) > 0;
        sqlite3_finalize(st);
    }
    return ok;
}

static int trend(opts *o)
{
    hx_db *db;
    eng_err err = {0};
    if (hx_db_open(&db, o->db, HX_DB_READONLY, &err))
        return hx_cli_fail("trend", ENG_EINVAL, "%s", err.msg);
    char suite[256];
    if (!o->t.suite && default_suite(hx_db_sqlite(db), suite, sizeof suite))
        o->t.suite = suite;
    int rc = HX_CLI_EXIT_OK;
    char **order = NULL;
    size_t norder = 0;
    if (!o->t.suite)
        rc = hx_cli_fail("trend", ENG_EINVAL, "%s: no runs", o->db);
    if (!rc && !strncmp(o->order, "git", 3)) {
        const char *ref = o->order[3] == ':' ? o->order + 4 : "HEAD";
        if (hx_cli_git_order(*ref ? ref : "HEAD", &order, &norder))
            rc = hx_cli_fail("trend", ENG_EINVAL, "--order %s: `git rev-list --first-parent %s`"
                             " failed here (not a git repository, or no such ref)", o->order,
                             ref);
        o->t.order = (const char *const *)order, o->t.norder = norder;
    }
    json_t *doc = rc ? NULL : hx_db_trend(hx_db_sqlite(db), &o->t, &err);
    if (!rc && !doc)
        rc = hx_cli_fail("trend", err.code ? err.code : ENG_ENOMEM, "%s", err.msg);
    if (doc && !json_array_size(json_object_get(doc, "runs")))
        rc = hx_cli_fail("trend", ENG_EINVAL, "%s: no runs of suite '%s'%s", o->db, o->t.suite,
                         o->t.order || o->t.machine ? " in the order/machine asked for" : "");
    if (!rc && o->svg && mkdir(o->svg, 0777) != 0 && errno != EEXIST)
        rc = hx_cli_fail("trend", ENG_EIO, "--svg %s: %s", o->svg, strerror(errno));
    if (!rc && o->json) {
        json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else if (!rc) {
        rc = print_text(o, doc);
    }
    json_decref(doc);
    hx_cli_git_order_free(order, norder);
    hx_db_close(db);
    return rc;
}

static int parse(opts *o, int c, const char *arg)
{
    switch (c) {
    case 'd': o->db = arg; return 0;
    case 's': o->t.suite = arg; return 0;
    case 'm': o->t.metric = arg; return 0;
    case 'e': o->t.experiment = arg; return 0;
    case 'M': o->t.machine = arg; return 0;
    case 'r': o->t.rows = 1; return 0;
    case 'a': o->all = 1; return 0;
    case 'j': o->json = 1; return 0;
    case 'S': o->svg = arg; return 0;
    case 'o':
        if (strcmp(arg, "time") && strncmp(arg, "git", 3))
            return hx_cli_usage_error("trend", "--order must be time or git[:REF], not '%s'", arg);
        o->order = arg;
        return 0;
    case 'n': return hx_cli_parse_int("trend", "--min-size", arg, 2, 1000, &o->t.cp.min_size);
    case 'p': return hx_cli_parse_int("trend", "--permutations", arg, 19, 100000,
                                      &o->t.cp.permutations);
    case 'g': return hx_cli_parse_double("trend", "--sig", arg, 1e-6, 0.5, &o->t.cp.sig);
    case 'z': {
        int64_t v;
        int rc = hx_cli_parse_i64("trend", "--seed", arg, 0, INT64_MAX, &v);
        o->t.cp.seed = (uint64_t)v;
        return rc;
    }
    default: return -1;
    }
}

int hx_cli_cmd_trend(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},         {"suite", required_argument, 0, 's'},
        {"metric", required_argument, 0, 'm'},     {"experiment", required_argument, 0, 'e'},
        {"machine", required_argument, 0, 'M'},    {"rows", no_argument, 0, 'r'},
        {"all", no_argument, 0, 'a'},              {"json", no_argument, 0, 'j'},
        {"svg", required_argument, 0, 'S'},        {"order", required_argument, 0, 'o'},
        {"min-size", required_argument, 0, 'n'},   {"permutations", required_argument, 0, 'p'},
        {"sig", required_argument, 0, 'g'},        {"seed", required_argument, 0, 'z'},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0},
    };
    opts o = {.db = "results/moebench.db", .order = "time",
              .t = {.cp = {.min_size = 3, .permutations = 199, .sig = 0.05, .alpha = 1,
                           .seed = 1}}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return HX_CLI_EXIT_OK;
        }
        int rc = parse(&o, c, optarg);
        if (rc < 0)
            return hx_cli_usage_error("trend", "unknown option or missing value '%s'",
                                      argv[optind - 1]);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return hx_cli_usage_error("trend", "unexpected argument '%s'", argv[optind]);
    return trend(&o);
}
