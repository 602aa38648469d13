/*
 * cmd_regress.c — `moebench regress --db NEW --baseline OLD`: checks one
 * run against a baseline run and exits 1 when something regressed or a
 * must-be-equal metric changed. The verdicts come from harness/db/regress.c
 * (which states the rules); this file parses the options and prints them
 * as text (grouped per experiment, the checks that are not ok), Markdown
 * (a pull-request comment) or JSON.
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "harness/db/db.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench regress [--db FILE] --baseline FILE [--run RUN] [--baseline-run RUN]\n"
    "                        [--tolerance PCT] [--exact-only] [--fail-on-change] [--all]\n"
    "                        [--format text|markdown|json | --json]\n\n"
    "Checks run RUN of --db against a baseline run, experiment by experiment, and\n"
    "says per experiment REGRESSED, CHANGED, IMPROVED or ok:\n"
    "  - a baseline experiment missing or failed, or a metric missing: REGRESSED;\n"
    "  - a deterministic metric (not a timing; its baseline repetitions agree) not\n"
    "    equal to 1e-9 relative: IMPROVED or REGRESSED by its direction, CHANGED\n"
    "    when it must be equal;\n"
    "  - a timing whose median moved by more than the tolerance AND (with 4 or more\n"
    "    repetitions a side) Mann-Whitney p < 0.05: IMPROVED or REGRESSED.\n"
    "Directions (higher / lower is better, must be equal) are declared by the suite\n"
    "(metrics = {...}) or the command's JSON (\"directions\"), else follow the name:\n"
    "speeds higher, times lower, hits higher, misses/evictions/bytes lower, the rest\n"
    "equal (docs/cli.md). Exit 0 no regression, 1 a regression or a change (with\n"
    "--fail-on-change an improvement too), 2 bad input (missing database, unknown\n"
    "run, the same run twice, no experiment in common).\n\n"
    "  --db FILE            database of the run to check (default results/moebench.db)\n"
    "  --baseline FILE      database of the baseline run (required; may be --db's file\n"
    "                       when --run and --baseline-run name two runs), or a\n"
    "                       baseline file (`moebench export RUN --baseline`)\n"
    "  --run RUN            run to check: id, UUID (prefix), 'latest', 'latest:SUITE'\n"
    "                       or a suite name (default latest)\n"
    "  --baseline-run RUN   baseline run (default: the baseline database's latest run\n"
    "                       of the checked run's suite)\n"
    "  --tolerance PCT      allowed change of a timing's median in percent (default 10)\n"
    "  --exact-only         skip the timings: experiments and deterministic metrics\n"
    "                       only (for shared CI machines)\n"
    "  --fail-on-change     an improvement fails too: the baseline is out of date\n"
    "  --all, -v            every experiment and every check, ok ones included\n"
    "  --format F           text (default), markdown (a pull-request comment) or json\n"
    "  --json               the same as --format json\n"
    "  -h, --help           this text\n";

/* ---- printing -------------------------------------------------------- */

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long cnt(const json_t *doc, const char *k)
{
    return (long long)json_integer_value(json_object_get(json_object_get(doc, "counts"), k));
}

static const char *upper(const char *verdict)
{
    return !strcmp(verdict, "regressed") ? "REGRESSED" : !strcmp(verdict, "improved")
               ? "IMPROVED" : !strcmp(verdict, "changed") ? "CHANGED" : "ok";
}

/* What was checked, for the header: under --exact-only no tolerance. */
static void checks_line(const json_t *doc, char *buf, size_t cap)
{
    const json_t *tol = json_object_get(doc, "tolerance_pct");
    if (json_is_null(tol))
        snprintf(buf, cap, "experiments and deterministic metrics (exactly); timings not checked"
                 " (--exact-only)");
    else
        snprintf(buf, cap, "experiments, deterministic metrics (exactly) and timings (median"
                 " change beyond %g %% and Mann-Whitney p < 0.05)", json_real_value(tol));
}

static void print_text(const json_t *doc, int all)
{
    const json_t *r = json_object_get(doc, "run"), *b = json_object_get(doc, "baseline");
    char checks[256];
    checks_line(doc, checks, sizeof checks);
    printf("run %lld (%s, %s) of %s\nagainst baseline run %lld (%s, %s) of %s\nchecks: %s\n",
           (long long)json_integer_value(json_object_get(r, "id")), str(r, "suite"),
           str(r, "started_at"), str(r, "db"),
           (long long)json_integer_value(json_object_get(b, "id")), str(b, "suite"),
           str(b, "started_at"), str(b, "db"), checks);
    size_t i, j;
    json_t *e, *m;
    json_array_foreach(json_object_get(doc, "experiments"), i, e) {
        int ok = !strcmp(str(e, "verdict"), "ok");
        if (ok && !all)
            continue;
        printf("\n%-9s  %s\n", upper(str(e, "verdict")), str(e, "experiment"));
        json_array_foreach(json_object_get(e, "metrics"), j, m) {
            const char *v = str(m, "verdict");
            if (!all && (!strcmp(v, "ok") || !strcmp(v, "unchecked")))
                continue;
            const char *name = json_object_get(m, "metric") ? str(m, "metric") : "";
            printf("  %-9s  %s%s%s\n", !strcmp(v, "unchecked") ? "unchecked" : upper(v), name,
                   *name ? ": " : "", str(m, "message"));
        }
    }
    json_array_foreach(json_object_get(doc, "new_experiments"), i, e)
        printf("%snew        %s (not in the baseline; fine)\n", i ? "" : "\n",
               json_string_value(e));
    char timings[256] = "timings not checked";
    if (!json_is_null(json_object_get(doc, "tolerance_pct")))
        snprintf(timings, sizeof timings, "%lld timings (%lld by the tolerance only: too few"
                 " repetitions for the rank test to reach p < 0.05)", cnt(doc, "timings"),
                 cnt(doc, "tolerance_only"));
    printf("\n%lld baseline experiments: %lld regressed, %lld changed, %lld improved, %lld ok;"
           " %lld deterministic metrics checked exactly, %s, %lld unchecked%s\n",
           cnt(doc, "experiments"), cnt(doc, "regressed"), cnt(doc, "changed"),
           cnt(doc, "improved"), cnt(doc, "ok"), cnt(doc, "exact"), timings,
           cnt(doc, "unchecked"), all ? "" : " (--all lists every check)");
    long long nreg = cnt(doc, "regressed"), nch = cnt(doc, "changed");
    if (nreg)
        printf("%lld regression%s\n", nreg, nreg == 1 ? "" : "s");
    else if (nch)
        printf("no regression, but %lld changed\n", nch);
    else
        printf("no regression\n");
    if (json_is_true(json_object_get(doc, "fail_on_change")) && cnt(doc, "improved"))
        printf("%lld improved: fails under --fail-on-change (update the baseline on purpose)\n",
               cnt(doc, "improved"));
}

/* Markdown for a pull-request comment: a verdict line, a table of the
 * checks that are not ok, the counts. Text from the database is escaped. */
static void md_cell(const char *s)
{
    for (; *s; s++) {
        if (strchr("|\\`*_<>[]", *s))
            putchar('\\');
        putchar(*s == '\n' ? ' ' : *s);
    }
}

static void print_markdown(const json_t *doc, int all)
{
    const json_t *r = json_object_get(doc, "run"), *b = json_object_get(doc, "baseline");
    long long nreg = cnt(doc, "regressed"), nch = cnt(doc, "changed"), nimp = cnt(doc, "improved");
    int failed = json_is_true(json_object_get(doc, "failed"));
    printf("### moebench regress: %s\n\n", failed ? (nreg ? "regression" : "changed") :
           nimp ? "improved" : "no regression");
    printf("Run %lld (`", (long long)json_integer_value(json_object_get(r, "id")));
    md_cell(str(r, "suite"));
    printf("`, %s) against baseline run %lld (%s).", str(r, "started_at"),
           (long long)json_integer_value(json_object_get(b, "id")), str(b, "started_at"));
    char checks[256];
    checks_line(doc, checks, sizeof checks);
    printf(" Checks: %s.\n\n", checks);
    printf("| | experiments |\n|---|---:|\n| regressed | %lld |\n| changed | %lld |\n"
           "| improved | %lld |\n| ok | %lld |\n\n", nreg, nch, nimp, cnt(doc, "ok"));
    int head = 0;
    size_t i, j;
    json_t *e, *m;
    json_array_foreach(json_object_get(doc, "experiments"), i, e)
        json_array_foreach(json_object_get(e, "metrics"), j, m) {
            const char *v = str(m, "verdict");
            if (!all && (!strcmp(v, "ok") || !strcmp(v, "unchecked")))
                continue;
            if (!head++)
                printf("| verdict | experiment | metric | baseline | run | change |\n"
                       "|---|---|---|---:|---:|---:|\n");
            printf("| %s | ", !strcmp(v, "unchecked") ? "unchecked" : upper(v));
            md_cell(str(e, "experiment"));
            printf(" | ");
            md_cell(json_object_get(m, "metric") ? str(m, "metric") : str(m, "check"));
            const json_t *bv = json_object_get(m, "baseline"), *rv = json_object_get(m, "value");
            const json_t *cp = json_object_get(m, "change_pct");
            if (json_is_number(bv) && json_is_number(rv))
                printf(" | %.6g | %.6g | %s%.3g %% |\n", json_number_value(bv),
                       json_number_value(rv), json_number_value(cp) > 0 ? "+" : "",
                       json_is_number(cp) ? json_number_value(cp) : 0.0);
            else {
                printf(" | | | ");
                md_cell(str(m, "message"));
                printf(" |\n");
            }
        }
    if (head)
        putchar('\n');
    printf("%lld deterministic metrics checked exactly, %lld timings, %lld unchecked; %zu new"
           " experiments.\n", cnt(doc, "exact"), cnt(doc, "timings"), cnt(doc, "unchecked"),
           json_array_size(json_object_get(doc, "new_experiments")));
}

static int common_labels(const hx_db_cmp_run *a, const hx_db_cmp_run *b)
{
    for (size_t i = 0; i < a->nexps; i++)
        if (hx_db_cmp_find_exp(b, a->exps[i].label))
            return 1;
    return 0;
}

enum { FMT_TEXT, FMT_JSON, FMT_MARKDOWN };

typedef struct opts {
    const char *db, *baseline, *run, *baseline_run;
    double tol;
    int format, all, exact_only, fail_on_change;
} opts;

/* Opens and loads both runs; ENG_EINVAL (exit 2) for anything the user
 * named wrong, with a message naming the file or run. */
static int load_both(const opts *o, hx_db **dr, hx_db **dbase, hx_db_cmp_run *r, hx_db_cmp_run *b,
                     eng_err *err)
{
    int file = hx_db_baseline_is(o->baseline); /* a committed baseline, not a database */
    if (file && o->baseline_run)
        return eng_err_set(err, ENG_EINVAL, "%s is a baseline file (one run): --baseline-run"
                           " does not apply", o->baseline);
    if (hx_db_open(dr, o->db, HX_DB_READONLY, err) ||
        (!file && hx_db_open(dbase, o->baseline, HX_DB_READONLY, err)))
        return ENG_EINVAL;
    int64_t id = hx_db_cmp_resolve(hx_db_sqlite(*dr), o->db, o->run, err);
    int rc = id ? hx_db_cmp_load(r, hx_db_sqlite(*dr), id, HX_DB_CMP_ROWS, err) : ENG_EINVAL;
    if (rc)
        return rc;
    if (file) {
        if ((rc = hx_db_baseline_load(b, o->baseline, err)))
            return ENG_EINVAL;
    } else {
        id = o->baseline_run
                 ? hx_db_cmp_resolve(hx_db_sqlite(*dbase), o->baseline, o->baseline_run, err)
                 : hx_db_cmp_latest_of_suite(hx_db_sqlite(*dbase), o->baseline, r->suite, err);
        rc = id ? hx_db_cmp_load(b, hx_db_sqlite(*dbase), id, HX_DB_CMP_ROWS, err) : ENG_EINVAL;
    }
    if (!rc && !strcmp(r->uuid, b->uuid))
        rc = eng_err_set(err, ENG_EINVAL, "run %lld of %s and baseline run %lld of %s are the"
                         " same run (UUID %s): nothing to compare; name another baseline"
                         " (--baseline FILE, --baseline-run RUN)", (long long)r->id, o->db,
                         (long long)b->id, o->baseline, r->uuid);
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
        hx_db_regress_opts ro = {.tolerance_pct = o->tol, .exact_only = o->exact_only,
                                 .fail_on_change = o->fail_on_change};
        json_t *doc = hx_db_regress(&b, o->baseline, &r, o->db, &ro);
        if (o->format == FMT_JSON) {
            json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
            putchar('\n');
        } else if (o->format == FMT_MARKDOWN) {
            print_markdown(doc, o->all);
        } else {
            print_text(doc, o->all);
        }
        rc = json_is_true(json_object_get(doc, "failed")) ? HX_CLI_EXIT_FAIL : HX_CLI_EXIT_OK;
        json_decref(doc);
        if (fflush(stdout) != 0 || ferror(stdout))
            rc = hx_cli_fail("regress", ENG_EIO, "writing the report: %s", strerror(errno));
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
        {"exact-only", no_argument, 0, 'x'},   {"all", no_argument, 0, 'a'},
        {"format", required_argument, 0, 'f'}, {"fail-on-change", no_argument, 0, 'F'},
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
        case 'j': o.format = FMT_JSON; break;
        case 'a':
        case 'v': o.all = 1; break;
        case 'x': o.exact_only = 1; break;
        case 'F': o.fail_on_change = 1; break;
        case 'f':
            if (!strcmp(optarg, "text"))
                o.format = FMT_TEXT;
            else if (!strcmp(optarg, "json"))
                o.format = FMT_JSON;
            else if (!strcmp(optarg, "markdown") || !strcmp(optarg, "md"))
                o.format = FMT_MARKDOWN;
            else
                return hx_cli_usage_error("regress", "--format must be text, json or markdown,"
                                                     " not '%s'", optarg);
            break;
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
