/*
 * cmd_export.c — `moebench export [--db F] RUN --json|--csv`: one run with
 * everything it recorded, for other tools. The JSON document is built by
 * SQLite's JSON functions in one query (export_sql); CSV is the long
 * format, one row per (experiment, repetition, metric). `--baseline` writes
 * the run's deterministic metrics as a reviewable baseline file
 * (harness/db/baseline.c) for `regress --baseline FILE`.
 */
#include "harness/cli/cli.h"
#include "harness/db/db.h"
#include "harness/cli/cli_impl.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: moebench export [--db FILE] RUN (--json | --csv | --baseline)\n\n"
    "Writes one run to stdout. RUN is a run id, a UUID (or a prefix of at least 4\n"
    "characters), 'latest', 'latest:SUITE', or a suite name (its latest run).\n"
    "  --json  one object: run, machine, build, experiments (params, samples,\n"
    "          summary, series, cache_stats, routing_metrics, counters)\n"
    "  --csv   one row per experiment, repetition and metric:\n"
    "          run_id,experiment_id,seq,experiment,label,kind,status,params,rep,metric,value\n"
    "  --baseline  the run's deterministic metrics (every metric that is not a\n"
    "          timing and is the same in every repetition: samples, cache_stats and\n"
    "          routing_metric rows) as sorted JSON, one value per line: a baseline\n"
    "          to commit and check with `moebench regress --baseline FILE`\n\n"
    "  --db FILE   database (default results/moebench.db)\n"
    "  -h, --help  this text\n";

#define ROWS(cols, table) \
    "(SELECT json_group_array(json_object(" cols ")) FROM (SELECT * FROM " table \
    " t WHERE t.experiment_id = e.id))"

static const char export_sql[] =
    "SELECT json_object('run', json_object('id', r.id, 'uuid', r.uuid, 'suite', r.suite,"
    " 'file', r.file, 'started_at', r.started_at, 'finished_at', r.finished_at, 'status',"
    " r.status, 'options', json(r.options), 'cli', json(r.cli)),"
    " 'machine', json(m.info), 'build', json(b.info),"
    " 'experiments', (SELECT json_group_array(json(x)) FROM (SELECT json_object('id', e.id,"
    " 'uuid', e.uuid, 'seq', e.seq, 'name', e.name, 'label', e.label, 'kind', e.kind,"
    " 'status', e.status, 'error', e.error, 'params', json(e.params), 'args', json(e.args),"
    " 'events', json(e.events), 'warmup', e.warmup, 'reps', e.reps, 'reps_done', e.reps_done,"
    " 'samples', " ROWS("'rep', rep, 'metric', metric, 'value', value", "sample") ","
    " 'summary', " ROWS("'metric', metric, 'n', n, 'mean', mean, 'median', median, 'min', min,"
                        " 'max', max, 'stddev', stddev, 'p50', p50, 'p90', p90, 'p99', p99,"
                        " 'ci_lo', ci_lo, 'ci_hi', ci_hi", "summary") ","
    " 'series', " ROWS("'rep', rep, 'metric', metric, 'idx', idx, 'value', value", "series") ","
    " 'cache_stats', " ROWS("'rep', rep, 'layer', layer, 'accesses', accesses, 'hits', hits,"
                            " 'misses', misses, 'evictions', evictions, 'prefetch_issued',"
                            " prefetch_issued, 'prefetch_useful', prefetch_useful,"
                            " 'bytes_loaded', bytes_loaded, 'prefetch_wasted_bytes',"
                            " prefetch_wasted_bytes, 'stall_ns', stall_ns", "cache_stats") ","
    " 'routing_metrics', " ROWS("'rep', rep, 'trace', trace, 'layer', layer, 'metric', metric,"
                                " 'param', param, 'value', value, 'ci_lo', ci_lo, 'ci_hi',"
                                " ci_hi", "routing_metric") ","
    " 'counters', " ROWS("'rep', rep, 'region', region, 'event', event, 'value', value,"
                         " 'enabled_ns', enabled_ns, 'running_ns', running_ns", "counter")
    ") AS x FROM experiment e WHERE e.run_id = r.id ORDER BY e.seq)))"
    " FROM run r LEFT JOIN machine m ON m.id = r.machine_id"
    " LEFT JOIN build b ON b.id = r.build_id WHERE r.id = ?";

static const char csv_sql[] =
    "SELECT e.run_id, e.id AS experiment_id, e.seq, e.name AS experiment, e.label, e.kind,"
    " e.status, e.params, s.rep, s.metric, s.value FROM experiment e"
    " JOIN sample s ON s.experiment_id = e.id WHERE e.run_id = ?"
    " ORDER BY e.seq, s.rep, s.metric";

static int export_baseline(sqlite3 *db, int64_t id)
{
    hx_db_cmp_run r;
    eng_err err = {0};
    int rc = hx_db_cmp_load(&r, db, id, HX_DB_CMP_ROWS, &err);
    if (rc)
        return hx_cli_fail("export", rc, "%s", err.msg);
    sqlite3_stmt *st;
    char commit[64] = "";
    if (sqlite3_prepare_v2(db, "SELECT b.commit_hash FROM run r JOIN build b ON b.id ="
                               " r.build_id WHERE r.id = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(commit, sizeof commit, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    json_t *doc = hx_db_baseline_make(&r, commit);
    hx_db_cmp_free(&r);
    if (!doc)
        return hx_cli_fail("export", ENG_ENOMEM, "out of memory");
    json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    putchar('\n');
    json_decref(doc);
    return HX_CLI_EXIT_OK;
}

static int export_run(sqlite3 *db, int64_t id, int csv)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, csv ? csv_sql : export_sql, -1, &st, NULL) != SQLITE_OK)
        return hx_cli_fail("export", ENG_EFORMAT, "%s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, id);
    int rc = HX_CLI_EXIT_OK;
    eng_err qe = {0};
    if (csv) {
        if ((rc = hx_db_query_print(stdout, db, st, HX_DB_OUT_CSV, &qe)))
            rc = hx_cli_fail("export", rc, "%s", qe.msg);
    } else if (sqlite3_step(st) == SQLITE_ROW) {
        json_error_t je;
        json_t *doc = json_loads((const char *)sqlite3_column_text(st, 0), 0, &je);
        json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(doc);
    } else {
        rc = hx_cli_fail("export", ENG_EIO, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc;
}

int hx_cli_cmd_export(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'}, {"csv", no_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},     {"help", no_argument, 0, 'h'},
        {"baseline", no_argument, 0, 'b'}, {0, 0, 0, 0},
    };
    const char *path = "results/moebench.db", *run = NULL;
    int fmt = -1, c;
    opterr = 0;
    while (optind < argc) {
        if ((c = getopt_long(argc, argv, "+h", longopts, NULL)) == -1) {
            if (run)
                return hx_cli_usage_error("export", "unexpected argument '%s'", argv[optind]);
            run = argv[optind++];
            continue;
        }
        switch (c) {
        case 'd': path = optarg; break;
        case 'c': fmt = 1; break;
        case 'j': fmt = 0; break;
        case 'b': fmt = 2; break;
        case 'h': fputs(usage_text, stdout); return HX_CLI_EXIT_OK;
        default: return hx_cli_usage_error("export", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!run)
        return hx_cli_usage_error("export", "no RUN given");
    if (fmt < 0)
        return hx_cli_usage_error("export", "choose --json, --csv or --baseline");
    hx_db *db;
    eng_err err = {0};
    int rc = hx_db_open(&db, path, HX_DB_READONLY, &err);
    if (rc)
        return hx_cli_fail("export", rc, "%s", err.msg);
    int64_t id = hx_db_cmp_resolve(hx_db_sqlite(db), path, run, &err);
    rc = !id ? hx_cli_fail("export", ENG_EINVAL, "%s", err.msg)
         : fmt == 2 ? export_baseline(hx_db_sqlite(db), id)
                    : export_run(hx_db_sqlite(db), id, fmt);
    hx_db_close(db);
    return rc;
}
