/*
 * cmd_report.c — `moebench report [--db F] [RUN] [-o OUT.md|OUT.html]`:
 * the command line of the run report (harness/db/report.c writes it), and
 * of `report --history`, the dashboard of every run (harness/db/dashboard.c).
 */
#include "harness/cli/cli.h"
#include "harness/cli/cli_impl.h"
#include "harness/db/db.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench report [--db FILE] [RUN] [-o OUT.md|OUT.html] [--format md|html]\n"
    "                       [--title TEXT]\n\n"
    "Writes one run as a Markdown or HTML report: the run's header (suite, UUID,\n"
    "status, times, machine, build), its experiments with the means and 95 % CIs of\n"
    "tokens_per_s, hit_rate and wall_ms, a policy x cache-size table with charts\n"
    "when experiments have a 'policy' parameter, and SRP best F1 per segment length\n"
    "with the model-wide hit-rate curves when the run has routing_metric rows.\n"
    "RUN is a run id, a UUID (or a prefix of at least 4 characters), 'latest',\n"
    "'latest:SUITE' or a suite name (its latest run); default latest.\n\n"
    "  --db FILE        database (default results/moebench.db)\n"
    "  -o, --output F   write to F (default stdout); the format follows its\n"
    "                   extension (.html/.htm: HTML, else Markdown). Markdown\n"
    "                   charts go to F-NAME.svg beside F (F without .md)\n"
    "  --format FMT     md or html (overrides the extension). Markdown on stdout\n"
    "                   has no charts (it says so); HTML embeds them inline\n"
    "  --title TEXT     the document's title (default 'moebench report: SUITE')\n"
    "  -h, --help       this text\n\n"
    "usage: moebench report --history [--db FILE] [-o OUT.html] [--suite S[,S...]]\n"
    "                       [--metric GLOBS] [--machine HOST] [--order time|git[:REF]]\n"
    "                       [--title TEXT]\n\n"
    "Writes every run of the database as one self-contained HTML dashboard: per\n"
    "suite the followed metrics over the runs (as `moebench trend`: medians per run,\n"
    "change points by E-divisive means marked), each point a link to its run, the\n"
    "change points in a table, and every run with its commit, host, status and\n"
    "experiments.\n"
    "  --history        the dashboard instead of one run's report\n"
    "  --suite S,...    only these suites (default all)\n"
    "  --metric GLOBS   metrics to chart, comma-separated globs (default\n"
    "                   tokens_per_s,hit_rate,wall_ms)\n"
    "  --machine HOST   only runs on this host\n"
    "  --order O        time (default) or git[:REF], as for `moebench trend`\n\n"
    "Exit 0 written, 1 the output could not be written, 2 bad usage, a missing\n"
    "database or an unknown run.\n";

typedef struct hopts {
    int history;
    const char *suites, *metric, *machine, *order;
} hopts;

static int history(const char *path, const char *out, const char *title, const hopts *h)
{
    hx_db_dashboard_opts d = {.suites = h->suites, .title = title,
                              .trend = {.metric = h->metric ? h->metric
                                                            : "tokens_per_s,hit_rate,wall_ms",
                                        .machine = h->machine,
                                        .cp = {.min_size = 3, .permutations = 199, .sig = 0.05,
                                               .alpha = 1, .seed = 1}}};
    char **order = NULL;
    size_t norder = 0;
    if (h->order && !strncmp(h->order, "git", 3)) {
        const char *ref = h->order[3] == ':' && h->order[4] ? h->order + 4 : "HEAD";
        if (hx_cli_git_order(ref, &order, &norder))
            return hx_cli_fail("report", ENG_EINVAL, "--order %s: `git rev-list --first-parent"
                               " %s` failed here", h->order, ref);
        d.trend.order = (const char *const *)order, d.trend.norder = norder;
    }
    hx_db *db;
    eng_err err = {0};
    int rc = HX_CLI_EXIT_OK;
    if (hx_db_open(&db, path, HX_DB_READONLY, &err)) {
        hx_cli_git_order_free(order, norder);
        return hx_cli_fail("report", ENG_EINVAL, "%s", err.msg);
    }
    FILE *f = stdout;
    if (out && !(f = fopen(out, "w")))
        rc = hx_cli_fail("report", ENG_EIO, "cannot write %s: %s", out, strerror(errno));
    if (!rc && hx_db_dashboard_write(f, hx_db_sqlite(db), path, &d, &err))
        rc = hx_cli_fail("report", err.code, "%s", err.msg);
    if (f && f != stdout && fclose(f) != 0 && !rc)
        rc = hx_cli_fail("report", ENG_EIO, "cannot write %s: %s", out, strerror(errno));
    hx_db_close(db);
    hx_cli_git_order_free(order, norder);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

typedef struct opts {
    const char *db, *run, *out, *format, *title;
} opts;

static int report(const opts *o)
{
    hx_db_report_opts ro = {.title = o->title};
    char base[1024] = "";
    if (o->format)
        ro.html = !strcmp(o->format, "html");
    else if (o->out)
        ro.html = ends_with(o->out, ".html") || ends_with(o->out, ".htm");
    if (o->out && !ro.html)
        snprintf(base, sizeof base, "%.*s", (int)(strlen(o->out) -
                 (ends_with(o->out, ".md") ? 3 : 0)), o->out);
    ro.chart_base = base;
    hx_db *db;
    eng_err err = {0};
    if (hx_db_open(&db, o->db, HX_DB_READONLY, &err))
        return hx_cli_fail("report", ENG_EINVAL, "%s", err.msg); /* as compare/regress: bad input */
    sqlite3 *s = hx_db_sqlite(db);
    int64_t run = hx_db_cmp_resolve(s, o->db, o->run, &err);
    int rc = run ? HX_CLI_EXIT_OK : hx_cli_fail("report", ENG_EINVAL, "%s", err.msg);
    FILE *f = stdout;
    if (!rc && o->out && !(f = fopen(o->out, "w")))
        rc = hx_cli_fail("report", ENG_EIO, "cannot write %s: %s", o->out, strerror(errno));
    if (!rc && hx_db_report_write(f, s, run, &ro, &err))
        rc = hx_cli_fail("report", err.code, "%s", err.msg);
    if (f && f != stdout && fclose(f) != 0 && !rc)
        rc = hx_cli_fail("report", ENG_EIO, "cannot write %s: %s", o->out, strerror(errno));
    else if (f == stdout && (fflush(stdout) != 0 || ferror(stdout)) && !rc)
        rc = hx_cli_fail("report", ENG_EIO, "cannot write the report: %s", strerror(errno));
    hx_db_close(db);
    return rc;
}

int hx_cli_cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},     {"output", required_argument, 0, 'o'},
        {"format", required_argument, 0, 'f'}, {"title", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},         {"history", no_argument, 0, 'H'},
        {"suite", required_argument, 0, 's'},  {"metric", required_argument, 0, 'm'},
        {"machine", required_argument, 0, 'M'}, {"order", required_argument, 0, 'O'},
        {0, 0, 0, 0},
    };
    opts o = {.db = "results/moebench.db"};
    hopts h = {0};
    int c;
    opterr = 0;
    while (optind < argc) {
        if ((c = getopt_long(argc, argv, "+ho:", longopts, NULL)) == -1) {
            if (o.run)
                return hx_cli_usage_error("report", "unexpected argument '%s'", argv[optind]);
            o.run = argv[optind++];
            continue;
        }
        switch (c) {
        case 'd': o.db = optarg; break;
        case 'o': o.out = optarg; break;
        case 'f': o.format = optarg; break;
        case 't': o.title = optarg; break;
        case 'H': h.history = 1; break;
        case 's': h.suites = optarg; break;
        case 'm': h.metric = optarg; break;
        case 'M': h.machine = optarg; break;
        case 'O': h.order = optarg; break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("report", "unknown option or missing value '%s'",
                                       argv[optind - 1]);
        }
    }
    if (o.format && strcmp(o.format, "md") && strcmp(o.format, "html"))
        return hx_cli_usage_error("report", "--format must be md or html, not '%s'", o.format);
    if (!h.history && (h.suites || h.metric || h.machine || h.order))
        return hx_cli_usage_error("report", "--suite, --metric, --machine and --order go with"
                                            " --history");
    if (h.history && o.run)
        return hx_cli_usage_error("report", "--history covers every run: no RUN");
    if (h.history && o.format && strcmp(o.format, "html"))
        return hx_cli_usage_error("report", "--history writes HTML only");
    if (h.order && strcmp(h.order, "time") && strncmp(h.order, "git", 3))
        return hx_cli_usage_error("report", "--order must be time or git[:REF]");
    if (h.history)
        return history(o.db, o.out, o.title, &h);
    if (!o.run)
        o.run = "latest";
    return report(&o);
}
