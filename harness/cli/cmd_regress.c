/*
 * cmd_regress.c — `moebench regress --db NEW --baseline OLD`: checks one
 * run against a baseline run, experiment by experiment (matched by label),
 * and exits 1 when something got worse.
 *
 * The rules (docs/cli.md, "regress"):
 *  - a baseline experiment missing from the run, or failed in the run
 *    but ok in the baseline, is a regression; new experiments are fine;
 *  - every metric of `sample`, `cache_stats` and `routing_metric` that the
 *    baseline experiment has must be in the run;
 *  - timings (hx_db_cmp_metric_class: names with _ms, tok_s, wall, stall,
 *    ...) regress when the run's median is worse than the baseline's by
 *    more than the tolerance AND the Mann-Whitney p < 0.05; when the
 *    repetitions are too few for p to reach 0.05 (fewer than 4 a side),
 *    the tolerance on the medians alone decides, and the output says so;
 *  - every other metric is a count, rate or byte total: when the baseline's
 *    repetitions agree it is deterministic and each of the run's values
 *    must equal it (relative 1e-9); when they disagree it is not checked
 *    (listed as unchecked).
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "harness/db/db.h"
#include "metrics/stats.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ALPHA 0.05
#define REL_EXACT 1e-9

static const char usage_text[] =
    "usage: moebench regress [--db FILE] --baseline FILE [--run RUN] [--baseline-run RUN]\n"
    "                        [--tolerance PCT] [--exact-only] [-v] [--json]\n\n"
    "Checks run RUN of --db against a baseline run and exits 1 when it regressed:\n"
    "a baseline experiment missing or failed; a deterministic metric (counts, hit\n"
    "rates, bytes, cache_stats and routing_metric rows: every metric whose name is\n"
    "not a timing and whose baseline repetitions agree) not equal to 1e-9; a timing\n"
    "(_ms, _ns, _us, _s, tok_s, per_s, gbps, wall, cpu, stall, rss, time, latency,\n"
    "flops, bandwidth, throughput; higher is better for speeds) worse by more than\n"
    "the tolerance on the medians and, when there are enough repetitions (4 a side)\n"
    "for it, Mann-Whitney p < 0.05. Exit 0 no regression, 1 regression(s), 2 bad\n"
    "input (missing database, unknown run, no experiment in common).\n\n"
    "  --db FILE            database of the run to check (default results/moebench.db)\n"
    "  --baseline FILE      database of the baseline run (required; may be --db's file)\n"
    "  --run RUN            run to check: id, UUID (prefix), 'latest', 'latest:SUITE'\n"
    "                       or a suite name (default latest)\n"
    "  --baseline-run RUN   baseline run (default: the baseline database's latest run\n"
    "                       of the checked run's suite)\n"
    "  --tolerance PCT      allowed slow-down of a timing in percent (default 10)\n"
    "  --exact-only         skip the timings: check experiments and deterministic\n"
    "                       metrics only (for shared CI machines)\n"
    "  -v, --verbose        also print every timing checked and every unchecked metric\n"
    "  --json               JSON report on stdout\n"
    "  -h, --help           this text\n";

typedef struct rg {
    const hx_db_cmp_run *base, *run;
    double tol;                 /* fraction: 0.10 = 10 %                  */
    int exact_only;             /* timings are not checked                */
    json_t *regressions, *timings, *unchecked, *added;
    long n_exact, n_timing, n_tol_only;
} rg;

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static void add(json_t *list, const char *label, const char *metric, const char *check,
                json_t *extra, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add(json_t *list, const char *label, const char *metric, const char *check,
                json_t *extra, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s, s:s?, s:s, s:s}", "experiment", label, "metric", metric,
                          "check", check, "message", msg);
    if (extra)
        json_object_update(o, extra), json_decref(extra);
    json_array_append_new(list, o);
}

static int same(double a, double b)
{
    return a == b || fabs(a - b) <= REL_EXACT * fmax(fabs(a), fabs(b));
}

static void check_exact(rg *g, const hx_db_cmp_metric *b, const hx_db_cmp_metric *r)
{
    for (size_t i = 1; i < b->n; i++)
        if (b->v[i] != b->v[0]) {
            add(g->unchecked, b->label, b->metric, "unstable", NULL,
                "not a timing, but its %zu baseline repetitions differ (%.17g, %.17g, ...)",
                b->n, b->v[0], b->v[i]);
            return;
        }
    g->n_exact++;
    for (size_t i = 0; i < r->n; i++)
        if (!same(r->v[i], b->v[0])) {
            add(g->regressions, b->label, b->metric, "exact",
                json_pack("{s:o, s:o, s:I}", "baseline", num(b->v[0]), "value", num(r->v[i]),
                          "rep", (json_int_t)i),
                "%.17g, baseline %.17g (repetition %zu; deterministic: must be equal)",
                r->v[i], b->v[0], i);
            return;
        }
}

static void check_timing(rg *g, const hx_db_cmp_metric *b, const hx_db_cmp_metric *r)
{
    int higher = 0;
    hx_db_cmp_metric_class(b->metric, &higher);
    double mb = met_stats_percentile(b->v, b->n, 50), mr = met_stats_percentile(r->v, r->n, 50);
    if (!(mb != 0) || !isfinite(mr)) {
        add(g->unchecked, b->label, b->metric, "zero", NULL,
            "baseline median is %g: no relative change to judge", mb);
        return;
    }
    g->n_timing++;
    double change = mr / mb - 1, worse = higher ? -change : change;
    int tol_only = met_stats_mwu_min_p(b->n, r->n) >= ALPHA;
    met_mwu u = {.p = NAN};
    eng_err err = {0};
    if (!tol_only && met_stats_mann_whitney(b->v, b->n, r->v, r->n, &u, &err))
        u.p = NAN;
    g->n_tol_only += tol_only;
    int bad = worse > g->tol && (tol_only || u.p < ALPHA);
    char test[128];
    if (tol_only)
        snprintf(test, sizeof test, "n %zu/%zu: too few repetitions for the rank test to reach"
                 " p < %.2g, tolerance only", b->n, r->n, ALPHA);
    else
        snprintf(test, sizeof test, "Mann-Whitney p = %.3g, n %zu/%zu", u.p, b->n, r->n);
    add(bad ? g->regressions : g->timings, b->label, b->metric, "timing",
        json_pack("{s:o, s:o, s:f, s:b, s:o, s:b, s:I, s:I}", "baseline_median", num(mb),
                  "median", num(mr), "change_pct", 100 * change, "higher_is_better", higher,
                  "p", num(u.p), "tolerance_only", tol_only, "n_baseline", (json_int_t)b->n,
                  "n", (json_int_t)r->n),
        "median %.6g, baseline %.6g (%+.1f %%, %s is better; %s)", mr, mb, 100 * change,
        higher ? "higher" : "lower", test);
}

static void check_experiment(rg *g, const hx_db_cmp_exp *be)
{
    const hx_db_cmp_exp *re = hx_db_cmp_find_exp(g->run, be->label);
    if (!re) {
        add(g->regressions, be->label, NULL, "missing experiment", NULL,
            "in the baseline, not in the run");
        return;
    }
    if (!strcmp(be->status, "ok") && strcmp(re->status, "ok")) {
        add(g->regressions, be->label, NULL, "failed", NULL, "%s in the run, ok in the"
            " baseline: %.300s", re->status, re->error);
        return;
    }
    for (size_t i = 0; i < g->base->nm; i++) { /* a few thousand groups: a scan will do */
        const hx_db_cmp_metric *b = &g->base->m[i];
        if (strcmp(b->label, be->label))
            continue;
        const hx_db_cmp_metric *r = hx_db_cmp_find(g->run, b->label, b->metric);
        if (!r)
            add(g->regressions, b->label, b->metric, "missing metric", NULL,
                "in the baseline, not in the run");
        else if (hx_db_cmp_metric_class(b->metric, NULL) == HX_DB_CMP_TIMING && !g->exact_only)
            check_timing(g, b, r);
        else if (hx_db_cmp_metric_class(b->metric, NULL) == HX_DB_CMP_TIMING)
            add(g->unchecked, b->label, b->metric, "exact-only", NULL, "a timing (--exact-only)");
        else
            check_exact(g, b, r);
    }
}

static void print_list(const char *tag, json_t *list)
{
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o) {
        const char *m = json_string_value(json_object_get(o, "metric"));
        printf("%-10s %s%s%s: %s\n", tag, json_string_value(json_object_get(o, "experiment")),
               m ? "  " : "", m ? m : "", json_string_value(json_object_get(o, "message")));
    }
}

static json_t *run_json(const hx_db_cmp_run *r, const char *path)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s}", "db", path, "id", (json_int_t)r->id, "uuid",
                     r->uuid, "suite", r->suite, "started_at", r->started_at);
}

static void report(const rg *g, const char *pb, const char *pr, int json, int verbose)
{
    size_t nreg = json_array_size(g->regressions);
    if (json) {
        json_t *doc = json_pack(
            "{s:o, s:o, s:f, s:b, s:O, s:{s:I, s:I, s:I}, s:O, s:O, s:O}", "run",
            run_json(g->run, pr), "baseline", run_json(g->base, pb), "tolerance_pct",
            100 * g->tol, "regressed", nreg > 0, "regressions", g->regressions, "checked",
            "exact", (json_int_t)g->n_exact, "timings", (json_int_t)g->n_timing,
            "tolerance_only", (json_int_t)g->n_tol_only, "timings_ok", g->timings,
            "new_experiments", g->added, "unchecked", g->unchecked);
        json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(doc);
        return;
    }
    printf("run %lld (%s, %s) of %s\nagainst baseline run %lld (%s, %s) of %s; tolerance"
           " %g %%\n\n", (long long)g->run->id, g->run->suite, g->run->started_at, pr,
           (long long)g->base->id, g->base->suite, g->base->started_at, pb, 100 * g->tol);
    print_list("REGRESSION", g->regressions);
    print_list("new", g->added);
    if (verbose) {
        print_list("timing ok", g->timings);
        print_list("unchecked", g->unchecked);
    }
    printf("\nchecked %zu baseline experiments: %ld deterministic metrics (exact), %ld timings"
           " (%ld by the tolerance only: too few repetitions for the rank test to reach"
           " p < %.2g); %zu unchecked\n", g->base->nexps, g->n_exact, g->n_timing,
           g->n_tol_only, ALPHA, json_array_size(g->unchecked));
    printf(nreg ? "%zu regression%s\n" : "no regression\n", nreg, nreg == 1 ? "" : "s");
}

static int common_labels(const hx_db_cmp_run *a, const hx_db_cmp_run *b)
{
    for (size_t i = 0; i < a->nexps; i++)
        if (hx_db_cmp_find_exp(b, a->exps[i].label))
            return 1;
    return 0;
}

typedef struct opts {
    const char *db, *baseline, *run, *baseline_run;
    double tol;
    int json, verbose, exact_only;
} opts;

/* Opens and loads both runs; ENG_EINVAL (exit 2) for anything the user
 * named wrong, with a message naming the file or run. */
static int load_both(const opts *o, hx_db **dr, hx_db **dbase, hx_db_cmp_run *r, hx_db_cmp_run *b,
                     eng_err *err)
{
    if (hx_db_open(dr, o->db, HX_DB_READONLY, err) ||
        hx_db_open(dbase, o->baseline, HX_DB_READONLY, err))
        return ENG_EINVAL;
    int64_t id = hx_db_cmp_resolve(hx_db_sqlite(*dr), o->db, o->run, err);
    int rc = id ? hx_db_cmp_load(r, hx_db_sqlite(*dr), id, HX_DB_CMP_ROWS, err) : ENG_EINVAL;
    if (rc)
        return rc;
    id = o->baseline_run ? hx_db_cmp_resolve(hx_db_sqlite(*dbase), o->baseline, o->baseline_run, err)
                         : hx_db_cmp_latest_of_suite(hx_db_sqlite(*dbase), o->baseline, r->suite, err);
    rc = id ? hx_db_cmp_load(b, hx_db_sqlite(*dbase), id, HX_DB_CMP_ROWS, err) : ENG_EINVAL;
    if (!rc && !common_labels(b, r))
        rc = eng_err_set(err, ENG_EINVAL, "run %lld of %s and baseline run %lld of %s have no"
                         " experiment in common", (long long)r->id, o->db, (long long)b->id,
                         o->baseline);
    return rc;
}

static int regress(const opts *o)
{
    hx_db *dr = NULL, *dbase = NULL;
    hx_db_cmp_run r = {0}, b = {0};
    eng_err err = {0};
    int rc = load_both(o, &dr, &dbase, &r, &b, &err);
    if (rc) {
        rc = hx_cli_fail("regress", rc, "%s", err.msg);
    } else {
        rg g = {.base = &b, .run = &r, .tol = o->tol / 100, .exact_only = o->exact_only,
                .regressions = json_array(),
                .timings = json_array(), .unchecked = json_array(), .added = json_array()};
        for (size_t i = 0; i < b.nexps; i++)
            check_experiment(&g, &b.exps[i]);
        for (size_t i = 0; i < r.nexps; i++)
            if (!hx_db_cmp_find_exp(&b, r.exps[i].label))
                add(g.added, r.exps[i].label, NULL, "new", NULL, "not in the baseline (fine)");
        report(&g, o->baseline, o->db, o->json, o->verbose);
        rc = json_array_size(g.regressions) ? HX_CLI_EXIT_FAIL : HX_CLI_EXIT_OK;
        json_decref(g.regressions), json_decref(g.timings);
        json_decref(g.unchecked), json_decref(g.added);
    }
    hx_db_cmp_free(&r);
    hx_db_cmp_free(&b);
    if (dr)
        hx_db_close(dr);
    if (dbase)
        hx_db_close(dbase);
    return rc;
}

int hx_cli_cmd_regress(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},      {"baseline", required_argument, 0, 'b'},
        {"run", required_argument, 0, 'r'},     {"baseline-run", required_argument, 0, 'B'},
        {"tolerance", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
        {"verbose", no_argument, 0, 'v'},       {"help", no_argument, 0, 'h'},
        {"exact-only", no_argument, 0, 'x'},
        {0, 0, 0, 0},
    };
    opts o = {.db = "results/moebench.db", .run = "latest", .tol = 10};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+hv", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o.db = optarg; break;
        case 'b': o.baseline = optarg; break;
        case 'r': o.run = optarg; break;
        case 'B': o.baseline_run = optarg; break;
        case 't':
            if (hx_cli_parse_double("regress", "--tolerance", optarg, 0, 1e6, &o.tol))
                return HX_CLI_EXIT_USAGE;
            break;
        case 'j': o.json = 1; break;
        case 'v': o.verbose = 1; break;
        case 'x': o.exact_only = 1; break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("regress", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hx_cli_usage_error("regress", "unexpected argument '%s'", argv[optind]);
    if (!o.baseline)
        return hx_cli_usage_error("regress", "--baseline FILE is required");
    return regress(&o);
}
