/*
 * baseline.c — a run's deterministic metrics as a small JSON file that can
 * be committed and reviewed (`moebench export --baseline`), and read back as
 * a run for `regress --baseline FILE`. See db.h, "baseline".
 *
 * What goes in: per experiment (by label) its status and every metric that
 * hx_db_cmp_load gives (samples, cache_stats and routing_metric rows) which
 * is not a timing (hx_db_cmp_metric_class) and whose repetitions agree —
 * exactly what regress checks exactly. Keys are sorted and every value is
 * printed with 17 significant digits, so the file is byte-for-byte the same
 * for the same results and a change shows as a one-line diff.
 */
#include "harness/db/db.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASELINE_VERSION 1

static int agree(const hx_db_cmp_metric *m)
{
    for (size_t i = 1; i < m->n; i++)
        if (m->v[i] != m->v[0])
            return 0;
    return m->n > 0 && isfinite(m->v[0]);
}

json_t *hx_db_baseline_make(const hx_db_cmp_run *r, const char *commit)
{
    json_t *exps = json_object();
    for (size_t i = 0; i < r->nexps; i++)
        json_object_set_new(exps, r->exps[i].label,
                            json_pack("{s:s, s:{}}", "status", r->exps[i].status, "metrics"));
    for (size_t i = 0; i < r->nm; i++) {
        const hx_db_cmp_metric *m = &r->m[i];
        if (hx_db_cmp_metric_class(m->metric, NULL) == HX_DB_CMP_TIMING &&
            hx_db_cmp_direction(r, m->label, m->metric) != HX_DB_DIR_EQUAL)
            continue;
        if (!agree(m))
            continue;
        json_t *e = json_object_get(exps, m->label);
        double v = m->v[0];
        json_object_set_new(json_object_get(e, "metrics"), m->metric,
                            v == floor(v) && fabs(v) < 9e15 ? json_integer((json_int_t)v)
                                                            : json_real(v));
    }
    return json_pack("{s:i, s:s, s:s, s:s, s:o}", "moebench_baseline", BASELINE_VERSION,
                     "suite", r->suite, "run_uuid", r->uuid, "commit", commit ? commit : "",
                     "experiments", exps);
}

int hx_db_baseline_is(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\t' || c == '\r')
        ;
    fclose(f);
    return c == '{';
}

/* Appends one metric group (values: one) to r; labels and names copied. */
static int add(hx_db_cmp_run *r, size_t *cap, const char *label, const char *metric, double v,
               eng_err *err)
{
    if (r->nm == *cap) {
        hx_db_cmp_metric *p = realloc(r->m, (*cap = *cap ? 2 * *cap : 256) * sizeof *p);
        if (!p)
            return eng_err_set(err, ENG_ENOMEM, "out of memory reading a baseline");
        r->m = p;
    }
    hx_db_cmp_metric *m = &r->m[r->nm];
    *m = (hx_db_cmp_metric){0};
    if (!(m->v = malloc(sizeof *m->v)) || !(m->metric = hx_db_cmp_keep(r, metric)))
        return free(m->v), eng_err_set(err, ENG_ENOMEM, "out of memory reading a baseline");
    m->label = hx_db_cmp_find_exp(r, label)->label;
    m->v[0] = v;
    m->n = 1;
    r->nm++;
    return ENG_OK;
}

static int cmp_metric(const void *a, const void *b)
{
    const hx_db_cmp_metric *x = a, *y = b;
    int c = strcmp(x->label, y->label);
    return c ? c : strcmp(x->metric, y->metric);
}

static int cmp_exp(const void *a, const void *b)
{
    return strcmp(((const hx_db_cmp_exp *)a)->label, ((const hx_db_cmp_exp *)b)->label);
}

static int load_exps(hx_db_cmp_run *r, const json_t *exps, const char *path, eng_err *err)
{
    r->exps = calloc(json_object_size(exps) + 1, sizeof *r->exps);
    if (!r->exps)
        return eng_err_set(err, ENG_ENOMEM, "out of memory reading %s", path);
    const char *label;
    json_t *e;
    json_object_foreach((json_t *)exps, label, e) {
        const char *st = json_string_value(json_object_get(e, "status"));
        if (!json_is_object(e) || !st || !json_is_object(json_object_get(e, "metrics")))
            return eng_err_set(err, ENG_EFORMAT, "%s: experiment '%s' needs \"status\" and"
                               " \"metrics\"", path, label);
        hx_db_cmp_exp *x = &r->exps[r->nexps];
        x->label = hx_db_cmp_keep(r, label);
        x->status = hx_db_cmp_keep(r, st);
        x->error = hx_db_cmp_keep(r, "");
        if (!x->label || !x->status || !x->error)
            return eng_err_set(err, ENG_ENOMEM, "out of memory reading %s", path);
        r->nexps++;
    }
    qsort(r->exps, r->nexps, sizeof *r->exps, cmp_exp);
    return ENG_OK;
}

static int load_metrics(hx_db_cmp_run *r, const json_t *exps, const char *path, eng_err *err)
{
    size_t cap = 0;
    const char *label, *metric;
    json_t *e, *v;
    json_object_foreach((json_t *)exps, label, e) {
        json_object_foreach(json_object_get(e, "metrics"), metric, v) {
            if (!json_is_number(v))
                return eng_err_set(err, ENG_EFORMAT, "%s: experiment '%s', metric '%s': not"
                                   " a number", path, label, metric);
            int rc = add(r, &cap, label, metric, json_number_value(v), err);
            if (rc)
                return rc;
        }
    }
    qsort(r->m, r->nm, sizeof *r->m, cmp_metric);
    return ENG_OK;
}

int hx_db_baseline_load(hx_db_cmp_run *out, const char *path, eng_err *err)
{
    *out = (hx_db_cmp_run){0};
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (!doc)
        return eng_err_set(err, ENG_EFORMAT, "%s: line %d: %s", path, je.line, je.text);
    const json_t *exps = json_object_get(doc, "experiments");
    int rc = ENG_OK;
    if (json_integer_value(json_object_get(doc, "moebench_baseline")) != BASELINE_VERSION ||
        !json_is_object(exps))
        rc = eng_err_set(err, ENG_EFORMAT, "%s: not a moebench baseline (version %d with"
                         " \"experiments\"); make one with `moebench export RUN --baseline`",
                         path, BASELINE_VERSION);
    hx_db_cmp_run r = {.id = 0};
    const char *suite = json_string_value(json_object_get(doc, "suite"));
    const char *uuid = json_string_value(json_object_get(doc, "run_uuid"));
    const char *commit = json_string_value(json_object_get(doc, "commit"));
    snprintf(r.suite, sizeof r.suite, "%s", suite ? suite : "");
    snprintf(r.uuid, sizeof r.uuid, "%s", uuid ? uuid : "");
    snprintf(r.started_at, sizeof r.started_at, "commit %s", commit && *commit ? commit : "?");
    if (!rc)
        rc = load_exps(&r, exps, path, err);
    if (!rc)
        rc = load_metrics(&r, exps, path, err);
    json_decref(doc);
    if (rc)
        hx_db_cmp_free(&r);
    else
        *out = r;
    return rc;
}
