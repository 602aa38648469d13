/*
 * cmd_compare.c — `moebench compare [--db F] [--baseline-db F] A B`: every
 * experiment the two runs share (matched by label), every metric both
 * recorded: repetitions, means, the ratio B/A with a 95 % bootstrap
 * interval and the two-sided Mann-Whitney p (metrics/stats.h).
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "harness/db/db.h"
#include "metrics/stats.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define RESAMPLES 2000
#define SEED 1

static const char usage_text[] =
    "usage: moebench compare [--db FILE] [--baseline-db FILE] A B [--metric NAME]...\n"
    "                        [--csv | --json]\n\n"
    "Compares run B with run A, experiment by experiment (matched by label: name and\n"
    "parameters), for every metric both recorded in `sample`: repetitions, means,\n"
    "the ratio mean B / mean A with a 95 % percentile-bootstrap interval (2000\n"
    "resamples of the repetitions, fixed seed) and the two-sided Mann-Whitney U\n"
    "p-value (exact up to 50 repetitions in all, ties by mid-ranks). Experiments\n"
    "found in only one run are listed. A and B are run ids, UUIDs (or prefixes of\n"
    "at least 4 characters), 'latest', 'latest:SUITE' or a suite name.\n\n"
    "  --db FILE           database of B (and of A; default results/moebench.db)\n"
    "  --baseline-db FILE  database of A, when it is another file\n"
    "  --metric NAME       only this metric (repeatable)\n"
    "  --csv               CSV: one row per experiment and metric\n"
    "  --json              JSON: the runs, the rows, the unmatched experiments\n"
    "  -h, --help          this text\n";

typedef struct row {
    const hx_db_cmp_metric *a, *b;
    double mean_a, mean_b;
    met_ratio_ci r;
    met_mwu u;
} row;

static int selected(const char *metric, char **only, int nonly)
{
    for (int i = 0; i < nonly; i++)
        if (!strcmp(only[i], metric))
            return 1;
    return nonly == 0;
}

static int compute(row *w, eng_err *err)
{
    w->mean_a = met_stats_mean(w->a->v, w->a->n);
    w->mean_b = met_stats_mean(w->b->v, w->b->n);
    int rc = met_stats_ratio_ci(w->a->v, w->a->n, w->b->v, w->b->n, RESAMPLES, SEED, &w->r, err);
    return rc ? rc : met_stats_mann_whitney(w->a->v, w->a->n, w->b->v, w->b->n, &w->u, err);
}

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *run_json(const hx_db_cmp_run *r, const char *path)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s}", "db", path, "id", (json_int_t)r->id, "uuid",
                     r->uuid, "suite", r->suite, "started_at", r->started_at);
}

static json_t *only_in(const hx_db_cmp_run *x, const hx_db_cmp_run *y)
{
    json_t *a = json_array();
    for (size_t i = 0; i < x->nexps; i++)
        if (!hx_db_cmp_find_exp(y, x->exps[i].label))
            json_array_append_new(a, json_string(x->exps[i].label));
    return a;
}

static void print_json(const row *w, size_t n, const hx_db_cmp_run *a, const hx_db_cmp_run *b,
                       const char *pa, const char *pb)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(rows, json_pack(
            "{s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:f, s:f, s:b}", "experiment",
            w[i].a->label, "metric", w[i].a->metric, "n_a", (json_int_t)w[i].a->n, "n_b",
            (json_int_t)w[i].b->n, "mean_a", num(w[i].mean_a), "mean_b", num(w[i].mean_b),
            "ratio", num(w[i].r.ratio), "ratio_lo", num(w[i].r.lo), "ratio_hi", num(w[i].r.hi),
            "u", w[i].u.u, "p", w[i].u.p, "p_exact", w[i].u.exact));
    json_t *doc = json_pack("{s:o, s:o, s:s, s:o, s:o, s:o}", "a", run_json(a, pa), "b",
                            run_json(b, pb), "interval", "percentile bootstrap, 2000 resamples, seed 1",
                            "rows", rows, "only_in_a", only_in(a, b), "only_in_b", only_in(b, a));
    json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(doc);
}

static void csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++)
        fputs(*s == '"' ? "\"\"" : (char[]){*s, 0}, stdout);
    putchar('"');
}

static void print_csv(const row *w, size_t n)
{
    fputs("experiment,metric,n_a,n_b,mean_a,mean_b,ratio,ratio_lo,ratio_hi,u,p,p_exact\r\n",
          stdout);
    for (size_t i = 0; i < n; i++) {
        csv_field(w[i].a->label);
        putchar(',');
        csv_field(w[i].a->metric);
        printf(",%zu,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%d\r\n", w[i].a->n,
               w[i].b->n, w[i].mean_a, w[i].mean_b, w[i].r.ratio, w[i].r.lo, w[i].r.hi,
               w[i].u.u, w[i].u.p, w[i].u.exact);
    }
}

static void print_table(const row *w, size_t n, const hx_db_cmp_run *a, const hx_db_cmp_run *b,
                        const char *pa, const char *pb)
{
    printf("A: run %lld (%s, %s) of %s\nB: run %lld (%s, %s) of %s\n\n", (long long)a->id,
           a->suite, a->started_at, pa, (long long)b->id, b->suite, b->started_at, pb);
    int wl = (int)strlen("experiment"), wm = (int)strlen("metric");
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(w[i].a->label), m = (int)strlen(w[i].a->metric);
        wl = l > wl ? l : wl, wm = m > wm ? m : wm;
    }
    printf("%-*s  %-*s  %4s %4s  %12s %12s  %8s  %-19s  %s\n", wl, "experiment", wm, "metric",
           "nA", "nB", "mean A", "mean B", "B/A", "95% CI of B/A", "p (MWU)");
    for (size_t i = 0; i < n; i++) {
        char ci[64] = "-";
        if (isfinite(w[i].r.lo) && isfinite(w[i].r.hi))
            snprintf(ci, sizeof ci, "[%.4g, %.4g]", w[i].r.lo, w[i].r.hi);
        printf("%-*s  %-*s  %4zu %4zu  %12.6g %12.6g  %8.4g  %-19s  %.3g%s\n", wl, w[i].a->label,
               wm, w[i].a->metric, w[i].a->n, w[i].b->n, w[i].mean_a, w[i].mean_b,
               w[i].r.ratio, ci, w[i].u.p, w[i].u.exact ? "" : " (normal approx.)");
    }
    for (int side = 0; side < 2; side++) {
        const hx_db_cmp_run *x = side ? b : a, *y = side ? a : b;
        for (size_t i = 0; i < x->nexps; i++)
            if (!hx_db_cmp_find_exp(y, x->exps[i].label))
                printf("only in %c: %s\n", side ? 'B' : 'A', x->exps[i].label);
    }
    printf("\nB/A: ratio of means, 95 %% percentile-bootstrap interval (%d resamples, seed %d;"
           " too narrow\nwith few repetitions). p: two-sided Mann-Whitney U on the"
           " repetitions.\n", RESAMPLES, SEED);
}

/* Matched (experiment, metric) pairs of b and a, in b's order. */
static int build_rows(const hx_db_cmp_run *a, const hx_db_cmp_run *b, char **only, int nonly,
                      row **out, size_t *nout, eng_err *err)
{
    row *w = calloc(b->nm ? b->nm : 1, sizeof *w);
    size_t n = 0;
    if (!w)
        return eng_err_set(err, ENG_ENOMEM, "out of memory");
    for (size_t i = 0; i < b->nm; i++) {
        const hx_db_cmp_metric *ma = hx_db_cmp_find(a, b->m[i].label, b->m[i].metric);
        if (!ma || !selected(b->m[i].metric, only, nonly))
            continue;
        w[n] = (row){.a = ma, .b = &b->m[i]};
        int rc = compute(&w[n++], err);
        if (rc) {
            free(w);
            return rc;
        }
    }
    *out = w, *nout = n;
    return ENG_OK;
}

static int open_load(const char *path, const char *arg, hx_db **db, hx_db_cmp_run *r, eng_err *err)
{
    int rc = *db ? ENG_OK : hx_db_open(db, path, HX_DB_READONLY, err);
    if (rc)
        return ENG_EINVAL; /* a database that cannot be read is bad input here */
    int64_t id = hx_db_cmp_resolve(hx_db_sqlite(*db), path, arg, err);
    return id ? hx_db_cmp_load(r, hx_db_sqlite(*db), id, HX_DB_CMP_SAMPLES, err) : ENG_EINVAL;
}

static int compare(const char *pa, const char *pb, const char *ra, const char *rb, char **only,
                   int nonly, int mode)
{
    hx_db *da = NULL, *db = NULL;
    hx_db_cmp_run a = {0}, b = {0};
    row *w = NULL;
    size_t n = 0;
    eng_err err = {0};
    int rc = open_load(pb, rb, &db, &b, &err);
    if (!rc && !strcmp(pa, pb))
        da = db;
    if (!rc)
        rc = open_load(pa, ra, &da, &a, &err);
    if (!rc)
        rc = build_rows(&a, &b, only, nonly, &w, &n, &err);
    if (!rc && n == 0)
        rc = eng_err_set(&err, ENG_EINVAL, "runs %lld (%s) and %lld (%s) share no experiment"
                         " and metric%s", (long long)a.id, pa, (long long)b.id, pb,
                         nonly ? " among those given with --metric" : "");
    if (!rc && mode == 2)
        print_json(w, n, &a, &b, pa, pb);
    else if (!rc && mode == 1)
        print_csv(w, n);
    else if (!rc)
        print_table(w, n, &a, &b, pa, pb);
    if (rc)
        rc = hx_cli_fail("compare", rc, "%s", err.msg);
    free(w);
    hx_db_cmp_free(&a);
    hx_db_cmp_free(&b);
    if (da && da != db)
        hx_db_close(da);
    if (db)
        hx_db_close(db);
    return rc;
}

int hx_cli_cmd_compare(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},   {"baseline-db", required_argument, 0, 'b'},
        {"metric", required_argument, 0, 'm'}, {"csv", no_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *path = "results/moebench.db", *base = NULL, *runs[2] = {NULL, NULL};
    char *only[64];
    int nonly = 0, mode = 0, nruns = 0, c;
    opterr = 0;
    while (optind < argc) {
        if ((c = getopt_long(argc, argv, "+h", longopts, NULL)) == -1) {
            if (nruns == 2)
                return hx_cli_usage_error("compare", "unexpected argument '%s'", argv[optind]);
            runs[nruns++] = argv[optind++];
            continue;
        }
        switch (c) {
        case 'd': path = optarg; break;
        case 'b': base = optarg; break;
        case 'm':
            if (nonly == 64)
                return hx_cli_usage_error("compare", "more than 64 --metric options");
            only[nonly++] = optarg;
            break;
        case 'c': mode = 1; break;
        case 'j': mode = 2; break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("compare", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (nruns != 2)
        return hx_cli_usage_error("compare", "give two runs, A and B");
    return compare(base ? base : path, path, runs[0], runs[1], only, nonly, mode);
}
