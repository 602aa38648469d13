/*
 * slurm.c — writes a job folder and submits it with sbatch; resubmits the
 * shards that are not ok. See suite.h; slurm_shards.c reads job.json and
 * the shards' states, and is the merge job.
 *
 * sbatch, squeue and scancel run as child processes from an argv, never
 * through a shell, so no path or argument is parsed twice. Job ids come
 * from `sbatch --parsable` ("ID" or "ID;CLUSTER"). job.json is written
 * before the first sbatch (the merge job reads it) and again with the job
 * ids. When an sbatch fails, the jobs of that submission already queued
 * are cancelled and the submission is taken out of job.json, so the same
 * command can simply be run again.
 */
#include "harness/suite/suite.h"

#include "harness/suite/suite_impl.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef enum { JOB_PREPARE, JOB_SHARDS, JOB_MERGE } job_kind;
static const char *const job_key[] = {"prepare", "array", "merge"};
static const char *const job_script[] = {"prepare.sh", "shard.sh", "merge.sh"};

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void add(json_t *a, const char *s)
{
    json_array_append_new(a, json_string(s));
}

static void addf(json_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(json_t *a, const char *fmt, ...)
{
    char buf[PATH_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    add(a, buf);
}

/* ---- paths ------------------------------------------------------------------ */

static int abs_path(const char *p, char *out, size_t cap, eng_err *err)
{
    char cwd[PATH_MAX];
    if (p[0] == '/')
        cwd[0] = '\0';
    else if (!getcwd(cwd, sizeof cwd))
        return eng_err_set(err, ENG_EIO, "cannot read the current folder: %s", strerror(errno));
    if ((size_t)snprintf(out, cap, "%s%s%s", cwd, cwd[0] ? "/" : "", p) >= cap)
        return eng_err_set(err, ENG_EINVAL, "path too long: %s", p);
    return ENG_OK;
}

/* OUT.db -> OUT.slurm; any other name gets .slurm appended. */
static void default_dir(const char *db, char *out, size_t cap)
{
    size_t n = strlen(db);
    if (n > 3 && !strcmp(db + n - 3, ".db"))
        n -= 3;
    snprintf(out, cap, "%.*s.slurm", (int)n, db);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int folder_of_exists(const char *path)
{
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", path);
    char *slash = strrchr(d, '/');
    if (slash)
        *(slash == d ? slash + 1 : slash) = '\0';
    return is_dir(d);
}

static void join(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* ---- the job description -------------------------------------------------------- */

/* The run options a shard needs, as `moebench run` arguments. */
static json_t *run_args(const hx_suite_run_opts *o)
{
    json_t *a = json_array();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o->defines, k, v) {
        add(a, "-D");
        addf(a, "%s=%s", k, json_string_value(v));
    }
    if (o->filter) {
        add(a, "--filter");
        add(a, o->filter);
    }
    add(a, "--seed");
    addf(a, "%llu", (unsigned long long)o->seed);
    if (o->quick)
        add(a, "--quick");
    if (o->interleave)
        add(a, "--interleave");
    if (o->fail_fast)
        add(a, "--fail-fast");
    if (o->reps >= 1) {
        add(a, "--reps");
        addf(a, "%d", o->reps);
    }
    if (o->warmup >= 0) {
        add(a, "--warmup");
        addf(a, "%d", o->warmup);
    }
    if (o->timeout_s > 0) {
        add(a, "--timeout");
        addf(a, "%.17g", o->timeout_s);
    }
    return a;
}

/* Number of array tasks: --tasks, or one per selected experiment. */
static int task_count(const char *file, const hx_suite_run_opts *ro, const hx_suite_slurm_opts *so,
                      int *tasks, eng_err *err)
{
    int sel = 0;
    int rc = hx_suite_runner_count(file, ro, &sel, err);
    if (rc)
        return rc;
    if (sel == 0)
        return eng_err_set(err, ENG_EINVAL, "%s: no experiment selected%s", file,
                           ro->filter ? " (see --filter)" : "");
    *tasks = so->tasks > 0 ? so->tasks : sel;
    if (*tasks > sel) {
        fprintf(stderr, "moebench run: --tasks %d > %d selected experiments: %d tasks\n",
                *tasks, sel, sel);
        *tasks = sel;
    }
    if (*tasks > HX_SUITE_SLURM_MAX_TASKS) {
        fprintf(stderr, "moebench run: %d experiments, %d tasks (Slurm's default largest"
                " array); --tasks sets the number\n", sel, HX_SUITE_SLURM_MAX_TASKS);
        *tasks = HX_SUITE_SLURM_MAX_TASKS;
    }
    return ENG_OK;
}

/* The paths of job.json: absolute, no newline (they go into scripts'
 * comments), no '%' in the folder (sbatch --output expands it). */
static int job_paths(const char *file, const hx_suite_run_opts *ro, const hx_suite_slurm_opts *so,
                     json_t *job, eng_err *err)
{
    char suite[PATH_MAX], db[PATH_MAX], dir[PATH_MAX], cwd[PATH_MAX], exe[PATH_MAX];
    if (!realpath(file, suite))
        return eng_err_set(err, ENG_EIO, "cannot open %s: %s", file, strerror(errno));
    if (!realpath("/proc/self/exe", exe))
        return eng_err_set(err, ENG_EIO, "cannot find this binary: %s", strerror(errno));
    int rc = abs_path(ro->db_path, db, sizeof db, err);
    if (!rc && so->dir)
        rc = abs_path(so->dir, dir, sizeof dir, err);
    else if (!rc)
        default_dir(db, dir, sizeof dir);
    if (!rc && !getcwd(cwd, sizeof cwd))
        rc = eng_err_set(err, ENG_EIO, "cannot read the current folder: %s", strerror(errno));
    if (rc)
        return rc;
    const char *all[] = {suite, db, dir, cwd, exe};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strchr(all[i], '\n'))
            return eng_err_set(err, ENG_EINVAL, "a path with a newline: '%s'", all[i]);
    if (strchr(dir, '%'))
        return eng_err_set(err, ENG_EINVAL, "--slurm-dir %s: '%%' would be a pattern for sbatch",
                           dir);
    if (!folder_of_exists(db))
        return eng_err_set(err, ENG_EINVAL, "--db %s: its folder does not exist", ro->db_path);
    const char *keys[] = {"suite", "db", "dir", "cwd", "exe"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (json_object_set_new(job, keys[i], json_string(all[i])))
            return eng_err_set(err, ENG_EINVAL, "path '%s' is not UTF-8 (job.json is JSON)",
                               all[i]);
    return ENG_OK;
}

static int job_new(const char *file, const hx_suite_run_opts *ro, const hx_suite_slurm_opts *so,
                   json_t **out, eng_err *err)
{
    int tasks = 0;
    json_t *job = json_pack("{s:i}", "format", 1); /* first in the file */
    int rc = job ? task_count(file, ro, so, &tasks, err) : ENG_ENOMEM;
    if (!rc)
        rc = job_paths(file, ro, so, job, err);
    if (rc) {
        json_decref(job);
        return rc == ENG_ENOMEM ? eng_err_set(err, rc, "out of memory") : rc;
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    size_t n = strlen(base);
    n -= n > 4 && !strcmp(base + n - 4, ".lua") ? 4 : 0;
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)n, base);
    json_object_set_new(job, "name", json_string(name));
    json_object_set_new(job, "tasks", json_integer(tasks));
    json_object_set_new(job, "run_args", run_args(ro));
    json_object_set_new(job, "submissions", json_array());
    *out = job;
    return ENG_OK;
}

static int job_save(const json_t *job, eng_err *err)
{
    char path[PATH_MAX], part[PATH_MAX + 8];
    join(path, sizeof path, jstr(job, "dir"), "job.json");
    snprintf(part, sizeof part, "%s.part", path);
    if (json_dump_file(job, part, JSON_INDENT(1) | JSON_PRESERVE_ORDER) || rename(part, path)) {
        unlink(part);
        return eng_err_set(err, ENG_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    return ENG_OK;
}

/* ---- scripts --------------------------------------------------------------------- */

/* 'text' for sh: every character literal. */
static void sh_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++)
        fputs(*s == '\'' ? "'\\''" : (char[]){*s, 0}, f);
    fputc('\'', f);
}

/* A word as a shell would need it: quoted only when it must be. */
static void sh_word(FILE *f, const char *s)
{
    if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        "-_=.,/:%@+") == strlen(s))
        fputs(s, f);
    else
        sh_quote(f, s);
}

static void script_body(FILE *f, const json_t *job, job_kind k)
{
    const char *dir = jstr(job, "dir");
    if (k == JOB_SHARDS)
        fputs("i=${SLURM_ARRAY_TASK_ID:?shard.sh runs as a task of a Slurm job array}\n", f);
    fputs("exec ", f);
    sh_word(f, jstr(job, "exe"));
    if (k == JOB_MERGE) {
        fputs(" merge --slurm ", f);
        sh_word(f, dir);
        fputc('\n', f);
        return;
    }
    fputs(" run ", f);
    sh_word(f, jstr(job, "suite"));
    if (k == JOB_PREPARE) {
        fputs(" --prepare", f);
    } else {
        fprintf(f, " --shard \"$i/%lld\" --db ", json_integer_value(json_object_get(job, "tasks")));
        sh_word(f, dir);
        fputs("/shard-\"$i\".db", f);
    }
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(job, "run_args"), i, a) {
        fputc(' ', f);
        sh_word(f, json_string_value(a));
    }
    fputc('\n', f);
}

static char *script_text(const json_t *job, job_kind k)
{
    static const char *const what[] = {
        "Loads the suite once before the array starts, so the models and routing\n"
        "# traces it makes on first use are made here, once, not by every task.\n",
        "Array index i runs shard i of the suite into shard-i.db of the job folder.\n",
        "Runs after every task of the array has ended (afterany): merges each shard\n"
        "# that finished ok into the results database and lists the others.\n"};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fprintf(f, "#!/bin/sh\n# moebench on Slurm, suite %s: the %s job, written by `moebench run"
            " --slurm`.\n# %s#\n# Job folder %s (job.json: what was submitted).\n"
            "# Resubmit the shards that are not ok: moebench run --slurm-resume %s\n",
            jstr(job, "name"), job_key[k], what[k], jstr(job, "dir"), jstr(job, "dir"));
    script_body(f, job, k);
    fclose(f);
    return buf;
}

static int scripts_write(const json_t *job, eng_err *err)
{
    const char *dir = jstr(job, "dir");
    char p[PATH_MAX];
    join(p, sizeof p, dir, "log");
    if ((mkdir(dir, 0777) && errno != EEXIST) || (mkdir(p, 0777) && errno != EEXIST))
        return eng_err_set(err, ENG_EIO, "cannot make %s: %s", p, strerror(errno));
    for (int k = JOB_PREPARE; k <= JOB_MERGE; k++) {
        char *text = script_text(job, (job_kind)k);
        join(p, sizeof p, dir, job_script[k]);
        FILE *f = text ? fopen(p, "w") : NULL;
        int bad = !f || fputs(text, f) < 0;
        bad |= f && fclose(f) != 0;
        free(text);
        if (bad || chmod(p, 0755))
            return eng_err_set(err, ENG_EIO, "cannot write %s: %s", p, strerror(errno));
    }
    return ENG_OK;
}

/* ---- sbatch ----------------------------------------------------------------------- */

/* sbatch arguments moebench sets itself: the user may not. */
static int check_user_args(const json_t *user, eng_err *err)
{
    static const char *const own[] = {"--array", "-a", "--dependency", "-d", "--output", "-o",
                                      "--error", "-e", "--chdir", "-D", NULL};
    size_t i;
    json_t *v;
    json_array_foreach(user, i, v) {
        const char *s = json_string_value(v);
        for (const char *const *o = own; *o; o++) {
            size_t n = strlen(*o);
            int is_long = (*o)[1] == '-';
            if (!strncmp(s, *o, n) && (s[n] == '\0' || (is_long ? s[n] == '=' : 1)))
                return eng_err_set(err, ENG_EINVAL,
                                   "--sbatch-args: '%s' is set by moebench (the array, its"
                                   " dependencies, logs and folder)", s);
        }
    }
    return ENG_OK;
}

/* sbatch's argv for one job; dep: the job id it waits for, or NULL. */
static json_t *sbatch_argv(const json_t *job, job_kind k, const json_t *user,
                           const char *spec, const char *dep)
{
    const char *dir = jstr(job, "dir");
    json_t *a = json_array();
    add(a, "sbatch");
    add(a, "--parsable");
    addf(a, "--job-name=moebench-%s%s%s", jstr(job, "name"), k == JOB_SHARDS ? "" : "-",
         k == JOB_SHARDS ? "" : job_key[k]);
    addf(a, "--chdir=%s", jstr(job, "cwd"));
    json_array_extend(a, (json_t *)user);
    if (k == JOB_SHARDS) {
        addf(a, "--output=%s/log/shard-%%a.%%A.out", dir);
        addf(a, "--array=%s", spec);
    } else {
        addf(a, "--output=%s/log/%s.%%j.out", dir, job_key[k]);
    }
    if (dep && k == JOB_SHARDS) {
        addf(a, "--dependency=afterok:%s", dep);
        add(a, "--kill-on-invalid-dep=yes");
    } else if (dep) {
        addf(a, "--dependency=afterany:%s", dep);
    }
    addf(a, "%s/%s", dir, job_script[k]);
    return a;
}

static void print_argv(FILE *f, const json_t *argv)
{
    size_t i;
    json_t *v;
    json_array_foreach(argv, i, v) {
        if (i)
            fputc(' ', f);
        sh_word(f, json_string_value(v));
    }
    fputc('\n', f);
}

/* Runs argv (found on PATH), stdout into out; stderr stays ours. *status:
 * the exit status, 127 when it could not be started. */
static int run_capture(const json_t *argv, char *out, size_t cap, int *status, eng_err *err)
{
    size_t n = json_array_size(argv);
    char **av = calloc(n + 1, sizeof *av);
    int fd[2];
    if (!av || pipe(fd)) {
        free(av);
        return eng_err_set(err, ENG_EIO, "cannot start %s: %s",
                           json_string_value(json_array_get(argv, 0)), strerror(errno));
    }
    for (size_t i = 0; i < n; i++)
        av[i] = (char *)json_string_value(json_array_get(argv, i));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]), close(fd[1]);
        execvp(av[0], av);
        _exit(127);
    }
    free(av);
    close(fd[1]);
    /* read to the end even past cap: a child blocked on a full pipe never exits */
    size_t len = 0;
    ssize_t r;
    char chunk[4096];
    while ((r = read(fd[0], chunk, sizeof chunk)) > 0 || (r < 0 && errno == EINTR)) {
        size_t take = r > 0 && len + (size_t)r < cap ? (size_t)r : r > 0 ? cap - 1 - len : 0;
        memcpy(out + len, chunk, take);
        len += take;
    }
    out[len] = '\0';
    close(fd[0]);
    int ws = 0;
    if (pid < 0 || waitpid(pid, &ws, 0) < 0)
        return eng_err_set(err, ENG_EIO, "cannot run %s: %s", json_string_value(json_array_get(argv, 0)),
                           strerror(errno));
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    return ENG_OK;
}

static int sbatch(const json_t *argv, long long *id, eng_err *err)
{
    char out[256];
    int st = 0;
    int rc = run_capture(argv, out, sizeof out, &st, err);
    if (rc)
        return rc;
    const char *script = json_string_value(json_array_get(argv, json_array_size(argv) - 1));
    if (st == 127)
        return eng_err_set(err, ENG_EIO, "sbatch not found on PATH (is this a Slurm login node?)");
    char *end;
    *id = strtoll(out, &end, 10);
    if (st != 0 || end == out || (*end && *end != ';' && *end != '\n') || *id <= 0)
        return eng_err_set(err, ENG_EIO, "sbatch %s failed (exit %d%s%.60s)", script, st,
                           *out ? ", printed " : "", out);
    return ENG_OK;
}

static void cancel(const long long *ids, int n)
{
    json_t *a = json_array();
    add(a, "scancel");
    for (int i = 0; i < n; i++)
        addf(a, "%lld", ids[i]);
    char out[256];
    int st;
    eng_err e = {0};
    if (n > 0 && (run_capture(a, out, sizeof out, &st, &e) || st != 0))
        fprintf(stderr, "moebench run: could not cancel the jobs already submitted\n");
    json_decref(a);
}

/* Submits jobs `from`..merge of submission sub (its shards' array spec);
 * records each job id in sub. */
static int submit(const json_t *job, json_t *sub, const json_t *user, job_kind from,
                  eng_err *err)
{
    long long ids[3] = {0};
    int n = 0, rc = ENG_OK;
    char dep[32] = "";
    for (int k = from; k <= JOB_MERGE && !rc; k++) {
        json_t *argv = sbatch_argv(job, (job_kind)k, user, jstr(sub, "array_spec"),
                                   dep[0] ? dep : NULL);
        rc = sbatch(argv, &ids[n], err);
        json_decref(argv);
        if (!rc) {
            json_object_set_new(sub, job_key[k], json_integer(ids[n]));
            snprintf(dep, sizeof dep, "%lld", ids[n++]);
        }
    }
    if (rc)
        cancel(ids, n);
    return rc;
}

/* "1-3,5,7-8" for the sorted shard list. */
static void array_spec(const json_t *shards, char *out, size_t cap)
{
    size_t n = json_array_size(shards), len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < cap;) {
        json_int_t a = json_integer_value(json_array_get(shards, i)), b = a;
        while (i + 1 < n && json_integer_value(json_array_get(shards, i + 1)) == b + 1)
            b++, i++;
        i++;
        len += (size_t)snprintf(out + len, cap - len, a == b ? "%s%lld" : "%s%lld-%lld",
                                len ? "," : "", (long long)a, (long long)b);
    }
}

static json_t *submission_new(const json_t *shards, const char *sbatch_args)
{
    char spec[8192], when[32];
    array_spec(shards, spec, sizeof spec);
    time_t t = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S%z", localtime(&t));
    return json_pack("{s:s, s:O, s:s, s:s}", "submitted_at", when, "shards", shards,
                     "array_spec", spec, "sbatch_args", sbatch_args ? sbatch_args : "");
}

/* --dry-run: the commands and the scripts, nothing written. */
static void show(const json_t *job, const json_t *sub, const json_t *user, job_kind from)
{
    static const char *const placeholder[] = {"PREPARE_JOB_ID", "ARRAY_JOB_ID", ""};
    printf("nothing written, nothing submitted (--dry-run). Would run:\n\n");
    for (int k = from; k <= JOB_MERGE; k++) {
        json_t *argv = sbatch_argv(job, (job_kind)k, user, jstr(sub, "array_spec"),
                                   k > (int)from ? placeholder[k - 1] : NULL);
        print_argv(stdout, argv);
        json_decref(argv);
    }
    for (int k = from; k <= JOB_MERGE; k++) {
        char *text = script_text(job, (job_kind)k);
        printf("\n==> %s/%s <==\n%s", jstr(job, "dir"), job_script[k], text ? text : "");
        free(text);
    }
}

static void print_submitted(const json_t *job, const json_t *sub, job_kind from)
{
    const char *dir = jstr(job, "dir");
    if (from == JOB_MERGE)
        printf("submitted suite %s: every shard is ok, not every one merged:", jstr(job, "name"));
    else
        printf("submitted suite %s, shards %s of %lld:", jstr(job, "name"),
               jstr(sub, "array_spec"), json_integer_value(json_object_get(job, "tasks")));
    for (int k = from; k <= JOB_MERGE; k++)
        printf("%s %s job %lld", k > (int)from ? "," : "", job_key[k],
               json_integer_value(json_object_get(sub, job_key[k])));
    printf("\n  results:    %s (written by the merge job)\n  job folder: %s (scripts,"
           " job.json, shard databases, log/)\n  follow:     squeue --me; moebench run"
           " --slurm-status %s\n  afterwards: moebench run --slurm-resume %s resubmits the"
           " shards that failed\n", jstr(job, "db"), dir, dir, dir);
}

int hx_suite_slurm_submit(const char *file, const hx_suite_run_opts *ro, const hx_suite_slurm_opts *so,
                    eng_err *err)
{
    json_t *job = NULL, *user = NULL, *shards = json_array();
    int rc = hx_suite_slurm_split_args(so->sbatch_args, &user, err);
    if (!rc)
        rc = check_user_args(user, err);
    if (!rc)
        rc = job_new(file, ro, so, &job, err);
    char jj[PATH_MAX];
    if (!rc) {
        join(jj, sizeof jj, jstr(job, "dir"), "job.json");
        if (access(jj, F_OK) == 0)
            rc = eng_err_set(err, ENG_EINVAL,
                             "%s holds a submission already: see it with --slurm-status, resubmit"
                             " its failed shards with --slurm-resume, or choose another"
                             " --slurm-dir", jstr(job, "dir"));
    }
    for (json_int_t i = 1; !rc && i <= json_integer_value(json_object_get(job, "tasks")); i++)
        json_array_append_new(shards, json_integer(i));
    json_t *sub = rc ? NULL : submission_new(shards, so->sbatch_args);
    if (sub && so->dry_run) {
        show(job, sub, user, JOB_PREPARE);
    } else if (sub) {
        json_array_append(json_object_get(job, "submissions"), sub);
        rc = scripts_write(job, err);
        if (!rc)
            rc = job_save(job, err);
        if (!rc && (rc = submit(job, sub, user, JOB_PREPARE, err)) != ENG_OK)
            unlink(jj); /* nothing queued: the same command can run again */
        if (!rc)
            rc = job_save(job, err);
        if (!rc)
            print_submitted(job, sub, JOB_PREPARE);
    }
    json_decref(sub), json_decref(shards), json_decref(user), json_decref(job);
    return rc;
}

/* ---- resume ------------------------------------------------------------------------- */

/* ENG_EINVAL while a job of the last submission is queued or running. */
static int check_idle(const json_t *job, eng_err *err)
{
    json_t *subs = json_object_get(job, "submissions");
    json_t *last = json_array_get(subs, json_array_size(subs) - 1);
    if (!last)
        return ENG_OK;
    /* %F: the array's job id for every task, the job id otherwise */
    json_t *argv = json_pack("[s, s, s, s, s]", "squeue", "--noheader", "--me", "--format",
                             "%F");
    size_t cap = 1 << 20; /* a line per queued job of this user */
    char *out = malloc(cap);
    int st = 0;
    int rc = out ? run_capture(argv, out, cap, &st, err)
                 : eng_err_set(err, ENG_ENOMEM, "out of memory");
    json_decref(argv);
    if (!rc && st != 0)
        rc = eng_err_set(err, ENG_EIO, "squeue failed (exit %d): cannot tell whether the jobs of"
                         " the last submission have ended", st);
    char *save = NULL;
    for (char *line = rc ? NULL : strtok_r(out, "\n", &save); line && !rc;
         line = strtok_r(NULL, "\n", &save))
        for (int k = JOB_PREPARE; k <= JOB_MERGE && !rc; k++)
            if (atoll(line) > 0 &&
                atoll(line) == json_integer_value(json_object_get(last, job_key[k])))
                rc = eng_err_set(err, ENG_EINVAL,
                                 "%s job %s of the last submission is still queued or running;"
                                 " resume when it has ended (or scancel it)", job_key[k], line);
    free(out);
    return rc;
}

/* Moves the database of a shard that is not ok to dir/failed/. */
static int move_aside(const json_t *job, const hx_suite_slurm_shard *sh, eng_err *err)
{
    const char *dir = jstr(job, "dir");
    char failed[PATH_MAX], to[PATH_MAX + 64], from[PATH_MAX + 8];
    join(failed, sizeof failed, dir, "failed");
    if (mkdir(failed, 0777) && errno != EEXIST)
        return eng_err_set(err, ENG_EIO, "cannot make %s: %s", failed, strerror(errno));
    static const char *const ext[] = {"", "-wal", "-shm"};
    for (int e = 0; e < 3; e++) {
        snprintf(from, sizeof from, "%s%s", sh->path, ext[e]);
        snprintf(to, sizeof to, "%s/shard-%d.%lld.db%s", failed, sh->index,
                 hx_suite_slurm_job_array_of(job, sh->index), ext[e]);
        if (rename(from, to) && errno != ENOENT)
            return eng_err_set(err, ENG_EIO, "cannot move %s to %s: %s", from, to,
                               strerror(errno));
    }
    return ENG_OK;
}

/* The shards to run again; *unmerged: ok shards OUT does not hold. */
static int shards_to_redo(const json_t *job, json_t **redo, int *unmerged, eng_err *err)
{
    int n = (int)json_integer_value(json_object_get(job, "tasks"));
    hx_suite_slurm_shard *sh = hx_suite_slurm_shards_inspect(job);
    *redo = json_array();
    *unmerged = 0;
    int rc = sh && *redo ? ENG_OK : eng_err_set(err, ENG_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        if (sh[i].state != HX_SUITE_SHARD_OK)
            json_array_append_new(*redo, json_integer(sh[i].index));
        else
            *unmerged += !sh[i].merged;
    }
    free(sh);
    return rc;
}

static int resubmit(json_t *job, json_t *redo, const json_t *user, const char *args,
                    eng_err *err)
{
    const char *dir = jstr(job, "dir");
    size_t k;
    json_t *v;
    int rc = ENG_OK;
    json_array_foreach(redo, k, v) {
        hx_suite_slurm_shard sh = {.index = (int)json_integer_value(v)};
        hx_suite_slurm_shard_path(dir, sh.index, sh.path, sizeof sh.path);
        if (!rc)
            rc = move_aside(job, &sh, err);
    }
    json_t *subs = json_object_get(job, "submissions");
    json_t *sub = submission_new(redo, args);
    job_kind from = json_array_size(redo) ? JOB_PREPARE : JOB_MERGE;
    json_array_append(subs, sub);
    if (!rc)
        rc = job_save(job, err);
    if (!rc && (rc = submit(job, sub, user, from, err)) != ENG_OK) {
        json_array_remove(subs, json_array_size(subs) - 1);
        eng_err e2 = {0};
        job_save(job, &e2);
    } else if (!rc) {
        rc = job_save(job, err);
    }
    if (!rc)
        print_submitted(job, sub, from);
    json_decref(sub);
    return rc;
}

int hx_suite_slurm_resume(const char *dir_arg, const hx_suite_slurm_opts *so, eng_err *err)
{
    char dir[PATH_MAX];
    json_t *job = NULL, *user = NULL, *redo = NULL;
    int rc = abs_path(dir_arg, dir, sizeof dir, err);
    if (!rc)
        rc = hx_suite_slurm_job_load(dir, &job, err);
    json_t *subs = json_object_get(job, "submissions");
    const char *args = so->sbatch_args ? so->sbatch_args
                       : jstr(json_array_get(subs, json_array_size(subs) - 1), "sbatch_args");
    if (!rc)
        rc = hx_suite_slurm_split_args(args, &user, err);
    if (!rc)
        rc = check_user_args(user, err);
    if (!rc)
        rc = check_idle(job, err);
    int unmerged = 0;
    if (!rc)
        rc = shards_to_redo(job, &redo, &unmerged, err);
    if (rc) {
    } else if (!json_array_size(redo) && !unmerged) {
        printf("all %lld shards of %s are ok and merged into %s: nothing to resubmit\n",
               json_integer_value(json_object_get(job, "tasks")), dir, jstr(job, "db"));
    } else if (so->dry_run) {
        json_t *sub = submission_new(redo, args);
        show(job, sub, user, json_array_size(redo) ? JOB_PREPARE : JOB_MERGE);
        json_decref(sub);
    } else {
        rc = resubmit(job, redo, user, args, err);
    }
    json_decref(redo), json_decref(user), json_decref(job);
    return rc;
}
