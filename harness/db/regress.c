/*
 * regress.c — one run checked against a baseline run, experiment by
 * experiment (matched by label): the verdicts `moebench regress` prints.
 * See db.h, "regress", and docs/cli.md.
 *
 * The rules:
 *  - a baseline experiment missing from the run, failed in the run but ok
 *    in the baseline, or missing one of the baseline's metrics, regressed;
 *    experiments new in the run are listed and fine;
 *  - a timing (hx_db_cmp_metric_class) whose direction is higher or lower
 *    is judged on the medians: beyond the tolerance in the worse direction
 *    AND Mann-Whitney p < 0.05 regressed, the same in the better direction
 *    improved, else ok; with too few repetitions for p to reach 0.05 the
 *    tolerance alone decides (and the verdict says so);
 *  - every other metric (counts, rates, bytes, token ids, routing rows) and
 *    any metric declared `equal` is deterministic when the baseline's
 *    repetitions agree: each of the run's values must equal it (relative
 *    1e-9). A difference is improved or regressed by the metric's direction
 *    (hx_db_cmp_direction), or changed when the direction is `equal`.
 *    When the baseline's repetitions disagree the metric is unchecked.
 *
 * An experiment's verdict is its worst check: regressed > changed >
 * improved > ok. The result is a JSON document so that the text,
 * Markdown and JSON printers share one source of truth.
 */
#include "harness/db/db.h"

#include "metrics/stats.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ALPHA 0.05
#define REL_EXACT 1e-9

const char *hx_db_verdict_name(hx_db_verdict v)
{
    static const char *const names[] = {"ok", "improved", "changed", "regressed"};
    return v >= HX_DB_OK && v <= HX_DB_REGRESSED ? names[v] : "?";
}

typedef struct rg {
    const hx_db_cmp_run *base, *run;
    const hx_db_regress_opts *o;
    json_t *exps;               /* array of experiment objects            */
    long n_exact, n_timing, n_tol_only, n_unchecked, n_new;
    long by_verdict[4];         /* experiments per verdict                */
} rg;

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* Appends a check to exp's "metrics" and raises exp's verdict. */
static void add(json_t *exp, const char *metric, const char *check, hx_db_verdict v,
                json_t *extra, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add(json_t *exp, const char *metric, const char *check, hx_db_verdict v,
                json_t *extra, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s?, s:s, s:s, s:s}", "metric", metric, "check", check,
                          "verdict", check[0] == 'u' ? "unchecked" : hx_db_verdict_name(v),
                          "message", msg);
    if (extra)
        json_object_update(o, extra), json_decref(extra);
    json_array_append_new(json_object_get(exp, "metrics"), o);
    if ((json_int_t)v > json_integer_value(json_object_get(exp, "rank")))
        json_object_set_new(exp, "rank", json_integer(v));
}

static int same(double a, double b)
{
    return a == b || fabs(a - b) <= REL_EXACT * fmax(fabs(a), fabs(b));
}

static double change_pct(double now, double before)
{
    return before != 0 ? 100 * (now / before - 1) : NAN;
}

static void check_exact(rg *g, json_t *exp, const hx_db_cmp_metric *b, const hx_db_cmp_metric *r,
                        hx_db_dir dir)
{
    for (size_t i = 1; i < b->n; i++)
        if (b->v[i] != b->v[0]) {
            g->n_unchecked++;
            add(exp, b->metric, "unstable", HX_DB_OK, NULL,
                "not checked: its %zu baseline repetitions differ (%.6g, %.6g, ...)", b->n,
                b->v[0], b->v[i]);
            return;
        }
    g->n_exact++;
    size_t i = 0;
    while (i < r->n && same(r->v[i], b->v[0]))
        i++;
    double was = b->v[0], now = i < r->n ? r->v[i] : (r->n ? r->v[0] : NAN);
    hx_db_verdict v = i == r->n ? HX_DB_OK
                      : dir == HX_DB_DIR_EQUAL ? HX_DB_CHANGED
                      : (now > was) == (dir == HX_DB_DIR_HIGHER) ? HX_DB_IMPROVED
                                                                 : HX_DB_REGRESSED;
    json_t *extra = json_pack("{s:s, s:o, s:o, s:o}", "direction", hx_db_dir_name(dir),
                              "baseline", num(was), "value", num(now), "change_pct",
                              num(change_pct(now, was)));
    if (v == HX_DB_OK)
        add(exp, b->metric, "exact", v, extra, "%.6g, equal to the baseline", was);
    else
        add(exp, b->metric, "exact", v,
            (json_object_set_new(extra, "rep", json_integer((json_int_t)i)), extra),
            "%.6g -> %.6g (%+.3g %%; repetition %zu; deterministic, %s)", was, now,
            change_pct(now, was), i,
            dir == HX_DB_DIR_EQUAL ? "must be equal"
            : dir == HX_DB_DIR_HIGHER ? "higher is better" : "lower is better");
}

static void check_timing(rg *g, json_t *exp, const hx_db_cmp_metric *b, const hx_db_cmp_metric *r,
                         hx_db_dir dir)
{
    double mb = met_stats_percentile(b->v, b->n, 50), mr = met_stats_percentile(r->v, r->n, 50);
    if (!(mb != 0) || !isfinite(mr)) {
        g->n_unchecked++;
        add(exp, b->metric, "unchecked", HX_DB_OK, NULL,
            "not checked: the baseline median is %g, no relative change to judge", mb);
        return;
    }
    g->n_timing++;
    double change = mr / mb - 1, better = dir == HX_DB_DIR_HIGHER ? change : -change;
    int tol_only = met_stats_mwu_min_p(b->n, r->n) >= ALPHA;
    met_mwu u = {.p = NAN};
    eng_err err = {0};
    if (!tol_only && met_stats_mann_whitney(b->v, b->n, r->v, r->n, &u, &err))
        u.p = NAN;
    g->n_tol_only += tol_only;
    int signif = tol_only || u.p < ALPHA;
    double tol = g->o->tolerance_pct / 100;
    hx_db_verdict v = signif && -better > tol ? HX_DB_REGRESSED
                      : signif && better > tol ? HX_DB_IMPROVED
                                               : HX_DB_OK;
    char test[160];
    if (tol_only)
        snprintf(test, sizeof test, "n %zu/%zu: too few repetitions for the rank test to reach"
                 " p < %.2g, tolerance only", b->n, r->n, ALPHA);
    else
        snprintf(test, sizeof test, "Mann-Whitney p = %.3g, n %zu/%zu", u.p, b->n, r->n);
    add(exp, b->metric, "timing", v,
        json_pack("{s:s, s:o, s:o, s:f, s:o, s:b, s:I, s:I}", "direction", hx_db_dir_name(dir),
                  "baseline", num(mb), "value", num(mr), "change_pct", 100 * change, "p",
                  num(u.p), "tolerance_only", tol_only, "n_baseline", (json_int_t)b->n, "n",
                  (json_int_t)r->n),
        "median %.6g -> %.6g (%+.1f %%, %s is better; %s)", mb, mr, 100 * change,
        dir == HX_DB_DIR_HIGHER ? "higher" : "lower", test);
}

static void check_metrics(rg *g, json_t *exp, const char *label)
{
    for (size_t i = 0; i < g->base->nm; i++) { /* a few thousand groups: a scan will do */
        const hx_db_cmp_metric *b = &g->base->m[i];
        if (strcmp(b->label, label))
            continue;
        const hx_db_cmp_metric *r = hx_db_cmp_find(g->run, b->label, b->metric);
        hx_db_dir dir = hx_db_cmp_direction(g->run, label, b->metric);
        int timing = hx_db_cmp_metric_class(b->metric, NULL) == HX_DB_CMP_TIMING &&
                     dir != HX_DB_DIR_EQUAL;
        if (!r)
            add(exp, b->metric, "missing metric", HX_DB_REGRESSED, NULL,
                "in the baseline, not in the run");
        else if (timing && g->o->exact_only)
            g->n_unchecked++, add(exp, b->metric, "unchecked", HX_DB_OK, NULL,
                                  "a timing, not checked (--exact-only)");
        else if (timing)
            check_timing(g, exp, b, r, dir);
        else
            check_exact(g, exp, b, r, dir);
    }
}

static json_t *check_experiment(rg *g, const hx_db_cmp_exp *be)
{
    json_t *exp = json_pack("{s:s, s:i, s:[]}", "experiment", be->label, "rank", 0, "metrics");
    const hx_db_cmp_exp *re = hx_db_cmp_find_exp(g->run, be->label);
    if (!re)
        add(exp, NULL, "missing experiment", HX_DB_REGRESSED, NULL,
            "in the baseline, not in the run");
    else if (!strcmp(be->status, "ok") && strcmp(re->status, "ok"))
        add(exp, NULL, "failed", HX_DB_REGRESSED, NULL,
            "failed in the run, ok in the baseline: %.300s", re->error);
    else
        check_metrics(g, exp, be->label);
    hx_db_verdict v = (hx_db_verdict)json_integer_value(json_object_get(exp, "rank"));
    json_object_del(exp, "rank");
    json_object_set_new(exp, "verdict", json_string(hx_db_verdict_name(v)));
    g->by_verdict[v]++;
    return exp;
}

static json_t *run_json(const hx_db_cmp_run *r, const char *path)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s}", "db", path, "id", (json_int_t)r->id, "uuid",
                     r->uuid, "suite", r->suite, "started_at", r->started_at);
}

json_t *hx_db_regress(const hx_db_cmp_run *base, const char *base_path, const hx_db_cmp_run *run,
                      const char *run_path, const hx_db_regress_opts *o)
{
    rg g = {.base = base, .run = run, .o = o, .exps = json_array()};
    for (size_t i = 0; i < base->nexps; i++)
        json_array_append_new(g.exps, check_experiment(&g, &base->exps[i]));
    json_t *added = json_array();
    for (size_t i = 0; i < run->nexps; i++)
        if (!hx_db_cmp_find_exp(base, run->exps[i].label))
            json_array_append_new(added, json_string(run->exps[i].label));
    long bad = g.by_verdict[HX_DB_REGRESSED] + g.by_verdict[HX_DB_CHANGED] +
               (o->fail_on_change ? g.by_verdict[HX_DB_IMPROVED] : 0);
    return json_pack(
        "{s:o, s:o, s:o, s:b, s:b, s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
        " s:o, s:o}",
        "run", run_json(run, run_path), "baseline", run_json(base, base_path), "tolerance_pct",
        o->exact_only ? json_null() : json_real(o->tolerance_pct), "exact_only", o->exact_only,
        "fail_on_change", o->fail_on_change, "failed", bad > 0, "counts", "experiments",
        (json_int_t)base->nexps, "regressed", (json_int_t)g.by_verdict[HX_DB_REGRESSED],
        "changed", (json_int_t)g.by_verdict[HX_DB_CHANGED], "improved",
        (json_int_t)g.by_verdict[HX_DB_IMPROVED], "ok", (json_int_t)g.by_verdict[HX_DB_OK],
        "exact", (json_int_t)g.n_exact, "timings", (json_int_t)g.n_timing, "tolerance_only",
        (json_int_t)g.n_tol_only, "unchecked", (json_int_t)g.n_unchecked, "experiments",
        g.exps, "new_experiments", added);
}
