/*
 * cmd_report.c — `moebench report [--db F] [RUN] [-o OUT.md|OUT.html]`:
 * the command line of the run report (harness/db/report.c writes it).
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
    "Exit 0 written, 1 the output could not be written, 2 bad usage, a missing\n"
    "database or an unknown run.\n";

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
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    opts o = {.db = "results/moebench.db"};
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
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("report", "unknown option or missing value '%s'",
                                       argv[optind - 1]);
        }
    }
    if (o.format && strcmp(o.format, "md") && strcmp(o.format, "html"))
        return hx_cli_usage_error("report", "--format must be md or html, not '%s'", o.format);
    if (!o.run)
        o.run = "latest";
    return report(&o);
}
