/*
 * slurm_shards.c — a Slurm job folder read back: job.json, the state of
 * each shard's database, `--slurm-status` and the merge job. See suite.h.
 *
 * A shard's state comes from its own database only, never from Slurm's
 * accounting (which a cluster may not keep, and which says COMPLETED for a
 * task that ran nothing: docs/suites.md): the newest run of that shard
 * (run.cli shard_i and shard_n) and its status. The merge copies the runs
 * of ok shards by UUID (hx_db_merge), so merging again adds nothing and a
 * resumed shard's new run joins the others.
 */
#include "harness/db/db.h"
#include "harness/suite/suite.h"
#include "harness/suite/suite_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int tasks_of(const json_t *job)
{
    return (int)json_integer_value(json_object_get(job, "tasks"));
}

/* ---- job.json --------------------------------------------------------------- */

static int check_submission(const json_t *s, const char *path, size_t k, eng_err *err)
{
    json_t *sh = json_object_get(s, "shards");
    if (!json_is_object(s) || !json_is_array(sh) || !json_is_string(json_object_get(s, "array_spec")))
        return eng_err_set(err, ENG_EFORMAT, "%s: submissions[%zu]: needs shards and array_spec",
                           path, k);
    size_t i;
    json_t *v;
    json_array_foreach(sh, i, v)
        if (!json_is_integer(v))
            return eng_err_set(err, ENG_EFORMAT, "%s: submissions[%zu].shards[%zu]: not an"
                               " integer", path, k, i);
    return ENG_OK;
}

static int check_job(const json_t *job, const char *path, eng_err *err)
{
    static const char *const strings[] = {"name", "suite", "db", "dir", "cwd", "exe", NULL};
    if (!json_is_object(job) || json_integer_value(json_object_get(job, "format")) != 1)
        return eng_err_set(err, ENG_EFORMAT, "%s: not a moebench job description (format 1)",
                           path);
    for (const char *const *k = strings; *k; k++)
        if (!json_is_string(json_object_get(job, *k)))
            return eng_err_set(err, ENG_EFORMAT, "%s: field '%s': missing or not a string",
                               path, *k);
    json_t *t = json_object_get(job, "tasks");
    if (!json_is_integer(t) || json_integer_value(t) < 1 ||
        json_integer_value(t) > HX_SUITE_SLURM_MAX_TASKS)
        return eng_err_set(err, ENG_EFORMAT, "%s: field 'tasks': not an integer in 1..%d",
                           path, HX_SUITE_SLURM_MAX_TASKS);
    json_t *subs = json_object_get(job, "submissions");
    if (!json_is_array(json_object_get(job, "run_args")) || !json_is_array(subs))
        return eng_err_set(err, ENG_EFORMAT, "%s: fields 'run_args' and 'submissions' must be"
                           " arrays", path);
    size_t k;
    json_t *s;
    json_array_foreach(subs, k, s) {
        int rc = check_submission(s, path, k, err);
        if (rc)
            return rc;
    }
    return ENG_OK;
}

int hx_suite_slurm_job_load(const char *dir, json_t **out, eng_err *err)
{
    char path[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    snprintf(path, sizeof path, "%s/job.json", dir);
    json_error_t je;
    json_t *job = json_load_file(path, 0, &je);
    if (!job)
        return eng_err_set(err, access(path, F_OK) ? ENG_EIO : ENG_EFORMAT,
                           "%s: %s (a job folder of moebench run --slurm?)", path, je.text);
    int rc = check_job(job, path, err);
    /* the scripts hold absolute paths: a moved folder would run the old ones */
    if (!rc && (!realpath(dir, a) || !realpath(jstr(job, "dir"), b) || strcmp(a, b)))
        rc = eng_err_set(err, ENG_EINVAL, "%s: written for job folder %s; a moved folder's"
                         " scripts still name the old paths", path, jstr(job, "dir"));
    if (rc)
        json_decref(job);
    else
        *out = job;
    return rc;
}

long long hx_suite_slurm_job_array_of(const json_t *job, int i)
{
    json_t *subs = json_object_get(job, "submissions");
    for (size_t k = json_array_size(subs); k-- > 0;) {
        json_t *s = json_array_get(subs, k);
        size_t j;
        json_t *v;
        json_array_foreach(json_object_get(s, "shards"), j, v)
            if (json_integer_value(v) == i)
                return json_integer_value(json_object_get(s, "array"));
    }
    return 0;
}

/* ---- shard states --------------------------------------------------------------- */

void hx_suite_slurm_shard_path(const char *dir, int i, char *out, size_t cap)
{
    snprintf(out, cap, "%s/shard-%d.db", dir, i);
}

const char *hx_suite_slurm_shard_state_name(hx_suite_shard_state st)
{
    static const char *const names[] = {"ok",          "failed", "interrupted", "unfinished",
                                        "no run",      "no database", "unreadable"};
    return st <= HX_SUITE_SHARD_UNREADABLE ? names[st] : "?";
}

static const char shard_sql[] =
    "SELECT r.uuid, r.status, coalesce(m.hostname, ''),"
    " coalesce(json_extract(r.cli, '$.slurm.array_job_id') || '_'"
    " || json_extract(r.cli, '$.slurm.array_task_id'), json_extract(r.cli, '$.slurm.job_id'), ''),"
    " (SELECT count(*) FROM experiment e WHERE e.run_id = r.id AND e.status = 'ok'),"
    " (SELECT count(*) FROM experiment e WHERE e.run_id = r.id AND e.status = 'failed')"
    " FROM run r LEFT JOIN machine m ON m.id = r.machine_id"
    " WHERE json_extract(r.cli, '$.shard_i') = ?1 AND json_extract(r.cli, '$.shard_n') = ?2"
    " ORDER BY r.id DESC LIMIT 1";

static void read_run(sqlite3 *db, int n, hx_suite_slurm_shard *sh)
{
    static const struct { const char *status; hx_suite_shard_state st; } map[] = {
        {"ok", HX_SUITE_SHARD_OK}, {"failed", HX_SUITE_SHARD_FAILED},
        {"interrupted", HX_SUITE_SHARD_INTERRUPTED}, {"running", HX_SUITE_SHARD_UNFINISHED}};
    sqlite3_stmt *st;
    sh->state = HX_SUITE_SHARD_NO_RUN;
    if (sqlite3_prepare_v2(db, shard_sql, -1, &st, NULL) != SQLITE_OK) {
        sh->state = HX_SUITE_SHARD_UNREADABLE;
        snprintf(sh->why, sizeof sh->why, "%s", sqlite3_errmsg(db));
        return;
    }
    sqlite3_bind_int(st, 1, sh->index);
    sqlite3_bind_int(st, 2, n);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(st, 1);
        for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
            if (status && !strcmp(status, map[k].status))
                sh->state = map[k].st;
        snprintf(sh->uuid, sizeof sh->uuid, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(sh->host, sizeof sh->host, "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(sh->job, sizeof sh->job, "%s", (const char *)sqlite3_column_text(st, 3));
        sh->n_ok = sqlite3_column_int(st, 4);
        sh->n_failed = sqlite3_column_int(st, 5);
    }
    sqlite3_finalize(st);
}

static void inspect(const char *dir, int n, hx_suite_slurm_shard *sh)
{
    struct stat sb;
    hx_suite_slurm_shard_path(dir, sh->index, sh->path, sizeof sh->path);
    if (stat(sh->path, &sb) != 0) {
        sh->state = HX_SUITE_SHARD_MISSING;
        return;
    }
    hx_db *db;
    eng_err err = {0};
    if (hx_db_open(&db, sh->path, HX_DB_READONLY, &err)) {
        sh->state = HX_SUITE_SHARD_UNREADABLE;
        snprintf(sh->why, sizeof sh->why, "%s", err.msg);
        return;
    }
    read_run(hx_db_sqlite(db), n, sh);
    hx_db_close(db);
}

static int out_holds(sqlite3 *db, const char *uuid)
{
    sqlite3_stmt *st;
    int found = 0;
    if (db && *uuid && sqlite3_prepare_v2(db, "SELECT 1 FROM run WHERE uuid = ?1", -1, &st,
                                          NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
    }
    return found;
}

hx_suite_slurm_shard *hx_suite_slurm_shards_inspect(const json_t *job)
{
    int n = tasks_of(job);
    hx_suite_slurm_shard *sh = calloc((size_t)n, sizeof *sh);
    if (!sh)
        return NULL;
    hx_db *out = NULL;
    eng_err err = {0};
    struct stat sb;
    if (stat(jstr(job, "db"), &sb) == 0 && hx_db_open(&out, jstr(job, "db"), HX_DB_READONLY, &err))
        out = NULL; /* an unreadable OUT holds nothing; the merge will say why */
    for (int i = 0; i < n; i++) {
        sh[i].index = i + 1;
        inspect(jstr(job, "dir"), n, &sh[i]);
        sh[i].merged = out_holds(out ? hx_db_sqlite(out) : NULL, sh[i].uuid);
    }
    hx_db_close(out);
    return sh;
}

/* ---- status and merge ------------------------------------------------------------ */

static void print_table(const json_t *job, const hx_suite_slurm_shard *sh)
{
    printf("%5s  %-11s  %-17s  %-28s  %s\n", "shard", "state", "experiments",
           "where (host, job)", "in OUT");
    for (int i = 0; i < tasks_of(job); i++) {
        const hx_suite_slurm_shard *s = &sh[i];
        char exps[64] = "-", where[192] = "-";
        if (s->uuid[0] && s->n_failed)
            snprintf(exps, sizeof exps, "%d ok, %d failed", s->n_ok, s->n_failed);
        else if (s->uuid[0])
            snprintf(exps, sizeof exps, "%d ok", s->n_ok);
        if (s->uuid[0])
            snprintf(where, sizeof where, "%s%s%s%s", s->host, s->job[0] ? " (job " : "",
                     s->job, s->job[0] ? ")" : "");
        printf("%5d  %-11s  %-17s  %-28s  %s", s->index, hx_suite_slurm_shard_state_name(s->state),
               exps, where, s->merged ? "yes" : "no");
        long long a = hx_suite_slurm_job_array_of(job, s->index);
        if (s->state == HX_SUITE_SHARD_UNREADABLE)
            printf("   %s", s->why);
        else if (s->state != HX_SUITE_SHARD_OK && a > 0)
            printf("%s  log: %s/log/shard-%d.%lld.out", s->merged ? "" : " ", jstr(job, "dir"),
                   s->index, a);
        printf("\n");
    }
}

static int count_bad(const json_t *job, const hx_suite_slurm_shard *sh)
{
    int bad = 0, missing = 0;
    for (int i = 0; i < tasks_of(job); i++) {
        bad += sh[i].state != HX_SUITE_SHARD_OK;
        missing += sh[i].state == HX_SUITE_SHARD_MISSING;
    }
    /* no task got as far as its database: most likely the prepare job
     * failed (a bad suite, a model it could not make) and Slurm cancelled
     * the array */
    json_t *subs = json_object_get(job, "submissions");
    json_t *last = json_array_get(subs, json_array_size(subs) - 1);
    if (missing == tasks_of(job) && json_integer_value(json_object_get(last, "prepare")) > 0)
        printf("\nno shard has a database: if the prepare job failed, the array was cancelled;"
               " its log says why: %s/log/prepare.%lld.out\n", jstr(job, "dir"),
               json_integer_value(json_object_get(last, "prepare")));
    return bad;
}

static void print_submissions(const json_t *job)
{
    size_t k;
    json_t *s;
    json_array_foreach(json_object_get(job, "submissions"), k, s)
        printf("submission %zu (%s): shards %s; prepare job %lld, array job %lld, merge job"
               " %lld\n", k + 1, jstr(s, "submitted_at") ? jstr(s, "submitted_at") : "?",
               jstr(s, "array_spec"), json_integer_value(json_object_get(s, "prepare")),
               json_integer_value(json_object_get(s, "array")),
               json_integer_value(json_object_get(s, "merge")));
}

int hx_suite_slurm_status(const char *dir, int *bad, eng_err *err)
{
    json_t *job;
    int rc = hx_suite_slurm_job_load(dir, &job, err);
    if (rc)
        return rc;
    hx_suite_slurm_shard *sh = hx_suite_slurm_shards_inspect(job);
    if (!sh) {
        json_decref(job);
        return eng_err_set(err, ENG_ENOMEM, "out of memory");
    }
    printf("suite %s (%s), %d shards into %s\n", jstr(job, "name"), jstr(job, "suite"),
           tasks_of(job), jstr(job, "db"));
    print_submissions(job);
    printf("\n");
    print_table(job, sh);
    *bad = count_bad(job, sh);
    free(sh);
    json_decref(job);
    return ENG_OK;
}

static int merge_ok(const json_t *job, hx_suite_slurm_shard *sh, hx_db_merge_stats *ms, eng_err *err)
{
    hx_db *out = NULL;
    int rc = ENG_OK;
    for (int i = 0; !rc && i < tasks_of(job); i++) {
        if (sh[i].state != HX_SUITE_SHARD_OK || sh[i].merged)
            continue;
        if (!out && (rc = hx_db_open(&out, jstr(job, "db"), HX_DB_CREATE, err)) != ENG_OK)
            break;
        rc = hx_db_merge(out, sh[i].path, ms, err);
        sh[i].merged = !rc;
    }
    hx_db_close(out);
    return rc;
}

int hx_suite_slurm_merge(const char *dir, int *bad, eng_err *err)
{
    json_t *job;
    int rc = hx_suite_slurm_job_load(dir, &job, err);
    if (rc)
        return rc;
    hx_suite_slurm_shard *sh = hx_suite_slurm_shards_inspect(job);
    hx_db_merge_stats ms = {0};
    rc = sh ? merge_ok(job, sh, &ms, err) : eng_err_set(err, ENG_ENOMEM, "out of memory");
    if (sh) {
        print_table(job, sh);
        *bad = count_bad(job, sh);
        printf("\nmerged into %s: %lld runs added (%lld experiments), %lld already present\n",
               jstr(job, "db"), (long long)ms.runs_added, (long long)ms.experiments_added,
               (long long)ms.runs_skipped);
        if (*bad)
            printf("%d of %d shards are not ok; resubmit them (only them): moebench run"
                   " --slurm-resume %s\n", *bad, tasks_of(job), jstr(job, "dir"));
    }
    free(sh);
    json_decref(job);
    return rc;
}
